//! Member forwarding for client handoff (DESIGN.md 5): what a member's
//! datapath does with the packets of one client `C` to the anycast
//! address `X` while C's connections move between members.
//!
//! | mode | packets of C to X (after RH2 strip or decapsulation) |
//! |---|---|
//! | [`ClientMode::Hold`] | queued (bounded per client; overflow counted), never given to the kernel |
//! | [`ClientMode::Forward`] | encapsulated (RFC 2473) from our care-of address to the member's, inner hop limit decremented |
//! | [`ClientMode::Deliver`] | written into the TUN as without an entry, but forwarded packets from members are still accepted |
//!
//! The donor forwards (its kernel has no live socket for C any more: it
//! would answer with RST or ACK); the acceptor holds what arrives until
//! its restored sockets are live, then [`TableUpdate::ReleaseClient`]
//! writes the queue into the TUN in arrival order. A donor that rolls
//! back holds, thaws its sockets, then releases into its own kernel.
//!
//! IPv6-in-IPv6 from a group member's care-of address
//! ([`TableUpdate::AddGroupMember`]) is accepted only toward one of our
//! local addresses, with a plain inner packet (no RH2, HAO, Mobility
//! Header or further tunnel) from a client that has an entry here, to a
//! local home address; anything else is dropped as
//! [`DropReason::MemberTunnelRefused`].
//!
//! Queued packets are copies (the one place the datapath allocates per
//! packet, and only while a client is held): [`MemberTable::hold`] is
//! called by the engine after [`Verdict::Hold`](super::Verdict::Hold).
//!
//! [`TableUpdate::ReleaseClient`]: super::TableUpdate::ReleaseClient
//! [`TableUpdate::AddGroupMember`]: super::TableUpdate::AddGroupMember
//! [`DropReason::MemberTunnelRefused`]: super::DropReason::MemberTunnelRefused

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::Ipv6Addr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::stats::{Action, Counters, DropReason};
use super::tables::{TableError, TableUpdate, TunnelEnds};
use crate::wire::{Ipv6Packet, TunnelParams, ip6ip6, is_valid_home_address};

/// Bounds of one client's hold queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HoldLimit {
    /// Most packets queued.
    pub packets: u32,
    /// Most octets queued.
    pub bytes: u32,
}

impl Default for HoldLimit {
    /// 4096 packets, 8 MiB: a few seconds of a fast TCP flow.
    fn default() -> Self {
        Self {
            packets: 4096,
            bytes: 8 << 20,
        }
    }
}

/// What happens to a client's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum ClientMode {
    /// Queue them.
    Hold,
    /// Encapsulate them from `ends.local` (our care-of address) to
    /// `ends.remote` (the member now serving the client).
    Forward(TunnelEnds),
    /// Deliver them to the kernel (and accept them forwarded by members).
    Deliver,
}

/// Counters and state of one client entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientStatus {
    /// Current mode.
    pub mode: ClientMode,
    /// Packets in the hold queue.
    pub queued_packets: u32,
    /// Octets in the hold queue.
    pub queued_bytes: u32,
    /// Packets ever queued.
    pub held: u64,
    /// Packets forwarded (including flushed queue packets).
    pub forwarded: u64,
    /// Packets released into the TUN from the queue.
    pub released: u64,
    /// Packets refused because the queue was full.
    pub overflow: u64,
    /// Milliseconds since a packet was last forwarded, at query time
    /// (`None`: never); a donor stops forwarding once this grows.
    pub forward_idle_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct ClientEntry {
    mode: ClientMode,
    limit: HoldLimit,
    queue: VecDeque<Box<[u8]>>,
    queued_bytes: usize,
    held: u64,
    forwarded: u64,
    released: u64,
    overflow: u64,
    last_forwarded: Option<Instant>,
}

