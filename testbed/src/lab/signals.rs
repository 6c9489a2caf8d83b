//! Termination signals (SIGINT, SIGTERM, SIGHUP) for binaries that own a
//! lab: blocked in every thread and taken synchronously with
//! `sigtimedwait`, so Ctrl-C or `testbed down` leads to an orderly teardown
//! instead of an abrupt exit.
//!
//! [`TerminationSignals::block`] must run in `main` before any thread is
//! started: threads inherit the signal mask of their creator, and a
//! signal not blocked in some thread would be delivered there and kill the
//! process. Lab processes get a clean mask (see [`super::process`]).

use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use super::error::LabError;

/// The blocked termination signals.
#[derive(Debug)]
pub struct TerminationSignals {
    set: SigSet,
}

impl TerminationSignals {
    /// The signals handled.
    pub const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

    /// Blocks the signals in the calling thread (and so in every thread it
    /// starts afterwards).
    pub fn block() -> Result<Self, LabError> {
        let mut set = SigSet::empty();
        for s in Self::SIGNALS {
            set.add(s);
        }
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| {
            LabError::io("blocking termination signals")(std::io::Error::from_raw_os_error(
                e as i32,
            ))
        })?;
        Ok(TerminationSignals { set })
    }

    /// Waits at most `timeout` for one of the signals; returns it, or
    /// `None` on timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Signal> {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
        };
        // SAFETY: `set` is a valid sigset, `ts` a valid timespec, and the
        // siginfo pointer may be null.
        let n = unsafe { libc::sigtimedwait(self.set.as_ref(), std::ptr::null_mut(), &ts) };
        if n <= 0 {
            return None;
        }
        Signal::try_from(n).ok()
    }

    /// A signal that is already pending, without waiting.
    pub fn poll(&self) -> Option<Signal> {
        self.wait_timeout(Duration::ZERO)
    }
}
