//! `mip6-cn`: the Mobile IPv6 correspondent-node agent for client hosts.
//!
//! `mip6-cn --config FILE [--datapath auto|user|xfrm]` runs it; `mip6-cn
//! ctl status|bindings` asks a running one. See
//! `mip6_anycast::cn::config` for the file format.

use std::process::ExitCode;

use mip6_anycast::cn::{CnArgs, config::CnConfig, run_with};
use mip6_anycast::daemon::shell;

fn main() -> ExitCode {
    shell::run_daemon_with::<CnConfig, CnArgs, _, _>(
        "mip6-cn",
        "Mobile IPv6 correspondent agent: route optimization toward anycast home addresses (user-space engine, or the kernel's XFRM route2/hao states)",
        run_with,
    )
}
