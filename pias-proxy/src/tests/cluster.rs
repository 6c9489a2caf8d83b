//! Cluster-wide tests: sealed peer messages under the inter-proxy key,
//! and dynamically created groups known to every proxy.

use std::time::Instant;

use super::*;
use crate::group::AddressBlock;
use crate::ring::Ring;
use crate::wire::GroupAnnounce;

/// Peer messages travel sealed: a proxy with another inter-proxy key
/// (even one the others consider live) is not heard, replays are
/// dropped, and the plaintext never appears on the wire.
#[test]
fn peer_messages_are_sealed_and_another_key_is_not_heard() {
    let ring = Ring::with_proxies(16, (0..5).map(proxy_addr));
    let rap_addrs = ring.raps(&group(), 3);
    let mut others = (0..5).filter(|i| !rap_addrs.contains(&proxy_addr(*i)));
    let (odd, honest) = (others.next().unwrap(), others.next().unwrap());
    let t0 = Instant::now();
    let mut sim = Sim::with(5, 0, Policy::Load, |i, c| {
        if i == odd {
            c.peer_auth = peer_auth(t0, &[0x99; 32], 77);
        }
    });
    let raps = sim.raps();
    // A target joins at the proxy with the other key: its reports to the
    // RAPs are dropped, so no RAP ever lists it.
    assert_eq!(sim.join(odd, "2001:db8:9::1", 1), AckStatus::Ok);
    for r in &raps {
        assert!(sim.proxies[*r].rap.japs(&group()).is_none());
        assert!(
            sim.proxies[*r].stats.control_drops.get("auth_forged") >= Some(&1),
            "{:?}",
            sim.proxies[*r].stats.control_drops
        );
    }
    // An honest JAP's reports arrive; the plaintext is not on the wire.
    sim.peer_datagrams.clear();
    assert_eq!(sim.join(honest, "2001:db8:1::1", 1), AckStatus::Ok);
    for r in &raps {
        let (_, l) = sim.proxies[*r].rap.japs(&group()).unwrap();
        assert_eq!(l.len(), 1);
    }
    let group_bytes = group().addr.octets();
    let (src, dst, d) = sim
        .peer_datagrams
        .iter()
        .find(|(s, _, _)| *s == proxy_addr(honest))
        .cloned()
        .unwrap();
    for (_, _, d) in &sim.peer_datagrams {
        assert!(
            !d.windows(16).any(|w| w == group_bytes),
            "group address in clear"
        );
    }
    // Replaying a captured report is dropped and counted.
    let to = sim.ix(dst).unwrap();
    let before = sim.proxies[to].rap.japs(&group()).map(|(_, l)| l.len());
    sim.proxies[to].on_control(sim.now, (src, PEER_PORT), (dst, PEER_PORT), &d);
    assert_eq!(
        sim.proxies[to].stats.control_drops.get("auth_replay"),
        Some(&1)
    );
    assert_eq!(
        sim.proxies[to].rap.japs(&group()).map(|(_, l)| l.len()),
        before
    );
    // Sent from another source address than the sealed sender.
    sim.proxies[to].on_control(sim.now, (proxy_addr(odd), PEER_PORT), (dst, PEER_PORT), &d);
    assert_eq!(
        sim.proxies[to]
            .stats
            .control_drops
            .get("auth_sender_mismatch"),
        Some(&1)
    );
}

const CREATOR: &[u8] = b"creator key of P1";

fn block() -> AddressBlock {
    AddressBlock {
        base: addr("2001:db8:aa::1:0"),
        addrs: 4,
        first_port: 1024,
        last_port: 1100,
    }
}

