//! Checking Binding Authorization Data (RFC 6275 6.2.7) from what the
//! capture itself shows: the keygen tokens of earlier HoT/CoT messages.
//!
//! * HoT (CN -> HoA, possibly tunnelled by the HA) gives the home keygen
//!   token of `(correspondent, home address, home nonce index)`; CoT (CN ->
//!   CoA) the care-of keygen token of `(correspondent, care-of address,
//!   care-of nonce index)`. Only HoT/CoT whose checksum verifies are taken
//!   (a mobile node drops the others).
//! * A BU (CoA -> CN with a Home Address option) names both indices in its
//!   Nonce Indices option. Its care-of address is the Alternate Care-of
//!   Address option if present, else the IPv6 source (RFC 6275 6.2.5); its
//!   home address the HAO's (else the source). A de-registration (lifetime 0
//!   or care-of address = home address, RFC 6275 9.5.1) needs only the home
//!   token, `Kbm = SHA1(home keygen token)` (5.2.5), and authenticates with
//!   the home address in place of the care-of address (6.2.7).
//! * `Authenticator = First(96, HMAC_SHA1(Kbm, care-of address |
//!   correspondent | MH Data))`, recomputed with [`crate::crypto`].
//! * A BA carrying Binding Authorization Data is checked with the Kbm of
//!   the BU it acknowledges: same correspondent (the BA's source), same home
//!   address (the BA's RH2, else destination), same sequence number.
//!
//! The tables are bounded ([`MAX_ENTRIES`] each, oldest evicted first).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::Ipv6Addr;

use crate::crypto::{self, Kbm, KeygenToken};
use crate::wire::{MhMessage, MobilityOption};

use super::decode::MhFacts;

/// Entries kept per table.
pub const MAX_ENTRIES: usize = 65_536;

/// A FIFO-bounded map (the newest value of a key wins).
#[derive(Debug)]
struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new() -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            if self.order.len() > MAX_ENTRIES
                && let Some(old) = self.order.pop_front()
            {
                self.map.remove(&old);
            }
        }
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }
}

type TokenKey = (Ipv6Addr, Ipv6Addr, u16);
type Binding = (Kbm, Ipv6Addr, Option<Ipv6Addr>);

/// The verdict on one BU or BA: `None` when it cannot be checked, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// True/false when checked, `None` when not checkable.
    pub ok: Option<bool>,
    /// Why.
    pub note: String,
}

impl Verdict {
    fn unknown(note: impl Into<String>) -> Self {
        Verdict {
            ok: None,
            note: note.into(),
        }
    }
}

/// Tokens and binding keys seen so far in one capture.
#[derive(Debug)]
pub struct RrTracker {
    home_tokens: Bounded<TokenKey, KeygenToken>,
    care_of_tokens: Bounded<TokenKey, KeygenToken>,
    /// (correspondent, home address, sequence) -> (Kbm, address
    /// authenticated, care-of address of a de-registration).
    bindings: Bounded<(Ipv6Addr, Ipv6Addr, u16), Binding>,
}

impl Default for RrTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl RrTracker {
    /// Empty tables.
    pub fn new() -> Self {
        RrTracker {
            home_tokens: Bounded::new(),
            care_of_tokens: Bounded::new(),
            bindings: Bounded::new(),
        }
    }

    /// Takes note of a packet's Mobility Header (in capture order) and, for
    /// a BU or a BA with Binding Authorization Data, returns the verdict.
    pub(crate) fn observe(&mut self, m: &MhFacts) -> Option<Verdict> {
        match m.repr.message {
            MhMessage::HomeTest(t) if m.checksum_ok => {
                let key = (m.pseudo_src, m.pseudo_dst, t.home_nonce_index);
                let token = KeygenToken::from_bytes(t.home_keygen_token);
                self.home_tokens.insert(key, token);
                None
            }
            MhMessage::CareOfTest(t) if m.checksum_ok => {
                let key = (m.pseudo_src, m.pseudo_dst, t.care_of_nonce_index);
                let token = KeygenToken::from_bytes(t.care_of_keygen_token);
                self.care_of_tokens.insert(key, token);
                None
            }
            MhMessage::BindingUpdate(bu) => Some(self.binding_update(m, bu.sequence, bu.lifetime)),
            MhMessage::BindingAck(ba) if m.repr.has_binding_auth_data() => {
                Some(self.binding_ack(m, ba.sequence))
            }
            _ => None,
        }
    }

