//! Links: lookup, veth pairs, up/down, MTU, moving between namespaces.

use std::os::fd::{AsRawFd, BorrowedFd};

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};

use super::{Netlink, NetlinkError};

/// One end of a veth pair to create.
#[derive(Debug, Clone, Copy)]
pub struct VethEnd<'a> {
    /// Interface name (at most 15 bytes).
    pub name: &'a str,
    /// Namespace to create the end in; `None`: the handle's namespace.
    pub netns: Option<BorrowedFd<'a>>,
    /// MTU; `None`: the kernel default (1500).
    pub mtu: Option<u32>,
}

impl<'a> VethEnd<'a> {
    /// An end named `name` in the handle's namespace.
    pub fn new(name: &'a str) -> Self {
        Self {
            name,
            netns: None,
            mtu: None,
        }
    }

    /// Creates this end directly in the namespace `ns` (an fd from
    /// [`crate::engine::netns::open`]).
    pub fn in_netns(mut self, ns: BorrowedFd<'a>) -> Self {
        self.netns = Some(ns);
        self
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    fn attributes(&self) -> Vec<LinkAttribute> {
        let mut attrs = vec![LinkAttribute::IfName(self.name.to_string())];
        if let Some(mtu) = self.mtu {
            attrs.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(ns) = self.netns {
            attrs.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        attrs
    }
}

/// What a link dump tells us about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MTU.
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// `IFLA_INFO_KIND` (`veth`, `tun`, ...), if any.
    pub kind: Option<String>,
}

impl LinkInfo {
    fn from_message(m: &LinkMessage) -> Self {
        let mut info = LinkInfo {
            index: m.header.index,
            name: String::new(),
            mtu: None,
            up: m.header.flags.contains(LinkFlags::Up),
            kind: None,
        };
        for attr in &m.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Mtu(mtu) => info.mtu = Some(*mtu),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let NlLinkInfo::Kind(k) = i {
                            info.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }
}

fn by_index(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

impl Netlink {
    /// Looks a link up by name.
    pub async fn link_by_name(&self, name: &str) -> Result<LinkInfo, NetlinkError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let replies = match self
            .request(
                format!("ip link show {name}"),
                RouteNetlinkMessage::GetLink(m),
                0,
            )
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Err(NetlinkError::LinkNotFound(name.into())),
            Err(e) => return Err(e),
        };
        replies
            .iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(LinkInfo::from_message(l)),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::LinkNotFound(name.into()))
    }

    /// The index of the link named `name`.
    pub async fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        Ok(self.link_by_name(name).await?.index)
    }

    /// All links of the namespace.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, NetlinkError> {
        let replies = self
            .dump(
                "ip link show".into(),
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
            )
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(LinkInfo::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Creates a veth pair. Each end goes to its own namespace if given
    /// (`ip link add A [netns X] type veth peer B netns Y`); both ends start
    /// down.
    pub async fn add_veth(&self, a: VethEnd<'_>, b: VethEnd<'_>) -> Result<(), NetlinkError> {
        let mut peer = LinkMessage::default();
        peer.attributes = b.attributes();
        let mut m = LinkMessage::default();
        m.attributes = a.attributes();
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Veth),
            NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(
            format!("ip link add {} type veth peer {}", a.name, b.name),
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        Ok(())
    }

    async fn set_link(&self, op: String, m: LinkMessage) -> Result<(), NetlinkError> {
        self.request(op, RouteNetlinkMessage::SetLink(m), 0).await?;
        Ok(())
    }

    /// `ip link set INDEX up`.
    pub async fn set_link_up(&self, index: u32) -> Result<(), NetlinkError> {
        let mut m = by_index(index);
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.set_link(format!("ip link set {index} up"), m).await
    }

    /// `ip link set INDEX down`.
    pub async fn set_link_down(&self, index: u32) -> Result<(), NetlinkError> {
        let mut m = by_index(index);
        m.header.change_mask = LinkFlags::Up;
        self.set_link(format!("ip link set {index} down"), m).await
    }

    /// `ip link set INDEX mtu MTU`.
    pub async fn set_link_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let mut m = by_index(index);
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link(format!("ip link set {index} mtu {mtu}"), m)
            .await
    }

    /// `ip link set INDEX txqueuelen LEN`.
    pub async fn set_link_txqueuelen(&self, index: u32, len: u32) -> Result<(), NetlinkError> {
        let mut m = by_index(index);
        m.attributes.push(LinkAttribute::TxQueueLen(len));
        self.set_link(format!("ip link set {index} txqueuelen {len}"), m)
            .await
    }

    /// `ip link set INDEX netns NS` (NS: a namespace fd).
    pub async fn set_link_netns(&self, index: u32, ns: BorrowedFd<'_>) -> Result<(), NetlinkError> {
        let mut m = by_index(index);
        m.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        self.set_link(format!("ip link set {index} netns <fd>"), m)
            .await
    }

    /// `ip link del INDEX`.
    pub async fn del_link(&self, index: u32) -> Result<(), NetlinkError> {
        self.request(
            format!("ip link del {index}"),
            RouteNetlinkMessage::DelLink(by_index(index)),
            0,
        )
        .await?;
        Ok(())
    }
}
