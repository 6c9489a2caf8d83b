//! One iperf3 measurement inside the lab, and what its JSON says.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::lab::Lab;

/// What one iperf3 run measured (from `iperf3 -J`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct IperfResult {
    /// Parallel streams.
    pub streams: u32,
    /// Goodput at the receiver (Gbit/s).
    pub gbit_s: f64,
    /// Octets the receiver got.
    pub bytes: u64,
    /// Seconds the receiver measured.
    pub seconds: f64,
    /// TCP retransmissions at the sender.
    pub retransmits: u64,
    /// iperf3's own CPU figures (percent of one core, sender and receiver).
    pub cpu_sender_pct: Option<f64>,
    /// See `cpu_sender_pct`.
    pub cpu_receiver_pct: Option<f64>,
    /// The JSON file iperf3 wrote.
    pub json: PathBuf,
}

/// Runs `iperf3 -c dst -t secs -P streams -J` in `host` and parses its
/// output (written to `out/iperf/<tag>.json`).
pub fn run(
    lab: &Lab,
    host: &str,
    dst: Ipv6Addr,
    secs: f64,
    streams: u32,
    tag: &str,
) -> anyhow::Result<IperfResult> {
    let dir = lab.out_dir().join("iperf");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join(format!("{tag}.json"));
    // iperf3 appends to --logfile.
    let _ = std::fs::remove_file(&json);
    let args = [
        "-c".to_string(),
        dst.to_string(),
        "-t".into(),
        format!("{secs}"),
        "-P".into(),
        streams.to_string(),
        "-J".into(),
        "--logfile".into(),
        json.display().to_string(),
    ];
    let p = lab
        .spawn_named(host, &format!("iperf3-{tag}"), "iperf3", &args, no_env())
        .context("starting iperf3 (is it installed? scripts/deps.sh installs it)")?;
    let limit = Duration::from_secs_f64(secs + 20.0);
    let status = p
        .wait_timeout(limit)
        .context("waiting for iperf3")?
        .ok_or_else(|| {
            let _ = p.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = p.wait();
            anyhow::anyhow!("iperf3 {tag} did not finish within {limit:?}")
        })?;
    let text =
        std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        anyhow::bail!("iperf3 {tag}: {e}");
    }
    if !status.success() {
        anyhow::bail!("iperf3 {tag}: {status}; see {}", p.log_path().display());
    }
    parse(&v, streams, json)
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

/// Reads the figures out of iperf3's JSON.
pub fn parse(v: &Value, streams: u32, json: PathBuf) -> anyhow::Result<IperfResult> {
    let end = v.get("end").context("iperf3 JSON has no `end`")?;
    let recv = end
        .get("sum_received")
        .context("iperf3 JSON has no end.sum_received")?;
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let bps = f(recv, "bits_per_second").context("no bits_per_second")?;
    let cpu = end.get("cpu_utilization_percent");
    Ok(IperfResult {
        streams,
        gbit_s: bps / 1e9,
        bytes: recv.get("bytes").and_then(Value::as_u64).unwrap_or(0),
        seconds: f(recv, "seconds").unwrap_or(0.0),
        retransmits: end
            .get("sum_sent")
            .and_then(|s| s.get("retransmits"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cpu_sender_pct: cpu.and_then(|c| f(c, "host_total")),
        cpu_receiver_pct: cpu.and_then(|c| f(c, "remote_total")),
        json,
    })
}

/// Starts `iperf3 -s` in `host` and waits until it accepts connections
/// on port 5201 of `addr`.
pub fn start_server(lab: &Lab, host: &str, addr: Ipv6Addr) -> anyhow::Result<()> {
    lab.spawn_named(
        host,
        "iperf3-server",
        "iperf3",
        ["-s", "-p", "5201"],
        no_env(),
    )
    .context("starting iperf3 -s (is iperf3 installed? scripts/deps.sh installs it)")?;
    let to = std::net::SocketAddr::from((addr, 5201));
    let ok =
        super::super::daemons::wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            lab.run_in(host, move || {
                std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok()
            })
            .ok()
            .filter(|ok| *ok)
        });
    ok.map(|_| ())
        .with_context(|| format!("iperf3 -s in {host} does not answer on {to}"))
}

/// `ping -6 -c count -i 0.01 dst` in `host`: the RTT samples (ms).
pub fn ping(
    lab: &Lab,
    host: &str,
    dst: Ipv6Addr,
    count: u32,
    tag: &str,
) -> anyhow::Result<Vec<f64>> {
    let p = lab
        .spawn_named(
            host,
            &format!("ping-{tag}"),
            "ping",
            [
                "-6",
                "-n",
                "-c",
                &count.to_string(),
                "-i",
                "0.01",
                "-W",
                "1",
                &dst.to_string(),
            ],
            no_env(),
        )
        .context("starting ping")?;
    let limit = Duration::from_secs(u64::from(count) / 50 + 10);
    if p.wait_timeout(limit).context("waiting for ping")?.is_none() {
        let _ = p.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = p.wait();
        anyhow::bail!("ping {tag} did not finish within {limit:?}");
    }
    let samples = parse_ping(&read(p.log_path()));
    if samples.is_empty() {
        anyhow::bail!("ping {tag}: no reply; see {}", p.log_path().display());
    }
    Ok(samples)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The `time=X ms` of each reply line.
pub fn parse_ping(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            t.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_lines_give_their_times() {
        let t = "PING x(x) 56 data bytes\n64 bytes from ::1: icmp_seq=1 ttl=64 time=0.045 ms\n64 bytes from ::1: icmp_seq=2 ttl=64 time=1.50 ms\n\n--- x ping statistics ---\nrtt min/avg/max/mdev = 0.045/0.7/1.5/0.7 ms\n";
        assert_eq!(parse_ping(t), vec![0.045, 1.5]);
    }

    #[test]
    fn iperf_json_figures() {
        let v: Value = serde_json::from_str(
            r#"{"end":{"sum_sent":{"retransmits":7,"bytes":2000},
                "sum_received":{"bits_per_second":8.0e9,"bytes":1000000000,"seconds":1.0},
                "cpu_utilization_percent":{"host_total":55.5,"remote_total":40.0}}}"#,
        )
        .unwrap();
        let r = parse(&v, 4, PathBuf::from("x.json")).unwrap();
        assert_eq!(r.gbit_s, 8.0);
        assert_eq!(r.retransmits, 7);
        assert_eq!(r.bytes, 1_000_000_000);
        assert_eq!(r.cpu_sender_pct, Some(55.5));
        assert!(parse(&serde_json::json!({"start":{}}), 1, PathBuf::new()).is_err());
    }
}
