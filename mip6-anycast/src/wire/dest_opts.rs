//! Destination Options header (RFC 8200 4.6) with Pad1, PadN and the Home
//! Address option (RFC 6275 6.3). The same layout serves the Hop-by-Hop
//! Options header (RFC 8200 4.3), see [`HopByHopHeader`].

use std::net::Ipv6Addr;

use super::error::{Error, Result, need};
use super::ipv6::addr_at;
use super::tlv::{self, OptionIter};

/// Option type of the Home Address option (RFC 6275 6.3): 0xC9, whose high
/// bits `11` make a node that does not know it discard the packet and
/// answer with ICMP Parameter Problem.
pub const HAO_TYPE: u8 = 201;
/// Option data length of the Home Address option.
pub const HAO_DATA_LEN: usize = 16;
/// Length of the standard Destination Options header carrying only a Home
/// Address option: 2-octet header, PadN of 4, HAO of 18.
pub const HAO_DEST_OPTS_LEN: usize = 24;
/// Offset of the HAO option type in the standard header.
pub const HAO_STD_OPTION_OFFSET: usize = 6;

/// True if `a` may serve as a home address: RFC 6275 6.3 and 6.4 require a
/// unicast routable address, so not unspecified, loopback, multicast or
/// link-local.
pub fn is_valid_home_address(a: &Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_unicast_link_local())
}

/// What RFC 8200 4.2 says to do with an option type the node does not
/// recognize: the two high-order bits of the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionAction {
    /// `00`: skip over this option and continue processing the header.
    Skip,
    /// `01`: discard the packet.
    Discard,
    /// `10`: discard and send ICMP Parameter Problem, code 2.
    DiscardSendIcmp,
    /// `11`: discard and send ICMP Parameter Problem, code 2, only if the
    /// destination was not multicast.
    DiscardSendIcmpUnlessMulticast,
}

impl OptionAction {
    /// The action encoded in `opt_type`.
    pub const fn of(opt_type: u8) -> Self {
        match opt_type >> 6 {
            0 => OptionAction::Skip,
            1 => OptionAction::Discard,
            2 => OptionAction::DiscardSendIcmp,
            _ => OptionAction::DiscardSendIcmpUnlessMulticast,
        }
    }
}

super::view::view!(
    /// Zero-copy view of a Destination Options (or Hop-by-Hop Options) header.
    DestOptsHeader
);
super::view::ext_header_fields!(DestOptsHeader);

/// The Hop-by-Hop Options header has the same layout.
pub type HopByHopHeader<T> = DestOptsHeader<T>;

impl<T: AsRef<[u8]>> DestOptsHeader<T> {
    /// Checks that the 2-octet header and `header_len()` octets are present.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        need("destination options header", 2, len)?;
        need("destination options header", self.header_len(), len)
    }

    /// Iterates over the options, padding included.
    pub fn options(&self) -> OptionIter<'_> {
        let b = self.buffer.as_ref();
        OptionIter::new(b, 2, self.header_len(), "destination option")
    }

    /// Offset of the first Home Address option, if any (structural scan only).
    pub fn find_hao(&self) -> Result<Option<usize>> {
        for o in self.options() {
            let o = o?;
            if o.opt_type == HAO_TYPE {
                return Ok(Some(o.offset));
            }
        }
        Ok(None)
    }
}

/// Reads and validates the Home Address option at `offset` in a
/// Destination Options header: length 16 and 8n+6 alignment (RFC 6275 6.3),
/// unicast routable address.
pub fn read_hao(header: &[u8], offset: usize) -> Result<Ipv6Addr> {
    need(
        "home address option",
        offset + 2 + HAO_DATA_LEN,
        header.len(),
    )?;
    if header[offset] != HAO_TYPE {
        return Err(Error::BadHao("not option type 201"));
    }
    if usize::from(header[offset + 1]) != HAO_DATA_LEN {
        return Err(Error::BadOptionLength {
            opt_type: HAO_TYPE,
            len: header[offset + 1],
            expected: "16",
        });
    }
    if !tlv::is_aligned(offset, 8, 6) {
        return Err(Error::BadOptionAlignment {
            opt_type: HAO_TYPE,
            offset,
            x: 8,
            y: 6,
        });
    }
    let a = addr_at(header, offset + 2);
    if !is_valid_home_address(&a) {
        return Err(Error::BadHomeAddress(a));
    }
    Ok(a)
}

