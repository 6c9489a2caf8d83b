//! Shared helpers of the lab tests: tool guards, unique name families and
//! state directories, TCP echo across hosts, ping parsing, tshark; the tool
//! guard and polling come from the linkemu tests' helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::lab::Lab;

#[path = "../linkemu_support/mod.rs"]
mod linkemu_support;
#[allow(unused_imports)] // not every test binary uses both
pub use linkemu_support::{tool_or_skip, wait_until};

/// A name family unique to this test process and `tag` (letters only):
/// `tb<pid in letters><tag>`. It never matches the default family `mt`, so
/// `testbed down --all` with it touches nothing but this test's labs.
pub fn test_family(tag: &str) -> String {
    let mut pid = std::process::id();
    let mut letters = String::new();
    loop {
        letters.push(char::from(b'a' + (pid % 26) as u8));
        pid /= 26;
        if pid == 0 {
            break;
        }
    }
    format!("tb{letters}{tag}")
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("lab-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The namespaces in /run/netns that start with `<prefix>-`.
pub fn namespaces_of(prefix: &str) -> Vec<String> {
    testbed::lab::cleanup::namespaces_with_prefix(prefix)
}

/// Whether `pid` is a live (non-zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    matches!(testbed::lab::state::proc_stat(pid as i32), Some((s, _)) if s != 'Z' && s != 'X')
}

/// A TCP echo server in `host` on `[addr]:0`: accepts one connection,
/// echoes until EOF. Returns the bound address.
pub fn echo_server(lab: &Lab, host: &str, addr: Ipv6Addr) -> SocketAddr {
    let listener = lab
        .run_in(host, move || {
            TcpListener::bind(SocketAddrV6::new(addr, 0, 0, 0)).expect("bind the echo server")
        })
        .expect("run in host");
    let local = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    local
}

/// Connects from `host` to `to`, sends a message and reads the echo.
/// Returns the echo and how long the connect took.
pub fn tcp_echo_from(lab: &Lab, host: &str, to: SocketAddr, msg: &[u8]) -> (Vec<u8>, Duration) {
    let stream = lab
        .run_in(host, move || {
            let t = Instant::now();
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(5));
            (s, t.elapsed())
        })
        .expect("run in host");
    let (stream, took) = stream;
    let mut s = stream.unwrap_or_else(|e| panic!("TCP connect from {host} to {to}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).expect("echo comes back");
    (got, took)
}

/// The `time=X ms` values of a ping log.
pub fn ping_times_ms(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            t.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// Runs `tshark -r FILE [-Y FILTER] -T fields -e frame.number` and returns
/// the number of frames (panics if tshark fails to read the file).
pub fn tshark_count(file: &Path, filter: Option<&str>) -> usize {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(file);
    if let Some(f) = filter {
        cmd.arg("-Y").arg(f);
    }
    cmd.args(["-T", "fields", "-e", "frame.number"]);
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark -r {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}
