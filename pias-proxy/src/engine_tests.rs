//! The machine and the tunnel engine together, without root: every proxy
//! owns a real `mip6_anycast` [`Datapath`] programmed only by the machine's
//! [`Action::Table`]s; packets meet the datapath first and reach the
//! machine only when it punts them, as in the daemon.

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::engine::datapath::{
    Action as EngineAction, Datapath, DatapathConfig, HEADROOM, PuntInfo, Verdict,
};
use mip6_anycast::wire::{Bounds, Ipv6Packet, checksum, ip_proto};

use crate::auth;
use crate::group::{GroupConfig, PROTO_TCP, Policy};
use crate::nat::{self, tests::packet};
use crate::proxy::{Action, Proxy};
use crate::tests::{addr, group, proxy_addr, proxy_config};
use crate::wire::{CONTROL_PORT, JoinOptions, Membership, MessageRepr};

const KEY: &[u8] = b"engine test credential";

struct Node {
    proxy: Proxy,
    dp: Datapath,
}

/// Proxies, targets that answer every packet, and clients' inboxes.
struct Net {
    now: Instant,
    nodes: Vec<Node>,
    /// Where anycast packets from a source enter (its nearest proxy).
    iap_of: Vec<(Ipv6Addr, usize)>,
    dead_targets: HashSet<Ipv6Addr>,
    /// Packets clients received.
    inbox: Vec<Vec<u8>>,
    /// Packets targets received.
    at_targets: Vec<Vec<u8>>,
    /// Packets the machines handled (punts).
    punts: usize,
}

impl Net {
    fn new(n: usize) -> Self {
        let now = Instant::now();
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| {
                let mut c = proxy_config(now, i);
                c.groups = vec![GroupConfig {
                    group: group(),
                    policy: Policy::Proximity,
                    scope_prefix_len: 48,
                    raps: 2,
                    error_bound_pct: 0,
                    credential: KEY.to_vec(),
                    allow: Vec::new(),
                }];
                c.seed = i as u64 + 3;
                Node {
                    proxy: Proxy::new(c),
                    dp: Datapath::new(DatapathConfig::default()),
                }
            })
            .collect();
        for node in nodes.iter_mut() {
            for j in 0..n {
                node.proxy.proxy_up(now, proxy_addr(j));
            }
        }
        let mut net = Net {
            now,
            nodes,
            iap_of: Vec::new(),
            dead_targets: HashSet::new(),
            inbox: Vec::new(),
            at_targets: Vec::new(),
            punts: 0,
        };
        net.run();
        net
    }

    fn node_of(&self, a: Ipv6Addr) -> Option<usize> {
        (0..self.nodes.len()).find(|i| proxy_addr(*i) == a)
    }

    fn drain(&mut self, i: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(a) = self.nodes[i].proxy.poll_action() {
            match a {
                Action::Table(u) => self.nodes[i].dp.apply(&u).expect("table update"),
                Action::Transmit { packet, .. } => out.push(packet),
                Action::Control { src, dst, bytes } => {
                    if let Some(j) = self.node_of(dst.0) {
                        self.nodes[j].proxy.on_control(self.now, src, dst, &bytes);
                    }
                }
                Action::PingTarget(t) => {
                    if !self.dead_targets.contains(&t) {
                        self.nodes[i].proxy.target_heard(self.now, t);
                    }
                }
                Action::Event(_) => {}
            }
        }
        out
    }

    /// Runs every machine until quiet, delivering what they send.
    fn run(&mut self) {
        loop {
            let mut sent = Vec::new();
            for i in 0..self.nodes.len() {
                sent.extend(self.drain(i));
            }
            if sent.is_empty() {
                return;
            }
            for p in sent {
                self.deliver(p, 0);
            }
        }
    }

    /// Puts a packet on the network: a proxy's datapath, a target (which
    /// answers), or a client's inbox.
    fn deliver(&mut self, p: Vec<u8>, depth: usize) {
        assert!(depth < 16, "routing loop");
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let at = if let Some(j) = self.node_of(dst) {
            Some(j)
        } else if self.nodes[0].dp.proxy().serves(&dst) {
            self.iap_of.iter().find(|(s, _)| *s == src).map(|(_, j)| *j)
        } else {
            None
        };
        if let Some(j) = at {
            return self.at_proxy(j, p, depth);
        }
        if dst.segments()[2] == 0xd {
            // A target: echo back (swap addresses and ports).
            if self.dead_targets.contains(&dst) {
                return;
            }
            self.at_targets.push(p.clone());
            let f = nat::flow_of(&p).unwrap();
            let reply = packet(
                PROTO_TCP,
                (&f.dst.to_string(), f.dport),
                (&f.src.to_string(), f.sport),
                false,
            );
            return self.deliver(reply, depth + 1);
        }
        self.inbox.push(p);
    }

    fn at_proxy(&mut self, j: usize, p: Vec<u8>, depth: usize) {
        let mut buf = vec![0u8; HEADROOM + p.len() + 64];
        buf[HEADROOM..HEADROOM + p.len()].copy_from_slice(&p);
        let b = Bounds {
            start: HEADROOM,
            len: p.len(),
        };
        match self.nodes[j].dp.process(&mut buf, b, self.now) {
            Verdict::Wire { bounds, .. } => {
                let out = buf[bounds.range()].to_vec();
                self.deliver(out, depth + 1);
            }
            Verdict::Punt(PuntInfo::Proxy { bounds, tunnel }) => {
                self.punts += 1;
                let inner = buf[bounds.range()].to_vec();
                self.nodes[j]
                    .proxy
                    .on_punt(self.now, inner, tunnel.map(|t| t.src));
                self.run();
            }
            v => panic!("unexpected verdict {v:?}"),
        }
    }

    fn join(&mut self, jap: usize, target: &str) {
        let m = Membership {
            group: group(),
            target: addr(target),
            target_port: 8080,
            options: JoinOptions::default(),
            nonce: 1,
            tag: [0; 16],
        };
        let bytes = auth::signed_bytes(&MessageRepr::Join(m), KEY).unwrap();
        let udp =
            nat::udp_packet((addr(target), 5000), (group().addr, CONTROL_PORT), &bytes).unwrap();
        self.iap_of.push((addr(target), jap));
        self.deliver(udp, 0);
        self.run();
    }

    /// Polls every engine's usage into its machine, as the daemon does.
    fn poll_usage(&mut self) {
        for n in self.nodes.iter_mut() {
            let u = n.dp.take_proxy_usage();
            n.proxy.engine_usage(self.now, &u);
        }
        self.run();
    }

    fn advance(&mut self, d: Duration, step: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += step;
            self.poll_usage();
            for i in 0..self.nodes.len() {
                if self.nodes[i]
                    .proxy
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.nodes[i].proxy.handle_timeout(self.now);
                }
            }
            self.run();
        }
    }

    fn counted(&self, j: usize, a: EngineAction) -> u64 {
        self.nodes[j].dp.counters().action_count(a).packets
    }
}

