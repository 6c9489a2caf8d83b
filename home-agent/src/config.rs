//! The home agent's configuration file.
//!
//! ```toml
//! [daemon]                       # optional: control_socket, state_dir, log_level, shutdown_grace_s
//! [engine]                       # optional: interfaces (default: all but lo), tun, path_mtu, ...
//!
//! [home]
//! address = "2001:db8:2::10"     # the home agent's own address
//! prefix = "2001:db8:100::/64"   # or a list of home prefixes
//! max_lifetime_s = 3600          # registration lifetime cap (RFC 6275 10.3.1)
//! max_registrations = 65536
//! group_secret_file = "group.secret"   # default key source of [[home_address]]
//!
//! [[home_address]]               # one per served home address (anycast group)
//! address = "2001:db8:100::1"
//! spi = 4242                     # explicit MN-HA SA: spi + key (hex) ...
//! key = "00112233..."
//! # group_secret_file = "..."    # ... or derived via the HKDF hierarchy
//! ```
//!
//! A home address may be listed more than once with different SPIs: each
//! SA is accepted. That is how a key is rotated without downtime (the
//! contact node's `ctl rotate-key` moves to the new SA; the old entry is
//! removed afterwards).

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mip6_anycast::crypto::{MnHaKey, Spi};
use mip6_anycast::daemon::config::{
    ConfigError, DaemonConfig, DaemonSection, EngineSection, HexKey, Ipv6Prefix, KeyMaterial,
    OneOrMany, Seconds, check_unicast, resolve_path, validate_shell,
};
use mip6_anycast::proto::Prefix;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// `[daemon]`.
    #[serde(default)]
    pub daemon: DaemonSection,
    /// `[engine]`.
    #[serde(default)]
    pub engine: EngineSection,
    /// `[home]`.
    pub home: HomeSection,
    /// `[[home_address]]`.
    #[serde(default, rename = "home_address")]
    pub home_addresses: Vec<HomeAddressEntry>,
    /// The resolved MN-HA security associations (filled by validation).
    #[serde(skip)]
    pub security_associations: Vec<SecurityAssociation>,
}

/// `[home]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeSection {
    /// The home agent's address (Binding Updates are sent to it; the outer
    /// source of its tunnels).
    pub address: Ipv6Addr,
    /// Home prefix or prefixes.
    pub prefix: OneOrMany<Ipv6Prefix>,
    /// Longest registration lifetime granted (default 3600 s).
    pub max_lifetime_s: Option<Seconds>,
    /// Most registrations held (default 65536).
    pub max_registrations: Option<usize>,
    /// Group secret for home addresses that name no key material.
    pub group_secret_file: Option<PathBuf>,
}

/// `[[home_address]]`: a served home address and its MN-HA key material.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAddressEntry {
    /// The home address.
    pub address: Ipv6Addr,
    /// Explicit Mobility SPI (with `key`).
    pub spi: Option<u32>,
    /// Explicit MN-HA key, hex (with `spi`).
    pub key: Option<HexKey>,
    /// Derive SPI and key from this group secret instead.
    pub group_secret_file: Option<PathBuf>,
}

/// A resolved MN-HA security association.
#[derive(Debug, Clone)]
pub struct SecurityAssociation {
    /// Home address.
    pub hoa: Ipv6Addr,
    /// Mobility SPI.
    pub spi: Spi,
    /// Shared key.
    pub key: MnHaKey,
}

impl HaConfig {
    /// The home prefixes.
    pub fn prefixes(&self) -> Vec<Prefix> {
        self.home.prefix.0.iter().map(|p| p.0).collect()
    }

    /// The registration lifetime cap.
    pub fn max_lifetime(&self) -> Duration {
        self.home
            .max_lifetime_s
            .map_or(Duration::from_secs(3600), Seconds::duration)
    }
}

impl DaemonConfig for HaConfig {
    fn daemon(&self) -> &DaemonSection {
        &self.daemon
    }

    fn validate(&mut self, file: &Path, base: &Path) -> Result<(), ConfigError> {
        let err = |f: &str, m: String| ConfigError::field(file, f, m);
        validate_shell(&mut self.daemon, &self.engine, file, base)?;
        check_unicast(file, "home.address", self.home.address)?;
        if self.home.prefix.0.is_empty() {
            return Err(err("home.prefix", "at least one home prefix".into()));
        }
        if self.max_lifetime() < Duration::from_secs(4) {
            return Err(err("home.max_lifetime_s", "at least 4 seconds".into()));
        }
        if self.home.max_registrations == Some(0) {
            return Err(err("home.max_registrations", "must be at least 1".into()));
        }
        if let Some(p) = &mut self.home.group_secret_file {
            *p = resolve_path(base, p);
        }
        if self.home_addresses.is_empty() {
            return Err(err(
                "home_address",
                "no served home address: add a [[home_address]] table".into(),
            ));
        }
        let prefixes = self.prefixes();
        let mut spis = HashSet::new();
        let mut sas = Vec::new();
        for (i, e) in self.home_addresses.iter_mut().enumerate() {
            let at = format!("home_address[{i}].");
            check_unicast(file, &format!("{at}address"), e.address)?;
            if !prefixes.iter().any(|p| p.contains(e.address)) {
                return Err(err(
                    &format!("{at}address"),
                    format!("{} is outside every home.prefix", e.address),
                ));
            }
            if let Some(p) = &mut e.group_secret_file {
                *p = resolve_path(base, p);
            }
            let km = KeyMaterial {
                spi: e.spi,
                key: e.key.clone(),
                group_secret_file: e.group_secret_file.clone(),
            };
            let (spi, key) =
                km.resolve(file, &at, e.address, self.home.group_secret_file.as_deref())?;
            if !spis.insert(spi) {
                return Err(err(
                    &format!("{at}spi"),
                    format!("SPI {} is listed twice", spi.0),
                ));
            }
            sas.push(SecurityAssociation {
                hoa: e.address,
                spi,
                key,
            });
        }
        self.security_associations = sas;
        Ok(())
    }
}
