//! Join/leave/create admission (issue 6 item 3): a per-group credential (a
//! truncated HMAC-SHA256 tag over the message), the allow-list set by the
//! group's creator, a per-target limit on groups, and replay protection by a
//! strictly increasing nonce per (group, target).

use std::collections::HashMap;
use std::net::Ipv6Addr;

use ring::hmac;

use crate::group::GroupAddr;
use crate::wire::{self, AckStatus, MessageRepr, TAG_LEN};

/// Tag over `tag_input` bytes under `key`.
pub fn tag(key: &[u8], tag_input: &[u8]) -> [u8; TAG_LEN] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let full = hmac::sign(&k, tag_input);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full.as_ref()[..TAG_LEN]);
    t
}

/// Constant-time comparison of two tags (no early exit).
pub fn tags_equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    let mut d = 0u8;
    for i in 0..TAG_LEN {
        d |= a[i] ^ b[i];
    }
    d == 0
}

/// Emits `msg` (a Join, Leave or Create) with its tag computed under `key`.
/// This is what a target runs; the proxy checks it with [`verify`].
pub fn signed_bytes(msg: &MessageRepr, key: &[u8]) -> wire::Result<Vec<u8>> {
    let mut bytes = msg.to_bytes()?;
    let input =
        wire::tag_input(&bytes).ok_or(wire::Error::BadField("not a signed message kind"))?;
    let t = tag(key, &input);
    let at =
        wire::tag_offset(msg.kind()).ok_or(wire::Error::BadField("not a signed message kind"))?;
    bytes
        .get_mut(at..at + TAG_LEN)
        .ok_or(wire::Error::BadField("tag offset"))?
        .copy_from_slice(&t);
    Ok(bytes)
}

/// Checks the tag carried in `bytes` (the raw message) under `key`.
pub fn verify(bytes: &[u8], carried: &[u8; TAG_LEN], key: &[u8]) -> bool {
    match wire::tag_input(bytes) {
        Some(input) => tags_equal(&tag(key, &input), carried),
        None => false,
    }
}

/// Admission state of one proxy as JAP.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Most groups one target may be a member of at this proxy.
    pub max_groups_per_target: usize,
    last_nonce: HashMap<(GroupAddr, Ipv6Addr), u64>,
    groups_of: HashMap<Ipv6Addr, usize>,
}

impl Admission {
    /// Admission with a per-target limit.
    pub fn new(max_groups_per_target: usize) -> Self {
        Admission {
            max_groups_per_target,
            last_nonce: HashMap::new(),
            groups_of: HashMap::new(),
        }
    }

    /// Decides a join or leave: `Ok` only if the tag verifies under
    /// `credential`, the target is allowed, the nonce is fresh and (for a
    /// join that adds a membership) the target is below its limit.
    /// Records the nonce only for accepted requests (a forgery cannot burn nonces).
    pub fn check(
        &mut self,
        raw: &[u8],
        m: &wire::Membership,
        credential: &[u8],
        allow: &[Ipv6Addr],
        is_new_membership: bool,
    ) -> AckStatus {
        if !verify(raw, &m.tag, credential) {
            return AckStatus::BadCredential;
        }
        if !allow.is_empty() && !allow.contains(&m.target) {
            return AckStatus::NotAllowed;
        }
        let key = (m.group, m.target);
        if self.last_nonce.get(&key).is_some_and(|n| *n >= m.nonce) {
            return AckStatus::Replay;
        }
        if is_new_membership
            && self.groups_of.get(&m.target).copied().unwrap_or(0) >= self.max_groups_per_target
        {
            return AckStatus::LimitReached;
        }
        self.last_nonce.insert(key, m.nonce);
        AckStatus::Ok
    }

    /// Checks a signed request other than join/leave (a handoff): tag
    /// under `credential` and a fresh nonce for (group, sender).
    pub fn check_signed(
        &mut self,
        raw: &[u8],
        group: GroupAddr,
        sender: Ipv6Addr,
        nonce: u64,
        carried: &[u8; TAG_LEN],
        credential: &[u8],
    ) -> AckStatus {
        if !verify(raw, carried, credential) {
            return AckStatus::BadCredential;
        }
        let key = (group, sender);
        if self.last_nonce.get(&key).is_some_and(|n| *n >= nonce) {
            return AckStatus::Replay;
        }
        self.last_nonce.insert(key, nonce);
        AckStatus::Ok
    }

    /// Counts a membership added (`true`) or removed for `target`.
    pub fn count(&mut self, target: Ipv6Addr, added: bool) {
        let c = self.groups_of.entry(target).or_insert(0);
        if added {
            *c += 1;
        } else {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.groups_of.remove(&target);
            }
        }
    }
}
