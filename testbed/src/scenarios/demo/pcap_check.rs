//! Checks of a link capture with the project's own wire and crypto code
//! (until `mip6-inspect --strict` is in the tree, and as a second opinion
//! afterwards): every frame parses as IPv6, tunnels are opened, every
//! Mobility Header checksum and every TCP/UDP/ICMPv6 checksum verifies
//! with the RFC 6275 pseudo-header (HAO home address as source, RH2 home
//! address as destination), every MN-HA authenticator (RFC 4285) verifies
//! with the configured keys, and every Binding Authorization Data (RFC
//! 6275 6.2.7) verifies with the Kbm computed from the keygen tokens the
//! capture itself shows in HoT/CoT (a de-registration over the home
//! address). Also counts the TCP packets inside a time window (the data
//! that still crossed a link after route optimization).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use mip6_anycast::crypto::{self, KeygenToken, MnHaKey};
use mip6_anycast::wire::mh::AUTH_SUBTYPE_MN_HA;
use mip6_anycast::wire::{
    Error as WireError, ExtChain, Ipv6Packet, MhMessage, MhPacketRepr, checksum, ip_proto, ip6ip6,
};
use pcap_file::pcap::PcapReader;
use serde::Serialize;

/// Problems kept per capture (the counts keep counting).
const MAX_PROBLEMS: usize = 20;

/// What one capture amounted to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaptureCheck {
    /// Link name.
    pub link: String,
    /// Frames read.
    pub frames: u64,
    /// Frames carrying IPv6-in-IPv6.
    pub tunnelled: u64,
    /// Mobility Header messages by name.
    pub mobility: BTreeMap<&'static str, u64>,
    /// Transport checksums verified.
    pub transport_checksums_ok: u64,
    /// Checksums (transport or MH) that did not verify.
    pub checksum_errors: u64,
    /// Frames that do not parse.
    pub malformed: u64,
    /// Authenticators that verify.
    pub authenticators_ok: u64,
    /// Authenticators that do not.
    pub authenticators_bad: u64,
    /// Authenticators that could not be checked (no key or token).
    pub authenticators_unchecked: u64,
    /// TCP packets inside the window.
    pub tcp_in_window: u64,
    /// The first problems found.
    pub problems: Vec<String>,
}

impl CaptureCheck {
    /// True when nothing is malformed, no checksum and no authenticator is
    /// false.
    pub fn clean(&self) -> bool {
        self.malformed == 0 && self.checksum_errors == 0 && self.authenticators_bad == 0
    }

    fn problem(&mut self, frame: u64, what: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("frame {frame}: {what}"));
        }
    }
}

