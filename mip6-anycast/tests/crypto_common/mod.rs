//! Helpers shared by the `crypto_*` integration tests.
#![allow(dead_code)]

use std::net::Ipv6Addr;

/// Decodes hex (test data only; panics on malformed text).
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Decodes hex into a fixed-size array.
pub fn hex_array<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

/// Parses an IPv6 address literal.
pub fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
