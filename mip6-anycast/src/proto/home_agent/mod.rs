//! The home agent's registration table (RFC 6275 10.3.1, 10.3.2) with RFC
//! 4285 authentication (MN-HA option, Mesg-ID replay protection).
//!
//! Driving [`HomeAgent`] (the `home-agent` daemon):
//!
//! * configure the home prefixes and install one MN-HA security association
//!   per home address ([`HomeAgent::add_security_association`]);
//! * after a restart, feed the persisted records to [`HomeAgent::restore`];
//! * every received Mobility Header packet addressed to the home agent goes
//!   to [`HomeAgent::handle_packet`] with the current wall clock as an
//!   [`NtpTimestamp`] (for Mesg-ID checks and absolute expiry times);
//! * [`HomeAgent::poll_timeout`] / [`HomeAgent::handle_timeout`] expire
//!   registrations;
//! * [`HomeAgent::poll_action`] yields Binding Acknowledgements to send,
//!   [`TunnelEvent`]s (program the engine's tunnel to the care-of address)
//!   and [`PersistEvent`]s (write or delete the serde record).
//!
//! A newer registration for the same home address from another care-of
//! address (a backup member taking over the anycast address with the shared
//! key) simply replaces the old one: `TunnelEvent::Up` with the new care-of
//! address. Its timestamp must be newer than the last accepted one and its
//! sequence number newer than the last accepted one (else status 135 with
//! that number, after which the new member resynchronises).

mod registration;

pub use registration::{Prefix, Registration, RegistrationRecord};

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::common::{Action, Transmit, parse_drop_reason};
use super::stats::{DropCounts, DropReason};
use crate::crypto::{
    MnHaError, MnHaKey, MnHaKeyStore, NtpTimestamp, ReplayConfig, ReplayGuard, Spi,
};
use crate::wire::{MhMessage, MhPacketRepr, ParsedMhPacket};

/// Configuration of a [`HomeAgent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeAgentConfig {
    /// Home prefixes served (a home address outside them: status 132).
    pub home_prefixes: Vec<Prefix>,
    /// Longest lifetime granted.
    pub max_lifetime: Duration,
    /// Most registrations held (status 130 beyond).
    pub max_registrations: usize,
    /// Mesg-ID window and replay table bound (RFC 4285 6).
    pub replay: ReplayConfig,
}

impl Default for HomeAgentConfig {
    fn default() -> Self {
        Self {
            home_prefixes: Vec::new(),
            max_lifetime: Duration::from_secs(3600),
            max_registrations: 65_536,
            replay: ReplayConfig::default(),
        }
    }
}

/// Engine tunnel changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelEvent {
    /// Tunnel packets for `hoa` to `coa` (new registration or new care-of
    /// address).
    Up {
        /// Home address.
        hoa: Ipv6Addr,
        /// Care-of address.
        coa: Ipv6Addr,
    },
    /// Stop tunnelling for `hoa`.
    Down {
        /// Home address.
        hoa: Ipv6Addr,
    },
}

/// Storage changes, so a restart loses no registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistEvent {
    /// Write (replace) the record of its home address.
    Store(RegistrationRecord),
    /// Delete the record of `hoa`.
    Delete {
        /// Home address.
        hoa: Ipv6Addr,
    },
}

/// Events of the home agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaEvent {
    /// A tunnel change.
    Tunnel(TunnelEvent),
    /// A storage change.
    Persist(PersistEvent),
}

/// Counters of a [`HomeAgent`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeAgentStats {
    /// Drops and rejections per reason.
    pub drops: DropCounts,
    /// Registrations accepted (new or refreshed).
    pub accepted: u64,
    /// Deregistrations accepted.
    pub deregistrations: u64,
    /// Registrations that moved to another care-of address.
    pub moves: u64,
    /// Registrations expired.
    pub expired: u64,
    /// Binding Acknowledgements sent.
    pub ba_sent: u64,
}

/// The home agent machine. See the module docs.
#[derive(Debug)]
pub struct HomeAgent {
    cfg: HomeAgentConfig,
    keys: MnHaKeyStore,
    regs: HashMap<Ipv6Addr, Registration>,
    replay: ReplayGuard<Ipv6Addr>,
    timers: BTreeSet<(Instant, Ipv6Addr)>,
    stats: HomeAgentStats,
    actions: VecDeque<Action<HaEvent>>,
}

impl HomeAgent {
    /// A home agent with no registrations and no security associations.
    #[must_use]
    pub fn new(cfg: HomeAgentConfig) -> Self {
        Self {
            replay: ReplayGuard::new(cfg.replay),
            cfg,
            keys: MnHaKeyStore::new(),
            regs: HashMap::new(),
            timers: BTreeSet::new(),
            stats: HomeAgentStats::default(),
            actions: VecDeque::new(),
        }
    }

