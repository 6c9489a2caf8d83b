//! End-to-end demonstration: a line-numbering service moves a live client
//! connection, with its application state, from one host to another.
//!
//! ```sh
//! sudo cargo run -p tcp-handoff --example migrate
//! ```
//!
//! Three network namespaces: client C, donor D and acceptor A. D and A both
//! hold the service address X. The client keeps sending lines; the service
//! answers each with a per-connection line number. Mid-stream the donor
//! freezes the connection, exports the TCP state and the service's state
//! (the counter and any half-received line), and the acceptor restores both
//! after the client's route to X moves to it. The client sees one unbroken
//! numbered stream, no reset, no FIN.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Lab, X, connect_client};
use tcp_handoff::{
    AppState, ConnectionId, FreezeOptions, Handoff, LateSegments, Limits, RestoreOptions, freeze,
    reinject, restore_paused,
};

/// The service's state for one connection.
#[derive(Debug, Clone, Default)]
struct LineState {
    /// Lines answered so far.
    count: u64,
    /// Bytes of a line not complete yet.
    partial: Vec<u8>,
}

impl LineState {
    fn encode(&self) -> Vec<u8> {
        let mut v = self.count.to_be_bytes().to_vec();
        v.extend_from_slice(&self.partial);
        v
    }
    fn decode(b: &[u8]) -> Option<LineState> {
        let (count, partial) = b.split_at_checked(8)?;
        Some(LineState {
            count: u64::from_be_bytes(count.try_into().ok()?),
            partial: partial.to_vec(),
        })
    }
}

/// One connection being served on a thread.
struct Served {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(TcpStream, LineState)>,
}

fn serve(mut stream: TcpStream, mut st: LineState) -> Served {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = std::thread::spawn(move || {
        stream
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut buf = [0u8; 4096];
        while !stop2.load(Ordering::SeqCst) {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    st.partial.extend_from_slice(&buf[..n]);
                    while let Some(nl) = st.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = st.partial.drain(..=nl).collect();
                        st.count += 1;
                        let reply = format!("{}: {}", st.count, String::from_utf8_lossy(&line));
                        stream.write_all(reply.as_bytes()).unwrap();
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("service: {e}"),
            }
        }
        (stream, st)
    });
    Served { stop, handle }
}

/// The service as the handoff sees it: stopped connections waiting to be
/// exported (donor) and connections it serves (acceptor).
#[derive(Default)]
struct LineService {
    stopped: HashMap<ConnectionId, LineState>,
    serving: Vec<Served>,
}

impl AppState for LineService {
    type Error = std::io::Error;

    fn export(&mut self, conn: &ConnectionId) -> Result<Vec<u8>, Self::Error> {
        let st = self.stopped.remove(conn).unwrap_or_default();
        println!(
            "  donor:    exporting app state: {} lines answered, {} bytes of a partial line",
            st.count,
            st.partial.len()
        );
        Ok(st.encode())
    }

    fn import(
        &mut self,
        conn: &ConnectionId,
        state: &[u8],
        stream: TcpStream,
    ) -> Result<(), Self::Error> {
        let st = LineState::decode(state).ok_or_else(|| std::io::Error::other("bad line state"))?;
        println!(
            "  acceptor: importing {conn}: continuing after line {}",
            st.count
        );
        self.serving.push(serve(stream, st));
        Ok(())
    }
}

