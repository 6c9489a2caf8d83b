//! The home registration client (RFC 6275 11.7.1, 11.7.3) authenticated
//! with RFC 4285: Binding Updates with the A and H flags from the care-of
//! address (Home Address option = home address) to the home agent, each
//! carrying a Mesg-ID timestamp and the MN-HA authentication option;
//! retransmission, refresh before expiry, deregistration.
//!
//! The wall clock (for Mesg-ID) is passed in with every input as an
//! [`NtpTimestamp`]. A BA with status 144 (MIPV6-ID-MISMATCH) carries the
//! home agent's time; the client then keeps the offset to it and retries
//! (RFC 4285 6).

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::bul::refresh_time;
use crate::crypto::{MnHaKey, NtpTimestamp, Spi};
use crate::proto::common::{
    Action, Backoff, RetransmitConfig, Transmit, parse_drop_reason, resync_sequence,
    transmit_mn_ha, verify_mn_ha,
};
use crate::proto::stats::{DropCounts, DropReason};
use crate::wire::mh::{AUTH_SUBTYPE_MN_HA, duration_to_lifetime};
use crate::wire::{
    BaStatus, BindingAckRepr, BindingUpdateRepr, BuFlags, MessageAuth, MhMessage, MhPacketRepr,
    MhRepr, MobilityOption, ParsedMhPacket,
};

/// Consecutive MIPV6-ID-MISMATCH answers tolerated before giving up.
const MAX_TIMESTAMP_RESYNCS: u32 = 3;
/// Timestamps remembered per attempt to match the BA's echo.
const MAX_SENT_IDS: usize = 16;

/// Configuration of a [`HomeRegistration`].
#[derive(Debug, Clone)]
pub struct HomeRegistrationConfig {
    /// Home address.
    pub hoa: Ipv6Addr,
    /// Home agent address.
    pub ha: Ipv6Addr,
    /// Care-of address to register.
    pub coa: Ipv6Addr,
    /// Mobility SPI of the MN-HA security association.
    pub spi: Spi,
    /// MN-HA shared key.
    pub key: MnHaKey,
    /// Lifetime requested.
    pub lifetime: Duration,
    /// Retransmission of the Binding Update.
    pub retransmit: RetransmitConfig,
}

/// What happened to the home registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeRegEvent {
    /// The home agent accepted the registration.
    Registered {
        /// Registered care-of address.
        coa: Ipv6Addr,
        /// Granted lifetime.
        lifetime: Duration,
        /// Expiry.
        expires: Instant,
        /// Acknowledged sequence number.
        sequence: u16,
    },
    /// The home agent accepted the deregistration.
    Deregistered,
    /// The registration's lifetime ran out before a refresh succeeded.
    Expired,
    /// The home agent answered with status 135 while resynchronisation
    /// is off ([`HomeRegistration::set_resync_allowed`]): someone else
    /// registered the home address with a newer sequence number. The
    /// client stopped (no deregistration).
    Overtaken {
        /// The home agent's last accepted sequence number.
        sequence: u16,
    },
    /// Gave up: rejected with `Some(status)`, or no answer (`None`).
    Failed {
        /// The rejecting status, if any.
        status: Option<BaStatus>,
    },
}

/// Counters of a [`HomeRegistration`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeRegistrationStats {
    /// Drops per reason.
    pub drops: DropCounts,
    /// Binding Updates sent.
    pub bu_sent: u64,
    /// Accepting acknowledgements.
    pub ba_accepted: u64,
    /// Sequence resynchronisations (status 135).
    pub resyncs: u64,
    /// Timestamp resynchronisations (status 144).
    pub timestamp_resyncs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Idle,
    Register,
    Deregister,
}

#[derive(Debug, Clone)]
struct Outstanding {
    first_seq: u16,
    last_seq: u16,
    first_sent: Instant,
    last_sent: Instant,
    coa: Ipv6Addr,
    deregister: bool,
    backoff: Backoff,
    sent_ids: VecDeque<(u16, NtpTimestamp)>,
}

impl Outstanding {
    fn matches(&self, seq: u16) -> bool {
        seq.wrapping_sub(self.first_seq) <= self.last_seq.wrapping_sub(self.first_seq)
    }
}

