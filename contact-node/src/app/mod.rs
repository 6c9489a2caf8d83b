//! The member's control plane (contact role, or an acceptor of the group):
//!
//! - home registration of X at the home agent ([`HomeRegistration`], RFC
//!   6275 11.7.1 + RFC 4285), refreshed before expiry, deregistered at
//!   shutdown;
//! - per client, route optimization ([`MobileNode`] in
//!   [`HomeTestMode::Local`]: HoTI through the reverse tunnel, CoTI direct,
//!   then the Binding Update); on the Binding Acknowledgement the engine
//!   gets `AddHomeAddressBinding(X, client) -> CoA` (HAO out); until then,
//!   and whenever no binding exists, X's traffic is reverse-tunnelled
//!   through the home agent;
//! - clients come from the services' accepted connections and the scan of
//!   the kernel's sockets on X ([`crate::service`]);
//! - the binding update list (next sequence numbers) is persisted
//!   ([`BulStore`]) before the packets that use it leave;
//! - with a `[group]`, the handoff coordinator's shell
//!   ([`GroupShell`](crate::group::GroupShell)) shares the mobile node:
//!   its actions run in order in [`ContactApp::process`]'s loop, and it
//!   owns the binding of a client in motion;
//! - [`control`]: the `ctl` commands.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::daemon::system::{unix_ms, wall_now};
use mip6_anycast::daemon::{Outbox, drain, send_via};
use mip6_anycast::engine::datapath::{EngineHandle, SendVia, TableUpdate};
use mip6_anycast::proto::mobile::Goal;
use mip6_anycast::proto::{
    FailReason, HomeRegEvent, HomeRegistration, MobileEvent, MobileNode, RetransmitConfig,
};
use mip6_anycast::wire::{BeStatus, MhMessage, MhPacketRepr};
use tracing::{debug, info, info_span, warn};

mod control;
mod driver;
pub mod failover;
pub mod multi;

use crate::bul_store::BulStore;
use crate::config::RoSection;
use crate::group::GroupShell;
use crate::service::{PeerSeen, ServiceHost};
use mip6_anycast::group::GroupEvent;
use mip6_anycast::proto::failover::{Failover, RegistrationKey};
use std::sync::Arc;

/// MH type of a Binding Update.
const MH_BU: u8 = 5;
/// MH type of a Binding Acknowledgement.
const MH_BA: u8 = 6;
/// MH type of a Binding Error.
const MH_BE: u8 = 7;
/// Binding Errors this soon after a binding was installed are stale.
const STALE_BINDING_ERROR: Duration = Duration::from_millis(500);
/// Wait before registering again after the home agent refused.
const HOME_RETRY: Duration = Duration::from_secs(10);
/// Binding Update / test transmissions per attempt at a client
/// (1 + 2 + 4 + 8 + 16 s): a client that went away is given up.
pub const CLIENT_ATTEMPTS: u32 = 6;

/// Inputs besides punts.
#[derive(Debug, Clone)]
pub enum ContactInput {
    /// A client of X was seen.
    Peer(PeerSeen),
    /// The anycast group's node channel.
    Group(GroupEvent),
}

/// What the contact node knows of one client.
#[derive(Debug, Clone, Default)]
struct Client {
    first_seen: Option<Instant>,
    /// Route optimization starts at this time (pending).
    start_at: Option<Instant>,
    /// The home address binding installed in the engine (care-of address).
    installed: Option<Ipv6Addr>,
    /// When `installed` was last set.
    installed_at: Option<Instant>,
    bound_until: Option<Instant>,
    retry_after: Option<Instant>,
    failures: u32,
    unsupported: bool,
}

#[derive(Debug, Default, Clone)]
struct AppStats {
    punts: u64,
    peer_reports: u64,
    clients_refused: u64,
    hao_without_binding: u64,
    binding_errors: u64,
    stale_binding_errors: u64,
    table_errors: u64,
    persist_errors: u64,
    route_optimized: u64,
}

/// Where the shutdown is.
#[derive(Debug, Clone, Copy)]
struct Shutdown {
    started: Instant,
    grace: Duration,
}

