//! The lab of the namespace tests: client C, router R, home agent HA and
//! member K, an engine on C, HA and K, the anycast address X on K's `lo`.
//!
//! ```text
//!   C ---- R ---- HA        home prefix fd00:6d36:ff::/64 routed to HA
//!   (v0a)  |  (v1b)         X = fd00:6d36:ff::1 on K's lo
//!          |
//!          +---- K (v2b)    CoA_K = K's address on link 2
//! ```
//!
//! The base tables put X behind the HA: a home tunnel X -> CoA_K at the HA
//! and a reverse tunnel at K. Tests add route optimization on top.

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle as ThreadHandle;
use std::time::Duration;

use mip6_anycast::engine::datapath::{
    Engine, EngineConfig, EngineExit, EngineHandle, EngineIo, EngineStats, Punt, TableUpdate,
};
use mip6_anycast::engine::netlink::{AddrOptions, Route6};
use mip6_anycast::engine::netns::{self, NetnsWorker};
use mip6_anycast::engine::steer::{Steering, SteeringConfig};
use mip6_anycast::engine::testing::Lab;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::sys::HANG_GUARD;

/// The echo server's port on X.
pub const ECHO_PORT: u16 = 7000;

/// The anycast address (home address) X.
pub fn x() -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x6d36, 0xff, 0, 0, 0, 0, 1)
}

/// The home prefix.
pub fn home_prefix() -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x6d36, 0xff, 0, 0, 0, 0, 0)
}

/// One node with an engine.
pub struct Node {
    /// Namespace.
    pub ns: String,
    /// Its address (on its link to R).
    pub addr: Ipv6Addr,
    /// Its interface toward R (steered).
    pub ifname: String,
    /// R's interface toward it.
    pub r_ifname: String,
    /// R's address toward it.
    pub r_addr: Ipv6Addr,
    /// The engine.
    pub engine: EngineHandle,
    /// Its punts.
    pub punts: mpsc::Receiver<Punt>,
    /// The engine task.
    pub task: Option<JoinHandle<EngineExit>>,
    /// The namespace worker the engine runs on, if not the test's runtime.
    pub worker: Option<NetnsWorker>,
}

impl Node {
    /// A stats snapshot.
    pub async fn stats(&self) -> EngineStats {
        self.engine.stats().await.expect("engine stats")
    }

    /// Applies updates.
    pub async fn program(&self, updates: Vec<TableUpdate>) {
        self.engine.update_all(updates).await.expect("table update");
    }

    /// The next punt (fails after the hang guard).
    pub async fn next_punt(&mut self) -> Punt {
        tokio::time::timeout(HANG_GUARD, self.punts.recv())
            .await
            .expect("a punt in time")
            .expect("punt channel open")
    }

