//! NETLINK_XFRM messages (`linux/xfrm.h`) for Mobile IPv6 route
//! optimization: typed builders for `XFRM_MSG_NEWSA` / `DELSA` / `GETSA` /
//! `NEWPOLICY` / `DELPOLICY` with `route2` (IPPROTO_ROUTING) and `hao`
//! (IPPROTO_DSTOPTS) states in mode `ro`, sub-type policies, and zero-copy
//! views of what the kernel sends back (`XFRM_MSG_REPORT`, a `GETSA`
//! answer, `NLMSG_ERROR`).
//!
//! Kernel structs are host-endian except ports and SPIs (network order);
//! the layouts below are those of x86_64 and every other Linux ABI whose
//! `u64` is 8-aligned (offsets noted per field). The rust-netlink family's
//! `netlink-packet-xfrm` (0.3) targets IPsec and is built on
//! `netlink-packet-core` 0.7, two releases behind the 0.9 the workspace
//! uses (a second copy of the core, anyhow-typed errors); five fixed
//! layouts are less code than bridging the two, hence these builders.

use std::net::Ipv6Addr;

/// `NETLINK_XFRM`.
pub const NETLINK_XFRM: isize = 6;
/// `XFRMNLGRP_REPORT`: the multicast group of `XFRM_MSG_REPORT`.
pub const XFRMNLGRP_REPORT: u32 = 6;

/// Message types (`XFRM_MSG_*`).
pub mod msg_type {
    /// Add a state.
    pub const NEWSA: u16 = 0x10;
    /// Delete a state.
    pub const DELSA: u16 = 0x11;
    /// Get a state.
    pub const GETSA: u16 = 0x12;
    /// Add a policy.
    pub const NEWPOLICY: u16 = 0x13;
    /// Delete a policy.
    pub const DELPOLICY: u16 = 0x14;
    /// Replace or add a policy.
    pub const UPDPOLICY: u16 = 0x19;
    /// Replace or add a state.
    pub const UPDSA: u16 = 0x1a;
    /// Delete every state of one protocol.
    pub const FLUSHSA: u16 = 0x1c;
    /// Delete every policy of one type.
    pub const FLUSHPOLICY: u16 = 0x1d;
    /// A packet the SPD rejected (e.g. a Home Address option without a
    /// binding).
    pub const REPORT: u16 = 0x20;
}

/// Attribute types (`XFRMA_*`).
pub mod attr {
    /// Templates of a policy.
    pub const TMPL: u16 = 5;
    /// Source address of a state id.
    pub const SRCADDR: u16 = 13;
    /// Care-of address of a `route2` / `hao` state.
    pub const COADDR: u16 = 14;
    /// Last use of a state (seconds, Unix time).
    pub const LASTUSED: u16 = 15;
    /// Policy type (main / sub).
    pub const POLICY_TYPE: u16 = 16;
}

/// `IPPROTO_ROUTING`: the `route2` state (Type 2 Routing Header).
pub const PROTO_ROUTE2: u8 = 43;
/// `IPPROTO_DSTOPTS`: the `hao` state (Home Address option).
pub const PROTO_HAO: u8 = 60;
/// `IPPROTO_MH`.
pub const PROTO_MH: u8 = 135;
/// `IPPROTO_ICMPV6`.
pub const PROTO_ICMPV6: u8 = 58;
/// `XFRM_MODE_ROUTEOPTIMIZATION`.
pub const MODE_RO: u8 = 2;
/// `XFRM_STATE_WILDRECV`: a `hao` state accepting any home address.
pub const STATE_WILDRECV: u8 = 8;
/// `XFRM_POLICY_TYPE_SUB`: Mobile IPv6 policies live in the sub policy
/// database, looked up before the main (IPsec) one.
pub const POLICY_TYPE_SUB: u8 = 1;
const AF_INET6: u16 = 10;
const XFRM_INF: u64 = u64::MAX;

/// Policy direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// `XFRM_POLICY_IN`.
    In = 0,
    /// `XFRM_POLICY_OUT`.
    Out = 1,
}

