//! The four threads of a link: per direction a reader (input fd -> delay
//! line) and a writer (delay line -> output fd at each packet's deadline).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::capture::Capture;
use super::delay_line::{DelayLine, Queued, Verdict};
use super::stats::{Counters, DirectionStats, Tally};
use super::sys;
use crate::topology::LinkDir;

/// Most packets a reader takes from its fd per wake-up before it flushes
/// the capture and looks at the stop signal again.
const READ_BATCH: usize = 64;
/// Failed reads (or empty hang-up wake-ups) in a row after which a reader
/// gives its fd up.
const MAX_CONSECUTIVE_ERRORS: u32 = 64;
/// How long a writer waits for a full output fd before it looks at the stop
/// signal again (ms).
const WRITE_RETRY_MS: libc::c_int = 100;

/// What one direction's lock protects: the delay line and the packet tally.
pub(crate) struct DirState {
    pub line: DelayLine,
    pub tally: Tally,
}

/// One direction's shared state.
pub(crate) struct DirShared {
    state: Mutex<DirState>,
    /// Futex word: bumped to wake the writer (new earliest packet, stop).
    wake: AtomicU32,
    counters: Counters,
}

impl DirShared {
    pub fn new(line: DelayLine) -> Self {
        DirShared {
            state: Mutex::new(DirState {
                line,
                tally: Tally::default(),
            }),
            wake: AtomicU32::new(0),
            counters: Counters::default(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, DirState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A consistent snapshot of this direction's counters.
    pub fn stats(&self) -> DirectionStats {
        let st = self.lock();
        self.counters.snapshot(&st.tally, st.line.len())
    }

    fn wake_writer(&self) {
        self.wake.fetch_add(1, SeqCst);
        sys::futex_wake(&self.wake);
    }
}

/// State shared by a link's threads and handles.
pub(crate) struct Shared {
    pub name: String,
    /// Index 0: a -> b, 1: b -> a.
    pub dirs: [DirShared; 2],
    pub stop: AtomicBool,
    /// Readable once the link stops (wakes readers out of poll).
    pub stop_fd: OwnedFd,
    pub capture: Option<Mutex<Capture>>,
    pub max_packet: usize,
}

impl Shared {
    pub fn dir(&self, dir: LinkDir) -> &DirShared {
        match dir {
            LinkDir::AToB => &self.dirs[0],
            LinkDir::BToA => &self.dirs[1],
        }
    }

    pub fn capture_lock(&self) -> Option<MutexGuard<'_, Capture>> {
        self.capture
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Tells every thread to stop and wakes them.
    pub fn signal_stop(&self) {
        self.stop.store(true, SeqCst);
        sys::eventfd_signal(self.stop_fd.as_fd());
        for d in &self.dirs {
            d.wake_writer();
        }
    }
}

fn is_fatal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EBADFD | libc::EINVAL | libc::EFAULT | libc::ENXIO | libc::ENODEV)
    )
}

/// Reads packets from `input` into direction `dir` until stopped or until
/// `input` hangs up or fails for good.
pub(crate) fn run_reader(shared: Arc<Shared>, dir: LinkDir, input: Arc<OwnedFd>) {
    let d = shared.dir(dir);
    let c = &d.counters;
    // One byte more than the largest packet: a read that fills it is oversize.
    let mut buf = vec![0u8; shared.max_packet + 1];
    let mut errors_in_a_row = 0u32;
    let mut empty_hangups = 0u32;
    loop {
        if shared.stop.load(SeqCst) {
            break;
        }
        let ready = match sys::poll_two(input.as_fd(), libc::POLLIN, shared.stop_fd.as_fd(), -1) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                Counters::add(&c.read_errors, 1);
                break;
            }
        };
        if ready.stop {
            break;
        }
        if ready.revents & libc::POLLNVAL != 0 {
            Counters::add(&c.read_errors, 1);
            break;
        }
        let hangup = ready.revents & (libc::POLLHUP | libc::POLLERR) != 0;
        let mut got = 0usize;
        let mut give_up = false;
        while got < READ_BATCH {
            match sys::read(input.as_fd(), &mut buf) {
                Ok(0) if hangup => {
                    give_up = true; // end of file: the peer closed
                    break;
                }
                Ok(n) => {
                    errors_in_a_row = 0;
                    got += 1;
                    let now = sys::mono_now();
                    admit(&shared, dir, now, buf.get(..n).unwrap_or_default());
                    if n == 0 {
                        // An empty datagram, or an end of file that the next
                        // poll reports as a hang-up: look again first.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    Counters::add(&c.read_errors, 1);
                    errors_in_a_row += 1;
                    if is_fatal(&e) || errors_in_a_row >= MAX_CONSECUTIVE_ERRORS {
                        tracing::warn!(link = %shared.name, ?dir, error = %e, "input fd failed; reader stops");
                        give_up = true;
                    }
                    break;
                }
            }
        }
        if let Some(mut cap) = shared.capture_lock()
            && cap.dirty()
        {
            cap.flush();
        }
        // A hang-up or error that yields nothing, again and again: the fd is dead.
        if hangup && got == 0 {
            empty_hangups += 1;
            give_up |= empty_hangups >= MAX_CONSECUTIVE_ERRORS;
        } else {
            empty_hangups = 0;
        }
        if give_up {
            break;
        }
    }
    if !shared.stop.load(SeqCst) {
        c.input_closed.store(true, SeqCst);
        tracing::debug!(link = %shared.name, ?dir, "input closed");
    }
}

