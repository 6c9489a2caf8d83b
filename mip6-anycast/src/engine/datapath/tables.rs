//! The tables a control plane programs, through [`TableUpdate`] messages.
//!
//! | table | key | value | used by |
//! |---|---|---|---|
//! | local addresses | address | - | every node: our own addresses (care-of addresses, a correspondent's or home agent's addresses) |
//! | local home addresses | home address | - | member: X is ours |
//! | correspondent bindings | (correspondent address, home address) | care-of address | correspondent (RFC 6275 9.3) |
//! | home address bindings | (local home address, peer) | our care-of address | member (RFC 6275 11.3.1, route optimization) |
//! | reverse tunnels | local home address | (our care-of address, home agent) | member (RFC 6275 11.3.1, reverse tunneling) |
//! | home tunnels | home address | (home agent address, registered care-of address) | home agent (RFC 6275 10.4) |
//!
//! All are `Ipv6Addr`-keyed hash maps. Every binding and tunnel carries its
//! [`BindingUsage`] (packets, octets, last use) so a correspondent can tell
//! whether a binding is in active use (RFC 6275 9.5.5). The tables also
//! derive which destinations and sources the outbound steering must route
//! into the TUN, which the engine uses both to program the routes and to
//! refuse writing a packet into the TUN that would come straight back.

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use super::update::{BindingKey, TableUpdate};
use crate::engine::steer::Headroom;
use crate::wire::is_valid_home_address;

/// Default bound on entries per table.
pub const DEFAULT_MAX_ENTRIES: usize = 1 << 16;

/// The two ends of a tunnel as seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TunnelEnds {
    /// Our end: the outer source of what we encapsulate, the outer
    /// destination of what we accept.
    pub local: Ipv6Addr,
    /// The far end: outer destination of what we encapsulate, the only
    /// outer source we accept.
    pub remote: Ipv6Addr,
}

/// How much a binding or tunnel has been used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindingUsage {
    /// Packets that used it (both directions).
    pub packets: u64,
    /// Octets of those packets.
    pub bytes: u64,
    /// When it was last used (`None`: never).
    pub last_used: Option<Instant>,
    /// Of `packets`, those received (HAO stripped, decapsulated): a
    /// correspondent tells a binding whose care-of address went silent
    /// from one that is answered.
    pub packets_in: u64,
    /// When a packet was last received through it (`None`: never).
    pub last_in: Option<Instant>,
}

impl BindingUsage {
    fn hit(&mut self, len: usize, n: u64, now: Instant) {
        self.packets = self.packets.wrapping_add(n);
        self.bytes = self.bytes.wrapping_add(len as u64);
        self.last_used = Some(now);
    }

    fn hit_in(&mut self, len: usize, n: u64, now: Instant) {
        self.hit(len, n, now);
        self.packets_in = self.packets_in.wrapping_add(n);
        self.last_in = Some(now);
    }
}

