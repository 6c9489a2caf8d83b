//! Node-channel tests on loopback (`[::1]` only): real sockets, real
//! handshakes, and a hostile peer that writes raw octets.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::crypto::{GroupSecret, KeyHierarchy, NodeChannelPsk};

const WAIT: Duration = Duration::from_secs(10);

fn psk(fill: u8) -> NodeChannelPsk {
    KeyHierarchy::new(&GroupSecret::new(&[fill; 32]).unwrap()).node_channel_psk()
}

/// Binds one loopback listener per name and returns the member list.
async fn lab(names: &[&str]) -> (Members, Vec<TcpListener>) {
    let mut list = Vec::new();
    let mut listeners = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let l = TcpListener::bind("[::1]:0").await.unwrap();
        list.push(GroupMember {
            info: MemberInfo {
                name: (*name).to_string(),
                coa: format!("2001:db8::{}", i + 1).parse().unwrap(),
                roles: Roles {
                    acceptor: true,
                    contact: i == 0,
                    backup: false,
                },
            },
            channel: l.local_addr().unwrap(),
        });
        listeners.push(l);
    }
    (Members::new(list).unwrap(), listeners)
}

fn cfg(members: &Members, me: &str, key: &NodeChannelPsk) -> ChannelConfig {
    let info = members.by_name(me).unwrap().info.clone();
    ChannelConfig::new(info, members.clone(), key.clone())
}

async fn next(rx: &mut mpsc::Receiver<GroupEvent>) -> GroupEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no group event in time")
        .expect("event channel closed")
}

async fn expect_up(rx: &mut mpsc::Receiver<GroupEvent>, peer: &str) {
    match next(rx).await {
        GroupEvent::Up(info) => assert_eq!(info.name, peer),
        other => panic!("expected Up({peer}), got {other:?}"),
    }
}

#[tokio::test]
async fn messages_round_trip_between_members() {
    let (members, mut ls) = lab(&["a", "b", "c"]).await;
    let key = psk(1);
    let mut groups = Vec::new();
    let mut rxs = Vec::new();
    for name in ["c", "b", "a"] {
        let l = ls.pop().unwrap();
        let (g, rx) =
            Group::start_with_listener(GroupConfig::new(cfg(&members, name, &key)), l).unwrap();
        groups.push(g);
        rxs.push(rx);
    }
    let (c, b, a) = (&groups[0], &groups[1], &groups[2]);
    let (rc, rb, ra) = match &mut rxs[..] {
        [rc, rb, ra] => (rc, rb, ra),
        _ => unreachable!(),
    };
    // Everyone reaches everyone; each sees two peers come up.
    for (rx, peers) in [
        (&mut *ra, ["b", "c"]),
        (&mut *rb, ["a", "c"]),
        (&mut *rc, ["a", "b"]),
    ] {
        let mut seen = Vec::new();
        for _ in 0..2 {
            match next(rx).await {
                GroupEvent::Up(i) => seen.push(i.name),
                other => panic!("{other:?}"),
            }
        }
        seen.sort();
        assert_eq!(seen, peers);
    }
    assert_eq!(a.connected_peers(), ["b", "c"]);

    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    a.send("b", b"hello b".to_vec()).await.unwrap();
    a.send("c", big.clone()).await.unwrap();
    c.send("a", Vec::new()).await.unwrap();
    b.send("a", b"hello a".to_vec()).await.unwrap();
    let msg = |from: &str, m: &[u8]| GroupEvent::Message {
        from: from.into(),
        msg: m.to_vec(),
    };
    assert_eq!(next(rb).await, msg("a", b"hello b"));
    assert_eq!(next(rc).await, msg("a", &big));
    let mut at_a = vec![next(ra).await, next(ra).await];
    at_a.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(at_a, vec![msg("b", b"hello a"), msg("c", b"")]);

    let s = a.stats("c").unwrap();
    assert!(s.connected);
    assert_eq!((s.messages_sent, s.bytes_sent), (1, big.len() as u64));
    assert_eq!((s.messages_received, s.bytes_received), (1, 0));
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(
        a.send("zed", vec![]).await,
        Err(SendError::UnknownPeer("zed".into()))
    );
    let limit = ChannelLimits::default().max_message;
    assert!(matches!(
        a.send("b", vec![0; limit + 1]).await,
        Err(SendError::TooLong { .. })
    ));
}