/// Writes the standard 24-octet Destination Options header carrying only a
/// Home Address option (2-octet header, PadN of 4, HAO) into `buf[..24]`.
pub fn emit_hao_header(buf: &mut [u8], next_header: u8, home_address: &Ipv6Addr) -> Result<()> {
    let have = buf.len();
    let b = buf
        .get_mut(..HAO_DEST_OPTS_LEN)
        .ok_or(Error::BufferTooSmall {
            need: HAO_DEST_OPTS_LEN,
            have,
        })?;
    b[0] = next_header;
    b[1] = 2;
    tlv::write_padding(&mut b[2..6], 4);
    b[6] = HAO_TYPE;
    b[7] = HAO_DATA_LEN as u8;
    b[8..24].copy_from_slice(&home_address.octets());
    Ok(())
}

/// One destination option of a [`DestOptsRepr`] (padding is implicit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DestOption {
    /// RFC 6275 6.3 Home Address option.
    HomeAddress(Ipv6Addr),
    /// An option this layer does not interpret whose type says "skip"
    /// (RFC 8200 4.2, high bits `00`); kept so it can be re-emitted.
    Unknown {
        /// Option type.
        opt_type: u8,
        /// Option data.
        data: Vec<u8>,
    },
}

impl DestOption {
    fn wire_len(&self) -> usize {
        match self {
            DestOption::HomeAddress(_) => 2 + HAO_DATA_LEN,
            DestOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    fn alignment(&self) -> (usize, usize) {
        match self {
            DestOption::HomeAddress(_) => (8, 6),
            DestOption::Unknown { .. } => (1, 0),
        }
    }
}

/// A Destination Options header as plain values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DestOptsRepr {
    /// Next header.
    pub next_header: u8,
    /// The options, in order, without padding.
    pub options: Vec<DestOption>,
}

impl DestOptsRepr {
    /// The standard header with one Home Address option.
    pub fn home_address(next_header: u8, hoa: Ipv6Addr) -> Self {
        DestOptsRepr {
            next_header,
            options: vec![DestOption::HomeAddress(hoa)],
        }
    }

    /// Parses and validates the header: HAO rules as in [`read_hao`], at most
    /// one HAO, unknown options skipped (kept) or rejected per RFC 8200 4.2.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(h: &DestOptsHeader<&T>) -> Result<DestOptsRepr> {
        h.check_len()?;
        let bytes = &h.buffer.as_ref()[..h.header_len()];
        let mut options = Vec::new();
        let mut seen_hao = false;
        for o in h.options() {
            let o = o?;
            match o.opt_type {
                tlv::PAD1 | tlv::PADN => {}
                HAO_TYPE => {
                    if seen_hao {
                        return Err(Error::Duplicate("Home Address option"));
                    }
                    seen_hao = true;
                    options.push(DestOption::HomeAddress(read_hao(bytes, o.offset)?));
                }
                t => match OptionAction::of(t) {
                    OptionAction::Skip => options.push(DestOption::Unknown {
                        opt_type: t,
                        data: o.data.to_vec(),
                    }),
                    action => {
                        return Err(Error::UnrecognizedOption {
                            opt_type: t,
                            offset: o.offset,
                            action,
                        });
                    }
                },
            }
        }
        Ok(DestOptsRepr {
            next_header: h.next_header(),
            options,
        })
    }

    /// The home address carried, if any.
    pub fn hoa(&self) -> Option<Ipv6Addr> {
        self.options.iter().find_map(|o| match o {
            DestOption::HomeAddress(a) => Some(*a),
            DestOption::Unknown { .. } => None,
        })
    }

    /// Octets the options and their padding take, from offset 2.
    fn body_len(&self) -> usize {
        let mut pos = 2;
        for o in &self.options {
            let (x, y) = o.alignment();
            pos += tlv::align_pad(pos, x, y) + o.wire_len();
        }
        pos
    }

    /// Emitted length: options aligned, padded to a multiple of 8.
    pub fn buffer_len(&self) -> usize {
        self.body_len().div_ceil(8) * 8
    }

