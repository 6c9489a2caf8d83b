//! TOML configuration of the daemons: loading with the path of a bad field
//! in every error (`home.prefix: invalid IPv6 prefix "2001:db8::/129"`),
//! the sections every daemon shares (`[daemon]`, `[engine]`), and the
//! field types they use (prefixes, durations, keys, key material).
//!
//! Paths in a file are relative to the file's directory.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::crypto::{GroupSecret, KeyHierarchy, MAX_MN_HA_KEY_LEN, MnHaKey, Spi};
use crate::proto::Prefix;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A field is wrong (syntax, type, value, or a rule between fields).
    /// `field` is its dotted path (`home_address[1].key`), empty for the
    /// document itself.
    #[error("{}: {}{message}{}", .file.display(), field_prefix(.field), line_suffix(*.line))]
    Field {
        /// The file.
        file: PathBuf,
        /// The field's path.
        field: String,
        /// What is wrong.
        message: String,
        /// The line, when the parser knows it.
        line: Option<usize>,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() || field == "." {
        String::new()
    } else {
        format!("{field}: ")
    }
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

impl ConfigError {
    /// A rule about `field` is broken.
    pub fn field(file: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Field {
            file: file.to_owned(),
            field: field.into(),
            message: message.into(),
            line: None,
        }
    }

    /// The field path of a [`ConfigError::Field`].
    #[must_use]
    pub fn field_path(&self) -> Option<&str> {
        match self {
            ConfigError::Field { field, .. } => Some(field),
            ConfigError::Read { .. } => None,
        }
    }
}

/// A daemon's whole configuration file.
pub trait DaemonConfig: DeserializeOwned {
    /// The shared `[daemon]` section.
    fn daemon(&self) -> &DaemonSection;
    /// Checks rules between fields and resolves relative paths against
    /// `base` (the file's directory). Errors name the field.
    fn validate(&mut self, file: &Path, base: &Path) -> Result<(), ConfigError>;
}

/// Parses TOML `text` (from `file`, for messages) into `T`, naming the
/// path of the first bad field.
pub fn parse_toml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| {
            text.get(..s.start.min(text.len()))
                .map_or(0, |t| t.matches('\n').count())
                + 1
        })
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Field {
        file: file.to_owned(),
        field: String::new(),
        message: e.message().to_string(),
        line: line_of(e.span()),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::Field {
            file: file.to_owned(),
            field,
            message: inner.message().to_string(),
            line: line_of(inner.span()),
        }
    })
}

/// Reads, parses and validates the configuration file `path`.
pub fn load<C: DaemonConfig>(path: &Path) -> Result<C, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut cfg: C = parse_toml(&text, path)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    cfg.validate(path, base)?;
    Ok(cfg)
}

/// What every daemon's validation starts with: resolve the `[daemon]`
/// paths against `base`, check `[engine]`.
pub fn validate_shell(
    daemon: &mut DaemonSection,
    engine: &EngineSection,
    file: &Path,
    base: &Path,
) -> Result<(), ConfigError> {
    daemon.resolve(base);
    engine.validate(file)
}

/// `field` must hold a unicast routable address (RFC 6275 9.5.1 asks it of
/// home and care-of addresses; the daemons ask it of every address they
/// serve or send from).
pub fn check_unicast(file: &Path, field: &str, addr: Ipv6Addr) -> Result<(), ConfigError> {
    if crate::wire::is_valid_home_address(&addr) {
        Ok(())
    } else {
        Err(ConfigError::field(
            file,
            field,
            format!("{addr} is not a unicast routable address"),
        ))
    }
}

/// `path` relative to `base` unless absolute.
#[must_use]
pub fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// `[daemon]`: where the daemon keeps its control socket and state, and
/// how much it logs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Control socket; default `/run/mip6-anycast/[NETNS/]DAEMON.sock`
    /// (see [`super::system::default_control_socket`]).
    pub control_socket: Option<PathBuf>,
    /// State directory; default `/var/lib/mip6-anycast/[NETNS/]DAEMON`.
    pub state_dir: Option<PathBuf>,
    /// Log filter (`info`, `debug`, or an `EnvFilter` directive such as
    /// `mip6_anycast=debug`); `--log-level` and `RUST_LOG` win.
    pub log_level: Option<String>,
    /// How long a shutdown waits for deregistrations to be acknowledged.
    pub shutdown_grace_s: Option<Seconds>,
}

