//! Scenarios: what the testbed does with a lab. `testbed up` is the
//! simplest one (build, start the daemons, wait for Ctrl-C, tear down);
//! the later subcommands `demo`, `bench`, `sweep`, `drill` and `pias` are
//! built on the same [`Session`].
//!
//! # Adding a scenario
//!
//! 1. Write `scenarios/<name>.rs` with a function that takes a started
//!    [`Session`] (and its own options) and returns its results; write
//!    measurements (CSV/JSON), plots and anything else under
//!    `session.lab.out_dir()`. Drive hosts with [`Lab::run_in`] /
//!    [`Lab::worker`] (sockets inside a namespace), [`Lab::spawn`]
//!    (programs), and links with [`Lab::link_handle`] (delay, loss, down
//!    for failover drills) and [`Lab::link_stats`].
//! 2. Add a subcommand in `src/cli/mod.rs` (the `Command` enum) whose
//!    handler loads the topology, calls [`Session::start`], runs the
//!    scenario, and calls [`Session::stop`]. Check
//!    [`crate::lab::signals::TerminationSignals::poll`] between steps so
//!    Ctrl-C stops a long run cleanly.
//! 3. Tests go in `tests/<name>_*.rs`, guarded by `require_root!`.
//!
//! The lab is torn down when the session is stopped or dropped, also on
//! error and panic; a crash of the process is covered by the lab's reaper.

pub mod daemons;
pub mod demo;
pub mod probe;

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::lab::{DaemonOptions, Lab, LabError, LabOptions, LabProcess, TeardownReport};
use crate::topology::{DaemonConfig, Topology};

pub use daemons::{DaemonFiles, place_daemon_files};

/// How to start a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// How to build the lab.
    pub lab: LabOptions,
    /// How to start the topology's daemons; `None`: do not start them.
    pub daemons: Option<DaemonOptions>,
}

/// A built lab with its daemons started.
#[derive(Debug)]
pub struct Session {
    /// The lab.
    pub lab: Lab,
    /// The topology's daemons, in topology order (empty without daemons).
    pub daemons: Vec<LabProcess>,
    daemon_options: Option<DaemonOptions>,
}

impl Session {
    /// Builds the lab of `topo` and starts its daemons (unless
    /// `opts.daemons` is `None`). On error, whatever was started is
    /// removed again.
    pub fn start(topo: &Topology, opts: SessionOptions) -> Result<Session, LabError> {
        let lab = Lab::build(topo, opts.lab)?;
        let daemons = match &opts.daemons {
            Some(d) => lab.start_daemons(d)?,
            None => Vec::new(),
        };
        Ok(Session {
            lab,
            daemons,
            daemon_options: opts.daemons,
        })
    }

    /// Index (in the topology) of the daemon named `name`.
    pub fn daemon_index(&self, name: &str) -> Option<usize> {
        self.lab
            .topology()
            .daemons
            .iter()
            .position(|d| d.name() == name)
    }

    /// The running (or last) process of daemon `name`.
    pub fn daemon(&self, name: &str) -> Option<&LabProcess> {
        self.daemons.iter().find(|p| p.name() == name)
    }

    /// The control socket of daemon `name`: `daemon.control_socket` of its
    /// config file, else the daemon's default for its namespace
    /// (`/run/mip6-anycast/NETNS/KIND.sock`).
    pub fn control_socket(&self, name: &str) -> Option<PathBuf> {
        let i = self.daemon_index(name)?;
        let d = self.lab.topology().daemons.get(i)?;
        let file = match &d.config {
            Some(DaemonConfig::Path(_)) => self.lab.topology().daemon_config_path(d),
            Some(DaemonConfig::Inline(_)) => Some(
                self.lab
                    .out_dir()
                    .join("config")
                    .join(format!("{}.toml", crate::lab::process::file_safe(name))),
            ),
            None => None,
        };
        let configured = file
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| {
                t.get("daemon")?
                    .get("control_socket")?
                    .as_str()
                    .map(PathBuf::from)
            });
        configured.or_else(|| {
            let ns = self.lab.ns(&d.host)?;
            Some(
                PathBuf::from("/run/mip6-anycast")
                    .join(ns)
                    .join(format!("{}.sock", d.kind.as_str())),
            )
        })
    }

    /// Sends control command `cmd` to daemon `name`; its result or the
    /// error message.
    pub fn ctl(&self, name: &str, cmd: &str) -> Result<serde_json::Value, String> {
        daemons::ctl_at(
            &self
                .control_socket(name)
                .ok_or_else(|| format!("no daemon {name:?}"))?,
            cmd,
        )
    }

    /// Stops daemon `name` (SIGTERM, SIGKILL after `timeout`).
    pub fn stop_daemon(&self, name: &str, timeout: Duration) -> Result<ExitStatus, LabError> {
        let p = self.daemon(name).ok_or_else(|| no_daemon(name))?;
        p.terminate(timeout)
    }

    /// Kills daemon `name` with SIGKILL (a crash) and reaps it.
    pub fn kill_daemon(&self, name: &str) -> Result<ExitStatus, LabError> {
        let p = self.daemon(name).ok_or_else(|| no_daemon(name))?;
        p.signal(nix::sys::signal::Signal::SIGKILL)?;
        p.wait()
    }

    /// Starts daemon `name` again (after it stopped) with the same command
    /// line; its log continues in the same file.
    pub fn restart_daemon(&mut self, name: &str) -> Result<(), LabError> {
        let i = self.daemon_index(name).ok_or_else(|| no_daemon(name))?;
        let opts = self.daemon_options.clone().unwrap_or_default();
        let cmd = self.lab.daemon_command(i, &opts)?;
        let p = self.lab.spawn_named(
            &cmd.host,
            &cmd.name,
            &cmd.program,
            &cmd.args,
            opts.env.iter().map(|(k, v)| (k, v)),
        )?;
        match self.daemons.iter_mut().find(|d| d.name() == name) {
            Some(slot) => *slot = p,
            None => self.daemons.push(p),
        }
        Ok(())
    }

    /// The daemons that have exited, with their status.
    pub fn exited_daemons(&self) -> Vec<(LabProcess, ExitStatus)> {
        self.daemons
            .iter()
            .filter_map(|p| match p.try_wait() {
                Ok(Some(s)) => Some((p.clone(), s)),
                _ => None,
            })
            .collect()
    }

    /// The lab's processes of this session stopped in the order given
    /// (names), then the lab torn down.
    pub fn stop_in_order(
        self,
        names: &[&str],
        timeout: Duration,
    ) -> (Vec<(String, String)>, TeardownReport) {
        let mut stopped = Vec::new();
        for n in names {
            if let Some(p) = self.daemon(n) {
                let status = p
                    .terminate(timeout)
                    .map_or_else(|e| format!("error: {e}"), |s| s.to_string());
                stopped.push((n.to_string(), status));
            }
        }
        (stopped, self.stop())
    }

    /// Tears the lab down (daemons first).
    pub fn stop(mut self) -> TeardownReport {
        self.lab.teardown()
    }
}

fn no_daemon(name: &str) -> LabError {
    LabError::Daemon {
        path: "daemon".into(),
        name: name.to_string(),
        message: "no such daemon in this session".into(),
    }
}
