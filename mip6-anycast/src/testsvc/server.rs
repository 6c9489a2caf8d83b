//! The server side: serves accepted or adopted sockets, detaches them for
//! a handoff, and implements [`tcp_handoff::AppState`] so its per-connection
//! state moves with the socket.

use std::collections::HashMap;
use std::net::TcpStream as StdTcpStream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::Serialize;
use tcp_handoff::{AppState, ConnectionId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::pattern::{DOWN, ServerConn, fill_pattern};
use super::pump::{self, End, Endpoint};
use crate::group::CodecError;

/// Errors of the test service.
#[derive(Debug, thiserror::Error)]
pub enum TestSvcError {
    /// No such connection (running, or detached for export).
    #[error("no connection {0}")]
    UnknownConnection(ConnectionId),
    /// An imported state does not decode.
    #[error("bad connection state: {0}")]
    State(#[from] CodecError),
    /// Socket error.
    #[error("test service I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The connection's task ended before it could be detached.
    #[error("connection {0} ended before detach")]
    Ended(ConnectionId),
}

/// Counters of the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceStats {
    /// Connections served from an accept.
    pub accepted: u64,
    /// Connections adopted (restored sockets, with imported state).
    pub adopted: u64,
    /// Connections detached for a handoff.
    pub detached: u64,
    /// Connections the client closed.
    pub eof: u64,
    /// Connections reset.
    pub resets: u64,
    /// Connections ended by other socket errors.
    pub errors: u64,
    /// Client bytes that differed from the pattern (any connection).
    pub mismatches: u64,
    /// Connections closed by the service on a mismatch or a bad header.
    pub aborted: u64,
}

struct Running {
    state: Arc<Mutex<ServerConn>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Option<TcpStream>>,
}

struct Inner {
    rt: tokio::runtime::Handle,
    running: Mutex<HashMap<ConnectionId, Running>>,
    detached: Mutex<HashMap<ConnectionId, ServerConn>>,
    stats: Mutex<ServiceStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sequence-checked test service of one member. Cheap to clone (all
/// clones are the same service).
#[derive(Clone)]
pub struct TestService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestService")
            .field("stats", &self.stats())
            .finish()
    }
}

struct ServerEndpoint {
    state: Arc<Mutex<ServerConn>>,
    inner: Arc<Inner>,
}

impl Endpoint for ServerEndpoint {
    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let s = lock(&self.state);
        match s.header() {
            Some(Ok(h)) => {
                fill_pattern(h.seed, DOWN, s.tx, buf);
                buf.len()
            }
            _ => 0,
        }
    }
    fn sent(&mut self, n: usize) {
        lock(&self.state).tx += n as u64;
    }
    fn tx_bytes(&self) -> u64 {
        lock(&self.state).tx
    }
    fn rate(&self) -> Option<u64> {
        // Nothing is sent before the client's header says at what rate.
        lock(&self.state)
            .header()
            .and_then(Result::ok)
            .map(|h| h.down_rate)
    }
    fn received(&mut self, _now: Instant, data: &[u8]) -> bool {
        let r = lock(&self.state).on_data(data);
        match r {
            Ok(0) => true,
            Ok(bad) => {
                lock(&self.inner.stats).mismatches += bad;
                false
            }
            Err(_) => false,
        }
    }
}

impl TestService {
    /// A service whose connections run on `rt`.
    #[must_use]
    pub fn new(rt: tokio::runtime::Handle) -> Self {
        Self {
            inner: Arc::new(Inner {
                rt,
                running: Mutex::new(HashMap::new()),
                detached: Mutex::new(HashMap::new()),
                stats: Mutex::new(ServiceStats::default()),
            }),
        }
    }

