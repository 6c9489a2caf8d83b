//! The sequence-checked test service used by handoff tests and scenarios:
//! a TCP stream whose bytes are checked end to end in both directions,
//! running on every member and accepting migrated sockets.
//!
//! - [`pattern`] (sans-IO): the byte pattern per (seed, direction, offset),
//!   the client's header, positions, the server's exportable state.
//! - [`TestService`]: serves accepted sockets ([`TestService::listen`],
//!   [`TestService::serve`]) and restored ones ([`TestService::adopt`]);
//!   [`TestService::detach`] hands a socket back for `tcp_handoff::freeze`,
//!   and its [`tcp_handoff::AppState`] impl ships positions with the
//!   socket. A mismatch or a bad header closes the connection (counted).
//! - [`TestClient`]: sends at `up_rate`, asks for `down_rate`, verifies
//!   every byte, stamps every receive ([`TestClient::longest_gap_within`]
//!   gives the stall of a handoff), reports EOF and resets.

pub mod client;
pub mod pattern;
mod pump;
pub mod server;
#[cfg(test)]
mod tests;

pub use client::{ClientConfig, ClientEnd, ClientReport, Stopped, TestClient};
pub use pattern::{Header, Position, ServerConn};
pub use server::{ServiceStats, TestService, TestSvcError};
