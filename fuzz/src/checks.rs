//! What every fuzz target asserts, one function per target.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by
//! `mip6-anycast/tests/fuzz_corpus_regression.rs`, which includes this file
//! with `#[path]` and replays `fuzz/regressions/` and `fuzz/seeds/` through
//! [`run`]. Only `std` and `mip6_anycast` may be used here.
//!
//! Every parser must return `Ok`/`Err` on any bytes (a panic is a crash);
//! on `Ok` the checks below assert the structural promises the wire layer
//! documents, that `parse -> emit -> parse` gives the same `Repr` and that
//! emission is idempotent, and that every in-place edit either fails
//! without touching the buffer or round-trips.

use std::net::Ipv6Addr;

use mip6_anycast::inspect;
use mip6_anycast::wire::mh::opt_type;
use mip6_anycast::wire::{
    BaFlags, BaStatus, BeStatus, BindingAckRepr, BindingErrorRepr, BindingUpdateRepr, BuFlags,
    CareOfTestInitRepr, CareOfTestRepr, DestOption, DestOptsHeader, DestOptsRepr, ExtChain,
    HomeTestInitRepr, HomeTestRepr, IPV6_HEADER_LEN, Ipv6Packet, Ipv6Repr, MessageAuth, MhMessage,
    MhPacketRepr, MhRepr, MobilityHeader, MobilityOption, Rh2Repr, RoutingHeader, TunnelParams,
    edit, ip6ip6, read_hao,
};

/// Every fuzz target, by name (the `fuzz_targets/NAME.rs` files and the
/// sub-directories of `fuzz/seeds/` and `fuzz/regressions/`).
pub const TARGETS: &[&str] = &[
    "ipv6_chain",
    "dest_opts",
    "rh2",
    "mh",
    "mh_packet",
    "ip6ip6",
    "edit",
    "repr_roundtrip",
    "inspect_pcap",
    "handoff_msg",
    "failover_msg",
];

/// Runs the check of `target` on `data`; `false` for an unknown target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "ipv6_chain" => ipv6_chain(data),
        "dest_opts" => dest_opts(data),
        "rh2" => rh2(data),
        "mh" => mh(data),
        "mh_packet" => mh_packet(data),
        "ip6ip6" => ip6ip6(data),
        "edit" => edit(data),
        "repr_roundtrip" => repr_roundtrip(data),
        "inspect_pcap" => inspect_pcap(data),
        "handoff_msg" => handoff_msg(data),
        "failover_msg" => failover_msg(data),
        _ => return false,
    }
    true
}

const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x10);

/// The fixed IPv6 header and the extension-header walker.
pub fn ipv6_chain(data: &[u8]) {
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        let r = Ipv6Repr::parse(&p).expect("a checked packet parses");
        assert_eq!(IPV6_HEADER_LEN + r.payload_len, p.total_len());
        assert_eq!(p.payload().len(), r.payload_len);
        let mut v = vec![0u8; IPV6_HEADER_LEN];
        r.emit_into(&mut v).expect("a parsed header emits");
        assert_eq!(v[..], data[..IPV6_HEADER_LEN], "fixed header round trip");
    }
    let Ok(c) = ExtChain::walk(data) else { return };
    assert!(c.total_len() <= data.len());
    let mut end = IPV6_HEADER_LEN;
    for h in c.headers() {
        assert_eq!(h.offset, end, "headers are contiguous");
        assert!(h.len >= 8 && h.end() <= c.total_len());
        end = h.end();
    }
    assert_eq!(c.upper_offset(), end);
    assert_eq!(c.upper_bytes(data).len(), c.total_len() - end);
    assert!(c.upper_nh_offset() < end);
    if let Some(r) = c.rh2() {
        let h = c.headers()[r.index];
        assert_eq!(h.offset, r.offset);
        let rh = RoutingHeader::new_checked(&data[h.offset..h.end()]).expect("walked RH2");
        assert_eq!(
            Rh2Repr::parse(&rh).expect("walked RH2 parses").home_address,
            r.home_address
        );
        assert_eq!(c.pseudo_dst(DST), r.home_address);
    }
    if let Some(h) = c.hao() {
        let d = c.headers()[h.index];
        assert_eq!((d.offset, d.len), (h.header_offset, h.header_len));
        let hdr = &data[d.offset..d.end()];
        assert_eq!(
            read_hao(hdr, h.option_offset - d.offset).expect("walked HAO reads"),
            h.home_address
        );
        assert_eq!(c.pseudo_src(SRC), h.home_address);
    }
    for off in [c.mh_offset(), c.inner_offset()].into_iter().flatten() {
        assert_eq!(off, c.upper_offset());
    }
    let (rh2_at, rh2_nh) = c.rh2_insert_point();
    let (hao_at, hao_nh) = c.hao_insert_point();
    assert!(rh2_nh < rh2_at && rh2_at <= end && hao_nh < hao_at && hao_at <= end);
}

