//! `mip6-cn`, the correspondent-node agent of client hosts (RFC 6275 9):
//! answers HoTI/CoTI, verifies Binding Updates, keeps the binding cache
//! and programs the engine's correspondent bindings (RH2 out, HAO in), so
//! that a client's applications reach an anycast address X straight at
//! the member serving them.
//!
//! - [`config`]: the TOML file (`[correspondent]`, `[fallback]`).
//! - [`app`]: the control plane around [`crate::proto::Correspondent`].
//! - [`fallback`]: when a binding is dropped so traffic goes back through
//!   the home agent (silence, ICMPv6 errors, unanswered refresh).
//! - [`icmp`]: the filtered raw ICMPv6 socket and the quoted-packet parser.
//! - [`run`]: the daemon's life (engine, addresses, serve, shutdown).

pub mod app;
pub mod config;
pub mod fallback;
pub mod icmp;

use std::net::{IpAddr, Ipv6Addr};

use anyhow::{Context as _, bail};
use tracing::warn;

use crate::crypto::SystemRandomSource;
use crate::daemon::shell::{self, Context};
use crate::daemon::{DaemonEngine, serve};
use crate::engine::netlink::Netlink;
use crate::proto::Correspondent;
use crate::wire::is_valid_home_address;

/// The global unicast addresses of `interfaces` (the default of
/// `correspondent.addresses`).
async fn discover_addresses(nl: &Netlink, interfaces: &[String]) -> anyhow::Result<Vec<Ipv6Addr>> {
    let mut out = Vec::new();
    for name in interfaces {
        let index = nl.link_index(name).await?;
        for a in nl.addresses(Some(index)).await? {
            if let IpAddr::V6(v6) = a.addr
                && is_valid_home_address(&v6)
                && !a.is_tentative()
                && !out.contains(&v6)
            {
                out.push(v6);
            }
        }
    }
    Ok(out)
}

/// Runs the agent until SIGTERM/SIGINT.
pub async fn run(cfg: config::CnConfig, ctx: Context) -> anyhow::Result<()> {
    let mut engine = DaemonEngine::start(&cfg.engine).await?;
    let result = async {
        let addresses = match &cfg.correspondent.addresses {
            Some(a) => a.clone(),
            None => discover_addresses(&engine.netlink, &engine.interfaces)
                .await
                .context("finding this node's addresses")?,
        };
        if addresses.is_empty() {
            bail!("no global address on the steered interfaces: set correspondent.addresses");
        }
        let cn = Correspondent::new(
            cfg.correspondent.machine(),
            Box::new(SystemRandomSource::new()),
            std::time::Instant::now(),
        )
        .context("creating the correspondent (nonce table)")?;
        let fallback = cfg.fallback.settings();
        let (tx, mut inputs) = tokio::sync::mpsc::channel(64);
        if fallback.enabled && fallback.icmp_errors {
            let sock = icmp::open().context("opening the ICMPv6 error socket")?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let (etx, mut erx) = tokio::sync::mpsc::channel(64);
                let reader = tokio::spawn(icmp::run(sock, etx));
                while let Some(e) = erx.recv().await {
                    if tx.send(app::CnInput::Icmp(e)).await.is_err() {
                        break;
                    }
                }
                if let Ok(Err(e)) = reader.await {
                    warn!(error = %e, "ICMPv6 error socket failed");
                }
            });
        }
        drop(tx);
        let mut app = app::CnApp::start(
            cn,
            addresses,
            engine.handle.clone(),
            fallback,
            cfg.correspondent.usage_poll(),
        )
        .await?;
        let (_server, mut calls) = shell::bind_control(&ctx)?;
        serve(&mut app, &mut engine, &mut calls, &mut inputs, &ctx).await
    }
    .await;
    let stopped = engine.stop().await;
    result?;
    stopped.map(|_| ())
}
