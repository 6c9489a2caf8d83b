//! Helpers shared by the `inspect_*` integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use mip6_anycast::inspect::{self, CaptureReport};
use serde_json::Value;

/// A file in the repository's `testdata/`.
pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("testdata")
        .join(name)
}

/// Parses a JSON file of `testdata/`.
pub fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(testdata(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs the library over a capture of `testdata/`.
pub fn inspect(name: &str) -> CaptureReport {
    inspect::inspect_path(&testdata(name)).unwrap()
}

/// Decodes hex (test data only).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Asserts that the packet records (as JSON values) carry exactly the
/// verdicts of `expected` (`testdata/*_expected.json` "packets"): the same
/// count, and per packet index, mh_type, checksum_ok, malformed, and
/// authenticator_ok present with the same value (true/false/null) exactly
/// where expected.
pub fn assert_verdicts(packets: &[Value], expected: &[Value], label: &str) {
    assert_eq!(packets.len(), expected.len(), "{label}: packet count");
    for (p, e) in packets.iter().zip(expected) {
        let i = &e["index"];
        let what = e["what"].as_str().unwrap_or("");
        assert_eq!(&p["index"], i, "{label}");
        for k in ["mh_type", "checksum_ok", "malformed"] {
            assert_eq!(p[k], e[k], "{label} packet {i} ({what}): {k}; record {p}");
        }
        assert_eq!(
            p.get("authenticator_ok"),
            e.get("authenticator_ok"),
            "{label} packet {i} ({what}): authenticator_ok; note {}",
            p["authenticator_note"]
        );
    }
}

/// The report of the library as JSON (what `--json` prints per file).
pub fn report_json(r: &CaptureReport) -> Value {
    serde_json::to_value(r).unwrap()
}

/// Fails when `CI=true`, else prints a loud SKIP line: for tests that need
/// a tool the CI installs (`scripts/deps.sh`).
pub fn skip_or_fail(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {why}");
    }
    eprintln!("SKIP (needs {why})");
}
