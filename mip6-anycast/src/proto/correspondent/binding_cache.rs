//! The correspondent's binding cache (RFC 6275 9.1), compact enough for a
//! million bindings.
//!
//! Layout, chosen for size (see `benches/binding_cache.rs` for the measured
//! bytes per entry):
//!
//! * `slots: Vec<Slot>`: one 48-byte record per binding (home address,
//!   care-of address, expiry and last use in whole seconds since the cache's
//!   epoch, interned correspondent address, sequence number, refresh stage).
//!   Freed slots form a free list, so slot numbers are stable.
//! * `index: hashbrown::HashTable<u32>`: the slot number of each binding,
//!   hashed by (correspondent, home address) with SipHash keyed per process
//!   (`RandomState`), so an attacker choosing home addresses cannot force
//!   collisions. 4 bytes plus one control byte per bucket.
//! * `timers`: a min-heap of (due second, slot). An item is current only if
//!   the slot still computes the same due time; stale items are skipped and
//!   the heap is rebuilt when it holds more than twice the live bindings.
//! * Correspondent addresses (the node's own addresses, few) are interned
//!   into a `u16`.
//!
//! Times are kept in whole seconds, rounded so that a binding never lives
//! longer than granted (it may end up to one second early).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

/// Slot marker for "free" in `Slot::cn`.
const FREE: u16 = u16::MAX;
/// End of the free list.
const NIL: u32 = u32::MAX;

/// One binding, 48 bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hoa: [u8; 16],
    coa: [u8; 16],
    /// Expiry, seconds since epoch; for a free slot the next free slot.
    expires: u32,
    /// Last use plus one, seconds since epoch; 0 = never used.
    last_used: u32,
    /// Interned correspondent address, or [`FREE`].
    cn: u16,
    sequence: u16,
    /// Binding Refresh Request points passed (0, 1, 2).
    brr_stage: u8,
}

/// A binding cache entry as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The correspondent (this node's) address the binding is for.
    pub cn: Ipv6Addr,
    /// Home address.
    pub hoa: Ipv6Addr,
    /// Care-of address.
    pub coa: Ipv6Addr,
    /// Sequence number of the last accepted Binding Update.
    pub sequence: u16,
    /// When the binding expires.
    pub expires: Instant,
    /// Last reported use (see [`BindingCache::note_used`]), if any.
    pub last_used: Option<Instant>,
}

/// Whether [`BindingCache::upsert`] created or replaced a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new binding.
    Added,
    /// An existing binding was updated.
    Updated,
}

/// The cache is at its bound (RFC 6275 9.5.2: BA status 130).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("binding cache full ({0} entries)")]
pub struct CacheFull(pub usize);

/// A due timer of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTimer {
    /// Time to send a Binding Refresh Request: the binding is close to
    /// expiry and was used recently (RFC 6275 9.5.5).
    RefreshRequest(Binding),
    /// The binding expired and was removed.
    Expired(Binding),
}

/// When Binding Refresh Requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// First BRR this long before expiry; a second one at half of it.
    /// Zero disables BRRs.
    pub lead: Duration,
    /// A binding counts as in use if it was used within this long before a
    /// BRR point.
    pub usage_window: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            lead: Duration::from_secs(20),
            usage_window: Duration::from_secs(60),
        }
    }
}

/// Interned correspondent addresses with reference counts.
#[derive(Debug, Default)]
struct CnTable {
    addrs: Vec<Ipv6Addr>,
    refs: Vec<u32>,
    map: HashMap<Ipv6Addr, u16>,
    free: Vec<u16>,
}

impl CnTable {
    /// A node has few addresses: a linear scan beats hashing up to a few.
    fn find(&self, cn: Ipv6Addr) -> Option<u16> {
        if self.addrs.len() <= 8 {
            return self
                .addrs
                .iter()
                .zip(&self.refs)
                .position(|(a, r)| *r > 0 && *a == cn)
                .and_then(|i| u16::try_from(i).ok());
        }
        self.map.get(&cn).copied()
    }

