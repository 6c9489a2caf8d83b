//! `contact-node`: the anycast member daemon (contact role).
//!
//! `contact-node --config FILE` runs it; `contact-node ctl status|bindings`
//! asks a running one. See `contact_node::config` for the file format.

use std::process::ExitCode;

use mip6_anycast::daemon::shell;

fn main() -> ExitCode {
    shell::run_daemon::<contact_node::config::ContactConfig, _, _>(
        "contact-node",
        "Anycast member daemon: registers the anycast address at the home agent and route-optimizes its clients (user-space datapath)",
        contact_node::run,
    )
}
