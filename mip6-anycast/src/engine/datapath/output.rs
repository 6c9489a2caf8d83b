//! The engine's per-packet I/O: what happens to a packet read from the
//! TUN once [`Datapath::process`](super::Datapath::process) has decided.
//!
//! With TUN offloads ([`super::DatapathMode::tun_offload`]) a packet may
//! be a 64 KB GSO super-packet with a partial checksum. The datapath's edits (RH2 or HAO
//! inserted or stripped, an outer header added or removed) all sit in
//! front of the transport header, so the virtio header only needs its
//! `csum_start`/`hdr_len` moved by the change in length. Rewritten packets
//! are written back into the TUN with that header: the kernel forwards
//! them (unmarked, so only when they would not be steered straight back,
//! [`classify::would_loop`]) and segments them at the device that needs
//! it, inside the writer's syscall. A raw socket cannot send a GSO
//! packet; it stays the way out for what may not go through the TUN
//! (would loop, hop limit 1, larger than the path MTU: the raw socket's
//! `EMSGSIZE` then yields our ICMPv6 Packet Too Big), after cutting the
//! packet into segments with finished checksums. An IPv6-in-IPv6 GSO
//! packet is cut into segments before the TUN write too (the kernel's
//! IPv6-in-IPv6 GSO needs `SKB_GSO_IPXIP6`, which a TUN write cannot set;
//! see [`crate::engine::vnet`]).

use std::net::Ipv6Addr;
use std::time::Instant;

use tracing::{debug, trace};

use super::classify::TunnelOuter;
use super::engine::Task;
use super::handle::ProxyPunt;
use super::icmp;
use super::process::{HEADROOM, PuntInfo, Rewrite, Verdict};
use super::stats::{Action, DropReason};
use crate::engine::gro::Push;
use crate::engine::rawsock::RawSockError;
use crate::engine::vnet::{self, VnetHdr};
use crate::wire::{self, Bounds, Ipv6Packet};

/// Length of the IPv6 packet at the start of `pkt` by its header (`n` if
/// shorter than a header).
fn ipv6_len(pkt: &[u8]) -> usize {
    match pkt.get(4..6) {
        Some(&[a, b]) if pkt.len() >= wire::IPV6_HEADER_LEN => {
            (wire::IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([a, b]))).min(pkt.len())
        }
        _ => pkt.len(),
    }
}

impl Task {
    /// Processes the packet of `n` octets at [`HEADROOM`] with virtio
    /// header `hdr` (all zero without offloads).
    pub(super) async fn packet(&mut self, n: usize, mut hdr: VnetHdr, now: Instant) {
        let start = HEADROOM;
        if hdr.needs_csum() && !hdr.is_partial_tcp() {
            // A partial checksum of anything but TCP (a Mobility Header
            // the datapath verifies, ICMPv6, UDP): finish it here.
            if vnet::finish_checksum(&mut self.buf[start..start + n], &mut hdr).is_err() {
                self.dp.counters_mut().drop(DropReason::Offload, n);
                return;
            }
        }
        let orig = ipv6_len(&self.buf[start..start + n]);
        let segs = hdr.segments(&self.buf[start..start + n]);
        let b = Bounds { start, len: n };
        let moved = |hdr: &mut VnetHdr, nb: Bounds| {
            hdr.shift(nb.len as isize - orig as isize, nb.len);
        };
        let partial = hdr.needs_csum();
        match self
            .dp
            .process_offloaded(&mut self.buf, b, now, segs, partial)
        {
            Verdict::Tun(b) => {
                moved(&mut hdr, b);
                self.write_tun(&hdr, b, segs);
            }
            Verdict::Wire { bounds, rewrite } => {
                moved(&mut hdr, bounds);
                self.send_wire(hdr, bounds, rewrite, segs, now).await;
            }
            Verdict::Punt(PuntInfo::Proxy { bounds, tunnel })
                if hdr.is_gso() || hdr.needs_csum() =>
            {
                moved(&mut hdr, bounds);
                self.punt_segments(hdr, bounds, tunnel, now);
            }
            Verdict::Punt(p) => self.punt(p, now),
            Verdict::Hold {
                bounds,
                hoa,
                client,
            } => {
                moved(&mut hdr, bounds);
                self.hold(hdr, bounds, hoa, client);
            }
            Verdict::Drop(reason) => {
                if tracing::enabled!(tracing::Level::TRACE) {
                    let pkt = &self.buf[start..start + n];
                    let (src, dst) = Ipv6Packet::new_checked(pkt)
                        .map(|p| (p.src_addr(), p.dst_addr()))
                        .unwrap_or((Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED));
                    trace!(?reason, %src, %dst, nh = pkt.get(6), len = n, "drop");
                }
            }
        }
    }