/// Sizes of the kernel structs.
pub mod size {
    /// `struct nlmsghdr`.
    pub const NLMSGHDR: usize = 16;
    /// `struct xfrm_selector`.
    pub const SELECTOR: usize = 56;
    /// `struct xfrm_usersa_info`.
    pub const USERSA_INFO: usize = 224;
    /// `struct xfrm_usersa_id`.
    pub const USERSA_ID: usize = 24;
    /// `struct xfrm_userpolicy_info`.
    pub const USERPOLICY_INFO: usize = 168;
    /// `struct xfrm_userpolicy_id`.
    pub const USERPOLICY_ID: usize = 64;
    /// `struct xfrm_user_tmpl`.
    pub const USER_TMPL: usize = 64;
    /// `struct xfrm_userpolicy_type`.
    pub const USERPOLICY_TYPE: usize = 6;
    /// `struct xfrm_user_report`.
    pub const USER_REPORT: usize = 60;
}

/// Errors of the views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XfrmMsgError {
    /// Shorter than its fixed part or than a length it declares.
    #[error("truncated XFRM message")]
    Truncated,
    /// Not the message type the view is for.
    #[error("unexpected message type {0}")]
    Type(u16),
    /// Not an IPv6 selector.
    #[error("selector family {0} is not AF_INET6")]
    Family(u16),
}

/// An `xfrm_selector` for IPv6 (`/128` or wildcard addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    /// Destination (`::` = any).
    pub daddr: Ipv6Addr,
    /// Source (`::` = any).
    pub saddr: Ipv6Addr,
    /// Upper-layer protocol (0 = any).
    pub proto: u8,
    /// ICMPv6 type / MH type in the source port field (`None` = any).
    pub sport: Option<u16>,
    /// Source port mask override (when not all ones), e.g. 0x80 for
    /// "every ICMPv6 error".
    pub sport_mask: Option<u16>,
}

impl Selector {
    /// Any packet from `saddr` to `daddr` (`::` = any).
    #[must_use]
    pub fn between(daddr: Ipv6Addr, saddr: Ipv6Addr) -> Selector {
        Selector {
            daddr,
            saddr,
            proto: 0,
            sport: None,
            sport_mask: None,
        }
    }

    /// Any address, protocol `proto`, type `ty` (MH type, ICMPv6 type).
    #[must_use]
    pub fn proto_type(proto: u8, ty: Option<u16>) -> Selector {
        Selector {
            proto,
            sport: ty,
            ..Selector::between(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED)
        }
    }

    fn emit(&self, b: &mut [u8]) {
        b[..16].copy_from_slice(&self.daddr.octets());
        b[16..32].copy_from_slice(&self.saddr.octets());
        if let Some(t) = self.sport {
            b[36..38].copy_from_slice(&t.to_be_bytes());
            let mask = self.sport_mask.unwrap_or(u16::MAX);
            b[38..40].copy_from_slice(&mask.to_be_bytes());
        } else if let Some(mask) = self.sport_mask {
            b[38..40].copy_from_slice(&mask.to_be_bytes());
        }
        b[40..42].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[42] = if self.daddr.is_unspecified() { 0 } else { 128 };
        b[43] = if self.saddr.is_unspecified() { 0 } else { 128 };
        b[44] = self.proto;
    }

