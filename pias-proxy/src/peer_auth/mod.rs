//! Inter-proxy authentication and confidentiality: every proxy-to-proxy
//! datagram (peer messages on [`PEER_PORT`](crate::wire::PEER_PORT), SWIM on
//! the SWIM port) is sealed with ChaCha20-Poly1305 (RFC 8439) under a key
//! derived from the cluster's shared inter-proxy key. Seed 001 3.2 assumes
//! the proxies trust each other; this is what makes the trust explicit: a
//! host without the key can neither join SWIM nor forge, read or replay
//! peer messages (join credentials of dynamic groups travel in them).
//!
//! Layout of a sealed datagram (integers big-endian):
//! ```text
//! 0         1         2          4                20          28          36           44
//! | version | purpose | reserved | sender (16)   | session (8) | counter (8) | stamp ms (8) | ciphertext | tag (16)
//! ```
//! The whole 44-byte header is the AEAD's associated data, so the sender
//! address, session, counter and stamp are authenticated; the receiver also
//! requires the sender address to equal the datagram's UDP source.
//!
//! Keys (RFC 5869 HKDF-SHA256): a purpose key per use (`peer`, `swim`)
//! from the shared key, then per (sender, session) an AEAD key
//! `HKDF(purpose key, sender || session)`. The nonce is the 64-bit counter,
//! which the sender never repeats within a session; since every sender and
//! every start has its own key, nonces never repeat under one key even
//! though all proxies share the secret.
//!
//! Replay protection and restarts:
//! - The session id is random per start of the proxy (the shell draws it
//!   from the OS); the counter grows by one per datagram.
//! - Per (sender, session) a sliding window of [`REPLAY_WINDOW`] counters
//!   (RFC 4303 3.4.3 style) drops duplicates and datagrams older than the
//!   window; reordering within the window is accepted.
//! - The stamp is wall-clock time in ms: a datagram is accepted only within
//!   [`ReplayConfig::max_skew`] of the receiver's wall clock. That bounds how
//!   long a captured datagram of a session the receiver forgot (or never
//!   saw) can be replayed. Stamps before the receiver's own start are
//!   refused too, so a restarted receiver, which has lost its windows, does
//!   not accept anything recorded before it came up.
//! - Another proxy's restart shows as a new session of the same sender:
//!   accepted (its stamps are fresh) next to the old one. At most
//!   [`ReplayConfig::sessions_per_sender`] sessions per sender and
//!   [`ReplayConfig::max_senders`] senders are kept; evicting one raises a
//!   floor (per sender, or global for a sender) below which stamps are
//!   refused, so nothing whose window was forgotten can be accepted twice.
//!   State is created only for datagrams that authenticated, so only
//!   holders of the key can make it grow.
//!
//! Sans-IO: no clock is read here. The shell reads the wall clock once at
//! start ([`WallClock`]); stamps are that anchor advanced by the `now:
//! Instant` of each event (the monotonic clock, which NTP slews but never
//! steps, so stamps never go backwards).

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hkdf::Hkdf;
use ring::aead;
use sha2::Sha256;

#[cfg(test)]
mod tests;

/// The only version of the sealed format.
pub const VERSION: u8 = 1;
/// Header length (associated data).
pub const HEADER_LEN: usize = 44;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Bytes sealing adds to a datagram.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Shortest inter-proxy key.
pub const MIN_KEY_LEN: usize = 16;
/// Longest inter-proxy key.
pub const MAX_KEY_LEN: usize = 64;
/// Longest plaintext (a UDP datagram over IPv6 without jumbograms).
pub const MAX_PLAINTEXT: usize = 65_527 - OVERHEAD;
/// Counters per (sender, session) remembered behind the highest one.
pub const REPLAY_WINDOW: u64 = 64;

const SALT: &[u8] = b"pias-proxy inter-proxy key v1";

mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const PURPOSE: usize = 1;
    pub const RESERVED: Range<usize> = 2..4;
    pub const SENDER: Range<usize> = 4..20;
    pub const SESSION: Range<usize> = 20..28;
    pub const COUNTER: Range<usize> = 28..36;
    pub const STAMP: Range<usize> = 36..44;
}

/// What a sealed datagram is for; each purpose has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Peer messages ([`MessageRepr`](crate::wire::MessageRepr) on `PEER_PORT`).
    Peer,
    /// SWIM datagrams (foca).
    Swim,
}

impl Purpose {
    /// Wire code.
    pub fn to_u8(self) -> u8 {
        match self {
            Purpose::Peer => 1,
            Purpose::Swim => 2,
        }
    }

