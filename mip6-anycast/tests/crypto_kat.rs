//! Known-answer tests of the primitives: HMAC-SHA1 (RFC 2202) and
//! HKDF-SHA256 (RFC 5869, test cases 1-3).

mod crypto_common;

use crypto_common::hex;
use mip6_anycast::crypto::{hkdf_sha256, hmac_sha1};

/// RFC 2202 section 3: (key, data, HMAC-SHA1).
#[test]
fn hmac_sha1_rfc2202() {
    let cases: [(Vec<u8>, Vec<u8>, &str); 7] = [
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            "b617318655057264e28bc0b6fb378c8ef146be00",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        ),
        (
            vec![0xaa; 20],
            vec![0xdd; 50],
            "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
        ),
        (
            (1..=25).collect(),
            vec![0xcd; 50],
            "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
        ),
        (
            vec![0x0c; 20],
            b"Test With Truncation".to_vec(),
            "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
        ),
        (
            vec![0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112",
        ),
        (
            vec![0xaa; 80],
            b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data".to_vec(),
            "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
        ),
    ];
    for (i, (key, data, want)) in cases.iter().enumerate() {
        assert_eq!(
            hmac_sha1(key, &[data]).to_vec(),
            hex(want),
            "RFC 2202 case {}",
            i + 1
        );
        // Feeding the data in pieces gives the same tag.
        let (a, b) = data.split_at(data.len() / 3);
        assert_eq!(hmac_sha1(key, &[a, b]).to_vec(), hex(want));
    }
}

/// RFC 2202 case 5 also gives the 96-bit truncation used by RFC 6275/4285.
#[test]
fn hmac_sha1_96_rfc2202_case5() {
    let tag = hmac_sha1(&[0x0c; 20], &[b"Test With Truncation"]);
    assert_eq!(tag[..12].to_vec(), hex("4c1a03424b55e07fe7f27be1"));
}

struct HkdfCase {
    ikm: Vec<u8>,
    salt: Option<Vec<u8>>,
    info: Vec<u8>,
    prk: &'static str,
    okm: &'static str,
}

#[test]
fn hkdf_sha256_rfc5869() {
    let cases = [
        HkdfCase {
            ikm: vec![0x0b; 22],
            salt: Some((0x00..=0x0c).collect()),
            info: (0xf0..=0xf9).collect(),
            prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        },
        HkdfCase {
            ikm: (0x00..=0x4f).collect(),
            salt: Some((0x60..=0xaf).collect()),
            info: (0xb0..=0xff).collect(),
            prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c\
                  59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71\
                  cc30c58179ec3e87c14c01d5c1f3434f1d87",
        },
        HkdfCase {
            ikm: vec![0x0b; 22],
            salt: Some(Vec::new()),
            info: Vec::new(),
            prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let want = hex(&c.okm.replace(' ', ""));
        let mut okm = vec![0u8; want.len()];
        let prk = hkdf_sha256(c.salt.as_deref(), &c.ikm, &c.info, &mut okm).unwrap();
        assert_eq!(prk.to_vec(), hex(c.prk), "RFC 5869 case {} PRK", i + 1);
        assert_eq!(okm, want, "RFC 5869 case {} OKM", i + 1);
    }
    // Case 3's empty salt is the same as no salt (HashLen zeros).
    let mut a = [0u8; 42];
    let mut b = [0u8; 42];
    hkdf_sha256(None, &[0x0b; 22], &[], &mut a).unwrap();
    hkdf_sha256(Some(&[]), &[0x0b; 22], &[], &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn hkdf_rejects_overlong_output() {
    let mut okm = vec![0u8; 255 * 32 + 1];
    assert!(hkdf_sha256(None, b"ikm", b"", &mut okm).is_err());
    let mut okm = vec![0u8; 255 * 32];
    assert!(hkdf_sha256(None, b"ikm", b"", &mut okm).is_ok());
}
