//! One authenticated, encrypted node-channel connection over TCP (tokio).
//!
//! [`Channel::connect`] dials a configured member and runs the initiator
//! side of the handshake; [`Channel::accept`] runs the responder side on an
//! accepted stream. Both check the peer's hello against the member list.
//! Sockets get `TCP_NODELAY` (a handoff message must not wait for Nagle) and
//! TCP keepalive (connections stay open between handoffs).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::error::ChannelError;
use super::frame::{ChannelLimits, Completed, LEN_PREFIX, frame_len};
use super::member::{GroupMember, MemberInfo, Members};
use super::noise::{Handshake, Opener, Sealer};
use crate::crypto::NodeChannelPsk;

/// Everything a member needs to open channels to its group.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// This node as it introduces itself (must be in `members`).
    pub me: MemberInfo,
    /// The configured group.
    pub members: Members,
    /// The node-channel PSK (`KeyHierarchy::node_channel_psk()`).
    pub psk: NodeChannelPsk,
    /// Bounds on messages.
    pub limits: ChannelLimits,
    /// Longest time a handshake (including the dial) may take.
    pub handshake_timeout: Duration,
    /// TCP keepalive idle time (probes every idle/3 after that).
    pub keepalive: Duration,
}

impl ChannelConfig {
    /// With default limits, a 3 s handshake timeout and 10 s keepalive.
    #[must_use]
    pub fn new(me: MemberInfo, members: Members, psk: NodeChannelPsk) -> Self {
        Self {
            me,
            members,
            psk,
            limits: ChannelLimits::default(),
            handshake_timeout: Duration::from_secs(3),
            keepalive: Duration::from_secs(10),
        }
    }
}

/// Sets `TCP_NODELAY` and keepalive.
fn tune(stream: &TcpStream, cfg: &ChannelConfig) -> Result<(), ChannelError> {
    stream.set_nodelay(true)?;
    let ka = socket2::TcpKeepalive::new()
        .with_time(cfg.keepalive)
        .with_interval(cfg.keepalive / 3)
        .with_retries(3);
    socket2::SockRef::from(stream).set_tcp_keepalive(&ka)?;
    Ok(())
}

/// Reads one frame body into `buf` (length checked first). EOF anywhere is
/// [`ChannelError::Closed`].
async fn read_frame(
    rd: &mut (impl AsyncReadExt + Unpin),
    buf: &mut Vec<u8>,
) -> Result<(), ChannelError> {
    let eof = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ChannelError::Closed
        } else {
            ChannelError::Io(e)
        }
    };
    let mut prefix = [0u8; LEN_PREFIX];
    rd.read_exact(&mut prefix).await.map_err(eof)?;
    let n = frame_len(prefix)?;
    buf.resize(n, 0);
    rd.read_exact(buf).await.map_err(eof)?;
    Ok(())
}

/// The receiving half of a channel.
#[derive(Debug)]
pub struct ChannelReader {
    rd: OwnedReadHalf,
    opener: Opener,
    buf: Vec<u8>,
}

impl ChannelReader {
    /// The next whole application message. Any error means the connection
    /// is unusable: drop it.
    pub async fn recv(&mut self) -> Result<Vec<u8>, ChannelError> {
        loop {
            read_frame(&mut self.rd, &mut self.buf).await?;
            if let Some(msg) = self.opener.open_message(&self.buf)? {
                return Ok(msg);
            }
        }
    }
}

/// The sending half of a channel.
#[derive(Debug)]
pub struct ChannelWriter {
    wr: OwnedWriteHalf,
    sealer: Sealer,
    buf: Vec<u8>,
}

impl ChannelWriter {
    /// Sends one application message (one `write` for all its frames).
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.buf.clear();
        self.sealer.seal_message(msg, &mut self.buf)?;
        self.wr.write_all(&self.buf).await?;
        Ok(())
    }

    /// Writes raw octets, bypassing the encryption: for tests that play a
    /// hostile peer.
    #[cfg(test)]
    pub(crate) async fn send_raw(&mut self, raw: &[u8]) -> Result<(), ChannelError> {
        self.wr.write_all(raw).await?;
        Ok(())
    }

    /// Seals a message without sending it (tests: capture a frame).
    #[cfg(test)]
    pub(crate) fn seal_only(&mut self, msg: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let mut out = Vec::new();
        self.sealer.seal_message(msg, &mut out)?;
        Ok(out)
    }
}

/// An established channel to one member.
#[derive(Debug)]
pub struct Channel {
    peer: MemberInfo,
    reader: ChannelReader,
    writer: ChannelWriter,
}

impl Channel {
    /// Dials `peer.channel` and runs the initiator handshake, all within
    /// `cfg.handshake_timeout`.
    pub async fn connect(cfg: &ChannelConfig, peer: &GroupMember) -> Result<Self, ChannelError> {
        tokio::time::timeout(cfg.handshake_timeout, async {
            let stream = TcpStream::connect(peer.channel).await?;
            Self::initiate_inner(stream, cfg, &peer.info.name).await
        })
        .await
        .map_err(|_| ChannelError::HandshakeTimeout)?
    }