/// Destination Options with the Home Address option.
pub fn dest_opts(data: &[u8]) {
    for off in 0..data.len().min(40) {
        let _ = read_hao(data, off);
    }
    let Ok(h) = DestOptsHeader::new_checked(data) else {
        return;
    };
    for o in h.options().flatten() {
        assert!(o.offset >= 2 && o.offset + o.wire_len() <= h.header_len());
    }
    if let Ok(Some(at)) = h.find_hao() {
        assert_eq!(data[at], 201);
    }
    let Ok(r) = DestOptsRepr::parse(&h) else {
        return;
    };
    let bytes = r.to_bytes().expect("a parsed header emits");
    assert!(bytes.len() <= h.header_len(), "emission never grows");
    let h2 = DestOptsHeader::new_checked(&bytes[..]).expect("emitted header checks");
    let r2 = DestOptsRepr::parse(&h2).expect("emitted header parses");
    assert_eq!(r, r2);
    assert_eq!(
        r2.to_bytes().expect("re-emits"),
        bytes,
        "emission is idempotent"
    );
}

/// Routing headers and the Type 2 Routing Header.
pub fn rh2(data: &[u8]) {
    let Ok(h) = RoutingHeader::new_checked(data) else {
        return;
    };
    assert!(h.header_len() <= data.len());
    let _ = (h.routing_type(), h.segments_left(), h.check_rh2());
    let Ok(r) = Rh2Repr::parse(&h) else { return };
    let b = r.to_bytes();
    let r2 = Rh2Repr::parse(&RoutingHeader::new_checked(&b[..]).expect("emitted RH2 checks"))
        .expect("emitted RH2 parses");
    assert_eq!(r, r2);
    assert_eq!(
        b[..4],
        data[..4],
        "next header, length, type, segments left kept"
    );
    assert_eq!(b[8..], data[8..24], "home address kept");
}

/// The Mobility Header: every message, every option, the authenticated
/// input of RFC 6275 6.2.7 / RFC 4285.
pub fn mh(data: &[u8]) {
    let Ok(h) = MobilityHeader::new_checked(data) else {
        return;
    };
    let _ = (h.payload_proto(), h.mh_type(), h.reserved(), h.checksum());
    assert_eq!(h.bytes().len(), h.total_len());
    assert_eq!(h.message_data().len(), h.total_len() - 6);
    for o in h.options().flatten() {
        assert!(o.offset + o.wire_len() <= h.total_len());
    }
    for t in [2, 3, 4, 5, 9, 10, 200] {
        let _ = h.find_option(t);
    }
    let _ = h.verify_checksum(&SRC, &DST);
    if let Ok(a) = h.binding_auth_input() {
        let f = a.field();
        assert_eq!(f.len(), 12);
        assert!(f.end <= h.total_len());
        assert_eq!(a.len(), h.total_len() - 12);
        assert_eq!(a.to_vec()[4..6], [0, 0], "checksum zeroed");
    }
    for subtype in [1, 2] {
        if let Ok(a) = h.message_auth_input(subtype) {
            let f = a.field();
            assert!(f.start <= f.end && f.end <= h.total_len());
            assert_eq!(a.len(), f.start);
        }
    }
    let Ok(r) = MhRepr::parse(&h) else { return };
    let bytes = r.to_bytes(&SRC, &DST).expect("a parsed MH emits");
    assert_eq!(bytes.len(), r.buffer_len());
    assert!(bytes.len() <= h.total_len(), "emission never grows");
    let h2 = MobilityHeader::new_checked(&bytes[..]).expect("emitted MH checks");
    assert!(h2.verify_checksum(&SRC, &DST), "emitted checksum verifies");
    let r2 = MhRepr::parse(&h2).expect("emitted MH parses");
    assert_eq!(r, r2);
    assert_eq!(r2.to_bytes(&SRC, &DST).expect("re-emits"), bytes);
}

