//! The correspondent node (RFC 6275 9): Return Routability responder,
//! Binding Update verification, binding cache, Binding Acknowledgements,
//! Binding Refresh Requests and Binding Errors.
//!
//! Driving it (the `mip6-cn` agent):
//!
//! * every received Mobility Header packet addressed to this node goes to
//!   [`Correspondent::handle_packet`] (or [`Correspondent::handle_parsed`]
//!   when the engine parsed it already);
//! * a data packet with a Home Address option that matches no binding goes
//!   to [`Correspondent::unknown_hao`] (rate-limited Binding Error status 1);
//! * the datapath reports use of a binding with
//!   [`Correspondent::note_binding_used`] (Binding Refresh Requests go only
//!   to bindings in use, RFC 6275 9.5.5);
//! * [`Correspondent::poll_timeout`] / [`Correspondent::handle_timeout`]
//!   drive expiry and refresh requests;
//! * [`Correspondent::poll_action`] yields packets to send and
//!   [`BindingEvent`]s to apply to the engine's table.
//!
//! The binding cache is keyed by (correspondent address, home address): in
//! the anycast service one client address binds the anycast address X to the
//! member serving it, for all its connections to X (DESIGN.md 5).

mod binding_cache;
mod binding_update;
mod rr_responder;

pub use binding_cache::{Binding, BindingCache, CacheFull, CacheTimer, RefreshPolicy, Upsert};

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::common::{Action, RateLimiter, Route, Transmit, parse_drop_reason, transmit};
use super::stats::{DropCounts, DropReason};
use crate::crypto::{
    Kcn, KeygenTokenCache, MAX_RR_BINDING_LIFETIME, NonceConfig, NonceError, NonceTable,
    RandomSource, TokenKind,
};
use crate::wire::{
    BeStatus, BindingErrorRepr, ExtChain, Ipv6Packet, MhMessage, MhPacketRepr, MhRepr,
    MobilityHeader, ParsedMhPacket,
};

/// Configuration of a [`Correspondent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrespondentConfig {
    /// Most bindings held (RFC 6275 9.5.2: status 130 beyond).
    pub max_bindings: usize,
    /// Longest lifetime granted; never more than MAX_RR_BINDING_LIFETIME.
    pub max_lifetime: Duration,
    /// When Binding Refresh Requests are sent.
    pub refresh: RefreshPolicy,
    /// Binding Errors (and BA 131) per second (RFC 6275 9.3.3: rate limited).
    pub error_rate: u32,
    /// Burst of Binding Errors allowed at once.
    pub error_burst: u32,
    /// Nonce generation and Kcn rotation.
    pub nonce: NonceConfig,
    /// Capacity of the keygen token cache used to verify Binding Updates.
    pub token_cache_capacity: usize,
}

impl Default for CorrespondentConfig {
    fn default() -> Self {
        Self {
            max_bindings: 1 << 20,
            max_lifetime: MAX_RR_BINDING_LIFETIME,
            refresh: RefreshPolicy::default(),
            error_rate: 10,
            error_burst: 10,
            nonce: NonceConfig::default(),
            token_cache_capacity: 4096,
        }
    }
}

/// Why a binding left the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoveReason {
    /// A Binding Update with lifetime 0 or care-of address = home address.
    Deregistered,
    /// Its lifetime ran out.
    Expired,
    /// This node dropped it on its own decision (RFC 6275 9.6: any entry
    /// may be deleted at any time), e.g. because its care-of address
    /// stopped answering; traffic falls back to the home agent.
    Dropped,
}

/// A binding cache change the engine applies to its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingEvent {
    /// New binding (`cn`, `hoa`) -> `coa`.
    Added {
        /// This node's address.
        cn: Ipv6Addr,
        /// Home address.
        hoa: Ipv6Addr,
        /// Care-of address.
        coa: Ipv6Addr,
        /// Expiry.
        expires: Instant,
        /// Accepted sequence number.
        sequence: u16,
    },
    /// Existing binding refreshed or moved to another care-of address.
    Updated {
        /// This node's address.
        cn: Ipv6Addr,
        /// Home address.
        hoa: Ipv6Addr,
        /// Care-of address.
        coa: Ipv6Addr,
        /// Expiry.
        expires: Instant,
        /// Accepted sequence number.
        sequence: u16,
    },
    /// Binding removed.
    Removed {
        /// This node's address.
        cn: Ipv6Addr,
        /// Home address.
        hoa: Ipv6Addr,
        /// Why.
        reason: RemoveReason,
    },
}

/// Counters of a [`Correspondent`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorrespondentStats {
    /// Drops and rejections per reason.
    pub drops: DropCounts,
    /// HoT sent.
    pub home_tests: u64,
    /// CoT sent.
    pub care_of_tests: u64,
    /// Binding Updates accepted that created or refreshed a binding.
    pub bu_accepted: u64,
    /// Binding Updates accepted that deleted a binding.
    pub deregistrations: u64,
    /// Binding Acknowledgements sent (any status).
    pub ba_sent: u64,
    /// Binding Refresh Requests sent.
    pub brr_sent: u64,
    /// Binding Errors sent.
    pub be_sent: u64,
    /// Bindings removed on expiry.
    pub expired: u64,
}

