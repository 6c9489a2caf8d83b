//! Counters of the datapath: what was done to packets, why packets were
//! dropped, which wire errors were seen, and the serializable snapshot
//! [`EngineStats`] the daemons expose on their control socket.
//!
//! Counters live in fixed arrays indexed by the enums below, so counting a
//! packet is two additions and never allocates; a snapshot turns them into
//! maps keyed by the enum names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tables::{BindingKey, TableSizes};
use crate::wire;

/// Packets and octets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Octets (IPv6 header included, as read or written).
    pub bytes: u64,
}

impl Counter {
    /// Counts one packet of `len` octets.
    pub fn add(&mut self, len: usize) {
        self.add_n(len, 1);
    }

    /// Counts `n` packets of `len` octets in all (a GSO packet: its
    /// segments).
    pub fn add_n(&mut self, len: usize, n: u64) {
        self.packets = self.packets.wrapping_add(n);
        self.bytes = self.bytes.wrapping_add(len as u64);
    }
}

macro_rules! counted_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $v,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

counted_enum!(
    /// What the datapath did to a packet. One packet may count under
    /// several actions (e.g. decapsulated, then relayed).
    Action {
        /// A Type 2 Routing Header was inserted toward a correspondent
        /// binding's care-of address (RFC 6275 9.3.2, correspondent side).
        Rh2Inserted,
        /// A Type 2 Routing Header for a local home address was removed
        /// (RFC 6275 11.3.3, mobile side).
        Rh2Stripped,
        /// A Home Address option was added (RFC 6275 11.3.1, mobile side).
        HaoInserted,
        /// A Home Address option matching a binding was removed and its
        /// address put back as the source (RFC 6275 9.3.1).
        HaoStripped,
        /// Encapsulated into a home tunnel, home agent to care-of address
        /// (RFC 6275 10.4.1).
        HomeTunnelEncapsulated,
        /// Decapsulated from a home tunnel, care-of address to home agent
        /// (RFC 6275 10.4.5).
        HomeTunnelDecapsulated,
        /// Encapsulated into a reverse tunnel, care-of address to home
        /// agent (RFC 6275 11.3.1).
        ReverseTunnelEncapsulated,
        /// Decapsulated from the home agent (RFC 6275 11.3.3).
        ReverseTunnelDecapsulated,
        /// A Mobility Header message for a registered home address relayed
        /// through its home tunnel (RFC 6275 10.4.6).
        MobilityRelayed,
        /// Mobility Header message for this node handed to the control plane.
        MobilityPunted,
        /// Home Address option without a matching binding reported to the
        /// control plane (RFC 6275 9.3.3 Binding Error).
        HaoWithoutBindingReported,
        /// Routed into the TUN but needing no rewrite (a Mobility Header
        /// message, RFC 6275 6.1, or no binding for this source): sent
        /// unchanged.
        PassedThrough,
        /// Steered in by its extension headers but carrying no Mobile IPv6
        /// header for us: handed back to the kernel unchanged.
        ReturnedToKernel,
        /// Sent for the control plane ([`super::EngineHandle::send`]).
        ControlSent,
        /// ICMPv6 Packet Too Big written toward a local sender.
        IcmpTooBigSent,
        /// A client's packet forwarded to the member serving it (handoff,
        /// RFC 2473 encapsulation from our care-of address).
        MemberForwarded,
        /// A client's packet decapsulated from a group member's tunnel.
        MemberDecapsulated,
        /// A client's packet queued while its sockets move.
        MemberHeld,
        /// A queued client packet released into the TUN.
        MemberReleased,
        /// PIAS ingress proxy: a client's packet encapsulated to its join
        /// proxy (an ingress flow).
        ProxyIngressTunnelled,
        /// PIAS join proxy: a client's packet translated to its target.
        ProxyTranslated,
        /// PIAS join proxy: a client's packet encapsulated to a target
        /// that decapsulates.
        ProxyTargetTunnelled,
        /// PIAS join proxy: a target's reply translated back to the client.
        ProxyReplyTranslated,
        /// PIAS: decapsulated from a proxy peer's tunnel.
        ProxyPeerDecapsulated,
        /// PIAS join proxy: a reply decapsulated from a target's tunnel.
        ProxyTargetDecapsulated,
        /// PIAS: no proxy entry applied; handed to the control plane.
        ProxyPunted,
    }
);

