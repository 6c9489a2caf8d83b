//! A simulated anycast group for the handoff coordinator tests: each
//! member is a [`HandoffNode`] on [`proto::sim`](mip6_anycast::proto::sim)
//! (a `MobileNode` for X, a `Coordinator`, and a model of its shell: the
//! node channel, the datapath's per-client modes and the client's sockets).
//!
//! * Channel frames travel as IPv6 packets with next header 253
//!   (experimental) between the members' care-of addresses, so the sim's
//!   rules give them their own delay (Lss); everything else is Lcs.
//! * The shell executes actions at once: Freeze dumps and sends the state
//!   (a `Transfer` frame) and reports Frozen; Restore/Activate/Thaw/Close
//!   report success unless the test makes them fail.
//! * [`Group::reset_target`] follows a client's packets from where the
//!   network delivers them (its binding, or the home path to the contact
//!   node) through the members' datapath entries, and reports a kernel
//!   that has no socket for them (which would answer with a RST).

#![allow(dead_code)]

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::crypto::{DeterministicRandom, NtpTimestamp};
use mip6_anycast::proto::handoff::{
    Action, Coordinator, CoordinatorConfig, EngineChange, HandoffEvent, HandoffKey, MemberId,
    MemberInfo, MsgDrop, Roles, ShellEvent,
};
use mip6_anycast::proto::sim::{CorrespondentNode, NodeId, RuleAction, Sim, SimNode};
use mip6_anycast::proto::{
    Arrival, Correspondent, CorrespondentConfig, HomeTestMode, MobileConfig, MobileEvent,
    MobileNode, Route, Transmit,
};

/// The anycast home address X.
pub const HOA: &str = "2001:db8:1::100";
/// Next header of channel frames.
pub const CHANNEL: u8 = 253;
/// `mh_type` logged for channel frames.
pub const CHANNEL_TYPE: u8 = 0xfd;

pub fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn name(s: &str) -> MemberId {
    MemberId::new(s).unwrap()
}

/// The `i`-th client address.
pub fn client(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x3, 0, 0, 0, 0, 0x10 + i)
}

/// What the shell did with a client's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    /// Serving.
    Live,
    /// Frozen (donor, repair mode).
    Frozen,
    /// Restored, paused (acceptor, repair mode).
    Paused,
}

/// A datapath entry as the engine would hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hold,
    Forward(Ipv6Addr),
    Deliver,
}

/// The shell's one-shot failures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub freeze: bool,
    pub restore: bool,
    pub activate: bool,
}

/// One member: mobile node, coordinator and modelled shell.
pub struct HandoffNode {
    pub name: MemberId,
    pub coa: Ipv6Addr,
    pub mn: MobileNode,
    pub co: Coordinator,
    pub by_coa: HashMap<Ipv6Addr, MemberId>,
    pub coa_of: HashMap<MemberId, Ipv6Addr>,
    pub crashed: bool,
    pub faults: Faults,
    pub sockets: BTreeMap<Ipv6Addr, Sockets>,
    pub modes: BTreeMap<Ipv6Addr, Mode>,
    pub group_members: Vec<Ipv6Addr>,
    /// Transfers received, waiting for Restore.
    pub transfers: HashMap<HandoffKey, u32>,
    pub events: Vec<(Instant, HandoffEvent)>,
    pub mobile_events: Vec<(Instant, MobileEvent)>,
    /// Channel messages sent: (time, to, kind).
    pub sent: Vec<(Instant, MemberId, &'static str)>,
    pub drops: Vec<MsgDrop>,
    out: Vec<Transmit>,
}

impl HandoffNode {
    fn channel(&mut self, to: &MemberId, payload: Vec<u8>) {
        let Some(dst) = self.coa_of.get(to).copied() else {
            return;
        };
        let mut bytes = vec![0x60, 0, 0, 0];
        bytes.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(&[CHANNEL, 64]);
        bytes.extend_from_slice(&self.coa.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&payload);
        self.out.push(Transmit {
            src: self.coa,
            dst,
            mh_type: CHANNEL_TYPE,
            route: Route::Direct,
            bytes,
        });
    }

    fn on_channel(&mut self, now: Instant, packet: &[u8]) {
        let src: [u8; 16] = packet[8..24].try_into().unwrap();
        let Some(from) = self.by_coa.get(&Ipv6Addr::from(src)).cloned() else {
            return;
        };
        let payload = &packet[40..];
        match payload.first() {
            Some(0) => {
                if let Err(e) = self
                    .co
                    .handle_frame(now, &mut self.mn, &from, &payload[1..])
                {
                    self.drops.push(e);
                }
            }
            Some(1) => {
                let id = u64::from_be_bytes(payload[1..9].try_into().unwrap());
                let c: [u8; 16] = payload[9..25].try_into().unwrap();
                let n = u32::from_be_bytes(payload[25..29].try_into().unwrap());
                let key = HandoffKey { donor: from, id };
                self.transfers.insert(key.clone(), n);
                let ev = ShellEvent::Transfer {
                    key,
                    client: Ipv6Addr::from(c),
                    connections: n,
                };
                self.co.handle_shell(now, &mut self.mn, ev);
            }
            _ => {}
        }
    }

