//! The I/O side of contact-node failover (seed 004 4.2.1): the app feeds
//! the sans-IO [`Failover`] machine with node-channel messages and
//! timers, sends its heartbeats and snapshots, and acts on its events:
//!
//! - **BecomeContact** (configured start or takeover): register X at the
//!   home agent. A takeover uses the replicated key, starts the home
//!   sequence [`TAKEOVER_SEQUENCE_JUMP`] above the replicated high-water
//!   mark with resynchronisation allowed for this first registration,
//!   switches the mobile node to local home tests, tells the coordinator
//!   it is the contact now, learns the old contact's placements, and
//!   route-optimizes the clients the old contact had bound to itself (their
//!   sequence numbers [`CLIENT_SEQUENCE_JUMP`] above the replicated ones,
//!   home keygen tokens reused), so they reach the new contact directly.
//! - **StepDown**: stop refreshing without deregistering (the binding at
//!   the home agent is the new contact's now); clients bound here keep
//!   being served, their tokens come from the new contact.
//! - Once registered, a BA 135 means another member took X over: the
//!   home registration reports [`HomeRegEvent::Overtaken`] instead of
//!   resynchronising, and the app steps down ([`Failover::overtaken`]).
//!
//! Key rotation (`ctl rotate-key`): the new security association is added
//! to the snapshot as `next_key`; when every live backup holds that
//! version the contact node re-registers with it, then makes it the key.
//! The home agent must know both SAs meanwhile.
//!
//! [`HomeRegEvent::Overtaken`]: mip6_anycast::proto::HomeRegEvent::Overtaken

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::crypto::Spi;
use mip6_anycast::daemon::config::HexKey;
use mip6_anycast::daemon::control::Request;
use mip6_anycast::daemon::system::{unix_ms, wall_now};
use mip6_anycast::proto::CorrespondentState;
use mip6_anycast::proto::HomeTestMode;
use mip6_anycast::proto::failover::{
    CLIENT_SEQUENCE_JUMP, ClientRecord, ContactSnapshot, Failover, FailoverAction, FailoverEvent,
    FailoverMsg, RegistrationKey, Role, TAKEOVER_SEQUENCE_JUMP,
};
use mip6_anycast::proto::handoff::MemberId;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::ContactApp;

/// The snapshot is rebuilt at least this often while contact (token ages,
/// placements), and at every heartbeat when something changed.
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(1);

/// What the failover shell keeps besides the machine.
#[derive(Debug, Default)]
pub struct FailoverShell {
    /// A key being rolled out, and the snapshot version that carries it.
    pub rotation: Option<(RegistrationKey, Option<u64>)>,
    /// Re-registering with the rotated key.
    pub rotating: bool,
    /// The contact node's state changed since the last snapshot.
    pub dirty: bool,
    /// When the snapshot was last rebuilt.
    pub built_at: Option<Instant>,
    /// Wall-clock times (ms since the epoch) of the last events.
    pub lost_at: Option<u64>,
    /// See `lost_at`.
    pub became_contact_at: Option<u64>,
    /// See `lost_at`.
    pub registered_at: Option<u64>,
    /// See `lost_at`.
    pub stepped_down_at: Option<u64>,
    /// Between becoming contact and the first accepted registration.
    pub awaiting_registration: bool,
    /// Whether the current contact role came from a takeover.
    pub took_over: bool,
    /// Clients imported at the last takeover.
    pub imported: usize,
}

impl ContactApp {
    /// The failover machine's timer.
    pub(super) fn failover_timeout(&self) -> Option<Instant> {
        self.failover.as_ref().and_then(Failover::poll_timeout)
    }

    /// Timers: refresh the snapshot, then let the machine run.
    pub(super) async fn failover_tick(&mut self, now: Instant) {
        let Some(f) = &self.failover else { return };
        if f.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        if f.role() == Role::Contact {
            let stale = self
                .fo
                .built_at
                .is_none_or(|t| now.saturating_duration_since(t) >= SNAPSHOT_REFRESH);
            if self.fo.dirty || stale {
                self.publish_snapshot(now);
            }
            self.advance_rotation(now);
        }
        if let Some(f) = &mut self.failover {
            f.handle_timeout(now);
        }
        self.failover_actions(now).await;
    }

