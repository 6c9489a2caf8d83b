//! Correspondent behaviour against replayed, forged, stale and hostile
//! input, sequence wrap-around, expiry, Binding Refresh Requests, Binding
//! Error rate limiting and the binding cache bound.

mod proto_common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::crypto::{NonceIndex, TokenKind};
use mip6_anycast::proto::correspondent::RefreshPolicy;
use mip6_anycast::proto::sim::{CorrespondentNode, MemberNode, RuleAction, Sim};
use mip6_anycast::proto::{
    Action, Arrival, BindingEvent, Correspondent, CorrespondentConfig, DropReason, FailReason,
    HomeTestMode, MobileEvent, RemoveReason, Transmit,
};
use mip6_anycast::wire::mh::mh_type;
use mip6_anycast::wire::{
    BaStatus, BeStatus, BindingUpdateRepr, BuFlags, ExtChain, MhMessage, MhPacketRepr, MhRepr,
    MobilityHeader, MobilityOption,
};
use proto_common::*;

fn register(w: &mut World, coa: &str) {
    let (cn, coa) = (addr(CN), addr(coa));
    w.sim
        .with::<MemberNode, _>(w.k, |m, now, _| m.mn.register(now, cn, coa));
}

fn drops(sim: &Sim, id: usize, r: DropReason) -> u64 {
    cn_node(sim, id).cn.stats().drops.get(r)
}

fn last_bu(sim: &Sim, from: usize) -> Vec<u8> {
    sent(sim, from, mh_type::BU)
        .last()
        .unwrap()
        .transmit
        .bytes
        .clone()
}

/// Refreshes the binding by moving the member to another care-of address.
fn move_to(w: &mut World, coa: &str) {
    w.sim.add_address(w.k, addr(coa));
    register(w, coa);
    w.sim.run_for(secs(1));
}

#[test]
fn replayed_old_bu_is_answered_with_135_and_changes_nothing() {
    let mut w = world(20);
    register(&mut w, COA_K);
    w.sim.run_for(secs(1));
    let old = last_bu(&w.sim, w.k);
    move_to(&mut w, COA_A);
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_A)));
    let accepted = cn_node(&w.sim, w.cn)
        .cn
        .binding(addr(CN), addr(HOA))
        .unwrap()
        .sequence;

    w.sim.inject(w.cn, &old, Arrival::Direct);
    assert_eq!(
        client_binding(&w.sim, w.cn),
        Some(addr(COA_A)),
        "replay did not move it back"
    );
    assert_eq!(drops(&w.sim, w.cn, DropReason::SequenceOutOfWindow), 1);
    let (seq, status) = *ba_statuses(&w.sim, w.cn).last().unwrap();
    assert_eq!(
        (seq, status),
        (accepted, 135),
        "135 carries the last accepted number"
    );
}

/// Recomputes the MH checksum after editing an injected packet.
fn fix_checksum(bytes: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let off = ExtChain::walk(bytes).unwrap().mh_offset().unwrap();
    MobilityHeader::new_unchecked(&mut bytes[off..]).fill_checksum(&src, &dst);
}

#[test]
fn forged_authenticator_is_silently_dropped_and_counted() {
    let mut w = world(21);
    w.sim
        .add_rule(RuleAction::Drop, Some(1), |p| p.mh_type == mh_type::BU);
    register(&mut w, COA_K);
    w.sim.run_for(Duration::from_millis(100));
    let mut forged = last_bu(&w.sim, w.k);
    let n = forged.len();
    forged[n - 1] ^= 0x01; // last byte of the authenticator
    fix_checksum(&mut forged, addr(HOA), addr(CN));
    let bas = sent(&w.sim, w.cn, mh_type::BA).len();
    w.sim.inject(w.cn, &forged, Arrival::Direct);
    assert_eq!(drops(&w.sim, w.cn, DropReason::BadAuthenticator), 1);
    assert_eq!(
        sent(&w.sim, w.cn, mh_type::BA).len(),
        bas,
        "no answer to a forgery"
    );
    assert_eq!(client_binding(&w.sim, w.cn), None);
    // Bad checksum: dropped as such.
    forged[n - 2] ^= 0x01;
    w.sim.inject(w.cn, &forged, Arrival::Direct);
    assert_eq!(drops(&w.sim, w.cn, DropReason::BadChecksum), 1);
    // The genuine retransmission still works.
    w.sim.run_for(secs(2));
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
}

