//! Netlink programming checked against the kernel: veth pairs and addresses
//! (ping works), routes, rules, qdiscs and u32+mirred filters dumped back
//! through netlink and cross-checked with `ip`/`tc`. Needs root.
#![cfg(feature = "engine")]

mod engine_sys_util;

use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::AsFd;
use std::time::Duration;

use engine_sys_util::{ping, run_in};
use mip6_anycast::engine::netlink::route::TABLE_LOCAL;
use mip6_anycast::engine::netlink::{
    AddrOptions, Netlink, NetlinkError, QdiscKind, Route6, RouteKind, Rule6, U32Key, VethEnd,
};
use mip6_anycast::engine::netns::{self, NetnsGuard};
use mip6_anycast::engine::sysctl::Ipv6Conf;
use mip6_anycast::engine::tun::{Tun, TunConfig};
use mip6_anycast::require_root;

/// Hang guard for the kernel's address set-up.
const READY: Duration = Duration::from_secs(10);

fn addr(s: &str) -> Ipv6Addr {
    s.parse().expect("address literal")
}

#[tokio::test]
async fn veth_addresses_ping() {
    require_root!("veth_addresses_ping");
    let a = NetnsGuard::create_unique("mip6t").expect("ns a");
    let b = NetnsGuard::create_unique("mip6t").expect("ns b");
    let nla = Netlink::in_netns(a.name()).expect("netlink a");
    let nlb = Netlink::in_netns(b.name()).expect("netlink b");
    for (nl, ns) in [(&nla, &a), (&nlb, &b)] {
        nl.set_ipv6_conf("all", Ipv6Conf::AcceptDad, 0)
            .expect("sysctl");
        nl.set_ipv6_conf("default", Ipv6Conf::AcceptDad, 0)
            .expect("sysctl");
        assert_eq!(
            nl.sysctl_read("net/ipv6/conf/default/accept_dad")
                .expect("read"),
            "0"
        );
        assert_eq!(nl.netns(), Some(ns.name()));
    }
    let b_fd = b.open().expect("open b");
    nla.add_veth(
        VethEnd::new("va").mtu(1400),
        VethEnd::new("vb").in_netns(b_fd.as_fd()),
    )
    .await
    .expect("veth");
    let va = nla.link_by_name("va").await.expect("va");
    assert_eq!(va.kind.as_deref(), Some("veth"));
    assert_eq!(va.mtu, Some(1400));
    assert!(!va.up);
    assert!(
        nla.link_index("vb")
            .await
            .expect_err("vb is in b")
            .is_not_found()
    );
    let vb = nlb.link_index("vb").await.expect("vb in b");
    nlb.set_link_mtu(vb, 1400).await.expect("mtu");

    let (aa, ab) = (addr("fd00:1::1"), addr("fd00:1::2"));
    nla.add_address(va.index, aa.into(), 64, AddrOptions::NODAD)
        .await
        .expect("addr a");
    nlb.add_address(vb, ab.into(), 64, AddrOptions::NODAD)
        .await
        .expect("addr b");
    let dup = nla
        .add_address(va.index, aa.into(), 64, AddrOptions::NODAD)
        .await
        .expect_err("duplicate");
    assert!(dup.is_exists(), "{dup}");
    // An address that was never added never becomes usable.
    let never = nla
        .wait_local(addr("fd00:1::99"), Duration::from_millis(20))
        .await
        .expect_err("no such address");
    assert!(matches!(never, NetlinkError::NotReady { .. }), "{never}");
    nla.set_link_up(va.index).await.expect("up a");
    nlb.set_link_up(vb).await.expect("up b");
    nla.wait_local(aa, READY).await.expect("a usable");
    nlb.wait_local(ab, READY).await.expect("b usable");
    assert!(nla.link_by_name("va").await.expect("va").up);

    let addrs = nla.addresses(Some(va.index)).await.expect("dump addrs");
    let mine = addrs
        .iter()
        .find(|x| x.addr == IpAddr::V6(aa))
        .expect("address listed");
    assert_eq!(mine.prefix_len, 64);
    assert!(!mine.is_tentative());
    assert_ne!(mine.flags & 0x02, 0, "nodad flag missing");

    assert!(ping(a.name(), ab), "ping a -> b");
    assert!(ping(b.name(), aa), "ping b -> a");

    nla.del_address(va.index, aa.into(), 64)
        .await
        .expect("del addr");
    assert!(
        !nla.addresses(Some(va.index))
            .await
            .expect("dump")
            .iter()
            .any(|x| x.addr == IpAddr::V6(aa))
    );
    nla.set_link_down(va.index).await.expect("down");
    assert!(!nla.link_by_name("va").await.expect("va").up);
    nla.del_link(va.index).await.expect("del link");
    assert!(nlb.link_index("vb").await.is_err(), "peer went with it");
}

