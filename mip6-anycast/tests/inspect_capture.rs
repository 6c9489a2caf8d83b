//! The inspector library on the independent fixtures of `testdata/`:
//! `inspect_capture.pcap` must give exactly the verdicts of
//! `inspect_expected.json`, and every packet of the two fixture captures
//! must decode as `mip6_fixtures.json` says (valid: checksum_ok true, the
//! right MH type, addresses and extension headers; malformed: flagged).

mod inspect_common;

use inspect_common::{assert_verdicts, inspect, load, report_json};
use mip6_anycast::inspect::{CaptureFormat, ExtRecord, Ipv6Layer, PacketRecord};
use serde_json::Value;

#[test]
fn inspect_capture_matches_expected_verdicts() {
    let ex = load("inspect_expected.json");
    let r = inspect(ex["capture"].as_str().unwrap());
    assert_eq!(r.format, CaptureFormat::Pcap);
    assert_eq!(r.link_type, Some(101));
    assert_eq!(r.capture_error, None);
    let json = report_json(&r);
    assert_verdicts(
        json["packets"].as_array().unwrap(),
        ex["packets"].as_array().unwrap(),
        "inspect_capture.pcap",
    );
    // The truncated BU is reported as such, with the wire layer's reason.
    let last = r.packets.last().unwrap();
    assert!(last.truncated && last.caplen == 80 && last.len == 96);
    assert_eq!(
        last.error.as_deref(),
        Some("truncated IPv6 payload: need 96 bytes, have 80")
    );
    // Timestamps: 1700000000 s + i ms.
    for (i, p) in r.packets.iter().enumerate() {
        assert_eq!(p.timestamp, format!("1700000000.{:03}000000", i));
    }
}

#[test]
fn tunnelled_hoti_and_hot_are_decoded_recursively() {
    let r = inspect("inspect_capture.pcap");
    for (i, outer, inner) in [
        (
            0,
            ("2001:db8:2::100", "2001:db8:1::1"),
            ("2001:db8:1::100", "2001:db8:3::10"),
        ),
        (
            2,
            ("2001:db8:1::1", "2001:db8:2::100"),
            ("2001:db8:3::10", "2001:db8:1::100"),
        ),
    ] {
        let l = r.packets[i].ipv6.as_ref().unwrap();
        assert_eq!(
            (l.src.to_string(), l.dst.to_string()),
            (outer.0.into(), outer.1.into())
        );
        assert!(matches!(
            l.ext.last(),
            Some(ExtRecord::Ip6ip6 { inner_src, inner_dst })
                if inner_src.to_string() == inner.0 && inner_dst.to_string() == inner.1
        ));
        let il = l.inner.as_ref().unwrap();
        assert_eq!(il.src.to_string(), inner.0);
        assert!(il.mh.as_ref().unwrap().checksum_ok);
        assert!(l.mh.is_none());
    }
}

/// The `ext` list of `mip6_fixtures.json` for a layer and its inner layers.
fn ext_json(l: &Ipv6Layer) -> Vec<Value> {
    let mut out = Vec::new();
    for e in &l.ext {
        match e {
            ExtRecord::Rh2 {
                home_address,
                segments_left,
            } => out.push(serde_json::json!({"kind": "rh2",
                "home_address": home_address.to_string(), "segments_left": segments_left})),
            ExtRecord::Ip6ip6 {
                inner_src,
                inner_dst,
            } => out.push(serde_json::json!({"kind": "ip6ip6",
                "inner_src": inner_src.to_string(), "inner_dst": inner_dst.to_string()})),
            ExtRecord::Dstopts { .. } => out.push(serde_json::json!({"kind": "dstopts"})),
            other => panic!("fixture has no {other:?}"),
        }
    }
    if let Some(i) = &l.inner {
        out.extend(ext_json(i));
    }
    out
}

fn innermost(l: &Ipv6Layer) -> &Ipv6Layer {
    l.inner.as_deref().map_or(l, innermost)
}

