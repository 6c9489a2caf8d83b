//! `testbed demo --kernel-cn`: the demo with the client C as a `vm` host,
//! a QEMU guest whose stock Debian kernel does the route optimization
//! (`CONFIG_IPV6_MIP6`): `mip6-cn --datapath auto` inside it probes the
//! kernel, keeps the signalling in user space and programs `route2` /
//! `hao` states through NETLINK_XFRM. The workload is
//! `mip6-echo-probe` in the guest; the host drives it and reads its
//! results, the agent's status and `ip xfrm` through the serial console.
//!
//! Same steps and report fields as the namespace demo, plus
//! `client_datapath` (what the guest's agent chose: `xfrm`),
//! `guest_xfrm_state` (`ip xfrm state` while route-optimized) and
//! `guest` (kernel, boot time, policies, the tables after the agent
//! stopped, logs).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    DemoOptions, DemoReport, REGISTRATION_TIMEOUT, Roles, SAMPLE_GAP, SETTLE, check_captures, get,
    ha_link_packets, interrupted, load_topology, record_stop, roles, wait_route_optimized,
};
use crate::lab::find_workspace_binary;
use crate::lab::signals::TerminationSignals;
use crate::scenarios::Session;
use crate::scenarios::daemons::wait_for;
use crate::scenarios::probe::median;
use crate::topology::{DaemonConfig, DaemonKind, HostKind, Topology};
use crate::vm::{Vm, VmOptions};
use mip6_anycast::daemon::system::unix_now;

/// The agent's config file in the guest.
const GUEST_CONFIG: &str = "/etc/mip6-cn.toml";
/// Serial command timeout.
const CMD: Duration = Duration::from_secs(10);

/// The guest's `mip6-cn` config: the topology's inline table for it with
/// a state directory in the guest.
fn guest_config(topo: &Topology, host: &str) -> anyhow::Result<String> {
    let d = topo
        .daemons
        .iter()
        .find(|d| d.kind == DaemonKind::Mip6Cn && d.host == host)
        .ok_or_else(|| anyhow::anyhow!("no mip6-cn daemon on {host}"))?;
    let mut t = match &d.config {
        Some(DaemonConfig::Inline(t)) => t.clone(),
        _ => anyhow::bail!("{}: the kernel-cn demo needs an inline config", d.name()),
    };
    let daemon = t
        .entry("daemon")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(d) = daemon.as_table_mut() {
        d.insert("state_dir".into(), "/tmp/mip6-cn".into());
    }
    Ok(toml::to_string(&t)?)
}

/// Makes `host` a `vm` host and takes its `mip6-cn` out of the lab's
/// daemons (it runs in the guest).
fn guestify(topo: &mut Topology, host: &str) -> anyhow::Result<()> {
    let h = topo
        .hosts
        .iter_mut()
        .find(|h| h.name == host)
        .ok_or_else(|| anyhow::anyhow!("no host {host}"))?;
    h.kind = HostKind::Vm;
    h.lo.clear();
    topo.daemons
        .retain(|d| !(d.host == host && d.kind == DaemonKind::Mip6Cn));
    topo.validate()?;
    Ok(())
}

fn json_of(vm: &mut Vm, cmd: &str) -> Result<Value, String> {
    let out = vm.run(cmd, CMD)?;
    serde_json::from_str(&out).map_err(|e| format!("`{cmd}`: not JSON ({e}): {out}"))
}

/// The guest's binding for X: (correspondent, care-of address).
fn guest_binding(vm: &mut Vm, roles: &Roles) -> Option<(String, String)> {
    let b = json_of(vm, "mip6-cn ctl bindings").ok()?;
    b.as_array()?.iter().find_map(|e| {
        (e.get("hoa")?.as_str()? == roles.x.to_string()).then(|| {
            Some((
                e.get("cn")?.as_str()?.to_string(),
                e.get("coa")?.as_str()?.to_string(),
            ))
        })?
    })
}

