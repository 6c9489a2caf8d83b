//! The topology file of a lab: hosts (network namespaces), links between
//! them (kernel veth pairs or emulated links with delay, loss and capture),
//! static routes, and the daemons started in each host.
//!
//! ```toml
//! [[host]]
//! name = "C"
//! [[host]]
//! name = "R"
//! kind = "router"
//! [[link]]
//! a = "C"
//! b = "R"
//! kind = "emulated"
//! delay_ms = 10.0
//! a_addr = ["2001:db8:1::10/64"]
//! b_addr = ["2001:db8:1::1/64"]
//! [[route]]
//! host = "C"
//! dst = "default"
//! via = "2001:db8:1::1"
//! ```
//!
//! [`Topology::load`] and [`Topology::from_toml_str`] parse and validate;
//! validation reports every problem with the path of the field
//! (`link[2].b: unknown host "K2"`).

mod error;
mod model;
mod prefix;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::{Issue, Issues, TopologyError};
pub use model::{
    DEFAULT_MTU, Daemon, DaemonConfig, DaemonKind, DirectionParams, DirectionSpec, Host, HostKind,
    Lab, Link, LinkDir, LinkKind, Route,
};
pub use prefix::{Ipv6Prefix, PrefixError};
pub use validate::{MAX_DELAY_MS, MAX_MTU, MAX_NAME_LEN, MIN_MTU};

/// A whole topology file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    #[serde(default)]
    pub lab: Lab,
    #[serde(default, rename = "host")]
    pub hosts: Vec<Host>,
    #[serde(default, rename = "link")]
    pub links: Vec<Link>,
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    #[serde(default, rename = "daemon")]
    pub daemons: Vec<Daemon>,
    /// Directory of the file it was loaded from: relative daemon config
    /// paths are resolved against it.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

impl Topology {
    /// Parses and validates a topology from TOML text. Relative daemon
    /// config paths are not checked (there is no base directory).
    pub fn from_toml_str(text: &str) -> Result<Self, TopologyError> {
        let t: Topology = toml::from_str(text)?;
        t.validate()?;
        Ok(t)
    }

    /// Reads, parses and validates a topology file.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut t: Topology = toml::from_str(&text)?;
        t.base_dir = Some(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned(),
        );
        t.validate()?;
        Ok(t)
    }

    /// Checks names, references, addresses and parameters; all problems at once.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let issues = validate::validate(self);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(TopologyError::Invalid(Issues(issues)))
        }
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The link whose effective name is `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name() == name)
    }

    /// The links attached to `host`, each with `true` if the host is end `a`.
    pub fn links_of<'a>(&'a self, host: &'a str) -> impl Iterator<Item = (&'a Link, bool)> + 'a {
        self.links.iter().flat_map(move |l| {
            let a = (l.a == host).then_some((l, true));
            let b = (l.b == host).then_some((l, false));
            a.into_iter().chain(b)
        })
    }

    /// The routes of `host`.
    pub fn routes_of<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.iter().filter(move |r| r.host == host)
    }

    /// The daemons of `host`.
    pub fn daemons_of<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Daemon> + 'a {
        self.daemons.iter().filter(move |d| d.host == host)
    }

    /// The seed of `link`'s loss/jitter generator: `link.seed` if set, else
    /// a hash of the lab seed and the link name (stable across runs).
    pub fn link_seed(&self, link: &Link) -> u64 {
        link.seed.unwrap_or_else(|| {
            // FNV-1a over the name, mixed with the lab seed.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.lab.seed;
            for b in link.name().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h
        })
    }

    /// Where a daemon's config file is, if it is given as a path (resolved
    /// against the topology file's directory).
    pub fn daemon_config_path(&self, d: &Daemon) -> Option<PathBuf> {
        match &d.config {
            Some(DaemonConfig::Path(p)) => Some(match &self.base_dir {
                Some(base) => base.join(p),
                None => p.clone(),
            }),
            _ => None,
        }
    }
}
