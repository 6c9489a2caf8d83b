//! Binding Update processing at the correspondent (RFC 6275 9.5.1-9.5.4)
//! and the Binding Acknowledgement it answers with.

use std::net::Ipv6Addr;
use std::time::Instant;

use tracing::{debug, debug_span};

use super::super::common::{Route, seq_newer, transmit, transmit_binding_auth};
use super::super::stats::DropReason;
use super::{BindingEvent, Correspondent, RemoveReason, Upsert};
use crate::crypto::{
    BindingAuthError, BindingAuthInput, Kbm, NonceIndex, verify_binding_update_cached,
};
use crate::wire::mh::{duration_to_lifetime, lifetime_to_duration};
use crate::wire::{
    BaFlags, BaStatus, BindingAckRepr, BindingUpdateRepr, MhMessage, MhPacketRepr, MhRepr,
    MobilityOption, ParsedMhPacket, is_valid_home_address,
};

/// Where a Binding Acknowledgement goes and how it is authenticated.
struct BaTarget {
    /// This node's address (the BU's destination).
    cn: Ipv6Addr,
    /// The BU's IPv6 source.
    src: Ipv6Addr,
    /// Home address.
    hoa: Ipv6Addr,
    /// The BU carried a Home Address option.
    had_hao: bool,
    /// The address the Binding Authorization Data covers: the care-of
    /// address, or the home address for a de-registration (RFC 6275 6.2.7).
    auth_address: Ipv6Addr,
}

impl Correspondent {
    /// RFC 6275 9.5.1: checks a Binding Update and updates the cache.
    pub(super) fn handle_binding_update(
        &mut self,
        now: Instant,
        parsed: &ParsedMhPacket<'_>,
        bu: &BindingUpdateRepr,
    ) {
        let pkt = &parsed.repr;
        let hoa = pkt.hao.unwrap_or(pkt.src_addr);
        let coa = pkt.mh.alternate_coa().unwrap_or(pkt.src_addr);
        // RFC 6275 5.2.6 / 6.2.7: a deletion is authorized by the home keygen
        // token alone and authenticated over the home address.
        let deregister = bu.lifetime == 0 || coa == hoa;
        let target = BaTarget {
            cn: pkt.dst_addr,
            src: pkt.src_addr,
            hoa,
            had_hao: pkt.hao.is_some(),
            auth_address: if deregister { hoa } else { coa },
        };
        let span = debug_span!("binding", cn = %target.cn, %hoa, %coa, seq = bu.sequence);
        let _enter = span.enter();

        if bu.flags.home_registration() {
            // Not a home agent (RFC 6275 9.5.1): status 131, rate-limited
            // because nothing authenticates the request.
            self.drop(DropReason::HomeRegistrationNotSupported);
            if self.error_limit.allow(now) {
                self.send_ba(
                    &target,
                    BaStatus::HomeRegistrationNotSupported,
                    bu.sequence,
                    0,
                    None,
                );
            } else {
                self.drop(DropReason::RateLimited);
            }
            return;
        }
        if !is_valid_home_address(&hoa) {
            self.drop(DropReason::BadHomeAddress);
            return;
        }
        if pkt.rh2.is_some() {
            self.drop(DropReason::UnexpectedRh2);
            return;
        }
        let Some((home_index, care_of_index)) = pkt.mh.nonce_indices() else {
            self.drop(DropReason::MissingNonceIndices);
            return;
        };
        let Ok(input) = parsed.binding_auth_input() else {
            self.drop(DropReason::MissingBindingAuthData);
            return;
        };
        let field = input.field();
        if field.end != parsed.mh_bytes.len() {
            self.drop(DropReason::AuthDataNotLast);
            return;
        }
        let authenticator = parsed.mh_bytes.get(field).unwrap_or_default();
        // The care-of nonce index of a deletion is ignored (RFC 6275 5.2.6).
        let mh_data = input.to_vec();
        let auth = BindingAuthInput {
            hoa,
            coa: target.auth_address,
            correspondent: target.cn,
            home_nonce_index: NonceIndex(home_index),
            care_of_nonce_index: (!deregister).then_some(NonceIndex(care_of_index)),
            mh_data: &mh_data,
            authenticator,
        };
        let kbm = match verify_binding_update_cached(&self.nonces, &mut self.tokens, &auth, now) {
            Ok(kbm) => kbm,
            Err(e) => return self.reject_auth(&target, bu, &e),
        };

        if let Some(existing) = self.cache.get(target.cn, hoa)
            && !seq_newer(bu.sequence, existing.sequence)
        {
            // RFC 6275 9.5.1: status 135 with the last accepted sequence number.
            debug!(last = existing.sequence, "sequence number out of window");
            self.drop(DropReason::SequenceOutOfWindow);
            self.send_ba(
                &target,
                BaStatus::SequenceNumberOutOfWindow,
                existing.sequence,
                0,
                Some(&kbm),
            );
            return;
        }
        if !deregister && !is_valid_home_address(&coa) {
            self.drop(DropReason::InvalidCareOfAddress);
            self.send_ba(
                &target,
                BaStatus::InvalidCareOfAddress,
                bu.sequence,
                0,
                Some(&kbm),
            );
            return;
        }

        if deregister {
            // RFC 6275 9.5.3: delete the entry.
            if self.cache.remove(target.cn, hoa).is_some() {
                self.event(BindingEvent::Removed {
                    cn: target.cn,
                    hoa,
                    reason: RemoveReason::Deregistered,
                });
            }
            self.stats.deregistrations += 1;
            debug!("binding deleted");
            if bu.flags.ack() {
                self.send_ba(&target, BaStatus::Accepted, bu.sequence, 0, Some(&kbm));
            }
            return;
        }

        // RFC 6275 9.5.2, 5.2.6: lifetime at most MAX_RR_BINDING_LIFETIME.
        let granted = bu.lifetime_duration().min(self.config.max_lifetime);
        let units = duration_to_lifetime(granted);
        let expires = now + lifetime_to_duration(units);
        match self.cache.upsert(target.cn, hoa, coa, bu.sequence, expires) {
            Ok(kind) => {
                self.stats.bu_accepted += 1;
                let (cn, sequence) = (target.cn, bu.sequence);
                debug!(?kind, lifetime = ?granted, "binding accepted");
                self.event(match kind {
                    Upsert::Added => BindingEvent::Added {
                        cn,
                        hoa,
                        coa,
                        expires,
                        sequence,
                    },
                    Upsert::Updated => BindingEvent::Updated {
                        cn,
                        hoa,
                        coa,
                        expires,
                        sequence,
                    },
                });
                if bu.flags.ack() {
                    self.send_ba(&target, BaStatus::Accepted, bu.sequence, units, Some(&kbm));
                }
            }
            Err(_) => {
                // RFC 6275 9.5.2: insufficient resources, always answered.
                self.drop(DropReason::TableFull);
                self.send_ba(
                    &target,
                    BaStatus::InsufficientResources,
                    bu.sequence,
                    0,
                    Some(&kbm),
                );
            }
        }
    }