/// Whole Mobility Header packets (RH2, HAO, checksum pseudo-header).
pub fn mh_packet(data: &[u8]) {
    let strict = MhPacketRepr::parse_with_bytes(data);
    let Ok((p, checksum_ok)) = MhPacketRepr::parse_unverified(data) else {
        assert!(strict.is_err());
        return;
    };
    assert_eq!(strict.is_ok(), checksum_ok);
    if let Ok(s) = &strict {
        assert_eq!(s.repr, p.repr);
    }
    let base = data.as_ptr() as usize;
    let at = p.mh_bytes.as_ptr() as usize;
    assert!(at >= base && at - base + p.mh_bytes.len() <= data.len());
    let _ = (p.binding_auth_input(), p.message_auth_input(1));
    let bytes = p.repr.to_bytes().expect("a parsed packet emits");
    let q = MhPacketRepr::parse(&bytes).expect("emitted packet parses with its checksum");
    assert_eq!(q, p.repr);
    assert_eq!(q.to_bytes().expect("re-emits"), bytes);
    if p.repr.mh.has_binding_auth_data() {
        let signed = p
            .repr
            .to_bytes_with_binding_auth(|_| [0x5a; 12])
            .expect("binding auth fill");
        let s = MhPacketRepr::parse(&signed).expect("signed packet parses");
        assert_eq!(s.mh.authenticator(), Some([0x5a; 12]));
    }
}

/// IPv6-in-IPv6 decapsulation, and encapsulation of anything.
pub fn ip6ip6(data: &[u8]) {
    let params = TunnelParams::new(SRC, DST);
    if let Ok(v) = ip6ip6::encapsulate_vec(data, &params) {
        let d = ip6ip6::decapsulate(&v).expect("own encapsulation decapsulates");
        assert_eq!(d.inner, Ipv6Packet::new_unchecked(data).packet_bytes());
        assert_eq!((d.outer_src, d.outer_dst), (SRC, DST));
    }
    let Ok(d) = ip6ip6::decapsulate(data) else {
        assert!(edit::decapsulate(data, 0, data.len()).is_err());
        return;
    };
    let start = d.inner_offset;
    assert_eq!(&data[start..start + d.inner.len()], d.inner);
    assert_eq!(d.inner_packet().total_len(), d.inner.len());
    let e = edit::decapsulate(data, 0, data.len()).expect("edit::decapsulate agrees");
    assert_eq!((e.bounds.start, e.bounds.len), (start, d.inner.len()));
    let again = ip6ip6::encapsulate_vec(d.inner, &TunnelParams::new(d.outer_src, d.outer_dst))
        .expect("inner re-encapsulates");
    assert_eq!(
        ip6ip6::decapsulate(&again).expect("decapsulates").inner,
        d.inner
    );
}

