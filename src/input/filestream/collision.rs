//! Two live files with the same fingerprint, and copies taking over what was read.
//!
//! Fingerprint identity takes a file's first bytes (1024 by default) for its identity, so a
//! renamed or copied file (copytruncate's copy) is recognised as content already read. But
//! two different files can start with the same bytes too: a CSV header, a banner. Filebeat's
//! scanner logs `"b" points to an already known ingest target "a" [fp==fp]. Skipping` and
//! reads only one of them while both exist (filestream/fswatch.go; elastic/beats#38003,
//! where the advice is a longer fingerprint or another identity).
//!
//! oxibeat decides with the fingerprint and (device, inode) together, and logs it (WARN,
//! once per file). When a file has the fingerprint of a known file on another inode:
//!
//! - the known file no longer holds that fingerprint (truncated, rewritten, deleted, or gone
//!   from the globs): the same content moved, and the new inode continues from the cursor
//!   (rename, copytruncate's copy) — read only past what was shipped;
//! - both hold it, and the new file's bytes so far are a copy of the known file's (compared
//!   just before the shorter one's end): it may be copytruncate's copy before the original is
//!   truncated, so it waits until the original changes (then it takes over as above) or for
//!   two seconds without growing (then it is a file of its own);
//! - otherwise it is a file of its own: keyed `fingerprint::<hex>@<inode>-<device>` and read
//!   from its start. The key is kept in the registry, so a restart tells them apart the same
//!   way.
//!
//! A file that takes over a cursor is read on only once it reaches the cursor and holds there
//! the bytes read just before it (`same_bytes_before`); if not, it is a new file that only
//! starts the same way (a CSV rotated out of the globs, a new one with the same header), and
//! it is read from its start instead of from the middle of one of its lines.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::identity::{self, FileInfo, Identity};
use super::Prospector;
use crate::config::filestream::FileIdentity;

/// How long a new file that looks like a copy of a live file may hold still before it is
/// taken for a file of its own.
const COPY_GRACE: Duration = Duration::from_secs(2);
/// Bytes compared just before the end of the shorter file.
const COPY_WINDOW: u64 = 4096;

/// Does the known file still hold its fingerprint?
enum Holds {
    /// Yes: here it is, open.
    Yes(Arc<File>),
    /// No: truncated, rewritten, deleted or gone from the globs.
    No,
    /// Not at its last path and no full scan to look elsewhere yet.
    Unknown,
}

impl Prospector {
    /// The identity `info` takes, given that `identity` (its fingerprint) may already belong
    /// to a live file on another inode; `None` to look again soon (a copy may be in progress).
    pub(super) fn resolve_collision(
        &mut self,
        info: &FileInfo,
        identity: Arc<Identity>,
    ) -> Option<Arc<Identity>> {
        if self.identifier.mode() != FileIdentity::Fingerprint || identity.partial_len.is_some() {
            return Some(identity);
        }
        let inode = (info.dev, info.ino);
        let collided = Arc::new(identity.collided(info.ino, info.dev));
        let ckey = format!("{}{}", self.key_prefix, collided.suffix);
        // Told apart already in this run.
        if self.by_inode.get(&inode).is_some_and(|k| **k == *ckey)
            || self.known.contains_key(ckey.as_str())
        {
            self.copies.remove(&inode);
            return Some(collided);
        }
        let key = format!("{}{}", self.key_prefix, identity.suffix);
        let owner = self
            .known
            .get(key.as_str())
            .map(|k| (k.info.dev, k.info.ino));
        if owner == Some(inode) {
            return Some(identity);
        }
        // Told apart by an earlier run.
        if self.registry.contains(&ckey) {
            return Some(collided);
        }
        if owner.is_none() {
            return Some(identity);
        }
        let file = match self.holds(&key) {
            Holds::No => {
                self.copies.remove(&inode);
                return Some(identity);
            }
            Holds::Unknown => {
                self.recheck = true;
                return None;
            }
            Holds::Yes(file) => file,
        };
        if !self.ctx.once && !self.initial && self.may_be_copy(info, &file) {
            let now = Instant::now();
            let since = self.copies.entry(inode).or_insert((info.size, now));
            if since.0 != info.size {
                *since = (info.size, now);
            }
            if now.duration_since(since.1) < COPY_GRACE {
                self.recheck = true;
                return None;
            }
        }
        self.copies.remove(&inode);
        if self.collisions_logged.insert(inode) {
            let other = self
                .known
                .get(key.as_str())
                .map(|k| k.info.path.display().to_string())
                .unwrap_or_default();
            tracing::warn!(
                path = %info.path.display(),
                other = %other,
                fingerprint = %identity.hash(),
                "two files have the same fingerprint (their first {} bytes are identical): both are read, told apart by device and inode; a longer prospector.scanner.fingerprint.length tells them apart by content",
                self.identifier.window().1
            );
        }
        Some(collided)
    }
}

