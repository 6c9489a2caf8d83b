//! pcap capture of an emulated link: the file parses back (pcap-file and
//! tshark) with every packet that entered, in both directions, and the side
//! file says which way each went and what happened to it.

mod linkemu_support;

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use linkemu_support::*;
use nix::sys::socket::SockType;
use pcap_file::pcap::PcapReader;
use pcap_file::{DataLink, TsResolution};
use testbed::linkemu::{DirectionConfig, EmulatedLink, LinkConfig, frames_path, pcap_path};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("linkemu-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// An IPv6/UDP packet (RFC 8200, RFC 768 with the RFC 8200 8.1 pseudo-header).
fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = (8 + payload.len()) as u16;
    let mut p = Vec::with_capacity(40 + ulen as usize);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&ulen.to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&ulen.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut s = sum16(&src.octets()) + sum16(&dst.octets()) + u32::from(ulen) + 17;
    s += sum16(&p[40..]);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    let ck = match !(s as u16) {
        0 => 0xffff,
        c => c,
    };
    p[46..48].copy_from_slice(&ck.to_be_bytes());
    p
}

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn capture_holds_every_entering_packet_both_ways() {
    let dir = TempDir::new("cap");
    let a_addr: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
    let b_addr: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let (app_a, link_a, link_b, app_b) = two_pairs(SockType::SeqPacket);
    let mut cfg =
        LinkConfig::symmetric("c-r", DirectionConfig::with_delay(Duration::from_millis(1)));
    cfg.a_to_b.loss = 0.3;
    cfg.seed = 3;
    cfg.capture = Some(pcap_path(&dir.0, "c-r"));
    let pcap = cfg.capture.clone().unwrap();
    assert_eq!(pcap, dir.0.join("pcap/c-r.pcap"));

    let before = wall_ns();
    let link = EmulatedLink::start(cfg, link_a, link_b).unwrap();
    let mut sent_ab = Vec::new();
    let mut sent_ba = Vec::new();
    for i in 0..40u32 {
        let p = udp6(a_addr, b_addr, 5000, 6000, format!("a->b {i}").as_bytes());
        send(&app_a, &p).unwrap();
        sent_ab.push(p);
        if i % 2 == 0 {
            let p = udp6(b_addr, a_addr, 6000, 5000, format!("b->a {i}").as_bytes());
            send(&app_b, &p).unwrap();
            sent_ba.push(p);
        }
    }
    assert!(wait_until(Duration::from_secs(10), || {
        let s = link.stats();
        s.a_to_b.packets_in == 40
            && s.b_to_a.packets_in == 20
            && s.a_to_b.queued + s.b_to_a.queued == 0
    }));
    let after = wall_ns();
    let stats = link.stats();
    assert!(stats.a_to_b.dropped_loss > 0, "the test wants some loss");
    assert_eq!(stats.capture_errors, 0);

    // While the link still runs, everything that entered is on disk already
    // (the readers flush when their fd is drained).
    let file = std::fs::File::open(&pcap).unwrap();
    let mut r = PcapReader::new(file).unwrap();
    let h = r.header();
    assert_eq!(h.datalink, DataLink::RAW);
    assert_eq!(h.ts_resolution, TsResolution::NanoSecond);
    let mut captured = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        let ts = p.timestamp.as_nanos();
        assert!(
            before <= ts && ts <= after,
            "timestamp {ts} outside [{before}, {after}]"
        );
        assert_eq!(p.orig_len as usize, p.data.len());
        captured.push(p.data.into_owned());
    }
    assert_eq!(captured.len(), 60);

    // Side file: one line per frame, in the same order.
    let frames = std::fs::read_to_string(frames_path(&pcap)).unwrap();
    let mut lines = frames.lines();
    assert_eq!(lines.next(), Some("frame,direction,verdict,len"));
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 60);
    let (mut ab, mut ba, mut lost) = (Vec::new(), Vec::new(), 0);
    for (k, (row, data)) in rows.iter().zip(&captured).enumerate() {
        assert_eq!(row[0], (k + 1).to_string());
        assert_eq!(row[3], data.len().to_string());
        match row[1].as_str() {
            "a_to_b" => ab.push(data.clone()),
            "b_to_a" => ba.push(data.clone()),
            other => panic!("direction {other:?}"),
        }
        match row[2].as_str() {
            "lost" => lost += 1,
            "queued" => {}
            other => panic!("verdict {other:?}"),
        }
    }
    assert_eq!(ab, sent_ab, "a->b packets, in order, lost ones included");
    assert_eq!(ba, sent_ba);
    assert_eq!(lost, stats.a_to_b.dropped_loss);
    drop(link);

    if !tool_or_skip("tshark", "reading the capture with tshark") {
        return;
    }
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "ipv6.src",
            "-e",
            "udp.dstport",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(fields.len(), 60, "{text}");
    for (f, row) in fields.iter().zip(&rows) {
        assert_eq!(f[0], row[0]);
        let (src, dport) = if row[1] == "a_to_b" {
            ("2001:db8:1::10", "6000")
        } else {
            ("2001:db8:1::1", "5000")
        };
        assert_eq!((f[1], f[2]), (src, dport));
    }
}

#[test]
fn capture_in_an_unwritable_place_is_an_error() {
    let (_, link_a, link_b, _) = two_pairs(SockType::SeqPacket);
    let mut cfg = LinkConfig::symmetric("x", DirectionConfig::default());
    cfg.capture = Some(PathBuf::from("/proc/self/no/such/dir/x.pcap"));
    let e = EmulatedLink::start(cfg, link_a, link_b).unwrap_err();
    assert!(e.to_string().contains("x.pcap"), "{e}");
}
