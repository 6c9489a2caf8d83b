//! Labs of veth links: routing through a router, long link names, two labs
//! built at the same time, daemons that end with the lab, daemons that
//! cannot start, and topologies a lab refuses with the offending field.

mod lab_support;

use std::net::Ipv6Addr;
use std::time::Duration;

use lab_support::*;
use mip6_anycast::require_root;
use testbed::lab::{DaemonOptions, Lab, LabError, LabOptions, Reaper};
use testbed::topology::Topology;

/// A - R - B over veth pairs; B has an address on `lo` that A reaches
/// through R. The A-R link's name is longer than an interface name.
const VETH: &str = r#"
[lab]
name = "veth"

[[host]]
name = "A"
[[host]]
name = "R"
kind = "router"
[[host]]
name = "B"
lo = ["2001:db8:200::1/128"]

[[link]]
name = "a-very-long-link-name-to-r"
a = "A"
b = "R"
a_addr = ["2001:db8:21::2/64"]
b_addr = ["2001:db8:21::1/64"]

[[link]]
a = "R"
b = "B"
mtu = 9000
a_addr = ["2001:db8:22::1/64"]
b_addr = ["2001:db8:22::2/64"]

[[route]]
host = "A"
dst = "default"
via = "2001:db8:21::1"

[[route]]
host = "B"
dst = "default"
via = "2001:db8:22::1"

[[route]]
host = "R"
dst = "2001:db8:200::/64"
via = "2001:db8:22::2"
"#;

fn veth() -> Topology {
    Topology::from_toml_str(VETH).expect("valid topology")
}

fn opts(out: &TempDir) -> LabOptions {
    LabOptions::with_out_dir(out.path())
}

/// Builds the veth lab and checks A reaches B's `lo` address over TCP.
fn check_veth_lab(lab: &Lab) {
    let b_lo: Ipv6Addr = "2001:db8:200::1".parse().unwrap();
    let server = echo_server(lab, "B", b_lo);
    let (echo, _) = tcp_echo_from(lab, "A", server, b"over two veth pairs");
    assert_eq!(echo, b"over two veth pairs");
}

#[test]
fn veth_lab_routes_through_the_router() {
    require_root!("veth_lab_routes_through_the_router");
    let out = TempDir::new("veth");
    let mut lab = Lab::build(&veth(), opts(&out)).expect("build");
    let (ifname, _) = lab.interface("A", "a-very-long-link-name-to-r").unwrap();
    assert!(ifname.len() <= 15, "{ifname}");
    assert_eq!(lab.interface("R", "R-B").unwrap().0, "R-B");
    assert!(
        lab.link_handle("R-B").is_none(),
        "veth links have no emulator"
    );
    assert!(lab.pcap_path("R-B").is_none());
    assert_eq!(
        lab.global_addr("B"),
        Some("2001:db8:22::2".parse().unwrap())
    );
    check_veth_lab(&lab);
    // The link's MTU reached the interface.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let info = rt.block_on(async {
        let nl = lab.netlink("B").unwrap();
        nl.link_by_name("R-B").await.unwrap()
    });
    assert_eq!(info.mtu, Some(9000));
    // A lab process sees the host's own interfaces in /sys, as with `ip
    // netns exec`.
    let cat = lab
        .spawn_named(
            "B",
            "sysfs",
            "cat",
            ["/sys/class/net/R-B/mtu"],
            [("LC_ALL", "C")],
        )
        .unwrap();
    assert!(cat.wait().unwrap().success(), "{}", cat.log_tail(5));
    assert_eq!(cat.log_tail(1), "9000");
    let prefix = lab.prefix().to_string();
    lab.teardown();
    assert!(namespaces_of(&prefix).is_empty());
}

