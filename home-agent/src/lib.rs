//! `home-agent`: the RFC 6275 home agent of anycast home addresses, as a
//! library so its parts can be tested; the binary is `src/main.rs`.
//!
//! - [`config`]: the TOML configuration (`[home]`, `[[home_address]]`).
//! - [`store`]: the persisted binding cache.
//! - [`app`]: the control plane around [`mip6_anycast::proto::HomeAgent`].
//! - [`run`]: the daemon's life: engine, restore, serve, shutdown.

pub mod app;
pub mod config;
pub mod store;

use mip6_anycast::daemon::shell::{self, Context};
use mip6_anycast::daemon::{DaemonEngine, serve};
use mip6_anycast::engine::sysctl;
use tracing::warn;

/// Runs the home agent until SIGTERM/SIGINT.
pub async fn run(cfg: config::HaConfig, ctx: Context) -> anyhow::Result<()> {
    let mut engine = DaemonEngine::start(&cfg.engine).await?;
    let key = sysctl::ipv6_conf_key("all", sysctl::Ipv6Conf::Forwarding);
    if sysctl::read(None, &key).is_ok_and(|v| v.trim() == "0") {
        warn!(
            "IPv6 forwarding is off: decapsulated packets (RFC 6275 10.4.5) and relayed HoTIs will not be forwarded"
        );
    }
    let result = async {
        let mut app = app::HaApp::start(&cfg, engine.handle.clone(), &ctx.state_dir).await?;
        let (_server, mut calls) = shell::bind_control(&ctx)?;
        let (_tx, mut inputs) = tokio::sync::mpsc::channel::<()>(1);
        serve(&mut app, &mut engine, &mut calls, &mut inputs, &ctx).await
    }
    .await;
    // Registrations stay on disk for the next start; the tunnels go with
    // the engine.
    let stopped = engine.stop().await;
    result?;
    stopped.map(|_| ())
}
