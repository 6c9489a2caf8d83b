//! Proxy liveness (seed 001 3.2: "every proxy knows all other proxies and
//! their up/down status") with SWIM from the `foca` crate instead of
//! hand-made flooding: failure detection by direct and indirect probes,
//! suspicion with refutation, and dissemination piggybacked on probes, so
//! per-proxy load stays constant as the cluster grows. foca is itself
//! sans-IO; this wrapper turns its runtime callbacks into timers keyed by
//! `Instant` and into [`MembershipAction`]s, so it is driven like every
//! other machine here. Every SWIM datagram is sealed with the inter-proxy
//! key ([`crate::peer_auth`], purpose `swim`): a host without the key
//! cannot join, suspect or refute anyone.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use foca::{
    AccumulatingRuntime, Config, Foca, Identity, NoCustomBroadcast, OwnedNotification,
    PostcardCodec, Timer,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use crate::peer_auth::{OVERHEAD, PeerAuth, PeerAuthConfig, Purpose};

/// A proxy's SWIM identity: its unicast address plus an incarnation that
/// grows when it comes back after being declared down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyIdentity {
    /// Unicast address (tunnel endpoint).
    pub addr: Ipv6Addr,
    /// Bumped on every rejoin.
    pub incarnation: u32,
}

impl Identity for ProxyIdentity {
    type Addr = Ipv6Addr;

    fn renew(&self) -> Option<Self> {
        Some(ProxyIdentity {
            addr: self.addr,
            incarnation: self.incarnation.wrapping_add(1),
        })
    }

    fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// What the membership layer asks of its shell, or reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipAction {
    /// Send these bytes (sealed) to the peer's SWIM port.
    Send {
        /// Peer unicast address.
        to: Ipv6Addr,
        /// Datagram.
        bytes: Vec<u8>,
    },
    /// A proxy is live.
    Up(Ipv6Addr),
    /// A proxy was declared down.
    Down(Ipv6Addr),
}

/// SWIM timings for a lab LAN: detection within about a second.
pub fn fast_config(cluster_size: u32) -> Config {
    let mut c = Config::new_lan(NonZeroU32::new(cluster_size.max(1)).unwrap_or(NonZeroU32::MIN));
    c.probe_period = Duration::from_millis(200);
    c.probe_rtt = Duration::from_millis(80);
    c.suspect_to_down_after = Duration::from_millis(400);
    c.num_indirect_probes = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN);
    c
}

/// foca driven with `Instant`s.
pub struct Membership {
    foca: Foca<ProxyIdentity, PostcardCodec, SmallRng, NoCustomBroadcast>,
    runtime: AccumulatingRuntime<ProxyIdentity>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_events: HashMap<u64, Timer<ProxyIdentity>>,
    next_timer: u64,
    out: VecDeque<MembershipAction>,
    auth: PeerAuth,
    /// Datagrams foca rejected after they authenticated (malformed, from
    /// another cluster).
    pub rejected: u64,
    /// Datagrams dropped before foca saw them, per [`OpenError::reason`](crate::peer_auth::OpenError::reason).
    pub auth_drops: HashMap<&'static str, u64>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("live", &self.live())
            .finish()
    }
}

impl Membership {
    /// Membership of proxy `me`; SWIM datagrams are sealed under `auth`'s
    /// key. foca's packet size is reduced by the sealing overhead.
    pub fn new(me: Ipv6Addr, mut config: Config, seed: u64, auth: &PeerAuthConfig) -> Self {
        let id = ProxyIdentity {
            addr: me,
            incarnation: 0,
        };
        if let Some(n) = NonZeroUsize::new(config.max_packet_size.get().saturating_sub(OVERHEAD)) {
            config.max_packet_size = n;
        }
        Membership {
            foca: Foca::new(id, config, SmallRng::seed_from_u64(seed), PostcardCodec),
            runtime: AccumulatingRuntime::new(),
            timers: BinaryHeap::new(),
            timer_events: HashMap::new(),
            next_timer: 0,
            out: VecDeque::new(),
            auth: PeerAuth::new(auth, Purpose::Swim, me),
            rejected: 0,
            auth_drops: HashMap::new(),
        }
    }