fn samples(v: &Value, key: &str) -> Vec<f64> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn errors_of(v: &Value) -> Vec<String> {
    v.get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `mip6-cn --datapath auto` in the guest and waits for its
/// control socket; returns its `ctl status`.
fn start_agent(vm: &mut Vm) -> anyhow::Result<Value> {
    vm.run(
        &format!("rm -f /tmp/mip6-cn.exit; (mip6-cn --config {GUEST_CONFIG} --datapath auto --log-level info >> /tmp/mip6-cn.log 2>&1 & echo $! > /tmp/mip6-cn.pid; wait $!; echo $? > /tmp/mip6-cn.exit) &"),
        CMD,
    )
    .map_err(anyhow::Error::msg)?;
    wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        json_of(vm, "mip6-cn ctl status").ok()
    })
    .ok_or_else(|| {
        let log = vm.run("cat /tmp/mip6-cn.log", CMD).unwrap_or_default();
        anyhow::anyhow!("mip6-cn did not start in the guest: {log}")
    })
}

/// SIGTERM to the guest's agent; its exit status.
fn stop_agent(vm: &mut Vm) -> Result<String, String> {
    vm.run(
        "kill -TERM $(cat /tmp/mip6-cn.pid); for i in $(seq 1 100); do [ -f /tmp/mip6-cn.exit ] && break; sleep 0.05; done; cat /tmp/mip6-cn.exit",
        CMD,
    )
    .map(|s| s.trim().to_string())
}

/// A restarted agent takes the kernel's Mobile IPv6 tables over: a
/// stale `route2` state (as a crashed run would leave) is gone once it
/// runs, and it stops cleanly again.
fn restart_takes_over(vm: &mut Vm) -> Result<Value, String> {
    let stale = "2001:db8:ffff::99";
    vm.run(
        &format!("/usr/sbin/ip xfrm state add src ::1 dst ::2 proto route2 mode ro coa {stale}"),
        CMD,
    )?;
    let before = vm.run("/usr/sbin/ip xfrm state", CMD)?;
    if !before.contains(stale) {
        return Err(format!("the stale state was not added: {before}"));
    }
    start_agent(vm).map_err(|e| e.to_string())?;
    let running = vm.run("/usr/sbin/ip xfrm state", CMD)?;
    let exit = stop_agent(vm)?;
    let after = vm.run("/usr/sbin/ip xfrm state; /usr/sbin/ip xfrm policy", CMD)?;
    if running.contains(stale) {
        return Err(format!("the restarted agent kept a stale state: {running}"));
    }
    if exit != "0" || !after.trim().is_empty() {
        return Err(format!("second stop: exit {exit}, left: {after}"));
    }
    Ok(json!({ "stale_state_removed": true, "exit": exit }))
}

/// Polls a JSON file the guest's probe writes.
fn wait_file(vm: &mut Vm, path: &str, limit: Duration) -> Option<Value> {
    wait_for(limit, Duration::from_millis(50), || {
        json_of(vm, &format!("cat {path} 2>/dev/null")).ok()
    })
}

