//! Services a member runs on the anycast address X, and how it learns of
//! its clients.
//!
//! A service implements [`StreamService`]: it is handed whole TCP
//! connections, either accepted by the [`ServiceHost`]'s listener on
//! `[X]:port` ([`Origin::Accepted`]) or adopted from elsewhere
//! ([`ServiceHost::adopt`], [`Origin::Migrated`]: a socket restored with
//! `tcp-handoff` during a handoff, already established, possibly with
//! data in flight). Every new peer is reported as a [`PeerSeen`] so that
//! the contact node can route-optimize it.
//!
//! The next service (a sequence-checked stream that survives migration)
//! only needs its own `StreamService` implementation: the host, the
//! statistics and the peer reports are shared.
//!
//! A donor takes a client's connections back out of their services with
//! [`ServiceHost::surrender`]: each serving task is asked to stop at a
//! point where it holds no half-processed bytes, and returns the socket
//! (still open, not read any further) with the service's own per-client
//! state, ready for `tcp_handoff::freeze`.
//!
//! - [`echo`]: the built-in TCP echo test service.
//! - [`forward`]: splices connections to a local server.
//! - [`legacy`]: finds and takes the connections of an unmodified server
//!   process.
//! - [`scan`]: finds peers among the kernel's TCP sockets on X, for
//!   services this daemon does not host.

pub mod echo;
pub mod forward;
pub mod legacy;
pub mod scan;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span, warn};

/// A client address seen on X.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSeen {
    /// The client's address.
    pub peer: Ipv6Addr,
    /// Who saw it.
    pub source: &'static str,
}

/// How a connection came to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Accepted on the service's listener.
    Accepted,
    /// Restored from another member (established, mid-stream).
    Migrated,
}

/// One connection handed to a service.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    /// The client.
    pub peer: SocketAddr,
    /// How it came.
    pub origin: Origin,
    /// Counters to update.
    pub stats: Arc<ServiceStats>,
    /// Resolves when the connection is to be handed off: the service then
    /// stops where it holds no half-processed bytes and returns
    /// [`Served::Surrendered`].
    pub surrender: oneshot::Receiver<()>,
    /// The service's state of this connection exported by the donor
    /// (`Origin::Migrated` only; empty otherwise).
    pub app_state: Vec<u8>,
}

/// How serving a connection ended.
#[derive(Debug)]
pub enum Served {
    /// The connection ended (closed by the client or the service).
    Closed,
    /// Handed back for a handoff: the open socket and the service's
    /// per-connection state for the acceptor.
    Surrendered {
        /// The socket, not read any further.
        stream: TcpStream,
        /// Opaque to the host; given back as [`Connection::app_state`].
        app_state: Vec<u8>,
    },
}

/// A connection-oriented service on X.
pub trait StreamService: Send + Sync + 'static {
    /// Its name (logs, status).
    fn name(&self) -> &'static str;
    /// Serves one connection until it ends or is surrendered.
    fn serve(
        self: Arc<Self>,
        conn: Connection,
    ) -> Pin<Box<dyn Future<Output = io::Result<Served>> + Send>>;
}

/// Completes when the host asks for the connection back; never if the
/// request can no longer come. Pin it once and poll it in every `select!`
/// of the serving loop.
pub async fn surrender_requested(rx: oneshot::Receiver<()>) {
    if rx.await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A connection taken out of its service for a handoff.
#[derive(Debug)]
pub struct Surrendered {
    /// The service that served it.
    pub service: &'static str,
    /// The socket (registered with no reactor any more).
    pub stream: std::net::TcpStream,
    /// The service's state of the connection.
    pub app_state: Vec<u8>,
}

/// Surrender requests of the connections being served, by client.
type Live = Arc<Mutex<HashMap<SocketAddr, oneshot::Sender<()>>>>;

/// Counters of one service.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections adopted (migrated in).
    pub adopted: AtomicU64,
    /// Connections being served.
    pub active: AtomicU64,
    /// Connections that ended with an error.
    pub errors: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
}

/// A snapshot of [`ServiceStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceSnapshot {
    /// Service name.
    pub name: &'static str,
    /// Listening address.
    pub listen: String,
    /// See [`ServiceStats`].
    pub accepted: u64,
    /// See [`ServiceStats`].
    pub adopted: u64,
    /// See [`ServiceStats`].
    pub active: u64,
    /// See [`ServiceStats`].
    pub errors: u64,
    /// See [`ServiceStats`].
    pub bytes_in: u64,
    /// See [`ServiceStats`].
    pub bytes_out: u64,
}

