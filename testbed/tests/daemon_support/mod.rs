//! Shared helpers of the daemon namespace tests: the demo topology with
//! short delays and test settings merged into the daemons' configs, a
//! session with per-test output, control commands, echo probes, waiting.
#![allow(dead_code)]

use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mip6_anycast::wire::{ExtChain, Ipv6Packet};
use pcap_file::pcap::PcapReader;
use serde_json::Value;
use testbed::lab::{DaemonOptions, LabOptions, Reaper, find_workspace_binary};
use testbed::scenarios::daemons::wait_for;
use testbed::scenarios::demo::{DEMO_TOPOLOGY, Roles};
use testbed::scenarios::probe::EchoProbe;
use testbed::scenarios::{Session, SessionOptions, place_daemon_files};
use testbed::topology::{DaemonConfig, Topology};

/// Hang guard of every wait.
pub const LIMIT: Duration = Duration::from_secs(20);
/// Poll period of waits.
pub const POLL: Duration = Duration::from_millis(50);

/// The daemon names of the demo topology.
pub const HA: &str = "home-agent-HA";
/// See [`HA`].
pub const K: &str = "contact-node-K";
/// See [`HA`].
pub const C: &str = "mip6-cn-C";

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("daemon-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test output kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A lab name family for this test process and `tag` (letters only).
pub fn family(tag: &str) -> String {
    let mut pid = std::process::id();
    let mut s = String::from("td");
    loop {
        s.push(char::from(b'a' + (pid % 26) as u8));
        pid /= 26;
        if pid == 0 {
            break;
        }
    }
    // Families are at most 12 letters.
    s.extend(
        tag.chars()
            .filter(char::is_ascii_lowercase)
            .take(12 - s.len().min(12)),
    );
    s
}

fn merge(dst: &mut toml::Table, src: toml::Table) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(toml::Value::Table(d)), toml::Value::Table(s)) => merge(d, s),
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// The demo topology with every link delayed `delay_ms` one way and the
/// TOML snippets of `overrides` merged into the named daemons' configs.
pub fn topology(delay_ms: f64, overrides: &[(&str, &str)]) -> Topology {
    let mut t = Topology::from_toml_str(DEMO_TOPOLOGY).expect("demo topology");
    for l in &mut t.links {
        l.delay_ms = Some(delay_ms);
    }
    for (name, text) in overrides {
        let extra: toml::Table = text.parse().expect("override TOML");
        let d = t
            .daemons
            .iter_mut()
            .find(|d| d.name() == *name)
            .unwrap_or_else(|| panic!("no daemon {name}"));
        match &mut d.config {
            Some(DaemonConfig::Inline(tbl)) => merge(tbl, extra),
            _ => panic!("{name} has no inline config"),
        }
    }
    t
}

/// A running lab with the three daemons.
pub struct DaemonLab {
    pub session: Session,
    pub roles: Roles,
    pub out: TempDir,
}

/// Fails with a clear message when the daemon binaries are missing.
pub fn require_binaries() {
    for b in ["home-agent", "contact-node", "mip6-cn"] {
        assert!(
            find_workspace_binary(b).is_some(),
            "daemon binary {b} not found next to the test executable: run `cargo test --workspace` or `cargo build --workspace` first"
        );
    }
}

impl DaemonLab {
    /// Builds the lab of `topo` and starts its daemons; waits for the home
    /// registration.
    pub fn start(tag: &str, mut topo: Topology) -> DaemonLab {
        require_binaries();
        let out = TempDir::new(tag);
        place_daemon_files(&mut topo, out.path());
        let roles = Roles::of(&topo).expect("roles");
        let session = Session::start(
            &topo,
            SessionOptions {
                lab: LabOptions {
                    family: family(tag),
                    out_dir: Some(out.path().to_owned()),
                    reaper: Reaper::Auto,
                    ..Default::default()
                },
                daemons: Some(DaemonOptions::default()),
            },
        )
        .expect("start the lab and its daemons");
        let lab = DaemonLab {
            session,
            roles,
            out,
        };
        lab.wait_registered();
        lab
    }

