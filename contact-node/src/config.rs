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
//!                                   # (backups and acceptors may leave the key out:
//!                                   # the contact node shares it over the node channel)
//! manage_address = true             # put X on lo (nodad) at start, remove it at stop
//!
//! [route_optimization]              # optional
//! enabled = true                    # switch at run time: ctl route-optimization --args '{"enabled":true}'
//! delay_s = 0.0                     # wait this long after a client shows up before RR + BU
//! lifetime_s = 420                  # binding lifetime asked of clients (<= 420)
//! peer_scan_s = 1.0                 # also find clients among the kernel's TCP sockets on X (0 = off)
//! max_clients = 65536
//!
//! [services.echo]                   # optional built-in test service: TCP echo on [X]:port
//! port = 7
//! [services.stream]                 # optional: the sequence-checked test stream on [X]:port
//! port = 9000
//! [services.forward]                # optional: serve migrated connections of an unmodified
//! port = 8080                       # server on [X]:port by splicing them to `to`
//! to = "[::1]:8080"
//! [services.legacy]                 # optional: move the connections of an unmodified server
//! port = 8081                       # that listens on [X]:port or [::]:port in this namespace;
//! forward_to = "[::1]:8081"         # migrated ones are spliced to its local instance here
//! # pid = 1234                      # the server process (default: whoever holds the socket)
//!
//! [group]                           # optional: the anycast group (client handoff)
//! me = "K"                          # this member's name
//! secret = "00112233..."            # group secret, hex (or secret_file = "group.secret")
//! policy = "round_robin"            # round_robin | least_connections | lowest_rtt | client_hash
//! auto_handoff = false              # contact node: hand each new client off by policy
//! port = 4500                       # node channel port (on each member's care-of address)
//! heartbeat_ms = 100                # failover (when a member has the backup role):
//! dead_after_ms = 300               # heartbeat interval, silence before takeover,
//! # quorum = 2                      # members heard to take over (default: a majority)
//! [[group.member]]
//! name = "K"
//! care_of_address = "2001:db8:3::10"
//! roles = ["contact", "acceptor"]   # contact | backup | acceptor
//! [[group.member]]
//! name = "A"
//! care_of_address = "2001:db8:4::10"
//! roles = ["acceptor", "backup"]
//! ```
//!
//! Only the member with the `contact` role registers X at the home agent;
//! the others take clients handed to them. Members with the `backup` role
//! (in order of priority) hold the contact node's replicated state and take
//! X over when it falls silent (`crate::app::failover`).

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mip6_anycast::crypto::{GroupSecret, MAX_RR_BINDING_LIFETIME};
use mip6_anycast::daemon::config::{
    ConfigError, DaemonConfig, DaemonSection, EngineSection, HexKey, KeyMaterial, OneOrMany,
    Seconds, check_unicast, resolve_path, validate_shell,
};
use mip6_anycast::proto::failover::RegistrationKey;
use mip6_anycast::proto::handoff::Policy;
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
    /// `[anycast]`, or `[[anycast]]` for several anycast addresses (each
    /// with its own contact node and backups).
    pub anycast: OneOrMany<AnycastSection>,
    /// `[route_optimization]`.
    #[serde(default)]
    pub route_optimization: RoSection,
    /// `[services]`.
    #[serde(default)]
    pub services: ServicesSection,
    /// `[group]`.
    pub group: Option<GroupSection>,
    /// Per anycast address, the resolved MN-HA security association
    /// (filled by validation; `None` for a member that is not that
    /// address's contact node and names no key material: it gets the key
    /// from the contact node).
    #[serde(skip)]
    pub sa: Vec<Option<RegistrationKey>>,
    /// Per anycast address, its contact node, backups and node-channel
    /// port (filled by validation when there is a `[group]`).
    #[serde(skip)]
    pub roles: Vec<AnycastRoles>,
}

/// Who serves one anycast address in the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnycastRoles {
    /// The configured contact node.
    pub contact: String,
    /// Its backups, in order of priority.
    pub backups: Vec<String>,
    /// The node channel's TCP port for this address.
    pub port: u16,
}

impl AnycastRoles {
    /// The contact node then its backups (empty without backups: no
    /// failover).
    pub fn succession(&self) -> Vec<String> {
        if self.backups.is_empty() {
            return Vec::new();
        }
        std::iter::once(self.contact.clone())
            .chain(self.backups.iter().cloned())
            .collect()
    }
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
    /// With a `[group]`: this address's contact node (default: the member
    /// with the `contact` role).
    pub contact: Option<String>,
    /// ... and its backups by priority (default: the members with the
    /// `backup` role, in order).
    pub backups: Option<Vec<String>>,
    /// ... and the node channel's port for it (default `group.port` plus
    /// the entry's index).
    pub group_port: Option<u16>,
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
    /// `[services.stream]`: the sequence-checked test stream.
    pub stream: Option<StreamSection>,
    /// `[services.forward]`: connections of an unmodified server.
    pub forward: Option<ForwardSection>,
    /// `[services.legacy]`: an unmodified server whose connections move.
    pub legacy: Option<LegacySection>,
}