    fn addr(&self, i: u16) -> Ipv6Addr {
        self.addrs
            .get(usize::from(i))
            .copied()
            .unwrap_or(Ipv6Addr::UNSPECIFIED)
    }

    fn acquire(&mut self, cn: Ipv6Addr) -> Option<u16> {
        let i = match self.find(cn) {
            Some(i) => i,
            None => {
                let i = match self.free.pop() {
                    Some(i) => i,
                    None => {
                        let i = u16::try_from(self.addrs.len())
                            .ok()
                            .filter(|i| *i != FREE)?;
                        self.addrs.push(cn);
                        self.refs.push(0);
                        i
                    }
                };
                if let Some(a) = self.addrs.get_mut(usize::from(i)) {
                    *a = cn;
                }
                self.map.insert(cn, i);
                i
            }
        };
        if let Some(r) = self.refs.get_mut(usize::from(i)) {
            *r += 1;
        }
        Some(i)
    }

    fn release(&mut self, i: u16) {
        if let Some(r) = self.refs.get_mut(usize::from(i)) {
            *r = r.saturating_sub(1);
            if *r == 0 {
                let a = self.addr(i);
                self.map.remove(&a);
                self.free.push(i);
            }
        }
    }

    fn bytes(&self) -> usize {
        self.addrs.capacity() * 16
            + self.refs.capacity() * 4
            + self.free.capacity() * 2
            + self.map.capacity() * (16 + 2 + 1)
    }
}

/// The binding cache. See the module docs.
#[derive(Debug)]
pub struct BindingCache {
    slots: Vec<Slot>,
    free_head: u32,
    len: usize,
    max_entries: usize,
    index: HashTable<u32>,
    hasher: RandomState,
    cns: CnTable,
    timers: BinaryHeap<Reverse<(u32, u32)>>,
    epoch: Instant,
    policy: RefreshPolicy,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl BindingCache {
    /// An empty cache holding at most `max_entries` bindings; `epoch` is
    /// the origin of its second counter (use the machine's creation time).
    #[must_use]
    pub fn new(max_entries: usize, policy: RefreshPolicy, epoch: Instant) -> Self {
        Self {
            slots: Vec::new(),
            free_head: NIL,
            len: 0,
            max_entries: max_entries.min(NIL as usize),
            index: HashTable::new(),
            hasher: RandomState::new(),
            cns: CnTable::default(),
            timers: BinaryHeap::new(),
            epoch,
            policy,
        }
    }

    /// Number of bindings.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no binding.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The configured bound.
    #[must_use]
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Heap bytes held by the cache (slots, index, timers, interned
    /// addresses), from the capacities of its containers.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>()
            + self.index.allocation_size()
            + self.timers.capacity() * size_of::<Reverse<(u32, u32)>>()
            + self.cns.bytes()
    }

    /// Size of one slot record in bytes.
    #[must_use]
    pub const fn slot_size() -> usize {
        size_of::<Slot>()
    }

    fn now_secs(&self, now: Instant) -> u32 {
        secs(now.saturating_duration_since(self.epoch))
    }

    fn instant(&self, s: u32) -> Instant {
        self.epoch + Duration::from_secs(u64::from(s))
    }

    fn hash(&self, cn: u16, hoa: &[u8; 16]) -> u64 {
        self.hasher.hash_one((cn, hoa))
    }

    fn find_slot(&self, cn: Ipv6Addr, hoa: Ipv6Addr) -> Option<u32> {
        let c = self.cns.find(cn)?;
        let h = hoa.octets();
        let slots = &self.slots;
        self.index
            .find(self.hash(c, &h), |&s| {
                slots
                    .get(s as usize)
                    .is_some_and(|e| e.cn == c && e.hoa == h)
            })
            .copied()
    }

    fn view(&self, s: &Slot) -> Binding {
        Binding {
            cn: self.cns.addr(s.cn),
            hoa: Ipv6Addr::from(s.hoa),
            coa: Ipv6Addr::from(s.coa),
            sequence: s.sequence,
            expires: self.instant(s.expires),
            last_used: s.last_used.checked_sub(1).map(|u| self.instant(u)),
        }
    }

    /// The binding for (`cn`, `hoa`), if any.
    #[must_use]
    pub fn get(&self, cn: Ipv6Addr, hoa: Ipv6Addr) -> Option<Binding> {
        let s = self.find_slot(cn, hoa)?;
        self.slots.get(s as usize).map(|e| self.view(e))
    }

    /// The care-of address bound to (`cn`, `hoa`): the datapath lookup.
    #[must_use]
    pub fn coa(&self, cn: Ipv6Addr, hoa: Ipv6Addr) -> Option<Ipv6Addr> {
        let s = self.find_slot(cn, hoa)?;
        self.slots.get(s as usize).map(|e| Ipv6Addr::from(e.coa))
    }

    /// All bindings, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = Binding> + '_ {
        self.slots
            .iter()
            .filter(|s| s.cn != FREE)
            .map(|s| self.view(s))
    }

