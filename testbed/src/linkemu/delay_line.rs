//! The decisions of one direction of an emulated link, without I/O: fed
//! `(now, packet)` in monotonic nanoseconds, it drops (loss, full queue) or
//! queues the packet with its release deadline; the writer pops what is due.
//!
//! Order of a packet's fate: loss (seeded), then the queue limit (tail drop),
//! then serialization at the configured rate after the previous packet,
//! then the propagation delay ± jitter. Without `reorder`, a deadline is
//! never earlier than the previous packet's, so jitter and a live decrease
//! of the delay keep packets in order.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::config::DirectionConfig;
use super::rng::SplitMix64;

/// A packet waiting for its deadline.
#[derive(Debug)]
pub struct Queued {
    /// When it may leave (monotonic ns).
    pub deadline: u64,
    /// Entry order (ties and FIFO).
    pub seq: u64,
    /// When it entered the link (monotonic ns).
    pub arrival: u64,
    /// The configured delay when it entered (ns), to measure extra delay.
    pub nominal: u64,
    /// The packet.
    pub data: Vec<u8>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

/// What happened to an offered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Queued; leaves at `deadline`. `new_head`: it is now the earliest
    /// packet, so a sleeping writer must be woken.
    Queued { deadline: u64, new_head: bool },
    /// Dropped by the loss generator (or the link is down).
    Lost,
    /// Dropped because the queue is at its packet or byte limit.
    QueueFull,
}

/// One direction's state: configuration, generator, serializer and queue.
#[derive(Debug)]
pub struct DelayLine {
    cfg: DirectionConfig,
    down: bool,
    rng: SplitMix64,
    /// Latest deadline handed out (for in-order release).
    last_deadline: u64,
    /// When the serializer is free again (rate limiting).
    tx_free_at: u64,
    heap: BinaryHeap<Reverse<Queued>>,
    bytes: usize,
    seq: u64,
}

