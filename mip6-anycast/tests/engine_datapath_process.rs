//! The datapath without I/O: table semantics of [`Datapath::process`] for a
//! correspondent, a member and a home agent, exact output bytes (compared
//! with the wire layer's own edits), drops per reason, no allocation per
//! packet, and hostile bytes (property tests) that never panic and never
//! yield an output that is not a well-formed IPv6 packet. No root needed.
#![cfg(feature = "engine")]

mod engine_datapath_util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv6Addr;
use std::time::Instant;

use engine_datapath_util::packets::*;
use mip6_anycast::engine::datapath::{
    Action, BindingKey, Datapath, DatapathConfig, DropReason, HEADROOM, PuntInfo, Rewrite,
    TableUpdate, TunnelOuter, Verdict, WireErrorKind,
};
use mip6_anycast::wire::{Bounds, Ipv6Packet, ip_proto};
use proptest::prelude::*;

// ---- a counting allocator (per thread) ----

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; the
// bookkeeping touches only const-initialised thread-locals.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- the three roles ----

fn c() -> Ipv6Addr {
    a("2001:db8:c::1")
}
fn c2() -> Ipv6Addr {
    a("2001:db8:c::2")
}
fn d() -> Ipv6Addr {
    a("2001:db8:d::1")
}
fn ha() -> Ipv6Addr {
    a("2001:db8:a::1")
}
fn x() -> Ipv6Addr {
    a("2001:db8:ff::1")
}
fn x2() -> Ipv6Addr {
    a("2001:db8:ff::2")
}
fn y() -> Ipv6Addr {
    a("2001:db8:ff::99")
}
fn coa() -> Ipv6Addr {
    a("2001:db8:b::2")
}
fn coa2() -> Ipv6Addr {
    a("2001:db8:b::3")
}

fn programmed(updates: &[TableUpdate]) -> Datapath {
    let mut dp = Datapath::new(DatapathConfig::default());
    for u in updates {
        dp.apply(u).expect("update");
    }
    dp
}

/// Client host C with a binding X -> CoA.
fn cn() -> Datapath {
    programmed(&[
        TableUpdate::AddLocalAddress { addr: c() },
        TableUpdate::AddLocalAddress { addr: c2() },
        TableUpdate::AddCorrespondentBinding {
            cn: c(),
            hoa: x(),
            coa: coa(),
        },
    ])
}

/// Member K: X is ours, CoA, reverse tunnel to the HA, route optimization
/// toward C.
fn member() -> Datapath {
    programmed(&[
        TableUpdate::AddLocalAddress { addr: coa() },
        TableUpdate::AddLocalHomeAddress { hoa: x() },
        TableUpdate::AddReverseTunnel {
            hoa: x(),
            coa: coa(),
            home_agent: ha(),
        },
        TableUpdate::AddHomeAddressBinding {
            hoa: x(),
            peer: c(),
            coa: coa(),
        },
    ])
}

/// The home agent with X and X2 registered.
fn home_agent() -> Datapath {
    programmed(&[
        TableUpdate::AddLocalAddress { addr: ha() },
        TableUpdate::AddHomeTunnel {
            hoa: x(),
            home_agent: ha(),
            coa: coa(),
        },
        TableUpdate::AddHomeTunnel {
            hoa: x2(),
            home_agent: ha(),
            coa: coa2(),
        },
    ])
}

/// Processes a copy of `pkt` (with headroom); returns the verdict and the
/// bytes it points at (empty for drops and binding errors).
fn run(dp: &mut Datapath, pkt: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + pkt.len() + 16];
    buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
    let b = Bounds {
        start: HEADROOM,
        len: pkt.len(),
    };
    let v = dp.process(&mut buf, b, Instant::now());
    let out = match v {
        Verdict::Tun(b)
        | Verdict::Wire { bounds: b, .. }
        | Verdict::Punt(PuntInfo::Mobility { bounds: b, .. }) => buf[b.range()].to_vec(),
        _ => Vec::new(),
    };
    (v, out)
}

