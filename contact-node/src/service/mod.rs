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
//! - [`echo`]: the built-in TCP echo test service.
//! - [`scan`]: finds peers among the kernel's TCP sockets on X, for
//!   services this daemon does not host.

pub mod echo;
pub mod scan;

use std::future::Future;
use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
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
}

/// A connection-oriented service on X.
pub trait StreamService: Send + Sync + 'static {
    /// Its name (logs, status).
    fn name(&self) -> &'static str;
    /// Serves one connection to its end.
    fn serve(
        self: Arc<Self>,
        conn: Connection,
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;
}

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
    acceptor: JoinHandle<()>,
}

impl std::fmt::Debug for ServiceHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHost")
            .field("service", &self.service.name())
            .field("listen", &self.listen)
            .finish()
    }
}

fn spawn_conn(
    service: Arc<dyn StreamService>,
    stats: Arc<ServiceStats>,
    stream: TcpStream,
    peer: SocketAddr,
    origin: Origin,
) {
    stats.active.fetch_add(1, Relaxed);
    let span = info_span!("connection", service = service.name(), %peer, ?origin);
    tokio::spawn(
        async move {
            let conn = Connection {
                stream,
                peer,
                origin,
                stats: stats.clone(),
            };
            if let Err(e) = service.serve(conn).await {
                stats.errors.fetch_add(1, Relaxed);
                debug!(error = %e, "connection ended with an error");
            }
            stats.active.fetch_sub(1, Relaxed);
        }
        .instrument(span),
    );
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
        let (svc, st, tx) = (service.clone(), stats.clone(), peers.clone());
        let acceptor = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        st.accepted.fetch_add(1, Relaxed);
                        if let std::net::IpAddr::V6(p) = peer.ip() {
                            // Never block the acceptor on the control plane.
                            let _ = tx.try_send(PeerSeen {
                                peer: p,
                                source: svc.name(),
                            });
                        }
                        let _ = stream.set_nodelay(true);
                        spawn_conn(svc.clone(), st.clone(), stream, peer, Origin::Accepted);
                    }
                    Err(e) => {
                        warn!(error = %e, service = svc.name(), "accept failed");
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
            acceptor,
        })
    }

    /// Serves an already established connection restored from another
    /// member (`tcp-handoff`). The socket must be non-blocking-capable and
    /// bound to X.
    pub fn adopt(&self, stream: std::net::TcpStream) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        let peer = stream.peer_addr()?;
        let stream = TcpStream::from_std(stream)?;
        self.stats.adopted.fetch_add(1, Relaxed);
        if let std::net::IpAddr::V6(p) = peer.ip() {
            let _ = self.peers.try_send(PeerSeen {
                peer: p,
                source: self.service.name(),
            });
        }
        spawn_conn(
            self.service.clone(),
            self.stats.clone(),
            stream,
            peer,
            Origin::Migrated,
        );
        Ok(())
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
        self.acceptor.abort();
    }
}