fn dur_ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl DelayLine {
    /// A direction with `cfg`, its generator seeded with `seed`.
    pub fn new(cfg: DirectionConfig, seed: u64) -> Self {
        DelayLine {
            cfg,
            down: false,
            rng: SplitMix64::new(seed),
            last_deadline: 0,
            tx_free_at: 0,
            heap: BinaryHeap::new(),
            bytes: 0,
            seq: 0,
        }
    }

    /// The current configuration.
    pub fn config(&self) -> &DirectionConfig {
        &self.cfg
    }

    /// Replaces the configuration; applies to packets entering from now on
    /// (packets already queued keep their deadlines, as on a real wire).
    pub fn set_config(&mut self, cfg: DirectionConfig) {
        self.cfg = cfg;
    }

    /// Takes the direction down (every entering packet is lost) or up.
    pub fn set_down(&mut self, down: bool) {
        self.down = down;
    }

    /// Whether the direction is down.
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// Decides the fate of a packet entering at `now` and queues it.
    /// Exactly two generator draws per packet, whatever the verdict, so the
    /// loss pattern of a seed depends only on the packet's index.
    pub fn offer(&mut self, now: u64, data: &[u8]) -> Verdict {
        let loss_draw = self.rng.next_f64();
        let jitter_draw = self.rng.next_f64();
        if self.down || loss_draw < self.cfg.loss {
            return Verdict::Lost;
        }
        let len = data.len();
        if self.heap.len() >= self.cfg.queue_packets
            || self.bytes.saturating_add(len) > self.cfg.queue_bytes
        {
            return Verdict::QueueFull;
        }
        let mut sent = now;
        if let Some(rate) = self.cfg.rate_bps {
            let bits = (len as u128) * 8 * 1_000_000_000;
            let ser = u64::try_from(bits / u128::from(rate.max(1))).unwrap_or(u64::MAX);
            sent = now.max(self.tx_free_at).saturating_add(ser);
            self.tx_free_at = sent;
        }
        let nominal = dur_ns(self.cfg.delay);
        let jitter = dur_ns(self.cfg.jitter) as f64 * (2.0 * jitter_draw - 1.0);
        let delay = (nominal as f64 + jitter).max(0.0) as u64;
        let mut deadline = sent.saturating_add(delay);
        if !self.cfg.reorder {
            deadline = deadline.max(self.last_deadline);
        }
        self.last_deadline = self.last_deadline.max(deadline);
        let new_head = self
            .heap
            .peek()
            .is_none_or(|Reverse(head)| deadline < head.deadline);
        self.seq = self.seq.wrapping_add(1);
        self.bytes += len;
        self.heap.push(Reverse(Queued {
            deadline,
            seq: self.seq,
            arrival: now,
            nominal,
            data: data.to_vec(),
        }));
        Verdict::Queued { deadline, new_head }
    }

    /// The earliest deadline in the queue.
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(q)| q.deadline)
    }

    /// Moves every packet whose deadline is `<= now` to `out`, earliest first.
    pub fn pop_due(&mut self, now: u64, out: &mut Vec<Queued>) {
        while self.heap.peek().is_some_and(|Reverse(q)| q.deadline <= now) {
            if let Some(Reverse(q)) = self.heap.pop() {
                self.bytes = self.bytes.saturating_sub(q.data.len());
                out.push(q);
            }
        }
    }

    /// Takes the earliest packet if its deadline is `<= now`.
    pub fn pop_one_due(&mut self, now: u64) -> Option<Queued> {
        if self.next_deadline()? > now {
            return None;
        }
        let Reverse(q) = self.heap.pop()?;
        self.bytes = self.bytes.saturating_sub(q.data.len());
        Some(q)
    }

    /// Puts back a packet taken by [`DelayLine::pop_one_due`] that could not
    /// be sent (it keeps its place: same deadline and sequence number).
    pub fn put_back(&mut self, q: Queued) {
        self.bytes = self.bytes.saturating_add(q.data.len());
        self.heap.push(Reverse(q));
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn line(cfg: DirectionConfig) -> DelayLine {
        DelayLine::new(cfg, 42)
    }

    fn deadline(v: Verdict) -> u64 {
        match v {
            Verdict::Queued { deadline, .. } => deadline,
            other => panic!("not queued: {other:?}"),
        }
    }

    #[test]
    fn fixed_delay_fifo_and_due() {
        let mut l = line(DirectionConfig::with_delay(Duration::from_millis(10)));
        let v = l.offer(MS, &[1]);
        assert_eq!(
            v,
            Verdict::Queued {
                deadline: 11 * MS,
                new_head: true
            }
        );
        let v = l.offer(2 * MS, &[2]);
        assert_eq!(
            v,
            Verdict::Queued {
                deadline: 12 * MS,
                new_head: false
            }
        );
        let mut out = Vec::new();
        l.pop_due(11 * MS - 1, &mut out);
        assert!(out.is_empty());
        l.pop_due(11 * MS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, vec![1]);
        assert_eq!(l.next_deadline(), Some(12 * MS));
        l.pop_due(u64::MAX, &mut out);
        assert_eq!(out.len(), 2);
        assert!(l.is_empty() && l.bytes() == 0);
    }

    #[test]
    fn jitter_without_reorder_keeps_order() {
        let mut l = line(DirectionConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(8),
            ..Default::default()
        });
        let mut last = 0;
        let mut spread = std::collections::HashSet::new();
        for i in 0..1000u64 {
            let now = i * MS / 10;
            let d = deadline(l.offer(now, &[0; 100]));
            assert!(d >= last, "packet {i} would overtake");
            assert!(d >= now + 2 * MS, "below delay - jitter");
            spread.insert(d - now);
            last = d;
        }
        assert!(spread.len() > 100, "jitter had no effect");
        let mut out = Vec::new();
        l.pop_due(u64::MAX, &mut out);
        assert!(out.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn jitter_with_reorder_reorders_and_pops_by_deadline() {
        let mut l = line(DirectionConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(8),
            reorder: true,
            ..Default::default()
        });
        let mut last = 0;
        let mut overtakes = 0;
        for i in 0..1000u64 {
            let d = deadline(l.offer(i * MS / 10, &[0; 100]));
            let lo = i * MS / 10 + 2 * MS;
            assert!((lo..=lo + 16 * MS).contains(&d));
            if d < last {
                overtakes += 1;
            }
            last = last.max(d);
        }
        assert!(overtakes > 0);
        let mut out = Vec::new();
        l.pop_due(u64::MAX, &mut out);
        assert_eq!(out.len(), 1000);
        assert!(out.windows(2).all(|w| w[0].deadline <= w[1].deadline));
        assert!(out.windows(2).any(|w| w[0].seq > w[1].seq));
    }

    #[test]
    fn rate_serializes_back_to_back_packets() {
        // 1500 bytes at 12 Mbit/s = 1 ms each.
        let mut l = line(DirectionConfig {
            delay: Duration::from_millis(5),
            rate_bps: Some(12_000_000),
            ..Default::default()
        });
        for k in 1..=10u64 {
            assert_eq!(deadline(l.offer(0, &[0; 1500])), k * MS + 5 * MS);
        }
        // After an idle gap the serializer starts fresh.
        assert_eq!(deadline(l.offer(100 * MS, &[0; 1500])), 106 * MS);
    }

    #[test]
    fn queue_limits_tail_drop() {
        let mut l = line(DirectionConfig {
            delay: Duration::from_millis(5),
            queue_packets: 3,
            ..Default::default()
        });
        for _ in 0..3 {
            assert!(matches!(l.offer(0, &[0; 10]), Verdict::Queued { .. }));
        }
        assert_eq!(l.offer(0, &[0; 10]), Verdict::QueueFull);
        let mut out = Vec::new();
        l.pop_due(5 * MS, &mut out);
        assert!(matches!(l.offer(6 * MS, &[0; 10]), Verdict::Queued { .. }));

        let mut l = line(DirectionConfig {
            delay: Duration::from_millis(5),
            queue_bytes: 2500,
            ..Default::default()
        });
        assert!(matches!(l.offer(0, &[0; 1500]), Verdict::Queued { .. }));
        assert_eq!(l.offer(0, &[0; 1500]), Verdict::QueueFull);
        assert!(matches!(l.offer(0, &[0; 1000]), Verdict::Queued { .. }));
        assert_eq!(l.bytes(), 2500);
    }

    #[test]
    fn loss_rate_close_to_configured_and_seeded() {
        let cfg = DirectionConfig {
            loss: 0.1,
            ..Default::default()
        };
        let pattern = |seed| {
            let mut l = DelayLine::new(cfg.clone(), seed);
            let mut out = Vec::new();
            (0..100_000u64)
                .map(|i| {
                    let lost = l.offer(i, &[0]) == Verdict::Lost;
                    l.pop_due(i, &mut out);
                    out.clear();
                    lost
                })
                .collect::<Vec<bool>>()
        };
        let a = pattern(1);
        let rate = a.iter().filter(|&&x| x).count() as f64 / a.len() as f64;
        // 4 standard deviations of a binomial(100000, 0.1) proportion.
        assert!(
            (rate - 0.1).abs() < 4.0 * (0.1f64 * 0.9 / 1e5).sqrt(),
            "{rate}"
        );
        assert_eq!(a, pattern(1));
        assert_ne!(a, pattern(2));
    }

    #[test]
    fn down_and_live_change() {
        let mut l = line(DirectionConfig::with_delay(Duration::from_millis(20)));
        assert!(matches!(l.offer(0, &[1]), Verdict::Queued { .. }));
        l.set_down(true);
        assert_eq!(l.offer(MS, &[2]), Verdict::Lost);
        l.set_down(false);
        // Delay cut from 20 to 1 ms: the next packet may not overtake.
        l.set_config(DirectionConfig::with_delay(Duration::from_millis(1)));
        assert_eq!(deadline(l.offer(2 * MS, &[3])), 20 * MS);
        assert_eq!(deadline(l.offer(30 * MS, &[4])), 31 * MS);
        l.set_config(DirectionConfig {
            loss: 1.0,
            ..Default::default()
        });
        assert_eq!(l.offer(40 * MS, &[5]), Verdict::Lost);
    }
}
