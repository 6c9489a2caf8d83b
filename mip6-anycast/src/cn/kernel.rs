//! The sockets of the `xfrm` backend, where the kernel itself does the
//! RH2/HAO datapath: Mobility Header messages arrive on a raw
//! `IPPROTO_MH` socket (the kernel has already processed a Home Address
//! option: the source is the home address and the option holds the
//! care-of address) and leave through a header-included raw socket whose
//! own XFRM policy bypasses the policy database (our packets carry their
//! RH2 already; a `route2` state must not add a second one).

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use crate::engine::datapath::{MobilityPunt, Punt};
use crate::wire::{HAO_TYPE, IPV6_HEADER_LEN, ip_proto};
use crate::xfrm::msg::socket_bypass_policy;

/// `IPV6_XFRM_POLICY` (linux/in6.h).
const IPV6_XFRM_POLICY: libc::c_int = 35;
/// Largest Mobility Header message read.
const MAX_MH: usize = 2048;

fn setsockopt_raw(s: &Socket, level: libc::c_int, opt: libc::c_int, val: &[u8]) -> io::Result<()> {
    // SAFETY: `val` is valid for `val.len()` bytes during the call and
    // the fd is open.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            opt,
            val.as_ptr().cast(),
            libc::socklen_t::try_from(val.len()).unwrap_or(0),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn on(s: &Socket, opt: libc::c_int) -> io::Result<()> {
    setsockopt_raw(s, libc::IPPROTO_IPV6, opt, &1i32.to_ne_bytes())
}

/// Sends complete IPv6 packets (header included) past the XFRM tables.
#[derive(Debug)]
pub struct KernelSender {
    sock: Socket,
}

impl KernelSender {
    /// Opens the socket (`CAP_NET_RAW`, `CAP_NET_ADMIN`).
    pub fn open() -> io::Result<KernelSender> {
        let sock = Socket::new(
            Domain::IPV6,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?;
        setsockopt_raw(
            &sock,
            libc::IPPROTO_IPV6,
            IPV6_XFRM_POLICY,
            &socket_bypass_policy(),
        )?;
        Ok(KernelSender { sock })
    }

    /// Sends `packet` (an IPv6 packet) to its destination address.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        let dst: [u8; 16] = packet
            .get(24..40)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IPv6 packet"))?;
        let to = SockAddr::from(SocketAddrV6::new(Ipv6Addr::from(dst), 0, 0, 0));
        self.sock.send_to(packet, &to)?;
        Ok(())
    }
}

/// What `recvmsg` said about one Mobility Header message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<'a> {
    /// Source address as delivered (the home address if a Home Address
    /// option was processed).
    pub from: Ipv6Addr,
    /// Destination (`IPV6_PKTINFO`).
    pub to: Ipv6Addr,
    /// The Destination Options header, if any (`IPV6_DSTOPTS`), as the
    /// kernel left it (a Home Address option holds the care-of address).
    pub dstopts: Option<&'a [u8]>,
    /// The Mobility Header message.
    pub mh: &'a [u8],
}

/// Offset of the address of the Home Address option in a Destination
/// Options header (RFC 6275 6.3), if it has one.
fn hao_address_offset(dstopts: &[u8]) -> Option<usize> {
    let len = (usize::from(*dstopts.get(1)?) + 1) * 8;
    let hdr = dstopts.get(..len)?;
    let mut off = 2;
    while off < hdr.len() {
        let ty = *hdr.get(off)?;
        if ty == 0 {
            off += 1;
            continue;
        }
        let olen = usize::from(*hdr.get(off + 1)?);
        if ty == HAO_TYPE && olen == 16 {
            hdr.get(off + 2..off + 18)?;
            return Some(off + 2);
        }
        off += 2 + olen;
    }
    None
}