    fn parse(b: &[u8]) -> Result<Selector, XfrmMsgError> {
        let b = b.get(..size::SELECTOR).ok_or(XfrmMsgError::Truncated)?;
        let fam = u16::from_ne_bytes([b[40], b[41]]);
        if fam != AF_INET6 {
            return Err(XfrmMsgError::Family(fam));
        }
        let sport_mask = u16::from_be_bytes([b[38], b[39]]);
        Ok(Selector {
            daddr: addr(&b[..16]),
            saddr: addr(&b[16..32]),
            proto: b[44],
            sport: (sport_mask != 0).then(|| u16::from_be_bytes([b[36], b[37]])),
            sport_mask: (sport_mask != 0 && sport_mask != u16::MAX).then_some(sport_mask),
        })
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

fn infinite_lifetime(b: &mut [u8]) {
    // soft/hard byte and packet limits: the first four u64 of
    // xfrm_lifetime_cfg; expiry times stay 0 (none).
    for i in 0..4 {
        b[i * 8..i * 8 + 8].copy_from_slice(&XFRM_INF.to_ne_bytes());
    }
}

/// A netlink message being built: header, fixed part, attributes.
#[derive(Debug, Clone)]
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    fn new(ty: u16, flags: u16, fixed: usize) -> Request {
        let mut buf = vec![0u8; size::NLMSGHDR + fixed];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        // NLM_F_REQUEST | NLM_F_ACK | flags
        buf[6..8].copy_from_slice(&(0x1 | 0x4 | flags).to_ne_bytes());
        let mut r = Request { buf };
        r.fix_len();
        r
    }

    fn fixed(&mut self) -> &mut [u8] {
        &mut self.buf[size::NLMSGHDR..]
    }

    fn fix_len(&mut self) {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(mut self, ty: u16, data: &[u8]) -> Request {
        let len = 4 + data.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
        self.fix_len();
        self
    }

    /// Sets the sequence number; returns the bytes to send.
    #[must_use]
    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }

    /// The message type.
    #[must_use]
    pub fn msg_type(&self) -> u16 {
        u16::from_ne_bytes([self.buf[4], self.buf[5]])
    }

    /// `XFRM_MSG_NEWSA` (or `UPDSA` with `replace`) of a route
    /// optimization state: `proto` [`PROTO_ROUTE2`] or [`PROTO_HAO`],
    /// state addresses `daddr` / `saddr` (also its selector), care-of
    /// address `coa`, `flags` (e.g. [`STATE_WILDRECV`]).
    #[must_use]
    pub fn new_ro_state(
        proto: u8,
        daddr: Ipv6Addr,
        saddr: Ipv6Addr,
        coa: Ipv6Addr,
        flags: u8,
        replace: bool,
    ) -> Request {
        let (ty, f) = if replace {
            (msg_type::UPDSA, 0x100) // NLM_F_REPLACE
        } else {
            (msg_type::NEWSA, 0x400 | 0x200) // NLM_F_CREATE | NLM_F_EXCL
        };
        let mut r = Request::new(ty, f, size::USERSA_INFO);
        let b = r.fixed();
        Selector::between(daddr, saddr).emit(&mut b[..size::SELECTOR]);
        // xfrm_id at 56: daddr, spi (0), proto at 56+20.
        b[56..72].copy_from_slice(&daddr.octets());
        b[76] = proto;
        b[80..96].copy_from_slice(&saddr.octets());
        infinite_lifetime(&mut b[96..160]);
        b[212..214].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[214] = MODE_RO;
        b[216] = flags;
        r.attr(attr::COADDR, &coa.octets())
    }

    fn usersa_id(ty: u16, proto: u8, daddr: Ipv6Addr, saddr: Ipv6Addr) -> Request {
        let mut r = Request::new(ty, 0, size::USERSA_ID);
        let b = r.fixed();
        b[..16].copy_from_slice(&daddr.octets());
        b[20..22].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[22] = proto;
        r.attr(attr::SRCADDR, &saddr.octets())
    }

    /// `XFRM_MSG_DELSA` of the state (`proto`, `daddr`, `saddr`).
    #[must_use]
    pub fn del_state(proto: u8, daddr: Ipv6Addr, saddr: Ipv6Addr) -> Request {
        Request::usersa_id(msg_type::DELSA, proto, daddr, saddr)
    }

    /// `XFRM_MSG_GETSA` of the state (`proto`, `daddr`, `saddr`); the
    /// answer is read with [`SaInfo`].
    #[must_use]
    pub fn get_state(proto: u8, daddr: Ipv6Addr, saddr: Ipv6Addr) -> Request {
        let mut r = Request::usersa_id(msg_type::GETSA, proto, daddr, saddr);
        // A GET is answered with the state itself, not an ACK.
        let flags = u16::from_ne_bytes([r.buf[6], r.buf[7]]) & !0x4;
        r.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        r
    }

    /// `XFRM_MSG_NEWPOLICY` (or `UPDPOLICY`) of a sub-type policy:
    /// `sel`, direction, priority (lower wins), allow, and optional
    /// templates (`None`: no transformation, a bypass).
    #[must_use]
    pub fn new_policy(
        sel: &Selector,
        dir: Dir,
        priority: u32,
        tmpl: Option<Template>,
        replace: bool,
    ) -> Request {
        let (ty, f) = if replace {
            (msg_type::UPDPOLICY, 0x100)
        } else {
            (msg_type::NEWPOLICY, 0x400 | 0x200)
        };
        let mut r = Request::new(ty, f, size::USERPOLICY_INFO);
        let b = r.fixed();
        sel.emit(&mut b[..size::SELECTOR]);
        infinite_lifetime(&mut b[56..120]);
        b[152..156].copy_from_slice(&priority.to_ne_bytes());
        b[160] = dir as u8;
        // action ALLOW (0), flags 0, share ANY (0).
        let mut r = r.attr(attr::POLICY_TYPE, &policy_type(POLICY_TYPE_SUB));
        if let Some(t) = tmpl {
            r = r.attr(attr::TMPL, &t.to_bytes());
        }
        r
    }

    /// `XFRM_MSG_FLUSHSA`: every state of `proto` (`xfrm_usersa_flush`).
    #[must_use]
    pub fn flush_states(proto: u8) -> Request {
        let mut r = Request::new(msg_type::FLUSHSA, 0, 4);
        r.fixed()[0] = proto;
        r
    }

    /// `XFRM_MSG_FLUSHPOLICY` of every sub-type policy.
    #[must_use]
    pub fn flush_sub_policies() -> Request {
        Request::new(msg_type::FLUSHPOLICY, 0, 0)
            .attr(attr::POLICY_TYPE, &policy_type(POLICY_TYPE_SUB))
    }

    /// `XFRM_MSG_DELPOLICY` of the sub-type policy (`sel`, `dir`).
    #[must_use]
    pub fn del_policy(sel: &Selector, dir: Dir) -> Request {
        let mut r = Request::new(msg_type::DELPOLICY, 0, size::USERPOLICY_ID);
        let b = r.fixed();
        sel.emit(&mut b[..size::SELECTOR]);
        b[60] = dir as u8;
        r.attr(attr::POLICY_TYPE, &policy_type(POLICY_TYPE_SUB))
    }
}

fn policy_type(ty: u8) -> [u8; size::USERPOLICY_TYPE] {
    [ty, 0, 0, 0, 0, 0]
}

/// The value of socket option `IPV6_XFRM_POLICY` that makes a socket's
/// output bypass the security policy database (an allow policy without
/// templates): a socket sending complete Mobility Header packets (RH2
/// already in place) must not get a second RH2 from a `route2` state.
#[must_use]
pub fn socket_bypass_policy() -> [u8; size::USERPOLICY_INFO] {
    let mut b = [0u8; size::USERPOLICY_INFO];
    Selector::between(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED).emit(&mut b[..size::SELECTOR]);
    infinite_lifetime(&mut b[56..120]);
    b[160] = Dir::Out as u8;
    b
}

/// A policy template (`xfrm_user_tmpl`) of a route optimization state:
/// optional, so packets of flows without a state still pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// [`PROTO_ROUTE2`] or [`PROTO_HAO`].
    pub proto: u8,
    /// State destination (`::` = any).
    pub daddr: Ipv6Addr,
    /// State source (`::` = any).
    pub saddr: Ipv6Addr,
}

