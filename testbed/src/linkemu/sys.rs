//! Thin wrappers over the system calls the link threads use: the monotonic
//! clock, absolute-deadline sleeps on a futex, timer slack, eventfd, poll,
//! read and write on raw packet fds.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;

const NS_PER_SEC: u64 = 1_000_000_000;

// Linux UAPI futex constants (include/uapi/linux/futex.h).
const FUTEX_WAKE: libc::c_int = 1;
const FUTEX_WAIT_BITSET: libc::c_int = 9;
const FUTEX_PRIVATE_FLAG: libc::c_int = 128;
const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(NS_PER_SEC)
        .saturating_add(ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock `std::time::Instant` uses).
pub fn mono_now() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `CLOCK_REALTIME - CLOCK_MONOTONIC` in nanoseconds: add it to a monotonic
/// stamp to get wall-clock time (for pcap timestamps).
pub fn realtime_offset() -> i128 {
    let m1 = mono_now();
    let r = clock_ns(libc::CLOCK_REALTIME);
    let m2 = mono_now();
    i128::from(r) - i128::from(m1 / 2 + m2 / 2)
}

/// Sets this thread's timer slack (`prctl(PR_SET_TIMERSLACK)`): how late
/// the kernel may fire its timers to batch wake-ups. Default is 50 us.
pub fn set_timer_slack(ns: libc::c_ulong) {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
}

fn abs_timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / NS_PER_SEC) as libc::time_t,
        tv_nsec: (ns % NS_PER_SEC) as libc::c_long,
    }
}

/// Sleeps until the absolute `CLOCK_MONOTONIC` time `deadline` (ns), or
/// forever if `None`, unless `word` no longer holds `expected` or another
/// thread calls [`futex_wake`] on it.
///
/// This is `FUTEX_WAIT_BITSET`, whose timeout is an absolute
/// `CLOCK_MONOTONIC` time armed as an hrtimer with the thread's timer slack:
/// the same timer `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` uses,
/// but another thread can cut it short (a new earliest packet, shutdown),
/// which `clock_nanosleep` allows only through signals.
pub fn futex_wait_until(word: &AtomicU32, expected: u32, deadline: Option<u64>) {
    let ts = deadline.map(abs_timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid aligned u32 for the duration of the call;
    // `ts_ptr` is null or points to a live timespec. Spurious returns
    // (EAGAIN, EINTR, ETIMEDOUT) are all fine for the caller's loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            FUTEX_BITSET_MATCH_ANY,
        )
    };
}

/// Wakes every thread waiting in [`futex_wait_until`] on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

/// A non-blocking, close-on-exec eventfd (the readers' stop signal).
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is owned by us.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `fd` readable forever (adds 1 to the eventfd counter).
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Sets `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a valid fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Result of [`poll_two`]: `revents` of the data fd and whether the stop fd
/// is readable.
pub struct Ready {
    pub revents: libc::c_short,
    pub stop: bool,
}

/// Waits until `fd` has `events` or `stop` is readable, for at most
/// `timeout_ms` (-1: no limit).
pub fn poll_two(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    stop: BorrowedFd<'_>,
    timeout_ms: libc::c_int,
) -> io::Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a valid array of 2 pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Ready {
        revents: fds[0].revents,
        stop: fds[1].revents != 0,
    })
}

/// One `read(2)` into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writable bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One `write(2)` of `buf`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` readable bytes.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
