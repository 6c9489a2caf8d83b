//! IPv6 routes (`ip -6 route add/replace/del/show`).

use std::net::Ipv6Addr;

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;
/// The local routing table (`RT_TABLE_LOCAL`).
pub const TABLE_LOCAL: u32 = 255;
/// `RT_TABLE_COMPAT`: header value when the table id needs `RTA_TABLE`.
const TABLE_COMPAT: u8 = 252;

/// The type of a route (`rtm_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteKind {
    /// Ordinary route via a gateway or device.
    #[default]
    Unicast,
    /// Deliver locally (`local`): what makes an address "ours" without
    /// configuring it on an interface.
    Local,
    /// Drop silently.
    Blackhole,
    /// Drop with ICMPv6 unreachable.
    Unreachable,
    /// Any other type, as its number.
    Other(u8),
}

impl RouteKind {
    fn to_nl(self) -> RouteType {
        match self {
            RouteKind::Unicast => RouteType::Unicast,
            RouteKind::Local => RouteType::Local,
            RouteKind::Blackhole => RouteType::BlackHole,
            RouteKind::Unreachable => RouteType::Unreachable,
            RouteKind::Other(n) => RouteType::from(n),
        }
    }

    fn from_nl(t: RouteType) -> Self {
        match t {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unreachable => RouteKind::Unreachable,
            other => RouteKind::Other(u8::from(other)),
        }
    }
}

/// An IPv6 route. Build with [`Route6::new`] and the setters; dumps return
/// the same type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route6 {
    /// Destination prefix.
    pub dst: Ipv6Addr,
    /// Destination prefix length.
    pub dst_len: u8,
    /// Next hop (`via`).
    pub gateway: Option<Ipv6Addr>,
    /// Output interface index (`dev`).
    pub oif: Option<u32>,
    /// Routing table id.
    pub table: u32,
    /// Preferred source address (`src`).
    pub pref_src: Option<Ipv6Addr>,
    /// Metric (`metric`); `None` on add: the kernel default (1024).
    pub metric: Option<u32>,
    /// Route MTU (`mtu`), an upper bound on the path MTU; TCP derives its MSS
    /// from it.
    pub mtu: Option<u32>,
    /// Route type.
    pub kind: RouteKind,
}

impl Route6 {
    /// A unicast route to `dst/dst_len` in the main table.
    pub fn new(dst: Ipv6Addr, dst_len: u8) -> Self {
        Self {
            dst,
            dst_len,
            gateway: None,
            oif: None,
            table: TABLE_MAIN,
            pref_src: None,
            metric: None,
            mtu: None,
            kind: RouteKind::Unicast,
        }
    }

    /// The default route `::/0`.
    pub fn default_route() -> Self {
        Self::new(Ipv6Addr::UNSPECIFIED, 0)
    }

    /// `via GW`.
    pub fn via(mut self, gateway: Ipv6Addr) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// `dev INDEX`.
    pub fn dev(mut self, oif: u32) -> Self {
        self.oif = Some(oif);
        self
    }

    /// `table ID`.
    pub fn table(mut self, table: u32) -> Self {
        self.table = table;
        self
    }

    /// `src ADDR`.
    pub fn src(mut self, pref_src: Ipv6Addr) -> Self {
        self.pref_src = Some(pref_src);
        self
    }

