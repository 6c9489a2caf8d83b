//! Rebuilding a socket from a [`TcpState`] (the acceptor side).

use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

use crate::capture::{Capture, CaptureStats, attach_shield, detach_shield, reinject};
use crate::error::{Error, Result};
use crate::segment::CapturedSegment;
use crate::state::{ConnectionId, Limits, TcpState};
use crate::sys;

/// What to do with the bytes that were sent but not yet acknowledged when
/// the connection was frozen (see the crate docs, "Prompt resume").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Restore them as sent (what CRIU does). They are retransmitted only
    /// when the peer's acknowledgments show a loss, or by the retransmission
    /// timer, which starts at 1 s or more because RTT estimates do not migrate.
    AsSent,
    /// Restore them as unsent when they fit in the restored socket's first
    /// flight (its initial congestion window, at most `max_segments`
    /// segments): the kernel transmits them the moment repair mode ends and
    /// the peer acknowledges at once (D-SACK if it had them, an ACK
    /// otherwise), without depending on any timer. Larger amounts are
    /// restored as sent (see [`Resend::AllUnsent`] for why). Default, with 10.
    Auto {
        /// Upper bound in segments; the initial window (RFC 6928: 10) is
        /// the natural value.
        max_segments: u32,
    },
    /// Restore all of them as unsent. Unsafe for more than one flight: the
    /// peer's acknowledgments cover bytes it already holds, and Linux
    /// discards a segment whose ACK is beyond `snd_nxt` ("ack of unsent
    /// data", RFC 9293 3.10.7.4) together with any data it carries, so the
    /// connection stalls until the restored socket's retransmission timer.
    /// For experiments and measurements.
    AllUnsent,
}

impl Default for Resend {
    fn default() -> Self {
        Resend::Auto { max_segments: 10 }
    }
}

/// How to restore a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Bind here instead of the state's local address (e.g. the anycast
    /// address the connection moves to). The peer must see the same address
    /// and port, so this only changes what is local, not what is on the wire.
    pub local: Option<SocketAddr>,
    /// `IPV6_FREEBIND`/`IP_FREEBIND`: bind even if the address is not (yet)
    /// local. Default: on.
    pub freebind: bool,
    /// `SO_MARK` for the restored socket's packets.
    pub mark: Option<u32>,
    /// Treatment of sent-but-unacknowledged bytes.
    pub resend: Resend,
    /// Leave repair mode with a window probe (`TCP_REPAIR_OFF`), which makes
    /// the peer acknowledge at once. Default: on.
    pub window_probe: bool,
    /// Capture what the shield drops while the socket is paused and replay it
    /// on activation (needs `CAP_NET_RAW`). Default: on.
    pub capture: bool,
    /// Bounds on what is accepted.
    pub limits: Limits,
    /// How long activation may wait to write the unsent bytes back.
    pub unsent_timeout: Duration,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            local: None,
            freebind: true,
            mark: None,
            resend: Resend::default(),
            window_probe: true,
            capture: true,
            limits: Limits::default(),
            unsent_timeout: Duration::from_secs(5),
        }
    }
}

/// A restored socket still in repair mode and behind the shield: complete,
/// in the connection table, but silent. Call [`Paused::activate`] once the
/// peer's packets reach this host. Dropping it closes it silently.
#[derive(Debug)]
pub struct Paused {
    sock: Socket,
    id: ConnectionId,
    rcv_nxt: u32,
    pending: Vec<u8>,
    buffers: crate::state::Buffers,
    nodelay: bool,
    capture: Option<Capture>,
    opts: RestoreOptions,
}

/// What activation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivationReport {
    /// Bytes written after repair mode (resent tail plus unsent bytes).
    pub written: usize,
    /// Segments captured while paused and re-injected.
    pub replayed: usize,
    /// Counters of the pause capture.
    pub capture: CaptureStats,
}

/// An activated socket.
#[derive(Debug)]
pub struct Activated {
    /// The live connection.
    pub stream: TcpStream,
    /// What activation did.
    pub report: ActivationReport,
}

/// Restores and activates at once: for moves where the peer's packets
/// already reach this host. See [`restore_paused`] for the steps.
pub fn restore(state: &TcpState, opts: &RestoreOptions) -> Result<TcpStream> {
    Ok(restore_paused(state, opts)?.activate()?.stream)
}

fn repair_queue(fd: BorrowedFd<'_>, queue: libc::c_int) -> Result<()> {
    sys::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_QUEUE, queue)
        .map_err(Error::sys("setsockopt(TCP_REPAIR_QUEUE)"))
}

