//! Prompt resume after a move: the data caught in the move flows again
//! without waiting for a retransmission timeout, in both directions.
//! (Speed is measured by `examples/resume_latency.rs`; these tests check the
//! mechanism: what was resent or replayed, and that no RTO fired.)

mod common;

use common::scenarios::{frozen_client_data, frozen_client_data_at, lost_acks, lost_tail};
use tcp_handoff::Resend;

/// Bytes the client never received are resent the moment repair mode ends.
#[test]
fn lost_tail_is_resent_at_activation() {
    require_root!();
    let out = lost_tail(Resend::default());
    eprintln!("{out:?}");
    assert_eq!(out.sent_in_dump, 8192);
    assert_eq!(
        out.report.written, 8192,
        "the unacknowledged tail was written back as unsent"
    );
    assert_eq!(out.client_timeouts, 0);
    assert_eq!(
        out.acceptor_timeouts, 0,
        "no retransmission timeout on the acceptor"
    );
}

/// The window probe at activation makes the client acknowledge what it
/// already had, which frees the window for new data.
#[test]
fn window_probe_recovers_lost_acks() {
    require_root!();
    let out = lost_acks(true, false);
    eprintln!("{out:?}");
    assert!(out.sent_in_dump > 0);
    assert_eq!(
        out.acceptor_timeouts, 0,
        "no retransmission timeout on the acceptor"
    );
}

/// What the client sent into the frozen socket is captured and replayed.
#[test]
fn client_data_sent_while_frozen_is_replayed() {
    require_root!();
    let out = frozen_client_data(true, 0);
    eprintln!("{out:?}");
    assert!(
        out.replayed_late + out.report.replayed > 0,
        "captured segments were replayed"
    );
}

/// The same over IPv4: captured IPv4 segments are rebuilt and replayed.
#[test]
fn client_data_sent_while_frozen_is_replayed_over_ipv4() {
    require_root!();
    let addr = std::net::SocketAddr::new(common::X4.into(), 9104);
    let out = frozen_client_data_at(addr, true, 0);
    eprintln!("{out:?}");
    assert!(
        out.replayed_late + out.report.replayed > 0,
        "captured segments were replayed"
    );
}
