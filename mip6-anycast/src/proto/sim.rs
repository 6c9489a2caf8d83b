//! An in-memory network for driving the machines message by message with a
//! simulated clock (`t0 + Duration`), for this crate's tests and the
//! daemons' tests. No I/O: packets are byte vectors in a queue.
//!
//! * Nodes implement [`SimNode`]; [`CorrespondentNode`], [`MemberNode`]
//!   (a [`MobileNode`] plus an optional [`HomeRegistration`]) and
//!   [`HomeAgentNode`] wrap the machines and record their events.
//! * Routing: a packet goes to the node owning its IPv6 destination; a
//!   packet to a home address with a registered care-of address goes
//!   "through the home agent tunnel" to the node owning that care-of
//!   address, with [`Arrival::Tunnel`] and extra delay. A
//!   [`HomeAgentNode`]'s tunnel events update these home routes, so an
//!   anycast takeover re-routes HoTs as on a real network.
//! * Impairments: per-packet delay plus random jitter (reordering), random
//!   loss and duplication from a seeded [`DeterministicRandom`], and
//!   [`Rule`]s matching specific packets (drop the next BU, delay a BA...).
//! * Every sent packet is kept in [`Sim::log`] with its bytes, so tests can
//!   assert timings and replay old packets with [`Sim::inject`].

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::common::{Action, Arrival, Route, Transmit};
use super::correspondent::{BindingEvent, Correspondent};
use super::home_agent::{HaEvent, HomeAgent, PersistEvent, RegistrationRecord, TunnelEvent};
use super::mobile::{HomeRegEvent, HomeRegistration, MobileEvent, MobileNode};
use super::stats::DropReason;
use crate::crypto::{DeterministicRandom, NtpTimestamp, RandomSource};

/// Index of a node in a [`Sim`].
pub type NodeId = usize;