    /// A failover message from `from`.
    pub(super) async fn failover_message(&mut self, now: Instant, from: MemberId, m: FailoverMsg) {
        if let Some(f) = &mut self.failover {
            f.handle_message(now, &from, m);
        }
        if self
            .failover
            .as_ref()
            .is_some_and(|f| f.role() == Role::Contact)
        {
            self.advance_rotation(now);
        }
        self.failover_actions(now).await;
    }

    /// Sends what the machine queued and acts on its events.
    pub(super) async fn failover_actions(&mut self, now: Instant) {
        loop {
            let Some(a) = self.failover.as_mut().and_then(Failover::poll_action) else {
                return;
            };
            match a {
                FailoverAction::Send { to, msg } => {
                    if let Some(g) = &mut self.group {
                        g.send_failover(&to, &msg);
                    }
                }
                FailoverAction::Event(e) => self.failover_event(now, e).await,
            }
        }
    }

    async fn failover_event(&mut self, now: Instant, e: FailoverEvent) {
        match e {
            FailoverEvent::BecomeContact { epoch, takeover } => {
                self.become_contact(now, epoch, takeover);
                self.process(now).await;
            }
            FailoverEvent::StepDown { epoch, contact } => {
                warn!(epoch, contact = ?contact.as_ref().map(MemberId::as_str), "stepping down: another member holds X");
                self.fo.stepped_down_at = Some(unix_ms());
                self.home.abandon();
                self.registered = None;
                self.is_contact = false;
                self.fo.rotating = false;
                self.mn.set_home_test_mode(HomeTestMode::External);
                if let (Some(g), Some(c)) = (&mut self.group, contact) {
                    g.co.set_contact(c);
                    g.co.announce_clients(&self.mn);
                }
                self.process(now).await;
            }
            FailoverEvent::ContactChanged { epoch, contact } => {
                info!(
                    epoch,
                    contact = contact.as_str(),
                    "following a new contact node"
                );
                if let Some(g) = &mut self.group {
                    g.co.set_contact(contact);
                    // Tell it which clients live here.
                    g.co.announce_clients(&self.mn);
                }
                self.process(now).await;
            }
            FailoverEvent::ContactLost {
                contact,
                silent_for,
            } => {
                warn!(
                    contact = contact.as_str(),
                    ?silent_for,
                    "contact node silent"
                );
                self.fo.lost_at = Some(unix_ms());
            }
        }
    }

    fn become_contact(&mut self, now: Instant, epoch: u64, takeover: bool) {
        self.fo.became_contact_at = Some(unix_ms());
        self.fo.awaiting_registration = true;
        self.fo.took_over = takeover;
        let snapshot = self
            .failover
            .as_ref()
            .and_then(|f| f.snapshot().map(|(s, _)| s.clone()));
        if takeover {
            match snapshot
                .as_ref()
                .map(|s| s.key.clone())
                .or(self.reg_key.clone())
            {
                Some(k) => {
                    self.home.set_security_association(k.spi, k.mn_ha_key());
                    self.reg_key = Some(k);
                }
                None => {
                    warn!(
                        epoch,
                        "taking X over without a replicated key: cannot register"
                    );
                    return;
                }
            }
            if let Some(s) = &snapshot {
                let mine = self.home.next_sequence();
                let theirs = s.home_next_sequence.wrapping_add(TAKEOVER_SEQUENCE_JUMP);
                if mip6_anycast::proto::seq_newer(theirs, mine) {
                    self.home.set_next_sequence(theirs);
                }
            }
            self.home.set_resync_allowed(true);
            warn!(epoch, coa = %self.coa, "taking the anycast address over");
        } else {
            // A newer registration at the home agent means a backup took
            // X over while we were away: never resynchronise past it.
            self.home.set_resync_allowed(false);
            info!(epoch, "contact node: registering X");
        }
        self.is_contact = true;
        self.mn.set_home_test_mode(HomeTestMode::Local);
        if let Some(g) = &mut self.group {
            g.co.set_contact(g.co.config().me.name.clone());
        }
        if let (true, Some(s)) = (takeover, &snapshot) {
            self.import_snapshot(now, s);
        }
        self.fo.dirty = true;
        self.home.register(now, wall_now());
    }

