//! `testbed demo --out DIR`: the end-to-end demo (see
//! `testbed::scenarios::demo`). Exit status 0 only if it succeeded.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use testbed::lab::signals::TerminationSignals;
use testbed::scenarios::demo::{self, DemoOptions};

/// Arguments of `testbed demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub common: super::ScenarioArgs,
    /// Echo samples per RTT measurement.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub samples: usize,
    /// Seconds to wait for route optimization once the samples through
    /// the home agent are taken.
    #[arg(long, default_value_t = 15.0, value_name = "SECONDS")]
    pub ro_timeout: f64,
    /// Run the client as a QEMU guest with Debian's stock kernel, whose
    /// own XFRM route2/hao states do the route optimization (needs
    /// scripts/vm-deps.sh once).
    #[arg(long)]
    pub kernel_cn: bool,
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
    let mut opts = DemoOptions::new(&args.common.out);
    opts.base = args.common.base(state_dir, family);
    opts.ro_timeout = std::time::Duration::from_secs_f64(args.ro_timeout);
    opts.samples = args.samples;
    opts.kernel_cn = args.kernel_cn;
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
    if let Some(d) = &r.client_datapath {
        println!("demo: client datapath {d}");
    }
    if let Some(s) = &r.guest_xfrm_state {
        println!("demo: guest `ip xfrm state`:\n{s}");
    }
    println!(
        "demo: report {}",
        args.common.out.join("report.json").display()
    );
    Ok(if r.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
