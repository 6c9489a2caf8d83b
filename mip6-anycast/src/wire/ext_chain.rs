//! A bounded walker over the IPv6 extension-header chain (RFC 8200 4,
//! RFC 7045 list of extension headers). It records where every header is,
//! where the upper layer starts, and locates the Mobile IPv6 pieces (Type 2
//! Routing Header, Home Address option, Mobility Header, inner IPv6 packet)
//! so callers never re-parse the chain.

use std::net::Ipv6Addr;

use super::dest_opts::{DestOptsHeader, read_hao};
use super::error::{Error, Result, need};
use super::ip_proto;
use super::ipv6::{IPV6_HEADER_LEN, Ipv6Packet};
use super::rh2::{ROUTING_TYPE_2, RoutingHeader};

/// At most this many extension headers are walked; more is an error
/// ([`Error::TooManyExtHeaders`]). RFC 8200 4.1 allows each header once
/// (destination options twice), so a legitimate chain has fewer.
pub const MAX_EXT_HEADERS: usize = 8;

/// What an extension header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtKind {
    /// Hop-by-Hop Options (0).
    HopByHop,
    /// Destination Options (60).
    DestOpts,
    /// Routing (43), identified by type and segments left.
    Routing {
        /// Routing type.
        routing_type: u8,
        /// Segments left.
        segments_left: u8,
    },
    /// Fragment (44).
    Fragment {
        /// Fragment offset in 8-octet units.
        offset: u16,
        /// More-fragments flag.
        more: bool,
        /// Identification.
        ident: u32,
    },
    /// Authentication Header (51).
    Auth,
    /// Another RFC 6564-format extension header (HIP, Shim6, experimental).
    Other(u8),
}

/// One extension header found by the walker. Offsets count from the start
/// of the IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtHeader {
    /// The next-header value that names this header.
    pub proto: u8,
    /// What it is.
    pub kind: ExtKind,
    /// Offset of its first octet.
    pub offset: usize,
    /// Its length in octets.
    pub len: usize,
    /// Offset of the next-header octet that names it (6 for the first).
    pub nh_offset: usize,
}

impl ExtHeader {
    /// Offset one past its last octet.
    pub fn end(&self) -> usize {
        self.offset + self.len
    }
}

/// Where the Type 2 Routing Header is and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rh2Location {
    /// Index into [`ExtChain::headers`].
    pub index: usize,
    /// Offset of the routing header.
    pub offset: usize,
    /// The home address it carries (the final destination).
    pub home_address: Ipv6Addr,
}

/// Where the Home Address option is and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HaoLocation {
    /// Index into [`ExtChain::headers`] of the Destination Options header.
    pub index: usize,
    /// Offset of that Destination Options header.
    pub header_offset: usize,
    /// Its length.
    pub header_len: usize,
    /// Offset of the option type octet of the HAO.
    pub option_offset: usize,
    /// The home address it carries.
    pub home_address: Ipv6Addr,
    /// True if the header holds nothing but this HAO and padding, so that
    /// stripping the option may remove the whole header.
    pub sole_option: bool,
}

/// The walked chain of one IPv6 packet. Plain data (`Copy`), no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtChain {
    headers: [ExtHeader; MAX_EXT_HEADERS],
    count: usize,
    total_len: usize,
    upper_proto: u8,
    upper_offset: usize,
    upper_nh_offset: usize,
    rh2: Option<Rh2Location>,
    hao: Option<HaoLocation>,
    non_first_fragment: bool,
}

const EMPTY: ExtHeader = ExtHeader {
    proto: 0,
    kind: ExtKind::HopByHop,
    offset: 0,
    len: 0,
    nh_offset: 0,
};

fn is_generic_ext(proto: u8) -> bool {
    matches!(proto, ip_proto::HIP | ip_proto::SHIM6 | 253 | 254)
}

