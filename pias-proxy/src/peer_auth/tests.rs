use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const WALL: u64 = 1_700_000_000_000;

fn a(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, i)
}

fn key(b: u8) -> PeerKey {
    PeerKey::new(&[b; 32]).unwrap()
}

fn cfg(t0: Instant, k: PeerKey, session: u64) -> PeerAuthConfig {
    PeerAuthConfig::new(k, session, WallClock::from_unix_ms(t0, WALL))
}

fn pair(t0: Instant) -> (PeerAuth, PeerAuth) {
    (
        PeerAuth::new(&cfg(t0, key(7), 11), Purpose::Peer, a(1)),
        PeerAuth::new(&cfg(t0, key(7), 22), Purpose::Peer, a(2)),
    )
}

#[test]
fn round_trip_hides_the_plaintext() {
    let t0 = Instant::now();
    let (mut s, mut r) = pair(t0);
    let msg = b"group credential 0123456789";
    let d = s.seal(t0, msg).unwrap();
    assert_eq!(d.len(), msg.len() + OVERHEAD);
    assert!(!d.windows(10).any(|w| w == &msg[..10]), "ciphertext");
    let v = Sealed::new_checked(&d[..]).unwrap();
    let h = SealedRepr::parse(&v).unwrap();
    assert_eq!(
        (h.purpose, h.sender, h.session, h.counter, h.stamp_ms),
        (Purpose::Peer, a(1), 11, 1, WALL)
    );
    assert_eq!(r.open(t0, a(1), &d).unwrap(), msg);
    assert_eq!(r.senders(), 1);
    // Empty plaintext works too.
    let e = s.seal(t0, b"").unwrap();
    assert_eq!(r.open(t0, a(1), &e).unwrap(), b"");
}

#[test]
fn forged_tag_and_every_bit_flip_are_refused() {
    let t0 = Instant::now();
    let (mut s, mut r) = pair(t0);
    let d = s.seal(t0, b"jap update").unwrap();
    for bit in 0..d.len() * 8 {
        let mut b = d.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let e = r.open(t0, a(1), &b).unwrap_err();
        if bit >= HEADER_LEN * 8 {
            assert_eq!(e, OpenError::Forged, "bit {bit}");
        }
    }
    assert_eq!(r.senders(), 0, "no state from forgeries");
    assert!(r.open(t0, a(1), &d).is_ok(), "the original still opens");
}

#[test]
fn wrong_key_and_wrong_purpose_are_refused() {
    let t0 = Instant::now();
    let mut other = PeerAuth::new(&cfg(t0, key(8), 33), Purpose::Peer, a(3));
    let mut swim = PeerAuth::new(&cfg(t0, key(7), 44), Purpose::Swim, a(3));
    let (_, mut r) = pair(t0);
    let d = other.seal(t0, b"hello").unwrap();
    assert_eq!(r.open(t0, a(3), &d), Err(OpenError::Forged));
    let d = swim.seal(t0, b"hello").unwrap();
    assert_eq!(r.open(t0, a(3), &d), Err(OpenError::WrongPurpose(2)));
    // Same key, purpose field rewritten: the purpose keys differ.
    let mut d = d;
    d[1] = Purpose::Peer.to_u8();
    assert_eq!(r.open(t0, a(3), &d), Err(OpenError::Forged));
}

#[test]
fn truncated_datagrams_are_refused() {
    let t0 = Instant::now();
    let (mut s, mut r) = pair(t0);
    let d = s.seal(t0, b"flow query").unwrap();
    for n in 0..d.len() {
        let e = r.open(t0, a(1), &d[..n]).unwrap_err();
        if n < OVERHEAD {
            assert_eq!(e, OpenError::Truncated(n));
        } else {
            assert_eq!(e, OpenError::Forged);
        }
    }
}