    /// Writes the header, inserting Pad1/PadN for alignment and length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        h: &mut DestOptsHeader<&mut T>,
    ) -> Result<()> {
        let len = self.buffer_len();
        if len > 2048 {
            return Err(Error::TooLong {
                what: "destination options header",
                len,
                max: 2048,
            });
        }
        let have = h.buffer.as_ref().len();
        let buf = h
            .buffer
            .as_mut()
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall { need: len, have })?;
        buf[0] = self.next_header;
        buf[1] = (len / 8 - 1) as u8;
        let mut pos = 2;
        for o in &self.options {
            let (x, y) = o.alignment();
            let pad = tlv::align_pad(pos, x, y);
            tlv::write_padding(&mut buf[pos..], pad);
            pos += pad;
            match o {
                DestOption::HomeAddress(a) => {
                    buf[pos] = HAO_TYPE;
                    buf[pos + 1] = HAO_DATA_LEN as u8;
                    buf[pos + 2..pos + 18].copy_from_slice(&a.octets());
                }
                DestOption::Unknown { opt_type, data } => {
                    let l =
                        u8::try_from(data.len()).map_err(|_| Error::OptionTooLong(data.len()))?;
                    buf[pos] = *opt_type;
                    buf[pos + 1] = l;
                    buf[pos + 2..pos + 2 + data.len()].copy_from_slice(data);
                }
            }
            pos += o.wire_len();
        }
        tlv::write_padding(&mut buf[pos..], len - pos);
        Ok(())
    }

    /// Emits into a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut DestOptsHeader::new_unchecked(&mut v[..]))?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hoa() -> Ipv6Addr {
        "2001:db8:1::100".parse().unwrap()
    }

    #[test]
    fn standard_hao_header_layout() {
        let v = DestOptsRepr::home_address(135, hoa()).to_bytes().unwrap();
        let mut std = [0u8; 24];
        emit_hao_header(&mut std, 135, &hoa()).unwrap();
        assert_eq!(v, std);
        assert_eq!(&v[..8], &[135, 2, 1, 2, 0, 0, 0xc9, 16]);
        let h = DestOptsHeader::new_checked(&v[..]).unwrap();
        assert_eq!(h.find_hao().unwrap(), Some(HAO_STD_OPTION_OFFSET));
        assert_eq!(DestOptsRepr::parse(&h).unwrap().hoa(), Some(hoa()));
    }

    #[test]
    fn misaligned_or_bad_hao_rejected() {
        // HAO at offset 2 (needs 8n+6).
        let mut v = vec![59, 2, 0xc9, 16];
        v.extend_from_slice(&hoa().octets());
        v.extend_from_slice(&[1, 2, 0, 0]);
        let h = DestOptsHeader::new_checked(&v[..]).unwrap();
        assert_eq!(
            DestOptsRepr::parse(&h),
            Err(Error::BadOptionAlignment {
                opt_type: 201,
                offset: 2,
                x: 8,
                y: 6
            })
        );
        let mut v = DestOptsRepr::home_address(59, hoa()).to_bytes().unwrap();
        v[8..24].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        let h = DestOptsHeader::new_checked(&v[..]).unwrap();
        assert_eq!(
            DestOptsRepr::parse(&h),
            Err(Error::BadHomeAddress(Ipv6Addr::LOCALHOST))
        );
        v[7] = 15;
        let h = DestOptsHeader::new_checked(&v[..]).unwrap();
        assert!(matches!(
            DestOptsRepr::parse(&h),
            Err(Error::BadOptionLength { opt_type: 201, .. })
        ));
    }

    #[test]
    fn unknown_options_skip_or_reject_by_high_bits() {
        // Type 0x1e (00: skip) is kept; type 0x5e (01: discard) rejects.
        let r = DestOptsRepr {
            next_header: 6,
            options: vec![
                DestOption::Unknown {
                    opt_type: 0x1e,
                    data: vec![1, 2, 3],
                },
                DestOption::HomeAddress(hoa()),
            ],
        };
        let v = r.to_bytes().unwrap();
        assert_eq!(v.len() % 8, 0);
        let h = DestOptsHeader::new_checked(&v[..]).unwrap();
        assert_eq!(DestOptsRepr::parse(&h).unwrap(), r);
        let mut bad = v.clone();
        bad[2] = 0x5e;
        let h = DestOptsHeader::new_checked(&bad[..]).unwrap();
        assert_eq!(
            DestOptsRepr::parse(&h),
            Err(Error::UnrecognizedOption {
                opt_type: 0x5e,
                offset: 2,
                action: OptionAction::Discard
            })
        );
        assert_eq!(
            OptionAction::of(0xc9),
            OptionAction::DiscardSendIcmpUnlessMulticast
        );
        assert_eq!(OptionAction::of(0x80), OptionAction::DiscardSendIcmp);
    }

    #[test]
    fn duplicate_hao_rejected() {
        let r = DestOptsRepr {
            next_header: 59,
            options: vec![DestOption::HomeAddress(hoa()); 2],
        };
        let v = r.to_bytes().unwrap();
        let h = DestOptsHeader::new_checked(&v[..]).unwrap();
        assert_eq!(
            DestOptsRepr::parse(&h),
            Err(Error::Duplicate("Home Address option"))
        );
    }

    #[test]
    fn truncated_header() {
        let v = DestOptsRepr::home_address(59, hoa()).to_bytes().unwrap();
        assert!(matches!(
            DestOptsHeader::new_checked(&v[..23]),
            Err(Error::Truncated {
                need: 24,
                have: 23,
                ..
            })
        ));
    }
}
