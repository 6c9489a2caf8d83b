//! Shared helpers of the linkemu tests and the precision example:
//! packet socketpairs, timestamped probe packets, root checks, and a TUN
//! device in a throw-away network namespace.
#![allow(dead_code)]

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

/// A connected pair of unix sockets that keep packet boundaries.
pub fn packet_pair(ty: SockType) -> (OwnedFd, OwnedFd) {
    socketpair(AddressFamily::Unix, ty, None, SockFlag::SOCK_CLOEXEC).expect("socketpair")
}

/// The application ends and the link ends of two socketpairs:
/// `(app_a, link_a, link_b, app_b)`; start the link on `link_a, link_b`.
pub fn two_pairs(ty: SockType) -> (OwnedFd, OwnedFd, OwnedFd, OwnedFd) {
    let (app_a, link_a) = packet_pair(ty);
    let (link_b, app_b) = packet_pair(ty);
    (app_a, link_a, link_b, app_b)
}

pub fn send(fd: &OwnedFd, pkt: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `pkt` is valid for reading `pkt.len()` bytes.
    let n = unsafe { libc::write(fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Receives one packet, waiting at most `timeout`; `None` on timeout.
pub fn recv_timeout(fd: &OwnedFd, buf: &mut [u8], timeout: Duration) -> Option<usize> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, ms) } <= 0 {
        return None;
    }
    // SAFETY: `buf` is valid for writing `buf.len()` bytes.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    (n >= 0).then_some(n as usize)
}

/// `CLOCK_MONOTONIC` in ns (same clock as the link's stamps).
pub fn now_ns() -> u64 {
    testbed::linkemu::mono_now()
}

/// A probe: 8 bytes sequence number, 8 bytes send time (monotonic ns),
/// padded to `len` (at least 16).
pub fn probe(seq: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(16)];
    p[..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(&now_ns().to_be_bytes());
    p
}

/// `(seq, send time)` of a probe.
pub fn parse_probe(p: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(p.get(..8)?.try_into().ok()?);
    let t = u64::from_be_bytes(p.get(8..16)?.try_into().ok()?);
    Some((seq, t))
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// Names of this process's threads (from /proc/self/task/*/comm).
pub fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("comm")) {
                names.push(s.trim().to_owned());
            }
        }
    }
    names
}

/// True when running as root. Otherwise prints a loud SKIP line and
/// returns false, or panics when `CI=true` (CI must not skip).
pub fn root_or_skip(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} needs root, and CI=true forbids skipping");
    }
    eprintln!("SKIP (needs root): {what}");
    false
}

/// A program on PATH, or a loud SKIP (panic under CI=true).
pub fn tool_or_skip(tool: &str, what: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} needs {tool}, and CI=true forbids skipping");
    }
    eprintln!("SKIP (needs {tool}): {what}");
    false
}

/// A TUN device (`IFF_TUN | IFF_NO_PI`) alone in a fresh network namespace
/// with one address, and a UDP socket bound to that address in the same
/// namespace. The namespace lives as long as `tun` or `udp` is open, so
/// nothing is left behind, also after a panic.
pub struct NsTun {
    pub tun: OwnedFd,
    pub udp: UdpSocket,
    pub addr: Ipv6Addr,
}

fn errno<T>(what: &str) -> Result<T, String> {
    Err(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn ifreq_named(name: &str) -> Result<libc::ifreq, String> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        return Err(format!("interface name {name:?} too long"));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}

/// Sets IFF_UP on `name` through an ioctl socket of the current namespace.
fn set_up(sock: &OwnedFd, name: &str) -> Result<(), String> {
    let mut ifr = ifreq_named(name)?;
    // SAFETY: valid socket and ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return errno("SIOCGIFFLAGS");
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: valid socket and ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return errno("SIOCSIFFLAGS");
    }
    Ok(())
}

fn ifindex(sock: &OwnedFd, name: &str) -> Result<i32, String> {
    let mut ifr = ifreq_named(name)?;
    // SAFETY: valid socket and ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) } < 0 {
        return errno("SIOCGIFINDEX");
    }
    // SAFETY: SIOCGIFINDEX filled the ifindex member.
    Ok(unsafe { ifr.ifr_ifru.ifru_ifindex })
}

fn add_addr(sock: &OwnedFd, name: &str, addr: Ipv6Addr, plen: u32) -> Result<(), String> {
    let req = libc::in6_ifreq {
        ifr6_addr: libc::in6_addr {
            s6_addr: addr.octets(),
        },
        ifr6_prefixlen: plen,
        ifr6_ifindex: ifindex(sock, name)?,
    };
    // SAFETY: valid AF_INET6 socket and in6_ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR, &req) } < 0 {
        return errno("SIOCSIFADDR");
    }
    Ok(())
}

fn open_tun(name: &str) -> Result<OwnedFd, String> {
    // SAFETY: plain open of a device node.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return errno("open /dev/net/tun");
    }
    // SAFETY: fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ifr = ifreq_named(name)?;
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: valid tun fd and ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &ifr) } < 0 {
        return errno("TUNSETIFF");
    }
    Ok(fd)
}

impl NsTun {
    /// Creates the namespace (in a short-lived thread that `unshare`s),
    /// the TUN `name` with `addr/plen`, and a UDP socket bound to
    /// `[addr]:port`.
    pub fn create(name: &str, addr: Ipv6Addr, plen: u32, port: u16) -> Result<NsTun, String> {
        let name = name.to_owned();
        std::thread::spawn(move || -> Result<NsTun, String> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
            let tun = open_tun(&name)?;
            // SAFETY: plain socket creation in this thread's namespace.
            let s =
                unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if s < 0 {
                return errno("socket");
            }
            // SAFETY: fresh fd.
            let sock = unsafe { OwnedFd::from_raw_fd(s) };
            set_up(&sock, "lo")?;
            set_up(&sock, &name)?;
            add_addr(&sock, &name, addr, plen)?;
            // The address stays tentative until the kernel's DAD work has
            // run (at once on a NOARP device, but asynchronously).
            let sa = SocketAddrV6::new(addr, port, 0, 0);
            let start = Instant::now();
            let udp = loop {
                match UdpSocket::bind(sa) {
                    Ok(u) => break u,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AddrNotAvailable
                            && start.elapsed() < Duration::from_secs(5) =>
                    {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => return Err(format!("bind {sa}: {e}")),
                }
            };
            Ok(NsTun { tun, udp, addr })
        })
        .join()
        .map_err(|_| "namespace thread panicked".to_string())?
    }
}