counted_enum!(
    /// Why a packet was dropped.
    DropReason {
        /// The bytes do not parse (see [`EngineStats::wire_errors`]).
        Malformed,
        /// A non-first fragment whose upper layer (tunnel, Mobility Header)
        /// is not in it; the engine does not reassemble.
        Fragment,
        /// Forwarding it would take the hop limit to zero (RFC 8200 3).
        HopLimit,
        /// A Mobile IPv6 packet (RH2, HAO, Mobility Header) not for one of
        /// our addresses and not relayed by us.
        NotOurs,
        /// A Type 2 Routing Header whose home address is not ours (RFC 6275
        /// 11.3.3).
        UnknownHomeAddress,
        /// A Home Address option without a binding for that home address
        /// and care-of address (RFC 6275 9.3.1).
        HaoWithoutBinding,
        /// IPv6-in-IPv6 from a source that is not an accepted tunnel end
        /// point (RFC 6275 10.4.5).
        TunnelNotAllowed,
        /// A tunnel inside a tunnel.
        NestedTunnel,
        /// From a home address that has neither a binding to this peer nor
        /// a reverse tunnel.
        NoBinding,
        /// Routed into the TUN but no table entry applies.
        NoTableEntry,
        /// The kernel's own link traffic on the TUN device (multicast or
        /// link-local destination: MLD reports and the like).
        TunLinkTraffic,
        /// Writing it into the TUN would route it straight back in.
        Loop,
        /// The rewrite failed (e.g. no room for the added header).
        RewriteFailed,
        /// Larger than the path MTU after the rewrite.
        TooBig,
        /// The raw socket refused it (no route, ...).
        SendFailed,
        /// Writing into the TUN failed.
        TunWriteFailed,
        /// The control plane's punt queue was full.
        PuntQueueFull,
        /// A client's hold queue was full (or it had no entry any more).
        HoldOverflow,
        /// Queued client packets dropped when the entry was removed.
        HoldDiscarded,
        /// IPv6-in-IPv6 from a group member that is not a plain packet of a
        /// client with an entry here, for a local home address.
        MemberTunnelRefused,
        /// The TUN's virtio header does not fit the packet, or the packet
        /// is a GSO type the engine cannot segment where it had to.
        Offload,
        /// PIAS: to an anycast prefix or NAT address, or from a proxy
        /// peer, but not a plain TCP/UDP packet.
        ProxyNotTransport,
        /// PIAS: IPv6-in-IPv6 from a tunnel-mode target that no binding
        /// of ours names.
        ProxyTunnelRefused,
    }
);

counted_enum!(
    /// The kind of a [`wire::Error`] (without its data), for counting.
    WireErrorKind {
        /// [`wire::Error::Truncated`].
        Truncated,
        /// [`wire::Error::BadIpVersion`].
        BadIpVersion,
        /// [`wire::Error::MisplacedHopByHop`].
        MisplacedHopByHop,
        /// [`wire::Error::TooManyExtHeaders`].
        TooManyExtHeaders,
        /// [`wire::Error::Duplicate`].
        Duplicate,
        /// [`wire::Error::HeaderOrder`].
        HeaderOrder,
        /// [`wire::Error::BadRh2`].
        BadRh2,
        /// [`wire::Error::RoutingHeaderPresent`].
        RoutingHeaderPresent,
        /// [`wire::Error::BadHao`].
        BadHao,
        /// [`wire::Error::BadHomeAddress`].
        BadHomeAddress,
        /// [`wire::Error::UnrecognizedOption`].
        UnrecognizedOption,
        /// [`wire::Error::BadMhPayloadProto`].
        BadMhPayloadProto,
        /// [`wire::Error::BadMhLength`].
        BadMhLength,
        /// [`wire::Error::BadChecksum`].
        BadChecksum,
        /// Option alignment or length errors.
        BadOption,
        /// [`wire::Error::PayloadTooLong`].
        PayloadTooLong,
        /// [`wire::Error::NoHeadroom`].
        NoHeadroom,
        /// [`wire::Error::BadBounds`].
        BadBounds,
        /// [`wire::Error::NotIpv6InIpv6`].
        NotIpv6InIpv6,
        /// [`wire::Error::BadInnerLength`].
        BadInnerLength,
        /// [`wire::Error::NonFirstFragment`].
        NonFirstFragment,
        /// [`wire::Error::NotTransport`].
        NotTransport,
        /// Anything else.
        Other,
    }
);

