//! Processes started inside a lab host's namespace.
//!
//! The child enters the namespace between `fork` and `exec` (`setns` on a
//! namespace fd opened before the fork), becomes the leader of its own
//! process group (so Ctrl-C at the terminal reaches only the testbed, which
//! then stops its processes in order, and so [`LabProcess::terminate`] also
//! reaches the daemon's own children), and asks for `SIGKILL` when its parent
//! dies (`PR_SET_PDEATHSIG`).
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
//! not the process. Every lab process is therefore forked by one spawner
//! thread that lives as long as the testbed process, never by a short-lived
//! worker thread.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::error::LabError;
use super::state::{ProcId, ProcState};

type Job = Box<dyn FnOnce() + Send>;

/// How often waits look at a process.
const WAIT_POLL: Duration = Duration::from_millis(5);

/// The spawner thread's queue (started on first use, never ends).
fn spawner() -> Option<mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("lab-spawner".into())
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
        .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner).clone())
}

/// Runs `f` on the spawner thread and returns its result.
fn on_spawner<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> std::io::Result<R> {
    let gone = || std::io::Error::other("the lab's spawner thread is gone");
    let tx = spawner().ok_or_else(gone)?;
    let (rtx, rrx) = mpsc::channel();
    tx.send(Box::new(move || {
        let _ = rtx.send(f());
    }))
    .map_err(|_| gone())?;
    rrx.recv().map_err(|_| gone())
}

/// What to start.
#[derive(Debug, Clone)]
pub(crate) struct SpawnRequest {
    pub host: String,
    pub name: String,
    pub program: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub log: PathBuf,
}

/// Forks and execs `req` inside the namespace `ns` (on the spawner thread).
pub(crate) fn spawn_in(ns: OwnedFd, req: SpawnRequest) -> Result<LabProcess, LabError> {
    let spawn_err = |source| LabError::Spawn {
        host: req.host.clone(),
        program: req.program.to_string_lossy().into_owned(),
        source,
    };
    if let Some(dir) = req.log.parent() {
        std::fs::create_dir_all(dir).map_err(spawn_err)?;
    }
    let log = File::options()
        .create(true)
        .append(true)
        .open(&req.log)
        .map_err(spawn_err)?;
    // A header per start: a log may collect several runs (same name, same
    // output directory).
    let ms = super::state::unix_ms();
    let mut header = format!(
        "# testbed: started at unix time {}.{:03} in host {}: {}",
        ms / 1000,
        ms % 1000,
        req.host,
        req.program.to_string_lossy()
    );
    for a in &req.args {
        header.push(' ');
        header.push_str(&a.to_string_lossy());
    }
    header.push('\n');
    (&log).write_all(header.as_bytes()).map_err(spawn_err)?;
    let log2 = log.try_clone().map_err(spawn_err)?;
    let mut cmd = Command::new(&req.program);
    cmd.args(&req.args)
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let parent = std::process::id() as libc::pid_t;
    let entry = NetnsEntry::new(ns.as_raw_fd());
    // SAFETY: the closure only makes async-signal-safe system calls
    // (setpgid, prctl, getppid, sigprocmask and those of `NetnsEntry::enter`)
    // and builds io::Errors from errno values, which does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            entry.enter()?;
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = on_spawner(move || {
        let r = cmd.spawn();
        drop(ns);
        r
    })
    .and_then(|r| r)
    .map_err(spawn_err)?;
    let pid = child.id() as i32;
    Ok(LabProcess {
        inner: Arc::new(Inner {
            proc: ProcId::of(pid).unwrap_or(ProcId { pid, start_time: 0 }),
            host: req.host,
            name: req.name,
            program: req.program.to_string_lossy().into_owned(),
            log: req.log,
            child: Mutex::new(child),
            status: Mutex::new(None),
        }),
    })
}

/// Entering a network namespace between `fork` and `exec`, the way
/// `ip netns exec` does: `setns` into the namespace, then a private mount
/// namespace with a fresh sysfs on `/sys`, so that `/sys/class/net` shows
/// the namespace's interfaces. The sysfs step is best effort (the process
/// runs in the right network namespace even where mounting is not allowed).
#[derive(Debug, Clone, Copy)]
pub struct NetnsEntry {
    ns_fd: RawFd,
}

impl NetnsEntry {
    /// For the namespace fd `ns_fd`, which must stay open until the child
    /// has called [`NetnsEntry::enter`] (until `spawn`/`exec` returns).
    pub fn new(ns_fd: RawFd) -> Self {
        NetnsEntry { ns_fd }
    }