/// Does the file hold `tail` just before `offset`? (True when nothing is known to compare.)
pub(super) fn same_bytes_before(info: &FileInfo, offset: u64, tail: &[u8]) -> bool {
    if tail.is_empty() || offset < tail.len() as u64 {
        return true;
    }
    let Ok(f) = File::open(&info.path) else {
        return true;
    };
    match f.metadata() {
        Ok(md) if (md.dev(), md.ino()) == (info.dev, info.ino) => {}
        _ => return true,
    }
    let mut buf = vec![0u8; tail.len()];
    match f.read_exact_at(&mut buf, offset - tail.len() as u64) {
        Ok(()) => buf == tail,
        Err(_) => true,
    }
}

impl Prospector {
    /// Does the known file of `key` still exist and hold its fingerprint? Its running
    /// harvester's open file is asked first (it may have been renamed), then its last path,
    /// then where the current full scan found its inode.
    fn holds(&self, key: &str) -> Holds {
        let Some(k) = self.known.get(key) else {
            return Holds::No;
        };
        let inode = (k.info.dev, k.info.ino);
        let mut file = k.running.as_ref().and_then(|(_, ctl)| ctl.file());
        if file.is_none() {
            let paths = std::iter::once(&k.info.path).chain(self.scan_inodes.get(&inode));
            file = paths.filter_map(|p| File::open(p).ok()).find_map(|f| {
                let md = f.metadata().ok()?;
                ((md.dev(), md.ino()) == inode).then(|| Arc::new(f))
            });
        }
        let Some(file) = file else {
            return if self.in_full_scan || self.initial || self.ctx.once {
                Holds::No
            } else {
                Holds::Unknown
            };
        };
        let Ok(md) = file.metadata() else {
            return Holds::No;
        };
        let (offset, len) = self.identifier.window();
        if md.nlink() == 0 || md.len() < offset + len {
            return Holds::No;
        }
        match identity::hash_file_range(&file, offset, len) {
            Ok(h) if h == k.identity.hash() => Holds::Yes(file),
            _ => Holds::No,
        }
    }

    /// Are `candidate`'s bytes so far those of `owner` (compared just before the end of the
    /// shorter of the two)?
    fn may_be_copy(&self, candidate: &FileInfo, owner: &File) -> bool {
        let Ok(omd) = owner.metadata() else {
            return false;
        };
        let (offset, len) = self.identifier.window();
        let end = candidate.size.min(omd.len());
        if end <= offset + len {
            // Nothing beyond the fingerprint, which is the same.
            return true;
        }
        let w = end.min(COPY_WINDOW);
        let read = |f: &File| -> Option<Vec<u8>> {
            let mut buf = vec![0u8; w as usize];
            f.read_exact_at(&mut buf, end - w).ok()?;
            Some(buf)
        };
        let Ok(cf) = File::open(&candidate.path) else {
            return false;
        };
        match (read(&cf), read(owner)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }
}
