//! The machine's side of the tunnel engine: IAP pins and JAP NAT bindings
//! become [`Action::Table`] updates of the engine's proxy tables, and the
//! engine's per-flow usage comes back (idle expiry, passive health).

use std::time::Instant;

use mip6_anycast::engine::datapath::{
    NatBinding, ProxyEntryKind, ProxyFlow, ProxyUsage, TableUpdate,
};

use super::{Action, Proxy};
use crate::group::GroupAddr;
use crate::iap::FlowKey;

impl Proxy {
    /// The engine flow of an IAP flow key.
    fn engine_flow(key: &FlowKey) -> ProxyFlow {
        ProxyFlow {
            group: key.0.addr,
            group_port: key.0.port,
            proto: key.0.proto,
            client: key.1,
            client_port: key.2,
        }
    }

    /// Turns the IAP's pins and the JAP's NAT changes into table updates.
    pub(super) fn sync_tables(&mut self) {
        let me = self.cfg.me;
        for (key, jap) in self.iap.take_changes() {
            let flow = Self::engine_flow(&key);
            let u = match jap {
                // Pinned to ourselves: the NAT binding carries it.
                Some(j) if j != me => TableUpdate::AddIngressFlow {
                    flow,
                    local: me,
                    jap: j,
                },
                _ => TableUpdate::RemoveIngressFlow { flow },
            };
            self.actions.push_back(Action::Table(u));
        }
        for c in self.jap.take_changes() {
            let u = match c {
                crate::jap::JapChange::Bound { entry, tunnel } => TableUpdate::AddNatBinding {
                    flow: Self::engine_flow(&(entry.group, entry.client, entry.client_port)),
                    binding: NatBinding {
                        target: entry.target,
                        target_port: entry.target_port,
                        nat: self.cfg.nat_addr,
                        nat_port: entry.nat_port,
                        tunnel_from: tunnel.then_some(me),
                    },
                },
                crate::jap::JapChange::Unbound {
                    group,
                    client,
                    client_port,
                } => TableUpdate::RemoveNatBinding {
                    flow: Self::engine_flow(&(group, client, client_port)),
                },
            };
            self.actions.push_back(Action::Table(u));
        }
    }

    /// What the engine forwarded since the last poll
    /// (`EngineHandle::proxy_usage`): pinned flows stay pinned while used,
    /// and the JAP's passive monitoring sees data sent and replies heard.
    pub fn engine_usage(&mut self, now: Instant, usage: &[ProxyUsage]) {
        let mut heard = false;
        for u in usage {
            let Some(group) = GroupAddr::new(u.flow.group, u.flow.group_port, u.flow.proto) else {
                continue;
            };
            let key: FlowKey = (group, u.flow.client, u.flow.client_port);
            match u.kind {
                ProxyEntryKind::Ingress => {
                    if let Some(t) = u.usage.last_used {
                        self.iap.used(&key, t);
                    }
                }
                ProxyEntryKind::Nat => {
                    let to = u.usage.last_used.filter(|_| u.usage.packets > 0);
                    heard |= self.jap.used(&group, key.1, key.2, to, u.usage.last_in);
                }
            }
        }
        if heard {
            let groups: Vec<GroupAddr> = self.jap.groups.keys().copied().collect();
            for g in groups {
                self.report(now, g);
            }
        }
    }
}
