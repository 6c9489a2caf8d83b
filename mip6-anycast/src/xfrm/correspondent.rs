//! What a correspondent node needs in the kernel's XFRM tables for
//! route optimization (RFC 6275 9.3, 6.4), on a kernel with
//! `CONFIG_IPV6_MIP6` (the Linux MIPv6 daemons program the same):
//!
//! - at start: a wildcard-receive `hao` state (so a first Binding Update
//!   carrying a Home Address option is accepted, 9.3.1), an input policy
//!   for Binding Updates naming it, and output bypasses (no RH2) for
//!   Mobility Header messages, Neighbor Solicitations/Advertisements and
//!   ICMPv6 errors;
//! - per binding (cn, hoa) -> coa: a `route2` state cn -> hoa and a `hao`
//!   state hoa -> cn, both with the care-of address as `coaddr`, and
//!   sub-type policies out (RH2) and in (HAO);
//! - removal on expiry / deregistration, and of everything at stop.

use std::collections::HashMap;
use std::io;
use std::net::Ipv6Addr;

use super::msg::{
    Dir, PROTO_HAO, PROTO_ICMPV6, PROTO_MH, PROTO_ROUTE2, Request, STATE_WILDRECV, SaInfo,
    Selector, Template,
};
use super::socket::{Answer, XfrmSocket};

/// Priority of the signalling policies (lower wins).
pub const PRIO_SIGNALLING: u32 = 8;
/// Priority of the per-binding data policies.
pub const PRIO_BINDING: u32 = 16;
/// MH type of a Binding Update.
const MH_BU: u16 = 5;
/// ICMPv6 Neighbor Solicitation / Advertisement.
const ND_NS: u16 = 135;
const ND_NA: u16 = 136;

const ANY: Ipv6Addr = Ipv6Addr::UNSPECIFIED;

/// Usage of one binding's states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XfrmUsage {
    /// Packets that got a Type 2 Routing Header (`route2` state).
    pub packets_out: u64,
    /// Packets whose Home Address option it accepted (`hao` state).
    pub packets_in: u64,
    /// Last use of either state (Unix seconds).
    pub last_used: Option<u64>,
}

/// The policies installed at start: (selector, direction, template).
fn base_policies() -> Vec<(Selector, Dir, Option<Template>)> {
    let mut errors = Selector::proto_type(PROTO_ICMPV6, Some(0));
    errors.sport_mask = Some(0x80);
    vec![
        (
            Selector::proto_type(PROTO_MH, Some(MH_BU)),
            Dir::In,
            Some(Template {
                proto: PROTO_HAO,
                daddr: ANY,
                saddr: ANY,
            }),
        ),
        (Selector::proto_type(PROTO_MH, None), Dir::Out, None),
        (
            Selector::proto_type(PROTO_ICMPV6, Some(ND_NS)),
            Dir::Out,
            None,
        ),
        (
            Selector::proto_type(PROTO_ICMPV6, Some(ND_NA)),
            Dir::Out,
            None,
        ),
        (errors, Dir::Out, None),
    ]
}

/// Adds a route optimization state, replacing one that exists.
fn put_state(
    sock: &mut XfrmSocket,
    proto: u8,
    daddr: Ipv6Addr,
    saddr: Ipv6Addr,
    coa: Ipv6Addr,
    flags: u8,
) -> io::Result<()> {
    match sock.ack(Request::new_ro_state(
        proto, daddr, saddr, coa, flags, false,
    )) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            sock.ack(Request::new_ro_state(proto, daddr, saddr, coa, flags, true))
        }
        r => r,
    }
}

/// Deletes, ignoring "not there".
fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => Ok(()),
        r => r,
    }
}

