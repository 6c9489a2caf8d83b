//! The fallback rule of the correspondent agent: when a binding's care-of
//! address stops answering, drop the binding so that traffic to the home
//! address goes back through the home agent (RFC 6275 9.6 lets a
//! correspondent delete any binding at any time; the mobile node, if it is
//! alive, learns of it from the Binding Error its next route-optimized
//! packet draws, RFC 6275 9.3.3, and registers again).
//!
//! A binding (correspondent address, home address) -> care-of address is
//! dropped when one of these holds:
//!
//! 1. **silence**: packets keep going out through the binding (RH2) while
//!    none comes back from the care-of address (HAO) for `silence`
//!    (measured from the first outbound packet seen after the last inbound
//!    one, at the usage polling resolution);
//! 2. **ICMPv6 error**: a Destination Unreachable, Time Exceeded or
//!    Parameter Problem quotes a packet from this node to the care-of
//!    address whose Type 2 Routing Header carries the home address (a
//!    kernel without Mobile IPv6 at the care-of address answers RH2 with
//!    Parameter Problem);
//! 3. **unanswered refresh**: a Binding Refresh Request this node sent got
//!    no Binding Update within `brr_timeout`.
//!
//! The tracker is sans-IO: the agent feeds it binding events, usage
//! counters, sent BRRs and received ICMPv6 errors with `now`, and it
//! answers which binding to drop and why.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Instant;

use serde::Serialize;

use super::config::FallbackConfig;

/// Why a binding was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// Outbound packets, nothing inbound, for the silence period.
    Silent,
    /// An ICMPv6 error about a packet sent to the care-of address.
    IcmpError {
        /// ICMPv6 type.
        icmp_type: u8,
        /// ICMPv6 code.
        code: u8,
    },
    /// A Binding Refresh Request went unanswered.
    RefreshUnanswered,
}

impl FallbackReason {
    /// A short name for counters.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            FallbackReason::Silent => "silent",
            FallbackReason::IcmpError { .. } => "icmp_error",
            FallbackReason::RefreshUnanswered => "refresh_unanswered",
        }
    }
}

/// A binding as the tracker names it: (correspondent address, home address).
pub type Key = (Ipv6Addr, Ipv6Addr);

#[derive(Debug, Clone)]
struct Track {
    coa: Ipv6Addr,
    packets: u64,
    packets_in: u64,
    unanswered_since: Option<Instant>,
    brr_sent: Option<Instant>,
}

/// The tracker. See the module docs.
#[derive(Debug, Clone)]
pub struct Tracker {
    cfg: FallbackConfig,
    tracks: HashMap<Key, Track>,
}

