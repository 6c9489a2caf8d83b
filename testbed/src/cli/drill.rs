//! `testbed drill contact-failover --reps N --out DIR [--fault ..]` and
//! `testbed drill ha-restart --out DIR` (see `testbed::scenarios::drill`).
//! Exit status 0 only if every rep recovered as the issue asks.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use testbed::lab::signals::TerminationSignals;
use testbed::scenarios::drill::{self, DrillOptions, Fault, ha_restart};

/// Which drill.
#[derive(Subcommand, Debug)]
pub enum DrillWhat {
    /// The contact node fails (kill, freeze or link down); a backup takes
    /// X over: failover.csv, failover.png, summary.json.
    ContactFailover(FailoverArgs),
    /// The home agent crashes and restarts: ha_restart.json.
    HaRestart(super::ScenarioArgs),
}

/// Arguments of `testbed drill contact-failover`.
#[derive(Args, Debug)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub common: super::ScenarioArgs,
    /// Repetitions per fault kind (each in a fresh lab).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub reps: u32,
    /// Fault kinds, comma-separated (default: all three).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub fault: Vec<Fault>,
}

pub fn run(
    what: &DrillWhat,
    state_dir: &Path,
    family: &str,
    signals: &TerminationSignals,
) -> anyhow::Result<ExitCode> {
    match what {
        DrillWhat::ContactFailover(args) => {
            anyhow::ensure!((1..=1000).contains(&args.reps), "--reps must be 1..=1000");
            let mut opts = DrillOptions::new(&args.common.out, args.reps);
            opts.base = args.common.base(state_dir, family);
            if !args.fault.is_empty() {
                opts.faults = args.fault.clone();
            }
            let s = drill::run(&opts, Some(signals))?;
            println!(
                "heartbeat {} ms, dead after {} ms",
                s.heartbeat_ms, s.dead_after_ms
            );
            println!(
                "{:>9} {:>5} {:>9} {:>14} {:>14} {:>14} {:>13} {:>13}",
                "fault",
                "reps",
                "recovered",
                "detect_ms",
                "registered_ms",
                "recover_ms",
                "members_conns",
                "contact_conns"
            );
            let f = |s: &drill::results::Spread| match (s.median, s.max) {
                (Some(m), Some(x)) => format!("{m:.0} ({x:.0})"),
                _ => "-".into(),
            };
            for (name, fs) in &s.faults {
                println!(
                    "{:>9} {:>5} {:>9} {:>14} {:>14} {:>14} {:>13} {:>13}",
                    name,
                    fs.reps,
                    fs.recovered,
                    f(&fs.detect_ms),
                    f(&fs.registered_ms),
                    f(&fs.recover_ms),
                    format!("{}/{}", fs.conns_at_members.1, fs.conns_at_members.0),
                    format!("{}/{}", fs.conns_at_contact.1, fs.conns_at_contact.0),
                );
            }
            for (name, fs) in &s.faults {
                println!(
                    "{name}: new connection from the client bound to the dead contact: {}",
                    f(&fs.bound_client_recover_ms)
                );
            }
            println!("(times: median (worst) in ms from the fault)");
            for e in &s.errors {
                eprintln!("drill: error: {e}");
            }
            println!(
                "drill: {}; results in {}",
                if s.passed {
                    "every rep recovered"
                } else {
                    "FAILED"
                },
                args.common.out.display()
            );
            Ok(if s.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DrillWhat::HaRestart(args) => {
            let r = ha_restart::run(&args.base(state_dir, family))?;
            println!(
                "registrations before {} after {}, home agent back after {} ms, new connection after {} ms, route-optimized streams {}/{}",
                r.registrations_before.len(),
                r.registrations_after.len(),
                r.restarted_ms.map_or("-".into(), |v| format!("{v:.0}")),
                r.recover_ms.map_or("-".into(), |v| format!("{v:.0}")),
                r.streams_survived,
                r.streams
            );
            for e in &r.errors {
                eprintln!("drill: error: {e}");
            }
            Ok(if r.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
