//! cargo-fuzz target `rh2`: see `src/checks.rs` (`checks::rh2`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::rh2(data));
