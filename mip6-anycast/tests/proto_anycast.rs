//! The anycast handoff split (DESIGN.md 5): the contact node K runs the
//! home test through the home agent, another member sends the Binding
//! Update from its own care-of address; sequence numbers at the client
//! always increase whichever member sends.

mod proto_common;

use std::net::Ipv6Addr;

use mip6_anycast::proto::sim::{MemberNode, NodeId, Sim};
use mip6_anycast::proto::{CorrespondentState, DropReason, MobileEvent, seq_newer};
use mip6_anycast::wire::mh::mh_type;
use proto_common::*;

fn fetch_and_export(sim: &mut Sim, from: NodeId) -> CorrespondentState {
    let cn = addr(CN);
    sim.with::<MemberNode, _>(from, |m, now, _| m.mn.fetch_home_token(now, cn));
    sim.run_for(secs(1));
    sim.with::<MemberNode, _>(from, |m, now, _| m.mn.export(now, cn))
        .unwrap()
}

fn hand_to(sim: &mut Sim, to: NodeId, state: &CorrespondentState, coa: &str) {
    let (cn, coa) = (addr(CN), addr(coa));
    sim.with::<MemberNode, _>(to, |m, now, _| {
        m.mn.import(now, state);
        m.mn.register(now, cn, coa);
    });
    sim.run_for(secs(1));
}

fn assert_increasing(v: &[(u16, Ipv6Addr)]) {
    for w in v.windows(2) {
        assert!(seq_newer(w[1].0, w[0].0), "{v:?}");
    }
}

#[test]
fn contact_node_fetches_home_token_acceptor_binds() {
    let mut w = world(40);
    let a = add_acceptor(&mut w.sim, COA_A, 41);
    let state = fetch_and_export(&mut w.sim, w.k);
    let token = state.home_token.clone().expect("home token fetched");
    assert!(token.age < secs(1));
    assert_eq!(sent(&w.sim, w.k, mh_type::HOTI).len(), 1);
    assert!(sent(&w.sim, w.k, mh_type::BU).is_empty(), "K sends no BU");
    assert!(
        member(&w.sim, w.k)
            .events
            .iter()
            .any(|(_, e)| matches!(e, MobileEvent::HomeTokenReady { .. }))
    );

    hand_to(&mut w.sim, a, &state, COA_A);
    // A never sends HoTI; only CoTI from its own CoA, then the BU.
    assert!(sent(&w.sim, a, mh_type::HOTI).is_empty());
    assert_eq!(sent(&w.sim, a, mh_type::COTI)[0].transmit.src, addr(COA_A));
    let bu = sent(&w.sim, a, mh_type::BU);
    assert_eq!(bu.len(), 1);
    assert_eq!(bu_sequences(&w.sim, a), vec![state.next_sequence]);
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_A)));
    assert!(
        member(&w.sim, a)
            .events
            .iter()
            .any(|(_, e)| matches!(e, MobileEvent::Bound { coa, .. } if *coa == addr(COA_A)))
    );

    // The home token is reused while valid: a second fetch sends nothing.
    let again = fetch_and_export(&mut w.sim, w.k);
    assert_eq!(sent(&w.sim, w.k, mh_type::HOTI).len(), 1);
    assert_eq!(again.home_token.unwrap().token, token.token);
}

#[test]
fn sequence_numbers_increase_across_members() {
    let mut w = world(42);
    let a = add_acceptor(&mut w.sim, COA_A, 43);
    let b = add_acceptor(&mut w.sim, COA_B, 44);
    // K binds the client to itself first.
    let cn = addr(CN);
    w.sim
        .with::<MemberNode, _>(w.k, |m, now, _| m.mn.register(now, cn, addr(COA_K)));
    w.sim.run_for(secs(1));
    // K -> A -> B -> K, each handing over its export.
    let s = fetch_and_export(&mut w.sim, w.k);
    w.sim.with::<MemberNode, _>(w.k, |m, _, _| m.mn.remove(cn));
    hand_to(&mut w.sim, a, &s, COA_A);
    let s = w
        .sim
        .with::<MemberNode, _>(a, |m, now, _| m.mn.export(now, cn))
        .unwrap();
    w.sim.with::<MemberNode, _>(a, |m, _, _| m.mn.remove(cn));
    hand_to(&mut w.sim, b, &s, COA_B);
    let s = w
        .sim
        .with::<MemberNode, _>(b, |m, now, _| m.mn.export(now, cn))
        .unwrap();
    w.sim.with::<MemberNode, _>(b, |m, _, _| m.mn.remove(cn));
    hand_to(&mut w.sim, w.k, &s, COA_K);
    let seqs = accepted_sequences(&w.sim, w.cn);
    let coas: Vec<Ipv6Addr> = seqs.iter().map(|s| s.1).collect();
    assert_eq!(
        coas,
        vec![addr(COA_K), addr(COA_A), addr(COA_B), addr(COA_K)]
    );
    assert_increasing(&seqs);
    assert_eq!(
        cn_node(&w.sim, w.cn)
            .cn
            .stats()
            .drops
            .get(DropReason::SequenceOutOfWindow),
        0
    );
    // Only K ever ran a home test.
    assert!(sent(&w.sim, a, mh_type::HOTI).is_empty() && sent(&w.sim, b, mh_type::HOTI).is_empty());
}

