//! Groups as transport addresses (seed 001 3.1, slides 000: "identify anycast
//! groups using transport addresses, thousands of groups per IP address"),
//! their configuration, and dynamic assignment from per-proxy blocks bound
//! to a URI name.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

/// IANA protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// A group: anycast address `AA`, port `g` and transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupAddr {
    /// Anycast address (inside the prefix the proxies announce).
    pub addr: Ipv6Addr,
    /// Port `g`.
    pub port: u16,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
}

impl GroupAddr {
    /// A group; `None` for port 0 or another protocol than TCP/UDP.
    pub fn new(addr: Ipv6Addr, port: u16, proto: u8) -> Option<Self> {
        if port == 0 || (proto != PROTO_TCP && proto != PROTO_UDP) {
            return None;
        }
        Some(GroupAddr { addr, port, proto })
    }

    /// 20-byte key used by hashing (address, port, protocol).
    pub fn key_bytes(&self) -> [u8; 19] {
        let mut k = [0u8; 19];
        k[..16].copy_from_slice(&self.addr.octets());
        k[16..18].copy_from_slice(&self.port.to_be_bytes());
        k[18] = self.proto;
        k
    }
}

impl std::fmt::Display for GroupAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = if self.proto == PROTO_TCP {
            "tcp"
        } else {
            "udp"
        };
        write!(f, "[{}]:{}/{}", self.addr, self.port, p)
    }
}

/// How RAPs pick JAPs and JAPs pick targets (seed 003 3, issue 6 item 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// JAP nearest the IAP (RTT between proxies); targets by load.
    #[default]
    Proximity,
    /// JAPs weighted by target count, targets by fewest flows.
    Load,
    /// Uniformly random JAP and target.
    Random,
    /// Targets sharing the client's /`scope_prefix_len` prefix first.
    Scoped,
}

impl Policy {
    /// Wire code.
    pub fn to_u8(self) -> u8 {
        match self {
            Policy::Proximity => 0,
            Policy::Load => 1,
            Policy::Random => 2,
            Policy::Scoped => 3,
        }
    }

    /// From the wire code.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Policy::Proximity,
            1 => Policy::Load,
            2 => Policy::Random,
            3 => Policy::Scoped,
            _ => return None,
        })
    }
}

/// Per-group configuration, set by the group's creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfig {
    /// The transport address.
    pub group: GroupAddr,
    /// Selection policy.
    #[serde(default)]
    pub policy: Policy,
    /// Prefix length for [`Policy::Scoped`].
    #[serde(default = "default_scope")]
    pub scope_prefix_len: u8,
    /// Number of RAPs (3 or 4 in seed 001 3.2).
    #[serde(default = "default_raps")]
    pub raps: u8,
    /// Error bound of JAP reports, percent (0, 25, 50: seed 001 3.3).
    #[serde(default)]
    pub error_bound_pct: u8,
    /// Credential key for join/leave (hex in config files).
    #[serde(with = "hex_key")]
    pub credential: Vec<u8>,
    /// Targets allowed to join; empty means any holder of the credential.
    #[serde(default)]
    pub allow: Vec<Ipv6Addr>,
}

fn default_scope() -> u8 {
    64
}
fn default_raps() -> u8 {
    3
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(k: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let h: String = k.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&h)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 || s.len() > 128 {
            return Err(D::Error::custom(
                "credential: even number of hex digits, at most 64 bytes",
            ));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(D::Error::custom))
            .collect()
    }
}

/// Parses a key of at most 64 bytes written in hex.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) || s.len() > 128 || !s.is_ascii() {
        return Err("key: even number of hex digits, at most 64 bytes".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// A proxy's block for dynamic assignment: addresses `base + 0 .. base + addrs`
/// (in the last 32 bits) times ports `first_port ..= last_port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressBlock {
    /// First anycast address of the block.
    pub base: Ipv6Addr,
    /// Number of consecutive addresses.
    pub addrs: u32,
    /// First port.
    pub first_port: u16,
    /// Last port.
    pub last_port: u16,
}

impl AddressBlock {
    /// Whether `g`'s transport address lies in this block.
    pub fn contains(&self, g: &GroupAddr) -> bool {
        let (base, a) = (u128::from(self.base), u128::from(g.addr));
        a >= base
            && a - base < u128::from(self.addrs)
            && (self.first_port..=self.last_port).contains(&g.port)
    }
}

