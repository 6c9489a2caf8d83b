//! Binary form of [`FailoverMsg`] for the node channel. A 6-octet header
//! (version, kind, body length u32) and a body per kind; integers
//! big-endian; names as a length octet plus ASCII. Bounded: a frame is at
//! most [`MAX_FAILOVER_FRAME`] octets, a snapshot at most
//! [`MAX_SNAPSHOT_CLIENTS`] clients, and a count is checked against the
//! octets left before anything is allocated.
//!
//! ```text
//! Heartbeat: hoa (16) | epoch (8) | flags (1: bit 0 = sender is the contact) |
//!            held version (8) | contact name
//! State:     hoa (16) | epoch (8) | version (8) | snapshot
//! snapshot:  contact CoA (16) | key | has next key (1) [| key] |
//!            home next sequence (2) | client count (4) | clients
//! key:       SPI (4) | length (1) | key octets
//! client:    address (16) | next sequence (2) | has token (1)
//!            [| token (8) | nonce index (2) | age us (4)] | bound (1) | served-by name
//! ```

use std::net::Ipv6Addr;

use super::state::{ClientRecord, ContactSnapshot, MAX_SNAPSHOT_CLIENTS, RegistrationKey};
use crate::crypto::Spi;
use crate::proto::handoff::codec::{Reader, Writer};
use crate::proto::handoff::{MemberId, MsgError};

/// Version of the frame format.
pub const VERSION: u8 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 6;
/// Longest frame.
pub const MAX_FAILOVER_FRAME: usize = 8 << 20;

const HEARTBEAT: u8 = 1;
const STATE: u8 = 2;
/// Octets of the smallest client record.
const MIN_CLIENT_LEN: usize = 16 + 2 + 1 + 1 + 2;

/// A failover message (see [`super`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverMsg {
    /// Every member to every other, each heartbeat interval.
    Heartbeat {
        /// The anycast address.
        hoa: Ipv6Addr,
        /// The sender's epoch (incremented by each takeover).
        epoch: u64,
        /// The contact node the sender follows (itself if it is it).
        contact: MemberId,
        /// Whether the sender is the contact node.
        is_contact: bool,
        /// The snapshot version the sender holds (a backup's
        /// acknowledgement; the contact's current version).
        held: u64,
    },
    /// Contact node -> backups: the replicated state.
    State {
        /// The anycast address.
        hoa: Ipv6Addr,
        /// The contact's epoch.
        epoch: u64,
        /// Version, increasing.
        version: u64,
        /// The state.
        snapshot: Box<ContactSnapshot>,
    },
}

impl FailoverMsg {
    /// The anycast address the message is about.
    #[must_use]
    pub fn hoa(&self) -> Ipv6Addr {
        match self {
            Self::Heartbeat { hoa, .. } | Self::State { hoa, .. } => *hoa,
        }
    }

    /// Encodes the message.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let kind = match self {
            Self::Heartbeat {
                hoa,
                epoch,
                contact,
                is_contact,
                held,
            } => {
                w.addr(*hoa);
                w.u64(*epoch);
                w.u8(u8::from(*is_contact));
                w.u64(*held);
                name(&mut w, contact);
                HEARTBEAT
            }
            Self::State {
                hoa,
                epoch,
                version,
                snapshot,
            } => {
                w.addr(*hoa);
                w.u64(*epoch);
                w.u64(*version);
                emit_snapshot(&mut w, snapshot);
                STATE
            }
        };
        let body = w.0;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(VERSION);
        out.push(kind);
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a frame (exactly one message).
    pub fn parse(frame: &[u8]) -> Result<Self, MsgError> {
        if frame.len() < HEADER_LEN {
            return Err(MsgError::Truncated {
                need: HEADER_LEN,
                have: frame.len(),
            });
        }
        if frame[0] != VERSION {
            return Err(MsgError::Version(frame[0]));
        }
        let kind = frame[1];
        let len = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) as usize;
        if len > MAX_FAILOVER_FRAME {
            return Err(MsgError::TooLong(len));
        }
        let body = &frame[HEADER_LEN..];
        if body.len() != len {
            return Err(MsgError::BadLength { kind });
        }
        let mut r = Reader { b: body, kind };
        let msg = match kind {
            HEARTBEAT => {
                let hoa = r.addr()?;
                let epoch = r.u64()?;
                let is_contact = r.flag("is_contact")?;
                let held = r.u64()?;
                let contact = read_name(&mut r)?;
                Self::Heartbeat {
                    hoa,
                    epoch,
                    contact,
                    is_contact,
                    held,
                }
            }
            STATE => Self::State {
                hoa: r.addr()?,
                epoch: r.u64()?,
                version: r.u64()?,
                snapshot: Box::new(parse_snapshot(&mut r)?),
            },
            other => return Err(MsgError::UnknownKind(other)),
        };
        r.end()?;
        Ok(msg)
    }
}

