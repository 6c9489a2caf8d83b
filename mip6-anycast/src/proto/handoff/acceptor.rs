//! The acceptor side: hold and register on Prepare, restore on Transfer,
//! go live when both the restored connections and the client's binding
//! exist (the commit point), repeat Bound until Done; abort by
//! forwarding everything back to the donor.

use std::net::Ipv6Addr;
use std::time::Instant;

use super::msg::{AbortReason, HandoffMsg, RejectReason};
use super::types::{Action, DropWhy, EngineChange, HandoffEvent, HandoffKey, MemberId};
use super::{Coordinator, Outcome};
use crate::proto::mobile::{CorrespondentState, MobileNode};

/// Where an acceptance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Accepted; waiting for the state transfer.
    WaitTransfer { deadline: Instant },
    /// Restore issued.
    Restoring,
    /// Restored (paused); waiting for the client's binding.
    Ready,
    /// Activate issued.
    Activating,
    /// Live; Bound sent, repeated until Done.
    Committed {
        retry: Instant,
        deadline: Instant,
        sequence: u16,
    },
}

/// One client being taken over.
#[derive(Debug, Clone)]
pub(super) struct Acceptance {
    pub(super) key: HandoffKey,
    pub(super) client: Ipv6Addr,
    donor_coa: Ipv6Addr,
    pub(super) phase: Phase,
    connections: u32,
    /// The sequence number of the client's acknowledgment, once bound.
    bound: Option<u16>,
    bind_deadline: Instant,
    pub(super) donor_dead: bool,
}

impl Acceptance {
    pub(super) fn next_timer(&self) -> Option<Instant> {
        match self.phase {
            Phase::WaitTransfer { deadline } => Some(deadline.min(self.bind_deadline)),
            Phase::Ready => Some(self.bind_deadline),
            Phase::Committed {
                retry, deadline, ..
            } => Some(retry.min(deadline)),
            Phase::Restoring | Phase::Activating => None,
        }
    }

    fn has_transfer(&self) -> bool {
        !matches!(self.phase, Phase::WaitTransfer { .. })
    }
}

impl Coordinator {
    fn acceptance_keyed(&self, key: &HandoffKey) -> Option<Ipv6Addr> {
        self.acceptances
            .values()
            .find(|a| &a.key == key)
            .map(|a| a.client)
    }

    /// Answers a repeated message about a finished handoff.
    fn repeat_outcome(&mut self, to: &MemberId, id: u64, o: Outcome) {
        match o {
            Outcome::Committed(sequence) => self.send(to, HandoffMsg::Bound { id, sequence }),
            Outcome::Aborted(next_sequence, reason) => self.send(
                to,
                HandoffMsg::Aborted {
                    id,
                    next_sequence,
                    reason,
                },
            ),
            Outcome::Completed | Outcome::RolledBack => {}
        }
    }