/// Why an assignment failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// Every transport address of the block is taken.
    #[error("address block exhausted")]
    Exhausted,
    /// The block is empty or inverted.
    #[error("empty address block")]
    Empty,
}

/// Dynamic assignment from one proxy's block, bound to URI names: asking
/// twice for one URI returns the same group.
#[derive(Debug, Clone)]
pub struct Assigner {
    block: AddressBlock,
    by_uri: HashMap<(String, u8), GroupAddr>,
    next: u64,
}

impl Assigner {
    /// An assigner over `block`.
    pub fn new(block: AddressBlock) -> Self {
        Assigner {
            block,
            by_uri: HashMap::new(),
            next: 0,
        }
    }

    fn capacity(&self) -> u64 {
        if self.block.last_port < self.block.first_port {
            return 0;
        }
        u64::from(self.block.addrs) * u64::from(self.block.last_port - self.block.first_port + 1)
    }

    /// Group bound to `uri`, assigning the next free transport address if new.
    /// Ports vary fastest, so one address carries thousands of groups.
    pub fn assign(&mut self, uri: &str, proto: u8) -> Result<GroupAddr, AssignError> {
        if let Some(g) = self.by_uri.get(&(uri.to_owned(), proto)) {
            return Ok(*g);
        }
        let cap = self.capacity();
        if cap == 0 {
            return Err(AssignError::Empty);
        }
        if self.next >= cap {
            return Err(AssignError::Exhausted);
        }
        let ports = u64::from(self.block.last_port - self.block.first_port + 1);
        let addr_ix = self.next / ports;
        let port_ix = self.next % ports;
        self.next += 1;
        let base = u128::from(self.block.base);
        let addr = Ipv6Addr::from(base.wrapping_add(u128::from(addr_ix)));
        // port_ix < ports <= 65536 and first_port + port_ix <= last_port.
        let port = self.block.first_port + port_ix as u16;
        let g = GroupAddr::new(addr, port, proto).ok_or(AssignError::Empty)?;
        self.by_uri.insert((uri.to_owned(), proto), g);
        Ok(g)
    }

    /// The group bound to `uri`, if assigned.
    pub fn lookup(&self, uri: &str, proto: u8) -> Option<GroupAddr> {
        self.by_uri.get(&(uri.to_owned(), proto)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_bound_to_uri_and_fills_ports_first() {
        let mut a = Assigner::new(AddressBlock {
            base: "2001:db8:aa::100".parse().unwrap(),
            addrs: 2,
            first_port: 5000,
            last_port: 5001,
        });
        let g1 = a.assign("svc://a", PROTO_TCP).unwrap();
        let g2 = a.assign("svc://b", PROTO_TCP).unwrap();
        let g3 = a.assign("svc://c", PROTO_TCP).unwrap();
        assert_eq!(a.assign("svc://a", PROTO_TCP).unwrap(), g1);
        assert_eq!(
            (g1.addr, g1.port),
            ("2001:db8:aa::100".parse().unwrap(), 5000)
        );
        assert_eq!(
            (g2.addr, g2.port),
            ("2001:db8:aa::100".parse().unwrap(), 5001)
        );
        assert_eq!(
            (g3.addr, g3.port),
            ("2001:db8:aa::101".parse().unwrap(), 5000)
        );
        a.assign("svc://d", PROTO_TCP).unwrap();
        assert_eq!(a.assign("svc://e", PROTO_TCP), Err(AssignError::Exhausted));
        assert_eq!(a.lookup("svc://c", PROTO_TCP), Some(g3));
        for g in [g1, g2, g3] {
            assert!(a.block.contains(&g));
        }
        let outside = [
            GroupAddr::new("2001:db8:aa::102".parse().unwrap(), 5000, PROTO_TCP).unwrap(),
            GroupAddr::new("2001:db8:aa::ff".parse().unwrap(), 5000, PROTO_TCP).unwrap(),
            GroupAddr::new("2001:db8:aa::100".parse().unwrap(), 5002, PROTO_TCP).unwrap(),
        ];
        for g in outside {
            assert!(!a.block.contains(&g), "{g}");
        }
    }

    #[test]
    fn groups_reject_port_zero_and_other_protocols() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert!(GroupAddr::new(a, 0, PROTO_TCP).is_none());
        assert!(GroupAddr::new(a, 80, 1).is_none());
        assert!(GroupAddr::new(a, 80, PROTO_UDP).is_some());
    }
}
