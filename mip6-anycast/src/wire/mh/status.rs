//! Status codes of the Binding Acknowledgement (RFC 6275 6.1.8: 0, 1,
//! 128-139, 174; RFC 4285 8: 144-146)
//! and the Binding Error (RFC 6275 6.1.9). Unknown values are preserved.

/// Binding Acknowledgement status (RFC 6275 6.1.8; 144-146 from RFC 4285).
/// Values below 128 mean the Binding Update was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaStatus {
    /// 0: Binding Update accepted.
    Accepted,
    /// 1: Accepted but prefix discovery necessary.
    AcceptedPrefixDiscoveryNecessary,
    /// 128: Reason unspecified.
    ReasonUnspecified,
    /// 129: Administratively prohibited.
    AdministrativelyProhibited,
    /// 130: Insufficient resources.
    InsufficientResources,
    /// 131: Home registration not supported.
    HomeRegistrationNotSupported,
    /// 132: Not home subnet.
    NotHomeSubnet,
    /// 133: Not home agent for this mobile node.
    NotHomeAgentForThisMobileNode,
    /// 134: Duplicate Address Detection failed.
    DuplicateAddressDetectionFailed,
    /// 135: Sequence number out of window.
    SequenceNumberOutOfWindow,
    /// 136: Expired home nonce index.
    ExpiredHomeNonceIndex,
    /// 137: Expired care-of nonce index.
    ExpiredCareOfNonceIndex,
    /// 138: Expired nonces.
    ExpiredNonces,
    /// 139: Registration type change disallowed.
    RegistrationTypeChangeDisallowed,
    /// 174: Invalid Care-of Address.
    InvalidCareOfAddress,
    /// 144: MIPV6-ID-MISMATCH (RFC 4285: Mesg-ID timestamp out of window).
    MesgIdMismatch,
    /// 145: MIPV6-MESG-ID-REQD (RFC 4285: replay protection option required).
    MesgIdRequired,
    /// 146: MIPV6-AUTH-FAIL (RFC 4285: authentication failed).
    AuthFail,
    /// Any other value, preserved as is.
    Unknown(u8),
}

impl BaStatus {
    /// The status of a numeric code.
    pub const fn from_u8(v: u8) -> Self {
        use BaStatus::*;
        match v {
            0 => Accepted,
            1 => AcceptedPrefixDiscoveryNecessary,
            128 => ReasonUnspecified,
            129 => AdministrativelyProhibited,
            130 => InsufficientResources,
            131 => HomeRegistrationNotSupported,
            132 => NotHomeSubnet,
            133 => NotHomeAgentForThisMobileNode,
            134 => DuplicateAddressDetectionFailed,
            135 => SequenceNumberOutOfWindow,
            136 => ExpiredHomeNonceIndex,
            137 => ExpiredCareOfNonceIndex,
            138 => ExpiredNonces,
            139 => RegistrationTypeChangeDisallowed,
            174 => InvalidCareOfAddress,
            144 => MesgIdMismatch,
            145 => MesgIdRequired,
            146 => AuthFail,
            v => Unknown(v),
        }
    }

    /// The numeric code.
    pub const fn to_u8(self) -> u8 {
        use BaStatus::*;
        match self {
            Accepted => 0,
            AcceptedPrefixDiscoveryNecessary => 1,
            ReasonUnspecified => 128,
            AdministrativelyProhibited => 129,
            InsufficientResources => 130,
            HomeRegistrationNotSupported => 131,
            NotHomeSubnet => 132,
            NotHomeAgentForThisMobileNode => 133,
            DuplicateAddressDetectionFailed => 134,
            SequenceNumberOutOfWindow => 135,
            ExpiredHomeNonceIndex => 136,
            ExpiredCareOfNonceIndex => 137,
            ExpiredNonces => 138,
            RegistrationTypeChangeDisallowed => 139,
            InvalidCareOfAddress => 174,
            MesgIdMismatch => 144,
            MesgIdRequired => 145,
            AuthFail => 146,
            Unknown(v) => v,
        }
    }

    /// RFC 6275 6.1.8: values less than 128 indicate acceptance.
    pub const fn is_accepted(self) -> bool {
        self.to_u8() < 128
    }
}

impl From<u8> for BaStatus {
    fn from(v: u8) -> Self {
        Self::from_u8(v)
    }
}

impl From<BaStatus> for u8 {
    fn from(s: BaStatus) -> u8 {
        s.to_u8()
    }
}

/// Binding Error status (RFC 6275 6.1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BeStatus {
    /// 1: Unknown binding for Home Address destination option.
    UnknownBindingForHao,
    /// 2: Unrecognized MH Type value.
    UnrecognizedMhType,
    /// Any other value, preserved as is.
    Unknown(u8),
}

impl BeStatus {
    /// The status of a numeric code.
    pub const fn from_u8(v: u8) -> Self {
        match v {
            1 => BeStatus::UnknownBindingForHao,
            2 => BeStatus::UnrecognizedMhType,
            v => BeStatus::Unknown(v),
        }
    }

    /// The numeric code.
    pub const fn to_u8(self) -> u8 {
        match self {
            BeStatus::UnknownBindingForHao => 1,
            BeStatus::UnrecognizedMhType => 2,
            BeStatus::Unknown(v) => v,
        }
    }
}

impl From<u8> for BeStatus {
    fn from(v: u8) -> Self {
        Self::from_u8(v)
    }
}

impl From<BeStatus> for u8 {
    fn from(s: BeStatus) -> u8 {
        s.to_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for v in 0..=255u8 {
            assert_eq!(BaStatus::from_u8(v).to_u8(), v);
            assert_eq!(BeStatus::from_u8(v).to_u8(), v);
        }
        let named = (0..=255u8)
            .filter(|v| !matches!(BaStatus::from_u8(*v), BaStatus::Unknown(_)))
            .count();
        assert_eq!(named, 18);
        assert!(BaStatus::AcceptedPrefixDiscoveryNecessary.is_accepted());
        assert!(!BaStatus::ExpiredNonces.is_accepted());
        assert_eq!(BaStatus::from_u8(138), BaStatus::ExpiredNonces);
        assert_eq!(BeStatus::from_u8(2), BeStatus::UnrecognizedMhType);
    }
}
