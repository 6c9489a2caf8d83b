//! ICMPv6 errors about route-optimized packets: a raw ICMPv6 socket that
//! only lets Destination Unreachable (1), Time Exceeded (3) and Parameter
//! Problem (4) through (`ICMP6_FILTER`, RFC 3542 3.2), and the parser of
//! the invoking packet they quote (RFC 4443 2.4 (c)).

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tracing::debug;

use crate::wire::{IPV6_HEADER_LEN, ROUTING_TYPE_2, ip_proto};

/// ICMPv6 Destination Unreachable.
pub const DEST_UNREACHABLE: u8 = 1;
/// ICMPv6 Time Exceeded.
pub const TIME_EXCEEDED: u8 = 3;
/// ICMPv6 Parameter Problem.
pub const PARAMETER_PROBLEM: u8 = 4;

/// `ICMP6_FILTER` (linux/icmpv6.h).
const ICMP6_FILTER: libc::c_int = 1;

/// An ICMPv6 error about a packet this node sent with a Type 2 Routing
/// Header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// Who sent the error.
    pub from: Ipv6Addr,
    /// ICMPv6 type.
    pub icmp_type: u8,
    /// ICMPv6 code.
    pub code: u8,
    /// Source of the quoted packet (this node).
    pub quoted_src: Ipv6Addr,
    /// Destination of the quoted packet (a care-of address).
    pub quoted_dst: Ipv6Addr,
    /// The home address in the quoted packet's Type 2 Routing Header.
    pub quoted_hoa: Ipv6Addr,
}

fn addr_at(b: &[u8], off: usize) -> Option<Ipv6Addr> {
    let bytes: [u8; 16] = b.get(off..off + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

/// Parses an ICMPv6 message (as a raw ICMPv6 socket delivers it: from the
/// ICMPv6 header on) sent by `from`. `None` unless it is an error whose
/// quoted packet starts with an IPv6 header followed directly by a Type 2
/// Routing Header (what this node's engine sends). Never panics.
#[must_use]
pub fn parse_error(from: Ipv6Addr, msg: &[u8]) -> Option<IcmpError> {
    let icmp_type = *msg.first()?;
    if !matches!(
        icmp_type,
        DEST_UNREACHABLE | TIME_EXCEEDED | PARAMETER_PROBLEM
    ) {
        return None;
    }
    let code = *msg.get(1)?;
    let q = msg.get(8..)?;
    if q.first()? >> 4 != 6 || *q.get(6)? != ip_proto::ROUTING {
        return None;
    }
    let rh = q.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + 24)?;
    // RFC 6275 6.4: Hdr Ext Len 2, Routing Type 2, Segments Left 1 (0 once
    // processed), reserved, home address.
    if rh.get(1) != Some(&2) || rh.get(2) != Some(&ROUTING_TYPE_2) {
        return None;
    }
    Some(IcmpError {
        from,
        icmp_type,
        code,
        quoted_src: addr_at(q, 8)?,
        quoted_dst: addr_at(q, 24)?,
        quoted_hoa: addr_at(rh, 8)?,
    })
}

/// Opens the filtered raw ICMPv6 socket (in the caller's namespace).
pub fn open() -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    // Bit set = blocked (Linux semantics of struct icmp6_filter).
    let mut filter = [u32::MAX; 8];
    for t in [DEST_UNREACHABLE, TIME_EXCEEDED, PARAMETER_PROBLEM] {
        filter[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    // SAFETY: `filter` is a valid 32-byte `struct icmp6_filter` for the
    // duration of the call, and the fd is open.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Reads errors from `sock` and sends the ones about RH2 packets to `tx`
/// until `tx` closes. Returns how it ended.
pub async fn run(sock: Socket, tx: mpsc::Sender<IcmpError>) -> io::Result<()> {
    // SAFETY: the `Socket` is owned by the `AsyncFd`; its fd stays open and
    // is the one `as_raw_fd` returns until the `AsyncFd` is dropped.
    let fd = unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let mut buf = vec![0u8; 2048];
    loop {
        let mut guard = fd.readable().await?;
        let r = guard.try_io(|s| {
            let uninit = unsafe_as_uninit(&mut buf);
            s.get_ref().recv_from(uninit)
        });
        match r {
            Err(_would_block) => continue,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            Ok(Ok((n, from))) => {
                let from = from
                    .as_socket_ipv6()
                    .map_or(Ipv6Addr::UNSPECIFIED, |a| *a.ip());
                let Some(msg) = buf.get(..n) else { continue };
                if let Some(e) = parse_error(from, msg) {
                    debug!(?e, "ICMPv6 error about a route-optimized packet");
                    if tx.send(e).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Views initialized bytes as `MaybeUninit` (what socket2's `recv_from`
/// takes); sound because initialized bytes are valid `MaybeUninit`.
fn unsafe_as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the callee
    // only writes initialized bytes into it.
    unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [std::mem::MaybeUninit<u8>]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(rh_type: u8) -> Vec<u8> {
        let mut m = vec![PARAMETER_PROBLEM, 0, 0, 0, 0, 0, 0, 42];
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[6] = ip_proto::ROUTING;
        ip[8..24].copy_from_slice(&"2001:db8:1::10".parse::<Ipv6Addr>().unwrap().octets());
        ip[24..40].copy_from_slice(&"2001:db8:3::10".parse::<Ipv6Addr>().unwrap().octets());
        m.extend(ip);
        let mut rh = vec![ip_proto::TCP, 2, rh_type, 1, 0, 0, 0, 0];
        rh.extend("2001:db8:100::1".parse::<Ipv6Addr>().unwrap().octets());
        m.extend(rh);
        m.extend([0u8; 20]);
        m
    }

    #[test]
    fn parses_rh2_errors_only() {
        let from: Ipv6Addr = "2001:db8:3::10".parse().unwrap();
        let e = parse_error(from, &quoted(2)).expect("an RH2 error");
        assert_eq!(e.quoted_hoa, "2001:db8:100::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(e.quoted_dst, from);
        assert_eq!(e.icmp_type, PARAMETER_PROBLEM);
        assert_eq!(parse_error(from, &quoted(0)), None);
        let mut echo = quoted(2);
        echo[0] = 128;
        assert_eq!(parse_error(from, &echo), None);
        // Every truncation: no panic, no match.
        let full = quoted(2);
        for n in 0..8 + 40 + 24 {
            assert_eq!(parse_error(from, &full[..n]), None, "{n}");
        }
    }
}
