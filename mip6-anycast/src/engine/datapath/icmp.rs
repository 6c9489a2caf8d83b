//! ICMPv6 Packet Too Big (RFC 4443 3.2) toward a local sender whose packet
//! no longer fits the path once the engine added a header (RFC 2473 7.1:
//! the tunnel entry point reports the tunnel's MTU to the source).
//!
//! Rare path: the raw socket said `EMSGSIZE`. The original packet is
//! recovered by undoing the rewrite on a copy, and the error quotes as much
//! of it as fits in the IPv6 minimum MTU.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::process::Rewrite;
use crate::engine::steer::IPV6_MIN_MTU;
use crate::wire::{self, Bounds, ExtChain, Ipv6Packet, Ipv6Repr, checksum, edit, ip_proto};

/// ICMPv6 type Packet Too Big.
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 error types are below this (RFC 4443 2.1).
const ICMPV6_INFORMATIONAL_MIN: u8 = 128;
const ICMPV6_HEADER_LEN: usize = 8;
const MIN_MTU: usize = IPV6_MIN_MTU as usize;

/// Copies the packet at `b` into `scratch` as it was before `rewrite` and
/// returns it. `None` if it cannot be recovered.
pub fn original<'a>(
    buf: &[u8],
    b: Bounds,
    rewrite: Rewrite,
    scratch: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    let pkt = buf.get(b.range())?;
    scratch.clear();
    scratch.extend_from_slice(pkt);
    let s = match rewrite {
        Rewrite::None => Bounds {
            start: 0,
            len: pkt.len(),
        },
        Rewrite::Rh2 => edit::strip_rh2(scratch, 0, pkt.len()).ok()?.bounds,
        Rewrite::Hao => edit::strip_hao(scratch, 0, pkt.len()).ok()?.bounds,
        Rewrite::Tunnel => edit::decapsulate(scratch, 0, pkt.len()).ok()?.bounds,
        Rewrite::Translated => return None,
    };
    scratch.get(s.range())
}

/// True if RFC 4443 2.4 allows an error about `original`: its source is a
/// unicast address and it is not itself an ICMPv6 error message.
pub fn may_report(original: &[u8]) -> bool {
    let Ok(chain) = ExtChain::walk(original) else {
        return false;
    };
    let src = Ipv6Packet::new_unchecked(original).src_addr();
    if src.is_unspecified() || src.is_multicast() {
        return false;
    }
    if chain.upper_proto() == ip_proto::ICMPV6 {
        return match original.get(chain.upper_offset()) {
            Some(t) => *t >= ICMPV6_INFORMATIONAL_MIN,
            None => false,
        };
    }
    true
}

