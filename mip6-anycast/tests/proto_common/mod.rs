//! Helpers shared by the `proto_*` integration tests: addresses, node
//! builders and packet inspection for the simulated network.
#![allow(dead_code)]

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::crypto::{DeterministicRandom, KeygenToken, MnHaKey, Spi, bu_authenticator, kbm};
use mip6_anycast::proto::correspondent::RefreshPolicy;
use mip6_anycast::proto::sim::{
    CorrespondentNode, HomeAgentNode, LogEntry, MemberNode, NodeId, Sim,
};
use mip6_anycast::proto::{
    BindingEvent, Correspondent, CorrespondentConfig, HomeAgent, HomeAgentConfig, HomeRegistration,
    HomeRegistrationConfig, HomeTestMode, MobileConfig, MobileNode, Prefix, RetransmitConfig,
};
use mip6_anycast::wire::mh::mh_type;
use mip6_anycast::wire::{
    BindingUpdateRepr, BuFlags, MhMessage, MhPacketRepr, MhRepr, MobilityOption,
};

/// The client (correspondent node).
pub const CN: &str = "2001:db8:3::10";
/// The anycast home address X.
pub const HOA: &str = "2001:db8:1::100";
/// The home agent.
pub const HA: &str = "2001:db8:1::1";
/// Contact node K's care-of address.
pub const COA_K: &str = "2001:db8:2::100";
/// Acceptor A's care-of address.
pub const COA_A: &str = "2001:db8:4::100";
/// Member / backup B's care-of address.
pub const COA_B: &str = "2001:db8:5::100";
/// SPI of X's MN-HA security association.
pub const SPI: Spi = Spi(0x1234);
/// Wall clock at t0: 2023-11-14.
pub const WALL0: Duration = Duration::from_secs(1_700_000_000);

pub fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn rng(seed: u64) -> Box<DeterministicRandom> {
    Box::new(DeterministicRandom::new(seed))
}

pub fn mn_ha_key() -> MnHaKey {
    MnHaKey::from_array(&[0x42; 20])
}

pub fn correspondent(now: Instant, cfg: CorrespondentConfig, seed: u64) -> Correspondent {
    Correspondent::new(cfg, rng(seed), now).unwrap()
}

pub fn cn_config() -> CorrespondentConfig {
    CorrespondentConfig {
        refresh: RefreshPolicy {
            lead: secs(20),
            usage_window: secs(60),
        },
        ..CorrespondentConfig::default()
    }
}

pub fn mobile(hoa: &str, mode: HomeTestMode, seed: u64) -> MobileNode {
    let cfg = MobileConfig {
        home_test: mode,
        ..MobileConfig::new(addr(hoa))
    };
    MobileNode::new(cfg, rng(seed))
}

pub fn home_reg(coa: &str, key: MnHaKey, initial_seq: u16) -> HomeRegistration {
    HomeRegistration::new(
        HomeRegistrationConfig {
            hoa: addr(HOA),
            ha: addr(HA),
            coa: addr(coa),
            spi: SPI,
            key,
            lifetime: secs(600),
            retransmit: RetransmitConfig::default(),
        },
        initial_seq,
    )
}

pub fn home_agent() -> HomeAgent {
    let mut ha = HomeAgent::new(HomeAgentConfig {
        home_prefixes: vec![Prefix {
            addr: addr("2001:db8:1::"),
            len: 64,
        }],
        ..HomeAgentConfig::default()
    });
    ha.add_security_association(SPI, addr(HOA), mn_ha_key())
        .unwrap();
    ha
}

/// A network with the client and contact node K (local home test); the
/// home route X -> CoA_K is set directly (no home agent node).
pub struct World {
    pub sim: Sim,
    pub cn: NodeId,
    pub k: NodeId,
}

pub fn world(seed: u64) -> World {
    world_with(seed, cn_config())
}

pub fn world_with(seed: u64, cfg: CorrespondentConfig) -> World {
    let t0 = Instant::now();
    let mut sim = Sim::new(t0, WALL0, seed);
    let cn = sim.add_node(Box::new(CorrespondentNode::new(
        correspondent(t0, cfg, seed ^ 0xc0),
        vec![addr(CN)],
    )));
    let k = sim.add_node(Box::new(MemberNode::new(
        mobile(HOA, HomeTestMode::Local, seed ^ 0x4b),
        None,
        vec![addr(COA_K)],
    )));
    sim.set_home_route(addr(HOA), Some(addr(COA_K)));
    World { sim, cn, k }
}

