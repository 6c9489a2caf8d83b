//! Checks every vector of `testdata/rr_vectors.json` (generated independently
//! with Python's `hmac`/`hashlib` and scapy by `testdata/gen_fixtures.py`),
//! through the public crypto API, including the correspondent's full
//! Binding Update check.

mod crypto_common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crypto_common::{hex, hex_array};
use mip6_anycast::crypto::{
    AuthError, BindingAuthInput, Kcn, KeygenToken, MnHaKey, MnHaKeyStore, Nonce, NonceConfig,
    NonceIndex, NonceTable, Spi, bu_authenticator, care_of_keygen_token, home_keygen_token, kbm,
    mn_ha_authenticator, verify_binding_update, verify_bu_authenticator, verify_mn_ha,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    rr: Vec<RrVector>,
    rfc4285: Vec<MnHaVector>,
}

#[derive(Deserialize)]
struct RrVector {
    name: String,
    kcn: String,
    home_nonce: String,
    care_of_nonce: String,
    hoa: Ipv6Addr,
    coa: Ipv6Addr,
    cn: Ipv6Addr,
    home_keygen_token: String,
    care_of_keygen_token: String,
    kbm: String,
    kbm_dereg: String,
    bu_mh_data: String,
    bu_authenticator: String,
    bu_packet: String,
}

#[derive(Deserialize)]
struct MnHaVector {
    name: String,
    key: String,
    spi: u32,
    coa: Ipv6Addr,
    hoa: Ipv6Addr,
    ha: Ipv6Addr,
    mh_data: String,
    authenticator: String,
    packet: String,
}

fn load() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/rr_vectors.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The Mobility Header of a test packet: follows the IPv6 extension header
/// chain (all of them use the (len + 1) * 8 rule) to next header 135.
fn mobility_header(packet: &[u8]) -> &[u8] {
    let mut next = packet[6];
    let mut off = 40;
    while next != 135 {
        next = packet[off];
        off += (usize::from(packet[off + 1]) + 1) * 8;
    }
    &packet[off..]
}

/// MH data as RFC 6275 6.2.7 / RFC 4285 5.1 want it: checksum zeroed, the
/// trailing 12-byte authenticator cut off. Returns it and the authenticator.
fn split_mh(packet: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mh = mobility_header(packet);
    let (data, auth) = mh.split_at(mh.len() - 12);
    let mut data = data.to_vec();
    data[4] = 0;
    data[5] = 0;
    (data, auth.to_vec())
}

#[test]
fn rr_vectors_tokens_kbm_authenticator() {
    let v = load();
    assert!(!v.rr.is_empty());
    for t in &v.rr {
        let n = &t.name;
        let kcn = Kcn::from_bytes(hex_array(&t.kcn));
        let hn = Nonce::from_bytes(hex_array(&t.home_nonce));
        let cn_ = Nonce::from_bytes(hex_array(&t.care_of_nonce));
        let ht = home_keygen_token(&kcn, t.hoa, &hn);
        let ct = care_of_keygen_token(&kcn, t.coa, &cn_);
        assert_eq!(
            ht.expose_secret().to_vec(),
            hex(&t.home_keygen_token),
            "{n}: home token"
        );
        assert_eq!(
            ct.expose_secret().to_vec(),
            hex(&t.care_of_keygen_token),
            "{n}: care-of token"
        );
        let k = kbm(&ht, Some(&ct));
        assert_eq!(k.expose_secret().to_vec(), hex(&t.kbm), "{n}: Kbm");
        assert_eq!(
            kbm(&ht, None).expose_secret().to_vec(),
            hex(&t.kbm_dereg),
            "{n}: Kbm dereg"
        );
        let mh = hex(&t.bu_mh_data);
        let want = hex(&t.bu_authenticator);
        assert_eq!(
            bu_authenticator(&k, t.coa, t.cn, &mh).as_bytes().to_vec(),
            want,
            "{n}: auth"
        );
        assert!(verify_bu_authenticator(&k, t.coa, t.cn, &mh, &want).is_ok());
        // Every single-bit change of the received authenticator is refused.
        for bit in 0..96 {
            let mut bad = want.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                verify_bu_authenticator(&k, t.coa, t.cn, &mh, &bad),
                Err(AuthError::Mismatch),
                "{n}: bit {bit}"
            );
        }
        // The tokens swapped (home <-> care-of) give another Kbm.
        assert_ne!(kbm(&ct, Some(&ht)), k);
    }
}

#[test]
fn rr_vectors_mh_data_matches_the_packet() {
    for t in &load().rr {
        let (data, auth) = split_mh(&hex(&t.bu_packet));
        assert_eq!(data, hex(&t.bu_mh_data), "{}", t.name);
        assert_eq!(auth, hex(&t.bu_authenticator), "{}", t.name);
    }
}