impl ClientEntry {
    fn new(mode: ClientMode, limit: HoldLimit) -> Self {
        Self {
            mode,
            limit,
            queue: VecDeque::new(),
            queued_bytes: 0,
            held: 0,
            forwarded: 0,
            released: 0,
            overflow: 0,
            last_forwarded: None,
        }
    }
}

/// A packet the engine must send after a table update (a released or
/// flushed queue), already in its final form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberOutput {
    /// Write into the TUN (released to the kernel).
    Tun(Vec<u8>),
    /// Send through the raw socket (encapsulated to a member).
    Wire(Vec<u8>),
}

/// The member table: group members' care-of addresses and per-client
/// entries keyed by (home address, client).
#[derive(Debug, Clone, Default)]
pub struct MemberTable {
    members: HashSet<Ipv6Addr>,
    clients: HashMap<(Ipv6Addr, Ipv6Addr), ClientEntry>,
    output: VecDeque<MemberOutput>,
    max_entries: usize,
    tunnel_hop_limit: u8,
}

/// Why a packet from a member's tunnel was refused, or what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberTunnel {
    /// Not from a group member: the other tunnel rules apply.
    NotMember,
    /// From a member but not acceptable.
    Refused,
    /// Accepted: process the inner packet.
    Accepted,
}

fn decrement_hop_limit(packet: &mut [u8]) -> bool {
    let mut ip = Ipv6Packet::new_unchecked(packet);
    let hl = ip.hop_limit();
    if hl <= 1 {
        return false;
    }
    ip.set_hop_limit(hl - 1);
    true
}

impl MemberTable {
    /// An empty table with at most `max_entries` clients and as many
    /// members; forwarded packets get outer hop limit `tunnel_hop_limit`.
    pub fn new(max_entries: usize, tunnel_hop_limit: u8) -> Self {
        Self {
            max_entries,
            tunnel_hop_limit,
            ..Self::default()
        }
    }

    /// `coa` is a group member's care-of address.
    pub fn is_member(&self, coa: &Ipv6Addr) -> bool {
        self.members.contains(coa)
    }

    /// Number of group members and client entries.
    pub fn sizes(&self) -> (usize, usize) {
        (self.members.len(), self.clients.len())
    }

    /// True if any client has an entry (the per-packet check is skipped
    /// otherwise).
    pub fn has_clients(&self) -> bool {
        !self.clients.is_empty()
    }

    /// The mode for packets from `client` to `hoa`, if it has an entry.
    pub fn mode(&self, hoa: &Ipv6Addr, client: &Ipv6Addr) -> Option<ClientMode> {
        self.clients.get(&(*hoa, *client)).map(|e| e.mode)
    }

