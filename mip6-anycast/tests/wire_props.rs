//! Property tests of the wire layer: emit -> parse round trips for every
//! `Repr`, and hostile bytes (random, or valid packets with random damage)
//! never panic any parser or edit helper.

use std::net::Ipv6Addr;

use mip6_anycast::wire::{
    BaFlags, BaStatus, BeStatus, BindingAckRepr, BindingErrorRepr, BindingUpdateRepr, BuFlags,
    CareOfTestInitRepr, CareOfTestRepr, DestOption, DestOptsHeader, DestOptsRepr, ExtChain,
    HomeTestInitRepr, HomeTestRepr, Ipv6Packet, Ipv6Repr, MessageAuth, MhMessage, MhPacketRepr,
    MhRepr, MobilityHeader, MobilityOption, PacketBuf, Rh2Repr, RoutingHeader, TunnelParams,
    ip6ip6, mh,
};
use proptest::prelude::*;

/// Global unicast addresses (valid home addresses).
fn addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(|mut b| {
        b[0] = 0x20;
        b[1] = 0x01;
        Ipv6Addr::from(b)
    })
}

fn message() -> impl Strategy<Value = MhMessage> {
    prop_oneof![
        Just(MhMessage::BindingRefreshRequest),
        any::<[u8; 8]>().prop_map(|c| MhMessage::HomeTestInit(HomeTestInitRepr {
            home_init_cookie: c
        })),
        any::<[u8; 8]>().prop_map(|c| MhMessage::CareOfTestInit(CareOfTestInitRepr {
            care_of_init_cookie: c
        })),
        (any::<u16>(), any::<[u8; 8]>(), any::<[u8; 8]>()).prop_map(|(i, c, t)| {
            MhMessage::HomeTest(HomeTestRepr {
                home_nonce_index: i,
                home_init_cookie: c,
                home_keygen_token: t,
            })
        }),
        (any::<u16>(), any::<[u8; 8]>(), any::<[u8; 8]>()).prop_map(|(i, c, t)| {
            MhMessage::CareOfTest(CareOfTestRepr {
                care_of_nonce_index: i,
                care_of_init_cookie: c,
                care_of_keygen_token: t,
            })
        }),
        (any::<u16>(), 0u16..16, any::<u16>()).prop_map(|(s, f, l)| MhMessage::BindingUpdate(
            BindingUpdateRepr {
                sequence: s,
                flags: BuFlags(f << 12),
                lifetime: l
            }
        )),
        (any::<u8>(), any::<bool>(), any::<u16>(), any::<u16>()).prop_map(|(st, k, s, l)| {
            MhMessage::BindingAck(BindingAckRepr {
                status: BaStatus::from_u8(st),
                flags: if k {
                    BaFlags::KEY_MGMT
                } else {
                    BaFlags::empty()
                },
                sequence: s,
                lifetime: l,
            })
        }),
        (any::<u8>(), any::<[u8; 16]>()).prop_map(|(st, h)| MhMessage::BindingError(
            BindingErrorRepr {
                status: BeStatus::from_u8(st),
                home_address: Ipv6Addr::from(h)
            }
        )),
    ]
}

/// Options that need not be last.
fn middle_option() -> impl Strategy<Value = MobilityOption> {
    prop_oneof![
        any::<u16>().prop_map(|r| MobilityOption::BindingRefreshAdvice {
            refresh_interval: r
        }),
        any::<[u8; 16]>().prop_map(|a| MobilityOption::AlternateCoa(Ipv6Addr::from(a))),
        (any::<u16>(), any::<u16>()).prop_map(|(h, c)| MobilityOption::NonceIndices {
            home_nonce_index: h,
            care_of_nonce_index: c
        }),
        any::<u64>().prop_map(|t| MobilityOption::MesgId { timestamp: t }),
        (
            prop_oneof![6u8..=8, 11u8..=255],
            proptest::collection::vec(any::<u8>(), 0..24)
        )
            .prop_map(|(t, d)| MobilityOption::Unknown {
                opt_type: t,
                data: d
            }),
    ]
}

