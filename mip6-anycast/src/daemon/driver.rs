//! Driving the sans-IO machines of [`crate::proto`] from a daemon: one
//! [`Machine`] view over all of them (actions, timers), [`drain`] to take
//! their queued actions apart, and [`Outbox`] to put their packets on the
//! wire through the engine with the [`SendVia`] their [`Route`] asks for.
//!
//! Order matters and is the caller's: apply a batch's events (engine
//! tables, state files) before sending its packets, so that a Binding
//! Acknowledgement never leaves before the table it announces exists or
//! before the registration it acknowledges is on disk.

use std::net::Ipv6Addr;
use std::time::Instant;

use tracing::{debug, trace};

use crate::crypto::NtpTimestamp;
use crate::engine::datapath::{EngineHandle, SendVia};
use crate::proto::{
    Action, BindingEvent, Correspondent, DropReason, HaEvent, HomeAgent, HomeRegEvent,
    HomeRegistration, MobileEvent, MobileNode, Route, Transmit,
};

/// What the daemon shell needs of a sans-IO machine.
pub trait Machine {
    /// The machine's event type.
    type Event;
    /// The next queued action.
    fn poll_action(&mut self) -> Option<Action<Self::Event>>;
    /// When [`Machine::handle_timeout`] is next due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Runs the timers due at `now` (`wall`: the wall clock, for the
    /// machines that need it).
    fn handle_timeout(&mut self, now: Instant, wall: NtpTimestamp);
}

impl Machine for Correspondent {
    type Event = BindingEvent;
    fn poll_action(&mut self) -> Option<Action<BindingEvent>> {
        Correspondent::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Correspondent::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant, _wall: NtpTimestamp) {
        Correspondent::handle_timeout(self, now);
    }
}

impl Machine for MobileNode {
    type Event = MobileEvent;
    fn poll_action(&mut self) -> Option<Action<MobileEvent>> {
        MobileNode::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        MobileNode::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant, _wall: NtpTimestamp) {
        MobileNode::handle_timeout(self, now);
    }
}

impl Machine for HomeRegistration {
    type Event = HomeRegEvent;
    fn poll_action(&mut self) -> Option<Action<HomeRegEvent>> {
        HomeRegistration::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        HomeRegistration::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant, wall: NtpTimestamp) {
        HomeRegistration::handle_timeout(self, now, wall);
    }
}

impl Machine for HomeAgent {
    type Event = HaEvent;
    fn poll_action(&mut self) -> Option<Action<HaEvent>> {
        HomeAgent::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        HomeAgent::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant, _wall: NtpTimestamp) {
        HomeAgent::handle_timeout(self, now);
    }
}

/// A machine's queued actions, split by kind (each in queue order).
#[derive(Debug)]
pub struct Drained<E> {
    /// Packets to send.
    pub transmits: Vec<Transmit>,
    /// Events to apply.
    pub events: Vec<E>,
    /// Drops and rejections (already counted by the machine).
    pub drops: Vec<DropReason>,
}

impl<E> Default for Drained<E> {
    fn default() -> Self {
        Self {
            transmits: Vec::new(),
            events: Vec::new(),
            drops: Vec::new(),
        }
    }
}

impl<E> Drained<E> {
    /// True if nothing was queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty() && self.events.is_empty() && self.drops.is_empty()
    }
}

/// Takes every queued action of `m`. Drops are logged at debug level.
pub fn drain<M: Machine>(m: &mut M) -> Drained<M::Event> {
    let mut d = Drained::default();
    while let Some(a) = m.poll_action() {
        match a {
            Action::Transmit(t) => d.transmits.push(t),
            Action::Event(e) => d.events.push(e),
            Action::Dropped(r) => {
                debug!(reason = %r, "machine dropped a message");
                d.drops.push(r);
            }
        }
    }
    d
}

/// The earliest of several optional deadlines.
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

/// The [`SendVia`] for a machine's [`Route`]: `reverse_tunnel` gives the
/// (care-of address, home agent) of a node registered at a home agent;
/// without it a [`Route::ReverseTunnel`] cannot be sent (`None`).
#[must_use]
pub fn send_via(route: Route, reverse_tunnel: Option<(Ipv6Addr, Ipv6Addr)>) -> Option<SendVia> {
    match route {
        Route::Direct => Some(SendVia::Direct),
        Route::ReverseTunnel => reverse_tunnel.map(|(coa, ha)| SendVia::ReverseTunnel {
            care_of_address: coa,
            home_agent: ha,
        }),
    }
}

/// Sends machines' packets through the engine and counts the outcome.
#[derive(Debug, Clone)]
pub struct Outbox {
    engine: EngineHandle,
    /// Packets handed to the engine.
    pub sent: u64,
    /// Packets the engine refused (no route, ...) or that had no way out.
    pub failed: u64,
}

impl Outbox {
    /// An outbox on `engine`.
    #[must_use]
    pub fn new(engine: EngineHandle) -> Self {
        Self {
            engine,
            sent: 0,
            failed: 0,
        }
    }

    /// Sends `t` as its route says (`via`; `None` when it cannot be sent,
    /// e.g. a HoTI before the home registration exists). Returns whether
    /// the engine took it.
    pub async fn send(&mut self, t: Transmit, via: Option<SendVia>) -> bool {
        let Some(via) = via else {
            debug!(mh_type = t.mh_type, dst = %t.dst, route = ?t.route, "no way to send");
            self.failed += 1;
            return false;
        };
        trace!(mh_type = t.mh_type, src = %t.src, dst = %t.dst, ?via, "send");
        match self.engine.send(t.bytes, via).await {
            Ok(()) => {
                self.sent += 1;
                true
            }
            Err(e) => {
                debug!(error = %e, mh_type = t.mh_type, dst = %t.dst, "send failed");
                self.failed += 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_send_via() {
        let coa: Ipv6Addr = "2001:db8:3::10".parse().unwrap();
        let ha: Ipv6Addr = "2001:db8:2::10".parse().unwrap();
        assert_eq!(send_via(Route::Direct, None), Some(SendVia::Direct));
        assert_eq!(send_via(Route::ReverseTunnel, None), None);
        assert_eq!(
            send_via(Route::ReverseTunnel, Some((coa, ha))),
            Some(SendVia::ReverseTunnel {
                care_of_address: coa,
                home_agent: ha
            })
        );
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert_eq!(earliest([None, Some(t1), Some(t0)]), Some(t0));
        assert_eq!(earliest([None, None]), None);
    }
}