/// Adds a member with care-of address `coa` whose home test is external.
pub fn add_acceptor(sim: &mut Sim, coa: &str, seed: u64) -> NodeId {
    sim.add_node(Box::new(MemberNode::new(
        mobile(HOA, HomeTestMode::External, seed),
        None,
        vec![addr(coa)],
    )))
}

pub fn cn_node(sim: &Sim, id: NodeId) -> &CorrespondentNode {
    sim.node::<CorrespondentNode>(id)
}

pub fn member(sim: &Sim, id: NodeId) -> &MemberNode {
    sim.node::<MemberNode>(id)
}

pub fn ha_node(sim: &Sim, id: NodeId) -> &HomeAgentNode {
    sim.node::<HomeAgentNode>(id)
}

/// Packets of `mh_type` sent by node `from`.
pub fn sent(sim: &Sim, from: NodeId, t: u8) -> Vec<LogEntry> {
    sim.log
        .iter()
        .filter(|e| e.from == from && e.transmit.mh_type == t)
        .cloned()
        .collect()
}

/// Send times (seconds since t0, rounded to ms) of those packets.
pub fn send_times(sim: &Sim, from: NodeId, t: u8) -> Vec<f64> {
    sent(sim, from, t)
        .iter()
        .map(|e| ((e.sent - sim.t0()).as_secs_f64() * 1000.0).round() / 1000.0)
        .collect()
}

/// Differences between consecutive values.
pub fn gaps(v: &[f64]) -> Vec<f64> {
    v.windows(2)
        .map(|w| ((w[1] - w[0]) * 1000.0).round() / 1000.0)
        .collect()
}

pub fn parse(bytes: &[u8]) -> MhPacketRepr {
    MhPacketRepr::parse(bytes).unwrap()
}

/// The (sequence, status) of every BA `from` sent.
pub fn ba_statuses(sim: &Sim, from: NodeId) -> Vec<(u16, u8)> {
    sent(sim, from, mh_type::BA)
        .iter()
        .map(|e| match parse(&e.transmit.bytes).mh.message {
            MhMessage::BindingAck(ba) => (ba.sequence, ba.status.to_u8()),
            other => panic!("not a BA: {other:?}"),
        })
        .collect()
}

/// The sequence numbers of every BU `from` sent.
pub fn bu_sequences(sim: &Sim, from: NodeId) -> Vec<u16> {
    sent(sim, from, mh_type::BU)
        .iter()
        .map(|e| match parse(&e.transmit.bytes).mh.message {
            MhMessage::BindingUpdate(bu) => bu.sequence,
            other => panic!("not a BU: {other:?}"),
        })
        .collect()
}

/// The client's current binding for X, if any.
pub fn client_binding(sim: &Sim, cn: NodeId) -> Option<Ipv6Addr> {
    cn_node(sim, cn).cn.cache().coa(addr(CN), addr(HOA))
}

/// Every (sequence number, care-of address) the client accepted, in order.
pub fn accepted_sequences(sim: &Sim, cn: NodeId) -> Vec<(u16, Ipv6Addr)> {
    cn_node(sim, cn)
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            BindingEvent::Added { sequence, coa, .. }
            | BindingEvent::Updated { sequence, coa, .. } => Some((*sequence, *coa)),
            _ => None,
        })
        .collect()
}

/// A Binding Update as a mobile node builds it, with chosen keygen tokens
/// and nonce indices (`care_of = None`: deletion, Kbm from the home token,
/// authenticated over the home address per RFC 6275 6.2.7).
pub fn craft_bu(
    (hoa, coa, cn): (Ipv6Addr, Ipv6Addr, Ipv6Addr),
    seq: u16,
    lifetime: u16,
    home: (&KeygenToken, u16),
    care_of: Option<(&KeygenToken, u16)>,
) -> Vec<u8> {
    let key = kbm(home.0, care_of.map(|c| c.0));
    let auth_address = if care_of.is_some() { coa } else { hoa };
    let mh = MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
        sequence: seq,
        flags: BuFlags::ACK,
        lifetime,
    }))
    .with_option(MobilityOption::NonceIndices {
        home_nonce_index: home.1,
        care_of_nonce_index: care_of.map_or(0, |c| c.1),
    })
    .with_option(MobilityOption::BindingAuthData {
        authenticator: [0; 12],
    });
    MhPacketRepr {
        hao: Some(hoa),
        ..MhPacketRepr::new(coa, cn, mh)
    }
    .to_bytes_with_binding_auth(|i| {
        *bu_authenticator(&key, auth_address, cn, &i.to_vec()).as_bytes()
    })
    .unwrap()
}