fn drain(cn: &mut Correspondent) -> (Vec<Transmit>, Vec<BindingEvent>, Vec<DropReason>) {
    let (mut t, mut e, mut d) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(a) = cn.poll_action() {
        match a {
            Action::Transmit(x) => t.push(x),
            Action::Event(x) => e.push(x),
            Action::Dropped(x) => d.push(x),
        }
    }
    (t, e, d)
}

fn ba_of(t: &[Transmit]) -> (u16, BaStatus, bool) {
    let p = parse(&t[0].bytes);
    let MhMessage::BindingAck(ba) = p.mh.message else {
        panic!()
    };
    (ba.sequence, ba.status, p.mh.authenticator().is_some())
}

#[test]
fn expired_nonce_indices_get_136_137_138() {
    let t0 = Instant::now();
    let mut c = correspondent(t0, cn_config(), 22);
    let (hoa, coa, cn) = (addr(HOA), addr(COA_K), addr(CN));
    // Tokens under nonce 0, then 300 s later nonce 0 is gone.
    let entry0 = c.nonce_table().lookup(NonceIndex(0), t0).unwrap().clone();
    let home0 = entry0.token(hoa, TokenKind::Home);
    let care0 = entry0.token(coa, TokenKind::CareOf);
    let later = t0 + secs(300);
    c.handle_timeout(later);
    let cur = c
        .nonce_table()
        .lookup(NonceIndex(1), later)
        .unwrap()
        .clone();
    let (home1, care1) = (
        cur.token(hoa, TokenKind::Home),
        cur.token(coa, TokenKind::CareOf),
    );
    for (home, care, status) in [
        ((&home0, 0), (&care1, 1), BaStatus::ExpiredHomeNonceIndex),
        ((&home1, 1), (&care0, 0), BaStatus::ExpiredCareOfNonceIndex),
        ((&home0, 0), (&care0, 0), BaStatus::ExpiredNonces),
    ] {
        c.handle_packet(later, &craft_bu((hoa, coa, cn), 7, 100, home, Some(care)));
        let (t, e, _) = drain(&mut c);
        assert_eq!(ba_of(&t), (7, status, false));
        assert!(e.is_empty());
    }
    // Current indices: accepted, lifetime capped at 420 s.
    c.handle_packet(
        later,
        &craft_bu((hoa, coa, cn), 8, 1000, (&home1, 1), Some((&care1, 1))),
    );
    let (t, e, _) = drain(&mut c);
    assert_eq!(ba_of(&t), (8, BaStatus::Accepted, true));
    let p = parse(&t[0].bytes);
    let MhMessage::BindingAck(ba) = p.mh.message else {
        panic!()
    };
    assert_eq!(ba.lifetime, 105);
    assert!(
        matches!(e.as_slice(), [BindingEvent::Added { expires, .. }] if *expires == later + secs(420))
    );
    let stats = c.stats();
    assert_eq!(stats.drops.get(DropReason::ExpiredHomeNonce), 1);
    assert_eq!(stats.drops.get(DropReason::ExpiredCareOfNonce), 1);
    assert_eq!(stats.drops.get(DropReason::ExpiredNonces), 1);
    // Deregistration: Kbm from the home keygen token alone, care-of index ignored.
    c.handle_packet(later, &craft_bu((hoa, coa, cn), 9, 0, (&home1, 1), None));
    let (t, e, _) = drain(&mut c);
    assert_eq!(ba_of(&t), (9, BaStatus::Accepted, true));
    assert!(matches!(
        e.as_slice(),
        [BindingEvent::Removed {
            reason: RemoveReason::Deregistered,
            ..
        }]
    ));
}

/// Replaces the correspondent by one whose nonce table has moved on, so
/// the mobile node's cached indices are unknown (a restarted correspondent).
fn restart_cn(w: &mut World) {
    let now = w.sim.now();
    w.sim.with::<CorrespondentNode, _>(w.cn, |n, _, _| {
        let mut c = Correspondent::new(cn_config(), rng(99), now - secs(300)).unwrap();
        c.handle_timeout(now);
        n.cn = c;
    });
}

