//! The eight Mobility Header messages of RFC 6275 6.1.2 - 6.1.9 and
//! [`MhRepr`], a message plus its mobility options.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::option::{self, Authenticator, MessageAuth, MobilityOption, opt_type};
use super::status::{BaStatus, BeStatus};
use super::{MAX_MH_LEN, MESSAGE_DATA_OFFSET, MobilityHeader, mh_type, min_len, options_offset};
use crate::wire::error::{Error, Result};
use crate::wire::ip_proto;
use crate::wire::ipv6::addr_at;

/// A 64-bit home or care-of init cookie (RFC 6275 6.1.3, 6.1.4).
pub type Cookie = [u8; 8];
/// A 64-bit home or care-of keygen token (RFC 6275 5.2.5).
pub type KeygenToken = [u8; 8];

/// One lifetime unit of BU/BA/Binding Refresh Advice: 4 seconds (RFC 6275 6.1.7).
const LIFETIME_UNIT_SECS: u64 = 4;

/// A lifetime in 4-second units as a duration.
pub const fn lifetime_to_duration(units: u16) -> Duration {
    Duration::from_secs(units as u64 * LIFETIME_UNIT_SECS)
}

/// A duration as a lifetime in 4-second units, rounded down, saturating at 0xffff.
pub const fn duration_to_lifetime(d: Duration) -> u16 {
    let u = d.as_secs() / LIFETIME_UNIT_SECS;
    if u > u16::MAX as u64 {
        u16::MAX
    } else {
        u as u16
    }
}

macro_rules! flag_word {
    ($name:ident, $ty:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub $ty);

        impl $name {
            /// No flags.
            pub const fn empty() -> Self {
                $name(0)
            }
            /// True if every bit of `other` is set.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// The flag bits in their wire positions.
            pub const fn bits(self) -> $ty {
                self.0
            }
        }

        impl core::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, o: Self) -> Self {
                $name(self.0 | o.0)
            }
        }
    };
}

flag_word!(
    BuFlags,
    u16,
    "The A, H, L, K flags of a Binding Update (RFC 6275 6.1.7), in their wire positions. The reserved bits \
     are ignored on parse and never emitted (RFC 6275: zero when sent, ignored when received)."
);
flag_word!(
    BaFlags,
    u8,
    "The K flag of a Binding Acknowledgement (RFC 6275 6.1.8), in its wire position. The reserved bits are \
     ignored on parse and never emitted."
);

impl BuFlags {
    /// A: Acknowledge requested.
    pub const ACK: BuFlags = BuFlags(0x8000);
    /// H: Home registration.
    pub const HOME: BuFlags = BuFlags(0x4000);
    /// L: Link-local address compatibility.
    pub const LINK_LOCAL: BuFlags = BuFlags(0x2000);
    /// K: Key management mobility capability.
    pub const KEY_MGMT: BuFlags = BuFlags(0x1000);
    /// The bits RFC 6275 defines.
    pub const KNOWN: u16 = 0xf000;

    /// A flag.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    /// H flag.
    pub const fn home_registration(self) -> bool {
        self.contains(Self::HOME)
    }
    /// L flag.
    pub const fn link_local_compat(self) -> bool {
        self.contains(Self::LINK_LOCAL)
    }
    /// K flag.
    pub const fn key_mgmt_mobility(self) -> bool {
        self.contains(Self::KEY_MGMT)
    }
}

impl BaFlags {
    /// K: Key management mobility capability.
    pub const KEY_MGMT: BaFlags = BaFlags(0x80);
    /// The bits RFC 6275 defines.
    pub const KNOWN: u8 = 0x80;

    /// K flag.
    pub const fn key_mgmt_mobility(self) -> bool {
        self.contains(Self::KEY_MGMT)
    }
}

/// RFC 6275 6.1.3 Home Test Init.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HomeTestInitRepr {
    /// Home init cookie.
    pub home_init_cookie: Cookie,
}

/// RFC 6275 6.1.4 Care-of Test Init.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CareOfTestInitRepr {
    /// Care-of init cookie.
    pub care_of_init_cookie: Cookie,
}

/// RFC 6275 6.1.5 Home Test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HomeTestRepr {
    /// Home nonce index.
    pub home_nonce_index: u16,
    /// Home init cookie (echoed from the HoTI).
    pub home_init_cookie: Cookie,
    /// Home keygen token.
    pub home_keygen_token: KeygenToken,
}

