//! The I/O shell of `pias-proxy`: one tokio task feeding the sans-IO
//! [`Proxy`] and [`Membership`] from the kernel and carrying out their
//! actions. Kernel side (per proxy host):
//! - the tunnel engine of `mip6-anycast` (`DaemonEngine`: TUN, steering,
//!   datapath), programmed only through its proxy tables
//!   ([`Action::Table`]): the anycast prefix and the NAT address are
//!   routed into it, RFC 2473 tunnels from peers are steered into it by tc
//!   (no ip6ip6 in this kernel), and it carries every packet of a flow
//!   after the first (ingress flows to the JAP, NAT to and from targets).
//!   What no entry covers is punted here (`Punt::Proxy`): first packets,
//!   joins to `AA:4950`, unknown replies. What the machine sends goes out
//!   through the engine (`EngineHandle::send`);
//! - UDP sockets on the unicast address for peer messages and SWIM;
//! - a raw ICMPv6 socket for target pings and RTT probes to peers.
//!
//! Every 100 ms the engine's per-flow usage (`proxy_usage`) goes back to the
//! machine: pinned flows stay pinned while used, and the JAP's passive
//! health monitoring sees data sent and replies heard. A JSON status file
//! (stats, live view, RAP and JAP tables, engine counters) is rewritten
//! every 200 ms for the lab.

pub mod config;

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mip6_anycast::daemon::datapath::DaemonEngine;
use mip6_anycast::engine::datapath::{
    Action as EngineAction, EngineHandle, EngineStats, Punt, SendVia, TableUpdate,
};
use mip6_anycast::engine::netlink::Netlink;
use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

use crate::membership::{Membership, MembershipAction, fast_config};
use crate::nat;
use crate::proxy::{Action, Event, Proxy};
use crate::wire::PEER_PORT;
use config::DaemonConfig;

/// UDP port of SWIM datagrams on the unicast address.
pub const SWIM_PORT: u16 = 4952;
const ECHO_ID: u16 = 0x5049;

fn raw_socket(proto: i32) -> io::Result<AsyncFd<Socket>> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(proto)))?;
    s.set_nonblocking(true)?;
    // SAFETY: the socket is owned by the AsyncFd for its whole life and
    // closed only when it is dropped (tokio's I/O-safety requirement).
    unsafe { AsyncFd::register(s) }.map_err(|e| io::Error::other(e.to_string()))
}

fn recv_from(fd: &Socket, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr)> {
    // SAFETY: recv_from only writes initialized bytes into the buffer; the
    // cast is the documented way to hand socket2 a byte buffer.
    let ubuf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    let (n, a) = fd.recv_from(ubuf)?;
    let src = a
        .as_socket_ipv6()
        .map(|s| *s.ip())
        .unwrap_or(Ipv6Addr::UNSPECIFIED);
    Ok((n, src))
}

struct Shell {
    proxy: Proxy,
    swim: Membership,
    engine: EngineHandle,
    table_errors: u64,
    send_errors: u64,
    engine_stats: Option<EngineStats>,
    peer: UdpSocket,
    swim_sock: UdpSocket,
    icmp: AsyncFd<Socket>,
    pings: HashMap<u16, (Ipv6Addr, Instant)>,
    ping_seq: u16,
    events: Vec<serde_json::Value>,
    started: Instant,
}