    /// `metric N`.
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }

    /// `mtu N`.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Route type.
    pub fn kind(mut self, kind: RouteKind) -> Self {
        self.kind = kind;
        self
    }

    /// `local` type (deliver to this host).
    pub fn local(self) -> Self {
        self.kind(RouteKind::Local)
    }

    fn describe(&self, verb: &str) -> String {
        let mut s = format!("ip -6 route {verb} {}/{}", self.dst, self.dst_len);
        if let Some(g) = self.gateway {
            s += &format!(" via {g}");
        }
        if let Some(d) = self.oif {
            s += &format!(" dev {d}");
        }
        s += &format!(" table {}", self.table);
        s
    }

    fn to_message(&self, with_protocol: bool) -> RouteMessage {
        let mut m = RouteMessage::default();
        let h: &mut RouteHeader = &mut m.header;
        h.address_family = AddressFamily::Inet6;
        h.destination_prefix_length = self.dst_len;
        h.table = u8::try_from(self.table)
            .ok()
            .filter(|t| *t != TABLE_COMPAT)
            .unwrap_or(TABLE_COMPAT);
        h.kind = self.kind.to_nl();
        h.scope = if self.kind == RouteKind::Local {
            RouteScope::Host
        } else {
            RouteScope::Universe
        };
        if with_protocol {
            h.protocol = RouteProtocol::Boot;
        }
        let a = &mut m.attributes;
        a.push(RouteAttribute::Table(self.table));
        if self.dst_len > 0 {
            a.push(RouteAttribute::Destination(RouteAddress::Inet6(self.dst)));
        }
        if let Some(g) = self.gateway {
            a.push(RouteAttribute::Gateway(RouteAddress::Inet6(g)));
        }
        if let Some(d) = self.oif {
            a.push(RouteAttribute::Oif(d));
        }
        if let Some(s) = self.pref_src {
            a.push(RouteAttribute::PrefSource(RouteAddress::Inet6(s)));
        }
        if let Some(p) = self.metric {
            a.push(RouteAttribute::Priority(p));
        }
        if let Some(mtu) = self.mtu {
            a.push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
        }
        m
    }

    /// Reads an IPv6 route from a dump message (`None` for other families).
    pub fn from_message(m: &RouteMessage) -> Option<Self> {
        if m.header.address_family != AddressFamily::Inet6 {
            return None;
        }
        let mut r = Route6::new(Ipv6Addr::UNSPECIFIED, m.header.destination_prefix_length);
        r.table = u32::from(m.header.table);
        r.kind = RouteKind::from_nl(m.header.kind);
        for a in &m.attributes {
            match a {
                RouteAttribute::Table(t) => r.table = *t,
                RouteAttribute::Destination(RouteAddress::Inet6(d)) => r.dst = *d,
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => r.gateway = Some(*g),
                RouteAttribute::Oif(o) => r.oif = Some(*o),
                RouteAttribute::PrefSource(RouteAddress::Inet6(s)) => r.pref_src = Some(*s),
                RouteAttribute::Priority(p) => r.metric = Some(*p),
                RouteAttribute::Metrics(ms) => {
                    for metric in ms {
                        if let RouteMetric::Mtu(mtu) = metric {
                            r.mtu = Some(*mtu);
                        }
                    }
                }
                _ => {}
            }
        }
        Some(r)
    }
}

impl Netlink {
    /// `ip -6 route add ...` (fails with `EEXIST` if present).
    pub async fn add_route(&self, route: &Route6) -> Result<(), NetlinkError> {
        self.request(
            route.describe("add"),
            RouteNetlinkMessage::NewRoute(route.to_message(true)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        Ok(())
    }

    /// `ip -6 route replace ...` (adds or replaces).
    pub async fn replace_route(&self, route: &Route6) -> Result<(), NetlinkError> {
        self.request(
            route.describe("replace"),
            RouteNetlinkMessage::NewRoute(route.to_message(true)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await?;
        Ok(())
    }

    /// `ip -6 route del ...`: matches prefix and table, plus gateway, device
    /// and metric when given.
    pub async fn del_route(&self, route: &Route6) -> Result<(), NetlinkError> {
        self.request(
            route.describe("del"),
            RouteNetlinkMessage::DelRoute(route.to_message(false)),
            0,
        )
        .await?;
        Ok(())
    }

    /// The IPv6 routes of table `table` (`ip -6 route show table T`).
    pub async fn routes(&self, table: u32) -> Result<Vec<Route6>, NetlinkError> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet6;
        let replies = self
            .dump(
                format!("ip -6 route show table {table}"),
                RouteNetlinkMessage::GetRoute(req),
            )
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => Route6::from_message(m),
                _ => None,
            })
            .filter(|r| r.table == table)
            .collect())
    }

    /// Deletes every IPv6 route of table `table` (`ip -6 route flush table
    /// T`); returns how many were deleted.
    pub async fn flush_table(&self, table: u32) -> Result<usize, NetlinkError> {
        let mut n = 0;
        for r in self.routes(table).await? {
            match self.del_route(&r).await {
                Ok(()) => n += 1,
                // Gone already (e.g. with its device).
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}
