//! The correspondent's binding cache at 1,000,000 entries, and full Binding
//! Update processing.
//!
//! * `lookup/binding_cache_1m`: `BindingCache::coa(cn, hoa)` hits in a cache
//!   of 1,000,000 bindings, keys visited in a shuffled order (no locality).
//! * `lookup/hashmap_1m`: the baseline `HashMap<(Ipv6Addr, Ipv6Addr),
//!   Ipv6Addr>` with the same keys and order.
//! * `lookup/*_dependent`: the same, but each key depends on the previous
//!   answer (latency per lookup, no overlap of cache misses).
//! * `bu/full_processing`: `Correspondent::handle_packet` on a valid,
//!   authenticated Binding Update (parse, checksum, RFC 6275 9.5.1 checks,
//!   keygen tokens from the token cache, Kbm, HMAC, sequence check, cache
//!   update) plus the emitted Binding Acknowledgement with its own
//!   authenticator, over 1000 mobile nodes refreshing their bindings.
//!
//! Bytes per entry are printed before the benchmarks, measured two ways:
//! by a counting global allocator (live heap bytes after building minus
//! before, i.e. what the process really holds) and, for the binding cache,
//! from its containers' capacities (`BindingCache::memory_bytes`).
//!
//! Run: `cargo bench -p mip6-anycast --no-default-features --bench binding_cache`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mip6_anycast::crypto::{
    DeterministicRandom, Kbm, NonceIndex, TokenKind, bu_authenticator, kbm,
};
use mip6_anycast::proto::correspondent::{BindingCache, RefreshPolicy};
use mip6_anycast::proto::{Action, Correspondent, CorrespondentConfig};
use mip6_anycast::wire::{
    BindingUpdateRepr, BuFlags, MhMessage, MhPacketRepr, MhRepr, MobilityOption,
};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System`, only adding a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ENTRIES: usize = 1_000_000;

fn cn() -> Ipv6Addr {
    "2001:db8:c::1".parse().expect("addr")
}

fn hoa(i: usize) -> Ipv6Addr {
    // Spread over many /64s like real clients' anycast bindings would be.
    let x = (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    Ipv6Addr::from((0x2001_0db8u128 << 96) | (x >> 32))
}

fn coa(i: usize) -> Ipv6Addr {
    Ipv6Addr::from((0x2001_0db9u128 << 96) | i as u128)
}

/// A shuffled visiting order (xorshift, deterministic).
fn order(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

fn build_cache(t0: Instant) -> BindingCache {
    let mut c = BindingCache::new(ENTRIES, RefreshPolicy::default(), t0);
    let exp = t0 + Duration::from_secs(420);
    for i in 0..ENTRIES {
        c.upsert(cn(), hoa(i), coa(i), 1, exp).expect("room");
    }
    c
}

fn build_map() -> HashMap<(Ipv6Addr, Ipv6Addr), Ipv6Addr> {
    let mut m = HashMap::new();
    for i in 0..ENTRIES {
        m.insert((cn(), hoa(i)), coa(i));
    }
    m
}

fn lookups(c: &mut Criterion) {
    let t0 = Instant::now();
    let before = LIVE.load(Ordering::Relaxed);
    let cache = build_cache(t0);
    let cache_bytes = LIVE.load(Ordering::Relaxed) - before;
    let before = LIVE.load(Ordering::Relaxed);
    let map = build_map();
    let map_bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "binding cache, {ENTRIES} entries: {:.1} bytes/entry (allocator), {:.1} bytes/entry (capacities), slot {} bytes",
        cache_bytes as f64 / ENTRIES as f64,
        cache.memory_bytes() as f64 / ENTRIES as f64,
        BindingCache::slot_size(),
    );
    println!(
        "HashMap<(Ipv6Addr, Ipv6Addr), Ipv6Addr>, {ENTRIES} entries: {:.1} bytes/entry (allocator)",
        map_bytes as f64 / ENTRIES as f64
    );
    let keys: Vec<(Ipv6Addr, Ipv6Addr)> =
        order(ENTRIES).into_iter().map(|i| (cn(), hoa(i))).collect();

    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("binding_cache_1m", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let (k1, k2) = keys[i];
            black_box(cache.coa(black_box(k1), black_box(k2)))
        })
    });
    let mut i = 0usize;
    g.bench_function("hashmap_1m", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(map.get(black_box(&keys[i])).copied())
        })
    });
    // Latency: the next key depends on the previous answer, so lookups
    // cannot overlap in the CPU (as in a datapath doing other work per
    // packet). The loops above measure throughput with overlapping misses.
    let next = |j: usize, a: Option<Ipv6Addr>| {
        (j + 1 + a.map_or(0, |a| usize::from(a.octets()[15]))) % ENTRIES
    };
    let mut j = 0usize;
    g.bench_function("binding_cache_1m_dependent", |b| {
        b.iter(|| {
            let (k1, k2) = keys[j];
            j = next(j, cache.coa(k1, k2));
        })
    });
    let mut j = 0usize;
    g.bench_function("hashmap_1m_dependent", |b| {
        b.iter(|| {
            j = next(j, map.get(&keys[j]).copied());
        })
    });
    g.finish();
}

const NODES: usize = 1000;

/// Kbm of each node under nonce 0 (as its Return Routability gave it).
fn node_keys(corr: &Correspondent, now: Instant) -> Vec<Kbm> {
    let e = corr
        .nonce_table()
        .lookup(NonceIndex(0), now)
        .expect("nonce 0");
    (0..NODES)
        .map(|i| {
            kbm(
                &e.token(hoa(i), TokenKind::Home),
                Some(&e.token(coa(i), TokenKind::CareOf)),
            )
        })
        .collect()
}

fn signed_bu(key: &Kbm, node: usize, seq: u16) -> Vec<u8> {
    let (h, a, c) = (hoa(node), coa(node), cn());
    let mh = MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
        sequence: seq,
        flags: BuFlags::ACK,
        lifetime: 105,
    }))
    .with_option(MobilityOption::NonceIndices {
        home_nonce_index: 0,
        care_of_nonce_index: 0,
    })
    .with_option(MobilityOption::BindingAuthData {
        authenticator: [0; 12],
    });
    MhPacketRepr {
        hao: Some(h),
        ..MhPacketRepr::new(a, c, mh)
    }
    .to_bytes_with_binding_auth(|i| *bu_authenticator(key, a, c, &i.to_vec()).as_bytes())
    .expect("emit")
}

fn bu_processing(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut corr = Correspondent::new(
        CorrespondentConfig::default(),
        Box::new(DeterministicRandom::new(1)),
        t0,
    )
    .expect("correspondent");
    let keys = node_keys(&corr, t0);
    let mut g = c.benchmark_group("bu");
    g.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    g.bench_function("full_processing", |b| {
        b.iter_batched(
            || {
                n += 1;
                // Node n % NODES refreshes with the next sequence number.
                signed_bu(&keys[n % NODES], n % NODES, (n / NODES) as u16 + 1)
            },
            |bu| {
                corr.handle_packet(t0, &bu);
                let mut ok = false;
                while let Some(a) = corr.poll_action() {
                    ok |= matches!(a, Action::Transmit(_));
                }
                black_box(ok)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    let s = corr.stats();
    println!(
        "full_processing: {} BUs accepted, {} BAs sent, drops {:?}",
        s.bu_accepted, s.ba_sent, s.drops
    );
}

criterion_group!(benches, lookups, bu_processing);
criterion_main!(benches);
