//! The anycast group of a member (DESIGN.md 5; seed 004 4.2.2): the I/O
//! shell of the sans-IO handoff [`Coordinator`]. It owns the node channel
//! ([`mip6_anycast::group::Group`], Noise with a PSK from the group
//! secret), executes the coordinator's [`Action`]s with real sockets
//! (`tcp_handoff` freeze, dump, silent close, restore, activate, replay of
//! late segments) and the engine's member tables, and feeds the results
//! back as [`ShellEvent`]s.
//!
//! The [`ContactApp`](crate::app::ContactApp) owns the [`MobileNode`] of X
//! and lends it to every call: the coordinator drives the node's Binding
//! Updates (RFC 6275 11.7.2) during handoffs.
//!
//! - [`envelope`]: what travels on the channel (control frames, transfers,
//!   late segments).
//! - [`services`]: the services whose connections move.
//! - [`config`](crate::config::GroupSection): members, roles, policy.
//!
//! # When an acceptor crashes
//!
//! Before it committed (no `Bound` reached the donor), nothing is lost
//! for good: the donor's `Cancel` goes unanswered, and after
//! `abort_timeout` it thaws the frozen connections, serves them again and
//! registers the client back to its own care-of address (with a newer
//! sequence number, in case the client had already bound to the dead
//! acceptor); segments sent meanwhile are retransmitted by TCP. After the
//! commit the client's connections lived only in the acceptor's kernel and
//! are gone: the contact node, which knows where each client was placed,
//! stops forwarding to the dead member and deletes the client's binding
//! (de-registration BU), so the client falls back to the home path, its
//! old connections are reset there and new ones work. Operators see it in
//! `ctl handoffs` (`rolled_back`) and `ctl group` (the member no longer in
//! `connected`). The coordinator's docs
//! ([`mip6_anycast::proto::handoff`], "When a member dies") have the
//! details.

pub mod envelope;
pub mod rtt;
pub mod services;

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::FutureExt as _;
use mip6_anycast::crypto::{KeyHierarchy, RandomSource};
use mip6_anycast::daemon::system::unix_ms;
use mip6_anycast::engine::datapath::{EngineHandle, TableUpdate};
use mip6_anycast::group::{ChannelConfig, Group, GroupConfig, GroupEvent, GroupMember, Members};
use mip6_anycast::proto::MobileNode;
use mip6_anycast::proto::failover::FailoverMsg;
use mip6_anycast::proto::handoff::{
    Action, Coordinator, CoordinatorConfig, EngineChange, HandoffEvent, HandoffKey, HandoffMsg,
    LoadReport, MemberId, MemberInfo, Policy, Roles, ShellEvent,
};
use serde_json::{Value, json};
use tcp_handoff::{
    ConnectionHandoff, FreezeOptions, Frozen, Handoff, LateSegments, Limits, Paused, RestoreOptions,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{AnycastRoles, GroupSection, RoleName};
use envelope::Envelope;
use services::Movable;

/// How long a service may take to hand a connection back.
const SURRENDER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long activated streams are kept to replay late segments.
const REPLAY_WINDOW: Duration = Duration::from_secs(30);
/// How often the RTTs to clients are measured.
const RTT_PERIOD: Duration = Duration::from_secs(5);
/// How long a measured RTT is reported.
const RTT_FRESH: Duration = Duration::from_secs(30);
/// Most clients probed per round.
const RTT_TARGETS: usize = 256;

/// Handoff records kept for `ctl handoffs`.
const LOG_LEN: usize = 4096;

/// A frozen connection of the donor.
struct FrozenConn {
    frozen: Frozen,
    app_state: Vec<u8>,
}

/// A restored, paused connection of the acceptor.
struct PausedConn {
    paused: Paused,
    app_state: Vec<u8>,
    captured: Vec<tcp_handoff::CapturedSegment>,
}

/// A change of the client's home address binding (HAO out) the app
/// applies (it keeps the per-client view).
pub type BindingChange = (Ipv6Addr, Option<Ipv6Addr>);

/// Counters of the shell.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ShellStats {
    /// Channel messages dropped (undecodable, refused by the coordinator).
    pub messages_dropped: u64,
    /// Channel messages that could not be sent.
    pub send_failed: u64,
    /// Connections frozen, restored, activated, thawed.
    pub frozen: u64,
    /// See `frozen`.
    pub restored: u64,
    /// See `frozen`.
    pub activated: u64,
    /// See `frozen`.
    pub thawed: u64,
    /// Failures of freeze/restore/activate/thaw/close per connection.
    pub socket_errors: u64,
    /// Late segments replayed.
    pub late_replayed: u64,
    /// Failover messages not sent (peer not connected, queue full).
    pub failover_unsent: u64,
}

