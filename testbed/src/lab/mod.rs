//! The lab: a topology made real as network namespaces, links and
//! processes, and everything to take it down again.
//!
//! ```no_run
//! use testbed::lab::{Lab, LabOptions};
//! use testbed::topology::Topology;
//!
//! let topo = Topology::load("testbed/topologies/demo.toml".as_ref())?;
//! let lab = Lab::build(&topo, LabOptions::default())?;
//! let k = lab.global_addr("K").expect("K has an address");
//! let ping = lab.spawn("C", "ping", ["-6", "-c", "3", &k.to_string()], [("LC_ALL", "C")])?;
//! ping.wait()?;
//! let stats = lab.link_stats("c-r");
//! drop(lab); // tears down: processes, links (captures flushed), namespaces
//! # let _ = stats;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What [`Lab::build`] does, in order: claims a prefix unique on the
//! machine and writes the state file ([`state`]); starts the reaper
//! ([`reaper`]) that removes the lab if this process dies without a
//! teardown; creates one namespace `<prefix>-<host>` per host with DAD off,
//! forwarding as the host says, `lo` up with its addresses; creates the
//! links (veth pairs, or a TUN in each namespace joined by an
//! [`EmulatedLink`] with the link's delay, loss, rate and capture);
//! adds the addresses (`nodad`) and waits until each is usable; adds the
//! routes. See [`build`] for what makes IPv6 work on TUN links.
//!
//! Teardown (explicit with [`Lab::teardown`], or on drop) stops the
//! processes (SIGTERM, then SIGKILL), kills anything else left in the
//! namespaces, stops the links (flushing the captures), deletes the
//! namespaces and the state file, and releases the reaper. It is
//! idempotent and never panics.

pub mod build;
pub mod cleanup;
pub mod daemons;
mod error;
pub mod naming;
pub mod process;
pub mod reaper;
pub mod signals;
pub mod state;
mod summary;

use std::ffi::{OsStr, OsString};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mip6_anycast::engine::netlink::{Netlink, NetlinkError};
use mip6_anycast::engine::netns::{self, NetnsWorker};

pub use daemons::DaemonOptions;
pub use error::LabError;
pub use naming::DEFAULT_FAMILY;
pub use process::LabProcess;
pub use state::DEFAULT_STATE_DIR;

use crate::linkemu::{EmulatedLink, LinkHandle, LinkStats};
use crate::topology::{Ipv6Prefix, LinkKind, Topology};
use reaper::ReaperHandle;
use state::{HostState, LabState, LabStatus, LinkState, ProcId};

/// How long teardown waits for a process after SIGTERM before SIGKILL.
pub const PROCESS_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Grace for strays found in the namespaces at teardown.
const STRAY_GRACE: Duration = Duration::from_millis(500);

/// Which reaper process guards the lab against a crash of its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reaper {
    /// The `testbed` binary found by [`find_workspace_binary`]; without it,
    /// a warning and no reaper (teardown on drop and `testbed down --all`
    /// still clean up).
    #[default]
    Auto,
    /// This program, run as `PROGRAM reap ...` (a `testbed` binary). An
    /// error if it cannot be started.
    Program(PathBuf),
    /// No reaper.
    Off,
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The name family of the lab's prefix (`FAMILY<pid>x<n>`), lowercase
    /// letters; default [`DEFAULT_FAMILY`]. `testbed down --all` removes
    /// leftovers of one family.
    pub family: String,
    /// Output directory (logs, pcaps, configs); default
    /// `$TMPDIR/mip6-testbed/<prefix>`. Created if missing; kept after
    /// teardown.
    pub out_dir: Option<PathBuf>,
    /// Capture override for emulated links: `None` = each link's `capture`
    /// flag, `Some(true)` = every emulated link, `Some(false)` = none.
    pub capture: Option<bool>,
    /// Directory of the state files; default [`DEFAULT_STATE_DIR`].
    pub state_dir: PathBuf,
    /// The crash guard.
    pub reaper: Reaper,
    /// Hang guard: how long to wait for the kernel to make an address usable.
    pub ready_timeout: Duration,
    /// The topology file, recorded in the state file.
    pub topology_path: Option<PathBuf>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            family: DEFAULT_FAMILY.into(),
            out_dir: None,
            capture: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            reaper: Reaper::Auto,
            ready_timeout: Duration::from_secs(10),
            topology_path: None,
        }
    }
}

