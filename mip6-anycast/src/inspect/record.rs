//! The per-packet records the inspector produces. Field names are the
//! JSON interface of `mip6-inspect --json` and stay stable; `serde`
//! serializes them in declaration order.

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Serialize, Serializer};

use super::capture::CaptureFormat;

/// Bytes printed as lower-case hex (cookies, tokens, authenticators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<&[u8]> for Hex {
    fn from(b: &[u8]) -> Self {
        Hex(b.to_vec())
    }
}

/// One capture file, decoded.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureReport {
    /// The file name as given (or a label for in-memory input).
    pub file: String,
    /// pcap or pcapng.
    pub format: CaptureFormat,
    /// The file's link type (classic pcap only; pcapng has one per
    /// interface, see [`PacketRecord::link_type`]).
    pub link_type: Option<u32>,
    /// Every packet, in capture order.
    pub packets: Vec<PacketRecord>,
    /// Why reading stopped before the end of the file, if it did.
    pub capture_error: Option<String>,
}

impl CaptureReport {
    /// True if any packet has a problem ([`PacketRecord::has_problem`]) or
    /// the file could not be read to its end.
    pub fn has_problem(&self) -> bool {
        self.capture_error.is_some() || self.packets.iter().any(PacketRecord::has_problem)
    }
}

/// One packet.
#[derive(Debug, Clone, Serialize)]
pub struct PacketRecord {
    /// 0-based position in the capture (every record counts, also skipped
    /// pcapng blocks).
    pub index: u64,
    /// `seconds.nanoseconds` since the Unix epoch.
    pub timestamp: String,
    /// Link type of the frame.
    pub link_type: u32,
    /// Octets captured.
    pub caplen: usize,
    /// Octets the packet had on the wire.
    pub len: u64,
    /// `caplen < len`: the capture cut the packet short.
    pub truncated: bool,
    /// Any decoding error, truncation included.
    pub malformed: bool,
    /// The first error found (the wire layer's reason), if any.
    pub error: Option<String>,
    /// What the frame carries instead of IPv6 (e.g. "IPv4"), if not IPv6.
    pub not_ipv6: Option<String>,
    /// The outer IPv6 packet.
    pub ipv6: Option<Ipv6Layer>,
    /// MH type of the (innermost) Mobility Header, if any.
    pub mh_type: Option<u8>,
    /// Its name (BRR, HoTI, CoTI, HoT, CoT, BU, BA, BE).
    pub mh_name: Option<&'static str>,
    /// All checksums checked in the packet verify (MH checksum; transport
    /// checksum of data packets with RH2/HAO). `null` if none was checked;
    /// `false` if one could not be checked because the packet is cut short.
    pub checksum_ok: Option<bool>,
    /// Binding Update, and Binding Acknowledgement with Binding
    /// Authorization Data only: the RFC 6275 6.2.7 authenticator verified
    /// with a Kbm built from keygen tokens seen earlier in the capture;
    /// `null` if those tokens (or the option) are not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticator_ok: Option<Option<bool>>,
    /// Why `authenticator_ok` is what it is (present with it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticator_note: Option<String>,
}

impl PacketRecord {
    /// Malformed, or a checksum or authenticator that is false: what
    /// `mip6-inspect --strict` fails on.
    pub fn has_problem(&self) -> bool {
        self.malformed
            || self.checksum_ok == Some(false)
            || self.authenticator_ok == Some(Some(false))
    }
}

/// One IPv6 header with its extension headers and upper layer.
#[derive(Debug, Clone, Serialize)]
pub struct Ipv6Layer {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header of the fixed header.
    pub next_header: u8,
    /// Payload length field.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Extension headers in wire order (empty if the chain is malformed).
    pub ext: Vec<ExtRecord>,
    /// The home address of the Home Address option.
    pub hao: Option<Ipv6Addr>,
    /// The home address of the Type 2 Routing Header.
    pub rh2: Option<Ipv6Addr>,
    /// Protocol after the extension headers.
    pub upper_proto: Option<u8>,
    /// The Mobility Header, if the chain ends in one.
    pub mh: Option<MhRecord>,
    /// TCP, UDP or ICMPv6, if the chain ends in one.
    pub transport: Option<TransportRecord>,
    /// The inner packet of IPv6-in-IPv6.
    pub inner: Option<Box<Ipv6Layer>>,
    /// The first error found in this layer.
    pub error: Option<String>,
}

