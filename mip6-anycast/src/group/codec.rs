//! Field-level encoding of small group records (the channel hello, the
//! test service's connection state): big-endian integers, 16-octet
//! addresses and `u16`-length UTF-8 names. A [`Dec`] never reads past its
//! input and checks every length against a limit *before* allocating.

use std::net::Ipv6Addr;

/// A field that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended inside `field`.
    #[error("truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// `field` declares `len` octets or items; at most `limit` are allowed.
    #[error("{field}: length {len} over the limit {limit}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// `field` holds a value outside its domain.
    #[error("invalid value in {field}")]
    BadValue {
        /// The field.
        field: &'static str,
    },
    /// Octets left over after the last field.
    #[error("{0} trailing octets")]
    TrailingBytes(usize),
}

/// Appends fields to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct Enc {
    pub(crate) buf: Vec<u8>,
}

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn addr(&mut self, a: Ipv6Addr) {
        self.buf.extend_from_slice(&a.octets());
    }
    /// A name; one over 65535 octets is cut there (the decoder's limits
    /// are far lower, so it fails to decode rather than misparse).
    pub(crate) fn name(&mut self, s: &str) {
        let b = s.as_bytes();
        let b = b.get(..usize::from(u16::MAX)).unwrap_or(b);
        self.u16(u16::try_from(b.len()).unwrap_or(u16::MAX));
        self.buf.extend_from_slice(b);
    }
}

/// Reads fields from a byte slice.
#[derive(Debug)]
pub(crate) struct Dec<'a> {
    rest: &'a [u8],
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < n {
            return Err(CodecError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn addr(&mut self, field: &'static str) -> Result<Ipv6Addr, CodecError> {
        Ok(Ipv6Addr::from(self.array::<16>(field)?))
    }

    /// A UTF-8 name of at most `limit` octets.
    pub(crate) fn name(&mut self, field: &'static str, limit: usize) -> Result<String, CodecError> {
        let n = usize::from(self.u16(field)?);
        if n > limit {
            return Err(CodecError::TooLong {
                field,
                len: n as u64,
                limit: limit as u64,
            });
        }
        let b = self.take(n, field)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| CodecError::BadValue { field })
    }

    /// Fails unless everything was read.
    pub(crate) fn finish(self) -> Result<(), CodecError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes(self.rest.len()))
        }
    }
}
