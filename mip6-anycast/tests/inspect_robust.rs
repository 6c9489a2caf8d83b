//! The inspector's capture reader and link layers on variants built here
//! from the fixture packets (byte orders, nanosecond pcap, pcapng blocks,
//! every supported link type), and on hostile files: every prefix of a
//! capture, absurd record lengths, malformed pcapng blocks, deep tunnels.

mod inspect_common;

use inspect_common::{hex, load};
use mip6_anycast::inspect::{self, CaptureError, CaptureReport, MAX_TUNNEL_DEPTH};
use mip6_anycast::wire::{TunnelParams, ip6ip6};

/// The fixture packets (raw IPv6).
fn packets() -> Vec<Vec<u8>> {
    load("mip6_fixtures.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|f| hex(f["hex"].as_str().unwrap()))
        .collect()
}

fn pcap(big_endian: bool, nanos: bool, link: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let w32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend(w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    f.extend(w16(2));
    f.extend(w16(4));
    f.extend(w32(0));
    f.extend(w32(0));
    f.extend(w32(65535));
    f.extend(w32(link));
    for (i, d) in frames.iter().enumerate() {
        f.extend(w32(1_700_000_000));
        f.extend(w32(if nanos {
            i as u32 * 1_000_001
        } else {
            i as u32 * 1000
        }));
        f.extend(w32(d.len() as u32));
        f.extend(w32(d.len() as u32));
        f.extend(d);
    }
    f
}

fn ng_block(be: bool, t: u32, body: &[u8]) -> Vec<u8> {
    let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut body = body.to_vec();
    body.resize(body.len().div_ceil(4) * 4, 0);
    let n = body.len() as u32 + 12;
    let mut b = w32(t).to_vec();
    b.extend(w32(n));
    b.extend(body);
    b.extend(w32(n));
    b
}

/// pcapng: a section, one interface (default microsecond timestamps),
/// then enhanced packet blocks; with `simple`, simple packet blocks.
fn pcapng(be: bool, link: u16, frames: &[Vec<u8>], simple: bool) -> Vec<u8> {
    let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut shb = w32(0x1a2b_3c4d).to_vec();
    shb.extend(w16(1));
    shb.extend(w16(0));
    shb.extend([0xff; 8]);
    let mut f = ng_block(be, 0x0a0d_0d0a, &shb);
    let mut idb = w16(link).to_vec();
    idb.extend(w16(0));
    idb.extend(w32(0));
    f.extend(ng_block(be, 1, &idb));
    for (i, d) in frames.iter().enumerate() {
        if simple {
            let mut b = w32(d.len() as u32).to_vec();
            b.extend(d);
            f.extend(ng_block(be, 3, &b));
        } else {
            let ts = 1_700_000_000_000_000u64 + i as u64 * 1000;
            let mut b = w32(0).to_vec();
            b.extend(w32((ts >> 32) as u32));
            b.extend(w32(ts as u32));
            b.extend(w32(d.len() as u32));
            b.extend(w32(d.len() as u32));
            b.extend(d);
            f.extend(ng_block(be, 6, &b));
        }
    }
    f
}

fn layers_json(r: &CaptureReport) -> Vec<serde_json::Value> {
    r.packets
        .iter()
        .map(|p| {
            serde_json::json!([
                p.ipv6,
                p.mh_type,
                p.checksum_ok,
                p.authenticator_ok,
                p.malformed,
                p.error
            ])
        })
        .collect()
}

#[test]
fn byte_orders_resolutions_and_link_types_decode_alike() {
    let pkts = packets();
    let want = layers_json(&inspect::inspect_bytes(&pcap(false, false, 101, &pkts)).unwrap());
    let framed = |pre: &[u8]| -> Vec<Vec<u8>> {
        pkts.iter()
            .map(|p| {
                let mut v = pre.to_vec();
                v.extend(p);
                v
            })
            .collect()
    };
    let mut sll = vec![0u8; 14];
    sll.extend([0x86, 0xdd]);
    let mut sll2 = vec![0x86, 0xdd];
    sll2.extend([0u8; 18]);
    let mut vlan = vec![0u8; 12];
    vlan.extend([0x81, 0x00, 0x00, 0x07, 0x86, 0xdd]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("big-endian pcap", pcap(true, false, 101, &pkts)),
        ("nanosecond pcap", pcap(false, true, 101, &pkts)),
        ("LINKTYPE_IPV6", pcap(false, false, 229, &pkts)),
        ("raw 12", pcap(true, false, 12, &pkts)),
        ("raw 14", pcap(false, false, 14, &pkts)),
        ("Linux cooked", pcap(false, false, 113, &framed(&sll))),
        ("Linux cooked v2", pcap(false, false, 276, &framed(&sll2))),
        ("Ethernet + 802.1Q", pcap(false, false, 1, &framed(&vlan))),
        (
            "NULL (Linux AF_INET6)",
            pcap(false, false, 0, &framed(&[10, 0, 0, 0])),
        ),
        (
            "LOOP (AF_INET6 24)",
            pcap(false, false, 108, &framed(&[0, 0, 0, 24])),
        ),
        ("pcapng LE", pcapng(false, 101, &pkts, false)),
        ("pcapng BE", pcapng(true, 101, &pkts, false)),
        ("pcapng simple blocks", pcapng(true, 229, &pkts, true)),
    ];
    for (what, file) in cases {
        let r = inspect::inspect_bytes(&file).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.capture_error, None, "{what}");
        let got = layers_json(&r);
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g == w, "{what}: packet {i} differs:\n{g}\n{w}");
        }
    }
    let ns = inspect::inspect_bytes(&pcap(false, true, 101, &pkts)).unwrap();
    assert_eq!(ns.packets[3].timestamp, "1700000000.003000003");
    let ng = inspect::inspect_bytes(&pcapng(true, 101, &pkts, false)).unwrap();
    assert_eq!(ng.packets[2].timestamp, "1700000000.002000000");
    assert_eq!(ng.link_type, None);
}

