//! The lowest-RTT policy with real measurements (needs root): a third
//! member B joins the handoff lab behind a 15 ms link, every member
//! measures its RTT to the client (ICMPv6 Echo from its care-of address)
//! and reports it, and `ctl handoff` with `"policy": "lowest_rtt"` at the
//! contact node hands the client to the nearer acceptor A, not to B.

mod daemon_support;
mod handoff_support;

use std::net::Ipv6Addr;

use handoff_support::{
    A, CLIENT, COA_A, COA_K, HandoffLab, K, STREAM_PORT, daemon_config, topology,
};
use mip6_anycast::require_root;
use mip6_anycast::testsvc::ClientConfig;
use serde_json::json;

const B: &str = "contact-node-B";
const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0x10);

fn member(name: &str, coa: Ipv6Addr) -> toml::Value {
    let mut m = toml::Table::new();
    m.insert("name".into(), name.into());
    m.insert("care_of_address".into(), coa.to_string().into());
    m.insert("roles".into(), toml::Value::Array(vec!["acceptor".into()]));
    toml::Value::Table(m)
}

/// The handoff lab plus member B on its own link R-B (15 ms one way).
fn with_member_b(t: &mut toml::Table) {
    let extra: toml::Table = format!(
        r#"
        [[host]]
        name = "B"
        kind = "host"
        lo = ["2001:db8:100::1/128"]

        [[link]]
        name = "r-b"
        a = "R"
        b = "B"
        kind = "emulated"
        delay_ms = 15.0
        a_addr = ["2001:db8:5::1/64"]
        b_addr = ["{COA_B}/64"]

        [[route]]
        host = "B"
        dst = "default"
        via = "2001:db8:5::1"
        "#
    )
    .parse()
    .expect("extra TOML");
    for key in ["host", "link", "route"] {
        let add = extra[key].as_array().expect("array").clone();
        t[key].as_array_mut().expect("array").extend(add);
    }
    // B runs A's configuration with its own name and care-of address.
    let mut b_daemon = t["daemon"]
        .as_array()
        .expect("daemons")
        .iter()
        .find(|d| d["host"].as_str() == Some("A"))
        .expect("A's daemon")
        .clone();
    b_daemon["host"] = "B".into();
    {
        let c = b_daemon["config"].as_table_mut().expect("config");
        c["anycast"]["care_of_address"] = COA_B.to_string().into();
        c["group"]["me"] = "B".into();
    }
    t["daemon"].as_array_mut().expect("daemons").push(b_daemon);
    for host in ["K", "A", "B"] {
        let g = daemon_config(t, host)["group"]
            .as_table_mut()
            .expect("group");
        g["member"]
            .as_array_mut()
            .expect("members")
            .push(member("B", COA_B));
    }
}

fn rtt_to_client(lab: &HandoffLab, daemon: &str) -> Option<u64> {
    lab.ctl(daemon, "group")["rtt_us"][CLIENT.to_string()].as_u64()
}

#[test]
fn lowest_rtt_policy_picks_the_nearer_acceptor_from_measured_rtts() {
    require_root!("lowest_rtt_policy_picks_the_nearer_acceptor_from_measured_rtts");
    let lab = HandoffLab::start("hpolicy", topology(with_member_b));
    lab.eventually("the node channel K-B", || {
        lab.ctl(K, "group")["connected"]
            .as_array()
            .is_some_and(|c| c.iter().any(|p| p["name"] == "B"))
    });
    let client = lab.client(None, STREAM_PORT, ClientConfig::default());
    lab.wait_bound(CLIENT, COA_K);
    // K measures its own client and reports it; A and B learn the client
    // from K's report and measure it too.
    let (mut a, mut b) = (None, None);
    lab.eventually("RTTs to the client from A and B", || {
        a = rtt_to_client(&lab, A);
        b = rtt_to_client(&lab, B);
        a.is_some() && b.is_some()
    });
    let (a, b) = (a.unwrap(), b.unwrap());
    // C-R 2 ms each way; B is 15 ms further each way.
    assert!(a < 15_000, "A's RTT {a} us");
    assert!(
        b > a + 20_000,
        "B's RTT {b} us is not 30 ms above A's {a} us"
    );
    // Their next load reports carry the figures to K.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let r = lab
        .ctl_args(
            K,
            "handoff",
            json!({"client": CLIENT.to_string(), "policy": "lowest_rtt"}),
        )
        .expect("ctl handoff with a policy");
    let id = r["id"].as_u64().expect("handoff id");
    lab.wait_bound(CLIENT, COA_A);
    let started = lab.ctl(K, "handoffs");
    let to = started
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|e| e["id"].as_u64() == Some(id) && e["event"] == "started")
        })
        .and_then(|e| e["to"].as_str().map(str::to_string));
    assert_eq!(to.as_deref(), Some("A"), "{started:#}");
    assert_ne!(lab.bindings().get(&CLIENT).map(|b| b.0), Some(COA_B));
    let stopped = lab.stop_client(client);
    assert!(stopped.report.is_clean(), "{:?}", stopped.report);
}

/// A crashed acceptor (its daemon killed after it took the client): the
/// contact node learns it from the node channel, deletes the client's
/// binding through the home path, and the client reaches X through the
/// home agent again, where new connections work.
#[test]
fn client_of_a_crashed_acceptor_recovers_through_the_home_path() {
    require_root!("client_of_a_crashed_acceptor_recovers_through_the_home_path");
    let lab = HandoffLab::start("hcrash", topology(|_| {}));
    let client = lab.client(None, STREAM_PORT, ClientConfig::default());
    lab.wait_bound(CLIENT, COA_K);
    lab.handoff(K, CLIENT);
    lab.wait_bound(CLIENT, COA_A);
    lab.session.kill_daemon(A).expect("kill A's daemon");
    // The binding to the dead acceptor goes away (de-registration through
    // the home agent) ...
    lab.eventually("the client's binding to A removed", || {
        lab.bindings().get(&CLIENT).map(|b| b.0) != Some(COA_A)
    });
    drop(client);
    // ... and a new connection to X works through the home path (or a new
    // route optimization to K).
    let fresh = lab.client(None, STREAM_PORT, ClientConfig::default());
    lab.eventually("data on a new connection after the crash", || {
        fresh.report().received > 100_000
    });
    let stopped = lab.stop_client(fresh);
    assert!(stopped.report.is_clean(), "{:?}", stopped.report);
}