/// The contact node's state.
pub struct ContactApp {
    x: Ipv6Addr,
    coa: Ipv6Addr,
    ha: Ipv6Addr,
    home: HomeRegistration,
    /// Expiry of the current home registration.
    registered: Option<Instant>,
    ever_registered: bool,
    home_retry_at: Option<Instant>,
    home_deregistering: bool,
    home_deregistered: bool,
    mn: MobileNode,
    ro: RoSection,
    clients: BTreeMap<Ipv6Addr, Client>,
    /// Clients persisted as bound: route-optimized again once registered.
    resume: Vec<Ipv6Addr>,
    dereg_pending: BTreeSet<Ipv6Addr>,
    store: BulStore,
    engine: EngineHandle,
    outbox: Outbox,
    services: Vec<Arc<ServiceHost>>,
    /// The anycast group (handoffs), if configured.
    group: Option<GroupShell>,
    /// Registered at the home agent (the contact role, or no group).
    is_contact: bool,
    /// Contact-node failover, when the group has backups.
    failover: Option<Failover>,
    /// The security association of the home registration (configured, or
    /// replicated by the contact node).
    reg_key: Option<RegistrationKey>,
    fo: failover::FailoverShell,
    stats: AppStats,
    shutdown: Option<Shutdown>,
    grace: Duration,
}

/// What [`ContactApp::new`] needs.
pub struct ContactParts {
    /// X.
    pub x: Ipv6Addr,
    /// Our care-of address.
    pub coa: Ipv6Addr,
    /// The home agent.
    pub ha: Ipv6Addr,
    /// The home registration client (its sequence number already set).
    pub home: HomeRegistration,
    /// The mobile node for X.
    pub mn: MobileNode,
    /// Route optimization settings.
    pub ro: RoSection,
    /// The persisted list.
    pub store: BulStore,
    /// The engine.
    pub engine: EngineHandle,
    /// How long the shutdown may wait for acknowledgements.
    pub shutdown_grace: Duration,
    /// The anycast group, if configured.
    pub group: Option<GroupShell>,
    /// Contact-node failover, if the group has backups.
    pub failover: Option<Failover>,
    /// The configured security association, if any.
    pub reg_key: Option<RegistrationKey>,
}

impl ContactApp {
    /// The app; call [`ContactApp::start`] next.
    pub fn new(p: ContactParts) -> ContactApp {
        let now = unix_ms();
        let resume = p
            .store
            .clients()
            .filter(|c| c.bound_until_unix_ms.is_some_and(|u| u > now))
            .map(|c| c.cn)
            .collect();
        ContactApp {
            x: p.x,
            coa: p.coa,
            ha: p.ha,
            home: p.home,
            registered: None,
            ever_registered: false,
            home_retry_at: None,
            home_deregistering: false,
            home_deregistered: false,
            mn: p.mn,
            ro: p.ro,
            clients: BTreeMap::new(),
            resume,
            dereg_pending: BTreeSet::new(),
            store: p.store,
            outbox: Outbox::new(p.engine.clone()),
            engine: p.engine,
            services: Vec::new(),
            is_contact: p.group.as_ref().is_none_or(|g| g.co.is_contact()) && p.failover.is_none(),
            group: p.group,
            failover: p.failover,
            reg_key: p.reg_key,
            fo: failover::FailoverShell::default(),
            stats: AppStats::default(),
            shutdown: None,
            grace: p.shutdown_grace,
        }
    }

    /// The anycast address.
    pub fn x(&self) -> Ipv6Addr {
        self.x
    }

    /// Whether this member acts as X's contact node now.
    pub fn is_contact(&self) -> bool {
        self.is_contact
    }

    /// Whether X is registered at the home agent by this member now.
    pub fn registered_now(&self) -> bool {
        self.is_registered()
    }

    /// Whether the mobile node has state for client `cn` (for routing a
    /// Care-of Test, which names no home address).
    pub fn knows_client(&self, cn: Ipv6Addr) -> bool {
        self.mn.correspondents().any(|c| c == cn)
    }

    /// Keeps a service for status reports (and its listener alive).
    pub fn add_service(&mut self, s: Arc<ServiceHost>) {
        self.services.push(s);
    }

    /// The group shell (to add services to it).
    pub fn group_mut(&mut self) -> Option<&mut GroupShell> {
        self.group.as_mut()
    }

    /// The retransmission settings of client registrations.
    pub fn client_retransmit() -> RetransmitConfig {
        RetransmitConfig {
            max_attempts: Some(CLIENT_ATTEMPTS),
            ..RetransmitConfig::default()
        }
    }

    /// Sends the first home registration.
    pub async fn start(&mut self, now: Instant) {
        if self.failover.is_some() {
            info!(x = %self.x, coa = %self.coa, "failover on: the contact role follows the group's heartbeats");
            self.failover_actions(now).await;
            return;
        }
        if !self.is_contact {
            info!(x = %self.x, coa = %self.coa, "group member without the contact role: serving clients handed to it");
            return;
        }
        info!(x = %self.x, coa = %self.coa, ha = %self.ha, "registering at the home agent");
        self.home.register(now, wall_now());
        self.process(now).await;
    }

