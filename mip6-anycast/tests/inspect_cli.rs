//! The `mip6-inspect` binary: `--json` output equals the library's report
//! and matches the expected verdicts of both inspect captures; the text
//! form has one line per packet; exit codes 0 / 1 (`--strict`) / 2.
#![cfg(feature = "engine")]

mod inspect_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use inspect_common::{assert_verdicts, inspect, load, report_json, testdata};
use serde_json::Value;

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mip6-inspect"))
        .args(args)
        .output()
        .unwrap()
}

fn run_paths(flags: &[&str], files: &[&Path]) -> Output {
    let mut a: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
    a.extend(files.iter().map(|p| p.as_os_str()));
    run(&a)
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// A scratch file removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!("mip6-inspect-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn json_matches_expected_verdicts_and_library() {
    for (cap, expected) in [
        ("inspect_capture.pcap", "inspect_expected.json"),
        ("inspect_scapy.pcap", "inspect_scapy_expected.json"),
        ("inspect_scapy.pcapng", "inspect_scapy_expected.json"),
    ] {
        let path = testdata(cap);
        let o = run_paths(&["--json"], &[&path]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{cap}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v = json_of(&o);
        let files = v.as_array().unwrap();
        assert_eq!(files.len(), 1);
        let ex = load(expected);
        assert_verdicts(
            files[0]["packets"].as_array().unwrap(),
            ex["packets"].as_array().unwrap(),
            cap,
        );
        assert_eq!(files[0], report_json(&inspect_common::inspect(cap)));
    }
}

#[test]
fn several_files_in_one_array_and_text_lines() {
    let a = testdata("inspect_capture.pcap");
    let b = testdata("mip6_fixtures_eth.pcap");
    let v = json_of(&run_paths(&["--json"], &[&a, &b]));
    let files = v.as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[1]["link_type"], 1);
    assert_eq!(files[1]["format"], "pcap");
    let n = files[1]["packets"].as_array().unwrap().len();
    assert_eq!(n, inspect("mip6_fixtures_eth.pcap").packets.len());

    let o = run_paths(&[], &[&a]);
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9);
    assert!(lines[4].starts_with("#4 1700000000.004000000 2001:db8:2::100 > 2001:db8:3::10 HAO(2001:db8:1::100) MH BU seq=4096"), "{}", lines[4]);
    assert!(lines[4].ends_with("checksum=ok auth=ok"), "{}", lines[4]);
    assert!(lines[5].ends_with("checksum=ok auth=BAD"), "{}", lines[5]);
    assert!(lines[7].ends_with("auth=?"), "{}", lines[7]);
    assert!(
        lines[8].contains("TRUNCATED(80/96) MALFORMED: truncated IPv6 payload"),
        "{}",
        lines[8]
    );
    assert!(
        lines[0].contains("IP6IP6[2001:db8:1::100 > 2001:db8:3::10 MH HoTI"),
        "{}",
        lines[0]
    );
}

#[test]
fn exit_codes() {
    let bad = testdata("inspect_capture.pcap");
    assert_eq!(run_paths(&[], &[&bad]).status.code(), Some(0));
    assert_eq!(run_paths(&["--strict"], &[&bad]).status.code(), Some(1));
    assert_eq!(
        run_paths(&["--strict", "--json"], &[&bad]).status.code(),
        Some(1)
    );

    // Only the valid packets of the capture: --strict passes.
    let data = std::fs::read(&bad).unwrap();
    let clean = Scratch::new("clean.pcap", &first_records(&data, 5));
    assert_eq!(run_paths(&["--strict"], &[&clean.0]).status.code(), Some(0));

    // Not a capture, a missing file, an empty file: 2 (and other files
    // are still inspected).
    let junk = Scratch::new("junk.pcap", b"this is not a capture file at all");
    let empty = Scratch::new("empty.pcap", b"");
    let missing = std::env::temp_dir().join("mip6-inspect-no-such-file.pcap");
    for f in [&junk.0, &empty.0, &missing] {
        let o = run_paths(&["--json"], &[f, &clean.0]);
        assert_eq!(o.status.code(), Some(2), "{}", f.display());
        assert!(!o.stderr.is_empty());
        assert_eq!(json_of(&o).as_array().unwrap().len(), 1);
    }

    // A file that ends inside a record: read (0), but --strict fails.
    let cut = Scratch::new("cut.pcap", &data[..data.len() - 10]);
    let o = run_paths(&["--json"], &[&cut.0]);
    assert_eq!(o.status.code(), Some(0));
    let v = json_of(&o);
    assert!(
        v[0]["capture_error"]
            .as_str()
            .unwrap()
            .starts_with("file ends inside pcap record"),
        "{v}"
    );
    assert_eq!(v[0]["packets"].as_array().unwrap().len(), 8);
    let clean_cut = Scratch::new("cleancut.pcap", &first_records(&data, 5)[..200]);
    assert_eq!(
        run_paths(&["--strict"], &[&clean_cut.0]).status.code(),
        Some(1)
    );

    // Standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mip6-inspect"))
        .args(["--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json_of(&o)[0]["packets"].as_array().unwrap().len(), 9);

    // No file at all: usage error from clap (2).
    assert_eq!(run(&[]).status.code(), Some(2));
}

/// The pcap file header and its first `n` records.
fn first_records(pcap: &[u8], n: usize) -> Vec<u8> {
    let mut at = 24;
    for _ in 0..n {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + len;
    }
    pcap[..at].to_vec()
}
