//! Hand-built packets for the datapath tests, from the wire layer's
//! `Repr`s (themselves checked against scapy and tshark).

use std::net::Ipv6Addr;

use mip6_anycast::wire::{
    BindingUpdateRepr, BuFlags, HomeTestInitRepr, HomeTestRepr, Ipv6Repr, MhMessage, MhPacketRepr,
    MhRepr, MobilityOption, TunnelParams, edit, ip_proto,
};

/// Parses an address literal (test constants only).
pub fn a(s: &str) -> Ipv6Addr {
    s.parse().expect("address literal")
}

/// An IPv6 packet with `payload` under next header `nh`, hop limit 64.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 40];
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: nh,
        payload_len: payload.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit_into(&mut v)
    .expect("emit");
    v.extend_from_slice(payload);
    v
}

/// A TCP-looking packet (next header 6, 20 octets of "header" + data).
pub fn tcp(src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff,
    ];
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(data);
    ipv6(src, dst, ip_proto::TCP, &p)
}

/// `inner` with a Type 2 Routing Header toward `coa` (dst = home address).
pub fn with_rh2(inner: &[u8], coa: Ipv6Addr) -> Vec<u8> {
    edit::insert_rh2_vec(inner, &coa).expect("insert rh2")
}

/// `inner` with a Home Address option, source `coa` (src = home address).
pub fn with_hao(inner: &[u8], coa: Ipv6Addr) -> Vec<u8> {
    edit::insert_hao_vec(inner, &coa).expect("insert hao")
}

/// `inner` in an outer header `src` -> `dst`.
pub fn tunnel(src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    edit::encapsulate_vec(inner, &TunnelParams::new(src, dst)).expect("encapsulate")
}

/// Sets the hop limit.
pub fn hop_limit(mut p: Vec<u8>, hl: u8) -> Vec<u8> {
    p[7] = hl;
    p
}

fn mh(msg: MhMessage) -> MhRepr {
    MhRepr {
        message: msg,
        options: Vec::new(),
    }
}

/// A Home Test Init from `hoa` to `cn` (RFC 6275 6.1.3).
pub fn hoti(hoa: Ipv6Addr, cn: Ipv6Addr, cookie: u64) -> Vec<u8> {
    MhPacketRepr::new(
        hoa,
        cn,
        mh(MhMessage::HomeTestInit(HomeTestInitRepr {
            home_init_cookie: cookie.to_be_bytes(),
        })),
    )
    .to_bytes()
    .expect("hoti")
}

/// A Home Test from `cn` to `hoa` (RFC 6275 6.1.5).
pub fn hot(cn: Ipv6Addr, hoa: Ipv6Addr, cookie: u64) -> Vec<u8> {
    MhPacketRepr::new(
        cn,
        hoa,
        mh(MhMessage::HomeTest(HomeTestRepr {
            home_nonce_index: 7,
            home_init_cookie: cookie.to_be_bytes(),
            home_keygen_token: [0x5a; 8],
        })),
    )
    .to_bytes()
    .expect("hot")
}

/// A Binding Update from `coa` with a Home Address option `hoa`, to `cn`
/// (RFC 6275 6.1.7, 11.7.2), with a Nonce Indices option.
pub fn bu(coa: Ipv6Addr, hoa: Ipv6Addr, cn: Ipv6Addr, seq: u16) -> Vec<u8> {
    let mut p = MhPacketRepr::new(
        coa,
        cn,
        MhRepr {
            message: MhMessage::BindingUpdate(BindingUpdateRepr {
                sequence: seq,
                flags: BuFlags::empty(),
                lifetime: 10,
            }),
            options: vec![MobilityOption::NonceIndices {
                home_nonce_index: 1,
                care_of_nonce_index: 2,
            }],
        },
    );
    p.hao = Some(hoa);
    p.to_bytes().expect("bu")
}