impl WireErrorKind {
    /// The kind of `e`.
    pub fn of(e: &wire::Error) -> Self {
        use wire::Error as E;
        match e {
            E::Truncated { .. } => Self::Truncated,
            E::BadIpVersion(_) => Self::BadIpVersion,
            E::MisplacedHopByHop { .. } => Self::MisplacedHopByHop,
            E::TooManyExtHeaders { .. } => Self::TooManyExtHeaders,
            E::Duplicate(_) => Self::Duplicate,
            E::HeaderOrder(_) => Self::HeaderOrder,
            E::BadRh2 { .. } | E::NotRh2(_) | E::NoRh2 => Self::BadRh2,
            E::RoutingHeaderPresent(_) => Self::RoutingHeaderPresent,
            E::BadHao(_) | E::NoHao => Self::BadHao,
            E::BadHomeAddress(_) => Self::BadHomeAddress,
            E::UnrecognizedOption { .. } => Self::UnrecognizedOption,
            E::BadMhPayloadProto(_) => Self::BadMhPayloadProto,
            E::BadMhLength { .. } | E::UnknownMhType(_) => Self::BadMhLength,
            E::BadChecksum { .. } => Self::BadChecksum,
            E::BadOptionAlignment { .. }
            | E::BadOptionLength { .. }
            | E::OptionNotLast { .. }
            | E::OptionTooLong(_) => Self::BadOption,
            E::PayloadTooLong(_) | E::TooLong { .. } => Self::PayloadTooLong,
            E::NoHeadroom { .. } | E::BufferTooSmall { .. } => Self::NoHeadroom,
            E::BadBounds { .. } => Self::BadBounds,
            E::NotIpv6InIpv6(_) => Self::NotIpv6InIpv6,
            E::BadInnerLength { .. } => Self::BadInnerLength,
            E::NonFirstFragment => Self::NonFirstFragment,
            E::NotTransport(_) => Self::NotTransport,
            _ => Self::Other,
        }
    }
}

/// The live counters (owned by the datapath, no atomics: one task).
#[derive(Debug, Clone)]
pub struct Counters {
    pub(crate) received: Counter,
    pub(crate) to_tun: Counter,
    pub(crate) to_wire: Counter,
    pub(crate) punted: Counter,
    pub(crate) dropped: Counter,
    actions: [Counter; Action::COUNT],
    drops: [u64; DropReason::COUNT],
    wire_errors: [u64; WireErrorKind::COUNT],
    /// Packets each count stands for (segments of the GSO packet being
    /// processed; 1 otherwise).
    pub(crate) weight: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            received: Counter::default(),
            to_tun: Counter::default(),
            to_wire: Counter::default(),
            punted: Counter::default(),
            dropped: Counter::default(),
            actions: [Counter::default(); Action::COUNT],
            drops: [0; DropReason::COUNT],
            wire_errors: [0; WireErrorKind::COUNT],
            weight: 1,
        }
    }
}

impl Counters {
    /// Counts an action on a packet of `len` octets.
    pub fn action(&mut self, a: Action, len: usize) {
        self.actions[a.index()].add_n(len, self.weight);
    }

    /// Counts a dropped packet of `len` octets.
    pub fn drop(&mut self, r: DropReason, len: usize) {
        self.drops[r.index()] = self.drops[r.index()].wrapping_add(self.weight);
        self.dropped.add_n(len, self.weight);
    }

    /// Counts a wire error (parse or rewrite).
    pub fn wire_error(&mut self, e: &wire::Error) {
        let i = WireErrorKind::of(e).index();
        self.wire_errors[i] = self.wire_errors[i].wrapping_add(1);
    }

    /// The counter of one action.
    pub fn action_count(&self, a: Action) -> Counter {
        self.actions[a.index()]
    }

    /// The count of one drop reason.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r.index()]
    }

    /// The count of one wire error kind.
    pub fn wire_error_count(&self, k: WireErrorKind) -> u64 {
        self.wire_errors[k.index()]
    }

    /// A serializable snapshot (tables and bindings filled in by the caller).
    pub(crate) fn snapshot(
        &self,
        tables: TableSizes,
        bindings: Vec<BindingStats>,
        punts_lost: u64,
    ) -> EngineStats {
        EngineStats {
            received: self.received,
            to_tun: self.to_tun,
            to_wire: self.to_wire,
            punted: self.punted,
            dropped: self.dropped,
            actions: Action::ALL
                .iter()
                .map(|a| (*a, self.actions[a.index()]))
                .collect(),
            drops: DropReason::ALL
                .iter()
                .map(|r| (*r, self.drops[r.index()]))
                .collect(),
            wire_errors: WireErrorKind::ALL
                .iter()
                .map(|k| (*k, self.wire_errors[k.index()]))
                .collect(),
            punts_lost,
            tables,
            bindings,
            datapath: DatapathMode::Auto,
        }
    }
}

/// Usage of one binding or tunnel, as exported (no `Instant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingStats {
    /// Which entry.
    pub key: BindingKey,
    /// Packets that used it.
    pub packets: u64,
    /// Octets of those packets.
    pub bytes: u64,
    /// Milliseconds since it was last used, at snapshot time; `None` if
    /// never used.
    pub idle_ms: Option<u64>,
    /// Of `packets`, those received through it.
    #[serde(default)]
    pub packets_in: u64,
    /// Milliseconds since a packet was last received through it; `None`
    /// if never.
    #[serde(default)]
    pub idle_in_ms: Option<u64>,
}

