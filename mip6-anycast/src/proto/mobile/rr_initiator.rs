//! The mobile node's half of Return Routability (RFC 6275 5.2.5, 11.6):
//! one home test and one care-of test per correspondent, run in parallel,
//! each with its own cookie, back-off and received token.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::super::common::{Backoff, RetransmitConfig, Route, Transmit, transmit};
use super::super::stats::DropReason;
use crate::crypto::{Cookie, KeygenToken, NonceIndex, RandomSource};
use crate::wire::{CareOfTestInitRepr, HomeTestInitRepr, MhMessage, MhPacketRepr, MhRepr};

/// A keygen token as received in a HoT or CoT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenInfo {
    pub(crate) token: KeygenToken,
    pub(crate) index: NonceIndex,
    /// When it was received (its validity counts from here).
    pub(crate) received: Instant,
    /// The address it is for: the home address or the care-of address.
    pub(crate) addr: Ipv6Addr,
}

impl TokenInfo {
    /// Usable at `now` for `addr` (RFC 6275 5.2.7: MAX_TOKEN_LIFETIME).
    pub(crate) fn valid(&self, now: Instant, addr: Ipv6Addr, lifetime: Duration) -> bool {
        self.addr == addr && now < self.received + lifetime
    }
}

/// An outstanding HoTI or CoTI.
#[derive(Debug, Clone)]
pub(crate) struct PendingTest {
    pub(crate) cookie: Cookie,
    /// Source of the CoTI (care-of test) or the home address (home test).
    pub(crate) addr: Ipv6Addr,
    pub(crate) backoff: Backoff,
}

/// Which test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TestKind {
    Home,
    CareOf,
}

/// One test (home or care-of) towards one correspondent.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestState {
    pub(crate) token: Option<TokenInfo>,
    pub(crate) pending: Option<PendingTest>,
}

impl TestState {
    /// The token if it is valid for `addr` at `now`.
    pub(crate) fn valid_token(
        &self,
        now: Instant,
        addr: Ipv6Addr,
        lifetime: Duration,
    ) -> Option<&TokenInfo> {
        self.token.as_ref().filter(|t| t.valid(now, addr, lifetime))
    }

    /// Starts a test from `addr` to `cn` unless one from `addr` is already
    /// outstanding; returns the init message to send.
    pub(crate) fn start(
        &mut self,
        kind: TestKind,
        now: Instant,
        addr: Ipv6Addr,
        cn: Ipv6Addr,
        rng: &mut dyn RandomSource,
        cfg: &RetransmitConfig,
    ) -> Option<Result<Transmit, DropReason>> {
        if self.pending.as_ref().is_some_and(|p| p.addr == addr) {
            return None;
        }
        let cookie = match Cookie::generate(rng) {
            Ok(c) => c,
            Err(_) => return Some(Err(DropReason::RandomFailure)),
        };
        self.pending = Some(PendingTest {
            cookie,
            addr,
            backoff: Backoff::start(now, cfg),
        });
        Some(init_message(kind, addr, cn, &cookie))
    }

    /// Accepts a HoT/CoT reply with `cookie` sent to `addr`.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        addr: Ipv6Addr,
        cookie: &[u8; 8],
        index: u16,
        token: &[u8; 8],
    ) -> Result<(), DropReason> {
        let p = self.pending.as_ref().ok_or(DropReason::NoPendingTest)?;
        if p.addr != addr {
            return Err(DropReason::AddressMismatch);
        }
        if p.cookie.as_bytes() != cookie {
            return Err(DropReason::CookieMismatch);
        }
        self.pending = None;
        self.token = Some(TokenInfo {
            token: KeygenToken::from_bytes(*token),
            index: NonceIndex(index),
            received: now,
            addr,
        });
        Ok(())
    }

    /// Retransmits the init message if due (RFC 6275 11.8). `Err(Timeout)`
    /// when the attempts are exhausted (the test is abandoned).
    pub(crate) fn on_timeout(
        &mut self,
        kind: TestKind,
        now: Instant,
        cn: Ipv6Addr,
        cfg: &RetransmitConfig,
    ) -> Option<Result<Transmit, DropReason>> {
        let p = self.pending.as_mut()?;
        if !p.backoff.due(now) {
            return None;
        }
        if !p.backoff.retransmit(now, cfg) {
            self.pending = None;
            return Some(Err(DropReason::Timeout));
        }
        let (addr, cookie) = (p.addr, p.cookie);
        Some(init_message(kind, addr, cn, &cookie))
    }

    /// When the outstanding init message is due again.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.backoff.next_at())
    }
}

/// HoTI: from the home address, reverse-tunnelled through the home agent
/// (RFC 6275 11.6.1). CoTI: from the care-of address, directly.
fn init_message(
    kind: TestKind,
    addr: Ipv6Addr,
    cn: Ipv6Addr,
    cookie: &Cookie,
) -> Result<Transmit, DropReason> {
    let (msg, route) = match kind {
        TestKind::Home => (
            MhMessage::HomeTestInit(HomeTestInitRepr {
                home_init_cookie: *cookie.as_bytes(),
            }),
            Route::ReverseTunnel,
        ),
        TestKind::CareOf => (
            MhMessage::CareOfTestInit(CareOfTestInitRepr {
                care_of_init_cookie: *cookie.as_bytes(),
            }),
            Route::Direct,
        ),
    };
    transmit(&MhPacketRepr::new(addr, cn, MhRepr::new(msg)), route)
}
