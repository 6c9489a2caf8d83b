//! The tunnel engine's data plane: tables a control plane programs, and
//! the packet loop between the TUN and the marked raw socket.
//!
//! One engine serves every binary: the home agent, the correspondent agent
//! (`mip6-cn`), anycast members and later PIAS proxies. On a kernel without
//! Mobile IPv6 (see [`crate::engine::steer`]) the tc filters redirect
//! packets with next header 43/60/135/41 into the engine's TUN, and policy
//! routing sends local packets that need rewriting there too; the engine
//! sends what it rewrote through the marked [`RawSender`], which skips
//! those rules, and writes what the kernel should deliver or forward into
//! the TUN.
//!
//! - [`tables`]: [`Tables`], binding usage, the steering they need;
//!   [`update`]: the [`TableUpdate`] messages that program them.
//! - [`classify`]: the table decisions (origin, outbound choice, tunnel
//!   acceptance, loop guard, Mobility Header check).
//! - [`process`]: [`Datapath::process`], classify + rewrite in place, no
//!   I/O (what the benchmark measures).
//! - [`icmp`]: ICMPv6 Packet Too Big toward a local sender.
//! - [`member`]: hold / forward / release of a client's packets while its
//!   connections move between members (handoff).
//! - [`proxy`]: the PIAS proxy tables (anycast prefixes, NAT addresses,
//!   proxy peers, ingress flows, NAT bindings); their per-packet work is
//!   in `proxy_path`.
//! - [`stats`]: counters and the serializable [`EngineStats`].
//! - [`engine`] / [`handle`]: the tokio task ([`Engine::start`]) and the
//!   control plane's [`EngineHandle`], [`Punt`]s and [`SendVia`].
//!
//! [`RawSender`]: crate::engine::rawsock::RawSender

pub mod classify;
pub mod engine;
pub mod handle;
pub mod icmp;
pub mod member;
mod output;
pub mod process;
pub mod proxy;
mod proxy_path;
pub mod stats;
pub mod tables;
pub mod update;

pub use classify::TunnelOuter;
pub use engine::{Engine, EngineConfig, EngineExit, EngineIo, RunningEngine};
pub use handle::{EngineError, EngineHandle, MobilityPunt, ProxyPunt, Punt, SendVia};
pub use member::{ClientMode, ClientStatus, HoldLimit, MemberOutput, MemberTable};
pub use process::{Datapath, DatapathConfig, HEADROOM, PuntInfo, Rewrite, Verdict};
pub use proxy::{NatBinding, ProxyEntryKind, ProxyFlow, ProxyTable, ProxyUsage};
pub use stats::{
    Action, BindingStats, Counter, DatapathMode, DropReason, EngineStats, WireErrorKind,
};
pub use tables::{
    BindingKey, BindingUsage, TableError, TableSizes, TableUpdate, Tables, TunnelEnds,
};
