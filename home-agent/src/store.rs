//! The persisted binding cache: one JSON file of
//! [`RegistrationRecord`]s, rewritten atomically and durably
//! ([`mip6_anycast::daemon::persist`]) after every change and before the
//! Binding Acknowledgement that announces it is sent, so a restart (or a
//! crash) loses no acknowledged registration.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use mip6_anycast::daemon::persist::{self, PersistError};
use mip6_anycast::proto::{PersistEvent, RegistrationRecord};
use serde::{Deserialize, Serialize};

/// Format version of the file.
pub const STORE_VERSION: u32 = 1;

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFile {
    /// [`STORE_VERSION`].
    pub version: u32,
    /// The registrations.
    pub registrations: Vec<RegistrationRecord>,
}

/// The binding cache on disk and its in-memory copy.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    records: BTreeMap<Ipv6Addr, RegistrationRecord>,
    dirty: bool,
    /// Successful writes.
    pub writes: u64,
}

impl Store {
    /// Opens `dir/bindings.json` (absent: empty) and returns the records
    /// found there.
    pub fn open(dir: &Path) -> Result<(Store, Vec<RegistrationRecord>), PersistError> {
        let path = dir.join("bindings.json");
        let file: StoreFile = persist::read_json(&path)?.unwrap_or(StoreFile {
            version: STORE_VERSION,
            registrations: Vec::new(),
        });
        if file.version != STORE_VERSION {
            return Err(PersistError::Corrupt {
                path,
                message: format!(
                    "version {} (this build reads {STORE_VERSION})",
                    file.version
                ),
            });
        }
        let records = file.registrations.clone();
        Ok((
            Store {
                path,
                records: file.registrations.into_iter().map(|r| (r.hoa, r)).collect(),
                dirty: false,
                writes: 0,
            },
            records,
        ))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a change (written by [`Store::flush`]).
    pub fn apply(&mut self, e: PersistEvent) {
        match e {
            PersistEvent::Store(r) => {
                self.records.insert(r.hoa, r);
            }
            PersistEvent::Delete { hoa } => {
                self.records.remove(&hoa);
            }
        }
        self.dirty = true;
    }

    /// Writes the file if anything changed since the last write.
    pub fn flush(&mut self) -> Result<(), PersistError> {
        if !self.dirty {
            return Ok(());
        }
        let file = StoreFile {
            version: STORE_VERSION,
            registrations: self.records.values().cloned().collect(),
        };
        persist::write_json(&self.path, &file)?;
        self.dirty = false;
        self.writes += 1;
        Ok(())
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(last: u16) -> RegistrationRecord {
        RegistrationRecord {
            hoa: Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, last),
            coa: "2001:db8:3::10".parse().unwrap(),
            spi: 4242,
            sequence: 7,
            mesg_id: 1 << 40,
            expires_unix_ms: 4_000_000_000_000,
        }
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("ha-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut s, found) = Store::open(&dir).unwrap();
        assert!(found.is_empty());
        s.apply(PersistEvent::Store(rec(1)));
        s.apply(PersistEvent::Store(rec(2)));
        s.flush().unwrap();
        s.apply(PersistEvent::Delete { hoa: rec(1).hoa });
        s.flush().unwrap();
        assert_eq!(s.writes, 2);
        s.flush().unwrap();
        assert_eq!(s.writes, 2, "nothing changed: no write");
        let (_, found) = Store::open(&dir).unwrap();
        assert_eq!(found, vec![rec(2)]);
        std::fs::write(
            dir.join("bindings.json"),
            "{\"version\": 9, \"registrations\": []}",
        )
        .unwrap();
        assert!(Store::open(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
