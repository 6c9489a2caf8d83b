//! Binary form of [`HandoffMsg`] for the node channel: a 4-octet header
//! (version, kind, body length) and a fixed-layout body per kind, all
//! integers big-endian. Bounded: a frame is at most [`MAX_FRAME`] octets
//! and the only list (a load report's RTTs) at most
//! [`LoadReport::MAX_RTTS`] entries, so nothing is allocated by an
//! untrusted length. A body must be exactly as long as its kind needs.
//!
//! ```text
//!  0       1       2               4
//! +-------+-------+---------------+-------------------------------+
//! |version| kind  |  body length  | body ...                      |
//! +-------+-------+---------------+-------------------------------+
//! ```
//!
//! Zero-copy view [`HandoffFrame`] plus [`HandoffMsg`] as its `Repr`
//! (`parse`, `buffer_len`, `emit`), as the wire layer does.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::msg::{AbortReason, HandoffMsg, RejectReason};
use super::policy::Policy;
use super::types::LoadReport;
use crate::proto::mobile::{CorrespondentState, ExportedToken};

/// Version of the frame format.
pub const VERSION: u8 = 1;
/// Length of the frame header.
pub const HEADER_LEN: usize = 4;
/// Longest frame (header included).
pub const MAX_FRAME: usize = 16 * 1024;

/// What is wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    /// Fewer octets than the header or the body length say.
    #[error("truncated handoff frame: need {need} octets, have {have}")]
    Truncated {
        /// Octets needed.
        need: usize,
        /// Octets present.
        have: usize,
    },
    /// The body length exceeds [`MAX_FRAME`].
    #[error("handoff frame of {0} octets exceeds the limit")]
    TooLong(usize),
    /// Another version of the format.
    #[error("unsupported handoff frame version {0}")]
    Version(u8),
    /// An unknown message kind.
    #[error("unknown handoff message kind {0}")]
    UnknownKind(u8),
    /// The body is longer or shorter than its kind needs.
    #[error("bad body length for handoff message kind {kind}")]
    BadLength {
        /// The kind.
        kind: u8,
    },
    /// A field holds a value outside its range.
    #[error("bad value of {0}")]
    BadValue(&'static str),
    /// The output buffer is too small.
    #[error("buffer too small: need {need}, have {have}")]
    BufferTooSmall {
        /// Octets needed.
        need: usize,
        /// Octets present.
        have: usize,
    },
}

/// Message kinds.
mod kind {
    pub const PREPARE: u8 = 1;
    pub const ACCEPT: u8 = 2;
    pub const REJECT: u8 = 3;
    pub const RESTORED: u8 = 4;
    pub const BOUND: u8 = 5;
    pub const DONE: u8 = 6;
    pub const CANCEL: u8 = 7;
    pub const ABORTED: u8 = 8;
    pub const TOKEN_REQUEST: u8 = 9;
    pub const TOKEN: u8 = 10;
    pub const PLACED: u8 = 11;
    pub const DRAIN: u8 = 12;
    pub const LOAD: u8 = 13;
}