    fn apply(&mut self, c: EngineChange) {
        match c {
            EngineChange::AddGroupMember { coa } => self.group_members.push(coa),
            EngineChange::Hold { client, .. } => {
                self.modes.insert(client, Mode::Hold);
            }
            EngineChange::Forward { client, member, .. } => {
                self.modes.insert(client, Mode::Forward(member));
            }
            EngineChange::Release { client, .. } => {
                self.modes.insert(client, Mode::Deliver);
            }
            EngineChange::Remove { client, .. } => {
                self.modes.remove(&client);
            }
            EngineChange::AddHomeAddressBinding { .. }
            | EngineChange::RemoveHomeAddressBinding { .. } => {}
        }
    }

    fn execute(&mut self, now: Instant, a: Action) {
        let ev = match a {
            Action::Send { to, msg } => {
                self.sent.push((now, to.clone(), msg.kind()));
                let mut payload = vec![0u8];
                payload.extend_from_slice(&msg.to_bytes().unwrap());
                self.channel(&to, payload);
                return;
            }
            Action::Engine(c) => return self.apply(c),
            Action::Event(e) => return self.events.push((now, e)),
            Action::Freeze { key, client, to } => {
                if std::mem::take(&mut self.faults.freeze) {
                    ShellEvent::FreezeFailed { key }
                } else {
                    self.sockets.insert(client, Sockets::Frozen);
                    let mut payload = vec![1u8];
                    payload.extend_from_slice(&key.id.to_be_bytes());
                    payload.extend_from_slice(&client.octets());
                    payload.extend_from_slice(&1u32.to_be_bytes());
                    self.sent.push((now, to.clone(), "transfer"));
                    self.channel(&to, payload);
                    ShellEvent::Frozen {
                        key,
                        connections: 1,
                    }
                }
            }
            Action::Thaw { key, client } => {
                self.sockets.insert(client, Sockets::Live);
                ShellEvent::Thawed { key }
            }
            Action::CloseFrozen { key, client, .. } => {
                assert_eq!(self.sockets.remove(&client), Some(Sockets::Frozen));
                ShellEvent::Closed { key }
            }
            Action::Restore { key, client } => {
                assert!(
                    self.transfers.remove(&key).is_some(),
                    "restore without transfer"
                );
                if std::mem::take(&mut self.faults.restore) {
                    ShellEvent::RestoreFailed { key }
                } else {
                    self.sockets.insert(client, Sockets::Paused);
                    ShellEvent::Restored { key }
                }
            }
            Action::Activate { key, client } => {
                if std::mem::take(&mut self.faults.activate) {
                    ShellEvent::ActivateFailed { key }
                } else {
                    assert_eq!(
                        self.sockets.insert(client, Sockets::Live),
                        Some(Sockets::Paused)
                    );
                    ShellEvent::Activated { key }
                }
            }
            Action::Discard { key, client } => {
                self.transfers.remove(&key);
                if self.sockets.get(&client) == Some(&Sockets::Paused) {
                    self.sockets.remove(&client);
                }
                return;
            }
        };
        self.co.handle_shell(now, &mut self.mn, ev);
    }

    /// Runs the machines until neither has anything left to do.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(a) = self.mn.poll_action() {
                busy = true;
                match a {
                    mip6_anycast::proto::Action::Transmit(t) => self.out.push(t),
                    mip6_anycast::proto::Action::Event(e) => {
                        self.mobile_events.push((now, e));
                        self.co.handle_mobile_event(now, &mut self.mn, &e);
                    }
                    mip6_anycast::proto::Action::Dropped(_) => {}
                }
            }
            while let Some(a) = self.co.poll_action() {
                busy = true;
                self.execute(now, a);
            }
            if !busy {
                return;
            }
        }
    }

    /// Events of one kind, for assertions.
    pub fn completed(&self) -> Vec<(Instant, Ipv6Addr, MemberId, u16)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                HandoffEvent::Completed {
                    client,
                    to,
                    sequence,
                    ..
                } => Some((*t, *client, to.clone(), *sequence)),
                _ => None,
            })
            .collect()
    }

    pub fn accepted(&self) -> Vec<(Instant, Ipv6Addr)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                HandoffEvent::Accepted { client, .. } => Some((*t, *client)),
                _ => None,
            })
            .collect()
    }
}

