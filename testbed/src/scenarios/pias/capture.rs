//! What the routers' captures show: for a probe marker, the path segments
//! it travelled (distinct outer source/destination pairs of the packets
//! carrying it: native, tunnelled or NATed) and, for the client's own
//! packet, the interface a router sent it out of (so the proxy that served
//! the client is observed, not assumed). Captures are `tcpdump -i any`
//! (LINUX_SLL2: interface index and direction per packet).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::Path;

use anyhow::Context as _;

/// One captured IPv6 packet.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Router that captured it.
    pub router: String,
    /// Interface index (SLL2).
    pub ifindex: u32,
    /// SLL2 packet type: 4 = sent by this host.
    pub outgoing: bool,
    /// Outer source.
    pub src: Ipv6Addr,
    /// Outer destination.
    pub dst: Ipv6Addr,
    /// The whole IPv6 packet (as captured).
    pub bytes: Vec<u8>,
}

/// Reads a router's capture (classic pcap, either byte order, LINUX_SLL2
/// or LINUX_SLL link layer); stops at the first truncated record.
pub fn read(router: &str, path: &Path) -> anyhow::Result<Vec<Captured>> {
    let d = std::fs::read(path)?;
    let magic = d.get(..4).context("pcap header")?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => anyhow::bail!("{}: not a pcap file", path.display()),
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = d.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let link = u32_at(20).context("pcap header")?;
    let mut out = Vec::new();
    let mut o = 24usize;
    while let (Some(incl), Some(rec)) = (u32_at(o + 8), d.get(o + 16..)) {
        let incl = incl as usize;
        let Some(frame) = rec.get(..incl) else { break };
        o += 16 + incl;
        let (ifindex, outgoing, ip) = match link {
            276 if frame.len() >= 20 => (
                u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
                frame[10] == 4,
                &frame[20..],
            ),
            113 if frame.len() >= 16 => (
                0,
                u16::from_be_bytes([frame[0], frame[1]]) == 4,
                &frame[16..],
            ),
            _ => continue,
        };
        if ip.len() < 40 || ip[0] >> 4 != 6 {
            continue;
        }
        let a = |o: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&ip[o..o + 16]);
            Ipv6Addr::from(b)
        };
        out.push(Captured {
            router: router.into(),
            ifindex,
            outgoing,
            src: a(8),
            dst: a(24),
            bytes: ip.to_vec(),
        });
    }
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Path segments of the packets carrying `marker` (distinct outer pairs).
pub fn segments(caps: &[Captured], marker: &str) -> Vec<(Ipv6Addr, Ipv6Addr)> {
    let set: BTreeSet<(Ipv6Addr, Ipv6Addr)> = caps
        .iter()
        .filter(|c| contains(&c.bytes, marker.as_bytes()))
        .map(|c| (c.src, c.dst))
        .collect();
    set.into_iter().collect()
}

/// Every (router, ifindex) that sent the client's own packet carrying
/// `marker` towards the anycast destination `anycast`.
pub fn egress_ifaces(
    caps: &[Captured],
    marker: &str,
    client: Ipv6Addr,
    anycast: Ipv6Addr,
) -> Vec<(String, u32)> {
    caps.iter()
        .filter(|c| {
            c.outgoing
                && c.src == client
                && c.dst == anycast
                && contains(&c.bytes, marker.as_bytes())
        })
        .map(|c| (c.router.clone(), c.ifindex))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian pcap with LINUX_SLL2 frames.
    fn pcap(frames: &[(u32, bool, Vec<u8>)]) -> Vec<u8> {
        let mut d = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        d.extend_from_slice(&160u32.to_le_bytes());
        d.extend_from_slice(&276u32.to_le_bytes());
        for (ifindex, out, ip) in frames {
            let mut f = vec![0x86, 0xdd, 0, 0];
            f.extend_from_slice(&ifindex.to_be_bytes());
            f.extend_from_slice(&[0, 1, if *out { 4 } else { 0 }, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
            f.extend_from_slice(ip);
            d.extend_from_slice(&[0; 8]);
            d.extend_from_slice(&(f.len() as u32).to_le_bytes());
            d.extend_from_slice(&(f.len() as u32).to_le_bytes());
            d.extend_from_slice(&f);
        }
        d
    }

    fn ipv6(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[8..24].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, src).octets());
        p[24..40].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, dst).octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn segments_are_distinct_pairs_carrying_the_marker() {
        let dir = std::env::temp_dir().join(format!("pias-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r.pcap");
        let frames = vec![
            (3, false, ipv6(1, 2, b"xxPIASFIRSTxx")),
            (4, true, ipv6(1, 2, b"xxPIASFIRSTxx")),
            (4, true, ipv6(2, 3, b"tunnel PIASFIRST")),
            (5, true, ipv6(3, 1, b"piasfirst reply")),
            (5, true, ipv6(7, 8, b"other")),
        ];
        let bytes = pcap(&frames);
        std::fs::write(&f, &bytes).unwrap();
        let caps = read("R", &f).unwrap();
        assert_eq!(caps.len(), 5);
        assert_eq!(segments(&caps, "PIASFIRST").len(), 2);
        let a = |i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i);
        assert_eq!(
            egress_ifaces(&caps, "PIASFIRST", a(1), a(2)),
            vec![("R".to_string(), 4)]
        );
        // Every truncation reads without panicking and keeps whole records only.
        for n in 0..bytes.len() {
            std::fs::write(&f, &bytes[..n]).unwrap();
            if let Ok(c) = read("R", &f) {
                assert!(c.len() <= 5);
            }
        }
        std::fs::write(&f, b"not a pcap").unwrap();
        assert!(read("R", &f).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
