//! The correspondent node's nonces and Kcn (RFC 6275 5.2.3, 5.2.7), sans-IO.
//!
//! * A new nonce, with the next (wrapping) [`NonceIndex`], is generated every
//!   `nonce_interval` (default 30 s = `MAX_NONCE_LIFETIME - MAX_TOKEN_LIFETIME`,
//!   the RFC's suggestion): [`NonceTable::current`] always hands out a nonce
//!   younger than the interval, so every token stays usable for at least
//!   `MAX_TOKEN_LIFETIME` after it was sent.
//! * Each nonce is accepted while it is younger than `MAX_NONCE_LIFETIME`
//!   (240 s) *counted from its generation* (which is before its first use, so
//!   the RFC's "MUST NOT accept nonces beyond MAX_NONCE_LIFETIME seconds after
//!   the first use" holds); at exactly 240 s it is expired.
//! * Kcn is updated together with a nonce (5.2.7: "so that nonce index can
//!   identify both the nonce and the key"): every nonce entry keeps the Kcn
//!   generation it was issued under, so tokens issued just before a rotation
//!   still verify, and an old Kcn disappears with the last nonce that uses it.
//! * Memory: at most `ceil(240 s / interval) + 1` entries (241 at the 1 s
//!   minimum interval), far below the 65536 indices, so an index is never
//!   ambiguous.
//!
//! Nothing here reads a clock: every call takes `now`, and randomness comes
//! from the injected [`RandomSource`].

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::random::{RandomError, RandomSource};
use super::rr::{Kcn, KcnKey, KeygenToken, Nonce, NonceIndex, TokenKind};

/// MAX_NONCE_LIFETIME: a nonce is never accepted for longer (RFC 6275 12).
pub const MAX_NONCE_LIFETIME: Duration = Duration::from_secs(240);
/// MAX_TOKEN_LIFETIME: a token should stay usable at least this long after it
/// was sent (RFC 6275 12, 5.2.7).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(210);
/// MAX_RR_BINDING_LIFETIME: the longest binding lifetime a correspondent
/// grants to a Return-Routability-authorized Binding Update (RFC 6275 12, 9.5.1).
pub const MAX_RR_BINDING_LIFETIME: Duration = Duration::from_secs(420);
/// Default nonce generation interval (RFC 6275 5.2.7: "generate a new nonce
/// every 30 seconds").
pub const DEFAULT_NONCE_INTERVAL: Duration = Duration::from_secs(30);
/// Shortest accepted interval; keeps the table small (at most 241 live nonces).
pub const MIN_NONCE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest accepted interval: a longer one would let a token issued at the end
/// of an interval expire sooner than MAX_TOKEN_LIFETIME (RFC 6275 5.2.7).
pub const MAX_NONCE_INTERVAL: Duration = DEFAULT_NONCE_INTERVAL;

/// Configuration of a [`NonceTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceConfig {
    /// How often a new nonce is generated, in
    /// `[MIN_NONCE_INTERVAL, MAX_NONCE_INTERVAL]`.
    pub nonce_interval: Duration,
    /// If set, Kcn is replaced at the first nonce generation at least this
    /// long after the current Kcn was created. `None`: only on
    /// [`NonceTable::rotate_kcn`].
    pub kcn_lifetime: Option<Duration>,
}

impl Default for NonceConfig {
    fn default() -> Self {
        Self {
            nonce_interval: DEFAULT_NONCE_INTERVAL,
            kcn_lifetime: Some(Duration::from_secs(3600)),
        }
    }
}

/// Why a nonce could not be issued or looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// No nonce with this index is held: never issued, or already dropped
    /// after expiry (RFC 6275 5.2.7: reply with status 136/137/138).
    #[error("unknown nonce index {}", .0.0)]
    UnknownIndex(NonceIndex),
    /// The nonce exists but is MAX_NONCE_LIFETIME old or older.
    #[error("nonce index {} expired ({age:?} old)", .index.0)]
    Expired {
        /// The index that was asked for.
        index: NonceIndex,
        /// Its age at `now`.
        age: Duration,
    },
    /// The configured nonce interval is outside
    /// `[MIN_NONCE_INTERVAL, MAX_NONCE_INTERVAL]`.
    #[error("nonce interval {0:?} outside [1 s, 30 s]")]
    InvalidInterval(Duration),
    /// Generating a nonce or Kcn failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// One generation of Kcn together with its prepared HMAC key.
