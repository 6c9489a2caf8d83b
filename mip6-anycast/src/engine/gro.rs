//! Coalescing TCP segments back into one GSO packet before they are
//! written into the TUN (user-space GRO).
//!
//! Where the engine receives a bulk TCP stream as single segments (an
//! IPv6-in-IPv6 tunnel: the kernel cannot hand a TUN an encapsulated GSO
//! packet, see [`super::vnet`]), writing each decapsulated segment costs a
//! syscall and a trip through the kernel's receive path. Consecutive
//! segments of one connection read in the same batch are joined instead,
//! following the kernel's own GRO rules (`tcp_gro_receive`): a plain IPv6
//! header followed by TCP, every header octet equal except the payload
//! length, the sequence number, PSH and the checksum; sequence numbers
//! contiguous; every segment but the last of the same size; only ACK or
//! ACK+PSH (PSH ends the run). Only segments whose checksum the kernel
//! left partial or marked valid are joined, so no checksum goes
//! unverified. The result carries a partial checksum and a GSO virtio
//! header; the kernel treats it like one of its own GRO packets.

use super::vnet::{F_DATA_VALID, F_NEEDS_CSUM, GSO_TCPV6, TCP_CSUM_OFFSET, VnetHdr};
use crate::wire::checksum;

const IPV6_HEADER_LEN: usize = 40;
const NH_TCP: u8 = 6;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// Largest joined packet (IPv6 payload length stays within 16 bits, with
/// room for an outer header or RH2 added later).
const MAX_JOINED: usize = 65535 - 64;

/// What [`Coalescer::push`] did with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Joined to (or started) the pending packet.
    Held,
    /// Not a candidate, or it does not continue the pending packet: the
    /// caller flushes ([`Coalescer::take`]) and writes it on its own (or
    /// pushes it again into the emptied coalescer).
    Refused,
}

/// One pending joined packet.
#[derive(Debug)]
pub struct Coalescer {
    buf: Vec<u8>,
    len: usize,
    hdr_len: usize,
    mss: usize,
    segs: usize,
    next_seq: u32,
    /// The pseudo-header sum of the first segment and its TCP length.
    seed: u16,
    seed_len: u32,
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The TCP header length of a joinable segment, else `None`.
fn candidate(pkt: &[u8], h: &VnetHdr) -> Option<usize> {
    if h.is_gso() || (h.flags & (F_NEEDS_CSUM | F_DATA_VALID)) == 0 {
        return None;
    }
    if h.needs_csum()
        && (usize::from(h.csum_start) != IPV6_HEADER_LEN || h.csum_offset != TCP_CSUM_OFFSET)
    {
        return None;
    }
    if pkt.len() < IPV6_HEADER_LEN + 20 || pkt[0] >> 4 != 6 || pkt[6] != NH_TCP {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
    if IPV6_HEADER_LEN + payload != pkt.len() {
        return None;
    }
    let th = usize::from(pkt[IPV6_HEADER_LEN + 12] >> 4) * 4;
    let hlen = IPV6_HEADER_LEN + th;
    let flags = pkt[IPV6_HEADER_LEN + 13];
    if th < 20 || hlen >= pkt.len() || (flags != TCP_ACK && flags != TCP_ACK | TCP_PSH) {
        return None;
    }
    Some(hlen)
}

impl Coalescer {
    /// An empty coalescer (one 64 KB buffer, allocated once).
    pub fn new() -> Self {
        Self {
            buf: vec![0u8; MAX_JOINED],
            len: 0,
            hdr_len: 0,
            mss: 0,
            segs: 0,
            next_seq: 0,
            seed: 0,
            seed_len: 0,
            closed: false,
        }
    }

    /// Nothing pending.
    pub fn is_empty(&self) -> bool {
        self.segs == 0
    }

    /// Joins `pkt` (virtio header `h`) to the pending packet, or starts one
    /// if none is pending.
    pub fn push(&mut self, pkt: &[u8], h: &VnetHdr) -> Push {
        let Some(hlen) = candidate(pkt, h) else {
            return Push::Refused;
        };
        let payload = pkt.len() - hlen;
        let seq = u32_at(pkt, IPV6_HEADER_LEN + 4);
        let flags = pkt[IPV6_HEADER_LEN + 13];
        if self.segs == 0 {
            self.buf[..pkt.len()].copy_from_slice(pkt);
            self.len = pkt.len();
            self.hdr_len = hlen;
            self.mss = payload;
            self.segs = 1;
            self.next_seq = seq.wrapping_add(payload as u32);
            let cs = IPV6_HEADER_LEN + usize::from(TCP_CSUM_OFFSET);
            if h.needs_csum() {
                self.seed = u16::from_be_bytes([pkt[cs], pkt[cs + 1]]);
            } else {
                // A verified full checksum: start from the pseudo-header.
                let src = <[u8; 16]>::try_from(&pkt[8..24]).unwrap_or_default();
                let dst = <[u8; 16]>::try_from(&pkt[24..40]).unwrap_or_default();
                self.seed = checksum::fold(checksum::pseudo_header_sum(
                    &src.into(),
                    &dst.into(),
                    NH_TCP,
                    (pkt.len() - IPV6_HEADER_LEN) as u32,
                ));
            }
            self.seed_len = (pkt.len() - IPV6_HEADER_LEN) as u32;
            self.closed = flags & TCP_PSH != 0;
            return Push::Held;
        }
        let p = &self.buf[..self.hdr_len];
        let t = IPV6_HEADER_LEN;
        let same = hlen == self.hdr_len
            && !self.closed
            && payload <= self.mss
            && seq == self.next_seq
            && self.len + payload <= MAX_JOINED
            && pkt[..4] == p[..4]
            && pkt[6..t + 4] == p[6..t + 4]
            && pkt[t + 8..t + 13] == p[t + 8..t + 13]
            && pkt[t + 14..t + 16] == p[t + 14..t + 16]
            && pkt[t + 18..hlen] == p[t + 18..hlen];
        if !same {
            return Push::Refused;
        }
        self.buf[self.len..self.len + payload].copy_from_slice(&pkt[hlen..]);
        self.len += payload;
        self.segs += 1;
        self.next_seq = seq.wrapping_add(payload as u32);
        // A short segment or PSH ends the run.
        self.closed = payload < self.mss || flags & TCP_PSH != 0;
        self.buf[t + 13] |= flags & TCP_PSH;
        Push::Held
    }

    /// Takes the pending packet: its bytes (valid until the next push) and
    /// its virtio header (GSO if more than one segment was joined).
    pub fn take(&mut self) -> Option<(&[u8], VnetHdr)> {
        if self.segs == 0 {
            return None;
        }
        let n = self.len;
        let t = IPV6_HEADER_LEN;
        self.buf[4..6].copy_from_slice(&((n - t) as u16).to_be_bytes());
        let new_len = (n - t) as u32;
        let seed = checksum::fold(
            u64::from(self.seed)
                + u64::from(!(self.seed_len >> 16) as u16)
                + u64::from(!self.seed_len as u16)
                + u64::from((new_len >> 16) as u16)
                + u64::from(new_len as u16),
        );
        let cs = t + usize::from(TCP_CSUM_OFFSET);
        self.buf[cs..cs + 2].copy_from_slice(&seed.to_be_bytes());
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if self.segs > 1 { GSO_TCPV6 } else { 0 },
            hdr_len: self.hdr_len as u16,
            gso_size: if self.segs > 1 { self.mss as u16 } else { 0 },
            csum_start: t as u16,
            csum_offset: TCP_CSUM_OFFSET,
        };
        self.segs = 0;
        Some((&self.buf[..n], h))
    }
}

#[cfg(test)]
mod tests {
    use super::super::vnet::{self, finish_checksum};
    use super::*;
    use std::net::Ipv6Addr;

