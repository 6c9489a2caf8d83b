//! The checks behind every fuzz target. They live in `checks.rs`, which
//! `mip6-anycast/tests/fuzz_corpus_regression.rs` includes as well, so the
//! committed crash and seed inputs replay through exactly the same code in
//! the normal test suite.

pub mod checks;
