//! Who is in the anycast group: each member's name, care-of address, roles
//! and node-channel address, from configuration.

use std::collections::HashSet;
use std::net::{Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::codec::{CodecError, Dec, Enc};

/// Longest member name (octets of UTF-8).
pub const MAX_NAME_LEN: usize = 64;

/// What a member does in the group (DESIGN.md 5; seed 004 4.2.1, 4.2.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Roles {
    /// Holds the anycast address and runs the home tests for everyone.
    pub contact: bool,
    /// May take the anycast address over when the contact node leaves.
    pub backup: bool,
    /// Takes clients handed off by other members.
    pub acceptor: bool,
}

impl Roles {
    const CONTACT: u8 = 1;
    const BACKUP: u8 = 2;
    const ACCEPTOR: u8 = 4;

    /// The roles as a bit set (contact 1, backup 2, acceptor 4).
    #[must_use]
    pub fn bits(self) -> u8 {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        bit(self.contact, Self::CONTACT)
            | bit(self.backup, Self::BACKUP)
            | bit(self.acceptor, Self::ACCEPTOR)
    }

    /// From a bit set; `None` if an unknown bit is set.
    #[must_use]
    pub fn from_bits(bits: u8) -> Option<Self> {
        if bits & !(Self::CONTACT | Self::BACKUP | Self::ACCEPTOR) != 0 {
            return None;
        }
        Some(Self {
            contact: bits & Self::CONTACT != 0,
            backup: bits & Self::BACKUP != 0,
            acceptor: bits & Self::ACCEPTOR != 0,
        })
    }
}

/// A member as it introduces itself in the channel handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInfo {
    /// Unique name (1..=64 octets).
    pub name: String,
    /// Its unicast care-of address (source of its Binding Updates, outer
    /// address of member tunnels).
    pub coa: Ipv6Addr,
    /// Its roles.
    pub roles: Roles,
}

impl MemberInfo {
    /// Encoded form (the hello of the node channel): name (`u16` length +
    /// UTF-8), 16-octet care-of address, roles bit set.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.name(&self.name);
        e.addr(self.coa);
        e.u8(self.roles.bits());
        e.buf
    }

    /// Decodes [`MemberInfo::encode`]'s output; every length is checked
    /// before use and nothing may follow.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut d = Dec::new(bytes);
        let name = d.name("member name", MAX_NAME_LEN)?;
        if name.is_empty() {
            return Err(CodecError::BadValue {
                field: "member name",
            });
        }
        let coa = d.addr("care-of address")?;
        let roles =
            Roles::from_bits(d.u8("roles")?).ok_or(CodecError::BadValue { field: "roles" })?;
        d.finish()?;
        Ok(Self { name, coa, roles })
    }
}

/// A configured member: identity plus where its node channel listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    /// Identity.
    #[serde(flatten)]
    pub info: MemberInfo,
    /// Node-channel listening address (normally `[coa]:port`).
    pub channel: SocketAddr,
}

/// A problem in the member list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// A name is empty or longer than [`MAX_NAME_LEN`].
    #[error("member name {0:?} must be 1..=64 octets")]
    BadName(String),
    /// Two members share a name.
    #[error("member name {0:?} appears twice")]
    DuplicateName(String),
    /// Two members share a care-of address.
    #[error("care-of address {0} appears twice")]
    DuplicateCoa(Ipv6Addr),
    /// A care-of address is unspecified, loopback or multicast.
    #[error("member {name:?}: {coa} cannot be a care-of address")]
    BadCoa {
        /// The member.
        name: String,
        /// Its address.
        coa: Ipv6Addr,
    },
}

/// Checks a member name.
pub fn check_name(name: &str) -> Result<(), MemberError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(MemberError::BadName(name.to_string()));
    }
    Ok(())
}

/// The configured members of one group (including this node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    list: Vec<GroupMember>,
}

