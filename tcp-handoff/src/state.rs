//! The portable description of one established TCP connection.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Version of [`TcpState`] written by this crate; `restore` rejects others.
pub const TCP_STATE_VERSION: u16 = 1;

/// Everything the kernel needs to continue an established connection
/// elsewhere. Produced by [`Frozen::dump`](crate::Frozen::dump), consumed by
/// [`restore`](crate::restore).
///
/// Sequence numbers follow RFC 9293 names: the send queue starts at
/// `snd_una`; its first `sent.len()` bytes were transmitted and are not yet
/// acknowledged (`snd_una .. snd_nxt`), then come `unsent` bytes
/// (`snd_nxt .. write_seq`). The receive queue holds bytes the peer sent
/// and this side acknowledged but the application has not read yet
/// (`rcv_nxt - recv.len() .. rcv_nxt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpState {
    /// Format version, [`TCP_STATE_VERSION`].
    pub version: u16,
    /// Local address and port (IPv4, IPv6 or IPv4-mapped IPv6).
    pub local: SocketAddr,
    /// Peer address and port.
    pub remote: SocketAddr,
    /// Oldest unacknowledged sequence number (start of `sent`).
    pub snd_una: u32,
    /// Next sequence number expected from the peer (end of `recv`).
    pub rcv_nxt: u32,
    /// Sent but not yet acknowledged bytes.
    pub sent: Vec<u8>,
    /// Bytes written by the application but not yet transmitted.
    pub unsent: Vec<u8>,
    /// Received, acknowledged, not yet read by the application.
    pub recv: Vec<u8>,
    /// Options negotiated in the handshake.
    pub options: TcpOptions,
    /// `TCP_REPAIR_WINDOW` (kernels >= 4.8); `None` when the kernel had none.
    pub window: Option<RepairWindow>,
    /// Socket buffer sizes and whether the application fixed them.
    pub buffers: Buffers,
    /// Socket options an application commonly sets.
    pub sockopts: SockOpts,
}

/// Options negotiated in the three-way handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpOptions {
    /// The MSS clamp (`TCP_MAXSEG` read in repair mode: the peer's MSS option).
    pub mss: u16,
    /// SACK permitted (RFC 2018).
    pub sack: bool,
    /// Window scaling (RFC 7323 section 2), if negotiated.
    pub wscale: Option<WindowScale>,
    /// Timestamps (RFC 7323 section 3), if negotiated: the opaque
    /// `TCP_TIMESTAMP` value (current TSval clock, low bit = usec clock).
    pub timestamp: Option<u32>,
}

/// Send and receive window scale shifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowScale {
    /// Shift the peer applies to the windows it advertises.
    pub snd: u8,
    /// Shift this side applies to the windows it advertises.
    pub rcv: u8,
}

/// `struct tcp_repair_window`: the window state that the handshake options
/// do not cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairWindow {
    /// Sequence number of the segment that last updated the send window.
    pub snd_wl1: u32,
    /// The peer's advertised window (bytes, already scaled).
    pub snd_wnd: u32,
    /// Largest window the peer ever advertised.
    pub max_window: u32,
    /// The window this side advertised last.
    pub rcv_wnd: u32,
    /// `rcv_nxt` when that window was advertised.
    pub rcv_wup: u32,
}

/// Socket buffer sizes as `getsockopt(SO_SNDBUF/SO_RCVBUF)` reports them
/// (the kernel's doubled values) and the `SO_BUF_LOCK` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Buffers {
    /// `sk_sndbuf`.
    pub sndbuf: u32,
    /// `sk_rcvbuf`.
    pub rcvbuf: u32,
    /// `SOCK_SNDBUF_LOCK` (1) / `SOCK_RCVBUF_LOCK` (2): set when the
    /// application fixed a size, which turns off auto-tuning.
    pub locked: u8,
}

