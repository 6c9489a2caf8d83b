//! PIAS control messages: target-to-proxy (join, leave, create) and
//! proxy-to-proxy (JAP reports to RAPs, JAP lists to IAPs, invalidations,
//! affinity queries), smoltcp style: a zero-copy [`Packet`] view over the
//! common header plus a [`MessageRepr`] that parses and emits every body.
//!
//! Layout (all integers big-endian):
//! ```text
//! 0      2        3      4          6          8
//! | "PI" | version | kind | body len | reserved | body ...
//! ```
//! A group is 20 bytes: anycast address (16), port (2), transport protocol
//! (1), reserved (1). Seed 001 3.1: a group is a transport address `AA:g`.
//! Every body has a fixed length except [`MessageRepr::JapList`] (bounded by
//! [`MAX_JAP_LIST`]) and [`MessageRepr::Create`] (URI of at most
//! [`MAX_URI_LEN`] bytes) and [`MessageRepr::GroupAnnounce`] (credential,
//! allow-list and URI, each bounded); parsing never allocates more than
//! those bounds. Proxy-to-proxy messages travel sealed ([`crate::peer_auth`]).

use std::net::Ipv6Addr;

use crate::group::{GroupAddr, Policy};

mod announce;
pub use announce::{GroupAnnounce, MAX_ANNOUNCE_ALLOW, MAX_CREDENTIAL_LEN, MAX_RAPS};

/// Magic at the start of every message.
pub const MAGIC: u16 = 0x5049;
/// The only version we speak.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 8;
/// Encoded group length.
pub const GROUP_LEN: usize = 20;
/// Length of a join/leave/create credential tag (truncated HMAC-SHA256).
pub const TAG_LEN: usize = 16;
/// Most JAPs a RAP hands an IAP in one list.
pub const MAX_JAP_LIST: usize = 16;
/// Longest URI a group can be bound to.
pub const MAX_URI_LEN: usize = 200;
/// Most RTT entries in one report.
pub const MAX_RTT_ENTRIES: usize = 64;
/// Reserved UDP port on every anycast address for join/leave (seed 001 3.1).
pub const CONTROL_PORT: u16 = 4950;
/// UDP port of proxy-to-proxy control messages on proxies' unicast addresses.
pub const PEER_PORT: u16 = 4951;