/// Rebuilds the packet as it was on the wire (RFC 6275 9.3.1 undone:
/// source = care-of address, option = home address), which is what the
/// correspondent machine authenticates. `None` if it does not fit.
#[must_use]
pub fn rebuild(r: &Received<'_>) -> Option<Vec<u8>> {
    let (src, opts) = match r.dstopts {
        Some(d) => {
            let len = (usize::from(*d.get(1)?) + 1) * 8;
            let mut opts = d.get(..len)?.to_vec();
            *opts.first_mut()? = ip_proto::MOBILITY;
            match hao_address_offset(&opts) {
                Some(at) => {
                    let coa: [u8; 16] = opts.get(at..at + 16)?.try_into().ok()?;
                    opts.get_mut(at..at + 16)?.copy_from_slice(&r.from.octets());
                    (Ipv6Addr::from(coa), opts)
                }
                None => (r.from, opts),
            }
        }
        None => (r.from, Vec::new()),
    };
    let payload = opts.len() + r.mh.len();
    let mut p = Vec::with_capacity(IPV6_HEADER_LEN + payload);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&u16::try_from(payload).ok()?.to_be_bytes());
    p.push(if opts.is_empty() {
        ip_proto::MOBILITY
    } else {
        ip_proto::DEST_OPTS
    });
    p.push(64);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&r.to.octets());
    p.extend_from_slice(&opts);
    p.extend_from_slice(r.mh);
    Some(p)
}

/// Receives Mobility Header messages for this node.
pub struct MhReceiver {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
    cmsg: Vec<u8>,
    /// Messages that could not be rebuilt (counted, dropped).
    pub malformed: u64,
}

impl MhReceiver {
    /// Opens the raw `IPPROTO_MH` socket (needs a tokio runtime).
    pub fn open() -> io::Result<MhReceiver> {
        let sock = Socket::new(
            Domain::IPV6,
            Type::RAW,
            Some(Protocol::from(i32::from(ip_proto::MOBILITY))),
        )?;
        on(&sock, libc::IPV6_RECVPKTINFO)?;
        on(&sock, libc::IPV6_RECVDSTOPTS)?;
        sock.set_nonblocking(true)?;
        // SAFETY: the `Socket` is owned by the `AsyncFd`; its fd stays open
        // and is the one `as_raw_fd` returns until the `AsyncFd` is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(MhReceiver {
            fd,
            buf: vec![0; MAX_MH],
            cmsg: vec![0; 512],
            malformed: 0,
        })
    }

    /// The next message as a [`Punt::Mobility`] with the packet rebuilt.
    pub async fn next(&mut self) -> io::Result<Punt> {
        loop {
            let mut guard = self.fd.readable().await?;
            let (buf, cmsg) = (&mut self.buf, &mut self.cmsg);
            let r = guard.try_io(|s| recv_with_cmsg(s.get_ref(), buf, cmsg));
            let (n, from, clen, flags) = match r {
                Err(_would_block) => continue,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Ok(Ok(v)) => v,
            };
            let received = Instant::now();
            if flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
                self.malformed += 1;
                continue;
            }
            let (Some(mh), Some(control)) = (self.buf.get(..n), self.cmsg.get(..clen)) else {
                self.malformed += 1;
                continue;
            };
            let (to, dstopts) = parse_cmsgs(control);
            let Some(to) = to else {
                self.malformed += 1;
                continue;
            };
            let rec = Received {
                from,
                to,
                dstopts,
                mh,
            };
            match (rebuild(&rec), mh.get(2)) {
                (Some(packet), Some(&mh_type)) => {
                    return Ok(Punt::Mobility(MobilityPunt {
                        packet,
                        mh_type,
                        tunnel: None,
                        received,
                    }));
                }
                _ => self.malformed += 1,
            }
        }
    }
}