#[test]
fn mobile_node_recovers_from_136_by_redoing_the_home_test() {
    let mut w = world(23);
    register(&mut w, COA_K);
    w.sim.run_for(secs(100));
    restart_cn(&mut w);
    let hoti_before = sent(&w.sim, w.k, mh_type::HOTI).len();
    move_to(&mut w, COA_A); // home token reused (age 100 s), new care-of test
    let statuses: Vec<u8> = ba_statuses(&w.sim, w.cn).iter().map(|s| s.1).collect();
    assert!(statuses.contains(&136), "{statuses:?}");
    assert_eq!(sent(&w.sim, w.k, mh_type::HOTI).len(), hoti_before + 1);
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_A)));
}

#[test]
fn mobile_node_recovers_from_138_after_a_refresh_request() {
    let mut w = world(24);
    register(&mut w, COA_K);
    w.sim.run_for(secs(100));
    restart_cn(&mut w);
    // A BRR makes the node refresh with both cached tokens: both unknown.
    let brr = MhPacketRepr {
        rh2: Some(addr(HOA)),
        ..MhPacketRepr::new(
            addr(CN),
            addr(COA_K),
            MhRepr::new(MhMessage::BindingRefreshRequest),
        )
    }
    .to_bytes()
    .unwrap();
    w.sim.inject(w.k, &brr, Arrival::Direct);
    w.sim.run_for(secs(1));
    let statuses: Vec<u8> = ba_statuses(&w.sim, w.cn).iter().map(|s| s.1).collect();
    assert!(statuses.contains(&138), "{statuses:?}");
    assert_eq!(sent(&w.sim, w.k, mh_type::HOTI).len(), 2);
    assert_eq!(sent(&w.sim, w.k, mh_type::COTI).len(), 2);
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
}

#[test]
fn mobile_node_redoes_only_the_care_of_test_on_137() {
    let mut w = world(25);
    w.sim
        .add_rule(RuleAction::Drop, Some(1), |p| p.mh_type == mh_type::BA);
    register(&mut w, COA_K);
    w.sim.run_for(Duration::from_millis(100));
    let bu = parse(&last_bu(&w.sim, w.k));
    let MhMessage::BindingUpdate(b) = bu.mh.message else {
        panic!()
    };
    let ba137 = MhPacketRepr {
        rh2: Some(addr(HOA)),
        ..MhPacketRepr::new(
            addr(CN),
            addr(COA_K),
            MhRepr::new(MhMessage::BindingAck(mip6_anycast::wire::BindingAckRepr {
                status: BaStatus::ExpiredCareOfNonceIndex,
                flags: mip6_anycast::wire::BaFlags::empty(),
                sequence: b.sequence,
                lifetime: 0,
            })),
        )
    }
    .to_bytes()
    .unwrap();
    w.sim.inject(w.k, &ba137, Arrival::Direct);
    w.sim.run_for(secs(1));
    assert_eq!(sent(&w.sim, w.k, mh_type::HOTI).len(), 1);
    assert_eq!(sent(&w.sim, w.k, mh_type::COTI).len(), 2);
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
}

#[test]
fn sequence_numbers_wrap_around_65535() {
    let mut w = world(26);
    let cn = addr(CN);
    w.sim
        .with::<MemberNode, _>(w.k, |m, _, _| m.mn.set_next_sequence(cn, 65534));
    register(&mut w, COA_K);
    w.sim.run_for(secs(1));
    let mut old = Vec::new();
    for coa in [COA_A, COA_B, COA_K] {
        old.push(last_bu(&w.sim, w.k));
        move_to(&mut w, coa);
    }
    let seqs: Vec<u16> = accepted_sequences(&w.sim, w.cn)
        .iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(seqs, vec![65534, 65535, 0, 1]);
    // 65535 is older than 1 modulo 2^16: rejected.
    w.sim.inject(w.cn, &old[1], Arrival::Direct);
    assert_eq!(*ba_statuses(&w.sim, w.cn).last().unwrap(), (1, 135));
}

#[test]
fn binding_expires_and_is_removed() {
    let mut w = world(27);
    register(&mut w, COA_K);
    w.sim.run_for(secs(1));
    let cn = addr(CN);
    w.sim.with::<MemberNode, _>(w.k, |m, _, _| m.mn.remove(cn));
    w.sim.run_for(secs(418));
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
    w.sim.run_for(secs(2));
    assert_eq!(client_binding(&w.sim, w.cn), None);
    let (at, last) = *cn_node(&w.sim, w.cn).events.last().unwrap();
    assert!(matches!(
        last,
        BindingEvent::Removed {
            reason: RemoveReason::Expired,
            ..
        }
    ));
    assert!(at - w.sim.t0() <= secs(420));
    assert_eq!(cn_node(&w.sim, w.cn).cn.stats().expired, 1);
}

