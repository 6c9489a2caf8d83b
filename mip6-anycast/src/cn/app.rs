//! The correspondent agent's control plane: [`Correspondent`] fed with the
//! engine's Mobility Header punts and Home-Address-without-binding
//! reports, its binding events programmed as correspondent bindings, the
//! datapath's usage polled for Binding Refresh Requests (only bindings in
//! use get one, RFC 6275 9.5.5), and the fallback rule ([`super::fallback`]).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing::{Instrument, debug, info, info_span, warn};

use super::config::FallbackConfig;
use super::datapath::CnDatapath;
use super::fallback::{FallbackReason, Key, Tracker};
use super::icmp::IcmpError;
use crate::daemon::control::Request;
use crate::daemon::{App, drain, shell};
use crate::engine::datapath::Punt;
use crate::proto::{BindingEvent, Correspondent};
use crate::wire::ExtChain;

/// MH type of a Binding Refresh Request.
const MH_BRR: u8 = 0;

/// Inputs of the agent besides punts.
#[derive(Debug, Clone, Copy)]
pub enum CnInput {
    /// An ICMPv6 error quoting a route-optimized packet.
    Icmp(IcmpError),
}

#[derive(Debug, Default, Clone)]
struct AppStats {
    punts: u64,
    hao_without_binding: u64,
    icmp_errors: u64,
    table_errors: u64,
    usage_polls: u64,
    fallbacks: BTreeMap<&'static str, u64>,
}

/// The correspondent agent's state.
pub struct CnApp {
    cn: Correspondent,
    addresses: Vec<Ipv6Addr>,
    dp: CnDatapath,
    fallback: Tracker,
    poll: Duration,
    stats: AppStats,
    draining: bool,
}

impl CnApp {
    /// Programs this node's `addresses` into the datapath and returns the
    /// agent.
    pub async fn start(
        cn: Correspondent,
        addresses: Vec<Ipv6Addr>,
        mut dp: CnDatapath,
        fallback: FallbackConfig,
        poll: Duration,
    ) -> anyhow::Result<CnApp> {
        dp.add_local_addresses(&addresses)
            .await
            .map_err(anyhow::Error::msg)?;
        info!(addresses = ?addresses, datapath = dp.kind(), "correspondent agent ready");
        Ok(CnApp {
            cn,
            addresses,
            dp,
            fallback: Tracker::new(fallback),
            poll,
            stats: AppStats::default(),
            draining: false,
        })
    }

    /// The datapath back, once the agent stopped (the `xfrm` one's
    /// entries are removed by its owner).
    #[must_use]
    pub fn into_datapath(self) -> CnDatapath {
        self.dp
    }

    /// Applies the machine's queued actions: tables first, then packets.
    async fn process(&mut self, now: Instant) {
        let d = drain(&mut self.cn);
        for e in d.events {
            self.binding_event(e).await;
        }
        for t in d.transmits {
            if t.mh_type == MH_BRR
                && let Ok(chain) = ExtChain::walk(&t.bytes)
                && let Some(rh2) = chain.rh2()
            {
                self.fallback
                    .refresh_requested((t.src, rh2.home_address), now);
            }
            let span = info_span!("send", mh_type = t.mh_type, dst = %t.dst);
            self.dp.send(t).instrument(span).await;
        }
    }

    async fn binding_event(&mut self, e: BindingEvent) {
        let (update, key) = match e {
            BindingEvent::Added { cn, hoa, coa, .. }
            | BindingEvent::Updated { cn, hoa, coa, .. } => {
                let added = matches!(e, BindingEvent::Added { .. });
                let _span = info_span!("binding", %cn, %hoa, %coa).entered();
                if added {
                    info!("binding added: route optimization on");
                } else {
                    debug!("binding refreshed");
                }
                self.fallback.bound((cn, hoa), coa);
                (self.dp.add_binding(cn, hoa, coa).await, (cn, hoa))
            }
            BindingEvent::Removed { cn, hoa, reason } => {
                let _span = info_span!("binding", %cn, %hoa).entered();
                info!(?reason, "binding removed: back to the home path");
                self.fallback.removed((cn, hoa));
                (self.dp.remove_binding(cn, hoa).await, (cn, hoa))
            }
        };
        if let Err(err) = update {
            self.stats.table_errors += 1;
            warn!(cn = %key.0, hoa = %key.1, error = %err, "programming the binding");
        }
    }

    /// Drops `key` by the fallback rule.
    async fn fall_back(&mut self, key: Key, why: FallbackReason, now: Instant) {
        if self.cn.drop_binding(key.0, key.1) {
            *self.stats.fallbacks.entry(why.as_str()).or_insert(0) += 1;
            warn!(cn = %key.0, hoa = %key.1, reason = ?why, "care-of address not answering: binding dropped");
        }
        self.fallback.removed(key);
        self.process(now).await;
    }