    /// Accepts and serves every connection of `listener` (until the task
    /// is aborted or the listener fails).
    pub fn listen(&self, listener: TcpListener) -> JoinHandle<()> {
        let svc = self.clone();
        self.inner.rt.spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                if let Err(e) = svc.serve(s) {
                    tracing::warn!(error = %e, "test service: cannot serve");
                }
            }
        })
    }

    /// Serves an accepted connection from its start.
    pub fn serve(&self, stream: TcpStream) -> Result<ConnectionId, TestSvcError> {
        lock(&self.inner.stats).accepted += 1;
        self.run(stream, ServerConn::default())
    }

    /// Adopts a socket restored elsewhere (or passed in over `SCM_RIGHTS`)
    /// with the state its donor exported.
    pub fn adopt(&self, stream: StdTcpStream, state: &[u8]) -> Result<ConnectionId, TestSvcError> {
        let state = ServerConn::decode(state)?;
        stream.set_nonblocking(true)?;
        let stream = {
            let _rt = self.inner.rt.enter();
            TcpStream::from_std(stream)?
        };
        lock(&self.inner.stats).adopted += 1;
        self.run(stream, state)
    }

    fn run(&self, stream: TcpStream, state: ServerConn) -> Result<ConnectionId, TestSvcError> {
        stream.set_nodelay(true)?;
        let id = ConnectionId {
            local: stream.local_addr()?,
            remote: stream.peer_addr()?,
        };
        let state = Arc::new(Mutex::new(state));
        let (stop, mut stop_rx) = oneshot::channel();
        let mut ep = ServerEndpoint {
            state: state.clone(),
            inner: self.inner.clone(),
        };
        let inner = self.inner.clone();
        // The lock is held while spawning so the task's own cleanup never
        // runs before the registration.
        let mut running = lock(&self.inner.running);
        let task = self.inner.rt.spawn(async move {
            let end = pump::run(&stream, &mut ep, &mut stop_rx).await;
            if let End::Stopped = end {
                return Some(stream);
            }
            let mut st = lock(&inner.stats);
            match end {
                End::Eof => st.eof += 1,
                End::Reset => st.resets += 1,
                End::Aborted => st.aborted += 1,
                End::Failed(_) | End::Stopped => st.errors += 1,
            }
            drop(st);
            lock(&inner.running).remove(&id);
            None
        });
        running.insert(id, Running { state, stop, task });
        Ok(id)
    }

    /// Stops serving `id` and hands back its socket (for `freeze`); its
    /// state is kept for [`AppState::export`].
    pub async fn detach(&self, id: ConnectionId) -> Result<StdTcpStream, TestSvcError> {
        let r = lock(&self.inner.running)
            .remove(&id)
            .ok_or(TestSvcError::UnknownConnection(id))?;
        let _ = r.stop.send(());
        let stream = r.task.await.ok().flatten().ok_or(TestSvcError::Ended(id))?;
        let state = lock(&r.state).clone();
        lock(&self.inner.detached).insert(id, state);
        lock(&self.inner.stats).detached += 1;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    }

    /// The connections being served.
    #[must_use]
    pub fn connections(&self) -> Vec<ConnectionId> {
        lock(&self.inner.running).keys().copied().collect()
    }

    /// A snapshot of one served connection's state.
    #[must_use]
    pub fn connection(&self, id: &ConnectionId) -> Option<ServerConn> {
        lock(&self.inner.running)
            .get(id)
            .map(|r| lock(&r.state).clone())
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> ServiceStats {
        lock(&self.inner.stats).clone()
    }
}

impl AppState for TestService {
    type Error = TestSvcError;

    fn export(&mut self, conn: &ConnectionId) -> Result<Vec<u8>, TestSvcError> {
        lock(&self.inner.detached)
            .remove(conn)
            .map(|s| s.encode())
            .ok_or(TestSvcError::UnknownConnection(*conn))
    }

    fn import(
        &mut self,
        _conn: &ConnectionId,
        state: &[u8],
        stream: StdTcpStream,
    ) -> Result<(), TestSvcError> {
        self.adopt(stream, state).map(|_| ())
    }
}