/// Socket options an application commonly sets and expects to keep.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SockOpts {
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// `SO_KEEPALIVE` with `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`.
    pub keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT` in milliseconds (0 = off).
    pub user_timeout_ms: u32,
    /// `TCP_CONGESTION` name, e.g. `"cubic"`, `"bbr"`.
    pub congestion: Option<String>,
}

/// TCP keepalive parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keepalive {
    /// Seconds of idleness before the first probe.
    pub idle_s: u32,
    /// Seconds between probes.
    pub interval_s: u32,
    /// Probes before the connection is dropped.
    pub count: u32,
}

/// Bounds on what a restorer accepts, so that a forged or corrupt state
/// cannot make it (or the kernel, on its behalf) allocate without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest receive queue accepted.
    pub max_recv_queue: usize,
    /// Longest send queue (sent + unsent) accepted.
    pub max_send_queue: usize,
    /// Largest socket buffer size accepted.
    pub max_buffer: u32,
    /// Most captured segments per connection.
    pub max_captured_segments: usize,
    /// Most captured payload bytes per connection.
    pub max_captured_bytes: usize,
    /// Largest application state per connection.
    pub max_app_state: usize,
    /// Most connections in one [`Handoff`](crate::Handoff).
    pub max_connections: usize,
}

impl Default for Limits {
    /// 64 MiB per queue and buffer (twice the largest default
    /// `tcp_rmem`/`tcp_wmem` maximum of current kernels), 4096 segments /
    /// 16 MiB captured, 1 MiB of application state, 4096 connections per bundle.
    fn default() -> Self {
        Limits {
            max_recv_queue: 64 << 20,
            max_send_queue: 64 << 20,
            max_buffer: 128 << 20,
            max_captured_segments: 4096,
            max_captured_bytes: 16 << 20,
            max_app_state: 1 << 20,
            max_connections: 4096,
        }
    }
}

/// Identifies a connection by its local and remote endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnectionId {
    /// Local endpoint.
    pub local: SocketAddr,
    /// Remote endpoint.
    pub remote: SocketAddr,
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)
    }
}

/// Whether `ip` is a plain IPv4 address or an IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`), i.e. whether the wire carries IPv4.
pub(crate) fn wire_is_v4(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

impl TcpState {
    /// The connection's endpoints.
    pub fn id(&self) -> ConnectionId {
        ConnectionId {
            local: self.local,
            remote: self.remote,
        }
    }

    /// `snd_nxt`: first sequence number never transmitted.
    pub fn snd_nxt(&self) -> u32 {
        self.snd_una.wrapping_add(self.sent.len() as u32)
    }

    /// `write_seq`: sequence number of the next byte the application writes.
    pub fn write_seq(&self) -> u32 {
        self.snd_nxt().wrapping_add(self.unsent.len() as u32)
    }

    /// `copied_seq`: first byte the application has not read.
    pub fn copied_seq(&self) -> u32 {
        self.rcv_nxt.wrapping_sub(self.recv.len() as u32)
    }

    /// Checks everything `restore` relies on, against `limits`, with `local`
    /// being the address the state will be restored on.
    pub fn validate(&self, local: SocketAddr, limits: &Limits) -> Result<(), ValidationError> {
        if self.version != TCP_STATE_VERSION {
            return Err(ValidationError::Version(self.version));
        }
        if wire_is_v4(local.ip()) != wire_is_v4(self.remote.ip())
            || local.is_ipv4() != self.remote.is_ipv4()
        {
            return Err(ValidationError::FamilyMismatch {
                local,
                remote: self.remote,
            });
        }
        for addr in [local, self.remote] {
            let ip = addr.ip();
            if addr.port() == 0 || ip.is_unspecified() || ip.is_multicast() {
                return Err(ValidationError::Address(addr));
            }
        }
        if self.recv.len() > limits.max_recv_queue {
            return Err(ValidationError::QueueTooLong {
                queue: "receive",
                len: self.recv.len(),
                limit: limits.max_recv_queue,
            });
        }
        let send_len = self.sent.len().saturating_add(self.unsent.len());
        if send_len > limits.max_send_queue {
            return Err(ValidationError::QueueTooLong {
                queue: "send",
                len: send_len,
                limit: limits.max_send_queue,
            });
        }
        // Sequence space: a queue may not cover half the space (RFC 9293 3.4).
        if send_len >= 1 << 30 || self.recv.len() >= 1 << 30 {
            return Err(ValidationError::QueueTooLong {
                queue: "sequence space",
                len: send_len.max(self.recv.len()),
                limit: (1 << 30) - 1,
            });
        }
        // TCP_MIN_MSS (include/net/tcp.h) is 88.
        if self.options.mss < 88 {
            return Err(ValidationError::Mss(self.options.mss));
        }
        if let Some(ws) = self.options.wscale {
            // RFC 7323 section 2.3: shift counts above 14 are invalid.
            for shift in [ws.snd, ws.rcv] {
                if shift > 14 {
                    return Err(ValidationError::WindowScale(shift));
                }
            }
        }
        if let Some(w) = self.window {
            self.validate_window(&w)?;
        }
        for size in [self.buffers.sndbuf, self.buffers.rcvbuf] {
            if size > limits.max_buffer {
                return Err(ValidationError::Buffer {
                    len: size,
                    limit: limits.max_buffer,
                });
            }
        }
        if let Some(name) = &self.sockopts.congestion {
            // TCP_CA_NAME_MAX is 16 including the NUL.
            if name.is_empty() || name.len() > 15 || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ValidationError::Congestion);
            }
        }
        Ok(())
    }

    /// The checks of `tcp_repair_set_window()` (net/ipv4/tcp.c), done before
    /// the kernel sees the values.
    fn validate_window(&self, w: &RepairWindow) -> Result<(), ValidationError> {
        let max_wnd = 65535u32 << 14;
        if w.snd_wnd > max_wnd || w.max_window > max_wnd || w.rcv_wnd > max_wnd {
            return Err(ValidationError::Window("window above 65535 << 14"));
        }
        if w.max_window < w.snd_wnd {
            return Err(ValidationError::Window("max_window < snd_wnd"));
        }
        if seq_after(w.snd_wl1, self.rcv_nxt.wrapping_add(w.rcv_wnd)) {
            return Err(ValidationError::Window("snd_wl1 after rcv_nxt + rcv_wnd"));
        }
        if seq_after(w.rcv_wup, self.rcv_nxt) {
            return Err(ValidationError::Window("rcv_wup after rcv_nxt"));
        }
        Ok(())
    }
}

