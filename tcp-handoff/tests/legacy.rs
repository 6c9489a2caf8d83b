//! (d) Taking the connection of an unmodified process (a Python echo
//! server) with pidfd_getfd, restoring it in another namespace and handing
//! it to another unmodified process over SCM_RIGHTS. Needs root.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{FlagWatch, Lab, X, connect_client, fill_pattern, pattern};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tcp_handoff::fdpass::send_fd;
use tcp_handoff::legacy::{find_socket_fd, held_connections, steal_fd};
use tcp_handoff::{FreezeOptions, RestoreOptions, freeze, reinject, restore_paused};

const PYTHON: &str = "/usr/bin/python3";

/// A plain echo server: one connection, recv/sendall until EOF.
const ECHO_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
c, _ = s.accept()
while True:
    d = c.recv(65536)
    if not d:
        break
    c.sendall(d)
"#;

/// An echo service that receives its connection over a Unix socket
/// (SCM_RIGHTS + the crate's "THFD" frame).
const ECHO_SERVICE: &str = r#"
import socket, struct, sys
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1])
srv.listen(1)
print("ready", flush=True)
ch, _ = srv.accept()
msg, fds, _, _ = socket.recv_fds(ch, 8, 1)
while len(msg) < 8:
    msg += ch.recv(8 - len(msg))
assert msg[:4] == b"THFD" and len(fds) == 1
(n,) = struct.unpack(">I", msg[4:8])
meta = b""
while len(meta) < n:
    meta += ch.recv(n - len(meta))
print("meta " + meta.decode(), flush=True)
c = socket.socket(fileno=fds[0])
while True:
    d = c.recv(65536)
    if not d:
        break
    c.sendall(d)
"#;

struct Proc {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Proc {
    fn spawn(ns: &str, script: &str, args: &[&str]) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, PYTHON, "-c", script])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut p = Proc { child, out };
        assert_eq!(p.line(), "ready");
        p
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).expect("read python output");
        l.trim().to_string()
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the process is in state T (stopped): SIGSTOP is asynchronous.
fn wait_stopped(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // "pid (comm) S ...": the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        if state == Some(Some('T')) {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} did not stop");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `len` pattern bytes from `off` and reads the echo back, checking it.
fn echo_round(c: &mut TcpStream, off: u64, len: usize) {
    let mut buf = vec![0u8; len];
    fill_pattern(7, off, &mut buf);
    c.write_all(&buf).unwrap();
    expect_echo(c, off, len);
}

fn expect_echo(c: &mut TcpStream, off: u64, len: usize) {
    let mut got = vec![0u8; len];
    c.read_exact(&mut got).expect("echo");
    for (i, b) in got.iter().enumerate() {
        assert_eq!(
            *b,
            pattern(7, off + i as u64),
            "echo byte {}",
            off + i as u64
        );
    }
}

#[test]
fn moves_a_connection_of_an_unmodified_process() {
    require_root!();
    let lab = Lab::new();
    let port = 8090u16;
    let donor = Proc::spawn(
        &lab.d.name,
        ECHO_SERVER,
        &[&X.to_string(), &port.to_string()],
    );
    let dir = std::env::temp_dir().join(common::unique("svc"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let mut service = Proc::spawn(&lab.a.name, ECHO_SERVICE, &[path.to_str().unwrap()]);

    let mut client = connect_client(&lab.c, port);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut off = 0u64;
    for _ in 0..5 {
        echo_round(&mut client, off, 10_000);
        off += 10_000;
    }
    let before: Vec<_> = lab.all().iter().map(|ns| ns.counters()).collect();
    let watch = FlagWatch::start(&lab.c, port);

    // The donor process stops (as a live process would be busy elsewhere);
    // a request arrives and waits, unread, in its socket.
    kill(Pid::from_raw(donor.pid()), Signal::SIGSTOP).unwrap();
    wait_stopped(donor.pid());
    let mut req = vec![0u8; 20_000];
    fill_pattern(7, off, &mut req);
    client.write_all(&req).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    // Find its socket by the 4-tuple and take a duplicate of it.
    let local = SocketAddr::new(X.into(), port);
    let remote = client.local_addr().unwrap();
    let pid = donor.pid();
    let held = held_connections(pid).unwrap();
    assert_eq!(
        held.len(),
        1,
        "the echo server holds one connection: {held:?}"
    );
    let fd_no = find_socket_fd(pid, local, remote).unwrap();
    let mut frozen = lab.d.run(move || {
        let fd = steal_fd(pid, fd_no).expect("pidfd_getfd");
        freeze(fd, &FreezeOptions::default()).expect("freeze")
    });
    let tcp = frozen.dump().unwrap();
    assert_eq!(tcp.recv.len(), 20_000, "the unread request is in the dump");

    // More data while frozen: dropped by the shield, captured.
    let mut late_req = vec![0u8; 5_000];
    fill_pattern(7, off + 20_000, &mut late_req);
    client.write_all(&late_req).unwrap();

    let paused = lab
        .a
        .run(move || restore_paused(&tcp, &RestoreOptions::default()).unwrap());
    lab.route_to_acceptor();
    let live = lab.a.run(move || paused.activate().unwrap());

    // Hand the restored socket to the local service process.
    let channel = UnixStream::connect(&path).unwrap();
    send_fd(&channel, live.stream.as_fd(), b"client=moved").unwrap();
    assert_eq!(service.line(), "meta client=moved");
    drop(live);

    std::thread::sleep(Duration::from_millis(50));
    let id = frozen.id();
    let late = frozen.close_silently().unwrap();
    lab.a
        .run(move || reinject(id.local, id.remote, &late).unwrap());

    expect_echo(&mut client, off, 25_000);
    off += 25_000;
    for _ in 0..5 {
        echo_round(&mut client, off, 10_000);
        off += 10_000;
    }

    // The original process wakes up to a dead socket and exits; nothing it
    // does reaches the wire.
    kill(Pid::from_raw(donor.pid()), Signal::SIGCONT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut donor = donor;
    while donor.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    echo_round(&mut client, off, 10_000);

    let seen = watch.stop();
    assert_eq!(
        (seen.fins, seen.rsts),
        (0, 0),
        "client saw FIN/RST: {seen:?}"
    );
    for (ns, b) in lab.all().iter().zip(&before) {
        let after = ns.counters();
        assert_eq!(b.delta(&after, "OutRsts"), 0, "OutRsts in {}", ns.name);
    }
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}
