//! (e) Forged, truncated and inconsistent input gets a typed error, never a
//! panic, and never reaches the kernel unchecked.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::Netns;
use proptest::prelude::*;
use tcp_handoff::{
    CapturedSegment, ConnectionHandoff, DecodeError, Error, FreezeOptions, Handoff, LateSegments,
    Limits, RestoreOptions, TcpState, ValidationError, freeze, restore_paused,
};

/// A genuine state, dumped from a live loopback connection in `ns`.
fn real_state(ns: &Netns) -> TcpState {
    ns.run(|| {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        std::io::Write::write_all(&mut c, b"queued at the server").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut f = freeze(s, &FreezeOptions::default()).unwrap();
        let st = f.dump().unwrap();
        f.close_silently().unwrap();
        st
    })
}

/// A forgery: its name, how it changes a good state and the restore
/// options, and the error it must produce.
type Case = (
    &'static str,
    Box<dyn Fn(&mut TcpState, &mut RestoreOptions)>,
    fn(&Error) -> bool,
);

#[test]
fn forged_states_are_refused_before_the_kernel() {
    require_root!();
    let ns = Netns::new("f");
    let good = real_state(&ns);
    assert_eq!(good.recv, b"queued at the server");
    let cases: Vec<Case> = vec![
        ("version", Box::new(|s, _| s.version = 77), |e| {
            matches!(e, Error::Invalid(ValidationError::Version(77)))
        }),
        ("mss", Box::new(|s, _| s.options.mss = 0), |e| {
            matches!(e, Error::Invalid(ValidationError::Mss(0)))
        }),
        (
            "wscale",
            Box::new(|s, _| s.options.wscale = Some(tcp_handoff::WindowScale { snd: 200, rcv: 1 })),
            |e| matches!(e, Error::Invalid(ValidationError::WindowScale(200))),
        ),
        (
            "window",
            Box::new(|s, _| {
                if let Some(w) = s.window.as_mut() {
                    w.rcv_wup = s.rcv_nxt.wrapping_add(1000);
                }
            }),
            |e| matches!(e, Error::Invalid(ValidationError::Window(_))),
        ),
        (
            "queue over limit",
            Box::new(|s, o| {
                s.recv = vec![0; 4096];
                o.limits.max_recv_queue = 1024;
            }),
            |e| matches!(e, Error::Invalid(ValidationError::QueueTooLong { .. })),
        ),
        (
            "family",
            Box::new(|_, o| o.local = Some("127.0.0.1:80".parse().unwrap())),
            |e| matches!(e, Error::Invalid(ValidationError::FamilyMismatch { .. })),
        ),
        ("port zero", Box::new(|s, _| s.remote.set_port(0)), |e| {
            matches!(e, Error::Invalid(ValidationError::Address(_)))
        }),
        (
            "buffer",
            Box::new(|s, _| s.buffers.rcvbuf = u32::MAX),
            |e| matches!(e, Error::Invalid(ValidationError::Buffer { .. })),
        ),
        (
            "congestion name",
            Box::new(|s, _| s.sockopts.congestion = Some("a b".into())),
            |e| matches!(e, Error::Invalid(ValidationError::Congestion)),
        ),
        (
            // Valid in form but not bindable: the kernel's refusal comes back typed.
            "foreign address without freebind",
            Box::new(|_, o| {
                o.local = Some("[2001:db8::99]:80".parse().unwrap());
                o.freebind = false;
            }),
            |e| matches!(e, Error::Sys { op: "bind", .. }),
        ),
    ];
    for (name, forge, expected) in cases {
        let mut st = good.clone();
        let mut opts = RestoreOptions::default();
        forge(&mut st, &mut opts);
        let got = ns.run(move || restore_paused(&st, &opts).map(|p| p.id()));
        match got {
            Err(e) => assert!(expected(&e), "{name}: unexpected error {e}"),
            Ok(id) => panic!("{name}: forged state restored as {id}"),
        }
    }
}

#[test]
fn forged_captured_segments_are_refused() {
    require_root!();
    let ns = Netns::new("g");
    let good = real_state(&ns);
    let handoff = Handoff {
        connections: vec![ConnectionHandoff {
            tcp: good,
            app_state: Vec::new(),
            captured: vec![CapturedSegment {
                seq: 1,
                ack: 1,
                flags: tcp_handoff::segment::SYN,
                window: 1,
                options: Vec::new(),
                payload: Vec::new(),
            }],
        }],
    };
    struct NoApp;
    impl tcp_handoff::AppState for NoApp {
        type Error = std::io::Error;
        fn export(&mut self, _: &tcp_handoff::ConnectionId) -> Result<Vec<u8>, Self::Error> {
            Ok(Vec::new())
        }
        fn import(
            &mut self,
            _: &tcp_handoff::ConnectionId,
            _: &[u8],
            _: TcpStream,
        ) -> Result<(), Self::Error> {
            Ok(())
        }
    }
    let got = ns.run(move || handoff.import(&RestoreOptions::default(), &mut NoApp));
    assert!(
        matches!(got, Err(Error::Invalid(ValidationError::Captured(_)))),
        "{got:?}"
    );
}

fn sample() -> TcpState {
    TcpState {
        version: tcp_handoff::TCP_STATE_VERSION,
        local: "[2001:db8::1]:443".parse::<SocketAddr>().unwrap(),
        remote: "[2001:db8::2]:50000".parse().unwrap(),
        snd_una: 1,
        rcv_nxt: 2,
        sent: vec![1; 40],
        unsent: vec![2; 30],
        recv: vec![3; 20],
        options: tcp_handoff::TcpOptions {
            mss: 1440,
            sack: true,
            wscale: Some(tcp_handoff::WindowScale { snd: 7, rcv: 7 }),
            timestamp: Some(5),
        },
        window: None,
        buffers: tcp_handoff::Buffers::default(),
        sockopts: tcp_handoff::SockOpts::default(),
    }
}

proptest! {
    #[test]
    fn decoders_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let limits = Limits::default();
        let _ = TcpState::decode(&bytes, &limits);
        let _ = Handoff::decode(&bytes, &limits);
        let _ = LateSegments::decode(&bytes, &limits);
        let _ = tcp_handoff::segment::parse_packet(&bytes);
    }

    #[test]
    fn mutated_encodings_decode_or_fail_cleanly(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let handoff = Handoff {
            connections: vec![ConnectionHandoff { tcp: sample(), app_state: b"app".to_vec(), captured: Vec::new() }],
        };
        let mut enc = handoff.encode();
        for (at, v) in flips {
            let i = at.index(enc.len());
            enc[i] ^= v;
        }
        let cut = cut.index(enc.len() + 1);
        let limits = Limits { max_recv_queue: 64, max_send_queue: 128, ..Limits::default() };
        if let Ok(h) = Handoff::decode(&enc[..cut], &limits) {
            // Whatever decodes stays within the limits.
            for c in &h.connections {
                prop_assert!(c.tcp.recv.len() <= 64);
                prop_assert!(c.tcp.sent.len() + c.tcp.unsent.len() <= 128);
                let _ = c.tcp.validate(c.tcp.local, &limits);
            }
        }
    }
}

#[test]
fn decode_errors_name_the_problem() {
    let enc = sample().encode();
    assert_eq!(
        TcpState::decode(b"nope", &Limits::default()),
        Err(DecodeError::Magic)
    );
    assert!(matches!(
        TcpState::decode(&enc[..enc.len() - 1], &Limits::default()),
        Err(DecodeError::Truncated { .. })
    ));
}
