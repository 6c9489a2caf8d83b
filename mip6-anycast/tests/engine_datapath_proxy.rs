//! PIAS proxy tables in the pure datapath (no root): an ingress proxy
//! tunnels a pinned flow to its join proxy, a join proxy translates to its
//! target and back (checksums stay valid, complete or partial), accepts
//! tunnels only from proxy peers and tunnel-mode targets, and punts what
//! no entry covers.
#![cfg(feature = "engine")]

mod engine_datapath_util;

use std::net::Ipv6Addr;
use std::time::Instant;

use engine_datapath_util::packets::*;
use mip6_anycast::engine::datapath::{
    Action, Datapath, DatapathConfig, DropReason, HEADROOM, NatBinding, ProxyEntryKind, ProxyFlow,
    PuntInfo, TableUpdate, Verdict,
};
use mip6_anycast::wire::{Bounds, Ipv6Packet, checksum, ip_proto, transport};
use proptest::prelude::*;

fn client() -> Ipv6Addr {
    a("2001:db8:c::1")
}
fn group() -> Ipv6Addr {
    a("2001:db8:aa::1")
}
fn iap() -> Ipv6Addr {
    a("2001:db8:1::1")
}
fn jap() -> Ipv6Addr {
    a("2001:db8:2::1")
}
fn nat() -> Ipv6Addr {
    a("2001:db8:2::99")
}
fn target() -> Ipv6Addr {
    a("2001:db8:d::5")
}

/// A TCP packet with a valid checksum.
fn tcp_packet(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), flags: u8, data: &[u8]) -> Vec<u8> {
    transport::emit_plain(ip_proto::TCP, src, dst, flags, data)
}

fn valid(p: &[u8]) -> bool {
    transport::checksum_ok(p)
}

fn flow() -> ProxyFlow {
    ProxyFlow {
        group: group(),
        group_port: 80,
        proto: ip_proto::TCP,
        client: client(),
        client_port: 40000,
    }
}

fn binding(tunnel: bool) -> NatBinding {
    NatBinding {
        target: target(),
        target_port: 8080,
        nat: nat(),
        nat_port: 20001,
        tunnel_from: tunnel.then(jap),
    }
}

fn proxy(me: Ipv6Addr, peer: Ipv6Addr, extra: &[TableUpdate]) -> Datapath {
    let mut dp = Datapath::new(DatapathConfig::default());
    let mut u = vec![
        TableUpdate::AddAnycastPrefix {
            prefix: a("2001:db8:aa::"),
            len: 48,
        },
        TableUpdate::AddNatAddress { addr: nat() },
        TableUpdate::AddProxyPeer { peer, local: me },
    ];
    u.extend_from_slice(extra);
    for x in &u {
        dp.apply(x).expect("update");
    }
    dp
}

fn run_with(dp: &mut Datapath, pkt: &[u8], partial: bool) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + pkt.len() + 16];
    buf[HEADROOM..HEADROOM + pkt.len()].copy_from_slice(pkt);
    let b = Bounds {
        start: HEADROOM,
        len: pkt.len(),
    };
    let v = dp.process_offloaded(&mut buf, b, Instant::now(), 1, partial);
    let out = match v {
        Verdict::Tun(b)
        | Verdict::Wire { bounds: b, .. }
        | Verdict::Punt(PuntInfo::Proxy { bounds: b, .. }) => buf[b.range()].to_vec(),
        _ => Vec::new(),
    };
    (v, out)
}

fn run(dp: &mut Datapath, pkt: &[u8]) -> (Verdict, Vec<u8>) {
    run_with(dp, pkt, false)
}

fn request() -> Vec<u8> {
    tcp_packet((client(), 40000), (group(), 80), 0x10, b"GET /")
}

