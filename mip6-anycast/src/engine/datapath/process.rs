//! The per-packet work, without I/O: [`Datapath::process`] classifies a
//! packet read from the TUN against the tables, rewrites it in place (a
//! buffer with headroom; `wire::edit` moves only headers) and says where it
//! goes. It never allocates and never panics, whatever the bytes.
//!
//! Inbound (steered in by tc: the first next header is 43, 60, 135 or 41):
//! 1. IPv6-in-IPv6: accepted only from a registered tunnel end point
//!    ([`classify::accept_tunnel`]), decapsulated, and the inner packet goes
//!    through these steps again (one level: a tunnel inside is dropped).
//! 2. A Type 2 Routing Header must carry a local home address and arrive at
//!    a local (care-of) address (RFC 6275 11.3.3).
//! 3. A Mobility Header message for one of our addresses is punted, whole
//!    and unmodified (RH2 and HAO kept, for authentication). One for a
//!    registered home address that is not ours is relayed through its home
//!    tunnel (home agent, RFC 6275 10.4.6); one that came out of a tunnel
//!    for someone else is handed to the kernel to forward.
//! 4. The RH2 is stripped; a Home Address option must match a
//!    correspondent binding (home address and care-of address = source,
//!    RFC 6275 9.3.1) and is stripped, else the packet is dropped and
//!    reported ([`PuntInfo::HaoWithoutBinding`]).
//! 5. The result is written into the TUN (delivered or forwarded by the
//!    kernel), or, at a home agent, a packet for a registered home address
//!    goes straight into that home tunnel (hop limit decremented).
//! 6. Steered in without any Mobile IPv6 header (another routing type,
//!    other destination options): handed back to the kernel unchanged —
//!    never through the outbound tables, so a packet from outside that
//!    claims one of our home addresses is not tunnelled on its behalf.
//!
//! Outbound (routed into the TUN by the steering rules): see
//! [`classify::outbound`]: home tunnel, RH2, HAO, reverse tunnel, pass
//! through, or drop.
//!
//! Nothing is written into the TUN that the steering would route straight
//! back in ([`classify::would_loop`]).

use std::net::Ipv6Addr;
use std::time::Instant;

use super::classify::{self, Origin, Outbound, TunnelOuter, TunnelRule};
use super::member::{ClientMode, ClientStatus, MemberOutput, MemberTable, MemberTunnel};
use super::proxy::{ProxyTable, ProxyUsage};
use super::stats::{Action, Counters, DropReason};
use super::tables::{BindingKey, TableError, TableUpdate, Tables, TunnelEnds};
use crate::wire::{self, Bounds, ExtChain, Ipv6Packet, TunnelParams, edit};

/// Headroom the engine keeps in front of every packet it reads: room for
/// an RH2 or HAO (24) and an outer header (40) at once, with margin.
pub const HEADROOM: usize = edit::DEFAULT_HEADROOM;

/// Settings of the pure datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatapathConfig {
    /// Hop limit of the outer header of packets we encapsulate.
    pub tunnel_hop_limit: u8,
    /// Bound on entries per table.
    pub max_entries: usize,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        Self {
            tunnel_hop_limit: 64,
            max_entries: super::tables::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// What was added to an outgoing packet (to recover the original for an
/// ICMPv6 error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Sent as it came.
    None,
    /// A Type 2 Routing Header was inserted.
    Rh2,
    /// A Home Address option was inserted.
    Hao,
    /// An outer IPv6 header was prepended.
    Tunnel,
    /// Addresses and ports were translated (PIAS join proxy): the original
    /// is not recovered.
    Translated,
}

