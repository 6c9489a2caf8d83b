//! Types and helpers every machine shares: outgoing packets, actions,
//! sequence-number arithmetic, retransmission back-off, rate limiting and
//! packet emission with authenticators.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::stats::DropReason;
use crate::crypto::{Kbm, MnHaKey, bu_authenticator, mn_ha_authenticator};
use crate::wire::mh::AUTH_SUBTYPE_MN_HA;
use crate::wire::{MhPacketRepr, ParsedMhPacket};

/// INITIAL_BINDACK_TIMEOUT (RFC 6275 12): first retransmission timeout of
/// Binding Updates and, here, of HoTI/CoTI too (RFC 6275 11.8).
pub const INITIAL_BINDACK_TIMEOUT: Duration = Duration::from_secs(1);
/// MAX_BINDACK_TIMEOUT (RFC 6275 12): the back-off stops doubling here.
pub const MAX_BINDACK_TIMEOUT: Duration = Duration::from_secs(32);

/// How an outgoing packet must leave the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Send as is (raw IPv6 socket, header included).
    Direct,
    /// Reverse-tunnel through the home agent: encapsulate (RFC 2473) from the
    /// registered care-of address to the home agent. Used for HoTI, whose
    /// source is the home address (RFC 6275 11.6.1).
    ReverseTunnel,
}

/// How an incoming packet reached the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arrival {
    /// Directly (possibly with a Type 2 Routing Header).
    Direct,
    /// Decapsulated from the home agent's tunnel (RFC 6275 11.6.2: a HoT
    /// must arrive this way).
    Tunnel,
}

/// A fully encoded IPv6 packet (checksum and authenticators filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// IPv6 source address of `bytes`.
    pub src: Ipv6Addr,
    /// IPv6 destination address of `bytes`.
    pub dst: Ipv6Addr,
    /// Mobility Header type (for logs).
    pub mh_type: u8,
    /// How to send it.
    pub route: Route,
    /// The packet, starting at the IPv6 header.
    pub bytes: Vec<u8>,
}

/// What a machine asks its shell to do; `E` is the machine's event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<E> {
    /// Send a packet.
    Transmit(Transmit),
    /// A state change the shell maps to engine tables, storage or logs.
    Event(E),
    /// A packet or request was dropped or rejected (already counted).
    Dropped(DropReason),
}

/// RFC 6275 9.5.1: `seq` is newer than `last` modulo 2^16, i.e. it is not in
/// `last` or the 32768 values before it.
#[must_use]
pub const fn seq_newer(seq: u16, last: u16) -> bool {
    let d = seq.wrapping_sub(last);
    d >= 1 && d <= 0x7fff
}

/// RFC 6275 11.7.3: after a BA with status 135 carrying `last_accepted`,
/// the next sequence number must be newer than it; `next` is kept if it
/// already is.
pub(crate) fn resync_sequence(next: &mut u16, last_accepted: u16) {
    let want = last_accepted.wrapping_add(1);
    if !seq_newer(*next, want) {
        *next = want;
    }
}

/// Retransmission timing (RFC 6275 11.8): first timeout, cap, attempt limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitConfig {
    /// First timeout (INITIAL_BINDACK_TIMEOUT).
    pub initial: Duration,
    /// Largest timeout (MAX_BINDACK_TIMEOUT).
    pub max: Duration,
    /// Give up after this many transmissions (`None`: keep sending every
    /// `max`, as RFC 6275 11.8 allows).
    pub max_attempts: Option<u32>,
}

impl Default for RetransmitConfig {
    fn default() -> Self {
        Self {
            initial: INITIAL_BINDACK_TIMEOUT,
            max: MAX_BINDACK_TIMEOUT,
            max_attempts: None,
        }
    }
}

/// Exponential back-off of one outstanding message: doubled after each
/// retransmission up to `max` (RFC 6275 11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    timeout: Duration,
    next_at: Instant,
    attempts: u32,
}

