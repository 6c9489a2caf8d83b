//! Return Routability keys and tokens (RFC 6275 5.2.3-5.2.6, 6.2.7).
//!
//! ```text
//! home keygen token    = First(64, HMAC_SHA1(Kcn, home address    | nonce | 0))
//! care-of keygen token = First(64, HMAC_SHA1(Kcn, care-of address | nonce | 1))
//! Kbm                  = SHA1(home keygen token | care-of keygen token)
//! Kbm (deletion)       = SHA1(home keygen token)
//! Authenticator        = First(96, HMAC_SHA1(Kbm, care-of address | correspondent | MH Data))
//! ```
//! The final `0`/`1` of the token input is a single octet (RFC 6275 5.2.5).

use std::net::Ipv6Addr;

use ring::hmac;

use super::ct::{self, HMAC_SHA1};
use super::types::{public_bytes, secret_bytes};

secret_bytes!(
    /// Kcn, the correspondent node's secret node key, 20 octets
    /// (RFC 6275 5.2.3). Used only to derive keygen tokens.
    Kcn,
    20
);

secret_bytes!(
    /// A correspondent node's nonce (RFC 6275 5.2.3), 64 bits. Never sent on
    /// the wire: only its [`NonceIndex`] is.
    Nonce,
    8
);

secret_bytes!(
    /// A home or care-of keygen token, 64 bits (RFC 6275 5.2.5). Sent to the
    /// mobile node in HoT/CoT, secret from everyone else.
    KeygenToken,
    8
);

secret_bytes!(
    /// Kbm, the binding management key, 20 octets (RFC 6275 5.2.5).
    Kbm,
    20
);

public_bytes!(
    /// A home or care-of init cookie, 64 bits (RFC 6275 6.1.3-6.1.6): a
    /// random value the mobile node matches HoT/CoT against its HoTI/CoTI.
    Cookie,
    8
);

public_bytes!(
    /// The Binding Authorization Data authenticator, 96 bits (RFC 6275 6.2.7).
    Authenticator,
    12
);

impl Cookie {
    /// A fresh random init cookie.
    pub fn generate(rng: &mut dyn super::RandomSource) -> Result<Self, super::RandomError> {
        let mut b = [0u8; 8];
        rng.fill(&mut b)?;
        Ok(Self(b))
    }
}

/// A nonce index (RFC 6275 6.2.6): 16 bits on the wire, names one nonce
/// (and, in [`NonceTable`](super::NonceTable), the Kcn it was issued under).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NonceIndex(pub u16);

impl NonceIndex {
    /// The index after this one, wrapping from 65535 to 0.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

/// Which keygen token: the final octet of the HMAC input (RFC 6275 5.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Home keygen token, final octet 0 (for the home address, HoTI/HoT).
    Home,
    /// Care-of keygen token, final octet 1 (for the care-of address, CoTI/CoT).
    CareOf,
}

impl TokenKind {
    const fn octet(self) -> u8 {
        match self {
            Self::Home => 0,
            Self::CareOf => 1,
        }
    }
}

/// A truncated authenticator did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The received authenticator does not have the expected length.
    #[error("authenticator is {got} bytes, expected {expected}")]
    Length {
        /// Expected length in bytes.
        expected: usize,
        /// Received length in bytes.
        got: usize,
    },
    /// The authenticator does not match the message (forged or corrupted).
    #[error("authenticator mismatch")]
    Mismatch,
}

impl Authenticator {
    /// Compares this (computed) authenticator with `received` in constant
    /// time (see [`ct_eq`](super::ct_eq)); a wrong length is a typed error.
    pub fn verify(&self, received: &[u8]) -> Result<(), AuthError> {
        if received.len() != Self::LEN {
            return Err(AuthError::Length {
                expected: Self::LEN,
                got: received.len(),
            });
        }
        if ct::ct_eq(&self.0, received) {
            Ok(())
        } else {
            Err(AuthError::Mismatch)
        }
    }
}

/// A Kcn prepared for repeated HMACs (the ipad/opad blocks computed once).
#[derive(Clone)]
pub(crate) struct KcnKey(hmac::Key);

impl KcnKey {
    pub(crate) fn new(kcn: &Kcn) -> Self {
        Self(hmac::Key::new(HMAC_SHA1, kcn.expose_secret()))
    }

    pub(crate) fn token(&self, addr: Ipv6Addr, nonce: &Nonce, kind: TokenKind) -> KeygenToken {
        let tag = ct::hmac_sha1_with_key(
            &self.0,
            &[&addr.octets(), nonce.expose_secret(), &[kind.octet()]],
        );
        KeygenToken(ct::first_n(&tag))
    }
}

