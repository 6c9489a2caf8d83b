//! The home agent's control plane: [`proto::HomeAgent`] driven by the
//! engine's punts, its tunnel events programmed as `AddHomeTunnel` /
//! `RemoveHomeTunnel`, its persistence events written to the [`Store`]
//! before the Binding Acknowledgement leaves. HoTI/HoT relaying (RFC 6275
//! 10.4.6) and the tunnels themselves are the engine's.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Instant;

use anyhow::Context as _;
use mip6_anycast::daemon::control::Request;
use mip6_anycast::daemon::shell;
use mip6_anycast::daemon::system::{unix_ms, wall_now};
use mip6_anycast::daemon::{App, Outbox, drain};
use mip6_anycast::engine::datapath::{BindingKey, EngineHandle, Punt, SendVia, TableUpdate};
use mip6_anycast::proto::{HaEvent, HomeAgent, HomeAgentConfig, TunnelEvent};
use serde_json::{Value, json};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::HaConfig;
use crate::store::Store;

/// Counters of the shell around the machine.
#[derive(Debug, Default, Clone)]
struct AppStats {
    punts: u64,
    hao_without_binding: u64,
    table_errors: u64,
    persist_errors: u64,
    restored: usize,
}

/// The home agent daemon's state.
pub struct HaApp {
    ha: HomeAgent,
    address: Ipv6Addr,
    prefixes: Vec<String>,
    engine: EngineHandle,
    outbox: Outbox,
    store: Store,
    /// Home tunnels installed in the engine: hoa -> coa.
    tunnels: BTreeMap<Ipv6Addr, Ipv6Addr>,
    stats: AppStats,
}

impl HaApp {
    /// Builds the machine from `cfg`, opens the store in `state_dir`,
    /// programs the HA address and restores the persisted registrations
    /// (their tunnels are up when this returns).
    pub async fn start(
        cfg: &HaConfig,
        engine: EngineHandle,
        state_dir: &std::path::Path,
    ) -> anyhow::Result<HaApp> {
        let mut ha = HomeAgent::new(HomeAgentConfig {
            home_prefixes: cfg.prefixes(),
            max_lifetime: cfg.max_lifetime(),
            max_registrations: cfg.home.max_registrations.unwrap_or(65_536),
            ..HomeAgentConfig::default()
        });
        for sa in &cfg.security_associations {
            ha.add_security_association(sa.spi, sa.hoa, sa.key.clone())
                .with_context(|| format!("security association of {}", sa.hoa))?;
        }
        let (store, records) = Store::open(state_dir).context("opening the binding cache")?;
        engine
            .update(TableUpdate::AddLocalAddress {
                addr: cfg.home.address,
            })
            .await
            .context("programming the home agent address")?;
        let mut app = HaApp {
            ha,
            address: cfg.home.address,
            prefixes: cfg.home.prefix.0.iter().map(ToString::to_string).collect(),
            outbox: Outbox::new(engine.clone()),
            engine,
            store,
            tunnels: BTreeMap::new(),
            stats: AppStats::default(),
        };
        let n = app.ha.restore(&records, Instant::now(), wall_now());
        app.stats.restored = n;
        info!(
            restored = n,
            stored = records.len(),
            file = %app.store.path().display(),
            "binding cache restored"
        );
        app.process().await;
        Ok(app)
    }

    /// Applies the machine's queued actions: tables and storage first,
    /// then the Binding Acknowledgements.
    async fn process(&mut self) {
        let d = drain(&mut self.ha);
        for e in d.events {
            match e {
                HaEvent::Tunnel(t) => self.tunnel(t).await,
                HaEvent::Persist(p) => self.store.apply(p),
            }
        }
        if let Err(e) = self.store.flush() {
            self.stats.persist_errors += 1;
            warn!(error = %e, "writing the binding cache");
        }
        for t in d.transmits {
            let span = info_span!("binding_ack", coa = %t.dst);
            self.outbox
                .send(t, Some(SendVia::Direct))
                .instrument(span)
                .await;
        }
    }

