//! The emulated link over unix socketpairs (packet boundaries kept): order,
//! deadlines, loss, queue limits, live changes, shutdown, hostile input.

mod linkemu_support;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use linkemu_support::*;
use nix::sys::socket::SockType;
use testbed::linkemu::{DirectionConfig, EmulatedLink, LinkConfig, LinkStats};
use testbed::topology::LinkDir;

const MS: u64 = 1_000_000;

fn start(name: &str, ty: SockType, cfg: DirectionConfig) -> (OwnedFd, EmulatedLink, OwnedFd) {
    let (app_a, link_a, link_b, app_b) = two_pairs(ty);
    let link = EmulatedLink::start(LinkConfig::symmetric(name, cfg), link_a, link_b).unwrap();
    (app_a, link, app_b)
}

/// Receives probes until `n` arrived or nothing came for `idle`:
/// `(seq, send time, receive time)`.
fn collect(fd: &OwnedFd, n: usize, idle: Duration) -> Vec<(u64, u64, u64)> {
    let mut buf = vec![0u8; 70_000];
    let mut got = Vec::new();
    while got.len() < n {
        let Some(len) = recv_timeout(fd, &mut buf, idle) else {
            break;
        };
        let t = now_ns();
        let (seq, sent) = parse_probe(&buf[..len]).expect("probe");
        got.push((seq, sent, t));
    }
    got
}

fn settled(link: &EmulatedLink, dir: LinkDir, entered: u64) -> bool {
    let s = link.stats();
    let d = match dir {
        LinkDir::AToB => s.a_to_b,
        LinkDir::BToA => s.b_to_a,
    };
    d.packets_in == entered && d.queued == 0
}

fn conserved(s: &LinkStats) {
    for d in [&s.a_to_b, &s.b_to_a] {
        assert_eq!(
            d.packets_in,
            d.packets_out
                + d.dropped_loss
                + d.dropped_queue
                + d.dropped_invalid
                + d.write_errors
                + d.queued,
            "every packet read has exactly one fate: {d:?}"
        );
    }
}

/// Sends `n` probes of `len` bytes a -> b, `gap` apart, through a link with
/// `cfg` while a thread receives them; returns what arrived
/// `(seq, sent, received)` and the final counters.
fn paced_run(
    name: &str,
    cfg: DirectionConfig,
    n: usize,
    len: usize,
    gap: Duration,
) -> (Vec<(u64, u64, u64)>, LinkStats) {
    let (app_a, link, app_b) = start(name, SockType::SeqPacket, cfg);
    let rx = std::thread::spawn(move || collect(&app_b, n, Duration::from_secs(3)));
    for i in 0..n as u64 {
        send(&app_a, &probe(i, len)).unwrap();
        std::thread::sleep(gap);
    }
    let got = rx.join().unwrap();
    (got, link.shutdown())
}

#[test]
fn order_kept_and_no_packet_before_its_deadline() {
    let delay = DirectionConfig::with_delay(Duration::from_millis(5));
    let n = 300;
    let (got, s) = paced_run("order", delay, n, 200, Duration::from_micros(30));
    assert_eq!(got.len(), n);
    for (k, (seq, sent, recv)) in got.iter().enumerate() {
        assert_eq!(*seq, k as u64, "reordered");
        assert!(
            recv - sent >= 5 * MS,
            "packet {seq} after {} ns < 5 ms",
            recv - sent
        );
    }
    assert_eq!(s.a_to_b.packets_out, n as u64);
    assert_eq!(s.a_to_b.bytes_out, 200 * n as u64);
    assert_eq!(s.b_to_a.packets_in, 0);
    conserved(&s);
}

