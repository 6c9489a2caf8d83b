//! Decoding one IPv6 packet (recursively through IPv6-in-IPv6) into an
//! [`Ipv6Layer`], as far as the bytes allow.
//!
//! Validation is the wire layer's: [`ExtChain::walk`],
//! [`MhPacketRepr::parse_unverified`] (everything but the checksum, whose
//! verdict is reported instead) and [`ip6ip6::decapsulate`]; the first
//! error they return is the packet's `error`. A packet cut short by the
//! capture is decoded from a copy whose Payload Length is clamped to the
//! captured octets, so that the headers that are there are still shown.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use crate::wire::{
    DestOptsHeader, ExtChain, ExtHeader, ExtKind, IPV6_HEADER_LEN, Ipv6Packet, MhPacketRepr,
    MhRepr, MobilityHeader, checksum, ip_proto, ip6ip6,
};

use super::mh;
use super::record::{DestOptRecord, ExtRecord, Hex, Ipv6Layer, TransportRecord};

/// IPv6-in-IPv6 nesting deeper than this is reported, not followed.
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// What the authenticator check needs from a packet's Mobility Header.
#[derive(Debug, Clone)]
pub(crate) struct MhFacts {
    /// IPv6 source of the layer carrying the MH.
    pub src: Ipv6Addr,
    /// Pseudo-header source (the HAO home address, else `src`).
    pub pseudo_src: Ipv6Addr,
    /// Pseudo-header destination (the RH2 home address, else the IPv6 destination).
    pub pseudo_dst: Ipv6Addr,
    /// The parsed message and options.
    pub repr: MhRepr,
    /// The MH checksum verifies.
    pub checksum_ok: bool,
    /// RFC 6275 6.2.7 MH Data, if a Binding Authorization Data option is there.
    pub binding_auth_input: Option<Vec<u8>>,
}

/// One decoded packet: its layer (`None` if not even the fixed header is
/// there), the first error, and the innermost Mobility Header's facts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Decoded {
    pub layer: Option<Ipv6Layer>,
    pub error: Option<String>,
    pub mh: Option<MhFacts>,
}

fn first(err: &mut Option<String>, e: impl ToString) {
    if err.is_none() {
        *err = Some(e.to_string());
    }
}

/// Decodes the IPv6 packet at the start of `b` (trailing octets past its
/// Payload Length, e.g. Ethernet padding, are ignored).
pub(crate) fn decode(b: &[u8], depth: usize) -> Decoded {
    let strict = Ipv6Packet::new_checked(b);
    if b.len() < IPV6_HEADER_LEN || b[0] >> 4 != 6 {
        return Decoded {
            error: strict.err().map(|e| e.to_string()),
            ..Decoded::default()
        };
    }
    let ip = Ipv6Packet::new_unchecked(b);
    let mut layer = Ipv6Layer {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        next_header: ip.next_header(),
        payload_len: ip.payload_len(),
        hop_limit: ip.hop_limit(),
        ext: Vec::new(),
        hao: None,
        rh2: None,
        upper_proto: None,
        mh: None,
        transport: None,
        inner: None,
        error: None,
    };
    let mut err = strict.err().map(|e| e.to_string());
    let cut_short = err.is_some();
    let view: Cow<'_, [u8]> = if cut_short {
        // The captured octets are fewer than 40 + Payload Length (< 65575),
        // so their payload length fits in 16 bits.
        let mut v = b.to_vec();
        let plen = u16::try_from(b.len() - IPV6_HEADER_LEN).unwrap_or(u16::MAX);
        Ipv6Packet::new_unchecked(&mut v[..]).set_payload_len(plen);
        Cow::Owned(v)
    } else {
        Cow::Borrowed(&b[..ip.total_len()])
    };
    let mut mh_facts = None;
    match ExtChain::walk(&view) {
        Ok(chain) => {
            mh_facts = upper(&view, &chain, depth, cut_short, &mut layer, &mut err);
        }
        Err(e) => first(&mut err, e),
    }
    layer.error.clone_from(&err);
    Decoded {
        layer: Some(layer),
        error: err,
        mh: mh_facts,
    }
}

