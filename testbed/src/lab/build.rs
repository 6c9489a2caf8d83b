//! Building a lab's kernel objects from a topology, all through netlink and
//! `/proc/sys` (no `ip`): namespaces, sysctls, `lo`, veth pairs, TUN ends of
//! emulated links, addresses, routes.
//!
//! IPv6 on the TUN ends of emulated links: a TUN is a point-to-point
//! `NOARP` device without link-layer header, so the kernel creates its
//! neighbour entries in state `NOARP` and sends straight into the device:
//! there is no Neighbour Discovery on it, and a route `via` the peer's
//! address (on-link through the link's prefix route) or a route with only
//! `dev` both work. The TUN is made "quiet" (no link-local address, no
//! router solicitations, no RAs accepted), addresses are `nodad`, and DAD is
//! off in every namespace, so nothing the kernel sends on its own delays the
//! first packets. A link-local gateway on an emulated link therefore has to
//! be an address the topology gives the peer explicitly.

use std::net::Ipv6Addr;
use std::os::fd::AsFd;
use std::time::Duration;

use mip6_anycast::engine::netlink::{AddrOptions, Netlink, Route6, VethEnd};
use mip6_anycast::engine::netns;
use mip6_anycast::engine::sysctl::Ipv6Conf;
use mip6_anycast::engine::tun::{Tun, TunConfig};