/// What is wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the structure needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// Structure cut short.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Not a PIAS message.
    #[error("bad magic {0:#06x}")]
    BadMagic(u16),
    /// Unknown version.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// Unknown message kind.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The body length does not match the kind.
    #[error("bad body length {len} for {kind}")]
    BadLength {
        /// Kind name.
        kind: &'static str,
        /// Length found.
        len: usize,
    },
    /// A count field above its bound.
    #[error("{what} {value} exceeds bound {max}")]
    TooMany {
        /// Field.
        what: &'static str,
        /// Value found.
        value: usize,
        /// Bound.
        max: usize,
    },
    /// A field with a value outside its domain.
    #[error("bad field {0}")]
    BadField(&'static str),
    /// Output buffer too small for `emit`.
    #[error("buffer too small: need {need}, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// Message kinds.
pub mod kind {
    /// Target -> JAP: join a group.
    pub const JOIN: u8 = 1;
    /// Target -> JAP: leave a group.
    pub const LEAVE: u8 = 2;
    /// JAP -> target: answer to join/leave/create.
    pub const JOIN_ACK: u8 = 3;
    /// Target -> proxy: assign a group from the proxy's block to a URI.
    pub const CREATE: u8 = 4;
    /// Target -> JAP: my connections moved to another target (tcp-handoff);
    /// the NAT follows.
    pub const HANDOFF: u8 = 5;
    /// JAP -> RAP: approximate target count of a group at this JAP.
    pub const JAP_UPDATE: u8 = 16;
    /// RAP -> JAP: acknowledgement carrying the error bound to use.
    pub const JAP_UPDATE_ACK: u8 = 17;
    /// IAP -> RAP: ask for the JAP list of a group.
    pub const JAP_QUERY: u8 = 18;
    /// RAP -> IAP: the JAP list of a group.
    pub const JAP_LIST: u8 = 19;
    /// JAP -> IAP: no live targets of the group here any more.
    pub const TARGETS_GONE: u8 = 20;
    /// IAP -> IAPs of its cluster: who serves this flow? (affinity)
    pub const FLOW_QUERY: u8 = 21;
    /// Answer to a flow query.
    pub const FLOW_ANSWER: u8 = 22;
    /// Proxy -> all proxies: its measured RTTs to peers (seed 001 3.5).
    pub const RTT_REPORT: u8 = 23;
    /// Creator proxy -> all proxies: a dynamically created group.
    pub const GROUP_ANNOUNCE: u8 = 24;
}

/// Zero-copy view of a PIAS message (header + body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps bytes after checking the header and that the body is present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header fits and the declared body is within the buffer.
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                what: "header",
                need: HEADER_LEN,
                have,
            });
        }
        let need = HEADER_LEN + usize::from(self.body_len());
        if have < need {
            return Err(Error::Truncated {
                what: "body",
                need,
                have,
            });
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// Magic.
    pub fn magic(&self) -> u16 {
        self.u16_at(0)
    }

    /// Version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[2]
    }

    /// Message kind ([`kind`]).
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[3]
    }

    /// Body length in bytes.
    pub fn body_len(&self) -> u16 {
        self.u16_at(4)
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.body_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// Header and body (for authentication: the tag covers these bytes).
    pub fn message_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN + usize::from(self.body_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes magic, version, kind and body length; zeroes the reserved field.
    pub fn set_header(&mut self, kind: u8, body_len: u16) {
        let b = self.buffer.as_mut();
        b[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        b[2] = VERSION;
        b[3] = kind;
        b[4..6].copy_from_slice(&body_len.to_be_bytes());
        b[6..8].copy_from_slice(&[0, 0]);
    }

    /// The body, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.body_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// Join options a target gives (seed 001 3.1 `join(AA:g, AT:r, options)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JoinOptions {
    /// The target decapsulates IPv6-in-IPv6 itself: the JAP tunnels instead of NAT.
    pub can_decap: bool,
    /// The target is also a client of the group: never select it for its own packets.
    pub exclude_self: bool,
}

impl JoinOptions {
    fn bits(self) -> u16 {
        u16::from(self.can_decap) | (u16::from(self.exclude_self) << 1)
    }

    fn from_bits(b: u16) -> Result<Self> {
        if b & !0b11 != 0 {
            return Err(Error::BadField("join options"));
        }
        Ok(JoinOptions {
            can_decap: b & 1 != 0,
            exclude_self: b & 2 != 0,
        })
    }
}

/// A join, leave or create request, authenticated by a per-group credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The group `AA:g`.
    pub group: GroupAddr,
    /// The target's transport address `AT:r`.
    pub target: Ipv6Addr,
    /// Target port `r`.
    pub target_port: u16,
    /// Options.
    pub options: JoinOptions,
    /// Strictly increasing per (group, target): replay protection.
    pub nonce: u64,
    /// Truncated HMAC-SHA256 over header and body with this field zeroed.
    pub tag: [u8; TAG_LEN],
}

/// Result codes of a [`MessageRepr::JoinAck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AckStatus {
    /// Accepted.
    Ok = 0,
    /// Credential did not verify.
    BadCredential = 1,
    /// Target not on the group's allow-list.
    NotAllowed = 2,
    /// Target reached its limit of groups.
    LimitReached = 3,
    /// Nonce not newer than the last one seen.
    Replay = 4,
    /// Group unknown to this proxy.
    UnknownGroup = 5,
    /// No address left in the proxy's block.
    BlockExhausted = 6,
}

impl AckStatus {
    fn from_u8(v: u8) -> Result<Self> {
        Ok(match v {
            0 => AckStatus::Ok,
            1 => AckStatus::BadCredential,
            2 => AckStatus::NotAllowed,
            3 => AckStatus::LimitReached,
            4 => AckStatus::Replay,
            5 => AckStatus::UnknownGroup,
            6 => AckStatus::BlockExhausted,
            _ => return Err(Error::BadField("ack status")),
        })
    }
}

/// One JAP in a RAP's list: its unicast address and approximate target count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JapEntry {
    /// The JAP's unicast (tunnel endpoint) address.
    pub jap: Ipv6Addr,
    /// Approximate number of live targets there.
    pub count: u32,
}

