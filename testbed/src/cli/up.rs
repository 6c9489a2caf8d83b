//! `testbed up TOPOLOGY.toml`: build, start daemons, wait, tear down.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use testbed::lab::signals::TerminationSignals;
use testbed::lab::{DaemonOptions, LabOptions, Reaper, TeardownReport};
use testbed::scenarios::{Session, SessionOptions};
use testbed::topology::Topology;

/// Arguments of `testbed up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// The topology file.
    pub topology: PathBuf,
    /// Output directory (logs, pcaps, daemon configs); default
    /// `$TMPDIR/mip6-testbed/<prefix>`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Build the lab without starting the topology's daemons.
    #[arg(long)]
    pub no_daemons: bool,
    /// Capture every emulated link, whatever the topology says.
    #[arg(long, conflicts_with = "no_capture")]
    pub capture: bool,
    /// Capture no link, whatever the topology says.
    #[arg(long)]
    pub no_capture: bool,
    /// Directory of the daemon binaries (default: next to `testbed`).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// How often the wait loop looks at the daemons.
const CHECK_EVERY: Duration = Duration::from_millis(500);

pub fn run(
    args: &UpArgs,
    state_dir: &Path,
    family: &str,
    signals: &TerminationSignals,
) -> anyhow::Result<ExitCode> {
    let topo = Topology::load(&args.topology)
        .with_context(|| format!("loading topology {}", args.topology.display()))?;
    let reaper = match std::env::current_exe() {
        Ok(exe) => Reaper::Program(exe),
        Err(_) => Reaper::Auto,
    };
    let capture = match (args.capture, args.no_capture) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let opts = SessionOptions {
        lab: LabOptions {
            family: family.to_string(),
            out_dir: args.out.clone(),
            capture,
            state_dir: state_dir.to_owned(),
            reaper,
            topology_path: Some(
                std::path::absolute(&args.topology).unwrap_or_else(|_| args.topology.clone()),
            ),
            ..Default::default()
        },
        daemons: (!args.no_daemons).then(|| DaemonOptions {
            bin_dir: args.bin_dir.clone(),
            ..Default::default()
        }),
    };
    let session = Session::start(&topo, opts)
        .with_context(|| format!("starting the lab of {}", args.topology.display()))?;
    let prefix = session.lab.prefix().to_string();
    let mut out = std::io::stdout().lock();
    write!(out, "{}", session.lab.summary())?;
    if !session.daemons.is_empty() {
        writeln!(out, "daemons:")?;
        for p in &session.daemons {
            writeln!(
                out,
                "  {}  in {}  pid {}  log {}",
                p.name(),
                p.host(),
                p.pid(),
                p.log_path().display()
            )?;
        }
    }
    writeln!(
        out,
        "testbed: lab {prefix} up; Ctrl-C or `testbed down {prefix}` tears it down"
    )?;
    out.flush()?;
    drop(out);

    let mut reported = HashSet::new();
    let sig = loop {
        if let Some(sig) = signals.wait_timeout(CHECK_EVERY) {
            break sig;
        }
        for (p, status) in session.exited_daemons() {
            if reported.insert(p.pid()) {
                eprintln!(
                    "testbed: daemon {} in {} exited ({status}); log {}:\n{}",
                    p.name(),
                    p.host(),
                    p.log_path().display(),
                    p.log_tail(10)
                );
            }
        }
    };
    eprintln!("testbed: {sig}: tearing down lab {prefix}");
    let report = session.stop();
    print_report(&prefix, &report);
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(prefix: &str, r: &TeardownReport) {
    for (label, how) in &r.processes {
        eprintln!("testbed: stopped {label}: {how}");
    }
    if r.strays_killed > 0 {
        eprintln!(
            "testbed: killed {} other processes in the lab",
            r.strays_killed
        );
    }
    for (name, s) in &r.link_stats {
        eprintln!(
            "testbed: link {name}: a->b {} in / {} out / {} lost, b->a {} in / {} out / {} lost",
            s.a_to_b.packets_in,
            s.a_to_b.packets_out,
            s.a_to_b.dropped_loss,
            s.b_to_a.packets_in,
            s.b_to_a.packets_out,
            s.b_to_a.dropped_loss
        );
    }
    for e in &r.errors {
        eprintln!("testbed: teardown: {e}");
    }
    eprintln!(
        "testbed: lab {prefix} down ({} namespaces deleted)",
        r.namespaces_deleted.len()
    );
}
