//! What the demo needs to know of a topology: which host runs which
//! daemon, the anycast address and echo port (from the contact node's
//! config), the home agent's links, the MN-HA keys, and the round-trip
//! times the configured link delays imply.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;

use mip6_anycast::crypto::{KeyHierarchy, MnHaKey};
use mip6_anycast::daemon::config::read_group_secret;

use crate::topology::{DaemonConfig, DaemonKind, LinkDir, LinkKind, Topology};

/// The demo's cast.
#[derive(Debug, Clone)]
pub struct Roles {
    /// The home agent daemon's name and host.
    pub ha: (String, String),
    /// The contact node daemon's name and host.
    pub k: (String, String),
    /// The correspondent agent's name and host (the client host).
    pub c: (String, String),
    /// The anycast address X.
    pub x: Ipv6Addr,
    /// The echo service's port on X.
    pub echo_port: u16,
    /// Links with an end at the home agent's host.
    pub ha_links: Vec<String>,
}

fn inline(topo: &Topology, kind: DaemonKind) -> Result<(String, String, &toml::Table), String> {
    let d = topo
        .daemons
        .iter()
        .find(|d| d.kind == kind)
        .ok_or_else(|| format!("the topology has no {} daemon", kind.as_str()))?;
    match &d.config {
        Some(DaemonConfig::Inline(t)) => Ok((d.name(), d.host.clone(), t)),
        _ => Err(format!(
            "daemon {}: the demo needs an inline config table",
            d.name()
        )),
    }
}

impl Roles {
    /// Finds the cast in `topo`.
    pub fn of(topo: &Topology) -> Result<Roles, String> {
        let (ha_name, ha_host, _) = inline(topo, DaemonKind::HomeAgent)?;
        let (k_name, k_host, k) = inline(topo, DaemonKind::ContactNode)?;
        let (c_name, c_host, _) = inline(topo, DaemonKind::Mip6Cn)?;
        let x = k
            .get("anycast")
            .and_then(|a| a.get("address"))
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{k_name}: no anycast.address"))?;
        let echo_port = k
            .get("services")
            .and_then(|s| s.get("echo"))
            .and_then(|e| e.get("port"))
            .and_then(|p| p.as_integer())
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("{k_name}: the demo needs [services.echo] with a port"))?;
        let ha_links = topo
            .links
            .iter()
            .filter(|l| l.a == ha_host || l.b == ha_host)
            .map(|l| l.name())
            .collect();
        Ok(Roles {
            ha: (ha_name, ha_host),
            k: (k_name, k_host),
            c: (c_name, c_host),
            x,
            echo_port,
            ha_links,
        })
    }
}

/// The MN-HA keys by SPI of the home agent's `[[home_address]]` entries
/// that give `spi` + `key` or a readable `group_secret_file` (for the
/// capture checks).
pub fn mn_ha_keys(topo: &Topology) -> HashMap<u32, MnHaKey> {
    let mut out = HashMap::new();
    let Ok((_, _, t)) = inline(topo, DaemonKind::HomeAgent) else {
        return out;
    };
    let default_secret = t
        .get("home")
        .and_then(|h| h.get("group_secret_file"))
        .and_then(|v| v.as_str());
    for e in t
        .get("home_address")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
    {
        let spi = e
            .get("spi")
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok());
        let key = e.get("key").and_then(|v| v.as_str()).and_then(hex);
        if let (Some(spi), Some(key)) = (spi, key) {
            if let Ok(k) = MnHaKey::new(&key) {
                out.insert(spi, k);
            }
            continue;
        }
        let hoa = e
            .get("address")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok());
        let secret = e
            .get("group_secret_file")
            .and_then(|v| v.as_str())
            .or(default_secret)
            .and_then(|p| read_group_secret(std::path::Path::new(p)).ok());
        if let (Some(hoa), Some(gs)) = (hoa, secret) {
            let (spi, key) = KeyHierarchy::new(&gs).mn_ha_sa(hoa);
            out.insert(spi.0, key);
        }
    }
    out
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// One-way delays (ms) of the shortest paths from `from`, following the
/// links' configured delays (veth: 0).
fn one_way(topo: &Topology, from: &str) -> BTreeMap<String, f64> {
    let mut dist: BTreeMap<String, f64> = BTreeMap::new();
    dist.insert(from.to_string(), 0.0);
    let mut done: Vec<String> = Vec::new();
    loop {
        let next = dist
            .iter()
            .filter(|(h, _)| !done.contains(h))
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(h, d)| (h.clone(), *d));
        let Some((h, d)) = next else { break };
        done.push(h.clone());
        for l in &topo.links {
            for dir in LinkDir::BOTH {
                let (src, dst) = match dir {
                    LinkDir::AToB => (&l.a, &l.b),
                    LinkDir::BToA => (&l.b, &l.a),
                };
                if *src != h {
                    continue;
                }
                let w = match l.kind {
                    LinkKind::Emulated => l.direction(dir).delay_ms,
                    LinkKind::Veth => 0.0,
                };
                let nd = d + w;
                if dist.get(dst).is_none_or(|old| nd < *old) {
                    dist.insert(dst.clone(), nd);
                }
            }
        }
    }
    dist
}

/// The round-trip times the link delays imply: (via the home agent: C to
/// HA to K and back the same way, route-optimized: C to K and back).
pub fn expected_rtts(topo: &Topology, roles: &Roles) -> Option<(f64, f64)> {
    let d = |a: &str, b: &str| one_way(topo, a).get(b).copied();
    let (c, ha, k) = (&roles.c.1, &roles.ha.1, &roles.k.1);
    let via_ha = d(c, ha)? + d(ha, k)? + d(k, ha)? + d(ha, c)?;
    let ro = d(c, k)? + d(k, c)?;
    Some((via_ha, ro))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_topology_roles_and_rtts() {
        let t = Topology::from_toml_str(include_str!("../../../topologies/demo.toml")).unwrap();
        let r = Roles::of(&t).unwrap();
        assert_eq!(r.x, "2001:db8:100::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(r.echo_port, 7);
        assert_eq!(
            (r.ha.1.as_str(), r.k.1.as_str(), r.c.1.as_str()),
            ("HA", "K", "C")
        );
        assert_eq!(r.ha_links, vec!["r-ha".to_string()]);
        assert_eq!(expected_rtts(&t, &r), Some((50.0, 30.0)));
        let keys = mn_ha_keys(&t);
        assert!(keys.contains_key(&4242));
    }
}