    /// RFC 6275 9.5.1: expired nonce indices are answered with 136/137/138;
    /// a wrong authenticator is silently discarded.
    fn reject_auth(&mut self, target: &BaTarget, bu: &BindingUpdateRepr, e: &BindingAuthError) {
        debug!(error = %e, "binding update not authorized");
        let reason = match e {
            BindingAuthError::HomeNonce(_) => DropReason::ExpiredHomeNonce,
            BindingAuthError::CareOfNonce(_) => DropReason::ExpiredCareOfNonce,
            BindingAuthError::BothNonces { .. } => DropReason::ExpiredNonces,
            BindingAuthError::Auth(_) => DropReason::BadAuthenticator,
        };
        self.drop(reason);
        if let Some(status) = e.ba_status() {
            self.send_ba(target, BaStatus::from_u8(status), bu.sequence, 0, None);
        }
    }

    /// RFC 6275 9.5.4: the BA goes to the BU's source; with a Type 2 Routing
    /// Header carrying the home address when the BU came from a care-of
    /// address (Home Address option). With `kbm` it carries Binding
    /// Authorization Data (RFC 6275 6.1.8, 6.2.7).
    fn send_ba(
        &mut self,
        target: &BaTarget,
        status: BaStatus,
        sequence: u16,
        lifetime: u16,
        kbm: Option<&Kbm>,
    ) {
        let mut mh = MhRepr::new(MhMessage::BindingAck(BindingAckRepr {
            status,
            flags: BaFlags::empty(),
            sequence,
            lifetime,
        }));
        if kbm.is_some() {
            mh.options.push(MobilityOption::BindingAuthData {
                authenticator: [0; 12],
            });
        }
        let repr = MhPacketRepr {
            rh2: target.had_hao.then_some(target.hoa),
            ..MhPacketRepr::new(target.cn, target.src, mh)
        };
        let t = match kbm {
            Some(kbm) => transmit_binding_auth(&repr, kbm, target.auth_address, target.cn),
            None => transmit(&repr, Route::Direct),
        };
        if t.is_ok() {
            self.stats.ba_sent += 1;
        }
        self.send(t);
    }
}
