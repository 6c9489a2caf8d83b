//! Names and plain data of the handoff coordinator: members and their
//! roles, handoff keys, engine changes, load reports, configuration, the
//! actions it asks for and the shell's reports back.

use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::msg::{AbortReason, HandoffMsg, RejectReason};

/// Longest member name.
pub const MAX_MEMBER_NAME: usize = 64;

/// A member's name as configured (1..=64 printable ASCII characters,
/// no spaces). Names order the members (e.g. who dials whom on the node
/// channel) and identify them in messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MemberId(String);

/// A name that is not a valid [`MemberId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("member name must be 1..={MAX_MEMBER_NAME} printable ASCII characters without spaces")]
pub struct BadMemberName;

impl MemberId {
    /// Checks and wraps a name.
    pub fn new(name: impl Into<String>) -> Result<Self, BadMemberName> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= MAX_MEMBER_NAME
            && name.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(name))
        } else {
            Err(BadMemberName)
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MemberId {
    type Error = BadMemberName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<MemberId> for String {
    fn from(m: MemberId) -> Self {
        m.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for MemberId {
    type Err = BadMemberName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// What a member may do (from configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Roles {
    /// Registered at the home agent for X: runs the home tests.
    #[serde(default)]
    pub contact: bool,
    /// Holds the home registration key to take over X.
    #[serde(default)]
    pub backup: bool,
    /// Takes clients handed to it.
    #[serde(default)]
    pub acceptor: bool,
}

/// A member as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its name.
    pub name: MemberId,
    /// Its unicast care-of address (outer address of forwarded packets,
    /// the node channel's address).
    pub coa: Ipv6Addr,
    /// Its roles.
    pub roles: Roles,
}

/// Names one handoff: the donor and its handoff number. The donor draws
/// the numbers from a random start, so a restarted donor does not reuse
/// the keys of its previous run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HandoffKey {
    /// The member handing the client off.
    pub donor: MemberId,
    /// Its number for this handoff.
    pub id: u64,
}

impl fmt::Display for HandoffKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:x}", self.donor, self.id)
    }
}

/// Bounds of an acceptor's hold queue for one client (see the engine's
/// member forwarding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HoldBounds {
    /// Most packets.
    pub packets: u32,
    /// Most octets.
    pub bytes: u32,
}

impl Default for HoldBounds {
    fn default() -> Self {
        Self {
            packets: 4096,
            bytes: 8 << 20,
        }
    }
}

/// A change to this member's datapath (the shell maps it to the engine's
/// table updates and applies the changes of one action in order, before
/// executing the next action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum EngineChange {
    /// Accept client packets tunnelled from this member's care-of address
    /// (issued once per other member when the coordinator is created).
    AddGroupMember {
        /// The member's care-of address.
        coa: Ipv6Addr,
    },
    /// Queue the packets of `client` to `hoa` (never to the kernel).
    Hold {
        /// X.
        hoa: Ipv6Addr,
        /// The client.
        client: Ipv6Addr,
        /// Queue bounds.
        bounds: HoldBounds,
    },
    /// Forward them to `member`, encapsulated from `local`; what is queued
    /// goes first.
    Forward {
        /// X.
        hoa: Ipv6Addr,
        /// The client.
        client: Ipv6Addr,
        /// This member's care-of address.
        local: Ipv6Addr,
        /// The other member's care-of address.
        member: Ipv6Addr,
    },
    /// Release the queue into the kernel in order and deliver from now on
    /// (accepting packets members still forward).
    Release {
        /// X.
        hoa: Ipv6Addr,
        /// The client.
        client: Ipv6Addr,
    },
    /// Remove the client's entry.
    Remove {
        /// X.
        hoa: Ipv6Addr,
        /// The client.
        client: Ipv6Addr,
    },
    /// Route-optimized sending X -> client from `coa` (RFC 6275 11.3.1).
    AddHomeAddressBinding {
        /// X.
        hoa: Ipv6Addr,
        /// The client.
        peer: Ipv6Addr,
        /// This member's care-of address.
        coa: Ipv6Addr,
    },
    /// Stop route-optimized sending to the client.
    RemoveHomeAddressBinding {
        /// X.
        hoa: Ipv6Addr,
        /// The client.
        peer: Ipv6Addr,
    },
}

/// A member's load as it reports it to the others (for policies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// TCP connections it serves.
    pub connections: u32,
    /// Clients it serves.
    pub clients: u32,
    /// Measured round-trip times to clients, microseconds (at most
    /// [`LoadReport::MAX_RTTS`] entries; more are ignored).
    #[serde(default)]
    pub rtt_us: Vec<(Ipv6Addr, u32)>,
}

impl LoadReport {
    /// Most RTT entries taken from one report.
    pub const MAX_RTTS: usize = 512;

