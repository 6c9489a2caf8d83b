//! The `virtio_net_hdr` a TUN with `IFF_VNET_HDR` puts in front of every
//! packet, and the work it implies for the engine: moving its offsets when
//! a header is inserted or removed in front of the transport header,
//! finishing a checksum the kernel left partial, and cutting a TCP GSO
//! super-packet into segments where a packet must leave whole-sized
//! (raw socket, hold queue) or where the kernel cannot segment it (an
//! IPv6-in-IPv6 packet written into the TUN: a TUN write marks GSO packets
//! `SKB_GSO_DODGY`, and the kernel's IPv6-in-IPv6 GSO refuses any packet
//! without `SKB_GSO_IPXIP6`, which the virtio header cannot express).
//!
//! Layout (10 octets, the legacy header; host byte order, which is what
//! the TUN uses unless `TUNSETVNETLE`/`BE` is set): flags, gso_type,
//! hdr_len, gso_size, csum_start, csum_offset. `csum_start` counts from the
//! first octet of the IPv6 header (an L3 TUN has no link header).
//!
//! Everything here is pure and allocation-free (the segmenter writes into a
//! caller's buffer), so it is what the criterion benches measure.

use crate::wire::checksum;

/// Length of the legacy `virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start +
/// csum_offset` holds only the pseudo-header sum (`CHECKSUM_PARTIAL`).
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified.
pub const F_DATA_VALID: u8 = 2;