impl Backoff {
    /// The message was sent for the first time at `now`.
    #[must_use]
    pub fn start(now: Instant, cfg: &RetransmitConfig) -> Self {
        let timeout = cfg.initial.min(cfg.max);
        Self {
            timeout,
            next_at: now + timeout,
            attempts: 1,
        }
    }

    /// When the next retransmission is due.
    #[must_use]
    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    /// Transmissions so far.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// True once `now` reached the deadline.
    #[must_use]
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_at
    }

    /// Records a retransmission at `now`; returns `false` (and changes
    /// nothing) when the attempt limit is reached.
    pub fn retransmit(&mut self, now: Instant, cfg: &RetransmitConfig) -> bool {
        if cfg.max_attempts.is_some_and(|m| self.attempts >= m) {
            return false;
        }
        self.timeout = self.timeout.saturating_mul(2).min(cfg.max);
        self.next_at = now + self.timeout;
        self.attempts = self.attempts.saturating_add(1);
        true
    }
}

/// A token bucket: at most `burst` events at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval_ns: u128,
    capacity_ns: u128,
    level_ns: u128,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket at `now`. `per_second == 0` allows nothing.
    #[must_use]
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let interval_ns = if per_second == 0 {
            u128::MAX
        } else {
            1_000_000_000 / u128::from(per_second)
        };
        let capacity_ns = if per_second == 0 {
            0
        } else {
            interval_ns.saturating_mul(u128::from(burst))
        };
        Self {
            interval_ns,
            capacity_ns,
            level_ns: capacity_ns,
            last: now,
        }
    }

    /// Takes one token if available.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        self.level_ns = self.level_ns.saturating_add(elapsed).min(self.capacity_ns);
        if self.level_ns >= self.interval_ns {
            self.level_ns -= self.interval_ns;
            true
        } else {
            false
        }
    }
}

/// Encodes `repr` without authenticators.
pub(crate) fn transmit(repr: &MhPacketRepr, route: Route) -> Result<Transmit, DropReason> {
    let bytes = repr.to_bytes().map_err(|_| DropReason::EmitFailed)?;
    Ok(wrap(repr, route, bytes))
}

/// Encodes `repr` (which carries a Binding Authorization Data option) with
/// `First(96, HMAC_SHA1(Kbm, coa | correspondent | MH Data))` (RFC 6275
/// 6.2.7): the same formula for BU (mobile node) and BA (correspondent).
pub(crate) fn transmit_binding_auth(
    repr: &MhPacketRepr,
    kbm: &Kbm,
    coa: Ipv6Addr,
    correspondent: Ipv6Addr,
) -> Result<Transmit, DropReason> {
    let bytes = repr
        .to_bytes_with_binding_auth(|input| {
            *bu_authenticator(kbm, coa, correspondent, &input.to_vec()).as_bytes()
        })
        .map_err(|_| DropReason::EmitFailed)?;
    Ok(wrap(repr, Route::Direct, bytes))
}

/// Encodes `repr` (which carries an MN-HA authentication option with 12
/// bytes of data) with `First(96, HMAC_SHA1(key, coa | hoa | MH Data))`
/// (RFC 4285 5.1).
pub(crate) fn transmit_mn_ha(
    repr: &MhPacketRepr,
    key: &MnHaKey,
    coa: Ipv6Addr,
    hoa: Ipv6Addr,
) -> Result<Transmit, DropReason> {
    let bytes = repr
        .to_bytes_with_message_auth(AUTH_SUBTYPE_MN_HA, |input| {
            mn_ha_authenticator(key, coa, hoa, &input.to_vec())
                .as_bytes()
                .to_vec()
        })
        .map_err(|_| DropReason::EmitFailed)?;
    Ok(wrap(repr, Route::Direct, bytes))
}

