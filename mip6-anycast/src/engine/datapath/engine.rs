//! The engine task: one tokio task that owns the tables, the TUN, the raw
//! socket and (optionally) the steering, and loops on TUN reads, table
//! updates and control-plane sends.
//!
//! Per packet there is no allocation: one buffer with [`HEADROOM`] in
//! front receives every packet, [`Datapath::process`] edits it in place,
//! and the result is written from the same buffer. After a wake-up the loop
//! drains up to [`EngineConfig::batch`] queued packets with non-blocking
//! reads and reads the clock once per batch. The datapath mode
//! ([`DatapathMode`], chosen at start) decides how packets move: with
//! TUN offloads a read is a whole GSO super-packet and rewritten packets
//! go back into the TUN (see [`super::output`]); without, one packet per
//! read and the marked raw socket. Table updates are applied
//! between packets; when the engine owns the [`Steering`] it then installs
//! or removes the "to HoA" routes and "from X" rules the tables need
//! (awaiting netlink, which pauses the packet loop for that long).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFdReadyGuard;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, trace};

use super::handle::{Command, EngineError, EngineHandle, MobilityPunt, ProxyPunt, Punt, SendVia};
use super::icmp::RateLimit;
use super::member::MemberOutput;
use super::process::{Datapath, DatapathConfig, HEADROOM, PuntInfo};
use super::stats::{Action, BindingStats, DatapathMode, DropReason, EngineStats};
use super::tables::TableUpdate;
use crate::engine::bpf::{Decap, Encap, Handled, KernelTunnel};
use crate::engine::gro::Coalescer;
use crate::engine::netlink::Rule6;
use crate::engine::pmtu::PathMtu;
use crate::engine::rawsock::{AsyncRawSender, RawSender};
use crate::engine::steer::{Headroom, SteerError, Steering};
use crate::engine::sysctl::{self, Ipv6Conf};
use crate::engine::tun::Tun;
use crate::engine::tunio::{TCP_OFFLOADS, TunQueue};
use crate::engine::vnet::{VNET_HDR_LEN, VnetHdr};
use crate::wire::{self, Bounds, Ipv6Packet, TunnelParams, edit};

/// Largest packet the engine reads or sends (an IPv6 payload length of
/// 65535 plus the fixed header).
pub(super) const MAX_PACKET: usize = 65535 + wire::IPV6_HEADER_LEN;

/// Settings of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The pure datapath's settings.
    pub datapath: DatapathConfig,
    /// Capacity of the punt queue; when full, punts are dropped and
    /// counted.
    pub punt_capacity: usize,
    /// Capacity of the command queue.
    pub command_capacity: usize,
    /// Packets read per wake-up before commands are looked at again.
    pub batch: usize,
    /// Path MTU assumed for ICMPv6 Packet Too Big; `None`: the steering's
    /// `path_mtu`, else 1500.
    pub path_mtu: Option<u32>,
    /// Send ICMPv6 Packet Too Big into the TUN when a rewritten packet no
    /// longer fits.
    pub icmp_too_big: bool,
    /// Packet Too Big messages at once, then one per
    /// [`EngineConfig::icmp_interval`].
    pub icmp_burst: u32,
    /// See [`EngineConfig::icmp_burst`].
    pub icmp_interval: Duration,
    /// Which datapath to run ([`DatapathMode::Auto`]: TUN offloads if the
    /// TUN has `IFF_VNET_HDR` and forwarding can be enabled on it, plus
    /// the BPF home tunnel when the engine owns a steering and the kernel
    /// takes the programs, else raw; an explicit mode fails to start
    /// without what it needs).
    pub mode: DatapathMode,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            datapath: DatapathConfig::default(),
            punt_capacity: 1024,
            command_capacity: 256,
            batch: 64,
            path_mtu: None,
            icmp_too_big: true,
            icmp_burst: 10,
            icmp_interval: Duration::from_millis(10),
            mode: DatapathMode::Auto,
        }
    }
}

/// The kernel objects the engine runs on.
#[derive(Debug)]
pub struct EngineIo {
    /// The engine's TUN (steered packets come out of it; packets written
    /// into it enter the kernel).
    pub tun: Tun,
    /// The marked raw socket rewritten packets leave through.
    pub raw: RawSender,
    /// The steering, if the engine should keep its routes and rules in
    /// line with the tables (see [`super::Tables::wanted_steer_to`]).
    pub steering: Option<Steering>,
}