impl Template {
    fn to_bytes(self) -> [u8; size::USER_TMPL] {
        let mut b = [0u8; size::USER_TMPL];
        b[..16].copy_from_slice(&self.daddr.octets());
        b[20] = self.proto;
        b[24..26].copy_from_slice(&AF_INET6.to_ne_bytes());
        b[28..44].copy_from_slice(&self.saddr.octets());
        b[48] = MODE_RO;
        b[50] = 1; // optional
        b
    }
}

/// Attributes after a fixed part: (type, payload), bounded by the buffer.
fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
        let ty = u16::from_ne_bytes([*b.get(2)?, *b.get(3)?]) & 0x3fff;
        if len < 4 {
            return None;
        }
        let payload = b.get(4..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((ty, payload))
    })
}

/// A netlink message in a received buffer: type and payload.
#[derive(Debug, Clone, Copy)]
pub struct NlMsg<'a> {
    /// `nlmsg_type`.
    pub msg_type: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// After the header.
    pub payload: &'a [u8],
}

/// The netlink messages in `buf` (stops at the first malformed one).
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = NlMsg<'_>> {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        if len < size::NLMSGHDR {
            return None;
        }
        let m = buf.get(..len)?;
        let msg_type = u16::from_ne_bytes([m[4], m[5]]);
        let seq = u32::from_ne_bytes([m[8], m[9], m[10], m[11]]);
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some(NlMsg {
            msg_type,
            seq,
            payload: &m[size::NLMSGHDR..],
        })
    })
}

