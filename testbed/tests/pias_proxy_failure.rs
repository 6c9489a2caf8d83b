//! PIAS proxy failure (needs root): the JAP of the client's targets is
//! killed (SWIM declares it down, the IAP drops it and asks the RAP again,
//! another JAP serves), then the client's IAP is killed (its BIRD withdraws
//! the anycast prefix as the TUN disappears; OSPF moves the client to the
//! backup proxy of its cluster). The client is answered again both times.

mod pias_support;

use mip6_anycast::require_root;
use testbed::scenarios::pias::Phases;

#[test]
fn dead_proxies_are_routed_around() {
    require_root!("dead_proxies_are_routed_around");
    let phases = Phases {
        jap_failure: true,
        proxy_failure: true,
        ..Phases::NONE
    };
    let (r, _out) = pias_support::run("proxy", phases);
    eprintln!(
        "JAP failover {:?} ms, proxy failover {:?} ms",
        r.jap_failover_ms, r.proxy_failover_ms
    );
    assert!(r.jap_failover_ms.is_some_and(f64::is_finite), "{r:?}");
    assert!(r.proxy_failover_ms.is_some_and(f64::is_finite), "{r:?}");
    assert!(
        r.proxy_failover
            .as_deref()
            .is_some_and(|s| s.contains("dev p2")),
        "{:?}",
        r.proxy_failover
    );
}