    fn drain(&mut self, now: Instant) {
        while let Some((to, data)) = self.runtime.to_send() {
            match self.auth.seal(now, &data) {
                Ok(bytes) => self
                    .out
                    .push_back(MembershipAction::Send { to: to.addr, bytes }),
                Err(_) => *self.auth_drops.entry("seal").or_insert(0) += 1,
            }
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let id = self.next_timer;
            self.next_timer += 1;
            self.timers.push(Reverse((now + after, id)));
            self.timer_events.insert(id, timer);
        }
        while let Some(n) = self.runtime.to_notify() {
            match n {
                OwnedNotification::MemberUp(m) => self.out.push_back(MembershipAction::Up(m.addr)),
                OwnedNotification::MemberDown(m) => {
                    self.out.push_back(MembershipAction::Down(m.addr))
                }
                _ => {}
            }
        }
    }

    /// Contacts a known peer (bootstrap).
    pub fn announce(&mut self, now: Instant, peer: Ipv6Addr) {
        let _ = self.foca.announce(
            ProxyIdentity {
                addr: peer,
                incarnation: 0,
            },
            &mut self.runtime,
        );
        self.drain(now);
    }

    /// A datagram from `src`'s SWIM port: opened (authenticated, fresh,
    /// from `src`) before foca sees it; drops are counted in `auth_drops`.
    pub fn handle_data(&mut self, now: Instant, src: Ipv6Addr, bytes: &[u8]) {
        let plain = match self.auth.open(now, src, bytes) {
            Ok(p) => p,
            Err(e) => {
                *self.auth_drops.entry(e.reason()).or_insert(0) += 1;
                return;
            }
        };
        if self.foca.handle_data(&plain, &mut self.runtime).is_err() {
            self.rejected += 1;
        }
        self.drain(now);
    }

