//! The loop both ends run on a socket: write the own pattern at a paced
//! rate, read and check the peer's, until stopped or the stream ends.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Largest write.
const CHUNK: usize = 16 * 1024;
/// Bytes a paced sender may be ahead of its rate.
const BURST: u64 = 8192;
/// Smallest paced write: below it the sender waits (tiny writes in a
/// tight loop would starve the runtime and the peer's reads).
const MIN_WRITE: usize = 4096;
/// The smallest write at very low rates.
const MIN_WRITE_FLOOR: usize = 512;

/// How a pump ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Stopped on request; the stream is intact.
    Stopped,
    /// The peer closed (FIN).
    Eof,
    /// The peer reset the connection.
    Reset,
    /// The endpoint gave up (the server on a mismatch).
    Aborted,
    /// Another socket error.
    Failed(std::io::Error),
}

/// One end's view of the data.
pub(crate) trait Endpoint {
    /// Writes the next bytes to send into `buf`; returns how many (0: not
    /// ready to send yet).
    fn fill(&mut self, buf: &mut [u8]) -> usize;
    /// `n` bytes were written.
    fn sent(&mut self, n: usize);
    /// Bytes written so far (pacing).
    fn tx_bytes(&self) -> u64;
    /// The send rate in bytes per second (`Some(0)`: unpaced); `None`
    /// while the endpoint may not send yet.
    fn rate(&self) -> Option<u64>;
    /// Bytes arrived; `false` aborts.
    fn received(&mut self, now: Instant, data: &[u8]) -> bool;
}

/// A token bucket over bytes per second (`0`: unpaced).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacer {
    rate: u64,
    start: Instant,
    base: u64,
}

impl Pacer {
    fn new(rate: u64, now: Instant, sent: u64) -> Self {
        Self {
            rate,
            start: now,
            base: sent,
        }
    }

    fn allowed(&self, now: Instant, sent: u64) -> usize {
        if self.rate == 0 {
            return CHUNK;
        }
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let budget = self.base as f64 + self.rate as f64 * elapsed + BURST as f64;
        let left = (budget - sent as f64).max(0.0);
        // At most a millisecond's worth per write at low rates, so the
        // stream stays smooth (receive gaps of about 1 ms, not 4 KB's
        // worth): the stall of a handoff is measured against it.
        let min_write = usize::try_from(self.rate / 1000)
            .unwrap_or(MIN_WRITE)
            .clamp(MIN_WRITE_FLOOR, MIN_WRITE);
        if left >= CHUNK as f64 {
            CHUNK
        } else if left >= min_write as f64 {
            left as usize
        } else {
            0
        }
    }
}

fn classify(e: std::io::Error) -> End {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            End::Reset
        }
        _ => End::Failed(e),
    }
}

/// Runs `ep` on `stream` until `stop` fires (or its sender is dropped) or
/// the stream ends.
pub(crate) async fn run(
    stream: &TcpStream,
    ep: &mut impl Endpoint,
    stop: &mut oneshot::Receiver<()>,
) -> End {
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut wbuf = vec![0u8; CHUNK];
    let mut pacer: Option<Pacer> = None;
    loop {
        // Yield now and then even when the socket is always ready.
        tokio::task::consume_budget().await;
        let now = Instant::now();
        if pacer.is_none() {
            pacer = ep.rate().map(|r| Pacer::new(r, now, ep.tx_bytes()));
        }
        let allowed = pacer.map_or(0, |p| p.allowed(now, ep.tx_bytes()));
        let n = if allowed > 0 {
            wbuf.get_mut(..allowed).map_or(0, |b| ep.fill(b))
        } else {
            0
        };
        let interest = if n > 0 {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        // Paced out: look again in a millisecond.
        let wake = (pacer.is_some() && allowed == 0)
            .then(|| tokio::time::Instant::now() + Duration::from_millis(1));
        tokio::select! {
            biased;
            _ = &mut *stop => return End::Stopped,
            r = stream.ready(interest) => {
                let r = match r {
                    Ok(r) => r,
                    Err(e) => return classify(e),
                };
                if r.is_readable() {
                    match stream.try_read(&mut rbuf) {
                        Ok(0) => return End::Eof,
                        Ok(k) => {
                            let data = rbuf.get(..k).unwrap_or(&[]);
                            if !ep.received(Instant::now(), data) {
                                return End::Aborted;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return classify(e),
                    }
                }
                if n > 0 && r.is_writable() {
                    match stream.try_write(wbuf.get(..n).unwrap_or(&[])) {
                        Ok(k) => ep.sent(k),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return classify(e),
                    }
                }
            }
            () = tokio::time::sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)), if wake.is_some() => {}
        }
    }
}