    /// Status of one client entry at `now`.
    pub fn status(&self, hoa: &Ipv6Addr, client: &Ipv6Addr, now: Instant) -> Option<ClientStatus> {
        self.clients.get(&(*hoa, *client)).map(|e| ClientStatus {
            mode: e.mode,
            queued_packets: u32::try_from(e.queue.len()).unwrap_or(u32::MAX),
            queued_bytes: u32::try_from(e.queued_bytes).unwrap_or(u32::MAX),
            held: e.held,
            forwarded: e.forwarded,
            released: e.released,
            overflow: e.overflow,
            forward_idle_ms: e.last_forwarded.map(|t| {
                u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX)
            }),
        })
    }

    /// Adds a group member.
    pub(crate) fn add_member(&mut self, coa: Ipv6Addr) -> Result<(), TableError> {
        if self.members.len() >= self.max_entries && !self.members.contains(&coa) {
            return Err(TableError::Full {
                table: "group members",
                max: self.max_entries,
            });
        }
        self.members.insert(coa);
        Ok(())
    }

    /// Removes a group member.
    pub(crate) fn remove_member(&mut self, coa: &Ipv6Addr) {
        self.members.remove(coa);
    }

    fn entry(
        clients: &mut HashMap<(Ipv6Addr, Ipv6Addr), ClientEntry>,
        max: usize,
        hoa: Ipv6Addr,
        client: Ipv6Addr,
        mode: ClientMode,
    ) -> Result<&mut ClientEntry, TableError> {
        let full = clients.len() >= max;
        match clients.entry((hoa, client)) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                if full {
                    return Err(TableError::Full {
                        table: "member clients",
                        max,
                    });
                }
                Ok(v.insert(ClientEntry::new(mode, HoldLimit::default())))
            }
        }
    }

    /// Holds the client's packets from now on (keeps what is queued).
    pub(crate) fn set_hold(
        &mut self,
        hoa: Ipv6Addr,
        client: Ipv6Addr,
        limit: HoldLimit,
    ) -> Result<(), TableError> {
        let e = Self::entry(
            &mut self.clients,
            self.max_entries,
            hoa,
            client,
            ClientMode::Hold,
        )?;
        e.mode = ClientMode::Hold;
        e.limit = limit;
        Ok(())
    }

    /// Forwards the client's packets to `ends.remote`; what was queued is
    /// flushed there first, in order.
    pub(crate) fn set_forward(
        &mut self,
        hoa: Ipv6Addr,
        client: Ipv6Addr,
        ends: TunnelEnds,
        counters: &mut Counters,
        now: Instant,
    ) -> Result<(), TableError> {
        let hop_limit = self.tunnel_hop_limit;
        let e = Self::entry(
            &mut self.clients,
            self.max_entries,
            hoa,
            client,
            ClientMode::Forward(ends),
        )?;
        e.mode = ClientMode::Forward(ends);
        let params = TunnelParams {
            hop_limit,
            ..TunnelParams::new(ends.local, ends.remote)
        };
        while let Some(mut p) = e.queue.pop_front() {
            e.queued_bytes = e.queued_bytes.saturating_sub(p.len());
            if !decrement_hop_limit(&mut p) {
                counters.drop(DropReason::HopLimit, p.len());
                continue;
            }
            match ip6ip6::encapsulate_vec(&p, &params) {
                Ok(out) => {
                    counters.action(Action::MemberForwarded, out.len());
                    e.forwarded = e.forwarded.wrapping_add(1);
                    e.last_forwarded = Some(now);
                    self.output.push_back(MemberOutput::Wire(out));
                }
                Err(err) => {
                    counters.wire_error(&err);
                    counters.drop(DropReason::RewriteFailed, p.len());
                }
            }
        }
        Ok(())
    }

    /// Releases the queue into the TUN, in order, and delivers from now on.
    pub(crate) fn release(
        &mut self,
        hoa: Ipv6Addr,
        client: Ipv6Addr,
        counters: &mut Counters,
    ) -> Result<(), TableError> {
        let e = Self::entry(
            &mut self.clients,
            self.max_entries,
            hoa,
            client,
            ClientMode::Deliver,
        )?;
        e.mode = ClientMode::Deliver;
        while let Some(p) = e.queue.pop_front() {
            e.queued_bytes = e.queued_bytes.saturating_sub(p.len());
            e.released = e.released.wrapping_add(1);
            counters.action(Action::MemberReleased, p.len());
            self.output.push_back(MemberOutput::Tun(p.into_vec()));
        }
        Ok(())
    }

    /// Removes the client's entry; anything still queued is dropped and
    /// counted.
    pub(crate) fn remove(&mut self, hoa: Ipv6Addr, client: Ipv6Addr, counters: &mut Counters) {
        if let Some(e) = self.clients.remove(&(hoa, client)) {
            for p in e.queue {
                counters.drop(DropReason::HoldDiscarded, p.len());
            }
        }
    }

    /// Removes everything (queued packets counted as discarded).
    pub(crate) fn clear(&mut self, counters: &mut Counters) {
        for (_, e) in self.clients.drain() {
            for p in e.queue {
                counters.drop(DropReason::HoldDiscarded, p.len());
            }
        }
        self.members.clear();
    }

    /// Queues a copy of `packet` for (`hoa`, `client`); a full queue (or a
    /// missing entry) drops it with a count. Returns whether it was queued.
    pub fn hold(
        &mut self,
        hoa: Ipv6Addr,
        client: Ipv6Addr,
        packet: &[u8],
        counters: &mut Counters,
    ) -> bool {
        let Some(e) = self.clients.get_mut(&(hoa, client)) else {
            counters.drop(DropReason::HoldOverflow, packet.len());
            return false;
        };
        let fits = e.queue.len() < e.limit.packets as usize
            && e.queued_bytes.saturating_add(packet.len()) <= e.limit.bytes as usize;
        if !fits {
            e.overflow = e.overflow.wrapping_add(1);
            counters.drop(DropReason::HoldOverflow, packet.len());
            return false;
        }
        e.queue.push_back(packet.into());
        e.queued_bytes = e.queued_bytes.saturating_add(packet.len());
        e.held = e.held.wrapping_add(1);
        counters.action(Action::MemberHeld, packet.len());
        true
    }

    /// Records a packet forwarded on the hot path.
    pub(crate) fn note_forwarded(&mut self, hoa: Ipv6Addr, client: Ipv6Addr, now: Instant) {
        if let Some(e) = self.clients.get_mut(&(hoa, client)) {
            e.forwarded = e.forwarded.wrapping_add(1);
            e.last_forwarded = Some(now);
        }
    }

    /// Whether IPv6-in-IPv6 from `outer_src` to `outer_dst` carrying
    /// `inner_src` -> `inner_dst` is a member's forwarded client packet
    /// (the caller checks that `outer_dst` is ours, `inner_dst` a local home
    /// address, and that the inner packet is plain).
    pub(crate) fn tunnel(
        &self,
        outer_src: &Ipv6Addr,
        inner_src: &Ipv6Addr,
        inner_dst: &Ipv6Addr,
    ) -> MemberTunnel {
        if !self.members.contains(outer_src) {
            return MemberTunnel::NotMember;
        }
        if self.clients.contains_key(&(*inner_dst, *inner_src)) {
            MemberTunnel::Accepted
        } else {
            MemberTunnel::Refused
        }
    }

    /// Takes the packets released or flushed by the last updates.
    pub fn take_output(&mut self) -> Option<MemberOutput> {
        self.output.pop_front()
    }
}