    /// Enters the namespace. Only async-signal-safe system calls, no
    /// allocation: for `CommandExt::pre_exec`.
    pub fn enter(&self) -> std::io::Result<()> {
        // SAFETY: plain system calls on a caller-provided fd and on static
        // NUL-terminated strings.
        unsafe {
            if libc::setns(self.ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNS) == 0 {
                let root = c"/".as_ptr();
                let sys = c"/sys".as_ptr();
                let flags = libc::MS_SLAVE | libc::MS_REC;
                // Keep our mounts from propagating back to the host.
                if libc::mount(
                    std::ptr::null(),
                    root,
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) == 0
                    && libc::umount2(sys, libc::MNT_DETACH) == 0
                {
                    libc::mount(
                        c"sysfs".as_ptr(),
                        sys,
                        c"sysfs".as_ptr(),
                        0,
                        std::ptr::null(),
                    );
                }
            }
        }
        Ok(())
    }
}

struct Inner {
    proc: ProcId,
    host: String,
    name: String,
    program: String,
    log: PathBuf,
    child: Mutex<Child>,
    status: Mutex<Option<ExitStatus>>,
}

/// A process running in a lab host (a cheap, cloneable handle; the lab
/// keeps one too and stops the process at teardown).
#[derive(Clone)]
pub struct LabProcess {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LabProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabProcess")
            .field("pid", &self.inner.proc.pid)
            .field("host", &self.inner.host)
            .field("name", &self.inner.name)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LabProcess {
    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.inner.proc.pid as u32
    }

    /// The host it runs in.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Its name (log file `<host>-<name>.log`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The program as given.
    pub fn program(&self) -> &str {
        &self.inner.program
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.inner.log
    }

    pub(crate) fn state(&self) -> ProcState {
        ProcState {
            name: self.inner.name.clone(),
            host: self.inner.host.clone(),
            program: self.inner.program.clone(),
            proc: self.inner.proc,
            log: self.inner.log.clone(),
        }
    }

    /// The exit status if it has exited (reaps it), without blocking.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>, LabError> {
        let mut status = lock(&self.inner.status);
        if status.is_none() {
            *status = lock(&self.inner.child)
                .try_wait()
                .map_err(LabError::io(format!("waiting for pid {}", self.pid())))?;
        }
        Ok(*status)
    }

    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Waits at most `timeout` for it to exit.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    /// Waits until it exits.
    pub fn wait(&self) -> Result<ExitStatus, LabError> {
        loop {
            if let Some(s) = self.wait_timeout(Duration::from_secs(3600))? {
                return Ok(s);
            }
        }
    }

    /// Sends `sig` to the process (not to its group). A process that has
    /// exited already is not an error.
    pub fn signal(&self, sig: Signal) -> Result<(), LabError> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        match kill(Pid::from_raw(self.inner.proc.pid), sig) {
            Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
            Err(e) => Err(LabError::Io {
                context: format!("kill -{sig} {}", self.pid()),
                source: std::io::Error::from_raw_os_error(e as i32),
            }),
        }
    }

    fn signal_group(&self, sig: Signal) {
        // The group outlives its leader while members remain; its id is
        // not reused until the last member is gone.
        let _ = killpg(Pid::from_raw(self.inner.proc.pid), sig);
    }

    /// Stops it: SIGTERM to its process group, then SIGKILL if it has not
    /// exited within `timeout`. Returns the exit status; idempotent.
    pub fn terminate(&self, timeout: Duration) -> Result<ExitStatus, LabError> {
        if let Some(s) = self.try_wait()? {
            self.signal_group(Signal::SIGKILL);
            return Ok(s);
        }
        self.signal_group(Signal::SIGTERM);
        let status = match self.wait_timeout(timeout)? {
            Some(s) => s,
            None => {
                tracing::warn!(pid = self.pid(), name = %self.inner.name, "no exit after SIGTERM; SIGKILL");
                self.signal_group(Signal::SIGKILL);
                self.wait()?
            }
        };
        // Children of the process that ignored SIGTERM.
        self.signal_group(Signal::SIGKILL);
        Ok(status)
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.inner.log, lines)
    }
}

/// The last `lines` lines of a file (at most 64 KiB read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A file name made of a program path: its last component.
pub(crate) fn program_name(program: &OsStr) -> String {
    Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "process".into())
}

/// A name usable in a log file name: letters, digits, `-`, `_`, `.`.
pub(crate) fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("p{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_files() {
        assert_eq!(program_name(OsStr::new("/usr/bin/ping")), "ping");
        assert_eq!(program_name(OsStr::new("")), "process");
        assert_eq!(file_safe("a b/c"), "a_b_c");
        assert_eq!(file_safe(".."), "p..");
    }

    #[test]
    fn tail_of_a_log() {
        let p = std::env::temp_dir().join(format!("lab-tail-{}", std::process::id()));
        std::fs::write(&p, "1\n2\n3\n4\n").unwrap();
        assert_eq!(log_tail(&p, 2), "3\n4");
        assert_eq!(log_tail(&p, 10), "1\n2\n3\n4");
        let _ = std::fs::remove_file(&p);
        assert_eq!(log_tail(&p, 2), "");
    }
}