/// A machine (or a few) attached to the simulated network.
pub trait SimNode: Any {
    /// Addresses delivered to this node directly.
    fn addresses(&self) -> Vec<Ipv6Addr>;
    /// A packet arrived.
    fn handle_packet(&mut self, now: Instant, wall: NtpTimestamp, packet: &[u8], arrival: Arrival);
    /// A timer may be due.
    fn handle_timeout(&mut self, now: Instant, wall: NtpTimestamp);
    /// The next timer.
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// Drains the machines' actions: packets are returned, events recorded.
    fn drain(&mut self, now: Instant) -> Vec<Transmit>;
    /// Home routes learned since the last call: (home address, care-of
    /// address or `None` when the tunnel went down).
    fn take_home_routes(&mut self) -> Vec<(Ipv6Addr, Option<Ipv6Addr>)> {
        Vec::new()
    }
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Moves a machine's actions into `events`/`drops`, returning packets.
pub fn drain_actions<E>(
    mut poll: impl FnMut() -> Option<Action<E>>,
    now: Instant,
    events: &mut Vec<(Instant, E)>,
    drops: &mut Vec<(Instant, DropReason)>,
) -> Vec<Transmit> {
    let mut out = Vec::new();
    while let Some(a) = poll() {
        match a {
            Action::Transmit(t) => out.push(t),
            Action::Event(e) => events.push((now, e)),
            Action::Dropped(r) => drops.push((now, r)),
        }
    }
    out
}

macro_rules! any_impl {
    () => {
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    };
}

/// A [`Correspondent`] on the simulated network.
#[derive(Debug)]
pub struct CorrespondentNode {
    /// The machine.
    pub cn: Correspondent,
    /// Its addresses.
    pub addrs: Vec<Ipv6Addr>,
    /// Binding events seen.
    pub events: Vec<(Instant, BindingEvent)>,
    /// Drops seen.
    pub drops: Vec<(Instant, DropReason)>,
}

impl CorrespondentNode {
    /// Wraps `cn` answering on `addrs`.
    #[must_use]
    pub fn new(cn: Correspondent, addrs: Vec<Ipv6Addr>) -> Self {
        Self {
            cn,
            addrs,
            events: Vec::new(),
            drops: Vec::new(),
        }
    }
}

impl SimNode for CorrespondentNode {
    fn addresses(&self) -> Vec<Ipv6Addr> {
        self.addrs.clone()
    }
    fn handle_packet(&mut self, now: Instant, _: NtpTimestamp, packet: &[u8], _: Arrival) {
        self.cn.handle_packet(now, packet);
    }
    fn handle_timeout(&mut self, now: Instant, _: NtpTimestamp) {
        self.cn.handle_timeout(now);
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.cn.poll_timeout()
    }
    fn drain(&mut self, now: Instant) -> Vec<Transmit> {
        let cn = &mut self.cn;
        drain_actions(|| cn.poll_action(), now, &mut self.events, &mut self.drops)
    }
    any_impl!();
}

/// A member: a [`MobileNode`] for the home address, plus optionally the
/// [`HomeRegistration`] client (the contact node).
#[derive(Debug)]
pub struct MemberNode {
    /// The mobile node machine.
    pub mn: MobileNode,
    /// The home registration client, if this member registers at the HA.
    pub home_reg: Option<HomeRegistration>,
    /// Its own addresses (care-of addresses).
    pub addrs: Vec<Ipv6Addr>,
    /// Mobile node events seen.
    pub events: Vec<(Instant, MobileEvent)>,
    /// Home registration events seen.
    pub home_events: Vec<(Instant, HomeRegEvent)>,
    /// Drops seen (both machines).
    pub drops: Vec<(Instant, DropReason)>,
}

impl MemberNode {
    /// Wraps `mn` (and `home_reg`) on `addrs`.
    #[must_use]
    pub fn new(mn: MobileNode, home_reg: Option<HomeRegistration>, addrs: Vec<Ipv6Addr>) -> Self {
        Self {
            mn,
            home_reg,
            addrs,
            events: Vec::new(),
            home_events: Vec::new(),
            drops: Vec::new(),
        }
    }
}

impl SimNode for MemberNode {
    fn addresses(&self) -> Vec<Ipv6Addr> {
        self.addrs.clone()
    }
    fn handle_packet(&mut self, now: Instant, wall: NtpTimestamp, packet: &[u8], arrival: Arrival) {
        let src = packet
            .get(8..24)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(Ipv6Addr::from);
        match &mut self.home_reg {
            Some(h) if src == Some(h.config().ha) => h.handle_packet(now, wall, packet),
            _ => self.mn.handle_packet(now, packet, arrival),
        }
    }
    fn handle_timeout(&mut self, now: Instant, wall: NtpTimestamp) {
        if self.mn.poll_timeout().is_some_and(|t| t <= now) {
            self.mn.handle_timeout(now);
        }
        if let Some(h) = &mut self.home_reg
            && h.poll_timeout().is_some_and(|t| t <= now)
        {
            h.handle_timeout(now, wall);
        }
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        let h = self
            .home_reg
            .as_ref()
            .and_then(HomeRegistration::poll_timeout);
        [self.mn.poll_timeout(), h].into_iter().flatten().min()
    }
    fn drain(&mut self, now: Instant) -> Vec<Transmit> {
        let mn = &mut self.mn;
        let mut out = drain_actions(|| mn.poll_action(), now, &mut self.events, &mut self.drops);
        if let Some(h) = &mut self.home_reg {
            out.extend(drain_actions(
                || h.poll_action(),
                now,
                &mut self.home_events,
                &mut self.drops,
            ));
        }
        out
    }
    any_impl!();
}

/// A [`HomeAgent`] on the simulated network, with a persisted-records store.
#[derive(Debug)]
pub struct HomeAgentNode {
    /// The machine.
    pub ha: HomeAgent,
    /// Its addresses.
    pub addrs: Vec<Ipv6Addr>,
    /// Tunnel events seen.
    pub tunnel_events: Vec<(Instant, TunnelEvent)>,
    /// The "disk": persisted records by home address.
    pub store: BTreeMap<Ipv6Addr, RegistrationRecord>,
    /// Drops seen.
    pub drops: Vec<(Instant, DropReason)>,
    routes: Vec<(Ipv6Addr, Option<Ipv6Addr>)>,
}

impl HomeAgentNode {
    /// Wraps `ha` on `addrs`.
    #[must_use]
    pub fn new(ha: HomeAgent, addrs: Vec<Ipv6Addr>) -> Self {
        Self {
            ha,
            addrs,
            tunnel_events: Vec::new(),
            store: BTreeMap::new(),
            drops: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Replaces the machine (a restart), keeping the store; the new machine
    /// gets the stored records through `restore`. Returns how many were
    /// restored.
    pub fn restart(&mut self, ha: HomeAgent, now: Instant, wall: NtpTimestamp) -> usize {
        self.ha = ha;
        let records: Vec<RegistrationRecord> = self.store.values().cloned().collect();
        self.ha.restore(&records, now, wall)
    }
}

impl SimNode for HomeAgentNode {
    fn addresses(&self) -> Vec<Ipv6Addr> {
        self.addrs.clone()
    }
    fn handle_packet(&mut self, now: Instant, wall: NtpTimestamp, packet: &[u8], _: Arrival) {
        self.ha.handle_packet(now, wall, packet);
    }
    fn handle_timeout(&mut self, now: Instant, _: NtpTimestamp) {
        self.ha.handle_timeout(now);
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.ha.poll_timeout()
    }
    fn drain(&mut self, now: Instant) -> Vec<Transmit> {
        let mut events = Vec::new();
        let ha = &mut self.ha;
        let out = drain_actions(|| ha.poll_action(), now, &mut events, &mut self.drops);
        for (at, e) in events {
            match e {
                HaEvent::Tunnel(t) => {
                    self.routes.push(match t {
                        TunnelEvent::Up { hoa, coa } => (hoa, Some(coa)),
                        TunnelEvent::Down { hoa } => (hoa, None),
                    });
                    self.tunnel_events.push((at, t));
                }
                HaEvent::Persist(PersistEvent::Store(r)) => {
                    self.store.insert(r.hoa, r);
                }
                HaEvent::Persist(PersistEvent::Delete { hoa }) => {
                    self.store.remove(&hoa);
                }
            }
        }
        out
    }
    fn take_home_routes(&mut self) -> Vec<(Ipv6Addr, Option<Ipv6Addr>)> {
        std::mem::take(&mut self.routes)
    }
    any_impl!();
}

/// Link behaviour applied to every packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkProfile {
    /// One-way delay.
    pub delay: Duration,
    /// Extra random delay in `[0, jitter]` (reorders packets).
    pub jitter: Duration,
    /// Extra delay of the home agent tunnel path (HoTI/HoT).
    pub tunnel_delay: Duration,
    /// Probability of loss, 0.0..=1.0.
    pub loss: f64,
    /// Probability of duplication, 0.0..=1.0.
    pub duplicate: f64,
}

impl Default for LinkProfile {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            tunnel_delay: Duration::from_millis(10),
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// A sent packet as rules see it.
#[derive(Debug, Clone, Copy)]
pub struct SimPacket<'a> {
    /// Sending node.
    pub from: NodeId,
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// MH type.
    pub mh_type: u8,
    /// Route hint.
    pub route: Route,
    /// The bytes.
    pub bytes: &'a [u8],
}

/// What a matching [`Rule`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Lose the packet.
    Drop,
    /// Deliver it twice.
    Duplicate,
    /// Deliver it this much later.
    Delay(Duration),
}

type Matcher = Box<dyn FnMut(&SimPacket<'_>) -> bool>;

/// A targeted impairment: applies to packets `matcher` accepts, at most
/// `remaining` times (`None`: always).
pub struct Rule {
    /// Which packets.
    pub matcher: Matcher,
    /// What to do.
    pub action: RuleAction,
    /// How many more times.
    pub remaining: Option<usize>,
}

/// What became of a sent packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Queued for delivery to a node (`copies` times).
    Sent {
        /// Receiving node.
        to: NodeId,
        /// Delivery time of the first copy.
        at: Instant,
        /// Number of copies.
        copies: u8,
    },
    /// Lost on the link.
    Lost,
    /// No node owns the destination.
    Unroutable,
}

/// One sent packet.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// When it was sent.
    pub sent: Instant,
    /// Sending node.
    pub from: NodeId,
    /// The packet.
    pub transmit: Transmit,
    /// What happened to it.
    pub fate: Fate,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    to: NodeId,
    arrival_tunnel: bool,
    bytes: Vec<u8>,
}

