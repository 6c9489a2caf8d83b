//! Helpers for the daemons' command-line tests: run a daemon binary
//! without `CAP_NET_ADMIN`, collect its exit code and stderr.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::system::CAP_NET_ADMIN;

/// Makes `cmd` run without `CAP_NET_ADMIN`: the capability leaves the
/// bounding set before `exec`, so even root does not get it back. (Without
/// `CAP_SETPCAP` the drop fails, but then the process has no
/// `CAP_NET_ADMIN` to begin with.)
pub fn without_net_admin(cmd: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe work (one prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let _ = libc::prctl(
                libc::PR_CAPBSET_DROP,
                libc::c_ulong::from(CAP_NET_ADMIN),
                0,
                0,
                0,
            );
            Ok(())
        })
    }
}

/// Runs `cmd` to its end: (exit code, -1 if killed; stdout; stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (-1, String::new(), format!("spawning: {e}")),
    }
}

/// A fresh temporary directory for one test (removed by the caller).
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("mip6-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::create_dir_all(&p);
    p
}
