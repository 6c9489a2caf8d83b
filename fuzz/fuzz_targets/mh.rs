//! cargo-fuzz target `mh`: see `src/checks.rs` (`checks::mh`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::mh(data));