fn name(w: &mut Writer, n: &MemberId) {
    let b = n.as_str().as_bytes();
    // Member names are at most 64 octets (MemberId::new).
    w.u8(u8::try_from(b.len()).unwrap_or(u8::MAX));
    w.0.extend_from_slice(b);
}

fn read_name(r: &mut Reader<'_>) -> Result<MemberId, MsgError> {
    let len = usize::from(r.u8()?);
    let b = r.take(len)?;
    let s = std::str::from_utf8(b).map_err(|_| MsgError::BadValue("member name"))?;
    MemberId::new(s).map_err(|_| MsgError::BadValue("member name"))
}

fn emit_key(w: &mut Writer, k: &RegistrationKey) {
    w.u32(k.spi.0);
    let b = k.expose_secret();
    w.u8(u8::try_from(b.len()).unwrap_or(u8::MAX));
    w.0.extend_from_slice(b);
}

fn read_key(r: &mut Reader<'_>) -> Result<RegistrationKey, MsgError> {
    let spi = Spi(r.u32()?);
    let len = usize::from(r.u8()?);
    let b = r.take(len)?;
    RegistrationKey::new(spi, b).map_err(|_| MsgError::BadValue("registration key"))
}

fn emit_snapshot(w: &mut Writer, s: &ContactSnapshot) {
    w.addr(s.contact_coa);
    emit_key(w, &s.key);
    match &s.next_key {
        Some(k) => {
            w.u8(1);
            emit_key(w, k);
        }
        None => w.u8(0),
    }
    w.u16(s.home_next_sequence);
    let n = s.clients.len().min(MAX_SNAPSHOT_CLIENTS);
    w.u32(u32::try_from(n).unwrap_or(u32::MAX));
    for c in s.clients.iter().take(n) {
        w.addr(c.cn);
        w.u16(c.next_sequence);
        match &c.home_token {
            Some(t) => {
                w.u8(1);
                w.token(t);
            }
            None => w.u8(0),
        }
        w.u8(u8::from(c.bound));
        name(w, &c.served_by);
    }
}

fn parse_snapshot(r: &mut Reader<'_>) -> Result<ContactSnapshot, MsgError> {
    let contact_coa = r.addr()?;
    let key = read_key(r)?;
    let next_key = if r.flag("next key")? {
        Some(read_key(r)?)
    } else {
        None
    };
    let home_next_sequence = r.u16()?;
    let n = r.u32()? as usize;
    if n > MAX_SNAPSHOT_CLIENTS || n.saturating_mul(MIN_CLIENT_LEN) > r.b.len() {
        return Err(MsgError::BadValue("client count"));
    }
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let cn = r.addr()?;
        let next_sequence = r.u16()?;
        let home_token = if r.flag("home token")? {
            Some(r.token()?)
        } else {
            None
        };
        let bound = r.flag("bound")?;
        let served_by = read_name(r)?;
        clients.push(ClientRecord {
            cn,
            next_sequence,
            home_token,
            served_by,
            bound,
        });
    }
    Ok(ContactSnapshot {
        contact_coa,
        key,
        next_key,
        home_next_sequence,
        clients,
    })
}
