//! cargo-fuzz target `ip6ip6`: see `src/checks.rs` (`checks::ip6ip6`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::ip6ip6(data));