/// Zero-copy view of a handoff frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HandoffFrame<T> {
    /// Wraps `buffer` without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, MsgError> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks the header and the body it announces are present (the
    /// buffer may hold more: the next frame of a stream).
    pub fn check_len(&self) -> Result<(), MsgError> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(MsgError::Truncated {
                need: HEADER_LEN,
                have,
            });
        }
        let need = self.frame_len();
        if need > MAX_FRAME {
            return Err(MsgError::TooLong(need));
        }
        if have < need {
            return Err(MsgError::Truncated { need, have });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Format version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Message kind.
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Body length.
    pub fn body_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// Header plus body length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + usize::from(self.body_len())
    }

    /// The body (call after [`check_len`](Self::check_len)).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.frame_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HandoffFrame<T> {
    /// Sets the version.
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    /// Sets the kind.
    pub fn set_kind(&mut self, k: u8) {
        self.buffer.as_mut()[1] = k;
    }

    /// Sets the body length.
    pub fn set_body_len(&mut self, len: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// The body, mutable (call after the length is set and checked).
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = self.frame_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// Reads a body front to back; every read is bounds-checked (shared with
/// the failover codec).
pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) kind: u8,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], MsgError> {
        if self.b.len() < n {
            return Err(MsgError::BadLength { kind: self.kind });
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], MsgError> {
        let s = self.take(N)?;
        <[u8; N]>::try_from(s).map_err(|_| MsgError::BadLength { kind: self.kind })
    }
    pub(crate) fn u8(&mut self) -> Result<u8, MsgError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, MsgError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, MsgError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, MsgError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn addr(&mut self) -> Result<Ipv6Addr, MsgError> {
        Ok(Ipv6Addr::from(self.array::<16>()?))
    }
    pub(crate) fn flag(&mut self, what: &'static str) -> Result<bool, MsgError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(MsgError::BadValue(what)),
        }
    }
    pub(crate) fn token(&mut self) -> Result<ExportedToken, MsgError> {
        Ok(ExportedToken {
            token: self.array()?,
            nonce_index: self.u16()?,
            age: Duration::from_micros(u64::from(self.u32()?)),
        })
    }
    pub(crate) fn end(&self) -> Result<(), MsgError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(MsgError::BadLength { kind: self.kind })
        }
    }
}

/// Appends a body (the length is checked against [`MAX_FRAME`] after).
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn addr(&mut self, a: Ipv6Addr) {
        self.0.extend_from_slice(&a.octets());
    }
    /// Ages travel in microseconds (saturating at about 71 minutes, far
    /// beyond the 210 s a keygen token lives, RFC 6275 5.2.7).
    pub(crate) fn token(&mut self, t: &ExportedToken) {
        self.0.extend_from_slice(&t.token);
        self.u16(t.nonce_index);
        self.u32(u32::try_from(t.age.as_micros()).unwrap_or(u32::MAX));
    }
}

fn reject_code(r: RejectReason) -> u8 {
    match r {
        RejectReason::NotAcceptor => 1,
        RejectReason::Full => 2,
        RejectReason::Busy => 3,
        RejectReason::WrongHomeAddress => 4,
        RejectReason::Draining => 5,
    }
}

fn reject_from(c: u8) -> Result<RejectReason, MsgError> {
    Ok(match c {
        1 => RejectReason::NotAcceptor,
        2 => RejectReason::Full,
        3 => RejectReason::Busy,
        4 => RejectReason::WrongHomeAddress,
        5 => RejectReason::Draining,
        _ => return Err(MsgError::BadValue("reject reason")),
    })
}

fn abort_code(r: AbortReason) -> [u8; 2] {
    match r {
        AbortReason::Rejected(x) => [1, reject_code(x)],
        AbortReason::PrepareTimeout => [2, 0],
        AbortReason::FreezeFailed => [3, 0],
        AbortReason::TransferTimeout => [4, 0],
        AbortReason::RestoreFailed => [5, 0],
        AbortReason::ActivateFailed => [6, 0],
        AbortReason::BindTimeout => [7, 0],
        AbortReason::BindingFailed => [8, 0],
        AbortReason::Cancelled => [9, 0],
        AbortReason::PeerDead => [10, 0],
    }
}

fn abort_from(c: [u8; 2]) -> Result<AbortReason, MsgError> {
    let plain = |r| {
        if c[1] == 0 {
            Ok(r)
        } else {
            Err(MsgError::BadValue("abort reason"))
        }
    };
    match c[0] {
        1 => Ok(AbortReason::Rejected(reject_from(c[1])?)),
        2 => plain(AbortReason::PrepareTimeout),
        3 => plain(AbortReason::FreezeFailed),
        4 => plain(AbortReason::TransferTimeout),
        5 => plain(AbortReason::RestoreFailed),
        6 => plain(AbortReason::ActivateFailed),
        7 => plain(AbortReason::BindTimeout),
        8 => plain(AbortReason::BindingFailed),
        9 => plain(AbortReason::Cancelled),
        10 => plain(AbortReason::PeerDead),
        _ => Err(MsgError::BadValue("abort reason")),
    }
}

