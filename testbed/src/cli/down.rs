//! `testbed down` and `testbed list`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testbed::lab::cleanup::{self, SweepReport};
use testbed::lab::naming;
use testbed::lab::state::{self, LabState};

/// Arguments of `testbed down`.
#[derive(Args, Debug)]
pub struct DownArgs {
    /// Also remove namespaces of the family that no state file lists
    /// (leftovers of crashed runs) and kill the processes inside them.
    #[arg(long, conflicts_with = "prefix")]
    pub all: bool,
    /// Seconds to wait for a lab's owner to tear down after SIGTERM.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub timeout: u64,
    /// The lab to take down (default: every lab in the state directory).
    pub prefix: Option<String>,
}

/// Grace between SIGTERM and SIGKILL for processes left in a lab.
const GRACE: Duration = Duration::from_secs(1);

fn print_sweep(prefix: &str, r: &SweepReport) {
    println!(
        "lab {prefix}: killed {} processes, deleted {} namespaces",
        r.killed,
        r.deleted.len()
    );
    for e in &r.errors {
        eprintln!("lab {prefix}: {e}");
    }
}

fn remove_file(path: &Path, errors: &mut Vec<String>) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => errors.push(format!("removing {}: {e}", path.display())),
    }
}

/// Takes one recorded lab down. Returns errors.
fn down_lab(path: &Path, s: &LabState, timeout: Duration) -> Vec<String> {
    let mut errors = Vec::new();
    let me = std::process::id() as i32;
    if s.owner.pid != me && s.owner.is_alive() {
        println!(
            "lab {}: asking owner pid {} to stop (SIGTERM)",
            s.prefix, s.owner.pid
        );
        match kill(Pid::from_raw(s.owner.pid), Signal::SIGTERM) {
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(e) => errors.push(format!("signalling owner {}: {e}", s.owner.pid)),
        }
        let deadline = Instant::now() + timeout;
        while s.owner.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if s.owner.is_alive() {
            errors.push(format!(
                "owner pid {} still runs after {} s; removing the lab under it",
                s.owner.pid,
                timeout.as_secs()
            ));
        }
    }
    let r = cleanup::sweep(&s.prefix, &[s.owner.pid], GRACE);
    print_sweep(&s.prefix, &r);
    errors.extend(r.errors);
    remove_file(path, &mut errors);
    errors
}

pub fn run(args: &DownArgs, state_dir: &Path, family: &str) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_secs(args.timeout);
    let mut errors = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for (path, st) in state::list(state_dir) {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if args.prefix.as_ref().is_some_and(|p| *p != stem) {
            continue;
        }
        match st {
            Ok(s) => errors.extend(down_lab(&path, &s, timeout)),
            Err(e) => {
                // Unreadable (e.g. a crash while it was first written):
                // the file name is the prefix.
                eprintln!("{e}; removing lab {stem} by name");
                if naming::is_prefix_of_family(family, &stem) || args.prefix.is_some() {
                    let r = cleanup::sweep(&stem, &[], GRACE);
                    print_sweep(&stem, &r);
                    errors.extend(r.errors);
                }
                remove_file(&path, &mut errors);
            }
        }
        done.insert(stem);
    }
    if let Some(p) = &args.prefix
        && !done.contains(p)
    {
        if cleanup::namespaces_with_prefix(p).is_empty() {
            anyhow::bail!(
                "no lab {p} (no state file in {}, no namespaces {p}-*)",
                state_dir.display()
            );
        }
        let r = cleanup::sweep(p, &[], GRACE);
        print_sweep(p, &r);
        errors.extend(r.errors);
    }
    if args.all {
        // Labs whose state file is still there (an owner that did not stop)
        // are not orphans.
        let recorded: BTreeSet<String> = state::list(state_dir)
            .into_iter()
            .filter_map(|(p, _)| Some(p.file_stem()?.to_string_lossy().into_owned()))
            .collect();
        let orphans: BTreeSet<String> = cleanup::all_namespaces()
            .iter()
            .filter_map(|n| naming::prefix_of_namespace(family, n))
            .filter(|p| !recorded.contains(*p))
            .map(str::to_string)
            .collect();
        for p in orphans {
            let r = cleanup::sweep(&p, &[], GRACE);
            print_sweep(&p, &r);
            errors.extend(r.errors);
            done.insert(p);
        }
    }
    if done.is_empty() {
        println!("no labs");
    }
    for e in &errors {
        eprintln!("testbed down: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn list(state_dir: &Path, family: &str) -> anyhow::Result<ExitCode> {
    let labs = state::list(state_dir);
    let mut recorded = BTreeSet::new();
    if labs.is_empty() {
        println!("no labs in {}", state_dir.display());
    }
    for (path, st) in &labs {
        match st {
            Ok(s) => {
                recorded.insert(s.prefix.clone());
                let alive = if s.owner.is_alive() {
                    "running"
                } else {
                    "dead"
                };
                println!(
                    "{}  {}  {:?}  owner {} ({alive})  {} hosts  {} processes  out {}",
                    s.prefix,
                    s.lab_name.as_deref().unwrap_or("-"),
                    s.status,
                    s.owner.pid,
                    s.hosts.len(),
                    s.processes.len(),
                    s.out_dir.display()
                );
                for h in &s.hosts {
                    println!("    {}  netns {}", h.name, h.netns);
                }
            }
            Err(e) => println!("{}: {e}", path.display()),
        }
    }
    let mut orphans: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in cleanup::all_namespaces() {
        if let Some(p) = naming::prefix_of_namespace(family, &n)
            && !recorded.contains(p)
        {
            orphans.entry(p.to_string()).or_default().push(n.clone());
        }
    }
    if !orphans.is_empty() {
        println!("leftover namespaces without a state file (`testbed down --all` removes them):");
        for (p, names) in orphans {
            println!("  {p}: {}", names.join(" "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
