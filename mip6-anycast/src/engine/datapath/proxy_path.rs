//! The per-packet work of the PIAS proxy tables ([`super::proxy`]), part of
//! [`Datapath::process`]:
//!
//! - routed to an anycast prefix (a client's packet, the kernel already
//!   forwarded it): a NAT binding translates it to its target (or tunnels
//!   it there); else an ingress flow encapsulates it to its join proxy;
//!   else it is punted (the control plane picks the JAP: first packet
//!   through the RAP);
//! - routed to a NAT address (a target's reply): translated back to
//!   `AA:g -> AC:p` and sent to the client (replies return through the
//!   JAP, seed 001 figure 2); unknown replies are punted;
//! - IPv6-in-IPv6 from a proxy peer to our address: decapsulated (RFC 2473),
//!   then translated like a client's packet (hop limit decremented: we
//!   forward it), or punted with the outer addresses;
//! - IPv6-in-IPv6 from a target with tunnel-mode bindings: its reply is
//!   decapsulated and forwarded to the client if the binding names it.

use std::net::Ipv6Addr;
use std::time::Instant;

use super::classify::TunnelOuter;
use super::process::{Datapath, PuntInfo, Rewrite, Verdict};
use super::proxy::{NatBinding, ProxyEntryKind, ProxyFlow};
use super::stats::{Action, DropReason};
use crate::wire::transport::{self, ChecksumState};
use crate::wire::{Bounds, Ipv6Packet, TunnelParams, edit};

/// Which way a packet uses a flow entry.
#[derive(Debug, Clone, Copy)]
enum Used {
    /// Toward the JAP or the target.
    Out(ProxyEntryKind),
    /// A reply from the target.
    In,
}

impl Datapath {
    fn checksum_state(&self) -> ChecksumState {
        if self.partial_csum {
            ChecksumState::Partial
        } else {
            ChecksumState::Complete
        }
    }

    fn proxy_punt(&mut self, b: Bounds, tunnel: Option<TunnelOuter>) -> Verdict {
        self.counters.action(Action::ProxyPunted, b.len);
        Verdict::Punt(PuntInfo::Proxy { bounds: b, tunnel })
    }

    /// A packet the kernel routed into the TUN: `Some` if the proxy tables
    /// take it (anycast prefix or NAT address).
    pub(super) fn proxy_routed(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        now: Instant,
    ) -> Option<Verdict> {
        let dst = Ipv6Packet::new_unchecked(&buf[b.start..]).dst_addr();
        let request = self.proxy.serves(&dst);
        if !request && !self.proxy.is_nat_address(&dst) {
            return None;
        }
        let f = match transport::flow_of(&buf[b.range()]) {
            Ok(f) => f,
            Err(_) => return Some(self.dropped(DropReason::ProxyNotTransport, b.len)),
        };
        if !request {
            return Some(
                match self
                    .proxy
                    .reply_flow((f.src, f.sport), (f.dst, f.dport), f.proto)
                {
                    Some((flow, nb)) if nb.tunnel_from.is_none() => {
                        self.translate_reply(buf, b, flow, now)
                    }
                    _ => self.proxy_punt(b, None),
                },
            );
        }
        let flow = ProxyFlow::of_request(&f);
        if let Some(nb) = self.proxy.binding(&flow) {
            return Some(self.forward_to_target(buf, b, flow, nb, now));
        }
        if let Some(ends) = self.proxy.ingress(&flow) {
            let to = (ends.local, ends.remote);
            let used = (flow, Used::Out(ProxyEntryKind::Ingress));
            return Some(self.proxy_encapsulate(
                buf,
                b,
                to,
                used,
                Action::ProxyIngressTunnelled,
                now,
            ));
        }
        Some(self.proxy_punt(b, None))
    }

    /// A client's packet to its target: translated, or encapsulated when
    /// the target decapsulates.
    fn forward_to_target(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        flow: ProxyFlow,
        nb: NatBinding,
        now: Instant,
    ) -> Verdict {
        let used = (flow, Used::Out(ProxyEntryKind::Nat));
        match nb.tunnel_from {
            Some(local) => {
                let to = (local, nb.target);
                self.proxy_encapsulate(buf, b, to, used, Action::ProxyTargetTunnelled, now)
            }
            None => {
                let ends = ((nb.nat, nb.nat_port), (nb.target, nb.target_port));
                self.proxy_translate(buf, b, ends, used, Action::ProxyTranslated, now)
            }
        }
    }

    /// Counts a packet of `flow` in its entry's usage.
    fn proxy_used(&mut self, (flow, dir): (ProxyFlow, Used), len: usize, now: Instant) {
        let w = self.counters.weight;
        match dir {
            Used::Out(kind) => self.proxy.hit_out(kind, &flow, len, w, now),
            Used::In => self.proxy.hit_in(&flow, len, w, now),
        }
    }