fn policy_code(p: Policy) -> u8 {
    match p {
        Policy::RoundRobin => 1,
        Policy::LeastConnections => 2,
        Policy::LowestRtt => 3,
        Policy::ClientHash => 4,
    }
}

fn policy_from(c: u8) -> Result<Policy, MsgError> {
    Ok(match c {
        1 => Policy::RoundRobin,
        2 => Policy::LeastConnections,
        3 => Policy::LowestRtt,
        4 => Policy::ClientHash,
        _ => return Err(MsgError::BadValue("policy")),
    })
}

impl HandoffMsg {
    fn kind_code(&self) -> u8 {
        match self {
            HandoffMsg::Prepare { .. } => kind::PREPARE,
            HandoffMsg::Accept { .. } => kind::ACCEPT,
            HandoffMsg::Reject { .. } => kind::REJECT,
            HandoffMsg::Restored { .. } => kind::RESTORED,
            HandoffMsg::Bound { .. } => kind::BOUND,
            HandoffMsg::Done { .. } => kind::DONE,
            HandoffMsg::Cancel { .. } => kind::CANCEL,
            HandoffMsg::Aborted { .. } => kind::ABORTED,
            HandoffMsg::TokenRequest { .. } => kind::TOKEN_REQUEST,
            HandoffMsg::Token { .. } => kind::TOKEN,
            HandoffMsg::Placed { .. } => kind::PLACED,
            HandoffMsg::Drain { .. } => kind::DRAIN,
            HandoffMsg::Load(_) => kind::LOAD,
        }
    }

