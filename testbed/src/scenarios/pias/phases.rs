//! The scenario's measured phases: affinity while the IAP changes, a
//! graceful leave with a live connection, target, JAP and IAP failures.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pias_proxy::group::GroupConfig;

use super::agents::{self, Client, SERVICE_PORT, Target};
use super::{ANYCAST, PiasReport, Run, host_addr, report, wait_for};

/// Target failover: the target serving a UDP flow of C1 loses its link.
pub(super) fn target_failure(
    run: &Run,
    r: &mut PiasReport,
    c1_addr: Ipv6Addr,
    dst: SocketAddrV6,
) -> anyhow::Result<()> {
    let lab = run.lab;

    // Target failover: the target serving C1's UDP flow loses its link.
    let c1f = Client::new(lab, "C1", c1_addr, 40002, dst)?;
    let victim = c1f
        .probe("PIASTF0", Duration::from_secs(2))
        .context("probe before target failure")?;
    let (ifname, _) = lab
        .interface(&victim, &victim.to_lowercase())
        .context("victim link")?;
    let ns = run.ns(&victim)?;
    std::process::Command::new("ip")
        .args(["-n", &ns, "link", "set", "dev", ifname, "down"])
        .status()?;
    let v = victim.clone();
    let (d, t) = c1f
        .until(
            "PIASTF",
            Duration::from_millis(20),
            Duration::from_secs(10),
            |t| t != v,
        )
        .context("no target failover")?;
    r.target_failover_ms = Some(d.as_secs_f64() * 1e3);
    r.target_failover = Some(format!("{victim} -> {t}"));

    Ok(())
}

/// JAP failover: T2 has joined through P1; P4 (JAP of T1, T3) is killed.
pub(super) fn jap_failure(
    run: &Run,
    r: &mut PiasReport,
    c1_addr: Ipv6Addr,
    dst: SocketAddrV6,
) -> anyhow::Result<()> {
    let (before, d, t) = kill_and_probe(run, "P4", c1_addr, 40003, dst, "PIASJF")?;
    r.jap_failover_ms = Some(d.as_secs_f64() * 1e3);
    r.jap_failover = Some(format!("{} -> {t}", before.unwrap_or_default()));
    Ok(())
}

/// Probes from C1 (source port `port`), kills `proxy` with SIGKILL and
/// probes every 20 ms until a target answers again (15 s at most).
/// Returns the target before, the time from the kill, and the target after.
fn kill_and_probe(
    run: &Run,
    proxy: &str,
    c1_addr: Ipv6Addr,
    port: u16,
    dst: SocketAddrV6,
    tag: &str,
) -> anyhow::Result<(Option<String>, Duration, String)> {
    let c1 = Client::new(run.lab, "C1", c1_addr, port, dst)?;
    let before = c1.probe(&format!("{tag}0"), Duration::from_secs(2));
    run.proxies
        .get(proxy)
        .context(proxy.to_string())?
        .signal(nix::sys::signal::Signal::SIGKILL)?;
    let (d, t) = c1
        .until(
            tag,
            Duration::from_millis(20),
            Duration::from_secs(15),
            |_| true,
        )
        .with_context(|| format!("no failover after {proxy} was killed"))?;
    Ok((before, d, t))
}

/// Proxy (IAP) failover: P1 is killed; OSPF moves C1 to P2.
pub(super) fn proxy_failure(
    run: &Run,
    r: &mut PiasReport,
    c1_addr: Ipv6Addr,
    dst: SocketAddrV6,
) -> anyhow::Result<()> {
    let (before, d, t) = kill_and_probe(run, "P1", c1_addr, 40004, dst, "PIASPF")?;
    before.context("probe before proxy failure")?;
    r.proxy_failover_ms = Some(d.as_secs_f64() * 1e3);
    r.proxy_failover = Some(format!(
        "P1 -> {} (target {t})",
        run.route_via("R1", ANYCAST).unwrap_or_default().trim()
    ));
    Ok(())
}

