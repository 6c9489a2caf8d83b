//! The persisted binding update list: per client the next Binding Update
//! sequence number and the binding last acknowledged, plus the home
//! registration's next sequence number. Written (atomically, fsync'd)
//! before the packets that use a new sequence number leave, so a restarted
//! contact node never reuses one; if the file is lost, the correspondent's
//! Binding Acknowledgement with status 135 resynchronises (RFC 6275
//! 11.7.3).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use mip6_anycast::daemon::persist::{self, PersistError};
use serde::{Deserialize, Serialize};

/// Format version.
pub const BUL_VERSION: u32 = 1;

/// One client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The client (correspondent) address.
    pub cn: Ipv6Addr,
    /// A sequence number at or ahead of the next one used for it (see
    /// [`BulStore::set_next_sequence`]).
    pub next_sequence: u16,
    /// Care-of address of the acknowledged binding, if any.
    pub bound_coa: Option<Ipv6Addr>,
    /// Its expiry, milliseconds since the Unix epoch.
    pub bound_until_unix_ms: Option<u64>,
}

/// How far ahead of the numbers in use the stored sequence numbers are.
const SEQUENCE_RESERVE: u16 = 64;

/// The file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulFile {
    /// [`BUL_VERSION`].
    pub version: u32,
    /// The home address this list is for.
    pub hoa: Ipv6Addr,
    /// Next home registration sequence number.
    pub home_next_sequence: Option<u16>,
    /// The clients.
    pub clients: Vec<ClientRecord>,
}

/// The list on disk and in memory.
#[derive(Debug)]
pub struct BulStore {
    path: PathBuf,
    hoa: Ipv6Addr,
    home_next_sequence: Option<u16>,
    clients: BTreeMap<Ipv6Addr, ClientRecord>,
    dirty: bool,
    /// Successful writes.
    pub writes: u64,
}

