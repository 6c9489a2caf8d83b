//! TCP segments captured while a connection was frozen, and the IPv4/IPv6
//! packets they are rebuilt into for re-injection.
//!
//! Only what re-injection needs is kept: the TCP header fields, its options
//! and the payload. Addresses are not stored: the acceptor rebuilds the
//! packet with the connection's (possibly overridden) endpoints, so a forged
//! segment can never be aimed at anything but the restored connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::state::seq_after;

/// TCP FIN flag (RFC 9293 3.1).
pub const FIN: u8 = 0x01;
/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP RST flag.
pub const RST: u8 = 0x04;
/// TCP PSH flag.
pub const PSH: u8 = 0x08;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;

/// Largest TCP payload a rebuilt IPv6 packet can carry without a jumbogram.
pub const MAX_SEGMENT_PAYLOAD: usize = 65535 - 60;

/// One TCP segment that the peer sent while the connection was frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedSegment {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags byte (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).
    pub flags: u8,
    /// Advertised window (unscaled, as on the wire).
    pub window: u16,
    /// TCP options as on the wire (at most 40 bytes, a multiple of 4).
    pub options: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Addresses and segment parsed from one captured IP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPacket {
    /// Source endpoint.
    pub src: SocketAddr,
    /// Destination endpoint.
    pub dst: SocketAddr,
    /// The segment.
    pub segment: CapturedSegment,
}

impl CapturedSegment {
    /// Sequence number after this segment (SYN and FIN count one each).
    pub fn end_seq(&self) -> u32 {
        let mut len = self.payload.len() as u32;
        if self.flags & SYN != 0 {
            len = len.wrapping_add(1);
        }
        if self.flags & FIN != 0 {
            len = len.wrapping_add(1);
        }
        self.seq.wrapping_add(len)
    }

    /// Whether this segment carries something a receiver at `rcv_nxt` has
    /// not seen: data or FIN beyond `rcv_nxt`, or a reset.
    pub fn carries_news_after(&self, rcv_nxt: u32) -> bool {
        self.flags & RST != 0 || seq_after(self.end_seq(), rcv_nxt)
    }

    /// Rejects what could not have come from an established peer or could
    /// not be rebuilt: SYN, oversized options or payload.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.flags & SYN != 0 {
            return Err(ValidationError::Captured(
                "SYN in an established connection",
            ));
        }
        if self.options.len() > 40 || !self.options.len().is_multiple_of(4) {
            return Err(ValidationError::Captured(
                "TCP options longer than 40 or unaligned",
            ));
        }
        if self.payload.len() > MAX_SEGMENT_PAYLOAD {
            return Err(ValidationError::Captured("payload too long"));
        }
        Ok(())
    }

    /// Builds the IP packet `remote -> local` carrying this segment, with a
    /// correct TCP checksum (IPv4 when the addresses are IPv4 or IPv4-mapped).
    pub fn to_packet(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<Vec<u8>, ValidationError> {
        self.validate()?;
        let tcp_len = 20 + self.options.len() + self.payload.len();
        let mut tcp = Vec::with_capacity(tcp_len);
        tcp.extend_from_slice(&remote.port().to_be_bytes());
        tcp.extend_from_slice(&local.port().to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        let data_offset = ((20 + self.options.len()) / 4) as u8;
        tcp.push(data_offset << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&self.window.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        tcp.extend_from_slice(&self.options);
        tcp.extend_from_slice(&self.payload);
        match (wire_v4(local.ip()), wire_v4(remote.ip())) {
            (Some(dst), Some(src)) => {
                let sum = checksum(&[&pseudo_v4(src, dst, tcp_len), &tcp]);
                tcp[16..18].copy_from_slice(&sum.to_be_bytes());
                let total = 20 + tcp_len;
                let mut ip = Vec::with_capacity(total);
                ip.extend_from_slice(&[0x45, 0]);
                ip.extend_from_slice(&(total as u16).to_be_bytes());
                ip.extend_from_slice(&[0, 0, 0x40, 0]); // id 0, DF
                ip.extend_from_slice(&[64, 6, 0, 0]); // ttl, proto TCP, csum
                ip.extend_from_slice(&src.octets());
                ip.extend_from_slice(&dst.octets());
                let hsum = checksum(&[&ip]);
                ip[10..12].copy_from_slice(&hsum.to_be_bytes());
                ip.extend_from_slice(&tcp);
                Ok(ip)
            }
            (None, None) => {
                let (IpAddr::V6(dst), IpAddr::V6(src)) = (local.ip(), remote.ip()) else {
                    return Err(ValidationError::Captured("address family mismatch"));
                };
                let sum = checksum(&[&pseudo_v6(&src, &dst, tcp_len), &tcp]);
                tcp[16..18].copy_from_slice(&sum.to_be_bytes());
                let mut ip = Vec::with_capacity(40 + tcp_len);
                ip.extend_from_slice(&[0x60, 0, 0, 0]);
                ip.extend_from_slice(&(tcp_len as u16).to_be_bytes());
                ip.extend_from_slice(&[6, 64]); // next header TCP, hop limit
                ip.extend_from_slice(&src.octets());
                ip.extend_from_slice(&dst.octets());
                ip.extend_from_slice(&tcp);
                Ok(ip)
            }
            _ => Err(ValidationError::Captured("address family mismatch")),
        }
    }
}

/// The IPv4 address carried on the wire for `ip`, if the wire is IPv4.
pub(crate) fn wire_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, tcp_len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, 6]);
    p.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    p
}

fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, tcp_len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(tcp_len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 6]);
    p
}

/// RFC 1071 Internet checksum over the concatenation of `parts`.
pub(crate) fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u64::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses an IPv4 or IPv6 packet (network header first, no extension
/// headers) carrying one TCP segment. Returns `None` for anything else:
/// truncated, fragmented, another protocol.
pub fn parse_packet(pkt: &[u8]) -> Option<ParsedPacket> {
    let version = pkt.first()? >> 4;
    let (src_ip, dst_ip, tcp): (IpAddr, IpAddr, &[u8]) = match version {
        4 => {
            let ihl = usize::from(pkt.first()? & 0x0f) * 4;
            let total = usize::from(be16(pkt, 2)?);
            let frag = be16(pkt, 6)?;
            if ihl < 20 || total < ihl || *pkt.get(9)? != 6 || frag & 0x3fff != 0 {
                return None;
            }
            let src: [u8; 4] = pkt.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = pkt.get(16..20)?.try_into().ok()?;
            (src.into(), dst.into(), pkt.get(ihl..total)?)
        }
        6 => {
            let plen = usize::from(be16(pkt, 4)?);
            if *pkt.get(6)? != 6 {
                return None;
            }
            let src: [u8; 16] = pkt.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = pkt.get(24..40)?.try_into().ok()?;
            (src.into(), dst.into(), pkt.get(40..40 + plen)?)
        }
        _ => return None,
    };
    let data_offset = usize::from(tcp.get(12)? >> 4) * 4;
    if data_offset < 20 || data_offset > tcp.len() {
        return None;
    }
    let segment = CapturedSegment {
        seq: be32(tcp, 4)?,
        ack: be32(tcp, 8)?,
        flags: *tcp.get(13)?,
        window: be16(tcp, 14)?,
        options: tcp.get(20..data_offset)?.to_vec(),
        payload: tcp.get(data_offset..)?.to_vec(),
    };
    Some(ParsedPacket {
        src: SocketAddr::new(src_ip, be16(tcp, 0)?),
        dst: SocketAddr::new(dst_ip, be16(tcp, 2)?),
        segment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg() -> CapturedSegment {
        CapturedSegment {
            seq: 100,
            ack: 200,
            flags: ACK | PSH,
            window: 512,
            options: vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
            payload: b"hello".to_vec(),
        }
    }

    #[test]
    fn v6_roundtrip_and_checksum() {
        let local: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        let remote: SocketAddr = "[2001:db8::2]:4000".parse().unwrap();
        let pkt = seg().to_packet(local, remote).unwrap();
        let p = parse_packet(&pkt).unwrap();
        assert_eq!(p.src, remote);
        assert_eq!(p.dst, local);
        assert_eq!(p.segment, seg());
        // The checksum over pseudo-header + segment verifies to zero.
        let tcp = &pkt[40..];
        let IpAddr::V6(s) = remote.ip() else {
            unreachable!()
        };
        let IpAddr::V6(d) = local.ip() else {
            unreachable!()
        };
        assert_eq!(checksum(&[&pseudo_v6(&s, &d, tcp.len()), tcp]), 0);
    }

    #[test]
    fn v4_and_mapped_build_ipv4() {
        let local: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        let remote: SocketAddr = "[::ffff:192.0.2.2]:4000".parse().unwrap();
        let pkt = seg().to_packet(local, remote).unwrap();
        assert_eq!(pkt[0], 0x45);
        assert_eq!(checksum(&[&pkt[..20]]), 0);
        let p = parse_packet(&pkt).unwrap();
        assert_eq!(p.dst, "192.0.2.1:80".parse().unwrap());
        assert_eq!(p.segment.payload, b"hello");
    }

    #[test]
    fn rejects_bad_segments_and_packets() {
        let local: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        let remote: SocketAddr = "192.0.2.2:4000".parse().unwrap();
        assert!(seg().to_packet(local, remote).is_err());
        let mut s = seg();
        s.flags |= SYN;
        assert!(s.validate().is_err());
        let mut s = seg();
        s.options = vec![0; 44];
        assert!(s.validate().is_err());
        // Every truncation of a valid packet parses to None or a shorter
        // payload, never panics.
        let pkt = seg()
            .to_packet(
                "[2001:db8::1]:80".parse().unwrap(),
                "[2001:db8::2]:1".parse().unwrap(),
            )
            .unwrap();
        for cut in 0..pkt.len() {
            let _ = parse_packet(&pkt[..cut]);
        }
        assert!(parse_packet(&pkt[..50]).is_none());
    }

    #[test]
    fn news() {
        let mut s = seg();
        assert!(s.carries_news_after(100));
        assert!(s.carries_news_after(104));
        assert!(!s.carries_news_after(105));
        s.flags = FIN | ACK;
        assert!(s.carries_news_after(105));
        s.payload.clear();
        s.flags = ACK;
        assert!(!s.carries_news_after(100));
        s.flags = RST;
        assert!(s.carries_news_after(100));
    }
}
