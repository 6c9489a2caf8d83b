//! `testbed pias --out DIR`: the PIAS lab (see `testbed::scenarios::pias`).
//! Exit status 0 only if every figure meets issue 6.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use testbed::lab::signals::TerminationSignals;
use testbed::scenarios::pias::{self, PiasOptions};

/// Arguments of `testbed pias`.
#[derive(Args, Debug)]
pub struct PiasArgs {
    #[command(flatten)]
    pub common: super::ScenarioArgs,
}

pub fn run(
    args: &PiasArgs,
    state_dir: &Path,
    family: &str,
    signals: &TerminationSignals,
) -> anyhow::Result<ExitCode> {
    let mut opts = PiasOptions::new(&args.common.out);
    opts.base = args.common.base(state_dir, family);
    let r = pias::run(&opts, Some(signals))?;
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
    println!(
        "pias: segments first {:?} later {:?}; clients nearest {}/{}; rap_updates {:?}; affinity kept {}; handoff kept {}; failover target {} jap {} proxy {}",
        r.first_packet_segments,
        r.later_packet_segments,
        r.clients.iter().filter(|c| c.is_nearest).count(),
        r.clients.len(),
        r.rap_updates,
        r.affinity_kept,
        r.handoff.kept,
        f(r.target_failover_ms),
        f(r.jap_failover_ms),
        f(r.proxy_failover_ms)
    );
    for e in &r.errors {
        eprintln!("pias: error: {e}");
    }
    println!(
        "pias: report {}",
        pias::report_path(&args.common.out).display()
    );
    Ok(if r.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
