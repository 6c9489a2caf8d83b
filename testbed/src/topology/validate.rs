//! Validation of a parsed topology. Every problem is reported with the path
//! of the offending field (`link[2].b: unknown host "K2"`), all at once.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use super::Topology;
use super::error::Issue;
use super::model::{DaemonConfig, DaemonKind, DirectionSpec, HostKind, Link, LinkKind};
use super::prefix::Ipv6Prefix;

/// Longest host, link or daemon name (they end up in interface and file names).
pub const MAX_NAME_LEN: usize = 32;
/// Largest one-way delay or jitter accepted, in milliseconds.
pub const MAX_DELAY_MS: f64 = 60_000.0;
/// Smallest MTU of an IPv6 link (RFC 8200 section 5).
pub const MIN_MTU: u32 = 1280;
/// Largest MTU (TUN and veth limit).
pub const MAX_MTU: u32 = 65_535;

#[derive(Default)]
struct Checker {
    issues: Vec<Issue>,
}

impl Checker {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Why `name` cannot name a host, link or daemon, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "name {name:?} longer than {MAX_NAME_LEN} characters"
        ));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !first_ok || !rest_ok {
        return Some(format!(
            "name {name:?} must be ASCII letters, digits, '-' or '_' and start with a letter or digit"
        ));
    }
    None
}

/// Why `addr` cannot be an interface address, if it cannot.
fn address_problem(p: &Ipv6Prefix) -> Option<String> {
    let a = p.addr();
    if a.is_unspecified() {
        Some(format!("{p}: the unspecified address"))
    } else if a.is_loopback() {
        Some(format!("{p}: the loopback address"))
    } else if a.is_multicast() {
        Some(format!("{p}: a multicast address"))
    } else if p.is_empty() {
        Some(format!("{p}: prefix length 0 on an interface"))
    } else {
        None
    }
}

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Validates `t`; an empty list means valid.
pub(crate) fn validate(t: &Topology) -> Vec<Issue> {
    let mut c = Checker::default();
    if let Some(name) = &t.lab.name
        && let Some(p) = name_problem(name)
    {
        c.push("lab.name", p);
    }
    check_hosts(t, &mut c);
    check_links(t, &mut c);
    check_addresses(t, &mut c);
    check_routes(t, &mut c);
    check_daemons(t, &mut c);
    c.issues
}

/// Checks the (effective) name of entry `i` of `table`: well formed and not
/// used by an earlier entry. `explicit`: written as `name = ...` (else
/// derived from other fields, and the fix is to set it).
fn check_name(
    c: &mut Checker,
    seen: &mut HashMap<String, usize>,
    table: &str,
    i: usize,
    name: String,
    explicit: bool,
) {
    let path = if explicit {
        format!("{table}[{i}].name")
    } else {
        format!("{table}[{i}]")
    };
    if let Some(p) = name_problem(&name) {
        c.push(path.clone(), p);
    }
    let hint = if explicit { "" } else { "; set `name`" };
    if let Some(j) = seen.insert(name.clone(), i) {
        c.push(
            path,
            format!("duplicate {table} name {name:?} (also {table}[{j}]){hint}"),
        );
    }
}

fn check_hosts(t: &Topology, c: &mut Checker) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, h) in t.hosts.iter().enumerate() {
        check_name(c, &mut seen, "host", i, h.name.clone(), true);
        if h.kind == HostKind::Vm && !h.lo.is_empty() {
            // The namespace of a vm host only relays; its addresses are
            // the guest's link addresses.
            c.push(
                format!("host[{i}].lo"),
                "a vm host has no lo addresses (the guest holds its link addresses)",
            );
        }
        let mut lo_seen: HashMap<Ipv6Addr, usize> = HashMap::new();
        for (k, p) in h.lo.iter().enumerate() {
            if let Some(m) = address_problem(p) {
                c.push(format!("host[{i}].lo[{k}]"), m);
            }
            if let Some(j) = lo_seen.insert(p.addr(), k) {
                c.push(
                    format!("host[{i}].lo[{k}]"),
                    format!("{} listed twice (also host[{i}].lo[{j}])", p.addr()),
                );
            }
        }
    }
}

