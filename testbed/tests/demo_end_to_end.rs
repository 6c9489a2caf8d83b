//! `testbed demo` end to end (needs root): the real daemons in the demo
//! lab; TCP echo to X through the home agent, then route optimization:
//! the client's packets to X carry a Type 2 Routing Header and go straight
//! to the contact node, its answers a Home Address option, and no data
//! crosses the home agent's link any more. The report's contract and the
//! captures are checked; so is the `testbed demo` command's exit status.

mod daemon_support;

use daemon_support::{TempDir, family, require_binaries, rh2_hao_frames};
use mip6_anycast::require_root;
use testbed::lab::LabOptions;
use testbed::scenarios::demo::{self, DemoOptions};

#[test]
fn demo_reaches_x_through_the_home_agent_then_route_optimized() {
    require_root!("demo_reaches_x_through_the_home_agent_then_route_optimized");
    require_binaries();
    let out = TempDir::new("demo");
    let mut opts = DemoOptions::new(out.path());
    opts.base.lab = LabOptions {
        family: family("demo"),
        ..Default::default()
    };
    let r = demo::run(&opts, None).expect("the demo runs");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert!(r.passed(), "demo failed: {:?}\n{json:#}", r.errors);
    // The output contract.
    for key in [
        "tcp_via_home_agent_ok",
        "route_optimized",
        "packets_via_ha_after_ro",
        "rtt_via_ha_ms",
        "rtt_ro_ms",
        "bu_accepted",
        "errors",
    ] {
        assert!(json.get(key).is_some(), "report.json lacks {key}");
    }
    assert_eq!(json["tcp_via_home_agent_ok"], true);
    assert_eq!(json["route_optimized"], true);
    assert_eq!(json["packets_via_ha_after_ro"], 0);
    assert!(r.bu_accepted >= 1);
    // The direct path is 2 x 10 ms shorter one way than the detour.
    let (via, ro) = (r.rtt_via_ha_ms.unwrap(), r.rtt_ro_ms.unwrap());
    assert!(
        ro < via,
        "route-optimized RTT {ro} ms not below {via} ms via the HA"
    );
    assert!(r.rtt_ro_new_connection_ms.unwrap() < via);
    assert_eq!(
        (r.expected_rtt_via_ha_ms, r.expected_rtt_ro_ms),
        (Some(50.0), Some(30.0))
    );
    for (d, status) in &r.daemon_exits {
        assert_eq!(status, "exit status: 0", "{d}");
    }
    // Every capture verified; the HA link saw tunnelled traffic before RO.
    assert_eq!(r.captures.len(), 3);
    for c in &r.captures {
        assert!(c.clean(), "{c:?}");
    }
    let ha = r.captures.iter().find(|c| c.link == "r-ha").unwrap();
    assert!(
        ha.tunnelled > 0,
        "nothing went through the home agent: {ha:?}"
    );
    assert!(
        ha.mobility.get("bu").copied().unwrap_or(0) >= 1,
        "home registration BU"
    );
    if r.mip6_inspect.ran {
        assert_eq!(r.mip6_inspect.ok, Some(true), "{}", r.mip6_inspect.note);
    }
    if r.tshark.ran {
        assert_eq!(r.tshark.ok, Some(true), "{}", r.tshark.note);
    }
    // On the client's link: RH2 C -> CoA_K and HAO CoA_K -> C, both for X.
    let (c, k, x) = (
        "2001:db8:1::10".parse().unwrap(),
        "2001:db8:3::10".parse().unwrap(),
        "2001:db8:100::1".parse().unwrap(),
    );
    let (rh2, hao) = rh2_hao_frames(&out.path().join("pcap/c-r.pcap"), c, k, x);
    assert!(rh2 >= 20 && hao >= 20, "RH2 frames {rh2}, HAO frames {hao}");
    let (rh2_ha, hao_ha) = rh2_hao_frames(&out.path().join("pcap/r-ha.pcap"), c, k, x);
    assert_eq!(
        (rh2_ha, hao_ha),
        (0, 0),
        "route-optimized packets on the HA link"
    );
}

#[test]
fn demo_command_exit_status_follows_the_outcome() {
    require_root!("demo_command_exit_status_follows_the_outcome");
    require_binaries();
    let Some(testbed) = testbed::lab::find_workspace_binary("testbed") else {
        panic!("testbed binary not built");
    };
    // A topology whose contact node never route-optimizes: the demo must
    // fail (and say why) with a non-zero exit status.
    let out = TempDir::new("demofail");
    let mut t: toml::Table = demo::DEMO_TOPOLOGY.parse().unwrap();
    let daemons = t["daemon"].as_array_mut().unwrap();
    let k = daemons
        .iter_mut()
        .find(|d| d["kind"].as_str() == Some("contact-node"))
        .unwrap();
    k["config"]["route_optimization"]
        .as_table_mut()
        .unwrap()
        .insert("enabled".into(), toml::Value::Boolean(false));
    let topo = out.path().join("no-ro.toml");
    std::fs::write(&topo, toml::to_string(&t).unwrap()).unwrap();
    let st = std::process::Command::new(testbed)
        .args([
            "--family",
            &family("demox"),
            "demo",
            "--samples",
            "3",
            "--ro-timeout",
            "3",
            "--out",
        ])
        .arg(out.path().join("run"))
        .arg("--topology")
        .arg(&topo)
        .output()
        .unwrap();
    assert!(
        !st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("run/report.json")).unwrap())
            .unwrap();
    assert_eq!(r["tcp_via_home_agent_ok"], true, "{r:#}");
    assert_eq!(r["route_optimized"], false);
    assert!(!r["errors"].as_array().unwrap().is_empty());
}