/// One extension header.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExtRecord {
    /// Hop-by-Hop Options.
    HopByHop {
        /// Length in octets.
        len: usize,
        /// Options, padding included.
        options: Vec<DestOptRecord>,
    },
    /// Destination Options.
    Dstopts {
        /// Length in octets.
        len: usize,
        /// Options, padding included.
        options: Vec<DestOptRecord>,
    },
    /// Type 2 Routing Header (RFC 6275 6.4).
    Rh2 {
        /// The home address.
        home_address: Ipv6Addr,
        /// Segments left (1).
        segments_left: u8,
    },
    /// Another routing header.
    Routing {
        /// Routing type.
        routing_type: u8,
        /// Segments left.
        segments_left: u8,
        /// Length in octets.
        len: usize,
    },
    /// Fragment header.
    Fragment {
        /// Offset in 8-octet units.
        offset: u16,
        /// More fragments.
        more: bool,
        /// Identification.
        ident: u32,
    },
    /// Authentication Header.
    Ah {
        /// Length in octets.
        len: usize,
    },
    /// Another RFC 6564 extension header.
    Other {
        /// Its protocol number.
        proto: u8,
        /// Length in octets.
        len: usize,
    },
    /// IPv6-in-IPv6 (RFC 2473): the inner header's addresses; the inner
    /// packet is in [`Ipv6Layer::inner`].
    Ip6ip6 {
        /// Inner source.
        inner_src: Ipv6Addr,
        /// Inner destination.
        inner_dst: Ipv6Addr,
    },
}

/// One option of a Hop-by-Hop or Destination Options header.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DestOptRecord {
    /// Pad1.
    Pad1,
    /// PadN with `len` data octets.
    Padn {
        /// Option data length.
        len: usize,
    },
    /// Home Address option (RFC 6275 6.3).
    Hao {
        /// The home address.
        home_address: Ipv6Addr,
    },
    /// Any other option.
    Other {
        /// Option type.
        opt_type: u8,
        /// Option data.
        data: Hex,
    },
}

/// A Mobility Header (RFC 6275 6.1).
#[derive(Debug, Clone, Serialize)]
pub struct MhRecord {
    /// MH type.
    #[serde(rename = "type")]
    pub mh_type: u8,
    /// Its name ("BU", ...; "unknown" for others).
    pub name: &'static str,
    /// Payload Proto (59).
    pub payload_proto: u8,
    /// Header Len field (8-octet units minus 1).
    pub header_len: u8,
    /// The Checksum field.
    pub checksum: u16,
    /// The checksum verifies over the RFC 6275 pseudo-header (HAO home
    /// address as source, RH2 home address as destination); false if the
    /// header is cut short.
    pub checksum_ok: bool,
    /// Pseudo-header source used.
    pub pseudo_src: Ipv6Addr,
    /// Pseudo-header destination used.
    pub pseudo_dst: Ipv6Addr,
    /// The message fields (`null` if the message did not parse).
    pub fields: Option<MhFields>,
    /// Mobility options in wire order, padding included.
    pub options: Vec<MhOptionRecord>,
}

/// Flags of a Binding Update (RFC 6275 6.1.7).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BuFlagsRecord {
    /// Acknowledge.
    pub a: bool,
    /// Home registration.
    pub h: bool,
    /// Link-local address compatibility.
    pub l: bool,
    /// Key management mobility capability.
    pub k: bool,
}

/// Flags of a Binding Acknowledgement (RFC 6275 6.1.8).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BaFlagsRecord {
    /// Key management mobility capability.
    pub k: bool,
}

