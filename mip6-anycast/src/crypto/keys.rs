//! The key hierarchy of an anycast group: every key derived from one
//! [`GroupSecret`] with HKDF-SHA256 (RFC 5869), so that the contact node, its
//! backups and the home agent agree on keys without sending any in clear.
//!
//! # Derivation (version 1)
//!
//! ```text
//! PRK  = HKDF-Extract(salt = "mip6-anycast key hierarchy v1", IKM = group secret)
//! OKM  = HKDF-Expand(PRK, info, L)
//! info = "mip6-anycast/v1" | 0x00 | u64be(len(label)) | label | context
//! ```
//! The fixed prefix names the scheme and its version; the length prefix makes
//! every (label, context) pair map to a distinct `info` (domain separation).
//! Changing any rule here means a new version string, never a silent change.
//!
//! | key | label | context | L |
//! |---|---|---|---|
//! | MN-HA shared key of an anycast home address | [`labels::MN_HA_KEY`] | the 16 address bytes | 20 |
//! | its Mobility SPI | [`labels::MN_HA_SPI`] | the 16 address bytes | 4 (values < 256 get +256) |
//! | node-to-node channel PSK (Noise) | [`labels::NODE_CHANNEL_PSK`] | empty | 32 |
//! | a lab correspondent's Kcn | [`labels::LAB_KCN`] | the correspondent's 16 address bytes | 20 |

use std::fmt;
use std::net::Ipv6Addr;

use hkdf::Hkdf;
use sha2::Sha256;

use super::mnha::{MnHaKey, Spi};
use super::rr::Kcn;
use super::types::secret_bytes;

/// HKDF-Extract salt of version 1.
pub const HIERARCHY_SALT: &[u8] = b"mip6-anycast key hierarchy v1";
/// Prefix of every `info` of version 1 (followed by a 0x00 octet).
pub const INFO_PREFIX: &[u8] = b"mip6-anycast/v1";
/// Shortest accepted group secret.
pub const MIN_GROUP_SECRET_LEN: usize = 32;
/// Longest accepted group secret (a configuration bound).
pub const MAX_GROUP_SECRET_LEN: usize = 1024;
/// Largest output of one HKDF-SHA256 expansion (255 * HashLen).
pub const MAX_HKDF_OUTPUT: usize = 255 * 32;
/// Length of derived MN-HA keys (the HMAC-SHA1 output length, RFC 2104).
pub const MN_HA_KEY_LEN: usize = 20;

/// Labels of version 1.
pub mod labels {
    /// MN-HA shared key of an anycast home address.
    pub const MN_HA_KEY: &str = "mn-ha key";
    /// Mobility SPI of an anycast home address's MN-HA SA.
    pub const MN_HA_SPI: &str = "mn-ha spi";
    /// Pre-shared key of the node-to-node channel (Noise PSK handshake).
    pub const NODE_CHANNEL_PSK: &str = "node-channel psk";
    /// Kcn of a correspondent in tests and labs.
    pub const LAB_KCN: &str = "lab kcn";
}

/// Errors of the key hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A group secret must be 32..=1024 bytes.
    #[error("group secret of {0} bytes; need 32..=1024")]
    SecretLength(usize),
    /// The hex text is not valid hex.
    #[error("group secret is not valid hex")]
    Hex,
    /// HKDF cannot produce that many bytes (more than 255 * 32).
    #[error("HKDF output of {0} bytes is longer than 8160")]
    OutputLength(usize),
}

/// The group's root secret (32..=1024 bytes). `Debug` is redacted.
#[derive(Clone)]
pub struct GroupSecret(Vec<u8>);

impl GroupSecret {
    /// From raw bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if !(MIN_GROUP_SECRET_LEN..=MAX_GROUP_SECRET_LEN).contains(&bytes.len()) {
            return Err(KeyError::SecretLength(bytes.len()));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// From hex text (as kept in configuration files); surrounding
    /// whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if !text.len().is_multiple_of(2) {
            return Err(KeyError::Hex);
        }
        if text.len() / 2 > MAX_GROUP_SECRET_LEN {
            return Err(KeyError::SecretLength(text.len() / 2));
        }
        let bytes = text
            .as_bytes()
            .chunks_exact(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .ok_or(KeyError::Hex)
            })
            .collect::<Result<Vec<u8>, KeyError>>()?;
        Self::new(&bytes)
    }
}

