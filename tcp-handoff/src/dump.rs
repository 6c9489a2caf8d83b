//! Freezing a live socket and reading its state (the donor side).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use socket2::SockRef;

use crate::capture::{Capture, CaptureStats, attach_shield, detach_shield};
use crate::error::{Error, Result, ValidationError};
use crate::segment::CapturedSegment;
use crate::state::{
    Buffers, ConnectionId, Keepalive, Limits, RepairWindow, SockOpts, TCP_STATE_VERSION,
    TcpOptions, TcpState, WindowScale,
};
use crate::sys;

/// How to freeze a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreezeOptions {
    /// Capture the peer's segments that the frozen socket drops, so the
    /// acceptor can replay them (needs `CAP_NET_RAW`). Default: on.
    pub capture: bool,
    /// Bounds on queues and captures.
    pub limits: Limits,
}

impl Default for FreezeOptions {
    fn default() -> Self {
        FreezeOptions {
            capture: true,
            limits: Limits::default(),
        }
    }
}

/// A socket in repair mode behind the shield: it neither reads, writes,
/// acknowledges nor resets. It holds its own descriptor of the socket.
/// Dropping it without [`close_silently`](Frozen::close_silently) or
/// [`thaw`](Frozen::thaw) closes only that descriptor: the socket stays
/// frozen while other descriptors of it exist, and goes away without a
/// packet with the last one.
#[derive(Debug)]
pub struct Frozen {
    sock: OwnedFd,
    id: ConnectionId,
    /// The peer's window before `freeze` closed it (see `close_send_window`).
    saved_snd_wnd: Option<u32>,
    capture: Option<Capture>,
    last_rcv_nxt: Option<u32>,
    limits: Limits,
}

/// The local and remote addresses of a connected TCP socket.
pub(crate) fn endpoints(fd: BorrowedFd<'_>) -> Result<ConnectionId> {
    let s = SockRef::from(&fd);
    let proto = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)
        .map_err(Error::sys("getsockopt(SO_PROTOCOL)"))?;
    if proto != libc::IPPROTO_TCP {
        return Err(Error::NotTcp(format!("protocol {proto}")));
    }
    let local = s
        .local_addr()
        .map_err(Error::sys("getsockname"))?
        .as_socket()
        .ok_or_else(|| Error::NotTcp("local address is not IP".into()))?;
    let remote = s
        .peer_addr()
        .map_err(Error::sys("getpeername"))?
        .as_socket()
        .ok_or_else(|| Error::NotTcp("peer address is not IP".into()))?;
    Ok(ConnectionId { local, remote })
}

/// Puts a connected TCP socket behind the shield and into repair mode.
///
/// From here on the kernel drops every segment of the connection before TCP
/// sees it (no ACK, no RST; captured if `opts.capture`), and the
/// application's reads and writes on any descriptor of the socket fail
/// (`EPERM`/`EINVAL`). Needs `CAP_NET_ADMIN`.
///
/// The returned [`Frozen`] holds a duplicate of `sock`: if freezing fails,
/// the caller's descriptor is untouched and the connection goes on; if it
/// succeeds, the caller may keep or close its descriptor (closing a socket
/// in repair mode sends nothing).
pub fn freeze(sock: impl AsFd, opts: &FreezeOptions) -> Result<Frozen> {
    let sock: OwnedFd = sock
        .as_fd()
        .try_clone_to_owned()
        .map_err(Error::sys("fcntl(F_DUPFD_CLOEXEC)"))?;
    let id = endpoints(sock.as_fd())?;
    // Capture first, so that every segment the shield drops is seen.
    let capture = if opts.capture {
        Some(Capture::open(id.local, id.remote)?)
    } else {
        None
    };
    attach_shield(sock.as_fd())?;
    if let Err(e) = sys::setsockopt_int(
        sock.as_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_REPAIR,
        sys::TCP_REPAIR_ON,
    ) {
        let _ = detach_shield(sock.as_fd());
        return Err(if e.raw_os_error() == Some(libc::EPERM) {
            Error::PermissionDenied(e)
        } else {
            Error::sys("setsockopt(TCP_REPAIR)")(e)
        });
    }
    let mut frozen = Frozen {
        sock,
        id,
        saved_snd_wnd: None,
        capture,
        last_rcv_nxt: None,
        limits: opts.limits,
    };
    let info = sys::tcp_info(frozen.sock.as_fd()).map_err(Error::sys("getsockopt(TCP_INFO)"))?;
    if info.state != sys::TCP_ESTABLISHED {
        // Undo, leaving the socket as it was.
        let state = info.state;
        let _ = frozen.thaw();
        return Err(Error::UnsupportedState(state));
    }
    frozen.close_send_window()?;
    tracing::debug!(conn = %id, "frozen");
    Ok(frozen)
}

