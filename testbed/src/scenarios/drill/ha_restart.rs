//! `testbed drill ha-restart --out DIR`: the home agent crashes (SIGKILL)
//! and starts again while the contact node K is registered and a client
//! talks to X route-optimized. The home agent persists its binding cache
//! before each acknowledgement and restores it at start, so no
//! registration may be lost. Writes `ha_restart.json`:
//! `registrations_before` / `registrations_after` (the home agent's
//! binding cache, `ctl bindings`), `recover_ms` (crash to the first new
//! connection from a fresh client over the home path that echoes data),
//! and whether the route-optimized streams (which do not cross the home
//! agent) survived.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use super::{COA_K, FAILOVER_TOPOLOGY, HA, Streams, X, client_coa, probe, unix_ms_f, wait_ready};
use crate::scenarios::ScenarioBase;
use crate::scenarios::daemons::wait_for;

/// `ha_restart.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HaRestartReport {
    /// Registrations in the home agent's binding cache before the crash.
    pub registrations_before: Vec<Value>,
    /// ... and after the restart.
    pub registrations_after: Vec<Value>,
    /// Crash to the first new connection to X over the home path.
    pub recover_ms: Option<f64>,
    /// Crash to the restarted home agent answering its control socket.
    pub restarted_ms: Option<f64>,
    /// Route-optimized streams before the crash, and alive with every
    /// byte right afterwards.
    pub streams: u32,
    /// See `streams`.
    pub streams_survived: u32,
    /// No registration lost (same home address, care-of address and
    /// sequence), a new connection recovered, every stream survived.
    pub passed: bool,
    /// What went wrong.
    pub errors: Vec<String>,
}

fn key(v: &Value) -> (String, String, u64) {
    (
        v.get("hoa")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        v.get("coa")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        v.get("sequence").and_then(Value::as_u64).unwrap_or(0),
    )
}

/// Runs the drill.
pub fn run(base: &ScenarioBase) -> anyhow::Result<HaRestartReport> {
    let mut report = HaRestartReport::default();
    base.write_report(
        "ha_restart.json",
        &mut report,
        |r| {
            let mut topo = base.load_topology(FAILOVER_TOPOLOGY, "failover")?;
            let mut session = base.start(&mut topo)?;
            let res = drill(&mut session, r);
            let teardown = session.stop();
            res?;
            r.errors
                .extend(teardown.errors.iter().map(|e| format!("teardown: {e}")));
            let same = {
                let mut b: Vec<_> = r.registrations_before.iter().map(key).collect();
                let mut a: Vec<_> = r.registrations_after.iter().map(key).collect();
                b.sort();
                a.sort();
                !b.is_empty() && a == b
            };
            if !same {
                r.errors
                    .push("registrations differ after the restart".into());
            }
            r.passed = same
                && r.recover_ms.is_some()
                && r.streams_survived == r.streams
                && r.errors.is_empty();
            Ok(())
        },
        |r, e| {
            r.errors.push(e);
            r.passed = false;
        },
    )?;
    Ok(report)
}

fn drill(session: &mut super::Session, r: &mut HaRestartReport) -> anyhow::Result<()> {
    wait_ready(session)?;
    let streams = Streams::open(session, "C2", 99)?;
    wait_for(Duration::from_secs(10), Duration::from_millis(10), || {
        (client_coa(session, "mip6-cn-C2") == Some(COA_K)).then_some(())
    })
    .context("C2 was not route-optimized to K")?;
    std::thread::sleep(Duration::from_millis(300));
    r.streams = streams.healthy();
    let bindings = |s: &super::Session| -> Option<Vec<Value>> {
        s.ctl(HA, "bindings").ok()?.as_array().cloned()
    };
    r.registrations_before = bindings(session).context("the home agent's bindings")?;
    let t0 = unix_ms_f();
    let t0_mono = Instant::now();
    session.kill_daemon(HA).context("killing the home agent")?;
    session
        .restart_daemon(HA)
        .context("starting the home agent again")?;
    let after = wait_for(Duration::from_secs(20), Duration::from_millis(10), || {
        bindings(session)
    });
    r.restarted_ms = after.as_ref().map(|_| unix_ms_f() - t0);
    r.registrations_after = after.unwrap_or_default();
    let ok = probe::first_echo(
        &session.lab,
        "C3",
        SocketAddr::from((X, 7)),
        Duration::from_secs(20),
    );
    r.recover_ms = ok.map(|t| t.saturating_duration_since(t0_mono).as_secs_f64() * 1e3);
    std::thread::sleep(Duration::from_secs(1));
    r.streams_survived = streams.healthy();
    streams.stop();
    Ok(())
}
