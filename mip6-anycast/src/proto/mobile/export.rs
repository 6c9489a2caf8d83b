//! Correspondent state that moves between anycast members (DESIGN.md 5):
//! the contact node fetches the home keygen token and hands it, with the
//! next Binding Update sequence number, to the acceptor that sends the BU
//! from its own care-of address. Serializable for the node channel (which
//! is encrypted: the token is a secret).

use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A home keygen token with its nonce index and age. The age (not an
/// instant) travels, so the receiver's clock need not agree with ours.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedToken {
    /// The 64-bit home keygen token (secret).
    pub token: [u8; 8],
    /// Its home nonce index.
    pub nonce_index: u16,
    /// Time since the HoT was received.
    pub age: Duration,
}

impl fmt::Debug for ExportedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportedToken")
            .field("token", &"<redacted>")
            .field("nonce_index", &self.nonce_index)
            .field("age", &self.age)
            .finish()
    }
}

/// What a member needs to continue the bindings of one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrespondentState {
    /// The anycast home address.
    pub hoa: Ipv6Addr,
    /// The client (correspondent node).
    pub cn: Ipv6Addr,
    /// A home keygen token still valid when exported, if any.
    pub home_token: Option<ExportedToken>,
    /// The next Binding Update sequence number to use for this client.
    pub next_sequence: u16,
}
