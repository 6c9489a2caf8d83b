//! The ingress anycast proxy (IAP) role (seed 001 3.2): the cache of JAP
//! lists RAPs gave it, flows pinned to JAPs (affinity), and the affinity
//! query to the other IAPs of its cluster when a flow it has never seen
//! arrives mid-connection (seed 003 3: "the IAP could query the others").

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::group::GroupAddr;
use crate::wire::JapEntry;

/// Key of a client flow at an IAP.
pub type FlowKey = (GroupAddr, Ipv6Addr, u16);

/// Bounds of the IAP's state (hostile traffic cannot grow it without limit).
#[derive(Debug, Clone, Copy)]
pub struct IapLimits {
    /// Pinned flows at most.
    pub max_flows: usize,
    /// Idle pinned flows expire after this.
    pub flow_idle: Duration,
    /// Packets held while an affinity query is open, per flow.
    pub max_held_per_flow: usize,
    /// Open affinity queries at most.
    pub max_queries: usize,
    /// How long to wait for affinity answers before selecting afresh.
    pub query_wait: Duration,
}

impl Default for IapLimits {
    fn default() -> Self {
        IapLimits {
            max_flows: 1 << 20,
            flow_idle: Duration::from_secs(300),
            max_held_per_flow: 16,
            max_queries: 4096,
            query_wait: Duration::from_millis(100),
        }
    }
}

/// An open affinity query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Id carried in the messages.
    pub id: u32,
    /// Deadline.
    pub until: Instant,
    /// Peers still to answer.
    pub waiting: Vec<Ipv6Addr>,
    /// Packets held meanwhile.
    pub held: Vec<Vec<u8>>,
}

/// The IAP role of a proxy.
#[derive(Debug, Default)]
pub struct Iap {
    cache: HashMap<GroupAddr, Vec<JapEntry>>,
    flows: HashMap<FlowKey, (Ipv6Addr, Instant)>,
    /// Open affinity queries.
    pub queries: HashMap<FlowKey, Query>,
    /// Flows whose first packet went to a RAP, waiting for its list: they
    /// are pinned to the JAP the RAP chose (the list's first entry).
    asked: HashMap<GroupAddr, Vec<FlowKey>>,
    next_id: u32,
    limits: IapLimits,
    /// Pins made (`Some(jap)`) and dropped (`None`) since the last
    /// [`Iap::take_changes`]: what the engine's ingress flow table must follow.
    changes: Vec<(FlowKey, Option<Ipv6Addr>)>,
}

impl Iap {
    /// An IAP with limits.
    pub fn new(limits: IapLimits) -> Self {
        Iap {
            limits,
            ..Iap::default()
        }
    }

    /// Limits in force.
    pub fn limits(&self) -> IapLimits {
        self.limits
    }

    /// Notes a flow whose packet was sent to a RAP (bounded per group).
    pub fn asked_rap(&mut self, key: FlowKey) {
        let v = self.asked.entry(key.0).or_default();
        if v.len() < self.limits.max_held_per_flow && !v.contains(&key) {
            v.push(key);
        }
    }

    /// Stores a RAP's list (best first) for `group`; flows that were waiting
    /// for it are pinned to the first entry, where the RAP sent their packet.
    pub fn store(&mut self, now: Instant, group: GroupAddr, entries: Vec<JapEntry>) {
        if let (Some(keys), Some(first)) = (self.asked.remove(&group), entries.first()) {
            for k in keys {
                self.pin(now, k, first.jap);
            }
        }
        if entries.is_empty() {
            self.cache.remove(&group);
        } else {
            self.cache.insert(group, entries);
        }
    }

    /// The cached list of `group`.
    pub fn cached(&self, group: &GroupAddr) -> Option<&[JapEntry]> {
        self.cache.get(group).map(Vec::as_slice)
    }

    /// The JAP this flow is pinned to, refreshing it.
    pub fn pinned(&mut self, now: Instant, key: &FlowKey) -> Option<Ipv6Addr> {
        let e = self.flows.get_mut(key)?;
        e.1 = now;
        Some(e.0)
    }

