//! Binding Update authenticator verifications per second on one core.
//!
//! * `bare_hmac_sha1`: baseline, one HMAC-SHA1 (key setup included) over the
//!   same `coa | cn | MH data` the authenticator covers.
//! * `full_uncached`: the correspondent's whole check
//!   (`verify_binding_update`): two nonce lookups, two keygen tokens
//!   (HMAC-SHA1 with the prepared Kcn key), Kbm (SHA-1), the authenticator
//!   HMAC-SHA1, constant-time compare.
//! * `full_cached`: the same with keygen tokens cached per (nonce, address)
//!   (`verify_binding_update_cached`), i.e. mobile nodes that re-register
//!   within a nonce's lifetime.
//! * `mn_ha_verify`: the home agent's RFC 4285 check, for comparison.
//!
//! Run: `cargo bench -p mip6-anycast --no-default-features --bench bu_verify`.
//! Criterion reports each as elements (verifications) per second.

use std::hint::black_box;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mip6_anycast::crypto::{
    BindingAuthInput, DeterministicRandom, KeygenTokenCache, MnHaKey, NonceConfig, NonceIndex,
    NonceTable, TokenKind, bu_authenticator, hmac_sha1, kbm, mn_ha_authenticator,
    verify_binding_update, verify_binding_update_cached, verify_mn_ha,
};

/// Distinct mobile nodes the correspondent serves in the benchmark.
const NODES: usize = 64;

/// A BU's MH data with Nonce Indices and the Binding Authorization Data
/// option header (24 octets, as in RFC 6275 6.1.7 + 6.2.6 + 6.2.7).
const MH_DATA: [u8; 24] = [
    59, 5, 5, 0, 0, 0, 0x12, 0x34, 0x00, 0x00, 0x00, 0x69, 1, 2, 0, 0, 4, 4, 0, 0, 0, 1, 5, 12,
];

struct Bu {
    hoa: Ipv6Addr,
    coa: Ipv6Addr,
    hi: NonceIndex,
    ci: NonceIndex,
    auth: [u8; 12],
}

fn setup() -> (NonceTable, Vec<Bu>, Ipv6Addr, Instant) {
    let t0 = Instant::now();
    let mut table = NonceTable::new(
        NonceConfig {
            nonce_interval: Duration::from_secs(30),
            kcn_lifetime: None,
        },
        Box::new(DeterministicRandom::new(2024)),
        t0,
    )
    .expect("nonce table");
    let cn: Ipv6Addr = "2001:db8:c::1".parse().expect("addr");
    let bus = (0..NODES)
        .map(|i| {
            let i = u16::try_from(i).expect("few nodes");
            let hoa = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, i + 1);
            let coa = Ipv6Addr::new(0x2001, 0xdb8, 0xf00, i, 0, 0, 0, 2);
            let (hi, ht) = table.issue_token(hoa, TokenKind::Home, t0).expect("token");
            let (ci, ct) = table
                .issue_token(coa, TokenKind::CareOf, t0)
                .expect("token");
            let auth = *bu_authenticator(&kbm(&ht, Some(&ct)), coa, cn, &MH_DATA).as_bytes();
            Bu {
                hoa,
                coa,
                hi,
                ci,
                auth,
            }
        })
        .collect();
    (table, bus, cn, t0)
}

fn input<'a>(bu: &'a Bu, cn: Ipv6Addr) -> BindingAuthInput<'a> {
    BindingAuthInput {
        hoa: bu.hoa,
        coa: bu.coa,
        correspondent: cn,
        home_nonce_index: bu.hi,
        care_of_nonce_index: Some(bu.ci),
        mh_data: &MH_DATA,
        authenticator: &bu.auth,
    }
}

fn bench(c: &mut Criterion) {
    let (table, bus, cn, t0) = setup();
    let now = t0 + Duration::from_secs(10);
    let mut g = c.benchmark_group("bu_verify");
    g.throughput(Throughput::Elements(1));

    let kbm_bytes = [0x42u8; 20];
    let mut i = 0usize;
    g.bench_function("bare_hmac_sha1", |b| {
        b.iter(|| {
            i = (i + 1) % NODES;
            let bu = &bus[i];
            black_box(hmac_sha1(
                black_box(&kbm_bytes),
                &[&bu.coa.octets(), &cn.octets(), &MH_DATA],
            ))
        });
    });

    let mut i = 0usize;
    g.bench_function("full_uncached", |b| {
        b.iter(|| {
            i = (i + 1) % NODES;
            let r = verify_binding_update(&table, &input(&bus[i], cn), black_box(now));
            assert!(r.is_ok());
            black_box(r)
        });
    });

    let mut cache = KeygenTokenCache::new(4 * NODES);
    let mut i = 0usize;
    g.bench_function("full_cached", |b| {
        b.iter(|| {
            i = (i + 1) % NODES;
            let r = verify_binding_update_cached(
                &table,
                &mut cache,
                &input(&bus[i], cn),
                black_box(now),
            );
            assert!(r.is_ok());
            black_box(r)
        });
    });

    let key = MnHaKey::new(&[0x17; 20]).expect("key");
    let hoa = bus[0].hoa;
    let coa = bus[0].coa;
    let tag = *mn_ha_authenticator(&key, coa, hoa, &MH_DATA).as_bytes();
    g.bench_function("mn_ha_verify", |b| {
        b.iter(|| {
            let r = verify_mn_ha(&key, coa, hoa, black_box(&MH_DATA), &tag);
            assert!(r.is_ok());
            black_box(r)
        });
    });
    g.finish();
    let (hits, misses) = cache.stats();
    println!(
        "token cache: {hits} hits, {misses} misses, {} entries",
        cache.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