impl DaemonSection {
    /// Resolves relative paths against `base`.
    pub fn resolve(&mut self, base: &Path) {
        if let Some(p) = &mut self.control_socket {
            *p = resolve_path(base, p);
        }
        if let Some(p) = &mut self.state_dir {
            *p = resolve_path(base, p);
        }
    }

    /// The shutdown grace (default 2 s).
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace_s
            .map_or(Duration::from_secs(2), Seconds::duration)
    }
}

/// `[engine]`: the datapath's TUN and steering.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Interfaces whose ingress is steered; default every interface but
    /// `lo` and the engine's own TUN.
    pub interfaces: Option<Vec<String>>,
    /// Name of the engine's TUN device.
    #[serde(default = "default_tun")]
    pub tun: String,
    /// MTU of the links packets leave on; default the smallest MTU of the
    /// steered interfaces.
    pub path_mtu: Option<u32>,
    /// The engine's fwmark (non-zero).
    pub fwmark: Option<u32>,
    /// Routing table of the "to home address" routes (the "from" table is
    /// the next one).
    pub table: Option<u32>,
    /// Priority of the steering rules (the "from" rules get the next one).
    pub rule_priority: Option<u32>,
    /// `"auto"` (default: TUN offloads when the kernel allows them),
    /// `"raw"` (one packet per read, raw socket out) or `"tun-offload"`
    /// (refuse to start without offloads).
    #[serde(default)]
    pub datapath: crate::engine::datapath::DatapathMode,
}

fn default_tun() -> String {
    "mip0".into()
}

impl Default for EngineSection {
    fn default() -> Self {
        Self {
            interfaces: None,
            tun: default_tun(),
            path_mtu: None,
            fwmark: None,
            table: None,
            rule_priority: None,
            datapath: Default::default(),
        }
    }
}

impl EngineSection {
    /// Checks names and numbers.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let ifname_ok = |n: &str| !n.is_empty() && n.len() < 16 && !n.contains(['/', ' ', '\0']);
        if !ifname_ok(&self.tun) {
            return Err(ConfigError::field(
                file,
                "engine.tun",
                format!("invalid interface name {:?}", self.tun),
            ));
        }
        for (i, n) in self.interfaces.iter().flatten().enumerate() {
            if !ifname_ok(n) {
                return Err(ConfigError::field(
                    file,
                    format!("engine.interfaces[{i}]"),
                    format!("invalid interface name {n:?}"),
                ));
            }
            if *n == self.tun || n == "lo" {
                return Err(ConfigError::field(
                    file,
                    format!("engine.interfaces[{i}]"),
                    format!("{n:?} cannot be steered (loopback or the engine's TUN)"),
                ));
            }
        }
        if let Some(m) = self.path_mtu
            && !(1280 + 40..=65535).contains(&m)
        {
            return Err(ConfigError::field(
                file,
                "engine.path_mtu",
                format!("{m} is outside 1320..=65535 (IPv6 minimum plus a tunnel header)"),
            ));
        }
        if self.fwmark == Some(0) {
            return Err(ConfigError::field(file, "engine.fwmark", "must not be 0"));
        }
        Ok(())
    }
}

/// A non-negative, finite number of seconds (fractions allowed).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Seconds(f64);

impl Seconds {
    /// The duration.
    #[must_use]
    pub fn duration(self) -> Duration {
        Duration::from_secs_f64(self.0)
    }

