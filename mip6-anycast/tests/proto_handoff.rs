//! The handoff coordinator over the simulated network (DESIGN.md 5):
//! complete handoffs, their latency and message count against the paper's
//! budget (6·Lcs + 3·Lss first, 4·Lcs + Lss with a cached token),
//! sequence numbers across donor -> acceptor -> acceptor -> contact node,
//! and a long run of consecutive handoffs, all without a packet of the
//! client ever reaching a kernel that has no socket for it.

mod handoff_common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use handoff_common::*;
use mip6_anycast::proto::handoff::HandoffEvent;
use mip6_anycast::proto::{BindingEvent, MobileEvent, seq_newer};
use mip6_anycast::wire::mh::mh_type;

/// Every (sequence, care-of address) the client accepted for `c`.
fn accepted_sequences(g: &Group, c: Ipv6Addr) -> Vec<(u16, Ipv6Addr)> {
    g.correspondent()
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            BindingEvent::Added {
                cn, sequence, coa, ..
            }
            | BindingEvent::Updated {
                cn, sequence, coa, ..
            } if *cn == c => Some((*sequence, *coa)),
            _ => None,
        })
        .collect()
}

fn assert_increasing(v: &[(u16, Ipv6Addr)]) {
    for w in v.windows(2) {
        assert!(seq_newer(w[1].0, w[0].0), "not increasing: {v:?}");
    }
}

/// When member `m` saw the client's Binding Acknowledgement for its CoA.
fn bound_at(g: &Group, m: &str, c: Ipv6Addr) -> Option<Instant> {
    let coa = g.node(m).coa;
    g.node(m)
        .mobile_events
        .iter()
        .find(|(_, e)| matches!(e, MobileEvent::Bound { cn, coa: x, .. } if *cn == c && *x == coa))
        .map(|(t, _)| *t)
}

/// Registers client `c` at the contact node's CoA (route optimization).
fn bind_to_contact(g: &mut Group, c: Ipv6Addr) {
    let coa = member_coa(0);
    g.at("k", |n, now| n.mn.register(now, c, coa));
    g.sim.run_for(Duration::from_secs(1));
    assert_eq!(g.binding(c), Some(coa));
}

#[test]
fn handoff_binds_the_client_to_the_acceptor_without_resets() {
    let mut g = Group::new(&["k", "a", "b"], 1, LAT, 1);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    let key = g.handoff("k", c, "a");
    g.run_checked(Duration::from_secs(2), &[c]);

    let a = g.node("a").coa;
    assert_eq!(g.binding(c), Some(a));
    let done = g.node("k").completed();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].1, done[0].2.as_str()), (c, "a"));
    assert_eq!(g.node("a").accepted().len(), 1);
    // The connections moved: closed (silently) at K, live at A.
    assert!(!g.node("k").sockets.contains_key(&c));
    assert_eq!(g.node("a").sockets.get(&c), Some(&Sockets::Live));
    assert_eq!(g.node("k").co.placement(c).map(|p| p.0.as_str()), Some("a"));
    assert!(g.node("a").co.clients().any(|(x, _)| x == c));
    assert!(g.node("k").co.clients().all(|(x, _)| x != c));
    // Each member added the others to its datapath.
    assert_eq!(
        g.node("k").group_members,
        vec![member_coa(1), member_coa(2)]
    );

    // After the lingers: the acceptor delivers normally; the contact node
    // keeps forwarding home-path packets of the placed client to A.
    g.run_checked(Duration::from_secs(20), &[c]);
    assert_eq!(g.node("a").modes.get(&c), None);
    assert_eq!(g.node("k").modes.get(&c), Some(&Mode::Forward(a)));
    assert_eq!(g.node("k").co.in_progress(), (0, 0));
    assert_eq!(g.node("a").co.in_progress(), (0, 0));
    // A replayed Prepare of the finished handoff is answered, not redone.
    let accepted = g.node("a").co.stats().accepted;
    assert!(
        g.node("k").co.stats().ignored_messages == 0,
        "{:?}",
        g.node("k").drops
    );
    assert_eq!(key.donor.as_str(), "k");
    assert_eq!(accepted, 1);
}