    /// A new contact node continues the old one's clients.
    fn import_snapshot(&mut self, now: Instant, s: &ContactSnapshot) {
        let me = self.group.as_ref().map(|g| g.co.config().me.name.clone());
        let old = self.failover_old_contact(s);
        let announce_wait = self
            .failover
            .as_ref()
            .map_or(Duration::ZERO, |f| f.config().heartbeat * 2);
        let mut imported = 0;
        for c in &s.clients {
            let next = c.next_sequence.wrapping_add(CLIENT_SEQUENCE_JUMP);
            if Some(&c.served_by) == me.as_ref() {
                // Ours already: only never move the sequence back.
                let ours = self.mn.next_sequence(c.cn);
                if ours.is_none_or(|o| mip6_anycast::proto::seq_newer(next, o)) {
                    self.mn.set_next_sequence(c.cn, next);
                }
                continue;
            }
            if old.as_ref() != Some(&c.served_by) {
                if let Some(g) = &mut self.group {
                    g.co.record_placement(c.cn, c.served_by.clone(), c.next_sequence);
                }
                continue;
            }
            // The old contact's own client.
            self.mn.import(
                now,
                &CorrespondentState {
                    hoa: self.x,
                    cn: c.cn,
                    home_token: c.home_token.clone(),
                    next_sequence: next,
                },
            );
            imported += 1;
            if c.bound {
                // After the members' `Placed` announcements had time to
                // arrive: a client that moved to a member after the last
                // snapshot stays there.
                let e = self.clients.entry(c.cn).or_default();
                e.first_seen.get_or_insert(now);
                e.start_at = Some(now + announce_wait);
            }
        }
        self.fo.imported = imported;
        info!(imported, "continuing the old contact node's clients");
    }

    /// The member whose clients the snapshot lists as "its own": the one
    /// that registered `contact_coa`.
    fn failover_old_contact(&self, s: &ContactSnapshot) -> Option<MemberId> {
        let g = self.group.as_ref()?;
        g.member_by_coa(s.contact_coa)
    }

    /// Rebuilds the snapshot and hands it to the machine.
    fn publish_snapshot(&mut self, now: Instant) {
        let Some(key) = self.reg_key.clone() else {
            return;
        };
        let Some(g) = &self.group else { return };
        let me = g.co.config().me.name.clone();
        let mut clients: Vec<ClientRecord> = Vec::new();
        for cn in self.mn.correspondents().collect::<Vec<Ipv6Addr>>() {
            let Some(st) = self.mn.export(now, cn) else {
                continue;
            };
            let (served_by, bound) = match g.co.placement(cn) {
                Some((m, _)) if *m != me => (m.clone(), true),
                _ => (
                    me.clone(),
                    self.clients.get(&cn).is_some_and(|c| c.installed.is_some()),
                ),
            };
            clients.push(ClientRecord {
                cn,
                next_sequence: st.next_sequence,
                home_token: st.home_token,
                served_by,
                bound,
            });
        }
        for (cn, m, seq) in g.co.placements() {
            if *m != me && !clients.iter().any(|c| c.cn == cn) {
                clients.push(ClientRecord {
                    cn,
                    next_sequence: seq,
                    home_token: None,
                    served_by: m.clone(),
                    bound: true,
                });
            }
        }
        clients.truncate(mip6_anycast::proto::failover::MAX_SNAPSHOT_CLIENTS);
        let snap = ContactSnapshot {
            contact_coa: self.coa,
            key,
            next_key: self.fo.rotation.as_ref().map(|(k, _)| k.clone()),
            home_next_sequence: self.home.next_sequence(),
            clients,
        };
        self.fo.dirty = false;
        self.fo.built_at = Some(now);
        if let Some(f) = &mut self.failover {
            f.set_snapshot(now, snap);
            if let Some((_, v @ None)) = &mut self.fo.rotation {
                *v = f.snapshot().map(|(_, v)| v);
            }
        }
    }

    /// Key rotation: switch once every live backup holds the new key.
    fn advance_rotation(&mut self, now: Instant) {
        if self.fo.rotating || !self.is_registered() {
            return;
        }
        let Some((key, Some(version))) = &self.fo.rotation else {
            return;
        };
        let held = self
            .failover
            .as_ref()
            .is_some_and(|f| f.backups_hold(now, *version));
        if !held {
            return;
        }
        info!(
            spi = key.spi.0,
            "every live backup holds the new key: re-registering with it"
        );
        self.home.set_security_association(key.spi, key.mn_ha_key());
        self.fo.rotating = true;
        self.home.register(now, wall_now());
    }