/// Entries per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSizes {
    /// Local addresses.
    pub local_addresses: usize,
    /// Local home addresses.
    pub local_home_addresses: usize,
    /// Correspondent bindings.
    pub correspondent_bindings: usize,
    /// Home address bindings.
    pub home_address_bindings: usize,
    /// Reverse tunnels.
    pub reverse_tunnels: usize,
    /// Home tunnels.
    pub home_tunnels: usize,
}

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// An address that cannot serve in that role (unspecified, loopback,
    /// multicast, link-local: RFC 6275 6.3/6.4 want unicast routable).
    #[error("{role} {addr} is not a unicast routable address")]
    BadAddress {
        /// Which field.
        role: &'static str,
        /// The address.
        addr: Ipv6Addr,
    },
    /// The table has reached its bound.
    #[error("table {table} is full ({max} entries)")]
    Full {
        /// Which table.
        table: &'static str,
        /// Its bound.
        max: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry<V> {
    value: V,
    usage: BindingUsage,
}

/// The datapath's tables.
#[derive(Debug, Clone)]
pub struct Tables {
    local_addresses: HashSet<Ipv6Addr>,
    local_home_addresses: HashSet<Ipv6Addr>,
    correspondent_bindings: HashMap<(Ipv6Addr, Ipv6Addr), Entry<Ipv6Addr>>,
    home_address_bindings: HashMap<(Ipv6Addr, Ipv6Addr), Entry<Ipv6Addr>>,
    reverse_tunnels: HashMap<Ipv6Addr, Entry<TunnelEnds>>,
    home_tunnels: HashMap<Ipv6Addr, Entry<TunnelEnds>>,
    /// Correspondent side: home address -> number of bindings for it.
    bound_hoas: HashMap<Ipv6Addr, u32>,
    /// Member side: home address -> number of home address bindings.
    hab_hoas: HashMap<Ipv6Addr, u32>,
    /// Derived from the above: what each address is, so the per-packet
    /// predicates cost one lookup per address.
    flags: HashMap<Ipv6Addr, u8>,
    max_entries: usize,
}

const OURS: u8 = 1;
const LOCAL: u8 = 2;
const LOCAL_HOME: u8 = 4;
const STEERED_TO: u8 = 8;
const STEERED_FROM: u8 = 16;

impl Default for Tables {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

fn check(role: &'static str, addr: Ipv6Addr) -> Result<(), TableError> {
    if is_valid_home_address(&addr) {
        Ok(())
    } else {
        Err(TableError::BadAddress { role, addr })
    }
}

fn room<K, V>(
    map: &HashMap<K, V>,
    key: &K,
    table: &'static str,
    max: usize,
) -> Result<(), TableError>
where
    K: std::hash::Hash + Eq,
{
    if map.len() >= max && !map.contains_key(key) {
        Err(TableError::Full { table, max })
    } else {
        Ok(())
    }
}

fn incr(m: &mut HashMap<Ipv6Addr, u32>, a: Ipv6Addr) {
    *m.entry(a).or_insert(0) += 1;
}

fn decr(m: &mut HashMap<Ipv6Addr, u32>, a: Ipv6Addr) {
    if let Some(n) = m.get_mut(&a) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            m.remove(&a);
        }
    }
}

/// Inserts or replaces, keeping usage. Returns true if the key is new.
fn upsert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, Entry<V>>, key: K, value: V) -> bool {
    match map.get_mut(&key) {
        Some(e) => {
            e.value = value;
            false
        }
        None => {
            map.insert(
                key,
                Entry {
                    value,
                    usage: BindingUsage::default(),
                },
            );
            true
        }
    }
}

impl Tables {
    /// Empty tables holding at most `max_entries` per table.
    pub fn new(max_entries: usize) -> Self {
        Self {
            local_addresses: HashSet::new(),
            local_home_addresses: HashSet::new(),
            correspondent_bindings: HashMap::new(),
            home_address_bindings: HashMap::new(),
            reverse_tunnels: HashMap::new(),
            home_tunnels: HashMap::new(),
            bound_hoas: HashMap::new(),
            hab_hoas: HashMap::new(),
            flags: HashMap::new(),
            max_entries,
        }
    }

    /// Applies one update.
    pub fn apply(&mut self, u: &TableUpdate) -> Result<(), TableError> {
        self.apply_tables(u)?;
        let touched = match *u {
            TableUpdate::AddLocalAddress { addr } | TableUpdate::RemoveLocalAddress { addr } => {
                Some(addr)
            }
            TableUpdate::AddLocalHomeAddress { hoa }
            | TableUpdate::RemoveLocalHomeAddress { hoa }
            | TableUpdate::AddCorrespondentBinding { hoa, .. }
            | TableUpdate::RemoveCorrespondentBinding { hoa, .. }
            | TableUpdate::AddHomeAddressBinding { hoa, .. }
            | TableUpdate::RemoveHomeAddressBinding { hoa, .. }
            | TableUpdate::AddReverseTunnel { hoa, .. }
            | TableUpdate::RemoveReverseTunnel { hoa }
            | TableUpdate::AddHomeTunnel { hoa, .. }
            | TableUpdate::RemoveHomeTunnel { hoa } => Some(hoa),
            TableUpdate::Clear => None,
            // Member forwarding lives in `member::MemberTable` (applied by
            // `Datapath::apply`).
            TableUpdate::AddGroupMember { .. }
            | TableUpdate::RemoveGroupMember { .. }
            | TableUpdate::HoldClient { .. }
            | TableUpdate::ForwardClient { .. }
            | TableUpdate::ReleaseClient { .. }
            | TableUpdate::RemoveClient { .. } => None,
            // PIAS proxy tables live in `proxy::ProxyTable`.
            TableUpdate::AddAnycastPrefix { .. }
            | TableUpdate::RemoveAnycastPrefix { .. }
            | TableUpdate::AddNatAddress { .. }
            | TableUpdate::RemoveNatAddress { .. }
            | TableUpdate::AddProxyPeer { .. }
            | TableUpdate::RemoveProxyPeer { .. }
            | TableUpdate::AddIngressFlow { .. }
            | TableUpdate::RemoveIngressFlow { .. }
            | TableUpdate::AddNatBinding { .. }
            | TableUpdate::RemoveNatBinding { .. } => None,
        };
        if let Some(a) = touched {
            self.refresh_flags(a);
        }
        Ok(())
    }

