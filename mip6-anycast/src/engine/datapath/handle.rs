//! What a control plane holds: the [`EngineHandle`] (table updates, sends,
//! statistics), the [`Punt`]s it receives, and the errors.

use std::io;
use std::net::Ipv6Addr;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::classify::TunnelOuter;
use super::member::ClientStatus;
use super::proxy::ProxyUsage;
use super::stats::EngineStats;
use super::tables::{BindingKey, BindingUsage, TableError, TableUpdate};
use crate::engine::rawsock::RawSockError;
use crate::engine::steer::SteerError;
use crate::engine::tun::TunError;
use crate::wire::{self, MhPacketRepr, ParsedMhPacket};

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine task has ended.
    #[error("the engine has stopped")]
    Stopped,
    /// A table update was refused.
    #[error(transparent)]
    Table(#[from] TableError),
    /// Programming the steering routes failed.
    #[error(transparent)]
    Steer(#[from] SteerError),
    /// Registering the TUN failed.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// The TUN failed.
    #[error("TUN {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A packet given to [`EngineHandle::send`] is not a well-formed IPv6
    /// packet, or cannot be encapsulated.
    #[error("bad packet to send: {0}")]
    BadPacket(#[from] wire::Error),
    /// The raw socket refused a send.
    #[error(transparent)]
    RawSock(#[from] RawSockError),
}

/// How [`EngineHandle::send`] sends a control-plane packet. Mobility Header
/// messages bypass the binding tables (RFC 6275 6.1): the packet leaves as
/// built, through the marked raw socket, so the steering never catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendVia {
    /// Unchanged (a BU from a care-of address with a HAO, a BA with an
    /// RH2, a HoT, a CoTI, ...).
    Direct,
    /// Encapsulated from our care-of address to the home agent (RFC 6275
    /// 11.3.1, e.g. a HoTI, 5.2.5).
    ReverseTunnel {
        /// Outer source.
        care_of_address: Ipv6Addr,
        /// Outer destination.
        home_agent: Ipv6Addr,
    },
    /// Encapsulated from the home agent to a registered care-of address
    /// (RFC 6275 10.4.1).
    HomeTunnel {
        /// Outer source.
        home_agent: Ipv6Addr,
        /// Outer destination.
        care_of_address: Ipv6Addr,
    },
}

impl SendVia {
    /// The tunnel end points (`None` for [`SendVia::Direct`]).
    pub fn tunnel(&self) -> Option<(Ipv6Addr, Ipv6Addr)> {
        match *self {
            SendVia::Direct => None,
            SendVia::ReverseTunnel {
                care_of_address,
                home_agent,
            } => Some((care_of_address, home_agent)),
            SendVia::HomeTunnel {
                home_agent,
                care_of_address,
            } => Some((home_agent, care_of_address)),
        }
    }
}

/// A Mobility Header message for this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobilityPunt {
    /// The whole IPv6 packet as received (decapsulated if it came through
    /// an accepted tunnel; RH2 and HAO kept).
    pub packet: Vec<u8>,
    /// Its MH type.
    pub mh_type: u8,
    /// The tunnel it arrived in, if any (e.g. a HoT relayed by the home
    /// agent: outer source = home agent).
    pub tunnel: Option<TunnelOuter>,
    /// When the engine read it.
    pub received: Instant,
}

impl MobilityPunt {
    /// Parses the packet, checksum verified (see [`MhPacketRepr::parse_with_bytes`]).
    pub fn parse(&self) -> wire::Result<ParsedMhPacket<'_>> {
        MhPacketRepr::parse_with_bytes(&self.packet)
    }
}

/// A packet for a PIAS proxy's control plane: a flow's first packet to an
/// anycast prefix, a join, an unknown reply to a NAT address, or the inner
/// packet of a proxy peer's tunnel. Plain segments with finished
/// checksums (never a GSO packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPunt {
    /// The IPv6 packet (decapsulated if it came from a peer).
    pub packet: Vec<u8>,
    /// The peer tunnel it arrived in, if any.
    pub tunnel: Option<TunnelOuter>,
    /// When the engine read it.
    pub received: Instant,
}

