//! The join anycast proxy (JAP) role (seed 001 3.1-3.3, 3.6.1): the targets
//! that joined here, their health (pings plus passive monitoring of return
//! traffic), the NAT `JAP:q = NAT(AC:p)` towards targets, and the
//! approximate target counts it owes the group's RAPs.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::group::{GroupAddr, GroupConfig};
use crate::select::{self, Candidate};
use crate::wire::JoinOptions;

/// Health-monitoring parameters (seed 001 3.6.1).
#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    /// Ping an idle target this often.
    pub ping_interval: Duration,
    /// A packet sent to a target with nothing heard back for this long triggers a ping.
    pub reply_wait: Duration,
    /// A ping unanswered this long is a miss.
    pub ping_timeout: Duration,
    /// Consecutive misses that declare a target dead.
    pub max_misses: u8,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ping_interval: Duration::from_secs(2),
            reply_wait: Duration::from_millis(200),
            ping_timeout: Duration::from_millis(150),
            max_misses: 2,
        }
    }
}

/// A target of one group at this JAP.
#[derive(Debug, Clone)]
pub struct Target {
    /// Address `AT`.
    pub addr: Ipv6Addr,
    /// Port `r`.
    pub port: u16,
    /// Join options.
    pub options: JoinOptions,
    /// Health state.
    pub alive: bool,
    /// Flows pinned to it.
    pub flows: u32,
    last_sent: Option<Instant>,
    last_heard: Instant,
    ping_sent: Option<Instant>,
    misses: u8,
}

/// Per-group JAP state.
#[derive(Debug, Clone)]
pub struct JapGroup {
    /// The group's configuration.
    pub config: GroupConfig,
    /// Its targets here.
    pub targets: Vec<Target>,
    /// Count last reported to the RAPs (`None`: never).
    pub reported: Option<u32>,
    /// Error bound in force (the larger of the group's and the RAPs' request).
    pub bound_pct: u8,
    /// Sequence of the next report.
    pub seq: u32,
}

impl JapGroup {
    /// Live targets.
    pub fn live(&self) -> u32 {
        self.targets.iter().filter(|t| t.alive).count() as u32
    }

    /// The count to report now, if one is due ([`report_due`]).
    pub fn report_due(&self) -> Option<u32> {
        report_due(self.reported, self.live(), self.bound_pct)
    }
}

/// Seed 001 3.3: a JAP reports when the live count `live` left
/// `reported * (1 +- bound)`, and always when it reaches or leaves zero.
pub fn report_due(reported: Option<u32>, live: u32, bound_pct: u8) -> Option<u32> {
    match reported {
        None => Some(live),
        Some(r) if (r == 0) != (live == 0) => Some(live),
        Some(r) => {
            let slack = u64::from(r) * u64::from(bound_pct) / 100;
            let (lo, hi) = (u64::from(r).saturating_sub(slack), u64::from(r) + slack);
            (u64::from(live) < lo || u64::from(live) > hi).then_some(live)
        }
    }
}

/// A NAT binding of one client flow to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatEntry {
    /// Group.
    pub group: GroupAddr,
    /// Client `AC`.
    pub client: Ipv6Addr,
    /// Client port `p`.
    pub client_port: u16,
    /// Target `AT`.
    pub target: Ipv6Addr,
    /// Target port `r`.
    pub target_port: u16,
    /// Port `q` on the JAP's unicast address.
    pub nat_port: u16,
    /// Last packet either way.
    pub last_used: Instant,
}

/// How a flow is delivered to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The NAT binding (new or existing).
    pub entry: NatEntry,
    /// The target decapsulates: tunnel the original packet instead of NAT.
    pub tunnel: bool,
    /// A new binding was made for this packet.
    pub new_flow: bool,
}

/// A change the engine's NAT binding table must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JapChange {
    /// Translate (or tunnel) this flow to its target.
    Bound {
        /// The binding.
        entry: NatEntry,
        /// The target decapsulates.
        tunnel: bool,
    },
    /// Stop: the next packet of the flow comes to the control plane.
    Unbound {
        /// Group.
        group: GroupAddr,
        /// Client.
        client: Ipv6Addr,
        /// Client port.
        client_port: u16,
    },
}