/// Something for the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PuntInfo {
    /// A Mobility Header message for one of our addresses: the packet at
    /// `bounds` (after decapsulation, otherwise unmodified).
    Mobility {
        /// Where the packet is in the buffer.
        bounds: Bounds,
        /// Its MH type.
        mh_type: u8,
        /// The accepted tunnel it arrived in, if any.
        tunnel: Option<TunnelOuter>,
    },
    /// A packet with a Home Address option and no matching binding was
    /// dropped (RFC 6275 9.3.1); the control plane may answer with a
    /// Binding Error, status 1 (9.3.3).
    HaoWithoutBinding {
        /// Source of the packet (the care-of address used).
        src: Ipv6Addr,
        /// Its destination (our address).
        dst: Ipv6Addr,
        /// The home address in the option.
        hoa: Ipv6Addr,
    },
    /// A packet for the PIAS proxy tables with no entry (a flow's first
    /// packet, a join, an unknown reply): the packet at `bounds`,
    /// decapsulated if it came from a proxy peer.
    Proxy {
        /// Where the packet is in the buffer.
        bounds: Bounds,
        /// The peer tunnel it arrived in, if any.
        tunnel: Option<TunnelOuter>,
    },
}

/// Where a processed packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write `buf[bounds]` into the TUN.
    Tun(Bounds),
    /// Send `buf[bounds]` through the raw socket.
    Wire {
        /// Where the packet is.
        bounds: Bounds,
        /// What was added to it.
        rewrite: Rewrite,
    },
    /// Hand to the control plane.
    Punt(PuntInfo),
    /// Dropped (already counted).
    Drop(DropReason),
    /// A client's packet to be queued (member forwarding, see
    /// [`super::member`]): the engine calls [`Datapath::hold_packet`].
    Hold {
        /// Where the packet is.
        bounds: Bounds,
        /// Our home address it is for.
        hoa: Ipv6Addr,
        /// The client it is from.
        client: Ipv6Addr,
    },
}

/// The tables and counters, and the per-packet processing.
#[derive(Debug, Clone)]
pub struct Datapath {
    tables: Tables,
    pub(super) counters: Counters,
    pub(super) cfg: DatapathConfig,
    members: MemberTable,
    pub(super) proxy: ProxyTable,
    /// The packet being processed has a partial (offloaded) checksum.
    pub(super) partial_csum: bool,
}

fn addrs(buf: &[u8], b: Bounds) -> (Ipv6Addr, Ipv6Addr) {
    let ip = Ipv6Packet::new_unchecked(&buf[b.start..]);
    (ip.src_addr(), ip.dst_addr())
}

impl Datapath {
    /// Empty tables.
    pub fn new(cfg: DatapathConfig) -> Self {
        Self {
            tables: Tables::new(cfg.max_entries),
            counters: Counters::default(),
            members: MemberTable::new(cfg.max_entries, cfg.tunnel_hop_limit),
            proxy: ProxyTable::new(cfg.max_entries),
            partial_csum: false,
            cfg,
        }
    }

    /// The tables.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The counters, for I/O results counted by the engine.
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Applies a table update.
    pub fn apply(&mut self, u: &TableUpdate) -> Result<(), TableError> {
        if super::member::apply(&mut self.members, &mut self.counters, u, Instant::now())? {
            return Ok(());
        }
        if self.proxy.apply(u)? {
            return Ok(());
        }
        self.tables.apply(u)
    }

    /// The PIAS proxy tables.
    pub fn proxy(&self) -> &ProxyTable {
        &self.proxy
    }

    /// The proxy flow entries used since the last call (see
    /// [`super::proxy`]).
    pub fn take_proxy_usage(&mut self) -> Vec<ProxyUsage> {
        self.proxy.take_touched()
    }

    /// True if a packet from `src` to `dst` written into the TUN would be
    /// routed straight back into it (Mobile IPv6 steering or a proxy
    /// prefix or NAT address).
    pub fn would_loop(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        classify::would_loop(&self.tables, src, dst) || self.proxy.steers(dst)
    }

    /// The member forwarding table.
    pub fn members(&self) -> &MemberTable {
        &self.members
    }

    /// Status of a client's member-forwarding entry at `now`.
    pub fn member_status(
        &self,
        hoa: &Ipv6Addr,
        client: &Ipv6Addr,
        now: Instant,
    ) -> Option<ClientStatus> {
        self.members.status(hoa, client, now)
    }

