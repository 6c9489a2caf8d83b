//! `DIR/report.json` of `testbed demo`: the output contract scripts and
//! CI read. The first fields are fixed (see [`DemoReport`]); the rest is
//! detail for people.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::pcap_check::CaptureCheck;

/// External capture checks (`mip6-inspect --strict`, `tshark`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ToolCheck {
    /// Whether the tool ran.
    pub ran: bool,
    /// Whether it found every capture clean.
    pub ok: Option<bool>,
    /// What it said, or why it did not run.
    pub note: String,
}

/// The report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DemoReport {
    /// A TCP connection from the client to X worked while the path went
    /// through the home agent (echo verified, no binding at the client).
    pub tcp_via_home_agent_ok: bool,
    /// The client's binding for X appeared and the contact node's
    /// acknowledged binding too.
    pub route_optimized: bool,
    /// TCP packets on the home agent's links after route optimization
    /// (in the measurement window): 0 when the home agent is out of the path.
    pub packets_via_ha_after_ro: u64,
    /// Median RTT (ms) of 64-byte echoes through the home agent.
    pub rtt_via_ha_ms: Option<f64>,
    /// Median RTT (ms) on the same connection after route optimization.
    pub rtt_ro_ms: Option<f64>,
    /// Binding Updates the client's correspondent agent accepted.
    pub bu_accepted: u64,
    /// What went wrong (empty on success).
    pub errors: Vec<String>,
    /// The client's route optimization datapath: `user` (the
    /// correspondent agent's engine) or `xfrm` (the guest kernel's
    /// `route2` / `hao` states, `--kernel-cn`).
    pub client_datapath: Option<String>,
    /// `--kernel-cn`: the guest's `ip xfrm state` while route-optimized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_xfrm_state: Option<String>,
    /// `--kernel-cn`: the guest (kernel, boot time, `ip xfrm policy`, the
    /// tables after the agent stopped, logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<Value>,

    /// Median RTT (ms) on a new connection after route optimization.
    pub rtt_ro_new_connection_ms: Option<f64>,
    /// RTTs the configured link delays imply: (via HA, route-optimized).
    pub expected_rtt_via_ha_ms: Option<f64>,
    /// See `expected_rtt_via_ha_ms`.
    pub expected_rtt_ro_ms: Option<f64>,
    /// Every sample (ms).
    pub samples_ms: BTreeMap<String, Vec<f64>>,
    /// Timings of the steps (s) and connect times (ms).
    pub timings: BTreeMap<String, f64>,
    /// Home agent link packet counters (both directions, all packets)
    /// in the measurement window.
    pub ha_link_packets_in_window: u64,
    /// The lab's prefix and output directory.
    pub lab: BTreeMap<String, String>,
    /// `ctl status` of each daemon before it stopped.
    pub daemons: BTreeMap<String, Value>,
    /// Exit status of each daemon after SIGTERM.
    pub daemon_exits: BTreeMap<String, String>,
    /// Engine counters of each daemon before it stopped.
    pub engines: BTreeMap<String, Value>,
    /// The project's own checks of each capture.
    pub captures: Vec<CaptureCheck>,
    /// `mip6-inspect --strict` on the captures.
    pub mip6_inspect: ToolCheck,
    /// `tshark` on the captures (no malformed frame).
    pub tshark: ToolCheck,
}

impl DemoReport {
    /// The demo succeeded.
    pub fn passed(&self) -> bool {
        self.tcp_via_home_agent_ok
            && self.route_optimized
            && self.packets_via_ha_after_ro == 0
            && self.errors.is_empty()
    }

    /// Records an error.
    pub fn error(&mut self, e: impl Into<String>) {
        let e = e.into();
        tracing::warn!("demo: {e}");
        self.errors.push(e);
    }
}