impl Members {
    /// Validates `list`: names 1..=64 octets and unique, care-of addresses
    /// unique and usable as unicast source addresses.
    pub fn new(list: Vec<GroupMember>) -> Result<Self, MemberError> {
        let mut names = HashSet::new();
        let mut coas = HashSet::new();
        for m in &list {
            check_name(&m.info.name)?;
            let c = m.info.coa;
            if c.is_unspecified() || c.is_multicast() || c.is_loopback() {
                return Err(MemberError::BadCoa {
                    name: m.info.name.clone(),
                    coa: c,
                });
            }
            if !names.insert(m.info.name.as_str()) {
                return Err(MemberError::DuplicateName(m.info.name.clone()));
            }
            if !coas.insert(c) {
                return Err(MemberError::DuplicateCoa(c));
            }
        }
        Ok(Self { list })
    }

    /// All members.
    #[must_use]
    pub fn all(&self) -> &[GroupMember] {
        &self.list
    }

    /// The member named `name`.
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<&GroupMember> {
        self.list.iter().find(|m| m.info.name == name)
    }

    /// The member with care-of address `coa`.
    #[must_use]
    pub fn by_coa(&self, coa: Ipv6Addr) -> Option<&GroupMember> {
        self.list.iter().find(|m| m.info.coa == coa)
    }

    /// True if `info` is exactly a configured member (name, care-of
    /// address and roles all match).
    #[must_use]
    pub fn knows(&self, info: &MemberInfo) -> bool {
        self.by_name(&info.name).is_some_and(|m| m.info == *info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, coa: &str) -> GroupMember {
        GroupMember {
            info: MemberInfo {
                name: name.into(),
                coa: coa.parse().unwrap(),
                roles: Roles {
                    acceptor: true,
                    ..Roles::default()
                },
            },
            channel: "[2001:db8::1]:7100".parse().unwrap(),
        }
    }

    #[test]
    fn roles_bits_roundtrip() {
        for bits in 0..8u8 {
            assert_eq!(Roles::from_bits(bits).unwrap().bits(), bits);
        }
        assert_eq!(Roles::from_bits(8), None);
    }

    #[test]
    fn member_info_codec_is_strict() {
        let info = m("contact-1", "2001:db8::1").info;
        let enc = info.encode();
        assert_eq!(MemberInfo::decode(&enc).unwrap(), info);
        for cut in 0..enc.len() {
            assert!(MemberInfo::decode(&enc[..cut]).is_err(), "cut {cut}");
        }
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(MemberInfo::decode(&long), Err(CodecError::TrailingBytes(1)));
        let mut roles = enc.clone();
        *roles.last_mut().unwrap() = 0x80;
        assert_eq!(
            MemberInfo::decode(&roles),
            Err(CodecError::BadValue { field: "roles" })
        );
        // A declared name length over the limit fails before any read.
        let mut forged = vec![0xff, 0xff];
        forged.extend_from_slice(&[b'a'; 32]);
        assert!(matches!(
            MemberInfo::decode(&forged),
            Err(CodecError::TooLong { .. })
        ));
    }

    #[test]
    fn member_list_is_validated() {
        let ok = Members::new(vec![m("k", "2001:db8::1"), m("a", "2001:db8::2")]).unwrap();
        assert!(ok.knows(&m("a", "2001:db8::2").info));
        assert!(!ok.knows(&m("a", "2001:db8::3").info));
        assert_eq!(
            ok.by_coa("2001:db8::1".parse().unwrap()).unwrap().info.name,
            "k"
        );
        assert!(matches!(
            Members::new(vec![m("k", "2001:db8::1"), m("k", "2001:db8::2")]),
            Err(MemberError::DuplicateName(_))
        ));
        assert!(matches!(
            Members::new(vec![m("k", "2001:db8::1"), m("a", "2001:db8::1")]),
            Err(MemberError::DuplicateCoa(_))
        ));
        assert!(matches!(
            Members::new(vec![m("", "2001:db8::1")]),
            Err(MemberError::BadName(_))
        ));
        assert!(matches!(
            Members::new(vec![m("k", "::1")]),
            Err(MemberError::BadCoa { .. })
        ));
    }
}