#[test]
fn first_packet_is_punted_and_a_pinned_flow_is_tunnelled_to_its_jap() {
    let mut dp = proxy(iap(), jap(), &[]);
    let (v, out) = run(&mut dp, &request());
    assert!(
        matches!(v, Verdict::Punt(PuntInfo::Proxy { tunnel: None, .. })),
        "{v:?}"
    );
    assert_eq!(out, request());
    dp.apply(&TableUpdate::AddIngressFlow {
        flow: flow(),
        local: iap(),
        jap: jap(),
    })
    .unwrap();
    let (v, out) = run(&mut dp, &request());
    assert!(matches!(v, Verdict::Wire { .. }), "{v:?}");
    let ip = Ipv6Packet::new_checked(&out[..]).unwrap();
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.next_header()),
        (iap(), jap(), 41)
    );
    assert_eq!(&out[40..], &request()[..]);
    assert_eq!(
        dp.counters()
            .action_count(Action::ProxyIngressTunnelled)
            .packets,
        1
    );
    // Another client port is another flow: punted.
    let other = tcp_packet((client(), 40001), (group(), 80), 0x10, b"x");
    assert!(matches!(run(&mut dp, &other).0, Verdict::Punt(_)));
    // Usage is reported once per poll.
    let u = dp.take_proxy_usage();
    assert_eq!(u.len(), 1);
    assert_eq!(
        (u[0].kind, u[0].flow, u[0].usage.packets),
        (ProxyEntryKind::Ingress, flow(), 1)
    );
    assert!(dp.take_proxy_usage().is_empty());
}

#[test]
fn join_proxy_translates_both_ways_with_valid_checksums() {
    for partial in [false, true] {
        let mut dp = proxy(
            jap(),
            iap(),
            &[TableUpdate::AddNatBinding {
                flow: flow(),
                binding: binding(false),
            }],
        );
        // From the IAP's tunnel: decapsulated, hop limit decremented, translated.
        let mut req = request();
        if partial {
            // Offloaded: the field holds the pseudo-header sum.
            let len = (req.len() - 40) as u32;
            let s = checksum::fold(checksum::pseudo_header_sum(&client(), &group(), 6, len));
            req[56..58].copy_from_slice(&s.to_be_bytes());
        }
        let (v, mut out) = run_with(&mut dp, &tunnel(iap(), jap(), &req), partial);
        assert!(matches!(v, Verdict::Wire { .. }), "{v:?}");
        let f = transport::flow_of(&out).unwrap();
        assert_eq!(
            (f.src, f.sport, f.dst, f.dport),
            (nat(), 20001, target(), 8080)
        );
        assert_eq!(out[7], 63, "hop limit decremented after decapsulation");
        if partial {
            let c = !checksum::fold(checksum::sum(0, &out[40..]));
            out[56..58].copy_from_slice(&c.to_be_bytes());
        }
        assert!(valid(&out), "partial={partial}");
        // The target's reply to the NAT address: back to AA:g -> AC:p.
        let reply = tcp_packet((target(), 8080), (nat(), 20001), 0x10, b"200 OK");
        let (v, out) = run(&mut dp, &reply);
        assert!(matches!(v, Verdict::Wire { .. }), "{v:?}");
        let f = transport::flow_of(&out).unwrap();
        assert_eq!(
            (f.src, f.sport, f.dst, f.dport),
            (group(), 80, client(), 40000)
        );
        assert!(valid(&out));
        // A reply from another port or address has no binding: punted.
        let forged = tcp_packet((target(), 8081), (nat(), 20001), 0x10, b"x");
        assert!(matches!(run(&mut dp, &forged).0, Verdict::Punt(_)));
        let u = dp.take_proxy_usage();
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].usage.packets, u[0].usage.packets_in), (1, 1));
    }
}

