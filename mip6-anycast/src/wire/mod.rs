//! Wire formats (layer 1): IPv6, extension headers, Mobility Header,
//! IPv6-in-IPv6, in the style of smoltcp's `wire` module.
//!
//! * Zero-copy views over bytes: [`Ipv6Packet`], [`DestOptsHeader`],
//!   [`RoutingHeader`], [`MobilityHeader`], each with `new_unchecked`,
//!   `new_checked`, getters and (for `T: AsMut<[u8]>`) setters.
//! * Plain `Repr` values with `parse(&view) -> Result<Repr>`, `buffer_len()`
//!   and `emit(&self, &mut view)`: [`Ipv6Repr`], [`DestOptsRepr`],
//!   [`Rh2Repr`], [`MhRepr`] (one [`MhMessage`] plus [`MobilityOption`]s) and
//!   the whole-packet [`MhPacketRepr`].
//! * [`ExtChain`]: a bounded walk over the extension-header chain giving
//!   offsets of every header, the RH2, the HAO, the MH and the inner packet.
//! * [`ip6ip6`]: RFC 2473 encapsulation; [`edit`]: in-place datapath
//!   rewrites (insert/strip RH2 and HAO, encapsulate/decapsulate) that move
//!   only the IPv6 header into headroom.
//! * [`transport`]: ports of plain TCP/UDP packets and the PIAS join
//!   proxy's address and port translation (RFC 1624 checksum update).
//! * [`AuthInput`]: the exact bytes RFC 6275 6.2.7 and RFC 4285 authenticate.
//!
//! Hostile input: every parser returns an [`Error`] naming what is wrong;
//! nothing panics, indexes out of bounds or allocates more than the input
//! size (property-tested in `tests/wire_props.rs`).

pub mod checksum;
mod dest_opts;
pub mod edit;
mod error;
mod ext_chain;
pub mod ip6ip6;
mod ipv6;
pub mod mh;
mod mh_packet;
mod rh2;
pub mod tlv;
pub mod transport;
mod view;

pub use dest_opts::{
    DestOption, DestOptsHeader, DestOptsRepr, HAO_DATA_LEN, HAO_DEST_OPTS_LEN,
    HAO_STD_OPTION_OFFSET, HAO_TYPE, HopByHopHeader, OptionAction, emit_hao_header,
    is_valid_home_address, read_hao,
};
pub use edit::{Bounds, PacketBuf, Stripped};
pub use error::{Error, Result};
pub use ext_chain::{ExtChain, ExtHeader, ExtKind, HaoLocation, MAX_EXT_HEADERS, Rh2Location};
pub use ip6ip6::{Decapsulated, TUNNEL_OVERHEAD, TunnelParams};
pub use ipv6::{IPV6_HEADER_LEN, Ipv6Packet, Ipv6Repr};
pub use mh::{
    AuthInput, Authenticator, BaFlags, BaStatus, BeStatus, BindingAckRepr, BindingErrorRepr,
    BindingUpdateRepr, BuFlags, CareOfTestInitRepr, CareOfTestRepr, Cookie, HomeTestInitRepr,
    HomeTestRepr, KeygenToken, MessageAuth, MhMessage, MhRepr, MobilityHeader, MobilityOption,
    duration_to_lifetime, lifetime_to_duration,
};
pub use mh_packet::{DEFAULT_HOP_LIMIT, MhPacketRepr, ParsedMhPacket};
pub use rh2::{RH2_HOA_OFFSET, RH2_LEN, ROUTING_TYPE_2, Rh2Repr, RoutingHeader};

/// IPv6 next-header values used here (IANA "Assigned Internet Protocol Numbers").
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOP_BY_HOP: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation (RFC 2473).
    pub const IPV6: u8 = 41;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AUTH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header.
    pub const NO_NEXT_HEADER: u8 = 59;
    /// Destination Options.
    pub const DEST_OPTS: u8 = 60;
    /// Mobility Header (RFC 6275).
    pub const MOBILITY: u8 = 135;
    /// Host Identity Protocol.
    pub const HIP: u8 = 139;
    /// Shim6.
    pub const SHIM6: u8 = 140;
}