/// `[group]`: the anycast group of X (DESIGN.md 5).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    /// This member's name.
    pub me: String,
    /// The group secret, hex (the root of every group key, HKDF).
    pub secret: Option<HexKey>,
    /// ... or a file holding it (hex or raw).
    pub secret_file: Option<PathBuf>,
    /// How automatic handoffs and drains choose an acceptor.
    #[serde(default = "default_policy")]
    pub policy: Policy,
    /// Contact node: hand each new client off by `policy` once
    /// `route_optimization.delay_s` has passed, instead of serving it.
    #[serde(default)]
    pub auto_handoff: bool,
    /// Node channel TCP port on each member's care-of address.
    #[serde(default = "default_group_port")]
    pub port: u16,
    /// Failover: heartbeat interval in ms (default 100).
    pub heartbeat_ms: Option<u64>,
    /// Failover: silence after which a member counts as gone, in ms
    /// (default 3 heartbeats).
    pub dead_after_ms: Option<u64>,
    /// Failover: members heard (self included) needed to take X over
    /// (default a majority; 1 in a group of two).
    pub quorum: Option<usize>,
    /// The members (this one included).
    #[serde(rename = "member")]
    pub members: Vec<MemberSection>,
    /// The group secret once read (filled by validation).
    #[serde(skip)]
    pub group_secret: Option<GroupSecret>,
}

fn default_policy() -> Policy {
    Policy::RoundRobin
}

fn default_group_port() -> u16 {
    4500
}

/// `[[group.member]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSection {
    /// Unique name.
    pub name: String,
    /// Its care-of address (its Binding Updates' source, node channel).
    pub care_of_address: Ipv6Addr,
    /// `contact`, `backup`, `acceptor`.
    #[serde(default)]
    pub roles: Vec<RoleName>,
}

/// A member role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    /// Registered for X at the home agent; runs the home tests.
    Contact,
    /// May take X over (failover).
    Backup,
    /// Takes clients handed to it.
    Acceptor,
}

impl MemberSection {
    /// Has `role`.
    pub fn has(&self, role: RoleName) -> bool {
        self.roles.contains(&role)
    }
}

impl GroupSection {
    /// This member's entry.
    pub fn me(&self) -> Option<&MemberSection> {
        self.members.iter().find(|m| m.name == self.me)
    }

    /// The contact node's entry.
    pub fn contact(&self) -> Option<&MemberSection> {
        self.members.iter().find(|m| m.has(RoleName::Contact))
    }

    /// Whether this member is the contact node.
    pub fn is_contact(&self) -> bool {
        self.me().is_some_and(|m| m.has(RoleName::Contact))
    }

    /// The roles of anycast entry `i`: its own names, else the members'
    /// roles.
    fn roles_for(&self, i: usize, a: &AnycastSection) -> Option<AnycastRoles> {
        let contact = a
            .contact
            .clone()
            .or_else(|| self.contact().map(|m| m.name.clone()))?;
        let backups = a.backups.clone().unwrap_or_else(|| {
            self.members
                .iter()
                .filter(|m| m.has(RoleName::Backup) && m.name != contact)
                .map(|m| m.name.clone())
                .collect()
        });
        let port = a.group_port.unwrap_or_else(|| {
            self.port
                .saturating_add(u16::try_from(i).unwrap_or(u16::MAX))
        });
        Some(AnycastRoles {
            contact,
            backups,
            port,
        })
    }