/// A service with its listener.
pub struct ServiceHost {
    service: Arc<dyn StreamService>,
    listen: SocketAddr,
    stats: Arc<ServiceStats>,
    peers: mpsc::Sender<PeerSeen>,
    live: Live,
    /// Connections surrendered, by client.
    surrendered: mpsc::UnboundedSender<(SocketAddr, io::Result<Surrendered>)>,
    surrendered_rx:
        tokio::sync::Mutex<mpsc::UnboundedReceiver<(SocketAddr, io::Result<Surrendered>)>>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ServiceHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHost")
            .field("service", &self.service.name())
            .field("listen", &self.listen)
            .finish()
    }
}

/// What a serving task needs besides its socket.
#[derive(Clone)]
struct Spawner {
    service: Arc<dyn StreamService>,
    stats: Arc<ServiceStats>,
    live: Live,
    surrendered: mpsc::UnboundedSender<(SocketAddr, io::Result<Surrendered>)>,
}

impl Spawner {
    fn spawn(&self, stream: TcpStream, peer: SocketAddr, origin: Origin, app_state: Vec<u8>) {
        let Spawner {
            service,
            stats,
            live,
            surrendered,
        } = self.clone();
        let (tx, surrender) = oneshot::channel();
        if let Ok(mut l) = live.lock() {
            l.insert(peer, tx);
        }
        stats.active.fetch_add(1, Relaxed);
        let span = info_span!("connection", service = service.name(), %peer, ?origin);
        let name = service.name();
        tokio::spawn(
            async move {
                let conn = Connection {
                    stream,
                    peer,
                    origin,
                    stats: stats.clone(),
                    surrender,
                    app_state,
                };
                let end = service.serve(conn).await;
                if let Ok(mut l) = live.lock() {
                    l.remove(&peer);
                }
                stats.active.fetch_sub(1, Relaxed);
                match end {
                    Ok(Served::Closed) => {}
                    Ok(Served::Surrendered { stream, app_state }) => {
                        let r = stream.into_std().map(|stream| Surrendered {
                            service: name,
                            stream,
                            app_state,
                        });
                        let _ = surrendered.send((peer, r));
                    }
                    Err(e) => {
                        stats.errors.fetch_add(1, Relaxed);
                        debug!(error = %e, "connection ended with an error");
                    }
                }
            }
            .instrument(span),
        );
    }
}

impl ServiceHost {
    /// Listens on `listen` (X must be a local address) and serves every
    /// accepted connection with `service`, reporting peers to `peers`.
    pub async fn listen(
        listen: SocketAddr,
        service: Arc<dyn StreamService>,
        peers: mpsc::Sender<PeerSeen>,
    ) -> io::Result<ServiceHost> {
        let listener = TcpListener::bind(listen).await?;
        let stats = Arc::new(ServiceStats::default());
        let live: Live = Arc::default();
        let (surrendered, surrendered_rx) = mpsc::unbounded_channel();
        let spawner = Spawner {
            service: service.clone(),
            stats: stats.clone(),
            live: live.clone(),
            surrendered: surrendered.clone(),
        };
        let tx = peers.clone();
        let acceptor = tokio::spawn(async move {
            let name = spawner.service.name();
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        spawner.stats.accepted.fetch_add(1, Relaxed);
                        if let std::net::IpAddr::V6(p) = peer.ip() {
                            // Never block the acceptor on the control plane.
                            let _ = tx.try_send(PeerSeen {
                                peer: p,
                                source: name,
                            });
                        }
                        let _ = stream.set_nodelay(true);
                        spawner.spawn(stream, peer, Origin::Accepted, Vec::new());
                    }
                    Err(e) => {
                        warn!(error = %e, service = name, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(ServiceHost {
            service,
            listen,
            stats,
            peers,
            live,
            surrendered,
            surrendered_rx: tokio::sync::Mutex::new(surrendered_rx),
            acceptor: Some(acceptor),
        })
    }

    /// A host without a listener: it serves only connections given to it
    /// with [`adopt`](Self::adopt) (migrated connections of a server that
    /// listens on `listen` itself, see [`legacy`]).
    pub fn unbound(
        listen: SocketAddr,
        service: Arc<dyn StreamService>,
        peers: mpsc::Sender<PeerSeen>,
    ) -> ServiceHost {
        let (surrendered, surrendered_rx) = mpsc::unbounded_channel();
        ServiceHost {
            service,
            listen,
            stats: Arc::default(),
            peers,
            live: Arc::default(),
            surrendered,
            surrendered_rx: tokio::sync::Mutex::new(surrendered_rx),
            acceptor: None,
        }
    }

    fn spawner(&self) -> Spawner {
        Spawner {
            service: self.service.clone(),
            stats: self.stats.clone(),
            live: self.live.clone(),
            surrendered: self.surrendered.clone(),
        }
    }

    /// Serves an already established connection restored from another
    /// member (`tcp-handoff`) with the state the donor's service exported.
    /// The socket must be bound to X.
    pub fn adopt(&self, stream: std::net::TcpStream, app_state: Vec<u8>) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr()?;
        let stream = TcpStream::from_std(stream)?;
        self.stats.adopted.fetch_add(1, Relaxed);
        if let std::net::IpAddr::V6(p) = peer.ip() {
            let _ = self.peers.try_send(PeerSeen {
                peer: p,
                source: self.service.name(),
            });
        }
        self.spawner()
            .spawn(stream, peer, Origin::Migrated, app_state);
        Ok(())
    }

    /// Connections being served for `client`.
    pub fn connections_of(&self, client: Ipv6Addr) -> usize {
        self.live
            .lock()
            .map(|l| l.keys().filter(|p| p.ip() == client).count())
            .unwrap_or(0)
    }

    /// Takes every connection of `client` out of its serving task (see
    /// the module docs); waits at most `timeout` for the tasks. Sockets of
    /// tasks that ended meanwhile are not returned (those connections are
    /// closed).
    pub async fn surrender(
        &self,
        client: Ipv6Addr,
        timeout: std::time::Duration,
    ) -> Vec<io::Result<Surrendered>> {
        let asked: Vec<SocketAddr> = match self.live.lock() {
            Ok(mut l) => {
                let peers: Vec<SocketAddr> =
                    l.keys().filter(|p| p.ip() == client).copied().collect();
                for p in &peers {
                    if let Some(tx) = l.remove(p) {
                        let _ = tx.send(());
                    }
                }
                peers
            }
            Err(_) => Vec::new(),
        };
        let mut out = Vec::new();
        let mut rx = self.surrendered_rx.lock().await;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut waiting: std::collections::HashSet<SocketAddr> = asked.into_iter().collect();
        while !waiting.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((peer, r))) => {
                    if waiting.remove(&peer) {
                        out.push(r);
                    }
                }
                _ => break,
            }
        }
        out
    }

    /// Counters now.
    pub fn snapshot(&self) -> ServiceSnapshot {
        let s = &self.stats;
        ServiceSnapshot {
            name: self.service.name(),
            listen: self.listen.to_string(),
            accepted: s.accepted.load(Relaxed),
            adopted: s.adopted.load(Relaxed),
            active: s.active.load(Relaxed),
            errors: s.errors.load(Relaxed),
            bytes_in: s.bytes_in.load(Relaxed),
            bytes_out: s.bytes_out.load(Relaxed),
        }
    }
}