    fn refresh_flags(&mut self, a: Ipv6Addr) {
        let mut f = 0;
        if self.local_addresses.contains(&a) {
            f |= LOCAL | OURS;
        }
        if self.local_home_addresses.contains(&a) {
            f |= LOCAL_HOME | OURS;
        }
        if self.bound_hoas.contains_key(&a) || self.home_tunnels.contains_key(&a) {
            f |= STEERED_TO;
        }
        if self.hab_hoas.contains_key(&a) || self.reverse_tunnels.contains_key(&a) {
            f |= STEERED_FROM;
        }
        if f == 0 {
            self.flags.remove(&a);
        } else {
            self.flags.insert(a, f);
        }
    }

    fn has(&self, a: &Ipv6Addr, flag: u8) -> bool {
        self.flags.get(a).is_some_and(|f| f & flag != 0)
    }

    fn apply_tables(&mut self, u: &TableUpdate) -> Result<(), TableError> {
        let max = self.max_entries;
        match *u {
            TableUpdate::AddLocalAddress { addr } => {
                check("local address", addr)?;
                if self.local_addresses.len() >= max && !self.local_addresses.contains(&addr) {
                    return Err(TableError::Full {
                        table: "local addresses",
                        max,
                    });
                }
                self.local_addresses.insert(addr);
            }
            TableUpdate::RemoveLocalAddress { addr } => {
                self.local_addresses.remove(&addr);
            }
            TableUpdate::AddLocalHomeAddress { hoa } => {
                check("home address", hoa)?;
                if self.local_home_addresses.len() >= max
                    && !self.local_home_addresses.contains(&hoa)
                {
                    return Err(TableError::Full {
                        table: "local home addresses",
                        max,
                    });
                }
                self.local_home_addresses.insert(hoa);
            }
            TableUpdate::RemoveLocalHomeAddress { hoa } => {
                self.local_home_addresses.remove(&hoa);
            }
            TableUpdate::AddCorrespondentBinding { cn, hoa, coa } => {
                check("correspondent address", cn)?;
                check("home address", hoa)?;
                check("care-of address", coa)?;
                let key = (cn, hoa);
                room(
                    &self.correspondent_bindings,
                    &key,
                    "correspondent bindings",
                    max,
                )?;
                if upsert(&mut self.correspondent_bindings, key, coa) {
                    incr(&mut self.bound_hoas, hoa);
                }
            }
            TableUpdate::RemoveCorrespondentBinding { cn, hoa } => {
                if self.correspondent_bindings.remove(&(cn, hoa)).is_some() {
                    decr(&mut self.bound_hoas, hoa);
                }
            }
            TableUpdate::AddHomeAddressBinding { hoa, peer, coa } => {
                check("home address", hoa)?;
                check("peer address", peer)?;
                check("care-of address", coa)?;
                let key = (hoa, peer);
                room(
                    &self.home_address_bindings,
                    &key,
                    "home address bindings",
                    max,
                )?;
                if upsert(&mut self.home_address_bindings, key, coa) {
                    incr(&mut self.hab_hoas, hoa);
                }
            }
            TableUpdate::RemoveHomeAddressBinding { hoa, peer } => {
                if self.home_address_bindings.remove(&(hoa, peer)).is_some() {
                    decr(&mut self.hab_hoas, hoa);
                }
            }
            TableUpdate::AddReverseTunnel {
                hoa,
                coa,
                home_agent,
            } => {
                check("home address", hoa)?;
                check("care-of address", coa)?;
                check("home agent address", home_agent)?;
                room(&self.reverse_tunnels, &hoa, "reverse tunnels", max)?;
                upsert(
                    &mut self.reverse_tunnels,
                    hoa,
                    TunnelEnds {
                        local: coa,
                        remote: home_agent,
                    },
                );
            }
            TableUpdate::RemoveReverseTunnel { hoa } => {
                self.reverse_tunnels.remove(&hoa);
            }
            TableUpdate::AddHomeTunnel {
                hoa,
                home_agent,
                coa,
            } => {
                check("home address", hoa)?;
                check("home agent address", home_agent)?;
                check("care-of address", coa)?;
                room(&self.home_tunnels, &hoa, "home tunnels", max)?;
                upsert(
                    &mut self.home_tunnels,
                    hoa,
                    TunnelEnds {
                        local: home_agent,
                        remote: coa,
                    },
                );
            }
            TableUpdate::RemoveHomeTunnel { hoa } => {
                self.home_tunnels.remove(&hoa);
            }
            TableUpdate::Clear => *self = Self::new(max),
            TableUpdate::AddAnycastPrefix { .. }
            | TableUpdate::RemoveAnycastPrefix { .. }
            | TableUpdate::AddNatAddress { .. }
            | TableUpdate::RemoveNatAddress { .. }
            | TableUpdate::AddProxyPeer { .. }
            | TableUpdate::RemoveProxyPeer { .. }
            | TableUpdate::AddIngressFlow { .. }
            | TableUpdate::RemoveIngressFlow { .. }
            | TableUpdate::AddNatBinding { .. }
            | TableUpdate::RemoveNatBinding { .. }
            | TableUpdate::AddGroupMember { .. }
            | TableUpdate::RemoveGroupMember { .. }
            | TableUpdate::HoldClient { .. }
            | TableUpdate::ForwardClient { .. }
            | TableUpdate::ReleaseClient { .. }
            | TableUpdate::RemoveClient { .. } => {}
        }
        Ok(())
    }