impl ExtChain {
    /// Walks the chain of `packet` (a whole IPv6 packet; bytes beyond the
    /// payload length are ignored). Validates on the way: Hop-by-Hop only
    /// first; at most one routing header; a type 2 routing header has the
    /// RFC 6275 6.4 shape; at most one Home Address option, well-formed,
    /// after any routing header and before Fragment/AH/ESP (RFC 6275 6.3).
    /// Stops at the first upper-layer protocol, ESP, the Mobility Header,
    /// No Next Header, or after the fragment header of a non-first fragment.
    pub fn walk(packet: &[u8]) -> Result<ExtChain> {
        let ip = Ipv6Packet::new_checked(packet)?;
        let total_len = ip.total_len();
        let b = &packet[..total_len];
        let mut c = ExtChain {
            headers: [EMPTY; MAX_EXT_HEADERS],
            count: 0,
            total_len,
            upper_proto: ip.next_header(),
            upper_offset: IPV6_HEADER_LEN,
            upper_nh_offset: 6,
            rh2: None,
            hao: None,
            non_first_fragment: false,
        };
        let mut seen_routing = false;
        let mut seen_frag_or_auth = false;
        loop {
            let proto = c.upper_proto;
            let off = c.upper_offset;
            let rest = &b[off..];
            let (kind, len) = match proto {
                ip_proto::HOP_BY_HOP => {
                    if off != IPV6_HEADER_LEN {
                        return Err(Error::MisplacedHopByHop { offset: off });
                    }
                    need("hop-by-hop options header", 2, rest.len())?;
                    (ExtKind::HopByHop, (usize::from(rest[1]) + 1) * 8)
                }
                ip_proto::DEST_OPTS => {
                    need("destination options header", 2, rest.len())?;
                    (ExtKind::DestOpts, (usize::from(rest[1]) + 1) * 8)
                }
                ip_proto::ROUTING => {
                    let rh = RoutingHeader::new_checked(rest)?;
                    if seen_routing {
                        return Err(Error::Duplicate("routing header"));
                    }
                    seen_routing = true;
                    if c.hao.is_some() {
                        return Err(Error::HeaderOrder(
                            "Home Address option before the routing header",
                        ));
                    }
                    let kind = ExtKind::Routing {
                        routing_type: rh.routing_type(),
                        segments_left: rh.segments_left(),
                    };
                    (kind, rh.header_len())
                }
                ip_proto::FRAGMENT => {
                    need("fragment header", 8, rest.len())?;
                    let fo = u16::from_be_bytes([rest[2], rest[3]]);
                    let ident = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
                    seen_frag_or_auth = true;
                    (
                        ExtKind::Fragment {
                            offset: fo >> 3,
                            more: fo & 1 == 1,
                            ident,
                        },
                        8,
                    )
                }
                ip_proto::AUTH => {
                    need("authentication header", 2, rest.len())?;
                    seen_frag_or_auth = true;
                    (ExtKind::Auth, (usize::from(rest[1]) + 2) * 4)
                }
                p if is_generic_ext(p) => {
                    need("extension header", 2, rest.len())?;
                    (ExtKind::Other(p), (usize::from(rest[1]) + 1) * 8)
                }
                _ => return Ok(c),
            };
            need("extension header", len, rest.len())?;
            if c.count == MAX_EXT_HEADERS {
                return Err(Error::TooManyExtHeaders {
                    max: MAX_EXT_HEADERS,
                });
            }
            let h = ExtHeader {
                proto,
                kind,
                offset: off,
                len,
                nh_offset: c.upper_nh_offset,
            };
            let index = c.count;
            c.headers[index] = h;
            c.count += 1;
            match kind {
                ExtKind::Routing {
                    routing_type: ROUTING_TYPE_2,
                    ..
                } => {
                    let rh = RoutingHeader::new_unchecked(&rest[..len]);
                    rh.check_rh2()?;
                    let home_address = rh.home_address();
                    if !super::dest_opts::is_valid_home_address(&home_address) {
                        return Err(Error::BadHomeAddress(home_address));
                    }
                    c.rh2 = Some(Rh2Location {
                        index,
                        offset: off,
                        home_address,
                    });
                }
                ExtKind::DestOpts => {
                    c.scan_dest_opts(&rest[..len], index, off, seen_frag_or_auth)?
                }
                _ => {}
            }
            c.upper_proto = rest[0];
            c.upper_nh_offset = off;
            c.upper_offset = off + len;
            if let ExtKind::Fragment { offset: fo, .. } = kind
                && fo != 0
            {
                c.non_first_fragment = true;
                return Ok(c);
            }
        }
    }

    fn scan_dest_opts(&mut self, hdr: &[u8], index: usize, off: usize, late: bool) -> Result<()> {
        let d = DestOptsHeader::new_unchecked(hdr);
        let mut found = None;
        let mut others = false;
        for o in d.options() {
            let o = o?;
            if o.opt_type == super::dest_opts::HAO_TYPE {
                if found.is_some() || self.hao.is_some() {
                    return Err(Error::Duplicate("Home Address option"));
                }
                found = Some((o.offset, read_hao(hdr, o.offset)?));
            } else if !o.is_padding() {
                others = true;
            }
        }
        if let Some((opt_off, home_address)) = found {
            if late {
                return Err(Error::HeaderOrder(
                    "Home Address option after a Fragment or AH header",
                ));
            }
            self.hao = Some(HaoLocation {
                index,
                header_offset: off,
                header_len: hdr.len(),
                option_offset: off + opt_off,
                home_address,
                sole_option: !others,
            });
        }
        Ok(())
    }

