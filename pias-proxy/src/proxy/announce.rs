//! Dynamic groups known to every proxy: a group created here (assigned
//! from this proxy's block, bound to a URI) is announced sealed to every
//! live proxy and to each proxy that comes up later, so its targets can
//! join it at whichever proxy anycast routing reaches, and that proxy's
//! JAP reports and RAP choice use the same configuration everywhere.
//!
//! A receiver installs an announced group unless it would override
//! something: a pre-assigned group, a different URI bound to the same
//! group, a group inside this proxy's own block (blocks are disjoint; only
//! this proxy assigns from its own), or the table is full. Each refusal is
//! counted in `control_drops`. URI lookups stay local: a `Create` at
//! another proxy for the same URI assigns from that proxy's block.

use std::net::Ipv6Addr;
use std::time::Instant;

use super::Proxy;
use crate::group::GroupAddr;
use crate::select::same_prefix;
use crate::wire::{GroupAnnounce, MessageRepr};

impl Proxy {
    fn announcement(&self, group: GroupAddr) -> Option<MessageRepr> {
        let (uri, creator) = self.dynamic.get(&group)?;
        let config = self.groups.get(&group)?.clone();
        Some(MessageRepr::GroupAnnounce(GroupAnnounce {
            config,
            uri: uri.clone(),
            creator: *creator,
        }))
    }

    /// Announces a group created here to every live proxy.
    pub(super) fn announce_group(&mut self, now: Instant, group: GroupAddr) {
        let Some(msg) = self.announcement(group) else {
            return;
        };
        let me = self.cfg.me;
        let peers: Vec<Ipv6Addr> = self.ring.members().filter(|p| *p != me).collect();
        for p in peers {
            self.peer_msg(now, p, &msg);
        }
    }

    /// A proxy came up: it learns the groups created here, and those whose
    /// creator is not live (so a group outlives its creator's restart).
    pub(super) fn announce_groups_to(&mut self, now: Instant, p: Ipv6Addr) {
        let mut groups: Vec<GroupAddr> = self
            .dynamic
            .iter()
            .filter(|(_, (_, c))| *c == self.cfg.me || !self.is_live(c))
            .map(|(g, _)| *g)
            .collect();
        groups.sort();
        for g in groups {
            if let Some(msg) = self.announcement(g) {
                self.peer_msg(now, p, &msg);
            }
        }
    }

    /// An authenticated announcement from proxy `from`.
    pub(super) fn on_group_announce(&mut self, from: Ipv6Addr, a: GroupAnnounce) {
        let g = a.config.group;
        let (prefix, len) = self.cfg.anycast_prefix;
        if !same_prefix(&g.addr, &prefix, len) {
            return self.stats.control_drop("announce_outside_prefix");
        }
        if self.cfg.groups.iter().any(|c| c.group == g) {
            return self.stats.control_drop("announce_preassigned");
        }
        if let Some((uri, _)) = self.dynamic.get(&g) {
            if *uri != a.uri {
                return self.stats.control_drop("announce_uri_conflict");
            }
            // Known already (from the creator or a relay): nothing to do.
            return;
        }
        if self.cfg.block.as_ref().is_some_and(|(b, _)| b.contains(&g)) {
            return self.stats.control_drop("announce_in_my_block");
        }
        if self.dynamic.len() >= self.cfg.max_dynamic_groups {
            return self.stats.control_drop("announce_table_full");
        }
        tracing::debug!(group = %g, uri = %a.uri, creator = %a.creator, %from, "group announced");
        self.groups.insert(g, a.config);
        self.dynamic.insert(g, (a.uri, a.creator));
        self.stats.groups_learned += 1;
    }

    /// URI and creator of a dynamically created group known here.
    pub fn dynamic_group(&self, group: &GroupAddr) -> Option<(&str, Ipv6Addr)> {
        self.dynamic.get(group).map(|(u, c)| (u.as_str(), *c))
    }
}