fn mh_name(m: &MhMessage) -> &'static str {
    match m {
        MhMessage::BindingRefreshRequest => "brr",
        MhMessage::HomeTestInit(_) => "hoti",
        MhMessage::CareOfTestInit(_) => "coti",
        MhMessage::HomeTest(_) => "hot",
        MhMessage::CareOfTest(_) => "cot",
        MhMessage::BindingUpdate(_) => "bu",
        MhMessage::BindingAck(_) => "ba",
        MhMessage::BindingError(_) => "be",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

/// The tokens and bindings seen so far in one capture.
#[derive(Default)]
struct RrState {
    /// (correspondent, home address, home nonce index) -> token.
    home: HashMap<(Ipv6Addr, Ipv6Addr, u16), KeygenToken>,
    /// (correspondent, care-of address, care-of nonce index) -> token.
    care_of: HashMap<(Ipv6Addr, Ipv6Addr, u16), KeygenToken>,
    /// (correspondent, home address, sequence) -> (Kbm, authenticated address).
    bound: HashMap<(Ipv6Addr, Ipv6Addr, u16), (crypto::Kbm, Ipv6Addr)>,
}

const MAX_TOKENS: usize = 65_536;

/// Outcome of one authenticator check.
enum Auth {
    Ok,
    Bad(String),
    Unchecked,
}

/// Checks the capture `path` of link `link`. `mn_ha` maps Mobility SPIs
/// to keys; `window` is (start, end) since the Unix epoch.
pub fn check_capture(
    link: &str,
    path: &Path,
    mn_ha: &HashMap<u32, MnHaKey>,
    window: Option<(Duration, Duration)>,
) -> Result<CaptureCheck, String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader =
        PcapReader::new(BufReader::new(f)).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut c = CaptureCheck {
        link: link.to_string(),
        ..Default::default()
    };
    let mut rr = RrState::default();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.map_err(|e| format!("{}: {e}", path.display()))?;
        c.frames += 1;
        let n = c.frames;
        let in_window = window.is_some_and(|(a, b)| pkt.timestamp >= a && pkt.timestamp <= b);
        let data: &[u8] = &pkt.data;
        let chain = match ExtChain::walk(data) {
            Ok(ch) => ch,
            Err(e) => {
                c.malformed += 1;
                c.problem(n, format!("not a well-formed IPv6 packet: {e}"));
                continue;
            }
        };
        let (inner, inner_chain) = if chain.inner_offset().is_some() {
            c.tunnelled += 1;
            match ip6ip6::decapsulate(data).and_then(|d| Ok((d.inner, ExtChain::walk(d.inner)?))) {
                Ok(x) => x,
                Err(e) => {
                    c.malformed += 1;
                    c.problem(n, format!("bad tunnelled packet: {e}"));
                    continue;
                }
            }
        } else {
            (data, chain)
        };
        check_packet(&mut c, &mut rr, n, inner, &inner_chain, mn_ha, in_window);
    }
    Ok(c)
}

fn check_packet(
    c: &mut CaptureCheck,
    rr: &mut RrState,
    n: u64,
    p: &[u8],
    chain: &ExtChain,
    mn_ha: &HashMap<u32, MnHaKey>,
    in_window: bool,
) {
    if chain.mh_offset().is_some() {
        match MhPacketRepr::parse_with_bytes(p) {
            Ok(parsed) => {
                *c.mobility
                    .entry(mh_name(&parsed.repr.mh.message))
                    .or_insert(0) += 1;
                match authenticate(rr, &parsed, mn_ha) {
                    Auth::Ok => c.authenticators_ok += 1,
                    Auth::Unchecked => c.authenticators_unchecked += 1,
                    Auth::Bad(why) => {
                        c.authenticators_bad += 1;
                        c.problem(n, why);
                    }
                }
            }
            Err(WireError::BadChecksum { .. }) => {
                c.checksum_errors += 1;
                c.problem(n, "Mobility Header checksum does not verify".into());
            }
            Err(e) => {
                c.malformed += 1;
                c.problem(n, format!("malformed Mobility Header packet: {e}"));
            }
        }
        return;
    }
    let proto = chain.upper_proto();
    if !matches!(proto, ip_proto::TCP | ip_proto::UDP | ip_proto::ICMPV6)
        || chain.is_non_first_fragment()
    {
        return;
    }
    let ip = Ipv6Packet::new_unchecked(p);
    let (src, dst) = (
        chain.pseudo_src(ip.src_addr()),
        chain.pseudo_dst(ip.dst_addr()),
    );
    if checksum::verify(&src, &dst, proto, chain.upper_bytes(p)) {
        c.transport_checksums_ok += 1;
    } else {
        c.checksum_errors += 1;
        c.problem(
            n,
            format!("transport checksum (next header {proto}) {src} -> {dst} does not verify"),
        );
    }
    if proto == ip_proto::TCP && in_window {
        c.tcp_in_window += 1;
    }
}