/// RFC 6275 6.1.6 Care-of Test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CareOfTestRepr {
    /// Care-of nonce index.
    pub care_of_nonce_index: u16,
    /// Care-of init cookie (echoed from the CoTI).
    pub care_of_init_cookie: Cookie,
    /// Care-of keygen token.
    pub care_of_keygen_token: KeygenToken,
}

/// RFC 6275 6.1.7 Binding Update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingUpdateRepr {
    /// Sequence number.
    pub sequence: u16,
    /// A/H/L/K flags.
    pub flags: BuFlags,
    /// Lifetime in 4-second units; 0 deletes the binding.
    pub lifetime: u16,
}

impl BindingUpdateRepr {
    /// The lifetime as a duration.
    pub const fn lifetime_duration(&self) -> Duration {
        lifetime_to_duration(self.lifetime)
    }
}

/// RFC 6275 6.1.8 Binding Acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingAckRepr {
    /// Status.
    pub status: BaStatus,
    /// K flag.
    pub flags: BaFlags,
    /// Sequence number (copied from the BU, or the last accepted one).
    pub sequence: u16,
    /// Granted lifetime in 4-second units.
    pub lifetime: u16,
}

impl BindingAckRepr {
    /// The lifetime as a duration.
    pub const fn lifetime_duration(&self) -> Duration {
        lifetime_to_duration(self.lifetime)
    }
}

/// RFC 6275 6.1.9 Binding Error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingErrorRepr {
    /// Status.
    pub status: BeStatus,
    /// The home address that was in the offending packet's HAO (or unspecified).
    pub home_address: Ipv6Addr,
}

/// One Mobility Header message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MhMessage {
    /// Type 0, RFC 6275 6.1.2.
    BindingRefreshRequest,
    /// Type 1.
    HomeTestInit(HomeTestInitRepr),
    /// Type 2.
    CareOfTestInit(CareOfTestInitRepr),
    /// Type 3.
    HomeTest(HomeTestRepr),
    /// Type 4.
    CareOfTest(CareOfTestRepr),
    /// Type 5.
    BindingUpdate(BindingUpdateRepr),
    /// Type 6.
    BindingAck(BindingAckRepr),
    /// Type 7.
    BindingError(BindingErrorRepr),
}

