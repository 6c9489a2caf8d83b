//! In-place datapath rewrites (RFC 6275 9.3.1, 9.3.2, 11.3.1, 11.3.3; RFC
//! 2473) on a buffer with headroom in front of the packet.
//!
//! Design for speed: an inserted header goes in front of the payload, so
//! instead of moving the payload the fixed IPv6 header (and any headers that
//! precede the insertion point, e.g. Hop-by-Hop) is moved *into the
//! headroom*; a stripped header is removed by moving that prefix forward.
//! Only a few dozen octets are copied regardless of packet size. Each call
//! takes `(buf, start, len)` and returns the new bounds; [`PacketBuf`]
//! wraps the same calls for a buffer that remembers its bounds. Bytes of
//! `buf` past `start + 40 + payload length` (e.g. link-layer padding) are
//! dropped from the returned bounds. On error the buffer is unchanged.
//!
//! **Transport checksums are never touched, and need not be.** RFC 6275
//! makes every upper-layer checksum use the home address in both
//! directions: a correspondent computes it towards the home address even
//! when sending with a Type 2 Routing Header (the final destination of RFC
//! 8200 8.1), and a mobile node computes it from its home address even when
//! sending from its care-of address with a Home Address option (the
//! receiver swaps the HAO back before upper layers see the packet, RFC 6275
//! 9.3.1). So "dst HoA <-> dst CoA + RH2(HoA)" and "src HoA <-> src CoA +
//! HAO(HoA)" are checksum-neutral.

use core::ops::Range;
use std::net::Ipv6Addr;

use super::dest_opts::{HAO_DEST_OPTS_LEN, emit_hao_header, is_valid_home_address};
use super::error::{Error, Result};
use super::ext_chain::{ExtChain, ExtHeader, ExtKind, MAX_EXT_HEADERS};
use super::ip_proto;
use super::ip6ip6::{self, TUNNEL_OVERHEAD, TunnelParams};
use super::ipv6::{IPV6_HEADER_LEN, Ipv6Packet};
use super::rh2::{RH2_LEN, Rh2Repr};
use super::tlv;

/// Headroom [`PacketBuf::from_packet`] reserves by default: enough for an
/// RH2, a HAO header and a tunnel header at once.
pub const DEFAULT_HEADROOM: usize = 128;

/// Where a packet is inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Offset of the first octet of the IPv6 header.
    pub start: usize,
    /// Packet length.
    pub len: usize,
}

impl Bounds {
    /// `start..start + len`.
    pub fn range(&self) -> Range<usize> {
        self.start..self.start + self.len
    }
}

/// The result of stripping (or swapping) a RH2 or HAO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stripped {
    /// The packet's new bounds.
    pub bounds: Bounds,
    /// The home address, now in the IPv6 header.
    pub home_address: Ipv6Addr,
    /// The care-of address that was in the IPv6 header.
    pub care_of_address: Ipv6Addr,
}

/// The result of [`decapsulate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decapped {
    /// Bounds of the inner packet.
    pub bounds: Bounds,
    /// Outer source (tunnel entry point).
    pub outer_src: Ipv6Addr,
    /// Outer destination (tunnel exit point).
    pub outer_dst: Ipv6Addr,
}

fn slice(buf: &[u8], start: usize, len: usize) -> Result<&[u8]> {
    start
        .checked_add(len)
        .and_then(|end| buf.get(start..end))
        .ok_or(Error::BadBounds {
            start,
            len,
            buf_len: buf.len(),
        })
}

fn walk(buf: &[u8], start: usize, len: usize) -> Result<ExtChain> {
    ExtChain::walk(slice(buf, start, len)?)
}

fn check_grow(start: usize, total: usize, by: usize) -> Result<()> {
    if start < by {
        return Err(Error::NoHeadroom {
            need: by,
            have: start,
        });
    }
    let payload = total - IPV6_HEADER_LEN + by;
    if payload > usize::from(u16::MAX) {
        return Err(Error::PayloadTooLong(payload));
    }
    Ok(())
}

