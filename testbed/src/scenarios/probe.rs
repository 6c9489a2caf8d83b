//! TCP echo probes from a lab host: connect to an echo service, send
//! small messages, time their round trips, check every echoed byte.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::lab::Lab;

/// A connection to an echo service, made inside a lab host.
#[derive(Debug)]
pub struct EchoProbe {
    stream: TcpStream,
    /// How long the connect took (one round trip plus processing).
    pub connect_time: Duration,
    sent: u64,
}

impl EchoProbe {
    /// Connects from `host` to `to` (the socket belongs to the host's
    /// namespace; it is used from this thread).
    pub fn connect(
        lab: &Lab,
        host: &str,
        to: SocketAddr,
        timeout: Duration,
    ) -> Result<EchoProbe, String> {
        let t0 = Instant::now();
        let stream = lab
            .run_in(host, move || TcpStream::connect_timeout(&to, timeout))
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("connect from {host} to {to}: {e}"))?;
        Self::ready(stream, t0.elapsed(), timeout)
    }

    /// Connects from this process's namespace (the workload tool in a
    /// `vm` guest).
    pub fn connect_here(to: SocketAddr, timeout: Duration) -> Result<EchoProbe, String> {
        let t0 = Instant::now();
        let stream = TcpStream::connect_timeout(&to, timeout)
            .map_err(|e| format!("connect to {to}: {e}"))?;
        Self::ready(stream, t0.elapsed(), timeout)
    }

    fn ready(
        stream: TcpStream,
        connect_time: Duration,
        timeout: Duration,
    ) -> Result<EchoProbe, String> {
        for r in [
            stream.set_read_timeout(Some(timeout)),
            stream.set_write_timeout(Some(timeout)),
            stream.set_nodelay(true),
        ] {
            r.map_err(|e| format!("socket option: {e}"))?;
        }
        Ok(EchoProbe {
            stream,
            connect_time,
            sent: 0,
        })
    }

    /// Sends `len` bytes (a pattern numbered by stream offset), reads the
    /// echo, checks it, returns the round-trip time.
    pub fn round_trip(&mut self, len: usize) -> Result<Duration, String> {
        let msg: Vec<u8> = (0..len as u64)
            .map(|i| ((self.sent + i).wrapping_mul(131) >> 3) as u8)
            .collect();
        let mut back = vec![0u8; len];
        let t0 = Instant::now();
        self.stream
            .write_all(&msg)
            .map_err(|e| format!("write at offset {}: {e}", self.sent))?;
        self.stream
            .read_exact(&mut back)
            .map_err(|e| format!("read at offset {}: {e}", self.sent))?;
        let rtt = t0.elapsed();
        if back != msg {
            return Err(format!("echo differs at offset {}", self.sent));
        }
        self.sent += len as u64;
        Ok(rtt)
    }

    /// `n` round trips of 64 bytes, `gap` apart; the RTTs in milliseconds.
    pub fn samples(&mut self, n: usize, gap: Duration) -> Result<Vec<f64>, String> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            if i > 0 {
                std::thread::sleep(gap);
            }
            out.push(self.round_trip(64)?.as_secs_f64() * 1000.0);
        }
        Ok(out)
    }

    /// Bytes echoed so far.
    pub fn echoed(&self) -> u64 {
        self.sent
    }

    /// Closes the sending side and waits for the service to close too.
    pub fn close(mut self) -> Result<(), String> {
        self.stream
            .shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        let mut rest = Vec::new();
        self.stream
            .read_to_end(&mut rest)
            .map_err(|e| format!("reading to the end: {e}"))?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected bytes at the end", rest.len()))
        }
    }
}

/// The median of `v` (`None` when empty).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
