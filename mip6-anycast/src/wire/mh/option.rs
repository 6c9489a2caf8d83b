//! Mobility options (RFC 6275 6.2; RFC 4285 5 and 6): parsing with length
//! and alignment checks, and emission that inserts Pad1/PadN so every
//! option meets its alignment and the Mobility Header ends on 8 octets.

use std::net::Ipv6Addr;

use crate::wire::error::{Error, Result};
use crate::wire::ipv6::addr_at;
use crate::wire::tlv::{self, OptionIter};

/// Mobility option types.
pub mod opt_type {
    /// Pad1 (RFC 6275 6.2.2).
    pub const PAD1: u8 = 0;
    /// PadN (RFC 6275 6.2.3).
    pub const PADN: u8 = 1;
    /// Binding Refresh Advice (RFC 6275 6.2.4).
    pub const BINDING_REFRESH_ADVICE: u8 = 2;
    /// Alternate Care-of Address (RFC 6275 6.2.5).
    pub const ALTERNATE_COA: u8 = 3;
    /// Nonce Indices (RFC 6275 6.2.6).
    pub const NONCE_INDICES: u8 = 4;
    /// Binding Authorization Data (RFC 6275 6.2.7).
    pub const BINDING_AUTH_DATA: u8 = 5;
    /// Mobility Message Authentication (RFC 4285 5).
    pub const MESSAGE_AUTH: u8 = 9;
    /// Mobility Message Replay Protection, "Mesg-ID" (RFC 4285 6).
    pub const MESG_ID: u8 = 10;
}

/// RFC 4285 5.1: subtype of the MN-HA authentication option.
pub const AUTH_SUBTYPE_MN_HA: u8 = 1;
/// RFC 4285 5.2: subtype of the MN-AAA authentication option.
pub const AUTH_SUBTYPE_MN_AAA: u8 = 2;
/// Length of the Binding Authorization Data authenticator (96 bits).
pub const AUTHENTICATOR_LEN: usize = 12;

/// The 96-bit Binding Authorization Data authenticator (RFC 6275 5.2.6).
pub type Authenticator = [u8; AUTHENTICATOR_LEN];

/// RFC 4285 5: Mobility Message Authentication option contents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageAuth {
    /// 1 = MN-HA, 2 = MN-AAA.
    pub subtype: u8,
    /// Mobility SPI (index of the mobility security association).
    pub spi: u32,
    /// Authentication data, e.g. First(96, HMAC_SHA1(...)).
    pub auth_data: Vec<u8>,
}

/// One mobility option (padding is implicit and not represented).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MobilityOption {
    /// RFC 6275 6.2.4: refresh interval in 4-second units.
    BindingRefreshAdvice {
        /// Refresh interval, units of 4 seconds.
        refresh_interval: u16,
    },
    /// RFC 6275 6.2.5: the care-of address to bind instead of the source.
    AlternateCoa(Ipv6Addr),
    /// RFC 6275 6.2.6: which nonces the keygen tokens were made from.
    NonceIndices {
        /// Home nonce index.
        home_nonce_index: u16,
        /// Care-of nonce index.
        care_of_nonce_index: u16,
    },
    /// RFC 6275 6.2.7: the 96-bit authenticator; must be the last option.
    BindingAuthData {
        /// First(96, HMAC_SHA1(Kbm, care-of address | correspondent | MH Data)).
        authenticator: Authenticator,
    },
    /// RFC 4285 5: MN-HA / MN-AAA authentication; must be the last option.
    MessageAuth(MessageAuth),
    /// RFC 4285 6: replay protection timestamp (64 bits, NTP format).
    MesgId {
        /// The timestamp.
        timestamp: u64,
    },
    /// An option this layer does not interpret (RFC 6275 6.2.1: skipped by
    /// receivers), preserved for re-emission.
    Unknown {
        /// Option type.
        opt_type: u8,
        /// Option data.
        data: Vec<u8>,
    },
}

impl MobilityOption {
    /// The option type.
    pub fn opt_type(&self) -> u8 {
        match self {
            MobilityOption::BindingRefreshAdvice { .. } => opt_type::BINDING_REFRESH_ADVICE,
            MobilityOption::AlternateCoa(_) => opt_type::ALTERNATE_COA,
            MobilityOption::NonceIndices { .. } => opt_type::NONCE_INDICES,
            MobilityOption::BindingAuthData { .. } => opt_type::BINDING_AUTH_DATA,
            MobilityOption::MessageAuth(_) => opt_type::MESSAGE_AUTH,
            MobilityOption::MesgId { .. } => opt_type::MESG_ID,
            MobilityOption::Unknown { opt_type, .. } => *opt_type,
        }
    }