fn cookie(d: &[u8], at: usize) -> [u8; 8] {
    let mut c = [0u8; 8];
    c.copy_from_slice(&d[at..at + 8]);
    c
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

impl MhMessage {
    /// The MH type value.
    pub const fn mh_type(&self) -> u8 {
        match self {
            MhMessage::BindingRefreshRequest => mh_type::BRR,
            MhMessage::HomeTestInit(_) => mh_type::HOTI,
            MhMessage::CareOfTestInit(_) => mh_type::COTI,
            MhMessage::HomeTest(_) => mh_type::HOT,
            MhMessage::CareOfTest(_) => mh_type::COT,
            MhMessage::BindingUpdate(_) => mh_type::BU,
            MhMessage::BindingAck(_) => mh_type::BA,
            MhMessage::BindingError(_) => mh_type::BE,
        }
    }

    /// Parses the fixed message data of type `t` from the whole MH `mh`
    /// (whose length the caller checked against [`min_len`]).
    fn parse(t: u8, mh: &[u8]) -> Result<MhMessage> {
        let d = &mh[MESSAGE_DATA_OFFSET..];
        Ok(match t {
            mh_type::BRR => MhMessage::BindingRefreshRequest,
            mh_type::HOTI => MhMessage::HomeTestInit(HomeTestInitRepr {
                home_init_cookie: cookie(d, 2),
            }),
            mh_type::COTI => MhMessage::CareOfTestInit(CareOfTestInitRepr {
                care_of_init_cookie: cookie(d, 2),
            }),
            mh_type::HOT => MhMessage::HomeTest(HomeTestRepr {
                home_nonce_index: be16(d, 0),
                home_init_cookie: cookie(d, 2),
                home_keygen_token: cookie(d, 10),
            }),
            mh_type::COT => MhMessage::CareOfTest(CareOfTestRepr {
                care_of_nonce_index: be16(d, 0),
                care_of_init_cookie: cookie(d, 2),
                care_of_keygen_token: cookie(d, 10),
            }),
            mh_type::BU => MhMessage::BindingUpdate(BindingUpdateRepr {
                sequence: be16(d, 0),
                flags: BuFlags(be16(d, 2) & BuFlags::KNOWN),
                lifetime: be16(d, 4),
            }),
            mh_type::BA => MhMessage::BindingAck(BindingAckRepr {
                status: BaStatus::from_u8(d[0]),
                flags: BaFlags(d[1] & BaFlags::KNOWN),
                sequence: be16(d, 2),
                lifetime: be16(d, 4),
            }),
            mh_type::BE => MhMessage::BindingError(BindingErrorRepr {
                status: BeStatus::from_u8(d[0]),
                home_address: addr_at(d, 2),
            }),
            t => return Err(Error::UnknownMhType(t)),
        })
    }

    /// Writes the fixed message data into `d` (the MH from offset 6 up to
    /// the options; reserved fields zero).
    fn emit(&self, d: &mut [u8]) {
        match self {
            MhMessage::BindingRefreshRequest => d[..2].fill(0),
            MhMessage::HomeTestInit(m) => {
                d[..2].fill(0);
                d[2..10].copy_from_slice(&m.home_init_cookie);
            }
            MhMessage::CareOfTestInit(m) => {
                d[..2].fill(0);
                d[2..10].copy_from_slice(&m.care_of_init_cookie);
            }
            MhMessage::HomeTest(m) => {
                d[..2].copy_from_slice(&m.home_nonce_index.to_be_bytes());
                d[2..10].copy_from_slice(&m.home_init_cookie);
                d[10..18].copy_from_slice(&m.home_keygen_token);
            }
            MhMessage::CareOfTest(m) => {
                d[..2].copy_from_slice(&m.care_of_nonce_index.to_be_bytes());
                d[2..10].copy_from_slice(&m.care_of_init_cookie);
                d[10..18].copy_from_slice(&m.care_of_keygen_token);
            }
            MhMessage::BindingUpdate(m) => {
                d[..2].copy_from_slice(&m.sequence.to_be_bytes());
                d[2..4].copy_from_slice(&(m.flags.0 & BuFlags::KNOWN).to_be_bytes());
                d[4..6].copy_from_slice(&m.lifetime.to_be_bytes());
            }
            MhMessage::BindingAck(m) => {
                d[0] = m.status.to_u8();
                d[1] = m.flags.0 & BaFlags::KNOWN;
                d[2..4].copy_from_slice(&m.sequence.to_be_bytes());
                d[4..6].copy_from_slice(&m.lifetime.to_be_bytes());
            }
            MhMessage::BindingError(m) => {
                d[0] = m.status.to_u8();
                d[1] = 0;
                d[2..18].copy_from_slice(&m.home_address.octets());
            }
        }
    }
}

/// A Mobility Header message with its mobility options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MhRepr {
    /// The message.
    pub message: MhMessage,
    /// Mobility options in order, without padding. On emission, options
    /// that must be last (Binding Authorization Data, Mobility Message
    /// Authentication) are moved to the end.
    pub options: Vec<MobilityOption>,
}

impl From<MhMessage> for MhRepr {
    fn from(message: MhMessage) -> Self {
        MhRepr {
            message,
            options: Vec::new(),
        }
    }
}

impl MhRepr {
    /// A message without options.
    pub fn new(message: MhMessage) -> Self {
        message.into()
    }

    /// Adds an option (builder style).
    pub fn with_option(mut self, o: MobilityOption) -> Self {
        self.options.push(o);
        self
    }

    /// The MH type.
    pub const fn mh_type(&self) -> u8 {
        self.message.mh_type()
    }

