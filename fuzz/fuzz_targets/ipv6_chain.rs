//! cargo-fuzz target `ipv6_chain`: see `src/checks.rs` (`checks::ipv6_chain`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::ipv6_chain(data));
