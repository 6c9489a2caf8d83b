//! A target that decapsulates (issue 6 item 5, "JAP -> target by tunnel
//! when the target can decapsulate"): T1 joins a group with `can_decap`,
//! so its JAP tunnels the client's original packet (`AC:p -> AA:g`,
//! unchanged) to T1 instead of translating it, and T1 tunnels its replies
//! (`AA:g -> AC:p`) back to the JAP, which forwards them to the client.
//!
//! T1's side is the same tunnel engine a Mobile IPv6 member runs for its
//! home address (RFC 6275 11.3.1, 11.3.3): `AA` is a local home address on
//! T1 with a reverse tunnel to the JAP, so the engine accepts tunnels from
//! the JAP whose inner destination is `AA`, and sends what leaves from `AA`
//! back through that tunnel. The JAP's side is its NAT binding in tunnel
//! mode (`NatBinding::tunnel_from`). T1 knows its JAP here from the lab's
//! routing (P4); a deployment would learn it from the tunnel's source.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use mip6_anycast::engine::datapath::{
    Action as EngineAction, Engine, EngineConfig, EngineHandle, EngineIo, TableUpdate,
};
use mip6_anycast::engine::netlink::Netlink;
use mip6_anycast::engine::steer::{Steering, SteeringConfig};
use pias_proxy::group::GroupConfig;
use pias_proxy::wire::{AckStatus, JoinOptions};

use super::agents::{Client, Target, reply_for};
use super::{ANYCAST, Run, host_addr, report};

/// Port of the tunnel-mode group (`AA:5301`).
pub(super) const DECAP_PORT: u16 = 5301;

/// The engine on T1 (stopped and its steering removed by [`Decap::stop`]).
struct Decap {
    worker: mip6_anycast::engine::netns::NetnsWorker,
    handle: EngineHandle,
    task: tokio::task::JoinHandle<mip6_anycast::engine::datapath::EngineExit>,
}

fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

impl Decap {
    fn start(run: &Run, ifname: String, t1: Ipv6Addr, jap: Ipv6Addr) -> anyhow::Result<Decap> {
        let worker = run.lab.worker("T1")?;
        let setup = worker.spawn(async move {
            let nl = Netlink::current()?;
            let (steering, tun) =
                Steering::install(&nl, SteeringConfig::new("pdec0", &[ifname.as_str()])).await?;
            let io = EngineIo::from_steering(steering, tun)?;
            let running = Engine::start(io, EngineConfig::default())?;
            running
                .handle
                .update_all(vec![
                    TableUpdate::AddLocalAddress { addr: t1 },
                    TableUpdate::AddLocalHomeAddress { hoa: ANYCAST },
                    TableUpdate::AddReverseTunnel {
                        hoa: ANYCAST,
                        coa: t1,
                        home_agent: jap,
                    },
                ])
                .await?;
            // The punts (none expected) are dropped with the receiver.
            drop(running.punts);
            anyhow::Ok((running.handle, running.task))
        });
        let (handle, task) = block_on(setup)?.context("engine task")??;
        Ok(Decap {
            worker,
            handle,
            task,
        })
    }

    fn stats(&self) -> anyhow::Result<mip6_anycast::engine::datapath::EngineStats> {
        let h = self.handle.clone();
        Ok(block_on(
            self.worker.spawn(async move { h.stats().await }),
        )???)
    }

    fn stop(self) -> anyhow::Result<()> {
        let Decap {
            worker,
            handle,
            task,
        } = self;
        let done = worker.spawn(async move {
            let _ = handle.shutdown().await;
            let exit = task.await?;
            if let Some(s) = exit.steering {
                s.remove().await?;
            }
            anyhow::Ok(())
        });
        block_on(done)?.context("engine task")??;
        Ok(())
    }
}

/// Runs the phase: T1 joins `g` (`AA:DECAP_PORT`) with `can_decap`, serves
/// it on `[AA]:DECAP_PORT`, and C1 probes it through the proxies.
pub(super) fn tunnel_target(
    run: &Run,
    t1: &mut Target,
    g: &GroupConfig,
    jap: Ipv6Addr,
    c1_addr: Ipv6Addr,
) -> anyhow::Result<report::TunnelTarget> {
    let lab = run.lab;
    let t1_addr = host_addr(lab, "T1")?;
    let (ifname, _) = lab.interface("T1", "t1").context("T1's link")?;
    let ns = run.ns("T1")?;
    let mut r = report::TunnelTarget {
        // Join first: once AA is local on T1, T1's own packets to AA stay home.
        joined: t1.join_with(
            g,
            DECAP_PORT,
            JoinOptions {
                can_decap: true,
                exclude_self: false,
            },
        )? == AckStatus::Ok,
        ..Default::default()
    };
    anyhow::ensure!(r.joined, "T1's tunnel-mode join");
    let aa = format!("{ANYCAST}/128");
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(["-n", &ns])
            .args(args)
            .status()
    };
    anyhow::ensure!(
        ip(&["addr", "add", &aa, "dev", "lo", "nodad"])?.success(),
        "adding AA on T1"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let result = (|| {
        let decap = Decap::start(run, ifname.to_string(), t1_addr, jap)?;
        let sock = lab.run_in("T1", || {
            UdpSocket::bind(SocketAddrV6::new(ANYCAST, DECAP_PORT, 0, 0))
        })??;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let responder = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let _ = sock.send_to(&reply_for(&buf[..n], "T1"), from);
                    }
                }
            })
        };
        let dst = SocketAddrV6::new(ANYCAST, DECAP_PORT, 0, 0);
        let c1 = Client::new(lab, "C1", c1_addr, 40005, dst)?;
        let before = super::engine_carried(run);
        let mut answered = 0;
        for i in 0..10 {
            if c1.probe(&format!("PIASDECAP{i}"), Duration::from_millis(500)) == Some("T1".into()) {
                answered += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(400));
        let after = super::engine_carried(run);
        let s = decap.stats();
        stop.store(true, Ordering::Relaxed);
        let _ = responder.join();
        decap.stop()?;
        let s = s?;
        r.probes = 10;
        r.answered = answered;
        r.jap_tunnelled = after.translated_to_target - before.translated_to_target;
        r.jap_replies = after.replies_translated - before.replies_translated;
        r.target_decapsulated = s.action(EngineAction::ReverseTunnelDecapsulated).packets;
        r.target_encapsulated = s.action(EngineAction::ReverseTunnelEncapsulated).packets;
        r.delivered = answered > 0 && r.target_decapsulated > 0 && r.target_encapsulated > 0;
        anyhow::Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = ip(&["addr", "del", &aa, "dev", "lo"]);
    result?;
    Ok(r)
}
