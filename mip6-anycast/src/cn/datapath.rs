//! The correspondent agent's two datapaths behind one interface: `user`
//! (the tunnel engine: TUN, tc steering, RH2/HAO rewritten in user
//! space; the default, and the only one on kernels without
//! `CONFIG_IPV6_MIP6`) and `xfrm` (the kernel's own `route2` / `hao`
//! states, programmed through NETLINK_XFRM). The signalling stays in user
//! space either way (RR responder, BU verification, binding cache).

use std::collections::HashMap;
use std::net::Ipv6Addr;

use serde::Deserialize;
use serde_json::{Value, json};
use tracing::debug;

use super::kernel::KernelSender;
use crate::daemon::Outbox;
use crate::daemon::system::unix_now;
use crate::engine::datapath::{BindingKey, EngineHandle, SendVia, TableUpdate};
use crate::proto::Transmit;
use crate::xfrm::CorrespondentXfrm;

/// `--datapath` / `correspondent.datapath`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatapathChoice {
    /// `xfrm` if the kernel supports it (probed), else `user`.
    Auto,
    /// The user-space tunnel engine.
    #[default]
    User,
    /// The kernel's XFRM route optimization.
    Xfrm,
}

impl DatapathChoice {
    /// The name on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DatapathChoice::Auto => "auto",
            DatapathChoice::User => "user",
            DatapathChoice::Xfrm => "xfrm",
        }
    }
}

/// Usage of one binding, for the refresh and fallback rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Correspondent address.
    pub cn: Ipv6Addr,
    /// Home address.
    pub hoa: Ipv6Addr,
    /// Packets both ways.
    pub packets: u64,
    /// Of those, received.
    pub packets_in: u64,
    /// Milliseconds since last use (`None`: never used).
    pub idle_ms: Option<u64>,
}

/// The datapath a running agent uses.
#[derive(Debug)]
pub enum CnDatapath {
    /// Tunnel engine.
    User {
        /// The engine.
        engine: EngineHandle,
        /// Packets out through it.
        outbox: Outbox,
    },
    /// Kernel XFRM.
    Xfrm {
        /// States and policies.
        xfrm: CorrespondentXfrm,
        /// Mobility Header packets out.
        sender: KernelSender,
        /// Packets sent.
        sent: u64,
        /// Packets that could not be sent.
        failed: u64,
    },
}

impl CnDatapath {
    /// `user` or `xfrm`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            CnDatapath::User { .. } => "user",
            CnDatapath::Xfrm { .. } => "xfrm",
        }
    }

    /// Programs this node's own addresses (the engine's local address
    /// table; nothing to do for the kernel).
    pub async fn add_local_addresses(&mut self, addresses: &[Ipv6Addr]) -> Result<(), String> {
        match self {
            CnDatapath::User { engine, .. } => {
                let updates = addresses
                    .iter()
                    .map(|a| TableUpdate::AddLocalAddress { addr: *a })
                    .collect();
                engine.update_all(updates).await.map_err(|e| e.to_string())
            }
            CnDatapath::Xfrm { .. } => Ok(()),
        }
    }

    /// Installs or moves the binding (`cn`, `hoa`) -> `coa`.
    pub async fn add_binding(
        &mut self,
        cn: Ipv6Addr,
        hoa: Ipv6Addr,
        coa: Ipv6Addr,
    ) -> Result<(), String> {
        match self {
            CnDatapath::User { engine, .. } => engine
                .update(TableUpdate::AddCorrespondentBinding { cn, hoa, coa })
                .await
                .map_err(|e| e.to_string()),
            CnDatapath::Xfrm { xfrm, .. } => {
                xfrm.add_binding(cn, hoa, coa).map_err(|e| e.to_string())
            }
        }
    }

    /// Removes the binding (`cn`, `hoa`).
    pub async fn remove_binding(&mut self, cn: Ipv6Addr, hoa: Ipv6Addr) -> Result<(), String> {
        match self {
            CnDatapath::User { engine, .. } => engine
                .update(TableUpdate::RemoveCorrespondentBinding { cn, hoa })
                .await
                .map_err(|e| e.to_string()),
            CnDatapath::Xfrm { xfrm, .. } => {
                xfrm.remove_binding(cn, hoa).map_err(|e| e.to_string())
            }
        }
    }

    /// Sends a machine's packet (complete, RH2 in place) directly.
    pub async fn send(&mut self, t: Transmit) {
        match self {
            CnDatapath::User { outbox, .. } => {
                outbox.send(t, Some(SendVia::Direct)).await;
            }
            CnDatapath::Xfrm {
                sender,
                sent,
                failed,
                ..
            } => match sender.send(&t.bytes) {
                Ok(()) => *sent += 1,
                Err(e) => {
                    debug!(error = %e, mh_type = t.mh_type, dst = %t.dst, "send failed");
                    *failed += 1;
                }
            },
        }
    }

    /// (sent, failed) packet counts.
    #[must_use]
    pub fn sent_failed(&self) -> (u64, u64) {
        match self {
            CnDatapath::User { outbox, .. } => (outbox.sent, outbox.failed),
            CnDatapath::Xfrm { sent, failed, .. } => (*sent, *failed),
        }
    }

    /// Usage of every binding the datapath holds.
    pub async fn usage(&mut self) -> Result<Vec<Usage>, String> {
        match self {
            CnDatapath::User { engine, .. } => {
                let stats = engine.stats().await.map_err(|e| e.to_string())?;
                Ok(stats
                    .bindings
                    .iter()
                    .filter_map(|b| match b.key {
                        BindingKey::Correspondent { cn, hoa } => Some(Usage {
                            cn,
                            hoa,
                            packets: b.packets,
                            packets_in: b.packets_in,
                            idle_ms: b.idle_ms,
                        }),
                        _ => None,
                    })
                    .collect())
            }
            CnDatapath::Xfrm { xfrm, .. } => {
                let now_s = unix_now().as_secs();
                let keys: Vec<_> = xfrm.bindings().keys().copied().collect();
                let mut out = Vec::with_capacity(keys.len());
                for (cn, hoa) in keys {
                    let u = xfrm.usage(cn, hoa).map_err(|e| e.to_string())?;
                    out.push(Usage {
                        cn,
                        hoa,
                        packets: u.packets_out.saturating_add(u.packets_in),
                        packets_in: u.packets_in,
                        idle_ms: u
                            .last_used
                            .map(|t| now_s.saturating_sub(t).saturating_mul(1000)),
                    });
                }
                Ok(out)
            }
        }
    }

    /// `ctl engine` for the `xfrm` datapath: the bindings in the kernel and
    /// their counters (the user datapath's engine answers it itself).
    pub async fn describe(&mut self) -> Value {
        let usage = self.usage().await;
        let bindings: HashMap<_, _> = match self {
            CnDatapath::Xfrm { xfrm, .. } => xfrm.bindings().clone(),
            CnDatapath::User { .. } => HashMap::new(),
        };
        let (sent, failed) = self.sent_failed();
        let mut rows: Vec<Value> = match usage {
            Ok(u) => u
                .iter()
                .map(|u| {
                    json!({
                        "cn": u.cn, "hoa": u.hoa,
                        "coa": bindings.get(&(u.cn, u.hoa)),
                        "packets": u.packets, "packets_in": u.packets_in,
                        "idle_ms": u.idle_ms,
                    })
                })
                .collect(),
            Err(e) => vec![json!({ "error": e })],
        };
        rows.sort_by_key(Value::to_string);
        json!({ "datapath": self.kind(), "bindings": rows, "sent": sent, "send_failed": failed })
    }
}
