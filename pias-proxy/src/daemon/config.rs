//! The daemon's TOML configuration.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use mip6_anycast::daemon::config::EngineSection;

use crate::group::{AddressBlock, GroupConfig};
use crate::peer_auth::{PeerAuthConfig, PeerKey, WallClock};
use crate::proxy::ProxyConfig;

/// `pias-proxy --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Unicast address of this proxy (tunnels, peer messages, SWIM).
    pub me: Ipv6Addr,
    /// NAT source address towards targets (routed to this proxy's TUN).
    pub nat_addr: Ipv6Addr,
    /// Anycast prefix, e.g. `"2001:db8:aa::/48"`.
    pub anycast_prefix: String,
    /// Proxies to announce to at start (SWIM bootstrap).
    #[serde(default)]
    pub peers: Vec<Ipv6Addr>,
    /// IAPs sharing flow affinity with this one.
    #[serde(default)]
    pub cluster: Vec<Ipv6Addr>,
    /// Pre-assigned groups.
    #[serde(default)]
    pub group: Vec<GroupConfig>,
    /// Block for dynamic assignment.
    pub block: Option<AddressBlock>,
    /// Creator key for the block (hex).
    pub creator_key: Option<String>,
    /// The cluster's inter-proxy key (hex, at least 16 bytes): seals every
    /// peer message and SWIM datagram. Required.
    pub peer_key: String,
    /// TUN device name.
    #[serde(default = "default_tun")]
    pub tun: String,
    /// Expected cluster size (SWIM tuning).
    #[serde(default = "default_cluster_size")]
    pub cluster_size: u32,
    /// Interval of RTT probes to peers, ms.
    #[serde(default = "default_rtt_ms")]
    pub rtt_probe_ms: u64,
    /// Seed of the selection RNG and of SWIM.
    #[serde(default)]
    pub seed: u64,
    /// Most groups per target.
    #[serde(default = "default_max_groups")]
    pub max_groups_per_target: usize,
    /// The tunnel engine, as in the other daemons (`interfaces`,
    /// `datapath`, ...); its TUN is named by `tun` above.
    #[serde(default)]
    pub engine: EngineSection,
}

fn default_tun() -> String {
    "pias0".into()
}
fn default_cluster_size() -> u32 {
    8
}
fn default_rtt_ms() -> u64 {
    1000
}
fn default_max_groups() -> usize {
    64
}

/// Parses `"addr/len"`.
pub fn parse_prefix(s: &str) -> anyhow::Result<(Ipv6Addr, u8)> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("prefix {s:?}: expected ADDR/LEN"))?;
    let len: u8 = l.parse()?;
    anyhow::ensure!(len <= 128, "prefix length {len} > 128");
    Ok((a.parse()?, len))
}

impl DaemonConfig {
    /// The sealing configuration of this start: the key, a session id
    /// drawn from the OS's CSPRNG (never reused: the AEAD nonces restart
    /// with it) and the wall clock anchored now.
    pub fn peer_auth(&self) -> anyhow::Result<PeerAuthConfig> {
        let key = PeerKey::from_hex(&self.peer_key)?;
        let mut session = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut session)
            .map_err(|_| anyhow::anyhow!("OS random source for the session id"))?;
        Ok(PeerAuthConfig::new(
            key,
            u64::from_be_bytes(session),
            WallClock::new(Instant::now(), SystemTime::now()),
        ))
    }

    /// The sans-IO proxy's configuration (with a fresh [`DaemonConfig::peer_auth`]).
    pub fn proxy_config(&self) -> anyhow::Result<ProxyConfig> {
        let mut c = ProxyConfig::new(
            self.me,
            parse_prefix(&self.anycast_prefix)?,
            self.peer_auth()?,
        );
        c.nat_addr = self.nat_addr;
        c.groups = self.group.clone();
        c.cluster = self.cluster.clone();
        c.seed = self.seed;
        c.max_groups_per_target = self.max_groups_per_target;
        if let (Some(b), Some(k)) = (&self.block, &self.creator_key) {
            c.block = Some((
                b.clone(),
                crate::group::parse_hex(k).map_err(anyhow::Error::msg)?,
            ));
        }
        Ok(c)
    }

    /// The engine's settings with the TUN named by `tun`.
    pub fn engine_section(&self) -> EngineSection {
        EngineSection {
            tun: self.tun.clone(),
            ..self.engine.clone()
        }
    }

    /// RTT probe interval.
    pub fn rtt_interval(&self) -> Duration {
        Duration::from_millis(self.rtt_probe_ms.max(50))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "me = \"2001:db8::1\"\nnat_addr = \"2001:db8::2\"\nanycast_prefix = \"2001:db8:aa::/48\"\n";

    #[test]
    fn peer_key_is_required_and_at_least_sixteen_bytes() {
        assert!(toml::from_str::<DaemonConfig>(BASE).is_err(), "missing key");
        let short = format!("{BASE}peer_key = \"{}\"\n", "ab".repeat(15));
        let c: DaemonConfig = toml::from_str(&short).unwrap();
        assert!(c.proxy_config().is_err());
        let good = format!("{BASE}peer_key = \"{}\"\n", "ab".repeat(16));
        let c: DaemonConfig = toml::from_str(&good).unwrap();
        let a = c.peer_auth().unwrap();
        let b = c.peer_auth().unwrap();
        assert_ne!(a.session, b.session, "a fresh session per start");
        assert_eq!(c.proxy_config().unwrap().peer_auth.key, a.key);
    }
}