#[test]
fn every_prefix_of_a_capture_is_handled() {
    let data = std::fs::read(inspect_common::testdata("inspect_capture.pcap")).unwrap();
    let mut boundaries = vec![24];
    while let Some(&at) = boundaries.last().filter(|&&a| a < data.len()) {
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        boundaries.push(at + 16 + len);
    }
    for n in 0..=data.len() {
        match inspect::inspect_bytes(&data[..n]) {
            Err(e) => assert!(n < 24, "prefix {n}: {e}"),
            Ok(r) => {
                let complete = boundaries.iter().take_while(|&&b| b <= n).count() - 1;
                assert_eq!(r.packets.len(), complete, "prefix {n}");
                assert_eq!(
                    r.capture_error.is_some(),
                    !boundaries.contains(&n),
                    "prefix {n}"
                );
            }
        }
    }
}

#[test]
fn absurd_lengths_are_refused_without_allocating() {
    let mut f = pcap(false, false, 101, &packets()[..2]);
    f.extend(1_700_000_000u32.to_le_bytes());
    f.extend(0u32.to_le_bytes());
    f.extend(u32::MAX.to_le_bytes());
    f.extend(u32::MAX.to_le_bytes());
    let r = inspect::inspect_bytes(&f).unwrap();
    assert_eq!(r.packets.len(), 2);
    assert!(
        r.capture_error
            .unwrap()
            .contains("claims 4294967295 octets")
    );

    // A pcapng block length that is not a multiple of 4.
    let mut g = pcapng(false, 101, &packets()[..1], false);
    g.extend(6u32.to_le_bytes());
    g.extend(13u32.to_le_bytes());
    g.extend([0u8; 5]);
    let r = inspect::inspect_bytes(&g).unwrap();
    assert_eq!(r.packets.len(), 1);
    assert!(r.capture_error.unwrap().contains("bad length 13"));

    assert!(matches!(
        inspect::inspect_bytes(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]),
        Err(CaptureError::BadMagic(0xdead_beef))
    ));
    assert!(matches!(
        inspect::inspect_bytes(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]),
        Err(CaptureError::Truncated {
            need: 24,
            have: 8,
            ..
        })
    ));
    assert!(matches!(
        inspect::inspect_bytes(&[0xd4, 0xc3]),
        Err(CaptureError::BadHeader(_))
    ));
    assert!(matches!(
        inspect::inspect_bytes(&[0x55; 64]),
        Err(CaptureError::BadMagic(0x5555_5555))
    ));
}

