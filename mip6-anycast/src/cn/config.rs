//! The configuration file of `mip6-cn`.
//!
//! ```toml
//! [daemon]                      # optional: control_socket, state_dir, log_level, shutdown_grace_s
//! [engine]                      # optional: interfaces (default: all but lo), tun, path_mtu, ...
//!
//! [correspondent]               # optional
//! addresses = ["2001:db8:1::10"]   # default: the global addresses of the steered interfaces
//! max_bindings = 65536          # binding cache bound (RFC 6275 9.5.2: status 130 beyond)
//! max_lifetime_s = 420          # at most MAX_RR_BINDING_LIFETIME
//! nonce_interval_s = 30         # 1 ..= 30 (RFC 6275 5.2.7)
//! kcn_lifetime_s = 3600         # Kcn rotation; 0 = never
//! brr_lead_s = 20               # first Binding Refresh Request before expiry; 0 = none
//! usage_window_s = 60           # a binding used this recently is "in use" (RFC 6275 9.5.5)
//! usage_poll_s = 0.5            # how often the datapath's usage counters are read
//! binding_errors_per_s = 10     # Binding Error rate limit (RFC 6275 9.3.3)
//! datapath = "user"             # user (tunnel engine) | xfrm (kernel MIPv6) | auto (probe)
//!
//! [fallback]                    # optional: when to drop a binding (RFC 6275 9.6)
//! enabled = true
//! silence_s = 3.0               # packets go to the care-of address, nothing comes back
//! icmp_errors = true            # ICMPv6 errors for packets sent to the care-of address
//! brr_timeout_s = 3.0           # a Binding Refresh Request went unanswered
//! ```

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::crypto::{MAX_NONCE_INTERVAL, MAX_RR_BINDING_LIFETIME, MIN_NONCE_INTERVAL, NonceConfig};
use crate::daemon::config::{
    ConfigError, DaemonConfig, DaemonSection, EngineSection, Seconds, check_unicast, validate_shell,
};
use crate::proto::CorrespondentConfig;
use crate::proto::correspondent::RefreshPolicy;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnConfig {
    /// `[daemon]`.
    #[serde(default)]
    pub daemon: DaemonSection,
    /// `[engine]`.
    #[serde(default)]
    pub engine: EngineSection,
    /// `[correspondent]`.
    #[serde(default)]
    pub correspondent: CorrespondentSection,
    /// `[fallback]`.
    #[serde(default)]
    pub fallback: FallbackSection,
}

/// `[correspondent]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrespondentSection {
    /// This node's addresses (default: discovered).
    pub addresses: Option<Vec<Ipv6Addr>>,
    /// Binding cache bound.
    pub max_bindings: Option<usize>,
    /// Longest binding lifetime granted.
    pub max_lifetime_s: Option<Seconds>,
    /// Nonce generation interval.
    pub nonce_interval_s: Option<Seconds>,
    /// Kcn lifetime (0: no rotation).
    pub kcn_lifetime_s: Option<Seconds>,
    /// Lead of the first Binding Refresh Request (0: none).
    pub brr_lead_s: Option<Seconds>,
    /// Usage window for "in use".
    pub usage_window_s: Option<Seconds>,
    /// Usage polling period.
    pub usage_poll_s: Option<Seconds>,
    /// Binding Errors per second.
    pub binding_errors_per_s: Option<u32>,
    /// Datapath (`auto`, `user`, `xfrm`); `--datapath` wins.
    pub datapath: Option<super::datapath::DatapathChoice>,
}

/// `[fallback]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackSection {
    /// Whether bindings are dropped when their care-of address goes away.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Outbound packets without any inbound one for this long.
    pub silence_s: Option<Seconds>,
    /// React to ICMPv6 errors about packets sent to a care-of address.
    #[serde(default = "yes")]
    pub icmp_errors: bool,
    /// A Binding Refresh Request unanswered for this long.
    pub brr_timeout_s: Option<Seconds>,
}

fn yes() -> bool {
    true
}

impl Default for FallbackSection {
    fn default() -> Self {
        Self {
            enabled: true,
            silence_s: None,
            icmp_errors: true,
            brr_timeout_s: None,
        }
    }
}

/// The fallback rule's settings (see [`super::fallback`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackConfig {
    /// Rule on at all.
    pub enabled: bool,
    /// Silence threshold.
    pub silence: Duration,
    /// ICMPv6 errors count.
    pub icmp_errors: bool,
    /// Unanswered Binding Refresh Request threshold.
    pub brr_timeout: Duration,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackSection::default().settings()
    }
}

impl FallbackSection {
    /// The settings with defaults filled in (3 s, 3 s).
    #[must_use]
    pub fn settings(&self) -> FallbackConfig {
        FallbackConfig {
            enabled: self.enabled,
            silence: self
                .silence_s
                .map_or(Duration::from_secs(3), Seconds::duration),
            icmp_errors: self.icmp_errors,
            brr_timeout: self
                .brr_timeout_s
                .map_or(Duration::from_secs(3), Seconds::duration),
        }
    }
}

