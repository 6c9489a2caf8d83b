//! `mip6-cn`'s command line: clear errors and exit statuses for a bad
//! configuration (naming the field), a missing CAP_NET_ADMIN, and `ctl`
//! without a running daemon. Runs without root.
#![cfg(feature = "engine")]

use std::process::Command;

use mip6_anycast::daemon::testing::{run, temp_dir, without_net_admin};

const BIN: &str = env!("CARGO_BIN_EXE_mip6-cn");

#[test]
fn configuration_errors_name_the_field() {
    let dir = temp_dir("mip6cn");
    let cases = [
        (
            "[correspondent]\naddresses = [\"fe80::1\"]\n",
            "correspondent.addresses[0]",
        ),
        (
            "[correspondent]\nmax_lifetime_s = 500\n",
            "correspondent.max_lifetime_s",
        ),
        (
            "[correspondent]\nmax_bindings = -1\n",
            "correspondent.max_bindings",
        ),
        ("[fallback]\nsilence_s = 0.1\n", "fallback.silence_s"),
        ("[fallback]\nsilence = 3\n", "unknown field `silence`"),
        ("[engine]\ninterfaces = [\"lo\"]\n", "engine.interfaces[0]"),
        (
            "[daemon]\nshutdown_grace_s = -2\n",
            "daemon.shutdown_grace_s",
        ),
    ];
    for (text, want) in cases {
        let f = dir.join("bad.toml");
        std::fs::write(&f, text).unwrap();
        let (code, _, err) = run(Command::new(BIN).arg("--config").arg(&f));
        assert_eq!(code, 2, "{want}: {err}");
        assert!(err.contains(want), "expected {want:?} in: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_capability_and_absent_daemon() {
    let dir = temp_dir("mip6cn-cap");
    let f = dir.join("c.toml");
    std::fs::write(&f, "[correspondent]\nusage_poll_s = 0.25\n").unwrap();
    let (code, _, err) = run(without_net_admin(Command::new(BIN).arg("--config").arg(&f)));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
    let (code, _, err) = run(Command::new(BIN)
        .args(["ctl", "bindings", "--control-socket"])
        .arg(dir.join("none.sock")));
    assert_eq!(code, 1);
    assert!(err.contains("is mip6-cn running?"), "{err}");
    let (code, _, err) = run(Command::new(BIN).args(["ctl", "status", "--args", "{not json"]));
    assert_eq!(code, 1);
    assert!(err.contains("--args is not JSON"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
