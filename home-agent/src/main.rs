//! `home-agent`: RFC 6275 home agent for the anycast home addresses.
//!
//! `home-agent --config FILE` runs it; `home-agent ctl status|bindings`
//! asks a running one. See `home_agent::config` for the file format.

use std::process::ExitCode;

use mip6_anycast::daemon::shell;

fn main() -> ExitCode {
    shell::run_daemon::<home_agent::config::HaConfig, _, _>(
        "home-agent",
        "RFC 6275 home agent for anycast home addresses (user-space datapath)",
        home_agent::run,
    )
}