    /// Heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.unwrap_or(100))
    }

    /// Silence after which a member counts as gone.
    pub fn dead_after(&self) -> Duration {
        self.dead_after_ms
            .map_or(self.heartbeat() * 3, Duration::from_millis)
    }

    fn validate(&mut self, file: &Path, base: &Path, coa: Ipv6Addr) -> Result<(), ConfigError> {
        let err = |f: &str, m: String| ConfigError::field(file, f, m);
        let mut names = std::collections::HashSet::new();
        let mut coas = std::collections::HashSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let at = format!("group.member[{i}]");
            if mip6_anycast::proto::handoff::MemberId::new(m.name.clone()).is_err() {
                return Err(err(
                    &format!("{at}.name"),
                    format!(
                        "{:?}: 1..=64 printable ASCII characters without spaces",
                        m.name
                    ),
                ));
            }
            if !names.insert(m.name.clone()) {
                return Err(err(
                    &format!("{at}.name"),
                    format!("{:?} appears twice", m.name),
                ));
            }
            check_unicast(file, &format!("{at}.care_of_address"), m.care_of_address)?;
            if !coas.insert(m.care_of_address) {
                return Err(err(
                    &format!("{at}.care_of_address"),
                    format!("{} appears twice", m.care_of_address),
                ));
            }
        }
        let Some(me) = self.me() else {
            return Err(err(
                "group.me",
                format!("{:?} is not among the members", self.me),
            ));
        };
        if me.care_of_address != coa {
            return Err(err(
                "group.me",
                format!(
                    "member {:?} has care-of address {} but anycast.care_of_address is {coa}",
                    self.me, me.care_of_address
                ),
            ));
        }
        let contacts = self
            .members
            .iter()
            .filter(|m| m.has(RoleName::Contact))
            .count();
        if contacts > 1 {
            return Err(err(
                "group.member",
                format!(
                    "at most one member may have the contact role ({contacts} have; name each anycast address's contact instead)"
                ),
            ));
        }
        if self.port == 0 {
            return Err(err("group.port", "must not be 0".into()));
        }
        if self
            .heartbeat_ms
            .is_some_and(|h| !(10..=60_000).contains(&h))
        {
            return Err(err(
                "group.heartbeat_ms",
                "must be within 10 ..= 60000".into(),
            ));
        }
        if self.dead_after() <= self.heartbeat() {
            return Err(err(
                "group.dead_after_ms",
                format!(
                    "{:?} must exceed the heartbeat interval {:?}",
                    self.dead_after(),
                    self.heartbeat()
                ),
            ));
        }
        if self
            .quorum
            .is_some_and(|q| q == 0 || q > self.members.len())
        {
            return Err(err(
                "group.quorum",
                format!("must be within 1 ..= {} (the members)", self.members.len()),
            ));
        }
        let secret = match (&self.secret, &mut self.secret_file) {
            (Some(k), None) => {
                GroupSecret::new(&k.0).map_err(|e| err("group.secret", e.to_string()))?
            }
            (None, Some(p)) => {
                *p = resolve_path(base, p);
                mip6_anycast::daemon::config::read_group_secret(p)
                    .map_err(|e| err("group.secret_file", e))?
            }
            _ => {
                return Err(err(
                    "group.secret",
                    "give exactly one of secret (hex) and secret_file".into(),
                ));
            }
        };
        self.group_secret = Some(secret);
        Ok(())
    }
}

/// `[services.stream]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSection {
    /// TCP port on X.
    pub port: u16,
}

/// `[services.forward]`: migrated connections of an unmodified server are
/// served by splicing them to a local instance of that server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSection {
    /// The server's TCP port on X.
    pub port: u16,
    /// Where the local instance listens.
    pub to: std::net::SocketAddr,
}