fn queue_seq(fd: BorrowedFd<'_>, queue: libc::c_int, seq: u32) -> Result<()> {
    repair_queue(fd, queue)?;
    sys::setsockopt_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_QUEUE_SEQ,
        seq as libc::c_int,
    )
    .map_err(Error::sys("setsockopt(TCP_QUEUE_SEQ)"))
}

/// Writes `bytes` into the selected repair queue. The kernel takes at most
/// one skb's worth per call for the receive queue and may refuse a large
/// linear allocation with `ENOMEM`; chunks shrink then.
fn fill_queue(fd: BorrowedFd<'_>, queue: libc::c_int, bytes: &[u8]) -> Result<()> {
    repair_queue(fd, queue)?;
    let mut chunk = 256 * 1024;
    let mut off = 0;
    while off < bytes.len() {
        let end = (off + chunk).min(bytes.len());
        match sys::send_nonblocking(fd, &bytes[off..end]) {
            Ok(0) => {
                return Err(Error::sys("send(repair queue)")(
                    std::io::ErrorKind::WriteZero.into(),
                ));
            }
            Ok(n) => off += n,
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) && chunk > 4096 => chunk /= 2,
            Err(e) => return Err(Error::sys("send(repair queue)")(e)),
        }
    }
    Ok(())
}

/// Sets a buffer with the `*FORCE` option (`CAP_NET_ADMIN`): `value` is the
/// size `getsockopt` should report afterwards (the kernel doubles its input).
fn force_buffer(fd: BorrowedFd<'_>, name: libc::c_int, value: u32, op: &'static str) -> Result<()> {
    let half = libc::c_int::try_from(value / 2).unwrap_or(libc::c_int::MAX);
    sys::setsockopt_int(fd, libc::SOL_SOCKET, name, half).map_err(Error::sys(op))
}