    pub fn ctl(&self, daemon: &str, cmd: &str) -> Value {
        self.session
            .ctl(daemon, cmd)
            .unwrap_or_else(|e| panic!("{daemon} ctl {cmd}: {e}\n{}", self.log_tail(daemon)))
    }

    pub fn log_tail(&self, daemon: &str) -> String {
        self.session
            .daemon(daemon)
            .map(|p| p.log_tail(30))
            .unwrap_or_default()
    }

    /// Waits until `f` says yes (fails after [`LIMIT`]).
    pub fn eventually(&self, what: &str, f: impl FnMut() -> bool) {
        let mut f = f;
        assert!(
            wait_for(LIMIT, POLL, || f().then_some(())).is_some(),
            "timed out waiting for {what}\n--- K log:\n{}\n--- C log:\n{}\n--- HA log:\n{}",
            self.log_tail(K),
            self.log_tail(C),
            self.log_tail(HA)
        );
    }

    pub fn wait_registered(&self) {
        self.eventually("the home registration", || {
            self.session
                .ctl(K, "status")
                .ok()
                .and_then(|s| s["home_registration"]["registered"].as_bool())
                == Some(true)
        });
    }

    /// C's binding for X: its care-of address and sequence number.
    pub fn client_binding(&self) -> Option<(Ipv6Addr, u64)> {
        let b = self.session.ctl(C, "bindings").ok()?;
        b.as_array()?.iter().find_map(|e| {
            if e["hoa"].as_str()? != self.roles.x.to_string() {
                return None;
            }
            Some((e["coa"].as_str()?.parse().ok()?, e["sequence"].as_u64()?))
        })
    }

    /// K's acknowledged binding at C.
    pub fn k_bound(&self) -> bool {
        self.session
            .ctl(K, "bindings")
            .ok()
            .and_then(|b| b.as_array().cloned())
            .is_some_and(|b| b.iter().any(|e| e["bound"] == true))
    }

    pub fn wait_route_optimized(&self) -> (Ipv6Addr, u64) {
        self.eventually("route optimization", || {
            self.client_binding().is_some() && self.k_bound()
        });
        self.client_binding().expect("binding")
    }

    /// The care-of address of K.
    pub fn k_coa(&self) -> Ipv6Addr {
        "2001:db8:3::10".parse().unwrap()
    }

    pub fn echo_addr(&self) -> SocketAddr {
        SocketAddr::from((self.roles.x, self.roles.echo_port))
    }

    pub fn connect(&self) -> EchoProbe {
        EchoProbe::connect(
            &self.session.lab,
            "C",
            self.echo_addr(),
            Duration::from_secs(5),
        )
        .expect("connect from C to X")
    }

    /// TCP packets and all packets that entered the HA's link so far.
    pub fn ha_link_packets(&self) -> u64 {
        let s = self.session.lab.link_stats("r-ha").expect("r-ha stats");
        s.a_to_b.packets_in + s.b_to_a.packets_in
    }

    pub fn engine(&self, daemon: &str) -> Value {
        self.ctl(daemon, "engine")
    }
}

/// Sum of a JSON object's integer values.
pub fn sum(v: &Value) -> u64 {
    v.as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// (RH2 frames src -> dst carrying `hoa`, HAO frames src -> dst carrying `hoa`).
pub fn rh2_hao_frames(pcap: &Path, c: Ipv6Addr, k: Ipv6Addr, x: Ipv6Addr) -> (usize, usize) {
    let mut r = PcapReader::new(std::fs::File::open(pcap).unwrap()).unwrap();
    let (mut rh2, mut hao) = (0, 0);
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        let Ok(chain) = ExtChain::walk(&p.data) else {
            continue;
        };
        let ip = Ipv6Packet::new_unchecked(&p.data[..]);
        if chain.mh_offset().is_some() {
            continue;
        }
        if chain.rh2().is_some_and(|r| r.home_address == x)
            && (ip.src_addr(), ip.dst_addr()) == (c, k)
        {
            rh2 += 1;
        }
        if chain.hao().is_some_and(|h| h.home_address == x)
            && (ip.src_addr(), ip.dst_addr()) == (k, c)
        {
            hao += 1;
        }
    }
    (rh2, hao)
}
