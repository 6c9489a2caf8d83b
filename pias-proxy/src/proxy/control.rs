//! Control messages of the proxy: joins, leaves, creates and handoffs from
//! targets (on a group's address, `CONTROL_PORT`) and the proxy-to-proxy
//! messages (JAP reports, JAP lists, invalidations, affinity, RTTs, group
//! announcements), which arrive sealed under the inter-proxy key.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use super::{Action, Event, Proxy};
use crate::auth;
use crate::group::{GroupAddr, GroupConfig, Policy};
use crate::iap::FlowKey;
use crate::wire::{AckStatus, CONTROL_PORT, MessageRepr, PEER_PORT};

impl Proxy {
    // ----- control messages -----

    /// A UDP control message from `src` to `dst`: a target's message on a
    /// group's address and [`CONTROL_PORT`], or a sealed peer message on
    /// our unicast address and [`PEER_PORT`] (opened with the inter-proxy
    /// key: forged, replayed, stale or mis-sourced datagrams are counted in
    /// `control_drops` under `auth_*`).
    pub fn on_control(
        &mut self,
        now: Instant,
        src: (Ipv6Addr, u16),
        dst: (Ipv6Addr, u16),
        bytes: &[u8],
    ) {
        if dst.1 == PEER_PORT && dst.0 == self.cfg.me {
            return self.on_sealed_peer(now, src.0, bytes);
        }
        if dst.1 != CONTROL_PORT {
            return self.stats.control_drop("wrong_port");
        }
        let msg = match MessageRepr::from_bytes(bytes) {
            Ok(m) => m,
            Err(_) => return self.stats.control_drop("malformed"),
        };
        self.on_target_control(now, src, dst, bytes, msg);
    }

    fn on_sealed_peer(&mut self, now: Instant, from: Ipv6Addr, bytes: &[u8]) {
        let plain = match self.peer_auth.open(now, from, bytes) {
            Ok(p) => p,
            Err(e) => return self.stats.control_drop(e.reason()),
        };
        let msg = match MessageRepr::from_bytes(&plain) {
            Ok(m) => m,
            Err(_) => return self.stats.control_drop("malformed"),
        };
        if let MessageRepr::GroupAnnounce(a) = msg {
            // Authenticated by the key: accepted from a proxy this one
            // does not see live yet (views converge at different times).
            return self.on_group_announce(from, a);
        }
        if !self.ring.contains(&from) {
            return self.stats.control_drop("not_a_live_proxy");
        }
        self.on_peer_control(now, from, msg);
    }

    fn on_target_control(
        &mut self,
        now: Instant,
        src: (Ipv6Addr, u16),
        dst: (Ipv6Addr, u16),
        raw: &[u8],
        msg: MessageRepr,
    ) {
        let (m, join) = match msg {
            MessageRepr::Join(m) => (m, true),
            MessageRepr::Leave(m) => (m, false),
            MessageRepr::Create {
                target,
                port,
                proto,
                nonce,
                uri,
                tag,
            } => {
                return self.on_create(now, src, dst, raw, (target, port, proto, nonce, uri, tag));
            }
            MessageRepr::Handoff {
                group,
                from,
                from_port,
                to,
                to_port,
                nonce,
                tag,
            } => {
                return self.on_handoff(
                    src,
                    dst,
                    raw,
                    group,
                    (from, from_port),
                    (to, to_port),
                    nonce,
                    tag,
                );
            }
            _ => return self.stats.control_drop("not_a_target_message"),
        };
        // Sent to the group's own address, from the target itself.
        if m.group.addr != dst.0 || m.target != src.0 {
            return self.stats.control_drop("address_mismatch");
        }
        let Some(cfg) = self.groups.get(&m.group).cloned() else {
            let ack = MessageRepr::JoinAck {
                group: m.group,
                nonce: m.nonce,
                status: AckStatus::UnknownGroup,
            };
            return self.emit_control(dst, src, &ack);
        };
        let member = self.jap.is_member(&m.group, m.target, m.target_port);
        let status = self
            .admission
            .check(raw, &m, &cfg.credential, &cfg.allow, join && !member);
        if status == AckStatus::Ok {
            if join {
                if self.jap.join(now, &cfg, m.target, m.target_port, m.options) {
                    self.admission.count(m.target, true);
                }
                self.actions
                    .push_back(Action::Event(Event::Joined(m.group, m.target)));
            } else if self.jap.leave(&m.group, m.target, m.target_port) {
                self.admission.count(m.target, false);
                self.actions
                    .push_back(Action::Event(Event::Left(m.group, m.target)));
            }
            self.report(now, m.group);
        } else {
            self.stats.control_drop("admission_refused");
        }
        let ack = MessageRepr::JoinAck {
            group: m.group,
            nonce: m.nonce,
            status,
        };
        self.emit_control(dst, src, &ack);
    }