/// `recvmsg` into `buf` and `cmsg`: (bytes, source, control bytes, flags).
fn recv_with_cmsg(
    s: &Socket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> io::Result<(usize, Ipv6Addr, usize, libc::c_int)> {
    let mut from = MaybeUninit::<libc::sockaddr_in6>::zeroed();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; every pointer set below points
    // into buffers that outlive the call, with their true lengths.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = from.as_mut_ptr().cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    // SAFETY: `msg` is fully initialised as above and the fd is open.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &raw mut msg, 0) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel filled `from` (msg_namelen bytes of a
    // sockaddr_in6 for an AF_INET6 socket); zeroed bytes are valid too.
    let from = unsafe { from.assume_init() };
    let addr = Ipv6Addr::from(from.sin6_addr.s6_addr);
    Ok((n, addr, msg.msg_controllen.min(cmsg.len()), msg.msg_flags))
}

/// `IPV6_PKTINFO` destination and `IPV6_DSTOPTS` bytes from a control
/// buffer (walked by hand: bounded, no pointer arithmetic).
fn parse_cmsgs(mut c: &[u8]) -> (Option<Ipv6Addr>, Option<&[u8]>) {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    let (mut to, mut dstopts) = (None, None);
    while c.len() >= HDR {
        let len = usize::from_ne_bytes(c[..8].try_into().unwrap_or([0; 8]));
        let level = i32::from_ne_bytes(c[8..12].try_into().unwrap_or([0; 4]));
        let ty = i32::from_ne_bytes(c[12..16].try_into().unwrap_or([0; 4]));
        let Some(data) = c.get(HDR..len) else { break };
        if level == libc::IPPROTO_IPV6 {
            if ty == libc::IPV6_PKTINFO {
                to = data
                    .get(..16)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .map(Ipv6Addr::from);
            } else if ty == libc::IPV6_DSTOPTS {
                dstopts = Some(data);
            }
        }
        c = c.get(len.next_multiple_of(8)..).unwrap_or(&[]);
    }
    (to, dstopts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ExtChain;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn rebuild_undoes_the_hao_swap() {
        let (coa, hoa, cn) = (
            a("2001:db8:3::10"),
            a("2001:db8:100::1"),
            a("2001:db8:1::10"),
        );
        // Destination Options as the kernel leaves it: Pad (PadN 4) + HAO
        // holding the care-of address after the swap.
        let mut d = vec![59, 2, 1, 2, 0, 0, HAO_TYPE, 16];
        d.extend(coa.octets());
        assert_eq!(d.len(), 24);
        let mh = [59u8, 1, 5, 0, 0, 0, 0, 0];
        let p = rebuild(&Received {
            from: hoa,
            to: cn,
            dstopts: Some(&d),
            mh: &mh,
        })
        .unwrap();
        let chain = ExtChain::walk(&p).unwrap();
        assert_eq!(chain.hao().unwrap().home_address, hoa);
        assert_eq!(&p[8..24], &coa.octets());
        assert_eq!(&p[24..40], &cn.octets());
        assert_eq!(p[6], ip_proto::DEST_OPTS);
        assert_eq!(p[40], ip_proto::MOBILITY);
        assert_eq!(&p[64..], &mh);
        // No options: source as delivered.
        let p = rebuild(&Received {
            from: coa,
            to: cn,
            dstopts: None,
            mh: &mh,
        })
        .unwrap();
        assert_eq!(p[6], ip_proto::MOBILITY);
        assert_eq!(&p[8..24], &coa.octets());
        // Truncated options: no panic.
        for n in 0..d.len() {
            let _ = rebuild(&Received {
                from: hoa,
                to: cn,
                dstopts: Some(&d[..n]),
                mh: &mh,
            });
        }
    }

    #[test]
    fn cmsgs_are_bounded() {
        let mut c = vec![0u8; 16 + 20];
        c[..8].copy_from_slice(&36usize.to_ne_bytes());
        c[8..12].copy_from_slice(&libc::IPPROTO_IPV6.to_ne_bytes());
        c[12..16].copy_from_slice(&libc::IPV6_PKTINFO.to_ne_bytes());
        c[16..32].copy_from_slice(&a("2001:db8:1::10").octets());
        assert_eq!(parse_cmsgs(&c).0, Some(a("2001:db8:1::10")));
        for n in 0..c.len() {
            let _ = parse_cmsgs(&c[..n]);
        }
        let mut bad = c.clone();
        bad[..8].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(parse_cmsgs(&bad), (None, None));
    }
}
