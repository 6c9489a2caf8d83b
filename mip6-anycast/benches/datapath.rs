//! Per-packet cost of the datapath and end-to-end throughput through it:
//! `cargo bench -p mip6-anycast --bench datapath`.
//!
//! 1. Criterion, no I/O: [`Datapath::process`] (classify against the
//!    tables + rewrite in place) on a 1400-octet TCP-sized packet for each
//!    rewrite, beside a baseline that only copies the packet into the
//!    buffer (every iteration must restore the input). The processing cost
//!    is the difference of the two.
//!    Then the wire edits alone (HAO swap, which the datapath does not use,
//!    has no other bench) and the offload path: one rewrite of a 64 KB
//!    GSO super-packet (the cost is per super-packet, not per octet),
//!    cutting it into segments (partial or finished checksums), finishing
//!    a checksum, and joining segments back (user-space GRO). The PIAS
//!    NAT rewrite has its own bench: `cargo bench -p pias-proxy --bench nat`.
//! 2. As root only: a kernel TCP stream in namespaces (C - R - HA / K),
//!    printed in MB/s: direct (no engine), through the home agent tunnel
//!    (HA and K engines), route optimized (C and K engines). No threshold:
//!    this is a measurement; compare the ratios of one run.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mip6_anycast::engine::datapath::{Datapath, DatapathConfig, HEADROOM, TableUpdate, Verdict};
use mip6_anycast::engine::gro::{Coalescer, Push};
use mip6_anycast::engine::vnet::{self, F_NEEDS_CSUM, GSO_TCPV6, VnetHdr};
use mip6_anycast::wire::checksum;
use mip6_anycast::wire::{Bounds, Ipv6Repr, TunnelParams, edit, ip_proto};

#[path = "../tests/engine_datapath_util/mod.rs"]
mod util;

const LEN: usize = 1400;
/// Port of the throughput sink.
const PORT: u16 = 7001;

