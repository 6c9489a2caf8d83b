//! When the first route-optimized client packet reached the acceptor: the
//! acceptor link's capture (pcap, nanosecond wall-clock stamps) is scanned
//! for packets from the client to the acceptor's care-of address that
//! carry a Type 2 Routing Header with the anycast address (RFC 6275 6.4:
//! data and the Binding Acknowledgement alike).

use std::net::Ipv6Addr;
use std::path::Path;

use mip6_anycast::wire::{ExtChain, Ipv6Packet};
use pcap_file::pcap::PcapReader;

/// Unix times (µs) of the route-optimized packets client -> acceptor.
pub fn rh2_arrivals(
    pcap: &Path,
    client: Ipv6Addr,
    acceptor: Ipv6Addr,
    x: Ipv6Addr,
) -> anyhow::Result<Vec<u64>> {
    let f = std::fs::File::open(pcap)?;
    let mut r = PcapReader::new(f)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let Ok(p) = p else { break };
        let data = &p.data[..];
        let Ok(ip) = Ipv6Packet::new_checked(data) else {
            continue;
        };
        if ip.src_addr() != client || ip.dst_addr() != acceptor {
            continue;
        }
        let Ok(chain) = ExtChain::walk(data) else {
            continue;
        };
        if chain.rh2().is_some_and(|r| r.home_address == x) {
            out.push(u64::try_from(p.timestamp.as_micros()).unwrap_or(u64::MAX));
        }
    }
    Ok(out)
}

/// The first arrival at or after `t_us`.
pub fn first_after(arrivals: &[u64], t_us: u64) -> Option<u64> {
    arrivals.iter().copied().filter(|&a| a >= t_us).min()
}
