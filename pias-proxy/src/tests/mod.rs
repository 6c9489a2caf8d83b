//! Whole-machine tests: several proxies, targets and clients wired together
//! in memory on a simulated clock (no sockets, no sleeps).

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::auth;
use crate::group::{GroupAddr, GroupConfig, PROTO_TCP, Policy};
use crate::nat::{self, tests::packet};
use crate::peer_auth::{PeerAuth, PeerAuthConfig, PeerKey, Purpose, WallClock};
use crate::proxy::{Action, Proxy, ProxyConfig, Segment};
use crate::wire::{AckStatus, CONTROL_PORT, JoinOptions, Membership, MessageRepr, PEER_PORT};

mod cluster;

const KEY: &[u8] = b"group-1 credential";
/// The lab cluster's inter-proxy key.
pub(crate) const PEER_KEY: [u8; 32] = [0x42; 32];
const WALL_MS: u64 = 1_700_000_000_000;

pub(crate) fn peer_auth(t0: Instant, key: &[u8], session: u64) -> PeerAuthConfig {
    PeerAuthConfig::new(
        PeerKey::new(key).unwrap(),
        session,
        WallClock::from_unix_ms(t0, WALL_MS),
    )
}

/// Proxy `i`'s configuration with the cluster key.
pub(crate) fn proxy_config(t0: Instant, i: usize) -> ProxyConfig {
    ProxyConfig::new(
        proxy_addr(i),
        (addr("2001:db8:aa::"), 48),
        peer_auth(t0, &PEER_KEY, 1000 + i as u64),
    )
}

pub(crate) fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub(crate) fn proxy_addr(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(0x2001_0db8_00ff_0000_0000_0000_0000_0000u128 + i as u128 + 1)
}

pub(crate) fn group() -> GroupAddr {
    GroupAddr::new(addr("2001:db8:aa::1"), 80, PROTO_TCP).unwrap()
}

fn group_config(bound: u8, policy: Policy) -> GroupConfig {
    GroupConfig {
        group: group(),
        policy,
        scope_prefix_len: 48,
        raps: 3,
        error_bound_pct: bound,
        credential: KEY.to_vec(),
        allow: Vec::new(),
    }
}

/// Something a proxy emitted, as the simulated network saw it.
#[derive(Debug, Clone)]
struct Seen {
    from: usize,
    segment: Segment,
    packet: Vec<u8>,
}

struct Sim {
    t0: Instant,
    now: Instant,
    proxies: Vec<Proxy>,
    dead_proxies: HashSet<usize>,
    dead_targets: HashSet<Ipv6Addr>,
    seen: Vec<Seen>,
    acks: Vec<MessageRepr>,
    /// Sealed peer datagrams as the network carried them.
    peer_datagrams: Vec<(Ipv6Addr, Ipv6Addr, Vec<u8>)>,
    /// Sealers for messages a test injects, per claimed sender.
    injectors: HashMap<Ipv6Addr, PeerAuth>,
}

impl Sim {
    fn new(n: usize, bound: u8, policy: Policy) -> Self {
        Self::with(n, bound, policy, |_, _| {})
    }

    /// `new` with `tweak` applied to each proxy's configuration.
    fn with(n: usize, bound: u8, policy: Policy, tweak: impl Fn(usize, &mut ProxyConfig)) -> Self {
        let now = Instant::now();
        let mut proxies: Vec<Proxy> = (0..n)
            .map(|i| {
                let mut c = proxy_config(now, i);
                c.groups = vec![group_config(bound, policy)];
                c.cluster = (0..n).map(proxy_addr).collect();
                c.max_groups_per_target = 2;
                c.seed = i as u64 + 7;
                tweak(i, &mut c);
                Proxy::new(c)
            })
            .collect();
        for p in proxies.iter_mut() {
            for j in 0..n {
                p.proxy_up(now, proxy_addr(j));
            }
        }
        Sim {
            t0: now,
            now,
            proxies,
            dead_proxies: HashSet::new(),
            dead_targets: HashSet::new(),
            seen: Vec::new(),
            acks: Vec::new(),
            peer_datagrams: Vec::new(),
            injectors: HashMap::new(),
        }
    }

    /// `msg` sealed as if `from` sent it now, under the cluster key.
    fn sealed(&mut self, from: Ipv6Addr, msg: &MessageRepr) -> Vec<u8> {
        let (t0, now) = (self.t0, self.now);
        let session = 0xbad0_0000 ^ u64::from(from.segments()[7]);
        self.injectors
            .entry(from)
            .or_insert_with(|| {
                PeerAuth::new(&peer_auth(t0, &PEER_KEY, session), Purpose::Peer, from)
            })
            .seal(now, &msg.to_bytes().unwrap())
            .unwrap()
    }