/// What the engine hands to the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Punt {
    /// A Mobility Header message addressed to one of our addresses.
    Mobility(MobilityPunt),
    /// A packet for the PIAS proxy tables that no entry took (see
    /// [`super::proxy`]).
    Proxy(ProxyPunt),
    /// A packet with a Home Address option arrived without a binding for
    /// (`dst`, `hoa`) with care-of address `src`; it was dropped. The
    /// control plane may send a Binding Error (RFC 6275 9.3.3, status 1)
    /// to `src`, rate-limited.
    HaoWithoutBinding {
        /// Source of the dropped packet (the care-of address used).
        src: Ipv6Addr,
        /// Its destination (ours).
        dst: Ipv6Addr,
        /// The home address in its option.
        hoa: Ipv6Addr,
    },
}

pub(crate) type Reply<T> = oneshot::Sender<T>;

pub(crate) enum Command {
    Update(Vec<TableUpdate>, Reply<Result<(), EngineError>>),
    Send(Vec<u8>, SendVia, Reply<Result<(), EngineError>>),
    Stats(Reply<EngineStats>),
    Usage(BindingKey, Reply<Option<BindingUsage>>),
    Client(Ipv6Addr, Ipv6Addr, Reply<Option<ClientStatus>>),
    ProxyUsage(Reply<Vec<ProxyUsage>>),
    Shutdown(Reply<()>),
}

/// The control plane's handle on a running engine. Cheap to clone; the
/// engine stops when every handle is dropped (or on
/// [`EngineHandle::shutdown`]).
#[derive(Debug, Clone)]
pub struct EngineHandle {
    pub(crate) cmds: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Update(u, _) => f.debug_tuple("Update").field(u).finish(),
            Command::Send(p, v, _) => f.debug_tuple("Send").field(&p.len()).field(v).finish(),
            Command::Stats(_) => f.write_str("Stats"),
            Command::Usage(k, _) => f.debug_tuple("Usage").field(k).finish(),
            Command::Client(h, c, _) => f.debug_tuple("Client").field(h).field(c).finish(),
            Command::ProxyUsage(_) => f.write_str("ProxyUsage"),
            Command::Shutdown(_) => f.write_str("Shutdown"),
        }
    }
}

impl EngineHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(make(tx))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Applies one table update and brings the steering routes in line
    /// (when the engine owns the steering). Returns once both are done.
    pub async fn update(&self, update: TableUpdate) -> Result<(), EngineError> {
        self.update_all(vec![update]).await
    }

    /// Applies updates in order, then syncs the steering once. Stops at
    /// the first refused update (those before it stay applied).
    pub async fn update_all(&self, updates: Vec<TableUpdate>) -> Result<(), EngineError> {
        self.call(|r| Command::Update(updates, r)).await?
    }

    /// Sends a complete IPv6 packet built by the control plane, bypassing
    /// the tables (RFC 6275 6.1), directly or through a tunnel.
    pub async fn send(&self, packet: Vec<u8>, via: SendVia) -> Result<(), EngineError> {
        self.call(|r| Command::Send(packet, via, r)).await?
    }

    /// A snapshot of counters, table sizes and binding usage.
    pub async fn stats(&self) -> Result<EngineStats, EngineError> {
        self.call(Command::Stats).await
    }

    /// Usage of one binding or tunnel (`None` if it does not exist): a
    /// correspondent asks this before a Binding Refresh Request (RFC 6275
    /// 9.5.5).
    pub async fn usage(&self, key: BindingKey) -> Result<Option<BindingUsage>, EngineError> {
        self.call(|r| Command::Usage(key, r)).await
    }

    /// The member-forwarding entry of (`hoa`, `client`), if any (handoff:
    /// mode, queue depth, forwarding counters; see [`super::member`]).
    pub async fn client_status(
        &self,
        hoa: Ipv6Addr,
        client: Ipv6Addr,
    ) -> Result<Option<ClientStatus>, EngineError> {
        self.call(|r| Command::Client(hoa, client, r)).await
    }

    /// The PIAS proxy entries (ingress flows, NAT bindings) used since the
    /// last call, with their counters: the control plane's view of live
    /// flows (idle expiry, passive target health).
    pub async fn proxy_usage(&self) -> Result<Vec<ProxyUsage>, EngineError> {
        self.call(Command::ProxyUsage).await
    }

    /// Stops the engine (the task then returns its [`super::EngineExit`]).
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        self.call(Command::Shutdown).await
    }
}
