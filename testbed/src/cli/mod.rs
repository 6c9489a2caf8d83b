//! The `testbed` command line: `up`, `demo`, `bench`, `down`, `list`, `exec`, and the hidden
//! `reap` (the crash guard every lab starts).
//!
//! Extension point: scenario subcommands (`demo`, `bench`, `sweep`,
//! `drill`, `pias`) are added to [`Command`] and dispatched in [`run`]; each
//! is a thin handler over [`testbed::scenarios::Session`] (see that module).

mod bench;
mod demo;
mod down;
mod drill;
mod exec;
mod pias;
mod sweep;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use testbed::lab::reaper::{self, ReapArgs};
use testbed::lab::signals::TerminationSignals;
use testbed::lab::{DEFAULT_FAMILY, DEFAULT_STATE_DIR, LabOptions, Reaper, naming};
use testbed::scenarios::ScenarioBase;

/// Namespace labs for mip6-anycast: build, run, take down.
#[derive(Parser, Debug)]
#[command(name = "testbed", version)]
pub struct Cli {
    /// Directory of the labs' state files.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Name family of lab prefixes: namespaces are `FAMILY<pid>x<n>-HOST`.
    #[arg(long, global = true, value_name = "LETTERS", default_value = DEFAULT_FAMILY)]
    pub family: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the lab of a topology, start its daemons, and keep it up
    /// until Ctrl-C or SIGTERM (then tear it down).
    Up(up::UpArgs),
    /// Take labs down: ask each owner to stop (SIGTERM), wait, then remove
    /// whatever is left (processes in the lab's namespaces, namespaces,
    /// state file).
    Down(down::DownArgs),
    /// List the labs in the state directory and leftover namespaces.
    List,
    /// Run a command inside a host of a running lab.
    Exec(exec::ExecArgs),
    /// Internal: the crash guard of a lab (started by the lab itself).
    #[command(hide = true)]
    Reap(ReapCli),
    /// The end-to-end demo: a client reaches the anycast address through
    /// the home agent, then by route optimization; writes DIR/report.json
    /// and the link captures. Exit status 0 only on success.
    Demo(demo::DemoArgs),
    /// TCP throughput (iperf3, 1 and 4 streams) and RTT of the direct,
    /// kernel-forwarded, home-agent and route-optimized paths, measured in
    /// one run; writes DIR/bench.json (ratios to direct) and DIR/bench.png.
    Bench(bench::BenchArgs),
    /// Measurement sweeps: `sweep handoff` (handoff delay over Lcs x Lss,
    /// live TCP verified).
    #[command(subcommand)]
    Sweep(sweep::SweepWhat),
    /// Failover drills: `drill contact-failover` (a backup takes the
    /// anycast address over) and `drill ha-restart`.
    #[command(subcommand)]
    Drill(drill::DrillWhat),
    /// The PIAS lab: OSPFv3 (BIRD 2) routers, six pias-proxy daemons
    /// announcing the anycast prefix, targets and clients; writes
    /// DIR/pias.json (segments, serving proxies, RAP updates, failover
    /// times, affinity) and the routers' captures.
    Pias(pias::PiasArgs),
    // Further scenario subcommands go here (see `testbed::scenarios`).
}

/// The arguments every scenario takes.
#[derive(Args, Debug)]
pub struct ScenarioArgs {
    /// Output directory (reports, pcap/, logs/, config/).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Topology file (default: the scenario's built-in topology from
    /// testbed/topologies/).
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
    /// Directory of the daemon binaries (default: next to `testbed`).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

impl ScenarioArgs {
    /// The scenario's base options, its lab in `state_dir` under `family`.
    pub fn base(&self, state_dir: &std::path::Path, family: &str) -> ScenarioBase {
        ScenarioBase {
            out: self.out.clone(),
            topology: self.topology.clone(),
            bin_dir: self.bin_dir.clone(),
            lab: LabOptions {
                family: family.to_string(),
                state_dir: state_dir.to_owned(),
                reaper: std::env::current_exe().map_or(Reaper::Auto, Reaper::Program),
                topology_path: self.topology.clone(),
                ..Default::default()
            },
        }
    }
}

/// Arguments of `testbed reap`.
#[derive(Args, Debug)]
pub struct ReapCli {
    /// The lab's prefix.
    #[arg(long)]
    prefix: String,
    /// The owner's pid.
    #[arg(long)]
    owner: i32,
    /// The lab's state file.
    #[arg(long)]
    state_file: Option<PathBuf>,
}

/// Runs the command. `signals` is set for commands that block termination
/// signals before any thread starts (`up`).
pub fn run(cli: Cli, signals: Option<TerminationSignals>) -> anyhow::Result<ExitCode> {
    naming::check_family(&cli.family).map_err(|m| anyhow::anyhow!("--family {m}"))?;
    match cli.command {
        Command::Up(args) => {
            let signals = match signals {
                Some(s) => s,
                None => TerminationSignals::block()?,
            };
            up::run(&args, &cli.state_dir, &cli.family, &signals)
        }
        Command::Demo(args) => {
            let signals = match signals {
                Some(s) => s,
                None => TerminationSignals::block()?,
            };
            demo::run(&args, &cli.state_dir, &cli.family, &signals)
        }
        Command::Bench(args) => {
            let signals = match signals {
                Some(s) => s,
                None => TerminationSignals::block()?,
            };
            bench::run(&args, &cli.state_dir, &cli.family, &signals)
        }
        Command::Sweep(what) => {
            let signals = match signals {
                Some(s) => s,
                None => TerminationSignals::block()?,
            };
            sweep::run(&what, &cli.state_dir, &cli.family, &signals)
        }
        Command::Drill(what) => {
            let signals = match signals {
                Some(s) => s,
                None => TerminationSignals::block()?,
            };
            drill::run(&what, &cli.state_dir, &cli.family, &signals)
        }
        Command::Pias(args) => {
            let signals = match signals {
                Some(s) => s,
                None => TerminationSignals::block()?,
            };
            pias::run(&args, &cli.state_dir, &cli.family, &signals)
        }
        Command::Down(args) => down::run(&args, &cli.state_dir, &cli.family),
        Command::List => down::list(&cli.state_dir, &cli.family),
        Command::Exec(args) => exec::run(&args, &cli.state_dir),
        Command::Reap(r) => {
            anyhow::ensure!(
                !r.prefix.is_empty() && r.prefix.bytes().all(|b| b.is_ascii_alphanumeric()),
                "reap: bad prefix {:?}",
                r.prefix
            );
            let code = reaper::run(&ReapArgs {
                prefix: r.prefix,
                state_file: r.state_file,
                owner: r.owner,
            });
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}
