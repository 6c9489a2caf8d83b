//! Home registrations: the table entry, its persisted form, and the home
//! agent's Binding Update checks (RFC 6275 10.3.1, 10.3.2; RFC 4285 5.1, 6).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, debug_span};

use super::{HomeAgent, HomeAgentConfig};
use crate::crypto::{NtpTimestamp, ReplayError, Spi};
use crate::proto::common::{Route, seq_newer, transmit, transmit_mn_ha, verify_mn_ha};
use crate::proto::stats::DropReason;
use crate::wire::mh::{AUTH_SUBTYPE_MN_HA, duration_to_lifetime, lifetime_to_duration};
use crate::wire::{
    BaFlags, BaStatus, BindingAckRepr, BindingUpdateRepr, MessageAuth, MhMessage, MhPacketRepr,
    MhRepr, MobilityOption, ParsedMhPacket, is_valid_home_address,
};

/// An IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Prefix {
    /// Prefix address (bits beyond `len` are ignored).
    pub addr: Ipv6Addr,
    /// Prefix length, 0..=128.
    pub len: u8,
}

impl Prefix {
    /// True if `a` is inside the prefix.
    #[must_use]
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        let len = u32::from(self.len.min(128));
        let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
        (u128::from(a) & mask) == (u128::from(self.addr) & mask)
    }
}

/// A home registration (binding cache entry with the H flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Home address.
    pub hoa: Ipv6Addr,
    /// Registered care-of address.
    pub coa: Ipv6Addr,
    /// Mobility SPI that authenticated it.
    pub spi: Spi,
    /// Last accepted sequence number.
    pub sequence: u16,
    /// Last accepted Mesg-ID timestamp.
    pub mesg_id: NtpTimestamp,
    /// Expiry on the monotonic clock.
    pub expires: Instant,
    /// Expiry on the wall clock (what is persisted).
    pub expires_wall: NtpTimestamp,
}

