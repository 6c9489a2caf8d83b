//! `/proc/sys` writes and reads inside a network namespace.
//!
//! `/proc/sys/net` shows the namespace of the thread that looks it up, so a
//! value for namespace `NAME` is read or written from a thread that entered
//! it ([`super::netns::in_netns`]).

use std::io;
use std::path::PathBuf;

use super::netns::{self, NetnsError};

/// Errors of sysctl access.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The key is empty or has `..`, `.`, empty or NUL components.
    #[error("invalid sysctl key {0:?}")]
    InvalidKey(String),
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Reading or writing the file failed.
    #[error("sysctl {key}: {source}")]
    Io {
        /// The key, `/`-separated.
        key: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Per-interface IPv6 settings (`/proc/sys/net/ipv6/conf/DEV/KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Conf {
    /// `forwarding`: route packets between interfaces.
    Forwarding,
    /// `accept_dad`: run Duplicate Address Detection.
    AcceptDad,
    /// `disable_ipv6`.
    DisableIpv6,
    /// `accept_ra`: accept Router Advertisements.
    AcceptRa,
    /// `keep_addr_on_down`: keep addresses when the link goes down.
    KeepAddrOnDown,
    /// `router_solicitations`: number of RS to send on link up.
    RouterSolicitations,
    /// `addr_gen_mode`: 1 = no link-local address.
    AddrGenMode,
    /// `mtu`.
    Mtu,
    /// `force_forwarding` (Linux 6.17+): forward packets that arrive on
    /// this interface even when `all.forwarding` is off.
    ForceForwarding,
}

impl Ipv6Conf {
    /// The file name under `conf/DEV/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ipv6Conf::Forwarding => "forwarding",
            Ipv6Conf::AcceptDad => "accept_dad",
            Ipv6Conf::DisableIpv6 => "disable_ipv6",
            Ipv6Conf::AcceptRa => "accept_ra",
            Ipv6Conf::KeepAddrOnDown => "keep_addr_on_down",
            Ipv6Conf::RouterSolicitations => "router_solicitations",
            Ipv6Conf::AddrGenMode => "addr_gen_mode",
            Ipv6Conf::Mtu => "mtu",
            Ipv6Conf::ForceForwarding => "force_forwarding",
        }
    }
}

/// The key of an IPv6 per-device setting; `dev` may be `all` or `default`.
pub fn ipv6_conf_key(dev: &str, key: Ipv6Conf) -> String {
    format!("net/ipv6/conf/{dev}/{}", key.as_str())
}

fn path_of(key: &str) -> Result<PathBuf, SysctlError> {
    let bad = key.is_empty()
        || key.contains('\0')
        || key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(SysctlError::InvalidKey(key.to_string()));
    }
    Ok(PathBuf::from("/proc/sys").join(key))
}

fn io_err(key: &str) -> impl FnOnce(io::Error) -> SysctlError + '_ {
    move |source| SysctlError::Io {
        key: key.to_string(),
        source,
    }
}

/// Writes `value` to `/proc/sys/KEY` (`/`-separated key, e.g.
/// `net/ipv6/conf/all/forwarding`) in namespace `ns`, or in the caller's
/// namespace when `ns` is `None`.
pub fn write(ns: Option<&str>, key: &str, value: &str) -> Result<(), SysctlError> {
    let path = path_of(key)?;
    let op = || std::fs::write(&path, value.as_bytes()).map_err(io_err(key));
    match ns {
        None => op(),
        Some(name) => netns::in_netns(name, op)?,
    }
}

/// Reads `/proc/sys/KEY` in namespace `ns` (trailing newline removed).
pub fn read(ns: Option<&str>, key: &str) -> Result<String, SysctlError> {
    let path = path_of(key)?;
    let op = || {
        std::fs::read_to_string(&path)
            .map(|s| s.trim_end().to_string())
            .map_err(io_err(key))
    };
    match ns {
        None => op(),
        Some(name) => netns::in_netns(name, op)?,
    }
}

/// Sets an IPv6 per-device setting (`dev` may be `all` or `default`).
pub fn set_ipv6_conf(
    ns: Option<&str>,
    dev: &str,
    key: Ipv6Conf,
    value: u32,
) -> Result<(), SysctlError> {
    write(ns, &ipv6_conf_key(dev, key), &value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(path_of("net/ipv6/conf/all/forwarding").is_ok());
        for bad in ["", "net/../x", "net//x", "/net", "net/./x", "a\0b"] {
            assert!(
                matches!(path_of(bad), Err(SysctlError::InvalidKey(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            ipv6_conf_key("eth0.5", Ipv6Conf::AcceptDad),
            "net/ipv6/conf/eth0.5/accept_dad"
        );
    }
}