impl Drop for ServiceHost {
    fn drop(&mut self) {
        if let Some(a) = &self.acceptor {
            a.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn echo_round(c: &mut std::net::TcpStream, msg: &[u8]) -> Vec<u8> {
        c.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got).unwrap();
        got
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn surrendered_connection_stops_being_served_and_resumes_when_adopted() {
        let (tx, mut rx) = mpsc::channel(16);
        let std_l = std::net::TcpListener::bind("[::1]:0").unwrap();
        let addr = std_l.local_addr().unwrap();
        drop(std_l);
        let host = ServiceHost::listen(addr, Arc::new(echo::Echo), tx)
            .await
            .unwrap();
        let mut c = tokio::task::spawn_blocking(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(echo_round(&mut c, b"before"), b"before");
            c
        })
        .await
        .unwrap();
        assert_eq!(rx.recv().await.map(|p| p.peer), Some(Ipv6Addr::LOCALHOST));
        assert_eq!(host.connections_of(Ipv6Addr::LOCALHOST), 1);

        let mut got = host
            .surrender(Ipv6Addr::LOCALHOST, Duration::from_secs(5))
            .await;
        assert_eq!(got.len(), 1);
        let s = got.pop().unwrap().unwrap();
        assert_eq!(s.service, "echo");
        assert_eq!(host.connections_of(Ipv6Addr::LOCALHOST), 0);
        // Nobody serves the socket now: bytes wait in its receive queue.
        c = tokio::task::spawn_blocking(move || {
            c.write_all(b"during").unwrap();
            c.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut b = [0u8; 6];
            assert!(
                c.read(&mut b).is_err(),
                "a surrendered connection was still served"
            );
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .await
        .unwrap();
        // Adopted again (as an acceptor would): the queued bytes are echoed.
        host.adopt(s.stream, s.app_state).unwrap();
        tokio::task::spawn_blocking(move || {
            let mut b = [0u8; 6];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"during");
            assert_eq!(echo_round(&mut c, b"after"), b"after");
        })
        .await
        .unwrap();
        assert_eq!(host.snapshot().adopted, 1);
        // A client without connections surrenders nothing.
        assert!(
            host.surrender("2001:db8::1".parse().unwrap(), Duration::from_millis(10))
                .await
                .is_empty()
        );
    }
}