#[test]
fn stale_sequence_from_another_member_is_resynchronised_by_135() {
    let mut w = world(45);
    let a = add_acceptor(&mut w.sim, COA_A, 46);
    let b = add_acceptor(&mut w.sim, COA_B, 47);
    let s = fetch_and_export(&mut w.sim, w.k);
    hand_to(&mut w.sim, a, &s, COA_A);
    // B gets the same (now stale) state: its first BU reuses A's number.
    hand_to(&mut w.sim, b, &s, COA_B);
    let statuses: Vec<u8> = ba_statuses(&w.sim, w.cn).iter().map(|x| x.1).collect();
    assert_eq!(statuses, vec![0, 135, 0]);
    assert_eq!(member(&w.sim, b).mn.stats().resyncs, 1);
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_B)));
    assert_increasing(&accepted_sequences(&w.sim, w.cn));
}

#[test]
fn import_never_moves_the_sequence_back() {
    let mut w = world(48);
    let a = add_acceptor(&mut w.sim, COA_A, 49);
    let s = fetch_and_export(&mut w.sim, w.k);
    hand_to(&mut w.sim, a, &s, COA_A);
    let cn = addr(CN);
    let next = w
        .sim
        .with::<MemberNode, _>(a, |m, _, _| m.mn.next_sequence(cn))
        .unwrap();
    w.sim
        .with::<MemberNode, _>(a, |m, now, _| m.mn.import(now, &s));
    assert_eq!(
        w.sim
            .with::<MemberNode, _>(a, |m, _, _| m.mn.next_sequence(cn)),
        Some(next)
    );
    // An explicit set is obeyed.
    w.sim
        .with::<MemberNode, _>(a, |m, _, _| m.mn.set_next_sequence(cn, 7));
    assert_eq!(
        w.sim
            .with::<MemberNode, _>(a, |m, _, _| m.mn.next_sequence(cn)),
        Some(7)
    );
}

#[test]
fn acceptor_asks_for_a_new_home_token_when_its_copy_expires() {
    let mut w = world(50);
    let a = add_acceptor(&mut w.sim, COA_A, 51);
    let s = fetch_and_export(&mut w.sim, w.k);
    hand_to(&mut w.sim, a, &s, COA_A);
    // The refresh at ~336 s needs a home token again: A cannot run the home
    // test, it asks. The "daemon" below answers from K.
    w.sim.run_for(secs(340));
    let cn = addr(CN);
    let needed = member(&w.sim, a)
        .events
        .iter()
        .filter(|(_, e)| matches!(e, MobileEvent::HomeTokenNeeded { .. }))
        .count();
    assert_eq!(needed, 1);
    assert!(sent(&w.sim, a, mh_type::HOTI).is_empty());
    let s = fetch_and_export(&mut w.sim, w.k);
    let token = s.home_token.unwrap();
    w.sim
        .with::<MemberNode, _>(a, |m, now, _| m.mn.import_home_token(now, cn, &token));
    w.sim.run_for(secs(1));
    let seqs = accepted_sequences(&w.sim, w.cn);
    assert_eq!(seqs.len(), 2);
    assert!(seqs.iter().all(|s| s.1 == addr(COA_A)));
    assert_increasing(&seqs);
    // A too-old token is refused.
    let mut old = token.clone();
    old.age = secs(211);
    w.sim
        .with::<MemberNode, _>(a, |m, now, _| m.mn.import_home_token(now, cn, &old));
    assert!(
        member(&w.sim, a)
            .drops
            .iter()
            .any(|(_, r)| *r == DropReason::NotReady)
    );
}

#[test]
fn aged_token_keeps_its_age_across_members() {
    let mut w = world(52);
    let a = add_acceptor(&mut w.sim, COA_A, 53);
    let s = fetch_and_export(&mut w.sim, w.k);
    w.sim.run_for(secs(200));
    let cn = addr(CN);
    let aged = w
        .sim
        .with::<MemberNode, _>(w.k, |m, now, _| m.mn.export(now, cn))
        .unwrap();
    assert!(aged.home_token.as_ref().unwrap().age >= secs(200));
    assert_eq!(
        aged.home_token.as_ref().unwrap().token,
        s.home_token.unwrap().token
    );
    w.sim
        .with::<MemberNode, _>(a, |m, now, _| m.mn.import(now, &aged));
    w.sim.run_for(secs(15));
    // After 210 s in total the token is no longer exported or used.
    assert!(
        w.sim
            .with::<MemberNode, _>(w.k, |m, now, _| m.mn.export(now, cn))
            .unwrap()
            .home_token
            .is_none()
    );
    w.sim
        .with::<MemberNode, _>(a, |m, now, _| m.mn.register(now, cn, addr(COA_A)));
    w.sim.run_for(secs(1));
    assert!(sent(&w.sim, a, mh_type::BU).is_empty());
    assert!(
        member(&w.sim, a)
            .events
            .iter()
            .any(|(_, e)| matches!(e, MobileEvent::HomeTokenNeeded { .. }))
    );
}
