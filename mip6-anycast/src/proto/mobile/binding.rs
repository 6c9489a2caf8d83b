//! The per-correspondent registration logic of the mobile node: when to run
//! which test, Binding Update emission and retransmission (RFC 6275 11.7.2,
//! 11.8), Binding Acknowledgement, Binding Refresh Request and Binding
//! Error processing (RFC 6275 11.7.3, 11.7.4, 11.3.6).

use std::time::Instant;

use super::bul::{Bound, BulEntry, Goal, OutstandingBu, refresh_time};
use super::rr_initiator::TestKind;
use super::{Ctx, FailReason, HomeTestMode, MobileEvent};
use crate::crypto::kbm;
use crate::proto::common::{
    Backoff, Route, resync_sequence, transmit_binding_auth, verify_binding_auth,
};
use crate::proto::stats::DropReason;
use crate::wire::mh::duration_to_lifetime;
use crate::wire::{
    BaStatus, BeStatus, BindingAckRepr, BindingErrorRepr, BindingUpdateRepr, BuFlags, MhMessage,
    MhPacketRepr, MhRepr, MobilityOption, ParsedMhPacket,
};

/// True when the goal needs a Binding Update now.
fn needs_bu(e: &BulEntry, now: Instant) -> bool {
    match e.goal {
        Goal::Idle => false,
        Goal::Register => {
            e.bu.is_none()
                && e.bound
                    .is_none_or(|b| b.coa != e.coa || now >= b.refresh_at)
        }
        Goal::Deregister => e.bu.is_none(),
    }
}

/// Starts whatever the entry's goal needs next: home test, care-of test
/// (in parallel), or the Binding Update once both tokens are valid.
pub(super) fn progress(ctx: &mut Ctx, e: &mut BulEntry, now: Instant) {
    let (hoa, tl) = (ctx.cfg.hoa, ctx.cfg.token_lifetime);
    let home_valid = e.home.valid_token(now, hoa, tl).is_some();
    if e.want_home_token && home_valid {
        e.want_home_token = false;
        ctx.event(MobileEvent::HomeTokenReady { cn: e.cn });
    }
    let bu = needs_bu(e, now);
    if (bu || e.want_home_token) && !home_valid {
        start_home_test(ctx, e, now);
    }
    let need_care_of = bu && e.goal == Goal::Register;
    let care_of_valid = e.care_of.valid_token(now, e.coa, tl).is_some();
    if need_care_of && !care_of_valid {
        let cfg = ctx.cfg.retransmit;
        if let Some(t) = e
            .care_of
            .start(TestKind::CareOf, now, e.coa, e.cn, ctx.rng.as_mut(), &cfg)
        {
            if t.is_ok() {
                ctx.stats.coti_sent += 1;
            }
            ctx.send(t);
        }
    }
    if bu && home_valid && (care_of_valid || !need_care_of) {
        send_bu(ctx, e, now, None);
    }
}

fn start_home_test(ctx: &mut Ctx, e: &mut BulEntry, now: Instant) {
    match ctx.cfg.home_test {
        HomeTestMode::Local => {
            let cfg = ctx.cfg.retransmit;
            let hoa = ctx.cfg.hoa;
            if let Some(t) = e
                .home
                .start(TestKind::Home, now, hoa, e.cn, ctx.rng.as_mut(), &cfg)
            {
                if t.is_ok() {
                    ctx.stats.hoti_sent += 1;
                }
                ctx.send(t);
            }
        }
        HomeTestMode::External => {
            if !e.home_needed_reported {
                e.home_needed_reported = true;
                ctx.event(MobileEvent::HomeTokenNeeded { cn: e.cn });
            }
        }
    }
}

