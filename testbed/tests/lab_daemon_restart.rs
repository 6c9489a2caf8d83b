//! Restarts with the real daemons (needs root):
//! - the contact node crashes: the client's correspondent agent drops the
//!   binding of the silent care-of address (fallback rule), new
//!   connections work again through the home agent once the contact node
//!   is back, and route optimization is re-established;
//! - the contact node restarts while the client still holds its binding:
//!   the persisted binding update list gives it sequence numbers the
//!   client accepts (no status 135); with a stale list it resynchronises
//!   through status 135; without the file it starts afresh;
//! - the home agent crashes and restarts: no registration is lost, the
//!   tunnel is back from the persisted binding cache, traffic keeps
//!   flowing; a SIGTERM removes its steering and exits 0.

mod daemon_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use daemon_support::{C, DaemonLab, HA, K, topology};
use mip6_anycast::require_root;

const FAST: &str = "[route_optimization]\ndelay_s = 0.0\npeer_scan_s = 0.2\n";
const FALLBACK: &str = "[correspondent]\nusage_poll_s = 0.2\n[fallback]\nsilence_s = 1.0\n";

#[test]
fn contact_node_crash_falls_back_and_recovers() {
    require_root!("contact_node_crash_falls_back_and_recovers");
    let mut lab = DaemonLab::start("kcrash", topology(1.0, &[(K, FAST), (C, FALLBACK)]));
    let mut conn = lab.connect();
    conn.round_trip(64).expect("echo");
    lab.wait_route_optimized();
    conn.round_trip(64).expect("echo after route optimization");

    lab.session.kill_daemon(K).expect("kill K");
    // The client keeps sending on its connection (retransmissions to the
    // dead care-of address): the binding is dropped for silence.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let writer = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            let _ = conn.round_trip(16);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    lab.eventually("the client to drop the binding", || {
        lab.client_binding().is_none()
    });
    stop.store(true, Ordering::Relaxed);
    let c = lab.ctl(C, "status");
    assert!(
        c["fallback"]["dropped"]["silent"].as_u64().unwrap_or(0) >= 1,
        "{c:#}"
    );

    lab.session.restart_daemon(K).expect("restart K");
    lab.wait_registered();
    // A new connection works (through the home agent, or already
    // route-optimized again if the restarted node resumed the client).
    let mut fresh = lab.connect();
    fresh.round_trip(64).expect("echo on a new connection");
    let (coa, _) = lab.wait_route_optimized();
    assert_eq!(coa, lab.k_coa());
    fresh
        .round_trip(64)
        .expect("echo after route optimization again");
    fresh.close().expect("close");
    let _ = writer.join();
    assert!(lab.ctl(C, "status")["bu_accepted"].as_u64().unwrap() >= 2);
}

#[test]
fn contact_node_restart_resumes_sequence_numbers() {
    require_root!("contact_node_restart_resumes_sequence_numbers");
    let mut lab = DaemonLab::start("kseq", topology(1.0, &[(K, FAST)]));
    let conn = lab.connect();
    let (_, seq0) = lab.wait_route_optimized();
    conn.close().expect("close");

    // Crash and restart with the client's binding still in place: the
    // resumed Binding Update carries a newer sequence number at once.
    lab.session.kill_daemon(K).expect("kill K");
    lab.session.restart_daemon(K).expect("restart K");
    lab.wait_registered();
    lab.eventually("the resumed binding", || {
        lab.client_binding().is_some_and(|(_, s)| s != seq0) && lab.k_bound()
    });
    let k = lab.ctl(K, "status");
    assert_eq!(k["route_optimization"]["resyncs"], 0, "{k:#}");
    let (_, seq1) = lab.client_binding().unwrap();
    assert!(
        seq1.wrapping_sub(seq0) % 65536 < 32768,
        "sequence went back: {seq0} -> {seq1}"
    );

    // A stale list (sequence numbers far behind what the client last
    // accepted, as after restoring an old backup): the resumed Binding
    // Update is answered with status 135 and the node resynchronises.
    lab.session.kill_daemon(K).expect("kill K");
    let bul = lab.out.path().join("state").join(K).join("bul.json");
    let mut list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bul).expect("bul.json")).unwrap();
    let stale = (seq1 + 65536 - 1000) % 65536;
    list["clients"][0]["next_sequence"] = stale.into();
    std::fs::write(&bul, list.to_string()).unwrap();
    lab.session.restart_daemon(K).expect("restart K");
    lab.wait_registered();
    lab.eventually("the resynchronised binding", || {
        lab.client_binding().is_some_and(|(_, s)| s != seq1) && lab.k_bound()
    });
    let k = lab.ctl(K, "status");
    assert!(
        k["route_optimization"]["resyncs"].as_u64().unwrap() >= 1,
        "{k:#}"
    );
    let c = lab.ctl(C, "status");
    assert!(
        c["drops"]["sequence_out_of_window"].as_u64().unwrap() >= 1,
        "{c:#}"
    );

    // A clean stop deregisters at the client (and the home agent).
    let st = lab
        .session
        .stop_daemon(K, Duration::from_secs(8))
        .expect("stop K");
    assert!(st.success(), "{st}");
    assert!(
        lab.client_binding().is_none(),
        "binding left after the deregistration"
    );
    assert!(lab.ctl(C, "status")["deregistrations"].as_u64().unwrap() >= 1);

    // Without its list, the restarted node starts from a random number;
    // the client (which forgot the deleted binding) accepts it, and if it
    // still had one a 135 would resynchronise it.
    assert!(bul.exists(), "{} missing", bul.display());
    std::fs::remove_file(&bul).unwrap();
    lab.session.restart_daemon(K).expect("restart K");
    lab.wait_registered();
    let mut c2 = lab.connect();
    c2.round_trip(64).expect("echo");
    lab.wait_route_optimized();
    c2.round_trip(64).expect("echo after route optimization");
    c2.close().expect("close");
}