    /// Parses and validates a Mobility Header (the checksum is checked
    /// separately, see [`MobilityHeader::check_checksum`] or
    /// [`crate::wire::MhPacketRepr::parse`]): payload proto 59, known type
    /// (else [`Error::UnknownMhType`], answered with BE status 2), length
    /// for the type (RFC 6275 9.2), options well-formed and aligned.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(mh: &MobilityHeader<&T>) -> Result<MhRepr> {
        mh.check_len()?;
        if mh.payload_proto() != ip_proto::NO_NEXT_HEADER {
            return Err(Error::BadMhPayloadProto(mh.payload_proto()));
        }
        let t = mh.mh_type();
        let (Some(min), Some(opts_at)) = (min_len(t), options_offset(t)) else {
            return Err(Error::UnknownMhType(t));
        };
        let bytes = mh.bytes();
        if bytes.len() < min {
            return Err(Error::BadMhLength {
                mh_type: t,
                len: bytes.len(),
                min,
            });
        }
        let message = MhMessage::parse(t, bytes)?;
        let options = option::parse_options(bytes, opts_at)?;
        Ok(MhRepr { message, options })
    }

    /// Emitted length: fixed data, aligned options, padded to 8 octets.
    pub fn buffer_len(&self) -> usize {
        let start = options_offset(self.mh_type()).unwrap_or(MESSAGE_DATA_OFFSET);
        option::emitted_len(start, &self.options)
    }

    /// Writes the Mobility Header (payload proto 59, reserved 0) and its
    /// checksum computed with the pseudo-header addresses `src` and `dst`
    /// (the home address if a HAO is present; the final destination, i.e.
    /// the RH2 home address, if a Type 2 Routing Header is present).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        mh: &mut MobilityHeader<&mut T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<()> {
        let len = self.buffer_len();
        if len > MAX_MH_LEN {
            return Err(Error::TooLong {
                what: "mobility header",
                len,
                max: MAX_MH_LEN,
            });
        }
        let have = mh.buffer.as_ref().len();
        let buf = mh
            .buffer
            .as_mut()
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall { need: len, have })?;
        let start = options_offset(self.mh_type()).unwrap_or(MESSAGE_DATA_OFFSET);
        buf[0] = ip_proto::NO_NEXT_HEADER;
        buf[1] = (len / 8 - 1) as u8;
        buf[2] = self.mh_type();
        buf[3] = 0;
        buf[4..6].fill(0);
        self.message.emit(&mut buf[MESSAGE_DATA_OFFSET..start]);
        option::emit_options(buf, start, &self.options)?;
        MobilityHeader::new_unchecked(buf).fill_checksum(src, dst);
        Ok(())
    }

    /// Emits into a new vector (see [`Self::emit`] for `src`/`dst`).
    pub fn to_bytes(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut MobilityHeader::new_unchecked(&mut v[..]), src, dst)?;
        Ok(v)
    }

    fn first<R>(&self, f: impl Fn(&MobilityOption) -> Option<R>) -> Option<R> {
        self.options.iter().find_map(f)
    }

    /// Nonce Indices option: `(home_nonce_index, care_of_nonce_index)`.
    pub fn nonce_indices(&self) -> Option<(u16, u16)> {
        self.first(|o| match o {
            MobilityOption::NonceIndices {
                home_nonce_index,
                care_of_nonce_index,
            } => Some((*home_nonce_index, *care_of_nonce_index)),
            _ => None,
        })
    }

    /// Binding Authorization Data authenticator.
    pub fn authenticator(&self) -> Option<Authenticator> {
        self.first(|o| match o {
            MobilityOption::BindingAuthData { authenticator } => Some(*authenticator),
            _ => None,
        })
    }

    /// Alternate Care-of Address option.
    pub fn alternate_coa(&self) -> Option<Ipv6Addr> {
        self.first(|o| match o {
            MobilityOption::AlternateCoa(a) => Some(*a),
            _ => None,
        })
    }

    /// Binding Refresh Advice refresh interval (4-second units).
    pub fn refresh_advice(&self) -> Option<u16> {
        self.first(|o| match o {
            MobilityOption::BindingRefreshAdvice { refresh_interval } => Some(*refresh_interval),
            _ => None,
        })
    }

    /// The RFC 4285 authentication option of a subtype.
    pub fn message_auth(&self, subtype: u8) -> Option<&MessageAuth> {
        self.options.iter().find_map(|o| match o {
            MobilityOption::MessageAuth(a) if a.subtype == subtype => Some(a),
            _ => None,
        })
    }

    /// The RFC 4285 Mesg-ID timestamp.
    pub fn mesg_id(&self) -> Option<u64> {
        self.first(|o| match o {
            MobilityOption::MesgId { timestamp } => Some(*timestamp),
            _ => None,
        })
    }

    /// True if an option of this type is present.
    pub fn has_option(&self, t: u8) -> bool {
        self.options.iter().any(|o| o.opt_type() == t)
    }

    /// True if the message carries a Binding Authorization Data option.
    pub fn has_binding_auth_data(&self) -> bool {
        self.has_option(opt_type::BINDING_AUTH_DATA)
    }
}