#[test]
fn malformed_pcapng_blocks_are_skipped_and_reported() {
    let pkts = packets();
    let mut f = pcapng(false, 101, &pkts[..1], false);
    // An enhanced packet block whose captured length overruns the block.
    let mut b = 0u32.to_le_bytes().to_vec();
    b.extend([0u8; 8]);
    b.extend(500u32.to_le_bytes());
    b.extend(500u32.to_le_bytes());
    b.extend([0u8; 8]);
    f.extend(ng_block(false, 6, &b));
    // A packet on interface 7, which was never described.
    let mut b = 7u32.to_le_bytes().to_vec();
    b.extend([0u8; 8]);
    b.extend((pkts[1].len() as u32).to_le_bytes());
    b.extend((pkts[1].len() as u32).to_le_bytes());
    b.extend(&pkts[1]);
    f.extend(ng_block(false, 6, &b));
    f.extend(pcapng(false, 101, &pkts[2..3], false));
    let r = inspect::inspect_bytes(&f).unwrap();
    assert_eq!(r.capture_error, None);
    assert_eq!(r.packets.len(), 4);
    assert!(r.packets[1].malformed);
    assert!(
        r.packets[1]
            .error
            .as_ref()
            .unwrap()
            .contains("malformed pcapng block")
    );
    assert!(
        r.packets[2]
            .error
            .as_ref()
            .unwrap()
            .contains("unknown interface 7")
    );
    // The new section re-describes interface 0.
    assert!(!r.packets[3].malformed);
    assert_eq!(r.packets[3].mh_type, Some(2));
    assert_eq!(
        r.packets.iter().map(|p| p.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

#[test]
fn nested_tunnels_are_followed_to_a_bound() {
    let inner = &packets()[1]; // HoTI HoA -> CN
    let p = TunnelParams::new(
        "2001:db8:2::100".parse().unwrap(),
        "2001:db8:1::1".parse().unwrap(),
    );
    let mut pkt = inner.clone();
    for _ in 0..MAX_TUNNEL_DEPTH {
        pkt = ip6ip6::encapsulate_vec(&pkt, &p).unwrap();
    }
    let mut i = inspect::Inspector::new();
    let r = i.inspect_ipv6(0, 0, &pkt);
    assert!(!r.malformed, "{r}");
    assert_eq!((r.mh_type, r.checksum_ok), (Some(1), Some(true)));
    let deeper = ip6ip6::encapsulate_vec(&pkt, &p).unwrap();
    let r = i.inspect_ipv6(0, 0, &deeper);
    assert!(r.malformed);
    assert!(r.error.unwrap().contains("nested more than"));
    assert_eq!(r.index, 1);
}

#[test]
fn pseudo_random_files_never_panic() {
    let base = pcap(false, false, 101, &packets());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let mut f = base.clone();
        for _ in 0..(next() % 16) {
            let at = 24 + (next() as usize) % (f.len() - 24);
            f[at] = next() as u8;
        }
        let cut = 24 + (next() as usize) % (f.len() - 24);
        f.truncate(cut);
        let r = inspect::inspect_bytes(&f).unwrap();
        for p in &r.packets {
            assert_eq!(p.malformed, p.error.is_some());
            let _ = p.to_string();
        }
        serde_json::to_string(&r).unwrap();
    }
}