    /// Reads the datapath's usage: bindings used recently are noted for
    /// the Binding Refresh Request policy; the fallback rule looks at the
    /// counters.
    async fn poll_usage(&mut self, now: Instant) {
        self.stats.usage_polls += 1;
        let usage = match self.dp.usage().await {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "usage poll");
                return;
            }
        };
        let mut seen = Vec::new();
        let mut condemned = Vec::new();
        for b in &usage {
            let (cn, hoa) = (b.cn, b.hoa);
            if let Some(idle) = b.idle_ms {
                let used_at = now.checked_sub(Duration::from_millis(idle)).unwrap_or(now);
                self.cn.note_binding_used(used_at, cn, hoa);
            }
            seen.push((cn, hoa));
            if let Some(why) = self.fallback.usage((cn, hoa), b.packets, b.packets_in, now) {
                condemned.push(((cn, hoa), why));
            }
        }
        let others: Vec<Key> = self.fallback.keys().filter(|k| !seen.contains(k)).collect();
        for k in others {
            if let Some(why) = self.fallback.check(k, now) {
                condemned.push((k, why));
            }
        }
        for (k, why) in condemned {
            self.fall_back(k, why, now).await;
        }
    }

    fn bindings(&self) -> Value {
        let now = Instant::now();
        let mut v: Vec<_> = self.cn.cache().iter().collect();
        v.sort_by_key(|b| (b.cn, b.hoa));
        Value::Array(
            v.into_iter()
                .map(|b| {
                    json!({
                        "cn": b.cn,
                        "hoa": b.hoa,
                        "coa": b.coa,
                        "sequence": b.sequence,
                        "lifetime_left_s": b.expires.saturating_duration_since(now).as_secs_f64(),
                        "last_used_s_ago": b.last_used.map(|t| now.saturating_duration_since(t).as_secs_f64()),
                    })
                })
                .collect(),
        )
    }

    fn status(&self) -> Value {
        let s = self.cn.stats();
        let drops: BTreeMap<&str, u64> = s.drops.iter().map(|(r, n)| (r.as_str(), n)).collect();
        let f = self.fallback.config();
        let (sent, send_failed) = self.dp.sent_failed();
        json!({
            "datapath": self.dp.kind(),
            "addresses": self.addresses,
            "bindings": self.cn.cache().len(),
            "max_bindings": self.cn.config().max_bindings,
            "home_tests": s.home_tests,
            "care_of_tests": s.care_of_tests,
            "bu_accepted": s.bu_accepted,
            "deregistrations": s.deregistrations,
            "ba_sent": s.ba_sent,
            "brr_sent": s.brr_sent,
            "be_sent": s.be_sent,
            "expired": s.expired,
            "drops": drops,
            "punts": self.stats.punts,
            "hao_without_binding": self.stats.hao_without_binding,
            "icmp_errors": self.stats.icmp_errors,
            "usage_polls": self.stats.usage_polls,
            "table_errors": self.stats.table_errors,
            "fallback": {
                "enabled": f.enabled,
                "silence_s": f.silence.as_secs_f64(),
                "icmp_errors": f.icmp_errors,
                "brr_timeout_s": f.brr_timeout.as_secs_f64(),
                "dropped": self.stats.fallbacks,
            },
            "sent": sent,
            "send_failed": send_failed,
        })
    }
}

impl App for CnApp {
    type Input = CnInput;

    fn poll_timeout(&self) -> Option<Instant> {
        self.cn.poll_timeout()
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.poll)
    }

    async fn handle_timeout(&mut self, now: Instant) {
        self.cn.handle_timeout(now);
        self.process(now).await;
    }

    async fn handle_punt(&mut self, punt: Punt) {
        self.stats.punts += 1;
        match punt {
            Punt::Mobility(m) => {
                self.cn.handle_packet(m.received, &m.packet);
                self.process(m.received).await;
            }
            Punt::HaoWithoutBinding { src, dst, hoa } => {
                self.stats.hao_without_binding += 1;
                let now = Instant::now();
                self.cn.unknown_hao(now, src, dst, hoa);
                self.process(now).await;
            }
            // No proxy tables are programmed here.
            Punt::Proxy(_) => {}
        }
    }

    async fn handle_input(&mut self, input: CnInput) {
        let CnInput::Icmp(e) = input;
        self.stats.icmp_errors += 1;
        if !self.addresses.contains(&e.quoted_src) {
            return;
        }
        if let Some((key, why)) = self.fallback.icmp_error(
            e.quoted_src,
            e.quoted_dst,
            e.quoted_hoa,
            e.icmp_type,
            e.code,
        ) {
            self.fall_back(key, why, Instant::now()).await;
        }
    }

    async fn tick(&mut self, now: Instant) {
        if !self.draining {
            self.poll_usage(now).await;
        }
    }

    async fn control(&mut self, req: &Request) -> Result<Value, String> {
        match req.cmd.as_str() {
            "status" => Ok(self.status()),
            "bindings" => Ok(self.bindings()),
            "engine" => Ok(self.dp.describe().await),
            other => Err(shell::unknown_command(other)),
        }
    }

    async fn begin_shutdown(&mut self, _now: Instant) {
        // A correspondent registers nothing anywhere: nothing to undo but
        // its own tables, which go with the engine.
        self.draining = true;
    }
}