    fn body(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            HandoffMsg::Prepare {
                id,
                client,
                state,
                connections,
            } => {
                w.u64(*id);
                w.addr(*client);
                w.addr(state.hoa);
                w.u16(state.next_sequence);
                w.u32(*connections);
                match &state.home_token {
                    Some(t) => {
                        w.u8(1);
                        w.token(t);
                    }
                    None => w.u8(0),
                }
            }
            HandoffMsg::Accept { id }
            | HandoffMsg::Restored { id }
            | HandoffMsg::Done { id }
            | HandoffMsg::Cancel { id } => w.u64(*id),
            HandoffMsg::Reject { id, reason } => {
                w.u64(*id);
                w.u8(reject_code(*reason));
            }
            HandoffMsg::Bound { id, sequence } => {
                w.u64(*id);
                w.u16(*sequence);
            }
            HandoffMsg::Aborted {
                id,
                next_sequence,
                reason,
            } => {
                w.u64(*id);
                w.u8(u8::from(next_sequence.is_some()));
                w.u16(next_sequence.unwrap_or(0));
                w.0.extend_from_slice(&abort_code(*reason));
            }
            HandoffMsg::TokenRequest { client } => w.addr(*client),
            HandoffMsg::Token { client, token } => {
                w.addr(*client);
                w.token(token);
            }
            HandoffMsg::Placed { client, sequence } => {
                w.addr(*client);
                w.u16(*sequence);
            }
            HandoffMsg::Drain { policy } => w.u8(policy_code(*policy)),
            HandoffMsg::Load(l) => {
                w.u32(l.connections);
                w.u32(l.clients);
                let rtts = l.rtt_us.get(..LoadReport::MAX_RTTS).unwrap_or(&l.rtt_us);
                w.u16(u16::try_from(rtts.len()).unwrap_or(0));
                for (c, r) in rtts {
                    w.addr(*c);
                    w.u32(*r);
                }
            }
        }
        w.0
    }

    /// Octets [`emit`](Self::emit) writes (RTT lists beyond
    /// [`LoadReport::MAX_RTTS`] entries are cut).
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body().len()
    }

    /// Writes the frame at the start of `frame`'s buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        frame: &mut HandoffFrame<T>,
    ) -> Result<(), MsgError> {
        let body = self.body();
        let need = HEADER_LEN + body.len();
        let have = frame.buffer.as_ref().len();
        if need > MAX_FRAME {
            return Err(MsgError::TooLong(need));
        }
        if have < need {
            return Err(MsgError::BufferTooSmall { need, have });
        }
        let len = u16::try_from(body.len()).map_err(|_| MsgError::TooLong(need))?;
        frame.set_version(VERSION);
        frame.set_kind(self.kind_code());
        frame.set_body_len(len);
        frame.body_mut().copy_from_slice(&body);
        Ok(())
    }

    /// The frame as a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, MsgError> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut HandoffFrame::new_unchecked(&mut buf[..]))?;
        Ok(buf)
    }

    /// Parses exactly one frame (no trailing octets).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MsgError> {
        let frame = HandoffFrame::new_checked(bytes)?;
        if frame.frame_len() != bytes.len() {
            return Err(MsgError::BadLength { kind: frame.kind() });
        }
        Self::parse(&frame)
    }

    /// Parses the frame at the start of `frame`'s buffer.
    pub fn parse<T: AsRef<[u8]>>(frame: &HandoffFrame<T>) -> Result<Self, MsgError> {
        frame.check_len()?;
        if frame.version() != VERSION {
            return Err(MsgError::Version(frame.version()));
        }
        let k = frame.kind();
        let mut r = Reader {
            b: frame.body(),
            kind: k,
        };
        let msg = match k {
            kind::PREPARE => {
                let id = r.u64()?;
                let client = r.addr()?;
                let hoa = r.addr()?;
                let next_sequence = r.u16()?;
                let connections = r.u32()?;
                let home_token = if r.flag("token flag")? {
                    Some(r.token()?)
                } else {
                    None
                };
                HandoffMsg::Prepare {
                    id,
                    client,
                    state: CorrespondentState {
                        hoa,
                        cn: client,
                        home_token,
                        next_sequence,
                    },
                    connections,
                }
            }
            kind::ACCEPT => HandoffMsg::Accept { id: r.u64()? },
            kind::RESTORED => HandoffMsg::Restored { id: r.u64()? },
            kind::DONE => HandoffMsg::Done { id: r.u64()? },
            kind::CANCEL => HandoffMsg::Cancel { id: r.u64()? },
            kind::REJECT => HandoffMsg::Reject {
                id: r.u64()?,
                reason: reject_from(r.u8()?)?,
            },
            kind::BOUND => HandoffMsg::Bound {
                id: r.u64()?,
                sequence: r.u16()?,
            },
            kind::ABORTED => {
                let id = r.u64()?;
                let has = r.flag("sequence flag")?;
                let seq = r.u16()?;
                if !has && seq != 0 {
                    return Err(MsgError::BadValue("sequence"));
                }
                HandoffMsg::Aborted {
                    id,
                    next_sequence: has.then_some(seq),
                    reason: abort_from(r.array()?)?,
                }
            }
            kind::TOKEN_REQUEST => HandoffMsg::TokenRequest { client: r.addr()? },
            kind::TOKEN => HandoffMsg::Token {
                client: r.addr()?,
                token: r.token()?,
            },
            kind::PLACED => HandoffMsg::Placed {
                client: r.addr()?,
                sequence: r.u16()?,
            },
            kind::DRAIN => HandoffMsg::Drain {
                policy: policy_from(r.u8()?)?,
            },
            kind::LOAD => {
                let connections = r.u32()?;
                let clients = r.u32()?;
                let n = usize::from(r.u16()?);
                if n > LoadReport::MAX_RTTS {
                    return Err(MsgError::BadValue("rtt count"));
                }
                // n is bounded above, and the body must hold it.
                let mut rtt_us = Vec::with_capacity(n.min(r.b.len() / 20));
                for _ in 0..n {
                    rtt_us.push((r.addr()?, r.u32()?));
                }
                HandoffMsg::Load(LoadReport {
                    connections,
                    clients,
                    rtt_us,
                })
            }
            other => return Err(MsgError::UnknownKind(other)),
        };
        r.end()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn prepare_layout_and_round_trip() {
        let m = HandoffMsg::Prepare {
            id: 0x0102_0304_0506_0708,
            client: a("2001:db8:3::10"),
            state: CorrespondentState {
                hoa: a("2001:db8:1::100"),
                cn: a("2001:db8:3::10"),
                home_token: Some(ExportedToken {
                    token: [9; 8],
                    nonce_index: 7,
                    age: Duration::from_micros(1500),
                }),
                next_sequence: 0xfffe,
            },
            connections: 3,
        };
        let b = m.to_bytes().unwrap();
        assert_eq!(&b[..4], &[VERSION, kind::PREPARE, 0, 61]);
        assert_eq!(&b[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b.len(), m.buffer_len());
        assert_eq!(HandoffMsg::from_bytes(&b), Ok(m));
    }

    #[test]
    fn typed_errors() {
        let b = HandoffMsg::Bound { id: 1, sequence: 2 }.to_bytes().unwrap();
        assert_eq!(
            HandoffMsg::from_bytes(&b[..3]),
            Err(MsgError::Truncated { need: 4, have: 3 })
        );
        assert_eq!(
            HandoffMsg::from_bytes(&b[..b.len() - 1]),
            Err(MsgError::Truncated { need: 14, have: 13 })
        );
        let mut v = b.clone();
        v[0] = 2;
        assert_eq!(HandoffMsg::from_bytes(&v), Err(MsgError::Version(2)));
        v[0] = VERSION;
        v[1] = 99;
        assert_eq!(HandoffMsg::from_bytes(&v), Err(MsgError::UnknownKind(99)));
        let mut long = b.clone();
        long.push(0);
        assert_eq!(
            HandoffMsg::from_bytes(&long),
            Err(MsgError::BadLength { kind: kind::BOUND })
        );
        // The body length says one more octet than Bound has.
        long[3] += 1;
        assert_eq!(
            HandoffMsg::from_bytes(&long),
            Err(MsgError::BadLength { kind: kind::BOUND })
        );
        let huge = [VERSION, kind::LOAD, 0xff, 0xff];
        assert_eq!(
            HandoffMsg::from_bytes(&huge),
            Err(MsgError::TooLong(HEADER_LEN + 0xffff))
        );
        let reject = [VERSION, kind::REJECT, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 77];
        assert_eq!(
            HandoffMsg::from_bytes(&reject),
            Err(MsgError::BadValue("reject reason"))
        );
    }

    #[test]
    fn load_report_is_bounded() {
        let big = LoadReport {
            connections: 1,
            clients: 1,
            rtt_us: (0..LoadReport::MAX_RTTS as u32 + 10)
                .map(|i| (Ipv6Addr::from(u128::from(i)), i))
                .collect(),
        };
        let b = HandoffMsg::Load(big).to_bytes().unwrap();
        assert!(b.len() <= MAX_FRAME);
        let HandoffMsg::Load(back) = HandoffMsg::from_bytes(&b).unwrap() else {
            panic!("not a load report");
        };
        assert_eq!(back.rtt_us.len(), LoadReport::MAX_RTTS);
        // A count above the bound is refused before anything is read.
        let mut forged = vec![VERSION, kind::LOAD, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0];
        forged.extend_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            HandoffMsg::from_bytes(&forged),
            Err(MsgError::BadValue("rtt count"))
        );
    }
}
