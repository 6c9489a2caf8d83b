//! PIAS proxy tables (issue 6; seed 001 section 3, figure 2): the engine's
//! side of a proxy that is ingress (IAP) and join (JAP) anycast proxy.
//! `pias-proxy` decides where a flow goes on its first packet (punted,
//! [`super::Punt::Proxy`]); it programs the decision here, and every later
//! packet of the flow takes the engine's fast path.
//!
//! | table | key | value | role |
//! |---|---|---|---|
//! | anycast prefixes | prefix | - | packets routed to it without an entry are punted |
//! | NAT addresses | address | - | replies to it without a binding are punted |
//! | proxy peers | peer's unicast address | our unicast address | IPv6-in-IPv6 accepted (RFC 2473) |
//! | ingress flows | [`ProxyFlow`] | (our address, JAP) | IAP: encapsulate to the JAP |
//! | NAT bindings | [`ProxyFlow`] | [`NatBinding`] | JAP: translate (or tunnel) to the target, and back |
//!
//! Every flow entry counts its use ([`BindingUsage`]: `packets` toward the
//! target or JAP, `packets_in` from the target) and is queued as *touched*
//! once between two [`ProxyTable::take_touched`] calls, so the control plane
//! sees which flows are alive (IAP idle expiry, the JAP's passive health
//! monitoring of its targets: data sent and nothing heard back) without
//! seeing their packets.

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::tables::{BindingUsage, TableError, TableUpdate, TunnelEnds};
use crate::wire::transport::TransportFlow;

/// Most anycast prefixes (a proxy serves a handful).
pub const MAX_PREFIXES: usize = 64;

/// A flow from a client to a group (`AC:p` to `AA:g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProxyFlow {
    /// The group's anycast address `AA`.
    pub group: Ipv6Addr,
    /// The group's port `g`.
    pub group_port: u16,
    /// Transport protocol (6 or 17).
    pub proto: u8,
    /// The client `AC`.
    pub client: Ipv6Addr,
    /// The client's port `p`.
    pub client_port: u16,
}

impl ProxyFlow {
    /// The flow of a client's packet (to the group).
    pub fn of_request(f: &TransportFlow) -> Self {
        ProxyFlow {
            group: f.dst,
            group_port: f.dport,
            proto: f.proto,
            client: f.src,
            client_port: f.sport,
        }
    }

    /// The flow of a reply (from the group to the client).
    pub fn of_reply(f: &TransportFlow) -> Self {
        ProxyFlow {
            group: f.src,
            group_port: f.sport,
            proto: f.proto,
            client: f.dst,
            client_port: f.dport,
        }
    }
}

/// Where a join proxy sends a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NatBinding {
    /// The target `AT`.
    pub target: Ipv6Addr,
    /// The target's port `r`.
    pub target_port: u16,
    /// Our NAT source address `JAP`.
    pub nat: Ipv6Addr,
    /// Our NAT port `q`.
    pub nat_port: u16,
    /// The target decapsulates: the original packet is encapsulated from
    /// this (our unicast) address instead of translated, and its replies
    /// come back tunnelled.
    pub tunnel_from: Option<Ipv6Addr>,
}

/// Which table a touched entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyEntryKind {
    /// An ingress flow.
    Ingress,
    /// A NAT binding.
    Nat,
}

/// Use of one flow entry since the control plane last asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyUsage {
    /// Its table.
    pub kind: ProxyEntryKind,
    /// The flow.
    pub flow: ProxyFlow,
    /// Its counters (`packets`/`last_used`: toward the JAP or target;
    /// `packets_in`/`last_in`: replies from the target).
    pub usage: BindingUsage,
}

#[derive(Debug, Clone, Copy)]
struct Entry<V> {
    value: V,
    usage: BindingUsage,
    touched: bool,
}

impl<V> Entry<V> {
    fn new(value: V) -> Self {
        Entry {
            value,
            usage: BindingUsage::default(),
            touched: false,
        }
    }
}

/// Key of a translated reply: (target, target port, NAT address, NAT
/// port, protocol).
type ReplyKey = (Ipv6Addr, u16, Ipv6Addr, u16, u8);

/// The PIAS proxy tables.
#[derive(Debug, Clone, Default)]
pub struct ProxyTable {
    prefixes: Vec<(Ipv6Addr, u8)>,
    nat_addresses: HashSet<Ipv6Addr>,
    peers: HashMap<Ipv6Addr, Ipv6Addr>,
    ingress: HashMap<ProxyFlow, Entry<TunnelEnds>>,
    nat: HashMap<ProxyFlow, Entry<NatBinding>>,
    replies: HashMap<ReplyKey, ProxyFlow>,
    /// Targets that tunnel replies back (tunnel-mode bindings per target).
    tunnel_targets: HashMap<Ipv6Addr, u32>,
    touched: Vec<(ProxyEntryKind, ProxyFlow)>,
    max_entries: usize,
}