    /// Delivers a peer message from `from` to proxy `to`, sealed.
    fn inject(&mut self, from: Ipv6Addr, to: usize, msg: &MessageRepr) {
        let b = self.sealed(from, msg);
        self.proxies[to].on_control(self.now, (from, PEER_PORT), (proxy_addr(to), PEER_PORT), &b);
    }

    fn ix(&self, a: Ipv6Addr) -> Option<usize> {
        (0..self.proxies.len()).find(|i| proxy_addr(*i) == a && !self.dead_proxies.contains(i))
    }

    /// Delivers everything queued until the network is quiet.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.proxies.len() {
                if self.dead_proxies.contains(&i) {
                    while self.proxies[i].poll_action().is_some() {}
                    continue;
                }
                while let Some(a) = self.proxies[i].poll_action() {
                    moved = true;
                    self.route(i, a);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn route(&mut self, from: usize, a: Action) {
        let now = self.now;
        match a {
            Action::Control { src, dst, bytes } => {
                if dst.1 == PEER_PORT {
                    assert!(
                        MessageRepr::from_bytes(&bytes).is_err(),
                        "peer messages leave sealed"
                    );
                    self.peer_datagrams.push((src.0, dst.0, bytes.clone()));
                    if let Some(j) = self.ix(dst.0) {
                        self.proxies[j].on_control(now, src, dst, &bytes);
                    }
                } else {
                    self.acks.push(MessageRepr::from_bytes(&bytes).unwrap());
                }
            }
            Action::Transmit { packet, segment } => {
                self.seen.push(Seen {
                    from,
                    segment,
                    packet: packet.clone(),
                });
                if matches!(segment, Segment::ToRap | Segment::ToJap) {
                    let dst = mip6_anycast::wire::Ipv6Packet::new_checked(&packet[..])
                        .unwrap()
                        .dst_addr();
                    if let Some(j) = self.ix(dst) {
                        self.proxies[j].on_packet(now, packet);
                    }
                }
            }
            Action::PingTarget(t) => {
                if !self.dead_targets.contains(&t) {
                    self.proxies[from].target_heard(now, t);
                }
            }
            // The engine's tables: `engine_tests.rs` runs packets through them.
            Action::Event(_) | Action::Table(_) => {}
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self
                .proxies
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.dead_proxies.contains(i))
                .filter_map(|(_, p)| p.poll_timeout())
                .filter(|t| *t <= end)
                .min();
            let Some(t) = next else { break };
            self.now = self.now.max(t);
            for i in 0..self.proxies.len() {
                if !self.dead_proxies.contains(&i)
                    && self.proxies[i]
                        .poll_timeout()
                        .is_some_and(|x| x <= self.now)
                {
                    self.proxies[i].handle_timeout(self.now);
                }
            }
            self.run();
        }
        self.now = end;
    }

    fn membership(&self, target: &str, nonce: u64, key: &[u8], leave: bool) -> Vec<u8> {
        let m = Membership {
            group: group(),
            target: addr(target),
            target_port: 8080,
            options: JoinOptions::default(),
            nonce,
            tag: [0; 16],
        };
        let msg = if leave {
            MessageRepr::Leave(m)
        } else {
            MessageRepr::Join(m)
        };
        auth::signed_bytes(&msg, key).unwrap()
    }

    /// A target joins through proxy `jap` (the one anycast routing reaches).
    fn join(&mut self, jap: usize, target: &str, nonce: u64) -> AckStatus {
        self.join_with(jap, target, nonce, KEY, false)
    }

    fn join_with(
        &mut self,
        jap: usize,
        target: &str,
        nonce: u64,
        key: &[u8],
        leave: bool,
    ) -> AckStatus {
        let bytes = self.membership(target, nonce, key, leave);
        self.acks.clear();
        self.proxies[jap].on_control(
            self.now,
            (addr(target), 5000),
            (group().addr, CONTROL_PORT),
            &bytes,
        );
        self.run();
        match self.acks.last() {
            Some(MessageRepr::JoinAck { status, .. }) => *status,
            other => panic!("no ack: {other:?}"),
        }
    }

    /// A client packet reaches proxy `iap`; returns what the network saw.
    fn send(&mut self, iap: usize, client: &str, sport: u16, syn: bool) -> Vec<Seen> {
        self.seen.clear();
        let p = packet(PROTO_TCP, (client, sport), ("2001:db8:aa::1", 80), syn);
        self.proxies[iap].on_packet(self.now, p);
        self.run();
        std::mem::take(&mut self.seen)
    }

    fn raps(&self) -> Vec<usize> {
        self.proxies[0]
            .raps(&group())
            .into_iter()
            .map(|a| self.ix(a).unwrap())
            .collect()
    }
}

