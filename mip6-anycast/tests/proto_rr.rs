//! Return Routability + Binding Update + Binding Acknowledgement between a
//! mobile node and a correspondent on the simulated network: the happy
//! path, loss of each message (back-off 1, 2, 4 .. 32 s), duplication and
//! reordering.

mod proto_common;

use std::time::Duration;

use mip6_anycast::proto::sim::{MemberNode, RuleAction};
use mip6_anycast::proto::{Arrival, BindingEvent, DropReason, MobileEvent, Route};
use mip6_anycast::wire::mh::mh_type;
use mip6_anycast::wire::{BaStatus, MhMessage, MobilityOption};
use proto_common::*;

fn register_k(w: &mut World) {
    let cn = addr(CN);
    w.sim
        .with::<MemberNode, _>(w.k, |m, now, _| m.mn.register(now, cn, addr(COA_K)));
}

fn bound_events(w: &World) -> Vec<(u16, std::net::Ipv6Addr)> {
    member(&w.sim, w.k)
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            MobileEvent::Bound { sequence, coa, .. } => Some((*sequence, *coa)),
            _ => None,
        })
        .collect()
}

#[test]
fn full_return_routability_binding_update_and_ack() {
    let mut w = world(1);
    register_k(&mut w);
    w.sim.run_for(secs(1));

    // HoTI through the tunnel, CoTI direct, in parallel at t0.
    let hoti = sent(&w.sim, w.k, mh_type::HOTI);
    let coti = sent(&w.sim, w.k, mh_type::COTI);
    assert_eq!((hoti.len(), coti.len()), (1, 1));
    assert_eq!(hoti[0].transmit.route, Route::ReverseTunnel);
    assert_eq!(hoti[0].transmit.src, addr(HOA));
    assert_eq!(coti[0].transmit.route, Route::Direct);
    assert_eq!(coti[0].transmit.src, addr(COA_K));
    assert_eq!(hoti[0].sent, coti[0].sent);

    // HoT to the home address, CoT to the care-of address.
    let hot = sent(&w.sim, w.cn, mh_type::HOT);
    let cot = sent(&w.sim, w.cn, mh_type::COT);
    assert_eq!(hot[0].transmit.dst, addr(HOA));
    assert_eq!(cot[0].transmit.dst, addr(COA_K));

    // BU from the CoA with HAO, Nonce Indices and Binding Auth Data, A flag.
    let bu = sent(&w.sim, w.k, mh_type::BU);
    assert_eq!(bu.len(), 1);
    let p = parse(&bu[0].transmit.bytes);
    assert_eq!(
        (p.src_addr, p.dst_addr, p.hao),
        (addr(COA_K), addr(CN), Some(addr(HOA)))
    );
    let MhMessage::BindingUpdate(b) = p.mh.message else {
        panic!()
    };
    assert!(b.flags.ack() && !b.flags.home_registration());
    assert_eq!(b.lifetime, 105, "420 s in 4 s units");
    assert!(p.mh.nonce_indices().is_some() && p.mh.authenticator().is_some());

    // BA to the CoA with RH2 = HoA, status 0, authenticated.
    let ba = sent(&w.sim, w.cn, mh_type::BA);
    assert_eq!(ba.len(), 1);
    let p = parse(&ba[0].transmit.bytes);
    assert_eq!((p.dst_addr, p.rh2), (addr(COA_K), Some(addr(HOA))));
    let MhMessage::BindingAck(a) = p.mh.message else {
        panic!()
    };
    assert_eq!(
        (a.status, a.sequence, a.lifetime),
        (BaStatus::Accepted, b.sequence, 105)
    );
    assert!(matches!(
        p.mh.options.last(),
        Some(MobilityOption::BindingAuthData { .. })
    ));

    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
    assert!(matches!(
        cn_node(&w.sim, w.cn).events.as_slice(),
        [(_, BindingEvent::Added { coa, sequence, .. })] if *coa == addr(COA_K) && *sequence == b.sequence
    ));
    assert_eq!(bound_events(&w), vec![(b.sequence, addr(COA_K))]);
    // HoTI/HoT via the tunnel (2 x 20 ms) in parallel with CoTI/CoT, then BU/BA (2 x 10 ms).
    let bound_at = member(&w.sim, w.k)
        .events
        .iter()
        .find(|(_, e)| matches!(e, MobileEvent::Bound { .. }))
        .unwrap()
        .0;
    assert_eq!(bound_at - w.sim.t0(), Duration::from_millis(60));
}

