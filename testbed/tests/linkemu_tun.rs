//! The emulated link between two real TUN devices, each in its own
//! throw-away network namespace: UDP between the namespaces crosses the
//! link both ways, delayed, in order, and captured. Needs root.

mod linkemu_support;

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use linkemu_support::*;
use testbed::linkemu::{DirectionConfig, EmulatedLink, LinkConfig, pcap_path};

const MS: u64 = 1_000_000;

#[test]
fn udp_crosses_two_tuns_delayed_in_order_and_captured() {
    if !root_or_skip("emulated link between TUN devices in namespaces") {
        return;
    }
    let pid = std::process::id();
    let a: Ipv6Addr = "2001:db8:77::1".parse().unwrap();
    let b: Ipv6Addr = "2001:db8:77::2".parse().unwrap();
    let ns_a = NsTun::create(&format!("lta{pid}"), a, 64, 5000).unwrap();
    let ns_b = NsTun::create(&format!("ltb{pid}"), b, 64, 6000).unwrap();
    let out = std::env::temp_dir().join(format!("linkemu-tun-{pid}"));
    let mut cfg =
        LinkConfig::symmetric("tun", DirectionConfig::with_delay(Duration::from_millis(5)));
    cfg.capture = Some(pcap_path(&out, "tun"));
    let pcap = cfg.capture.clone().unwrap();
    let link = EmulatedLink::start(cfg, ns_a.tun, ns_b.tun).unwrap();

    ns_b.udp
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    ns_a.udp
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let to_b = SocketAddrV6::new(b, 6000, 0, 0);
    let n = 50u64;
    let mut buf = [0u8; 2048];
    let mut last = None;
    for i in 0..n {
        ns_a.udp.send_to(&probe(i, 64), to_b).unwrap();
        let (len, from) = ns_b.udp.recv_from(&mut buf).expect("probe crosses a -> b");
        let (seq, sent) = parse_probe(&buf[..len]).unwrap();
        let took = now_ns() - sent;
        assert!(took >= 5 * MS, "probe {seq} took {took} ns < 5 ms");
        assert!(last.is_none_or(|l| seq > l), "reordered");
        last = Some(seq);
        // And back: b -> a.
        ns_b.udp.send_to(&buf[..len], from).unwrap();
        let (len, _) = ns_a.udp.recv_from(&mut buf).expect("echo crosses b -> a");
        let (echo_seq, sent) = parse_probe(&buf[..len]).unwrap();
        assert_eq!(echo_seq, seq);
        assert!(now_ns() - sent >= 10 * MS, "round trip under 2 x 5 ms");
    }
    let s = link.shutdown();
    // The kernel also sends its own packets (MLD, router solicitations).
    assert!(
        s.a_to_b.packets_out >= n && s.b_to_a.packets_out >= n,
        "{s:?}"
    );
    assert_eq!(s.a_to_b.write_errors + s.b_to_a.write_errors, 0);

    let file = std::fs::File::open(&pcap).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut udp = 0;
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        // IPv6, next header UDP, one of our two addresses as source.
        if p.data.first().map(|v| v >> 4) == Some(6) && p.data.get(6) == Some(&17) {
            udp += 1;
        }
    }
    assert_eq!(udp, 2 * n);
    let _ = std::fs::remove_dir_all(&out);
}