fn a(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

fn tcp(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut v = vec![0u8; LEN];
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: ip_proto::TCP,
        payload_len: LEN - 40,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(&mut v)
    .expect("emit");
    v
}

fn programmed(updates: &[TableUpdate]) -> Datapath {
    let mut dp = Datapath::new(DatapathConfig::default());
    for u in updates {
        dp.apply(u).expect("update");
    }
    dp
}

fn cases() -> Vec<(&'static str, Datapath, Vec<u8>)> {
    let (c, ha, x, coa) = (
        a("2001:db8:c::1"),
        a("2001:db8:a::1"),
        a("2001:db8:ff::1"),
        a("2001:db8:b::2"),
    );
    let cn = programmed(&[
        TableUpdate::AddLocalAddress { addr: c },
        TableUpdate::AddCorrespondentBinding { cn: c, hoa: x, coa },
    ]);
    let member = programmed(&[
        TableUpdate::AddLocalAddress { addr: coa },
        TableUpdate::AddLocalHomeAddress { hoa: x },
        TableUpdate::AddReverseTunnel {
            hoa: x,
            coa,
            home_agent: ha,
        },
        TableUpdate::AddHomeAddressBinding {
            hoa: x,
            peer: c,
            coa,
        },
    ]);
    let home_agent = programmed(&[
        TableUpdate::AddLocalAddress { addr: ha },
        TableUpdate::AddHomeTunnel {
            hoa: x,
            home_agent: ha,
            coa,
        },
    ]);
    let hao_in = edit::insert_hao_vec(&tcp(x, c), &coa).expect("hao");
    let rh2_in = edit::insert_rh2_vec(&tcp(c, x), &coa).expect("rh2");
    let tunnelled = edit::encapsulate_vec(&tcp(c, x), &TunnelParams::new(ha, coa)).expect("tunnel");
    vec![
        ("RH2 insert (correspondent out)", cn.clone(), tcp(c, x)),
        ("HAO strip (correspondent in)", cn, hao_in),
        ("RH2 strip (member in)", member.clone(), rh2_in),
        ("HAO insert (member out)", member.clone(), tcp(x, c)),
        ("encapsulate (home agent out)", home_agent, tcp(c, x)),
        ("decapsulate (member in)", member, tunnelled),
    ]
}

fn per_packet(c: &mut Criterion) {
    let now = Instant::now();
    for (name, mut dp, packet) in cases() {
        let mut buf = vec![0u8; HEADROOM + packet.len()];
        let b = Bounds {
            start: HEADROOM,
            len: packet.len(),
        };
        // The case does what its name says.
        buf[HEADROOM..].copy_from_slice(&packet);
        let v = dp.process(&mut buf, b, now);
        assert!(
            matches!(v, Verdict::Tun(_) | Verdict::Wire { .. }),
            "{name}: {v:?}"
        );
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.bench_function("baseline: copy packet", |bench| {
            bench.iter(|| {
                buf[HEADROOM..].copy_from_slice(black_box(&packet));
                black_box(&buf);
            })
        });
        g.bench_function("copy + classify + rewrite", |bench| {
            bench.iter(|| {
                buf[HEADROOM..].copy_from_slice(black_box(&packet));
                black_box(dp.process(&mut buf, b, now))
            })
        });
        g.finish();
    }
}

/// A TCP GSO super-packet of `len` octets as the TUN hands it over:
/// partial checksum (pseudo-header sum), 1428-octet segments.
fn gso_packet(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> (Vec<u8>, VnetHdr) {
    let mut p = tcp(src, dst);
    p.resize(len, 0);
    p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p[52] = 5 << 4;
    p[53] = 0x10;
    let seed = checksum::fold(checksum::pseudo_header_sum(
        &src,
        &dst,
        6,
        (len - 40) as u32,
    ));
    p[56..58].copy_from_slice(&seed.to_be_bytes());
    let h = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV6,
        hdr_len: 60,
        gso_size: 1428,
        csum_start: 40,
        csum_offset: 16,
    };
    (p, h)
}

fn wire_and_offload(c: &mut Criterion) {
    let (cn, x, coa) = (a("2001:db8:c::1"), a("2001:db8:ff::1"), a("2001:db8:b::2"));
    let now = Instant::now();
    let mut g = c.benchmark_group("wire edit");
    g.throughput(Throughput::Elements(1));
    let hao = edit::insert_hao_vec(&tcp(x, cn), &coa).expect("hao");
    let mut buf = hao.clone();
    g.bench_function("HAO swap (swap_hao, in place)", |bench| {
        bench.iter(|| black_box(edit::swap_hao(black_box(&mut buf), 0, hao.len())))
    });
    g.finish();

    let mut g = c.benchmark_group("offload, 64 KB GSO packet");
    g.throughput(Throughput::Elements(1));
    let len = 65000;
    let (gso, h) = gso_packet(cn, x, len);
    let mut dp = programmed(&[
        TableUpdate::AddLocalAddress { addr: cn },
        TableUpdate::AddCorrespondentBinding { cn, hoa: x, coa },
    ]);
    let mut buf = vec![0u8; HEADROOM + len + 64];
    let b = Bounds {
        start: HEADROOM,
        len,
    };
    g.bench_function("RH2 insert (process, header edit only)", |bench| {
        bench.iter(|| {
            // Restore only the header the edit moved; the payload is
            // untouched by design.
            buf[HEADROOM..HEADROOM + 64].copy_from_slice(&gso[..64]);
            black_box(dp.process_segments(&mut buf, b, now, 46))
        })
    });
    let mut seg = vec![0u8; 2048];
    g.bench_function(
        "segment into 1428-octet segments, partial checksums",
        |bench| {
            bench.iter(|| {
                vnet::segment(black_box(&gso), &h, false, &mut seg, |s, _| {
                    black_box(s);
                })
            })
        },
    );
    g.bench_function(
        "segment into 1428-octet segments, finished checksums",
        |bench| {
            bench.iter(|| {
                vnet::segment(black_box(&gso), &h, true, &mut seg, |s, _| {
                    black_box(s);
                })
            })
        },
    );
    let mut segs: Vec<(Vec<u8>, VnetHdr)> = Vec::new();
    vnet::segment(&gso, &h, false, &mut seg, |s, sh| {
        segs.push((s.to_vec(), *sh))
    })
    .expect("segment");
    let mut gro = Coalescer::new();
    g.bench_function("GRO: join the 46 segments back", |bench| {
        bench.iter(|| {
            for (s, sh) in &segs {
                assert_eq!(gro.push(s, sh), Push::Held);
            }
            black_box(gro.take().map(|(p, _)| p.len()))
        })
    });
    let mut one = gso.clone();
    g.bench_function("finish the TCP checksum (64 KB)", |bench| {
        bench.iter(|| {
            let mut hh = h;
            black_box(vnet::finish_checksum(&mut one, &mut hh))
        })
    });
    g.finish();
}

/// A sink on `[addr]:port` in `ns` that counts what one connection sends
/// and answers with the count (no per-byte work: the stream, not the
/// application, is measured).
fn counting_sink(ns: &str, addr: Ipv6Addr) -> std::thread::JoinHandle<std::io::Result<u64>> {
    let l = mip6_anycast::engine::netns::in_netns(ns, move || TcpListener::bind((addr, PORT)))
        .expect("enter namespace")
        .expect("listen");
    std::thread::spawn(move || {
        let (mut s, _) = l.accept()?;
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => break,
                k => n += k as u64,
            }
        }
        s.write_all(&n.to_be_bytes())?;
        Ok(n)
    })
}

