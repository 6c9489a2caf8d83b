//! Property tests: arbitrary bytes and event sequences never panic the
//! machines, the binding cache never exceeds its bound, and no binding or
//! registration is created without a valid authenticator.

mod proto_common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::crypto::{NonceIndex, NtpTimestamp, TokenKind};
use mip6_anycast::proto::sim::{CorrespondentNode, MemberNode, RuleAction, Sim};
use mip6_anycast::proto::{
    Action, Arrival, BindingEvent, Correspondent, CorrespondentConfig, HaEvent, HomeTestMode,
    TunnelEvent,
};
use mip6_anycast::wire::{ExtChain, MhPacketRepr, MobilityHeader};
use proptest::prelude::*;
use proto_common::*;

/// The parts of a BU the authenticator covers (RFC 6275 6.2.7) plus the
/// addresses that select the binding.
fn authenticated_view(bytes: &[u8]) -> Option<(Vec<u8>, Ipv6Addr, Ipv6Addr, Ipv6Addr)> {
    let p = MhPacketRepr::parse_with_bytes(bytes).ok()?;
    let mut mh = p.mh_bytes.to_vec();
    mh[4] = 0;
    mh[5] = 0;
    let hoa = p.repr.hao.unwrap_or(p.repr.src_addr);
    let coa = p.repr.mh.alternate_coa().unwrap_or(p.repr.src_addr);
    Some((mh, hoa, coa, p.repr.dst_addr))
}

fn fix_checksum(bytes: &mut [u8]) {
    let Ok(chain) = ExtChain::walk(bytes) else {
        return;
    };
    let Some(off) = chain.mh_offset() else {
        return;
    };
    if bytes.len() < off + 8 {
        return;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[24..40]).unwrap());
    let (s, d) = (chain.pseudo_src(src), chain.pseudo_dst(dst));
    let mut mh = MobilityHeader::new_unchecked(&mut bytes[off..]);
    if mh.check_len().is_ok() {
        mh.fill_checksum(&s, &d);
    }
}

/// A valid BU for the correspondent `c` at `now`.
fn valid_bu(c: &Correspondent, now: Instant, seq: u16, lifetime: u16) -> Vec<u8> {
    let (hoa, coa) = (addr(HOA), addr(COA_K));
    let e = c.nonce_table().lookup(NonceIndex(0), now).unwrap();
    let (home, care_of) = (
        e.token(hoa, TokenKind::Home),
        e.token(coa, TokenKind::CareOf),
    );
    craft_bu(
        (hoa, coa, addr(CN)),
        seq,
        lifetime,
        (&home, 0),
        Some((&care_of, 0)),
    )
}

fn small_cn(t0: Instant) -> Correspondent {
    correspondent(
        t0,
        CorrespondentConfig {
            max_bindings: 2,
            ..cn_config()
        },
        7,
    )
}

