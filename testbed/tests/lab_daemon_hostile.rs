//! Hostile input at the real daemons (needs root): from the router, random
//! and malformed packets are sprayed at the client, the home agent, the
//! contact node's care-of address and the anycast address: garbage behind
//! the steered next headers (RH2, Destination Options, Mobility Header,
//! IPv6-in-IPv6), wrong lengths, Mobility Header messages with bad
//! checksums and forged authenticators, tunnels from strangers. No daemon
//! crashes, their drop counters grow, the existing registration and
//! binding stay, and the route-optimized connection keeps working.

mod daemon_support;

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use daemon_support::{C, DaemonLab, HA, K, sum, topology};
use mip6_anycast::require_root;
use mip6_anycast::wire::{
    BeStatus, BindingErrorRepr, BindingUpdateRepr, BuFlags, HomeTestInitRepr, MessageAuth,
    MhMessage, MhPacketRepr, MhRepr, MobilityOption, TunnelParams, ip6ip6,
};
use serde_json::Value;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// xorshift64*: deterministic hostile bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn addr(&mut self) -> Ipv6Addr {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            self.below(5) as u16,
            0,
            0,
            0,
            0,
            self.below(20) as u16,
        )
    }
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, payload: &[u8], len_field: Option<u16>) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    let len = len_field.unwrap_or(payload.len() as u16);
    p[4..6].copy_from_slice(&len.to_be_bytes());
    p[6] = nh;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// One hostile packet to `dst` (kind chosen by `rng`).
fn hostile(rng: &mut Rng, dst: Ipv6Addr, x: Ipv6Addr) -> Vec<u8> {
    let src = rng.addr();
    let nh = [43u8, 60, 135, 41, 0, 44, 6, 17, 58][rng.below(9) as usize];
    match rng.below(8) {
        // Garbage behind a steered next header.
        0 | 1 => {
            let n = rng.below(300) as usize;
            ipv6(src, dst, nh, &rng.bytes(n), None)
        }
        // A payload length that lies.
        2 => {
            let n = rng.below(100) as usize;
            let lie = rng.below(2000) as u16;
            ipv6(src, dst, nh, &rng.bytes(n), Some(lie))
        }
        // A well-formed Mobility Header, then bytes flipped (checksum).
        3 => {
            let mut p = MhPacketRepr::new(
                src,
                dst,
                MhRepr::new(MhMessage::HomeTestInit(HomeTestInitRepr {
                    home_init_cookie: rng.next().to_be_bytes(),
                })),
            )
            .to_bytes()
            .unwrap();
            let i = 40 + rng.below((p.len() - 40) as u64) as usize;
            p[i] ^= 1 + rng.below(255) as u8;
            p
        }
        // A forged Binding Update (home registration or RR) with a random
        // authenticator, claiming X from a random care-of address.
        4 => {
            let home = rng.below(2) == 0;
            let mut mh = MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
                sequence: rng.next() as u16,
                flags: if home {
                    BuFlags::ACK | BuFlags::HOME
                } else {
                    BuFlags::ACK
                },
                lifetime: 100,
            }));
            if home {
                mh = mh
                    .with_option(MobilityOption::MesgId {
                        timestamp: rng.next(),
                    })
                    .with_option(MobilityOption::MessageAuth(MessageAuth {
                        subtype: 1,
                        spi: if rng.below(2) == 0 {
                            4242
                        } else {
                            rng.next() as u32
                        },
                        auth_data: rng.bytes(12),
                    }));
            } else {
                mh = mh
                    .with_option(MobilityOption::NonceIndices {
                        home_nonce_index: rng.next() as u16,
                        care_of_nonce_index: rng.next() as u16,
                    })
                    .with_option(MobilityOption::BindingAuthData {
                        authenticator: rng.next().to_be_bytes().repeat(2)[..12].try_into().unwrap(),
                    });
            }
            MhPacketRepr {
                hao: Some(x),
                ..MhPacketRepr::new(src, dst, mh)
            }
            .to_bytes()
            .unwrap()
        }
        // A Binding Error about X from a stranger.
        5 => MhPacketRepr::new(
            src,
            dst,
            MhRepr::new(MhMessage::BindingError(BindingErrorRepr {
                status: BeStatus::UnknownBindingForHao,
                home_address: x,
            })),
        )
        .to_bytes()
        .unwrap(),
        // A tunnel from a stranger, inner packet to X or garbage.
        6 => {
            let inner = ipv6(rng.addr(), x, 6, &rng.bytes(40), None);
            ip6ip6::encapsulate_vec(&inner, &TunnelParams::new(src, dst)).unwrap()
        }
        // A Type 2 Routing Header for a random home address, or X.
        _ => {
            let hoa = if rng.below(2) == 0 { x } else { rng.addr() };
            let mut rh = vec![6u8, 2, 2, 1, 0, 0, 0, 0];
            rh.extend(hoa.octets());
            rh.extend(rng.bytes(20));
            ipv6(src, dst, 43, &rh, None)
        }
    }
}

