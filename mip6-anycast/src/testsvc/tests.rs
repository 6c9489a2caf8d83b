//! Test-service tests: loopback sessions, corruption in either direction
//! (through a byte-flipping relay), and a live migration of the server
//! side with tcp-handoff inside a fresh namespace.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::pattern::HEADER_LEN;
use super::*;

const WAIT: Duration = Duration::from_secs(20);

fn cfg(seed: u64) -> ClientConfig {
    ClientConfig {
        seed,
        up_rate: 4 << 20,
        down_rate: 4 << 20,
        max_rx_samples: 100_000,
    }
}

/// Polls `cond` every 5 ms; panics with `what` after [`WAIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn service() -> (TestService, SocketAddr) {
    let svc = TestService::new(tokio::runtime::Handle::current());
    let l = TcpListener::bind("[::1]:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    svc.listen(l);
    (svc, addr)
}

#[tokio::test]
async fn session_verifies_both_directions() {
    let (svc, addr) = service().await;
    let client = TestClient::connect(addr, cfg(77)).await.unwrap();
    until("data both ways", || {
        let c = client.report();
        let s = svc.connections();
        c.received > 200_000
            && s.first()
                .and_then(|id| svc.connection(id))
                .is_some_and(|st| st.rx.bytes > 200_000)
    })
    .await;
    let id = svc.connections()[0];
    let Stopped {
        report,
        rx_log: log,
        stream,
    } = client.stop().await;
    // The log is ordered and ends at the received total.
    assert!(log.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
    assert_eq!(log.last().map(|l| l.1), Some(report.received));
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.end, Some(ClientEnd::Stopped));
    let server = svc.connection(&id).unwrap();
    assert_eq!(server.rx.mismatches, 0);
    assert!(server.tx >= report.received);
    assert!(report.sent >= server.rx.bytes);
    assert!(report.longest_gap_end.is_some());
    // Closing the client ends the server's connection (a reset when
    // the client left server data unread).
    drop(stream);
    until("server end", || {
        let s = svc.stats();
        s.eof + s.resets == 1
    })
    .await;
    assert!(svc.connections().is_empty());
    assert_eq!(svc.stats().mismatches, 0);
}

/// A relay that flips the byte at offset `up` (client to server) or
/// `down` (server to client) of the stream.
async fn flipping_relay(server: SocketAddr, up: Option<u64>, down: Option<u64>) -> SocketAddr {
    let l = TcpListener::bind("[::1]:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (c, _) = l.accept().await.unwrap();
        let s = TcpStream::connect(server).await.unwrap();
        let (cr, cw) = c.into_split();
        let (sr, sw) = s.into_split();
        tokio::spawn(copy_flip(cr, sw, up));
        tokio::spawn(copy_flip(sr, cw, down));
    });
    addr
}