#[test]
fn jitter_does_not_reorder_unless_asked() {
    let cfg = DirectionConfig {
        delay: Duration::from_millis(4),
        jitter: Duration::from_millis(3),
        ..Default::default()
    };
    let n = 400;
    let gap = Duration::from_micros(100);
    let (got, _) = paced_run("jitter", cfg, n, 100, gap);
    assert_eq!(got.len(), n);
    let in_order = got.windows(2).all(|w| w[0].0 < w[1].0);
    assert!(in_order, "jitter reordered packets");
    let min_ok = got.iter().all(|(_, s, r)| r - s >= MS);
    assert!(min_ok, "below delay - jitter");

    // With `reorder`, a jitter much larger than the spacing reorders.
    let cfg = DirectionConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(9),
        reorder: true,
        ..Default::default()
    };
    let (got, _) = paced_run("reorder", cfg, n, 100, gap);
    assert_eq!(got.len(), n);
    let reordered = got.windows(2).any(|w| w[0].0 > w[1].0);
    assert!(reordered, "reorder = true never reordered");
}

/// Sends `n` probes through a link with `loss` and seed `seed`; returns the
/// sequence numbers received and the final counters.
fn lossy_run(seed: u64, loss: f64, n: u64) -> (Vec<u64>, LinkStats) {
    let (app_a, link_a, link_b, app_b) = two_pairs(SockType::SeqPacket);
    let mut cfg = LinkConfig::symmetric(
        "lossy",
        DirectionConfig {
            loss,
            ..Default::default()
        },
    );
    cfg.seed = seed;
    let link = EmulatedLink::start(cfg, link_a, link_b).unwrap();
    let rx = std::thread::spawn(move || collect(&app_b, usize::MAX, Duration::from_millis(500)));
    for i in 0..n {
        send(&app_a, &probe(i, 64)).unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || settled(
        &link,
        LinkDir::AToB,
        n
    )));
    let got: Vec<u64> = rx.join().unwrap().into_iter().map(|g| g.0).collect();
    (got, link.shutdown())
}

#[test]
fn loss_rate_matches_and_is_deterministic_per_seed() {
    let n = 4000;
    let (got, s) = lossy_run(7, 0.25, n);
    let d = &s.a_to_b;
    assert_eq!(d.packets_in, n);
    assert_eq!(d.dropped_queue, 0);
    assert_eq!(d.packets_out as usize, got.len());
    assert_eq!(d.packets_out + d.dropped_loss, n);
    let rate = d.dropped_loss as f64 / n as f64;
    let sigma = (0.25f64 * 0.75 / n as f64).sqrt();
    assert!((rate - 0.25).abs() < 5.0 * sigma, "loss rate {rate}");
    conserved(&s);
    // The same seed loses the same packets; another seed others.
    let (again, _) = lossy_run(7, 0.25, n);
    assert_eq!(got, again);
    let (other, _) = lossy_run(8, 0.25, n);
    assert_ne!(got, other);
}

/// Starts a link with `cfg`, sends `count` probes of `len` bytes a -> b in
/// one burst and waits until the link has read them all.
fn burst(name: &str, cfg: DirectionConfig, count: u64, len: usize) -> (EmulatedLink, OwnedFd) {
    let (app_a, link, app_b) = start(name, SockType::SeqPacket, cfg);
    for i in 0..count {
        send(&app_a, &probe(i, len)).unwrap();
    }
    let all_in = || link.stats().a_to_b.packets_in == count;
    assert!(wait_until(Duration::from_secs(5), all_in));
    (link, app_b)
}

