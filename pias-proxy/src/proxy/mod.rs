//! One PIAS proxy: the IAP, RAP and JAP roles over one live view of the
//! proxies, as a sans-IO machine. Feed it packets, control messages,
//! membership changes and time; drain [`Action`]s with [`Proxy::poll_action`].
//!
//! Packet path (seed 001 figure 2): first packet client -> IAP -> RAP -> JAP
//! -> target, later packets client -> IAP -> JAP -> target; proxies talk
//! IPv6-in-IPv6 (RFC 2473) between their unicast addresses, the JAP NATs to
//! the target (`JAP:q = NAT(AC:p)`) and sends replies to the client with
//! the group's address as source.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;

mod announce;
mod control;
mod tables;

use crate::auth::Admission;
use crate::group::{AddressBlock, Assigner, GroupAddr, GroupConfig, Policy};
use crate::iap::{FlowKey, Iap, IapLimits};
use crate::jap::{HealthConfig, HealthEvent, Jap};
use crate::nat::{self, Flow};
use crate::peer_auth::{PeerAuth, PeerAuthConfig, Purpose};
use crate::rap::{Rap, RapLoad};
use crate::ring::Ring;
use crate::select::{order_japs, same_prefix};
use crate::wire::{MAX_JAP_LIST, MessageRepr, PEER_PORT};
use mip6_anycast::engine::datapath::TableUpdate;

/// Configuration of one proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This proxy's unicast address (tunnel endpoint, control messages).
    pub me: Ipv6Addr,
    /// Source address of the JAP's NAT towards targets (`JAP:q`); replies
    /// to it must reach this proxy's datapath, not its kernel's sockets.
    pub nat_addr: Ipv6Addr,
    /// The anycast prefix all proxies announce.
    pub anycast_prefix: (Ipv6Addr, u8),
    /// Pre-assigned groups (every proxy has the same list).
    pub groups: Vec<GroupConfig>,
    /// RAPs per group not configured here (dynamically assigned groups).
    pub default_raps: u8,
    /// Block for dynamic assignment and the creator key that authorizes it.
    pub block: Option<(AddressBlock, Vec<u8>)>,
    /// Most groups one target may join (or create) at this proxy.
    pub max_groups_per_target: usize,
    /// NAT ports on `me`.
    pub nat_ports: (u16, u16),
    /// Target health monitoring.
    pub health: HealthConfig,
    /// RAP load shedding.
    pub rap_load: RapLoad,
    /// IAP bounds.
    pub iap: IapLimits,
    /// IAPs sharing affinity with this one (the proxies of its cluster).
    pub cluster: Vec<Ipv6Addr>,
    /// Points per proxy on the hash ring.
    pub vnodes: u16,
    /// Seed of the selection RNG.
    pub seed: u64,
    /// JAP reports are resent this often until acknowledged.
    pub report_retry: Duration,
    /// The inter-proxy key, this start's session and the wall-clock
    /// anchor: every peer message is sealed ([`crate::peer_auth`]).
    pub peer_auth: PeerAuthConfig,
    /// Most dynamically created groups known here (created here or
    /// announced by other proxies).
    pub max_dynamic_groups: usize,
}

impl ProxyConfig {
    /// Defaults around `me`, a prefix and the inter-proxy key.
    pub fn new(me: Ipv6Addr, anycast_prefix: (Ipv6Addr, u8), peer_auth: PeerAuthConfig) -> Self {
        ProxyConfig {
            me,
            nat_addr: me,
            anycast_prefix,
            groups: Vec::new(),
            default_raps: 3,
            block: None,
            max_groups_per_target: 64,
            nat_ports: (20000, 59999),
            health: HealthConfig::default(),
            rap_load: RapLoad::default(),
            iap: IapLimits::default(),
            cluster: Vec::new(),
            vnodes: 16,
            seed: 1,
            report_retry: Duration::from_millis(500),
            peer_auth,
            max_dynamic_groups: 10_000,
        }
    }
}

