//! cargo-fuzz target `mh_packet`: see `src/checks.rs` (`checks::mh_packet`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::mh_packet(data));
