//! What the kernel knows of the path MTU toward a destination, for
//! packets the engine writes back into its TUN to be forwarded.
//!
//! A packet the kernel forwards and finds too big is answered with an
//! ICMPv6 Packet Too Big to its source — our own address, quoting the
//! rewritten packet (RH2, HAO or tunnel), which no local socket
//! recognises: the sender would never learn and TCP would stall. So before
//! a TUN write the engine compares the packet's segment size with the
//! route's MTU (the link MTU or a learnt path MTU exception), read with
//! `IPV6_MTU` from a UDP socket `connect`ed to the destination (marked like
//! the raw socket, so the same rules apply); a packet that does not fit
//! takes the raw socket, whose `EMSGSIZE` makes the engine's own Packet Too
//! Big toward the original sender. Figures are cached for a short while.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::netns;

/// How long a figure is used before it is read again.
pub const MAX_AGE: Duration = Duration::from_millis(500);
/// Destinations cached at most (the cache is emptied when full).
const MAX_ENTRIES: usize = 4096;

/// Route MTUs by destination.
#[derive(Debug)]
pub struct PathMtu {
    sock: Socket,
    cache: HashMap<Ipv6Addr, (Option<u32>, Instant)>,
}

fn open(mark: u32) -> io::Result<Socket> {
    let sock = Socket::new(Domain::IPV6, Type::DGRAM, None)?;
    if mark != 0 {
        sock.set_mark(mark)?;
    }
    Ok(sock)
}

impl PathMtu {
    /// Opens the probe socket in namespace `ns` (`None`: the caller's),
    /// marked `mark`.
    pub fn new(ns: Option<&str>, mark: u32) -> io::Result<Self> {
        let sock = match ns {
            Some(ns) => netns::in_netns(ns, || open(mark)).map_err(io::Error::other)??,
            None => open(mark)?,
        };
        Ok(Self {
            sock,
            cache: HashMap::new(),
        })
    }

    /// The route MTU toward `dst` (`None`: no route).
    pub fn get(&mut self, dst: Ipv6Addr, now: Instant) -> Option<u32> {
        if let Some(&(mtu, at)) = self.cache.get(&dst)
            && now.saturating_duration_since(at) < MAX_AGE
        {
            return mtu;
        }
        let mtu = self.read(dst);
        if self.cache.len() >= MAX_ENTRIES {
            self.cache.clear();
        }
        self.cache.insert(dst, (mtu, now));
        mtu
    }

    fn read(&self, dst: Ipv6Addr) -> Option<u32> {
        self.sock
            .connect(&SocketAddrV6::new(dst, 9, 0, 0).into())
            .ok()?;
        let mut mtu: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: IPV6_MTU writes one int into `mtu`, of the given size.
        let r = unsafe {
            libc::getsockopt(
                self.sock.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU,
                (&mut mtu as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0 && mtu > 0).then_some(mtu as u32)
    }
}