    fn is_registered(&self) -> bool {
        self.registered.is_some()
    }

    /// Applies the machines' actions (home registration, mobile node, and
    /// the handoff coordinator, which drives the mobile node) until none
    /// has anything left: tables and the list on disk first, then packets.
    async fn process(&mut self, now: Instant) {
        // Each round either drains something or stops; the bound only
        // guards against a machine that never settles.
        for _ in 0..64 {
            self.process_once(now).await;
            let mut busy = false;
            // One action at a time, in order: a binding change must be in
            // the engine before the next action (e.g. activation, whose
            // first segments need the Home Address option).
            while let Some(a) = self.group.as_mut().and_then(|g| g.co.poll_action()) {
                busy = true;
                // Placements and bindings move with handoffs: replicate.
                self.fo.dirty = true;
                let change = match self.group.as_mut() {
                    Some(g) => g.execute(now, a, &mut self.mn, &self.engine).await,
                    None => None,
                };
                if let Some((cn, coa)) = change {
                    self.set_binding(cn, coa).await;
                }
            }
            if !busy {
                return;
            }
        }
        warn!("the machines did not settle within 64 rounds");
    }

    async fn process_once(&mut self, now: Instant) {
        let h = drain(&mut self.home);
        let m = drain(&mut self.mn);
        if !(h.events.is_empty() && m.events.is_empty() && m.transmits.is_empty()) {
            // Sequence numbers, tokens or bindings changed: replicate.
            self.fo.dirty = true;
        }
        for e in h.events {
            self.home_event(e, now);
        }
        for e in m.events {
            if let Some(g) = &mut self.group {
                g.co.handle_mobile_event(now, &mut self.mn, &e);
                let cn = match e {
                    MobileEvent::Bound { cn, .. }
                    | MobileEvent::Deregistered { cn }
                    | MobileEvent::BindingExpired { cn }
                    | MobileEvent::Failed { cn, .. } => Some(cn),
                    _ => None,
                };
                // The coordinator owns the binding of a client in motion.
                if cn.is_some_and(|cn| g.co.is_moving(cn)) {
                    continue;
                }
            }
            self.mobile_event(e, now).await;
        }
        self.store.set_home_next_sequence(self.home.next_sequence());
        for t in m.transmits.iter().filter(|t| t.mh_type == MH_BU) {
            if let Some(seq) = self.mn.next_sequence(t.dst) {
                self.store.set_next_sequence(t.dst, seq);
            }
        }
        if let Err(e) = self.store.flush() {
            self.stats.persist_errors += 1;
            warn!(error = %e, "writing the binding update list");
        }
        for t in h.transmits {
            self.outbox.send(t, Some(SendVia::Direct)).await;
        }
        let tunnel = self.is_contact.then_some((self.coa, self.ha));
        for t in m.transmits {
            let via = send_via(t.route, tunnel);
            self.outbox.send(t, via).await;
        }
    }

    fn home_event(&mut self, e: HomeRegEvent, now: Instant) {
        match e {
            HomeRegEvent::Registered {
                coa,
                lifetime,
                expires,
                sequence,
            } => {
                if self.registered.is_none() {
                    info!(%coa, ?lifetime, sequence, "registered at the home agent");
                } else {
                    debug!(%coa, ?lifetime, sequence, "home registration refreshed");
                }
                self.registered = Some(expires);
                self.home_retry_at = None;
                self.failover_registered();
                if !self.ever_registered {
                    self.ever_registered = true;
                    for cn in std::mem::take(&mut self.resume) {
                        info!(%cn, "resuming route optimization of a persisted client");
                        let c = self.clients.entry(cn).or_default();
                        c.first_seen.get_or_insert(now);
                        c.start_at = Some(now);
                    }
                }
            }
            HomeRegEvent::Overtaken { sequence } => {
                warn!(
                    sequence,
                    "home agent holds a newer registration of X: another member took it over"
                );
                self.registered = None;
                self.failover_overtaken(now);
            }
            HomeRegEvent::Deregistered => {
                info!("deregistered at the home agent");
                self.registered = None;
                self.home_deregistered = true;
            }
            HomeRegEvent::Expired => {
                warn!("home registration expired");
                self.registered = None;
            }
            HomeRegEvent::Failed { status } => {
                warn!(
                    ?status,
                    "home registration failed; retrying in {HOME_RETRY:?}"
                );
                self.registered = None;
                if self.shutdown.is_some() {
                    self.home_deregistered = true;
                } else {
                    self.home_retry_at = Some(now + HOME_RETRY);
                }
            }
        }
    }

