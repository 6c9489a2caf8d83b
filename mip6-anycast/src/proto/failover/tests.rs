//! The failover rules, driven on a simulated clock with a message
//! network whose members can be stopped (killed or frozen) and cut off.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::crypto::Spi;

const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);

fn id(s: &str) -> MemberId {
    MemberId::new(s).unwrap()
}

fn snapshot(seq: u16) -> ContactSnapshot {
    ContactSnapshot {
        contact_coa: "2001:db8:3::10".parse().unwrap(),
        key: RegistrationKey::new(Spi(4242), &[7; 20]).unwrap(),
        next_key: None,
        home_next_sequence: seq,
        clients: vec![ClientRecord {
            cn: "2001:db8:1::2".parse().unwrap(),
            next_sequence: 77,
            home_token: Some(crate::proto::ExportedToken {
                token: [1; 8],
                nonce_index: 3,
                age: Duration::from_millis(1500),
            }),
            served_by: id("K"),
            bound: true,
        }],
    }
}

/// Members exchanging messages with a fixed one-way delay.
struct Net {
    t0: Instant,
    now: Instant,
    nodes: BTreeMap<MemberId, Failover>,
    /// Stopped members neither run timers nor receive (kill / freeze;
    /// messages to a frozen member queue up and arrive when it thaws).
    stopped: BTreeSet<MemberId>,
    /// Killed members: what is sent to them is lost.
    dead: BTreeSet<MemberId>,
    /// Member pairs that cannot talk.
    cut: BTreeSet<(MemberId, MemberId)>,
    in_flight: Vec<(Instant, MemberId, MemberId, Vec<u8>)>,
    events: Vec<(Duration, MemberId, FailoverEvent)>,
    delay: Duration,
}

impl Net {
    fn new(members: &[&str], succession: &[&str]) -> Self {
        let t0 = Instant::now();
        let all: Vec<MemberId> = members.iter().map(|m| id(m)).collect();
        let succ: Vec<MemberId> = succession.iter().map(|m| id(m)).collect();
        let nodes = all
            .iter()
            .map(|m| {
                let cfg = FailoverConfig::new(m.clone(), HOA, succ.clone(), all.clone());
                (m.clone(), Failover::new(cfg, t0))
            })
            .collect();
        Net {
            t0,
            now: t0,
            nodes,
            stopped: BTreeSet::new(),
            dead: BTreeSet::new(),
            cut: BTreeSet::new(),
            in_flight: Vec::new(),
            events: Vec::new(),
            delay: Duration::from_millis(2),
        }
    }

