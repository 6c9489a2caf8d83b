//! The sequence-checked test service used by handoff tests and scenarios:
//! a TCP stream whose bytes are checked end to end in both directions,
//! running on every member and accepting migrated sockets.
//!
//! - [`pattern`] (sans-IO, also without the `engine` feature): the byte
//!   pattern per (seed, direction, offset), the client's header, positions,
//!   the server's exportable state.
//! - `TestService` (`engine`): serves accepted sockets (`listen`, `serve`)
//!   and restored ones (`adopt`); `detach` hands a socket back for
//!   `tcp_handoff::freeze`, and its `tcp_handoff::AppState` impl ships the
//!   positions with the socket. A mismatch or a bad header closes the
//!   connection (counted).
//! - `TestClient` (`engine`): sends at `up_rate`, asks for `down_rate`,
//!   verifies every byte, stamps every receive (`longest_gap_within` gives
//!   the stall of a handoff), reports EOF and resets.

#[cfg(feature = "engine")]
pub mod client;
pub mod pattern;
#[cfg(feature = "engine")]
mod pump;
#[cfg(feature = "engine")]
pub mod server;
#[cfg(all(test, feature = "engine"))]
mod tests;

pub use pattern::{Header, Position, ServerConn};

#[cfg(feature = "engine")]
pub use client::{ClientConfig, ClientEnd, ClientReport, Stopped, TestClient};
#[cfg(feature = "engine")]
pub use server::{ServiceStats, TestService, TestSvcError};
