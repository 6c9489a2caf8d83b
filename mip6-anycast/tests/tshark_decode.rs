//! Wireshark's dissectors judge our emitter: every packet below is built
//! with `mip6_anycast::wire` (one of every MH type, every mobility option
//! kind, RH2 and HAO packets made by the in-place edit helpers, IPv6-in-IPv6),
//! written to a pcap (LINKTYPE_RAW), and decoded with `tshark -T json -x`.
//! For each packet tshark must show the expected MH type and key fields, no
//! malformed packet and no expert item of severity warning or above.
//!
//! Checksums: tshark verifies ICMPv6/TCP/UDP checksums (status 1 = good),
//! which for our HAO/RH2 packets proves the pseudo-header uses the home
//! address. Wireshark 4.0 does not verify the Mobility Header checksum, so
//! for MH packets the test recomputes it from tshark's own decode: the MH
//! bytes tshark delimited (`mipv6_raw`) and the addresses it shows (HAO home
//! address, else source; RH2 home address, else destination), with a plain
//! bytewise RFC 1071 sum written here.
//!
//! When tshark is missing the test prints a loud SKIP, except with
//! `CI=true`, where it fails.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mip6_anycast::wire::{
    BaFlags, BaStatus, BeStatus, BindingAckRepr, BindingErrorRepr, BindingUpdateRepr, BuFlags,
    CareOfTestInitRepr, CareOfTestRepr, HomeTestInitRepr, HomeTestRepr, Ipv6Repr, MessageAuth,
    MhMessage, MhPacketRepr, MhRepr, MobilityOption, PacketBuf, TunnelParams, checksum, ip_proto,
    mh,
};
use serde_json::Value;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const HOA: &str = "2001:db8:1::100";
const HA: &str = "2001:db8:1::1";
const COA: &str = "2001:db8:2::100";
const CN: &str = "2001:db8:3::10";
const ACOA: &str = "2001:db8:4::100";
const HOA2: &str = "2001:db8:7::200";
const COA2: &str = "2001:db8:8::200";

/// One packet and what tshark must show for it.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    mh_type: Option<u8>,
    /// (tshark field, value) pairs that must appear in the decode.
    fields: Vec<(&'static str, String)>,
    /// Checksum status field of the upper layer that must be "1" (good).
    upper_checksum: Option<&'static str>,
}