fn set_payload_len(buf: &mut [u8], start: usize, new_total: usize) {
    // Callers checked new_total - 40 <= 65535.
    Ipv6Packet::new_unchecked(&mut buf[start..])
        .set_payload_len((new_total - IPV6_HEADER_LEN) as u16);
}

/// Makes room for a `by`-octet header at packet offset `pos` by moving the
/// first `pos` octets `by` octets into the headroom, and links it in: the
/// next-header octet at `nh_off` becomes `proto`. Returns the new start and
/// the displaced next-header value (which the new header must carry).
fn open_gap(
    buf: &mut [u8],
    start: usize,
    pos: usize,
    nh_off: usize,
    by: usize,
    proto: u8,
) -> (usize, u8) {
    let s = start - by;
    buf.copy_within(start..start + pos, s);
    let nh = buf[s + nh_off];
    buf[s + nh_off] = proto;
    (s, nh)
}

/// Unlinks extension header `h` and removes it by moving the octets before
/// it forward. Returns the new start.
fn close_gap(buf: &mut [u8], start: usize, h: &ExtHeader) -> usize {
    buf[start + h.nh_offset] = buf[start + h.offset];
    let s = start + h.len;
    buf.copy_within(start..start + h.offset, s);
    s
}

/// Which Mobile IPv6 header an insertion adds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Added {
    /// Type 2 Routing Header: the destination is the home address.
    Rh2,
    /// Home Address option: the source is the home address.
    Hao,
}

fn insert(buf: &mut [u8], start: usize, len: usize, coa: &Ipv6Addr, what: Added) -> Result<Bounds> {
    let chain = walk(buf, start, len)?;
    match what {
        Added::Rh2 => {
            if let Some(&ExtHeader {
                kind: ExtKind::Routing { routing_type, .. },
                ..
            }) = chain.routing()
            {
                return Err(Error::RoutingHeaderPresent(routing_type));
            }
        }
        Added::Hao => {
            if chain.hao().is_some() {
                return Err(Error::Duplicate("Home Address option"));
            }
        }
    }
    // The result must stay within what the chain walker accepts.
    if chain.headers().len() >= MAX_EXT_HEADERS {
        return Err(Error::TooManyExtHeaders {
            max: MAX_EXT_HEADERS,
        });
    }
    const ADDED: usize = RH2_LEN;
    const _: () = assert!(RH2_LEN == HAO_DEST_OPTS_LEN);
    let total = chain.total_len();
    check_grow(start, total, ADDED)?;
    let ip = Ipv6Packet::new_unchecked(&buf[start..]);
    let hoa = if what == Added::Rh2 {
        ip.dst_addr()
    } else {
        ip.src_addr()
    };
    if !is_valid_home_address(&hoa) {
        return Err(Error::BadHomeAddress(hoa));
    }
    let ((pos, nh_off), proto) = match what {
        Added::Rh2 => (chain.rh2_insert_point(), ip_proto::ROUTING),
        Added::Hao => (chain.hao_insert_point(), ip_proto::DEST_OPTS),
    };
    // RFC 6275 6.3: the HAO goes before Fragment and AH headers, which a
    // routing header placed after them makes impossible.
    let late = |h: &ExtHeader| matches!(h.kind, ExtKind::Fragment { .. } | ExtKind::Auth);
    if what == Added::Hao && chain.headers().iter().any(|h| late(h) && h.offset < pos) {
        return Err(Error::HeaderOrder(
            "routing header after a Fragment or AH header: no place for a Home Address option",
        ));
    }
    let (s, nh) = open_gap(buf, start, pos, nh_off, ADDED, proto);
    match what {
        Added::Rh2 => Rh2Repr {
            next_header: nh,
            home_address: hoa,
        }
        .emit_into(&mut buf[s + pos..])?,
        Added::Hao => emit_hao_header(&mut buf[s + pos..], nh, &hoa)?,
    }
    let mut ip = Ipv6Packet::new_unchecked(&mut buf[s..]);
    match what {
        Added::Rh2 => ip.set_dst_addr(coa),
        Added::Hao => ip.set_src_addr(coa),
    }
    ip.set_payload_len((total + ADDED - IPV6_HEADER_LEN) as u16);
    Ok(Bounds {
        start: s,
        len: total + ADDED,
    })
}

