//! Constant-time helpers and small HMAC-SHA1 / SHA-1 wrappers over `ring`.
//!
//! Every tag this crate verifies is a *truncated* HMAC (96 bits, RFC 6275
//! 6.2.7 and RFC 4285 5.1), so `ring::hmac::verify`, which compares the full
//! 160-bit tag, cannot be used. [`ct_eq`] is our own comparison instead:
//!
//! * it looks at every byte, whatever the position of the first difference
//!   (no early exit): the differences are OR-ed into one accumulator;
//! * the accumulator goes through [`std::hint::black_box`] before the final
//!   test so the optimiser cannot turn the loop back into a short-circuit;
//! * the *lengths* are compared first and may return early: a tag's length
//!   is public (it is fixed by the wire format), only its contents are secret.

use ring::{digest, hmac};

/// HMAC-SHA1 as RFC 6275 and RFC 4285 use it (`HMAC_SHA1_FOR_LEGACY_USE_ONLY`
/// in ring: SHA-1 is legacy, but these RFCs mandate it).
pub(crate) const HMAC_SHA1: hmac::Algorithm = hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY;

/// Compares two byte strings in time independent of their contents.
///
/// Returns `false` at once when the lengths differ (lengths are public);
/// otherwise every byte is examined. See the module docs.
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// HMAC-SHA1 over the concatenation of `parts`, full 160-bit output.
///
/// Building the key costs two SHA-1 compressions; callers inside the crate
/// that reuse a key (the nonce table does, per Kcn) keep an [`hmac::Key`]
/// instead.
#[must_use]
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    hmac_sha1_with_key(&hmac::Key::new(HMAC_SHA1, key), parts)
}

/// HMAC-SHA1 with a prepared key over the concatenation of `parts`.
#[must_use]
pub(crate) fn hmac_sha1_with_key(key: &hmac::Key, parts: &[&[u8]]) -> [u8; 20] {
    let mut ctx = hmac::Context::with_key(key);
    for part in parts {
        ctx.update(part);
    }
    first_n(ctx.sign().as_ref())
}

/// SHA-1 over the concatenation of `parts`.
#[must_use]
pub(crate) fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for part in parts {
        ctx.update(part);
    }
    first_n(ctx.finish().as_ref())
}

/// `First(8 * N, bytes)`: the first `N` bytes of a digest (RFC 6275 5.2.5
/// notation). Digests here are always at least 20 bytes and `N <= 20`, so the
/// zero padding of a shorter input never happens in practice.
#[must_use]
pub(crate) fn first_n<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes.iter()) {
        *o = *b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_detects_difference_in_any_position() {
        let a = [0x55u8; 12];
        assert!(ct_eq(&a, &a));
        for i in 0..a.len() {
            let mut b = a;
            b[i] ^= 0x01;
            assert!(!ct_eq(&a, &b), "difference at byte {i} missed");
        }
    }

    #[test]
    fn ct_eq_rejects_length_mismatch() {
        assert!(!ct_eq(&[1, 2, 3], &[1, 2]));
        assert!(!ct_eq(&[], &[0]));
        assert!(ct_eq(&[], &[]));
    }
}