    /// Octets of option data (after type and length).
    pub fn data_len(&self) -> usize {
        match self {
            MobilityOption::BindingRefreshAdvice { .. } => 2,
            MobilityOption::AlternateCoa(_) => 16,
            MobilityOption::NonceIndices { .. } => 4,
            MobilityOption::BindingAuthData { .. } => AUTHENTICATOR_LEN,
            MobilityOption::MessageAuth(a) => 5 + a.auth_data.len(),
            MobilityOption::MesgId { .. } => 8,
            MobilityOption::Unknown { data, .. } => data.len(),
        }
    }

    /// Alignment requirement `(x, y)` meaning `x`n+`y` from the start of
    /// the Mobility Header (RFC 6275 6.2.x, RFC 4285).
    pub fn alignment(&self) -> (usize, usize) {
        alignment_of(self.opt_type())
    }

    /// RFC 6275 6.2.7 and RFC 4285 5: options that must come last.
    pub fn must_be_last(&self) -> bool {
        must_be_last(self.opt_type())
    }
}

/// Alignment `(x, y)` of an option type; `(1, 0)` for none.
pub fn alignment_of(t: u8) -> (usize, usize) {
    match t {
        opt_type::BINDING_REFRESH_ADVICE | opt_type::NONCE_INDICES => (2, 0),
        opt_type::ALTERNATE_COA => (8, 6),
        opt_type::BINDING_AUTH_DATA | opt_type::MESG_ID => (8, 2),
        opt_type::MESSAGE_AUTH => (4, 1),
        _ => (1, 0),
    }
}

fn must_be_last(t: u8) -> bool {
    t == opt_type::BINDING_AUTH_DATA || t == opt_type::MESSAGE_AUTH
}

