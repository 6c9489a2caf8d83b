//! One anycast address served by this member: X on `lo`, its engine
//! tables, its home registration, mobile node, group shell (node channel
//! on the address's own port), failover machine and services. A daemon
//! runs one [`Instance`] per `[[anycast]]` entry over one engine
//! ([`crate::app::multi`] dispatches between them).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use mip6_anycast::crypto::{MnHaKey, Spi, SystemRandomSource};
use mip6_anycast::daemon::DaemonEngine;
use mip6_anycast::daemon::shell::Context;
use mip6_anycast::engine::datapath::TableUpdate;
use mip6_anycast::engine::netlink::{AddrOptions, Netlink};
use mip6_anycast::proto::failover::{Failover, FailoverConfig};
use mip6_anycast::proto::handoff::MemberId;
use mip6_anycast::proto::{
    HomeRegistration, HomeRegistrationConfig, HomeTestMode, MobileConfig, MobileNode,
    RetransmitConfig,
};
use mip6_anycast::testsvc::TestService;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::app::{ContactApp, ContactInput, ContactParts};
use crate::bul_store::BulStore;
use crate::config::{AnycastRoles, ContactConfig, GroupSection};
use crate::group::GroupShell;
use crate::group::services::{Hosted, Legacy, Stream};
use crate::service::legacy::LegacyServer;
use crate::service::{self, PeerSeen, ServiceHost};
use crate::{ADDRESS_READY, forward_peers, hosted, random_u16, spawn_scanner};

/// An anycast address being served.
pub struct Instance {
    /// Its control plane.
    pub app: ContactApp,
    /// The socket scan, if on.
    pub scanner: Option<tokio::task::JoinHandle<()>>,
    /// The stream test service, if on.
    pub stream_task: Option<tokio::task::JoinHandle<()>>,
}

/// The failover machine of this member for one anycast address, when it
/// has backups.
fn failover_machine(
    g: &GroupSection,
    roles: &AnycastRoles,
    x: std::net::Ipv6Addr,
) -> anyhow::Result<Option<Failover>> {
    let id = |n: &str| MemberId::new(n).map_err(|e| anyhow::anyhow!("member {n:?}: {e}"));
    let succession = roles
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
    fc.start_hold = g.dead_after() * 10;
    if let Some(q) = g.quorum {
        fc.quorum = q;
    }
    info!(%x, heartbeat = ?fc.heartbeat, dead_after = ?fc.dead_after, quorum = fc.quorum, succession = ?fc.succession.iter().map(MemberId::as_str).collect::<Vec<_>>(), "contact-node failover on");
    Ok(Some(Failover::new(fc, Instant::now())))
}

/// Starts anycast entry `i`. X is recorded in `added` (for removal at
/// stop) as soon as it is put on `lo`.
pub async fn start(
    cfg: &ContactConfig,
    i: usize,
    ctx: &Context,
    engine: &DaemonEngine,
    nl: &Netlink,
    inputs: mpsc::Sender<(usize, ContactInput)>,
    added: &mut Vec<(u32, std::net::Ipv6Addr)>,
) -> anyhow::Result<Instance> {
    let a = cfg.anycast.0.get(i).context("no such anycast entry")?;
    let (x, coa, ha) = (a.address, a.care_of_address, a.home_agent);
    let reg_key = cfg.sa.get(i).cloned().flatten();
    // A member without key material registers only after a takeover, with
    // the key the contact node replicated; until then this placeholder SA
    // is never used (the home registration stays idle).
    let (spi, key) = reg_key.as_ref().map_or_else(
        || (Spi(0), MnHaKey::from_array(&[0; 20])),
        |k| (k.spi, k.mn_ha_key()),
    );
    if a.manage_address {
        let lo = nl.link_index("lo").await.context("finding lo")?;
        match nl
            .add_address(lo, IpAddr::V6(x), 128, AddrOptions::NODAD)
            .await
        {
            Ok(()) => {
                added.push((lo, x));
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
    let roles = cfg.roles.get(i);
    let is_contact = match (&cfg.group, roles) {
        (Some(g), Some(r)) => r.contact == g.me,
        _ => true,
    };
    let mut stream_task = None;
    let mut group = None;
    let (tx, mut local) = mpsc::channel::<ContactInput>(256);
    // This address's inputs join the daemon's, tagged with its index.
    tokio::spawn(async move {
        while let Some(v) = local.recv().await {
            if inputs.send((i, v)).await.is_err() {
                break;
            }
        }
    });
    if let (Some(gcfg), Some(roles)) = (&cfg.group, roles) {
        let (shell, mut events) = GroupShell::start(gcfg, x, roles, &mut rng).await?;
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
    let failover = match (&cfg.group, roles) {
        (Some(g), Some(r)) => failover_machine(g, r, x)?,
        _ => None,
    };
    if let (Some(f), Some(g)) = (&failover, &mut group) {
        let fc = f.config();
        let peers = fc
            .members
            .iter()
            .filter(|m| **m != fc.me)
            .cloned()
            .collect();
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
    Ok(Instance {
        app,
        scanner,
        stream_task,
    })
}