async fn copy_flip(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    flip: Option<u64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut off = 0u64;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(f) = flip
            && (off..off + n as u64).contains(&f)
        {
            buf[(f - off) as usize] ^= 0x20;
        }
        off += n as u64;
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_byte_to_the_client_is_detected() {
    let (svc, addr) = service().await;
    let relay = flipping_relay(addr, None, Some(100_000)).await;
    let client = TestClient::connect(relay, cfg(5)).await.unwrap();
    until("bytes past the flip", || client.report().received > 200_000).await;
    let r = client.report();
    assert_eq!(r.mismatches, 1, "{r:?}");
    assert_eq!(r.first_mismatch, Some(100_000));
    assert!(!r.is_clean());
    assert_eq!(svc.stats().mismatches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_byte_to_the_server_is_detected_and_closes() {
    let (svc, addr) = service().await;
    let relay = flipping_relay(addr, Some(HEADER_LEN as u64 + 50_000), None).await;
    let client = TestClient::connect(relay, cfg(6)).await.unwrap();
    until("the server to close", || client.report().end.is_some()).await;
    let r = client.report();
    assert!(
        matches!(r.end, Some(ClientEnd::Eof | ClientEnd::Reset)),
        "{r:?}"
    );
    assert!(!r.is_clean());
    let s = svc.stats();
    assert_eq!((s.mismatches, s.aborted), (1, 1), "{s:?}");
}

#[tokio::test]
async fn bad_header_is_refused() {
    let (svc, addr) = service().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    until("abort counted", || svc.stats().aborted == 1).await;
}

mod netns {
    //! The server side of a live session moves to a new socket inside one
    //! fresh namespace: detach, freeze, dump + export, silent close,
    //! restore + import, replay of what arrived meanwhile.

    use std::os::fd::AsFd;

    use tcp_handoff::{
        FreezeOptions, Handoff, Limits, RestoreOptions, attach_shield, detach_shield, freeze,
        reinject,
    };

    use super::*;
    use crate::engine::netns::NetnsWorker;
    use crate::engine::testing::Lab;

    /// `Tcp: OutRsts` of the calling thread's namespace.
    fn out_rsts() -> u64 {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
        let mut lines = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "OutRsts")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap()
    }

    fn wait(rt: &tokio::runtime::Runtime, what: &str, cond: impl FnMut() -> bool) {
        rt.block_on(until(what, cond));
    }

    #[test]
    fn server_side_migrates_with_its_state() {
        crate::require_root!("testsvc::tests::netns::server_side_migrates_with_its_state");
        let lab = Lab::new_blocking(1, &[]).unwrap();
        let srv = NetnsWorker::start(lab.ns(0)).unwrap();
        let cli = NetnsWorker::start(lab.ns(0)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();

        let svc = TestService::new(srv.handle().clone());
        let listener = srv
            .run(|| std::net::TcpListener::bind("[::1]:0").unwrap())
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shield_fd = listener.try_clone().unwrap();
        listener.set_nonblocking(true).unwrap();
        let s2 = svc.clone();
        srv.run(move || s2.listen(TcpListener::from_std(listener).unwrap()))
            .unwrap();
        let client = rt
            .block_on(cli.spawn(TestClient::connect(addr, cfg(0xfeed))))
            .unwrap()
            .unwrap();
        wait(&rt, "data both ways", || {
            svc.connections()
                .first()
                .and_then(|id| svc.connection(id))
                .is_some_and(|s| s.rx.bytes > 300_000)
                && client.report().received > 300_000
        });
        let rsts_before = srv.run(out_rsts).unwrap();
        let id = svc.connections()[0];
        let before = svc.connection(&id).unwrap();
        let client_before = client.report();
        let t0 = client.started().elapsed();

        // Donor: the service lets go of the socket, which is frozen.
        let s3 = svc.clone();
        let stream = rt
            .block_on(srv.spawn(async move { s3.detach(id).await }))
            .unwrap()
            .unwrap();
        let mut app = svc.clone();
        let moved = srv
            .run(move || -> Result<(Vec<_>, usize), String> {
                let e = |e: tcp_handoff::Error| e.to_string();
                // No segment may find the 4-tuple without a socket.
                attach_shield(shield_fd.as_fd()).map_err(e)?;
                let mut frozen = freeze(stream, &FreezeOptions::default()).map_err(e)?;
                let wire = Handoff::export([&mut frozen], &mut app)
                    .map_err(e)?
                    .encode();
                let old = frozen.id();
                let late = frozen.close_silently().map_err(e)?;
                // Acceptor (here: the same namespace, a new socket).
                let bundle =
                    Handoff::decode(&wire, &Limits::default()).map_err(|d| d.to_string())?;
                let ids = bundle
                    .import(&RestoreOptions::default(), &mut app)
                    .map_err(e)?;
                reinject(old.local, old.remote, &late).map_err(e)?;
                detach_shield(shield_fd.as_fd()).map_err(e)?;
                Ok((ids, late.len()))
            })
            .unwrap()
            .unwrap();
        assert_eq!(moved.0, vec![id]);
        let t1 = client.started().elapsed();

        // Data keeps flowing both ways from where it stopped.
        wait(&rt, "data after the move", || {
            svc.connection(&id)
                .is_some_and(|s| s.rx.bytes > before.rx.bytes + 300_000)
                && client.report().received > client_before.received + 300_000
        });
        let after = svc.connection(&id).unwrap();
        let report = client.report();
        assert!(report.is_clean(), "client: {report:?}");
        assert_eq!(after.rx.mismatches, 0);
        assert!(after.tx > before.tx);
        let st = svc.stats();
        assert_eq!(
            (
                st.detached,
                st.adopted,
                st.mismatches,
                st.resets,
                st.aborted
            ),
            (1, 1, 0, 0, 0),
            "{st:?}"
        );
        assert_eq!(srv.run(out_rsts).unwrap(), rsts_before, "a reset was sent");
        eprintln!(
            "moved in {:?}; late segments {}; client stall around the move {:?}; longest gap overall {:?}",
            t1.saturating_sub(t0),
            moved.1,
            client.longest_gap_within(
                t0.saturating_sub(Duration::from_millis(50)),
                t1 + Duration::from_millis(20)
            ),
            report.longest_gap
        );
        let stopped = rt.block_on(cli.spawn(client.stop())).unwrap();
        assert!(stopped.report.is_clean(), "{:?}", stopped.report);
    }
}
