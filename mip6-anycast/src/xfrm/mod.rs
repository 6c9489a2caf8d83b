//! The kernel's Mobile IPv6 datapath through NETLINK_XFRM (kernels with
//! `CONFIG_IPV6_MIP6`): `route2` / `hao` states in mode `ro` and sub-type
//! policies, as the correspondent agent's `xfrm` backend programs them.
//!
//! - [`msg`]: typed builders of the requests and zero-copy views of the
//!   kernel's answers and `XFRM_MSG_REPORT`s.
//! - [`socket`]: request and report sockets.
//! - [`correspondent`]: a correspondent node's start-up entries, per
//!   binding states and policies, usage counters, the support probe.

pub mod correspondent;
pub mod msg;
pub mod socket;

pub use correspondent::{CorrespondentXfrm, XfrmUsage, probe};
pub use msg::HaoReportRepr;
pub use socket::{ReportSocket, XfrmSocket};