pub(super) fn run_inner(
    opts: &DemoOptions,
    signals: Option<&TerminationSignals>,
    report: &mut DemoReport,
) -> anyhow::Result<()> {
    let mut topo = load_topology(opts)?;
    let roles = Roles::of(&topo).map_err(anyhow::Error::msg)?;
    let keys = roles::mn_ha_keys(&topo);
    if let Some((via, ro)) = roles::expected_rtts(&topo, &roles) {
        report.expected_rtt_via_ha_ms = Some(via);
        report.expected_rtt_ro_ms = Some(ro);
    }
    let c_host = roles.c.1.clone();
    let config = guest_config(&topo, &c_host)?;
    guestify(&mut topo, &c_host)?;
    let mut programs = Vec::new();
    for name in ["mip6-cn", "mip6-echo-probe"] {
        let p = match &opts.base.bin_dir {
            Some(d) => Some(d.join(name)).filter(|p| p.is_file()),
            None => find_workspace_binary(name),
        };
        programs.push(p.ok_or_else(|| anyhow::anyhow!("{name} is not built"))?);
    }
    let t0 = Instant::now();
    let session = opts.base.start(&mut topo)?;
    report.lab = opts.base.lab_info(&session);
    let pcaps: Vec<(String, std::path::PathBuf)> = session
        .lab
        .links()
        .iter()
        .filter_map(|l| Some((l.name.clone(), l.pcap.clone()?)))
        .collect();
    let vm_opts = VmOptions {
        programs,
        files: vec![(
            GUEST_CONFIG.trim_start_matches('/').to_string(),
            config.into_bytes(),
        )],
        ..VmOptions::default()
    };
    let t_vm = Instant::now();
    let mut vm = Vm::start(&session.lab, &c_host, &vm_opts)?;
    let mut guest = json!({
        "kernel": vm.kernel_release,
        "boot_s": vm.boot_time.as_secs_f64(),
        "net_ready_s": vm.net_ready_time.as_secs_f64(),
    });
    report
        .timings
        .insert("guest_boot_s".into(), vm.boot_time.as_secs_f64());
    report
        .timings
        .insert("guest_net_ready_s".into(), vm.net_ready_time.as_secs_f64());
    let window = measure(
        &session, &mut vm, &roles, opts, signals, report, t0, &mut guest,
    );
    // Snapshots, then the contact node stops first: it deregisters at
    // the client, whose agent must remove the binding's states.
    for name in [&roles.k.0, &roles.ha.0] {
        match session.ctl(name, "status") {
            Ok(v) => {
                report.daemons.insert(name.clone(), v);
            }
            Err(e) => report.error(format!("{name} ctl status: {e}")),
        }
        if let Ok(v) = session.ctl(name, "engine") {
            report.engines.insert(name.clone(), v);
        }
    }
    let stop_timeout = Duration::from_secs(8);
    let k_status = session
        .stop_daemon(&roles.k.0, stop_timeout)
        .map_or_else(|e| format!("error: {e}"), |s| s.to_string());
    if !k_status.contains("exit status: 0") {
        report.error(format!(
            "{} did not exit cleanly after SIGTERM: {k_status}",
            roles.k.0
        ));
    }
    report.daemon_exits.insert(roles.k.0.clone(), k_status);
    match vm.run("/usr/sbin/ip xfrm state", CMD) {
        Ok(after) => {
            if after.contains("proto route2") {
                report.error(format!(
                    "the binding's states outlived the deregistration: {after}"
                ));
            }
            guest["xfrm_after_deregistration"] = json!(after);
        }
        Err(e) => report.error(e),
    }
    // The agent stops (SIGTERM) and must leave no XFRM entry behind.
    match stop_agent(&mut vm) {
        Ok(s) if s == "0" => {
            report
                .daemon_exits
                .insert(roles.c.0.clone(), "exit status: 0".into());
        }
        Ok(s) => report.error(format!("mip6-cn in the guest exited with {s}")),
        Err(e) => report.error(format!("stopping mip6-cn in the guest: {e}")),
    }
    match vm.run("/usr/sbin/ip xfrm state; /usr/sbin/ip xfrm policy", CMD) {
        Ok(after) => {
            if after.contains("proto") || after.contains("dir ") {
                report.error(format!("XFRM entries left after mip6-cn stopped: {after}"));
            }
            guest["xfrm_after_stop"] = json!(after);
        }
        Err(e) => report.error(e),
    }
    match restart_takes_over(&mut vm) {
        Ok(v) => guest["restart"] = v,
        Err(e) => report.error(format!("restart: {e}")),
    }
    guest["mip6_cn_log"] = json!(
        vm.run("tail -n 40 /tmp/mip6-cn.log", CMD)
            .unwrap_or_default()
    );
    guest["probe_log"] = json!(vm.run("cat /tmp/probe.log", CMD).unwrap_or_default());
    report.guest = Some(guest);
    drop(vm);
    report
        .timings
        .insert("guest_total_s".into(), t_vm.elapsed().as_secs_f64());
    let (stopped, teardown) = session.stop_in_order(&[roles.ha.0.as_str()], stop_timeout);
    record_stop(report, stopped, teardown);
    let window = window?;
    check_captures(&pcaps, &keys, window, &roles, report);
    Ok(())
}