/// Which path segment a transmitted packet is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    /// IAP -> RAP tunnel.
    ToRap,
    /// IAP or RAP -> JAP tunnel.
    ToJap,
    /// JAP -> target (NAT or tunnel).
    ToTarget,
    /// JAP -> client reply.
    ToClient,
}

/// Something that happened, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A target joined here.
    Joined(GroupAddr, Ipv6Addr),
    /// A target left.
    Left(GroupAddr, Ipv6Addr),
    /// Health monitoring declared a target dead.
    TargetDead(GroupAddr, Ipv6Addr),
    /// A RAP's JAP list was cached.
    JapListCached(GroupAddr, usize),
    /// A flow kept its JAP through an affinity answer from a peer IAP.
    AffinityFromPeer(GroupAddr, Ipv6Addr),
    /// A group was assigned to a URI.
    Created(GroupAddr, String),
    /// A target's NAT bindings followed its connections to another target.
    HandedOff(GroupAddr, Ipv6Addr, Ipv6Addr, usize),
}

/// Output of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A UDP control message.
    Control {
        /// Source address and port.
        src: (Ipv6Addr, u16),
        /// Destination address and port.
        dst: (Ipv6Addr, u16),
        /// Message bytes.
        bytes: Vec<u8>,
    },
    /// A complete IPv6 packet for the network.
    Transmit {
        /// The packet.
        packet: Vec<u8>,
        /// Its segment.
        segment: Segment,
    },
    /// Send an ICMPv6 Echo Request to a target; answer with [`Proxy::target_heard`].
    PingTarget(Ipv6Addr),
    /// An event.
    Event(Event),
    /// A change to the tunnel engine's proxy tables (see
    /// `mip6_anycast::engine::datapath::proxy`): the engine carries every
    /// later packet of a flow whose first packet this machine routed.
    Table(TableUpdate),
}

/// Counters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Packets dropped, per reason.
    pub drops: HashMap<&'static str, u64>,
    /// Control messages dropped, per reason.
    pub control_drops: HashMap<&'static str, u64>,
    /// JAP reports sent to RAPs (membership messages).
    pub reports_sent: u64,
    /// Packets transmitted, per segment.
    pub segments: HashMap<&'static str, u64>,
    /// Dynamic groups learned from other proxies' announcements.
    pub groups_learned: u64,
}

impl Stats {
    fn drop(&mut self, why: &'static str) {
        *self.drops.entry(why).or_insert(0) += 1;
    }
    fn control_drop(&mut self, why: &'static str) {
        *self.control_drops.entry(why).or_insert(0) += 1;
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u32,
    count: u32,
    due: Instant,
    tries: u8,
}

/// The proxy machine.
#[derive(Debug)]
pub struct Proxy {
    cfg: ProxyConfig,
    groups: HashMap<GroupAddr, GroupConfig>,
    ring: Ring,
    rtt: HashMap<(Ipv6Addr, Ipv6Addr), Duration>,
    /// JAP role.
    pub jap: Jap,
    /// RAP role.
    pub rap: Rap,
    /// IAP role.
    pub iap: Iap,
    admission: Admission,
    assigner: Option<Assigner>,
    /// Dynamically created groups known here: URI and creator proxy.
    dynamic: HashMap<GroupAddr, (String, Ipv6Addr)>,
    peer_auth: PeerAuth,
    creates: HashMap<Ipv6Addr, (u64, usize)>,
    pending: HashMap<(GroupAddr, Ipv6Addr), Pending>,
    rng: SmallRng,
    actions: VecDeque<Action>,
    /// Counters.
    pub stats: Stats,
}

impl Proxy {
    /// A proxy that knows only itself as live.
    pub fn new(cfg: ProxyConfig) -> Self {
        let groups = cfg.groups.iter().map(|g| (g.group, g.clone())).collect();
        let mut ring = Ring::new(cfg.vnodes);
        ring.insert(cfg.me);
        let (prefix, len) = cfg.anycast_prefix;
        let actions = VecDeque::from([
            Action::Table(TableUpdate::AddAnycastPrefix { prefix, len }),
            Action::Table(TableUpdate::AddNatAddress { addr: cfg.nat_addr }),
        ]);
        Proxy {
            groups,
            ring,
            rtt: HashMap::new(),
            jap: Jap::new(cfg.nat_ports, cfg.health),
            rap: Rap::new(cfg.rap_load),
            iap: Iap::new(cfg.iap),
            admission: Admission::new(cfg.max_groups_per_target),
            assigner: cfg.block.as_ref().map(|(b, _)| Assigner::new(b.clone())),
            dynamic: HashMap::new(),
            peer_auth: PeerAuth::new(&cfg.peer_auth, Purpose::Peer, cfg.me),
            creates: HashMap::new(),
            pending: HashMap::new(),
            rng: SmallRng::seed_from_u64(cfg.seed),
            actions,
            stats: Stats::default(),
            cfg,
        }
    }