impl BulStore {
    /// Opens `dir/bul.json`. A file for another home address, or a
    /// corrupt one, is set aside (renamed `.bad`) and an empty list
    /// started: sequence numbers then resync through status 135.
    pub fn open(dir: &Path, hoa: Ipv6Addr) -> (BulStore, Option<String>) {
        let path = dir.join("bul.json");
        let mut problem = None;
        let file: Option<BulFile> = match persist::read_json(&path) {
            Ok(f) => f,
            Err(e) => {
                problem = Some(e.to_string());
                None
            }
        };
        let file = match file {
            Some(f) if f.version == BUL_VERSION && f.hoa == hoa => Some(f),
            Some(f) => {
                problem = Some(format!(
                    "{}: version {} for {}, not version {BUL_VERSION} for {hoa}",
                    path.display(),
                    f.version,
                    f.hoa
                ));
                None
            }
            None => None,
        };
        if problem.is_some() {
            let _ = std::fs::rename(&path, path.with_extension("json.bad"));
        }
        let (home_next_sequence, clients) = file.map_or((None, BTreeMap::new()), |f| {
            (
                f.home_next_sequence,
                f.clients.into_iter().map(|c| (c.cn, c)).collect(),
            )
        });
        (
            BulStore {
                path,
                hoa,
                home_next_sequence,
                clients,
                dirty: false,
                writes: 0,
            },
            problem,
        )
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored next home registration sequence number.
    pub fn home_next_sequence(&self) -> Option<u16> {
        self.home_next_sequence
    }

    /// Sets it.
    pub fn set_home_next_sequence(&mut self, seq: u16) {
        if self.home_next_sequence != Some(seq) {
            self.home_next_sequence = Some(seq);
            self.dirty = true;
        }
    }

    /// The record of `cn`.
    pub fn client(&self, cn: Ipv6Addr) -> Option<&ClientRecord> {
        self.clients.get(&cn)
    }

    /// All records.
    pub fn clients(&self) -> impl Iterator<Item = &ClientRecord> {
        self.clients.values()
    }

    /// Notes that `seq` is the next sequence number for `cn`. What is
    /// stored is a reservation at or ahead of it (`seq` + 64): the file is
    /// rewritten (and synced) only when the numbers in use pass the
    /// reservation, not before every Binding Update. After a restart the
    /// node continues from the reservation, still newer than anything it
    /// sent (RFC 6275 9.5.1 compares modulo 2^16 within half the space).
    pub fn set_next_sequence(&mut self, cn: Ipv6Addr, seq: u16) {
        let reserve = seq.wrapping_add(SEQUENCE_RESERVE);
        match self.clients.get_mut(&cn) {
            Some(r) if r.next_sequence.wrapping_sub(seq) < 0x8000 => {}
            Some(r) => {
                r.next_sequence = reserve;
                self.dirty = true;
            }
            None => {
                self.clients.insert(
                    cn,
                    ClientRecord {
                        cn,
                        next_sequence: reserve,
                        bound_coa: None,
                        bound_until_unix_ms: None,
                    },
                );
                self.dirty = true;
            }
        }
    }

    /// Records the acknowledged binding of `cn` (or its end, `None`).
    pub fn set_bound(&mut self, cn: Ipv6Addr, bound: Option<(Ipv6Addr, u64)>) {
        if let Some(r) = self.clients.get_mut(&cn) {
            let (coa, until) = bound.map_or((None, None), |(c, u)| (Some(c), Some(u)));
            if r.bound_coa != coa || r.bound_until_unix_ms != until {
                r.bound_coa = coa;
                r.bound_until_unix_ms = until;
                self.dirty = true;
            }
        }
    }

    /// Writes the file if anything changed.
    pub fn flush(&mut self) -> Result<(), PersistError> {
        if !self.dirty {
            return Ok(());
        }
        let f = BulFile {
            version: BUL_VERSION,
            hoa: self.hoa,
            home_next_sequence: self.home_next_sequence,
            clients: self.clients.values().copied().collect(),
        };
        persist::write_json(&self.path, &f)?;
        self.dirty = false;
        self.writes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_survive_a_reopen_and_bad_files_are_set_aside() {
        let dir = std::env::temp_dir().join(format!("bul-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let x: Ipv6Addr = "2001:db8:100::1".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let (mut s, p) = BulStore::open(&dir, x);
        assert!(p.is_none());
        s.set_home_next_sequence(9);
        s.set_next_sequence(c, 100);
        s.set_bound(c, Some(("2001:db8:3::10".parse().unwrap(), 5)));
        s.flush().unwrap();
        let (s2, p) = BulStore::open(&dir, x);
        assert!(p.is_none());
        assert_eq!(s2.home_next_sequence(), Some(9));
        assert_eq!(s2.client(c).unwrap().next_sequence, 100 + SEQUENCE_RESERVE);
        assert_eq!(s2.client(c).unwrap().bound_until_unix_ms, Some(5));
        // Another home address: set aside, start empty.
        let (s3, p) = BulStore::open(&dir, "2001:db8:100::2".parse().unwrap());
        assert!(p.is_some());
        assert!(s3.client(c).is_none());
        assert!(dir.join("bul.json.bad").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sequence_reservations_write_rarely_and_never_go_back() {
        let dir = std::env::temp_dir().join(format!("bul-reserve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let x: Ipv6Addr = "2001:db8:100::1".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        let (mut s, _) = BulStore::open(&dir, x);
        // Across the wrap-around, too.
        let start = 65_500u16;
        for i in 0..200u16 {
            let seq = start.wrapping_add(i);
            s.set_next_sequence(c, seq);
            s.flush().unwrap();
            let (s2, _) = BulStore::open(&dir, x);
            let stored = s2.client(c).unwrap().next_sequence;
            assert!(
                stored.wrapping_sub(seq) < 0x8000,
                "stored {stored} is behind {seq}"
            );
        }
        // 200 numbers, reserved 64 at a time.
        assert!(s.writes <= 4, "{} writes", s.writes);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