fn usage(dp: &Datapath, key: BindingKey) -> u64 {
    dp.tables().usage(&key).map_or(0, |u| u.packets)
}

fn assert_drop(dp: &mut Datapath, pkt: &[u8], reason: DropReason) {
    let before = dp.counters().drop_count(reason);
    let (v, _) = run(dp, pkt);
    assert_eq!(v, Verdict::Drop(reason), "{pkt:02x?}");
    assert_eq!(dp.counters().drop_count(reason), before + 1);
}

#[test]
fn correspondent_inserts_rh2_for_bound_pairs_only() {
    let mut dp = cn();
    let p = tcp(c(), x(), b"hello");
    let (v, out) = run(&mut dp, &p);
    assert!(matches!(
        v,
        Verdict::Wire {
            rewrite: Rewrite::Rh2,
            ..
        }
    ));
    assert_eq!(out, with_rh2(&p, coa()));
    assert_eq!(
        usage(&dp, BindingKey::Correspondent { cn: c(), hoa: x() }),
        1
    );
    assert_eq!(dp.counters().action_count(Action::Rh2Inserted).packets, 1);

    // Another of our addresses has no binding for X: sent unchanged.
    let p = tcp(c2(), x(), b"other source");
    let (v, out) = run(&mut dp, &p);
    assert!(matches!(
        v,
        Verdict::Wire {
            rewrite: Rewrite::None,
            ..
        }
    ));
    assert_eq!(out, p);
    // Nothing in the tables for this destination.
    assert_drop(&mut dp, &tcp(c(), d(), b"?"), DropReason::NoTableEntry);
}

#[test]
fn correspondent_accepts_hao_only_with_the_bound_care_of_address() {
    let mut dp = cn();
    let inner = tcp(x(), c(), b"reply");
    let (v, out) = run(&mut dp, &with_hao(&inner, coa()));
    assert!(matches!(v, Verdict::Tun(_)), "{v:?}");
    assert_eq!(out, inner);
    assert_eq!(dp.counters().action_count(Action::HaoStripped).packets, 1);
    assert_eq!(
        usage(&dp, BindingKey::Correspondent { cn: c(), hoa: x() }),
        1
    );

    // RFC 6275 9.3.1: another care-of address, or no binding at all.
    for (p, src, hoa) in [
        (with_hao(&inner, coa2()), coa2(), x()),
        (with_hao(&tcp(y(), c(), b"?"), coa()), coa(), y()),
    ] {
        let (v, _) = run(&mut dp, &p);
        assert_eq!(
            v,
            Verdict::Punt(PuntInfo::HaoWithoutBinding { src, dst: c(), hoa })
        );
    }
    assert_eq!(dp.counters().drop_count(DropReason::HaoWithoutBinding), 2);
    assert_eq!(
        dp.counters()
            .action_count(Action::HaoWithoutBindingReported)
            .packets,
        2
    );
    // Not addressed to us: no binding error for someone else's packet.
    assert_drop(
        &mut dp,
        &with_hao(&tcp(x(), d(), b"?"), coa()),
        DropReason::NotOurs,
    );
}

#[test]
fn member_strips_rh2_for_its_home_address_at_its_care_of_address() {
    let mut dp = member();
    let inner = tcp(c(), x(), b"data");
    let (v, out) = run(&mut dp, &with_rh2(&inner, coa()));
    assert!(matches!(v, Verdict::Tun(_)), "{v:?}");
    assert_eq!(out, inner);
    assert_drop(&mut dp, &with_rh2(&inner, coa2()), DropReason::NotOurs);
    assert_drop(
        &mut dp,
        &with_rh2(&tcp(c(), y(), b"?"), coa()),
        DropReason::UnknownHomeAddress,
    );
}