    /// Queues a copy of `packet` after [`Verdict::Hold`]; returns whether it
    /// fit (an overflow is counted).
    pub fn hold_packet(&mut self, packet: &[u8], hoa: Ipv6Addr, client: Ipv6Addr) -> bool {
        self.members.hold(hoa, client, packet, &mut self.counters)
    }

    /// The next packet a member update released or flushed.
    pub fn take_member_output(&mut self) -> Option<MemberOutput> {
        self.members.take_output()
    }

    /// Like [`Datapath::process`] for a GSO super-packet that stands for
    /// `segments` packets on the wire: every counter and binding usage
    /// counts it that many times.
    pub fn process_segments(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        now: Instant,
        segments: u64,
    ) -> Verdict {
        self.process_offloaded(buf, b, now, segments, false)
    }

    /// Like [`Datapath::process_segments`]; `partial_csum`: the transport
    /// checksum is partial (offloaded), which address translation must
    /// respect.
    pub fn process_offloaded(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        now: Instant,
        segments: u64,
        partial_csum: bool,
    ) -> Verdict {
        self.counters.weight = segments.max(1);
        self.partial_csum = partial_csum;
        let v = self.process(buf, b, now);
        self.counters.weight = 1;
        self.partial_csum = false;
        v
    }

    /// Processes the packet at `b` in `buf` (with headroom in front, see
    /// [`HEADROOM`]). `now` stamps binding usage. Counts what it does.
    pub fn process(&mut self, buf: &mut [u8], b: Bounds, now: Instant) -> Verdict {
        self.counters.received.add_n(b.len, self.counters.weight);
        let Some(pkt) = b
            .start
            .checked_add(b.len)
            .and_then(|end| buf.get(b.start..end))
        else {
            return self.malformed(
                &wire::Error::BadBounds {
                    start: b.start,
                    len: b.len,
                    buf_len: buf.len(),
                },
                b.len,
            );
        };
        let chain = match ExtChain::walk(pkt) {
            Ok(c) => c,
            Err(e) => return self.malformed(&e, b.len),
        };
        // `walk` checked the fixed header, so octet 6 exists.
        let origin = Origin::of(pkt[6]);
        let b = Bounds {
            start: b.start,
            len: chain.total_len(),
        };
        match origin {
            Origin::Ingress => self.inbound(buf, b, &chain, None, now),
            Origin::Routed => {
                if !self.proxy.is_empty()
                    && let Some(v) = self.proxy_routed(buf, b, now)
                {
                    return v;
                }
                let (src, dst) = addrs(buf, b);
                let d = classify::outbound(&self.tables, &src, &dst, chain.mh_offset().is_some());
                self.outbound(buf, b, d, now)
            }
        }
    }

    pub(super) fn dropped(&mut self, r: DropReason, len: usize) -> Verdict {
        self.counters.drop(r, len);
        Verdict::Drop(r)
    }

    fn malformed(&mut self, e: &wire::Error, len: usize) -> Verdict {
        self.counters.wire_error(e);
        self.dropped(DropReason::Malformed, len)
    }

    pub(super) fn rewrite_failed(&mut self, e: &wire::Error, len: usize) -> Verdict {
        self.counters.wire_error(e);
        let r = match e {
            wire::Error::PayloadTooLong(_) => DropReason::TooBig,
            _ => DropReason::RewriteFailed,
        };
        self.dropped(r, len)
    }