    /// Records that the binding was used at `now` (by the datapath); returns
    /// whether it exists.
    pub fn note_used(&mut self, now: Instant, cn: Ipv6Addr, hoa: Ipv6Addr) -> bool {
        let n = self.now_secs(now).saturating_add(1);
        match self.find_slot(cn, hoa) {
            Some(s) => {
                if let Some(e) = self.slots.get_mut(s as usize) {
                    e.last_used = e.last_used.max(n);
                }
                true
            }
            None => false,
        }
    }

    /// Creates or updates the binding (`cn`, `hoa`) -> `coa` until
    /// `expires` with the accepted `sequence`.
    pub fn upsert(
        &mut self,
        cn: Ipv6Addr,
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
        sequence: u16,
        expires: Instant,
    ) -> Result<Upsert, CacheFull> {
        let exp = self.now_secs(expires);
        if let Some(s) = self.find_slot(cn, hoa) {
            if let Some(e) = self.slots.get_mut(s as usize) {
                e.coa = coa.octets();
                e.sequence = sequence;
                e.expires = exp;
                e.brr_stage = 0;
            }
            self.schedule(s);
            return Ok(Upsert::Updated);
        }
        if self.len >= self.max_entries {
            return Err(CacheFull(self.max_entries));
        }
        let c = self.cns.acquire(cn).ok_or(CacheFull(self.max_entries))?;
        let slot = Slot {
            hoa: hoa.octets(),
            coa: coa.octets(),
            expires: exp,
            last_used: 0,
            cn: c,
            sequence,
            brr_stage: 0,
        };
        let s = if self.free_head != NIL {
            let s = self.free_head;
            let next = self.slots.get(s as usize).map_or(NIL, |e| e.expires);
            self.free_head = next;
            if let Some(e) = self.slots.get_mut(s as usize) {
                *e = slot;
            }
            s
        } else {
            if self.slots.len() == self.slots.capacity() {
                let grow = self
                    .slots
                    .capacity()
                    .max(16)
                    .min(self.max_entries.saturating_sub(self.slots.len()).max(1));
                self.slots.reserve_exact(grow);
            }
            let Ok(s) = u32::try_from(self.slots.len()) else {
                self.cns.release(c);
                return Err(CacheFull(self.max_entries));
            };
            self.slots.push(slot);
            s
        };
        let h = self.hash(c, &slot.hoa);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(h, s, |&t| {
            slots
                .get(t as usize)
                .map_or(0, |e| hasher.hash_one((e.cn, &e.hoa)))
        });
        self.len += 1;
        self.schedule(s);
        Ok(Upsert::Added)
    }

