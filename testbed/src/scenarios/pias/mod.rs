//! `testbed pias --out DIR`: the PIAS lab (issue 6). Routers run OSPFv3
//! (BIRD 2), six `pias-proxy` daemons announce the anycast prefix, targets
//! join through the anycast control port, clients send to the group. The
//! scenario measures, from the routers' captures and the proxies' status
//! files, and writes `DIR/pias.json`:
//! - `first_packet_segments` / `later_packet_segments`: distinct outer
//!   (source, destination) pairs of the packets carrying a probe marker;
//! - per client the proxy whose link the client's packet left a router by,
//!   and the nearest proxy by OSPF cost;
//! - `rap_updates` for one churn trace at error bounds 0/25/50 %;
//! - `affinity_kept`: a TCP connection keeps its target while the client's
//!   IAP changes (P1 withdraws its announcement, P2 takes over);
//! - `target_failover_ms`, `jap_failover_ms`, `proxy_failover_ms`.

pub mod agents;
pub mod bird;
pub mod capture;
mod created;
mod decap;
mod phases;
pub mod report;

use phases::{affinity, jap_failure, live_handoff, proxy_failure, target_failure};

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pias_proxy::group::{GroupAddr, GroupConfig, PROTO_TCP, PROTO_UDP, Policy};
use pias_proxy::ring::Ring;

use crate::lab::signals::TerminationSignals;
use crate::lab::{Lab, LabProcess};
use crate::scenarios::ScenarioBase;
use agents::{Client, SERVICE_PORT, Target};
use bird::RouterIface;
pub use report::{ClientServed, PiasReport};

/// The built-in topology.
pub const TOPOLOGY: &str = include_str!("../../../topologies/pias.toml");

/// The anycast prefix the proxies announce.
pub const ANYCAST_PREFIX: &str = "2001:db8:aa::/48";
/// The anycast address of the lab's groups.
pub const ANYCAST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xaa, 0, 0, 0, 0, 1);

/// Proxies: (host, router index, external metric).
pub const PROXIES: [(&str, usize, u32); 6] = [
    ("P1", 1, 10),
    ("P2", 1, 20),
    ("P3", 2, 10),
    ("P4", 3, 10),
    ("P5", 3, 20),
    ("P6", 2, 20),
];
/// P1's block for dynamically created groups (its config only).
pub const CREATE_BLOCK: &str =
    "block = { base = \"2001:db8:aa::100:0\", addrs = 1, first_port = 20000, last_port = 20099 }";
/// The creator key of P1's block.
pub const CREATOR_KEY: &[u8] = b"pias lab creator key";

/// Clients: (host, router index).
pub const CLIENTS: [(&str, usize); 3] = [("C1", 1), ("C2", 2), ("C3", 3)];
/// Targets: (host, router index).
pub const TARGETS: [(&str, usize); 3] = [("T1", 3), ("T2", 1), ("T3", 3)];
const ROUTER_COST: u32 = 50;
const PROXY_LINK_COST: u32 = 10;

/// A fresh inter-proxy key for one lab run (32 bytes from the OS CSPRNG, hex).
fn peer_key() -> anyhow::Result<String> {
    use mip6_anycast::crypto::{RandomSource as _, SystemRandomSource};
    let mut k = [0u8; 32];
    SystemRandomSource::new()
        .fill(&mut k)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(k.iter().map(|b| format!("{b:02x}")).collect())
}

/// Options of the scenario.
#[derive(Debug, Clone)]
pub struct PiasOptions {
    /// Output, topology, lab options.
    pub base: ScenarioBase,
    /// Which phases run after join, segments and leave (all by default;
    /// the namespace tests pick theirs).
    pub phases: Phases,
}

/// Optional phases of the scenario.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// RAP updates for the churn trace at 0/25/50 %.
    pub churn: bool,
    /// Affinity while the IAP changes.
    pub affinity: bool,
    /// A target leaves gracefully, handing its live TCP connection to
    /// another target of its JAP (`tcp-handoff`); the JAP's NAT follows.
    pub handoff: bool,
    /// A target loses its link.
    pub target_failure: bool,
    /// The JAP is killed.
    pub jap_failure: bool,
    /// The IAP is killed.
    pub proxy_failure: bool,
    /// iperf3 through the group (IAP -> JAP -> target, carried by the
    /// engines) against the direct path in the same run.
    pub throughput: bool,
    /// A target that decapsulates: the JAP tunnels to it instead of NAT.
    pub tunnel_target: bool,
    /// A group created at P1 is joined through P2 (announced between
    /// proxies under the inter-proxy key).
    pub created_group: bool,
}

