//! Packet sockets (AF_PACKET) for the namespace tests: a capture of every
//! IPv6 packet a namespace sends or receives on its links, and an injector
//! that puts arbitrary bytes on a link (bypassing the kernel's IPv6 output
//! checks, so truncated and malformed packets reach the peer as they are).

use std::io::{self, Read};
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mip6_anycast::engine::netns;
use mip6_anycast::wire::{ExtChain, Ipv6Packet, ip_proto};
use socket2::{Domain, Protocol, Socket, Type};

const ETH_P_IPV6: u16 = 0x86dd;
/// Frames kept by a capture at most.
const MAX_FRAMES: usize = 200_000;

/// A capture of IPv6 packets on all interfaces of a namespace.
pub struct Capture {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing in `ns` (in and out, every interface).
    pub fn start(ns: &str) -> Capture {
        let sock = netns::in_netns(ns, || {
            Socket::new(
                Domain::PACKET,
                Type::DGRAM,
                Some(Protocol::from(i32::from(ETH_P_IPV6.to_be()))),
            )
        })
        .expect("enter namespace")
        .expect("packet socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let (st, fr) = (stop.clone(), frames.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            // After `finish`, drain what is queued until the socket idles
            // for one read timeout.
            loop {
                let stopping = st.load(Ordering::Relaxed);
                match (&sock).read(&mut buf) {
                    Ok(n) => {
                        let mut f = fr.lock().unwrap_or_else(|p| p.into_inner());
                        if f.len() < MAX_FRAMES {
                            f.push(buf[..n].to_vec());
                        }
                    }
                    Err(_) if stopping => return,
                    Err(_) => {}
                }
            }
        });
        Capture {
            stop,
            frames,
            thread: Some(thread),
        }
    }

    /// True once a captured packet satisfies `pred`.
    pub fn seen(&self, pred: impl Fn(&[u8]) -> bool) -> bool {
        self.frames
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|f| pred(f))
    }

    /// Stops and returns the packets (IPv6, from the fixed header).
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("capture thread");
        }
        std::mem::take(&mut *self.frames.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Puts raw IPv6 packets on one link, addressed to the Ethernet broadcast
/// address (the peer's tc ingress sees them before any IPv6 check).
pub struct Injector {
    sock: Socket,
    ifindex: i32,
}

impl Injector {
    /// An injector on interface `ifname` of namespace `ns`.
    pub fn open(ns: &str, ifname: &str) -> Injector {
        let name = ifname.to_string();
        let (sock, ifindex) = netns::in_netns(ns, move || -> io::Result<(Socket, u32)> {
            // Protocol 0: this socket receives nothing.
            let s = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(0)))?;
            let idx = nix::net::if_::if_nametoindex(name.as_str()).map_err(io::Error::from)?;
            Ok((s, idx))
        })
        .expect("enter namespace")
        .expect("packet socket");
        Injector {
            sock,
            ifindex: i32::try_from(ifindex).expect("ifindex"),
        }
    }

    /// Sends `packet` (any bytes) as an IPv6 frame.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = ETH_P_IPV6.to_be();
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: the buffer and address are valid for the given lengths for
        // the duration of the call.
        let r = unsafe {
            libc::sendto(
                self.sock.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// Source, destination and the RH2 home address of a packet with a Type 2
/// Routing Header.
pub fn rh2_of(p: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, Ipv6Addr)> {
    let c = ExtChain::walk(p).ok()?;
    let ip = Ipv6Packet::new_unchecked(p);
    c.rh2()
        .map(|r| (ip.src_addr(), ip.dst_addr(), r.home_address))
}

/// Source, destination and the home address of a packet with a Home
/// Address option.
pub fn hao_of(p: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, Ipv6Addr)> {
    let c = ExtChain::walk(p).ok()?;
    let ip = Ipv6Packet::new_unchecked(p);
    c.hao()
        .map(|h| (ip.src_addr(), ip.dst_addr(), h.home_address))
}

/// Outer source and destination of an IPv6-in-IPv6 packet.
pub fn tunnel_of(p: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr)> {
    let c = ExtChain::walk(p).ok()?;
    let ip = Ipv6Packet::new_unchecked(p);
    c.inner_offset().map(|_| (ip.src_addr(), ip.dst_addr()))
}

/// The TCP flags of a TCP segment, also inside one level of tunnel.
pub fn tcp_flags(p: &[u8]) -> Option<u8> {
    let c = ExtChain::walk(p).ok()?;
    match c.upper_proto() {
        ip_proto::TCP => p.get(c.upper_offset() + 13).copied(),
        ip_proto::IPV6 => tcp_flags(c.upper_bytes(p)),
        _ => None,
    }
}

/// TCP RST flag.
pub const TCP_RST: u8 = 0x04;
