//! The rendezvous anycast proxy (RAP) role (seed 001 3.2-3.3): per group the
//! JAPs and their approximate target counts; acknowledgements tell JAPs the
//! error bound to report with, coarser when this RAP is loaded.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crate::group::{GroupAddr, Policy};
use crate::wire::JapEntry;

/// Load shedding: above `updates_per_window` reports in one `window`, the
/// RAP asks its JAPs for `coarse_bound_pct` (seed 001 3.3: "as the RAP load
/// goes up, it would request less accuracy").
#[derive(Debug, Clone, Copy)]
pub struct RapLoad {
    /// Measurement window.
    pub window: Duration,
    /// Reports per window above which the RAP asks for coarser reports.
    pub updates_per_window: u32,
    /// Bound requested under load.
    pub coarse_bound_pct: u8,
}

impl Default for RapLoad {
    fn default() -> Self {
        RapLoad {
            window: Duration::from_secs(1),
            updates_per_window: 10_000,
            coarse_bound_pct: 50,
        }
    }
}

#[derive(Debug, Clone)]
struct RapGroup {
    policy: Policy,
    updates: u64,
    japs: HashMap<Ipv6Addr, (u32, u32)>,
}

/// The RAP role of a proxy.
#[derive(Debug)]
pub struct Rap {
    groups: HashMap<GroupAddr, RapGroup>,
    load: RapLoad,
    window_start: Option<Instant>,
    in_window: u32,
    /// Reports received (the `rap_updates` figure).
    pub updates: u64,
}

/// Outcome of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// The report was newer than what we had and was applied.
    pub applied: bool,
    /// Bound to put in the acknowledgement.
    pub bound_pct: u8,
}

impl Rap {
    /// A RAP with a load policy.
    pub fn new(load: RapLoad) -> Self {
        Rap {
            groups: HashMap::new(),
            load,
            window_start: None,
            in_window: 0,
            updates: 0,
        }
    }

    /// Applies a JAP's report (`count` 0 removes the JAP). Older sequence
    /// numbers (reordered or replayed) are ignored but still acknowledged.
    pub fn update(
        &mut self,
        now: Instant,
        group: GroupAddr,
        jap: Ipv6Addr,
        count: u32,
        seq: u32,
        policy: Policy,
    ) -> UpdateOutcome {
        self.updates += 1;
        match self.window_start {
            Some(s) if now.duration_since(s) < self.load.window => self.in_window += 1,
            _ => {
                self.window_start = Some(now);
                self.in_window = 1;
            }
        }
        let g = self.groups.entry(group).or_insert_with(|| RapGroup {
            policy,
            updates: 0,
            japs: HashMap::new(),
        });
        g.policy = policy;
        g.updates += 1;
        let applied = match g.japs.get(&jap) {
            Some((_, last)) if seq.wrapping_sub(*last) as i32 <= 0 => false,
            _ => {
                g.japs.insert(jap, (count, seq));
                true
            }
        };
        let bound_pct = if self.in_window > self.load.updates_per_window {
            self.load.coarse_bound_pct
        } else {
            0
        };
        UpdateOutcome { applied, bound_pct }
    }

    /// The JAPs of `group` with targets (unordered) and the group's policy.
    pub fn japs(&self, group: &GroupAddr) -> Option<(Policy, Vec<JapEntry>)> {
        let g = self.groups.get(group)?;
        let v: Vec<JapEntry> = g
            .japs
            .iter()
            .filter(|(_, (c, _))| *c > 0)
            .map(|(j, (c, _))| JapEntry { jap: *j, count: *c })
            .collect();
        Some((g.policy, v))
    }

    /// Reports received for `group` (while this RAP held it).
    pub fn updates_of(&self, group: &GroupAddr) -> u64 {
        self.groups.get(group).map_or(0, |g| g.updates)
    }

    /// Groups held, with their reports received and JAPs.
    pub fn summary(&self) -> impl Iterator<Item = (GroupAddr, u64, Vec<JapEntry>)> + '_ {
        self.groups.iter().map(|(k, g)| {
            let japs = g
                .japs
                .iter()
                .map(|(j, (c, _))| JapEntry { jap: *j, count: *c })
                .collect();
            (*k, g.updates, japs)
        })
    }

    /// A proxy died: forget it as a JAP everywhere.
    pub fn proxy_down(&mut self, p: &Ipv6Addr) {
        for g in self.groups.values_mut() {
            g.japs.remove(p);
        }
    }

    /// Groups this RAP holds.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Holds no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}