impl Phases {
    /// Every phase.
    pub const ALL: Phases = Phases {
        churn: true,
        affinity: true,
        handoff: true,
        target_failure: true,
        jap_failure: true,
        proxy_failure: true,
        throughput: true,
        tunnel_target: true,
        created_group: true,
    };
    /// None (join, segments, clients, leave only).
    pub const NONE: Phases = Phases {
        churn: false,
        affinity: false,
        handoff: false,
        target_failure: false,
        jap_failure: false,
        proxy_failure: false,
        throughput: false,
        tunnel_target: false,
        created_group: false,
    };
}

impl PiasOptions {
    /// Defaults with output in `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        PiasOptions {
            base: ScenarioBase::new(out),
            phases: Phases::ALL,
        }
    }
}

fn proxy_me(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x101 + i as u16, 0, 0, 0, 0, 0x10)
}

fn proxy_nat(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xf01 + i as u16, 0, 0, 0, 0, 1)
}

fn host_addr(lab: &Lab, host: &str) -> anyhow::Result<Ipv6Addr> {
    lab.global_addr(host)
        .with_context(|| format!("address of {host}"))
}

/// OSPF cost from a host behind router `r` to proxy `p` (type-1 external).
pub fn cost_to_proxy(r: usize, p: usize) -> u32 {
    let (_, pr, metric) = PROXIES[p];
    ROUTER_COST * r.abs_diff(pr) as u32 + PROXY_LINK_COST + metric
}

/// The proxy nearest to a host behind router `r` (unique by construction).
pub fn nearest_proxy(r: usize) -> &'static str {
    (0..PROXIES.len())
        .min_by_key(|p| cost_to_proxy(r, *p))
        .map_or("", |p| PROXIES[p].0)
}

/// Picks the lab group's port: the RAPs of its UDP and TCP groups include
/// neither `avoid` proxy, so the first packet's path has 4 distinct segments.
pub fn pick_port(avoid: &[Ipv6Addr], raps: u8) -> Option<u16> {
    let ring = Ring::with_proxies(16, (0..PROXIES.len()).map(proxy_me));
    (7000u16..8000).find(|p| {
        [PROTO_UDP, PROTO_TCP].iter().all(|proto| {
            GroupAddr::new(ANYCAST, *p, *proto).is_some_and(|g| {
                ring.raps(&g, usize::from(raps))
                    .iter()
                    .all(|r| !avoid.contains(r))
            })
        })
    })
}

fn group(port: u16, proto: u8, bound: u8) -> anyhow::Result<GroupConfig> {
    Ok(GroupConfig {
        group: GroupAddr::new(ANYCAST, port, proto).context("group")?,
        policy: Policy::Proximity,
        scope_prefix_len: 48,
        raps: 3,
        error_bound_pct: bound,
        credential: format!("pias lab credential {port}/{proto}").into_bytes(),
        allow: Vec::new(),
    })
}

struct Run<'a> {
    lab: &'a Lab,
    out: PathBuf,
    birds: BTreeMap<String, (LabProcess, PathBuf)>,
    proxies: BTreeMap<String, LabProcess>,
    dumps: Vec<(String, LabProcess, PathBuf)>,
}