/// Inserts a Type 2 Routing Header (RFC 6275 6.4, 9.3.2): the destination
/// (the home address) moves into the RH2 and `coa` becomes the destination.
/// The RH2 goes directly after the fixed header or Hop-by-Hop header (RFC
/// 8200 4.1). Needs 24 octets of headroom; fails if a routing header is
/// present or the destination is not a valid home address.
pub fn insert_rh2(buf: &mut [u8], start: usize, len: usize, coa: &Ipv6Addr) -> Result<Bounds> {
    insert(buf, start, len, coa, Added::Rh2)
}

/// Removes the Type 2 Routing Header and makes its home address the
/// destination again (RFC 6275 9.3.2 / 11.3.3 processing at the mobile
/// side). The packet shrinks by 24 octets at the front.
pub fn strip_rh2(buf: &mut [u8], start: usize, len: usize) -> Result<Stripped> {
    let chain = walk(buf, start, len)?;
    let r = chain.rh2().ok_or(Error::NoRh2)?;
    let h = chain.headers()[r.index];
    let total = chain.total_len();
    let coa = Ipv6Packet::new_unchecked(&buf[start..]).dst_addr();
    Ipv6Packet::new_unchecked(&mut buf[start..]).set_dst_addr(&r.home_address);
    let s = close_gap(buf, start, &h);
    set_payload_len(buf, s, total - h.len);
    Ok(Stripped {
        bounds: Bounds {
            start: s,
            len: total - h.len,
        },
        home_address: r.home_address,
        care_of_address: coa,
    })
}

/// Adds a Home Address option (RFC 6275 6.3, 11.3.1): the source (the home
/// address) moves into a new 24-octet Destination Options header and `coa`
/// becomes the source. The header goes after the routing header if any,
/// else after Hop-by-Hop, else after the fixed header: always before
/// Fragment, AH and ESP. Needs 24 octets of headroom.
pub fn insert_hao(buf: &mut [u8], start: usize, len: usize, coa: &Ipv6Addr) -> Result<Bounds> {
    insert(buf, start, len, coa, Added::Hao)
}

/// Puts the Home Address option's address back as the source and removes
/// the option (RFC 6275 9.3.1): the whole Destination Options header if it
/// held only the HAO and padding, else the option is overwritten by PadN.
pub fn strip_hao(buf: &mut [u8], start: usize, len: usize) -> Result<Stripped> {
    let chain = walk(buf, start, len)?;
    let h = chain.hao().ok_or(Error::NoHao)?;
    let hdr = chain.headers()[h.index];
    let total = chain.total_len();
    let coa = Ipv6Packet::new_unchecked(&buf[start..]).src_addr();
    Ipv6Packet::new_unchecked(&mut buf[start..]).set_src_addr(&h.home_address);
    let bounds = if h.sole_option {
        let s = close_gap(buf, start, &hdr);
        set_payload_len(buf, s, total - hdr.len);
        Bounds {
            start: s,
            len: total - hdr.len,
        }
    } else {
        tlv::write_padding(
            &mut buf[start + h.option_offset..],
            2 + super::dest_opts::HAO_DATA_LEN,
        );
        Bounds { start, len: total }
    };
    Ok(Stripped {
        bounds,
        home_address: h.home_address,
        care_of_address: coa,
    })
}