    /// `addr` is one of our non-home addresses.
    pub fn is_local(&self, addr: &Ipv6Addr) -> bool {
        self.has(addr, LOCAL)
    }

    /// `hoa` is one of our home addresses.
    pub fn is_local_home(&self, hoa: &Ipv6Addr) -> bool {
        self.has(hoa, LOCAL_HOME)
    }

    /// `addr` is ours: a local address or a local home address.
    pub fn is_ours(&self, addr: &Ipv6Addr) -> bool {
        self.has(addr, OURS)
    }

    /// The care-of address bound for (`cn`, `hoa`).
    pub fn correspondent_binding(&self, cn: &Ipv6Addr, hoa: &Ipv6Addr) -> Option<Ipv6Addr> {
        self.correspondent_bindings
            .get(&(*cn, *hoa))
            .map(|e| e.value)
    }

    /// Our care-of address for traffic from `hoa` to `peer`.
    pub fn home_address_binding(&self, hoa: &Ipv6Addr, peer: &Ipv6Addr) -> Option<Ipv6Addr> {
        self.home_address_bindings
            .get(&(*hoa, *peer))
            .map(|e| e.value)
    }

    /// The reverse tunnel of `hoa`.
    pub fn reverse_tunnel(&self, hoa: &Ipv6Addr) -> Option<TunnelEnds> {
        self.reverse_tunnels.get(hoa).map(|e| e.value)
    }

    /// The home tunnel of `hoa`.
    pub fn home_tunnel(&self, hoa: &Ipv6Addr) -> Option<TunnelEnds> {
        self.home_tunnels.get(hoa).map(|e| e.value)
    }