impl SimNode for HandoffNode {
    fn addresses(&self) -> Vec<Ipv6Addr> {
        vec![self.coa]
    }
    fn handle_packet(&mut self, now: Instant, _: NtpTimestamp, packet: &[u8], arrival: Arrival) {
        if self.crashed {
            return;
        }
        if packet.get(6) == Some(&CHANNEL) {
            self.on_channel(now, packet);
        } else {
            self.mn.handle_packet(now, packet, arrival);
        }
    }
    fn handle_timeout(&mut self, now: Instant, _: NtpTimestamp) {
        if self.crashed {
            return;
        }
        if self.mn.poll_timeout().is_some_and(|t| t <= now) {
            self.mn.handle_timeout(now);
        }
        if self.co.poll_timeout().is_some_and(|t| t <= now) {
            self.co.handle_timeout(now, &mut self.mn);
        }
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        if self.crashed {
            return None;
        }
        [self.mn.poll_timeout(), self.co.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
    fn drain(&mut self, now: Instant) -> Vec<Transmit> {
        if self.crashed {
            self.out.clear();
            return Vec::new();
        }
        self.settle(now);
        std::mem::take(&mut self.out)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Latencies: client <-> members (`lcs`), member <-> member (`lss`),
/// extra for the home agent tunnel, each way (`lha`).
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub lcs: Duration,
    pub lss: Duration,
    pub lha: Duration,
}

/// Lcs 20 ms, Lss 5 ms, home agent next to the contact node.
pub const LAT: Latency = Latency {
    lcs: Duration::from_millis(20),
    lss: Duration::from_millis(5),
    lha: Duration::ZERO,
};

/// The group: client node and members by name (the first is the contact).
pub struct Group {
    pub sim: Sim,
    pub cn: NodeId,
    pub members: BTreeMap<MemberId, NodeId>,
    pub contact: MemberId,
    pub lat: Latency,
}

/// Member `i`'s care-of address.
pub fn member_coa(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        0x2 + u16::try_from(i).unwrap(),
        0,
        0,
        0,
        0,
        0x100,
    )
}

impl Group {
    /// Members `names` (the first is the contact node, all acceptors),
    /// `clients` client addresses on one correspondent node, the home
    /// route X -> contact.
    pub fn new(names: &[&str], clients: u16, lat: Latency, seed: u64) -> Self {
        Self::with_config(names, clients, lat, seed, |_| {})
    }

    pub fn with_config(
        names: &[&str],
        clients: u16,
        lat: Latency,
        seed: u64,
        tweak: impl Fn(&mut CoordinatorConfig),
    ) -> Self {
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, Duration::from_secs(1_700_000_000), seed);
        sim.profile.delay = Duration::ZERO;
        sim.profile.tunnel_delay = lat.lha;
        let (lss, lcs) = (lat.lss, lat.lcs);
        sim.add_rule(RuleAction::Delay(lss), None, |p| p.mh_type == CHANNEL_TYPE);
        sim.add_rule(RuleAction::Delay(lcs), None, |p| p.mh_type != CHANNEL_TYPE);
        let cn = Correspondent::new(
            CorrespondentConfig::default(),
            Box::new(DeterministicRandom::new(seed ^ 0xc0)),
            t0,
        )
        .unwrap();
        let cn = sim.add_node(Box::new(CorrespondentNode::new(
            cn,
            (0..clients).map(client).collect(),
        )));
        let contact = name(names[0]);
        let infos: Vec<MemberInfo> = names
            .iter()
            .enumerate()
            .map(|(i, n)| MemberInfo {
                name: name(n),
                coa: member_coa(i),
                roles: Roles {
                    contact: i == 0,
                    backup: false,
                    acceptor: true,
                },
            })
            .collect();
        let mut members = BTreeMap::new();
        for (i, info) in infos.iter().enumerate() {
            let mode = if i == 0 {
                HomeTestMode::Local
            } else {
                HomeTestMode::External
            };
            let mn = MobileNode::new(
                MobileConfig {
                    home_test: mode,
                    ..MobileConfig::new(addr(HOA))
                },
                Box::new(DeterministicRandom::new(seed ^ ((i as u64 + 1) * 0x1111))),
            );
            let mut cfg = CoordinatorConfig::new(info.clone(), addr(HOA), contact.clone());
            tweak(&mut cfg);
            let mut rng = DeterministicRandom::new(seed ^ (i as u64 + 7));
            let mut co = Coordinator::new(cfg, &infos, &mut rng);
            for other in &infos {
                co.peer_up(&other.name);
            }
            let node = HandoffNode {
                name: info.name.clone(),
                coa: info.coa,
                mn,
                co,
                by_coa: infos.iter().map(|m| (m.coa, m.name.clone())).collect(),
                coa_of: infos.iter().map(|m| (m.name.clone(), m.coa)).collect(),
                crashed: false,
                faults: Faults::default(),
                sockets: BTreeMap::new(),
                modes: BTreeMap::new(),
                group_members: Vec::new(),
                transfers: HashMap::new(),
                events: Vec::new(),
                mobile_events: Vec::new(),
                sent: Vec::new(),
                drops: Vec::new(),
                out: Vec::new(),
            };
            members.insert(info.name.clone(), sim.add_node(Box::new(node)));
        }
        sim.set_home_route(addr(HOA), Some(member_coa(0)));
        Self {
            sim,
            cn,
            members,
            contact,
            lat,
        }
    }

    pub fn id(&self, m: &str) -> NodeId {
        self.members[&name(m)]
    }

    pub fn node(&self, m: &str) -> &HandoffNode {
        self.sim.node::<HandoffNode>(self.id(m))
    }

    /// Runs `f` on member `m` with the current time (commands).
    pub fn at<R>(&mut self, m: &str, f: impl FnOnce(&mut HandoffNode, Instant) -> R) -> R {
        let id = self.id(m);
        self.sim.with::<HandoffNode, _>(id, |n, now, _| f(n, now))
    }

    /// The contact node serves client `i` (connections accepted on X).
    pub fn serve(&mut self, m: &str, c: Ipv6Addr) {
        self.at(m, |n, _| {
            n.co.client_seen(c, 1);
            n.sockets.insert(c, Sockets::Live);
        });
    }

    /// Operator command at `from`: hand `c` to `to`.
    pub fn handoff(&mut self, from: &str, c: Ipv6Addr, to: &str) -> HandoffKey {
        let to = name(to);
        self.at(from, |n, now| n.co.handoff(now, &mut n.mn, c, &to))
            .unwrap()
    }

    pub fn correspondent(&self) -> &CorrespondentNode {
        self.sim.node::<CorrespondentNode>(self.cn)
    }

    /// The care-of address the client has bound X to.
    pub fn binding(&self, c: Ipv6Addr) -> Option<Ipv6Addr> {
        self.correspondent().cn.cache().coa(c, addr(HOA))
    }

    /// The member whose care-of address is `coa`.
    pub fn member_at(&self, coa: Ipv6Addr) -> &HandoffNode {
        let m = self
            .members
            .values()
            .map(|id| self.sim.node::<HandoffNode>(*id))
            .find(|n| n.coa == coa);
        m.unwrap_or_else(|| panic!("no member at {coa}"))
    }

    /// Where a packet of client `c` to X would end: `Ok(member)` if held
    /// or delivered to a kernel with a socket for it, `Err(member)` if
    /// delivered to a kernel without one (a RST).
    pub fn reset_target(&self, c: Ipv6Addr) -> Result<MemberId, MemberId> {
        let mut coa = self.binding(c).unwrap_or(member_coa(0));
        for _ in 0..4 {
            let n = self.member_at(coa);
            if n.crashed {
                return Ok(n.name.clone()); // lost, retransmitted by TCP
            }
            match n.modes.get(&c) {
                Some(Mode::Hold) => return Ok(n.name.clone()),
                Some(Mode::Forward(next)) => coa = *next,
                Some(Mode::Deliver) | None => {
                    return if n.sockets.contains_key(&c) {
                        Ok(n.name.clone())
                    } else {
                        Err(n.name.clone())
                    };
                }
            }
        }
        panic!("forwarding loop for {c}");
    }

    /// Runs `d` in 1 ms steps, checking after each that no packet of the
    /// `clients` would reach a kernel without its socket.
    pub fn run_checked(&mut self, d: Duration, clients: &[Ipv6Addr]) {
        let end = self.sim.now() + d;
        while self.sim.now() < end {
            self.sim.run_for(ms(1));
            for c in clients {
                if let Err(m) = self.reset_target(*c) {
                    panic!(
                        "client {c} would get a RST from {m} at {:?}",
                        self.sim.now() - self.sim.t0()
                    );
                }
            }
        }
    }

    /// Channel messages sent by everyone since `since` (kind).
    pub fn channel_msgs(&self, since: Instant) -> Vec<&'static str> {
        let mut v: Vec<(Instant, &'static str)> = self
            .members
            .values()
            .flat_map(|id| self.sim.node::<HandoffNode>(*id).sent.iter())
            .filter(|(t, _, _)| *t >= since)
            .map(|(t, _, k)| (*t, *k))
            .collect();
        v.sort();
        v.into_iter().map(|(_, k)| k).collect()
    }

    /// Mobility Header messages (type) sent since `since`.
    pub fn mh_msgs(&self, since: Instant) -> Vec<u8> {
        self.sim
            .log
            .iter()
            .filter(|e| e.sent >= since && e.transmit.mh_type != CHANNEL_TYPE)
            .map(|e| e.transmit.mh_type)
            .collect()
    }
}
