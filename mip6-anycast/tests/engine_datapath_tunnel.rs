//! The engine carrying a real kernel TCP connection in namespaces (needs
//! root): C - R - HA / K, X on K's `lo`, tables programmed by hand.
//!
//! (a) Through the home agent: HA encapsulates to CoA_K, K decapsulates,
//!     K's answers from X go back through the reverse tunnel, the HA checks
//!     the registered care-of address and forwards to C.
//! (b) The same connection switched mid-stream to route optimization: RH2
//!     C -> K, HAO K -> C on the wire, the HA's counters stop growing, no
//!     RST, every byte echoed.
//! (g) C's link shrinks below what the steering route allows for: the
//!     raw socket refuses the rewritten packets, the engine tells C's TCP
//!     with an ICMPv6 Packet Too Big and the transfer completes.
#![cfg(feature = "engine")]

mod engine_datapath_util;

use engine_datapath_util::lab::{
    Digest, EchoClient, World, bulk_send, connect_from, echo_server, join_server, sink_server, x,
};
use engine_datapath_util::wire_tap::{Capture, TCP_RST, hao_of, rh2_of, tcp_flags, tunnel_of};
use mip6_anycast::engine::datapath::{Action, BindingKey, DatapathMode, DropReason, EngineStats};
use mip6_anycast::require_root;

/// No TCP RST anywhere on the wire (also inside tunnels).
fn assert_no_rst(frames: &[Vec<u8>]) {
    assert!(
        !frames
            .iter()
            .any(|f| tcp_flags(f).is_some_and(|fl| fl & TCP_RST != 0)),
        "a TCP RST was sent"
    );
}

fn count(s: &EngineStats, a: Action) -> u64 {
    s.action(a).packets
}

