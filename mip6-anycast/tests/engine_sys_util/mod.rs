//! Shared helpers of the `engine_sys_*` namespace tests: hand-built IPv6
//! packets and small probes of a namespace's state.
#![allow(dead_code)]

use std::net::Ipv6Addr;
use std::process::Command;
use std::time::Duration;

use mip6_anycast::engine::netns;

/// Generous upper bound for waiting on the kernel; only guards against
/// hangs, never decides a pass.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// Internet checksum over the IPv6 pseudo-header (RFC 8200 8.1) and `data`.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = if chunk.len() == 2 {
                u16::from_be_bytes([chunk[0], chunk[1]])
            } else {
                u16::from_be_bytes([chunk[0], 0])
            };
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(data.len() as u32).to_be_bytes());
    add(&[0, 0, 0, next_header]);
    add(data);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A complete IPv6 packet.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next_header);
    p.push(64);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// RFC 6275 6.4: a Type 2 Routing Header carrying `hoa`, then no next header.
pub fn rh2(src: Ipv6Addr, coa: Ipv6Addr, hoa: Ipv6Addr) -> Vec<u8> {
    let mut ext = vec![59, 2, 2, 1, 0, 0, 0, 0];
    ext.extend_from_slice(&hoa.octets());
    ipv6(src, coa, 43, &ext)
}

/// RFC 6275 6.3: Destination Options with PadN and a Home Address option
/// (type 201, at offset 8n+6), then no next header.
pub fn hao(coa: Ipv6Addr, dst: Ipv6Addr, hoa: Ipv6Addr) -> Vec<u8> {
    let mut ext = vec![59, 2, 1, 2, 0, 0, 201, 16];
    ext.extend_from_slice(&hoa.octets());
    ipv6(coa, dst, 60, &ext)
}

/// RFC 6275 6.1.2: a Mobility Header carrying a Binding Refresh Request.
pub fn mobility(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut mh = vec![59, 0, 0, 0, 0, 0, 0, 0];
    let c = checksum(src, dst, 135, &mh);
    mh[4..6].copy_from_slice(&c.to_be_bytes());
    ipv6(src, dst, 135, &mh)
}

/// RFC 2473: `inner` in an outer IPv6 header.
pub fn ip6ip6(src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    ipv6(src, dst, 41, inner)
}

/// A UDP datagram with a correct checksum.
pub fn udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = checksum(src, dst, 17, &u);
    u[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    ipv6(src, dst, 17, &u)
}

/// A counter of `/proc/net/snmp6` in namespace `ns` (read through
/// `/proc/thread-self`: `/proc/net` follows the process's main thread).
pub fn snmp6(ns: &str, counter: &str) -> u64 {
    let text = netns::in_netns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/snmp6")
    })
    .expect("enter namespace")
    .expect("read snmp6");
    text.lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(counter)).then(|| it.next().and_then(|v| v.parse().ok()))?
        })
        .unwrap_or_else(|| panic!("no {counter} in snmp6"))
}

/// Runs a command inside namespace `ns` (the child inherits the thread's
/// namespace) and returns (success, stdout).
pub fn run_in(ns: &str, prog: &str, args: &[&str]) -> (bool, String) {
    let out = netns::in_netns(ns, || Command::new(prog).args(args).output())
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("run {prog}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// One ping from `ns` to `dst` (iputils `ping -6`).
pub fn ping(ns: &str, dst: Ipv6Addr) -> bool {
    run_in(
        ns,
        "ping",
        &["-6", "-n", "-c", "1", "-W", "5", &dst.to_string()],
    )
    .0
}