/// Options that must be last: none, one Binding Authorization Data, or one
/// or two RFC 4285 authentication options.
fn last_options() -> impl Strategy<Value = Vec<MobilityOption>> {
    let auth = (
        any::<u8>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(s, spi, d)| {
            MobilityOption::MessageAuth(MessageAuth {
                subtype: s,
                spi,
                auth_data: d,
            })
        });
    prop_oneof![
        Just(vec![]),
        any::<[u8; 12]>().prop_map(|a| vec![MobilityOption::BindingAuthData { authenticator: a }]),
        proptest::collection::vec(auth, 1..=2),
    ]
}

fn mh_repr() -> impl Strategy<Value = MhRepr> {
    (
        message(),
        proptest::collection::vec(middle_option(), 0..5),
        last_options(),
    )
        .prop_map(|(m, mut o, l)| {
            o.extend(l);
            MhRepr {
                message: m,
                options: o,
            }
        })
}

fn mh_packet() -> impl Strategy<Value = MhPacketRepr> {
    (
        addr(),
        addr(),
        any::<u8>(),
        proptest::option::of(addr()),
        proptest::option::of(addr()),
        mh_repr(),
    )
        .prop_map(|(s, d, hl, hao, rh2, mh)| MhPacketRepr {
            src_addr: s,
            dst_addr: d,
            hop_limit: hl,
            hao,
            rh2,
            mh,
        })
}

fn ipv6_repr() -> impl Strategy<Value = Ipv6Repr> {
    (
        addr(),
        addr(),
        any::<u8>(),
        0usize..=65535,
        any::<u8>(),
        any::<u8>(),
        0u32..(1 << 20),
    )
        .prop_map(|(s, d, nh, pl, hl, tc, fl)| Ipv6Repr {
            src_addr: s,
            dst_addr: d,
            next_header: nh,
            payload_len: pl,
            hop_limit: hl,
            traffic_class: tc,
            flow_label: fl,
        })
}

/// Applies `(index, xor)` damage and a truncation to `v`.
fn damage(mut v: Vec<u8>, flips: &[(usize, u8)], cut: usize) -> Vec<u8> {
    if !v.is_empty() {
        for (i, x) in flips {
            let n = v.len();
            v[i % n] ^= x;
        }
    }
    let keep = v.len().saturating_sub(cut % 8);
    v.truncate(keep);
    v
}

