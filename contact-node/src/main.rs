//! `contact-node`: the anycast member daemon (contact role).
//!
//! `contact-node --config FILE` runs it; `contact-node ctl status|bindings`
//! asks a running one. See `contact_node::config` for the file format.

use std::process::ExitCode;

use clap::Parser;
use mip6_anycast::daemon::shell;
use mip6_anycast::daemon::{DaemonArgs, DaemonCommand};

/// Anycast member daemon: registers the anycast address at the home
/// agent and route-optimizes its clients (user-space datapath).
#[derive(Parser, Debug)]
#[command(name = "contact-node", version)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(subcommand)]
    command: Option<DaemonCommand>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shell::main::<contact_node::config::ContactConfig, _, _>(
        "contact-node",
        cli.daemon,
        cli.command,
        contact_node::run,
    )
}
