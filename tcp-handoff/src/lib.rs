#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod capture;
pub mod codec;
mod dump;
mod error;
pub mod fdpass;
mod handoff;
pub mod legacy;
mod restore;
pub mod segment;
mod state;
mod sys;

pub use capture::{Capture, CaptureStats, attach_shield, detach_shield, reinject};
pub use dump::{FreezeOptions, Frozen, connection_id, freeze};
pub use error::{DecodeError, Error, Result, ValidationError};
pub use handoff::{AppState, ConnectionHandoff, Handoff, LateSegments, read_frame, write_frame};
pub use restore::{
    Activated, ActivationReport, Paused, Resend, RestoreOptions, replay, restore, restore_paused,
};
pub use segment::CapturedSegment;
pub use state::{
    Buffers, ConnectionId, Keepalive, Limits, RepairWindow, SockOpts, TCP_STATE_VERSION,
    TcpOptions, TcpState, WindowScale,
};