    fn refuse(&mut self, from: &MemberId, key: HandoffKey, client: Ipv6Addr, reason: RejectReason) {
        self.send(from, HandoffMsg::Reject { id: key.id, reason });
        self.stats.refused += 1;
        self.event(HandoffEvent::Refused {
            key,
            client,
            reason,
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_prepare(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &MemberId,
        id: u64,
        client: Ipv6Addr,
        state: CorrespondentState,
        connections: u32,
    ) {
        let key = HandoffKey {
            donor: from.clone(),
            id,
        };
        if let Some(a) = self.acceptances.get(&client) {
            if a.key == key {
                // A repeated Prepare: repeat the answer.
                match a.phase {
                    Phase::Committed { sequence, .. } => {
                        self.send(from, HandoffMsg::Bound { id, sequence });
                    }
                    _ => self.send(from, HandoffMsg::Accept { id }),
                }
                return;
            }
            return self.refuse(from, key, client, RejectReason::Busy);
        }
        if let Some(o) = self.outcome(&key) {
            return self.repeat_outcome(from, id, o);
        }
        let reason = if !self.cfg.me.roles.acceptor {
            Some(RejectReason::NotAcceptor)
        } else if state.hoa != self.cfg.hoa || state.cn != client {
            Some(RejectReason::WrongHomeAddress)
        } else if self.drain.is_some() {
            Some(RejectReason::Draining)
        } else if self.clients.contains_key(&client) || self.donations.contains_key(&client) {
            Some(RejectReason::Busy)
        } else if self.active() >= self.cfg.max_concurrent
            || self.clients.len() >= self.cfg.max_clients
        {
            Some(RejectReason::Full)
        } else {
            None
        };
        if let Some(reason) = reason {
            return self.refuse(from, key, client, reason);
        }
        let Some(donor_coa) = self.coa_of(from) else {
            return self.ignored(from, "prepare", DropWhy::UnknownMember);
        };
        let (hoa, bounds, coa) = (self.cfg.hoa, self.cfg.hold, self.cfg.me.coa);
        self.lingers.remove(&client);
        // No packet of the client reaches our kernel before its sockets.
        self.engine(EngineChange::Hold {
            hoa,
            client,
            bounds,
        });
        // The donor's next sequence number (and token, if valid); the
        // care-of test starts now, in parallel with the state transfer.
        mn.import(now, &state);
        mn.register(now, client, coa);
        self.send(from, HandoffMsg::Accept { id });
        self.acceptances.insert(
            client,
            Acceptance {
                key,
                client,
                donor_coa,
                phase: Phase::WaitTransfer {
                    deadline: now + self.cfg.transfer_timeout,
                },
                connections,
                bound: None,
                bind_deadline: now + self.cfg.bind_timeout,
                donor_dead: false,
            },
        );
    }

    pub(super) fn on_transfer(&mut self, key: &HandoffKey, client: Ipv6Addr, connections: u32) {
        let ok = self
            .acceptances
            .get(&client)
            .is_some_and(|a| &a.key == key && matches!(a.phase, Phase::WaitTransfer { .. }));
        if !ok {
            self.actions.push_back(Action::Discard {
                key: key.clone(),
                client,
            });
            return;
        }
        if let Some(a) = self.acceptances.get_mut(&client) {
            a.phase = Phase::Restoring;
            a.connections = connections;
        }
        self.actions.push_back(Action::Restore {
            key: key.clone(),
            client,
        });
    }

    pub(super) fn on_restored(&mut self, key: &HandoffKey) {
        let Some(client) = self.acceptance_keyed(key) else {
            return;
        };
        let Some(a) = self.acceptances.get_mut(&client) else {
            return;
        };
        if a.phase != Phase::Restoring {
            return;
        }
        a.phase = Phase::Ready;
        let (bound, dead, id) = (a.bound, a.donor_dead, a.key.id);
        if !dead {
            let donor = key.donor.clone();
            self.send(&donor, HandoffMsg::Restored { id });
        }
        if bound.is_some() {
            self.activate(client);
        }
    }

    /// Our MobileNode reports the client bound X to our care-of address.
    pub(super) fn on_client_bound(&mut self, _now: Instant, client: Ipv6Addr, sequence: u16) {
        let Some(a) = self.acceptances.get_mut(&client) else {
            return;
        };
        match a.phase {
            Phase::WaitTransfer { .. } | Phase::Restoring => a.bound = Some(sequence),
            Phase::Ready => {
                a.bound = Some(sequence);
                self.activate(client);
            }
            Phase::Activating | Phase::Committed { .. } => {}
        }
    }

    fn activate(&mut self, client: Ipv6Addr) {
        let (hoa, coa) = (self.cfg.hoa, self.cfg.me.coa);
        let Some(a) = self.acceptances.get_mut(&client) else {
            return;
        };
        a.phase = Phase::Activating;
        let key = a.key.clone();
        self.engine(EngineChange::AddHomeAddressBinding {
            hoa,
            peer: client,
            coa,
        });
        self.actions.push_back(Action::Activate { key, client });
    }

    pub(super) fn on_activated(&mut self, now: Instant, key: &HandoffKey) {
        let Some(client) = self.acceptance_keyed(key) else {
            return;
        };
        let hoa = self.cfg.hoa;
        let contact = self.cfg.contact.clone();
        let is_contact = self.is_contact();
        let (retry, deadline) = (now + self.cfg.retransmit, now + self.cfg.done_timeout);
        let Some(a) = self.acceptances.get_mut(&client) else {
            return;
        };
        if a.phase != Phase::Activating {
            return;
        }
        let sequence = a.bound.unwrap_or(0);
        a.phase = Phase::Committed {
            retry,
            deadline,
            sequence,
        };
        let (id, connections, dead) = (a.key.id, a.connections, a.donor_dead);
        // Live: the held packets go to the restored sockets, in order.
        self.engine(EngineChange::Release { hoa, client });
        if !dead {
            self.send(&key.donor, HandoffMsg::Bound { id, sequence });
        }
        if is_contact {
            self.placements.remove(&client);
        } else if contact != key.donor {
            self.send(&contact, HandoffMsg::Placed { client, sequence });
        }
        self.clients.insert(client, connections);
        self.stats.accepted += 1;
        self.event(HandoffEvent::Accepted {
            key: key.clone(),
            client,
            connections,
        });
        if dead {
            self.finish_acceptance(now, client);
        }
    }

    fn finish_acceptance(&mut self, now: Instant, client: Ipv6Addr) {
        let Some(a) = self.acceptances.remove(&client) else {
            return;
        };
        if let Phase::Committed { sequence, .. } = a.phase {
            self.remember(a.key, Outcome::Committed(sequence));
        }
        // Keep accepting what the donor still forwards, for a while.
        self.linger(now, client, 2);
    }

    /// Aborted here, and the donor stopped forwarding to us: what we hold
    /// and what still comes goes to the donor.
    fn return_to_donor(&mut self, now: Instant, key: &HandoffKey) {
        let Some((client, member)) = self.returns.remove(key) else {
            return;
        };
        if self.is_moving(client) {
            return;
        }
        let (hoa, local) = (self.cfg.hoa, self.cfg.me.coa);
        self.engine(EngineChange::Forward {
            hoa,
            client,
            local,
            member,
        });
        self.linger(now, client, 1);
    }

    pub(super) fn on_done(&mut self, now: Instant, from: &MemberId, id: u64) {
        let key = HandoffKey {
            donor: from.clone(),
            id,
        };
        match self.acceptance_keyed(&key) {
            Some(client)
                if matches!(
                    self.acceptances.get(&client).map(|a| a.phase),
                    Some(Phase::Committed { .. })
                ) =>
            {
                self.finish_acceptance(now, client);
            }
            Some(_) => self.ignored(from, "done", DropWhy::OutOfOrder),
            None if self.returns.contains_key(&key) => self.return_to_donor(now, &key),
            None if self.outcome(&key).is_some() => {
                self.ignored(from, "done", DropWhy::OutOfOrder);
            }
            None => self.ignored(from, "done", DropWhy::UnknownHandoff),
        }
    }

    pub(super) fn on_cancel(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &MemberId,
        id: u64,
    ) {
        let key = HandoffKey {
            donor: from.clone(),
            id,
        };
        let Some(client) = self.acceptance_keyed(&key) else {
            match self.outcome(&key) {
                Some(o) => self.repeat_outcome(from, id, o),
                None => self.send(
                    from,
                    HandoffMsg::Aborted {
                        id,
                        next_sequence: None,
                        reason: AbortReason::Cancelled,
                    },
                ),
            }
            return;
        };
        match self.acceptances.get(&client).map(|a| a.phase) {
            Some(Phase::Committed { sequence, .. }) => {
                self.send(from, HandoffMsg::Bound { id, sequence });
            }
            // Activation decides; its outcome is sent either way.
            Some(Phase::Activating) | None => {}
            Some(_) => self.abort(now, mn, client, AbortReason::Cancelled),
        }
    }

    pub(super) fn on_binding_failed(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        client: Ipv6Addr,
    ) {
        let before_live = self.acceptances.get(&client).is_some_and(|a| {
            matches!(
                a.phase,
                Phase::WaitTransfer { .. } | Phase::Restoring | Phase::Ready
            )
        });
        if before_live {
            self.abort(now, mn, client, AbortReason::BindingFailed);
        }
    }

    pub(super) fn abort_keyed(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        key: &HandoffKey,
        reason: AbortReason,
    ) {
        if let Some(client) = self.acceptance_keyed(key) {
            let live = matches!(
                self.acceptances.get(&client).map(|a| a.phase),
                Some(Phase::Committed { .. })
            );
            if !live {
                self.abort(now, mn, client, reason);
            }
        }
    }

    pub(super) fn acceptor_timeout(&mut self, now: Instant, mn: &mut MobileNode, client: Ipv6Addr) {
        let Some(a) = self.acceptances.get_mut(&client) else {
            return;
        };
        match a.phase {
            Phase::WaitTransfer { deadline } if now >= deadline => {
                self.abort(now, mn, client, AbortReason::TransferTimeout);
            }
            Phase::WaitTransfer { .. } | Phase::Ready if now >= a.bind_deadline => {
                self.abort(now, mn, client, AbortReason::BindTimeout);
            }
            Phase::Committed { deadline, .. } if now >= deadline => {
                self.finish_acceptance(now, client);
            }
            Phase::Committed {
                retry,
                deadline,
                sequence,
            } if now >= retry => {
                a.phase = Phase::Committed {
                    retry: now + self.cfg.retransmit,
                    deadline,
                    sequence,
                };
                let (donor, id) = (a.key.donor.clone(), a.key.id);
                self.send(&donor, HandoffMsg::Bound { id, sequence });
            }
            _ => {}
        }
    }

    /// The donor `member` is gone: with the state in hand we go on alone;
    /// without it we give up.
    pub(super) fn acceptor_peer_down(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        member: &MemberId,
    ) {
        let affected: Vec<Ipv6Addr> = self
            .acceptances
            .values()
            .filter(|a| &a.key.donor == member)
            .map(|a| a.client)
            .collect();
        for client in affected {
            let Some(a) = self.acceptances.get_mut(&client) else {
                continue;
            };
            a.donor_dead = true;
            match a.phase {
                Phase::WaitTransfer { .. } => self.abort(now, mn, client, AbortReason::PeerDead),
                Phase::Committed { .. } => self.finish_acceptance(now, client),
                Phase::Restoring | Phase::Ready | Phase::Activating => {}
            }
        }
    }

    /// Gives up: everything of the client goes back to the donor, which
    /// rolls back on our Aborted.
    fn abort(&mut self, now: Instant, mn: &mut MobileNode, client: Ipv6Addr, reason: AbortReason) {
        let Some(a) = self.acceptances.remove(&client) else {
            return;
        };
        let hoa = self.cfg.hoa;
        let next_sequence = mn.next_sequence(client);
        // No more Binding Updates (or retransmissions) from us.
        mn.remove(client);
        self.token_wanted.remove(&client);
        if a.donor_dead {
            self.engine(EngineChange::Remove { hoa, client });
        } else {
            // Hold what comes (also directly from the client, if it bound
            // here) until the donor confirms with Done that it no longer
            // forwards to us: forwarding back at once would bounce packets
            // between us until it learns of the abort.
            self.engine(EngineChange::Hold {
                hoa,
                client,
                bounds: self.cfg.hold,
            });
            if self.returns.len() < self.cfg.max_concurrent.saturating_mul(2) {
                self.returns.insert(a.key.clone(), (client, a.donor_coa));
            }
            self.linger(now, client, 2);
        }
        if a.phase == Phase::Activating {
            self.engine(EngineChange::RemoveHomeAddressBinding { hoa, peer: client });
        }
        if a.has_transfer() {
            self.actions.push_back(Action::Discard {
                key: a.key.clone(),
                client,
            });
        }
        if !a.donor_dead {
            self.send(
                &a.key.donor,
                HandoffMsg::Aborted {
                    id: a.key.id,
                    next_sequence,
                    reason,
                },
            );
        }
        self.remember(a.key.clone(), Outcome::Aborted(next_sequence, reason));
        self.stats.accept_aborted += 1;
        self.event(HandoffEvent::AcceptAborted {
            key: a.key,
            client,
            reason,
        });
    }
}
