//! Mobility Header records: names from the RFC text, message fields and
//! options as found on the wire (padding included).

use std::net::Ipv6Addr;

use crate::wire::mh::{lifetime_to_duration, opt_type};
use crate::wire::tlv::RawOption;
use crate::wire::{BaStatus, BeStatus, MhMessage, MhRepr, MobilityHeader, MobilityOption};

use super::record::{
    BaFlagsRecord, BuFlagsRecord, Hex, MhFields, MhOptionRecord, MhOptionValue, MhRecord,
};

/// Short name of an MH type (RFC 6275 6.1.2 - 6.1.9).
pub fn mh_name(t: u8) -> &'static str {
    match t {
        0 => "BRR",
        1 => "HoTI",
        2 => "CoTI",
        3 => "HoT",
        4 => "CoT",
        5 => "BU",
        6 => "BA",
        7 => "BE",
        _ => "unknown",
    }
}

/// RFC 6275 6.1.8 (and RFC 4285 8 for 144-146) name of a BA status.
pub fn ba_status_name(s: BaStatus) -> &'static str {
    use BaStatus::*;
    match s {
        Accepted => "Binding Update accepted",
        AcceptedPrefixDiscoveryNecessary => "Accepted but prefix discovery necessary",
        ReasonUnspecified => "Reason unspecified",
        AdministrativelyProhibited => "Administratively prohibited",
        InsufficientResources => "Insufficient resources",
        HomeRegistrationNotSupported => "Home registration not supported",
        NotHomeSubnet => "Not home subnet",
        NotHomeAgentForThisMobileNode => "Not home agent for this mobile node",
        DuplicateAddressDetectionFailed => "Duplicate Address Detection failed",
        SequenceNumberOutOfWindow => "Sequence number out of window",
        ExpiredHomeNonceIndex => "Expired home nonce index",
        ExpiredCareOfNonceIndex => "Expired care-of nonce index",
        ExpiredNonces => "Expired nonces",
        RegistrationTypeChangeDisallowed => "Registration type change disallowed",
        InvalidCareOfAddress => "Invalid Care-of Address",
        MesgIdMismatch => "MIPV6-ID-MISMATCH",
        MesgIdRequired => "MIPV6-MESG-ID-REQD",
        AuthFail => "MIPV6-AUTH-FAIL",
        Unknown(_) => "unknown",
    }
}

/// RFC 6275 6.1.9 name of a BE status.
pub fn be_status_name(s: BeStatus) -> &'static str {
    match s {
        BeStatus::UnknownBindingForHao => "Unknown binding for Home Address destination option",
        BeStatus::UnrecognizedMhType => "Unrecognized MH Type value",
        BeStatus::Unknown(_) => "unknown",
    }
}

/// Name of a mobility option type.
pub fn option_name(t: u8) -> &'static str {
    match t {
        opt_type::PAD1 => "pad1",
        opt_type::PADN => "padn",
        opt_type::BINDING_REFRESH_ADVICE => "binding_refresh_advice",
        opt_type::ALTERNATE_COA => "alternate_coa",
        opt_type::NONCE_INDICES => "nonce_indices",
        opt_type::BINDING_AUTH_DATA => "binding_authorization_data",
        opt_type::MESSAGE_AUTH => "mobility_message_authentication",
        opt_type::MESG_ID => "mesg_id",
        _ => "unknown",
    }
}

fn seconds(units: u16) -> u32 {
    lifetime_to_duration(units).as_secs() as u32
}

/// The fixed fields of a parsed message.
pub fn fields(m: &MhMessage) -> MhFields {
    match *m {
        MhMessage::BindingRefreshRequest => MhFields::BindingRefreshRequest {},
        MhMessage::HomeTestInit(r) => MhFields::HomeTestInit {
            home_init_cookie: Hex::from(&r.home_init_cookie[..]),
        },
        MhMessage::CareOfTestInit(r) => MhFields::CareOfTestInit {
            care_of_init_cookie: Hex::from(&r.care_of_init_cookie[..]),
        },
        MhMessage::HomeTest(r) => MhFields::HomeTest {
            home_nonce_index: r.home_nonce_index,
            home_init_cookie: Hex::from(&r.home_init_cookie[..]),
            home_keygen_token: Hex::from(&r.home_keygen_token[..]),
        },
        MhMessage::CareOfTest(r) => MhFields::CareOfTest {
            care_of_nonce_index: r.care_of_nonce_index,
            care_of_init_cookie: Hex::from(&r.care_of_init_cookie[..]),
            care_of_keygen_token: Hex::from(&r.care_of_keygen_token[..]),
        },
        MhMessage::BindingUpdate(r) => MhFields::BindingUpdate {
            sequence: r.sequence,
            flags: BuFlagsRecord {
                a: r.flags.ack(),
                h: r.flags.home_registration(),
                l: r.flags.link_local_compat(),
                k: r.flags.key_mgmt_mobility(),
            },
            lifetime_units: r.lifetime,
            lifetime_seconds: seconds(r.lifetime),
        },
        MhMessage::BindingAck(r) => MhFields::BindingAck {
            status: r.status.to_u8(),
            status_name: ba_status_name(r.status),
            accepted: r.status.is_accepted(),
            flags: BaFlagsRecord {
                k: r.flags.key_mgmt_mobility(),
            },
            sequence: r.sequence,
            lifetime_units: r.lifetime,
            lifetime_seconds: seconds(r.lifetime),
        },
        MhMessage::BindingError(r) => MhFields::BindingError {
            status: r.status.to_u8(),
            status_name: be_status_name(r.status),
            home_address: r.home_address,
        },
    }
}

