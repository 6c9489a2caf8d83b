//! cargo-fuzz target `handoff_msg`: see `src/checks.rs` (`checks::handoff_msg`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::handoff_msg(data));