impl EngineIo {
    /// The TUN and raw socket of `steering`, which the engine then owns and
    /// keeps in line with the tables.
    pub fn from_steering(steering: Steering, tun: Tun) -> Result<Self, EngineError> {
        let raw = steering.raw_sender()?;
        Ok(Self {
            tun,
            raw,
            steering: Some(steering),
        })
    }
}

/// A started engine.
#[derive(Debug)]
pub struct RunningEngine {
    /// Handle for the control plane.
    pub handle: EngineHandle,
    /// Mobility Header messages and binding errors for the control plane.
    pub punts: mpsc::Receiver<Punt>,
    /// The task; it returns when stopped.
    pub task: JoinHandle<EngineExit>,
}

/// What the engine task returns.
#[derive(Debug)]
pub struct EngineExit {
    /// The steering it owned (call [`Steering::remove`] to undo it).
    pub steering: Option<Steering>,
    /// Final counters.
    pub stats: EngineStats,
    /// Why it stopped: `Ok` on shutdown or when every handle was dropped.
    pub result: Result<(), EngineError>,
}

/// Starts engines.
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Like [`Engine::start`] on runtime `rt` (e.g. a
    /// [`NetnsWorker`](crate::engine::netns::NetnsWorker)'s handle),
    /// callable from anywhere.
    pub fn start_on(
        rt: &tokio::runtime::Handle,
        io: EngineIo,
        cfg: EngineConfig,
    ) -> Result<RunningEngine, EngineError> {
        let _entered = rt.enter();
        Self::start(io, cfg)
    }

    /// Registers the TUN and raw socket with the current tokio runtime and
    /// spawns the engine task on it. Must be called from inside a runtime.
    pub fn start(io: EngineIo, cfg: EngineConfig) -> Result<RunningEngine, EngineError> {
        let ns = io.tun.netns().map(str::to_string);
        let (tun, mode) = open_tun(io.tun, cfg.mode)?;
        let pmtu =
            PathMtu::new(ns.as_deref(), io.raw.mark()).map_err(|source| EngineError::Io {
                op: "open the path MTU probe socket",
                source,
            })?;
        let raw = io.raw.into_async()?;
        let (mode, kernel, kernel_plan) =
            plan_kernel_tunnel(mode, cfg.mode, ns.as_deref(), &io.steering)?;
        let (cmd_tx, cmd_rx) = mpsc::channel(cfg.command_capacity.max(1));
        let (punt_tx, punt_rx) = mpsc::channel(cfg.punt_capacity.max(1));
        let path_mtu = cfg
            .path_mtu
            .or(io.steering.as_ref().map(|s| s.config().path_mtu))
            .unwrap_or(1500);
        let task = Task {
            dp: Datapath::new(cfg.datapath),
            buf: vec![0u8; HEADROOM + MAX_PACKET],
            seg: vec![0u8; MAX_PACKET],
            gro: Coalescer::new(),
            scratch: Vec::new(),
            icmp_buf: vec![0u8; crate::engine::steer::IPV6_MIN_MTU as usize],
            icmp_limit: RateLimit::new(cfg.icmp_burst, cfg.icmp_interval),
            tun: Arc::new(tun),
            mode,
            pmtu,
            kernel,
            kernel_plan,
            raw,
            steering: io.steering,
            steered_to: HashMap::new(),
            steered_prefixes: HashSet::new(),
            steered_from: HashSet::new(),
            cmds: cmd_rx,
            punts: punt_tx,
            punts_lost: 0,
            path_mtu,
            cfg,
        };
        debug!(tun = task.tun.name(), ?mode, "engine datapath");
        let task = tokio::spawn(task.run());
        Ok(RunningEngine {
            handle: EngineHandle { cmds: cmd_tx },
            punts: punt_rx,
            task,
        })
    }
}

