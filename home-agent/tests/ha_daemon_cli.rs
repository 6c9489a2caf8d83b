//! The home agent's command line: clear errors and exit statuses for a
//! missing or bad configuration (naming the field), a missing
//! CAP_NET_ADMIN, and `ctl` without a running daemon. Runs without root.

use std::process::Command;

use mip6_anycast::daemon::testing::{run, temp_dir, without_net_admin};

const BIN: &str = env!("CARGO_BIN_EXE_home-agent");

const GOOD: &str = r#"
[home]
address = "2001:db8:2::10"
prefix = ["2001:db8:100::/64"]

[[home_address]]
address = "2001:db8:100::1"
spi = 4242
key = "000102030405060708090a0b0c0d0e0f10111213"
"#;

#[test]
fn configuration_errors_name_the_field() {
    let dir = temp_dir("ha");
    let (code, _, err) = run(&mut Command::new(BIN));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing --config"), "{err}");

    let cases = [
        (
            GOOD.replace("2001:db8:100::/64", "2001:db8::/129"),
            "home.prefix[0]: invalid IPv6 prefix \"2001:db8::/129\"",
        ),
        (GOOD.replace("spi = 4242", "spi = 7"), "home_address[0].spi"),
        (
            GOOD.replace("2001:db8:100::1", "2001:db8:200::1"),
            "home_address[0].address: 2001:db8:200::1 is outside every home.prefix",
        ),
        (format!("{GOOD}\n[engine]\ntun = \"a/b\"\n"), "engine.tun"),
        (format!("{GOOD}\nbogus = 1\n"), "unknown field `bogus`"),
        (
            GOOD.replace("key = ", "# key = "),
            "home_address[0].key: `spi` needs `key`",
        ),
        (
            GOOD.replace("spi = 4242\n", "").replace("key = ", "#"),
            "home_address[0].: needs key material",
        ),
    ];
    for (text, want) in cases {
        let f = dir.join("bad.toml");
        std::fs::write(&f, &text).unwrap();
        let (code, _, err) = run(Command::new(BIN).arg("--config").arg(&f));
        assert_eq!(code, 2, "{want}: {err}");
        assert!(err.contains(want), "expected {want:?} in: {err}");
    }
    let (code, _, err) = run(Command::new(BIN).args(["--config", "/nonexistent/ha.toml"]));
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/ha.toml"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_capability_is_reported() {
    let dir = temp_dir("hacap");
    let f = dir.join("ha.toml");
    std::fs::write(
        &f,
        format!(
            "{GOOD}\n[daemon]\ncontrol_socket = \"{}/ha.sock\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let (code, _, err) = run(without_net_admin(Command::new(BIN).arg("--config").arg(&f)));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
    assert!(!dir.join("ha.sock").exists(), "started anyway");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctl_without_a_daemon_fails_clearly() {
    let dir = temp_dir("hactl");
    let sock = dir.join("none.sock");
    let (code, _, err) = run(Command::new(BIN)
        .arg("ctl")
        .arg("status")
        .arg("--control-socket")
        .arg(&sock));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is home-agent running?"), "{err}");
    // The socket path also comes from the config file.
    let f = dir.join("ha.toml");
    std::fs::write(
        &f,
        format!("{GOOD}\n[daemon]\ncontrol_socket = \"x.sock\"\n"),
    )
    .unwrap();
    let (code, _, err) = run(Command::new(BIN)
        .args(["ctl", "bindings", "--config"])
        .arg(&f));
    assert_eq!(code, 1);
    assert!(
        err.contains(&dir.join("x.sock").display().to_string()),
        "{err}"
    );
    let (code, out, _) = run(Command::new(BIN).arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("ctl") && out.contains("--config"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