#[test]
fn two_labs_at_once_do_not_collide() {
    require_root!("two_labs_at_once_do_not_collide");
    let outs = [TempDir::new("twin-1"), TempDir::new("twin-2")];
    let topo = veth();
    let labs: Vec<Lab> = std::thread::scope(|s| {
        let handles: Vec<_> = outs
            .iter()
            .map(|o| {
                let t = &topo;
                s.spawn(move || Lab::build(t, opts(o)).expect("build"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(labs[0].prefix(), labs[1].prefix());
    assert_ne!(labs[0].ns("A"), labs[1].ns("A"));
    // Same addresses in both, each lab routes its own.
    std::thread::scope(|s| {
        for lab in &labs {
            s.spawn(move || check_veth_lab(lab));
        }
    });
    let prefixes: Vec<String> = labs.iter().map(|l| l.prefix().to_string()).collect();
    drop(labs);
    for p in prefixes {
        assert!(namespaces_of(&p).is_empty(), "{p}");
    }
}

#[test]
fn custom_daemon_ends_with_the_lab() {
    require_root!("custom_daemon_ends_with_the_lab");
    let out = TempDir::new("daemon");
    let text = format!(
        "{VETH}\n[[daemon]]\nname = \"sleeper\"\nhost = \"R\"\nkind = \"custom\"\nprogram = \"sleep\"\nargs = [\"1000\"]\n\
         config = {{ answer = 42 }}\n"
    );
    let topo = Topology::from_toml_str(&text).unwrap();
    let mut lab = Lab::build(&topo, opts(&out)).expect("build");
    let cmd = lab.daemon_command(0, &DaemonOptions::default()).unwrap();
    let cfg = out.join("config/sleeper.toml");
    assert_eq!(cmd.config.as_deref(), Some(cfg.as_path()));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap().trim(), "answer = 42");
    // `sleep` rejects `--config`; check the daemon with its plain args.
    lab.spawn_named("R", "sleeper", "sleep", ["1000"], [("X", "1")])
        .unwrap();
    let procs = lab.processes();
    assert_eq!(procs.len(), 1);
    let p = &procs[0];
    assert!(p.is_running());
    assert_eq!(p.log_path(), out.join("logs/R-sleeper.log"));
    // It runs in R's namespace.
    let ns_of = |pid: u32| {
        std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        })
    };
    let r_ns = std::fs::metadata(format!("/run/netns/{}", lab.ns("R").unwrap())).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(ns_of(p.pid()).unwrap(), r_ns.ino());
    let pid = p.pid();
    let report = lab.teardown();
    assert_eq!(report.processes.len(), 1, "{report:?}");
    assert!(!pid_alive(pid));
}

#[test]
fn topology_daemons_start_and_stop() {
    require_root!("topology_daemons_start_and_stop");
    let out = TempDir::new("daemons");
    let text = "[[host]]\nname = \"A\"\n\
                [[daemon]]\nhost = \"A\"\nkind = \"custom\"\nprogram = \"sh\"\n\
                args = [\"-c\", \"echo started; exec sleep 1000\"]\n";
    let topo = Topology::from_toml_str(text).unwrap();
    let mut lab = Lab::build(&topo, opts(&out)).unwrap();
    let started = lab.start_daemons(&DaemonOptions::default()).unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].name(), "custom-A");
    assert!(started[0].is_running());
    assert!(wait_until(Duration::from_secs(2), || {
        std::fs::read_to_string(out.join("logs/A-custom-A.log"))
            .is_ok_and(|l| l.contains("started"))
    }));
    let pid = started[0].pid();
    lab.teardown();
    assert!(!pid_alive(pid));
}

/// The error of starting the daemons of a one-host topology whose only
/// daemon is `daemon`.
fn daemon_error(tag: &str, daemon: &str, dopts: DaemonOptions) -> String {
    let out = TempDir::new(tag);
    let text = format!("[[host]]\nname = \"A\"\n[[daemon]]\nhost = \"A\"\n{daemon}\n");
    let topo = Topology::from_toml_str(&text).unwrap();
    let lab = Lab::build(&topo, opts(&out)).unwrap();
    match lab.start_daemons(&dopts) {
        Err(e @ LabError::Daemon { .. }) => e.to_string(),
        other => panic!("expected a daemon error, got {other:?}"),
    }
}

#[test]
fn daemons_that_cannot_run_are_reported() {
    require_root!("daemons_that_cannot_run_are_reported");
    let empty = TempDir::new("no-bins");
    let e = daemon_error(
        "missing-bin",
        "kind = \"home-agent\"",
        DaemonOptions {
            bin_dir: Some(empty.path().to_owned()),
            ..Default::default()
        },
    );
    assert!(e.starts_with("daemon[0] (home-agent-A)"), "{e}");
    assert!(
        e.contains("not found") && e.contains("cargo build -p home-agent"),
        "{e}"
    );

    // A missing binary is found before any daemon starts.
    let out = TempDir::new("missing-first");
    let text = "[[host]]\nname = \"A\"\n\
                [[daemon]]\nhost = \"A\"\nkind = \"custom\"\nprogram = \"sleep\"\nargs = [\"1000\"]\n\
                [[daemon]]\nhost = \"A\"\nkind = \"contact-node\"\n";
    let lab = Lab::build(&Topology::from_toml_str(text).unwrap(), opts(&out)).unwrap();
    let no_bins = DaemonOptions {
        bin_dir: Some(empty.path().to_owned()),
        ..Default::default()
    };
    let e = lab.start_daemons(&no_bins).unwrap_err().to_string();
    assert!(e.starts_with("daemon[1] (contact-node-A)"), "{e}");
    assert!(lab.processes().is_empty(), "nothing was started");
    drop(lab);

    let e = daemon_error(
        "missing-prog",
        "kind = \"custom\"\nprogram = \"/nonexistent/daemon\"",
        DaemonOptions::default(),
    );
    assert!(e.contains("daemon[0]") && e.contains("not found"), "{e}");

    let e = daemon_error(
        "dies",
        "kind = \"custom\"\nprogram = \"sh\"\nargs = [\"-c\", \"echo cannot bind >&2; exit 3\"]",
        DaemonOptions::default(),
    );
    assert!(e.contains("exited at once"), "{e}");
    assert!(e.contains("exit status: 3"), "{e}");
    assert!(e.contains("cannot bind"), "the log tail is shown: {e}");
}

#[test]
fn bad_topologies_name_the_field() {
    // Refused before anything is created: no root needed.
    let bad_host = VETH.replace("b = \"B\"\nmtu", "b = \"K9\"\nmtu");
    let t: Topology = toml::from_str(&bad_host).unwrap();
    match Lab::build(&t, LabOptions::default()) {
        Err(LabError::Topology(e)) => {
            assert!(e.issues().iter().any(|i| i.path == "link[1].b"), "{e}");
        }
        other => panic!("expected a topology error, got {other:?}"),
    }

    let ll_via = r#"
[[host]]
name = "A"
[[host]]
name = "B"
[[link]]
a = "A"
b = "B"
kind = "emulated"
a_addr = ["2001:db8:5::1/64"]
b_addr = ["2001:db8:5::2/64"]
[[route]]
host = "A"
dst = "default"
via = "fe80::2"
link = "A-B"
"#;
    let t = Topology::from_toml_str(ll_via).unwrap();
    let e = Lab::build(&t, LabOptions::default()).unwrap_err();
    assert!(
        matches!(&e, LabError::Invalid { path, .. } if path == "route[0].via"),
        "{e}"
    );

    let opts = LabOptions {
        family: "Bad1".into(),
        reaper: Reaper::Off,
        ..Default::default()
    };
    let e = Lab::build(&veth(), opts).unwrap_err();
    assert!(
        matches!(
            e,
            LabError::Option {
                option: "family",
                ..
            }
        ),
        "{e}"
    );
}
