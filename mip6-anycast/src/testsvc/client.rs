//! The client side: sends its header and pattern at a set rate, checks
//! every byte the server sends, and stamps every receive so the longest
//! gap (the stall a handoff causes) can be computed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::pattern::{DOWN, Header, Position, UP, fill_pattern};
use super::pump::{self, End, Endpoint};

/// Client settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// The connection's seed (both patterns derive from it).
    pub seed: u64,
    /// Client-to-server bytes per second (0: as fast as possible).
    pub up_rate: u64,
    /// Server-to-client bytes per second the server is asked for.
    pub down_rate: u64,
    /// Receive timestamps kept at most (later receives still update the
    /// longest gap, they are just not logged).
    pub max_rx_samples: usize,
}

impl Default for ClientConfig {
    /// 1 MB/s each way, 100 000 samples.
    fn default() -> Self {
        Self {
            seed: 1,
            up_rate: 1 << 20,
            down_rate: 1 << 20,
            max_rx_samples: 100_000,
        }
    }
}

/// How the client's stream ended (if it did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ClientEnd {
    /// Stopped by the caller.
    Stopped,
    /// The server closed (FIN).
    Eof,
    /// The connection was reset.
    Reset,
    /// Another socket error.
    Error(String),
}

/// What the client saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientReport {
    /// Pattern bytes sent (after the header).
    pub sent: u64,
    /// Server bytes received and checked.
    pub received: u64,
    /// Received bytes that differed from the pattern.
    pub mismatches: u64,
    /// Offset of the first wrong byte.
    pub first_mismatch: Option<u64>,
    /// How the stream ended; `None` while running.
    pub end: Option<ClientEnd>,
    /// Longest time between two receives (or from start to the first).
    pub longest_gap: Duration,
    /// When (since start) the longest gap ended.
    pub longest_gap_end: Option<Duration>,
    /// Receives not logged because the log was full.
    pub unlogged_receives: u64,
}

impl ClientReport {
    /// Every byte checked was right and the stream neither closed nor
    /// reset nor failed.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.mismatches == 0 && matches!(self.end, None | Some(ClientEnd::Stopped))
    }
}

struct Shared {
    report: ClientReport,
    /// (time since start, total bytes received after this read).
    log: Vec<(Duration, u64)>,
    last_rx: Option<Instant>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct ClientEndpoint {
    cfg: ClientConfig,
    start: Instant,
    rx: Position,
    shared: Arc<Mutex<Shared>>,
}

impl Endpoint for ClientEndpoint {
    fn fill(&mut self, buf: &mut [u8]) -> usize {
        fill_pattern(self.cfg.seed, UP, lock(&self.shared).report.sent, buf);
        buf.len()
    }
    fn sent(&mut self, n: usize) {
        lock(&self.shared).report.sent += n as u64;
    }
    fn tx_bytes(&self) -> u64 {
        lock(&self.shared).report.sent
    }
    fn rate(&self) -> Option<u64> {
        Some(self.cfg.up_rate)
    }
    fn received(&mut self, now: Instant, data: &[u8]) -> bool {
        self.rx.verify(self.cfg.seed, DOWN, data);
        let mut sh = lock(&self.shared);
        let since = now.saturating_duration_since(self.start);
        let gap = now.saturating_duration_since(sh.last_rx.unwrap_or(self.start));
        sh.last_rx = Some(now);
        let r = &mut sh.report;
        r.received = self.rx.bytes;
        r.mismatches = self.rx.mismatches;
        r.first_mismatch = self.rx.first_mismatch;
        if gap > r.longest_gap {
            r.longest_gap = gap;
            r.longest_gap_end = Some(since);
        }
        if sh.log.len() < self.cfg.max_rx_samples {
            let total = self.rx.bytes;
            sh.log.push((since, total));
        } else {
            sh.report.unlogged_receives += 1;
        }
        true
    }
}

/// A running test client.
#[derive(Debug)]
pub struct TestClient {
    start: Instant,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<TcpStream>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.report.fmt(f)
    }
}

impl TestClient {
    /// Connects to `addr` and starts (on the current runtime).
    pub async fn connect(addr: SocketAddr, cfg: ClientConfig) -> std::io::Result<Self> {
        Self::start(TcpStream::connect(addr).await?, cfg).await
    }

    /// Starts on a connected stream: sends the header, then pumps.
    pub async fn start(mut stream: TcpStream, cfg: ClientConfig) -> std::io::Result<Self> {
        stream.set_nodelay(true)?;
        let header = Header {
            seed: cfg.seed,
            down_rate: cfg.down_rate,
        };
        stream.write_all(&header.encode()).await?;
        let start = Instant::now();
        let shared = Arc::new(Mutex::new(Shared {
            report: ClientReport::default(),
            log: Vec::with_capacity(cfg.max_rx_samples.min(1 << 16)),
            last_rx: None,
        }));
        let mut ep = ClientEndpoint {
            cfg,
            start,
            rx: Position::default(),
            shared: shared.clone(),
        };
        let (stop, mut stop_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let end = match pump::run(&stream, &mut ep, &mut stop_rx).await {
                End::Stopped => ClientEnd::Stopped,
                End::Eof => ClientEnd::Eof,
                End::Reset => ClientEnd::Reset,
                End::Aborted => ClientEnd::Error("aborted".into()),
                End::Failed(e) => ClientEnd::Error(e.to_string()),
            };
            lock(&ep.shared).report.end = Some(end);
            stream
        });
        Ok(Self {
            start,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The report so far.
    #[must_use]
    pub fn report(&self) -> ClientReport {
        lock(&self.shared).report.clone()
    }

    /// The receive log: (time since start, total bytes received).
    #[must_use]
    pub fn rx_log(&self) -> Vec<(Duration, u64)> {
        lock(&self.shared).log.clone()
    }

    /// When the client started.
    #[must_use]
    pub fn started(&self) -> Instant {
        self.start
    }

    /// The longest gap between receives that overlaps `[from, to]` (times
    /// since start, from the log): the stall around a handoff. A gap still
    /// open counts up to now (at most `to`).
    #[must_use]
    pub fn longest_gap_within(&self, from: Duration, to: Duration) -> Duration {
        let log = self.rx_log();
        let mut prev = Duration::ZERO;
        let mut best = Duration::ZERO;
        for &(t, _) in &log {
            if t >= from && prev <= to {
                best = best.max(t.min(to).saturating_sub(prev.max(from)));
            }
            prev = t;
        }
        // A gap still open now counts up to now (or `to`).
        let end = to.min(self.start.elapsed());
        if prev <= end {
            best = best.max(end.saturating_sub(prev.max(from)));
        }
        best
    }

    /// Stops the client; returns the final report, the receive log and
    /// the stream (still open: dropping it closes the connection).
    pub async fn stop(mut self) -> Stopped {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let stream = (&mut self.task).await.ok();
        Stopped {
            report: self.report(),
            rx_log: self.rx_log(),
            stream,
        }
    }
}

/// What [`TestClient::stop`] returns.
#[derive(Debug)]
pub struct Stopped {
    /// The final report.
    pub report: ClientReport,
    /// (time since start, total bytes received) per receive.
    pub rx_log: Vec<(Duration, u64)>,
    /// The stream, if the pump ended without a panic.
    pub stream: Option<TcpStream>,
}
