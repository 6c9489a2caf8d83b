//! `pias-proxy`: a PIAS anycast proxy (ingress, rendezvous and join proxy at once).
//!
//! `pias-proxy --config FILE [--status FILE] [--log-level LEVEL]`; needs
//! CAP_NET_ADMIN (TUN, routes, raw sockets).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "pias-proxy", about = "PIAS anycast proxy (IAP, RAP and JAP)")]
struct Cli {
    /// TOML configuration.
    #[arg(long)]
    config: PathBuf,
    /// JSON status file rewritten every 200 ms.
    #[arg(long)]
    status: Option<PathBuf>,
    /// tracing filter.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
        .with_writer(std::io::stderr)
        .init();
    let text = std::fs::read_to_string(&cli.config)
        .with_context(|| format!("reading {}", cli.config.display()))?;
    let cfg: pias_proxy::daemon::config::DaemonConfig =
        toml::from_str(&text).with_context(|| format!("parsing {}", cli.config.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(pias_proxy::daemon::run(cfg, cli.status))
}