    /// Writes `buf[b]` into the TUN (delivered or forwarded by the
    /// kernel); with offloads, consecutive TCP segments are joined first
    /// ([`crate::engine::gro`]) and written by [`Task::gro_flush`].
    fn write_tun(&mut self, hdr: &VnetHdr, b: Bounds, segs: u64) {
        if self.mode.tun_offload() {
            let pkt = &self.buf[b.range()];
            let mut held = self.gro.push(pkt, hdr) == Push::Held;
            if !held && !self.gro.is_empty() {
                self.gro_flush();
                held = self.gro.push(&self.buf[b.range()], hdr) == Push::Held;
            }
            if held {
                self.dp.counters_mut().to_tun.add(b.len);
                return;
            }
        }
        match self.tun.write(hdr, &self.buf[b.range()]) {
            Ok(_) => self.dp.counters_mut().to_tun.add_n(b.len, segs),
            Err(e) => {
                debug!(error = %e, "TUN write failed");
                self.dp
                    .counters_mut()
                    .drop(DropReason::TunWriteFailed, b.len);
            }
        }
    }

    /// Writes the joined packet pending in the coalescer, if any.
    pub(super) fn gro_flush(&mut self) {
        if let Some((p, h)) = self.gro.take()
            && let Err(e) = self.tun.write(&h, p)
        {
            debug!(error = %e, "TUN write of joined segments failed");
            let len = p.len();
            self.dp.counters_mut().drop(DropReason::TunWriteFailed, len);
        }
    }

    /// The kernel may forward `buf[b]` written into the TUN: it would not
    /// come back (steering), its hop limit survives the forwarding, and
    /// its segments fit the path MTU (else the raw socket's `EMSGSIZE`
    /// makes our Packet Too Big).
    fn tun_output_ok(&mut self, hdr: &VnetHdr, b: Bounds, now: Instant) -> bool {
        let pkt = &self.buf[b.range()];
        let ip = Ipv6Packet::new_unchecked(pkt);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ip.hop_limit() <= 1 || self.dp.would_loop(&src, &dst) {
            return false;
        }
        let Some(seg) = hdr.segment_len(pkt) else {
            return false;
        };
        let mtu = self.pmtu.get(dst, now).unwrap_or(0).min(self.path_mtu);
        seg <= mtu as usize
    }

    /// Sends a rewritten (or passed-through) packet on its way.
    async fn send_wire(
        &mut self,
        hdr: VnetHdr,
        b: Bounds,
        rewrite: Rewrite,
        segs: u64,
        now: Instant,
    ) {
        if self.mode.tun_offload() && self.tun_output_ok(&hdr, b, now) {
            let tunnel = self.buf.get(b.start + 6) == Some(&wire::ip_proto::IPV6);
            if hdr.is_gso() && tunnel {
                self.segments_to_tun(hdr, b);
                return;
            }
            match self.tun.write(&hdr, &self.buf[b.range()]) {
                Ok(_) => self.dp.counters_mut().to_wire.add_n(b.len, segs),
                Err(e) => {
                    trace!(error = %e, "TUN write of a rewritten packet failed");
                    self.dp.counters_mut().drop(DropReason::SendFailed, b.len);
                }
            }
            return;
        }
        if hdr.is_gso() || hdr.needs_csum() {
            self.segments_to_raw(hdr, b, rewrite, now).await;
            return;
        }
        match self.raw.send(&self.buf[b.range()]).await {
            Ok(_) => self.dp.counters_mut().to_wire.add(b.len),
            Err(RawSockError::TooBig { len }) => {
                self.dp.counters_mut().drop(DropReason::TooBig, len);
                self.too_big(b, rewrite, now).await;
            }
            Err(e) => {
                trace!(error = %e, "raw send failed");
                self.dp.counters_mut().drop(DropReason::SendFailed, b.len);
            }
        }
    }

