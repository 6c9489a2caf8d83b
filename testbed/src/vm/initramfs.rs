//! The guest's initramfs: an uncompressed `newc` cpio archive (the
//! kernel unpacks it into its root tmpfs) holding busybox-static, kernel
//! modules, our programs with the shared libraries `ldd` names (the ELF
//! interpreter included) and a generated `/init`.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir(String),
    /// A file with `mode` (permission bits) and contents.
    File {
        /// Path inside the guest (no leading `/`).
        path: String,
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
    },
    /// A symbolic link `path` -> `target`.
    Symlink {
        /// Path inside the guest.
        path: String,
        /// Where it points.
        target: String,
    },
}

/// Builds the archive: directories of every path are added first.
#[derive(Debug, Default)]
pub struct Initramfs {
    entries: Vec<Entry>,
    dirs: BTreeSet<String>,
}

fn parents(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for p in parts.iter().take(parts.len().saturating_sub(1)) {
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(p);
        out.push(cur.clone());
    }
    out
}

impl Initramfs {
    /// An empty archive.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn ensure_parents(&mut self, path: &str) {
        for d in parents(path) {
            self.dir(&d);
        }
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_start_matches('/').to_string();
        if path.is_empty() || self.dirs.contains(&path) {
            return;
        }
        self.ensure_parents(&path);
        self.dirs.insert(path.clone());
        self.entries.push(Entry::Dir(path));
    }

    /// Adds a file.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        let path = path.trim_start_matches('/').to_string();
        self.ensure_parents(&path);
        self.entries.push(Entry::File { path, mode, data });
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_start_matches('/').to_string();
        self.ensure_parents(&path);
        self.entries.push(Entry::Symlink {
            path,
            target: target.to_string(),
        });
    }

    /// Copies the host file `src` to `dst` in the guest.
    pub fn copy(&mut self, src: &Path, dst: &str, mode: u32) -> io::Result<()> {
        let data = std::fs::read(src)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
        self.file(dst, mode, data);
        Ok(())
    }

    /// Copies the dynamically linked program `src` to `dst`, with every
    /// library `ldd` lists (and the ELF interpreter) at its host path.
    pub fn program(&mut self, src: &Path, dst: &str) -> io::Result<()> {
        self.copy(src, dst, 0o755)?;
        for lib in shared_libraries(src)? {
            let guest = lib.to_string_lossy().to_string();
            let already = self.entries.iter().any(
                |e| matches!(e, Entry::File { path, .. } if *path == guest.trim_start_matches('/')),
            );
            if !already {
                self.copy(&lib, &guest, 0o755)?;
            }
        }
        Ok(())
    }

    /// The `newc` archive.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, e) in self.entries.iter().enumerate() {
            let ino = u32::try_from(ino + 1).unwrap_or(u32::MAX);
            let (path, mode, data): (&str, u32, &[u8]) = match e {
                Entry::Dir(p) => (p, 0o040_755, &[]),
                Entry::File { path, mode, data } => (path, 0o100_000 | mode, data),
                Entry::Symlink { path, target } => (path, 0o120_777, target.as_bytes()),
            };
            header(&mut out, ino, mode, path, data.len());
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        header(&mut out, 0, 0, "TRAILER!!!", 0);
        out
    }

    /// Writes the archive to `path`.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(&self.to_bytes())?;
        f.sync_all()
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// A `newc` header ("070701", 13 eight-digit hex fields) and the name.
fn header(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, size: usize) {
    let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        u32::try_from(size).unwrap_or(u32::MAX),
        0,
        0,
        0,
        0,
        u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// The absolute library paths `ldd PROGRAM` prints (interpreter
/// included; the vDSO has no path).
pub fn shared_libraries(program: &Path) -> io::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(program).output()?;
    if !out.status.success() {
        // "not a dynamic executable": a static program needs nothing.
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// Paths in `ldd` output: `name => /path (addr)` or `/path (addr)`.
#[must_use]
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for line in text.lines() {
        let rest = line.split("=>").nth(1).unwrap_or(line);
        if let Some(p) = rest.split_whitespace().next()
            && p.starts_with('/')
        {
            let p = PathBuf::from(p);
            if !v.contains(&p) {
                v.push(p);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let t = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n\tlibm.so.6 => not found\n";
        assert_eq!(
            parse_ldd(t),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn newc_layout() {
        let mut a = Initramfs::new();
        a.file("bin/x", 0o755, b"hello".to_vec());
        a.symlink("bin/sh", "busybox");
        let b = a.to_bytes();
        // bin (dir), bin/x, bin/sh, trailer.
        assert_eq!(&b[..6], b"070701");
        let name_at = 110;
        assert_eq!(&b[name_at..name_at + 4], b"bin\0");
        assert!(b.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(b.len() % 4, 0);
        let s = String::from_utf8_lossy(&b);
        assert!(s.contains("bin/x\0"));
        assert!(s.contains("hello"));
        // The file header: mode 0100755, size 5.
        let x = s.find("bin/x\0").unwrap() - 110;
        assert_eq!(&s[x + 14..x + 22], "000081ed");
        assert_eq!(&s[x + 54..x + 62], "00000005");
    }
}
