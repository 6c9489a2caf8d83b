//! `testbed sweep handoff --out DIR`: the handoff delay over a grid of
//! latencies (seed 004 4.3; DESIGN.md 5), on `topologies/handoff.toml`:
//! client C, contact node K, acceptor A. For each cell, the C-R link gets
//! Lcs and the member link K-A gets Lss (one way); a sequence-checked
//! stream (`testsvc`, both directions paced) runs from C to `[X]:9000`,
//! first route-optimized to K. Each repetition hands C from K to A twice:
//!
//! * `first`: every member forgot its keygen tokens for C
//!   (`ctl forget-tokens`): home and care-of tests run;
//! * `cached`: right after a handoff back, the tokens are still valid
//!   (donors park their entries), so only Prepare and BU/BA run.
//!
//! Between the two, and after the second, C goes back to K (not measured);
//! the stream settles for 300 ms + 15 RTT after every move (a restored
//! socket starts without the donor's congestion window and RTT estimate).
//! `handoff_ms` runs from the decision (the donor's clock, `ctl handoff`)
//! to the first client packet with a Type 2 Routing Header captured on the
//! acceptor's link; `stall_ms` is the longest gap in what the client
//! application received around it; retransmissions and resets are the
//! deltas of C's TCP counters; `bytes_verified` means every byte so far
//! was right in both directions and the stream is alive. Writes
//! `handoff.csv`, `handoff.png`, `summary.json`.

pub mod capture;
pub mod plot;
pub mod results;

use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde_json::Value;

use super::daemons::{ctl_args_at, wait_for};
use super::demo::{get, interrupted};
use super::{ScenarioBase, Session};
use crate::lab::signals::TerminationSignals;
use crate::topology::LinkDir;
use mip6_anycast::testsvc::{ClientConfig, TestClient};
pub use results::{Kind, Row, Summary};

/// The handoff topology built into the binary.
pub const HANDOFF_TOPOLOGY: &str = include_str!("../../../topologies/handoff.toml");

const K: &str = "contact-node-K";
const A: &str = "contact-node-A";
const C: &str = "mip6-cn-C";
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
const X: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
const COA_K: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x10);
const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x10);
const STREAM_PORT: u16 = 9000;

/// How to run the sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Output, topology (default [`HANDOFF_TOPOLOGY`]), lab, binaries.
    pub base: ScenarioBase,
    /// One-way client-contact latencies (ms).
    pub lcs: Vec<f64>,
    /// One-way contact-acceptor latencies (ms).
    pub lss: Vec<f64>,
    /// Repetitions per cell (each gives a `first` and a `cached` row).
    pub reps: u32,
    /// Bytes per second each way on the test stream.
    pub rate: u64,
}

impl SweepOptions {
    /// The issue's grid with `reps` repetitions.
    pub fn new(out: impl Into<std::path::PathBuf>) -> Self {
        SweepOptions {
            base: ScenarioBase::new(out),
            lcs: vec![1.0, 5.0, 10.0, 20.0, 50.0],
            lss: vec![1.0, 5.0, 10.0, 20.0],
            reps: 5,
            rate: 1 << 20,
        }
    }
}

/// One measured handoff before its capture is read.
struct Pending {
    row: Row,
    decided_us: u64,
}