impl LabOptions {
    /// Defaults with output in `out_dir`.
    pub fn with_out_dir(out_dir: impl Into<PathBuf>) -> Self {
        LabOptions {
            out_dir: Some(out_dir.into()),
            ..Default::default()
        }
    }
}

/// A host of a built lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    /// The topology name.
    pub name: String,
    /// Its namespace.
    pub netns: String,
    /// IPv6 forwarding on.
    pub forwarding: bool,
    /// Addresses on `lo`.
    pub lo: Vec<Ipv6Prefix>,
}

/// One end of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEnd {
    /// The host.
    pub host: String,
    /// The interface name in the host's namespace.
    pub ifname: String,
    /// The interface index in the host's namespace (0 until created).
    pub ifindex: u32,
    /// Its addresses.
    pub addrs: Vec<Ipv6Prefix>,
}

/// A link of a built lab.
#[derive(Debug, Clone, PartialEq)]
pub struct LabLink {
    /// The topology name.
    pub name: String,
    /// veth or emulated.
    pub kind: LinkKind,
    /// End `a`.
    pub a: LinkEnd,
    /// End `b`.
    pub b: LinkEnd,
    /// MTU of both ends.
    pub mtu: u32,
    /// The capture file, if the link captures.
    pub pcap: Option<PathBuf>,
}

impl LabLink {
    /// The end in `host`.
    pub fn end_of(&self, host: &str) -> Option<&LinkEnd> {
        [&self.a, &self.b].into_iter().find(|e| e.host == host)
    }
}

/// What a teardown did.
#[derive(Debug, Clone, Default)]
pub struct TeardownReport {
    /// Lab processes stopped, with how they ended.
    pub processes: Vec<(String, String)>,
    /// Other processes found in the namespaces and killed.
    pub strays_killed: usize,
    /// Final counters of the emulated links.
    pub link_stats: Vec<(String, LinkStats)>,
    /// Namespaces deleted.
    pub namespaces_deleted: Vec<String>,
    /// What could not be done (the rest was done anyway).
    pub errors: Vec<String>,
}

