//! The inspector on the scapy-built capture of `testdata/gen_inspect_scapy.py`
//! (valid and deliberately corrupted BUs and BAs after a Return
//! Routability exchange), in classic pcap and in pcapng with Linux cooked
//! framing and nanosecond timestamps: every verdict must match
//! `inspect_scapy_expected.json`. When scapy is present the generator is
//! re-run and must reproduce the committed files byte for byte.

mod inspect_common;

use std::process::Command;

use inspect_common::{assert_verdicts, inspect, load, report_json, skip_or_fail, testdata};
use mip6_anycast::inspect::CaptureFormat;

#[test]
fn scapy_capture_verdicts_in_pcap_and_pcapng() {
    let ex = load("inspect_scapy_expected.json");
    let base = ex["timestamp_base"].as_u64().unwrap();
    let expected = ex["packets"].as_array().unwrap();
    for (cap, format, link) in [
        ("inspect_scapy.pcap", CaptureFormat::Pcap, 101),
        ("inspect_scapy.pcapng", CaptureFormat::Pcapng, 113),
    ] {
        let r = inspect(cap);
        assert_eq!(r.format, format, "{cap}");
        assert_eq!(r.capture_error, None, "{cap}");
        assert_verdicts(
            report_json(&r)["packets"].as_array().unwrap(),
            expected,
            cap,
        );
        for (i, p) in r.packets.iter().enumerate() {
            assert_eq!(p.link_type, link, "{cap}");
            assert_eq!(p.timestamp, format!("{base}.{:03}000000", i), "{cap}");
        }
    }
    // The IPv4 packet is "not IPv6", which is not malformed.
    let r = inspect("inspect_scapy.pcapng");
    let v4 = &r.packets[24];
    assert_eq!(v4.not_ipv6.as_deref(), Some("IPv4"));
    assert!(v4.ipv6.is_none() && !v4.malformed);
}

#[test]
fn notes_say_why_a_verdict_is_null() {
    let r = inspect("inspect_scapy.pcap");
    let note = |i: usize| r.packets[i].authenticator_note.clone().unwrap();
    assert!(note(0).contains("no HoT"), "{}", note(0));
    assert!(
        note(9).contains("no CoT from 2001:db8:3::10 to 2001:db8:4::100"),
        "{}",
        note(9)
    );
    assert!(note(12).contains("home nonce index 2457"), "{}", note(12));
    assert!(note(17).contains("sequence 12288"), "{}", note(17));
    assert!(note(18).contains("de-registration"), "{}", note(18));
    // A de-registration authenticated over the care-of address: false, and
    // the note says so.
    assert!(
        note(25).contains("verifies over the care-of address 2001:db8:2::100"),
        "{}",
        note(25)
    );
}

#[test]
fn generator_reproduces_the_committed_capture() {
    let py = "/usr/bin/python3";
    let has_scapy = Command::new(py)
        .args(["-c", "import scapy.layers.inet6"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_scapy {
        skip_or_fail("Debian python3-scapy at /usr/bin/python3");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mip6-inspect-scapy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(py)
        .arg(testdata("gen_inspect_scapy.py"))
        .arg(&dir)
        .output()
        .unwrap();
    let files = [
        "inspect_scapy.pcap",
        "inspect_scapy.pcapng",
        "inspect_scapy_expected.json",
    ];
    let same: Vec<bool> = files
        .iter()
        .map(|f| std::fs::read(dir.join(f)).ok() == std::fs::read(testdata(f)).ok())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(same, [true; 3], "regenerated files differ from testdata/");
}
