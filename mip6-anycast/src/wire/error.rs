//! The one error type of the wire layer.
//!
//! Every parser in [`crate::wire`] returns one of these variants for hostile,
//! truncated or malformed bytes; the variant names what is wrong so that a
//! daemon can count drops per reason and a test can assert the exact cause.

use std::net::Ipv6Addr;

/// What is wrong with a packet (or with a `Repr` that cannot be emitted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A structure runs past the end of the bytes we have.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// Which structure was cut short.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The IP version nibble is not 6.
    #[error("not IPv6: version {0}")]
    BadIpVersion(u8),
    /// RFC 8200 4.1: the Hop-by-Hop Options header may only follow the IPv6 header.
    #[error("hop-by-hop options header at offset {offset}, not directly after the IPv6 header")]
    MisplacedHopByHop {
        /// Offset of the misplaced header in the packet.
        offset: usize,
    },
    /// The extension-header walker gave up after its bound.
    #[error("too many extension headers: more than {max}")]
    TooManyExtHeaders {
        /// The bound ([`crate::wire::MAX_EXT_HEADERS`]).
        max: usize,
    },
    /// A header of this kind appears twice where RFC 6275/8200 allow one.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// A header sits where RFC 8200 4.1 / RFC 6275 6.3 forbid it.
    #[error("header order violates RFC 8200 4.1 / RFC 6275: {0}")]
    HeaderOrder(&'static str),
    /// RFC 6275 6.4: a type 2 routing header has hdr ext len 2 and segments left 1.
    #[error(
        "bad type 2 routing header: hdr ext len {hdr_ext_len}, segments left {segments_left} (need 2 and 1)"
    )]
    BadRh2 {
        /// Header extension length found.
        hdr_ext_len: u8,
        /// Segments left found.
        segments_left: u8,
    },
    /// A routing header of another type where a type 2 one was required.
    #[error("not a type 2 routing header: routing type {0}")]
    NotRh2(u8),
    /// The packet has no type 2 routing header (for an edit that needs one).
    #[error("packet has no type 2 routing header")]
    NoRh2,
    /// The packet already has a routing header (RFC 8200 allows one).
    #[error("packet already has a routing header (type {0})")]
    RoutingHeaderPresent(u8),
    /// The packet has no Home Address option (for an edit that needs one).
    #[error("packet has no Home Address option")]
    NoHao,
    /// RFC 6275 6.3: the Home Address option is 8n+6 aligned with length 16.
    #[error("bad Home Address option: {0}")]
    BadHao(&'static str),
    /// RFC 6275 6.3 / 6.4: a home address must be a unicast routable address.
    #[error("not a unicast routable home address: {0}")]
    BadHomeAddress(Ipv6Addr),
    /// RFC 8200 4.2: an unrecognized option whose two high-order bits demand discard.
    #[error(
        "unrecognized option type {opt_type:#04x} at offset {offset}: RFC 8200 4.2 action {action:?}"
    )]
    UnrecognizedOption {
        /// The option type.
        opt_type: u8,
        /// Offset of the option within its header.
        offset: usize,
        /// What RFC 8200 says to do with the packet.
        action: crate::wire::OptionAction,
    },
    /// RFC 6275 6.1.1: the Mobility Header payload proto must be 59 (no next header).
    #[error("bad Mobility Header payload proto {0} (must be 59)")]
    BadMhPayloadProto(u8),
    /// RFC 6275 9.2: the MH is shorter than its message type requires.
    #[error("bad Mobility Header length {len} octets for MH type {mh_type} (needs at least {min})")]
    BadMhLength {
        /// MH type.
        mh_type: u8,
        /// Length in octets from Header Len.
        len: usize,
        /// Minimum length for this type.
        min: usize,
    },
    /// RFC 6275 9.2: unknown MH type (answer with Binding Error status 2).
    #[error("unknown Mobility Header type {0}")]
    UnknownMhType(u8),
    /// RFC 6275 6.1.1: the MH checksum does not verify.
    #[error("bad Mobility Header checksum {found:#06x}")]
    BadChecksum {
        /// The checksum found in the packet.
        found: u16,
    },
    /// An option is not at the position its alignment requirement demands.
    #[error("bad alignment of option type {opt_type} at offset {offset}: needs {x}n+{y}")]
    BadOptionAlignment {
        /// The option type.
        opt_type: u8,
        /// Offset from the start of its header.
        offset: usize,
        /// Alignment modulus.
        x: u8,
        /// Alignment remainder.
        y: u8,
    },
    /// An option has a length its definition does not allow.
    #[error("bad length {len} for option type {opt_type} (expected {expected})")]
    BadOptionLength {
        /// The option type.
        opt_type: u8,
        /// The length found.
        len: u8,
        /// What the definition requires, in words.
        expected: &'static str,
    },
    /// RFC 6275 6.2.7 / RFC 4285 5: an authentication option must be the last option.
    #[error("option type {opt_type} must be the last mobility option")]
    OptionNotLast {
        /// The option type.
        opt_type: u8,
    },
    /// The requested mobility option is not in the message.
    #[error("no mobility option of type {0} in the message")]
    MissingOption(u8),
    /// The length of data given for an in-place fill differs from the field.
    #[error("length mismatch for {what}: field has {field} bytes, got {given}")]
    LengthMismatch {
        /// Which field.
        what: &'static str,
        /// The field length in the packet.
        field: usize,
        /// The length given.
        given: usize,
    },
    /// An option's data cannot be encoded in one length octet.
    #[error("option data too long to encode: {0} bytes (max 255)")]
    OptionTooLong(usize),
    /// A header would exceed what its 8-bit length field can describe.
    #[error("{what} too long: {len} octets (max {max})")]
    TooLong {
        /// Which header.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The IPv6 payload length field cannot describe the result.
    #[error("IPv6 payload too long: {0} octets (max 65535)")]
    PayloadTooLong(usize),
    /// The buffer has too little room in front of the packet for an insertion.
    #[error("not enough headroom: need {need} bytes, have {have}")]
    NoHeadroom {
        /// Bytes needed in front of the packet.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A buffer passed in for emission is too small.
    #[error("buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// `(start, len)` do not describe a range inside the buffer.
    #[error("bad packet bounds: start {start} + len {len} exceeds buffer of {buf_len}")]
    BadBounds {
        /// Start offset.
        start: usize,
        /// Length.
        len: usize,
        /// Buffer length.
        buf_len: usize,
    },
    /// RFC 2473: the outer header chain does not end in IPv6 (next header 41).
    #[error("not IPv6-in-IPv6: outer chain ends in protocol {0}")]
    NotIpv6InIpv6(u8),
    /// RFC 2473: the inner packet length does not fill the outer payload.
    #[error(
        "inner IPv6 packet length {inner} does not match the {outer} bytes the outer header carries"
    )]
    BadInnerLength {
        /// Inner packet length (40 + its payload length).
        inner: usize,
        /// Bytes after the outer headers.
        outer: usize,
    },
    /// The packet carries no Mobility Header.
    #[error("packet carries no Mobility Header (chain ends in protocol {0})")]
    NoMobilityHeader(u8),
    /// A non-first fragment: the headers beyond the fragment header are not here.
    #[error("non-first fragment: upper-layer headers are not in this packet")]
    NonFirstFragment,
    /// Not TCP or UDP directly after the IPv6 header (the PIAS proxy
    /// translates nothing else).
    #[error("not a plain TCP/UDP packet: next header {0}")]
    NotTransport(u8),
}

/// Result type of the wire layer.
pub type Result<T> = core::result::Result<T, Error>;

/// Returns `Err(Truncated)` unless `have >= need`.
#[inline]
pub(crate) fn need(what: &'static str, need: usize, have: usize) -> Result<()> {
    if have < need {
        Err(Error::Truncated { what, need, have })
    } else {
        Ok(())
    }
}
