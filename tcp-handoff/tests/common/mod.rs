//! Shared helpers of the namespace tests: namespace guards, a three-host
//! lab, traffic pumps with sequence-checked byte patterns, kernel counters.
#![allow(dead_code)]

pub mod scenarios;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Skips (loudly) when not root; fails instead when `CI=true`.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but not root: the namespace tests must run as root");
            }
            // The test's path, from a function defined inside it.
            fn here() {}
            let name = std::any::type_name_of_val(&here);
            let name = name.strip_suffix("::here").unwrap_or(name);
            // Straight to fd 2: the test harness captures `eprintln!`.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIP (needs root): {name}");
            return;
        }
    };
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A per-run unique short name (fits interface names' 15 bytes).
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("th{}x{n}{tag}", std::process::id() % 100_000)
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop (also when a test panics).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    fn enter(name: &str) {
        let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }

    /// Runs `f` on a fresh thread inside the namespace and waits for it.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let name = self.name.clone();
        std::thread::scope(|s| {
            s.spawn(move || {
                Self::enter(&name);
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }

    /// Spawns `f` on a thread inside the namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let name = self.name.clone();
        std::thread::spawn(move || {
            Self::enter(&name);
            f()
        })
    }

    /// TCP counters of this namespace.
    pub fn counters(&self) -> Counters {
        self.run(Counters::read)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Kernel TCP counters of the calling thread's namespace
/// (`/proc/thread-self/net/{snmp,netstat}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub HashMap<String, u64>);

impl Counters {
    pub fn read() -> Counters {
        let mut map = HashMap::new();
        for (file, prefix) in [("snmp", "Tcp:"), ("netstat", "TcpExt:")] {
            let text = std::fs::read_to_string(format!("/proc/thread-self/net/{file}")).unwrap();
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
            for pair in lines.chunks(2) {
                if let [names, values] = pair {
                    for (n, v) in names
                        .split_whitespace()
                        .zip(values.split_whitespace())
                        .skip(1)
                    {
                        if let Ok(v) = v.parse::<i64>() {
                            map.insert(n.to_string(), v.max(0) as u64);
                        }
                    }
                }
            }
        }
        Counters(map)
    }

    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// `later - self` for one counter.
    pub fn delta(&self, later: &Counters, name: &str) -> u64 {
        later.get(name).saturating_sub(self.get(name))
    }
}

/// Three namespaces: client C, donor D and acceptor A; D and A both hold the
/// server address X; C routes X to D first, then to A.
pub struct Lab {
    pub c: Netns,
    pub d: Netns,
    pub a: Netns,
}

pub const X: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
pub const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 1);
/// The server address X as IPv4 (the lab routes both families).
pub const X4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 99, 0, 1);
pub const CLIENT4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 12, 0, 1);

impl Lab {
    pub fn new() -> Lab {
        let lab = Lab {
            c: Netns::new("c"),
            d: Netns::new("d"),
            a: Netns::new("a"),
        };
        let (x, x4) = (format!("{X}/128"), format!("{X4}/32"));
        let (client, client4) = (format!("{CLIENT}/128"), format!("{CLIENT4}/32"));
        lab.c.ip(&["addr", "add", &client, "dev", "lo", "nodad"]);
        lab.c.ip(&["addr", "add", &client4, "dev", "lo"]);
        // One link per server host: C's end, the server's end, subnet number.
        for (server, c_end, s_end, net) in [(&lab.d, "cd", "dc", 1), (&lab.a, "ca", "ac", 2)] {
            let (c6, c4) = (format!("fd00:{net}::1"), format!("10.0.{net}.1"));
            ip(&[
                "link",
                "add",
                c_end,
                "netns",
                &lab.c.name,
                "type",
                "veth",
                "peer",
                "name",
                s_end,
                "netns",
                &server.name,
            ]);
            lab.c
                .ip(&["addr", "add", &format!("{c6}/64"), "dev", c_end, "nodad"]);
            lab.c
                .ip(&["addr", "add", &format!("{c4}/24"), "dev", c_end]);
            lab.c.ip(&["link", "set", c_end, "up"]);
            server.ip(&[
                "addr",
                "add",
                &format!("fd00:{net}::2/64"),
                "dev",
                s_end,
                "nodad",
            ]);
            server.ip(&["addr", "add", &format!("10.0.{net}.2/24"), "dev", s_end]);
            server.ip(&["link", "set", s_end, "up"]);
            // Both server hosts hold X.
            server.ip(&["addr", "add", &x, "dev", "lo", "nodad"]);
            server.ip(&["addr", "add", &x4, "dev", "lo"]);
            server.ip(&["-6", "route", "add", &client, "via", &c6, "dev", s_end]);
            server.ip(&["route", "add", &client4, "via", &c4, "dev", s_end]);
        }
        lab.route_to_donor();
        lab
    }

    pub fn route_to_donor(&self) {
        self.route_x("fd00:1::2", "10.0.1.2", "cd");
    }

    pub fn route_to_acceptor(&self) {
        self.route_x("fd00:2::2", "10.0.2.2", "ca");
    }

    fn route_x(&self, via6: &str, via4: &str, dev: &str) {
        let (x, src) = (format!("{X}/128"), CLIENT.to_string());
        self.c.ip(&[
            "-6", "route", "replace", &x, "via", via6, "dev", dev, "src", &src,
        ]);
        let (x4, src4) = (format!("{X4}/32"), CLIENT4.to_string());
        self.c.ip(&[
            "route", "replace", &x4, "via", via4, "dev", dev, "src", &src4,
        ]);
    }

    pub fn all(&self) -> [&Netns; 3] {
        [&self.c, &self.d, &self.a]
    }
}

/// The byte at `off` of pattern stream `id`: position-dependent, so any
/// loss, duplication or reordering shows.
pub fn pattern(id: u8, off: u64) -> u8 {
    let mut z = (off >> 3) ^ (u64::from(id) << 56);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> ((off & 7) * 8)) as u8
}