impl Frozen {
    /// The connection's endpoints.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The frozen socket.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Sets the peer's window to zero so the frozen socket transmits no new
    /// data. Repair mode alone does not stop transmission: pacing and TSQ
    /// timers keep sending queued bytes, and bytes sent after the dump would
    /// reach the peer without being in the state, whose acknowledgments
    /// the restored socket would then discard as "ack of unsent data".
    /// Retransmissions of already-sent bytes may still happen; they are
    /// harmless.
    fn close_send_window(&mut self) -> Result<()> {
        let fd = self.sock.as_fd();
        match sys::getsockopt::<sys::TcpRepairWindow>(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR_WINDOW,
        ) {
            Ok(mut w) => {
                self.saved_snd_wnd = Some(w.snd_wnd);
                w.snd_wnd = 0;
                sys::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_WINDOW, &w)
                    .map_err(Error::sys("setsockopt(TCP_REPAIR_WINDOW) at freeze"))
            }
            // Kernels before 4.8: nothing to close it with.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(()),
            Err(e) => Err(Error::sys("getsockopt(TCP_REPAIR_WINDOW)")(e)),
        }
    }

    /// Reads the complete state. May be called more than once; a dump that
    /// sees the socket change underneath (a timer fired) is retried.
    pub fn dump(&mut self) -> Result<TcpState> {
        let mut last_change = String::new();
        for _ in 0..5 {
            match self.dump_once()? {
                Ok(state) => {
                    self.last_rcv_nxt = Some(state.rcv_nxt);
                    return Ok(state);
                }
                Err(change) => last_change = change,
            }
        }
        Err(Error::Unstable(last_change))
    }

    fn queue_lengths(&self) -> Result<(usize, usize, usize)> {
        let fd = self.sock.as_fd();
        let outq = sys::ioctl_int(fd, sys::SIOCOUTQ).map_err(Error::sys("ioctl(SIOCOUTQ)"))?;
        let unsent =
            sys::ioctl_int(fd, sys::SIOCOUTQNSD).map_err(Error::sys("ioctl(SIOCOUTQNSD)"))?;
        let inq = sys::ioctl_int(fd, sys::SIOCINQ).map_err(Error::sys("ioctl(SIOCINQ)"))?;
        let len = |v: libc::c_int| usize::try_from(v).unwrap_or(0);
        Ok((len(outq), len(unsent).min(len(outq)), len(inq)))
    }

    /// One attempt; the inner `Err` says what changed during the dump.
    fn dump_once(&self) -> Result<std::result::Result<TcpState, String>> {
        let fd = self.sock.as_fd();
        let info = sys::tcp_info(fd).map_err(Error::sys("getsockopt(TCP_INFO)"))?;
        if info.state != sys::TCP_ESTABLISHED {
            return Err(Error::UnsupportedState(info.state));
        }
        let lengths = self.queue_lengths()?;
        let (outq, unsent_len, inq) = lengths;
        if inq > self.limits.max_recv_queue {
            return Err(ValidationError::QueueTooLong {
                queue: "receive",
                len: inq,
                limit: self.limits.max_recv_queue,
            }
            .into());
        }
        if outq > self.limits.max_send_queue {
            return Err(ValidationError::QueueTooLong {
                queue: "send",
                len: outq,
                limit: self.limits.max_send_queue,
            }
            .into());
        }
        let mss = sys::getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG)
            .map_err(Error::sys("getsockopt(TCP_MAXSEG)"))?;
        let timestamp = if info.options & sys::TCPI_OPT_TIMESTAMPS != 0 {
            let ts = sys::getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_TIMESTAMP)
                .map_err(Error::sys("getsockopt(TCP_TIMESTAMP)"))?;
            Some(ts as u32)
        } else {
            None
        };
        let window = match sys::getsockopt::<sys::TcpRepairWindow>(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR_WINDOW,
        ) {
            Ok(w) => Some(RepairWindow {
                snd_wl1: w.snd_wl1,
                // The window the peer really offered, not the zero of the freeze.
                snd_wnd: self.saved_snd_wnd.unwrap_or(w.snd_wnd),
                max_window: w.max_window.max(self.saved_snd_wnd.unwrap_or(0)),
                rcv_wnd: w.rcv_wnd,
                rcv_wup: w.rcv_wup,
            }),
            // Kernels before 4.8 have no TCP_REPAIR_WINDOW.
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => None,
            Err(e) => return Err(Error::sys("getsockopt(TCP_REPAIR_WINDOW)")(e)),
        };
        let (rcv_nxt, recv) = read_queue(fd, sys::TCP_RECV_QUEUE, inq)?;
        let (write_seq, send) = read_queue(fd, sys::TCP_SEND_QUEUE, outq)?;
        sys::setsockopt_int(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR_QUEUE,
            sys::TCP_NO_QUEUE,
        )
        .map_err(Error::sys("setsockopt(TCP_REPAIR_QUEUE)"))?;
        let (Some(recv), Some(mut sent)) = (recv, send) else {
            return Ok(Err("a queue shrank while it was read".into()));
        };
        let again = self.queue_lengths()?;
        if again != lengths {
            return Ok(Err(format!("queues {lengths:?} -> {again:?}")));
        }
        let unsent = sent.split_off(outq - unsent_len);
        let wscale = (info.options & sys::TCPI_OPT_WSCALE != 0).then_some(WindowScale {
            snd: info.snd_wscale,
            rcv: info.rcv_wscale,
        });
        let state = TcpState {
            version: TCP_STATE_VERSION,
            local: self.id.local,
            remote: self.id.remote,
            snd_una: write_seq.wrapping_sub(outq as u32),
            rcv_nxt,
            sent,
            unsent,
            recv,
            options: TcpOptions {
                mss: u16::try_from(mss).unwrap_or(u16::MAX),
                sack: info.options & sys::TCPI_OPT_SACK != 0,
                wscale,
                timestamp,
            },
            window,
            buffers: read_buffers(fd)?,
            sockopts: read_sockopts(fd)?,
        };
        Ok(Ok(state))
    }

    /// Segments of the peer captured so far that a receiver at the last
    /// dump's `rcv_nxt` still needs (see [`Capture::take`]). Drains them.
    pub fn take_captured(&mut self) -> Vec<CapturedSegment> {
        let rcv_nxt = self.last_rcv_nxt;
        let limits = self.limits;
        match (&mut self.capture, rcv_nxt) {
            (Some(c), Some(r)) => c.take(r, &limits),
            _ => Vec::new(),
        }
    }

    /// Counters of the capture, if one runs.
    pub fn capture_stats(&self) -> Option<CaptureStats> {
        self.capture.as_ref().map(Capture::stats)
    }

    /// Ends the connection on this host without a FIN or RST: the socket
    /// leaves the connection table while still in repair mode
    /// (`tcp_disconnect`), even if another process still holds a descriptor
    /// of it (that process then sees `ECONNABORTED`). Returns the captured
    /// segments not yet taken.
    ///
    /// Call it only once the peer's segments no longer reach this host (the
    /// route moved and in-flight packets drained): afterwards this kernel
    /// has no socket for them and would answer with RST.
    pub fn close_silently(mut self) -> Result<Vec<CapturedSegment>> {
        let captured = self.take_captured();
        sys::disconnect(self.sock.as_fd()).map_err(Error::sys("connect(AF_UNSPEC)"))?;
        if let Some(c) = self.capture.take() {
            c.close_in_background();
        }
        tracing::debug!(conn = %self.id, captured = captured.len(), "closed silently");
        Ok(captured)
    }

    /// Aborts the move: removes the shield and leaves repair mode (which
    /// sends a window probe so the peer answers at once), handing the live
    /// socket back.
    pub fn thaw(self) -> Result<OwnedFd> {
        let fd = self.sock.as_fd();
        let _ = sys::setsockopt_int(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR_QUEUE,
            sys::TCP_NO_QUEUE,
        );
        if let Some(snd_wnd) = self.saved_snd_wnd {
            let mut w = sys::getsockopt::<sys::TcpRepairWindow>(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_REPAIR_WINDOW,
            )
            .map_err(Error::sys("getsockopt(TCP_REPAIR_WINDOW)"))?;
            w.snd_wnd = snd_wnd;
            w.max_window = w.max_window.max(snd_wnd);
            sys::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_WINDOW, &w)
                .map_err(Error::sys("setsockopt(TCP_REPAIR_WINDOW) at thaw"))?;
        }
        detach_shield(fd)?;
        sys::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, sys::TCP_REPAIR_OFF)
            .map_err(Error::sys("setsockopt(TCP_REPAIR off)"))?;
        Ok(self.sock)
    }
}