fn delivered_to(seen: &[Seen]) -> Option<Ipv6Addr> {
    seen.iter()
        .find(|s| s.segment == Segment::ToTarget)
        .map(|s| nat::flow_of(&s.packet).unwrap().dst)
}

/// Seed 001 figure 2: 4 segments for the first packet, 3 for later ones,
/// and the reply leaves the JAP with the group's address as source.
#[test]
fn first_packet_via_rap_later_packets_direct() {
    let mut sim = Sim::new(6, 0, Policy::Proximity);
    let raps = sim.raps();
    assert_eq!(raps.len(), 3);
    let others: Vec<usize> = (0..6).filter(|i| !raps.contains(i)).collect();
    let (iap, jap) = (others[0], others[1]);
    assert_eq!(sim.join(jap, "2001:db8:1::10", 1), AckStatus::Ok);
    // Every RAP learned the JAP.
    for r in &raps {
        let (_, l) = sim.proxies[*r].rap.japs(&group()).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].jap, proxy_addr(jap));
    }

    let first = sim.send(iap, "2001:db8:c::1", 40000, true);
    let segs: Vec<Segment> = first.iter().map(|s| s.segment).collect();
    assert_eq!(
        segs,
        vec![Segment::ToRap, Segment::ToJap, Segment::ToTarget]
    );
    assert!(raps.contains(&first[1].from), "RAP forwards to the JAP");
    assert_eq!(first[2].from, jap);
    assert!(
        sim.proxies[iap].iap.cached(&group()).is_some(),
        "IAP cached the JAP list"
    );

    let later = sim.send(iap, "2001:db8:c::1", 40000, false);
    let segs: Vec<Segment> = later.iter().map(|s| s.segment).collect();
    assert_eq!(segs, vec![Segment::ToJap, Segment::ToTarget]);
    assert_eq!(later[0].from, iap);
    // A new connection of another client also skips the RAP.
    let other = sim.send(iap, "2001:db8:c::2", 40001, true);
    assert_eq!(other.len(), 2);

    // NAT: the target sees JAP:q -> AT:r; its reply goes back through the JAP.
    let f = nat::flow_of(&later[1].packet).unwrap();
    assert_eq!(
        (f.src, f.dst, f.dport),
        (proxy_addr(jap), addr("2001:db8:1::10"), 8080)
    );
    let reply = packet(
        PROTO_TCP,
        ("2001:db8:1::10", 8080),
        (&proxy_addr(jap).to_string(), f.sport),
        false,
    );
    sim.seen.clear();
    sim.proxies[jap].on_packet(sim.now, reply);
    sim.run();
    let out = std::mem::take(&mut sim.seen);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].segment, Segment::ToClient);
    let r = nat::flow_of(&out[0].packet).unwrap();
    assert_eq!(
        (r.src, r.sport, r.dst, r.dport),
        (group().addr, 80, addr("2001:db8:c::1"), 40000)
    );
    let ip = mip6_anycast::wire::Ipv6Packet::new_checked(&out[0].packet[..]).unwrap();
    assert!(mip6_anycast::wire::checksum::verify(
        &ip.src_addr(),
        &ip.dst_addr(),
        6,
        ip.payload()
    ));

    // A reply from a host that does not own the binding is dropped.
    let forged = packet(
        PROTO_TCP,
        ("2001:db8:1::66", 8080),
        (&proxy_addr(jap).to_string(), f.sport),
        false,
    );
    sim.proxies[jap].on_packet(sim.now, forged);
    sim.run();
    assert!(sim.seen.is_empty());
    assert_eq!(sim.proxies[jap].stats.drops.get("no_nat_binding"), Some(&1));
}