    /// This proxy's unicast address.
    pub fn me(&self) -> Ipv6Addr {
        self.cfg.me
    }

    /// The live view.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Next output.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.sync_tables();
        self.actions.pop_front()
    }

    /// Configured groups (pre-assigned and created here).
    pub fn group_configs(&self) -> impl Iterator<Item = &GroupConfig> {
        self.groups.values()
    }

    /// Number of RAPs of `group`.
    pub fn raps_of(&self, group: &GroupAddr) -> usize {
        usize::from(
            self.groups
                .get(group)
                .map_or(self.cfg.default_raps, |g| g.raps)
                .max(1),
        )
    }

    /// The RAPs of `group` in the current live view.
    pub fn raps(&self, group: &GroupAddr) -> Vec<Ipv6Addr> {
        self.ring.raps(group, self.raps_of(group))
    }

    /// A measured RTT between two proxies (seed 001 3.5; symmetric).
    pub fn set_rtt(&mut self, a: Ipv6Addr, b: Ipv6Addr, rtt: Duration) {
        self.rtt.insert((a, b), rtt);
        self.rtt.insert((b, a), rtt);
    }

    /// An RTT this proxy measured to `peer`; the minimum is kept (seed 001 3.5).
    pub fn rtt_sample(&mut self, peer: Ipv6Addr, rtt: Duration) {
        let me = self.cfg.me;
        let best = self.rtt.get(&(me, peer)).map_or(rtt, |d| (*d).min(rtt));
        self.set_rtt(me, peer, best);
    }

    /// Seed 001 3.5: advertises this proxy's RTTs to every live proxy.
    pub fn advertise_rtts(&mut self, now: Instant) {
        let me = self.cfg.me;
        let mut entries: Vec<crate::wire::RttEntry> = self
            .rtt
            .iter()
            .filter(|((a, b), _)| *a == me && self.ring.contains(b))
            .map(|((_, b), d)| crate::wire::RttEntry {
                peer: *b,
                rtt_us: u32::try_from(d.as_micros()).unwrap_or(u32::MAX),
            })
            .collect();
        entries.sort_by_key(|e| e.peer);
        let peers: Vec<Ipv6Addr> = self.ring_members().filter(|p| *p != me).collect();
        for chunk in entries.chunks(crate::wire::MAX_RTT_ENTRIES) {
            let msg = MessageRepr::RttReport {
                entries: chunk.to_vec(),
            };
            for p in &peers {
                self.peer_msg(now, *p, &msg);
            }
        }
    }

    fn ring_members(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.ring.members()
    }

    fn rtt_between(&self, a: &Ipv6Addr, b: &Ipv6Addr) -> Option<Duration> {
        if a == b {
            Some(Duration::ZERO)
        } else {
            self.rtt.get(&(*a, *b)).copied()
        }
    }

    fn is_live(&self, p: &Ipv6Addr) -> bool {
        *p == self.cfg.me || self.ring.contains(p)
    }

