//! Measures prompt resume after a move, with and without the crate's
//! mechanisms, in one run (needs root: it builds network namespaces).
//!
//! ```sh
//! sudo cargo run -p tcp-handoff --example resume_latency -- [runs]
//! ```
//!
//! For each scenario it moves a connection from a donor to an acceptor
//! namespace and reports the time from activation to the first byte that
//! was caught in the move arriving at its receiver, plus how many
//! retransmission timeouts (`TCPTimeouts`) fired on either side.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::scenarios::{Outcome, frozen_client_data, lost_acks, lost_tail};
use tcp_handoff::Resend;

/// One line of the table: a label and the scenario run that produces it.
type Scenario = (&'static str, Box<dyn Fn() -> Outcome>);

fn summary(name: &str, runs: &[Outcome]) {
    let mut lat: Vec<Duration> = runs.iter().map(|o| o.latency).collect();
    lat.sort();
    let med = lat[lat.len() / 2];
    let (min, max) = (lat[0], lat[lat.len() - 1]);
    let rto_a: u64 = runs.iter().map(|o| o.acceptor_timeouts).sum();
    let rto_c: u64 = runs.iter().map(|o| o.client_timeouts).sum();
    println!(
        "{name:<58} median {:>10.3} ms  (min {:>9.3}, max {:>9.3})  RTOs acceptor {rto_a}, client {rto_c}",
        med.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
    );
}

fn main() {
    if !common::is_root() {
        eprintln!("SKIP (needs root): resume_latency builds network namespaces");
        return;
    }
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    println!(
        "{runs} runs per line; latency = activation -> first byte caught in the move at its receiver\n"
    );
    let table: [Scenario; 8] = [
        (
            "server->client, bytes lost:  resend as unsent (Auto)",
            Box::new(|| lost_tail(Resend::default())),
        ),
        (
            "server->client, bytes lost:  restore as sent (CRIU)",
            Box::new(|| lost_tail(Resend::AsSent)),
        ),
        (
            "server->client, acks lost:   window probe at activation",
            Box::new(|| lost_acks(true, false)),
        ),
        (
            "server->client, acks lost:   replayed ACK, no probe",
            Box::new(|| lost_acks(false, true)),
        ),
        (
            "server->client, acks lost:   neither",
            Box::new(|| lost_acks(false, false)),
        ),
        (
            "client->server, sent frozen: capture + replay",
            Box::new(|| frozen_client_data(true, 0)),
        ),
        (
            "client->server, sent frozen: no capture (peer's RTO)",
            Box::new(|| frozen_client_data(false, 0)),
        ),
        (
            "client->server, sent frozen: no capture, 3 dup ACKs",
            Box::new(|| frozen_client_data(false, 3)),
        ),
    ];
    for (name, run) in &table {
        let outcomes: Vec<Outcome> = (0..runs).map(|_| run()).collect();
        summary(name, &outcomes);
    }
}
