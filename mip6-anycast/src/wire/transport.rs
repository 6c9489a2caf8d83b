//! Ports of plain IPv6 TCP/UDP packets and the in-place address and port
//! translation a PIAS join proxy applies toward its targets (seed 001
//! figure 2: `JAP:q = NAT(AC:p)`), with the transport checksum updated
//! incrementally (RFC 1624 eqn. 3), so translating costs the same for a
//! 64 KB GSO packet as for a small one.
//!
//! "Plain" means the transport header directly follows the fixed IPv6
//! header: the proxy datapath translates nothing else.

use std::net::Ipv6Addr;

use super::{Error, IPV6_HEADER_LEN, Ipv6Packet, Result, ip_proto};

/// The 5-tuple (plus whether it opens a TCP connection) of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportFlow {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// [`ip_proto::TCP`] or [`ip_proto::UDP`].
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP SYN without ACK: the start of a connection.
    pub syn: bool,
}

impl TransportFlow {
    /// Whether this packet is identifiably not the start of a connection
    /// (TCP without SYN). UDP packets are never "mid-flow".
    pub fn is_mid_flow(&self) -> bool {
        self.proto == ip_proto::TCP && !self.syn
    }
}

/// Where the checksum field of a packet stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumState {
    /// A finished checksum (RFC 8200 8.1).
    Complete,
    /// Offloaded (`CHECKSUM_PARTIAL`, a TUN's `VIRTIO_NET_HDR_F_NEEDS_CSUM`):
    /// the field holds the folded pseudo-header sum, not complemented; the
    /// transport header and payload are summed later, so changed ports
    /// need no update, changed addresses do.
    Partial,
}

/// Offset of the checksum inside the transport header.
pub fn checksum_offset(proto: u8) -> usize {
    if proto == ip_proto::TCP { 16 } else { 6 }
}

/// Reads the flow of a plain IPv6 TCP/UDP packet.
pub fn flow_of(packet: &[u8]) -> Result<TransportFlow> {
    let ip = Ipv6Packet::new_checked(packet)?;
    let proto = ip.next_header();
    if proto != ip_proto::TCP && proto != ip_proto::UDP {
        return Err(Error::NotTransport(proto));
    }
    let l4 = ip.payload();
    let need = if proto == ip_proto::TCP { 20 } else { 8 };
    if l4.len() < need {
        return Err(Error::Truncated {
            what: "transport header",
            need,
            have: l4.len(),
        });
    }
    let syn = proto == ip_proto::TCP && l4[13] & 0x02 != 0 && l4[13] & 0x10 == 0;
    Ok(TransportFlow {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        syn,
    })
}