    /// A leaving target moved its connections to `to` with `tcp-handoff`;
    /// authenticated like a join, both targets must be members here.
    #[allow(clippy::too_many_arguments)]
    fn on_handoff(
        &mut self,
        src: (Ipv6Addr, u16),
        dst: (Ipv6Addr, u16),
        raw: &[u8],
        group: GroupAddr,
        from: (Ipv6Addr, u16),
        to: (Ipv6Addr, u16),
        nonce: u64,
        tag: [u8; 16],
    ) {
        if group.addr != dst.0 || from.0 != src.0 {
            return self.stats.control_drop("address_mismatch");
        }
        let status = match self.groups.get(&group) {
            None => AckStatus::UnknownGroup,
            Some(cfg) => {
                let cred = cfg.credential.clone();
                let st = self
                    .admission
                    .check_signed(raw, group, from.0, nonce, &tag, &cred);
                if st == AckStatus::Ok
                    && !(self.jap.is_member(&group, from.0, from.1)
                        && self.jap.is_member(&group, to.0, to.1))
                {
                    AckStatus::NotAllowed
                } else {
                    st
                }
            }
        };
        if status == AckStatus::Ok {
            let n = self.jap.handoff(&group, from, to);
            self.actions
                .push_back(Action::Event(Event::HandedOff(group, from.0, to.0, n)));
        } else {
            self.stats.control_drop("handoff_refused");
        }
        self.emit_control(
            dst,
            src,
            &MessageRepr::JoinAck {
                group,
                nonce,
                status,
            },
        );
    }

    #[allow(clippy::type_complexity)]
    fn on_create(
        &mut self,
        now: Instant,
        src: (Ipv6Addr, u16),
        dst: (Ipv6Addr, u16),
        raw: &[u8],
        (target, _port, proto, nonce, uri, tag): (Ipv6Addr, u16, u8, u64, String, [u8; 16]),
    ) {
        let nack = |status| MessageRepr::JoinAck {
            group: GroupAddr {
                addr: dst.0,
                port: CONTROL_PORT,
                proto,
            },
            nonce,
            status,
        };
        let Some((_, creator_key)) = self.cfg.block.clone() else {
            return self.emit_control(dst, src, &nack(AckStatus::UnknownGroup));
        };
        if target != src.0 {
            return self.stats.control_drop("address_mismatch");
        }
        if !auth::verify(raw, &tag, &creator_key) {
            return self.emit_control(dst, src, &nack(AckStatus::BadCredential));
        }
        let (last, made) = self.creates.get(&target).copied().unwrap_or((0, 0));
        if nonce <= last && made > 0 {
            return self.emit_control(dst, src, &nack(AckStatus::Replay));
        }
        let Some(assigner) = self.assigner.as_mut() else {
            return;
        };
        let existing = assigner.lookup(&uri, proto);
        if existing.is_none() && made >= self.cfg.max_groups_per_target {
            return self.emit_control(dst, src, &nack(AckStatus::LimitReached));
        }
        let group = match assigner.assign(&uri, proto) {
            Ok(g) => g,
            Err(_) => return self.emit_control(dst, src, &nack(AckStatus::BlockExhausted)),
        };
        self.creates
            .insert(target, (nonce, made + usize::from(existing.is_none())));
        if existing.is_none() {
            // The group's join credential is derived from the creator key
            // and the URI, so the creator can hand it to its targets.
            let credential = auth::tag(&creator_key, uri.as_bytes()).to_vec();
            let cfg = GroupConfig {
                group,
                policy: Policy::default(),
                scope_prefix_len: 64,
                raps: self.cfg.default_raps,
                error_bound_pct: 0,
                credential,
                allow: vec![target],
            };
            self.groups.insert(group, cfg);
            self.dynamic.insert(group, (uri.clone(), self.cfg.me));
            self.announce_group(now, group);
            self.actions
                .push_back(Action::Event(Event::Created(group, uri)));
        }
        self.emit_control(
            dst,
            src,
            &MessageRepr::JoinAck {
                group,
                nonce,
                status: AckStatus::Ok,
            },
        );
    }