/// Drops the first `n` packets of `t` sent by `from` and checks the
/// retransmission gaps and the recovery.
fn lose_first(t: u8, n: usize, expect_gaps: &[f64]) {
    let mut w = world(2);
    let from = if matches!(t, mh_type::HOT | mh_type::COT | mh_type::BA) {
        w.cn
    } else {
        w.k
    };
    w.sim.add_rule(RuleAction::Drop, Some(n), move |p| {
        p.from == from && p.mh_type == t
    });
    register_k(&mut w);
    w.sim.run_for(secs(400));
    assert!(!w.sim.stalled());
    let retransmitted = match t {
        mh_type::HOT => mh_type::HOTI,
        mh_type::COT => mh_type::COTI,
        mh_type::BA => mh_type::BU,
        other => other,
    };
    let times = send_times(&w.sim, w.k, retransmitted);
    assert_eq!(&gaps(&times)[..expect_gaps.len()], expect_gaps, "{times:?}");
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
    let bound = bound_events(&w);
    assert!(!bound.is_empty());
    assert!(bound.iter().all(|(_, coa)| *coa == addr(COA_K)));
}

#[test]
fn lost_hoti_is_retransmitted_with_backoff() {
    lose_first(mh_type::HOTI, 7, &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 32.0]);
}

#[test]
fn lost_coti_is_retransmitted_with_backoff() {
    lose_first(mh_type::COTI, 3, &[1.0, 2.0, 4.0]);
}

#[test]
fn lost_hot_and_cot_are_recovered() {
    lose_first(mh_type::HOT, 2, &[1.0, 2.0]);
    lose_first(mh_type::COT, 4, &[1.0, 2.0, 4.0, 8.0]);
}