fn add_words(mut acc: u32, bytes: &[u8]) -> u32 {
    for c in bytes.chunks_exact(2) {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    acc
}

fn add_complements(mut acc: u32, bytes: &[u8]) -> u32 {
    for c in bytes.chunks_exact(2) {
        acc += u32::from(!u16::from_be_bytes([c[0], c[1]]));
    }
    acc
}

fn fold32(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The words that change: source, destination, source port, destination
/// port (36 octets on the stack: no allocation per packet).
fn changed_words(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16)) -> [u8; 36] {
    let mut w = [0u8; 36];
    w[..16].copy_from_slice(&src.0.octets());
    w[16..32].copy_from_slice(&dst.0.octets());
    w[32..34].copy_from_slice(&src.1.to_be_bytes());
    w[34..].copy_from_slice(&dst.1.to_be_bytes());
    w
}

/// Rewrites source and destination (address and port) of a plain TCP/UDP
/// packet in place and updates its checksum: RFC 1624 `HC' = ~(~HC + ~m +
/// m')` for a complete one; for a partial one the pseudo-header sum `S' =
/// S + ~m + m'` over the addresses only.
pub fn translate(
    packet: &mut [u8],
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    state: ChecksumState,
) -> Result<TransportFlow> {
    let f = flow_of(packet)?;
    let co = IPV6_HEADER_LEN + checksum_offset(f.proto);
    let field = packet.get(co..co + 2).ok_or(Error::Truncated {
        what: "transport checksum",
        need: co + 2,
        have: packet.len(),
    })?;
    let old_csum = u16::from_be_bytes([field[0], field[1]]);
    let old = changed_words((f.src, f.sport), (f.dst, f.dport));
    let new = changed_words(src, dst);
    let csum = match state {
        ChecksumState::Complete => {
            let acc = add_complements(u32::from(!old_csum), &old);
            let c = !fold32(add_words(acc, &new));
            if f.proto == ip_proto::UDP && c == 0 {
                // RFC 8200 8.1: a zero UDP checksum is sent as 0xffff.
                0xffff
            } else {
                c
            }
        }
        ChecksumState::Partial => {
            let acc = add_complements(u32::from(old_csum), &old[..32]);
            fold32(add_words(acc, &new[..32]))
        }
    };
    let mut ip = Ipv6Packet::new_unchecked(&mut *packet);
    ip.set_src_addr(&src.0);
    ip.set_dst_addr(&dst.0);
    let l4 = IPV6_HEADER_LEN;
    packet[l4..l4 + 2].copy_from_slice(&src.1.to_be_bytes());
    packet[l4 + 2..l4 + 4].copy_from_slice(&dst.1.to_be_bytes());
    packet[co..co + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(f)
}

/// True if `packet` is a complete IPv6 packet whose upper-layer checksum
/// verifies (RFC 8200 8.1).
pub fn checksum_ok(packet: &[u8]) -> bool {
    Ipv6Packet::new_checked(packet).is_ok_and(|ip| {
        super::checksum::verify(
            &ip.src_addr(),
            &ip.dst_addr(),
            ip.next_header(),
            ip.payload(),
        )
    })
}

/// Builds a plain IPv6 TCP or UDP packet with a valid checksum (hop limit
/// 64; `tcp_flags` for TCP, e.g. `0x02` SYN, `0x10` ACK): for tests and
/// tools that need real packets.
pub fn emit_plain(
    proto: u8,
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    tcp_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let tcp = proto == ip_proto::TCP;
    let mut l4 = vec![0u8; if tcp { 20 } else { 8 }];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    if tcp {
        l4[12] = 5 << 4;
        l4[13] = tcp_flags;
        l4[14] = 0xff;
    } else {
        let len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
        l4[4..6].copy_from_slice(&len.to_be_bytes());
    }
    l4.extend_from_slice(payload);
    let co = checksum_offset(proto);
    let mut c = super::checksum::compute(&src.0, &dst.0, proto, &l4);
    if !tcp && c == 0 {
        c = 0xffff;
    }
    l4[co..co + 2].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0u8; IPV6_HEADER_LEN];
    p[0] = 0x60;
    let plen = u16::try_from(l4.len()).unwrap_or(u16::MAX);
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p[6] = proto;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.0.octets());
    p[24..40].copy_from_slice(&dst.0.octets());
    p.extend_from_slice(&l4);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    fn packet(proto: u8, src: (&str, u16), dst: (&str, u16), syn: bool) -> Vec<u8> {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let flags = if syn { 0x02 } else { 0x10 };
        emit_plain(proto, (a(src.0), src.1), (a(dst.0), dst.1), flags, b"hello")
    }

    fn valid(p: &[u8]) -> bool {
        checksum_ok(p)
    }

    #[test]
    fn complete_checksums_stay_valid() {
        for proto in [ip_proto::TCP, ip_proto::UDP] {
            let mut p = packet(
                proto,
                ("2001:db8:c::1", 40000),
                ("2001:db8:aa::1", 80),
                true,
            );
            assert!(valid(&p));
            let f = translate(
                &mut p,
                ("2001:db8:1::9".parse().unwrap(), 20001),
                ("2001:db8:d::5".parse().unwrap(), 8080),
                ChecksumState::Complete,
            )
            .unwrap();
            assert_eq!(f.dport, 80);
            assert!(valid(&p), "proto {proto}");
            let g = flow_of(&p).unwrap();
            assert_eq!((g.sport, g.dport), (20001, 8080));
        }
    }

    /// A partial checksum field holds the pseudo-header sum; finishing it
    /// after translation (what the kernel or NIC does) must give a valid
    /// checksum.
    #[test]
    fn partial_checksums_finish_valid() {
        let mut p = packet(
            ip_proto::TCP,
            ("2001:db8:c::1", 40000),
            ("2001:db8:aa::1", 80),
            false,
        );
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        let len = (p.len() - 40) as u32;
        let pseudo = checksum::fold(checksum::pseudo_header_sum(&s, &d, ip_proto::TCP, len));
        p[56..58].copy_from_slice(&pseudo.to_be_bytes());
        translate(
            &mut p,
            ("2001:db8:1::9".parse().unwrap(), 20001),
            ("2001:db8:d::5".parse().unwrap(), 8080),
            ChecksumState::Partial,
        )
        .unwrap();
        // Finish: the sum over the transport bytes, field included.
        let c = !checksum::fold(checksum::sum(0, &p[40..]));
        p[56..58].copy_from_slice(&c.to_be_bytes());
        assert!(valid(&p));
    }

    #[test]
    fn hostile_packets_are_errors() {
        let p = packet(
            ip_proto::TCP,
            ("2001:db8:c::1", 1),
            ("2001:db8:aa::1", 2),
            false,
        );
        for n in 0..p.len() {
            assert!(flow_of(&p[..n]).is_err(), "len {n}");
            let mut q = p[..n].to_vec();
            let a = Ipv6Addr::LOCALHOST;
            assert!(translate(&mut q, (a, 1), (a, 2), ChecksumState::Complete).is_err());
        }
        let mut icmp = p.clone();
        icmp[6] = ip_proto::ICMPV6;
        assert_eq!(flow_of(&icmp), Err(Error::NotTransport(ip_proto::ICMPV6)));
    }
}