struct KcnGeneration {
    generation: u64,
    kcn: Kcn,
    key: KcnKey,
    created: Instant,
}

/// A live nonce: its index, value, issue time and the Kcn it is bound to.
#[derive(Clone)]
pub struct NonceEntry {
    serial: u64,
    index: NonceIndex,
    nonce: Nonce,
    generated: Instant,
    kcn: Arc<KcnGeneration>,
}

impl NonceEntry {
    /// The nonce index that goes on the wire.
    #[must_use]
    pub fn index(&self) -> NonceIndex {
        self.index
    }

    /// The nonce value.
    #[must_use]
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    /// The Kcn this nonce was issued under.
    #[must_use]
    pub fn kcn(&self) -> &Kcn {
        &self.kcn.kcn
    }

    /// Which Kcn generation (0 for the first, +1 per rotation).
    #[must_use]
    pub fn kcn_generation(&self) -> u64 {
        self.kcn.generation
    }

    /// A number unique over the table's life (unlike the index, it never
    /// wraps): used as cache key for keygen tokens.
    #[must_use]
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// When the nonce was generated.
    #[must_use]
    pub fn generated(&self) -> Instant {
        self.generated
    }

    /// The first instant at which the nonce is no longer accepted.
    #[must_use]
    pub fn expires(&self) -> Instant {
        self.generated + MAX_NONCE_LIFETIME
    }

    /// The keygen token of `kind` for `addr` under this nonce and its Kcn
    /// (RFC 6275 5.2.5), using the Kcn's prepared HMAC key.
    #[must_use]
    pub fn token(&self, addr: Ipv6Addr, kind: TokenKind) -> KeygenToken {
        self.kcn.key.token(addr, &self.nonce, kind)
    }
}

impl fmt::Debug for NonceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceEntry")
            .field("index", &self.index.0)
            .field("serial", &self.serial)
            .field("kcn_generation", &self.kcn.generation)
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

/// Nonces and Kcn of a correspondent node. See the module docs.
pub struct NonceTable {
    config: NonceConfig,
    rng: Box<dyn RandomSource + Send>,
    /// Live nonces, oldest first, with consecutive serials.
    entries: VecDeque<NonceEntry>,
    kcn: Arc<KcnGeneration>,
    kcn_rotation_pending: bool,
    next_rotation: Instant,
    next_serial: u64,
}

impl fmt::Debug for NonceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceTable")
            .field("config", &self.config)
            .field("live_nonces", &self.entries.len())
            .field("kcn_generation", &self.kcn.generation)
            .field("next_rotation", &self.next_rotation)
            .finish_non_exhaustive()
    }
}

impl NonceTable {
    /// A table with a fresh random Kcn and a first nonce (index 0) at `now`.
    pub fn new(
        config: NonceConfig,
        mut rng: Box<dyn RandomSource + Send>,
        now: Instant,
    ) -> Result<Self, NonceError> {
        let kcn = Kcn::generate(rng.as_mut())?;
        Self::with_kcn(config, rng, kcn, now)
    }

    /// Like [`new`](Self::new) but with a given first Kcn (labs and tests
    /// derive it from the group secret, see
    /// [`KeyHierarchy::lab_kcn`](super::KeyHierarchy::lab_kcn)). Later
    /// rotations draw from `rng`.
    pub fn with_kcn(
        config: NonceConfig,
        rng: Box<dyn RandomSource + Send>,
        kcn: Kcn,
        now: Instant,
    ) -> Result<Self, NonceError> {
        if !(MIN_NONCE_INTERVAL..=MAX_NONCE_INTERVAL).contains(&config.nonce_interval) {
            return Err(NonceError::InvalidInterval(config.nonce_interval));
        }
        let mut table = Self {
            config,
            rng,
            entries: VecDeque::new(),
            kcn: Arc::new(KcnGeneration {
                generation: 0,
                key: KcnKey::new(&kcn),
                kcn,
                created: now,
            }),
            kcn_rotation_pending: false,
            next_rotation: now,
            next_serial: 0,
        };
        table.generate_nonce(now)?;
        Ok(table)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &NonceConfig {
        &self.config
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        self.next_rotation
    }

    /// Generates the next nonce (and Kcn, if due) when the interval has
    /// passed, and drops expired nonces. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), NonceError> {
        if now >= self.next_rotation {
            self.generate_nonce(now)?;
        }
        Ok(())
    }

