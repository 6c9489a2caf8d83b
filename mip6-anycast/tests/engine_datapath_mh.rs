//! Mobility Header messages and binding errors reaching the control planes
//! through the engines, in namespaces (needs root): C - R - HA / K.
//!
//! (c) A Binding Update with a Home Address option sent to C is punted at
//!     C; a HoTI that K's control plane sends through the reverse tunnel
//!     reaches C through the HA as plain MH and is punted at C; the HoT C
//!     sends back to X is relayed by the HA through the tunnel and punted
//!     at K.
//! (d) A packet with a Home Address option and no binding is dropped at C
//!     and reported as `Punt::HaoWithoutBinding`; with the binding it
//!     reaches a kernel socket.
#![cfg(feature = "engine")]

mod engine_datapath_util;

use std::net::{SocketAddr, UdpSocket};

use engine_datapath_util::lab::{World, x};
use engine_datapath_util::packets::{bu, hot, hoti, with_hao};
use engine_datapath_util::sys::{HANG_GUARD, snmp6, udp};
use mip6_anycast::engine::datapath::{
    Action, DropReason, MobilityPunt, Punt, SendVia, TableUpdate, TunnelOuter,
};
use mip6_anycast::engine::netns;
use mip6_anycast::require_root;
use mip6_anycast::wire::MhMessage;

const PARM_PROBLEMS: &str = "Icmp6OutParmProblems";

/// `got` is `sent` with the hop limit lowered by `hops`.
fn assert_same_but_hop_limit(got: &[u8], sent: &[u8], hops: u8) {
    assert_eq!(got.len(), sent.len());
    assert_eq!(got[7], sent[7] - hops, "hop limit");
    assert_eq!(got[..7], sent[..7]);
    assert_eq!(got[8..], sent[8..]);
}

fn mobility(p: Punt) -> MobilityPunt {
    match p {
        Punt::Mobility(m) => m,
        other => panic!("expected a Mobility Header punt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mobility_headers_reach_the_control_planes() {
    require_root!("mobility_headers_reach_the_control_planes");
    let mut w = World::new().await;
    let c_parm = snmp6(&w.c.ns, PARM_PROBLEMS);

    // A BU from CoA_K with HAO = X, straight to C (one router on the way).
    let sent = bu(w.k.addr, x(), w.c.addr, 42);
    w.k.engine
        .send(sent.clone(), SendVia::Direct)
        .await
        .expect("send BU");
    let m = mobility(w.c.next_punt().await);
    assert_eq!((m.mh_type, m.tunnel), (5, None));
    assert_same_but_hop_limit(&m.packet, &sent, 1);
    let parsed = m.parse().expect("the punted BU parses and verifies");
    assert_eq!(parsed.repr.hao, Some(x()));
    assert!(matches!(
        parsed.repr.mh.message,
        MhMessage::BindingUpdate(b) if b.sequence == 42
    ));

    // A HoTI from X to C through K's reverse tunnel: the HA checks the
    // registered care-of address, decapsulates, its kernel forwards.
    let ha0 = w.ha.stats().await;
    let sent = hoti(x(), w.c.addr, 0x1122_3344);
    w.k.engine
        .send(
            sent.clone(),
            SendVia::ReverseTunnel {
                care_of_address: w.k.addr,
                home_agent: w.ha.addr,
            },
        )
        .await
        .expect("send HoTI");
    let m = mobility(w.c.next_punt().await);
    assert_eq!((m.mh_type, m.tunnel), (1, None));
    // The HA's forwarding and R each took one hop.
    assert_same_but_hop_limit(&m.packet, &sent, 2);
    assert_eq!(m.parse().expect("HoTI").repr.src_addr, x());
    let ha1 = w.ha.stats().await;
    assert_eq!(
        ha1.action(Action::HomeTunnelDecapsulated).packets,
        ha0.action(Action::HomeTunnelDecapsulated).packets + 1
    );

    // The HoT from C to X: MH bypasses bindings (RFC 6275 6.1), reaches
    // the HA, which relays it through X's tunnel to K (RFC 6275 10.4.6).
    let sent = hot(w.c.addr, x(), 0x1122_3344);
    w.c.engine
        .send(sent.clone(), SendVia::Direct)
        .await
        .expect("send HoT");
    let m = mobility(w.k.next_punt().await);
    assert_eq!(m.mh_type, 3);
    assert_eq!(
        m.tunnel,
        Some(TunnelOuter {
            src: w.ha.addr,
            dst: w.k.addr
        })
    );
    // R, then the HA's relay.
    assert_same_but_hop_limit(&m.packet, &sent, 2);
    let ha2 = w.ha.stats().await;
    assert_eq!(
        ha2.action(Action::MobilityRelayed).packets,
        ha1.action(Action::MobilityRelayed).packets + 1
    );
    // No kernel ever saw a Mobile IPv6 header it would reject.
    assert_eq!(snmp6(&w.c.ns, PARM_PROBLEMS), c_parm);
    assert_eq!(snmp6(&w.k.ns, PARM_PROBLEMS), 0);
    assert_eq!(snmp6(&w.ha.ns, PARM_PROBLEMS), 0);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hao_without_binding_is_dropped_and_reported() {
    require_root!("hao_without_binding_is_dropped_and_reported");
    let mut w = World::new().await;
    let (c, k) = (w.c.addr, w.k.addr);
    let sock = netns::in_netns(&w.c.ns, move || UdpSocket::bind((c, 6000)))
        .expect("enter C")
        .expect("bind at C");
    sock.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let datagram = |payload: &[u8]| with_hao(&udp(x(), c, 5000, 6000, payload), k);

    let refused = Punt::HaoWithoutBinding {
        src: k,
        dst: c,
        hoa: x(),
    };
    // No binding at all.
    w.k.engine
        .send(datagram(b"no binding"), SendVia::Direct)
        .await
        .expect("send");
    assert_eq!(w.c.next_punt().await, refused);
    // A binding to another care-of address (RFC 6275 9.3.1).
    w.c.program(vec![TableUpdate::AddCorrespondentBinding {
        cn: c,
        hoa: x(),
        coa: w.ha.addr,
    }])
    .await;
    w.k.engine
        .send(datagram(b"wrong care-of address"), SendVia::Direct)
        .await
        .expect("send");
    assert_eq!(w.c.next_punt().await, refused);
    let s = w.c.stats().await;
    assert_eq!(s.drop_count(DropReason::HaoWithoutBinding), 2);
    assert_eq!(s.action(Action::HaoStripped).packets, 0);

    // The right binding: the option is stripped and the kernel delivers
    // the datagram from X, checksum intact (computed over X).
    w.c.program(vec![TableUpdate::AddCorrespondentBinding {
        cn: c,
        hoa: x(),
        coa: k,
    }])
    .await;
    w.k.engine
        .send(datagram(b"bound"), SendVia::Direct)
        .await
        .expect("send");
    let (data, from) = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 64];
        sock.recv_from(&mut buf)
            .map(|(n, from)| (buf[..n].to_vec(), from))
    })
    .await
    .expect("join")
    .expect("datagram delivered at C");
    // The two refused datagrams were never delivered: this is the first.
    assert_eq!(data, b"bound");
    assert_eq!(from, SocketAddr::from((x(), 5000)));
    let s = w.c.stats().await;
    assert_eq!(s.action(Action::HaoStripped).packets, 1);
    assert_eq!(snmp6(&w.c.ns, PARM_PROBLEMS), 0);
    w.shutdown().await;
}