/// Runs the sweep; writes the CSV, the figure and the summary.
pub fn run(opts: &SweepOptions, signals: Option<&TerminationSignals>) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    opts.base.write_report(
        "summary.json",
        &mut summary,
        |s| {
            let mut errors = Vec::new();
            let rows = run_inner(opts, signals, &mut errors);
            let rows = match rows {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    Vec::new()
                }
            };
            results::write_csv(&opts.base.out.join("handoff.csv"), &rows)
                .context("writing handoff.csv")?;
            if let Err(e) = plot::draw(&rows, &opts.base.out.join("handoff.png")) {
                errors.push(format!("handoff.png: {e:#}"));
            }
            *s = results::summarize(&rows);
            s.errors = errors;
            s.passed &= s.errors.is_empty();
            Ok(())
        },
        |s, e| {
            s.errors.push(e);
            s.passed = false;
        },
    )?;
    Ok(summary)
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn run_inner(
    opts: &SweepOptions,
    signals: Option<&TerminationSignals>,
    errors: &mut Vec<String>,
) -> anyhow::Result<Vec<Row>> {
    anyhow::ensure!(opts.reps >= 1, "--reps must be at least 1");
    let mut topo = opts.base.load_topology(HANDOFF_TOPOLOGY, "handoff")?;
    let session = opts.base.start(&mut topo)?;
    let pcap = session
        .lab
        .pcap_path("r-a")
        .map(Path::to_path_buf)
        .context("the r-a link has no capture")?;
    let result = sweep(&session, opts, signals, errors);
    // The members' event logs (wall-clock ms) and every daemon's counters,
    // for a closer look.
    for m in [K, A] {
        if let Ok(v) = session.ctl(m, "handoffs") {
            let f = opts.base.out.join(format!("events-{m}.json"));
            let _ = std::fs::write(&f, serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    for link in ["c-r", "r-a", "k-a"] {
        if let Some(st) = session.lab.link_stats(link) {
            let f = opts.base.out.join(format!("link-{link}.txt"));
            let _ = std::fs::write(&f, format!("{st:#?}"));
            let lost = st.a_to_b.dropped_queue
                + st.b_to_a.dropped_queue
                + st.a_to_b.write_errors
                + st.b_to_a.write_errors;
            if lost > 0 {
                errors.push(format!("link {link}: {lost} packets dropped by the emulated link (queue full or write errors)"));
            }
        }
    }
    for m in [K, A, C] {
        let v = serde_json::json!({
            "status": session.ctl(m, "status").unwrap_or_default(),
            "engine": session.ctl(m, "engine").unwrap_or_default(),
        });
        let f = opts.base.out.join(format!("counters-{m}.json"));
        let _ = std::fs::write(&f, serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let teardown = session.stop();
    for e in teardown.errors {
        errors.push(format!("teardown: {e}"));
    }
    let pending = result?;
    // The capture is complete once the lab is down.
    let arrivals = capture::rh2_arrivals(&pcap, CLIENT, COA_A, X)
        .with_context(|| format!("reading {}", pcap.display()))?;
    let mut rows = Vec::new();
    for p in pending {
        let mut row = p.row;
        match capture::first_after(&arrivals, p.decided_us) {
            Some(t) => row.handoff_ms = (t - p.decided_us) as f64 / 1e3,
            None => {
                errors.push(format!(
                    "lcs {} lss {} rep {} {}: no route-optimized packet reached the acceptor",
                    row.lcs_ms,
                    row.lss_ms,
                    row.rep,
                    row.kind.as_str()
                ));
                row.handoff_ms = f64::NAN;
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

use std::path::Path;

fn ctl(session: &Session, name: &str, cmd: &str, args: Value) -> anyhow::Result<Value> {
    let sock = session
        .control_socket(name)
        .with_context(|| format!("no control socket for {name}"))?;
    ctl_args_at(&sock, cmd, args).map_err(|e| anyhow::anyhow!("{name} ctl {cmd}: {e}"))
}

fn client_coa(session: &Session) -> Option<Ipv6Addr> {
    let b = session.ctl(C, "bindings").ok()?;
    b.as_array()?.iter().find_map(|e| {
        (e.get("hoa")?.as_str()? == X.to_string())
            .then(|| e.get("coa")?.as_str()?.parse().ok())
            .flatten()
    })
}

/// C's TCP counters (RetransSegs, EstabResets) from its namespace.
fn tcp_counters(session: &Session) -> (u64, u64) {
    let text = session
        .lab
        .run_in("C", || {
            std::fs::read_to_string("/proc/thread-self/net/snmp")
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
        return (0, 0);
    };
    let get = |name: &str| {
        h.split_whitespace()
            .position(|x| x == name)
            .and_then(|i| v.split_whitespace().nth(i))
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    };
    (get("RetransSegs"), get("EstabResets"))
}

/// Hands C from `from` to the member named `to` (at `to_coa`) and waits
/// until C is bound there; the decision time (µs).
fn handoff(
    session: &Session,
    from: &str,
    to: &str,
    to_coa: Ipv6Addr,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let before = unix_us();
    let r = ctl(
        session,
        from,
        "handoff",
        serde_json::json!({"client": CLIENT.to_string(), "member": to}),
    )?;
    let decided = r
        .get("decided_unix_us")
        .and_then(Value::as_u64)
        .unwrap_or(before);
    let id = r
        .get("id")
        .and_then(Value::as_u64)
        .context("ctl handoff gave no id")?;
    let acceptor = if to == "A" { A } else { K };
    let logged = |member: &str, event: &str| {
        session.ctl(member, "handoffs").ok().is_some_and(|v| {
            v.as_array().is_some_and(|l| {
                l.iter().any(|e| {
                    e.get("id").and_then(Value::as_u64) == Some(id)
                        && e.get("event").and_then(Value::as_str) == Some(event)
                })
            })
        })
    };
    // Done when the acceptor is live (it committed after the client's
    // acknowledgement) and the donor closed its side.
    wait_for(timeout, Duration::from_millis(5), || {
        (logged(acceptor, "accepted") && logged(from, "completed")).then_some(())
    })
    .with_context(|| format!("handoff {id} to {to} did not complete within {timeout:?}"))?;
    if client_coa(session) != Some(to_coa) {
        let st = session.ctl(C, "status").unwrap_or_default();
        anyhow::bail!(
            "handoff {id} completed but the client is not bound to {to}: binding {:?}, client agent {st}",
            client_coa(session)
        );
    }
    Ok(decided)
}

fn sweep(
    session: &Session,
    opts: &SweepOptions,
    signals: Option<&TerminationSignals>,
    errors: &mut Vec<String>,
) -> anyhow::Result<Vec<Pending>> {
    let lab = &session.lab;
    wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        let s = session.ctl(K, "status").ok()?;
        (get(&s, &["home_registration", "registered"])? == &Value::Bool(true)).then_some(())
    })
    .context("K did not register at the home agent")?;
    wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        let g = session.ctl(K, "group").ok()?;
        (!g.get("connected")?.as_array()?.is_empty()).then_some(())
    })
    .context("the node channel between K and A did not come up")?;
    let worker = lab.worker("C").context("a worker in C")?;
    let mut out = Vec::new();
    for &lcs in &opts.lcs {
        for &lss in &opts.lss {
            interrupted(signals)?;
            for (link, d) in [("c-r", lcs), ("k-a", lss)] {
                lab.link_handle(link)
                    .with_context(|| format!("no link {link}"))?
                    .set_delay(
                        &[LinkDir::AToB, LinkDir::BToA],
                        Duration::from_secs_f64(d / 1e3),
                    )
                    .map_err(|e| anyhow::anyhow!("delay of {link}: {e}"))?;
            }
            let rtt = Duration::from_secs_f64(2.0 * lcs / 1e3);
            let settle = Duration::from_millis(300) + 15 * rtt;
            let timeout = Duration::from_secs(5) + 20 * rtt;
            // A fresh stream per cell, route-optimized to K first.
            let cfg = ClientConfig {
                seed: (lcs * 1000.0 + lss) as u64,
                up_rate: opts.rate,
                down_rate: opts.rate,
                ..ClientConfig::default()
            };
            let to = SocketAddr::from((X, STREAM_PORT));
            // Spawned on the worker: its threads are in C's namespace.
            let client = worker
                .handle()
                .block_on(worker.spawn(TestClient::connect(to, cfg)))
                .context("the worker in C")?
                .context("connecting the test stream to X")?;
            if client_coa(session) != Some(COA_K) {
                // Not bound to K (first cell, or a binding that moved):
                // wait for K's route optimization of the new client.
                wait_for(timeout, Duration::from_millis(10), || {
                    (client_coa(session) == Some(COA_K)).then_some(())
                })
                .context("the client was not route-optimized to K")?;
            }
            std::thread::sleep(Duration::from_millis(200) + 2 * rtt);
            for rep in 0..opts.reps {
                for kind in [Kind::First, Kind::Cached] {
                    interrupted(signals)?;
                    if kind == Kind::First {
                        for m in [K, A] {
                            ctl(
                                session,
                                m,
                                "forget-tokens",
                                serde_json::json!({"client": CLIENT.to_string()}),
                            )?;
                        }
                    }
                    let (retr0, rst0) = tcp_counters(session);
                    let t_client = client.started();
                    let decided_at = Instant::now();
                    let decided_us = handoff(session, K, "A", COA_A, timeout)?;
                    std::thread::sleep(Duration::from_millis(100) + 2 * rtt);
                    let from = decided_at.saturating_duration_since(t_client);
                    let stall = client.longest_gap_within(
                        from.saturating_sub(Duration::from_millis(100)),
                        decided_at.elapsed() + from,
                    );
                    let rep_report = client.report();
                    if std::env::var_os("SWEEP_DEBUG_RX").is_some() {
                        let w: Vec<(f64, u64)> = client
                            .rx_log()
                            .into_iter()
                            .filter(|(t, _)| *t + Duration::from_millis(300) >= from)
                            .map(|(t, b)| (t.as_secs_f64(), b))
                            .collect();
                        let _ = std::fs::write(
                            opts.base.out.join(format!("rx-{lcs}-{lss}-{rep}-{}.json", kind.as_str())),
                            serde_json::json!({"from": from.as_secs_f64(), "stall": stall.as_secs_f64(), "log": w}).to_string(),
                        );
                    }
                    let (retr1, rst1) = tcp_counters(session);
                    let alive = rep_report.end.is_none();
                    let reset = matches!(
                        rep_report.end,
                        Some(mip6_anycast::testsvc::ClientEnd::Reset)
                    );
                    out.push(Pending {
                        decided_us,
                        row: Row {
                            lcs_ms: lcs,
                            lss_ms: lss,
                            rep,
                            kind,
                            handoff_ms: f64::NAN,
                            stall_ms: stall.as_secs_f64() * 1e3,
                            retransmits: retr1.saturating_sub(retr0),
                            resets: rst1.saturating_sub(rst0) + u64::from(reset),
                            bytes_verified: alive && rep_report.mismatches == 0,
                        },
                    });
                    if !alive {
                        errors.push(format!(
                            "lcs {lcs} lss {lss} rep {rep}: the stream ended: {:?}",
                            rep_report.end
                        ));
                        return Ok(out);
                    }
                    // Let the stream settle before going back: a restored
                    // socket starts without the donor's congestion window
                    // and RTT estimate (TCP_REPAIR migrates neither), so it
                    // needs some round trips to carry the full rate again,
                    // and a loss right after a move waits for its first
                    // retransmission timeout (1 s). Each handoff is
                    // measured from a settled stream.
                    std::thread::sleep(settle);
                    // Back to K (tokens stay valid for the cached run).
                    handoff(session, A, "K", COA_K, timeout)?;
                    std::thread::sleep(settle);
                }
            }
            let stopped = worker
                .handle()
                .block_on(worker.spawn(client.stop()))
                .context("the worker in C")?;
            if stopped.report.mismatches > 0 {
                errors.push(format!(
                    "lcs {lcs} lss {lss}: {} mismatched bytes",
                    stopped.report.mismatches
                ));
            }
        }
    }
    Ok(out)
}
