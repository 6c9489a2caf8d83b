//! Thin, typed wrappers over the raw socket calls this crate needs.
//!
//! Every `unsafe` block of the crate that touches a socket option lives here
//! or in `capture`/`inject`/`legacy`/`fdpass`, each with its own SAFETY note.
//! Constants that `libc` does not export are defined here, each citing the
//! kernel header it comes from.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{AsRawFd, BorrowedFd};

// include/uapi/linux/tcp.h: values of TCP_REPAIR.
/// `TCP_REPAIR_ON` (include/uapi/linux/tcp.h).
pub const TCP_REPAIR_ON: libc::c_int = 1;
/// `TCP_REPAIR_OFF` (include/uapi/linux/tcp.h): leaving repair mode sends a window probe.
pub const TCP_REPAIR_OFF: libc::c_int = 0;
/// `TCP_REPAIR_OFF_NO_WP` (include/uapi/linux/tcp.h): leave repair mode without a probe.
pub const TCP_REPAIR_OFF_NO_WP: libc::c_int = -1;

// include/uapi/linux/tcp.h: `enum { TCP_NO_QUEUE, TCP_RECV_QUEUE, TCP_SEND_QUEUE }`.
/// `TCP_NO_QUEUE` (include/uapi/linux/tcp.h).
pub const TCP_NO_QUEUE: libc::c_int = 0;
/// `TCP_RECV_QUEUE` (include/uapi/linux/tcp.h).
pub const TCP_RECV_QUEUE: libc::c_int = 1;
/// `TCP_SEND_QUEUE` (include/uapi/linux/tcp.h).
pub const TCP_SEND_QUEUE: libc::c_int = 2;

// include/net/tcp.h: TCP option kinds accepted by TCP_REPAIR_OPTIONS.
/// `TCPOPT_MSS` (include/net/tcp.h).
pub const TCPOPT_MAXSEG: u32 = 2;
/// `TCPOPT_WINDOW` (include/net/tcp.h).
pub const TCPOPT_WINDOW: u32 = 3;
/// `TCPOPT_SACK_PERM` (include/net/tcp.h).
pub const TCPOPT_SACK_PERM: u32 = 4;
/// `TCPOPT_TIMESTAMP` (include/net/tcp.h).
pub const TCPOPT_TIMESTAMP: u32 = 8;

// include/uapi/linux/tcp.h: bits of `tcpi_options`.
/// `TCPI_OPT_TIMESTAMPS` (include/uapi/linux/tcp.h).
pub const TCPI_OPT_TIMESTAMPS: u8 = 1;
/// `TCPI_OPT_SACK` (include/uapi/linux/tcp.h).
pub const TCPI_OPT_SACK: u8 = 2;
/// `TCPI_OPT_WSCALE` (include/uapi/linux/tcp.h).
pub const TCPI_OPT_WSCALE: u8 = 4;

// include/net/tcp_states.h.
/// `TCP_ESTABLISHED` (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: u8 = 1;

/// `SIOCINQ` = `FIONREAD` (include/uapi/linux/sockios.h): bytes in the receive queue.
pub const SIOCINQ: libc::Ioctl = libc::FIONREAD;
/// `SIOCOUTQ` = `TIOCOUTQ` (include/uapi/linux/sockios.h): bytes not yet acked.
pub const SIOCOUTQ: libc::Ioctl = libc::TIOCOUTQ;
/// `SIOCOUTQNSD` (include/uapi/linux/sockios.h): bytes not yet sent.
pub const SIOCOUTQNSD: libc::Ioctl = 0x894B;

/// `SO_BUF_LOCK` (include/uapi/asm-generic/socket.h, Linux 5.14): the
/// `SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK` bits that stop buffer auto-tuning.
pub const SO_BUF_LOCK: libc::c_int = 72;
/// `SO_SNDBUFFORCE` (include/uapi/asm-generic/socket.h).
pub const SO_SNDBUFFORCE: libc::c_int = 32;
/// `SO_RCVBUFFORCE` (include/uapi/asm-generic/socket.h).
pub const SO_RCVBUFFORCE: libc::c_int = 33;

/// `struct tcp_repair_opt` (include/uapi/linux/tcp.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpRepairOpt {
    pub opt_code: u32,
    pub opt_val: u32,
}

/// `struct tcp_repair_window` (include/uapi/linux/tcp.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpRepairWindow {
    pub snd_wl1: u32,
    pub snd_wnd: u32,
    pub max_window: u32,
    pub rcv_wnd: u32,
    pub rcv_wup: u32,
}