#[test]
fn member_sends_with_hao_or_through_the_reverse_tunnel() {
    let mut dp = member();
    let p = tcp(x(), c(), b"to a bound peer");
    let (v, out) = run(&mut dp, &p);
    assert!(matches!(
        v,
        Verdict::Wire {
            rewrite: Rewrite::Hao,
            ..
        }
    ));
    assert_eq!(out, with_hao(&p, coa()));
    assert_eq!(
        usage(
            &dp,
            BindingKey::HomeAddress {
                hoa: x(),
                peer: c()
            }
        ),
        1
    );

    let p = tcp(x(), d(), b"to anyone else");
    let (v, out) = run(&mut dp, &p);
    assert!(matches!(
        v,
        Verdict::Wire {
            rewrite: Rewrite::Tunnel,
            ..
        }
    ));
    assert_eq!(out, tunnel(coa(), ha(), &p));
    assert_eq!(usage(&dp, BindingKey::ReverseTunnel { hoa: x() }), 1);

    dp.apply(&TableUpdate::RemoveReverseTunnel { hoa: x() })
        .expect("remove");
    assert_drop(&mut dp, &p, DropReason::NoBinding);
}

#[test]
fn home_agent_tunnels_and_accepts_only_the_registered_care_of_address() {
    let mut dp = home_agent();
    let p = tcp(c(), x(), b"to the home address");
    let (v, out) = run(&mut dp, &p);
    assert!(matches!(
        v,
        Verdict::Wire {
            rewrite: Rewrite::Tunnel,
            ..
        }
    ));
    assert_eq!(out, tunnel(ha(), coa(), &p));

    // RFC 6275 10.4.5: reverse tunnel from the registered care-of address.
    let inner = tcp(x(), c(), b"reverse tunnelled");
    let (v, out) = run(&mut dp, &tunnel(coa(), ha(), &inner));
    assert!(matches!(v, Verdict::Tun(_)), "{v:?}");
    assert_eq!(out, inner);
    assert_eq!(
        dp.counters()
            .action_count(Action::HomeTunnelDecapsulated)
            .packets,
        1
    );
    assert_eq!(usage(&dp, BindingKey::HomeTunnel { hoa: x() }), 2);
    for bogus in [
        tunnel(coa2(), ha(), &inner),                  // X registered elsewhere
        tunnel(coa(), a("2001:db8:a::9"), &inner),     // not our end
        tunnel(coa(), ha(), &tcp(y(), c(), b"?")),     // unregistered source
        tunnel(d(), ha(), &tcp(c(), x(), b"spoofed")), // inbound spoof
    ] {
        assert_drop(&mut dp, &bogus, DropReason::TunnelNotAllowed);
    }

    // X talks to X2 (both registered): straight into X2's tunnel, the
    // inner hop limit decremented as a router does.
    let inner = tcp(x(), x2(), b"mobile to mobile");
    let (v, out) = run(&mut dp, &tunnel(coa(), ha(), &inner));
    assert!(matches!(v, Verdict::Wire { .. }), "{v:?}");
    assert_eq!(out, tunnel(ha(), coa2(), &hop_limit(inner, 63)));
}

#[test]
fn member_decapsulates_only_from_its_home_agent() {
    let mut dp = member();
    let inner = tcp(c(), x(), b"via the home agent");
    let (v, out) = run(&mut dp, &tunnel(ha(), coa(), &inner));
    assert!(matches!(v, Verdict::Tun(_)), "{v:?}");
    assert_eq!(out, inner);
    assert_eq!(
        dp.counters()
            .action_count(Action::ReverseTunnelDecapsulated)
            .packets,
        1
    );
    assert_drop(
        &mut dp,
        &tunnel(d(), coa(), &inner),
        DropReason::TunnelNotAllowed,
    );
    assert_drop(
        &mut dp,
        &tunnel(ha(), coa(), &tcp(c(), y(), b"?")),
        DropReason::TunnelNotAllowed,
    );
}

