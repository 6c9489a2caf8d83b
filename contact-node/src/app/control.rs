//! The contact node's control commands (`ctl status`, `bindings`,
//! `handoff`, `drain`, `route-optimization`): reading and steering the
//! [`ContactApp`] from its control socket.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Instant;

use mip6_anycast::daemon::control::Request;
use mip6_anycast::daemon::system::unix_ms;
use mip6_anycast::engine::datapath::BindingKey;
use mip6_anycast::proto::handoff::MemberId;
use serde_json::{Value, json};
use tracing::info;

use super::ContactApp;
use mip6_anycast::daemon::App as _;

impl ContactApp {
    /// `ctl handoff --args '{"client": ADDR, "member": NAME}'` (or
    /// `"policy": "least_connections"` instead of a member): hands the
    /// client and its connections to another member (seed 004 4.2.2).
    pub(super) async fn cmd_handoff(
        &mut self,
        req: &Request,
        now: Instant,
    ) -> Result<Value, String> {
        let usage =
            "args: {\"client\": ADDR, \"member\": NAME} or {\"client\": ADDR, \"policy\": NAME}";
        let g = self.group.as_mut().ok_or("no [group] configured")?;
        let client: Ipv6Addr = req
            .args
            .get("client")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or(usage)?;
        // The coordinator learns of clients on the tick; a command may come
        // sooner.
        let n = g.connections_of(client);
        if n > 0 && !g.co.is_moving(client) {
            g.co.client_seen(client, u32::try_from(n).unwrap_or(u32::MAX));
        }
        let key = match (
            req.args.get("member").and_then(Value::as_str),
            req.args.get("policy"),
        ) {
            (Some(m), None) => {
                let to = MemberId::new(m).map_err(|e| e.to_string())?;
                g.co.handoff(now, &mut self.mn, client, &to)
            }
            (None, Some(p)) => {
                let policy =
                    serde_json::from_value(p.clone()).map_err(|e| format!("policy: {e}"))?;
                g.co.handoff_by_policy(now, &mut self.mn, client, policy)
            }
            (None, None) => {
                let policy = g.policy;
                g.co.handoff_by_policy(now, &mut self.mn, client, policy)
            }
            _ => return Err(usage.into()),
        }
        .map_err(|e| e.to_string())?;
        let to = req
            .args
            .get("member")
            .and_then(Value::as_str)
            .and_then(|m| MemberId::new(m).ok())
            .or_else(|| g.co.placement(client).map(|(m, _)| m.clone()));
        let decided = unix_ms();
        let decided_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        if let Some(to) = &to {
            g.decided(&key, client, to);
        }
        self.process(now).await;
        Ok(json!({
            "id": key.id,
            "donor": key.donor.as_str(),
            "to": to.as_ref().map(MemberId::as_str),
            "decided_unix_ms": decided,
            "decided_unix_us": decided_us,
        }))
    }

    /// `ctl drain [--args '{"policy": NAME}']`: hands every client of this
    /// member to the others before it leaves (churn).
    pub(super) async fn cmd_drain(&mut self, req: &Request, now: Instant) -> Result<Value, String> {
        self.tick(now).await;
        let g = self.group.as_mut().ok_or("no [group] configured")?;
        let policy = match req.args.get("policy") {
            Some(p) => serde_json::from_value(p.clone()).map_err(|e| format!("policy: {e}"))?,
            None => g.policy,
        };
        let n = g.co.drain(now, &mut self.mn, policy);
        self.process(now).await;
        Ok(json!({"clients": n, "policy": policy}))
    }