impl Sim {
    /// A target asks proxy `at` to create a group for `uri`.
    fn create(&mut self, at: usize, target: &str, uri: &str, nonce: u64) -> (GroupAddr, AckStatus) {
        let msg = MessageRepr::Create {
            target: addr(target),
            port: 0,
            proto: PROTO_TCP,
            nonce,
            uri: uri.to_owned(),
            tag: [0; 16],
        };
        let b = auth::signed_bytes(&msg, CREATOR).unwrap();
        self.acks.clear();
        self.proxies[at].on_control(
            self.now,
            (addr(target), 9),
            (block().base, CONTROL_PORT),
            &b,
        );
        self.run();
        match self.acks.last() {
            Some(MessageRepr::JoinAck { group, status, .. }) => (*group, *status),
            other => panic!("no ack: {other:?}"),
        }
    }

    /// A target joins `g` through proxy `at`.
    fn join_group(
        &mut self,
        at: usize,
        g: GroupAddr,
        target: &str,
        nonce: u64,
        key: &[u8],
    ) -> AckStatus {
        let m = Membership {
            group: g,
            target: addr(target),
            target_port: 7,
            options: JoinOptions::default(),
            nonce,
            tag: [0; 16],
        };
        let b = auth::signed_bytes(&MessageRepr::Join(m), key).unwrap();
        self.acks.clear();
        self.proxies[at].on_control(self.now, (addr(target), 9), (g.addr, CONTROL_PORT), &b);
        self.run();
        match self.acks.last() {
            Some(MessageRepr::JoinAck { status, .. }) => *status,
            other => panic!("no ack: {other:?}"),
        }
    }

    /// A client's packet to `g` reaches proxy `iap`.
    fn send_to(&mut self, iap: usize, client: &str, sport: u16, g: GroupAddr) -> Vec<Seen> {
        self.seen.clear();
        let p = packet(
            PROTO_TCP,
            (client, sport),
            (&g.addr.to_string(), g.port),
            true,
        );
        self.proxies[iap].on_packet(self.now, p);
        self.run();
        std::mem::take(&mut self.seen)
    }
}

/// A group created at P1 is announced to every live proxy: its target
/// joins through P2, a client at P3 reaches it; a proxy that comes up
/// later learns it too.
#[test]
fn created_group_is_known_everywhere_and_joinable_at_another_proxy() {
    let mut sim = Sim::with(5, 0, Policy::Load, |i, c| {
        if i == 0 {
            c.block = Some((block(), CREATOR.to_vec()));
        }
    });
    let now = sim.now;
    sim.proxies[0].proxy_down(now, proxy_addr(4));
    let creator = "2001:db8:1::1";
    let (g, st) = sim.create(0, creator, "pias://chat", 1);
    assert_eq!(st, AckStatus::Ok);
    assert!(block().contains(&g));
    let cred = auth::tag(CREATOR, b"pias://chat");
    for i in 1..4 {
        let p = &sim.proxies[i];
        assert_eq!(
            p.dynamic_group(&g),
            Some(("pias://chat", proxy_addr(0))),
            "proxy {i}"
        );
        let c = p.group_configs().find(|c| c.group == g).unwrap();
        assert_eq!(c.credential, cred.to_vec());
        assert_eq!(c.allow, vec![addr(creator)]);
        assert_eq!(p.raps(&g), sim.proxies[1].raps(&g), "same RAPs everywhere");
        assert_eq!(p.raps(&g).len(), 3);
        assert_eq!(p.stats.groups_learned, 1);
    }
    // P5 was down at P1 when the group was created: not known there yet.
    assert_eq!(sim.proxies[4].dynamic_group(&g), None);
    assert_eq!(
        sim.join_group(4, g, creator, 1, &cred),
        AckStatus::UnknownGroup
    );

    // The target joins through P2, not through the creator.
    assert_eq!(sim.join_group(1, g, creator, 2, &cred), AckStatus::Ok);
    assert_eq!(sim.proxies[1].jap.live(&g), 1);
    assert_eq!(sim.proxies[0].jap.live(&g), 0);
    // Another target (not on the creator's allow list) is refused at P2.
    assert_eq!(
        sim.join_group(1, g, "2001:db8:1::2", 1, &cred),
        AckStatus::NotAllowed
    );
    // A client at P3 reaches it: IAP P3, a RAP, JAP P2, target.
    let s = sim.send_to(2, "2001:db8:c::1", 1000, g);
    assert_eq!(delivered_to(&s), Some(addr(creator)));
    assert_eq!(s.last().unwrap().from, 1);

    // P5 comes up at P1: it learns the group and takes joins for it.
    sim.proxies[0].proxy_up(sim.now, proxy_addr(4));
    sim.run();
    assert_eq!(
        sim.proxies[4].dynamic_group(&g),
        Some(("pias://chat", proxy_addr(0)))
    );
    assert_eq!(sim.join_group(4, g, creator, 3, &cred), AckStatus::Ok);
}