    /// True if the engine task is still running.
    pub fn running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

/// The engines' settings: the default (auto datapath), or the mode named
/// by `MIP6_TEST_DATAPATH` (`raw`, `tun-offload`,
/// `tun-offload+bpf-tunnel`) to run the same tests on each datapath.
pub fn engine_config() -> EngineConfig {
    let mode = std::env::var("MIP6_TEST_DATAPATH")
        .ok()
        .filter(|m| !m.is_empty())
        .map(|m| {
            serde_json::from_value(serde_json::Value::String(m.clone()))
                .unwrap_or_else(|e| panic!("MIP6_TEST_DATAPATH={m}: {e}"))
        })
        .unwrap_or_default();
    EngineConfig {
        mode,
        ..EngineConfig::default()
    }
}

/// The lab with its three engines.
pub struct World {
    /// Client host C (an engine as correspondent).
    pub c: Node,
    /// Home agent.
    pub ha: Node,
    /// Member K (contact node).
    pub k: Node,
    /// Router R's namespace (no engine).
    pub r_ns: String,
    /// The namespaces (dropped last).
    pub lab: Lab,
}

/// Starts an engine for `node` on its link `link` to R: on the test's
/// runtime, or with `on_worker` on a [`NetnsWorker`] inside the node's
/// namespace (as a daemon would run it).
async fn start_engine(lab: &Lab, node: usize, link: usize, on_worker: bool) -> Node {
    let l = lab.link(link).clone();
    let (ifname, _, addr) = l.end(node).expect("node on link");
    let r = l.peer(node).expect("peer");
    let (r_ifname, _, r_addr) = l.end(r).expect("router end");
    let nl = lab.netlink(node).expect("netlink");
    let (steering, tun) = Steering::install(&nl, SteeringConfig::new("mip0", &[ifname]))
        .await
        .expect("install steering");
    let io = EngineIo::from_steering(steering, tun).expect("engine io");
    let worker = on_worker.then(|| NetnsWorker::start(lab.ns(node)).expect("namespace worker"));
    let running = match &worker {
        Some(w) => Engine::start_on(w.handle(), io, engine_config()),
        None => Engine::start(io, engine_config()),
    }
    .expect("start engine");
    Node {
        ns: lab.ns(node).to_string(),
        addr,
        ifname: ifname.to_string(),
        r_ifname: r_ifname.to_string(),
        r_addr,
        engine: running.handle,
        punts: running.punts,
        task: Some(running.task),
        worker,
    }
}

impl World {
    /// Builds the lab: routes for the home prefix toward the HA, X on K's
    /// `lo`, engines on C, HA and K, and the home registration of X at the
    /// HA (home tunnel) and K (local home address, reverse tunnel).
    pub async fn new() -> World {
        // RUST_LOG=mip6_anycast=trace shows every drop with its addresses.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // 0 = C, 1 = R, 2 = HA, 3 = K.
        let lab = Lab::new(4, &[(0, 1), (1, 2), (1, 3)]).await.expect("lab");
        let nl_c = lab.netlink(0).expect("netlink C");
        let nl_r = lab.netlink(1).expect("netlink R");
        let nl_k = lab.netlink(3).expect("netlink K");
        nl_c.add_route(
            &Route6::new(home_prefix(), 64)
                .via(lab.link(0).b_addr)
                .dev(lab.link(0).a_index),
        )
        .await
        .expect("home prefix route at C");
        nl_r.add_route(
            &Route6::new(home_prefix(), 64)
                .via(lab.link(1).b_addr)
                .dev(lab.link(1).a_index),
        )
        .await
        .expect("home prefix route at R");
        let lo = nl_k.link_index("lo").await.expect("lo");
        nl_k.add_address(lo, x().into(), 128, AddrOptions::NODAD)
            .await
            .expect("X on K's lo");
        nl_k.wait_local(x(), Lab::READY_LIMIT)
            .await
            .expect("X usable");

        let c = start_engine(&lab, 0, 0, false).await;
        let ha = start_engine(&lab, 2, 1, true).await;
        let k = start_engine(&lab, 3, 2, false).await;
        c.program(vec![TableUpdate::AddLocalAddress { addr: c.addr }])
            .await;
        ha.program(vec![
            TableUpdate::AddLocalAddress { addr: ha.addr },
            TableUpdate::AddHomeTunnel {
                hoa: x(),
                home_agent: ha.addr,
                coa: k.addr,
            },
        ])
        .await;
        k.program(vec![
            TableUpdate::AddLocalAddress { addr: k.addr },
            TableUpdate::AddLocalHomeAddress { hoa: x() },
            TableUpdate::AddReverseTunnel {
                hoa: x(),
                coa: k.addr,
                home_agent: ha.addr,
            },
        ])
        .await;
        World {
            r_ns: lab.ns(1).to_string(),
            c,
            ha,
            k,
            lab,
        }
    }

    /// Switches C <-> X to route optimization: C binds X to CoA_K (RH2
    /// C -> K), then K sends to C with a Home Address option.
    pub async fn route_optimize(&self) {
        self.c
            .program(vec![TableUpdate::AddCorrespondentBinding {
                cn: self.c.addr,
                hoa: x(),
                coa: self.k.addr,
            }])
            .await;
        self.k
            .program(vec![TableUpdate::AddHomeAddressBinding {
                hoa: x(),
                peer: self.c.addr,
                coa: self.k.addr,
            }])
            .await;
    }

    /// Stops the engines and removes their steering.
    pub async fn shutdown(mut self) {
        for n in [&mut self.c, &mut self.ha, &mut self.k] {
            n.engine.shutdown().await.expect("shutdown");
            let exit = n.task.take().expect("task").await.expect("engine task");
            exit.result.expect("engine ran without error");
            if let Some(s) = exit.steering {
                s.remove().await.expect("remove steering");
            }
            drop(n.worker.take());
        }
    }
}

/// The byte at stream offset `i` of the echo pattern.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

/// FNV-1a over a byte stream, to check bulk transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    /// Bytes seen.
    pub len: u64,
    /// Running hash.
    pub hash: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Digest {
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.hash = (self.hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        self.len += data.len() as u64;
    }

    fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.len.to_be_bytes());
        b[8..].copy_from_slice(&self.hash.to_be_bytes());
        b
    }
}

/// A sink on `[X]:ECHO_PORT` in K: reads one connection to its end, then
/// answers with the 16-octet digest of what it read (so K sends only ACKs
/// while the data flows).
pub fn sink_server(ns: &str) -> ThreadHandle<std::io::Result<Digest>> {
    sink_server_on(ns, x())
}

/// [`sink_server`] on `[addr]:ECHO_PORT`.
pub fn sink_server_on(ns: &str, addr: Ipv6Addr) -> ThreadHandle<std::io::Result<Digest>> {
    let listener = netns::in_netns(ns, move || TcpListener::bind((addr, ECHO_PORT)))
        .expect("enter namespace")
        .expect("listen");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(HANG_GUARD))?;
        let mut buf = vec![0u8; 65536];
        let mut d = Digest::default();
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                s.write_all(&d.to_bytes())?;
                return Ok(d);
            }
            d.update(&buf[..n]);
        }
    })
}

