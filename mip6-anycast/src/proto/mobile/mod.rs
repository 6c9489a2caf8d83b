//! The mobile node side (RFC 6275 11) for one home address: binding update
//! list and Return Routability initiator per correspondent, plus the home
//! registration client ([`HomeRegistration`], RFC 6275 11.7.1 + RFC 4285).
//!
//! Driving [`MobileNode`] (a contact node or member, for the anycast home
//! address X):
//!
//! * commands: [`register`](MobileNode::register) (bind X -> a care-of
//!   address at a client and keep it refreshed),
//!   [`deregister`](MobileNode::deregister),
//!   [`fetch_home_token`](MobileNode::fetch_home_token) (contact node: run
//!   the home test only), [`export`](MobileNode::export) /
//!   [`import`](MobileNode::import) / [`import_home_token`](MobileNode::import_home_token)
//!   / [`set_next_sequence`](MobileNode::set_next_sequence) (handoff between
//!   members), [`remove`](MobileNode::remove);
//! * every received Mobility Header packet from a correspondent goes to
//!   [`handle_packet`](MobileNode::handle_packet) with how it arrived (a HoT
//!   must come through the home agent tunnel);
//! * [`poll_timeout`](MobileNode::poll_timeout) /
//!   [`handle_timeout`](MobileNode::handle_timeout) drive retransmissions
//!   (1 s doubling to 32 s, RFC 6275 11.8), refreshes and expiry;
//! * [`poll_action`](MobileNode::poll_action) yields packets (HoTI with
//!   [`Route::ReverseTunnel`](super::Route::ReverseTunnel)) and
//!   [`MobileEvent`]s.
//!
//! Anycast handoff (DESIGN.md 5): the contact node K runs the home test
//! ([`HomeTestMode::Local`]: HoTI through the HA, HoT back through it) and
//! exports the token with the client's next sequence number; the acceptor A
//! ([`HomeTestMode::External`]: it never sends HoTI, it emits
//! [`MobileEvent::HomeTokenNeeded`] instead) imports them, runs the care-of
//! test from its own care-of address and sends the Binding Update. Sequence
//! numbers only move forward: an import never moves them back, and a BA
//! with status 135 resynchronises them.

mod binding;
mod bul;
mod export;
mod home_reg;
mod rr_initiator;

pub use bul::{BulEntryInfo, Goal};
pub use export::{CorrespondentState, ExportedToken};
pub use home_reg::{HomeRegEvent, HomeRegistration, HomeRegistrationConfig, HomeRegistrationStats};

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::common::{Action, Arrival, RetransmitConfig, Transmit, parse_drop_reason, seq_newer};
use super::stats::{DropCounts, DropReason};
use crate::crypto::{
    KeygenToken, MAX_RR_BINDING_LIFETIME, MAX_TOKEN_LIFETIME, NonceIndex, RandomSource,
};
use crate::wire::{BaStatus, MhMessage, MhPacketRepr, ParsedMhPacket};
use bul::BulEntry;
use rr_initiator::{TestKind, TokenInfo};

/// How the home keygen token is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HomeTestMode {
    /// Send HoTI through the home agent tunnel (this node is registered for
    /// the home address).
    Local,
    /// Another node runs the home test: emit
    /// [`MobileEvent::HomeTokenNeeded`] and wait for
    /// [`MobileNode::import_home_token`].
    External,
}

/// Configuration of a [`MobileNode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MobileConfig {
    /// The home address (the anycast address X).
    pub hoa: Ipv6Addr,
    /// Lifetime requested in Binding Updates (at most MAX_RR_BINDING_LIFETIME).
    pub lifetime: Duration,
    /// How the home keygen token is obtained.
    pub home_test: HomeTestMode,
    /// Retransmission of HoTI, CoTI and BU.
    pub retransmit: RetransmitConfig,
    /// How long a received keygen token is reused (at most MAX_TOKEN_LIFETIME).
    pub token_lifetime: Duration,
    /// Most correspondents tracked (commands beyond are refused).
    pub max_entries: usize,
}

