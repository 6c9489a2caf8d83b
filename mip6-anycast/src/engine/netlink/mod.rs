//! An async rtnetlink handle bound to one network namespace.
//!
//! [`Netlink`] wraps an `rtnetlink` connection whose socket was opened from a
//! thread inside the namespace, so every request acts on that namespace no
//! matter which thread awaits it. The connection task runs on the tokio
//! runtime of the caller of [`Netlink::in_netns`] / [`Netlink::current`]; one
//! runtime can thus program many namespaces (the testbed does). Messages are
//! built from `netlink-packet-route` types directly, because several things we
//! need (inverted rules, route metrics, `nodad`, u32 keys) are not covered by
//! rtnetlink's builders.
//!
//! Split by object: [`link`], [`addr`], [`route`], [`rule`], [`tc`].

pub mod addr;
pub mod link;
pub mod route;
pub mod rule;
pub mod tc;

use std::io;
use std::sync::Arc;

use futures_util::StreamExt;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::proto::Connection;
use rtnetlink::sys::AsyncSocket;

use super::netns::{self, NetnsError};
use super::sysctl::{self, Ipv6Conf, SysctlError};

pub use addr::{AddrInfo, AddrOptions};
pub use link::{LinkInfo, VethEnd};
pub use route::{Route6, RouteKind};
pub use rule::Rule6;
pub use tc::{FilterInfo, QdiscInfo, QdiscKind, U32Key};

/// `NLM_F_CAPPED`: the error message carries only the request's header.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the kernel's error string.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Errors of netlink programming.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// No tokio runtime to run the connection on.
    #[error("netlink handles need a tokio runtime (call from inside one)")]
    NoRuntime,
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A sysctl access failed.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// Opening the netlink socket failed.
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The kernel refused a request.
    #[error("{op}: {}{}", io::Error::from_raw_os_error(*.errno), .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// The request, in `ip`/`tc` words.
        op: String,
        /// The positive errno.
        errno: i32,
        /// The kernel's extended-ack message, if it sent one.
        message: Option<String>,
    },
    /// The connection task has gone (its runtime ended).
    #[error("{op}: netlink connection closed")]
    Closed {
        /// The request.
        op: String,
    },
    /// The kernel did not finish setting something up in time.
    #[error("{what} not ready")]
    NotReady {
        /// What was awaited.
        what: String,
    },
    /// No link has that name.
    #[error("link {0} not found")]
    LinkNotFound(String),
    /// The kernel answered something we could not use.
    #[error("{op}: unexpected reply: {what}")]
    Unexpected {
        /// The request.
        op: String,
        /// What was wrong.
        what: String,
    },
}

impl NetlinkError {
    /// The errno of a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The object does not exist (`ENOENT`, `ESRCH`, `ENODEV`, or no link of
    /// that name).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetlinkError::LinkNotFound(_))
            || matches!(
                self.errno(),
                Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::ENODEV)
            )
    }
}

/// An rtnetlink handle bound to the namespace it was created in.
///
/// Cheap to clone; the connection task ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    ns: Option<Arc<str>>,
}

type Conn = Connection<RouteNetlinkMessage>;

/// Opens the socket in the calling thread's namespace. Needs a runtime
/// context (the socket is registered with its reactor).
fn open_connection() -> io::Result<(Conn, rtnetlink::Handle)> {
    let (mut conn, handle, _unsolicited) = rtnetlink::new_connection()?;
    let socket = conn.socket_mut().socket_mut();
    // Best effort: kernel error strings and short error replies.
    let _ = socket.set_ext_ack(true);
    let _ = socket.set_cap_ack(true);
    Ok((conn, handle))
}