/// One measured RTT in an [`MessageRepr::RttReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEntry {
    /// The peer measured.
    pub peer: Ipv6Addr,
    /// Minimum RTT seen, microseconds.
    pub rtt_us: u32,
}

/// Every PIAS message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRepr {
    /// Seed 001 3.5, brute force: every proxy pings the others and
    /// advertises its minimum RTTs to all, so a RAP can order JAPs by their
    /// distance to the IAP.
    RttReport {
        /// Measurements (at most [`MAX_RTT_ENTRIES`]).
        entries: Vec<RttEntry>,
    },
    /// Target joins.
    Join(Membership),
    /// Target leaves.
    Leave(Membership),
    /// Answer to join/leave/create.
    JoinAck {
        /// Group (for create: the assigned one).
        group: GroupAddr,
        /// Echoed nonce.
        nonce: u64,
        /// Outcome.
        status: AckStatus,
    },
    /// Ask a proxy to assign a group from its block to `uri`.
    Create {
        /// Requesting target.
        target: Ipv6Addr,
        /// Port the group should have (0: any).
        port: u16,
        /// Transport protocol.
        proto: u8,
        /// Strictly increasing per target.
        nonce: u64,
        /// URI name (at most [`MAX_URI_LEN`]).
        uri: String,
        /// Tag under the block's creator credential.
        tag: [u8; TAG_LEN],
    },
    /// A leaving target's connections were moved (with `tcp-handoff`) to
    /// another target of the same JAP: its NAT bindings follow.
    Handoff {
        /// Group.
        group: GroupAddr,
        /// The target that gave its connections (the sender).
        from: Ipv6Addr,
        /// Its port.
        from_port: u16,
        /// The target that took them.
        to: Ipv6Addr,
        /// Its port.
        to_port: u16,
        /// Strictly increasing per (group, sender).
        nonce: u64,
        /// Tag under the group's credential.
        tag: [u8; TAG_LEN],
    },
    /// JAP -> RAP report (seed 001 3.3).
    JapUpdate {
        /// Group.
        group: GroupAddr,
        /// Reporting JAP.
        jap: Ipv6Addr,
        /// Approximate live targets (0: none left).
        count: u32,
        /// Sequence number of this report.
        seq: u32,
        /// The group's selection policy (RAPs learn it from their JAPs).
        policy: Policy,
    },
    /// RAP -> JAP acknowledgement with the error bound the RAP asks for.
    JapUpdateAck {
        /// Group.
        group: GroupAddr,
        /// Acknowledged sequence.
        seq: u32,
        /// Error bound in percent (0, 25, 50 ...).
        bound_pct: u8,
    },
    /// IAP -> RAP query.
    JapQuery {
        /// Group.
        group: GroupAddr,
    },
    /// RAP -> IAP answer.
    JapList {
        /// Group.
        group: GroupAddr,
        /// JAPs, best first.
        entries: Vec<JapEntry>,
    },
    /// JAP -> IAP invalidation (seed 001 3.2).
    TargetsGone {
        /// Group.
        group: GroupAddr,
        /// The JAP that has no live targets for it.
        jap: Ipv6Addr,
    },
    /// IAP -> cluster peers: which JAP serves this flow?
    FlowQuery {
        /// Group.
        group: GroupAddr,
        /// Client address.
        client: Ipv6Addr,
        /// Client port.
        client_port: u16,
        /// Query id.
        id: u32,
    },
    /// Answer: the JAP pinned for the flow (unspecified: unknown).
    FlowAnswer {
        /// Group.
        group: GroupAddr,
        /// Client address.
        client: Ipv6Addr,
        /// Client port.
        client_port: u16,
        /// Query id.
        id: u32,
        /// The JAP, or `::` if the peer does not know the flow.
        jap: Ipv6Addr,
    },
    /// Creator -> all proxies: a created group's configuration and URI.
    GroupAnnounce(GroupAnnounce),
}

const MEMBERSHIP_LEN: usize = GROUP_LEN + 16 + 2 + 2 + 8 + TAG_LEN;
const HANDOFF_LEN: usize = GROUP_LEN + 16 + 2 + 16 + 2 + 8 + TAG_LEN;