    /// Encapsulates from `to.0` to `to.1` (RFC 2473) and counts it.
    fn proxy_encapsulate(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        to: (Ipv6Addr, Ipv6Addr),
        used: (ProxyFlow, Used),
        action: Action,
        now: Instant,
    ) -> Verdict {
        let params = TunnelParams {
            hop_limit: self.cfg.tunnel_hop_limit,
            ..TunnelParams::new(to.0, to.1)
        };
        match edit::encapsulate(buf, b.start, b.len, &params) {
            Ok(out) => {
                self.proxy_used(used, out.len, now);
                self.counters.action(action, out.len);
                Verdict::Wire {
                    bounds: out,
                    rewrite: Rewrite::Tunnel,
                }
            }
            Err(e) => self.rewrite_failed(&e, b.len),
        }
    }

    /// Rewrites source and destination to `ends` (RFC 1624 checksum
    /// update, partial checksums respected) and counts it.
    fn proxy_translate(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        ends: ((Ipv6Addr, u16), (Ipv6Addr, u16)),
        used: (ProxyFlow, Used),
        action: Action,
        now: Instant,
    ) -> Verdict {
        let state = self.checksum_state();
        match transport::translate(&mut buf[b.range()], ends.0, ends.1, state) {
            Ok(_) => {
                self.proxy_used(used, b.len, now);
                self.counters.action(action, b.len);
                Verdict::Wire {
                    bounds: b,
                    rewrite: Rewrite::Translated,
                }
            }
            Err(e) => self.rewrite_failed(&e, b.len),
        }
    }

    /// A target's translated reply, back to `AA:g -> AC:p`.
    fn translate_reply(
        &mut self,
        buf: &mut [u8],
        b: Bounds,
        flow: ProxyFlow,
        now: Instant,
    ) -> Verdict {
        let ends = (
            (flow.group, flow.group_port),
            (flow.client, flow.client_port),
        );
        let used = (flow, Used::In);
        self.proxy_translate(buf, b, ends, used, Action::ProxyReplyTranslated, now)
    }

    /// Decrements the hop limit of a packet we forward after
    /// decapsulating it (RFC 2473 3.1, RFC 8200 3); `false`: it expired.
    fn forward_hop(buf: &mut [u8], b: Bounds) -> bool {
        let mut ip = Ipv6Packet::new_unchecked(&mut buf[b.start..]);
        let hl = ip.hop_limit();
        if hl <= 1 {
            return false;
        }
        ip.set_hop_limit(hl - 1);
        true
    }

    /// The inner packet of an IPv6-in-IPv6 packet from a proxy peer or a
    /// tunnel-mode target: `Some` if the proxy tables take it.
    pub(super) fn proxy_decapsulated(
        &mut self,
        buf: &mut [u8],
        inner: Bounds,
        outer: &TunnelOuter,
        now: Instant,
    ) -> Option<Verdict> {
        let from_peer = self.proxy.peer_local(&outer.src) == Some(outer.dst);
        if !from_peer && !self.proxy.is_tunnel_target(&outer.src) {
            return None;
        }
        let f = match transport::flow_of(&buf[inner.range()]) {
            Ok(f) => f,
            Err(_) => return Some(self.dropped(DropReason::ProxyNotTransport, inner.len)),
        };
        if from_peer {
            self.counters
                .action(Action::ProxyPeerDecapsulated, inner.len);
            let flow = ProxyFlow::of_request(&f);
            if self.proxy.serves(&f.dst)
                && let Some(nb) = self.proxy.binding(&flow)
            {
                if !Self::forward_hop(buf, inner) {
                    return Some(self.dropped(DropReason::HopLimit, inner.len));
                }
                return Some(self.forward_to_target(buf, inner, flow, nb, now));
            }
            return Some(self.proxy_punt(inner, Some(*outer)));
        }
        // A reply tunnelled back by a target that decapsulates.
        let flow = ProxyFlow::of_reply(&f);
        match self.proxy.binding(&flow) {
            Some(nb) if nb.target == outer.src && nb.tunnel_from == Some(outer.dst) => {
                if !Self::forward_hop(buf, inner) {
                    return Some(self.dropped(DropReason::HopLimit, inner.len));
                }
                self.proxy_used((flow, Used::In), inner.len, now);
                self.counters
                    .action(Action::ProxyTargetDecapsulated, inner.len);
                Some(Verdict::Wire {
                    bounds: inner,
                    rewrite: Rewrite::None,
                })
            }
            _ => Some(self.dropped(DropReason::ProxyTunnelRefused, inner.len)),
        }
    }
}
