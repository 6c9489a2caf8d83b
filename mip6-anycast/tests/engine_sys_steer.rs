//! Steering end to end in namespaces: Mobile IPv6 packets reach the engine's
//! TUN instead of the kernel (no ICMPv6 Parameter Problem), the kernel path
//! stays intact, packets written into the TUN are delivered, and marked
//! raw-socket packets never loop back into the TUN. Needs root.
#![cfg(feature = "engine")]

mod engine_sys_util;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};

use engine_sys_util::{HANG_GUARD, hao, ip6ip6, ipv6, mobility, ping, rh2, run_in, snmp6, udp};
use mip6_anycast::engine::netlink::{AddrOptions, Route6, Rule6, U32Key};
use mip6_anycast::engine::netns;
use mip6_anycast::engine::rawsock::{RawSender, RawSockError};
use mip6_anycast::engine::steer::{Headroom, Steering, SteeringConfig};
use mip6_anycast::engine::testing::Lab;
use mip6_anycast::engine::tun::AsyncTun;
use mip6_anycast::require_root;

const PARM_PROBLEMS: &str = "Icmp6OutParmProblems";
/// An experimental next header (RFC 3692) for probe packets.
const NH_PROBE: u8 = 253;

fn hoa() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1)
}

/// Reads the TUN until `want` matches; returns every packet read, the
/// matching one last.
async fn read_until(tun: &AsyncTun, want: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    let found = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let n = tun.recv(&mut buf).await.expect("tun read");
            let pkt = buf[..n].to_vec();
            let done = want(&pkt);
            seen.push(pkt);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "expected packet never reached the TUN; read {seen:?}"
    );
    seen
}

