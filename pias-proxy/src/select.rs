//! Selection (issue 6 item 6, seed 003 3): the RAP orders JAPs for an IAP,
//! the JAP picks a target. Pure functions; randomness comes in as an RNG.

use std::net::Ipv6Addr;
use std::time::Duration;

use rand::RngExt;

use crate::group::Policy;
use crate::wire::JapEntry;

/// What a JAP knows of a target when it selects one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Target address.
    pub addr: Ipv6Addr,
    /// Live (health monitoring has not declared it dead).
    pub alive: bool,
    /// Active flows through the JAP's NAT.
    pub flows: u32,
    /// Joined with exclude-self: never serve its own packets.
    pub exclude_self: bool,
}

/// Whether `a` and `b` share their first `len` bits.
pub fn same_prefix(a: &Ipv6Addr, b: &Ipv6Addr, len: u8) -> bool {
    let len = u32::from(len.min(128));
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - len);
    (u128::from(*a) & mask) == (u128::from(*b) & mask)
}

/// The target for a new flow from `client`, or `None` if no live target may
/// serve it. Exclude-self holds under every policy; scoped prefers targets in
/// the client's prefix and falls back to the least loaded.
pub fn pick_target<R: rand::Rng>(
    policy: Policy,
    scope_len: u8,
    targets: &[Candidate],
    client: &Ipv6Addr,
    rng: &mut R,
) -> Option<usize> {
    let eligible = |c: &Candidate| c.alive && !(c.addr == *client && c.exclude_self);
    let least_loaded = |filter: &dyn Fn(&Candidate) -> bool| {
        targets
            .iter()
            .enumerate()
            .filter(|(_, c)| eligible(c) && filter(c))
            .min_by_key(|(i, c)| (c.flows, *i))
            .map(|(i, _)| i)
    };
    match policy {
        Policy::Random => {
            let n = targets.iter().filter(|c| eligible(c)).count();
            if n == 0 {
                return None;
            }
            let k = rng.random_range(0..n);
            targets
                .iter()
                .enumerate()
                .filter(|(_, c)| eligible(c))
                .nth(k)
                .map(|(i, _)| i)
        }
        Policy::Scoped => least_loaded(&|c| same_prefix(&c.addr, client, scope_len))
            .or_else(|| least_loaded(&|_| true)),
        Policy::Proximity | Policy::Load => least_loaded(&|_| true),
    }
}

