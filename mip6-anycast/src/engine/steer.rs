//! Steering packets into the engine's TUN, and the raw-socket way out.
//!
//! Inbound: on each given interface an ingress qdisc with one u32 filter per
//! IPv6 next-header value (43 routing, 60 destination options, 135 mobility,
//! 41 IPv6-in-IPv6 by default) redirects matching packets to the TUN, so the
//! kernel (which has no Mobile IPv6, RFC 6275) never sees a Type 2 Routing
//! Header or a Home Address option it would answer with a Parameter Problem.
//! Everything else stays in the kernel.
//!
//! Outbound: two dedicated routing tables and two rule priorities.
//! - `pref P not fwmark M/M lookup T`: table `T` holds the "to HoA" routes
//!   ([`Steering::steer_to`]: `HoA/128 dev TUN mtu ...`).
//! - `pref P+1 from X fwmark 0/M lookup F`: table `F` holds one
//!   `default dev TUN mtu ...` ([`Steering::steer_from`]). (`not` would
//!   negate the whole selector, so these rules ask for the mark bits to be
//!   zero instead.)
//!
//! Packets the engine sends through its [`RawSender`] carry mark `M`, skip
//! both rules and are routed by the main table: they never come back into the
//! TUN. Route MTUs leave headroom for the headers the engine adds (RFC 6275:
//! 24 bytes for an RH2 or a Home Address option; RFC 2473: 40 for an outer
//! IPv6 header) so the kernel's TCP MSS fits the path.
//!
//! Both tables are owned by the engine: [`Steering::install`] flushes them
//! and removes rules left at its priorities by an earlier run.

use std::net::Ipv6Addr;

use super::netlink::{Netlink, NetlinkError, QdiscKind, Route6, Rule6};
use super::rawsock::{RawSender, RawSockError};
use super::tun::{Tun, TunConfig, TunError};

/// IPv6 next header: Routing Header (RFC 8200), here the Type 2 RH.
pub const NH_ROUTING: u8 = 43;
/// IPv6 next header: Destination Options (carries the Home Address option).
pub const NH_DEST_OPTS: u8 = 60;
/// IPv6 next header: Mobility Header (RFC 6275 6.1).
pub const NH_MOBILITY: u8 = 135;
/// IPv6 next header: IPv6-in-IPv6 (RFC 2473).
pub const NH_IPV6: u8 = 41;
/// The next headers steered by default.
pub const DEFAULT_NEXT_HEADERS: [u8; 4] = [NH_ROUTING, NH_DEST_OPTS, NH_MOBILITY, NH_IPV6];

/// Transmit queue of the engine's TUN (packets steered in, waiting for
/// the engine): room for a few GSO packets' worth of segments.
pub const TUN_TX_QUEUE_LEN: u32 = 10_000;

/// The smallest link MTU IPv6 allows (RFC 8200 5).
pub const IPV6_MIN_MTU: u32 = 1280;

/// Bytes to keep free below the path MTU on a steer-to-TUN route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headroom {
    /// 24: a Type 2 Routing Header or a Destination Options header with the
    /// Home Address option (RFC 6275 6.4, 6.3).
    RouteOptimization,
    /// 40: an outer IPv6 header (RFC 2473).
    Tunnel,
    /// Any other amount.
    Bytes(u32),
}

impl Headroom {
    /// The number of bytes.
    pub fn bytes(self) -> u32 {
        match self {
            Headroom::RouteOptimization => 24,
            Headroom::Tunnel => 40,
            Headroom::Bytes(n) => n,
        }
    }
}

/// What [`Steering::install`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteeringConfig {
    /// The engine's TUN.
    pub tun: TunConfig,
    /// Interfaces whose ingress is filtered.
    pub interfaces: Vec<String>,
    /// Next-header values redirected to the TUN.
    pub next_headers: Vec<u8>,
    /// The qdisc carrying the filters.
    pub qdisc: QdiscKind,
    /// Priority of the first filter; filter `i` gets `filter_prio + i`.
    pub filter_prio: u16,
    /// Table of the "to HoA" routes.
    pub table: u32,
    /// Table with the default route into the TUN for "from X" rules.
    pub from_table: u32,
    /// Priority of the "to" rule; "from" rules get `rule_priority + 1`.
    pub rule_priority: u32,
    /// The engine's fwmark (used as mark and mask; not 0).
    pub fwmark: u32,
    /// MTU of the links packets leave on; route MTUs are this minus headroom.
    pub path_mtu: u32,
    /// Headroom of the "from X" default route.
    pub from_headroom: Headroom,
}

