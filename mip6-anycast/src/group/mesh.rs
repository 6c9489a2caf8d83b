//! The node channel to a whole group: one listener, one long-lived
//! connection per peer, reconnect, per-peer counters (tokio).
//!
//! Exactly one connection exists per pair of members: the member whose name
//! sorts first dials (and redials with backoff after any failure), the
//! other accepts. A newer accepted connection from the same peer replaces
//! the older one (the peer restarted). Accepting from a peer that should
//! be dialed instead is refused ([`ChannelError::UnexpectedPeer`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::channel::{Channel, ChannelConfig, ChannelReader, ChannelWriter};
use super::error::ChannelError;
use super::member::{GroupMember, MemberInfo};

/// Counters of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerStats {
    /// A connection is up now.
    pub connected: bool,
    /// Connections established.
    pub connects: u64,
    /// Dials or handshakes (as dialer) that failed.
    pub connect_failures: u64,
    /// Established connections that ended.
    pub disconnects: u64,
    /// Messages written to the socket.
    pub messages_sent: u64,
    /// Their octets (application bytes).
    pub bytes_sent: u64,
    /// Messages received and delivered.
    pub messages_received: u64,
    /// Their octets.
    pub bytes_received: u64,
    /// Why connections failed or ended, by [`ChannelError::kind`]
    /// (`decrypt` counts tampered/replayed frames, `frame_too_long`
    /// oversized lengths, ...). Each closed the connection.
    pub errors: BTreeMap<&'static str, u64>,
}

/// What the group channel reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// A connection to this peer came up (authenticated).
    Up(MemberInfo),
    /// The connection to this peer ended.
    Down {
        /// The peer's name.
        peer: String,
        /// Why ([`ChannelError::kind`]).
        reason: &'static str,
    },
    /// A message from a peer.
    Message {
        /// The sender's name.
        from: String,
        /// The message.
        msg: Vec<u8>,
    },
}

/// Why a message could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No configured peer has that name.
    #[error("no peer named {0:?}")]
    UnknownPeer(String),
    /// The peer is not connected right now.
    #[error("peer {0:?} is not connected")]
    NotConnected(String),
    /// Over the channel's message limit.
    #[error("message of {len} octets over the limit {limit}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Group-channel settings.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Identity, members, key, limits, timeouts.
    pub channel: ChannelConfig,
    /// First redial delay (doubles up to `reconnect_max`).
    pub reconnect_min: Duration,
    /// Longest redial delay.
    pub reconnect_max: Duration,
    /// Messages queued per peer before `send` waits.
    pub send_queue: usize,
    /// Events queued before readers wait (back-pressure on the peers).
    pub event_queue: usize,
    /// Handshakes of accepted connections running at once; more are
    /// closed at once (counted as `handshake_limit` in [`Group::rejected`]).
    pub max_pending_handshakes: usize,
}

impl GroupConfig {
    /// Defaults: redial after 20 ms doubling to 2 s, queues of 256 and
    /// 1024, 64 handshakes at once.
    #[must_use]
    pub fn new(channel: ChannelConfig) -> Self {
        Self {
            channel,
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_secs(2),
            send_queue: 256,
            event_queue: 1024,
            max_pending_handshakes: 64,
        }
    }
}

/// The live connection of a slot.
struct Conn {
    generation: u64,
    tx: mpsc::Sender<Vec<u8>>,
    /// Dropping it ends the connection's task.
    _kill: oneshot::Sender<()>,
}

struct Slot {
    member: GroupMember,
    conn: Option<Conn>,
    stats: PeerStats,
}

struct Inner {
    cfg: GroupConfig,
    slots: Mutex<HashMap<String, Slot>>,
    /// Failures of accepted connections before the peer was known.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    events: mpsc::Sender<GroupEvent>,
    next_generation: std::sync::atomic::AtomicU64,
}

impl Inner {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_stats(&self, peer: &str, f: impl FnOnce(&mut PeerStats)) {
        if let Some(s) = self.slots().get_mut(peer) {
            f(&mut s.stats);
        }
    }

    fn reject(&self, e: &ChannelError) {
        tracing::debug!(error = %e, "node channel: rejected connection");
        self.count_rejected(e.kind());
    }

    fn count_rejected(&self, kind: &'static str) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(kind)
            .or_default() += 1;
    }
}

/// A member's channel to its group. Dropping it closes every connection
/// and stops every task.
#[derive(Debug)]
pub struct Group {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    _shutdown: watch::Sender<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("me", &self.cfg.channel.me.name)
            .finish()
    }
}

