//! Property tests: hostile inputs never panic and are accepted only when
//! they are exactly right.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::crypto::{
    BindingAuthInput, DeterministicRandom, NonceConfig, NonceIndex, NonceTable, NtpTimestamp,
    ReplayConfig, ReplayGuard, TokenKind, bu_authenticator, ct_eq, kbm,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn ct_eq_is_equality(a in proptest::collection::vec(any::<u8>(), 0..40),
                         b in proptest::collection::vec(any::<u8>(), 0..40)) {
        prop_assert_eq!(ct_eq(&a, &b), a == b);
        prop_assert!(ct_eq(&a, &a.clone()));
    }

    #[test]
    fn arbitrary_binding_updates_never_panic_and_never_verify(
        auth in proptest::collection::vec(any::<u8>(), 0..32),
        mh in proptest::collection::vec(any::<u8>(), 0..200),
        hi in any::<u16>(),
        ci in proptest::option::of(any::<u16>()),
        secs in 0u64..1000,
    ) {
        let t0 = Instant::now();
        let mut table = NonceTable::new(
            NonceConfig::default(),
            Box::new(DeterministicRandom::new(5)),
            t0,
        ).unwrap();
        let hoa = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
        let coa = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
        let cn = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
        let now = t0 + Duration::from_secs(secs);
        table.handle_timeout(now).unwrap();
        let input = BindingAuthInput {
            hoa, coa, correspondent: cn,
            home_nonce_index: NonceIndex(hi),
            care_of_nonce_index: ci.map(NonceIndex),
            mh_data: &mh,
            authenticator: &auth,
        };
        let r = mip6_anycast::crypto::verify_binding_update(&table, &input, now);
        // A random 0..32-byte string is the right tag with negligible
        // probability; compute the right one and compare.
        let right = (|| {
            let h = table.token(NonceIndex(hi), hoa, TokenKind::Home, now).ok()?;
            let c = match ci {
                Some(i) => Some(table.token(NonceIndex(i), coa, TokenKind::CareOf, now).ok()?),
                None => None,
            };
            Some(bu_authenticator(&kbm(&h, c.as_ref()), coa, cn, &mh))
        })();
        let expect_ok = right.is_some_and(|a| a.as_bytes()[..] == auth[..]);
        prop_assert_eq!(r.is_ok(), expect_ok);
    }

    #[test]
    fn ntp_round_trip_within_a_nanosecond(secs in 0u64..(1u64 << 32) - 2_208_988_800, nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        let back = NtpTimestamp::from_unix(d).to_unix();
        prop_assert!(back <= d && d - back <= Duration::from_nanos(1));
    }

    #[test]
    fn replay_guard_never_panics_and_never_accepts_twice(received in any::<u64>(), now in any::<u64>(), w in 0u64..1_000_000) {
        let mut g = ReplayGuard::new(ReplayConfig { window: Duration::from_millis(w), max_bindings: 4 });
        let (r, n) = (NtpTimestamp(received), NtpTimestamp(now));
        if g.accept(1u8, r, n).is_ok() {
            prop_assert!(g.accept(1u8, r, n).is_err());
        }
    }
}
