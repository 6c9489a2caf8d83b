//! The engine's raw IPv6 send socket.
//!
//! `AF_INET6`/`SOCK_RAW`/`IPPROTO_RAW` sends complete IPv6 packets, header
//! included, exactly as built (extension headers such as RH2 or the Home
//! Address option, or an outer IPv6-in-IPv6 header). The socket sets
//! `SO_MARK` to the engine's fwmark: the steering rules skip marked packets,
//! so what the engine sends is routed by the main table and never comes back
//! into the TUN (no loops). The route lookup uses the packet's own
//! destination address (the first hop of a routing header, the tunnel end
//! point of an encapsulation).
//!
//! No receive side: inbound packets reach the engine through the TUN.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::netns::{self, NetnsError};

/// Size of the fixed IPv6 header.
const IPV6_HEADER_LEN: usize = 40;

/// Errors of the raw socket.
#[derive(Debug, thiserror::Error)]
pub enum RawSockError {
    /// Opening or configuring the socket failed.
    #[error("raw IPv6 socket: {op}: {source}")]
    Setup {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Shorter than an IPv6 header.
    #[error("packet of {len} bytes is shorter than an IPv6 header")]
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// The version field is not 6.
    #[error("not an IPv6 packet (version {version})")]
    NotIpv6 {
        /// The version nibble.
        version: u8,
    },
    /// Payload Length disagrees with the buffer.
    #[error("payload length field says {field} bytes, buffer has {actual}")]
    LengthMismatch {
        /// The Payload Length field.
        field: usize,
        /// Bytes after the fixed header.
        actual: usize,
    },
    /// Larger than the outgoing link's MTU (`EMSGSIZE`); raw sockets do not
    /// fragment.
    #[error("packet of {len} bytes exceeds the path MTU")]
    TooBig {
        /// Packet length.
        len: usize,
    },
    /// The kernel refused the send (`WouldBlock` on a full non-blocking
    /// socket, `ENETUNREACH` without a route, ...).
    #[error("sending to {dst}: {source}")]
    Send {
        /// Destination taken from the packet.
        dst: Ipv6Addr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl RawSockError {
    /// A non-blocking send found the socket buffer full.
    pub fn is_would_block(&self) -> bool {
        matches!(self, RawSockError::Send { source, .. } if source.kind() == io::ErrorKind::WouldBlock)
    }
}

fn setup(op: &'static str) -> impl FnOnce(io::Error) -> RawSockError {
    move |source| RawSockError::Setup { op, source }
}

/// Checks the fixed header and returns the destination address.
pub fn packet_destination(packet: &[u8]) -> Result<Ipv6Addr, RawSockError> {
    let Some(header) = packet.get(..IPV6_HEADER_LEN) else {
        return Err(RawSockError::TooShort { len: packet.len() });
    };
    let version = header[0] >> 4;
    if version != 6 {
        return Err(RawSockError::NotIpv6 { version });
    }
    let field = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let actual = packet.len() - IPV6_HEADER_LEN;
    if field != actual {
        return Err(RawSockError::LengthMismatch { field, actual });
    }
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&header[24..40]);
    Ok(Ipv6Addr::from(dst))
}

/// A marked, header-included raw IPv6 send socket.
#[derive(Debug)]
pub struct RawSender {
    sock: Socket,
    mark: u32,
}

impl RawSender {
    /// Opens the socket in the caller's namespace, marking packets `mark`
    /// (0: unmarked).
    pub fn new(mark: u32) -> Result<Self, RawSockError> {
        let sock = Socket::new(
            Domain::IPV6,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )
        .map_err(setup("socket"))?;
        // IPPROTO_RAW implies IPV6_HDRINCL on Linux; say so explicitly where
        // the option exists (Linux >= 4.5).
        match sock.set_header_included_v6(true) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {}
            Err(e) => return Err(setup("IPV6_HDRINCL")(e)),
        }
        if mark != 0 {
            sock.set_mark(mark).map_err(setup("SO_MARK"))?;
        }
        Ok(Self { sock, mark })
    }

    /// Opens the socket inside namespace `ns`.
    pub fn new_in(ns: &str, mark: u32) -> Result<Self, RawSockError> {
        netns::in_netns(ns, || Self::new(mark))?
    }

    /// The fwmark set on every packet.
    pub fn mark(&self) -> u32 {
        self.mark
    }

    /// Switches `O_NONBLOCK`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), RawSockError> {
        self.sock
            .set_nonblocking(nonblocking)
            .map_err(setup("O_NONBLOCK"))
    }

