//! Errors of the node channel. Every hostile input maps to one variant;
//! the connection that produced it is closed.

use super::codec::CodecError;

/// Why a node-channel connection failed or was closed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Socket error.
    #[error("node channel I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection (EOF), also mid-frame.
    #[error("peer closed the node channel")]
    Closed,
    /// The handshake did not authenticate: the peer does not hold this
    /// group's secret (or the handshake was tampered with).
    #[error("node channel handshake failed: wrong group secret or tampered handshake")]
    HandshakeAuth,
    /// The peer closed the connection during the handshake; a responder
    /// does that when our handshake did not authenticate (wrong secret).
    #[error("peer closed the node channel during the handshake (wrong group secret?)")]
    HandshakeRejected,
    /// The handshake did not finish in time.
    #[error("node channel handshake timed out")]
    HandshakeTimeout,
    /// A frame's length prefix is over [`MAX_FRAME`](super::frame::MAX_FRAME).
    #[error("frame of {len} octets announced; at most {limit}")]
    FrameTooLong {
        /// Announced length.
        len: u64,
        /// The bound.
        limit: u64,
    },
    /// A frame's length prefix is under [`MIN_FRAME`](super::frame::MIN_FRAME).
    #[error("frame of {0} octets is too short")]
    FrameTooShort(usize),
    /// A transport frame failed authentication: tampered, truncated,
    /// replayed or reordered (the receive nonce is implicit and strictly
    /// increasing, so a replayed frame never decrypts).
    #[error("frame failed authentication (tampered, replayed or reordered)")]
    Decrypt,
    /// A record with an unknown or out-of-place kind (`None`: empty).
    #[error("bad record kind {0:?}")]
    BadRecord(Option<u8>),
    /// A reassembled message grew over the limit.
    #[error("message of {len} octets over the limit {limit}")]
    MessageTooLong {
        /// Length so far.
        len: u64,
        /// The bound.
        limit: u64,
    },
    /// A message to send is over the limit.
    #[error("message of {len} octets too long to send (limit {limit})")]
    SendTooLong {
        /// Its length.
        len: u64,
        /// The bound.
        limit: u64,
    },
    /// The peer's hello does not decode.
    #[error("bad hello: {0}")]
    Hello(#[from] CodecError),
    /// The peer's hello names no configured member (or differs from its
    /// configuration).
    #[error("peer {0:?} is not a configured member")]
    UnknownMember(String),
    /// We dialed one member and another answered.
    #[error("expected member {expected:?}, {got:?} answered")]
    UnexpectedPeer {
        /// The member dialed.
        expected: String,
        /// The member that answered.
        got: String,
    },
    /// The peer presented our own identity.
    #[error("peer claims to be this node")]
    SelfConnection,
    /// 2^64 - 1 messages in one direction: the connection must be renewed.
    #[error("nonce space exhausted")]
    NonceExhausted,
    /// Another Noise failure (internal state, parameters).
    #[error("noise: {0}")]
    Noise(snow::Error),
}

impl ChannelError {
    /// A short stable name, used as a counter label.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::Closed => "closed",
            Self::HandshakeAuth => "handshake_auth",
            Self::HandshakeRejected => "handshake_rejected",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::FrameTooLong { .. } => "frame_too_long",
            Self::FrameTooShort(_) => "frame_too_short",
            Self::Decrypt => "decrypt",
            Self::BadRecord(_) => "bad_record",
            Self::MessageTooLong { .. } => "message_too_long",
            Self::SendTooLong { .. } => "send_too_long",
            Self::Hello(_) => "bad_hello",
            Self::UnknownMember(_) => "unknown_member",
            Self::UnexpectedPeer { .. } => "unexpected_peer",
            Self::SelfConnection => "self_connection",
            Self::NonceExhausted => "nonce_exhausted",
            Self::Noise(_) => "noise",
        }
    }
}
