//! Round trips and hostile input for every message.
use super::*;
use crate::group::PROTO_UDP;

fn g() -> GroupAddr {
    GroupAddr::new("2001:db8:aa::7".parse().unwrap(), 5353, PROTO_UDP).unwrap()
}

fn a(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)
}

fn all() -> Vec<MessageRepr> {
    let m = Membership {
        group: g(),
        target: a(1),
        target_port: 8080,
        options: JoinOptions {
            can_decap: true,
            exclude_self: false,
        },
        nonce: 42,
        tag: [7; TAG_LEN],
    };
    vec![
        MessageRepr::Join(m.clone()),
        MessageRepr::Leave(m),
        MessageRepr::JoinAck {
            group: g(),
            nonce: 9,
            status: AckStatus::Replay,
        },
        MessageRepr::Create {
            target: a(2),
            port: 0,
            proto: 6,
            nonce: 3,
            uri: "pias://svc".into(),
            tag: [1; TAG_LEN],
        },
        MessageRepr::JapUpdate {
            group: g(),
            jap: a(3),
            count: 100,
            seq: 7,
            policy: Policy::Scoped,
        },
        MessageRepr::JapUpdateAck {
            group: g(),
            seq: 7,
            bound_pct: 25,
        },
        MessageRepr::JapQuery { group: g() },
        MessageRepr::JapList {
            group: g(),
            entries: (0..MAX_JAP_LIST as u16)
                .map(|i| JapEntry {
                    jap: a(i),
                    count: u32::from(i),
                })
                .collect(),
        },
        MessageRepr::JapList {
            group: g(),
            entries: Vec::new(),
        },
        MessageRepr::RttReport {
            entries: (0..MAX_RTT_ENTRIES as u16)
                .map(|i| RttEntry {
                    peer: a(i),
                    rtt_us: u32::from(i) * 1000,
                })
                .collect(),
        },
        MessageRepr::TargetsGone {
            group: g(),
            jap: a(4),
        },
        MessageRepr::FlowQuery {
            group: g(),
            client: a(5),
            client_port: 999,
            id: 77,
        },
        MessageRepr::FlowAnswer {
            group: g(),
            client: a(5),
            client_port: 999,
            id: 77,
            jap: a(6),
        },
        MessageRepr::GroupAnnounce(announce(
            MAX_CREDENTIAL_LEN,
            MAX_ANNOUNCE_ALLOW,
            MAX_URI_LEN,
        )),
        MessageRepr::GroupAnnounce(announce(1, 0, 0)),
    ]
}

fn announce(cred: usize, allow: usize, uri: usize) -> GroupAnnounce {
    GroupAnnounce {
        config: crate::group::GroupConfig {
            group: g(),
            policy: Policy::Load,
            scope_prefix_len: 56,
            raps: 4,
            error_bound_pct: 25,
            credential: (0..cred).map(|i| i as u8).collect(),
            allow: (0..allow as u16).map(a).collect(),
        },
        uri: "u".repeat(uri),
        creator: a(9),
    }
}

#[test]
fn group_announce_bounds_are_enforced() {
    // Emit refuses out-of-bound or out-of-domain configurations.
    for bad in [
        announce(MAX_CREDENTIAL_LEN + 1, 0, 1),
        announce(0, 0, 1),
        announce(1, MAX_ANNOUNCE_ALLOW + 1, 1),
        announce(1, 0, MAX_URI_LEN + 1),
    ] {
        assert!(MessageRepr::GroupAnnounce(bad).to_bytes().is_err());
    }
    let mut bad = announce(1, 0, 1);
    bad.config.raps = 0;
    assert!(MessageRepr::GroupAnnounce(bad).to_bytes().is_err());
    // Parse refuses counts above their bounds before allocating, a
    // length that does not add up, a bad policy and a non-UTF-8 URI.
    let b = MessageRepr::GroupAnnounce(announce(4, 2, 10))
        .to_bytes()
        .unwrap();
    let fixed = HEADER_LEN + GROUP_LEN + 16;
    for (at, v) in [(fixed + 4, 65u8), (fixed + 5, 17), (fixed + 6, 201)] {
        let mut bad = b.clone();
        bad[at] = v;
        assert!(
            matches!(MessageRepr::from_bytes(&bad), Err(Error::TooMany { .. })),
            "byte {at} = {v}"
        );
    }
    for (at, v) in [(fixed + 4, 5u8), (fixed + 5, 1), (fixed + 6, 9)] {
        let mut bad = b.clone();
        bad[at] = v;
        assert!(
            matches!(MessageRepr::from_bytes(&bad), Err(Error::BadLength { .. })),
            "byte {at} = {v}"
        );
    }
    let mut bad = b.clone();
    bad[fixed] = 9;
    assert_eq!(
        MessageRepr::from_bytes(&bad),
        Err(Error::BadField("policy"))
    );
    let mut bad = b.clone();
    bad[fixed + 2] = 0;
    assert_eq!(
        MessageRepr::from_bytes(&bad),
        Err(Error::BadField("rap count"))
    );
    let mut bad = b.clone();
    let last = bad.len() - 1;
    bad[last] = 0xff;
    assert_eq!(
        MessageRepr::from_bytes(&bad),
        Err(Error::BadField("uri utf-8"))
    );
}