/// Checks the emulation fields of one parameter set (the link's symmetric
/// values or one direction's overrides) under `path` (`link[0]` or
/// `link[0].a_to_b`).
fn check_params(c: &mut Checker, path: &str, s: &DirectionSpec) {
    let ms = |c: &mut Checker, field: &str, v: Option<f64>| {
        if let Some(v) = v
            && !(v.is_finite() && (0.0..=MAX_DELAY_MS).contains(&v))
        {
            let why = if v < 0.0 { "negative" } else { "out of range" };
            c.push(
                format!("{path}.{field}"),
                format!("{why}: {v} (0..={MAX_DELAY_MS} ms)"),
            );
        }
    };
    ms(c, "delay_ms", s.delay_ms);
    ms(c, "jitter_ms", s.jitter_ms);
    if let Some(l) = s.loss
        && !(l.is_finite() && (0.0..=1.0).contains(&l))
    {
        c.push(
            format!("{path}.loss"),
            format!("out of range: {l} (a probability, 0..=1)"),
        );
    }
    if let Some(r) = s.rate_mbit
        && !(r.is_finite() && r > 0.0)
    {
        c.push(
            format!("{path}.rate_mbit"),
            format!("must be a positive number of Mbit/s, not {r}"),
        );
    }
    if s.queue_packets == Some(0) {
        c.push(format!("{path}.queue_packets"), "must be at least 1");
    }
    if let Some(b) = s.queue_bytes
        && b < u64::from(MAX_MTU)
    {
        c.push(
            format!("{path}.queue_bytes"),
            format!("{b} cannot hold one maximum-size packet ({MAX_MTU} bytes)"),
        );
    }
}

fn symmetric_spec(l: &Link) -> DirectionSpec {
    DirectionSpec {
        delay_ms: l.delay_ms,
        jitter_ms: l.jitter_ms,
        loss: l.loss,
        rate_mbit: l.rate_mbit,
        reorder: l.reorder,
        queue_packets: l.queue_packets,
        queue_bytes: l.queue_bytes,
    }
}

/// The names of the emulation fields that are set in `l`.
fn emulation_fields_set(l: &Link) -> Vec<&'static str> {
    let s = symmetric_spec(l);
    [
        ("delay_ms", s.delay_ms.is_some()),
        ("jitter_ms", s.jitter_ms.is_some()),
        ("loss", s.loss.is_some()),
        ("rate_mbit", s.rate_mbit.is_some()),
        ("reorder", s.reorder.is_some()),
        ("queue_packets", s.queue_packets.is_some()),
        ("queue_bytes", s.queue_bytes.is_some()),
        ("a_to_b", l.a_to_b.is_some()),
        ("b_to_a", l.b_to_a.is_some()),
        ("capture", l.capture),
        ("seed", l.seed.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect()
}

fn check_links(t: &Topology, c: &mut Checker) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, l) in t.links.iter().enumerate() {
        check_name(c, &mut seen, "link", i, l.name(), l.name.is_some());
        for (field, host) in [("a", &l.a), ("b", &l.b)] {
            if t.host(host).is_none() {
                c.push(
                    format!("link[{i}].{field}"),
                    format!("unknown host {host:?}"),
                );
            }
        }
        if l.a == l.b {
            c.push(
                format!("link[{i}].b"),
                format!("link from {:?} to itself", l.a),
            );
        }
        if let Some(m) = l.mtu
            && !(MIN_MTU..=MAX_MTU).contains(&m)
        {
            c.push(
                format!("link[{i}].mtu"),
                format!("{m} out of range ({MIN_MTU}..={MAX_MTU})"),
            );
        }
        match l.kind {
            LinkKind::Veth => {
                for f in emulation_fields_set(l) {
                    c.push(
                        format!("link[{i}].{f}"),
                        "only emulated links (kind = \"emulated\") can have this",
                    );
                }
            }
            LinkKind::Emulated => {
                check_params(c, &format!("link[{i}]"), &symmetric_spec(l));
                for (key, spec) in [("a_to_b", &l.a_to_b), ("b_to_a", &l.b_to_a)] {
                    if let Some(s) = spec {
                        check_params(c, &format!("link[{i}].{key}"), s);
                    }
                }
            }
        }
    }
}

/// Addresses: usable kinds, no address twice on link ends, no two links
/// with overlapping prefixes, no `lo` address equal to a link address.
/// The same `lo` address on several hosts is allowed: that is anycast.
fn check_addresses(t: &Topology, c: &mut Checker) {
    // (path, link index, prefix)
    let mut ends: Vec<(String, usize, Ipv6Prefix)> = Vec::new();
    for (i, l) in t.links.iter().enumerate() {
        for (field, addrs) in [("a_addr", &l.a_addr), ("b_addr", &l.b_addr)] {
            for (k, p) in addrs.iter().enumerate() {
                let path = format!("link[{i}].{field}[{k}]");
                if let Some(m) = address_problem(p) {
                    c.push(path.clone(), m);
                }
                ends.push((path, i, *p));
            }
        }
    }
    for (n, (path, link, p)) in ends.iter().enumerate() {
        for (other_path, other_link, q) in ends.iter().take(n) {
            if p.addr() == q.addr() {
                c.push(
                    path.clone(),
                    format!("{} already used by {other_path}", p.addr()),
                );
            } else if link != other_link && p.overlaps(q) {
                c.push(
                    path.clone(),
                    format!("{p} overlaps {q} of {other_path} (another link)"),
                );
            }
        }
    }
    for (i, h) in t.hosts.iter().enumerate() {
        for (k, p) in h.lo.iter().enumerate() {
            if let Some((other, _, _)) = ends.iter().find(|(_, _, q)| q.addr() == p.addr()) {
                c.push(
                    format!("host[{i}].lo[{k}]"),
                    format!("{} already used by {other}", p.addr()),
                );
            }
        }
    }
}