#[test]
fn lost_bu_and_ba_are_recovered_with_new_sequence_numbers() {
    lose_first(mh_type::BU, 6, &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
    lose_first(mh_type::BA, 3, &[1.0, 2.0, 4.0]);
    let mut w = world(3);
    w.sim
        .add_rule(RuleAction::Drop, Some(3), move |p| p.mh_type == mh_type::BU);
    register_k(&mut w);
    w.sim.run_for(secs(20));
    let seqs = bu_sequences(&w.sim, w.k);
    assert_eq!(seqs.len(), 4);
    for s in seqs.windows(2) {
        assert_eq!(
            s[1],
            s[0].wrapping_add(1),
            "every retransmission has a new number"
        );
    }
}

#[test]
fn bu_attempt_restarts_rr_when_tokens_expire() {
    // BUs keep getting lost past MAX_TOKEN_LIFETIME: the node runs RR again.
    let mut w = world(4);
    w.sim.add_rule(RuleAction::Drop, Some(12), move |p| {
        p.mh_type == mh_type::BU
    });
    register_k(&mut w);
    w.sim.run_for(secs(400));
    assert!(sent(&w.sim, w.k, mh_type::HOTI).len() >= 2);
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
}

#[test]
fn duplicated_messages_are_harmless() {
    let mut w = world(5);
    w.sim.add_rule(RuleAction::Duplicate, None, |_| true);
    register_k(&mut w);
    w.sim.run_for(secs(5));
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
    assert_eq!(bound_events(&w).len(), 1);
    // The duplicate BU is a replay: answered with 135 (authenticated), which
    // the mobile node ignores since nothing is outstanding.
    let statuses = ba_statuses(&w.sim, w.cn);
    assert!(statuses.iter().any(|(_, s)| *s == 0));
    assert!(
        statuses.iter().all(|(_, s)| *s == 0 || *s == 135),
        "{statuses:?}"
    );
    let k = member(&w.sim, w.k);
    assert!(k.drops.iter().any(|(_, r)| *r == DropReason::NoPendingTest));
    assert_eq!(cn_node(&w.sim, w.cn).cn.stats().bu_accepted, 1);
}

#[test]
fn reordering_and_random_loss_still_converge() {
    for seed in 10..30 {
        let mut w = world(seed);
        w.sim.profile.jitter = Duration::from_millis(200);
        w.sim.profile.loss = 0.3;
        w.sim.profile.duplicate = 0.2;
        register_k(&mut w);
        w.sim.run_for(secs(900));
        assert!(!w.sim.stalled());
        assert_eq!(
            client_binding(&w.sim, w.cn),
            Some(addr(COA_K)),
            "seed {seed}"
        );
        let seqs: Vec<u16> = accepted_sequences(&w.sim, w.cn)
            .iter()
            .map(|s| s.0)
            .collect();
        for s in seqs.windows(2) {
            assert!(
                mip6_anycast::proto::seq_newer(s[1], s[0]),
                "seed {seed}: {seqs:?}"
            );
        }
    }
}

#[test]
fn hot_not_via_tunnel_is_dropped() {
    let mut w = world(6);
    w.sim
        .add_rule(RuleAction::Drop, Some(1), |p| p.mh_type == mh_type::HOT);
    register_k(&mut w);
    w.sim.run_for(Duration::from_millis(100));
    let hot = sent(&w.sim, w.cn, mh_type::HOT)[0].transmit.bytes.clone();
    w.sim.inject(w.k, &hot, Arrival::Direct);
    assert!(
        member(&w.sim, w.k)
            .drops
            .iter()
            .any(|(_, r)| *r == DropReason::NotViaTunnel)
    );
    assert_eq!(client_binding(&w.sim, w.cn), None);
    w.sim.inject(w.k, &hot, Arrival::Tunnel);
    w.sim.run_for(Duration::from_millis(100));
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
}

#[test]
fn binding_is_refreshed_before_expiry_and_tokens_reused() {
    let mut w = world(7);
    register_k(&mut w);
    w.sim.run_for(secs(700));
    // Refresh at 80 % of 420 s: ~336 s and ~672 s; tokens older than
    // 210 s are fetched again each time, the binding never lapses.
    let events = &cn_node(&w.sim, w.cn).events;
    assert!(
        events
            .iter()
            .all(|(_, e)| !matches!(e, BindingEvent::Removed { .. })),
        "{events:?}"
    );
    let times: Vec<u64> = events
        .iter()
        .map(|(t, _)| (*t - w.sim.t0()).as_secs())
        .collect();
    assert_eq!(times, vec![0, 336, 672]);
    assert_eq!(sent(&w.sim, w.k, mh_type::HOTI).len(), 3);
    // Moving within the home token's lifetime reuses it: only a care-of test.
    let (hoti, coti) = (
        sent(&w.sim, w.k, mh_type::HOTI).len(),
        sent(&w.sim, w.k, mh_type::COTI).len(),
    );
    let cn = addr(CN);
    w.sim.add_address(w.k, addr(COA_B));
    w.sim
        .with::<MemberNode, _>(w.k, |m, now, _| m.mn.register(now, cn, addr(COA_B)));
    w.sim.run_for(secs(2));
    assert_eq!(
        sent(&w.sim, w.k, mh_type::HOTI).len(),
        hoti,
        "home token reused"
    );
    assert_eq!(sent(&w.sim, w.k, mh_type::COTI).len(), coti + 1);
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_B)));
    w.sim.run_for(secs(1000));
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_B)));
}
