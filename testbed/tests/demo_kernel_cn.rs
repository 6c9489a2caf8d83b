//! `testbed demo --kernel-cn` end to end (needs root, QEMU, busybox-static
//! and Debian's kernel: `scripts/vm-deps.sh`, which `scripts/test.sh`
//! runs): the client C is a QEMU guest whose stock kernel does the route
//! optimization. `mip6-cn --datapath auto` in it must choose the kernel
//! (`xfrm`), the TCP connection to X goes through the home agent first,
//! then route-optimized with the guest kernel's `route2` / `hao` states
//! (in the report and on the client's link: RH2 C -> CoA_K, HAO CoA_K ->
//! C), a Home Address option without a binding gets a Binding Error
//! (XFRM_MSG_REPORT), nothing is left in the guest's tables after the
//! deregistration and the agent's stop, and a restarted agent removes a
//! stale state.

mod daemon_support;

use std::net::Ipv6Addr;

use daemon_support::{TempDir, family, require_binaries, rh2_hao_frames};
use mip6_anycast::require_root;
use testbed::lab::{LabOptions, find_workspace_binary};
use testbed::scenarios::demo::{self, DemoOptions};
use testbed::vm;

/// Loud skip (or failure under `CI=true`) when the guest's ingredients
/// are missing.
fn require_vm_ingredients(name: &str) -> bool {
    let missing = if vm::find_kernel(&vm::kernel_cache()).is_err() {
        Some("Debian's kernel (run scripts/vm-deps.sh)")
    } else if !["/usr/bin/qemu-system-x86_64", "/bin/busybox"]
        .iter()
        .all(|p| std::path::Path::new(p).is_file())
    {
        Some("qemu-system-x86 / busybox-static (run scripts/vm-deps.sh)")
    } else {
        None
    };
    match missing {
        None => true,
        Some(what) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{name}: {what} missing under CI=true")
        }
        Some(what) => {
            eprintln!("SKIP (needs {what}): {name}");
            false
        }
    }
}

#[test]
fn kernel_correspondent_in_a_vm_route_optimizes_with_xfrm() {
    require_root!("kernel_correspondent_in_a_vm_route_optimizes_with_xfrm");
    if !require_vm_ingredients("kernel_correspondent_in_a_vm_route_optimizes_with_xfrm") {
        return;
    }
    require_binaries();
    assert!(
        find_workspace_binary("mip6-echo-probe").is_some(),
        "mip6-echo-probe not built (cargo build -p testbed)"
    );
    let out = TempDir::new("kcn");
    let mut opts = DemoOptions::new(out.path());
    opts.kernel_cn = true;
    opts.base.lab = LabOptions {
        family: family("kcn"),
        ..Default::default()
    };
    let r = demo::run(&opts, None).expect("the demo runs");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert!(
        r.passed(),
        "kernel-cn demo failed: {:?}\n{json:#}",
        r.errors
    );
    // Same contract as the namespace demo, plus the datapath.
    for key in [
        "tcp_via_home_agent_ok",
        "route_optimized",
        "packets_via_ha_after_ro",
        "rtt_via_ha_ms",
        "rtt_ro_ms",
        "bu_accepted",
        "errors",
        "client_datapath",
        "guest_xfrm_state",
    ] {
        assert!(json.get(key).is_some(), "report.json lacks {key}");
    }
    assert_eq!(json["client_datapath"], "xfrm");
    assert_eq!(json["packets_via_ha_after_ro"], 0);
    assert!(r.bu_accepted >= 1);
    let (via, ro) = (r.rtt_via_ha_ms.unwrap(), r.rtt_ro_ms.unwrap());
    assert!(ro < via, "route-optimized RTT {ro} ms not below {via} ms");
    // The guest kernel's states: route2 C -> X and hao X -> C, both with
    // K's care-of address; the wildcard-receive hao state.
    let state = r.guest_xfrm_state.as_deref().unwrap();
    for needle in [
        "src 2001:db8:1::10 dst 2001:db8:100::1\n\tproto route2 reqid 0 mode ro",
        "src 2001:db8:100::1 dst 2001:db8:1::10\n\tproto hao reqid 0 mode ro",
        "coa 2001:db8:3::10",
        "flag wildrecv",
    ] {
        assert!(state.contains(needle), "{needle:?} not in\n{state}");
    }
    let guest = r.guest.as_ref().unwrap();
    let policy = guest["xfrm_policy"].as_str().unwrap();
    assert!(policy.contains("ptype sub"), "{policy}");
    assert!(policy.contains("proto route2"), "{policy}");
    // Deregistration removed the binding; the agent's stop the rest.
    let dereg = guest["xfrm_after_deregistration"].as_str().unwrap();
    assert!(!dereg.contains("route2"), "{dereg}");
    assert_eq!(guest["xfrm_after_stop"].as_str().unwrap().trim(), "");
    // A restarted agent removes a stale route2 state (crash takeover).
    assert_eq!(guest["restart"]["stale_state_removed"], true);
    // XFRM_MSG_REPORT -> Binding Error.
    assert!(guest["unknown_hao"]["be_sent"].as_u64().unwrap() >= 1);
    for (d, status) in &r.daemon_exits {
        assert_eq!(status, "exit status: 0", "{d}");
    }
    // Captures: clean, RH2/HAO made by the guest kernel on C's link, none
    // on the HA's, the Binding Error on C's.
    for c in &r.captures {
        assert!(c.clean(), "{c:?}");
    }
    let cr = r.captures.iter().find(|c| c.link == "c-r").unwrap();
    assert!(cr.mobility.get("be").copied().unwrap_or(0) >= 1, "{cr:?}");
    let (c, k, x): (Ipv6Addr, Ipv6Addr, Ipv6Addr) = (
        "2001:db8:1::10".parse().unwrap(),
        "2001:db8:3::10".parse().unwrap(),
        "2001:db8:100::1".parse().unwrap(),
    );
    let (rh2, hao) = rh2_hao_frames(&out.path().join("pcap/c-r.pcap"), c, k, x);
    assert!(rh2 >= 20 && hao >= 20, "RH2 frames {rh2}, HAO frames {hao}");
    assert_eq!(
        rh2_hao_frames(&out.path().join("pcap/r-ha.pcap"), c, k, x),
        (0, 0)
    );
    eprintln!(
        "kernel-cn: guest boot {:.1} s, RTT via HA {via:.1} ms, route-optimized {ro:.1} ms",
        r.timings.get("guest_boot_s").copied().unwrap_or(f64::NAN)
    );
}