#[test]
fn mobility_headers_are_punted_relayed_or_forwarded() {
    // A BU (with HAO) to the correspondent: punted whole, unmodified.
    let mut dp = cn();
    let p = bu(coa2(), x(), c(), 9);
    let (v, out) = run(&mut dp, &p);
    assert!(
        matches!(
            v,
            Verdict::Punt(PuntInfo::Mobility {
                mh_type: 5,
                tunnel: None,
                ..
            })
        ),
        "{v:?}"
    );
    assert_eq!(out, p);
    // A bad checksum is counted, not punted.
    let mut bad = p.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert_drop(&mut dp, &bad, DropReason::Malformed);
    assert_eq!(
        dp.counters().wire_error_count(WireErrorKind::BadChecksum),
        1
    );
    // A plain HoTI to the correspondent.
    let p = hoti(x(), c(), 1);
    let (v, out) = run(&mut dp, &p);
    assert!(matches!(
        v,
        Verdict::Punt(PuntInfo::Mobility { mh_type: 1, .. })
    ));
    assert_eq!(out, p);

    // The home agent forwards a reverse-tunnelled HoTI (kernel path) and
    // relays a HoT for X through X's tunnel (RFC 6275 10.4.6).
    let mut dp = home_agent();
    let p = hoti(x(), c(), 2);
    let (v, out) = run(&mut dp, &tunnel(coa(), ha(), &p));
    assert!(matches!(v, Verdict::Tun(_)), "{v:?}");
    assert_eq!(out, p);
    let p = hot(c(), x(), 2);
    let (v, out) = run(&mut dp, &p);
    assert!(matches!(v, Verdict::Wire { .. }), "{v:?}");
    assert_eq!(out, tunnel(ha(), coa(), &hop_limit(p.clone(), 63)));
    assert_eq!(
        dp.counters().action_count(Action::MobilityRelayed).packets,
        1
    );
    assert_drop(&mut dp, &hop_limit(p, 1), DropReason::HopLimit);
    assert_drop(&mut dp, &hot(c(), y(), 3), DropReason::NotOurs);

    // The member gets the HoT out of the tunnel, with the tunnel noted.
    let mut dp = member();
    let p = hot(c(), x(), 2);
    let (v, out) = run(&mut dp, &tunnel(ha(), coa(), &p));
    assert_eq!(
        v,
        Verdict::Punt(PuntInfo::Mobility {
            bounds: Bounds {
                start: HEADROOM + 40,
                len: p.len()
            },
            mh_type: 3,
            tunnel: Some(TunnelOuter {
                src: ha(),
                dst: coa()
            }),
        })
    );
    assert_eq!(out, p);
    // And a Mobility Header with an RH2 for X at its care-of address (a
    // Binding Acknowledgement, RFC 6275 9.5.4) is punted with the RH2.
    let p = with_rh2(&hot(ha(), x(), 4), coa());
    let (v, out) = run(&mut dp, &p);
    assert!(
        matches!(v, Verdict::Punt(PuntInfo::Mobility { .. })),
        "{v:?}"
    );
    assert_eq!(out, p);
}