/// `NLMSG_ERROR`'s error code (0 = ACK), or `None` if `m` is another
/// message or truncated.
#[must_use]
pub fn error_code(m: &NlMsg<'_>) -> Option<i32> {
    (m.msg_type == 2).then_some(())?;
    Some(i32::from_ne_bytes(m.payload.get(..4)?.try_into().ok()?))
}

/// Zero-copy view of an `xfrm_usersa_info` and its attributes (the answer
/// to `XFRM_MSG_GETSA`).
#[derive(Debug, Clone, Copy)]
pub struct SaInfo<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SaInfo<T> {
    /// Wraps without checking.
    pub fn new_unchecked(buffer: T) -> Self {
        SaInfo { buffer }
    }

    /// Wraps after checking the fixed part is there.
    pub fn new_checked(buffer: T) -> Result<Self, XfrmMsgError> {
        if buffer.as_ref().len() < size::USERSA_INFO {
            return Err(XfrmMsgError::Truncated);
        }
        Ok(SaInfo { buffer })
    }

    fn u64_at(&self, off: usize) -> u64 {
        self.buffer
            .as_ref()
            .get(off..off + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_ne_bytes)
    }

    /// `id.proto`.
    pub fn proto(&self) -> u8 {
        self.buffer.as_ref().get(76).copied().unwrap_or(0)
    }

    /// `curlft.bytes`.
    pub fn bytes(&self) -> u64 {
        self.u64_at(160)
    }

    /// `curlft.packets`: packets that went through the state.
    pub fn packets(&self) -> u64 {
        self.u64_at(168)
    }

    /// `XFRMA_LASTUSED` (Unix seconds; 0 or absent: never used).
    pub fn last_used(&self) -> Option<u64> {
        let rest = self.buffer.as_ref().get(size::USERSA_INFO..)?;
        attributes(rest)
            .find(|(t, _)| *t == attr::LASTUSED)
            .and_then(|(_, p)| p.get(..8)?.try_into().ok())
            .map(u64::from_ne_bytes)
            .filter(|t| *t != 0)
    }

    /// `XFRMA_COADDR`.
    pub fn coaddr(&self) -> Option<Ipv6Addr> {
        let rest = self.buffer.as_ref().get(size::USERSA_INFO..)?;
        attributes(rest)
            .find(|(t, _)| *t == attr::COADDR)
            .and_then(|(_, p)| Some(addr(p.get(..16)?)))
    }
}

/// Zero-copy view of an `XFRM_MSG_REPORT` payload: `xfrm_user_report`
/// (protocol + selector of the rejected flow) and its attributes.
#[derive(Debug, Clone, Copy)]
pub struct Report<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Report<T> {
    /// Wraps without checking.
    pub fn new_unchecked(buffer: T) -> Self {
        Report { buffer }
    }

    /// Wraps after checking the fixed part is there.
    pub fn new_checked(buffer: T) -> Result<Self, XfrmMsgError> {
        if buffer.as_ref().len() < size::USER_REPORT {
            return Err(XfrmMsgError::Truncated);
        }
        Ok(Report { buffer })
    }

