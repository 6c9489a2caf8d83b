//! Routing header (RFC 8200 4.4) view, and the Type 2 Routing Header of
//! Mobile IPv6 (RFC 6275 6.4) as a `Repr`. Other routing types are
//! identified (type, segments left) but not processed.

use std::net::Ipv6Addr;

use super::dest_opts::is_valid_home_address;
use super::error::{Error, Result, need};
use super::ipv6::addr_at;

/// Routing type of the Mobile IPv6 routing header.
pub const ROUTING_TYPE_2: u8 = 2;
/// Length of a Type 2 Routing Header.
pub const RH2_LEN: usize = 24;
/// Offset of the home address inside a Type 2 Routing Header.
pub const RH2_HOA_OFFSET: usize = 8;

super::view::view!(
    /// Zero-copy view of any routing header.
    RoutingHeader
);
super::view::ext_header_fields!(RoutingHeader);

impl<T: AsRef<[u8]>> RoutingHeader<T> {
    /// Checks the fixed part and `header_len()` octets are present.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        need("routing header", 8, len)?;
        need("routing header", self.header_len(), len)
    }

    /// Routing type (2 for Mobile IPv6; 0 deprecated, 3 RPL, 4 SRH, ...).
    pub fn routing_type(&self) -> u8 {
        self.buffer.as_ref()[2]
    }

    /// Segments left.
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[3]
    }

    /// Checks the RFC 6275 6.4 shape: type 2, hdr ext len 2, segments left 1.
    pub fn check_rh2(&self) -> Result<()> {
        if self.routing_type() != ROUTING_TYPE_2 {
            return Err(Error::NotRh2(self.routing_type()));
        }
        if self.hdr_ext_len() != 2 || self.segments_left() != 1 {
            return Err(Error::BadRh2 {
                hdr_ext_len: self.hdr_ext_len(),
                segments_left: self.segments_left(),
            });
        }
        Ok(())
    }

    /// The home address of a Type 2 Routing Header (call after [`Self::check_rh2`]).
    pub fn home_address(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), RH2_HOA_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RoutingHeader<T> {
    /// Sets segments left.
    pub fn set_segments_left(&mut self, sl: u8) {
        self.buffer.as_mut()[3] = sl;
    }

    /// Sets the home address of a Type 2 Routing Header.
    pub fn set_home_address(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[RH2_HOA_OFFSET..RH2_HOA_OFFSET + 16].copy_from_slice(&a.octets());
    }
}

/// A Type 2 Routing Header (RFC 6275 6.4): one home address, segments left 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rh2Repr {
    /// Next header.
    pub next_header: u8,
    /// The home address of the destination mobile node.
    pub home_address: Ipv6Addr,
}

impl Rh2Repr {
    /// Parses a Type 2 Routing Header; any other form is an error.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(h: &RoutingHeader<&T>) -> Result<Rh2Repr> {
        h.check_len()?;
        h.check_rh2()?;
        let home_address = h.home_address();
        if !is_valid_home_address(&home_address) {
            return Err(Error::BadHomeAddress(home_address));
        }
        Ok(Rh2Repr {
            next_header: h.next_header(),
            home_address,
        })
    }

    /// Always 24.
    pub const fn buffer_len(&self) -> usize {
        RH2_LEN
    }

    /// Writes the header (reserved field zero).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        h: &mut RoutingHeader<&mut T>,
    ) -> Result<()> {
        self.emit_into(h.buffer.as_mut())
    }

    /// Writes the header into `buf[..24]`.
    pub fn emit_into(&self, buf: &mut [u8]) -> Result<()> {
        let have = buf.len();
        let b = buf.get_mut(..RH2_LEN).ok_or(Error::BufferTooSmall {
            need: RH2_LEN,
            have,
        })?;
        b[..8].copy_from_slice(&[self.next_header, 2, ROUTING_TYPE_2, 1, 0, 0, 0, 0]);
        b[8..].copy_from_slice(&self.home_address.octets());
        Ok(())
    }

    /// Emits into a new array.
    pub fn to_bytes(&self) -> [u8; RH2_LEN] {
        let mut b = [0u8; RH2_LEN];
        // Cannot fail: the array is exactly RH2_LEN long.
        let _ = self.emit_into(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let r = Rh2Repr {
            next_header: 6,
            home_address: "2001:db8:1::7".parse().unwrap(),
        };
        let b = r.to_bytes();
        let h = RoutingHeader::new_checked(&b[..]).unwrap();
        assert_eq!(Rh2Repr::parse(&h).unwrap(), r);

        let mut bad = b;
        bad[3] = 0;
        let h = RoutingHeader::new_checked(&bad[..]).unwrap();
        assert_eq!(
            Rh2Repr::parse(&h),
            Err(Error::BadRh2 {
                hdr_ext_len: 2,
                segments_left: 0
            })
        );
        let mut bad = b;
        bad[2] = 0;
        let h = RoutingHeader::new_checked(&bad[..]).unwrap();
        assert_eq!(Rh2Repr::parse(&h), Err(Error::NotRh2(0)));
        let mut bad = b;
        bad[1] = 4;
        assert!(matches!(
            RoutingHeader::new_checked(&bad[..]),
            Err(Error::Truncated { need: 40, .. })
        ));
        let mut bad = [0u8; 32];
        bad[..24].copy_from_slice(&b);
        bad[1] = 3;
        let h = RoutingHeader::new_checked(&bad[..]).unwrap();
        assert_eq!(
            Rh2Repr::parse(&h),
            Err(Error::BadRh2 {
                hdr_ext_len: 3,
                segments_left: 1
            })
        );
        let mut bad = b;
        bad[8] = 0xff;
        let h = RoutingHeader::new_checked(&bad[..]).unwrap();
        assert!(matches!(Rh2Repr::parse(&h), Err(Error::BadHomeAddress(_))));
    }
}
