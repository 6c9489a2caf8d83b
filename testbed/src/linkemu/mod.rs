//! Emulated links: two packet fds (the TUN devices of the link's ends, or
//! any fd that keeps packet boundaries, like a `SOCK_SEQPACKET` or
//! `SOCK_DGRAM` unix socketpair) joined in user space with delay, jitter,
//! loss, a rate limit, a bounded queue and pcap capture. The kernel here has
//! no netem (see ENVIRONMENT.md), so the testbed delays packets itself.
//!
//! Each direction has two threads:
//! - a **reader** polls its input fd, reads whole packets (no packet-info
//!   header), stamps each with `CLOCK_MONOTONIC`, and runs it through the
//!   direction's [`DelayLine`]: loss (seeded generator), tail drop at the
//!   queue limit, serialization at the rate limit, delay ± jitter (in order
//!   unless `reorder`), and captures it;
//! - a **writer** sleeps until the earliest deadline (absolute
//!   `CLOCK_MONOTONIC` hrtimer, timer slack 1 ns) and writes due packets to
//!   the other end's fd.
//!
//! Timers: the writer sleeps with `FUTEX_WAIT_BITSET` on an absolute
//! `CLOCK_MONOTONIC` deadline. That is the same hrtimer, with the same
//! thread timer slack, as `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`,
//! and it can also be cut short by the reader (a new earliest packet when
//! jitter may reorder) or by shutdown, without signals. tokio's timer is not
//! used: its millisecond wheel adds about 1 ms per hop.
//!
//! A link owns its two fds (they are made non-blocking) and closes them
//! when it is dropped, after its threads have been told to stop and joined.
//!
//! ```
//! use std::time::Duration;
//! use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
//! use testbed::linkemu::{DirectionConfig, EmulatedLink, LinkConfig};
//! use testbed::topology::LinkDir;
//!
//! // In the lab these are the TUN fds of the link's two ends.
//! let pair = || socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC);
//! let (app_c, end_c) = pair()?;
//! let (end_r, app_r) = pair()?;
//! let cfg = LinkConfig::symmetric("c-r", DirectionConfig::with_delay(Duration::from_millis(10)));
//! let link = EmulatedLink::start(cfg, end_c, end_r)?;
//! let h = link.handle();
//! h.set_down(&LinkDir::BOTH, true); // failover drill: cut the link
//! h.set_down(&LinkDir::BOTH, false);
//! h.set_loss(&[LinkDir::AToB], 0.01)?;
//! let stats = link.shutdown(); // stops the threads, closes both fds
//! assert_eq!(stats.a_to_b.packets_in, 0);
//! # drop((app_c, app_r));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod capture;
mod config;
mod delay_line;
mod pump;
mod rng;
mod stats;
mod sys;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use capture::FLUSH_EVERY;
pub use config::{
    DEFAULT_MAX_PACKET, DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_PACKETS, DirectionConfig, LinkConfig,
    LinkError, frames_path, pcap_path,
};
pub use delay_line::{DelayLine, Queued, Verdict};
pub use rng::SplitMix64;
pub use stats::{DirectionStats, LinkStats};
pub use sys::mono_now;

use crate::topology::LinkDir;
use capture::Capture;
use pump::{DirShared, Shared};

impl LinkDir {
    /// Both directions, for [`LinkHandle`] setters.
    pub const BOTH: [LinkDir; 2] = [LinkDir::AToB, LinkDir::BToA];
}

