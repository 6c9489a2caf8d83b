//! The lab's PIAS targets and clients, run as threads of the scenario with
//! sockets made inside the hosts' namespaces. A target is an unmodified
//! UDP/TCP echo service (PIAS NATs to it) plus a small agent that joins its
//! groups through the anycast control port and re-joins periodically (seed
//! 001 table 1: "pings routed to a different proxy who becomes JAP").

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use pias_proxy::auth;
use pias_proxy::group::GroupConfig;
use pias_proxy::wire::{AckStatus, CONTROL_PORT, JoinOptions, Membership, MessageRepr};

use crate::lab::Lab;

/// Port of the echo services on targets.
pub const SERVICE_PORT: u16 = 8080;

/// Reply of the echo services: the request with ASCII case flipped (so the
/// probe marker is not in the reply), then `|` and the target's name.
pub fn reply_for(req: &[u8], name: &str) -> Vec<u8> {
    let mut r: Vec<u8> = req
        .iter()
        .map(|b| {
            if b.is_ascii_alphabetic() {
                b ^ 0x20
            } else {
                *b
            }
        })
        .collect();
    r.push(b'|');
    r.extend_from_slice(name.as_bytes());
    r
}

/// The target named in a reply.
pub fn target_of(reply: &[u8]) -> Option<String> {
    let i = reply.iter().rposition(|b| *b == b'|')?;
    Some(String::from_utf8_lossy(&reply[i + 1..]).into_owned())
}

/// A nonce that grows with the wall clock (microseconds).
pub(super) fn nonce() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

