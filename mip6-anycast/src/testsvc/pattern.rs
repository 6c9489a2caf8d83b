//! The sequence-checked stream (sans-IO): a deterministic byte pattern per
//! (connection seed, direction, offset), the client's header, positions,
//! and the server's exportable connection state.
//!
//! Wire: the client first sends a [`Header`] (magic `MSQ1`, seed, the rate
//! it wants the server to send at), then pattern bytes of direction
//! [`UP`]; the server sends pattern bytes of direction [`DOWN`]. Every byte
//! depends on its offset, so loss, duplication, reordering or corruption
//! anywhere shows up as a mismatch at a known offset.

use crate::group::CodecError;
use crate::group::codec::{Dec, Enc};

/// Client-to-server direction.
pub const UP: u8 = 0x55;
/// Server-to-client direction.
pub const DOWN: u8 = 0xd0;

/// The byte at `off` of the stream (`seed`, `dir`).
#[must_use]
pub fn pattern_byte(seed: u64, dir: u8, off: u64) -> u8 {
    let mut z = (off >> 3) ^ seed.rotate_left(8) ^ u64::from(dir);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z.to_le_bytes()[(off & 7) as usize]
}

/// Fills `buf` with the stream from offset `off`.
pub fn fill_pattern(seed: u64, dir: u8, off: u64, buf: &mut [u8]) {
    for (o, b) in (off..).zip(buf.iter_mut()) {
        *b = pattern_byte(seed, dir, o);
    }
}

/// Magic of the client's header.
pub const MAGIC: &[u8; 4] = b"MSQ1";
/// Octets of the header.
pub const HEADER_LEN: usize = 20;

/// What the client announces before its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The connection's seed.
    pub seed: u64,
    /// Bytes per second the server should send (0: as fast as it can).
    pub down_rate: u64,
}

impl Header {
    /// The 20 wire octets.
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4..12].copy_from_slice(&self.seed.to_be_bytes());
        out[12..].copy_from_slice(&self.down_rate.to_be_bytes());
        out
    }

    /// Parses the 20 octets.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, CodecError> {
        let mut d = Dec::new(b);
        if d.take(4, "magic")? != MAGIC {
            return Err(CodecError::BadValue { field: "magic" });
        }
        let seed = d.u64("seed")?;
        let down_rate = d.u64("down rate")?;
        d.finish()?;
        Ok(Self { seed, down_rate })
    }
}

/// One direction's position and its check results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Pattern bytes so far.
    pub bytes: u64,
    /// Bytes that differed from the pattern.
    pub mismatches: u64,
    /// Offset of the first wrong byte.
    pub first_mismatch: Option<u64>,
}

impl Position {
    /// Checks `data` as the next bytes of (`seed`, `dir`); returns how
    /// many were wrong.
    pub fn verify(&mut self, seed: u64, dir: u8, data: &[u8]) -> u64 {
        let mut bad = 0;
        for (off, &b) in (self.bytes..).zip(data) {
            if b != pattern_byte(seed, dir, off) {
                bad += 1;
                self.first_mismatch.get_or_insert(off);
            }
        }
        self.bytes += data.len() as u64;
        self.mismatches += bad;
        bad
    }
}

/// The server's state of one connection: what the test service's
/// `tcp_handoff::AppState::export` ships.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerConn {
    /// Header octets received so far (at most [`HEADER_LEN`]).
    pub header: Vec<u8>,
    /// Client bytes verified (after the header).
    pub rx: Position,
    /// Server bytes written.
    pub tx: u64,
}

/// Version octet of an encoded [`ServerConn`].
const STATE_VERSION: u8 = 1;

impl ServerConn {
    /// The parsed header, once complete.
    pub fn header(&self) -> Option<Result<Header, CodecError>> {
        let h: &[u8; HEADER_LEN] = self.header.as_slice().try_into().ok()?;
        Some(Header::decode(h))
    }

