//! Shared helpers of the handoff namespace tests: the handoff lab
//! (`topologies/handoff.toml`) with short delays and test edits, control
//! commands with arguments, handoffs run to completion, test stream
//! clients in C, and the kernels' TCP reset counters.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use mip6_anycast::engine::netns::NetnsWorker;
use mip6_anycast::testsvc::{ClientConfig, Stopped, TestClient};
use serde_json::{Value, json};
use testbed::lab::LabOptions;
use testbed::scenarios::daemons::{ctl_args_at, wait_for};
use testbed::scenarios::{ScenarioBase, Session};
use testbed::topology::Topology;

use crate::daemon_support::{TempDir, family, require_binaries};

/// The handoff lab.
pub const HANDOFF_TOPOLOGY: &str = include_str!("../../topologies/handoff.toml");

/// Daemon names of the handoff lab.
pub const K: &str = "contact-node-K";
/// See [`K`].
pub const A: &str = "contact-node-A";
/// See [`K`].
pub const C: &str = "mip6-cn-C";
/// See [`K`].
pub const HA: &str = "home-agent-HA";

/// The anycast address X.
pub const X: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
/// C's first address.
pub const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
/// K's care-of address.
pub const COA_K: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x10);
/// A's care-of address.
pub const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x10);
/// The stream service's port on X.
pub const STREAM_PORT: u16 = 9000;

/// Hang guard of every wait.
pub const LIMIT: Duration = Duration::from_secs(30);
/// Poll period of waits.
pub const POLL: Duration = Duration::from_millis(20);

/// The member name of a daemon.
pub fn member(daemon: &str) -> &'static str {
    if daemon == K { "K" } else { "A" }
}

/// The handoff topology as TOML with C-R 2 ms and K-A 1 ms one way; `edit`
/// changes it further. With `HANDOFF_TEST_LOG=LEVEL` in the environment
/// the daemons log at that level (logs of a failed test are kept).
pub fn topology(edit: impl FnOnce(&mut toml::Table)) -> Topology {
    let mut t: toml::Table = HANDOFF_TOPOLOGY.parse().expect("handoff topology");
    if let Ok(level) = std::env::var("HANDOFF_TEST_LOG") {
        for d in t["daemon"].as_array_mut().expect("daemons") {
            let mut s = toml::Table::new();
            s.insert("log_level".into(), toml::Value::String(level.clone()));
            if let Some(c) = d.get_mut("config").and_then(toml::Value::as_table_mut) {
                c.insert("daemon".into(), toml::Value::Table(s));
            }
        }
    }
    for l in t["link"].as_array_mut().expect("links") {
        let delay = match l["name"].as_str() {
            Some("c-r") => 2.0,
            Some("k-a") => 1.0,
            _ => continue,
        };
        l.as_table_mut()
            .expect("link")
            .insert("delay_ms".into(), toml::Value::Float(delay));
    }
    edit(&mut t);
    Topology::from_toml_str(&toml::to_string(&t).expect("TOML")).expect("edited topology")
}

/// The daemon entry of `host` in the topology's TOML.
pub fn daemon_config<'a>(t: &'a mut toml::Table, host: &str) -> &'a mut toml::Table {
    t["daemon"]
        .as_array_mut()
        .expect("daemons")
        .iter_mut()
        .find(|d| d["host"].as_str() == Some(host))
        .and_then(|d| d.get_mut("config"))
        .and_then(toml::Value::as_table_mut)
        .expect("daemon config")
}

/// A running handoff lab with a worker in C.
pub struct HandoffLab {
    pub session: Session,
    pub c: NetnsWorker,
    pub out: TempDir,
}

