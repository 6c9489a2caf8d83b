//! The engine's TUN device: L3 (`IFF_TUN`), no packet-information header, one
//! IPv6 packet per read or write.
//!
//! A TUN belongs to the namespace of the thread that opened `/dev/net/tun`,
//! so [`Tun::create_in`] creates it from a thread inside the namespace; the
//! fd then works from any thread. [`Tun`] is the blocking form (also for
//! plain-fd threads such as the testbed's delay line, see [`Tun::into_fd`]);
//! [`Tun::into_async`] turns it into an [`AsyncTun`] on the current tokio
//! runtime.
//!
//! Hooks for later performance work: [`TunConfig::offload`] sets
//! `IFF_VNET_HDR` (every packet then starts with a 10-byte `virtio_net_hdr`
//! and may be a 64 KB GSO packet, see tun-rs' `recv_multiple` /
//! `send_multiple` through [`AsyncTun::device`]), [`TunConfig::multi_queue`]
//! sets `IFF_MULTI_QUEUE` ([`Tun::clone_queue`] opens another queue).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use super::netns::{self, IFNAME_MAX, NetnsError};
use super::sysctl::{self, Ipv6Conf, SysctlError};

/// Errors of TUN handling.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// The name is empty or longer than 15 bytes.
    #[error("invalid TUN name {0:?}")]
    InvalidName(String),
    /// Creating or configuring the device failed.
    #[error("TUN {name}: {op}: {source}")]
    Io {
        /// Device name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Quieting IPv6 on the device failed.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
}

/// How to create a TUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Device MTU.
    pub mtu: u16,
    /// Bring the link up after creation.
    pub up: bool,
    /// No link-local address and no router solicitations on the device
    /// (`addr_gen_mode=1`, `router_solicitations=0`, set before it goes up),
    /// so the kernel does not write its own RS/MLD/DAD packets into it.
    pub quiet: bool,
    /// `IFF_VNET_HDR` with TCP (and UDP if the kernel has it) offloads.
    pub offload: bool,
    /// `IFF_MULTI_QUEUE`.
    pub multi_queue: bool,
}

impl TunConfig {
    /// Defaults: MTU 1500, up, quiet, no offload, one queue.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            mtu: 1500,
            up: true,
            quiet: true,
            offload: false,
            multi_queue: false,
        }
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u16) -> Self {
        self.mtu = mtu;
        self
    }
}

/// A TUN device (blocking unless [`Tun::set_nonblocking`]).
pub struct Tun {
    dev: tun_rs::SyncDevice,
    name: String,
    index: u32,
    ns: Option<String>,
    offload: bool,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("netns", &self.ns)
            .finish()
    }
}

fn io_err(name: &str, op: &'static str) -> impl FnOnce(io::Error) -> TunError {
    let name = name.to_string();
    move |source| TunError::Io { name, op, source }
}

/// Creates and configures the device in the calling thread's namespace.
fn build(cfg: &TunConfig, ns: Option<String>) -> Result<Tun, TunError> {
    if cfg.name.is_empty() || cfg.name.len() > IFNAME_MAX || cfg.name.contains('\0') {
        return Err(TunError::InvalidName(cfg.name.clone()));
    }
    let dev = tun_rs::DeviceBuilder::new()
        .name(&cfg.name)
        .mtu(cfg.mtu)
        .offload(cfg.offload)
        .multi_queue(cfg.multi_queue)
        .enable(false)
        .build_sync()
        .map_err(io_err(&cfg.name, "create"))?;
    let index = nix::net::if_::if_nametoindex(cfg.name.as_str())
        .map_err(|e| io_err(&cfg.name, "if_nametoindex")(io::Error::from_raw_os_error(e as i32)))?;
    if cfg.quiet {
        sysctl::set_ipv6_conf(None, &cfg.name, Ipv6Conf::AddrGenMode, 1)?;
        sysctl::set_ipv6_conf(None, &cfg.name, Ipv6Conf::RouterSolicitations, 0)?;
        sysctl::set_ipv6_conf(None, &cfg.name, Ipv6Conf::AcceptRa, 0)?;
    }
    if cfg.up {
        dev.enabled(true).map_err(io_err(&cfg.name, "set up"))?;
    }
    Ok(Tun {
        offload: dev.tcp_gso(),
        dev,
        name: cfg.name.clone(),
        index,
        ns,
    })
}

impl Tun {
    /// Creates a TUN in the caller's namespace.
    pub fn create(cfg: &TunConfig) -> Result<Tun, TunError> {
        build(cfg, None)
    }

    /// Creates a TUN inside namespace `ns`.
    pub fn create_in(ns: &str, cfg: &TunConfig) -> Result<Tun, TunError> {
        netns::in_netns(ns, || build(cfg, Some(ns.to_string())))?
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Interface index (in its namespace).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The namespace it was created in (`None`: the creator's own).
    pub fn netns(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    /// `IFF_VNET_HDR` is active: packets carry a `virtio_net_hdr`.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Reads one packet.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.recv(buf)
    }

    /// Writes one packet (the kernel receives it as if it arrived on the
    /// TUN: delivered locally or forwarded).
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.dev.send(packet)
    }

    /// Switches `O_NONBLOCK`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.dev.set_nonblocking(nonblocking)
    }

    /// Opens another queue of a multi-queue TUN.
    pub fn clone_queue(&self) -> Result<Tun, TunError> {
        let clone = || {
            self.dev
                .try_clone()
                .map_err(io_err(&self.name, "open another queue"))
        };
        let dev = match &self.ns {
            None => clone()?,
            Some(ns) => netns::in_netns(ns, clone)??,
        };
        Ok(Tun {
            dev,
            name: self.name.clone(),
            index: self.index,
            ns: self.ns.clone(),
            offload: self.offload,
        })
    }

    /// Gives up the wrapper and returns the device's fd (blocking mode as
    /// last set). Closing the last fd deletes the device.
    pub fn into_fd(self) -> OwnedFd {
        let raw = self.dev.into_raw_fd();
        // SAFETY: `into_raw_fd` hands over sole ownership of an open fd.
        unsafe { OwnedFd::from_raw_fd(raw) }
    }

    /// Registers the device with the current tokio runtime.
    pub fn into_async(self) -> Result<AsyncTun, TunError> {
        let name = self.name.clone();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io_err(&name, "register with tokio")(io::Error::other(
                "no tokio runtime",
            )));
        }
        let dev =
            tun_rs::AsyncDevice::new(self.dev).map_err(io_err(&name, "register with tokio"))?;
        Ok(AsyncTun {
            dev,
            name,
            index: self.index,
            offload: self.offload,
        })
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
}

/// A TUN device driven by tokio. `recv` and `send` take `&self`, so one
/// task can read while another writes (share it in an `Arc`).
pub struct AsyncTun {
    dev: tun_rs::AsyncDevice,
    name: String,
    index: u32,
    offload: bool,
}

impl std::fmt::Debug for AsyncTun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTun")
            .field("name", &self.name)
            .field("index", &self.index)
            .finish()
    }
}

impl AsyncTun {
    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// `IFF_VNET_HDR` is active.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Reads one packet.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.recv(buf).await
    }

    /// Writes one packet.
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.dev.send(packet).await
    }

    /// Reads one packet if one is queued (`WouldBlock` otherwise).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.try_recv(buf)
    }

    /// Writes one packet if the device has room (`WouldBlock` otherwise).
    pub fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        self.dev.try_send(packet)
    }

    /// The tun-rs device, for batched and offload I/O.
    pub fn device(&self) -> &tun_rs::AsyncDevice {
        &self.dev
    }
}