fn drain_cn(c: &mut Correspondent) -> Vec<BindingEvent> {
    let mut ev = Vec::new();
    while let Some(a) = c.poll_action() {
        if let Action::Event(e) = a {
            ev.push(e);
        }
    }
    ev
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn correspondent_takes_arbitrary_bytes(
        packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..160), 1..20),
        fix in any::<bool>(),
    ) {
        let t0 = Instant::now();
        let mut c = small_cn(t0);
        for (i, mut p) in packets.into_iter().enumerate() {
            if fix {
                fix_checksum(&mut p);
            }
            let now = t0 + Duration::from_millis(i as u64 * 300);
            c.handle_packet(now, &p);
            c.handle_timeout(now);
            let ev = drain_cn(&mut c);
            prop_assert!(ev.is_empty(), "random bytes created a binding: {ev:?}");
            prop_assert!(c.cache().len() <= 2);
        }
    }

    #[test]
    fn correspondent_binds_only_authentic_updates(
        mutations in prop::collection::vec((0usize..128, any::<u8>(), any::<bool>()), 1..8),
        seq in any::<u16>(),
        lifetime in any::<u16>(),
    ) {
        let t0 = Instant::now();
        let mut c = small_cn(t0);
        let original = valid_bu(&c, t0, seq, lifetime);
        let view = authenticated_view(&original).unwrap();
        let mut p = original.clone();
        for (at, x, fix) in mutations {
            if let Some(b) = p.get_mut(at % original.len()) {
                *b ^= x;
            }
            if fix {
                fix_checksum(&mut p);
            }
        }
        c.handle_packet(t0, &p);
        let ev = drain_cn(&mut c);
        if !ev.is_empty() {
            let got = authenticated_view(&p);
            prop_assert_eq!(got.as_ref(), Some(&view), "binding from a packet whose authenticated data changed");
        }
        // The original is accepted (unless it deletes nothing) and bounded.
        c.handle_packet(t0, &original);
        prop_assert!(c.cache().len() <= 2);
        if lifetime != 0 {
            prop_assert!(c.binding(addr(CN), addr(HOA)).is_some());
        }
    }

    #[test]
    fn mobile_node_takes_arbitrary_bytes(
        packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..160), 1..20),
        tunnel in any::<bool>(),
    ) {
        let t0 = Instant::now();
        let mut m = mobile(HOA, HomeTestMode::Local, 3);
        m.register(t0, addr(CN), addr(COA_K));
        for (i, mut p) in packets.into_iter().enumerate() {
            // Pretend it came from the correspondent so it reaches an entry.
            if p.len() >= 24 {
                p[8..24].copy_from_slice(&addr(CN).octets());
            }
            fix_checksum(&mut p);
            let now = t0 + Duration::from_millis(i as u64 * 700);
            m.handle_packet(now, &p, if tunnel { Arrival::Tunnel } else { Arrival::Direct });
            m.handle_timeout(now);
            while let Some(a) = m.poll_action() {
                prop_assert!(!matches!(a, Action::Event(mip6_anycast::proto::MobileEvent::Bound { .. })), "bound by random bytes");
            }
            if let Some(t) = m.poll_timeout() {
                prop_assert!(t > now, "timer not consumed");
            }
        }
    }

    #[test]
    fn home_agent_and_client_take_arbitrary_bytes(
        packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..160), 1..20),
    ) {
        let t0 = Instant::now();
        let mut ha = home_agent();
        let mut hr = home_reg(COA_K, mn_ha_key(), 1);
        let wall = NtpTimestamp::from_unix(WALL0);
        hr.register(t0, wall);
        for (i, mut p) in packets.into_iter().enumerate() {
            if p.len() >= 24 {
                p[8..24].copy_from_slice(&addr(HA).octets());
            }
            fix_checksum(&mut p);
            let now = t0 + Duration::from_millis(i as u64 * 500);
            ha.handle_packet(now, wall, &p);
            ha.handle_timeout(now);
            hr.handle_packet(now, wall, &p);
            hr.handle_timeout(now, wall);
            while let Some(a) = ha.poll_action() {
                prop_assert!(!matches!(a, Action::Event(HaEvent::Tunnel(TunnelEvent::Up { .. }))), "registered by random bytes");
            }
            while let Some(a) = hr.poll_action() {
                prop_assert!(!matches!(a, Action::Event(mip6_anycast::proto::HomeRegEvent::Registered { .. })), "accepted a random BA");
            }
        }
    }

    #[test]
    fn home_agent_registers_only_authentic_updates(
        mutations in prop::collection::vec((0usize..128, any::<u8>()), 1..6),
    ) {
        let t0 = Instant::now();
        let wall = NtpTimestamp::from_unix(WALL0);
        let mut hr = home_reg(COA_K, mn_ha_key(), 1);
        hr.register(t0, wall);
        let Some(Action::Transmit(bu)) = hr.poll_action() else { panic!() };
        let original = bu.bytes;
        let mut p = original.clone();
        for (at, x) in mutations {
            if let Some(b) = p.get_mut(at % original.len()) {
                *b ^= x;
            }
        }
        fix_checksum(&mut p);
        let mut ha = home_agent();
        ha.handle_packet(t0, wall, &p);
        let mut up = false;
        while let Some(a) = ha.poll_action() {
            up |= matches!(a, Action::Event(HaEvent::Tunnel(TunnelEvent::Up { .. })));
        }
        if up {
            let (a, b) = (MhPacketRepr::parse_with_bytes(&p).unwrap(), MhPacketRepr::parse_with_bytes(&original).unwrap());
            let strip = |x: &[u8]| { let mut v = x.to_vec(); v[4] = 0; v[5] = 0; v };
            prop_assert_eq!(strip(a.mh_bytes), strip(b.mh_bytes));
            prop_assert_eq!((a.repr.hao, a.repr.src_addr), (b.repr.hao, b.repr.src_addr));
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Register(usize, usize),
    Deregister(usize),
    Brr,
    Used,
    Advance(u16),
    Loss(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, 0usize..3).prop_map(|(m, c)| Op::Register(m, c)),
        (0usize..3).prop_map(Op::Deregister),
        Just(Op::Brr),
        Just(Op::Used),
        (1u16..600).prop_map(Op::Advance),
        (0u8..60).prop_map(Op::Loss),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_event_sequences_keep_invariants(ops in prop::collection::vec(op(), 1..25), seed in any::<u64>()) {
        let t0 = Instant::now();
        let mut sim = Sim::new(t0, WALL0, seed);
        sim.profile.jitter = Duration::from_millis(50);
        let cn = sim.add_node(Box::new(CorrespondentNode::new(
            correspondent(t0, CorrespondentConfig { max_bindings: 2, ..cn_config() }, seed),
            vec![addr(CN)],
        )));
        let homes = ["2001:db8:1::100", "2001:db8:1::200", "2001:db8:1::300"];
        let coas: Vec<Vec<Ipv6Addr>> = (0..3)
            .map(|m| (0..3).map(|c| format!("2001:db8:{}::{}", 10 + m, c + 1).parse().unwrap()).collect())
            .collect();
        let members: Vec<usize> = (0..3)
            .map(|m| {
                let id = sim.add_node(Box::new(MemberNode::new(
                    mobile(homes[m], HomeTestMode::Local, seed ^ m as u64),
                    None,
                    coas[m].clone(),
                )));
                sim.set_home_route(addr(homes[m]), Some(coas[m][0]));
                id
            })
            .collect();
        for o in ops {
            match o {
                Op::Register(m, c) => {
                    let coa = coas[m][c];
                    sim.with::<MemberNode, _>(members[m], |n, now, _| n.mn.register(now, addr(CN), coa));
                }
                Op::Deregister(m) => {
                    sim.with::<MemberNode, _>(members[m], |n, now, _| n.mn.deregister(now, addr(CN)));
                }
                Op::Brr => {
                    sim.clear_rules();
                    sim.add_rule(RuleAction::Duplicate, Some(3), |_| true);
                }
                Op::Used => {
                    sim.with::<CorrespondentNode, _>(cn, |n, now, _| {
                        for h in homes {
                            n.cn.note_binding_used(now, addr(CN), addr(h));
                        }
                    });
                }
                Op::Advance(s) => sim.run_for(Duration::from_secs(u64::from(s))),
                Op::Loss(p) => sim.profile.loss = f64::from(p) / 100.0,
            }
            prop_assert!(!sim.stalled());
            let c = &sim.node::<CorrespondentNode>(cn).cn;
            prop_assert!(c.cache().len() <= 2);
            for b in c.cache().iter() {
                let m = homes.iter().position(|h| addr(h) == b.hoa);
                prop_assert!(m.is_some_and(|m| coas[m].contains(&b.coa)), "binding {b:?} nobody asked for");
            }
        }
    }
}