/// Rebuilds the connection and leaves it paused. The order is the one that
/// works on Linux (after CRIU's `soccr`):
///
/// 1. socket, shield (drops every incoming segment, so nothing touches the
///    half-built socket), optional capture, `TCP_REPAIR` on;
/// 2. `SO_MARK`, freebind, buffer sizes (large enough for the queues),
///    application socket options;
/// 3. bind to the local address (`IPV6_FREEBIND` allows a non-local one);
/// 4. receive queue sequence (`rcv_nxt - len`), send queue sequence
///    (`snd_una`);
/// 5. connect: in repair mode no SYN is sent, the socket is established;
/// 6. `TCP_REPAIR_OPTIONS` (SACK, window scale, timestamps, MSS), then
///    `TCP_TIMESTAMP`;
/// 7. receive queue bytes, then the sent bytes that stay "sent";
/// 8. `TCP_REPAIR_WINDOW` last (the kernel checks it against `rcv_nxt`).
pub fn restore_paused(state: &TcpState, opts: &RestoreOptions) -> Result<Paused> {
    let local = opts.local.unwrap_or(state.local);
    state.validate(local, &opts.limits)?;
    let id = ConnectionId {
        local,
        remote: state.remote,
    };
    let domain = if local.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock =
        Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(Error::sys("socket"))?;
    let fd = sock.as_fd();
    attach_shield(fd)?;
    let capture = if opts.capture {
        Some(Capture::open(local, state.remote)?)
    } else {
        None
    };
    sys::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, sys::TCP_REPAIR_ON).map_err(
        |e| {
            if e.raw_os_error() == Some(libc::EPERM) {
                Error::PermissionDenied(e)
            } else {
                Error::sys("setsockopt(TCP_REPAIR)")(e)
            }
        },
    )?;
    if let Some(mark) = opts.mark {
        sock.set_mark(mark)
            .map_err(Error::sys("setsockopt(SO_MARK)"))?;
    }
    if local.is_ipv6() {
        // A dual-stack socket is needed for IPv4-mapped endpoints.
        sock.set_only_v6(false)
            .map_err(Error::sys("setsockopt(IPV6_V6ONLY)"))?;
        if opts.freebind {
            sock.set_freebind_v6(true)
                .map_err(Error::sys("setsockopt(IPV6_FREEBIND)"))?;
        }
    } else if opts.freebind {
        sock.set_freebind_v4(true)
            .map_err(Error::sys("setsockopt(IP_FREEBIND)"))?;
    }
    apply_buffers(fd, state, state.sent.len())?;
    apply_sockopts(&sock, state)?;

    // `connect` sizes segments from the MSS clamp, which `tcp_v6_connect`
    // sets to 1220 (`tcp_v4_connect` leaves 536) and `TCP_REPAIR_OPTIONS`
    // changes too late to matter. `TCP_MAXSEG` set now is copied into the
    // clamp by `tcp_connect_init`, so the first segments have the real size.
    // The option accepts at most MAX_TCP_WINDOW (32767): loopback MSSes
    // above it start at that size.
    let user_mss = state.options.mss.min(32767);
    sys::setsockopt_int(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_MAXSEG,
        libc::c_int::from(user_mss),
    )
    .map_err(Error::sys("setsockopt(TCP_MAXSEG)"))?;
    sock.bind(&SockAddr::from(local))
        .map_err(Error::sys("bind"))?;
    queue_seq(fd, sys::TCP_RECV_QUEUE, state.copied_seq())?;
    queue_seq(fd, sys::TCP_SEND_QUEUE, state.snd_una)?;
    sock.connect(&SockAddr::from(state.remote))
        .map_err(Error::sys("connect (repair)"))?;

    apply_repair_options(fd, state)?;
    if let Some(ts) = state.options.timestamp {
        sys::setsockopt_int(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_TIMESTAMP,
            ts as libc::c_int,
        )
        .map_err(Error::sys("setsockopt(TCP_TIMESTAMP)"))?;
    }

    fill_recv_queue(fd, state)?;
    let info = sys::tcp_info(fd).map_err(Error::sys("getsockopt(TCP_INFO)"))?;
    let as_sent = as_sent_len(state, opts.resend, &info);
    fill_queue(fd, sys::TCP_SEND_QUEUE, &state.sent[..as_sent])?;
    if let Some(w) = state.window {
        let raw = sys::TcpRepairWindow {
            snd_wl1: w.snd_wl1,
            snd_wnd: w.snd_wnd,
            max_window: w.max_window,
            rcv_wnd: w.rcv_wnd,
            rcv_wup: w.rcv_wup,
        };
        sys::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_WINDOW, &raw)
            .map_err(Error::sys("setsockopt(TCP_REPAIR_WINDOW)"))?;
    }
    repair_queue(fd, sys::TCP_NO_QUEUE)?;

    let mut pending = Vec::with_capacity(state.sent.len() - as_sent + state.unsent.len());
    pending.extend_from_slice(&state.sent[as_sent..]);
    pending.extend_from_slice(&state.unsent);
    tracing::debug!(conn = %id, as_sent, pending = pending.len(), recv = state.recv.len(), "restored (paused)");
    Ok(Paused {
        sock,
        id,
        rcv_nxt: state.rcv_nxt,
        pending,
        buffers: state.buffers,
        nodelay: state.sockopts.nodelay,
        capture,
        opts: *opts,
    })
}

/// How many of the sent-unacknowledged bytes are restored as sent, given
/// the restored socket's initial window (`info`, read after connect).
fn as_sent_len(state: &TcpState, resend: Resend, info: &sys::TcpInfoHead) -> usize {
    let sent = state.sent.len();
    match resend {
        Resend::AsSent => sent,
        Resend::AllUnsent => 0,
        Resend::Auto { max_segments } => {
            // Payload per segment after options; fall back to the clamp
            // minus the largest option space.
            let mss = info
                .snd_mss
                .filter(|&m| m > 0)
                .unwrap_or(u32::from(state.options.mss).saturating_sub(40));
            let cwnd = info.snd_cwnd.unwrap_or(0).min(max_segments);
            let first_flight = (cwnd as usize).saturating_mul(mss as usize);
            if sent <= first_flight { 0 } else { sent }
        }
    }
}

/// Room for `len` bytes going in through the repair path, which fails rather
/// than waits (it builds ~256 KiB skbs: under 1% overhead).
fn repair_room(len: usize) -> u32 {
    u32::try_from(len.saturating_add(len / 8).saturating_add(64 << 10)).unwrap_or(u32::MAX)
}

fn current_buffer(fd: BorrowedFd<'_>, name: libc::c_int, op: &'static str) -> Result<u32> {
    sys::getsockopt_int(fd, libc::SOL_SOCKET, name)
        .map(|v| u32::try_from(v).unwrap_or(0))
        .map_err(Error::sys(op))
}