/// Registers the TUN and picks the datapath: TUN offloads need
/// `IFF_VNET_HDR`, the TCP offload flags, and forwarding of what the
/// engine writes back (`force_forwarding` on the TUN, or forwarding on
/// in the namespace).
fn open_tun(tun: Tun, want: DatapathMode) -> Result<(TunQueue, DatapathMode), EngineError> {
    let ns = tun.netns().map(str::to_string);
    let name = tun.name().to_string();
    let q = TunQueue::new(tun)?;
    let offload = || -> Result<(), String> {
        if !q.vnet() {
            return Err("the TUN has no IFF_VNET_HDR".into());
        }
        let forwarding = sysctl::set_ipv6_conf(ns.as_deref(), &name, Ipv6Conf::ForceForwarding, 1)
            .is_ok()
            || sysctl::read(ns.as_deref(), "net/ipv6/conf/all/forwarding")
                .is_ok_and(|v| v.trim() == "1");
        if !forwarding {
            return Err("cannot forward packets written into the TUN".into());
        }
        q.set_offloads(TCP_OFFLOADS)
            .map_err(|e| format!("TUNSETOFFLOAD: {e}"))
    };
    let mode = match want {
        DatapathMode::Raw => DatapathMode::Raw,
        DatapathMode::Auto | DatapathMode::TunOffload | DatapathMode::TunOffloadBpf => {
            match offload() {
                Ok(()) => DatapathMode::TunOffload,
                Err(why) if want != DatapathMode::Auto => {
                    return Err(EngineError::Io {
                        op: "enable offloads",
                        source: io::Error::other(why),
                    });
                }
                Err(why) => {
                    debug!(tun = %name, %why, "TUN offloads unavailable, raw datapath");
                    DatapathMode::Raw
                }
            }
        }
    };
    if mode == DatapathMode::Raw && q.vnet() {
        // Plain packets with complete checksums, virtio header all zero.
        q.set_offloads(0).map_err(|source| EngineError::Io {
            op: "disable offloads",
            source,
        })?;
    }
    Ok((q, mode))
}

/// Where the BPF home tunnel goes once the tables hold a tunnel.
#[derive(Debug, Clone)]
pub(super) struct KernelTunnelPlan {
    ns: Option<String>,
    interfaces: Vec<String>,
    /// Refuse to run without it ([`DatapathMode::TunOffloadBpf`] asked
    /// for explicitly).
    required: bool,
}

/// Decides whether the BPF home tunnel joins a TUN offload datapath
/// (asked for, or auto mode, and the engine owns a steering). The
/// programs are loaded and attached when the tables first hold a tunnel
/// (an engine without tunnels, e.g. a correspondent, never runs them);
/// an explicit request loads them at once so that failure stops the
/// start.
fn plan_kernel_tunnel(
    mode: DatapathMode,
    want: DatapathMode,
    ns: Option<&str>,
    steering: &Option<Steering>,
) -> Result<(DatapathMode, Option<KernelTunnel>, Option<KernelTunnelPlan>), EngineError> {
    let wanted = matches!(want, DatapathMode::Auto | DatapathMode::TunOffloadBpf);
    let Some(st) = steering
        .as_ref()
        .filter(|_| wanted && mode == DatapathMode::TunOffload)
    else {
        if want == DatapathMode::TunOffloadBpf {
            return Err(EngineError::Io {
                op: "attach the BPF tunnel",
                source: io::Error::other("needs TUN offloads and the engine's own steering"),
            });
        }
        return Ok((mode, None, None));
    };
    let plan = KernelTunnelPlan {
        ns: ns.map(str::to_string),
        interfaces: st.config().interfaces.clone(),
        required: want == DatapathMode::TunOffloadBpf,
    };
    if !plan.required {
        return Ok((mode, None, Some(plan)));
    }
    match KernelTunnel::attach(ns, &plan.interfaces) {
        Ok(k) => Ok((DatapathMode::TunOffloadBpf, Some(k), None)),
        Err(e) => Err(EngineError::Io {
            op: "attach the BPF tunnel",
            source: io::Error::other(e.to_string()),
        }),
    }
}

