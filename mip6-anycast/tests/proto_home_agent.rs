//! Home registration with RFC 4285 authentication between the contact
//! node's client and the home agent; replayed and out-of-window
//! timestamps, wrong key, missing options; restart from persisted records;
//! takeover by a backup member; and the full chain with the anycast
//! handoff routed through the home agent.

mod proto_common;

use std::time::{Duration, Instant};

use mip6_anycast::crypto::{MnHaKey, NtpTimestamp};
use mip6_anycast::proto::sim::{
    CorrespondentNode, HomeAgentNode, MemberNode, NodeId, RuleAction, Sim,
};
use mip6_anycast::proto::{
    Arrival, DropReason, HomeRegEvent, HomeTestMode, RegistrationRecord, TunnelEvent,
};
use mip6_anycast::wire::mh::mh_type;
use mip6_anycast::wire::{MhMessage, MhPacketRepr, MobilityOption};
use proto_common::*;

struct HaWorld {
    sim: Sim,
    ha: NodeId,
    cn: NodeId,
    k: NodeId,
}

fn ha_world(seed: u64, k_key: MnHaKey, k_seq: u16) -> HaWorld {
    let t0 = Instant::now();
    let mut sim = Sim::new(t0, WALL0, seed);
    let ha = sim.add_node(Box::new(HomeAgentNode::new(home_agent(), vec![addr(HA)])));
    let cn = sim.add_node(Box::new(CorrespondentNode::new(
        correspondent(t0, cn_config(), seed),
        vec![addr(CN)],
    )));
    let k = sim.add_node(Box::new(MemberNode::new(
        mobile(HOA, HomeTestMode::Local, seed + 1),
        Some(home_reg(COA_K, k_key, k_seq)),
        vec![addr(COA_K)],
    )));
    HaWorld { sim, ha, cn, k }
}

fn start_home_reg(sim: &mut Sim, id: NodeId) {
    sim.with::<MemberNode, _>(id, |m, now, wall| {
        m.home_reg.as_mut().unwrap().register(now, wall);
    });
}

fn home_events(sim: &Sim, id: NodeId) -> Vec<HomeRegEvent> {
    member(sim, id)
        .home_events
        .iter()
        .map(|(_, e)| *e)
        .collect()
}

fn ha_drops(sim: &Sim, ha: NodeId, r: DropReason) -> u64 {
    ha_node(sim, ha).ha.stats().drops.get(r)
}

fn ha_statuses(sim: &Sim, ha: NodeId) -> Vec<u8> {
    ba_statuses(sim, ha).iter().map(|s| s.1).collect()
}

#[test]
fn home_registration_with_mn_ha_auth() {
    let mut w = ha_world(60, mn_ha_key(), 1000);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(1));
    let bu = sent(&w.sim, w.k, mh_type::BU);
    let p = parse(&bu[0].transmit.bytes);
    assert_eq!(
        (p.src_addr, p.dst_addr, p.hao),
        (addr(COA_K), addr(HA), Some(addr(HOA)))
    );
    let MhMessage::BindingUpdate(b) = p.mh.message else {
        panic!()
    };
    assert!(b.flags.ack() && b.flags.home_registration());
    assert_eq!(b.sequence, 1000);
    let sent_id = p.mh.mesg_id().unwrap();
    assert_eq!(
        sent_id,
        NtpTimestamp::from_unix(WALL0).0,
        "wall clock at t0"
    );
    assert!(
        matches!(p.mh.options.last(), Some(MobilityOption::MessageAuth(a)) if a.spi == SPI.0 && a.auth_data.len() == 12)
    );

    let ba = parse(&sent(&w.sim, w.ha, mh_type::BA)[0].transmit.bytes);
    assert_eq!((ba.dst_addr, ba.rh2), (addr(COA_K), Some(addr(HOA))));
    assert_eq!(ba.mh.mesg_id(), Some(sent_id), "Mesg-ID echoed");
    assert!(matches!(
        home_events(&w.sim, w.k).as_slice(),
        [HomeRegEvent::Registered { coa, lifetime, sequence: 1000, .. }] if *coa == addr(COA_K) && *lifetime == secs(600)
    ));
    let ha = ha_node(&w.sim, w.ha);
    assert_eq!(ha.tunnel_events.len(), 1);
    assert_eq!(
        ha.tunnel_events[0].1,
        TunnelEvent::Up {
            hoa: addr(HOA),
            coa: addr(COA_K)
        }
    );
    let rec = ha.store.get(&addr(HOA)).unwrap();
    assert_eq!(
        (rec.coa, rec.sequence, rec.mesg_id),
        (addr(COA_K), 1000, sent_id)
    );
    // Absolute expiry: wall clock at registration + 600 s.
    assert_eq!(rec.expires_unix_ms / 1000, WALL0.as_secs() + 600);

    // Refreshed at 80 % of the lifetime, never lapses.
    w.sim.run_for(secs(2000));
    let ev = home_events(&w.sim, w.k);
    assert!(
        ev.len() >= 4
            && ev
                .iter()
                .all(|e| matches!(e, HomeRegEvent::Registered { .. })),
        "{ev:?}"
    );
    assert_eq!(
        ha_node(&w.sim, w.ha).tunnel_events.len(),
        1,
        "same CoA: no tunnel change"
    );

    // Deregistration on shutdown.
    w.sim.with::<MemberNode, _>(w.k, |m, now, wall| {
        m.home_reg.as_mut().unwrap().deregister(now, wall)
    });
    w.sim.run_for(secs(1));
    assert_eq!(
        home_events(&w.sim, w.k).last(),
        Some(&HomeRegEvent::Deregistered)
    );
    let ha = ha_node(&w.sim, w.ha);
    assert_eq!(
        ha.tunnel_events.last().unwrap().1,
        TunnelEvent::Down { hoa: addr(HOA) }
    );
    assert!(ha.store.is_empty() && ha.ha.registration(addr(HOA)).is_none());
}