    /// The extension headers in order.
    pub fn headers(&self) -> &[ExtHeader] {
        &self.headers[..self.count]
    }

    /// The protocol after the last extension header walked (6 TCP, 17 UDP,
    /// 58 ICMPv6, 41 IPv6, 135 MH, 50 ESP, 59 none, ...).
    pub fn upper_proto(&self) -> u8 {
        self.upper_proto
    }

    /// Offset where that protocol's header starts.
    pub fn upper_offset(&self) -> usize {
        self.upper_offset
    }

    /// Offset of the next-header octet that names the upper protocol.
    pub fn upper_nh_offset(&self) -> usize {
        self.upper_nh_offset
    }

    /// `40 + payload length`: where the packet proper ends.
    pub fn total_len(&self) -> usize {
        self.total_len
    }

    /// The upper-layer bytes of `packet` (`upper_offset..total_len`).
    pub fn upper_bytes<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet.get(self.upper_offset..self.total_len).unwrap_or(&[])
    }

    /// The Type 2 Routing Header, if present.
    pub fn rh2(&self) -> Option<Rh2Location> {
        self.rh2
    }

    /// The Home Address option, if present.
    pub fn hao(&self) -> Option<HaoLocation> {
        self.hao
    }

    /// Offset of the Mobility Header, if the chain ends in one.
    pub fn mh_offset(&self) -> Option<usize> {
        (self.upper_proto == ip_proto::MOBILITY && !self.non_first_fragment)
            .then_some(self.upper_offset)
    }

    /// Offset of the inner IPv6 packet, if the chain ends in IPv6-in-IPv6.
    pub fn inner_offset(&self) -> Option<usize> {
        (self.upper_proto == ip_proto::IPV6 && !self.non_first_fragment)
            .then_some(self.upper_offset)
    }

    /// The routing header (any type), if present.
    pub fn routing(&self) -> Option<&ExtHeader> {
        self.headers()
            .iter()
            .find(|h| matches!(h.kind, ExtKind::Routing { .. }))
    }

    /// The Hop-by-Hop header, if present (always first).
    pub fn hop_by_hop(&self) -> Option<&ExtHeader> {
        self.headers()
            .first()
            .filter(|h| h.kind == ExtKind::HopByHop)
    }

    /// True if the packet is a fragment other than the first, so the
    /// upper-layer header is not in it.
    pub fn is_non_first_fragment(&self) -> bool {
        self.non_first_fragment
    }

    /// Source address for upper-layer checksums (RFC 6275 9.3.1, 6.1.1):
    /// the home address if a Home Address option is present, else `src`.
    pub fn pseudo_src(&self, src: Ipv6Addr) -> Ipv6Addr {
        self.hao.map_or(src, |h| h.home_address)
    }

    /// Destination address for upper-layer checksums (RFC 8200 8.1): the
    /// final destination, i.e. the home address of a Type 2 Routing Header
    /// (segments left 1), else `dst`.
    pub fn pseudo_dst(&self, dst: Ipv6Addr) -> Ipv6Addr {
        self.rh2.map_or(dst, |r| r.home_address)
    }

    /// Where a Type 2 Routing Header goes (RFC 8200 4.1): directly after the
    /// Hop-by-Hop header if present, else after the fixed header. Returns
    /// the insertion offset and the offset of the next-header octet to patch.
    pub fn rh2_insert_point(&self) -> (usize, usize) {
        match self.hop_by_hop() {
            Some(h) => (h.end(), h.offset),
            None => (IPV6_HEADER_LEN, 6),
        }
    }

    /// Where a Destination Options header with a Home Address option goes
    /// (RFC 6275 6.3): after the routing header if present, else after
    /// Hop-by-Hop, else after the fixed header; always before Fragment, AH
    /// and ESP. Returns (insertion offset, next-header octet offset).
    pub fn hao_insert_point(&self) -> (usize, usize) {
        match self.routing().or(self.hop_by_hop()) {
            Some(h) => (h.end(), h.offset),
            None => (IPV6_HEADER_LEN, 6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dest_opts::emit_hao_header;
    use crate::wire::ipv6::Ipv6Repr;
    use crate::wire::rh2::Rh2Repr;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn packet(nh: u8, exts: &[&[u8]], upper: &[u8]) -> Vec<u8> {
        let plen = exts.iter().map(|e| e.len()).sum::<usize>() + upper.len();
        let mut v = vec![0u8; 40];
        Ipv6Repr {
            src_addr: a("2001:db8::1"),
            dst_addr: a("2001:db8::2"),
            next_header: nh,
            payload_len: plen,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit_into(&mut v)
        .unwrap();
        for e in exts {
            v.extend_from_slice(e);
        }
        v.extend_from_slice(upper);
        v
    }

    #[test]
    fn finds_rh2_hao_and_tcp() {
        let hbh = [ip_proto::ROUTING, 0, 1, 4, 0, 0, 0, 0];
        let rh2 = Rh2Repr {
            next_header: ip_proto::DEST_OPTS,
            home_address: a("2001:db8:1::5"),
        }
        .to_bytes();
        let mut hao = [0u8; 24];
        emit_hao_header(&mut hao, ip_proto::TCP, &a("2001:db8:2::9")).unwrap();
        let p = packet(ip_proto::HOP_BY_HOP, &[&hbh, &rh2, &hao], &[0u8; 20]);
        let c = ExtChain::walk(&p).unwrap();
        assert_eq!(c.headers().len(), 3);
        assert_eq!(c.upper_proto(), ip_proto::TCP);
        assert_eq!(c.upper_offset(), 40 + 8 + 24 + 24);
        assert_eq!(c.upper_nh_offset(), 40 + 8 + 24);
        let r = c.rh2().unwrap();
        assert_eq!((r.offset, r.home_address), (48, a("2001:db8:1::5")));
        let h = c.hao().unwrap();
        assert_eq!(
            (h.header_offset, h.option_offset, h.sole_option),
            (72, 78, true)
        );
        assert_eq!(c.pseudo_src(a("::1")), a("2001:db8:2::9"));
        assert_eq!(c.pseudo_dst(a("::1")), a("2001:db8:1::5"));
        assert_eq!(c.rh2_insert_point(), (48, 40));
        assert_eq!(c.hao_insert_point(), (72, 48));
        assert_eq!(c.mh_offset(), None);
    }

    #[test]
    fn order_and_bounds_errors() {
        let mut hao = [0u8; 24];
        emit_hao_header(&mut hao, ip_proto::ROUTING, &a("2001:db8:2::9")).unwrap();
        let rh2 = Rh2Repr {
            next_header: 59,
            home_address: a("2001:db8:1::5"),
        }
        .to_bytes();
        let p = packet(ip_proto::DEST_OPTS, &[&hao, &rh2], &[]);
        assert_eq!(
            ExtChain::walk(&p),
            Err(Error::HeaderOrder(
                "Home Address option before the routing header"
            ))
        );
        // Hop-by-hop not first.
        let d = [ip_proto::HOP_BY_HOP, 0, 1, 4, 0, 0, 0, 0];
        let h = [59, 0, 1, 4, 0, 0, 0, 0];
        let p = packet(ip_proto::DEST_OPTS, &[&d, &h], &[]);
        assert_eq!(
            ExtChain::walk(&p),
            Err(Error::MisplacedHopByHop { offset: 48 })
        );
        // Too many destination options headers.
        let d = [ip_proto::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        let many: Vec<&[u8]> = vec![&d; MAX_EXT_HEADERS + 1];
        let p = packet(ip_proto::DEST_OPTS, &many, &[]);
        assert_eq!(
            ExtChain::walk(&p),
            Err(Error::TooManyExtHeaders {
                max: MAX_EXT_HEADERS
            })
        );
        // Header running past the payload length.
        let d = [59, 1, 1, 4, 0, 0, 0, 0];
        let p = packet(ip_proto::DEST_OPTS, &[&d], &[]);
        assert!(matches!(
            ExtChain::walk(&p),
            Err(Error::Truncated {
                need: 16,
                have: 8,
                ..
            })
        ));
        // Two routing headers.
        let r0 = [ip_proto::ROUTING, 0, 0, 0, 0, 0, 0, 0];
        let r1 = [59, 0, 0, 0, 0, 0, 0, 0];
        let p = packet(ip_proto::ROUTING, &[&r0, &r1], &[]);
        assert_eq!(ExtChain::walk(&p), Err(Error::Duplicate("routing header")));
    }

    #[test]
    fn identifies_other_routing_types_and_fragments() {
        let srh = [
            ip_proto::FRAGMENT,
            2,
            4,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        let frag = [ip_proto::UDP, 0, 0, 8, 0, 0, 0, 7];
        let p = packet(ip_proto::ROUTING, &[&srh, &frag], &[0; 8]);
        let c = ExtChain::walk(&p).unwrap();
        assert_eq!(
            c.headers()[0].kind,
            ExtKind::Routing {
                routing_type: 4,
                segments_left: 1
            }
        );
        assert_eq!(
            c.headers()[1].kind,
            ExtKind::Fragment {
                offset: 1,
                more: false,
                ident: 7
            }
        );
        assert!(c.is_non_first_fragment());
        assert_eq!(c.rh2(), None);
        assert_eq!(c.upper_proto(), ip_proto::UDP);
    }
}
