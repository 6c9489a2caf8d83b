//! A whole IPv6 packet carrying a Mobility Header, optionally with a Type 2
//! Routing Header (e.g. a Binding Acknowledgement to a care-of address, RFC
//! 6275 9.5.4) and/or a Home Address option (a Binding Update from a care-of
//! address, RFC 6275 11.7.1): the unit the protocol machines send and
//! receive.

use std::net::Ipv6Addr;

use super::dest_opts::{DestOptsHeader, HAO_DEST_OPTS_LEN, OptionAction, emit_hao_header};
use super::error::{Error, Result};
use super::ext_chain::{ExtChain, ExtKind};
use super::ip_proto;
use super::ipv6::{IPV6_HEADER_LEN, Ipv6Packet, Ipv6Repr};
use super::mh::{AUTHENTICATOR_LEN, AuthInput, MhRepr, MobilityHeader};
use super::rh2::{RH2_LEN, Rh2Repr};

/// Default hop limit for Mobility Header packets.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// An IPv6 packet whose payload is `[RH2] [Dest-Opts HAO] MH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MhPacketRepr {
    /// IPv6 source address (the care-of address when `hao` is set).
    pub src_addr: Ipv6Addr,
    /// IPv6 destination address (the care-of address when `rh2` is set).
    pub dst_addr: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// Home address carried in a Home Address option, if any.
    pub hao: Option<Ipv6Addr>,
    /// Home address carried in a Type 2 Routing Header, if any.
    pub rh2: Option<Ipv6Addr>,
    /// The Mobility Header.
    pub mh: MhRepr,
}

/// A parsed packet plus the raw Mobility Header bytes (for authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMhPacket<'a> {
    /// The packet as values.
    pub repr: MhPacketRepr,
    /// The Mobility Header bytes inside the packet.
    pub mh_bytes: &'a [u8],
}

impl ParsedMhPacket<'_> {
    /// RFC 6275 6.2.7 authenticated bytes (see [`MobilityHeader::binding_auth_input`]).
    pub fn binding_auth_input(&self) -> Result<AuthInput<'_>> {
        super::mh::binding_auth_input(self.mh_bytes)
    }

    /// RFC 4285 authenticated bytes (see [`MobilityHeader::message_auth_input`]).
    pub fn message_auth_input(&self, subtype: u8) -> Result<AuthInput<'_>> {
        super::mh::message_auth_input(self.mh_bytes, subtype)
    }
}

/// RFC 8200 4.2: rejects option headers holding unrecognized options whose
/// type demands discarding the packet. The Home Address option is known in
/// Destination Options headers only (RFC 6275 6.3), not in Hop-by-Hop.
fn check_option_actions(hdr: &[u8], hao_allowed: bool) -> Result<()> {
    for o in DestOptsHeader::new_unchecked(hdr).options() {
        let o = o?;
        if o.is_padding() || (hao_allowed && o.opt_type == super::dest_opts::HAO_TYPE) {
            continue;
        }
        let action = OptionAction::of(o.opt_type);
        if action != OptionAction::Skip {
            return Err(Error::UnrecognizedOption {
                opt_type: o.opt_type,
                offset: o.offset,
                action,
            });
        }
    }
    Ok(())
}

impl MhPacketRepr {
    /// A packet without RH2 or HAO.
    pub fn new(src_addr: Ipv6Addr, dst_addr: Ipv6Addr, mh: MhRepr) -> Self {
        MhPacketRepr {
            src_addr,
            dst_addr,
            hop_limit: DEFAULT_HOP_LIMIT,
            hao: None,
            rh2: None,
            mh,
        }
    }

    /// Source address of the checksum pseudo-header: the home address if a
    /// HAO is carried (RFC 6275 9.3.1), else the IPv6 source.
    pub fn pseudo_src(&self) -> Ipv6Addr {
        self.hao.unwrap_or(self.src_addr)
    }

    /// Destination of the checksum pseudo-header: the final destination,
    /// i.e. the RH2 home address if present (RFC 8200 8.1), else the IPv6
    /// destination.
    pub fn pseudo_dst(&self) -> Ipv6Addr {
        self.rh2.unwrap_or(self.dst_addr)
    }

    /// Parses a whole IPv6 packet: walks the chain (see [`ExtChain::walk`]),
    /// rejects option headers with must-discard unknown options, requires
    /// the chain to end in a Mobility Header, verifies its checksum with the
    /// RFC 6275 pseudo-header and parses it. Other extension headers
    /// (Hop-by-Hop, other Destination Options) are allowed and ignored.
    pub fn parse(packet: &[u8]) -> Result<MhPacketRepr> {
        Ok(Self::parse_with_bytes(packet)?.repr)
    }