    /// From a duration.
    #[must_use]
    pub fn from_duration(d: Duration) -> Self {
        Self(d.as_secs_f64())
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds (>= 0)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                // Up to ten years: anything longer is a typo.
                if v.is_finite() && (0.0..=315_360_000.0).contains(&v) {
                    Ok(Seconds(v))
                } else {
                    Err(E::custom(format!(
                        "invalid duration {v}: need 0 ..= 315360000 seconds"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An IPv6 prefix written `ADDR/LEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix(pub Prefix);

impl std::str::FromStr for Ipv6Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid IPv6 prefix {s:?}: {why}");
        let (a, l) = s.split_once('/').ok_or_else(|| bad("expected ADDR/LEN"))?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad("bad address"))?;
        let len: u8 = l.parse().map_err(|_| bad("bad length"))?;
        if len > 128 {
            return Err(bad("length above 128"));
        }
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        if u128::from(addr) & !mask != 0 {
            return Err(bad("host bits set"));
        }
        Ok(Ipv6Prefix(Prefix { addr, len }))
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.addr, self.0.len)
    }
}

impl Serialize for Ipv6Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// One value or a list of them (`prefix = "a/64"` or `prefix = ["a/64",
/// "b/64"]`), or a table or an array of tables (`[x]` or `[[x]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| OneOrMany(vec![t]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element()? {
                    if out.len() >= 4096 {
                        return Err(de::Error::custom("more than 4096 entries"));
                    }
                    out.push(t);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Secret bytes written as hex. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct HexKey(pub Vec<u8>);

impl fmt::Debug for HexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexKey(<redacted, {} bytes>)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for HexKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim();
        if s.is_empty() || !s.len().is_multiple_of(2) || s.len() / 2 > MAX_MN_HA_KEY_LEN {
            return Err(de::Error::custom(format!(
                "a key is 1..={MAX_MN_HA_KEY_LEN} bytes of hex (an even number of hex digits)"
            )));
        }
        let bytes = s
            .as_bytes()
            .chunks_exact(2)
            .map(|p| {
                std::str::from_utf8(p)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| de::Error::custom("a key must be hex digits"))?;
        Ok(HexKey(bytes))
    }
}

/// Reads a group secret file (hex text, surrounding whitespace ignored).
pub fn read_group_secret(path: &Path) -> Result<GroupSecret, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Hex of the longest secret plus whitespace; refuse anything bigger.
    if meta.len() > 4096 {
        return Err(format!("{}: too large for a group secret", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    GroupSecret::from_hex(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Key material of an MN-HA security association as configured: an
/// explicit `spi` + `key`, or a group secret file from which both are
/// derived for the home address (`KeyHierarchy::mn_ha_sa`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Explicit Mobility SPI.
    pub spi: Option<u32>,
    /// Explicit shared key.
    pub key: Option<HexKey>,
    /// Group secret file (already resolved against the config's directory).
    pub group_secret_file: Option<PathBuf>,
}

impl KeyMaterial {
    /// The security association for `hoa`. `at` is the field path of the
    /// section (for messages); `fallback` a group secret file to use when
    /// the section names none.
    pub fn resolve(
        &self,
        file: &Path,
        at: &str,
        hoa: Ipv6Addr,
        fallback: Option<&Path>,
    ) -> Result<(Spi, MnHaKey), ConfigError> {
        let (spi, raw) = self.resolve_raw(file, at, hoa, fallback)?;
        let k = MnHaKey::new(&raw)
            .map_err(|e| ConfigError::field(file, format!("{at}key"), e.to_string()))?;
        Ok((spi, k))
    }

    /// [`KeyMaterial::resolve`] with the raw key (secret).
    pub fn resolve_raw(
        &self,
        file: &Path,
        at: &str,
        hoa: Ipv6Addr,
        fallback: Option<&Path>,
    ) -> Result<(Spi, Vec<u8>), ConfigError> {
        let err = |f: &str, m: String| ConfigError::field(file, format!("{at}{f}"), m);
        match (self.spi, &self.key, &self.group_secret_file) {
            (Some(spi), Some(key), None) => {
                if spi < 256 {
                    return Err(err("spi", format!("{spi} is reserved (RFC 4285: 0-255)")));
                }
                MnHaKey::new(&key.0).map_err(|e| err("key", e.to_string()))?;
                Ok((Spi(spi), key.0.clone()))
            }
            (None, None, secret) => {
                let path = secret.as_deref().or(fallback).ok_or_else(|| {
                    err(
                        "",
                        "needs key material: `spi` and `key`, or `group_secret_file`".into(),
                    )
                })?;
                let gs = read_group_secret(path).map_err(|m| err("group_secret_file", m))?;
                let (spi, key) = KeyHierarchy::new(&gs).mn_ha_sa_bytes(hoa);
                Ok((spi, key.to_vec()))
            }
            (Some(_), None, _) => Err(err("key", "`spi` needs `key`".into())),
            (None, Some(_), _) => Err(err("spi", "`key` needs `spi`".into())),
            (Some(_), Some(_), Some(_)) => Err(err(
                "group_secret_file",
                "give either `spi` + `key` or `group_secret_file`, not both".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        home: Home,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Home {
        prefix: OneOrMany<Ipv6Prefix>,
        #[serde(default)]
        lifetime_s: Option<Seconds>,
        key: Option<HexKey>,
    }

    fn parse(text: &str) -> Result<Doc, ConfigError> {
        parse_toml(text, Path::new("t.toml"))
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("[home]\nprefix = \"2001:db8::/129\"\n").unwrap_err();
        assert_eq!(e.field_path(), Some("home.prefix"));
        let msg = e.to_string();
        assert!(
            msg.starts_with("t.toml: home.prefix: invalid IPv6 prefix \"2001:db8::/129\""),
            "{msg}"
        );
        let e = parse("[home]\nprefix = [\"2001:db8::/64\", \"nope\"]\n").unwrap_err();
        assert_eq!(e.field_path(), Some("home.prefix[1]"), "{e}");
        let e = parse("[home]\nprefix = \"2001:db8::/64\"\nlifetime_s = -1\n").unwrap_err();
        assert_eq!(e.field_path(), Some("home.lifetime_s"), "{e}");
        let e = parse("[home]\nprefix = \"2001:db8::/64\"\nkey = \"abc\"\n").unwrap_err();
        assert_eq!(e.field_path(), Some("home.key"), "{e}");
        let e = parse("[home]\nprefix = \"2001:db8::/64\"\ntypo = 1\n").unwrap_err();
        assert_eq!(e.field_path(), Some("home.typo"), "{e}");
        assert!(e.to_string().contains("typo"));
        let e = parse("[home\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn values_parse() {
        let d = parse("[home]\nprefix = \"2001:db8:100::/64\"\nlifetime_s = 1.5\nkey = \"00ff\"\n")
            .unwrap();
        assert_eq!(d.home.prefix.0.len(), 1);
        assert_eq!(d.home.prefix.0[0].to_string(), "2001:db8:100::/64");
        assert_eq!(
            d.home.lifetime_s.unwrap().duration(),
            Duration::from_millis(1500)
        );
        assert_eq!(d.home.key.unwrap().0, vec![0, 255]);
        assert!("2001:db8::1/64".parse::<Ipv6Prefix>().is_err(), "host bits");
    }

    #[test]
    fn key_material_rules() {
        let f = Path::new("t.toml");
        let hoa: Ipv6Addr = "2001:db8:100::1".parse().unwrap();
        let explicit = KeyMaterial {
            spi: Some(4242),
            key: Some(HexKey(vec![1; 20])),
            group_secret_file: None,
        };
        assert_eq!(explicit.resolve(f, "a.", hoa, None).unwrap().0, Spi(4242));
        let low = KeyMaterial {
            spi: Some(7),
            ..explicit.clone()
        };
        assert_eq!(
            low.resolve(f, "a.", hoa, None).unwrap_err().field_path(),
            Some("a.spi")
        );
        let none = KeyMaterial::default();
        assert_eq!(
            none.resolve(f, "a.", hoa, None).unwrap_err().field_path(),
            Some("a.")
        );
        let dir = std::env::temp_dir().join(format!("mip6-cfg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("group.secret");
        std::fs::write(&secret, format!("{}\n", "ab".repeat(32))).unwrap();
        let derived = none.resolve(f, "a.", hoa, Some(&secret)).unwrap();
        let gs = GroupSecret::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(derived.0, KeyHierarchy::new(&gs).mn_ha_sa(hoa).0);
        std::fs::write(&secret, "zz").unwrap();
        let e = none.resolve(f, "a.", hoa, Some(&secret)).unwrap_err();
        assert_eq!(e.field_path(), Some("a.group_secret_file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
