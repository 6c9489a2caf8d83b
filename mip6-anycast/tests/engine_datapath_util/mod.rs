//! Shared helpers of the `engine_datapath_*` tests: hand-built packets and
//! (for the namespace tests) the C - R - HA / K lab with an engine per node.
#![allow(dead_code)]

pub mod packets;