#[test]
fn replay_is_dropped_and_reordering_within_the_window_accepted() {
    let t0 = Instant::now();
    let (mut s, mut r) = pair(t0);
    let ds: Vec<Vec<u8>> = (0..100u8).map(|i| s.seal(t0, &[i]).unwrap()).collect();
    assert!(r.open(t0, a(1), &ds[0]).is_ok());
    assert_eq!(r.open(t0, a(1), &ds[0]), Err(OpenError::Replay(1)));
    // Counter 70 arrives, then 69 .. 7 (within 64 behind), then 6 (too old).
    assert!(r.open(t0, a(1), &ds[69]).is_ok());
    for i in (6..69).rev() {
        assert_eq!(r.open(t0, a(1), &ds[i]).unwrap(), [i as u8], "{i}");
    }
    assert_eq!(r.open(t0, a(1), &ds[5]), Err(OpenError::Replay(6)));
    for (i, d) in ds.iter().enumerate().take(70).skip(6) {
        assert!(
            matches!(r.open(t0, a(1), d), Err(OpenError::Replay(_))),
            "{i}"
        );
    }
    assert!(r.open(t0, a(1), &ds[99]).is_ok());
    assert_eq!(r.opened, 66);
}

#[test]
fn sender_must_be_the_udp_source_and_not_me() {
    let t0 = Instant::now();
    let (mut s, mut r) = pair(t0);
    let d = s.seal(t0, b"x").unwrap();
    assert_eq!(
        r.open(t0, a(9), &d),
        Err(OpenError::SenderMismatch {
            sender: a(1),
            src: a(9)
        })
    );
    // Rewriting the sender to match the source breaks the tag (AAD).
    let mut b = d.clone();
    b[4..20].copy_from_slice(&a(9).octets());
    assert_eq!(r.open(t0, a(9), &b), Err(OpenError::Forged));
    // A datagram claiming to come from the receiver itself.
    let mut me_too = PeerAuth::new(&cfg(t0, key(7), 99), Purpose::Peer, a(2));
    let d = me_too.seal(t0, b"x").unwrap();
    assert_eq!(r.open(t0, a(2), &d), Err(OpenError::FromSelf));
}

#[test]
fn stale_stamps_and_stamps_before_the_receiver_started_are_refused() {
    let t0 = Instant::now();
    let (mut s, mut r) = pair(t0);
    let d = s.seal(t0, b"x").unwrap();
    let late = t0 + Duration::from_secs(6);
    assert!(matches!(
        r.open(late, a(1), &d),
        Err(OpenError::Stale { .. })
    ));
    // The receiver restarts 1 s later: it has no windows, but what was
    // sealed before it came up is refused.
    let t1 = t0 + Duration::from_secs(1);
    let mut r2 = PeerAuth::new(
        &PeerAuthConfig::new(key(7), 23, WallClock::from_unix_ms(t1, WALL + 1000)),
        Purpose::Peer,
        a(2),
    );
    assert!(matches!(
        r2.open(t1, a(1), &d),
        Err(OpenError::Stale { .. })
    ));
    let fresh = s.seal(t1, b"y").unwrap();
    assert_eq!(r2.open(t1, a(1), &fresh).unwrap(), b"y");
}