/// Orders a RAP's JAPs for one IAP, best first, dropping JAPs with no
/// targets. Proximity (and scoped, whose scope applies at the JAP): by RTT
/// from the IAP (unknown RTTs last, then by address so that every RAP
/// answers alike). Load: a weighted random order by reported target count.
/// Random: a uniform shuffle.
pub fn order_japs<R: rand::Rng>(
    policy: Policy,
    iap: &Ipv6Addr,
    entries: &mut Vec<JapEntry>,
    rtt: impl Fn(&Ipv6Addr, &Ipv6Addr) -> Option<Duration>,
    rng: &mut R,
) {
    entries.retain(|e| e.count > 0);
    match policy {
        Policy::Proximity | Policy::Scoped => {
            entries.sort_by_key(|e| {
                let d = if e.jap == *iap {
                    Some(Duration::ZERO)
                } else {
                    rtt(iap, &e.jap)
                };
                (d.is_none(), d.unwrap_or(Duration::MAX), e.jap)
            });
        }
        Policy::Load => {
            // Efraimidis-Spirakis: key u^(1/w), highest first.
            let mut keyed: Vec<(f64, JapEntry)> = entries
                .iter()
                .map(|e| {
                    let u: f64 = rng.random_range(f64::EPSILON..1.0);
                    (u.powf(1.0 / f64::from(e.count)), *e)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
            *entries = keyed.into_iter().map(|(_, e)| e).collect();
        }
        Policy::Random => {
            for i in (1..entries.len()).rev() {
                let j = rng.random_range(0..=i);
                entries.swap(i, j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn cand(addr: &str, flows: u32) -> Candidate {
        Candidate {
            addr: a(addr),
            alive: true,
            flows,
            exclude_self: false,
        }
    }

    #[test]
    fn load_picks_least_flows_and_skips_dead() {
        let mut r = SmallRng::seed_from_u64(1);
        let mut t = vec![
            cand("2001:db8::1", 5),
            cand("2001:db8::2", 1),
            cand("2001:db8::3", 3),
        ];
        assert_eq!(
            pick_target(Policy::Load, 64, &t, &a("2001:db8:c::1"), &mut r),
            Some(1)
        );
        t[1].alive = false;
        assert_eq!(
            pick_target(Policy::Load, 64, &t, &a("2001:db8:c::1"), &mut r),
            Some(2)
        );
    }

    #[test]
    fn exclude_self_under_every_policy() {
        let mut r = SmallRng::seed_from_u64(2);
        let mut me = cand("2001:db8:1::5", 0);
        me.exclude_self = true;
        let t = vec![me, cand("2001:db8:2::5", 9)];
        for p in [
            Policy::Load,
            Policy::Proximity,
            Policy::Scoped,
            Policy::Random,
        ] {
            for _ in 0..20 {
                assert_eq!(pick_target(p, 48, &t, &me.addr, &mut r), Some(1), "{p:?}");
            }
        }
        // Only itself: nobody.
        assert_eq!(
            pick_target(Policy::Load, 48, &t[..1], &me.addr, &mut r),
            None
        );
        // Another client may use it.
        assert_eq!(
            pick_target(Policy::Load, 48, &t, &a("2001:db8:3::1"), &mut r),
            Some(0)
        );
    }

    #[test]
    fn scoped_prefers_the_clients_prefix() {
        let mut r = SmallRng::seed_from_u64(3);
        let t = vec![cand("2001:db8:1::5", 0), cand("2001:db8:2::5", 7)];
        assert_eq!(
            pick_target(Policy::Scoped, 48, &t, &a("2001:db8:2::99"), &mut r),
            Some(1)
        );
        assert_eq!(
            pick_target(Policy::Scoped, 48, &t, &a("2001:db8:9::99"), &mut r),
            Some(0)
        );
    }

    #[test]
    fn proximity_orders_by_rtt_from_the_iap_and_drops_empty_japs() {
        let mut r = SmallRng::seed_from_u64(4);
        let iap = a("2001:db8:f::1");
        let mut e = vec![
            JapEntry {
                jap: a("2001:db8:f::2"),
                count: 3,
            },
            JapEntry {
                jap: a("2001:db8:f::3"),
                count: 1,
            },
            JapEntry {
                jap: a("2001:db8:f::4"),
                count: 0,
            },
            JapEntry {
                jap: a("2001:db8:f::5"),
                count: 2,
            },
        ];
        let rtt = |_: &Ipv6Addr, j: &Ipv6Addr| match j.segments()[7] {
            2 => Some(Duration::from_millis(30)),
            3 => Some(Duration::from_millis(5)),
            _ => None,
        };
        order_japs(Policy::Proximity, &iap, &mut e, rtt, &mut r);
        let order: Vec<u16> = e.iter().map(|x| x.jap.segments()[7]).collect();
        assert_eq!(order, vec![3, 2, 5]);
    }

    #[test]
    fn load_order_favours_big_japs() {
        let mut r = SmallRng::seed_from_u64(5);
        let mut first_big = 0;
        for _ in 0..1000 {
            let mut e = vec![
                JapEntry {
                    jap: a("2001:db8::1"),
                    count: 1,
                },
                JapEntry {
                    jap: a("2001:db8::2"),
                    count: 9,
                },
            ];
            order_japs(Policy::Load, &a("2001:db8::9"), &mut e, |_, _| None, &mut r);
            if e[0].jap == a("2001:db8::2") {
                first_big += 1;
            }
        }
        // Expected 900 of 1000 (seeded: deterministic).
        assert!((850..=950).contains(&first_big), "{first_big}");
    }
}