/// Gives the socket the donor's buffer sizes (before connect, so the window
/// clamp is computed from them), enlarged for the sent bytes the repair
/// path queues. Unsent bytes are written after activation and may wait for
/// acknowledgments, so the send buffer is not enlarged for them: sizes never
/// grow move after move.
fn apply_buffers(fd: BorrowedFd<'_>, state: &TcpState, as_sent: usize) -> Result<()> {
    let snd = state.buffers.sndbuf.max(repair_room(as_sent));
    if snd > current_buffer(fd, libc::SO_SNDBUF, "getsockopt(SO_SNDBUF)")? {
        force_buffer(fd, sys::SO_SNDBUFFORCE, snd, "setsockopt(SO_SNDBUFFORCE)")?;
    }
    if state.buffers.rcvbuf > current_buffer(fd, libc::SO_RCVBUF, "getsockopt(SO_RCVBUF)")? {
        force_buffer(
            fd,
            sys::SO_RCVBUFFORCE,
            state.buffers.rcvbuf,
            "setsockopt(SO_RCVBUFFORCE)",
        )?;
    }
    Ok(())
}

/// Fills the receive queue, with the receive buffer enlarged meanwhile if
/// the queue needs more room than the donor's size, then set back to it.
fn fill_recv_queue(fd: BorrowedFd<'_>, state: &TcpState) -> Result<()> {
    let room = repair_room(state.recv.len());
    let before = current_buffer(fd, libc::SO_RCVBUF, "getsockopt(SO_RCVBUF)")?;
    if room > before {
        force_buffer(fd, sys::SO_RCVBUFFORCE, room, "setsockopt(SO_RCVBUFFORCE)")?;
    }
    fill_queue(fd, sys::TCP_RECV_QUEUE, &state.recv)?;
    if room > before {
        force_buffer(
            fd,
            sys::SO_RCVBUFFORCE,
            before,
            "setsockopt(SO_RCVBUFFORCE)",
        )?;
    }
    Ok(())
}

fn apply_sockopts(sock: &Socket, state: &TcpState) -> Result<()> {
    let o = &state.sockopts;
    sock.set_tcp_nodelay(o.nodelay)
        .map_err(Error::sys("setsockopt(TCP_NODELAY)"))?;
    if let Some(k) = o.keepalive {
        let params = TcpKeepalive::new()
            .with_time(Duration::from_secs(u64::from(k.idle_s)))
            .with_interval(Duration::from_secs(u64::from(k.interval_s)))
            .with_retries(k.count);
        sock.set_tcp_keepalive(&params)
            .map_err(Error::sys("setsockopt(TCP_KEEP*)"))?;
        sock.set_keepalive(true)
            .map_err(Error::sys("setsockopt(SO_KEEPALIVE)"))?;
    }
    if o.user_timeout_ms != 0 {
        sock.set_tcp_user_timeout(Some(Duration::from_millis(u64::from(o.user_timeout_ms))))
            .map_err(Error::sys("setsockopt(TCP_USER_TIMEOUT)"))?;
    }
    if let Some(cc) = &o.congestion
        && let Err(e) = sock.set_tcp_congestion(cc.as_bytes())
    {
        // Not fatal: the acceptor may not have (or allow) that algorithm.
        tracing::warn!(congestion = %cc, error = %e, "keeping the default congestion control");
    }
    Ok(())
}

fn apply_repair_options(fd: BorrowedFd<'_>, state: &TcpState) -> Result<()> {
    let o = &state.options;
    let mut opts = Vec::with_capacity(4);
    if o.sack {
        opts.push(sys::TcpRepairOpt {
            opt_code: sys::TCPOPT_SACK_PERM,
            opt_val: 0,
        });
    }
    if let Some(ws) = o.wscale {
        opts.push(sys::TcpRepairOpt {
            opt_code: sys::TCPOPT_WINDOW,
            opt_val: u32::from(ws.snd) | (u32::from(ws.rcv) << 16),
        });
    }
    if o.timestamp.is_some() {
        opts.push(sys::TcpRepairOpt {
            opt_code: sys::TCPOPT_TIMESTAMP,
            opt_val: 0,
        });
    }
    opts.push(sys::TcpRepairOpt {
        opt_code: sys::TCPOPT_MAXSEG,
        opt_val: u32::from(o.mss),
    });
    sys::setsockopt_slice(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR_OPTIONS, &opts)
        .map_err(Error::sys("setsockopt(TCP_REPAIR_OPTIONS)"))
}

