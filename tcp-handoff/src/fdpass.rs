//! Handing a restored socket to a local service process: the descriptor
//! travels as `SCM_RIGHTS` over a Unix stream socket, with a tiny frame for
//! metadata (e.g. the connection's application state):
//!
//! ```text
//! +--------+----------------+------------------+
//! | "THFD" | len: u32 (BE)  | len bytes of meta |   + SCM_RIGHTS: exactly one fd
//! +--------+----------------+------------------+     on the first byte
//! ```
//!
//! A receiver in any language needs only `recvmsg` (Python:
//! `socket.recv_fds(sock, 8, 1)`, then `recv` of `len` bytes).

use std::io::{IoSlice, IoSliceMut, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::error::{DecodeError, Error, Result};

/// Magic of a descriptor-passing frame.
pub const FD_MAGIC: &[u8; 4] = b"THFD";

fn nix_err(op: &'static str) -> impl FnOnce(nix::Error) -> Error {
    move |e| Error::Sys {
        op,
        source: std::io::Error::from(e),
    }
}

/// Sends `fd` and `meta` over `channel`.
pub fn send_fd(channel: &UnixStream, fd: BorrowedFd<'_>, meta: &[u8]) -> Result<()> {
    let len = u32::try_from(meta.len()).map_err(|_| DecodeError::TooLong {
        field: "fd metadata",
        len: meta.len() as u64,
        limit: u64::from(u32::MAX),
    })?;
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(FD_MAGIC);
    header[4..].copy_from_slice(&len.to_be_bytes());
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(&header), IoSlice::new(meta)];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let mut sent = sendmsg::<()>(
        channel.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(nix_err("sendmsg(SCM_RIGHTS)"))?;
    // The descriptor went with the first byte; finish the rest plainly.
    let total = header.len() + meta.len();
    let mut rest: Vec<u8> = Vec::new();
    if sent < total {
        rest.extend_from_slice(&header[sent.min(8)..]);
        rest.extend_from_slice(&meta[sent.saturating_sub(8)..]);
    }
    let mut w = channel;
    while !rest.is_empty() {
        let n = std::io::Write::write(&mut w, &rest).map_err(Error::sys("write fd metadata"))?;
        rest.drain(..n);
        sent += n;
    }
    debug_assert_eq!(sent, total);
    Ok(())
}

/// Receives one descriptor and its metadata (at most `max_meta` bytes).
/// Frames with no descriptor or more than one are rejected; extra
/// descriptors are closed.
pub fn recv_fd(channel: &UnixStream, max_meta: usize) -> Result<(OwnedFd, Vec<u8>)> {
    let mut header = [0u8; 8];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 4]);
    let (got, fds) = {
        let mut iov = [IoSliceMut::new(&mut header)];
        let msg = recvmsg::<()>(
            channel.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(nix_err("recvmsg(SCM_RIGHTS)"))?;
        let mut fds: Vec<OwnedFd> = Vec::new();
        for c in msg.cmsgs().map_err(nix_err("recvmsg control data"))? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel installed these descriptors for us.
                fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
            }
        }
        (msg.bytes, fds)
    };
    if got == 0 {
        return Err(DecodeError::Truncated {
            field: "fd frame header",
            needed: 8,
        }
        .into());
    }
    let mut r = channel;
    r.read_exact(&mut header[got..])
        .map_err(Error::sys("read fd frame header"))?;
    if &header[..4] != FD_MAGIC {
        return Err(DecodeError::Magic.into());
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > max_meta {
        return Err(DecodeError::TooLong {
            field: "fd metadata",
            len: len as u64,
            limit: max_meta as u64,
        }
        .into());
    }
    let mut meta = vec![0u8; len];
    r.read_exact(&mut meta)
        .map_err(Error::sys("read fd metadata"))?;
    let count = fds.len();
    let mut fds = fds.into_iter();
    match (fds.next(), count) {
        (Some(fd), 1) => Ok((fd, meta)),
        _ => Err(DecodeError::FdCount(count).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn passes_an_fd_with_metadata() {
        let (a, b) = UnixStream::pair().unwrap();
        let (x, mut y) = UnixStream::pair().unwrap();
        send_fd(&a, x.as_fd(), b"meta data").unwrap();
        let (fd, meta) = recv_fd(&b, 64).unwrap();
        assert_eq!(meta, b"meta data");
        // The received descriptor is the same socket as `x`.
        let mut got = UnixStream::from(fd);
        got.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        y.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        drop(x);
    }

    #[test]
    fn rejects_bad_frames() {
        let (a, b) = UnixStream::pair().unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        send_fd(&a, x.as_fd(), &[0u8; 100]).unwrap();
        assert!(matches!(
            recv_fd(&b, 10),
            Err(Error::Decode(DecodeError::TooLong { .. }))
        ));

        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"THFD\0\0\0\0").unwrap();
        assert!(matches!(
            recv_fd(&b, 10),
            Err(Error::Decode(DecodeError::FdCount(0)))
        ));

        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"XXXX\0\0\0\0").unwrap();
        assert!(matches!(
            recv_fd(&b, 10),
            Err(Error::Decode(DecodeError::Magic))
        ));

        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(recv_fd(&b, 10).is_err());
    }
}