/// Queues `msg` for `peer` (waits while its queue is full).
async fn queue(inner: &Inner, peer: &str, msg: Vec<u8>) -> Result<(), SendError> {
    let limit = inner.cfg.channel.limits.max_message;
    if msg.len() > limit {
        return Err(SendError::TooLong {
            len: msg.len(),
            limit,
        });
    }
    let tx = {
        let slots = inner.slots();
        let slot = slots
            .get(peer)
            .ok_or_else(|| SendError::UnknownPeer(peer.to_string()))?;
        slot.conn
            .as_ref()
            .map(|c| c.tx.clone())
            .ok_or_else(|| SendError::NotConnected(peer.to_string()))?
    };
    tx.send(msg)
        .await
        .map_err(|_| SendError::NotConnected(peer.to_string()))
}

/// A cloneable sending handle of a [`Group`] ([`Group::sender`]); it
/// stops working when the group is dropped.
#[derive(Debug, Clone)]
pub struct GroupSender {
    inner: Arc<Inner>,
}

impl GroupSender {
    /// Queues `msg` for `peer` (waits while its queue is full).
    pub async fn send(&self, peer: &str, msg: Vec<u8>) -> Result<(), SendError> {
        queue(&self.inner, peer, msg).await
    }
}

impl Group {
    /// Binds this member's configured channel address and starts.
    pub async fn start(
        cfg: GroupConfig,
    ) -> Result<(Self, mpsc::Receiver<GroupEvent>), ChannelError> {
        let me = &cfg.channel.me.name;
        let addr = cfg
            .channel
            .members
            .by_name(me)
            .map(|m| m.channel)
            .ok_or_else(|| ChannelError::UnknownMember(me.clone()))?;
        let listener = TcpListener::bind(addr).await?;
        Self::start_with_listener(cfg, listener)
    }

    /// Starts on an already bound listener (must run inside a tokio
    /// runtime). Fails if this node is not in the member list.
    pub fn start_with_listener(
        cfg: GroupConfig,
        listener: TcpListener,
    ) -> Result<(Self, mpsc::Receiver<GroupEvent>), ChannelError> {
        let me = cfg.channel.me.clone();
        if !cfg.channel.members.knows(&me) {
            return Err(ChannelError::UnknownMember(me.name));
        }
        let local_addr = listener.local_addr()?;
        let (events, rx) = mpsc::channel(cfg.event_queue.max(1));
        let slots = cfg
            .channel
            .members
            .all()
            .iter()
            .filter(|m| m.info.name != me.name)
            .map(|m| {
                let slot = Slot {
                    member: m.clone(),
                    conn: None,
                    stats: PeerStats::default(),
                };
                (m.info.name.clone(), slot)
            })
            .collect::<HashMap<_, _>>();
        let dial: Vec<GroupMember> = slots
            .values()
            .filter(|s| me.name < s.member.info.name)
            .map(|s| s.member.clone())
            .collect();
        let inner = Arc::new(Inner {
            cfg,
            slots: Mutex::new(slots),
            rejected: Mutex::new(BTreeMap::new()),
            events,
            next_generation: 0.into(),
        });
        let (shutdown, stop) = watch::channel(());
        tokio::spawn(accept_loop(inner.clone(), listener, stop.clone()));
        for peer in dial {
            tokio::spawn(dial_loop(inner.clone(), peer, stop.clone()));
        }
        Ok((
            Self {
                inner,
                local_addr,
                _shutdown: shutdown,
            },
            rx,
        ))
    }

    /// The listening address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues `msg` for `peer` (waits while its queue is full).
    pub async fn send(&self, peer: &str, msg: Vec<u8>) -> Result<(), SendError> {
        queue(&self.inner, peer, msg).await
    }

    /// A cloneable handle that queues messages, for tasks beside the
    /// owner (e.g. a heartbeat that must not wait for the owner's loop).
    #[must_use]
    pub fn sender(&self) -> GroupSender {
        GroupSender {
            inner: self.inner.clone(),
        }
    }

    /// True while a connection to `peer` is up.
    #[must_use]
    pub fn is_connected(&self, peer: &str) -> bool {
        self.inner
            .slots()
            .get(peer)
            .is_some_and(|s| s.conn.is_some())
    }

