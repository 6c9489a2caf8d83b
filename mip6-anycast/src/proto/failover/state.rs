//! What a backup needs to act as the contact node (seed 004 4.2.1): the
//! MN-HA security association of X's home registration (RFC 4285), the
//! next home registration sequence number, and per client the next
//! Binding Update sequence number, the cached home keygen token and where
//! the client is served. The contact node replicates it to the backups
//! over the node channel (Noise, encrypted: the key never travels in
//! clear).

use std::fmt;
use std::net::Ipv6Addr;

use crate::crypto::{MAX_MN_HA_KEY_LEN, MnHaError, MnHaKey, Spi};
use crate::proto::handoff::MemberId;
use crate::proto::mobile::ExportedToken;

/// Most clients in one snapshot (the channel message stays well under
/// its limit: about 60 octets per client).
pub const MAX_SNAPSHOT_CLIENTS: usize = 65_536;

/// The MN-HA security association of the home registration: SPI and the
/// raw key (RFC 4285 5.1). `Debug` is redacted.
#[derive(Clone)]
pub struct RegistrationKey {
    /// The Mobility SPI.
    pub spi: Spi,
    key: Vec<u8>,
    prepared: MnHaKey,
}

impl PartialEq for RegistrationKey {
    fn eq(&self, other: &Self) -> bool {
        self.spi == other.spi && crate::crypto::ct_eq(&self.key, &other.key)
    }
}

impl Eq for RegistrationKey {}

impl RegistrationKey {
    /// A key of 1..=[`MAX_MN_HA_KEY_LEN`] octets.
    pub fn new(spi: Spi, key: &[u8]) -> Result<Self, MnHaError> {
        if key.is_empty() || key.len() > MAX_MN_HA_KEY_LEN {
            return Err(MnHaError::KeyLength(key.len()));
        }
        Ok(Self {
            spi,
            key: key.to_vec(),
            prepared: MnHaKey::new(key)?,
        })
    }

    /// The prepared HMAC key.
    #[must_use]
    pub fn mn_ha_key(&self) -> MnHaKey {
        self.prepared.clone()
    }

    /// The raw key (secret).
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for RegistrationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationKey")
            .field("spi", &self.spi.0)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// One client as the contact node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client (correspondent node).
    pub cn: Ipv6Addr,
    /// The next Binding Update sequence number for it (RFC 6275 11.7.2).
    pub next_sequence: u16,
    /// A cached home keygen token, with its age.
    pub home_token: Option<ExportedToken>,
    /// The member serving it (the contact node's own name if it is
    /// served there).
    pub served_by: MemberId,
    /// Whether the serving member has a binding at the client (route
    /// optimized) rather than the home path.
    pub bound: bool,
}

/// The contact node's replicated state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSnapshot {
    /// The care-of address the contact node registered.
    pub contact_coa: Ipv6Addr,
    /// The security association in use at the home agent.
    pub key: RegistrationKey,
    /// A new security association being rolled out (key rotation): the
    /// contact node switches to it once every live backup holds it.
    pub next_key: Option<RegistrationKey>,
    /// The next home registration sequence number the contact node may
    /// use (a high-water mark: it never sends a higher one before this
    /// snapshot is replicated).
    pub home_next_sequence: u16,
    /// The clients (at most [`MAX_SNAPSHOT_CLIENTS`]).
    pub clients: Vec<ClientRecord>,
}
