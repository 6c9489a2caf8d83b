//! Migrations of live connections between real kernel sockets in network
//! namespaces, with data flowing both ways and every byte checked.
//! Needs root (CAP_NET_ADMIN for TCP_REPAIR, CAP_NET_RAW for capture and
//! replay, CAP_SYS_ADMIN for namespaces).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::{
    Counters, FlagWatch, Lab, Netns, Progress, Pump, X, X4, client_cfg, connect_to,
    drain_and_check, server_cfg,
};
use tcp_handoff::{
    ConnectionHandoff, FreezeOptions, Handoff, LateSegments, Limits, RestoreOptions, TcpState,
    attach_shield, detach_shield, freeze, reinject, restore_paused,
};

fn snapshot(nss: &[&Netns]) -> Vec<Counters> {
    nss.iter().map(|ns| ns.counters()).collect()
}

/// No namespace sent a reset; only the donor namespace `silent_closes[i]`
/// connections left ESTABLISHED (the kernel counts a silent close in
/// `EstabResets`, without sending anything).
fn assert_no_resets(nss: &[&Netns], before: &[Counters], silent_closes: &[u64]) {
    for ((ns, b), closes) in nss.iter().zip(before).zip(silent_closes) {
        let after = ns.counters();
        for name in [
            "OutRsts",
            "TCPAbortOnClose",
            "TCPAbortOnData",
            "TCPAbortOnTimeout",
        ] {
            assert_eq!(b.delta(&after, name), 0, "{name} grew in {}", ns.name);
        }
        assert_eq!(
            b.delta(&after, "EstabResets"),
            *closes,
            "EstabResets in {}",
            ns.name
        );
    }
}

/// The client's sniffer saw traffic but not a single FIN or RST.
fn assert_no_fin_rst(watch: FlagWatch) {
    let seen = watch.stop();
    assert!(seen.segments > 0, "sniffer saw nothing");
    assert_eq!(
        (seen.fins, seen.rsts),
        (0, 0),
        "client saw FIN/RST: {seen:?}"
    );
}

/// Starts a server on `[X]:port` in `ns` and a client in `c`; returns their pumps.
fn start_pair(
    ns: &Netns,
    c: &Netns,
    port: u16,
    client_read_rate: Option<u64>,
) -> (TcpListener, Pump, Pump) {
    start_pair_at(ns, c, SocketAddr::new(X.into(), port), client_read_rate)
}

fn start_pair_at(
    ns: &Netns,
    c: &Netns,
    addr: SocketAddr,
    client_read_rate: Option<u64>,
) -> (TcpListener, Pump, Pump) {
    let listener = ns.run(move || TcpListener::bind(addr).expect("bind X"));
    let l2 = listener.try_clone().unwrap();
    let accept = std::thread::spawn(move || l2.accept().expect("accept").0);
    let client = connect_to(c, addr);
    let server = accept.join().unwrap();
    let cp = Pump::start(client, client_cfg(client_read_rate), Progress::default());
    let sp = Pump::start(server, server_cfg(), Progress::default());
    (listener, cp, sp)
}

/// (b) Donor D and acceptor A both hold X; the client's route to X moves
/// from D's link to A's while the connection is frozen.
#[test]
fn migrates_between_namespaces_without_resets() {
    require_root!();
    let lab = Lab::new();
    let (_listener, client, server) = start_pair(&lab.d, &lab.c, 8080, Some(4 << 20));
    let before = snapshot(&lab.all());
    let watch = FlagWatch::start(&lab.c, 8080);
    std::thread::sleep(Duration::from_millis(300));

    // Donor: the application stops, the socket is frozen and dumped.
    let (stream, progress) = server.stop();
    let mut frozen = lab
        .d
        .run(move || freeze(stream, &FreezeOptions::default()).expect("freeze"));
    let tcp = frozen.dump().expect("dump");
    assert!(
        !tcp.recv.is_empty(),
        "test needs client data queued at the server"
    );
    assert!(
        !tcp.sent.is_empty() || !tcp.unsent.is_empty(),
        "test needs server data queued"
    );
    eprintln!(
        "dumped: recv {} sent {} unsent {} bytes",
        tcp.recv.len(),
        tcp.sent.len(),
        tcp.unsent.len()
    );
    let wire = Handoff {
        connections: vec![ConnectionHandoff {
            tcp,
            app_state: progress.encode(),
            captured: frozen.take_captured(),
        }],
    }
    .encode();

    // Acceptor: restore paused, switch the route, go live.
    let handoff = Handoff::decode(&wire, &Limits::default()).expect("decode");
    let conn = handoff.connections.into_iter().next().unwrap();
    // The acceptor takes X only now: IPV6_FREEBIND lets the restore bind it
    // before it is local.
    let x = format!("{X}/128");
    lab.a.ip(&["addr", "del", &x, "dev", "lo"]);
    let tcp = conn.tcp.clone();
    let paused = lab
        .a
        .run(move || restore_paused(&tcp, &RestoreOptions::default()).expect("restore"));
    lab.a.ip(&["addr", "add", &x, "dev", "lo", "nodad"]);
    lab.route_to_acceptor();
    let live = lab.a.run(move || paused.activate().expect("activate"));
    eprintln!("activated: {:?}", live.report);
    let server = Pump::start(live.stream, server_cfg(), Progress::decode(&conn.app_state));

    // Donor: once the route moved and in-flight packets drained, close
    // silently and ship what the shield caught.
    std::thread::sleep(Duration::from_millis(50));
    let id = frozen.id();
    let late = LateSegments {
        id,
        segments: frozen.close_silently().expect("close"),
    }
    .encode();
    let late = LateSegments::decode(&late, &Limits::default()).unwrap();
    eprintln!("late segments from the donor: {}", late.segments.len());
    lab.a
        .run(move || reinject(late.id.local, late.id.remote, &late.segments).expect("replay"));

    std::thread::sleep(Duration::from_millis(300));
    let (cp, sp, _streams) = drain_and_check(client, server);
    assert!(cp.received > 0 && sp.received > 0);
    assert_no_resets(&lab.all(), &before, &[0, 1, 0]);
    assert_no_fin_rst(watch);
}

