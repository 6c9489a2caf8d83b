//! Costs of the wire layer, each next to a baseline:
//!
//! * `mh/*`: parse (`MhPacketRepr::parse_with_bytes`, checksum verified)
//!   and emit (into a preallocated buffer; and with the RFC 6275 6.2.7
//!   authenticator computed, HMAC-SHA1) of a Binding Update (CoA -> CN,
//!   HAO, Nonce Indices, Binding Authorization Data) and of a Binding
//!   Acknowledgement (CN -> CoA, RH2, Binding Refresh Advice, Binding
//!   Authorization Data). Baselines: `copy_from_slice` of the same packet
//!   and the bare `ExtChain::walk`.
//! * `edit/1500` and `edit/65535`: the in-place datapath edits on a TCP
//!   packet of 1500 octets and on a 64 KB GSO super-packet (65535 octets,
//!   the largest for which every edit fits the 16-bit payload length): RH2
//!   insert / strip, HAO insert / swap / strip, IPv6-in-IPv6 encapsulate /
//!   decapsulate. Each edit is timed alone (`iter_batched_ref`: the fresh
//!   packet is prepared outside the timing). Baseline: `copy_from_slice`
//!   of the whole packet into a preallocated buffer, i.e. what an edit that
//!   moved the payload would cost at least.
//!
//! Every figure is time per packet. Run:
//! `cargo bench -p mip6-anycast --no-default-features --bench wire`.

use std::hint::black_box;
use std::net::Ipv6Addr;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mip6_anycast::crypto::{Kbm, bu_authenticator};
use mip6_anycast::wire::edit::{self, DEFAULT_HEADROOM};
use mip6_anycast::wire::{
    BaFlags, BaStatus, BindingAckRepr, BindingUpdateRepr, BuFlags, ExtChain, Ipv6Repr, MhMessage,
    MhPacketRepr, MhRepr, MobilityOption, TunnelParams, ip_proto,
};

const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x10);

fn bu() -> MhPacketRepr {
    let mut p = MhPacketRepr::new(
        COA,
        CN,
        MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
            sequence: 0x1234,
            flags: BuFlags::ACK,
            lifetime: 105,
        }))
        .with_option(MobilityOption::NonceIndices {
            home_nonce_index: 0x0101,
            care_of_nonce_index: 0x0202,
        })
        .with_option(MobilityOption::BindingAuthData {
            authenticator: [0; 12],
        }),
    );
    p.hao = Some(HOA);
    p
}

fn ba() -> MhPacketRepr {
    let mut p = MhPacketRepr::new(
        CN,
        COA,
        MhRepr::new(MhMessage::BindingAck(BindingAckRepr {
            status: BaStatus::Accepted,
            flags: BaFlags::empty(),
            sequence: 0x1234,
            lifetime: 105,
        }))
        .with_option(MobilityOption::BindingRefreshAdvice {
            refresh_interval: 100,
        })
        .with_option(MobilityOption::BindingAuthData {
            authenticator: [0; 12],
        }),
    );
    p.rh2 = Some(HOA);
    p
}

fn mh_benches(c: &mut Criterion) {
    let kbm = Kbm::from_bytes([0x42; 20]);
    for (name, repr, auth_addrs) in [("BU", bu(), (COA, CN)), ("BA", ba(), (COA, CN))] {
        let signed = repr
            .to_bytes_with_binding_auth(|i| {
                *bu_authenticator(&kbm, auth_addrs.0, auth_addrs.1, &i.to_vec()).as_bytes()
            })
            .expect("emit");
        let mut g = c.benchmark_group(format!("mh/{name} ({} B)", signed.len()));
        let mut out = vec![0u8; signed.len()];
        g.bench_function("baseline copy_from_slice", |b| {
            b.iter(|| out.copy_from_slice(black_box(&signed)))
        });
        g.bench_function("baseline ExtChain::walk", |b| {
            b.iter(|| black_box(ExtChain::walk(black_box(&signed)).expect("walk")))
        });
        g.bench_function("parse_with_bytes (checksum verified)", |b| {
            b.iter(|| black_box(MhPacketRepr::parse_with_bytes(black_box(&signed)).expect("parse")))
        });
        g.bench_function("emit (preallocated buffer)", |b| {
            b.iter(|| black_box(repr.emit(black_box(&mut out)).expect("emit")))
        });
        g.bench_function("to_bytes_with_binding_auth (+ HMAC-SHA1)", |b| {
            b.iter(|| {
                black_box(
                    repr.to_bytes_with_binding_auth(|i| {
                        let mut data = [0u8; 64];
                        let mut n = 0;
                        for c in i.chunks() {
                            data[n..n + c.len()].copy_from_slice(c);
                            n += c.len();
                        }
                        *bu_authenticator(&kbm, auth_addrs.0, auth_addrs.1, &data[..n]).as_bytes()
                    })
                    .expect("emit"),
                )
            })
        });
        g.finish();
    }
}