fn check_fixture(fx: &Value, p: &PacketRecord, label: &str) {
    let name = fx["name"].as_str().unwrap();
    if fx["malformed"].as_bool().unwrap() {
        assert!(
            p.malformed || p.checksum_ok == Some(false),
            "{label} {name}: malformed fixture not flagged: {p}"
        );
        if fx["expect"].get("mh").is_none() {
            assert!(p.malformed && p.error.is_some(), "{label} {name}: {p}");
        } else {
            // The two checksum cases: structurally valid, checksum false.
            assert!(
                !p.malformed && p.checksum_ok == Some(false),
                "{label} {name}: {p}"
            );
        }
        return;
    }
    let ex = &fx["expect"];
    assert!(!p.malformed, "{label} {name}: {p}");
    assert_eq!(p.checksum_ok, Some(true), "{label} {name}: {p}");
    let l = p.ipv6.as_ref().unwrap();
    assert_eq!(l.src.to_string(), ex["ipv6"]["src"], "{label} {name}");
    assert_eq!(l.dst.to_string(), ex["ipv6"]["dst"], "{label} {name}");
    assert_eq!(l.next_header, ex["ipv6"]["next_header"], "{label} {name}");
    assert_eq!(l.payload_len, ex["ipv6"]["payload_len"], "{label} {name}");
    let want: Vec<Value> = ex["ext"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e["kind"].as_str().unwrap() {
            "dstopts" => serde_json::json!({"kind": "dstopts"}),
            _ => e.clone(),
        })
        .collect();
    assert_eq!(ext_json(l), want, "{label} {name}");
    let inner = innermost(l);
    if let Some(mh) = ex.get("mh") {
        let m = inner.mh.as_ref().unwrap();
        assert_eq!(m.mh_type, mh["type"], "{label} {name}");
        assert_eq!(m.checksum, mh["checksum"], "{label} {name}");
        assert_eq!(m.header_len, mh["header_len"], "{label} {name}");
        assert!(m.checksum_ok && m.fields.is_some(), "{label} {name}");
        let typed = |o: &&Value| o["type"].as_u64().unwrap() > 1;
        let want: Vec<_> = mh["options"]
            .as_array()
            .unwrap()
            .iter()
            .filter(typed)
            .collect();
        let got: Vec<_> = m.options.iter().filter(|o| o.opt_type > 1).collect();
        assert_eq!(got.len(), want.len(), "{label} {name}: options");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.opt_type, w["type"], "{label} {name}");
        }
        assert_eq!(p.mh_type, Some(m.mh_type));
    }
    if let Some(up) = ex.get("upper") {
        let t = inner.transport.as_ref().unwrap();
        assert_eq!(t.proto, up["next_header"], "{label} {name}");
        assert_eq!(t.checksum_ok, Some(true), "{label} {name}");
    }
}

#[test]
fn every_fixture_decodes_in_both_captures() {
    let fixtures = load("mip6_fixtures.json");
    let fixtures = fixtures.as_array().unwrap();
    for (cap, link) in [("mip6_fixtures.pcap", 101), ("mip6_fixtures_eth.pcap", 1)] {
        let r = inspect(cap);
        assert_eq!(r.link_type, Some(link));
        assert_eq!(r.packets.len(), fixtures.len(), "{cap}");
        for (fx, p) in fixtures.iter().zip(&r.packets) {
            assert_eq!(p.link_type, link);
            check_fixture(fx, p, cap);
        }
    }
    // The same packets in both framings give the same decoding.
    let raw = inspect("mip6_fixtures.pcap");
    let eth = inspect("mip6_fixtures_eth.pcap");
    for (a, b) in raw.packets.iter().zip(&eth.packets) {
        assert_eq!(
            serde_json::to_value(&a.ipv6).unwrap(),
            serde_json::to_value(&b.ipv6).unwrap()
        );
        assert_eq!((a.caplen + 14, a.len + 14), (b.caplen, b.len));
    }
}

#[test]
fn binding_ack_with_authorization_data_is_checked_with_the_bu_kbm() {
    // ba_cn_to_mn_rh2_bra_bad carries an authenticator computed with the
    // rr_basic Kbm; the capture has that RR exchange's HoT/CoT and the BU
    // (sequence 0x1234) before it.
    let fixtures = load("mip6_fixtures.json");
    let index = |name: &str| {
        fixtures
            .as_array()
            .unwrap()
            .iter()
            .position(|f| f["name"] == name)
            .unwrap()
    };
    let r = inspect("mip6_fixtures.pcap");
    assert_eq!(
        r.packets[index("ba_cn_to_mn_rh2_bra_bad")].authenticator_ok,
        Some(Some(true))
    );
    // BAs without the option get no verdict at all.
    let plain = index("ba_status_0");
    assert_eq!(r.packets[plain].authenticator_ok, None);
}
