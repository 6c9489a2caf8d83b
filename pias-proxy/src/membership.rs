//! Proxy liveness (seed 001 3.2: "every proxy knows all other proxies and
//! their up/down status") with SWIM from the `foca` crate instead of
//! hand-made flooding: failure detection by direct and indirect probes,
//! suspicion with refutation, and dissemination piggybacked on probes, so
//! per-proxy load stays constant as the cluster grows. foca is itself
//! sans-IO; this wrapper turns its runtime callbacks into timers keyed by
//! `Instant` and into [`MembershipAction`]s, so it is driven like every
//! other machine here.

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
    /// Send these bytes to the peer's SWIM port.
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
    /// Datagrams foca rejected (malformed, forged, from another cluster).
    pub rejected: u64,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("live", &self.live())
            .finish()
    }
}

impl Membership {
    /// Membership of proxy `me`.
    pub fn new(me: Ipv6Addr, config: Config, seed: u64) -> Self {
        let id = ProxyIdentity {
            addr: me,
            incarnation: 0,
        };
        Membership {
            foca: Foca::new(id, config, SmallRng::seed_from_u64(seed), PostcardCodec),
            runtime: AccumulatingRuntime::new(),
            timers: BinaryHeap::new(),
            timer_events: HashMap::new(),
            next_timer: 0,
            out: VecDeque::new(),
            rejected: 0,
        }
    }

    fn drain(&mut self, now: Instant) {
        while let Some((to, data)) = self.runtime.to_send() {
            self.out.push_back(MembershipAction::Send {
                to: to.addr,
                bytes: data.to_vec(),
            });
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

    /// A datagram from a peer's SWIM port.
    pub fn handle_data(&mut self, now: Instant, bytes: &[u8]) {
        if self.foca.handle_data(bytes, &mut self.runtime).is_err() {
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

    fn addr(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, i)
    }

    /// Five proxies on a simulated clock and lossless network; one stops
    /// (crash): every other one sees it go down.
    #[test]
    fn swim_detects_a_crashed_proxy() {
        let t0 = Instant::now();
        let n = 5u16;
        let mut m: Vec<Membership> = (1..=n)
            .map(|i| Membership::new(addr(i), fast_config(5), u64::from(i)))
            .collect();
        let mut up: Vec<Vec<Ipv6Addr>> = vec![Vec::new(); n as usize];
        let mut down: Vec<Vec<Ipv6Addr>> = vec![Vec::new(); n as usize];
        let mut dead: Option<usize> = None;
        for x in m.iter_mut().skip(1) {
            x.announce(t0, addr(1));
        }
        let mut now = t0;
        let end = t0 + Duration::from_secs(20);
        while now < end {
            // Deliver everything outstanding.
            loop {
                let mut moved = false;
                for i in 0..m.len() {
                    while let Some(a) = m[i].poll_action() {
                        moved = true;
                        match a {
                            MembershipAction::Send { to, bytes } => {
                                let j = usize::from(to.segments()[7]) - 1;
                                if Some(j) != dead && Some(i) != dead {
                                    m[j].handle_data(now, &bytes);
                                }
                            }
                            MembershipAction::Up(p) => up[i].push(p),
                            MembershipAction::Down(p) => down[i].push(p),
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
            if dead.is_none() && now >= t0 + Duration::from_secs(5) {
                for (i, u) in up.iter().enumerate() {
                    assert_eq!(u.len(), n as usize - 1, "proxy {i} sees everyone: {u:?}");
                }
                dead = Some(2);
            }
            now += Duration::from_millis(10);
            for (i, x) in m.iter_mut().enumerate() {
                if Some(i) != dead {
                    x.handle_timeout(now);
                }
            }
        }
        for i in (0..n as usize).filter(|i| *i != 2) {
            assert_eq!(down[i], vec![addr(3)], "proxy {i}");
            assert!(!m[i].live().contains(&addr(3)));
        }
        // Garbage is rejected, not a panic.
        m[0].handle_data(now, b"\x00\x01garbage");
        assert!(m[0].rejected >= 1);
    }
}