    fn outbound(&mut self, buf: &mut [u8], b: Bounds, d: Outbound, now: Instant) -> Verdict {
        match d {
            Outbound::HomeTunnel(hoa, ends) => self.encapsulate(
                buf,
                b,
                ends,
                BindingKey::HomeTunnel { hoa },
                Action::HomeTunnelEncapsulated,
                now,
            ),
            Outbound::ReverseTunnel(hoa, ends) => self.encapsulate(
                buf,
                b,
                ends,
                BindingKey::ReverseTunnel { hoa },
                Action::ReverseTunnelEncapsulated,
                now,
            ),
            Outbound::Rh2 { key, coa } => match edit::insert_rh2(buf, b.start, b.len, &coa) {
                Ok(nb) => self.sent(key, Action::Rh2Inserted, nb, Rewrite::Rh2, now),
                Err(e) => self.rewrite_failed(&e, b.len),
            },
            Outbound::Hao { key, coa } => match edit::insert_hao(buf, b.start, b.len, &coa) {
                Ok(nb) => self.sent(key, Action::HaoInserted, nb, Rewrite::Hao, now),
                Err(e) => self.rewrite_failed(&e, b.len),
            },
            Outbound::PassThrough => {
                self.counters.action(Action::PassedThrough, b.len);
                Verdict::Wire {
                    bounds: b,
                    rewrite: Rewrite::None,
                }
            }
            Outbound::Drop(r) => self.dropped(r, b.len),
        }
    }

    fn sent(
        &mut self,
        key: BindingKey,
        action: Action,
        b: Bounds,
        rewrite: Rewrite,
        now: Instant,
    ) -> Verdict {
        self.tables.hit(key, b.len, self.counters.weight, now);
        self.counters.action(action, b.len);
        Verdict::Wire { bounds: b, rewrite }
    }

    fn encapsulate(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        ends: TunnelEnds,
        key: BindingKey,
        action: Action,
        now: Instant,
    ) -> Verdict {
        let params = TunnelParams {
            hop_limit: self.cfg.tunnel_hop_limit,
            ..TunnelParams::new(ends.local, ends.remote)
        };
        match edit::encapsulate(buf, b.start, b.len, &params) {
            Ok(nb) => self.sent(key, action, nb, Rewrite::Tunnel, now),
            Err(e) => self.rewrite_failed(&e, b.len),
        }
    }

    /// Forwards a packet the kernel has not seen into a home tunnel: the
    /// hop limit is decremented first (RFC 8200 3).
    fn relay(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        hoa: Ipv6Addr,
        ends: TunnelEnds,
        mobility: bool,
        now: Instant,
    ) -> Verdict {
        let mut ip = Ipv6Packet::new_unchecked(&mut buf[b.start..]);
        let hl = ip.hop_limit();
        if hl <= 1 {
            return self.dropped(DropReason::HopLimit, b.len);
        }
        ip.set_hop_limit(hl - 1);
        if mobility {
            self.counters.action(Action::MobilityRelayed, b.len);
        }
        self.encapsulate(
            buf,
            b,
            ends,
            BindingKey::HomeTunnel { hoa },
            Action::HomeTunnelEncapsulated,
            now,
        )
    }

    /// Writes into the TUN unless that would loop; a client in the member
    /// table is held or forwarded instead.
    fn deliver(&mut self, buf: &mut [u8], b: Bounds, now: Instant) -> Verdict {
        let (src, dst) = addrs(buf, b);
        if self.members.has_clients()
            && let Some(v) = self.member_client(buf, b, src, dst, now)
        {
            return v;
        }
        if self.would_loop(&src, &dst) {
            return self.dropped(DropReason::Loop, b.len);
        }
        Verdict::Tun(b)
    }

