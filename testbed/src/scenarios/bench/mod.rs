//! `testbed bench --out DIR`: TCP throughput and RTT of every path to the
//! anycast service, measured in one run on one lab (`topologies/bench.toml`,
//! veth links), with the direct path as the baseline:
//!
//! | path | client C sends to | crosses |
//! |---|---|---|
//! | `direct` | the router's address on the C-R veth | one veth |
//! | `kernel_forward` | K's care-of address | R's kernel forwarding |
//! | `home_agent` | X (no binding yet) | R, HA's engine (IPv6-in-IPv6 both ways), R, K's engine |
//! | `route_optimized` | X (binding X -> CoA) | C's engine (RH2 out, HAO in), R, K's engine |
//!
//! Each path: `ping` RTT, then `iperf3` with one and four streams, with
//! the machine's and our daemons' CPU time per gigabyte. The contact node
//! starts with route optimization off; after the home agent path the bench
//! switches it on (`contact-node ctl route-optimization`) and waits for
//! the client's binding. Writes `DIR/bench.json` ([`BenchReport`]) and
//! `DIR/bench.png`.

pub mod cpu;
pub mod iperf;
pub mod plot;
pub mod report;

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

pub use report::BenchReport;

use super::daemons::wait_for;
use super::demo::{Roles, client_binding, get, interrupted};
use super::probe::{EchoProbe, median};
use super::{ScenarioBase, Session};
use crate::lab::signals::TerminationSignals;
use crate::topology::{DaemonConfig, DaemonKind, Topology};
use report::{PathResult, Throughput};

/// The bench topology built into the binary (`topologies/bench.toml`).
pub const BENCH_TOPOLOGY: &str = include_str!("../../../topologies/bench.toml");

/// More packets than this through the home agent's engine during the
/// route-optimized measurement mean the path was not route-optimized
/// (signaling alone is a handful).
const HA_PACKETS_RO_LIMIT: u64 = 1000;

/// How to run the bench.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Output directory, topology (default: [`BENCH_TOPOLOGY`]), lab
    /// options, daemon binaries.
    pub base: ScenarioBase,
    /// Seconds per iperf3 run.
    pub seconds: f64,
    /// Stream counts.
    pub streams: Vec<u32>,
    /// ICMPv6 echoes per RTT figure.
    pub pings: u32,
    /// How long to wait for the client's binding once route optimization
    /// is switched on.
    pub ro_timeout: Duration,
}

impl BenchOptions {
    /// Defaults with output in `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        BenchOptions {
            base: ScenarioBase::new(out),
            seconds: 5.0,
            streams: vec![1, 4],
            pings: 50,
            ro_timeout: Duration::from_secs(15),
        }
    }
}

/// Runs the bench; writes `bench.json` (always, once the output directory
/// exists) and `bench.png`. `Err` only if nothing could be written.
pub fn run(
    opts: &BenchOptions,
    signals: Option<&TerminationSignals>,
) -> anyhow::Result<BenchReport> {
    let mut report = BenchReport {
        seconds: opts.seconds,
        streams: opts.streams.clone(),
        ..Default::default()
    };
    opts.base.write_report(
        "bench.json",
        &mut report,
        |r| {
            let result = run_inner(opts, signals, r);
            r.compute_ratios();
            if let Err(e) = plot::draw(r, &opts.base.out.join("bench.png")) {
                r.error(format!("bench.png: {e:#}"));
            }
            result
        },
        |r, e| r.error(e),
    )?;
    Ok(report)
}

/// The targets of the paths that do not go to X.
struct Targets {
    router: String,
    direct: Ipv6Addr,
    coa: Ipv6Addr,
}