impl MobileConfig {
    /// Defaults for home address `hoa`: 420 s lifetime, local home test,
    /// 1 s -> 32 s retransmission without limit, 210 s token reuse.
    #[must_use]
    pub fn new(hoa: Ipv6Addr) -> Self {
        Self {
            hoa,
            lifetime: MAX_RR_BINDING_LIFETIME,
            home_test: HomeTestMode::Local,
            retransmit: RetransmitConfig::default(),
            token_lifetime: MAX_TOKEN_LIFETIME,
            max_entries: 1 << 20,
        }
    }
}

/// Why a correspondent registration gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// Rejected with this (authenticated) Binding Acknowledgement status.
    Rejected(BaStatus),
    /// Retransmissions exhausted.
    Timeout,
    /// The correspondent answered with Binding Error status 2: it does not
    /// support route optimization.
    RouteOptimizationUnsupported,
}

/// What happened, for the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MobileEvent {
    /// A valid home keygen token for `cn` is now held (ready to export).
    HomeTokenReady {
        /// Correspondent.
        cn: Ipv6Addr,
    },
    /// [`HomeTestMode::External`]: a home keygen token for `cn` is needed.
    HomeTokenNeeded {
        /// Correspondent.
        cn: Ipv6Addr,
    },
    /// The correspondent acknowledged the binding.
    Bound {
        /// Correspondent.
        cn: Ipv6Addr,
        /// Care-of address bound.
        coa: Ipv6Addr,
        /// Granted lifetime.
        lifetime: Duration,
        /// Acknowledged sequence number.
        sequence: u16,
    },
    /// The correspondent acknowledged the deletion of the binding.
    Deregistered {
        /// Correspondent.
        cn: Ipv6Addr,
    },
    /// The binding's lifetime ran out before a refresh succeeded.
    BindingExpired {
        /// Correspondent.
        cn: Ipv6Addr,
    },
    /// Registration abandoned.
    Failed {
        /// Correspondent.
        cn: Ipv6Addr,
        /// Why.
        reason: FailReason,
    },
}

/// Counters of a [`MobileNode`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MobileStats {
    /// Drops per reason.
    pub drops: DropCounts,
    /// HoTI sent (including retransmissions).
    pub hoti_sent: u64,
    /// CoTI sent (including retransmissions).
    pub coti_sent: u64,
    /// Binding Updates sent (including retransmissions).
    pub bu_sent: u64,
    /// Accepting Binding Acknowledgements.
    pub ba_accepted: u64,
    /// Rejecting Binding Acknowledgements acted upon.
    pub ba_rejected: u64,
    /// Sequence number resynchronisations (BA status 135).
    pub resyncs: u64,
    /// Binding Refresh Requests received.
    pub brr_received: u64,
}

/// Shared context of all entries (split from the entries for borrowing).
struct Ctx {
    cfg: MobileConfig,
    rng: Box<dyn RandomSource + Send>,
    stats: MobileStats,
    actions: VecDeque<Action<MobileEvent>>,
}

impl Ctx {
    fn send(&mut self, t: Result<Transmit, DropReason>) {
        match t {
            Ok(t) => self.actions.push_back(Action::Transmit(t)),
            Err(r) => self.drop(r),
        }
    }

    fn event(&mut self, e: MobileEvent) {
        debug!(event = ?e, "mobile node");
        self.actions.push_back(Action::Event(e));
    }

    fn drop(&mut self, r: DropReason) {
        self.stats.drops.count(r);
        self.actions.push_back(Action::Dropped(r));
    }

    fn token_valid(&self, info: Option<&TokenInfo>, now: Instant) -> bool {
        info.is_some_and(|t| now < t.received + self.cfg.token_lifetime)
    }
}

/// The mobile node machine for one home address. See the module docs.
pub struct MobileNode {
    ctx: Ctx,
    entries: HashMap<Ipv6Addr, BulEntry>,
    timers: BTreeSet<(Instant, Ipv6Addr)>,
}

impl std::fmt::Debug for MobileNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MobileNode")
            .field("config", &self.ctx.cfg)
            .field("entries", &self.entries.len())
            .field("stats", &self.ctx.stats)
            .finish_non_exhaustive()
    }
}