/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN` (a flag on the type).
pub const GSO_ECN: u8 = 0x80;

/// Offset of the checksum in a TCP header.
pub const TCP_CSUM_OFFSET: u16 = 16;

const IPV6_HEADER_LEN: usize = 40;
const NH_IPV6: u8 = 41;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Why a packet's offload metadata cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VnetError {
    /// A GSO type the engine does not segment (it asks the kernel for TCP
    /// offloads only).
    #[error("unsupported GSO type {0:#x}")]
    UnsupportedGso(u8),
    /// `csum_start`/`csum_offset`/`gso_size` do not fit the packet.
    #[error("offload offsets do not fit a packet of {len} octets")]
    BadOffsets {
        /// Packet length.
        len: usize,
    },
    /// The segment buffer is too small.
    #[error("segment buffer of {have} octets, need {need}")]
    BufferTooSmall {
        /// Needed.
        need: usize,
        /// Available.
        have: usize,
    },
}

/// A parsed `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM`, `F_DATA_VALID`.
    pub flags: u8,
    /// `GSO_*`, possibly with `GSO_ECN`.
    pub gso_type: u8,
    /// Length of the headers (a hint for the kernel's linear part).
    pub hdr_len: u16,
    /// Payload octets per segment.
    pub gso_size: u16,
    /// Where checksumming starts (from the IPv6 header).
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the 10 octets (host byte order).
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> Self {
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        }
    }

    /// Emits the 10 octets.
    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// A GSO super-packet.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// The checksum is partial.
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    /// A partial TCP checksum (the hot case, left to the kernel).
    pub fn is_partial_tcp(&self) -> bool {
        self.needs_csum() && self.csum_offset == TCP_CSUM_OFFSET
    }

    /// Moves the offsets after `delta` octets were inserted (positive) or
    /// removed (negative) in front of the transport header, leaving a
    /// packet of `new_len` octets. RH2, HAO and the outer IPv6 header
    /// all sit in front of it, so `csum_start` and `hdr_len` move with
    /// them; `gso_size` (payload per segment) stays.
    pub fn shift(&mut self, delta: isize, new_len: usize) {
        let mv = |v: u16| -> u16 {
            let moved = (v as isize).saturating_add(delta).max(0) as usize;
            moved.min(usize::from(u16::MAX)) as u16
        };
        if self.needs_csum() {
            self.csum_start = mv(self.csum_start);
        }
        if self.hdr_len != 0 {
            self.hdr_len = mv(self.hdr_len).min(new_len.min(usize::from(u16::MAX)) as u16);
        }
    }

    /// Packets this stands for on the wire (segments of a GSO packet).
    pub fn segments(&self, pkt: &[u8]) -> u64 {
        if !self.is_gso() || self.gso_size == 0 {
            return 1;
        }
        match tcp_headers_len(pkt, self) {
            Ok(h) => (pkt.len().saturating_sub(h))
                .div_ceil(usize::from(self.gso_size))
                .max(1) as u64,
            Err(_) => 1,
        }
    }

    /// Octets of the largest segment this packet becomes on the wire
    /// (the whole packet if not GSO). `None` if the offsets are bad.
    pub fn segment_len(&self, pkt: &[u8]) -> Option<usize> {
        if !self.is_gso() {
            return Some(pkt.len());
        }
        let hlen = tcp_headers_len(pkt, self).ok()?;
        Some((hlen + usize::from(self.gso_size)).min(pkt.len()))
    }
}

/// Length of everything up to the end of the TCP header of a TCP GSO
/// packet (`csum_start` + TCP data offset).
fn tcp_headers_len(pkt: &[u8], h: &VnetHdr) -> Result<usize, VnetError> {
    let bad = VnetError::BadOffsets { len: pkt.len() };
    let cs = usize::from(h.csum_start);
    if !h.needs_csum() || h.csum_offset != TCP_CSUM_OFFSET || cs < IPV6_HEADER_LEN {
        return Err(bad);
    }
    let doff = pkt.get(cs + 12).ok_or(bad)? >> 4;
    let th = usize::from(doff) * 4;
    if th < 20 || cs + th > pkt.len() {
        return Err(bad);
    }
    Ok(cs + th)
}

/// One's-complement sum of the packet from `csum_start`, stored as the
/// checksum (RFC 1071); the field held the pseudo-header sum. Clears
/// `F_NEEDS_CSUM`. A UDP checksum that comes out 0 is sent as 0xffff
/// (RFC 8200 8.1).
pub fn finish_checksum(pkt: &mut [u8], h: &mut VnetHdr) -> Result<(), VnetError> {
    if !h.needs_csum() {
        return Ok(());
    }
    let cs = usize::from(h.csum_start);
    let at = cs + usize::from(h.csum_offset);
    if at + 2 > pkt.len() {
        return Err(VnetError::BadOffsets { len: pkt.len() });
    }
    let mut c = !checksum::fold(checksum::sum(0, &pkt[cs..]));
    if c == 0 && h.csum_offset == 6 {
        c = 0xffff;
    }
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    h.flags &= !F_NEEDS_CSUM;
    Ok(())
}

/// Replaces the upper-layer length `old` in a pseudo-header sum (the
/// partial checksum field) by `new` (RFC 1624 incremental update).
fn reseed(seed: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(seed)
        + u64::from(!(old >> 16) as u16)
        + u64::from(!old as u16)
        + u64::from((new >> 16) as u16)
        + u64::from(new as u16);
    checksum::fold(acc)
}

fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Cuts a TCP GSO packet (`gso_type` TCPv6, partial checksum) into
/// segments of at most `gso_size` payload octets, calling `emit` with each
/// segment (in `seg`, reused) and its virtio header. Per segment: the
/// headers are copied, the IPv6 payload length set (also the inner header
/// of an IPv6-in-IPv6 packet), the sequence number advanced, FIN/PSH kept
/// only on the last and CWR only on the first, and the pseudo-header sum
/// updated for the segment's length. With `finish` the checksum is
/// computed (for the raw socket and the hold queue); otherwise it stays
/// partial for the kernel (`F_NEEDS_CSUM`). Returns the segment count. A
/// non-GSO packet is emitted as it is (its checksum finished if asked).
pub fn segment(
    pkt: &[u8],
    h: &VnetHdr,
    finish: bool,
    seg: &mut [u8],
    mut emit: impl FnMut(&mut [u8], &VnetHdr),
) -> Result<usize, VnetError> {
    if !h.is_gso() {
        let have = seg.len();
        let s = seg.get_mut(..pkt.len()).ok_or(VnetError::BufferTooSmall {
            need: pkt.len(),
            have,
        })?;
        s.copy_from_slice(pkt);
        let mut sh = *h;
        if finish {
            finish_checksum(s, &mut sh)?;
        }
        emit(s, &sh);
        return Ok(1);
    }
    if h.gso_type & !GSO_ECN != GSO_TCPV6 {
        return Err(VnetError::UnsupportedGso(h.gso_type));
    }
    let hlen = tcp_headers_len(pkt, h)?;
    let mss = usize::from(h.gso_size);
    if mss == 0 || pkt.len() < IPV6_HEADER_LEN {
        return Err(VnetError::BadOffsets { len: pkt.len() });
    }
    let need = hlen + mss;
    if seg.len() < need {
        return Err(VnetError::BufferTooSmall {
            need,
            have: seg.len(),
        });
    }
    let cs = usize::from(h.csum_start);
    let tunnel = pkt[6] == NH_IPV6 && hlen >= 2 * IPV6_HEADER_LEN;
    let seq0 = u32::from_be_bytes([pkt[cs + 4], pkt[cs + 5], pkt[cs + 6], pkt[cs + 7]]);
    let flags0 = pkt[cs + 13];
    let seed = u16::from_be_bytes([pkt[cs + 16], pkt[cs + 17]]);
    let old_l4 = (pkt.len() - cs) as u32;
    let payload = &pkt[hlen..];
    let count = payload.len().div_ceil(mss).max(1);
    let mut sh = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_NONE,
        hdr_len: hlen as u16,
        gso_size: 0,
        csum_start: h.csum_start,
        csum_offset: TCP_CSUM_OFFSET,
    };
    for i in 0..count {
        let chunk = payload
            .get(i * mss..((i + 1) * mss).min(payload.len()))
            .unwrap_or(&[]);
        let len = hlen + chunk.len();
        let s = &mut seg[..len];
        s[..hlen].copy_from_slice(&pkt[..hlen]);
        s[hlen..].copy_from_slice(chunk);
        set_u16(s, 4, (len - IPV6_HEADER_LEN) as u16);
        if tunnel {
            set_u16(s, IPV6_HEADER_LEN + 4, (len - 2 * IPV6_HEADER_LEN) as u16);
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        s[cs + 4..cs + 8].copy_from_slice(&seq.to_be_bytes());
        let mut fl = flags0;
        if i + 1 < count {
            fl &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            fl &= !TCP_CWR;
        }
        s[cs + 13] = fl;
        set_u16(s, cs + 16, reseed(seed, old_l4, (len - cs) as u32));
        sh.flags = F_NEEDS_CSUM;
        if finish {
            finish_checksum(s, &mut sh)?;
        }
        emit(s, &sh);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn a(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)
    }

    /// An IPv6 TCP packet with `payload` octets, checksum partial (the
    /// pseudo-header sum, as the kernel leaves it), optionally inside an
    /// outer IPv6 header.
    fn tcp_gso(payload: usize, mss: u16, tunnel: bool) -> (Vec<u8>, VnetHdr) {
        let (src, dst) = (a(1), a(2));
        let l4 = 20 + payload;
        let mut inner = vec![0u8; 40 + l4];
        inner[0] = 0x60;
        inner[4..6].copy_from_slice(&(l4 as u16).to_be_bytes());
        inner[6] = 6;
        inner[7] = 64;
        inner[8..24].copy_from_slice(&src.octets());
        inner[24..40].copy_from_slice(&dst.octets());
        inner[44..48].copy_from_slice(&1000u32.to_be_bytes());
        inner[52] = 5 << 4;
        inner[53] = TCP_PSH | TCP_FIN | TCP_CWR | 0x10;
        for (i, b) in inner[60..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let seed = checksum::fold(checksum::pseudo_header_sum(&src, &dst, 6, l4 as u32));
        inner[56..58].copy_from_slice(&seed.to_be_bytes());
        let mut h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 60,
            gso_size: mss,
            csum_start: 40,
            csum_offset: 16,
        };
        if !tunnel {
            return (inner, h);
        }
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(inner.len() as u16).to_be_bytes());
        p[6] = NH_IPV6;
        p[7] = 64;
        p[8..24].copy_from_slice(&a(7).octets());
        p[24..40].copy_from_slice(&a(8).octets());
        p.extend_from_slice(&inner);
        h.shift(40, p.len());
        (p, h)
    }

    fn tcp_ok(seg: &[u8], inner_at: usize) -> bool {
        let ip = &seg[inner_at..];
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
        checksum::verify(&src, &dst, 6, &ip[40..])
    }

    #[test]
    fn header_round_trips() {
        let h = VnetHdr {
            flags: 1,
            gso_type: GSO_TCPV6 | GSO_ECN,
            hdr_len: 74,
            gso_size: 1428,
            csum_start: 40,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.emit()), h);
        assert!(h.is_gso() && h.is_partial_tcp());
        assert!(!VnetHdr::default().is_gso());
    }

    #[test]
    fn shift_moves_offsets_and_bounds_hdr_len() {
        let mut h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 1500,
            gso_size: 1428,
            csum_start: 40,
            csum_offset: 16,
        };
        h.shift(24, 1524);
        assert_eq!((h.csum_start, h.hdr_len), (64, 1524));
        h.shift(-64, 1460);
        assert_eq!((h.csum_start, h.hdr_len), (0, 1460));
        h.shift(-5000, 10);
        assert_eq!(h.hdr_len, 0);
    }

    #[test]
    fn finish_checksum_matches_a_full_computation() {
        let (mut p, mut h) = tcp_gso(333, 1000, false);
        h.gso_type = GSO_NONE;
        finish_checksum(&mut p, &mut h).unwrap();
        assert!(!h.needs_csum());
        assert!(tcp_ok(&p, 0));
    }

    #[test]
    fn segments_carry_consecutive_sequence_numbers_and_valid_checksums() {
        for tunnel in [false, true] {
            let (p, h) = tcp_gso(3000, 1200, tunnel);
            let inner_at = if tunnel { 40 } else { 0 };
            let mut buf = vec![0u8; 2000];
            let mut got = Vec::new();
            let n = segment(&p, &h, true, &mut buf, |s, sh| {
                assert!(!sh.needs_csum());
                got.push(s.to_vec());
            })
            .unwrap();
            assert_eq!(n, 3);
            let mut payload = Vec::new();
            for (i, s) in got.iter().enumerate() {
                assert!(tcp_ok(s, inner_at), "segment {i}");
                let ip = &s[inner_at..];
                let seq = u32::from_be_bytes([ip[44], ip[45], ip[46], ip[47]]);
                assert_eq!(seq, 1000 + 1200 * i as u32);
                assert_eq!(usize::from(u16::from_be_bytes([s[4], s[5]])), s.len() - 40);
                let fl = ip[53];
                assert_eq!(fl & TCP_FIN != 0, i == 2);
                assert_eq!(fl & TCP_CWR != 0, i == 0);
                payload.extend_from_slice(&ip[60..]);
            }
            assert_eq!(payload, p[inner_at + 60..]);
        }
    }

    #[test]
    fn partial_segments_finish_to_the_same_checksum() {
        let (p, h) = tcp_gso(2500, 1000, false);
        let mut buf = vec![0u8; 2000];
        segment(&p, &h, false, &mut buf, |s, sh| {
            assert!(sh.needs_csum());
            let mut sh = *sh;
            finish_checksum(s, &mut sh).unwrap();
            assert!(tcp_ok(s, 0));
        })
        .unwrap();
    }

    #[test]
    fn bad_offsets_are_errors_not_panics() {
        let (p, mut h) = tcp_gso(100, 50, false);
        h.csum_start = 2000;
        let mut buf = vec![0u8; 2000];
        assert!(segment(&p, &h, true, &mut buf, |_, _| {}).is_err());
        h.csum_start = 40;
        h.gso_type = 3;
        assert_eq!(
            segment(&p, &h, true, &mut buf, |_, _| {}),
            Err(VnetError::UnsupportedGso(3))
        );
        let mut h2 = h;
        h2.gso_type = GSO_TCPV6;
        h2.gso_size = 0;
        assert!(segment(&p, &h2, true, &mut buf, |_, _| {}).is_err());
        let mut short = p[..45].to_vec();
        let mut h3 = h2;
        h3.gso_type = GSO_NONE;
        h3.csum_offset = 30;
        assert!(finish_checksum(&mut short, &mut h3).is_err());
        assert!(segment(&p, &VnetHdr::default(), false, &mut [0u8; 4], |_, _| {}).is_err());
    }
}
