//! Failover rules in namespaces (need root), on the failover lab (contact
//! node K, backups A then B, clients C1..C3):
//!
//! - a contact node that comes back (thawed after a freeze, or restarted
//!   after a crash) does not take the anycast address back: it follows the
//!   newer epoch and becomes a backup; the home agent keeps the new
//!   contact's registration, new connections keep working, and the new
//!   contact does the contact's duties (route optimization of a new
//!   client through its home registration, a handoff with a live stream);
//! - key rotation without downtime: `ctl rotate-key` reaches the backups
//!   first, then K re-registers with the new SA while streams run; a later
//!   takeover registers with the rotated key.

mod daemon_support;

use std::net::SocketAddr;
use std::time::Duration;

use daemon_support::{TempDir, family, require_binaries};
use mip6_anycast::engine::netns::NetnsWorker;
use mip6_anycast::require_root;
use mip6_anycast::testsvc::{ClientConfig, TestClient};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use testbed::lab::LabOptions;
use testbed::scenarios::daemons::wait_for;
use testbed::scenarios::drill::{A, B, FAILOVER_TOPOLOGY, HA, K, X, probe, wait_ready};
use testbed::scenarios::{ScenarioBase, Session};
use testbed::topology::Topology;

const COA_A: &str = "2001:db8:4::10";

fn start(tag: &str, out: &TempDir, toml: &str) -> Session {
    require_binaries();
    let mut base = ScenarioBase::new(out.path());
    base.lab = LabOptions {
        family: family(tag),
        ..Default::default()
    };
    let mut topo = Topology::from_toml_str(toml).expect("topology");
    topo.validate().expect("valid topology");
    let s = base.start(&mut topo).expect("the lab starts");
    wait_ready(&s).expect("K registered, backups hold its state");
    s
}

fn failover(s: &Session, m: &str) -> Value {
    s.ctl(m, "failover").unwrap_or_default()
}

fn ha_binding(s: &Session) -> Value {
    s.ctl(HA, "bindings")
        .ok()
        .and_then(|b| b.as_array()?.first().cloned())
        .unwrap_or_default()
}

fn wait_took_over(s: &Session, m: &str) {
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let f = failover(s, m);
        (f["took_over"] == true && f["registered"] == true).then_some(())
    })
    .unwrap_or_else(|| panic!("{m} did not take X over: {:#}", failover(s, m)));
}

fn new_connection_works(s: &Session) {
    let t = probe::first_echo(
        &s.lab,
        "C3",
        SocketAddr::from((X, 7)),
        Duration::from_secs(10),
    );
    assert!(t.is_some(), "no new connection to X");
}

/// A sequence-checked stream from `host` to X (64 KiB/s each way).
fn open_stream(s: &Session, host: &str, seed: u64) -> (NetnsWorker, TestClient) {
    let worker = s.lab.worker(host).unwrap();
    let cfg = ClientConfig {
        seed,
        up_rate: 64 << 10,
        down_rate: 64 << 10,
        ..Default::default()
    };
    let stream = worker
        .handle()
        .block_on(worker.spawn(TestClient::connect(SocketAddr::from((X, 9000)), cfg)))
        .unwrap()
        .unwrap();
    (worker, stream)
}

/// The new contact node A does the contact's duties: a new client C1 is
/// route-optimized to it (home test through its registration), and A hands
/// C1 with a live stream to B.
fn new_contact_hands_a_client_off(s: &Session) {
    let (worker, stream) = open_stream(s, "C1", 11);
    let coa = |s: &Session| {
        s.ctl("mip6-cn-C1", "bindings")
            .ok()?
            .as_array()?
            .iter()
            .find(|b| b["hoa"] == X.to_string())
            .and_then(|b| b["coa"].as_str().map(str::to_string))
    };
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        (coa(s).as_deref() == Some(COA_A)).then_some(())
    })
    .expect("C1 route-optimized to the new contact A");
    let sock = s.control_socket(A).unwrap();
    testbed::scenarios::daemons::ctl_args_at(
        &sock,
        "handoff",
        json!({"client": "2001:db8:11::10", "member": "B"}),
    )
    .expect("the new contact hands C1 off");
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        (coa(s).as_deref() == Some("2001:db8:5::10")).then_some(())
    })
    .expect("C1 bound to B");
    std::thread::sleep(Duration::from_millis(500));
    let rep = stream.report();
    assert!(rep.end.is_none() && rep.mismatches == 0, "{rep:?}");
    let _ = worker.handle().block_on(worker.spawn(stream.stop()));
}