#[derive(Debug, Clone, Copy)]
struct Registered {
    coa: Ipv6Addr,
    expires: Instant,
    refresh_at: Instant,
}

/// The home registration client. See the module docs.
#[derive(Debug)]
pub struct HomeRegistration {
    cfg: HomeRegistrationConfig,
    next_seq: u16,
    goal: Goal,
    out: Option<Outstanding>,
    reg: Option<Registered>,
    /// Offset to add to our wall clock to get the home agent's, in 2^-32 s.
    clock_offset: i64,
    timestamp_resyncs: u32,
    last_mesg_id: Option<NtpTimestamp>,
    /// Follow a BA 135 with a newer sequence number (RFC 6275 11.7.1).
    resync: bool,
    stats: HomeRegistrationStats,
    actions: VecDeque<Action<HomeRegEvent>>,
}

impl HomeRegistration {
    /// A client that has not registered yet; `initial_sequence` is the
    /// first sequence number it uses.
    #[must_use]
    pub fn new(cfg: HomeRegistrationConfig, initial_sequence: u16) -> Self {
        Self {
            cfg,
            next_seq: initial_sequence,
            goal: Goal::Idle,
            out: None,
            reg: None,
            clock_offset: 0,
            timestamp_resyncs: 0,
            last_mesg_id: None,
            resync: true,
            stats: HomeRegistrationStats::default(),
            actions: VecDeque::new(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &HomeRegistrationConfig {
        &self.cfg
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &HomeRegistrationStats {
        &self.stats
    }

    /// The registered care-of address and expiry, if registered.
    #[must_use]
    pub fn registration(&self) -> Option<(Ipv6Addr, Instant)> {
        self.reg.map(|r| (r.coa, r.expires))
    }

    /// The next sequence number.
    #[must_use]
    pub fn next_sequence(&self) -> u16 {
        self.next_seq
    }

    /// Sets the next sequence number (e.g. a backup taking over from the
    /// contact node's last known one).
    pub fn set_next_sequence(&mut self, seq: u16) {
        self.next_seq = seq;
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action<HomeRegEvent>> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next needed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let refresh = self
            .reg
            .filter(|_| self.goal == Goal::Register && self.out.is_none())
            .map(|r| r.refresh_at);
        [
            self.out.as_ref().map(|o| o.backoff.next_at()),
            refresh,
            self.reg.map(|r| r.expires),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Registers (or re-registers) the configured care-of address.
    pub fn register(&mut self, now: Instant, wall: NtpTimestamp) {
        self.goal = Goal::Register;
        self.timestamp_resyncs = 0;
        self.send_bu(now, wall, None);
    }

    /// Moves the registration to `coa`.
    pub fn set_coa(&mut self, now: Instant, wall: NtpTimestamp, coa: Ipv6Addr) {
        self.cfg.coa = coa;
        self.register(now, wall);
    }

    /// Switches to another MN-HA security association (key rotation, or
    /// a takeover with a replicated key); used from the next BU on.
    pub fn set_security_association(&mut self, spi: Spi, key: MnHaKey) {
        self.cfg.spi = spi;
        self.cfg.key = key;
    }

    /// Whether a BA with status 135 (sequence number out of window) is
    /// followed by a retry with a newer number (the default, RFC 6275
    /// 11.7.1), or reported as [`HomeRegEvent::Overtaken`]. An anycast
    /// contact node turns it off once registered: a 135 then means that
    /// another member took the address over, and resynchronising would
    /// take it back.
    pub fn set_resync_allowed(&mut self, allowed: bool) {
        self.resync = allowed;
    }

    /// Stops without deregistering: no refresh, no retransmission (the
    /// registration now belongs to someone else).
    pub fn abandon(&mut self) {
        self.goal = Goal::Idle;
        self.out = None;
        self.reg = None;
    }

    /// Deletes the registration (lifetime 0), e.g. on shutdown.
    pub fn deregister(&mut self, now: Instant, wall: NtpTimestamp) {
        self.goal = Goal::Deregister;
        self.timestamp_resyncs = 0;
        self.send_bu(now, wall, None);
    }

    /// Retransmission, refresh and expiry.
    pub fn handle_timeout(&mut self, now: Instant, wall: NtpTimestamp) {
        if let Some(o) = &self.out
            && o.backoff.due(now)
        {
            let mut backoff = o.backoff;
            if backoff.retransmit(now, &self.cfg.retransmit) {
                self.send_bu(now, wall, Some(backoff));
            } else {
                self.fail(None);
            }
        }
        if let Some(r) = self.reg
            && now >= r.expires
        {
            self.reg = None;
            self.event(HomeRegEvent::Expired);
        }
        if self.goal == Goal::Register
            && self.out.is_none()
            && self.reg.is_none_or(|r| now >= r.refresh_at)
        {
            self.send_bu(now, wall, None);
        }
    }

    fn timestamp(&mut self, wall: NtpTimestamp) -> NtpTimestamp {
        let mut ts = NtpTimestamp(wall.0.wrapping_add_signed(self.clock_offset));
        if let Some(last) = self.last_mesg_id
            && ts.offset_from(last) <= 0
        {
            ts = NtpTimestamp(last.0.wrapping_add(1));
        }
        self.last_mesg_id = Some(ts);
        ts
    }

    /// RFC 6275 11.7.1 + RFC 4285: BU (A, H) from the care-of address with
    /// Home Address option, Mesg-ID and MN-HA authentication.
    fn send_bu(&mut self, now: Instant, wall: NtpTimestamp, retry: Option<Backoff>) {
        let deregister = self.goal == Goal::Deregister;
        let (hoa, coa) = (self.cfg.hoa, self.cfg.coa);
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let ts = self.timestamp(wall);
        let lifetime = if deregister {
            0
        } else {
            duration_to_lifetime(self.cfg.lifetime)
        };
        let mh = MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
            sequence: seq,
            flags: BuFlags::ACK | BuFlags::HOME,
            lifetime,
        }))
        .with_option(MobilityOption::MesgId { timestamp: ts.0 })
        .with_option(MobilityOption::MessageAuth(MessageAuth {
            subtype: AUTH_SUBTYPE_MN_HA,
            spi: self.cfg.spi.0,
            auth_data: vec![0; 12],
        }));
        let repr = MhPacketRepr {
            hao: (coa != hoa).then_some(hoa),
            ..MhPacketRepr::new(coa, self.cfg.ha, mh)
        };
        let t = transmit_mn_ha(&repr, &self.cfg.key, coa, hoa);
        if t.is_ok() {
            self.stats.bu_sent += 1;
        }
        self.send(t);
        let mut o = match (retry, self.out.take()) {
            (Some(backoff), Some(prev)) => Outstanding {
                last_seq: seq,
                last_sent: now,
                backoff,
                ..prev
            },
            _ => Outstanding {
                first_seq: seq,
                last_seq: seq,
                first_sent: now,
                last_sent: now,
                coa,
                deregister,
                backoff: Backoff::start(now, &self.cfg.retransmit),
                sent_ids: VecDeque::new(),
            },
        };
        if o.sent_ids.len() >= MAX_SENT_IDS {
            o.sent_ids.pop_front();
        }
        o.sent_ids.push_back((seq, ts));
        self.out = Some(o);
    }

    /// Processes a received packet (whole IPv6 packet).
    pub fn handle_packet(&mut self, now: Instant, wall: NtpTimestamp, packet: &[u8]) {
        match MhPacketRepr::parse_with_bytes(packet) {
            Ok(p) => self.handle_parsed(now, wall, &p),
            Err(e) => self.drop(parse_drop_reason(&e)),
        }
    }

    /// Processes a received, parsed packet: a Binding Acknowledgement from
    /// the home agent (RFC 6275 11.7.3, RFC 4285 5.1, 6).
    pub fn handle_parsed(&mut self, now: Instant, wall: NtpTimestamp, parsed: &ParsedMhPacket<'_>) {
        let pkt = &parsed.repr;
        let MhMessage::BindingAck(ba) = &pkt.mh.message else {
            return self.drop(DropReason::UnexpectedMessage);
        };
        let Some(o) = self.out.clone() else {
            return self.drop(DropReason::NoOutstandingBu);
        };
        let hoa = self.cfg.hoa;
        if pkt.src_addr != self.cfg.ha
            || pkt.dst_addr != o.coa
            || pkt.rh2 != (o.coa != hoa).then_some(hoa)
        {
            return self.drop(DropReason::AddressMismatch);
        }
        match pkt.mh.message_auth(AUTH_SUBTYPE_MN_HA) {
            Some(a) if a.spi == self.cfg.spi.0 => {}
            Some(_) => return self.drop(DropReason::UnknownSpi),
            None => return self.drop(DropReason::MissingMnHaAuth),
        }
        if let Err(r) = verify_mn_ha(parsed, &self.cfg.key, o.coa, hoa) {
            return self.drop(r);
        }
        let Some(mesg_id) = pkt.mh.mesg_id().map(NtpTimestamp) else {
            return self.drop(DropReason::MissingMesgId);
        };
        self.on_ba(now, wall, &o, ba, mesg_id);
    }

    fn on_ba(
        &mut self,
        now: Instant,
        wall: NtpTimestamp,
        o: &Outstanding,
        ba: &BindingAckRepr,
        mesg_id: NtpTimestamp,
    ) {
        if !o.matches(ba.sequence) && ba.status != BaStatus::SequenceNumberOutOfWindow {
            return self.drop(DropReason::SequenceMismatch);
        }
        match ba.status {
            BaStatus::MesgIdMismatch => {
                // RFC 4285 6: the BA carries the home agent's time.
                self.timestamp_resyncs += 1;
                self.stats.timestamp_resyncs += 1;
                self.drop(DropReason::TimestampRejected);
                if self.timestamp_resyncs > MAX_TIMESTAMP_RESYNCS {
                    return self.fail(Some(ba.status));
                }
                self.clock_offset = mesg_id.offset_from(wall);
                self.last_mesg_id = None;
                debug!(offset = self.clock_offset, "home agent clock offset");
                self.out = None;
                self.send_bu(now, wall, None);
            }
            BaStatus::SequenceNumberOutOfWindow if !self.resync => {
                self.drop(DropReason::SequenceOutOfWindow);
                self.abandon();
                self.event(HomeRegEvent::Overtaken {
                    sequence: ba.sequence,
                });
            }
            BaStatus::SequenceNumberOutOfWindow => {
                self.stats.resyncs += 1;
                self.drop(DropReason::SequenceOutOfWindow);
                resync_sequence(&mut self.next_seq, ba.sequence);
                self.out = None;
                self.send_bu(now, wall, None);
            }
            status => {
                if !o
                    .sent_ids
                    .iter()
                    .any(|&(s, ts)| s == ba.sequence && ts == mesg_id)
                {
                    return self.drop(DropReason::MesgIdMismatch);
                }
                self.out = None;
                self.timestamp_resyncs = 0;
                if !status.is_accepted() {
                    self.drop(DropReason::Rejected);
                    return self.fail(Some(status));
                }
                self.stats.ba_accepted += 1;
                let lifetime = ba.lifetime_duration();
                if o.deregister || lifetime.is_zero() {
                    self.reg = None;
                    self.goal = Goal::Idle;
                    return self.event(HomeRegEvent::Deregistered);
                }
                let sent = if ba.sequence == o.last_seq {
                    o.last_sent
                } else {
                    o.first_sent
                };
                let expires = sent + lifetime;
                self.reg = Some(Registered {
                    coa: o.coa,
                    expires,
                    refresh_at: refresh_time(sent, lifetime),
                });
                self.event(HomeRegEvent::Registered {
                    coa: o.coa,
                    lifetime,
                    expires,
                    sequence: ba.sequence,
                });
            }
        }
    }

    fn fail(&mut self, status: Option<BaStatus>) {
        self.out = None;
        self.goal = Goal::Idle;
        self.event(HomeRegEvent::Failed { status });
    }

    fn send(&mut self, t: Result<Transmit, DropReason>) {
        match t {
            Ok(t) => self.actions.push_back(Action::Transmit(t)),
            Err(r) => self.drop(r),
        }
    }

    fn event(&mut self, e: HomeRegEvent) {
        debug!(event = ?e, "home registration");
        self.actions.push_back(Action::Event(e));
    }

    fn drop(&mut self, r: DropReason) {
        self.stats.drops.count(r);
        self.actions.push_back(Action::Dropped(r));
    }
}