#[test]
fn replayed_bu_is_rejected_and_changes_nothing() {
    let mut w = ha_world(61, mn_ha_key(), 5);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(1));
    let first = sent(&w.sim, w.k, mh_type::BU)[0].transmit.bytes.clone();
    // Immediately: same timestamp, not newer.
    w.sim.inject(w.ha, &first, Arrival::Direct);
    // Later: out of the 7 s window as well.
    w.sim.run_for(secs(60));
    w.sim.inject(w.ha, &first, Arrival::Direct);
    assert_eq!(ha_drops(&w.sim, w.ha, DropReason::TimestampRejected), 2);
    assert_eq!(ha_statuses(&w.sim, w.ha), vec![0, 144, 144]);
    assert_eq!(ha_node(&w.sim, w.ha).ha.stats().accepted, 1);
    assert_eq!(ha_node(&w.sim, w.ha).tunnel_events.len(), 1);
}

#[test]
fn out_of_window_clock_is_resynchronised_by_144() {
    let mut w = ha_world(62, mn_ha_key(), 5);
    w.sim.set_clock_skew(w.k, 60);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(2));
    assert_eq!(ha_statuses(&w.sim, w.ha), vec![144, 0]);
    let ba = parse(&sent(&w.sim, w.ha, mh_type::BA)[0].transmit.bytes);
    let ha_time = NtpTimestamp(ba.mh.mesg_id().unwrap());
    assert!(
        ha_time.offset_from(w.sim.wall(w.ha)).abs() < (2i64 << 32),
        "HA's own time"
    );
    let k = member(&w.sim, w.k);
    assert_eq!(k.home_reg.as_ref().unwrap().stats().timestamp_resyncs, 1);
    assert!(matches!(
        home_events(&w.sim, w.k).as_slice(),
        [HomeRegEvent::Registered { .. }]
    ));
}

#[test]
fn wrong_key_is_rejected_with_146_and_never_registers() {
    let mut w = ha_world(63, MnHaKey::from_array(&[0x13; 20]), 5);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(10));
    assert!(ha_drops(&w.sim, w.ha, DropReason::MnHaAuthFailed) >= 3);
    assert!(ha_statuses(&w.sim, w.ha).iter().all(|s| *s == 146));
    assert!(ha_node(&w.sim, w.ha).tunnel_events.is_empty());
    // K cannot verify the HA's BA (other key): dropped, keeps retrying.
    let k = member(&w.sim, w.k);
    assert!(
        k.drops
            .iter()
            .any(|(_, r)| *r == DropReason::MnHaAuthFailed)
    );
    assert!(home_events(&w.sim, w.k).is_empty());
}