fn exact_len(t: u8, data: &[u8], want: usize, expected: &'static str) -> Result<()> {
    if data.len() == want {
        Ok(())
    } else {
        Err(Error::BadOptionLength {
            opt_type: t,
            len: data.len() as u8,
            expected,
        })
    }
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// Parses one non-padding option found at `offset` (from the MH start).
fn parse_one(t: u8, offset: usize, data: &[u8]) -> Result<MobilityOption> {
    let (x, y) = alignment_of(t);
    if !tlv::is_aligned(offset, x, y) {
        return Err(Error::BadOptionAlignment {
            opt_type: t,
            offset,
            x: x as u8,
            y: y as u8,
        });
    }
    Ok(match t {
        opt_type::BINDING_REFRESH_ADVICE => {
            exact_len(t, data, 2, "2")?;
            MobilityOption::BindingRefreshAdvice {
                refresh_interval: be16(data, 0),
            }
        }
        opt_type::ALTERNATE_COA => {
            exact_len(t, data, 16, "16")?;
            MobilityOption::AlternateCoa(addr_at(data, 0))
        }
        opt_type::NONCE_INDICES => {
            exact_len(t, data, 4, "4")?;
            MobilityOption::NonceIndices {
                home_nonce_index: be16(data, 0),
                care_of_nonce_index: be16(data, 2),
            }
        }
        opt_type::BINDING_AUTH_DATA => {
            exact_len(t, data, AUTHENTICATOR_LEN, "12")?;
            let mut authenticator = [0u8; AUTHENTICATOR_LEN];
            authenticator.copy_from_slice(data);
            MobilityOption::BindingAuthData { authenticator }
        }
        opt_type::MESSAGE_AUTH => {
            if data.len() < 5 {
                return Err(Error::BadOptionLength {
                    opt_type: t,
                    len: data.len() as u8,
                    expected: "at least 5",
                });
            }
            MobilityOption::MessageAuth(MessageAuth {
                subtype: data[0],
                spi: u32::from_be_bytes([data[1], data[2], data[3], data[4]]),
                auth_data: data[5..].to_vec(),
            })
        }
        opt_type::MESG_ID => {
            exact_len(t, data, 8, "8")?;
            let mut ts = [0u8; 8];
            ts.copy_from_slice(data);
            MobilityOption::MesgId {
                timestamp: u64::from_be_bytes(ts),
            }
        }
        _ => MobilityOption::Unknown {
            opt_type: t,
            data: data.to_vec(),
        },
    })
}

/// Parses the options in `mh[start..mh.len()]` (`mh` is the whole Mobility
/// Header, so offsets and alignment count from its start). Padding is
/// dropped; an authentication option may only be followed by padding (or,
/// for RFC 4285, by a further Mobility Message Authentication option).
pub fn parse_options(mh: &[u8], start: usize) -> Result<Vec<MobilityOption>> {
    // Count first so the vector is allocated once, exactly (no doubling).
    let n = OptionIter::new(mh, start, mh.len(), "mobility option")
        .filter(|o| o.as_ref().is_ok_and(|o| !o.is_padding()))
        .count();
    let mut out = Vec::with_capacity(n);
    let mut last: Option<u8> = None;
    for o in OptionIter::new(mh, start, mh.len(), "mobility option") {
        let o = o?;
        if o.is_padding() {
            continue;
        }
        if let Some(prev) = last
            && !(prev == opt_type::MESSAGE_AUTH && o.opt_type == opt_type::MESSAGE_AUTH)
        {
            return Err(Error::OptionNotLast { opt_type: prev });
        }
        let opt = parse_one(o.opt_type, o.offset, o.data)?;
        if opt.must_be_last() {
            last = Some(o.opt_type);
        }
        out.push(opt);
    }
    Ok(out)
}

/// The order options are emitted in: as given, but options that must be
/// last are moved to the end (stable).
fn emit_order(options: &[MobilityOption]) -> impl Iterator<Item = &MobilityOption> {
    options
        .iter()
        .filter(|o| !o.must_be_last())
        .chain(options.iter().filter(|o| o.must_be_last()))
}

/// Padding before `o` at `pos`. The RFC 4285 authentication option (4n+1)
/// is placed, when it is the final option, so that it ends on an 8-octet
/// boundary and needs no padding after it (it must be last).
fn pad_before(o: &MobilityOption, pos: usize, is_final: bool) -> usize {
    let (x, y) = o.alignment();
    if o.opt_type() == opt_type::MESSAGE_AUTH && is_final {
        let wire = 2 + o.data_len();
        if let Some(p) = (0..8).find(|p| (pos + p) % 4 == 1 && (pos + p + wire).is_multiple_of(8)) {
            return p;
        }
    }
    tlv::align_pad(pos, x, y)
}

/// Total Mobility Header length when `options` follow fixed message data
/// ending at `start`: options aligned, padded to a multiple of 8.
pub fn emitted_len(start: usize, options: &[MobilityOption]) -> usize {
    let n = options.len();
    let mut pos = start;
    for (i, o) in emit_order(options).enumerate() {
        pos += pad_before(o, pos, i + 1 == n) + 2 + o.data_len();
    }
    pos.div_ceil(8) * 8
}

/// Writes `options` into `mh` from `start` to `mh.len()`, which must be
/// [`emitted_len`]`(start, options)` long, with all padding.
pub fn emit_options(mh: &mut [u8], start: usize, options: &[MobilityOption]) -> Result<()> {
    let n = options.len();
    let mut pos = start;
    for (i, o) in emit_order(options).enumerate() {
        let pad = pad_before(o, pos, i + 1 == n);
        let dlen = o.data_len();
        let l = u8::try_from(dlen).map_err(|_| Error::OptionTooLong(dlen))?;
        let need = pos + pad + 2 + dlen;
        let have = mh.len();
        let buf = mh
            .get_mut(pos..need)
            .ok_or(Error::BufferTooSmall { need, have })?;
        tlv::write_padding(buf, pad);
        let (hdr, data) = buf[pad..].split_at_mut(2);
        hdr[0] = o.opt_type();
        hdr[1] = l;
        match o {
            MobilityOption::BindingRefreshAdvice { refresh_interval } => {
                data.copy_from_slice(&refresh_interval.to_be_bytes());
            }
            MobilityOption::AlternateCoa(a) => data.copy_from_slice(&a.octets()),
            MobilityOption::NonceIndices {
                home_nonce_index,
                care_of_nonce_index,
            } => {
                data[..2].copy_from_slice(&home_nonce_index.to_be_bytes());
                data[2..].copy_from_slice(&care_of_nonce_index.to_be_bytes());
            }
            MobilityOption::BindingAuthData { authenticator } => {
                data.copy_from_slice(authenticator)
            }
            MobilityOption::MessageAuth(a) => {
                data[0] = a.subtype;
                data[1..5].copy_from_slice(&a.spi.to_be_bytes());
                data[5..].copy_from_slice(&a.auth_data);
            }
            MobilityOption::MesgId { timestamp } => data.copy_from_slice(&timestamp.to_be_bytes()),
            MobilityOption::Unknown { data: d, .. } => data.copy_from_slice(d),
        }
        pos = need;
    }
    let have = mh.len();
    let rest = mh
        .get_mut(pos..)
        .ok_or(Error::BufferTooSmall { need: pos, have })?;
    let n = rest.len();
    tlv::write_padding(rest, n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(start: usize, opts: &[MobilityOption]) -> Vec<u8> {
        let mut v = vec![0xeeu8; emitted_len(start, opts)];
        emit_options(&mut v, start, opts).unwrap();
        v
    }

    #[test]
    fn bu_with_rr_options_layout() {
        // BU options start at 12: ACoA at 14 (PadN 2), NI at 32, BAD at 42 (PadN 4).
        let opts = vec![
            MobilityOption::AlternateCoa("2001:db8::7".parse().unwrap()),
            MobilityOption::NonceIndices {
                home_nonce_index: 3,
                care_of_nonce_index: 4,
            },
            MobilityOption::BindingAuthData {
                authenticator: [9; 12],
            },
        ];
        let v = emit(12, &opts);
        assert_eq!(v.len(), 56);
        assert_eq!(&v[12..14], &[1, 0]);
        assert_eq!(&v[14..16], &[3, 16]);
        assert_eq!(&v[32..38], &[4, 4, 0, 3, 0, 4]);
        assert_eq!(&v[38..42], &[1, 2, 0, 0]);
        assert_eq!(&v[42..44], &[5, 12]);
        assert_eq!(parse_options(&v, 12).unwrap(), opts);
    }

    #[test]
    fn auth_option_ends_on_8() {
        let opts = vec![
            MobilityOption::MessageAuth(MessageAuth {
                subtype: 1,
                spi: 0x100,
                auth_data: vec![7; 12],
            }),
            MobilityOption::MesgId {
                timestamp: 0x0102_0304_0506_0708,
            },
        ];
        let v = emit(12, &opts);
        // Mesg-ID moved first: at 18 (8n+2), then auth at 29 (4n+1), end 48.
        assert_eq!(v.len(), 48);
        assert_eq!(v[18], opt_type::MESG_ID);
        assert_eq!(v[29], opt_type::MESSAGE_AUTH);
        assert_eq!(
            parse_options(&v, 12).unwrap(),
            vec![opts[1].clone(), opts[0].clone()]
        );
        // Alone after 16 fixed octets: 4n+1 and ending on 8 gives 21.
        let v = emit(16, &opts[..1]);
        assert_eq!(v.len(), 40);
        assert_eq!(v[21], opt_type::MESSAGE_AUTH);
    }

    #[test]
    fn rejects_bad_alignment_length_and_order() {
        // Nonce indices at odd offset 13.
        let v = [
            0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 0, 1, 0, 2, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            parse_options(&v, 12),
            Err(Error::BadOptionAlignment {
                opt_type: 4,
                offset: 13,
                x: 2,
                y: 0
            })
        );
        let v = [
            0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            parse_options(&v, 12),
            Err(Error::BadOptionLength {
                opt_type: 4,
                len: 3,
                expected: "4"
            })
        );
        let mut v = emit(
            12,
            &[MobilityOption::BindingAuthData {
                authenticator: [1; 12],
            }],
        );
        v.extend_from_slice(&[4, 4, 0, 1, 0, 2, 0, 0]);
        assert_eq!(
            parse_options(&v, 12),
            Err(Error::OptionNotLast { opt_type: 5 })
        );
        // Unknown options are preserved; padding after auth is fine.
        let opts = vec![MobilityOption::Unknown {
            opt_type: 200,
            data: vec![1, 2, 3],
        }];
        assert_eq!(parse_options(&emit(12, &opts), 12).unwrap(), opts);
    }
}