/// Announcements never override a pre-assigned group, another URI's
/// group, or a group of the receiver's own block; every refusal is counted.
#[test]
fn announcements_never_override_and_are_bounded() {
    let mut sim = Sim::with(4, 0, Policy::Load, |i, c| {
        if i == 1 {
            c.block = Some((block(), CREATOR.to_vec()));
        }
        if i == 3 {
            c.max_dynamic_groups = 1;
        }
    });
    let ann = |g: GroupAddr, uri: &str| {
        let mut config = group_config(0, Policy::Load);
        config.group = g;
        MessageRepr::GroupAnnounce(GroupAnnounce {
            config,
            uri: uri.to_owned(),
            creator: proxy_addr(0),
        })
    };
    let gx = GroupAddr::new(addr("2001:db8:aa::9:0"), 2000, PROTO_TCP).unwrap();
    let gy = GroupAddr::new(addr("2001:db8:aa::9:0"), 2001, PROTO_TCP).unwrap();
    let drops = |sim: &Sim, i: usize, why: &str| {
        sim.proxies[i]
            .stats
            .control_drops
            .get(why)
            .copied()
            .unwrap_or(0)
    };
    let from = proxy_addr(0);
    sim.inject(from, 2, &ann(group(), "pias://steal"));
    assert_eq!(drops(&sim, 2, "announce_preassigned"), 1);
    assert_eq!(sim.proxies[2].dynamic_group(&group()), None);
    sim.inject(from, 2, &ann(gx, "pias://a"));
    assert_eq!(sim.proxies[2].dynamic_group(&gx), Some(("pias://a", from)));
    sim.inject(from, 2, &ann(gx, "pias://b"));
    assert_eq!(drops(&sim, 2, "announce_uri_conflict"), 1);
    assert_eq!(sim.proxies[2].dynamic_group(&gx), Some(("pias://a", from)));
    sim.inject(from, 2, &ann(gx, "pias://a"));
    assert_eq!(
        sim.proxies[2].stats.groups_learned, 1,
        "a repeat is a no-op"
    );
    let outside = GroupAddr::new(addr("2001:db8:bb::1"), 80, PROTO_TCP).unwrap();
    sim.inject(from, 2, &ann(outside, "pias://o"));
    assert_eq!(drops(&sim, 2, "announce_outside_prefix"), 1);
    let mine = GroupAddr::new(block().base, 1030, PROTO_TCP).unwrap();
    sim.inject(from, 1, &ann(mine, "pias://mine"));
    assert_eq!(drops(&sim, 1, "announce_in_my_block"), 1);
    assert_eq!(sim.proxies[1].dynamic_group(&mine), None);
    sim.inject(from, 3, &ann(gx, "pias://a"));
    sim.inject(from, 3, &ann(gy, "pias://y"));
    assert_eq!(drops(&sim, 3, "announce_table_full"), 1);
    assert_eq!(sim.proxies[3].dynamic_group(&gy), None);
    // Unsealed, the same announcement is not even parsed.
    let plain = ann(gy, "pias://y").to_bytes().unwrap();
    sim.proxies[2].on_control(
        sim.now,
        (from, PEER_PORT),
        (proxy_addr(2), PEER_PORT),
        &plain,
    );
    assert_eq!(sim.proxies[2].dynamic_group(&gy), None);
    assert!(drops(&sim, 2, "auth_forged") + drops(&sim, 2, "auth_version") >= 1);
}
