//! The handoff coordinator's commands and inputs: operator command errors,
//! the policies as the coordinator applies them (load reports, RTTs,
//! rendezvous hashing), hostile channel messages (forged senders, unknown
//! or replayed handoffs, floods), and the frame codec on arbitrary bytes.

mod handoff_common;

use std::net::Ipv6Addr;
use std::time::Duration;

use handoff_common::*;
use mip6_anycast::crypto::DeterministicRandom;
use mip6_anycast::proto::handoff::{
    Action, CommandError, Coordinator, CoordinatorConfig, DropWhy, HandoffMsg, LoadReport,
    MemberId, MemberInfo, MsgDrop, MsgError, Policy, Roles, policy,
};
use mip6_anycast::proto::{
    CorrespondentState, ExportedToken, HomeTestMode, MobileConfig, MobileNode,
};
use proptest::prelude::*;

/// A lone coordinator (no network) for member `me` of k, a, b, c.
fn lone(me: &str, roles_of: impl Fn(&str) -> Roles) -> (Coordinator, MobileNode) {
    let infos: Vec<MemberInfo> = ["k", "a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| MemberInfo {
            name: name(n),
            coa: member_coa(i),
            roles: roles_of(n),
        })
        .collect();
    let info = infos
        .iter()
        .find(|m| m.name.as_str() == me)
        .unwrap()
        .clone();
    let mut cfg = CoordinatorConfig::new(info, addr(HOA), name("k"));
    cfg.max_concurrent = 8;
    let mut co = Coordinator::new(cfg, &infos, &mut DeterministicRandom::new(5));
    for m in &infos {
        co.peer_up(&m.name);
    }
    let mode = if me == "k" {
        HomeTestMode::Local
    } else {
        HomeTestMode::External
    };
    let mn = MobileNode::new(
        MobileConfig {
            home_test: mode,
            ..MobileConfig::new(addr(HOA))
        },
        Box::new(DeterministicRandom::new(6)),
    );
    (co, mn)
}

fn acceptors(_: &str) -> Roles {
    Roles {
        acceptor: true,
        ..Roles::default()
    }
}

/// Messages the coordinator queued: (to, msg).
fn sends(co: &mut Coordinator) -> Vec<(MemberId, HandoffMsg)> {
    std::iter::from_fn(|| co.poll_action())
        .filter_map(|a| match a {
            Action::Send { to, msg } => Some((to, msg)),
            _ => None,
        })
        .collect()
}

fn load(connections: u32, rtts: &[(Ipv6Addr, u32)]) -> HandoffMsg {
    HandoffMsg::Load(LoadReport {
        connections,
        clients: connections,
        rtt_us: rtts.to_vec(),
    })
}

/// Hands client `c` (served here) off by `policy`; returns the acceptor.
fn pick(co: &mut Coordinator, mn: &mut MobileNode, c: Ipv6Addr, p: Policy) -> String {
    let now = std::time::Instant::now();
    co.client_seen(c, 1);
    let key = co.handoff_by_policy(now, mn, c, p).unwrap();
    let to = sends(co)
        .into_iter()
        .find(|(_, m)| matches!(m, HandoffMsg::Prepare { id, .. } if *id == key.id))
        .unwrap()
        .0;
    to.to_string()
}