    /// From the wire code.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Purpose::Peer),
            2 => Some(Purpose::Swim),
            _ => None,
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Peer => b"pias peer messages",
            Purpose::Swim => b"pias swim",
        }
    }
}

/// Why a key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Too short or too long.
    #[error("inter-proxy key: {0} bytes, need {MIN_KEY_LEN} to {MAX_KEY_LEN}")]
    Length(usize),
    /// Not hex.
    #[error("inter-proxy key: not an even number of hex digits")]
    Hex,
}

/// The cluster's shared inter-proxy key (`peer_key` in the daemon's
/// configuration). `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerKey(Vec<u8>);

impl PeerKey {
    /// A key of [`MIN_KEY_LEN`] to [`MAX_KEY_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
            return Err(KeyError::Length(bytes.len()));
        }
        Ok(PeerKey(bytes.to_vec()))
    }

    /// A key written in hex.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if !text.is_ascii() || !text.len().is_multiple_of(2) || text.len() > 2 * MAX_KEY_LEN {
            return Err(KeyError::Hex);
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| KeyError::Hex))
            .collect::<Result<Vec<u8>, KeyError>>()?;
        Self::new(&bytes)
    }

    /// HKDF-SHA256 of the purpose key (RFC 5869), ready to expand per
    /// (sender, session).
    fn purpose_hkdf(&self, purpose: Purpose) -> Hkdf<Sha256> {
        let mut k = [0u8; 32];
        let hk = Hkdf::<Sha256>::new(Some(SALT), &self.0);
        // 32 bytes is far below HKDF-SHA256's 255 * 32 limit.
        let _ = hk.expand(purpose.label(), &mut k);
        Hkdf::<Sha256>::new(None, &k)
    }
}

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKey(<redacted, {} bytes>)", self.0.len())
    }
}

/// Wall-clock time as the machine knows it: an anchor the shell reads once
/// (an `Instant` and the wall clock at that instant), advanced by `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    at: Instant,
    unix_ms: u64,
}

impl WallClock {
    /// Anchors `wall` at `at`.
    pub fn new(at: Instant, wall: SystemTime) -> Self {
        let d = wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self::from_unix_ms(at, u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Anchors `unix_ms` (ms since 1970) at `at`.
    pub fn from_unix_ms(at: Instant, unix_ms: u64) -> Self {
        WallClock { at, unix_ms }
    }

    /// Wall-clock ms at `now` (the anchor for instants before it).
    pub fn unix_ms(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.at).as_millis();
        self.unix_ms
            .saturating_add(u64::try_from(d).unwrap_or(u64::MAX))
    }
}

/// Bounds of the replay state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Largest difference between a datagram's stamp and the receiver's
    /// wall clock (clock skew plus network delay).
    pub max_skew: Duration,
    /// Senders remembered.
    pub max_senders: usize,
    /// Sessions (starts) remembered per sender.
    pub sessions_per_sender: usize,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            max_skew: Duration::from_secs(5),
            max_senders: 1024,
            sessions_per_sender: 4,
        }
    }
}

/// What a machine needs to seal and open: the shared key, this start's
/// session id (random, from the OS), the wall-clock anchor, replay bounds.
#[derive(Debug, Clone)]
pub struct PeerAuthConfig {
    /// The shared inter-proxy key.
    pub key: PeerKey,
    /// Random per start of the proxy; never reused with the same key.
    pub session: u64,
    /// Wall-clock anchor.
    pub clock: WallClock,
    /// Replay bounds.
    pub replay: ReplayConfig,
}

impl PeerAuthConfig {
    /// Defaults for the replay bounds.
    pub fn new(key: PeerKey, session: u64, clock: WallClock) -> Self {
        PeerAuthConfig {
            key,
            session,
            clock,
            replay: ReplayConfig::default(),
        }
    }
}

/// Why a sealed datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than header and tag.
    #[error("sealed datagram truncated: {0} bytes")]
    Truncated(usize),
    /// Unknown version.
    #[error("sealed datagram version {0}")]
    BadVersion(u8),
    /// Unknown purpose, or another purpose than this port's.
    #[error("sealed datagram purpose {0}")]
    WrongPurpose(u8),
    /// The sender field is not the UDP source.
    #[error("sender {sender} is not the source {src}")]
    SenderMismatch {
        /// Claimed sender.
        sender: Ipv6Addr,
        /// UDP source.
        src: Ipv6Addr,
    },
    /// Claims to be from this proxy.
    #[error("datagram claims to be from this proxy")]
    FromSelf,
    /// Stamp outside the skew window or before this proxy started.
    #[error("stamp {stamp_ms} ms outside the window around {wall_ms} ms")]
    Stale {
        /// Stamp carried.
        stamp_ms: u64,
        /// Receiver's wall clock.
        wall_ms: u64,
    },
    /// A session this receiver evicted (or older).
    #[error("session of {0} forgotten")]
    OldSession(Ipv6Addr),
    /// Counter seen before or behind the window.
    #[error("replayed counter {0}")]
    Replay(u64),
    /// The tag did not verify: forged, corrupted, or sealed under another key.
    #[error("authentication failed")]
    Forged,
}

