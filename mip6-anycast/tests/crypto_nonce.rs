//! The correspondent's nonce table (RFC 6275 5.2.7) driven by a simulated
//! clock and deterministic randomness.

mod crypto_common;

use std::time::{Duration, Instant};

use crypto_common::addr;
use mip6_anycast::crypto::{
    DeterministicRandom, Kcn, MAX_NONCE_LIFETIME, MAX_RR_BINDING_LIFETIME, MAX_TOKEN_LIFETIME,
    NonceConfig, NonceError, NonceIndex, NonceTable, RandomError, TokenKind, home_keygen_token,
};

const SEC: Duration = Duration::from_secs(1);

fn table(interval: Duration, kcn_lifetime: Option<Duration>, t0: Instant) -> NonceTable {
    NonceTable::new(
        NonceConfig {
            nonce_interval: interval,
            kcn_lifetime,
        },
        Box::new(DeterministicRandom::new(42)),
        t0,
    )
    .unwrap()
}

#[test]
fn rfc_constants() {
    assert_eq!(MAX_NONCE_LIFETIME, 240 * SEC);
    assert_eq!(MAX_TOKEN_LIFETIME, 210 * SEC);
    assert_eq!(MAX_RR_BINDING_LIFETIME, 420 * SEC);
}

#[test]
fn nonce_expires_at_exactly_240_seconds() {
    let t0 = Instant::now();
    let mut t = table(30 * SEC, None, t0);
    let first = t.current(t0).unwrap().index();
    assert_eq!(first, NonceIndex(0));
    let just_before = t0 + MAX_NONCE_LIFETIME - Duration::from_nanos(1);
    assert!(t.lookup(first, just_before).is_ok());
    match t.lookup(first, t0 + MAX_NONCE_LIFETIME) {
        Err(NonceError::Expired { index, age }) => {
            assert_eq!(index, first);
            assert_eq!(age, MAX_NONCE_LIFETIME);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    // Rotation at/after expiry drops it from the table entirely.
    t.handle_timeout(t0 + MAX_NONCE_LIFETIME).unwrap();
    assert_eq!(
        t.lookup(first, t0 + MAX_NONCE_LIFETIME).unwrap_err(),
        NonceError::UnknownIndex(first)
    );
}

#[test]
fn new_nonce_every_interval_and_token_lifetime_guaranteed() {
    let t0 = Instant::now();
    let mut t = table(30 * SEC, None, t0);
    // Early calls keep the same nonce.
    assert_eq!(t.current(t0 + 29 * SEC).unwrap().index(), NonceIndex(0));
    assert_eq!(t.poll_timeout(), t0 + 30 * SEC);
    // At the interval a new one appears.
    let e = t.current(t0 + 30 * SEC).unwrap();
    assert_eq!(e.index(), NonceIndex(1));
    assert_ne!(
        e.nonce(),
        t.lookup(NonceIndex(0), t0 + 30 * SEC).unwrap().nonce()
    );
    // A token issued at the very end of a nonce's issuing period still
    // verifies MAX_TOKEN_LIFETIME later (RFC 6275 5.2.7).
    let hoa = addr("2001:db8:1::1");
    let issued_at = t0 + 59 * SEC + Duration::from_millis(999);
    let (idx, token) = t.issue_token(hoa, TokenKind::Home, issued_at).unwrap();
    assert_eq!(idx, NonceIndex(1));
    let later = issued_at + MAX_TOKEN_LIFETIME;
    t.handle_timeout(later).unwrap();
    assert_eq!(t.token(idx, hoa, TokenKind::Home, later).unwrap(), token);
}

#[test]
fn unknown_indices_are_typed_errors() {
    let t0 = Instant::now();
    let t = table(30 * SEC, None, t0);
    for i in [1u16, 2, 100, u16::MAX] {
        assert_eq!(
            t.lookup(NonceIndex(i), t0).unwrap_err(),
            NonceError::UnknownIndex(NonceIndex(i))
        );
    }
}

#[test]
fn index_wraps_around_and_old_indices_do_not_alias() {
    let t0 = Instant::now();
    let mut t = table(SEC, None, t0);
    let hoa = addr("2001:db8::7");
    let mut now = t0;
    let mut token_at_65535 = None;
    for step in 1..=65_537u32 {
        now = t0 + SEC * step;
        let e = t.current(now).unwrap();
        // Truncation intended: the index is the step modulo 2^16.
        assert_eq!(e.index(), NonceIndex(step as u16));
        if step == 65_535 {
            token_at_65535 = Some(e.token(hoa, TokenKind::Home));
        }
        // Memory stays bounded by the live nonces: 240 s / 1 s + 1.
        assert!(t.live_nonces() <= 241, "{} live nonces", t.live_nonces());
    }
    assert_eq!(t.current(now).unwrap().index(), NonceIndex(1));
    // 65535 and 0 are still live after the wrap and resolve to the right nonce.
    let at = t
        .token(NonceIndex(65_535), hoa, TokenKind::Home, now)
        .unwrap();
    assert_eq!(Some(at), token_at_65535);
    assert!(t.lookup(NonceIndex(0), now).is_ok());
    // Index 2 was last issued 65535 s ago; it must not resolve to anything.
    assert_eq!(
        t.lookup(NonceIndex(2), now).unwrap_err(),
        NonceError::UnknownIndex(NonceIndex(2))
    );
    // Neither may an index last issued 241 s ago.
    let stale = NonceIndex(1u16.wrapping_sub(241));
    assert!(t.lookup(stale, now).is_err());
}

#[test]
fn kcn_rotation_keeps_tokens_issued_before_it_valid() {
    let t0 = Instant::now();
    let mut t = table(30 * SEC, None, t0);
    let hoa = addr("2001:db8::10");
    let (old_idx, old_token) = t.issue_token(hoa, TokenKind::Home, t0 + 5 * SEC).unwrap();
    let old_kcn = t.lookup(old_idx, t0).unwrap().kcn().clone();
    assert_eq!(t.kcn_generation(), 0);

    t.rotate_kcn(t0 + 6 * SEC).unwrap();
    assert_eq!(t.kcn_generation(), 1);
    let fresh = t.current(t0 + 6 * SEC).unwrap();
    assert_ne!(fresh.index(), old_idx);
    assert_eq!(fresh.kcn_generation(), 1);
    assert_ne!(fresh.kcn(), &old_kcn);

    // The token issued under the old Kcn still verifies via its index...
    assert_eq!(
        t.token(old_idx, hoa, TokenKind::Home, t0 + 100 * SEC)
            .unwrap(),
        old_token
    );
    // ...and matches an independent computation with the old Kcn.
    let old_nonce = t.lookup(old_idx, t0).unwrap().nonce().clone();
    assert_eq!(home_keygen_token(&old_kcn, hoa, &old_nonce), old_token);
    // ...until the nonce expires.
    assert!(
        t.token(old_idx, hoa, TokenKind::Home, t0 + MAX_NONCE_LIFETIME)
            .is_err()
    );
}

#[test]
fn automatic_kcn_rotation_on_lifetime() {
    let t0 = Instant::now();
    let mut t = table(30 * SEC, Some(90 * SEC), t0);
    let mut gens = Vec::new();
    for k in 0..8u32 {
        gens.push(t.current(t0 + 30 * SEC * k).unwrap().kcn_generation());
    }
    assert_eq!(gens, vec![0, 0, 0, 1, 1, 1, 2, 2]);
}

#[test]
fn with_kcn_uses_given_key() {
    let t0 = Instant::now();
    let kcn = Kcn::from_bytes([0x42; 20]);
    let mut t = NonceTable::with_kcn(
        NonceConfig::default(),
        Box::new(DeterministicRandom::new(1)),
        kcn.clone(),
        t0,
    )
    .unwrap();
    assert_eq!(t.current(t0).unwrap().kcn(), &kcn);
}

#[test]
fn interval_bounds_enforced() {
    let t0 = Instant::now();
    for bad in [Duration::ZERO, Duration::from_millis(999), 31 * SEC] {
        let r = NonceTable::new(
            NonceConfig {
                nonce_interval: bad,
                kcn_lifetime: None,
            },
            Box::new(DeterministicRandom::new(1)),
            t0,
        );
        assert_eq!(r.unwrap_err(), NonceError::InvalidInterval(bad));
    }
}

#[test]
fn randomness_failure_is_a_typed_error_and_recoverable() {
    let t0 = Instant::now();
    // A source that fails once after the constructor's draws.
    let mut calls = 0u32;
    let src = move |d: &mut [u8]| {
        calls += 1;
        if calls == 3 {
            return Err(RandomError);
        }
        d.fill(calls as u8);
        Ok(())
    };
    let mut t = NonceTable::new(
        NonceConfig {
            nonce_interval: 30 * SEC,
            kcn_lifetime: None,
        },
        Box::new(src),
        t0,
    )
    .unwrap();
    assert_eq!(
        t.current(t0 + 30 * SEC).unwrap_err(),
        NonceError::Random(RandomError)
    );
    // The old nonce is still usable for verification, and the next try works.
    assert!(t.lookup(NonceIndex(0), t0 + 30 * SEC).is_ok());
    assert_eq!(t.current(t0 + 31 * SEC).unwrap().index(), NonceIndex(1));
}

#[test]
fn debug_output_has_no_key_material() {
    let t0 = Instant::now();
    let kcn = Kcn::from_bytes([0x5a; 20]);
    let mut t = NonceTable::with_kcn(
        NonceConfig::default(),
        Box::new(DeterministicRandom::new(1)),
        kcn,
        t0,
    )
    .unwrap();
    let s = format!("{t:?} {:?}", t.current(t0).unwrap());
    // The key is 20 bytes of 0x5a; look for runs of it (hex or decimal), not
    // single digits that an `Instant` in the output can contain by chance.
    assert!(
        !s.to_lowercase().contains("5a5a") && !s.contains("90, 90"),
        "{s}"
    );
}
