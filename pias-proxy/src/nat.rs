//! Packet-level helpers of the PIAS datapath: read the 5-tuple of an IPv6
//! TCP/UDP packet and rewrite its addresses and ports in place with an
//! incremental checksum update (RFC 1624), the JAP's NAT towards targets
//! (seed 001 figure 2: `JAP:q = NAT(AC:p)`). Tunnelling between proxies uses
//! `mip6_anycast::wire::edit` (RFC 2473 IPv6-in-IPv6).

use std::net::Ipv6Addr;

use mip6_anycast::wire::{IPV6_HEADER_LEN, Ipv6Packet, TunnelParams, edit, ip6ip6, transport};

use crate::group::PROTO_UDP;

/// Why a packet cannot be handled by the PIAS datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PacketError {
    /// Not an IPv6 packet, or shorter than its header says.
    #[error("malformed IPv6 packet")]
    Malformed,
    /// Not TCP or UDP directly after the IPv6 header.
    #[error("not TCP/UDP")]
    NotTransport,
    /// Transport header cut short.
    #[error("truncated transport header")]
    Truncated,
    /// Encapsulation/decapsulation failed.
    #[error("tunnel edit failed")]
    Tunnel,
}

/// The 5-tuple of a packet (the engine's wire type).
pub type Flow = transport::TransportFlow;

fn packet_error(e: mip6_anycast::wire::Error) -> PacketError {
    match e {
        mip6_anycast::wire::Error::NotTransport(_) => PacketError::NotTransport,
        mip6_anycast::wire::Error::Truncated {
            what: "transport header",
            ..
        } => PacketError::Truncated,
        _ => PacketError::Malformed,
    }
}

/// Reads the flow of a plain IPv6 TCP/UDP packet (no extension headers).
pub fn flow_of(packet: &[u8]) -> Result<Flow, PacketError> {
    transport::flow_of(packet).map_err(packet_error)
}

/// Rewrites source and destination (address and port) of a TCP/UDP packet
/// in place, fixing the transport checksum incrementally (RFC 1624; the
/// same code the engine's NAT bindings run).
pub fn rewrite(
    packet: &mut [u8],
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
) -> Result<(), PacketError> {
    transport::translate(packet, src, dst, transport::ChecksumState::Complete)
        .map(|_| ())
        .map_err(packet_error)
}

/// A complete IPv6/UDP packet (checksum filled in), e.g. a join
/// acknowledgement sent from the group's address `AA:control`.
pub fn udp_packet(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), payload: &[u8]) -> Option<Vec<u8>> {
    let l4_len = u16::try_from(8 + payload.len()).ok()?;
    let mut p = vec![0u8; IPV6_HEADER_LEN + usize::from(l4_len)];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&l4_len.to_be_bytes());
    p[6] = PROTO_UDP;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.0.octets());
    p[24..40].copy_from_slice(&dst.0.octets());
    let l4 = &mut p[IPV6_HEADER_LEN..];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    l4[4..6].copy_from_slice(&l4_len.to_be_bytes());
    l4[8..].copy_from_slice(payload);
    let mut c = mip6_anycast::wire::checksum::compute(&src.0, &dst.0, PROTO_UDP, l4);
    if c == 0 {
        c = 0xffff;
    }
    l4[6..8].copy_from_slice(&c.to_be_bytes());
    Some(p)
}

/// The UDP payload of a plain IPv6/UDP packet.
pub fn udp_payload(packet: &[u8]) -> Option<&[u8]> {
    let f = flow_of(packet).ok()?;
    if f.proto != PROTO_UDP {
        return None;
    }
    let ip = Ipv6Packet::new_checked(packet).ok()?;
    let l4 = ip.payload();
    let len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
    if len < 8 || len > l4.len() {
        return None;
    }
    let start = IPV6_HEADER_LEN + 8;
    packet.get(start..IPV6_HEADER_LEN + len)
}

/// RFC 2473 encapsulation from `src` to `dst` (proxy to proxy, or JAP to a
/// target that decapsulates).
pub fn encapsulate(inner: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<Vec<u8>, PacketError> {
    edit::encapsulate_vec(inner, &TunnelParams::new(src, dst)).map_err(|_| PacketError::Tunnel)
}

/// RFC 2473 decapsulation: (outer source, inner packet).
pub fn decapsulate(outer: &[u8]) -> Result<(Ipv6Addr, Vec<u8>), PacketError> {
    let d = ip6ip6::decapsulate(outer).map_err(|_| PacketError::Tunnel)?;
    let src = Ipv6Packet::new_checked(outer)
        .map_err(|_| PacketError::Malformed)?
        .src_addr();
    Ok((src, d.inner_packet().packet_bytes().to_vec()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::group::PROTO_TCP;

    /// A valid IPv6 TCP or UDP packet with payload.
    pub(crate) fn packet(proto: u8, src: (&str, u16), dst: (&str, u16), syn: bool) -> Vec<u8> {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let flags = if syn { 0x02 } else { 0x10 };
        transport::emit_plain(proto, (a(src.0), src.1), (a(dst.0), dst.1), flags, b"hello")
    }

    fn valid(p: &[u8]) -> bool {
        transport::checksum_ok(p)
    }

    #[test]
    fn rewrite_keeps_checksums_valid() {
        for proto in [PROTO_TCP, PROTO_UDP] {
            let mut p = packet(
                proto,
                ("2001:db8:c::1", 40000),
                ("2001:db8:aa::1", 80),
                true,
            );
            assert!(valid(&p));
            rewrite(
                &mut p,
                ("2001:db8:1::9".parse().unwrap(), 20001),
                ("2001:db8:d::5".parse().unwrap(), 8080),
            )
            .unwrap();
            assert!(valid(&p), "proto {proto}");
            let f = flow_of(&p).unwrap();
            assert_eq!((f.sport, f.dport), (20001, 8080));
            assert_eq!(f.dst, "2001:db8:d::5".parse::<Ipv6Addr>().unwrap());
        }
    }

    #[test]
    fn hostile_packets_are_typed_errors() {
        let p = packet(
            PROTO_TCP,
            ("2001:db8:c::1", 1),
            ("2001:db8:aa::1", 2),
            false,
        );
        for n in 0..p.len() {
            // Any truncation: error, never a panic.
            let r = flow_of(&p[..n]);
            assert!(r.is_err(), "len {n}");
        }
        let mut icmp = p.clone();
        icmp[6] = 58;
        assert_eq!(flow_of(&icmp), Err(PacketError::NotTransport));
        let mut v4 = p.clone();
        v4[0] = 0x40;
        assert!(flow_of(&v4).is_err());
        assert!(decapsulate(&p).is_err());
    }

    #[test]
    fn tunnel_round_trip() {
        let p = packet(
            PROTO_UDP,
            ("2001:db8:c::1", 1),
            ("2001:db8:aa::1", 2),
            false,
        );
        let a: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
        let t = encapsulate(&p, a, b).unwrap();
        assert_eq!(t.len(), p.len() + 40);
        let (src, inner) = decapsulate(&t).unwrap();
        assert_eq!((src, inner), (a, p));
    }
}