    /// Like [`Self::parse`], also returning the raw Mobility Header bytes.
    pub fn parse_with_bytes(packet: &[u8]) -> Result<ParsedMhPacket<'_>> {
        let (p, checksum_ok) = Self::parse_unverified(packet)?;
        if !checksum_ok {
            let found = MobilityHeader::new_unchecked(p.mh_bytes).checksum();
            return Err(Error::BadChecksum { found });
        }
        Ok(p)
    }

    /// Everything [`Self::parse_with_bytes`] checks except the checksum,
    /// whose verdict is returned instead (for capture inspection: a packet
    /// with a bad checksum is still decoded).
    pub fn parse_unverified(packet: &[u8]) -> Result<(ParsedMhPacket<'_>, bool)> {
        let chain = ExtChain::walk(packet)?;
        if chain.is_non_first_fragment() {
            return Err(Error::NonFirstFragment);
        }
        for h in chain.headers() {
            if matches!(h.kind, ExtKind::HopByHop | ExtKind::DestOpts) {
                check_option_actions(&packet[h.offset..h.end()], h.kind == ExtKind::DestOpts)?;
            }
        }
        let off = chain
            .mh_offset()
            .ok_or(Error::NoMobilityHeader(chain.upper_proto()))?;
        let ip = Ipv6Packet::new_unchecked(packet);
        let mh = MobilityHeader::new_checked(&packet[off..chain.total_len()])?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let (psrc, pdst) = (chain.pseudo_src(src), chain.pseudo_dst(dst));
        let repr = MhRepr::parse(&mh)?;
        let checksum_ok = mh.verify_checksum(&psrc, &pdst);
        let mh_bytes = &packet[off..off + mh.total_len()];
        let repr = MhPacketRepr {
            src_addr: src,
            dst_addr: dst,
            hop_limit: ip.hop_limit(),
            hao: chain.hao().map(|h| h.home_address),
            rh2: chain.rh2().map(|r| r.home_address),
            mh: repr,
        };
        Ok((ParsedMhPacket { repr, mh_bytes }, checksum_ok))
    }

    /// Offset of the Mobility Header in the emitted packet.
    pub fn mh_offset(&self) -> usize {
        IPV6_HEADER_LEN
            + if self.rh2.is_some() { RH2_LEN } else { 0 }
            + if self.hao.is_some() {
                HAO_DEST_OPTS_LEN
            } else {
                0
            }
    }

    /// Emitted length.
    pub fn buffer_len(&self) -> usize {
        self.mh_offset() + self.mh.buffer_len()
    }

    /// Writes the packet into `buf` (at least [`Self::buffer_len`] long) in
    /// RFC 8200 / RFC 6275 6.3 order: IPv6, RH2, Destination Options (HAO),
    /// MH. Returns the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let have = buf.len();
        let buf = buf
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall { need: len, have })?;
        let mh_off = self.mh_offset();
        let first = match (self.rh2, self.hao) {
            (Some(_), _) => ip_proto::ROUTING,
            (None, Some(_)) => ip_proto::DEST_OPTS,
            (None, None) => ip_proto::MOBILITY,
        };
        Ipv6Repr {
            src_addr: self.src_addr,
            dst_addr: self.dst_addr,
            next_header: first,
            payload_len: len - IPV6_HEADER_LEN,
            hop_limit: self.hop_limit,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit_into(buf)?;
        let mut at = IPV6_HEADER_LEN;
        if let Some(home_address) = self.rh2 {
            let nh = if self.hao.is_some() {
                ip_proto::DEST_OPTS
            } else {
                ip_proto::MOBILITY
            };
            Rh2Repr {
                next_header: nh,
                home_address,
            }
            .emit_into(&mut buf[at..])?;
            at += RH2_LEN;
        }
        if let Some(hoa) = self.hao {
            emit_hao_header(&mut buf[at..], ip_proto::MOBILITY, &hoa)?;
        }
        self.mh.emit(
            &mut MobilityHeader::new_unchecked(&mut buf[mh_off..]),
            &self.pseudo_src(),
            &self.pseudo_dst(),
        )?;
        Ok(len)
    }

    /// Emits into a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }

    /// Emits a packet whose Binding Authorization Data authenticator (RFC
    /// 6275 6.2.7) is computed by `auth` over the authenticated MH data;
    /// the MH must carry that option (its value here is ignored). The
    /// checksum is computed last, over the final authenticator.
    pub fn to_bytes_with_binding_auth(
        &self,
        auth: impl FnOnce(&AuthInput<'_>) -> [u8; AUTHENTICATOR_LEN],
    ) -> Result<Vec<u8>> {
        let mut v = self.to_bytes()?;
        let off = self.mh_offset();
        let a = auth(&super::mh::binding_auth_input(&v[off..])?);
        let mut mh = MobilityHeader::new_unchecked(&mut v[off..]);
        mh.set_authenticator(&a)?;
        mh.fill_checksum(&self.pseudo_src(), &self.pseudo_dst());
        Ok(v)
    }

    /// Emits a packet whose RFC 4285 authentication data (option `subtype`,
    /// 1 = MN-HA) is computed by `auth`; the returned data must have the
    /// length of the option's data in the Repr. Checksum computed last.
    pub fn to_bytes_with_message_auth(
        &self,
        subtype: u8,
        auth: impl FnOnce(&AuthInput<'_>) -> Vec<u8>,
    ) -> Result<Vec<u8>> {
        let mut v = self.to_bytes()?;
        let off = self.mh_offset();
        let a = auth(&super::mh::message_auth_input(&v[off..], subtype)?);
        let mut mh = MobilityHeader::new_unchecked(&mut v[off..]);
        mh.set_message_auth_data(subtype, &a)?;
        mh.fill_checksum(&self.pseudo_src(), &self.pseudo_dst());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mh::{BindingUpdateRepr, BuFlags, MhMessage};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn bu() -> MhPacketRepr {
        let m = MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
            sequence: 1,
            flags: BuFlags::ACK,
            lifetime: 2,
        }));
        let mut p = MhPacketRepr::new(a("2001:db8:2::1"), a("2001:db8:3::1"), m);
        p.hao = Some(a("2001:db8:1::1"));
        p
    }

    /// Puts a Hop-by-Hop header holding option `opt` (4 data octets) in front.
    fn with_hbh(mut v: Vec<u8>, opt: u8) -> Vec<u8> {
        let first = v[6];
        v[6] = ip_proto::HOP_BY_HOP;
        v.splice(40..40, [first, 0, opt, 4, 0, 0, 0, 0]);
        v[5] += 8;
        v
    }

    #[test]
    fn checksum_uses_home_address_and_final_destination() {
        let mut p = bu();
        p.rh2 = Some(a("2001:db8:5::5"));
        let v = p.to_bytes().unwrap();
        let mh = MobilityHeader::new_checked(&v[p.mh_offset()..]).unwrap();
        assert!(mh.verify_checksum(&a("2001:db8:1::1"), &a("2001:db8:5::5")));
        assert!(!mh.verify_checksum(&p.src_addr, &p.dst_addr));
        assert_eq!(MhPacketRepr::parse(&v).unwrap(), p);
    }

    #[test]
    fn option_actions_in_hop_by_hop_and_dest_opts() {
        let v = bu().to_bytes().unwrap();
        // Skip-type unknown option: fine.
        assert_eq!(
            MhPacketRepr::parse(&with_hbh(v.clone(), 0x1e)).unwrap(),
            bu()
        );
        // A HAO type in Hop-by-Hop is unrecognized there and demands discard.
        assert_eq!(
            MhPacketRepr::parse(&with_hbh(v.clone(), 0xc9)),
            Err(Error::UnrecognizedOption {
                opt_type: 0xc9,
                offset: 2,
                action: OptionAction::DiscardSendIcmpUnlessMulticast
            })
        );
        assert!(matches!(
            MhPacketRepr::parse(&with_hbh(v, 0x7e)),
            Err(Error::UnrecognizedOption {
                action: OptionAction::Discard,
                ..
            })
        ));
    }

    #[test]
    fn needs_a_mobility_header() {
        let mut v = bu().to_bytes().unwrap();
        let mh_nh = 40;
        v[mh_nh] = ip_proto::UDP;
        assert_eq!(
            MhPacketRepr::parse(&v),
            Err(Error::NoMobilityHeader(ip_proto::UDP))
        );
        v[mh_nh] = ip_proto::MOBILITY;
        v[64 + 4] ^= 1;
        assert!(matches!(
            MhPacketRepr::parse(&v),
            Err(Error::BadChecksum { .. })
        ));
        let (p, ok) = MhPacketRepr::parse_unverified(&v).unwrap();
        assert!(!ok);
        assert_eq!(p.repr, bu());
    }
}