impl Tracker {
    /// A tracker with no bindings.
    #[must_use]
    pub fn new(cfg: FallbackConfig) -> Self {
        Self {
            cfg,
            tracks: HashMap::new(),
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &FallbackConfig {
        &self.cfg
    }

    /// Bindings tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// True when no binding is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// A Binding Update was accepted for `key` -> `coa` (new binding,
    /// refresh or move): the care-of address just proved it is alive.
    pub fn bound(&mut self, key: Key, coa: Ipv6Addr) {
        let t = self.tracks.entry(key).or_insert(Track {
            coa,
            packets: 0,
            packets_in: 0,
            unanswered_since: None,
            brr_sent: None,
        });
        t.coa = coa;
        t.unanswered_since = None;
        t.brr_sent = None;
    }

    /// The binding `key` is gone.
    pub fn removed(&mut self, key: Key) {
        self.tracks.remove(&key);
    }

    /// A Binding Refresh Request for `key` was sent at `now` (the first
    /// one counts until a Binding Update answers).
    pub fn refresh_requested(&mut self, key: Key, now: Instant) {
        if let Some(t) = self.tracks.get_mut(&key) {
            t.brr_sent.get_or_insert(now);
        }
    }

    /// The datapath's counters of `key` at `now`: `packets` both ways,
    /// `packets_in` of them received. Returns the reason to drop it, if
    /// any (rules 1 and 3).
    pub fn usage(
        &mut self,
        key: Key,
        packets: u64,
        packets_in: u64,
        now: Instant,
    ) -> Option<FallbackReason> {
        if !self.cfg.enabled {
            return None;
        }
        let t = self.tracks.get_mut(&key)?;
        let out = packets.saturating_sub(packets_in);
        let out_before = t.packets.saturating_sub(t.packets_in);
        if packets_in > t.packets_in {
            t.unanswered_since = None;
        } else if out > out_before && t.unanswered_since.is_none() {
            t.unanswered_since = Some(now);
        }
        t.packets = packets;
        t.packets_in = packets_in;
        Self::verdict(&self.cfg, t, now)
    }

    /// Rule 3 (and 1) without new counters, e.g. for bindings the
    /// datapath reported nothing about.
    pub fn check(&mut self, key: Key, now: Instant) -> Option<FallbackReason> {
        if !self.cfg.enabled {
            return None;
        }
        let t = self.tracks.get(&key)?;
        Self::verdict(&self.cfg, t, now)
    }

    fn verdict(cfg: &FallbackConfig, t: &Track, now: Instant) -> Option<FallbackReason> {
        if t.unanswered_since
            .is_some_and(|s| now.saturating_duration_since(s) >= cfg.silence)
        {
            return Some(FallbackReason::Silent);
        }
        if t.brr_sent
            .is_some_and(|s| now.saturating_duration_since(s) >= cfg.brr_timeout)
        {
            return Some(FallbackReason::RefreshUnanswered);
        }
        None
    }

    /// Rule 2: an ICMPv6 error of `icmp_type`/`code` quoting a packet from
    /// `quoted_src` to `quoted_dst` whose RH2 carried `quoted_hoa`. Returns
    /// the binding it condemns, if it matches one exactly.
    pub fn icmp_error(
        &self,
        quoted_src: Ipv6Addr,
        quoted_dst: Ipv6Addr,
        quoted_hoa: Ipv6Addr,
        icmp_type: u8,
        code: u8,
    ) -> Option<(Key, FallbackReason)> {
        if !(self.cfg.enabled && self.cfg.icmp_errors) {
            return None;
        }
        let key = (quoted_src, quoted_hoa);
        let t = self.tracks.get(&key)?;
        (t.coa == quoted_dst).then_some((key, FallbackReason::IcmpError { icmp_type, code }))
    }

    /// The bindings tracked (for checks without counters).
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.tracks.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn cfg() -> FallbackConfig {
        FallbackConfig {
            enabled: true,
            silence: Duration::from_secs(3),
            icmp_errors: true,
            brr_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn silence_after_unanswered_packets() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_millis(500 * n);
        let key = (a("2001:db8:1::10"), a("2001:db8:100::1"));
        let mut t = Tracker::new(cfg());
        t.bound(key, a("2001:db8:3::10"));
        // Traffic both ways: fine however long it lasts.
        assert_eq!(t.usage(key, 10, 5, s(1)), None);
        assert_eq!(t.usage(key, 20, 10, s(2)), None);
        assert_eq!(t.usage(key, 30, 15, s(10)), None);
        // Idle: fine.
        assert_eq!(t.usage(key, 30, 15, s(20)), None);
        // Outbound only from s(21) on.
        assert_eq!(t.usage(key, 35, 15, s(21)), None);
        assert_eq!(t.usage(key, 40, 15, s(25)), None);
        assert_eq!(t.usage(key, 41, 15, s(27)), Some(FallbackReason::Silent));
        // An answer resets the clock.
        let mut t = Tracker::new(cfg());
        t.bound(key, a("2001:db8:3::10"));
        assert_eq!(t.usage(key, 5, 0, s(1)), None);
        assert_eq!(t.usage(key, 7, 1, s(6)), None);
        assert_eq!(t.usage(key, 9, 1, s(7)), None);
        assert_eq!(t.usage(key, 9, 1, s(12)), None);
        assert_eq!(t.usage(key, 9, 1, s(13)), Some(FallbackReason::Silent));
        // A refresh (BU accepted) also resets it.
        t.bound(key, a("2001:db8:3::10"));
        assert_eq!(t.check(key, s(14)), None);
    }

    #[test]
    fn icmp_errors_must_match_the_binding() {
        let key = (a("2001:db8:1::10"), a("2001:db8:100::1"));
        let coa = a("2001:db8:3::10");
        let mut t = Tracker::new(cfg());
        t.bound(key, coa);
        assert_eq!(
            t.icmp_error(key.0, coa, key.1, 4, 0),
            Some((
                key,
                FallbackReason::IcmpError {
                    icmp_type: 4,
                    code: 0
                }
            ))
        );
        assert_eq!(t.icmp_error(key.0, a("2001:db8:3::11"), key.1, 4, 0), None);
        assert_eq!(t.icmp_error(a("2001:db8:1::11"), coa, key.1, 4, 0), None);
        assert_eq!(t.icmp_error(key.0, coa, a("2001:db8:100::2"), 1, 3), None);
        let mut off = Tracker::new(FallbackConfig {
            icmp_errors: false,
            ..cfg()
        });
        off.bound(key, coa);
        assert_eq!(off.icmp_error(key.0, coa, key.1, 4, 0), None);
    }

    #[test]
    fn unanswered_refresh_request() {
        let t0 = Instant::now();
        let key = (a("2001:db8:1::10"), a("2001:db8:100::1"));
        let mut t = Tracker::new(cfg());
        t.bound(key, a("2001:db8:3::10"));
        t.refresh_requested(key, t0);
        t.refresh_requested(key, t0 + Duration::from_secs(1));
        assert_eq!(t.check(key, t0 + Duration::from_millis(1900)), None);
        assert_eq!(
            t.check(key, t0 + Duration::from_secs(2)),
            Some(FallbackReason::RefreshUnanswered)
        );
        t.bound(key, a("2001:db8:3::10"));
        assert_eq!(t.check(key, t0 + Duration::from_secs(5)), None);
        t.removed(key);
        assert!(t.is_empty());
        let mut off = Tracker::new(FallbackConfig {
            enabled: false,
            ..cfg()
        });
        off.bound(key, a("2001:db8:3::10"));
        off.refresh_requested(key, t0);
        assert_eq!(off.usage(key, 100, 0, t0 + Duration::from_secs(60)), None);
    }
}
