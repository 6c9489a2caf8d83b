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

pub mod bench;
pub mod daemons;
pub mod demo;
pub mod drill;
pub mod pias;
pub mod probe;
pub mod sweep;

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::lab::{DaemonOptions, Lab, LabError, LabOptions, LabProcess, TeardownReport};
use crate::topology::{DaemonConfig, Topology};

pub use daemons::{DaemonFiles, place_daemon_files};

/// What every scenario is given: where to write, which topology, how to
/// build the lab and where the daemon binaries are.
#[derive(Debug, Clone)]
pub struct ScenarioBase {
    /// Output directory (reports, pcap/, logs/, config/).
    pub out: PathBuf,
    /// Topology file (default: the scenario's built-in topology).
    pub topology: Option<PathBuf>,
    /// Lab options (family, state directory, reaper); `out_dir` is set
    /// from `out`.
    pub lab: LabOptions,
    /// Directory of the daemon binaries (default: next to the running
    /// program, else the workspace's target directory).
    pub bin_dir: Option<PathBuf>,
}

impl ScenarioBase {
    /// Defaults with output in `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        ScenarioBase {
            out: out.into(),
            topology: None,
            lab: LabOptions::default(),
            bin_dir: None,
        }
    }

    /// The topology file, or `builtin` (the scenario's own, named `what`
    /// in errors); validated.
    pub fn load_topology(&self, builtin: &str, what: &str) -> anyhow::Result<Topology> {
        use anyhow::Context as _;
        let t = match &self.topology {
            Some(p) => Topology::load(p).with_context(|| format!("loading {}", p.display()))?,
            None => Topology::from_toml_str(builtin)
                .with_context(|| format!("the built-in {what} topology"))?,
        };
        t.validate().context("topology")?;
        Ok(t)
    }

    /// Puts the daemons' files under `out`, builds the lab and starts its
    /// daemons.
    pub fn start(&self, topo: &mut Topology) -> anyhow::Result<Session> {
        use anyhow::Context as _;
        place_daemon_files(topo, &self.out);
        Session::start(
            topo,
            SessionOptions {
                lab: LabOptions {
                    out_dir: Some(self.out.clone()),
                    ..self.lab.clone()
                },
                daemons: Some(DaemonOptions {
                    bin_dir: self.bin_dir.clone(),
                    ..Default::default()
                }),
            },
        )
        .context("starting the lab")
    }

    /// The lab's prefix and output directory, for reports.
    pub fn lab_info(&self, session: &Session) -> std::collections::BTreeMap<String, String> {
        [
            ("prefix".to_string(), session.lab.prefix().to_string()),
            ("out".to_string(), self.out.display().to_string()),
        ]
        .into()
    }

    /// Creates `out`, runs `f`, and writes what it returns as pretty JSON
    /// into `out/file` (also when `f` failed: `on_error` records the error
    /// in the report first).
    pub fn write_report<R: serde::Serialize>(
        &self,
        file: &str,
        report: &mut R,
        f: impl FnOnce(&mut R) -> anyhow::Result<()>,
        on_error: impl FnOnce(&mut R, String),
    ) -> anyhow::Result<()> {
        use anyhow::Context as _;
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        if let Err(e) = f(report) {
            on_error(report, format!("{e:#}"));
        }
        let path = self.out.join(file);
        let text = serde_json::to_string_pretty(report).context("serializing the report")?;
        std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

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