/// Selects `queue`, reads its sequence number and peeks `len` bytes.
/// Returns `None` for the bytes if the queue held fewer than `len`.
fn read_queue(
    fd: BorrowedFd<'_>,
    queue: libc::c_int,
    len: usize,
) -> Result<(u32, Option<Vec<u8>>)> {
    sys::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_QUEUE, queue)
        .map_err(Error::sys("setsockopt(TCP_REPAIR_QUEUE)"))?;
    let seq = sys::getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_QUEUE_SEQ)
        .map_err(Error::sys("getsockopt(TCP_QUEUE_SEQ)"))? as u32;
    if len == 0 {
        return Ok((seq, Some(Vec::new())));
    }
    // One byte more than expected: a longer queue shows up as a mismatch.
    let mut buf: Vec<u8> = Vec::with_capacity(len + 1);
    let got = sys::peek(fd, buf.spare_capacity_mut())
        .map_err(Error::sys("recv(MSG_PEEK) of a repair queue"))?;
    if got != len {
        return Ok((seq, None));
    }
    // SAFETY: the kernel initialised the first `got == len` bytes of the
    // spare capacity, which is at least `len + 1` long.
    unsafe { buf.set_len(len) };
    Ok((seq, Some(buf)))
}

fn read_buffers(fd: BorrowedFd<'_>) -> Result<Buffers> {
    let get = |name, op| {
        sys::getsockopt_int(fd, libc::SOL_SOCKET, name)
            .map(|v| u32::try_from(v).unwrap_or(0))
            .map_err(Error::sys(op))
    };
    let locked = match sys::getsockopt_int(fd, libc::SOL_SOCKET, sys::SO_BUF_LOCK) {
        Ok(v) => (v & 3) as u8,
        // Kernels before 5.14: unknown, assume auto-tuning.
        Err(_) => 0,
    };
    Ok(Buffers {
        sndbuf: get(libc::SO_SNDBUF, "getsockopt(SO_SNDBUF)")?,
        rcvbuf: get(libc::SO_RCVBUF, "getsockopt(SO_RCVBUF)")?,
        locked,
    })
}

