//! Home-registration authentication with the MN-HA Mobility Message
//! Authentication option (RFC 4285 section 5.1).
//!
//! ```text
//! Authentication Data = First(96, HMAC_SHA1(MN-HA shared key, Mobility Data))
//! Mobility Data       = care-of address | home address | MH Data
//! ```
//! MH Data is the Mobility Header from its first byte up to and including the
//! Mobility SPI field of this option, with the Checksum field zero; the caller
//! prepares those bytes. The option is the last one in the message.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;

use ring::hmac;

use super::ct::{self, HMAC_SHA1};
use super::rr::{AuthError, Authenticator};

/// BA status 144, MIPV6-ID-MISMATCH (RFC 4285 section 8): the replay
/// protection timestamp was not acceptable; the home agent puts its own time
/// into the Mobility Message Replay Protection option of the BA.
pub const STATUS_MIPV6_ID_MISMATCH: u8 = 144;
/// BA status 145, MIPV6-MESG-ID-REQD (RFC 4285 section 8): the Mobility
/// Message Replay Protection option was missing.
pub const STATUS_MIPV6_MESG_ID_REQD: u8 = 145;
/// BA status 146, MIPV6-AUTH-FAIL (RFC 4285 section 8): authentication failed.
pub const STATUS_MIPV6_AUTH_FAIL: u8 = 146;

/// Longest MN-HA key accepted (a configuration bound, not an RFC limit).
pub const MAX_MN_HA_KEY_LEN: usize = 128;

/// A Mobility SPI (RFC 4285 5.1): names the mobility security association.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spi(pub u32);

/// An MN-HA shared key, held as a prepared HMAC-SHA1 key. `Debug` is redacted.
#[derive(Clone)]
pub struct MnHaKey(hmac::Key);

impl MnHaKey {
    /// A key of 1..=[`MAX_MN_HA_KEY_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, MnHaError> {
        if bytes.is_empty() || bytes.len() > MAX_MN_HA_KEY_LEN {
            return Err(MnHaError::KeyLength(bytes.len()));
        }
        Ok(Self(hmac::Key::new(HMAC_SHA1, bytes)))
    }

    /// A 20-byte key (always within the accepted lengths).
    #[must_use]
    pub fn from_array(bytes: &[u8; 20]) -> Self {
        Self(hmac::Key::new(HMAC_SHA1, bytes))
    }
}

impl fmt::Debug for MnHaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MnHaKey(<redacted>)")
    }
}

/// Errors of MN-HA authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MnHaError {
    /// No security association with this SPI.
    #[error("unknown mobility SPI {}", .0.0)]
    UnknownSpi(Spi),
    /// The SPI belongs to a different home address.
    #[error("mobility SPI {} is not for home address {hoa}", .spi.0)]
    HoaMismatch {
        /// The SPI in the message.
        spi: Spi,
        /// The home address the message claims.
        hoa: Ipv6Addr,
    },
    /// An SA with this SPI is already installed.
    #[error("mobility SPI {} already in use", .0.0)]
    DuplicateSpi(Spi),
    /// A key of this length is not accepted.
    #[error("MN-HA key length {0} outside 1..=128")]
    KeyLength(usize),
    /// The authentication data did not verify.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl MnHaError {
    /// The Binding Acknowledgement status for a failed check of a received
    /// Binding Update (MIPV6-AUTH-FAIL), `None` for local configuration errors.
    #[must_use]
    pub fn ba_status(&self) -> Option<u8> {
        match self {
            Self::UnknownSpi(_) | Self::HoaMismatch { .. } | Self::Auth(_) => {
                Some(STATUS_MIPV6_AUTH_FAIL)
            }
            Self::DuplicateSpi(_) | Self::KeyLength(_) => None,
        }
    }
}

/// `First(96, HMAC_SHA1(key, coa | hoa | mh_data))` (RFC 4285 5.1).
#[must_use]
pub fn mn_ha_authenticator(
    key: &MnHaKey,
    coa: Ipv6Addr,
    hoa: Ipv6Addr,
    mh_data: &[u8],
) -> Authenticator {
    let tag = ct::hmac_sha1_with_key(&key.0, &[&coa.octets(), &hoa.octets(), mh_data]);
    Authenticator::from_bytes(ct::first_n(&tag))
}

/// Recomputes the authentication data and compares it with `received` in
/// constant time; any length other than 12 bytes is [`AuthError::Length`].
pub fn verify_mn_ha(
    key: &MnHaKey,
    coa: Ipv6Addr,
    hoa: Ipv6Addr,
    mh_data: &[u8],
    received: &[u8],
) -> Result<(), AuthError> {
    mn_ha_authenticator(key, coa, hoa, mh_data).verify(received)
}

#[derive(Debug, Clone)]
struct MnHaSa {
    hoa: Ipv6Addr,
    key: MnHaKey,
}

/// The home agent's (or a mobile node's) MN-HA security associations,
/// indexed by SPI; each SA is bound to one home address.
#[derive(Debug, Clone, Default)]
pub struct MnHaKeyStore {
    sas: HashMap<Spi, MnHaSa>,
}

impl MnHaKeyStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs an SA; an SPI can be installed only once.
    pub fn insert(&mut self, spi: Spi, hoa: Ipv6Addr, key: MnHaKey) -> Result<(), MnHaError> {
        if self.sas.contains_key(&spi) {
            return Err(MnHaError::DuplicateSpi(spi));
        }
        self.sas.insert(spi, MnHaSa { hoa, key });
        Ok(())
    }

    /// Removes an SA; returns whether it existed.
    pub fn remove(&mut self, spi: Spi) -> bool {
        self.sas.remove(&spi).is_some()
    }

    /// The key of `spi` if it is bound to `hoa`.
    pub fn key_for(&self, spi: Spi, hoa: Ipv6Addr) -> Result<&MnHaKey, MnHaError> {
        let sa = self.sas.get(&spi).ok_or(MnHaError::UnknownSpi(spi))?;
        if sa.hoa != hoa {
            return Err(MnHaError::HoaMismatch { spi, hoa });
        }
        Ok(&sa.key)
    }

    /// The authenticator for an outgoing message (BU from a mobile node, or
    /// BA from the home agent) under SA `spi`.
    pub fn sign(
        &self,
        spi: Spi,
        coa: Ipv6Addr,
        hoa: Ipv6Addr,
        mh_data: &[u8],
    ) -> Result<Authenticator, MnHaError> {
        Ok(mn_ha_authenticator(
            self.key_for(spi, hoa)?,
            coa,
            hoa,
            mh_data,
        ))
    }

    /// Checks a received message's authentication data under SA `spi`.
    pub fn verify(
        &self,
        spi: Spi,
        coa: Ipv6Addr,
        hoa: Ipv6Addr,
        mh_data: &[u8],
        received: &[u8],
    ) -> Result<(), MnHaError> {
        Ok(verify_mn_ha(
            self.key_for(spi, hoa)?,
            coa,
            hoa,
            mh_data,
            received,
        )?)
    }

    /// Number of SAs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    /// True when no SA is installed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }
}