pub(super) struct Task {
    pub(super) dp: Datapath,
    pub(super) buf: Vec<u8>,
    /// Segments of a GSO packet that has to leave cut up.
    pub(super) seg: Vec<u8>,
    /// Segments joined before they are written into the TUN.
    pub(super) gro: Coalescer,
    pub(super) scratch: Vec<u8>,
    pub(super) icmp_buf: Vec<u8>,
    pub(super) icmp_limit: RateLimit,
    pub(super) tun: Arc<TunQueue>,
    pub(super) mode: DatapathMode,
    pub(super) pmtu: PathMtu,
    kernel: Option<KernelTunnel>,
    kernel_plan: Option<KernelTunnelPlan>,
    pub(super) raw: AsyncRawSender,
    steering: Option<Steering>,
    steered_to: HashMap<Ipv6Addr, Headroom>,
    steered_prefixes: HashSet<(Ipv6Addr, u8)>,
    steered_from: HashSet<Ipv6Addr>,
    cmds: mpsc::Receiver<Command>,
    punts: mpsc::Sender<Punt>,
    punts_lost: u64,
    pub(super) path_mtu: u32,
    pub(super) cfg: EngineConfig,
}

enum Event<'a> {
    Command(Option<Command>),
    Readable(io::Result<AsyncFdReadyGuard<'a, OwnedFd>>),
}