/// The fixed fields of each message type.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MhFields {
    /// BU.
    BindingUpdate {
        /// Sequence number.
        sequence: u16,
        /// A/H/L/K.
        flags: BuFlagsRecord,
        /// Lifetime in 4-second units.
        lifetime_units: u16,
        /// Lifetime in seconds.
        lifetime_seconds: u32,
    },
    /// BA.
    BindingAck {
        /// Status code.
        status: u8,
        /// Its RFC 6275 / RFC 4285 name.
        status_name: &'static str,
        /// Status < 128.
        accepted: bool,
        /// K.
        flags: BaFlagsRecord,
        /// Sequence number.
        sequence: u16,
        /// Lifetime in 4-second units.
        lifetime_units: u16,
        /// Lifetime in seconds.
        lifetime_seconds: u32,
    },
    /// BE.
    BindingError {
        /// Status code.
        status: u8,
        /// Its RFC 6275 name.
        status_name: &'static str,
        /// Home address.
        home_address: Ipv6Addr,
    },
    /// HoT.
    HomeTest {
        /// Home nonce index.
        home_nonce_index: u16,
        /// Home init cookie.
        home_init_cookie: Hex,
        /// Home keygen token.
        home_keygen_token: Hex,
    },
    /// CoT.
    CareOfTest {
        /// Care-of nonce index.
        care_of_nonce_index: u16,
        /// Care-of init cookie.
        care_of_init_cookie: Hex,
        /// Care-of keygen token.
        care_of_keygen_token: Hex,
    },
    /// HoTI.
    HomeTestInit {
        /// Home init cookie.
        home_init_cookie: Hex,
    },
    /// CoTI.
    CareOfTestInit {
        /// Care-of init cookie.
        care_of_init_cookie: Hex,
    },
    /// BRR: no fields.
    BindingRefreshRequest {},
}

/// One mobility option.
#[derive(Debug, Clone, Serialize)]
pub struct MhOptionRecord {
    /// Offset from the start of the Mobility Header.
    pub offset: usize,
    /// Option type.
    #[serde(rename = "type")]
    pub opt_type: u8,
    /// Its name.
    pub name: &'static str,
    /// Its fields.
    #[serde(flatten)]
    pub value: MhOptionValue,
}

/// The fields of a mobility option.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MhOptionValue {
    /// PadN: `len` data octets.
    PadN {
        /// Option Length.
        len: usize,
    },
    /// Binding Refresh Advice (RFC 6275 6.2.4).
    BindingRefreshAdvice {
        /// 4-second units.
        refresh_interval_units: u16,
        /// Seconds.
        refresh_interval_seconds: u32,
    },
    /// Alternate Care-of Address (RFC 6275 6.2.5).
    AlternateCoa {
        /// The address.
        alternate_coa: Ipv6Addr,
    },
    /// Nonce Indices (RFC 6275 6.2.6).
    NonceIndices {
        /// Home nonce index.
        home_nonce_index: u16,
        /// Care-of nonce index.
        care_of_nonce_index: u16,
    },
    /// Binding Authorization Data (RFC 6275 6.2.7).
    BindingAuthData {
        /// The 96-bit authenticator.
        authenticator: Hex,
    },
    /// Mobility Message Authentication (RFC 4285 5).
    MessageAuth {
        /// 1 MN-HA, 2 MN-AAA.
        subtype: u8,
        /// Mobility SPI.
        spi: u32,
        /// Authentication data.
        auth_data: Hex,
    },
    /// Mobility Message Replay Protection (RFC 4285 6).
    MesgId {
        /// 64-bit timestamp.
        timestamp: u64,
    },
    /// Pad1, or an option this inspector does not decode (`data` raw).
    Raw {
        /// Option data (empty for Pad1).
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<Hex>,
    },
}

/// TCP, UDP or ICMPv6 header facts.
#[derive(Debug, Clone, Serialize)]
pub struct TransportRecord {
    /// 6, 17 or 58.
    pub proto: u8,
    /// "tcp", "udp", "icmpv6".
    pub name: &'static str,
    /// Source port (TCP/UDP).
    pub src_port: Option<u16>,
    /// Destination port (TCP/UDP).
    pub dst_port: Option<u16>,
    /// ICMPv6 type.
    pub icmp_type: Option<u8>,
    /// ICMPv6 code.
    pub icmp_code: Option<u8>,
    /// The checksum field.
    pub checksum: Option<u16>,
    /// Verified for packets with a RH2 or HAO (whose pseudo-header must use
    /// the home address, RFC 6275 6.3/6.4); `null` when not checked.
    pub checksum_ok: Option<bool>,
}