/// The demo's steps 2 to 5 with the client in the guest.
#[allow(clippy::too_many_arguments)]
fn measure(
    session: &Session,
    vm: &mut Vm,
    roles: &Roles,
    opts: &DemoOptions,
    signals: Option<&TerminationSignals>,
    report: &mut DemoReport,
    t0: Instant,
    guest: &mut Value,
) -> anyhow::Result<Option<(Duration, Duration)>> {
    let (c, k, ha) = (&roles.c.0, &roles.k.0, &roles.ha.0);
    let status = start_agent(vm)?;
    report.client_datapath = status
        .get("datapath")
        .and_then(Value::as_str)
        .map(str::to_string);
    if report.client_datapath.as_deref() != Some("xfrm") {
        report.error(format!(
            "the guest's mip6-cn chose datapath {:?}, not xfrm",
            report.client_datapath
        ));
    }
    let registered = wait_for(REGISTRATION_TIMEOUT, Duration::from_millis(50), || {
        let s = session.ctl(k, "status").ok()?;
        (get(&s, &["home_registration", "registered"])? == &Value::Bool(true)).then_some(())
    });
    if registered.is_none() {
        anyhow::bail!(
            "the contact node did not register at the home agent within {REGISTRATION_TIMEOUT:?}"
        );
    }
    report
        .timings
        .insert("registration_s".into(), t0.elapsed().as_secs_f64());
    interrupted(signals)?;

    // Through the home agent, from the guest.
    let t_connect = Instant::now();
    vm.run(
        &format!(
            "rm -f /tmp/go /tmp/phase1.json /tmp/phase2.json; mip6-echo-probe --to [{}]:{} --samples {} --gap-ms {} --go /tmp/go --out /tmp > /tmp/probe.log 2>&1 &",
            roles.x,
            roles.echo_port,
            opts.samples,
            SAMPLE_GAP.as_millis()
        ),
        CMD,
    )
    .map_err(anyhow::Error::msg)?;
    let Some(p1) = wait_file(vm, "/tmp/phase1.json", Duration::from_secs(30)) else {
        let diag = vm
            .run("ps; ls -la /tmp; cat /tmp/probe.log", CMD)
            .unwrap_or_else(|e| e);
        anyhow::bail!("the guest's probe wrote no phase 1 result: {diag}");
    };
    let no_binding_yet = guest_binding(vm, roles).is_none();
    let errs = errors_of(&p1);
    if errs.is_empty() {
        let v = samples(&p1, "via_ha");
        report.rtt_via_ha_ms = median(&v);
        report.samples_ms.insert("via_ha".into(), v);
        if let Some(ms) = p1.get("connect_ms").and_then(Value::as_f64) {
            report.timings.insert("connect_via_ha_ms".into(), ms);
        }
        if no_binding_yet {
            report.tcp_via_home_agent_ok = true;
        } else {
            report.error("route optimization started before the samples through the home agent were taken (raise route_optimization.delay_s)");
        }
    } else {
        for e in errs {
            report.error(e);
        }
    }
    interrupted(signals)?;

    // Route optimization.
    if !wait_route_optimized(
        session,
        k,
        opts,
        report,
        t_connect,
        Duration::from_millis(50),
        || guest_binding(vm, roles).map(|b| b.0),
    ) {
        return Ok(None);
    }
    std::thread::sleep(SETTLE);
    interrupted(signals)?;

    let start = unix_now();
    let before = ha_link_packets(session, roles);
    vm.run("touch /tmp/go", CMD).map_err(anyhow::Error::msg)?;
    let p2 = wait_file(vm, "/tmp/phase2.json", Duration::from_secs(30))
        .ok_or_else(|| anyhow::anyhow!("the guest's probe wrote no phase 2 result"))?;
    let end = unix_now();
    report.ha_link_packets_in_window = ha_link_packets(session, roles).saturating_sub(before);
    for e in errors_of(&p2) {
        report.error(e);
    }
    let same = samples(&p2, "ro_same_connection");
    report.rtt_ro_ms = median(&same);
    report.samples_ms.insert("ro_same_connection".into(), same);
    let new = samples(&p2, "ro_new_connection");
    report.rtt_ro_new_connection_ms = median(&new);
    report.samples_ms.insert("ro_new_connection".into(), new);
    if let Some(ms) = p2.get("connect_ro_ms").and_then(Value::as_f64) {
        report.timings.insert("connect_ro_ms".into(), ms);
    }
    // The kernel's tables while route-optimized.
    match vm.run("/usr/sbin/ip xfrm state", CMD) {
        Ok(s) => {
            if !(s.contains("proto route2") && s.contains("proto hao")) {
                report.error(format!("no route2/hao state in the guest: {s}"));
            }
            report.guest_xfrm_state = Some(s);
        }
        Err(e) => report.error(e),
    }
    guest["xfrm_policy"] = json!(vm.run("/usr/sbin/ip xfrm policy", CMD).unwrap_or_default());
    match json_of(vm, "mip6-cn ctl status") {
        Ok(v) => {
            report.bu_accepted = v.get("bu_accepted").and_then(Value::as_u64).unwrap_or(0);
            report.daemons.insert(c.clone(), v);
        }
        Err(e) => report.error(e),
    }
    if let Ok(v) = json_of(vm, "mip6-cn ctl engine") {
        report.engines.insert(c.clone(), v);
    }
    let binding = guest_binding(vm, roles);
    if binding.is_none() {
        report.error("the client's binding disappeared during the measurement");
    }
    let _ = ha;
    // A Home Address option without a binding: the guest's kernel drops
    // the packet and reports it (XFRM_MSG_REPORT); the agent answers
    // with a Binding Error (RFC 6275 9.3.1, 9.3.3).
    if let Some((cn, coa)) = binding {
        match unknown_hao(session, roles, vm, &cn, &coa) {
            Ok(v) => guest["unknown_hao"] = v,
            Err(e) => report.error(format!("Home Address option without a binding: {e}")),
        }
    }
    Ok(Some((start, end)))
}

