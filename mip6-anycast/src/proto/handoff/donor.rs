//! The donor side: Prepare, freeze on Accept, commit on the acceptor's
//! Bound, Cancel on timeout, rollback on Aborted or when the acceptor is
//! presumed dead.

use std::net::Ipv6Addr;
use std::time::Instant;

use super::msg::{AbortReason, HandoffMsg, RejectReason};
use super::types::{
    Action, CommandError, DropWhy, EngineChange, HandoffEvent, HandoffKey, MemberId,
};
use super::{Coordinator, Outcome};
use crate::proto::mobile::{CorrespondentState, Goal, MobileNode};

/// Where a donation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Freeze issued; waiting for the shell.
    Freezing,
    /// Frozen and transferred; waiting for Bound or Aborted.
    Frozen { deadline: Instant },
    /// Cancel sent; waiting for Aborted or Bound.
    Cancelling {
        retry: Instant,
        deadline: Instant,
        reason: AbortReason,
    },
    /// Rolling back: thaw issued.
    Thawing { reason: AbortReason },
    /// Committed: close issued.
    Closing { sequence: u16 },
}

/// One client being handed away.
#[derive(Debug, Clone)]
pub(super) struct Donation {
    pub(super) key: HandoffKey,
    pub(super) client: Ipv6Addr,
    pub(super) to: MemberId,
    to_coa: Ipv6Addr,
    started: Instant,
    pub(super) phase: Phase,
    /// The client's state at the start (restored on rollback).
    saved: CorrespondentState,
    /// This member had a binding at the client.
    had_binding: bool,
    /// The Prepare had no home keygen token: send one when ready.
    pub(super) token_pending: bool,
    /// The acceptor's next sequence number (from Aborted).
    acceptor_seq: Option<u16>,
    prepare: HandoffMsg,
    pub(super) drain: bool,
    /// Decided while the freeze ran: (reason, acceptor already aborted).
    abort_pending: Option<(AbortReason, bool)>,
    /// Bound arrived while the freeze ran.
    commit_pending: Option<u16>,
    /// Until the acceptor's Accept: (next Prepare retransmission, give up).
    awaiting_accept: Option<(Instant, Instant)>,
}

