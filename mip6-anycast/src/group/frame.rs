//! Framing of the node channel (sans-IO).
//!
//! On the wire every Noise message travels as one frame: a 4-octet
//! big-endian length, then that many octets of ciphertext. The length is
//! checked against [`MIN_FRAME`]..=[`MAX_FRAME`] (the Noise limit) *before*
//! anything is allocated or read, so a forged length costs the reader
//! nothing but the connection.
//!
//! After the handshake each frame decrypts to one record: a kind octet and
//! up to [`MAX_RECORD_DATA`] octets. An application message longer than
//! that is split into `More` records closed by one `End` record; the
//! receiver reassembles at most [`ChannelLimits::max_message`] octets.

use super::error::ChannelError;

/// Octets of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Largest frame: the largest Noise message (Noise spec section 3).
pub const MAX_FRAME: usize = 65_535;
/// Authentication tag of ChaChaPoly.
pub const TAG_LEN: usize = 16;
/// Smallest frame: a tag around one record-kind octet (also smaller than
/// either handshake message).
pub const MIN_FRAME: usize = TAG_LEN + 1;
/// Largest record payload: a frame minus the tag and the kind octet.
pub const MAX_RECORD_DATA: usize = MAX_FRAME - TAG_LEN - 1;

/// Limits of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Longest application message accepted (reassembly bound). Handoff
    /// bundles carry TCP queues, so the default is generous: 32 MiB.
    pub max_message: usize,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        Self {
            max_message: 32 << 20,
        }
    }
}

/// Checks a frame's length prefix; returns the ciphertext length.
pub fn frame_len(prefix: [u8; LEN_PREFIX]) -> Result<usize, ChannelError> {
    let len = u32::from_be_bytes(prefix);
    match usize::try_from(len) {
        Ok(n) if (MIN_FRAME..=MAX_FRAME).contains(&n) => Ok(n),
        Ok(n) if n < MIN_FRAME => Err(ChannelError::FrameTooShort(n)),
        _ => Err(ChannelError::FrameTooLong {
            len: u64::from(len),
            limit: MAX_FRAME as u64,
        }),
    }
}

/// Appends the length prefix of a `len`-octet frame (`len <= MAX_FRAME`).
pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len.min(MAX_FRAME)).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
}

/// Record kinds (the first plaintext octet of a transport frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    /// The initiator's member info; the first transport record, once.
    Hello = 1,
    /// A piece of an application message; more follow.
    More = 2,
    /// The last (or only) piece of an application message.
    End = 3,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Hello),
            2 => Some(Self::More),
            3 => Some(Self::End),
            _ => None,
        }
    }
}

/// What one decrypted record completed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Completed {
    /// Nothing yet (a `More` record).
    Nothing,
    /// The peer's hello.
    Hello(Vec<u8>),
    /// A whole application message.
    Message(Vec<u8>),
}

/// Reassembles records into messages, bounded by `max_message`.
#[derive(Debug)]
pub(crate) struct Reassembly {
    buf: Vec<u8>,
    max_message: usize,
}

impl Reassembly {
    pub(crate) fn new(limits: &ChannelLimits) -> Self {
        Self {
            buf: Vec::new(),
            max_message: limits.max_message,
        }
    }

    /// Takes one decrypted record.
    pub(crate) fn push(&mut self, record: &[u8]) -> Result<Completed, ChannelError> {
        let Some((&kind, data)) = record.split_first() else {
            return Err(ChannelError::BadRecord(None));
        };
        let kind = RecordKind::from_u8(kind).ok_or(ChannelError::BadRecord(Some(kind)))?;
        if kind == RecordKind::Hello {
            if !self.buf.is_empty() {
                return Err(ChannelError::BadRecord(Some(kind as u8)));
            }
            return Ok(Completed::Hello(data.to_vec()));
        }
        let total = self.buf.len().saturating_add(data.len());
        if total > self.max_message {
            return Err(ChannelError::MessageTooLong {
                len: total as u64,
                limit: self.max_message as u64,
            });
        }
        self.buf.extend_from_slice(data);
        match kind {
            RecordKind::More => Ok(Completed::Nothing),
            _ => Ok(Completed::Message(std::mem::take(&mut self.buf))),
        }
    }
}

/// Splits `msg` into record plaintexts (kind octet + data) and hands each
/// to `seal`. An empty message is one empty `End` record.
pub(crate) fn split_records(
    msg: &[u8],
    mut seal: impl FnMut(RecordKind, &[u8]) -> Result<(), ChannelError>,
) -> Result<(), ChannelError> {
    let mut chunks = msg.chunks(MAX_RECORD_DATA).peekable();
    if chunks.peek().is_none() {
        return seal(RecordKind::End, &[]);
    }
    while let Some(chunk) = chunks.next() {
        let kind = if chunks.peek().is_some() {
            RecordKind::More
        } else {
            RecordKind::End
        };
        seal(kind, chunk)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_bounded_before_allocation() {
        assert_eq!(frame_len(100u32.to_be_bytes()).unwrap(), 100);
        assert_eq!(frame_len(65_535u32.to_be_bytes()).unwrap(), MAX_FRAME);
        assert!(matches!(
            frame_len(65_536u32.to_be_bytes()),
            Err(ChannelError::FrameTooLong { len: 65_536, .. })
        ));
        assert!(matches!(
            frame_len(u32::MAX.to_be_bytes()),
            Err(ChannelError::FrameTooLong { .. })
        ));
        assert!(matches!(
            frame_len(0u32.to_be_bytes()),
            Err(ChannelError::FrameTooShort(0))
        ));
    }

    #[test]
    fn records_split_and_reassemble() {
        let limits = ChannelLimits {
            max_message: 3 * MAX_RECORD_DATA,
        };
        for len in [
            0,
            1,
            MAX_RECORD_DATA,
            MAX_RECORD_DATA + 1,
            3 * MAX_RECORD_DATA,
        ] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut r = Reassembly::new(&limits);
            let mut out = Vec::new();
            split_records(&msg, |kind, data| {
                let mut rec = vec![kind as u8];
                rec.extend_from_slice(data);
                if let Completed::Message(m) = r.push(&rec)? {
                    out.push(m);
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(out, vec![msg], "len {len}");
        }
    }

    #[test]
    fn hostile_records_are_typed_errors() {
        let mut r = Reassembly::new(&ChannelLimits { max_message: 4 });
        assert!(matches!(r.push(&[]), Err(ChannelError::BadRecord(None))));
        assert!(matches!(
            r.push(&[9]),
            Err(ChannelError::BadRecord(Some(9)))
        ));
        assert_eq!(r.push(&[2, 1, 2]).unwrap(), Completed::Nothing);
        // A hello inside a message is out of place.
        assert!(matches!(
            r.push(&[1]),
            Err(ChannelError::BadRecord(Some(1)))
        ));
        assert!(matches!(
            r.push(&[3, 3, 4, 5]),
            Err(ChannelError::MessageTooLong { len: 5, limit: 4 })
        ));
    }
}