/// `[services.legacy]`: an unmodified server process listening on
/// `[X]:port` or `[::]:port` in the daemon's namespace. As a donor the
/// daemon takes the server's sockets of a client (`pidfd_getfd`); as an
/// acceptor it splices migrated connections to `forward_to`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacySection {
    /// The server's TCP port on X.
    pub port: u16,
    /// Where the local instance of the server listens.
    pub forward_to: std::net::SocketAddr,
    /// The server process (default: any process of this namespace that
    /// holds the connection's socket).
    pub pid: Option<i32>,
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
        require(
            !self.anycast.0.is_empty(),
            file,
            "anycast",
            "at least one anycast address",
        )?;
        let many = self.anycast.0.len() > 1;
        let mut seen = std::collections::HashSet::new();
        let mut sas = Vec::new();
        let mut roles = Vec::new();
        for (i, a) in self.anycast.0.iter_mut().enumerate() {
            let at = if many {
                format!("anycast[{i}].")
            } else {
                "anycast.".to_string()
            };
            validate_anycast(a, &at, file, base)?;
            if !seen.insert(a.address) {
                return Err(err(
                    &format!("{at}address"),
                    format!("{} is listed twice", a.address),
                ));
            }
            let r = match &self.group {
                Some(g) => Some(g.roles_for(i, a).ok_or_else(|| {
                    err(
                        &format!("{at}contact"),
                        "name the contact node (no member has the contact role)".into(),
                    )
                })?),
                None => None,
            };
            if let (Some(g), Some(r)) = (&self.group, &r) {
                for (f, name) in std::iter::once(("contact", &r.contact))
                    .chain(r.backups.iter().map(|b| ("backups", b)))
                {
                    if !g.members.iter().any(|m| m.name == *name) {
                        return Err(err(
                            &format!("{at}{f}"),
                            format!("{name:?} is not a member"),
                        ));
                    }
                }
                if r.backups.contains(&r.contact) {
                    return Err(err(
                        &format!("{at}backups"),
                        "the contact node cannot be its own backup".into(),
                    ));
                }
                if r.port == 0 || (i > 0 && roles.iter().any(|o: &AnycastRoles| o.port == r.port)) {
                    return Err(err(
                        &format!("{at}group_port"),
                        format!("port {} is 0 or used by another anycast address", r.port),
                    ));
                }
            }
            let km = KeyMaterial {
                spi: a.spi,
                key: a.key.clone(),
                group_secret_file: a.group_secret_file.clone(),
            };
            // Backups and acceptors may leave the key out: the contact
            // node shares it over the node channel (seed 004 4.2.1).
            let keyless = a.spi.is_none() && a.key.is_none() && a.group_secret_file.is_none();
            let needs_key = match (&self.group, &r) {
                (Some(g), Some(r)) => r.contact == g.me,
                _ => true,
            };
            sas.push(if keyless && !needs_key {
                None
            } else {
                let (spi, raw) = km.resolve_raw(file, &at, a.address, None)?;
                Some(
                    RegistrationKey::new(spi, &raw)
                        .map_err(|e| err(&format!("{at}key"), e.to_string()))?,
                )
            });
            if let Some(r) = r {
                roles.push(r);
            }
        }
        self.sa = sas;
        self.roles = roles;
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
        let mut ports = std::collections::HashSet::new();
        for (f, p) in [
            (
                "services.echo.port",
                self.services.echo.as_ref().map(|e| e.port),
            ),
            (
                "services.stream.port",
                self.services.stream.as_ref().map(|e| e.port),
            ),
            (
                "services.forward.port",
                self.services.forward.as_ref().map(|e| e.port),
            ),
            (
                "services.legacy.port",
                self.services.legacy.as_ref().map(|e| e.port),
            ),
        ] {
            match p {
                Some(0) => return Err(err(f, "must not be 0".into())),
                Some(p) if !ports.insert(p) => {
                    return Err(err(f, format!("port {p} is used by another service")));
                }
                _ => {}
            }
        }
        if let Some(l) = &self.services.legacy
            && l.pid.is_some_and(|p| p <= 0)
        {
            return Err(err(
                "services.legacy.pid",
                "must be a process id (> 0)".into(),
            ));
        }
        if let Some(g) = &mut self.group {
            for (i, a) in self.anycast.0.iter().enumerate() {
                let at = if many {
                    format!("anycast[{i}]")
                } else {
                    "anycast".into()
                };
                if let Some(me) = g.me()
                    && me.care_of_address != a.care_of_address
                {
                    return Err(err(
                        "group.me",
                        format!(
                            "member {:?} has care-of address {} but {at}.care_of_address is {}",
                            g.me, me.care_of_address, a.care_of_address
                        ),
                    ));
                }
            }
            let coa = self.anycast.0[0].care_of_address;
            g.validate(file, base, coa)?;
        }
        Ok(())
    }
}

fn require(ok: bool, file: &Path, field: &str, what: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::field(file, field, format!("needs {what}")))
    }
}

/// The checks of one `[anycast]` entry (`at` is its field path prefix).
fn validate_anycast(
    a: &mut AnycastSection,
    at: &str,
    file: &Path,
    base: &Path,
) -> Result<(), ConfigError> {
    let err = |f: &str, m: String| ConfigError::field(file, format!("{at}{f}"), m);
    for (f, v) in [
        ("address", a.address),
        ("care_of_address", a.care_of_address),
        ("home_agent", a.home_agent),
    ] {
        check_unicast(file, &format!("{at}{f}"), v)?;
    }
    if a.care_of_address == a.address {
        return Err(err(
            "care_of_address",
            "must differ from the anycast address (that would be at home)".into(),
        ));
    }
    if a.home_agent == a.address || a.home_agent == a.care_of_address {
        return Err(err(
            "home_agent",
            "must differ from the anycast and care-of addresses".into(),
        ));
    }
    let l = a.lifetime();
    // The Lifetime field counts units of 4 s (RFC 6275 6.1.7).
    if l < Duration::from_secs(4) || l > Duration::from_secs(4 * 65_535) {
        return Err(err(
            "lifetime_s",
            format!("{l:?} is outside 4 ..= 262140 s (RFC 6275 6.1.7)"),
        ));
    }
    if let Some(p) = &mut a.group_secret_file {
        *p = resolve_path(base, p);
    }
    Ok(())
}