#[test]
fn every_message_round_trips() {
    for m in all() {
        let b = m.to_bytes().unwrap();
        assert_eq!(b.len(), m.buffer_len());
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.kind(), m.kind());
        assert_eq!(MessageRepr::parse(&p).unwrap(), m);
    }
}

#[test]
fn truncated_and_extended_messages_are_typed_errors() {
    for m in all() {
        let b = m.to_bytes().unwrap();
        for n in 0..b.len() {
            assert!(
                MessageRepr::from_bytes(&b[..n]).is_err(),
                "{m:?} cut at {n}"
            );
        }
        // A body length that lies (one more, one less) is refused.
        for delta in [1i32, -1] {
            let mut c = b.clone();
            let len = (i32::from(u16::from_be_bytes([c[4], c[5]])) + delta).max(0) as u16;
            c[4..6].copy_from_slice(&len.to_be_bytes());
            c.push(0);
            assert!(MessageRepr::from_bytes(&c).is_err(), "{m:?} len {delta}");
        }
    }
}

#[test]
fn forged_fields_are_refused() {
    let b = MessageRepr::JapQuery { group: g() }.to_bytes().unwrap();
    let mut bad = b.clone();
    bad[0] = 0;
    assert_eq!(MessageRepr::from_bytes(&bad), Err(Error::BadMagic(0x0049)));
    let mut bad = b.clone();
    bad[2] = 2;
    assert_eq!(MessageRepr::from_bytes(&bad), Err(Error::BadVersion(2)));
    let mut bad = b.clone();
    bad[3] = 99;
    assert_eq!(MessageRepr::from_bytes(&bad), Err(Error::UnknownKind(99)));
    // Group with port 0 or protocol ICMP.
    let mut bad = b.clone();
    bad[HEADER_LEN + 16..HEADER_LEN + 18].copy_from_slice(&[0, 0]);
    assert_eq!(MessageRepr::from_bytes(&bad), Err(Error::BadField("group")));
    let mut bad = b.clone();
    bad[HEADER_LEN + 18] = 58;
    assert!(MessageRepr::from_bytes(&bad).is_err());
    // A list claiming 255 entries.
    let l = MessageRepr::JapList {
        group: g(),
        entries: vec![],
    }
    .to_bytes()
    .unwrap();
    let mut bad = l.clone();
    bad[HEADER_LEN + GROUP_LEN] = 255;
    assert!(matches!(
        MessageRepr::from_bytes(&bad),
        Err(Error::TooMany { .. })
    ));
    // Unknown option bits, bad ack status, bound over 100 %.
    let j = all()[0].to_bytes().unwrap();
    let mut bad = j.clone();
    bad[HEADER_LEN + GROUP_LEN + 18] = 0x80;
    assert_eq!(
        MessageRepr::from_bytes(&bad),
        Err(Error::BadField("join options"))
    );
    let ack = all()[2].to_bytes().unwrap();
    let mut bad = ack.clone();
    bad[HEADER_LEN + GROUP_LEN + 8] = 200;
    assert_eq!(
        MessageRepr::from_bytes(&bad),
        Err(Error::BadField("ack status"))
    );
    let ua = all()[5].to_bytes().unwrap();
    let mut bad = ua.clone();
    bad[HEADER_LEN + GROUP_LEN + 4] = 101;
    assert!(MessageRepr::from_bytes(&bad).is_err());
    // A URI that is not UTF-8, or longer than its bound.
    let c = all()[3].to_bytes().unwrap();
    let mut bad = c.clone();
    let last = bad.len() - 1;
    bad[last] = 0xff;
    assert_eq!(
        MessageRepr::from_bytes(&bad),
        Err(Error::BadField("uri utf-8"))
    );
    let long = MessageRepr::Create {
        target: a(1),
        port: 0,
        proto: 6,
        nonce: 1,
        uri: "x".repeat(MAX_URI_LEN + 1),
        tag: [0; TAG_LEN],
    };
    assert!(matches!(long.to_bytes(), Err(Error::TooMany { .. })));
}

#[test]
fn emit_refuses_short_buffers() {
    let m = MessageRepr::JapQuery { group: g() };
    let mut small = [0u8; 10];
    assert!(matches!(
        m.emit(&mut Packet::new_unchecked(&mut small[..])),
        Err(Error::BufferTooSmall { .. })
    ));
}

#[test]
fn tag_input_zeroes_only_the_tag() {
    let b = all()[0].to_bytes().unwrap();
    let t = tag_input(&b).unwrap();
    assert_eq!(t.len(), b.len());
    let diff: Vec<usize> = (0..b.len()).filter(|i| b[*i] != t[*i]).collect();
    assert_eq!(diff.len(), TAG_LEN);
    assert!(tag_input(&all()[6].to_bytes().unwrap()).is_none());
}
