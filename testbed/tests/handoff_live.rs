//! Live client handoff between the members K and A of X's anycast group in
//! the handoff lab (needs root): the real daemons, the sequence-checked
//! test stream on `[X]:9000` with data in flight both ways, every byte
//! checked at both ends (the server closes on a wrong byte, the client
//! counts mismatches), and the kernels' TCP reset counters (`OutRsts`,
//! `EstabResets` of C, K and A) unchanged.
//!
//! - one connection handed K -> A -> K, C's binding following it;
//! - 100 handoffs in a row on one long-lived connection;
//! - a drain of a member serving 20 clients (20 addresses on C).

mod daemon_support;
mod handoff_support;

use std::net::Ipv6Addr;
use std::time::Instant;

use handoff_support::{
    A, CLIENT, COA_A, COA_K, HandoffLab, K, STREAM_PORT, daemon_config, topology,
};
use mip6_anycast::require_root;
use mip6_anycast::testsvc::{ClientConfig, TestClient};
use serde_json::json;

fn stream(seed: u64, rate: u64) -> ClientConfig {
    ClientConfig {
        seed,
        up_rate: rate,
        down_rate: rate,
        max_rx_samples: 1_000_000,
    }
}

/// Asserts that the client is clean and still receiving.
fn assert_flowing(lab: &HandoffLab, what: &str, c: &TestClient) {
    let before = c.report();
    assert!(before.is_clean(), "{what}: {before:?}");
    lab.eventually(&format!("{what}: bytes flowing"), || {
        let r = c.report();
        r.received > before.received + 10_000 && r.is_clean()
    });
}

#[test]
fn handoff_with_data_in_flight_both_ways() {
    require_root!("handoff_with_data_in_flight_both_ways");
    let lab = HandoffLab::start("hlive", topology(|_| {}));
    let c = lab.client(None, STREAM_PORT, stream(11, 2 << 20));
    lab.wait_bound(CLIENT, COA_K);
    assert_flowing(&lab, "before the handoffs", &c);
    let t0 = c.started().elapsed();
    let before = lab.resets();

    let there = lab.handoff(K, CLIENT);
    assert_flowing(&lab, "at A", &c);
    assert_eq!(lab.frozen_connections(K, there), Some(1));
    let at_a = lab.events(A, there);
    for e in ["accepted", "restored", "activated"] {
        assert!(at_a.iter().any(|x| x == e), "A's log of {there}: {at_a:?}");
    }
    assert!(lab.served(A).contains(&CLIENT), "A does not serve C");
    assert!(!lab.served(K).contains(&CLIENT), "K still serves C");
    let seq_a = lab.bindings()[&CLIENT].1;

    let back = lab.handoff(A, CLIENT);
    assert_flowing(&lab, "back at K", &c);
    let at_k = lab.events(K, back);
    assert!(at_k.iter().any(|x| x == "activated"), "K's log: {at_k:?}");
    let (coa, seq_k) = lab.bindings()[&CLIENT];
    assert_eq!(coa, COA_K);
    assert!(seq_k > seq_a, "sequence numbers {seq_a} then {seq_k}");
    let stall = c.longest_gap_within(t0, c.started().elapsed());
    lab.resets().assert_silent_since(&before, 1, 1);

    let s = lab.stop_client(c);
    assert!(s.report.is_clean(), "{:?}", s.report);
    assert_eq!(s.report.mismatches, 0);
    // Both ways ran at 2 MB/s throughout: well over a second of data.
    assert!(
        s.report.sent > 2 << 20 && s.report.received > 2 << 20,
        "{:?}",
        s.report
    );
    eprintln!(
        "K->A->K with 2 MB/s each way: sent {} received {} longest stall {stall:?}",
        s.report.sent, s.report.received
    );
    lab.session.stop();
}