impl CorrespondentSection {
    /// The machine's configuration.
    #[must_use]
    pub fn machine(&self) -> CorrespondentConfig {
        let d = CorrespondentConfig::default();
        let secs = |s: Option<Seconds>, def: Duration| s.map_or(def, Seconds::duration);
        CorrespondentConfig {
            max_bindings: self.max_bindings.unwrap_or(65_536),
            max_lifetime: secs(self.max_lifetime_s, MAX_RR_BINDING_LIFETIME),
            refresh: RefreshPolicy {
                lead: secs(self.brr_lead_s, d.refresh.lead),
                usage_window: secs(self.usage_window_s, d.refresh.usage_window),
            },
            error_rate: self.binding_errors_per_s.unwrap_or(d.error_rate),
            error_burst: self.binding_errors_per_s.unwrap_or(d.error_burst),
            nonce: NonceConfig {
                nonce_interval: secs(self.nonce_interval_s, d.nonce.nonce_interval),
                kcn_lifetime: match self.kcn_lifetime_s {
                    None => d.nonce.kcn_lifetime,
                    Some(s) if s.duration().is_zero() => None,
                    Some(s) => Some(s.duration()),
                },
            },
            ..d
        }
    }

    /// The usage polling period (default 0.5 s).
    #[must_use]
    pub fn usage_poll(&self) -> Duration {
        self.usage_poll_s
            .map_or(Duration::from_millis(500), Seconds::duration)
    }
}

impl DaemonConfig for CnConfig {
    fn daemon(&self) -> &DaemonSection {
        &self.daemon
    }

    fn validate(&mut self, file: &Path, base: &Path) -> Result<(), ConfigError> {
        let err = |f: &str, m: String| ConfigError::field(file, f, m);
        validate_shell(&mut self.daemon, &self.engine, file, base)?;
        let c = &self.correspondent;
        for (i, a) in c.addresses.iter().flatten().enumerate() {
            check_unicast(file, &format!("correspondent.addresses[{i}]"), *a)?;
        }
        if c.addresses.as_ref().is_some_and(Vec::is_empty) {
            return Err(err(
                "correspondent.addresses",
                "empty: leave it out to use the interfaces' addresses".into(),
            ));
        }
        if c.max_bindings == Some(0) {
            return Err(err(
                "correspondent.max_bindings",
                "must be at least 1".into(),
            ));
        }
        if let Some(l) = c.max_lifetime_s
            && (l.duration() > MAX_RR_BINDING_LIFETIME || l.duration() < Duration::from_secs(4))
        {
            return Err(err(
                "correspondent.max_lifetime_s",
                format!(
                    "{:?} is outside 4 s ..= {} s (RFC 6275 12: MAX_RR_BINDING_LIFETIME)",
                    l.duration(),
                    MAX_RR_BINDING_LIFETIME.as_secs()
                ),
            ));
        }
        if let Some(n) = c.nonce_interval_s
            && !(MIN_NONCE_INTERVAL..=MAX_NONCE_INTERVAL).contains(&n.duration())
        {
            return Err(err(
                "correspondent.nonce_interval_s",
                format!(
                    "{:?} is outside {} ..= {} s (RFC 6275 5.2.7)",
                    n.duration(),
                    MIN_NONCE_INTERVAL.as_secs(),
                    MAX_NONCE_INTERVAL.as_secs()
                ),
            ));
        }
        if c.usage_poll().is_zero() || c.usage_poll() > Duration::from_secs(60) {
            return Err(err(
                "correspondent.usage_poll_s",
                "must be > 0 and at most 60".into(),
            ));
        }
        let f = self.fallback.settings();
        if f.enabled && f.silence < c.usage_poll() * 2 {
            return Err(err(
                "fallback.silence_s",
                format!(
                    "{:?} is shorter than two usage polls ({:?}): every pause would drop bindings",
                    f.silence,
                    c.usage_poll() * 2
                ),
            ));
        }
        if f.enabled && f.brr_timeout.is_zero() {
            return Err(err("fallback.brr_timeout_s", "must be > 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::parse_toml;

    fn load(text: &str) -> Result<CnConfig, ConfigError> {
        let f = Path::new("cn.toml");
        let mut c: CnConfig = parse_toml(text, f)?;
        c.validate(f, Path::new("."))?;
        Ok(c)
    }

    #[test]
    fn defaults_and_errors() {
        let c = load("").unwrap();
        assert_eq!(
            c.correspondent.machine().max_lifetime,
            MAX_RR_BINDING_LIFETIME
        );
        assert!(c.fallback.settings().enabled);
        let e = load("[correspondent]\nmax_lifetime_s = 1000\n").unwrap_err();
        assert_eq!(e.field_path(), Some("correspondent.max_lifetime_s"));
        let e = load("[correspondent]\naddresses = [\"ff02::1\"]\n").unwrap_err();
        assert_eq!(e.field_path(), Some("correspondent.addresses[0]"));
        let e = load("[correspondent]\naddresses = [\"nope\"]\n").unwrap_err();
        assert_eq!(e.field_path(), Some("correspondent.addresses[0]"), "{e}");
        let e = load("[fallback]\nsilence_s = 0.1\n").unwrap_err();
        assert_eq!(e.field_path(), Some("fallback.silence_s"));
        let e = load("[correspondent]\nnonce_interval_s = 31\n").unwrap_err();
        assert_eq!(e.field_path(), Some("correspondent.nonce_interval_s"));
        let c = load("[correspondent]\nkcn_lifetime_s = 0\nbrr_lead_s = 2\n").unwrap();
        assert_eq!(c.correspondent.machine().nonce.kcn_lifetime, None);
        assert_eq!(
            c.correspondent.machine().refresh.lead,
            Duration::from_secs(2)
        );
    }
}