    fn inbound(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        chain: &ExtChain,
        outer: Option<TunnelOuter>,
        now: Instant,
    ) -> Verdict {
        let (src, dst) = addrs(buf, b);
        let (rh2, hao) = (chain.rh2(), chain.hao());
        if chain.inner_offset().is_some() {
            if outer.is_some() {
                return self.dropped(DropReason::NestedTunnel, b.len);
            }
            return self.decapsulate(buf, b, now);
        }
        if chain.is_non_first_fragment() && rh2.is_none() && hao.is_none() {
            return self.dropped(DropReason::Fragment, b.len);
        }
        let final_dst = rh2.map_or(dst, |r| r.home_address);
        if let Some(r) = rh2 {
            if !self.tables.is_local_home(&r.home_address) {
                return self.dropped(DropReason::UnknownHomeAddress, b.len);
            }
            if !self.tables.is_local(&dst) {
                return self.dropped(DropReason::NotOurs, b.len);
            }
        }
        if chain.mh_offset().is_some() {
            return self.mobility(buf, b, chain, final_dst, outer, now);
        }
        let mut b = b;
        let mut rewritten = false;
        if rh2.is_some() {
            match edit::strip_rh2(buf, b.start, b.len) {
                Ok(s) => {
                    b = s.bounds;
                    self.counters.action(Action::Rh2Stripped, b.len);
                    rewritten = true;
                }
                Err(e) => return self.rewrite_failed(&e, b.len),
            }
        }
        if let Some(h) = hao {
            let hoa = h.home_address;
            if !self.tables.is_ours(&final_dst) {
                return self.dropped(DropReason::NotOurs, b.len);
            }
            if self.tables.correspondent_binding(&final_dst, &hoa) != Some(src) {
                self.counters.drop(DropReason::HaoWithoutBinding, b.len);
                self.counters
                    .action(Action::HaoWithoutBindingReported, b.len);
                return Verdict::Punt(PuntInfo::HaoWithoutBinding {
                    src,
                    dst: final_dst,
                    hoa,
                });
            }
            match edit::strip_hao(buf, b.start, b.len) {
                Ok(s) => {
                    b = s.bounds;
                    let key = BindingKey::Correspondent { cn: final_dst, hoa };
                    self.tables.hit_in(key, b.len, self.counters.weight, now);
                    self.counters.action(Action::HaoStripped, b.len);
                    rewritten = true;
                }
                Err(e) => return self.rewrite_failed(&e, b.len),
            }
        }
        if rewritten {
            return self.deliver(buf, b, now);
        }
        // Plain now: decapsulated, or steered in only for other extension
        // headers. A home agent forwards packets for a registered home
        // address into its tunnel.
        if let Some(ends) = self.tables.home_tunnel(&dst) {
            return self.relay(buf, b, dst, ends, false, now);
        }
        if outer.is_none() {
            // Steered in for another routing type or other destination
            // options: the kernel's business. (Never the outbound tables:
            // a packet from outside claiming one of our home addresses as
            // source must not be tunnelled on our behalf.)
            self.counters.action(Action::ReturnedToKernel, b.len);
        }
        self.deliver(buf, b, now)
    }

    fn mobility(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        chain: &ExtChain,
        final_dst: Ipv6Addr,
        outer: Option<TunnelOuter>,
        now: Instant,
    ) -> Verdict {
        if self.tables.is_ours(&final_dst) {
            return match classify::check_mobility_header(&buf[b.range()], chain) {
                Ok(mh_type) => {
                    self.counters.action(Action::MobilityPunted, b.len);
                    Verdict::Punt(PuntInfo::Mobility {
                        bounds: b,
                        mh_type,
                        tunnel: outer,
                    })
                }
                Err(e) => self.malformed(&e, b.len),
            };
        }
        if chain.rh2().is_none() && chain.hao().is_none() {
            // RFC 6275 10.4.6: a home agent relays Mobility Header
            // messages for a registered home address (e.g. a HoT).
            if let Some(ends) = self.tables.home_tunnel(&final_dst) {
                return self.relay(buf, b, final_dst, ends, true, now);
            }
            // Decapsulated, for someone else (a HoTI reverse-tunnelled to
            // the home agent): the kernel forwards it.
            if outer.is_some() {
                return self.deliver(buf, b, now);
            }
        }
        self.dropped(DropReason::NotOurs, b.len)
    }

