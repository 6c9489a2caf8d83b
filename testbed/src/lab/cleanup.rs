//! Removing what a lab left behind: the processes inside its namespaces and
//! the namespaces themselves. Shared by [`super::Lab::teardown`], the
//! reaper and `testbed down`.
//!
//! A process belongs to a namespace when `/proc/PID/ns/net` (the namespace
//! of its main thread) is the same nsfs inode as `/run/netns/NAME`. Only
//! main threads count: a process elsewhere that has one thread inside a lab
//! namespace for a moment (the testbed itself, running code with `in_netns`)
//! is never killed. Zombies have no namespace and are skipped.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use mip6_anycast::engine::netns::{self, NETNS_RUN_DIR, NetnsError};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How often a scan is repeated while waiting for processes to exit.
const POLL: Duration = Duration::from_millis(20);
/// Rounds of SIGTERM/SIGKILL (processes may fork while being killed).
const MAX_ROUNDS: usize = 4;

/// The identity of a network namespace: device and inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

/// The identity of the named namespace, if it exists.
pub fn netns_id(name: &str) -> Option<NsId> {
    let m = fs::metadata(netns::path_of(name)).ok()?;
    Some(NsId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// The names in `/run/netns` that start with `<prefix>-`, sorted.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let start = format!("{prefix}-");
    let mut v: Vec<String> = all_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&start))
        .collect();
    v.sort();
    v
}

/// Every name in `/run/netns`.
pub fn all_namespaces() -> Vec<String> {
    fs::read_dir(NETNS_RUN_DIR)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The pids whose main thread is in one of `ids`, except `exclude`.
pub fn pids_in(ids: &HashSet<NsId>, exclude: &[i32]) -> Vec<i32> {
    if ids.is_empty() {
        return Vec::new();
    }
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid > 1 && !exclude.contains(pid))
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| {
                ids.contains(&NsId {
                    dev: m.dev(),
                    ino: m.ino(),
                })
            })
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Kills every process inside the namespaces `names` (except `exclude` and
/// this process): SIGTERM, up to `grace` to exit, then SIGKILL; repeated
/// while new ones appear. Returns how many distinct pids were signalled.
pub fn kill_in_namespaces(names: &[String], exclude: &[i32], grace: Duration) -> usize {
    let ids: HashSet<NsId> = names.iter().filter_map(|n| netns_id(n)).collect();
    let mut exclude = exclude.to_vec();
    exclude.push(std::process::id() as i32);
    let mut signalled: HashSet<i32> = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let pids = pids_in(&ids, &exclude);
        if pids.is_empty() {
            break;
        }
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            signalled.insert(pid);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !pids_in(&ids, &exclude).is_empty() {
            std::thread::sleep(POLL);
        }
        for pid in pids_in(&ids, &exclude) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            signalled.insert(pid);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && !pids_in(&ids, &exclude).is_empty() {
            std::thread::sleep(POLL);
        }
    }
    signalled.len()
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Processes signalled.
    pub killed: usize,
    /// Namespaces deleted.
    pub deleted: Vec<String>,
    /// What could not be done.
    pub errors: Vec<String>,
}

/// Deletes the namespaces `names` (missing ones are fine).
pub fn delete_namespaces(names: &[String], report: &mut SweepReport) {
    for n in names {
        match netns::delete(n) {
            Ok(()) => report.deleted.push(n.clone()),
            Err(NetnsError::NotFound(_)) => {}
            Err(e) => report.errors.push(format!("deleting namespace {n}: {e}")),
        }
    }
}

/// Removes lab `prefix`: kills the processes in its namespaces, then
/// deletes the namespaces. Idempotent.
pub fn sweep(prefix: &str, exclude: &[i32], grace: Duration) -> SweepReport {
    let names = namespaces_with_prefix(prefix);
    let mut report = SweepReport {
        killed: kill_in_namespaces(&names, exclude, grace),
        ..Default::default()
    };
    delete_namespaces(&names, &mut report);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_has_this_process_but_it_is_excluded() {
        let m = fs::metadata("/proc/self/ns/net").unwrap();
        let ids = HashSet::from([NsId {
            dev: m.dev(),
            ino: m.ino(),
        }]);
        let me = std::process::id() as i32;
        assert!(pids_in(&ids, &[]).contains(&me));
        assert!(!pids_in(&ids, &[me]).contains(&me));
        assert!(pids_in(&HashSet::new(), &[]).is_empty());
    }

    #[test]
    fn unknown_prefix_sweeps_nothing() {
        let r = sweep("zz-no-such-lab-prefix", &[], Duration::from_millis(10));
        assert_eq!(r, SweepReport::default());
    }
}