/// The correspondent node machine. See the module docs.
#[derive(Debug)]
pub struct Correspondent {
    config: CorrespondentConfig,
    nonces: NonceTable,
    tokens: KeygenTokenCache,
    cache: BindingCache,
    error_limit: RateLimiter,
    stats: CorrespondentStats,
    actions: VecDeque<Action<BindingEvent>>,
}

impl Correspondent {
    /// A correspondent with a random Kcn drawn from `rng` (which also feeds
    /// nonces and later Kcn rotations).
    pub fn new(
        config: CorrespondentConfig,
        rng: Box<dyn RandomSource + Send>,
        now: Instant,
    ) -> Result<Self, NonceError> {
        let nonces = NonceTable::new(config.nonce, rng, now)?;
        Ok(Self::with_nonce_table(config, nonces, now))
    }

    /// Like [`new`](Self::new) with a given first Kcn (labs, tests).
    pub fn with_kcn(
        config: CorrespondentConfig,
        rng: Box<dyn RandomSource + Send>,
        kcn: Kcn,
        now: Instant,
    ) -> Result<Self, NonceError> {
        let nonces = NonceTable::with_kcn(config.nonce, rng, kcn, now)?;
        Ok(Self::with_nonce_table(config, nonces, now))
    }

    fn with_nonce_table(mut config: CorrespondentConfig, nonces: NonceTable, now: Instant) -> Self {
        config.max_lifetime = config.max_lifetime.min(MAX_RR_BINDING_LIFETIME);
        Self {
            tokens: KeygenTokenCache::new(config.token_cache_capacity),
            cache: BindingCache::new(config.max_bindings, config.refresh, now),
            error_limit: RateLimiter::new(config.error_rate, config.error_burst, now),
            stats: CorrespondentStats::default(),
            actions: VecDeque::new(),
            nonces,
            config,
        }
    }