/// A keygen token of either kind (RFC 6275 5.2.5).
#[must_use]
pub fn keygen_token(kcn: &Kcn, addr: Ipv6Addr, nonce: &Nonce, kind: TokenKind) -> KeygenToken {
    KcnKey::new(kcn).token(addr, nonce, kind)
}

/// `First(64, HMAC_SHA1(Kcn, hoa | nonce | 0))` (RFC 6275 5.2.5).
#[must_use]
pub fn home_keygen_token(kcn: &Kcn, hoa: Ipv6Addr, nonce: &Nonce) -> KeygenToken {
    keygen_token(kcn, hoa, nonce, TokenKind::Home)
}

/// `First(64, HMAC_SHA1(Kcn, coa | nonce | 1))` (RFC 6275 5.2.5).
#[must_use]
pub fn care_of_keygen_token(kcn: &Kcn, coa: Ipv6Addr, nonce: &Nonce) -> KeygenToken {
    keygen_token(kcn, coa, nonce, TokenKind::CareOf)
}

/// `Kbm = SHA1(home keygen token | care-of keygen token)`, or, with
/// `care_of = None`, `SHA1(home keygen token)`: the form used when a Binding
/// Update deletes a binding (returning home), where the care-of nonce index is
/// ignored (RFC 6275 5.2.5, 5.2.6).
#[must_use]
pub fn kbm(home: &KeygenToken, care_of: Option<&KeygenToken>) -> Kbm {
    let digest = match care_of {
        Some(c) => ct::sha1(&[home.expose_secret(), c.expose_secret()]),
        None => ct::sha1(&[home.expose_secret()]),
    };
    Kbm(digest)
}

/// `First(96, HMAC_SHA1(Kbm, coa | correspondent | MH Data))` (RFC 6275 6.2.7).
///
/// `mh_data` is the Mobility Header as prepared by the caller: the whole
/// message (BU or BA) with the Checksum field zero and without the
/// Authenticator itself. The same formula authenticates the Binding
/// Acknowledgement a correspondent returns.
#[must_use]
pub fn bu_authenticator(
    kbm: &Kbm,
    coa: Ipv6Addr,
    correspondent: Ipv6Addr,
    mh_data: &[u8],
) -> Authenticator {
    let tag = ct::hmac_sha1(
        kbm.expose_secret(),
        &[&coa.octets(), &correspondent.octets(), mh_data],
    );
    Authenticator(ct::first_n(&tag))
}

/// Recomputes the authenticator and compares it with `received` in constant
/// time. A `received` of any length other than 12 is [`AuthError::Length`].
pub fn verify_bu_authenticator(
    kbm: &Kbm,
    coa: Ipv6Addr,
    correspondent: Ipv6Addr,
    mh_data: &[u8],
    received: &[u8],
) -> Result<(), AuthError> {
    bu_authenticator(kbm, coa, correspondent, mh_data).verify(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_secrets() {
        let kcn = Kcn::from_bytes([0xAB; 20]);
        let s = format!("{kcn:?} {:?}", Kbm::from_bytes([0xCD; 20]));
        assert!(
            !s.contains("ab") && !s.contains("171") && !s.contains("cd"),
            "{s}"
        );
        assert_eq!(
            format!("{:?}", Cookie::from_bytes([1; 8])),
            "Cookie(0101010101010101)"
        );
    }

    #[test]
    fn home_and_care_of_tokens_differ_for_same_address() {
        let kcn = Kcn::from_bytes([7; 20]);
        let n = Nonce::from_bytes([9; 8]);
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_ne!(
            home_keygen_token(&kcn, a, &n),
            care_of_keygen_token(&kcn, a, &n)
        );
    }

    #[test]
    fn deletion_kbm_differs_from_full_kbm() {
        let h = KeygenToken::from_bytes([1; 8]);
        let c = KeygenToken::from_bytes([2; 8]);
        assert_ne!(kbm(&h, Some(&c)), kbm(&h, None));
    }

    #[test]
    fn nonce_index_wraps() {
        assert_eq!(NonceIndex(u16::MAX).next(), NonceIndex(0));
    }

    #[test]
    fn try_from_checks_length() {
        assert!(Authenticator::try_from(&[0u8; 11][..]).is_err());
        assert!(Kcn::try_from(&[0u8; 20][..]).is_ok());
        let e = Kbm::try_from(&[0u8; 21][..]).unwrap_err();
        assert_eq!((e.expected, e.got), (20, 21));
    }
}