/// The correspondent's whole path: a nonce table issuing exactly the
/// vector's nonces (injected through the randomness source) under the
/// vector's Kcn, then `verify_binding_update`.
#[test]
fn rr_vectors_through_the_nonce_table() {
    for t in &load().rr {
        let mut stream = [hex(&t.home_nonce), hex(&t.care_of_nonce)].concat();
        stream.reverse();
        let rng = move |d: &mut [u8]| {
            for b in d.iter_mut() {
                *b = stream.pop().unwrap_or(0);
            }
            Ok(())
        };
        let t0 = Instant::now();
        let mut table = NonceTable::with_kcn(
            NonceConfig {
                nonce_interval: Duration::from_secs(30),
                kcn_lifetime: None,
            },
            Box::new(rng),
            Kcn::from_bytes(hex_array(&t.kcn)),
            t0,
        )
        .unwrap();
        let (hi, ht) = table
            .issue_token(t.hoa, mip6_anycast::crypto::TokenKind::Home, t0)
            .unwrap();
        let t1 = t0 + Duration::from_secs(30);
        let (ci, ct) = table
            .issue_token(t.coa, mip6_anycast::crypto::TokenKind::CareOf, t1)
            .unwrap();
        assert_eq!((hi, ci), (NonceIndex(0), NonceIndex(1)));
        assert_eq!(ht, KeygenToken::from_bytes(hex_array(&t.home_keygen_token)));
        assert_eq!(
            ct,
            KeygenToken::from_bytes(hex_array(&t.care_of_keygen_token))
        );
        let mh = hex(&t.bu_mh_data);
        let auth = hex(&t.bu_authenticator);
        let input = BindingAuthInput {
            hoa: t.hoa,
            coa: t.coa,
            correspondent: t.cn,
            home_nonce_index: hi,
            care_of_nonce_index: Some(ci),
            mh_data: &mh,
            authenticator: &auth,
        };
        let k = verify_binding_update(&table, &input, t1 + Duration::from_secs(200)).unwrap();
        assert_eq!(k.expose_secret().to_vec(), hex(&t.kbm), "{}", t.name);
        // Truncated on the wire: typed error, no panic.
        let short = BindingAuthInput {
            authenticator: &auth[..11],
            ..input
        };
        assert!(verify_binding_update(&table, &short, t1).is_err());
    }
}

/// RFC 4285 5.1 vectors: Mobility Data = care-of address | home address |
/// MH Data, computed by the fixture generator with Python's hmac/hashlib.
#[test]
fn rfc4285_vectors() {
    let v = load();
    assert!(!v.rfc4285.is_empty());
    for t in &v.rfc4285 {
        let key = MnHaKey::new(&hex(&t.key)).unwrap();
        let mh = hex(&t.mh_data);
        let want = hex(&t.authenticator);
        assert_eq!(
            mn_ha_authenticator(&key, t.coa, t.hoa, &mh)
                .as_bytes()
                .to_vec(),
            want,
            "{}",
            t.name
        );
        assert!(verify_mn_ha(&key, t.coa, t.hoa, &mh, &want).is_ok());
        let mut bad = want.clone();
        bad[11] ^= 0x01;
        assert_eq!(
            verify_mn_ha(&key, t.coa, t.hoa, &mh, &bad),
            Err(AuthError::Mismatch)
        );
        // MH data = the packet's MH with checksum zero up to and including
        // the SPI (the last 4 octets before the authentication data).
        let (data, auth) = split_mh(&hex(&t.packet));
        assert_eq!(data, mh, "{}", t.name);
        assert_eq!(auth, want, "{}", t.name);
        assert_eq!(data[data.len() - 4..], t.spi.to_be_bytes());
    }
}

/// The key store binds an SPI to its home address and signs over that
/// address (RFC 4285 5.1); the home-agent-address form must not verify.
#[test]
fn rfc4285_key_store_uses_home_address() {
    let v = load();
    for t in &v.rfc4285 {
        let mut store = MnHaKeyStore::new();
        store
            .insert(Spi(t.spi), t.hoa, MnHaKey::new(&hex(&t.key)).unwrap())
            .unwrap();
        let mh = hex(&t.mh_data);
        let want = hex(&t.authenticator);
        assert_eq!(
            store
                .sign(Spi(t.spi), t.coa, t.hoa, &mh)
                .unwrap()
                .as_bytes()
                .to_vec(),
            want,
            "{}",
            t.name
        );
        assert!(store.verify(Spi(t.spi), t.coa, t.hoa, &mh, &want).is_ok());
        let key = MnHaKey::new(&hex(&t.key)).unwrap();
        assert_eq!(
            verify_mn_ha(&key, t.coa, t.ha, &mh, &want),
            Err(AuthError::Mismatch),
            "{}: the home agent address form must differ",
            t.name
        );
    }
}