fn check_routes(t: &Topology, c: &mut Checker) {
    let mut seen: HashMap<(&str, Ipv6Prefix), usize> = HashMap::new();
    for (i, r) in t.routes.iter().enumerate() {
        if t.host(&r.host).is_none() {
            c.push(
                format!("route[{i}].host"),
                format!("unknown host {:?}", r.host),
            );
            continue;
        }
        let dst_key = Ipv6Prefix::new(r.dst.network(), r.dst.len()).unwrap_or(r.dst);
        if let Some(j) = seen.insert((&r.host, dst_key), i) {
            c.push(
                format!("route[{i}].dst"),
                format!(
                    "second route to {} in host {:?} (also route[{j}])",
                    if r.dst.is_empty() {
                        "default".to_string()
                    } else {
                        dst_key.to_string()
                    },
                    r.host
                ),
            );
        }
        // The links the route may use: the named one, or all of the host's.
        let mut links: Vec<(&Link, bool)> = Vec::new();
        for l in &t.links {
            if r.link.as_ref().is_some_and(|n| *n != l.name()) {
                continue;
            }
            if l.a == r.host {
                links.push((l, true));
            }
            if l.b == r.host {
                links.push((l, false));
            }
        }
        if let Some(n) = &r.link {
            if !t.links.iter().any(|l| l.name() == *n) {
                c.push(format!("route[{i}].link"), format!("unknown link {n:?}"));
                continue;
            }
            if links.is_empty() {
                c.push(
                    format!("route[{i}].link"),
                    format!("link {n:?} does not attach host {:?}", r.host),
                );
                continue;
            }
        }
        let Some(via) = r.via else {
            if r.link.is_none() {
                c.push(format!("route[{i}]"), "needs `via` or `link`");
            }
            continue;
        };
        if via.is_unspecified() || via.is_multicast() || via.is_loopback() {
            c.push(
                format!("route[{i}].via"),
                format!("{via} cannot be a gateway"),
            );
            continue;
        }
        if is_link_local(via) {
            if r.link.is_none() {
                c.push(
                    format!("route[{i}].via"),
                    format!("link-local gateway {via} needs `link`"),
                );
            }
            continue;
        }
        let own = links
            .iter()
            .flat_map(|(l, side_a)| l.end(*side_a).1)
            .any(|p| p.addr() == via);
        let on_link = links
            .iter()
            .flat_map(|(l, side_a)| l.end(*side_a).1)
            .any(|p| p.contains(via));
        if own {
            c.push(
                format!("route[{i}].via"),
                format!("{via} is an address of host {:?} itself", r.host),
            );
        } else if !on_link {
            c.push(
                format!("route[{i}].via"),
                format!(
                    "{via} is not on-link: no prefix of host {:?}'s links contains it",
                    r.host
                ),
            );
        }
    }
}

fn check_daemons(t: &Topology, c: &mut Checker) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, d) in t.daemons.iter().enumerate() {
        if t.host(&d.host).is_none() {
            c.push(
                format!("daemon[{i}].host"),
                format!("unknown host {:?}", d.host),
            );
        }
        check_name(c, &mut seen, "daemon", i, d.name(), d.name.is_some());
        if t.host(&d.host).is_some_and(|h| h.kind == HostKind::Vm) {
            c.push(
                format!("daemon[{i}].host"),
                format!(
                    "{:?} is a vm host: its programs run in the guest (see testbed::vm), not in its namespace",
                    d.host
                ),
            );
        }
        match (d.kind, &d.program) {
            (DaemonKind::Custom, None) => c.push(
                format!("daemon[{i}].program"),
                "a custom daemon needs `program`",
            ),
            (DaemonKind::Custom, Some(p)) if p.trim().is_empty() => {
                c.push(format!("daemon[{i}].program"), "empty program")
            }
            (DaemonKind::Custom, Some(_)) | (_, None) => {}
            (k, Some(_)) => c.push(
                format!("daemon[{i}].program"),
                format!(
                    "only custom daemons take `program` (kind = {:?})",
                    k.as_str()
                ),
            ),
        }
        if let (Some(DaemonConfig::Path(p)), Some(base)) = (&d.config, &t.base_dir) {
            let full = base.join(p);
            if !full.is_file() {
                c.push(
                    format!("daemon[{i}].config"),
                    format!("file {} not found", full.display()),
                );
            }
        }
    }
}