    async fn tunnel(&mut self, t: TunnelEvent) {
        let (update, hoa) = match t {
            TunnelEvent::Up { hoa, coa } => {
                let _span = info_span!("registration", %hoa, %coa).entered();
                info!("home tunnel up");
                self.tunnels.insert(hoa, coa);
                (
                    TableUpdate::AddHomeTunnel {
                        hoa,
                        home_agent: self.address,
                        coa,
                    },
                    hoa,
                )
            }
            TunnelEvent::Down { hoa } => {
                let _span = info_span!("registration", %hoa).entered();
                info!("home tunnel down");
                self.tunnels.remove(&hoa);
                (TableUpdate::RemoveHomeTunnel { hoa }, hoa)
            }
        };
        if let Err(e) = self.engine.update(update).await {
            self.stats.table_errors += 1;
            warn!(%hoa, error = %e, "programming the home tunnel");
        }
    }

    async fn bindings(&self) -> Value {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut regs: Vec<_> = self.ha.registrations().collect();
        regs.sort_by_key(|r| r.hoa);
        for r in regs {
            let usage = self
                .engine
                .usage(BindingKey::HomeTunnel { hoa: r.hoa })
                .await
                .ok()
                .flatten();
            let rec = r.record();
            out.push(json!({
                "hoa": r.hoa,
                "coa": r.coa,
                "spi": r.spi.0,
                "sequence": r.sequence,
                "lifetime_left_s": r.expires.saturating_duration_since(now).as_secs_f64(),
                "expires_unix_ms": rec.expires_unix_ms,
                "tunnel_installed": self.tunnels.get(&r.hoa) == Some(&r.coa),
                "tunnel_packets": usage.map(|u| u.packets),
                "tunnel_packets_in": usage.map(|u| u.packets_in),
            }));
        }
        Value::Array(out)
    }

    fn status(&self) -> Value {
        let s = self.ha.stats();
        let drops: BTreeMap<&str, u64> = s.drops.iter().map(|(r, n)| (r.as_str(), n)).collect();
        json!({
            "address": self.address,
            "home_prefixes": self.prefixes,
            "registrations": self.ha.registrations().count(),
            "accepted": s.accepted,
            "deregistrations": s.deregistrations,
            "moves": s.moves,
            "expired": s.expired,
            "ba_sent": s.ba_sent,
            "drops": drops,
            "restored_at_start": self.stats.restored,
            "punts": self.stats.punts,
            "hao_without_binding": self.stats.hao_without_binding,
            "table_errors": self.stats.table_errors,
            "store": {
                "file": self.store.path(),
                "records": self.store.len(),
                "writes": self.store.writes,
                "errors": self.stats.persist_errors,
            },
            "sent": self.outbox.sent,
            "send_failed": self.outbox.failed,
            "now_unix_ms": unix_ms(),
        })
    }
}

impl App for HaApp {
    type Input = ();

    fn poll_timeout(&self) -> Option<Instant> {
        self.ha.poll_timeout()
    }

    async fn handle_timeout(&mut self, now: Instant) {
        self.ha.handle_timeout(now);
        self.process().await;
    }

    async fn handle_punt(&mut self, punt: Punt) {
        self.stats.punts += 1;
        match punt {
            Punt::Mobility(m) => {
                self.ha.handle_packet(m.received, wall_now(), &m.packet);
                self.process().await;
            }
            Punt::HaoWithoutBinding { src, dst, hoa } => {
                // Route-optimized data to the home agent itself: not a
                // correspondent, nothing to answer.
                self.stats.hao_without_binding += 1;
                debug!(%src, %dst, %hoa, "home address option without binding");
            }
            // No proxy tables are programmed here.
            Punt::Proxy(_) => {}
        }
    }

    async fn handle_input(&mut self, _input: ()) {}

    async fn control(&mut self, req: &Request) -> Result<Value, String> {
        match req.cmd.as_str() {
            "status" => Ok(self.status()),
            "bindings" => Ok(self.bindings().await),
            other => Err(shell::unknown_command(other)),
        }
    }
}
