//! The handoff coordinator (DESIGN.md 5, seed 004 4.2.2), sans-IO: one
//! [`Coordinator`] per member, driven with `(now, event)` and the
//! member's [`MobileNode`] for the anycast home address X; it returns
//! [`Action`]s for the shell (channel messages, datapath changes, freeze,
//! restore, ...) and takes the shell's results back as [`ShellEvent`]s.
//!
//! # The protocol (donor D hands client C to acceptor A)
//!
//! ```text
//!  D                                   A                               C
//!  | export(C): token?, next seq;       |                               |
//!  | stop D's own Binding Updates to C; |                               |
//!  | hold C's packets, freeze, dump     |                               |
//!  |-- Prepare(state, n conns) -------->| hold C's packets (datapath)    |
//!  |-- Transfer (TCP + app) ----------->| import state, register(C):    |
//!  |                                    |-- CoTI from CoA_A ----------->| (in parallel)
//!  |<------------------------- Accept --| restore paused                |
//!  | forward C's packets to A           |                               |
//!  |<----------------------- Restored --|<------------------------ CoT -|
//!  |                                    |-- BU (CoA_A, HAO X, seq) ---->|
//!  |                                    |<------------------------- BA -| C binds X -> CoA_A
//!  |                                    | HAO binding, activate, release|
//!  |<-------------------- Bound(seq) ---| held packets in order         |
//!  | close frozen sockets silently,     |                               |
//!  | send Late segments --------------->| replay                        |
//!  |-- Done --------------------------->|                               |
//!  | keep forwarding for a while        |                               |
//! ```
//!
//! * **Home keygen token.** Only the contact node (registered at the home
//!   agent, [`HomeTestMode::Local`](crate::proto::HomeTestMode)) can run a
//!   home test: the HoT comes back through the home agent to whoever is
//!   registered for X (RFC 6275 5.2.5, 6.1). A donor whose token is still
//!   valid (reused up to MAX_TOKEN_LIFETIME, 210 s, RFC 6275 5.2.7, 12)
//!   puts it in the Prepare; otherwise it fetches one and sends `Token`
//!   when ready. Any member whose [`MobileNode`] reports
//!   [`MobileEvent::HomeTokenNeeded`] (no token for a BU, or a refresh
//!   later on) sends `TokenRequest` to the contact node, which answers
//!   with `Token` (retried every `token_retry`).
//! * **Sequence numbers.** The donor exports the client's next Binding
//!   Update sequence number and stops its own Binding Updates to C at the
//!   same moment (its binding update list entry is removed), so at any
//!   time one member alone sends BUs to C, and each continues where the
//!   previous one stopped: the numbers always increase at the client
//!   (RFC 6275 9.5.1 modulo 2^16; each retransmission takes a new one,
//!   11.7.1). The
//!   acceptor's `MobileNode::import` never moves a number back; an abort
//!   reports the acceptor's next number to the donor (taken if newer), and
//!   a BA with status 135 resynchronises anything else.
//! * **Commit point: the acceptor decides.** It goes live when its
//!   restored connections exist and C acknowledged its BU, then tells the
//!   donor `Bound`; only then does the donor close its frozen sockets.
//!   While the acceptor answers, the donor never rolls back alone: on a
//!   timeout it sends `Cancel`, and the acceptor answers `Aborted` (not
//!   live: the donor rolls back) or `Bound` again (live: the donor
//!   commits). Only if the acceptor stays silent for `abort_timeout`
//!   does the donor presume it dead and roll back.
//! * **Freeze early.** The donor freezes with the Prepare, before the
//!   acceptor can send its Binding Update: its last segments reach the
//!   client (within Lcs) before the client switches (after Lss + Lcs), so
//!   none arrives with a Home Address option the client no longer has a
//!   binding for (it would drop it, RFC 6275 9.3.1, and the restored
//!   socket would wait for a retransmission timeout). The client's
//!   packets are held at the donor until the Accept, then forwarded.
//! * **No packet to a kernel without a socket.** The acceptor holds C's
//!   packets from the Prepare on (forwarded by the donor, or direct once C
//!   bound to it); the donor forwards from before the freeze until
//!   `forward_linger` after the close. An aborting acceptor holds what
//!   comes until the donor, rolling back, stopped forwarding to it (the
//!   donor's `Done` after an `Aborted`), then forwards it back: two
//!   members never forward one client to each other at once.
//! * **Rollback** (donor): hold C's packets (and send `Done` so the
//!   acceptor returns what it held), thaw the frozen connections,
//!   release the held packets into its own kernel, restore its binding
//!   update list entry and, if C had a binding to the donor or may have
//!   bound to the acceptor, register C to the donor's care-of address
//!   again (with a sequence number newer than the acceptor's).
//!
//! # When a member dies
//!
//! * **Acceptor dies before it commits**: the donor's `Cancel` goes
//!   unanswered; after `abort_timeout` it rolls back (above). If C had
//!   already bound to the dead acceptor, the donor's new registration
//!   moves it back (BA 135 resyncs the sequence number if needed); packets
//!   sent meanwhile are lost and retransmitted by TCP.
//! * **Acceptor dies after it committed**: the client's connections lived
//!   only there and are lost. The contact node, which learns every
//!   placement (`Placed` messages, or its own handoffs) and meanwhile
//!   forwards a placed client's home-path packets to its member, stops
//!   forwarding and deletes the client's binding with a de-registration
//!   Binding Update (lifetime 0, Kbm from the home keygen token, RFC 6275
//!   5.2.6, 6.2.7, 11.7.2) ([`HandoffEvent::ClientsRecovered`]): the client falls
//!   back to the home path, reaching the contact node, whose kernel has no
//!   socket for the old connections and resets them at once, and new
//!   connections work.
//! * **Donor dies mid-handoff**: an acceptor that already has the state
//!   goes on and commits without it; one that has not aborts.
//! * **Contact node dies**: the failover of X (backup takeover) is the
//!   home-registration machine's business; handoffs in flight time out.
//!
//! # Driving it (the member's shell)
//!
//! * At start: [`Coordinator::new`] (members from the configuration), then
//!   [`peer_up`](Coordinator::peer_up) / [`peer_down`](Coordinator::peer_down)
//!   as the node channel to each member comes and goes.
//! * Inputs: channel frames to [`handle_frame`](Coordinator::handle_frame)
//!   (the channel names the authenticated sender); every [`MobileEvent`]
//!   of the member's [`MobileNode`] to
//!   [`handle_mobile_event`](Coordinator::handle_mobile_event); the
//!   results of long actions (and each `Transfer` bundle received) to
//!   [`handle_shell`](Coordinator::handle_shell); timers through
//!   [`poll_timeout`](Coordinator::poll_timeout) /
//!   [`handle_timeout`](Coordinator::handle_timeout); clients accepted on
//!   X to [`client_seen`](Coordinator::client_seen) /
//!   [`client_gone`](Coordinator::client_gone).
//! * Commands: [`handoff`](Coordinator::handoff) (operator `handoff CLIENT
//!   MEMBER`), [`handoff_by_policy`](Coordinator::handoff_by_policy),
//!   [`drain`](Coordinator::drain).
//! * Outputs: [`poll_action`](Coordinator::poll_action) until `None`, in
//!   order: [`Action::Send`] (encode with [`HandoffMsg::to_bytes`]),
//!   [`Action::Engine`] (`TableUpdate::from`, applied before the next
//!   action), `Freeze`/`Thaw`/`CloseFrozen`/`Restore`/`Activate`/`Discard`
//!   on the TCP state, [`Action::Event`] for logs. Then drain the
//!   [`MobileNode`], whose Binding Updates the coordinator triggered.
//!
//! # Policies
//!
//! [`Coordinator::handoff`] names the acceptor (operator command);
//! [`Coordinator::handoff_by_policy`] and [`Coordinator::drain`] choose it
//! with a [`Policy`] over the members that are up and accept clients,
//! using their [`LoadReport`]s.

