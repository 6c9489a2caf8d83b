//! Generic packet tunneling in IPv6 (RFC 2473): an IPv6 packet carried as
//! the payload of an outer IPv6 header with next header 41. The home agent
//! tunnels packets for a registered home address to the care-of address
//! this way (RFC 6275 10.4.1), and the mobile node tunnels back (10.4.5).

use std::net::Ipv6Addr;

use super::error::{Error, Result};
use super::ext_chain::ExtChain;
use super::ip_proto;
use super::ipv6::{IPV6_HEADER_LEN, Ipv6Packet, Ipv6Repr};

/// Octets added by encapsulation (one fixed IPv6 header).
pub const TUNNEL_OVERHEAD: usize = IPV6_HEADER_LEN;

/// Outer header parameters of a tunnel entry point (RFC 2473 3, 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelParams {
    /// Tunnel entry-point address.
    pub src: Ipv6Addr,
    /// Tunnel exit-point address.
    pub dst: Ipv6Addr,
    /// Outer hop limit.
    pub hop_limit: u8,
    /// Outer traffic class; `None` copies the inner packet's.
    pub traffic_class: Option<u8>,
    /// Outer flow label.
    pub flow_label: u32,
}

impl TunnelParams {
    /// Entry point `src`, exit point `dst`, hop limit 64, traffic class
    /// copied from the inner packet, flow label 0.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        TunnelParams {
            src,
            dst,
            hop_limit: 64,
            traffic_class: None,
            flow_label: 0,
        }
    }

    /// The outer header for an inner packet of `inner_len` octets and
    /// traffic class `inner_tc`.
    pub fn outer_repr(&self, inner_len: usize, inner_tc: u8) -> Result<Ipv6Repr> {
        if inner_len > usize::from(u16::MAX) {
            return Err(Error::PayloadTooLong(inner_len));
        }
        Ok(Ipv6Repr {
            src_addr: self.src,
            dst_addr: self.dst,
            next_header: ip_proto::IPV6,
            payload_len: inner_len,
            hop_limit: self.hop_limit,
            traffic_class: self.traffic_class.unwrap_or(inner_tc),
            flow_label: self.flow_label,
        })
    }
}

/// Writes `outer IPv6 | inner` into `out`; returns the length written. The
/// inner packet must be a valid IPv6 packet (bytes past its payload length
/// are not copied).
pub fn encapsulate(inner: &[u8], params: &TunnelParams, out: &mut [u8]) -> Result<usize> {
    let ip = Ipv6Packet::new_checked(inner)?;
    let inner = ip.packet_bytes();
    let total = TUNNEL_OVERHEAD + inner.len();
    let have = out.len();
    let out = out
        .get_mut(..total)
        .ok_or(Error::BufferTooSmall { need: total, have })?;
    params
        .outer_repr(inner.len(), ip.traffic_class())?
        .emit_into(out)?;
    out[TUNNEL_OVERHEAD..].copy_from_slice(inner);
    Ok(total)
}

/// [`encapsulate`] into a new vector.
pub fn encapsulate_vec(inner: &[u8], params: &TunnelParams) -> Result<Vec<u8>> {
    let ip = Ipv6Packet::new_checked(inner)?;
    let mut v = vec![0u8; TUNNEL_OVERHEAD + ip.total_len()];
    encapsulate(inner, params, &mut v)?;
    Ok(v)
}

/// The result of [`decapsulate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// Outer source (the tunnel entry point).
    pub outer_src: Ipv6Addr,
    /// Outer destination (the tunnel exit point).
    pub outer_dst: Ipv6Addr,
    /// Offset of the inner packet in the outer packet.
    pub inner_offset: usize,
    /// The inner packet, exactly (`40 + its payload length` octets).
    pub inner: &'a [u8],
}

impl<'a> Decapsulated<'a> {
    /// The inner packet as a view.
    pub fn inner_packet(&self) -> Ipv6Packet<&'a [u8]> {
        Ipv6Packet::new_unchecked(self.inner)
    }
}

/// Validates an IPv6-in-IPv6 packet and returns the inner packet: the outer
/// chain (extension headers such as a tunnel encapsulation limit option
/// are walked) must end in next header 41, and the inner packet must be
/// IPv6 whose length fills the rest of the outer payload exactly.
pub fn decapsulate(packet: &[u8]) -> Result<Decapsulated<'_>> {
    let chain = ExtChain::walk(packet)?;
    if chain.is_non_first_fragment() {
        return Err(Error::NonFirstFragment);
    }
    let inner_offset = chain
        .inner_offset()
        .ok_or(Error::NotIpv6InIpv6(chain.upper_proto()))?;
    let rest = chain.upper_bytes(packet);
    let ip = Ipv6Packet::new_checked(rest)?;
    if ip.total_len() != rest.len() {
        return Err(Error::BadInnerLength {
            inner: ip.total_len(),
            outer: rest.len(),
        });
    }
    let outer = Ipv6Packet::new_unchecked(packet);
    Ok(Decapsulated {
        outer_src: outer.src_addr(),
        outer_dst: outer.dst_addr(),
        inner_offset,
        inner: rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Vec<u8> {
        let mut v = vec![0u8; 48];
        Ipv6Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8:1::1".parse().unwrap(),
            next_header: ip_proto::NO_NEXT_HEADER,
            payload_len: 8,
            hop_limit: 63,
            traffic_class: 0x20,
            flow_label: 5,
        }
        .emit_into(&mut v)
        .unwrap();
        v[40..].copy_from_slice(b"payload!");
        v
    }

    #[test]
    fn round_trip() {
        let p = TunnelParams::new(
            "2001:db8:ff::1".parse().unwrap(),
            "2001:db8:ee::2".parse().unwrap(),
        );
        let i = inner();
        let o = encapsulate_vec(&i, &p).unwrap();
        assert_eq!(o.len(), 88);
        let op = Ipv6Packet::new_checked(&o[..]).unwrap();
        assert_eq!(
            (op.next_header(), op.payload_len(), op.traffic_class()),
            (41, 48, 0x20)
        );
        let d = decapsulate(&o).unwrap();
        assert_eq!(d.inner, &i[..]);
        assert_eq!(d.inner_offset, 40);
        assert_eq!(d.outer_src, p.src);
    }

    #[test]
    fn rejects_wrong_outer_and_inner() {
        let p = TunnelParams::new(
            "2001:db8:ff::1".parse().unwrap(),
            "2001:db8:ee::2".parse().unwrap(),
        );
        let mut o = encapsulate_vec(&inner(), &p).unwrap();
        o[6] = 59;
        assert_eq!(decapsulate(&o), Err(Error::NotIpv6InIpv6(59)));
        o[6] = 41;
        o[40 + 5] = 7; // inner payload length 7 instead of 8
        assert_eq!(
            decapsulate(&o),
            Err(Error::BadInnerLength {
                inner: 47,
                outer: 48
            })
        );
        o[40 + 5] = 9;
        assert!(matches!(decapsulate(&o), Err(Error::Truncated { .. })));
        o[40] = 0x45;
        assert_eq!(decapsulate(&o), Err(Error::BadIpVersion(4)));
    }
}