impl MobileNode {
    /// A mobile node with no correspondents. `rng` draws cookies and the
    /// initial sequence numbers.
    #[must_use]
    pub fn new(mut cfg: MobileConfig, rng: Box<dyn RandomSource + Send>) -> Self {
        cfg.lifetime = cfg.lifetime.min(MAX_RR_BINDING_LIFETIME);
        cfg.token_lifetime = cfg.token_lifetime.min(MAX_TOKEN_LIFETIME);
        Self {
            ctx: Ctx {
                cfg,
                rng,
                stats: MobileStats::default(),
                actions: VecDeque::new(),
            },
            entries: HashMap::new(),
            timers: BTreeSet::new(),
        }
    }

    /// The configuration (lifetimes clamped).
    #[must_use]
    pub fn config(&self) -> &MobileConfig {
        &self.ctx.cfg
    }

    /// The home address.
    #[must_use]
    pub fn hoa(&self) -> Ipv6Addr {
        self.ctx.cfg.hoa
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &MobileStats {
        &self.ctx.stats
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action<MobileEvent>> {
        self.ctx.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next needed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Status of the entry for `cn`.
    #[must_use]
    pub fn entry(&self, cn: Ipv6Addr, now: Instant) -> Option<BulEntryInfo> {
        let e = self.entries.get(&cn)?;
        let tl = self.ctx.cfg.token_lifetime;
        Some(BulEntryInfo {
            cn,
            coa: e.coa,
            goal: e.goal,
            bound: e.bound.map(|b| (b.coa, b.expires)),
            next_sequence: e.next_seq,
            home_token_valid: e.home.valid_token(now, self.ctx.cfg.hoa, tl).is_some(),
            care_of_token_valid: e.care_of.valid_token(now, e.coa, tl).is_some(),
            bu_outstanding: e.bu.is_some(),
        })
    }

    /// Correspondents with an entry.
    pub fn correspondents(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.entries.keys().copied()
    }

    /// Runs `f` on the entry of `cn` (created with care-of address `coa` if
    /// missing), then re-arms its timer.
    fn with_entry(
        &mut self,
        cn: Ipv6Addr,
        coa: Option<Ipv6Addr>,
        f: impl FnOnce(&mut Ctx, &mut BulEntry),
    ) -> bool {
        if !self.entries.contains_key(&cn) {
            if self.entries.len() >= self.ctx.cfg.max_entries {
                self.ctx.drop(DropReason::TableFull);
                return false;
            }
            let mut seq = [0u8; 2];
            if self.ctx.rng.fill(&mut seq).is_err() {
                self.ctx.drop(DropReason::RandomFailure);
                return false;
            }
            let coa = coa.unwrap_or(self.ctx.cfg.hoa);
            self.entries
                .insert(cn, BulEntry::new(cn, coa, u16::from_be_bytes(seq)));
        }
        let Some(e) = self.entries.get_mut(&cn) else {
            return false;
        };
        f(&mut self.ctx, e);
        self.reschedule(cn);
        true
    }

    fn reschedule(&mut self, cn: Ipv6Addr) {
        let Some(e) = self.entries.get_mut(&cn) else {
            return;
        };
        let next = e.deadline();
        if e.scheduled != next {
            if let Some(old) = e.scheduled {
                self.timers.remove(&(old, cn));
            }
            if let Some(new) = next {
                self.timers.insert((new, cn));
            }
            e.scheduled = next;
        }
    }

    /// Binds the home address to `coa` at `cn` and keeps the binding
    /// refreshed (RFC 6275 11.7.2). `coa` equal to the home address means
    /// returning home: the binding is deleted instead.
    pub fn register(&mut self, now: Instant, cn: Ipv6Addr, coa: Ipv6Addr) {
        self.with_entry(cn, Some(coa), |ctx, e| {
            if e.coa != coa {
                e.coa = coa;
                e.bu = None;
            }
            e.goal = if coa == ctx.cfg.hoa {
                bul::Goal::Deregister
            } else {
                bul::Goal::Register
            };
            binding::progress(ctx, e, now);
        });
    }

    /// Deletes the binding at `cn` (lifetime 0, RFC 6275 11.7.2), e.g. on
    /// shutdown or before handing the client back.
    pub fn deregister(&mut self, now: Instant, cn: Ipv6Addr) {
        self.with_entry(cn, None, |ctx, e| {
            if e.goal != bul::Goal::Deregister {
                e.bu = None;
            }
            e.goal = bul::Goal::Deregister;
            binding::progress(ctx, e, now);
        });
    }

    /// Makes sure a valid home keygen token for `cn` is held (contact node
    /// role): [`MobileEvent::HomeTokenReady`] follows, at once if a token
    /// is still valid (tokens are reused while valid).
    pub fn fetch_home_token(&mut self, now: Instant, cn: Ipv6Addr) {
        self.with_entry(cn, None, |ctx, e| {
            e.want_home_token = true;
            binding::progress(ctx, e, now);
        });
    }

    /// Switches how home keygen tokens are obtained (an anycast member
    /// that becomes the contact node runs home tests itself from now on,
    /// one that steps down asks the contact node).
    pub fn set_home_test_mode(&mut self, mode: HomeTestMode) {
        self.ctx.cfg.home_test = mode;
    }

    /// Stops every registration activity for `cn` (no Binding Update,
    /// refresh or test retransmission from here, except a home test the
    /// contact node runs for another member) but keeps the entry with its
    /// keygen tokens and next sequence number: another member serves `cn`
    /// now, and a later registration from here reuses the tokens while
    /// they are valid (RFC 6275 5.2.7; seed 004 4.3: signaling done in
    /// advance makes a later handoff back shorter).
    pub fn park(&mut self, cn: Ipv6Addr) {
        let Some(e) = self.entries.get_mut(&cn) else {
            return;
        };
        e.goal = bul::Goal::Idle;
        e.bu = None;
        e.bound = None;
        e.care_of.pending = None;
        if !e.want_home_token {
            e.home.pending = None;
            if let Some(t) = e.scheduled.take() {
                self.timers.remove(&(t, cn));
            }
        }
    }

    /// Forgets the keygen tokens cached for `cn` (home and care-of), so
    /// the next registration runs both tests again (operators; the handoff
    /// sweep measures first handoffs this way). Whether any was cached.
    pub fn forget_tokens(&mut self, cn: Ipv6Addr) -> bool {
        self.entries.get_mut(&cn).is_some_and(|e| {
            let home = e.home.token.take().is_some();
            let care_of = e.care_of.token.take().is_some();
            home || care_of
        })
    }

    /// Installs a home keygen token obtained by another member (the
    /// contact node). A token already `MAX_TOKEN_LIFETIME` old is refused.
    pub fn import_home_token(&mut self, now: Instant, cn: Ipv6Addr, token: &ExportedToken) {
        self.with_entry(cn, None, |ctx, e| {
            let Some(received) = now.checked_sub(token.age) else {
                ctx.drop(DropReason::NotReady);
                return;
            };
            let info = TokenInfo {
                token: KeygenToken::from_bytes(token.token),
                index: NonceIndex(token.nonce_index),
                received,
                addr: ctx.cfg.hoa,
            };
            if !ctx.token_valid(Some(&info), now) {
                ctx.drop(DropReason::NotReady);
                return;
            }
            e.home.token = Some(info);
            e.home.pending = None;
            e.home_needed_reported = false;
            binding::progress(ctx, e, now);
        });
    }

    /// Sets the next Binding Update sequence number for `cn` exactly.
    pub fn set_next_sequence(&mut self, cn: Ipv6Addr, seq: u16) {
        self.with_entry(cn, None, |_, e| e.next_seq = seq);
    }

    /// The next Binding Update sequence number for `cn`.
    #[must_use]
    pub fn next_sequence(&self, cn: Ipv6Addr) -> Option<u16> {
        self.entries.get(&cn).map(|e| e.next_seq)
    }

    /// The state another member needs to continue with `cn`: the home
    /// keygen token if still valid, and the next sequence number. The
    /// sequence numbers this node would use are reserved: its own next
    /// number is advanced past the exported one only by a later import or
    /// a 135 resynchronisation, so the daemon should export once per
    /// handoff.
    #[must_use]
    pub fn export(&self, now: Instant, cn: Ipv6Addr) -> Option<CorrespondentState> {
        let e = self.entries.get(&cn)?;
        let home_token = e
            .home
            .token
            .as_ref()
            .filter(|t| self.ctx.token_valid(Some(t), now))
            .map(|t| ExportedToken {
                token: *t.token.expose_secret(),
                nonce_index: t.index.0,
                age: now.saturating_duration_since(t.received),
            });
        Some(CorrespondentState {
            hoa: self.ctx.cfg.hoa,
            cn,
            home_token,
            next_sequence: e.next_seq,
        })
    }

    /// Takes over `state` from another member: its home keygen token (if
    /// any) and its next sequence number, unless this node's own is newer
    /// (sequence numbers never move back). A state for another home
    /// address is refused.
    pub fn import(&mut self, now: Instant, state: &CorrespondentState) {
        if state.hoa != self.ctx.cfg.hoa {
            self.ctx.drop(DropReason::AddressMismatch);
            return;
        }
        let created = !self.entries.contains_key(&state.cn);
        self.with_entry(state.cn, None, |_, e| {
            if created || !seq_newer(e.next_seq, state.next_sequence) {
                e.next_seq = state.next_sequence;
            }
        });
        if let Some(t) = &state.home_token {
            self.import_home_token(now, state.cn, t);
        }
    }

    /// Forgets `cn` without telling it.
    pub fn remove(&mut self, cn: Ipv6Addr) -> bool {
        match self.entries.remove(&cn) {
            Some(e) => {
                if let Some(t) = e.scheduled {
                    self.timers.remove(&(t, cn));
                }
                true
            }
            None => false,
        }
    }

    /// Retransmissions, refreshes and expiry due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Each due entry is handled once per call, so an entry can never
        // keep this loop busy.
        let due: Vec<Ipv6Addr> = self
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, cn)| *cn)
            .collect();
        for cn in due {
            if let Some(e) = self.entries.get_mut(&cn) {
                binding::on_timeout(&mut self.ctx, e, now);
            }
            self.reschedule(cn);
        }
    }