impl OpenError {
    /// Counter name for drop statistics.
    pub fn reason(&self) -> &'static str {
        match self {
            OpenError::Truncated(_) => "auth_truncated",
            OpenError::BadVersion(_) => "auth_version",
            OpenError::WrongPurpose(_) => "auth_purpose",
            OpenError::SenderMismatch { .. } => "auth_sender_mismatch",
            OpenError::FromSelf => "auth_from_self",
            OpenError::Stale { .. } => "auth_stale",
            OpenError::OldSession(_) => "auth_old_session",
            OpenError::Replay(_) => "auth_replay",
            OpenError::Forged => "auth_forged",
        }
    }
}

/// Why sealing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Plaintext above [`MAX_PLAINTEXT`].
    #[error("plaintext of {0} bytes too long")]
    TooLong(usize),
    /// The session's counter is used up (2^64 datagrams).
    #[error("session counter exhausted")]
    CounterExhausted,
    /// The AEAD refused (cannot happen for in-range lengths).
    #[error("AEAD failure")]
    Crypto,
}

/// Zero-copy view of a sealed datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Sealed<T> {
    /// Wraps bytes without checking; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Sealed { buffer }
    }

    /// Wraps bytes holding at least a header and a tag.
    pub fn new_checked(buffer: T) -> Result<Self, OpenError> {
        let s = Self::new_unchecked(buffer);
        s.check_len()?;
        Ok(s)
    }

    /// Checks header and tag fit.
    pub fn check_len(&self) -> Result<(), OpenError> {
        let n = self.buffer.as_ref().len();
        if n < OVERHEAD {
            return Err(OpenError::Truncated(n));
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u64_at(&self, r: std::ops::Range<usize>) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.buffer.as_ref()[r]);
        u64::from_be_bytes(a)
    }

    /// Format version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Purpose code ([`Purpose::to_u8`]).
    pub fn purpose(&self) -> u8 {
        self.buffer.as_ref()[field::PURPOSE]
    }

    /// Sender's unicast address.
    pub fn sender(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SENDER]);
        Ipv6Addr::from(a)
    }

    /// Sender's session id (random per start).
    pub fn session(&self) -> u64 {
        self.u64_at(field::SESSION)
    }

    /// Counter within the session (the AEAD nonce).
    pub fn counter(&self) -> u64 {
        self.u64_at(field::COUNTER)
    }

    /// Sender's wall clock, ms since 1970.
    pub fn stamp_ms(&self) -> u64 {
        self.u64_at(field::STAMP)
    }

    /// The header (associated data).
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }

    /// Ciphertext and tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Sealed<T> {
    /// Sets the version.
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }

    /// Sets the purpose code.
    pub fn set_purpose(&mut self, p: u8) {
        self.buffer.as_mut()[field::PURPOSE] = p;
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }

    /// Sets the sender.
    pub fn set_sender(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SENDER].copy_from_slice(&a.octets());
    }

    /// Sets the session id.
    pub fn set_session(&mut self, v: u64) {
        self.buffer.as_mut()[field::SESSION].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the counter.
    pub fn set_counter(&mut self, v: u64) {
        self.buffer.as_mut()[field::COUNTER].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the stamp.
    pub fn set_stamp_ms(&mut self, v: u64) {
        self.buffer.as_mut()[field::STAMP].copy_from_slice(&v.to_be_bytes());
    }

    /// Ciphertext and tag, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The header of a sealed datagram, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedRepr {
    /// Purpose.
    pub purpose: Purpose,
    /// Sender.
    pub sender: Ipv6Addr,
    /// Session id.
    pub session: u64,
    /// Counter.
    pub counter: u64,
    /// Wall-clock stamp, ms since 1970.
    pub stamp_ms: u64,
}

impl SealedRepr {
    /// Parses a checked view's header (the tag is checked by [`PeerAuth::open`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(s: &Sealed<&T>) -> Result<Self, OpenError> {
        s.check_len()?;
        if s.version() != VERSION {
            return Err(OpenError::BadVersion(s.version()));
        }
        let purpose = Purpose::from_u8(s.purpose()).ok_or(OpenError::WrongPurpose(s.purpose()))?;
        Ok(SealedRepr {
            purpose,
            sender: s.sender(),
            session: s.session(),
            counter: s.counter(),
            stamp_ms: s.stamp_ms(),
        })
    }

    /// Bytes of a sealed datagram carrying `plaintext_len` bytes.
    pub fn buffer_len(&self, plaintext_len: usize) -> usize {
        OVERHEAD + plaintext_len
    }

    /// Writes the header (the payload is left alone).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, s: &mut Sealed<&mut T>) {
        s.set_version(VERSION);
        s.set_purpose(self.purpose.to_u8());
        s.set_sender(self.sender);
        s.set_session(self.session);
        s.set_counter(self.counter);
        s.set_stamp_ms(self.stamp_ms);
    }
}