#[test]
fn join_admission_credential_allow_list_replay_and_limit() {
    let mut sim = Sim::new(4, 0, Policy::Load);
    assert_eq!(
        sim.join_with(0, "2001:db8:1::10", 1, b"wrong key", false),
        AckStatus::BadCredential
    );
    assert_eq!(sim.proxies[0].jap.live(&group()), 0);
    assert_eq!(sim.join(0, "2001:db8:1::10", 5), AckStatus::Ok);
    assert_eq!(sim.join(0, "2001:db8:1::10", 5), AckStatus::Replay);
    assert_eq!(sim.join(0, "2001:db8:1::10", 4), AckStatus::Replay);
    assert_eq!(sim.join(0, "2001:db8:1::10", 6), AckStatus::Ok, "a refresh");

    // A join whose source is not the target is dropped without an answer.
    let bytes = sim.membership("2001:db8:1::11", 1, KEY, false);
    let before = sim.acks.len();
    sim.proxies[0].on_control(
        sim.now,
        (addr("2001:db8:1::99"), 1),
        (group().addr, CONTROL_PORT),
        &bytes,
    );
    sim.run();
    assert_eq!(sim.acks.len(), before);

    // Every truncation and every single-bit flip of a join is refused.
    let good = sim.membership("2001:db8:1::12", 1, KEY, false);
    for n in 0..good.len() {
        sim.acks.clear();
        sim.proxies[0].on_control(
            sim.now,
            (addr("2001:db8:1::12"), 1),
            (group().addr, CONTROL_PORT),
            &good[..n],
        );
        sim.run();
        assert!(sim.acks.is_empty());
    }
    for bit in 0..good.len() * 8 {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        sim.acks.clear();
        sim.proxies[0].on_control(
            sim.now,
            (addr("2001:db8:1::12"), 1),
            (group().addr, CONTROL_PORT),
            &b,
        );
        sim.run();
        assert!(
            !matches!(
                sim.acks.last(),
                Some(MessageRepr::JoinAck {
                    status: AckStatus::Ok,
                    ..
                })
            ),
            "bit {bit} accepted"
        );
    }
    assert_eq!(sim.proxies[0].jap.live(&group()), 1);

    // Leave needs the credential too.
    assert_eq!(
        sim.join_with(0, "2001:db8:1::10", 7, b"nope", true),
        AckStatus::BadCredential
    );
    assert_eq!(
        sim.join_with(0, "2001:db8:1::10", 8, KEY, true),
        AckStatus::Ok
    );
    assert_eq!(sim.proxies[0].jap.live(&group()), 0);
}

#[test]
fn allow_list_and_per_target_group_limit() {
    let now = Instant::now();
    let mut c = proxy_config(now, 0);
    let mut g1 = group_config(0, Policy::Load);
    g1.allow = vec![addr("2001:db8:1::1")];
    let mut g2 = group_config(0, Policy::Load);
    g2.group.port = 81;
    g2.allow = Vec::new();
    let mut g3 = g2.clone();
    g3.group.port = 82;
    c.groups = vec![g1.clone(), g2.clone(), g3.clone()];
    c.max_groups_per_target = 1;
    let mut p = Proxy::new(c);
    let join = |p: &mut Proxy, g: &GroupConfig, target: &str, nonce| {
        let m = Membership {
            group: g.group,
            target: addr(target),
            target_port: 1,
            options: JoinOptions::default(),
            nonce,
            tag: [0; 16],
        };
        let b = auth::signed_bytes(&MessageRepr::Join(m), KEY).unwrap();
        p.on_control(now, (addr(target), 9), (g.group.addr, CONTROL_PORT), &b);
        let mut status = None;
        while let Some(a) = p.poll_action() {
            if let Action::Control { bytes, .. } = a
                && let Ok(MessageRepr::JoinAck { status: s, .. }) = MessageRepr::from_bytes(&bytes)
            {
                status = Some(s);
            }
        }
        status
    };
    assert_eq!(
        join(&mut p, &g1, "2001:db8:1::2", 1),
        Some(AckStatus::NotAllowed)
    );
    assert_eq!(join(&mut p, &g1, "2001:db8:1::1", 1), Some(AckStatus::Ok));
    assert_eq!(
        join(&mut p, &g2, "2001:db8:1::1", 1),
        Some(AckStatus::LimitReached)
    );
    assert_eq!(join(&mut p, &g2, "2001:db8:1::3", 1), Some(AckStatus::Ok));
    assert_eq!(
        join(&mut p, &g3, "2001:db8:1::3", 1),
        Some(AckStatus::LimitReached)
    );
}