#[test]
fn nested_tunnels_fragments_and_loops_are_dropped() {
    let mut dp = home_agent();
    let nested = tunnel(coa(), ha(), &tunnel(x(), c(), &tcp(x(), c(), b"?")));
    assert_drop(&mut dp, &nested, DropReason::NestedTunnel);

    // Destination options (PadN only) + non-first fragment: the upper
    // layer is not here.
    let mut payload = vec![ip_proto::FRAGMENT, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&[ip_proto::IPV6, 0, 0, 8, 0, 0, 0, 1]);
    payload.extend_from_slice(&[0u8; 16]);
    let frag = ipv6(coa(), ha(), ip_proto::DEST_OPTS, &payload);
    assert_drop(&mut dp, &frag, DropReason::Fragment);

    // A non-first fragment of route-optimized traffic still has its RH2
    // (unfragmentable part): stripped and handed to the kernel.
    let mut m = member();
    let mut payload = vec![ip_proto::TCP, 0, 0, 8, 0, 0, 0, 1];
    payload.extend_from_slice(&[0u8; 16]);
    let frag = ipv6(c(), x(), ip_proto::FRAGMENT, &payload);
    let (v, out) = run(&mut m, &with_rh2(&frag, coa()));
    assert!(matches!(v, Verdict::Tun(_)), "{v:?}");
    assert_eq!(out, frag);

    // Loop guard: a steered-in packet (other destination options) for X,
    // which the correspondent steers into the TUN, is never written back.
    let mut dp = cn();
    let mut payload = vec![ip_proto::TCP, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&[0u8; 20]);
    assert_drop(
        &mut dp,
        &ipv6(d(), x(), ip_proto::DEST_OPTS, &payload),
        DropReason::Loop,
    );
    // Without a steered destination the same kind of packet goes back to
    // the kernel unchanged.
    let p = ipv6(d(), c(), ip_proto::DEST_OPTS, &payload);
    let (v, out) = run(&mut dp, &p);
    assert!(matches!(v, Verdict::Tun(_)));
    assert_eq!(out, p);
    assert_eq!(
        dp.counters().action_count(Action::ReturnedToKernel).packets,
        2
    );
}

#[test]
fn link_traffic_and_spoofed_home_address_sources() {
    // The kernel's MLD report on the TUN (hop-by-hop first, multicast).
    let mut dp = home_agent();
    let mut hbh = vec![ip_proto::ICMPV6, 0, 5, 2, 0, 0, 1, 0];
    hbh.extend_from_slice(&[143, 0, 0, 0, 0, 0, 0, 0]);
    let mld = ipv6(
        Ipv6Addr::UNSPECIFIED,
        a("ff02::16"),
        ip_proto::HOP_BY_HOP,
        &hbh,
    );
    assert_drop(&mut dp, &mld, DropReason::TunLinkTraffic);
    assert_drop(
        &mut dp,
        &tcp(a("fe80::1"), a("fe80::2"), b"link-local"),
        DropReason::TunLinkTraffic,
    );

    // From outside, claiming the member's home address as source, with
    // other destination options: not tunnelled on X's behalf, and not
    // handed to the kernel either (its "from X" rule would loop it).
    let mut m = member();
    let mut payload = vec![ip_proto::TCP, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&[0u8; 20]);
    assert_drop(
        &mut m,
        &ipv6(x(), d(), ip_proto::DEST_OPTS, &payload),
        DropReason::Loop,
    );
    assert_eq!(
        m.counters()
            .action_count(Action::ReverseTunnelEncapsulated)
            .packets,
        0
    );
    // To X itself it is the kernel's business (delivered locally).
    let p = ipv6(d(), x(), ip_proto::DEST_OPTS, &payload);
    let (v, out) = run(&mut m, &p);
    assert!(matches!(v, Verdict::Tun(_)));
    assert_eq!(out, p);
}

#[test]
fn table_changes_take_effect_immediately() {
    let mut dp = cn();
    let p = tcp(c(), x(), b"x");
    dp.apply(&TableUpdate::RemoveCorrespondentBinding { cn: c(), hoa: x() })
        .expect("remove");
    // No binding left and X no longer steered: nothing applies.
    assert_drop(&mut dp, &p, DropReason::NoTableEntry);
    let (v, _) = run(&mut dp, &with_hao(&tcp(x(), c(), b"late"), coa()));
    assert!(matches!(
        v,
        Verdict::Punt(PuntInfo::HaoWithoutBinding { .. })
    ));
    dp.apply(&TableUpdate::AddCorrespondentBinding {
        cn: c(),
        hoa: x(),
        coa: coa2(),
    })
    .expect("add");
    let (_, out) = run(&mut dp, &p);
    assert_eq!(out, with_rh2(&p, coa2()));
    dp.apply(&TableUpdate::Clear).expect("clear");
    assert_drop(&mut dp, &bu(coa(), x(), c(), 1), DropReason::NotOurs);
}

