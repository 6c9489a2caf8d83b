//! Handoffs that fail (DESIGN.md 5, the coordinator's module docs): a
//! crashed acceptor before and after the commit point, failures of the
//! shell on either side, a refusing acceptor; and a drain of 20 clients.
//! Throughout, no packet of the client reaches a kernel without its socket
//! (except, by design, after a committed acceptor died: the contact node
//! resets the lost connections at once).

mod handoff_common;

use std::net::Ipv6Addr;
use std::time::Duration;

use handoff_common::*;
use mip6_anycast::proto::handoff::{AbortReason, HandoffEvent, Policy, RejectReason};
use mip6_anycast::proto::{BindingEvent, seq_newer};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn bind_to_contact(g: &mut Group, c: Ipv6Addr) {
    let coa = member_coa(0);
    g.at("k", |n, now| n.mn.register(now, c, coa));
    g.sim.run_for(secs(1));
    assert_eq!(g.binding(c), Some(coa));
}

fn rolled_back(g: &Group, m: &str) -> Vec<AbortReason> {
    g.node(m)
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            HandoffEvent::RolledBack { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn sequences_increase(g: &Group, c: Ipv6Addr) {
    let seqs: Vec<u16> = g
        .correspondent()
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            BindingEvent::Added { cn, sequence, .. }
            | BindingEvent::Updated { cn, sequence, .. }
                if *cn == c =>
            {
                Some(*sequence)
            }
            _ => None,
        })
        .collect();
    for w in seqs.windows(2) {
        assert!(seq_newer(w[1], w[0]), "{seqs:?}");
    }
}

/// The donor's state after a rollback: connections live, delivering.
fn assert_back_at_contact(g: &Group, c: Ipv6Addr) {
    let k = g.node("k");
    assert_eq!(k.sockets.get(&c), Some(&Sockets::Live));
    assert_eq!(
        k.modes.get(&c).copied().unwrap_or(Mode::Deliver),
        Mode::Deliver
    );
    assert!(k.co.clients().any(|(x, _)| x == c));
    assert_eq!(k.co.in_progress(), (0, 0));
    assert_eq!(g.binding(c), Some(member_coa(0)));
}

#[test]
fn acceptor_crash_before_commit_donor_rolls_back_after_silence() {
    let mut g = Group::new(&["k", "a"], 1, LAT, 10);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    g.handoff("k", c, "a");
    // A dies right after its Accept left (before its CoTI came back).
    g.run_checked(ms(6), &[c]);
    g.at("a", |n, _| n.crashed = true);
    // Nobody tells K: Bound never comes (bind_timeout 10 s), its Cancel
    // goes unanswered (abort_timeout 5 s), then it rolls back alone.
    g.run_checked(secs(14), &[c]);
    assert!(rolled_back(&g, "k").is_empty(), "not before the timeouts");
    assert!(g.node("k").sent.iter().any(|s| s.2 == "cancel"));
    g.run_checked(secs(3), &[c]);
    assert_eq!(rolled_back(&g, "k"), [AbortReason::PeerDead]);
    assert_back_at_contact(&g, c);
    sequences_increase(&g, c);
}

#[test]
fn acceptor_down_notice_shortens_the_rollback() {
    let mut g = Group::new(&["k", "a"], 1, LAT, 11);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    g.handoff("k", c, "a");
    g.run_checked(ms(12), &[c]);
    g.at("a", |n, _| n.crashed = true);
    // The channel reports A down: K cancels and waits abort_timeout only.
    let a = name("a");
    g.at("k", |n, now| n.co.peer_down(now, &mut n.mn, &a));
    g.run_checked(secs(6), &[c]);
    assert_eq!(rolled_back(&g, "k"), [AbortReason::PeerDead]);
    assert_back_at_contact(&g, c);
}