/// Sends `len` bytes over a fresh connection to `[addr]` in `server_ns`;
/// returns MB/s (until the sink confirmed the count).
async fn stream(client_ns: &str, server_ns: &str, addr: Ipv6Addr, len: u64) -> f64 {
    let server = counting_sink(server_ns, addr);
    let to = std::net::SocketAddr::from((addr, PORT));
    let mut s = mip6_anycast::engine::netns::in_netns(client_ns, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(10))
    })
    .expect("enter namespace")
    .expect("connect");
    let t0 = Instant::now();
    let confirmed = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let chunk = vec![0x5au8; 1 << 16];
        let mut sent = 0u64;
        while sent < len {
            let k = chunk.len().min((len - sent) as usize);
            s.write_all(&chunk[..k])?;
            sent += k as u64;
        }
        s.shutdown(std::net::Shutdown::Write)?;
        let mut n = [0u8; 8];
        s.read_exact(&mut n)?;
        Ok(u64::from_be_bytes(n))
    })
    .await
    .expect("join")
    .expect("transfer");
    let secs = t0.elapsed().as_secs_f64();
    let counted = tokio::task::spawn_blocking(move || server.join())
        .await
        .expect("join")
        .expect("sink thread")
        .expect("sink");
    assert_eq!((confirmed, counted), (len, len));
    len as f64 / secs / 1e6
}

fn end_to_end() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("\n*** SKIP (needs root): end-to-end throughput in namespaces ***");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let w = util::lab::World::new().await;
        let len: u64 = 256 << 20;
        let (c, k) = (w.c.ns.clone(), w.k.ns.clone());
        let direct = stream(&c, &k, w.k.addr, len).await;
        let tunnel = stream(&c, &k, util::lab::x(), len).await;
        w.route_optimize().await;
        // Let the route change settle before measuring.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ro = stream(&c, &k, util::lab::x(), len).await;
        println!(
            "\nend-to-end TCP, {} MB per run, C -> K through R:",
            len >> 20
        );
        println!("  direct (kernel only)            {direct:9.1} MB/s  1.00");
        println!(
            "  through the home agent tunnel   {tunnel:9.1} MB/s  {:.3}",
            tunnel / direct
        );
        println!(
            "  route optimized (RH2 / HAO)     {ro:9.1} MB/s  {:.3}",
            ro / direct
        );
        w.shutdown().await;
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    per_packet(&mut c);
    wire_and_offload(&mut c);
    c.final_summary();
    // Only under `cargo bench`, not when `cargo test --benches` smoke-runs
    // the benchmarks.
    if std::env::args().any(|a| a == "--bench") {
        end_to_end();
    }
}