#[tokio::test]
async fn move_link_between_namespaces() {
    require_root!("move_link_between_namespaces");
    let a = NetnsGuard::create_unique("mip6t").expect("ns a");
    let b = NetnsGuard::create_unique("mip6t").expect("ns b");
    let nla = Netlink::in_netns(a.name()).expect("netlink a");
    let nlb = Netlink::in_netns(b.name()).expect("netlink b");
    nla.add_veth(VethEnd::new("m1"), VethEnd::new("m2"))
        .await
        .expect("veth");
    let m2 = nla.link_index("m2").await.expect("m2");
    let b_fd = netns::open(b.name()).expect("open b");
    nla.set_link_netns(m2, b_fd.as_fd()).await.expect("move");
    assert!(nla.link_index("m2").await.is_err());
    assert!(nlb.link_index("m2").await.is_ok());
}

#[tokio::test]
async fn routes_rules_dump_and_cross_check() {
    require_root!("routes_rules_dump_and_cross_check");
    let ns = NetnsGuard::create_unique("mip6t").expect("ns");
    let nl = Netlink::in_netns(ns.name()).expect("netlink");
    nl.add_veth(VethEnd::new("r0"), VethEnd::new("r1"))
        .await
        .expect("veth");
    let r0 = nl.link_index("r0").await.expect("r0");
    let r1 = nl.link_index("r1").await.expect("r1");
    let lo = nl.link_index("lo").await.expect("lo");
    for i in [r0, r1, lo] {
        nl.set_link_up(i).await.expect("up");
    }
    nl.add_address(r0, addr("fd00:2::1").into(), 64, AddrOptions::NODAD)
        .await
        .expect("addr");

    let via = Route6::new(addr("2001:db8:5::"), 48)
        .via(addr("fd00:2::2"))
        .dev(r0)
        .table(100)
        .metric(7)
        .mtu(1476);
    nl.add_route(&via).await.expect("route via");
    let again = nl.add_route(&via).await.expect_err("exists");
    assert!(again.is_exists(), "{again}");
    let src = Route6::new(addr("2001:db8:6::1"), 128)
        .dev(r0)
        .table(100)
        .src(addr("fd00:2::1"));
    nl.add_route(&src).await.expect("route src");
    // The local type, on lo, in the local table: what makes an anycast
    // address ours.
    let local = Route6::new(addr("2001:db8:a::1"), 128)
        .dev(lo)
        .table(TABLE_LOCAL)
        .local();
    nl.add_route(&local).await.expect("local route");
    // Replace changes the MTU in place.
    nl.replace_route(&via.clone().mtu(1460))
        .await
        .expect("replace");

    let t100 = nl.routes(100).await.expect("dump");
    assert_eq!(t100.len(), 2, "{t100:?}");
    let got = t100.iter().find(|r| r.dst_len == 48).expect("via route");
    assert_eq!(got.dst, addr("2001:db8:5::"));
    assert_eq!(got.gateway, Some(addr("fd00:2::2")));
    assert_eq!(got.oif, Some(r0));
    assert_eq!(got.metric, Some(7));
    assert_eq!(got.mtu, Some(1460));
    assert_eq!(got.kind, RouteKind::Unicast);
    let got_src = t100.iter().find(|r| r.dst_len == 128).expect("src route");
    assert_eq!(got_src.pref_src, Some(addr("fd00:2::1")));
    assert_eq!(got_src.metric, Some(1024), "kernel default metric");
    let got_local = nl
        .routes(TABLE_LOCAL)
        .await
        .expect("dump local")
        .into_iter()
        .find(|r| r.dst == addr("2001:db8:a::1"))
        .expect("local route");
    assert_eq!(got_local.kind, RouteKind::Local);
    assert_eq!(got_local.oif, Some(lo));

    let (ok, ip_out) = run_in(ns.name(), "ip", &["-6", "route", "show", "table", "100"]);
    assert!(ok);
    assert!(
        ip_out.contains("2001:db8:5::/48 via fd00:2::2 dev r0 metric 7 mtu 1460"),
        "{ip_out}"
    );
    assert!(
        ip_out.contains("2001:db8:6::1 dev r0 src fd00:2::1 metric 1024"),
        "{ip_out}"
    );
    let (_, ip_local) = run_in(ns.name(), "ip", &["-6", "route", "show", "table", "local"]);
    assert!(
        ip_local.contains("local 2001:db8:a::1 dev lo"),
        "{ip_local}"
    );

    // Rules: inverted fwmark, from/to prefixes, iif, mark-bits-zero.
    let not_marked = Rule6::new(1000, 100).fwmark(0x6d69, 0x6d69).invert();
    let from = Rule6::new(1001, 101)
        .fwmark(0, 0x6d69)
        .source(addr("2001:db8:a::1"), 128);
    let to_iif = Rule6::new(1002, 102)
        .destination(addr("2001:db8:b::"), 64)
        .iif("r0");
    for r in [&not_marked, &from, &to_iif] {
        nl.add_rule(r).await.expect("add rule");
    }
    let rules = nl.rules().await.expect("dump rules");
    for r in [&not_marked, &from, &to_iif] {
        assert!(rules.contains(r), "{r:?} not in {rules:?}");
    }
    let (_, ip_rules) = run_in(ns.name(), "ip", &["-6", "rule", "show"]);
    assert!(
        ip_rules.contains("1000:\tnot from all fwmark 0x6d69/0x6d69 lookup 100"),
        "{ip_rules}"
    );
    assert!(
        ip_rules.contains("1001:\tfrom 2001:db8:a::1 fwmark 0/0x6d69 lookup 101"),
        "{ip_rules}"
    );
    assert!(
        ip_rules.contains("1002:\tfrom all to 2001:db8:b::/64 iif r0 lookup 102"),
        "{ip_rules}"
    );
    nl.del_rule(&from).await.expect("del rule");
    assert!(!nl.rules().await.expect("dump").contains(&from));
    let gone = nl.del_rule(&from).await.expect_err("already gone");
    assert!(gone.is_not_found(), "{gone}");

    assert_eq!(nl.flush_table(100).await.expect("flush"), 2);
    assert!(nl.routes(100).await.expect("dump").is_empty());
    nl.del_route(&local).await.expect("del local");
}