fn drops(lab: &DaemonLab, daemon: &str) -> (u64, u64) {
    let engine = lab.engine(daemon);
    let s = lab.ctl(daemon, "status");
    let machine = match daemon {
        K => sum(&s["home_registration"]["drops"]) + sum(&s["route_optimization"]["drops"]),
        _ => sum(&s["drops"]),
    };
    (engine["dropped"]["packets"].as_u64().unwrap(), machine)
}

#[test]
fn hostile_packets_leave_daemons_and_bindings_intact() {
    require_root!("hostile_packets_leave_daemons_and_bindings_intact");
    let lab = DaemonLab::start(
        "hostile",
        topology(
            1.0,
            &[(
                K,
                "[route_optimization]\ndelay_s = 0.0\npeer_scan_s = 0.2\n",
            )],
        ),
    );
    let mut conn = lab.connect();
    let (coa, _) = lab.wait_route_optimized();
    conn.round_trip(64).expect("echo");
    let ha_before: Value = lab.ctl(HA, "bindings");
    let before: Vec<(u64, u64)> = [C, HA, K].iter().map(|d| drops(&lab, d)).collect();

    let x = lab.roles.x;
    let targets: [Ipv6Addr; 4] = [
        "2001:db8:1::10".parse().unwrap(),
        "2001:db8:2::10".parse().unwrap(),
        lab.k_coa(),
        x,
    ];
    let sock = lab
        .session
        .lab
        .run_in("R", || {
            Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(255)))
        })
        .unwrap()
        .expect("raw socket in R");
    let mut rng = Rng(0x6d69_7036_2d61_6e79);
    let mut sent = 0u32;
    for round in 0..1500 {
        for dst in targets {
            let p = hostile(&mut rng, dst, x);
            if sock
                .send_to(&p, &SockAddr::from(SocketAddrV6::new(dst, 0, 0, 0)))
                .is_ok()
            {
                sent += 1;
            }
        }
        if round % 100 == 99 {
            // Let the daemons breathe: the test is about correctness, not
            // about overload.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(sent > 3000, "only {sent} hostile packets left R");
    std::thread::sleep(Duration::from_millis(500));

    for (d, (e0, m0)) in [C, HA, K].iter().zip(before) {
        let p = lab.session.daemon(d).unwrap();
        assert!(p.is_running(), "{d} died:\n{}", lab.log_tail(d));
        let (e1, m1) = drops(&lab, d);
        eprintln!("{d}: engine drops {e0} -> {e1}, protocol drops {m0} -> {m1}");
        assert!(e1 > e0, "{d}: engine drops did not grow ({e0} -> {e1})");
        assert!(m1 > m0, "{d}: protocol drops did not grow ({m0} -> {m1})");
    }
    // Nothing changed that matters.
    assert_eq!(lab.ctl(HA, "bindings")[0]["coa"], ha_before[0]["coa"]);
    assert_eq!(
        lab.ctl(HA, "bindings")[0]["sequence"],
        ha_before[0]["sequence"]
    );
    assert_eq!(lab.client_binding().map(|b| b.0), Some(coa));
    assert!(lab.k_bound());
    for _ in 0..10 {
        conn.round_trip(512).expect("echo after the spray");
    }
    conn.close().expect("close");
    let mut fresh = lab.connect();
    fresh
        .round_trip(64)
        .expect("a new connection after the spray");
    fresh.close().expect("close");
}