impl Registration {
    /// The persisted form.
    #[must_use]
    pub fn record(&self) -> RegistrationRecord {
        let unix = self.expires_wall.to_unix();
        RegistrationRecord {
            hoa: self.hoa,
            coa: self.coa,
            spi: self.spi.0,
            sequence: self.sequence,
            mesg_id: self.mesg_id.0,
            expires_unix_ms: u64::try_from(unix.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A registration as the daemon stores it (serde), with its absolute
/// wall-clock expiry so that a restart can tell how much lifetime is left.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegistrationRecord {
    /// Home address.
    pub hoa: Ipv6Addr,
    /// Care-of address.
    pub coa: Ipv6Addr,
    /// Mobility SPI.
    pub spi: u32,
    /// Last accepted sequence number.
    pub sequence: u16,
    /// Last accepted Mesg-ID (NTP format).
    pub mesg_id: u64,
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_unix_ms: u64,
}

impl RegistrationRecord {
    /// The expiry as an NTP timestamp.
    #[must_use]
    pub fn expires_ntp(&self) -> NtpTimestamp {
        NtpTimestamp::from_unix(Duration::from_millis(self.expires_unix_ms))
    }
}

/// Where the BA goes and how it is signed.
struct Reply {
    ha: Ipv6Addr,
    src: Ipv6Addr,
    hoa: Ipv6Addr,
    coa: Ipv6Addr,
    had_hao: bool,
    sequence: u16,
}

fn wall_plus(wall: NtpTimestamp, d: Duration) -> NtpTimestamp {
    NtpTimestamp::from_unix(wall.to_unix() + d)
}

impl HomeAgent {
    /// RFC 6275 10.3.1 with RFC 4285: checks a home Binding Update and
    /// updates the registration table.
    pub(super) fn handle_binding_update(
        &mut self,
        now: Instant,
        wall: NtpTimestamp,
        parsed: &ParsedMhPacket<'_>,
        bu: &BindingUpdateRepr,
    ) {
        let pkt = &parsed.repr;
        let hoa = pkt.hao.unwrap_or(pkt.src_addr);
        let coa = pkt.mh.alternate_coa().unwrap_or(pkt.src_addr);
        let reply = Reply {
            ha: pkt.dst_addr,
            src: pkt.src_addr,
            hoa,
            coa,
            had_hao: pkt.hao.is_some(),
            sequence: bu.sequence,
        };
        let span = debug_span!("home_registration", %hoa, %coa, seq = bu.sequence);
        let _enter = span.enter();

        if !bu.flags.home_registration() {
            return self.drop(DropReason::WrongRegistrationType);
        }
        if pkt.rh2.is_some() {
            return self.drop(DropReason::UnexpectedRh2);
        }
        if !is_valid_home_address(&hoa) {
            return self.drop(DropReason::BadHomeAddress);
        }
        if !self.in_home_prefix(hoa) {
            // RFC 6275 10.3.1: not home subnet. No SA to sign with.
            self.drop(DropReason::NotHomeSubnet);
            return self.reply(&reply, BaStatus::NotHomeSubnet, 0, None, None);
        }
        // RFC 4285 5.1: without the MN-HA option nothing authenticates the
        // request: silently discarded.
        let Some(spi) = pkt.mh.message_auth(AUTH_SUBTYPE_MN_HA).map(|a| Spi(a.spi)) else {
            return self.drop(DropReason::MissingMnHaAuth);
        };
        let Ok(key) = self.key(spi, hoa).cloned() else {
            self.drop(DropReason::UnknownSpi);
            return self.reply(&reply, BaStatus::AuthFail, 0, None, None);
        };
        let received_id = pkt.mh.mesg_id().map(NtpTimestamp);
        if let Err(r) = verify_mn_ha(parsed, &key, coa, hoa) {
            self.drop(r);
            return self.reply(
                &reply,
                BaStatus::AuthFail,
                0,
                received_id,
                Some(&(spi, key)),
            );
        }
        let signer = (spi, key);
        let signer = Some(&signer);
        let Some(ts) = received_id else {
            self.drop(DropReason::MissingMesgId);
            return self.reply(&reply, BaStatus::MesgIdRequired, 0, None, signer);
        };
        match self.replay.accept(hoa, ts, wall) {
            Ok(()) => {}
            Err(e @ ReplayError::TableFull { .. }) => {
                debug!(error = %e, "replay table full");
                return self.drop(DropReason::ReplayTableFull);
            }
            Err(e) => {
                // RFC 4285 6: answer with the home agent's own time.
                debug!(error = %e, "Mesg-ID rejected");
                self.drop(DropReason::TimestampRejected);
                return self.reply(&reply, BaStatus::MesgIdMismatch, 0, Some(wall), signer);
            }
        }
        if let Some(existing) = self.regs.get(&hoa)
            && !seq_newer(bu.sequence, existing.sequence)
        {
            let last = existing.sequence;
            self.drop(DropReason::SequenceOutOfWindow);
            let r = Reply {
                sequence: last,
                ..reply
            };
            return self.reply(&r, BaStatus::SequenceNumberOutOfWindow, 0, Some(ts), signer);
        }
        if bu.lifetime == 0 || coa == hoa {
            // RFC 6275 10.3.2: deregistration.
            debug!("home registration deleted");
            self.stats.deregistrations += 1;
            self.remove(hoa);
            return self.reply(&reply, BaStatus::Accepted, 0, Some(ts), signer);
        }
        if !is_valid_home_address(&coa) {
            self.drop(DropReason::InvalidCareOfAddress);
            return self.reply(&reply, BaStatus::InvalidCareOfAddress, 0, Some(ts), signer);
        }
        if !self.regs.contains_key(&hoa) && self.regs.len() >= self.cfg.max_registrations {
            self.drop(DropReason::TableFull);
            return self.reply(&reply, BaStatus::InsufficientResources, 0, Some(ts), signer);
        }
        let units = duration_to_lifetime(granted_lifetime(&self.cfg, bu));
        let lifetime = lifetime_to_duration(units);
        debug!(?lifetime, "home registration accepted");
        self.stats.accepted += 1;
        self.install(Registration {
            hoa,
            coa,
            spi,
            sequence: bu.sequence,
            mesg_id: ts,
            expires: now + lifetime,
            expires_wall: wall_plus(wall, lifetime),
        });
        self.reply(&reply, BaStatus::Accepted, units, Some(ts), signer);
    }

    /// RFC 6275 10.3.1: the BA goes to the BU's source (the care-of address)
    /// with a Type 2 Routing Header carrying the home address; RFC 4285: it
    /// carries Mesg-ID and, when the SA is known, MN-HA authentication.
    fn reply(
        &mut self,
        r: &Reply,
        status: BaStatus,
        lifetime: u16,
        mesg_id: Option<NtpTimestamp>,
        signer: Option<&(Spi, crate::crypto::MnHaKey)>,
    ) {
        let mut mh = MhRepr::new(MhMessage::BindingAck(BindingAckRepr {
            status,
            flags: BaFlags::empty(),
            sequence: r.sequence,
            lifetime,
        }));
        if let Some(ts) = mesg_id {
            mh.options.push(MobilityOption::MesgId { timestamp: ts.0 });
        }
        if let Some((spi, _)) = signer {
            mh.options.push(MobilityOption::MessageAuth(MessageAuth {
                subtype: AUTH_SUBTYPE_MN_HA,
                spi: spi.0,
                auth_data: vec![0; 12],
            }));
        }
        let repr = MhPacketRepr {
            rh2: r.had_hao.then_some(r.hoa),
            ..MhPacketRepr::new(r.ha, r.src, mh)
        };
        let t = match signer {
            Some((_, key)) => transmit_mn_ha(&repr, key, r.coa, r.hoa),
            None => transmit(&repr, Route::Direct),
        };
        self.send(t);
    }
}

/// RFC 6275 10.3.1: the granted lifetime is at most the requested one and
/// the configured maximum.
fn granted_lifetime(cfg: &HomeAgentConfig, bu: &BindingUpdateRepr) -> Duration {
    bu.lifetime_duration().min(cfg.max_lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_contains() {
        let p = Prefix {
            addr: "2001:db8:1::".parse().unwrap(),
            len: 64,
        };
        assert!(p.contains("2001:db8:1::100".parse().unwrap()));
        assert!(p.contains("2001:db8:1:0:ffff::1".parse().unwrap()));
        assert!(!p.contains("2001:db8:1:1::1".parse().unwrap()));
        let all = Prefix {
            addr: Ipv6Addr::UNSPECIFIED,
            len: 0,
        };
        assert!(all.contains("ff02::1".parse().unwrap()));
        let host = Prefix {
            addr: "2001:db8::1".parse().unwrap(),
            len: 200,
        };
        assert!(host.contains("2001:db8::1".parse().unwrap()));
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
    }

    #[test]
    fn record_round_trips_expiry() {
        let wall = NtpTimestamp::from_unix(Duration::from_millis(1_700_000_000_250));
        let r = Registration {
            hoa: "2001:db8:1::100".parse().unwrap(),
            coa: "2001:db8:2::100".parse().unwrap(),
            spi: Spi(300),
            sequence: 9,
            mesg_id: wall,
            expires: Instant::now(),
            expires_wall: wall,
        };
        let rec = r.record();
        assert_eq!(rec.expires_unix_ms, 1_700_000_000_250);
        assert!(rec.expires_ntp().offset_from(wall).abs() < (1 << 32) / 1000 + 1);
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            serde_json::from_str::<RegistrationRecord>(&json).unwrap(),
            rec
        );
    }
}
