//! [`GroupAnnounce`]: a dynamically created group's configuration, sent by
//! the proxy that assigned it to every live proxy (and to each proxy that
//! comes up), so that a target can join it at any proxy, not only at the
//! creator. It carries the join credential, so it travels only sealed
//! under the inter-proxy key ([`crate::peer_auth`]).
//!
//! Body (after the common header):
//! ```text
//! 0        20         36       37      38     39      40         41        42        43         44
//! | group  | creator  | policy | scope | raps | bound | cred len | allow n | uri len | reserved | credential | allow (16 each) | uri
//! ```

use std::net::Ipv6Addr;

use super::{Error, GROUP_LEN, MAX_URI_LEN, Reader, Result, Writer};
use crate::group::{GroupAddr, GroupConfig, Policy};

/// Longest join credential in an announcement (as in configuration files).
pub const MAX_CREDENTIAL_LEN: usize = 64;
/// Most allow-list entries in an announcement.
pub const MAX_ANNOUNCE_ALLOW: usize = 16;
/// Most RAPs a group may ask for.
pub const MAX_RAPS: u8 = 16;

const FIXED_LEN: usize = GROUP_LEN + 16 + 8;

/// A created group, as announced between proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAnnounce {
    /// The group's configuration (credential at most
    /// [`MAX_CREDENTIAL_LEN`] bytes, allow-list at most [`MAX_ANNOUNCE_ALLOW`]).
    pub config: GroupConfig,
    /// The URI the group is bound to (at most [`MAX_URI_LEN`] bytes).
    pub uri: String,
    /// The proxy that assigned it from its block.
    pub creator: Ipv6Addr,
}

impl GroupAnnounce {
    /// Encoded body length.
    pub(super) fn body_len(&self) -> usize {
        FIXED_LEN + self.config.credential.len() + 16 * self.config.allow.len() + self.uri.len()
    }

    /// Checks every bound `emit` relies on.
    pub(super) fn check(&self) -> Result<()> {
        let c = &self.config;
        let bound = |what, value: usize, max| {
            if value > max {
                Err(Error::TooMany { what, value, max })
            } else {
                Ok(())
            }
        };
        bound("credential length", c.credential.len(), MAX_CREDENTIAL_LEN)?;
        bound("allow list", c.allow.len(), MAX_ANNOUNCE_ALLOW)?;
        bound("uri length", self.uri.len(), MAX_URI_LEN)?;
        if c.credential.is_empty() {
            return Err(Error::BadField("empty credential"));
        }
        if c.raps == 0 || c.raps > MAX_RAPS {
            return Err(Error::BadField("rap count"));
        }
        if c.scope_prefix_len > 128 || c.error_bound_pct > 100 {
            return Err(Error::BadField("scope or error bound"));
        }
        Ok(())
    }

    /// Writes the body; [`GroupAnnounce::check`] passed and the buffer is
    /// [`GroupAnnounce::body_len`] long.
    pub(super) fn emit_body(&self, w: &mut Writer<'_>) {
        let c = &self.config;
        w.group(&c.group);
        w.put(&self.creator.octets());
        // Lengths are bounded by check(): all below 256.
        w.put(&[
            c.policy.to_u8(),
            c.scope_prefix_len,
            c.raps,
            c.error_bound_pct,
            c.credential.len() as u8,
            c.allow.len() as u8,
            self.uri.len() as u8,
            0,
        ]);
        w.put(&c.credential);
        for a in &c.allow {
            w.put(&a.octets());
        }
        w.put(self.uri.as_bytes());
    }

    /// Parses a body: every length bounded before anything is allocated,
    /// the total length exact, every field in its domain.
    pub(super) fn parse_body(body: &[u8]) -> Result<Self> {
        let mut r = Reader { b: body, at: 0 };
        let group: GroupAddr = r.group()?;
        let creator = r.addr("creator")?;
        let policy = Policy::from_u8(r.u8("policy")?).ok_or(Error::BadField("policy"))?;
        let scope_prefix_len = r.u8("scope")?;
        let raps = r.u8("raps")?;
        let error_bound_pct = r.u8("error bound")?;
        let cred_len = usize::from(r.u8("credential length")?);
        let allow_n = usize::from(r.u8("allow count")?);
        let uri_len = usize::from(r.u8("uri length")?);
        let _reserved = r.u8("reserved")?;
        let bound = |what, value: usize, max| {
            if value > max {
                Err(Error::TooMany { what, value, max })
            } else {
                Ok(())
            }
        };
        bound("credential length", cred_len, MAX_CREDENTIAL_LEN)?;
        bound("allow list", allow_n, MAX_ANNOUNCE_ALLOW)?;
        bound("uri length", uri_len, MAX_URI_LEN)?;
        if body.len() != FIXED_LEN + cred_len + 16 * allow_n + uri_len {
            return Err(Error::BadLength {
                kind: "group announce",
                len: body.len(),
            });
        }
        let credential = r.take(cred_len, "credential")?.to_vec();
        let mut allow = Vec::with_capacity(allow_n);
        for _ in 0..allow_n {
            allow.push(r.addr("allow")?);
        }
        let uri = std::str::from_utf8(r.take(uri_len, "uri")?)
            .map_err(|_| Error::BadField("uri utf-8"))?
            .to_owned();
        let a = GroupAnnounce {
            config: GroupConfig {
                group,
                policy,
                scope_prefix_len,
                raps,
                error_bound_pct,
                credential,
                allow,
            },
            uri,
            creator,
        };
        a.check()?;
        Ok(a)
    }
}
