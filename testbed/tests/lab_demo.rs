//! The demo topology built as a lab (no daemons): ping C -> K through R
//! over the emulated links takes at least the configured 2 x (10 + 5) ms,
//! TCP from C reaches K's `lo` address, the captures hold exactly what
//! crossed the links, and teardown leaves nothing behind. Needs root.

mod lab_support;

use std::net::Ipv6Addr;
use std::time::Duration;

use lab_support::*;
use mip6_anycast::require_root;
use testbed::lab::state::LabState;
use testbed::lab::{Lab, LabOptions};
use testbed::topology::{LinkDir, Topology};

const DEMO: &str = include_str!("../topologies/demo.toml");

/// The demo lab plus a host route for X toward K, so that without the
/// home agent's tunnel X is still reachable (K has it on `lo`).
fn demo_with_x_at_k() -> Topology {
    let extra =
        "\n[[route]]\nhost = \"R\"\ndst = \"2001:db8:100::1/128\"\nvia = \"2001:db8:3::10\"\n";
    let mut t = Topology::from_toml_str(&format!("{DEMO}{extra}")).expect("valid topology");
    t.daemons.clear();
    t
}

#[test]
fn demo_lab_ping_tcp_capture_and_teardown() {
    require_root!("demo_lab_ping_tcp_capture_and_teardown");
    if !tool_or_skip("ping", "demo lab ping") || !tool_or_skip("tshark", "demo lab captures") {
        return;
    }
    let out = TempDir::new("demo");
    let topo = demo_with_x_at_k();
    let mut lab =
        Lab::build(&topo, LabOptions::with_out_dir(out.path())).expect("build the demo lab");
    let prefix = lab.prefix().to_string();

    // Names and accessors.
    assert_eq!(namespaces_of(&prefix).len(), 4);
    for h in ["C", "R", "HA", "K"] {
        let ns = lab.ns(h).unwrap();
        assert_eq!(ns, format!("{prefix}-{h}"));
        assert!(std::path::Path::new("/run/netns").join(ns).exists());
    }
    let k: Ipv6Addr = "2001:db8:3::10".parse().unwrap();
    let x: Ipv6Addr = "2001:db8:100::1".parse().unwrap();
    assert_eq!(lab.addr("K", "r-k"), Some(k));
    assert_eq!(lab.global_addr("K"), Some(k));
    assert_eq!(
        lab.global_addr("C"),
        Some("2001:db8:1::10".parse().unwrap())
    );
    assert_eq!(lab.addr("C", "r-k"), None);
    let (ifname, ifindex) = lab.interface("R", "c-r").unwrap();
    assert_eq!(ifname, "c-r");
    assert!(ifindex > 0);
    let h = lab.link_handle("c-r").expect("c-r is emulated");
    assert_eq!(h.config(LinkDir::AToB).delay, Duration::from_millis(10));
    let state = LabState::load(lab.state_file()).expect("state file");
    assert_eq!(state.prefix, prefix);
    assert_eq!(state.hosts.len(), 4);
    let reaper = state.reaper.expect("a reaper guards the lab");
    assert!(reaper.is_alive());

    // ping C -> K: RTT at least 2 x (10 + 5) ms.
    let n = 5;
    let ping = lab
        .spawn(
            "C",
            "ping",
            [
                "-6",
                "-n",
                "-c",
                &n.to_string(),
                "-i",
                "0.2",
                "-w",
                "20",
                &k.to_string(),
            ],
            [("LC_ALL", "C")],
        )
        .expect("start ping");
    let status = ping.wait().unwrap();
    let log = std::fs::read_to_string(ping.log_path()).unwrap();
    assert!(status.success(), "ping failed: {log}");
    assert_eq!(ping.log_path(), out.join("logs/C-ping.log"));
    let times = ping_times_ms(&log);
    assert_eq!(times.len(), n, "{log}");
    for t in &times {
        assert!(*t >= 30.0, "RTT {t} ms below 2 x (10 + 5) ms: {log}");
    }

    // TCP from C to X on K's lo, through R; the connect takes one RTT.
    let server = echo_server(&lab, "K", x);
    let (echo, connect) = tcp_echo_from(&lab, "C", server, b"hello through R");
    assert_eq!(echo, b"hello through R");
    assert!(
        connect >= Duration::from_millis(30),
        "connect in {connect:?}"
    );

    // A process that would run forever ends with the lab.
    let sleeper = lab.spawn("R", "sleep", ["1000"], [("A", "B")]).unwrap();
    assert!(sleeper.is_running());
    let sleeper_pid = sleeper.pid();

    let pcaps: Vec<_> = ["c-r", "r-ha", "r-k"]
        .iter()
        .map(|l| {
            (
                l.to_string(),
                lab.pcap_path(l).expect("captured").to_owned(),
            )
        })
        .collect();
    let report = lab.teardown();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(lab.teardown().namespaces_deleted.is_empty(), "idempotent");

    // Nothing left: namespaces, processes, state file, reaper.
    assert!(namespaces_of(&prefix).is_empty());
    assert!(!pid_alive(sleeper_pid));
    assert!(!sleeper.is_running());
    assert!(!lab.state_file().exists());
    assert!(wait_until(Duration::from_secs(3), || !reaper.is_alive()));

    // Captures: tshark reads every frame that entered each link, and the
    // pings crossed c-r and r-k (requests one way, replies the other), not r-ha.
    for (name, path) in &pcaps {
        assert_eq!(*path, out.0.join(format!("pcap/{name}.pcap")));
        let (_, stats) = report
            .link_stats
            .iter()
            .find(|(l, _)| l == name)
            .expect("final stats");
        let entered = stats.a_to_b.packets_in + stats.b_to_a.packets_in
            - stats.a_to_b.dropped_invalid
            - stats.b_to_a.dropped_invalid;
        assert_eq!(tshark_count(path, None) as u64, entered, "{name}");
        let requests = tshark_count(
            path,
            Some("icmpv6.type == 128 && ipv6.dst == 2001:db8:3::10"),
        );
        let replies = tshark_count(
            path,
            Some("icmpv6.type == 129 && ipv6.src == 2001:db8:3::10"),
        );
        let expect = if name == "r-ha" { 0 } else { n };
        assert_eq!((requests, replies), (expect, expect), "{name}");
    }
}
