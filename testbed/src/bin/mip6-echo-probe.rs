//! `mip6-echo-probe`: the demo's workload inside a `vm` guest (the
//! guest has no testbed to run probes from the host). Connects to a TCP
//! echo service, times `--samples` 64-byte echoes (phase 1), waits until
//! the file `--go` exists, then times echoes again on the same connection
//! and on a new one (phase 2). Results go to `--out`/phase1.json and
//! phase2.json, which the host reads through the serial console.
//!
//! `mip6-echo-probe --to [ADDR]:PORT --samples N --gap-ms MS --go FILE --out DIR`

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testbed::scenarios::probe::EchoProbe;

const TIMEOUT: Duration = Duration::from_secs(5);
const GO_TIMEOUT: Duration = Duration::from_secs(120);

struct Args {
    to: SocketAddr,
    samples: usize,
    gap: Duration,
    go: PathBuf,
    out: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut to, mut samples, mut gap, mut go, mut out) = (None, 10usize, 20u64, None, None);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--to" => to = Some(v.parse().map_err(|e| format!("--to {v}: {e}"))?),
            "--samples" => samples = v.parse().map_err(|e| format!("--samples {v}: {e}"))?,
            "--gap-ms" => gap = v.parse().map_err(|e| format!("--gap-ms {v}: {e}"))?,
            "--go" => go = Some(PathBuf::from(v)),
            "--out" => out = Some(PathBuf::from(v)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !(1..=1000).contains(&samples) {
        return Err("--samples must be 1..=1000".into());
    }
    Ok(Args {
        to: to.ok_or("--to is required")?,
        samples,
        gap: Duration::from_millis(gap.min(10_000)),
        go: go.ok_or("--go is required")?,
        out: out.ok_or("--out is required")?,
    })
}

fn write(dir: &Path, name: &str, v: &Value) {
    let tmp = dir.join(format!(".{name}"));
    if std::fs::write(&tmp, v.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(name));
    }
}

fn phase2(a: &Args, mut first: EchoProbe) -> Value {
    let same = first.samples(a.samples, a.gap);
    let new = EchoProbe::connect_here(a.to, TIMEOUT).and_then(|mut n| {
        let ct = n.connect_time;
        let v = n.samples(a.samples, a.gap)?;
        n.close()?;
        Ok((ct, v))
    });
    let closed = first.close();
    let mut errors = Vec::new();
    let mut v = json!({});
    match same {
        Ok(s) => v["ro_same_connection"] = json!(s),
        Err(e) => errors.push(format!("echo on the same connection: {e}")),
    }
    match new {
        Ok((ct, s)) => {
            v["connect_ro_ms"] = json!(ct.as_secs_f64() * 1e3);
            v["ro_new_connection"] = json!(s);
        }
        Err(e) => errors.push(format!("new connection: {e}")),
    }
    if let Err(e) = closed {
        errors.push(format!("closing the first connection: {e}"));
    }
    v["errors"] = json!(errors);
    v
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mip6-echo-probe: {e}");
            return ExitCode::from(2);
        }
    };
    let mut conn = match EchoProbe::connect_here(a.to, TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            write(&a.out, "phase1.json", &json!({ "errors": [e] }));
            return ExitCode::FAILURE;
        }
    };
    let p1 = match conn.samples(a.samples, a.gap) {
        Ok(s) => {
            json!({ "connect_ms": conn.connect_time.as_secs_f64() * 1e3, "via_ha": s, "errors": [] })
        }
        Err(e) => json!({ "errors": [format!("echo through the home agent: {e}")] }),
    };
    let failed = !p1["errors"].as_array().is_some_and(Vec::is_empty);
    write(&a.out, "phase1.json", &p1);
    if failed {
        return ExitCode::FAILURE;
    }
    let t0 = Instant::now();
    while !a.go.exists() {
        if t0.elapsed() > GO_TIMEOUT {
            write(
                &a.out,
                "phase2.json",
                &json!({ "errors": ["no go signal"] }),
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let p2 = phase2(&a, conn);
    let ok = p2["errors"].as_array().is_some_and(Vec::is_empty);
    write(&a.out, "phase2.json", &p2);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