    /// Next timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            if let Some(ev) = self.timer_events.remove(&id) {
                let _ = self.foca.handle_timer(ev, &mut self.runtime);
                self.drain(now);
            }
        }
    }

    /// Leaves the cluster gracefully.
    pub fn leave(&mut self, now: Instant) {
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.drain(now);
    }

    /// Next output.
    pub fn poll_action(&mut self) -> Option<MembershipAction> {
        self.out.pop_front()
    }

    /// Proxies currently live (not counting this one).
    pub fn live(&self) -> Vec<Ipv6Addr> {
        self.foca.iter_members().map(|m| m.id().addr).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_auth::{PeerKey, WallClock};

    fn addr(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, i)
    }

    fn auth(t0: Instant, key: u8, i: u16) -> PeerAuthConfig {
        PeerAuthConfig::new(
            PeerKey::new(&[key; 32]).unwrap(),
            0x5e55_0000 + u64::from(i),
            WallClock::from_unix_ms(t0, 1_700_000_000_000),
        )
    }

    /// Proxies `1..=keys.len()` (proxy i uses key `keys[i-1]`) on a
    /// simulated clock and lossless network.
    struct Net {
        now: Instant,
        m: Vec<Membership>,
        up: Vec<Vec<Ipv6Addr>>,
        down: Vec<Vec<Ipv6Addr>>,
        dead: Option<usize>,
    }

    impl Net {
        fn new(keys: &[u8]) -> Self {
            let t0 = Instant::now();
            let n = keys.len();
            let mut m: Vec<Membership> = (1..=n as u16)
                .map(|i| {
                    let a = auth(t0, keys[usize::from(i) - 1], i);
                    Membership::new(addr(i), fast_config(n as u32), u64::from(i), &a)
                })
                .collect();
            for x in m.iter_mut().skip(1) {
                x.announce(t0, addr(1));
            }
            Net {
                now: t0,
                m,
                up: vec![Vec::new(); n],
                down: vec![Vec::new(); n],
                dead: None,
            }
        }

        /// Delivers everything outstanding.
        fn deliver(&mut self) {
            loop {
                let mut moved = false;
                for i in 0..self.m.len() {
                    while let Some(a) = self.m[i].poll_action() {
                        moved = true;
                        match a {
                            MembershipAction::Send { to, bytes } => {
                                let j = usize::from(to.segments()[7]) - 1;
                                if Some(j) != self.dead && Some(i) != self.dead {
                                    let src = addr(i as u16 + 1);
                                    self.m[j].handle_data(self.now, src, &bytes);
                                }
                            }
                            MembershipAction::Up(p) => self.up[i].push(p),
                            MembershipAction::Down(p) => self.down[i].push(p),
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
        }

        fn step(&mut self) {
            self.deliver();
            self.now += Duration::from_millis(10);
            for (i, x) in self.m.iter_mut().enumerate() {
                if Some(i) != self.dead {
                    x.handle_timeout(self.now);
                }
            }
        }
    }

    /// Five proxies; one stops (crash): every other one sees it go down.
    #[test]
    fn swim_detects_a_crashed_proxy() {
        let n = 5usize;
        let mut net = Net::new(&[7; 5]);
        let t0 = net.now;
        while net.now < t0 + Duration::from_secs(20) {
            if net.dead.is_none() && net.now >= t0 + Duration::from_secs(5) {
                for (i, u) in net.up.iter().enumerate() {
                    assert_eq!(u.len(), n - 1, "proxy {i} sees everyone: {u:?}");
                }
                net.dead = Some(2);
            }
            net.step();
        }
        for i in (0..n).filter(|i| *i != 2) {
            assert_eq!(net.down[i], vec![addr(3)], "proxy {i}");
            assert!(!net.m[i].live().contains(&addr(3)));
            assert!(net.m[i].auth_drops.is_empty(), "{:?}", net.m[i].auth_drops);
        }
        // Garbage and replays are dropped before foca, not a panic.
        let now = net.now;
        net.m[0].handle_data(now, addr(2), b"\x00\x01garbage");
        assert_eq!(net.m[0].auth_drops.get("auth_truncated"), Some(&1));
        let sealed = net.m[1].auth.seal(now, b"\x00\x01not swim").unwrap();
        net.m[0].handle_data(now, addr(2), &sealed);
        assert_eq!(net.m[0].rejected, 1, "authenticated but not SWIM");
        net.m[0].handle_data(now, addr(2), &sealed);
        assert_eq!(net.m[0].auth_drops.get("auth_replay"), Some(&1));
        net.m[0].handle_data(now, addr(4), &sealed);
        assert_eq!(net.m[0].auth_drops.get("auth_sender_mismatch"), Some(&1));
    }

    /// A proxy with another inter-proxy key announces itself to the
    /// cluster: nobody ever sees it live, and it sees nobody.
    #[test]
    fn a_proxy_with_another_key_never_becomes_live() {
        let mut net = Net::new(&[7, 7, 7, 9]);
        let t0 = net.now;
        while net.now < t0 + Duration::from_secs(5) {
            if net.now.duration_since(t0).as_millis().is_multiple_of(1000) {
                net.m[3].announce(net.now, addr(2));
            }
            net.step();
        }
        for i in 0..3 {
            let mut live = net.m[i].live();
            live.sort();
            let expect: Vec<Ipv6Addr> = (1..=3).filter(|j| *j != i as u16 + 1).map(addr).collect();
            assert_eq!(live, expect, "proxy {i}");
            assert!(!net.up[i].contains(&addr(4)));
        }
        assert!(net.m[3].live().is_empty());
        let forged: u64 = (0..3)
            .map(|i| net.m[i].auth_drops.get("auth_forged").copied().unwrap_or(0))
            .sum();
        assert!(
            forged >= 5,
            "the outsider's datagrams were counted: {forged}"
        );
        assert_eq!(
            net.m[3].auth_drops.get("auth_forged"),
            None,
            "nobody answered it"
        );
    }
}