impl SteeringConfig {
    /// Defaults: the four next headers, `ingress` qdisc, filter prios from
    /// 10, tables 100/101, rule prios 1000/1001, fwmark `0x6d69` ("mi"),
    /// path MTU 1500, "from" headroom 40, a TUN with `IFF_VNET_HDR` (the
    /// engine decides at start whether it uses the offloads).
    pub fn new(tun_name: &str, interfaces: &[&str]) -> Self {
        Self {
            tun: TunConfig {
                offload: true,
                ..TunConfig::new(tun_name)
            },
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            next_headers: DEFAULT_NEXT_HEADERS.to_vec(),
            qdisc: QdiscKind::Ingress,
            filter_prio: 10,
            table: 100,
            from_table: 101,
            rule_priority: 1000,
            fwmark: 0x6d69,
            path_mtu: 1500,
            from_headroom: Headroom::Tunnel,
        }
    }

    fn route_mtu(&self, headroom: Headroom) -> Result<u32, SteerError> {
        match self.path_mtu.checked_sub(headroom.bytes()) {
            Some(mtu) if mtu >= IPV6_MIN_MTU => Ok(mtu),
            _ => Err(SteerError::InvalidConfig(format!(
                "path MTU {} minus headroom {} is below the IPv6 minimum {IPV6_MIN_MTU}",
                self.path_mtu,
                headroom.bytes()
            ))),
        }
    }

    fn validate(&self) -> Result<(), SteerError> {
        let bad = |why: &str| Err(SteerError::InvalidConfig(why.to_string()));
        if self.fwmark == 0 {
            return bad("fwmark must not be 0");
        }
        if self.next_headers.is_empty() {
            return bad("no next headers to steer");
        }
        let mut seen = self.next_headers.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.next_headers.len() {
            return bad("duplicate next header");
        }
        if usize::from(self.filter_prio) + self.next_headers.len() > usize::from(u16::MAX)
            || self.filter_prio == 0
        {
            return bad("filter priorities out of range");
        }
        let reserved = |t: &u32| [0, 253, 254, 255].contains(t);
        if self.table == self.from_table || reserved(&self.table) || reserved(&self.from_table) {
            return bad("tables must be two distinct non-reserved ids");
        }
        if self.rule_priority == 0 || self.rule_priority == u32::MAX {
            return bad("rule priority out of range");
        }
        self.route_mtu(self.from_headroom).map(|_| ())
    }

    fn rule_to(&self) -> Rule6 {
        Rule6::new(self.rule_priority, self.table)
            .fwmark(self.fwmark, self.fwmark)
            .invert()
    }

    fn rule_from(&self, prefix: Ipv6Addr, len: u8) -> Rule6 {
        Rule6::new(self.rule_priority + 1, self.from_table)
            .fwmark(0, self.fwmark)
            .source(prefix, len)
    }
}

/// Errors of steering.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The configuration cannot work.
    #[error("invalid steering configuration: {0}")]
    InvalidConfig(String),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Creating the TUN failed.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// Opening the raw socket failed.
    #[error(transparent)]
    RawSock(#[from] RawSockError),
}

/// One steered interface.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Steered {
    name: String,
    index: u32,
    /// We created the qdisc (and remove it on [`Steering::remove`]).
    own_qdisc: bool,
}

/// Installed steering in one namespace. Call [`Steering::remove`] to undo;
/// deleting the namespace undoes it too.
#[derive(Debug)]
pub struct Steering {
    nl: Netlink,
    cfg: SteeringConfig,
    tun_index: u32,
    steered: Vec<Steered>,
}

impl Steering {
    /// Creates the TUN in `nl`'s namespace, the rules, the "from" table's
    /// default route and the ingress filters. Returns the TUN for the
    /// engine's loop to own (closing it deletes the device and its routes).
    pub async fn install(nl: &Netlink, cfg: SteeringConfig) -> Result<(Steering, Tun), SteerError> {
        cfg.validate()?;
        let from_mtu = cfg.route_mtu(cfg.from_headroom)?;
        clear_routing(nl, &cfg).await?;
        let tun = match nl.netns() {
            Some(ns) => Tun::create_in(ns, &cfg.tun)?,
            None => Tun::create(&cfg.tun)?,
        };
        let mut steering = Steering {
            nl: nl.clone(),
            tun_index: tun.index(),
            cfg,
            steered: Vec::new(),
        };
        if let Err(e) = steering.install_rest(from_mtu).await {
            let _ = steering.clear().await;
            return Err(e);
        }
        Ok((steering, tun))
    }

