//! Table decisions, without touching the packet: where a packet came from,
//! what an outbound packet needs, which tunnels are accepted, whether a
//! Mobility Header is well-formed enough to punt, and the loop guard.

use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use super::stats::DropReason;
use super::tables::{BindingKey, Tables, TunnelEnds};
use crate::engine::steer::DEFAULT_NEXT_HEADERS;
use crate::wire::{self, ExtChain, MobilityHeader, ip_proto};

/// How a packet read from the TUN got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Redirected from an interface's ingress by the tc filters: its first
    /// next header is one of the steered ones (43, 60, 135, 41). The
    /// kernel has not looked at it.
    Ingress,
    /// Routed into the TUN by the kernel (policy routing: a local socket's
    /// packet, or one the kernel forwarded).
    Routed,
}

impl Origin {
    /// The origin of a packet whose fixed header's next header is `nh`.
    ///
    /// A locally generated packet that starts with one of these headers
    /// (an application's own Destination Options or routing header toward
    /// a bound home address) is taken for ingress and handed back to the
    /// kernel, where the loop guard drops it: such packets are not
    /// supported.
    pub fn of(nh: u8) -> Self {
        if DEFAULT_NEXT_HEADERS.contains(&nh) {
            Origin::Ingress
        } else {
            Origin::Routed
        }
    }
}

/// The outer addresses of an accepted tunnel a packet arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TunnelOuter {
    /// Outer source (the tunnel entry point).
    pub src: Ipv6Addr,
    /// Outer destination (us).
    pub dst: Ipv6Addr,
}

/// What an outbound packet (routed into the TUN) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// Home agent: encapsulate to the registered care-of address (RFC 6275
    /// 10.4.1).
    HomeTunnel(Ipv6Addr, TunnelEnds),
    /// Correspondent: insert a Type 2 Routing Header toward the care-of
    /// address (RFC 6275 9.3.2).
    Rh2 {
        /// Binding used.
        key: BindingKey,
        /// New destination.
        coa: Ipv6Addr,
    },
    /// Member: add a Home Address option, source our care-of address (RFC
    /// 6275 11.3.1).
    Hao {
        /// Binding used.
        key: BindingKey,
        /// New source.
        coa: Ipv6Addr,
    },
    /// Member: encapsulate to the home agent (RFC 6275 11.3.1).
    ReverseTunnel(Ipv6Addr, TunnelEnds),
    /// Send unchanged.
    PassThrough,
    /// Drop.
    Drop(DropReason),
}

/// The outbound decision for a packet from `src` to `dst`. Mobility
/// Header messages bypass the binding tables (RFC 6275 6.1). Link-scoped
/// and multicast destinations are the TUN device's own traffic.
pub fn outbound(t: &Tables, src: &Ipv6Addr, dst: &Ipv6Addr, is_mobility: bool) -> Outbound {
    if dst.is_multicast() || dst.is_unicast_link_local() {
        return Outbound::Drop(DropReason::TunLinkTraffic);
    }
    if is_mobility {
        return Outbound::PassThrough;
    }
    if let Some(ends) = t.home_tunnel(dst) {
        return Outbound::HomeTunnel(*dst, ends);
    }
    if let Some(coa) = t.correspondent_binding(src, dst) {
        return Outbound::Rh2 {
            key: BindingKey::Correspondent {
                cn: *src,
                hoa: *dst,
            },
            coa,
        };
    }
    if let Some(coa) = t.home_address_binding(src, dst) {
        return Outbound::Hao {
            key: BindingKey::HomeAddress {
                hoa: *src,
                peer: *dst,
            },
            coa,
        };
    }
    if let Some(ends) = t.reverse_tunnel(src) {
        return Outbound::ReverseTunnel(*src, ends);
    }
    if t.is_steered_from(src) {
        return Outbound::Drop(DropReason::NoBinding);
    }
    if t.is_steered_to(dst) {
        // A bound home address, but no binding for this source address:
        // normal routing (RFC 6275 9.3.2 applies per binding).
        return Outbound::PassThrough;
    }
    Outbound::Drop(DropReason::NoTableEntry)
}

/// Which rule accepted a tunnelled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelRule {
    /// Home agent: from the registered care-of address of the inner
    /// source (RFC 6275 10.4.5).
    Home(Ipv6Addr),
    /// Member: from the home agent of the inner destination (RFC 6275
    /// 11.3.3).
    Reverse(Ipv6Addr),
}

/// Accepts IPv6-in-IPv6 only from a registered tunnel end point, to our
/// end of that tunnel.
pub fn accept_tunnel(
    t: &Tables,
    outer: &TunnelOuter,
    inner_src: &Ipv6Addr,
    inner_dst: &Ipv6Addr,
) -> Option<TunnelRule> {
    let matches = |e: TunnelEnds| e.remote == outer.src && e.local == outer.dst;
    if t.home_tunnel(inner_src).is_some_and(matches) {
        return Some(TunnelRule::Home(*inner_src));
    }
    if t.is_local_home(inner_dst) && t.reverse_tunnel(inner_dst).is_some_and(matches) {
        return Some(TunnelRule::Reverse(*inner_dst));
    }
    None
}

/// True if a packet from `src` to `dst` written into the TUN would be
/// routed straight back into it: its destination is steered to the TUN,
/// or its source is and the kernel would forward it (not ours).
pub fn would_loop(t: &Tables, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
    t.would_loop(src, dst)
}

/// Cheap checks before a Mobility Header message is punted: the header is
/// complete, its payload proto is 59 (RFC 6275 6.1.1), it ends the packet,
/// and the checksum verifies with the RFC 6275 pseudo-header (home address
/// from the HAO, final destination from the RH2). Returns the MH type.
pub fn check_mobility_header(packet: &[u8], chain: &ExtChain) -> wire::Result<u8> {
    let off = chain
        .mh_offset()
        .ok_or(wire::Error::NoMobilityHeader(chain.upper_proto()))?;
    let bytes = packet
        .get(off..chain.total_len())
        .ok_or(wire::Error::BadBounds {
            start: off,
            len: chain.total_len().saturating_sub(off),
            buf_len: packet.len(),
        })?;
    let mh = MobilityHeader::new_checked(bytes)?;
    if mh.payload_proto() != ip_proto::NO_NEXT_HEADER {
        return Err(wire::Error::BadMhPayloadProto(mh.payload_proto()));
    }
    if mh.total_len() != bytes.len() {
        return Err(wire::Error::BadMhLength {
            mh_type: mh.mh_type(),
            len: mh.total_len(),
            min: bytes.len(),
        });
    }
    let ip = wire::Ipv6Packet::new_unchecked(packet);
    let src = chain.pseudo_src(ip.src_addr());
    let dst = chain.pseudo_dst(ip.dst_addr());
    mh.check_checksum(&src, &dst)?;
    Ok(mh.mh_type())
}