    /// Installs the MN-HA security association `spi` for home address `hoa`.
    pub fn add_security_association(
        &mut self,
        spi: Spi,
        hoa: Ipv6Addr,
        key: MnHaKey,
    ) -> Result<(), MnHaError> {
        self.keys.insert(spi, hoa, key)
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &HomeAgentStats {
        &self.stats
    }

    /// The registration of `hoa`, if any.
    #[must_use]
    pub fn registration(&self, hoa: Ipv6Addr) -> Option<&Registration> {
        self.regs.get(&hoa)
    }

    /// All registrations (unordered).
    pub fn registrations(&self) -> impl Iterator<Item = &Registration> + '_ {
        self.regs.values()
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action<HaEvent>> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next needed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Expires registrations whose lifetime ran out.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, hoa)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if self.regs.get(&hoa).is_some_and(|r| r.expires == t) {
                debug!(%hoa, "home registration expired");
                self.stats.expired += 1;
                self.remove(hoa);
            }
        }
    }

    /// Re-installs persisted registrations after a restart: each record
    /// whose absolute expiry is still ahead of `wall` gets the remaining
    /// lifetime from `now`, its tunnel is brought up and its last Mesg-ID
    /// and sequence number are remembered (replays stay rejected). Returns
    /// how many were restored.
    pub fn restore(
        &mut self,
        records: &[RegistrationRecord],
        now: Instant,
        wall: NtpTimestamp,
    ) -> usize {
        let mut restored = 0;
        for rec in records {
            let remaining = rec.expires_ntp().offset_from(wall);
            if remaining <= 0 || !self.in_home_prefix(rec.hoa) {
                continue;
            }
            if self.regs.len() >= self.cfg.max_registrations && !self.regs.contains_key(&rec.hoa) {
                self.drop(DropReason::TableFull);
                continue;
            }
            let remaining = Duration::from_secs(u64::try_from(remaining >> 32).unwrap_or(0))
                .min(self.cfg.max_lifetime);
            let ts = NtpTimestamp(rec.mesg_id);
            if self.replay.accept(rec.hoa, ts, ts).is_err() {
                self.drop(DropReason::ReplayTableFull);
            }
            let reg = Registration {
                hoa: rec.hoa,
                coa: rec.coa,
                spi: Spi(rec.spi),
                sequence: rec.sequence,
                mesg_id: ts,
                expires: now + remaining,
                expires_wall: rec.expires_ntp(),
            };
            self.install(reg);
            restored += 1;
        }
        restored
    }

    /// Processes a received packet (whole IPv6 packet) at wall-clock `wall`.
    pub fn handle_packet(&mut self, now: Instant, wall: NtpTimestamp, packet: &[u8]) {
        match MhPacketRepr::parse_with_bytes(packet) {
            Ok(p) => self.handle_parsed(now, wall, &p),
            Err(e) => self.drop(parse_drop_reason(&e)),
        }
    }

    /// Processes a received, parsed packet.
    pub fn handle_parsed(&mut self, now: Instant, wall: NtpTimestamp, parsed: &ParsedMhPacket<'_>) {
        match &parsed.repr.mh.message {
            MhMessage::BindingUpdate(bu) => self.handle_binding_update(now, wall, parsed, bu),
            _ => self.drop(DropReason::UnexpectedMessage),
        }
    }

    fn in_home_prefix(&self, hoa: Ipv6Addr) -> bool {
        self.cfg.home_prefixes.iter().any(|p| p.contains(hoa))
    }

    /// Inserts or replaces a registration and emits tunnel and storage events.
    fn install(&mut self, reg: Registration) {
        let old = self.regs.insert(reg.hoa, reg.clone());
        if let Some(old) = &old {
            self.timers.remove(&(old.expires, old.hoa));
        }
        self.timers.insert((reg.expires, reg.hoa));
        if old.as_ref().is_none_or(|o| o.coa != reg.coa) {
            if old.is_some() {
                self.stats.moves += 1;
            }
            self.event(HaEvent::Tunnel(TunnelEvent::Up {
                hoa: reg.hoa,
                coa: reg.coa,
            }));
        }
        self.event(HaEvent::Persist(PersistEvent::Store(reg.record())));
    }

    fn remove(&mut self, hoa: Ipv6Addr) {
        if let Some(old) = self.regs.remove(&hoa) {
            self.timers.remove(&(old.expires, hoa));
            self.event(HaEvent::Tunnel(TunnelEvent::Down { hoa }));
            self.event(HaEvent::Persist(PersistEvent::Delete { hoa }));
        }
    }

    fn send(&mut self, t: Result<Transmit, DropReason>) {
        match t {
            Ok(t) => {
                self.stats.ba_sent += 1;
                self.actions.push_back(Action::Transmit(t));
            }
            Err(r) => self.drop(r),
        }
    }

    fn event(&mut self, e: HaEvent) {
        self.actions.push_back(Action::Event(e));
    }

    fn drop(&mut self, r: DropReason) {
        self.stats.drops.count(r);
        self.actions.push_back(Action::Dropped(r));
    }

    fn key(&self, spi: Spi, hoa: Ipv6Addr) -> Result<&MnHaKey, MnHaError> {
        self.keys.key_for(spi, hoa)
    }
}