/// Offset of the tag in a signed message of `kind` (join, leave, create,
/// handoff), from the start of the header.
pub fn tag_offset(kind: u8) -> Option<usize> {
    Some(match kind {
        kind::JOIN | kind::LEAVE => HEADER_LEN + MEMBERSHIP_LEN - TAG_LEN,
        kind::CREATE => HEADER_LEN + 16 + 4 + 8,
        kind::HANDOFF => HEADER_LEN + HANDOFF_LEN - TAG_LEN,
        _ => return None,
    })
}

/// Byte reader that never panics: every read is bounds-checked.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or(Error::BadField(what))?;
        let s = self.b.get(self.at..end).ok_or(Error::Truncated {
            what,
            need: end,
            have: self.b.len(),
        })?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_be_bytes(a))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }
    fn addr(&mut self, what: &'static str) -> Result<Ipv6Addr> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16, what)?);
        Ok(Ipv6Addr::from(a))
    }
    fn group(&mut self) -> Result<GroupAddr> {
        let addr = self.addr("group address")?;
        let port = self.u16("group port")?;
        let proto = self.u8("group protocol")?;
        let _reserved = self.u8("group reserved")?;
        GroupAddr::new(addr, port, proto).ok_or(Error::BadField("group"))
    }
    fn tag(&mut self) -> Result<[u8; TAG_LEN]> {
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(self.take(TAG_LEN, "tag")?);
        Ok(t)
    }
}

/// Byte writer over a slice already checked to be long enough.
struct Writer<'a> {
    b: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, s: &[u8]) {
        self.b[self.at..self.at + s.len()].copy_from_slice(s);
        self.at += s.len();
    }
    fn group(&mut self, g: &GroupAddr) {
        self.put(&g.addr.octets());
        self.put(&g.port.to_be_bytes());
        self.put(&[g.proto, 0]);
    }
    fn membership(&mut self, m: &Membership) {
        self.group(&m.group);
        self.put(&m.target.octets());
        self.put(&m.target_port.to_be_bytes());
        self.put(&m.options.bits().to_be_bytes());
        self.put(&m.nonce.to_be_bytes());
        self.put(&m.tag);
    }
}

fn parse_membership(body: &[u8], kind: &'static str) -> Result<Membership> {
    if body.len() != MEMBERSHIP_LEN {
        return Err(Error::BadLength {
            kind,
            len: body.len(),
        });
    }
    let mut r = Reader { b: body, at: 0 };
    Ok(Membership {
        group: r.group()?,
        target: r.addr("target")?,
        target_port: r.u16("target port")?,
        options: JoinOptions::from_bits(r.u16("options")?)?,
        nonce: r.u64("nonce")?,
        tag: r.tag()?,
    })
}

fn fixed<'a>(body: &'a [u8], kind: &'static str, len: usize) -> Result<Reader<'a>> {
    if body.len() != len {
        return Err(Error::BadLength {
            kind,
            len: body.len(),
        });
    }
    Ok(Reader { b: body, at: 0 })
}

