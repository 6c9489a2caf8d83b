//! A binding update list entry (RFC 6275 11.1): what the mobile node knows
//! and has outstanding towards one correspondent.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::rr_initiator::TestState;
use crate::crypto::Kbm;
use crate::proto::common::Backoff;

/// What the entry is trying to achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Goal {
    /// Nothing (tokens may still be fetched and kept for export).
    Idle,
    /// Keep a binding home address -> care-of address at the correspondent,
    /// refreshing it before expiry.
    Register,
    /// Delete the binding at the correspondent (lifetime 0, Kbm from the
    /// home keygen token only, RFC 6275 5.2.6).
    Deregister,
}

/// The Binding Update(s) of one attempt, retransmitted with back-off; every
/// retransmission carries a new sequence number (RFC 6275 11.7.1), all
/// under the same tokens and Kbm.
#[derive(Debug, Clone)]
pub(crate) struct OutstandingBu {
    pub(crate) first_seq: u16,
    pub(crate) last_seq: u16,
    pub(crate) first_sent: Instant,
    pub(crate) last_sent: Instant,
    pub(crate) kbm: Kbm,
    pub(crate) coa: Ipv6Addr,
    pub(crate) deregister: bool,
    pub(crate) backoff: Backoff,
}

impl OutstandingBu {
    /// True if `seq` is one this attempt sent.
    pub(crate) fn matches(&self, seq: u16) -> bool {
        seq.wrapping_sub(self.first_seq) <= self.last_seq.wrapping_sub(self.first_seq)
    }

    /// When the BU with `seq` was sent (the first transmission if unsure:
    /// lifetimes count from the BU, RFC 6275 11.7.3).
    pub(crate) fn sent_at(&self, seq: u16) -> Instant {
        if seq == self.last_seq {
            self.last_sent
        } else {
            self.first_sent
        }
    }
}

/// An acknowledged binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) coa: Ipv6Addr,
    pub(crate) expires: Instant,
    pub(crate) refresh_at: Instant,
    pub(crate) sequence: u16,
}

/// One binding update list entry.
#[derive(Debug, Clone)]
pub(crate) struct BulEntry {
    pub(crate) cn: Ipv6Addr,
    /// The care-of address to register (a member's own address).
    pub(crate) coa: Ipv6Addr,
    pub(crate) goal: Goal,
    /// A home keygen token was asked for (contact node role).
    pub(crate) want_home_token: bool,
    /// `HomeTokenNeeded` was emitted and not yet answered.
    pub(crate) home_needed_reported: bool,
    pub(crate) home: TestState,
    pub(crate) care_of: TestState,
    pub(crate) next_seq: u16,
    pub(crate) bu: Option<OutstandingBu>,
    pub(crate) bound: Option<Bound>,
    /// The deadline under which the entry sits in the machine's timer set.
    pub(crate) scheduled: Option<Instant>,
}

impl BulEntry {
    pub(crate) fn new(cn: Ipv6Addr, coa: Ipv6Addr, next_seq: u16) -> Self {
        Self {
            cn,
            coa,
            goal: Goal::Idle,
            want_home_token: false,
            home_needed_reported: false,
            home: TestState::default(),
            care_of: TestState::default(),
            next_seq,
            bu: None,
            bound: None,
            scheduled: None,
        }
    }

    /// Takes the next sequence number.
    pub(crate) fn take_seq(&mut self) -> u16 {
        let s = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        s
    }

    /// The earliest instant something is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        // Once a refresh has started (a test or BU outstanding, or a home
        // token requested from another member) its own timers take over.
        let refreshing = self.bu.is_some()
            || self.home.pending.is_some()
            || self.care_of.pending.is_some()
            || self.home_needed_reported;
        let refresh = self
            .bound
            .filter(|_| self.goal == Goal::Register && !refreshing)
            .map(|b| b.refresh_at);
        [
            self.home.deadline(),
            self.care_of.deadline(),
            self.bu.as_ref().map(|b| b.backoff.next_at()),
            refresh,
            self.bound.map(|b| b.expires),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// When to refresh a binding granted `lifetime` from `sent`: after 80 % of
/// it, so that a lost refresh still has time for retransmissions.
pub(crate) fn refresh_time(sent: Instant, lifetime: Duration) -> Instant {
    sent + lifetime.mul_f64(0.8)
}

/// A snapshot of an entry for status displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulEntryInfo {
    /// Correspondent.
    pub cn: Ipv6Addr,
    /// Care-of address to register.
    pub coa: Ipv6Addr,
    /// Current goal.
    pub goal: Goal,
    /// Acknowledged binding: care-of address and expiry.
    pub bound: Option<(Ipv6Addr, Instant)>,
    /// Next Binding Update sequence number.
    pub next_sequence: u16,
    /// A valid home keygen token is held.
    pub home_token_valid: bool,
    /// A valid care-of keygen token for `coa` is held.
    pub care_of_token_valid: bool,
    /// A Binding Update is outstanding.
    pub bu_outstanding: bool,
}
