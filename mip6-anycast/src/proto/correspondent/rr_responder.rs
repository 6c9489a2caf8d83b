//! The correspondent's half of the Return Routability procedure (RFC 6275
//! 9.4.1-9.4.4): answer HoTI with HoT and CoTI with CoT. Stateless apart
//! from the nonce table: the keygen tokens are recomputed when the Binding
//! Update arrives.

use std::time::Instant;

use super::super::common::{Route, Transmit, transmit};
use super::super::stats::DropReason;
use crate::crypto::{NonceTable, TokenKind};
use crate::wire::{
    CareOfTestInitRepr, CareOfTestRepr, HomeTestInitRepr, HomeTestRepr, MhMessage, MhPacketRepr,
    MhRepr, is_valid_home_address,
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

/// RFC 6275 9.4.1/9.4.3: a HoT to the HoTI's source (the home address)
/// with the home keygen token for that address under the current nonce.
pub(super) fn answer_home_test_init(
    nonces: &mut NonceTable,
    now: Instant,
    pkt: &MhPacketRepr,
    hoti: &HomeTestInitRepr,
) -> Result<Transmit, DropReason> {
    check_test_init(pkt)?;
    let (index, token) = nonces
        .issue_token(pkt.src_addr, TokenKind::Home, now)
        .map_err(|_| DropReason::RandomFailure)?;
    let hot = MhMessage::HomeTest(HomeTestRepr {
        home_nonce_index: index.0,
        home_init_cookie: hoti.home_init_cookie,
        home_keygen_token: *token.expose_secret(),
    });
    transmit(
        &MhPacketRepr::new(pkt.dst_addr, pkt.src_addr, MhRepr::new(hot)),
        Route::Direct,
    )
}

/// RFC 6275 9.4.2/9.4.4: a CoT to the CoTI's source (the care-of address)
/// with the care-of keygen token for that address under the current nonce.
pub(super) fn answer_care_of_test_init(
    nonces: &mut NonceTable,
    now: Instant,
    pkt: &MhPacketRepr,
    coti: &CareOfTestInitRepr,
) -> Result<Transmit, DropReason> {
    check_test_init(pkt)?;
    let (index, token) = nonces
        .issue_token(pkt.src_addr, TokenKind::CareOf, now)
        .map_err(|_| DropReason::RandomFailure)?;
    let cot = MhMessage::CareOfTest(CareOfTestRepr {
        care_of_nonce_index: index.0,
        care_of_init_cookie: coti.care_of_init_cookie,
        care_of_keygen_token: *token.expose_secret(),
    });
    transmit(
        &MhPacketRepr::new(pkt.dst_addr, pkt.src_addr, MhRepr::new(cot)),
        Route::Direct,
    )
}
