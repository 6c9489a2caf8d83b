//! The in-place datapath edits: insert then strip gives back the original
//! bytes, headers land where RFC 8200 4.1 / RFC 6275 6.3 put them, the
//! transport checksum stays valid without being touched, and refusals leave
//! the buffer unchanged.

use std::net::Ipv6Addr;

use mip6_anycast::wire::{
    DestOption, DestOptsHeader, DestOptsRepr, Error, ExtChain, ExtKind, Ipv6Packet, Ipv6Repr,
    PacketBuf, TunnelParams, checksum, edit, ip_proto,
};
use proptest::prelude::*;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// What a generated data packet looks like.
#[derive(Debug, Clone)]
struct Shape {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hbh: Option<usize>,
    dest_opts: Option<Vec<u8>>,
    fragment: bool,
    proto: u8,
    payload: Vec<u8>,
    trailing: usize,
}

fn addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(|mut b| {
        b[0] = 0x20;
        b[1] = 0x01;
        Ipv6Addr::from(b)
    })
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        addr(),
        addr(),
        proptest::option::of(0usize..3),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
        any::<bool>(),
        prop_oneof![
            Just(ip_proto::TCP),
            Just(ip_proto::UDP),
            Just(ip_proto::ICMPV6)
        ],
        proptest::collection::vec(any::<u8>(), 8..120),
        0usize..6,
    )
        .prop_map(
            |(src, dst, hbh, dest_opts, fragment, proto, payload, trailing)| Shape {
                src,
                dst,
                hbh,
                dest_opts,
                fragment,
                proto,
                payload,
                trailing,
            },
        )
}

