//! Failover drills on `topologies/failover.toml` (seed 004 4.2.1):
//!
//! * `testbed drill contact-failover --reps N --fault kill|freeze|linkdown`
//!   writes `failover.csv`, `failover.png` and `summary.json`. Each rep
//!   starts a fresh lab: the contact node K registers X, its backups A and
//!   B hold its replicated state; client C1 (two sequence-checked streams)
//!   is handed to B, client C2 (two streams) stays route-optimized at K.
//!   Then K fails. Times run from the fault (wall clock, the same machine):
//!   `detect_ms` to the new contact's detection, `registered_ms` to its
//!   accepted home registration, `recover_ms` to the first new connection
//!   from C3 (a fresh client, home path) that echoes data. Then C2 (bound
//!   to the dead K) must open a new connection too (`summary.json`:
//!   `bound_client_recover_ms`). Two seconds after recovery the streams are
//!   checked: alive with every byte right.
//! * `testbed drill ha-restart` ([`ha_restart`]) writes `ha_restart.json`.

pub mod ha_restart;
pub mod plot;
pub mod probe;
pub mod results;

use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use nix::sys::signal::Signal;
use serde_json::Value;

use super::daemons::{ctl_args_at, wait_for};
use super::demo::interrupted;
use super::{ScenarioBase, Session};
use crate::lab::signals::TerminationSignals;
use crate::topology::LinkDir;
use mip6_anycast::engine::netns::NetnsWorker;
use mip6_anycast::testsvc::{ClientConfig, TestClient};
pub use results::{Fault, Row, Summary};

/// The failover topology built into the binary.
pub const FAILOVER_TOPOLOGY: &str = include_str!("../../../topologies/failover.toml");

/// Daemon names in the topology.
pub const K: &str = "contact-node-K";
/// See [`K`].
pub const A: &str = "contact-node-A";
/// See [`K`].
pub const B: &str = "contact-node-B";
/// See [`K`].
pub const HA: &str = "home-agent-HA";
/// The anycast address.
pub const X: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
/// Care-of addresses.
pub const COA_K: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x10);
/// See [`COA_K`].
pub const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0x10);
/// Client addresses.
pub const C1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x11, 0, 0, 0, 0, 0x10);
/// See [`C1`].
pub const C2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 0x10);
const STREAM_PORT: u16 = 9000;
const ECHO_PORT: u16 = 7;
/// Streams per client.
const STREAMS: u32 = 2;
/// Bytes per second each way per stream.
const STREAM_RATE: u64 = 64 << 10;
/// How long a rep may take to recover before it counts as failed.
const RECOVER_LIMIT: Duration = Duration::from_secs(20);
/// How long the streams run on after recovery before they are checked.
const AFTER_RECOVERY: Duration = Duration::from_secs(2);

/// How to run the drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Output, topology (default [`FAILOVER_TOPOLOGY`]), lab, binaries.
    pub base: ScenarioBase,
    /// Repetitions per fault kind.
    pub reps: u32,
    /// Fault kinds (each gets `reps` reps).
    pub faults: Vec<Fault>,
}

impl DrillOptions {
    /// Every fault kind, `reps` times.
    pub fn new(out: impl Into<std::path::PathBuf>, reps: u32) -> Self {
        DrillOptions {
            base: ScenarioBase::new(out),
            reps,
            faults: vec![Fault::Kill, Fault::Freeze, Fault::Linkdown],
        }
    }
}

pub(crate) fn unix_ms_f() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

pub(crate) fn ctl(session: &Session, name: &str, cmd: &str, args: Value) -> anyhow::Result<Value> {
    let sock = session
        .control_socket(name)
        .with_context(|| format!("no control socket for {name}"))?;
    ctl_args_at(&sock, cmd, args).map_err(|e| anyhow::anyhow!("{name} ctl {cmd}: {e}"))
}

/// The care-of address client `cn_daemon` has bound X to.
pub(crate) fn client_coa(session: &Session, cn_daemon: &str) -> Option<Ipv6Addr> {
    let b = session.ctl(cn_daemon, "bindings").ok()?;
    b.as_array()?.iter().find_map(|e| {
        (e.get("hoa")?.as_str()? == X.to_string())
            .then(|| e.get("coa")?.as_str()?.parse().ok())
            .flatten()
    })
}

/// Waits until K is registered and every backup holds its state.
pub fn wait_ready(session: &Session) -> anyhow::Result<()> {
    wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        let f = session.ctl(K, "failover").ok()?;
        (f.get("registered")? == &Value::Bool(true)).then_some(())
    })
    .context("K did not register at the home agent")?;
    for m in [A, B] {
        wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
            let f = session.ctl(m, "failover").ok()?;
            f.get("snapshot_version")?.as_u64().map(|_| ())
        })
        .with_context(|| format!("{m} did not receive K's state"))?;
    }
    Ok(())
}

/// Streams from one client.
struct Streams {
    worker: NetnsWorker,
    clients: Vec<TestClient>,
}