/// The in-place edits. Input: op, headroom, 16 octets of care-of address,
/// then the packet. A refused edit leaves the buffer unchanged; an accepted
/// one round-trips (insert -> strip, swap -> swap, encapsulate -> decapsulate).
pub fn edit(data: &[u8]) {
    let [op, headroom, rest @ ..] = data else {
        return;
    };
    let Some((coa, packet)) = rest.split_first_chunk::<16>() else {
        return;
    };
    let coa = Ipv6Addr::from(*coa);
    let start = usize::from(*headroom);
    let mut buf = vec![0xa5u8; start];
    buf.extend_from_slice(packet);
    let before = buf.clone();
    let len = packet.len();
    let original = Ipv6Packet::new_checked(packet).map(|p| p.packet_bytes().to_vec());
    let same = |buf: &[u8], b: edit::Bounds, want: &[u8]| assert_eq!(&buf[b.range()], want);
    match op % 8 {
        0 => match edit::insert_rh2(&mut buf, start, len, &coa) {
            Ok(b) => {
                let o = original.expect("edited packet was IPv6");
                let s = edit::strip_rh2(&mut buf, b.start, b.len).expect("inserted RH2 strips");
                assert_eq!(s.care_of_address, coa);
                assert_eq!(s.home_address, Ipv6Packet::new_unchecked(&o[..]).dst_addr());
                assert_eq!(s.bounds.start, start);
                same(&buf, s.bounds, &o);
            }
            Err(_) => assert_eq!(buf, before, "refused insert_rh2 changed the buffer"),
        },
        1 => match edit::insert_hao(&mut buf, start, len, &coa) {
            Ok(b) => {
                let o = original.expect("edited packet was IPv6");
                let s = edit::strip_hao(&mut buf, b.start, b.len).expect("inserted HAO strips");
                assert_eq!(s.care_of_address, coa);
                assert_eq!(s.home_address, Ipv6Packet::new_unchecked(&o[..]).src_addr());
                assert_eq!(s.bounds.start, start);
                same(&buf, s.bounds, &o);
            }
            Err(_) => assert_eq!(buf, before, "refused insert_hao changed the buffer"),
        },
        2 => match edit::strip_rh2(&mut buf, start, len) {
            Ok(s) => {
                let c = ExtChain::walk(&buf[s.bounds.range()]).expect("stripped packet walks");
                assert!(c.rh2().is_none());
                let p = Ipv6Packet::new_unchecked(&buf[s.bounds.range()]);
                assert_eq!(p.dst_addr(), s.home_address);
                assert_eq!(p.total_len(), s.bounds.len);
            }
            Err(_) => assert_eq!(buf, before, "refused strip_rh2 changed the buffer"),
        },
        3 => match edit::strip_hao(&mut buf, start, len) {
            Ok(s) => {
                let c = ExtChain::walk(&buf[s.bounds.range()]).expect("stripped packet walks");
                assert!(c.hao().is_none());
                let p = Ipv6Packet::new_unchecked(&buf[s.bounds.range()]);
                assert_eq!(p.src_addr(), s.home_address);
                assert_eq!(p.total_len(), s.bounds.len);
            }
            Err(_) => assert_eq!(buf, before, "refused strip_hao changed the buffer"),
        },
        4 => match edit::swap_hao(&mut buf, start, len) {
            Ok(s) => {
                let o = original.expect("edited packet was IPv6");
                let t = edit::swap_hao(&mut buf, s.bounds.start, s.bounds.len)
                    .expect("swapped packet swaps back");
                assert_eq!(t.home_address, s.care_of_address);
                same(&buf, t.bounds, &o);
            }
            Err(_) => assert_eq!(buf, before, "refused swap_hao changed the buffer"),
        },
        5 => match edit::encapsulate(&mut buf, start, len, &TunnelParams::new(coa, DST)) {
            Ok(b) => {
                let o = original.expect("edited packet was IPv6");
                let d = edit::decapsulate(&buf, b.start, b.len).expect("own tunnel decapsulates");
                assert_eq!((d.outer_src, d.outer_dst), (coa, DST));
                same(&buf, d.bounds, &o);
            }
            Err(_) => assert_eq!(buf, before, "refused encapsulate changed the buffer"),
        },
        6 => {
            if let Ok(d) = edit::decapsulate(&buf, start, len) {
                assert!(d.bounds.start >= start && d.bounds.range().end <= start + len);
            }
        }
        _ => chain_of_edits(&mut buf, start, len, &coa, original.ok()),
    }
}

