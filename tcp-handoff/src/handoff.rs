//! A handoff bundle: the TCP states of a client's connections plus each
//! connection's opaque application state, and the hook through which an
//! application exports and imports that state.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use serde::{Deserialize, Serialize};

use crate::codec::{
    Reader, Writer, read_id, read_segments, read_state, write_id, write_segments, write_state,
};
use crate::dump::Frozen;
use crate::error::{DecodeError, Error, Result};
use crate::restore::{RestoreOptions, replay, restore_paused};
use crate::segment::CapturedSegment;
use crate::state::{ConnectionId, Limits, TcpState};

/// Magic and version of an encoded [`Handoff`].
const HANDOFF_MAGIC: &[u8; 4] = b"THH1";
/// Magic of an encoded [`LateSegments`].
const LATE_MAGIC: &[u8; 4] = b"THL1";

/// An application's per-connection state, exported on the donor while the
/// connection is frozen and imported on the acceptor with the restored
/// socket. The bytes are opaque to this crate (bounded by
/// [`Limits::max_app_state`]).
pub trait AppState {
    /// The application's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Serialises what the application knows about `conn` (parser state,
    /// positions in a stream, session keys, ...). Called after the socket
    /// is frozen, so nothing changes underneath.
    fn export(&mut self, conn: &ConnectionId) -> std::result::Result<Vec<u8>, Self::Error>;

    /// Takes over `stream` (the restored connection, already live) with the
    /// state the donor exported. `conn` has the acceptor's local address.
    fn import(
        &mut self,
        conn: &ConnectionId,
        state: &[u8],
        stream: TcpStream,
    ) -> std::result::Result<(), Self::Error>;
}

/// One connection in a handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionHandoff {
    /// The kernel state.
    pub tcp: TcpState,
    /// The application's state, opaque.
    pub app_state: Vec<u8>,
    /// Segments of the peer captured so far on the donor (often empty: most
    /// arrive after the state is shipped, see [`LateSegments`]).
    pub captured: Vec<CapturedSegment>,
}

/// The states of all connections that move together (e.g. one client's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The connections.
    pub connections: Vec<ConnectionHandoff>,
}

/// Segments the donor captured after shipping the [`Handoff`], sent once it
/// closed the frozen socket; the acceptor replays them with [`replay`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateSegments {
    /// The connection as the donor knew it.
    pub id: ConnectionId,
    /// The segments.
    pub segments: Vec<CapturedSegment>,
}

impl Handoff {
    /// Dumps every frozen socket and asks `app` for each connection's state.
    pub fn export<'a, A: AppState>(
        frozen: impl IntoIterator<Item = &'a mut Frozen>,
        app: &mut A,
    ) -> Result<Handoff> {
        let mut connections = Vec::new();
        for f in frozen {
            let tcp = f.dump()?;
            let app_state = app.export(&tcp.id()).map_err(|e| Error::App(Box::new(e)))?;
            let captured = f.take_captured();
            connections.push(ConnectionHandoff {
                tcp,
                app_state,
                captured,
            });
        }
        Ok(Handoff { connections })
    }

    /// Restores and activates every connection, replays what was captured,
    /// and hands each live stream to `app`. For moves where the peer's
    /// packets already reach this host; otherwise use [`restore_paused`] per
    /// connection and activate after the switch. Returns the restored ids.
    pub fn import<A: AppState>(
        &self,
        opts: &RestoreOptions,
        app: &mut A,
    ) -> Result<Vec<ConnectionId>> {
        let mut ids = Vec::with_capacity(self.connections.len());
        for c in &self.connections {
            if c.app_state.len() > opts.limits.max_app_state {
                return Err(DecodeError::TooLong {
                    field: "application state",
                    len: c.app_state.len() as u64,
                    limit: opts.limits.max_app_state as u64,
                }
                .into());
            }
            for s in &c.captured {
                s.validate()?;
            }
            let paused = restore_paused(&c.tcp, opts)?;
            let id = paused.id();
            let live = paused.activate()?;
            replay(&live.stream, &c.captured)?;
            app.import(&id, &c.app_state, live.stream)
                .map_err(|e| Error::App(Box::new(e)))?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Encodes the bundle (see [`codec`](crate::codec) for the format).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(HANDOFF_MAGIC);
        w.u32(self.connections.len() as u32);
        for c in &self.connections {
            write_state(&mut w, &c.tcp);
            w.bytes(&c.app_state);
            write_segments(&mut w, &c.captured);
        }
        w.buf
    }

    /// Decodes a bundle within `limits`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> std::result::Result<Handoff, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.take(4, "magic")? != HANDOFF_MAGIC {
            return Err(DecodeError::Magic);
        }
        let n = r.count("connection count", limits.max_connections)?;
        // Each connection takes well over 64 bytes: bound the allocation by the input.
        let mut connections = Vec::with_capacity(n.min(bytes.len() / 64 + 1));
        for _ in 0..n {
            let tcp = read_state(&mut r, limits)?;
            let app_state = r.bytes("application state", limits.max_app_state)?;
            let captured = read_segments(&mut r, limits)?;
            connections.push(ConnectionHandoff {
                tcp,
                app_state,
                captured,
            });
        }
        r.finish()?;
        Ok(Handoff { connections })
    }
}

