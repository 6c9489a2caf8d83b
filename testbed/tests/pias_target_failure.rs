//! PIAS target failure (needs root): the target serving a client's flow
//! loses its link; the JAP's health monitoring (no return traffic, then
//! unanswered pings) declares it dead and the flow moves to another target.

mod pias_support;

use mip6_anycast::require_root;
use testbed::scenarios::pias::Phases;

#[test]
fn a_dead_target_is_failed_over() {
    require_root!("a_dead_target_is_failed_over");
    let phases = Phases {
        target_failure: true,
        ..Phases::NONE
    };
    let (r, _out) = pias_support::run("target", phases);
    let ms = r.target_failover_ms.expect("target failover measured");
    assert!(ms.is_finite() && ms > 0.0);
    let moved = r.target_failover.expect("which target");
    let (from, to) = moved.split_once(" -> ").expect("from -> to");
    assert_ne!(from, to);
}
