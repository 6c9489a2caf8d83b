//! Return Routability end to end: a mobile node builds a Binding Update
//! authenticator from the tokens a correspondent issued, the correspondent
//! verifies it (RFC 6275 5.2.5, 5.2.6, 6.2.7, 9.5.1); forged, truncated and
//! stale inputs are refused with typed errors.

mod crypto_common;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use crypto_common::addr;
use mip6_anycast::crypto::{
    AuthError, Authenticator, BindingAuthError, BindingAuthInput, DeterministicRandom,
    KeygenTokenCache, MAX_NONCE_LIFETIME, NonceConfig, NonceError, NonceIndex, NonceTable,
    TokenKind, bu_authenticator, kbm, verify_binding_update, verify_binding_update_cached,
    verify_bu_authenticator,
};

struct Lab {
    t0: Instant,
    table: NonceTable,
    hoa: Ipv6Addr,
    coa: Ipv6Addr,
    cn: Ipv6Addr,
    mh_data: Vec<u8>,
}

impl Lab {
    fn new() -> Self {
        let t0 = Instant::now();
        let table = NonceTable::new(
            NonceConfig {
                nonce_interval: Duration::from_secs(30),
                kcn_lifetime: None,
            },
            Box::new(DeterministicRandom::new(99)),
            t0,
        )
        .unwrap();
        Self {
            t0,
            table,
            hoa: addr("2001:db8:a::1"),
            coa: addr("2001:db8:f00::2"),
            cn: addr("2001:db8:c::3"),
            // A BU's MH data (checksum zero, authenticator excluded); the
            // content is opaque to the crypto layer.
            mh_data: vec![
                59, 5, 5, 0, 0, 0, 0x12, 0x34, 0x00, 0x00, 0x00, 0x60, 1, 2, 0, 0, 3, 6, 0, 0, 0,
                1, 5, 12,
            ],
        }
    }

    /// Runs HoTI/HoT and CoTI/CoT at `at`; returns what the mobile node
    /// learns: the indices and the authenticator it sends.
    fn mobile_node_bu(&mut self, at: Instant) -> (NonceIndex, NonceIndex, Authenticator) {
        let (hi, ht) = self
            .table
            .issue_token(self.hoa, TokenKind::Home, at)
            .unwrap();
        let (ci, ct) = self
            .table
            .issue_token(self.coa, TokenKind::CareOf, at)
            .unwrap();
        let k = kbm(&ht, Some(&ct));
        (
            hi,
            ci,
            bu_authenticator(&k, self.coa, self.cn, &self.mh_data),
        )
    }

    fn input<'a>(
        &'a self,
        hi: NonceIndex,
        ci: Option<NonceIndex>,
        auth: &'a [u8],
    ) -> BindingAuthInput<'a> {
        BindingAuthInput {
            hoa: self.hoa,
            coa: self.coa,
            correspondent: self.cn,
            home_nonce_index: hi,
            care_of_nonce_index: ci,
            mh_data: &self.mh_data,
            authenticator: auth,
        }
    }
}

#[test]
fn valid_binding_update_verifies_and_returns_kbm() {
    let mut lab = Lab::new();
    let (hi, ci, auth) = lab.mobile_node_bu(lab.t0);
    let now = lab.t0 + Duration::from_secs(10);
    let k =
        verify_binding_update(&lab.table, &lab.input(hi, Some(ci), auth.as_bytes()), now).unwrap();
    // The returned Kbm authenticates the BA the correspondent sends back.
    let ba = [59u8, 1, 6, 0, 0, 0, 0, 0x12, 0x34, 0, 0x60];
    let ba_auth = bu_authenticator(&k, lab.coa, lab.cn, &ba);
    assert!(verify_bu_authenticator(&k, lab.coa, lab.cn, &ba, ba_auth.as_bytes()).is_ok());
}

#[test]
fn forged_authenticators_rejected_every_bit() {
    let mut lab = Lab::new();
    let (hi, ci, auth) = lab.mobile_node_bu(lab.t0);
    for bit in 0..96 {
        let mut forged = *auth.as_bytes();
        forged[bit / 8] ^= 1 << (bit % 8);
        let err = verify_binding_update(&lab.table, &lab.input(hi, Some(ci), &forged), lab.t0)
            .unwrap_err();
        assert_eq!(
            err,
            BindingAuthError::Auth(AuthError::Mismatch),
            "bit {bit}"
        );
        assert_eq!(
            err.ba_status(),
            None,
            "a bad authenticator is silently dropped"
        );
    }
}

#[test]
fn truncated_or_extended_authenticators_rejected() {
    let mut lab = Lab::new();
    let (hi, ci, auth) = lab.mobile_node_bu(lab.t0);
    let full = auth.as_bytes();
    let mut long = full.to_vec();
    long.push(0);
    for (bad, got) in [
        (&full[..11], 11),
        (&full[..8], 8),
        (&full[..0], 0),
        (&long[..], 13),
    ] {
        let err =
            verify_binding_update(&lab.table, &lab.input(hi, Some(ci), bad), lab.t0).unwrap_err();
        assert_eq!(
            err,
            BindingAuthError::Auth(AuthError::Length { expected: 12, got })
        );
    }
    // Also through the plain function and the Authenticator type.
    assert!(auth.verify(&full[..11]).is_err());
    assert!(auth.verify(full).is_ok());
}

