//! Helpers for namespace tests, shared by every crate of the workspace.
//!
//! - [`require_root`] / [`require_root!`](crate::require_root): the guard
//!   every test that needs root calls first. Without root it prints a loud
//!   `SKIP (needs root): NAME` line and the test returns; with `CI=true` it
//!   fails instead, so CI never skips silently.
//! - [`Lab`]: N fresh namespaces joined by veth pairs with IPv6 addresses and
//!   static routes, deleted again on drop (also when the test panics).
//!
//! ```no_run
//! # async fn t() -> Result<(), Box<dyn std::error::Error>> {
//! use mip6_anycast::engine::testing::{Lab, require_root};
//! if !require_root("my_test") {
//!     return Ok(());
//! }
//! let lab = Lab::chain(3).await?; // ns0 -- ns1 -- ns2
//! let server = lab.link(1).b_addr; // ns2's address on link 1
//! # let _ = (lab, server);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::io::Write;
use std::net::Ipv6Addr;

use super::netlink::{AddrOptions, Netlink, NetlinkError, Route6, VethEnd};
use super::netns::{NetnsError, NetnsGuard};
use super::sysctl::{self, Ipv6Conf, SysctlError};

/// Returns `true` when running as root (euid 0). Otherwise prints a loud
/// `SKIP (needs root): <test_name>` to stderr and returns `false` — unless
/// the environment has `CI=true`, where it panics: CI must not skip.
pub fn require_root(test_name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test_name} needs root (namespaces, netlink, TUN) and CI=true forbids skipping: run the tests as root"
        );
    }
    // Straight to the stderr handle, not `eprintln!`: the test harness
    // captures the macros' output, and this line must always be seen.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** SKIP (needs root): {test_name} ***"
    );
    false
}

/// `require_root!("name")`: returns from the enclosing test (which must
/// return `()`) when [`require_root`] says no.
#[macro_export]
macro_rules! require_root {
    ($name:expr) => {
        if !$crate::engine::testing::require_root($name) {
            return;
        }
    };
}

/// Errors of lab construction.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A link names a node that does not exist, or joins a node to itself.
    #[error("invalid lab topology: {0}")]
    Topology(String),
    /// Namespace handling failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Netlink programming failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A sysctl failed.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// The helper thread of a blocking constructor failed.
    #[error("lab runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// A veth pair of the lab. Link `k` uses prefix `fd00:6d36:0:k::/64`, with
/// `::1` on the `a` end and `::2` on the `b` end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabLink {
    /// Node index of the `a` end.
    pub a: usize,
    /// Node index of the `b` end.
    pub b: usize,
    /// Interface name in node `a` (`v{k}a`).
    pub a_ifname: String,
    /// Interface name in node `b` (`v{k}b`).
    pub b_ifname: String,
    /// Interface index in node `a`.
    pub a_index: u32,
    /// Interface index in node `b`.
    pub b_index: u32,
    /// Address of the `a` end.
    pub a_addr: Ipv6Addr,
    /// Address of the `b` end.
    pub b_addr: Ipv6Addr,
    /// The link's /64 prefix.
    pub prefix: Ipv6Addr,
}

impl LabLink {
    /// The link's prefix length (64).
    pub const PREFIX_LEN: u8 = 64;

    /// The end of this link in `node`: (ifname, ifindex, address).
    pub fn end(&self, node: usize) -> Option<(&str, u32, Ipv6Addr)> {
        if node == self.a {
            Some((&self.a_ifname, self.a_index, self.a_addr))
        } else if node == self.b {
            Some((&self.b_ifname, self.b_index, self.b_addr))
        } else {
            None
        }
    }

    /// The node at the other end from `node`.
    pub fn peer(&self, node: usize) -> Option<usize> {
        if node == self.a {
            Some(self.b)
        } else if node == self.b {
            Some(self.a)
        } else {
            None
        }
    }
}

/// Namespaces joined by veth pairs, removed on drop.
///
/// Every node has `lo` up, DAD off, IPv6 forwarding on, and static routes to
/// every link prefix of its connected component (shortest hop count). The
/// constructors return once every link address is usable.
#[derive(Debug)]
pub struct Lab {
    links: Vec<LabLink>,
    nodes: Vec<NetnsGuard>,
}

fn link_prefix(k: usize) -> Result<Ipv6Addr, LabError> {
    let k = u16::try_from(k).map_err(|_| LabError::Topology("too many links".into()))?;
    Ok(Ipv6Addr::new(0xfd00, 0x6d36, 0, k, 0, 0, 0, 0))
}

fn with_host(prefix: Ipv6Addr, host: u16) -> Ipv6Addr {
    let mut s = prefix.segments();
    s[7] = host;
    Ipv6Addr::from(s)
}

impl Lab {
    /// How long construction waits for the kernel to make addresses usable
    /// before it gives up (a hang guard).
    pub const READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// `n` nodes in a line: node `i` and `i+1` joined by link `i`.
    pub async fn chain(n: usize) -> Result<Lab, LabError> {
        let links: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        Self::new(n, &links).await
    }