    /// Every reverse tunnel (home address, ends).
    pub fn reverse_tunnels(&self) -> impl Iterator<Item = (Ipv6Addr, TunnelEnds)> + '_ {
        self.reverse_tunnels.iter().map(|(h, e)| (*h, e.value))
    }

    /// Every home tunnel (home address, ends).
    pub fn home_tunnels(&self) -> impl Iterator<Item = (Ipv6Addr, TunnelEnds)> + '_ {
        self.home_tunnels.iter().map(|(h, e)| (*h, e.value))
    }

    /// Records that a packet of `len` octets (`n` on the wire: a GSO
    /// packet counts its segments) was sent through binding `key`.
    pub(crate) fn hit(&mut self, key: BindingKey, len: usize, n: u64, now: Instant) {
        if let Some(u) = self.usage_mut(key) {
            u.hit(len, n, now);
        }
    }

    /// Records that a packet of `len` octets was received through binding
    /// `key`.
    pub(crate) fn hit_in(&mut self, key: BindingKey, len: usize, n: u64, now: Instant) {
        if let Some(u) = self.usage_mut(key) {
            u.hit_in(len, n, now);
        }
    }

    fn usage_mut(&mut self, key: BindingKey) -> Option<&mut BindingUsage> {
        match key {
            BindingKey::Correspondent { cn, hoa } => self
                .correspondent_bindings
                .get_mut(&(cn, hoa))
                .map(|e| &mut e.usage),
            BindingKey::HomeAddress { hoa, peer } => self
                .home_address_bindings
                .get_mut(&(hoa, peer))
                .map(|e| &mut e.usage),
            BindingKey::ReverseTunnel { hoa } => {
                self.reverse_tunnels.get_mut(&hoa).map(|e| &mut e.usage)
            }
            BindingKey::HomeTunnel { hoa } => self.home_tunnels.get_mut(&hoa).map(|e| &mut e.usage),
        }
    }

    /// Usage of one binding or tunnel (`None` if it does not exist).
    pub fn usage(&self, key: &BindingKey) -> Option<BindingUsage> {
        match *key {
            BindingKey::Correspondent { cn, hoa } => {
                self.correspondent_bindings.get(&(cn, hoa)).map(|e| e.usage)
            }
            BindingKey::HomeAddress { hoa, peer } => self
                .home_address_bindings
                .get(&(hoa, peer))
                .map(|e| e.usage),
            BindingKey::ReverseTunnel { hoa } => self.reverse_tunnels.get(&hoa).map(|e| e.usage),
            BindingKey::HomeTunnel { hoa } => self.home_tunnels.get(&hoa).map(|e| e.usage),
        }
    }

    /// Usage of every binding and tunnel, sorted by key.
    pub fn usages(&self) -> Vec<(BindingKey, BindingUsage)> {
        let mut v: Vec<(BindingKey, BindingUsage)> = self
            .correspondent_bindings
            .iter()
            .map(|(&(cn, hoa), e)| (BindingKey::Correspondent { cn, hoa }, e.usage))
            .chain(
                self.home_address_bindings
                    .iter()
                    .map(|(&(hoa, peer), e)| (BindingKey::HomeAddress { hoa, peer }, e.usage)),
            )
            .chain(
                self.reverse_tunnels
                    .iter()
                    .map(|(&hoa, e)| (BindingKey::ReverseTunnel { hoa }, e.usage)),
            )
            .chain(
                self.home_tunnels
                    .iter()
                    .map(|(&hoa, e)| (BindingKey::HomeTunnel { hoa }, e.usage)),
            )
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Entries per table.
    pub fn sizes(&self) -> TableSizes {
        TableSizes {
            local_addresses: self.local_addresses.len(),
            local_home_addresses: self.local_home_addresses.len(),
            correspondent_bindings: self.correspondent_bindings.len(),
            home_address_bindings: self.home_address_bindings.len(),
            reverse_tunnels: self.reverse_tunnels.len(),
            home_tunnels: self.home_tunnels.len(),
        }
    }

    /// Packets to `dst` are routed into the TUN: a home address with a
    /// correspondent binding or a home tunnel.
    pub fn is_steered_to(&self, dst: &Ipv6Addr) -> bool {
        self.has(dst, STEERED_TO)
    }

    /// Packets from `src` are routed into the TUN: a home address with a
    /// home address binding or a reverse tunnel.
    pub fn is_steered_from(&self, src: &Ipv6Addr) -> bool {
        self.has(src, STEERED_FROM)
    }

    /// The loop guard's question in one lookup per address: would a packet
    /// from `src` to `dst` written into the TUN be routed back into it
    /// (destination steered, or source steered and the packet not ours)?
    pub fn would_loop(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let d = self.flags.get(dst).copied().unwrap_or(0);
        if d & STEERED_TO != 0 {
            return true;
        }
        d & OURS == 0 && self.has(src, STEERED_FROM)
    }

    /// The "to" routes the tables need: home tunnels leave room for an
    /// outer header (RFC 2473), correspondent bindings for a Type 2 Routing
    /// Header (RFC 6275 6.4).
    pub fn wanted_steer_to(&self) -> HashMap<Ipv6Addr, Headroom> {
        let mut m: HashMap<Ipv6Addr, Headroom> = self
            .bound_hoas
            .keys()
            .map(|a| (*a, Headroom::RouteOptimization))
            .collect();
        for a in self.home_tunnels.keys() {
            m.insert(*a, Headroom::Tunnel);
        }
        m
    }

    /// The "from" rules the tables need (one per home address sending
    /// through the engine).
    pub fn wanted_steer_from(&self) -> HashSet<Ipv6Addr> {
        self.hab_hoas
            .keys()
            .chain(self.reverse_tunnels.keys())
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn bindings_steer_and_count() {
        let mut t = Tables::default();
        let (cn, x, coa) = (a("2001:db8::c"), a("2001:db8:ff::1"), a("2001:db8:2::2"));
        t.apply(&TableUpdate::AddCorrespondentBinding { cn, hoa: x, coa })
            .unwrap();
        t.apply(&TableUpdate::AddCorrespondentBinding {
            cn: a("2001:db8::d"),
            hoa: x,
            coa,
        })
        .unwrap();
        assert!(t.is_steered_to(&x));
        assert_eq!(
            t.wanted_steer_to().get(&x),
            Some(&Headroom::RouteOptimization)
        );
        t.hit(
            BindingKey::Correspondent { cn, hoa: x },
            100,
            1,
            Instant::now(),
        );
        let t_in = Instant::now();
        t.hit_in(BindingKey::Correspondent { cn, hoa: x }, 60, 1, t_in);
        // Replacing keeps usage.
        t.apply(&TableUpdate::AddCorrespondentBinding {
            cn,
            hoa: x,
            coa: a("2001:db8:3::3"),
        })
        .unwrap();
        let u = t.usage(&BindingKey::Correspondent { cn, hoa: x }).unwrap();
        assert_eq!((u.packets, u.bytes), (2, 160));
        assert_eq!((u.packets_in, u.last_in), (1, Some(t_in)));
        assert_eq!(t.correspondent_binding(&cn, &x), Some(a("2001:db8:3::3")));
        t.apply(&TableUpdate::RemoveCorrespondentBinding { cn, hoa: x })
            .unwrap();
        assert!(t.is_steered_to(&x), "the other correspondent still binds x");
        t.apply(&TableUpdate::RemoveCorrespondentBinding {
            cn: a("2001:db8::d"),
            hoa: x,
        })
        .unwrap();
        t.apply(&TableUpdate::RemoveCorrespondentBinding { cn, hoa: x })
            .unwrap();
        assert!(!t.is_steered_to(&x));
        assert!(t.wanted_steer_to().is_empty());
    }

    #[test]
    fn home_tunnel_wins_headroom_and_from_rules() {
        let mut t = Tables::default();
        let x = a("2001:db8:ff::1");
        t.apply(&TableUpdate::AddCorrespondentBinding {
            cn: a("2001:db8::c"),
            hoa: x,
            coa: a("2001:db8:2::2"),
        })
        .unwrap();
        t.apply(&TableUpdate::AddHomeTunnel {
            hoa: x,
            home_agent: a("2001:db8:1::1"),
            coa: a("2001:db8:2::2"),
        })
        .unwrap();
        assert_eq!(t.wanted_steer_to().get(&x), Some(&Headroom::Tunnel));
        t.apply(&TableUpdate::AddReverseTunnel {
            hoa: x,
            coa: a("2001:db8:2::2"),
            home_agent: a("2001:db8:1::1"),
        })
        .unwrap();
        t.apply(&TableUpdate::AddHomeAddressBinding {
            hoa: x,
            peer: a("2001:db8::c"),
            coa: a("2001:db8:2::2"),
        })
        .unwrap();
        assert_eq!(t.wanted_steer_from().len(), 1);
        t.apply(&TableUpdate::RemoveReverseTunnel { hoa: x })
            .unwrap();
        assert!(t.is_steered_from(&x));
        t.apply(&TableUpdate::RemoveHomeAddressBinding {
            hoa: x,
            peer: a("2001:db8::c"),
        })
        .unwrap();
        assert!(!t.is_steered_from(&x));
        t.apply(&TableUpdate::Clear).unwrap();
        assert_eq!(t.sizes(), TableSizes::default());
    }

    #[test]
    fn derived_flags_follow_every_change() {
        let mut t = Tables::default();
        let (x, coa, ha) = (a("2001:db8:ff::1"), a("2001:db8:2::2"), a("2001:db8:1::1"));
        t.apply(&TableUpdate::AddLocalHomeAddress { hoa: x })
            .unwrap();
        assert!(t.is_ours(&x) && t.is_local_home(&x) && !t.is_local(&x));
        t.apply(&TableUpdate::AddReverseTunnel {
            hoa: x,
            coa,
            home_agent: ha,
        })
        .unwrap();
        assert!(t.is_steered_from(&x) && !t.would_loop(&x, &x));
        assert!(t.would_loop(&x, &ha));
        t.apply(&TableUpdate::RemoveLocalHomeAddress { hoa: x })
            .unwrap();
        assert!(!t.is_ours(&x) && t.is_steered_from(&x));
        t.apply(&TableUpdate::RemoveReverseTunnel { hoa: x })
            .unwrap();
        assert!(!t.is_steered_from(&x) && !t.would_loop(&x, &ha));
        assert!(t.flags.is_empty());
        t.apply(&TableUpdate::AddLocalAddress { addr: coa })
            .unwrap();
        t.apply(&TableUpdate::Clear).unwrap();
        assert!(!t.is_local(&coa) && t.flags.is_empty());
    }

    #[test]
    fn bad_addresses_and_bounds_are_refused() {
        let mut t = Tables::new(1);
        assert!(matches!(
            t.apply(&TableUpdate::AddLocalHomeAddress {
                hoa: Ipv6Addr::UNSPECIFIED
            }),
            Err(TableError::BadAddress { .. })
        ));
        assert!(
            t.apply(&TableUpdate::AddHomeTunnel {
                hoa: a("2001:db8::1"),
                home_agent: a("ff02::1"),
                coa: a("2001:db8::2"),
            })
            .is_err()
        );
        t.apply(&TableUpdate::AddLocalAddress {
            addr: a("2001:db8::1"),
        })
        .unwrap();
        t.apply(&TableUpdate::AddLocalAddress {
            addr: a("2001:db8::1"),
        })
        .unwrap();
        assert_eq!(
            t.apply(&TableUpdate::AddLocalAddress {
                addr: a("2001:db8::2")
            }),
            Err(TableError::Full {
                table: "local addresses",
                max: 1
            })
        );
    }

    #[test]
    fn updates_serialize() {
        let u = TableUpdate::AddHomeTunnel {
            hoa: a("2001:db8::1"),
            home_agent: a("2001:db8::2"),
            coa: a("2001:db8::3"),
        };
        let j = serde_json::to_string(&u).unwrap();
        assert!(j.contains("\"op\":\"add_home_tunnel\""), "{j}");
        assert_eq!(serde_json::from_str::<TableUpdate>(&j).unwrap(), u);
    }
}
