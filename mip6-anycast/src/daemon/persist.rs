//! Crash-safe state files: a new version is written to a temporary file
//! in the same directory, fsync'd, renamed over the old one, and the
//! directory is fsync'd, so after a crash or power loss the file is either
//! the old or the new version, never a torn mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest state file read back (a bound on what a corrupted or hostile
/// file can make us allocate).
pub const MAX_STATE_FILE: u64 = 64 << 20;

/// Errors of state files.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// An I/O step failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is not what was written (or too large).
    #[error("{}: {message}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Replaces `path` with `bytes` atomically and durably (mode 0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        f.write_all(bytes).map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("fsync of", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err("renaming onto", path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync of directory", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `value` as pretty JSON with [`write_atomic`].
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PersistError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| PersistError::Corrupt {
        path: path.to_owned(),
        message: format!("serializing: {e}"),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON state file: `Ok(None)` if it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, PersistError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", path)(e)),
    };
    if meta.len() > MAX_STATE_FILE {
        return Err(PersistError::Corrupt {
            path: path.to_owned(),
            message: format!("{} bytes is more than {MAX_STATE_FILE}", meta.len()),
        });
    }
    let bytes = fs::read(path).map_err(io_err("reading", path))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PersistError::Corrupt {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_replace() {
        let dir = std::env::temp_dir().join(format!("mip6-persist-{}", std::process::id()));
        let p = dir.join("sub").join("state.json");
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
        write_json(&p, &vec![1u32, 2, 3]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2, 3]));
        write_json(&p, &vec![4u32]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![4]));
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        fs::write(&p, b"{not json").unwrap();
        assert!(matches!(
            read_json::<Vec<u32>>(&p),
            Err(PersistError::Corrupt { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
