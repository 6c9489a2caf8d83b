//! `testbed sweep handoff --out DIR [--lcs ..] [--lss ..] [--reps N]`: the
//! handoff delay over a grid of latencies (see
//! `testbed::scenarios::sweep`). Exit status 0 only if every cell meets
//! the papers' delays and every row is clean.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use testbed::lab::signals::TerminationSignals;
use testbed::scenarios::sweep::{self, SweepOptions};

/// What to sweep.
#[derive(Subcommand, Debug)]
pub enum SweepWhat {
    /// Client handoff K -> A with live TCP: handoff.csv, handoff.png,
    /// summary.json (medians against 6*Lcs+3*Lss and 4*Lcs+Lss).
    Handoff(HandoffArgs),
}

/// Arguments of `testbed sweep handoff`.
#[derive(Args, Debug)]
pub struct HandoffArgs {
    #[command(flatten)]
    pub common: super::ScenarioArgs,
    /// One-way client-contact latencies (ms), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,5,10,20,50",
        value_name = "MS,..."
    )]
    pub lcs: Vec<f64>,
    /// One-way contact-acceptor latencies (ms), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,5,10,20",
        value_name = "MS,..."
    )]
    pub lss: Vec<f64>,
    /// Repetitions per cell (each gives a first and a cached handoff).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub reps: u32,
    /// Bytes per second each way on the test stream.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub rate: u64,
}

pub fn run(
    what: &SweepWhat,
    state_dir: &Path,
    family: &str,
    signals: &TerminationSignals,
) -> anyhow::Result<ExitCode> {
    let SweepWhat::Handoff(args) = what;
    let ok = |v: &[f64]| {
        !v.is_empty()
            && v.iter()
                .all(|x| x.is_finite() && (0.0..=1000.0).contains(x))
    };
    anyhow::ensure!(ok(&args.lcs), "--lcs: latencies in 0..=1000 ms");
    anyhow::ensure!(ok(&args.lss), "--lss: latencies in 0..=1000 ms");
    anyhow::ensure!((1..=1000).contains(&args.reps), "--reps must be 1..=1000");
    anyhow::ensure!(
        (1024..=1 << 30).contains(&args.rate),
        "--rate must be 1 KiB/s ..= 1 GiB/s"
    );
    let mut opts = SweepOptions::new(&args.common.out);
    opts.base = args.common.base(state_dir, family);
    opts.lcs = args.lcs.clone();
    opts.lss = args.lss.clone();
    opts.reps = args.reps;
    opts.rate = args.rate;
    let s = sweep::run(&opts, Some(signals))?;
    println!(
        "{:>7} {:>7} {:>7} {:>4} {:>11} {:>10} {:>10} {:>9}",
        "lcs_ms", "lss_ms", "kind", "n", "median_ms", "budget_ms", "stall_ms", "rows_ok"
    );
    for c in &s.cells {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        println!(
            "{:>7} {:>7} {:>7} {:>4} {:>11} {:>10.1} {:>10} {:>9}",
            c.lcs_ms,
            c.lss_ms,
            c.kind.as_str(),
            c.n,
            f(c.median_handoff_ms),
            c.budget_ms,
            f(c.median_stall_ms),
            c.rows_ok
        );
    }
    for e in &s.errors {
        eprintln!("sweep: error: {e}");
    }
    println!(
        "sweep: {} ({} rows); results in {}",
        if s.passed {
            "every cell within the papers' delays"
        } else {
            "FAILED"
        },
        s.rows,
        args.common.out.display()
    );
    Ok(if s.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
