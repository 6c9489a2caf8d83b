//! The Mobility Header (RFC 6275 6.1): next-header value 135.
//!
//! [`MobilityHeader`] is the zero-copy view (common fields, checksum,
//! options, in-place authenticator fill); [`MhRepr`] holds one message
//! ([`MhMessage`]: BRR, HoTI, CoTI, HoT, CoT, BU, BA, BE) and its mobility
//! options ([`MobilityOption`]).
//!
//! Checksum (RFC 6275 6.1.1): over the RFC 8200 8.1 pseudo-header with next
//! header 135 and the whole MH. The pseudo-header addresses are those the
//! upper layer sees: with a Home Address option the source is the home
//! address (RFC 6275 9.3.1), with a Type 2 Routing Header the destination is
//! the final destination, i.e. the home address it carries (RFC 8200 8.1).

mod auth;
mod message;
mod option;
mod status;

pub use auth::{AuthInput, binding_auth_input, message_auth_input};
pub use message::{
    BaFlags, BindingAckRepr, BindingErrorRepr, BindingUpdateRepr, BuFlags, CareOfTestInitRepr,
    CareOfTestRepr, Cookie, HomeTestInitRepr, HomeTestRepr, KeygenToken, MhMessage, MhRepr,
    duration_to_lifetime, lifetime_to_duration,
};
pub use option::{
    AUTH_SUBTYPE_MN_AAA, AUTH_SUBTYPE_MN_HA, AUTHENTICATOR_LEN, Authenticator, MessageAuth,
    MobilityOption, alignment_of, opt_type,
};
pub use status::{BaStatus, BeStatus};

use std::net::Ipv6Addr;

use super::checksum;
use super::error::{Error, Result, need};
use super::ip_proto;
use super::tlv::{OptionIter, RawOption};

/// MH type values (RFC 6275 6.1.2 - 6.1.9).
pub mod mh_type {
    /// Binding Refresh Request.
    pub const BRR: u8 = 0;
    /// Home Test Init.
    pub const HOTI: u8 = 1;
    /// Care-of Test Init.
    pub const COTI: u8 = 2;
    /// Home Test.
    pub const HOT: u8 = 3;
    /// Care-of Test.
    pub const COT: u8 = 4;
    /// Binding Update.
    pub const BU: u8 = 5;
    /// Binding Acknowledgement.
    pub const BA: u8 = 6;
    /// Binding Error.
    pub const BE: u8 = 7;
}

/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = 4;
/// Offset where message data starts.
pub const MESSAGE_DATA_OFFSET: usize = 6;
/// Largest Mobility Header: (255 + 1) * 8 octets.
pub const MAX_MH_LEN: usize = 2048;

/// Where the mobility options of a message of this type start (the end of
/// its fixed message data), or `None` for an unknown type.
pub const fn options_offset(t: u8) -> Option<usize> {
    match t {
        mh_type::BRR => Some(8),
        mh_type::HOTI | mh_type::COTI => Some(16),
        mh_type::HOT | mh_type::COT | mh_type::BE => Some(24),
        mh_type::BU | mh_type::BA => Some(12),
        _ => None,
    }
}

/// RFC 6275 9.2: the minimum Mobility Header length for a message type
/// (fixed data rounded up to 8 octets).
pub const fn min_len(t: u8) -> Option<usize> {
    match options_offset(t) {
        Some(o) => Some(o.div_ceil(8) * 8),
        None => None,
    }
}

super::view::view!(
    /// Zero-copy view of a Mobility Header.
    MobilityHeader
);

impl<T: AsRef<[u8]>> MobilityHeader<T> {
    /// Checks that the first 8 octets and `total_len()` octets are present.
    /// Semantic checks (payload proto, type, per-type length, options) are
    /// in [`MhRepr::parse`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        need("mobility header", 8, len)?;
        need("mobility header", self.total_len(), len)
    }

    /// Payload Proto (must be 59).
    pub fn payload_proto(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Header Len: 8-octet units, excluding the first 8 octets.
    pub fn header_len(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Length of the Mobility Header in octets: `(header_len + 1) * 8`.
    pub fn total_len(&self) -> usize {
        (usize::from(self.header_len()) + 1) * 8
    }

    /// MH Type.
    pub fn mh_type(&self) -> u8 {
        self.buffer.as_ref()[2]
    }

    /// Reserved octet.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[3]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    /// The Mobility Header bytes (`..total_len`).
    pub fn bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }

    /// Message data (`6..total_len`).
    pub fn message_data(&self) -> &[u8] {
        &self.buffer.as_ref()[MESSAGE_DATA_OFFSET..self.total_len()]
    }

    /// The mobility options of a known message type, padding included
    /// (empty for an unknown type or a too-short header).
    pub fn options(&self) -> OptionIter<'_> {
        let start = options_offset(self.mh_type()).unwrap_or(usize::MAX);
        OptionIter::new(self.bytes(), start, self.total_len(), "mobility option")
    }

    /// The last option of type `t`, if any.
    pub fn find_option(&self, t: u8) -> Result<Option<RawOption<'_>>> {
        let mut found = None;
        for o in self.options() {
            let o = o?;
            if o.opt_type == t {
                found = Some(o);
            }
        }
        Ok(found)
    }

    /// Verifies the checksum with the given pseudo-header addresses (see
    /// the module docs for which addresses those are).
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::verify(src, dst, ip_proto::MOBILITY, self.bytes())
    }

    /// Like [`Self::verify_checksum`] but returns [`Error::BadChecksum`].
    pub fn check_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
        if self.verify_checksum(src, dst) {
            Ok(())
        } else {
            Err(Error::BadChecksum {
                found: self.checksum(),
            })
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MobilityHeader<T> {
    /// Sets Payload Proto.
    pub fn set_payload_proto(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    /// Sets Header Len.
    pub fn set_header_len(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    /// Sets MH Type.
    pub fn set_mh_type(&mut self, v: u8) {
        self.buffer.as_mut()[2] = v;
    }

    /// Sets the reserved octet.
    pub fn set_reserved(&mut self, v: u8) {
        self.buffer.as_mut()[3] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[4..6].copy_from_slice(&v.to_be_bytes());
    }

    /// Message data, mutable.
    pub fn message_data_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[MESSAGE_DATA_OFFSET..end]
    }

    /// Computes and stores the checksum with the given pseudo-header addresses.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::compute(src, dst, ip_proto::MOBILITY, self.bytes());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests;