/// Runs one handoff K -> A of a client on the home path, returning its
/// elapsed times (client bound, acceptor's BA, acceptor live) and the
/// messages it took.
fn measure(
    lat: Latency,
    cached: bool,
) -> (Duration, Duration, Duration, Vec<&'static str>, Vec<u8>) {
    let mut g = Group::new(&["k", "a"], 1, lat, 2);
    let c = client(0);
    g.serve("k", c);
    if cached {
        g.at("k", |n, now| n.mn.fetch_home_token(now, c));
        g.sim.run_for(Duration::from_secs(1));
    }
    let t0 = g.sim.now();
    g.handoff("k", c, "a");
    g.run_checked(Duration::from_secs(1), &[c]);
    let client_bound = g
        .correspondent()
        .events
        .iter()
        .find(|(_, e)| matches!(e, BindingEvent::Added { cn, .. } if *cn == c))
        .map(|(t, _)| *t - t0)
        .expect("client bound");
    let ba = bound_at(&g, "a", c).expect("acceptor bound") - t0;
    let live = g.node("a").accepted()[0].0 - t0;
    (client_bound, ba, live, g.channel_msgs(t0), g.mh_msgs(t0))
}

#[test]
fn latency_and_messages_within_the_papers_budget() {
    let lat = Latency {
        lcs: ms(20),
        lss: ms(5),
        lha: ms(10),
    };
    let (lcs, lss, lha) = (lat.lcs, lat.lss, lat.lha);
    let first_budget = 6 * lcs + 3 * lss;
    let cached_budget = 4 * lcs + lss;

    let (bound, ba, live, chan, mh) = measure(lat, false);
    eprintln!("first: client bound {bound:?}, BA {ba:?}, live {live:?}, budget {first_budget:?}");
    // Home test (2 Lcs + 2 Lha) in parallel with Prepare + CoTI/CoT; the
    // token follows in Lss; then BU/BA.
    assert_eq!(ba, 4 * lcs + 2 * lha + lss);
    assert_eq!(bound, ba - lcs);
    assert!(live <= first_budget, "{live:?} > {first_budget:?}");
    let mut sorted = mh.clone();
    sorted.sort_unstable();
    let mut want = vec![
        mh_type::HOTI,
        mh_type::HOT,
        mh_type::COTI,
        mh_type::COT,
        mh_type::BU,
        mh_type::BA,
    ];
    want.sort_unstable();
    assert_eq!(sorted, want, "one of each, no retransmission");
    assert_eq!(
        chan,
        [
            "prepare", "transfer", "accept", "restored", "token", "bound", "done"
        ],
        "no token request: the contact node sends it unasked; the donor freezes with the Prepare"
    );

    let (bound, ba, live, chan, mh) = measure(lat, true);
    eprintln!("cached: client bound {bound:?}, BA {ba:?}, live {live:?}, budget {cached_budget:?}");
    assert_eq!(ba, cached_budget, "Prepare, CoTI/CoT, BU/BA: nothing more");
    assert_eq!(bound, 3 * lcs + lss);
    assert_eq!(live, cached_budget);
    let mut sorted = mh;
    sorted.sort_unstable();
    let mut want = vec![mh_type::COTI, mh_type::COT, mh_type::BU, mh_type::BA];
    want.sort_unstable();
    assert_eq!(sorted, want);
    assert_eq!(
        chan,
        ["prepare", "transfer", "accept", "restored", "bound", "done"]
    );
}

#[test]
fn sequence_numbers_increase_at_the_client_whichever_member_sends() {
    let mut g = Group::new(&["k", "a", "b"], 1, LAT, 3);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    for (from, to) in [("k", "a"), ("a", "b"), ("b", "k")] {
        g.handoff(from, c, to);
        g.run_checked(Duration::from_secs(2), &[c]);
        assert_eq!(g.binding(c), Some(g.node(to).coa), "{from} -> {to}");
    }
    let seqs = accepted_sequences(&g, c);
    let coas: Vec<Ipv6Addr> = seqs.iter().map(|s| s.1).collect();
    assert_eq!(
        coas,
        [member_coa(0), member_coa(1), member_coa(2), member_coa(0)]
    );
    assert_increasing(&seqs);
    let cn = &g.correspondent().cn;
    assert_eq!(cn.stats().drops.total(), 0, "{:?}", cn.stats().drops);
    // Only the contact node ran home tests; back home, no placement.
    let hoti_from: Vec<_> = g
        .sim
        .log
        .iter()
        .filter(|e| e.transmit.mh_type == mh_type::HOTI)
        .map(|e| e.from)
        .collect();
    assert!(hoti_from.iter().all(|f| *f == g.id("k")), "{hoti_from:?}");
    assert_eq!(g.node("k").co.placement(c), None);
    assert_eq!(g.node("k").sockets.get(&c), Some(&Sockets::Live));
    // B told the contact node where the client went (A did not need to:
    // the contact node handed it the client itself).
    assert!(g.node("b").sent.iter().any(|s| s.2 == "placed"));
    assert!(!g.node("a").sent.iter().any(|s| s.2 == "placed"));
}