/// Things that happened to targets during a health tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// Send an ICMPv6 Echo Request to this target.
    Ping(Ipv6Addr),
    /// The target was declared dead.
    Dead(GroupAddr, Ipv6Addr),
}

/// The JAP role of a proxy.
#[derive(Debug)]
pub struct Jap {
    /// Groups with targets joined here.
    pub groups: HashMap<GroupAddr, JapGroup>,
    by_client: HashMap<(GroupAddr, Ipv6Addr, u16), u16>,
    nat: HashMap<u16, NatEntry>,
    ports: (u16, u16),
    next_port: u16,
    health: HealthConfig,
    /// Idle NAT bindings are removed after this.
    pub nat_idle: Duration,
    changes: Vec<JapChange>,
}

fn unbound(e: &NatEntry) -> JapChange {
    JapChange::Unbound {
        group: e.group,
        client: e.client,
        client_port: e.client_port,
    }
}

impl Jap {
    /// A JAP using NAT ports `ports.0 ..= ports.1` on its unicast address.
    pub fn new(ports: (u16, u16), health: HealthConfig) -> Self {
        Jap {
            groups: HashMap::new(),
            by_client: HashMap::new(),
            nat: HashMap::new(),
            ports,
            next_port: ports.0,
            health,
            nat_idle: Duration::from_secs(300),
            changes: Vec::new(),
        }
    }

    /// Adds (or refreshes) a target; returns whether it is a new membership.
    pub fn join(
        &mut self,
        now: Instant,
        config: &GroupConfig,
        addr: Ipv6Addr,
        port: u16,
        options: JoinOptions,
    ) -> bool {
        let g = self.groups.entry(config.group).or_insert_with(|| JapGroup {
            config: config.clone(),
            targets: Vec::new(),
            reported: None,
            bound_pct: config.error_bound_pct,
            seq: 0,
        });
        if let Some(t) = g
            .targets
            .iter_mut()
            .find(|t| t.addr == addr && t.port == port)
        {
            t.options = options;
            t.alive = true;
            t.misses = 0;
            t.last_heard = now;
            return false;
        }
        g.targets.push(Target {
            addr,
            port,
            options,
            alive: true,
            flows: 0,
            last_sent: None,
            last_heard: now,
            ping_sent: None,
            misses: 0,
        });
        true
    }

