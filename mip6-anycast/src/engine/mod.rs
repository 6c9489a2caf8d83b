//! The tunnel engine (layer 4): the system layer under the datapath.
//!
//! This part gives the engine (and the daemons and the testbed) the kernel
//! objects the datapath is built from, all programmed without `ip`/`tc`:
//!
//! - [`bpf`]: the home tunnel's kernel half (tc programs that add or
//!   strip the outer header of plain packets, GSO kept whole).
//! - [`netns`]: named network namespaces, running code inside them.
//! - [`netlink`]: an async rtnetlink handle per namespace (links, addresses,
//!   routes, rules, tc ingress steering).
//! - [`sysctl`]: `/proc/sys` inside a namespace.
//! - [`tun`]: the engine's L3 TUN device.
//! - [`tunio`]: the engine's non-blocking TUN queue (virtio header read
//!   and written beside the packet); [`vnet`]: that header's offsets,
//!   checksum completion and TCP segmentation; [`gro`]: joining TCP
//!   segments back into one GSO packet before a TUN write.
//! - [`pmtu`]: route MTUs toward destinations, for packets written back
//!   into the TUN.
//! - [`rawsock`]: the marked, header-included raw IPv6 send socket.
//! - [`steer`]: installs inbound (tc u32 + mirred) and outbound (policy
//!   routing) steering into the TUN, and the "steer to TUN" helpers.
//! - [`testing`]: the root guard and the namespace [`testing::Lab`] used by
//!   every namespace test in the workspace.
//!
//! The packet-processing loop, [`datapath`], owns one [`tunio::TunQueue`],
//! one [`rawsock::RawSender`] and (optionally) the [`steer::Steering`] of
//! its namespace, and is programmed through table updates.

pub mod bpf;
pub mod datapath;
pub mod gro;
pub mod netlink;
pub mod netns;
pub mod pmtu;
pub mod rawsock;
pub mod steer;
pub mod sysctl;
pub mod testing;
pub mod tun;
pub mod tunio;
pub mod vnet;