fn in_prefix(a: &Ipv6Addr, p: &Ipv6Addr, len: u8) -> bool {
    let len = u32::from(len.min(128));
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - len);
    (u128::from(*a) & mask) == (u128::from(*p) & mask)
}

fn unicast(role: &'static str, addr: Ipv6Addr) -> Result<Ipv6Addr, TableError> {
    if addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_multicast()
        || addr.is_unicast_link_local()
    {
        return Err(TableError::BadAddress { role, addr });
    }
    Ok(addr)
}

impl ProxyTable {
    /// Empty tables bounded to `max_entries` flows each.
    pub fn new(max_entries: usize) -> Self {
        ProxyTable {
            max_entries,
            ..Default::default()
        }
    }

    /// No proxy entry at all (a node that is not a PIAS proxy).
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty() && self.nat_addresses.is_empty() && self.peers.is_empty()
    }

    /// `dst` is in an anycast prefix we serve.
    pub fn serves(&self, dst: &Ipv6Addr) -> bool {
        self.prefixes.iter().any(|(p, l)| in_prefix(dst, p, *l))
    }

    /// `dst` is one of our NAT addresses.
    pub fn is_nat_address(&self, dst: &Ipv6Addr) -> bool {
        self.nat_addresses.contains(dst)
    }

    /// Routed into the TUN by the steering (the loop guard's question).
    pub fn steers(&self, dst: &Ipv6Addr) -> bool {
        self.is_nat_address(dst) || self.serves(dst)
    }

    /// Prefixes the steering must route into the TUN (anycast prefixes,
    /// then NAT addresses as /128s).
    pub fn wanted_routes(&self) -> Vec<(Ipv6Addr, u8)> {
        let mut v = self.prefixes.clone();
        v.extend(self.nat_addresses.iter().map(|a| (*a, 128)));
        v
    }

    /// Our end of a tunnel from `peer`, if it is a proxy peer.
    pub fn peer_local(&self, peer: &Ipv6Addr) -> Option<Ipv6Addr> {
        self.peers.get(peer).copied()
    }

    /// `addr` is a target with tunnel-mode bindings.
    pub fn is_tunnel_target(&self, addr: &Ipv6Addr) -> bool {
        self.tunnel_targets.contains_key(addr)
    }

    /// The JAP tunnel of an ingress flow.
    pub fn ingress(&self, flow: &ProxyFlow) -> Option<TunnelEnds> {
        self.ingress.get(flow).map(|e| e.value)
    }

    /// The NAT binding of a flow.
    pub fn binding(&self, flow: &ProxyFlow) -> Option<NatBinding> {
        self.nat.get(flow).map(|e| e.value)
    }

    /// The flow a translated reply belongs to.
    pub fn reply_flow(
        &self,
        target: (Ipv6Addr, u16),
        nat: (Ipv6Addr, u16),
        proto: u8,
    ) -> Option<(ProxyFlow, NatBinding)> {
        let flow = *self
            .replies
            .get(&(target.0, target.1, nat.0, nat.1, proto))?;
        Some((flow, self.binding(&flow)?))
    }

    /// Entry counts: (ingress flows, NAT bindings).
    pub fn sizes(&self) -> (usize, usize) {
        (self.ingress.len(), self.nat.len())
    }

    fn touch(&mut self, kind: ProxyEntryKind, flow: ProxyFlow) {
        // Bounded even if nobody asks (an entry removed and added again
        // may appear twice).
        if self.touched.len() < self.max_entries.saturating_mul(2) {
            self.touched.push((kind, flow));
        }
    }

    /// Counts a packet toward the JAP or target.
    pub fn hit_out(
        &mut self,
        kind: ProxyEntryKind,
        flow: &ProxyFlow,
        len: usize,
        n: u64,
        now: Instant,
    ) {
        let e = match kind {
            ProxyEntryKind::Ingress => self
                .ingress
                .get_mut(flow)
                .map(|e| (&mut e.usage, &mut e.touched)),
            ProxyEntryKind::Nat => self
                .nat
                .get_mut(flow)
                .map(|e| (&mut e.usage, &mut e.touched)),
        };
        if let Some((u, t)) = e {
            u.packets = u.packets.wrapping_add(n);
            u.bytes = u.bytes.wrapping_add(len as u64);
            u.last_used = Some(now);
            let first = !*t;
            *t = true;
            if first {
                self.touch(kind, *flow);
            }
        }
    }

    /// Counts a reply from the target.
    pub fn hit_in(&mut self, flow: &ProxyFlow, len: usize, n: u64, now: Instant) {
        if let Some(e) = self.nat.get_mut(flow) {
            let u = &mut e.usage;
            u.bytes = u.bytes.wrapping_add(len as u64);
            u.packets_in = u.packets_in.wrapping_add(n);
            u.last_in = Some(now);
            let first = !e.touched;
            e.touched = true;
            if first {
                self.touch(ProxyEntryKind::Nat, *flow);
            }
        }
    }

    /// The entries used since the last call, with their counters.
    pub fn take_touched(&mut self) -> Vec<ProxyUsage> {
        let list = std::mem::take(&mut self.touched);
        let mut out = Vec::with_capacity(list.len());
        for (kind, flow) in list {
            let e = match kind {
                ProxyEntryKind::Ingress => self
                    .ingress
                    .get_mut(&flow)
                    .map(|e| (e.usage, &mut e.touched)),
                ProxyEntryKind::Nat => self.nat.get_mut(&flow).map(|e| (e.usage, &mut e.touched)),
            };
            if let Some((usage, t)) = e {
                *t = false;
                out.push(ProxyUsage { kind, flow, usage });
            }
        }
        out
    }

    fn room<V>(
        &self,
        m: &HashMap<ProxyFlow, V>,
        k: &ProxyFlow,
        table: &'static str,
    ) -> Result<(), TableError> {
        if m.len() >= self.max_entries && !m.contains_key(k) {
            return Err(TableError::Full {
                table,
                max: self.max_entries,
            });
        }
        Ok(())
    }

    fn remove_binding(&mut self, flow: &ProxyFlow) {
        if let Some(old) = self.nat.remove(flow) {
            let b = old.value;
            self.replies
                .remove(&(b.target, b.target_port, b.nat, b.nat_port, flow.proto));
            if b.tunnel_from.is_some()
                && let Some(n) = self.tunnel_targets.get_mut(&b.target)
            {
                *n -= 1;
                if *n == 0 {
                    self.tunnel_targets.remove(&b.target);
                }
            }
        }
    }

    fn add_binding(&mut self, flow: ProxyFlow, b: NatBinding) -> Result<(), TableError> {
        unicast("group address", flow.group)?;
        unicast("client address", flow.client)?;
        unicast("target address", b.target)?;
        unicast("NAT address", b.nat)?;
        if let Some(l) = b.tunnel_from {
            unicast("tunnel source", l)?;
        }
        self.room(&self.nat, &flow, "NAT bindings")?;
        let usage = self.nat.get(&flow).map(|e| e.usage).unwrap_or_default();
        self.remove_binding(&flow);
        self.replies.insert(
            (b.target, b.target_port, b.nat, b.nat_port, flow.proto),
            flow,
        );
        if b.tunnel_from.is_some() {
            *self.tunnel_targets.entry(b.target).or_insert(0) += 1;
        }
        let mut e = Entry::new(b);
        e.usage = usage;
        self.nat.insert(flow, e);
        Ok(())
    }

    /// Applies a proxy update; `Ok(false)` for updates of other tables
    /// (`Clear` empties these tables and still returns `false`).
    pub fn apply(&mut self, u: &TableUpdate) -> Result<bool, TableError> {
        match *u {
            TableUpdate::AddAnycastPrefix { prefix, len } => {
                if len > 128 || prefix.is_multicast() || prefix.is_loopback() {
                    return Err(TableError::BadAddress {
                        role: "anycast prefix",
                        addr: prefix,
                    });
                }
                if !self.prefixes.contains(&(prefix, len)) {
                    if self.prefixes.len() >= MAX_PREFIXES {
                        return Err(TableError::Full {
                            table: "anycast prefixes",
                            max: MAX_PREFIXES,
                        });
                    }
                    self.prefixes.push((prefix, len));
                }
            }
            TableUpdate::RemoveAnycastPrefix { prefix, len } => {
                self.prefixes.retain(|p| *p != (prefix, len));
            }
            TableUpdate::AddNatAddress { addr } => {
                self.nat_addresses.insert(unicast("NAT address", addr)?);
            }
            TableUpdate::RemoveNatAddress { addr } => {
                self.nat_addresses.remove(&addr);
            }
            TableUpdate::AddProxyPeer { peer, local } => {
                if self.peers.len() >= self.max_entries && !self.peers.contains_key(&peer) {
                    return Err(TableError::Full {
                        table: "proxy peers",
                        max: self.max_entries,
                    });
                }
                self.peers.insert(
                    unicast("proxy peer", peer)?,
                    unicast("proxy address", local)?,
                );
            }
            TableUpdate::RemoveProxyPeer { peer } => {
                self.peers.remove(&peer);
            }
            TableUpdate::AddIngressFlow { flow, local, jap } => {
                unicast("group address", flow.group)?;
                unicast("client address", flow.client)?;
                let ends = TunnelEnds {
                    local: unicast("proxy address", local)?,
                    remote: unicast("join proxy", jap)?,
                };
                self.room(&self.ingress, &flow, "ingress flows")?;
                match self.ingress.get_mut(&flow) {
                    Some(e) => e.value = ends,
                    None => {
                        self.ingress.insert(flow, Entry::new(ends));
                    }
                }
            }
            TableUpdate::RemoveIngressFlow { flow } => {
                self.ingress.remove(&flow);
            }
            TableUpdate::AddNatBinding { flow, binding } => self.add_binding(flow, binding)?,
            TableUpdate::RemoveNatBinding { flow } => self.remove_binding(&flow),
            TableUpdate::Clear => {
                *self = ProxyTable::new(self.max_entries);
                return Ok(false);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn flow(port: u16) -> ProxyFlow {
        ProxyFlow {
            group: a("2001:db8:aa::1"),
            group_port: 80,
            proto: 6,
            client: a("2001:db8:c::1"),
            client_port: port,
        }
    }

    #[test]
    fn prefixes_bindings_and_replies() {
        let mut t = ProxyTable::new(2);
        assert!(t.is_empty());
        t.apply(&TableUpdate::AddAnycastPrefix {
            prefix: a("2001:db8:aa::"),
            len: 48,
        })
        .unwrap();
        assert!(t.serves(&a("2001:db8:aa:5::1")));
        assert!(!t.serves(&a("2001:db8:ab::1")));
        let b = NatBinding {
            target: a("2001:db8:d::5"),
            target_port: 8080,
            nat: a("2001:db8:1::9"),
            nat_port: 20001,
            tunnel_from: None,
        };
        t.apply(&TableUpdate::AddNatBinding {
            flow: flow(1),
            binding: b,
        })
        .unwrap();
        assert_eq!(
            t.reply_flow((b.target, 8080), (b.nat, 20001), 6),
            Some((flow(1), b))
        );
        assert_eq!(t.reply_flow((b.target, 8080), (b.nat, 20001), 17), None);
        // Re-pointing a flow (handoff) drops the old reply key.
        let b2 = NatBinding {
            target: a("2001:db8:d::6"),
            ..b
        };
        t.apply(&TableUpdate::AddNatBinding {
            flow: flow(1),
            binding: b2,
        })
        .unwrap();
        assert_eq!(t.reply_flow((b.target, 8080), (b.nat, 20001), 6), None);
        assert!(t.reply_flow((b2.target, 8080), (b.nat, 20001), 6).is_some());
        // Bounded.
        t.apply(&TableUpdate::AddNatBinding {
            flow: flow(2),
            binding: b,
        })
        .unwrap();
        assert!(matches!(
            t.apply(&TableUpdate::AddNatBinding {
                flow: flow(3),
                binding: b
            }),
            Err(TableError::Full { .. })
        ));
        // Bad addresses are refused.
        assert!(
            t.apply(&TableUpdate::AddProxyPeer {
                peer: Ipv6Addr::UNSPECIFIED,
                local: b.nat
            })
            .is_err()
        );
        t.apply(&TableUpdate::RemoveNatBinding { flow: flow(1) })
            .unwrap();
        assert_eq!(t.reply_flow((b2.target, 8080), (b.nat, 20001), 6), None);
        assert!(!t.apply(&TableUpdate::Clear).unwrap());
        assert!(t.is_empty());
        assert_eq!(t.sizes(), (0, 0));
    }

    #[test]
    fn touched_entries_are_reported_once() {
        let mut t = ProxyTable::new(8);
        t.apply(&TableUpdate::AddIngressFlow {
            flow: flow(1),
            local: a("2001:db8:1::1"),
            jap: a("2001:db8:2::1"),
        })
        .unwrap();
        let now = Instant::now();
        for _ in 0..3 {
            t.hit_out(ProxyEntryKind::Ingress, &flow(1), 100, 1, now);
        }
        let u = t.take_touched();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].usage.packets, 3);
        assert!(t.take_touched().is_empty());
        t.hit_out(ProxyEntryKind::Ingress, &flow(1), 100, 1, now);
        t.apply(&TableUpdate::RemoveIngressFlow { flow: flow(1) })
            .unwrap();
        assert!(
            t.take_touched().is_empty(),
            "removed entries are not reported"
        );
    }
}
