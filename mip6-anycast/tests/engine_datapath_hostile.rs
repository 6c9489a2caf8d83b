//! Hostile input and loops, in namespaces (needs root): C - R - HA / K.
//!
//! (e) Random and malformed packets (truncated headers, bad RH2, bogus and
//!     nested tunnels, Mobility Header garbage, hop limit 0/1, ...) put on
//!     the wire from R toward every engine with a packet socket: no engine
//!     stops, every drop is counted under its reason, and a TCP connection
//!     through the HA keeps working throughout.
//! (f) No loop: a packet the engine would have to write into the TUN
//!     toward a steered destination (or from a steered source) is dropped,
//!     read exactly once; what the engine sends is never read back.
#![cfg(feature = "engine")]

mod engine_datapath_util;

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use engine_datapath_util::lab::{EchoClient, Node, World, echo_server, eventually, join_server, x};
use engine_datapath_util::packets::{a, hop_limit, hot, ipv6, tcp, tunnel, with_hao, with_rh2};
use engine_datapath_util::sys::udp;
use engine_datapath_util::wire_tap::{Capture, Injector, rh2_of};
use mip6_anycast::engine::datapath::{DropReason, EngineStats, SendVia, WireErrorKind};
use mip6_anycast::require_root;
use mip6_anycast::wire::ip_proto;

fn y() -> Ipv6Addr {
    a("fd00:6d36:ff::99")
}

fn d() -> Ipv6Addr {
    a("fd00:6d36:dd::1")
}

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random packets that the tc filters steer (version 6, next header
/// 43/60/135/41), half of them with a consistent length and addresses
/// from `pool`, so some get deep into the classification.
fn random_packets(rng: &mut Rng, n: usize, pool: &[Ipv6Addr]) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let len = 8 + rng.below(300);
            let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            p[0] = 0x60 | (p[0] & 0x0f);
            p[6] = [43, 60, 135, 41][rng.below(4)];
            if len >= 40 && rng.below(2) == 0 {
                p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
                let s = pool[rng.below(pool.len())];
                let t = pool[rng.below(pool.len())];
                p[8..24].copy_from_slice(&s.octets());
                p[24..40].copy_from_slice(&t.octets());
            }
            p
        })
        .collect()
}

/// Destination options (PadN only) in front of a UDP datagram.
fn with_dest_opts(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let u = udp(src, dst, 1, 2, b"dest opts");
    let mut payload = vec![ip_proto::UDP, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&u[40..]);
    ipv6(src, dst, ip_proto::DEST_OPTS, &payload)
}

