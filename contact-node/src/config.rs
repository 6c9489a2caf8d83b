//! The contact node's configuration file.
//!
//! ```toml
//! [daemon]                          # optional: control_socket, state_dir, log_level, shutdown_grace_s
//! [engine]                          # optional: interfaces (default: all but lo), tun, path_mtu, ...
//!
//! [anycast]
//! address = "2001:db8:100::1"       # the anycast address X (the group's home address)
//! care_of_address = "2001:db8:3::10"
//! home_agent = "2001:db8:2::10"
//! lifetime_s = 600                  # home registration lifetime asked for
//! spi = 4242                        # explicit MN-HA SA: spi + key (hex) ...
//! key = "00112233..."
//! # group_secret_file = "group.secret"   # ... or derived as the home agent derives it
//! manage_address = true             # put X on lo (nodad) at start, remove it at stop
//!
//! [route_optimization]              # optional
//! enabled = true
//! delay_s = 0.0                     # wait this long after a client shows up before RR + BU
//! lifetime_s = 420                  # binding lifetime asked of clients (<= 420)
//! peer_scan_s = 1.0                 # also find clients among the kernel's TCP sockets on X (0 = off)
//! max_clients = 65536
//!
//! [services.echo]                   # optional built-in test service: TCP echo on [X]:port
//! port = 7
//! ```

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mip6_anycast::crypto::{MAX_RR_BINDING_LIFETIME, MnHaKey, Spi};
use mip6_anycast::daemon::config::{
    ConfigError, DaemonConfig, DaemonSection, EngineSection, HexKey, KeyMaterial, Seconds,
    check_unicast, resolve_path, validate_shell,
};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    /// `[daemon]`.
    #[serde(default)]
    pub daemon: DaemonSection,
    /// `[engine]`.
    #[serde(default)]
    pub engine: EngineSection,
    /// `[anycast]`.
    pub anycast: AnycastSection,
    /// `[route_optimization]`.
    #[serde(default)]
    pub route_optimization: RoSection,
    /// `[services]`.
    #[serde(default)]
    pub services: ServicesSection,
    /// The resolved MN-HA security association (filled by validation).
    #[serde(skip)]
    pub sa: Option<(Spi, MnHaKey)>,
}

/// `[anycast]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnycastSection {
    /// The anycast address X.
    pub address: Ipv6Addr,
    /// This member's care-of address.
    pub care_of_address: Ipv6Addr,
    /// The home agent.
    pub home_agent: Ipv6Addr,
    /// Home registration lifetime asked for (default 600 s).
    pub lifetime_s: Option<Seconds>,
    /// Explicit Mobility SPI (with `key`).
    pub spi: Option<u32>,
    /// Explicit MN-HA key, hex (with `spi`).
    pub key: Option<HexKey>,
    /// Derive SPI and key from this group secret instead.
    pub group_secret_file: Option<PathBuf>,
    /// Put X on `lo` at start (and remove it at stop if it was added).
    #[serde(default = "yes")]
    pub manage_address: bool,
}

fn yes() -> bool {
    true
}

/// `[route_optimization]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoSection {
    /// Route-optimize clients at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Delay between seeing a client and starting RR.
    pub delay_s: Option<Seconds>,
    /// Binding lifetime asked of clients.
    pub lifetime_s: Option<Seconds>,
    /// Period of the scan of the kernel's TCP sockets on X (0: off).
    pub peer_scan_s: Option<Seconds>,
    /// Most clients tracked.
    pub max_clients: Option<usize>,
}

impl Default for RoSection {
    fn default() -> Self {
        Self {
            enabled: true,
            delay_s: None,
            lifetime_s: None,
            peer_scan_s: None,
            max_clients: None,
        }
    }
}

impl RoSection {
    /// Delay before RR (default 0).
    pub fn delay(&self) -> Duration {
        self.delay_s.map_or(Duration::ZERO, Seconds::duration)
    }

    /// Binding lifetime (default MAX_RR_BINDING_LIFETIME).
    pub fn lifetime(&self) -> Duration {
        self.lifetime_s
            .map_or(MAX_RR_BINDING_LIFETIME, Seconds::duration)
    }

    /// Scan period, `None` when off (default 1 s).
    pub fn peer_scan(&self) -> Option<Duration> {
        let d = self
            .peer_scan_s
            .map_or(Duration::from_secs(1), Seconds::duration);
        (!d.is_zero()).then_some(d)
    }
}

/// `[services]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSection {
    /// `[services.echo]`: the TCP echo test service.
    pub echo: Option<EchoSection>,
}

/// `[services.echo]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoSection {
    /// TCP port on X.
    pub port: u16,
}

impl AnycastSection {
    /// The home registration lifetime (default 600 s).
    pub fn lifetime(&self) -> Duration {
        self.lifetime_s
            .map_or(Duration::from_secs(600), Seconds::duration)
    }
}

impl DaemonConfig for ContactConfig {
    fn daemon(&self) -> &DaemonSection {
        &self.daemon
    }

    fn validate(&mut self, file: &Path, base: &Path) -> Result<(), ConfigError> {
        let err = |f: &str, m: String| ConfigError::field(file, f, m);
        validate_shell(&mut self.daemon, &self.engine, file, base)?;
        let a = &mut self.anycast;
        for (f, v) in [
            ("anycast.address", a.address),
            ("anycast.care_of_address", a.care_of_address),
            ("anycast.home_agent", a.home_agent),
        ] {
            check_unicast(file, f, v)?;
        }
        if a.care_of_address == a.address {
            return Err(err(
                "anycast.care_of_address",
                "must differ from the anycast address (that would be at home)".into(),
            ));
        }
        if a.home_agent == a.address || a.home_agent == a.care_of_address {
            return Err(err(
                "anycast.home_agent",
                "must differ from the anycast and care-of addresses".into(),
            ));
        }
        let l = a.lifetime();
        // The Lifetime field counts units of 4 s (RFC 6275 6.1.7).
        if l < Duration::from_secs(4) || l > Duration::from_secs(4 * 65_535) {
            return Err(err(
                "anycast.lifetime_s",
                format!("{l:?} is outside 4 ..= 262140 s (RFC 6275 6.1.7)"),
            ));
        }
        if let Some(p) = &mut a.group_secret_file {
            *p = resolve_path(base, p);
        }
        let km = KeyMaterial {
            spi: a.spi,
            key: a.key.clone(),
            group_secret_file: a.group_secret_file.clone(),
        };
        self.sa = Some(km.resolve(file, "anycast.", a.address, None)?);
        let ro = &self.route_optimization;
        if ro.lifetime() < Duration::from_secs(4) || ro.lifetime() > MAX_RR_BINDING_LIFETIME {
            return Err(err(
                "route_optimization.lifetime_s",
                format!(
                    "{:?} is outside 4 ..= {} s (RFC 6275 12: MAX_RR_BINDING_LIFETIME)",
                    ro.lifetime(),
                    MAX_RR_BINDING_LIFETIME.as_secs()
                ),
            ));
        }
        if ro.max_clients == Some(0) {
            return Err(err(
                "route_optimization.max_clients",
                "must be at least 1".into(),
            ));
        }
        if let Some(e) = &self.services.echo
            && e.port == 0
        {
            return Err(err("services.echo.port", "must not be 0".into()));
        }
        Ok(())
    }
}
