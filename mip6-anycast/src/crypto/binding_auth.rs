//! The correspondent's full check of a Binding Update's Binding Authorization
//! Data (RFC 6275 5.2.6, 9.5.1): nonce lookups, keygen tokens, Kbm, HMAC,
//! constant-time compare.

use std::net::Ipv6Addr;
use std::time::Instant;

use super::nonce_table::{NonceError, NonceTable};
use super::rr::{self, AuthError, Kbm, KeygenToken, NonceIndex, TokenKind};
use super::token_cache::KeygenTokenCache;

/// BA status 136, "Expired home nonce index" (RFC 6275 6.1.8).
pub const STATUS_EXPIRED_HOME_NONCE_INDEX: u8 = 136;
/// BA status 137, "Expired care-of nonce index" (RFC 6275 6.1.8).
pub const STATUS_EXPIRED_CARE_OF_NONCE_INDEX: u8 = 137;
/// BA status 138, "Expired nonces" (RFC 6275 6.1.8).
pub const STATUS_EXPIRED_NONCES: u8 = 138;

/// What a correspondent needs from a received Binding Update to check it.
#[derive(Debug, Clone, Copy)]
pub struct BindingAuthInput<'a> {
    /// Home address (from the Home Address option).
    pub hoa: Ipv6Addr,
    /// Care-of address (the packet's source, or the Alternate Care-of
    /// Address option); for a de-registration the home address, which RFC
    /// 6275 6.2.7 authenticates over instead.
    pub coa: Ipv6Addr,
    /// This correspondent's address (the packet's destination).
    pub correspondent: Ipv6Addr,
    /// Home nonce index from the Nonce Indices option.
    pub home_nonce_index: NonceIndex,
    /// Care-of nonce index from the Nonce Indices option, or `None` when the
    /// Binding Update deletes the binding (lifetime zero or coa == hoa): then
    /// the care-of nonce index is ignored and Kbm = SHA1(home keygen token)
    /// (RFC 6275 5.2.6). The caller decides which case applies.
    pub care_of_nonce_index: Option<NonceIndex>,
    /// The Mobility Header with Checksum zero and without the Authenticator
    /// (RFC 6275 6.2.7), prepared by the caller.
    pub mh_data: &'a [u8],
    /// The received Authenticator (12 bytes on a valid message).
    pub authenticator: &'a [u8],
}

/// Why a Binding Update's authorization failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindingAuthError {
    /// The home nonce index is unknown or expired.
    #[error("home nonce: {0}")]
    HomeNonce(NonceError),
    /// The care-of nonce index is unknown or expired.
    #[error("care-of nonce: {0}")]
    CareOfNonce(NonceError),
    /// Both nonce indices are unknown or expired.
    #[error("home nonce: {home}; care-of nonce: {care_of}")]
    BothNonces {
        /// Why the home nonce index failed.
        home: NonceError,
        /// Why the care-of nonce index failed.
        care_of: NonceError,
    },
    /// The Authenticator is wrong: forged, corrupted or truncated.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl BindingAuthError {
    /// The Binding Acknowledgement status to send (RFC 6275 9.5.1, 6.1.8), or
    /// `None` when the Binding Update must be silently discarded (bad
    /// Authenticator: no acknowledgement).
    #[must_use]
    pub fn ba_status(&self) -> Option<u8> {
        match self {
            Self::HomeNonce(_) => Some(STATUS_EXPIRED_HOME_NONCE_INDEX),
            Self::CareOfNonce(_) => Some(STATUS_EXPIRED_CARE_OF_NONCE_INDEX),
            Self::BothNonces { .. } => Some(STATUS_EXPIRED_NONCES),
            Self::Auth(_) => None,
        }
    }
}

/// Verifies a Binding Update's authenticator, recomputing both keygen tokens.
/// On success returns Kbm, which also authenticates the Binding
/// Acknowledgement ([`rr::bu_authenticator`] over the BA).
pub fn verify_binding_update(
    table: &NonceTable,
    input: &BindingAuthInput<'_>,
    now: Instant,
) -> Result<Kbm, BindingAuthError> {
    verify_with(input, |index, addr, kind| {
        table.token(index, addr, kind, now)
    })
}

/// Same as [`verify_binding_update`], taking keygen tokens from `cache`
/// (computing and storing them on a miss).
pub fn verify_binding_update_cached(
    table: &NonceTable,
    cache: &mut KeygenTokenCache,
    input: &BindingAuthInput<'_>,
    now: Instant,
) -> Result<Kbm, BindingAuthError> {
    verify_with(input, |index, addr, kind| {
        cache.token(table, index, addr, kind, now)
    })
}

fn verify_with(
    input: &BindingAuthInput<'_>,
    mut token: impl FnMut(NonceIndex, Ipv6Addr, TokenKind) -> Result<KeygenToken, NonceError>,
) -> Result<Kbm, BindingAuthError> {
    // Cheap structural check first: no HMAC work for a truncated option.
    if input.authenticator.len() != rr::Authenticator::LEN {
        return Err(AuthError::Length {
            expected: rr::Authenticator::LEN,
            got: input.authenticator.len(),
        }
        .into());
    }
    let home = token(input.home_nonce_index, input.hoa, TokenKind::Home);
    let care_of = input
        .care_of_nonce_index
        .map(|index| token(index, input.coa, TokenKind::CareOf))
        .transpose();
    let kbm = match (home, care_of) {
        (Ok(h), Ok(c)) => rr::kbm(&h, c.as_ref()),
        (Err(home), Ok(_)) => return Err(BindingAuthError::HomeNonce(home)),
        (Ok(_), Err(care_of)) => return Err(BindingAuthError::CareOfNonce(care_of)),
        (Err(home), Err(care_of)) => return Err(BindingAuthError::BothNonces { home, care_of }),
    };
    rr::verify_bu_authenticator(
        &kbm,
        input.coa,
        input.correspondent,
        input.mh_data,
        input.authenticator,
    )?;
    Ok(kbm)
}
