//! `DIR/bench.json` of `testbed bench`: absolute figures per path and
//! the ratios to the direct path, all from one run on one lab.

use std::collections::BTreeMap;

use serde::Serialize;

use super::iperf::IperfResult;

/// One TCP measurement with its CPU cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// iperf3's figures.
    #[serde(flatten)]
    pub iperf: IperfResult,
    /// Busy CPU seconds of the whole machine per gigabyte moved.
    pub machine_cpu_s_per_gb: Option<f64>,
    /// CPU seconds of the lab's mip6-anycast daemons per gigabyte moved.
    pub daemons_cpu_s_per_gb: Option<f64>,
    /// Packets the home agent's engine read during the measurement.
    pub ha_engine_packets: Option<u64>,
}

/// One path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathResult {
    /// What the path is.
    pub description: String,
    /// The address the client sent to.
    pub target: String,
    /// Median RTT of ICMPv6 echoes (ms).
    pub rtt_ms: Option<f64>,
    /// The RTT samples (ms).
    pub rtt_samples_ms: Vec<f64>,
    /// Per stream count ("1", "4").
    pub tcp: BTreeMap<String, Throughput>,
}

/// The report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    /// Route-optimized / direct TCP throughput, one stream.
    pub ro_ratio: Option<f64>,
    /// Through the home agent / direct, one stream.
    pub ha_ratio: Option<f64>,
    /// Kernel forwarding through the router / direct, one stream.
    pub forward_ratio: Option<f64>,
    /// Through the home agent / kernel forwarding, one stream.
    pub ha_to_forward_ratio: Option<f64>,
    /// The same ratios for every stream count measured: `ratios[n][name]`.
    pub ratios: BTreeMap<String, BTreeMap<String, f64>>,
    /// The datapath modes the engines chose (`raw`, `tun-offload`,
    /// `tun-offload+bpf-tunnel`; the distinct ones joined by `, ` when the
    /// daemons differ, e.g. the correspondent has no tunnel to put in BPF;
    /// absent if none answered).
    pub datapath: Option<String>,
    /// Per daemon: the datapath mode its engine reported.
    pub datapaths: BTreeMap<String, String>,
    /// Per path: `direct`, `kernel_forward`, `home_agent`, `route_optimized`.
    pub paths: BTreeMap<String, PathResult>,
    /// The client's binding for X existed during the route-optimized
    /// measurement and not before.
    pub route_optimized_checked: bool,
    /// Seconds per iperf3 run.
    pub seconds: f64,
    /// Stream counts measured.
    pub streams: Vec<u32>,
    /// The lab (prefix, output directory).
    pub lab: BTreeMap<String, String>,
    /// What went wrong (empty on success).
    pub errors: Vec<String>,
}

impl BenchReport {
    /// Notes an error.
    pub fn error(&mut self, e: impl Into<String>) {
        self.errors.push(e.into());
    }

    /// Whether every path was measured and nothing went wrong.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.ro_ratio.is_some() && self.ha_ratio.is_some()
    }

    /// Gbit/s of `path` with `streams` streams.
    pub fn gbit_s(&self, path: &str, streams: u32) -> Option<f64> {
        let t = self.paths.get(path)?.tcp.get(&streams.to_string())?;
        (t.iperf.gbit_s > 0.0).then_some(t.iperf.gbit_s)
    }

    /// Records the engines' datapath modes and the common one.
    pub fn set_datapaths(&mut self, modes: BTreeMap<String, String>) {
        let distinct: std::collections::BTreeSet<&str> =
            modes.values().map(String::as_str).collect();
        self.datapath =
            (!distinct.is_empty()).then(|| distinct.into_iter().collect::<Vec<_>>().join(", "));
        self.datapaths = modes;
    }

    /// Fills the ratio fields from the paths.
    pub fn compute_ratios(&mut self) {
        let pairs = [
            ("ro_ratio", "route_optimized", "direct"),
            ("ha_ratio", "home_agent", "direct"),
            ("forward_ratio", "kernel_forward", "direct"),
            ("ha_to_forward_ratio", "home_agent", "kernel_forward"),
        ];
        for &n in &self.streams.clone() {
            let mut m = BTreeMap::new();
            for (name, num, den) in pairs {
                if let (Some(a), Some(b)) = (self.gbit_s(num, n), self.gbit_s(den, n)) {
                    m.insert(name.to_string(), a / b);
                }
            }
            self.ratios.insert(n.to_string(), m);
        }
        let one = self.ratios.get("1").cloned().unwrap_or_default();
        self.ro_ratio = one.get("ro_ratio").copied();
        self.ha_ratio = one.get("ha_ratio").copied();
        self.forward_ratio = one.get("forward_ratio").copied();
        self.ha_to_forward_ratio = one.get("ha_to_forward_ratio").copied();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(g1: f64, g4: f64) -> PathResult {
        let mut p = PathResult::default();
        for (n, g) in [(1, g1), (4, g4)] {
            let mut t = Throughput::default();
            t.iperf.gbit_s = g;
            p.tcp.insert(n.to_string(), t);
        }
        p
    }

    #[test]
    fn ratios_are_to_the_direct_path_in_the_same_report() {
        let mut r = BenchReport {
            streams: vec![1, 4],
            ..Default::default()
        };
        r.paths.insert("direct".into(), path(40.0, 44.0));
        r.paths.insert("kernel_forward".into(), path(20.0, 22.0));
        r.paths.insert("home_agent".into(), path(4.0, 11.0));
        r.paths.insert("route_optimized".into(), path(8.0, 0.0));
        r.compute_ratios();
        assert_eq!(r.ro_ratio, Some(0.2));
        assert_eq!(r.ha_ratio, Some(0.1));
        assert_eq!(r.forward_ratio, Some(0.5));
        assert_eq!(r.ha_to_forward_ratio, Some(0.2));
        assert_eq!(r.ratios["4"]["ha_ratio"], 0.25);
        // A path without a figure has no ratio (not a zero).
        assert!(!r.ratios["4"].contains_key("ro_ratio"));
        assert!(!r.passed() || r.errors.is_empty());
    }

    #[test]
    fn datapath_names_the_common_mode() {
        let mut r = BenchReport::default();
        let m = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        r.set_datapaths(m(&[("C", "tun-offload"), ("K", "tun-offload")]));
        assert_eq!(r.datapath.as_deref(), Some("tun-offload"));
        r.set_datapaths(m(&[
            ("C", "tun-offload"),
            ("K", "tun-offload+bpf-tunnel"),
            ("HA", "tun-offload"),
        ]));
        assert_eq!(
            r.datapath.as_deref(),
            Some("tun-offload, tun-offload+bpf-tunnel")
        );
        r.set_datapaths(BTreeMap::new());
        assert_eq!(r.datapath, None);
    }
}