#[test]
fn tunnels_only_from_peers_and_tunnel_mode_targets() {
    let stranger = a("2001:db8:9::9");
    let mut dp = proxy(
        jap(),
        iap(),
        &[TableUpdate::AddNatBinding {
            flow: flow(),
            binding: binding(true),
        }],
    );
    // Not a peer, not a target: the Mobile IPv6 tables refuse it.
    let (v, _) = run(&mut dp, &tunnel(stranger, jap(), &request()));
    assert_eq!(v, Verdict::Drop(DropReason::TunnelNotAllowed));
    // A peer's tunnel to another of our addresses is not the peer tunnel.
    let (v, _) = run(&mut dp, &tunnel(iap(), nat(), &request()));
    assert_eq!(v, Verdict::Drop(DropReason::TunnelNotAllowed));
    // Tunnel mode: the original packet goes to the target encapsulated.
    let (v, out) = run(&mut dp, &tunnel(iap(), jap(), &request()));
    assert!(matches!(v, Verdict::Wire { .. }), "{v:?}");
    let ip = Ipv6Packet::new_checked(&out[..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (jap(), target()));
    let inner = transport::flow_of(&out[40..]).unwrap();
    assert_eq!((inner.dst, inner.dport), (group(), 80));
    // The target's reply comes back tunnelled and goes to the client.
    let reply = tcp_packet((group(), 80), (client(), 40000), 0x10, b"ok");
    let (v, out) = run(&mut dp, &tunnel(target(), jap(), &reply));
    assert!(matches!(v, Verdict::Wire { .. }), "{v:?}");
    let f = transport::flow_of(&out).unwrap();
    assert_eq!((f.src, f.dst, f.dport), (group(), client(), 40000));
    assert!(valid(&out));
    // A reply for a flow the target does not serve is refused.
    let other = tcp_packet((group(), 80), (client(), 40999), 0x10, b"ok");
    let (v, _) = run(&mut dp, &tunnel(target(), jap(), &other));
    assert_eq!(v, Verdict::Drop(DropReason::ProxyTunnelRefused));
    // A non-transport packet from a peer is dropped and counted.
    let icmp = ipv6(
        client(),
        group(),
        ip_proto::ICMPV6,
        &[128, 0, 0, 0, 0, 1, 0, 1],
    );
    let (v, _) = run(&mut dp, &tunnel(iap(), jap(), &icmp));
    assert_eq!(v, Verdict::Drop(DropReason::ProxyNotTransport));
}

#[test]
fn proxy_destinations_are_never_written_back_into_the_tun() {
    let dp = proxy(jap(), iap(), &[]);
    assert!(dp.would_loop(&client(), &group()));
    assert!(dp.would_loop(&client(), &nat()));
    assert!(!dp.would_loop(&group(), &client()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Hostile bytes to the prefix, the NAT address or from a peer never
    /// panic, and every output is a complete IPv6 packet.
    #[test]
    fn hostile_proxy_packets_never_panic(tail in prop::collection::vec(any::<u8>(), 0..120),
                                         flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
                                         kind in 0u8..4, partial in any::<bool>()) {
        let base = tcp_packet((client(), 40000), (group(), 80), 0x10, &tail);
        let mut p = match kind {
            0 => base,
            1 => tunnel(iap(), jap(), &base),
            2 => tcp_packet((target(), 8080), (nat(), 20001), 0x10, &tail),
            _ => tunnel(target(), jap(), &tcp_packet((group(), 80), (client(), 40000), 0x10, &tail)),
        };
        for (i, v) in flips {
            let at = i.index(p.len());
            p[at] = v;
        }
        for tunnel_mode in [false, true] {
            let mut dp = proxy(jap(), iap(), &[
                TableUpdate::AddNatBinding { flow: flow(), binding: binding(tunnel_mode) },
                TableUpdate::AddIngressFlow { flow: ProxyFlow { client_port: 1, ..flow() }, local: jap(), jap: iap() },
            ]);
            let (_, out) = run_with(&mut dp, &p, partial);
            if !out.is_empty() {
                let ip = Ipv6Packet::new_checked(&out[..]).expect("output parses");
                prop_assert_eq!(ip.total_len(), out.len());
            }
        }
    }
}