/// Connects from C to `[X]:ECHO_PORT`.
pub fn connect_from(ns: &str) -> TcpStream {
    connect_to(ns, x())
}

/// Connects from namespace `ns` to `[addr]:ECHO_PORT`.
pub fn connect_to(ns: &str, addr: Ipv6Addr) -> TcpStream {
    let to = SocketAddr::from((addr, ECHO_PORT));
    let s = netns::in_netns(ns, || TcpStream::connect_timeout(&to, HANG_GUARD))
        .expect("enter namespace")
        .expect("connect");
    s.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    s.set_write_timeout(Some(HANG_GUARD)).expect("timeout");
    s
}

/// Writes `len` pattern bytes, closes the sending side and checks the
/// sink's digest; returns it.
pub fn bulk_send(mut s: TcpStream, len: u64) -> Result<Digest, String> {
    let mut sent = Digest::default();
    let mut chunk = vec![0u8; 16384];
    while sent.len < len {
        let n = chunk.len().min((len - sent.len) as usize);
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = pattern(sent.len + i as u64);
        }
        s.write_all(&chunk[..n])
            .map_err(|e| format!("write at {}: {e}", sent.len))?;
        sent.update(&chunk[..n]);
    }
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut answer = [0u8; 16];
    s.read_exact(&mut answer)
        .map_err(|e| format!("read digest: {e}"))?;
    if answer != sent.to_bytes() {
        return Err(format!("sink digest {answer:02x?} differs from {sent:?}"));
    }
    Ok(sent)
}

/// An echo server on `[X]:ECHO_PORT` in K, serving one connection.
pub fn echo_server(ns: &str) -> ThreadHandle<std::io::Result<u64>> {
    let listener = netns::in_netns(ns, || TcpListener::bind((x(), ECHO_PORT)))
        .expect("enter K")
        .expect("listen on X");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(HANG_GUARD))?;
        let mut buf = vec![0u8; 65536];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            s.write_all(&buf[..n])?;
            total += n as u64;
        }
    })
}

/// A client in C streaming a known pattern to X and checking the echo.
pub struct EchoClient {
    /// Bytes sent and verified so far.
    pub echoed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<ThreadHandle<Result<u64, String>>>,
}

impl EchoClient {
    /// Connects from C to `[X]:ECHO_PORT` and starts streaming in chunks
    /// of `chunk` octets.
    pub fn start(ns: &str, chunk: usize) -> EchoClient {
        let mut s = connect_from(ns);
        let echoed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, st) = (echoed.clone(), stop.clone());
        let thread = std::thread::spawn(move || -> Result<u64, String> {
            let mut off = 0u64;
            let mut out = vec![0u8; chunk];
            let mut back = vec![0u8; chunk];
            while !st.load(Ordering::Relaxed) {
                for (i, b) in out.iter_mut().enumerate() {
                    *b = pattern(off + i as u64);
                }
                s.write_all(&out)
                    .map_err(|e| format!("write at {off}: {e}"))?;
                s.read_exact(&mut back)
                    .map_err(|e| format!("read at {off}: {e}"))?;
                if back != out {
                    return Err(format!("echo differs in the chunk at offset {off}"));
                }
                off += chunk as u64;
                e.store(off, Ordering::Relaxed);
            }
            s.shutdown(std::net::Shutdown::Write)
                .map_err(|e| format!("shutdown: {e}"))?;
            let mut rest = Vec::new();
            s.read_to_end(&mut rest)
                .map_err(|e| format!("read to end: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("{} unexpected bytes after the stream", rest.len()));
            }
            Ok(off)
        });
        EchoClient {
            echoed,
            stop,
            thread: Some(thread),
        }
    }

    /// Bytes verified so far.
    pub fn progress(&self) -> u64 {
        self.echoed.load(Ordering::Relaxed)
    }

    /// Waits until at least `more` further bytes have been verified.
    pub async fn advance(&self, more: u64) {
        let target = self.progress() + more;
        let done = tokio::time::timeout(HANG_GUARD, async {
            while self.progress() < target {
                if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            true
        })
        .await;
        assert!(
            matches!(done, Ok(true)),
            "echo stream stalled at {} bytes (wanted {target})",
            self.progress()
        );
    }

    /// Stops, closes the connection and returns the verified byte count.
    pub async fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().expect("thread");
        tokio::task::spawn_blocking(move || t.join())
            .await
            .expect("join")
            .expect("client thread")
            .unwrap_or_else(|e| panic!("echo client failed: {e}"))
    }
}

/// Joins a server thread from async code and unwraps its result.
pub async fn join_server<T: Send + 'static>(h: ThreadHandle<std::io::Result<T>>) -> T {
    tokio::task::spawn_blocking(move || h.join())
        .await
        .expect("join")
        .expect("server thread")
        .expect("server")
}

/// Polls `f` until it returns true (fails after the hang guard).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let ok = tokio::time::timeout(HANG_GUARD, async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "timed out waiting for: {what}");
}
