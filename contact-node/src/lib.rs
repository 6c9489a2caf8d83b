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
pub mod service;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mip6_anycast::crypto::{MnHaKey, RandomSource, Spi, SystemRandomSource};
use mip6_anycast::daemon::shell::{self, Context};
use mip6_anycast::daemon::{DaemonEngine, serve};
use mip6_anycast::engine::datapath::TableUpdate;
use mip6_anycast::engine::netlink::AddrOptions;
use mip6_anycast::proto::failover::{Failover, FailoverConfig};
use mip6_anycast::proto::handoff::MemberId;
use mip6_anycast::proto::{
    HomeRegistration, HomeRegistrationConfig, HomeTestMode, MobileConfig, MobileNode,
    RetransmitConfig,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::app::{ContactApp, ContactInput, ContactParts};
use crate::bul_store::BulStore;
use crate::group::GroupShell;
use crate::group::services::{Hosted, Legacy, Stream};
use crate::service::legacy::LegacyServer;
use crate::service::{PeerSeen, ServiceHost};
use mip6_anycast::testsvc::TestService;

/// How long to wait for X to become usable after adding it.
const ADDRESS_READY: Duration = Duration::from_secs(5);

fn random_u16(rng: &mut dyn RandomSource) -> u16 {
    let mut b = [0u8; 2];
    if rng.fill(&mut b).is_err() {
        return 0;
    }
    u16::from_be_bytes(b)
}

/// Periodically reports the peers of live TCP sockets on X.
fn spawn_scanner(
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
async fn hosted(
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
fn forward_peers(mut prx: mpsc::Receiver<PeerSeen>, inputs: &mpsc::Sender<ContactInput>) {
    let tx = inputs.clone();
    tokio::spawn(async move {
        while let Some(p) = prx.recv().await {
            if tx.send(ContactInput::Peer(p)).await.is_err() {
                break;
            }
        }
    });
}

/// The failover machine of this member, when the group has backups.
fn failover_machine(
    g: &config::GroupSection,
    x: std::net::Ipv6Addr,
) -> anyhow::Result<Option<Failover>> {
    let id = |n: &str| MemberId::new(n).map_err(|e| anyhow::anyhow!("member {n:?}: {e}"));
    let succession = g
        .succession()
        .iter()
        .map(|n| id(n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if succession.is_empty() {
        return Ok(None);
    }
    let members = g
        .members
        .iter()
        .map(|m| id(&m.name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut fc = FailoverConfig::new(id(&g.me)?, x, succession, members);
    fc.heartbeat = g.heartbeat();
    fc.dead_after = g.dead_after();
    fc.hold_down = g.dead_after() * 10;
    if let Some(q) = g.quorum {
        fc.quorum = q;
    }
    info!(heartbeat = ?fc.heartbeat, dead_after = ?fc.dead_after, quorum = fc.quorum, succession = ?fc.succession.iter().map(MemberId::as_str).collect::<Vec<_>>(), "contact-node failover on");
    Ok(Some(Failover::new(fc, Instant::now())))
}

/// Runs the contact node until SIGTERM/SIGINT.
pub async fn run(cfg: config::ContactConfig, ctx: Context) -> anyhow::Result<()> {
    let a = &cfg.anycast;
    let (x, coa, ha) = (a.address, a.care_of_address, a.home_agent);
    let reg_key = cfg.sa.clone();
    // A member without key material registers only after a takeover, with
    // the key the contact node replicated; until then this placeholder SA
    // is never used (the home registration stays idle).
    let (spi, key) = reg_key.as_ref().map_or_else(
        || (Spi(0), MnHaKey::from_array(&[0; 20])),
        |k| (k.spi, k.mn_ha_key()),
    );
    let mut engine = DaemonEngine::start(&cfg.engine).await?;
    let nl = engine.netlink.clone();
    let mut added_x = None;
    let result = async {
        if a.manage_address {
            let lo = nl.link_index("lo").await.context("finding lo")?;
            match nl
                .add_address(lo, IpAddr::V6(x), 128, AddrOptions::NODAD)
                .await
            {
                Ok(()) => {
                    added_x = Some(lo);
                    info!(%x, "anycast address added to lo");
                }
                Err(e) if e.is_exists() => debug!(%x, "anycast address already on lo"),
                Err(e) => return Err(e).context("adding the anycast address to lo"),
            }
        }
        nl.wait_local(x, ADDRESS_READY)
            .await
            .with_context(|| format!("anycast address {x} is not usable"))?;
        engine
            .handle
            .update_all(vec![
                TableUpdate::AddLocalAddress { addr: coa },
                TableUpdate::AddLocalHomeAddress { hoa: x },
                TableUpdate::AddReverseTunnel {
                    hoa: x,
                    coa,
                    home_agent: ha,
                },
            ])
            .await
            .context("programming the anycast address and the reverse tunnel")?;
        let (store, problem) = BulStore::open(&ctx.state_dir, x);
        if let Some(p) = problem {
            warn!("binding update list set aside, starting fresh: {p}");
        }
        let mut rng = SystemRandomSource::new();
        let home_seq = store
            .home_next_sequence()
            .unwrap_or_else(|| random_u16(&mut rng));
        let home = HomeRegistration::new(
            HomeRegistrationConfig {
                hoa: x,
                ha,
                coa,
                spi,
                key,
                lifetime: a.lifetime(),
                retransmit: RetransmitConfig::default(),
            },
            home_seq,
        );
        let is_contact = cfg.group.as_ref().is_none_or(|g| g.is_contact());
        let mut stream_task = None;
        let mut group = None;
        let (tx, mut inputs) = mpsc::channel::<ContactInput>(256);
        if let Some(gcfg) = &cfg.group {
            let (shell, mut events) = GroupShell::start(gcfg, x, &mut rng).await?;
            group = Some(shell);
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(e) = events.recv().await {
                    if tx.send(ContactInput::Group(e)).await.is_err() {
                        break;
                    }
                }
            });
        }
        let mn = MobileNode::new(
            MobileConfig {
                lifetime: cfg.route_optimization.lifetime(),
                // Only the contact node can run home tests (its home
                // registration carries them); the others get home keygen
                // tokens from it over the node channel.
                home_test: if is_contact {
                    HomeTestMode::Local
                } else {
                    HomeTestMode::External
                },
                retransmit: ContactApp::client_retransmit(),
                max_entries: cfg.route_optimization.max_clients.unwrap_or(65_536),
                ..MobileConfig::new(x)
            },
            Box::new(rng),
        );
        let failover = match &cfg.group {
            Some(g) => failover_machine(g, x)?,
            None => None,
        };
        if let (Some(f), Some(g)) = (&failover, &mut group) {
            let fc = f.config();
            let peers = fc.members.iter().filter(|m| **m != fc.me).cloned().collect();
            g.start_heartbeat_pump(fc.heartbeat, peers);
        }
        let mut app = ContactApp::new(ContactParts {
            x,
            coa,
            ha,
            home,
            mn,
            ro: cfg.route_optimization.clone(),
            store,
            engine: engine.handle.clone(),
            shutdown_grace: ctx.shutdown_grace,
            group,
            failover,
            reg_key,
        });
        if let Some(echo) = &cfg.services.echo {
            let host = hosted(x, echo.port, Arc::new(service::echo::Echo), &tx).await?;
            info!(port = echo.port, "echo service listening on X");
            if let Some(g) = app.group_mut() {
                g.add_service(Arc::new(Hosted {
                    host: host.clone(),
                    port: echo.port,
                    name: "echo",
                }));
            }
            app.add_service(host);
        }
        if let Some(f) = &cfg.services.forward {
            let host = hosted(
                x,
                f.port,
                Arc::new(service::forward::Forward { to: f.to }),
                &tx,
            )
            .await?;
            info!(port = f.port, to = %f.to, "forward service listening on X");
            if let Some(g) = app.group_mut() {
                g.add_service(Arc::new(Hosted {
                    host: host.clone(),
                    port: f.port,
                    name: "forward",
                }));
            }
            app.add_service(host);
        }
        if let Some(l) = &cfg.services.legacy {
            let (ptx, prx) = mpsc::channel::<PeerSeen>(256);
            forward_peers(prx, &tx);
            let forward = Arc::new(service::forward::Forward { to: l.forward_to });
            let local = SocketAddr::from((x, l.port));
            let host = Arc::new(ServiceHost::unbound(local, forward, ptx));
            info!(port = l.port, pid = ?l.pid, to = %l.forward_to, "unmodified server's connections move");
            if let Some(g) = app.group_mut() {
                let server = LegacyServer { local, pid: l.pid };
                g.add_service(Arc::new(Legacy {
                    server,
                    migrated: Hosted {
                        host: host.clone(),
                        port: l.port,
                        name: "legacy",
                    },
                }));
            }
            app.add_service(host);
        }
        if let Some(st) = &cfg.services.stream {
            let svc = TestService::new(tokio::runtime::Handle::current());
            let listener = tokio::net::TcpListener::bind(SocketAddr::from((x, st.port)))
                .await
                .with_context(|| format!("stream service on [{x}]:{}", st.port))?;
            stream_task = Some(svc.listen(listener));
            info!(
                port = st.port,
                "sequence-checked stream service listening on X"
            );
            if let Some(g) = app.group_mut() {
                g.add_service(Arc::new(Stream { svc, port: st.port }));
            }
        }
        let scanner = cfg
            .route_optimization
            .peer_scan()
            .map(|every| spawn_scanner(x, every, tx.clone()));
        drop(tx);
        app.start(Instant::now()).await;
        let (_server, mut calls) = shell::bind_control(&ctx)?;
        let served = serve(&mut app, &mut engine, &mut calls, &mut inputs, &ctx).await;
        if let Some(s) = scanner {
            s.abort();
        }
        if let Some(t) = stream_task {
            t.abort();
        }
        app.finish().await;
        served
    }
    .await;
    let stopped = engine.stop().await;
    if let Some(lo) = added_x
        && let Err(e) = nl.del_address(lo, IpAddr::V6(x), 128).await
    {
        warn!(error = %e, "removing the anycast address from lo");
    }
    result?;
    stopped.map(|_| ())
}