impl Paused {
    /// The restored connection's endpoints (local after any override).
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The paused socket.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Goes live: removes the shield, leaves repair mode (with a window
    /// probe unless disabled), writes the resent tail and the unsent bytes
    /// (the kernel transmits them at once), and replays what the pause
    /// capture caught. Call it once the peer's packets reach this host, so
    /// that the peer's answer to the probe and data arrive here.
    pub fn activate(self) -> Result<Activated> {
        let Paused {
            sock,
            id,
            rcv_nxt,
            pending,
            buffers,
            nodelay,
            mut capture,
            opts,
        } = self;
        let fd = sock.as_fd();
        detach_shield(fd)?;
        let off = if opts.window_probe {
            sys::TCP_REPAIR_OFF
        } else {
            sys::TCP_REPAIR_OFF_NO_WP
        };
        sys::setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, off)
            .map_err(Error::sys("setsockopt(TCP_REPAIR off)"))?;
        if !pending.is_empty() {
            write_pending(
                &sock,
                &pending,
                buffers.sndbuf,
                nodelay,
                opts.unsent_timeout,
            )?;
        }
        // Hand auto-tuning back unless the application had fixed the sizes.
        if let Err(e) = sys::setsockopt_int(
            fd,
            libc::SOL_SOCKET,
            sys::SO_BUF_LOCK,
            libc::c_int::from(buffers.locked),
        ) {
            tracing::debug!(error = %e, "SO_BUF_LOCK unsupported; buffer sizes stay fixed");
        }
        let mut report = ActivationReport {
            written: pending.len(),
            ..ActivationReport::default()
        };
        if let Some(mut c) = capture.take() {
            let segments = c.take(rcv_nxt, &opts.limits);
            report.replayed = reinject(id.local, id.remote, &segments)?;
            report.capture = c.stats();
            c.close_in_background();
        }
        tracing::debug!(conn = %id, ?report, "activated");
        Ok(Activated {
            stream: TcpStream::from(OwnedFd::from(sock)),
            report,
        })
    }

    /// Gives up: closes the paused socket without a packet.
    pub fn abort(self) {
        drop(self);
    }
}

/// Writes the resent and unsent bytes right after repair mode. All of them
/// must be accepted at once: the resent ones have to be on the wire before
/// the peer's acknowledgment of them arrives (Linux drops an ACK beyond
/// `snd_nxt`, and with it the segment). So the send buffer is enlarged for
/// the write and set back to the donor's size after, and Nagle is off
/// meanwhile so that a partial last segment is not held back waiting for
/// that very ACK.
fn write_pending(
    sock: &Socket,
    pending: &[u8],
    sndbuf: u32,
    nodelay: bool,
    timeout: Duration,
) -> Result<()> {
    let fd = sock.as_fd();
    let current = current_buffer(fd, libc::SO_SNDBUF, "getsockopt(SO_SNDBUF)")?;
    let room = current.saturating_add(repair_room(pending.len()));
    force_buffer(fd, sys::SO_SNDBUFFORCE, room, "setsockopt(SO_SNDBUFFORCE)")?;
    sock.set_tcp_nodelay(true)
        .map_err(Error::sys("setsockopt(TCP_NODELAY)"))?;
    write_all_within(fd, pending, timeout)?;
    if !nodelay {
        sock.set_tcp_nodelay(false)
            .map_err(Error::sys("setsockopt(TCP_NODELAY)"))?;
    }
    force_buffer(
        fd,
        sys::SO_SNDBUFFORCE,
        sndbuf.max(current),
        "setsockopt(SO_SNDBUFFORCE)",
    )
}

/// Writes `bytes` to a live socket without blocking longer than `timeout`.
fn write_all_within(fd: BorrowedFd<'_>, bytes: &[u8], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut off = 0;
    while off < bytes.len() {
        match sys::send_nonblocking(fd, &bytes[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::UnsentTimeout {
                        remaining: bytes.len() - off,
                    });
                }
                let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
                sys::poll_writable(fd, ms).map_err(Error::sys("poll"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::sys("send(unsent)")(e)),
        }
    }
    Ok(())
}

/// Re-injects segments captured elsewhere (the donor's
/// [`Frozen::close_silently`](crate::Frozen::close_silently)) into a
/// restored, active connection. Call from a thread in the connection's
/// network namespace.
pub fn replay(stream: &TcpStream, segments: &[CapturedSegment]) -> Result<usize> {
    let id = crate::dump::connection_id(stream.as_fd())?;
    reinject(id.local, id.remote, segments)
}
