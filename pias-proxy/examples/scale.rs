//! Scale simulation (issue 6 item 9): 10^5 proxies, 10^6 groups.
//!
//! Prints: RAP lookup time on the consistent-hash ring (and, for contrast,
//! a rendezvous-hash scan over all proxies), memory per group at RAPs,
//! IAPs and JAPs (measured with a counting allocator), SWIM membership
//! messages per proxy per second (foca run in memory at growing cluster
//! sizes: constant per proxy, so extrapolated to 10^5), and JAP->RAP
//! reports per second for a churn trace at error bounds 0/25/50 %.
//!
//! `cargo run --release -p pias-proxy --example scale [-- PROXIES GROUPS]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pias_proxy::group::{GroupAddr, GroupConfig, PROTO_TCP, Policy};
use pias_proxy::iap::{Iap, IapLimits};
use pias_proxy::jap::{HealthConfig, Jap, report_due};
use pias_proxy::membership::{Membership, MembershipAction, fast_config};
use pias_proxy::peer_auth::{PeerAuthConfig, PeerKey, WallClock};
use pias_proxy::rap::{Rap, RapLoad};
use pias_proxy::ring::{Ring, hash64};
use pias_proxy::wire::{JapEntry, JoinOptions};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn proxy(i: u64) -> Ipv6Addr {
    Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i))
}

fn group(i: u64) -> GroupAddr {
    // 60000 groups per anycast address (ports 1024..61023).
    let addr = Ipv6Addr::from((0x2001_0db8_00aa_u128 << 80) | u128::from(i / 60000));
    GroupAddr::new(addr, 1024 + (i % 60000) as u16, PROTO_TCP).unwrap_or(GroupAddr {
        addr,
        port: 1,
        proto: PROTO_TCP,
    })
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n_proxies = args.first().copied().unwrap_or(100_000);
    let n_groups = args.get(1).copied().unwrap_or(1_000_000);
    let raps_per_group = 3;
    println!("pias scale: {n_proxies} proxies, {n_groups} groups, {raps_per_group} RAPs per group");

    // --- RAP lookup ---
    let before = live();
    let t = Instant::now();
    let ring = Ring::with_proxies(16, (0..n_proxies).map(proxy));
    let build = t.elapsed();
    let ring_bytes = live() - before;
    let mut out = Vec::with_capacity(4);
    let mut per_proxy = vec![0u32; n_proxies as usize];
    let t = Instant::now();
    let mut check = 0u64;
    for g in 0..n_groups {
        ring.raps_into(&group(g), raps_per_group, &mut out);
        check ^= u128::from(out[0]) as u64;
        for p in &out {
            let ix = (u128::from(*p) & 0xffff_ffff) as usize;
            if let Some(c) = per_proxy.get_mut(ix) {
                *c += 1;
            }
        }
    }
    let lookup = t.elapsed();
    let max_load = per_proxy.iter().max().copied().unwrap_or(0);
    let mean_load = (n_groups * raps_per_group as u64) as f64 / n_proxies as f64;
    println!(
        "ring: {} points, built in {:.0} ms, {:.1} MB ({:.0} B per proxy)",
        n_proxies * 16,
        build.as_secs_f64() * 1e3,
        ring_bytes as f64 / 1e6,
        ring_bytes as f64 / n_proxies as f64
    );
    println!(
        "rap_lookup_ns: {:.0} (mean over {} lookups of {} RAPs; checksum {:x})",
        lookup.as_nanos() as f64 / n_groups as f64,
        n_groups,
        raps_per_group,
        check & 0xff
    );
    println!("groups per proxy as RAP: mean {mean_load:.1}, max {max_load}");
    // Rendezvous hashing for contrast: a scan over every proxy per lookup.
    let samples = 200u64;
    let t = Instant::now();
    for g in 0..samples {
        let k = group(g).key_bytes();
        let mut best = [(0u64, 0u64); 3];
        for p in 0..n_proxies {
            let h = hash64(&[&k, &p.to_be_bytes()]);
            if h > best[2].0 {
                best[2] = (h, p);
                best.sort_by_key(|b| std::cmp::Reverse(b.0));
            }
        }
        check ^= best[0].1;
    }
    println!(
        "rendezvous_scan_ns: {:.0} per lookup (O(proxies), for contrast; {})",
        t.elapsed().as_nanos() as f64 / samples as f64,
        check & 1
    );

    // --- Memory per group ---
    let now = Instant::now();
    let sample = 100_000u64;
    let before = live();
    let mut rap = Rap::new(RapLoad::default());
    for g in 0..sample {
        for j in 0..2 {
            rap.update(now, group(g), proxy(j), 10, 1, Policy::Proximity);
        }
    }
    let rap_per = (live() - before) as f64 / sample as f64;
    let before = live();
    let mut iap = Iap::new(IapLimits::default());
    for g in 0..sample {
        iap.store(
            now,
            group(g),
            vec![
                JapEntry {
                    jap: proxy(1),
                    count: 10,
                },
                JapEntry {
                    jap: proxy(2),
                    count: 7,
                },
            ],
        );
    }
    let iap_per = (live() - before) as f64 / sample as f64;
    let before = live();
    let mut jap = Jap::new((20000, 59999), HealthConfig::default());
    let jsample = 20_000u64;
    for g in 0..jsample {
        let cfg = GroupConfig {
            group: group(g),
            policy: Policy::Load,
            scope_prefix_len: 64,
            raps: 3,
            error_bound_pct: 25,
            credential: vec![0; 32],
            allow: Vec::new(),
        };
        jap.join(now, &cfg, proxy(1_000_000 + g), 80, JoinOptions::default());
    }
    let jap_per = (live() - before) as f64 / jsample as f64;
    println!(
        "memory_per_group_bytes: rap {rap_per:.0} (2 JAPs), iap cache {iap_per:.0} (2 JAPs), jap {jap_per:.0} (1 target, config included)"
    );
    let total_rap = rap_per * n_groups as f64 * raps_per_group as f64 / n_proxies as f64;
    println!(
        "rap state per proxy at {n_groups} groups x {raps_per_group} RAPs: {:.1} KB",
        total_rap / 1e3
    );
    drop((rap, iap, jap));

    // --- SWIM messages per proxy per second ---
    for n in [50u64, 100, 200] {
        let rate = swim_rate(n as usize, Duration::from_secs(10));
        println!("swim cluster {n}: {rate:.2} messages per proxy per second");
    }
    println!(
        "swim at {n_proxies} proxies: per-proxy rate is independent of size (SWIM), cluster total = rate x {n_proxies}"
    );

    // --- JAP -> RAP reports for a churn trace ---
    for bound in [0u8, 25, 50] {
        let (events, reports) = churn_reports(bound, 10_000, 200);
        let per_event = reports as f64 / events as f64;
        println!(
            "rap_updates bound {bound}%: {reports} reports for {events} join/leave events ({per_event:.3} per event x {raps_per_group} RAPs)"
        );
    }
}