impl Task {
    async fn run(mut self) -> EngineExit {
        let result = self.main_loop().await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "engine stopped");
        }
        EngineExit {
            stats: self.stats(Instant::now()),
            steering: self.steering.take(),
            result,
        }
    }

    async fn main_loop(&mut self) -> Result<(), EngineError> {
        let tun = Arc::clone(&self.tun);
        loop {
            let ev = tokio::select! {
                biased;
                c = self.cmds.recv() => Event::Command(c),
                r = tun.readable() => Event::Readable(r),
            };
            match ev {
                Event::Command(None) => return Ok(()),
                Event::Command(Some(Command::Shutdown(reply))) => {
                    let _ = reply.send(());
                    return Ok(());
                }
                Event::Command(Some(c)) => {
                    self.gro_flush();
                    self.command(c).await;
                }
                Event::Readable(Err(source)) => {
                    return Err(EngineError::Io { op: "read", source });
                }
                Event::Readable(Ok(mut guard)) => {
                    let now = Instant::now();
                    for _ in 0..self.cfg.batch.max(1) {
                        let mut hdr = [0u8; VNET_HDR_LEN];
                        match tun.try_read(&mut hdr, &mut self.buf[HEADROOM..]) {
                            Ok(n) => self.packet(n, VnetHdr::parse(&hdr), now).await,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                guard.clear_ready();
                                break;
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::Interrupted | io::ErrorKind::InvalidData
                                ) => {}
                            Err(source) => return Err(EngineError::Io { op: "read", source }),
                        }
                    }
                    self.gro_flush();
                }
            }
        }
    }

    /// Hands one proxy packet to the control plane.
    pub(super) fn punt_proxy_packet(&mut self, p: ProxyPunt) {
        let len = p.packet.len();
        match self.punts.try_send(Punt::Proxy(p)) {
            Ok(()) => self.dp.counters_mut().punted.add(len),
            Err(_) => {
                self.punts_lost += 1;
                self.dp.counters_mut().drop(DropReason::PuntQueueFull, len);
            }
        }
    }

    pub(super) fn punt(&mut self, p: PuntInfo, now: Instant) {
        let (punt, len) = match p {
            PuntInfo::Mobility {
                bounds,
                mh_type,
                tunnel,
            } => (
                Punt::Mobility(MobilityPunt {
                    packet: self.buf[bounds.range()].to_vec(),
                    mh_type,
                    tunnel,
                    received: now,
                }),
                bounds.len,
            ),
            PuntInfo::HaoWithoutBinding { src, dst, hoa } => {
                (Punt::HaoWithoutBinding { src, dst, hoa }, 0)
            }
            PuntInfo::Proxy { bounds, tunnel } => (
                Punt::Proxy(ProxyPunt {
                    packet: self.buf[bounds.range()].to_vec(),
                    tunnel,
                    received: now,
                }),
                bounds.len,
            ),
        };
        let is_mobility = matches!(punt, Punt::Mobility(_) | Punt::Proxy(_));
        match self.punts.try_send(punt) {
            Ok(()) => self.dp.counters_mut().punted.add(len),
            Err(_) => {
                self.punts_lost += 1;
                if is_mobility {
                    self.dp.counters_mut().drop(DropReason::PuntQueueFull, len);
                }
            }
        }
    }

    async fn command(&mut self, c: Command) {
        match c {
            Command::Update(updates, reply) => {
                let r = self.update(&updates).await;
                let _ = reply.send(r);
            }
            Command::Send(packet, via, reply) => {
                let r = self.control_send(&packet, via).await;
                let _ = reply.send(r);
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats(Instant::now()));
            }
            Command::Usage(key, reply) => {
                let _ = reply.send(self.dp.tables().usage(&key));
            }
            Command::Client(hoa, client, reply) => {
                let _ = reply.send(self.dp.member_status(&hoa, &client, Instant::now()));
            }
            Command::ProxyUsage(reply) => {
                let _ = reply.send(self.dp.take_proxy_usage());
            }
            // Handled by the loop.
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    async fn update(&mut self, updates: &[TableUpdate]) -> Result<(), EngineError> {
        let mut result = Ok(());
        for u in updates {
            let span = update_span(u);
            let _enter = span.enter();
            if let Err(e) = self.dp.apply(u) {
                debug!(error = %e, "table update refused");
                result = Err(e.into());
                break;
            }
            debug!("table updated");
        }
        self.flush_member_output().await;
        let synced = self.sync_steering().await;
        self.sync_kernel_tunnel();
        result.and(synced)
    }

    /// Sends what member updates released (into the TUN, in order) or
    /// flushed to another member (through the raw socket).
    async fn flush_member_output(&mut self) {
        while let Some(out) = self.dp.take_member_output() {
            match out {
                MemberOutput::Tun(p) => match self.tun.write(&VnetHdr::default(), &p) {
                    Ok(_) => self.dp.counters_mut().to_tun.add(p.len()),
                    Err(e) => {
                        debug!(error = %e, "TUN write of a released packet failed");
                        self.dp
                            .counters_mut()
                            .drop(DropReason::TunWriteFailed, p.len());
                    }
                },
                MemberOutput::Wire(p) => match self.raw.send(&p).await {
                    Ok(_) => self.dp.counters_mut().to_wire.add(p.len()),
                    Err(e) => {
                        trace!(error = %e, "raw send of a flushed packet failed");
                        self.dp.counters_mut().drop(DropReason::SendFailed, p.len());
                    }
                },
            }
        }
    }

    /// Puts the tunnels of the tables into the BPF maps: the member side
    /// (reverse tunnels of local home addresses; none while a client's
    /// packets are held or forwarded, which only the engine does) and the
    /// home agent side (home tunnels).
    fn sync_kernel_tunnel(&mut self) {
        let t = self.dp.tables();
        let has_tunnels = t.home_tunnels().next().is_some() || t.reverse_tunnels().next().is_some();
        if self.kernel.is_none()
            && has_tunnels
            && let Some(plan) = self.kernel_plan.take()
        {
            match KernelTunnel::attach(plan.ns.as_deref(), &plan.interfaces) {
                Ok(k) => {
                    debug!("BPF tunnel attached");
                    self.kernel = Some(k);
                    self.mode = DatapathMode::TunOffloadBpf;
                }
                Err(e) => debug!(error = %e, "BPF tunnel unavailable"),
            }
        }
        let Some(k) = self.kernel.as_mut() else {
            return;
        };
        let t = self.dp.tables();
        let decap: Vec<Decap> = if self.dp.members().has_clients() {
            Vec::new()
        } else {
            t.reverse_tunnels()
                .filter(|(hoa, _)| t.is_local_home(hoa))
                .map(|(hoa, e)| Decap {
                    home_agent: e.remote,
                    coa: e.local,
                    hoa,
                })
                .collect()
        };
        let encap: Vec<Encap> = t
            .home_tunnels()
            .map(|(hoa, e)| Encap {
                hoa,
                home_agent: e.local,
                coa: e.remote,
                mtu: self.path_mtu,
            })
            .collect();
        if let Err(e) = k.sync(&decap, &encap) {
            tracing::warn!(error = %e, "BPF tunnel maps");
        }
    }

    /// Installs the routes and rules the tables want, removes the rest.
    async fn sync_steering(&mut self) -> Result<(), EngineError> {
        let Some(st) = &self.steering else {
            return Ok(());
        };
        let want_to = self.dp.tables().wanted_steer_to();
        let want_from = self.dp.tables().wanted_steer_from();
        let mut first: Option<SteerError> = None;
        let mut note = |e: SteerError| {
            if first.is_none() {
                first = Some(e);
            }
        };
        let mut added_to = false;
        for (&a, &h) in &want_to {
            if self.steered_to.get(&a) != Some(&h) {
                match st.steer_to(a, h).await {
                    Ok(()) => {
                        debug!(hoa = %a, headroom = h.bytes(), "steering to home address");
                        self.steered_to.insert(a, h);
                        added_to = true;
                    }
                    Err(e) => note(e),
                }
            }
        }
        if added_to && let Err(e) = invalidate_route_caches(st).await {
            note(e);
        }
        for &a in &want_from {
            if !self.steered_from.contains(&a) {
                match st.steer_from(a, 128).await {
                    Ok(()) => {
                        debug!(hoa = %a, "steering from home address");
                        self.steered_from.insert(a);
                    }
                    Err(e) => note(e),
                }
            }
        }
        let stale_to: Vec<Ipv6Addr> = self
            .steered_to
            .keys()
            .filter(|a| !want_to.contains_key(a))
            .copied()
            .collect();
        for a in stale_to {
            match gone(st.unsteer_to(a).await) {
                Ok(()) => {
                    debug!(hoa = %a, "no longer steering to home address");
                    self.steered_to.remove(&a);
                }
                Err(e) => note(e),
            }
        }
        // PIAS: anycast prefixes (room for the tunnel to a join proxy) and
        // NAT addresses (translation adds nothing).
        let want_prefixes: HashSet<(Ipv6Addr, u8)> =
            self.dp.proxy().wanted_routes().into_iter().collect();
        for &(p, len) in &want_prefixes {
            if !self.steered_prefixes.contains(&(p, len)) {
                let h = if self.dp.proxy().is_nat_address(&p) && len == 128 {
                    Headroom::Bytes(0)
                } else {
                    Headroom::Tunnel
                };
                match st.steer_prefix_to(p, len, h).await {
                    Ok(()) => {
                        debug!(prefix = %p, len, "steering to proxy prefix");
                        self.steered_prefixes.insert((p, len));
                    }
                    Err(e) => note(e),
                }
            }
        }
        let stale_prefixes: Vec<(Ipv6Addr, u8)> = self
            .steered_prefixes
            .difference(&want_prefixes)
            .copied()
            .collect();
        for (p, len) in stale_prefixes {
            match gone(st.unsteer_prefix_to(p, len).await) {
                Ok(()) => {
                    self.steered_prefixes.remove(&(p, len));
                }
                Err(e) => note(e),
            }
        }
        let stale_from: Vec<Ipv6Addr> = self
            .steered_from
            .iter()
            .filter(|a| !want_from.contains(a))
            .copied()
            .collect();
        for a in stale_from {
            match gone(st.unsteer_from(a, 128).await) {
                Ok(()) => {
                    debug!(hoa = %a, "no longer steering from home address");
                    self.steered_from.remove(&a);
                }
                Err(e) => note(e),
            }
        }
        first.map_or(Ok(()), |e| Err(e.into()))
    }

    async fn control_send(&mut self, packet: &[u8], via: SendVia) -> Result<(), EngineError> {
        let ip = Ipv6Packet::new_checked(packet)?;
        if ip.total_len() != packet.len() {
            return Err(wire::Error::BadInnerLength {
                inner: ip.total_len(),
                outer: packet.len(),
            }
            .into());
        }
        let dst = self
            .buf
            .get_mut(HEADROOM..HEADROOM + packet.len())
            .ok_or(wire::Error::PayloadTooLong(packet.len()))?;
        dst.copy_from_slice(packet);
        let mut b = Bounds {
            start: HEADROOM,
            len: packet.len(),
        };
        if let Some((src, dst)) = via.tunnel() {
            let params = TunnelParams {
                hop_limit: self.cfg.datapath.tunnel_hop_limit,
                ..TunnelParams::new(src, dst)
            };
            b = edit::encapsulate(&mut self.buf, b.start, b.len, &params)?;
        }
        self.raw.send(&self.buf[b.range()]).await?;
        let c = self.dp.counters_mut();
        c.action(Action::ControlSent, b.len);
        c.to_wire.add(b.len);
        Ok(())
    }

    fn stats(&self, now: Instant) -> EngineStats {
        let bindings = self
            .dp
            .tables()
            .usages()
            .into_iter()
            .map(|(key, u)| {
                let ms = |t: Instant| {
                    u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX)
                };
                BindingStats {
                    key,
                    packets: u.packets,
                    bytes: u.bytes,
                    idle_ms: u.last_used.map(ms),
                    packets_in: u.packets_in,
                    idle_in_ms: u.last_in.map(ms),
                }
            })
            .collect();
        let mut s =
            self.dp
                .counters()
                .snapshot(self.dp.tables().sizes(), bindings, self.punts_lost);
        s.datapath = self.mode;
        if let Some(k) = &self.kernel {
            fold_kernel_counts(&mut s, k);
        }
        s
    }
}

