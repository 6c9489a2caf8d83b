//! The serde model of a topology file (`[lab]`, `[[host]]`, `[[link]]`,
//! `[[route]]`, `[[daemon]]`). Every table rejects unknown keys so that a typo
//! is an error, not a silently ignored setting.

use std::net::Ipv6Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::prefix::{Ipv6Prefix, route_dst};

/// Default MTU of a link (both kinds).
pub const DEFAULT_MTU: u32 = 1500;

/// `[lab]`: optional lab-wide settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    /// A short name for the lab (used in reports).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Base seed of every emulated link's loss/jitter generator; a link's own
    /// seed is derived from it and the link name unless `link.seed` is set.
    #[serde(default)]
    pub seed: u64,
}

/// Whether a node is an end host, a router, or an end host run as a
/// QEMU guest (`vm`: its namespace only relays between the links and the
/// guest's TAP device; the link addresses and routes are the guest's,
/// see `crate::vm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    #[default]
    Host,
    Router,
    Vm,
}

/// `[[host]]`: one network namespace.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    /// `kind = "host" | "router" | "vm"` (also accepted as `role`).
    #[serde(default, alias = "role")]
    pub kind: HostKind,
    /// IPv6 forwarding; defaults to on for routers and off for hosts.
    pub forwarding: Option<bool>,
    /// Addresses put on `lo` (e.g. an anycast address, usually `/128`).
    #[serde(default)]
    pub lo: Vec<Ipv6Prefix>,
}

impl Host {
    /// Effective forwarding setting (a `vm` host's namespace always
    /// forwards: it relays the guest's packets).
    pub fn forwards(&self) -> bool {
        self.kind == HostKind::Vm || self.forwarding.unwrap_or(self.kind == HostKind::Router)
    }
}

/// How a link is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A kernel veth pair: no delay, no loss, no capture by the testbed.
    #[default]
    Veth,
    /// A TUN device in each namespace joined by the testbed process, which
    /// delays, drops and captures (see `crate::linkemu`).
    Emulated,
}

/// Per-direction overrides of an emulated link (`a_to_b = { ... }`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionSpec {
    pub delay_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss: Option<f64>,
    pub rate_mbit: Option<f64>,
    pub reorder: Option<bool>,
    pub queue_packets: Option<u32>,
    pub queue_bytes: Option<u64>,
}

/// The two directions of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkDir {
    /// Packets sent by end `a`, received by end `b`.
    AToB,
    /// Packets sent by end `b`, received by end `a`.
    BToA,
}

impl LinkDir {
    /// The key of this direction's table in a topology file.
    pub fn key(self) -> &'static str {
        match self {
            LinkDir::AToB => "a_to_b",
            LinkDir::BToA => "b_to_a",
        }
    }
}

/// The resolved emulation parameters of one direction (symmetric values,
/// overridden by the direction's table).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectionParams {
    /// One-way propagation delay in milliseconds (sub-ms precision).
    pub delay_ms: f64,
    /// Uniform jitter in milliseconds: each packet gets `delay ± jitter`.
    pub jitter_ms: f64,
    /// Loss probability, 0..=1.
    pub loss: f64,
    /// Serialization rate; `None` = unlimited.
    pub rate_mbit: Option<f64>,
    /// Whether jitter may reorder packets (default: no).
    pub reorder: bool,
    /// Queue limit in packets; `None` = engine default.
    pub queue_packets: Option<u32>,
    /// Queue limit in bytes; `None` = engine default.
    pub queue_bytes: Option<u64>,
}

/// `[[link]]`: a point-to-point link between two hosts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Link name (interface names, pcap file name); default `"<a>-<b>"`.
    pub name: Option<String>,
    /// Host at end `a`.
    pub a: String,
    /// Host at end `b`.
    pub b: String,
    #[serde(default)]
    pub kind: LinkKind,
    /// Symmetric one-way delay (ms), emulated links only.
    pub delay_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss: Option<f64>,
    pub rate_mbit: Option<f64>,
    pub reorder: Option<bool>,
    pub queue_packets: Option<u32>,
    pub queue_bytes: Option<u64>,
    /// Overrides for packets from `a` to `b`.
    pub a_to_b: Option<DirectionSpec>,
    /// Overrides for packets from `b` to `a`.
    pub b_to_a: Option<DirectionSpec>,
    /// Write `DIR/pcap/<link>.pcap` (emulated links only).
    #[serde(default)]
    pub capture: bool,
    /// Addresses (with on-link prefix length) of end `a`.
    #[serde(default)]
    pub a_addr: Vec<Ipv6Prefix>,
    /// Addresses (with on-link prefix length) of end `b`.
    #[serde(default)]
    pub b_addr: Vec<Ipv6Prefix>,
    /// MTU of both ends; default 1500.
    pub mtu: Option<u32>,
    /// Seed of this link's loss/jitter generator (default: derived).
    pub seed: Option<u64>,
}