fn case(
    name: &'static str,
    bytes: Vec<u8>,
    mh_type: Option<u8>,
    fields: &[(&'static str, &str)],
) -> Case {
    Case {
        name,
        bytes,
        mh_type,
        fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        upper_checksum: None,
    }
}

fn mh_packet(src: &str, dst: &str, m: MhRepr) -> MhPacketRepr {
    MhPacketRepr::new(a(src), a(dst), m)
}

fn bytes(p: &MhPacketRepr) -> Vec<u8> {
    p.to_bytes().unwrap()
}

fn hmac_sha1_96(key: &[u8], parts: &[&[u8]]) -> [u8; 12] {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = ring::hmac::Context::with_key(&k);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 12];
    out.copy_from_slice(&ctx.sign().as_ref()[..12]);
    out
}

/// A plain IPv6 packet with an upper-layer payload whose checksum is
/// computed from `src`/`dst` (the home addresses) at `csum_at`.
fn data_packet(src: &str, dst: &str, proto: u8, mut upper: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let c = checksum::compute(&a(src), &a(dst), proto, &upper);
    upper[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    let mut v = vec![0u8; 40];
    Ipv6Repr {
        src_addr: a(src),
        dst_addr: a(dst),
        next_header: proto,
        payload_len: upper.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(&mut v)
    .unwrap();
    v.extend_from_slice(&upper);
    v
}

fn icmp_echo(kind: u8) -> Vec<u8> {
    let mut v = vec![kind, 0, 0, 0, 0x4d, 0x49, 0, 1];
    v.extend_from_slice(b"mip6-anycast");
    v
}

fn tcp_syn() -> Vec<u8> {
    let mut v = vec![0u8; 20];
    v[..4].copy_from_slice(&[0x9c, 0x40, 0, 80]);
    v[4..8].copy_from_slice(&1000u32.to_be_bytes());
    v[12] = 0x50;
    v[13] = 0x02;
    v[14..16].copy_from_slice(&65535u16.to_be_bytes());
    v
}

fn udp(payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut v = vec![0x13, 0x88, 0x13, 0x89];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let ck = |b: [u8; 8]| {
        format!(
            "0x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )
    };

    // Every MH type.
    out.push(case(
        "brr",
        bytes(&mh_packet(
            CN,
            HOA,
            MhRepr::new(MhMessage::BindingRefreshRequest),
        )),
        Some(0),
        &[],
    ));
    let cookie = [0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44];
    out.push(case(
        "hoti",
        bytes(&mh_packet(
            HOA,
            CN,
            MhRepr::new(MhMessage::HomeTestInit(HomeTestInitRepr {
                home_init_cookie: cookie,
            })),
        )),
        Some(1),
        &[("mip6.hoti.cookie", &ck(cookie))],
    ));
    out.push(case(
        "coti",
        bytes(&mh_packet(
            COA,
            CN,
            MhRepr::new(MhMessage::CareOfTestInit(CareOfTestInitRepr {
                care_of_init_cookie: [0xc0; 8],
            })),
        )),
        Some(2),
        &[("mip6.coti.cookie", &ck([0xc0; 8]))],
    ));
    let hot = MhRepr::new(MhMessage::HomeTest(HomeTestRepr {
        home_nonce_index: 257,
        home_init_cookie: cookie,
        home_keygen_token: [0x13, 0xd3, 0x81, 0x1c, 0x4c, 0xa9, 0xf4, 0xe9],
    }));
    out.push(case(
        "hot",
        bytes(&mh_packet(CN, HOA, hot.clone())),
        Some(3),
        &[
            ("mip6.hot.nindex", "257"),
            ("mip6.hot.cookie", &ck(cookie)),
            ("mip6.hot.token", "0x13d3811c4ca9f4e9"),
        ],
    ));
    out.push(case(
        "cot",
        bytes(&mh_packet(
            CN,
            COA,
            MhRepr::new(MhMessage::CareOfTest(CareOfTestRepr {
                care_of_nonce_index: 514,
                care_of_init_cookie: [0x55; 8],
                care_of_keygen_token: [0x57; 8],
            })),
        )),
        Some(4),
        &[
            ("mip6.cot.nindex", "514"),
            ("mip6.cot.cookie", &ck([0x55; 8])),
        ],
    ));

    // BU to a correspondent: CoA -> CN, HAO, Nonce Indices, Binding Authorization Data.
    let kbm = [0x42u8; 20];
    let mut bu = mh_packet(
        COA,
        CN,
        MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
            sequence: 4660,
            flags: BuFlags::ACK,
            lifetime: 105,
        }))
        .with_option(MobilityOption::NonceIndices {
            home_nonce_index: 257,
            care_of_nonce_index: 514,
        })
        .with_option(MobilityOption::BindingAuthData {
            authenticator: [0; 12],
        }),
    );
    bu.hao = Some(a(HOA));
    let bu_bytes = bu
        .to_bytes_with_binding_auth(|i| {
            let [p, q, r, s] = i.chunks();
            hmac_sha1_96(&kbm, &[&a(COA).octets(), &a(CN).octets(), p, q, r, s])
        })
        .unwrap();
    out.push(case(
        "bu_hao_ni_bad",
        bu_bytes,
        Some(5),
        &[
            ("mip6.bu.seqnr", "4660"),
            ("mip6.bu.a_flag", "1"),
            ("mip6.bu.h_flag", "0"),
            ("mip6.bu.lifetime", "105"),
            ("mip6.ni.hni", "257"),
            ("mip6.ni.cni", "514"),
            ("ipv6.opt.mipv6.home_address", HOA),
        ],
    ));

    // BU with all four flags and an Alternate CoA; lifetime from a Duration.
    let lifetime = mh::duration_to_lifetime(Duration::from_secs(420));
    out.push(case(
        "bu_ahlk_altcoa",
        bytes(&mh_packet(
            COA,
            HA,
            MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
                sequence: 7,
                flags: BuFlags::ACK | BuFlags::HOME | BuFlags::LINK_LOCAL | BuFlags::KEY_MGMT,
                lifetime,
            }))
            .with_option(MobilityOption::AlternateCoa(a(ACOA))),
        )),
        Some(5),
        &[
            ("mip6.bu.seqnr", "7"),
            ("mip6.bu.a_flag", "1"),
            ("mip6.bu.h_flag", "1"),
            ("mip6.bu.l_flag", "1"),
            ("mip6.bu.k_flag", "1"),
            ("mip6.bu.lifetime", "105"),
            ("mip6.acoa.acoa", ACOA),
        ],
    ));

    // Home registration with RFC 4285 Mesg-ID and MN-HA authentication.
    let key = b"MN-HA-key-for-tests";
    let mut reg = mh_packet(
        COA,
        HA,
        MhRepr::new(MhMessage::BindingUpdate(BindingUpdateRepr {
            sequence: 8192,
            flags: BuFlags::ACK | BuFlags::HOME,
            lifetime: 1000,
        }))
        .with_option(MobilityOption::MesgId {
            timestamp: 0xe8a1_c2b3_0000_0000,
        })
        .with_option(MobilityOption::MessageAuth(MessageAuth {
            subtype: mh::AUTH_SUBTYPE_MN_HA,
            spi: 256,
            auth_data: vec![0; 12],
        })),
    );
    reg.hao = Some(a(HOA));
    let reg_bytes = reg
        .to_bytes_with_message_auth(mh::AUTH_SUBTYPE_MN_HA, |i| {
            let [p, q, r, s] = i.chunks();
            hmac_sha1_96(key, &[&a(COA).octets(), &a(HOA).octets(), p, q, r, s]).to_vec()
        })
        .unwrap();
    out.push(case(
        "bu_home_registration_rfc4285",
        reg_bytes,
        Some(5),
        &[
            ("mip6.bu.seqnr", "8192"),
            ("mip6.bu.h_flag", "1"),
            ("mip6.auth.subtype", "1"),
            ("mip6.auth.mobility_spi", "256"),
            ("mip6.options.mseg_id", "0a:08:e8:a1:c2:b3:00:00:00:00"),
            ("mip6.options.pad1", "00"),
            ("ipv6.opt.mipv6.home_address", HOA),
        ],
    ));

    // BA to the CoA with RH2, Binding Refresh Advice and an authenticator.
    let mut ba = mh_packet(
        CN,
        COA,
        MhRepr::new(MhMessage::BindingAck(BindingAckRepr {
            status: BaStatus::Accepted,
            flags: BaFlags::empty(),
            sequence: 4660,
            lifetime: 105,
        }))
        .with_option(MobilityOption::BindingRefreshAdvice {
            refresh_interval: 100,
        })
        .with_option(MobilityOption::BindingAuthData {
            authenticator: [0; 12],
        }),
    );
    ba.rh2 = Some(a(HOA));
    let ba_bytes = ba
        .to_bytes_with_binding_auth(|i| {
            let [p, q, r, s] = i.chunks();
            hmac_sha1_96(&kbm, &[&a(COA).octets(), &a(CN).octets(), p, q, r, s])
        })
        .unwrap();
    out.push(case(
        "ba_rh2_bra_bad",
        ba_bytes,
        Some(6),
        &[
            ("mip6.ba.status", "0"),
            ("mip6.ba.seqnr", "4660"),
            ("mip6.ba.lifetime", "105"),
            ("mip6.bra.interval", "100"),
            ("ipv6.routing.type", "2"),
            ("ipv6.routing.segleft", "1"),
            ("ipv6.routing.mipv6.home_address", HOA),
        ],
    ));
    out.push(case(
        "ba_expired_nonces_k",
        bytes(&mh_packet(
            CN,
            COA,
            MhRepr::new(MhMessage::BindingAck(BindingAckRepr {
                status: BaStatus::ExpiredNonces,
                flags: BaFlags::KEY_MGMT,
                sequence: 9,
                lifetime: 0,
            })),
        )),
        Some(6),
        &[
            ("mip6.ba.status", "138"),
            ("mip6.ba.k_flag", "1"),
            ("mip6.ba.seqnr", "9"),
            ("mip6.ba.lifetime", "0"),
        ],
    ));
    out.push(case(
        "be_unknown_binding",
        bytes(&mh_packet(
            CN,
            COA,
            MhRepr::new(MhMessage::BindingError(BindingErrorRepr {
                status: BeStatus::UnknownBindingForHao,
                home_address: a(HOA),
            })),
        )),
        Some(7),
        &[("mip6.be.status", "1"), ("mip6.be.haddr", HOA)],
    ));
    out.push(case(
        "be_unrecognized_type",
        bytes(&mh_packet(
            CN,
            COA,
            MhRepr::new(MhMessage::BindingError(BindingErrorRepr {
                status: BeStatus::UnrecognizedMhType,
                home_address: Ipv6Addr::UNSPECIFIED,
            })),
        )),
        Some(7),
        &[("mip6.be.status", "2")],
    ));

    // HoT tunnelled by the HA to the CoA (in-place encapsulation).
    let mut t = PacketBuf::from_packet(&bytes(&mh_packet(CN, HOA, hot)), 64);
    t.encapsulate(&TunnelParams::new(a(HA), a(COA))).unwrap();
    out.push(case(
        "ip6ip6_hot",
        t.into_vec(),
        Some(3),
        &[
            ("ipv6.nxt", "41"),
            ("ipv6.src", HA),
            ("ipv6.dst", COA),
            ("mip6.hot.nindex", "257"),
        ],
    ));

    // Data packets rewritten by the edit helpers.
    let mut p = PacketBuf::from_packet(
        &data_packet(HOA, CN, ip_proto::ICMPV6, icmp_echo(128), 2),
        64,
    );
    p.insert_hao(&a(COA)).unwrap();
    let mut c = case(
        "icmpv6_echo_hao",
        p.into_vec(),
        None,
        &[
            ("ipv6.src", COA),
            ("ipv6.opt.mipv6.home_address", HOA),
            ("icmpv6.type", "128"),
        ],
    );
    c.upper_checksum = Some("icmpv6.checksum.status");
    out.push(c);

    let mut p = PacketBuf::from_packet(
        &data_packet(CN, HOA, ip_proto::ICMPV6, icmp_echo(129), 2),
        64,
    );
    p.insert_rh2(&a(COA)).unwrap();
    let mut c = case(
        "icmpv6_reply_rh2",
        p.into_vec(),
        None,
        &[
            ("ipv6.dst", COA),
            ("ipv6.routing.mipv6.home_address", HOA),
            ("icmpv6.type", "129"),
        ],
    );
    c.upper_checksum = Some("icmpv6.checksum.status");
    out.push(c);

    let mut p = PacketBuf::from_packet(&data_packet(HOA, CN, ip_proto::TCP, tcp_syn(), 16), 64);
    p.insert_hao(&a(COA)).unwrap();
    let mut c = case(
        "tcp_syn_hao",
        p.into_vec(),
        None,
        &[("tcp.flags.syn", "1"), ("ipv6.opt.mipv6.home_address", HOA)],
    );
    c.upper_checksum = Some("tcp.checksum.status");
    out.push(c);

    // UDP between two mobile nodes: RH2 and HAO at once, after a Hop-by-Hop header.
    let mut d = data_packet(HOA, HOA2, ip_proto::UDP, udp(b"both ways"), 6);
    d[6] = ip_proto::HOP_BY_HOP;
    d.splice(40..40, [ip_proto::UDP, 0, 1, 4, 0, 0, 0, 0]);
    d[5] += 8;
    let mut p = PacketBuf::from_packet(&d, 64);
    p.insert_rh2(&a(COA2)).unwrap();
    p.insert_hao(&a(COA)).unwrap();
    let mut c = case(
        "udp_hbh_rh2_hao",
        p.into_vec(),
        None,
        &[
            ("ipv6.nxt", "0"),
            ("ipv6.hopopts.nxt", "43"),
            ("ipv6.routing.nxt", "60"),
            ("ipv6.dstopts.nxt", "17"),
            ("ipv6.routing.mipv6.home_address", HOA2),
            ("ipv6.opt.mipv6.home_address", HOA),
        ],
    );
    c.upper_checksum = Some("udp.checksum.status");
    out.push(c);

    // A data packet reverse-tunnelled from the CoA to the HA.
    let mut p = PacketBuf::from_packet(&data_packet(HOA, CN, ip_proto::UDP, udp(b"tunnel"), 6), 64);
    p.encapsulate(&TunnelParams::new(a(COA), a(HA))).unwrap();
    let mut c = case(
        "ip6ip6_udp",
        p.into_vec(),
        None,
        &[("ipv6.nxt", "41"), ("udp.length", "14")],
    );
    c.upper_checksum = Some("udp.checksum.status");
    out.push(c);
    out
}