    /// The reported RTT to `client`, if any.
    #[must_use]
    pub fn rtt_to(&self, client: Ipv6Addr) -> Option<u32> {
        self.rtt_us
            .iter()
            .take(Self::MAX_RTTS)
            .find(|(c, _)| *c == client)
            .map(|(_, r)| *r)
    }
}

/// Timers and bounds of a [`Coordinator`](super::Coordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// This member.
    pub me: MemberInfo,
    /// The anycast home address X.
    pub hoa: Ipv6Addr,
    /// The member that runs home tests (registered at the home agent).
    pub contact: MemberId,
    /// Retransmission interval of unanswered channel messages.
    pub retransmit: Duration,
    /// Donor: how long a Prepare may stay unanswered before it gives up.
    pub prepare_timeout: Duration,
    /// Acceptor: Accept -> the state transfer arrives.
    pub transfer_timeout: Duration,
    /// Donor: freeze -> the acceptor's Bound; acceptor: Accept -> live.
    pub bind_timeout: Duration,
    /// Donor: Cancel -> the acceptor's answer; then it rolls back alone
    /// (the acceptor is presumed dead).
    pub abort_timeout: Duration,
    /// Acceptor: how long it repeats Bound until the donor's Done.
    pub done_timeout: Duration,
    /// How long forwarding entries stay after a handoff ended (packets
    /// still in flight to the old member).
    pub forward_linger: Duration,
    /// Bounds of the acceptor's hold queue per client.
    pub hold: HoldBounds,
    /// Most handoffs in progress at once (as donor and as acceptor).
    pub max_concurrent: usize,
    /// Most clients this member serves (acceptor refuses beyond).
    pub max_clients: usize,
    /// How often a missing home keygen token is asked of the contact node.
    pub token_retry: Duration,
    /// Finished handoffs remembered to answer late messages.
    pub remember: usize,
}

impl CoordinatorConfig {
    /// Defaults for member `me` of the group with home address `hoa`
    /// whose contact node is `contact`.
    #[must_use]
    pub fn new(me: MemberInfo, hoa: Ipv6Addr, contact: MemberId) -> Self {
        Self {
            me,
            hoa,
            contact,
            retransmit: Duration::from_millis(500),
            prepare_timeout: Duration::from_secs(3),
            transfer_timeout: Duration::from_secs(5),
            bind_timeout: Duration::from_secs(10),
            abort_timeout: Duration::from_secs(5),
            done_timeout: Duration::from_secs(10),
            forward_linger: Duration::from_secs(5),
            hold: HoldBounds::default(),
            max_concurrent: 32,
            max_clients: 1 << 20,
            token_retry: Duration::from_secs(1),
            remember: 1024,
        }
    }
}

/// What the coordinator asks its shell to do. Actions are executed in
/// order; results of the long ones come back as [`ShellEvent`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a control message to a member over the node channel.
    Send {
        /// The member.
        to: MemberId,
        /// The message.
        msg: HandoffMsg,
    },
    /// Change the datapath (before the next action runs).
    Engine(EngineChange),
    /// Donor: stop the services' use of the client's connections, freeze
    /// them (`tcp_handoff::freeze`), dump them with the application
    /// state, and send the bundle (node channel `Transfer` for `key`) to
    /// `to`. Report [`ShellEvent::Frozen`] or [`ShellEvent::FreezeFailed`]
    /// (after thawing whatever was frozen).
    Freeze {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
        /// The acceptor.
        to: MemberId,
    },
    /// Donor rolling back: thaw the frozen connections and give them back
    /// to their services; report [`ShellEvent::Thawed`].
    Thaw {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
    },
    /// Donor committed: close the frozen connections without FIN or RST
    /// (`Frozen::close_silently`) and send what they captured (node
    /// channel `Late`) to `to`; report [`ShellEvent::Closed`].
    CloseFrozen {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
        /// The acceptor.
        to: MemberId,
    },
    /// Acceptor: restore the transferred connections paused
    /// (`tcp_handoff::restore_paused`, bound to X); report
    /// [`ShellEvent::Restored`] or [`ShellEvent::RestoreFailed`].
    Restore {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
    },
    /// Acceptor: the client is bound here; activate the paused
    /// connections and hand them to the services with their application
    /// state (replay the late segments when they come); report
    /// [`ShellEvent::Activated`] or [`ShellEvent::ActivateFailed`].
    Activate {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
    },
    /// Acceptor: forget the transfer of `key` and close any paused
    /// connections silently (aborted).
    Discard {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
    },
    /// Something to log or count.
    Event(HandoffEvent),
}

