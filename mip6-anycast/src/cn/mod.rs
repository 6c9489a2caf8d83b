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
//! - [`datapath`]: `user` (tunnel engine) or `xfrm` (the kernel's Mobile
//!   IPv6 route optimization), chosen by `--datapath auto|user|xfrm`.
//! - [`kernel`]: the `xfrm` backend's Mobility Header sockets.
//! - [`run`]: the daemon's life (datapath, addresses, serve, shutdown).

pub mod app;
pub mod config;
pub mod datapath;
pub mod fallback;
pub mod icmp;
pub mod kernel;

use std::net::{IpAddr, Ipv6Addr};

use anyhow::{Context as _, bail};
use tokio::sync::mpsc;
use tracing::{info, warn};

pub use datapath::{CnDatapath, DatapathChoice};

use crate::crypto::SystemRandomSource;
use crate::daemon::shell::{self, Context};
use crate::daemon::{DaemonEngine, Outbox, ServeDatapath, serve, serve_with};
use crate::engine::datapath::Punt;
use crate::engine::netlink::Netlink;
use crate::proto::Correspondent;
use crate::wire::is_valid_home_address;
use crate::xfrm::{CorrespondentXfrm, ReportSocket};

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

/// Options of `mip6-cn` besides the common ones.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CnArgs {
    /// Datapath: `user` (tunnel engine, the default), `xfrm` (the
    /// kernel's Mobile IPv6 route optimization through NETLINK_XFRM;
    /// needs CONFIG_IPV6_MIP6), `auto` (xfrm if the kernel supports it).
    /// Default: the config's `correspondent.datapath`, else user.
    #[arg(long, value_enum, value_name = "DATAPATH")]
    pub datapath: Option<DatapathChoice>,
}

/// Which datapath `choice` means on this kernel (`auto` probes).
pub fn resolve(choice: DatapathChoice) -> DatapathChoice {
    match choice {
        DatapathChoice::Auto => match crate::xfrm::probe() {
            Ok(()) => DatapathChoice::Xfrm,
            Err(e) => {
                info!(error = %e, "the kernel cannot do Mobile IPv6 route optimization: user datapath");
                DatapathChoice::User
            }
        },
        c => c,
    }
}

/// Runs the agent until SIGTERM/SIGINT with the configured datapath.
pub async fn run(cfg: config::CnConfig, ctx: Context) -> anyhow::Result<()> {
    run_with(cfg, ctx, CnArgs::default()).await
}

/// [`run`] with the command line's options.
pub async fn run_with(cfg: config::CnConfig, ctx: Context, args: CnArgs) -> anyhow::Result<()> {
    let choice = args
        .datapath
        .or(cfg.correspondent.datapath)
        .unwrap_or_default();
    match resolve(choice) {
        DatapathChoice::Xfrm => run_xfrm(cfg, ctx).await,
        _ => run_user(cfg, ctx).await,
    }
}