/// A home address in X's prefix other than X.
fn other_home_address(x: std::net::Ipv6Addr) -> std::net::Ipv6Addr {
    let mut o = x.octets();
    o[15] = if o[15] == 0x99 { 0x98 } else { 0x99 };
    std::net::Ipv6Addr::from(o)
}

/// An ICMPv6 Echo Request from `coa` to `cn` with a Home Address option
/// (RFC 6275 6.3) for `hoa`.
fn hao_echo(coa: std::net::Ipv6Addr, cn: std::net::Ipv6Addr, hoa: std::net::Ipv6Addr) -> Vec<u8> {
    use mip6_anycast::wire::{HAO_DEST_OPTS_LEN, checksum, emit_hao_header, ip_proto};
    let icmp_len = 16;
    let mut p = vec![0u8; 40 + HAO_DEST_OPTS_LEN + icmp_len];
    p[0] = 0x60;
    let plen = u16::try_from(HAO_DEST_OPTS_LEN + icmp_len).unwrap_or(0);
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p[6] = ip_proto::DEST_OPTS;
    p[7] = 64;
    p[8..24].copy_from_slice(&coa.octets());
    p[24..40].copy_from_slice(&cn.octets());
    let _ = emit_hao_header(&mut p[40..], ip_proto::ICMPV6, &hoa);
    let icmp = &mut p[40 + HAO_DEST_OPTS_LEN..];
    icmp[0] = 128;
    icmp[4..8].copy_from_slice(&[0x6d, 0x69, 0, 1]);
    icmp[8..16].copy_from_slice(b"no-bind!");
    // The upper-layer checksum uses the home address (RFC 6275 6.3).
    let c = checksum::compute(&hoa, &cn, ip_proto::ICMPV6, icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

fn unknown_hao(
    session: &Session,
    roles: &Roles,
    vm: &mut Vm,
    cn: &str,
    coa: &str,
) -> Result<Value, String> {
    let cn: std::net::Ipv6Addr = cn.parse().map_err(|e| format!("{cn}: {e}"))?;
    let coa: std::net::Ipv6Addr = coa.parse().map_err(|e| format!("{coa}: {e}"))?;
    let hoa = other_home_address(roles.x);
    let before = json_of(vm, "mip6-cn ctl status")?;
    let count = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let packet = hao_echo(coa, cn, hoa);
    session
        .lab
        .run_in(&roles.k.1, move || {
            let s = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
            )?;
            let to = std::net::SocketAddrV6::new(cn, 0, 0, 0);
            s.send_to(&packet, &to.into()).map(|_| ())
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("sending from {}: {e}", roles.k.1))?;
    let after = wait_for(Duration::from_secs(5), Duration::from_millis(100), || {
        let v = json_of(vm, "mip6-cn ctl status").ok()?;
        (count(&v, "hao_without_binding") > count(&before, "hao_without_binding")
            && count(&v, "be_sent") > count(&before, "be_sent"))
        .then_some(v)
    })
    .ok_or("the agent sent no Binding Error (no XFRM report?)")?;
    Ok(json!({
        "coa": coa, "hoa": hoa, "cn": cn,
        "hao_without_binding": count(&after, "hao_without_binding"),
        "be_sent": count(&after, "be_sent"),
    }))
}
