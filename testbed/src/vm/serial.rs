//! The guest's serial console, reached through QEMU's unix socket
//! (`-chardev socket,server=on`). The guest's `/init` ends in a loop that
//! reads one command line at a time from `ttyS0` (echo off, no prompt)
//! and evaluates it; [`SerialConsole::exec`] frames each command between
//! two marker lines and returns its output and exit status.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Line the guest's `/init` prints when it is ready for commands.
pub const READY_MARKER: &str = "MIP6VM-READY";
/// Most console output kept while waiting for a marker.
const MAX_PENDING: usize = 4 << 20;

/// A connected serial console.
#[derive(Debug)]
pub struct SerialConsole {
    stream: UnixStream,
    pending: Vec<u8>,
    next: u64,
    /// Everything read so far (bounded), for logs.
    pub transcript: Vec<u8>,
}

/// Result of one command in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status of the command.
    pub status: i32,
    /// Its stdout and stderr (carriage returns removed).
    pub output: String,
}

impl SerialConsole {
    /// Connects to `socket`, retrying until `timeout` (QEMU creates the
    /// socket shortly after it starts).
    pub fn connect(socket: &Path, timeout: Duration) -> io::Result<SerialConsole> {
        let end = Instant::now() + timeout;
        loop {
            match UnixStream::connect(socket) {
                Ok(stream) => {
                    return Ok(SerialConsole {
                        stream,
                        pending: Vec::new(),
                        next: 1,
                        transcript: Vec::new(),
                    });
                }
                Err(e) if Instant::now() >= end => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn fill(&mut self, end: Instant) -> io::Result<()> {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "guest console: timed out",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "guest console closed (QEMU exited?)",
            )),
            Ok(n) => {
                let data = &buf[..n];
                if self.transcript.len() < MAX_PENDING {
                    self.transcript.extend_from_slice(data);
                }
                self.pending.extend(data.iter().filter(|b| **b != b'\r'));
                if self.pending.len() > MAX_PENDING {
                    let cut = self.pending.len() - MAX_PENDING;
                    self.pending.drain(..cut);
                }
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "guest console: timed out",
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Takes complete lines until `stop(line)` says yes; returns the lines
    /// before it and the matching line.
    fn until(
        &mut self,
        end: Instant,
        stop: impl Fn(&str) -> bool,
    ) -> io::Result<(Vec<String>, String)> {
        let mut lines = Vec::new();
        loop {
            while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).to_string();
                if stop(&line) {
                    return Ok((lines, line));
                }
                lines.push(line);
            }
            self.fill(end)?;
        }
    }

    /// Waits for the guest's [`READY_MARKER`] line.
    pub fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let end = Instant::now() + timeout;
        self.until(end, |l| l.trim_end().ends_with(READY_MARKER))
            .map(|_| ())
    }

    /// Runs `cmd` (one shell line) in the guest and waits up to `timeout`.
    pub fn exec(&mut self, cmd: &str, timeout: Duration) -> io::Result<ExecOutput> {
        if cmd.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "one line per command",
            ));
        }
        let n = self.next;
        self.next += 1;
        let begin = format!("__MIP6B{n}");
        let endm = format!("__MIP6E{n} ");
        // A command ending in `&` is already terminated: `& ;` would be
        // a syntax error.
        let sep = if cmd.trim_end().ends_with('&') {
            ""
        } else {
            ";"
        };
        // The extra newline ends output that has none (else the end
        // marker would share its last line); it is removed below.
        let line = format!("echo {begin}; {{ {cmd}{sep} }} 2>&1; s=$?; echo; echo {endm}$s\n");
        self.stream.write_all(line.as_bytes())?;
        let end = Instant::now() + timeout;
        self.until(end, |l| l == begin)?;
        let (mut lines, last) = self.until(end, |l| l.starts_with(&endm))?;
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        let status = last
            .get(endm.len()..)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        Ok(ExecOutput {
            status,
            output: lines.join("\n"),
        })
    }
}