/// RH2, then HAO, then a tunnel, and back: the datapath's full path.
fn chain_of_edits(buf: &mut [u8], start: usize, len: usize, coa: &Ipv6Addr, o: Option<Vec<u8>>) {
    let Ok(a) = edit::insert_rh2(buf, start, len, coa) else {
        return;
    };
    let Ok(b) = edit::insert_hao(buf, a.start, a.len, coa) else {
        return;
    };
    let Ok(c) = edit::encapsulate(buf, b.start, b.len, &TunnelParams::new(*coa, DST)) else {
        return;
    };
    let o = o.expect("edited packet was IPv6");
    let d = edit::decapsulate(buf, c.start, c.len).expect("decapsulates");
    assert_eq!(d.bounds, b);
    let e = edit::strip_hao(buf, b.start, b.len).expect("strips HAO");
    assert_eq!(e.bounds, a);
    let f = edit::strip_rh2(buf, a.start, a.len).expect("strips RH2");
    assert_eq!(&buf[f.bounds.range()], &o[..]);
}

/// A cursor over fuzz bytes that yields zeros once exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for b in &mut a {
            *b = self.u8();
        }
        a
    }
    fn vec(&mut self, max: usize) -> Vec<u8> {
        let n = usize::from(self.u8()) % (max + 1);
        (0..n).map(|_| self.u8()).collect()
    }
    fn addr(&mut self) -> Ipv6Addr {
        Ipv6Addr::from(self.array::<16>())
    }
    /// A global unicast address (a valid home address).
    fn home(&mut self) -> Ipv6Addr {
        let mut a = self.array::<16>();
        a[0] = 0x20;
        a[1] = 0x01;
        Ipv6Addr::from(a)
    }
}

fn message(b: &mut Bytes<'_>) -> MhMessage {
    match b.u8() % 8 {
        0 => MhMessage::BindingRefreshRequest,
        1 => MhMessage::HomeTestInit(HomeTestInitRepr {
            home_init_cookie: b.array(),
        }),
        2 => MhMessage::CareOfTestInit(CareOfTestInitRepr {
            care_of_init_cookie: b.array(),
        }),
        3 => MhMessage::HomeTest(HomeTestRepr {
            home_nonce_index: b.u16(),
            home_init_cookie: b.array(),
            home_keygen_token: b.array(),
        }),
        4 => MhMessage::CareOfTest(CareOfTestRepr {
            care_of_nonce_index: b.u16(),
            care_of_init_cookie: b.array(),
            care_of_keygen_token: b.array(),
        }),
        5 => MhMessage::BindingUpdate(BindingUpdateRepr {
            sequence: b.u16(),
            flags: BuFlags(b.u16() & BuFlags::KNOWN),
            lifetime: b.u16(),
        }),
        6 => MhMessage::BindingAck(BindingAckRepr {
            status: BaStatus::from_u8(b.u8()),
            flags: BaFlags(b.u8() & BaFlags::KNOWN),
            sequence: b.u16(),
            lifetime: b.u16(),
        }),
        _ => MhMessage::BindingError(BindingErrorRepr {
            status: BeStatus::from_u8(b.u8()),
            home_address: b.addr(),
        }),
    }
}

