//! `testbed exec HOST -- CMD...`: run a command in a host's namespace.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use mip6_anycast::engine::netns;
use testbed::lab::process::NetnsEntry;
use testbed::lab::state;

/// Arguments of `testbed exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The lab (its prefix); default: the one running lab with HOST.
    #[arg(long, value_name = "PREFIX")]
    pub lab: Option<String>,
    /// The host (its topology name).
    pub host: String,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

pub fn run(args: &ExecArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let candidates: Vec<(String, String)> = state::list(state_dir)
        .into_iter()
        .filter_map(|(_, s)| s.ok())
        .filter(|s| args.lab.as_ref().is_none_or(|l| *l == s.prefix))
        .filter_map(|s| Some((s.prefix.clone(), s.netns_of(&args.host)?.to_string())))
        .collect();
    let ns = match candidates.as_slice() {
        [] => anyhow::bail!(
            "no running lab{} has host {:?} (see `testbed list`)",
            args.lab
                .as_ref()
                .map(|l| format!(" {l}"))
                .unwrap_or_default(),
            args.host
        ),
        [(_, ns)] => ns.clone(),
        several => anyhow::bail!(
            "several labs have host {:?}: {}; choose one with --lab",
            args.host,
            several
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let fd = netns::open(&ns).with_context(|| format!("opening namespace {ns}"))?;
    let (program, rest) = args.command.split_first().context("no command given")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    let entry = NetnsEntry::new(fd.as_raw_fd());
    // SAFETY: `enter` makes only async-signal-safe system calls; it runs in
    // this process right before execve (CommandExt::exec does not fork).
    unsafe {
        cmd.pre_exec(move || entry.enter());
    }
    let err = cmd.exec();
    Err(err).with_context(|| format!("running {} in {ns}", program.to_string_lossy()))
}