impl MessageRepr {
    /// Parses a checked view; every field is validated, nothing panics.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&T>) -> Result<MessageRepr> {
        p.check_len()?;
        if p.magic() != MAGIC {
            return Err(Error::BadMagic(p.magic()));
        }
        if p.version() != VERSION {
            return Err(Error::BadVersion(p.version()));
        }
        let body = p.body();
        Ok(match p.kind() {
            kind::JOIN => MessageRepr::Join(parse_membership(body, "join")?),
            kind::LEAVE => MessageRepr::Leave(parse_membership(body, "leave")?),
            kind::JOIN_ACK => {
                let mut r = fixed(body, "join ack", GROUP_LEN + 8 + 4)?;
                let group = r.group()?;
                let nonce = r.u64("nonce")?;
                let status = AckStatus::from_u8(r.u8("status")?)?;
                MessageRepr::JoinAck {
                    group,
                    nonce,
                    status,
                }
            }
            kind::CREATE => {
                let mut r = Reader { b: body, at: 0 };
                let target = r.addr("target")?;
                let port = r.u16("port")?;
                let proto = r.u8("proto")?;
                let uri_len = usize::from(r.u8("uri length")?);
                let nonce = r.u64("nonce")?;
                let tag = r.tag()?;
                if uri_len > MAX_URI_LEN {
                    return Err(Error::TooMany {
                        what: "uri length",
                        value: uri_len,
                        max: MAX_URI_LEN,
                    });
                }
                let uri = r.take(uri_len, "uri")?;
                if r.at != body.len() {
                    return Err(Error::BadLength {
                        kind: "create",
                        len: body.len(),
                    });
                }
                let uri = std::str::from_utf8(uri)
                    .map_err(|_| Error::BadField("uri utf-8"))?
                    .to_owned();
                if proto != crate::group::PROTO_TCP && proto != crate::group::PROTO_UDP {
                    return Err(Error::BadField("create protocol"));
                }
                MessageRepr::Create {
                    target,
                    port,
                    proto,
                    nonce,
                    uri,
                    tag,
                }
            }
            kind::HANDOFF => {
                let mut r = fixed(body, "handoff", HANDOFF_LEN)?;
                MessageRepr::Handoff {
                    group: r.group()?,
                    from: r.addr("from")?,
                    from_port: r.u16("from port")?,
                    to: r.addr("to")?,
                    to_port: r.u16("to port")?,
                    nonce: r.u64("nonce")?,
                    tag: r.tag()?,
                }
            }
            kind::JAP_UPDATE => {
                let mut r = fixed(body, "jap update", GROUP_LEN + 16 + 12)?;
                let group = r.group()?;
                let jap = r.addr("jap")?;
                let count = r.u32("count")?;
                let seq = r.u32("seq")?;
                let policy = Policy::from_u8(r.u8("policy")?).ok_or(Error::BadField("policy"))?;
                let _pad = r.take(3, "pad")?;
                MessageRepr::JapUpdate {
                    group,
                    jap,
                    count,
                    seq,
                    policy,
                }
            }
            kind::JAP_UPDATE_ACK => {
                let mut r = fixed(body, "jap update ack", GROUP_LEN + 8)?;
                let group = r.group()?;
                let seq = r.u32("seq")?;
                let bound_pct = r.u8("bound")?;
                if bound_pct > 100 {
                    return Err(Error::BadField("error bound above 100%"));
                }
                MessageRepr::JapUpdateAck {
                    group,
                    seq,
                    bound_pct,
                }
            }
            kind::JAP_QUERY => {
                let mut r = fixed(body, "jap query", GROUP_LEN)?;
                MessageRepr::JapQuery { group: r.group()? }
            }
            kind::JAP_LIST => {
                let mut r = Reader { b: body, at: 0 };
                let group = r.group()?;
                let n = usize::from(r.u8("jap count")?);
                let _pad = r.take(3, "jap list pad")?;
                if n > MAX_JAP_LIST {
                    return Err(Error::TooMany {
                        what: "jap list",
                        value: n,
                        max: MAX_JAP_LIST,
                    });
                }
                if body.len() != GROUP_LEN + 4 + n * 20 {
                    return Err(Error::BadLength {
                        kind: "jap list",
                        len: body.len(),
                    });
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let jap = r.addr("jap")?;
                    let count = r.u32("count")?;
                    entries.push(JapEntry { jap, count });
                }
                MessageRepr::JapList { group, entries }
            }
            kind::TARGETS_GONE => {
                let mut r = fixed(body, "targets gone", GROUP_LEN + 16)?;
                MessageRepr::TargetsGone {
                    group: r.group()?,
                    jap: r.addr("jap")?,
                }
            }
            kind::FLOW_QUERY => {
                let mut r = fixed(body, "flow query", GROUP_LEN + 16 + 4 + 4)?;
                let group = r.group()?;
                let client = r.addr("client")?;
                let client_port = r.u16("client port")?;
                let _pad = r.u16("pad")?;
                let id = r.u32("id")?;
                MessageRepr::FlowQuery {
                    group,
                    client,
                    client_port,
                    id,
                }
            }
            kind::FLOW_ANSWER => {
                let mut r = fixed(body, "flow answer", GROUP_LEN + 16 + 4 + 4 + 16)?;
                let group = r.group()?;
                let client = r.addr("client")?;
                let client_port = r.u16("client port")?;
                let _pad = r.u16("pad")?;
                let id = r.u32("id")?;
                let jap = r.addr("jap")?;
                MessageRepr::FlowAnswer {
                    group,
                    client,
                    client_port,
                    id,
                    jap,
                }
            }
            kind::RTT_REPORT => {
                let mut r = Reader { b: body, at: 0 };
                let n = usize::from(r.u8("rtt count")?);
                let _pad = r.take(3, "rtt pad")?;
                if n > MAX_RTT_ENTRIES {
                    return Err(Error::TooMany {
                        what: "rtt entries",
                        value: n,
                        max: MAX_RTT_ENTRIES,
                    });
                }
                if body.len() != 4 + n * 20 {
                    return Err(Error::BadLength {
                        kind: "rtt report",
                        len: body.len(),
                    });
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let peer = r.addr("peer")?;
                    let rtt_us = r.u32("rtt")?;
                    entries.push(RttEntry { peer, rtt_us });
                }
                MessageRepr::RttReport { entries }
            }
            kind::GROUP_ANNOUNCE => MessageRepr::GroupAnnounce(GroupAnnounce::parse_body(body)?),
            k => return Err(Error::UnknownKind(k)),
        })
    }

    /// Kind byte of this message.
    pub fn kind(&self) -> u8 {
        match self {
            MessageRepr::Join(_) => kind::JOIN,
            MessageRepr::Leave(_) => kind::LEAVE,
            MessageRepr::JoinAck { .. } => kind::JOIN_ACK,
            MessageRepr::Create { .. } => kind::CREATE,
            MessageRepr::Handoff { .. } => kind::HANDOFF,
            MessageRepr::JapUpdate { .. } => kind::JAP_UPDATE,
            MessageRepr::JapUpdateAck { .. } => kind::JAP_UPDATE_ACK,
            MessageRepr::JapQuery { .. } => kind::JAP_QUERY,
            MessageRepr::JapList { .. } => kind::JAP_LIST,
            MessageRepr::TargetsGone { .. } => kind::TARGETS_GONE,
            MessageRepr::FlowQuery { .. } => kind::FLOW_QUERY,
            MessageRepr::FlowAnswer { .. } => kind::FLOW_ANSWER,
            MessageRepr::RttReport { .. } => kind::RTT_REPORT,
            MessageRepr::GroupAnnounce(_) => kind::GROUP_ANNOUNCE,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            MessageRepr::Join(_) | MessageRepr::Leave(_) => MEMBERSHIP_LEN,
            MessageRepr::JoinAck { .. } => GROUP_LEN + 12,
            MessageRepr::Create { uri, .. } => 16 + 4 + 8 + TAG_LEN + uri.len(),
            MessageRepr::Handoff { .. } => HANDOFF_LEN,
            MessageRepr::JapUpdate { .. } => GROUP_LEN + 28,
            MessageRepr::JapUpdateAck { .. } => GROUP_LEN + 8,
            MessageRepr::JapQuery { .. } => GROUP_LEN,
            MessageRepr::JapList { entries, .. } => GROUP_LEN + 4 + entries.len() * 20,
            MessageRepr::TargetsGone { .. } => GROUP_LEN + 16,
            MessageRepr::FlowQuery { .. } => GROUP_LEN + 24,
            MessageRepr::FlowAnswer { .. } => GROUP_LEN + 40,
            MessageRepr::RttReport { entries } => 4 + entries.len() * 20,
            MessageRepr::GroupAnnounce(a) => a.body_len(),
        }
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Writes the message; fails (typed) on an out-of-bound list or URI or a short buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        p: &mut Packet<&mut T>,
    ) -> Result<()> {
        match self {
            MessageRepr::JapList { entries, .. } if entries.len() > MAX_JAP_LIST => {
                return Err(Error::TooMany {
                    what: "jap list",
                    value: entries.len(),
                    max: MAX_JAP_LIST,
                });
            }
            MessageRepr::Create { uri, .. } if uri.len() > MAX_URI_LEN => {
                return Err(Error::TooMany {
                    what: "uri length",
                    value: uri.len(),
                    max: MAX_URI_LEN,
                });
            }
            MessageRepr::RttReport { entries } if entries.len() > MAX_RTT_ENTRIES => {
                return Err(Error::TooMany {
                    what: "rtt entries",
                    value: entries.len(),
                    max: MAX_RTT_ENTRIES,
                });
            }
            MessageRepr::GroupAnnounce(a) => a.check()?,
            _ => {}
        }
        let need = self.buffer_len();
        let have = p.buffer.as_ref().len();
        if have < need {
            return Err(Error::BufferTooSmall { need, have });
        }
        // body_len <= 8 + 20 + 4 + 16 * 20, <= 44 + 200, or for an
        // announcement <= 44 + 64 + 16 * 16 + 200: fits u16.
        p.set_header(self.kind(), self.body_len() as u16);
        let mut w = Writer {
            b: p.body_mut(),
            at: 0,
        };
        match self {
            MessageRepr::Join(m) | MessageRepr::Leave(m) => w.membership(m),
            MessageRepr::JoinAck {
                group,
                nonce,
                status,
            } => {
                w.group(group);
                w.put(&nonce.to_be_bytes());
                w.put(&[*status as u8, 0, 0, 0]);
            }
            MessageRepr::Create {
                target,
                port,
                proto,
                nonce,
                uri,
                tag,
            } => {
                w.put(&target.octets());
                w.put(&port.to_be_bytes());
                // uri.len() <= MAX_URI_LEN < 256, checked above.
                w.put(&[*proto, uri.len() as u8]);
                w.put(&nonce.to_be_bytes());
                w.put(tag);
                w.put(uri.as_bytes());
            }
            MessageRepr::Handoff {
                group,
                from,
                from_port,
                to,
                to_port,
                nonce,
                tag,
            } => {
                w.group(group);
                w.put(&from.octets());
                w.put(&from_port.to_be_bytes());
                w.put(&to.octets());
                w.put(&to_port.to_be_bytes());
                w.put(&nonce.to_be_bytes());
                w.put(tag);
            }
            MessageRepr::JapUpdate {
                group,
                jap,
                count,
                seq,
                policy,
            } => {
                w.group(group);
                w.put(&jap.octets());
                w.put(&count.to_be_bytes());
                w.put(&seq.to_be_bytes());
                w.put(&[policy.to_u8(), 0, 0, 0]);
            }
            MessageRepr::JapUpdateAck {
                group,
                seq,
                bound_pct,
            } => {
                w.group(group);
                w.put(&seq.to_be_bytes());
                w.put(&[*bound_pct, 0, 0, 0]);
            }
            MessageRepr::JapQuery { group } => w.group(group),
            MessageRepr::JapList { group, entries } => {
                w.group(group);
                // entries.len() <= MAX_JAP_LIST, checked above.
                w.put(&[entries.len() as u8, 0, 0, 0]);
                for e in entries {
                    w.put(&e.jap.octets());
                    w.put(&e.count.to_be_bytes());
                }
            }
            MessageRepr::TargetsGone { group, jap } => {
                w.group(group);
                w.put(&jap.octets());
            }
            MessageRepr::FlowQuery {
                group,
                client,
                client_port,
                id,
            } => {
                w.group(group);
                w.put(&client.octets());
                w.put(&client_port.to_be_bytes());
                w.put(&[0, 0]);
                w.put(&id.to_be_bytes());
            }
            MessageRepr::FlowAnswer {
                group,
                client,
                client_port,
                id,
                jap,
            } => {
                w.group(group);
                w.put(&client.octets());
                w.put(&client_port.to_be_bytes());
                w.put(&[0, 0]);
                w.put(&id.to_be_bytes());
                w.put(&jap.octets());
            }
            MessageRepr::RttReport { entries } => {
                // entries.len() <= MAX_RTT_ENTRIES, checked above.
                w.put(&[entries.len() as u8, 0, 0, 0]);
                for e in entries {
                    w.put(&e.peer.octets());
                    w.put(&e.rtt_us.to_be_bytes());
                }
            }
            MessageRepr::GroupAnnounce(a) => a.emit_body(&mut w),
        }
        Ok(())
    }

    /// Emits into a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut v[..]))?;
        Ok(v)
    }

    /// Parses bytes (convenience for `Packet::new_checked` + `parse`).
    pub fn from_bytes(b: &[u8]) -> Result<MessageRepr> {
        MessageRepr::parse(&Packet::new_checked(b)?)
    }
}

/// The bytes a membership or create tag covers: the whole message with the
/// tag field zeroed. `None` if `bytes` is not such a message.
pub fn tag_input(bytes: &[u8]) -> Option<Vec<u8>> {
    let p = Packet::new_checked(bytes).ok()?;
    let mut v = p.message_bytes().to_vec();
    let s = tag_offset(p.kind())?;
    v.get_mut(s..s + TAG_LEN)?.fill(0);
    Some(v)
}

#[cfg(test)]
mod tests;
