//! The coordinators' control messages (carried by the node channel, which
//! authenticates and encrypts them: the home keygen token is a secret).
//! The TCP state itself travels beside them (the channel's `Transfer` and
//! `Late` messages), handled by the shells.

use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use super::policy::Policy;
use super::types::LoadReport;
use crate::proto::mobile::{CorrespondentState, ExportedToken};

/// Why an acceptor refused a Prepare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not configured to take clients.
    NotAcceptor,
    /// At its client limit or handoff limit.
    Full,
    /// Already moving or serving this client.
    Busy,
    /// The state is for another home address.
    WrongHomeAddress,
    /// Draining: handing its own clients away.
    Draining,
}

/// Why a handoff was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    /// The acceptor refused.
    Rejected(RejectReason),
    /// No answer to Prepare in time.
    PrepareTimeout,
    /// The donor could not freeze the connections.
    FreezeFailed,
    /// The state transfer did not arrive in time.
    TransferTimeout,
    /// The acceptor could not restore the connections.
    RestoreFailed,
    /// The acceptor could not activate them.
    ActivateFailed,
    /// The client did not bind to the acceptor in time.
    BindTimeout,
    /// The client refused the acceptor's Binding Update.
    BindingFailed,
    /// The donor cancelled.
    Cancelled,
    /// The other member stopped answering (channel down or no answer to a
    /// cancel).
    PeerDead,
}

/// A control message between coordinators. `id` is the donor's handoff
/// number: the donor is the sender of Prepare/Cancel/Done and the
/// receiver of the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum HandoffMsg {
    /// Donor -> acceptor: take `client`. Carries the client's Binding
    /// Update state (next sequence number, a home keygen token if still
    /// valid) so the acceptor starts its care-of test at once, in
    /// parallel with the freeze and state transfer.
    Prepare {
        /// Handoff number.
        id: u64,
        /// The client.
        client: Ipv6Addr,
        /// Its state (home address, token, next sequence number).
        state: CorrespondentState,
        /// Connections that will follow.
        connections: u32,
    },
    /// Acceptor -> donor: ready (its datapath holds the client's packets).
    Accept {
        /// Handoff number.
        id: u64,
    },
    /// Acceptor -> donor: refused (nothing changed at the acceptor).
    Reject {
        /// Handoff number.
        id: u64,
        /// Why.
        reason: RejectReason,
    },
    /// Acceptor -> donor: the connections are restored (paused).
    Restored {
        /// Handoff number.
        id: u64,
    },
    /// Acceptor -> donor: the client bound X to the acceptor and the
    /// connections are live there: the donor closes its frozen sockets.
    /// The acceptor decides this (commit point); it repeats it until Done.
    Bound {
        /// Handoff number.
        id: u64,
        /// The sequence number the client accepted.
        sequence: u16,
    },
    /// Donor -> acceptor: frozen sockets closed, late segments sent.
    Done {
        /// Handoff number.
        id: u64,
    },
    /// Donor -> acceptor: give up if not yet live (answered with Aborted,
    /// or Bound if already live).
    Cancel {
        /// Handoff number.
        id: u64,
    },
    /// Acceptor -> donor: gave up; the donor rolls back. Anything that
    /// still reaches the acceptor is forwarded back to the donor.
    Aborted {
        /// Handoff number.
        id: u64,
        /// The acceptor's next sequence number for the client, if it had
        /// one (so the donor's next Binding Update is newer).
        next_sequence: Option<u16>,
        /// Why.
        reason: AbortReason,
    },
    /// Member -> contact node: a home keygen token for `client` is needed.
    TokenRequest {
        /// The client.
        client: Ipv6Addr,
    },
    /// Contact node (or donor) -> member: a home keygen token.
    Token {
        /// The client.
        client: Ipv6Addr,
        /// The token with its age.
        token: ExportedToken,
    },
    /// Acceptor -> contact node: `client` now lives at the sender (so the
    /// contact node can recover it if the sender dies).
    Placed {
        /// The client.
        client: Ipv6Addr,
        /// The sequence number the client accepted.
        sequence: u16,
    },
    /// Operator -> member: hand all your clients to others.
    Drain {
        /// How to choose the acceptors.
        policy: Policy,
    },
    /// A member's load, for the policies.
    Load(LoadReport),
}

impl HandoffMsg {
    /// A short name for logs.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            HandoffMsg::Prepare { .. } => "prepare",
            HandoffMsg::Accept { .. } => "accept",
            HandoffMsg::Reject { .. } => "reject",
            HandoffMsg::Restored { .. } => "restored",
            HandoffMsg::Bound { .. } => "bound",
            HandoffMsg::Done { .. } => "done",
            HandoffMsg::Cancel { .. } => "cancel",
            HandoffMsg::Aborted { .. } => "aborted",
            HandoffMsg::TokenRequest { .. } => "token_request",
            HandoffMsg::Token { .. } => "token",
            HandoffMsg::Placed { .. } => "placed",
            HandoffMsg::Drain { .. } => "drain",
            HandoffMsg::Load(_) => "load",
        }
    }
}