    /// Cuts a GSO packet into segments (checksums left partial) and
    /// writes each into the TUN.
    fn segments_to_tun(&mut self, hdr: VnetHdr, b: Bounds) {
        let (buf, seg, tun, dp) = (&self.buf, &mut self.seg, &self.tun, &mut self.dp);
        let r = vnet::segment(&buf[b.range()], &hdr, false, seg, |s, sh| {
            match tun.write(sh, s) {
                Ok(_) => dp.counters_mut().to_wire.add(s.len()),
                Err(_) => dp.counters_mut().drop(DropReason::SendFailed, s.len()),
            }
        });
        if r.is_err() {
            self.dp.counters_mut().drop(DropReason::Offload, b.len);
        }
    }

    /// Sends a GSO packet, or one with a partial checksum, through the raw
    /// socket: segments with finished checksums, without waiting (a full
    /// socket buffer drops the segment, counted).
    async fn segments_to_raw(&mut self, hdr: VnetHdr, b: Bounds, rewrite: Rewrite, now: Instant) {
        let mut too_big = false;
        let (buf, seg, raw, dp) = (&self.buf, &mut self.seg, &self.raw, &mut self.dp);
        let r = vnet::segment(&buf[b.range()], &hdr, true, seg, |s, _| {
            match raw.try_send(s) {
                Ok(_) => dp.counters_mut().to_wire.add(s.len()),
                Err(RawSockError::TooBig { len }) => {
                    too_big = true;
                    dp.counters_mut().drop(DropReason::TooBig, len);
                }
                Err(_) => dp.counters_mut().drop(DropReason::SendFailed, s.len()),
            }
        });
        if r.is_err() {
            self.dp.counters_mut().drop(DropReason::Offload, b.len);
        }
        if too_big {
            self.too_big(b, rewrite, now).await;
        }
    }

    /// Punts a GSO packet or one with a partial checksum for the proxy's
    /// control plane as plain segments with finished checksums.
    fn punt_segments(
        &mut self,
        hdr: VnetHdr,
        b: Bounds,
        tunnel: Option<TunnelOuter>,
        now: Instant,
    ) {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let (buf, seg) = (&self.buf, &mut self.seg);
        let r = vnet::segment(&buf[b.range()], &hdr, true, seg, |s, _| {
            out.push(s.to_vec())
        });
        if r.is_err() {
            self.dp.counters_mut().drop(DropReason::Offload, b.len);
        }
        for packet in out {
            self.punt_proxy_packet(ProxyPunt {
                packet,
                tunnel,
                received: now,
            });
        }
    }

    /// Queues a client's packet (member handoff): plain packets with
    /// finished checksums, since they leave later through either way.
    fn hold(&mut self, hdr: VnetHdr, b: Bounds, hoa: Ipv6Addr, client: Ipv6Addr) {
        if !hdr.is_gso() && !hdr.needs_csum() {
            self.dp.hold_packet(&self.buf[b.range()], hoa, client);
            return;
        }
        let (buf, seg, dp) = (&self.buf, &mut self.seg, &mut self.dp);
        let r = vnet::segment(&buf[b.range()], &hdr, true, seg, |s, _| {
            dp.hold_packet(s, hoa, client);
        });
        if r.is_err() {
            self.dp.counters_mut().drop(DropReason::Offload, b.len);
        }
    }

    /// RFC 4443 3.2 / RFC 2473 7.1: tells the sender of a packet that no
    /// longer fits after our rewrite, through the TUN.
    pub(super) async fn too_big(&mut self, b: Bounds, rewrite: Rewrite, now: Instant) {
        if !self.cfg.icmp_too_big {
            return;
        }
        self.gro_flush();
        let Some(orig) = icmp::original(&self.buf, b, rewrite, &mut self.scratch) else {
            return;
        };
        if !icmp::may_report(orig) || !self.icmp_limit.allow(now) {
            return;
        }
        let ip = Ipv6Packet::new_unchecked(orig);
        // From the destination the sender was trying to reach: the kernel
        // matches the error to its socket by the quoted header.
        let (src, dst) = (ip.dst_addr(), ip.src_addr());
        let mtu = icmp::reported_mtu(self.path_mtu, b.len, b.len.saturating_sub(orig.len()));
        let n = match icmp::packet_too_big(orig, src, mtu, &mut self.icmp_buf) {
            Ok(n) => n,
            Err(_) => return,
        };
        if self.dp.would_loop(&src, &dst) {
            return;
        }
        debug!(%dst, mtu, "packet too big after rewrite, telling the sender");
        if self
            .tun
            .write(&VnetHdr::default(), &self.icmp_buf[..n])
            .is_ok()
        {
            let c = self.dp.counters_mut();
            c.action(Action::IcmpTooBigSent, n);
            c.to_tun.add(n);
        }
    }
}