/// Exchanges the source address and the Home Address option's address in
/// place (RFC 6275 9.3.1 "swap"), keeping the option. Applying it twice
/// restores the packet. Refused if the source could not be a home address
/// (RFC 6275 6.3: the option carries a unicast routable address).
pub fn swap_hao(buf: &mut [u8], start: usize, len: usize) -> Result<Stripped> {
    let chain = walk(buf, start, len)?;
    let h = chain.hao().ok_or(Error::NoHao)?;
    let coa = Ipv6Packet::new_unchecked(&buf[start..]).src_addr();
    if !is_valid_home_address(&coa) {
        return Err(Error::BadHomeAddress(coa));
    }
    Ipv6Packet::new_unchecked(&mut buf[start..]).set_src_addr(&h.home_address);
    let at = start + h.option_offset + 2;
    buf[at..at + 16].copy_from_slice(&coa.octets());
    Ok(Stripped {
        bounds: Bounds {
            start,
            len: chain.total_len(),
        },
        home_address: h.home_address,
        care_of_address: coa,
    })
}

/// Prepends an outer IPv6 header (RFC 2473) in the headroom. Needs 40
/// octets of headroom.
pub fn encapsulate(
    buf: &mut [u8],
    start: usize,
    len: usize,
    params: &TunnelParams,
) -> Result<Bounds> {
    let ip = Ipv6Packet::new_checked(slice(buf, start, len)?)?;
    let total = ip.total_len();
    let outer = params.outer_repr(total, ip.traffic_class())?;
    if start < TUNNEL_OVERHEAD {
        return Err(Error::NoHeadroom {
            need: TUNNEL_OVERHEAD,
            have: start,
        });
    }
    let s = start - TUNNEL_OVERHEAD;
    outer.emit_into(&mut buf[s..start])?;
    Ok(Bounds {
        start: s,
        len: total + TUNNEL_OVERHEAD,
    })
}

/// Validates an IPv6-in-IPv6 packet (see [`ip6ip6::decapsulate`]) and
/// returns the bounds of the inner packet; nothing is copied.
pub fn decapsulate(buf: &[u8], start: usize, len: usize) -> Result<Decapped> {
    let d = ip6ip6::decapsulate(slice(buf, start, len)?)?;
    Ok(Decapped {
        bounds: Bounds {
            start: start + d.inner_offset,
            len: d.inner.len(),
        },
        outer_src: d.outer_src,
        outer_dst: d.outer_dst,
    })
}

/// A buffer with a packet at `start..start + len` and headroom before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketBuf<B> {
    buf: B,
    bounds: Bounds,
}

impl PacketBuf<Vec<u8>> {
    /// Copies `packet` into a new buffer with `headroom` octets before it.
    pub fn from_packet(packet: &[u8], headroom: usize) -> Self {
        let mut buf = vec![0u8; headroom + packet.len()];
        buf[headroom..].copy_from_slice(packet);
        PacketBuf {
            buf,
            bounds: Bounds {
                start: headroom,
                len: packet.len(),
            },
        }
    }

