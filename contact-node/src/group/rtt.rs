//! Round-trip times from this member to clients, for the lowest-RTT
//! handoff policy: ICMPv6 Echo (RFC 4443 4.1) from the member's care-of
//! address, a raw socket, one round of probes at a time. The figures go
//! into the member's load reports; the contact node's reports name its
//! clients, so every member measures the clients the group serves.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// ICMPv6 Echo Request / Reply types.
const ECHO_REQUEST: u8 = 128;
const ECHO_REPLY: u8 = 129;

/// Sends one Echo Request from `src` to each of `targets` (identifier
/// `id`, sequence = index) and waits at most `timeout` for the replies.
/// Returns the RTT of each target that answered. Blocking: run it on a
/// blocking thread. Needs CAP_NET_RAW.
pub fn probe_all(
    src: Ipv6Addr,
    targets: &[Ipv6Addr],
    id: u16,
    timeout: Duration,
) -> io::Result<HashMap<Ipv6Addr, Duration>> {
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    sock.bind(&SocketAddr::V6(SocketAddrV6::new(src, 0, 0, 0)).into())?;
    let mut sent = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        let seq = u16::try_from(i).unwrap_or(u16::MAX);
        // The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets
        // (RFC 3542 3.1).
        let mut pkt = [ECHO_REQUEST, 0, 0, 0, 0, 0, 0, 0, 0x6d, 0x69, 0x70, 0x36];
        pkt[4..6].copy_from_slice(&id.to_be_bytes());
        pkt[6..8].copy_from_slice(&seq.to_be_bytes());
        let to = SocketAddr::V6(SocketAddrV6::new(*t, 0, 0, 0));
        if sock.send_to(&pkt, &to.into()).is_ok() {
            sent.insert(seq, (*t, Instant::now()));
        }
    }
    let deadline = Instant::now() + timeout;
    let mut out = HashMap::new();
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    while out.len() < sent.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        // SAFETY: recv_from initialised the first `n` octets.
        let data: Vec<u8> = buf
            .get(..n)
            .unwrap_or_default()
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let Some(reply) = parse_reply(&data, id) else {
            continue;
        };
        let from = from.as_socket_ipv6().map(|a| *a.ip());
        if let Some((target, at)) = sent.get(&reply)
            && from == Some(*target)
        {
            out.entry(*target)
                .or_insert(now.saturating_duration_since(*at));
        }
    }
    Ok(out)
}

/// The sequence number of an Echo Reply with identifier `id`.
fn parse_reply(data: &[u8], id: u16) -> Option<u16> {
    let h: &[u8; 8] = data.get(..8)?.try_into().ok()?;
    (h[0] == ECHO_REPLY && h[1] == 0 && u16::from_be_bytes([h[4], h[5]]) == id)
        .then(|| u16::from_be_bytes([h[6], h[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_matched_by_identifier() {
        assert_eq!(parse_reply(&[129, 0, 0, 0, 0, 7, 0, 3], 7), Some(3));
        assert_eq!(parse_reply(&[129, 0, 0, 0, 0, 8, 0, 3], 7), None);
        assert_eq!(parse_reply(&[128, 0, 0, 0, 0, 7, 0, 3], 7), None);
        assert_eq!(parse_reply(&[129, 0, 0], 7), None);
    }

    #[test]
    fn loopback_answers_with_a_round_trip_time() {
        let lo = Ipv6Addr::LOCALHOST;
        match probe_all(lo, &[lo], 0x4d36, Duration::from_secs(2)) {
            Ok(r) => {
                let rtt = r.get(&lo).copied();
                assert!(rtt.is_some_and(|d| d < Duration::from_secs(2)), "{r:?}");
            }
            Err(e)
                if e.kind() == io::ErrorKind::PermissionDenied
                    && std::env::var("CI").as_deref() != Ok("true") =>
            {
                eprintln!("SKIP (needs CAP_NET_RAW): loopback_answers_with_a_round_trip_time: {e}");
            }
            Err(e) => panic!("{e}"),
        }
    }
}
