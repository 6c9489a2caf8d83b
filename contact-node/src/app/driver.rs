//! [`ContactApp`] as the daemon shell's [`App`]: timers, punts from the
//! engine, inputs (peers seen, node-channel events), the periodic tick,
//! control commands and the shutdown sequence.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::daemon::App;
use mip6_anycast::daemon::control::Request;
use mip6_anycast::daemon::driver::earliest;
use mip6_anycast::daemon::shell;
use mip6_anycast::daemon::system::wall_now;
use mip6_anycast::engine::datapath::Punt;
use mip6_anycast::proto::Arrival;
use mip6_anycast::wire::Ipv6Packet;
use serde_json::{Value, json};
use tracing::{debug, info};

use super::{ContactApp, ContactInput, MH_BA, MH_BE, Shutdown};
use crate::group::GroupShell;

impl App for ContactApp {
    type Input = ContactInput;

    fn poll_timeout(&self) -> Option<Instant> {
        let starts = if self.is_registered() && self.shutdown.is_none() {
            self.clients.values().filter_map(|c| c.start_at).min()
        } else {
            None
        };
        let half_grace = self
            .shutdown
            .filter(|_| !self.home_deregistering)
            .map(|s| s.started + s.grace / 2);
        earliest([
            self.home.poll_timeout(),
            self.mn.poll_timeout(),
            starts,
            self.home_retry_at,
            half_grace,
            self.group.as_ref().and_then(|g| g.co.poll_timeout()),
            self.failover_timeout(),
        ])
    }

    async fn handle_timeout(&mut self, now: Instant) {
        let wall = wall_now();
        if self.home.poll_timeout().is_some_and(|t| t <= now) {
            self.home.handle_timeout(now, wall);
        }
        if self.mn.poll_timeout().is_some_and(|t| t <= now) {
            self.mn.handle_timeout(now);
        }
        if let Some(g) = &mut self.group
            && g.co.poll_timeout().is_some_and(|t| t <= now)
        {
            g.co.handle_timeout(now, &mut self.mn);
        }
        if self.home_retry_at.is_some_and(|t| t <= now) {
            self.home_retry_at = None;
            if self.is_contact {
                self.home.register(now, wall);
            }
        }
        self.failover_tick(now).await;
        self.start_due_clients(now);
        self.shutdown_phase(now);
        self.process(now).await;
        // Registered by this batch: due clients start now.
        self.start_due_clients(now);
        self.process(now).await;
    }

    async fn handle_punt(&mut self, punt: Punt) {
        self.stats.punts += 1;
        match punt {
            Punt::Mobility(m) => {
                let now = m.received;
                let src = Ipv6Packet::new_checked(&m.packet[..])
                    .map(|p| p.src_addr())
                    .unwrap_or(std::net::Ipv6Addr::UNSPECIFIED);
                if src == self.ha && m.mh_type == MH_BA {
                    self.home.handle_packet(now, wall_now(), &m.packet);
                } else {
                    if m.mh_type == MH_BE {
                        self.binding_error(&m.packet).await;
                    }
                    let arrival = if m.tunnel.is_some_and(|t| t.src == self.ha) {
                        Arrival::Tunnel
                    } else {
                        Arrival::Direct
                    };
                    self.mn.handle_packet(now, &m.packet, arrival);
                }
                self.process(now).await;
                self.start_due_clients(now);
                self.shutdown_phase(now);
                self.process(now).await;
            }
            Punt::HaoWithoutBinding { src, dst, hoa } => {
                self.stats.hao_without_binding += 1;
                debug!(%src, %dst, %hoa, "home address option without binding");
            }
            // No proxy tables are programmed here.
            Punt::Proxy(_) => {}
        }
    }

    async fn handle_input(&mut self, input: ContactInput) {
        let now = Instant::now();
        match input {
            ContactInput::Peer(p) => {
                self.peer(p, now);
                self.start_due_clients(now);
            }
            ContactInput::Group(ev) => {
                let fo = match &mut self.group {
                    Some(g) => g.on_event(now, &mut self.mn, ev),
                    None => None,
                };
                if let Some((from, m)) = fo {
                    self.failover_message(now, from, m).await;
                }
            }
        }
        self.process(now).await;
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.group.as_ref().map(|_| Duration::from_secs(1))
    }

    async fn tick(&mut self, now: Instant) {
        let Some(g) = &mut self.group else { return };
        // The coordinator's view of who is served here, and the load the
        // others' policies use.
        let served: Vec<(Ipv6Addr, usize)> = self
            .clients
            .keys()
            .map(|c| (*c, g.connections_of(*c)))
            .collect();
        for (c, n) in served {
            if n > 0 {
                g.co.client_seen(c, u32::try_from(n).unwrap_or(u32::MAX));
            } else if !g.co.is_moving(c) {
                g.co.client_gone(c);
            }
        }
        g.probe_tick(now, self.clients.keys().copied());
        g.report_load().await;
        self.process(now).await;
    }

    async fn control(&mut self, req: &Request) -> Result<Value, String> {
        match req.cmd.as_str() {
            "status" => Ok(self.status()),
            "bindings" => Ok(self.bindings().await),
            "route-optimization" => self.set_route_optimization(req, Instant::now()).await,
            "handoff" => self.cmd_handoff(req, Instant::now()).await,
            "drain" => self.cmd_drain(req, Instant::now()).await,
            "forget-tokens" => {
                let client: Ipv6Addr = req
                    .args
                    .get("client")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .ok_or("args: {\"client\": ADDR}")?;
                Ok(json!({"forgotten": self.mn.forget_tokens(client)}))
            }
            "group" => self
                .group
                .as_ref()
                .map(GroupShell::status)
                .ok_or_else(|| "no [group] configured".to_string()),
            "failover" => Ok(self.failover_status()),
            "rotate-key" => self.cmd_rotate_key(req),
            "handoffs" => self
                .group
                .as_ref()
                .map(GroupShell::handoff_log)
                .ok_or_else(|| "no [group] configured".to_string()),
            other => Err(shell::unknown_command(other)),
        }
    }

    fn commands(&self) -> &'static [&'static str] {
        &[
            "bindings",
            "route-optimization",
            "handoff",
            "drain",
            "forget-tokens",
            "group",
            "handoffs",
            "failover",
            "rotate-key",
            "anycast",
        ]
    }

    async fn begin_shutdown(&mut self, now: Instant) {
        self.shutdown = Some(Shutdown {
            started: now,
            grace: self.grace,
        });
        let bound: Vec<Ipv6Addr> = self
            .clients
            .iter()
            .filter(|(_, c)| c.installed.is_some() || c.bound_until.is_some())
            .map(|(cn, _)| *cn)
            .collect();
        for c in self.clients.values_mut() {
            c.start_at = None;
        }
        for cn in bound {
            info!(%cn, "deregistering at the client");
            self.dereg_pending.insert(cn);
            self.mn.deregister(now, cn);
        }
        self.shutdown_phase(now);
        self.process(now).await;
    }

    fn shutdown_complete(&self) -> bool {
        self.dereg_pending.is_empty() && self.home_deregistering && self.home_deregistered
    }
}