/// Drops other than the kernel's own MLD reports on the TUN.
fn unexpected_drops(s: &EngineStats) -> Vec<(DropReason, u64)> {
    s.drops
        .iter()
        .filter(|(r, n)| **n > 0 && **r != DropReason::TunLinkTraffic)
        .map(|(r, n)| (*r, *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_agent_tunnel_carries_a_kernel_tcp_connection() {
    require_root!("home_agent_tunnel_carries_a_kernel_tcp_connection");
    let w = World::new().await;
    let server = echo_server(&w.k.ns);
    let cap = Capture::start(&w.r_ns);
    let client = EchoClient::start(&w.c.ns, 8192);
    client.advance(1 << 20).await;
    let total = client.finish().await;
    assert_eq!(join_server(server).await, total);
    let frames = cap.finish();

    let ha = w.ha.stats().await;
    let k = w.k.stats().await;
    let c = w.c.stats().await;
    eprintln!(
        "HA: {} encapsulated, {} decapsulated; K: {} decapsulated, {} reverse tunnelled",
        count(&ha, Action::HomeTunnelEncapsulated),
        count(&ha, Action::HomeTunnelDecapsulated),
        count(&k, Action::ReverseTunnelDecapsulated),
        count(&k, Action::ReverseTunnelEncapsulated),
    );
    // Every data segment went through both tunnels, both ways.
    let segments = total / 8192;
    assert!(count(&ha, Action::HomeTunnelEncapsulated) >= segments);
    assert!(count(&ha, Action::HomeTunnelDecapsulated) >= segments);
    assert!(count(&k, Action::ReverseTunnelDecapsulated) >= segments);
    assert!(count(&k, Action::ReverseTunnelEncapsulated) >= segments);
    // What K reverse-tunnelled is what the HA decapsulated, and the other
    // way round: nothing lost, nothing dropped.
    assert_eq!(
        count(&k, Action::ReverseTunnelEncapsulated),
        count(&ha, Action::HomeTunnelDecapsulated)
    );
    assert_eq!(
        count(&ha, Action::HomeTunnelEncapsulated),
        count(&k, Action::ReverseTunnelDecapsulated)
    );
    assert_eq!(unexpected_drops(&ha), vec![]);
    assert_eq!(unexpected_drops(&k), vec![]);
    eprintln!(
        "datapaths: HA {:?}, K {:?}; HA read {} packets",
        ha.datapath, k.datapath, ha.received.packets
    );
    if ha.datapath == DatapathMode::TunOffloadBpf {
        // The tc programs tunnelled C's data: through the engine alone
        // every encapsulated and every decapsulated packet is read from
        // the TUN; here the encapsulated ones were not.
        assert!(
            ha.received.packets
                < count(&ha, Action::HomeTunnelEncapsulated)
                    + count(&ha, Action::HomeTunnelDecapsulated)
        );
    }
    // The binding usage counts both directions.
    let usage = ha
        .binding(&BindingKey::HomeTunnel { hoa: x() })
        .expect("home tunnel usage");
    assert_eq!(
        usage.packets,
        count(&ha, Action::HomeTunnelEncapsulated) + count(&ha, Action::HomeTunnelDecapsulated)
    );
    // C did nothing special: plain IPv6 both ways.
    assert_eq!(c.received.packets, c.drop_count(DropReason::TunLinkTraffic));

    // On the wire: tunnels HA <-> CoA_K, no RST.
    assert!(
        frames
            .iter()
            .any(|f| tunnel_of(f) == Some((w.ha.addr, w.k.addr)))
    );
    assert!(
        frames
            .iter()
            .any(|f| tunnel_of(f) == Some((w.k.addr, w.ha.addr)))
    );
    assert_no_rst(&frames);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_optimization_takes_over_a_live_connection() {
    require_root!("route_optimization_takes_over_a_live_connection");
    let w = World::new().await;
    let server = echo_server(&w.k.ns);
    let client = EchoClient::start(&w.c.ns, 8192);
    client.advance(256 << 10).await;
    let via_ha = w.ha.stats().await;
    assert!(count(&via_ha, Action::HomeTunnelEncapsulated) > 0);

    let cap = Capture::start(&w.r_ns);
    w.route_optimize().await;
    client.advance(256 << 10).await;
    let ha1 = w.ha.stats().await;
    client.advance(1 << 20).await;
    let ha2 = w.ha.stats().await;
    let total = client.finish().await;
    assert_eq!(join_server(server).await, total);
    let frames = cap.finish();

    // The home agent is out of the path.
    for a in [
        Action::HomeTunnelEncapsulated,
        Action::HomeTunnelDecapsulated,
    ] {
        assert_eq!(ha1.action(a), ha2.action(a), "{a:?} grew after the switch");
    }
    assert_eq!(ha1.received, ha2.received);

    let c = w.c.stats().await;
    let k = w.k.stats().await;
    eprintln!(
        "C: {} RH2 inserted, {} HAO stripped; K: {} RH2 stripped, {} HAO inserted",
        count(&c, Action::Rh2Inserted),
        count(&c, Action::HaoStripped),
        count(&k, Action::Rh2Stripped),
        count(&k, Action::HaoInserted),
    );
    let segments = (1 << 20) / 8192;
    assert!(count(&c, Action::Rh2Inserted) >= segments);
    assert!(count(&c, Action::HaoStripped) >= segments);
    assert!(count(&k, Action::Rh2Stripped) >= segments);
    assert!(count(&k, Action::HaoInserted) >= segments);
    assert_eq!(unexpected_drops(&c), vec![]);
    assert_eq!(unexpected_drops(&k), vec![]);
    let b = c
        .binding(&BindingKey::Correspondent {
            cn: w.c.addr,
            hoa: x(),
        })
        .expect("binding usage");
    assert_eq!(
        b.packets,
        count(&c, Action::Rh2Inserted) + count(&c, Action::HaoStripped)
    );
    assert!(b.idle_ms.is_some());

    // On the wire: RH2 C -> CoA_K carrying X, HAO CoA_K -> C carrying X.
    assert!(
        frames
            .iter()
            .any(|f| rh2_of(f) == Some((w.c.addr, w.k.addr, x()))),
        "no RH2 C -> K among {} frames",
        frames.len()
    );
    assert!(
        frames
            .iter()
            .any(|f| hao_of(f) == Some((w.k.addr, w.c.addr, x()))),
        "no HAO K -> C"
    );
    assert_no_rst(&frames);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_too_big_after_rewrite_reaches_the_local_sender() {
    require_root!("packet_too_big_after_rewrite_reaches_the_local_sender");
    let w = World::new().await;
    w.route_optimize().await;
    let server = sink_server(&w.k.ns);
    let stream = connect_from(&w.c.ns);
    // C's route to X leaves room for an RH2 on a 1500-octet link; make
    // the link 1400 (C's side only: K sends nothing but ACKs).
    let nl = w.lab.netlink(0).expect("netlink C");
    nl.set_link_mtu(w.lab.link(0).a_index, 1400)
        .await
        .expect("shrink C's link");
    let len: u64 = 2 << 20;
    let transfer = |stream, server: std::thread::JoinHandle<std::io::Result<Digest>>| async move {
        let sent = tokio::task::spawn_blocking(move || bulk_send(stream, len))
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("bulk transfer: {e}"));
        assert_eq!(join_server(server).await, sent);
    };
    transfer(stream, server).await;
    let c = w.c.stats().await;
    eprintln!(
        "C: {} too big, {} Packet Too Big sent, {} RH2 inserted",
        c.drop_count(DropReason::TooBig),
        count(&c, Action::IcmpTooBigSent),
        count(&c, Action::Rh2Inserted)
    );
    assert!(c.drop_count(DropReason::TooBig) >= 1);
    assert!(count(&c, Action::IcmpTooBigSent) >= 1);
    assert!(count(&c, Action::Rh2Inserted) >= len / 1400);

    // C's kernel learnt the path MTU: a new connection fits at once.
    let server = sink_server(&w.k.ns);
    transfer(connect_from(&w.c.ns), server).await;
    let again = w.c.stats().await;
    assert_eq!(
        again.drop_count(DropReason::TooBig),
        c.drop_count(DropReason::TooBig)
    );
    assert!(count(&again, Action::Rh2Inserted) >= count(&c, Action::Rh2Inserted) + len / 1400);
    w.shutdown().await;
}
