//! Named network namespaces, made and entered without the `ip` binary.
//!
//! A namespace is created the way iproute2's `ip netns add` does it: a thread
//! `unshare(CLONE_NEWNET)`s and its `/proc/thread-self/ns/net` is bind-mounted
//! onto `/run/netns/NAME` (with `/run/netns` made a shared mount first), so the
//! namespace outlives the thread and `ip netns exec NAME` sees it too.
//!
//! `setns(2)` applies to one thread only. Everything that must be *created*
//! inside a namespace (sockets, TUN devices, netlink sockets, reads of
//! `/proc/sys/net`) therefore runs on a dedicated thread: [`in_netns`] for a
//! one-shot closure, [`NetnsWorker`] for a long-lived thread that drives a
//! tokio current-thread runtime inside the namespace. File descriptors made
//! there keep their namespace when used from any other thread.

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Where named namespaces are bind-mounted (same place as iproute2).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
pub const IFNAME_MAX: usize = 15;

/// Errors of namespace handling.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The name is empty, `.`/`..`, too long, or contains `/` or NUL.
    #[error("invalid namespace name {0:?}")]
    InvalidName(String),
    /// `/run/netns/NAME` already exists.
    #[error("network namespace {0} already exists")]
    Exists(String),
    /// `/run/netns/NAME` does not exist.
    #[error("network namespace {0} does not exist")]
    NotFound(String),
    /// A system call failed.
    #[error("{op} (namespace {name}): {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The namespace concerned.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The namespace worker thread has stopped (its runtime ended).
    #[error("namespace worker for {0} has stopped")]
    WorkerGone(String),
}

fn sys<'a>(op: &'static str, name: &'a str) -> impl FnOnce(io::Error) -> NetnsError + 'a {
    move |source| NetnsError::Sys {
        op,
        name: name.to_string(),
        source,
    }
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn validate(name: &str) -> Result<(), NetnsError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains('/')
        || name.contains('\0');
    if bad {
        Err(NetnsError::InvalidName(name.to_string()))
    } else {
        Ok(())
    }
}

/// The bind-mount path of namespace `name`.
pub fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Whether `/run/netns/NAME` exists.
pub fn exists(name: &str) -> bool {
    validate(name).is_ok() && path_of(name).exists()
}

/// Serialises the one-time preparation of `/run/netns` inside this process.
static RUN_DIR_READY: Mutex<bool> = Mutex::new(false);

/// Creates `/run/netns` and makes it a shared mount, as iproute2 does, so
/// namespace mounts propagate to other mount namespaces.
fn prepare_run_dir() -> Result<(), NetnsError> {
    let mut ready = RUN_DIR_READY.lock().unwrap_or_else(|p| p.into_inner());
    if *ready {
        return Ok(());
    }
    fs::create_dir_all(NETNS_RUN_DIR).map_err(sys("mkdir /run/netns", ""))?;
    let mut bound = false;
    loop {
        match nix::mount::mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => break,
            // Not a mount point yet: bind it onto itself, then retry.
            Err(nix::Error::EINVAL) if !bound => {
                nix::mount::mount(
                    Some(NETNS_RUN_DIR),
                    NETNS_RUN_DIR,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| sys("bind-mount /run/netns", "")(nix_io(e)))?;
                bound = true;
            }
            Err(e) => return Err(sys("make /run/netns shared", "")(nix_io(e))),
        }
    }
    *ready = true;
    Ok(())
}

/// Creates the named network namespace `name` (like `ip netns add NAME`).
///
/// The new namespace has only `lo`, and `lo` is down.
pub fn create(name: &str) -> Result<(), NetnsError> {
    validate(name)?;
    prepare_run_dir()?;
    let path = path_of(name);
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(NetnsError::Exists(name.to_string()));
        }
        Err(e) => return Err(sys("create mount point", name)(e)),
    }
    let made = thread::scope(|s| {
        let worker = thread::Builder::new()
            .name("netns-create".into())
            .spawn_scoped(s, || -> Result<(), NetnsError> {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| sys("unshare(CLONE_NEWNET)", name)(nix_io(e)))?;
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    Some("none"),
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| sys("bind-mount namespace", name)(nix_io(e)))
            })
            .map_err(sys("spawn namespace thread", name))?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    if made.is_err() {
        let _ = fs::remove_file(&path);
    }
    made
}

/// Deletes the named namespace (like `ip netns del NAME`): detaches the bind
/// mount and removes the mount point. The namespace itself goes away when the
/// last socket, device fd or thread inside it is gone.
pub fn delete(name: &str) -> Result<(), NetnsError> {
    validate(name)?;
    let path = path_of(name);
    // Like iproute2, ignore umount errors (e.g. EINVAL when a creation
    // failed half-way and left a plain file) and unlink anyway.
    let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(NetnsError::NotFound(name.to_string()))
        }
        Err(e) => Err(sys("remove mount point", name)(e)),
    }
}

/// Opens a namespace fd by name (for `setns(2)` or `IFLA_NET_NS_FD`).
pub fn open(name: &str) -> Result<OwnedFd, NetnsError> {
    validate(name)?;
    match fs::File::open(path_of(name)) {
        Ok(f) => Ok(f.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(NetnsError::NotFound(name.to_string()))
        }
        Err(e) => Err(sys("open namespace", name)(e)),
    }
}