/// Seed 001 3.3: the same churn trace costs fewer RAP updates as the error bound grows.
#[test]
fn rap_updates_fall_as_the_error_bound_grows() {
    let mut figures = Vec::new();
    for bound in [0u8, 25, 50] {
        let mut sim = Sim::new(5, bound, Policy::Load);
        let raps = sim.raps();
        let jap = (0..5).find(|i| !raps.contains(i)).unwrap();
        // Churn: grow to 40 targets, shrink to 10, grow to 30 (joins and leaves).
        let mut nonce = 1;
        let mut live: Vec<String> = Vec::new();
        let mut step = |sim: &mut Sim, live: &mut Vec<String>, join: bool| {
            nonce += 1;
            if join {
                let t = format!("2001:db8:1::{:x}", 0x100 + nonce);
                assert_eq!(sim.join(jap, &t, nonce), AckStatus::Ok);
                live.push(t);
            } else {
                let t = live.remove(0);
                assert_eq!(
                    sim.join_with(jap, &t, nonce + 1000, KEY, true),
                    AckStatus::Ok
                );
            }
        };
        for _ in 0..40 {
            step(&mut sim, &mut live, true);
        }
        for _ in 0..30 {
            step(&mut sim, &mut live, false);
        }
        for _ in 0..20 {
            step(&mut sim, &mut live, true);
        }
        let updates: u64 = raps.iter().map(|r| sim.proxies[*r].rap.updates).sum();
        // The RAPs' counts stay within the bound of the truth.
        let truth = sim.proxies[jap].jap.live(&group());
        for r in &raps {
            let (_, l) = sim.proxies[*r].rap.japs(&group()).unwrap();
            let c = l[0].count;
            let slack = u64::from(c) * u64::from(bound) / 100;
            assert!(
                u64::from(truth).abs_diff(u64::from(c)) <= slack,
                "bound {bound}: rap {c} truth {truth}"
            );
        }
        figures.push(updates);
    }
    assert!(
        figures[0] > figures[1] && figures[1] > figures[2],
        "{figures:?}"
    );
    // Exact at 0%: one report per change to each of 3 RAPs (90 changes).
    assert_eq!(figures[0], 90 * 3);
}

/// Seed 001 3.2, 3.6.1: targets gone -> the JAP tells the IAP, which fails
/// over to the next JAP of its cached list without asking the RAP.
#[test]
fn targets_gone_fails_over_to_the_next_jap() {
    let mut sim = Sim::new(6, 0, Policy::Proximity);
    let raps = sim.raps();
    let others: Vec<usize> = (0..6).filter(|i| !raps.contains(i)).collect();
    let (iap, j1, j2) = (others[0], others[1], others[2]);
    // j1 is nearer to the IAP than j2.
    for p in sim.proxies.iter_mut() {
        p.set_rtt(proxy_addr(iap), proxy_addr(j1), Duration::from_millis(2));
        p.set_rtt(proxy_addr(iap), proxy_addr(j2), Duration::from_millis(9));
    }
    assert_eq!(sim.join(j1, "2001:db8:1::1", 1), AckStatus::Ok);
    assert_eq!(sim.join(j2, "2001:db8:2::1", 1), AckStatus::Ok);
    let s = sim.send(iap, "2001:db8:c::1", 1000, true);
    assert_eq!(
        delivered_to(&s),
        Some(addr("2001:db8:1::1")),
        "proximity: nearest JAP"
    );
    assert_eq!(sim.proxies[iap].iap.cached(&group()).unwrap().len(), 2);

    // The target leaves j1; the next packet reaches j1, which answers TargetsGone.
    assert_eq!(
        sim.join_with(j1, "2001:db8:1::1", 2, KEY, true),
        AckStatus::Ok
    );
    let s = sim.send(iap, "2001:db8:c::1", 1000, false);
    assert_eq!(delivered_to(&s), None);
    assert_eq!(sim.proxies[iap].iap.cached(&group()).unwrap().len(), 1);
    // ... and the one after goes to j2 directly (3 segments, no RAP).
    let s = sim.send(iap, "2001:db8:c::1", 1000, false);
    assert_eq!(
        s.iter().map(|x| x.segment).collect::<Vec<_>>(),
        vec![Segment::ToJap, Segment::ToTarget]
    );
    assert_eq!(delivered_to(&s), Some(addr("2001:db8:2::1")));
}

/// Seed 001 3.6.2: a JAP dies; SWIM tells every proxy; the IAP drops it and
/// fails over; the RAPs forget it.
#[test]
fn jap_death_fails_over() {
    let mut sim = Sim::new(6, 0, Policy::Proximity);
    let raps = sim.raps();
    let others: Vec<usize> = (0..6).filter(|i| !raps.contains(i)).collect();
    let (iap, j1, j2) = (others[0], others[1], others[2]);
    for p in sim.proxies.iter_mut() {
        p.set_rtt(proxy_addr(iap), proxy_addr(j1), Duration::from_millis(2));
        p.set_rtt(proxy_addr(iap), proxy_addr(j2), Duration::from_millis(9));
    }
    sim.join(j1, "2001:db8:1::1", 1);
    sim.join(j2, "2001:db8:2::1", 1);
    let s = sim.send(iap, "2001:db8:c::1", 1000, true);
    assert_eq!(delivered_to(&s), Some(addr("2001:db8:1::1")));
    sim.dead_proxies.insert(j1);
    let now = sim.now;
    for (i, p) in sim.proxies.iter_mut().enumerate() {
        if i != j1 {
            p.proxy_down(now, proxy_addr(j1));
        }
    }
    sim.run();
    let s = sim.send(iap, "2001:db8:c::1", 1000, false);
    assert_eq!(delivered_to(&s), Some(addr("2001:db8:2::1")));
    for r in raps {
        let (_, l) = sim.proxies[r].rap.japs(&group()).unwrap();
        assert_eq!(
            l.iter().map(|e| e.jap).collect::<Vec<_>>(),
            vec![proxy_addr(j2)]
        );
    }
}

