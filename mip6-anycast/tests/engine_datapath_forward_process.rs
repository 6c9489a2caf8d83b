//! Member forwarding for client handoff in the pure datapath (no root):
//! a donor forwards a client's packets (after RH2 strip or home tunnel
//! decapsulation) to the acceptor in an IPv6-in-IPv6 tunnel; the acceptor
//! accepts them only from group members, only for clients it has an entry
//! for, holds them (bounded, overflow counted) and releases them in order.
#![cfg(feature = "engine")]

mod engine_datapath_util;

use std::net::Ipv6Addr;
use std::time::Instant;

use engine_datapath_util::packets::*;
use mip6_anycast::engine::datapath::{
    Action, ClientMode, Datapath, DatapathConfig, DropReason, HEADROOM, HoldLimit, MemberOutput,
    Rewrite, TableUpdate, Verdict,
};
use mip6_anycast::wire::{Bounds, Ipv6Packet, ip6ip6};
use proptest::prelude::*;

fn c() -> Ipv6Addr {
    a("2001:db8:c::1")
}
fn c2() -> Ipv6Addr {
    a("2001:db8:c::2")
}
fn x() -> Ipv6Addr {
    a("2001:db8:ff::1")
}
fn ha() -> Ipv6Addr {
    a("2001:db8:1::1")
}
fn coa_k() -> Ipv6Addr {
    a("2001:db8:2::2")
}
fn coa_a() -> Ipv6Addr {
    a("2001:db8:3::3")
}
fn stranger() -> Ipv6Addr {
    a("2001:db8:9::9")
}

fn programmed(updates: &[TableUpdate]) -> Datapath {
    let mut dp = Datapath::new(DatapathConfig::default());
    for u in updates {
        dp.apply(u).expect("update");
    }
    dp
}

/// A member at `coa` with X, the reverse tunnel, route optimization toward
/// C, and `peer` as a group member.
fn member(coa: Ipv6Addr, peer: Ipv6Addr) -> Datapath {
    programmed(&[
        TableUpdate::AddLocalAddress { addr: coa },
        TableUpdate::AddLocalHomeAddress { hoa: x() },
        TableUpdate::AddReverseTunnel {
            hoa: x(),
            coa,
            home_agent: ha(),
        },
        TableUpdate::AddHomeAddressBinding {
            hoa: x(),
            peer: c(),
            coa,
        },
        TableUpdate::AddGroupMember { coa: peer },
    ])
}

fn run(dp: &mut Datapath, pkt: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + pkt.len() + 16];
    buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
    let b = Bounds {
        start: HEADROOM,
        len: pkt.len(),
    };
    let v = dp.process(&mut buf, b, Instant::now());
    let out = match v {
        Verdict::Tun(b) | Verdict::Wire { bounds: b, .. } | Verdict::Hold { bounds: b, .. } => {
            buf[b.range()].to_vec()
        }
        _ => Vec::new(),
    };
    (v, out)
}

/// Runs `pkt` and, for a hold verdict, queues it as the engine does.
fn run_and_hold(dp: &mut Datapath, pkt: &[u8]) -> Verdict {
    let (v, out) = run(dp, pkt);
    if let Verdict::Hold { hoa, client, .. } = v {
        dp.hold_packet(&out, hoa, client);
    }
    v
}

fn outputs(dp: &mut Datapath) -> Vec<MemberOutput> {
    std::iter::from_fn(|| dp.take_member_output()).collect()
}

fn with_hop_limit(mut p: Vec<u8>, hl: u8) -> Vec<u8> {
    p[7] = hl;
    p
}

fn forward_to_a() -> TableUpdate {
    TableUpdate::ForwardClient {
        hoa: x(),
        client: c(),
        local: coa_k(),
        member: coa_a(),
    }
}

