//! Why a machine dropped or rejected a message, and per-reason counters.
//!
//! Every machine counts each drop or rejection under one [`DropReason`] in
//! its [`DropCounts`] and reports it as an [`Action::Dropped`](super::Action)
//! so that the daemon can log it; a rejection that is answered (a Binding
//! Acknowledgement with an error status) is counted the same way.

use std::fmt;

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $name:ident => $text:literal, )*) => {
        /// Why a packet or event was dropped or rejected.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$name, )* ];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// A short stable name for logs and metrics.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $( DropReason::$name => $text, )* }
            }
        }
    };
}

drop_reasons! {
    /// The bytes are not a well-formed IPv6 packet with a Mobility Header.
    Malformed => "malformed",
    /// The Mobility Header checksum does not verify (RFC 6275 9.2).
    BadChecksum => "bad_checksum",
    /// Unknown MH type (RFC 6275 9.2: answered with Binding Error status 2).
    UnknownMhType => "unknown_mh_type",
    /// A message this role does not process (e.g. a HoT at a correspondent).
    UnexpectedMessage => "unexpected_message",
    /// A Home Address option where none is allowed (RFC 6275 9.4.1, 9.4.2).
    UnexpectedHao => "unexpected_hao",
    /// A Type 2 Routing Header where none is expected.
    UnexpectedRh2 => "unexpected_rh2",
    /// The home address is not a unicast routable address (RFC 6275 9.5.1).
    BadHomeAddress => "bad_home_address",
    /// A Binding Update without a Nonce Indices option (RFC 6275 9.5.1).
    MissingNonceIndices => "missing_nonce_indices",
    /// A care-of address that is not unicast routable (BA status 174).
    InvalidCareOfAddress => "invalid_care_of_address",
    /// A Binding Update or Acknowledgement without Binding Authorization Data.
    MissingBindingAuthData => "missing_binding_auth_data",
    /// Binding Authorization Data followed by padding (RFC 6275 9.5.1).
    AuthDataNotLast => "auth_data_not_last",
    /// The authenticator does not verify: silently discarded (RFC 6275 9.5.1).
    BadAuthenticator => "bad_authenticator",
    /// Expired or unknown home nonce index (BA status 136).
    ExpiredHomeNonce => "expired_home_nonce",
    /// Expired or unknown care-of nonce index (BA status 137).
    ExpiredCareOfNonce => "expired_care_of_nonce",
    /// Both nonce indices expired or unknown (BA status 138).
    ExpiredNonces => "expired_nonces",
    /// Sequence number not newer than the last accepted one (BA status 135).
    SequenceOutOfWindow => "sequence_out_of_window",
    /// The binding cache or registration table is full (BA status 130).
    TableFull => "table_full",
    /// H flag at a node that is not a home agent (BA status 131).
    HomeRegistrationNotSupported => "home_registration_not_supported",
    /// A registration BU (H flag) expected but the flag is clear, or the reverse.
    WrongRegistrationType => "wrong_registration_type",
    /// A Binding Error was suppressed by the rate limit (RFC 6275 9.3.3).
    RateLimited => "rate_limited",
    /// A packet with a Home Address option and no binding (Binding Error 1).
    NoBinding => "no_binding",
    /// A message from a correspondent with no binding update list entry.
    UnknownCorrespondent => "unknown_correspondent",
    /// HoT/CoT whose cookie does not match an outstanding HoTI/CoTI.
    CookieMismatch => "cookie_mismatch",
    /// HoT/CoT while no home/care-of test is outstanding.
    NoPendingTest => "no_pending_test",
    /// A HoT that did not arrive through the home agent tunnel (RFC 6275 11.6.2).
    NotViaTunnel => "not_via_tunnel",
    /// The packet's addresses do not match the state it would apply to.
    AddressMismatch => "address_mismatch",
    /// A Binding Acknowledgement while no Binding Update is outstanding.
    NoOutstandingBu => "no_outstanding_bu",
    /// A Binding Acknowledgement whose sequence number matches no outstanding BU.
    SequenceMismatch => "sequence_mismatch",
    /// The mobile node's Binding Update was rejected with this status.
    Rejected => "rejected",
    /// Home BU without the RFC 4285 Mesg-ID option (BA status 145).
    MissingMesgId => "missing_mesg_id",
    /// Home BU without the MN-HA authentication option: silently discarded.
    MissingMnHaAuth => "missing_mn_ha_auth",
    /// Unknown mobility SPI, or an SPI bound to another home address (BA 146).
    UnknownSpi => "unknown_spi",
    /// The MN-HA authentication data does not verify (BA status 146).
    MnHaAuthFailed => "mn_ha_auth_failed",
    /// The Mesg-ID timestamp is out of the window or not newer (BA status 144).
    TimestampRejected => "timestamp_rejected",
    /// The replay table is full of live timestamps.
    ReplayTableFull => "replay_table_full",
    /// The home address is not in a served home prefix (BA status 132).
    NotHomeSubnet => "not_home_subnet",
    /// The Binding Acknowledgement's Mesg-ID does not echo the one sent.
    MesgIdMismatch => "mesg_id_mismatch",
    /// Retransmissions gave up.
    Timeout => "timeout",
    /// The operation needs state that is missing (e.g. no valid home keygen token).
    NotReady => "not_ready",
    /// A packet could not be encoded (internal error, never expected).
    EmitFailed => "emit_failed",
    /// The randomness source failed.
    RandomFailure => "random_failure",
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One counter per [`DropReason`].
#[derive(Clone, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl Default for DropCounts {
    fn default() -> Self {
        Self([0; DropReason::COUNT])
    }
}

impl DropCounts {
    /// Adds one to `reason`.
    pub fn count(&mut self, reason: DropReason) {
        if let Some(c) = self.0.get_mut(reason as usize) {
            *c = c.saturating_add(1);
        }
    }

    /// The count of `reason`.
    #[must_use]
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason as usize).copied().unwrap_or(0)
    }

    /// Sum over all reasons.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// The non-zero counters, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

impl fmt::Debug for DropCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(r, n)| (r.as_str(), n)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_reason() {
        let mut c = DropCounts::default();
        c.count(DropReason::BadAuthenticator);
        c.count(DropReason::BadAuthenticator);
        c.count(DropReason::Malformed);
        assert_eq!(c.get(DropReason::BadAuthenticator), 2);
        assert_eq!(c.get(DropReason::Timeout), 0);
        assert_eq!(c.total(), 3);
        assert_eq!(c.iter().count(), 2);
        assert_eq!(
            format!("{c:?}"),
            "{\"malformed\": 1, \"bad_authenticator\": 2}"
        );
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
    }
}
