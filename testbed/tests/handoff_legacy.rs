//! Handoff of a connection of an unmodified server process (needs root):
//! a plain Python echo server (threads, one per connection) listens on
//! `[::]:7007` in K and in A, and knows nothing of the handoff. The
//! contact-node daemons run `[services.legacy]` for its port: K takes the
//! client's socket out of the process (`pidfd_getfd`), freezes and moves
//! it; A serves the restored socket by splicing it to its own instance of
//! the server. The client's conversation goes on byte-exact, also after
//! K's server process is killed, and no reset is sent or seen.

mod daemon_support;
mod handoff_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use handoff_support::{A, CLIENT, COA_A, COA_K, HandoffLab, K, X, daemon_config, topology};
use mip6_anycast::require_root;
use nix::sys::signal::Signal;

const PORT: u16 = 7007;
const PYTHON: &str = "/usr/bin/python3";

/// An ordinary threaded echo server on `[::]:PORT`.
const ECHO_SERVER: &str = r#"
import socket, socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d:
                break
            self.request.sendall(d)
class Server(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
Server(("::", int(sys.argv[1])), Echo).serve_forever()
"#;

/// A byte pattern (differs per offset, period not a divisor of the sizes).
fn pattern(off: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((off + i) % 251) as u8 ^ 0x5a)
        .collect()
}

/// Sends `len` pattern bytes from `off` and checks the echo.
fn echo_round(c: &mut TcpStream, off: &mut u64, len: usize) {
    let msg = pattern(*off, len);
    c.write_all(&msg).expect("send to the echo server");
    let mut got = vec![0u8; len];
    c.read_exact(&mut got).expect("read the echo");
    assert!(
        got == msg,
        "echo of bytes {off}..{} differs",
        *off + len as u64
    );
    *off += len as u64;
}

fn legacy_config() -> toml::Value {
    toml::Value::Table(
        format!("port = {PORT}\nforward_to = \"[::1]:{PORT}\"\n")
            .parse()
            .expect("legacy section"),
    )
}

#[test]
fn unmodified_server_connection_moves_to_the_acceptor() {
    require_root!("unmodified_server_connection_moves_to_the_acceptor");
    let topo = topology(|t| {
        for h in ["K", "A"] {
            daemon_config(t, h)["services"]
                .as_table_mut()
                .expect("services")
                .insert("legacy".into(), legacy_config());
        }
    });
    let lab = HandoffLab::start("hlegacy", topo);
    let servers: Vec<_> = ["K", "A"]
        .iter()
        .map(|h| {
            let p = lab
                .session
                .lab
                .spawn(
                    h,
                    PYTHON,
                    ["-c", ECHO_SERVER, &PORT.to_string()],
                    std::iter::empty::<(&str, &str)>(),
                )
                .expect("start the echo server");
            lab.eventually(&format!("the echo server in {h}"), || {
                lab.session
                    .lab
                    .run_in(h, || {
                        TcpStream::connect(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, PORT)))
                            .is_ok()
                    })
                    .unwrap_or(false)
            });
            p
        })
        .collect();

    let mut c = lab
        .session
        .lab
        .run_in("C", || TcpStream::connect(SocketAddr::from((X, PORT))))
        .expect("run in C")
        .expect("connect from C to [X]:7007");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut off = 0u64;
    for _ in 0..5 {
        echo_round(&mut c, &mut off, 10_000);
    }
    lab.wait_bound(CLIENT, COA_K);
    // K's daemon finds the connection in the server process.
    lab.eventually("K serving C (the server's connection)", || {
        lab.served(K).contains(&CLIENT)
    });
    echo_round(&mut c, &mut off, 20_000);
    let before = lab.resets();

    let id = lab.handoff(K, CLIENT);
    assert_eq!(
        lab.frozen_connections(K, id),
        Some(1),
        "K took the server's connection"
    );
    let at_a = lab.events(A, id);
    assert!(
        at_a.iter().any(|e| e == "activated"),
        "A's log of {id}: {at_a:?}"
    );
    for _ in 0..5 {
        echo_round(&mut c, &mut off, 10_000);
    }
    // The answers come from A's instance: K's server is gone.
    servers[0].signal(Signal::SIGKILL).expect("kill K's server");
    let _ = servers[0].wait();
    for _ in 0..5 {
        echo_round(&mut c, &mut off, 30_000);
    }
    let svc = lab.ctl(A, "status")["services"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["listen"] == format!("[{X}]:{PORT}"))
                .cloned()
        })
        .expect("A's legacy service");
    assert_eq!(svc["adopted"], 1, "{svc}");
    assert_eq!(svc["active"], 1, "{svc}");
    assert!(svc["bytes_in"].as_u64().unwrap() >= 200_000, "{svc}");
    assert_eq!(lab.bindings()[&CLIENT].0, COA_A);
    lab.resets().assert_silent_since(&before, 1, 0);
    drop(c);
    let _ = servers[1].signal(Signal::SIGKILL);
    lab.session.stop();
}
