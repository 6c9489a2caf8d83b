//! Topology files: the demo lab parses to what it says, and bad variants
//! are rejected with the path of the offending field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use testbed::linkemu::{LinkConfig, pcap_path};
use testbed::topology::{
    DaemonConfig, DaemonKind, HostKind, LinkDir, LinkKind, Topology, TopologyError,
};

const DEMO: &str = include_str!("../topologies/demo.toml");

fn demo() -> Topology {
    Topology::from_toml_str(DEMO).expect("demo topology is valid")
}

/// The issue lines of an invalid topology (panics on any other outcome).
fn issues(t: &Topology) -> Vec<String> {
    match t.validate() {
        Err(e @ TopologyError::Invalid(_)) => e.issues().iter().map(|i| i.to_string()).collect(),
        other => panic!("expected validation issues, got {other:?}"),
    }
}

fn assert_issue(t: &Topology, expected: &str) {
    let all = issues(t);
    assert!(
        all.iter().any(|i| i.starts_with(expected)),
        "no issue starting with {expected:?} in {all:#?}"
    );
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("topology-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn demo_lab_parses_to_its_description() {
    let t = demo();
    assert_eq!(t.lab.name.as_deref(), Some("demo"));
    let names: Vec<&str> = t.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["C", "R", "HA", "K"]);
    assert_eq!(t.host("R").unwrap().kind, HostKind::Router);
    assert!(t.host("R").unwrap().forwards());
    assert!(!t.host("C").unwrap().forwards());
    assert!(t.host("HA").unwrap().forwards());
    assert_eq!(
        t.host("K").unwrap().lo[0].to_string(),
        "2001:db8:100::1/128"
    );

    let expect = [
        ("c-r", "C", "R", 10.0),
        ("r-ha", "R", "HA", 5.0),
        ("r-k", "R", "K", 5.0),
    ];
    assert_eq!(t.links.len(), expect.len());
    for (name, a, b, ms) in expect {
        let l = t.link(name).unwrap_or_else(|| panic!("link {name}"));
        assert_eq!((l.a.as_str(), l.b.as_str()), (a, b));
        assert_eq!(l.kind, LinkKind::Emulated);
        assert!(l.capture);
        assert_eq!(l.mtu(), 1500);
        for dir in LinkDir::BOTH {
            let p = l.direction(dir);
            assert_eq!(p.delay_ms, ms);
            assert_eq!(p.loss, 0.0);
            assert_eq!(p.rate_mbit, None);
        }
        let cfg = LinkConfig::from_topology(&t, l, Some(Path::new("/out"))).unwrap();
        assert_eq!(cfg.a_to_b.delay, Duration::from_secs_f64(ms / 1000.0));
        assert_eq!(cfg.b_to_a.delay, cfg.a_to_b.delay);
        assert_eq!(cfg.capture, Some(pcap_path(Path::new("/out"), name)));
        assert_eq!(
            cfg.capture.as_deref(),
            Some(Path::new(&format!("/out/pcap/{name}.pcap")))
        );
        assert_eq!(cfg.seed, t.link_seed(l));
    }
    // One-way client-contact latency Lcs = 10 + 5 ms.
    assert_eq!(t.links_of("R").count(), 3);
    assert_eq!(t.links_of("C").count(), 1);

    assert_eq!(t.routes.len(), 4);
    let r = t.routes_of("C").next().unwrap();
    assert_eq!(r.dst.len(), 0);
    assert_eq!(r.via, Some("2001:db8:1::1".parse().unwrap()));

    let kinds: Vec<DaemonKind> = t.daemons.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [
            DaemonKind::HomeAgent,
            DaemonKind::ContactNode,
            DaemonKind::Mip6Cn
        ]
    );
    assert_eq!(t.daemons[0].name(), "home-agent-HA");
    match &t.daemons[0].config {
        Some(DaemonConfig::Inline(tbl)) => {
            assert_eq!(tbl["home"]["prefix"].as_str(), Some("2001:db8:100::/64"))
        }
        other => panic!("inline config expected, got {other:?}"),
    }
    // Link seeds differ per link and are stable.
    let seeds: std::collections::HashSet<u64> = t.links.iter().map(|l| t.link_seed(l)).collect();
    assert_eq!(seeds.len(), 3);
    assert_eq!(demo().link_seed(&demo().links[0]), t.link_seed(&t.links[0]));
}

