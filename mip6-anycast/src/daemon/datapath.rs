//! Starting and stopping a daemon's tunnel engine: the steered
//! interfaces (default: every interface but `lo` and the TUN), the
//! steering, the engine task, and its removal at shutdown.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::config::EngineSection;
use crate::engine::datapath::{
    Engine, EngineConfig, EngineExit, EngineHandle, EngineIo, EngineStats, Punt,
};
use crate::engine::netlink::Netlink;
use crate::engine::steer::{Steering, SteeringConfig};

/// How long a stopping engine may take before it is abandoned.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A daemon's running engine.
#[derive(Debug)]
pub struct DaemonEngine {
    /// The control plane's handle.
    pub handle: EngineHandle,
    /// Packets for the control plane.
    pub punts: mpsc::Receiver<Punt>,
    /// Netlink in the daemon's namespace.
    pub netlink: Netlink,
    /// The steered interfaces.
    pub interfaces: Vec<String>,
    pub(super) task: Option<JoinHandle<EngineExit>>,
}

/// Interfaces to steer when the config names none: every link but `lo`
/// and the engine's TUN.
async fn default_interfaces(nl: &Netlink, tun: &str) -> anyhow::Result<Vec<String>> {
    let links = nl.links().await.context("listing interfaces")?;
    let names: Vec<String> = links
        .into_iter()
        .filter(|l| l.name != "lo" && l.name != tun && !l.name.is_empty())
        .map(|l| l.name)
        .collect();
    if names.is_empty() {
        bail!("no interface to steer (only lo): name them in engine.interfaces");
    }
    Ok(names)
}

impl DaemonEngine {
    /// Installs the steering described by `cfg` and starts the engine on
    /// the current runtime.
    pub async fn start(cfg: &EngineSection) -> anyhow::Result<DaemonEngine> {
        let nl = Netlink::current().context("opening netlink")?;
        let interfaces = match &cfg.interfaces {
            Some(v) => v.clone(),
            None => default_interfaces(&nl, &cfg.tun).await?,
        };
        let mut path_mtu = u32::MAX;
        for name in &interfaces {
            let link = nl
                .link_by_name(name)
                .await
                .with_context(|| format!("interface {name:?} (engine.interfaces)"))?;
            path_mtu = path_mtu.min(link.mtu.unwrap_or(1500));
        }
        let refs: Vec<&str> = interfaces.iter().map(String::as_str).collect();
        let mut sc = SteeringConfig::new(&cfg.tun, &refs);
        sc.path_mtu = cfg.path_mtu.unwrap_or(path_mtu);
        if let Some(m) = cfg.fwmark {
            sc.fwmark = m;
        }
        if let Some(t) = cfg.table {
            sc.table = t;
            sc.from_table = t.saturating_add(1);
        }
        if let Some(p) = cfg.rule_priority {
            sc.rule_priority = p;
        }
        let (steering, tun) = Steering::install(&nl, sc)
            .await
            .context("installing the steering (TUN, tc filters, rules)")?;
        let io = EngineIo::from_steering(steering, tun).context("opening the engine's sockets")?;
        let ecfg = EngineConfig {
            mode: cfg.datapath,
            ..EngineConfig::default()
        };
        let running = Engine::start(io, ecfg).context("starting the engine")?;
        info!(tun = %cfg.tun, interfaces = ?interfaces, "engine started");
        Ok(DaemonEngine {
            handle: running.handle,
            punts: running.punts,
            netlink: nl,
            interfaces,
            task: Some(running.task),
        })
    }

    /// True once the engine task has ended (an error: it should run until
    /// [`DaemonEngine::stop`]).
    #[must_use]
    pub fn has_stopped(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the engine and removes its steering (routes, rules, tc
    /// filters; the TUN goes with the engine). Returns its last counters.
    pub async fn stop(mut self) -> anyhow::Result<Option<EngineStats>> {
        let Some(task) = self.task.take() else {
            return Ok(None);
        };
        let _ = self.handle.shutdown().await;
        let exit = tokio::time::timeout(STOP_TIMEOUT, task)
            .await
            .context("the engine did not stop in time")?
            .context("engine task")?;
        if let Some(s) = exit.steering {
            s.remove().await.context("removing the steering")?;
        }
        if let Err(e) = exit.result {
            warn!(error = %e, "the engine had stopped with an error");
        }
        Ok(Some(exit.stats))
    }
}

/// Waits until the engine task in `task` ends by itself (for `select!`;
/// forever once it is gone) and says why.
pub(super) async fn wait_stopped(task: &mut Option<JoinHandle<EngineExit>>) -> String {
    let Some(t) = task.as_mut() else {
        return std::future::pending().await;
    };
    let joined = t.await;
    *task = None;
    match joined {
        Ok(exit) => {
            if let Some(s) = exit.steering
                && let Err(e) = s.remove().await
            {
                warn!(error = %e, "removing the steering");
            }
            match exit.result {
                Ok(()) => "stopped".to_string(),
                Err(e) => e.to_string(),
            }
        }
        Err(e) => format!("engine task failed: {e}"),
    }
}