/// A valid option list: any options that need not be last, then either one
/// Binding Authorization Data or any number of RFC 4285 authentication
/// options (RFC 6275 6.2.7, RFC 4285 5).
fn options(b: &mut Bytes<'_>) -> Vec<MobilityOption> {
    let mut v = Vec::new();
    for _ in 0..b.u8() % 6 {
        v.push(match b.u8() % 5 {
            0 => MobilityOption::BindingRefreshAdvice {
                refresh_interval: b.u16(),
            },
            1 => MobilityOption::AlternateCoa(b.addr()),
            2 => MobilityOption::NonceIndices {
                home_nonce_index: b.u16(),
                care_of_nonce_index: b.u16(),
            },
            3 => MobilityOption::MesgId {
                timestamp: u64::from(b.u32()) << 32 | u64::from(b.u32()),
            },
            _ => MobilityOption::Unknown {
                // Not a type this layer knows (0-5, 9, 10).
                opt_type: 11 + b.u8() % 245,
                data: b.vec(40),
            },
        });
    }
    match b.u8() % 3 {
        0 => {}
        1 => v.push(MobilityOption::BindingAuthData {
            authenticator: b.array(),
        }),
        _ => {
            for _ in 0..1 + b.u8() % 2 {
                v.push(MobilityOption::MessageAuth(MessageAuth {
                    subtype: b.u8(),
                    spi: b.u32(),
                    auth_data: b.vec(64),
                }));
            }
        }
    }
    v
}

/// Emit -> parse -> same `Repr` for values built from the fuzz bytes.
pub fn repr_roundtrip(data: &[u8]) {
    let mut b = Bytes(data);
    match b.u8() % 5 {
        0 => {
            let r = Ipv6Repr {
                src_addr: b.addr(),
                dst_addr: b.addr(),
                next_header: b.u8(),
                payload_len: usize::from(b.u16() % 2048),
                hop_limit: b.u8(),
                traffic_class: b.u8(),
                flow_label: b.u32() & 0x000f_ffff,
            };
            let mut v = vec![0u8; IPV6_HEADER_LEN + r.payload_len];
            r.emit_into(&mut v).expect("emits");
            let p = Ipv6Packet::new_checked(&v[..]).expect("emitted header checks");
            assert_eq!(Ipv6Repr::parse(&p).expect("parses"), r);
        }
        1 => {
            let mut opts = Vec::new();
            let mut hao = false;
            for _ in 0..b.u8() % 5 {
                if b.bool() && !hao {
                    hao = true;
                    opts.push(DestOption::HomeAddress(b.home()));
                } else {
                    // High bits 00 (skip), not Pad1/PadN.
                    opts.push(DestOption::Unknown {
                        opt_type: 2 + b.u8() % 62,
                        data: b.vec(40),
                    });
                }
            }
            let r = DestOptsRepr {
                next_header: b.u8(),
                options: opts,
            };
            let v = r.to_bytes().expect("emits");
            assert_eq!(v.len(), r.buffer_len());
            assert_eq!(v.len() % 8, 0);
            let h = DestOptsHeader::new_checked(&v[..]).expect("emitted header checks");
            assert_eq!(DestOptsRepr::parse(&h).expect("parses"), r);
        }
        2 => {
            let r = Rh2Repr {
                next_header: b.u8(),
                home_address: b.home(),
            };
            let v = r.to_bytes();
            let h = RoutingHeader::new_checked(&v[..]).expect("emitted RH2 checks");
            assert_eq!(Rh2Repr::parse(&h).expect("parses"), r);
        }
        3 => {
            let r = MhRepr {
                message: message(&mut b),
                options: options(&mut b),
            };
            let Ok(v) = r.to_bytes(&SRC, &DST) else {
                return;
            };
            assert_eq!(v.len(), r.buffer_len());
            assert_eq!(v.len() % 8, 0);
            let h = MobilityHeader::new_checked(&v[..]).expect("emitted MH checks");
            assert!(h.verify_checksum(&SRC, &DST));
            assert_eq!(MhRepr::parse(&h).expect("parses"), in_emit_order(r));
        }
        _ => {
            let mut p = MhPacketRepr::new(
                b.addr(),
                b.addr(),
                MhRepr {
                    message: message(&mut b),
                    options: options(&mut b),
                },
            );
            p.hop_limit = b.u8();
            p.hao = b.bool().then(|| b.home());
            p.rh2 = b.bool().then(|| b.home());
            let Ok(v) = p.to_bytes() else { return };
            assert_eq!(v.len(), p.buffer_len());
            let q = MhPacketRepr::parse(&v).expect("emitted packet parses");
            let want = MhPacketRepr {
                mh: in_emit_order(p.mh.clone()),
                ..p
            };
            assert_eq!(q, want);
            if q.mh.has_binding_auth_data() {
                let s = q
                    .to_bytes_with_binding_auth(|i| {
                        let mut a = [0u8; 12];
                        a[..2].copy_from_slice(&(i.len() as u16).to_be_bytes());
                        a
                    })
                    .expect("binding auth fill");
                let s = MhPacketRepr::parse_with_bytes(&s).expect("signed packet parses");
                let n = s.binding_auth_input().expect("auth input").len() as u16;
                let got = s.repr.mh.authenticator().expect("authenticator");
                assert_eq!(got[..2], n.to_be_bytes());
            }
        }
    }
}