    /// Removes a target; returns whether it was a member.
    pub fn leave(&mut self, group: &GroupAddr, addr: Ipv6Addr, port: u16) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let before = g.targets.len();
        g.targets.retain(|t| !(t.addr == addr && t.port == port));
        let left = before != g.targets.len();
        if left {
            self.unbind_target(group, addr, Some(port));
        }
        left
    }

    /// Takes the bindings of a target out of the engine (they stay here:
    /// the flow's next packet fails over through [`Jap::deliver`]).
    fn unbind_target(&mut self, group: &GroupAddr, addr: Ipv6Addr, port: Option<u16>) {
        for e in self.nat.values().filter(|e| {
            e.group == *group && e.target == addr && port.is_none_or(|p| p == e.target_port)
        }) {
            self.changes.push(unbound(e));
        }
    }

    /// NAT changes since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<JapChange> {
        std::mem::take(&mut self.changes)
    }

    /// The engine moved packets of a binding: toward the target (last at
    /// `to_target`) and back (`from_target`). Passive monitoring (seed 001
    /// 3.6.1): a reply is a sign of life; data sent after the last reply
    /// starts the reply wait. Returns whether the target was heard.
    pub fn used(
        &mut self,
        group: &GroupAddr,
        client: Ipv6Addr,
        client_port: u16,
        to_target: Option<Instant>,
        from_target: Option<Instant>,
    ) -> bool {
        let Some(q) = self.by_client.get(&(*group, client, client_port)).copied() else {
            return false;
        };
        let Some(e) = self.nat.get_mut(&q) else {
            return false;
        };
        if let Some(t) = to_target.max(from_target) {
            e.last_used = e.last_used.max(t);
        }
        let (target, port) = (e.target, e.target_port);
        // The counters are cumulative: only a reply newer than what we
        // heard last is news.
        let last_heard = self
            .groups
            .get(group)
            .and_then(|g| {
                g.targets
                    .iter()
                    .find(|t| t.addr == target && t.port == port)
            })
            .map(|t| t.last_heard);
        let heard = match (from_target, last_heard) {
            (Some(h), Some(l)) => h > l,
            (Some(_), None) => true,
            _ => false,
        };
        if let Some(t) = from_target.filter(|_| heard) {
            self.heard(t, target);
        }
        if let Some(sent) = to_target.filter(|s| from_target.is_none_or(|h| *s > h))
            && let Some(t) = self.groups.get_mut(group).and_then(|g| {
                g.targets
                    .iter_mut()
                    .find(|t| t.addr == target && t.port == port)
            })
        {
            t.last_sent.get_or_insert(sent);
        }
        heard
    }

    /// Whether a target is a member of `group` here.
    pub fn is_member(&self, group: &GroupAddr, addr: Ipv6Addr, port: u16) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.targets.iter().any(|t| t.addr == addr && t.port == port))
    }

    /// Live targets of `group` here.
    pub fn live(&self, group: &GroupAddr) -> u32 {
        self.groups.get(group).map_or(0, JapGroup::live)
    }

    fn alloc_port(&mut self) -> Option<u16> {
        let span = u32::from(self.ports.1.saturating_sub(self.ports.0)) + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= self.ports.1 {
                self.ports.0
            } else {
                p + 1
            };
            if !self.nat.contains_key(&p) {
                return Some(p);
            }
        }
        None
    }

    /// Chooses (or keeps: affinity) the target for a client packet.
    /// `None`: no live target may serve it, or the NAT port pool is exhausted.
    pub fn deliver<R: rand::Rng>(
        &mut self,
        now: Instant,
        group: &GroupAddr,
        client: Ipv6Addr,
        client_port: u16,
        rng: &mut R,
    ) -> Option<Delivery> {
        let key = (*group, client, client_port);
        if let Some(q) = self.by_client.get(&key).copied()
            && let Some(e) = self.nat.get_mut(&q)
        {
            let g = self.groups.get_mut(group)?;
            if let Some(t) = g
                .targets
                .iter_mut()
                .find(|t| t.addr == e.target && t.port == e.target_port && t.alive)
            {
                e.last_used = now;
                t.last_sent.get_or_insert(now);
                let tunnel = t.options.can_decap;
                // Punted although bound (the engine's entry was taken out
                // while the target looked dead): program it again.
                self.changes.push(JapChange::Bound { entry: *e, tunnel });
                return Some(Delivery {
                    entry: *e,
                    tunnel,
                    new_flow: false,
                });
            }
            // Target gone: the flow fails over to another target (seed 001 3.6.1).
            let old = self.nat.remove(&q);
            self.by_client.remove(&key);
            if let Some(o) = &old {
                self.changes.push(unbound(o));
            }
            if let Some(old) = old
                && let Some(t) = g
                    .targets
                    .iter_mut()
                    .find(|t| t.addr == old.target && t.port == old.target_port)
            {
                t.flows = t.flows.saturating_sub(1);
            }
        }
        let g = self.groups.get(group)?;
        let cands: Vec<Candidate> = g
            .targets
            .iter()
            .map(|t| Candidate {
                addr: t.addr,
                alive: t.alive,
                flows: t.flows,
                exclude_self: t.options.exclude_self,
            })
            .collect();
        let ix = select::pick_target(
            g.config.policy,
            g.config.scope_prefix_len,
            &cands,
            &client,
            rng,
        )?;
        let q = self.alloc_port()?;
        let g = self.groups.get_mut(group)?;
        let t = g.targets.get_mut(ix)?;
        t.flows += 1;
        t.last_sent.get_or_insert(now);
        let entry = NatEntry {
            group: *group,
            client,
            client_port,
            target: t.addr,
            target_port: t.port,
            nat_port: q,
            last_used: now,
        };
        let tunnel = t.options.can_decap;
        self.changes.push(JapChange::Bound { entry, tunnel });
        self.nat.insert(q, entry);
        self.by_client.insert(key, q);
        Some(Delivery {
            entry,
            tunnel,
            new_flow: true,
        })
    }

    /// Reverse NAT for a reply from `target:port` to NAT port `q`; marks the
    /// target heard (passive monitoring). `None` for an unknown or forged binding.
    pub fn reply(
        &mut self,
        now: Instant,
        target: Ipv6Addr,
        target_port: u16,
        q: u16,
    ) -> Option<NatEntry> {
        let e = self.nat.get_mut(&q)?;
        if e.target != target || e.target_port != target_port {
            return None;
        }
        e.last_used = now;
        let e = *e;
        self.heard(now, target);
        Some(e)
    }

    /// Anything heard from `target` (reply traffic or an Echo Reply).
    pub fn heard(&mut self, now: Instant, target: Ipv6Addr) {
        for g in self.groups.values_mut() {
            for t in g.targets.iter_mut().filter(|t| t.addr == target) {
                t.last_heard = now;
                t.last_sent = None;
                t.ping_sent = None;
                t.misses = 0;
                t.alive = true;
            }
        }
    }

    /// Moves the NAT bindings of `from` to `to` (a graceful leave whose
    /// connections `tcp-handoff` moved to another target of this JAP).
    /// Returns how many bindings moved.
    pub fn handoff(
        &mut self,
        group: &GroupAddr,
        from: (Ipv6Addr, u16),
        to: (Ipv6Addr, u16),
    ) -> usize {
        let Some(g) = self.groups.get_mut(group) else {
            return 0;
        };
        if !g.targets.iter().any(|t| (t.addr, t.port) == to) {
            return 0;
        }
        let mut n = 0u32;
        for e in self
            .nat
            .values_mut()
            .filter(|e| e.group == *group && (e.target, e.target_port) == from)
        {
            e.target = to.0;
            e.target_port = to.1;
            n += 1;
            let tunnel = g
                .targets
                .iter()
                .find(|t| (t.addr, t.port) == to)
                .is_some_and(|t| t.options.can_decap);
            self.changes.push(JapChange::Bound { entry: *e, tunnel });
        }
        for t in g.targets.iter_mut() {
            if (t.addr, t.port) == from {
                t.flows = t.flows.saturating_sub(n);
            } else if (t.addr, t.port) == to {
                t.flows += n;
            }
        }
        n as usize
    }

    /// Health tick: pings due and targets declared dead.
    pub fn tick(&mut self, now: Instant) -> Vec<HealthEvent> {
        let h = self.health;
        let mut out = Vec::new();
        let mut pinged: Vec<Ipv6Addr> = Vec::new();
        let mut dead = Vec::new();
        for (gaddr, g) in self.groups.iter_mut() {
            for t in g.targets.iter_mut().filter(|t| t.alive) {
                if let Some(sent) = t.ping_sent
                    && now.duration_since(sent) >= h.ping_timeout
                {
                    t.misses += 1;
                    t.ping_sent = None;
                    if t.misses >= h.max_misses {
                        t.alive = false;
                        out.push(HealthEvent::Dead(*gaddr, t.addr));
                        dead.push((*gaddr, t.addr, t.port));
                        continue;
                    }
                }
                let passive_due = t
                    .last_sent
                    .is_some_and(|s| now.duration_since(s) >= h.reply_wait);
                let idle_due = now.duration_since(t.last_heard) >= h.ping_interval;
                if t.ping_sent.is_none() && (passive_due || idle_due || t.misses > 0) {
                    t.ping_sent = Some(now);
                    if !pinged.contains(&t.addr) {
                        pinged.push(t.addr);
                        out.push(HealthEvent::Ping(t.addr));
                    }
                }
            }
        }
        for (g, addr, port) in dead {
            self.unbind_target(&g, addr, Some(port));
        }
        let idle = self.nat_idle;
        let before = self.nat.len();
        let changes = &mut self.changes;
        self.nat.retain(|_, e| {
            let keep = now.duration_since(e.last_used) < idle;
            if !keep {
                changes.push(unbound(e));
            }
            keep
        });
        if self.nat.len() != before {
            let nat = &self.nat;
            self.by_client.retain(|_, q| nat.contains_key(q));
        }
        out
    }

    /// Earliest instant a tick has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let h = self.health;
        self.groups
            .values()
            .flat_map(|g| g.targets.iter().filter(|t| t.alive))
            .map(|t| match t.ping_sent {
                Some(s) => s + h.ping_timeout,
                None => {
                    let idle = t.last_heard + h.ping_interval;
                    t.last_sent.map_or(idle, |s| idle.min(s + h.reply_wait))
                }
            })
            .min()
    }

    /// Active NAT bindings.
    pub fn nat_len(&self) -> usize {
        self.nat.len()
    }
}