fn nonce(counter: u64) -> aead::Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    aead::Nonce::assume_unique_for_key(n)
}

/// Replay state of one (sender, session).
#[derive(Debug, Clone)]
struct Session {
    id: u64,
    key: aead::LessSafeKey,
    /// Highest counter accepted.
    top: u64,
    /// Bit i: counter `top - i` accepted.
    seen: u64,
    /// Highest stamp accepted.
    max_stamp: u64,
}

impl Session {
    fn fresh(&self, c: u64) -> bool {
        if c > self.top {
            return true;
        }
        let d = self.top - c;
        d < REPLAY_WINDOW && self.seen & (1u64 << d) == 0
    }

    fn mark(&mut self, c: u64, stamp: u64) {
        if c > self.top {
            let shift = c - self.top;
            self.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = c;
        } else {
            self.seen |= 1u64 << (self.top - c);
        }
        self.max_stamp = self.max_stamp.max(stamp);
    }
}

#[derive(Debug, Clone, Default)]
struct Sender {
    sessions: Vec<Session>,
    /// Stamps at or below are refused (raised when a session is evicted).
    floor_ms: u64,
    /// Highest stamp accepted from this sender.
    last_ms: u64,
}

/// Sealing and opening for one proxy and one [`Purpose`].
pub struct PeerAuth {
    purpose: Purpose,
    me: Ipv6Addr,
    session: u64,
    next_counter: u64,
    seal_key: aead::LessSafeKey,
    hk: Hkdf<Sha256>,
    clock: WallClock,
    cfg: ReplayConfig,
    /// Stamps below are refused from anyone: this proxy's start, raised
    /// when a whole sender is evicted.
    floor_ms: u64,
    senders: HashMap<Ipv6Addr, Sender>,
    /// Datagrams sealed.
    pub sealed: u64,
    /// Datagrams opened.
    pub opened: u64,
}

impl fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerAuth")
            .field("purpose", &self.purpose)
            .field("me", &self.me)
            .field("senders", &self.senders.len())
            .field("sealed", &self.sealed)
            .field("opened", &self.opened)
            .finish()
    }
}

impl PeerAuth {
    /// Sealing as `me` for `purpose`.
    pub fn new(cfg: &PeerAuthConfig, purpose: Purpose, me: Ipv6Addr) -> Self {
        let hk = cfg.key.purpose_hkdf(purpose);
        let seal_key = session_key(&hk, me, cfg.session);
        PeerAuth {
            purpose,
            me,
            session: cfg.session,
            next_counter: 1,
            seal_key,
            hk,
            clock: cfg.clock,
            cfg: cfg.replay,
            floor_ms: cfg.clock.unix_ms(cfg.clock.at),
            senders: HashMap::new(),
            sealed: 0,
            opened: 0,
        }
    }

    /// This proxy's session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Senders with replay state.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    /// Seals `plaintext` as the next datagram of this session.
    pub fn seal(&mut self, now: Instant, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let len = plaintext.len();
        if len > MAX_PLAINTEXT {
            return Err(SealError::TooLong(len));
        }
        let counter = self.next_counter;
        if counter == u64::MAX {
            return Err(SealError::CounterExhausted);
        }
        self.next_counter += 1;
        let repr = SealedRepr {
            purpose: self.purpose,
            sender: self.me,
            session: self.session,
            counter,
            stamp_ms: self.clock.unix_ms(now),
        };
        let mut out = vec![0u8; repr.buffer_len(len)];
        repr.emit(&mut Sealed::new_unchecked(&mut out[..]));
        let (header, rest) = out.split_at_mut(HEADER_LEN);
        let (body, tag_out) = rest.split_at_mut(len);
        body.copy_from_slice(plaintext);
        let tag = self
            .seal_key
            .seal_in_place_separate_tag(nonce(counter), aead::Aad::from(&*header), body)
            .map_err(|_| SealError::Crypto)?;
        tag_out.copy_from_slice(tag.as_ref());
        self.sealed += 1;
        Ok(out)
    }