#[test]
fn per_direction_values_override_symmetric_ones() {
    let t = Topology::from_toml_str(
        r#"
        [[host]]
        name = "A"
        [[host]]
        name = "B"
        [[link]]
        a = "A"
        b = "B"
        kind = "emulated"
        delay_ms = 2.5
        loss = 0.01
        jitter_ms = 0.25
        a_to_b = { delay_ms = 7.125, rate_mbit = 10.0 }
        b_to_a = { loss = 0.0, reorder = true }
        seed = 99
        mtu = 9000
        "#,
    )
    .unwrap();
    let l = &t.links[0];
    assert_eq!(l.name(), "A-B");
    let ab = l.direction(LinkDir::AToB);
    let ba = l.direction(LinkDir::BToA);
    assert_eq!(
        (ab.delay_ms, ab.loss, ab.jitter_ms, ab.rate_mbit),
        (7.125, 0.01, 0.25, Some(10.0))
    );
    assert!(!ab.reorder);
    assert_eq!((ba.delay_ms, ba.loss, ba.rate_mbit), (2.5, 0.0, None));
    assert!(ba.reorder);
    let cfg = LinkConfig::from_topology(&t, l, None).unwrap();
    assert_eq!(cfg.a_to_b.delay, Duration::from_micros(7125));
    assert_eq!(cfg.a_to_b.rate_bps, Some(10_000_000));
    assert_eq!(cfg.b_to_a.jitter, Duration::from_micros(250));
    assert_eq!(cfg.seed, 99);
    assert_eq!(cfg.capture, None);
    assert_eq!(l.mtu(), 9000);
}