    fn decapsulate(&mut self, buf: &mut [u8], b: Bounds, now: Instant) -> Verdict {
        let d = match edit::decapsulate(buf, b.start, b.len) {
            Ok(d) => d,
            Err(e) => return self.malformed(&e, b.len),
        };
        let (inner_src, inner_dst) = addrs(buf, d.bounds);
        let outer = TunnelOuter {
            src: d.outer_src,
            dst: d.outer_dst,
        };
        match self.members.tunnel(&outer.src, &inner_src, &inner_dst) {
            MemberTunnel::NotMember => {}
            t => return self.member_decapsulated(buf, d.bounds, &outer, t, now),
        }
        if !self.proxy.is_empty()
            && let Some(v) = self.proxy_decapsulated(buf, d.bounds, &outer, now)
        {
            return v;
        }
        let (key, action) =
            match classify::accept_tunnel(&self.tables, &outer, &inner_src, &inner_dst) {
                Some(TunnelRule::Home(hoa)) => (
                    BindingKey::HomeTunnel { hoa },
                    Action::HomeTunnelDecapsulated,
                ),
                Some(TunnelRule::Reverse(hoa)) => (
                    BindingKey::ReverseTunnel { hoa },
                    Action::ReverseTunnelDecapsulated,
                ),
                None => return self.dropped(DropReason::TunnelNotAllowed, b.len),
            };
        self.tables.hit_in(key, b.len, self.counters.weight, now);
        self.counters.action(action, b.len);
        let chain = match ExtChain::walk(&buf[d.bounds.range()]) {
            Ok(c) => c,
            Err(e) => return self.malformed(&e, d.bounds.len),
        };
        self.inbound(buf, d.bounds, &chain, Some(outer), now)
    }

    /// A packet of a client with a member-forwarding entry (`dst` our home
    /// address, `src` the client): held, forwarded to the member serving
    /// it, or (`None`) delivered as usual.
    fn member_client(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        now: Instant,
    ) -> Option<Verdict> {
        match self.members.mode(&dst, &src)? {
            ClientMode::Deliver => None,
            ClientMode::Hold => Some(Verdict::Hold {
                bounds: b,
                hoa: dst,
                client: src,
            }),
            ClientMode::Forward(ends) => {
                let mut ip = Ipv6Packet::new_unchecked(&mut buf[b.start..]);
                let hl = ip.hop_limit();
                if hl <= 1 {
                    return Some(self.dropped(DropReason::HopLimit, b.len));
                }
                ip.set_hop_limit(hl - 1);
                let params = TunnelParams {
                    hop_limit: self.cfg.tunnel_hop_limit,
                    ..TunnelParams::new(ends.local, ends.remote)
                };
                Some(match edit::encapsulate(buf, b.start, b.len, &params) {
                    Ok(nb) => {
                        self.members.note_forwarded(dst, src, now);
                        self.counters.action(Action::MemberForwarded, nb.len);
                        Verdict::Wire {
                            bounds: nb,
                            rewrite: Rewrite::Tunnel,
                        }
                    }
                    Err(e) => self.rewrite_failed(&e, b.len),
                })
            }
        }
    }

    /// IPv6-in-IPv6 from a group member (see [`super::member`]): accepted
    /// only to one of our local addresses, with a plain inner packet for a
    /// local home address from a client that has an entry here.
    fn member_decapsulated(
        &mut self,
        buf: &mut [u8],
        inner: Bounds,
        outer: &TunnelOuter,
        t: MemberTunnel,
        now: Instant,
    ) -> Verdict {
        let plain = ExtChain::walk(&buf[inner.range()]).is_ok_and(|c| {
            c.rh2().is_none()
                && c.hao().is_none()
                && c.mh_offset().is_none()
                && c.inner_offset().is_none()
        });
        let (_, inner_dst) = addrs(buf, inner);
        if t != MemberTunnel::Accepted
            || !plain
            || !self.tables.is_local(&outer.dst)
            || !self.tables.is_local_home(&inner_dst)
        {
            return self.dropped(DropReason::MemberTunnelRefused, inner.len);
        }
        self.counters.action(Action::MemberDecapsulated, inner.len);
        self.deliver(buf, inner, now)
    }
}