/// A buffer with `DEFAULT_HEADROOM` octets, then a TCP packet HoA -> CN of
/// `len` octets in all.
fn tcp_packet(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; DEFAULT_HEADROOM + len];
    for (i, b) in v[DEFAULT_HEADROOM + 40..].iter_mut().enumerate() {
        *b = i as u8;
    }
    Ipv6Repr {
        src_addr: HOA,
        dst_addr: CN,
        next_header: ip_proto::TCP,
        payload_len: len - 40,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(&mut v[DEFAULT_HEADROOM..])
    .expect("header");
    v
}

/// Applies `f` to a copy of `buf` whose packet is at `DEFAULT_HEADROOM`.
fn prepared(
    buf: &[u8],
    len: usize,
    f: impl Fn(&mut [u8], usize) -> edit::Bounds,
) -> (Vec<u8>, edit::Bounds) {
    let mut b = buf.to_vec();
    let bounds = f(&mut b, len);
    // Move the packet back so that every variant has the same headroom.
    let mut out = vec![0u8; DEFAULT_HEADROOM + bounds.len];
    out[DEFAULT_HEADROOM..].copy_from_slice(&b[bounds.range()]);
    (
        out,
        edit::Bounds {
            start: DEFAULT_HEADROOM,
            len: bounds.len,
        },
    )
}

fn edit_benches(c: &mut Criterion) {
    let tunnel = TunnelParams::new(HA, COA);
    for len in [1500usize, 65_535] {
        let plain = tcp_packet(len);
        let h = DEFAULT_HEADROOM;
        let (with_rh2, rh2_b) = prepared(&plain, len, |b, l| {
            edit::insert_rh2(b, h, l, &COA).expect("insert_rh2")
        });
        let (with_hao, hao_b) = prepared(&plain, len, |b, l| {
            edit::insert_hao(b, h, l, &COA).expect("insert_hao")
        });
        let (tunnelled, tun_b) = prepared(&plain, len, |b, l| {
            edit::encapsulate(b, h, l, &tunnel).expect("encapsulate")
        });
        let size = if len > 4096 {
            BatchSize::LargeInput
        } else {
            BatchSize::SmallInput
        };
        let mut g = c.benchmark_group(format!("edit/{len}"));
        let mut dst = vec![0u8; len];
        g.bench_function("baseline copy_from_slice", |b| {
            b.iter(|| dst.copy_from_slice(black_box(&plain[h..h + len])))
        });
        let timed = |name: &str,
                     g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
                     src: &Vec<u8>,
                     op: &dyn Fn(&mut Vec<u8>)| {
            g.bench_function(name, |b| {
                b.iter_batched_ref(|| src.clone(), |buf| op(buf), size)
            });
        };
        timed("insert_rh2", &mut g, &plain, &|b| {
            black_box(edit::insert_rh2(b, h, len, &COA).expect("insert_rh2"));
        });
        timed("strip_rh2", &mut g, &with_rh2, &|b| {
            black_box(edit::strip_rh2(b, rh2_b.start, rh2_b.len).expect("strip_rh2"));
        });
        timed("insert_hao", &mut g, &plain, &|b| {
            black_box(edit::insert_hao(b, h, len, &COA).expect("insert_hao"));
        });
        timed("swap_hao", &mut g, &with_hao, &|b| {
            black_box(edit::swap_hao(b, hao_b.start, hao_b.len).expect("swap_hao"));
        });
        timed("strip_hao", &mut g, &with_hao, &|b| {
            black_box(edit::strip_hao(b, hao_b.start, hao_b.len).expect("strip_hao"));
        });
        timed("encapsulate", &mut g, &plain, &|b| {
            black_box(edit::encapsulate(b, h, len, &tunnel).expect("encapsulate"));
        });
        timed("decapsulate", &mut g, &tunnelled, &|b| {
            black_box(edit::decapsulate(b, tun_b.start, tun_b.len).expect("decapsulate"));
        });
        // The same edits back to back in place, no per-iteration setup.
        let mut buf = plain.clone();
        g.bench_function("insert_rh2 + strip_rh2 in place", |b| {
            b.iter(|| {
                let n = edit::insert_rh2(&mut buf, h, len, &COA).expect("insert");
                black_box(edit::strip_rh2(&mut buf, n.start, n.len).expect("strip"));
            })
        });
        let mut buf = with_hao.clone();
        g.bench_function("swap_hao in place", |b| {
            b.iter(|| black_box(edit::swap_hao(&mut buf, hao_b.start, hao_b.len).expect("swap")))
        });
        g.finish();
    }
}

criterion_group!(benches, mh_benches, edit_benches);
criterion_main!(benches);
