//! cargo-fuzz target `failover_msg`: see `src/checks.rs` (`checks::failover_msg`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::failover_msg(data));