    /// The nonce to put into HoT/CoT messages now (rotating first if due).
    /// Returned by value (a cheap clone: the Kcn is shared) so the table can
    /// be used again while the entry is held.
    pub fn current(&mut self, now: Instant) -> Result<NonceEntry, NonceError> {
        self.handle_timeout(now)?;
        self.entries
            .back()
            .cloned()
            .ok_or(NonceError::UnknownIndex(NonceIndex(0)))
    }

    /// Issues a keygen token for a HoT (`kind = Home`, `addr` = home address)
    /// or CoT (`kind = CareOf`, `addr` = care-of address) under the current
    /// nonce (RFC 6275 5.2.5, 9.4.1-9.4.4).
    pub fn issue_token(
        &mut self,
        addr: Ipv6Addr,
        kind: TokenKind,
        now: Instant,
    ) -> Result<(NonceIndex, KeygenToken), NonceError> {
        let entry = self.current(now)?;
        Ok((entry.index(), entry.token(addr, kind)))
    }

    /// The live nonce with `index`, or why not (RFC 6275 9.5.1: an unknown or
    /// expired index makes the correspondent reply with status 136/137/138).
    pub fn lookup(&self, index: NonceIndex, now: Instant) -> Result<&NonceEntry, NonceError> {
        let oldest = self
            .entries
            .front()
            .ok_or(NonceError::UnknownIndex(index))?;
        let offset = usize::from(index.0.wrapping_sub(oldest.index.0));
        let entry = self
            .entries
            .get(offset)
            .filter(|e| e.index == index)
            .ok_or(NonceError::UnknownIndex(index))?;
        let age = now.saturating_duration_since(entry.generated);
        if age >= MAX_NONCE_LIFETIME {
            return Err(NonceError::Expired { index, age });
        }
        Ok(entry)
    }

    /// Recomputes the keygen token of `kind` for `addr` under the nonce
    /// `index` and the Kcn that nonce was issued under.
    pub fn token(
        &self,
        index: NonceIndex,
        addr: Ipv6Addr,
        kind: TokenKind,
        now: Instant,
    ) -> Result<KeygenToken, NonceError> {
        Ok(self.lookup(index, now)?.token(addr, kind))
    }

    /// Replaces Kcn now and generates a nonce bound to the new Kcn. Nonces
    /// issued before keep verifying with the old Kcn until they expire.
    pub fn rotate_kcn(&mut self, now: Instant) -> Result<(), NonceError> {
        self.kcn_rotation_pending = true;
        self.generate_nonce(now)
    }

    /// Number of nonces held (live, or expired but not yet dropped).
    #[must_use]
    pub fn live_nonces(&self) -> usize {
        self.entries.len()
    }

    /// Generation number of the current Kcn (0 for the first).
    #[must_use]
    pub fn kcn_generation(&self) -> u64 {
        self.kcn.generation
    }

    /// Serial of the oldest nonce that is still accepted at `now` (token
    /// caches drop entries below it).
    #[must_use]
    pub fn oldest_live_serial(&self, now: Instant) -> u64 {
        self.entries
            .iter()
            .find(|e| now.saturating_duration_since(e.generated) < MAX_NONCE_LIFETIME)
            .map_or(self.next_serial, |e| e.serial)
    }

    fn kcn_due(&self, now: Instant) -> bool {
        self.kcn_rotation_pending
            || self
                .config
                .kcn_lifetime
                .is_some_and(|life| now.saturating_duration_since(self.kcn.created) >= life)
    }

    fn generate_nonce(&mut self, now: Instant) -> Result<(), NonceError> {
        if self.kcn_due(now) {
            let kcn = Kcn::generate(self.rng.as_mut())?;
            self.kcn = Arc::new(KcnGeneration {
                generation: self.kcn.generation.wrapping_add(1),
                key: KcnKey::new(&kcn),
                kcn,
                created: now,
            });
            self.kcn_rotation_pending = false;
        }
        let nonce = Nonce::generate(self.rng.as_mut())?;
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        self.entries.push_back(NonceEntry {
            serial,
            // Truncation intended: the index is the serial modulo 2^16.
            index: NonceIndex(serial as u16),
            nonce,
            generated: now,
            kcn: Arc::clone(&self.kcn),
        });
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.generated) >= MAX_NONCE_LIFETIME)
        {
            self.entries.pop_front();
        }
        self.next_rotation = now + self.config.nonce_interval;
        Ok(())
    }
}