#[test]
fn donor_forwards_stripped_and_decapsulated_packets_to_the_acceptor() {
    let mut k = member(coa_k(), coa_a());
    k.apply(&forward_to_a()).unwrap();
    // Route optimized: RH2 to CoA_K, stripped, then tunnelled to CoA_A.
    let inner = tcp(c(), x(), b"after the switch");
    let (v, out) = run(&mut k, &with_rh2(&inner, coa_k()));
    assert!(
        matches!(
            v,
            Verdict::Wire {
                rewrite: Rewrite::Tunnel,
                ..
            }
        ),
        "{v:?}"
    );
    let d = ip6ip6::decapsulate(&out).unwrap();
    assert_eq!((d.outer_src, d.outer_dst), (coa_k(), coa_a()));
    assert_eq!(d.inner, &with_hop_limit(inner.clone(), 63)[..]);
    // Through the home agent: decapsulated, then tunnelled on.
    let (v, out) = run(&mut k, &tunnel(ha(), coa_k(), &inner));
    assert!(matches!(v, Verdict::Wire { .. }), "{v:?}");
    assert_eq!(
        ip6ip6::decapsulate(&out).unwrap().inner,
        &with_hop_limit(inner.clone(), 63)[..]
    );
    // Other clients, other destinations and Mobility Headers are untouched.
    let (v, out) = run(&mut k, &with_rh2(&tcp(c2(), x(), b"other"), coa_k()));
    assert!(matches!(v, Verdict::Tun(_)), "{v:?}");
    assert_eq!(out, tcp(c2(), x(), b"other"));
    let (v, _) = run(&mut k, &with_rh2(&hoti(c(), x(), 1), coa_k()));
    assert!(matches!(v, Verdict::Drop(_) | Verdict::Punt(_)), "{v:?}");
    assert_eq!(
        k.counters().action_count(Action::MemberForwarded).packets,
        2
    );
    let s = k.member_status(&x(), &c(), Instant::now()).unwrap();
    assert_eq!(s.forwarded, 2);
    assert!(s.forward_idle_ms.is_some());
    // A packet about to run out of hops is not forwarded.
    let before = k.counters().drop_count(DropReason::HopLimit);
    let (v, _) = run(&mut k, &with_rh2(&with_hop_limit(inner, 1), coa_k()));
    assert_eq!(v, Verdict::Drop(DropReason::HopLimit));
    assert_eq!(k.counters().drop_count(DropReason::HopLimit), before + 1);
}

#[test]
fn acceptor_holds_then_releases_in_order() {
    let mut a = member(coa_a(), coa_k());
    a.apply(&TableUpdate::HoldClient {
        hoa: x(),
        client: c(),
        limit: HoldLimit::default(),
    })
    .unwrap();
    let data: Vec<Vec<u8>> = (0..5u8)
        .map(|i| with_hop_limit(tcp(c(), x(), &[i; 10]), 63))
        .collect();
    for (i, p) in data.iter().enumerate() {
        // Alternate: forwarded by the donor, and direct (RH2 after C's binding).
        let v = if i % 2 == 0 {
            run_and_hold(&mut a, &tunnel(coa_k(), coa_a(), p))
        } else {
            run_and_hold(&mut a, &with_rh2(p, coa_a()))
        };
        assert!(matches!(v, Verdict::Hold { .. }), "{v:?}");
    }
    assert!(outputs(&mut a).is_empty(), "nothing released yet");
    let s = a.member_status(&x(), &c(), Instant::now()).unwrap();
    assert_eq!((s.mode, s.queued_packets, s.held), (ClientMode::Hold, 5, 5));
    a.apply(&TableUpdate::ReleaseClient {
        hoa: x(),
        client: c(),
    })
    .unwrap();
    let released: Vec<Vec<u8>> = outputs(&mut a)
        .into_iter()
        .map(|o| match o {
            MemberOutput::Tun(p) => p,
            other => panic!("released to the wire: {other:?}"),
        })
        .collect();
    assert_eq!(released, data, "released in arrival order, unchanged");
    assert_eq!(a.counters().action_count(Action::MemberReleased).packets, 5);
    assert_eq!(
        a.counters()
            .action_count(Action::MemberDecapsulated)
            .packets,
        3
    );
    // Delivered from now on, also when still forwarded by the donor.
    let (v, out) = run(&mut a, &tunnel(coa_k(), coa_a(), &data[0]));
    assert!(matches!(v, Verdict::Tun(_)), "{v:?}");
    assert_eq!(out, data[0]);
    // Removing the entry ends the acceptance of forwarded packets.
    a.apply(&TableUpdate::RemoveClient {
        hoa: x(),
        client: c(),
    })
    .unwrap();
    let (v, _) = run(&mut a, &tunnel(coa_k(), coa_a(), &data[0]));
    assert_eq!(v, Verdict::Drop(DropReason::MemberTunnelRefused));
}