    /// The packet as its own vector (headroom removed).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.truncate(self.bounds.start + self.bounds.len);
        self.buf.drain(..self.bounds.start);
        self.buf
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> PacketBuf<B> {
    /// Wraps `buf` holding a packet at `start..start + len`.
    pub fn new(buf: B, start: usize, len: usize) -> Result<Self> {
        slice(buf.as_ref(), start, len)?;
        Ok(PacketBuf {
            buf,
            bounds: Bounds { start, len },
        })
    }

    /// Current bounds.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Octets free before the packet.
    pub fn headroom(&self) -> usize {
        self.bounds.start
    }

    /// The packet.
    pub fn packet(&self) -> &[u8] {
        &self.buf.as_ref()[self.bounds.range()]
    }

    /// The packet, mutable.
    pub fn packet_mut(&mut self) -> &mut [u8] {
        let r = self.bounds.range();
        &mut self.buf.as_mut()[r]
    }

    /// The underlying buffer and the packet bounds.
    pub fn into_parts(self) -> (B, Bounds) {
        (self.buf, self.bounds)
    }

    /// See [`insert_rh2`].
    pub fn insert_rh2(&mut self, coa: &Ipv6Addr) -> Result<()> {
        self.bounds = insert_rh2(self.buf.as_mut(), self.bounds.start, self.bounds.len, coa)?;
        Ok(())
    }

    /// See [`strip_rh2`].
    pub fn strip_rh2(&mut self) -> Result<Stripped> {
        let s = strip_rh2(self.buf.as_mut(), self.bounds.start, self.bounds.len)?;
        self.bounds = s.bounds;
        Ok(s)
    }

    /// See [`insert_hao`].
    pub fn insert_hao(&mut self, coa: &Ipv6Addr) -> Result<()> {
        self.bounds = insert_hao(self.buf.as_mut(), self.bounds.start, self.bounds.len, coa)?;
        Ok(())
    }

    /// See [`strip_hao`].
    pub fn strip_hao(&mut self) -> Result<Stripped> {
        let s = strip_hao(self.buf.as_mut(), self.bounds.start, self.bounds.len)?;
        self.bounds = s.bounds;
        Ok(s)
    }

    /// See [`swap_hao`].
    pub fn swap_hao(&mut self) -> Result<Stripped> {
        let s = swap_hao(self.buf.as_mut(), self.bounds.start, self.bounds.len)?;
        self.bounds = s.bounds;
        Ok(s)
    }

    /// See [`encapsulate`].
    pub fn encapsulate(&mut self, params: &TunnelParams) -> Result<()> {
        self.bounds = encapsulate(
            self.buf.as_mut(),
            self.bounds.start,
            self.bounds.len,
            params,
        )?;
        Ok(())
    }

    /// See [`decapsulate`].
    pub fn decapsulate(&mut self) -> Result<Decapped> {
        let d = decapsulate(self.buf.as_ref(), self.bounds.start, self.bounds.len)?;
        self.bounds = d.bounds;
        Ok(d)
    }
}

/// [`insert_rh2`] on a copy.
pub fn insert_rh2_vec(packet: &[u8], coa: &Ipv6Addr) -> Result<Vec<u8>> {
    let mut p = PacketBuf::from_packet(packet, RH2_LEN);
    p.insert_rh2(coa)?;
    Ok(p.into_vec())
}

/// [`strip_rh2`] on a copy.
pub fn strip_rh2_vec(packet: &[u8]) -> Result<(Vec<u8>, Stripped)> {
    let mut p = PacketBuf::from_packet(packet, 0);
    let s = p.strip_rh2()?;
    Ok((p.into_vec(), s))
}

/// [`insert_hao`] on a copy.
pub fn insert_hao_vec(packet: &[u8], coa: &Ipv6Addr) -> Result<Vec<u8>> {
    let mut p = PacketBuf::from_packet(packet, HAO_DEST_OPTS_LEN);
    p.insert_hao(coa)?;
    Ok(p.into_vec())
}

/// [`strip_hao`] on a copy.
pub fn strip_hao_vec(packet: &[u8]) -> Result<(Vec<u8>, Stripped)> {
    let mut p = PacketBuf::from_packet(packet, 0);
    let s = p.strip_hao()?;
    Ok((p.into_vec(), s))
}

/// [`encapsulate`] on a copy (same as [`ip6ip6::encapsulate_vec`]).
pub fn encapsulate_vec(packet: &[u8], params: &TunnelParams) -> Result<Vec<u8>> {
    ip6ip6::encapsulate_vec(packet, params)
}

/// [`decapsulate`] on a copy: the inner packet.
pub fn decapsulate_vec(packet: &[u8]) -> Result<Vec<u8>> {
    Ok(ip6ip6::decapsulate(packet)?.inner.to_vec())
}