/// Counts a packet read at `now`, runs it through the delay line (empty or
/// oversize packets are dropped as invalid), wakes the writer if it is the
/// new earliest packet, and captures it.
fn admit(shared: &Shared, dir: LinkDir, now: u64, pkt: &[u8]) {
    let d = shared.dir(dir);
    let verdict = {
        let mut st = d.lock();
        st.tally.packets_in += 1;
        st.tally.bytes_in += pkt.len() as u64;
        if pkt.is_empty() || pkt.len() > shared.max_packet {
            st.tally.dropped_invalid += 1;
            return;
        }
        let v = st.line.offer(now, pkt);
        match v {
            Verdict::Queued { .. } => {}
            Verdict::Lost => st.tally.dropped_loss += 1,
            Verdict::QueueFull => st.tally.dropped_queue += 1,
        }
        v
    };
    if let Verdict::Queued { new_head: true, .. } = verdict {
        d.wake_writer();
    }
    if let Some(mut cap) = shared.capture_lock() {
        cap.record(dir, verdict, now, pkt);
    }
}

enum Sent {
    Ok,
    Failed,
    Stopped,
}

/// Writes one packet, waiting while the fd is full (non-blocking fd).
fn write_packet(shared: &Shared, out: BorrowedFd<'_>, pkt: &[u8]) -> Sent {
    loop {
        match sys::write(out, pkt) {
            Ok(n) if n == pkt.len() => return Sent::Ok,
            Ok(_) => return Sent::Failed,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if shared.stop.load(SeqCst) {
                    return Sent::Stopped;
                }
                match sys::poll_two(out, libc::POLLOUT, shared.stop_fd.as_fd(), WRITE_RETRY_MS) {
                    Ok(r) if r.stop => return Sent::Stopped,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Sent::Failed,
                }
            }
            Err(_) => return Sent::Failed,
        }
    }
}

/// Releases direction `dir`'s packets into `output` at their deadlines.
/// Packets are taken one at a time, so while the output is blocked the
/// backlog stays in the delay line, where the queue limit applies to it.
pub(crate) fn run_writer(shared: Arc<Shared>, dir: LinkDir, output: Arc<OwnedFd>) {
    // The kernel may otherwise fire our wake-up up to 50 us late.
    sys::set_timer_slack(1);
    let d = shared.dir(dir);
    let c = &d.counters;
    loop {
        // Load the futex word before looking at the stop flag and the queue,
        // so a wake-up between the two is not lost.
        let seen = d.wake.load(SeqCst);
        if shared.stop.load(SeqCst) {
            break;
        }
        let (due, next) = {
            let mut st = d.lock();
            let due: Option<Queued> = st.line.pop_one_due(sys::mono_now());
            st.tally.writing = u64::from(due.is_some());
            (due, st.line.next_deadline())
        };
        let Some(q) = due else {
            sys::futex_wait_until(&d.wake, seen, next);
            continue;
        };
        let t = sys::mono_now();
        let sent = write_packet(&shared, output.as_fd(), &q.data);
        let len = q.data.len() as u64;
        let mut st = d.lock();
        st.tally.writing = 0;
        match sent {
            Sent::Ok => {
                st.tally.packets_out += 1;
                st.tally.bytes_out += len;
                drop(st);
                Counters::max(&c.max_late_ns, t.saturating_sub(q.deadline));
                Counters::max(
                    &c.max_queue_delay_ns,
                    t.saturating_sub(q.arrival).saturating_sub(q.nominal),
                );
            }
            Sent::Failed => st.tally.write_errors += 1,
            Sent::Stopped => {
                // Back into the line: counted as queued (discarded at shutdown).
                st.line.put_back(q);
                break;
            }
        }
    }
}
