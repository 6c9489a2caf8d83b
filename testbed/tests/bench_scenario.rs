//! `testbed bench` in a real lab (needs root and iperf3): every path is
//! measured in one run; the home agent path really crosses the home
//! agent's engine and the route-optimized one does not; bench.json carries
//! the ratios to the direct path and bench.png is a PNG. Short runs
//! (1 s, one stream): this checks the scenario, not the speed.

mod daemon_support;

use daemon_support::{TempDir, family, require_binaries};
use mip6_anycast::require_root;
use testbed::lab::LabOptions;
use testbed::scenarios::bench::{self, BenchOptions};

#[test]
fn bench_measures_every_path_in_one_run() {
    require_root!("bench_measures_every_path_in_one_run");
    require_binaries();
    let out = TempDir::new("bench");
    let mut opts = BenchOptions::new(out.path());
    opts.seconds = 1.0;
    opts.streams = vec![1, 2];
    opts.pings = 5;
    opts.base.lab = LabOptions {
        family: family("bench"),
        ..Default::default()
    };
    let r = bench::run(&opts, None).expect("the bench runs");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("bench.json")).unwrap()).unwrap();
    assert!(r.passed(), "bench failed: {:?}\n{json:#}", r.errors);
    for key in [
        "ro_ratio",
        "ha_ratio",
        "forward_ratio",
        "ha_to_forward_ratio",
    ] {
        let v = json[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {json:#}"));
        assert!(v > 0.0 && v.is_finite(), "{key} = {v}");
    }
    assert_eq!(json["ratios"]["2"].as_object().map(|m| m.len()), Some(4));
    assert_eq!(json["route_optimized_checked"], true);
    for path in ["direct", "kernel_forward", "home_agent", "route_optimized"] {
        let p = &json["paths"][path];
        assert!(
            p["rtt_ms"].as_f64().is_some_and(|v| v > 0.0),
            "{path}: {p:#}"
        );
        for n in ["1", "2"] {
            let t = &p["tcp"][n];
            assert!(
                t["gbit_s"].as_f64().is_some_and(|g| g > 0.0),
                "{path}/{n}: {t:#}"
            );
            assert!(t["bytes"].as_u64().is_some_and(|b| b > 0));
            assert!(t["machine_cpu_s_per_gb"].as_f64().is_some());
        }
    }
    // The home agent's engine carried the home agent path, not the others.
    let ha_pkts = |path: &str| {
        json["paths"][path]["tcp"]["1"]["ha_engine_packets"]
            .as_u64()
            .unwrap()
    };
    assert!(ha_pkts("home_agent") > 1000, "{json:#}");
    assert!(ha_pkts("route_optimized") < 1000, "{json:#}");
    assert!(ha_pkts("direct") < 100, "{json:#}");
    let png = std::fs::read(out.path().join("bench.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