/// The fields of `struct tcp_info` (include/uapi/linux/tcp.h) that this
/// crate needs, read from a `TCP_INFO` answer of any length >= 7.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpInfoHead {
    pub state: u8,
    pub options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    /// `tcpi_snd_mss` (offset 16): payload bytes per segment.
    pub snd_mss: Option<u32>,
    /// `tcpi_snd_cwnd` (offset 80) in segments.
    pub snd_cwnd: Option<u32>,
}

/// Marker for plain-old-data option values: any bit pattern is valid and the
/// type has no padding that the kernel could leave uninitialised in a way that
/// matters (all our structs are `u32` arrays or `c_int`).
///
/// # Safety
/// Implementors must be `repr(C)` (or primitive) and valid for every bit pattern.
pub unsafe trait Pod: Copy {}
// SAFETY: primitive integers are valid for every bit pattern.
unsafe impl Pod for libc::c_int {}
// SAFETY: primitive integers are valid for every bit pattern.
unsafe impl Pod for u32 {}
// SAFETY: repr(C) struct of two u32.
unsafe impl Pod for TcpRepairOpt {}
// SAFETY: repr(C) struct of five u32.
unsafe impl Pod for TcpRepairWindow {}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `setsockopt(fd, level, name, &value, sizeof value)`.
pub fn setsockopt<T: Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of `size_of::<T>()` bytes for the call.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// `setsockopt` with a slice of values (used for `TCP_REPAIR_OPTIONS`).
pub fn setsockopt_slice<T: Pod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    values: &[T],
) -> io::Result<()> {
    let len = std::mem::size_of_val(values);
    // SAFETY: `values` is a live slice of `len` bytes for the duration of the call.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            values.as_ptr().cast(),
            len as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}

/// `getsockopt` into a `T`; fails with `InvalidData` if the kernel answered
/// with fewer bytes than `T` has.
pub fn getsockopt<T: Pod + Default>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a live, writable `T` of `len` bytes; `len` is a live socklen_t.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    cvt(ret)?;
    if (len as usize) < size_of::<T>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("getsockopt({level}, {name}) returned {len} bytes"),
        ));
    }
    Ok(value)
}

/// `getsockopt` of an `int` option.
pub fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    getsockopt::<libc::c_int>(fd, level, name)
}

/// `setsockopt` of an `int` option.
pub fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

/// `ioctl(fd, request, &int)` for the queue-length requests.
pub fn ioctl_int(fd: BorrowedFd<'_>, request: libc::Ioctl) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    // SAFETY: the SIOCINQ/SIOCOUTQ/SIOCOUTQNSD requests write one int to the pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request, &mut value as *mut libc::c_int) };
    cvt(ret)?;
    Ok(value)
}

/// Reads the head of `TCP_INFO`.
pub fn tcp_info(fd: BorrowedFd<'_>) -> io::Result<TcpInfoHead> {
    let mut buf = [0u8; 256];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is a live writable buffer of `len` bytes.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    cvt(ret)?;
    let got = &buf[..(len as usize).min(buf.len())];
    let byte = |i: usize| got.get(i).copied();
    let word = |i: usize| {
        got.get(i..i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_ne_bytes)
    };
    let (Some(state), Some(options), Some(wscale)) = (byte(0), byte(5), byte(6)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("TCP_INFO returned {len} bytes"),
        ));
    };
    Ok(TcpInfoHead {
        state,
        options,
        // `__u8 tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4;` — first field in the low bits.
        snd_wscale: wscale & 0x0f,
        rcv_wscale: wscale >> 4,
        snd_mss: word(16),
        snd_cwnd: word(80),
    })
}

/// `recv(fd, buf, MSG_PEEK | MSG_DONTWAIT)`.
pub fn peek(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is a live writable buffer of `buf.len()` bytes.
    let ret = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `send(fd, buf, MSG_DONTWAIT | MSG_NOSIGNAL)`.
pub fn send_nonblocking(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live readable buffer of `buf.len()` bytes.
    let ret = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Waits until `fd` is writable or `timeout_ms` elapses; returns whether it is.
pub fn poll_writable(fd: BorrowedFd<'_>, timeout_ms: libc::c_int) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    cvt(ret)?;
    Ok(ret > 0 && pfd.revents & libc::POLLOUT != 0)
}

/// `connect(fd, {AF_UNSPEC})`: `tcp_disconnect()`. In repair mode the kernel
/// sends neither FIN nor RST (net/ipv4/tcp.c, `tcp_disconnect`).
pub fn disconnect(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_storage is a valid AF_UNSPEC address.
    let addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: `addr` is live and at least sizeof(sa_family_t) bytes long.
    let ret = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_storage).cast(),
            size_of::<libc::sa_family_t>() as libc::socklen_t,
        )
    };
    cvt(ret).map(drop)
}
