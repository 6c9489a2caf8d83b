//! `contact-node`: the anycast member daemon. The contact node owns the
//! anycast address X (on `lo`), is registered for it at the home agent,
//! serves the clients that reach X through the home agent's tunnel, and
//! moves each of them to route optimization (RR + BU) so that their
//! packets come straight to its care-of address. With a `[group]`, other
//! members (acceptors) run the same binary, and clients with their live
//! TCP connections are handed between members. The binary is `src/main.rs`.
//!
//! - [`config`]: the TOML configuration (`[anycast]`,
//!   `[route_optimization]`, `[services]`).
//! - [`app`]: the control plane (home registration, per-client route
//!   optimization, persistence).
//! - [`bul_store`]: the persisted binding update list.
//! - [`group`]: the anycast group: node channel and handoff shell.
//! - [`service`]: services on X (the echo test service, splicing to a
//!   local server, the connections of an unmodified server), peer
//!   detection.
//! - [`run`]: the daemon's life.

pub mod app;
pub mod bul_store;
pub mod config;
pub mod group;
pub mod instance;
pub mod service;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mip6_anycast::crypto::RandomSource;
use mip6_anycast::daemon::shell::{self, Context};
use mip6_anycast::daemon::{DaemonEngine, serve};
use tokio::sync::mpsc;
use tracing::debug;
use tracing::warn;

use crate::app::ContactInput;
use crate::app::multi::MultiApp;
use crate::service::{PeerSeen, ServiceHost};

/// How long to wait for X to become usable after adding it.
pub(crate) const ADDRESS_READY: Duration = Duration::from_secs(5);

pub(crate) fn random_u16(rng: &mut dyn RandomSource) -> u16 {
    let mut b = [0u8; 2];
    if rng.fill(&mut b).is_err() {
        return 0;
    }
    u16::from_be_bytes(b)
}

/// Periodically reports the peers of live TCP sockets on X.
pub(crate) fn spawn_scanner(
    x: std::net::Ipv6Addr,
    every: Duration,
    tx: mpsc::Sender<ContactInput>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let found = tokio::task::spawn_blocking(move || service::scan::scan(x)).await;
            match found {
                Ok(Ok(peers)) => {
                    for peer in peers {
                        let p = PeerSeen {
                            peer,
                            source: "scan",
                        };
                        if tx.send(ContactInput::Peer(p)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Err(e)) => debug!(error = %e, "socket scan"),
                Err(_) => return,
            }
        }
    })
}

/// Listens on `[x]:port` with `service`, forwarding its peer reports to
/// the app's inputs.
pub(crate) async fn hosted(
    x: std::net::Ipv6Addr,
    port: u16,
    service: Arc<dyn service::StreamService>,
    inputs: &mpsc::Sender<ContactInput>,
) -> anyhow::Result<Arc<ServiceHost>> {
    let name = service.name();
    let (ptx, prx) = mpsc::channel::<PeerSeen>(256);
    let host = ServiceHost::listen(SocketAddr::from((x, port)), service, ptx)
        .await
        .with_context(|| format!("{name} service on [{x}]:{port}"))?;
    forward_peers(prx, inputs);
    Ok(Arc::new(host))
}

/// Passes a service's peer reports on to the app's inputs.
pub(crate) fn forward_peers(
    mut prx: mpsc::Receiver<PeerSeen>,
    inputs: &mpsc::Sender<ContactInput>,
) {
    let tx = inputs.clone();
    tokio::spawn(async move {
        while let Some(p) = prx.recv().await {
            if tx.send(ContactInput::Peer(p)).await.is_err() {
                break;
            }
        }
    });
}

/// Runs the contact node until SIGTERM/SIGINT: one [`instance::Instance`]
/// per anycast address over one engine.
pub async fn run(cfg: config::ContactConfig, ctx: Context) -> anyhow::Result<()> {
    let mut engine = DaemonEngine::start(&cfg.engine).await?;
    let nl = engine.netlink.clone();
    let mut added = Vec::new();
    let result = async {
        let (tx, mut inputs) = mpsc::channel::<(usize, ContactInput)>(256);
        let mut instances = Vec::new();
        for i in 0..cfg.anycast.0.len() {
            let inst = instance::start(&cfg, i, &ctx, &engine, &nl, tx.clone(), &mut added).await?;
            instances.push(inst);
        }
        drop(tx);
        let mut tasks = Vec::new();
        let mut apps = Vec::new();
        for inst in instances {
            tasks.extend(inst.scanner);
            tasks.extend(inst.stream_task);
            apps.push(inst.app);
        }
        let mut app = MultiApp::new(apps);
        app.start(Instant::now()).await;
        let (_server, mut calls) = shell::bind_control(&ctx)?;
        let served = serve(&mut app, &mut engine, &mut calls, &mut inputs, &ctx).await;
        for t in tasks {
            t.abort();
        }
        app.finish().await;
        served
    }
    .await;
    let stopped = engine.stop().await;
    for (lo, x) in added {
        if let Err(e) = nl.del_address(lo, IpAddr::V6(x), 128).await {
            warn!(%x, error = %e, "removing the anycast address from lo");
        }
    }
    result?;
    stopped.map(|_| ())
}