fn samples() -> Vec<Vec<u8>> {
    vec![
        tcp(c(), x(), b"hello"),
        tcp(c2(), x(), b"hello"),
        with_hao(&tcp(x(), c(), b"reply"), coa()),
        with_hao(&tcp(x(), c(), b"reply"), coa2()),
        with_rh2(&tcp(c(), x(), b"data"), coa()),
        tcp(x(), c(), b"hao"),
        tcp(x(), d(), b"tunnel"),
        tunnel(coa(), ha(), &tcp(x(), c(), b"rev")),
        tunnel(ha(), coa(), &tcp(c(), x(), b"fwd")),
        tunnel(coa(), ha(), &tcp(x(), x2(), b"m2m")),
        tunnel(coa(), ha(), &tunnel(x(), c(), &tcp(x(), c(), b"?"))),
        bu(coa(), x(), c(), 1),
        hoti(x(), c(), 1),
        hot(c(), x(), 1),
        tunnel(ha(), coa(), &hot(c(), x(), 1)),
        tunnel(coa(), ha(), &hoti(x(), c(), 1)),
    ]
}

#[test]
fn processing_allocates_nothing() {
    let samples = samples();
    let mut dps = [cn(), member(), home_agent()];
    let mut buf = vec![0u8; HEADROOM + 2048];
    let now = Instant::now();
    ON.with(|on| on.set(true));
    for dp in dps.iter_mut() {
        for p in &samples {
            buf[HEADROOM..HEADROOM + p.len()].copy_from_slice(p);
            let b = Bounds {
                start: HEADROOM,
                len: p.len(),
            };
            std::hint::black_box(dp.process(&mut buf, b, now));
        }
    }
    ON.with(|on| on.set(false));
    assert_eq!(ALLOCS.with(|n| n.get()), 0, "allocations on the hot path");
}

/// The invariant of every verdict on any input: an output is a complete
/// IPv6 packet inside the buffer.
fn check_verdict(buf: &[u8], v: &Verdict) {
    let b = match v {
        Verdict::Tun(b)
        | Verdict::Wire { bounds: b, .. }
        | Verdict::Punt(PuntInfo::Mobility { bounds: b, .. }) => *b,
        _ => return,
    };
    let pkt = buf
        .get(b.range())
        .expect("verdict bounds inside the buffer");
    let ip = Ipv6Packet::new_checked(pkt).expect("output parses as IPv6");
    assert_eq!(ip.total_len(), pkt.len(), "output length is exact");
}

fn steered_packet() -> impl Strategy<Value = Vec<u8>> {
    let nh = prop::sample::select(vec![43u8, 60, 135, 41, 6, 0, 44]);
    (
        nh,
        prop::collection::vec(any::<u8>(), 0..160),
        any::<bool>(),
    )
        .prop_map(|(nh, tail, fix_len)| {
            let mut p = ipv6(coa(), x(), nh, &tail);
            if !fix_len {
                p[4] = tail.len() as u8;
            }
            p
        })
}

fn mutated_sample() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(samples()),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut p, flips, cut, truncate)| {
            for (i, v) in flips {
                let at = i.index(p.len());
                p[at] = v;
            }
            if truncate {
                p.truncate(cut.index(p.len() + 1));
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn hostile_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..200),
                                 steered in steered_packet(),
                                 mutated in mutated_sample()) {
        let mut dps = [cn(), member(), home_agent()];
        for p in [&raw, &steered, &mutated] {
            for dp in dps.iter_mut() {
                let mut buf = vec![0u8; HEADROOM + p.len() + 8];
                buf[HEADROOM..HEADROOM + p.len()].copy_from_slice(p);
                let v = dp.process(&mut buf, Bounds { start: HEADROOM, len: p.len() }, Instant::now());
                check_verdict(&buf, &v);
            }
        }
        // Bounds that do not fit the buffer are a counted drop, too.
        let mut dp = cn();
        let mut small = vec![0u8; 8];
        let v = dp.process(&mut small, Bounds { start: 4, len: usize::MAX }, Instant::now());
        prop_assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    }
}
