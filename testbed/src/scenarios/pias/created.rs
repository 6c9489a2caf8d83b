//! The created-group phase: T2 (nearest proxy P1) asks P1 to create a
//! group for a URI from P1's block; P1 announces it, sealed under the
//! inter-proxy key, to every live proxy. P1 then withdraws its anycast
//! announcement, so T2's join reaches P2, which knows the group only from
//! that announcement: the join is acknowledged and P2's JAP table lists T2.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pias_proxy::auth;
use pias_proxy::group::{GroupAddr, GroupConfig, PROTO_UDP, Policy};
use pias_proxy::wire::{AckStatus, CONTROL_PORT, MessageRepr};

use super::agents::{self, SERVICE_PORT};
use super::{ANYCAST, CREATOR_KEY, PROXIES, Run, host_addr, report, wait_for};

const URI: &str = "pias://lab/created";

/// Sends `make(nonce)` to `dst`'s control port and waits for the
/// acknowledgement with that nonce (3 tries).
fn ask(
    sock: &UdpSocket,
    dst: Ipv6Addr,
    make: impl Fn(u64) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(GroupAddr, AckStatus)> {
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        let n = agents::nonce();
        sock.send_to(&make(n)?, SocketAddrV6::new(dst, CONTROL_PORT, 0, 0))?;
        let until = Instant::now() + Duration::from_millis(600);
        while Instant::now() < until {
            if let Ok(len) = sock.recv(&mut buf)
                && let Ok(MessageRepr::JoinAck {
                    group,
                    nonce,
                    status,
                }) = MessageRepr::from_bytes(&buf[..len])
                && nonce == n
            {
                return Ok((group, status));
            }
        }
    }
    anyhow::bail!("no acknowledgement from {dst}")
}

/// R1 routes the anycast prefix to proxy `p` (lower-case host name).
fn wait_r1_routes_to(run: &Run, p: &str) -> anyhow::Result<()> {
    let (dev, _) = run.lab.interface("R1", p).context("R1 link")?;
    let dev = format!("dev {dev} ");
    wait_for(
        &format!("R1 routing the anycast prefix to {p}"),
        Duration::from_secs(15),
        || run.route_via("R1", ANYCAST).is_ok_and(|v| v.contains(&dev)),
    )?;
    Ok(())
}

fn status_lists(run: &Run, proxy: &str, section: &str, group: &str) -> bool {
    run.status(proxy)
        .and_then(|s| s[section].as_array().cloned())
        .is_some_and(|a| a.iter().any(|e| e["group"] == group))
}

pub(super) fn created_group(run: &Run) -> anyhow::Result<report::CreatedGroup> {
    let lab = run.lab;
    let t2 = host_addr(lab, "T2")?;
    let mut c = report::CreatedGroup::default();
    let sock = lab.run_in("T2", move || {
        UdpSocket::bind(SocketAddrV6::new(t2, 5002, 0, 0))
    })??;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let block_base: Ipv6Addr = "2001:db8:aa::100:0".parse()?;
    let (group, status) = ask(&sock, block_base, |nonce| {
        let msg = MessageRepr::Create {
            target: t2,
            port: 0,
            proto: PROTO_UDP,
            nonce,
            uri: URI.into(),
            tag: [0; 16],
        };
        auth::signed_bytes(&msg, CREATOR_KEY).context("signing")
    })?;
    anyhow::ensure!(status == AckStatus::Ok, "create: {status:?}");
    c.group = group.to_string();
    c.created_at_p1 = wait_for("P1 logging the create", Duration::from_secs(2), || {
        run.status("P1")
            .and_then(|s| s["events"].as_array().cloned())
            .is_some_and(|ev| ev.iter().any(|e| e["what"] == "created"))
    })
    .is_ok();
    run.birdc("P1", &["disable", "announce"])?;
    wait_r1_routes_to(run, "p2")?;
    let cfg = GroupConfig {
        group,
        policy: Policy::default(),
        scope_prefix_len: 64,
        raps: 3,
        error_bound_pct: 0,
        credential: auth::tag(CREATOR_KEY, URI.as_bytes()).to_vec(),
        allow: Vec::new(),
    };
    let joined = ask(&sock, group.addr, |n| {
        agents::membership_bytes(&cfg, t2, SERVICE_PORT, n, false)
    });
    if let Ok((_, status)) = &joined {
        c.join_status = format!("{status:?}");
        let key = group.to_string();
        let mut via = None;
        let _ = wait_for("a JAP table listing T2", Duration::from_secs(2), || {
            via = PROXIES
                .iter()
                .find(|(p, _, _)| status_lists(run, p, "jap", &key))
                .map(|(p, _, _)| p.to_string());
            via.is_some()
        });
        c.joined_via = via;
        // Leave again (the group stays known; T2 runs no service here).
        let _ = ask(&sock, group.addr, |n| {
            agents::membership_bytes(&cfg, t2, SERVICE_PORT, n, true)
        });
    }
    run.birdc("P1", &["enable", "announce"])?;
    wait_r1_routes_to(run, "p1")?;
    joined.context("join of the created group")?;
    Ok(c)
}