/// Waits until counter `name` in `ns` exceeds `before`.
async fn counter_rises(ns: &str, name: &str, before: u64) -> u64 {
    let waited = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let now = snmp6(ns, name);
            if now > before {
                return now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{name} in {ns} stayed at {before}"))
}

/// A lab of two nodes; B (node 1) answers every ICMPv6 error (no rate limit).
async fn two_nodes() -> (Lab, Ipv6Addr, Ipv6Addr) {
    let lab = Lab::chain(2).await.expect("lab");
    let (a, b) = (lab.link(0).a_addr, lab.link(0).b_addr);
    mip6_anycast::engine::sysctl::write(Some(lab.ns(1)), "net/ipv6/icmp/ratelimit", "0")
        .expect("icmp ratelimit");
    (lab, a, b)
}

async fn install(lab: &Lab, node: usize) -> (Steering, AsyncTun) {
    let nl = lab.netlink(node).expect("netlink");
    let iface = lab.link(0).end(node).expect("end").0.to_string();
    // This test reads the TUN itself: plain packets, no virtio header.
    let mut cfg = SteeringConfig::new("mip0", &[&iface]);
    cfg.tun.offload = false;
    let (steering, tun) = Steering::install(&nl, cfg).await.expect("install steering");
    (steering, tun.into_async().expect("async tun"))
}

#[tokio::test]
async fn mobile_ipv6_packets_reach_the_tun_not_the_kernel() {
    require_root!("mobile_ipv6_packets_reach_the_tun_not_the_kernel");
    let (lab, a, b) = two_nodes().await;
    let (ns_a, ns_b) = (lab.ns(0), lab.ns(1));
    let probes = [
        ("RH2", rh2(a, b, hoa())),
        ("HAO", hao(a, b, hoa())),
        ("MH", mobility(a, b)),
        ("IPv6-in-IPv6", ip6ip6(a, b, &udp(hoa(), b, 1, 2, b"inner"))),
    ];
    let raw = RawSender::new_in(ns_a, 0).expect("raw socket in A");

    // Control: without steering, B's kernel rejects each one with a
    // Parameter Problem (it has no Mobile IPv6 and no ip6ip6).
    let mut count = snmp6(ns_b, PARM_PROBLEMS);
    for (what, p) in &probes {
        raw.send(p).expect("send");
        count = counter_rises(ns_b, PARM_PROBLEMS, count).await;
        eprintln!("control: {what} answered with Parameter Problem");
    }

    let (steering, tun) = install(&lab, 1).await;
    for (what, p) in &probes {
        raw.send(p).expect("send");
        let seen = read_until(&tun, |pkt| pkt == p.as_slice()).await;
        eprintln!("{what} read from the TUN after {} packet(s)", seen.len());
    }
    // The kernel saw none of them.
    assert_eq!(snmp6(ns_b, PARM_PROBLEMS), count);
    // Everything else still goes through the kernel.
    assert!(ping(ns_a, b), "ping A -> B with steering");
    assert!(ping(ns_b, a), "ping B -> A with steering");
    assert_eq!(snmp6(ns_b, PARM_PROBLEMS), count);

    steering.remove().await.expect("remove");
    raw.send(&probes[0].1).expect("send");
    counter_rises(ns_b, PARM_PROBLEMS, count).await;
}

#[tokio::test]
async fn packet_written_into_tun_is_delivered_locally() {
    require_root!("packet_written_into_tun_is_delivered_locally");
    let (lab, a, _b) = two_nodes().await;
    let ns_b = lab.ns(1);
    let (_steering, tun) = install(&lab, 1).await;
    // The home address lives on B's lo, as a daemon would put it.
    let nl = lab.netlink(1).expect("netlink");
    let lo = nl.link_index("lo").await.expect("lo");
    nl.add_address(lo, hoa().into(), 128, AddrOptions::NODAD)
        .await
        .expect("hoa on lo");
    nl.wait_local(hoa(), Lab::READY_LIMIT)
        .await
        .expect("hoa usable");
    let sock = netns::in_netns(ns_b, || UdpSocket::bind((hoa(), 4000)))
        .expect("enter B")
        .expect("bind in B");
    sock.set_read_timeout(Some(HANG_GUARD)).expect("timeout");

    let pkt = udp(a, hoa(), 5000, 4000, b"decapsulated payload");
    assert_eq!(tun.send(&pkt).await.expect("tun write"), pkt.len());
    let mut buf = [0u8; 128];
    let (data, from) = tokio::task::spawn_blocking(move || {
        sock.recv_from(&mut buf)
            .map(|(n, f)| (buf[..n].to_vec(), f))
    })
    .await
    .expect("join")
    .expect("datagram delivered");
    assert_eq!(data, b"decapsulated payload");
    assert_eq!(from, SocketAddr::new(IpAddr::V6(a), 5000));
}

#[tokio::test]
async fn marked_packets_do_not_loop_unmarked_ones_are_steered() {
    require_root!("marked_packets_do_not_loop_unmarked_ones_are_steered");
    let (lab, a, b) = two_nodes().await;
    let (ns_a, ns_b) = (lab.ns(0), lab.ns(1));
    let (steering, tun) = install(&lab, 1).await;
    // B steers everything to A's address into its TUN.
    steering
        .steer_to(a, Headroom::RouteOptimization)
        .await
        .expect("steer to");
    let listener = netns::in_netns(ns_a, || {
        socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(i32::from(NH_PROBE))),
        )
    })
    .expect("enter A")
    .expect("raw listener in A");
    listener
        .set_read_timeout(Some(HANG_GUARD))
        .expect("timeout");

    let marked = steering.raw_sender().expect("marked raw socket");
    assert_eq!(marked.mark(), steering.fwmark());
    let unmarked = RawSender::new_in(ns_b, 0).expect("unmarked raw socket");
    let p_marked = ipv6(b, a, NH_PROBE, b"marked");
    let p_unmarked = ipv6(b, a, NH_PROBE, b"unmarked");

    marked.send(&p_marked).expect("send marked");
    // It went out the veth: A gets it.
    let got = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let n = (&listener)
            .read(&mut buf)
            .expect("A receives the marked packet");
        buf[..n].to_vec()
    })
    .await
    .expect("join");
    assert_eq!(got, b"marked");

    // The unmarked copy is routed into the TUN, and nothing marked came
    // before it (sends are routed in order).
    unmarked.send(&p_unmarked).expect("send unmarked");
    let seen = read_until(&tun, |p| p == p_unmarked.as_slice()).await;
    assert!(
        !seen.iter().any(|p| p == &p_marked),
        "marked packet looped back into the TUN"
    );

    // A kernel socket's traffic to A is steered too.
    netns::in_netns(ns_b, || {
        UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?.send_to(b"from a kernel socket", (a, 9))
    })
    .expect("enter B")
    .expect("udp send in B");
    let seen = read_until(&tun, |p| {
        p.len() > 48 && p[6] == 17 && p.ends_with(b"from a kernel socket")
    })
    .await;
    let datagram = seen.last().expect("datagram");
    assert_eq!(&datagram[24..40], &a.octets());

    // Raw sockets do not fragment: too big for the veth is a typed error.
    let big = ipv6(b, a, NH_PROBE, &[0u8; 1600]);
    assert!(matches!(
        marked.send(&big),
        Err(RawSockError::TooBig { len: 1640 })
    ));
    // Typed errors for malformed input, nothing sent.
    assert!(matches!(
        marked.send(&p_marked[..39]),
        Err(RawSockError::TooShort { .. })
    ));
}

