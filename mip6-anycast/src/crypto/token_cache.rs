//! A bounded cache of keygen tokens per (nonce, address, kind).
//!
//! A correspondent verifying many Binding Updates from the same mobile nodes
//! recomputes the same keygen tokens over and over: both depend only on the
//! nonce (and its Kcn) and one address. Caching them saves two HMAC-SHA1 per
//! verification. The key is the nonce's *serial*, which unlike the 16-bit
//! index never wraps, so a cached token can never be served for a different
//! nonce or Kcn. Entries of expired nonces are dropped when the cache fills;
//! the size never exceeds the capacity given at construction, whatever
//! addresses an attacker sends. Use one cache per [`NonceTable`]: serials are
//! unique only within a table.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Instant;

use super::nonce_table::{NonceError, NonceTable};
use super::rr::{KeygenToken, NonceIndex, TokenKind};

/// Bounded keygen-token cache; see the module docs.
#[derive(Debug)]
pub struct KeygenTokenCache {
    map: HashMap<(u64, Ipv6Addr, TokenKind), KeygenToken>,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl KeygenTokenCache {
    /// A cache holding at most `capacity` tokens (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            map: HashMap::with_capacity(capacity.min(4096)),
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    /// The token of `kind` for `addr` under nonce `index`: from the cache if
    /// present and the nonce is still accepted, else computed and stored.
    /// Expiry is always checked against the table first.
    pub fn token(
        &mut self,
        table: &NonceTable,
        index: NonceIndex,
        addr: Ipv6Addr,
        kind: TokenKind,
        now: Instant,
    ) -> Result<KeygenToken, NonceError> {
        let entry = table.lookup(index, now)?;
        let key = (entry.serial(), addr, kind);
        if let Some(token) = self.map.get(&key) {
            self.hits += 1;
            return Ok(token.clone());
        }
        self.misses += 1;
        let token = entry.token(addr, kind);
        if self.map.len() >= self.capacity {
            let oldest = table.oldest_live_serial(now);
            self.map.retain(|(serial, _, _), _| *serial >= oldest);
            if self.map.len() >= self.capacity {
                self.map.clear();
            }
        }
        self.map.insert(key, token.clone());
        Ok(token)
    }

    /// Number of cached tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// `(hits, misses)` since construction.
    #[must_use]
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}