#[test]
fn hold_overflow_and_discard_are_counted() {
    let mut a = member(coa_a(), coa_k());
    a.apply(&TableUpdate::HoldClient {
        hoa: x(),
        client: c(),
        limit: HoldLimit {
            packets: 3,
            bytes: 1 << 20,
        },
    })
    .unwrap();
    for i in 0..5u8 {
        run_and_hold(&mut a, &tunnel(coa_k(), coa_a(), &tcp(c(), x(), &[i])));
    }
    let s = a.member_status(&x(), &c(), Instant::now()).unwrap();
    assert_eq!((s.queued_packets, s.overflow), (3, 2));
    assert_eq!(a.counters().drop_count(DropReason::HoldOverflow), 2);
    a.apply(&TableUpdate::RemoveClient {
        hoa: x(),
        client: c(),
    })
    .unwrap();
    assert_eq!(a.counters().drop_count(DropReason::HoldDiscarded), 3);
    assert!(outputs(&mut a).is_empty());
}

#[test]
fn hold_then_forward_flushes_the_queue_to_the_member() {
    // A donor that held first (e.g. rolling back, then handing off again).
    let mut k = member(coa_k(), coa_a());
    k.apply(&TableUpdate::HoldClient {
        hoa: x(),
        client: c(),
        limit: HoldLimit::default(),
    })
    .unwrap();
    let p1 = tcp(c(), x(), b"one");
    let p2 = tcp(c(), x(), b"two");
    run_and_hold(&mut k, &with_rh2(&p1, coa_k()));
    run_and_hold(&mut k, &with_rh2(&p2, coa_k()));
    k.apply(&forward_to_a()).unwrap();
    let flushed: Vec<Vec<u8>> = outputs(&mut k)
        .into_iter()
        .map(|o| match o {
            MemberOutput::Wire(p) => {
                let d = ip6ip6::decapsulate(&p).unwrap();
                assert_eq!((d.outer_src, d.outer_dst), (coa_k(), coa_a()));
                d.inner.to_vec()
            }
            other => panic!("flushed into the TUN: {other:?}"),
        })
        .collect();
    assert_eq!(
        flushed,
        vec![with_hop_limit(p1, 63), with_hop_limit(p2, 63)]
    );
}

