//! NETLINK_XFRM sockets: [`XfrmSocket`] sends one request and waits for
//! its answer (the kernel handles XFRM requests synchronously, so the
//! answer is queued before `send` returns); [`ReportSocket`] receives
//! `XFRM_MSG_REPORT`s (group `XFRMNLGRP_REPORT`).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_sys::Socket;
use tokio::io::unix::AsyncFd;

use super::msg::{self, HaoReportRepr, NETLINK_XFRM, Report, Request, XFRMNLGRP_REPORT};

/// Largest answer read at once.
const RECV_BUF: usize = 16 * 1024;

/// A request socket.
pub struct XfrmSocket {
    sock: Socket,
    seq: u32,
}

impl std::fmt::Debug for XfrmSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XfrmSocket")
            .field("seq", &self.seq)
            .finish()
    }
}

/// What a request got back.
#[derive(Debug)]
pub enum Answer {
    /// An ACK.
    Ack,
    /// A message of the given type (e.g. the state a `GETSA` asked for).
    Message(u16, Vec<u8>),
}

impl XfrmSocket {
    /// Opens a NETLINK_XFRM socket in the caller's namespace (fails with
    /// `EPROTONOSUPPORT` when the kernel has no `xfrm_user`).
    pub fn open() -> io::Result<XfrmSocket> {
        let mut sock = Socket::new(NETLINK_XFRM)?;
        sock.bind_auto()?;
        set_recv_timeout(&sock, Duration::from_secs(2))?;
        Ok(XfrmSocket { sock, seq: 0 })
    }

    /// Sends `req` and returns the answer; a negative `NLMSG_ERROR` is an
    /// `io::Error` with that errno.
    pub fn request(&mut self, req: Request) -> io::Result<Answer> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = req.finish(seq);
        self.sock.send(&bytes, 0)?;
        let mut buf = Vec::with_capacity(RECV_BUF);
        loop {
            buf.clear();
            self.sock.recv(&mut buf, 0)?;
            for m in msg::messages(&buf) {
                if m.seq != seq {
                    continue;
                }
                return match msg::error_code(&m) {
                    Some(0) => Ok(Answer::Ack),
                    Some(e) => Err(io::Error::from_raw_os_error(-e)),
                    None => Ok(Answer::Message(m.msg_type, m.payload.to_vec())),
                };
            }
        }
    }

    /// Like [`XfrmSocket::request`] for requests answered by an ACK;
    /// `ENOENT` on a delete and `EEXIST` on an add are errors too (the
    /// caller decides).
    pub fn ack(&mut self, req: Request) -> io::Result<()> {
        match self.request(req)? {
            Answer::Ack => Ok(()),
            Answer::Message(t, _) => Err(io::Error::other(format!(
                "unexpected netlink message type {t} instead of an ACK"
            ))),
        }
    }
}

fn set_recv_timeout(sock: &Socket, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(t.subsec_micros()),
    };
    // SAFETY: `tv` is a valid timeval for the duration of the call and
    // the fd is open.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives `XFRM_MSG_REPORT`s about Home Address options without a
/// binding.
pub struct ReportSocket {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
    /// Reports that were malformed or not about a HAO (counted, dropped).
    pub ignored: u64,
}

impl ReportSocket {
    /// Joins `XFRMNLGRP_REPORT` (in the caller's namespace; needs a tokio
    /// runtime).
    pub fn open() -> io::Result<ReportSocket> {
        let mut sock = Socket::new(NETLINK_XFRM)?;
        sock.bind_auto()?;
        sock.add_membership(XFRMNLGRP_REPORT)?;
        sock.set_non_blocking(true)?;
        // SAFETY: the `Socket` is owned by the `AsyncFd`; its fd stays open
        // and is the one `as_raw_fd` returns until the `AsyncFd` is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(ReportSocket {
            fd,
            buf: Vec::with_capacity(RECV_BUF),
            ignored: 0,
        })
    }

    /// The next report about a Home Address option.
    pub async fn next(&mut self) -> io::Result<HaoReportRepr> {
        loop {
            let mut guard = self.fd.readable().await?;
            self.buf.clear();
            let buf = &mut self.buf;
            match guard.try_io(|s| s.get_ref().recv(buf, 0)) {
                Err(_would_block) => continue,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Reports lost to a full receive buffer: go on.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Ok(Err(e)) => return Err(e),
                Ok(Ok(_)) => {}
            }
            let mut found = None;
            for m in msg::messages(&self.buf) {
                if m.msg_type != msg::msg_type::REPORT {
                    continue;
                }
                match Report::new_checked(m.payload).and_then(|r| HaoReportRepr::parse(&r)) {
                    Ok(Some(r)) if found.is_none() => found = Some(r),
                    _ => self.ignored += 1,
                }
            }
            if let Some(r) = found {
                return Ok(r);
            }
        }
    }
}
