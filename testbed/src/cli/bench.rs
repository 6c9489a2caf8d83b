//! `testbed bench --out DIR`: throughput and RTT of every path in one run
//! (see `testbed::scenarios::bench`). Exit status 0 only if every path was
//! measured.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use testbed::lab::signals::TerminationSignals;
use testbed::scenarios::bench::{self, BenchOptions, plot::ORDER};

/// Arguments of `testbed bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub common: super::ScenarioArgs,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub seconds: f64,
    /// Stream counts, comma-separated.
    #[arg(
        long,
        default_value = "1,4",
        value_delimiter = ',',
        value_name = "N,..."
    )]
    pub streams: Vec<u32>,
    /// ICMPv6 echoes per RTT figure.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub pings: u32,
}

pub fn run(
    args: &BenchArgs,
    state_dir: &Path,
    family: &str,
    signals: &TerminationSignals,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.seconds.is_finite() && (0.5..=600.0).contains(&args.seconds),
        "--seconds must be 0.5..=600"
    );
    anyhow::ensure!(
        !args.streams.is_empty() && args.streams.iter().all(|n| (1..=128).contains(n)),
        "--streams must list counts in 1..=128"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.pings),
        "--pings must be 1..=10000"
    );
    let mut opts = BenchOptions::new(&args.common.out);
    opts.base = args.common.base(state_dir, family);
    opts.seconds = args.seconds;
    opts.streams = args.streams.clone();
    opts.pings = args.pings;
    let r = bench::run(&opts, Some(signals))?;
    println!(
        "{:<18} {:>9} {}",
        "path",
        "RTT ms",
        r.streams
            .iter()
            .map(|n| format!("{:>16}", format!("{n} stream Gbit/s")))
            .collect::<String>()
    );
    for (key, label) in ORDER {
        let Some(p) = r.paths.get(*key) else { continue };
        let rtt = p.rtt_ms.map_or("-".into(), |v| format!("{v:.3}"));
        let cols: String = r
            .streams
            .iter()
            .map(|n| {
                let g = r.gbit_s(key, *n);
                let d = r.gbit_s("direct", *n);
                let s = match (g, d) {
                    (Some(g), Some(d)) => format!("{g:.2} ({:.2})", g / d),
                    (Some(g), None) => format!("{g:.2}"),
                    _ => "-".into(),
                };
                format!("{s:>16}")
            })
            .collect();
        println!("{label:<18} {rtt:>9} {cols}");
    }
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    println!(
        "bench: ro_ratio {} ha_ratio {} (baseline: direct veth, same run); ha/kernel forwarding {}; datapath {}",
        f(r.ro_ratio),
        f(r.ha_ratio),
        f(r.ha_to_forward_ratio),
        r.datapath.as_deref().unwrap_or("-")
    );
    for e in &r.errors {
        eprintln!("bench: error: {e}");
    }
    println!(
        "bench: report {}",
        args.common.out.join("bench.json").display()
    );
    Ok(if r.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
