//! Refresh before expiry with the real daemons (needs root), on short
//! lifetimes: the contact node refreshes its binding at the client and its
//! home registration before they expire, so the client's binding never
//! goes away while a connection keeps using it; and a Binding Refresh
//! Request from the client is answered with a Binding Update.

mod daemon_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use daemon_support::{C, DaemonLab, K, topology};
use mip6_anycast::require_root;

/// Lifetimes are multiples of 4 s on the wire (RFC 6275 6.1.7); the
/// client's cache keeps whole seconds and may end a binding up to 1 s
/// early, so 8 s leaves the 80 % refresh (6.4 s) clear of it.
const SHORT: &str = "[anycast]\nlifetime_s = 4\n[route_optimization]\ndelay_s = 0.0\nlifetime_s = 8\npeer_scan_s = 0.2\n";

#[test]
fn bindings_and_home_registration_are_refreshed_before_expiry() {
    require_root!("bindings_and_home_registration_are_refreshed_before_expiry");
    let lab = DaemonLab::start(
        "refresh",
        topology(
            1.0,
            &[
                (K, SHORT),
                (C, "[correspondent]\nbrr_lead_s = 0\nusage_poll_s = 0.2\n"),
            ],
        ),
    );
    let mut conn = lab.connect();
    let (coa, _) = lab.wait_route_optimized();
    assert_eq!(coa, lab.k_coa());
    // 9 s of traffic: longer than the first binding (8 s) would live.
    let t0 = Instant::now();
    let mut seqs = BTreeSet::new();
    while t0.elapsed() < Duration::from_secs(9) {
        conn.round_trip(128).expect("echo while refreshing");
        match lab.client_binding() {
            Some((c, s)) => {
                assert_eq!(c, coa);
                seqs.insert(s);
            }
            None => panic!(
                "the client's binding went away after {:?}\n{}",
                t0.elapsed(),
                lab.log_tail(K)
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    conn.close().expect("close");
    assert!(seqs.len() >= 2, "no refresh seen: sequences {seqs:?}");
    let c = lab.ctl(C, "status");
    assert_eq!(c["expired"], 0, "{c:#}");
    assert!(c["bu_accepted"].as_u64().unwrap() >= 2, "{c:#}");
    assert_eq!(c["fallback"]["dropped"], serde_json::json!({}), "{c:#}");
    let k = lab.ctl(K, "status");
    // Registered at 0 and refreshed every 3.2 s.
    assert!(
        k["home_registration"]["ba_accepted"].as_u64().unwrap() >= 3,
        "{k:#}"
    );
    assert_eq!(k["home_registration"]["registered"], true);
    assert_eq!(k["route_optimization"]["brr_received"], 0);
}

#[test]
fn binding_refresh_request_is_answered() {
    require_root!("binding_refresh_request_is_answered");
    let lab = DaemonLab::start(
        "brr",
        topology(
            1.0,
            &[
                (K, SHORT),
                // First BRR 6 s before expiry: 2 s into an 8 s binding,
                // well before the contact node's own refresh.
                (C, "[correspondent]\nbrr_lead_s = 6\nusage_poll_s = 0.2\n"),
            ],
        ),
    );
    let mut conn = lab.connect();
    let (_, first) = lab.wait_route_optimized();
    let t0 = Instant::now();
    let mut refreshed = None;
    while t0.elapsed() < Duration::from_secs(6) && refreshed.is_none() {
        conn.round_trip(64).expect("echo");
        if lab.client_binding().is_some_and(|(_, s)| s != first) {
            refreshed = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let at = refreshed.expect("the binding was not refreshed");
    assert!(
        at < Duration::from_millis(5500),
        "refreshed only after {at:?}"
    );
    let c = lab.ctl(C, "status");
    let k = lab.ctl(K, "status");
    assert!(c["brr_sent"].as_u64().unwrap() >= 1, "{c:#}");
    assert!(
        k["route_optimization"]["brr_received"].as_u64().unwrap() >= 1,
        "{k:#}"
    );
    assert_eq!(c["fallback"]["dropped"], serde_json::json!({}), "{c:#}");
    conn.close().expect("close");
}
