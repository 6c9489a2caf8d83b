//! Allocation behaviour on hostile input, measured with a counting global
//! allocator (per thread, so parallel tests do not disturb each other):
//!
//! * the chain walker, the views, the authenticated-range functions and the
//!   in-place edits allocate nothing at all;
//! * `Repr` parsing allocates at most linearly in the input length, never
//!   an amount taken from a length field.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv6Addr;

use mip6_anycast::wire::{
    ExtChain, MhPacketRepr, MhRepr, MobilityHeader, TunnelParams, edit, ip6ip6, mh,
};
use proptest::prelude::*;

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = BYTES.try_with(|b| b.set(b.get() + size));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; the
// bookkeeping touches only const-initialised thread-locals (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated on this thread while running `f`.
fn allocated<R>(f: impl FnOnce() -> R) -> usize {
    BYTES.with(|b| b.set(0));
    ON.with(|o| o.set(true));
    let r = f();
    ON.with(|o| o.set(false));
    drop(r);
    BYTES.with(|b| b.get())
}

fn valid_packet(seed: &[u8]) -> Vec<u8> {
    let a: Ipv6Addr = "2001:db8:2::100".parse().unwrap();
    let h: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
    let mut p = MhPacketRepr::new(
        a,
        "2001:db8:3::10".parse().unwrap(),
        MhRepr::new(mh::MhMessage::BindingRefreshRequest),
    );
    p.hao = Some(h);
    let mut v = p.to_bytes().unwrap();
    // Append the seed as mobility options data region: grow the MH.
    let extra = seed.len() / 8 * 8;
    v.extend_from_slice(&seed[..extra]);
    let mh_at = p.mh_offset();
    v[mh_at + 1] = (extra / 8) as u8;
    let plen = (v.len() - 40) as u16;
    v[4..6].copy_from_slice(&plen.to_be_bytes());
    v
}

fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        proptest::collection::vec(any::<u8>(), 0..600).prop_map(|s| valid_packet(&s)),
        // Many tiny unknown options: the worst case for the options vector.
        (0usize..120).prop_map(|n| valid_packet(&[7u8, 0].repeat(4 * n))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn walkers_views_and_edits_allocate_nothing(b in hostile()) {
        let coa: Ipv6Addr = "2001:db8:9::1".parse().unwrap();
        let mut buf = vec![0u8; 128 + b.len()];
        buf[128..].copy_from_slice(&b);
        let n = allocated(|| {
            let _ = ExtChain::walk(&b);
            let _ = ip6ip6::decapsulate(&b);
            if let Ok(c) = ExtChain::walk(&b)
                && let Some(off) = c.mh_offset()
                && let Ok(h) = MobilityHeader::new_checked(&b[off..c.total_len()])
            {
                let _ = h.binding_auth_input();
                let _ = h.message_auth_input(1);
                h.options().for_each(drop);
            }
            let len = b.len();
            let _ = edit::strip_hao(&mut buf, 128, len).map(|s| edit::insert_hao(&mut buf, s.bounds.start, s.bounds.len, &coa));
            let _ = edit::strip_rh2(&mut buf, 128, len);
            let _ = edit::insert_rh2(&mut buf, 128, len, &coa);
            let _ = edit::encapsulate(&mut buf, 128, len, &TunnelParams::new(coa, coa));
            let _ = edit::decapsulate(&buf, 88, len + 40);
        });
        prop_assert_eq!(n, 0);
    }

    #[test]
    fn repr_parsing_allocates_linearly(b in hostile()) {
        let n = allocated(|| {
            let _ = MhPacketRepr::parse(&b);
            if let Ok(c) = ExtChain::walk(&b)
                && let Some(off) = c.mh_offset()
                && let Ok(h) = MobilityHeader::new_checked(&b[off..c.total_len()])
            {
                let _ = MhRepr::parse(&h);
            }
        });
        // Two parses; options are at least 2 octets each, a parsed option is
        // at most 40 octets plus its data, and the vector is sized exactly.
        prop_assert!(n <= 2 * (21 * b.len()) + 512, "{} bytes allocated for {} input bytes", n, b.len());
    }
}

#[test]
fn the_counter_counts() {
    assert_eq!(allocated(|| 1 + 1), 0);
    assert!(allocated(|| vec![0u8; 1000]) >= 1000);
}

#[test]
fn parsed_option_size_is_what_the_bound_assumes() {
    assert!(std::mem::size_of::<mh::MobilityOption>() <= 40);
}