    /// The names of the peers connected now.
    #[must_use]
    pub fn connected_peers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .slots()
            .iter()
            .filter(|(_, s)| s.conn.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Counters of `peer`.
    #[must_use]
    pub fn stats(&self, peer: &str) -> Option<PeerStats> {
        self.inner.slots().get(peer).map(|s| {
            let mut st = s.stats.clone();
            st.connected = s.conn.is_some();
            st
        })
    }

    /// Failures of accepted connections whose peer was never identified
    /// (wrong group secret, forged hello, timeouts), by error kind.
    #[must_use]
    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        self.inner
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, mut stop: watch::Receiver<()>) {
    let pending = Arc::new(Semaphore::new(inner.cfg.max_pending_handshakes.max(1)));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "node channel: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            inner.count_rejected("handshake_limit");
            continue;
        };
        let (inner, mut stop) = (inner.clone(), stop.clone());
        tokio::spawn(async move {
            let ch = tokio::select! {
                _ = stop.changed() => return,
                c = Channel::accept(stream, &inner.cfg.channel) => c,
            };
            drop(permit);
            match ch {
                Ok(ch) if inner.cfg.channel.me.name < ch.peer().name => {
                    inner.reject(&ChannelError::UnexpectedPeer {
                        expected: "a member that sorts before this node".into(),
                        got: ch.peer().name.clone(),
                    });
                }
                Ok(ch) => run_connection(&inner, ch, stop).await,
                Err(e) => inner.reject(&e),
            }
        });
    }
}

async fn dial_loop(inner: Arc<Inner>, peer: GroupMember, mut stop: watch::Receiver<()>) {
    let cfg = &inner.cfg;
    let mut delay = cfg.reconnect_min;
    loop {
        let ch = tokio::select! {
            _ = stop.changed() => return,
            c = Channel::connect(&cfg.channel, &peer) => c,
        };
        match ch {
            Ok(ch) => {
                delay = cfg.reconnect_min;
                run_connection(&inner, ch, stop.clone()).await;
            }
            Err(e) => {
                tracing::debug!(peer = %peer.info.name, error = %e, "node channel: dial failed");
                inner.with_stats(&peer.info.name, |s| {
                    s.connect_failures += 1;
                    *s.errors.entry(e.kind()).or_default() += 1;
                });
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(cfg.reconnect_max);
    }
}

/// Registers `ch` in its peer's slot (replacing an older connection) and
/// runs it until it fails, is replaced, or the group stops.
async fn run_connection(inner: &Arc<Inner>, ch: Channel, mut stop: watch::Receiver<()>) {
    let (peer, reader, writer) = ch.split();
    let (tx, rx) = mpsc::channel(inner.cfg.send_queue.max(1));
    let (kill_tx, kill_rx) = oneshot::channel();
    let generation = inner
        .next_generation
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    {
        let mut slots = inner.slots();
        let Some(slot) = slots.get_mut(&peer.name) else {
            return;
        };
        // Dropping the old `Conn` ends the old connection.
        slot.conn = Some(Conn {
            generation,
            tx,
            _kill: kill_tx,
        });
        slot.stats.connects += 1;
    }
    tracing::info!(peer = %peer.name, "node channel up");
    let _ = inner.events.send(GroupEvent::Up(peer.clone())).await;
    let name = peer.name.as_str();
    let reason = tokio::select! {
        _ = stop.changed() => None,
        _ = kill_rx => Some("replaced"),
        r = read_loop(inner, name, reader) => Some(r.kind()),
        r = write_loop(inner, name, writer, rx) => Some(r.kind()),
    };
    let Some(reason) = reason else { return };
    let current = {
        let mut slots = inner.slots();
        let Some(slot) = slots.get_mut(name) else {
            return;
        };
        let current = slot
            .conn
            .as_ref()
            .is_some_and(|c| c.generation == generation);
        if current {
            slot.conn = None;
        }
        slot.stats.disconnects += 1;
        *slot.stats.errors.entry(reason).or_default() += 1;
        current
    };
    tracing::info!(peer = %name, reason, "node channel down");
    // A replaced connection's peer is still up on the newer one.
    if !current {
        return;
    }
    let _ = inner
        .events
        .send(GroupEvent::Down {
            peer: name.to_string(),
            reason,
        })
        .await;
}

async fn read_loop(inner: &Inner, peer: &str, mut reader: ChannelReader) -> ChannelError {
    loop {
        match reader.recv().await {
            Ok(msg) => {
                inner.with_stats(peer, |s| {
                    s.messages_received += 1;
                    s.bytes_received += msg.len() as u64;
                });
                let ev = GroupEvent::Message {
                    from: peer.to_string(),
                    msg,
                };
                // Nobody listening: the message is dropped, the link stays.
                let _ = inner.events.send(ev).await;
            }
            Err(e) => return e,
        }
    }
}

async fn write_loop(
    inner: &Inner,
    peer: &str,
    mut writer: ChannelWriter,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> ChannelError {
    while let Some(msg) = rx.recv().await {
        if let Err(e) = writer.send(&msg).await {
            return e;
        }
        inner.with_stats(peer, |s| {
            s.messages_sent += 1;
            s.bytes_sent += msg.len() as u64;
        });
    }
    ChannelError::Closed
}