/// Seed 001 3.6.1: a target stops answering; passive monitoring (data sent,
/// nothing back) triggers pings; unanswered pings declare it dead and the
/// flow moves to another target of the same JAP.
#[test]
fn target_failure_detected_by_health_monitoring() {
    let mut sim = Sim::new(4, 0, Policy::Load);
    sim.join(1, "2001:db8:1::1", 1);
    sim.join(1, "2001:db8:1::2", 1);
    let s = sim.send(0, "2001:db8:c::1", 1000, true);
    let first = delivered_to(&s).unwrap();
    sim.dead_targets.insert(first);
    let t0 = sim.now;
    let mut dead_at = None;
    for _ in 0..100 {
        sim.advance(Duration::from_millis(10));
        if sim.proxies[1].jap.groups[&group()]
            .targets
            .iter()
            .any(|t| t.addr == first && !t.alive)
        {
            dead_at = Some(sim.now - t0);
            break;
        }
    }
    let dead_at = dead_at.expect("target declared dead");
    let h = crate::jap::HealthConfig::default();
    assert!(
        dead_at
            <= h.reply_wait + h.ping_timeout * u32::from(h.max_misses) + Duration::from_millis(20)
    );
    let s = sim.send(0, "2001:db8:c::1", 1000, false);
    let second = delivered_to(&s).unwrap();
    assert_ne!(second, first);
    // The live target kept answering and stays alive.
    sim.advance(Duration::from_secs(5));
    assert!(
        sim.proxies[1].jap.groups[&group()]
            .targets
            .iter()
            .any(|t| t.addr == second && t.alive)
    );
}

/// Affinity while the IAP changes (seed 003 3, open problem): the new IAP
/// asks the IAPs of its cluster about a mid-connection packet and keeps the
/// flow on its JAP (and so on its target), even though its own RAP answer
/// would pick another, nearer JAP.
#[test]
fn affinity_kept_when_the_ingress_proxy_changes() {
    let mut sim = Sim::new(7, 0, Policy::Proximity);
    let raps = sim.raps();
    let others: Vec<usize> = (0..7).filter(|i| !raps.contains(i)).collect();
    let (iap1, iap2, j1, j2) = (others[0], others[1], others[2], others[3]);
    for p in sim.proxies.iter_mut() {
        p.set_rtt(proxy_addr(iap1), proxy_addr(j1), Duration::from_millis(1));
        p.set_rtt(proxy_addr(iap1), proxy_addr(j2), Duration::from_millis(20));
        p.set_rtt(proxy_addr(iap2), proxy_addr(j1), Duration::from_millis(20));
        p.set_rtt(proxy_addr(iap2), proxy_addr(j2), Duration::from_millis(1));
    }
    sim.join(j1, "2001:db8:1::1", 1);
    sim.join(j2, "2001:db8:2::1", 1);
    let s = sim.send(iap1, "2001:db8:c::1", 1000, true);
    assert_eq!(delivered_to(&s), Some(addr("2001:db8:1::1")));
    let nat_port = nat::flow_of(&s.last().unwrap().packet).unwrap().sport;

    // Routing moves the client to iap2 mid-connection.
    let s = sim.send(iap2, "2001:db8:c::1", 1000, false);
    assert_eq!(delivered_to(&s), Some(addr("2001:db8:1::1")), "same target");
    let f = nat::flow_of(&s.last().unwrap().packet).unwrap();
    assert_eq!(f.sport, nat_port, "same NAT binding at the JAP");
    // A new connection of the same client from iap2 goes to iap2's nearest JAP.
    let s = sim.send(iap2, "2001:db8:c::1", 1001, true);
    assert_eq!(delivered_to(&s), Some(addr("2001:db8:2::1")));
    // Without the query (no cluster peer knows the flow), a mid-flow packet
    // is selected afresh once every peer said "unknown".
    let s = sim.send(iap2, "2001:db8:c::9", 7, false);
    assert!(delivered_to(&s).is_some());
}

