//! Counters of one direction of a link, updated lock-free by its threads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// The counters that account for every packet, kept under the direction's
/// lock together with its delay line, so that a snapshot is consistent:
/// `packets_in` = the sum of all fates + `queued` at every instant.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub dropped_loss: u64,
    pub dropped_queue: u64,
    pub dropped_invalid: u64,
    pub write_errors: u64,
    /// The writer holds a packet taken from the delay line (0 or 1).
    pub writing: u64,
}

/// The other counters of one direction, updated lock-free.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub read_errors: AtomicU64,
    pub max_queue_delay_ns: AtomicU64,
    pub max_late_ns: AtomicU64,
    pub input_closed: AtomicBool,
}

impl Counters {
    pub fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Relaxed);
    }

    pub fn max(c: &AtomicU64, v: u64) {
        c.fetch_max(v, Relaxed);
    }

    /// A snapshot from the tally (taken under the lock), the packets in the
    /// delay line, and these counters.
    pub fn snapshot(&self, t: &Tally, in_line: usize) -> DirectionStats {
        DirectionStats {
            packets_in: t.packets_in,
            bytes_in: t.bytes_in,
            packets_out: t.packets_out,
            bytes_out: t.bytes_out,
            dropped_loss: t.dropped_loss,
            dropped_queue: t.dropped_queue,
            dropped_invalid: t.dropped_invalid,
            read_errors: self.read_errors.load(Relaxed),
            write_errors: t.write_errors,
            queued: in_line as u64 + t.writing,
            max_queue_delay_ns: self.max_queue_delay_ns.load(Relaxed),
            max_late_ns: self.max_late_ns.load(Relaxed),
            input_closed: self.input_closed.load(Relaxed),
        }
    }
}

/// A snapshot of one direction's counters.
///
/// Every packet read is counted in `packets_in`; it then ends as exactly one
/// of `packets_out`, `dropped_loss`, `dropped_queue`, `dropped_invalid`,
/// `write_errors`, or is still `queued` (or was discarded at shutdown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectionStats {
    /// Packets read from the input fd (including ones then dropped).
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets written to the output fd.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Dropped by the loss generator or because the direction was down.
    pub dropped_loss: u64,
    /// Tail-dropped at the queue limit.
    pub dropped_queue: u64,
    /// Empty reads or packets longer than `max_packet`.
    pub dropped_invalid: u64,
    /// Failed reads on the input fd.
    pub read_errors: u64,
    /// Failed writes on the output fd (the packet is dropped).
    pub write_errors: u64,
    /// Packets waiting right now (in the delay line or being written).
    pub queued: u64,
    /// Largest `(written - entered) - configured delay` seen: the extra delay
    /// from serialization, queueing behind other packets, jitter and
    /// scheduling. When it grows, the link's delay no longer holds.
    pub max_queue_delay_ns: u64,
    /// Largest `written - deadline` seen: how late the writer released a
    /// packet (scheduling error of the emulator itself).
    pub max_late_ns: u64,
    /// The input fd hung up or failed for good; this direction's reader stopped.
    pub input_closed: bool,
}

/// Both directions of a link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    pub a_to_b: DirectionStats,
    pub b_to_a: DirectionStats,
    /// Capture records that could not be written.
    pub capture_errors: u64,
}