/// What the shell reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// Donor: frozen, dumped and sent.
    Frozen {
        /// The handoff.
        key: HandoffKey,
        /// Connections in the bundle.
        connections: u32,
    },
    /// Donor: freezing failed (nothing stays frozen).
    FreezeFailed {
        /// The handoff.
        key: HandoffKey,
    },
    /// Donor: thawed, the connections are live here again.
    Thawed {
        /// The handoff.
        key: HandoffKey,
    },
    /// Donor: the frozen connections are closed.
    Closed {
        /// The handoff.
        key: HandoffKey,
    },
    /// Acceptor: a state bundle arrived over the channel (and is kept by
    /// the shell until [`Action::Restore`] or [`Action::Discard`]).
    Transfer {
        /// The handoff.
        key: HandoffKey,
        /// Its client.
        client: Ipv6Addr,
        /// Connections in it.
        connections: u32,
    },
    /// Acceptor: restored, paused.
    Restored {
        /// The handoff.
        key: HandoffKey,
    },
    /// Acceptor: restoring failed.
    RestoreFailed {
        /// The handoff.
        key: HandoffKey,
    },
    /// Acceptor: live.
    Activated {
        /// The handoff.
        key: HandoffKey,
    },
    /// Acceptor: activation failed.
    ActivateFailed {
        /// The handoff.
        key: HandoffKey,
    },
}

/// Notable outcomes, for logs, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffEvent {
    /// Donor: a handoff started.
    Started {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
        /// The acceptor.
        to: MemberId,
    },
    /// Donor: completed; the client's connections live at `to`.
    Completed {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
        /// The acceptor.
        to: MemberId,
        /// Start -> Bound received.
        elapsed: Duration,
        /// The sequence number the client accepted.
        sequence: u16,
    },
    /// Donor: rolled back; the client stays here.
    RolledBack {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
        /// The acceptor that did not take it.
        to: MemberId,
        /// Why.
        reason: AbortReason,
    },
    /// Acceptor: took a client over (connections live here).
    Accepted {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
        /// Connections restored.
        connections: u32,
    },
    /// Acceptor: refused a Prepare.
    Refused {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
        /// Why.
        reason: RejectReason,
    },
    /// Acceptor: gave a handoff up (the donor rolls back).
    AcceptAborted {
        /// The handoff.
        key: HandoffKey,
        /// The client.
        client: Ipv6Addr,
        /// Why.
        reason: AbortReason,
    },
    /// Contact node: a member died; its clients' bindings were deleted so
    /// they fall back to the home path (their connections at that member
    /// are lost).
    ClientsRecovered {
        /// The dead member.
        member: MemberId,
        /// The clients.
        clients: Vec<Ipv6Addr>,
    },
    /// A drain ended.
    DrainDone {
        /// Clients handed off.
        handed: usize,
        /// Clients that stayed (no candidate, or the handoff failed).
        failed: usize,
    },
}

/// Why an operator command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No such member.
    #[error("unknown member {0}")]
    UnknownMember(MemberId),
    /// The member is not reachable now.
    #[error("member {0} is down")]
    MemberDown(MemberId),
    /// The member does not take clients.
    #[error("member {0} is not an acceptor")]
    NotAcceptor(MemberId),
    /// A member cannot hand a client to itself.
    #[error("cannot hand a client to ourselves")]
    ToSelf,
    /// This member does not serve the client.
    #[error("client {0} is not served here")]
    NotServing(Ipv6Addr),
    /// The client is already moving.
    #[error("client {0} is already being handed off")]
    Busy(Ipv6Addr),
    /// Too many handoffs in progress.
    #[error("too many handoffs in progress")]
    TooMany,
    /// The policy found no member to take the client.
    #[error("no member can take the client")]
    NoCandidate,
}

/// Counters of a [`Coordinator`](super::Coordinator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CoordinatorStats {
    /// Handoffs started as donor.
    pub started: u64,
    /// Completed as donor.
    pub completed: u64,
    /// Rolled back as donor.
    pub rolled_back: u64,
    /// Taken over as acceptor.
    pub accepted: u64,
    /// Refused as acceptor.
    pub refused: u64,
    /// Aborted as acceptor.
    pub accept_aborted: u64,
    /// Channel messages ignored, all reasons ([`MsgDrop`]).
    pub ignored_messages: u64,
    /// ... of them from a name that is no configured member.
    pub unknown_member: u64,
    /// ... of them about a handoff this member does not know (forged,
    /// or a replay after it was forgotten).
    pub unknown_handoff: u64,
    /// ... of them not expected in the handoff's current phase
    /// (duplicates, reordering).
    pub out_of_order: u64,
    /// ... of them only the contact node (or a donor) may send or receive.
    pub wrong_role: u64,
    /// ... of them refused because a table was full.
    pub full: u64,
    /// Frames that did not decode.
    pub malformed: u64,
    /// Home keygen tokens relayed (contact node).
    pub tokens_relayed: u64,
    /// Clients recovered after a member died (contact node).
    pub recovered: u64,
}