/// Builds the packet: IPv6 [HBH] [Dest Opts] [Fragment] upper, with the
/// upper checksum (at offset 2 for ICMPv6, 6 for UDP, 16 for TCP when long
/// enough) computed over the home addresses; plus `trailing` junk octets.
fn build(s: &Shape) -> Vec<u8> {
    let mut upper = s.payload.clone();
    let at = match s.proto {
        ip_proto::ICMPV6 => 2,
        ip_proto::UDP => 6,
        _ => 16,
    };
    if upper.len() >= at + 2 {
        upper[at..at + 2].fill(0);
        let c = checksum::compute(&s.src, &s.dst, s.proto, &upper);
        upper[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut exts: Vec<(u8, Vec<u8>)> = Vec::new();
    if let Some(n) = s.hbh {
        let mut h = vec![0u8; 8 * (n + 1)];
        h[1] = n as u8;
        h[2] = 1;
        h[3] = (8 * (n + 1) - 4) as u8;
        exts.push((ip_proto::HOP_BY_HOP, h));
    }
    if let Some(d) = &s.dest_opts {
        let r = DestOptsRepr {
            next_header: 0,
            options: vec![DestOption::Unknown {
                opt_type: 0x1e,
                data: d.clone(),
            }],
        };
        exts.push((ip_proto::DEST_OPTS, r.to_bytes().unwrap()));
    }
    if s.fragment {
        exts.push((ip_proto::FRAGMENT, vec![0, 0, 0, 1, 0, 0, 0, 42]));
    }
    let first = exts.first().map_or(s.proto, |e| e.0);
    for i in 0..exts.len() {
        exts[i].1[0] = exts.get(i + 1).map_or(s.proto, |e| e.0);
    }
    let body: Vec<u8> = exts.into_iter().flat_map(|e| e.1).chain(upper).collect();
    let mut v = vec![0u8; 40];
    Ipv6Repr {
        src_addr: s.src,
        dst_addr: s.dst,
        next_header: first,
        payload_len: body.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(&mut v)
    .unwrap();
    v.extend_from_slice(&body);
    v.extend(std::iter::repeat_n(0xee, s.trailing));
    v
}

/// The upper-layer checksum verifies with the RFC 6275 pseudo-header.
fn upper_ok(p: &[u8]) -> bool {
    let c = ExtChain::walk(p).unwrap();
    if c.is_non_first_fragment() {
        return true;
    }
    let ip = Ipv6Packet::new_checked(p).unwrap();
    let upper = c.upper_bytes(p);
    let long_enough = match c.upper_proto() {
        ip_proto::ICMPV6 => upper.len() >= 4,
        ip_proto::UDP => upper.len() >= 8,
        _ => upper.len() >= 18,
    };
    !long_enough
        || checksum::verify(
            &c.pseudo_src(ip.src_addr()),
            &c.pseudo_dst(ip.dst_addr()),
            c.upper_proto(),
            upper,
        )
}

fn kinds(p: &[u8]) -> Vec<u8> {
    ExtChain::walk(p)
        .unwrap()
        .headers()
        .iter()
        .map(|h| h.proto)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rh2_insert_strip_round_trip(s in shape(), coa in addr(), extra in 0usize..40) {
        let orig = build(&s);
        let exact = &orig[..orig.len() - s.trailing];
        let mut p = PacketBuf::from_packet(&orig, 24 + extra);
        p.insert_rh2(&coa).unwrap();
        prop_assert_eq!(p.bounds().start, extra);
        let c = ExtChain::walk(p.packet()).unwrap();
        let r = c.rh2().unwrap();
        prop_assert_eq!(r.home_address, s.dst);
        prop_assert_eq!(Ipv6Packet::new_checked(p.packet()).unwrap().dst_addr(), coa);
        // RFC 8200 4.1: directly after the fixed header or Hop-by-Hop.
        prop_assert_eq!(r.index, usize::from(s.hbh.is_some()));
        prop_assert!(upper_ok(p.packet()));
        let st = p.strip_rh2().unwrap();
        prop_assert_eq!((st.home_address, st.care_of_address), (s.dst, coa));
        prop_assert_eq!(p.packet(), exact);
    }

    #[test]
    fn hao_insert_strip_round_trip(s in shape(), coa in addr()) {
        let orig = build(&s);
        let exact = &orig[..orig.len() - s.trailing];
        let v = edit::insert_hao_vec(&orig, &coa).unwrap();
        let c = ExtChain::walk(&v).unwrap();
        let h = c.hao().unwrap();
        prop_assert_eq!(h.home_address, s.src);
        prop_assert!(h.sole_option);
        prop_assert_eq!(Ipv6Packet::new_checked(&v[..]).unwrap().src_addr(), coa);
        prop_assert_eq!(h.index, usize::from(s.hbh.is_some()));
        prop_assert!(upper_ok(&v));
        let (back, st) = edit::strip_hao_vec(&v).unwrap();
        prop_assert_eq!((st.home_address, st.care_of_address), (s.src, coa));
        prop_assert_eq!(&back[..], exact);
        // Swapping twice is the identity; once puts the HoA in the header.
        let mut p = PacketBuf::from_packet(&v, 0);
        p.swap_hao().unwrap();
        prop_assert_eq!(Ipv6Packet::new_checked(p.packet()).unwrap().src_addr(), s.src);
        p.swap_hao().unwrap();
        prop_assert_eq!(p.packet(), &v[..]);
    }

    #[test]
    fn rh2_and_hao_in_rfc_order(s in shape(), coa in addr(), coa2 in addr(), rh2_first in any::<bool>()) {
        let orig = build(&s);
        let exact = &orig[..orig.len() - s.trailing];
        let mut p = PacketBuf::from_packet(&orig, 48);
        if rh2_first {
            p.insert_rh2(&coa2).unwrap();
            p.insert_hao(&coa).unwrap();
        } else {
            p.insert_hao(&coa).unwrap();
            p.insert_rh2(&coa2).unwrap();
        }
        prop_assert_eq!(p.headroom(), 0);
        let c = ExtChain::walk(p.packet()).unwrap();
        let (r, h) = (c.rh2().unwrap(), c.hao().unwrap());
        // RFC 6275 6.3: the HAO comes after the routing header; both before the fragment header.
        prop_assert!(h.header_offset > r.offset);
        if let Some(f) = c.headers().iter().find(|x| matches!(x.kind, ExtKind::Fragment { .. })) {
            prop_assert!(f.offset > h.header_offset);
        }
        prop_assert!(upper_ok(p.packet()));
        let mut k = kinds(exact);
        k.insert(usize::from(s.hbh.is_some()), ip_proto::ROUTING);
        k.insert(usize::from(s.hbh.is_some()) + 1, ip_proto::DEST_OPTS);
        prop_assert_eq!(kinds(p.packet()), k);
        if rh2_first {
            p.strip_rh2().unwrap();
            p.strip_hao().unwrap();
        } else {
            p.strip_hao().unwrap();
            p.strip_rh2().unwrap();
        }
        prop_assert_eq!(p.packet(), exact);
        prop_assert_eq!(p.headroom(), 48);
    }

    #[test]
    fn tunnel_round_trip(s in shape(), e in addr(), x in addr(), hl in any::<u8>()) {
        let orig = build(&s);
        let exact = &orig[..orig.len() - s.trailing];
        let mut p = PacketBuf::from_packet(&orig, 40);
        let params = TunnelParams { hop_limit: hl, ..TunnelParams::new(e, x) };
        p.encapsulate(&params).unwrap();
        prop_assert_eq!(p.headroom(), 0);
        let outer = Ipv6Packet::new_checked(p.packet()).unwrap();
        prop_assert_eq!((outer.src_addr(), outer.dst_addr(), outer.hop_limit(), outer.next_header()), (e, x, hl, 41));
        prop_assert_eq!(&p.packet()[40..], exact);
        let d = p.decapsulate().unwrap();
        prop_assert_eq!((d.outer_src, d.outer_dst), (e, x));
        prop_assert_eq!(p.packet(), exact);
        prop_assert_eq!(edit::decapsulate_vec(&edit::encapsulate_vec(exact, &params).unwrap()).unwrap(), exact);
    }
}

fn sample() -> Vec<u8> {
    build(&Shape {
        src: a("2001:db8:1::100"),
        dst: a("2001:db8:3::10"),
        hbh: None,
        dest_opts: None,
        fragment: false,
        proto: ip_proto::UDP,
        payload: vec![0x13, 0x88, 0x13, 0x89, 0, 12, 0, 0, 1, 2, 3, 4],
        trailing: 0,
    })
}

#[test]
fn refusals_leave_the_buffer_unchanged() {
    let coa = a("2001:db8:2::100");
    let orig = sample();
    // Not enough headroom.
    let mut p = PacketBuf::from_packet(&orig, 23);
    assert_eq!(
        p.insert_rh2(&coa),
        Err(Error::NoHeadroom { need: 24, have: 23 })
    );
    assert_eq!(
        p.insert_hao(&coa),
        Err(Error::NoHeadroom { need: 24, have: 23 })
    );
    assert_eq!(
        p.encapsulate(&TunnelParams::new(coa, coa)),
        Err(Error::NoHeadroom { need: 40, have: 23 })
    );
    assert_eq!(p.packet(), &orig[..]);
    // Nothing to strip.
    assert_eq!(p.strip_rh2(), Err(Error::NoRh2));
    assert_eq!(p.strip_hao(), Err(Error::NoHao));
    assert_eq!(p.swap_hao(), Err(Error::NoHao));
    assert_eq!(p.decapsulate(), Err(Error::NotIpv6InIpv6(ip_proto::UDP)));
    assert_eq!(p.packet(), &orig[..]);
    // A second RH2 or HAO.
    let v = edit::insert_rh2_vec(&orig, &coa).unwrap();
    assert_eq!(
        edit::insert_rh2_vec(&v, &coa),
        Err(Error::RoutingHeaderPresent(2))
    );
    let v = edit::insert_hao_vec(&orig, &coa).unwrap();
    assert_eq!(
        edit::insert_hao_vec(&v, &coa),
        Err(Error::Duplicate("Home Address option"))
    );
    // Not a home address.
    let mut m = orig.clone();
    m[24..40].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
    assert_eq!(
        edit::insert_rh2_vec(&m, &coa),
        Err(Error::BadHomeAddress(Ipv6Addr::LOCALHOST))
    );
    // Bounds outside the buffer.
    let mut buf = orig.clone();
    assert_eq!(
        edit::insert_rh2(&mut buf, 30, orig.len(), &coa),
        Err(Error::BadBounds {
            start: 30,
            len: orig.len(),
            buf_len: orig.len()
        })
    );
    assert_eq!(
        edit::strip_hao(&mut buf, usize::MAX, 2),
        Err(Error::BadBounds {
            start: usize::MAX,
            len: 2,
            buf_len: orig.len()
        })
    );
    assert_eq!(buf, orig);
}

#[test]
fn payload_length_limit() {
    let coa = a("2001:db8:2::100");
    let mut big = vec![0u8; 40 + 65535];
    Ipv6Repr {
        src_addr: a("2001:db8:1::100"),
        dst_addr: a("2001:db8:3::10"),
        next_header: ip_proto::NO_NEXT_HEADER,
        payload_len: 65535,
        hop_limit: 1,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(&mut big)
    .unwrap();
    assert_eq!(
        edit::insert_rh2_vec(&big, &coa),
        Err(Error::PayloadTooLong(65535 + 24))
    );
    assert_eq!(
        edit::insert_hao_vec(&big, &coa),
        Err(Error::PayloadTooLong(65535 + 24))
    );
    assert_eq!(
        edit::encapsulate_vec(&big, &TunnelParams::new(coa, coa)),
        Err(Error::PayloadTooLong(65575))
    );
}

#[test]
fn strip_hao_keeps_other_options_as_padn() {
    let coa = a("2001:db8:2::100");
    let hoa = a("2001:db8:1::100");
    let cn = a("2001:db8:3::10");
    // Dest Opts with an unknown skip-type option next to the HAO.
    let d = DestOptsRepr {
        next_header: ip_proto::NO_NEXT_HEADER,
        options: vec![
            DestOption::Unknown {
                opt_type: 0x1e,
                data: vec![9, 9],
            },
            DestOption::HomeAddress(hoa),
        ],
    }
    .to_bytes()
    .unwrap();
    let mut v = vec![0u8; 40];
    Ipv6Repr {
        src_addr: coa,
        dst_addr: cn,
        next_header: ip_proto::DEST_OPTS,
        payload_len: d.len(),
        hop_limit: 9,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(&mut v)
    .unwrap();
    v.extend_from_slice(&d);
    let c = ExtChain::walk(&v).unwrap();
    assert!(!c.hao().unwrap().sole_option);
    let (w, st) = edit::strip_hao_vec(&v).unwrap();
    assert_eq!((st.home_address, st.care_of_address), (hoa, coa));
    assert_eq!(w.len(), v.len());
    assert_eq!(Ipv6Packet::new_checked(&w[..]).unwrap().src_addr(), hoa);
    let h = DestOptsHeader::new_checked(&w[40..]).unwrap();
    let r = DestOptsRepr::parse(&h).unwrap();
    assert_eq!(
        r.options,
        vec![DestOption::Unknown {
            opt_type: 0x1e,
            data: vec![9, 9]
        }]
    );
    assert_eq!(ExtChain::walk(&w).unwrap().hao(), None);
}

#[test]
fn raw_api_moves_only_the_header() {
    // The payload stays where it is: only the 40-octet header moves into headroom.
    let coa = a("2001:db8:2::100");
    let orig = sample();
    let mut buf = vec![0u8; 24];
    buf.extend_from_slice(&orig);
    let payload_at = 24 + 40;
    let b = edit::insert_rh2(&mut buf, 24, orig.len(), &coa).unwrap();
    assert_eq!(
        b,
        edit::Bounds {
            start: 0,
            len: orig.len() + 24
        }
    );
    assert_eq!(&buf[payload_at..], &orig[40..]);
    assert_eq!(buf[6], ip_proto::ROUTING);
    let s = edit::strip_rh2(&mut buf, b.start, b.len).unwrap();
    assert_eq!(
        s.bounds,
        edit::Bounds {
            start: 24,
            len: orig.len()
        }
    );
    assert_eq!(&buf[s.bounds.range()], &orig[..]);
}