#[test]
fn hundred_consecutive_handoffs() {
    let mut g = Group::new(&["k", "a", "b"], 1, LAT, 4);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    let ring = ["k", "a", "b"];
    // 3 s apart: 300 s in all, so the home keygen token (210 s) expires on
    // the way and is fetched again.
    for i in 0..100 {
        let (from, to) = (ring[i % 3], ring[(i + 1) % 3]);
        g.handoff(from, c, to);
        g.run_checked(ms(300), &[c]);
        g.sim.run_for(ms(2700));
        assert_eq!(
            g.binding(c),
            Some(g.node(to).coa),
            "handoff {i}: {from} -> {to}"
        );
    }
    let completed: usize = ring.iter().map(|m| g.node(m).completed().len()).sum();
    let accepted: usize = ring.iter().map(|m| g.node(m).accepted().len()).sum();
    assert_eq!((completed, accepted), (100, 100));
    let seqs = accepted_sequences(&g, c);
    assert_eq!(seqs.len(), 101);
    assert_increasing(&seqs);
    let rolled: u64 = ring.iter().map(|m| g.node(m).co.stats().rolled_back).sum();
    assert_eq!(rolled, 0);
    // The token was fetched more than once (expired after 210 s) but far
    // fewer than 100 times (reused while valid).
    let hoti = g
        .sim
        .log
        .iter()
        .filter(|e| e.transmit.mh_type == mh_type::HOTI)
        .count();
    assert!((2..10).contains(&hoti), "{hoti} HoTI");
    assert!(
        g.node("k")
            .events
            .iter()
            .all(|(_, e)| !matches!(e, HandoffEvent::RolledBack { .. }))
    );
}

#[test]
fn handoff_back_to_a_member_with_valid_tokens_skips_the_care_of_test() {
    // The donor parks its entry (tokens kept): handing the client back
    // within the token lifetime needs Prepare and BU/BA only, Lss + 2 Lcs
    // to the acceptor's Binding Acknowledgement.
    let lat = LAT;
    let mut g = Group::new(&["k", "a"], 1, lat, 11);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    g.handoff("k", c, "a");
    g.run_checked(Duration::from_secs(2), &[c]);
    assert_eq!(g.binding(c), Some(member_coa(1)));
    let t0 = g.sim.now();
    g.handoff("a", c, "k");
    g.run_checked(Duration::from_secs(2), &[c]);
    assert_eq!(g.binding(c), Some(member_coa(0)));
    let mut mh = g.mh_msgs(t0);
    mh.sort_unstable();
    assert_eq!(
        mh,
        [mh_type::BU, mh_type::BA],
        "no test: both tokens still valid"
    );
    let coa = g.node("k").coa;
    let ba = g
        .node("k")
        .mobile_events
        .iter()
        .rev()
        .find(|(_, e)| matches!(e, MobileEvent::Bound { cn, coa: x, .. } if *cn == c && *x == coa))
        .map(|(t, _)| *t)
        .expect("contact node bound again")
        - t0;
    assert_eq!(ba, lat.lss + 2 * lat.lcs);
    // And once more to the acceptor, whose parked entry kept its tokens.
    let t1 = g.sim.now();
    g.handoff("k", c, "a");
    g.run_checked(Duration::from_secs(2), &[c]);
    assert_eq!(g.binding(c), Some(member_coa(1)));
    let mut mh = g.mh_msgs(t1);
    mh.sort_unstable();
    assert_eq!(mh, [mh_type::BU, mh_type::BA]);
    assert_increasing(&accepted_sequences(&g, c));
}
