//! Error types. Kernel failures carry the operation that failed; hostile or
//! inconsistent input gets its own variant that says what is wrong.

use std::io;

/// Anything that can go wrong while freezing, dumping, restoring or passing a socket.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `op` names the step.
    #[error("{op}: {source}")]
    Sys {
        /// The step that failed, e.g. `"setsockopt(TCP_REPAIR)"`.
        op: &'static str,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// `TCP_REPAIR` needs `CAP_NET_ADMIN` in the socket's network namespace.
    #[error("TCP_REPAIR refused (needs CAP_NET_ADMIN): {0}")]
    PermissionDenied(#[source] io::Error),
    /// Only established connections can be migrated (see crate docs, "Limitations").
    #[error("socket is in TCP state {0}, only ESTABLISHED (1) can be migrated")]
    UnsupportedState(u8),
    /// The socket is not a TCP socket over IPv4 or IPv6.
    #[error("not a connected TCP/IP socket: {0}")]
    NotTcp(String),
    /// The socket changed while it was being dumped and kept changing on retry.
    #[error("socket state kept changing while dumping ({0})")]
    Unstable(String),
    /// A state handed to `restore` failed validation.
    #[error("invalid state: {0}")]
    Invalid(#[from] ValidationError),
    /// Bytes handed to a decoder were malformed.
    #[error("malformed encoding: {0}")]
    Decode(#[from] DecodeError),
    /// No socket of the process matched the connection.
    #[error("no socket of process {pid} matches {what}")]
    NotFound {
        /// The process searched.
        pid: i32,
        /// What was searched for.
        what: String,
    },
    /// Writing the not-yet-sent bytes after repair mode did not finish in time.
    #[error("timed out writing {remaining} unsent bytes back into the restored socket")]
    UnsentTimeout {
        /// Bytes that could not be written.
        remaining: usize,
    },
    /// An application's `AppState` hook failed.
    #[error("application state hook: {0}")]
    App(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    pub(crate) fn sys(op: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Sys { op, source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a [`TcpState`](crate::TcpState) (or a captured segment) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The state was written by an unknown format version.
    #[error("unsupported state version {0}")]
    Version(u16),
    /// Local and remote address families differ.
    #[error("address families differ: local {local}, remote {remote}")]
    FamilyMismatch {
        /// The local address (after any override).
        local: std::net::SocketAddr,
        /// The remote address.
        remote: std::net::SocketAddr,
    },
    /// An address or port that cannot belong to an established connection.
    #[error("bad address {0}")]
    Address(std::net::SocketAddr),
    /// A queue is longer than [`Limits`](crate::Limits) allows.
    #[error("{queue} queue holds {len} bytes, limit is {limit}")]
    QueueTooLong {
        /// Which queue.
        queue: &'static str,
        /// Its length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The MSS is outside what Linux accepts (`TCP_MIN_MSS` 88 .. 65535).
    #[error("mss {0} out of range")]
    Mss(u16),
    /// A window scale above 14 (RFC 7323 section 2.3).
    #[error("window scale {0} above 14")]
    WindowScale(u8),
    /// `TCP_REPAIR_WINDOW` values the kernel would reject.
    #[error("repair window inconsistent: {0}")]
    Window(&'static str),
    /// A socket buffer size beyond the limit.
    #[error("socket buffer {len} above limit {limit}")]
    Buffer {
        /// Requested size.
        len: u32,
        /// The configured limit.
        limit: u32,
    },
    /// Too many or too large captured segments.
    #[error("captured segments: {0}")]
    Captured(&'static str),
    /// A congestion-control name that is empty, too long or not printable.
    #[error("bad congestion control name")]
    Congestion,
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated: needed {needed} more bytes for {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes missing.
        needed: usize,
    },
    /// The magic bytes did not match.
    #[error("bad magic")]
    Magic,
    /// An unknown format version.
    #[error("unsupported version {0}")]
    Version(u16),
    /// A length field exceeds its limit.
    #[error("{field} length {len} exceeds limit {limit}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The announced length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// An enum tag or flag with no meaning.
    #[error("bad value {value} for {field}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// The value seen.
        value: u64,
    },
    /// Bytes left over after the message.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A message with a file descriptor arrived without one (or with several).
    #[error("expected exactly one file descriptor, got {0}")]
    FdCount(usize),
}
