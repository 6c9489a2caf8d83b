//! The anycast group: who its members are and the authenticated, encrypted
//! node-to-node channel between them (DESIGN.md 5: the contact node ships
//! TCP state, the home keygen token and the next BU sequence number to an
//! acceptor over it).
//!
//! - [`member`]: the configured members (name, care-of address, roles,
//!   channel address) and the hello encoding.
//! - [`frame`], [`noise`] (sans-IO): length-prefixed frames bounded before
//!   allocation; a `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` handshake keyed by
//!   the group's node-channel PSK, then per-direction AEAD with implicit
//!   nonces (tampered, truncated, replayed or reordered frames fail).
//! - `channel`, `mesh` (feature `engine`): one connection over tokio
//!   (`Channel`) and the whole group (`Group`: listener, dialer with
//!   reconnect, per-peer counters, events).
//!
//! Messages are opaque octets: the handoff protocol defines their contents.

pub(crate) mod codec;
pub mod error;
pub mod frame;
pub mod member;
pub mod noise;

#[cfg(feature = "engine")]
pub mod channel;
#[cfg(feature = "engine")]
pub mod mesh;
#[cfg(all(test, feature = "engine"))]
mod tests;

pub use codec::CodecError;
pub use error::ChannelError;
pub use frame::{ChannelLimits, MAX_FRAME};
pub use member::{GroupMember, MemberError, MemberInfo, Members, Roles};

#[cfg(feature = "engine")]
pub use channel::{Channel, ChannelConfig, ChannelReader, ChannelWriter};
#[cfg(feature = "engine")]
pub use mesh::{Group, GroupConfig, GroupEvent, GroupSender, PeerStats, SendError};