#[test]
fn operator_command_errors_are_typed() {
    let (mut co, mut mn) = lone("k", |n| Roles {
        acceptor: n != "c",
        ..Roles::default()
    });
    let now = std::time::Instant::now();
    let c = client(0);
    let mut h = |co: &mut Coordinator, c, to: &str| co.handoff(now, &mut mn, c, &name(to));
    assert_eq!(h(&mut co, c, "a"), Err(CommandError::NotServing(c)));
    co.client_seen(c, 2);
    assert_eq!(
        h(&mut co, c, "zed"),
        Err(CommandError::UnknownMember(name("zed")))
    );
    assert_eq!(h(&mut co, c, "k"), Err(CommandError::ToSelf));
    assert_eq!(
        h(&mut co, c, "c"),
        Err(CommandError::NotAcceptor(name("c")))
    );
    let mut mn2 = MobileNode::new(
        MobileConfig::new(addr(HOA)),
        Box::new(DeterministicRandom::new(1)),
    );
    co.peer_down(now, &mut mn2, &name("b"));
    assert_eq!(h(&mut co, c, "b"), Err(CommandError::MemberDown(name("b"))));
    assert!(h(&mut co, c, "a").is_ok());
    assert_eq!(h(&mut co, c, "a"), Err(CommandError::Busy(c)));
    // max_concurrent = 8: the ninth is refused.
    for i in 1..8 {
        co.client_seen(client(i), 1);
        assert!(h(&mut co, client(i), "a").is_ok());
    }
    co.client_seen(client(8), 1);
    assert_eq!(h(&mut co, client(8), "a"), Err(CommandError::TooMany));
    // No member up: no candidate.
    let (mut co, mut mn) = lone("k", acceptors);
    for m in ["a", "b", "c"] {
        co.peer_down(now, &mut mn, &name(m));
    }
    co.client_seen(c, 1);
    assert_eq!(
        co.handoff_by_policy(now, &mut mn, c, Policy::LeastConnections),
        Err(CommandError::NoCandidate)
    );
}

#[test]
fn least_connections_counts_reports_and_handoffs_since() {
    let (mut co, mut mn) = lone("k", acceptors);
    let now = std::time::Instant::now();
    for (m, n) in [("a", 10), ("b", 2), ("c", 4)] {
        co.handle_message(now, &mut mn, &name(m), load(n, &[]))
            .unwrap();
    }
    // b (2), b (3), b (4: tie with c, smaller name), c (4 < 5)...
    let picks: Vec<String> = (0..5)
        .map(|i| pick(&mut co, &mut mn, client(i), Policy::LeastConnections))
        .collect();
    assert_eq!(picks, ["b", "b", "b", "c", "b"]);
    // A new report replaces the estimate.
    co.handle_message(now, &mut mn, &name("a"), load(0, &[]))
        .unwrap();
    assert_eq!(
        pick(&mut co, &mut mn, client(9), Policy::LeastConnections),
        "a"
    );
}

#[test]
fn lowest_rtt_uses_the_reported_rtt_to_that_client() {
    let (mut co, mut mn) = lone("k", acceptors);
    let now = std::time::Instant::now();
    let (c0, c1) = (client(0), client(1));
    co.handle_message(now, &mut mn, &name("a"), load(0, &[(c0, 900), (c1, 100)]))
        .unwrap();
    co.handle_message(now, &mut mn, &name("b"), load(50, &[(c0, 200)]))
        .unwrap();
    co.handle_message(now, &mut mn, &name("c"), load(1, &[]))
        .unwrap();
    assert_eq!(pick(&mut co, &mut mn, c0, Policy::LowestRtt), "b");
    assert_eq!(pick(&mut co, &mut mn, c1, Policy::LowestRtt), "a");
    // Nobody measured client 2: least connections among them.
    assert_eq!(pick(&mut co, &mut mn, client(2), Policy::LowestRtt), "a");
}

#[test]
fn client_hash_is_stable_and_only_moves_clients_of_a_leaving_member() {
    let now = std::time::Instant::now();
    let mut before = Vec::new();
    for i in 0..40 {
        let (mut co, mut mn) = lone("k", acceptors);
        before.push(pick(&mut co, &mut mn, client(i), Policy::ClientHash));
        // Asked again (another coordinator, same group): same answer.
        let (mut co2, mut mn2) = lone("k", acceptors);
        assert_eq!(
            pick(&mut co2, &mut mn2, client(i), Policy::ClientHash),
            before[i as usize]
        );
    }
    assert!(
        ["a", "b", "c"]
            .iter()
            .all(|m| before.iter().any(|p| p == m)),
        "{before:?}"
    );
    for i in 0..40u16 {
        let (mut co, mut mn) = lone("k", acceptors);
        co.peer_down(now, &mut mn, &name("b"));
        let after = pick(&mut co, &mut mn, client(i), Policy::ClientHash);
        if before[usize::from(i)] == "b" {
            assert_ne!(after, "b");
        } else {
            assert_eq!(after, before[usize::from(i)]);
        }
    }
    // The coordinator's choice is the policy module's rendezvous choice.
    let cands: Vec<policy::Candidate> = ["a", "b", "c"]
        .iter()
        .map(|n| policy::Candidate {
            name: name(n),
            connections: 0,
            rtt_us: None,
        })
        .collect();
    let chosen = policy::choose(Policy::ClientHash, client(3), &cands, &mut None).unwrap();
    assert_eq!(chosen.as_str(), before[3]);
}

