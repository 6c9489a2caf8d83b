//! Traffic control: the ingress qdisc and u32 + `mirred` filters that steer
//! IPv6 packets by next header into the engine's TUN.
//!
//! [`Netlink::add_nexthdr_redirect`] makes exactly what
//! `tc filter add dev D parent ffff: protocol ipv6 [pref P] u32 match u8 NH
//! 0xff at 6 action mirred egress redirect dev T` makes: one u32 key on the
//! 32-bit word at offset 4 (`0x00NN00/0x00ff00`: byte 6 of the IPv6 header is
//! the Next Header field), a terminal selector, and a `mirred` action
//! (`TCA_EGRESS_REDIR`, verdict `stolen`).

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirror, TcActionMirrorOption, TcActionOption,
    TcActionType, TcAttribute, TcFilterU32, TcFilterU32Option, TcHandle, TcMessage, TcMirror,
    TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};

use super::{Netlink, NetlinkError};

/// `ETH_P_IPV6`.
pub const ETH_P_IPV6: u16 = 0x86dd;

/// Which qdisc carries the ingress filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QdiscKind {
    /// `tc qdisc add dev D ingress`; filters under `parent ffff:`.
    #[default]
    Ingress,
    /// `tc qdisc add dev D clsact`; ingress filters under `ffff:fff2`.
    Clsact,
}

impl QdiscKind {
    /// The qdisc's kind string.
    pub fn as_str(self) -> &'static str {
        match self {
            QdiscKind::Ingress => "ingress",
            QdiscKind::Clsact => "clsact",
        }
    }

    /// The parent handle ingress filters are attached to.
    pub fn filter_parent(self) -> TcHandle {
        match self {
            QdiscKind::Ingress => TcHandle {
                major: 0xffff,
                minor: 0,
            },
            QdiscKind::Clsact => TcHandle {
                major: 0xffff,
                minor: TcHandle::MIN_INGRESS,
            },
        }
    }

    fn message(self, ifindex: u32) -> TcMessage {
        let mut m = TcMessage::with_index(ifindex as i32);
        // TC_H_INGRESS == TC_H_CLSACT; both qdiscs get handle ffff:.
        m.header.parent = TcHandle::INGRESS;
        m.header.handle = TcHandle {
            major: 0xffff,
            minor: 0,
        };
        m.attributes
            .push(TcAttribute::Kind(self.as_str().to_string()));
        m
    }
}

/// A qdisc as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdiscInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Kind (`ingress`, `clsact`, `noqueue`, ...).
    pub kind: String,
    /// Handle (`major << 16 | minor`).
    pub handle: u32,
    /// Parent handle.
    pub parent: u32,
}

/// One u32 key: `(word at off) & mask == val` (host byte order values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct U32Key {
    /// Mask of the 32-bit word.
    pub mask: u32,
    /// Expected value after masking.
    pub val: u32,
    /// Byte offset of the word from the network header.
    pub off: i32,
}

impl U32Key {
    /// The key for `match u8 VALUE 0xff at OFFSET` (as tc packs it: the
    /// aligned 32-bit word containing the byte, shifted into place).
    pub fn u8_at(value: u8, offset: u16) -> Self {
        let shift = 8 * (3 - u32::from(offset % 4));
        U32Key {
            mask: 0xff << shift,
            val: u32::from(value) << shift,
            off: i32::from(offset & !3),
        }
    }
}

/// A u32 filter as dumped (entries without a selector are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterInfo {
    /// Priority (`pref`).
    pub prio: u16,
    /// Protocol (host order, e.g. [`ETH_P_IPV6`]).
    pub protocol: u16,
    /// Filter handle (e.g. `0x80000800` for `800::800`).
    pub handle: u32,
    /// The selector's keys.
    pub keys: Vec<U32Key>,
    /// `TC_U32_TERMINAL` set.
    pub terminal: bool,
    /// Target ifindex of a `mirred egress redirect` action.
    pub redirect_to: Option<u32>,
    /// The redirect's verdict is `stolen`.
    pub stolen: bool,
}

