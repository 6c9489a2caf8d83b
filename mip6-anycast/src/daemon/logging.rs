//! Log setup: `tracing` to stderr with an `EnvFilter`.
//!
//! The filter comes from, in order: `--log-level`, `RUST_LOG`, the
//! config's `daemon.log_level`, else `info`. A bare level (`debug`) applies
//! to the daemon's own crates and `mip6_anycast`, other crates stay at
//! `warn`; anything else is taken as an `EnvFilter` directive.

use tracing_subscriber::EnvFilter;

/// Crates whose logs a bare level applies to.
const OWN_CRATES: &[&str] = &["mip6_anycast", "home_agent", "contact_node", "mip6_cn"];

fn directive(spec: &str) -> String {
    let spec = spec.trim();
    let is_level = matches!(
        spec.to_ascii_lowercase().as_str(),
        "error" | "warn" | "info" | "debug" | "trace" | "off"
    );
    if is_level {
        let mut d = String::from("warn");
        for c in OWN_CRATES {
            d.push_str(&format!(",{c}={spec}"));
        }
        d
    } else {
        spec.to_string()
    }
}

/// The filter for `cli` (from `--log-level`) and `config` (from the file).
pub fn filter(cli: Option<&str>, config: Option<&str>) -> Result<EnvFilter, String> {
    let env = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    let spec = cli
        .map(str::to_string)
        .or(env)
        .or_else(|| config.map(str::to_string))
        .unwrap_or_else(|| "info".into());
    EnvFilter::try_new(directive(&spec)).map_err(|e| format!("invalid log filter {spec:?}: {e}"))
}

/// Installs the global subscriber (stderr, no colours unless a terminal).
/// A second call does nothing.
pub fn init(filter: EnvFilter) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives() {
        assert!(directive("debug").contains("mip6_anycast=debug"));
        assert_eq!(directive("mip6_anycast=trace"), "mip6_anycast=trace");
        assert!(filter(Some("info"), None).is_ok());
        assert!(filter(Some("=[bad"), None).is_err());
    }
}