/// Runs `f` on a fresh thread that has entered namespace `name`, and returns
/// its result. A panic in `f` is propagated to the caller.
pub fn in_netns<F, R>(name: &str, f: F) -> Result<R, NetnsError>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let fd = open(name)?;
    run_in(fd.as_fd(), name, f)
}

/// Like [`in_netns`] with a namespace fd (e.g. from [`open`]).
pub fn in_netns_fd<F, R>(ns: BorrowedFd<'_>, f: F) -> Result<R, NetnsError>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    run_in(ns, "<fd>", f)
}

fn enter(ns: BorrowedFd<'_>, name: &str) -> Result<(), NetnsError> {
    nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| sys("setns", name)(nix_io(e)))
}

fn run_in<F, R>(ns: BorrowedFd<'_>, name: &str, f: F) -> Result<R, NetnsError>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    thread::scope(|s| {
        let worker = thread::Builder::new()
            .name(thread_name(name))
            .spawn_scoped(s, move || -> Result<R, NetnsError> {
                enter(ns, name)?;
                Ok(f())
            })
            .map_err(sys("spawn namespace thread", name))?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn thread_name(ns: &str) -> String {
    // Thread names are cut at 15 bytes by the kernel anyway.
    format!("ns:{}", ns.chars().take(12).collect::<String>())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next_count() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A namespace name unique to this process and call: `PREFIX-PID-N`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), next_count())
}

fn base36(mut v: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// An interface name unique to this process and call that fits in
/// [`IFNAME_MAX`] bytes: `PREFIX` (cut as needed), the pid and a counter in
/// base 36, separated by `x`.
pub fn unique_ifname(prefix: &str) -> String {
    let tail = format!("{}x{}", base36(std::process::id()), base36(next_count()));
    let room = IFNAME_MAX.saturating_sub(tail.len());
    let head: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(room)
        .collect();
    format!("{head}{tail}")
}

/// A named namespace that is deleted when dropped (also during a panic).
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
    armed: bool,
}

impl NetnsGuard {
    /// Creates namespace `name` and guards it.
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        create(name)?;
        Ok(Self {
            name: name.to_string(),
            armed: true,
        })
    }

    /// Creates a namespace named by [`unique_name`]`(prefix)`.
    pub fn create_unique(prefix: &str) -> Result<Self, NetnsError> {
        Self::create(&unique_name(prefix))
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a fd for the namespace.
    pub fn open(&self) -> Result<OwnedFd, NetnsError> {
        open(&self.name)
    }

    /// Runs `f` inside the namespace (see [`in_netns`]).
    pub fn run<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        in_netns(&self.name, f)
    }

    /// Deletes the namespace now, reporting errors.
    pub fn delete(mut self) -> Result<(), NetnsError> {
        self.armed = false;
        delete(&self.name)
    }

    /// Stops guarding: the namespace stays after drop. Returns its name.
    pub fn into_name(mut self) -> String {
        self.armed = false;
        std::mem::take(&mut self.name)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = delete(&self.name)
        {
            tracing::warn!(netns = %self.name, error = %e, "deleting namespace failed");
        }
    }
}

/// A long-lived thread inside a namespace that runs a tokio current-thread
/// runtime.
///
/// Futures given to [`NetnsWorker::spawn`] (or run by [`NetnsWorker::call`]) are polled on that thread, so the
/// sockets, TUN devices and netlink handles they create belong to the
/// namespace. (`tokio::task::spawn_blocking` from inside would run on other
/// threads, outside the namespace: don't create sockets there.) Dropping the
/// worker stops the runtime, cancels its tasks and joins the thread.
#[derive(Debug)]
pub struct NetnsWorker {
    name: String,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NetnsWorker {
    /// Starts a worker thread inside namespace `name`.
    pub fn start(name: &str) -> Result<Self, NetnsError> {
        let fd = open(name)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ns_name = name.to_string();
        let thread = thread::Builder::new()
            .name(thread_name(name))
            .spawn(move || {
                let started = enter(fd.as_fd(), &ns_name).and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(sys("build runtime", &ns_name))
                });
                drop(fd);
                match started {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(rt.handle().clone()));
                        // Drives every task spawned through the handle until
                        // the worker is dropped.
                        rt.block_on(async move {
                            let _ = stop_rx.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(sys("spawn namespace worker", name))?;
        let handle = ready_rx
            .recv()
            .map_err(|_| NetnsError::WorkerGone(name.to_string()))??;
        Ok(Self {
            name: name.to_string(),
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker's runtime handle (tasks spawned on it run in the namespace).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Spawns a future on the worker thread.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }

    /// Runs a closure on the worker thread and waits for its result. Blocks
    /// the calling thread: from async code use [`NetnsWorker::call`].
    pub fn run<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        });
        match rx.recv() {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(NetnsError::WorkerGone(self.name.clone())),
        }
    }

    /// Runs a closure on the worker thread and awaits its result.
    pub async fn call<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self.handle.spawn(async move { f() }).await {
            Ok(r) => Ok(r),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(NetnsError::WorkerGone(self.name.clone())),
        }
    }
}

impl Drop for NetnsWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take()
            && t.thread().id() != thread::current().id()
        {
            let _ = t.join();
        }
    }
}
