//! Home registration authentication (RFC 4285): MN-HA authentication option,
//! SPI key store, NTP timestamps and replay protection.

mod crypto_common;

use std::net::Ipv6Addr;
use std::time::Duration;

use crypto_common::{addr, hex};
use mip6_anycast::crypto::{
    AuthError, MnHaError, MnHaKey, MnHaKeyStore, NTP_UNIX_OFFSET_SECS, NtpTimestamp, ReplayConfig,
    ReplayError, ReplayGuard, Spi, hmac_sha1, mn_ha_authenticator, verify_mn_ha,
};

fn parties() -> (Ipv6Addr, Ipv6Addr, Vec<u8>) {
    // A BU's MH data up to and including the SPI of the auth option.
    let mh = hex(
        "3b05050000001234000000601001000000000000000000000000000000000000000000001006010000012c",
    );
    (addr("2001:db8:f00::9"), addr("2001:db8:a::1"), mh)
}

#[test]
fn authenticator_is_truncated_hmac_over_coa_hoa_mh_data() {
    let (coa, hoa, mh) = parties();
    let key = MnHaKey::new(b"an mn-ha key of twenty").unwrap();
    let full = hmac_sha1(
        b"an mn-ha key of twenty",
        &[&coa.octets(), &hoa.octets(), &mh],
    );
    assert_eq!(
        mn_ha_authenticator(&key, coa, hoa, &mh).as_bytes()[..],
        full[..12]
    );
}

#[test]
fn key_store_verifies_and_rejects() {
    let (coa, hoa, mh) = parties();
    let mut store = MnHaKeyStore::new();
    let spi = Spi(0x1234);
    store
        .insert(spi, hoa, MnHaKey::new(&[7; 20]).unwrap())
        .unwrap();
    assert_eq!(
        store
            .insert(spi, hoa, MnHaKey::new(&[8; 20]).unwrap())
            .unwrap_err(),
        MnHaError::DuplicateSpi(spi)
    );
    let auth = store.sign(spi, coa, hoa, &mh).unwrap();
    assert!(store.verify(spi, coa, hoa, &mh, auth.as_bytes()).is_ok());

    // Forged tag: every bit.
    for bit in 0..96 {
        let mut f = *auth.as_bytes();
        f[bit / 8] ^= 1 << (bit % 8);
        let e = store.verify(spi, coa, hoa, &mh, &f).unwrap_err();
        assert_eq!(e, MnHaError::Auth(AuthError::Mismatch));
        assert_eq!(e.ba_status(), Some(146));
    }
    // Truncated tag.
    assert_eq!(
        store
            .verify(spi, coa, hoa, &mh, &auth.as_bytes()[..10])
            .unwrap_err(),
        MnHaError::Auth(AuthError::Length {
            expected: 12,
            got: 10
        })
    );
    // Unknown SPI, SPI of another home address.
    assert_eq!(
        store
            .verify(Spi(1), coa, hoa, &mh, auth.as_bytes())
            .unwrap_err(),
        MnHaError::UnknownSpi(Spi(1))
    );
    let other = addr("2001:db8:a::2");
    assert!(matches!(
        store.verify(spi, coa, other, &mh, auth.as_bytes()),
        Err(MnHaError::HoaMismatch { .. })
    ));
    // Another care-of address or changed MH data.
    assert!(store.verify(spi, other, hoa, &mh, auth.as_bytes()).is_err());
    let mut mh2 = mh.clone();
    mh2[6] ^= 1;
    assert!(
        verify_mn_ha(
            store.key_for(spi, hoa).unwrap(),
            coa,
            hoa,
            &mh2,
            auth.as_bytes()
        )
        .is_err()
    );
    assert!(store.remove(spi));
    assert!(store.is_empty());
}

#[test]
fn key_length_bounds() {
    assert_eq!(MnHaKey::new(&[]).unwrap_err(), MnHaError::KeyLength(0));
    assert!(MnHaKey::new(&[1; 128]).is_ok());
    assert_eq!(
        MnHaKey::new(&[1; 129]).unwrap_err(),
        MnHaError::KeyLength(129)
    );
    assert_eq!(
        format!("{:?}", MnHaKey::new(&[0x41; 20]).unwrap()),
        "MnHaKey(<redacted>)"
    );
}