#[test]
fn exclude_self_target_is_not_served_its_own_packets() {
    let mut sim = Sim::new(4, 0, Policy::Load);
    let m = Membership {
        group: group(),
        target: addr("2001:db8:1::1"),
        target_port: 8080,
        options: JoinOptions {
            can_decap: false,
            exclude_self: true,
        },
        nonce: 1,
        tag: [0; 16],
    };
    let b = auth::signed_bytes(&MessageRepr::Join(m), KEY).unwrap();
    sim.proxies[2].on_control(
        sim.now,
        (addr("2001:db8:1::1"), 1),
        (group().addr, CONTROL_PORT),
        &b,
    );
    sim.run();
    sim.join(2, "2001:db8:1::2", 1);
    for port in 0..10 {
        let s = sim.send(0, "2001:db8:1::1", 100 + port, true);
        assert_eq!(delivered_to(&s), Some(addr("2001:db8:1::2")));
    }
    let s = sim.send(0, "2001:db8:c::5", 5, true);
    assert!(delivered_to(&s).is_some());
}

#[test]
fn forged_peer_messages_and_tunnels_are_dropped() {
    let mut sim = Sim::new(4, 0, Policy::Load);
    let outsider = addr("2001:db8:ee::1");
    // A JAP list from a non-RAP proxy, and any message from a non-proxy
    // (even one holding the key).
    let raps = sim.raps();
    let non_rap = (0..4).find(|i| !raps.contains(i)).unwrap();
    let iap = (0..4).find(|i| *i != non_rap).unwrap();
    let list = MessageRepr::JapList {
        group: group(),
        entries: vec![crate::wire::JapEntry {
            jap: proxy_addr(non_rap),
            count: 9,
        }],
    };
    sim.inject(proxy_addr(non_rap), iap, &list);
    sim.inject(outsider, iap, &list);
    // The same list unsealed, from the live RAP, is not even parsed.
    let plain = list.to_bytes().unwrap();
    sim.proxies[iap].on_control(
        sim.now,
        (proxy_addr(raps[0]), PEER_PORT),
        (proxy_addr(iap), PEER_PORT),
        &plain,
    );
    assert!(sim.proxies[iap].iap.cached(&group()).is_none());
    let drops = &sim.proxies[iap].stats.control_drops;
    assert_eq!(drops.get("jap_list_not_from_rap"), Some(&1));
    assert_eq!(drops.get("not_a_live_proxy"), Some(&1));
    assert_eq!(drops.get("auth_truncated"), Some(&1), "{drops:?}");
    // An update claiming to be from another JAP.
    let upd = MessageRepr::JapUpdate {
        group: group(),
        jap: proxy_addr(3),
        count: 5,
        seq: 1,
        policy: Policy::Load,
    };
    let rap = raps[0];
    let liar = (0..4).find(|i| *i != 3 && *i != rap).unwrap();
    sim.inject(proxy_addr(liar), rap, &upd);
    assert!(sim.proxies[rap].rap.japs(&group()).is_none());
    assert_eq!(
        sim.proxies[rap].stats.control_drops.get("jap_not_sender"),
        Some(&1)
    );
    // A tunnel from a host that is not a live proxy.
    let inner = packet(
        PROTO_TCP,
        ("2001:db8:c::1", 1),
        ("2001:db8:aa::1", 80),
        true,
    );
    let t = nat::encapsulate(&inner, outsider, proxy_addr(1)).unwrap();
    sim.proxies[1].on_packet(sim.now, t);
    assert_eq!(
        sim.proxies[1].stats.drops.get("tunnel_from_unknown_proxy"),
        Some(&1)
    );
    // Garbage of every length on both ports.
    for n in 0..80 {
        let g: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
        sim.proxies[1].on_control(
            sim.now,
            (proxy_addr(0), PEER_PORT),
            (proxy_addr(1), PEER_PORT),
            &g,
        );
        sim.proxies[1].on_control(sim.now, (outsider, 1), (group().addr, CONTROL_PORT), &g);
        sim.proxies[1].on_packet(sim.now, g);
    }
    sim.run();
}

#[test]
fn leave_with_handoff_moves_nat_bindings() {
    let mut sim = Sim::new(4, 0, Policy::Load);
    sim.join(1, "2001:db8:1::1", 1);
    let s = sim.send(0, "2001:db8:c::1", 1000, true);
    assert_eq!(delivered_to(&s), Some(addr("2001:db8:1::1")));
    sim.join(1, "2001:db8:1::2", 1);
    // tcp-handoff moved the connection; the JAP's NAT follows, then the old target leaves.
    let moved = sim.proxies[1].handoff(
        &group(),
        (addr("2001:db8:1::1"), 8080),
        (addr("2001:db8:1::2"), 8080),
    );
    assert_eq!(moved, 1);
    assert_eq!(
        sim.join_with(1, "2001:db8:1::1", 2, KEY, true),
        AckStatus::Ok
    );
    let s = sim.send(0, "2001:db8:c::1", 1000, false);
    let f = nat::flow_of(&s.last().unwrap().packet).unwrap();
    assert_eq!(f.dst, addr("2001:db8:1::2"));
}