#[test]
fn missing_options_and_foreign_home_address() {
    let mut w = ha_world(64, mn_ha_key(), 5);
    w.sim
        .add_rule(RuleAction::Drop, Some(1), |p| p.mh_type == mh_type::BU);
    start_home_reg(&mut w.sim, w.k);
    let bu = parse(&sent(&w.sim, w.k, mh_type::BU)[0].transmit.bytes);
    // Without Mesg-ID (re-signed with the right key): 145.
    let mut no_id = bu.clone();
    no_id
        .mh
        .options
        .retain(|o| !matches!(o, MobilityOption::MesgId { .. }));
    let key = mn_ha_key();
    let bytes = no_id
        .to_bytes_with_message_auth(1, |i| {
            mip6_anycast::crypto::mn_ha_authenticator(&key, addr(COA_K), addr(HOA), &i.to_vec())
                .as_bytes()
                .to_vec()
        })
        .unwrap();
    w.sim.inject(w.ha, &bytes, Arrival::Direct);
    // Without the MN-HA option: silently dropped.
    let mut no_auth = bu.clone();
    no_auth
        .mh
        .options
        .retain(|o| !matches!(o, MobilityOption::MessageAuth(_)));
    w.sim
        .inject(w.ha, &no_auth.to_bytes().unwrap(), Arrival::Direct);
    // Home address outside the home prefix: 132.
    let foreign = MhPacketRepr {
        hao: Some(addr("2001:db8:99::1")),
        ..bu.clone()
    };
    w.sim
        .inject(w.ha, &foreign.to_bytes().unwrap(), Arrival::Direct);
    assert_eq!(ha_statuses(&w.sim, w.ha), vec![145, 132]);
    assert_eq!(ha_drops(&w.sim, w.ha, DropReason::MissingMnHaAuth), 1);
    assert_eq!(ha_drops(&w.sim, w.ha, DropReason::NotHomeSubnet), 1);
    assert!(ha_node(&w.sim, w.ha).tunnel_events.is_empty());
    // The genuine retransmission registers.
    w.sim.run_for(secs(2));
    assert_eq!(ha_node(&w.sim, w.ha).tunnel_events.len(), 1);
}

#[test]
fn restart_restores_registrations_from_persisted_records() {
    let mut w = ha_world(65, mn_ha_key(), 5);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(100));
    let first = sent(&w.sim, w.k, mh_type::BU)[0].transmit.bytes.clone();
    // Records survive a JSON round trip (the daemon's storage).
    let json =
        serde_json::to_string(&ha_node(&w.sim, w.ha).store.values().collect::<Vec<_>>()).unwrap();
    let recs: Vec<RegistrationRecord> = serde_json::from_str(&json).unwrap();
    assert_eq!(recs.len(), 1);
    // The HA is down for 30 s, then restarts with an empty machine.
    w.sim.run_for(secs(30));
    let restored = w
        .sim
        .with::<HomeAgentNode, _>(w.ha, |n, now, wall| n.restart(home_agent(), now, wall));
    assert_eq!(restored, 1);
    let reg = ha_node(&w.sim, w.ha)
        .ha
        .registration(addr(HOA))
        .unwrap()
        .clone();
    assert_eq!(reg.coa, addr(COA_K));
    // 600 s granted at 0.01 s, restored at 130 s: 470 s left (whole seconds).
    assert_eq!((reg.expires - w.sim.now()).as_secs(), 470);
    assert!(matches!(
        ha_node(&w.sim, w.ha).tunnel_events.last().unwrap().1,
        TunnelEvent::Up { coa, .. } if coa == addr(COA_K)
    ));
    // Replay protection survived the restart.
    w.sim.inject(w.ha, &first, Arrival::Direct);
    assert_eq!(*ha_statuses(&w.sim, w.ha).last().unwrap(), 144);
    // The client's refresh (at 480 s) is accepted by the restarted HA.
    w.sim.run_for(secs(400));
    assert!(home_events(&w.sim, w.k).len() >= 2);
    assert!(ha_node(&w.sim, w.ha).ha.registration(addr(HOA)).is_some());
    // A record already expired is not restored.
    let mut old = recs[0].clone();
    old.expires_unix_ms = 1000;
    let mut fresh = home_agent();
    assert_eq!(fresh.restore(&[old], w.sim.now(), w.sim.wall(w.ha)), 0);
}