fn wrap(repr: &MhPacketRepr, route: Route, bytes: Vec<u8>) -> Transmit {
    Transmit {
        src: repr.src_addr,
        dst: repr.dst_addr,
        mh_type: repr.mh.mh_type(),
        route,
        bytes,
    }
}

/// Checks a received message's Binding Authorization Data against `kbm`
/// (RFC 6275 6.2.7, 11.7.3); also requires the option to be last without
/// trailing padding (RFC 6275 9.5.1).
pub(crate) fn verify_binding_auth(
    packet: &ParsedMhPacket<'_>,
    kbm: &Kbm,
    coa: Ipv6Addr,
    correspondent: Ipv6Addr,
) -> Result<(), DropReason> {
    let input = packet
        .binding_auth_input()
        .map_err(|_| DropReason::MissingBindingAuthData)?;
    let field = input.field();
    if field.end != packet.mh_bytes.len() {
        return Err(DropReason::AuthDataNotLast);
    }
    let received = packet
        .mh_bytes
        .get(field)
        .ok_or(DropReason::MissingBindingAuthData)?;
    crate::crypto::verify_bu_authenticator(kbm, coa, correspondent, &input.to_vec(), received)
        .map_err(|_| DropReason::BadAuthenticator)
}

/// Checks a received message's MN-HA authentication data (RFC 4285 5.1).
pub(crate) fn verify_mn_ha(
    packet: &ParsedMhPacket<'_>,
    key: &MnHaKey,
    coa: Ipv6Addr,
    hoa: Ipv6Addr,
) -> Result<(), DropReason> {
    let input = packet
        .message_auth_input(AUTH_SUBTYPE_MN_HA)
        .map_err(|_| DropReason::MissingMnHaAuth)?;
    let received = packet
        .mh_bytes
        .get(input.field())
        .ok_or(DropReason::MissingMnHaAuth)?;
    crate::crypto::verify_mn_ha(key, coa, hoa, &input.to_vec(), received)
        .map_err(|_| DropReason::MnHaAuthFailed)
}

/// Converts a wire error from parsing a received packet to a drop reason.
pub(crate) fn parse_drop_reason(e: &crate::wire::Error) -> DropReason {
    match e {
        crate::wire::Error::BadChecksum { .. } => DropReason::BadChecksum,
        crate::wire::Error::UnknownMhType(_) => DropReason::UnknownMhType,
        _ => DropReason::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_window_modulo_2_16() {
        assert!(seq_newer(1, 0));
        assert!(seq_newer(0, 65535));
        assert!(seq_newer(32767, 0));
        assert!(!seq_newer(32768, 0));
        assert!(!seq_newer(0, 0));
        assert!(!seq_newer(65535, 0));
        assert!(seq_newer(5, 65000));
    }

    #[test]
    fn backoff_doubles_to_cap_and_stops_at_limit() {
        let t0 = Instant::now();
        let cfg = RetransmitConfig {
            max_attempts: Some(8),
            ..RetransmitConfig::default()
        };
        let mut b = Backoff::start(t0, &cfg);
        let mut times = vec![b.next_at()];
        while b.retransmit(times[times.len() - 1], &cfg) {
            times.push(b.next_at());
        }
        let secs: Vec<u64> = times.iter().map(|t| (*t - t0).as_secs()).collect();
        assert_eq!(secs, vec![1, 3, 7, 15, 31, 63, 95, 127]);
        assert_eq!(b.attempts(), 8);
    }

    #[test]
    fn rate_limiter_burst_then_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(2, 3, t0);
        assert_eq!((0..10).filter(|_| r.allow(t0)).count(), 3);
        assert!(!r.allow(t0 + Duration::from_millis(400)));
        assert!(r.allow(t0 + Duration::from_millis(500)));
        assert!(!r.allow(t0 + Duration::from_millis(600)));
        let mut off = RateLimiter::new(0, 10, t0);
        assert!(!off.allow(t0 + Duration::from_secs(100)));
    }
}