fn valid(role: &'static str, addr: Ipv6Addr) -> Result<Ipv6Addr, TableError> {
    if is_valid_home_address(&addr) {
        Ok(addr)
    } else {
        Err(TableError::BadAddress { role, addr })
    }
}

/// Applies `u` if it is a member update (returns `Ok(true)`); `Clear`
/// empties the member table too but returns `Ok(false)` so the other
/// tables are cleared as well.
pub(crate) fn apply(
    t: &mut MemberTable,
    counters: &mut Counters,
    u: &TableUpdate,
    now: Instant,
) -> Result<bool, TableError> {
    match *u {
        TableUpdate::AddGroupMember { coa } => t.add_member(valid("member address", coa)?)?,
        TableUpdate::RemoveGroupMember { coa } => t.remove_member(&coa),
        TableUpdate::HoldClient { hoa, client, limit } => t.set_hold(
            valid("home address", hoa)?,
            valid("client address", client)?,
            limit,
        )?,
        TableUpdate::ForwardClient {
            hoa,
            client,
            local,
            member,
        } => {
            let ends = TunnelEnds {
                local: valid("care-of address", local)?,
                remote: valid("member address", member)?,
            };
            t.set_forward(
                valid("home address", hoa)?,
                valid("client address", client)?,
                ends,
                counters,
                now,
            )?;
        }
        TableUpdate::ReleaseClient { hoa, client } => t.release(
            valid("home address", hoa)?,
            valid("client address", client)?,
            counters,
        )?,
        TableUpdate::RemoveClient { hoa, client } => t.remove(hoa, client, counters),
        TableUpdate::Clear => {
            t.clear(counters);
            return Ok(false);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn pkt(src: Ipv6Addr, dst: Ipv6Addr, n: u8) -> Vec<u8> {
        let mut v = vec![0u8; 41];
        crate::wire::Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: 59,
            payload_len: 1,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit_into(&mut v)
        .unwrap();
        v[40] = n;
        v
    }

    #[test]
    fn hold_is_bounded_and_released_in_order() {
        let (x, c) = (a("2001:db8:ff::1"), a("2001:db8::c"));
        let mut t = MemberTable::new(16, 64);
        let mut counters = Counters::default();
        assert!(!t.hold(x, c, &pkt(c, x, 0), &mut counters), "no entry");
        t.set_hold(
            x,
            c,
            HoldLimit {
                packets: 3,
                bytes: 1000,
            },
        )
        .unwrap();
        for n in 0..5 {
            t.hold(x, c, &pkt(c, x, n), &mut counters);
        }
        let s = t.status(&x, &c, Instant::now()).unwrap();
        assert_eq!((s.queued_packets, s.held, s.overflow), (3, 3, 2));
        assert_eq!(counters.drop_count(DropReason::HoldOverflow), 3);
        t.release(x, c, &mut counters).unwrap();
        let mut order = Vec::new();
        while let Some(MemberOutput::Tun(p)) = t.take_output() {
            order.push(p[40]);
        }
        assert_eq!(order, vec![0, 1, 2]);
        assert_eq!(t.mode(&x, &c), Some(ClientMode::Deliver));
    }

    #[test]
    fn forward_flushes_the_queue_encapsulated() {
        let (x, c) = (a("2001:db8:ff::1"), a("2001:db8::c"));
        let ends = TunnelEnds {
            local: a("2001:db8:2::1"),
            remote: a("2001:db8:3::1"),
        };
        let mut t = MemberTable::new(16, 64);
        let mut counters = Counters::default();
        t.set_hold(x, c, HoldLimit::default()).unwrap();
        t.hold(x, c, &pkt(c, x, 7), &mut counters);
        t.hold(x, c, &pkt(c, x, 8), &mut counters);
        t.set_forward(x, c, ends, &mut counters, Instant::now())
            .unwrap();
        let mut seen = Vec::new();
        while let Some(MemberOutput::Wire(p)) = t.take_output() {
            let d = ip6ip6::decapsulate(&p).unwrap();
            assert_eq!((d.outer_src, d.outer_dst), (ends.local, ends.remote));
            assert_eq!(d.inner_packet().hop_limit(), 63);
            seen.push(d.inner[40]);
        }
        assert_eq!(seen, vec![7, 8]);
        t.set_hold(x, c, HoldLimit::default()).unwrap();
        t.hold(x, c, &pkt(c, x, 9), &mut counters);
        t.remove(x, c, &mut counters);
        assert_eq!(counters.drop_count(DropReason::HoldDiscarded), 1);
        assert!(!t.has_clients());
    }

    #[test]
    fn member_tunnels_need_a_member_and_an_entry() {
        let (x, c, m) = (a("2001:db8:ff::1"), a("2001:db8::c"), a("2001:db8:3::1"));
        let mut t = MemberTable::new(1, 64);
        assert_eq!(t.tunnel(&m, &c, &x), MemberTunnel::NotMember);
        t.add_member(m).unwrap();
        assert!(t.add_member(a("2001:db8:4::1")).is_err(), "bounded");
        assert_eq!(t.tunnel(&m, &c, &x), MemberTunnel::Refused);
        t.set_hold(x, c, HoldLimit::default()).unwrap();
        assert_eq!(t.tunnel(&m, &c, &x), MemberTunnel::Accepted);
        assert!(
            t.set_hold(x, a("2001:db8::d"), HoldLimit::default())
                .is_err()
        );
    }
}
