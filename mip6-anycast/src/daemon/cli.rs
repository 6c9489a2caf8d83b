//! The command line every daemon shares: `DAEMON --config FILE
//! [--log-level L] [--control-socket PATH]` runs it, `DAEMON ctl COMMAND`
//! asks a running one through its control socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::config::{self, DaemonConfig};
use super::control::{self, Request};
use super::system;

/// Options of every daemon (also accepted after `ctl`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DaemonArgs {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Log filter: a level (error, warn, info, debug, trace) or an
    /// EnvFilter directive; wins over RUST_LOG and the config file.
    #[arg(long, value_name = "FILTER", global = true)]
    pub log_level: Option<String>,
    /// Control socket path; wins over the config file. Default
    /// /run/mip6-anycast/[NETNS/]DAEMON.sock.
    #[arg(long, value_name = "PATH", global = true)]
    pub control_socket: Option<PathBuf>,
}

/// Subcommands of every daemon.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum DaemonCommand {
    /// Ask the running daemon through its control socket (`status`,
    /// `bindings`, `engine`, `help`, ...); prints the JSON answer.
    Ctl(CtlArgs),
}

/// `ctl` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct CtlArgs {
    /// The command: status, bindings, engine, help (and the daemon's own).
    pub command: String,
    /// Arguments of the command, as JSON.
    #[arg(long, value_name = "JSON")]
    pub args: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

/// The control socket a daemon named `name` uses: `--control-socket`,
/// else the config file's `daemon.control_socket`, else the default.
pub fn control_socket_of<C: DaemonConfig>(
    name: &str,
    args: &DaemonArgs,
) -> Result<PathBuf, String> {
    if let Some(p) = &args.control_socket {
        return Ok(p.clone());
    }
    if let Some(path) = &args.config {
        let cfg: C = config::load(path).map_err(|e| e.to_string())?;
        if let Some(p) = &cfg.daemon().control_socket {
            return Ok(p.clone());
        }
    }
    Ok(system::default_control_socket(name))
}

/// Runs `DAEMON ctl ...`: prints the result as pretty JSON; exit status 1
/// (with the error on stderr) if the daemon cannot be reached or the
/// command failed.
pub fn run_ctl<C: DaemonConfig>(name: &str, args: &DaemonArgs, ctl: &CtlArgs) -> ExitCode {
    let fail = |m: String| {
        eprintln!("{name} ctl: {m}");
        ExitCode::FAILURE
    };
    let path = match control_socket_of::<C>(name, args) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let json_args = match &ctl.args {
        None => serde_json::Value::Null,
        Some(text) => match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return fail(format!("--args is not JSON: {e}")),
        },
    };
    let timeout = if ctl.timeout.is_finite() && ctl.timeout > 0.0 {
        Duration::from_secs_f64(ctl.timeout.min(3600.0))
    } else {
        return fail("--timeout must be a positive number of seconds".into());
    };
    let req = Request {
        cmd: ctl.command.clone(),
        args: json_args,
    };
    match control::request(&path, &req, timeout) {
        Err(e) => fail(format!("{e} (is {name} running?)")),
        Ok(r) if r.ok => {
            println!(
                "{}",
                serde_json::to_string_pretty(&r.result).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(r) => fail(r.error.unwrap_or_else(|| "command failed".into())),
    }
}
