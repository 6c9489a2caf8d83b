//! `testbed sweep handoff` on one small cell (needs root): every row is
//! a real handoff K -> A of a live, sequence-checked TCP stream with data
//! both ways; the CSV follows the output contract, no connection is reset,
//! every byte is verified, each row has a measured handoff delay, and the
//! summary and the figure are written. (Whether the medians meet the
//! papers' delays is the sweep's own verdict, reported, not asserted here:
//! CI machines are loaded.)

mod daemon_support;

use daemon_support::{TempDir, family, require_binaries};
use mip6_anycast::require_root;
use testbed::lab::LabOptions;
use testbed::scenarios::sweep::{self, SweepOptions};

#[test]
fn sweep_hands_a_live_stream_off_and_back_with_bytes_verified() {
    require_root!("sweep_hands_a_live_stream_off_and_back_with_bytes_verified");
    require_binaries();
    let out = TempDir::new("sweep");
    let mut opts = SweepOptions::new(out.path());
    opts.lcs = vec![5.0];
    opts.lss = vec![2.0];
    opts.reps = 2;
    opts.base.lab = LabOptions {
        family: family("sweep"),
        ..Default::default()
    };
    let s = sweep::run(&opts, None).expect("the sweep runs");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let csv = std::fs::read_to_string(out.path().join("handoff.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("lcs_ms,lss_ms,rep,kind,handoff_ms,stall_ms,retransmits,resets,bytes_verified")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[3], if i % 2 == 0 { "first" } else { "cached" }, "{csv}");
        let handoff: f64 = r[4].parse().unwrap();
        assert!(handoff.is_finite() && handoff > 0.0, "row {i}: {csv}");
        assert_eq!(r[7], "0", "resets in row {i}: {csv}");
        assert_eq!(r[8], "true", "bytes not verified in row {i}: {csv}");
    }
    // The delay cannot beat physics: the Prepare (Lss) plus BU and BA
    // (2 Lcs) at least.
    for r in &rows {
        let h: f64 = r[4].parse().unwrap();
        assert!(
            h >= 2.0 + 2.0 * 5.0,
            "{h} ms is faster than the signaling allows: {csv}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["cells"].as_array().map(Vec::len),
        Some(2),
        "{summary:#}"
    );
    eprintln!("sweep summary: {summary:#}");
    let png = std::fs::read(out.path().join("handoff.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