#[test]
fn dynamic_assignment_bound_to_a_uri() {
    let now = Instant::now();
    let creator = b"creator key".to_vec();
    let mut c = proxy_config(now, 0);
    c.block = Some((
        crate::group::AddressBlock {
            base: addr("2001:db8:aa::1:0"),
            addrs: 4,
            first_port: 1024,
            last_port: 1026,
        },
        creator.clone(),
    ));
    c.max_groups_per_target = 2;
    let mut p = Proxy::new(c);
    let create = |p: &mut Proxy, uri: &str, nonce: u64, key: &[u8]| {
        let msg = MessageRepr::Create {
            target: addr("2001:db8:1::1"),
            port: 0,
            proto: PROTO_TCP,
            nonce,
            uri: uri.to_owned(),
            tag: [0; 16],
        };
        let b = auth::signed_bytes(&msg, key).unwrap();
        p.on_control(
            now,
            (addr("2001:db8:1::1"), 9),
            (addr("2001:db8:aa::1:0"), CONTROL_PORT),
            &b,
        );
        let mut out = None;
        while let Some(a) = p.poll_action() {
            if let Action::Control { bytes, .. } = a
                && let Ok(MessageRepr::JoinAck { group, status, .. }) =
                    MessageRepr::from_bytes(&bytes)
            {
                out = Some((group, status));
            }
        }
        out.unwrap()
    };
    let (g1, s) = create(&mut p, "pias://chat", 1, &creator);
    assert_eq!(s, AckStatus::Ok);
    assert_eq!((g1.addr, g1.port), (addr("2001:db8:aa::1:0"), 1024));
    assert_eq!(
        create(&mut p, "pias://chat", 2, &creator),
        (g1, AckStatus::Ok),
        "same URI, same group"
    );
    assert_eq!(
        create(&mut p, "pias://x", 3, b"bad").1,
        AckStatus::BadCredential
    );
    assert_eq!(create(&mut p, "pias://games", 3, &creator).1, AckStatus::Ok);
    assert_eq!(
        create(&mut p, "pias://third", 4, &creator).1,
        AckStatus::LimitReached
    );
    assert_eq!(
        create(&mut p, "pias://games", 3, &creator).1,
        AckStatus::Replay
    );
    // The creator joins its group with the derived credential.
    let cred = auth::tag(&creator, b"pias://chat");
    let m = Membership {
        group: g1,
        target: addr("2001:db8:1::1"),
        target_port: 7,
        options: JoinOptions::default(),
        nonce: 1,
        tag: [0; 16],
    };
    let b = auth::signed_bytes(&MessageRepr::Join(m), &cred).unwrap();
    p.on_control(now, (addr("2001:db8:1::1"), 9), (g1.addr, CONTROL_PORT), &b);
    assert_eq!(p.jap.live(&g1), 1);
}

/// Seed 001 3.5: proxies advertise their measured RTTs; a RAP that never
/// measured the IAP-JAP distance orders JAPs by the advertised one.
#[test]
fn advertised_rtts_drive_proximity_at_the_rap() {
    let mut sim = Sim::new(6, 0, Policy::Proximity);
    let raps = sim.raps();
    let others: Vec<usize> = (0..6).filter(|i| !raps.contains(i)).collect();
    let (iap, j1, j2) = (others[0], others[1], others[2]);
    sim.join(j1, "2001:db8:1::1", 1);
    sim.join(j2, "2001:db8:2::1", 1);
    // Only the IAP measured; j2 is the nearer one (a later, larger sample
    // does not replace the minimum).
    sim.proxies[iap].rtt_sample(proxy_addr(j1), Duration::from_millis(8));
    sim.proxies[iap].rtt_sample(proxy_addr(j2), Duration::from_millis(3));
    sim.proxies[iap].rtt_sample(proxy_addr(j2), Duration::from_millis(30));
    sim.proxies[iap].advertise_rtts(sim.now);
    sim.run();
    let s = sim.send(iap, "2001:db8:c::1", 1000, true);
    assert_eq!(delivered_to(&s), Some(addr("2001:db8:2::1")));
    let list = sim.proxies[iap].iap.cached(&group()).unwrap();
    assert_eq!(list[0].jap, proxy_addr(j2));
    // A report from a host that is not a live proxy changes nothing, even
    // sealed under the key.
    let forged = MessageRepr::RttReport {
        entries: vec![crate::wire::RttEntry {
            peer: proxy_addr(j1),
            rtt_us: 1,
        }],
    };
    let rap = raps[0];
    sim.inject(addr("2001:db8:ee::1"), rap, &forged);
    assert_eq!(
        sim.proxies[rap].stats.control_drops.get("not_a_live_proxy"),
        Some(&1)
    );
}