    fn gso(payload: usize, mss: u16) -> (Vec<u8>, VnetHdr) {
        let (src, dst) = (
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9),
        );
        let l4 = 32 + payload;
        let mut p = vec![0u8; 40 + l4];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(l4 as u16).to_be_bytes());
        p[6] = NH_TCP;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        p[44..48].copy_from_slice(&7u32.to_be_bytes());
        p[52] = 8 << 4;
        p[53] = TCP_ACK | TCP_PSH;
        p[60..72].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        for (i, b) in p[72..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let seed = checksum::fold(checksum::pseudo_header_sum(&src, &dst, 6, l4 as u32));
        p[56..58].copy_from_slice(&seed.to_be_bytes());
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 72,
            gso_size: mss,
            csum_start: 40,
            csum_offset: 16,
        };
        (p, h)
    }

    #[test]
    fn segments_join_back_into_the_gso_packet() {
        let (p, h) = gso(5000, 1400);
        let mut c = Coalescer::new();
        let mut seg = vec![0u8; 2000];
        let mut refused = 0;
        vnet::segment(&p, &h, false, &mut seg, |s, sh| {
            if c.push(s, sh) == Push::Refused {
                refused += 1;
            }
        })
        .unwrap();
        assert_eq!(refused, 0);
        let (joined, jh) = c.take().unwrap();
        assert_eq!(jh.gso_type, GSO_TCPV6);
        assert_eq!(jh.gso_size, 1400);
        assert_eq!(joined, &p[..], "same bytes, same partial checksum");
        let mut j = joined.to_vec();
        let mut jh = jh;
        finish_checksum(&mut j, &mut jh).unwrap();
        assert!(checksum::verify(
            &Ipv6Addr::LOCALHOST,
            &Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9),
            6,
            &j[40..]
        ));
        assert!(c.is_empty());
    }

    #[test]
    fn gaps_other_flows_and_flags_are_refused() {
        let (p, h) = gso(3000, 1000);
        let mut segs = Vec::new();
        let mut seg = vec![0u8; 2000];
        vnet::segment(&p, &h, false, &mut seg, |s, sh| {
            segs.push((s.to_vec(), *sh))
        })
        .unwrap();
        let mut c = Coalescer::new();
        assert_eq!(c.push(&segs[0].0, &segs[0].1), Push::Held);
        // A gap in sequence numbers.
        assert_eq!(c.push(&segs[2].0, &segs[2].1), Push::Refused);
        // Another destination port.
        let mut other = segs[1].0.clone();
        other[43] ^= 1;
        assert_eq!(c.push(&other, &segs[1].1), Push::Refused);
        // A complete but unverified checksum is never joined.
        let plain = VnetHdr::default();
        assert_eq!(Coalescer::new().push(&segs[1].0, &plain), Push::Refused);
        // SYN is not joined.
        let mut syn = segs[1].0.clone();
        syn[53] = 0x12;
        assert_eq!(Coalescer::new().push(&syn, &segs[1].1), Push::Refused);
        // One segment comes back as it was, not as GSO.
        let (one, oh) = c.take().unwrap();
        assert_eq!(one, &segs[0].0[..]);
        assert!(!oh.is_gso());
        assert!(c.take().is_none());
        assert_eq!(
            Coalescer::new().push(&[0x60; 10], &segs[0].1),
            Push::Refused
        );
    }
}