    fn drain(&mut self, m: &MemberId) {
        let now = self.now;
        let node = self.nodes.get_mut(m).unwrap();
        while let Some(a) = node.poll_action() {
            match a {
                FailoverAction::Send { to, msg } => {
                    self.in_flight
                        .push((now + self.delay, m.clone(), to, msg.to_bytes()));
                }
                FailoverAction::Event(e) => self.events.push((now - self.t0, m.clone(), e)),
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let step = Duration::from_millis(1);
        while self.now < end {
            self.now += step;
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) = self
                .in_flight
                .drain(..)
                .partition(|(t, _, to, _)| *t <= now && !self.stopped.contains(to));
            self.in_flight = later;
            let dead = self.dead.clone();
            self.in_flight.retain(|(_, _, to, _)| !dead.contains(to));
            for (_, from, to, bytes) in due {
                if self.cut.contains(&(from.clone(), to.clone()))
                    || self.cut.contains(&(to.clone(), from.clone()))
                {
                    continue;
                }
                let msg = FailoverMsg::parse(&bytes).unwrap();
                self.nodes
                    .get_mut(&to)
                    .unwrap()
                    .handle_message(now, &from, msg);
                self.drain(&to);
            }
            let names: Vec<MemberId> = self.nodes.keys().cloned().collect();
            for m in names {
                if self.stopped.contains(&m) {
                    continue;
                }
                let node = self.nodes.get_mut(&m).unwrap();
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
                self.drain(&m);
            }
        }
    }

    /// Kill: the member and everything sent to it is gone.
    fn kill(&mut self, m: &str) {
        self.stopped.insert(id(m));
        self.dead.insert(id(m));
    }

    fn thaw(&mut self, m: &str) {
        self.stopped.remove(&id(m));
    }

    /// A fresh process for `m` (restart after a crash).
    fn restart(&mut self, m: &str) {
        let cfg = self.nodes[&id(m)].config().clone();
        self.nodes.insert(id(m), Failover::new(cfg, self.now));
        self.stopped.remove(&id(m));
        self.dead.remove(&id(m));
    }

    fn isolate(&mut self, m: &str) {
        for other in self.nodes.keys() {
            if *other != id(m) {
                self.cut.insert((id(m), other.clone()));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn takeovers(&self) -> Vec<(MemberId, u64)> {
        self.events
            .iter()
            .filter_map(|(_, m, e)| match e {
                FailoverEvent::BecomeContact {
                    epoch,
                    takeover: true,
                } => Some((m.clone(), *epoch)),
                _ => None,
            })
            .collect()
    }

    fn role(&self, m: &str) -> Role {
        self.nodes[&id(m)].role()
    }

    fn contacts(&self) -> Vec<MemberId> {
        self.nodes
            .iter()
            .filter(|(m, n)| n.role() == Role::Contact && !self.stopped.contains(*m))
            .map(|(m, _)| m.clone())
            .collect()
    }
}

fn started() -> Net {
    let mut net = Net::new(&["K", "A", "B", "C"], &["K", "A", "B"]);
    net.run_for(Duration::from_millis(50));
    assert_eq!(
        net.role("K"),
        Role::Contact,
        "K starts as soon as it hears the group"
    );
    net.nodes
        .get_mut(&id("K"))
        .unwrap()
        .set_snapshot(net.now, snapshot(1000));
    net.drain(&id("K"));
    net.run_for(Duration::from_millis(50));
    net
}

#[test]
fn configured_contact_starts_and_backups_hold_its_state() {
    let net = started();
    assert!(net.takeovers().is_empty());
    for b in ["A", "B"] {
        let (s, _) = net.nodes[&id(b)].snapshot().expect("replicated");
        assert_eq!(s, &snapshot(1000));
        assert_eq!(net.role(b), Role::Backup);
    }
    assert_eq!(net.role("C"), Role::Member);
    assert!(
        net.nodes[&id("C")].snapshot().is_none(),
        "only backups get the key"
    );
    let k = &net.nodes[&id("K")];
    assert!(k.backups_hold(net.now, k.snapshot().unwrap().1));
}

#[test]
fn a_dead_contact_is_replaced_by_exactly_one_backup() {
    let mut net = started();
    net.kill("K");
    let killed = net.now - net.t0;
    net.run_for(Duration::from_millis(1000));
    let t = net.takeovers();
    assert_eq!(t, vec![(id("A"), 1)], "exactly the first backup takes over");
    let (at, _, _) = net
        .events
        .iter()
        .find(|(_, m, e)| *m == id("A") && matches!(e, FailoverEvent::BecomeContact { .. }))
        .unwrap();
    let dead_after = net.nodes[&id("A")].config().dead_after;
    let heartbeat = net.nodes[&id("A")].config().heartbeat;
    assert!(
        *at - killed >= dead_after - heartbeat,
        "not before dead_after"
    );
    assert_eq!(net.contacts(), vec![id("A")]);
    for m in ["B", "C"] {
        assert_eq!(net.nodes[&id(m)].contact(), Some(&id("A")));
        assert_eq!(net.nodes[&id(m)].epoch(), 1);
    }
    // The new contact replicates to the remaining backups (newer epoch).
    net.nodes
        .get_mut(&id("A"))
        .unwrap()
        .set_snapshot(net.now, snapshot(2100));
    net.drain(&id("A"));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.nodes[&id("B")].snapshot().unwrap().0, &snapshot(2100));
}

#[test]
fn the_second_backup_takes_over_when_the_first_is_dead_too() {
    // Five members: three left are still a majority.
    let mut net = Net::new(&["K", "A", "B", "C", "D"], &["K", "A", "B"]);
    net.run_for(Duration::from_millis(100));
    net.kill("A");
    net.run_for(Duration::from_millis(500));
    assert!(net.takeovers().is_empty(), "a dead backup changes nothing");
    net.kill("K");
    net.run_for(Duration::from_millis(1000));
    assert_eq!(net.takeovers(), vec![(id("B"), 1)]);
    assert_eq!(net.contacts(), vec![id("B")]);
}

#[test]
fn a_frozen_contact_that_thaws_steps_down_and_does_not_steal_back() {
    let mut net = started();
    net.stopped.insert(id("K")); // SIGSTOP: messages to it queue up
    net.run_for(Duration::from_millis(1000));
    assert_eq!(net.takeovers(), vec![(id("A"), 1)]);
    net.thaw("K");
    net.run_for(Duration::from_millis(1000));
    assert_eq!(net.contacts(), vec![id("A")], "A keeps X");
    assert_eq!(net.role("K"), Role::Backup);
    assert!(
        net.events.iter().any(|(_, m, e)| *m == id("K")
            && matches!(e, FailoverEvent::StepDown { contact: Some(c), .. } if *c == id("A"))),
        "K stepped down in favour of A"
    );
    // And K is now A's backup: it gets A's state.
    net.nodes
        .get_mut(&id("A"))
        .unwrap()
        .set_snapshot(net.now, snapshot(3000));
    net.drain(&id("A"));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.nodes[&id("K")].snapshot().unwrap().0, &snapshot(3000));
}

#[test]
fn a_restarted_contact_becomes_a_backup_of_the_new_one() {
    let mut net = started();
    net.kill("K");
    net.run_for(Duration::from_millis(1000));
    net.restart("K");
    let restarted = net.now - net.t0;
    net.events.clear();
    net.run_for(Duration::from_millis(1000));
    assert_eq!(net.role("K"), Role::Backup);
    assert_eq!(net.contacts(), vec![id("A")]);
    assert!(
        !net.events.iter().any(|(t, m, e)| *m == id("K")
            && matches!(e, FailoverEvent::BecomeContact { .. })
            && *t >= restarted),
        "the restarted K never registers"
    );
}

#[test]
fn an_isolated_backup_without_quorum_does_not_take_over() {
    let mut net = started();
    net.isolate("A");
    net.run_for(Duration::from_millis(1000));
    assert!(net.takeovers().is_empty(), "{:?}", net.takeovers());
    assert_eq!(net.contacts(), vec![id("K")]);
    net.heal();
    net.run_for(Duration::from_millis(300));
    assert_eq!(net.nodes[&id("A")].contact(), Some(&id("K")));
}

#[test]
fn an_isolated_contact_loses_x_and_steps_down_when_the_partition_heals() {
    let mut net = started();
    net.isolate("K");
    net.run_for(Duration::from_millis(1000));
    assert_eq!(net.takeovers(), vec![(id("A"), 1)]);
    net.heal();
    net.run_for(Duration::from_millis(300));
    assert_eq!(net.contacts(), vec![id("A")]);
    assert_eq!(net.role("K"), Role::Backup);
}

#[test]
fn an_overtaken_contact_holds_down() {
    let mut net = started();
    // The home agent answers K's refresh with 135 while the group is
    // silent (K cut off): K steps down and may not take over at once.
    net.isolate("K");
    let now = net.now;
    net.nodes.get_mut(&id("K")).unwrap().overtaken(now);
    net.drain(&id("K"));
    net.run_for(Duration::from_millis(1000));
    assert_eq!(net.role("K"), Role::Backup);
    assert!(
        !net.takeovers().iter().any(|(m, _)| *m == id("K")),
        "no takeover during the hold-down"
    );
}

#[test]
fn messages_for_other_addresses_or_from_strangers_are_dropped() {
    let mut net = started();
    let now = net.now;
    let k = net.nodes.get_mut(&id("A")).unwrap();
    let before = k.stats().dropped;
    let stranger = FailoverMsg::Heartbeat {
        hoa: HOA,
        epoch: 9,
        contact: id("Z"),
        is_contact: true,
        held: 0,
    };
    k.handle_message(now, &id("Z"), stranger);
    let other = FailoverMsg::Heartbeat {
        hoa: "2001:db8:100::2".parse().unwrap(),
        epoch: 9,
        contact: id("B"),
        is_contact: true,
        held: 0,
    };
    k.handle_message(now, &id("B"), other);
    // A State from a backup (not the contact) is not taken.
    let forged = FailoverMsg::State {
        hoa: HOA,
        epoch: 0,
        version: 99,
        snapshot: Box::new(snapshot(1)),
    };
    k.handle_message(now, &id("B"), forged);
    assert_eq!(k.stats().dropped, before + 3);
    assert_eq!(k.contact(), Some(&id("K")));
    assert_eq!(k.snapshot().unwrap().0.home_next_sequence, 1000);
}

#[test]
fn codec_round_trips_and_rejects_damage() {
    let msgs = [
        FailoverMsg::Heartbeat {
            hoa: HOA,
            epoch: 3,
            contact: id("K"),
            is_contact: true,
            held: 1 << 41,
        },
        FailoverMsg::State {
            hoa: HOA,
            epoch: 3,
            version: 5,
            snapshot: Box::new(ContactSnapshot {
                next_key: Some(RegistrationKey::new(Spi(4243), &[9; 32]).unwrap()),
                ..snapshot(65535)
            }),
        },
    ];
    for m in msgs {
        let b = m.to_bytes();
        assert_eq!(FailoverMsg::parse(&b).unwrap(), m);
        for n in 0..b.len() {
            assert!(FailoverMsg::parse(&b[..n]).is_err(), "truncated at {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(FailoverMsg::parse(&long).is_err());
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0xff;
            let _ = FailoverMsg::parse(&x); // never panics
        }
    }
    // A client count larger than the octets present allocates nothing.
    let mut b = msgs_state_with_count(u32::MAX);
    assert!(FailoverMsg::parse(&b).is_err());
    b.truncate(3);
    assert!(FailoverMsg::parse(&b).is_err());
}

fn msgs_state_with_count(count: u32) -> Vec<u8> {
    let m = FailoverMsg::State {
        hoa: HOA,
        epoch: 0,
        version: 1,
        snapshot: Box::new(ContactSnapshot {
            clients: Vec::new(),
            ..snapshot(1)
        }),
    };
    let mut b = m.to_bytes();
    let n = b.len();
    b[n - 4..].copy_from_slice(&count.to_be_bytes());
    b
}

#[test]
fn registration_key_debug_is_redacted() {
    let k = RegistrationKey::new(Spi(1), b"very secret key").unwrap();
    assert!(!format!("{k:?}").contains("very"));
    assert!(RegistrationKey::new(Spi(1), &[]).is_err());
}

#[test]
fn a_late_starting_contact_is_waited_for_and_not_replaced() {
    // K's daemon starts a second after the others (a loaded machine):
    // the backups wait `start_hold` for a contact never heard, K hears
    // the group still at epoch 0 and registers; nobody takes over.
    let mut net = Net::new(&["K", "A", "B"], &["K", "A", "B"]);
    net.stopped.insert(id("K"));
    net.run_for(Duration::from_millis(1000));
    net.thaw("K");
    net.restart("K");
    net.run_for(Duration::from_millis(500));
    assert!(net.takeovers().is_empty(), "{:?}", net.takeovers());
    assert_eq!(net.contacts(), vec![id("K")]);
    // A configured contact that never comes is replaced after start_hold.
    let mut net = Net::new(&["K", "A", "B"], &["K", "A", "B"]);
    net.kill("K");
    net.run_for(Duration::from_millis(2000));
    assert!(
        net.takeovers().is_empty(),
        "before start_hold: {:?}",
        net.takeovers()
    );
    net.run_for(Duration::from_millis(2000));
    assert_eq!(net.takeovers(), vec![(id("A"), 1)]);
}