    /// The home agent accepted a registration.
    pub(super) fn failover_registered(&mut self) {
        if self.failover.is_none() {
            return;
        }
        // From now on a 135 means someone else took X over.
        self.home.set_resync_allowed(false);
        if std::mem::take(&mut self.fo.awaiting_registration) {
            self.fo.registered_at = Some(unix_ms());
        }
        if self.fo.rotating {
            self.fo.rotating = false;
            if let Some((k, _)) = self.fo.rotation.take() {
                info!(spi = k.spi.0, "key rotation done");
                self.reg_key = Some(k);
            }
        }
        self.fo.dirty = true;
    }

    /// The home agent answered 135 after we had registered.
    pub(super) fn failover_overtaken(&mut self, now: Instant) {
        if let Some(f) = &mut self.failover {
            f.overtaken(now);
        }
    }

    /// `ctl rotate-key --args '{"spi": N, "key": "HEX"}'`.
    pub(super) fn cmd_rotate_key(&mut self, req: &Request) -> Result<Value, String> {
        let usage = "args: {\"spi\": N (>= 256), \"key\": HEX (1..=64 octets)}";
        if !self.is_contact {
            return Err("only the contact node rotates the registration key".into());
        }
        if self.fo.rotation.is_some() {
            return Err("a rotation is in progress".into());
        }
        let spi = req
            .args
            .get("spi")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok())
            .filter(|s| *s >= 256)
            .ok_or(usage)?;
        let raw = req
            .args
            .get("key")
            .cloned()
            .and_then(|k| serde_json::from_value::<HexKey>(k).ok())
            .ok_or(usage)?
            .0;
        if self.reg_key.as_ref().is_some_and(|k| k.spi.0 == spi) {
            return Err(format!("SPI {spi} is the current one"));
        }
        let key = RegistrationKey::new(Spi(spi), &raw).map_err(|e| e.to_string())?;
        self.fo.rotation = Some((key, None));
        self.fo.dirty = true;
        if self.failover.is_none() {
            // No backups to wait for.
            self.fo.rotation = self.fo.rotation.take().map(|(k, _)| (k, Some(0)));
        } else {
            self.publish_snapshot(Instant::now());
        }
        Ok(json!({"rotating_to_spi": spi}))
    }

    /// `ctl failover`.
    pub(super) fn failover_status(&self) -> Value {
        let now = Instant::now();
        let Some(f) = &self.failover else {
            return json!({"enabled": false, "is_contact": self.is_contact});
        };
        json!({
            "enabled": true,
            "role": f.role(),
            "epoch": f.epoch(),
            "contact": f.contact().map(MemberId::as_str),
            "is_contact": self.is_contact,
            "registered": self.is_registered(),
            "spi": self.reg_key.as_ref().map(|k| k.spi.0),
            "rotation": self.fo.rotation.as_ref().map(|(k, v)| json!({"spi": k.spi.0, "version": v, "switching": self.fo.rotating})),
            "snapshot_version": f.snapshot().map(|(_, v)| v),
            "snapshot_clients": f.snapshot().map(|(s, _)| s.clients.len()),
            "snapshot_spi": f.snapshot().map(|(s, _)| s.key.spi.0),
            "snapshot_next_spi": f.snapshot().and_then(|(s, _)| s.next_key.as_ref().map(|k| k.spi.0)),
            "snapshot_clients_at_members": f.snapshot().map(|(s, _)| {
                s.clients.iter().filter(|c| Some(&c.served_by) != f.contact()).count()
            }),
            "live_members": f.live_members(now).iter().map(MemberId::as_str).collect::<Vec<_>>(),
            "heartbeat_ms": f.config().heartbeat.as_millis() as u64,
            "dead_after_ms": f.config().dead_after.as_millis() as u64,
            "quorum": f.config().quorum,
            "took_over": self.fo.took_over,
            "imported_clients": self.fo.imported,
            "lost_at_unix_ms": self.fo.lost_at,
            "became_contact_at_unix_ms": self.fo.became_contact_at,
            "registered_at_unix_ms": self.fo.registered_at,
            "stepped_down_at_unix_ms": self.fo.stepped_down_at,
            "stats": f.stats(),
        })
    }
}