/// The group shell of one member.
pub struct GroupShell {
    /// The coordinator.
    pub co: Coordinator,
    net: Group,
    /// The configured members.
    members: Vec<MemberInfo>,
    /// The latest heartbeat, re-sent by the heartbeat pump.
    heartbeat: Option<tokio::sync::watch::Sender<Option<Vec<u8>>>>,
    me: MemberId,
    x: Ipv6Addr,
    /// Policy of automatic handoffs and drains.
    pub policy: Policy,
    /// Contact node: hand each new client off by policy.
    pub auto_handoff: bool,
    services: Vec<Arc<dyn Movable>>,
    frozen: HashMap<HandoffKey, Vec<FrozenConn>>,
    transfers: HashMap<HandoffKey, Handoff>,
    paused: HashMap<HandoffKey, Vec<PausedConn>>,
    replay_to: HashMap<HandoffKey, (Instant, Vec<TcpStream>)>,
    pending_late: HashMap<HandoffKey, Vec<LateSegments>>,
    limits: Limits,
    stats: ShellStats,
    /// Handoff events with wall-clock times (ms since the epoch).
    log: VecDeque<Value>,
    /// This member's care-of address (source of RTT probes).
    coa: Ipv6Addr,
    /// Measured RTTs to clients (when).
    rtts: HashMap<Ipv6Addr, (Duration, Instant)>,
    probing: Option<tokio::task::JoinHandle<std::io::Result<HashMap<Ipv6Addr, Duration>>>>,
    next_probe: Instant,
    probe_id: u16,
}

/// The member list in both forms (channel, coordinator), with the roles
/// they have for one anycast address.
fn members(
    cfg: &GroupSection,
    x_roles: &AnycastRoles,
) -> anyhow::Result<(Vec<GroupMember>, Vec<MemberInfo>)> {
    let mut g = Vec::new();
    let mut c = Vec::new();
    for m in &cfg.members {
        let roles = Roles {
            contact: m.name == x_roles.contact,
            backup: x_roles.backups.contains(&m.name),
            acceptor: m.has(RoleName::Acceptor),
        };
        g.push(GroupMember {
            info: mip6_anycast::group::MemberInfo {
                name: m.name.clone(),
                coa: m.care_of_address,
                roles: mip6_anycast::group::Roles {
                    contact: roles.contact,
                    backup: roles.backup,
                    acceptor: roles.acceptor,
                },
            },
            channel: SocketAddr::from((m.care_of_address, x_roles.port)),
        });
        c.push(MemberInfo {
            name: MemberId::new(m.name.clone())
                .map_err(|e| anyhow::anyhow!("member {:?}: {e}", m.name))?,
            coa: m.care_of_address,
            roles,
        });
    }
    Ok((g, c))
}

