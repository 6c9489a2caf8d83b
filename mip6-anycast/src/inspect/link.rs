//! Link-layer framing: where the IPv6 packet starts in a captured frame.
//!
//! Link types (tcpdump.org "LINKTYPE_" numbers): 0 NULL and 108 LOOP (BSD
//! address family), 1 Ethernet (with up to two 802.1Q / 802.1ad tags), 12
//! and 14 (raw IP as some systems write it), 101 RAW, 113 Linux cooked
//! (SLL), 229 IPv6, 276 Linux cooked v2 (SLL2).

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An IPv6 packet (possibly followed by link-layer padding).
    Ipv6(&'a [u8]),
    /// Something else, described (e.g. "IPv4", "ethertype 0x0806").
    Other(&'static str, Option<u32>),
    /// The link-layer framing itself is cut short or invalid.
    Malformed(&'static str),
}

const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: [u16; 2] = [0x8100, 0x88a8];

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn by_ethertype(t: u16, rest: &[u8]) -> Payload<'_> {
    match t {
        ETHERTYPE_IPV6 => Payload::Ipv6(rest),
        ETHERTYPE_IPV4 => Payload::Other("IPv4", None),
        t => Payload::Other("ethertype", Some(u32::from(t))),
    }
}

fn raw_ip(b: &[u8]) -> Payload<'_> {
    match b.first().map(|v| v >> 4) {
        Some(6) => Payload::Ipv6(b),
        Some(4) => Payload::Other("IPv4", None),
        Some(_) => Payload::Malformed("raw IP packet with IP version neither 4 nor 6"),
        None => Payload::Malformed("empty raw IP packet"),
    }
}

/// Finds the network-layer packet of a frame of link type `link_type`.
pub fn payload(link_type: u32, b: &[u8]) -> Payload<'_> {
    match link_type {
        1 => {
            let mut at = 12;
            for _ in 0..=ETHERTYPE_VLAN.len() {
                let Some(t) = be16(b, at) else {
                    return Payload::Malformed("Ethernet header cut short");
                };
                if !ETHERTYPE_VLAN.contains(&t) {
                    return by_ethertype(t, b.get(at + 2..).unwrap_or(&[]));
                }
                at += 4;
            }
            Payload::Malformed("more than two VLAN tags")
        }
        12 | 14 | 101 => raw_ip(b),
        229 => Payload::Ipv6(b),
        113 => match be16(b, 14) {
            Some(t) => by_ethertype(t, b.get(16..).unwrap_or(&[])),
            None => Payload::Malformed("Linux cooked header cut short"),
        },
        276 => match (be16(b, 0), b.get(20..)) {
            (Some(t), Some(rest)) => by_ethertype(t, rest),
            _ => Payload::Malformed("Linux cooked v2 header cut short"),
        },
        0 | 108 => {
            let Some(af) = b.get(..4) else {
                return Payload::Malformed("loopback header cut short");
            };
            let af = if link_type == 108 {
                u32::from_be_bytes([af[0], af[1], af[2], af[3]])
            } else {
                // LINKTYPE_NULL: host byte order of the capturing machine.
                let le = u32::from_le_bytes([af[0], af[1], af[2], af[3]]);
                if le < 0x1_0000 { le } else { le.swap_bytes() }
            };
            match af {
                // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin.
                10 | 24 | 28 | 30 => Payload::Ipv6(&b[4..]),
                2 => Payload::Other("IPv4", None),
                af => Payload::Other("address family", Some(af)),
            }
        }
        _ => Payload::Other("unsupported link type", Some(link_type)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_vlan_and_cooked() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 5, 0x86, 0xdd, 0x60]);
        assert_eq!(payload(1, &f), Payload::Ipv6(&[0x60]));
        f[16..18].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(payload(1, &f), Payload::Other("ethertype", Some(0x0806)));
        assert!(matches!(payload(1, &f[..13]), Payload::Malformed(_)));
        let mut s = vec![0u8; 14];
        s.extend_from_slice(&[0x86, 0xdd, 0x60, 1]);
        assert_eq!(payload(113, &s), Payload::Ipv6(&[0x60, 1]));
        let mut s2 = vec![0x86, 0xdd];
        s2.extend_from_slice(&[0; 18]);
        s2.push(0x60);
        assert_eq!(payload(276, &s2), Payload::Ipv6(&[0x60]));
        assert_eq!(payload(0, &[30, 0, 0, 0, 0x60]), Payload::Ipv6(&[0x60]));
        assert_eq!(payload(0, &[0, 0, 0, 10, 0x60]), Payload::Ipv6(&[0x60]));
        assert_eq!(payload(101, &[0x45]), Payload::Other("IPv4", None));
        assert!(matches!(payload(101, &[]), Payload::Malformed(_)));
        assert_eq!(
            payload(147, &[]),
            Payload::Other("unsupported link type", Some(147))
        );
    }
}