use super::error::LabError;
use super::{Lab, LabLink, LabOptions};
use crate::linkemu::{EmulatedLink, LinkConfig, pcap_path};
use crate::topology::{HostKind, LinkKind, Route, Topology};

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Lab-level checks on a valid topology: what the file format allows but a
/// lab cannot build. Errors name the field.
pub(crate) fn check_buildable(topo: &Topology) -> Result<(), LabError> {
    for (i, r) in topo.routes.iter().enumerate() {
        let (Some(via), Some(link_name)) = (r.via, &r.link) else {
            continue;
        };
        let Some(link) = topo.link(link_name) else {
            continue;
        };
        if link.kind == LinkKind::Emulated && is_link_local(via) {
            let peer_has_it = topo
                .links_of(&r.host)
                .filter(|(l, _)| l.name() == *link_name)
                .any(|(l, side_a)| l.end(!side_a).1.iter().any(|p| p.addr() == via));
            if !peer_has_it {
                return Err(LabError::Invalid {
                    path: format!("route[{i}].via"),
                    message: format!(
                        "link-local gateway {via} on emulated link {link_name:?}: TUN ends get no \
                         automatic link-local address; give the peer that address in the link's \
                         a_addr/b_addr, or use a global gateway"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Sets the per-namespace IPv6 sysctls before any interface exists, so
/// every interface inherits them from `default`.
fn host_sysctls(
    nl: &Netlink,
    forwards: bool,
) -> Result<(), mip6_anycast::engine::netlink::NetlinkError> {
    for dev in ["all", "default"] {
        nl.set_ipv6_conf(dev, Ipv6Conf::AcceptDad, 0)?;
        nl.set_ipv6_conf(dev, Ipv6Conf::Forwarding, u32::from(forwards))?;
    }
    // Quiet links: no router solicitations or RA processing (nobody sends
    // RAs in a lab); addresses survive a link going down in a drill.
    nl.set_ipv6_conf("default", Ipv6Conf::AcceptRa, 0)?;
    nl.set_ipv6_conf("default", Ipv6Conf::RouterSolicitations, 0)?;
    nl.set_ipv6_conf("default", Ipv6Conf::KeepAddrOnDown, 1)?;
    Ok(())
}

impl Lab {
    /// Creates the namespaces, links, addresses and routes of `topo`.
    /// Everything created is recorded in `self` as soon as it exists, so a
    /// failure half-way leaves a lab that tears down what it has.
    pub(crate) async fn build_objects(
        &mut self,
        topo: &Topology,
        opts: &LabOptions,
    ) -> Result<(), LabError> {
        let mut handles = Vec::with_capacity(topo.hosts.len());
        for (i, host) in topo.hosts.iter().enumerate() {
            let ns = self.hosts[i].netns.clone();
            netns::create(&ns).map_err(LabError::netns(format!(
                "host[{i}] {}: creating namespace {ns}",
                host.name
            )))?;
            self.created_ns.push(ns.clone());
            let nl = Netlink::in_netns(&ns).map_err(LabError::netlink(format!(
                "host[{i}] {}: netlink",
                host.name
            )))?;
            host_sysctls(&nl, host.forwards()).map_err(LabError::netlink(format!(
                "host[{i}] {}: sysctls",
                host.name
            )))?;
            let lo = nl
                .link_index("lo")
                .await
                .map_err(LabError::netlink(format!("host[{i}] {}: lo", host.name)))?;
            nl.set_link_up(lo)
                .await
                .map_err(LabError::netlink(format!("host[{i}] {}: lo up", host.name)))?;
            for (k, p) in host.lo.iter().enumerate() {
                nl.add_address(lo, p.addr().into(), p.len(), AddrOptions::NODAD)
                    .await
                    .map_err(LabError::netlink(format!("host[{i}].lo[{k}] {p}")))?;
            }
            handles.push(nl);
        }
        for i in 0..topo.links.len() {
            self.build_link(topo, opts, &handles, i).await?;
        }
        let limit = opts.ready_timeout;
        for (i, host) in topo.hosts.iter().enumerate() {
            for p in &host.lo {
                wait_local(&handles[i], p.addr(), limit).await?;
            }
        }
        for l in &self.links {
            for end in [&l.a, &l.b].into_iter().filter(|e| !is_vm(topo, &e.host)) {
                let h = self
                    .host_index(&end.host)
                    .ok_or_else(|| LabError::UnknownHost(end.host.clone()))?;
                for p in &end.addrs {
                    wait_local(&handles[h], p.addr(), limit).await?;
                }
            }
        }
        for (i, r) in topo.routes.iter().enumerate() {
            self.add_route(&handles, i, r).await?;
        }
        Ok(())
    }

    fn host_index(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    async fn build_link(
        &mut self,
        topo: &Topology,
        opts: &LabOptions,
        nl: &[Netlink],
        i: usize,
    ) -> Result<(), LabError> {
        let link = &topo.links[i];
        let name = link.name();
        let ctx = |what: &str| format!("link[{i}] {name}: {what}");
        let (ai, bi) = match (self.host_index(&link.a), self.host_index(&link.b)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(LabError::UnknownHost(format!("{} or {}", link.a, link.b))),
        };
        let (a_ifname, b_ifname) = (
            self.links[i].a.ifname.clone(),
            self.links[i].b.ifname.clone(),
        );
        let mtu = link.mtu();
        match link.kind {
            LinkKind::Veth => {
                let b_ns = netns::open(&self.hosts[bi].netns)
                    .map_err(LabError::netns(ctx("opening the b namespace")))?;
                nl[ai]
                    .add_veth(
                        VethEnd::new(&a_ifname).mtu(mtu),
                        VethEnd::new(&b_ifname).mtu(mtu).in_netns(b_ns.as_fd()),
                    )
                    .await
                    .map_err(LabError::netlink(ctx("creating the veth pair")))?;
                self.links[i].a.ifindex = nl[ai]
                    .link_index(&a_ifname)
                    .await
                    .map_err(LabError::netlink(ctx("veth end a")))?;
                self.links[i].b.ifindex = nl[bi]
                    .link_index(&b_ifname)
                    .await
                    .map_err(LabError::netlink(ctx("veth end b")))?;
            }
            LinkKind::Emulated => {
                let tun_mtu = u16::try_from(mtu).map_err(|_| LabError::Invalid {
                    path: format!("link[{i}].mtu"),
                    message: format!("{mtu} too large for a TUN device"),
                })?;
                let make = |ns: &str, ifname: &str| {
                    Tun::create_in(ns, &TunConfig::new(ifname).mtu(tun_mtu))
                };
                let ta =
                    make(&self.hosts[ai].netns, &a_ifname).map_err(|source| LabError::Tun {
                        context: ctx("TUN of end a"),
                        source,
                    })?;
                let tb =
                    make(&self.hosts[bi].netns, &b_ifname).map_err(|source| LabError::Tun {
                        context: ctx("TUN of end b"),
                        source,
                    })?;
                self.links[i].a.ifindex = ta.index();
                self.links[i].b.ifindex = tb.index();
                let mut cfg = LinkConfig::from_topology(topo, link, Some(&self.out_dir)).map_err(
                    |source| LabError::Link {
                        context: ctx("configuration"),
                        source,
                    },
                )?;
                if let Some(on) = opts.capture {
                    cfg.capture = on.then(|| pcap_path(&self.out_dir, &name));
                }
                self.links[i].pcap = cfg.capture.clone();
                let running =
                    EmulatedLink::start(cfg, ta.into_fd(), tb.into_fd()).map_err(|source| {
                        LabError::Link {
                            context: ctx("starting the emulated link"),
                            source,
                        }
                    })?;
                self.emulated[i] = Some(running);
            }
        }
        let LabLink { a, b, .. } = &self.links[i];
        for (h, end, side) in [(ai, a, "a"), (bi, b, "b")] {
            nl[h]
                .set_link_up(end.ifindex)
                .await
                .map_err(LabError::netlink(ctx(&format!("end {side} up"))))?;
        }
        for (h, end, field) in [(ai, a, "a_addr"), (bi, b, "b_addr")] {
            if is_vm(topo, &end.host) {
                // The addresses belong to the guest; the namespace only
                // routes the link's prefixes out of this end.
                for (k, p) in end.addrs.iter().enumerate() {
                    nl[h]
                        .add_route(&Route6::new(p.network(), p.len()).dev(end.ifindex))
                        .await
                        .map_err(LabError::netlink(format!(
                            "link[{i}].{field}[{k}] {p}: on-link route of a vm host"
                        )))?;
                }
                continue;
            }
            for (k, p) in end.addrs.iter().enumerate() {
                nl[h]
                    .add_address(end.ifindex, p.addr().into(), p.len(), AddrOptions::NODAD)
                    .await
                    .map_err(LabError::netlink(format!("link[{i}].{field}[{k}] {p}")))?;
            }
        }
        Ok(())
    }

    async fn add_route(&self, nl: &[Netlink], i: usize, r: &Route) -> Result<(), LabError> {
        let h = self
            .host_index(&r.host)
            .ok_or_else(|| LabError::UnknownHost(r.host.clone()))?;
        let mut route = if r.dst.is_empty() {
            Route6::default_route()
        } else {
            Route6::new(r.dst.network(), r.dst.len())
        };
        if let Some(via) = r.via {
            route = route.via(via);
        }
        // The output device: the named link, else the link whose prefix
        // holds the gateway.
        let ends = self
            .links
            .iter()
            .flat_map(|l| [(&l.name, &l.a), (&l.name, &l.b)]);
        let oif = ends
            .filter(|(_, e)| e.host == r.host)
            .find(|(name, e)| match (&r.link, r.via) {
                (Some(want), _) => *name == want,
                (None, Some(via)) => e.addrs.iter().any(|p| p.contains(via)),
                (None, None) => false,
            })
            .map(|(_, e)| e.ifindex);
        if let Some(oif) = oif {
            route = route.dev(oif);
        }
        nl[h]
            .add_route(&route)
            .await
            .map_err(LabError::netlink(format!("route[{i}] in host {}", r.host)))
    }
}

/// Whether `host` is run as a QEMU guest.
fn is_vm(topo: &Topology, host: &str) -> bool {
    topo.host(host).is_some_and(|h| h.kind == HostKind::Vm)
}

async fn wait_local(nl: &Netlink, addr: Ipv6Addr, limit: Duration) -> Result<(), LabError> {
    nl.wait_local(addr, limit)
        .await
        .map_err(LabError::netlink(format!(
            "address {addr} in {}",
            nl.netns().unwrap_or("?")
        )))
}
