//! The other members: up/down, load reports, policy choices and drains;
//! the home keygen token relay of the contact node; and the recovery of
//! a dead member's clients through the home path.

use std::collections::{BTreeSet, VecDeque};
use std::net::Ipv6Addr;
use std::time::Instant;

use super::Coordinator;
use super::msg::HandoffMsg;
use super::policy::{Candidate, Policy, choose};
use super::types::{
    CommandError, DropWhy, EngineChange, HandoffEvent, HandoffKey, LoadReport, MemberId, MemberInfo,
};
use crate::proto::mobile::ExportedToken;
use crate::proto::mobile::{CorrespondentState, MobileNode};

/// What a coordinator knows of another member.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub(super) info: MemberInfo,
    pub(super) up: bool,
    pub(super) load: Option<LoadReport>,
    /// Connections handed to it since its last load report.
    pub(super) sent_since_load: u64,
}

impl Peer {
    pub(super) fn new(info: MemberInfo) -> Self {
        Self {
            info,
            up: false,
            load: None,
            sent_since_load: 0,
        }
    }
}

/// A drain in progress.
#[derive(Debug, Clone)]
pub(super) struct Drain {
    policy: Policy,
    queue: VecDeque<Ipv6Addr>,
    active: BTreeSet<Ipv6Addr>,
    handed: usize,
    failed: usize,
}

impl Coordinator {
    /// The node channel to `member` is up.
    pub fn peer_up(&mut self, member: &MemberId) {
        if let Some(p) = self.peers.get_mut(member) {
            p.up = true;
        }
    }

    /// `member` is unreachable (channel down, heartbeats missing): its
    /// handoffs with us end (see the module docs), and the contact node
    /// recovers the clients it had placed there.
    pub fn peer_down(&mut self, now: Instant, mn: &mut MobileNode, member: &MemberId) {
        match self.peers.get_mut(member) {
            Some(p) if p.up => p.up = false,
            _ => return,
        }
        self.donor_peer_down(now, mn, member);
        self.acceptor_peer_down(now, mn, member);
        if self.is_contact() {
            self.recover_clients(now, mn, member);
        }
    }

    /// True if `member` is known and up.
    #[must_use]
    pub fn is_up(&self, member: &MemberId) -> bool {
        self.peers.get(member).is_some_and(|p| p.up)
    }

    pub(super) fn on_load(&mut self, from: &MemberId, mut report: LoadReport) {
        report.rtt_us.truncate(LoadReport::MAX_RTTS);
        if let Some(p) = self.peers.get_mut(from) {
            p.load = Some(report);
            p.sent_since_load = 0;
        }
    }

    /// The members that may take `client` now, with their load.
    #[must_use]
    pub fn candidates(&self, client: Ipv6Addr) -> Vec<Candidate> {
        self.peers
            .values()
            .filter(|p| p.up && p.info.roles.acceptor)
            .map(|p| Candidate {
                name: p.info.name.clone(),
                connections: p
                    .load
                    .as_ref()
                    .map_or(0, |l| u64::from(l.connections))
                    .saturating_add(p.sent_since_load),
                rtt_us: p.load.as_ref().and_then(|l| l.rtt_to(client)),
            })
            .collect()
    }

    /// Policy decision: hand `client` to the member `policy` chooses.
    pub fn handoff_by_policy(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        client: Ipv6Addr,
        policy: Policy,
    ) -> Result<HandoffKey, CommandError> {
        let candidates = self.candidates(client);
        let to = choose(policy, client, &candidates, &mut self.rr_cursor)
            .ok_or(CommandError::NoCandidate)?;
        self.handoff(now, mn, client, &to)
    }

    /// Operator command `drain`: hands every client served here to other
    /// members chosen by `policy`, at most `max_concurrent` at a time;
    /// [`HandoffEvent::DrainDone`] tells the result. Meanwhile Prepares
    /// are refused. Returns the number of clients to move.
    pub fn drain(&mut self, now: Instant, mn: &mut MobileNode, policy: Policy) -> usize {
        let queue: VecDeque<Ipv6Addr> = self
            .clients
            .keys()
            .filter(|c| !self.is_moving(**c))
            .copied()
            .collect();
        let n = queue.len();
        self.drain = Some(Drain {
            policy,
            queue,
            active: BTreeSet::new(),
            handed: 0,
            failed: 0,
        });
        self.pump_drain(now, mn);
        n
    }