impl GroupShell {
    /// Starts the node channel and the coordinator; group events arrive on
    /// the returned receiver.
    pub async fn start(
        cfg: &GroupSection,
        x: Ipv6Addr,
        x_roles: &AnycastRoles,
        rng: &mut dyn RandomSource,
    ) -> anyhow::Result<(GroupShell, mpsc::Receiver<GroupEvent>)> {
        let secret = cfg
            .group_secret
            .as_ref()
            .context("the group secret was not loaded")?;
        let (gm, infos) = members(cfg, x_roles)?;
        let me_info = infos
            .iter()
            .find(|m| m.name.as_str() == cfg.me)
            .cloned()
            .context("this member is not in the member list")?;
        let contact = infos
            .iter()
            .find(|m| m.roles.contact)
            .map(|m| m.name.clone())
            .context("no contact node")?;
        let me_g = gm
            .iter()
            .find(|m| m.info.name == cfg.me)
            .map(|m| m.info.clone())
            .context("this member is not in the member list")?;
        let list = Members::new(gm).map_err(|e| anyhow::anyhow!("group members: {e}"))?;
        let psk = KeyHierarchy::new(secret).node_channel_psk();
        // A transfer carries the client's socket queues: after an idle
        // period the channel's TCP would start again from its initial
        // window and take several round trips (Lss each) for one bundle.
        // The setting is per network namespace.
        if let Err(e) =
            mip6_anycast::engine::sysctl::write(None, "net/ipv4/tcp_slow_start_after_idle", "0")
        {
            warn!(error = %e, "could not turn off TCP slow start after idle (handoff transfers may take extra round trips)");
        }
        let (net, events) = Group::start(GroupConfig::new(ChannelConfig::new(me_g, list, psk)))
            .await
            .context("starting the node channel")?;
        let co = Coordinator::new(
            CoordinatorConfig::new(me_info.clone(), x, contact),
            &infos,
            rng,
        );
        info!(me = %cfg.me, members = infos.len(), addr = %net.local_addr(), "anycast group channel up");
        Ok((
            GroupShell {
                co,
                net,
                members: infos.clone(),
                heartbeat: None,
                me: me_info.name,
                x,
                policy: cfg.policy,
                auto_handoff: cfg.auto_handoff,
                services: Vec::new(),
                frozen: HashMap::new(),
                transfers: HashMap::new(),
                paused: HashMap::new(),
                replay_to: HashMap::new(),
                pending_late: HashMap::new(),
                limits: Limits::default(),
                stats: ShellStats::default(),
                log: VecDeque::new(),
                coa: me_info.coa,
                rtts: HashMap::new(),
                probing: None,
                next_probe: Instant::now(),
                probe_id: u16::from_be_bytes([0x4d, (std::process::id() & 0xff) as u8]),
            },
            events,
        ))
    }

    /// Adds a service whose connections move.
    pub fn add_service(&mut self, s: Arc<dyn Movable>) {
        self.services.push(s);
    }

    /// Connections of `client` in the services.
    pub fn connections_of(&self, client: Ipv6Addr) -> usize {
        self.services.iter().map(|s| s.connections_of(client)).sum()
    }

    fn service(&self, port: u16) -> Option<&Arc<dyn Movable>> {
        self.services.iter().find(|s| s.port() == port)
    }

    fn record(&mut self, what: &str, client: Ipv6Addr, extra: Value) {
        if self.log.len() >= LOG_LEN {
            self.log.pop_front();
        }
        let mut v = json!({"t_unix_ms": unix_ms(), "event": what, "client": client});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        self.log.push_back(v);
    }

    /// Notes an operator or policy decision (for the handoff delay).
    pub fn decided(&mut self, key: &HandoffKey, client: Ipv6Addr, to: &MemberId) {
        self.record(
            "decided",
            client,
            json!({"id": key.id, "donor": key.donor.as_str(), "to": to.as_str()}),
        );
    }

    /// A group event: peers up/down, messages.
    /// Handles a node-channel event; a failover message is returned to
    /// the app (it owns the failover machine).
    pub fn on_event(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        ev: GroupEvent,
    ) -> Option<(MemberId, FailoverMsg)> {
        match ev {
            GroupEvent::Up(m) => {
                if let Ok(id) = MemberId::new(m.name) {
                    info!(peer = %id.as_str(), "group member up");
                    self.co.peer_up(&id);
                }
            }
            GroupEvent::Down { peer, reason } => {
                if let Ok(id) = MemberId::new(peer) {
                    warn!(peer = %id.as_str(), reason, "group member down");
                    self.co.peer_down(now, mn, &id);
                }
            }
            GroupEvent::Message { from, msg } => return self.on_message(now, mn, &from, &msg),
        }
        None
    }

