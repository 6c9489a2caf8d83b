//! Several anycast addresses in one daemon (seed 004 4.2.1: "different
//! anycast addresses can be handled by different anycast nodes, each
//! acting as a contact node for its respective anycast address"): one
//! [`ContactApp`] per address over the one engine, and this dispatcher.
//!
//! A punt goes to the address it names: the Type 2 Routing Header's home
//! address (BAs, BRRs and tunnelled HoTs to X), the Home Address option,
//! the destination, or a Binding Error's home address. A Care-of Test
//! names no home address (RFC 6275 6.1.6): it goes to every address whose
//! mobile node knows the client (the cookie check drops it where it does
//! not belong). Control commands take an optional `"x"` argument naming
//! the address (default: the first); `ctl anycast` lists them.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use mip6_anycast::daemon::App;
use mip6_anycast::daemon::control::Request;
use mip6_anycast::daemon::driver::earliest;
use mip6_anycast::engine::datapath::Punt;
use mip6_anycast::wire::{MhMessage, MhPacketRepr};
use serde_json::{Value, json};

use super::{ContactApp, ContactInput};

/// The daemon's control plane: one app per anycast address.
pub struct MultiApp {
    apps: Vec<ContactApp>,
}

impl MultiApp {
    /// Over `apps` (at least one).
    pub fn new(apps: Vec<ContactApp>) -> Self {
        MultiApp { apps }
    }

    /// Starts every address.
    pub async fn start(&mut self, now: Instant) {
        for a in &mut self.apps {
            a.start(now).await;
        }
    }

    /// Persists and cleans up every address.
    pub async fn finish(&mut self) {
        for a in &mut self.apps {
            a.finish().await;
        }
    }

    fn by_x(&self, x: Ipv6Addr) -> Option<usize> {
        self.apps.iter().position(|a| a.x() == x)
    }

    /// Which apps a punt is for.
    fn route(&self, punt: &Punt) -> Vec<usize> {
        if self.apps.len() == 1 {
            return vec![0];
        }
        match punt {
            Punt::HaoWithoutBinding { hoa, .. } => vec![self.by_x(*hoa).unwrap_or(0)],
            Punt::Proxy(_) => vec![0],
            Punt::Mobility(m) => {
                let Ok(p) = MhPacketRepr::parse_with_bytes(&m.packet) else {
                    // The first app counts the bad packet.
                    return vec![0];
                };
                let r = &p.repr;
                let be = match &r.mh.message {
                    MhMessage::BindingError(be) => Some(be.home_address),
                    _ => None,
                };
                let named = [r.rh2, r.hao, Some(r.dst_addr), be]
                    .into_iter()
                    .flatten()
                    .find_map(|a| self.by_x(a));
                if let Some(i) = named {
                    return vec![i];
                }
                let knowing: Vec<usize> = (0..self.apps.len())
                    .filter(|&i| self.apps[i].knows_client(r.src_addr))
                    .collect();
                if knowing.is_empty() { vec![0] } else { knowing }
            }
        }
    }

    fn select(&self, req: &Request) -> Result<usize, String> {
        match req.args.get("x") {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_str()
                .and_then(|s| s.parse().ok())
                .and_then(|x| self.by_x(x))
                .ok_or_else(|| format!("no anycast address {v} here")),
        }
    }
}

impl App for MultiApp {
    type Input = (usize, ContactInput);

    fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.apps.iter().map(App::poll_timeout))
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.apps.iter().filter_map(App::tick_interval).min()
    }

    async fn handle_timeout(&mut self, now: Instant) {
        for a in &mut self.apps {
            if a.poll_timeout().is_some_and(|t| t <= now) {
                a.handle_timeout(now).await;
            }
        }
    }

    async fn handle_punt(&mut self, punt: Punt) {
        for i in self.route(&punt) {
            if let Some(a) = self.apps.get_mut(i) {
                a.handle_punt(punt.clone()).await;
            }
        }
    }

    async fn handle_input(&mut self, (i, input): (usize, ContactInput)) {
        if let Some(a) = self.apps.get_mut(i) {
            a.handle_input(input).await;
        }
    }

    async fn tick(&mut self, now: Instant) {
        for a in &mut self.apps {
            a.tick(now).await;
        }
    }

    async fn control(&mut self, req: &Request) -> Result<Value, String> {
        if req.cmd == "anycast" {
            return Ok(Value::Array(
                self.apps
                    .iter()
                    .map(|a| json!({"x": a.x(), "is_contact": a.is_contact(), "registered": a.registered_now()}))
                    .collect(),
            ));
        }
        let i = self.select(req)?;
        self.apps[i].control(req).await
    }

    fn commands(&self) -> &'static [&'static str] {
        self.apps.first().map_or(&[], App::commands)
    }

    async fn begin_shutdown(&mut self, now: Instant) {
        for a in &mut self.apps {
            a.begin_shutdown(now).await;
        }
    }

    fn shutdown_complete(&self) -> bool {
        self.apps.iter().all(App::shutdown_complete)
    }
}