fn client_packet(sport: u16, syn: bool) -> Vec<u8> {
    packet(
        PROTO_TCP,
        ("2001:db8:c::1", sport),
        ("2001:db8:aa::1", 80),
        syn,
    )
}

fn valid(p: &[u8]) -> bool {
    let ip = Ipv6Packet::new_checked(p).unwrap();
    checksum::verify(&ip.src_addr(), &ip.dst_addr(), ip_proto::TCP, ip.payload())
}

/// The first packet is routed by the machines (IAP -> RAP -> JAP); every
/// later packet and every reply is carried by the engines alone.
#[test]
fn later_packets_and_replies_never_reach_the_machines() {
    let mut net = Net::new(5);
    let raps = net.nodes[0].proxy.raps(&group());
    let free: Vec<usize> = (0..5).filter(|i| !raps.contains(&proxy_addr(*i))).collect();
    let (iap, jap) = (free[0], free[1]);
    net.join(jap, "2001:db8:d::10");
    net.iap_of.push((addr("2001:db8:c::1"), iap));

    net.deliver(client_packet(40000, true), 0);
    assert_eq!(net.at_targets.len(), 1, "first packet reached the target");
    assert_eq!(net.inbox.len(), 1, "the reply reached the client");
    let punts_after_first = net.punts;

    for _ in 0..20 {
        net.deliver(client_packet(40000, false), 0);
    }
    assert_eq!(net.punts, punts_after_first, "later packets punted");
    assert_eq!(net.at_targets.len(), 21);
    assert_eq!(net.inbox.len(), 21);
    assert_eq!(net.counted(iap, EngineAction::ProxyIngressTunnelled), 20);
    assert_eq!(net.counted(jap, EngineAction::ProxyTranslated), 20);
    assert!(net.counted(jap, EngineAction::ProxyReplyTranslated) >= 20);
    for p in &net.inbox {
        assert!(valid(p));
        let f = nat::flow_of(p).unwrap();
        assert_eq!((f.src, f.sport, f.dport), (group().addr, 80, 40000));
    }
    // The engines' usage keeps the flow pinned past the IAP's idle time.
    net.advance(Duration::from_secs(2), Duration::from_millis(100));
    assert_eq!(net.nodes[iap].proxy.iap.flows_len(), 1);
}

/// A target that stops answering while the engine carries its flow is
/// found by passive monitoring of the engine's counters; the binding
/// leaves the engine and the flow's next packet fails over.
#[test]
fn passive_monitoring_through_engine_usage_fails_over() {
    let mut net = Net::new(4);
    let raps = net.nodes[0].proxy.raps(&group());
    let free: Vec<usize> = (0..4).filter(|i| !raps.contains(&proxy_addr(*i))).collect();
    let (iap, jap) = (free[0], free[1]);
    net.join(jap, "2001:db8:d::10");
    net.join(jap, "2001:db8:d::11");
    net.iap_of.push((addr("2001:db8:c::1"), iap));
    net.deliver(client_packet(40000, true), 0);
    let first = nat::flow_of(net.at_targets.last().unwrap()).unwrap().dst;
    // Replies keep it alive while packets flow.
    for _ in 0..10 {
        net.deliver(client_packet(40000, false), 0);
        net.advance(Duration::from_millis(100), Duration::from_millis(100));
    }
    assert!(net.nodes[jap].proxy.jap.live(&group()) == 2);
    net.dead_targets.insert(first);
    let before = net.at_targets.len();
    let mut moved_after = None;
    for k in 0..60 {
        net.deliver(client_packet(40000, false), 0);
        net.advance(Duration::from_millis(100), Duration::from_millis(100));
        if net.at_targets.len() > before {
            moved_after = Some(k);
            break;
        }
    }
    assert!(moved_after.is_some(), "the flow failed over");
    let now_at = nat::flow_of(net.at_targets.last().unwrap()).unwrap().dst;
    assert_ne!(now_at, first);
    assert_eq!(net.nodes[jap].proxy.jap.live(&group()), 1);
}