/// A running lab. See the [module docs](self).
pub struct Lab {
    prefix: String,
    family: String,
    out_dir: PathBuf,
    state_path: PathBuf,
    topology: Topology,
    hosts: Vec<LabHost>,
    links: Vec<LabLink>,
    /// Parallel to `links`: the running emulated links.
    emulated: Vec<Option<EmulatedLink>>,
    /// Namespaces that exist (for teardown).
    created_ns: Vec<String>,
    procs: Mutex<Vec<LabProcess>>,
    state: Mutex<LabState>,
    reaper: Option<ReaperHandle>,
    torn_down: bool,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("prefix", &self.prefix)
            .field("out_dir", &self.out_dir)
            .field("hosts", &self.hosts.len())
            .field("links", &self.links.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a workspace binary `name` is: `$MIP6_TESTBED_BIN_DIR/name`, else
/// next to the running executable, else one level up (the running
/// executable is a test in `target/<profile>/deps/`).
pub fn find_workspace_binary(name: &str) -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("MIP6_TESTBED_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        dirs.push(dir.to_owned());
        if dir.file_name().is_some_and(|n| n == "deps")
            && let Some(up) = dir.parent()
        {
            dirs.push(up.to_owned());
        }
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Claims a fresh prefix of `family`: no namespace and no state file uses
/// it. Returns the prefix and its (created, empty) state file.
fn claim_prefix(family: &str, state_dir: &Path) -> Result<(String, PathBuf), LabError> {
    let pid = std::process::id();
    for _ in 0..10_000 {
        let prefix = naming::make_prefix(family, pid, naming::next_run_number());
        if !cleanup::namespaces_with_prefix(&prefix).is_empty() {
            continue;
        }
        let path = state::state_path(state_dir, &prefix);
        if state::claim(&path)? {
            return Ok((prefix, path));
        }
    }
    Err(LabError::Option {
        option: "family",
        message: format!("no free prefix for family {family:?}"),
    })
}

impl Lab {
    /// Builds the lab of `topo` (validated first). Blocks until every
    /// address is usable; from async code call it in `spawn_blocking`.
    /// On error, whatever was created is removed again.
    pub fn build(topo: &Topology, opts: LabOptions) -> Result<Lab, LabError> {
        topo.validate()?;
        build::check_buildable(topo)?;
        naming::check_family(&opts.family).map_err(|message| LabError::Option {
            option: "family",
            message,
        })?;
        let (prefix, state_path) = claim_prefix(&opts.family, &opts.state_dir)?;
        let mut lab = Lab::plan(topo, &opts, prefix, state_path);
        // From here on, dropping `lab` removes what exists.
        std::fs::create_dir_all(lab.out_dir.join("logs")).map_err(LabError::io(format!(
            "creating output directory {}",
            lab.out_dir.display()
        )))?;
        lab.save_state()?;
        lab.start_reaper(&opts)?;
        lab.save_state()?;
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(LabError::io("starting the build runtime"))?;
                rt.block_on(lab.build_objects(topo, &opts))
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        lock(&lab.state).status = LabStatus::Up;
        lab.save_state()?;
        let summary = serde_json::to_vec_pretty(&*lock(&lab.state)).unwrap_or_default();
        let _ = std::fs::write(lab.out_dir.join("lab.json"), summary);
        tracing::info!(prefix = %lab.prefix, out = %lab.out_dir.display(), "lab up");
        Ok(lab)
    }

    /// The lab's bookkeeping before anything exists.
    fn plan(topo: &Topology, opts: &LabOptions, prefix: String, state_path: PathBuf) -> Lab {
        let out_dir = opts
            .out_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("mip6-testbed").join(&prefix));
        let hosts: Vec<LabHost> = topo
            .hosts
            .iter()
            .map(|h| LabHost {
                name: h.name.clone(),
                netns: naming::namespace_name(&prefix, &h.name),
                forwarding: h.forwards(),
                lo: h.lo.clone(),
            })
            .collect();
        let ifnames = naming::link_ifnames(topo);
        let links: Vec<LabLink> = topo
            .links
            .iter()
            .zip(ifnames)
            .map(|(l, (a_if, b_if))| LabLink {
                name: l.name(),
                kind: l.kind,
                a: LinkEnd {
                    host: l.a.clone(),
                    ifname: a_if,
                    ifindex: 0,
                    addrs: l.a_addr.clone(),
                },
                b: LinkEnd {
                    host: l.b.clone(),
                    ifname: b_if,
                    ifindex: 0,
                    addrs: l.b_addr.clone(),
                },
                mtu: l.mtu(),
                pcap: None,
            })
            .collect();
        let owner_pid = std::process::id() as i32;
        let state = LabState {
            version: state::STATE_VERSION,
            prefix: prefix.clone(),
            family: opts.family.clone(),
            lab_name: topo.lab.name.clone(),
            topology: opts.topology_path.clone(),
            status: LabStatus::Building,
            owner: ProcId::of(owner_pid).unwrap_or(ProcId {
                pid: owner_pid,
                start_time: 0,
            }),
            owner_cmdline: state::cmdline(owner_pid),
            reaper: None,
            out_dir: out_dir.clone(),
            created_unix_ms: state::unix_ms(),
            hosts: hosts
                .iter()
                .map(|h| HostState {
                    name: h.name.clone(),
                    netns: h.netns.clone(),
                })
                .collect(),
            links: Vec::new(),
            processes: Vec::new(),
        };
        Lab {
            emulated: links.iter().map(|_| None).collect(),
            prefix,
            family: opts.family.clone(),
            out_dir,
            state_path,
            topology: topo.clone(),
            hosts,
            links,
            created_ns: Vec::new(),
            procs: Mutex::new(Vec::new()),
            state: Mutex::new(state),
            reaper: None,
            torn_down: false,
        }
    }

    fn start_reaper(&mut self, opts: &LabOptions) -> Result<(), LabError> {
        let program = match &opts.reaper {
            Reaper::Off => return Ok(()),
            Reaper::Program(p) => p.clone(),
            Reaper::Auto => match find_workspace_binary("testbed") {
                Some(p) => p,
                None => {
                    tracing::warn!(
                        "no testbed binary found for the reaper: a crash of this process may leave lab {} behind (`testbed down --all` removes it)",
                        self.prefix
                    );
                    return Ok(());
                }
            },
        };
        let log = self.out_dir.join("logs").join("reaper.log");
        let handle = ReaperHandle::start(&program, &self.prefix, Some(&self.state_path), &log)?;
        lock(&self.state).reaper = Some(handle.proc());
        self.reaper = Some(handle);
        Ok(())
    }

    /// Writes the state file (links and processes as they are now).
    fn save_state(&self) -> Result<(), LabError> {
        let mut st = lock(&self.state);
        st.links = self
            .links
            .iter()
            .map(|l| LinkState {
                name: l.name.clone(),
                kind: match l.kind {
                    LinkKind::Veth => "veth".into(),
                    LinkKind::Emulated => "emulated".into(),
                },
                a: l.a.host.clone(),
                b: l.b.host.clone(),
                a_ifname: l.a.ifname.clone(),
                b_ifname: l.b.ifname.clone(),
                pcap: l.pcap.clone(),
            })
            .collect();
        st.processes = lock(&self.procs).iter().map(LabProcess::state).collect();
        st.save(&self.state_path)
    }

    // ----- accessors -----

    /// The lab's prefix (`FAMILY<pid>x<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The family the prefix belongs to.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// The output directory.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// The state file.
    pub fn state_file(&self) -> &Path {
        &self.state_path
    }

    /// The topology the lab was built from.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The hosts, in topology order.
    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The namespace of host `name`.
    pub fn ns(&self, host: &str) -> Option<&str> {
        self.host(host).map(|h| h.netns.as_str())
    }

    fn ns_or_err(&self, host: &str) -> Result<&str, LabError> {
        self.ns(host)
            .ok_or_else(|| LabError::UnknownHost(host.to_string()))
    }

    /// The links, in topology order.
    pub fn links(&self) -> &[LabLink] {
        &self.links
    }

    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&LabLink> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The first address of `host` on `link`.
    pub fn addr(&self, host: &str, link: &str) -> Option<Ipv6Addr> {
        self.link(link)?
            .end_of(host)?
            .addrs
            .first()
            .map(|p| p.addr())
    }

    /// The interface of `host` on `link`: (name, index).
    pub fn interface(&self, host: &str, link: &str) -> Option<(&str, u32)> {
        let e = self.link(link)?.end_of(host)?;
        Some((e.ifname.as_str(), e.ifindex))
    }

    /// The first global (not link-local) address of `host`: on its links in
    /// topology order, else on `lo`.
    pub fn global_addr(&self, host: &str) -> Option<Ipv6Addr> {
        let global = |a: &Ipv6Addr| a.segments()[0] & 0xffc0 != 0xfe80;
        self.links
            .iter()
            .filter_map(|l| l.end_of(host))
            .flat_map(|e| e.addrs.iter().map(|p| p.addr()))
            .find(global)
            .or_else(|| self.host(host)?.lo.iter().map(|p| p.addr()).find(global))
    }

    /// A handle on emulated link `name` for live changes (delay, loss,
    /// down) and counters; `None` for unknown or veth links.
    pub fn link_handle(&self, name: &str) -> Option<LinkHandle> {
        let i = self.links.iter().position(|l| l.name == name)?;
        self.emulated.get(i)?.as_ref().map(EmulatedLink::handle)
    }

    /// The counters of emulated link `name` now.
    pub fn link_stats(&self, name: &str) -> Option<LinkStats> {
        self.link_handle(name).map(|h| h.stats())
    }

    /// The capture file of link `name`, if it captures.
    pub fn pcap_path(&self, name: &str) -> Option<&Path> {
        self.link(name)?.pcap.as_deref()
    }

    /// A netlink handle on `host`'s namespace (needs a tokio runtime).
    pub fn netlink(&self, host: &str) -> Result<Netlink, LabError> {
        let ns = self.ns_or_err(host)?;
        Netlink::in_netns(ns).map_err(|e: NetlinkError| LabError::Netlink {
            context: format!("netlink in host {host}"),
            source: e,
        })
    }

    // ----- running code and processes -----

    /// Runs `f` on a thread inside `host`'s namespace and returns its
    /// result (sockets it creates belong to the host).
    pub fn run_in<F, R>(&self, host: &str, f: F) -> Result<R, LabError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let ns = self.ns_or_err(host)?;
        netns::in_netns(ns, f).map_err(LabError::netns(format!("running in host {host}")))
    }

    /// A long-lived worker thread with a tokio runtime inside `host`'s
    /// namespace.
    pub fn worker(&self, host: &str) -> Result<NetnsWorker, LabError> {
        let ns = self.ns_or_err(host)?;
        NetnsWorker::start(ns).map_err(LabError::netns(format!("worker in host {host}")))
    }

    /// Starts `program args...` inside `host`, with `env` added to this
    /// process's environment and stdout/stderr appended to
    /// `out_dir/logs/<host>-<program name>.log`.
    pub fn spawn(
        &self,
        host: &str,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    ) -> Result<LabProcess, LabError> {
        let name = process::program_name(program.as_ref());
        self.spawn_named(host, &name, program, args, env)
    }

    /// Like [`Lab::spawn`] with an explicit name (log file
    /// `<host>-<name>.log`).
    pub fn spawn_named(
        &self,
        host: &str,
        name: &str,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    ) -> Result<LabProcess, LabError> {
        if self.torn_down {
            return Err(LabError::TornDown(self.prefix.clone()));
        }
        let ns = self.ns_or_err(host)?;
        let fd =
            netns::open(ns).map_err(LabError::netns(format!("opening namespace of {host}")))?;
        let log = self.out_dir.join("logs").join(format!(
            "{}-{}.log",
            process::file_safe(host),
            process::file_safe(name)
        ));
        let req = process::SpawnRequest {
            host: host.to_string(),
            name: name.to_string(),
            program: program.as_ref().to_owned(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            env: env
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
                .collect::<Vec<(OsString, OsString)>>(),
            log,
        };
        let p = process::spawn_in(fd, req)?;
        lock(&self.procs).push(p.clone());
        if let Err(e) = self.save_state() {
            tracing::warn!(error = %e, "updating the state file");
        }
        Ok(p)
    }

    /// The processes started in the lab (running or not).
    pub fn processes(&self) -> Vec<LabProcess> {
        lock(&self.procs).clone()
    }

    // ----- teardown -----

    /// Whether the lab has been torn down.
    pub fn is_torn_down(&self) -> bool {
        self.torn_down
    }

    /// Stops processes, links and namespaces; see the module docs.
    /// Idempotent (a second call reports nothing) and never panics.
    pub fn teardown(&mut self) -> TeardownReport {
        let mut r = TeardownReport::default();
        if self.torn_down {
            return r;
        }
        self.torn_down = true;
        lock(&self.state).status = LabStatus::TearingDown;
        let _ = self.save_state();
        let procs = std::mem::take(&mut *lock(&self.procs));
        for p in procs.iter().rev() {
            let label = format!("{}/{} (pid {})", p.host(), p.name(), p.pid());
            match p.terminate(PROCESS_STOP_TIMEOUT) {
                Ok(status) => r.processes.push((label, status.to_string())),
                Err(e) => r.errors.push(format!("stopping {label}: {e}")),
            }
        }
        r.strays_killed = cleanup::kill_in_namespaces(&self.created_ns, &[], STRAY_GRACE);
        for (l, e) in self.links.iter().zip(self.emulated.iter_mut()) {
            if let Some(link) = e.take() {
                let stats = link.shutdown();
                if stats.capture_errors > 0 {
                    r.errors.push(format!(
                        "link {}: {} capture records lost",
                        l.name, stats.capture_errors
                    ));
                }
                r.link_stats.push((l.name.clone(), stats));
            }
        }
        let mut sweep = cleanup::SweepReport::default();
        cleanup::delete_namespaces(&self.created_ns, &mut sweep);
        r.namespaces_deleted = sweep.deleted;
        r.errors.extend(sweep.errors);
        match std::fs::remove_file(&self.state_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => r.errors.push(format!(
                "removing state file {}: {e}",
                self.state_path.display()
            )),
        }
        if let Some(reaper) = self.reaper.take()
            && let Err(e) = reaper.release()
        {
            r.errors.push(format!("reaper: {e}"));
        }
        for e in &r.errors {
            tracing::warn!(lab = %self.prefix, "teardown: {e}");
        }
        tracing::info!(lab = %self.prefix, "lab down");
        r
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
