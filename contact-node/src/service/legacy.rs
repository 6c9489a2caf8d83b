//! Connections of an unmodified server process on `[X]:port` (seed 004
//! 4.2.2: the server knows nothing of the handoff). The donor finds the
//! process that holds a client's socket in its own network namespace
//! (`/proc/thread-self/net/tcp6` for the socket inode, `/proc/PID/ns/net`
//! and `/proc/PID/fd` for the holder) and duplicates the descriptor with
//! `pidfd_getfd` ([`tcp_handoff::legacy::steal_fd`]).
//!
//! The process keeps its descriptor. Once the daemon freezes the duplicate
//! (same kernel socket) nothing the process does reaches the wire (its
//! reads fail with `EPERM`, its writes with `EINVAL`), and the silent close
//! after the commit leaves it a socket that fails with `ECONNABORTED`: a
//! server that handles each connection on its own (thread, task, child)
//! drops that one and goes on serving the others. A request the process
//! had read but not yet answered when the socket froze is lost; the move
//! suits servers idle between requests (echo, request/response).

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::{OwnedFd, RawFd};

use tcp_handoff::legacy::{parse_proc_net_tcp, steal_fd};

/// Most processes looked at per lookup (a bound on work).
const MAX_PROCESSES: usize = 1 << 16;
/// Most descriptors looked at per process.
const MAX_FDS: usize = 1 << 16;

/// Where to look for the server's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyServer {
    /// `[X]:port` of the server's connections.
    pub local: SocketAddr,
    /// Only this process (else every process of this network namespace
    /// but the daemon).
    pub pid: Option<i32>,
}

/// An established connection of the server held by a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The client's end.
    pub remote: SocketAddr,
    /// The process.
    pub pid: i32,
    /// Its descriptor number there.
    pub fd: RawFd,
}

/// Established sockets on `local` in this namespace: (remote, inode).
fn sockets_on(local: SocketAddr, client: Option<Ipv6Addr>) -> io::Result<Vec<(SocketAddr, u64)>> {
    // `/proc/net` follows the calling thread's namespace: the daemon's.
    let text = std::fs::read_to_string("/proc/thread-self/net/tcp6")?;
    Ok(parse_proc_net_tcp(&text)
        .into_iter()
        .filter(|(l, r, _)| *l == local && client.is_none_or(|c| r.ip() == c))
        .map(|(_, r, inode)| (r, inode))
        .collect())
}

fn socket_inode(link: &std::path::Path) -> Option<u64> {
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The processes of this network namespace (but this one), or just `pid`.
fn processes(pid: Option<i32>) -> io::Result<Vec<i32>> {
    if let Some(p) = pid {
        return Ok(vec![p]);
    }
    let me = std::process::id();
    let my_ns = std::fs::read_link("/proc/thread-self/ns/net")?;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc")?.flatten().take(MAX_PROCESSES) {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if u32::try_from(p).ok() == Some(me) {
            continue;
        }
        if std::fs::read_link(e.path().join("ns/net")).ok().as_ref() == Some(&my_ns) {
            out.push(p);
        }
    }
    Ok(out)
}

/// The descriptors (process, fd) of the sockets with these inodes.
fn holders(pids: &[i32], inodes: &[u64]) -> Vec<(i32, RawFd, u64)> {
    let mut out = Vec::new();
    for &pid in pids {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in dir.flatten().take(MAX_FDS) {
            let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
                continue;
            };
            let Some(ino) = std::fs::read_link(e.path())
                .ok()
                .and_then(|l| socket_inode(&l))
            else {
                continue;
            };
            if inodes.contains(&ino) && !out.iter().any(|(_, _, i)| *i == ino) {
                out.push((pid, fd, ino));
            }
        }
    }
    out
}

impl LegacyServer {
    /// The server's connections of `client` (every client if `None`).
    pub fn held(&self, client: Option<Ipv6Addr>) -> io::Result<Vec<Held>> {
        let socks = sockets_on(self.local, client)?;
        if socks.is_empty() {
            return Ok(Vec::new());
        }
        let inodes: Vec<u64> = socks.iter().map(|s| s.1).collect();
        let pids = processes(self.pid)?;
        Ok(holders(&pids, &inodes)
            .into_iter()
            .filter_map(|(pid, fd, ino)| {
                let remote = socks.iter().find(|s| s.1 == ino)?.0;
                Some(Held { remote, pid, fd })
            })
            .collect())
    }

    /// True if a process other than this one holds the socket with inode
    /// `ino` (a connection thawed after a rollback is still the server's).
    pub fn holds_inode(&self, ino: u64) -> bool {
        processes(self.pid).is_ok_and(|pids| !holders(&pids, &[ino]).is_empty())
    }

    /// Duplicates the descriptor of `h` into this process.
    pub fn steal(&self, h: &Held) -> io::Result<OwnedFd> {
        steal_fd(h.pid, h.fd).map_err(|e| io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn finds_no_holder_outside_this_process_for_its_own_sockets() {
        // This process's own connection: the lookup skips the daemon
        // itself, so nobody else holds it.
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        let local = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(local).unwrap();
        let (s, _) = l.accept().unwrap();
        let srv = LegacyServer { local, pid: None };
        assert!(srv.held(None).unwrap().is_empty());
        // Named explicitly, this process is searched: one connection, the
        // accepted socket's descriptor.
        let me = LegacyServer {
            local,
            pid: i32::try_from(std::process::id()).ok(),
        };
        let held = me.held(Some(Ipv6Addr::LOCALHOST)).unwrap();
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].fd, s.as_raw_fd());
        assert_eq!(held[0].remote, c.local_addr().unwrap());
        assert!(
            me.held(Some("2001:db8::1".parse().unwrap()))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn parses_socket_links() {
        assert_eq!(socket_inode("socket:[123]".as_ref()), Some(123));
        assert_eq!(socket_inode("pipe:[123]".as_ref()), None);
        assert_eq!(socket_inode("socket:[x]".as_ref()), None);
    }
}