#[test]
fn acceptor_crash_after_commit_client_falls_back_to_the_home_path() {
    let mut g = Group::new(&["k", "a"], 1, LAT, 12);
    let c = client(0);
    g.serve("k", c);
    g.handoff("k", c, "a");
    g.run_checked(secs(2), &[c]);
    assert_eq!(g.binding(c), Some(member_coa(1)));
    g.at("a", |n, _| n.crashed = true);
    let a = name("a");
    g.at("k", |n, now| n.co.peer_down(now, &mut n.mn, &a));
    g.sim.run_for(secs(2));
    // K deleted the client's binding (de-registration over the home path)
    // and stopped forwarding to the dead member.
    let recovered: Vec<_> = g
        .node("k")
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            HandoffEvent::ClientsRecovered { member, clients } => {
                Some((member.clone(), clients.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(recovered, [(name("a"), vec![c])]);
    assert_eq!(
        g.binding(c),
        None,
        "binding deleted: packets take the home path"
    );
    assert_eq!(g.node("k").modes.get(&c), None);
    assert_eq!(g.node("k").co.placement(c), None);
    assert_eq!(g.node("k").co.stats().recovered, 1);
    // The connections lived only at A: K's kernel resets them at once
    // (instead of a silent timeout), and new connections work through K.
    assert_eq!(g.reset_target(c), Err(name("k")));
    sequences_increase(&g, c);
}

#[test]
fn restore_failure_at_the_acceptor_rolls_back() {
    let mut g = Group::new(&["k", "a"], 1, LAT, 13);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    g.at("a", |n, _| n.faults.restore = true);
    g.handoff("k", c, "a");
    g.run_checked(secs(2), &[c]);
    assert_eq!(rolled_back(&g, "k"), [AbortReason::RestoreFailed]);
    assert_eq!(g.node("a").co.stats().accept_aborted, 1);
    // A held the client's packets until K's Done, then returns them.
    assert!(g.node("k").sent.iter().any(|s| s.2 == "done"));
    assert_eq!(
        g.node("a").modes.get(&c),
        Some(&Mode::Forward(member_coa(0)))
    );
    assert_back_at_contact(&g, c);
    sequences_increase(&g, c);
}

#[test]
fn activate_failure_after_the_client_bound_to_the_acceptor_moves_it_back() {
    let mut g = Group::new(&["k", "a"], 1, LAT, 14);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    g.at("a", |n, _| n.faults.activate = true);
    g.handoff("k", c, "a");
    // The client binds to A, A fails to go live: it forwards everything
    // back to K, which re-registers with a newer sequence number.
    g.run_checked(secs(2), &[c]);
    assert_eq!(rolled_back(&g, "k"), [AbortReason::ActivateFailed]);
    let coas: Vec<Ipv6Addr> = g
        .correspondent()
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            BindingEvent::Added { coa, .. } | BindingEvent::Updated { coa, .. } => Some(*coa),
            _ => None,
        })
        .collect();
    assert_eq!(coas, [member_coa(0), member_coa(1), member_coa(0)]);
    assert_back_at_contact(&g, c);
    sequences_increase(&g, c);
    assert!(g.node("a").sockets.is_empty());
}

#[test]
fn freeze_failure_cancels_at_the_acceptor() {
    let mut g = Group::new(&["k", "a"], 1, LAT, 15);
    let c = client(0);
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    g.at("k", |n, _| n.faults.freeze = true);
    g.handoff("k", c, "a");
    g.run_checked(secs(2), &[c]);
    assert_eq!(rolled_back(&g, "k"), [AbortReason::FreezeFailed]);
    assert_eq!(g.node("a").co.in_progress(), (0, 0));
    assert_eq!(g.node("a").co.stats().accept_aborted, 1);
    assert_back_at_contact(&g, c);
}

#[test]
fn full_acceptor_refuses_and_nothing_moves() {
    let mut g = Group::with_config(&["k", "a"], 1, LAT, 16, |cfg| cfg.max_clients = 0);
    let c = client(0);
    g.at("k", |n, _| n.co.client_seen(c, 1)); // refused: K is full too
    assert_eq!(g.node("k").co.clients().count(), 0);
    let mut g = Group::with_config(&["k", "a"], 1, LAT, 16, |cfg| {
        if cfg.me.name.as_str() == "a" {
            cfg.max_clients = 0;
        }
    });
    g.serve("k", c);
    bind_to_contact(&mut g, c);
    g.handoff("k", c, "a");
    g.run_checked(secs(1), &[c]);
    assert_eq!(
        rolled_back(&g, "k"),
        [AbortReason::Rejected(RejectReason::Full)]
    );
    assert_eq!(g.node("a").co.stats().refused, 1);
    assert_back_at_contact(&g, c);
    // A refused before doing anything: no Binding Update from it.
    assert!(g.node("a").mobile_events.is_empty());
}

#[test]
fn drain_hands_twenty_clients_to_the_others() {
    let mut g = Group::with_config(&["k", "a", "b"], 20, LAT, 17, |cfg| cfg.max_concurrent = 4);
    let clients: Vec<Ipv6Addr> = (0..20).map(client).collect();
    for c in &clients {
        g.serve("k", *c);
    }
    let n = g.at("k", |n, now| n.co.drain(now, &mut n.mn, Policy::RoundRobin));
    assert_eq!(n, 20);
    assert_eq!(
        g.node("k").co.in_progress().0,
        4,
        "at most max_concurrent at once"
    );
    g.run_checked(secs(5), &clients);
    let done: Vec<_> = g
        .node("k")
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            HandoffEvent::DrainDone { handed, failed } => Some((*handed, *failed)),
            _ => None,
        })
        .collect();
    assert_eq!(done, [(20, 0)]);
    assert_eq!(g.node("k").co.clients().count(), 0);
    assert_eq!(g.node("a").co.clients().count(), 10);
    assert_eq!(g.node("b").co.clients().count(), 10);
    for c in &clients {
        let coa = g.binding(*c).expect("bound");
        assert!(coa == member_coa(1) || coa == member_coa(2));
        assert!(!g.node("k").sockets.contains_key(c));
    }
}
