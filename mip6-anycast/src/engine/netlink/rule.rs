//! IPv6 policy routing rules (`ip -6 rule add/del/show`).

use std::net::{IpAddr, Ipv6Addr};

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

/// An IPv6 rule: `[not] [from P] [to P] [fwmark M/MASK] [iif DEV] lookup T`.
///
/// `invert` (`not`, `FIB_RULE_INVERT`) negates the *whole* selector, not one
/// field: `not from X fwmark M` means "not (from X and fwmark M)". To match
/// "from X and not marked" use `fwmark 0/MASK` instead (the mark bits must
/// be zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule6 {
    /// `pref N`.
    pub priority: u32,
    /// `lookup T`.
    pub table: u32,
    /// `fwmark MARK/MASK`.
    pub fwmark: Option<(u32, u32)>,
    /// `not`: invert the selector.
    pub invert: bool,
    /// `from PREFIX`.
    pub from: Option<(Ipv6Addr, u8)>,
    /// `to PREFIX`.
    pub to: Option<(Ipv6Addr, u8)>,
    /// `iif DEV`.
    pub iif: Option<String>,
}

impl Rule6 {
    /// `pref PRIORITY lookup TABLE`, matching everything.
    pub fn new(priority: u32, table: u32) -> Self {
        Self {
            priority,
            table,
            fwmark: None,
            invert: false,
            from: None,
            to: None,
            iif: None,
        }
    }

    /// `fwmark MARK/MASK`.
    pub fn fwmark(mut self, mark: u32, mask: u32) -> Self {
        self.fwmark = Some((mark, mask));
        self
    }

    /// `not`.
    pub fn invert(mut self) -> Self {
        self.invert = true;
        self
    }

    /// `from PREFIX/LEN`.
    pub fn source(mut self, prefix: Ipv6Addr, len: u8) -> Self {
        self.from = Some((prefix, len));
        self
    }

    /// `to PREFIX/LEN`.
    pub fn destination(mut self, prefix: Ipv6Addr, len: u8) -> Self {
        self.to = Some((prefix, len));
        self
    }

    /// `iif DEV`.
    pub fn iif(mut self, dev: &str) -> Self {
        self.iif = Some(dev.to_string());
        self
    }

    fn describe(&self, verb: &str) -> String {
        let mut s = format!("ip -6 rule {verb} pref {}", self.priority);
        if self.invert {
            s += " not";
        }
        if let Some((p, l)) = self.from {
            s += &format!(" from {p}/{l}");
        }
        if let Some((p, l)) = self.to {
            s += &format!(" to {p}/{l}");
        }
        if let Some((m, k)) = self.fwmark {
            s += &format!(" fwmark {m:#x}/{k:#x}");
        }
        if let Some(i) = &self.iif {
            s += &format!(" iif {i}");
        }
        s + &format!(" lookup {}", self.table)
    }

    fn to_message(&self) -> RuleMessage {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.action = RuleAction::ToTable;
        m.header.table = u8::try_from(self.table).unwrap_or(0);
        if self.invert {
            m.header.flags = RuleFlags::Invert;
        }
        let a = &mut m.attributes;
        a.push(RuleAttribute::Priority(self.priority));
        a.push(RuleAttribute::Table(self.table));
        if let Some((mark, mask)) = self.fwmark {
            a.push(RuleAttribute::FwMark(mark));
            a.push(RuleAttribute::FwMask(mask));
        }
        if let Some((p, l)) = self.from {
            m.header.src_len = l;
            a.push(RuleAttribute::Source(IpAddr::V6(p)));
        }
        if let Some((p, l)) = self.to {
            m.header.dst_len = l;
            a.push(RuleAttribute::Destination(IpAddr::V6(p)));
        }
        if let Some(i) = &self.iif {
            a.push(RuleAttribute::Iifname(i.clone()));
        }
        m
    }

    /// Reads an IPv6 to-table rule from a dump message (`None` otherwise).
    pub fn from_message(m: &RuleMessage) -> Option<Self> {
        if m.header.family != AddressFamily::Inet6 || m.header.action != RuleAction::ToTable {
            return None;
        }
        let mut r = Rule6::new(0, u32::from(m.header.table));
        r.invert = m.header.flags.contains(RuleFlags::Invert);
        let (mut mark, mut mask) = (None, None);
        for a in &m.attributes {
            match a {
                RuleAttribute::Priority(p) => r.priority = *p,
                RuleAttribute::Table(t) => r.table = *t,
                RuleAttribute::FwMark(v) => mark = Some(*v),
                RuleAttribute::FwMask(v) => mask = Some(*v),
                RuleAttribute::Source(IpAddr::V6(p)) => r.from = Some((*p, m.header.src_len)),
                RuleAttribute::Destination(IpAddr::V6(p)) => r.to = Some((*p, m.header.dst_len)),
                RuleAttribute::Iifname(i) => r.iif = Some(i.clone()),
                _ => {}
            }
        }
        if mark.is_some() || mask.is_some() {
            r.fwmark = Some((mark.unwrap_or(0), mask.unwrap_or(u32::MAX)));
        }
        Some(r)
    }
}

impl Netlink {
    /// `ip -6 rule add ...`.
    pub async fn add_rule(&self, rule: &Rule6) -> Result<(), NetlinkError> {
        self.request(
            rule.describe("add"),
            RouteNetlinkMessage::NewRule(rule.to_message()),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        Ok(())
    }

    /// `ip -6 rule del ...` (all given fields must match).
    pub async fn del_rule(&self, rule: &Rule6) -> Result<(), NetlinkError> {
        self.request(
            rule.describe("del"),
            RouteNetlinkMessage::DelRule(rule.to_message()),
            0,
        )
        .await?;
        Ok(())
    }

    /// The IPv6 to-table rules (`ip -6 rule show`).
    pub async fn rules(&self) -> Result<Vec<Rule6>, NetlinkError> {
        let mut req = RuleMessage::default();
        req.header.family = AddressFamily::Inet6;
        let replies = self
            .dump("ip -6 rule show".into(), RouteNetlinkMessage::GetRule(req))
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRule(m) => Rule6::from_message(m),
                _ => None,
            })
            .collect())
    }
}
