//! Errors of building, running and tearing down a lab.

use std::io;
use std::path::PathBuf;

use mip6_anycast::engine::netlink::NetlinkError;
use mip6_anycast::engine::netns::NetnsError;
use mip6_anycast::engine::tun::TunError;

use crate::linkemu::LinkError;
use crate::topology::TopologyError;

/// Why a lab could not be built or a lab operation failed. Every variant
/// says what was being done (`context`) or which topology field is at fault
/// (`path`, e.g. `route[2].via`).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The topology does not validate.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The topology is valid as a file but cannot be built as a lab.
    #[error("{path}: {message}")]
    Invalid {
        /// The offending field, e.g. `route[2].via`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A lab option is unusable.
    #[error("lab option {option}: {message}")]
    Option {
        /// The option (`family`, `out_dir`, ...).
        option: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Creating, opening or entering a namespace failed.
    #[error("{context}: {source}")]
    Netns {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: NetnsError,
    },
    /// A netlink request (link, address, route, sysctl) failed.
    #[error("{context}: {source}")]
    Netlink {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Creating a TUN device failed.
    #[error("{context}: {source}")]
    Tun {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: TunError,
    },
    /// Starting an emulated link failed.
    #[error("{context}: {source}")]
    Link {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: LinkError,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No host of that name in the lab.
    #[error("unknown host {0:?}")]
    UnknownHost(String),
    /// No link of that name in the lab.
    #[error("unknown link {0:?}")]
    UnknownLink(String),
    /// A program could not be started in a host.
    #[error("starting {program} in host {host}: {source}")]
    Spawn {
        /// The host.
        host: String,
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A daemon of the topology could not be started or died at once.
    #[error("{path} ({name}): {message}")]
    Daemon {
        /// The topology entry, e.g. `daemon[1]`.
        path: String,
        /// The daemon's name.
        name: String,
        /// What went wrong (with the end of its log if it died).
        message: String,
    },
    /// A state file could not be read or written.
    #[error("state file {path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The lab has been torn down already.
    #[error("lab {0} has been torn down")]
    TornDown(String),
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
        let context = context.into();
        move |source| LabError::Io { context, source }
    }

    pub(crate) fn netns(context: impl Into<String>) -> impl FnOnce(NetnsError) -> LabError {
        let context = context.into();
        move |source| LabError::Netns { context, source }
    }

    pub(crate) fn netlink(context: impl Into<String>) -> impl FnOnce(NetlinkError) -> LabError {
        let context = context.into();
        move |source| LabError::Netlink { context, source }
    }
}
