//! The HKDF key hierarchy of a group (`crypto::keys`).

mod crypto_common;

use crypto_common::{addr, hex};
use mip6_anycast::crypto::{
    GroupSecret, KeyError, KeyHierarchy, MnHaKeyStore, hmac_sha1, labels, mn_ha_authenticator,
};

fn secret() -> GroupSecret {
    GroupSecret::new(&(0u8..32).collect::<Vec<_>>()).unwrap()
}

/// Version 1 is pinned: these values were computed independently with
/// Python's `hmac`/`hashlib` from the documented construction
/// (salt "mip6-anycast key hierarchy v1"; info = "mip6-anycast/v1" | 0x00 |
/// u64be(len(label)) | label | context) for the secret 00 01 .. 1f:
///
/// ```python
/// prk = hmac.new(salt, secret, sha256).digest()
/// t = b""; okm = b""
/// for i in range(1, n):
///     t = hmac.new(prk, t + info + bytes([i]), sha256).digest(); okm += t
/// ```
/// A change here breaks every deployed group: bump the version instead.
#[test]
fn version_1_derivations_are_pinned() {
    let h = KeyHierarchy::new(&secret());
    let hoa = addr("2001:db8:a::1");
    let (spi, key) = h.mn_ha_sa(hoa);
    assert_eq!(spi.0, 0x5ae2_f3a4);
    let want_key = hex("f7801ba6f77840692357cde7ededd7c012afb6cc");
    let coa = addr("2001:db8:f::1");
    let tag = mn_ha_authenticator(&key, coa, hoa, b"mh");
    assert_eq!(
        tag.as_bytes()[..],
        hmac_sha1(&want_key, &[&coa.octets(), &hoa.octets(), b"mh"])[..12]
    );
    assert_eq!(
        h.node_channel_psk().expose_secret().to_vec(),
        hex("15161b4722a13958a30ecebbe250d40288471f29b330c471b18cd5890b2e7f1b")
    );
    assert_eq!(
        h.lab_kcn(addr("2001:db8:c::3")).expose_secret().to_vec(),
        hex("3b72cc720883a36b902d3a9e7c6181002b199495")
    );
    assert_eq!(
        h.derive::<16>("example", b"ctx").to_vec(),
        hex("1bbfb25fdcf14272a320c14ac52a8af1")
    );
}

#[test]
fn members_and_home_agent_agree_without_exchanging_keys() {
    // The contact node and the home agent each load the group secret.
    let contact = KeyHierarchy::new(&secret());
    let home_agent = KeyHierarchy::new(
        &GroupSecret::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .unwrap(),
    );
    let hoa = addr("2001:db8:a::100");
    let coa = addr("2001:db8:f00::5");
    let mh = b"binding update up to the SPI";
    let (spi, mn_key) = contact.mn_ha_sa(hoa);
    let auth = mn_ha_authenticator(&mn_key, coa, hoa, mh);
    let mut store = MnHaKeyStore::new();
    let (ha_spi, ha_key) = home_agent.mn_ha_sa(hoa);
    assert_eq!(spi, ha_spi);
    store.insert(ha_spi, hoa, ha_key).unwrap();
    assert!(store.verify(spi, coa, hoa, mh, auth.as_bytes()).is_ok());
    assert_eq!(contact.node_channel_psk(), home_agent.node_channel_psk());
}

#[test]
fn derivations_are_domain_separated() {
    let h = KeyHierarchy::new(&secret());
    let a: [u8; 32] = h.derive("ab", b"c");
    let b: [u8; 32] = h.derive("a", b"bc");
    let c: [u8; 32] = h.derive("abc", b"");
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_ne!(b, c);
    // Different home addresses: different SA.
    let (s1, _) = h.mn_ha_sa(addr("2001:db8::1"));
    let (s2, _) = h.mn_ha_sa(addr("2001:db8::2"));
    assert_ne!(s1, s2);
    // Labels used by the hierarchy are distinct.
    let all = [
        labels::MN_HA_KEY,
        labels::MN_HA_SPI,
        labels::NODE_CHANNEL_PSK,
        labels::LAB_KCN,
    ];
    for (i, x) in all.iter().enumerate() {
        for y in &all[i + 1..] {
            assert_ne!(x, y);
        }
    }
    // Another secret: everything changes.
    let other = KeyHierarchy::new(&GroupSecret::new(&[9u8; 32]).unwrap());
    assert_ne!(other.derive::<32>("ab", b"c"), a);
    // Prefix property of HKDF-Expand: a longer output extends a shorter one.
    let long: [u8; 64] = h.derive("ab", b"c");
    assert_eq!(long[..32], a);
}

#[test]
fn spi_avoids_reserved_low_values() {
    let h = KeyHierarchy::new(&secret());
    for i in 0..2000u16 {
        let (spi, _) = h.mn_ha_sa(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i));
        assert!(spi.0 >= 256);
    }
}

#[test]
fn group_secret_validation() {
    assert_eq!(
        GroupSecret::new(&[0; 31]).unwrap_err(),
        KeyError::SecretLength(31)
    );
    assert!(GroupSecret::new(&[0; 32]).is_ok());
    assert_eq!(
        GroupSecret::new(&[0; 1025]).unwrap_err(),
        KeyError::SecretLength(1025)
    );
    assert_eq!(GroupSecret::from_hex("abc").unwrap_err(), KeyError::Hex);
    assert_eq!(
        GroupSecret::from_hex(&"zz".repeat(32)).unwrap_err(),
        KeyError::Hex
    );
    assert_eq!(
        GroupSecret::from_hex(&"é1".repeat(16)).unwrap_err(),
        KeyError::Hex
    );
    assert_eq!(
        GroupSecret::from_hex(&"00".repeat(16)).unwrap_err(),
        KeyError::SecretLength(16)
    );
    assert!(GroupSecret::from_hex(&format!("  {}\n", "Ab".repeat(32))).is_ok());
    let mut out = vec![0u8; 8161];
    let h = KeyHierarchy::new(&secret());
    assert_eq!(
        h.derive_into("x", b"", &mut out).unwrap_err(),
        KeyError::OutputLength(8161)
    );
}

#[test]
fn debug_is_redacted() {
    let s = GroupSecret::new(&[0x77; 40]).unwrap();
    let h = KeyHierarchy::new(&s);
    let text = format!(
        "{s:?} {h:?} {:?} {:?}",
        h.node_channel_psk(),
        h.mn_ha_sa(addr("::1"))
    );
    assert!(!text.contains("77") && !text.contains("119"), "{text}");
}