/// One target host: echo services and the join agent.
pub struct Target {
    /// Host name.
    pub name: String,
    /// Its address.
    pub addr: Ipv6Addr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Socket for explicit joins/leaves (`[addr]:5001`).
    direct: UdpSocket,
    joins: Arc<Mutex<Vec<GroupConfig>>>,
    /// Join acknowledgements with status Ok the agent received.
    pub acks_ok: Arc<AtomicU64>,
    last_nonce: u64,
    /// Accepted connections (clones), newest last: what a graceful leave hands off.
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Target {
    /// Starts the services and the agent on `host` (address `addr`),
    /// re-joining `groups` every `rejoin`.
    pub fn start(
        lab: &Lab,
        host: &str,
        addr: Ipv6Addr,
        groups: Vec<GroupConfig>,
        rejoin: Duration,
    ) -> anyhow::Result<Target> {
        let sa = SocketAddr::V6(SocketAddrV6::new(addr, SERVICE_PORT, 0, 0));
        let (udp, tcp, control, direct) = lab.run_in(host, move || -> std::io::Result<_> {
            Ok((
                UdpSocket::bind(sa)?,
                TcpListener::bind(sa)?,
                UdpSocket::bind(SocketAddrV6::new(addr, 5000, 0, 0))?,
                UdpSocket::bind(SocketAddrV6::new(addr, 5001, 0, 0))?,
            ))
        })??;
        let stop = Arc::new(AtomicBool::new(false));
        let name = host.to_string();
        let mut threads = Vec::new();
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        {
            let (stop, name) = (stop.clone(), name.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = udp.recv_from(&mut buf) {
                        let _ = udp.send_to(&reply_for(&buf[..n], &name), from);
                    }
                }
            }));
        }
        tcp.set_nonblocking(true)?;
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        {
            let (stop, name, conns) = (stop.clone(), name.clone(), conns.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((s, _)) => {
                            if let (Ok(c), Ok(mut v)) = (s.try_clone(), conns.lock()) {
                                v.push(c);
                            }
                            let (stop, name) = (stop.clone(), name.clone());
                            std::thread::spawn(move || serve_tcp(s, &name, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }));
        }
        control.set_read_timeout(Some(Duration::from_millis(50)))?;
        direct.set_read_timeout(Some(Duration::from_millis(300)))?;
        let joins = Arc::new(Mutex::new(groups));
        let acks_ok = Arc::new(AtomicU64::new(0));
        {
            let (stop, joins, acks_ok) = (stop.clone(), joins.clone(), acks_ok.clone());
            threads.push(std::thread::spawn(move || {
                let mut next = Instant::now();
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        let groups = joins.lock().map(|g| g.clone()).unwrap_or_default();
                        for g in groups {
                            if let Ok(b) = membership_bytes(&g, addr, SERVICE_PORT, nonce(), false)
                            {
                                let _ = control.send_to(
                                    &b,
                                    SocketAddrV6::new(g.group.addr, CONTROL_PORT, 0, 0),
                                );
                            }
                        }
                        next = Instant::now() + rejoin;
                    }
                    if let Ok(n) = control.recv(&mut buf)
                        && let Ok(MessageRepr::JoinAck {
                            status: AckStatus::Ok,
                            ..
                        }) = MessageRepr::from_bytes(&buf[..n])
                    {
                        acks_ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Ok(Target {
            name,
            addr,
            stop,
            threads,
            direct,
            joins,
            acks_ok,
            last_nonce: 0,
            conns,
        })
    }

    /// Sends one join or leave of `(addr, port)` for `g` and waits for its
    /// acknowledgement (matched by nonce; up to 3 tries).
    pub fn membership(
        &mut self,
        g: &GroupConfig,
        port: u16,
        leave: bool,
    ) -> anyhow::Result<AckStatus> {
        let addr = self.addr;
        self.request(g, |n| membership_bytes(g, addr, port, n, leave))
    }

    /// Joins `g` with `(addr, port)` and join options (e.g. `can_decap`).
    pub fn join_with(
        &mut self,
        g: &GroupConfig,
        port: u16,
        options: JoinOptions,
    ) -> anyhow::Result<AckStatus> {
        let addr = self.addr;
        self.request(g, |nonce| {
            let m = Membership {
                group: g.group,
                target: addr,
                target_port: port,
                options,
                nonce,
                tag: [0; 16],
            };
            auth::signed_bytes(&MessageRepr::Join(m), &g.credential).context("signing")
        })
    }

    /// Tells the JAP that this target's connections of `g` moved to `to`
    /// (signed with the group's credential); waits for the answer.
    pub fn handoff(&mut self, g: &GroupConfig, to: Ipv6Addr) -> anyhow::Result<AckStatus> {
        let from = self.addr;
        self.request(g, |nonce| {
            let msg = MessageRepr::Handoff {
                group: g.group,
                from,
                from_port: SERVICE_PORT,
                to,
                to_port: SERVICE_PORT,
                nonce,
                tag: [0; 16],
            };
            auth::signed_bytes(&msg, &g.credential).context("signing")
        })
    }

    /// The newest accepted connection (removed from the registry).
    pub fn take_newest_connection(&self) -> Option<TcpStream> {
        self.conns.lock().ok()?.pop()
    }

    /// Serves a connection restored here (after a handoff).
    pub fn adopt(&mut self, s: TcpStream) {
        let (stop, name) = (self.stop.clone(), self.name.clone());
        if let (Ok(c), Ok(mut v)) = (s.try_clone(), self.conns.lock()) {
            v.push(c);
        }
        self.threads
            .push(std::thread::spawn(move || serve_tcp(s, &name, &stop)));
    }

    fn request(
        &mut self,
        g: &GroupConfig,
        make: impl Fn(u64) -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<AckStatus> {
        let mut buf = [0u8; 512];
        for _ in 0..3 {
            let n = nonce().max(self.last_nonce + 1);
            self.last_nonce = n;
            let b = make(n)?;
            self.direct
                .send_to(&b, SocketAddrV6::new(g.group.addr, CONTROL_PORT, 0, 0))?;
            let until = Instant::now() + Duration::from_millis(600);
            while Instant::now() < until {
                if let Ok(len) = self.direct.recv(&mut buf)
                    && let Ok(MessageRepr::JoinAck { nonce, status, .. }) =
                        MessageRepr::from_bytes(&buf[..len])
                    && nonce == n
                {
                    return Ok(status);
                }
            }
        }
        anyhow::bail!("{}: no acknowledgement from the JAP", self.name)
    }

    /// Stops the agent's periodic joins (the services keep running).
    pub fn stop_joining(&self) {
        if let Ok(mut j) = self.joins.lock() {
            j.clear();
        }
    }

    /// Resumes periodic joins of `groups`.
    pub fn resume_joining(&self, groups: Vec<GroupConfig>) {
        if let Ok(mut j) = self.joins.lock() {
            *j = groups;
        }
    }

    /// Stops everything and waits for the threads.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Target {
    /// A scenario that failed half-way still stops its agents' threads.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_tcp(mut s: TcpStream, name: &str, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if s.write_all(&reply_for(&buf[..n], name)).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// A signed join or leave.
pub fn membership_bytes(
    g: &GroupConfig,
    target: Ipv6Addr,
    port: u16,
    nonce: u64,
    leave: bool,
) -> anyhow::Result<Vec<u8>> {
    let m = Membership {
        group: g.group,
        target,
        target_port: port,
        options: JoinOptions::default(),
        nonce,
        tag: [0; 16],
    };
    let msg = if leave {
        MessageRepr::Leave(m)
    } else {
        MessageRepr::Join(m)
    };
    auth::signed_bytes(&msg, &g.credential).context("signing")
}

/// A UDP client in a host: probes the group and reports which target answered.
pub struct Client {
    /// Host name.
    pub name: String,
    sock: UdpSocket,
    dst: SocketAddrV6,
}

impl Client {
    /// A client on `host` (address `addr`, source port `port`) of `group:port`.
    pub fn new(
        lab: &Lab,
        host: &str,
        addr: Ipv6Addr,
        port: u16,
        dst: SocketAddrV6,
    ) -> anyhow::Result<Client> {
        let sock = lab.run_in(host, move || {
            UdpSocket::bind(SocketAddrV6::new(addr, port, 0, 0))
        })??;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        Ok(Client {
            name: host.to_string(),
            sock,
            dst,
        })
    }

    /// Sends `marker` and waits up to `timeout` for the reply: the target's name.
    pub fn probe(&self, marker: &str, timeout: Duration) -> Option<String> {
        let until = Instant::now() + timeout;
        let _ = self.sock.send_to(marker.as_bytes(), self.dst);
        let mut buf = [0u8; 2048];
        let want = reply_for(marker.as_bytes(), "");
        while Instant::now() < until {
            if let Ok(n) = self.sock.recv(&mut buf)
                && buf[..n].starts_with(&want)
            {
                return target_of(&buf[..n]);
            }
        }
        None
    }

    /// Probes every `every` until a reply satisfies `ok` or `limit` passes;
    /// returns the elapsed time and the target.
    pub fn until(
        &self,
        tag: &str,
        every: Duration,
        limit: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Option<(Duration, String)> {
        let t0 = Instant::now();
        let mut i = 0u64;
        while t0.elapsed() < limit {
            i += 1;
            if let Some(t) = self.probe(&format!("{tag}-{i}"), every)
                && ok(&t)
            {
                return Some((t0.elapsed(), t));
            }
        }
        None
    }
}
