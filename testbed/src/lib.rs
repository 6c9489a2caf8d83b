//! `testbed` library: the topology model of a lab, the user-space emulated
//! link, the lab builder and process manager, and the scenario session that
//! the `testbed` binary's subcommands run on.

pub mod lab;
pub mod linkemu;
pub mod plot;
pub mod scenarios;
pub mod topology;
pub mod vm;