impl FilterInfo {
    fn from_message(m: &TcMessage) -> Option<Self> {
        let mut kind_u32 = false;
        let mut out = FilterInfo {
            prio: (m.header.info >> 16) as u16,
            protocol: u16::from_be((m.header.info & 0xffff) as u16),
            handle: u32::from(m.header.handle),
            keys: Vec::new(),
            terminal: false,
            redirect_to: None,
            stolen: false,
        };
        let mut has_selector = false;
        for attr in &m.attributes {
            match attr {
                TcAttribute::Kind(k) => kind_u32 = k == TcFilterU32::KIND,
                TcAttribute::Options(opts) => {
                    for opt in opts {
                        match opt {
                            TcOption::U32(TcFilterU32Option::Selector(sel)) => {
                                has_selector = true;
                                out.terminal = sel.flags.contains(TcU32SelectorFlags::Terminal);
                                out.keys = sel
                                    .keys
                                    .iter()
                                    .map(|k| U32Key {
                                        mask: k.mask,
                                        val: k.val,
                                        off: k.off,
                                    })
                                    .collect();
                            }
                            TcOption::U32(TcFilterU32Option::Action(acts)) => {
                                for act in acts {
                                    if let Some(mirror) = mirror_of(act) {
                                        if mirror.eaction == TcMirrorActionType::EgressRedir {
                                            out.redirect_to = Some(mirror.ifindex);
                                        }
                                        out.stolen = mirror.generic.action == TcActionType::Stolen;
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        (kind_u32 && has_selector).then_some(out)
    }
}

fn mirror_of(act: &TcAction) -> Option<&TcMirror> {
    act.attributes.iter().find_map(|a| match a {
        TcActionAttribute::Options(opts) => opts.iter().find_map(|o| match o {
            TcActionOption::Mirror(TcActionMirrorOption::Parms(p)) => Some(p),
            _ => None,
        }),
        _ => None,
    })
}

fn redirect_action(to_ifindex: u32) -> TcAction {
    let mut mirror = TcMirror::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = to_ifindex;
    let mut act = TcAction::default();
    act.tab = 1;
    act.attributes = vec![
        TcActionAttribute::Kind(TcActionMirror::KIND.to_string()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    act
}

fn filter_info(prio: u16) -> u32 {
    (u32::from(prio) << 16) | u32::from(ETH_P_IPV6.to_be())
}

impl Netlink {
    /// `tc qdisc add dev IFINDEX ingress|clsact`.
    pub async fn add_ingress_qdisc(
        &self,
        ifindex: u32,
        kind: QdiscKind,
    ) -> Result<(), NetlinkError> {
        self.request(
            format!("tc qdisc add dev {ifindex} {}", kind.as_str()),
            RouteNetlinkMessage::NewQueueDiscipline(kind.message(ifindex)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        Ok(())
    }

    /// `tc qdisc del dev IFINDEX ingress|clsact` (removes its filters too).
    pub async fn del_ingress_qdisc(
        &self,
        ifindex: u32,
        kind: QdiscKind,
    ) -> Result<(), NetlinkError> {
        self.request(
            format!("tc qdisc del dev {ifindex} {}", kind.as_str()),
            RouteNetlinkMessage::DelQueueDiscipline(kind.message(ifindex)),
            0,
        )
        .await?;
        Ok(())
    }

    /// The qdiscs of link `ifindex` (`tc qdisc show dev D`).
    pub async fn qdiscs(&self, ifindex: u32) -> Result<Vec<QdiscInfo>, NetlinkError> {
        let replies = self
            .dump(
                format!("tc qdisc show dev {ifindex}"),
                RouteNetlinkMessage::GetQueueDiscipline(TcMessage::with_index(ifindex as i32)),
            )
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewQueueDiscipline(m) if m.header.index == ifindex as i32 => {
                    Some(QdiscInfo {
                        ifindex,
                        kind: m
                            .attributes
                            .iter()
                            .find_map(|a| match a {
                                TcAttribute::Kind(k) => Some(k.clone()),
                                _ => None,
                            })
                            .unwrap_or_default(),
                        handle: u32::from(m.header.handle),
                        parent: u32::from(m.header.parent),
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Adds an ingress u32 filter on `ifindex` that redirects IPv6 packets
    /// whose Next Header (byte 6) is `next_header` to the egress of
    /// `to_ifindex` (the TUN, where the engine reads them). `prio`: `None`
    /// lets the kernel choose (49152 for the first filter, as `tc` does).
    pub async fn add_nexthdr_redirect(
        &self,
        ifindex: u32,
        kind: QdiscKind,
        prio: Option<u16>,
        next_header: u8,
        to_ifindex: u32,
    ) -> Result<(), NetlinkError> {
        let key = U32Key::u8_at(next_header, 6);
        let mut nl_key = TcU32Key::default();
        nl_key.mask = key.mask;
        nl_key.val = key.val;
        nl_key.off = key.off;
        let mut sel = TcU32Selector::default();
        sel.flags = TcU32SelectorFlags::Terminal;
        sel.nkeys = 1;
        sel.keys = vec![nl_key];

        let mut m = TcMessage::with_index(ifindex as i32);
        m.header.parent = kind.filter_parent();
        m.header.info = filter_info(prio.unwrap_or(0));
        m.attributes
            .push(TcAttribute::Kind(TcFilterU32::KIND.to_string()));
        m.attributes.push(TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Action(vec![redirect_action(to_ifindex)])),
            TcOption::U32(TcFilterU32Option::Selector(sel)),
        ]));
        self.request(
            format!(
                "tc filter add dev {ifindex} ingress protocol ipv6 pref {} u32 match u8 {next_header} 0xff at 6 action mirred egress redirect dev {to_ifindex}",
                prio.unwrap_or(0)
            ),
            RouteNetlinkMessage::NewTrafficFilter(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        Ok(())
    }

    /// Deletes all ingress filters of priority `prio` on `ifindex`.
    pub async fn del_filters(
        &self,
        ifindex: u32,
        kind: QdiscKind,
        prio: u16,
    ) -> Result<(), NetlinkError> {
        let mut m = TcMessage::with_index(ifindex as i32);
        m.header.parent = kind.filter_parent();
        m.header.info = filter_info(prio);
        self.request(
            format!("tc filter del dev {ifindex} ingress pref {prio}"),
            RouteNetlinkMessage::DelTrafficFilter(m),
            0,
        )
        .await?;
        Ok(())
    }

    /// The u32 ingress filters on `ifindex` (`tc filter show dev D ingress`).
    pub async fn filters(
        &self,
        ifindex: u32,
        kind: QdiscKind,
    ) -> Result<Vec<FilterInfo>, NetlinkError> {
        let mut m = TcMessage::with_index(ifindex as i32);
        m.header.parent = kind.filter_parent();
        let replies = self
            .dump(
                format!("tc filter show dev {ifindex} ingress"),
                RouteNetlinkMessage::GetTrafficFilter(m),
            )
            .await?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewTrafficFilter(m) => FilterInfo::from_message(m),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u8_key_packs_like_tc() {
        // tc: "match u8 43 0xff at 6" -> "match 00002b00/0000ff00 at 4".
        assert_eq!(
            U32Key::u8_at(43, 6),
            U32Key {
                mask: 0x0000_ff00,
                val: 0x0000_2b00,
                off: 4
            }
        );
        assert_eq!(
            U32Key::u8_at(0x87, 0),
            U32Key {
                mask: 0xff00_0000,
                val: 0x8700_0000,
                off: 0
            }
        );
        assert_eq!(U32Key::u8_at(1, 11).mask, 0xff);
    }

    #[test]
    fn filter_info_puts_protocol_in_network_order() {
        assert_eq!(filter_info(49152), 0xc000_dd86);
    }
}