#[tokio::test]
async fn steering_state_dumps_and_removal() {
    require_root!("steering_state_dumps_and_removal");
    let (lab, a, _b) = two_nodes().await;
    let ns_b = lab.ns(1);
    let (steering, tun) = install(&lab, 1).await;
    let nl = steering.netlink().clone();
    let cfg = steering.config().clone();
    let v0b = lab.link(0).b_index;
    let tun_index = steering.tun_index();
    assert_eq!(tun.index(), tun_index);

    // Filters: one per next header, redirecting to the TUN.
    let filters = nl.filters(v0b, cfg.qdisc).await.expect("filters");
    assert_eq!(filters.len(), 4, "{filters:?}");
    for (i, nh) in [43u8, 60, 135, 41].iter().enumerate() {
        let f = filters
            .iter()
            .find(|f| f.prio == cfg.filter_prio + i as u16)
            .expect("filter at its prio");
        assert_eq!(f.keys, vec![U32Key::u8_at(*nh, 6)]);
        assert_eq!(f.redirect_to, Some(tun_index));
        assert_eq!(f.protocol, 0x86dd);
        assert!(f.terminal && f.stolen);
    }
    assert!(
        nl.qdiscs(v0b)
            .await
            .expect("qdiscs")
            .iter()
            .any(|q| q.kind == "ingress")
    );

    // Rules and tables.
    steering
        .steer_to(hoa(), Headroom::RouteOptimization)
        .await
        .expect("steer to");
    // Replacing with another headroom is fine.
    steering
        .steer_to(a, Headroom::Tunnel)
        .await
        .expect("steer to");
    steering
        .steer_to(a, Headroom::RouteOptimization)
        .await
        .expect("again");
    steering.steer_from(hoa(), 128).await.expect("steer from");
    steering.steer_from(hoa(), 128).await.expect("idempotent");
    let rules = nl.rules().await.expect("rules");
    assert!(
        rules.contains(&Rule6::new(1000, 100).fwmark(0x6d69, 0x6d69).invert()),
        "{rules:?}"
    );
    assert!(rules.contains(&Rule6::new(1001, 101).fwmark(0, 0x6d69).source(hoa(), 128)));
    let t = nl.routes(cfg.table).await.expect("table");
    let r = t.iter().find(|r| r.dst == hoa()).expect("hoa route");
    assert_eq!(
        (r.dst_len, r.oif, r.mtu),
        (128, Some(tun_index), Some(1476))
    );
    assert_eq!(
        t.iter().find(|r| r.dst == a).and_then(|r| r.mtu),
        Some(1476)
    );
    let f = nl.routes(cfg.from_table).await.expect("from table");
    assert_eq!(
        f,
        vec![Route6 {
            metric: Some(1024),
            ..Route6::default_route()
                .dev(tun_index)
                .table(cfg.from_table)
                .mtu(1460)
        }]
    );

    // What the kernel's route lookup makes of it.
    let (_, get) = run_in(ns_b, "ip", &["-6", "route", "get", &hoa().to_string()]);
    assert!(
        get.contains("dev mip0 table 100") && get.contains("mtu 1476"),
        "{get}"
    );
    let (_, get) = run_in(
        ns_b,
        "ip",
        &["-6", "route", "get", &a.to_string(), "mark", "0x6d69"],
    );
    assert!(get.contains("dev v0b") && !get.contains("mip0"), "{get}");
    let (_, get) = run_in(
        ns_b,
        "ip",
        &[
            "-6",
            "route",
            "get",
            "fd00:6d36::99",
            "from",
            &hoa().to_string(),
        ],
    );
    assert!(get.contains("dev mip0 table 101"), "{get}");

    steering
        .unsteer_from(hoa(), 128)
        .await
        .expect("unsteer from");
    steering.unsteer_to(hoa()).await.expect("unsteer to");
    assert!(
        !nl.routes(cfg.table)
            .await
            .expect("table")
            .iter()
            .any(|r| r.dst == hoa())
    );

    // Installing again over the old state works (stale rules are cleared)...
    steering.remove().await.expect("remove");
    assert!(
        nl.filters(v0b, cfg.qdisc)
            .await
            .map(|f| f.is_empty())
            .unwrap_or(true)
    );
    assert!(
        !nl.qdiscs(v0b)
            .await
            .expect("qdiscs")
            .iter()
            .any(|q| q.kind == "ingress")
    );
    let rules = nl.rules().await.expect("rules");
    assert!(
        !rules.iter().any(|r| r.table == 100 || r.table == 101),
        "{rules:?}"
    );
    assert!(nl.routes(cfg.table).await.expect("t").is_empty());
    assert!(nl.routes(cfg.from_table).await.expect("f").is_empty());
    drop(tun);
    // ...and a leftover rule from a crashed run does not block install.
    nl.add_rule(&Rule6::new(1000, 100).fwmark(0x6d69, 0x6d69).invert())
        .await
        .expect("stale rule");
    let (again, _tun) = install(&lab, 1).await;
    again.remove().await.expect("remove");
}
