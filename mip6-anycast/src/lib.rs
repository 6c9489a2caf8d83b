//! # mip6-anycast
//!
//! Anycast for IPv6 services over Mobile IPv6 route optimization (RFC 6275),
//! after "Versatile anycast" (seed 004) and PIAS (seeds 001-003).
//!
//! The crate is layered the same way as every crate in this workspace:
//!
//! 1. [`wire`]: zero-copy, bounds-checked views over packet bytes plus plain
//!    `Repr` structs with `parse`/`emit` (smoltcp style).
//! 2. [`crypto`]: RFC 6275 Return Routability keys and tokens, RFC 4285
//!    home-registration authentication, and the HKDF key hierarchy of a group.
//! 3. [`proto`]: sans-IO protocol state machines fed with `(now, event)` that
//!    return actions (quinn-proto style). No sockets, no clocks inside.
//! 4. `engine` (feature `engine`): the user-space data plane (TUN, raw
//!    sockets, netlink) that the control planes program through tables.
//! 5. `daemon` (feature `engine`): the shell of the daemons (config, control
//!    socket, logs, signals, the loop driving the machines).
//!
//! See `ARCHITECTURE.md` at the repository root for the full map.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod crypto;
pub mod group;
pub mod inspect;
pub mod proto;
pub mod wire;

#[cfg(feature = "engine")]
pub mod engine;

#[cfg(feature = "engine")]
pub mod daemon;

#[cfg(feature = "engine")]
pub mod cn;

#[cfg(feature = "engine")]
pub mod xfrm;

pub mod testsvc;
