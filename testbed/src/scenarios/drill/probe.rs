//! The recovery probe of the drills: from a client namespace, a new TCP
//! connection to the anycast service every few tens of milliseconds, each
//! in its own thread with its own timeout, until one connects and echoes
//! a message back. Each attempt is a fresh connection (a fresh SYN), so
//! the first success after the service came back is not delayed by a SYN
//! retransmission timer.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::lab::Lab;

/// How often a new attempt starts.
pub const PROBE_EVERY: Duration = Duration::from_millis(20);
/// How long one attempt may take (connect plus echo).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// One connection that echoes `msg`.
fn attempt(to: SocketAddr, msg: &[u8]) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&to, ATTEMPT_TIMEOUT)?;
    s.set_read_timeout(Some(ATTEMPT_TIMEOUT))?;
    s.set_write_timeout(Some(ATTEMPT_TIMEOUT))?;
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    if back != msg {
        return Err(std::io::Error::other("echo mismatch"));
    }
    Ok(())
}

/// Probes from `host` until an echo succeeds or `limit` passes; returns
/// when the first successful attempt completed. Blocks the caller.
pub fn first_echo(lab: &Lab, host: &str, to: SocketAddr, limit: Duration) -> Option<Instant> {
    lab.run_in(host, move || {
        let (tx, rx) = mpsc::channel::<Instant>();
        let end = Instant::now() + limit;
        let mut n = 0u64;
        loop {
            if let Ok(t) = rx.try_recv() {
                return Some(t);
            }
            if Instant::now() >= end {
                return rx.recv_timeout(ATTEMPT_TIMEOUT).ok();
            }
            n += 1;
            let tx = tx.clone();
            let msg = format!("probe {n}\n").into_bytes();
            // Threads started here stay in `host`'s namespace.
            std::thread::spawn(move || {
                if attempt(to, &msg).is_ok() {
                    let _ = tx.send(Instant::now());
                }
            });
            std::thread::sleep(PROBE_EVERY);
        }
    })
    .ok()
    .flatten()
}