    fn binding_update(&mut self, m: &MhFacts, sequence: u16, lifetime: u16) -> Verdict {
        let (Some(received), Some(mh_data)) = (m.repr.authenticator(), &m.binding_auth_input)
        else {
            return Verdict::unknown("no Binding Authorization Data option");
        };
        let Some((hni, cni)) = m.repr.nonce_indices() else {
            return Verdict::unknown("no Nonce Indices option");
        };
        let hoa = m.pseudo_src;
        let cn = m.pseudo_dst;
        let coa = m
            .repr
            .options
            .iter()
            .find_map(|o| match o {
                MobilityOption::AlternateCoa(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(m.src);
        let dereg = lifetime == 0 || coa == hoa;
        let Some(home) = self.home_tokens.get(&(cn, hoa, hni)) else {
            return Verdict::unknown(format!(
                "no HoT from {cn} to {hoa} with home nonce index {hni} earlier in the capture"
            ));
        };
        let care_of = if dereg {
            None
        } else {
            match self.care_of_tokens.get(&(cn, coa, cni)) {
                Some(t) => Some(t),
                None => {
                    return Verdict::unknown(format!(
                        "no CoT from {cn} to {coa} with care-of nonce index {cni} earlier in the capture"
                    ));
                }
            }
        };
        let kbm = crypto::kbm(home, care_of);
        let (addr, other) = if dereg {
            (hoa, (coa != hoa).then_some(coa))
        } else {
            (coa, None)
        };
        let what = if dereg {
            format!("de-registration, Kbm from HoT index {hni}")
        } else {
            format!("Kbm from HoT index {hni} and CoT index {cni}")
        };
        let v = verdict(&kbm, (addr, other), cn, mh_data, &received, what);
        self.bindings
            .insert((cn, hoa, sequence), (kbm, addr, other));
        v
    }

    fn binding_ack(&self, m: &MhFacts, sequence: u16) -> Verdict {
        let (Some(received), Some(mh_data)) = (m.repr.authenticator(), &m.binding_auth_input)
        else {
            return Verdict::unknown("no Binding Authorization Data option");
        };
        let cn = m.pseudo_src;
        let hoa = m.pseudo_dst;
        let Some((kbm, addr, other)) = self.bindings.get(&(cn, hoa, sequence)) else {
            return Verdict::unknown(format!(
                "no checkable BU from {hoa} to {cn} with sequence {sequence} earlier in the capture"
            ));
        };
        let what = format!("Kbm of BU sequence {sequence}");
        verdict(kbm, (*addr, *other), cn, mh_data, &received, what)
    }
}

/// Verifies `received` = First(96, HMAC_SHA1(Kbm, addrs.0 | cn | data)).
/// On a mismatch the note says if it would verify over `addrs.1`: the
/// care-of address of a de-registration, which RFC 6275 6.2.7 replaces by
/// the home address ("or the home address of the mobile node if this
/// option is used in de-registration").
fn verdict(
    kbm: &Kbm,
    addrs: (Ipv6Addr, Option<Ipv6Addr>),
    cn: Ipv6Addr,
    data: &[u8],
    received: &[u8],
    what: String,
) -> Verdict {
    let over = |a| {
        crypto::bu_authenticator(kbm, a, cn, data)
            .verify(received)
            .is_ok()
    };
    let (addr, other) = addrs;
    if over(addr) {
        return Verdict {
            ok: Some(true),
            note: format!("{what}: authenticator verifies"),
        };
    }
    let note = match other {
        Some(coa) if over(coa) => format!(
            "{what}: authenticator MISMATCH: it verifies over the care-of address {coa}, \
             but RFC 6275 6.2.7 authenticates a de-registration over the home address {addr}"
        ),
        _ => format!("{what}: authenticator MISMATCH"),
    };
    Verdict {
        ok: Some(false),
        note,
    }
}