    /// The transformation that rejected the packet ([`PROTO_HAO`] for a
    /// Home Address option without a binding).
    pub fn proto(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0)
    }

    /// The rejected flow.
    pub fn selector(&self) -> Result<Selector, XfrmMsgError> {
        Selector::parse(
            self.buffer
                .as_ref()
                .get(4..)
                .ok_or(XfrmMsgError::Truncated)?,
        )
    }

    /// `XFRMA_COADDR`: for a `hao` report, the care-of address (the
    /// packet's source before the kernel swapped in the home address).
    pub fn coaddr(&self) -> Option<Ipv6Addr> {
        let rest = self.buffer.as_ref().get(size::USER_REPORT..)?;
        attributes(rest)
            .find(|(t, _)| *t == attr::COADDR)
            .and_then(|(_, p)| Some(addr(p.get(..16)?)))
    }
}

/// A Home Address option the kernel found no binding for (RFC 6275
/// 9.3.1), from an `XFRM_MSG_REPORT`: the correspondent answers with a
/// Binding Error to `coa` (9.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaoReportRepr {
    /// The packet's source: the care-of address.
    pub coa: Ipv6Addr,
    /// The home address in the option.
    pub hoa: Ipv6Addr,
    /// Our address it was sent to.
    pub cn: Ipv6Addr,
    /// Upper-layer protocol of the packet.
    pub proto: u8,
}

impl HaoReportRepr {
    /// Parses a report; `Ok(None)` when it is not about a Home Address
    /// option (another transformation, or no care-of address given).
    pub fn parse<T: AsRef<[u8]>>(r: &Report<T>) -> Result<Option<HaoReportRepr>, XfrmMsgError> {
        if r.proto() != PROTO_HAO {
            return Ok(None);
        }
        let sel = r.selector()?;
        Ok(r.coaddr().map(|coa| HaoReportRepr {
            coa,
            hoa: sel.saddr,
            cn: sel.daddr,
            proto: sel.proto,
        }))
    }

