//! Datapath and control-plane costs of the wire layer:
//! `cargo bench -p mip6-anycast --no-default-features --bench wire`.

use std::hint::black_box;
use std::net::Ipv6Addr;

use criterion::{Criterion, criterion_group, criterion_main};
use mip6_anycast::wire::{
    BindingUpdateRepr, BuFlags, ExtChain, Ipv6Repr, MhMessage, MhPacketRepr, MhRepr,
    MobilityOption, TunnelParams, edit, ip_proto,
};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// A 1400-octet TCP-sized packet HoA -> CN, with 128 octets of headroom.
fn data(len: usize) -> (Vec<u8>, usize) {
    let mut v = vec![0u8; 128 + len];
    Ipv6Repr {
        src_addr: a("2001:db8:1::100"),
        dst_addr: a("2001:db8:3::10"),
        next_header: ip_proto::TCP,
        payload_len: len - 40,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(&mut v[128..])
    .unwrap();
    (v, len)
}

fn bench(c: &mut Criterion) {
    let coa = a("2001:db8:2::100");
    let (mut buf, len) = data(1400);
    c.bench_function("edit insert_rh2 + strip_rh2 (1400 B, in place)", |b| {
        b.iter(|| {
            let n = edit::insert_rh2(&mut buf, 128, len, &coa).unwrap();
            let s = edit::strip_rh2(&mut buf, n.start, n.len).unwrap();
            black_box(s);
        })
    });
    c.bench_function("edit insert_hao + strip_hao (1400 B, in place)", |b| {
        b.iter(|| {
            let n = edit::insert_hao(&mut buf, 128, len, &coa).unwrap();
            let s = edit::strip_hao(&mut buf, n.start, n.len).unwrap();
            black_box(s);
        })
    });
    let t = TunnelParams::new(coa, a("2001:db8:1::1"));
    c.bench_function("edit encapsulate + decapsulate (1400 B, in place)", |b| {
        b.iter(|| {
            let n = edit::encapsulate(&mut buf, 128, len, &t).unwrap();
            black_box(edit::decapsulate(&buf, n.start, n.len).unwrap());
        })
    });
    let packet = buf[128..128 + len].to_vec();
    c.bench_function("insert_rh2_vec + strip_rh2_vec (1400 B, copying)", |b| {
        b.iter(|| {
            let v = edit::insert_rh2_vec(black_box(&packet), &coa).unwrap();
            black_box(edit::strip_rh2_vec(&v).unwrap());
        })
    });
    let with = edit::insert_hao_vec(&edit::insert_rh2_vec(&packet, &coa).unwrap(), &coa).unwrap();
    c.bench_function("ExtChain::walk (RH2 + HAO + TCP)", |b| {
        b.iter(|| black_box(ExtChain::walk(black_box(&with))))
    });

    let mut bu = MhPacketRepr::new(
        coa,
        a("2001:db8:3::10"),
        MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
            sequence: 1,
            flags: BuFlags::ACK,
            lifetime: 60,
        }))
        .with_option(MobilityOption::NonceIndices {
            home_nonce_index: 1,
            care_of_nonce_index: 2,
        })
        .with_option(MobilityOption::BindingAuthData {
            authenticator: [7; 12],
        }),
    );
    bu.hao = Some(a("2001:db8:1::100"));
    let bytes = bu.to_bytes().unwrap();
    c.bench_function("MhPacketRepr::parse (BU, HAO, NI, BAD)", |b| {
        b.iter(|| black_box(MhPacketRepr::parse(black_box(&bytes)).unwrap()))
    });
    c.bench_function("MhPacketRepr::to_bytes (BU, HAO, NI, BAD)", |b| {
        b.iter(|| black_box(bu.to_bytes().unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