/// Counts what the BPF programs did as the engine's own tunnel actions
/// and binding usage (the control planes and tests see one datapath).
fn fold_kernel_counts(s: &mut EngineStats, k: &KernelTunnel) {
    use super::tables::BindingKey;
    let mut add = |a: Action, key: BindingKey, h: Handled, inbound: bool| {
        let c = s.actions.entry(a).or_default();
        c.packets = c.packets.wrapping_add(h.packets);
        c.bytes = c.bytes.wrapping_add(h.bytes);
        if let Some(b) = s.bindings.iter_mut().find(|b| b.key == key) {
            b.packets = b.packets.wrapping_add(h.packets);
            b.bytes = b.bytes.wrapping_add(h.bytes);
            if inbound {
                b.packets_in = b.packets_in.wrapping_add(h.packets);
            }
        }
    };
    for (hoa, h) in k.encapsulated() {
        add(
            Action::HomeTunnelEncapsulated,
            BindingKey::HomeTunnel { hoa },
            h,
            false,
        );
    }
    for (hoa, h) in k.decapsulated() {
        add(
            Action::ReverseTunnelDecapsulated,
            BindingKey::ReverseTunnel { hoa },
            h,
            true,
        );
    }
}

/// A removal that found nothing to remove succeeded.
fn gone(r: Result<(), SteerError>) -> Result<(), SteerError> {
    match r {
        Err(SteerError::Netlink(e)) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Makes established sockets see new "to" routes.
///
/// IPv6 sockets cache their route and revalidate it against a serial
/// number of the routing tree it came from: a route added to the steering
/// table leaves a connection routed by the main table on its old path. A
/// rule change renumbers every tree (`rt_genid_bump_ipv6`), so add and
/// delete a rule that matches nothing (from `::` to `::`, never a real
/// packet) just after the steering rules.
async fn invalidate_route_caches(st: &Steering) -> Result<(), SteerError> {
    let cfg = st.config();
    let nothing = Rule6::new(cfg.rule_priority + 2, cfg.table)
        .source(Ipv6Addr::UNSPECIFIED, 128)
        .destination(Ipv6Addr::UNSPECIFIED, 128);
    let nl = st.netlink();
    match nl.add_rule(&nothing).await {
        Ok(()) => {}
        Err(e) if e.is_exists() => {}
        Err(e) => return Err(e.into()),
    }
    match nl.del_rule(&nothing).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A debug span naming the binding an update concerns.
fn update_span(u: &TableUpdate) -> tracing::Span {
    use TableUpdate as U;
    match u {
        U::AddCorrespondentBinding { cn, hoa, coa } => {
            tracing::debug_span!("correspondent binding", %cn, %hoa, %coa)
        }
        U::RemoveCorrespondentBinding { cn, hoa } => {
            tracing::debug_span!("correspondent binding", %cn, %hoa, removed = true)
        }
        U::AddHomeAddressBinding { hoa, peer, coa } => {
            tracing::debug_span!("home address binding", %hoa, %peer, %coa)
        }
        U::RemoveHomeAddressBinding { hoa, peer } => {
            tracing::debug_span!("home address binding", %hoa, %peer, removed = true)
        }
        U::AddReverseTunnel {
            hoa,
            coa,
            home_agent,
        } => tracing::debug_span!("reverse tunnel", %hoa, %coa, %home_agent),
        U::RemoveReverseTunnel { hoa } => {
            tracing::debug_span!("reverse tunnel", %hoa, removed = true)
        }
        U::AddHomeTunnel {
            hoa,
            home_agent,
            coa,
        } => tracing::debug_span!("home tunnel", %hoa, %home_agent, %coa),
        U::RemoveHomeTunnel { hoa } => tracing::debug_span!("home tunnel", %hoa, removed = true),
        other => tracing::debug_span!("table", update = ?other),
    }
}
