//! Replay protection by timestamp: the Mobility Message Replay Protection
//! option (RFC 4285 section 6).
//!
//! The option carries a 64-bit NTP-format timestamp (RFC 1305): 32 bits of
//! seconds since 1900-01-01 and 32 bits of binary fraction. The home agent
//! accepts a Binding Update only if its timestamp is within a window ("close
//! enough", default 7 s) of the home agent's own clock and strictly newer
//! than the last timestamp accepted for that binding; otherwise it answers
//! MIPV6-ID-MISMATCH with its own time (see [`ReplayError::ba_status`]).
//!
//! Nothing here reads a clock: the caller passes "now" as an
//! [`NtpTimestamp`], typically `NtpTimestamp::from_unix(SystemTime::now()
//! .duration_since(UNIX_EPOCH))` in the daemon and a fixed value in tests.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use super::mnha::STATUS_MIPV6_ID_MISMATCH;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Default "close enough" window (RFC 4285 section 6 suggests 7 seconds).
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(7);

const FRACTIONS_PER_SEC: u128 = 1 << 32;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A 64-bit NTP timestamp: seconds (high 32 bits) and fraction (low 32 bits).
///
/// Comparisons between timestamps use wrapping arithmetic (as NTP does), so
/// they stay correct across the 2036 era rollover as long as the two values
/// are less than 68 years apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// From seconds and fraction (units of 2^-32 s).
    #[must_use]
    pub const fn from_parts(seconds: u32, fraction: u32) -> Self {
        Self(((seconds as u64) << 32) | fraction as u64)
    }

    /// Seconds since the start of the NTP era.
    #[must_use]
    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Fraction of a second in units of 2^-32 s.
    #[must_use]
    pub const fn fraction(self) -> u32 {
        // Truncation intended: the low 32 bits.
        self.0 as u32
    }

    /// From the 8 bytes of the option (network byte order).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(u64::from_be_bytes(bytes))
    }

    /// The 8 bytes of the option (network byte order).
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// From a time given as the duration since the Unix epoch (e.g.
    /// `SystemTime::now().duration_since(UNIX_EPOCH)`). Seconds wrap modulo
    /// 2^32 at the era boundary (2036-02-07), as in NTP. The fraction is
    /// rounded down.
    #[must_use]
    pub fn from_unix(since_unix_epoch: Duration) -> Self {
        let secs = since_unix_epoch
            .as_secs()
            .wrapping_add(NTP_UNIX_OFFSET_SECS);
        let nanos = u128::from(since_unix_epoch.subsec_nanos());
        let fraction = nanos * FRACTIONS_PER_SEC / NANOS_PER_SEC;
        // Truncations intended: seconds modulo 2^32, fraction < 2^32.
        Self::from_parts(secs as u32, fraction as u32)
    }

    /// The duration since the Unix epoch, reading seconds at or above
    /// 2_208_988_800 as era 0 (1970..2036) and below it as era 1
    /// (2036..2106). The fraction is rounded down to whole nanoseconds.
    #[must_use]
    pub fn to_unix(self) -> Duration {
        let secs = u64::from(self.seconds());
        let unix_secs = if secs >= NTP_UNIX_OFFSET_SECS {
            secs - NTP_UNIX_OFFSET_SECS
        } else {
            secs + (1u64 << 32) - NTP_UNIX_OFFSET_SECS
        };
        let nanos = u128::from(self.fraction()) * NANOS_PER_SEC / FRACTIONS_PER_SEC;
        // nanos < 1e9 fits in u32.
        Duration::new(unix_secs, nanos as u32)
    }

    /// `self - other` in units of 2^-32 s, with NTP wrapping semantics:
    /// positive when `self` is later.
    #[must_use]
    pub const fn offset_from(self, other: Self) -> i64 {
        // Reinterpretation intended: two's-complement difference.
        self.0.wrapping_sub(other.0) as i64
    }
}

/// Converts a duration to 2^-32 s units, saturating at `i64::MAX`.
fn duration_to_units(d: Duration) -> i64 {
    let units = d.as_nanos().saturating_mul(FRACTIONS_PER_SEC) / NANOS_PER_SEC;
    i64::try_from(units).unwrap_or(i64::MAX)
}

