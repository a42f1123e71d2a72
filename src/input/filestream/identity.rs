//! File identity: what makes "the same file" across renames, rotation and restarts.
//!
//! - fingerprint (default): SHA-256 of `length` bytes at `offset` (1024 at 0), like Filebeat.
//!   A file shorter than that is keyed by the hash of what it has so far, with that length
//!   recorded; as it grows, its key is upgraded and its cursor kept (Filebeat 9 skips such files).
//! - native: device and inode.
//! - path: the path.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::filestream::{FileIdentity, FingerprintConfig};

/// What a scan learns about one file.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
}

impl FileInfo {
    pub fn from_metadata(path: PathBuf, md: &std::fs::Metadata) -> Self {
        Self::from_stat(path, &Stat::of(md))
    }

    pub fn from_stat(path: PathBuf, st: &Stat) -> Self {
        FileInfo {
            path,
            dev: st.dev,
            ino: st.ino,
            size: st.size,
            mtime: st.mtime,
        }
    }
}

/// What a scan needs of a file's metadata: a scan holds one per matched file, and a
/// `std::fs::Metadata` is five times larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Symlink,
    Other,
}

impl Stat {
    pub fn of(md: &std::fs::Metadata) -> Stat {
        let t = md.file_type();
        Stat {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime: mtime_nanos(md),
            kind: if t.is_file() {
                Kind::File
            } else if t.is_symlink() {
                Kind::Symlink
            } else {
                Kind::Other
            },
        }
    }
}

/// Modification time in unix nanoseconds (saturating: a clock past 2262 must not panic).
pub fn mtime_nanos(md: &std::fs::Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

/// A file's identity as a registry key suffix, e.g. `fingerprint::<hex>`.
///
/// A file shorter than the fingerprint window is keyed `fingerprint::<hex>@<inode>-<device>`:
/// two small files may hold the same bytes (a common header line) and must not be taken for
/// one another.
///
/// Shared (`Arc`) by the identifier's cache and the input's state of the file: there is one
/// per file, and a node may follow tens of thousands. (A collided identity, `collided`, is
/// made anew on each look and not cached.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub suffix: String,
    pub name: &'static str,
    /// Bytes hashed when shorter than the window (a small file).
    pub partial_len: Option<u64>,
    /// The first bytes of the file (up to 64), to spot a copy of a known file being written.
    pub head: Vec<u8>,
}

impl Identity {
    /// The identity of a file whose full fingerprint equals a live file's (the same first
    /// bytes, another inode): keyed `fingerprint::<hex>@<inode>-<device>`, like a small file,
    /// so both are read and each keeps its own cursor.
    pub fn collided(&self, ino: u64, dev: u64) -> Identity {
        Identity {
            suffix: format!("fingerprint::{}@{ino}-{dev}", self.hash()),
            ..self.clone()
        }
    }

    /// The SHA-256 (hex) the fingerprint was made of; empty for native and path identity.
    pub fn hash(&self) -> &str {
        self.suffix
            .strip_prefix("fingerprint::")
            .map_or("", |s| s.split_once('@').map_or(s, |(h, _)| h))
    }

    /// The full fingerprint (shown as `log.file.fingerprint`): None for a small file's.
    pub fn fingerprint(&self) -> Option<&str> {
        (self.name == "fingerprint" && self.partial_len.is_none()).then(|| self.hash())
    }
}

/// SHA-256 (hex) of `len` bytes at `offset` of an open file.
pub fn hash_file_range(f: &File, offset: u64, len: u64) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset)?;
    Ok(hex(&Sha256::digest(&buf)))
}

pub fn hash_range(path: &Path, offset: u64, len: u64) -> std::io::Result<String> {
    read_hash(path, offset, len).map(|(h, _)| h)
}

/// SHA-256 (hex) of `len` bytes at `offset`, and the first 64 of those bytes.
fn read_hash(path: &Path, offset: u64, len: u64) -> std::io::Result<(String, Vec<u8>)> {
    hash_at(&mut File::open(path)?, offset, len)
}

fn hash_at(f: &mut File, offset: u64, len: u64) -> std::io::Result<(String, Vec<u8>)> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf)?;
    Ok((
        hex(&Sha256::digest(&buf)),
        buf[..buf.len().min(HEAD_LEN)].to_vec(),
    ))
}

pub const HEAD_LEN: usize = 64;

