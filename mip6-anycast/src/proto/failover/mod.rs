//! Contact-node failover (seed 004 4.2.1), sans-IO: heartbeats between the
//! members of an anycast group, replication of the contact node's state to
//! its backups, a deterministic takeover when the contact node falls
//! silent, and the rules that keep a returning contact node from taking
//! the anycast address back by accident.
//!
//! # Roles
//! The *succession* is the configured contact node followed by its backups
//! in order of priority. Other members follow the contact node (they need
//! to know whom to ask for home keygen tokens) but never take over.
//!
//! # Rules
//! 1. **Heartbeats.** Every member sends every other member a heartbeat
//!    each `heartbeat` interval: its epoch, the contact node it follows,
//!    whether it is that contact node, and the snapshot version it holds.
//! 2. **Replication.** The contact node sends its [`ContactSnapshot`]
//!    (registration key, next home sequence number, per-client sequence
//!    numbers, home keygen tokens, placements) to every backup whose
//!    heartbeat shows an older version, at once when it changes and again
//!    each interval until acknowledged.
//! 3. **Detection.** A member that has not heard the contact node for
//!    `dead_after` reports it lost ([`FailoverEvent::ContactLost`]).
//! 4. **Deterministic choice.** A backup takes over only if every member
//!    ranked above it in the succession is silent too, and it hears at
//!    least `quorum` members (itself included) within `dead_after`. With a
//!    common view exactly one backup, the first live one, takes over. It
//!    moves to epoch `max(epochs seen) + 1`.
//! 5. **Newer epoch wins.** A heartbeat carrying a higher epoch (or the
//!    same epoch with a contact earlier in the succession) is followed at
//!    once; a contact node that hears one steps down without touching the
//!    registration (it must not deregister what is now the new contact's
//!    binding at the home agent). A contact node that hears an older claim
//!    answers it with its own heartbeat at once, so the claimant steps
//!    down.
//! 6. **No stealing back.** A configured contact node starts in
//!    [`Role::Starting`]: it registers only after hearing a quorum of
//!    members (itself included) that all still follow it at epoch 0, or
//!    after `start_hold` without hearing any newer claim (the whole group
//!    starting). Its first registration does not resynchronise on a BA
//!    135 either (the shell's rule): a newer registration at the home
//!    agent means someone took over while it was away. A
//!    contact whose registration is overtaken at the home agent (BA status
//!    135: someone registered X with a newer sequence number) steps down
//!    ([`Failover::overtaken`]) and may not take over again for
//!    `hold_down`. The home agent itself arbitrates between two contacts:
//!    only the newer sequence number is accepted (RFC 6275 10.3.1), and a
//!    new contact starts far above the replicated high-water mark
//!    ([`TAKEOVER_SEQUENCE_JUMP`]).
//!
//! Inputs: [`Failover::handle_message`], [`Failover::handle_timeout`],
//! [`Failover::set_snapshot`], [`Failover::overtaken`]. Outputs:
//! [`FailoverAction`]s from [`Failover::poll_action`].

pub mod codec;
pub mod state;

use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

pub use codec::{FailoverMsg, MAX_FAILOVER_FRAME};
pub use state::{ClientRecord, ContactSnapshot, MAX_SNAPSHOT_CLIENTS, RegistrationKey};

use crate::proto::handoff::MemberId;

/// How far above the replicated home sequence number a new contact node
/// starts (the old one may have used a few more since its last snapshot;
/// far below the 2^15 window of RFC 6275 9.5.1).
pub const TAKEOVER_SEQUENCE_JUMP: u16 = 1024;
/// The same for the Binding Updates to clients.
pub const CLIENT_SEQUENCE_JUMP: u16 = 256;

/// Snapshot versions are `epoch << 40 | counter`.
const VERSION_EPOCH_SHIFT: u32 = 40;

/// Settings of a [`Failover`].
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// This member.
    pub me: MemberId,
    /// The anycast address.
    pub hoa: Ipv6Addr,
    /// The configured contact node, then its backups by priority.
    pub succession: Vec<MemberId>,
    /// Every member of the group (heartbeats go to all but `me`).
    pub members: Vec<MemberId>,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Silence after which a member counts as gone.
    pub dead_after: Duration,
    /// Members heard (self included) needed to take over.
    pub quorum: usize,
    /// After being overtaken, no takeover for this long.
    pub hold_down: Duration,
    /// How long a configured contact node that hears no quorum waits
    /// before it registers anyway.
    pub start_hold: Duration,
}

