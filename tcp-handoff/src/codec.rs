//! A compact, bounded binary encoding of [`TcpState`] and friends.
//!
//! Why not JSON: queue contents are raw bytes (up to megabytes per
//! connection); JSON would spell each byte as a decimal number (3-4x the
//! size) and a JSON reader grows its vectors element by element with no
//! per-field limit. This format keeps bytes as bytes, checks every length
//! against [`Limits`] *before* allocating, and needs no extra dependency.
//! All integers are big-endian; variable-length fields are a `u32` length
//! followed by the bytes. The serde derives stay available for anyone who
//! prefers another format (restore re-validates whatever it is given).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use crate::error::DecodeError;
use crate::segment::CapturedSegment;
use crate::state::{
    Buffers, ConnectionId, Keepalive, Limits, RepairWindow, SockOpts, TcpOptions, TcpState,
    WindowScale,
};

/// Appends fields to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    fn addr(&mut self, a: &SocketAddr) {
        match a {
            SocketAddr::V4(v4) => {
                self.u8(4);
                self.buf.extend_from_slice(&v4.ip().octets());
                self.u16(v4.port());
            }
            SocketAddr::V6(v6) => {
                self.u8(6);
                self.buf.extend_from_slice(&v6.ip().octets());
                self.u16(v6.port());
                self.u32(v6.flowinfo());
                self.u32(v6.scope_id());
            }
        }
    }
}

/// Reads fields from a byte slice, never past its end.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n - rest.len(),
            });
        }
        self.pos += n;
        Ok(&rest[..n])
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    /// A length-prefixed byte string of at most `limit` bytes. The length is
    /// checked against the limit and the remaining input before allocating.
    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32(field)? as usize;
        if len > limit {
            return Err(DecodeError::TooLong {
                field,
                len: len as u64,
                limit: limit as u64,
            });
        }
        Ok(self.take(len, field)?.to_vec())
    }
    /// A count of at most `limit` items.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<usize, DecodeError> {
        let n = self.u32(field)? as usize;
        if n > limit {
            return Err(DecodeError::TooLong {
                field,
                len: n as u64,
                limit: limit as u64,
            });
        }
        Ok(n)
    }
    fn addr(&mut self, field: &'static str) -> Result<SocketAddr, DecodeError> {
        match self.u8(field)? {
            4 => {
                let ip = Ipv4Addr::from(self.array::<4>(field)?);
                Ok(SocketAddr::new(IpAddr::V4(ip), self.u16(field)?))
            }
            6 => {
                let ip = Ipv6Addr::from(self.array::<16>(field)?);
                let port = self.u16(field)?;
                let flow = self.u32(field)?;
                let scope = self.u32(field)?;
                Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)))
            }
            v => Err(DecodeError::BadValue {
                field,
                value: u64::from(v),
            }),
        }
    }
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

pub(crate) fn write_id(w: &mut Writer, id: &ConnectionId) {
    w.addr(&id.local);
    w.addr(&id.remote);
}

pub(crate) fn read_id(r: &mut Reader<'_>) -> Result<ConnectionId, DecodeError> {
    Ok(ConnectionId {
        local: r.addr("local address")?,
        remote: r.addr("remote address")?,
    })
}

/// Flags byte of an encoded state.
const F_SACK: u8 = 1;
const F_WSCALE: u8 = 2;
const F_TS: u8 = 4;
const F_WINDOW: u8 = 8;
const F_KEEPALIVE: u8 = 16;
const F_NODELAY: u8 = 32;
const F_CONGESTION: u8 = 64;
const F_ALL: u8 = 127;