/// The machine and the ICMPv6 error inputs, the same for both datapaths.
fn machine_and_inputs(
    cfg: &config::CnConfig,
) -> anyhow::Result<(Correspondent, mpsc::Receiver<app::CnInput>)> {
    let cn = Correspondent::new(
        cfg.correspondent.machine(),
        Box::new(SystemRandomSource::new()),
        std::time::Instant::now(),
    )
    .context("creating the correspondent (nonce table)")?;
    let fallback = cfg.fallback.settings();
    let (tx, inputs) = mpsc::channel(64);
    if fallback.enabled && fallback.icmp_errors {
        let sock = icmp::open().context("opening the ICMPv6 error socket")?;
        tokio::spawn(async move {
            let (etx, mut erx) = mpsc::channel(64);
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
    Ok((cn, inputs))
}

async fn addresses_of(
    cfg: &config::CnConfig,
    nl: &Netlink,
    interfaces: &[String],
) -> anyhow::Result<Vec<Ipv6Addr>> {
    let addresses = match &cfg.correspondent.addresses {
        Some(a) => a.clone(),
        None => discover_addresses(nl, interfaces)
            .await
            .context("finding this node's addresses")?,
    };
    if addresses.is_empty() {
        bail!("no global address on the interfaces: set correspondent.addresses");
    }
    Ok(addresses)
}

/// The `user` datapath: the tunnel engine.
async fn run_user(cfg: config::CnConfig, ctx: Context) -> anyhow::Result<()> {
    let mut engine = DaemonEngine::start(&cfg.engine).await?;
    let result = async {
        let addresses = addresses_of(&cfg, &engine.netlink, &engine.interfaces).await?;
        let (cn, mut inputs) = machine_and_inputs(&cfg)?;
        let dp = CnDatapath::User {
            outbox: Outbox::new(engine.handle.clone()),
            engine: engine.handle.clone(),
        };
        let mut app = app::CnApp::start(
            cn,
            addresses,
            dp,
            cfg.fallback.settings(),
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

/// Feeds Mobility Header messages and XFRM reports to `tx` as punts.
async fn kernel_punts(
    mut mh: kernel::MhReceiver,
    mut reports: ReportSocket,
    tx: mpsc::Sender<Punt>,
) {
    loop {
        let punt = tokio::select! {
            p = mh.next() => match p {
                Ok(p) => p,
                Err(e) => {
                    warn!(error = %e, "Mobility Header socket failed");
                    return;
                }
            },
            r = reports.next() => match r {
                Ok(r) => Punt::HaoWithoutBinding { src: r.coa, dst: r.cn, hoa: r.hoa },
                Err(e) => {
                    warn!(error = %e, "XFRM report socket failed");
                    return;
                }
            },
        };
        if tx.send(punt).await.is_err() {
            return;
        }
    }
}

/// The `xfrm` datapath: the kernel's `route2` / `hao` states.
async fn run_xfrm(cfg: config::CnConfig, ctx: Context) -> anyhow::Result<()> {
    let nl = Netlink::current().context("opening netlink")?;
    let interfaces: Vec<String> = match &cfg.engine.interfaces {
        Some(v) => v.clone(),
        None => nl
            .links()
            .await
            .context("listing interfaces")?
            .into_iter()
            .filter(|l| l.name != "lo" && !l.name.is_empty())
            .map(|l| l.name)
            .collect(),
    };
    let addresses = addresses_of(&cfg, &nl, &interfaces).await?;
    let xfrm = CorrespondentXfrm::start().context("installing the XFRM start-up entries")?;
    let mut dp = Some(CnDatapath::Xfrm {
        xfrm,
        sender: kernel::KernelSender::open().context("opening the raw send socket")?,
        sent: 0,
        failed: 0,
    });
    let result = async {
        let mh = kernel::MhReceiver::open().context("opening the Mobility Header socket")?;
        let reports = ReportSocket::open().context("joining the XFRM report group")?;
        let (tx, mut punts) = mpsc::channel(256);
        let reader = tokio::spawn(kernel_punts(mh, reports, tx));
        let (cn, mut inputs) = machine_and_inputs(&cfg)?;
        let taken = dp.take().context("datapath")?;
        let mut app = app::CnApp::start(
            cn,
            addresses,
            taken,
            cfg.fallback.settings(),
            cfg.correspondent.usage_poll(),
        )
        .await?;
        info!("kernel datapath (XFRM route2/hao) in use");
        let (_server, mut calls) = shell::bind_control(&ctx)?;
        let mut no_task = None;
        let r = serve_with(
            &mut app,
            ServeDatapath {
                engine: None,
                punts: &mut punts,
                interfaces: &interfaces,
                task: &mut no_task,
            },
            &mut calls,
            &mut inputs,
            &ctx,
        )
        .await;
        reader.abort();
        dp = Some(app.into_datapath());
        r
    }
    .await;
    if let Some(CnDatapath::Xfrm { xfrm, .. }) = dp {
        xfrm.stop().context("removing the XFRM entries")?;
    }
    result
}