impl Run<'_> {
    fn ns(&self, host: &str) -> anyhow::Result<String> {
        self.lab
            .ns(host)
            .map(str::to_string)
            .with_context(|| format!("namespace of {host}"))
    }

    fn start_bird(&mut self, host: &str, conf: &str) -> anyhow::Result<()> {
        let dir = self.out.join("bird");
        std::fs::create_dir_all(&dir)?;
        let cfg = dir.join(format!("{host}.conf"));
        let ctl = dir.join(format!("{host}.ctl"));
        std::fs::write(&cfg, conf)?;
        let p = self.lab.spawn_named(
            host,
            "bird",
            "bird",
            [
                "-f",
                "-c",
                &cfg.to_string_lossy(),
                "-s",
                &ctl.to_string_lossy(),
                "-P",
                &dir.join(format!("{host}.pid")).to_string_lossy(),
            ],
            std::iter::empty::<(&str, &str)>(),
        )?;
        self.birdsave(host, p, ctl);
        Ok(())
    }

    fn birdsave(&mut self, host: &str, p: LabProcess, ctl: PathBuf) {
        self.birds.insert(host.to_string(), (p, ctl));
    }

    fn birdc(&self, host: &str, cmd: &[&str]) -> anyhow::Result<String> {
        let (_, ctl) = self.birds.get(host).context("no bird")?;
        let out = std::process::Command::new("birdc")
            .arg("-s")
            .arg(ctl)
            .args(cmd)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The next hop of `dst` in `host`'s kernel routing table.
    fn route_via(&self, host: &str, dst: Ipv6Addr) -> anyhow::Result<String> {
        let out = std::process::Command::new("ip")
            .args([
                "-n",
                &self.ns(host)?,
                "-6",
                "route",
                "get",
                &dst.to_string(),
            ])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn status(&self, proxy: &str) -> Option<serde_json::Value> {
        let t =
            std::fs::read_to_string(self.out.join("status").join(format!("{proxy}.json"))).ok()?;
        serde_json::from_str(&t).ok()
    }
}

/// A proxy's status shows all five peers live and no membership change
/// in the last `secs` seconds.
fn swim_stable(s: &serde_json::Value, secs: f64) -> bool {
    let live = s["live"].as_array().is_some_and(|l| l.len() == 5);
    let up = s["uptime_s"].as_f64().unwrap_or(0.0);
    let last = s["events"].as_array().map_or(0.0, |ev| {
        ev.iter()
            .filter(|e| matches!(e["what"].as_str(), Some("proxy_up" | "proxy_down")))
            .filter_map(|e| e["t"].as_f64())
            .fold(0.0, f64::max)
    });
    live && up - last >= secs
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("timed out after {limit:?} waiting for {what}")
}

/// Runs the scenario; the report is written also when a step failed.
pub fn run(opts: &PiasOptions, signals: Option<&TerminationSignals>) -> anyhow::Result<PiasReport> {
    let base = &opts.base;
    let mut topo = base.load_topology(TOPOLOGY, "pias")?;
    let mut report = PiasReport::default();
    let mut session = None;
    base.write_report(
        "pias.json",
        &mut report,
        |r| {
            let s = base.start(&mut topo)?;
            let s = session.insert(s);
            steps(opts, &s.lab, r, signals)
        },
        |r, e| r.errors.push(e),
    )?;
    if let Some(s) = session {
        let _ = s.stop();
    }
    Ok(report)
}

fn steps(
    opts: &PiasOptions,
    lab: &Lab,
    r: &mut PiasReport,
    signals: Option<&TerminationSignals>,
) -> anyhow::Result<()> {
    let out = lab.out_dir().to_path_buf();
    let mut run = Run {
        lab,
        out: out.clone(),
        birds: BTreeMap::new(),
        proxies: BTreeMap::new(),
        dumps: Vec::new(),
    };
    let res = steps_inner(opts, &mut run, r, signals);
    // Stop in order: captures flushed, daemons, routing.
    std::thread::sleep(Duration::from_millis(300));
    for (_, p, _) in &run.dumps {
        let _ = p.terminate(Duration::from_secs(3));
    }
    for p in run.proxies.values() {
        let _ = p.terminate(Duration::from_secs(3));
    }
    for (p, _) in run.birds.values() {
        let _ = p.terminate(Duration::from_secs(3));
    }
    let mut caps = Vec::new();
    for (router, _, path) in &run.dumps {
        match capture::read(router, path) {
            Ok(c) => caps.extend(c),
            Err(e) => r.errors.push(format!("reading {}: {e:#}", path.display())),
        }
        r.pcaps.push(
            path.strip_prefix(&out)
                .unwrap_or(path)
                .display()
                .to_string(),
        );
    }
    observe(lab, &caps, r);
    res
}

fn observe(lab: &Lab, caps: &[capture::Captured], r: &mut PiasReport) {
    let fmt = |v: &[(Ipv6Addr, Ipv6Addr)]| {
        v.iter()
            .map(|(a, b)| format!("{a} -> {b}"))
            .collect::<Vec<_>>()
    };
    let first = capture::segments(caps, "PIASFIRST");
    let later = capture::segments(caps, "PIASLATER");
    r.first_packet_segments = (!first.is_empty()).then_some(first.len());
    r.later_packet_segments = (!later.is_empty()).then_some(later.len());
    r.first_packet_path = fmt(&first);
    r.later_packet_path = fmt(&later);
    for c in r.clients.iter_mut() {
        let Ok(addr) = host_addr(lab, &c.client) else {
            continue;
        };
        let ifs = capture::egress_ifaces(caps, &c.marker, addr, ANYCAST);
        c.served_by = PROXIES
            .iter()
            .map(|p| p.0)
            .find(|p| {
                let router = format!("R{}", PROXIES.iter().find(|x| x.0 == *p).map_or(0, |x| x.1));
                lab.interface(&router, &p.to_lowercase())
                    .is_some_and(|(_, ix)| ifs.iter().any(|(rt, i)| *rt == router && *i == ix))
            })
            .map(str::to_string);
        c.is_nearest = c.served_by.as_deref() == Some(c.nearest.as_str());
    }
}

fn steps_inner(
    opts: &PiasOptions,
    run: &mut Run,
    r: &mut PiasReport,
    signals: Option<&TerminationSignals>,
) -> anyhow::Result<()> {
    let lab = run.lab;
    let stop_requested = || signals.is_some_and(|s| s.poll().is_some());
    // Captures on the routers (every segment crosses one).
    std::fs::create_dir_all(run.out.join("pcap"))?;
    std::fs::create_dir_all(run.out.join("status"))?;
    for i in 1..=3 {
        let router = format!("R{i}");
        let path = run.out.join("pcap").join(format!("{router}.pcap"));
        let p = lab.spawn_named(
            &router,
            "tcpdump",
            "tcpdump",
            [
                "-i",
                "any",
                "-n",
                "-U",
                "--immediate-mode",
                "-s",
                "160",
                "-Z",
                "root",
                "-w",
                &path.to_string_lossy(),
                "udp or tcp or ip6 proto 41",
            ],
            std::iter::empty::<(&str, &str)>(),
        )?;
        run.dumps.push((router, p, path));
    }
    // Routing: OSPFv3 on routers and proxies.
    for i in 1..=3usize {
        let router = format!("R{i}");
        let mut ifaces = Vec::new();
        for l in lab.links() {
            let Some(end) = l.end_of(&router) else {
                continue;
            };
            let other = if l.a.host == router {
                &l.b.host
            } else {
                &l.a.host
            };
            let (cost, stub) = if other.starts_with('R') {
                (ROUTER_COST, false)
            } else if other.starts_with('P') {
                (PROXY_LINK_COST, false)
            } else {
                (10, true)
            };
            ifaces.push(RouterIface {
                name: end.ifname.clone(),
                cost,
                stub,
            });
        }
        run.start_bird(&router, &bird::router_conf(i as u32, &ifaces))?;
    }
    for (i, (p, _, metric)) in PROXIES.iter().enumerate() {
        let (uplink, _) = lab
            .interface(p, &p.to_lowercase())
            .context("proxy uplink")?;
        let conf = bird::proxy_conf(
            i as u32 + 1,
            uplink,
            "pias0",
            ANYCAST_PREFIX,
            proxy_nat(i),
            *metric,
        );
        run.start_bird(p, &conf)?;
    }
    // Groups and proxies.
    let raps = 3u8;
    let port = pick_port(&[proxy_me(0), proxy_me(3)], raps)
        .context("no port whose RAPs avoid P1 and P4")?;
    let g_udp = group(port, PROTO_UDP, 0)?;
    let g_tcp = group(port, PROTO_TCP, 0)?;
    let churn: Vec<GroupConfig> = [0u8, 25, 50]
        .iter()
        .enumerate()
        .map(|(i, b)| group(port + 100 + i as u16, PROTO_UDP, *b))
        .collect::<anyhow::Result<_>>()?;
    r.group = g_udp.group.to_string();
    let ring = Ring::with_proxies(16, (0..PROXIES.len()).map(proxy_me));
    r.raps = ring
        .raps(&g_udp.group, usize::from(raps))
        .iter()
        .filter_map(|a| {
            (0..PROXIES.len())
                .find(|i| proxy_me(*i) == *a)
                .map(|i| PROXIES[i].0.to_string())
        })
        .collect();
    let bin = crate::lab::find_workspace_binary("pias-proxy")
        .context("pias-proxy binary (cargo build -p pias-proxy)")?;
    let g_perf = group(phases::IPERF_PORT, PROTO_TCP, 0)?;
    let g_decap = group(decap::DECAP_PORT, PROTO_UDP, 0)?;
    let mut groups = vec![
        g_udp.clone(),
        g_tcp.clone(),
        g_perf.clone(),
        g_decap.clone(),
    ];
    groups.extend(churn.iter().cloned());
    std::fs::create_dir_all(run.out.join("config"))?;
    let peer_key = peer_key().context("inter-proxy key")?;
    for (i, (p, pr, _)) in PROXIES.iter().enumerate() {
        let cluster: Vec<String> = (0..PROXIES.len())
            .filter(|j| PROXIES[*j].1 == *pr)
            .map(|j| format!("\"{}\"", proxy_me(j)))
            .collect();
        let peers: Vec<String> = (0..PROXIES.len())
            .map(|j| format!("\"{}\"", proxy_me(j)))
            .collect();
        let mut t = format!(
            "me = \"{}\"\nnat_addr = \"{}\"\nanycast_prefix = \"{ANYCAST_PREFIX}\"\npeer_key = \"{peer_key}\"\npeers = [{}]\ncluster = [{}]\ncluster_size = 6\nseed = {}\nmax_groups_per_target = 1000\nrtt_probe_ms = 500\n",
            proxy_me(i),
            proxy_nat(i),
            peers.join(", "),
            cluster.join(", "),
            i + 1
        );
        if i == 0 {
            let hex: String = CREATOR_KEY.iter().map(|b| format!("{b:02x}")).collect();
            t.push_str(&format!("{CREATE_BLOCK}\ncreator_key = \"{hex}\"\n"));
        }
        #[derive(serde::Serialize)]
        struct Groups<'a> {
            group: &'a [GroupConfig],
        }
        t.push('\n');
        t.push_str(&toml::to_string(&Groups { group: &groups }).context("groups to TOML")?);
        let cfg = run.out.join("config").join(format!("{p}.toml"));
        std::fs::write(&cfg, t)?;
        let status = run.out.join("status").join(format!("{p}.json"));
        let proc = lab.spawn_named(
            p,
            "pias-proxy",
            &bin,
            [
                "--config",
                &cfg.to_string_lossy(),
                "--status",
                &status.to_string_lossy(),
            ],
            std::iter::empty::<(&str, &str)>(),
        )?;
        run.proxies.insert(p.to_string(), proc);
    }
    r.swim_converged_ms = Some(
        wait_for(
            "every proxy seeing the five others (SWIM)",
            Duration::from_secs(40),
            || {
                PROXIES.iter().all(|(p, _, _)| {
                    run.status(p)
                        .is_some_and(|s| s["live"].as_array().is_some_and(|l| l.len() == 5))
                })
            },
        )?
        .as_secs_f64()
            * 1e3,
    );
    // SWIM views flap for a moment after they first converge (a proxy
    // declared down and up again within ~200 ms, seen on a loaded CI run);
    // a first packet in that moment meets an IAP whose ring, and so its
    // RAPs, differ. Wait until no view changed for 1.5 s.
    wait_for(
        "stable SWIM views (no change for 1.5 s)",
        Duration::from_secs(30),
        || {
            PROXIES
                .iter()
                .all(|(p, _, _)| run.status(p).is_some_and(|s| swim_stable(&s, 1.5)))
        },
    )?;
    // OSPF converged: every router sends the anycast prefix to the proxy
    // nearest by the cost model (checks the model, too).
    let expect: Vec<(String, String)> = (1..=3)
        .map(|i| {
            let router = format!("R{i}");
            let p = nearest_proxy(i).to_lowercase();
            let dev = lab
                .interface(&router, &p)
                .map(|(n, _)| format!("dev {n} "))
                .unwrap_or_default();
            (router, dev)
        })
        .collect();
    r.ospf_converged_ms = Some(
        wait_for(
            "OSPF: anycast prefix routed to the nearest proxy at every router",
            Duration::from_secs(40),
            || {
                expect.iter().all(|(rt, dev)| {
                    run.route_via(rt, ANYCAST)
                        .is_ok_and(|s| s.contains(dev.as_str()))
                })
            },
        )?
        .as_secs_f64()
            * 1e3,
    );
    if stop_requested() {
        anyhow::bail!("interrupted");
    }

    // Targets T1 and T3 join through the anycast control port (nearest proxy: P4).
    let mut targets: BTreeMap<&str, Target> = BTreeMap::new();
    for name in ["T1", "T3"] {
        let t = Target::start(
            lab,
            name,
            host_addr(lab, name)?,
            vec![g_udp.clone(), g_tcp.clone()],
            Duration::from_millis(300),
        )?;
        targets.insert(name, t);
    }
    wait_for("join acknowledgements", Duration::from_secs(20), || {
        targets
            .values()
            .all(|t| t.acks_ok.load(std::sync::atomic::Ordering::Relaxed) >= 2)
    })?;
    r.joined = true;
    let c1_addr = host_addr(lab, "C1")?;
    let dst = SocketAddrV6::new(ANYCAST, port, 0, 0);
    let c1 = Client::new(lab, "C1", c1_addr, 40001, dst)?;
    let served = c1
        .probe("PIASFIRST", Duration::from_secs(2))
        .context("first probe from C1 unanswered")?;
    c1.probe("PIASLATER", Duration::from_secs(2))
        .context("second probe from C1 unanswered")?;
    r.first_target = Some(served);
    for (i, (c, router)) in CLIENTS.iter().enumerate() {
        let marker = format!("PIASCLIENT{c}");
        let cl = Client::new(lab, c, host_addr(lab, c)?, 41000 + i as u16, dst)?;
        let answered_by = cl.probe(&marker, Duration::from_secs(2));
        r.clients.push(ClientServed {
            client: c.to_string(),
            marker,
            answered_by,
            served_by: None,
            nearest: nearest_proxy(*router).to_string(),
            is_nearest: false,
        });
    }
    if opts.phases.throughput {
        let t1 = targets.get_mut("T1").context("T1")?;
        r.throughput = Some(phases::throughput(run, t1, &g_perf)?);
    }
    if opts.phases.tunnel_target {
        let t1 = targets.get_mut("T1").context("T1")?;
        r.tunnel_target = Some(decap::tunnel_target(
            run,
            t1,
            &g_decap,
            proxy_me(3),
            c1_addr,
        )?);
    }
    // Leave: T3 leaves the UDP group explicitly; its JAP stops choosing it.
    let t3 = targets.get_mut("T3").context("T3")?;
    t3.stop_joining();
    r.left = t3.membership(&g_udp, SERVICE_PORT, true)? == pias_proxy::wire::AckStatus::Ok;
    let after_leave: Vec<String> = (0..6)
        .filter_map(|i| {
            Client::new(lab, "C2", host_addr(lab, "C2").ok()?, 42000 + i, dst)
                .ok()?
                .probe(&format!("PIASLEAVE{i}"), Duration::from_secs(1))
        })
        .collect();
    r.after_leave_targets = after_leave;
    let t3 = targets.get_mut("T3").context("T3")?;
    anyhow::ensure!(
        t3.membership(&g_udp, SERVICE_PORT, false)? == pias_proxy::wire::AckStatus::Ok,
        "T3 re-join"
    );
    t3.resume_joining(vec![g_udp.clone(), g_tcp.clone()]);
    let ph = opts.phases;

    // RAP updates for one churn trace at error bounds 0/25/50 %.
    let t1 = targets.get_mut("T1").context("T1")?;
    let churn = if ph.churn { churn } else { Vec::new() };
    for g in &churn {
        let mut live: Vec<u16> = Vec::new();
        let mut next = 9000u16;
        let plan = [(true, 40), (false, 30), (true, 20)];
        for (join, n) in plan {
            for _ in 0..n {
                if join {
                    t1.membership(g, next, false)?;
                    live.push(next);
                    next += 1;
                } else if !live.is_empty() {
                    let p = live.remove(0);
                    t1.membership(g, p, true)?;
                }
            }
        }
    }
    if ph.churn {
        // Let the status files catch up (written every 200 ms).
        std::thread::sleep(Duration::from_millis(600));
    }
    for (g, bound) in churn.iter().zip([0u8, 25, 50]) {
        let key = g.group.to_string();
        let n: u64 = PROXIES
            .iter()
            .filter_map(|(p, _, _)| run.status(p))
            .flat_map(|s| s["rap"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["group"].as_str() == Some(key.as_str()))
            .filter_map(|e| e["updates"].as_u64())
            .sum();
        r.rap_updates.insert(bound.to_string(), n);
    }
    if ph.churn {
        r.churn_events = 90;
    }

    // Affinity while the IAP changes: a TCP connection from C1 through P1;
    // P1 withdraws its announcement (alive), routing moves C1 to P2.
    // Before the failures: it withdraws and restores P1's announcement,
    // and OSPF delays a new LSA for the same prefix by MinLSInterval (5 s),
    // which slowed the withdrawal when P1 was killed right after (proxy
    // failover 2.0-3.0 s instead of 0.6-0.8 s).
    if ph.created_group {
        r.created = created::created_group(run)?;
    }
    if ph.affinity {
        r.affinity = affinity(run, port)?;
        r.affinity_kept = r.affinity.before.is_some() && r.affinity.before == r.affinity.after;
    }
    if ph.handoff {
        r.handoff = live_handoff(run, &mut targets, &g_tcp, &g_udp)?;
    }
    if ph.target_failure {
        target_failure(run, r, c1_addr, dst)?;
    }
    if ph.jap_failure {
        let t2 = Target::start(
            lab,
            "T2",
            host_addr(lab, "T2")?,
            vec![g_udp.clone(), g_tcp.clone()],
            Duration::from_millis(300),
        )?;
        wait_for("T2 joined", Duration::from_secs(10), || {
            t2.acks_ok.load(std::sync::atomic::Ordering::Relaxed) >= 2
        })?;
        targets.insert("T2", t2);
        jap_failure(run, r, c1_addr, dst)?;
    }
    if ph.proxy_failure {
        proxy_failure(run, r, c1_addr, dst)?;
    }
    for (_, t) in targets {
        t.stop();
    }
    // Let the status files catch up (written every 200 ms).
    std::thread::sleep(Duration::from_millis(400));
    r.engine = engine_carried(run);
    Ok(())
}

/// Sums the proxies' engine counters from their last status files.
fn engine_carried(run: &Run) -> report::EngineCarried {
    let mut e = report::EngineCarried::default();
    for s in PROXIES.iter().filter_map(|(p, _, _)| run.status(p)) {
        let n = |k: &str| s["engine"][k].as_u64().unwrap_or(0);
        e.ingress_tunnelled += n("ingress_tunnelled");
        e.translated_to_target += n("translated_to_target") + n("tunnelled_to_target");
        e.replies_translated += n("replies_translated") + n("target_decapsulated");
        e.punted += n("punted");
        e.table_errors += s["table_errors"].as_u64().unwrap_or(0);
        e.control_plane_transmitted += s["segments"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
        if e.datapath.is_none() {
            e.datapath = s["engine"]["datapath"].as_str().map(str::to_string);
        }
    }
    e
}

/// Path of the report.
pub fn report_path(out: &Path) -> PathBuf {
    out.join("pias.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_proxy_follows_the_ospf_costs() {
        // Same router, lower external metric wins; then distance.
        assert_eq!(nearest_proxy(1), "P1");
        assert_eq!(nearest_proxy(2), "P3");
        assert_eq!(nearest_proxy(3), "P4");
        assert_eq!(cost_to_proxy(1, 1), 30);
        assert_eq!(cost_to_proxy(1, 3), 120);
    }

    #[test]
    fn the_lab_port_keeps_iap_and_jap_off_the_rap_set() {
        let avoid = [proxy_me(0), proxy_me(3)];
        let port = pick_port(&avoid, 3).unwrap();
        let ring = Ring::with_proxies(16, (0..PROXIES.len()).map(proxy_me));
        for proto in [PROTO_UDP, PROTO_TCP] {
            let raps = ring.raps(&GroupAddr::new(ANYCAST, port, proto).unwrap(), 3);
            assert_eq!(raps.len(), 3);
            assert!(raps.iter().all(|r| !avoid.contains(r)));
        }
    }
}