fn read_sockopts(fd: BorrowedFd<'_>) -> Result<SockOpts> {
    let tcp = |name, op| {
        sys::getsockopt_int(fd, libc::IPPROTO_TCP, name)
            .map(|v| u32::try_from(v).unwrap_or(0))
            .map_err(Error::sys(op))
    };
    let keepalive_on = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE)
        .map_err(Error::sys("getsockopt(SO_KEEPALIVE)"))?
        != 0;
    let keepalive = if keepalive_on {
        Some(Keepalive {
            idle_s: tcp(libc::TCP_KEEPIDLE, "getsockopt(TCP_KEEPIDLE)")?,
            interval_s: tcp(libc::TCP_KEEPINTVL, "getsockopt(TCP_KEEPINTVL)")?,
            count: tcp(libc::TCP_KEEPCNT, "getsockopt(TCP_KEEPCNT)")?,
        })
    } else {
        None
    };
    let congestion = SockRef::from(&fd).tcp_congestion().ok().and_then(|name| {
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        String::from_utf8(name[..end].to_vec())
            .ok()
            .filter(|s| !s.is_empty())
    });
    Ok(SockOpts {
        nodelay: tcp(libc::TCP_NODELAY, "getsockopt(TCP_NODELAY)")? != 0,
        keepalive,
        user_timeout_ms: tcp(libc::TCP_USER_TIMEOUT, "getsockopt(TCP_USER_TIMEOUT)")?,
        congestion,
    })
}

/// The endpoints of a socket, for callers that want to look before freezing.
pub fn connection_id(fd: BorrowedFd<'_>) -> Result<ConnectionId> {
    endpoints(fd)
}