impl LateSegments {
    /// Encodes the segments.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(LATE_MAGIC);
        write_id(&mut w, &self.id);
        write_segments(&mut w, &self.segments);
        w.buf
    }

    /// Decodes segments within `limits`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> std::result::Result<LateSegments, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.take(4, "magic")? != LATE_MAGIC {
            return Err(DecodeError::Magic);
        }
        let id = read_id(&mut r)?;
        let segments = read_segments(&mut r, limits)?;
        r.finish()?;
        Ok(LateSegments { id, segments })
    }
}

/// Writes `payload` with a 4-byte big-endian length prefix.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(payload)
}

/// Reads one length-prefixed frame of at most `max` bytes. The buffer is
/// allocated only after the length passed the check.
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(Error::sys("read frame length"))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(DecodeError::TooLong {
            field: "frame",
            len: len as u64,
            limit: max as u64,
        }
        .into());
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(Error::sys("read frame"))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::ACK;

    fn bundle() -> Handoff {
        let state = crate::codec::tests::sample();
        Handoff {
            connections: vec![ConnectionHandoff {
                tcp: state,
                app_state: b"position=42".to_vec(),
                captured: vec![CapturedSegment {
                    seq: 1,
                    ack: 2,
                    flags: ACK,
                    window: 3,
                    options: vec![1, 1, 1, 1],
                    payload: b"late".to_vec(),
                }],
            }],
        }
    }

    #[test]
    fn handoff_roundtrip_and_truncation() {
        let h = bundle();
        let enc = h.encode();
        assert_eq!(Handoff::decode(&enc, &Limits::default()).unwrap(), h);
        for cut in 0..enc.len() {
            assert!(Handoff::decode(&enc[..cut], &Limits::default()).is_err());
        }
        let tight = Limits {
            max_app_state: 3,
            ..Limits::default()
        };
        assert!(matches!(
            Handoff::decode(&enc, &tight),
            Err(DecodeError::TooLong {
                field: "application state",
                ..
            })
        ));
    }

    #[test]
    fn late_roundtrip() {
        let h = bundle();
        let late = LateSegments {
            id: h.connections[0].tcp.id(),
            segments: h.connections[0].captured.clone(),
        };
        let enc = late.encode();
        assert_eq!(
            LateSegments::decode(&enc, &Limits::default()).unwrap(),
            late
        );
        let none = Limits {
            max_captured_segments: 0,
            ..Limits::default()
        };
        assert!(LateSegments::decode(&enc, &none).is_err());
    }

    #[test]
    fn frames_are_bounded() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        assert_eq!(read_frame(&mut &buf[..], 5).unwrap(), b"hello");
        assert!(matches!(
            read_frame(&mut &buf[..], 4),
            Err(Error::Decode(_))
        ));
        let forged = u32::MAX.to_be_bytes();
        assert!(read_frame(&mut &forged[..], 1 << 20).is_err());
        assert!(read_frame(&mut &buf[..6], 5).is_err());
    }
}