/// A graceful leave with live connections (issue 6 item 7): the target
/// serving C1's TCP connection freezes and dumps it (`tcp-handoff`), the
/// other target of the same JAP restores it on its own address, the donor
/// tells the JAP (signed Handoff) so the NAT binding follows, the restored
/// socket goes live with the segments captured meanwhile replayed, and the
/// donor leaves the group. The client's connection must carry on.
pub(super) fn live_handoff(
    run: &Run,
    targets: &mut BTreeMap<&str, Target>,
    g_tcp: &GroupConfig,
    g_udp: &GroupConfig,
) -> anyhow::Result<report::Handoff> {
    use tcp_handoff::{FreezeOptions, RestoreOptions, freeze, replay, restore_paused};
    let lab = run.lab;
    let mut h = report::Handoff::default();
    let c1 = host_addr(lab, "C1")?;
    let dst = SocketAddrV6::new(ANYCAST, g_tcp.group.port, 0, 0);
    let mut s = lab.run_in("C1", move || {
        let sock = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddrV6::new(c1, 0, 0, 0).into())?;
        sock.connect_timeout(&dst.into(), Duration::from_secs(3))?;
        Ok::<TcpStream, std::io::Error>(sock.into())
    })??;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let donor = tcp_echo(&mut s, "handoff-before").context("echo before the handoff")?;
    let acceptor = if donor == "T1" { "T3" } else { "T1" };
    h.from = donor.clone();
    h.to = acceptor.to_string();
    let to_addr = host_addr(lab, acceptor)?;
    let conn = targets
        .get(donor.as_str())
        .and_then(Target::take_newest_connection)
        .context("the donor's connection")?;
    let t0 = Instant::now();
    let mut frozen = lab.run_in(&donor, move || freeze(conn, &FreezeOptions::default()))??;
    let state = frozen.dump()?;
    let local = std::net::SocketAddr::V6(SocketAddrV6::new(to_addr, SERVICE_PORT, 0, 0));
    let paused = lab.run_in(acceptor, move || {
        restore_paused(
            &state,
            &RestoreOptions {
                local: Some(local),
                ..RestoreOptions::default()
            },
        )
    })??;
    let status = targets
        .get_mut(donor.as_str())
        .context("donor")?
        .handoff(g_tcp, to_addr)?;
    h.nat_followed = status == pias_proxy::wire::AckStatus::Ok;
    let late = frozen.close_silently()?;
    let live = lab.run_in(acceptor, move || -> anyhow::Result<_> {
        let live = paused.activate()?;
        replay(&live.stream, &late)?;
        Ok(live.stream)
    })??;
    h.handoff_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
    targets.get_mut(acceptor).context("acceptor")?.adopt(live);
    // The donor leaves the TCP group (it stays in the UDP group).
    let d = targets.get_mut(donor.as_str()).context("donor")?;
    d.resume_joining(vec![g_udp.clone()]);
    h.left = d.membership(g_tcp, SERVICE_PORT, true)? == pias_proxy::wire::AckStatus::Ok;
    h.after = tcp_echo(&mut s, "handoff-after");
    h.kept = h.nat_followed && h.left && h.after.as_deref() == Some(acceptor);
    Ok(h)
}

fn tcp_echo(s: &mut TcpStream, msg: &str) -> Option<String> {
    s.write_all(msg.as_bytes()).ok()?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok()?;
    agents::target_of(&buf[..n])
}

