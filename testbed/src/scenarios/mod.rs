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

use std::process::ExitStatus;

use crate::lab::{DaemonOptions, Lab, LabError, LabOptions, LabProcess, TeardownReport};
use crate::topology::Topology;

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
        Ok(Session { lab, daemons })
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

    /// Tears the lab down (daemons first).
    pub fn stop(mut self) -> TeardownReport {
        self.lab.teardown()
    }
}