/// `read_hash` of the file `f` describes: None if the path names another file now.
fn read_hash_of(f: &FileInfo, offset: u64, len: u64) -> std::io::Result<(String, Vec<u8>)> {
    let mut file = File::open(&f.path)?;
    let md = file.metadata()?;
    if md.dev() != f.dev || md.ino() != f.ino {
        return Err(std::io::Error::other(Replaced));
    }
    hash_at(&mut file, offset, len)
}

/// The path names another file than the one just looked at (renamed away and replaced).
#[derive(Debug)]
struct Replaced;

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("replaced by another file since it was looked at")
    }
}

impl std::error::Error for Replaced {}

/// An error of a file that changed between its stat and its read (a rotation renamed or
/// replaced it, or it was truncated): the file is still known, and the next look decides.
pub fn changed_since_stat(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::NotFound
    ) || e.get_ref().is_some_and(|x| x.is::<Replaced>())
}

/// The hash inside a registry key of a small file (`...::fingerprint::<hex>@<inode>-<device>`).
pub fn partial_hash(key: &str) -> Option<&str> {
    let suffix = key.rsplit_once("::fingerprint::")?.1;
    Some(suffix.split_once('@').map_or(suffix, |(h, _)| h))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Computes identities, caching fingerprints so a rescan does not re-read unchanged files.
pub struct Identifier {
    mode: FileIdentity,
    fp: FingerprintConfig,
    /// (dev, ino) → (size, mtime, identity).
    cache: HashMap<(u64, u64), (u64, i64, Arc<Identity>)>,
}

impl Identifier {
    pub fn new(mode: FileIdentity, fp: FingerprintConfig) -> Self {
        let mode = if mode == FileIdentity::Fingerprint && !fp.enabled {
            FileIdentity::Native
        } else {
            mode
        };
        Identifier {
            mode,
            fp,
            cache: HashMap::new(),
        }
    }

    pub fn mode(&self) -> FileIdentity {
        self.mode
    }

    /// The registry's `meta.identifier_name` of this identity.
    pub fn kind_name(&self) -> &'static str {
        match self.mode {
            FileIdentity::Native => "native",
            FileIdentity::Path => "path",
            FileIdentity::Fingerprint => "fingerprint",
        }
    }

    /// Identity of a file, or `None` if it has no bytes to fingerprint yet.
    pub fn identify(&mut self, f: &FileInfo) -> std::io::Result<Option<Arc<Identity>>> {
        match self.mode {
            FileIdentity::Native => Ok(Some(Arc::new(Identity {
                suffix: format!("native::{}-{}", f.ino, f.dev),
                name: "native",
                partial_len: None,
                head: Vec::new(),
            }))),
            FileIdentity::Path => Ok(Some(Arc::new(Identity {
                suffix: format!("path::{}", f.path.display()),
                name: "path",
                partial_len: None,
                head: Vec::new(),
            }))),
            FileIdentity::Fingerprint => {
                let key = (f.dev, f.ino);
                // Re-read only files that changed: an idle file costs no I/O on a rescan. A
                // changed file is re-hashed, since copytruncate can shrink and regrow it
                // between two looks.
                if let Some((size, mtime, id)) = self.cache.get(&key) {
                    if *size == f.size && *mtime == f.mtime {
                        return Ok(Some(id.clone()));
                    }
                }
                if f.size <= self.fp.offset {
                    return Ok(None);
                }
                let len = (f.size - self.fp.offset).min(self.fp.length);
                // The path may name another file by now (rotation: rename, then a new empty
                // file), or the file may be shorter (truncated): `changed_since_stat` errors,
                // which the prospector treats as "still there, look again" without a warning.
                let (hash, head) = read_hash_of(f, self.fp.offset, len)?;
                let id = Arc::new(if len == self.fp.length {
                    Identity {
                        suffix: format!("fingerprint::{hash}"),
                        name: "fingerprint",
                        partial_len: None,
                        head,
                    }
                } else {
                    Identity {
                        suffix: format!("fingerprint::{hash}@{}-{}", f.ino, f.dev),
                        name: "fingerprint",
                        partial_len: Some(len),
                        head,
                    }
                });
                self.cache.insert(key, (f.size, f.mtime, id.clone()));
                Ok(Some(id))
            }
        }
    }

    /// Does the file still start with the bytes a partial fingerprint hashed?
    pub fn extends(&self, f: &FileInfo, partial_hash: &str, len: u64) -> bool {
        f.size >= self.fp.offset + len
            && hash_range(&f.path, self.fp.offset, len).is_ok_and(|h| h == partial_hash)
    }

    pub fn forget(&mut self, dev: u64, ino: u64) {
        self.cache.remove(&(dev, ino));
    }

    /// The fingerprint window (offset, length).
    pub fn window(&self) -> (u64, u64) {
        (self.fp.offset, self.fp.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filebeat_fingerprint_vectors() {
        // Verified vectors from Filebeat's take-over test data (fingerprint length 64).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/filebeat-reference/registry-takeover-testdata");
        if !dir.exists() {
            eprintln!("skipped: {} not beside the repo", dir.display());
            return;
        }
        let vectors = [
            (
                "01.log",
                "6fb3cb6c565bdba1354f64a42dd47ef937964019400dd571f25c2cd13a9fb5be",
            ),
            (
                "02.log",
                "db8399294e69089070405b13d4f057672f3852fa8e0f56ce4b6c92398aef1b6a",
            ),
            (
                "01.txt",
                "9ef9433360a276b14e8eae3864594c0108042c0828d3504b34c082dfc1cd43da",
            ),
            (
                "02.txt",
                "10c6577e45f2b06631e11285210d8bd967ebf9786cf81ccfc9fef64bc01725cd",
            ),
        ];
        let cfg = FingerprintConfig {
            enabled: true,
            offset: 0,
            length: 64,
        };
        for (name, want) in vectors {
            let p = dir.join(name);
            let md = std::fs::metadata(&p).unwrap();
            let mut idf = Identifier::new(FileIdentity::Fingerprint, cfg.clone());
            let id = idf
                .identify(&FileInfo::from_metadata(p, &md))
                .unwrap()
                .unwrap();
            assert_eq!(id.fingerprint(), Some(want), "{name}");
            assert_eq!(id.hash(), want);
            assert_eq!(id.suffix, format!("fingerprint::{want}"));
        }
    }

    #[test]
    fn hash_and_fingerprint_come_from_the_suffix() {
        let hex = "ab".repeat(32);
        let full = Identity {
            suffix: format!("fingerprint::{hex}"),
            name: "fingerprint",
            partial_len: None,
            head: Vec::new(),
        };
        assert_eq!(full.hash(), hex);
        assert_eq!(full.fingerprint(), Some(hex.as_str()));
        // A collided identity keeps the file's full fingerprint.
        let c = full.collided(7, 9);
        assert_eq!(c.suffix, format!("fingerprint::{hex}@7-9"));
        assert_eq!(c.hash(), hex);
        assert_eq!(c.fingerprint(), Some(hex.as_str()));
        // A small file's partial hash is no fingerprint.
        let small = Identity {
            suffix: format!("fingerprint::{hex}@7-9"),
            partial_len: Some(10),
            ..full.clone()
        };
        assert_eq!(small.hash(), hex);
        assert_eq!(small.fingerprint(), None);
        for (suffix, name) in [("native::7-9", "native"), ("path::/a.log", "path")] {
            let id = Identity {
                suffix: suffix.into(),
                name,
                partial_len: None,
                head: Vec::new(),
            };
            assert_eq!(id.hash(), "");
            assert_eq!(id.fingerprint(), None);
        }
    }

    #[test]
    fn small_file_gets_partial_identity_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"short\n").unwrap();
        let mut idf = Identifier::new(FileIdentity::Fingerprint, FingerprintConfig::default());
        let info =
            |p: &Path| FileInfo::from_metadata(p.to_path_buf(), &std::fs::metadata(p).unwrap());
        let small = idf.identify(&info(&p)).unwrap().unwrap();
        assert_eq!(small.partial_len, Some(6));
        assert_eq!(small.fingerprint(), None);
        let hash = small.hash().to_string();
        assert!(small.suffix.starts_with(&format!("fingerprint::{hash}@")));
        std::fs::write(&p, [b"short\n".as_slice(), &[b'x'; 2000]].concat()).unwrap();
        let grown = idf.identify(&info(&p)).unwrap().unwrap();
        assert!(grown.partial_len.is_none());
        assert!(idf.extends(&info(&p), &hash, 6));
        std::fs::write(&p, b"other\n").unwrap();
        assert!(!idf.extends(&info(&p), &hash, 6));
    }
}