    fn pump_drain(&mut self, now: Instant, mn: &mut MobileNode) {
        loop {
            if self.active() >= self.cfg.max_concurrent {
                return;
            }
            let Some(d) = self.drain.as_mut() else {
                return;
            };
            let policy = d.policy;
            let Some(client) = d.queue.pop_front() else {
                break;
            };
            if !self.clients.contains_key(&client) || self.is_moving(client) {
                continue;
            }
            let candidates = self.candidates(client);
            match choose(policy, client, &candidates, &mut self.rr_cursor) {
                Some(to) => {
                    self.start_donation(now, mn, client, to, true);
                    if let Some(d) = self.drain.as_mut() {
                        d.active.insert(client);
                    }
                }
                None => {
                    if let Some(d) = self.drain.as_mut() {
                        d.failed += 1;
                    }
                }
            }
        }
        if let Some(d) = &self.drain
            && d.queue.is_empty()
            && d.active.is_empty()
        {
            let (handed, failed) = (d.handed, d.failed);
            self.drain = None;
            self.event(HandoffEvent::DrainDone { handed, failed });
        }
    }

    /// A donation ended; a drain goes on with the next client.
    pub(super) fn drain_finished(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        client: Ipv6Addr,
        drain: bool,
        handed: bool,
    ) {
        if !drain {
            return;
        }
        if let Some(d) = self.drain.as_mut()
            && d.active.remove(&client)
        {
            if handed {
                d.handed += 1;
            } else {
                d.failed += 1;
            }
            self.pump_drain(now, mn);
        }
    }

    /// Our MobileNode needs a home keygen token for `client` (it never
    /// runs a home test itself): ask the contact node.
    pub(super) fn on_token_needed(&mut self, now: Instant, client: Ipv6Addr) {
        if self.is_contact() {
            return;
        }
        if !self.needs_token(client) {
            return;
        }
        let first = !self.token_wanted.contains_key(&client);
        self.token_wanted.insert(client, now + self.cfg.token_retry);
        // A contact node handing the client to us sends the token
        // unasked as soon as it has one; ask only if it does not come.
        let contact_sends = self
            .acceptances
            .get(&client)
            .is_some_and(|a| a.key.donor == self.cfg.contact);
        if first && contact_sends {
            return;
        }
        let contact = self.cfg.contact.clone();
        self.send(&contact, HandoffMsg::TokenRequest { client });
    }

    /// A home keygen token from `from`: taken from the contact node, or
    /// from the donor of a client we are taking over.
    pub(super) fn on_token(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &MemberId,
        client: Ipv6Addr,
        token: &ExportedToken,
    ) {
        let from_donor = self
            .acceptances
            .get(&client)
            .is_some_and(|a| &a.key.donor == from);
        if *from != self.cfg.contact && !from_donor {
            return self.ignored(from, "token", DropWhy::WrongRole);
        }
        let wanted = self.token_wanted.remove(&client).is_some();
        if !wanted && !self.acceptances.contains_key(&client) && !self.clients.contains_key(&client)
        {
            // Nobody here needs it (a late answer): do not create state.
            return self.ignored(from, "token", DropWhy::OutOfOrder);
        }
        mn.import_home_token(now, client, token);
    }

    /// Contact node: `client` now lives at `from`. Packets of it that
    /// still come the home path are forwarded there.
    pub(super) fn on_placed(&mut self, from: &MemberId, client: Ipv6Addr, sequence: u16) {
        if !self.is_contact() {
            return self.ignored(from, "placed", DropWhy::WrongRole);
        }
        if !self.placements.contains_key(&client) && self.placements.len() >= self.cfg.max_clients {
            return self.ignored(from, "placed", DropWhy::Full);
        }
        let Some(member) = self.coa_of(from) else {
            return;
        };
        self.placements.insert(client, (from.clone(), sequence));
        if self.is_moving(client) {
            return;
        }
        self.clients.remove(&client);
        self.lingers.remove(&client);
        let (hoa, local) = (self.cfg.hoa, self.cfg.me.coa);
        self.engine(EngineChange::Forward {
            hoa,
            client,
            local,
            member,
        });
    }