fn option_value(raw: &RawOption<'_>, typed: Option<&MobilityOption>) -> MhOptionValue {
    match typed {
        Some(MobilityOption::BindingRefreshAdvice { refresh_interval }) => {
            MhOptionValue::BindingRefreshAdvice {
                refresh_interval_units: *refresh_interval,
                refresh_interval_seconds: seconds(*refresh_interval),
            }
        }
        Some(MobilityOption::AlternateCoa(a)) => MhOptionValue::AlternateCoa { alternate_coa: *a },
        Some(MobilityOption::NonceIndices {
            home_nonce_index,
            care_of_nonce_index,
        }) => MhOptionValue::NonceIndices {
            home_nonce_index: *home_nonce_index,
            care_of_nonce_index: *care_of_nonce_index,
        },
        Some(MobilityOption::BindingAuthData { authenticator }) => MhOptionValue::BindingAuthData {
            authenticator: Hex::from(&authenticator[..]),
        },
        Some(MobilityOption::MessageAuth(a)) => MhOptionValue::MessageAuth {
            subtype: a.subtype,
            spi: a.spi,
            auth_data: Hex::from(&a.auth_data[..]),
        },
        Some(MobilityOption::MesgId { timestamp }) => MhOptionValue::MesgId {
            timestamp: *timestamp,
        },
        _ if raw.opt_type == opt_type::PADN => MhOptionValue::PadN {
            len: raw.data.len(),
        },
        _ if raw.opt_type == opt_type::PAD1 => MhOptionValue::Raw { data: None },
        _ => MhOptionValue::Raw {
            data: Some(Hex::from(raw.data)),
        },
    }
}

/// The record of a Mobility Header whose bytes are complete. `repr` is the
/// parsed message if it parsed (its options correspond one to one, in
/// order, to the non-padding options on the wire).
pub fn record(
    mh: &MobilityHeader<&[u8]>,
    repr: Option<&MhRepr>,
    pseudo_src: Ipv6Addr,
    pseudo_dst: Ipv6Addr,
) -> MhRecord {
    let mut typed = repr.map(|r| r.options.iter());
    let options = mh
        .options()
        .map_while(|o| o.ok())
        .map(|o| {
            let t = if o.is_padding() {
                None
            } else {
                typed.as_mut().and_then(|i| i.next())
            };
            MhOptionRecord {
                offset: o.offset,
                opt_type: o.opt_type,
                name: option_name(o.opt_type),
                value: option_value(&o, t),
            }
        })
        .collect();
    MhRecord {
        mh_type: mh.mh_type(),
        name: mh_name(mh.mh_type()),
        payload_proto: mh.payload_proto(),
        header_len: mh.header_len(),
        checksum: mh.checksum(),
        checksum_ok: mh.verify_checksum(&pseudo_src, &pseudo_dst),
        pseudo_src,
        pseudo_dst,
        fields: repr.map(|r| fields(&r.message)),
        options,
    }
}

/// The record of a Mobility Header cut short by the capture: only what the
/// first octets say; the checksum cannot be verified.
pub fn partial_record(b: &[u8], pseudo_src: Ipv6Addr, pseudo_dst: Ipv6Addr) -> Option<MhRecord> {
    let [payload_proto, header_len, mh_type, _, ..] = *b else {
        return None;
    };
    let checksum = match b.get(4..6) {
        Some(c) => u16::from_be_bytes([c[0], c[1]]),
        None => 0,
    };
    Some(MhRecord {
        mh_type,
        name: mh_name(mh_type),
        payload_proto,
        header_len,
        checksum,
        checksum_ok: false,
        pseudo_src,
        pseudo_dst,
        fields: None,
        options: Vec::new(),
    })
}
