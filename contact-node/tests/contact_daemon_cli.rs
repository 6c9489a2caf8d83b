//! The contact node's command line: clear errors and exit statuses for a
//! bad configuration (naming the field), key material derived from a group
//! secret file, a missing CAP_NET_ADMIN, and `ctl` without a running
//! daemon. Runs without root.

use std::process::Command;

use mip6_anycast::daemon::testing::{run, temp_dir, without_net_admin};

const BIN: &str = env!("CARGO_BIN_EXE_contact-node");

const GOOD: &str = r#"
[anycast]
address = "2001:db8:100::1"
care_of_address = "2001:db8:3::10"
home_agent = "2001:db8:2::10"
spi = 4242
key = "000102030405060708090a0b0c0d0e0f10111213"

[services.echo]
port = 7
"#;

#[test]
fn configuration_errors_name_the_field() {
    let dir = temp_dir("cn-node");
    let cases = [
        (
            GOOD.replace("2001:db8:3::10", "ff02::1"),
            "anycast.care_of_address: ff02::1",
        ),
        (
            GOOD.replace("2001:db8:2::10", "2001:db8:3::10"),
            "anycast.home_agent",
        ),
        (
            format!("{GOOD}\n[route_optimization]\nlifetime_s = 421\n"),
            "route_optimization.lifetime_s",
        ),
        (GOOD.replace("port = 7", "port = 0"), "services.echo.port"),
        (
            GOOD.replace("port = 7", "port = 70000"),
            "services.echo.port",
        ),
        (
            format!("{GOOD}\n[route_optimization]\ndelay_s = \"soon\"\n"),
            "route_optimization.delay_s",
        ),
        (
            GOOD.replace("spi = 4242", "# spi"),
            "anycast.spi: `key` needs `spi`",
        ),
        (
            GOOD.replace("spi = 4242", "group_secret_file = \"missing.secret\"")
                .replace("key = ", "# key = "),
            "anycast.group_secret_file",
        ),
    ];
    for (text, want) in cases {
        let f = dir.join("bad.toml");
        std::fs::write(&f, &text).unwrap();
        let (code, _, err) = run(Command::new(BIN).arg("--config").arg(&f));
        assert_eq!(code, 2, "{want}: {err}");
        assert!(err.contains(want), "expected {want:?} in: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn group_secret_config_loads_and_capability_is_checked() {
    let dir = temp_dir("cn-node-cap");
    std::fs::write(dir.join("group.secret"), format!("{}\n", "5a".repeat(32))).unwrap();
    let f = dir.join("k.toml");
    let text = GOOD
        .replace("spi = 4242\n", "group_secret_file = \"group.secret\"\n")
        .replace("key = \"000102030405060708090a0b0c0d0e0f10111213\"\n", "");
    std::fs::write(&f, text).unwrap();
    // The config is valid (the secret file is found relative to it): the
    // daemon gets as far as the capability check.
    let (code, _, err) = run(without_net_admin(Command::new(BIN).arg("--config").arg(&f)));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
    let (code, _, err) = run(Command::new(BIN)
        .args(["ctl", "status", "--control-socket"])
        .arg(dir.join("none.sock")));
    assert_eq!(code, 1);
    assert!(err.contains("is contact-node running?"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