/// Sends a Binding Update (RFC 6275 11.7.2): from the care-of address with
/// a Home Address option, A flag, Nonce Indices and Binding Authorization
/// Data under Kbm. `retry` continues the back-off of an outstanding
/// attempt. If a token is no longer valid, the attempt is abandoned and
/// the tests start again.
fn send_bu(ctx: &mut Ctx, e: &mut BulEntry, now: Instant, retry: Option<Backoff>) {
    let (hoa, tl) = (ctx.cfg.hoa, ctx.cfg.token_lifetime);
    let deregister = e.goal == Goal::Deregister;
    let coa = if deregister {
        e.bound.map_or(e.coa, |b| b.coa)
    } else {
        e.coa
    };
    let home = e.home.valid_token(now, hoa, tl).cloned();
    let care_of = e.care_of.valid_token(now, coa, tl).cloned();
    let (Some(home), true) = (home, deregister || care_of.is_some()) else {
        e.bu = None;
        return progress(ctx, e, now);
    };
    let key = kbm(
        &home.token,
        if deregister {
            None
        } else {
            care_of.as_ref().map(|c| &c.token)
        },
    );
    let care_of_index = care_of
        .as_ref()
        .or(e.care_of.token.as_ref())
        .map_or(0, |c| c.index.0);
    let seq = e.take_seq();
    let lifetime = if deregister {
        0
    } else {
        duration_to_lifetime(ctx.cfg.lifetime)
    };
    let mh = MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
        sequence: seq,
        flags: BuFlags::ACK,
        lifetime,
    }))
    .with_option(MobilityOption::NonceIndices {
        home_nonce_index: home.index.0,
        care_of_nonce_index: care_of_index,
    })
    .with_option(MobilityOption::BindingAuthData {
        authenticator: [0; 12],
    });
    let repr = MhPacketRepr {
        hao: (coa != hoa).then_some(hoa),
        ..MhPacketRepr::new(coa, e.cn, mh)
    };
    // RFC 6275 6.2.7: a de-registration is authenticated over the home
    // address instead of the care-of address.
    let auth_address = if deregister { hoa } else { coa };
    let mut t = transmit_binding_auth(&repr, &key, auth_address, e.cn);
    if let Ok(t) = &mut t
        && coa == hoa
    {
        // From the home address itself: it lives behind the home agent.
        t.route = Route::ReverseTunnel;
    }
    if t.is_ok() {
        ctx.stats.bu_sent += 1;
    }
    ctx.send(t);
    e.bu = Some(match (retry, e.bu.take()) {
        (Some(backoff), Some(prev)) => OutstandingBu {
            last_seq: seq,
            last_sent: now,
            kbm: key,
            backoff,
            ..prev
        },
        _ => OutstandingBu {
            first_seq: seq,
            last_seq: seq,
            first_sent: now,
            last_sent: now,
            kbm: key,
            coa,
            deregister,
            backoff: Backoff::start(now, &ctx.cfg.retransmit),
        },
    });
}

/// Gives up on the entry's goal.
fn fail(ctx: &mut Ctx, e: &mut BulEntry, reason: FailReason) {
    e.goal = Goal::Idle;
    e.bu = None;
    e.want_home_token = false;
    e.home.pending = None;
    e.care_of.pending = None;
    ctx.event(MobileEvent::Failed { cn: e.cn, reason });
}

/// Timers of one entry: test and BU retransmissions, expiry, refresh.
pub(super) fn on_timeout(ctx: &mut Ctx, e: &mut BulEntry, now: Instant) {
    let cfg = ctx.cfg.retransmit;
    for kind in [TestKind::Home, TestKind::CareOf] {
        let test = match kind {
            TestKind::Home => &mut e.home,
            TestKind::CareOf => &mut e.care_of,
        };
        match test.on_timeout(kind, now, e.cn, &cfg) {
            None => {}
            Some(Err(DropReason::Timeout)) => {
                ctx.drop(DropReason::Timeout);
                return fail(ctx, e, FailReason::Timeout);
            }
            Some(t) => {
                if t.is_ok() {
                    match kind {
                        TestKind::Home => ctx.stats.hoti_sent += 1,
                        TestKind::CareOf => ctx.stats.coti_sent += 1,
                    }
                }
                ctx.send(t);
            }
        }
    }
    if let Some(bu) = &e.bu
        && bu.backoff.due(now)
    {
        let mut backoff = bu.backoff;
        if !backoff.retransmit(now, &cfg) {
            ctx.drop(DropReason::Timeout);
            return fail(ctx, e, FailReason::Timeout);
        }
        send_bu(ctx, e, now, Some(backoff));
    }
    if let Some(b) = e.bound
        && now >= b.expires
    {
        e.bound = None;
        ctx.event(MobileEvent::BindingExpired { cn: e.cn });
    }
    progress(ctx, e, now);
}

/// After a HoT/CoT was matched (or not).
pub(super) fn after_test_reply(
    ctx: &mut Ctx,
    e: &mut BulEntry,
    now: Instant,
    kind: TestKind,
    r: Result<(), DropReason>,
) {
    match r {
        Err(reason) => ctx.drop(reason),
        Ok(()) => {
            if kind == TestKind::Home {
                e.home_needed_reported = false;
            }
            progress(ctx, e, now);
        }
    }
}