fn main() {
    if !common::is_root() {
        eprintln!("SKIP (needs root): the example builds network namespaces");
        return;
    }
    let lab = Lab::new();
    println!(
        "lab: client {}, donor {}, acceptor {}; service at [{X}]:7000",
        lab.c.name, lab.d.name, lab.a.name
    );
    let listener = lab
        .d
        .run(|| TcpListener::bind(SocketAddr::new(X.into(), 7000)).unwrap());
    let accept = std::thread::spawn(move || listener.accept().unwrap().0);
    let client = connect_client(&lab.c, 7000);
    let served = serve(accept.join().unwrap(), LineState::default());

    // The client: one line every 2 ms (sometimes split in two writes, so
    // that a move can catch half a line), checking the numbering.
    let client_stop = Arc::new(AtomicBool::new(false));
    let cs = client_stop.clone();
    let mut writer = client.try_clone().unwrap();
    let client_writer = std::thread::spawn(move || {
        let mut i = 0u64;
        while !cs.load(Ordering::SeqCst) {
            i += 1;
            let line = format!("hello number {i}\n");
            let (a, b) = line.as_bytes().split_at(line.len() / 2);
            writer.write_all(a).unwrap();
            std::thread::sleep(Duration::from_millis(1));
            writer.write_all(b).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        i
    });
    let client_reader = std::thread::spawn(move || {
        let mut r = BufReader::new(client);
        let mut expected = 1u64;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap() == 0 {
                return expected - 1;
            }
            let n: u64 = line.split(':').next().unwrap().parse().unwrap();
            assert_eq!(n, expected, "reply numbering broke: {line:?}");
            assert!(
                line.ends_with(&format!("hello number {n}\n")),
                "wrong reply {line:?}"
            );
            expected += 1;
            if expected.is_multiple_of(200) {
                println!("client:     {} replies in order", expected - 1);
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));

    println!("handoff:");
    // 1. Donor: the service lets go of the connection; freeze and export.
    served.stop.store(true, Ordering::SeqCst);
    let (stream, st) = served.handle.join().unwrap();
    let mut donor_app = LineService::default();
    let mut frozen = lab
        .d
        .run(move || freeze(stream, &FreezeOptions::default()).unwrap());
    donor_app.stopped.insert(frozen.id(), st);
    let bundle = Handoff::export([&mut frozen], &mut donor_app).unwrap();
    let tcp = &bundle.connections[0].tcp;
    println!(
        "  donor:    frozen {}; queues: {} B received, {} B sent-unacked, {} B unsent",
        frozen.id(),
        tcp.recv.len(),
        tcp.sent.len(),
        tcp.unsent.len()
    );
    let wire = bundle.encode();
    println!("  donor:    handoff message: {} bytes", wire.len());

    // 2. Acceptor: decode, restore paused, then the route moves, then go live.
    let received = Handoff::decode(&wire, &Limits::default()).unwrap();
    let conn = received.connections.into_iter().next().unwrap();
    let tcp_state = conn.tcp.clone();
    let paused = lab
        .a
        .run(move || restore_paused(&tcp_state, &RestoreOptions::default()).unwrap());
    println!("  acceptor: restored {} (paused, silent)", paused.id());
    lab.route_to_acceptor();
    println!("  network:  client's route to X now points at the acceptor");
    let live = lab.a.run(move || paused.activate().unwrap());
    println!("  acceptor: live; {:?}", live.report);
    let mut acceptor_app = LineService::default();
    let id = tcp_handoff::connection_id(std::os::fd::AsFd::as_fd(&live.stream)).unwrap();
    acceptor_app
        .import(&id, &conn.app_state, live.stream)
        .unwrap();

    // 3. Donor: after in-flight packets drained, close without FIN/RST and
    //    ship what arrived meanwhile; the acceptor replays it.
    std::thread::sleep(Duration::from_millis(30));
    let late = LateSegments {
        id: frozen.id(),
        segments: frozen.close_silently().unwrap(),
    };
    let n = late.segments.len();
    lab.a
        .run(move || reinject(late.id.local, late.id.remote, &late.segments).unwrap());
    println!("  donor:    closed silently; {n} late segments replayed on the acceptor");

    std::thread::sleep(Duration::from_millis(500));
    client_stop.store(true, Ordering::SeqCst);
    let sent = client_writer.join().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for s in &acceptor_app.serving {
        s.stop.store(true, Ordering::SeqCst);
    }
    let mut streams = Vec::new();
    for s in acceptor_app.serving.drain(..) {
        let (stream, st) = s.handle.join().unwrap();
        println!("acceptor:   answered up to line {}", st.count);
        assert_eq!(st.count, sent, "every line was answered once");
        streams.push(stream);
    }
    drop(streams);
    let replies = client_reader.join().unwrap();
    println!("client:     sent {sent} lines, got {replies} replies, all in order");
}
