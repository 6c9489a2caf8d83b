//! cargo-fuzz target `inspect_pcap`: see `src/checks.rs` (`checks::inspect_pcap`) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mip6_fuzz::checks::inspect_pcap(data));