impl Link {
    /// The effective name: `name`, or `"<a>-<b>"`.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.a, self.b))
    }

    /// The effective MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu.unwrap_or(DEFAULT_MTU)
    }

    /// The sending host of direction `dir`.
    pub fn from_host(&self, dir: LinkDir) -> &str {
        match dir {
            LinkDir::AToB => &self.a,
            LinkDir::BToA => &self.b,
        }
    }

    /// The per-direction override table, if any.
    pub fn direction_spec(&self, dir: LinkDir) -> Option<&DirectionSpec> {
        match dir {
            LinkDir::AToB => self.a_to_b.as_ref(),
            LinkDir::BToA => self.b_to_a.as_ref(),
        }
    }

    /// The resolved parameters of one direction. Meaningful for emulated
    /// links; a veth link resolves to all zeros.
    pub fn direction(&self, dir: LinkDir) -> DirectionParams {
        let d = self.direction_spec(dir);
        let pick_f = |o: Option<f64>, s: Option<f64>| o.or(s);
        DirectionParams {
            delay_ms: pick_f(d.and_then(|d| d.delay_ms), self.delay_ms).unwrap_or(0.0),
            jitter_ms: pick_f(d.and_then(|d| d.jitter_ms), self.jitter_ms).unwrap_or(0.0),
            loss: pick_f(d.and_then(|d| d.loss), self.loss).unwrap_or(0.0),
            rate_mbit: pick_f(d.and_then(|d| d.rate_mbit), self.rate_mbit),
            reorder: d.and_then(|d| d.reorder).or(self.reorder).unwrap_or(false),
            queue_packets: d.and_then(|d| d.queue_packets).or(self.queue_packets),
            queue_bytes: d.and_then(|d| d.queue_bytes).or(self.queue_bytes),
        }
    }

    /// Host and addresses of end `a` (`side_a = true`) or `b`.
    pub fn end(&self, side_a: bool) -> (&str, &[Ipv6Prefix]) {
        if side_a {
            (&self.a, &self.a_addr)
        } else {
            (&self.b, &self.b_addr)
        }
    }
}

/// `[[route]]`: a static route in one host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub host: String,
    /// Destination prefix, or `"default"` for `::/0`.
    #[serde(with = "route_dst")]
    pub dst: Ipv6Prefix,
    /// Gateway; must be on-link (inside a prefix of one of the host's links),
    /// or link-local together with `link`.
    pub via: Option<Ipv6Addr>,
    /// The link (by name) to route over; required without `via` or with a
    /// link-local `via`.
    pub link: Option<String>,
}

/// Which daemon a `[[daemon]]` entry starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaemonKind {
    HomeAgent,
    ContactNode,
    Mip6Cn,
    PiasProxy,
    /// Any program, named by `program`.
    Custom,
}

impl DaemonKind {
    /// The name as written in topology files.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonKind::HomeAgent => "home-agent",
            DaemonKind::ContactNode => "contact-node",
            DaemonKind::Mip6Cn => "mip6-cn",
            DaemonKind::PiasProxy => "pias-proxy",
            DaemonKind::Custom => "custom",
        }
    }
}

/// A daemon's configuration: a path to a TOML file (relative to the topology
/// file) or an inline table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum DaemonConfig {
    Path(PathBuf),
    Inline(toml::Table),
}

/// `[[daemon]]`: a process started inside a host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// Unique name; default `"<kind>-<host>"`.
    pub name: Option<String>,
    pub host: String,
    pub kind: DaemonKind,
    /// The program of a `custom` daemon (path or name on PATH).
    pub program: Option<String>,
    pub config: Option<DaemonConfig>,
    #[serde(default)]
    pub args: Vec<String>,
}

impl Daemon {
    /// The effective name: `name`, or `"<kind>-<host>"`.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.kind.as_str(), self.host))
    }
}