/// Fills in the extension headers and the upper layer of a walked packet.
fn upper(
    view: &[u8],
    chain: &ExtChain,
    depth: usize,
    cut_short: bool,
    layer: &mut Ipv6Layer,
    err: &mut Option<String>,
) -> Option<MhFacts> {
    layer.ext = chain
        .headers()
        .iter()
        .map(|h| ext_record(view, h, chain))
        .collect();
    layer.hao = chain.hao().map(|h| h.home_address);
    layer.rh2 = chain.rh2().map(|r| r.home_address);
    if chain.is_non_first_fragment() {
        return None;
    }
    layer.upper_proto = Some(chain.upper_proto());
    let (psrc, pdst) = (chain.pseudo_src(layer.src), chain.pseudo_dst(layer.dst));
    let bytes = chain.upper_bytes(view);
    match chain.upper_proto() {
        ip_proto::MOBILITY => match MobilityHeader::new_checked(bytes) {
            Ok(h) => match MhPacketRepr::parse_unverified(view) {
                Ok((p, checksum_ok)) => {
                    layer.mh = Some(mh::record(&h, Some(&p.repr.mh), psrc, pdst));
                    let auth = p.repr.mh.has_binding_auth_data();
                    return Some(MhFacts {
                        src: layer.src,
                        pseudo_src: psrc,
                        pseudo_dst: pdst,
                        binding_auth_input: auth
                            .then(|| p.binding_auth_input().ok().map(|a| a.to_vec()))
                            .flatten(),
                        repr: p.repr.mh,
                        checksum_ok,
                    });
                }
                Err(e) => {
                    first(err, e);
                    layer.mh = Some(mh::record(&h, None, psrc, pdst));
                }
            },
            Err(e) => {
                first(err, e);
                layer.mh = mh::partial_record(bytes, psrc, pdst);
            }
        },
        ip_proto::IPV6 => {
            if !cut_short && let Err(e) = ip6ip6::decapsulate(view) {
                first(err, e);
            }
            if depth >= MAX_TUNNEL_DEPTH {
                first(
                    err,
                    format!("IPv6-in-IPv6 nested more than {MAX_TUNNEL_DEPTH} deep"),
                );
                return None;
            }
            let inner = decode(bytes, depth + 1);
            if let Some(e) = inner.error {
                first(err, e);
            }
            if let Some(i) = inner.layer {
                layer.ext.push(ExtRecord::Ip6ip6 {
                    inner_src: i.src,
                    inner_dst: i.dst,
                });
                layer.inner = Some(Box::new(i));
            }
            return inner.mh;
        }
        p @ (ip_proto::TCP | ip_proto::UDP | ip_proto::ICMPV6) => {
            let fragmented = chain
                .headers()
                .iter()
                .any(|h| matches!(h.kind, ExtKind::Fragment { .. }));
            let check = (layer.hao.is_some() || layer.rh2.is_some()) && !fragmented;
            let (t, e) = transport(p, bytes, check, cut_short, psrc, pdst);
            layer.transport = Some(t);
            if let Some(e) = e {
                first(err, e);
            }
        }
        _ => {}
    }
    None
}

fn ext_record(view: &[u8], h: &ExtHeader, chain: &ExtChain) -> ExtRecord {
    let bytes = view.get(h.offset..h.end()).unwrap_or(&[]);
    match h.kind {
        ExtKind::HopByHop => ExtRecord::HopByHop {
            len: h.len,
            options: dest_options(bytes),
        },
        ExtKind::DestOpts => ExtRecord::Dstopts {
            len: h.len,
            options: dest_options(bytes),
        },
        ExtKind::Routing {
            routing_type,
            segments_left,
        } => match chain.rh2() {
            Some(r) if r.offset == h.offset => ExtRecord::Rh2 {
                home_address: r.home_address,
                segments_left,
            },
            _ => ExtRecord::Routing {
                routing_type,
                segments_left,
                len: h.len,
            },
        },
        ExtKind::Fragment {
            offset,
            more,
            ident,
        } => ExtRecord::Fragment {
            offset,
            more,
            ident,
        },
        ExtKind::Auth => ExtRecord::Ah { len: h.len },
        ExtKind::Other(proto) => ExtRecord::Other { proto, len: h.len },
    }
}

fn dest_options(hdr: &[u8]) -> Vec<DestOptRecord> {
    DestOptsHeader::new_unchecked(hdr)
        .options()
        .map_while(|o| o.ok())
        .map(|o| match (o.opt_type, <[u8; 16]>::try_from(o.data)) {
            (0, _) => DestOptRecord::Pad1,
            (1, _) => DestOptRecord::Padn { len: o.data.len() },
            (crate::wire::HAO_TYPE, Ok(a)) => DestOptRecord::Hao {
                home_address: Ipv6Addr::from(a),
            },
            (t, _) => DestOptRecord::Other {
                opt_type: t,
                data: Hex::from(o.data),
            },
        })
        .collect()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// TCP/UDP/ICMPv6 facts; the checksum is verified when `check` (a packet
/// with RH2 or HAO: RFC 6275 6.3, 6.4 make its pseudo-header use the home
/// address). Returns an error for a header cut short or a bad UDP length.
fn transport(
    proto: u8,
    b: &[u8],
    check: bool,
    cut_short: bool,
    psrc: Ipv6Addr,
    pdst: Ipv6Addr,
) -> (TransportRecord, Option<String>) {
    let (name, min, csum_at) = match proto {
        ip_proto::TCP => ("tcp", 20, 16),
        ip_proto::UDP => ("udp", 8, 6),
        _ => ("icmpv6", 4, 2),
    };
    let ports = proto != ip_proto::ICMPV6;
    let mut t = TransportRecord {
        proto,
        name,
        src_port: be16(b, 0).filter(|_| ports),
        dst_port: be16(b, 2).filter(|_| ports),
        icmp_type: b.first().copied().filter(|_| !ports),
        icmp_code: b.get(1).copied().filter(|_| !ports),
        checksum: be16(b, csum_at),
        checksum_ok: None,
    };
    let mut error = None;
    let mut data = b;
    if b.len() < min {
        error = Some(format!(
            "{name} header cut short: {} of {min} octets",
            b.len()
        ));
    } else if proto == ip_proto::UDP {
        // RFC 8200 8.1: UDP's own length is the pseudo-header length.
        let ulen = usize::from(be16(b, 4).unwrap_or(0));
        match b.get(..ulen).filter(|_| ulen >= 8) {
            Some(d) => data = d,
            None if cut_short => {}
            None => error = Some(format!("bad UDP length {ulen} for {} octets", b.len())),
        }
    }
    if check {
        t.checksum_ok = Some(
            error.is_none()
                && !cut_short
                && !(proto == ip_proto::UDP && t.checksum == Some(0))
                && checksum::verify(&psrc, &pdst, proto, data),
        );
    }
    (t, error)
}
