//! cargo-fuzz target `dest_opts`: see `src/checks.rs` (`checks::dest_opts`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::dest_opts(data));