fn targets(topo: &Topology, roles: &Roles) -> anyhow::Result<Targets> {
    let c = &roles.c.1;
    let link = topo
        .links
        .iter()
        .find(|l| &l.a == c || &l.b == c)
        .context("the client host has no link")?;
    let (router, addrs) = if &link.a == c {
        (&link.b, &link.b_addr)
    } else {
        (&link.a, &link.a_addr)
    };
    let direct = addrs
        .first()
        .map(|p| p.addr())
        .context("the client's neighbour has no address on their link")?;
    let k = topo
        .daemons
        .iter()
        .find(|d| d.kind == DaemonKind::ContactNode)
        .context("no contact node")?;
    let coa = match &k.config {
        Some(DaemonConfig::Inline(t)) => t
            .get("anycast")
            .and_then(|a| a.get("care_of_address"))
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok()),
        _ => None,
    }
    .context("the contact node's inline config has no anycast.care_of_address")?;
    Ok(Targets {
        router: router.clone(),
        direct,
        coa,
    })
}

fn run_inner(
    opts: &BenchOptions,
    signals: Option<&TerminationSignals>,
    report: &mut BenchReport,
) -> anyhow::Result<()> {
    anyhow::ensure!(!opts.streams.is_empty(), "no stream count to measure");
    let mut topo = opts.base.load_topology(BENCH_TOPOLOGY, "bench")?;
    let roles = Roles::of(&topo).map_err(anyhow::Error::msg)?;
    let t = targets(&topo, &roles)?;
    let session = opts.base.start(&mut topo)?;
    report.lab = opts.base.lab_info(&session);
    let result = measure(&session, &roles, &t, opts, signals, report);
    let order = [roles.k.0.as_str(), roles.c.0.as_str(), roles.ha.0.as_str()];
    let (_, teardown) = session.stop_in_order(&order, Duration::from_secs(8));
    for e in teardown.errors {
        report.error(format!("teardown: {e}"));
    }
    result
}

fn measure(
    session: &Session,
    roles: &Roles,
    t: &Targets,
    opts: &BenchOptions,
    signals: Option<&TerminationSignals>,
    report: &mut BenchReport,
) -> anyhow::Result<()> {
    let (c, k, ha) = (&roles.c.0, &roles.k.0, &roles.ha.0);
    let lab = &session.lab;
    wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        let s = session.ctl(k, "status").ok()?;
        (get(&s, &["home_registration", "registered"])? == &Value::Bool(true)).then_some(())
    })
    .context("the contact node did not register at the home agent")?;
    let modes = [c, k, ha]
        .into_iter()
        .filter_map(|d| {
            let v = session.ctl(d, "engine").ok()?;
            Some((d.clone(), v.get("datapath")?.as_str()?.to_string()))
        })
        .collect();
    report.set_datapaths(modes);
    iperf::start_server(lab, &t.router, t.direct)?;
    iperf::start_server(lab, &roles.k.1, t.coa)?;
    let pids: Vec<u32> = session.daemons.iter().map(|p| p.pid()).collect();
    let ctx = Ctx {
        session,
        host: &roles.c.1,
        ha,
        pids: &pids,
        opts,
    };

    let paths = [
        ("direct", t.direct, format!("client to the router {} over one veth", t.router)),
        ("kernel_forward", t.coa, "client to the contact node's care-of address, forwarded by the router's kernel".to_string()),
        ("home_agent", roles.x, "client to X through the home agent's IPv6-in-IPv6 tunnel (user-space engines at HA and K)".to_string()),
    ];
    for (name, dst, what) in paths {
        interrupted(signals)?;
        let p = ctx.path(name, dst, what, report);
        if name == "home_agent" {
            if client_binding(session, c, roles).is_some() {
                report.error("the client had a binding for X during the home agent measurement");
            }
            let through_ha = p
                .tcp
                .values()
                .filter_map(|t| t.ha_engine_packets)
                .sum::<u64>();
            if through_ha < 1000 {
                report.error(format!("only {through_ha} packets crossed the home agent's engine during the home agent measurement"));
            }
        }
        report.paths.insert(name.to_string(), p);
    }

    // Route optimization on; a connection to the echo service makes sure
    // the contact node knows the client.
    interrupted(signals)?;
    let to = std::net::SocketAddr::from((roles.x, roles.echo_port));
    let probe = EchoProbe::connect(lab, &roles.c.1, to, Duration::from_secs(5))
        .map_err(anyhow::Error::msg)?;
    let args = serde_json::json!({"enabled": true});
    super::daemons::ctl_args_at(
        &session
            .control_socket(k)
            .context("no control socket for the contact node")?,
        "route-optimization",
        args,
    )
    .map_err(|e| anyhow::anyhow!("{k} ctl route-optimization: {e}"))?;
    let bound = wait_for(opts.ro_timeout, Duration::from_millis(20), || {
        client_binding(session, c, roles)
    });
    let _ = probe.close();
    if bound.is_none() {
        anyhow::bail!(
            "no binding for X at the client within {:?} after switching route optimization on",
            opts.ro_timeout
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    interrupted(signals)?;
    let p = ctx.path(
        "route_optimized",
        roles.x,
        "client to X route-optimized: RH2 out and HAO in at the client's engine, HAO out and RH2 in at K's".to_string(),
        report,
    );
    let through_ha = p
        .tcp
        .values()
        .filter_map(|t| t.ha_engine_packets)
        .max()
        .unwrap_or(0);
    let still_bound = client_binding(session, c, roles).is_some();
    report.route_optimized_checked = still_bound && through_ha <= HA_PACKETS_RO_LIMIT;
    if !still_bound {
        report
            .error("the client's binding for X disappeared during the route-optimized measurement");
    }
    if through_ha > HA_PACKETS_RO_LIMIT {
        report.error(format!("{through_ha} packets crossed the home agent's engine during the route-optimized measurement"));
    }
    report.paths.insert("route_optimized".into(), p);
    Ok(())
}

/// What each path measurement needs.
struct Ctx<'a> {
    session: &'a Session,
    host: &'a str,
    ha: &'a str,
    pids: &'a [u32],
    opts: &'a BenchOptions,
}