/// RFC 6275 11.7.3: Binding Acknowledgement from the correspondent.
pub(super) fn handle_ba(
    ctx: &mut Ctx,
    e: &mut BulEntry,
    now: Instant,
    parsed: &ParsedMhPacket<'_>,
    ba: &BindingAckRepr,
) {
    let pkt = &parsed.repr;
    let hoa = ctx.cfg.hoa;
    let Some(bu) = e.bu.clone() else {
        return ctx.drop(DropReason::NoOutstandingBu);
    };
    let expect_rh2 = (bu.coa != hoa).then_some(hoa);
    if pkt.dst_addr != bu.coa || pkt.rh2 != expect_rh2 || pkt.hao.is_some() {
        return ctx.drop(DropReason::AddressMismatch);
    }
    let status = ba.status;
    let nonce_status = matches!(
        status,
        BaStatus::ExpiredHomeNonceIndex
            | BaStatus::ExpiredCareOfNonceIndex
            | BaStatus::ExpiredNonces
    );
    if nonce_status {
        // Not authenticated (the correspondent had no Kbm): only the
        // sequence number ties it to our BU.
        if !bu.matches(ba.sequence) {
            return ctx.drop(DropReason::SequenceMismatch);
        }
        ctx.stats.ba_rejected += 1;
        ctx.drop(DropReason::Rejected);
        if matches!(
            status,
            BaStatus::ExpiredHomeNonceIndex | BaStatus::ExpiredNonces
        ) {
            e.home.token = None;
        }
        if matches!(
            status,
            BaStatus::ExpiredCareOfNonceIndex | BaStatus::ExpiredNonces
        ) {
            e.care_of.token = None;
        }
        e.bu = None;
        return progress(ctx, e, now);
    }
    let auth_address = if bu.deregister { ctx.cfg.hoa } else { bu.coa };
    if let Err(reason) = verify_binding_auth(parsed, &bu.kbm, auth_address, e.cn) {
        return ctx.drop(reason);
    }
    if status == BaStatus::SequenceNumberOutOfWindow {
        // RFC 6275 11.7.3: the BA carries the last accepted number.
        ctx.stats.resyncs += 1;
        ctx.drop(DropReason::SequenceOutOfWindow);
        resync_sequence(&mut e.next_seq, ba.sequence);
        e.bu = None;
        return progress(ctx, e, now);
    }
    if !bu.matches(ba.sequence) {
        return ctx.drop(DropReason::SequenceMismatch);
    }
    e.bu = None;
    if !status.is_accepted() {
        ctx.stats.ba_rejected += 1;
        ctx.drop(DropReason::Rejected);
        return fail(ctx, e, FailReason::Rejected(status));
    }
    ctx.stats.ba_accepted += 1;
    let lifetime = ba.lifetime_duration();
    if bu.deregister || lifetime.is_zero() {
        e.bound = None;
        if e.goal == Goal::Deregister {
            e.goal = Goal::Idle;
        }
        ctx.event(MobileEvent::Deregistered { cn: e.cn });
        return progress(ctx, e, now);
    }
    let sent = bu.sent_at(ba.sequence);
    e.bound = Some(Bound {
        coa: bu.coa,
        expires: sent + lifetime,
        refresh_at: refresh_time(sent, lifetime),
        sequence: ba.sequence,
    });
    ctx.event(MobileEvent::Bound {
        cn: e.cn,
        coa: bu.coa,
        lifetime,
        sequence: ba.sequence,
    });
    progress(ctx, e, now);
}

/// RFC 6275 11.7.4: a Binding Refresh Request makes a registered entry
/// refresh now (tokens permitting, else after a new Return Routability).
pub(super) fn handle_brr(ctx: &mut Ctx, e: &mut BulEntry, now: Instant, pkt: &MhPacketRepr) {
    let hoa = ctx.cfg.hoa;
    if pkt.hao.is_some() || (pkt.dst_addr != hoa && pkt.rh2 != Some(hoa)) {
        return ctx.drop(DropReason::AddressMismatch);
    }
    ctx.stats.brr_received += 1;
    if e.goal != Goal::Register {
        return ctx.drop(DropReason::NotReady);
    }
    if let Some(b) = &mut e.bound {
        b.refresh_at = b.refresh_at.min(now);
    }
    progress(ctx, e, now);
}

/// RFC 6275 11.3.6: Binding Error from the correspondent.
pub(super) fn handle_be(ctx: &mut Ctx, e: &mut BulEntry, now: Instant, be: &BindingErrorRepr) {
    match be.status {
        BeStatus::UnknownBindingForHao if be.home_address == ctx.cfg.hoa => {
            // The correspondent lost our binding: register again.
            e.bound = None;
            progress(ctx, e, now);
        }
        BeStatus::UnrecognizedMhType => {
            if e.goal != Goal::Idle || e.want_home_token {
                fail(ctx, e, FailReason::RouteOptimizationUnsupported);
            }
        }
        _ => ctx.drop(DropReason::AddressMismatch),
    }
}
