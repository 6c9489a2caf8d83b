//! The kernel half of the home tunnel: tc programs (TCX, ahead of the
//! u32 + mirred steering) on the steered interfaces' ingress that add or
//! strip the RFC 2473 outer header of plain packets with
//! `bpf_skb_adjust_room`, keeping GSO super-packets whole with the right
//! GSO type (`SKB_GSO_IPXIP6`), which a TUN cannot express (see
//! [`super::vnet`]). Source: `mip6-anycast/bpf/tunnel.bpf.c` (built with
//! clang by `bpf/build.sh`; the object is embedded).
//!
//! The engine stays the authority: it fills the maps from its tables
//! ([`KernelTunnel::sync`]) and everything the programs do not handle
//! (Mobility Header, RH2/HAO, packets that would not fit, member
//! handoffs) takes the usual way into the TUN. Closing the object (the
//! engine stopping) detaches the programs.

use std::collections::HashMap as StdHashMap;
use std::net::Ipv6Addr;

use aya::Ebpf;
use aya::maps::{HashMap, MapData};
use aya::programs::{SchedClassifier, TcAttachType};

use super::netns;

/// The compiled programs (`bpf/tunnel.bpf.c`).
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../bpf/tunnel.bpf.o");

/// Errors of the kernel tunnel.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// Loading, verifying or attaching failed.
    #[error("BPF {op}: {why}")]
    Setup {
        /// What was being done.
        op: &'static str,
        /// The error.
        why: String,
    },
    /// A map update failed.
    #[error("BPF map {map}: {why}")]
    Map {
        /// The map.
        map: &'static str,
        /// The error.
        why: String,
    },
}

fn setup(op: &'static str) -> impl FnOnce(String) -> BpfError {
    move |why| BpfError::Setup { op, why }
}

/// Key of `DECAP`: a member accepts IPv6-in-IPv6 from its home agent to
/// its care-of address for its home address (RFC 6275 11.3.3).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DecapKey {
    outer_src: [u8; 16],
    outer_dst: [u8; 16],
    inner_dst: [u8; 16],
}

// SAFETY: plain bytes, no padding.
unsafe impl aya::Pod for DecapKey {}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    packets: u64,
    bytes: u64,
}

// SAFETY: two u64, no padding.
unsafe impl aya::Pod for Counters {}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct EncapVal {
    local: [u8; 16],
    remote: [u8; 16],
    mtu: u32,
    pad: u32,
    packets: u64,
    bytes: u64,
}

// SAFETY: fixed layout without implicit padding (explicit `pad`).
unsafe impl aya::Pod for EncapVal {}

/// A tunnel the member side decapsulates in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decap {
    /// The home agent (outer source).
    pub home_agent: Ipv6Addr,
    /// Our care-of address (outer destination).
    pub coa: Ipv6Addr,
    /// Our home address (inner destination).
    pub hoa: Ipv6Addr,
}

/// A home address the home agent side encapsulates in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encap {
    /// The home address (inner destination).
    pub hoa: Ipv6Addr,
    /// Our address (outer source).
    pub home_agent: Ipv6Addr,
    /// The care-of address (outer destination).
    pub coa: Ipv6Addr,
    /// Largest tunnelled packet (segment) allowed.
    pub mtu: u32,
}

/// Packets (segments) and octets a program handled for one entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handled {
    /// Packets on the wire.
    pub packets: u64,
    /// Octets (link header included).
    pub bytes: u64,
}

/// The loaded and attached programs with their maps.
#[derive(Debug)]
pub struct KernelTunnel {
    bpf: Ebpf,
}

/// Link header length of interface `name` in the calling thread's
/// namespace (14 on Ethernet, 0 on an L3 device such as a TUN).
fn link_header_len(name: &str) -> Result<(u32, u32), String> {
    let index = nix::net::if_::if_nametoindex(name).map_err(|e| format!("{name}: {e}"))?;
    // SAFETY: a plain socket for the ioctl, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: ifreq is plain data; the name fits (checked by if_nametoindex).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `req` for the named interface.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    if r < 0 {
        return Err(format!("{name}: SIOCGIFHWADDR: {err}"));
    }
    // SAFETY: the kernel filled the hardware address union.
    let family = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    let l2 = if family == libc::ARPHRD_ETHER { 14 } else { 0 };
    Ok((index, l2))
}