impl Netlink {
    /// A handle on the caller's own namespace.
    pub fn current() -> Result<Self, NetlinkError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
        let (conn, handle) = open_connection().map_err(NetlinkError::Socket)?;
        rt.spawn(conn);
        Ok(Self { handle, ns: None })
    }

    /// A handle on the named namespace. The socket is opened from a thread
    /// inside it; the connection runs on the caller's runtime.
    pub fn in_netns(name: &str) -> Result<Self, NetlinkError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
        let (conn, handle) = netns::in_netns(name, || {
            let _entered = rt.enter();
            open_connection()
        })?
        .map_err(NetlinkError::Socket)?;
        rt.spawn(conn);
        Ok(Self {
            handle,
            ns: Some(Arc::from(name)),
        })
    }

    /// The namespace this handle acts on (`None`: the creator's own).
    pub fn netns(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    /// The underlying rtnetlink handle, for requests not wrapped here.
    pub fn rtnetlink(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Writes a sysctl (`/`-separated key under `/proc/sys`) in this
    /// handle's namespace.
    pub fn sysctl_write(&self, key: &str, value: &str) -> Result<(), NetlinkError> {
        Ok(sysctl::write(self.netns(), key, value)?)
    }

    /// Reads a sysctl in this handle's namespace.
    pub fn sysctl_read(&self, key: &str) -> Result<String, NetlinkError> {
        Ok(sysctl::read(self.netns(), key)?)
    }

    /// Sets `net/ipv6/conf/DEV/KEY` in this handle's namespace (`dev` may be
    /// `all` or `default`).
    pub fn set_ipv6_conf(&self, dev: &str, key: Ipv6Conf, value: u32) -> Result<(), NetlinkError> {
        Ok(sysctl::set_ipv6_conf(self.netns(), dev, key, value)?)
    }

    /// Sends a request with `NLM_F_ACK` and collects any messages the
    /// kernel answers before the acknowledgement.
    pub(crate) async fn request(
        &self,
        op: String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        self.collect(op, req).await
    }

    /// Sends a dump request and collects the messages.
    pub(crate) async fn dump(
        &self,
        op: String,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        self.collect(op, req).await
    }

    async fn collect(
        &self,
        op: String,
        req: NetlinkMessage<RouteNetlinkMessage>,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut handle = self.handle.clone();
        let mut replies = match handle.request(req) {
            Ok(r) => r,
            Err(_) => return Err(NetlinkError::Closed { op }),
        };
        let mut out = Vec::new();
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(kernel_error(
                        op,
                        e.raw_code(),
                        &e.header,
                        reply.header.flags,
                    ));
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(NetlinkError::Unexpected {
                        op,
                        what: "reply overrun".into(),
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Builds a [`NetlinkError::Kernel`], extracting the extended-ack message.
fn kernel_error(op: String, raw_code: i32, payload: &[u8], flags: u16) -> NetlinkError {
    NetlinkError::Kernel {
        op,
        errno: raw_code.checked_abs().unwrap_or(libc::EINVAL),
        message: ext_ack_message(payload, flags),
    }
}

/// Finds `NLMSGERR_ATTR_MSG` in an error reply's payload (the bytes after the
/// error code: the original request, capped or whole, then TLVs).
fn ext_ack_message(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let orig_len = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = payload.get(0..4)?;
        u32::from_ne_bytes(len.try_into().ok()?) as usize
    };
    let mut off = orig_len.checked_add(3)? & !3;
    while let Some(hdr) = payload.get(off..off.checked_add(4)?) {
        let len = u16::from_ne_bytes([hdr[0], hdr[1]]) as usize;
        let kind = u16::from_ne_bytes([hdr[2], hdr[3]]) & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = payload.get(off + 4..off.checked_add(len)?)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        off = off.checked_add(len)?.checked_add(3)? & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn ext_ack_capped_and_whole() {
        let mut capped = vec![0u8; 16];
        capped.extend(tlv(4, &[1, 2, 3, 4]));
        capped.extend(tlv(NLMSGERR_ATTR_MSG, b"Invalid prefix\0"));
        assert_eq!(
            ext_ack_message(&capped, NLM_F_ACK_TLVS | NLM_F_CAPPED).as_deref(),
            Some("Invalid prefix")
        );
        assert_eq!(ext_ack_message(&capped, NLM_F_CAPPED), None);

        let mut whole = vec![0u8; 22];
        whole[0..4].copy_from_slice(&22u32.to_ne_bytes());
        whole.extend([0, 0]);
        whole.extend(tlv(NLMSGERR_ATTR_MSG, b"nope\0"));
        assert_eq!(
            ext_ack_message(&whole, NLM_F_ACK_TLVS).as_deref(),
            Some("nope")
        );
    }

    #[test]
    fn ext_ack_hostile_lengths() {
        // Original length pointing past the end, zero-length TLV, truncated TLV.
        let mut p = vec![0xffu8; 4];
        assert_eq!(ext_ack_message(&p, NLM_F_ACK_TLVS), None);
        p = vec![0u8; 16];
        p.extend([0, 0, 1, 0]);
        assert_eq!(ext_ack_message(&p, NLM_F_ACK_TLVS | NLM_F_CAPPED), None);
        p = vec![0u8; 16];
        p.extend([40, 0, 1, 0, b'x']);
        assert_eq!(ext_ack_message(&p, NLM_F_ACK_TLVS | NLM_F_CAPPED), None);
        assert_eq!(ext_ack_message(&[], NLM_F_ACK_TLVS), None);
    }
}
