//! The shield (a drop-everything socket filter) and the capture of what it
//! drops, so that the peer's segments sent during a move can be replayed on
//! the acceptor instead of waiting for the peer's retransmission timer.
//!
//! A classic BPF socket filter runs in `tcp_v4_rcv`/`tcp_v6_rcv` before TCP
//! processing (`tcp_filter()`): a dropped segment is neither acknowledged nor
//! answered with a reset. That makes the frozen socket a clean cut: what it
//! acknowledged is in the dump, what arrives later is unacknowledged and the
//! peer still holds it. An `AF_PACKET` socket sees the same packets before IP
//! processing, so it captures exactly what the shield drops.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use socket2::{SockFilter, SockRef};

use crate::error::{Error, Result};
use crate::segment::{CapturedSegment, parse_packet, wire_v4};
use crate::state::{Limits, seq_after};

// Classic BPF opcodes (include/uapi/linux/filter.h, bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LDX_B_MSH: u16 = 0xb1;
const LD_H_IND: u16 = 0x48;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// Largest packet the capture keeps (a GRO/TSO super-packet fits).
const CAPTURE_SNAPLEN: u32 = 256 * 1024;

/// Attaches the shield: a socket filter that drops every incoming segment
/// before TCP sees it (no ACK, no RST). Also usable on a listening socket to
/// keep its kernel from answering a moving connection's segments with RST
/// while no established socket exists for them.
pub fn attach_shield(fd: BorrowedFd<'_>) -> Result<()> {
    let drop_all = [SockFilter::new(RET_K, 0, 0, 0)];
    SockRef::from(&fd)
        .attach_filter(&drop_all)
        .map_err(Error::sys("setsockopt(SO_ATTACH_FILTER)"))
}

/// Removes the shield (or any socket filter).
pub fn detach_shield(fd: BorrowedFd<'_>) -> Result<()> {
    match SockRef::from(&fd).detach_filter() {
        // ENOENT: no filter attached, which is what we want.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r.map_err(Error::sys("setsockopt(SO_DETACH_FILTER)")),
    }
}

/// One classic BPF instruction: (code, jt, jf, k).
type Insn = (u16, u8, u8, u32);

/// Builds a classic BPF program accepting TCP packets `remote -> local`
/// (network header first, as an `AF_PACKET`/`SOCK_DGRAM` socket sees them).
fn flow_filter(local: SocketAddr, remote: SocketAddr) -> Vec<Insn> {
    let mut prog: Vec<Insn> = Vec::new();
    // Indices of JEQ instructions whose false branch must go to the reject.
    let mut rejects: Vec<usize> = Vec::new();
    let mut check = |prog: &mut Vec<Insn>, load: Insn, k: u32| {
        prog.push(load);
        rejects.push(prog.len());
        prog.push((JEQ_K, 0, 0, k));
    };
    let mut frag_at = None;
    match (wire_v4(local.ip()), wire_v4(remote.ip())) {
        (Some(dst), Some(src)) => {
            check(&mut prog, (LD_B_ABS, 0, 0, 9), 6);
            // Fragments (offset or MF set) are rejected: their ports are not there.
            prog.push((LD_H_ABS, 0, 0, 6));
            frag_at = Some(prog.len());
            prog.push((JSET_K, 0, 0, 0x3fff));
            check(&mut prog, (LD_W_ABS, 0, 0, 12), u32::from(src));
            check(&mut prog, (LD_W_ABS, 0, 0, 16), u32::from(dst));
            prog.push((LDX_B_MSH, 0, 0, 0));
            check(&mut prog, (LD_H_IND, 0, 0, 0), u32::from(remote.port()));
            check(&mut prog, (LD_H_IND, 0, 0, 2), u32::from(local.port()));
        }
        (None, None) => {
            let (IpAddr::V6(dst), IpAddr::V6(src)) = (local.ip(), remote.ip()) else {
                return vec![(RET_K, 0, 0, 0)];
            };
            check(&mut prog, (LD_B_ABS, 0, 0, 6), 6);
            for (base, addr) in [(8u32, src.octets()), (24u32, dst.octets())] {
                for (i, word) in addr.chunks_exact(4).enumerate() {
                    let k = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
                    check(&mut prog, (LD_W_ABS, 0, 0, base + 4 * i as u32), k);
                }
            }
            check(&mut prog, (LD_H_ABS, 0, 0, 40), u32::from(remote.port()));
            check(&mut prog, (LD_H_ABS, 0, 0, 42), u32::from(local.port()));
        }
        // Mixed families never match anything.
        _ => return vec![(RET_K, 0, 0, 0)],
    }
    prog.push((RET_K, 0, 0, CAPTURE_SNAPLEN));
    prog.push((RET_K, 0, 0, 0));
    let reject = prog.len() - 1;
    // Jump offsets are relative to the next instruction; programs here are
    // shorter than 40 instructions, so they fit in a u8.
    for at in rejects {
        prog[at].2 = (reject - at - 1) as u8;
    }
    if let Some(at) = frag_at {
        prog[at].1 = (reject - at - 1) as u8;
    }
    prog
}