/// Runs every parser and edit helper over `b`; only errors are allowed.
fn exercise(b: &[u8]) {
    let _ = ExtChain::walk(b);
    let _ = MhPacketRepr::parse(b);
    if let Ok(p) = MhPacketRepr::parse_with_bytes(b) {
        let _ = p.binding_auth_input();
        let _ = p.message_auth_input(mh::AUTH_SUBTYPE_MN_HA);
        // Whatever parses must re-emit and parse to the same Repr.
        let again = p.repr.to_bytes().unwrap();
        assert_eq!(MhPacketRepr::parse(&again).unwrap(), p.repr);
    }
    let _ = ip6ip6::decapsulate(b);
    if let Ok(ip) = Ipv6Packet::new_checked(b) {
        let _ = Ipv6Repr::parse(&ip);
    }
    for off in [0usize, 40, 64] {
        let s = b.get(off..).unwrap_or(&[]);
        if let Ok(h) = MobilityHeader::new_checked(s) {
            let _ = MhRepr::parse(&h);
            let _ = h.binding_auth_input();
            let _ = h.message_auth_input(1);
            let _ = h.find_option(5);
            h.options().for_each(drop);
        }
        if let Ok(h) = DestOptsHeader::new_checked(s) {
            let _ = DestOptsRepr::parse(&h);
        }
        if let Ok(h) = RoutingHeader::new_checked(s) {
            let _ = Rh2Repr::parse(&h);
        }
    }
    let coa: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
    let tun = TunnelParams::new(coa, coa);
    for headroom in [0usize, 24, 64] {
        let mut p = PacketBuf::from_packet(b, headroom);
        let _ = p.insert_rh2(&coa);
        let _ = p.insert_hao(&coa);
        let _ = p.swap_hao();
        let _ = p.strip_hao();
        let _ = p.strip_rh2();
        let _ = p.encapsulate(&tun);
        let _ = p.decapsulate();
        assert!(p.bounds().start + p.bounds().len <= b.len() + headroom);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mh_repr_round_trip(r in mh_repr(), src in addr(), dst in addr()) {
        let v = r.to_bytes(&src, &dst).unwrap();
        prop_assert_eq!(v.len(), r.buffer_len());
        prop_assert_eq!(v.len() % 8, 0);
        let h = MobilityHeader::new_checked(&v[..]).unwrap();
        prop_assert!(h.verify_checksum(&src, &dst));
        prop_assert_eq!(MhRepr::parse(&h).unwrap(), r.clone());
        // The authenticated ranges exist exactly when the options do.
        prop_assert_eq!(h.binding_auth_input().is_ok(), r.authenticator().is_some());
        if let Ok(i) = h.binding_auth_input() {
            prop_assert_eq!(i.len(), v.len() - 12);
        }
    }

    #[test]
    fn mh_packet_round_trip(p in mh_packet()) {
        let v = p.to_bytes().unwrap();
        let parsed = MhPacketRepr::parse_with_bytes(&v).unwrap();
        prop_assert_eq!(&parsed.repr, &p);
        prop_assert_eq!(parsed.mh_bytes.len(), p.mh.buffer_len());
        let chain = ExtChain::walk(&v).unwrap();
        prop_assert_eq!(chain.mh_offset(), Some(p.mh_offset()));
        prop_assert_eq!(chain.hao().map(|h| h.home_address), p.hao);
        prop_assert_eq!(chain.rh2().map(|r| r.home_address), p.rh2);
    }

    #[test]
    fn ipv6_repr_round_trip(r in ipv6_repr()) {
        let mut v = vec![0u8; 40 + r.payload_len];
        r.emit_into(&mut v).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&v[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn rh2_round_trip(nh in any::<u8>(), hoa in addr()) {
        let r = Rh2Repr { next_header: nh, home_address: hoa };
        let v = r.to_bytes();
        prop_assert_eq!(Rh2Repr::parse(&RoutingHeader::new_checked(&v[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn dest_opts_round_trip(
        nh in any::<u8>(),
        hao in proptest::option::of(addr()),
        unknown in proptest::collection::vec((2u8..0x40, proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
        hao_at in 0usize..4,
    ) {
        let mut options: Vec<DestOption> =
            unknown.into_iter().map(|(t, d)| DestOption::Unknown { opt_type: t, data: d }).collect();
        if let Some(h) = hao {
            options.insert(hao_at.min(options.len()), DestOption::HomeAddress(h));
        }
        let r = DestOptsRepr { next_header: nh, options };
        let v = r.to_bytes().unwrap();
        prop_assert_eq!(v.len() % 8, 0);
        prop_assert_eq!(DestOptsRepr::parse(&DestOptsHeader::new_checked(&v[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        exercise(&b);
        // Also with a plausible IPv6 header in front.
        let mut v = vec![0x60, 0, 0, 0, 0, 0, 135, 64];
        v.extend_from_slice(&[0x20; 32]);
        let n = b.len().min(0xffff) as u16;
        v[4..6].copy_from_slice(&n.to_be_bytes());
        if let Some(&nh) = b.first() {
            v[6] = [0, 43, 44, 51, 60, 135, 41, 59][usize::from(nh) % 8];
        }
        v.extend_from_slice(&b);
        exercise(&v);
    }

    #[test]
    fn damaged_packets_never_panic(
        p in mh_packet(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        tunnel in any::<bool>(),
    ) {
        let mut v = p.to_bytes().unwrap();
        if tunnel {
            v = ip6ip6::encapsulate_vec(&v, &TunnelParams::new(p.src_addr, p.dst_addr)).unwrap();
        }
        exercise(&damage(v, &flips, cut));
    }
}
