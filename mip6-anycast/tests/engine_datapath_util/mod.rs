//! Shared helpers of the `engine_datapath_*` tests: hand-built packets and
//! (for the namespace tests) the C - R - HA / K lab with an engine per node,
//! plus packet-socket capture and injection.
#![allow(dead_code)]

pub mod lab;
pub mod packets;
#[path = "../engine_sys_util/mod.rs"]
pub mod sys;
pub mod wire_tap;
