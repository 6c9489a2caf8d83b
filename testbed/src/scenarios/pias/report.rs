//! `pias.json`: the figures issue 6 asks for.

use std::collections::BTreeMap;

use serde::Serialize;

/// One client: who answered, which proxy served it (observed in the
/// routers' captures) and which proxy is nearest (OSPF cost).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientServed {
    /// Client host.
    pub client: String,
    /// Probe marker.
    pub marker: String,
    /// Target that answered.
    pub answered_by: Option<String>,
    /// Proxy whose link the client's packet left the router by.
    pub served_by: Option<String>,
    /// Nearest proxy by OSPF cost.
    pub nearest: String,
    /// `served_by == nearest`.
    pub is_nearest: bool,
}

/// The affinity check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Affinity {
    /// Target answering on the connection before the IAP changed.
    pub before: Option<String>,
    /// ... and after.
    pub after: Option<String>,
    /// R1's route to the anycast address before.
    pub iap_before: String,
    /// ... and after.
    pub iap_after: String,
    /// The new IAP kept the flow through a peer's answer.
    pub peer_answered: bool,
}

/// The graceful leave with a live TCP connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Handoff {
    /// Donor target.
    pub from: String,
    /// Acceptor target.
    pub to: String,
    /// The JAP acknowledged the handoff (its NAT binding moved).
    pub nat_followed: bool,
    /// The donor's leave was acknowledged.
    pub left: bool,
    /// Target answering on the same connection afterwards.
    pub after: Option<String>,
    /// Freeze to live on the acceptor, milliseconds.
    pub handoff_ms: Option<f64>,
    /// The connection carried on at the acceptor.
    pub kept: bool,
}

/// Who carried the data packets: the tunnel engine's proxy tables (every
/// packet after a flow's first) or the proxies' control planes (punted
/// first packets), summed over the proxies' last status files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineCarried {
    /// The engines' datapath mode.
    pub datapath: Option<String>,
    /// IAP: packets encapsulated to their JAP by an ingress flow entry.
    pub ingress_tunnelled: u64,
    /// JAP: packets translated to a target by a NAT binding.
    pub translated_to_target: u64,
    /// JAP: target replies translated back to clients.
    pub replies_translated: u64,
    /// Packets no entry covered, handed to the control plane.
    pub punted: u64,
    /// Packets the control planes sent (first packets, per segment).
    pub control_plane_transmitted: u64,
    /// Table updates an engine refused.
    pub table_errors: u64,
}

/// A target that decapsulates (JAP tunnels instead of NAT).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TunnelTarget {
    /// T1's join with `can_decap` was acknowledged.
    pub joined: bool,
    /// Probes C1 sent to the group.
    pub probes: u32,
    /// Probes T1 answered (its socket is bound to the group's address).
    pub answered: u32,
    /// Packets the proxies' engines sent to targets meanwhile (here:
    /// tunnelled to T1).
    pub jap_tunnelled: u64,
    /// Replies the proxies' engines forwarded to clients meanwhile (here:
    /// decapsulated from T1's tunnel).
    pub jap_replies: u64,
    /// T1's engine decapsulated from the JAP.
    pub target_decapsulated: u64,
    /// T1's engine encapsulated replies to the JAP.
    pub target_encapsulated: u64,
    /// Answers came back and both tunnels carried them.
    pub delivered: bool,
}

/// Bulk TCP through the group against the direct path, one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// iperf3 C1 -> T1's unicast address (same routers, no proxy).
    pub direct_gbit_s: f64,
    /// iperf3 C1 -> the group `AA:5201` (IAP -> JAP -> T1, NAT).
    pub pias_gbit_s: f64,
    /// `pias / direct`.
    pub ratio: f64,
    /// Retransmissions of the PIAS run.
    pub pias_retransmits: u64,
    /// Packets the engines carried during the PIAS run (ingress flow at
    /// the IAP + NAT to the target + replies translated).
    pub engine_packets: u64,
    /// Packets the proxies' control planes sent during the PIAS run.
    pub control_plane_packets: u64,
    /// The iperf3 JSON files.
    pub json: Vec<String>,
}

/// A group created at one proxy, joined through another.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CreatedGroup {
    /// The assigned group.
    pub group: String,
    /// P1 acknowledged the create (and logged it).
    pub created_at_p1: bool,
    /// Status of T2's join while routing took it to P2.
    pub join_status: String,
    /// The proxy whose JAP table then listed T2 for the group.
    pub joined_via: Option<String>,
}

/// The report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PiasReport {
    /// The lab's group.
    pub group: String,
    /// Its RAPs.
    pub raps: Vec<String>,
    /// Milliseconds until every proxy saw all others (SWIM).
    pub swim_converged_ms: Option<f64>,
    /// Milliseconds until every router routed the prefix to its nearest proxy.
    pub ospf_converged_ms: Option<f64>,
    /// Targets T1, T3 joined (acknowledged).
    pub joined: bool,
    /// T3 left (acknowledged).
    pub left: bool,
    /// Targets answering C2's new flows after T3 left.
    pub after_leave_targets: Vec<String>,
    /// Target of C1's first probe.
    pub first_target: Option<String>,
    /// Segments of the first packet (observed).
    pub first_packet_segments: Option<usize>,
    /// Segments of a later packet (observed).
    pub later_packet_segments: Option<usize>,
    /// The first packet's segments.
    pub first_packet_path: Vec<String>,
    /// A later packet's segments.
    pub later_packet_path: Vec<String>,
    /// Per client.
    pub clients: Vec<ClientServed>,
    /// RAP updates for the same churn trace per error bound (percent).
    pub rap_updates: BTreeMap<String, u64>,
    /// Join/leave events in the churn trace.
    pub churn_events: u64,
    /// Affinity while the IAP changes.
    pub affinity_kept: bool,
    /// Its details.
    pub affinity: Affinity,
    /// Graceful leave with a live connection (tcp-handoff).
    pub handoff: Handoff,
    /// Target failover time seen by a client probing every 20 ms.
    pub target_failover_ms: Option<f64>,
    /// Which target to which.
    pub target_failover: Option<String>,
    /// JAP failover time (JAP killed).
    pub jap_failover_ms: Option<f64>,
    /// Which target before and after.
    pub jap_failover: Option<String>,
    /// IAP failover time (IAP killed, IGP reroutes).
    pub proxy_failover_ms: Option<f64>,
    /// Route after.
    pub proxy_failover: Option<String>,
    /// A target that decapsulates.
    pub tunnel_target: Option<TunnelTarget>,
    /// Bulk TCP through PIAS vs the direct path.
    pub throughput: Option<Throughput>,
    /// Who carried the packets (engine tables vs control plane).
    pub engine: EngineCarried,
    /// A created group joined through another proxy than its creator.
    pub created: CreatedGroup,
    /// Capture files, relative to the output directory.
    pub pcaps: Vec<String>,
    /// Errors.
    pub errors: Vec<String>,
}

impl PiasReport {
    /// What issue 6 calls done.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
            && self.first_packet_segments == Some(4)
            && self.later_packet_segments == Some(3)
            && !self.clients.is_empty()
            && self.clients.iter().all(|c| c.is_nearest)
            && self.rap_updates.get("0") > self.rap_updates.get("25")
            && self.rap_updates.get("25") > self.rap_updates.get("50")
            && self.jap_failover_ms.is_some()
            && self.target_failover_ms.is_some()
            && self.affinity_kept
            && self.handoff.kept
            && self.created.joined_via.as_deref() == Some("P2")
            && self.tunnel_target.as_ref().is_none_or(|t| t.delivered)
    }
}
