//! The state file of a lab: `STATE_DIR/<prefix>.json` (default state dir
//! [`DEFAULT_STATE_DIR`]), written before the first namespace is created and
//! kept current while the lab runs. It lets `testbed down`, `list` and
//! `exec` find running labs, and tells the reaper and `down` what to remove.
//!
//! Processes are identified by pid *and* start time (`/proc/PID/stat`
//! field 22), so a reused pid is never mistaken for a lab's owner.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::LabError;

/// Where state files go unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/run/mip6-testbed";

/// Version of the state file format.
pub const STATE_VERSION: u32 = 1;

/// A process: pid plus its start time in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start_time: u64,
}

/// `(state letter, start time)` of a process from `/proc/PID/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and ')': the fields start after
    // the last ')'. Field 3 is the state, field 22 the start time.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl ProcId {
    /// The process `pid` as it is now, if it exists.
    pub fn of(pid: i32) -> Option<Self> {
        proc_stat(pid).map(|(_, start_time)| ProcId { pid, start_time })
    }

    /// This process.
    pub fn current() -> Option<Self> {
        Self::of(std::process::id() as i32)
    }

    /// Whether this very process still runs (same start time, not a zombie).
    pub fn is_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }
}

/// What a lab is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabStatus {
    Building,
    Up,
    TearingDown,
}

/// A host in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub netns: String,
}

/// A link in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    pub name: String,
    pub kind: String,
    pub a: String,
    pub b: String,
    pub a_ifname: String,
    pub b_ifname: String,
    pub pcap: Option<PathBuf>,
}

/// A process started in the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcState {
    pub name: String,
    pub host: String,
    pub program: String,
    pub proc: ProcId,
    pub log: PathBuf,
}

/// The content of a state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub version: u32,
    pub prefix: String,
    pub family: String,
    pub lab_name: Option<String>,
    pub topology: Option<PathBuf>,
    pub status: LabStatus,
    pub owner: ProcId,
    pub owner_cmdline: String,
    pub reaper: Option<ProcId>,
    pub out_dir: PathBuf,
    pub created_unix_ms: u64,
    pub hosts: Vec<HostState>,
    pub links: Vec<LinkState>,
    pub processes: Vec<ProcState>,
}

/// The command line of process `pid`, arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The state file of lab `prefix` in `dir`.
pub fn state_path(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}.json"))
}

fn state_err(path: &Path, message: impl Into<String>) -> LabError {
    LabError::State {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Creates `path` only if it does not exist (the claim on a prefix).
/// `Ok(false)`: it exists already.
pub fn claim(path: &Path) -> Result<bool, LabError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| state_err(dir, format!("creating: {e}")))?;
    }
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(state_err(path, e.to_string())),
    }
}

impl LabState {
    /// Writes the state to `path` atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), LabError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| state_err(path, e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            state_err(path, e.to_string())
        })
    }

    /// Reads a state file.
    pub fn load(path: &Path) -> Result<Self, LabError> {
        let text = fs::read(path).map_err(|e| state_err(path, e.to_string()))?;
        let s: LabState =
            serde_json::from_slice(&text).map_err(|e| state_err(path, e.to_string()))?;
        if s.version != STATE_VERSION {
            return Err(state_err(
                path,
                format!("version {} (expected {STATE_VERSION})", s.version),
            ));
        }
        Ok(s)
    }

    /// The namespace of `host`, if the lab has that host.
    pub fn netns_of(&self, host: &str) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| h.netns.as_str())
    }
}

/// Every `*.json` state file in `dir` with its parsed content (or why it
/// does not parse), sorted by file name. A missing directory is empty.
pub fn list(dir: &Path) -> Vec<(PathBuf, Result<LabState, LabError>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let s = LabState::load(&p);
            (p, s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcId::current().expect("own /proc entry");
        assert!(me.is_alive());
        let other = ProcId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
        assert!(!ProcId { pid: -5, ..me }.is_alive());
    }

    #[test]
    fn state_round_trips_and_claims_are_exclusive() {
        let dir = std::env::temp_dir().join(format!("lab-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = state_path(&dir, "mt1x0");
        assert!(claim(&path).unwrap());
        assert!(!claim(&path).unwrap());
        let s = LabState {
            version: STATE_VERSION,
            prefix: "mt1x0".into(),
            family: "mt".into(),
            lab_name: Some("demo".into()),
            topology: None,
            status: LabStatus::Up,
            owner: ProcId::current().unwrap(),
            owner_cmdline: cmdline(std::process::id() as i32),
            reaper: None,
            out_dir: "/tmp/x".into(),
            created_unix_ms: unix_ms(),
            hosts: vec![HostState {
                name: "C".into(),
                netns: "mt1x0-C".into(),
            }],
            links: vec![],
            processes: vec![],
        };
        s.save(&path).unwrap();
        let back = LabState::load(&path).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.netns_of("C"), Some("mt1x0-C"));
        let listed = list(&dir);
        assert_eq!(listed.len(), 1);
        assert!(listed[0].1.is_ok());
        fs::write(&path, b"{ not json").unwrap();
        assert!(matches!(LabState::load(&path), Err(LabError::State { .. })));
        let _ = fs::remove_dir_all(&dir);
    }
}