pub(super) fn affinity(run: &Run, port: u16) -> anyhow::Result<report::Affinity> {
    let lab = run.lab;
    let c1 = host_addr(lab, "C1")?;
    let mut a = report::Affinity::default();
    let dst = SocketAddrV6::new(ANYCAST, port, 0, 0);
    let mut s = lab.run_in("C1", move || {
        let sock = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddrV6::new(c1, 0, 0, 0).into())?;
        sock.connect_timeout(&dst.into(), Duration::from_secs(3))?;
        Ok::<TcpStream, std::io::Error>(sock.into())
    })??;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    a.before = tcp_echo(&mut s, "affinity-before");
    a.iap_before = run.route_via("R1", ANYCAST)?.trim().to_string();
    run.birdc("P1", &["disable", "announce"])?;
    let dev = |p: &str| lab.interface("R1", p).map(|(n, _)| format!("dev {n} "));
    let p2 = dev("p2").context("R1-P2 link")?;
    wait_for(
        "R1 routing the anycast prefix to P2",
        Duration::from_secs(15),
        || run.route_via("R1", ANYCAST).is_ok_and(|v| v.contains(&p2)),
    )?;
    a.iap_after = run.route_via("R1", ANYCAST)?.trim().to_string();
    a.after = tcp_echo(&mut s, "affinity-after");
    a.peer_answered = wait_for("P2's status file", Duration::from_millis(1500), || {
        run.status("P2")
            .and_then(|s| s["events"].as_array().cloned())
            .is_some_and(|ev| ev.iter().any(|e| e["what"] == "affinity_from_peer"))
    })
    .is_ok();
    run.birdc("P1", &["enable", "announce"])?;
    let p1 = dev("p1").context("R1-P1 link")?;
    wait_for(
        "R1 routing the anycast prefix back to P1",
        Duration::from_secs(15),
        || run.route_via("R1", ANYCAST).is_ok_and(|v| v.contains(&p1)),
    )?;
    Ok(a)
}

/// Port of the iperf3 group (`AA:5201`, T1's iperf3 server).
pub(super) const IPERF_PORT: u16 = 5201;

/// Bulk TCP from C1: to T1 directly, then to the group (T1 its only
/// target), 3 s each; the engines' counters before and after show who
/// carried the PIAS run.
pub(super) fn throughput(
    run: &Run,
    t1: &mut Target,
    g: &GroupConfig,
) -> anyhow::Result<report::Throughput> {
    use crate::scenarios::bench::iperf;
    let lab = run.lab;
    let server = lab.spawn_named(
        "T1",
        "iperf3-server",
        "iperf3",
        ["-s", "-p", &IPERF_PORT.to_string()],
        std::iter::empty::<(&str, &str)>(),
    )?;
    let result = (|| {
        anyhow::ensure!(
            t1.membership(g, IPERF_PORT, false)? == pias_proxy::wire::AckStatus::Ok,
            "T1 joining the iperf3 group"
        );
        let t1_addr = host_addr(lab, "T1")?;
        wait_for("iperf3 server", Duration::from_secs(5), || {
            TcpStream::connect_timeout(
                &std::net::SocketAddr::V6(SocketAddrV6::new(t1_addr, IPERF_PORT, 0, 0)),
                Duration::from_millis(200),
            )
            .is_ok()
        })
        .ok();
        let direct = iperf::run(lab, "C1", t1_addr, 3.0, 1, "pias-direct")?;
        let before = super::engine_carried(run);
        let pias = iperf::run(lab, "C1", ANYCAST, 3.0, 1, "pias-group")?;
        // Status files are rewritten every 200 ms.
        std::thread::sleep(Duration::from_millis(400));
        let after = super::engine_carried(run);
        let engine = |e: &report::EngineCarried| {
            e.ingress_tunnelled + e.translated_to_target + e.replies_translated
        };
        let _ = t1.membership(g, IPERF_PORT, true);
        Ok(report::Throughput {
            direct_gbit_s: direct.gbit_s,
            pias_gbit_s: pias.gbit_s,
            ratio: if direct.gbit_s > 0.0 {
                pias.gbit_s / direct.gbit_s
            } else {
                0.0
            },
            pias_retransmits: pias.retransmits,
            engine_packets: engine(&after).saturating_sub(engine(&before)),
            control_plane_packets: after
                .control_plane_transmitted
                .saturating_sub(before.control_plane_transmitted),
            json: [direct.json, pias.json]
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        })
    })();
    let _ = server.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = server.wait();
    result
}