impl fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupSecret(<redacted, {} bytes>)", self.0.len())
    }
}

secret_bytes!(
    /// The 32-byte pre-shared key of the node-to-node channel (Noise PSK).
    NodeChannelPsk,
    32
);

/// HKDF-SHA256 (RFC 5869): extract with `salt` (`None` = HashLen zeros),
/// expand with `info` into `okm`. Returns the PRK. This is the primitive the
/// hierarchy uses; it is public so RFC 5869's test vectors can check it.
pub fn hkdf_sha256(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[u8],
    okm: &mut [u8],
) -> Result<[u8; 32], KeyError> {
    let (prk, hk) = Hkdf::<Sha256>::extract(salt, ikm);
    hk.expand(info, okm)
        .map_err(|_| KeyError::OutputLength(okm.len()))?;
    Ok(super::ct::first_n(&prk))
}

/// The expanded-once hierarchy of one group (holds the PRK). `Debug` is
/// redacted.
#[derive(Clone)]
pub struct KeyHierarchy {
    hk: Hkdf<Sha256>,
}

impl fmt::Debug for KeyHierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHierarchy(<redacted>)")
    }
}

impl KeyHierarchy {
    /// HKDF-Extract of the group secret (version 1 salt).
    #[must_use]
    pub fn new(secret: &GroupSecret) -> Self {
        Self {
            hk: Hkdf::<Sha256>::new(Some(HIERARCHY_SALT), &secret.0),
        }
    }

    /// Fills `out` with the key for (`label`, `context`); see the module
    /// docs for the `info` encoding.
    pub fn derive_into(&self, label: &str, context: &[u8], out: &mut [u8]) -> Result<(), KeyError> {
        let label_len = (label.len() as u64).to_be_bytes();
        self.hk
            .expand_multi_info(
                &[INFO_PREFIX, &[0], &label_len, label.as_bytes(), context],
                out,
            )
            .map_err(|_| KeyError::OutputLength(out.len()))
    }

    /// An `N`-byte key for (`label`, `context`). `N` is checked against the
    /// HKDF limit (8160) at compile time.
    #[must_use]
    pub fn derive<const N: usize>(&self, label: &str, context: &[u8]) -> [u8; N] {
        const {
            assert!(
                N <= MAX_HKDF_OUTPUT,
                "HKDF-SHA256 output is limited to 8160 bytes"
            )
        };
        let mut out = [0u8; N];
        if self.derive_into(label, context, &mut out).is_err() {
            unreachable!("N <= 8160 is checked at compile time");
        }
        out
    }

    /// The MN-HA security association of an anycast home address: its
    /// Mobility SPI (never below 256) and 20-byte shared key (RFC 4285).
    #[must_use]
    pub fn mn_ha_sa(&self, hoa: Ipv6Addr) -> (Spi, MnHaKey) {
        let (spi, key) = self.mn_ha_sa_bytes(hoa);
        (spi, MnHaKey::from_array(&key))
    }

    /// [`KeyHierarchy::mn_ha_sa`] with the raw key (secret), for a contact
    /// node that shares it with its backups.
    #[must_use]
    pub fn mn_ha_sa_bytes(&self, hoa: Ipv6Addr) -> (Spi, [u8; MN_HA_KEY_LEN]) {
        let spi = u32::from_be_bytes(self.derive(labels::MN_HA_SPI, &hoa.octets()));
        let spi = if spi < 256 { spi + 256 } else { spi };
        (Spi(spi), self.derive(labels::MN_HA_KEY, &hoa.octets()))
    }

    /// The node-to-node channel's pre-shared key.
    #[must_use]
    pub fn node_channel_psk(&self) -> NodeChannelPsk {
        NodeChannelPsk::from_bytes(self.derive(labels::NODE_CHANNEL_PSK, &[]))
    }

    /// A deterministic Kcn for the correspondent at `correspondent`, for
    /// tests and labs only (a real correspondent draws Kcn at random).
    #[must_use]
    pub fn lab_kcn(&self, correspondent: Ipv6Addr) -> Kcn {
        Kcn::from_bytes(self.derive(labels::LAB_KCN, &correspondent.octets()))
    }
}
