//! Clients of X from the kernel's socket table: the remote addresses of
//! TCP sockets whose local address is X (`/proc/net/tcp6` of the daemon's
//! namespace). Catches clients of services this daemon does not host and
//! connections that existed before it started.

use std::net::Ipv6Addr;

/// TCP states that mean a live client: ESTABLISHED (1), SYN_RECV (3).
const LIVE_STATES: [u8; 2] = [0x01, 0x03];
/// Most lines looked at (a bound on work per scan).
const MAX_LINES: usize = 1 << 20;

/// An address as `/proc/net/tcp6` prints it: four 32-bit words, each in
/// host byte order, in hex.
fn parse_addr(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// The peers of live TCP sockets on `local` in the text of
/// `/proc/net/tcp6` (deduplicated, in order of appearance).
pub fn peers_in(text: &str, local: Ipv6Addr) -> Vec<Ipv6Addr> {
    let mut out = Vec::new();
    for line in text.lines().skip(1).take(MAX_LINES) {
        let mut f = line.split_whitespace();
        let (Some(_sl), Some(l), Some(r), Some(st)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let (Some((la, _)), Some((ra, _))) = (l.split_once(':'), r.split_once(':')) else {
            continue;
        };
        let Ok(state) = u8::from_str_radix(st, 16) else {
            continue;
        };
        if !LIVE_STATES.contains(&state) || parse_addr(la) != Some(local) {
            continue;
        }
        if let Some(p) = parse_addr(ra)
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    out
}

/// Scans this namespace's `/proc/net/tcp6` for peers of `local`.
pub fn scan(local: Ipv6Addr) -> std::io::Result<Vec<Ipv6Addr>> {
    // `/proc/net` follows the calling thread's namespace; the daemon runs
    // entirely in one, so any thread gives the same table.
    let text = std::fs::read_to_string("/proc/thread-self/net/tcp6")?;
    Ok(peers_in(&text, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(a: Ipv6Addr) -> String {
        a.octets()
            .chunks_exact(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    }

    #[test]
    fn finds_live_peers_of_the_local_address() {
        let x: Ipv6Addr = "2001:db8:100::1".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:3::10".parse().unwrap();
        let text = format!(
            "  sl  local_address                         remote_address                        st tx_queue rx_queue\n\
             0: {}:1B58 {}:0000 0A 0\n\
             1: {}:1B58 {}:C350 01 0\n\
             2: {}:1B58 {}:C351 01 0\n\
             3: {}:0016 {}:C352 01 0\n\
             4: garbage\n\
             5: {}:1B58 {}:C353 06 0\n",
            hex(x),
            hex(Ipv6Addr::UNSPECIFIED),
            hex(x),
            hex(c),
            hex(x),
            hex(c),
            hex(other),
            hex(c),
            hex(x),
            hex(other),
        );
        assert_eq!(peers_in(&text, x), vec![c]);
        assert_eq!(parse_addr("xyz"), None);
        assert_eq!(parse_addr(&hex(x)), Some(x));
    }

    #[test]
    fn reads_this_namespace() {
        // Whatever is there parses; no panic on the real file.
        let _ = scan(Ipv6Addr::LOCALHOST).unwrap();
    }
}
