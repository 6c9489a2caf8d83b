//! The daemon's TOML configuration.

use std::net::Ipv6Addr;
use std::time::Duration;

use serde::Deserialize;

use mip6_anycast::daemon::config::EngineSection;

use crate::group::{AddressBlock, GroupConfig};
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
    /// The sans-IO proxy's configuration.
    pub fn proxy_config(&self) -> anyhow::Result<ProxyConfig> {
        let mut c = ProxyConfig::new(self.me, parse_prefix(&self.anycast_prefix)?);
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