#[tokio::test]
async fn wrong_group_secret_fails_the_handshake() {
    let (members, mut ls) = lab(&["a", "b"]).await;
    let lb = ls.pop().unwrap();
    let (good, bad) = (psk(1), psk(2));
    let cb = cfg(&members, "b", &good);
    let server = tokio::spawn(async move {
        let (s, _) = lb.accept().await.unwrap();
        Channel::accept(s, &cb).await
    });
    let err = Channel::connect(&cfg(&members, "a", &bad), members.by_name("b").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, ChannelError::HandshakeRejected), "{err:?}");
    let err = server.await.unwrap().unwrap_err();
    assert!(matches!(err, ChannelError::HandshakeAuth), "{err:?}");

    // The same through the group: counted on both sides, never connected.
    let (members, mut ls) = lab(&["a", "b"]).await;
    let (gb, _rb) = Group::start_with_listener(
        GroupConfig::new(cfg(&members, "b", &good)),
        ls.pop().unwrap(),
    )
    .unwrap();
    let (ga, _ra) = Group::start_with_listener(
        GroupConfig::new(cfg(&members, "a", &bad)),
        ls.pop().unwrap(),
    )
    .unwrap();
    tokio::time::timeout(WAIT, async {
        while ga.stats("b").unwrap().connect_failures < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert!(!ga.is_connected("b") && !gb.is_connected("a"));
    assert!(ga.stats("b").unwrap().errors["handshake_rejected"] >= 2);
    assert!(gb.rejected()["handshake_auth"] >= 2);
    assert_eq!(gb.stats("a").unwrap().connects, 0);
}

#[tokio::test]
async fn silent_connections_are_bounded_and_time_out() {
    let (members, mut ls) = lab(&["a", "b"]).await;
    let mut c = GroupConfig::new(cfg(&members, "b", &psk(3)));
    c.max_pending_handshakes = 2;
    c.channel.handshake_timeout = Duration::from_millis(200);
    let (gb, _rb) = Group::start_with_listener(c, ls.pop().unwrap()).unwrap();
    // Three connections that never speak: one over the limit is closed at
    // once, the other two time out.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(gb.local_addr()).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(WAIT, async {
        while gb.rejected().get("handshake_timeout") != Some(&2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(gb.rejected().get("handshake_limit"), Some(&1));
}

/// Group `b` and a hostile `a` holding the real key, connected; returns
/// b's group, its events (after `Up`) and a's raw channel.
async fn hostile_pair() -> (Group, mpsc::Receiver<GroupEvent>, Channel) {
    let (members, mut ls) = lab(&["a", "b"]).await;
    let key = psk(7);
    let (gb, mut rb) = Group::start_with_listener(
        GroupConfig::new(cfg(&members, "b", &key)),
        ls.pop().unwrap(),
    )
    .unwrap();
    let ch = Channel::connect(&cfg(&members, "a", &key), members.by_name("b").unwrap())
        .await
        .unwrap();
    expect_up(&mut rb, "a").await;
    (gb, rb, ch)
}

/// b reported `a` down for `reason`, counted it, and closed the socket.
async fn assert_dropped(
    gb: &Group,
    rb: &mut mpsc::Receiver<GroupEvent>,
    ch: Channel,
    reason: &str,
) {
    match next(rb).await {
        GroupEvent::Down { peer, reason: r } => assert_eq!((peer.as_str(), r), ("a", reason)),
        other => panic!("expected Down, got {other:?}"),
    }
    let s = gb.stats("a").unwrap();
    assert_eq!(s.errors.get(reason), Some(&1), "{:?}", s.errors);
    assert_eq!((s.disconnects, s.connected), (1, false));
    let (_, mut rd, _) = ch.split();
    let r = tokio::time::timeout(WAIT, rd.recv()).await.unwrap();
    assert!(
        matches!(r, Err(ChannelError::Closed | ChannelError::Io(_))),
        "{r:?}"
    );
}

#[tokio::test]
async fn tampered_frame_is_dropped_and_closes() {
    let (gb, mut rb, ch) = hostile_pair().await;
    let (info, rd, mut wr) = ch.split();
    let mut frame = wr.seal_only(b"pay 100").unwrap();
    let last = frame.len() - 1;
    frame[last] ^= 0x40;
    wr.send_raw(&frame).await.unwrap();
    let ch = rejoin(info, rd, wr);
    assert_dropped(&gb, &mut rb, ch, "decrypt").await;
    assert_eq!(gb.stats("a").unwrap().messages_received, 0);
}

#[tokio::test]
async fn replayed_frame_is_dropped_and_closes() {
    let (gb, mut rb, ch) = hostile_pair().await;
    let (info, rd, mut wr) = ch.split();
    let frame = wr.seal_only(b"move client 1").unwrap();
    wr.send_raw(&frame).await.unwrap();
    assert_eq!(
        next(&mut rb).await,
        GroupEvent::Message {
            from: "a".into(),
            msg: b"move client 1".to_vec()
        }
    );
    // The captured ciphertext, sent again.
    wr.send_raw(&frame).await.unwrap();
    let ch = rejoin(info, rd, wr);
    assert_dropped(&gb, &mut rb, ch, "decrypt").await;
    assert_eq!(gb.stats("a").unwrap().messages_received, 1);
}

#[tokio::test]
async fn oversized_length_is_rejected_before_allocation() {
    let (gb, mut rb, ch) = hostile_pair().await;
    let (info, rd, mut wr) = ch.split();
    // 4 GiB announced, nothing behind it: b must not wait for or allocate it.
    wr.send_raw(&u32::MAX.to_be_bytes()).await.unwrap();
    let ch = rejoin(info, rd, wr);
    assert_dropped(&gb, &mut rb, ch, "frame_too_long").await;
}

#[tokio::test]
async fn truncated_frame_then_eof_is_closed() {
    let (gb, mut rb, ch) = hostile_pair().await;
    let (info, rd, mut wr) = ch.split();
    let frame = wr.seal_only(b"half").unwrap();
    wr.send_raw(&frame[..frame.len() / 2]).await.unwrap();
    drop(rejoin(info, rd, wr));
    match next(&mut rb).await {
        GroupEvent::Down { reason, .. } => assert_eq!(reason, "closed"),
        other => panic!("{other:?}"),
    }
    assert_eq!(gb.stats("a").unwrap().messages_received, 0);
}

fn rejoin(peer: MemberInfo, rd: ChannelReader, wr: ChannelWriter) -> Channel {
    Channel::from_parts(peer, rd, wr)
}

#[tokio::test]
async fn reconnects_after_peer_restart() {
    let (members, mut ls) = lab(&["a", "b"]).await;
    let key = psk(9);
    let lb = ls.pop().unwrap();
    let b_addr = lb.local_addr().unwrap();
    let (gb, mut rb) =
        Group::start_with_listener(GroupConfig::new(cfg(&members, "b", &key)), lb).unwrap();
    let (ga, mut ra) = Group::start_with_listener(
        GroupConfig::new(cfg(&members, "a", &key)),
        ls.pop().unwrap(),
    )
    .unwrap();
    expect_up(&mut ra, "b").await;
    expect_up(&mut rb, "a").await;

    // b goes away: a notices and keeps redialing.
    drop((gb, rb));
    match next(&mut ra).await {
        GroupEvent::Down { peer, .. } => assert_eq!(peer, "b"),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // b restarts on the same address.
    let lb = TcpListener::bind(b_addr).await.unwrap();
    let (gb, mut rb) =
        Group::start_with_listener(GroupConfig::new(cfg(&members, "b", &key)), lb).unwrap();
    expect_up(&mut ra, "b").await;
    expect_up(&mut rb, "a").await;
    ga.send("b", b"after restart".to_vec()).await.unwrap();
    assert_eq!(
        next(&mut rb).await,
        GroupEvent::Message {
            from: "a".into(),
            msg: b"after restart".to_vec()
        }
    );
    gb.send("a", b"reply".to_vec()).await.unwrap();
    assert_eq!(
        next(&mut ra).await,
        GroupEvent::Message {
            from: "b".into(),
            msg: b"reply".to_vec()
        }
    );
    let s = ga.stats("b").unwrap();
    assert_eq!((s.connects, s.disconnects), (2, 1));
}