impl Ctx<'_> {
    fn ha_received(&self) -> Option<u64> {
        let v = self.session.ctl(self.ha, "engine").ok()?;
        get(&v, &["received", "packets"])?.as_u64()
    }

    fn path(
        &self,
        name: &str,
        dst: Ipv6Addr,
        what: String,
        report: &mut BenchReport,
    ) -> PathResult {
        let lab = &self.session.lab;
        let mut p = PathResult {
            description: what,
            target: dst.to_string(),
            ..Default::default()
        };
        match iperf::ping(lab, self.host, dst, self.opts.pings, name) {
            Ok(s) => {
                p.rtt_ms = median(&s);
                p.rtt_samples_ms = s;
            }
            Err(e) => report.error(format!("{name}: {e:#}")),
        }
        for &n in &self.opts.streams {
            let ha0 = self.ha_received();
            let cpu0 = cpu::Sample::take(self.pids);
            let r = iperf::run(
                lab,
                self.host,
                dst,
                self.opts.seconds,
                n,
                &format!("{name}-{n}"),
            );
            let cpu1 = cpu::Sample::take(self.pids);
            let ha1 = self.ha_received();
            match r {
                Ok(r) => {
                    let gb = r.bytes as f64 / 1e9;
                    let (machine, daemons) = cpu0.since(&cpu1);
                    let per_gb = |s: Option<f64>| s.filter(|_| gb > 0.0).map(|s| s / gb);
                    tracing::info!(path = name, streams = n, gbit_s = r.gbit_s, "measured");
                    p.tcp.insert(
                        n.to_string(),
                        Throughput {
                            iperf: r,
                            machine_cpu_s_per_gb: per_gb(machine),
                            daemons_cpu_s_per_gb: per_gb(daemons),
                            ha_engine_packets: ha0.zip(ha1).map(|(a, b)| b.saturating_sub(a)),
                        },
                    );
                }
                Err(e) => report.error(format!("{name}, {n} stream(s): {e:#}")),
            }
        }
        p
    }
}