#[test]
fn round_robin_cycles_over_members_that_are_up() {
    let (mut co, mut mn) = lone("k", acceptors);
    let picks: Vec<String> = (0..4)
        .map(|i| pick(&mut co, &mut mn, client(i), Policy::RoundRobin))
        .collect();
    assert_eq!(picks, ["a", "b", "c", "a"]);
}

#[test]
fn hostile_messages_are_typed_drops() {
    let (mut co, mut mn) = lone("a", acceptors);
    let now = std::time::Instant::now();
    let ignored = |r: Result<(), MsgDrop>| match r {
        Err(MsgDrop::Ignored { why, .. }) => why,
        other => panic!("{other:?}"),
    };
    let state = |c| CorrespondentState {
        hoa: addr(HOA),
        cn: c,
        home_token: None,
        next_sequence: 7,
    };
    let prepare = |id, c| HandoffMsg::Prepare {
        id,
        client: c,
        state: state(c),
        connections: 1,
    };
    // A sender that is no member.
    let r = co.handle_message(now, &mut mn, &name("mallory"), prepare(1, client(0)));
    assert_eq!(ignored(r), DropWhy::UnknownMember);
    assert_eq!(co.in_progress(), (0, 0));
    // Answers to handoffs that do not exist.
    for m in [
        HandoffMsg::Bound { id: 9, sequence: 1 },
        HandoffMsg::Accept { id: 9 },
        HandoffMsg::Restored { id: 9 },
        HandoffMsg::Done { id: 9 },
    ] {
        assert_eq!(
            ignored(co.handle_message(now, &mut mn, &name("k"), m)),
            DropWhy::UnknownHandoff
        );
    }
    // Roles: only the contact node orders a drain or sends tokens.
    let r = co.handle_message(
        now,
        &mut mn,
        &name("b"),
        HandoffMsg::Drain {
            policy: Policy::RoundRobin,
        },
    );
    assert_eq!(ignored(r), DropWhy::WrongRole);
    let token = ExportedToken {
        token: [1; 8],
        nonce_index: 1,
        age: Duration::ZERO,
    };
    let r = co.handle_message(
        now,
        &mut mn,
        &name("b"),
        HandoffMsg::Token {
            client: client(0),
            token,
        },
    );
    assert_eq!(ignored(r), DropWhy::WrongRole);
    let r = co.handle_message(
        now,
        &mut mn,
        &name("b"),
        HandoffMsg::TokenRequest { client: client(0) },
    );
    assert_eq!(ignored(r), DropWhy::WrongRole);
    // A Prepare for another home address is refused, not taken.
    let mut bad = state(client(1));
    bad.hoa = addr("2001:db8:9::1");
    co.handle_message(
        now,
        &mut mn,
        &name("k"),
        HandoffMsg::Prepare {
            id: 2,
            client: client(1),
            state: bad,
            connections: 1,
        },
    )
    .unwrap();
    assert!(
        sends(&mut co)
            .iter()
            .any(|(_, m)| matches!(m, HandoffMsg::Reject { id: 2, .. }))
    );
    // A flood of Prepares: at most max_concurrent taken, the rest refused.
    for i in 0..100u16 {
        co.handle_message(
            now,
            &mut mn,
            &name("k"),
            prepare(100 + u64::from(i), client(i)),
        )
        .unwrap();
    }
    assert_eq!(co.in_progress(), (0, 8));
    let refused = sends(&mut co)
        .into_iter()
        .filter(|(_, m)| matches!(m, HandoffMsg::Reject { .. }))
        .count();
    assert_eq!(refused, 92);
    // A replayed Prepare is answered again (Accept), not taken twice; a
    // Prepare for the same client from another donor is refused.
    co.handle_message(now, &mut mn, &name("k"), prepare(100, client(0)))
        .unwrap();
    assert_eq!(
        sends(&mut co),
        [(name("k"), HandoffMsg::Accept { id: 100 })]
    );
    co.handle_message(now, &mut mn, &name("b"), prepare(100, client(0)))
        .unwrap();
    assert!(matches!(
        sends(&mut co)[..],
        [(_, HandoffMsg::Reject { .. })]
    ));
    // Done before the acceptance is live: out of order.
    let r = co.handle_message(now, &mut mn, &name("k"), HandoffMsg::Done { id: 100 });
    assert_eq!(ignored(r), DropWhy::OutOfOrder);
    // Garbage frames.
    for bytes in [
        &[][..],
        &[1],
        &[1, 99, 0, 0],
        &[7, 2, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        assert!(matches!(
            co.handle_frame(now, &mut mn, &name("k"), bytes),
            Err(MsgDrop::Malformed { .. })
        ));
    }
    assert_eq!(co.stats().malformed, 4);
    // Time passes without transfers: every acceptance ends (bounded state).
    let later = now + Duration::from_secs(60);
    while let Some(t) = co.poll_timeout().filter(|t| *t <= later) {
        co.handle_timeout(t, &mut mn);
    }
    assert_eq!(co.in_progress(), (0, 0));
    assert_eq!(co.stats().accept_aborted, 8);
}

fn arb_msg() -> impl Strategy<Value = HandoffMsg> {
    let a = any::<u128>().prop_map(Ipv6Addr::from);
    let tok = (any::<[u8; 8]>(), any::<u16>(), 0u64..4_000_000_000).prop_map(
        |(token, nonce_index, us)| ExportedToken {
            token,
            nonce_index,
            age: Duration::from_micros(us),
        },
    );
    prop_oneof![
        (
            any::<u64>(),
            a.clone(),
            a.clone(),
            any::<u16>(),
            any::<u32>(),
            proptest::option::of(tok.clone())
        )
            .prop_map(
                |(id, client, hoa, next_sequence, connections, home_token)| HandoffMsg::Prepare {
                    id,
                    client,
                    state: CorrespondentState {
                        hoa,
                        cn: client,
                        home_token,
                        next_sequence
                    },
                    connections,
                }
            ),
        any::<u64>().prop_map(|id| HandoffMsg::Accept { id }),
        any::<u64>().prop_map(|id| HandoffMsg::Cancel { id }),
        (any::<u64>(), any::<u16>()).prop_map(|(id, sequence)| HandoffMsg::Bound { id, sequence }),
        (any::<u64>(), proptest::option::of(any::<u16>())).prop_map(|(id, next_sequence)| {
            HandoffMsg::Aborted {
                id,
                next_sequence,
                reason: mip6_anycast::proto::handoff::AbortReason::Rejected(
                    mip6_anycast::proto::handoff::RejectReason::Busy,
                ),
            }
        }),
        (a.clone(), tok).prop_map(|(client, token)| HandoffMsg::Token { client, token }),
        (a.clone(), any::<u16>())
            .prop_map(|(client, sequence)| HandoffMsg::Placed { client, sequence }),
        (
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec((a, any::<u32>()), 0..600)
        )
            .prop_map(
                |(connections, clients, rtt_us)| HandoffMsg::Load(LoadReport {
                    connections,
                    clients,
                    rtt_us
                })
            ),
    ]
}

proptest! {
    #[test]
    fn codec_round_trips(m in arb_msg()) {
        let b = m.to_bytes().unwrap();
        prop_assert_eq!(b.len(), m.buffer_len());
        let back = HandoffMsg::from_bytes(&b).unwrap();
        let mut want = m;
        if let HandoffMsg::Load(l) = &mut want {
            l.rtt_us.truncate(LoadReport::MAX_RTTS);
        }
        prop_assert_eq!(back, want);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256), kind in 0u8..16) {
        let mut framed = vec![1, kind];
        framed.extend_from_slice(&u16::try_from(b.len()).unwrap().to_be_bytes());
        framed.extend_from_slice(&b);
        for input in [&b[..], &framed[..]] {
            if let Ok(m) = HandoffMsg::from_bytes(input) {
                // What decodes re-encodes to the same octets.
                prop_assert_eq!(m.to_bytes().unwrap(), input.to_vec());
            }
        }
        let e = HandoffMsg::from_bytes(&framed[..framed.len().min(3)]);
        let truncated = matches!(e, Err(MsgError::Truncated { .. }));
        prop_assert!(truncated, "{:?}", e);
    }
}