/// Options that must be last (RFC 6275 6.2.7, RFC 4285 5) move to the end
/// on emission; the rest keep their order.
fn in_emit_order(mut r: MhRepr) -> MhRepr {
    let last = |o: &MobilityOption| {
        matches!(
            o.opt_type(),
            opt_type::BINDING_AUTH_DATA | opt_type::MESSAGE_AUTH
        )
    };
    let (mut front, back): (Vec<_>, Vec<_>) = r.options.into_iter().partition(|o| !last(o));
    front.extend(back);
    r.options = front;
    r
}

/// The capture inspector over a whole pcap / pcapng file: never panics,
/// and its records are consistent and serialize.
pub fn inspect_pcap(data: &[u8]) {
    let Ok(report) = inspect::inspect_bytes(data) else {
        return;
    };
    for (i, p) in report.packets.iter().enumerate() {
        assert_eq!(p.index, i as u64);
        assert!(p.caplen <= inspect::MAX_RECORD_LEN);
        assert_eq!(p.truncated, (p.caplen as u64) < p.len);
        assert_eq!(p.malformed, p.error.is_some());
        assert_eq!(p.authenticator_ok.is_some(), p.authenticator_note.is_some());
        if p.authenticator_ok.is_some() {
            assert!(matches!(p.mh_type, Some(5 | 6)));
        }
        assert!(!p.to_string().is_empty());
    }
    let json = serde_json::to_string(&report).expect("report serializes");
    assert!(json.starts_with('{'));
}

/// The handoff coordinator's frames: `data` is a stream of records
/// `[control][frame]` where the control octet's low 2 bits name the sender
/// (the contact node k, member b, an unknown name) and the rest advances
/// the clock in 100 ms steps. Each frame: `HandoffMsg::from_bytes` never
/// panics, what decodes re-encodes to the same octets, and an acceptor's
/// `Coordinator` fed every record (and its timers) never panics and keeps
/// its state bounded.
pub fn handoff_msg(data: &[u8]) {
    use mip6_anycast::crypto::DeterministicRandom;
    use mip6_anycast::proto::handoff::{
        Coordinator, CoordinatorConfig, HandoffFrame, HandoffMsg, MemberId, MemberInfo, Roles,
    };
    use mip6_anycast::proto::{HomeTestMode, MobileConfig, MobileNode};
    use std::time::{Duration, Instant};

    if let Ok(m) = HandoffMsg::from_bytes(data) {
        assert_eq!(m.to_bytes().ok().as_deref(), Some(data));
    }
    let hoa = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    let names = ["k", "a", "b"].map(|n| MemberId::new(n).unwrap_or_else(|_| unreachable!()));
    let infos: Vec<MemberInfo> = names
        .iter()
        .enumerate()
        .map(|(i, name)| MemberInfo {
            name: name.clone(),
            coa: Ipv6Addr::new(0x2001, 0xdb8, 2 + i as u16, 0, 0, 0, 0, 0x100),
            roles: Roles {
                contact: i == 0,
                backup: false,
                acceptor: true,
            },
        })
        .collect();
    let mut cfg = CoordinatorConfig::new(infos[1].clone(), hoa, names[0].clone());
    cfg.max_concurrent = 4;
    cfg.max_clients = 16;
    cfg.remember = 8;
    let mut co = Coordinator::new(cfg, &infos, &mut DeterministicRandom::new(1));
    let mut mn = MobileNode::new(
        MobileConfig {
            home_test: HomeTestMode::External,
            ..MobileConfig::new(hoa)
        },
        Box::new(DeterministicRandom::new(2)),
    );
    co.peer_up(&names[0]);
    co.peer_up(&names[2]);
    let stranger = MemberId::new("mallory").unwrap_or_else(|_| unreachable!());
    let mut now = Instant::now();
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        let Ok(frame) = HandoffFrame::new_checked(tail) else {
            break;
        };
        let len = frame.frame_len();
        let from = match control & 3 {
            0 => &names[0],
            1 => &names[2],
            _ => &stranger,
        };
        now += Duration::from_millis(100 * u64::from(control >> 2));
        while let Some(t) = co.poll_timeout().filter(|t| *t <= now) {
            co.handle_timeout(t, &mut mn);
            mn.handle_timeout(t);
        }
        let _ = co.handle_frame(now, &mut mn, from, &tail[..len]);
        while co.poll_action().is_some() {}
        while mn.poll_action().is_some() {}
        let (d, a) = co.in_progress();
        assert!(d == 0 && a <= 4, "in progress {d} {a}");
        assert!(co.clients().count() <= 16);
        rest = &tail[len..];
    }
}