    /// Processes a received packet (whole IPv6 packet) and how it arrived.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8], arrival: Arrival) {
        match MhPacketRepr::parse_with_bytes(packet) {
            Ok(p) => self.handle_parsed(now, &p, arrival),
            Err(e) => self.ctx.drop(parse_drop_reason(&e)),
        }
    }

    /// Processes a received packet that is already parsed.
    pub fn handle_parsed(&mut self, now: Instant, parsed: &ParsedMhPacket<'_>, arrival: Arrival) {
        let cn = parsed.repr.src_addr;
        let Some(e) = self.entries.get_mut(&cn) else {
            self.ctx.drop(DropReason::UnknownCorrespondent);
            return;
        };
        let ctx = &mut self.ctx;
        let pkt = &parsed.repr;
        match &pkt.mh.message {
            MhMessage::HomeTest(hot) => {
                if arrival != Arrival::Tunnel {
                    ctx.drop(DropReason::NotViaTunnel);
                } else if pkt.dst_addr != ctx.cfg.hoa || pkt.hao.is_some() || pkt.rh2.is_some() {
                    ctx.drop(DropReason::AddressMismatch);
                } else {
                    let r = e.home.receive(
                        now,
                        ctx.cfg.hoa,
                        &hot.home_init_cookie,
                        hot.home_nonce_index,
                        &hot.home_keygen_token,
                    );
                    binding::after_test_reply(ctx, e, now, TestKind::Home, r);
                }
            }
            MhMessage::CareOfTest(cot) => {
                if pkt.hao.is_some() || pkt.rh2.is_some() {
                    ctx.drop(DropReason::AddressMismatch);
                } else {
                    let r = e.care_of.receive(
                        now,
                        pkt.dst_addr,
                        &cot.care_of_init_cookie,
                        cot.care_of_nonce_index,
                        &cot.care_of_keygen_token,
                    );
                    binding::after_test_reply(ctx, e, now, TestKind::CareOf, r);
                }
            }
            MhMessage::BindingAck(ba) => binding::handle_ba(ctx, e, now, parsed, ba),
            MhMessage::BindingRefreshRequest => binding::handle_brr(ctx, e, now, pkt),
            MhMessage::BindingError(be) => binding::handle_be(ctx, e, now, be),
            _ => ctx.drop(DropReason::UnexpectedMessage),
        }
        self.reschedule(cn);
    }
}