#[test]
fn a_returning_contact_node_does_not_take_x_back() {
    require_root!("a_returning_contact_node_does_not_take_x_back");
    let out = TempDir::new("returning");
    let mut s = start("returning", &out, FAILOVER_TOPOLOGY);

    // Freeze K: A takes over.
    let k = s.daemon(K).expect("K").clone();
    k.signal(Signal::SIGSTOP).unwrap();
    wait_took_over(&s, A);
    let taken = ha_binding(&s);
    assert_eq!(taken["coa"], COA_A, "{taken:#}");
    // Thaw K: it hears the newer epoch and steps down; no registration of
    // its own reaches the home agent.
    k.signal(Signal::SIGCONT).unwrap();
    wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
        let f = failover(&s, K);
        (f["role"] == "backup" && f["contact"] == "A").then_some(())
    })
    .unwrap_or_else(|| panic!("K did not step down: {:#}", failover(&s, K)));
    std::thread::sleep(Duration::from_secs(1));
    let after = ha_binding(&s);
    assert_eq!(after["coa"], COA_A, "K took X back: {after:#}");
    assert_eq!(after["sequence"], taken["sequence"], "{after:#}");
    assert_eq!(failover(&s, K)["is_contact"], false);
    assert_eq!(failover(&s, A)["role"], "contact");
    assert_eq!(failover(&s, B)["contact"], "A");
    new_connection_works(&s);
    new_contact_hands_a_client_off(&s);

    // Crash K and start it again: it starts as the configured contact
    // node, hears epoch 1 from the group and stays a backup.
    s.kill_daemon(K).unwrap();
    s.restart_daemon(K).unwrap();
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let f = failover(&s, K);
        (f["role"] == "backup" && f["contact"] == "A").then_some(())
    })
    .unwrap_or_else(|| panic!("restarted K is not a backup: {:#}", failover(&s, K)));
    std::thread::sleep(Duration::from_secs(1));
    let after = ha_binding(&s);
    assert_eq!(after["coa"], COA_A, "restarted K took X back: {after:#}");
    assert_eq!(after["sequence"], taken["sequence"], "{after:#}");
    let k_status = s.ctl(K, "status").unwrap();
    assert_eq!(
        k_status["home_registration"]["bu_sent"], 0,
        "restarted K sent a home registration: {k_status:#}"
    );
    // And K is A's backup now: it holds A's state.
    wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
        (failover(&s, K)["snapshot_version"].as_u64()? >= 1 << 40).then_some(())
    })
    .unwrap_or_else(|| panic!("K did not get A's state: {:#}", failover(&s, K)));
    new_connection_works(&s);
    let report = s.stop();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[test]
fn the_registration_key_rotates_without_downtime() {
    require_root!("the_registration_key_rotates_without_downtime");
    // The home agent knows the old and the new SA during the rotation.
    let old_sa = "spi = 4242\nkey = \"6d697036616e79636173742064656d6f206b6579\"\n";
    let toml = FAILOVER_TOPOLOGY.replacen(
        old_sa,
        &format!(
            "{old_sa}\n[[daemon.config.home_address]]\naddress = \"2001:db8:100::1\"\nspi = 4343\nkey = \"{}\"\n",
            "aa".repeat(20)
        ),
        1,
    );
    assert_ne!(toml, FAILOVER_TOPOLOGY);
    let out = TempDir::new("rotate");
    let s = start("rotate", &out, &toml);
    // A stream runs through the rotation.
    let (worker, stream) = open_stream(&s, "C2", 7);
    assert_eq!(ha_binding(&s)["spi"], 4242);
    let r = s
        .ctl(K, "rotate-key")
        .expect_err("rotate-key without args is refused");
    assert!(r.contains("spi"), "{r}");
    let sock = s.control_socket(K).unwrap();
    testbed::scenarios::daemons::ctl_args_at(
        &sock,
        "rotate-key",
        json!({"spi": 4343, "key": "aa".repeat(20)}),
    )
    .expect("rotate-key");
    wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let f = failover(&s, K);
        (f["spi"] == 4343 && f["rotation"].is_null()).then_some(())
    })
    .unwrap_or_else(|| panic!("rotation did not finish: {:#}", failover(&s, K)));
    assert_eq!(ha_binding(&s)["spi"], 4343, "{:#}", ha_binding(&s));
    assert_eq!(ha_binding(&s)["coa"], "2001:db8:3::10");
    for m in [A, B] {
        wait_for(Duration::from_secs(5), Duration::from_millis(20), || {
            (failover(&s, m)["snapshot_spi"] == 4343).then_some(())
        })
        .unwrap_or_else(|| panic!("{m} lacks the new key: {:#}", failover(&s, m)));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rep = stream.report();
    assert!(
        rep.end.is_none() && rep.mismatches == 0,
        "the stream suffered from the rotation: {rep:?}"
    );
    // A takeover now registers with the rotated key.
    s.kill_daemon(K).unwrap();
    wait_took_over(&s, A);
    let b = ha_binding(&s);
    assert_eq!(
        (b["coa"].clone(), b["spi"].clone()),
        (json!(COA_A), json!(4343)),
        "{b:#}"
    );
    new_connection_works(&s);
    let _ = worker.handle().block_on(worker.spawn(stream.stop()));
    let report = s.stop();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