/// Why a channel message was dropped (counted in [`CoordinatorStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropWhy {
    /// The sender is no configured member.
    UnknownMember,
    /// No such handoff here.
    UnknownHandoff,
    /// Not expected in the handoff's current phase.
    OutOfOrder,
    /// Wrong role (e.g. a token request to a member that is not the
    /// contact node, a drain order from another member).
    WrongRole,
    /// A bounded table is full.
    Full,
}

/// A dropped channel message: the typed result of
/// [`Coordinator::handle_message`](super::Coordinator::handle_message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgDrop {
    /// Dropped for `why`.
    #[error("{kind} from {from} dropped: {why:?}")]
    Ignored {
        /// The sender as the channel named it.
        from: MemberId,
        /// The message kind.
        kind: &'static str,
        /// Why.
        why: DropWhy,
    },
    /// The frame did not decode.
    #[error("malformed frame from {from}: {error}")]
    Malformed {
        /// The sender.
        from: MemberId,
        /// The decode error.
        error: super::codec::MsgError,
    },
}

/// The engine's table update for a datapath change: one to one (the
/// shell applies it with `EngineHandle::update`).
#[cfg(feature = "engine")]
impl From<EngineChange> for crate::engine::datapath::TableUpdate {
    fn from(c: EngineChange) -> Self {
        use crate::engine::datapath::{HoldLimit, TableUpdate};
        match c {
            EngineChange::AddGroupMember { coa } => TableUpdate::AddGroupMember { coa },
            EngineChange::Hold {
                hoa,
                client,
                bounds,
            } => TableUpdate::HoldClient {
                hoa,
                client,
                limit: HoldLimit {
                    packets: bounds.packets,
                    bytes: bounds.bytes,
                },
            },
            EngineChange::Forward {
                hoa,
                client,
                local,
                member,
            } => TableUpdate::ForwardClient {
                hoa,
                client,
                local,
                member,
            },
            EngineChange::Release { hoa, client } => TableUpdate::ReleaseClient { hoa, client },
            EngineChange::Remove { hoa, client } => TableUpdate::RemoveClient { hoa, client },
            EngineChange::AddHomeAddressBinding { hoa, peer, coa } => {
                TableUpdate::AddHomeAddressBinding { hoa, peer, coa }
            }
            EngineChange::RemoveHomeAddressBinding { hoa, peer } => {
                TableUpdate::RemoveHomeAddressBinding { hoa, peer }
            }
        }
    }
}

#[cfg(all(test, feature = "engine"))]
mod tests {
    use super::*;
    use crate::engine::datapath::{ClientMode, Datapath, DatapathConfig, TableUpdate};

    /// The coordinator's changes program the engine's member table as the
    /// handoff needs: hold, forward, release, remove.
    #[test]
    fn engine_changes_map_onto_table_updates() {
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let client: Ipv6Addr = "2001:db8:3::10".parse().unwrap();
        let (local, member): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8:2::100".parse().unwrap(),
            "2001:db8:4::100".parse().unwrap(),
        );
        let hold = TableUpdate::from(EngineChange::Hold {
            hoa,
            client,
            bounds: HoldBounds {
                packets: 3,
                bytes: 900,
            },
        });
        assert!(
            matches!(hold, TableUpdate::HoldClient { limit, .. } if limit.packets == 3 && limit.bytes == 900)
        );
        let mut dp = Datapath::new(DatapathConfig::default());
        for (change, mode) in [
            (EngineChange::AddGroupMember { coa: member }, None),
            (
                EngineChange::Hold {
                    hoa,
                    client,
                    bounds: HoldBounds::default(),
                },
                Some(ClientMode::Hold),
            ),
            (
                EngineChange::Forward {
                    hoa,
                    client,
                    local,
                    member,
                },
                None,
            ),
            (
                EngineChange::Release { hoa, client },
                Some(ClientMode::Deliver),
            ),
        ] {
            let forward = matches!(change, EngineChange::Forward { .. });
            dp.apply(&TableUpdate::from(change)).unwrap();
            let now = dp.members().mode(&hoa, &client);
            if forward {
                assert!(
                    matches!(now, Some(ClientMode::Forward(ends)) if ends.local == local && ends.remote == member),
                    "{now:?}"
                );
            } else if mode.is_some() {
                assert_eq!(now, mode);
            }
        }
        dp.apply(&TableUpdate::from(EngineChange::Remove { hoa, client }))
            .unwrap();
        assert_eq!(dp.members().mode(&hoa, &client), None);
    }
}
