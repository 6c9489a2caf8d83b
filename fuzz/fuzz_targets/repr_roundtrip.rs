//! cargo-fuzz target `repr_roundtrip`: see `src/checks.rs` (`checks::repr_roundtrip`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::repr_roundtrip(data));