fn to_sock_filter(prog: &[Insn]) -> Vec<SockFilter> {
    prog.iter()
        .map(|&(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
        .collect()
}

/// Counters of a capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Segments kept.
    pub kept: usize,
    /// Segments read but not kept: old data, superseded ACKs, over the limits.
    pub discarded: usize,
    /// Packets larger than the snap length or not parseable.
    pub malformed: usize,
}

/// An `AF_PACKET` capture of one connection's incoming direction, in the
/// network namespace of the thread that opened it.
#[derive(Debug)]
pub struct Capture {
    sock: OwnedFd,
    local: SocketAddr,
    remote: SocketAddr,
    segments: Vec<CapturedSegment>,
    bytes: usize,
    stats: CaptureStats,
}

impl Capture {
    /// Starts capturing TCP packets `remote -> local` on every interface of
    /// the calling thread's network namespace. Needs `CAP_NET_RAW`.
    pub fn open(local: SocketAddr, remote: SocketAddr) -> Result<Capture> {
        let proto = if wire_v4(local.ip()).is_some() {
            libc::ETH_P_IP
        } else {
            libc::ETH_P_IPV6
        } as u16;
        // Protocol 0 first: the socket receives nothing until bound, so no
        // unfiltered packet can slip in before the filter is attached.
        // SAFETY: plain socket(2) call.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::sys("socket(AF_PACKET)")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        SockRef::from(&sock)
            .attach_filter(&to_sock_filter(&flow_filter(local, remote)))
            .map_err(Error::sys("setsockopt(SO_ATTACH_FILTER) on capture"))?;
        // A burst during a move must not overflow the capture buffer.
        let _ = crate::sys::setsockopt_int(
            sock.as_fd(),
            libc::SOL_SOCKET,
            crate::sys::SO_RCVBUFFORCE,
            8 << 20,
        );
        // SAFETY: an all-zero sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto.to_be();
        sll.sll_ifindex = 0;
        // SAFETY: `sll` is a live sockaddr_ll of the given size.
        let ret = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(Error::sys("bind(AF_PACKET)")(io::Error::last_os_error()));
        }
        Ok(Capture {
            sock,
            local,
            remote,
            segments: Vec::new(),
            bytes: 0,
            stats: CaptureStats::default(),
        })
    }

    /// Reads every packet queued so far into the capture's buffer, within `limits`.
    pub fn poll(&mut self, limits: &Limits) {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); CAPTURE_SNAPLEN as usize];
        loop {
            // SAFETY: an all-zero sockaddr_ll is valid output storage.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut fromlen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `from` are live writable buffers of the given sizes.
            let n = unsafe {
                libc::recvfrom(
                    self.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut fromlen,
                )
            };
            if n < 0 {
                // EAGAIN: drained. Any other error ends this poll as well.
                break;
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let n = n as usize;
            if n > buf.len() {
                self.stats.malformed += 1;
                continue;
            }
            // SAFETY: the kernel initialised the first `n` bytes.
            let pkt: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
            match parse_packet(pkt) {
                Some(p) if self.matches(&p.src, &p.dst) => self.keep(p.segment, limits),
                Some(_) => self.stats.discarded += 1,
                None => self.stats.malformed += 1,
            }
        }
    }

    fn matches(&self, src: &SocketAddr, dst: &SocketAddr) -> bool {
        let same = |a: &SocketAddr, b: &SocketAddr| {
            a.port() == b.port()
                && match (wire_v4(a.ip()), wire_v4(b.ip())) {
                    (Some(x), Some(y)) => x == y,
                    _ => a.ip() == b.ip(),
                }
        };
        same(src, &self.remote) && same(dst, &self.local)
    }

    fn keep(&mut self, seg: CapturedSegment, limits: &Limits) {
        if seg.validate().is_err() {
            self.stats.malformed += 1;
            return;
        }
        if self.segments.len() >= limits.max_captured_segments
            || self.bytes.saturating_add(seg.payload.len()) > limits.max_captured_bytes
        {
            self.stats.discarded += 1;
            return;
        }
        self.bytes += seg.payload.len();
        self.segments.push(seg);
        self.stats.kept += 1;
    }

    /// Polls once more and returns what is worth replaying into a receiver
    /// that reached `rcv_nxt`: every segment with new data, FIN or RST, plus
    /// the pure acknowledgment with the highest ack number (it carries the
    /// peer's latest acknowledgment, window and SACK blocks).
    pub fn take(&mut self, rcv_nxt: u32, limits: &Limits) -> Vec<CapturedSegment> {
        self.poll(limits);
        let all = std::mem::take(&mut self.segments);
        self.bytes = 0;
        let mut out = Vec::with_capacity(all.len());
        let mut best_ack: Option<CapturedSegment> = None;
        for seg in all {
            if seg.carries_news_after(rcv_nxt) {
                out.push(seg);
            } else {
                self.stats.discarded += 1;
                let better = best_ack.as_ref().is_none_or(|b| !seq_after(b.ack, seg.ack));
                if better {
                    best_ack = Some(seg);
                }
            }
        }
        if let Some(mut ack) = best_ack {
            // Old payload is useless to the receiver; keep the header only.
            ack.payload.clear();
            ack.flags &= !crate::segment::FIN;
            self.stats.discarded -= 1;
            out.push(ack);
        }
        out
    }

    /// The capture's counters.
    pub fn stats(&self) -> CaptureStats {
        self.stats
    }

    /// Closes the capture on a short-lived thread: closing a packet socket
    /// waits for an RCU grace period (`synchronize_net()` in
    /// `packet_release`), milliseconds that must not delay a handoff.
    pub fn close_in_background(self) {
        let spawned = std::thread::Builder::new()
            .name("capture-close".into())
            .spawn(move || drop(self));
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "closing the capture inline");
        }
    }
}

