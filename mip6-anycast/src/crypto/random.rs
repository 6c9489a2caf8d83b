//! Injected randomness for the sans-IO crypto state (nonces, Kcn, cookies).
//!
//! RFC 6275 5.2.3 asks for nonces and Kcn from "a random number generator
//! that is known to have good randomness properties" (RFC 4086). Production
//! code passes [`SystemRandomSource`] (ring's `SystemRandom`, the OS CSPRNG);
//! tests and simulations pass [`DeterministicRandom`] or a closure so that
//! runs are reproducible.

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// The randomness source failed (the OS generator returned an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("randomness source failed")]
pub struct RandomError;

/// A source of random bytes.
///
/// Implemented by [`SystemRandomSource`], [`DeterministicRandom`] and by any
/// closure `FnMut(&mut [u8]) -> Result<(), RandomError>`.
pub trait RandomSource {
    /// Fills `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError>;
}

impl<F> RandomSource for F
where
    F: FnMut(&mut [u8]) -> Result<(), RandomError>,
{
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        self(dest)
    }
}

/// The operating system's CSPRNG through `ring::rand::SystemRandom`.
#[derive(Debug)]
pub struct SystemRandomSource(SystemRandom);

impl Default for SystemRandomSource {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemRandomSource {
    /// Creates the source (no I/O happens until the first `fill`).
    #[must_use]
    pub fn new() -> Self {
        Self(SystemRandom::new())
    }
}

impl RandomSource for SystemRandomSource {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        self.0.fill(dest).map_err(|_| RandomError)
    }
}

/// A reproducible byte stream for tests, simulations and labs: block `i` is
/// `SHA-256(seed | i as u64 big-endian)`.
///
/// **Not for production**: anyone who knows the seed knows every nonce and
/// Kcn. It exists so that protocol tests are deterministic.
#[derive(Clone)]
pub struct DeterministicRandom {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl DeterministicRandom {
    /// A stream determined entirely by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_be_bytes());
        Self::from_seed(s)
    }

    /// A stream determined entirely by a 32-byte seed.
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&self.seed);
        ctx.update(&self.counter.to_be_bytes());
        self.block = super::ct::first_n(ctx.finish().as_ref());
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl std::fmt::Debug for DeterministicRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeterministicRandom")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl RandomSource for DeterministicRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        for byte in dest.iter_mut() {
            if self.used >= self.block.len() {
                self.refill();
            }
            *byte = self.block.get(self.used).copied().unwrap_or_default();
            self.used += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_stream_is_reproducible_and_seed_dependent() {
        let mut a = DeterministicRandom::new(7);
        let mut b = DeterministicRandom::new(7);
        let mut c = DeterministicRandom::new(8);
        let (mut x, mut y, mut z) = ([0u8; 100], [0u8; 100], [0u8; 100]);
        a.fill(&mut x).unwrap();
        // Same stream even when read in differently sized pieces.
        b.fill(&mut y[..33]).unwrap();
        b.fill(&mut y[33..]).unwrap();
        c.fill(&mut z).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_ne!(x[..32], x[32..64]);
    }

    #[test]
    fn closures_are_sources() {
        let mut calls = 0;
        let mut src = |d: &mut [u8]| {
            calls += 1;
            d.fill(0xAB);
            Ok(())
        };
        let mut buf = [0u8; 4];
        RandomSource::fill(&mut src, &mut buf).unwrap();
        assert_eq!(buf, [0xAB; 4]);
        assert_eq!(calls, 1);
    }

    #[test]
    fn system_source_fills() {
        let mut s = SystemRandomSource::new();
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        s.fill(&mut a).unwrap();
        s.fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