/// A snapshot of the engine's counters and table sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Packets read from the TUN.
    pub received: Counter,
    /// Packets written into the TUN (delivered or forwarded by the kernel).
    pub to_tun: Counter,
    /// Packets sent through the raw socket (rewritten, relayed, passed
    /// through, or sent for the control plane).
    pub to_wire: Counter,
    /// Packets handed to the control plane.
    pub punted: Counter,
    /// Packets dropped (any reason).
    pub dropped: Counter,
    /// Per action.
    pub actions: BTreeMap<Action, Counter>,
    /// Per drop reason.
    pub drops: BTreeMap<DropReason, u64>,
    /// Per wire error kind (malformed input and failed rewrites).
    pub wire_errors: BTreeMap<WireErrorKind, u64>,
    /// Punts lost because the control plane's queue was full.
    pub punts_lost: u64,
    /// Entries per table.
    pub tables: TableSizes,
    /// Per binding and tunnel usage.
    pub bindings: Vec<BindingStats>,
    /// The datapath the engine chose at start.
    #[serde(default)]
    pub datapath: DatapathMode,
}

/// How the engine moves packets (chosen at start, see
/// [`super::EngineConfig::mode`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatapathMode {
    /// As a request: [`DatapathMode::TunOffload`] when the kernel allows
    /// it, else [`DatapathMode::Raw`].
    #[default]
    Auto,
    /// One packet per TUN read, no offloads; rewritten packets leave
    /// through the marked raw socket.
    Raw,
    /// `IFF_VNET_HDR` with TCP offloads: GSO super-packets read whole,
    /// edited in place (virtio offsets moved with the edit) and written
    /// back into the TUN, which forwards them (`force_forwarding` on the
    /// TUN) and lets the kernel segment them.
    TunOffload,
    /// [`DatapathMode::TunOffload`] plus the home tunnel's plain packets
    /// encapsulated and decapsulated by tc BPF programs
    /// ([`crate::engine::bpf`]), GSO kept whole.
    #[serde(rename = "tun-offload+bpf-tunnel")]
    TunOffloadBpf,
}

impl DatapathMode {
    /// The TUN carries virtio headers and GSO packets, and rewritten
    /// packets go back into it.
    pub fn tun_offload(self) -> bool {
        matches!(self, DatapathMode::TunOffload | DatapathMode::TunOffloadBpf)
    }
}

impl EngineStats {
    /// The counter of one action (zero if absent).
    pub fn action(&self, a: Action) -> Counter {
        self.actions.get(&a).copied().unwrap_or_default()
    }

    /// The count of one drop reason (zero if absent).
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops.get(&r).copied().unwrap_or_default()
    }

    /// The count of one wire error kind (zero if absent).
    pub fn wire_error_count(&self, k: WireErrorKind) -> u64 {
        self.wire_errors.get(&k).copied().unwrap_or_default()
    }

    /// The usage entry of one binding, if it exists.
    pub fn binding(&self, key: &BindingKey) -> Option<&BindingStats> {
        self.bindings.iter().find(|b| &b.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_offload_modes_write_back_into_the_tun() {
        assert!(DatapathMode::TunOffload.tun_offload());
        assert!(DatapathMode::TunOffloadBpf.tun_offload());
        assert!(!DatapathMode::Raw.tun_offload());
        assert!(!DatapathMode::Auto.tun_offload());
        let names: Vec<String> = [DatapathMode::Raw, DatapathMode::TunOffloadBpf]
            .iter()
            .map(|m| serde_json::to_string(m).unwrap_or_default())
            .collect();
        assert_eq!(names, ["\"raw\"", "\"tun-offload+bpf-tunnel\""]);
    }

    #[test]
    fn enums_index_their_arrays() {
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        for (i, k) in WireErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }

    #[test]
    fn snapshot_serializes_with_names() {
        let mut c = Counters::default();
        c.action(Action::Rh2Inserted, 100);
        c.drop(DropReason::Loop, 60);
        c.wire_error(&wire::Error::NoRh2);
        let s = c.snapshot(TableSizes::default(), Vec::new(), 2);
        assert_eq!(s.action(Action::Rh2Inserted).bytes, 100);
        assert_eq!(s.drop_count(DropReason::Loop), 1);
        assert_eq!(s.wire_error_count(WireErrorKind::BadRh2), 1);
        let json = serde_json::to_string(&s).expect("serialize");
        assert!(json.contains("\"rh2_inserted\":{\"packets\":1,\"bytes\":100}"));
        assert!(json.contains("\"loop\":1"));
        let back: EngineStats = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, s);
    }
}
