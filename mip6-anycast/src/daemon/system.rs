//! What a daemon asks of the system: its capabilities, the wall clock
//! (RFC 4285 timestamps), the name of its network namespace and the
//! default paths derived from it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::crypto::NtpTimestamp;

/// `CAP_NET_ADMIN` (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;

/// Where control sockets live by default.
pub const RUN_DIR: &str = "/run/mip6-anycast";
/// Where state lives by default.
pub const STATE_DIR: &str = "/var/lib/mip6-anycast";

/// The effective capability set of this process (`CapEff` of
/// `/proc/self/status`), `None` if it cannot be read.
#[must_use]
pub fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Whether this process holds `CAP_NET_ADMIN` (TUN devices, tc, routes,
/// raw sockets with marks all need it).
#[must_use]
pub fn has_net_admin() -> bool {
    effective_capabilities().is_some_and(|c| c & (1 << CAP_NET_ADMIN) != 0)
}

/// The wall clock as an NTP timestamp (RFC 4285 Mesg-ID).
#[must_use]
pub fn wall_now() -> NtpTimestamp {
    NtpTimestamp::from_unix(unix_now())
}

/// The time since the Unix epoch (zero if the clock is before it).
#[must_use]
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn unix_ms() -> u64 {
    u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX)
}

/// The name under `/run/netns` of the network namespace this process is
/// in (the way `ip netns identify` finds it), `None` for the initial one or
/// an unnamed one.
#[must_use]
pub fn netns_name() -> Option<String> {
    let me = std::fs::metadata("/proc/self/ns/net").ok()?;
    let init = std::fs::metadata("/proc/1/ns/net").ok();
    if init.is_some_and(|i| i.ino() == me.ino() && i.dev() == me.dev()) {
        return None;
    }
    std::fs::read_dir(crate::engine::netns::NETNS_RUN_DIR)
        .ok()?
        .flatten()
        .find(|e| {
            e.metadata()
                .is_ok_and(|m| m.ino() == me.ino() && m.dev() == me.dev())
        })
        .and_then(|e| e.file_name().into_string().ok())
}

/// `BASE/[NETNS/]` for this process: daemons in different namespaces of
/// one machine (a lab) get different default paths.
fn per_netns(base: &str) -> PathBuf {
    let p = Path::new(base);
    match netns_name() {
        Some(ns) => p.join(ns),
        None => p.to_owned(),
    }
}

/// The default control socket of `daemon`:
/// `/run/mip6-anycast/[NETNS/]DAEMON.sock`.
#[must_use]
pub fn default_control_socket(daemon: &str) -> PathBuf {
    per_netns(RUN_DIR).join(format!("{daemon}.sock"))
}

/// The default state directory of `daemon`:
/// `/var/lib/mip6-anycast/[NETNS/]DAEMON`.
#[must_use]
pub fn default_state_dir(daemon: &str) -> PathBuf {
    per_netns(STATE_DIR).join(daemon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_read() {
        let caps = effective_capabilities().expect("CapEff in /proc/self/status");
        let root = nix::unistd::geteuid().is_root();
        if root {
            assert!(has_net_admin(), "root holds CAP_NET_ADMIN: {caps:x}");
        }
    }

    #[test]
    fn wall_clock_is_ntp() {
        let w = wall_now();
        let back = w.to_unix();
        let now = unix_now();
        assert!(now >= back && now - back < Duration::from_secs(5));
        assert!(default_control_socket("x").ends_with("x.sock"));
        assert!(default_state_dir("x").starts_with(STATE_DIR));
    }
}