fn ha_bindings(lab: &DaemonLab) -> Vec<(String, String, u64, u64)> {
    lab.ctl(HA, "bindings")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["hoa"].as_str().unwrap().to_string(),
                b["coa"].as_str().unwrap().to_string(),
                b["spi"].as_u64().unwrap(),
                b["sequence"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn ip(ns: &str, args: &[&str]) -> String {
    let o = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .expect("ip");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn home_agent_restart_loses_no_registration() {
    require_root!("home_agent_restart_loses_no_registration");
    // No route optimization: all traffic keeps going through the HA.
    let mut lab = DaemonLab::start(
        "harestart",
        topology(1.0, &[(K, "[route_optimization]\nenabled = false\n")]),
    );
    let mut conn = lab.connect();
    conn.round_trip(64).expect("echo through the HA");
    let before = ha_bindings(&lab);
    assert_eq!(before.len(), 1, "{before:?}");

    lab.session.kill_daemon(HA).expect("kill HA");
    lab.session.restart_daemon(HA).expect("restart HA");
    lab.eventually("the restarted home agent", || {
        lab.session.ctl(HA, "status").is_ok()
    });
    assert_eq!(
        ha_bindings(&lab),
        before,
        "registration changed across the restart"
    );
    let s = lab.ctl(HA, "status");
    assert_eq!(s["restored_at_start"], 1, "{s:#}");
    let b = &lab.ctl(HA, "bindings")[0];
    assert_eq!(b["tunnel_installed"], true, "{b:#}");
    // The same connection and a new one work through the restored tunnel,
    // without the contact node registering again.
    for _ in 0..5 {
        conn.round_trip(256)
            .expect("echo on the old connection after the restart");
    }
    let mut fresh = lab.connect();
    fresh.round_trip(64).expect("echo on a new connection");
    let s = lab.ctl(HA, "status");
    assert_eq!(
        s["accepted"], 0,
        "the contact node had to register again: {s:#}"
    );
    assert!(lab.client_binding().is_none());
    fresh.close().expect("close");
    conn.close().expect("close");

    // A clean stop: exit 0, steering gone, registrations kept on disk.
    let ns = lab.session.lab.ns("HA").unwrap().to_string();
    assert!(ip(&ns, &["link", "show"]).contains("mip0"));
    let st = lab
        .session
        .stop_daemon(HA, Duration::from_secs(5))
        .expect("stop HA");
    assert!(st.success(), "{st}");
    assert!(!ip(&ns, &["link", "show"]).contains("mip0"), "TUN left");
    let rules = ip(&ns, &["-6", "rule", "show"]);
    assert!(
        !rules.contains("1000:") && !rules.contains("1001:"),
        "rules left: {rules}"
    );
    assert!(
        ip(&ns, &["-6", "route", "show", "table", "100"])
            .trim()
            .is_empty()
    );
    let store = lab.out.path().join("state").join(HA).join("bindings.json");
    let text = std::fs::read_to_string(&store).unwrap();
    assert!(text.contains("2001:db8:100::1"), "{text}");
}
