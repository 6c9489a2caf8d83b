//! BIRD 2 configurations of the PIAS lab: OSPFv3 on the routers, and on
//! every proxy an OSPFv3 speaker that exports the anycast prefix and its
//! NAT address as type-1 externals while its TUN exists (seed 001 3.4:
//! proxies advertise the prefix into the IGP, so a dead proxy is routed
//! around by the IGP).

use std::fmt::Write as _;
use std::net::Ipv6Addr;

/// OSPF timers of every interface: hello 1 s, dead 3 s, point-to-point.
const IFACE_OPTS: &str = "type ptp; hello 1; dead 3; retransmit 2;";

/// One interface of a router: name, cost, stub (no OSPF neighbour).
pub struct RouterIface {
    /// Interface name.
    pub name: String,
    /// OSPF cost.
    pub cost: u32,
    /// Stub network (clients, targets).
    pub stub: bool,
}

/// Router configuration: OSPFv3 area 0 on every interface, learned routes
/// exported into the kernel.
pub fn router_conf(router_id: u32, ifaces: &[RouterIface]) -> String {
    let mut s = format!(
        "router id 10.0.0.{router_id};\nlog stderr all;\nprotocol device {{ scan time 1; }}\n\
         protocol kernel {{ ipv6 {{ import none; export all; }}; merge paths on; }}\n\
         protocol ospf v3 core {{\n  ipv6 {{ import all; export none; }};\n  area 0 {{\n"
    );
    for i in ifaces {
        if i.stub {
            let _ = writeln!(
                s,
                "    interface \"{}\" {{ stub yes; cost {}; }};",
                i.name, i.cost
            );
        } else {
            let _ = writeln!(
                s,
                "    interface \"{}\" {{ {IFACE_OPTS} cost {}; }};",
                i.name, i.cost
            );
        }
    }
    s.push_str("  };\n}\n");
    s
}

/// Proxy configuration: static routes via the proxy's TUN (valid only while
/// the daemon runs), exported into OSPF with external metric `metric`.
pub fn proxy_conf(
    router_id: u32,
    uplink: &str,
    tun: &str,
    anycast: &str,
    nat: Ipv6Addr,
    metric: u32,
) -> String {
    format!(
        "router id 10.0.1.{router_id};\nlog stderr all;\nprotocol device {{ scan time 1; }}\n\
         protocol static announce {{ ipv6; route {anycast} via \"{tun}\"; route {nat}/128 via \"{tun}\"; }}\n\
         protocol ospf v3 edge {{\n  ipv6 {{ import none; export filter {{ ospf_metric1 = {metric}; accept; }}; }};\n\
         \x20 area 0 {{ interface \"{uplink}\" {{ {IFACE_OPTS} cost 10; }}; }};\n}}\n"
    )
}
