//! PIAS leave (needs root): a target that leaves (authenticated leave to the
//! anycast control port) is no longer chosen for new flows; a target that
//! leaves gracefully with a live TCP connection hands it to another target
//! of its JAP with `tcp-handoff`, the JAP's NAT follows, and the client's
//! connection carries on.

mod pias_support;

use mip6_anycast::require_root;
use testbed::scenarios::pias::Phases;

#[test]
fn a_target_that_left_gets_no_new_flows() {
    require_root!("a_target_that_left_gets_no_new_flows");
    let phases = Phases {
        handoff: true,
        ..Phases::NONE
    };
    let (r, _out) = pias_support::run("leave", phases);
    assert!(r.left, "leave acknowledged");
    assert_eq!(r.after_leave_targets.len(), 6, "every new flow answered");
    assert!(
        r.after_leave_targets.iter().all(|t| t != "T3"),
        "{:?}",
        r.after_leave_targets
    );
}
