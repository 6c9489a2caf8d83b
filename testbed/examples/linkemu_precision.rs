//! How precisely does an emulated link hold its delay?
//!
//! Sends timestamped probes (100 bytes, randomized gaps) through a link configured with 0 (baseline), 1,
//! 5, 10 and 20 ms one-way delay and prints the median, p99 and maximum of
//! `observed one-way delay - configured delay`:
//! - over two unix `SOCK_SEQPACKET` socketpairs (the link alone), and
//! - as root, between two real TUN devices, each in its own throw-away
//!   network namespace (UDP socket -> kernel -> TUN -> link -> TUN ->
//!   kernel -> UDP socket).
//!
//! ```sh
//! cargo run --release -p testbed --example linkemu_precision -- [--count N] [--interval-us U] [--mode socketpair|tun|both]
//! ```

#[path = "../tests/linkemu_support/mod.rs"]
mod linkemu_support;

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use linkemu_support::*;
use nix::sys::socket::SockType;
use testbed::linkemu::{DirectionConfig, EmulatedLink, LinkConfig, LinkStats, SplitMix64};

const DELAYS_MS: [f64; 5] = [0.0, 1.0, 5.0, 10.0, 20.0];

struct Opts {
    count: usize,
    interval: Duration,
    socketpair: bool,
    tun: bool,
}

fn opts() -> Result<Opts, String> {
    let mut o = Opts {
        count: 2000,
        interval: Duration::from_micros(1000),
        socketpair: true,
        tun: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--count" => o.count = val()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--interval-us" => {
                o.interval = Duration::from_micros(
                    val()?.parse().map_err(|e| format!("--interval-us: {e}"))?,
                )
            }
            "--mode" => match val()?.as_str() {
                "socketpair" => o.tun = false,
                "tun" => o.socketpair = false,
                "both" => {}
                m => return Err(format!("unknown mode {m:?}")),
            },
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

/// Gaps between probes: uniform in [0.5, 1.5] x the mean, so that sends do
/// not fall into step with the link's release deadlines.
struct Gaps {
    mean: Duration,
    rng: SplitMix64,
}

impl Gaps {
    fn new(mean: Duration) -> Self {
        Gaps {
            mean,
            rng: SplitMix64::new(1),
        }
    }

    fn next(&mut self) -> Duration {
        self.mean.mul_f64(0.5 + self.rng.next_f64())
    }
}

/// Errors in microseconds, sorted.
struct Summary {
    errors_us: Vec<f64>,
    lost: usize,
}

impl Summary {
    fn pct(&self, p: f64) -> f64 {
        let n = self.errors_us.len();
        if n == 0 {
            return f64::NAN;
        }
        let i = ((n as f64 - 1.0) * p).round() as usize;
        self.errors_us[i.min(n - 1)]
    }
}

fn summarize(mut errors_us: Vec<f64>, sent: usize) -> Summary {
    errors_us.sort_by(f64::total_cmp);
    let lost = sent - errors_us.len();
    Summary { errors_us, lost }
}

fn print_row(mode: &str, delay_ms: f64, s: &Summary, stats: &LinkStats) {
    println!(
        "{mode:<10} {delay_ms:>6.1} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>6} {:>12.1}",
        s.errors_us.len(),
        s.pct(0.0),
        s.pct(0.5),
        s.pct(0.99),
        s.pct(1.0),
        s.lost,
        stats.a_to_b.max_late_ns as f64 / 1000.0,
    );
}

fn link_cfg(name: &str, delay_ms: f64) -> LinkConfig {
    LinkConfig::symmetric(
        name,
        DirectionConfig::with_delay(Duration::from_secs_f64(delay_ms / 1000.0)),
    )
}

fn run_socketpair(o: &Opts, delay_ms: f64) -> (Summary, LinkStats) {
    let (app_a, link_a, link_b, app_b) = two_pairs(SockType::SeqPacket);
    let link = EmulatedLink::start(link_cfg("prec-sp", delay_ms), link_a, link_b).expect("link");
    let delay_ns = (delay_ms * 1e6) as i64;
    let n = o.count;
    let rx = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut errs = Vec::with_capacity(n);
        while errs.len() < n {
            let Some(len) = recv_timeout(&app_b, &mut buf, Duration::from_secs(2)) else {
                break;
            };
            let now = now_ns();
            if let Some((_, sent)) = parse_probe(&buf[..len]) {
                errs.push((now as i64 - sent as i64 - delay_ns) as f64 / 1000.0);
            }
        }
        errs
    });
    let mut gaps = Gaps::new(o.interval);
    for i in 0..n {
        send(&app_a, &probe(i as u64, 100)).expect("send");
        std::thread::sleep(gaps.next());
    }
    let errs = rx.join().expect("receiver");
    (summarize(errs, n), link.shutdown())
}

fn run_tun(o: &Opts, delay_ms: f64) -> Result<(Summary, LinkStats), String> {
    let pid = std::process::id();
    let a: Ipv6Addr = "2001:db8:78::1".parse().unwrap_or(Ipv6Addr::LOCALHOST);
    let b: Ipv6Addr = "2001:db8:78::2".parse().unwrap_or(Ipv6Addr::LOCALHOST);
    let ns_a = NsTun::create(&format!("lpa{pid}"), a, 64, 5000)?;
    let ns_b = NsTun::create(&format!("lpb{pid}"), b, 64, 6000)?;
    let link = EmulatedLink::start(link_cfg("prec-tun", delay_ms), ns_a.tun, ns_b.tun)
        .map_err(|e| e.to_string())?;
    let delay_ns = (delay_ms * 1e6) as i64;
    let n = o.count;
    let udp_b = ns_b.udp;
    udp_b
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let rx = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut errs = Vec::with_capacity(n);
        while errs.len() < n {
            let Ok(len) = udp_b.recv(&mut buf) else {
                break;
            };
            let now = now_ns();
            if let Some((_, sent)) = parse_probe(&buf[..len]) {
                errs.push((now as i64 - sent as i64 - delay_ns) as f64 / 1000.0);
            }
        }
        errs
    });
    let to = SocketAddrV6::new(b, 6000, 0, 0);
    for i in 0..n {
        ns_a.udp
            .send_to(&probe(i as u64, 100), to)
            .map_err(|e| e.to_string())?;
        std::thread::sleep(o.interval);
    }
    let errs = rx.join().map_err(|_| "receiver panicked".to_string())?;
    Ok((summarize(errs, n), link.shutdown()))
}

fn main() {
    let o = match opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("linkemu_precision: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "one-way delay error = observed - configured, in microseconds; {} probes of 100 bytes, {} us apart on average, per row",
        o.count,
        o.interval.as_micros()
    );
    println!(
        "{:<10} {:>6} {:>8} {:>10} {:>10} {:>10} {:>10} {:>6} {:>12}",
        "path", "ms", "probes", "min", "median", "p99", "max", "lost", "max_late_us"
    );
    if o.socketpair {
        for d in DELAYS_MS {
            let (s, st) = run_socketpair(&o, d);
            print_row("socketpair", d, &s, &st);
        }
    }
    if o.tun {
        if !root_or_skip("TUN rows of linkemu_precision") {
            return;
        }
        for d in DELAYS_MS {
            match run_tun(&o, d) {
                Ok((s, st)) => print_row("tun", d, &s, &st),
                Err(e) => {
                    eprintln!("tun rows: {e}");
                    break;
                }
            }
        }
    }
}
