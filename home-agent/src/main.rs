//! `home-agent`: RFC 6275 home agent for the anycast home addresses.
//!
//! `home-agent --config FILE` runs it; `home-agent ctl status|bindings`
//! asks a running one. See `home_agent::config` for the file format.

use std::process::ExitCode;

use clap::Parser;
use mip6_anycast::daemon::shell;
use mip6_anycast::daemon::{DaemonArgs, DaemonCommand};

/// RFC 6275 home agent for anycast home addresses (user-space datapath).
#[derive(Parser, Debug)]
#[command(name = "home-agent", version)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(subcommand)]
    command: Option<DaemonCommand>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shell::main::<home_agent::config::HaConfig, _, _>(
        "home-agent",
        cli.daemon,
        cli.command,
        home_agent::run,
    )
}