fn authenticate(
    rr: &mut RrState,
    parsed: &mip6_anycast::wire::ParsedMhPacket<'_>,
    mn_ha: &HashMap<u32, MnHaKey>,
) -> Auth {
    let pkt = &parsed.repr;
    let mh = &pkt.mh;
    if let Some(a) = mh.message_auth(AUTH_SUBTYPE_MN_HA) {
        // RFC 4285 5.1: BU from the care-of address, BA to it.
        let (coa, hoa) = match &mh.message {
            MhMessage::BindingUpdate(_) => (
                mh.alternate_coa().unwrap_or(pkt.src_addr),
                pkt.hao.unwrap_or(pkt.src_addr),
            ),
            _ => (pkt.dst_addr, pkt.rh2.unwrap_or(pkt.dst_addr)),
        };
        let Some(key) = mn_ha.get(&a.spi) else {
            return Auth::Unchecked;
        };
        let Ok(input) = parsed.message_auth_input(AUTH_SUBTYPE_MN_HA) else {
            return Auth::Bad("MN-HA option without authentication data".into());
        };
        let received = parsed.mh_bytes.get(input.field()).unwrap_or_default();
        return match crypto::verify_mn_ha(key, coa, hoa, &input.to_vec(), received) {
            Ok(()) => Auth::Ok,
            Err(_) => Auth::Bad(format!(
                "MN-HA authenticator of SPI {} ({coa}, {hoa}) is false",
                a.spi
            )),
        };
    }
    match &mh.message {
        MhMessage::HomeTest(h) if rr.home.len() < MAX_TOKENS => {
            rr.home.insert(
                (pkt.src_addr, pkt.dst_addr, h.home_nonce_index),
                KeygenToken::from_bytes(h.home_keygen_token),
            );
            Auth::Unchecked
        }
        MhMessage::CareOfTest(t) if rr.care_of.len() < MAX_TOKENS => {
            rr.care_of.insert(
                (pkt.src_addr, pkt.dst_addr, t.care_of_nonce_index),
                KeygenToken::from_bytes(t.care_of_keygen_token),
            );
            Auth::Unchecked
        }
        MhMessage::BindingUpdate(bu) if mh.authenticator().is_some() => {
            let (cn, hoa) = (pkt.dst_addr, pkt.hao.unwrap_or(pkt.src_addr));
            let coa = mh.alternate_coa().unwrap_or(pkt.src_addr);
            let Some((hni, cni)) = mh.nonce_indices() else {
                return Auth::Unchecked;
            };
            let dereg = bu.lifetime == 0 || coa == hoa;
            let Some(home) = rr.home.get(&(cn, hoa, hni)) else {
                return Auth::Unchecked;
            };
            let care_of = if dereg {
                None
            } else {
                match rr.care_of.get(&(cn, coa, cni)) {
                    Some(t) => Some(t),
                    None => return Auth::Unchecked,
                }
            };
            let kbm = crypto::kbm(home, care_of);
            // RFC 6275 6.2.7: a de-registration over the home address.
            let addr = if dereg { hoa } else { coa };
            let v = verify_bad(parsed, &kbm, addr, cn, "BU");
            if rr.bound.len() < MAX_TOKENS {
                rr.bound.insert((cn, hoa, bu.sequence), (kbm, addr));
            }
            v
        }
        MhMessage::BindingAck(ba) if mh.authenticator().is_some() => {
            let (cn, hoa) = (pkt.src_addr, pkt.rh2.unwrap_or(pkt.dst_addr));
            match rr.bound.get(&(cn, hoa, ba.sequence)) {
                Some((kbm, addr)) => verify_bad(parsed, kbm, *addr, cn, "BA"),
                None => Auth::Unchecked,
            }
        }
        _ => Auth::Unchecked,
    }
}

fn verify_bad(
    parsed: &mip6_anycast::wire::ParsedMhPacket<'_>,
    kbm: &crypto::Kbm,
    addr: Ipv6Addr,
    cn: Ipv6Addr,
    what: &str,
) -> Auth {
    let Ok(input) = parsed.binding_auth_input() else {
        return Auth::Bad(format!("{what} without Binding Authorization Data"));
    };
    let received = parsed.mh_bytes.get(input.field()).unwrap_or_default();
    match crypto::verify_bu_authenticator(kbm, addr, cn, &input.to_vec(), received) {
        Ok(()) => Auth::Ok,
        Err(_) => Auth::Bad(format!("{what} authenticator ({addr} -> {cn}) is false")),
    }
}