/// Writes an ICMPv6 Packet Too Big about `original` into `out`, from `src`
/// to the original's source, reporting `mtu` (at least 1280). Returns the
/// length written.
pub fn packet_too_big(
    original: &[u8],
    src: Ipv6Addr,
    mtu: u32,
    out: &mut [u8],
) -> wire::Result<usize> {
    let orig = Ipv6Packet::new_checked(original)?;
    let dst = orig.src_addr();
    let quote = original
        .len()
        .min(MIN_MTU - wire::IPV6_HEADER_LEN - ICMPV6_HEADER_LEN);
    let icmp_len = ICMPV6_HEADER_LEN + quote;
    let total = wire::IPV6_HEADER_LEN + icmp_len;
    let have = out.len();
    let out = out
        .get_mut(..total)
        .ok_or(wire::Error::BufferTooSmall { need: total, have })?;
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: ip_proto::ICMPV6,
        payload_len: icmp_len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(out)?;
    let icmp = &mut out[wire::IPV6_HEADER_LEN..];
    icmp[0] = ICMPV6_PACKET_TOO_BIG;
    icmp[1] = 0;
    icmp[2..4].copy_from_slice(&[0, 0]);
    icmp[4..8].copy_from_slice(&mtu.max(IPV6_MIN_MTU).to_be_bytes());
    icmp[8..].copy_from_slice(&original[..quote]);
    let c = checksum::compute(&src, &dst, ip_proto::ICMPV6, icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(total)
}

/// The MTU to report when a packet of `sent_len` octets (after adding
/// `added` octets) did not fit. The raw socket's `EMSGSIZE` does not say
/// the limit, so: if the packet was larger than the configured path MTU,
/// that MTU minus what the engine adds; if not, the configuration is wrong
/// for this path and only the IPv6 minimum (1280) is safe. Either way the
/// sender needs one round to fit.
pub fn reported_mtu(path_mtu: u32, sent_len: usize, added: usize) -> u32 {
    let sent = u32::try_from(sent_len).unwrap_or(u32::MAX);
    let added = u32::try_from(added).unwrap_or(u32::MAX);
    if sent > path_mtu {
        path_mtu.saturating_sub(added).max(IPV6_MIN_MTU)
    } else {
        IPV6_MIN_MTU
    }
}

/// A token bucket for the errors we generate (RFC 4443 2.4 f).
#[derive(Debug, Clone)]
pub struct RateLimit {
    tokens: u32,
    burst: u32,
    interval: Duration,
    last: Option<Instant>,
}

impl RateLimit {
    /// `burst` errors at once, then one per `interval`.
    pub fn new(burst: u32, interval: Duration) -> Self {
        Self {
            tokens: burst,
            burst,
            interval,
            last: None,
        }
    }

    /// Takes a token if one is available.
    pub fn allow(&mut self, now: Instant) -> bool {
        let last = *self.last.get_or_insert(now);
        if !self.interval.is_zero() {
            let refill = now.saturating_duration_since(last).as_nanos() / self.interval.as_nanos();
            if refill > 0 {
                let refill = u32::try_from(refill).unwrap_or(u32::MAX);
                self.tokens = self.tokens.saturating_add(refill).min(self.burst);
                self.last = Some(now);
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn tcp_packet(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        Ipv6Repr {
            src_addr: a("2001:db8::c"),
            dst_addr: a("2001:db8:ff::1"),
            next_header: ip_proto::TCP,
            payload_len: len - 40,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit_into(&mut v)
        .unwrap();
        v
    }

    #[test]
    fn too_big_quotes_and_checksums() {
        let orig = tcp_packet(1500);
        let mut out = [0u8; 1400];
        let n = packet_too_big(&orig, a("2001:db8:ff::1"), 1400, &mut out).unwrap();
        assert_eq!(n, 1280);
        let ip = Ipv6Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(ip.dst_addr(), a("2001:db8::c"));
        assert_eq!(ip.next_header(), 58);
        let icmp = &out[40..n];
        assert_eq!(icmp[0], 2);
        assert_eq!(
            u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
            1400
        );
        assert!(checksum::verify(&ip.src_addr(), &ip.dst_addr(), 58, icmp));
        assert_eq!(&icmp[8..], &orig[..1232]);
        assert!(packet_too_big(&orig, a("::1"), 1400, &mut [0u8; 100]).is_err());
    }

    #[test]
    fn original_is_recovered() {
        let orig = tcp_packet(200);
        let mut buf = vec![0u8; 128 + 200];
        buf[128..].copy_from_slice(&orig);
        let nb = edit::insert_rh2(&mut buf, 128, 200, &a("2001:db8:2::2")).unwrap();
        let mut scratch = Vec::new();
        assert_eq!(
            original(&buf, nb, Rewrite::Rh2, &mut scratch),
            Some(&orig[..])
        );
        buf[128..].copy_from_slice(&orig);
        let t = wire::TunnelParams::new(a("2001:db8:1::1"), a("2001:db8:2::2"));
        let nb = edit::encapsulate(&mut buf, 128, 200, &t).unwrap();
        assert_eq!(
            original(&buf, nb, Rewrite::Tunnel, &mut scratch),
            Some(&orig[..])
        );
        // Wrong rewrite: not recoverable, no panic.
        assert_eq!(original(&buf, nb, Rewrite::Hao, &mut scratch), None);
    }

    #[test]
    fn errors_are_not_answered_with_errors() {
        let mut p = tcp_packet(48);
        assert!(may_report(&p));
        p[6] = ip_proto::ICMPV6;
        p[40] = 1; // destination unreachable
        assert!(!may_report(&p));
        p[40] = 128; // echo request
        assert!(may_report(&p));
        p[8..24].copy_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
        assert!(!may_report(&p));
        assert!(!may_report(&p[..30]));
    }

    #[test]
    fn mtu_and_rate_limit() {
        assert_eq!(reported_mtu(1500, 1524, 24), 1476);
        assert_eq!(reported_mtu(1400, 1440, 40), 1360);
        // The link is smaller than configured: only the minimum is safe.
        assert_eq!(reported_mtu(1500, 1484, 24), 1280);
        assert_eq!(reported_mtu(1300, 1340, 40), 1280);
        let t0 = Instant::now();
        let mut r = RateLimit::new(2, Duration::from_millis(10));
        assert!(r.allow(t0) && r.allow(t0));
        assert!(!r.allow(t0));
        assert!(r.allow(t0 + Duration::from_millis(10)));
        assert!(!r.allow(t0 + Duration::from_millis(10)));
    }
}
