//! The reaper: a separate process that removes a lab when its owner dies
//! without tearing it down (panic=abort, SIGKILL, OOM, a crash).
//!
//! [`Lab::build`](super::Lab::build) starts `testbed reap` before it creates
//! the first namespace, with the read end of a pipe as the reaper's stdin.
//! The write end stays in the owner only (close-on-exec), so it closes
//! exactly when the owner process ends. A clean teardown writes
//! [`RELEASE`] before closing it; the reaper then exits without touching
//! anything. On a bare end of file the reaper kills every process in the
//! lab's namespaces (`<prefix>-*`, found by nsfs inode), deletes the
//! namespaces and the state file.
//!
//! The reaper runs in its own session, so Ctrl-C at the terminal and the
//! hang-up of a closed terminal do not reach it, and it ignores SIGINT,
//! SIGTERM and SIGHUP (a `pkill testbed` must not take the safety net away
//! with the lab); only SIGKILL stops it.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, Signal, signal};

use super::cleanup;
use super::error::LabError;
use super::state::ProcId;

/// What the owner writes before closing the pipe after a clean teardown.
pub const RELEASE: &[u8] = b"released\n";

/// Grace the reaper gives processes between SIGTERM and SIGKILL.
pub const REAPER_GRACE: Duration = Duration::from_millis(500);

/// The owner's side of a running reaper.
#[derive(Debug)]
pub(crate) struct ReaperHandle {
    child: Child,
    pipe: Option<OwnedFd>,
}

/// The arguments of `testbed reap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapArgs {
    /// The lab's prefix (namespaces `<prefix>-*`).
    pub prefix: String,
    /// The state file to remove afterwards.
    pub state_file: Option<PathBuf>,
    /// The owner whose end is awaited (for the log).
    pub owner: i32,
}

impl ReaperHandle {
    /// Starts `program reap ...` for lab `prefix`, logging to `log`.
    pub fn start(
        program: &Path,
        prefix: &str,
        state_file: Option<&Path>,
        log: &Path,
    ) -> Result<Self, LabError> {
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| {
            LabError::io("creating the reaper pipe")(std::io::Error::from_raw_os_error(e as i32))
        })?;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(LabError::io(format!("creating {}", dir.display())))?;
        }
        let log_file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(LabError::io(format!("opening {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(LabError::io("duplicating the reaper log fd"))?;
        let mut cmd = Command::new(program);
        cmd.arg("reap")
            .arg("--prefix")
            .arg(prefix)
            .arg("--owner")
            .arg(std::process::id().to_string());
        if let Some(s) = state_file {
            cmd.arg("--state-file").arg(s);
        }
        cmd.stdin(Stdio::from(read_end))
            .stdout(log_file)
            .stderr(log_err);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(LabError::io(format!(
            "starting the reaper {}",
            program.display()
        )))?;
        Ok(ReaperHandle {
            child,
            pipe: Some(write_end),
        })
    }

    /// The reaper process.
    pub fn proc(&self) -> ProcId {
        let pid = self.child.id() as i32;
        ProcId::of(pid).unwrap_or(ProcId { pid, start_time: 0 })
    }

    /// After a clean teardown: tells the reaper to exit without acting and
    /// waits for it (briefly; it is killed if it does not go).
    pub fn release(mut self) -> Result<(), String> {
        let mut problem = None;
        if let Some(fd) = self.pipe.take() {
            let mut f = std::fs::File::from(fd);
            if let Err(e) = f.write_all(RELEASE) {
                problem = Some(format!("telling the reaper: {e}"));
            }
        }
        for _ in 0..200 {
            match self.child.try_wait() {
                Ok(Some(_)) => return problem.map_or(Ok(()), Err),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("waiting for the reaper: {e}")),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(problem.unwrap_or_else(|| "the reaper did not exit; killed it".into()))
    }
}

/// The reaper's main (`testbed reap`): waits for the owner's end, then
/// cleans up unless released. Returns the exit code.
pub fn run(args: &ReapArgs) -> i32 {
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: installing SIG_IGN has no handler code to be unsafe.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(buf.get(..n).unwrap_or_default());
                // Bounded: only the release word matters.
                if got.len() > 4096 {
                    got.drain(..got.len() - RELEASE.len());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Cannot watch the owner any more: clean up now rather than never.
            Err(_) => break,
        }
    }
    if got.ends_with(RELEASE) {
        return 0;
    }
    eprintln!(
        "reaper: owner {} of lab {} ended without teardown; removing the lab",
        args.owner, args.prefix
    );
    let report = cleanup::sweep(&args.prefix, &[args.owner], REAPER_GRACE);
    eprintln!(
        "reaper: killed {} processes, deleted namespaces {:?}",
        report.killed, report.deleted
    );
    for e in &report.errors {
        eprintln!("reaper: {e}");
    }
    if let Some(s) = &args.state_file {
        match std::fs::remove_file(s) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("reaper: removing {}: {e}", s.display()),
        }
    }
    i32::from(!report.errors.is_empty())
}