fn brr_world(seed: u64) -> World {
    let mut w = world_with(
        seed,
        CorrespondentConfig {
            max_lifetime: secs(100),
            refresh: RefreshPolicy {
                lead: secs(20),
                usage_window: secs(30),
            },
            ..cn_config()
        },
    );
    register(&mut w, COA_K);
    w.sim.run_for(secs(1));
    w
}

#[test]
fn brr_only_when_binding_in_use() {
    // Idle: no BRR, binding simply expires (mobile side removed).
    let mut w = brr_world(28);
    let cn = addr(CN);
    w.sim.with::<MemberNode, _>(w.k, |m, _, _| m.mn.remove(cn));
    w.sim.run_for(secs(110));
    assert_eq!(cn_node(&w.sim, w.cn).cn.stats().brr_sent, 0);
    assert_eq!(client_binding(&w.sim, w.cn), None);

    // In use: BRRs at 20 s and 10 s before expiry, routed with RH2.
    let mut w = brr_world(29);
    w.sim.with::<MemberNode, _>(w.k, |m, _, _| m.mn.remove(cn));
    w.sim.run_for(secs(60));
    w.sim.with::<CorrespondentNode, _>(w.cn, |n, now, _| {
        assert!(n.cn.note_binding_used(now, cn, addr(HOA)));
    });
    w.sim.run_for(secs(50));
    let brr = sent(&w.sim, w.cn, mh_type::BRR);
    let times: Vec<u64> = brr
        .iter()
        .map(|e| (e.sent - w.sim.t0()).as_secs())
        .collect();
    assert_eq!(times, vec![80, 90]);
    let p = parse(&brr[0].transmit.bytes);
    assert_eq!((p.dst_addr, p.rh2), (addr(COA_K), Some(addr(HOA))));
}

#[test]
fn brr_makes_the_mobile_node_refresh() {
    // Granted 100 s from a BU sent at 0.04 s: the node would refresh at
    // 80.04 s; the BRR sent at 80 s (binding used at 70 s) arrives at
    // 80.01 s and makes it refresh at once with its cached tokens.
    let mut w = brr_world(30);
    let cn = addr(CN);
    w.sim.run_for(secs(69));
    w.sim.with::<CorrespondentNode, _>(w.cn, |n, now, _| {
        assert!(n.cn.note_binding_used(now, cn, addr(HOA)));
    });
    w.sim.run_for(secs(20));
    assert_eq!(cn_node(&w.sim, w.cn).cn.stats().brr_sent, 1);
    assert_eq!(member(&w.sim, w.k).mn.stats().brr_received, 1);
    assert_eq!(send_times(&w.sim, w.k, mh_type::BU), vec![0.04, 80.01]);
    assert_eq!(sent(&w.sim, w.k, mh_type::HOTI).len(), 1, "tokens reused");
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_K)));
}

#[test]
fn binding_errors_are_rate_limited() {
    let t0 = Instant::now();
    let mut c = correspondent(t0, cn_config(), 31);
    for _ in 0..100 {
        c.unknown_hao(t0, addr(COA_A), addr(CN), addr(HOA));
    }
    let (t, _, d) = drain(&mut c);
    assert_eq!(t.len(), 10, "burst of 10");
    assert_eq!(
        d.iter().filter(|r| **r == DropReason::RateLimited).count(),
        90
    );
    let p = parse(&t[0].bytes);
    assert_eq!(
        (p.src_addr, p.dst_addr, p.rh2),
        (addr(CN), addr(COA_A), None)
    );
    let MhMessage::BindingError(be) = p.mh.message else {
        panic!()
    };
    assert_eq!(
        (be.status, be.home_address),
        (BeStatus::UnknownBindingForHao, addr(HOA))
    );
    for _ in 0..100 {
        c.unknown_hao(
            t0 + Duration::from_millis(500),
            addr(COA_A),
            addr(CN),
            addr(HOA),
        );
    }
    assert_eq!(drain(&mut c).0.len(), 5, "10 per second");
    assert_eq!(c.stats().be_sent, 15);
}