#[test]
fn member_tunnels_are_refused_unless_everything_matches() {
    let mut a = member(coa_a(), coa_k());
    a.apply(&TableUpdate::HoldClient {
        hoa: x(),
        client: c(),
        limit: HoldLimit::default(),
    })
    .unwrap();
    let p = tcp(c(), x(), b"?");
    // Not a group member: the ordinary tunnel rules refuse it.
    let (v, _) = run(&mut a, &tunnel(stranger(), coa_a(), &p));
    assert_eq!(v, Verdict::Drop(DropReason::TunnelNotAllowed));
    // A member, but: unknown client, not our address, not a home address,
    // not plain (RH2, HAO, Mobility Header, nested tunnel).
    for bad in [
        tunnel(coa_k(), coa_a(), &tcp(c2(), x(), b"?")),
        tunnel(coa_k(), stranger(), &p),
        tunnel(coa_k(), coa_a(), &tcp(c(), stranger(), b"?")),
        tunnel(coa_k(), coa_a(), &with_rh2(&p, coa_a())),
        tunnel(coa_k(), coa_a(), &with_hao(&p, c2())),
        tunnel(coa_k(), coa_a(), &hot(c(), x(), 1)),
        tunnel(coa_k(), coa_a(), &tunnel(c(), x(), &p)),
    ] {
        let (v, _) = run(&mut a, &bad);
        assert!(
            matches!(
                v,
                Verdict::Drop(DropReason::MemberTunnelRefused | DropReason::NestedTunnel)
            ),
            "{v:?}"
        );
    }
    assert_eq!(
        a.member_status(&x(), &c(), Instant::now())
            .unwrap()
            .queued_packets,
        0
    );
    // Removing the member ends it.
    a.apply(&TableUpdate::RemoveGroupMember { coa: coa_k() })
        .unwrap();
    let (v, _) = run(&mut a, &tunnel(coa_k(), coa_a(), &p));
    assert_eq!(v, Verdict::Drop(DropReason::TunnelNotAllowed));
}

#[test]
fn bad_addresses_and_clear() {
    let mut a = member(coa_a(), coa_k());
    assert!(
        a.apply(&TableUpdate::ForwardClient {
            hoa: x(),
            client: c(),
            local: coa_a(),
            member: Ipv6Addr::UNSPECIFIED,
        })
        .is_err()
    );
    assert!(
        a.apply(&TableUpdate::AddGroupMember { coa: a_("ff02::1") })
            .is_err()
    );
    a.apply(&TableUpdate::HoldClient {
        hoa: x(),
        client: c(),
        limit: HoldLimit::default(),
    })
    .unwrap();
    run_and_hold(&mut a, &tunnel(coa_k(), coa_a(), &tcp(c(), x(), b"q")));
    a.apply(&TableUpdate::Clear).unwrap();
    assert_eq!(a.members().sizes(), (0, 0));
    assert_eq!(a.counters().drop_count(DropReason::HoldDiscarded), 1);
    // The update messages serialize like the others.
    let u = TableUpdate::HoldClient {
        hoa: x(),
        client: c(),
        limit: HoldLimit::default(),
    };
    let j = serde_json::to_string(&u).unwrap();
    assert!(j.contains("\"op\":\"hold_client\""), "{j}");
    assert_eq!(serde_json::from_str::<TableUpdate>(&j).unwrap(), u);
    let j = r#"{"op":"hold_client","hoa":"2001:db8:ff::1","client":"2001:db8:c::1"}"#;
    assert_eq!(serde_json::from_str::<TableUpdate>(j).unwrap(), u);
}

fn a_(s: &str) -> Ipv6Addr {
    a(s)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Hostile bytes from a member's address never panic, and every
    /// output is a complete IPv6 packet.
    #[test]
    fn hostile_member_tunnels_never_panic(tail in prop::collection::vec(any::<u8>(), 0..160),
                                          flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6)) {
        let mut p = tunnel(coa_k(), coa_a(), &tcp(c(), x(), &tail));
        for (i, v) in flips {
            let at = i.index(p.len());
            p[at] = v;
        }
        for mode in 0..3 {
            let mut dp = member(coa_a(), coa_k());
            let u = match mode {
                0 => TableUpdate::HoldClient { hoa: x(), client: c(), limit: HoldLimit::default() },
                1 => TableUpdate::ForwardClient { hoa: x(), client: c(), local: coa_a(), member: coa_k() },
                _ => TableUpdate::ReleaseClient { hoa: x(), client: c() },
            };
            dp.apply(&u).unwrap();
            let (v, out) = run(&mut dp, &p);
            if !out.is_empty() {
                let ip = Ipv6Packet::new_checked(&out[..]).expect("output parses");
                prop_assert_eq!(ip.total_len(), out.len());
            }
            if let Verdict::Hold { hoa, client, .. } = v {
                prop_assert!(dp.hold_packet(&out, hoa, client));
            }
        }
    }
}