/// Upper bound of rounds at one instant before the simulator stops (a
/// machine that keeps asking for a timeout it does not consume).
const MAX_ROUNDS_PER_INSTANT: usize = 100_000;

/// The simulated network. See the module docs.
pub struct Sim {
    t0: Instant,
    now: Instant,
    wall0: Duration,
    nodes: Vec<Box<dyn SimNode>>,
    skew: Vec<i64>,
    owners: HashMap<Ipv6Addr, NodeId>,
    home: HashMap<Ipv6Addr, Ipv6Addr>,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    rng: DeterministicRandom,
    rules: Vec<Rule>,
    stalled: bool,
    /// Link behaviour.
    pub profile: LinkProfile,
    /// Every sent packet.
    pub log: Vec<LogEntry>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("elapsed", &(self.now - self.t0))
            .field("nodes", &self.nodes.len())
            .field("in_flight", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An empty network at `t0`; the wall clock starts at `wall0` after
    /// the Unix epoch; `seed` drives jitter, loss and duplication.
    #[must_use]
    pub fn new(t0: Instant, wall0: Duration, seed: u64) -> Self {
        Self {
            t0,
            now: t0,
            wall0,
            nodes: Vec::new(),
            skew: Vec::new(),
            owners: HashMap::new(),
            home: HashMap::new(),
            queue: BinaryHeap::new(),
            order: 0,
            rng: DeterministicRandom::new(seed),
            rules: Vec::new(),
            stalled: false,
            profile: LinkProfile::default(),
            log: Vec::new(),
        }
    }

    /// Current simulated time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Start time.
    #[must_use]
    pub fn t0(&self) -> Instant {
        self.t0
    }

    /// True if a run stopped because a node never consumed its timer.
    #[must_use]
    pub fn stalled(&self) -> bool {
        self.stalled
    }

    /// Attaches a node; its addresses are routed to it.
    pub fn add_node(&mut self, node: Box<dyn SimNode>) -> NodeId {
        let id = self.nodes.len();
        for a in node.addresses() {
            self.owners.insert(a, id);
        }
        self.nodes.push(node);
        self.skew.push(0);
        id
    }

    /// Routes `addr` to node `id` (an extra or moved address).
    pub fn add_address(&mut self, id: NodeId, addr: Ipv6Addr) {
        self.owners.insert(addr, id);
    }

    /// Sets the home-agent tunnel route of `hoa` (normally learned from a
    /// [`HomeAgentNode`]).
    pub fn set_home_route(&mut self, hoa: Ipv6Addr, coa: Option<Ipv6Addr>) {
        match coa {
            Some(c) => self.home.insert(hoa, c),
            None => self.home.remove(&hoa),
        };
    }

    /// Shifts node `id`'s wall clock by `secs`.
    pub fn set_clock_skew(&mut self, id: NodeId, secs: i64) {
        if let Some(s) = self.skew.get_mut(id) {
            *s = secs;
        }
    }

    /// Node `id`'s wall clock now.
    #[must_use]
    pub fn wall(&self, id: NodeId) -> NtpTimestamp {
        let base = self.wall0 + (self.now - self.t0);
        let skew = self.skew.get(id).copied().unwrap_or(0);
        let d = if skew >= 0 {
            base + Duration::from_secs(skew.unsigned_abs())
        } else {
            base.saturating_sub(Duration::from_secs(skew.unsigned_abs()))
        };
        NtpTimestamp::from_unix(d)
    }

    /// Adds a targeted impairment.
    pub fn add_rule(
        &mut self,
        action: RuleAction,
        remaining: Option<usize>,
        matcher: impl FnMut(&SimPacket<'_>) -> bool + 'static,
    ) {
        self.rules.push(Rule {
            matcher: Box::new(matcher),
            action,
            remaining,
        });
    }

    /// Removes all rules.
    pub fn clear_rules(&mut self) {
        self.rules.clear();
    }

    /// The node `id` as `T`.
    ///
    /// # Panics
    /// If `id` is not a `T` (a test bug).
    #[must_use]
    pub fn node<T: SimNode>(&self, id: NodeId) -> &T {
        match self
            .nodes
            .get(id)
            .and_then(|n| n.as_any().downcast_ref::<T>())
        {
            Some(n) => n,
            None => panic!("node {id} is not a {}", std::any::type_name::<T>()),
        }
    }

    /// Runs `f` on node `id` as `T` with the current time and its wall
    /// clock (to issue commands), then sends what it produced.
    ///
    /// # Panics
    /// If `id` is not a `T` (a test bug).
    pub fn with<T: SimNode, R>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut T, Instant, NtpTimestamp) -> R,
    ) -> R {
        let (now, wall) = (self.now, self.wall(id));
        let node = match self
            .nodes
            .get_mut(id)
            .and_then(|n| n.as_any_mut().downcast_mut::<T>())
        {
            Some(n) => n,
            None => panic!("node {id} is not a {}", std::any::type_name::<T>()),
        };
        let r = f(node, now, wall);
        self.collect();
        r
    }