/// Runs `n` foca members in memory for `dur` of simulated time, counts datagrams.
fn swim_rate(n: usize, dur: Duration) -> f64 {
    let t0 = Instant::now();
    let key = PeerKey::new(&[0x5a; 32]).expect("a 32-byte key");
    let mut m: Vec<Membership> = (0..n)
        .map(|i| {
            let auth = PeerAuthConfig::new(
                key.clone(),
                i as u64 + 1,
                WallClock::from_unix_ms(t0, 1_700_000_000_000),
            );
            Membership::new(proxy(i as u64 + 1), fast_config(n as u32), i as u64, &auth)
        })
        .collect();
    for x in m.iter_mut().skip(1) {
        x.announce(t0, proxy(1));
    }
    let mut now = t0;
    let mut sent = 0u64;
    let mut counting_from = None;
    let step = Duration::from_millis(20);
    let warmup = Duration::from_secs(10);
    while now < t0 + warmup + dur {
        loop {
            let mut moved = false;
            for i in 0..m.len() {
                while let Some(a) = m[i].poll_action() {
                    moved = true;
                    if let MembershipAction::Send { to, bytes } = a {
                        if counting_from.is_some() {
                            sent += 1;
                        }
                        let j = (u128::from(to) & 0xffff_ffff) as usize - 1;
                        let src = proxy(i as u64 + 1);
                        if let Some(dst) = m.get_mut(j) {
                            dst.handle_data(now, src, &bytes);
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
        now += step;
        if counting_from.is_none() && now >= t0 + warmup {
            counting_from = Some(now);
        }
        for x in m.iter_mut() {
            x.handle_timeout(now);
        }
    }
    sent as f64 / n as f64 / dur.as_secs_f64()
}

/// A random walk of target counts over `groups` groups (one JAP each):
/// returns (events, reports a JAP sends to one RAP).
fn churn_reports(bound: u8, groups: usize, steps: usize) -> (u64, u64) {
    let mut counts = vec![20u32; groups];
    let mut reported = vec![Some(20u32); groups];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let (mut events, mut reports) = (0u64, 0u64);
    for _ in 0..steps {
        for g in 0..groups {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let up = rng & 1 == 0;
            counts[g] = if up {
                counts[g] + 1
            } else {
                counts[g].saturating_sub(1)
            };
            events += 1;
            if let Some(c) = report_due(reported[g], counts[g], bound) {
                reported[g] = Some(c);
                reports += 1;
            }
        }
    }
    (events, reports)
}