fn hostile_for_c(w: &World) -> Vec<Vec<u8>> {
    let (r, c) = (w.c.r_addr, w.c.addr);
    let rh2 = with_rh2(&tcp(r, x(), b"rh2"), c);
    let mut too_long = rh2.clone();
    too_long[4..6].copy_from_slice(&1000u16.to_be_bytes());
    let mut seg0 = rh2.clone();
    seg0[43] = 0; // segments left 0
    // A Home Address option at offset 2 (RFC 6275 6.3 wants 8n+6).
    let mut misaligned = vec![ip_proto::UDP, 2, 201, 16];
    misaligned.extend_from_slice(&x().octets());
    misaligned.extend_from_slice(&[1, 2, 0, 0]);
    // A well-placed one carrying a multicast "home address".
    let mut multicast = vec![ip_proto::UDP, 2, 1, 2, 0, 0, 201, 16];
    multicast.extend_from_slice(&a("ff02::1").octets());
    vec![
        rh2[..20].to_vec(),
        too_long,
        seg0,
        with_hao(&udp(x(), c, 1, 2, b"no binding"), r),
        ipv6(
            r,
            c,
            ip_proto::MOBILITY,
            &[59, 1, 99, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        ),
        ipv6(r, c, ip_proto::MOBILITY, &[17, 0, 1, 0, 0, 0, 0, 0]),
        ipv6(r, c, ip_proto::MOBILITY, &[59, 200, 1, 0, 0, 0, 0, 0]),
        tunnel(r, c, &tcp(x(), c, b"bogus tunnel")),
        ipv6(r, c, ip_proto::DEST_OPTS, &misaligned),
        ipv6(r, c, ip_proto::DEST_OPTS, &multicast),
    ]
}

fn hostile_for_ha(w: &World) -> Vec<Vec<u8>> {
    let (r, ha, k, c) = (w.ha.r_addr, w.ha.addr, w.k.addr, w.c.addr);
    let good = tunnel(k, ha, &tcp(x(), c, b"spoofed care-of address"));
    let mut bad_inner = good.clone();
    bad_inner[45] = bad_inner[45].wrapping_sub(1); // inner payload length
    vec![
        tunnel(r, ha, &tcp(x(), c, b"unregistered")),
        tunnel(k, r, &tcp(x(), c, b"not our end")),
        tunnel(k, ha, &tunnel(x(), c, &tcp(x(), c, b"nested"))),
        hop_limit(hot(c, x(), 1), 1),
        hop_limit(hot(c, x(), 2), 0),
        hot(c, y(), 3),
        good[..60].to_vec(),
        bad_inner,
    ]
}

fn hostile_for_k(w: &World) -> Vec<Vec<u8>> {
    let (r, k) = (w.k.r_addr, w.k.addr);
    vec![
        with_rh2(&tcp(r, y(), b"unknown home address"), k),
        with_rh2(&tcp(r, x(), b"not at our care-of address"), r),
        with_dest_opts(x(), d()),
        tunnel(r, k, &tcp(r, x(), b"not from the home agent")),
        ipv6(r, x(), ip_proto::MOBILITY, &[59, 0, 5, 0, 0xde, 0xad, 0, 0]),
    ]
}

fn growth(before: &EngineStats, after: &EngineStats) -> BTreeMap<DropReason, u64> {
    DropReason::ALL
        .iter()
        .map(|r| (*r, after.drop_count(*r) - before.drop_count(*r)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn at_least(grown: &BTreeMap<DropReason, u64>, want: &[(DropReason, u64)], who: &str) {
    for (r, n) in want {
        let got = grown.get(r).copied().unwrap_or(0);
        assert!(
            got >= *n,
            "{who}: {r:?} grew by {got}, want >= {n}; all: {grown:?}"
        );
    }
}

/// A packet every engine drops as [`DropReason::UnknownHomeAddress`] (an
/// RH2 for a home address nobody has), which random bytes practically
/// never are (type 2, length 2 and segments left 1 by chance).
fn marker_packet(node: &Node) -> Vec<u8> {
    with_rh2(&tcp(node.r_addr, y(), b"marker"), node.addr)
}

/// Sends the marker and waits until the engine counted it: the TUN is a
/// FIFO, so everything injected before it has been processed by then.
/// `earlier` is how many packets of that reason were injected since
/// `before`.
async fn marker(inj: &Injector, node: &Node, before: &EngineStats, earlier: u64) {
    inj.send(&marker_packet(node)).expect("inject marker");
    let want = before.drop_count(DropReason::UnknownHomeAddress) + earlier + 1;
    eventually("the marker was read", || async {
        node.stats()
            .await
            .drop_count(DropReason::UnknownHomeAddress)
            >= want
    })
    .await;
}

/// Injects `packets` toward `node`, waits until all were processed and
/// returns the stats before and after.
async fn spray(inj: &Injector, node: &Node, packets: &[Vec<u8>]) -> (EngineStats, EngineStats) {
    let before = node.stats().await;
    for p in packets {
        inj.send(p).expect("inject");
    }
    let crafted_markers = packets
        .iter()
        .filter(|p| rh2_of(p).is_some_and(|(_, dst, hoa)| dst == node.addr && hoa == y()))
        .count() as u64;
    marker(inj, node, &before, crafted_markers).await;
    let after = node.stats().await;
    assert!(
        after.received.packets > before.received.packets + packets.len() as u64,
        "every sprayed packet was read"
    );
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_counted_and_the_connection_survives() {
    require_root!("hostile_input_is_counted_and_the_connection_survives");
    let w = World::new().await;
    let server = echo_server(&w.k.ns);
    let client = EchoClient::start(&w.c.ns, 4096);
    client.advance(128 << 10).await;

    let seed = 0x6d69_7036_u64 ^ u64::from(std::process::id());
    eprintln!("random packets from seed {seed:#x}");
    let mut rng = Rng(seed | 1);
    let pool = [
        w.c.addr,
        w.ha.addr,
        w.k.addr,
        w.c.r_addr,
        w.ha.r_addr,
        w.k.r_addr,
        x(),
        y(),
    ];
    let targets = [
        (&w.c, hostile_for_c(&w), "C"),
        (&w.ha, hostile_for_ha(&w), "HA"),
        (&w.k, hostile_for_k(&w), "K"),
    ];
    let mut grown = Vec::new();
    for (node, crafted, name) in &targets {
        let inj = Injector::open(&w.r_ns, &node.r_ifname);
        let mut all = crafted.clone();
        all.extend(random_packets(&mut rng, 300, &pool));
        let (before, after) = spray(&inj, node, &all).await;
        assert!(node.running(), "{name}'s engine stopped");
        eprintln!("{name}: drops {:?}", growth(&before, &after));
        grown.push((before, after));
    }
    // The connection kept going meanwhile, and still does.
    client.advance(256 << 10).await;

    let (c0, c1) = &grown[0];
    at_least(
        &growth(c0, c1),
        &[
            (DropReason::Malformed, 6),
            (DropReason::HaoWithoutBinding, 1),
            (DropReason::TunnelNotAllowed, 1),
        ],
        "C",
    );
    for k in [
        WireErrorKind::Truncated,
        WireErrorKind::BadRh2,
        WireErrorKind::BadChecksum,
        WireErrorKind::BadMhPayloadProto,
        WireErrorKind::BadOption,
        WireErrorKind::BadHomeAddress,
    ] {
        assert!(
            c1.wire_error_count(k) > c0.wire_error_count(k),
            "C: no {k:?} counted"
        );
    }
    let (h0, h1) = &grown[1];
    at_least(
        &growth(h0, h1),
        &[
            (DropReason::TunnelNotAllowed, 2),
            (DropReason::NestedTunnel, 1),
            (DropReason::HopLimit, 2),
            (DropReason::NotOurs, 1),
            (DropReason::Malformed, 2),
        ],
        "HA",
    );
    assert!(
        h1.wire_error_count(WireErrorKind::BadInnerLength)
            > h0.wire_error_count(WireErrorKind::BadInnerLength)
    );
    let (k0, k1) = &grown[2];
    at_least(
        &growth(k0, k1),
        &[
            (DropReason::UnknownHomeAddress, 1),
            (DropReason::NotOurs, 1),
            (DropReason::Loop, 1),
            (DropReason::TunnelNotAllowed, 1),
            (DropReason::Malformed, 1),
        ],
        "K",
    );
    for n in [&w.c, &w.ha, &w.k] {
        assert!(n.running());
    }
    let total = client.finish().await;
    assert_eq!(join_server(server).await, total);
    w.shutdown().await;
}

/// Packets the engine read, minus the kernel's own MLD noise on the TUN.
fn read_count(s: &EngineStats) -> u64 {
    s.received.packets - s.drop_count(DropReason::TunLinkTraffic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_written_into_the_tun_comes_back() {
    require_root!("nothing_written_into_the_tun_comes_back");
    let w = World::new().await;
    // C steers X into its TUN; K steers packets from X into its TUN.
    w.route_optimize().await;
    let inj_c = Injector::open(&w.r_ns, &w.c.r_ifname);
    let inj_k = Injector::open(&w.r_ns, &w.k.r_ifname);

    // Steered in (destination options) toward X, which C routes into its
    // TUN: handing it back to the kernel would loop.
    for (inj, node, p) in [
        (&inj_c, &w.c, with_dest_opts(w.c.r_addr, x())),
        // Claiming X as source toward a foreign address: K's kernel would
        // forward it into K's TUN by the "from X" rule.
        (&inj_k, &w.k, with_dest_opts(x(), d())),
    ] {
        let before = node.stats().await;
        inj.send(&p).expect("inject");
        marker(inj, node, &before, 0).await;
        let after = node.stats().await;
        assert_eq!(
            after.drop_count(DropReason::Loop),
            before.drop_count(DropReason::Loop) + 1
        );
        // Read exactly twice: the packet (once) and the marker.
        assert_eq!(read_count(&after), read_count(&before) + 2);
        assert_eq!(after.to_tun, before.to_tun);
    }

    // What the engine sends goes out marked: a packet to X (steered at C)
    // leaves unchanged through the raw socket (R, one hop on, drops it for
    // its hop limit) and is never read back from the TUN.
    let cap = Capture::start(&w.r_ns);
    let before = w.c.stats().await;
    let probe = hop_limit(udp(w.c.addr, x(), 9, 9, b"sent by the engine"), 1);
    w.c.engine
        .send(probe.clone(), SendVia::Direct)
        .await
        .expect("send probe");
    eventually("the probe reached R unchanged", || async {
        cap.seen(|f| f == probe.as_slice())
    })
    .await;
    marker(&inj_c, &w.c, &before, 0).await;
    let after = w.c.stats().await;
    assert_eq!(
        read_count(&after),
        read_count(&before) + 1,
        "only the marker"
    );
    assert_eq!(after.to_wire.packets, before.to_wire.packets + 1);
    let frames = cap.finish();
    assert!(!frames.iter().any(|f| rh2_of(f).is_some()));
    w.shutdown().await;
}