impl Streams {
    fn open(session: &Session, host: &str, seed: u64) -> anyhow::Result<Streams> {
        let worker = session
            .lab
            .worker(host)
            .with_context(|| format!("a worker in {host}"))?;
        let mut clients = Vec::new();
        for i in 0..STREAMS {
            let cfg = ClientConfig {
                seed: seed * 16 + u64::from(i),
                up_rate: STREAM_RATE,
                down_rate: STREAM_RATE,
                ..ClientConfig::default()
            };
            let to = SocketAddr::from((X, STREAM_PORT));
            let c = worker
                .handle()
                .block_on(worker.spawn(TestClient::connect(to, cfg)))
                .with_context(|| format!("the worker in {host}"))?
                .with_context(|| format!("connecting a stream from {host} to X"))?;
            clients.push(c);
        }
        Ok(Streams { worker, clients })
    }

    /// Streams alive with every byte right.
    fn healthy(&self) -> u32 {
        self.clients
            .iter()
            .filter(|c| {
                let r = c.report();
                r.end.is_none() && r.mismatches == 0
            })
            .count() as u32
    }

    fn stop(self) {
        for c in self.clients {
            let _ = self.worker.handle().block_on(self.worker.spawn(c.stop()));
        }
    }
}

/// Runs the drill; writes the CSV, the figure and the summary.
pub fn run(opts: &DrillOptions, signals: Option<&TerminationSignals>) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    opts.base.write_report(
        "summary.json",
        &mut summary,
        |s| {
            anyhow::ensure!(opts.reps >= 1, "--reps must be at least 1");
            let mut errors = Vec::new();
            let mut rows = Vec::new();
            let topo = opts.base.load_topology(FAILOVER_TOPOLOGY, "failover")?;
            let (hb, dead) = failover_timing(&topo);
            'all: for &fault in &opts.faults {
                for rep in 0..opts.reps {
                    if let Err(e) = interrupted(signals) {
                        errors.push(format!("{e:#}"));
                        break 'all;
                    }
                    let dir = opts.base.out.join(format!("{}-{rep}", fault.as_str()));
                    match one_rep(opts, &dir, fault, rep) {
                        Ok(row) => {
                            if !row.ok() {
                                errors.push(format!(
                                    "{} rep {rep}: recover {:.1} ms, member connections {}/{}",
                                    fault.as_str(),
                                    row.recover_ms,
                                    row.conns_at_members_survived,
                                    row.conns_at_members
                                ));
                            }
                            rows.push(row);
                        }
                        Err(e) => errors.push(format!("{} rep {rep}: {e:#}", fault.as_str())),
                    }
                }
            }
            results::write_csv(&opts.base.out.join("failover.csv"), &rows)?;
            if let Err(e) = plot::draw(&rows, &opts.base.out.join("failover.png")) {
                errors.push(format!("failover.png: {e:#}"));
            }
            *s = results::summarize(&rows, hb, dead);
            let expected = opts.faults.len() * opts.reps as usize;
            if rows.len() != expected {
                errors.push(format!("{} of {expected} reps ran", rows.len()));
            }
            s.passed &= errors.is_empty();
            s.errors = errors;
            Ok(())
        },
        |s, e| {
            s.errors.push(e);
            s.passed = false;
        },
    )?;
    Ok(summary)
}

/// Heartbeat and dead-after (ms) from K's configuration in the topology.
fn failover_timing(topo: &crate::topology::Topology) -> (u64, u64) {
    let g = topo
        .daemons
        .iter()
        .find(|d| d.name() == K)
        .and_then(|d| match &d.config {
            Some(crate::topology::DaemonConfig::Inline(t)) => t.get("group").cloned(),
            _ => None,
        });
    let get = |k: &str| {
        g.as_ref()
            .and_then(|g| g.get(k))
            .and_then(toml::Value::as_integer)
    };
    let hb = get("heartbeat_ms").map_or(100, |v| v.max(0) as u64);
    let dead = get("dead_after_ms").map_or(hb * 3, |v| v.max(0) as u64);
    (hb, dead)
}

/// One rep in a fresh lab under `dir`.
fn one_rep(
    opts: &DrillOptions,
    dir: &std::path::Path,
    fault: Fault,
    rep: u32,
) -> anyhow::Result<Row> {
    let mut topo = opts.base.load_topology(FAILOVER_TOPOLOGY, "failover")?;
    let base = ScenarioBase {
        out: dir.to_path_buf(),
        ..opts.base.clone()
    };
    let session = base.start(&mut topo)?;
    let result = drill(&session, fault, rep);
    // Whatever happened: a frozen K gets going again (it must step down)
    // and the link comes back before the lab goes.
    if let Some(k) = session.daemon(K) {
        let _ = k.signal(Signal::SIGCONT);
    }
    if let Some(l) = session.lab.link_handle("r-k") {
        l.set_down(&[LinkDir::AToB, LinkDir::BToA], false);
    }
    if result.is_ok() {
        std::thread::sleep(Duration::from_millis(300));
    }
    for m in [K, A, B] {
        let v = serde_json::json!({
            "failover": session.ctl(m, "failover").unwrap_or_default(),
            "status": session.ctl(m, "status").unwrap_or_default(),
        });
        let _ = std::fs::write(
            dir.join(format!("counters-{m}.json")),
            serde_json::to_string_pretty(&v).unwrap_or_default(),
        );
    }
    let _ = std::fs::write(
        dir.join("ha-bindings.json"),
        serde_json::to_string_pretty(&session.ctl(HA, "bindings").unwrap_or_default())
            .unwrap_or_default(),
    );
    let teardown = session.stop();
    let mut row = result?;
    if !teardown.errors.is_empty() {
        anyhow::bail!("teardown: {:?}", teardown.errors);
    }
    row.rep = rep;
    Ok(row)
}

