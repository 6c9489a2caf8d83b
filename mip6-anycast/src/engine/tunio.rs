//! The engine's TUN queue: non-blocking reads and writes on the device's
//! fd, registered with tokio, with the `virtio_net_hdr` of an
//! `IFF_VNET_HDR` device read into and written from its own 10-octet
//! buffer (`readv`/`writev`), so the packet itself lands at the engine's
//! headroom offset and header edits never touch the virtio header.
//!
//! A TUN delivers one packet per `read` (there is no `recvmmsg` for a
//! character device), so batching means draining the queue with
//! non-blocking reads after one readiness wake-up, and what makes bulk
//! traffic cheap is that one read carries a 64 KB GSO super-packet.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use super::tun::{Tun, TunError};
use super::vnet::{VNET_HDR_LEN, VnetHdr};

/// TCP offloads asked of the kernel (`TUN_F_CSUM | TSO4 | TSO6 | TSO_ECN`):
/// no UDP segmentation offload, so only TCP GSO packets arrive.
pub const TCP_OFFLOADS: u32 =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;

/// One TUN queue driven by tokio readiness.
#[derive(Debug)]
pub struct TunQueue {
    fd: AsyncFd<OwnedFd>,
    vnet: bool,
    name: String,
}

fn io_err(name: &str, op: &'static str) -> impl FnOnce(io::Error) -> TunError {
    let name = name.to_string();
    move |source| TunError::Io { name, op, source }
}

impl TunQueue {
    /// Takes over `tun` (made non-blocking) on the current tokio runtime.
    pub fn new(tun: Tun) -> Result<Self, TunError> {
        let name = tun.name().to_string();
        let vnet = tun.offload();
        tun.set_nonblocking(true)
            .map_err(io_err(&name, "O_NONBLOCK"))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io_err(&name, "register with tokio")(io::Error::other(
                "no tokio runtime",
            )));
        }
        // SAFETY: the `OwnedFd` is owned by the `AsyncFd` from here on and
        // `as_raw_fd` always returns the same open descriptor.
        let fd = unsafe { AsyncFd::register(tun.into_fd()) }
            .map_err(|e| io_err(&name, "register with tokio")(e.into_parts().1))?;
        Ok(Self { fd, vnet, name })
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Packets carry a `virtio_net_hdr`.
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// Sets the device's offloads (`TUNSETOFFLOAD`, `TUN_F_*`; 0: the
    /// kernel segments and checksums before the engine sees a packet).
    pub fn set_offloads(&self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes an unsigned long by value on a TUN fd
        // we own.
        let r = unsafe {
            libc::ioctl(
                self.fd.get_ref().as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until a read may succeed.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, OwnedFd>> {
        self.fd.readable().await
    }

    /// Reads one packet into `buf` and its virtio header into `hdr`
    /// (zeroed without `IFF_VNET_HDR`); `WouldBlock` when the queue is
    /// empty. Returns the packet's length.
    pub fn try_read(&self, hdr: &mut [u8; VNET_HDR_LEN], buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.fd.get_ref().as_raw_fd();
        if !self.vnet {
            *hdr = [0; VNET_HDR_LEN];
            // SAFETY: reading into a live, exclusively borrowed buffer.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            return if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            };
        }
        let iov = [
            libc::iovec {
                iov_base: hdr.as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            },
        ];
        // SAFETY: both iovecs point into live, exclusively borrowed buffers
        // of the given lengths.
        let n = unsafe { libc::readv(fd, iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < VNET_HDR_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "read shorter than the virtio header",
            ));
        }
        Ok(n - VNET_HDR_LEN)
    }

    /// Writes one packet with virtio header `hdr` (ignored without
    /// `IFF_VNET_HDR`): the kernel receives it as if it arrived on the
    /// TUN, delivers or forwards it, and segments a GSO packet where the
    /// outgoing device needs it. Never waits.
    pub fn write(&self, hdr: &VnetHdr, pkt: &[u8]) -> io::Result<usize> {
        let fd = self.fd.get_ref().as_raw_fd();
        if !self.vnet {
            // SAFETY: writing from a live borrowed buffer.
            let n = unsafe { libc::write(fd, pkt.as_ptr().cast(), pkt.len()) };
            return if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            };
        }
        let h = hdr.emit();
        let iov = [
            libc::iovec {
                iov_base: h.as_ptr() as *mut libc::c_void,
                iov_len: VNET_HDR_LEN,
            },
            libc::iovec {
                iov_base: pkt.as_ptr() as *mut libc::c_void,
                iov_len: pkt.len(),
            },
        ];
        // SAFETY: both iovecs point into live buffers of the given lengths;
        // writev only reads them.
        let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize).saturating_sub(VNET_HDR_LEN))
    }
}