#[test]
fn ntp_timestamp_conversions() {
    // Unix epoch = NTP 2208988800.
    assert_eq!(
        NtpTimestamp::from_unix(Duration::ZERO),
        NtpTimestamp::from_parts(2_208_988_800, 0)
    );
    // Half a second is fraction 2^31.
    let t = NtpTimestamp::from_unix(Duration::new(1_700_000_000, 500_000_000));
    assert_eq!(t.seconds(), 3_908_988_800);
    assert_eq!(t.fraction(), 1 << 31);
    assert_eq!(t.to_unix(), Duration::new(1_700_000_000, 500_000_000));
    assert_eq!(NtpTimestamp::from_bytes(t.to_bytes()), t);
    assert_eq!(t.to_bytes()[..4], 3_908_988_800u32.to_be_bytes());
    // Round trip loses at most a nanosecond to rounding down.
    for nanos in [1u32, 123_456_789, 999_999_999] {
        let d = Duration::new(1_234_567_890, nanos);
        let back = NtpTimestamp::from_unix(d).to_unix();
        assert!(d - back <= Duration::from_nanos(1), "{d:?} -> {back:?}");
    }
    // Era 1: 2036-02-07T06:28:16Z is NTP second 0 of era 1.
    let era1 = Duration::from_secs((1u64 << 32) - NTP_UNIX_OFFSET_SECS);
    assert_eq!(
        NtpTimestamp::from_unix(era1),
        NtpTimestamp::from_parts(0, 0)
    );
    assert_eq!(NtpTimestamp::from_parts(0, 0).to_unix(), era1);
    // Differences wrap across the era boundary.
    let before = NtpTimestamp::from_unix(era1 - Duration::from_secs(1));
    let after = NtpTimestamp::from_unix(era1 + Duration::from_secs(1));
    assert_eq!(after.offset_from(before), 2 << 32);
    assert_eq!(before.offset_from(after), -(2 << 32));
}

fn ts(secs: u64, millis: u32) -> NtpTimestamp {
    NtpTimestamp::from_unix(Duration::new(secs, millis * 1_000_000))
}

#[test]
fn replayed_timestamp_rejected() {
    let mut g = ReplayGuard::new(ReplayConfig::default());
    let hoa = addr("2001:db8:a::1");
    let now = ts(1_700_000_000, 0);
    let first = ts(1_700_000_000, 100);
    g.accept(hoa, first, now).unwrap();
    // Exactly the same timestamp again: replay.
    let e = g.accept(hoa, first, now).unwrap_err();
    assert_eq!(
        e,
        ReplayError::NotNewer {
            received: first,
            last_accepted: first
        }
    );
    assert_eq!(e.ba_status(), Some(144));
    // Older (reordered) also refused; `check` alone does not record.
    assert!(g.check(&hoa, ts(1_700_000_000, 50), now).is_err());
    let next = ts(1_700_000_000, 101);
    assert!(g.check(&hoa, next, now).is_ok());
    assert_eq!(g.last_accepted(&hoa), Some(first));
    g.accept(hoa, next, now).unwrap();
    assert_eq!(g.last_accepted(&hoa), Some(next));
    // Another binding has its own history.
    g.accept(addr("2001:db8:a::2"), first, now).unwrap();
    assert_eq!(g.len(), 2);
}

#[test]
fn out_of_window_timestamp_rejected() {
    let mut g = ReplayGuard::new(ReplayConfig {
        window: Duration::from_secs(7),
        max_bindings: 8,
    });
    let hoa = addr("2001:db8:a::1");
    let now = ts(1_700_000_000, 0);
    // Exactly at the window edges: accepted (the window is inclusive).
    assert!(g.check(&hoa, ts(1_700_000_007, 0), now).is_ok());
    assert!(g.check(&hoa, ts(1_699_999_993, 0), now).is_ok());
    // Just past either edge: refused with the skew.
    match g.accept(hoa, ts(1_700_000_007, 1), now) {
        Err(ReplayError::OutOfWindow {
            ahead: true, skew, ..
        }) => {
            assert!(
                skew > Duration::from_secs(7) && skew < Duration::from_millis(7002),
                "{skew:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let e = g.accept(hoa, ts(1_699_999_992, 999), now).unwrap_err();
    assert!(matches!(e, ReplayError::OutOfWindow { ahead: false, .. }));
    assert_eq!(e.ba_status(), Some(144));
    // Nothing was recorded by the refused attempts.
    assert!(g.is_empty());
    // A very old timestamp (a replay from yesterday) is out of the window.
    assert!(g.check(&hoa, ts(1_699_913_600, 0), now).is_err());
}

#[test]
fn replay_table_is_bounded() {
    let mut g = ReplayGuard::new(ReplayConfig {
        window: Duration::from_secs(7),
        max_bindings: 2,
    });
    let now = ts(1_700_000_000, 0);
    g.accept(1u32, now, now).unwrap();
    g.accept(2u32, now, now).unwrap();
    let e = g.accept(3u32, now, now).unwrap_err();
    assert_eq!(e, ReplayError::TableFull { capacity: 2 });
    assert_eq!(e.ba_status(), None);
    // Known bindings still work when full.
    g.accept(1u32, ts(1_700_000_000, 1), now).unwrap();
    // Once the old entries are out of the window they are pruned for new ones.
    let later = ts(1_700_000_008, 0);
    g.accept(3u32, later, later).unwrap();
    assert!(g.len() <= 2);
    assert_eq!(g.last_accepted(&2), None);
}