/// Whether this kernel can do Mobile IPv6 route optimization through
/// XFRM: opens NETLINK_XFRM and adds then deletes a wildcard `hao` state
/// (an existing one counts as yes and is left alone).
pub fn probe() -> io::Result<()> {
    let mut sock = XfrmSocket::open()?;
    match sock.ack(Request::new_ro_state(
        PROTO_HAO,
        ANY,
        ANY,
        ANY,
        STATE_WILDRECV,
        false,
    )) {
        Ok(()) => sock.ack(Request::del_state(PROTO_HAO, ANY, ANY)),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The correspondent's XFRM tables (in the namespace it was opened in).
#[derive(Debug)]
pub struct CorrespondentXfrm {
    sock: XfrmSocket,
    bindings: HashMap<(Ipv6Addr, Ipv6Addr), Ipv6Addr>,
}

impl CorrespondentXfrm {
    /// Installs the start-up states and policies. Every `route2` / `hao`
    /// state and every sub-type (Mobile IPv6) policy already there is
    /// removed first: the agent owns the host's Mobile IPv6 tables, and
    /// bindings left by a crashed run would send traffic to stale care-of
    /// addresses.
    pub fn start() -> io::Result<CorrespondentXfrm> {
        let mut sock = XfrmSocket::open()?;
        sock.ack(Request::flush_sub_policies())?;
        sock.ack(Request::flush_states(PROTO_ROUTE2))?;
        sock.ack(Request::flush_states(PROTO_HAO))?;
        put_state(&mut sock, PROTO_HAO, ANY, ANY, ANY, STATE_WILDRECV)?;
        for (sel, dir, tmpl) in base_policies() {
            sock.ack(Request::new_policy(&sel, dir, PRIO_SIGNALLING, tmpl, true))?;
        }
        Ok(CorrespondentXfrm {
            sock,
            bindings: HashMap::new(),
        })
    }

    /// Installs or moves the binding (`cn`, `hoa`) -> `coa` (RFC 6275
    /// 9.5.1: data to `hoa` goes to `coa` with a Type 2 Routing Header,
    /// 6.4; packets from `coa` with a Home Address option for `hoa` are
    /// accepted, 9.3.1).
    pub fn add_binding(&mut self, cn: Ipv6Addr, hoa: Ipv6Addr, coa: Ipv6Addr) -> io::Result<()> {
        put_state(&mut self.sock, PROTO_ROUTE2, hoa, cn, coa, 0)?;
        put_state(&mut self.sock, PROTO_HAO, cn, hoa, coa, 0)?;
        let route2 = Template {
            proto: PROTO_ROUTE2,
            daddr: ANY,
            saddr: ANY,
        };
        let hao = Template {
            proto: PROTO_HAO,
            daddr: cn,
            saddr: hoa,
        };
        self.sock.ack(Request::new_policy(
            &Selector::between(hoa, cn),
            Dir::Out,
            PRIO_BINDING,
            Some(route2),
            true,
        ))?;
        self.sock.ack(Request::new_policy(
            &Selector::between(cn, hoa),
            Dir::In,
            PRIO_BINDING,
            Some(hao),
            true,
        ))?;
        self.bindings.insert((cn, hoa), coa);
        Ok(())
    }

    /// Removes the binding (`cn`, `hoa`): policies first, so no packet
    /// meets a policy without its state.
    pub fn remove_binding(&mut self, cn: Ipv6Addr, hoa: Ipv6Addr) -> io::Result<()> {
        self.bindings.remove(&(cn, hoa));
        let r = [
            ignore_missing(
                self.sock
                    .ack(Request::del_policy(&Selector::between(hoa, cn), Dir::Out)),
            ),
            ignore_missing(
                self.sock
                    .ack(Request::del_policy(&Selector::between(cn, hoa), Dir::In)),
            ),
            ignore_missing(self.sock.ack(Request::del_state(PROTO_ROUTE2, hoa, cn))),
            ignore_missing(self.sock.ack(Request::del_state(PROTO_HAO, cn, hoa))),
        ];
        r.into_iter().collect()
    }

    /// The installed bindings: (cn, hoa) -> coa.
    #[must_use]
    pub fn bindings(&self) -> &HashMap<(Ipv6Addr, Ipv6Addr), Ipv6Addr> {
        &self.bindings
    }

    fn state(
        &mut self,
        proto: u8,
        daddr: Ipv6Addr,
        saddr: Ipv6Addr,
    ) -> io::Result<(u64, Option<u64>)> {
        match self.sock.request(Request::get_state(proto, daddr, saddr))? {
            Answer::Message(_, payload) => {
                let sa = SaInfo::new_checked(&payload[..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Ok((sa.packets(), sa.last_used()))
            }
            Answer::Ack => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "GETSA answered with an ACK",
            )),
        }
    }

    /// The kernel's counters of the binding (`cn`, `hoa`).
    pub fn usage(&mut self, cn: Ipv6Addr, hoa: Ipv6Addr) -> io::Result<XfrmUsage> {
        let (packets_out, out_used) = self.state(PROTO_ROUTE2, hoa, cn)?;
        let (packets_in, in_used) = self.state(PROTO_HAO, cn, hoa)?;
        Ok(XfrmUsage {
            packets_out,
            packets_in,
            last_used: out_used.max(in_used),
        })
    }

    /// Removes every binding and the start-up states and policies.
    pub fn stop(mut self) -> io::Result<()> {
        let keys: Vec<_> = self.bindings.keys().copied().collect();
        let mut result = Ok(());
        for (cn, hoa) in keys {
            if let Err(e) = self.remove_binding(cn, hoa) {
                result = Err(e);
            }
        }
        for (sel, dir, _) in base_policies() {
            if let Err(e) = ignore_missing(self.sock.ack(Request::del_policy(&sel, dir))) {
                result = Err(e);
            }
        }
        ignore_missing(self.sock.ack(Request::del_state(PROTO_HAO, ANY, ANY)))?;
        result
    }
}
