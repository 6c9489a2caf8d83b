//! Sans-IO protocol state machines (layer 3), in the style of quinn-proto.
//!
//! Each machine is a plain struct. Inputs are methods taking
//! `now: std::time::Instant` plus the event: a received packet (bytes or an
//! already parsed [`ParsedMhPacket`](crate::wire::ParsedMhPacket)), a timer
//! (`handle_timeout(now)` when `poll_timeout()` is reached) or an operator
//! command. Outputs are queued [`Action`]s drained with `poll_action()`:
//! fully encoded packets ([`Transmit`], checksum and authenticators filled
//! in, with a [`Route`] hint), machine events the shell maps to engine
//! tables or storage, and [`DropReason`]s (every drop is also counted in the
//! machine's stats). Nothing inside reads a clock, opens a socket or spawns
//! a thread; randomness comes from an injected
//! [`RandomSource`](crate::crypto::RandomSource) and wall-clock values (RFC
//! 4285 timestamps) are passed in as [`NtpTimestamp`](crate::crypto::NtpTimestamp)s.
//!
//! | module | machine | RFC |
//! |---|---|---|
//! | [`correspondent`] | [`Correspondent`]: RR responder, BU checks, binding cache, BA/BRR/BE | RFC 6275 9 |
//! | [`mobile`] | [`MobileNode`]: binding update list, RR initiator, handoff export/import | RFC 6275 11 |
//! | [`mobile`] | [`HomeRegistration`]: home registration client | RFC 6275 11.7.1, RFC 4285 |
//! | [`home_agent`] | [`HomeAgent`]: registration table, tunnel and persistence events | RFC 6275 10.3, RFC 4285 |
//! | [`handoff`] | [`Coordinator`]: client handoff between anycast members (donor and acceptor sides, policies, drain) | DESIGN.md 5 |
//! | [`failover`] | [`Failover`](failover::Failover): heartbeats, contact-node state replication, takeover | seed 004 4.2.1 |
//! | [`sim`] | in-memory network with delay, loss, duplication, reordering | tests |

mod common;
pub mod correspondent;
pub mod failover;
pub mod handoff;
pub mod home_agent;
pub mod mobile;
pub mod sim;
mod stats;

pub use common::{
    Action, Arrival, Backoff, INITIAL_BINDACK_TIMEOUT, MAX_BINDACK_TIMEOUT, RateLimiter,
    RetransmitConfig, Route, Transmit, seq_newer,
};
pub use correspondent::{
    BindingEvent, Correspondent, CorrespondentConfig, CorrespondentStats, RemoveReason,
};
pub use handoff::{Coordinator, CoordinatorConfig, HandoffMsg, MemberId, MemberInfo, Policy};
pub use home_agent::{
    HaEvent, HomeAgent, HomeAgentConfig, HomeAgentStats, PersistEvent, Prefix, Registration,
    RegistrationRecord, TunnelEvent,
};
pub use mobile::{
    CorrespondentState, ExportedToken, FailReason, HomeRegEvent, HomeRegistration,
    HomeRegistrationConfig, HomeTestMode, MobileConfig, MobileEvent, MobileNode, MobileStats,
};
pub use stats::{DropCounts, DropReason};