/// (a) The server socket moves within one namespace: dump, silent close,
/// restore. The listener is shielded in between so that no segment finds
/// the 4-tuple without a socket (the kernel would answer with RST).
#[test]
fn migrates_within_one_namespace() {
    require_root!();
    let lab = Lab::new();
    let (listener, client, server) = start_pair(&lab.d, &lab.c, 8081, Some(4 << 20));
    let before = snapshot(&lab.all());
    let watch = FlagWatch::start(&lab.c, 8081);
    std::thread::sleep(Duration::from_millis(200));

    let (stream, progress) = server.stop();
    let (live, late) = lab.d.run(move || {
        use std::os::fd::AsFd;
        attach_shield(listener.as_fd()).unwrap();
        let mut frozen = freeze(stream, &FreezeOptions::default()).unwrap();
        let tcp = frozen.dump().unwrap();
        let id = frozen.id();
        let late = frozen.close_silently().unwrap();
        let live = restore_paused(&tcp, &RestoreOptions::default())
            .unwrap()
            .activate()
            .unwrap();
        reinject(id.local, id.remote, &late).unwrap();
        detach_shield(listener.as_fd()).unwrap();
        (live, late.len())
    });
    let _ = late;
    let server = Pump::start(live.stream, server_cfg(), progress);
    std::thread::sleep(Duration::from_millis(300));
    let _streams = drain_and_check(client, server);
    assert_no_resets(&lab.all(), &before, &[0, 1, 0]);
    assert_no_fin_rst(watch);
}

/// Moves the server side from `from` to `to`: the application stops, the
/// socket is frozen and dumped, restored paused, `switch` moves the route,
/// the restored socket goes live, and after `grace` the donor closes
/// silently and its late segments are replayed. Returns the server pump
/// continuing on `to` and the dumped state.
fn move_server(
    from: &Netns,
    to: &Netns,
    server: Pump,
    switch: impl FnOnce(),
    grace: Duration,
) -> (Pump, TcpState) {
    let (stream, progress) = server.stop();
    let mut frozen = from.run(move || freeze(stream, &FreezeOptions::default()).expect("freeze"));
    let tcp = frozen.dump().expect("dump");
    let state = tcp.clone();
    let paused = to.run(move || restore_paused(&tcp, &RestoreOptions::default()).expect("restore"));
    switch();
    let live = to.run(move || paused.activate().expect("activate"));
    let server = Pump::start(live.stream, server_cfg(), progress);
    std::thread::sleep(grace);
    let id = frozen.id();
    let late = frozen.close_silently().expect("close");
    to.run(move || reinject(id.local, id.remote, &late).expect("replay"));
    (server, state)
}

/// (c) One long-lived connection moves 100 times between D and A while data
/// flows both ways; not one reset, every byte in order.
#[test]
fn survives_a_hundred_migrations() {
    require_root!();
    let lab = Lab::new();
    let (_listener, client, mut server) = start_pair(&lab.d, &lab.c, 8082, None);
    let before = snapshot(&lab.all());
    let watch = FlagWatch::start(&lab.c, 8082);
    let hosts = [&lab.d, &lab.a];
    let mut sent_queued = 0usize;
    for i in 0..100 {
        std::thread::sleep(Duration::from_millis(15));
        let switch = || {
            if i % 2 == 0 {
                lab.route_to_acceptor();
            } else {
                lab.route_to_donor();
            }
        };
        let tcp;
        (server, tcp) = move_server(
            hosts[i % 2],
            hosts[(i + 1) % 2],
            server,
            switch,
            Duration::from_millis(10),
        );
        sent_queued += usize::from(!tcp.sent.is_empty());
        assert!(client.is_running(), "client pump died at migration {i}");
    }
    eprintln!("migrations with sent-unacked bytes in the dump: {sent_queued}/100");
    let (cp, sp, _streams) = drain_and_check(client, server);
    eprintln!(
        "client received {} bytes, server received {}",
        cp.received, sp.received
    );
    assert_no_resets(&lab.all(), &before, &[0, 50, 50]);
    assert_no_fin_rst(watch);
}

/// The same move over IPv4 (capture and replay build IPv4 packets).
#[test]
fn migrates_ipv4_between_namespaces() {
    require_root!();
    let lab = Lab::new();
    let addr = SocketAddr::new(X4.into(), 8083);
    let (_listener, client, server) = start_pair_at(&lab.d, &lab.c, addr, Some(4 << 20));
    let before = snapshot(&lab.all());
    let watch = FlagWatch::start(&lab.c, 8083);
    std::thread::sleep(Duration::from_millis(200));
    let (server, tcp) = move_server(
        &lab.d,
        &lab.a,
        server,
        || lab.route_to_acceptor(),
        Duration::from_millis(30),
    );
    assert!(tcp.local.is_ipv4() && tcp.remote.is_ipv4());
    std::thread::sleep(Duration::from_millis(200));
    let _streams = drain_and_check(client, server);
    assert_no_resets(&lab.all(), &before, &[0, 1, 0]);
    assert_no_fin_rst(watch);
}