#[test]
fn queue_limit_tail_drops_and_counts() {
    let cfg = DirectionConfig {
        delay: Duration::from_secs(1),
        queue_packets: 10,
        ..Default::default()
    };
    let (link, app_b) = burst("qlimit", cfg, 30, 100);
    let s = link.stats();
    assert_eq!(s.a_to_b.dropped_queue, 20);
    assert_eq!(s.a_to_b.queued, 10);
    let got = collect(&app_b, 30, Duration::from_secs(3));
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    let first: Vec<u64> = (0..10).collect();
    assert_eq!(seqs, first, "tail drop keeps the first ones");
    let s = link.shutdown();
    assert_eq!(s.a_to_b.packets_out, 10);
    conserved(&s);

    // Byte limit: 3 packets of 1000 bytes fit in 3500, the 4th does not.
    let cfg = DirectionConfig {
        delay: Duration::from_secs(1),
        queue_bytes: 3500,
        ..Default::default()
    };
    let (link, _app_b) = burst("qbytes", cfg, 5, 1000);
    let s = link.shutdown();
    assert_eq!((s.a_to_b.queued, s.a_to_b.dropped_queue), (3, 2));
}

#[test]
fn live_changes_take_effect() {
    let (app_a, link, app_b) = start("live", SockType::SeqPacket, DirectionConfig::default());
    let h = link.handle();
    let mut buf = vec![0u8; 2048];
    let one = |seq: u64, buf: &mut Vec<u8>| {
        send(&app_a, &probe(seq, 80)).unwrap();
        recv_timeout(&app_b, buf, Duration::from_secs(3)).map(|n| {
            let (s, sent) = parse_probe(&buf[..n]).unwrap();
            (s, now_ns() - sent)
        })
    };
    // Raise the delay: the next packet takes at least the new delay.
    h.set_delay(&LinkDir::BOTH, Duration::from_millis(30))
        .unwrap();
    assert_eq!(h.config(LinkDir::AToB).delay, Duration::from_millis(30));
    let (seq, took) = one(1, &mut buf).expect("delivered");
    assert_eq!(seq, 1);
    assert!(took >= 30 * MS, "took {took} ns");
    // Cut it from 400 ms to 0: the next packet is much faster than 400 ms.
    h.set_delay(&[LinkDir::AToB], Duration::from_millis(400))
        .unwrap();
    let (_, took) = one(2, &mut buf).expect("delivered");
    assert!(took >= 400 * MS);
    h.set_delay(&[LinkDir::AToB], Duration::ZERO).unwrap();
    let (_, took) = one(3, &mut buf).expect("delivered");
    assert!(took < 400 * MS, "delay change ignored: {took} ns");

    // Loss 1.0: nothing passes, every packet is counted as lost.
    h.set_loss(&[LinkDir::AToB], 1.0).unwrap();
    for i in 0..20 {
        send(&app_a, &probe(100 + i, 80)).unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || link
        .stats()
        .a_to_b
        .dropped_loss
        == 20));
    assert_eq!(
        recv_timeout(&app_b, &mut buf, Duration::from_millis(50)),
        None
    );
    h.set_loss(&[LinkDir::AToB], 0.0).unwrap();
    assert_eq!(one(4, &mut buf).map(|x| x.0), Some(4));

    // Down / up keeps the configured loss.
    h.set_down(&LinkDir::BOTH, true);
    assert!(h.is_down(LinkDir::BToA));
    send(&app_a, &probe(5, 80)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || link
        .stats()
        .a_to_b
        .dropped_loss
        == 21));
    h.set_down(&LinkDir::BOTH, false);
    assert_eq!(one(6, &mut buf).map(|x| x.0), Some(6));
    assert_eq!(h.config(LinkDir::AToB).loss, 0.0);

    // Invalid changes are refused and change nothing.
    assert!(h.set_loss(&LinkDir::BOTH, 1.5).is_err());
    assert!(h.set_loss(&LinkDir::BOTH, f64::NAN).is_err());
    assert_eq!(h.config(LinkDir::BToA).loss, 0.0);
    conserved(&link.shutdown());
}

