//! The services whose connections move in a handoff, behind one trait:
//! the donor takes a client's connections out of them ([`Movable::surrender`])
//! before `tcp_handoff::freeze`, the acceptor gives restored connections to
//! the service that listens on the same port of X ([`Movable::adopt`]).

use std::future::Future;
use std::io;
use std::net::{Ipv6Addr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mip6_anycast::testsvc::TestService;
use tcp_handoff::AppState as _;

use crate::service::ServiceHost;
use crate::service::legacy::LegacyServer;

/// A connection taken out of its service: the socket and the service's
/// state of it.
pub type Taken = (TcpStream, Vec<u8>);

/// A service on `[X]:port` whose connections can move.
pub trait Movable: Send + Sync {
    /// Its name.
    fn name(&self) -> &'static str;
    /// Its port on X.
    fn port(&self) -> u16;
    /// Connections of `client` being served.
    fn connections_of(&self, client: Ipv6Addr) -> usize;
    /// Takes every connection of `client` out of the service.
    fn surrender(
        &self,
        client: Ipv6Addr,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Vec<io::Result<Taken>>> + Send + '_>>;
    /// Serves a restored (or thawed) connection with the state the donor's
    /// service exported.
    fn adopt(&self, stream: TcpStream, app_state: &[u8]) -> io::Result<()>;
}

/// A [`ServiceHost`] (echo, forward) with its port.
pub struct Hosted {
    /// The host.
    pub host: Arc<ServiceHost>,
    /// Its port on X.
    pub port: u16,
    /// Its name.
    pub name: &'static str,
}

impl Movable for Hosted {
    fn name(&self) -> &'static str {
        self.name
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn connections_of(&self, client: Ipv6Addr) -> usize {
        self.host.connections_of(client)
    }

    fn surrender(
        &self,
        client: Ipv6Addr,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Vec<io::Result<Taken>>> + Send + '_>> {
        Box::pin(async move {
            self.host
                .surrender(client, timeout)
                .await
                .into_iter()
                .map(|r| r.map(|s| (s.stream, s.app_state)))
                .collect()
        })
    }

    fn adopt(&self, stream: TcpStream, app_state: &[u8]) -> io::Result<()> {
        self.host.adopt(stream, app_state.to_vec())
    }
}

/// The sequence-checked test stream ([`TestService`]).
pub struct Stream {
    /// The service.
    pub svc: TestService,
    /// Its port on X.
    pub port: u16,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Movable for Stream {
    fn name(&self) -> &'static str {
        "stream"
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn connections_of(&self, client: Ipv6Addr) -> usize {
        self.svc
            .connections()
            .iter()
            .filter(|c| c.remote.ip() == client)
            .count()
    }

    fn surrender(
        &self,
        client: Ipv6Addr,
        _timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Vec<io::Result<Taken>>> + Send + '_>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for id in self.svc.connections() {
                if id.remote.ip() != client {
                    continue;
                }
                let r = match self.svc.detach(id).await {
                    Ok(stream) => {
                        let mut svc = self.svc.clone();
                        svc.export(&id).map(|state| (stream, state)).map_err(other)
                    }
                    Err(e) => Err(other(e)),
                };
                out.push(r);
            }
            out
        })
    }

    fn adopt(&self, stream: TcpStream, app_state: &[u8]) -> io::Result<()> {
        self.svc.adopt(stream, app_state).map(|_| ()).map_err(other)
    }
}

/// An unmodified server process ([`LegacyServer`]): a donor takes the
/// client's sockets out of the process (`pidfd_getfd`); connections that
/// come here are spliced to the local instance of the server by `host`
/// (a [`Forward`](crate::service::forward::Forward) without a listener:
/// the server itself listens on the port).
pub struct Legacy {
    /// Where the server's connections are.
    pub server: LegacyServer,
    /// Serves migrated connections.
    pub migrated: Hosted,
}

/// The inode of a socket descriptor of this process.
fn socket_inode(s: &TcpStream) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd())).ok()?;
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

impl Movable for Legacy {
    fn name(&self) -> &'static str {
        "legacy"
    }

    fn port(&self) -> u16 {
        self.server.local.port()
    }

    fn connections_of(&self, client: Ipv6Addr) -> usize {
        let held = self.server.held(Some(client)).map_or(0, |h| h.len());
        self.migrated.connections_of(client) + held
    }

    fn surrender(
        &self,
        client: Ipv6Addr,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Vec<io::Result<Taken>>> + Send + '_>> {
        Box::pin(async move {
            // Connections migrated here earlier, then the process's own.
            let mut out = self.migrated.surrender(client, timeout).await;
            match self.server.held(Some(client)) {
                Ok(held) => out.extend(held.iter().map(|h| {
                    self.server
                        .steal(h)
                        .map(|fd| (TcpStream::from(fd), Vec::new()))
                })),
                Err(e) => out.push(Err(e)),
            }
            out
        })
    }

    fn adopt(&self, stream: TcpStream, _app_state: &[u8]) -> io::Result<()> {
        // A connection thawed after a rollback that the process still
        // holds stays the process's: drop the duplicate.
        if socket_inode(&stream).is_some_and(|ino| self.server.holds_inode(ino)) {
            return Ok(());
        }
        self.migrated.adopt(stream, &[])
    }
}