    fn on_message(
        &mut self,
        now: Instant,
        mn: &mut MobileNode,
        from: &str,
        msg: &[u8],
    ) -> Option<(MemberId, FailoverMsg)> {
        let Ok(from) = MemberId::new(from) else {
            self.stats.messages_dropped += 1;
            return None;
        };
        match envelope::parse(msg, &self.limits) {
            Ok(Envelope::Failover(frame)) => match FailoverMsg::parse(frame) {
                Ok(m) => return Some((from, m)),
                Err(e) => {
                    self.stats.messages_dropped += 1;
                    debug!(peer = from.as_str(), error = %e, "failover message dropped");
                }
            },
            Ok(Envelope::Control(frame)) => {
                if let Err(e) = self.co.handle_frame(now, mn, &from, frame) {
                    self.stats.messages_dropped += 1;
                    debug!(peer = from.as_str(), error = ?e, "handoff message dropped");
                }
            }
            Ok(Envelope::Transfer { id, client, bundle }) => {
                let key = HandoffKey { donor: from, id };
                let n = u32::try_from(bundle.connections.len()).unwrap_or(u32::MAX);
                self.record("transfer", client, json!({"id": id, "connections": n}));
                self.transfers.insert(key.clone(), bundle);
                let ev = ShellEvent::Transfer {
                    key,
                    client,
                    connections: n,
                };
                self.co.handle_shell(now, mn, ev);
            }
            Ok(Envelope::Late { id, late, .. }) => {
                let key = HandoffKey { donor: from, id };
                if let Some((_, streams)) = self.replay_to.get(&key) {
                    let n = replay_late(streams, &late);
                    self.stats.late_replayed += n as u64;
                } else {
                    self.pending_late.entry(key).or_default().extend(late);
                }
            }
            Err(e) => {
                self.stats.messages_dropped += 1;
                debug!(peer = from.as_str(), error = %e, "channel message dropped");
            }
        }
        None
    }

    /// Sends a failover message without waiting: a full queue drops it
    /// (the next heartbeat follows soon).
    pub fn send_failover(&mut self, to: &MemberId, msg: &FailoverMsg) {
        let bytes = envelope::failover(&msg.to_bytes());
        if let (FailoverMsg::Heartbeat { .. }, Some(h)) = (msg, &self.heartbeat) {
            h.send_replace(Some(bytes.clone()));
        }
        match self.net.send(to.as_str(), bytes).now_or_never() {
            Some(Ok(())) => {}
            Some(Err(_)) | None => self.stats.failover_unsent += 1,
        }
    }