impl HandoffLab {
    /// Builds the lab (no captures), starts the daemons, waits for K's
    /// home registration and the node channel between K and A.
    pub fn start(tag: &str, mut topo: Topology) -> HandoffLab {
        require_binaries();
        let out = TempDir::new(tag);
        let mut base = ScenarioBase::new(out.path());
        base.lab = LabOptions {
            family: family(tag),
            capture: Some(false),
            ..Default::default()
        };
        let session = base.start(&mut topo).expect("start the handoff lab");
        let c = session.lab.worker("C").expect("worker in C");
        let lab = HandoffLab { session, c, out };
        lab.eventually("K's home registration", || {
            lab.session
                .ctl(K, "status")
                .ok()
                .and_then(|s| s["home_registration"]["registered"].as_bool())
                == Some(true)
        });
        for (d, peer) in [(K, "A"), (A, "K")] {
            lab.eventually("the node channel K-A", || {
                lab.session.ctl(d, "group").ok().is_some_and(|g| {
                    g["connected"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|p| p["name"] == peer))
                })
            });
        }
        lab
    }

    pub fn log_tail(&self, daemon: &str) -> String {
        self.session
            .daemon(daemon)
            .map(|p| p.log_tail(40))
            .unwrap_or_default()
    }

    fn logs(&self) -> String {
        [K, A, C]
            .iter()
            .map(|d| format!("--- {d} log:\n{}", self.log_tail(d)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until `f` says yes (fails after [`LIMIT`] with the logs).
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        assert!(
            wait_for(LIMIT, POLL, || f().then_some(())).is_some(),
            "timed out waiting for {what}\n{}",
            self.logs()
        );
    }

    pub fn ctl(&self, daemon: &str, cmd: &str) -> Value {
        self.session
            .ctl(daemon, cmd)
            .unwrap_or_else(|e| panic!("{daemon} ctl {cmd}: {e}\n{}", self.log_tail(daemon)))
    }

    pub fn ctl_args(&self, daemon: &str, cmd: &str, args: Value) -> Result<Value, String> {
        let sock = self.session.control_socket(daemon).expect("control socket");
        ctl_args_at(&sock, cmd, args)
    }

    /// C's binding for X per client address: (care-of address, sequence).
    pub fn bindings(&self) -> HashMap<Ipv6Addr, (Ipv6Addr, u64)> {
        let Ok(b) = self.session.ctl(C, "bindings") else {
            return HashMap::new();
        };
        b.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["hoa"].as_str() == Some(&X.to_string()))
                    .filter_map(|e| {
                        Some((
                            e["cn"].as_str()?.parse().ok()?,
                            (e["coa"].as_str()?.parse().ok()?, e["sequence"].as_u64()?),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until C binds X to `coa` for `client`.
    pub fn wait_bound(&self, client: Ipv6Addr, coa: Ipv6Addr) {
        self.eventually(&format!("{client} bound to {coa}"), || {
            self.bindings().get(&client).map(|b| b.0) == Some(coa)
        });
    }

    /// The clients the coordinator of `daemon` serves.
    pub fn served(&self, daemon: &str) -> Vec<Ipv6Addr> {
        self.session
            .ctl(daemon, "group")
            .ok()
            .and_then(|g| {
                g["clients"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|c| c["client"].as_str()?.parse().ok())
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// Asks `donor` to hand `client` to the other member; retries while
    /// the coordinator is not ready (the client not yet seen, the last
    /// handoff not yet finished). Returns the handoff id.
    pub fn start_handoff(&self, donor: &str, client: Ipv6Addr) -> u64 {
        let to = if donor == K { "A" } else { "K" };
        let args = json!({"client": client.to_string(), "member": to});
        let mut last = String::new();
        let id = wait_for(LIMIT, POLL, || {
            match self.ctl_args(donor, "handoff", args.clone()) {
                Ok(v) => v["id"].as_u64(),
                Err(e) => {
                    last = e;
                    None
                }
            }
        });
        id.unwrap_or_else(|| {
            panic!(
                "{donor} never started handing {client} to {to}: {last}\n{}",
                self.logs()
            )
        })
    }

    /// The events of handoff `id` in `daemon`'s log.
    pub fn events(&self, daemon: &str, id: u64) -> Vec<String> {
        self.session
            .ctl(daemon, "handoffs")
            .ok()
            .and_then(|l| {
                l.as_array().map(|a| {
                    a.iter()
                        .filter(|e| e["id"].as_u64() == Some(id))
                        .filter_map(|e| e["event"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// The connections the donor froze in handoff `id`.
    pub fn frozen_connections(&self, donor: &str, id: u64) -> Option<u64> {
        let log = self.session.ctl(donor, "handoffs").ok()?;
        log.as_array()?
            .iter()
            .find(|e| e["id"].as_u64() == Some(id) && e["event"] == "frozen")?["connections"]
            .as_u64()
    }

    /// Waits until the donor completed handoff `id` (fails at once on a
    /// rollback).
    pub fn wait_completed(&self, donor: &str, id: u64) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let ev = self.events(donor, id);
            assert!(
                !ev.iter().any(|e| e == "rolled_back"),
                "handoff {id} by {donor} rolled back: {ev:?}\n{}",
                self.logs()
            );
            if ev.iter().any(|e| e == "completed") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "handoff {id} by {donor} did not complete: {ev:?}\n{}",
                self.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Hands `client` from `donor` to the other member and waits until the
    /// donor completed and C bound X to the acceptor; returns the id.
    pub fn handoff(&self, donor: &str, client: Ipv6Addr) -> u64 {
        let id = self.start_handoff(donor, client);
        self.wait_completed(donor, id);
        self.wait_bound(client, if donor == K { COA_A } else { COA_K });
        id
    }

    /// Starts a test stream client in C from `src` (any address if
    /// `None`) to `[X]:port`.
    pub fn client(&self, src: Option<Ipv6Addr>, port: u16, cfg: ClientConfig) -> TestClient {
        let dst = SocketAddr::from((X, port));
        let j = self.c.spawn(async move {
            let s = tokio::net::TcpSocket::new_v6()?;
            if let Some(a) = src {
                s.bind(SocketAddr::from((a, 0)))?;
            }
            let stream = tokio::time::timeout(Duration::from_secs(10), s.connect(dst)).await??;
            TestClient::start(stream, cfg).await
        });
        self.c
            .handle()
            .block_on(j)
            .expect("client task")
            .unwrap_or_else(|e| panic!("connecting from {src:?} to {dst}: {e}"))
    }

    /// Stops a client (in C's worker).
    pub fn stop_client(&self, c: TestClient) -> Stopped {
        let j = self.c.spawn(c.stop());
        self.c.handle().block_on(j).expect("stop task")
    }

    /// The TCP counters of `host`'s kernel (`Tcp:` of /proc/net/snmp).
    pub fn tcp_counters(&self, host: &str) -> HashMap<String, u64> {
        let text = self
            .session
            .lab
            .run_in(host, || {
                std::fs::read_to_string("/proc/thread-self/net/snmp")
            })
            .expect("run in host")
            .expect("read snmp");
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
            panic!("no Tcp lines in snmp of {host}");
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
            .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
            .collect()
    }

    /// `OutRsts` and `EstabResets` of C, K and A.
    pub fn resets(&self) -> Resets {
        let get = |h: &str| {
            let c = self.tcp_counters(h);
            (c["OutRsts"], c["EstabResets"])
        };
        Resets {
            c: get("C"),
            k: get("K"),
            a: get("A"),
        }
    }
}

/// (`OutRsts`, `EstabResets`) of C, K and A.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resets {
    pub c: (u64, u64),
    pub k: (u64, u64),
    pub a: (u64, u64),
}

impl Resets {
    /// Asserts that no RST was sent by C, K or A since `before` and that
    /// C's kernel saw no established connection reset. The donors' kernels
    /// count each silent close (`tcp_disconnect` of a frozen socket, no
    /// segment sent) as an `EstabResets`: exactly `closed_k` at K and
    /// `closed_a` at A, nothing else.
    pub fn assert_silent_since(&self, before: &Resets, closed_k: u64, closed_a: u64) {
        let want = Resets {
            c: before.c,
            k: (before.k.0, before.k.1 + closed_k),
            a: (before.a.0, before.a.1 + closed_a),
        };
        assert_eq!(
            *self, want,
            "TCP (OutRsts, EstabResets) of C, K, A: before {before:?}, expected {want:?} \
             ({closed_k} silent closes at K, {closed_a} at A)"
        );
    }
}