#[test]
fn any_change_to_the_authenticated_data_is_detected() {
    let mut lab = Lab::new();
    let (hi, ci, auth) = lab.mobile_node_bu(lab.t0);
    let a = auth.as_bytes().to_vec();
    // Changed MH data (e.g. the sequence number).
    let mut tampered = lab.mh_data.clone();
    tampered[7] ^= 1;
    let mut input = lab.input(hi, Some(ci), &a);
    input.mh_data = &tampered;
    assert!(verify_binding_update(&lab.table, &input, lab.t0).is_err());
    // Another care-of address (a redirection attempt).
    let mut input = lab.input(hi, Some(ci), &a);
    input.coa = addr("2001:db8:bad::1");
    assert!(verify_binding_update(&lab.table, &input, lab.t0).is_err());
    // Another home address.
    let mut input = lab.input(hi, Some(ci), &a);
    input.hoa = addr("2001:db8:a::2");
    assert!(verify_binding_update(&lab.table, &input, lab.t0).is_err());
    // Another correspondent address.
    let mut input = lab.input(hi, Some(ci), &a);
    input.correspondent = addr("2001:db8:c::4");
    assert!(verify_binding_update(&lab.table, &input, lab.t0).is_err());
    // Deletion form (care-of index ignored) does not accept a full-Kbm tag.
    assert!(verify_binding_update(&lab.table, &lab.input(hi, None, &a), lab.t0).is_err());
}

#[test]
fn deletion_uses_home_token_only() {
    let mut lab = Lab::new();
    // Returning home: coa == hoa, Kbm = SHA1(home keygen token).
    lab.coa = lab.hoa;
    let (hi, ht) = lab
        .table
        .issue_token(lab.hoa, TokenKind::Home, lab.t0)
        .unwrap();
    let auth = bu_authenticator(&kbm(&ht, None), lab.coa, lab.cn, &lab.mh_data);
    let a = auth.as_bytes().to_vec();
    // Any (even unknown) care-of nonce index is ignored in this form.
    assert!(verify_binding_update(&lab.table, &lab.input(hi, None, &a), lab.t0).is_ok());
}

#[test]
fn stale_nonce_indices_map_to_ba_status_136_137_138() {
    let mut lab = Lab::new();
    let (hi, ci, auth) = lab.mobile_node_bu(lab.t0);
    let a = auth.as_bytes().to_vec();
    let late = lab.t0 + MAX_NONCE_LIFETIME;
    let fresh = lab.table.current(late).unwrap().index();

    let e = verify_binding_update(&lab.table, &lab.input(hi, Some(fresh), &a), late).unwrap_err();
    assert!(matches!(
        e,
        BindingAuthError::HomeNonce(NonceError::UnknownIndex(_))
    ));
    assert_eq!(e.ba_status(), Some(136));

    let e = verify_binding_update(&lab.table, &lab.input(fresh, Some(ci), &a), late).unwrap_err();
    assert!(matches!(e, BindingAuthError::CareOfNonce(_)));
    assert_eq!(e.ba_status(), Some(137));

    let e = verify_binding_update(&lab.table, &lab.input(hi, Some(ci), &a), late).unwrap_err();
    assert!(matches!(e, BindingAuthError::BothNonces { .. }));
    assert_eq!(e.ba_status(), Some(138));
}

#[test]
fn cached_path_agrees_with_uncached_and_stays_bounded() {
    let mut lab = Lab::new();
    let (hi, ci, auth) = lab.mobile_node_bu(lab.t0);
    let a = auth.as_bytes().to_vec();
    let mut cache = KeygenTokenCache::new(4);
    for _ in 0..3 {
        let k1 = verify_binding_update_cached(
            &lab.table,
            &mut cache,
            &lab.input(hi, Some(ci), &a),
            lab.t0,
        )
        .unwrap();
        let k2 = verify_binding_update(&lab.table, &lab.input(hi, Some(ci), &a), lab.t0).unwrap();
        assert_eq!(k1, k2);
    }
    assert_eq!(cache.stats(), (4, 2));
    // Forgeries fail on the cached path too.
    let mut forged = a.clone();
    forged[0] ^= 0x80;
    assert!(
        verify_binding_update_cached(
            &lab.table,
            &mut cache,
            &lab.input(hi, Some(ci), &forged),
            lab.t0
        )
        .is_err()
    );
    // Many distinct addresses never grow the cache past its capacity.
    for i in 0..100u16 {
        let mut input = lab.input(hi, Some(ci), &a);
        input.coa = Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 0, i);
        let _ = verify_binding_update_cached(&lab.table, &mut cache, &input, lab.t0);
        assert!(cache.len() <= 4);
    }
    // An expired nonce is refused even though its tokens are cached.
    let late = lab.t0 + MAX_NONCE_LIFETIME;
    let r = cache.token(&lab.table, hi, lab.hoa, TokenKind::Home, late);
    assert!(matches!(r, Err(NonceError::Expired { .. })));
}
