//! PIAS leave (needs root): a target that leaves (authenticated leave to the
//! anycast control port) is no longer chosen for new flows.

mod pias_support;

use mip6_anycast::require_root;
use testbed::scenarios::pias::Phases;

#[test]
fn a_target_that_left_gets_no_new_flows() {
    require_root!("a_target_that_left_gets_no_new_flows");
    let (r, _out) = pias_support::run("leave", Phases::NONE);
    assert!(r.left, "leave acknowledged");
    assert_eq!(r.after_leave_targets.len(), 6, "every new flow answered");
    assert!(
        r.after_leave_targets.iter().all(|t| t != "T3"),
        "{:?}",
        r.after_leave_targets
    );
}
