//! Interface addresses (`ip addr add/del/show`).

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::route::{RouteKind, TABLE_LOCAL};
use super::{Netlink, NetlinkError};

/// Options of an address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOptions {
    /// `nodad`: usable at once, no Duplicate Address Detection (IPv6).
    pub nodad: bool,
    /// `noprefixroute`: no on-link route for the prefix.
    pub noprefixroute: bool,
    /// Replace an existing address instead of failing with `EEXIST`.
    pub replace: bool,
}

impl AddrOptions {
    /// `nodad`, the usual choice for lab and engine addresses.
    pub const NODAD: AddrOptions = AddrOptions {
        nodad: true,
        noprefixroute: false,
        replace: false,
    };

    fn flags(&self) -> AddressFlags {
        let mut f = AddressFlags::empty();
        if self.nodad {
            f |= AddressFlags::Nodad;
        }
        if self.noprefixroute {
            f |= AddressFlags::Noprefixroute;
        }
        f
    }
}

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// Interface index.
    pub index: u32,
    /// The address (`IFA_LOCAL`, else `IFA_ADDRESS`).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// `IFA_F_*` flags (`IFA_FLAGS` if present, else the header's byte).
    pub flags: u32,
}

impl AddrInfo {
    /// `IFA_F_TENTATIVE`: DAD has not finished; not yet usable.
    pub fn is_tentative(&self) -> bool {
        self.flags & AddressFlags::Tentative.bits() != 0
    }

    fn from_message(m: &AddressMessage) -> Option<Self> {
        let mut local = None;
        let mut address = None;
        let mut flags = u32::from(m.header.flags.bits());
        for a in &m.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => flags = f.bits(),
                _ => {}
            }
        }
        Some(AddrInfo {
            index: m.header.index,
            addr: local.or(address)?,
            prefix_len: m.header.prefix_len,
            flags,
        })
    }
}

fn message(index: u32, addr: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.prefix_len = prefix_len;
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    m
}

impl Netlink {
    /// `ip addr add ADDR/PLEN dev INDEX [nodad] [noprefixroute]`; works on
    /// any link, `lo` included.
    ///
    /// The kernel acknowledges an IPv6 address before it is usable: its
    /// `local` route is inserted afterwards by a work item (seen in tests: a
    /// packet to the address right after the ACK was answered with "no
    /// route"). Call [`Netlink::wait_local`] before relying on it.
    pub async fn add_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
        opts: AddrOptions,
    ) -> Result<(), NetlinkError> {
        let mut m = message(index, addr, prefix_len);
        let flags = opts.flags();
        // The header holds the low 8 bits; IFA_FLAGS all of them.
        m.header.flags = AddressHeaderFlags::from_bits_retain((flags.bits() & 0xff) as u8);
        m.attributes.push(AddressAttribute::Flags(flags));
        let nl_flags = if opts.replace {
            NLM_F_CREATE | NLM_F_REPLACE
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        };
        self.request(
            format!("ip addr add {addr}/{prefix_len} dev {index}"),
            RouteNetlinkMessage::NewAddress(m),
            nl_flags,
        )
        .await?;
        Ok(())
    }

    /// `ip addr del ADDR/PLEN dev INDEX`.
    pub async fn del_address(
        &self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        self.request(
            format!("ip addr del {addr}/{prefix_len} dev {index}"),
            RouteNetlinkMessage::DelAddress(message(index, addr, prefix_len)),
            0,
        )
        .await?;
        Ok(())
    }

    /// Waits until `addr` has its `local` route in the local table, i.e.
    /// until the kernel delivers packets sent to it (see
    /// [`Netlink::add_address`]). Fails with [`NetlinkError::NotReady`] after
    /// `limit` (a hang guard, not a tuning knob).
    pub async fn wait_local(&self, addr: Ipv6Addr, limit: Duration) -> Result<(), NetlinkError> {
        let deadline = Instant::now() + limit;
        loop {
            let ready = self
                .routes(TABLE_LOCAL)
                .await?
                .iter()
                .any(|r| r.kind == RouteKind::Local && r.dst_len == 128 && r.dst == addr);
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(NetlinkError::NotReady {
                    what: format!("local route of {addr}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// All addresses of the namespace, or of link `index` only.
    pub async fn addresses(&self, index: Option<u32>) -> Result<Vec<AddrInfo>, NetlinkError> {
        let replies = self
            .dump(
                "ip addr show".into(),
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            )
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) => AddrInfo::from_message(a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }
}
