//! The `testbed` binary: `up` until SIGINT or `down`, a SIGKILLed `up`
//! cleaned up by its reaper, `down --all` removing hand-made leftovers,
//! `exec` and `list`, and errors that name the field or the daemon.
//!
//! Every test runs the binary with its own state directory and a name
//! family of its own, so `down` and `down --all` here never touch another
//! lab on the machine.

mod lab_support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lab_support::*;
use mip6_anycast::engine::netns::{self, NetnsGuard};
use mip6_anycast::require_root;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testbed::lab::state::{self, LabState, ProcId};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");

/// Two hosts on a veth pair; B runs `sh` that leaves a `sleep` behind
/// (its pid in `pidfile`): a grandchild the parent-death signal does not
/// reach, so only the namespace sweep can remove it.
fn topology(pidfile: &Path) -> String {
    format!(
        r#"
[[host]]
name = "A"
[[host]]
name = "B"
[[link]]
a = "A"
b = "B"
a_addr = ["2001:db8:9::1/64"]
b_addr = ["2001:db8:9::2/64"]
[[daemon]]
name = "sleeper"
host = "B"
kind = "custom"
program = "sh"
args = ["-c", "sleep 1000 & echo $! > {}; wait"]
"#,
        pidfile.display()
    )
}

/// A `testbed` command with this test's state dir and family.
fn testbed(dir: &TempDir, family: &str) -> Command {
    let mut c = Command::new(TESTBED);
    c.arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--family")
        .arg(family);
    c
}

/// A running `testbed up` whose lab is up.
struct Up {
    child: Child,
    state: LabState,
    sleep: ProcId,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `testbed up` on the two-host topology and waits until it says
/// the lab is up and the daemon's grandchild runs.
fn start_up(dir: &TempDir, family: &str) -> Up {
    let pidfile = dir.join("sleep.pid");
    let topo = dir.join("lab.toml");
    std::fs::write(&topo, topology(&pidfile)).unwrap();
    let mut child = testbed(dir, family)
        .arg("up")
        .arg(&topo)
        .arg("--out")
        .arg(dir.join("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("up.err")).unwrap(),
        ))
        .spawn()
        .expect("start testbed up");
    let stdout = child.stdout.take().unwrap();
    let mut up_line = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("testbed: lab ") && line.contains(" up;") {
            up_line = Some(line);
            break;
        }
    }
    let err = std::fs::read_to_string(dir.join("up.err")).unwrap_or_default();
    assert!(up_line.is_some(), "testbed up did not come up: {err}");
    let labs = state::list(&dir.join("state"));
    assert_eq!(labs.len(), 1, "one state file");
    let state = labs.into_iter().next().unwrap().1.expect("readable state");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    }));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sleep = ProcId::of(pid).expect("the grandchild runs");
    assert_eq!(namespaces_of(&state.prefix).len(), 2);
    Up {
        child,
        state,
        sleep,
    }
}

/// Everything of the lab is gone within `limit`.
fn assert_lab_gone(up: &Up, dir: &TempDir, limit: Duration) {
    let prefix = &up.state.prefix;
    let daemon = up.state.processes.first().expect("the daemon is recorded");
    let gone = wait_until(limit, || {
        namespaces_of(prefix).is_empty()
            && !up.sleep.is_alive()
            && !daemon.proc.is_alive()
            && !state::state_path(&dir.join("state"), prefix).exists()
    });
    assert!(
        gone,
        "lab {prefix} left: namespaces {:?}, sleep alive {}, daemon alive {}, reaper log: {}",
        namespaces_of(prefix),
        up.sleep.is_alive(),
        daemon.proc.is_alive(),
        std::fs::read_to_string(dir.join("out/logs/reaper.log")).unwrap_or_default()
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run testbed")
}

/// Runs a command that must succeed; returns its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sigkilled_up_is_cleaned_by_its_reaper() {
    require_root!("sigkilled_up_is_cleaned_by_its_reaper");
    let dir = TempDir::new("cli-crash");
    let mut up = start_up(&dir, &test_family("c"));
    let reaper = up.state.reaper.expect("a reaper");
    assert!(reaper.is_alive());
    up.child.kill().unwrap(); // SIGKILL: no teardown at all
    up.child.wait().unwrap();
    assert_lab_gone(&up, &dir, Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || !reaper.is_alive()));
    let log = std::fs::read_to_string(dir.join("out/logs/reaper.log")).unwrap();
    assert!(log.contains("ended without teardown"), "{log}");
}

