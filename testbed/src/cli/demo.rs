//! `testbed demo --out DIR`: the end-to-end demo (see
//! `testbed::scenarios::demo`). Exit status 0 only if it succeeded.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use testbed::lab::signals::TerminationSignals;
use testbed::lab::{LabOptions, Reaper};
use testbed::scenarios::demo::{self, DemoOptions};

/// Arguments of `testbed demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output directory: report.json, pcap/, logs/, config/.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Topology file (default: the built-in demo topology,
    /// testbed/topologies/demo.toml).
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
    /// Directory of the daemon binaries (default: next to `testbed`).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Echo samples per RTT measurement.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub samples: usize,
    /// Seconds to wait for route optimization once the samples through
    /// the home agent are taken.
    #[arg(long, default_value_t = 15.0, value_name = "SECONDS")]
    pub ro_timeout: f64,
}

pub fn run(
    args: &DemoArgs,
    state_dir: &Path,
    family: &str,
    signals: &TerminationSignals,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=1000).contains(&args.samples),
        "--samples must be 1..=1000"
    );
    anyhow::ensure!(
        args.ro_timeout.is_finite() && (0.0..=3600.0).contains(&args.ro_timeout),
        "--ro-timeout must be 0..=3600 seconds"
    );
    let mut opts = DemoOptions::new(&args.out);
    opts.ro_timeout = std::time::Duration::from_secs_f64(args.ro_timeout);
    opts.topology = args.topology.clone();
    opts.bin_dir = args.bin_dir.clone();
    opts.samples = args.samples;
    opts.lab = LabOptions {
        family: family.to_string(),
        state_dir: state_dir.to_owned(),
        reaper: std::env::current_exe().map_or(Reaper::Auto, Reaper::Program),
        topology_path: args.topology.clone(),
        ..Default::default()
    };
    let r = demo::run(&opts, Some(signals))?;
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
    println!(
        "demo: TCP via home agent {}, route optimized {}, RTT via HA {} (expected {}), RTT route-optimized {} (expected {}), new connection {}, packets via HA after RO {}, BU accepted {}",
        if r.tcp_via_home_agent_ok {
            "ok"
        } else {
            "FAILED"
        },
        if r.route_optimized { "yes" } else { "NO" },
        ms(r.rtt_via_ha_ms),
        ms(r.expected_rtt_via_ha_ms),
        ms(r.rtt_ro_ms),
        ms(r.expected_rtt_ro_ms),
        ms(r.rtt_ro_new_connection_ms),
        r.packets_via_ha_after_ro,
        r.bu_accepted
    );
    for e in &r.errors {
        eprintln!("demo: error: {e}");
    }
    println!("demo: report {}", args.out.join("report.json").display());
    Ok(if r.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