    /// Removes the binding (`cn`, `hoa`).
    pub fn remove(&mut self, cn: Ipv6Addr, hoa: Ipv6Addr) -> Option<Binding> {
        let s = self.find_slot(cn, hoa)?;
        self.remove_slot(s)
    }

    fn remove_slot(&mut self, s: u32) -> Option<Binding> {
        let e = *self.slots.get(s as usize)?;
        if e.cn == FREE {
            return None;
        }
        let b = self.view(&e);
        let h = self.hash(e.cn, &e.hoa);
        if let Ok(entry) = self.index.find_entry(h, |&t| t == s) {
            entry.remove();
        }
        self.cns.release(e.cn);
        if let Some(slot) = self.slots.get_mut(s as usize) {
            slot.cn = FREE;
            slot.expires = self.free_head;
        }
        self.free_head = s;
        self.len -= 1;
        Some(b)
    }

    /// The due time (seconds since epoch) of a live slot.
    fn due(&self, e: &Slot) -> u32 {
        let lead = secs(self.policy.lead);
        match e.brr_stage {
            0 if lead > 0 => e.expires.saturating_sub(lead),
            1 if lead > 1 => e.expires.saturating_sub(lead / 2),
            _ => e.expires,
        }
    }

    fn schedule(&mut self, s: u32) {
        if let Some(e) = self.slots.get(s as usize) {
            let d = self.due(e);
            self.timers.push(Reverse((d, s)));
        }
        if self.timers.len() > 2 * self.len + 64 {
            self.rebuild_timers();
        }
    }