#[test]
fn rate_limit_queues_instead_of_breaking_the_delay() {
    // 1000-byte packets at 0.8 Mbit/s: 10 ms each. A burst of 20 leaves
    // over 200 ms, in order, none early, and the extra delay is reported.
    let cfg = DirectionConfig {
        delay: Duration::from_millis(2),
        rate_bps: Some(800_000),
        ..Default::default()
    };
    let (app_a, link, app_b) = start("rate", SockType::SeqPacket, cfg);
    let t0 = now_ns();
    for i in 0..20 {
        send(&app_a, &probe(i, 1000)).unwrap();
    }
    let got = collect(&app_b, 20, Duration::from_secs(3));
    assert_eq!(got.len(), 20);
    for (k, (seq, _, recv)) in got.iter().enumerate() {
        assert_eq!(*seq, k as u64);
        // The k-th (from 0) finishes serializing 10 (k+1) ms after the burst.
        let due = (k as u64 + 1) * 10 * MS + 2 * MS;
        assert!(recv - t0 >= due, "packet {k} early");
    }
    let s = link.shutdown();
    // The last packet waited for 19 others to serialize (minus however
    // long the burst took to enter).
    assert!(s.a_to_b.max_queue_delay_ns >= 100 * MS, "{:?}", s.a_to_b);
    conserved(&s);
}

#[test]
fn threads_exit_and_fds_close_on_drop() {
    let (app_a, link, app_b) = start(
        "leakchk",
        SockType::SeqPacket,
        DirectionConfig::with_delay(Duration::from_secs(10)),
    );
    let ours = || {
        thread_names()
            .into_iter()
            .filter(|n| n.ends_with("-leakchk"))
            .count()
    };
    // A new thread sets its name itself, shortly after it starts.
    assert!(
        wait_until(Duration::from_secs(5), || ours() == 4),
        "{:?}",
        thread_names()
    );
    // A packet is still queued (10 s) when the link goes: it is discarded.
    send(&app_a, &probe(0, 100)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || link
        .stats()
        .a_to_b
        .queued
        == 1));
    let h = link.handle();
    drop(link);
    assert!(h.is_stopped());
    assert_eq!(ours(), 0, "link threads still alive after drop");
    // Both link fds are closed: the application ends see end of file.
    let mut buf = [0u8; 64];
    assert_eq!(
        recv_timeout(&app_a, &mut buf, Duration::from_secs(1)),
        Some(0)
    );
    assert_eq!(
        recv_timeout(&app_b, &mut buf, Duration::from_secs(1)),
        Some(0)
    );
    // The handle outlives the link harmlessly.
    h.set_delay(&LinkDir::BOTH, Duration::ZERO).unwrap();
    assert_eq!(h.stats().a_to_b.queued, 1);
}

#[test]
fn oversize_and_empty_packets_are_counted_and_the_link_goes_on() {
    let (app_a, link_a, link_b, app_b) = two_pairs(SockType::Datagram);
    let mut cfg = LinkConfig::symmetric("hostile", DirectionConfig::default());
    cfg.max_packet = 1000;
    let link = EmulatedLink::start(cfg, link_a, link_b).unwrap();
    send(&app_a, &[0xff; 1001]).unwrap();
    send(&app_a, &[]).unwrap();
    send(&app_a, &vec![0xab; 60_000]).unwrap();
    // Garbage that is no IP packet passes unchanged: the link is a wire.
    let garbage: Vec<u8> = (0..1000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    send(&app_a, &garbage).unwrap();
    let mut buf = vec![0u8; 70_000];
    let n = recv_timeout(&app_b, &mut buf, Duration::from_secs(3)).expect("garbage forwarded");
    assert_eq!(&buf[..n], &garbage[..]);
    let s = link.shutdown();
    assert_eq!(s.a_to_b.packets_in, 4);
    assert_eq!(s.a_to_b.dropped_invalid, 3);
    assert_eq!(s.a_to_b.packets_out, 1);
    conserved(&s);
}

#[test]
fn a_closed_end_is_counted_and_shuts_down_cleanly() {
    let (app_a, link, app_b) = start("closed", SockType::SeqPacket, DirectionConfig::default());
    send(&app_a, &probe(0, 64)).unwrap();
    let mut buf = vec![0u8; 256];
    assert!(recv_timeout(&app_b, &mut buf, Duration::from_secs(3)).is_some());
    // End a goes away: reader a->b sees the hang-up; writes b->a now fail.
    drop(app_a);
    assert!(wait_until(Duration::from_secs(5), || link
        .stats()
        .a_to_b
        .input_closed));
    for i in 0..5 {
        send(&app_b, &probe(i, 64)).unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || link
        .stats()
        .b_to_a
        .write_errors
        == 5));
    let s = link.shutdown();
    assert!(s.a_to_b.input_closed && !s.b_to_a.input_closed);
    assert_eq!(s.b_to_a.packets_out, 0);
    conserved(&s);
}

