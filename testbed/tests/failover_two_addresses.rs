//! Two anycast addresses in one group configuration fail over
//! independently (needs root): `topologies/failover2.toml`, where X1 has
//! contact node K and X2 contact node B, every member serving both. K's
//! crash moves X1 to A and leaves X2's registration untouched; after K is
//! back (a backup now), B's crash moves X2 to A and leaves X1 untouched.
//! New connections to both addresses work at every step.

mod daemon_support;

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use daemon_support::{TempDir, family, require_binaries};
use mip6_anycast::require_root;
use serde_json::{Value, json};
use testbed::lab::LabOptions;
use testbed::scenarios::daemons::{ctl_args_at, wait_for};
use testbed::scenarios::drill::{A, B, HA, K, probe};
use testbed::scenarios::{ScenarioBase, Session};
use testbed::topology::Topology;

const TOPOLOGY: &str = include_str!("../topologies/failover2.toml");
const X1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
const X2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2);
const COA_K: &str = "2001:db8:3::10";
const COA_A: &str = "2001:db8:4::10";
const COA_B: &str = "2001:db8:5::10";

fn failover(s: &Session, m: &str, x: Ipv6Addr) -> Value {
    let Some(sock) = s.control_socket(m) else {
        return Value::Null;
    };
    ctl_args_at(&sock, "failover", json!({"x": x.to_string()})).unwrap_or_default()
}

/// (care-of address, sequence) the home agent holds for `x`.
fn ha_binding(s: &Session, x: Ipv6Addr) -> (String, u64) {
    let b = s.ctl(HA, "bindings").unwrap_or_default();
    b.as_array()
        .and_then(|l| l.iter().find(|e| e["hoa"] == x.to_string()))
        .map(|e| {
            (
                e["coa"].as_str().unwrap_or("").to_string(),
                e["sequence"].as_u64().unwrap_or(0),
            )
        })
        .unwrap_or_default()
}

fn wait_registered(s: &Session, m: &str, x: Ipv6Addr, took_over: bool) {
    wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        let f = failover(s, m, x);
        (f["registered"] == true && f["took_over"] == took_over).then_some(())
    })
    .unwrap_or_else(|| panic!("{m} did not register {x}: {:#}", failover(s, m, x)));
}

fn both_reachable(s: &Session) {
    for x in [X1, X2] {
        let t = probe::first_echo(
            &s.lab,
            "C3",
            SocketAddr::from((x, 7)),
            Duration::from_secs(10),
        );
        assert!(t.is_some(), "no new connection to {x}");
    }
}

#[test]
fn two_anycast_addresses_fail_over_independently() {
    require_root!("two_anycast_addresses_fail_over_independently");
    require_binaries();
    let out = TempDir::new("twox");
    let mut base = ScenarioBase::new(out.path());
    base.lab = LabOptions {
        family: family("twox"),
        ..Default::default()
    };
    let mut topo = Topology::from_toml_str(TOPOLOGY).expect("topology");
    topo.validate().expect("valid topology");
    let mut s = base.start(&mut topo).expect("the lab starts");
    wait_registered(&s, K, X1, false);
    wait_registered(&s, B, X2, false);
    for (m, x) in [(A, X1), (B, X1), (A, X2), (K, X2)] {
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            failover(&s, m, x)["snapshot_version"].as_u64()
        })
        .unwrap_or_else(|| panic!("{m} lacks the state of {x}"));
    }
    let listed = s.ctl(A, "anycast").unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed:#}");
    assert_eq!(ha_binding(&s, X1).0, COA_K);
    let x2_before = ha_binding(&s, X2);
    assert_eq!(x2_before.0, COA_B);
    both_reachable(&s);

    // K crashes: X1 goes to its first backup A; X2 is not touched.
    s.kill_daemon(K).unwrap();
    wait_registered(&s, A, X1, true);
    assert_eq!(ha_binding(&s, X1).0, COA_A);
    assert_eq!(ha_binding(&s, X2), x2_before, "X2 moved with X1");
    assert_eq!(failover(&s, B, X2)["role"], "contact");
    both_reachable(&s);

    // K comes back as a backup of both; then B crashes: X2 goes to A.
    s.restart_daemon(K).unwrap();
    for x in [X1, X2] {
        wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
            (failover(&s, K, x)["role"] == "backup").then_some(())
        })
        .unwrap_or_else(|| panic!("K is not a backup of {x}: {:#}", failover(&s, K, x)));
    }
    // K must be heard (quorum 2 of 3) before B goes.
    std::thread::sleep(Duration::from_millis(500));
    let x1_before = ha_binding(&s, X1);
    s.kill_daemon(B).unwrap();
    wait_registered(&s, A, X2, true);
    assert_eq!(ha_binding(&s, X2).0, COA_A);
    assert_eq!(ha_binding(&s, X1), x1_before, "X1 moved with X2");
    assert_ne!(ha_binding(&s, X1).0, COA_K, "the restarted K took X1 back");
    both_reachable(&s);
    let report = s.stop();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
