//! What travels on the node channel between members (one Noise-protected
//! message each, `mip6_anycast::group`): a kind octet, then
//!
//! | kind | body |
//! |---|---|
//! | 0 `Control` | a `HandoffMsg` frame (`proto::handoff` codec) |
//! | 1 `Transfer` | handoff number (u64), client (16), `tcp_handoff::Handoff` |
//! | 2 `Late` | handoff number (u64), client (16), count (u32), per entry: length (u32) + `tcp_handoff::LateSegments` |
//! | 3 `Failover` | a `FailoverMsg` frame (`proto::failover` codec: heartbeats, the contact node's state) |
//!
//! Every parse is bounded by the input and by `tcp_handoff::Limits`.

use std::net::Ipv6Addr;

use tcp_handoff::{Handoff, LateSegments, Limits};

/// A decoded channel message.
#[derive(Debug)]
pub enum Envelope<'a> {
    /// A coordinator message (still encoded).
    Control(&'a [u8]),
    /// The connections of a client, for the acceptor.
    Transfer {
        /// The donor's handoff number.
        id: u64,
        /// The client.
        client: Ipv6Addr,
        /// The bundle.
        bundle: Handoff,
    },
    /// A failover message (still encoded).
    Failover(&'a [u8]),
    /// Segments the donor captured after the transfer.
    Late {
        /// The donor's handoff number.
        id: u64,
        /// The client.
        client: Ipv6Addr,
        /// Per connection.
        late: Vec<LateSegments>,
    },
}

/// Why a channel message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Empty message.
    #[error("empty message")]
    Empty,
    /// Unknown kind octet.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// Shorter than its header.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// The tcp-handoff part did not decode.
    #[error("{0}")]
    Bundle(String),
}

const CONTROL: u8 = 0;
const TRANSFER: u8 = 1;
const LATE: u8 = 2;
const FAILOVER: u8 = 3;
/// Late segment lists per message.
const MAX_LATE: usize = 1024;

/// A coordinator message.
pub fn control(frame: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(frame.len() + 1);
    v.push(CONTROL);
    v.extend_from_slice(frame);
    v
}

/// A failover message.
pub fn failover(frame: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(frame.len() + 1);
    v.push(FAILOVER);
    v.extend_from_slice(frame);
    v
}

fn head(kind: u8, id: u64, client: Ipv6Addr) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&client.octets());
    v
}

/// A transfer.
pub fn transfer(id: u64, client: Ipv6Addr, bundle: &Handoff) -> Vec<u8> {
    let mut v = head(TRANSFER, id, client);
    v.extend_from_slice(&bundle.encode());
    v
}

/// Late segments.
pub fn late(id: u64, client: Ipv6Addr, late: &[LateSegments]) -> Vec<u8> {
    let mut v = head(LATE, id, client);
    v.extend_from_slice(&u32::try_from(late.len()).unwrap_or(u32::MAX).to_be_bytes());
    for l in late {
        let e = l.encode();
        v.extend_from_slice(&u32::try_from(e.len()).unwrap_or(u32::MAX).to_be_bytes());
        v.extend_from_slice(&e);
    }
    v
}

fn split_head(b: &[u8]) -> Result<(u64, Ipv6Addr, &[u8]), EnvelopeError> {
    let (id, rest) = b
        .split_first_chunk::<8>()
        .ok_or(EnvelopeError::Truncated("handoff number"))?;
    let (c, rest) = rest
        .split_first_chunk::<16>()
        .ok_or(EnvelopeError::Truncated("client"))?;
    Ok((u64::from_be_bytes(*id), Ipv6Addr::from(*c), rest))
}

/// Decodes one channel message.
pub fn parse<'a>(msg: &'a [u8], limits: &Limits) -> Result<Envelope<'a>, EnvelopeError> {
    let (&kind, body) = msg.split_first().ok_or(EnvelopeError::Empty)?;
    match kind {
        CONTROL => Ok(Envelope::Control(body)),
        FAILOVER => Ok(Envelope::Failover(body)),
        TRANSFER => {
            let (id, client, rest) = split_head(body)?;
            let bundle =
                Handoff::decode(rest, limits).map_err(|e| EnvelopeError::Bundle(e.to_string()))?;
            Ok(Envelope::Transfer { id, client, bundle })
        }
        LATE => {
            let (id, client, rest) = split_head(body)?;
            let (n, mut rest) = rest
                .split_first_chunk::<4>()
                .ok_or(EnvelopeError::Truncated("count"))?;
            let n = u32::from_be_bytes(*n) as usize;
            if n > MAX_LATE {
                return Err(EnvelopeError::Bundle(format!("{n} late lists")));
            }
            let mut late = Vec::with_capacity(n.min(rest.len() / 4));
            for _ in 0..n {
                let (len, r) = rest
                    .split_first_chunk::<4>()
                    .ok_or(EnvelopeError::Truncated("late length"))?;
                let len = u32::from_be_bytes(*len) as usize;
                let (one, r) = r
                    .split_at_checked(len)
                    .ok_or(EnvelopeError::Truncated("late segments"))?;
                late.push(
                    LateSegments::decode(one, limits)
                        .map_err(|e| EnvelopeError::Bundle(e.to_string()))?,
                );
                rest = r;
            }
            if !rest.is_empty() {
                return Err(EnvelopeError::Bundle("trailing octets".into()));
            }
            Ok(Envelope::Late { id, client, late })
        }
        k => Err(EnvelopeError::Kind(k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hostile_bytes() {
        let c: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let l = Limits::default();
        let t = transfer(42, c, &Handoff::default());
        match parse(&t, &l).unwrap() {
            Envelope::Transfer { id, client, bundle } => {
                assert_eq!((id, client, bundle.connections.len()), (42, c, 0));
            }
            e => panic!("{e:?}"),
        }
        let m = late(7, c, &[]);
        assert!(matches!(parse(&m, &l), Ok(Envelope::Late { id: 7, .. })));
        assert!(matches!(
            parse(&control(b"x"), &l),
            Ok(Envelope::Control(b"x"))
        ));
        assert_eq!(parse(&[], &l).unwrap_err(), EnvelopeError::Empty);
        assert!(matches!(
            parse(&failover(b"hb"), &l),
            Ok(Envelope::Failover(b"hb"))
        ));
        assert_eq!(parse(&[9], &l).unwrap_err(), EnvelopeError::Kind(9));
        // Every truncation of a transfer and of late segments is an error.
        for msg in [&t, &m] {
            for n in 1..msg.len() {
                assert!(parse(&msg[..n], &l).is_err(), "prefix {n} accepted");
            }
        }
        let mut huge = late(1, c, &[]);
        huge.truncate(25);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&huge, &l).is_err());
    }
}