    async fn set_binding(&mut self, cn: Ipv6Addr, coa: Option<Ipv6Addr>) {
        let c = self.clients.entry(cn).or_default();
        if c.installed == coa {
            return;
        }
        c.installed = coa;
        c.installed_at = Some(Instant::now());
        let update = match coa {
            Some(coa) => TableUpdate::AddHomeAddressBinding {
                hoa: self.x,
                peer: cn,
                coa,
            },
            None => TableUpdate::RemoveHomeAddressBinding {
                hoa: self.x,
                peer: cn,
            },
        };
        if let Err(e) = self.engine.update(update).await {
            self.stats.table_errors += 1;
            warn!(%cn, error = %e, "programming the home address binding");
        }
    }

    async fn mobile_event(&mut self, e: MobileEvent, now: Instant) {
        match e {
            MobileEvent::Bound {
                cn,
                coa,
                lifetime,
                sequence,
            } => {
                let _s = info_span!("client", %cn).entered();
                let c = self.clients.entry(cn).or_default();
                if c.installed.is_none() {
                    info!(%coa, ?lifetime, sequence, "client route-optimized");
                    self.stats.route_optimized += 1;
                } else {
                    debug!(%coa, ?lifetime, sequence, "client binding refreshed");
                }
                c.bound_until = Some(now + lifetime);
                c.failures = 0;
                let until = unix_ms().saturating_add(lifetime.as_millis() as u64);
                drop(_s);
                self.store.set_bound(cn, Some((coa, until)));
                self.set_binding(cn, Some(coa)).await;
            }
            MobileEvent::Deregistered { cn } | MobileEvent::BindingExpired { cn } => {
                info!(%cn, event = ?e, "client binding ended: back to the home agent path");
                self.dereg_pending.remove(&cn);
                if let Some(c) = self.clients.get_mut(&cn) {
                    c.bound_until = None;
                }
                self.store.set_bound(cn, None);
                self.set_binding(cn, None).await;
            }
            MobileEvent::Failed { cn, reason } => {
                self.dereg_pending.remove(&cn);
                let c = self.clients.entry(cn).or_default();
                c.failures = c.failures.saturating_add(1);
                c.bound_until = None;
                c.start_at = None;
                let wait = Duration::from_secs(30).saturating_mul(c.failures.min(10));
                c.retry_after = Some(now + wait);
                if reason == FailReason::RouteOptimizationUnsupported {
                    c.unsupported = true;
                }
                warn!(%cn, ?reason, retry_in = ?wait, "route optimization failed");
                self.store.set_bound(cn, None);
                self.set_binding(cn, None).await;
            }
            MobileEvent::HomeTokenReady { cn } | MobileEvent::HomeTokenNeeded { cn } => {
                debug!(%cn, event = ?e, "home token");
            }
        }
    }

    /// A client was seen: schedule its route optimization.
    fn peer(&mut self, p: PeerSeen, now: Instant) {
        self.stats.peer_reports += 1;
        let cn = p.peer;
        if [self.x, self.coa, self.ha].contains(&cn)
            || !mip6_anycast::wire::is_valid_home_address(&cn)
            || self.shutdown.is_some()
        {
            return;
        }
        let max = self.ro.max_clients.unwrap_or(65_536);
        if !self.clients.contains_key(&cn) && self.clients.len() >= max {
            self.stats.clients_refused += 1;
            return;
        }
        let in_progress = self
            .mn
            .entry(cn, now)
            .is_some_and(|e| e.goal == Goal::Register);
        let c = self.clients.entry(cn).or_default();
        if c.first_seen.is_none() {
            info!(%cn, source = p.source, "new client");
            c.first_seen = Some(now);
        }
        if !self.ro.enabled
            || c.unsupported
            || in_progress
            || c.start_at.is_some()
            || c.retry_after.is_some_and(|t| now < t)
        {
            return;
        }
        c.start_at = Some(now + self.ro.delay());
    }