    /// The configuration (with `max_lifetime` clamped).
    #[must_use]
    pub fn config(&self) -> &CorrespondentConfig {
        &self.config
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &CorrespondentStats {
        &self.stats
    }

    /// The binding cache (read only).
    #[must_use]
    pub fn cache(&self) -> &BindingCache {
        &self.cache
    }

    /// The binding for (`cn`, `hoa`), if any.
    #[must_use]
    pub fn binding(&self, cn: Ipv6Addr, hoa: Ipv6Addr) -> Option<Binding> {
        self.cache.get(cn, hoa)
    }

    /// The nonce table (e.g. to read the current nonce index).
    #[must_use]
    pub fn nonce_table(&self) -> &NonceTable {
        &self.nonces
    }

    /// Forces a Kcn rotation (RFC 6275 5.2.7); tokens issued before keep
    /// verifying until their nonces expire.
    pub fn rotate_kcn(&mut self, now: Instant) -> Result<(), NonceError> {
        self.nonces.rotate_kcn(now)
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action<BindingEvent>> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next needed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.cache.next_timer()
    }

    /// Expires bindings and sends due Binding Refresh Requests.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.nonces.handle_timeout(now).is_err() {
            self.drop(DropReason::RandomFailure);
        }
        while let Some(t) = self.cache.pop_due(now) {
            match t {
                CacheTimer::Expired(b) => {
                    debug!(cn = %b.cn, hoa = %b.hoa, "binding expired");
                    self.stats.expired += 1;
                    self.event(BindingEvent::Removed {
                        cn: b.cn,
                        hoa: b.hoa,
                        reason: RemoveReason::Expired,
                    });
                }
                CacheTimer::RefreshRequest(b) => {
                    // RFC 6275 9.5.5: BRR to the mobile node, routed to the
                    // care-of address with a Type 2 Routing Header.
                    let repr = MhPacketRepr {
                        rh2: Some(b.hoa),
                        ..MhPacketRepr::new(
                            b.cn,
                            b.coa,
                            MhRepr::new(MhMessage::BindingRefreshRequest),
                        )
                    };
                    debug!(cn = %b.cn, hoa = %b.hoa, "binding refresh request");
                    self.stats.brr_sent += 1;
                    self.send(transmit(&repr, Route::Direct));
                }
            }
        }
    }

    /// Records that the datapath used the binding (`cn`, `hoa`) at `now`;
    /// returns whether the binding exists.
    pub fn note_binding_used(&mut self, now: Instant, cn: Ipv6Addr, hoa: Ipv6Addr) -> bool {
        self.cache.note_used(now, cn, hoa)
    }

    /// Deletes the binding (`cn`, `hoa`) on this node's own decision (RFC
    /// 6275 9.6); returns whether it existed. A
    /// [`BindingEvent::Removed`] with [`RemoveReason::Dropped`] follows.
    /// The mobile node learns of it from the Binding Error its next
    /// route-optimized packet draws (RFC 6275 9.3.3).
    pub fn drop_binding(&mut self, cn: Ipv6Addr, hoa: Ipv6Addr) -> bool {
        match self.cache.remove(cn, hoa) {
            Some(b) => {
                debug!(cn = %b.cn, hoa = %b.hoa, coa = %b.coa, "binding dropped");
                self.event(BindingEvent::Removed {
                    cn,
                    hoa,
                    reason: RemoveReason::Dropped,
                });
                true
            }
            None => false,
        }
    }

    /// A packet from `src` to this node's `dst` carried a Home Address
    /// option with `hoa` but no binding (`dst`, `hoa`) -> `src` exists (RFC
    /// 6275 9.3.1): sends a Binding Error status 1 to `src`, rate-limited
    /// (RFC 6275 9.3.3). The datapath drops the packet itself.
    pub fn unknown_hao(&mut self, now: Instant, src: Ipv6Addr, dst: Ipv6Addr, hoa: Ipv6Addr) {
        self.drop(DropReason::NoBinding);
        self.binding_error(now, dst, src, BeStatus::UnknownBindingForHao, hoa);
    }

    /// Processes a received packet (the whole IPv6 packet).
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        match MhPacketRepr::parse_with_bytes(packet) {
            Ok(parsed) => self.handle_parsed(now, &parsed),
            Err(crate::wire::Error::UnknownMhType(t)) => self.unknown_type(now, packet, t),
            Err(e) => {
                debug!(error = %e, "dropping malformed packet");
                self.drop(parse_drop_reason(&e));
            }
        }
    }

    /// Processes a received packet that is already parsed.
    pub fn handle_parsed(&mut self, now: Instant, parsed: &ParsedMhPacket<'_>) {
        let pkt = &parsed.repr;
        match &pkt.mh.message {
            MhMessage::HomeTestInit(hoti) => {
                let r = rr_responder::answer_test_init(
                    &mut self.nonces,
                    now,
                    pkt,
                    TokenKind::Home,
                    hoti.home_init_cookie,
                );
                if r.is_ok() {
                    self.stats.home_tests += 1;
                }
                self.send(r);
            }
            MhMessage::CareOfTestInit(coti) => {
                let r = rr_responder::answer_test_init(
                    &mut self.nonces,
                    now,
                    pkt,
                    TokenKind::CareOf,
                    coti.care_of_init_cookie,
                );
                if r.is_ok() {
                    self.stats.care_of_tests += 1;
                }
                self.send(r);
            }
            MhMessage::BindingUpdate(bu) => self.handle_binding_update(now, parsed, bu),
            _ => {
                // RFC 6275 9.3.1: a Home Address option needs a binding.
                if let Some(hoa) = pkt.hao
                    && self.cache.coa(pkt.dst_addr, hoa) != Some(pkt.src_addr)
                {
                    self.unknown_hao(now, pkt.src_addr, pkt.dst_addr, hoa);
                    return;
                }
                self.drop(DropReason::UnexpectedMessage);
            }
        }
    }

    /// RFC 6275 9.2: an unknown MH type is answered with a Binding Error
    /// status 2 to the packet's source, if the checksum verifies.
    fn unknown_type(&mut self, now: Instant, packet: &[u8], t: u8) {
        let Some((src, dst, hoa)) = unknown_type_origin(packet) else {
            self.drop(DropReason::BadChecksum);
            return;
        };
        self.drop(DropReason::UnknownMhType);
        debug!(mh_type = t, %src, "unrecognized MH type");
        self.binding_error(now, dst, src, BeStatus::UnrecognizedMhType, hoa);
    }

    fn binding_error(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        status: BeStatus,
        hoa: Ipv6Addr,
    ) {
        if !self.error_limit.allow(now) {
            self.drop(DropReason::RateLimited);
            return;
        }
        let be = MhMessage::BindingError(BindingErrorRepr {
            status,
            home_address: hoa,
        });
        let r = transmit(&MhPacketRepr::new(src, dst, MhRepr::new(be)), Route::Direct);
        if r.is_ok() {
            self.stats.be_sent += 1;
        }
        self.send(r);
    }

    fn send(&mut self, t: Result<Transmit, DropReason>) {
        match t {
            Ok(t) => self.actions.push_back(Action::Transmit(t)),
            Err(reason) => self.drop(reason),
        }
    }

    fn event(&mut self, e: BindingEvent) {
        self.actions.push_back(Action::Event(e));
    }

    fn drop(&mut self, reason: DropReason) {
        self.stats.drops.count(reason);
        self.actions.push_back(Action::Dropped(reason));
    }
}

/// Source, destination and HAO home address (or unspecified) of a packet
/// whose Mobility Header has an unknown type, if its checksum verifies.
fn unknown_type_origin(packet: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, Ipv6Addr)> {
    let chain = ExtChain::walk(packet).ok()?;
    let mh_bytes = packet.get(chain.mh_offset()?..chain.total_len())?;
    let mh = MobilityHeader::new_checked(mh_bytes).ok()?;
    let ip = Ipv6Packet::new_unchecked(packet);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if !mh.verify_checksum(&chain.pseudo_src(src), &chain.pseudo_dst(dst)) {
        return None;
    }
    let hoa = chain
        .hao()
        .map_or(Ipv6Addr::UNSPECIFIED, |h| h.home_address);
    Some((src, dst, hoa))
}
