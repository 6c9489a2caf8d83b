//! Starting the `[[daemon]]`s of a topology in a built lab.
//!
//! Kinds `home-agent`, `contact-node`, `mip6-cn` and `pias-proxy` run the
//! workspace binary of that name (found next to the running executable, see
//! [`find_workspace_binary`], or in [`DaemonOptions::bin_dir`]) as
//! `BINARY --config FILE ARGS...`: an inline `config = { ... }` table is
//! written to `out_dir/config/<daemon>.toml`, a `config = "path"` is passed
//! as the resolved path. `custom` runs `program ARGS...` (plus `--config
//! FILE` if it has a config). Each daemon logs to
//! `out_dir/logs/<host>-<daemon>.log`.
//!
//! A daemon is expected to keep running: one that exits within
//! [`DaemonOptions::startup_grace`] is reported as an error with its exit
//! status and the end of its log.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::error::LabError;
use super::{Lab, LabProcess, find_workspace_binary};
use crate::topology::{DaemonConfig, DaemonKind};

/// How to start daemons.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Directory of the workspace daemon binaries; default: found by
    /// [`find_workspace_binary`].
    pub bin_dir: Option<PathBuf>,
    /// A daemon that exits this soon after its start is an error.
    pub startup_grace: Duration,
    /// Extra environment for every daemon.
    pub env: Vec<(String, String)>,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            bin_dir: None,
            startup_grace: Duration::from_millis(300),
            env: Vec::new(),
        }
    }
}

/// The resolved command line of one daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonCommand {
    /// Index in the topology's `daemon` list.
    pub index: usize,
    /// Effective name.
    pub name: String,
    /// Host it runs in.
    pub host: String,
    /// Program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The config file passed with `--config`, if any.
    pub config: Option<PathBuf>,
}

/// The package that builds the binary of `kind`.
fn package_of(kind: DaemonKind) -> &'static str {
    match kind {
        DaemonKind::Mip6Cn => "mip6-anycast",
        other => other.as_str(),
    }
}

impl Lab {
    /// Resolves daemon `index` of the topology: finds its binary and writes
    /// its inline config file.
    pub fn daemon_command(
        &self,
        index: usize,
        opts: &DaemonOptions,
    ) -> Result<DaemonCommand, LabError> {
        let topo = self.topology();
        let d = topo.daemons.get(index).ok_or_else(|| LabError::Invalid {
            path: format!("daemon[{index}]"),
            message: "no such daemon".into(),
        })?;
        let name = d.name();
        let err = |message: String| LabError::Daemon {
            path: format!("daemon[{index}]"),
            name: name.clone(),
            message,
        };
        let program = match (d.kind, &d.program) {
            (DaemonKind::Custom, Some(p)) => PathBuf::from(p),
            (DaemonKind::Custom, None) => {
                return Err(err("a custom daemon needs `program`".into()));
            }
            (kind, _) => {
                let bin = kind.as_str();
                let found = match &opts.bin_dir {
                    Some(dir) => Some(dir.join(bin)).filter(|p| p.is_file()),
                    None => find_workspace_binary(bin),
                };
                found.ok_or_else(|| {
                    let where_ = opts.bin_dir.as_ref().map_or_else(
                        || "next to the testbed binary".to_string(),
                        |d| format!("in {}", d.display()),
                    );
                    err(format!(
                        "binary {bin:?} not found {where_}; build it with `cargo build -p {}`",
                        package_of(kind)
                    ))
                })?
            }
        };
        let config = match &d.config {
            None => None,
            Some(DaemonConfig::Path(_)) => topo.daemon_config_path(d),
            Some(DaemonConfig::Inline(table)) => {
                let dir = self.out_dir().join("config");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
                let file = dir.join(format!("{}.toml", super::process::file_safe(&name)));
                let text = toml::to_string(table)
                    .map_err(|e| err(format!("writing the config table: {e}")))?;
                std::fs::write(&file, text)
                    .map_err(|e| err(format!("writing {}: {e}", file.display())))?;
                Some(file)
            }
        };
        let mut args: Vec<OsString> = Vec::new();
        if let Some(c) = &config {
            args.push("--config".into());
            args.push(c.clone().into());
        }
        args.extend(d.args.iter().map(OsString::from));
        Ok(DaemonCommand {
            index,
            name,
            host: d.host.clone(),
            program,
            args,
            config,
        })
    }

    /// Starts every daemon of the topology, in order, and checks that each
    /// is still running after the startup grace. On error the daemons
    /// already started keep running until the lab is torn down.
    pub fn start_daemons(&self, opts: &DaemonOptions) -> Result<Vec<LabProcess>, LabError> {
        // Every binary and config first: nothing starts if one is missing.
        let cmds = (0..self.topology().daemons.len())
            .map(|i| self.daemon_command(i, opts))
            .collect::<Result<Vec<_>, _>>()?;
        let mut started = Vec::new();
        for cmd in cmds {
            let i = cmd.index;
            let p = self
                .spawn_named(
                    &cmd.host,
                    &cmd.name,
                    &cmd.program,
                    &cmd.args,
                    opts.env.iter().map(|(k, v)| (k, v)),
                )
                .map_err(|e| LabError::Daemon {
                    path: format!("daemon[{i}]"),
                    name: cmd.name.clone(),
                    message: match e {
                        LabError::Spawn { source, .. }
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            format!("program {} not found", cmd.program.display())
                        }
                        other => other.to_string(),
                    },
                })?;
            started.push((i, Instant::now(), p));
        }
        for (i, at, p) in &started {
            let left = opts.startup_grace.saturating_sub(at.elapsed());
            if let Some(status) = p.wait_timeout(left)? {
                let tail = p.log_tail(10);
                return Err(LabError::Daemon {
                    path: format!("daemon[{i}]"),
                    name: p.name().to_string(),
                    message: format!(
                        "{} exited at once ({status}); log {}:\n{}",
                        p.program(),
                        p.log_path().display(),
                        if tail.is_empty() {
                            "(empty)".into()
                        } else {
                            tail
                        }
                    ),
                });
            }
        }
        Ok(started.into_iter().map(|(_, _, p)| p).collect())
    }
}