#[test]
fn unknown_mh_type_gets_binding_error_2_and_home_registration_131() {
    let t0 = Instant::now();
    let mut c = correspondent(t0, cn_config(), 32);
    // A BRR-sized MH with type 42 and a valid checksum.
    let mut pkt = MhPacketRepr::new(
        addr(COA_A),
        addr(CN),
        MhRepr::new(MhMessage::BindingRefreshRequest),
    )
    .to_bytes()
    .unwrap();
    pkt[42] = 42;
    MobilityHeader::new_unchecked(&mut pkt[40..]).fill_checksum(&addr(COA_A), &addr(CN));
    c.handle_packet(t0, &pkt);
    let (t, _, d) = drain(&mut c);
    assert_eq!(d, vec![DropReason::UnknownMhType]);
    let p = parse(&t[0].bytes);
    assert_eq!(p.dst_addr, addr(COA_A));
    let MhMessage::BindingError(be) = p.mh.message else {
        panic!()
    };
    assert_eq!(be.status, BeStatus::UnrecognizedMhType);
    // Wrong checksum: no answer.
    pkt[45] ^= 1;
    c.handle_packet(t0, &pkt);
    let (t, _, d) = drain(&mut c);
    assert!(t.is_empty());
    assert_eq!(d, vec![DropReason::BadChecksum]);
    // H flag at a correspondent.
    let bu = MhPacketRepr {
        hao: Some(addr(HOA)),
        ..MhPacketRepr::new(
            addr(COA_A),
            addr(CN),
            MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
                sequence: 1,
                flags: BuFlags::ACK | BuFlags::HOME,
                lifetime: 10,
            })),
        )
    }
    .to_bytes()
    .unwrap();
    c.handle_packet(t0, &bu);
    let (t, _, _) = drain(&mut c);
    assert_eq!(
        ba_of(&t),
        (1, BaStatus::HomeRegistrationNotSupported, false)
    );
}

#[test]
fn bu_without_rr_options_is_dropped() {
    let t0 = Instant::now();
    let mut c = correspondent(t0, cn_config(), 33);
    let plain = MhPacketRepr {
        hao: Some(addr(HOA)),
        ..MhPacketRepr::new(
            addr(COA_A),
            addr(CN),
            MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
                sequence: 1,
                flags: BuFlags::ACK,
                lifetime: 10,
            })),
        )
    };
    c.handle_packet(t0, &plain.to_bytes().unwrap());
    let with_ni = MhPacketRepr {
        mh: plain.mh.clone().with_option(MobilityOption::NonceIndices {
            home_nonce_index: 0,
            care_of_nonce_index: 0,
        }),
        ..plain.clone()
    };
    c.handle_packet(t0, &with_ni.to_bytes().unwrap());
    let (t, e, d) = drain(&mut c);
    assert!(t.is_empty() && e.is_empty());
    assert_eq!(
        d,
        vec![
            DropReason::MissingNonceIndices,
            DropReason::MissingBindingAuthData
        ]
    );
}

#[test]
fn cache_bound_answers_130() {
    let cfg = CorrespondentConfig {
        max_bindings: 2,
        ..cn_config()
    };
    let mut w = world_with(34, cfg);
    let homes = ["2001:db8:1::200", "2001:db8:1::300"];
    let coas = ["2001:db8:6::1", "2001:db8:7::1"];
    let mut ids = vec![w.k];
    for (i, (h, c)) in homes.iter().zip(coas).enumerate() {
        let id = w.sim.add_node(Box::new(MemberNode::new(
            mobile(h, HomeTestMode::Local, 100 + i as u64),
            None,
            vec![addr(c)],
        )));
        w.sim.set_home_route(addr(h), Some(addr(c)));
        ids.push(id);
    }
    let cn = addr(CN);
    for (id, coa) in ids.iter().zip([COA_K, coas[0], coas[1]]) {
        w.sim
            .with::<MemberNode, _>(*id, |m, now, _| m.mn.register(now, cn, addr(coa)));
        w.sim.run_for(secs(1));
    }
    assert_eq!(cn_node(&w.sim, w.cn).cn.cache().len(), 2);
    assert_eq!(drops(&w.sim, w.cn, DropReason::TableFull), 1);
    let last = member(&w.sim, ids[2]);
    assert!(last.events.iter().any(|(_, e)| matches!(
        e,
        MobileEvent::Failed {
            reason: FailReason::Rejected(BaStatus::InsufficientResources),
            ..
        }
    )));
}