impl Shell {
    fn send_ping(&mut self, to: Ipv6Addr, now: Instant) {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        let seq = self.ping_seq;
        self.pings.insert(seq, (to, now));
        if self.pings.len() > 4096 {
            self.pings
                .retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(5));
        }
        let mut m = [0u8; 16];
        m[0] = 128;
        m[4..6].copy_from_slice(&ECHO_ID.to_be_bytes());
        m[6..8].copy_from_slice(&seq.to_be_bytes());
        let dst = SocketAddr::V6(SocketAddrV6::new(to, 0, 0, 0));
        if let Err(e) = self.icmp.get_ref().send_to(&m, &dst.into()) {
            tracing::debug!(%to, error = %e, "echo request");
        }
    }

    async fn send(&mut self, packet: Vec<u8>) {
        if let Err(e) = self.engine.send(packet, SendVia::Direct).await {
            self.send_errors += 1;
            tracing::debug!(error = %e, "send through the engine");
        }
    }

    async fn drain(&mut self, now: Instant) {
        let mut tables: Vec<TableUpdate> = Vec::new();
        while let Some(a) = self.swim.poll_action() {
            match a {
                MembershipAction::Send { to, bytes } => {
                    let _ = self.swim_sock.try_send_to(
                        &bytes,
                        SocketAddr::V6(SocketAddrV6::new(to, SWIM_PORT, 0, 0)),
                    );
                }
                MembershipAction::Up(p) => {
                    tracing::info!(proxy = %p, "proxy up");
                    self.note("proxy_up", json!({"proxy": p}), now);
                    self.proxy.proxy_up(now, p);
                }
                MembershipAction::Down(p) => {
                    tracing::info!(proxy = %p, "proxy down");
                    self.note("proxy_down", json!({"proxy": p}), now);
                    self.proxy.proxy_down(now, p);
                }
            }
        }
        while let Some(a) = self.proxy.poll_action() {
            match a {
                Action::Control { src, dst, bytes } => {
                    if src.1 == PEER_PORT {
                        let _ = self.peer.try_send_to(
                            &bytes,
                            SocketAddr::V6(SocketAddrV6::new(dst.0, dst.1, 0, 0)),
                        );
                    } else if let Some(p) = nat::udp_packet(src, dst, &bytes) {
                        self.send(p).await;
                    }
                }
                Action::Transmit { packet, .. } => self.send(packet).await,
                Action::Table(u) => tables.push(u),
                Action::PingTarget(t) => self.send_ping(t, now),
                Action::Event(e) => {
                    tracing::info!(event = ?e, "event");
                    let v = match &e {
                        Event::Joined(g, t) => {
                            ("joined", json!({"group": g.to_string(), "target": t}))
                        }
                        Event::Left(g, t) => ("left", json!({"group": g.to_string(), "target": t})),
                        Event::TargetDead(g, t) => {
                            ("target_dead", json!({"group": g.to_string(), "target": t}))
                        }
                        Event::JapListCached(g, n) => {
                            ("jap_list", json!({"group": g.to_string(), "japs": n}))
                        }
                        Event::AffinityFromPeer(g, j) => (
                            "affinity_from_peer",
                            json!({"group": g.to_string(), "jap": j}),
                        ),
                        Event::Created(g, u) => {
                            ("created", json!({"group": g.to_string(), "uri": u}))
                        }
                        Event::HandedOff(g, f, t, n) => (
                            "handed_off",
                            json!({"group": g.to_string(), "from": f, "to": t, "bindings": n}),
                        ),
                    };
                    self.note(v.0, v.1, now);
                }
            }
        }
        if !tables.is_empty() {
            self.apply_tables(tables).await;
        }
    }

    /// Programs the engine; an update it refuses (a full table) is logged
    /// and counted, and the updates after it are applied one by one.
    async fn apply_tables(&mut self, tables: Vec<TableUpdate>) {
        if self.engine.update_all(tables.clone()).await.is_ok() {
            return;
        }
        for u in tables {
            if let Err(e) = self.engine.update(u.clone()).await {
                self.table_errors += 1;
                tracing::warn!(update = ?u, error = %e, "engine table update refused");
            }
        }
    }

    fn note(&mut self, what: &str, v: serde_json::Value, now: Instant) {
        if self.events.len() < 10_000 {
            let t = now.duration_since(self.started).as_secs_f64();
            self.events.push(json!({"t": t, "what": what, "detail": v}));
        }
    }

    fn on_icmp(&mut self, now: Instant, msg: &[u8], from: Ipv6Addr) {
        if msg.len() < 8 || msg[0] != 129 || u16::from_be_bytes([msg[4], msg[5]]) != ECHO_ID {
            return;
        }
        let seq = u16::from_be_bytes([msg[6], msg[7]]);
        let Some((to, sent)) = self.pings.remove(&seq) else {
            return;
        };
        if to != from {
            return;
        }
        if self.proxy.ring().contains(&from) {
            self.proxy.rtt_sample(from, now.duration_since(sent));
        } else {
            self.proxy.target_heard(now, from);
        }
    }

    fn status(&self, now: Instant) -> serde_json::Value {
        let rap: Vec<_> = self
            .proxy
            .rap
            .summary()
            .map(|(g, n, japs)| {
                json!({"group": g.to_string(), "updates": n,
                       "japs": japs.iter().map(|e| json!({"jap": e.jap, "count": e.count})).collect::<Vec<_>>()})
            })
            .collect();
        let jap: Vec<_> = self
            .proxy
            .jap
            .groups
            .iter()
            .map(|(g, jg)| {
                json!({"group": g.to_string(), "live": jg.live(), "reported": jg.reported, "bound_pct": jg.bound_pct,
                       "targets": jg.targets.iter().map(|t| json!({"addr": t.addr, "alive": t.alive, "flows": t.flows})).collect::<Vec<_>>()})
            })
            .collect();
        let s = &self.proxy.stats;
        let engine = self.engine_stats.as_ref().map(|e| {
            let a = |x: EngineAction| e.action(x).packets;
            json!({
                "datapath": e.datapath,
                "ingress_tunnelled": a(EngineAction::ProxyIngressTunnelled),
                "translated_to_target": a(EngineAction::ProxyTranslated),
                "tunnelled_to_target": a(EngineAction::ProxyTargetTunnelled),
                "replies_translated": a(EngineAction::ProxyReplyTranslated),
                "peer_decapsulated": a(EngineAction::ProxyPeerDecapsulated),
                "target_decapsulated": a(EngineAction::ProxyTargetDecapsulated),
                "punted": a(EngineAction::ProxyPunted),
                "dropped": e.dropped.packets,
            })
        });
        json!({
            "engine": engine,
            "table_errors": self.table_errors,
            "send_errors": self.send_errors,
            "me": self.proxy.me(),
            "uptime_s": now.duration_since(self.started).as_secs_f64(),
            "live": self.swim.live(),
            "segments": s.segments,
            "drops": s.drops,
            "control_drops": s.control_drops,
            "reports_sent": s.reports_sent,
            "swim_rejected": self.swim.rejected,
            "swim_auth_drops": self.swim.auth_drops,
            "rap": rap,
            "jap": jap,
            "iap_flows": self.proxy.iap.flows_len(),
            "events": self.events,
        })
    }
}

