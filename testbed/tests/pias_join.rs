//! PIAS join (needs root): targets join through the anycast control port
//! and the nearest proxy becomes their JAP; the first packet of a client
//! takes 4 segments (client, IAP, RAP, JAP, target), later ones 3, and every
//! client is served by its nearest proxy (observed in the routers' captures);
//! the packets after a flow's first are carried by the tunnel engine's
//! proxy tables (ingress flow at the IAP, NAT binding at the JAP).
//! A group created at P1 is joined through P2 (P1 withdrawn): P2 learned it
//! from P1's announcement, sealed under the lab's inter-proxy key. A target
//! that decapsulates gets the client's packets tunnelled by its JAP and
//! tunnels its answers back.

mod pias_support;

use mip6_anycast::require_root;
use testbed::scenarios::pias::Phases;

#[test]
fn targets_join_and_packets_take_the_pias_path() {
    require_root!("targets_join_and_packets_take_the_pias_path");
    let phases = Phases {
        created_group: true,
        tunnel_target: true,
        ..Phases::NONE
    };
    let (r, _out) = pias_support::run("join", phases);
    assert!(r.joined);
    assert_eq!(
        r.first_packet_segments,
        Some(4),
        "{:?}",
        r.first_packet_path
    );
    assert_eq!(
        r.later_packet_segments,
        Some(3),
        "{:?}",
        r.later_packet_path
    );
    // Later packets are carried by the tunnel engine's proxy tables, not
    // by the proxies' control planes.
    let e = &r.engine;
    assert!(e.ingress_tunnelled > 0, "{e:?}");
    assert!(e.translated_to_target > 0, "{e:?}");
    assert!(e.replies_translated > 0, "{e:?}");
    assert_eq!(e.table_errors, 0, "{e:?}");
    assert_eq!(r.clients.len(), 3);
    for c in &r.clients {
        assert!(c.is_nearest, "{c:?}");
        assert!(c.answered_by.is_some(), "{c:?}");
    }
    // A target that decapsulates: the JAP tunnels to it, it tunnels back.
    let d = r.tunnel_target.as_ref().expect("tunnel-target phase ran");
    assert!(d.delivered, "{d:?}");
    assert!(d.answered >= d.probes / 2, "{d:?}");
    assert!(d.jap_tunnelled > 0 && d.jap_replies > 0, "{d:?}");
    assert!(r.created.created_at_p1, "{:?}", r.created);
    assert_eq!(r.created.join_status, "Ok", "{:?}", r.created);
    assert_eq!(
        r.created.joined_via.as_deref(),
        Some("P2"),
        "{:?}",
        r.created
    );
}