/// A running emulated link. Dropping it stops and joins its threads and
/// closes both fds; queued packets are discarded.
pub struct EmulatedLink {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A cheap, cloneable, thread-safe handle to change a running link and read
/// its counters. It stays valid (and harmless) after the link is dropped.
#[derive(Clone)]
pub struct LinkHandle {
    shared: Arc<Shared>,
}

impl EmulatedLink {
    /// Starts a link between the packet fds `a` and `b` (whole packets per
    /// read/write, e.g. TUN fds opened with `IFF_TUN | IFF_NO_PI`). The link
    /// takes ownership of both, sets them non-blocking, and starts four
    /// threads. With `cfg.capture`, creates the pcap file (and directory).
    pub fn start(cfg: LinkConfig, a: OwnedFd, b: OwnedFd) -> Result<Self, LinkError> {
        cfg.validate()?;
        sys::set_nonblocking(std::os::fd::AsFd::as_fd(&a))
            .map_err(|e| LinkError::io("setting fd a non-blocking", e))?;
        sys::set_nonblocking(std::os::fd::AsFd::as_fd(&b))
            .map_err(|e| LinkError::io("setting fd b non-blocking", e))?;
        let stop_fd = sys::eventfd().map_err(|e| LinkError::io("eventfd", e))?;
        let capture = match &cfg.capture {
            Some(path) => Some(Mutex::new(Capture::create(
                path,
                cfg.max_packet,
                sys::realtime_offset(),
            )?)),
            None => None,
        };
        // Independent streams for the two directions from the one seed.
        let mut seeds = SplitMix64::new(cfg.seed);
        let shared = Arc::new(Shared {
            dirs: [
                DirShared::new(DelayLine::new(cfg.a_to_b.clone(), seeds.next_u64())),
                DirShared::new(DelayLine::new(cfg.b_to_a.clone(), seeds.next_u64())),
            ],
            stop: AtomicBool::new(false),
            stop_fd,
            capture,
            max_packet: cfg.max_packet,
            name: cfg.name.clone(),
        });
        let (a, b) = (Arc::new(a), Arc::new(b));
        let mut link = EmulatedLink {
            shared: shared.clone(),
            threads: Vec::with_capacity(4),
        };
        let plan: [(&str, LinkDir, &Arc<OwnedFd>, bool); 4] = [
            ("abr", LinkDir::AToB, &a, true),
            ("abw", LinkDir::AToB, &b, false),
            ("bar", LinkDir::BToA, &b, true),
            ("baw", LinkDir::BToA, &a, false),
        ];
        for (tag, dir, fd, is_reader) in plan {
            let (s, fd) = (shared.clone(), fd.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{tag}-{}", cfg.name))
                .spawn(move || {
                    if is_reader {
                        pump::run_reader(s, dir, fd)
                    } else {
                        pump::run_writer(s, dir, fd)
                    }
                });
            match spawned {
                Ok(h) => link.threads.push(h),
                // `link` is dropped here: the threads already started stop.
                Err(e) => return Err(LinkError::io("spawning a link thread", e)),
            }
        }
        tracing::debug!(link = %cfg.name, "emulated link started");
        Ok(link)
    }

    /// A handle for live changes and counters.
    pub fn handle(&self) -> LinkHandle {
        LinkHandle {
            shared: self.shared.clone(),
        }
    }

    /// The counters now.
    pub fn stats(&self) -> LinkStats {
        self.handle().stats()
    }

    /// Stops the link, joins its threads, closes its fds, and returns the
    /// final counters (`queued` = packets discarded).
    pub fn shutdown(mut self) -> LinkStats {
        self.stop_and_join();
        self.stats()
    }

    fn stop_and_join(&mut self) {
        self.shared.signal_stop();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!(link = %self.shared.name, "a link thread panicked");
            }
        }
        if let Some(mut cap) = self.shared.capture_lock() {
            cap.flush();
        }
    }
}

impl Drop for EmulatedLink {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl std::fmt::Debug for EmulatedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatedLink")
            .field("name", &self.shared.name)
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl LinkHandle {
    /// The link's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The counters of both directions now.
    pub fn stats(&self) -> LinkStats {
        LinkStats {
            a_to_b: self.shared.dir(LinkDir::AToB).stats(),
            b_to_a: self.shared.dir(LinkDir::BToA).stats(),
            capture_errors: self.shared.capture_lock().map_or(0, |c| c.errors),
        }
    }

    /// The configuration of one direction.
    pub fn config(&self, dir: LinkDir) -> DirectionConfig {
        self.shared.dir(dir).lock().line.config().clone()
    }

    /// Changes the given directions; applies to packets entering from now
    /// on. The new configuration is validated first (nothing changes on error).
    pub fn update(
        &self,
        dirs: &[LinkDir],
        change: impl Fn(&mut DirectionConfig),
    ) -> Result<(), LinkError> {
        let mut new = Vec::with_capacity(dirs.len());
        for &d in dirs {
            let mut cfg = self.config(d);
            change(&mut cfg);
            cfg.validate()?;
            new.push((d, cfg));
        }
        for (d, cfg) in new {
            self.shared.dir(d).lock().line.set_config(cfg);
        }
        Ok(())
    }

    /// Sets the one-way delay of the given directions.
    pub fn set_delay(&self, dirs: &[LinkDir], delay: Duration) -> Result<(), LinkError> {
        self.update(dirs, |c| c.delay = delay)
    }

    /// Sets the loss probability (0..=1) of the given directions.
    pub fn set_loss(&self, dirs: &[LinkDir], loss: f64) -> Result<(), LinkError> {
        self.update(dirs, |c| c.loss = loss)
    }

    /// Takes the given directions down (every entering packet is counted as
    /// lost, like loss 1.0) or up again, keeping the configured loss.
    pub fn set_down(&self, dirs: &[LinkDir], down: bool) {
        for &d in dirs {
            self.shared.dir(d).lock().line.set_down(down);
        }
    }

    /// Whether a direction is down.
    pub fn is_down(&self, dir: LinkDir) -> bool {
        self.shared.dir(dir).lock().line.is_down()
    }

    /// Whether the link's threads have been told to stop.
    pub fn is_stopped(&self) -> bool {
        self.shared.stop.load(SeqCst)
    }
}