    /// This member sends Binding Updates to `client` (so it needs home
    /// keygen tokens): it is taking it over or serves it (a donor does not).
    fn needs_token(&self, client: Ipv6Addr) -> bool {
        self.acceptances.contains_key(&client)
            || (self.clients.contains_key(&client) && !self.donations.contains_key(&client))
    }

    pub(super) fn token_timeout(&mut self, now: Instant) {
        let due: Vec<Ipv6Addr> = self
            .token_wanted
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(c, _)| *c)
            .collect();
        for client in due {
            if self.needs_token(client) && !self.is_contact() {
                self.token_wanted.insert(client, now + self.cfg.token_retry);
                let contact = self.cfg.contact.clone();
                self.send(&contact, HandoffMsg::TokenRequest { client });
            } else {
                self.token_wanted.remove(&client);
            }
        }
    }

    /// Contact node: `from` needs a home keygen token for `client`.
    pub(super) fn on_token_request(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &MemberId,
        client: Ipv6Addr,
    ) {
        if !self.is_contact() {
            return self.ignored(from, "token_request", DropWhy::WrongRole);
        }
        if !self.token_waiters.contains_key(&client)
            && self.token_waiters.len() >= self.cfg.max_clients
        {
            return self.ignored(from, "token_request", DropWhy::Full);
        }
        self.token_waiters
            .entry(client)
            .or_default()
            .insert(from.clone());
        // Answered by HomeTokenReady (at once if a token is still valid).
        mn.fetch_home_token(now, client);
    }

    /// A valid home keygen token for `client` is held: give it to whoever
    /// waits for it.
    pub(super) fn on_token_ready(&mut self, now: Instant, mn: &mut MobileNode, client: Ipv6Addr) {
        let Some(token) = mn.export(now, client).and_then(|s| s.home_token) else {
            return;
        };
        let mut to: BTreeSet<MemberId> = self.token_waiters.remove(&client).unwrap_or_default();
        if let Some(d) = self.donations.get_mut(&client)
            && d.token_pending
        {
            d.token_pending = false;
            to.insert(d.to.clone());
        }
        for m in to {
            self.stats.tokens_relayed += 1;
            self.send(
                &m,
                HandoffMsg::Token {
                    client,
                    token: token.clone(),
                },
            );
        }
    }

    /// Contact node: `member` died; the clients it served lose their
    /// connections there. Deleting their bindings (de-registration through
    /// the home agent, RFC 6275 11.5.4) sends them back to the home path.
    fn recover_clients(&mut self, now: Instant, mn: &mut MobileNode, member: &MemberId) {
        let hoa = self.cfg.hoa;
        let lost: Vec<(Ipv6Addr, u16)> = self
            .placements
            .iter()
            .filter(|(_, (m, _))| m == member)
            .map(|(c, (_, s))| (*c, *s))
            .collect();
        if lost.is_empty() {
            return;
        }
        let mut clients = Vec::with_capacity(lost.len());
        for (client, sequence) in lost {
            self.placements.remove(&client);
            if self.is_moving(client) {
                continue;
            }
            // Home-path packets reach our kernel again (which resets the
            // lost connections at once instead of forwarding to the dead).
            self.lingers.remove(&client);
            self.engine(EngineChange::Remove { hoa, client });
            mn.import(
                now,
                &CorrespondentState {
                    hoa,
                    cn: client,
                    home_token: None,
                    next_sequence: sequence.wrapping_add(1),
                },
            );
            mn.deregister(now, client);
            clients.push(client);
        }
        self.stats.recovered += clients.len() as u64;
        self.event(HandoffEvent::ClientsRecovered {
            member: member.clone(),
            clients,
        });
    }
}
