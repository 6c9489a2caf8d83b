//! Names of a lab's namespaces and interfaces.
//!
//! Every lab gets a prefix unique on the machine: `FAMILY<pid>x<n>` (e.g.
//! `mt4711x0`), where `FAMILY` is a few lowercase letters (default `mt`),
//! `<pid>` the owner's pid and `<n>` a per-process counter, raised until no
//! namespace and no state file uses the prefix (so a leftover of a crashed
//! run with a reused pid never breaks the next run). A host's namespace is
//! `<prefix>-<host>`. `testbed down --all` recognises namespaces of a family
//! by this pattern, also without a state file.
//!
//! Interfaces live inside the lab's namespaces, so their names only need to
//! be unique per host: a link's interface is named after the link if the
//! name fits the kernel's 15 bytes, else a shortened form with the link's
//! index.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use mip6_anycast::engine::netns::IFNAME_MAX;

use crate::topology::Topology;

/// The family of prefixes the testbed uses unless told otherwise.
pub const DEFAULT_FAMILY: &str = "mt";

/// Longest family name.
pub const MAX_FAMILY_LEN: usize = 12;

/// Interface names the kernel or the sysctl tree reserve.
const RESERVED_IFNAMES: [&str; 3] = ["lo", "all", "default"];

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Checks a family name: 1 to [`MAX_FAMILY_LEN`] lowercase ASCII letters
/// (no digits, so `FAMILY<pid>x<n>` parses back unambiguously).
pub fn check_family(family: &str) -> Result<(), String> {
    if family.is_empty() || family.len() > MAX_FAMILY_LEN {
        return Err(format!(
            "{family:?}: must be 1 to {MAX_FAMILY_LEN} lowercase letters"
        ));
    }
    if !family.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(format!("{family:?}: only lowercase letters a-z"));
    }
    Ok(())
}

/// The prefix `FAMILY<pid>x<n>`.
pub fn make_prefix(family: &str, pid: u32, n: u32) -> String {
    format!("{family}{pid}x{n}")
}

/// The next candidate counter value of this process.
pub(crate) fn next_run_number() -> u32 {
    RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn digits_len(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// Whether `prefix` is exactly `FAMILY<digits>x<digits>`.
pub fn is_prefix_of_family(family: &str, prefix: &str) -> bool {
    let Some(rest) = prefix.strip_prefix(family) else {
        return false;
    };
    let pid_len = digits_len(rest);
    if pid_len == 0 {
        return false;
    }
    let Some(rest) = rest.get(pid_len..).and_then(|r| r.strip_prefix('x')) else {
        return false;
    };
    let n_len = digits_len(rest);
    n_len > 0 && n_len == rest.len()
}

/// The lab prefix of namespace `ns` if it belongs to `family`
/// (`FAMILY<digits>x<digits>-<host>` with a non-empty host).
pub fn prefix_of_namespace<'a>(family: &str, ns: &'a str) -> Option<&'a str> {
    let (prefix, host) = ns.split_once('-')?;
    (!host.is_empty() && is_prefix_of_family(family, prefix)).then_some(prefix)
}

/// The namespace of `host` in the lab `prefix`.
pub fn namespace_name(prefix: &str, host: &str) -> String {
    format!("{prefix}-{host}")
}

/// Whether `name` can be used as is for an interface.
fn usable_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && !RESERVED_IFNAMES.contains(&name)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The interface name of link `index` named `name`: the name if usable,
/// else its start cut to fit with `-<index>` appended.
pub fn link_ifname(name: &str, index: usize) -> String {
    if usable_ifname(name) {
        return name.to_string();
    }
    let tail = format!("-{index}");
    let head: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(IFNAME_MAX.saturating_sub(tail.len()))
        .collect();
    let head = if head.is_empty() { "l".into() } else { head };
    format!("{head}{tail}")
}

/// The interface names of every link end: `names[i] = (a_ifname, b_ifname)`.
/// Both ends use the link's interface name; if two links of one host would
/// get the same name, every link of the lab falls back to `l<index>`.
pub fn link_ifnames(topo: &Topology) -> Vec<(String, String)> {
    let names: Vec<String> = topo
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| link_ifname(&l.name(), i))
        .collect();
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let clash = topo.links.iter().zip(&names).any(|(l, n)| {
        let a = seen.insert((l.a.as_str(), n.as_str()), 0).is_some();
        let b = seen.insert((l.b.as_str(), n.as_str()), 0).is_some();
        a || b
    });
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let n = if clash { format!("l{i}") } else { n };
            (n.clone(), n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_back() {
        let p = make_prefix("mt", 4711, 3);
        assert_eq!(p, "mt4711x3");
        assert!(is_prefix_of_family("mt", &p));
        assert_eq!(prefix_of_namespace("mt", "mt4711x3-HA"), Some("mt4711x3"));
        assert_eq!(
            prefix_of_namespace("mt", "mt4711x3-a-b"),
            Some("mt4711x3"),
            "host names may contain '-'"
        );
        for other in [
            "mt4711x3-",
            "mt4711x-C",
            "mtx3-C",
            "mt47a11x3-C",
            "mtq4711x3-C",
            "mip6t-12-3",
            "xmt1x1-C",
            "mt1x1",
        ] {
            assert_eq!(prefix_of_namespace("mt", other), None, "{other}");
        }
        // Another family never matches the default one, nor the reverse.
        assert_eq!(prefix_of_namespace("mt", "mtq1x1-C"), None);
        assert_eq!(prefix_of_namespace("mtq", "mt1x1-C"), None);
        assert_eq!(prefix_of_namespace("mtq", "mtq1x1-C"), Some("mtq1x1"));
    }

    #[test]
    fn families_are_letters() {
        assert!(check_family("mt").is_ok());
        for bad in ["", "m1", "MT", "m-t", "abcdefghijklm"] {
            assert!(check_family(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ifnames_fit_and_are_unique_per_host() {
        assert_eq!(link_ifname("c-r", 0), "c-r");
        assert_eq!(link_ifname("lo", 2), "lo-2");
        assert_eq!(link_ifname("all", 0), "all-0");
        let long = link_ifname("a-very-long-link-name-indeed", 12);
        assert!(long.len() <= IFNAME_MAX && long.ends_with("-12"), "{long}");

        let text = |a: &str, b: &str| {
            format!(
                "[[host]]\nname=\"A\"\n[[host]]\nname=\"B\"\n[[host]]\nname=\"C\"\n\
                 [[link]]\nname=\"{a}\"\na=\"A\"\nb=\"B\"\n\
                 [[link]]\nname=\"{b}\"\na=\"A\"\nb=\"C\"\n"
            )
        };
        let t = Topology::from_toml_str(&text("x", "y")).unwrap();
        assert_eq!(
            link_ifnames(&t),
            [("x".into(), "x".into()), ("y".into(), "y".into())]
        );
        // Both cut to the same 15 bytes plus a different index: no clash.
        let t = Topology::from_toml_str(&text(
            "shared-start-of-a-long-name-1",
            "shared-start-of-a-long-name-2",
        ))
        .unwrap();
        let n = link_ifnames(&t);
        assert_ne!(n[0].0, n[1].0);
        // A cut name equal to another link's name on the same host: fallback.
        let t = Topology::from_toml_str(&text("lo-1", "lo")).unwrap();
        let n = link_ifnames(&t);
        assert_eq!(n, [("l0".into(), "l0".into()), ("l1".into(), "l1".into())]);
    }
}
