//! Taking the sockets of an unmodified process: find the descriptor that
//! holds a connection (`/proc/PID/net/tcp{,6}` for the socket inode,
//! `/proc/PID/fd` for the descriptor) and duplicate it into this process
//! with `pidfd_open` + `pidfd_getfd` (Linux 5.6; needs ptrace access to the
//! process, e.g. root or `CAP_SYS_PTRACE`).
//!
//! The duplicate refers to the same kernel socket, so [`freeze`](crate::freeze)
//! on it silences the original too: the process's reads fail with `EPERM`,
//! its writes with `EINVAL`, and nothing it does reaches the wire.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::state::ConnectionId;

/// An established TCP connection held by a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldConnection {
    /// Its endpoints.
    pub id: ConnectionId,
    /// The descriptor number inside the process.
    pub fd: RawFd,
    /// The socket inode.
    pub inode: u64,
}

/// Parses an address of `/proc/net/tcp` (`%08X:%04X`) or `/proc/net/tcp6`
/// (four `%08X` words, each a native-endian `u32` of the address).
fn parse_proc_addr(field: &str) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut octets = [0u8; 16];
            for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
                let word = addr.get(i * 8..i * 8 + 8)?;
                chunk.copy_from_slice(&u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Established sockets (state `01`) listed in one `/proc/.../net/tcp*` file:
/// (local, remote, inode).
pub fn parse_proc_net_tcp(text: &str) -> Vec<(SocketAddr, SocketAddr, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&"01") {
                return None;
            }
            let local = parse_proc_addr(f.get(1)?)?;
            let remote = parse_proc_addr(f.get(2)?)?;
            let inode = f.get(9)?.parse().ok()?;
            Some((local, remote, inode))
        })
        .collect()
}

fn read_proc(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(Error::sys("read /proc"))
}

/// Every established TCP connection `pid` holds a descriptor of, as seen in
/// the process's own network namespace.
pub fn held_connections(pid: i32) -> Result<Vec<HeldConnection>> {
    let mut sockets = Vec::new();
    for file in ["tcp", "tcp6"] {
        match read_proc(&format!("/proc/{pid}/net/{file}")) {
            Ok(text) => sockets.extend(parse_proc_net_tcp(&text)),
            // No IPv4 or no IPv6 in that kernel: fine.
            Err(Error::Sys { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let dir =
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(Error::sys("read /proc/PID/fd"))?;
    let mut held = Vec::new();
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        if let Some(&(local, remote, _)) = sockets.iter().find(|s| s.2 == inode) {
            held.push(HeldConnection {
                id: ConnectionId { local, remote },
                fd,
                inode,
            });
        }
    }
    held.sort_by_key(|h| h.fd);
    Ok(held)
}

/// IPv4 and IPv4-mapped forms of the same endpoint compare equal.
fn same_endpoint(a: &SocketAddr, b: &SocketAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    a.port() == b.port() && canon(a.ip()) == canon(b.ip())
}

/// The descriptor number under which `pid` holds the connection
/// `local <-> remote`.
pub fn find_socket_fd(pid: i32, local: SocketAddr, remote: SocketAddr) -> Result<RawFd> {
    held_connections(pid)?
        .into_iter()
        .find(|h| same_endpoint(&h.id.local, &local) && same_endpoint(&h.id.remote, &remote))
        .map(|h| h.fd)
        .ok_or_else(|| Error::NotFound {
            pid,
            what: format!("{local} <-> {remote}"),
        })
}

/// Duplicates descriptor `target_fd` of process `pid` into this process.
pub fn steal_fd(pid: i32, target_fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: pidfd_open(pid, flags) takes two integers and returns a new fd.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(Error::sys("pidfd_open")(io::Error::last_os_error()));
    }
    // SAFETY: `pidfd` is a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd(pidfd, targetfd, flags) takes three integers and
    // returns a new descriptor (close-on-exec) in this process.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            target_fd,
            0,
        )
    };
    if fd < 0 {
        return Err(Error::sys("pidfd_getfd")(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Finds and duplicates the socket of connection `local <-> remote` held by `pid`.
pub fn steal_connection(pid: i32, local: SocketAddr, remote: SocketAddr) -> Result<OwnedFd> {
    let fd = find_socket_fd(pid, local, remote)?;
    steal_fd(pid, fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_lines() {
        // Lines as a little-endian kernel prints them.
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 20 4 30 10 -1\n   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        let got = parse_proc_net_tcp(v4);
        if cfg!(target_endian = "little") {
            assert_eq!(
                got,
                vec![(
                    "127.0.0.1:8080".parse().unwrap(),
                    "127.0.0.1:50000".parse().unwrap(),
                    12345
                )]
            );
        }
        let v6 = "  sl  local_address                         remote_address                        st\n   0: B80D0120000000000000000001000000:0050 B80D0120000000000000000002000000:9C40 01 00000000:00000000 00:00000000 00000000     0        0 777 1\n";
        let got = parse_proc_net_tcp(v6);
        if cfg!(target_endian = "little") {
            assert_eq!(
                got,
                vec![(
                    "[2001:db8::1]:80".parse().unwrap(),
                    "[2001:db8::2]:40000".parse().unwrap(),
                    777
                )]
            );
        }
        // Garbage lines are skipped, never panic.
        assert!(parse_proc_net_tcp("x\n0: zz:zz yy 01 a b c d e f\n0:\n").is_empty());
    }

    #[test]
    fn mapped_and_plain_v4_match() {
        assert!(same_endpoint(
            &"[::ffff:192.0.2.1]:80".parse().unwrap(),
            &"192.0.2.1:80".parse().unwrap()
        ));
        assert!(!same_endpoint(
            &"192.0.2.1:81".parse().unwrap(),
            &"192.0.2.1:80".parse().unwrap()
        ));
    }
}
