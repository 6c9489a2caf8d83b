//! The correspondent's half of the Return Routability procedure (RFC 6275
//! 9.4.1-9.4.4): answer HoTI with HoT and CoTI with CoT. Stateless apart
//! from the nonce table: the keygen tokens are recomputed when the Binding
//! Update arrives.

use std::time::Instant;

use super::super::common::{Route, Transmit, transmit};
use super::super::stats::DropReason;
use crate::crypto::{NonceTable, TokenKind};
use crate::wire::{
    CareOfTestRepr, Cookie, HomeTestRepr, MhMessage, MhPacketRepr, MhRepr, is_valid_home_address,
};

/// Checks the common HoTI/CoTI rules: no Home Address option (RFC 6275
/// 9.4.1, 9.4.2: silently discard), no Type 2 Routing Header, a unicast
/// routable source.
fn check_test_init(pkt: &MhPacketRepr) -> Result<(), DropReason> {
    if pkt.hao.is_some() {
        return Err(DropReason::UnexpectedHao);
    }
    if pkt.rh2.is_some() {
        return Err(DropReason::UnexpectedRh2);
    }
    if !is_valid_home_address(&pkt.src_addr) {
        return Err(DropReason::BadHomeAddress);
    }
    Ok(())
}

/// RFC 6275 9.4.1-9.4.4: answers a HoTI with a HoT to its source (the
/// home address) or a CoTI with a CoT to its source (the care-of address),
/// carrying the keygen token for that address under the current nonce and
/// echoing the init cookie.
pub(super) fn answer_test_init(
    nonces: &mut NonceTable,
    now: Instant,
    pkt: &MhPacketRepr,
    kind: TokenKind,
    cookie: Cookie,
) -> Result<Transmit, DropReason> {
    check_test_init(pkt)?;
    let (index, token) = nonces
        .issue_token(pkt.src_addr, kind, now)
        .map_err(|_| DropReason::RandomFailure)?;
    let (index, token) = (index.0, *token.expose_secret());
    let reply = match kind {
        TokenKind::Home => MhMessage::HomeTest(HomeTestRepr {
            home_nonce_index: index,
            home_init_cookie: cookie,
            home_keygen_token: token,
        }),
        TokenKind::CareOf => MhMessage::CareOfTest(CareOfTestRepr {
            care_of_nonce_index: index,
            care_of_init_cookie: cookie,
            care_of_keygen_token: token,
        }),
    };
    transmit(
        &MhPacketRepr::new(pkt.dst_addr, pkt.src_addr, MhRepr::new(reply)),
        Route::Direct,
    )
}