/// Normalises `tc -s filter show` output: action indexes differ between two
/// otherwise identical filters, and the action's timers (`installed N sec
/// used N sec`, printed only once they are non-zero) depend on when it runs.
fn normalise_tc(out: &str) -> String {
    out.lines()
        .map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            let mut kept = Vec::new();
            let mut i = 0;
            while i < words.len() {
                match words[i].trim() {
                    "installed" | "used" | "firstused" => i += 3,
                    "index" => {
                        kept.push(words[i].to_string());
                        kept.push("N".into());
                        i += 2;
                    }
                    _ => {
                        kept.push(words[i].to_string());
                        i += 1;
                    }
                }
            }
            kept.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn tc_filter_matches_what_tc_makes() {
    require_root!("tc_filter_matches_what_tc_makes");
    let ns = NetnsGuard::create_unique("mip6t").expect("ns");
    let nl = Netlink::in_netns(ns.name()).expect("netlink");
    let tun = Tun::create_in(ns.name(), &TunConfig::new("mip0")).expect("tun");
    for (x, y) in [("byc", "byc-p"), ("bynl", "bynl-p")] {
        nl.add_veth(VethEnd::new(x), VethEnd::new(y))
            .await
            .expect("veth");
    }
    // The reference, made by tc(8).
    for args in [
        &["qdisc", "add", "dev", "byc", "ingress"][..],
        &[
            "filter", "add", "dev", "byc", "parent", "ffff:", "protocol", "ipv6", "u32", "match",
            "u8", "43", "0xff", "at", "6", "action", "mirred", "egress", "redirect", "dev", "mip0",
        ][..],
    ] {
        let (ok, _) = run_in(ns.name(), "tc", args);
        assert!(ok, "tc {args:?}");
    }
    // Ours, by netlink.
    let bynl = nl.link_index("bynl").await.expect("bynl");
    nl.add_ingress_qdisc(bynl, QdiscKind::Ingress)
        .await
        .expect("qdisc");
    nl.add_nexthdr_redirect(bynl, QdiscKind::Ingress, None, 43, tun.index())
        .await
        .expect("filter");

    let show = |dev: &str| {
        let (ok, out) = run_in(
            ns.name(),
            "tc",
            &["-s", "filter", "show", "dev", dev, "ingress"],
        );
        assert!(ok);
        out
    };
    let (by_tc, by_nl) = (show("byc"), show("bynl"));
    assert!(by_tc.contains("match 00002b00/0000ff00 at 4"), "{by_tc}");
    assert!(
        by_tc.contains("mirred (Egress Redirect to device mip0) stolen"),
        "{by_tc}"
    );
    assert_eq!(normalise_tc(&by_nl), normalise_tc(&by_tc));

    // Our dump parser reads both the same way.
    let byc = nl.link_index("byc").await.expect("byc");
    let f_tc = nl
        .filters(byc, QdiscKind::Ingress)
        .await
        .expect("dump tc's");
    let f_nl = nl
        .filters(bynl, QdiscKind::Ingress)
        .await
        .expect("dump ours");
    assert_eq!(f_tc, f_nl);
    assert_eq!(f_nl.len(), 1);
    let f = &f_nl[0];
    assert_eq!((f.prio, f.protocol, f.handle), (49152, 0x86dd, 0x8000_0800));
    assert_eq!(f.keys, vec![U32Key::u8_at(43, 6)]);
    assert!(f.terminal && f.stolen);
    assert_eq!(f.redirect_to, Some(tun.index()));
    let q = nl.qdiscs(bynl).await.expect("qdiscs");
    assert!(
        q.iter()
            .any(|q| q.kind == "ingress" && q.handle == 0xffff_0000),
        "{q:?}"
    );

    // Delete by priority, then the qdisc; clsact works as well.
    nl.del_filters(bynl, QdiscKind::Ingress, 49152)
        .await
        .expect("del filter");
    assert!(
        nl.filters(bynl, QdiscKind::Ingress)
            .await
            .expect("dump")
            .is_empty()
    );
    nl.del_ingress_qdisc(bynl, QdiscKind::Ingress)
        .await
        .expect("del qdisc");
    assert!(
        !nl.qdiscs(bynl)
            .await
            .expect("qdiscs")
            .iter()
            .any(|q| q.kind == "ingress")
    );
    nl.add_ingress_qdisc(bynl, QdiscKind::Clsact)
        .await
        .expect("clsact");
    nl.add_nexthdr_redirect(bynl, QdiscKind::Clsact, Some(7), 60, tun.index())
        .await
        .expect("clsact filter");
    let (_, out) = run_in(
        ns.name(),
        "tc",
        &["filter", "show", "dev", "bynl", "ingress"],
    );
    assert!(out.contains("pref 7 u32"), "{out}");
    assert!(out.contains("match 00003c00/0000ff00 at 4"), "{out}");
    let dup = nl
        .add_ingress_qdisc(bynl, QdiscKind::Clsact)
        .await
        .expect_err("twice");
    assert!(dup.is_exists(), "{dup}");
}