/// Converts 2^-32 s units to a duration (absolute value).
fn units_to_duration(units: i64) -> Duration {
    let abs = u128::from(units.unsigned_abs());
    let nanos = abs * NANOS_PER_SEC / FRACTIONS_PER_SEC;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Configuration of a [`ReplayGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Largest accepted difference between a received timestamp and "now",
    /// in either direction (inclusive).
    pub window: Duration,
    /// Most bindings remembered at once (memory bound).
    pub max_bindings: usize,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_REPLAY_WINDOW,
            max_bindings: 65_536,
        }
    }
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Too far from the home agent's clock.
    #[error("timestamp {} by {skew:?} (window {window:?})", if *.ahead { "ahead" } else { "behind" })]
    OutOfWindow {
        /// The received timestamp.
        received: NtpTimestamp,
        /// True if the timestamp is later than "now".
        ahead: bool,
        /// How far from "now".
        skew: Duration,
        /// The configured window.
        window: Duration,
    },
    /// Not strictly newer than the last accepted timestamp of this binding:
    /// a replay (or a reordered message).
    #[error("timestamp not newer than last accepted one (replay)")]
    NotNewer {
        /// The received timestamp.
        received: NtpTimestamp,
        /// The last accepted one.
        last_accepted: NtpTimestamp,
    },
    /// A new binding cannot be remembered: the table is full of bindings
    /// whose timestamps are still within the window.
    #[error("replay table full ({capacity} bindings)")]
    TableFull {
        /// The configured capacity.
        capacity: usize,
    },
}

impl ReplayError {
    /// The BA status to answer with: MIPV6-ID-MISMATCH (144) for a refused
    /// timestamp, `None` (drop and count) when the table is full.
    #[must_use]
    pub fn ba_status(&self) -> Option<u8> {
        match self {
            Self::OutOfWindow { .. } | Self::NotNewer { .. } => Some(STATUS_MIPV6_ID_MISMATCH),
            Self::TableFull { .. } => None,
        }
    }
}

/// Remembers the last accepted timestamp per binding (key `K`: e.g. the home
/// address, or `(Spi, Ipv6Addr)`) and checks new ones against it and the
/// window. Call [`accept`](Self::accept) only after the message's
/// authentication verified, so forgeries cannot advance the timestamp.
#[derive(Debug, Clone)]
pub struct ReplayGuard<K> {
    config: ReplayConfig,
    last: HashMap<K, NtpTimestamp>,
}

impl<K: Eq + Hash> ReplayGuard<K> {
    /// An empty guard.
    #[must_use]
    pub fn new(config: ReplayConfig) -> Self {
        Self {
            config,
            last: HashMap::new(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ReplayConfig {
        &self.config
    }

    /// Checks `received` for binding `key` at `now` without recording it.
    pub fn check(
        &self,
        key: &K,
        received: NtpTimestamp,
        now: NtpTimestamp,
    ) -> Result<(), ReplayError> {
        let offset = received.offset_from(now);
        if offset.unsigned_abs() > duration_to_units(self.config.window).unsigned_abs() {
            return Err(ReplayError::OutOfWindow {
                received,
                ahead: offset > 0,
                skew: units_to_duration(offset),
                window: self.config.window,
            });
        }
        if let Some(&last_accepted) = self.last.get(key)
            && received.offset_from(last_accepted) <= 0
        {
            return Err(ReplayError::NotNewer {
                received,
                last_accepted,
            });
        }
        Ok(())
    }

    /// Checks `received` and, if acceptable, records it as the binding's last
    /// accepted timestamp.
    pub fn accept(
        &mut self,
        key: K,
        received: NtpTimestamp,
        now: NtpTimestamp,
    ) -> Result<(), ReplayError> {
        self.check(&key, received, now)?;
        if !self.last.contains_key(&key) && self.last.len() >= self.config.max_bindings {
            self.prune(now);
            if self.last.len() >= self.config.max_bindings {
                return Err(ReplayError::TableFull {
                    capacity: self.config.max_bindings,
                });
            }
        }
        self.last.insert(key, received);
        Ok(())
    }

    /// Drops bindings whose last timestamp is older than `now - window`: any
    /// replay of their messages is out of the window anyway.
    pub fn prune(&mut self, now: NtpTimestamp) {
        let window = duration_to_units(self.config.window);
        self.last.retain(|_, ts| now.offset_from(*ts) <= window);
    }

    /// The last accepted timestamp of `key`.
    #[must_use]
    pub fn last_accepted(&self, key: &K) -> Option<NtpTimestamp> {
        self.last.get(key).copied()
    }

    /// Number of bindings remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// True when no binding is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