    /// `n` nodes and one veth pair per `(a, b)` in `links`.
    pub async fn new(n: usize, links: &[(usize, usize)]) -> Result<Lab, LabError> {
        for &(a, b) in links {
            if a >= n || b >= n || a == b {
                return Err(LabError::Topology(format!(
                    "link ({a}, {b}) with {n} nodes"
                )));
            }
        }
        let mut lab = Lab {
            links: Vec::new(),
            nodes: Vec::new(),
        };
        for _ in 0..n {
            let ns = NetnsGuard::create_unique("mip6t")?;
            let name = ns.name().to_string();
            lab.nodes.push(ns);
            for dev in ["all", "default"] {
                sysctl::set_ipv6_conf(Some(&name), dev, Ipv6Conf::AcceptDad, 0)?;
                sysctl::set_ipv6_conf(Some(&name), dev, Ipv6Conf::Forwarding, 1)?;
            }
            let nl = Netlink::in_netns(&name)?;
            nl.set_link_up(nl.link_index("lo").await?).await?;
        }
        let handles = lab
            .nodes
            .iter()
            .map(|ns| Netlink::in_netns(ns.name()))
            .collect::<Result<Vec<_>, _>>()?;
        for (k, &(a, b)) in links.iter().enumerate() {
            let link = lab.make_link(&handles, k, a, b).await?;
            lab.links.push(link);
        }
        lab.add_routes(&handles).await?;
        // Addresses are usable only once their local routes exist.
        for l in &lab.links {
            handles[l.a].wait_local(l.a_addr, Self::READY_LIMIT).await?;
            handles[l.b].wait_local(l.b_addr, Self::READY_LIMIT).await?;
        }
        Ok(lab)
    }

    async fn make_link(
        &self,
        nl: &[Netlink],
        k: usize,
        a: usize,
        b: usize,
    ) -> Result<LabLink, LabError> {
        let (a_ifname, b_ifname) = (format!("v{k}a"), format!("v{k}b"));
        let b_fd = self.nodes[b].open()?;
        nl[a]
            .add_veth(
                VethEnd::new(&a_ifname),
                VethEnd::new(&b_ifname).in_netns(std::os::fd::AsFd::as_fd(&b_fd)),
            )
            .await?;
        let prefix = link_prefix(k)?;
        let (a_addr, b_addr) = (with_host(prefix, 1), with_host(prefix, 2));
        let a_index = nl[a].link_index(&a_ifname).await?;
        let b_index = nl[b].link_index(&b_ifname).await?;
        for (h, idx, addr) in [(&nl[a], a_index, a_addr), (&nl[b], b_index, b_addr)] {
            h.add_address(idx, addr.into(), LabLink::PREFIX_LEN, AddrOptions::NODAD)
                .await?;
            h.set_link_up(idx).await?;
        }
        Ok(LabLink {
            a,
            b,
            a_ifname,
            b_ifname,
            a_index,
            b_index,
            a_addr,
            b_addr,
            prefix,
        })
    }

    /// For every node, a route to every non-attached link prefix via the
    /// first hop of a shortest path.
    async fn add_routes(&self, nl: &[Netlink]) -> Result<(), LabError> {
        for (src, handle) in nl.iter().enumerate() {
            // first_link[n]: the link leaving `src` on a shortest path to n.
            let mut first_link: Vec<Option<usize>> = vec![None; self.nodes.len()];
            let mut dist: Vec<Option<usize>> = vec![None; self.nodes.len()];
            dist[src] = Some(0);
            let mut queue = VecDeque::from([src]);
            while let Some(n) = queue.pop_front() {
                for (k, l) in self.links.iter().enumerate() {
                    if let Some(m) = l.peer(n)
                        && dist[m].is_none()
                    {
                        dist[m] = dist[n].map(|d| d + 1);
                        first_link[m] = if n == src { Some(k) } else { first_link[n] };
                        queue.push_back(m);
                    }
                }
            }
            for l in &self.links {
                if l.end(src).is_some() {
                    continue;
                }
                // Toward the nearer end of the link.
                let near = match (dist[l.a], dist[l.b]) {
                    (Some(da), Some(db)) if db < da => l.b,
                    (Some(_), _) => l.a,
                    (None, _) => l.b,
                };
                let Some(k) = first_link[near] else {
                    continue;
                };
                let hop = &self.links[k];
                let (Some((_, oif, _)), Some(peer)) = (hop.end(src), hop.peer(src)) else {
                    continue;
                };
                let Some((_, _, gw)) = hop.end(peer) else {
                    continue;
                };
                handle
                    .add_route(&Route6::new(l.prefix, LabLink::PREFIX_LEN).via(gw).dev(oif))
                    .await?;
            }
        }
        Ok(())
    }

    /// Like [`Lab::chain`], from synchronous code (builds on a helper thread
    /// with its own runtime).
    pub fn chain_blocking(n: usize) -> Result<Lab, LabError> {
        let links: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        Self::new_blocking(n, &links)
    }

    /// Like [`Lab::new`], from synchronous code.
    pub fn new_blocking(n: usize, links: &[(usize, usize)]) -> Result<Lab, LabError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(Self::new(n, links))
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// No nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Namespace name of node `i` (panics if out of range: a test bug).
    pub fn ns(&self, i: usize) -> &str {
        self.nodes[i].name()
    }

    /// All links.
    pub fn links(&self) -> &[LabLink] {
        &self.links
    }

    /// Link `k` (panics if out of range: a test bug).
    pub fn link(&self, k: usize) -> &LabLink {
        &self.links[k]
    }

    /// Node `i`'s address on its first link.
    pub fn addr(&self, i: usize) -> Option<Ipv6Addr> {
        self.links.iter().find_map(|l| l.end(i).map(|e| e.2))
    }

    /// A netlink handle on node `i` (on the caller's runtime).
    pub fn netlink(&self, i: usize) -> Result<Netlink, NetlinkError> {
        Netlink::in_netns(self.ns(i))
    }
}
