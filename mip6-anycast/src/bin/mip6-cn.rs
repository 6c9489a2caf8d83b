//! `mip6-cn`: the Mobile IPv6 correspondent-node agent for client hosts.
//!
//! `mip6-cn --config FILE` runs it; `mip6-cn ctl status|bindings` asks a
//! running one. See `mip6_anycast::cn::config` for the file format.

use std::process::ExitCode;

use clap::Parser;
use mip6_anycast::cn;
use mip6_anycast::daemon::shell;
use mip6_anycast::daemon::{DaemonArgs, DaemonCommand};

/// Mobile IPv6 correspondent agent: route optimization toward anycast
/// home addresses (user-space datapath).
#[derive(Parser, Debug)]
#[command(name = "mip6-cn", version)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(subcommand)]
    command: Option<DaemonCommand>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shell::main::<cn::config::CnConfig, _, _>("mip6-cn", cli.daemon, cli.command, cn::run)
}