impl FailoverConfig {
    /// Defaults: heartbeat 100 ms, gone after 3 missed, quorum a majority
    /// of the members (1 for a group of two: a partition cannot be told
    /// from a crash there), hold-down and start hold 10 x `dead_after`.
    #[must_use]
    pub fn new(
        me: MemberId,
        hoa: Ipv6Addr,
        succession: Vec<MemberId>,
        members: Vec<MemberId>,
    ) -> Self {
        let heartbeat = Duration::from_millis(100);
        let quorum = default_quorum(members.len());
        Self {
            me,
            hoa,
            succession,
            members,
            heartbeat,
            dead_after: heartbeat * 3,
            quorum,
            hold_down: heartbeat * 30,
            start_hold: heartbeat * 30,
        }
    }
}

/// A majority of `n` members, or 1 when `n <= 2`.
#[must_use]
pub fn default_quorum(n: usize) -> usize {
    if n <= 2 { 1 } else { n / 2 + 1 }
}

/// Where this member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The configured contact node, waiting to learn whether the group
    /// still follows it.
    Starting,
    /// Registered (or registering) X at the home agent.
    Contact,
    /// In the succession, holding the replicated state.
    Backup,
    /// Not in the succession: follows the contact node.
    Member,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverAction {
    /// Send `msg` to member `to` over the node channel.
    Send {
        /// The member.
        to: MemberId,
        /// The message.
        msg: FailoverMsg,
    },
    /// Something for the shell.
    Event(FailoverEvent),
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverEvent {
    /// Take the contact role: register X at the home agent. With
    /// `takeover`, from the replicated [`Failover::snapshot`]: its key,
    /// its sequence numbers plus [`TAKEOVER_SEQUENCE_JUMP`], and the home
    /// agent's sequence resynchronisation allowed for this registration.
    BecomeContact {
        /// The new epoch.
        epoch: u64,
        /// Whether this is a takeover (else the configured start).
        takeover: bool,
    },
    /// Stop acting as the contact node (no deregistration).
    StepDown {
        /// The epoch now followed.
        epoch: u64,
        /// The contact node now followed, if known.
        contact: Option<MemberId>,
    },
    /// Another member is the contact node now.
    ContactChanged {
        /// Its epoch.
        epoch: u64,
        /// The contact node.
        contact: MemberId,
    },
    /// The contact node fell silent.
    ContactLost {
        /// Who.
        contact: MemberId,
        /// For how long it has been silent.
        silent_for: Duration,
    },
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FailoverStats {
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Heartbeats received.
    pub heartbeats_received: u64,
    /// Snapshots sent.
    pub states_sent: u64,
    /// Snapshots taken.
    pub states_accepted: u64,
    /// Messages dropped (other anycast address, unknown sender, stale or
    /// not from the contact node).
    pub dropped: u64,
    /// Takeovers by this member.
    pub takeovers: u64,
    /// Times this member stepped down.
    pub step_downs: u64,
}

#[derive(Debug, Clone)]
struct Heard {
    at: Instant,
    held: u64,
    /// The epoch and contact node it follows.
    epoch: u64,
    contact: MemberId,
}

/// The failover machine of one member for one anycast address.
#[derive(Debug)]
pub struct Failover {
    cfg: FailoverConfig,
    role: Role,
    epoch: u64,
    contact: Option<MemberId>,
    /// Last heartbeat of the followed contact node claiming the role.
    contact_heard: Instant,
    /// Whether the followed contact node was ever heard (a configured
    /// contact that never showed up gets `start_hold`, not `dead_after`).
    contact_ever_heard: bool,
    lost_reported: bool,
    started: Instant,
    next_heartbeat: Instant,
    heard: HashMap<MemberId, Heard>,
    /// The snapshot (current at the contact, held at a backup) and its
    /// version.
    snapshot: Option<ContactSnapshot>,
    version: u64,
    hold_down_until: Option<Instant>,
    actions: VecDeque<FailoverAction>,
    stats: FailoverStats,
}

impl Failover {
    /// The machine at `now`.
    #[must_use]
    pub fn new(cfg: FailoverConfig, now: Instant) -> Self {
        let configured = cfg.succession.first().cloned();
        let role = if configured.as_ref() == Some(&cfg.me) {
            Role::Starting
        } else if cfg.succession.contains(&cfg.me) {
            Role::Backup
        } else {
            Role::Member
        };
        Self {
            role,
            epoch: 0,
            contact: configured,
            contact_heard: now,
            contact_ever_heard: false,
            lost_reported: false,
            started: now,
            next_heartbeat: now,
            heard: HashMap::new(),
            snapshot: None,
            version: 0,
            hold_down_until: None,
            actions: VecDeque::new(),
            stats: FailoverStats::default(),
            cfg,
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &FailoverConfig {
        &self.cfg
    }

    /// This member's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current epoch.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The contact node followed (this member at the contact).
    #[must_use]
    pub fn contact(&self) -> Option<&MemberId> {
        self.contact.as_ref()
    }

    /// The snapshot held (backup) or current (contact), and its version.
    #[must_use]
    pub fn snapshot(&self) -> Option<(&ContactSnapshot, u64)> {
        self.snapshot.as_ref().map(|s| (s, self.version))
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &FailoverStats {
        &self.stats
    }

    /// Members heard within `dead_after` (not counting this one).
    #[must_use]
    pub fn live_members(&self, now: Instant) -> Vec<MemberId> {
        let mut v: Vec<MemberId> = self
            .heard
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.at) < self.cfg.dead_after)
            .map(|(m, _)| m.clone())
            .collect();
        v.sort();
        v
    }

    /// Whether every live backup holds snapshot `version` or newer.
    #[must_use]
    pub fn backups_hold(&self, now: Instant, version: u64) -> bool {
        self.backups()
            .filter(|b| self.is_live(now, b))
            .all(|b| self.heard.get(b).is_some_and(|h| h.held >= version))
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<FailoverAction> {
        self.actions.pop_front()
    }

    /// When [`Failover::handle_timeout`] is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_heartbeat;
        match self.role {
            Role::Starting => t = t.min(self.started + self.cfg.start_hold),
            Role::Backup | Role::Member if !self.lost_reported => {
                t = t.min(self.contact_heard + self.silence_limit());
            }
            _ => {}
        }
        if let Some(h) = self.hold_down_until {
            t = t.min(h);
        }
        Some(t)
    }

    /// Timers: heartbeats, the start-up wait, detection and takeover.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.hold_down_until.is_some_and(|t| t <= now) {
            self.hold_down_until = None;
        }
        match self.role {
            Role::Starting if now >= self.started + self.cfg.start_hold => {
                self.become_contact(now, false);
            }
            Role::Backup | Role::Member => self.check_contact(now),
            _ => {}
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.cfg.heartbeat;
            self.heartbeat_all();
            if self.role == Role::Contact {
                self.replicate(now, false);
            }
        }
    }

    /// A message from member `from` (authenticated by the node channel).
    pub fn handle_message(&mut self, now: Instant, from: &MemberId, msg: FailoverMsg) {
        if msg.hoa() != self.cfg.hoa || !self.cfg.members.contains(from) || *from == self.cfg.me {
            self.stats.dropped += 1;
            return;
        }
        match msg {
            FailoverMsg::Heartbeat {
                epoch,
                contact,
                held,
                ..
            } => {
                self.stats.heartbeats_received += 1;
                self.heard.insert(
                    from.clone(),
                    Heard {
                        at: now,
                        held,
                        epoch,
                        contact: contact.clone(),
                    },
                );
                // Only the contact node itself vouches for its liveness
                // (registered, or a configured contact still starting:
                // `is_contact` tells which, for operators).
                let claims = contact == *from;
                self.on_claim(now, from, epoch, contact, claims);
            }
            FailoverMsg::State {
                epoch,
                version,
                snapshot,
                ..
            } => {
                let from_contact = self.contact.as_ref() == Some(from);
                if epoch != self.epoch || !from_contact || self.role == Role::Contact {
                    self.stats.dropped += 1;
                    return;
                }
                if version > self.version || self.snapshot.is_none() {
                    self.version = version;
                    self.snapshot = Some(*snapshot);
                    self.stats.states_accepted += 1;
                }
                // Acknowledge at once (rotation waits for it).
                self.heartbeat_to(from.clone());
            }
        }
    }

    /// The contact node's state changed: replicate it.
    pub fn set_snapshot(&mut self, now: Instant, snapshot: ContactSnapshot) {
        if self.snapshot.as_ref() == Some(&snapshot) {
            return;
        }
        self.version += 1;
        self.snapshot = Some(snapshot);
        if self.role == Role::Contact {
            self.replicate(now, true);
        }
    }

    /// The home agent refused this contact's refresh as out of window
    /// (RFC 6275 BA status 135): another member registered X since. Step
    /// down (rule 6).
    pub fn overtaken(&mut self, now: Instant) {
        if self.role != Role::Contact && self.role != Role::Starting {
            return;
        }
        self.hold_down_until = Some(now + self.cfg.hold_down);
        self.contact = None;
        self.contact_heard = now;
        self.lost_reported = false;
        self.step_down(None);
    }

    /// Everyone in the succession but this member (a configured contact
    /// node that stepped down is a backup of the new one).
    fn backups(&self) -> impl Iterator<Item = &MemberId> + '_ {
        self.cfg.succession.iter().filter(|m| **m != self.cfg.me)
    }

    fn is_live(&self, now: Instant, m: &MemberId) -> bool {
        *m == self.cfg.me
            || self
                .heard
                .get(m)
                .is_some_and(|h| now.saturating_duration_since(h.at) < self.cfg.dead_after)
    }

    fn rank(&self, m: &MemberId) -> usize {
        self.cfg
            .succession
            .iter()
            .position(|s| s == m)
            .unwrap_or(usize::MAX)
    }

    /// Rule 5: the newer of two claims.
    fn newer(&self, epoch: u64, contact: &MemberId) -> bool {
        match &self.contact {
            _ if epoch > self.epoch => true,
            Some(c) if epoch == self.epoch => c != contact && self.rank(contact) < self.rank(c),
            None => epoch >= self.epoch,
            _ => false,
        }
    }

    fn on_claim(
        &mut self,
        now: Instant,
        from: &MemberId,
        epoch: u64,
        contact: MemberId,
        claims: bool,
    ) {
        if self.role == Role::Starting && epoch == 0 && contact == self.cfg.me {
            // Start once a quorum still follows us at epoch 0.
            let live: Vec<&Heard> = self
                .heard
                .values()
                .filter(|h| now.saturating_duration_since(h.at) < self.cfg.dead_after)
                .collect();
            let following = live
                .iter()
                .all(|h| h.epoch == 0 && h.contact == self.cfg.me);
            if following && 1 + live.len() >= self.cfg.quorum {
                self.become_contact(now, false);
            }
            return;
        }
        let followed = self.contact.as_ref() == Some(&contact) && epoch == self.epoch;
        if followed {
            if claims {
                self.contact_heard = now;
                self.contact_ever_heard = true;
                self.lost_reported = false;
            } else if self.role == Role::Contact && epoch < self.epoch {
                self.heartbeat_to(from.clone());
            }
            return;
        }
        if self.newer(epoch, &contact) {
            let was_contact = matches!(self.role, Role::Contact | Role::Starting);
            self.epoch = epoch;
            self.contact = Some(contact.clone());
            // Heard of through another member or from itself: either way
            // it gets `dead_after` to show up before it counts as lost.
            self.contact_heard = now;
            self.contact_ever_heard = true;
            self.lost_reported = false;
            if was_contact {
                self.step_down(Some(contact));
            } else {
                self.actions
                    .push_back(FailoverAction::Event(FailoverEvent::ContactChanged {
                        epoch,
                        contact,
                    }));
            }
        } else if self.role == Role::Contact || self.contact.is_some() {
            // An older claim (e.g. a contact node back from a partition):
            // tell it at once.
            self.heartbeat_to(from.clone());
        }
    }

    fn step_down(&mut self, contact: Option<MemberId>) {
        self.stats.step_downs += 1;
        self.role = if self.cfg.succession.contains(&self.cfg.me) {
            Role::Backup
        } else {
            Role::Member
        };
        self.actions
            .push_back(FailoverAction::Event(FailoverEvent::StepDown {
                epoch: self.epoch,
                contact,
            }));
        self.heartbeat_all();
    }

    /// How long the followed contact may be silent: `dead_after`, or
    /// `start_hold` for the configured contact before it was ever heard
    /// (daemons of a group do not start at the same instant).
    fn silence_limit(&self) -> Duration {
        if self.epoch == 0 && !self.contact_ever_heard {
            self.cfg.start_hold.max(self.cfg.dead_after)
        } else {
            self.cfg.dead_after
        }
    }

    fn check_contact(&mut self, now: Instant) {
        let silent = now.saturating_duration_since(self.contact_heard);
        if silent < self.silence_limit() {
            return;
        }
        if !self.lost_reported {
            self.lost_reported = true;
            if let Some(c) = self.contact.clone() {
                self.actions
                    .push_back(FailoverAction::Event(FailoverEvent::ContactLost {
                        contact: c,
                        silent_for: silent,
                    }));
            }
        }
        if self.role != Role::Backup || self.hold_down_until.is_some() {
            return;
        }
        let my_rank = self.rank(&self.cfg.me);
        let contact = self.contact.clone();
        let above_live = self
            .cfg
            .succession
            .iter()
            .take(my_rank)
            .filter(|m| Some(*m) != contact.as_ref())
            .any(|m| self.is_live(now, m));
        let heard = 1 + self.live_members(now).len();
        if !above_live && heard >= self.cfg.quorum {
            self.become_contact(now, true);
        }
    }

    fn become_contact(&mut self, now: Instant, takeover: bool) {
        if takeover {
            // Saturating: an epoch near the top (a broken or hostile member)
            // must not wrap back below the others (found by fuzzing).
            self.epoch = self.epoch.saturating_add(1);
            self.stats.takeovers += 1;
            // Versions of a newer epoch sort above every older one.
            self.version = self
                .version
                .saturating_add(1)
                .max(self.epoch.saturating_mul(1 << VERSION_EPOCH_SHIFT));
        }
        self.role = Role::Contact;
        self.contact = Some(self.cfg.me.clone());
        self.contact_heard = now;
        self.lost_reported = false;
        self.actions
            .push_back(FailoverAction::Event(FailoverEvent::BecomeContact {
                epoch: self.epoch,
                takeover,
            }));
        self.heartbeat_all();
        self.next_heartbeat = now + self.cfg.heartbeat;
    }

    fn heartbeat_msg(&self) -> FailoverMsg {
        FailoverMsg::Heartbeat {
            hoa: self.cfg.hoa,
            epoch: self.epoch,
            contact: self.contact.clone().unwrap_or_else(|| self.cfg.me.clone()),
            is_contact: self.role == Role::Contact,
            held: self.version,
        }
    }

    fn heartbeat_to(&mut self, to: MemberId) {
        self.stats.heartbeats_sent += 1;
        let msg = self.heartbeat_msg();
        self.actions.push_back(FailoverAction::Send { to, msg });
    }

    fn heartbeat_all(&mut self) {
        let others: Vec<MemberId> = self
            .cfg
            .members
            .iter()
            .filter(|m| **m != self.cfg.me)
            .cloned()
            .collect();
        for m in others {
            self.heartbeat_to(m);
        }
    }

    /// Rule 2: the snapshot to every live backup that lacks it (`all`:
    /// also to backups not heard yet).
    fn replicate(&mut self, now: Instant, all: bool) {
        let Some(snap) = &self.snapshot else { return };
        let to: Vec<MemberId> = self
            .backups()
            .filter(|b| {
                let h = self.heard.get(*b);
                let lacks = h.is_none_or(|h| h.held < self.version);
                lacks && (all || self.is_live(now, b))
            })
            .cloned()
            .collect();
        for b in to {
            self.stats.states_sent += 1;
            self.actions.push_back(FailoverAction::Send {
                to: b,
                msg: FailoverMsg::State {
                    hoa: self.cfg.hoa,
                    epoch: self.epoch,
                    version: self.version,
                    snapshot: Box::new(snap.clone()),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests;