    fn on_peer_control(&mut self, now: Instant, from: Ipv6Addr, msg: MessageRepr) {
        match msg {
            MessageRepr::JapUpdate {
                group,
                jap,
                count,
                seq,
                policy,
            } => {
                if jap != from {
                    return self.stats.control_drop("jap_not_sender");
                }
                let out = self.rap.update(now, group, jap, count, seq, policy);
                self.peer_msg(
                    now,
                    from,
                    &MessageRepr::JapUpdateAck {
                        group,
                        seq,
                        bound_pct: out.bound_pct,
                    },
                );
            }
            MessageRepr::JapUpdateAck {
                group,
                seq,
                bound_pct,
            } => {
                if self
                    .pending
                    .get(&(group, from))
                    .is_some_and(|p| p.seq == seq)
                {
                    self.pending.remove(&(group, from));
                }
                self.apply_ack(group, seq, bound_pct);
            }
            MessageRepr::JapQuery { group } => {
                let entries = self.jap_list_for(from, &group);
                self.peer_msg(now, from, &MessageRepr::JapList { group, entries });
            }
            MessageRepr::JapList { group, entries } => {
                if !self.raps(&group).contains(&from) {
                    return self.stats.control_drop("jap_list_not_from_rap");
                }
                let entries: Vec<_> = entries
                    .into_iter()
                    .filter(|e| self.is_live(&e.jap))
                    .collect();
                let n = entries.len();
                self.iap.store(now, group, entries);
                self.actions
                    .push_back(Action::Event(Event::JapListCached(group, n)));
            }
            MessageRepr::TargetsGone { group, jap } => {
                if jap != from {
                    return self.stats.control_drop("jap_not_sender");
                }
                self.iap.targets_gone(&group, &jap);
            }
            MessageRepr::FlowQuery {
                group,
                client,
                client_port,
                id,
            } => {
                let jap = self
                    .iap
                    .peek(&(group, client, client_port))
                    .unwrap_or(Ipv6Addr::UNSPECIFIED);
                self.peer_msg(
                    now,
                    from,
                    &MessageRepr::FlowAnswer {
                        group,
                        client,
                        client_port,
                        id,
                        jap,
                    },
                );
            }
            MessageRepr::RttReport { entries } => {
                for e in entries {
                    if e.peer != from && self.is_live(&e.peer) {
                        self.set_rtt(from, e.peer, Duration::from_micros(u64::from(e.rtt_us)));
                    }
                }
            }
            MessageRepr::FlowAnswer {
                group,
                client,
                client_port,
                id,
                jap,
            } => {
                self.on_flow_answer(now, from, (group, client, client_port), id, jap);
            }
            _ => self.stats.control_drop("not_a_peer_message"),
        }
    }

    fn on_flow_answer(
        &mut self,
        now: Instant,
        from: Ipv6Addr,
        key: FlowKey,
        id: u32,
        jap: Ipv6Addr,
    ) {
        let found = !jap.is_unspecified() && self.is_live(&jap);
        let Some(q) = self.iap.queries.get_mut(&key) else {
            return;
        };
        if q.id != id || !q.waiting.contains(&from) {
            return self.stats.control_drop("unexpected_flow_answer");
        }
        q.waiting.retain(|p| *p != from);
        if !found && !q.waiting.is_empty() {
            return;
        }
        let Some(q) = self.iap.queries.remove(&key) else {
            return;
        };
        if found {
            self.iap.pin(now, key, jap);
            self.actions
                .push_back(Action::Event(Event::AffinityFromPeer(key.0, jap)));
            for p in q.held {
                self.send_to_jap(now, jap, p);
            }
        } else {
            for p in q.held {
                self.select_and_send(now, key, p);
            }
        }
    }
}