#[test]
fn a_full_receiver_backs_up_into_the_queue() {
    // The receiver's socket buffer is full before the link starts: the
    // writer waits, the queue fills to its limit and the rest is
    // tail-dropped. Shutdown still returns while the writer is blocked.
    let (app_a, link_a, link_b, app_b) = two_pairs(SockType::Datagram);
    let filler = [0u8; 500];
    let mut filled = 0;
    // SAFETY: sends from a valid buffer on a valid socket.
    while unsafe {
        libc::send(
            link_b.as_raw_fd(),
            filler.as_ptr().cast(),
            500,
            libc::MSG_DONTWAIT,
        )
    } > 0
    {
        filled += 1;
    }
    assert!(filled > 0);
    let cfg = DirectionConfig {
        queue_packets: 50,
        ..Default::default()
    };
    let link = EmulatedLink::start(LinkConfig::symmetric("full", cfg), link_a, link_b).unwrap();
    let n = 200;
    for i in 0..n {
        send(&app_a, &probe(i, 500)).unwrap();
    }
    let stuck = |s: &LinkStats| s.a_to_b.packets_in == n;
    assert!(wait_until(Duration::from_secs(10), || stuck(&link.stats())));
    let s = link.stats();
    assert_eq!(s.a_to_b.packets_out, 0, "{s:?}");
    // The line's 50, plus the packet the writer holds if it took one
    // before the line filled up.
    let held = s.a_to_b.queued;
    assert!(held == 50 || held == 51, "{s:?}");
    assert_eq!(s.a_to_b.dropped_queue, n - held);
    conserved(&s);
    // Reading at the receiver lets the writer go on: after the filler, our
    // probes come, the first ones first, in order.
    let mut buf = [0u8; 1024];
    for _ in 0..filled {
        assert_eq!(
            recv_timeout(&app_b, &mut buf, Duration::from_secs(3)),
            Some(500)
        );
    }
    let got = collect(&app_b, held as usize, Duration::from_secs(3));
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs.len() as u64, held);
    assert_eq!(seqs[..50], (0..50).collect::<Vec<u64>>()[..]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let s = link.shutdown();
    assert_eq!((s.a_to_b.packets_out, s.a_to_b.queued), (held, 0));
    conserved(&s);
}

#[test]
fn shutdown_returns_while_the_writer_is_blocked() {
    let (app_a, link_a, link_b, _app_b) = two_pairs(SockType::Datagram);
    let filler = [0u8; 500];
    // SAFETY: as above.
    while unsafe {
        libc::send(
            link_b.as_raw_fd(),
            filler.as_ptr().cast(),
            500,
            libc::MSG_DONTWAIT,
        )
    } > 0
    {}
    let link = EmulatedLink::start(
        LinkConfig::symmetric("blocked", DirectionConfig::default()),
        link_a,
        link_b,
    )
    .unwrap();
    for i in 0..5 {
        send(&app_a, &probe(i, 500)).unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || link
        .stats()
        .a_to_b
        .packets_in
        == 5));
    let s = link.shutdown();
    assert_eq!((s.a_to_b.packets_out, s.a_to_b.queued), (0, 5));
    conserved(&s);
}