    /// `ctl route-optimization --args '{"enabled": BOOL}'`: switches route
    /// optimization of new clients on or off at run time (without
    /// arguments: shows the setting). Switching on schedules every known
    /// client that has no binding yet (after `delay_s`); switching off
    /// keeps the bindings that exist (they expire or are refreshed as
    /// before; RFC 6275 11.7.2 leaves the choice to the mobile node).
    pub(super) async fn set_route_optimization(
        &mut self,
        req: &Request,
        now: Instant,
    ) -> Result<Value, String> {
        let enabled = match &req.args {
            Value::Null => None,
            a => Some(
                a.get("enabled")
                    .and_then(Value::as_bool)
                    .ok_or("args: expected {\"enabled\": true|false}")?,
            ),
        };
        let mut scheduled = 0usize;
        if let Some(on) = enabled {
            info!(enabled = on, "route optimization switched by the operator");
            self.ro.enabled = on;
            if on && self.shutdown.is_none() {
                let start = now + self.ro.delay();
                for c in self.clients.values_mut() {
                    if c.installed.is_none() && c.start_at.is_none() && !c.unsupported {
                        c.start_at = Some(start);
                        c.retry_after = None;
                        scheduled += 1;
                    }
                }
            }
            self.start_due_clients(now);
            self.process(now).await;
        }
        Ok(json!({
            "enabled": self.ro.enabled,
            "delay_s": self.ro.delay().as_secs_f64(),
            "clients_scheduled": scheduled,
        }))
    }

    pub(super) async fn bindings(&self) -> Value {
        let now = Instant::now();
        let mut out = Vec::new();
        for (cn, c) in &self.clients {
            let usage = match c.installed {
                Some(_) => self
                    .engine
                    .usage(BindingKey::HomeAddress {
                        hoa: self.x,
                        peer: *cn,
                    })
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            let e = self.mn.entry(*cn, now);
            out.push(json!({
                "cn": cn,
                "hoa": self.x,
                "coa": c.installed,
                "bound": c.installed.is_some(),
                "lifetime_left_s": c.bound_until.map(|t| t.saturating_duration_since(now).as_secs_f64()),
                "next_sequence": e.map(|e| e.next_sequence),
                "goal": e.map(|e| format!("{:?}", e.goal).to_lowercase()),
                "bu_outstanding": e.map(|e| e.bu_outstanding),
                "first_seen_s_ago": c.first_seen.map(|t| now.saturating_duration_since(t).as_secs_f64()),
                "failures": c.failures,
                "hao_packets": usage.map(|u| u.packets),
            }));
        }
        Value::Array(out)
    }

    pub(super) fn status(&self) -> Value {
        let now = Instant::now();
        let hs = self.home.stats();
        let ms = self.mn.stats();
        let drops = |d: &mip6_anycast::proto::DropCounts| -> BTreeMap<&'static str, u64> {
            d.iter().map(|(r, n)| (r.as_str(), n)).collect()
        };
        json!({
            "anycast": self.x,
            "care_of_address": self.coa,
            "home_agent": self.ha,
            "role": if self.is_contact { "contact" } else { "member" },
            "home_registration": {
                "registered": self.is_registered(),
                "lifetime_left_s": self.registered.map(|t| t.saturating_duration_since(now).as_secs_f64()),
                "next_sequence": self.home.next_sequence(),
                "bu_sent": hs.bu_sent,
                "ba_accepted": hs.ba_accepted,
                "resyncs": hs.resyncs,
                "timestamp_resyncs": hs.timestamp_resyncs,
                "drops": drops(&hs.drops),
            },
            "clients": self.clients.len(),
            "clients_bound": self.clients.values().filter(|c| c.installed.is_some()).count(),
            "route_optimization": {
                "enabled": self.ro.enabled,
                "delay_s": self.ro.delay().as_secs_f64(),
                "lifetime_s": self.ro.lifetime().as_secs_f64(),
                "hoti_sent": ms.hoti_sent,
                "coti_sent": ms.coti_sent,
                "bu_sent": ms.bu_sent,
                "ba_accepted": ms.ba_accepted,
                "ba_rejected": ms.ba_rejected,
                "resyncs": ms.resyncs,
                "brr_received": ms.brr_received,
                "route_optimized": self.stats.route_optimized,
                "drops": drops(&ms.drops),
            },
            "services": self.services.iter().map(|s| s.snapshot()).collect::<Vec<_>>(),
            "store": { "file": self.store.path(), "writes": self.store.writes, "errors": self.stats.persist_errors },
            "punts": self.stats.punts,
            "peer_reports": self.stats.peer_reports,
            "clients_refused": self.stats.clients_refused,
            "hao_without_binding": self.stats.hao_without_binding,
            "binding_errors": self.stats.binding_errors,
            "stale_binding_errors": self.stats.stale_binding_errors,
            "table_errors": self.stats.table_errors,
            "sent": self.outbox.sent,
            "send_failed": self.outbox.failed,
            "shutting_down": self.shutdown.is_some(),
        })
    }
}