    fn emit_control(&mut self, src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), msg: &MessageRepr) {
        match msg.to_bytes() {
            Ok(bytes) => self.actions.push_back(Action::Control { src, dst, bytes }),
            Err(_) => self.stats.control_drop("emit"),
        }
    }

    /// A message to a peer proxy, sealed under the inter-proxy key.
    fn peer_msg(&mut self, now: Instant, to: Ipv6Addr, msg: &MessageRepr) {
        let sealed = msg
            .to_bytes()
            .ok()
            .and_then(|b| self.peer_auth.seal(now, &b).ok());
        match sealed {
            Some(bytes) => self.actions.push_back(Action::Control {
                src: (self.cfg.me, PEER_PORT),
                dst: (to, PEER_PORT),
                bytes,
            }),
            None => self.stats.control_drop("emit"),
        }
    }

    fn transmit(&mut self, packet: Vec<u8>, segment: Segment) {
        let name = match segment {
            Segment::ToRap => "iap_to_rap",
            Segment::ToJap => "to_jap",
            Segment::ToTarget => "jap_to_target",
            Segment::ToClient => "jap_to_client",
        };
        *self.stats.segments.entry(name).or_insert(0) += 1;
        self.actions.push_back(Action::Transmit { packet, segment });
    }

    fn tunnel(&mut self, packet: &[u8], to: Ipv6Addr, segment: Segment) {
        match nat::encapsulate(packet, self.cfg.me, to) {
            Ok(t) => self.transmit(t, segment),
            Err(_) => self.stats.drop("encapsulate"),
        }
    }

    // ----- membership of proxies -----

    /// A proxy became live (from the SWIM membership).
    pub fn proxy_up(&mut self, now: Instant, p: Ipv6Addr) {
        if self.ring.contains(&p) {
            return;
        }
        self.ring.insert(p);
        if p != self.cfg.me {
            let local = self.cfg.me;
            self.actions
                .push_back(Action::Table(TableUpdate::AddProxyPeer { peer: p, local }));
        }
        self.resend_all_reports(now);
        self.announce_groups_to(now, p);
    }

    /// A proxy died: RAP and IAP state forget it, reports go to the new RAPs.
    pub fn proxy_down(&mut self, now: Instant, p: Ipv6Addr) {
        if p == self.cfg.me || !self.ring.contains(&p) {
            return;
        }
        self.ring.remove(&p);
        self.actions
            .push_back(Action::Table(TableUpdate::RemoveProxyPeer { peer: p }));
        self.rtt.retain(|(a, b), _| *a != p && *b != p);
        self.iap.proxy_down(&p);
        self.rap.proxy_down(&p);
        self.pending.retain(|(_, rap), _| *rap != p);
        self.resend_all_reports(now);
    }

    fn resend_all_reports(&mut self, now: Instant) {
        let groups: Vec<GroupAddr> = self
            .jap
            .groups
            .iter()
            .filter(|(_, g)| g.reported.is_some_and(|c| c > 0))
            .map(|(k, _)| *k)
            .collect();
        for g in groups {
            let raps = self.raps(&g);
            let Some(jg) = self.jap.groups.get(&g) else {
                continue;
            };
            let (count, seq) = (jg.reported.unwrap_or(0), jg.seq);
            for rap in raps {
                if !self.pending.contains_key(&(g, rap)) {
                    self.send_report(now, g, rap, count, seq);
                }
            }
        }
    }

    // ----- JAP reports to RAPs -----

    fn report(&mut self, now: Instant, group: GroupAddr) {
        let Some(jg) = self.jap.groups.get_mut(&group) else {
            return;
        };
        let Some(count) = jg.report_due() else { return };
        jg.reported = Some(count);
        jg.seq = jg.seq.wrapping_add(1);
        let seq = jg.seq;
        for rap in self.raps(&group) {
            self.send_report(now, group, rap, count, seq);
        }
    }

    fn send_report(&mut self, now: Instant, group: GroupAddr, rap: Ipv6Addr, count: u32, seq: u32) {
        let policy = self
            .jap
            .groups
            .get(&group)
            .map_or(Policy::Proximity, |g| g.config.policy);
        self.stats.reports_sent += 1;
        let me = self.cfg.me;
        if rap == me {
            let out = self.rap.update(now, group, me, count, seq, policy);
            self.apply_ack(group, seq, out.bound_pct);
            return;
        }
        let tries = self
            .pending
            .get(&(group, rap))
            .filter(|p| p.seq == seq)
            .map_or(0, |p| p.tries);
        self.pending.insert(
            (group, rap),
            Pending {
                seq,
                count,
                due: now + self.cfg.report_retry,
                tries: tries + 1,
            },
        );
        self.peer_msg(
            now,
            rap,
            &MessageRepr::JapUpdate {
                group,
                jap: me,
                count,
                seq,
                policy,
            },
        );
    }

    fn apply_ack(&mut self, group: GroupAddr, seq: u32, bound_pct: u8) {
        if let Some(jg) = self.jap.groups.get_mut(&group)
            && jg.seq == seq
        {
            jg.bound_pct = jg.config.error_bound_pct.max(bound_pct);
        }
    }

    // ----- data packets -----

    /// A packet the engine punted (`Punt::Proxy`): a join or other
    /// control message to a group's [`crate::wire::CONTROL_PORT`], a
    /// packet no engine entry covered, or (`tunnel_from`) the inner packet
    /// of a proxy peer's tunnel.
    pub fn on_punt(&mut self, now: Instant, packet: Vec<u8>, tunnel_from: Option<Ipv6Addr>) {
        if let Some(from) = tunnel_from {
            return self.on_tunnel_payload(now, from, packet);
        }
        if let Ok(f) = nat::flow_of(&packet)
            && f.proto == crate::group::PROTO_UDP
            && f.dport == crate::wire::CONTROL_PORT
        {
            match nat::udp_payload(&packet) {
                Some(payload) => {
                    let payload = payload.to_vec();
                    self.on_control(now, (f.src, f.sport), (f.dst, f.dport), &payload);
                }
                None => self.stats.control_drop("bad_udp"),
            }
            return;
        }
        self.on_packet(now, packet);
    }

    /// A packet the kernel handed us: to an anycast address (we are the
    /// IAP), tunnelled to our unicast address from a peer, or a target's
    /// reply to one of our NAT ports.
    pub fn on_packet(&mut self, now: Instant, packet: Vec<u8>) {
        let Some(ip) = mip6_anycast::wire::Ipv6Packet::new_checked(&packet[..]).ok() else {
            return self.stats.drop("malformed");
        };
        let (dst, nh) = (ip.dst_addr(), ip.next_header());
        if nh == mip6_anycast::wire::ip_proto::IPV6 && dst == self.cfg.me {
            let Ok((from, inner)) = nat::decapsulate(&packet) else {
                return self.stats.drop("decapsulate");
            };
            return self.on_tunnel_payload(now, from, inner);
        }
        let flow = match nat::flow_of(&packet) {
            Ok(f) => f,
            Err(_) => return self.stats.drop("not_tcp_udp"),
        };
        if same_prefix(
            &flow.dst,
            &self.cfg.anycast_prefix.0,
            self.cfg.anycast_prefix.1,
        ) {
            self.on_client(now, packet, flow);
        } else if flow.dst == self.cfg.nat_addr {
            self.on_target_reply(now, packet, flow);
        } else {
            self.stats.drop("not_for_us");
        }
    }

    fn group_of(flow: &Flow) -> Option<GroupAddr> {
        GroupAddr::new(flow.dst, flow.dport, flow.proto)
    }

    fn on_client(&mut self, now: Instant, packet: Vec<u8>, flow: Flow) {
        let Some(group) = Self::group_of(&flow) else {
            return self.stats.drop("bad_group");
        };
        let key: FlowKey = (group, flow.src, flow.sport);
        if let Some(j) = self.iap.pinned(now, &key)
            && self.is_live(&j)
        {
            return self.send_to_jap(now, j, packet);
        }
        if self.iap.querying(&key) {
            self.iap.open_query(now, key, Vec::new(), packet);
            return;
        }
        let peers: Vec<Ipv6Addr> = self
            .cfg
            .cluster
            .iter()
            .filter(|p| **p != self.cfg.me && self.ring.contains(p))
            .copied()
            .collect();
        if flow.is_mid_flow() && !peers.is_empty() {
            // Seed 003 3: a mid-connection packet this IAP has never seen:
            // another IAP of the cluster may have pinned the flow.
            if let Some(id) = self.iap.open_query(now, key, peers.clone(), packet) {
                for p in peers {
                    let q = MessageRepr::FlowQuery {
                        group,
                        client: flow.src,
                        client_port: flow.sport,
                        id,
                    };
                    self.peer_msg(now, p, &q);
                }
            }
            return;
        }
        self.select_and_send(now, key, packet);
    }

    fn select_and_send(&mut self, now: Instant, key: FlowKey, packet: Vec<u8>) {
        let group = key.0;
        let cached = self
            .iap
            .cached(&group)
            .and_then(|l| l.iter().map(|e| e.jap).find(|j| self.is_live(j)));
        if let Some(j) = cached {
            if !self.iap.pin(now, key, j) {
                self.stats.drop("iap_flow_table_full_unpinned");
            }
            return self.send_to_jap(now, j, packet);
        }
        let raps = self.raps(&group);
        let me = self.cfg.me;
        let rap = raps.iter().copied().min_by_key(|r| {
            let d = self.rtt_between(&me, r);
            (d.is_none(), d.unwrap_or(Duration::MAX))
        });
        match rap {
            None => self.stats.drop("no_rap"),
            Some(r) => {
                self.iap.asked_rap(key);
                if r == me {
                    self.as_rap(now, me, packet, group);
                } else {
                    self.tunnel(&packet, r, Segment::ToRap);
                }
            }
        }
    }

    fn send_to_jap(&mut self, now: Instant, jap: Ipv6Addr, packet: Vec<u8>) {
        if jap == self.cfg.me {
            self.as_jap(now, None, packet);
        } else {
            self.tunnel(&packet, jap, Segment::ToJap);
        }
    }

    /// The inner packet of an RFC 2473 tunnel from `from` (as a raw socket
    /// for protocol 41 hands it over: outer header already removed).
    pub fn on_tunnel_payload(&mut self, now: Instant, from: Ipv6Addr, inner: Vec<u8>) {
        if from == self.cfg.me || !self.ring.contains(&from) {
            // Only live proxies may tunnel to us (forged or stale tunnels).
            return self.stats.drop("tunnel_from_unknown_proxy");
        }
        self.on_tunnelled(now, from, inner);
    }

    fn on_tunnelled(&mut self, now: Instant, from: Ipv6Addr, inner: Vec<u8>) {
        let Ok(flow) = nat::flow_of(&inner) else {
            return self.stats.drop("tunnelled_not_tcp_udp");
        };
        let Some(group) = Self::group_of(&flow) else {
            return self.stats.drop("bad_group");
        };
        if self.jap.live(&group) > 0 {
            return self.as_jap(now, Some(from), inner);
        }
        if self.raps(&group).contains(&self.cfg.me)
            && self.rap.japs(&group).is_some_and(|(_, l)| !l.is_empty())
        {
            return self.as_rap(now, from, inner, group);
        }
        self.stats.drop("no_live_target_here");
        let me = self.cfg.me;
        self.peer_msg(now, from, &MessageRepr::TargetsGone { group, jap: me });
    }

    fn jap_list_for(&mut self, iap: Ipv6Addr, group: &GroupAddr) -> Vec<crate::wire::JapEntry> {
        let Some((policy, mut entries)) = self.rap.japs(group) else {
            return Vec::new();
        };
        entries.retain(|e| self.is_live(&e.jap));
        let rtt = self.rtt.clone();
        order_japs(
            policy,
            &iap,
            &mut entries,
            |a, b| rtt.get(&(*a, *b)).copied(),
            &mut self.rng,
        );
        entries.truncate(MAX_JAP_LIST);
        entries
    }

    fn as_rap(&mut self, now: Instant, iap: Ipv6Addr, packet: Vec<u8>, group: GroupAddr) {
        let entries = self.jap_list_for(iap, &group);
        let first = entries.first().map(|e| e.jap);
        if iap == self.cfg.me {
            let n = entries.len();
            self.iap.store(now, group, entries);
            self.actions
                .push_back(Action::Event(Event::JapListCached(group, n)));
        } else {
            self.peer_msg(now, iap, &MessageRepr::JapList { group, entries });
        }
        match first {
            None => self.stats.drop("rap_has_no_jap"),
            Some(j) if j == self.cfg.me => self.as_jap(now, Some(iap), packet),
            Some(j) => self.tunnel(&packet, j, Segment::ToJap),
        }
    }

    fn as_jap(&mut self, now: Instant, from: Option<Ipv6Addr>, mut packet: Vec<u8>) {
        let Ok(flow) = nat::flow_of(&packet) else {
            return self.stats.drop("not_tcp_udp");
        };
        let Some(group) = Self::group_of(&flow) else {
            return self.stats.drop("bad_group");
        };
        let Some(d) = self
            .jap
            .deliver(now, &group, flow.src, flow.sport, &mut self.rng)
        else {
            self.stats.drop("no_live_target");
            if let Some(f) = from.filter(|f| *f != self.cfg.me) {
                let me = self.cfg.me;
                self.peer_msg(now, f, &MessageRepr::TargetsGone { group, jap: me });
            }
            return;
        };
        if d.tunnel {
            return self.tunnel(&packet, d.entry.target, Segment::ToTarget);
        }
        let src = (self.cfg.nat_addr, d.entry.nat_port);
        match nat::rewrite(&mut packet, src, (d.entry.target, d.entry.target_port)) {
            Ok(()) => self.transmit(packet, Segment::ToTarget),
            Err(_) => self.stats.drop("nat_rewrite"),
        }
    }

    fn on_target_reply(&mut self, now: Instant, mut packet: Vec<u8>, flow: Flow) {
        let Some(e) = self.jap.reply(now, flow.src, flow.sport, flow.dport) else {
            return self.stats.drop("no_nat_binding");
        };
        match nat::rewrite(
            &mut packet,
            (e.group.addr, e.group.port),
            (e.client, e.client_port),
        ) {
            Ok(()) => self.transmit(packet, Segment::ToClient),
            Err(_) => self.stats.drop("nat_rewrite"),
        }
    }

    /// An Echo Reply (or other sign of life) from a target.
    pub fn target_heard(&mut self, now: Instant, target: Ipv6Addr) {
        self.jap.heard(now, target);
        let groups: Vec<GroupAddr> = self.jap.groups.keys().copied().collect();
        for g in groups {
            self.report(now, g);
        }
    }

    /// Moves the NAT bindings of a leaving target to another target of the
    /// same group here (after `tcp-handoff` moved its connections).
    pub fn handoff(
        &mut self,
        group: &GroupAddr,
        from: (Ipv6Addr, u16),
        to: (Ipv6Addr, u16),
    ) -> usize {
        self.jap.handoff(group, from, to)
    }

    // ----- time -----

    /// When [`Proxy::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.jap.next_deadline(),
            self.iap.next_deadline(),
            self.pending.values().map(|p| p.due).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs health checks, expires affinity queries, resends reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut changed = Vec::new();
        for ev in self.jap.tick(now) {
            match ev {
                HealthEvent::Ping(t) => self.actions.push_back(Action::PingTarget(t)),
                HealthEvent::Dead(g, t) => {
                    self.actions
                        .push_back(Action::Event(Event::TargetDead(g, t)));
                    if !changed.contains(&g) {
                        changed.push(g);
                    }
                }
            }
        }
        for g in changed {
            self.report(now, g);
        }
        for (key, q) in self.iap.expire(now) {
            for p in q.held {
                self.select_and_send(now, key, p);
            }
        }
        let due: Vec<((GroupAddr, Ipv6Addr), Pending)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, p)| (*k, *p))
            .collect();
        for ((g, rap), p) in due {
            if p.tries >= 5 {
                self.pending.remove(&(g, rap));
                continue;
            }
            self.send_report(now, g, rap, p.count, p.seq);
        }
    }
}