fn load_and_attach(interfaces: &[String]) -> Result<Ebpf, BpfError> {
    let mut bpf = Ebpf::load(OBJECT).map_err(|e| setup("load")(e.to_string()))?;
    let mut ifaces = Vec::new();
    for name in interfaces {
        ifaces.push(link_header_len(name).map_err(setup("interface"))?);
    }
    for prog in ["tunnel_in", "tunnel_out"] {
        let p: &mut SchedClassifier = bpf
            .program_mut(prog)
            .ok_or_else(|| setup("find program")(prog.to_string()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| setup("program kind")(e.to_string()))?;
        p.load()
            .map_err(|e| setup("verify")(format!("{prog}: {e}")))?;
        for name in interfaces {
            p.attach(name, TcAttachType::Ingress)
                .map_err(|e| setup("attach")(format!("{prog} on {name}: {e}")))?;
        }
    }
    let mut m: HashMap<&mut MapData, u32, u32> = map_mut(&mut bpf, "IFACES")?;
    for (index, l2) in ifaces {
        m.insert(index, l2, 0).map_err(|e| BpfError::Map {
            map: "IFACES",
            why: e.to_string(),
        })?;
    }
    Ok(bpf)
}

fn map_mut<'a, K: aya::Pod, V: aya::Pod>(
    bpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<HashMap<&'a mut MapData, K, V>, BpfError> {
    let m = bpf.map_mut(name).ok_or(BpfError::Map {
        map: name,
        why: "missing".into(),
    })?;
    HashMap::try_from(m).map_err(|e| BpfError::Map {
        map: name,
        why: e.to_string(),
    })
}

fn map_ref<'a, K: aya::Pod, V: aya::Pod>(
    bpf: &'a Ebpf,
    name: &'static str,
) -> Option<HashMap<&'a MapData, K, V>> {
    HashMap::try_from(bpf.map(name)?).ok()
}

impl KernelTunnel {
    /// Loads the programs and attaches them to the ingress of
    /// `interfaces` in namespace `ns` (`None`: the caller's).
    pub fn attach(ns: Option<&str>, interfaces: &[String]) -> Result<Self, BpfError> {
        let bpf = match ns {
            Some(ns) => {
                let names = interfaces.to_vec();
                netns::in_netns(ns, move || load_and_attach(&names))
                    .map_err(|e| setup("enter namespace")(e.to_string()))??
            }
            None => load_and_attach(interfaces)?,
        };
        Ok(Self { bpf })
    }

    /// Makes the maps hold exactly `decap` and `encap` (counters of
    /// entries that stay are kept).
    pub fn sync(&mut self, decap: &[Decap], encap: &[Encap]) -> Result<(), BpfError> {
        let err = |map: &'static str| {
            move |e: aya::maps::MapError| BpfError::Map {
                map,
                why: e.to_string(),
            }
        };
        let mut d: HashMap<&mut MapData, DecapKey, Counters> = map_mut(&mut self.bpf, "DECAP")?;
        let want: Vec<DecapKey> = decap
            .iter()
            .map(|t| DecapKey {
                outer_src: t.home_agent.octets(),
                outer_dst: t.coa.octets(),
                inner_dst: t.hoa.octets(),
            })
            .collect();
        let have: Vec<DecapKey> = d.keys().filter_map(Result::ok).collect();
        for k in have.iter().filter(|k| !want.contains(k)) {
            d.remove(k).map_err(err("DECAP"))?;
        }
        for k in want.iter().filter(|k| !have.contains(k)) {
            d.insert(k, Counters::default(), 0).map_err(err("DECAP"))?;
        }
        let mut e: HashMap<&mut MapData, [u8; 16], EncapVal> = map_mut(&mut self.bpf, "ENCAP")?;
        let have: StdHashMap<[u8; 16], EncapVal> = e.iter().filter_map(Result::ok).collect();
        for k in have.keys() {
            if !encap.iter().any(|t| t.hoa.octets() == *k) {
                e.remove(k).map_err(err("ENCAP"))?;
            }
        }
        for t in encap {
            let k = t.hoa.octets();
            let old = have.get(&k);
            let v = EncapVal {
                local: t.home_agent.octets(),
                remote: t.coa.octets(),
                mtu: t.mtu,
                pad: 0,
                packets: old.map_or(0, |o| o.packets),
                bytes: old.map_or(0, |o| o.bytes),
            };
            let same =
                old.is_some_and(|o| o.local == v.local && o.remote == v.remote && o.mtu == v.mtu);
            if !same {
                e.insert(k, v, 0).map_err(err("ENCAP"))?;
            }
        }
        Ok(())
    }

    /// What the member-side program decapsulated, per home address.
    pub fn decapsulated(&self) -> Vec<(Ipv6Addr, Handled)> {
        let Some(m) = map_ref::<DecapKey, Counters>(&self.bpf, "DECAP") else {
            return Vec::new();
        };
        m.iter()
            .filter_map(Result::ok)
            .map(|(k, c)| {
                (
                    Ipv6Addr::from(k.inner_dst),
                    Handled {
                        packets: c.packets,
                        bytes: c.bytes,
                    },
                )
            })
            .collect()
    }

    /// What the home-agent-side program encapsulated, per home address.
    pub fn encapsulated(&self) -> Vec<(Ipv6Addr, Handled)> {
        let Some(m) = map_ref::<[u8; 16], EncapVal>(&self.bpf, "ENCAP") else {
            return Vec::new();
        };
        m.iter()
            .filter_map(Result::ok)
            .map(|(k, v)| {
                (
                    Ipv6Addr::from(k),
                    Handled {
                        packets: v.packets,
                        bytes: v.bytes,
                    },
                )
            })
            .collect()
    }
}
