//! Choosing the acceptor of a client: round-robin, least connections,
//! lowest RTT to the client, or a hash of the client address (rendezvous
//! hashing, so a client keeps its member while the group is stable and
//! only the clients of a member that leaves move). The operator may also
//! name the member directly ([`Coordinator::handoff`](super::Coordinator::handoff)).

use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::types::MemberId;

/// How to choose an acceptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The next candidate in name order after the last one chosen.
    RoundRobin,
    /// Fewest connections (reported load plus handoffs sent since).
    LeastConnections,
    /// Lowest reported round-trip time to the client; members without a
    /// measurement come last (ties and no measurements: least connections).
    LowestRtt,
    /// Highest SHA-256(client address | member name): rendezvous hashing.
    ClientHash,
}

/// One member a client may be handed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The member.
    pub name: MemberId,
    /// Connections it serves (reported, plus handoffs sent to it since).
    pub connections: u64,
    /// Its reported RTT to the client, microseconds.
    pub rtt_us: Option<u32>,
}

/// The rendezvous weight of `member` for `client`.
#[must_use]
pub fn rendezvous_weight(client: Ipv6Addr, member: &MemberId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(client.octets());
    h.update(member.as_str().as_bytes());
    h.finalize().into()
}

/// Chooses among `candidates` (any order) for `client`. `cursor` is the
/// round-robin position (the last name chosen), updated when round-robin
/// chooses. Deterministic: ties go to the smaller name.
pub fn choose(
    policy: Policy,
    client: Ipv6Addr,
    candidates: &[Candidate],
    cursor: &mut Option<MemberId>,
) -> Option<MemberId> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted.dedup_by(|a, b| a.name == b.name);
    let least = |c: &&&Candidate| (c.connections, c.name.clone());
    let chosen = match policy {
        Policy::RoundRobin => {
            let next = match cursor.as_ref() {
                Some(last) => sorted
                    .iter()
                    .find(|c| &c.name > last)
                    .or_else(|| sorted.first()),
                None => sorted.first(),
            };
            let name = next.map(|c| c.name.clone());
            if name.is_some() {
                cursor.clone_from(&name);
            }
            return name;
        }
        Policy::LeastConnections => sorted.iter().min_by_key(least),
        Policy::LowestRtt => sorted
            .iter()
            .min_by_key(|c| (c.rtt_us.unwrap_or(u32::MAX), c.connections, c.name.clone())),
        Policy::ClientHash => sorted.iter().max_by_key(|c| {
            (
                rendezvous_weight(client, &c.name),
                std::cmp::Reverse(c.name.clone()),
            )
        }),
    };
    chosen.map(|c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> MemberId {
        MemberId::new(s).unwrap()
    }

    fn cand(name: &str, connections: u64, rtt_us: Option<u32>) -> Candidate {
        Candidate {
            name: m(name),
            connections,
            rtt_us,
        }
    }

    fn client(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, i)
    }

    #[test]
    fn round_robin_cycles_in_name_order() {
        let cs = [cand("c", 0, None), cand("a", 0, None), cand("b", 0, None)];
        let mut cursor = None;
        let picks: Vec<String> = (0..5)
            .map(|_| {
                choose(Policy::RoundRobin, client(1), &cs, &mut cursor)
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(picks, ["a", "b", "c", "a", "b"]);
        // A member that left is skipped, the cycle goes on after the cursor.
        let fewer = [cand("a", 0, None), cand("c", 0, None)];
        assert_eq!(
            choose(Policy::RoundRobin, client(1), &fewer, &mut cursor),
            Some(m("c"))
        );
        assert_eq!(
            choose(Policy::RoundRobin, client(1), &[], &mut cursor),
            None
        );
    }

    #[test]
    fn least_connections_and_lowest_rtt() {
        let cs = [
            cand("a", 10, Some(900)),
            cand("b", 3, None),
            cand("c", 3, Some(200)),
        ];
        let mut cursor = None;
        assert_eq!(
            choose(Policy::LeastConnections, client(1), &cs, &mut cursor),
            Some(m("b")),
            "tie on connections goes to the smaller name"
        );
        assert_eq!(
            choose(Policy::LowestRtt, client(1), &cs, &mut cursor),
            Some(m("c"))
        );
        let none = [cand("a", 10, None), cand("b", 3, None)];
        assert_eq!(
            choose(Policy::LowestRtt, client(1), &none, &mut cursor),
            Some(m("b")),
            "without measurements: least connections"
        );
    }

    #[test]
    fn client_hash_is_stable_and_spreads() {
        let cs = [cand("a", 0, None), cand("b", 0, None), cand("c", 0, None)];
        let mut cursor = None;
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..300 {
            let first = choose(Policy::ClientHash, client(i), &cs, &mut cursor).unwrap();
            let again = choose(Policy::ClientHash, client(i), &cs, &mut cursor).unwrap();
            assert_eq!(first, again);
            // Removing another member does not move this client.
            let others: Vec<Candidate> = cs
                .iter()
                .filter(|c| c.name == first || c.name.as_str() != "b")
                .cloned()
                .collect();
            if first.as_str() != "b" {
                assert_eq!(
                    choose(Policy::ClientHash, client(i), &others, &mut cursor),
                    Some(first.clone())
                );
            }
            *counts.entry(first).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|n| *n > 60), "{counts:?}");
    }
}
