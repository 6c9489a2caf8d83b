//! Per-packet cost of the JAP's NAT rewrite (`nat::rewrite`: source and
//! destination address and port of a TCP packet, transport checksum fixed
//! incrementally) and of the proxy-to-proxy encapsulation, on a
//! 1400-octet packet: `cargo bench -p pias-proxy --bench nat`. Each case
//! sits beside a baseline that only restores the input packet (every
//! iteration must start from the same bytes): the cost is the difference.

use std::hint::black_box;
use std::net::Ipv6Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pias_proxy::nat;

const LEN: usize = 1400;

fn a(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

/// An IPv6/TCP packet of `LEN` octets with a valid checksum.
fn tcp_packet() -> Vec<u8> {
    let (src, dst) = (a("2001:db8:c::1"), a("2001:db8:aa::1"));
    let mut p = vec![0u8; LEN];
    let l4 = (LEN - 40) as u16;
    p[0] = 0x60;
    p[4..6].copy_from_slice(&l4.to_be_bytes());
    p[6] = 6;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..42].copy_from_slice(&40_000u16.to_be_bytes());
    p[42..44].copy_from_slice(&7013u16.to_be_bytes());
    p[52] = 0x50; // data offset 5
    p[53] = 0x18; // PSH, ACK
    for (i, b) in p[60..].iter_mut().enumerate() {
        *b = i as u8;
    }
    // Checksum over the pseudo-header and the segment (RFC 8200 8.1).
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from(c[0]) << 8
            };
            sum += u32::from(w);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&u32::from(l4).to_be_bytes());
    add(&[0, 0, 0, 6]);
    add(&p[40..]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    p[56..58].copy_from_slice(&c.to_be_bytes());
    p
}

fn bench(c: &mut Criterion) {
    let input = tcp_packet();
    assert!(nat::flow_of(&input).is_ok(), "the bench packet parses");
    let mut buf = input.clone();
    let mut g = c.benchmark_group("pias");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline: restore the packet", |b| {
        b.iter(|| {
            buf.copy_from_slice(&input);
            black_box(&mut buf);
        });
    });
    let target = (a("2001:db8:7::10"), 80);
    let nat_src = (a("2001:db8:104::1"), 40_000);
    g.bench_function("NAT rewrite (JAP -> target)", |b| {
        b.iter(|| {
            buf.copy_from_slice(&input);
            nat::rewrite(black_box(&mut buf), nat_src, target).expect("rewrite");
        });
    });
    let (p1, p3) = (a("2001:db8:101::1"), a("2001:db8:103::1"));
    g.bench_function("encapsulate (IAP -> JAP tunnel)", |b| {
        b.iter(|| black_box(nat::encapsulate(black_box(&input), p1, p3).expect("encapsulate")));
    });
    let outer = nat::encapsulate(&input, p1, p3).expect("encapsulate");
    g.bench_function("decapsulate", |b| {
        b.iter(|| black_box(nat::decapsulate(black_box(&outer)).expect("decapsulate")));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
