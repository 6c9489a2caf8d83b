//! The project's daemons in a lab: per-run control sockets and state
//! directories, and their control commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mip6_anycast::daemon::control::{self, Request};
use serde_json::Value;

use crate::topology::{DaemonConfig, DaemonKind, Topology};

/// Longest unix socket path (`sun_path` holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;

/// Where a daemon keeps its files in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonFiles {
    /// Its control socket.
    pub control_socket: PathBuf,
    /// Its state directory.
    pub state_dir: PathBuf,
}

/// Gives every project daemon with an inline config a control socket
/// (`DIR/run/NAME.sock`, or under the temp directory when that path is
/// too long for a unix socket) and a state directory (`DIR/state/NAME`),
/// unless its config sets them. Returns them by daemon name.
pub fn place_daemon_files(topo: &mut Topology, dir: &Path) -> BTreeMap<String, DaemonFiles> {
    let mut out = BTreeMap::new();
    for d in &mut topo.daemons {
        if !matches!(
            d.kind,
            DaemonKind::HomeAgent | DaemonKind::ContactNode | DaemonKind::Mip6Cn
        ) {
            continue;
        }
        let name = d.name();
        let Some(DaemonConfig::Inline(table)) = &mut d.config else {
            continue;
        };
        let mut sock = dir.join("run").join(format!("{name}.sock"));
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            sock = std::env::temp_dir()
                .join(format!("mip6-ctl-{}", std::process::id()))
                .join(format!("{name}.sock"));
        }
        let state = dir.join("state").join(&name);
        let section = table
            .entry("daemon")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = section {
            let sock = t
                .entry("control_socket")
                .or_insert_with(|| toml::Value::String(sock.display().to_string()))
                .as_str()
                .map(PathBuf::from)
                .unwrap_or(sock);
            let state = t
                .entry("state_dir")
                .or_insert_with(|| toml::Value::String(state.display().to_string()))
                .as_str()
                .map(PathBuf::from)
                .unwrap_or(state);
            out.insert(
                name,
                DaemonFiles {
                    control_socket: sock,
                    state_dir: state,
                },
            );
        }
    }
    out
}

/// Sends `cmd` to the control socket at `path`.
pub fn ctl_at(path: &Path, cmd: &str) -> Result<Value, String> {
    let r = control::request(path, &Request::new(cmd), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    if r.ok {
        Ok(r.result)
    } else {
        Err(r.error.unwrap_or_else(|| "command failed".into()))
    }
}

/// Polls `f` every `every` until it returns `Some`, at most `limit`.
pub fn wait_for<T>(
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_placed_unless_configured() {
        let mut t = Topology::from_toml_str(include_str!("../../topologies/demo.toml")).unwrap();
        if let Some(DaemonConfig::Inline(tbl)) = &mut t.daemons[2].config {
            let mut d = toml::Table::new();
            d.insert("control_socket".into(), "/x/c.sock".into());
            tbl.insert("daemon".into(), toml::Value::Table(d));
        }
        let files = place_daemon_files(&mut t, Path::new("/out"));
        assert_eq!(files.len(), 3);
        assert_eq!(
            files["home-agent-HA"].control_socket,
            PathBuf::from("/out/run/home-agent-HA.sock")
        );
        assert_eq!(
            files["contact-node-K"].state_dir,
            PathBuf::from("/out/state/contact-node-K")
        );
        assert_eq!(
            files["mip6-cn-C"].control_socket,
            PathBuf::from("/x/c.sock")
        );
        let mut fresh =
            Topology::from_toml_str(include_str!("../../topologies/demo.toml")).unwrap();
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let files = place_daemon_files(&mut fresh, &long);
        assert!(
            files["home-agent-HA"]
                .control_socket
                .starts_with(std::env::temp_dir())
        );
        assert!(files["home-agent-HA"].control_socket.as_os_str().len() <= MAX_SOCKET_PATH + 20);
    }
}