/// `[control][u32 length][frame]` records: the control octet's low 2 bits
/// name the sender (the contact node k, backup b, a stranger), the rest
/// advances the clock in 20 ms steps. Each frame: `FailoverMsg::parse`
/// never panics and what decodes re-encodes to the same octets; a backup's
/// `Failover` fed every record (and its timers) never panics, keeps its
/// epoch monotonic and never holds a snapshot from anyone but the contact
/// node it follows.
pub fn failover_msg(data: &[u8]) {
    use mip6_anycast::proto::failover::{Failover, FailoverConfig, FailoverMsg};
    use mip6_anycast::proto::handoff::MemberId;
    use std::time::{Duration, Instant};

    if let Ok(m) = FailoverMsg::parse(data) {
        assert_eq!(m.to_bytes(), data);
    }
    let hoa = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
    let names = ["k", "a", "b"].map(|n| MemberId::new(n).unwrap_or_else(|_| unreachable!()));
    let stranger = MemberId::new("mallory").unwrap_or_else(|_| unreachable!());
    let mut now = Instant::now();
    let cfg = FailoverConfig::new(names[1].clone(), hoa, names.to_vec(), names.to_vec());
    let mut f = Failover::new(cfg, now);
    let mut rest = data;
    let mut epoch = 0;
    while let Some((&control, tail)) = rest.split_first() {
        let Some((len, tail)) = tail.split_first_chunk::<4>() else {
            break;
        };
        let len = (u32::from_be_bytes(*len) as usize).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        let from = match control & 3 {
            0 => &names[0],
            1 => &names[2],
            _ => &stranger,
        };
        now += Duration::from_millis(20 * u64::from(control >> 2));
        if f.poll_timeout().is_some_and(|t| t <= now) {
            f.handle_timeout(now);
        }
        if let Ok(m) = FailoverMsg::parse(frame) {
            let is_state = matches!(m, FailoverMsg::State { .. });
            let before = f.snapshot().map(|(_, v)| v);
            f.handle_message(now, from, m);
            let after = f.snapshot().map(|(_, v)| v);
            if is_state && before != after {
                assert_eq!(f.contact(), Some(from), "state taken from a non-contact");
            }
        }
        while f.poll_action().is_some() {}
        assert!(f.epoch() >= epoch, "epoch went back");
        epoch = f.epoch();
        assert!(f.live_members(now).len() <= 2);
        rest = tail;
    }
}
