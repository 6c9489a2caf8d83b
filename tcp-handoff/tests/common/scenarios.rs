//! Prompt-resume scenarios, shared by `tests/resume.rs` (which checks the
//! behaviour) and `examples/resume_latency.rs` (which measures it).
//!
//! Each builds a fresh three-namespace lab, moves one connection from D to
//! A and times how long the data that was caught in the move takes to
//! arrive after activation.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use tcp_handoff::{
    ActivationReport, CapturedSegment, FreezeOptions, Resend, RestoreOptions, TcpState,
    attach_shield, detach_shield, freeze, reinject, restore_paused,
};

use super::{Lab, X, connect_to};

/// What one scenario run observed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Activation to the first byte of interest at the receiver.
    pub latency: Duration,
    /// `TCPTimeouts` (retransmission timeouts) in the acceptor namespace.
    pub acceptor_timeouts: u64,
    /// `TCPTimeouts` in the client namespace.
    pub client_timeouts: u64,
    /// What activation did.
    pub report: ActivationReport,
    /// Sent-but-unacknowledged bytes in the dump.
    pub sent_in_dump: usize,
    /// Segments the donor captured and the acceptor replayed afterwards.
    pub replayed_late: usize,
}

struct Pair {
    lab: Lab,
    client: TcpStream,
    server: TcpStream,
    _listener: TcpListener,
}

fn pair(port: u16) -> Pair {
    pair_at(SocketAddr::new(X.into(), port))
}