    async fn install_rest(&mut self, from_mtu: u32) -> Result<(), SteerError> {
        // Packets steered in by tc (`mirred egress redirect`) wait on the
        // TUN's transmit queue until the engine reads them; the default
        // 500 overflowed under TCP bursts (a peer cutting 64 KB GSO
        // packets into tunnelled segments): PIAS lab, 2731 retransmits in
        // 3 s with 500, 14 with this.
        self.nl
            .set_link_txqueuelen(self.tun_index, TUN_TX_QUEUE_LEN)
            .await?;
        let default = Route6::default_route()
            .dev(self.tun_index)
            .table(self.cfg.from_table)
            .mtu(from_mtu);
        self.nl.add_route(&default).await?;
        self.nl.add_rule(&self.cfg.rule_to()).await?;
        for name in self.cfg.interfaces.clone() {
            self.add_interface(&name).await?;
        }
        Ok(())
    }

    /// Adds ingress steering on one more interface.
    pub async fn add_interface(&mut self, name: &str) -> Result<(), SteerError> {
        if self.steered.iter().any(|s| s.name == name) {
            return Ok(());
        }
        let index = self.nl.link_index(name).await?;
        let own_qdisc = match self.nl.add_ingress_qdisc(index, self.cfg.qdisc).await {
            Ok(()) => true,
            Err(e) if e.is_exists() => {
                let present = self.nl.qdiscs(index).await?;
                if !present.iter().any(|q| q.kind == self.cfg.qdisc.as_str()) {
                    return Err(SteerError::InvalidConfig(format!(
                        "{name} has another ingress qdisc than {}",
                        self.cfg.qdisc.as_str()
                    )));
                }
                false
            }
            Err(e) => return Err(e.into()),
        };
        self.steered.push(Steered {
            name: name.to_string(),
            index,
            own_qdisc,
        });
        for (i, nh) in self.cfg.next_headers.iter().enumerate() {
            let prio = self.cfg.filter_prio + i as u16;
            if !own_qdisc {
                // Stale filters of an earlier run.
                match self.nl.del_filters(index, self.cfg.qdisc, prio).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.nl
                .add_nexthdr_redirect(index, self.cfg.qdisc, Some(prio), *nh, self.tun_index)
                .await?;
        }
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> &SteeringConfig {
        &self.cfg
    }

    /// The TUN's interface index.
    pub fn tun_index(&self) -> u32 {
        self.tun_index
    }

    /// The engine's fwmark.
    pub fn fwmark(&self) -> u32 {
        self.cfg.fwmark
    }

    /// The netlink handle of the namespace.
    pub fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// Opens the engine's raw send socket (marked) in this namespace.
    pub fn raw_sender(&self) -> Result<RawSender, SteerError> {
        Ok(match self.nl.netns() {
            Some(ns) => RawSender::new_in(ns, self.cfg.fwmark)?,
            None => RawSender::new(self.cfg.fwmark)?,
        })
    }

    fn to_route(&self, hoa: Ipv6Addr) -> Route6 {
        self.prefix_route(hoa, 128)
    }

    fn prefix_route(&self, prefix: Ipv6Addr, len: u8) -> Route6 {
        Route6::new(prefix, len)
            .dev(self.tun_index)
            .table(self.cfg.table)
    }

    /// Routes unmarked packets to `prefix/len` into the TUN (a PIAS
    /// anycast prefix or NAT address); replaces an existing route.
    pub async fn steer_prefix_to(
        &self,
        prefix: Ipv6Addr,
        len: u8,
        headroom: Headroom,
    ) -> Result<(), SteerError> {
        let mtu = self.cfg.route_mtu(headroom)?;
        self.nl
            .replace_route(&self.prefix_route(prefix, len).mtu(mtu))
            .await?;
        Ok(())
    }

    /// Removes the route of [`Steering::steer_prefix_to`].
    pub async fn unsteer_prefix_to(&self, prefix: Ipv6Addr, len: u8) -> Result<(), SteerError> {
        self.nl.del_route(&self.prefix_route(prefix, len)).await?;
        Ok(())
    }

    /// Routes unmarked packets to `hoa` into the TUN (`hoa/128 dev TUN table
    /// T mtu PATH-HEADROOM`); replaces an existing route.
    pub async fn steer_to(&self, hoa: Ipv6Addr, headroom: Headroom) -> Result<(), SteerError> {
        let mtu = self.cfg.route_mtu(headroom)?;
        self.nl.replace_route(&self.to_route(hoa).mtu(mtu)).await?;
        Ok(())
    }

    /// Removes the route of [`Steering::steer_to`].
    pub async fn unsteer_to(&self, hoa: Ipv6Addr) -> Result<(), SteerError> {
        self.nl.del_route(&self.to_route(hoa)).await?;
        Ok(())
    }

    /// Routes unmarked packets from `prefix/len` into the TUN (rule `from
    /// prefix fwmark 0/M lookup F`). Adding the same rule twice is a no-op.
    pub async fn steer_from(&self, prefix: Ipv6Addr, len: u8) -> Result<(), SteerError> {
        match self.nl.add_rule(&self.cfg.rule_from(prefix, len)).await {
            Err(e) if !e.is_exists() => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Removes the rule of [`Steering::steer_from`].
    pub async fn unsteer_from(&self, prefix: Ipv6Addr, len: u8) -> Result<(), SteerError> {
        self.nl.del_rule(&self.cfg.rule_from(prefix, len)).await?;
        Ok(())
    }

    /// Removes the filters (and the qdiscs it created), the rules and both
    /// tables' routes. The TUN goes away when its owner closes it.
    pub async fn remove(mut self) -> Result<(), SteerError> {
        self.clear().await
    }

    async fn clear(&mut self) -> Result<(), SteerError> {
        let mut first_err: Option<SteerError> = None;
        let mut note = |r: Result<(), NetlinkError>| {
            if let Err(e) = r
                && !e.is_not_found()
                && first_err.is_none()
            {
                first_err = Some(e.into());
            }
        };
        for s in std::mem::take(&mut self.steered) {
            if s.own_qdisc {
                note(self.nl.del_ingress_qdisc(s.index, self.cfg.qdisc).await);
            } else {
                for i in 0..self.cfg.next_headers.len() {
                    let prio = self.cfg.filter_prio + i as u16;
                    note(self.nl.del_filters(s.index, self.cfg.qdisc, prio).await);
                }
            }
        }
        note(
            clear_routing(&self.nl, &self.cfg)
                .await
                .map_err(|e| match e {
                    SteerError::Netlink(n) => n,
                    other => NetlinkError::Unexpected {
                        op: "clear steering".into(),
                        what: other.to_string(),
                    },
                }),
        );
        first_err.map_or(Ok(()), Err)
    }
}

/// Deletes our rules (any selector, at our priorities, to our tables) and
/// flushes both tables.
async fn clear_routing(nl: &Netlink, cfg: &SteeringConfig) -> Result<(), SteerError> {
    let prios = [cfg.rule_priority, cfg.rule_priority + 1];
    let tables = [cfg.table, cfg.from_table];
    for rule in nl.rules().await? {
        if prios.contains(&rule.priority) && tables.contains(&rule.table) {
            match nl.del_rule(&rule).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    for t in tables {
        nl.flush_table(t).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_mtu_leaves_headroom() {
        let cfg = SteeringConfig::new("mip0", &["v0"]);
        assert_eq!(cfg.route_mtu(Headroom::RouteOptimization).ok(), Some(1476));
        assert_eq!(cfg.route_mtu(Headroom::Tunnel).ok(), Some(1460));
        assert!(cfg.route_mtu(Headroom::Bytes(300)).is_err());
        assert!(cfg.route_mtu(Headroom::Bytes(u32::MAX)).is_err());
    }

    #[test]
    fn config_is_checked() {
        let ok = SteeringConfig::new("mip0", &["v0"]);
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.fwmark = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.next_headers = vec![43, 43];
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.from_table = c.table;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.table = 254;
        assert!(c.validate().is_err());
        let mut c = ok;
        c.filter_prio = u16::MAX - 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn rules_skip_marked_packets() {
        let c = SteeringConfig::new("mip0", &[]);
        let to = c.rule_to();
        assert!(to.invert);
        assert_eq!(to.fwmark, Some((0x6d69, 0x6d69)));
        let from = c.rule_from(Ipv6Addr::LOCALHOST, 128);
        assert!(!from.invert);
        assert_eq!(from.fwmark, Some((0, 0x6d69)));
        assert_eq!(from.priority, 1001);
        assert_eq!(from.table, 101);
    }
}