/// Re-injects `segments` as packets `remote -> local` into the calling
/// thread's network namespace through a raw socket (`IPPROTO_RAW`, header
/// included); the kernel delivers them to the socket bound to `local`.
/// Needs `CAP_NET_RAW`. Returns how many were sent.
pub fn reinject(
    local: SocketAddr,
    remote: SocketAddr,
    segments: &[CapturedSegment],
) -> Result<usize> {
    if segments.is_empty() {
        return Ok(0);
    }
    let v4 = wire_v4(local.ip()).is_some();
    let domain = if v4 { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2) call.
    let raw = unsafe {
        libc::socket(
            domain,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if raw < 0 {
        return Err(Error::sys("socket(SOCK_RAW, IPPROTO_RAW)")(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let dest: socket2::SockAddr = match wire_v4(local.ip()) {
        Some(v4addr) => SocketAddr::new(IpAddr::V4(v4addr), 0).into(),
        None => SocketAddr::new(local.ip(), 0).into(),
    };
    let sref = SockRef::from(&sock);
    let mut sent = 0;
    for seg in segments {
        let pkt = seg.to_packet(local, remote)?;
        sref.send_to(&pkt, &dest)
            .map_err(Error::sys("sendto(raw)"))?;
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_end_in_accept_then_reject() {
        for (l, r) in [
            ("[2001:db8::1]:80", "[2001:db8::2]:4000"),
            ("192.0.2.1:80", "192.0.2.2:4000"),
            ("[::ffff:192.0.2.1]:80", "[::ffff:192.0.2.2]:4000"),
        ] {
            let prog = flow_filter(l.parse().unwrap(), r.parse().unwrap());
            assert!(prog.len() < 40);
            assert_eq!(prog[prog.len() - 1], (RET_K, 0, 0, 0));
            assert_eq!(prog[prog.len() - 2], (RET_K, 0, 0, CAPTURE_SNAPLEN));
            // Every conditional jump lands inside the program.
            for (i, insn) in prog
                .iter()
                .enumerate()
                .filter(|(_, x)| x.0 == JEQ_K || x.0 == JSET_K)
            {
                assert!(i + 1 + usize::from(insn.1) < prog.len());
                assert!(i + 1 + usize::from(insn.2) < prog.len());
            }
        }
    }
}
