//! IPv6 prefixes as written in topology files: `2001:db8:1::10/64`.
//!
//! The address keeps its host bits (it is an interface address with its
//! on-link prefix length, as `ip -6 addr add` takes it); [`Ipv6Prefix::network`]
//! masks them off.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv6 address with a prefix length (0..=128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

/// Why a prefix string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("missing \"/LEN\" in {0:?}")]
    MissingLength(String),
    #[error("bad IPv6 address {0:?}")]
    BadAddress(String),
    #[error("bad prefix length {0:?} (0..=128)")]
    BadLength(String),
}

impl Ipv6Prefix {
    /// A prefix from an address and a length; `None` if `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        (len <= 128).then_some(Self { addr, len })
    }

    /// The address as written (host bits kept).
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `::/0`-style prefixes of length 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(len: u8) -> u128 {
        match len {
            0 => 0,
            l => u128::MAX << (128 - u32::from(l.min(128))),
        }
    }

    /// The network: the address with its host bits cleared.
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & Self::mask(self.len))
    }

    /// True if `addr` lies inside this prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        let m = Self::mask(self.len);
        u128::from(addr) & m == u128::from(self.addr) & m
    }

    /// True if the two prefixes share at least one address (one contains
    /// the other's network).
    pub fn overlaps(&self, other: &Ipv6Prefix) -> bool {
        let m = Self::mask(self.len.min(other.len));
        u128::from(self.addr) & m == u128::from(other.addr) & m
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| PrefixError::MissingLength(s.to_owned()))?;
        let addr: Ipv6Addr = a
            .trim()
            .parse()
            .map_err(|_| PrefixError::BadAddress(a.to_owned()))?;
        let len: u8 = l
            .trim()
            .parse()
            .map_err(|_| PrefixError::BadLength(l.to_owned()))?;
        Ipv6Prefix::new(addr, len).ok_or_else(|| PrefixError::BadLength(l.to_owned()))
    }
}

impl Serialize for Ipv6Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A route destination: a prefix or the word `default` (`::/0`).
pub(crate) mod route_dst {
    use super::Ipv6Prefix;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::Ipv6Addr;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv6Prefix, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "default" {
            return Ok(Ipv6Prefix {
                addr: Ipv6Addr::UNSPECIFIED,
                len: 0,
            });
        }
        s.parse().map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(p: &Ipv6Prefix, s: S) -> Result<S::Ok, S::Error> {
        if p.len == 0 {
            s.serialize_str("default")
        } else {
            s.collect_str(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let p: Ipv6Prefix = "2001:db8:1::10/64".parse().unwrap();
        assert_eq!(p.network(), "2001:db8:1::".parse::<Ipv6Addr>().unwrap());
        assert!(p.contains("2001:db8:1::ffff".parse().unwrap()));
        assert!(!p.contains("2001:db8:2::1".parse().unwrap()));
        let q: Ipv6Prefix = "2001:db8::/32".parse().unwrap();
        assert!(p.overlaps(&q) && q.overlaps(&p));
        let r: Ipv6Prefix = "2001:db8:2::/64".parse().unwrap();
        assert!(!p.overlaps(&r));
        let all: Ipv6Prefix = "::/0".parse().unwrap();
        assert!(all.contains("fe80::1".parse().unwrap()));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            "2001:db8::1".parse::<Ipv6Prefix>(),
            Err(PrefixError::MissingLength(_))
        ));
        assert!(matches!(
            "2001:db8::1/129".parse::<Ipv6Prefix>(),
            Err(PrefixError::BadLength(_))
        ));
        assert!(matches!(
            "10.0.0.1/8".parse::<Ipv6Prefix>(),
            Err(PrefixError::BadAddress(_))
        ));
        assert!(matches!(
            "::1/-3".parse::<Ipv6Prefix>(),
            Err(PrefixError::BadLength(_))
        ));
    }
}