    /// Starts a task that sends the latest heartbeat to `peers` every
    /// `every`, beside the app's loop: a member busy for a moment (a
    /// handoff dumping sockets, a slow engine update) still shows it is
    /// alive; a killed or frozen process stops it.
    pub fn start_heartbeat_pump(&mut self, every: Duration, peers: Vec<MemberId>) {
        let (tx, mut rx) = tokio::sync::watch::channel::<Option<Vec<u8>>>(None);
        let sender = self.net.sender();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if rx.has_changed().is_err() {
                    return;
                }
                let Some(msg) = rx.borrow_and_update().clone() else {
                    continue;
                };
                for p in &peers {
                    let _ = sender.send(p.as_str(), msg.clone()).now_or_never();
                }
            }
        });
        self.heartbeat = Some(tx);
    }

    /// The member whose care-of address is `coa`.
    pub fn member_by_coa(&self, coa: Ipv6Addr) -> Option<MemberId> {
        self.members
            .iter()
            .find(|m| m.coa == coa)
            .map(|m| m.name.clone())
    }

    async fn send(&mut self, to: &MemberId, bytes: Vec<u8>) {
        if let Err(e) = self.net.send(to.as_str(), bytes).await {
            self.stats.send_failed += 1;
            warn!(peer = to.as_str(), error = %e, "node channel send failed");
        }
    }

    /// Sends this member's load to the others (least-connections policy).
    pub async fn report_load(&mut self) {
        let mut report = self.co.load_report();
        let now = Instant::now();
        report.rtt_us = self
            .rtts
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) < RTT_FRESH)
            .map(|(c, (d, _))| (*c, u32::try_from(d.as_micros()).unwrap_or(u32::MAX)))
            .take(LoadReport::MAX_RTTS)
            .collect();
        let Ok(frame) = HandoffMsg::Load(report).to_bytes() else {
            return;
        };
        for peer in self.net.connected_peers() {
            if let Ok(id) = MemberId::new(peer) {
                self.send(&id, envelope::control(&frame)).await;
            }
        }
    }

    /// Measures this member's RTT to the clients it knows (`own`) and to
    /// those the other members reported, one probe round at a time, every
    /// [`RTT_PERIOD`] (for the lowest-RTT policy).
    pub fn probe_tick(&mut self, now: Instant, own: impl Iterator<Item = Ipv6Addr>) {
        if let Some(t) = self.probing.take_if(|t| t.is_finished()) {
            // Finished: this does not wait.
            match t.now_or_never() {
                Some(Ok(Ok(r))) => {
                    for (c, d) in r {
                        self.rtts.insert(c, (d, now));
                    }
                }
                Some(Ok(Err(e))) => debug!(error = %e, "RTT probes"),
                _ => {}
            }
        }
        if self.probing.is_some() || now < self.next_probe {
            return;
        }
        self.next_probe = now + RTT_PERIOD;
        let mut targets: Vec<Ipv6Addr> = own.chain(self.co.reported_clients()).collect();
        targets.sort_unstable();
        targets.dedup();
        targets.truncate(RTT_TARGETS);
        if targets.is_empty() {
            return;
        }
        let (src, id) = (self.coa, self.probe_id);
        self.probe_id = self.probe_id.wrapping_add(1);
        self.probing = Some(tokio::task::spawn_blocking(move || {
            rtt::probe_all(src, &targets, id, Duration::from_secs(1))
        }));
    }

    /// Runs one coordinator action; a home address binding change is
    /// returned for the app to apply.
    pub async fn execute(
        &mut self,
        now: Instant,
        a: Action,
        mn: &mut MobileNode,
        engine: &EngineHandle,
    ) -> Option<BindingChange> {
        let ev = match a {
            Action::Send { to, msg } => {
                match msg.to_bytes() {
                    Ok(f) => self.send(&to, envelope::control(&f)).await,
                    Err(e) => warn!(error = ?e, "encoding a handoff message"),
                }
                return None;
            }
            Action::Engine(c) => return self.engine_change(c, engine).await,
            Action::Event(e) => {
                self.event(e);
                return None;
            }
            Action::Freeze { key, client, to } => self.freeze(key, client, &to).await,
            Action::Thaw { key, client } => self.thaw(key, client),
            Action::CloseFrozen { key, client, to } => self.close_frozen(key, client, &to).await,
            Action::Restore { key, client } => self.restore(key, client),
            Action::Activate { key, client } => self.activate(key, client),
            Action::Discard { key, client } => {
                debug!(%client, id = key.id, "transfer discarded");
                self.transfers.remove(&key);
                for p in self.paused.remove(&key).unwrap_or_default() {
                    p.paused.abort();
                }
                return None;
            }
        };
        self.co.handle_shell(now, mn, ev);
        None
    }

    async fn engine_change(
        &mut self,
        c: EngineChange,
        engine: &EngineHandle,
    ) -> Option<BindingChange> {
        match c {
            EngineChange::AddHomeAddressBinding { peer, coa, .. } => Some((peer, Some(coa))),
            EngineChange::RemoveHomeAddressBinding { peer, .. } => Some((peer, None)),
            other => {
                let u = TableUpdate::from(other);
                if let Err(e) = engine.update(u.clone()).await {
                    warn!(update = ?u, error = %e, "member table update failed");
                }
                None
            }
        }
    }

    fn event(&mut self, e: HandoffEvent) {
        info!(event = ?e, "handoff");
        let (what, client, extra) = match &e {
            HandoffEvent::Started { key, client, to } => {
                ("started", *client, json!({"id": key.id, "to": to.as_str()}))
            }
            HandoffEvent::Completed {
                key,
                client,
                to,
                sequence,
                ..
            } => (
                "completed",
                *client,
                json!({"id": key.id, "to": to.as_str(), "sequence": sequence}),
            ),
            HandoffEvent::Accepted { key, client, .. } => (
                "accepted",
                *client,
                json!({"id": key.id, "donor": key.donor.as_str()}),
            ),
            HandoffEvent::RolledBack { key, client, .. } => (
                "rolled_back",
                *client,
                json!({"id": key.id, "detail": format!("{e:?}")}),
            ),
            HandoffEvent::AcceptAborted { key, client, .. } => (
                "accept_aborted",
                *client,
                json!({"id": key.id, "detail": format!("{e:?}")}),
            ),
            _ => (
                "other",
                Ipv6Addr::UNSPECIFIED,
                json!({"detail": format!("{e:?}")}),
            ),
        };
        self.record(what, client, extra);
    }

    async fn freeze(&mut self, key: HandoffKey, client: Ipv6Addr, to: &MemberId) -> ShellEvent {
        let mut taken = Vec::new();
        for s in self.services.clone() {
            for r in s.surrender(client, SURRENDER_TIMEOUT).await {
                match r {
                    Ok(t) => taken.push((s.clone(), t)),
                    Err(e) => {
                        self.stats.socket_errors += 1;
                        warn!(%client, service = s.name(), error = %e, "surrender failed");
                    }
                }
            }
        }
        let mut frozen = Vec::new();
        let mut failed = false;
        for (svc, (stream, app_state)) in taken {
            if failed {
                let _ = svc.adopt(stream, &app_state);
                continue;
            }
            match tcp_handoff::freeze(&stream, &FreezeOptions::default()) {
                Ok(f) => frozen.push(FrozenConn {
                    frozen: f,
                    app_state,
                }),
                Err(e) => {
                    warn!(%client, error = %e, "freeze failed");
                    self.stats.socket_errors += 1;
                    failed = true;
                    let _ = svc.adopt(stream, &app_state);
                }
            }
        }
        let mut bundle = Handoff::default();
        if !failed {
            for f in &mut frozen {
                match f.frozen.dump() {
                    Ok(tcp) => bundle.connections.push(ConnectionHandoff {
                        tcp,
                        app_state: f.app_state.clone(),
                        captured: f.frozen.take_captured(),
                    }),
                    Err(e) => {
                        warn!(%client, error = %e, "dump failed");
                        self.stats.socket_errors += 1;
                        failed = true;
                        break;
                    }
                }
            }
        }
        if failed {
            self.thaw_all(client, frozen);
            return ShellEvent::FreezeFailed { key };
        }
        let n = u32::try_from(frozen.len()).unwrap_or(u32::MAX);
        self.stats.frozen += u64::from(n);
        let queues: Vec<[usize; 3]> = bundle
            .connections
            .iter()
            .map(|c| [c.tcp.sent.len(), c.tcp.unsent.len(), c.tcp.recv.len()])
            .collect();
        let msg = envelope::transfer(key.id, client, &bundle);
        let bytes = msg.len();
        self.send(to, msg).await;
        self.record(
            "frozen",
            client,
            json!({"id": key.id, "connections": n, "bytes": bytes, "queues_sent_unsent_recv": queues}),
        );
        self.frozen.insert(key.clone(), frozen);
        ShellEvent::Frozen {
            key,
            connections: n,
        }
    }

    fn thaw_all(&mut self, client: Ipv6Addr, frozen: Vec<FrozenConn>) {
        for f in frozen {
            let port = f.frozen.id().local.port();
            match f.frozen.thaw() {
                Ok(fd) => {
                    self.stats.thawed += 1;
                    let stream = TcpStream::from(fd);
                    match self.service(port) {
                        Some(s) => {
                            if let Err(e) = s.adopt(stream, &f.app_state) {
                                warn!(%client, error = %e, "re-adopting a thawed connection");
                            }
                        }
                        None => warn!(%client, port, "no service for a thawed connection"),
                    }
                }
                Err(e) => {
                    self.stats.socket_errors += 1;
                    warn!(%client, error = %e, "thaw failed");
                }
            }
        }
    }

    fn thaw(&mut self, key: HandoffKey, client: Ipv6Addr) -> ShellEvent {
        let frozen = self.frozen.remove(&key).unwrap_or_default();
        self.thaw_all(client, frozen);
        self.record("thawed", client, json!({"id": key.id}));
        ShellEvent::Thawed { key }
    }

    async fn close_frozen(
        &mut self,
        key: HandoffKey,
        client: Ipv6Addr,
        to: &MemberId,
    ) -> ShellEvent {
        let mut late = Vec::new();
        for f in self.frozen.remove(&key).unwrap_or_default() {
            let id = f.frozen.id();
            match f.frozen.close_silently() {
                Ok(segments) if !segments.is_empty() => late.push(LateSegments { id, segments }),
                Ok(_) => {}
                Err(e) => {
                    self.stats.socket_errors += 1;
                    warn!(%client, error = %e, "silent close failed");
                }
            }
        }
        if !late.is_empty() {
            self.send(to, envelope::late(key.id, client, &late)).await;
        }
        ShellEvent::Closed { key }
    }

    fn restore(&mut self, key: HandoffKey, client: Ipv6Addr) -> ShellEvent {
        let Some(bundle) = self.transfers.remove(&key) else {
            return ShellEvent::RestoreFailed { key };
        };
        let mut paused = Vec::new();
        for c in bundle.connections {
            match tcp_handoff::restore_paused(&c.tcp, &RestoreOptions::default()) {
                Ok(p) => paused.push(PausedConn {
                    paused: p,
                    app_state: c.app_state,
                    captured: c.captured,
                }),
                Err(e) => {
                    warn!(%client, error = %e, "restore failed");
                    self.stats.socket_errors += 1;
                    for p in paused {
                        p.paused.abort();
                    }
                    return ShellEvent::RestoreFailed { key };
                }
            }
        }
        self.stats.restored += paused.len() as u64;
        self.record(
            "restored",
            client,
            json!({"id": key.id, "connections": paused.len()}),
        );
        self.paused.insert(key.clone(), paused);
        ShellEvent::Restored { key }
    }

    fn activate(&mut self, key: HandoffKey, client: Ipv6Addr) -> ShellEvent {
        let paused = self.paused.remove(&key).unwrap_or_default();
        let mut streams = Vec::new();
        let mut failed = false;
        for p in paused {
            let port = p.paused.id().local.port();
            // Activation writes the unsent bytes back (bounded wait).
            let live = tokio::task::block_in_place(|| p.paused.activate());
            match live {
                Ok(live) => {
                    if let Err(e) = tcp_handoff::replay(&live.stream, &p.captured) {
                        debug!(%client, error = %e, "replaying captured segments");
                    }
                    if let Ok(c) = live.stream.try_clone() {
                        streams.push(c);
                    }
                    match self.service(port) {
                        Some(s) => {
                            if let Err(e) = s.adopt(live.stream, &p.app_state) {
                                warn!(%client, error = %e, "service refused a restored connection");
                                self.stats.socket_errors += 1;
                            } else {
                                self.stats.activated += 1;
                            }
                        }
                        None => {
                            warn!(%client, port, "no service on this port for a restored connection");
                            self.stats.socket_errors += 1;
                        }
                    }
                }
                Err(e) => {
                    warn!(%client, error = %e, "activation failed");
                    self.stats.socket_errors += 1;
                    failed = true;
                }
            }
        }
        if let Some(late) = self.pending_late.remove(&key) {
            self.stats.late_replayed += replay_late(&streams, &late) as u64;
        }
        self.replay_to
            .retain(|_, (t, _)| t.elapsed() < REPLAY_WINDOW);
        self.replay_to
            .insert(key.clone(), (Instant::now(), streams));
        self.record("activated", client, json!({"id": key.id}));
        if failed {
            ShellEvent::ActivateFailed { key }
        } else {
            ShellEvent::Activated { key }
        }
    }

    /// `ctl group`: members, coordinator counters, shell counters.
    pub fn status(&self) -> Value {
        let peers: Vec<Value> = self
            .net
            .connected_peers()
            .into_iter()
            .map(|p| {
                let s = self.net.stats(&p);
                json!({"name": p, "stats": s.map(|s| format!("{s:?}"))})
            })
            .collect();
        let (donating, accepting) = self.co.in_progress();
        json!({
            "me": self.me.as_str(),
            "hoa": self.x,
            "contact": self.co.is_contact(),
            "policy": self.policy,
            "auto_handoff": self.auto_handoff,
            "connected": peers,
            "rejected": self.net.rejected(),
            "coordinator": format!("{:?}", self.co.stats()),
            "in_progress": {"donating": donating, "accepting": accepting},
            "clients": self.co.clients().map(|(c, n)| json!({"client": c, "connections": n})).collect::<Vec<_>>(),
            "shell": self.stats,
            "rtt_us": self.rtts.iter().map(|(c, (d, _))| (c.to_string(), d.as_micros() as u64)).collect::<std::collections::BTreeMap<_, _>>(),
        })
    }

    /// `ctl handoffs`: the event log (wall-clock ms).
    pub fn handoff_log(&self) -> Value {
        Value::Array(self.log.iter().cloned().collect())
    }
}

/// Replays late segments into the streams of the same connections.
fn replay_late(streams: &[TcpStream], late: &[LateSegments]) -> usize {
    let mut n = 0;
    for l in late {
        let Some(s) = streams.iter().find(|s| {
            s.peer_addr().ok() == Some(l.id.remote)
                && s.local_addr().ok().map(|a| a.port()) == Some(l.id.local.port())
        }) else {
            continue;
        };
        if let Ok(k) = tcp_handoff::replay(s, &l.segments) {
            n += k;
        }
    }
    n
}