    /// Takes received octets: header first, then the verified pattern.
    /// Returns the number of mismatched bytes, or the header error.
    pub fn on_data(&mut self, mut data: &[u8]) -> Result<u64, CodecError> {
        let missing = HEADER_LEN.saturating_sub(self.header.len());
        if missing > 0 {
            let (h, rest) = data.split_at(missing.min(data.len()));
            self.header.extend_from_slice(h);
            data = rest;
        }
        match self.header() {
            None => Ok(0),
            Some(Err(e)) => Err(e),
            Some(Ok(h)) => Ok(self.rx.verify(h.seed, UP, data)),
        }
    }

    /// Encodes the state (version, header, positions).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(STATE_VERSION);
        e.u8(u8::try_from(self.header.len().min(HEADER_LEN)).unwrap_or(0));
        e.buf
            .extend_from_slice(self.header.get(..HEADER_LEN).unwrap_or(&self.header));
        e.u64(self.rx.bytes);
        e.u64(self.rx.mismatches);
        e.u64(self.rx.first_mismatch.map_or(u64::MAX, |o| o));
        e.u64(self.tx);
        e.buf
    }

    /// Decodes [`ServerConn::encode`]'s output.
    pub fn decode(b: &[u8]) -> Result<Self, CodecError> {
        let mut d = Dec::new(b);
        if d.u8("state version")? != STATE_VERSION {
            return Err(CodecError::BadValue {
                field: "state version",
            });
        }
        let n = usize::from(d.u8("header length")?);
        if n > HEADER_LEN {
            return Err(CodecError::TooLong {
                field: "header",
                len: n as u64,
                limit: HEADER_LEN as u64,
            });
        }
        let header = d.take(n, "header")?.to_vec();
        let bytes = d.u64("rx bytes")?;
        let mismatches = d.u64("rx mismatches")?;
        let first = d.u64("first mismatch")?;
        let tx = d.u64("tx bytes")?;
        d.finish()?;
        let conn = Self {
            header,
            rx: Position {
                bytes,
                mismatches,
                first_mismatch: (first != u64::MAX).then_some(first),
            },
            tx,
        };
        if let Some(Err(e)) = conn.header() {
            return Err(e);
        }
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_depends_on_seed_direction_and_offset() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        fill_pattern(1, UP, 0, &mut a);
        fill_pattern(1, UP, 1, &mut b);
        assert_eq!(a[1..], b[..63]);
        // No short period: shifted by 1..=16 the streams differ.
        for shift in 1..=16 {
            fill_pattern(1, UP, shift, &mut b);
            assert_ne!(a[..48], b[..48], "shift {shift}");
        }
        fill_pattern(1, DOWN, 0, &mut b);
        assert_ne!(a, b);
        fill_pattern(2, UP, 0, &mut b);
        assert_ne!(a, b);
        let mut p = Position::default();
        assert_eq!(p.verify(1, UP, &a), 0);
        let mut next = [0u8; 8];
        fill_pattern(1, UP, 64, &mut next);
        next[3] ^= 1;
        assert_eq!(p.verify(1, UP, &next), 1);
        assert_eq!(p.first_mismatch, Some(67));
    }

    #[test]
    fn server_state_roundtrips_mid_header_and_mid_stream() {
        let h = Header {
            seed: 42,
            down_rate: 1 << 20,
        }
        .encode();
        let mut s = ServerConn::default();
        assert_eq!(s.on_data(&h[..7]).unwrap(), 0);
        let enc = s.encode();
        assert_eq!(ServerConn::decode(&enc).unwrap(), s);
        let mut body = [0u8; 100];
        fill_pattern(42, UP, 0, &mut body);
        let mut data = h[7..].to_vec();
        data.extend_from_slice(&body);
        assert_eq!(s.on_data(&data).unwrap(), 0);
        s.tx = 12345;
        let enc = s.encode();
        let back = ServerConn::decode(&enc).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.rx.bytes, 100);
        for cut in 0..enc.len() {
            assert!(ServerConn::decode(&enc[..cut]).is_err());
        }
        let mut bad = ServerConn::default();
        assert!(bad.on_data(b"XXXX0000000000000000").is_err());
    }
}
