//! The failover drills in namespaces (need root): one rep of each fault
//! kind of `testbed drill contact-failover`, and `testbed drill
//! ha-restart`. Each rep is a fresh lab with the contact node K, backups
//! A and B, a client handed to B and one served by K.

mod daemon_support;

use daemon_support::{TempDir, family, require_binaries};
use mip6_anycast::require_root;
use testbed::lab::LabOptions;
use testbed::scenarios::ScenarioBase;
use testbed::scenarios::drill::{self, DrillOptions, ha_restart};

#[test]
fn contact_failover_recovers_from_kill_freeze_and_link_down() {
    require_root!("contact_failover_recovers_from_kill_freeze_and_link_down");
    require_binaries();
    let out = TempDir::new("drill");
    let mut opts = DrillOptions::new(out.path(), 1);
    opts.base.lab = LabOptions {
        family: family("drill"),
        ..Default::default()
    };
    let s = drill::run(&opts, None).expect("the drill runs");
    eprintln!("drill summary: {s:#?}");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let csv = std::fs::read_to_string(out.path().join("failover.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "rep,fault,detect_ms,registered_ms,recover_ms,conns_at_members,conns_at_members_survived,conns_at_contact,conns_at_contact_survived"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let faults: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(faults, ["kill", "freeze", "linkdown"], "{csv}");
    let (hb, dead) = (s.heartbeat_ms as f64, s.dead_after_ms as f64);
    for r in &rows {
        let v = |i: usize| -> f64 { r[i].parse().unwrap_or(f64::NAN) };
        let (detect, registered, recover) = (v(2), v(3), v(4));
        // Nobody can tell a silent contact node before `dead_after` (less
        // the heartbeat it may have sent just before the fault); the new
        // contact registers after detecting, and a new connection works
        // only after detection (the home agent switches its tunnel as it
        // sends the BA, so the connection may beat the BA's arrival).
        assert!(detect >= dead - hb, "detected too early: {csv}");
        assert!(registered >= detect, "{csv}");
        assert!(recover.is_finite() && recover >= detect, "{csv}");
        assert!(recover < 1000.0, "{csv}");
        assert_eq!(r[5], r[6], "a member-held connection was lost: {csv}");
        assert_eq!(r[5], "2", "{csv}");
    }
    // B kept C1; the first backup, A, took X over every time; C2, bound
    // to the dead K, got a new path too.
    for f in s.faults.values() {
        assert_eq!(f.bound_client_recover_ms.n, 1, "{s:#?}");
        assert_eq!(f.new_contacts.keys().collect::<Vec<_>>(), ["A"], "{s:#?}");
    }
    let png = std::fs::read(out.path().join("failover.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn ha_restart_loses_no_registration() {
    require_root!("ha_restart_loses_no_registration");
    require_binaries();
    let out = TempDir::new("harestart");
    let mut base = ScenarioBase::new(out.path());
    base.lab = LabOptions {
        family: family("harestart"),
        ..Default::default()
    };
    let r = ha_restart::run(&base).expect("the drill runs");
    eprintln!("ha restart: {r:#?}");
    assert!(r.passed, "{r:#?}");
    assert_eq!(r.registrations_before.len(), 1);
    // Same home address, care-of address, sequence and SPI (the lifetime
    // left moves on).
    let strip = |v: &serde_json::Value| ["hoa", "coa", "sequence", "spi"].map(|k| v[k].clone());
    let before: Vec<_> = r.registrations_before.iter().map(strip).collect();
    let after: Vec<_> = r.registrations_after.iter().map(strip).collect();
    assert_eq!(before, after);
    assert!(r.recover_ms.is_some());
    assert_eq!(r.streams_survived, r.streams);
    let json = std::fs::read(out.path().join("ha_restart.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    for k in ["registrations_before", "registrations_after", "recover_ms"] {
        assert!(v.get(k).is_some(), "ha_restart.json lacks {k}");
    }
}
