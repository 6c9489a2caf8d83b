//! Crypto (layer 2): RFC 6275 Return Routability keys and tokens, the
//! correspondent's nonce table, RFC 4285 MN-HA home-registration
//! authentication with timestamp replay protection, and the HKDF key
//! hierarchy of an anycast group.
//!
//! | file | what |
//! |---|---|
//! | `rr.rs` | Kcn, nonces, keygen tokens, Kbm, BU authenticator (RFC 6275 5.2.5, 6.2.7) |
//! | `nonce_table.rs` | sans-IO nonce and Kcn rotation (RFC 6275 5.2.7) |
//! | `token_cache.rs` | bounded cache of keygen tokens for fast BU checks |
//! | `binding_auth.rs` | the correspondent's full Binding Update check (RFC 6275 9.5.1) |
//! | `mnha.rs` | MN-HA authentication option, SPI key store (RFC 4285 5.1) |
//! | `replay.rs` | NTP timestamps and the replay window (RFC 4285 6) |
//! | `keys.rs` | HKDF-SHA256 group key hierarchy (RFC 5869) |
//! | `random.rs` | injected randomness (OS CSPRNG or deterministic) |
//! | `ct.rs` | constant-time compare, HMAC-SHA1/SHA-1 helpers |
//!
//! The API takes byte slices and [`std::net::Ipv6Addr`]s; it does not depend
//! on the wire formats. Nothing reads a clock or does I/O: times come in as
//! `now` arguments.

mod binding_auth;
mod ct;
mod keys;
mod mnha;
mod nonce_table;
mod random;
mod replay;
mod rr;
mod token_cache;
mod types;

pub use binding_auth::{
    BindingAuthError, BindingAuthInput, STATUS_EXPIRED_CARE_OF_NONCE_INDEX,
    STATUS_EXPIRED_HOME_NONCE_INDEX, STATUS_EXPIRED_NONCES, verify_binding_update,
    verify_binding_update_cached,
};
pub use ct::{ct_eq, hmac_sha1};
pub use keys::{
    GroupSecret, HIERARCHY_SALT, INFO_PREFIX, KeyError, KeyHierarchy, MAX_GROUP_SECRET_LEN,
    MAX_HKDF_OUTPUT, MIN_GROUP_SECRET_LEN, MN_HA_KEY_LEN, NodeChannelPsk, hkdf_sha256, labels,
};
pub use mnha::{
    MAX_MN_HA_KEY_LEN, MnHaError, MnHaKey, MnHaKeyStore, STATUS_MIPV6_AUTH_FAIL,
    STATUS_MIPV6_ID_MISMATCH, STATUS_MIPV6_MESG_ID_REQD, Spi, mn_ha_authenticator, verify_mn_ha,
};
pub use nonce_table::{
    DEFAULT_NONCE_INTERVAL, MAX_NONCE_INTERVAL, MAX_NONCE_LIFETIME, MAX_RR_BINDING_LIFETIME,
    MAX_TOKEN_LIFETIME, MIN_NONCE_INTERVAL, NonceConfig, NonceEntry, NonceError, NonceTable,
};
pub use random::{DeterministicRandom, RandomError, RandomSource, SystemRandomSource};
pub use replay::{
    DEFAULT_REPLAY_WINDOW, NTP_UNIX_OFFSET_SECS, NtpTimestamp, ReplayConfig, ReplayError,
    ReplayGuard,
};
pub use rr::{
    AuthError, Authenticator, Cookie, Kbm, Kcn, KeygenToken, Nonce, NonceIndex, TokenKind,
    bu_authenticator, care_of_keygen_token, home_keygen_token, kbm, keygen_token,
    verify_bu_authenticator,
};
pub use token_cache::KeygenTokenCache;
pub use types::LengthError;