    /// Opens a datagram whose UDP source is `src`: checks format, sender,
    /// stamp window, replay window, then the tag; returns the plaintext.
    /// Replay state changes only for datagrams that authenticated.
    pub fn open(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        datagram: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        let view = Sealed::new_checked(datagram)?;
        let h = SealedRepr::parse(&view)?;
        if h.purpose != self.purpose {
            return Err(OpenError::WrongPurpose(h.purpose.to_u8()));
        }
        if h.sender != src {
            return Err(OpenError::SenderMismatch {
                sender: h.sender,
                src,
            });
        }
        if h.sender == self.me {
            return Err(OpenError::FromSelf);
        }
        let wall_ms = self.clock.unix_ms(now);
        let skew = u64::try_from(self.cfg.max_skew.as_millis()).unwrap_or(u64::MAX);
        if h.stamp_ms.abs_diff(wall_ms) > skew || h.stamp_ms < self.floor_ms {
            return Err(OpenError::Stale {
                stamp_ms: h.stamp_ms,
                wall_ms,
            });
        }
        let sender = self.senders.get(&src);
        if sender.is_some_and(|s| h.stamp_ms <= s.floor_ms) {
            return Err(OpenError::OldSession(src));
        }
        let known = sender.and_then(|s| s.sessions.iter().find(|x| x.id == h.session));
        if known.is_some_and(|s| !s.fresh(h.counter)) {
            return Err(OpenError::Replay(h.counter));
        }
        let derived = match known {
            Some(_) => None,
            None => Some(session_key(&self.hk, src, h.session)),
        };
        let Some(key) = known.map(|s| &s.key).or(derived.as_ref()) else {
            return Err(OpenError::Forged);
        };
        let mut buf = view.payload().to_vec();
        let plain_len = key
            .open_in_place(nonce(h.counter), aead::Aad::from(view.header()), &mut buf)
            .map_err(|_| OpenError::Forged)?
            .len();
        buf.truncate(plain_len);
        self.commit(src, h, derived);
        self.opened += 1;
        Ok(buf)
    }

    /// Records an authenticated datagram; `new_key` is set for a session
    /// not seen before.
    fn commit(&mut self, src: Ipv6Addr, h: SealedRepr, new_key: Option<aead::LessSafeKey>) {
        if !self.senders.contains_key(&src) && self.senders.len() >= self.cfg.max_senders.max(1) {
            // Forget the sender heard from longest ago; nothing it sent
            // before may be accepted again from anyone's forgotten window.
            if let Some((&old, s)) = self.senders.iter().min_by_key(|(_, s)| s.last_ms) {
                self.floor_ms = self.floor_ms.max(s.last_ms);
                self.senders.remove(&old);
            }
        }
        let cap = self.cfg.sessions_per_sender.max(1);
        let s = self.senders.entry(src).or_default();
        s.last_ms = s.last_ms.max(h.stamp_ms);
        if let Some(key) = new_key {
            if s.sessions.len() >= cap
                && let Some(i) = (0..s.sessions.len()).min_by_key(|i| s.sessions[*i].max_stamp)
            {
                let old = s.sessions.swap_remove(i);
                s.floor_ms = s.floor_ms.max(old.max_stamp);
            }
            s.sessions.push(Session {
                id: h.session,
                key,
                top: 0,
                seen: 1,
                max_stamp: 0,
            });
        }
        if let Some(x) = s.sessions.iter_mut().find(|x| x.id == h.session) {
            x.mark(h.counter, h.stamp_ms);
        }
    }
}

/// The AEAD key of (sender, session) under a purpose key.
fn session_key(hk: &Hkdf<Sha256>, sender: Ipv6Addr, session: u64) -> aead::LessSafeKey {
    let mut info = [0u8; 24];
    info[..16].copy_from_slice(&sender.octets());
    info[16..].copy_from_slice(&session.to_be_bytes());
    let mut k = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 255 * 32 limit.
    let _ = hk.expand(&info, &mut k);
    let unbound = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &k)
        .unwrap_or_else(|_| unreachable!("CHACHA20_POLY1305 takes 32-byte keys"));
    aead::LessSafeKey::new(unbound)
}
