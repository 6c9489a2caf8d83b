//! `testbed` library: the topology model of a lab and the user-space
//! emulated link. The `testbed` binary builds labs from these.

pub mod linkemu;
pub mod topology;