    /// Delivers `bytes` to node `id` now, bypassing the link (replays,
    /// forgeries).
    pub fn inject(&mut self, id: NodeId, bytes: &[u8], arrival: Arrival) {
        let (now, wall) = (self.now, self.wall(id));
        if let Some(n) = self.nodes.get_mut(id) {
            n.handle_packet(now, wall, bytes, arrival);
        }
        self.collect();
    }

    /// Runs until `until` (inclusive).
    pub fn run_until(&mut self, until: Instant) {
        self.collect();
        let mut rounds = 0usize;
        let mut last = self.now;
        loop {
            let next_packet = self.queue.peek().map(|Reverse(p)| p.at);
            let next_timer = self.nodes.iter_mut().filter_map(|n| n.poll_timeout()).min();
            let Some(next) = [next_packet, next_timer].into_iter().flatten().min() else {
                break;
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if self.now == last {
                rounds += 1;
                if rounds > MAX_ROUNDS_PER_INSTANT {
                    self.stalled = true;
                    break;
                }
            } else {
                last = self.now;
                rounds = 0;
            }
            self.deliver_due();
            self.fire_timers();
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` from now.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver_due(&mut self) {
        while self.queue.peek().is_some_and(|Reverse(p)| p.at <= self.now) {
            let Some(Reverse(p)) = self.queue.pop() else {
                break;
            };
            let arrival = if p.arrival_tunnel {
                Arrival::Tunnel
            } else {
                Arrival::Direct
            };
            let (now, wall) = (self.now, self.wall(p.to));
            if let Some(n) = self.nodes.get_mut(p.to) {
                n.handle_packet(now, wall, &p.bytes, arrival);
            }
            self.collect();
        }
    }

    fn fire_timers(&mut self) {
        for id in 0..self.nodes.len() {
            let (now, wall) = (self.now, self.wall(id));
            if let Some(n) = self.nodes.get_mut(id)
                && n.poll_timeout().is_some_and(|t| t <= now)
            {
                n.handle_timeout(now, wall);
            }
            self.collect();
        }
    }

    /// Sends what every node produced and applies learned home routes.
    fn collect(&mut self) {
        for id in 0..self.nodes.len() {
            let now = self.now;
            let (out, routes) = match self.nodes.get_mut(id) {
                Some(n) => (n.drain(now), n.take_home_routes()),
                None => continue,
            };
            for (hoa, coa) in routes {
                self.set_home_route(hoa, coa);
            }
            for t in out {
                self.send(id, t);
            }
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut b = [0u8; 4];
        if self.rng.fill(&mut b).is_err() {
            return false;
        }
        f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX) < p
    }

    fn jitter(&mut self) -> Duration {
        let j = self.profile.jitter;
        if j.is_zero() {
            return j;
        }
        let mut b = [0u8; 4];
        if self.rng.fill(&mut b).is_err() {
            return Duration::ZERO;
        }
        j.mul_f64(f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX))
    }

    fn send(&mut self, from: NodeId, t: Transmit) {
        let (target, tunnel) = match self.home.get(&t.dst) {
            Some(coa) => (self.owners.get(coa).copied(), true),
            None => (self.owners.get(&t.dst).copied(), false),
        };
        let mut delay = self.profile.delay;
        let mut copies = 1u8;
        let mut lost = false;
        let view = SimPacket {
            from,
            src: t.src,
            dst: t.dst,
            mh_type: t.mh_type,
            route: t.route,
            bytes: &t.bytes,
        };
        for rule in &mut self.rules {
            if rule.remaining == Some(0) || !(rule.matcher)(&view) {
                continue;
            }
            if let Some(r) = &mut rule.remaining {
                *r -= 1;
            }
            match rule.action {
                RuleAction::Drop => lost = true,
                RuleAction::Duplicate => copies = copies.saturating_add(1),
                RuleAction::Delay(d) => delay += d,
            }
        }
        if tunnel || t.route == Route::ReverseTunnel {
            delay += self.profile.tunnel_delay;
        }
        if self.chance(self.profile.loss) {
            lost = true;
        }
        if self.chance(self.profile.duplicate) {
            copies = copies.saturating_add(1);
        }
        let fate = match (target, lost) {
            (None, _) => Fate::Unroutable,
            (Some(_), true) => Fate::Lost,
            (Some(to), false) => {
                let at = self.now + delay + self.jitter();
                for i in 0..copies {
                    let extra = if i == 0 {
                        Duration::ZERO
                    } else {
                        self.jitter()
                    };
                    self.order += 1;
                    self.queue.push(Reverse(InFlight {
                        at: at + extra,
                        order: self.order,
                        to,
                        arrival_tunnel: tunnel,
                        bytes: t.bytes.clone(),
                    }));
                }
                Fate::Sent { to, at, copies }
            }
        };
        self.log.push(LogEntry {
            sent: self.now,
            from,
            transmit: t,
            fate,
        });
    }
}
