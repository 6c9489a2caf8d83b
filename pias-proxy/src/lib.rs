//! PIAS, the proxy IP anycast service (seeds 001 section 3, 002, 003): the
//! sans-IO core of a proxy that is at once ingress (IAP), rendezvous (RAP)
//! and join (JAP) anycast proxy, its wire format, and proxy liveness over
//! SWIM (`foca`).
//!
//! Layers, as in `mip6-anycast`:
//! - [`wire`]: zero-copy views and `Repr`s of the control messages.
//! - [`group`], [`ring`], [`select`], [`auth`]: groups as transport addresses
//!   and their assignment, RAP choice by consistent hashing, selection
//!   policies, join credentials.
//! - [`jap`], [`rap`], [`iap`], [`proxy`]: the roles and the machine that joins
//!   them, fed `(now, event)`, returning [`proxy::Action`]s.
//! - [`membership`]: foca's SWIM driven sans-IO, yielding proxy up/down.
//! - [`peer_auth`]: the inter-proxy key: every peer and SWIM datagram
//!   sealed (ChaCha20-Poly1305), with replay windows.
//! - [`nat`]: packet rewriting and RFC 2473 tunnelling on `mip6_anycast::wire::edit`.

pub mod auth;
pub mod daemon;
pub mod group;
pub mod iap;
pub mod jap;
pub mod membership;
pub mod nat;
pub mod peer_auth;
pub mod proxy;
pub mod rap;
pub mod ring;
pub mod select;
pub mod wire;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;