    /// Runs the initiator handshake on a connected stream; the responder
    /// must be the member named `expected`.
    pub async fn initiate(
        stream: TcpStream,
        cfg: &ChannelConfig,
        expected: &str,
    ) -> Result<Self, ChannelError> {
        tokio::time::timeout(
            cfg.handshake_timeout,
            Self::initiate_inner(stream, cfg, expected),
        )
        .await
        .map_err(|_| ChannelError::HandshakeTimeout)?
    }

    async fn initiate_inner(
        mut stream: TcpStream,
        cfg: &ChannelConfig,
        expected: &str,
    ) -> Result<Self, ChannelError> {
        tune(&stream, cfg)?;
        let mut hs = Handshake::initiator(&cfg.psk)?;
        let mut out = Vec::new();
        hs.write(&[], &mut out)?;
        stream.write_all(&out).await?;
        let mut buf = Vec::new();
        read_frame(&mut stream, &mut buf)
            .await
            .map_err(|e| match e {
                ChannelError::Closed => ChannelError::HandshakeRejected,
                ChannelError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    ChannelError::HandshakeRejected
                }
                e => e,
            })?;
        let peer = MemberInfo::decode(&hs.read(&buf)?)?;
        check_peer(cfg, &peer)?;
        if peer.name != expected {
            return Err(ChannelError::UnexpectedPeer {
                expected: expected.to_string(),
                got: peer.name,
            });
        }
        let (mut sealer, opener) = hs.finish(&cfg.limits)?;
        out.clear();
        sealer.seal_hello(&cfg.me.encode(), &mut out)?;
        stream.write_all(&out).await?;
        Ok(Self::assemble(stream, peer, sealer, opener))
    }

    /// Runs the responder handshake on an accepted stream, within
    /// `cfg.handshake_timeout`.
    pub async fn accept(stream: TcpStream, cfg: &ChannelConfig) -> Result<Self, ChannelError> {
        tokio::time::timeout(cfg.handshake_timeout, Self::accept_inner(stream, cfg))
            .await
            .map_err(|_| ChannelError::HandshakeTimeout)?
    }

    async fn accept_inner(
        mut stream: TcpStream,
        cfg: &ChannelConfig,
    ) -> Result<Self, ChannelError> {
        tune(&stream, cfg)?;
        let mut hs = Handshake::responder(&cfg.psk)?;
        let mut buf = Vec::new();
        read_frame(&mut stream, &mut buf).await?;
        // Message 1 carries no payload; anything there is ignored.
        let _ = hs.read(&buf)?;
        let mut out = Vec::new();
        hs.write(&cfg.me.encode(), &mut out)?;
        stream.write_all(&out).await?;
        let (sealer, mut opener) = hs.finish(&cfg.limits)?;
        read_frame(&mut stream, &mut buf).await?;
        let Completed::Hello(hello) = opener.open(&buf)? else {
            return Err(ChannelError::BadRecord(None));
        };
        let peer = MemberInfo::decode(&hello)?;
        check_peer(cfg, &peer)?;
        Ok(Self::assemble(stream, peer, sealer, opener))
    }

    fn assemble(stream: TcpStream, peer: MemberInfo, sealer: Sealer, opener: Opener) -> Self {
        let (rd, wr) = stream.into_split();
        Self {
            peer,
            reader: ChannelReader {
                rd,
                opener,
                buf: Vec::new(),
            },
            writer: ChannelWriter {
                wr,
                sealer,
                buf: Vec::new(),
            },
        }
    }

    /// The authenticated peer (as configured).
    #[must_use]
    pub fn peer(&self) -> &MemberInfo {
        &self.peer
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.writer.send(msg).await
    }

    /// Receives one message.
    pub async fn recv(&mut self) -> Result<Vec<u8>, ChannelError> {
        self.reader.recv().await
    }

    /// Puts split halves back together (tests).
    #[cfg(test)]
    pub(crate) fn from_parts(
        peer: MemberInfo,
        reader: ChannelReader,
        writer: ChannelWriter,
    ) -> Self {
        Self {
            peer,
            reader,
            writer,
        }
    }

    /// The two halves, for separate reader and writer tasks.
    #[must_use]
    pub fn split(self) -> (MemberInfo, ChannelReader, ChannelWriter) {
        (self.peer, self.reader, self.writer)
    }
}

/// The peer must be a configured member other than this node.
fn check_peer(cfg: &ChannelConfig, peer: &MemberInfo) -> Result<(), ChannelError> {
    if peer.name == cfg.me.name {
        return Err(ChannelError::SelfConnection);
    }
    if !cfg.members.knows(peer) {
        return Err(ChannelError::UnknownMember(peer.name.clone()));
    }
    Ok(())
}