    fn rebuild_timers(&mut self) {
        let items: Vec<Reverse<(u32, u32)>> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.cn != FREE)
            .filter_map(|(i, e)| u32::try_from(i).ok().map(|i| Reverse((self.due(e), i))))
            .collect();
        self.timers = BinaryHeap::from(items);
    }

    fn is_current(&self, due: u32, s: u32) -> bool {
        self.slots
            .get(s as usize)
            .is_some_and(|e| e.cn != FREE && self.due(e) == due)
    }

    /// When the next timer is due (possibly earlier: an outdated timer
    /// makes [`pop_due`](Self::pop_due) find nothing, which is harmless).
    #[must_use]
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers
            .peek()
            .map(|Reverse((due, _))| self.instant(*due))
    }

    /// The next timer due at `now`, if any: an expiry (the binding is
    /// removed) or a Binding Refresh Request point passed while the binding
    /// was in use. Call repeatedly until `None`.
    pub fn pop_due(&mut self, now: Instant) -> Option<CacheTimer> {
        let n = self.now_secs(now);
        let window = secs(self.policy.usage_window);
        loop {
            let Reverse((due, s)) = *self.timers.peek()?;
            if due > n {
                return None;
            }
            self.timers.pop();
            if !self.is_current(due, s) {
                continue;
            }
            let e = *self.slots.get(s as usize)?;
            if due >= e.expires {
                return self.remove_slot(s).map(CacheTimer::Expired);
            }
            if let Some(slot) = self.slots.get_mut(s as usize) {
                slot.brr_stage = slot.brr_stage.saturating_add(1);
            }
            self.schedule(s);
            let in_use =
                e.last_used > 0 && e.last_used.saturating_sub(1).saturating_add(window) >= due;
            if in_use {
                return Some(CacheTimer::RefreshRequest(self.view(&e)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn slot_is_48_bytes() {
        assert_eq!(BindingCache::slot_size(), 48);
    }

    #[test]
    fn insert_lookup_update_remove_reuse() {
        let t0 = Instant::now();
        let mut c = BindingCache::new(2, RefreshPolicy::default(), t0);
        let (cn, h1, h2, h3) = (
            a("2001:db8::1"),
            a("2001:db8:1::1"),
            a("2001:db8:1::2"),
            a("2001:db8:1::3"),
        );
        let exp = t0 + Duration::from_secs(100);
        assert_eq!(
            c.upsert(cn, h1, a("2001:db8:2::1"), 1, exp),
            Ok(Upsert::Added)
        );
        assert_eq!(
            c.upsert(cn, h2, a("2001:db8:2::2"), 1, exp),
            Ok(Upsert::Added)
        );
        assert_eq!(
            c.upsert(cn, h3, a("2001:db8:2::3"), 1, exp),
            Err(CacheFull(2))
        );
        assert_eq!(
            c.upsert(cn, h1, a("2001:db8:2::9"), 2, exp),
            Ok(Upsert::Updated)
        );
        assert_eq!(c.coa(cn, h1), Some(a("2001:db8:2::9")));
        assert_eq!(c.get(cn, h1).unwrap().sequence, 2);
        assert_eq!(c.coa(a("2001:db8::2"), h1), None);
        assert!(c.remove(cn, h1).is_some());
        assert!(c.remove(cn, h1).is_none());
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.upsert(cn, h3, a("2001:db8:2::3"), 1, exp),
            Ok(Upsert::Added)
        );
        assert_eq!(c.slots.len(), 2, "freed slot reused");
        assert_eq!(c.coa(cn, h3), Some(a("2001:db8:2::3")));
        assert_eq!(c.coa(cn, h2), Some(a("2001:db8:2::2")));
    }

    #[test]
    fn expiry_and_refresh_points() {
        let t0 = Instant::now();
        let pol = RefreshPolicy {
            lead: Duration::from_secs(20),
            usage_window: Duration::from_secs(60),
        };
        let mut c = BindingCache::new(10, pol, t0);
        let (cn, h, h2) = (a("2001:db8::1"), a("2001:db8:1::1"), a("2001:db8:1::2"));
        c.upsert(cn, h, a("2001:db8:2::1"), 1, t0 + Duration::from_secs(100))
            .unwrap();
        c.upsert(cn, h2, a("2001:db8:2::2"), 1, t0 + Duration::from_secs(100))
            .unwrap();
        assert!(c.note_used(t0 + Duration::from_secs(50), cn, h));
        assert_eq!(c.next_timer(), Some(t0 + Duration::from_secs(80)));
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(c.pop_due(at(79)), None);
        match c.pop_due(at(80)) {
            Some(CacheTimer::RefreshRequest(b)) => assert_eq!(b.hoa, h),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.pop_due(at(80)), None, "h2 unused: no BRR");
        assert!(matches!(c.pop_due(at(90)), Some(CacheTimer::RefreshRequest(b)) if b.hoa == h));
        assert_eq!(c.pop_due(at(99)), None);
        let mut gone = Vec::new();
        while let Some(t) = c.pop_due(at(100)) {
            match t {
                CacheTimer::Expired(b) => gone.push(b.hoa),
                other => panic!("{other:?}"),
            }
        }
        gone.sort();
        assert_eq!(gone, vec![h, h2]);
        assert!(c.is_empty());
        assert_eq!(c.next_timer(), None);
    }

    #[test]
    fn refresh_reschedules_and_stale_timers_are_skipped() {
        let t0 = Instant::now();
        let mut c = BindingCache::new(10, RefreshPolicy::default(), t0);
        let (cn, h) = (a("2001:db8::1"), a("2001:db8:1::1"));
        for i in 0..1000u64 {
            c.upsert(
                cn,
                h,
                a("2001:db8:2::1"),
                i as u16,
                t0 + Duration::from_secs(100 + i),
            )
            .unwrap();
        }
        assert!(c.timers.len() <= 2 * c.len() + 64);
        assert_eq!(c.pop_due(t0 + Duration::from_secs(1098)), None);
        assert!(matches!(
            c.pop_due(t0 + Duration::from_secs(1099)),
            Some(CacheTimer::Expired(_))
        ));
    }
}