    /// Bytes of the payload (`xfrm_user_report` + `XFRMA_COADDR`), as
    /// the kernel sends it.
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        size::USER_REPORT + 20
    }

    /// Writes the payload into `out` (at least [`Self::buffer_len`] bytes).
    pub fn emit(&self, out: &mut Report<&mut [u8]>) {
        let b: &mut [u8] = out.buffer;
        b[0] = PROTO_HAO;
        Selector {
            proto: self.proto,
            ..Selector::between(self.cn, self.hoa)
        }
        .emit(&mut b[4..4 + size::SELECTOR]);
        let a = &mut b[size::USER_REPORT..size::USER_REPORT + 20];
        a[..2].copy_from_slice(&20u16.to_ne_bytes());
        a[2..4].copy_from_slice(&attr::COADDR.to_ne_bytes());
        a[4..20].copy_from_slice(&self.coa.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn state_layout() {
        let m = Request::new_ro_state(
            PROTO_ROUTE2,
            a("2001:db8:100::1"),
            a("2001:db8:1::10"),
            a("2001:db8:3::10"),
            0,
            false,
        )
        .finish(7);
        // header + usersa_info + COADDR attribute
        assert_eq!(m.len(), 16 + 224 + 20);
        assert_eq!(u32::from_ne_bytes(m[..4].try_into().unwrap()), 260);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), msg_type::NEWSA);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        let p = &m[16..];
        assert_eq!(addr(&p[..16]), a("2001:db8:100::1"));
        assert_eq!((p[42], p[43]), (128, 128));
        assert_eq!(addr(&p[56..72]), a("2001:db8:100::1"));
        assert_eq!(p[76], 43);
        assert_eq!(addr(&p[80..96]), a("2001:db8:1::10"));
        assert_eq!(p[214], MODE_RO);
        let attrs: Vec<_> = attributes(&p[224..]).collect();
        assert_eq!(
            attrs,
            vec![(attr::COADDR, &a("2001:db8:3::10").octets()[..])]
        );
    }

    #[test]
    fn policy_layout() {
        let sel = Selector::proto_type(PROTO_MH, Some(5));
        let m = Request::new_policy(
            &sel,
            Dir::In,
            8,
            Some(Template {
                proto: PROTO_HAO,
                daddr: Ipv6Addr::UNSPECIFIED,
                saddr: Ipv6Addr::UNSPECIFIED,
            }),
            false,
        )
        .finish(1);
        assert_eq!(m.len(), 16 + 168 + 12 + 68);
        let p = &m[16..];
        assert_eq!(Selector::parse(p).unwrap(), sel);
        assert_eq!(&p[36..40], &[0, 5, 0xff, 0xff]);
        assert_eq!(p[160], 0);
        let attrs: Vec<_> = attributes(&p[168..]).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].0, attr::POLICY_TYPE);
        assert_eq!(attrs[0].1[0], POLICY_TYPE_SUB);
        assert_eq!(attrs[1].0, attr::TMPL);
        assert_eq!(attrs[1].1.len(), 64);
        assert_eq!(attrs[1].1[20], PROTO_HAO);
        assert_eq!(attrs[1].1[50], 1);
        let d = Request::del_policy(&sel, Dir::Out).finish(2);
        assert_eq!(d.len(), 16 + 64 + 12);
        assert_eq!(d[16 + 60], 1);
    }

    #[test]
    fn report_round_trip_and_truncation() {
        let r = HaoReportRepr {
            coa: a("2001:db8:3::10"),
            hoa: a("2001:db8:100::1"),
            cn: a("2001:db8:1::10"),
            proto: 6,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut Report::new_unchecked(&mut buf[..]));
        let v = Report::new_checked(&buf[..]).unwrap();
        assert_eq!(HaoReportRepr::parse(&v).unwrap(), Some(r));
        for n in 0..buf.len() {
            match Report::new_checked(&buf[..n]) {
                Err(e) => assert_eq!(e, XfrmMsgError::Truncated),
                Ok(v) => assert_eq!(HaoReportRepr::parse(&v).unwrap(), None, "{n}"),
            }
        }
        let mut other = buf.clone();
        other[0] = PROTO_ROUTE2;
        assert_eq!(
            HaoReportRepr::parse(&Report::new_checked(&other[..]).unwrap()).unwrap(),
            None
        );
        let mut v4 = buf.clone();
        v4[44..46].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(
            HaoReportRepr::parse(&Report::new_checked(&v4[..]).unwrap()),
            Err(XfrmMsgError::Family(2))
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(r) = Report::new_checked(&b[..]) {
                let _ = HaoReportRepr::parse(&r);
            }
            for m in messages(&b) {
                let _ = error_code(&m);
                let _ = Report::new_checked(m.payload).map(|r| r.coaddr());
            }
            if let Ok(sa) = SaInfo::new_checked(&b[..]) {
                let _ = (sa.packets(), sa.bytes(), sa.last_used(), sa.coaddr(), sa.proto());
            }
            let _ = attributes(&b).count();
        }
    }

    #[test]
    fn hostile_attributes_and_messages() {
        // Lengths below 4, past the end, odd: no panic, iteration stops.
        for junk in [
            &[0u8, 0, 0, 0][..],
            &[3, 0, 14, 0][..],
            &[200, 0, 14, 0, 1, 2][..],
            &[5, 0][..],
        ] {
            assert!(attributes(junk).count() <= 1);
            assert_eq!(messages(junk).count(), 0);
        }
        let ack = {
            let mut m = vec![0u8; 36];
            m[..4].copy_from_slice(&36u32.to_ne_bytes());
            m[4..6].copy_from_slice(&2u16.to_ne_bytes());
            m[16..20].copy_from_slice(&(-17i32).to_ne_bytes());
            m
        };
        let msgs: Vec<_> = messages(&ack).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(error_code(&msgs[0]), Some(-17));
        let sa = SaInfo::new_checked(&[0u8; 10][..]);
        assert!(sa.is_err());
    }
}