pub fn fill_pattern(id: u8, off: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(id, off + i as u64);
    }
}

/// Bytes written and read by one endpoint: its application state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub sent: u64,
    pub received: u64,
}

impl Progress {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.sent.to_be_bytes().to_vec();
        v.extend_from_slice(&self.received.to_be_bytes());
        v
    }
    pub fn decode(b: &[u8]) -> Progress {
        let (s, r) = b.split_at(8);
        Progress {
            sent: u64::from_be_bytes(s.try_into().unwrap()),
            received: u64::from_be_bytes(r.try_into().unwrap()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PumpCfg {
    /// Pattern written.
    pub tx: u8,
    /// Pattern expected.
    pub rx: u8,
    /// Bytes per second read at most (None: as fast as possible).
    pub read_rate: Option<u64>,
    /// Bytes per second written at most.
    pub write_rate: Option<u64>,
}

struct Shared {
    sent: AtomicU64,
    received: AtomicU64,
    writing: AtomicBool,
    stop: AtomicBool,
    target_rx: AtomicU64,
    first_rx_after: AtomicU64,
}

/// Writes pattern `tx` and verifies pattern `rx` on a stream, on a thread,
/// until stopped. Any mismatch, reset or EOF ends it with an error.
pub struct Pump {
    shared: Arc<Shared>,
    started: Instant,
    handle: JoinHandle<Result<TcpStream, String>>,
}

impl Pump {
    pub fn start(stream: TcpStream, cfg: PumpCfg, at: Progress) -> Pump {
        let shared = Arc::new(Shared {
            sent: AtomicU64::new(at.sent),
            received: AtomicU64::new(at.received),
            writing: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            target_rx: AtomicU64::new(u64::MAX),
            first_rx_after: AtomicU64::new(u64::MAX),
        });
        let s2 = shared.clone();
        let started = Instant::now();
        let handle = std::thread::spawn(move || pump_loop(stream, cfg, &s2, started));
        Pump {
            shared,
            started,
            handle,
        }
    }

    pub fn progress(&self) -> Progress {
        Progress {
            sent: self.shared.sent.load(Ordering::SeqCst),
            received: self.shared.received.load(Ordering::SeqCst),
        }
    }

    /// Time from `start` to the first byte received, if any arrived.
    pub fn first_rx(&self) -> Option<Duration> {
        let us = self.shared.first_rx_after.load(Ordering::SeqCst);
        (us != u64::MAX).then(|| Duration::from_micros(us))
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Stops the pump where it is and returns the stream and progress.
    pub fn stop(self) -> (TcpStream, Progress) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.progress_after_join()
    }

    fn progress_after_join(self) -> (TcpStream, Progress) {
        let shared = self.shared.clone();
        let stream = self
            .handle
            .join()
            .expect("pump panicked")
            .unwrap_or_else(|e| panic!("pump failed: {e}"));
        let p = Progress {
            sent: shared.sent.load(Ordering::SeqCst),
            received: shared.received.load(Ordering::SeqCst),
        };
        (stream, p)
    }

    /// Stops writing (keeps reading).
    pub fn quiesce(&self) {
        self.shared.writing.store(false, Ordering::SeqCst);
    }

    /// Reads until `expect_rx` bytes arrived in total, or fails after `timeout`.
    pub fn finish(self, expect_rx: u64, timeout: Duration) -> (TcpStream, Progress) {
        self.shared.target_rx.store(expect_rx, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let got = self.progress().received;
        assert_eq!(
            got, expect_rx,
            "pump received {got} of {expect_rx} bytes within {timeout:?}"
        );
        self.stop()
    }
}

fn pump_loop(
    mut stream: TcpStream,
    cfg: PumpCfg,
    sh: &Shared,
    started: Instant,
) -> Result<TcpStream, String> {
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut wbuf = vec![0u8; 64 * 1024];
    let t0 = Instant::now();
    let (read0, sent0) = (
        sh.received.load(Ordering::SeqCst),
        sh.sent.load(Ordering::SeqCst),
    );
    loop {
        if sh.stop.load(Ordering::SeqCst)
            || sh.received.load(Ordering::SeqCst) == sh.target_rx.load(Ordering::SeqCst)
        {
            stream.set_nonblocking(false).map_err(|e| e.to_string())?;
            return Ok(stream);
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let received = sh.received.load(Ordering::SeqCst);
        let sent = sh.sent.load(Ordering::SeqCst);
        let may_read = cfg
            .read_rate
            .is_none_or(|r| ((received - read0) as f64) < r as f64 * elapsed + 4096.0);
        let may_write = sh.writing.load(Ordering::SeqCst)
            && cfg
                .write_rate
                .is_none_or(|r| ((sent - sent0) as f64) < r as f64 * elapsed + 4096.0);
        let mut events = 0;
        if may_read {
            events |= libc::POLLIN;
        }
        if may_write {
            events |= libc::POLLOUT;
        }
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut pfd, 1, 1) };
        if may_read {
            let want = match cfg.read_rate {
                Some(_) => 4096,
                None => rbuf.len(),
            };
            match stream.read(&mut rbuf[..want]) {
                Ok(0) => return Err(format!("unexpected EOF after {received} bytes")),
                Ok(n) => {
                    for (i, &b) in rbuf[..n].iter().enumerate() {
                        let off = received + i as u64;
                        if b != pattern(cfg.rx, off) {
                            return Err(format!(
                                "byte {off} wrong: {b} != {}",
                                pattern(cfg.rx, off)
                            ));
                        }
                    }
                    if sh.first_rx_after.load(Ordering::SeqCst) == u64::MAX {
                        sh.first_rx_after
                            .store(started.elapsed().as_micros() as u64, Ordering::SeqCst);
                    }
                    sh.received.store(received + n as u64, Ordering::SeqCst);
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read after {received} bytes: {e}")),
            }
        }
        if may_write {
            let n = match cfg.write_rate {
                Some(_) => 4096,
                None => wbuf.len(),
            };
            fill_pattern(cfg.tx, sent, &mut wbuf[..n]);
            match stream.write(&wbuf[..n]) {
                Ok(n) => {
                    sh.sent.store(sent + n as u64, Ordering::SeqCst);
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write after {sent} bytes: {e}")),
            }
        }
    }
}

/// Client pump config (pattern 1 out, pattern 2 in).
pub fn client_cfg(read_rate: Option<u64>) -> PumpCfg {
    PumpCfg {
        tx: 1,
        rx: 2,
        read_rate,
        write_rate: Some(8 << 20),
    }
}

/// Server pump config (pattern 2 out, pattern 1 in).
pub fn server_cfg() -> PumpCfg {
    PumpCfg {
        tx: 2,
        rx: 1,
        read_rate: None,
        write_rate: None,
    }
}

/// Ends both pumps after a migration test and checks every byte arrived.
/// Returns the streams still open (closing them sends FINs).
pub fn drain_and_check(client: Pump, server: Pump) -> (Progress, Progress, [TcpStream; 2]) {
    client.quiesce();
    server.quiesce();
    std::thread::sleep(Duration::from_millis(20));
    let (cs, ss) = (client.progress().sent, server.progress().sent);
    let srv = std::thread::spawn(move || server.finish(cs, Duration::from_secs(30)));
    let (c, cp) = client.finish(ss, Duration::from_secs(30));
    let (s, sp) = srv.join().unwrap();
    assert_eq!(cp.received, sp.sent);
    assert_eq!(sp.received, cp.sent);
    (cp, sp, [c, s])
}

/// Connects to `[X]:port` from the client namespace.
pub fn connect_client(lab_c: &Netns, port: u16) -> TcpStream {
    connect_to(lab_c, SocketAddr::new(X.into(), port))
}

/// Connects to `addr` from the client namespace, retrying while the server starts.
pub fn connect_to(lab_c: &Netns, addr: SocketAddr) -> TcpStream {
    lab_c.run(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(s) => return s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("connect {addr}: {e}"),
            }
        }
    })
}

/// Counts TCP segments with FIN or RST to or from `port` on every interface
/// of a namespace (an `AF_PACKET` sniffer, both directions).
pub struct FlagWatch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(u64, u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagCounts {
    pub segments: u64,
    pub fins: u64,
    pub rsts: u64,
}

impl FlagWatch {
    pub fn start(ns: &Netns, port: u16) -> FlagWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicBool::new(false));
        let (s2, r2) = (stop.clone(), ready.clone());
        let handle = ns.spawn(move || {
            // SAFETY: plain socket(2).
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                )
            };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            r2.store(true, Ordering::SeqCst);
            let mut buf = vec![0u8; 256 * 1024];
            let (mut segs, mut fins, mut rsts) = (0, 0, 0);
            loop {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one live pollfd.
                unsafe { libc::poll(&mut pfd, 1, 5) };
                loop {
                    // SAFETY: live buffer of the given length.
                    let n = unsafe {
                        libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                    };
                    if n <= 0 {
                        break;
                    }
                    if let Some(p) = tcp_handoff::segment::parse_packet(&buf[..n as usize])
                        && (p.src.port() == port || p.dst.port() == port)
                    {
                        segs += 1;
                        if p.segment.flags & tcp_handoff::segment::FIN != 0 {
                            fins += 1;
                        }
                        if p.segment.flags & tcp_handoff::segment::RST != 0 {
                            rsts += 1;
                        }
                    }
                }
                if s2.load(Ordering::SeqCst) {
                    // SAFETY: we own fd.
                    unsafe { libc::close(fd) };
                    return (segs, fins, rsts);
                }
            }
        });
        while !ready.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        FlagWatch { stop, handle }
    }

    pub fn stop(self) -> FlagCounts {
        self.stop.store(true, Ordering::SeqCst);
        let (segments, fins, rsts) = self.handle.join().expect("sniffer panicked");
        FlagCounts {
            segments,
            fins,
            rsts,
        }
    }
}