mod acceptor;
pub mod codec;
mod donor;
mod msg;
mod peers;
pub mod policy;
mod types;

pub use codec::{HandoffFrame, MAX_FRAME, MsgError};
pub use msg::{AbortReason, HandoffMsg, RejectReason};
pub use policy::{Candidate, Policy};
pub use types::{
    Action, BadMemberName, CommandError, CoordinatorConfig, CoordinatorStats, DropWhy,
    EngineChange, HandoffEvent, HandoffKey, HoldBounds, LoadReport, MAX_MEMBER_NAME, MemberId,
    MemberInfo, MsgDrop, Roles, ShellEvent,
};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::Instant;

use tracing::debug;

use crate::crypto::RandomSource;
use crate::proto::mobile::{MobileEvent, MobileNode};
use acceptor::Acceptance;
use donor::Donation;
use peers::{Drain, Peer};

/// How a finished handoff ended, remembered to answer late messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Donor: completed.
    Completed,
    /// Donor: rolled back.
    RolledBack,
    /// Acceptor: live here; `Bound` with this sequence number.
    Committed(u16),
    /// Acceptor: aborted.
    Aborted(Option<u16>, AbortReason),
}

/// The handoff coordinator of one member. See the module docs.
pub struct Coordinator {
    cfg: CoordinatorConfig,
    next_id: u64,
    peers: BTreeMap<MemberId, Peer>,
    /// Clients served here: connections each.
    clients: BTreeMap<Ipv6Addr, u32>,
    donations: HashMap<Ipv6Addr, Donation>,
    acceptances: HashMap<Ipv6Addr, Acceptance>,
    finished: VecDeque<(HandoffKey, Outcome)>,
    /// Engine entries to remove when their linger ends.
    lingers: HashMap<Ipv6Addr, Instant>,
    /// Acceptor: aborted handoffs whose held packets go back to the donor
    /// on its Done: (client, donor's care-of address).
    returns: HashMap<HandoffKey, (Ipv6Addr, Ipv6Addr)>,
    /// Contact node: members waiting for a home keygen token per client.
    token_waiters: HashMap<Ipv6Addr, BTreeSet<MemberId>>,
    /// Tokens asked of the contact node: next retry.
    token_wanted: HashMap<Ipv6Addr, Instant>,
    /// Contact node: where handed-off clients live (member, sequence).
    placements: HashMap<Ipv6Addr, (MemberId, u16)>,
    drain: Option<Drain>,
    rr_cursor: Option<MemberId>,
    actions: VecDeque<Action>,
    stats: CoordinatorStats,
    /// Why the message being handled was dropped (returned by
    /// `handle_message`).
    dropped: Option<MsgDrop>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("me", &self.cfg.me.name)
            .field("clients", &self.clients.len())
            .field("donations", &self.donations.len())
            .field("acceptances", &self.acceptances.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// A coordinator for `cfg.me`, knowing the other `members` (entries
    /// for `me` are skipped), all initially down. `rng` draws the start of
    /// the handoff numbers. The first actions add the other members to
    /// the datapath ([`EngineChange::AddGroupMember`]).
    pub fn new(cfg: CoordinatorConfig, members: &[MemberInfo], rng: &mut dyn RandomSource) -> Self {
        let mut start = [0u8; 8];
        // A failed draw only makes the numbers predictable.
        let _ = rng.fill(&mut start);
        let peers: BTreeMap<MemberId, Peer> = members
            .iter()
            .filter(|m| m.name != cfg.me.name)
            .map(|m| (m.name.clone(), Peer::new(m.clone())))
            .collect();
        let actions = peers
            .values()
            .map(|p| Action::Engine(EngineChange::AddGroupMember { coa: p.info.coa }))
            .collect();
        Self {
            cfg,
            next_id: u64::from_be_bytes(start) >> 1,
            peers,
            clients: BTreeMap::new(),
            donations: HashMap::new(),
            acceptances: HashMap::new(),
            finished: VecDeque::new(),
            lingers: HashMap::new(),
            returns: HashMap::new(),
            token_waiters: HashMap::new(),
            token_wanted: HashMap::new(),
            placements: HashMap::new(),
            drain: None,
            rr_cursor: None,
            actions,
            stats: CoordinatorStats::default(),
            dropped: None,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &CoordinatorConfig {
        &self.cfg
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> CoordinatorStats {
        self.stats
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True if this member runs the home tests.
    #[must_use]
    pub fn is_contact(&self) -> bool {
        self.cfg.contact == self.cfg.me.name
    }

    /// Changes the contact node (after a takeover of X).
    pub fn set_contact(&mut self, contact: MemberId) {
        self.cfg.contact = contact;
    }

    /// Clients served here and their connection counts.
    pub fn clients(&self) -> impl Iterator<Item = (Ipv6Addr, u32)> + '_ {
        self.clients.iter().map(|(c, n)| (*c, *n))
    }

    /// Clients the other members named in their load reports (with an
    /// RTT): the ones this member should measure its own RTT to, so that
    /// the lowest-RTT policy has a figure from every candidate.
    pub fn reported_clients(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.peers
            .values()
            .filter_map(|p| p.load.as_ref())
            .flat_map(|l| l.rtt_us.iter().map(|(c, _)| *c))
    }

    /// True while `client` is moving away from or to this member.
    #[must_use]
    pub fn is_moving(&self, client: Ipv6Addr) -> bool {
        self.donations.contains_key(&client) || self.acceptances.contains_key(&client)
    }

    /// Handoffs in progress (as donor, as acceptor).
    #[must_use]
    pub fn in_progress(&self) -> (usize, usize) {
        (self.donations.len(), self.acceptances.len())
    }

    /// Contact node: the member a handed-off client lives at, and the
    /// sequence number it last reported.
    #[must_use]
    pub fn placement(&self, client: Ipv6Addr) -> Option<(&MemberId, u16)> {
        self.placements.get(&client).map(|(m, s)| (m, *s))
    }

    /// Records that `client` is served by `member` with Binding Update
    /// sequence `sequence` (a new contact node learns the placements of
    /// the old one from its replicated state).
    /// At the contact node this is what a `Placed` message from `member`
    /// does (its packets arriving the home path are forwarded there).
    pub fn record_placement(&mut self, client: Ipv6Addr, member: MemberId, sequence: u16) {
        if member == self.cfg.me.name {
            self.placements.remove(&client);
            return;
        }
        if self.is_contact() {
            self.on_placed(&member, client, sequence);
        } else if self.placements.contains_key(&client)
            || self.placements.len() < self.cfg.max_clients
        {
            self.placements.insert(client, (member, sequence));
        }
    }

    /// A member that is not the contact node tells it every client served
    /// here (`Placed`), e.g. after a new contact node took X over: its
    /// placements then come from the members themselves, not only from
    /// the old contact's last replicated state.
    pub fn announce_clients(&mut self, mn: &MobileNode) {
        if self.is_contact() {
            return;
        }
        let contact = self.cfg.contact.clone();
        let served: Vec<Ipv6Addr> = self
            .clients
            .iter()
            .filter(|(c, n)| **n > 0 && !self.is_moving(**c))
            .map(|(c, _)| *c)
            .collect();
        for client in served {
            let sequence = mn.next_sequence(client).unwrap_or(0);
            self.send(&contact, HandoffMsg::Placed { client, sequence });
        }
    }

    /// Every placement: client, member, sequence.
    pub fn placements(&self) -> impl Iterator<Item = (Ipv6Addr, &MemberId, u16)> + '_ {
        self.placements.iter().map(|(c, (m, s))| (*c, m, *s))
    }

    /// The shell found `client` served here with `connections` connections
    /// (accepted on X, or still there after an aborted move).
    pub fn client_seen(&mut self, client: Ipv6Addr, connections: u32) {
        if !self.clients.contains_key(&client) && self.clients.len() >= self.cfg.max_clients {
            return;
        }
        self.clients.insert(client, connections);
    }

    /// The shell saw the last connection of `client` end.
    pub fn client_gone(&mut self, client: Ipv6Addr) {
        if !self.donations.contains_key(&client) {
            self.clients.remove(&client);
        }
    }

    /// This member's load, for the others (the shell may add RTTs).
    #[must_use]
    pub fn load_report(&self) -> LoadReport {
        LoadReport {
            connections: self
                .clients
                .values()
                .copied()
                .fold(0u32, u32::saturating_add),
            clients: u32::try_from(self.clients.len()).unwrap_or(u32::MAX),
            rtt_us: Vec::new(),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next needed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let d = self.donations.values().map(Donation::next_timer);
        let a = self.acceptances.values().map(Acceptance::next_timer);
        d.chain(a)
            .flatten()
            .chain(self.lingers.values().copied())
            .chain(self.token_wanted.values().copied())
            .min()
    }

    /// Timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, mn: &mut MobileNode) {
        let due: Vec<Ipv6Addr> = self
            .donations
            .iter()
            .filter(|(_, d)| d.next_timer().is_some_and(|t| t <= now))
            .map(|(c, _)| *c)
            .collect();
        for c in due {
            self.donor_timeout(now, mn, c);
        }
        let due: Vec<Ipv6Addr> = self
            .acceptances
            .iter()
            .filter(|(_, a)| a.next_timer().is_some_and(|t| t <= now))
            .map(|(c, _)| *c)
            .collect();
        for c in due {
            self.acceptor_timeout(now, mn, c);
        }
        let due: Vec<Ipv6Addr> = self
            .lingers
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(c, _)| *c)
            .collect();
        for client in due {
            self.lingers.remove(&client);
            self.returns.retain(|_, (c, _)| *c != client);
            // The contact node keeps forwarding a placed client's packets
            // that come the home path (until it dies or comes back).
            let placed = self.is_contact() && self.placements.contains_key(&client);
            if !self.is_moving(client) && !placed {
                self.engine(EngineChange::Remove {
                    hoa: self.cfg.hoa,
                    client,
                });
            }
        }
        self.token_timeout(now);
    }

    /// A frame from member `from` as the node channel delivered it:
    /// decoded, then [`handle_message`](Self::handle_message). A frame that
    /// does not decode is counted and returned as [`MsgDrop::Malformed`].
    pub fn handle_frame(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &MemberId,
        frame: &[u8],
    ) -> Result<(), MsgDrop> {
        match HandoffMsg::from_bytes(frame) {
            Ok(msg) => self.handle_message(now, mn, from, msg),
            Err(error) => {
                self.stats.malformed += 1;
                debug!(%from, %error, "malformed handoff frame");
                Err(MsgDrop::Malformed {
                    from: from.clone(),
                    error,
                })
            }
        }
    }

    /// A control message from member `from` (authenticated by the
    /// channel). A message that changes nothing (unknown sender or
    /// handoff, a duplicate, the wrong role) is counted and returned as
    /// [`MsgDrop::Ignored`]; hostile input never panics.
    pub fn handle_message(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &MemberId,
        msg: HandoffMsg,
    ) -> Result<(), MsgDrop> {
        self.dropped = None;
        if self.peers.contains_key(from) {
            self.dispatch(now, mn, from, msg);
        } else {
            self.ignored(from, msg.kind(), DropWhy::UnknownMember);
        }
        self.dropped.take().map_or(Ok(()), Err)
    }

    fn dispatch(&mut self, now: Instant, mn: &mut MobileNode, from: &MemberId, msg: HandoffMsg) {
        debug!(%from, kind = msg.kind(), "handoff message");
        match msg {
            HandoffMsg::Prepare {
                id,
                client,
                state,
                connections,
            } => self.on_prepare(now, mn, from, id, client, state, connections),
            HandoffMsg::Accept { id } => self.on_accept(now, from, id),
            HandoffMsg::Reject { id, reason } => self.on_reject(now, mn, from, id, reason),
            HandoffMsg::Restored { id } => self.on_restored_msg(from, id),
            HandoffMsg::Bound { id, sequence } => self.on_bound_msg(now, from, id, sequence),
            HandoffMsg::Done { id } => self.on_done(now, from, id),
            HandoffMsg::Cancel { id } => self.on_cancel(now, mn, from, id),
            HandoffMsg::Aborted {
                id,
                next_sequence,
                reason,
            } => self.on_aborted(now, mn, from, id, next_sequence, reason),
            HandoffMsg::TokenRequest { client } => self.on_token_request(now, mn, from, client),
            HandoffMsg::Token { client, token } => self.on_token(now, mn, from, client, &token),
            HandoffMsg::Placed { client, sequence } => self.on_placed(from, client, sequence),
            HandoffMsg::Drain { policy } => {
                if *from == self.cfg.contact {
                    self.drain(now, mn, policy);
                } else {
                    self.ignored(from, "drain", DropWhy::WrongRole);
                }
            }
            HandoffMsg::Load(report) => self.on_load(from, report),
        }
    }

    /// An event of the member's [`MobileNode`] (the shell passes every one
    /// it drains; those about other clients are ignored).
    pub fn handle_mobile_event(&mut self, now: Instant, mn: &mut MobileNode, ev: &MobileEvent) {
        match *ev {
            MobileEvent::HomeTokenReady { cn } => self.on_token_ready(now, mn, cn),
            MobileEvent::HomeTokenNeeded { cn } => self.on_token_needed(now, cn),
            MobileEvent::Bound {
                cn, coa, sequence, ..
            } => {
                if coa == self.cfg.me.coa {
                    self.on_client_bound(now, cn, sequence);
                }
            }
            MobileEvent::Failed { cn, .. } => self.on_binding_failed(now, mn, cn),
            MobileEvent::Deregistered { .. } | MobileEvent::BindingExpired { .. } => {}
        }
    }

    /// A result of an action the shell executed.
    pub fn handle_shell(&mut self, now: Instant, mn: &mut MobileNode, ev: ShellEvent) {
        match ev {
            ShellEvent::Frozen { key, connections } => self.on_frozen(now, mn, &key, connections),
            ShellEvent::FreezeFailed { key } => self.on_freeze_failed(now, mn, &key),
            ShellEvent::Thawed { key } => self.on_thawed(now, mn, &key),
            ShellEvent::Closed { key } => self.on_closed(now, mn, &key),
            ShellEvent::Transfer {
                key,
                client,
                connections,
            } => self.on_transfer(&key, client, connections),
            ShellEvent::Restored { key } => self.on_restored(&key),
            ShellEvent::RestoreFailed { key } => {
                self.abort_keyed(now, mn, &key, AbortReason::RestoreFailed);
            }
            ShellEvent::Activated { key } => self.on_activated(now, &key),
            ShellEvent::ActivateFailed { key } => {
                self.abort_keyed(now, mn, &key, AbortReason::ActivateFailed);
            }
        }
    }

    fn send(&mut self, to: &MemberId, msg: HandoffMsg) {
        self.actions.push_back(Action::Send {
            to: to.clone(),
            msg,
        });
    }

    fn engine(&mut self, c: EngineChange) {
        self.actions.push_back(Action::Engine(c));
    }

    fn event(&mut self, e: HandoffEvent) {
        debug!(event = ?e, "handoff");
        self.actions.push_back(Action::Event(e));
    }

    fn ignored(&mut self, from: &MemberId, kind: &'static str, why: DropWhy) {
        debug!(%from, kind, ?why, "handoff message ignored");
        self.stats.ignored_messages += 1;
        let n = match why {
            DropWhy::UnknownMember => &mut self.stats.unknown_member,
            DropWhy::UnknownHandoff => &mut self.stats.unknown_handoff,
            DropWhy::OutOfOrder => &mut self.stats.out_of_order,
            DropWhy::WrongRole => &mut self.stats.wrong_role,
            DropWhy::Full => &mut self.stats.full,
        };
        *n += 1;
        self.dropped = Some(MsgDrop::Ignored {
            from: from.clone(),
            kind,
            why,
        });
    }

    fn remember(&mut self, key: HandoffKey, outcome: Outcome) {
        if self.cfg.remember == 0 {
            return;
        }
        while self.finished.len() >= self.cfg.remember {
            self.finished.pop_front();
        }
        self.finished.push_back((key, outcome));
    }

    fn outcome(&self, key: &HandoffKey) -> Option<Outcome> {
        self.finished
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, o)| *o)
    }

    fn linger(&mut self, now: Instant, client: Ipv6Addr, factor: u32) {
        self.lingers
            .insert(client, now + self.cfg.forward_linger * factor);
    }

    fn coa_of(&self, member: &MemberId) -> Option<Ipv6Addr> {
        self.peers.get(member).map(|p| p.info.coa)
    }

    fn active(&self) -> usize {
        self.donations.len() + self.acceptances.len()
    }
}