/// RFC 9293 modular comparison: `a` comes after `b`.
pub(crate) fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> TcpState {
        TcpState {
            version: TCP_STATE_VERSION,
            local: "[2001:db8::1]:80".parse().unwrap(),
            remote: "[2001:db8::2]:40000".parse().unwrap(),
            snd_una: 1000,
            rcv_nxt: 5000,
            sent: vec![1; 10],
            unsent: vec![2; 5],
            recv: vec![3; 7],
            options: TcpOptions {
                mss: 1440,
                sack: true,
                wscale: Some(WindowScale { snd: 7, rcv: 7 }),
                timestamp: Some(12345),
            },
            window: Some(RepairWindow {
                snd_wl1: 4990,
                snd_wnd: 65535,
                max_window: 65535,
                rcv_wnd: 65535,
                rcv_wup: 4990,
            }),
            buffers: Buffers {
                sndbuf: 87040,
                rcvbuf: 131072,
                locked: 0,
            },
            sockopts: SockOpts::default(),
        }
    }

    #[test]
    fn sequence_helpers_wrap() {
        let mut s = sample();
        s.snd_una = u32::MAX - 4;
        s.rcv_nxt = 3;
        assert_eq!(s.snd_nxt(), 5);
        assert_eq!(s.write_seq(), 10);
        assert_eq!(s.copied_seq(), u32::MAX - 3);
    }

    #[test]
    fn sample_is_valid() {
        let s = sample();
        s.validate(s.local, &Limits::default()).unwrap();
    }

    #[test]
    fn rejects_bad_fields() {
        let l = Limits::default();
        let mut s = sample();
        s.version = 9;
        assert_eq!(s.validate(s.local, &l), Err(ValidationError::Version(9)));
        let mut s = sample();
        s.options.mss = 10;
        assert_eq!(s.validate(s.local, &l), Err(ValidationError::Mss(10)));
        let mut s = sample();
        s.options.wscale = Some(WindowScale { snd: 15, rcv: 1 });
        assert_eq!(
            s.validate(s.local, &l),
            Err(ValidationError::WindowScale(15))
        );
        let mut s = sample();
        s.window.as_mut().unwrap().rcv_wup = 6000;
        assert!(matches!(
            s.validate(s.local, &l),
            Err(ValidationError::Window(_))
        ));
        let mut s = sample();
        s.window.as_mut().unwrap().max_window = 1;
        assert!(matches!(
            s.validate(s.local, &l),
            Err(ValidationError::Window(_))
        ));
        let s = sample();
        let v4: SocketAddr = "192.0.2.1:80".parse().unwrap();
        assert!(matches!(
            s.validate(v4, &l),
            Err(ValidationError::FamilyMismatch { .. })
        ));
        let small = Limits {
            max_recv_queue: 3,
            ..l
        };
        assert!(matches!(
            s.validate(s.local, &small),
            Err(ValidationError::QueueTooLong {
                queue: "receive",
                ..
            })
        ));
        let mut s = sample();
        s.sockopts.congestion = Some("x".repeat(40));
        assert_eq!(s.validate(s.local, &l), Err(ValidationError::Congestion));
        let mut s = sample();
        s.remote.set_port(0);
        assert!(matches!(
            s.validate(s.local, &l),
            Err(ValidationError::Address(_))
        ));
    }

    #[test]
    fn mapped_v4_is_v4_on_the_wire() {
        assert!(wire_is_v4("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!wire_is_v4("2001:db8::1".parse().unwrap()));
    }
}