    /// Starts route optimization of every client due at `now` (only while
    /// registered: the home test goes through the home agent).
    fn start_due_clients(&mut self, now: Instant) {
        if !self.is_registered() || self.shutdown.is_some() {
            return;
        }
        let due: Vec<Ipv6Addr> = self
            .clients
            .iter()
            .filter(|(_, c)| c.start_at.is_some_and(|t| t <= now))
            .map(|(cn, _)| *cn)
            .collect();
        for cn in due {
            if let Some(c) = self.clients.get_mut(&cn) {
                c.start_at = None;
            }
            // A client in motion or served by another member is the
            // coordinator's: route-optimizing it here would take it back.
            if let Some(g) = &self.group {
                let me = &g.co.config().me.name;
                if g.co.is_moving(cn) || g.co.placement(cn).is_some_and(|(m, _)| m != me) {
                    debug!(%cn, "client handed to another member: not route-optimized here");
                    continue;
                }
            }
            if self.mn.entry(cn, now).is_none()
                && let Some(r) = self.store.client(cn)
            {
                self.mn.set_next_sequence(cn, r.next_sequence);
            }
            if let Some(g) = &mut self.group
                && g.auto_handoff
            {
                let policy = g.policy;
                match g.co.handoff_by_policy(now, &mut self.mn, cn, policy) {
                    Ok(key) => {
                        let to = g.co.placement(cn).map(|(m, _)| m.clone());
                        info!(%cn, id = key.id, ?policy, "handing the new client off");
                        if let Some(to) = to {
                            g.decided(&key, cn, &to);
                        }
                        continue;
                    }
                    Err(e) => debug!(%cn, error = %e, "no handoff by policy: serving here"),
                }
            }
            debug!(%cn, "starting return routability");
            self.mn.register(now, cn, self.coa);
        }
    }

    /// A Binding Error "unknown binding for the home address option" from
    /// a client (RFC 6275 9.3.3): it dropped our binding, so our HAO
    /// packets are lost there. Fall back to the reverse tunnel at once;
    /// the mobile node registers again (RFC 6275 11.3.6).
    async fn binding_error(&mut self, packet: &[u8]) {
        let Ok(p) = MhPacketRepr::parse_with_bytes(packet) else {
            return;
        };
        if let MhMessage::BindingError(be) = &p.repr.mh.message
            && be.status == BeStatus::UnknownBindingForHao
            && be.home_address == self.x
            && self.clients.contains_key(&p.repr.src_addr)
        {
            self.stats.binding_errors += 1;
            let cn = p.repr.src_addr;
            // A Binding Error that comes right after our binding was
            // (re)installed answers a packet sent before it (e.g. while
            // this member handed the client away): stale, not a lost
            // binding (RFC 6275 9.3.3 gives no sequence to tell).
            if self
                .clients
                .get(&cn)
                .and_then(|c| c.installed.and(c.installed_at))
                .is_some_and(|t| t.elapsed() < STALE_BINDING_ERROR)
            {
                self.stats.stale_binding_errors += 1;
                debug!(%cn, "binding error for packets sent before our binding: ignored");
                return;
            }
            info!(%cn, "client lost our binding: reverse tunnelling until it is bound again");
            self.store.set_bound(cn, None);
            self.set_binding(cn, None).await;
        }
    }

    fn shutdown_phase(&mut self, now: Instant) {
        let Some(s) = self.shutdown else { return };
        let clients_done = self.dereg_pending.is_empty();
        let half_grace = now >= s.started + s.grace / 2;
        if !self.home_deregistering && (clients_done || half_grace) {
            self.home_deregistering = true;
            if self.failover.is_some() {
                // A backup takes X over when our heartbeats stop; a
                // deregistration would leave X unreachable until then.
                info!("leaving the group: X stays registered for a backup to take over");
                self.home.abandon();
                self.home_deregistered = true;
            } else if self.is_registered() || self.ever_registered {
                info!("deregistering at the home agent");
                self.home.deregister(now, wall_now());
            } else {
                self.home_deregistered = true;
            }
        }
    }

    /// Persists the list and removes what the daemon put into the engine
    /// (the steering goes with the engine).
    pub async fn finish(&mut self) {
        for (cn, c) in &self.clients {
            if c.installed.is_some() {
                let _ = self
                    .engine
                    .update(TableUpdate::RemoveHomeAddressBinding {
                        hoa: self.x,
                        peer: *cn,
                    })
                    .await;
            }
        }
        self.store.set_home_next_sequence(self.home.next_sequence());
        for cn in self.mn.correspondents().collect::<Vec<_>>() {
            if let Some(seq) = self.mn.next_sequence(cn) {
                self.store.set_next_sequence(cn, seq);
            }
        }
        if let Err(e) = self.store.flush() {
            warn!(error = %e, "writing the binding update list");
        }
    }
}