#[test]
fn unknown_host_is_named_with_its_field() {
    let mut t = demo();
    t.links[2].b = "K2".into();
    assert_issue(&t, r#"link[2].b: unknown host "K2""#);
    t.routes[0].host = "Z".into();
    assert_issue(&t, r#"route[0].host: unknown host "Z""#);
    t.daemons[1].host = "Q".into();
    assert_issue(&t, r#"daemon[1].host: unknown host "Q""#);
}

#[test]
fn duplicate_names_are_rejected() {
    let mut t = demo();
    t.hosts[3].name = "C".into();
    assert_issue(
        &t,
        r#"host[3].name: duplicate host name "C" (also host[0])"#,
    );

    let mut t = demo();
    t.links[2].name = Some("c-r".into());
    assert_issue(&t, r#"link[2].name: duplicate link name "c-r""#);

    let mut t = demo();
    let mut d = t.daemons[0].clone();
    d.config = None;
    t.daemons.push(d);
    assert_issue(&t, r#"daemon[3]: duplicate daemon name "home-agent-HA""#);

    let mut t = demo();
    t.hosts[0].name = "bad name".into();
    assert_issue(&t, "host[0].name: name \"bad name\" must be");
    t.hosts[1].name = "x".repeat(40);
    assert_issue(&t, "host[1].name: name");
}

#[test]
fn address_conflicts_are_rejected() {
    let mut t = demo();
    t.links[1].b_addr[0] = "2001:db8:1::10/64".parse().unwrap();
    assert_issue(
        &t,
        "link[1].b_addr[0]: 2001:db8:1::10 already used by link[0].a_addr[0]",
    );

    let mut t = demo();
    t.links[2].a_addr[0] = "2001:db8::1/32".parse().unwrap();
    assert_issue(
        &t,
        "link[2].a_addr[0]: 2001:db8::1/32 overlaps 2001:db8:1::10/64 of link[0].a_addr[0]",
    );

    let mut t = demo();
    t.hosts[3].lo.push("2001:db8:2::10/128".parse().unwrap());
    assert_issue(
        &t,
        "host[3].lo[1]: 2001:db8:2::10 already used by link[1].b_addr[0]",
    );

    let mut t = demo();
    t.links[0].a_addr.push("ff02::1/64".parse().unwrap());
    assert_issue(&t, "link[0].a_addr[1]: ff02::1/64: a multicast address");

    // The same lo address on two hosts is anycast, not a conflict.
    let mut t = demo();
    t.hosts[0].lo.push("2001:db8:100::1/128".parse().unwrap());
    t.validate().unwrap();
}

#[test]
fn link_parameters_out_of_range_are_rejected() {
    let mut t = demo();
    t.links[0].delay_ms = Some(-1.0);
    t.links[1].loss = Some(1.5);
    t.links[2].a_to_b = Some(testbed::topology::DirectionSpec {
        loss: Some(-0.1),
        jitter_ms: Some(f64::NAN),
        rate_mbit: Some(0.0),
        queue_packets: Some(0),
        ..Default::default()
    });
    t.links[2].mtu = Some(1000);
    let all = issues(&t);
    for expected in [
        "link[0].delay_ms: negative: -1",
        "link[1].loss: out of range: 1.5",
        "link[2].a_to_b.loss: out of range: -0.1",
        "link[2].a_to_b.jitter_ms: out of range: NaN",
        "link[2].a_to_b.rate_mbit: must be a positive number",
        "link[2].a_to_b.queue_packets: must be at least 1",
        "link[2].mtu: 1000 out of range (1280..=65535)",
    ] {
        assert!(
            all.iter().any(|i| i.starts_with(expected)),
            "{expected:?} not in {all:#?}"
        );
    }
    assert_eq!(all.len(), 7, "{all:#?}");
}

#[test]
fn veth_links_cannot_emulate() {
    let mut t = demo();
    t.links[0].kind = LinkKind::Veth;
    let all = issues(&t);
    assert_eq!(
        all,
        [
            "link[0].delay_ms: only emulated links (kind = \"emulated\") can have this",
            "link[0].capture: only emulated links (kind = \"emulated\") can have this",
        ]
    );
    t.links[0].delay_ms = None;
    t.links[0].capture = false;
    t.validate().unwrap();
    assert!(LinkConfig::from_topology(&t, &t.links[0], None).is_err());
}

#[test]
fn routes_need_an_on_link_gateway() {
    let mut t = demo();
    t.routes[0].via = Some("2001:db8:9::1".parse().unwrap());
    assert_issue(&t, "route[0].via: 2001:db8:9::1 is not on-link");

    let mut t = demo();
    t.routes[0].via = Some("fe80::1".parse().unwrap());
    assert_issue(&t, "route[0].via: link-local gateway fe80::1 needs `link`");
    t.routes[0].link = Some("c-r".into());
    t.validate().unwrap();
    t.routes[0].link = Some("r-k".into());
    assert_issue(&t, r#"route[0].link: link "r-k" does not attach host "C""#);

    let mut t = demo();
    t.routes[0].via = Some("2001:db8:1::10".parse().unwrap());
    assert_issue(
        &t,
        r#"route[0].via: 2001:db8:1::10 is an address of host "C" itself"#,
    );

    let mut t = demo();
    t.routes.push(t.routes[0].clone());
    assert_issue(&t, "route[4].dst: second route to default in host \"C\"");
}

#[test]
fn daemon_entries_are_checked() {
    let mut t = demo();
    t.daemons[2].kind = DaemonKind::Custom;
    assert_issue(&t, "daemon[2].program: a custom daemon needs `program`");
    t.daemons[2].program = Some("/bin/true".into());
    t.validate().unwrap();
    t.daemons[0].program = Some("/bin/true".into());
    assert_issue(&t, "daemon[0].program: only custom daemons take `program`");
}

#[test]
fn parse_errors_name_the_key() {
    let bad_key = DEMO.replacen("delay_ms = 10.0", "delay = 10.0", 1);
    let e = Topology::from_toml_str(&bad_key).unwrap_err();
    assert!(matches!(e, TopologyError::Parse(_)));
    assert!(e.to_string().contains("delay"), "{e}");

    let bad_prefix = DEMO.replacen("\"2001:db8:1::10/64\"", "\"2001:db8:1::10\"", 1);
    let e = Topology::from_toml_str(&bad_prefix)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing \"/LEN\""), "{e}");

    let bad_kind = DEMO.replacen("kind = \"emulated\"", "kind = \"netem\"", 1);
    let e = Topology::from_toml_str(&bad_kind).unwrap_err().to_string();
    assert!(e.contains("netem"), "{e}");

    let bad_daemon = DEMO.replacen("kind = \"mip6-cn\"", "kind = \"mip7\"", 1);
    assert!(Topology::from_toml_str(&bad_daemon).is_err());

    assert!(Topology::from_toml_str("[[host]]\nname = 5\n").is_err());
    assert!(Topology::from_toml_str("this is not toml").is_err());
}

#[test]
fn every_issue_is_reported_at_once() {
    let mut t = demo();
    t.links[2].b = "K2".into();
    t.links[0].loss = Some(2.0);
    t.hosts[1].name = "C".into();
    let all = issues(&t);
    assert!(all.len() >= 3, "{all:#?}");
    let text = t.validate().unwrap_err().to_string();
    assert!(text.starts_with("invalid topology:\n"), "{text}");
    assert_eq!(text.lines().count(), all.len() + 1);
}

#[test]
fn load_resolves_config_paths_against_the_file() {
    let dir = TempDir::new("load");
    let with_path = DEMO.replacen(
        "kind = \"mip6-cn\"\n\n[daemon.config.correspondent]\naddresses = [\"2001:db8:1::10\"]\n",
        "kind = \"mip6-cn\"\nconfig = \"cn.toml\"\n",
        1,
    );
    let file = dir.path().join("lab.toml");
    std::fs::write(&file, &with_path).unwrap();
    let e = Topology::load(&file).unwrap_err();
    let want = format!(
        "daemon[2].config: file {} not found",
        dir.path().join("cn.toml").display()
    );
    assert_eq!(e.issues().len(), 1, "{e}");
    assert_eq!(e.issues()[0].to_string(), want);

    std::fs::write(dir.path().join("cn.toml"), "address = \"2001:db8:1::10\"\n").unwrap();
    let t = Topology::load(&file).unwrap();
    assert_eq!(
        t.daemon_config_path(&t.daemons[2]),
        Some(dir.path().join("cn.toml"))
    );
    assert!(matches!(
        Topology::load(&dir.path().join("missing.toml")),
        Err(TopologyError::Io { .. })
    ));
}

#[test]
fn the_demo_file_on_disk_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/demo.toml");
    let t = Topology::load(&path).unwrap();
    assert_eq!(
        t,
        Topology {
            base_dir: t.base_dir.clone(),
            ..demo()
        }
    );
}

#[test]
fn vm_hosts_forward_and_hold_no_daemon_or_lo() {
    let mut t = demo();
    let c = t.hosts.iter_mut().find(|h| h.name == "C").unwrap();
    c.kind = HostKind::Vm;
    // Its namespace relays for the guest.
    assert!(t.host("C").unwrap().forwards());
    // The demo's mip6-cn on C must move into the guest.
    assert_issue(
        &t,
        "daemon[2].host: \"C\" is a vm host: its programs run in the guest",
    );
    t.daemons.retain(|d| d.host != "C");
    t.validate().expect("a vm host without daemons");
    t.hosts.iter_mut().find(|h| h.name == "C").unwrap().lo =
        vec!["2001:db8:100::5/128".parse().unwrap()];
    assert_issue(&t, "host[0].lo: a vm host has no lo addresses");
    let parsed = Topology::from_toml_str("[[host]]\nname = \"V\"\nkind = \"vm\"\n").unwrap();
    assert_eq!(parsed.hosts[0].kind, HostKind::Vm);
}