pub(crate) fn write_state(w: &mut Writer, s: &TcpState) {
    w.u16(s.version);
    write_id(w, &s.id());
    w.u32(s.snd_una);
    w.u32(s.rcv_nxt);
    w.u16(s.options.mss);
    let o = &s.options;
    let mut flags = 0;
    flags |= if o.sack { F_SACK } else { 0 };
    flags |= if o.wscale.is_some() { F_WSCALE } else { 0 };
    flags |= if o.timestamp.is_some() { F_TS } else { 0 };
    flags |= if s.window.is_some() { F_WINDOW } else { 0 };
    flags |= if s.sockopts.keepalive.is_some() {
        F_KEEPALIVE
    } else {
        0
    };
    flags |= if s.sockopts.nodelay { F_NODELAY } else { 0 };
    flags |= if s.sockopts.congestion.is_some() {
        F_CONGESTION
    } else {
        0
    };
    w.u8(flags);
    if let Some(ws) = o.wscale {
        w.u8(ws.snd);
        w.u8(ws.rcv);
    }
    if let Some(ts) = o.timestamp {
        w.u32(ts);
    }
    if let Some(win) = s.window {
        for v in [
            win.snd_wl1,
            win.snd_wnd,
            win.max_window,
            win.rcv_wnd,
            win.rcv_wup,
        ] {
            w.u32(v);
        }
    }
    w.u32(s.buffers.sndbuf);
    w.u32(s.buffers.rcvbuf);
    w.u8(s.buffers.locked);
    w.u32(s.sockopts.user_timeout_ms);
    if let Some(k) = s.sockopts.keepalive {
        w.u32(k.idle_s);
        w.u32(k.interval_s);
        w.u32(k.count);
    }
    if let Some(cc) = &s.sockopts.congestion {
        w.bytes(cc.as_bytes());
    }
    w.bytes(&s.sent);
    w.bytes(&s.unsent);
    w.bytes(&s.recv);
}

pub(crate) fn read_state(r: &mut Reader<'_>, limits: &Limits) -> Result<TcpState, DecodeError> {
    let version = r.u16("state version")?;
    if version != crate::state::TCP_STATE_VERSION {
        return Err(DecodeError::Version(version));
    }
    let id = read_id(r)?;
    let snd_una = r.u32("snd_una")?;
    let rcv_nxt = r.u32("rcv_nxt")?;
    let mss = r.u16("mss")?;
    let flags = r.u8("flags")?;
    if flags & !F_ALL != 0 {
        return Err(DecodeError::BadValue {
            field: "flags",
            value: u64::from(flags),
        });
    }
    let wscale = if flags & F_WSCALE != 0 {
        Some(WindowScale {
            snd: r.u8("snd_wscale")?,
            rcv: r.u8("rcv_wscale")?,
        })
    } else {
        None
    };
    let timestamp = if flags & F_TS != 0 {
        Some(r.u32("timestamp")?)
    } else {
        None
    };
    let window = if flags & F_WINDOW != 0 {
        Some(RepairWindow {
            snd_wl1: r.u32("snd_wl1")?,
            snd_wnd: r.u32("snd_wnd")?,
            max_window: r.u32("max_window")?,
            rcv_wnd: r.u32("rcv_wnd")?,
            rcv_wup: r.u32("rcv_wup")?,
        })
    } else {
        None
    };
    let buffers = Buffers {
        sndbuf: r.u32("sndbuf")?,
        rcvbuf: r.u32("rcvbuf")?,
        locked: r.u8("buffer locks")?,
    };
    let user_timeout_ms = r.u32("user timeout")?;
    let keepalive = if flags & F_KEEPALIVE != 0 {
        Some(Keepalive {
            idle_s: r.u32("keepalive idle")?,
            interval_s: r.u32("keepalive interval")?,
            count: r.u32("keepalive count")?,
        })
    } else {
        None
    };
    let congestion = if flags & F_CONGESTION != 0 {
        let raw = r.bytes("congestion", 15)?;
        Some(String::from_utf8(raw).map_err(|_| DecodeError::BadValue {
            field: "congestion",
            value: 0,
        })?)
    } else {
        None
    };
    let sent = r.bytes("sent queue", limits.max_send_queue)?;
    let unsent = r.bytes(
        "unsent queue",
        limits.max_send_queue.saturating_sub(sent.len()),
    )?;
    let recv = r.bytes("receive queue", limits.max_recv_queue)?;
    Ok(TcpState {
        version,
        local: id.local,
        remote: id.remote,
        snd_una,
        rcv_nxt,
        sent,
        unsent,
        recv,
        options: TcpOptions {
            mss,
            sack: flags & F_SACK != 0,
            wscale,
            timestamp,
        },
        window,
        buffers,
        sockopts: SockOpts {
            nodelay: flags & F_NODELAY != 0,
            keepalive,
            user_timeout_ms,
            congestion,
        },
    })
}

pub(crate) fn write_segments(w: &mut Writer, segs: &[CapturedSegment]) {
    w.u32(segs.len() as u32);
    for s in segs {
        w.u32(s.seq);
        w.u32(s.ack);
        w.u8(s.flags);
        w.u16(s.window);
        w.bytes(&s.options);
        w.bytes(&s.payload);
    }
}