/// Runs the daemon until SIGTERM/SIGINT, then stops the engine (its
/// routes, rules and filters go; the TUN with it, so the IGP withdraws the
/// prefix).
pub async fn run(cfg: DaemonConfig, status: Option<PathBuf>) -> anyhow::Result<()> {
    let pc = cfg.proxy_config().context("configuration")?;
    let nl = Netlink::current().context("netlink")?;
    nl.sysctl_write("net/ipv6/conf/all/forwarding", "1")
        .context("forwarding")?;
    let mut engine = DaemonEngine::start(&cfg.engine_section())
        .await
        .context("starting the tunnel engine")?;
    let result = serve(&cfg, pc, &mut engine, status).await;
    let stopped = engine.stop().await;
    result?;
    stopped.context("stopping the engine")?;
    Ok(())
}

async fn serve(
    cfg: &DaemonConfig,
    pc: crate::proxy::ProxyConfig,
    engine: &mut DaemonEngine,
    status: Option<PathBuf>,
) -> anyhow::Result<()> {
    let peer = UdpSocket::bind(SocketAddrV6::new(cfg.me, PEER_PORT, 0, 0))
        .await
        .context("peer socket")?;
    let swim_sock = UdpSocket::bind(SocketAddrV6::new(cfg.me, SWIM_PORT, 0, 0))
        .await
        .context("SWIM socket")?;
    let icmp = raw_socket(libc::IPPROTO_ICMPV6).context("ICMPv6 socket")?;
    let started = Instant::now();
    let swim_auth = pc.peer_auth.clone();
    let mut sh = Shell {
        proxy: Proxy::new(pc),
        swim: Membership::new(
            cfg.me,
            fast_config(cfg.cluster_size),
            cfg.seed ^ 0x5157,
            &swim_auth,
        ),
        engine: engine.handle.clone(),
        table_errors: 0,
        send_errors: 0,
        engine_stats: None,
        peer,
        swim_sock,
        icmp,
        pings: HashMap::new(),
        ping_seq: 0,
        events: Vec::new(),
        started,
    };
    for p in &cfg.peers {
        if *p != cfg.me {
            sh.swim.announce(started, *p);
        }
    }
    sh.drain(started).await;
    tracing::info!(me = %cfg.me, tun = %cfg.tun, interfaces = ?engine.interfaces, "pias-proxy running");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut buf_icmp = vec![0u8; 2048];
    let mut buf_peer = vec![0u8; 4096];
    let mut buf_swim = vec![0u8; 4096];
    let mut status_tick = tokio::time::interval(Duration::from_millis(200));
    let mut usage_tick = tokio::time::interval(Duration::from_millis(100));
    let mut rtt_tick = tokio::time::interval(cfg.rtt_interval());
    loop {
        let now = Instant::now();
        let deadline = [sh.proxy.poll_timeout(), sh.swim.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(1));
        tokio::select! {
            p = engine.punts.recv() => {
                match p {
                    Some(Punt::Proxy(p)) => {
                        sh.proxy.on_punt(p.received, p.packet, p.tunnel.map(|t| t.src));
                    }
                    Some(_) => {}
                    None => anyhow::bail!("the tunnel engine stopped"),
                }
            }
            r = sh.icmp.readable() => {
                let mut g = r?;
                if let Ok(Ok((n, src))) = g.try_io(|fd| recv_from(fd.get_ref(), &mut buf_icmp)) {
                    let m = buf_icmp[..n].to_vec();
                    sh.on_icmp(Instant::now(), &m, src);
                }
            }
            r = sh.peer.recv_from(&mut buf_peer) => {
                if let Ok((n, SocketAddr::V6(src))) = r {
                    let m = buf_peer[..n].to_vec();
                    sh.proxy.on_control(Instant::now(), (*src.ip(), src.port()), (cfg.me, PEER_PORT), &m);
                }
            }
            r = sh.swim_sock.recv_from(&mut buf_swim) => {
                if let Ok((n, SocketAddr::V6(src))) = r {
                    let m = buf_swim[..n].to_vec();
                    sh.swim.handle_data(Instant::now(), *src.ip(), &m);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                sh.proxy.handle_timeout(now);
                sh.swim.handle_timeout(now);
            }
            _ = usage_tick.tick() => {
                let usage = sh.engine.proxy_usage().await.context("engine usage")?;
                sh.proxy.engine_usage(Instant::now(), &usage);
            }
            _ = rtt_tick.tick() => {
                let now = Instant::now();
                let live = sh.swim.live();
                for p in &live {
                    sh.send_ping(*p, now);
                }
                sh.proxy.advertise_rtts(now);
                // Bootstrap until every configured peer was seen (an
                // announce sent before the IGP converged is lost).
                for p in cfg.peers.iter().filter(|p| **p != cfg.me && !live.contains(p)) {
                    sh.swim.announce(now, *p);
                }
            }
            _ = status_tick.tick() => {
                sh.engine_stats = sh.engine.stats().await.ok();
                if let Some(path) = &status {
                    let tmp = path.with_extension("tmp");
                    let text = serde_json::to_string_pretty(&sh.status(Instant::now()))?;
                    std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)).context("status file")?;
                }
            }
            _ = term.recv() => {
                tracing::info!("SIGTERM: leaving the SWIM cluster");
                sh.swim.leave(Instant::now());
                sh.drain(Instant::now()).await;
                return Ok(());
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        sh.drain(Instant::now()).await;
    }
}
