//! RAP selection by consistent hashing over all live proxies (seed 001 3.2,
//! Karger et al.): every proxy owns `vnodes` points on a 64-bit ring; the
//! RAPs of a group are the first `k` distinct proxies clockwise from the
//! group's hash. Every proxy computes the same set from the same live view,
//! a proxy joining or dying moves only the groups next to its points, and a
//! lookup is a binary search (O(log points)), not a scan over all proxies.

use std::net::Ipv6Addr;

use crate::group::GroupAddr;

/// 64-bit FNV-1a followed by the splitmix64 finalizer (good avalanche, no
/// dependency, stable across releases: every proxy must agree on it).
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The consistent-hash ring over the live proxies.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    vnodes: u16,
    /// (point, index into `proxies`), sorted by point.
    points: Vec<(u64, u32)>,
    proxies: Vec<Ipv6Addr>,
}

impl Ring {
    /// An empty ring with `vnodes` points per proxy (at least 1).
    pub fn new(vnodes: u16) -> Self {
        Ring {
            vnodes: vnodes.max(1),
            points: Vec::new(),
            proxies: Vec::new(),
        }
    }

    /// A ring over `proxies` (built at once, sorted once).
    pub fn with_proxies(vnodes: u16, proxies: impl IntoIterator<Item = Ipv6Addr>) -> Self {
        let mut r = Ring::new(vnodes);
        for p in proxies {
            if r.proxies.contains(&p) {
                continue;
            }
            let ix = r.proxies.len() as u32;
            r.proxies.push(p);
            for v in 0..r.vnodes {
                r.points.push((point(&p, v), ix));
            }
        }
        r.points.sort_unstable();
        r
    }

    /// Number of live proxies.
    pub fn len(&self) -> usize {
        self.proxies.len()
    }

    /// No live proxy.
    pub fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }

    /// The live proxies.
    pub fn members(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.proxies.iter().copied()
    }

    /// Whether `p` is on the ring.
    pub fn contains(&self, p: &Ipv6Addr) -> bool {
        self.proxies.contains(p)
    }

    /// Adds a live proxy (no-op if present).
    pub fn insert(&mut self, p: Ipv6Addr) {
        if self.contains(&p) {
            return;
        }
        let ix = self.proxies.len() as u32;
        self.proxies.push(p);
        for v in 0..self.vnodes {
            let pt = (point(&p, v), ix);
            let at = self.points.partition_point(|x| *x < pt);
            self.points.insert(at, pt);
        }
    }

    /// Removes a dead proxy (no-op if absent).
    pub fn remove(&mut self, p: &Ipv6Addr) {
        let Some(ix) = self.proxies.iter().position(|x| x == p) else {
            return;
        };
        let last = (self.proxies.len() - 1) as u32;
        self.proxies.swap_remove(ix);
        let ix = ix as u32;
        self.points.retain(|(_, i)| *i != ix);
        if ix != last {
            for pt in &mut self.points {
                if pt.1 == last {
                    pt.1 = ix;
                }
            }
        }
    }

    /// The `k` RAPs of `group`, in ring order (fewer if fewer proxies live).
    pub fn raps(&self, group: &GroupAddr, k: usize) -> Vec<Ipv6Addr> {
        let mut out = Vec::with_capacity(k);
        self.raps_into(group, k, &mut out);
        out
    }

    /// As [`Ring::raps`] into a reused buffer (cleared first).
    pub fn raps_into(&self, group: &GroupAddr, k: usize, out: &mut Vec<Ipv6Addr>) {
        out.clear();
        if self.points.is_empty() {
            return;
        }
        let k = k.min(self.proxies.len());
        let h = hash64(&[&group.key_bytes()]);
        let start = self.points.partition_point(|x| x.0 < h);
        let n = self.points.len();
        for i in 0..n {
            let (_, ix) = self.points[(start + i) % n];
            let p = self.proxies[ix as usize];
            if !out.contains(&p) {
                out.push(p);
                if out.len() == k {
                    break;
                }
            }
        }
    }

    /// Bytes of heap this ring holds (for the scale report).
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * std::mem::size_of::<(u64, u32)>()
            + self.proxies.capacity() * std::mem::size_of::<Ipv6Addr>()
    }
}

fn point(p: &Ipv6Addr, v: u16) -> u64 {
    hash64(&[&p.octets(), &v.to_be_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::PROTO_TCP;

    fn proxy(i: u32) -> Ipv6Addr {
        Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i))
    }

    fn group(i: u16) -> GroupAddr {
        GroupAddr::new("2001:db8:aa::1".parse().unwrap(), 1000 + i, PROTO_TCP).unwrap()
    }

    #[test]
    fn every_proxy_computes_the_same_raps_regardless_of_insert_order() {
        let a = Ring::with_proxies(8, (0..50).map(proxy));
        let mut b = Ring::new(8);
        for i in (0..50).rev() {
            b.insert(proxy(i));
        }
        for g in 0..200 {
            let ra = a.raps(&group(g), 3);
            assert_eq!(ra.len(), 3);
            assert_eq!(ra, b.raps(&group(g), 3));
            let mut d = ra.clone();
            d.dedup();
            assert_eq!(d.len(), 3, "distinct RAPs");
        }
    }

    #[test]
    fn a_dead_proxy_moves_only_its_own_groups() {
        let full = Ring::with_proxies(16, (0..40).map(proxy));
        let mut less = full.clone();
        less.remove(&proxy(7));
        let mut moved = 0;
        for g in 0..1000 {
            let before = full.raps(&group(g), 3);
            let after = less.raps(&group(g), 3);
            assert!(!after.contains(&proxy(7)));
            if before.contains(&proxy(7)) {
                moved += 1;
                // The survivors keep their role; one new RAP is added.
                for p in before.iter().filter(|p| **p != proxy(7)) {
                    assert!(after.contains(p));
                }
            } else {
                assert_eq!(before, after);
            }
        }
        // About 3/40 of the groups had proxy 7 as a RAP.
        assert!(moved > 20 && moved < 160, "moved {moved}");
    }

    #[test]
    fn fewer_proxies_than_raps() {
        let r = Ring::with_proxies(4, (0..2).map(proxy));
        assert_eq!(r.raps(&group(1), 4).len(), 2);
        assert!(Ring::new(4).raps(&group(1), 3).is_empty());
    }
}