#[test]
fn sigint_tears_the_lab_down_and_exec_list_work() {
    require_root!("sigint_tears_the_lab_down_and_exec_list_work");
    let dir = TempDir::new("cli-sigint");
    let family = test_family("i");
    let mut up = start_up(&dir, &family);

    // exec: a command inside host B sees B's address.
    let text =
        run_ok(testbed(&dir, &family).args(["exec", "B", "--", "cat", "/proc/net/if_inet6"]));
    assert!(text.contains("20010db8000900000000000000000002"), "{text}");
    let text = run_ok(testbed(&dir, &family).args(["exec", "B", "--", "ls", "/sys/class/net"]));
    assert!(text.contains("A-B"), "{text}");
    let out = run(testbed(&dir, &family).args(["exec", "Q", "--", "true"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has host \"Q\""));

    let text = run_ok(testbed(&dir, &family).arg("list"));
    assert!(
        text.contains(&up.state.prefix) && text.contains("running"),
        "{text}"
    );

    kill(Pid::from_raw(up.child.id() as i32), Signal::SIGINT).unwrap();
    let status = up.child.wait().unwrap();
    let err = std::fs::read_to_string(dir.join("up.err")).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("SIGINT: tearing down"), "{err}");
    // A clean teardown leaves nothing, at once; the reaper was released.
    assert_lab_gone(&up, &dir, Duration::from_secs(1));
    let reaper = up.state.reaper.unwrap();
    assert!(wait_until(Duration::from_secs(3), || !reaper.is_alive()));
    let log = std::fs::read_to_string(dir.join("out/logs/reaper.log")).unwrap();
    assert!(log.is_empty(), "the reaper had nothing to do: {log}");
}

#[test]
fn down_stops_a_running_up() {
    require_root!("down_stops_a_running_up");
    let dir = TempDir::new("cli-down");
    let family = test_family("d");
    let mut up = start_up(&dir, &family);
    let text = run_ok(testbed(&dir, &family).args(["down", &up.state.prefix]));
    assert!(text.contains("asking owner"), "{text}");
    let status = up.child.wait().unwrap();
    assert!(status.success(), "up ends cleanly on SIGTERM: {status}");
    assert_lab_gone(&up, &dir, Duration::from_secs(1));
    let out = run(testbed(&dir, &family).args(["down", "nosuchlab1x1"]));
    assert!(!out.status.success());
}

#[test]
fn down_all_removes_leftovers_of_the_family_only() {
    require_root!("down_all_removes_leftovers_of_the_family_only");
    let dir = TempDir::new("cli-all");
    let family = test_family("a");
    let other = test_family("o");
    // A leftover of a crashed run, made by hand, with a process inside.
    let leftover = NetnsGuard::create(&format!("{family}999x0-left")).unwrap();
    let keep = NetnsGuard::create(&format!("{other}999x0-keep")).unwrap();
    let fd = netns::open(leftover.name()).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    // SAFETY: setns is a plain system call.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut inside = cmd.spawn().unwrap();
    drop(fd);

    let text = run_ok(testbed(&dir, &family).arg("list"));
    assert!(text.contains(leftover.name()), "{text}");
    let text = run_ok(testbed(&dir, &family).args(["down", "--all"]));
    assert!(
        text.contains("killed 1 processes, deleted 1 namespaces"),
        "{text}"
    );
    assert!(!netns::exists(leftover.name()));
    assert!(netns::exists(keep.name()), "another family is left alone");
    let status = inside.wait().unwrap();
    assert!(!status.success(), "the process inside was killed: {status}");
    keep.delete().unwrap();
    drop(leftover);
}

#[test]
fn up_reports_bad_daemons_and_leaves_nothing() {
    require_root!("up_reports_bad_daemons_and_leaves_nothing");
    let dir = TempDir::new("cli-baddaemon");
    let family = test_family("b");
    let bins = TempDir::new("cli-nobins");
    let topo = dir.join("lab.toml");
    std::fs::write(
        &topo,
        "[[host]]\nname = \"HA\"\n[[daemon]]\nhost = \"HA\"\nkind = \"home-agent\"\n\
         config = { home_prefix = \"2001:db8:100::/64\" }\n",
    )
    .unwrap();
    let out = run(testbed(&dir, &family)
        .arg("up")
        .arg(&topo)
        .arg("--bin-dir")
        .arg(bins.path()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("daemon[0] (home-agent-HA)") && err.contains("not found"),
        "{err}"
    );
    assert!(
        state::list(&dir.join("state")).is_empty(),
        "state file removed"
    );
    let left: Vec<String> = testbed::lab::cleanup::all_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&family))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn up_names_the_bad_field() {
    // Validation comes first: no root needed.
    let dir = TempDir::new("cli-badtopo");
    let topo = dir.join("bad.toml");
    std::fs::write(
        &topo,
        "[[host]]\nname = \"A\"\n[[link]]\na = \"A\"\nb = \"Z\"\nloss = 2.0\n",
    )
    .unwrap();
    let out = run(testbed(&dir, &test_family("t")).arg("up").arg(&topo));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("link[0].b: unknown host \"Z\""), "{err}");
    assert!(err.contains("link[0].loss"), "{err}");
    let out = run(testbed(&dir, "Bad1").arg("list"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--family"));
}