#[test]
fn another_proxys_restart_is_a_new_session() {
    let t0 = Instant::now();
    let (mut s, mut r) = pair(t0);
    let old = s.seal(t0, b"before").unwrap();
    let old_unseen = s.seal(t0, b"in flight").unwrap();
    assert!(r.open(t0, a(1), &old).is_ok());
    // Sender restarts: new random session, counter from 1 again.
    let t1 = t0 + Duration::from_millis(500);
    let mut s2 = PeerAuth::new(&cfg(t0, key(7), 12), Purpose::Peer, a(1));
    let new = s2.seal(t1, b"after").unwrap();
    assert_eq!(r.open(t1, a(1), &new).unwrap(), b"after");
    assert_eq!(r.open(t1, a(1), &new), Err(OpenError::Replay(1)));
    // The old session's datagrams: a replay is refused, one never
    // received (delayed) is accepted once.
    assert_eq!(r.open(t1, a(1), &old), Err(OpenError::Replay(1)));
    assert_eq!(r.open(t1, a(1), &old_unseen).unwrap(), b"in flight");
    // Four more restarts evict the oldest sessions; their datagrams are
    // refused by the sender's floor, not accepted as new.
    for i in 0..4u64 {
        let t = t1 + Duration::from_millis(100 * (i + 1));
        let mut si = PeerAuth::new(&cfg(t0, key(7), 100 + i), Purpose::Peer, a(1));
        let d = si.seal(t, b"z").unwrap();
        assert!(r.open(t, a(1), &d).is_ok());
    }
    let t = t1 + Duration::from_secs(1);
    assert_eq!(r.open(t, a(1), &old), Err(OpenError::OldSession(a(1))));
    assert_eq!(r.senders(), 1);
}

#[test]
fn sender_state_is_bounded() {
    let t0 = Instant::now();
    let mut c = cfg(t0, key(7), 1);
    c.replay.max_senders = 3;
    let mut r = PeerAuth::new(&c, Purpose::Swim, a(100));
    for i in 1..=10u16 {
        let t = t0 + Duration::from_millis(u64::from(i));
        let mut s = PeerAuth::new(&cfg(t0, key(7), u64::from(i)), Purpose::Swim, a(i));
        let d = s.seal(t, b"ping").unwrap();
        assert!(r.open(t, a(i), &d).is_ok(), "{i}");
        assert!(r.senders() <= 3);
    }
}

#[test]
fn keys_need_sixteen_bytes_and_hex() {
    assert_eq!(PeerKey::new(&[1; 15]), Err(KeyError::Length(15)));
    assert!(PeerKey::new(&[1; 16]).is_ok());
    assert_eq!(PeerKey::new(&[1; 65]), Err(KeyError::Length(65)));
    assert_eq!(PeerKey::from_hex("abc"), Err(KeyError::Hex));
    assert_eq!(
        PeerKey::from_hex("zz".repeat(16).as_str()),
        Err(KeyError::Hex)
    );
    assert_eq!(PeerKey::from_hex("€€"), Err(KeyError::Hex));
    assert_eq!(
        PeerKey::from_hex(&"0f".repeat(16)).unwrap(),
        PeerKey::new(&[15; 16]).unwrap()
    );
    assert!(!format!("{:?}", key(0x41)).contains("41"));
}

proptest! {
    #[test]
    fn open_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        src in any::<u128>(),
        offset_ms in 0u64..20_000,
    ) {
        let t0 = Instant::now();
        let (_, mut r) = pair(t0);
        let src = Ipv6Addr::from(src);
        prop_assert!(r.open(t0 + Duration::from_millis(offset_ms), src, &bytes).is_err());
        // With a well-formed header from the source, still only errors.
        let mut b = bytes.clone();
        if b.len() >= OVERHEAD {
            b[0] = VERSION;
            b[1] = Purpose::Peer.to_u8();
            b[4..20].copy_from_slice(&src.octets());
            b[36..44].copy_from_slice(&WALL.to_be_bytes());
        }
        prop_assert!(r.open(t0, src, &b).is_err());
        prop_assert_eq!(r.senders(), 0);
    }

    #[test]
    fn any_change_to_a_sealed_datagram_is_refused(
        msg in proptest::collection::vec(any::<u8>(), 0..100),
        at in any::<usize>(),
        x in 1u8..=255,
    ) {
        let t0 = Instant::now();
        let (mut s, mut r) = pair(t0);
        let mut d = s.seal(t0, &msg).unwrap();
        let i = at % d.len();
        d[i] ^= x;
        prop_assert!(r.open(t0, a(1), &d).is_err());
    }
}