fn pair_at(addr: SocketAddr) -> Pair {
    let lab = Lab::new();
    let listener = lab.d.run(move || TcpListener::bind(addr).unwrap());
    let l2 = listener.try_clone().unwrap();
    let accept = std::thread::spawn(move || l2.accept().unwrap().0);
    let mut client = connect_to(&lab.c, addr);
    let mut server = accept.join().unwrap();
    for s in [&client, &server] {
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    // Warm up both directions: RTT estimates, delayed-ACK state; then let
    // delayed ACKs go out so that nothing is unacknowledged.
    let mut buf = [0u8; 1000];
    for _ in 0..20 {
        client.write_all(&buf).unwrap();
        server.read_exact(&mut buf).unwrap();
        server.write_all(&buf).unwrap();
        client.read_exact(&mut buf).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    Pair {
        lab,
        client,
        server,
        _listener: listener,
    }
}

fn timeouts(ns: &super::Netns) -> u64 {
    ns.counters().get("TCPTimeouts")
}

/// Retransmission timeouts counted so far on the acceptor and the client.
struct Before {
    acceptor: u64,
    client: u64,
}

impl Before {
    fn take(lab: &Lab) -> Before {
        Before {
            acceptor: timeouts(&lab.a),
            client: timeouts(&lab.c),
        }
    }

    /// The outcome of a move activated at `t0` whose first byte arrived at `t1`.
    fn outcome(
        &self,
        lab: &Lab,
        (t0, t1): (Instant, Instant),
        report: ActivationReport,
    ) -> Outcome {
        Outcome {
            latency: t1.saturating_duration_since(t0),
            acceptor_timeouts: timeouts(&lab.a) - self.acceptor,
            client_timeouts: timeouts(&lab.c) - self.client,
            report,
            sent_in_dump: 0,
            replayed_late: 0,
        }
    }
}

/// Restores `tcp` paused on A, switches the route, runs `between` (the
/// donor closes there: no packet reaches it any more; it returns what the
/// donor captured), activates, replays the donor's capture and returns the
/// live stream, the activation instant, the report and the replay count.
fn move_to_acceptor(
    lab: &Lab,
    tcp: TcpState,
    opts: RestoreOptions,
    between: impl FnOnce() -> Vec<CapturedSegment>,
) -> (TcpStream, Instant, ActivationReport, usize) {
    let paused = lab
        .a
        .run(move || restore_paused(&tcp, &opts).expect("restore"));
    lab.route_to_acceptor();
    let late = between();
    lab.a.run(move || {
        let t0 = Instant::now();
        let live = paused.activate().expect("activate");
        let id = tcp_handoff::connection_id(live.stream.as_fd()).unwrap();
        let replayed = reinject(id.local, id.remote, &late).expect("replay");
        (live.stream, t0, live.report, replayed)
    })
}

/// Server to client, the bytes were lost: the server sent 8 KB that never
/// reached the client (its socket drops them), then the connection moves.
/// Latency: activation to the client's first byte.
pub fn lost_tail(resend: Resend) -> Outcome {
    let Pair {
        lab,
        mut client,
        server,
        _listener,
    } = pair(9101);
    attach_shield(client.as_fd()).unwrap();
    let mut server = server;
    server.write_all(&[0x5a; 8192]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut frozen = lab
        .d
        .run(move || freeze(server, &FreezeOptions::default()).unwrap());
    let tcp = frozen.dump().unwrap();
    let sent_in_dump = tcp.sent.len();
    let before = Before::take(&lab);
    let opts = RestoreOptions {
        resend,
        ..RestoreOptions::default()
    };
    let mut reader = None;
    // The client keeps dropping until the donor is gone, so the donor's own
    // retransmissions cannot reach it.
    let (_stream, t0, report, _) = move_to_acceptor(&lab, tcp, opts, || {
        let late = frozen.close_silently().unwrap();
        detach_shield(client.as_fd()).unwrap();
        reader = Some(std::thread::spawn(move || {
            let mut b = [0u8; 1];
            client.read_exact(&mut b).expect("client read");
            (Instant::now(), client)
        }));
        late
    });
    let reader = reader.unwrap();
    let (t1, _client) = reader.join().unwrap();
    // `_stream` stays open until the counters are read.
    Outcome {
        sent_in_dump,
        ..before.outcome(&lab, (t0, t1), report)
    }
}

/// Server to client, the acknowledgments were lost: the client received
/// 64 KB but its ACKs were dropped, so the dump holds them as
/// sent-unacknowledged (restored as sent). Latency: activation to the
/// client's first byte beyond them (data the acceptor can send only once
/// it learns the client has the rest). `window_probe` and `capture` turn
/// the two ways of learning it on.
pub fn lost_acks(window_probe: bool, capture: bool) -> Outcome {
    let Pair {
        lab,
        mut client,
        server,
        _listener,
    } = pair(9102);
    let mut server = server;
    attach_shield(server.as_fd()).unwrap();
    let total = 256 * 1024;
    server.set_nonblocking(true).unwrap();
    let chunk = vec![0xa5u8; total];
    let written = server.write(&chunk).unwrap_or(0);
    server.set_nonblocking(false).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let fopts = FreezeOptions {
        capture,
        ..FreezeOptions::default()
    };
    let mut frozen = lab.d.run(move || freeze(server, &fopts).unwrap());
    let tcp = frozen.dump().unwrap();
    let sent_in_dump = tcp.sent.len();
    assert!(
        written > sent_in_dump,
        "the dump must hold unsent bytes too"
    );
    let before = Before::take(&lab);
    let reader = std::thread::spawn(move || {
        let mut b = vec![0u8; sent_in_dump + 1];
        client.read_exact(&mut b).expect("client read");
        (Instant::now(), client)
    });
    let opts = RestoreOptions {
        resend: Resend::AsSent,
        window_probe,
        capture,
        ..RestoreOptions::default()
    };
    let (_stream, t0, report, _) =
        move_to_acceptor(&lab, tcp, opts, || frozen.close_silently().unwrap());
    let (t1, _client) = reader.join().unwrap();
    // `_stream` stays open until the counters are read.
    Outcome {
        sent_in_dump,
        ..before.outcome(&lab, (t0, t1), report)
    }
}

/// Client to server: the client writes 4 KB while the connection is frozen
/// (the shield drops it). Latency: activation to the acceptor application
/// reading the first of those bytes. `capture` turns capture and replay on;
/// `dup_acks` makes the acceptor send that many duplicate ACKs to the
/// client right after activation (to see whether they trigger its
/// retransmission: they do not, a SACK-capable Linux sender needs SACK
/// evidence or its timer).
pub fn frozen_client_data(capture: bool, dup_acks: usize) -> Outcome {
    frozen_client_data_at(SocketAddr::new(X.into(), 9103), capture, dup_acks)
}

/// [`frozen_client_data`] with the server at `addr` (e.g. IPv4).
pub fn frozen_client_data_at(addr: SocketAddr, capture: bool, dup_acks: usize) -> Outcome {
    let Pair {
        lab,
        mut client,
        server,
        _listener,
    } = pair_at(addr);
    let fopts = FreezeOptions {
        capture,
        ..FreezeOptions::default()
    };
    let mut frozen = lab.d.run(move || freeze(server, &fopts).unwrap());
    let tcp = frozen.dump().unwrap();
    let dup = dup_ack(&tcp);
    let (server_end, client_end) = (tcp.local, tcp.remote);
    client.write_all(&[0x3c; 4096]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let before = Before::take(&lab);
    let opts = RestoreOptions {
        capture,
        ..RestoreOptions::default()
    };
    let (mut stream, t0, report, replayed_late) =
        move_to_acceptor(&lab, tcp, opts, || frozen.close_silently().unwrap());
    if dup_acks > 0 {
        // Roles swapped: a segment from the server's end to the client's.
        let acks = vec![dup; dup_acks];
        lab.a
            .run(move || reinject(client_end, server_end, &acks).unwrap());
    }
    let mut b = [0u8; 1];
    stream.read_exact(&mut b).expect("acceptor read");
    let t1 = Instant::now();
    Outcome {
        replayed_late,
        ..before.outcome(&lab, (t0, t1), report)
    }
}

/// A pure ACK from the restored socket's side: in-window sequence number,
/// acknowledging what it received, same window, timestamps if negotiated.
fn dup_ack(tcp: &TcpState) -> CapturedSegment {
    let scale = tcp.options.wscale.map_or(0, |w| w.rcv);
    let window = tcp
        .window
        .map_or(65535, |w| (w.rcv_wnd >> scale).min(65535)) as u16;
    let options = match tcp.options.timestamp {
        Some(ts) => {
            let mut o = vec![1, 1, 8, 10];
            o.extend_from_slice(&ts.wrapping_add(1000).to_be_bytes());
            o.extend_from_slice(&[0, 0, 0, 0]);
            o
        }
        None => Vec::new(),
    };
    CapturedSegment {
        seq: tcp.write_seq(),
        ack: tcp.rcv_nxt,
        flags: tcp_handoff::segment::ACK,
        window,
        options,
        payload: Vec::new(),
    }
}