pub(crate) fn read_segments(
    r: &mut Reader<'_>,
    limits: &Limits,
) -> Result<Vec<CapturedSegment>, DecodeError> {
    let n = r.count("segment count", limits.max_captured_segments)?;
    let mut budget = limits.max_captured_bytes;
    // Each segment takes at least 19 bytes: bound the allocation by the input too.
    let mut out = Vec::with_capacity(n.min(r.buf.len() / 19 + 1));
    for _ in 0..n {
        let seq = r.u32("segment seq")?;
        let ack = r.u32("segment ack")?;
        let flags = r.u8("segment flags")?;
        let window = r.u16("segment window")?;
        let options = r.bytes("segment options", 40)?;
        let payload = r.bytes(
            "segment payload",
            budget.min(crate::segment::MAX_SEGMENT_PAYLOAD),
        )?;
        budget -= payload.len();
        out.push(CapturedSegment {
            seq,
            ack,
            flags,
            window,
            options,
            payload,
        });
    }
    Ok(out)
}

/// Magic of an encoded [`TcpState`].
const STATE_MAGIC: &[u8; 4] = b"THS1";

impl TcpState {
    /// Encodes the state in the crate's binary format (see [`codec`](self)).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(STATE_MAGIC);
        write_state(&mut w, self);
        w.buf
    }

    /// Decodes a state, refusing anything longer than `limits` allow. The
    /// result is not yet validated against a restore target: `restore` does that.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<TcpState, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.take(4, "magic")? != STATE_MAGIC {
            return Err(DecodeError::Magic);
        }
        let s = read_state(&mut r, limits)?;
        r.finish()?;
        Ok(s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::TCP_STATE_VERSION;

    pub(crate) fn sample() -> TcpState {
        TcpState {
            version: TCP_STATE_VERSION,
            local: "[2001:db8::1]:80".parse().unwrap(),
            remote: "192.0.2.9:4000".parse().unwrap(),
            snd_una: 7,
            rcv_nxt: u32::MAX,
            sent: b"sent".to_vec(),
            unsent: b"unsent!".to_vec(),
            recv: vec![9; 300],
            options: TcpOptions {
                mss: 1400,
                sack: true,
                wscale: Some(WindowScale { snd: 7, rcv: 9 }),
                timestamp: Some(0xdead_beef),
            },
            window: Some(RepairWindow {
                snd_wl1: 1,
                snd_wnd: 2,
                max_window: 3,
                rcv_wnd: 4,
                rcv_wup: 5,
            }),
            buffers: Buffers {
                sndbuf: 10,
                rcvbuf: 20,
                locked: 3,
            },
            sockopts: SockOpts {
                nodelay: true,
                keepalive: Some(Keepalive {
                    idle_s: 1,
                    interval_s: 2,
                    count: 3,
                }),
                user_timeout_ms: 99,
                congestion: Some("cubic".into()),
            },
        }
    }

    #[test]
    fn roundtrip() {
        let s = sample();
        let enc = s.encode();
        assert_eq!(TcpState::decode(&enc, &Limits::default()).unwrap(), s);
        let mut bare = sample();
        bare.options.wscale = None;
        bare.options.timestamp = None;
        bare.window = None;
        bare.sockopts = SockOpts::default();
        assert_eq!(
            TcpState::decode(&bare.encode(), &Limits::default()).unwrap(),
            bare
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert!(
                TcpState::decode(&enc[..cut], &Limits::default()).is_err(),
                "cut {cut}"
            );
        }
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(
            TcpState::decode(&long, &Limits::default()),
            Err(DecodeError::Trailing(1))
        );
    }

    #[test]
    fn limits_are_checked_before_allocating() {
        let enc = sample().encode();
        let tight = Limits {
            max_recv_queue: 10,
            ..Limits::default()
        };
        assert!(matches!(
            TcpState::decode(&enc, &tight),
            Err(DecodeError::TooLong {
                field: "receive queue",
                ..
            })
        ));
        // A forged 4 GiB length field fails on the limit, not on memory.
        let mut forged = enc.clone();
        let at = forged.len() - 300 - 4;
        forged[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            TcpState::decode(&forged, &Limits::default()),
            Err(DecodeError::TooLong { .. })
        ));
    }
}
