//! The bytes the crypto layer authenticates, and in-place filling of the
//! authenticator after it has been computed.
//!
//! * RFC 6275 6.2.7 (Binding Authorization Data, correspondent
//!   registrations): `Authenticator = First(96, HMAC_SHA1(Kbm, care-of
//!   address | correspondent | MH Data))`, where MH Data is the whole
//!   Mobility Header except the Authenticator field, computed as if the
//!   Checksum field were zero.
//! * RFC 4285 5.1 (MN-HA, home registrations): `Authentication Data =
//!   First(96, HMAC_SHA1(MN-HA key, care-of address | home address | MH
//!   Data))`, where MH Data is the Mobility Header up to and including the
//!   Mobility SPI field of the option, with the Checksum field zero.
//!
//! Sending: emit with a placeholder (e.g. zero) authenticator, take the
//! [`AuthInput`], compute, then [`MobilityHeader::set_authenticator`] /
//! [`MobilityHeader::set_message_auth_data`] and
//! [`MobilityHeader::fill_checksum`] (or use
//! [`crate::wire::MhPacketRepr::to_bytes_with_binding_auth`]).

use core::ops::Range;

use super::option::{AUTHENTICATOR_LEN, opt_type};
use super::{CHECKSUM_OFFSET, MESSAGE_DATA_OFFSET, MobilityHeader};
use crate::wire::error::{Error, Result};

const ZERO_CHECKSUM: [u8; 2] = [0, 0];

/// The authenticated bytes of a Mobility Header, as up to four zero-copy
/// pieces whose concatenation is the "MH Data" of RFC 6275 6.2.7 / RFC 4285
/// (the checksum field replaced by zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInput<'a> {
    parts: [&'a [u8]; 4],
    field: Range<usize>,
}

impl<'a> AuthInput<'a> {
    /// The pieces in order; feed them to the MAC one after the other.
    pub fn chunks(&self) -> [&'a [u8]; 4] {
        self.parts
    }

    /// The pieces joined.
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts.concat()
    }

    /// Total authenticated length.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }

    /// Never empty for a valid header; provided for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the authenticator / authentication data field is in the MH.
    pub fn field(&self) -> Range<usize> {
        self.field.clone()
    }
}

/// RFC 6275 6.2.7 input of the Mobility Header `mh` (checked with
/// [`MobilityHeader::new_checked`] here): everything but the Binding
/// Authorization Data authenticator, checksum zero.
pub fn binding_auth_input(mh: &[u8]) -> Result<AuthInput<'_>> {
    let h = MobilityHeader::new_checked(mh)?;
    let field = h.binding_auth_field()?;
    let b = &mh[..h.total_len()];
    Ok(AuthInput {
        parts: [
            &b[..CHECKSUM_OFFSET],
            &ZERO_CHECKSUM,
            &b[MESSAGE_DATA_OFFSET..field.start],
            &b[field.end..],
        ],
        field,
    })
}

/// RFC 4285 5 input of the Mobility Header `mh` for the authentication
/// option of `subtype` (1 = MN-HA): the MH up to and including that
/// option's Mobility SPI, checksum zero.
pub fn message_auth_input(mh: &[u8], subtype: u8) -> Result<AuthInput<'_>> {
    let h = MobilityHeader::new_checked(mh)?;
    let field = h.message_auth_field(subtype)?;
    Ok(AuthInput {
        parts: [
            &mh[..CHECKSUM_OFFSET],
            &ZERO_CHECKSUM,
            &mh[MESSAGE_DATA_OFFSET..field.start],
            &[],
        ],
        field,
    })
}

impl<T: AsRef<[u8]>> MobilityHeader<T> {
    /// See [`binding_auth_input`].
    pub fn binding_auth_input(&self) -> Result<AuthInput<'_>> {
        binding_auth_input(self.bytes())
    }

    /// See [`message_auth_input`].
    pub fn message_auth_input(&self, subtype: u8) -> Result<AuthInput<'_>> {
        message_auth_input(self.bytes(), subtype)
    }

    /// Range of the 12-octet authenticator in the MH.
    fn binding_auth_field(&self) -> Result<Range<usize>> {
        let o = self
            .find_option(opt_type::BINDING_AUTH_DATA)?
            .ok_or(Error::MissingOption(opt_type::BINDING_AUTH_DATA))?;
        if o.data.len() != AUTHENTICATOR_LEN {
            return Err(Error::BadOptionLength {
                opt_type: opt_type::BINDING_AUTH_DATA,
                len: o.data.len() as u8,
                expected: "12",
            });
        }
        Ok(o.offset + 2..o.offset + 2 + AUTHENTICATOR_LEN)
    }

    /// Range of the authentication data of the RFC 4285 option of `subtype`.
    fn message_auth_field(&self, subtype: u8) -> Result<Range<usize>> {
        for o in self.options() {
            let o = o?;
            if o.opt_type != opt_type::MESSAGE_AUTH {
                continue;
            }
            if o.data.len() < 5 {
                return Err(Error::BadOptionLength {
                    opt_type: opt_type::MESSAGE_AUTH,
                    len: o.data.len() as u8,
                    expected: "at least 5",
                });
            }
            if o.data[0] == subtype {
                // type, length, subtype, 4-octet SPI, then the data.
                return Ok(o.offset + 7..o.offset + 2 + o.data.len());
            }
        }
        Err(Error::MissingOption(opt_type::MESSAGE_AUTH))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MobilityHeader<T> {
    /// Writes the Binding Authorization Data authenticator in place. The
    /// checksum is stale afterwards: call [`Self::fill_checksum`].
    pub fn set_authenticator(&mut self, authenticator: &[u8; AUTHENTICATOR_LEN]) -> Result<()> {
        let f = self.binding_auth_field()?;
        self.buffer.as_mut()[f].copy_from_slice(authenticator);
        Ok(())
    }

    /// Writes the RFC 4285 authentication data of `subtype` in place; its
    /// length must equal the field's. The checksum is stale afterwards.
    pub fn set_message_auth_data(&mut self, subtype: u8, data: &[u8]) -> Result<()> {
        let f = self.message_auth_field(subtype)?;
        if f.len() != data.len() {
            return Err(Error::LengthMismatch {
                what: "authentication data",
                field: f.len(),
                given: data.len(),
            });
        }
        self.buffer.as_mut()[f].copy_from_slice(data);
        Ok(())
    }
}
