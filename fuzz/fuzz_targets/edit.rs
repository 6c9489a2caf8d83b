//! cargo-fuzz target `edit`: see `src/checks.rs` (`checks::edit`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::edit(data));