fn drill(session: &Session, fault: Fault, rep: u32) -> anyhow::Result<Row> {
    wait_ready(session)?;
    let seed = u64::from(rep) * 4 + fault as u64;
    let at_member = Streams::open(session, "C1", seed * 2)?;
    let at_contact = Streams::open(session, "C2", seed * 2 + 1)?;
    for cn in ["mip6-cn-C1", "mip6-cn-C2"] {
        wait_for(Duration::from_secs(10), Duration::from_millis(10), || {
            (client_coa(session, cn) == Some(COA_K)).then_some(())
        })
        .with_context(|| format!("{cn} was not route-optimized to K"))?;
    }
    ctl(
        session,
        K,
        "handoff",
        serde_json::json!({"client": C1.to_string(), "member": "B"}),
    )?;
    wait_for(Duration::from_secs(10), Duration::from_millis(10), || {
        (client_coa(session, "mip6-cn-C1") == Some(COA_B)).then_some(())
    })
    .context("C1 was not handed to B")?;
    // The backups learn the placement with K's next snapshot.
    for m in [A, B] {
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            let f = session.ctl(m, "failover").ok()?;
            let all = f.get("snapshot_clients")?.as_u64()?;
            let elsewhere = f.get("snapshot_clients_at_members")?.as_u64()?;
            (all >= 2 && elsewhere >= 1).then_some(())
        })
        .with_context(|| format!("{m} did not learn K's clients"))?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let healthy_before = (at_member.healthy(), at_contact.healthy());
    anyhow::ensure!(
        healthy_before == (STREAMS, STREAMS),
        "streams unhealthy before the fault: {healthy_before:?}"
    );

    let t0 = unix_ms_f();
    let t0_mono = Instant::now();
    match fault {
        Fault::Kill => {
            session.kill_daemon(K).context("killing K")?;
        }
        Fault::Freeze => {
            session
                .daemon(K)
                .context("no daemon K")?
                .signal(Signal::SIGSTOP)
                .context("freezing K")?;
        }
        Fault::Linkdown => session
            .lab
            .link_handle("r-k")
            .context("no link r-k")?
            .set_down(&[LinkDir::AToB, LinkDir::BToA], true),
    }
    let recovered = probe::first_echo(
        &session.lab,
        "C3",
        SocketAddr::from((X, ECHO_PORT)),
        RECOVER_LIMIT,
    );
    let recover_ms = recovered.map_or(f64::NAN, |t| {
        t.saturating_duration_since(t0_mono).as_secs_f64() * 1e3
    });
    // The client bound to the dead contact node gets a new path too (the
    // new contact binds it to itself; else its agent falls back home).
    let bound_recovered = probe::first_echo(
        &session.lab,
        "C2",
        SocketAddr::from((X, ECHO_PORT)),
        RECOVER_LIMIT,
    );
    let bound_client_recover_ms = bound_recovered.map_or(f64::NAN, |t| {
        t.saturating_duration_since(t0_mono).as_secs_f64() * 1e3
    });
    // Who took over, and when.
    let (new_contact, status) = wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
        [A, B].iter().find_map(|m| {
            let f = session.ctl(m, "failover").ok()?;
            let took = f.get("took_over")? == &Value::Bool(true)
                && f.get("registered")? == &Value::Bool(true);
            took.then(|| (m.to_string(), f))
        })
    })
    .unwrap_or_default();
    let at = |k: &str| {
        status
            .get(k)
            .and_then(Value::as_f64)
            .map_or(f64::NAN, |t| t - t0)
    };
    std::thread::sleep(AFTER_RECOVERY);
    let row = Row {
        rep,
        fault,
        detect_ms: at("lost_at_unix_ms"),
        registered_ms: at("registered_at_unix_ms"),
        recover_ms,
        conns_at_members: STREAMS,
        conns_at_members_survived: at_member.healthy(),
        conns_at_contact: STREAMS,
        conns_at_contact_survived: at_contact.healthy(),
        new_contact: new_contact.trim_start_matches("contact-node-").to_string(),
        bound_client_recover_ms,
    };
    at_member.stop();
    at_contact.stop();
    Ok(row)
}