    /// The JAP a flow is pinned to, without touching it (answers to peers).
    pub fn peek(&self, key: &FlowKey) -> Option<Ipv6Addr> {
        self.flows.get(key).map(|e| e.0)
    }

    /// Pins a flow to a JAP; returns false when the table is full.
    pub fn pin(&mut self, now: Instant, key: FlowKey, jap: Ipv6Addr) -> bool {
        if self.flows.len() >= self.limits.max_flows && !self.flows.contains_key(&key) {
            return false;
        }
        if self.flows.insert(key, (jap, now)).map(|e| e.0) != Some(jap) {
            self.changes.push((key, Some(jap)));
        }
        true
    }

    /// Pin changes since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<(FlowKey, Option<Ipv6Addr>)> {
        std::mem::take(&mut self.changes)
    }

    /// The engine forwarded packets of a pinned flow (last at `at`): it
    /// is not idle.
    pub fn used(&mut self, key: &FlowKey, at: Instant) {
        if let Some(e) = self.flows.get_mut(key) {
            e.1 = e.1.max(at);
        }
    }

    fn unpin_where(&mut self, mut gone: impl FnMut(&FlowKey, &(Ipv6Addr, Instant)) -> bool) {
        let changes = &mut self.changes;
        self.flows.retain(|k, v| {
            let drop = gone(k, v);
            if drop {
                changes.push((*k, None));
            }
            !drop
        });
    }

    /// Seed 001 3.2: the JAP says its targets are gone: drop it from the
    /// cache entry and unpin its flows of that group (they fail over).
    pub fn targets_gone(&mut self, group: &GroupAddr, jap: &Ipv6Addr) {
        if let Some(list) = self.cache.get_mut(group) {
            list.retain(|e| e.jap != *jap);
            if list.is_empty() {
                self.cache.remove(group);
            }
        }
        self.unpin_where(|k, v| k.0 == *group && v.0 == *jap);
    }

    /// Seed 001 3.2: a proxy died: drop it from every cache entry and flow.
    pub fn proxy_down(&mut self, p: &Ipv6Addr) {
        for list in self.cache.values_mut() {
            list.retain(|e| e.jap != *p);
        }
        self.cache.retain(|_, l| !l.is_empty());
        self.unpin_where(|_, v| v.0 == *p);
    }

    /// Opens an affinity query for `key` holding `packet`; returns the id,
    /// or `None` if one is open already (the packet is then held with it,
    /// within bounds) or the table is full.
    pub fn open_query(
        &mut self,
        now: Instant,
        key: FlowKey,
        peers: Vec<Ipv6Addr>,
        packet: Vec<u8>,
    ) -> Option<u32> {
        if let Some(q) = self.queries.get_mut(&key) {
            if q.held.len() < self.limits.max_held_per_flow {
                q.held.push(packet);
            }
            return None;
        }
        if self.queries.len() >= self.limits.max_queries {
            return None;
        }
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        self.queries.insert(
            key,
            Query {
                id,
                until: now + self.limits.query_wait,
                waiting: peers,
                held: vec![packet],
            },
        );
        Some(id)
    }

    /// Whether a query is open for `key`.
    pub fn querying(&self, key: &FlowKey) -> bool {
        self.queries.contains_key(key)
    }

    /// Expires idle flows; returns queries whose deadline passed.
    pub fn expire(&mut self, now: Instant) -> Vec<(FlowKey, Query)> {
        let idle = self.limits.flow_idle;
        self.unpin_where(|_, v| now.duration_since(v.1) >= idle);
        let due: Vec<FlowKey> = self
            .queries
            .iter()
            .filter(|(_, q)| q.until <= now)
            .map(|(k, _)| *k)
            .collect();
        due.into_iter()
            .filter_map(|k| self.queries.remove(&k).map(|q| (k, q)))
            .collect()
    }

    /// Earliest query deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queries.values().map(|q| q.until).min()
    }

    /// Pinned flows.
    pub fn flows_len(&self) -> usize {
        self.flows.len()
    }
}