    /// Sends one complete IPv6 packet to the destination in its header.
    pub fn send(&self, packet: &[u8]) -> Result<usize, RawSockError> {
        self.send_scoped(packet, 0)
    }

    /// Like [`RawSender::send`] with a scope id (interface index), needed
    /// when the destination is link-local.
    pub fn send_scoped(&self, packet: &[u8], scope_id: u32) -> Result<usize, RawSockError> {
        let dst = packet_destination(packet)?;
        self.send_checked(packet, dst, scope_id)
    }

    fn send_checked(
        &self,
        packet: &[u8],
        dst: Ipv6Addr,
        scope_id: u32,
    ) -> Result<usize, RawSockError> {
        let to = SockAddr::from(SocketAddrV6::new(dst, 0, 0, scope_id));
        self.sock.send_to(packet, &to).map_err(|source| {
            if source.raw_os_error() == Some(libc::EMSGSIZE) {
                RawSockError::TooBig { len: packet.len() }
            } else {
                RawSockError::Send { dst, source }
            }
        })
    }

    /// Registers the socket (made non-blocking) with the current tokio
    /// runtime.
    pub fn into_async(self) -> Result<AsyncRawSender, RawSockError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(setup("register with tokio")(io::Error::other(
                "no tokio runtime",
            )));
        }
        self.set_nonblocking(true)?;
        // SAFETY: `RawSender` owns its socket; the fd stays open and is the
        // one `as_raw_fd` returns for as long as the `AsyncFd` holds it.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(self, tokio::io::Interest::WRITABLE)
        }
        .map_err(|e| setup("register with tokio")(e.into_parts().1))?;
        Ok(AsyncRawSender { fd })
    }
}

impl AsFd for RawSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsRawFd for RawSender {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// [`RawSender`] driven by tokio: a full socket buffer waits instead of
/// failing.
#[derive(Debug)]
pub struct AsyncRawSender {
    fd: tokio::io::unix::AsyncFd<RawSender>,
}

impl AsyncRawSender {
    /// The fwmark set on every packet.
    pub fn mark(&self) -> u32 {
        self.fd.get_ref().mark
    }

    /// Sends one complete IPv6 packet to the destination in its header.
    pub async fn send(&self, packet: &[u8]) -> Result<usize, RawSockError> {
        self.send_scoped(packet, 0).await
    }

    /// Like [`AsyncRawSender::send`] with a scope id.
    pub async fn send_scoped(&self, packet: &[u8], scope_id: u32) -> Result<usize, RawSockError> {
        let dst = packet_destination(packet)?;
        loop {
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(|source| RawSockError::Send { dst, source })?;
            match self.fd.get_ref().send_checked(packet, dst, scope_id) {
                Err(e) if e.is_would_block() => guard.clear_ready(),
                other => return other,
            }
        }
    }

    /// Sends without waiting (`is_would_block()` when the buffer is full).
    pub fn try_send(&self, packet: &[u8]) -> Result<usize, RawSockError> {
        self.fd.get_ref().send(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload_len: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40 + usize::from(payload_len)];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&payload_len.to_be_bytes());
        p[24..40].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7).octets());
        p
    }

    #[test]
    fn destination_comes_from_the_header() {
        let p = header(8);
        assert_eq!(
            packet_destination(&p).ok(),
            Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7))
        );
    }

    #[test]
    fn malformed_packets_are_typed_errors() {
        assert!(matches!(
            packet_destination(&[0x60; 39]),
            Err(RawSockError::TooShort { len: 39 })
        ));
        let mut p = header(0);
        p[0] = 0x45;
        assert!(matches!(
            packet_destination(&p),
            Err(RawSockError::NotIpv6 { version: 4 })
        ));
        let mut p = header(8);
        p.pop();
        assert!(matches!(
            packet_destination(&p),
            Err(RawSockError::LengthMismatch {
                field: 8,
                actual: 7
            })
        ));
        assert!(packet_destination(&[]).is_err());
    }
}