impl Donation {
    pub(super) fn next_timer(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Cancelling {
                retry, deadline, ..
            } => Some(retry.min(deadline)),
            Phase::Frozen { deadline } => Some(deadline),
            Phase::Freezing | Phase::Thawing { .. } | Phase::Closing { .. } => None,
        };
        let accept = self.awaiting_accept.map(|(r, d)| r.min(d));
        match (phase, accept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl Coordinator {
    /// Operator command: hand `client` (served here) to member `to`.
    pub fn handoff(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        client: Ipv6Addr,
        to: &MemberId,
    ) -> Result<HandoffKey, CommandError> {
        if *to == self.cfg.me.name {
            return Err(CommandError::ToSelf);
        }
        let peer = self
            .peers
            .get(to)
            .ok_or_else(|| CommandError::UnknownMember(to.clone()))?;
        if !peer.info.roles.acceptor {
            return Err(CommandError::NotAcceptor(to.clone()));
        }
        if !peer.up {
            return Err(CommandError::MemberDown(to.clone()));
        }
        if !self.clients.contains_key(&client) {
            return Err(CommandError::NotServing(client));
        }
        if self.is_moving(client) {
            return Err(CommandError::Busy(client));
        }
        if self.active() >= self.cfg.max_concurrent {
            return Err(CommandError::TooMany);
        }
        Ok(self.start_donation(now, mn, client, to.clone(), false))
    }

    pub(super) fn start_donation(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        client: Ipv6Addr,
        to: MemberId,
        drain: bool,
    ) -> HandoffKey {
        let key = HandoffKey {
            donor: self.cfg.me.name.clone(),
            id: self.next_id,
        };
        self.next_id = self.next_id.wrapping_add(1);
        let hoa = self.cfg.hoa;
        let had_binding = mn
            .entry(client, now)
            .is_some_and(|e| e.goal == Goal::Register);
        // From here this member sends no Binding Update to the client: the
        // exported sequence numbers belong to the acceptor.
        let idle = mn
            .entry(client, now)
            .is_none_or(|e| e.goal == Goal::Idle && !e.bu_outstanding);
        let saved = match mn.export(now, client) {
            Some(s) => s,
            None => {
                // Never bound: an idle entry gets a random initial
                // sequence number (RFC 6275 11.7.1 leaves the first free).
                mn.fetch_home_token(now, client);
                mn.export(now, client).unwrap_or(CorrespondentState {
                    hoa,
                    cn: client,
                    home_token: None,
                    next_sequence: 0,
                })
            }
        };
        let is_contact = self.is_contact();
        // Every donor keeps an idle entry: its keygen tokens stay cached
        // for a later handoff back (a valid care-of token saves the
        // care-of test), and the contact node's home token for reuse.
        if !idle {
            mn.park(client);
        }
        // A missing home token is fetched now, in parallel with the
        // Prepare (sent on arrival).
        if is_contact && saved.home_token.is_none() {
            mn.fetch_home_token(now, client);
        }
        let connections = self.clients.get(&client).copied().unwrap_or(0);
        let prepare = HandoffMsg::Prepare {
            id: key.id,
            client,
            state: saved.clone(),
            connections,
        };
        self.lingers.remove(&client);
        let to_coa = self.coa_of(&to).unwrap_or(hoa);
        if let Some(p) = self.peers.get_mut(&to) {
            p.sent_since_load = p
                .sent_since_load
                .saturating_add(u64::from(connections.max(1)));
        }
        self.send(&to, prepare.clone());
        self.donations.insert(
            client,
            Donation {
                key: key.clone(),
                client,
                to: to.clone(),
                to_coa,
                started: now,
                // Freeze at once, with the Prepare (DESIGN.md 5): the
                // donor's last segments then reach the client before the
                // acceptor's Binding Update can, so none arrives after the
                // client switched (it would drop them, RFC 6275 9.3.1, and
                // only a retransmission timeout would repair the hole).
                // The client's packets wait here until the Accept.
                phase: Phase::Freezing,
                token_pending: is_contact && saved.home_token.is_none(),
                saved,
                had_binding,
                acceptor_seq: None,
                prepare,
                drain,
                abort_pending: None,
                commit_pending: None,
                awaiting_accept: Some((now + self.cfg.retransmit, now + self.cfg.prepare_timeout)),
            },
        );
        let hoa = self.cfg.hoa;
        self.engine(EngineChange::Hold {
            hoa,
            client,
            bounds: self.cfg.hold,
        });
        self.actions.push_back(Action::Freeze {
            key: key.clone(),
            client,
            to: to.clone(),
        });
        self.stats.started += 1;
        self.event(HandoffEvent::Started {
            key: key.clone(),
            client,
            to,
        });
        key
    }

    /// The client of our donation `id` to `from`.
    fn donation_of(&self, from: &MemberId, id: u64) -> Option<Ipv6Addr> {
        self.donations
            .values()
            .find(|d| d.key.id == id && &d.to == from)
            .map(|d| d.client)
    }

    fn donation_keyed(&self, key: &HandoffKey) -> Option<Ipv6Addr> {
        self.donations
            .values()
            .find(|d| &d.key == key)
            .map(|d| d.client)
    }

    fn my_key(&self, id: u64) -> HandoffKey {
        HandoffKey {
            donor: self.cfg.me.name.clone(),
            id,
        }
    }

    pub(super) fn on_accept(&mut self, _now: Instant, from: &MemberId, id: u64) {
        let Some(client) = self.donation_of(from, id) else {
            if self.outcome(&self.my_key(id)) == Some(Outcome::RolledBack) {
                // We gave up before this Accept came: make the acceptor
                // give up too.
                self.send(from, HandoffMsg::Cancel { id });
            } else {
                self.ignored(from, "accept", DropWhy::UnknownHandoff);
            }
            return;
        };
        let hoa = self.cfg.hoa;
        let local = self.cfg.me.coa;
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        if d.awaiting_accept.take().is_none() {
            return;
        }
        let member = d.to_coa;
        // What was held here, and everything after, goes to the acceptor
        // (it holds the client's packets since the Prepare).
        self.engine(EngineChange::Forward {
            hoa,
            client,
            local,
            member,
        });
    }

    pub(super) fn on_reject(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &MemberId,
        id: u64,
        reason: RejectReason,
    ) {
        let Some(client) = self.donation_of(from, id) else {
            return self.ignored(from, "reject", DropWhy::UnknownHandoff);
        };
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        if d.awaiting_accept.take().is_none() {
            return;
        }
        let reason = AbortReason::Rejected(reason);
        match d.phase {
            Phase::Freezing => d.abort_pending = Some((reason, true)),
            Phase::Frozen { .. } => self.rollback(now, mn, client, reason, true),
            _ => {}
        }
    }

    pub(super) fn on_restored_msg(&mut self, from: &MemberId, id: u64) {
        if self.donation_of(from, id).is_none() {
            self.ignored(from, "restored", DropWhy::UnknownHandoff);
        }
    }

    pub(super) fn on_bound_msg(&mut self, now: Instant, from: &MemberId, id: u64, sequence: u16) {
        let Some(client) = self.donation_of(from, id) else {
            match self.outcome(&self.my_key(id)) {
                Some(Outcome::Completed) => self.send(from, HandoffMsg::Done { id }),
                _ => self.ignored(from, "bound", DropWhy::UnknownHandoff),
            }
            return;
        };
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        match d.phase {
            Phase::Freezing => d.commit_pending = Some(sequence),
            Phase::Frozen { .. } | Phase::Cancelling { .. } => self.commit(now, client, sequence),
            // Thawing: we already rolled back (the acceptor stayed silent
            // past abort_timeout); Closing: already committed.
            Phase::Thawing { .. } | Phase::Closing { .. } => {
                self.ignored(from, "bound", DropWhy::OutOfOrder);
            }
        }
    }

    fn commit(&mut self, _now: Instant, client: Ipv6Addr, sequence: u16) {
        let hoa = self.cfg.hoa;
        let is_contact = self.is_contact();
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        d.phase = Phase::Closing { sequence };
        let (key, to) = (d.key.clone(), d.to.clone());
        self.engine(EngineChange::RemoveHomeAddressBinding { hoa, peer: client });
        self.actions.push_back(Action::CloseFrozen {
            key,
            client,
            to: to.clone(),
        });
        self.clients.remove(&client);
        if is_contact {
            self.placements.insert(client, (to, sequence));
        }
    }

    pub(super) fn on_frozen(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        key: &HandoffKey,
        _connections: u32,
    ) {
        let Some(client) = self.donation_keyed(key) else {
            return;
        };
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        if d.phase != Phase::Freezing {
            return;
        }
        d.phase = Phase::Frozen {
            deadline: now + self.cfg.bind_timeout,
        };
        if let Some(seq) = d.commit_pending.take() {
            return self.commit(now, client, seq);
        }
        match d.abort_pending.take() {
            Some((reason, true)) => self.rollback(now, mn, client, reason, true),
            Some((reason, false)) => self.cancel(now, client, reason),
            None => {}
        }
    }

    pub(super) fn on_freeze_failed(&mut self, now: Instant, mn: &mut MobileNode, key: &HandoffKey) {
        let Some(client) = self.donation_keyed(key) else {
            return;
        };
        if self.donations.get(&client).map(|d| d.phase) != Some(Phase::Freezing) {
            return;
        }
        let (to, id) = match self.donations.get(&client) {
            Some(d) => (d.to.clone(), d.key.id),
            None => return,
        };
        self.send(&to, HandoffMsg::Cancel { id });
        self.rollback(now, mn, client, AbortReason::FreezeFailed, false);
    }

    pub(super) fn on_thawed(&mut self, now: Instant, mn: &mut MobileNode, key: &HandoffKey) {
        let Some(client) = self.donation_keyed(key) else {
            return;
        };
        if let Some(Phase::Thawing { reason }) = self.donations.get(&client).map(|d| d.phase) {
            self.finish_rollback(now, mn, client, reason);
        }
    }

    pub(super) fn on_closed(&mut self, now: Instant, mn: &mut MobileNode, key: &HandoffKey) {
        let Some(client) = self.donation_keyed(key) else {
            return;
        };
        let Some(Phase::Closing { sequence }) = self.donations.get(&client).map(|d| d.phase) else {
            return;
        };
        let Some(d) = self.donations.remove(&client) else {
            return;
        };
        self.send(&d.to, HandoffMsg::Done { id: d.key.id });
        // The forwarding entry stays for packets still in flight to us.
        self.linger(now, client, 1);
        self.remember(d.key.clone(), Outcome::Completed);
        self.stats.completed += 1;
        self.event(HandoffEvent::Completed {
            key: d.key,
            client,
            to: d.to,
            elapsed: now.saturating_duration_since(d.started),
            sequence,
        });
        self.drain_finished(now, mn, client, d.drain, true);
    }

    pub(super) fn on_aborted(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &MemberId,
        id: u64,
        next_sequence: Option<u16>,
        reason: AbortReason,
    ) {
        let Some(client) = self.donation_of(from, id) else {
            if self.outcome(&self.my_key(id)) == Some(Outcome::RolledBack) {
                // Already rolled back (e.g. the freeze failed): we no
                // longer forward to the acceptor, it may return the rest.
                self.send(from, HandoffMsg::Done { id });
            } else {
                self.ignored(from, "aborted", DropWhy::UnknownHandoff);
            }
            return;
        };
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        d.acceptor_seq = next_sequence.or(d.acceptor_seq);
        match d.phase {
            Phase::Freezing => d.abort_pending = Some((reason, true)),
            Phase::Frozen { .. } | Phase::Cancelling { .. } => {
                self.rollback(now, mn, client, reason, true);
            }
            Phase::Thawing { .. } | Phase::Closing { .. } => {}
        }
    }

    /// Asks the acceptor to give up (it answers Aborted or Bound).
    fn cancel(&mut self, now: Instant, client: Ipv6Addr, reason: AbortReason) {
        let (retry, deadline) = (now + self.cfg.retransmit, now + self.cfg.abort_timeout);
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        d.phase = Phase::Cancelling {
            retry,
            deadline,
            reason,
        };
        let (to, id) = (d.to.clone(), d.key.id);
        self.send(&to, HandoffMsg::Cancel { id });
    }

    pub(super) fn donor_timeout(&mut self, now: Instant, mn: &mut MobileNode, client: Ipv6Addr) {
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        let (to, id) = (d.to.clone(), d.key.id);
        if let Some((retry, deadline)) = d.awaiting_accept {
            if now >= deadline {
                d.awaiting_accept = None;
                let reason = AbortReason::PrepareTimeout;
                let freezing = d.phase == Phase::Freezing;
                if freezing {
                    d.abort_pending = Some((reason, true));
                }
                self.send(&to, HandoffMsg::Cancel { id });
                if !freezing {
                    self.rollback(now, mn, client, reason, true);
                }
                return;
            }
            if now >= retry {
                d.awaiting_accept = Some((now + self.cfg.retransmit, deadline));
                let msg = d.prepare.clone();
                self.send(&to, msg);
            }
        }
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        match d.phase {
            Phase::Frozen { deadline } if now >= deadline => {
                self.cancel(now, client, AbortReason::BindTimeout);
            }
            Phase::Cancelling {
                deadline, reason, ..
            } if now >= deadline => {
                let reason = if reason == AbortReason::BindTimeout {
                    AbortReason::PeerDead
                } else {
                    reason
                };
                self.rollback(now, mn, client, reason, true);
            }
            Phase::Cancelling {
                retry,
                deadline,
                reason,
            } if now >= retry => {
                d.phase = Phase::Cancelling {
                    retry: now + self.cfg.retransmit,
                    deadline,
                    reason,
                };
                self.send(&to, HandoffMsg::Cancel { id });
            }
            _ => {}
        }
    }

    /// The acceptor `member` is gone (channel down or declared dead).
    pub(super) fn donor_peer_down(&mut self, now: Instant, mn: &mut MobileNode, member: &MemberId) {
        let affected: Vec<Ipv6Addr> = self
            .donations
            .values()
            .filter(|d| &d.to == member)
            .map(|d| d.client)
            .collect();
        for client in affected {
            let Some(d) = self.donations.get_mut(&client) else {
                continue;
            };
            match d.phase {
                // Never accepted: the acceptor cannot have committed.
                Phase::Freezing if d.awaiting_accept.is_some() => {
                    d.abort_pending = Some((AbortReason::PeerDead, true));
                }
                Phase::Frozen { .. } if d.awaiting_accept.is_some() => {
                    self.rollback(now, mn, client, AbortReason::PeerDead, true);
                }
                Phase::Freezing => d.abort_pending = Some((AbortReason::PeerDead, false)),
                // Give the channel abort_timeout to come back: a live
                // acceptor may have committed.
                Phase::Frozen { .. } => self.cancel(now, client, AbortReason::PeerDead),
                Phase::Cancelling { .. } | Phase::Thawing { .. } | Phase::Closing { .. } => {}
            }
        }
    }

    /// Gives the handoff up: thaws first if frozen.
    fn rollback(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        client: Ipv6Addr,
        reason: AbortReason,
        frozen: bool,
    ) {
        if !frozen {
            return self.finish_rollback(now, mn, client, reason);
        }
        let (hoa, bounds) = (self.cfg.hoa, self.cfg.hold);
        let Some(d) = self.donations.get_mut(&client) else {
            return;
        };
        d.phase = Phase::Thawing { reason };
        let (key, to) = (d.key.clone(), d.to.clone());
        // Keep the client's packets here (not at the acceptor) until the
        // connections are live again, and tell the acceptor we stopped
        // forwarding (it returns what it held).
        self.engine(EngineChange::Hold {
            hoa,
            client,
            bounds,
        });
        self.send(&to, HandoffMsg::Done { id: key.id });
        self.actions.push_back(Action::Thaw { key, client });
    }

    fn finish_rollback(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        client: Ipv6Addr,
        reason: AbortReason,
    ) {
        let Some(d) = self.donations.remove(&client) else {
            return;
        };
        let hoa = self.cfg.hoa;
        // Deliver here again (what was held first, in order), and accept
        // what the acceptor forwards back.
        self.engine(EngineChange::Release { hoa, client });
        mn.remove(client);
        mn.import(now, &d.saved);
        if let Some(next_sequence) = d.acceptor_seq {
            mn.import(
                now,
                &CorrespondentState {
                    next_sequence,
                    home_token: None,
                    ..d.saved.clone()
                },
            );
        }
        let may_have_bound = !matches!(reason, AbortReason::Rejected(_));
        if d.had_binding || may_have_bound {
            mn.register(now, client, self.cfg.me.coa);
        }
        self.linger(now, client, 1);
        self.remember(d.key.clone(), Outcome::RolledBack);
        self.stats.rolled_back += 1;
        self.event(HandoffEvent::RolledBack {
            key: d.key,
            client,
            to: d.to,
            reason,
        });
        self.drain_finished(now, mn, client, d.drain, false);
    }
}