#[test]
fn hundred_handoffs_on_one_connection_without_a_reset() {
    require_root!("hundred_handoffs_on_one_connection_without_a_reset");
    let lab = HandoffLab::start("hhundred", topology(|_| {}));
    let c = lab.client(None, STREAM_PORT, stream(12, 1 << 20));
    lab.wait_bound(CLIENT, COA_K);
    assert_flowing(&lab, "before the handoffs", &c);
    let before = lab.resets();
    let started = Instant::now();
    let mut donor = K;
    for i in 0..100 {
        lab.handoff(donor, CLIENT);
        let r = c.report();
        assert!(r.is_clean(), "after handoff {i} from {donor}: {r:?}");
        donor = if donor == K { A } else { K };
    }
    let took = started.elapsed();
    assert_flowing(&lab, "after 100 handoffs", &c);
    lab.resets().assert_silent_since(&before, 50, 50);
    let s = lab.stop_client(c);
    assert!(s.report.is_clean(), "{:?}", s.report);
    eprintln!(
        "100 handoffs in {took:?}; sent {} received {} longest gap {:?}",
        s.report.sent, s.report.received, s.report.longest_gap
    );
    lab.session.stop();
}

/// The 20 client addresses on C: 2001:db8:1::10 and ::100 .. ::112.
fn client_addresses() -> Vec<Ipv6Addr> {
    std::iter::once(CLIENT)
        .chain((0x100..0x113).map(|h| Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, h)))
        .collect()
}

#[test]
fn drain_moves_twenty_clients_without_a_reset() {
    require_root!("drain_moves_twenty_clients_without_a_reset");
    let addrs = client_addresses();
    let topo = topology(|t| {
        let cr = t["link"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|l| l["name"].as_str() == Some("c-r"))
            .unwrap();
        cr["a_addr"] = toml::Value::Array(
            addrs
                .iter()
                .map(|a| toml::Value::String(format!("{a}/64")))
                .collect(),
        );
        daemon_config(t, "C")["correspondent"]["addresses"] = toml::Value::Array(
            addrs
                .iter()
                .map(|a| toml::Value::String(a.to_string()))
                .collect(),
        );
    });
    let lab = HandoffLab::start("hdrain", topo);
    let clients: Vec<TestClient> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| lab.client(Some(*a), STREAM_PORT, stream(100 + i as u64, 100_000)))
        .collect();
    for a in &addrs {
        lab.wait_bound(*a, COA_K);
    }
    // All 20 to A first (the contact node's own handoffs) ...
    let before = lab.resets();
    let ids: Vec<u64> = addrs.iter().map(|a| lab.start_handoff(K, *a)).collect();
    for id in ids {
        lab.wait_completed(K, id);
    }
    for a in &addrs {
        lab.wait_bound(*a, COA_A);
    }
    lab.eventually("A serving the 20 clients", || lab.served(A).len() == 20);
    for (i, c) in clients.iter().enumerate() {
        assert_flowing(&lab, &format!("client {i} at A"), c);
    }
    // ... then A leaves: every client goes back to K.
    let drained = lab.ctl_args(A, "drain", json!({})).expect("drain at A");
    assert_eq!(drained["clients"], 20, "{drained}");
    for a in &addrs {
        lab.wait_bound(*a, COA_K);
    }
    lab.eventually("K serving the 20 clients, A none", || {
        lab.served(K).len() == 20 && lab.served(A).is_empty()
    });
    let group = lab.ctl(A, "group");
    assert_eq!(group["in_progress"], json!({"donating": 0, "accepting": 0}));
    for (i, c) in clients.iter().enumerate() {
        assert_flowing(&lab, &format!("client {i} back at K"), c);
    }
    lab.resets().assert_silent_since(&before, 20, 20);
    for (i, c) in clients.into_iter().enumerate() {
        let s = lab.stop_client(c);
        assert!(s.report.is_clean(), "client {i}: {:?}", s.report);
        assert!(s.report.received > 0 && s.report.sent > 0);
    }
    // The drain shows in A's log as completed handoffs.
    let log = lab.ctl(A, "handoffs");
    let completed = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "completed")
        .count();
    assert_eq!(completed, 20, "A's handoff log: {log:#}");
    lab.session.stop();
}