#[test]
fn backup_takes_over_with_a_newer_registration() {
    let mut w = ha_world(66, mn_ha_key(), 1000);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(5));
    // Backup B holds the shared key but not K's sequence number.
    let b = w.sim.add_node(Box::new(MemberNode::new(
        mobile(HOA, HomeTestMode::Local, 67),
        Some(home_reg(COA_B, mn_ha_key(), 0)),
        vec![addr(COA_B)],
    )));
    // K dies (stops refreshing); B registers.
    w.sim
        .with::<MemberNode, _>(w.k, |m, _, _| m.home_reg = None);
    start_home_reg(&mut w.sim, b);
    w.sim.run_for(secs(2));
    assert_eq!(ha_statuses(&w.sim, w.ha), vec![0, 135, 0]);
    assert_eq!(
        member(&w.sim, b).home_reg.as_ref().unwrap().stats().resyncs,
        1
    );
    let ha = ha_node(&w.sim, w.ha);
    assert_eq!(
        ha.tunnel_events.last().unwrap().1,
        TunnelEvent::Up {
            hoa: addr(HOA),
            coa: addr(COA_B)
        }
    );
    assert_eq!(ha.ha.stats().moves, 1);
    assert_eq!(ha.store.get(&addr(HOA)).unwrap().coa, addr(COA_B));
    // HoTs now reach B through the tunnel: B can run the home test.
    let cn = addr(CN);
    w.sim
        .with::<MemberNode, _>(b, |m, now, _| m.mn.register(now, cn, addr(COA_B)));
    w.sim.run_for(secs(1));
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_B)));
}

#[test]
fn an_overtaken_contact_stops_instead_of_resynchronising() {
    // K registered, then B took X over with a newer sequence number; K
    // (resync off, as an anycast contact node once registered) refreshes,
    // gets 135, reports Overtaken and stops: B keeps the registration.
    let mut w = ha_world(68, mn_ha_key(), 1000);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(5));
    let b = w.sim.add_node(Box::new(MemberNode::new(
        mobile(HOA, HomeTestMode::Local, 69),
        Some(home_reg(COA_B, mn_ha_key(), 1000 + 1024)),
        vec![addr(COA_B)],
    )));
    start_home_reg(&mut w.sim, b);
    w.sim.run_for(secs(1));
    assert_eq!(
        ha_node(&w.sim, w.ha).store.get(&addr(HOA)).unwrap().coa,
        addr(COA_B)
    );
    w.sim.with::<MemberNode, _>(w.k, |m, now, wall| {
        let hr = m.home_reg.as_mut().unwrap();
        hr.set_resync_allowed(false);
        hr.register(now, wall);
    });
    w.sim.run_for(secs(30));
    let ev = home_events(&w.sim, w.k);
    assert!(
        matches!(ev.last(), Some(HomeRegEvent::Overtaken { sequence }) if *sequence == 1000 + 1024),
        "{ev:?}"
    );
    let k = member(&w.sim, w.k).home_reg.as_ref().unwrap();
    assert_eq!(k.stats().resyncs, 0);
    assert_eq!(k.registration(), None);
    // No retransmission or refresh after it stopped: B still holds X.
    assert_eq!(
        ha_node(&w.sim, w.ha).store.get(&addr(HOA)).unwrap().coa,
        addr(COA_B)
    );
    assert_eq!(
        ha_statuses(&w.sim, w.ha)
            .iter()
            .filter(|s| **s == 135)
            .count(),
        1
    );
}

#[test]
fn registration_expires_when_not_refreshed() {
    let mut w = ha_world(68, mn_ha_key(), 5);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(1));
    w.sim
        .with::<MemberNode, _>(w.k, |m, _, _| m.home_reg = None);
    w.sim.run_for(secs(598));
    assert!(ha_node(&w.sim, w.ha).ha.registration(addr(HOA)).is_some());
    w.sim.run_for(secs(2));
    let ha = ha_node(&w.sim, w.ha);
    assert!(ha.ha.registration(addr(HOA)).is_none());
    assert_eq!(
        ha.tunnel_events.last().unwrap().1,
        TunnelEvent::Down { hoa: addr(HOA) }
    );
    assert!(ha.store.is_empty());
    assert_eq!(ha.ha.stats().expired, 1);
}

#[test]
fn full_chain_contact_node_registered_at_ha_hands_client_to_acceptor() {
    let mut w = ha_world(69, mn_ha_key(), 5);
    start_home_reg(&mut w.sim, w.k);
    w.sim.run_for(secs(1));
    let a = add_acceptor(&mut w.sim, COA_A, 70);
    let cn = addr(CN);
    w.sim
        .with::<MemberNode, _>(w.k, |m, now, _| m.mn.fetch_home_token(now, cn));
    w.sim.run_for(Duration::from_millis(200));
    let state = w
        .sim
        .with::<MemberNode, _>(w.k, |m, now, _| m.mn.export(now, cn))
        .unwrap();
    assert!(
        state.home_token.is_some(),
        "HoT came back through the HA to K"
    );
    w.sim.with::<MemberNode, _>(a, |m, now, _| {
        m.mn.import(now, &state);
        m.mn.register(now, cn, addr(COA_A));
    });
    w.sim.run_for(Duration::from_millis(200));
    assert_eq!(client_binding(&w.sim, w.cn), Some(addr(COA_A)));
}