/// Every value of `key` anywhere in a tshark JSON tree (arrays flattened).
fn find<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    match x {
                        Value::Array(xs) => out.extend(xs.iter()),
                        x => out.push(x),
                    }
                }
                find(x, key, out);
            }
        }
        Value::Array(xs) => xs.iter().for_each(|x| find(x, key, out)),
        _ => {}
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    find(v, key, &mut out);
    out.iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// The innermost IPv6 layer object (the one holding the MH).
fn innermost_ipv6(layers: &Value) -> &Value {
    let mut v = &layers["ipv6"];
    while let Value::Array(xs) = v {
        v = xs.last().unwrap();
    }
    v
}

/// Bytewise RFC 1071 sum over the RFC 8200 8.1 pseudo-header, independent
/// of the crate's checksum module.
fn independent_mh_checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, mh: &[u8]) -> bool {
    let mut data = Vec::new();
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&(mh.len() as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 135]);
    data.extend_from_slice(mh);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = 0;
    for w in data.chunks(2) {
        sum += (u32::from(w[0]) << 8) | u32::from(w[1]);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_pcap(path: &std::path::Path, packets: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let file = std::fs::File::create(path).unwrap();
    let header = PcapHeader {
        datalink: pcap_file::DataLink::RAW,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(file, header).unwrap();
    for (i, p) in packets.iter().enumerate() {
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(ts, p.len() as u32, p))
            .unwrap();
    }
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn tshark_decodes_what_we_emit() {
    if !tshark_available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tshark is required in CI (apt-get install -y tshark)");
        }
        eprintln!(
            "\n*** SKIP (needs tshark): tshark_decodes_what_we_emit; install Debian package `tshark` ***\n"
        );
        return;
    }
    let cases = cases();
    let file = TempFile(
        std::env::temp_dir().join(format!("mip6-wire-tshark-{}.pcap", std::process::id())),
    );
    write_pcap(
        &file.0,
        &cases.iter().map(|c| c.bytes.clone()).collect::<Vec<_>>(),
    );
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(&file.0)
        .args(["-T", "json", "--no-duplicate-keys", "-x"])
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(frames.len(), cases.len());

    let mut mh_types = std::collections::BTreeSet::new();
    for (c, f) in cases.iter().zip(&frames) {
        let layers = &f["_source"]["layers"];
        let name = c.name;
        assert!(
            strings(layers, "_ws.malformed").is_empty(),
            "{name}: malformed: {layers}"
        );
        let mut sev = Vec::new();
        find(layers, "_ws.expert.severity", &mut sev);
        // epan/proto.h: PI_WARN = 6 << 20.
        for s in sev.iter().filter_map(|s| s.as_str()?.parse::<u32>().ok()) {
            assert!(
                s < 0x0060_0000,
                "{name}: expert item {:?}",
                strings(layers, "_ws.expert.message")
            );
        }
        let got_type: Vec<String> = strings(layers, "mip6.mhtype");
        match c.mh_type {
            Some(t) => {
                assert_eq!(got_type, vec![t.to_string()], "{name}");
                mh_types.insert(t);
                let ip = innermost_ipv6(layers);
                let src = strings(ip, "ipv6.opt.mipv6.home_address")
                    .pop()
                    .or_else(|| strings(ip, "ipv6.src").pop());
                let dst = strings(ip, "ipv6.routing.mipv6.home_address")
                    .pop()
                    .or_else(|| strings(ip, "ipv6.dst").pop());
                let raw = &ip["mipv6_raw"];
                let mhb = unhex(raw[0].as_str().or_else(|| raw[0][0].as_str()).unwrap());
                let ok = independent_mh_checksum_ok(a(&src.unwrap()), a(&dst.unwrap()), &mhb);
                assert!(
                    ok,
                    "{name}: MH checksum does not verify over tshark's addresses"
                );
            }
            None => assert!(got_type.is_empty(), "{name}"),
        }
        for (k, v) in &c.fields {
            let vals = strings(layers, k);
            assert!(vals.contains(v), "{name}: {k} = {vals:?}, want {v}");
        }
        if let Some(k) = c.upper_checksum {
            assert_eq!(
                strings(layers, k),
                vec!["1".to_string()],
                "{name}: {k} (1 = good)"
            );
        }
    }
    assert_eq!(
        mh_types.into_iter().collect::<Vec<_>>(),
        (0..=7).collect::<Vec<u8>>(),
        "every MH type"
    );
}
