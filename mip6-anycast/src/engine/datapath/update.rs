//! The messages a control plane programs the tables with
//! ([`TableUpdate`]), and the names of bindings for usage queries
//! ([`BindingKey`]). Serializable, so a daemon can log them or accept them
//! on its control socket.

use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use super::member::HoldLimit;
use super::proxy::{NatBinding, ProxyFlow};

/// A change to the tables. `Add*` replaces an entry with the same key
/// (keeping its usage counters); `Remove*` of an absent key is a no-op.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum TableUpdate {
    /// One of our own (non-home) addresses: a member's care-of address, a
    /// correspondent's address, a home agent's address. Mobility Header
    /// messages to it are punted; a Type 2 Routing Header is accepted only
    /// when the outer destination is one of these (RFC 6275 11.3.3).
    AddLocalAddress {
        /// The address.
        addr: Ipv6Addr,
    },
    /// Removes a local address.
    RemoveLocalAddress {
        /// The address.
        addr: Ipv6Addr,
    },
    /// A home address that is ours (the member side: X): a Type 2 Routing
    /// Header carrying it is stripped and the packet delivered to X.
    AddLocalHomeAddress {
        /// The home address.
        hoa: Ipv6Addr,
    },
    /// Removes a local home address.
    RemoveLocalHomeAddress {
        /// The home address.
        hoa: Ipv6Addr,
    },
    /// Correspondent binding cache entry (RFC 6275 9.1): packets from `cn`
    /// to `hoa` get a Type 2 Routing Header and go to `coa` (9.3.2);
    /// packets from `coa` to `cn` with a Home Address option `hoa` are
    /// accepted (9.3.1). Steers `hoa` into the TUN.
    AddCorrespondentBinding {
        /// Our (the correspondent's) address.
        cn: Ipv6Addr,
        /// The mobile node's home address.
        hoa: Ipv6Addr,
        /// Its registered care-of address.
        coa: Ipv6Addr,
    },
    /// Removes a correspondent binding.
    RemoveCorrespondentBinding {
        /// Our address.
        cn: Ipv6Addr,
        /// The home address.
        hoa: Ipv6Addr,
    },
    /// Route optimization from a local home address (RFC 6275 11.3.1):
    /// packets from `hoa` to `peer` get a Home Address option and leave
    /// from `coa`. Steers packets from `hoa` into the TUN.
    AddHomeAddressBinding {
        /// Our home address.
        hoa: Ipv6Addr,
        /// The correspondent that has a binding for us.
        peer: Ipv6Addr,
        /// Our care-of address registered there.
        coa: Ipv6Addr,
    },
    /// Removes a home address binding.
    RemoveHomeAddressBinding {
        /// Our home address.
        hoa: Ipv6Addr,
        /// The correspondent.
        peer: Ipv6Addr,
    },
    /// Reverse tunnel of a local home address (RFC 6275 11.3.1): packets
    /// from `hoa` without a home address binding are encapsulated from
    /// `coa` to `home_agent`; tunnelled packets from `home_agent` to `coa`
    /// whose inner destination is `hoa` are decapsulated (11.3.3). Steers
    /// packets from `hoa` into the TUN.
    AddReverseTunnel {
        /// Our home address.
        hoa: Ipv6Addr,
        /// Our care-of address (outer source).
        coa: Ipv6Addr,
        /// The home agent (outer destination).
        home_agent: Ipv6Addr,
    },
    /// Removes a reverse tunnel.
    RemoveReverseTunnel {
        /// Our home address.
        hoa: Ipv6Addr,
    },
    /// Home agent binding (RFC 6275 10.4): packets to `hoa` are
    /// encapsulated from `home_agent` to `coa` (10.4.1), Mobility Header
    /// messages to `hoa` not for us are relayed the same way (10.4.6), and
    /// tunnelled packets from `coa` to `home_agent` whose inner source is
    /// `hoa` are decapsulated (10.4.5). Steers `hoa` into the TUN.
    AddHomeTunnel {
        /// The registered home address.
        hoa: Ipv6Addr,
        /// Our (the home agent's) address, outer source.
        home_agent: Ipv6Addr,
        /// The registered care-of address, outer destination.
        coa: Ipv6Addr,
    },
    /// Removes a home tunnel.
    RemoveHomeTunnel {
        /// The home address.
        hoa: Ipv6Addr,
    },
    /// A group member's care-of address: IPv6-in-IPv6 from it carrying a
    /// client's packet for a local home address is accepted when that
    /// client has an entry here (handoff forwarding, see
    /// [`super::member`]).
    AddGroupMember {
        /// The member's care-of address.
        coa: Ipv6Addr,
    },
    /// Removes a group member.
    RemoveGroupMember {
        /// The member's care-of address.
        coa: Ipv6Addr,
    },
    /// Queues the packets of `client` to `hoa` instead of giving them to
    /// the kernel (acceptor before its restored sockets are live; donor
    /// while rolling back). Keeps what is already queued.
    HoldClient {
        /// Our home address (X).
        hoa: Ipv6Addr,
        /// The client.
        client: Ipv6Addr,
        /// Bounds of the queue.
        #[serde(default)]
        limit: HoldLimit,
    },
    /// Forwards the packets of `client` to `hoa` to the member at
    /// `member`, encapsulated from `local` (donor during and after a
    /// handoff); flushes the hold queue there first.
    ForwardClient {
        /// Our home address (X).
        hoa: Ipv6Addr,
        /// The client.
        client: Ipv6Addr,
        /// Our care-of address (outer source).
        local: Ipv6Addr,
        /// The member's care-of address (outer destination).
        member: Ipv6Addr,
    },
    /// Writes the hold queue of `client` into the TUN in arrival order and
    /// delivers its packets from then on (still accepting them from
    /// members' tunnels).
    ReleaseClient {
        /// Our home address (X).
        hoa: Ipv6Addr,
        /// The client.
        client: Ipv6Addr,
    },
    /// Removes the entry of `client`; queued packets are dropped and
    /// counted.
    RemoveClient {
        /// Our home address (X).
        hoa: Ipv6Addr,
        /// The client.
        client: Ipv6Addr,
    },
    /// PIAS (seed 001 3): an anycast prefix this proxy serves. Packets
    /// routed to it are translated or tunnelled by the proxy tables below,
    /// or punted ([`super::Punt::Proxy`]) when no entry applies. Steers the
    /// prefix into the TUN.
    AddAnycastPrefix {
        /// The prefix.
        prefix: Ipv6Addr,
        /// Its length.
        len: u8,
    },
    /// Removes an anycast prefix.
    RemoveAnycastPrefix {
        /// The prefix.
        prefix: Ipv6Addr,
        /// Its length.
        len: u8,
    },
    /// PIAS: the join proxy's NAT source address toward targets
    /// (`JAP:q`); replies to it without a binding are punted. Steers it
    /// into the TUN.
    AddNatAddress {
        /// The address.
        addr: Ipv6Addr,
    },
    /// Removes a NAT address.
    RemoveNatAddress {
        /// The address.
        addr: Ipv6Addr,
    },
    /// PIAS: another proxy. IPv6-in-IPv6 from `peer` to `local` is
    /// decapsulated (RFC 2473) and its inner packet translated or punted.
    AddProxyPeer {
        /// The peer's unicast address (outer source).
        peer: Ipv6Addr,
        /// Our unicast address (outer destination).
        local: Ipv6Addr,
    },
    /// Removes a proxy peer.
    RemoveProxyPeer {
        /// The peer's unicast address.
        peer: Ipv6Addr,
    },
    /// PIAS ingress proxy: the packets of `flow` are encapsulated from
    /// `local` to the join proxy `jap` (seed 001 figure 2, later packets).
    AddIngressFlow {
        /// The flow (client to group).
        flow: ProxyFlow,
        /// Our unicast address (outer source).
        local: Ipv6Addr,
        /// The join proxy (outer destination).
        jap: Ipv6Addr,
    },
    /// Removes an ingress flow.
    RemoveIngressFlow {
        /// The flow.
        flow: ProxyFlow,
    },
    /// PIAS join proxy: the packets of `flow` go to a target, translated
    /// (`JAP:q = NAT(AC:p)`) or tunnelled; replies come back translated.
    AddNatBinding {
        /// The flow (client to group).
        flow: ProxyFlow,
        /// Where it goes.
        binding: NatBinding,
    },
    /// Removes a NAT binding.
    RemoveNatBinding {
        /// The flow.
        flow: ProxyFlow,
    },
    /// Empties every table.
    Clear,
}

/// Names one binding or tunnel, for usage queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BindingKey {
    /// A correspondent binding.
    Correspondent {
        /// Our address.
        cn: Ipv6Addr,
        /// The home address.
        hoa: Ipv6Addr,
    },
    /// A home address binding.
    HomeAddress {
        /// Our home address.
        hoa: Ipv6Addr,
        /// The correspondent.
        peer: Ipv6Addr,
    },
    /// A reverse tunnel.
    ReverseTunnel {
        /// Our home address.
        hoa: Ipv6Addr,
    },
    /// A home tunnel.
    HomeTunnel {
        /// The registered home address.
        hoa: Ipv6Addr,
    },
}
