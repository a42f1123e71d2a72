//! Dead-letter file for events Kafka rejected for good (too large, invalid topic, not
//! authorised). NDJSON, one object per event:
//! `{"@timestamp":"<when dead-lettered>","topic":"..","error":"..","event":{<the Beats JSON>}}`.
//! The active file is `<dir>/kafka-dlq.ndjson`; when it exceeds `rotate_every` it is renamed to
//! `.1` (older ones shift up, beyond `number_of_files` they are deleted). Each write is fsynced
//! before the events are acked, so a crash cannot lose an event that was counted as dead-lettered.
//!
//! `oxibeat dlq replay` (replay.rs) rewrites these files while an agent may be writing them:
//! both sides take an exclusive `flock` on `<dir>/kafka-dlq.lock`, and the writer opens the
//! file for each write (writes are rare), so it never appends to a file replay replaced.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::event::{format_timestamp, now_nanos, write_json_str};

use super::config::DeadLetterConfig;

pub const FILE_NAME: &str = "kafka-dlq.ndjson";
const LOCK_NAME: &str = "kafka-dlq.lock";

pub struct DeadLetter {
    dir: PathBuf,
    rotate_every: u64,
    number_of_files: usize,
}

/// An exclusive lock on a dead-letter directory, released when the file is closed on drop.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Wait for the lock of `dir` (created if missing).
    pub fn acquire(dir: &Path) -> std::io::Result<DirLock> {
        use std::os::fd::AsRawFd;
        fs::create_dir_all(dir)?;
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_NAME))?;
        // SAFETY: flock on a descriptor we own; it is released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(DirLock { _file: f })
    }
}

impl DirLock {
    /// For readers that must not change anything (`dlq show`): wait for the lock if the lock
    /// file exists, `None` if it does not (no writer has used the directory yet).
    pub fn acquire_existing(dir: &Path) -> std::io::Result<Option<DirLock>> {
        use std::os::fd::AsRawFd;
        let f = match OpenOptions::new().read(true).open(dir.join(LOCK_NAME)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // SAFETY: flock on a descriptor we own; it is released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Some(DirLock { _file: f }))
    }
}

/// The dead-letter files of `dir`, oldest first (`.N` … `.1`, then the active file).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut rotated = numbered(dir, |name| {
        name.strip_prefix(FILE_NAME)?
            .strip_prefix('.')?
            .parse()
            .ok()
    });
    rotated.reverse();
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let active = dir.join(FILE_NAME);
    if active.is_file() {
        out.push(active);
    }
    out
}

/// Entries of `dir` whose name `number` maps to a number, in ascending order.
pub fn numbered(dir: &Path, number: impl Fn(&str) -> Option<u64>) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((number(&e.file_name().to_string_lossy())?, e.path())))
        .collect();
    out.sort();
    out
}

/// One rejected event.
pub struct Entry<'a> {
    pub topic: &'a str,
    pub error: &'a str,
    /// The event as Beats JSON (what would have been the Kafka message value).
    pub event: &'a [u8],
}

impl DeadLetter {
    pub fn new(cfg: &DeadLetterConfig, dir: PathBuf) -> Self {
        DeadLetter {
            dir,
            rotate_every: cfg.rotate_every.0.max(1024),
            number_of_files: cfg.number_of_files.max(1),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn active(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn rotate(&self) -> std::io::Result<()> {
        let n = self.number_of_files;
        let name = |i: usize| self.dir.join(format!("{FILE_NAME}.{i}"));
        let _ = fs::remove_file(name(n));
        for i in (1..n).rev() {
            let _ = fs::rename(name(i), name(i + 1));
        }
        fs::rename(self.active(), name(1))
    }

    /// Append entries and fsync. On error nothing may be acked: the caller retries.
    pub fn write(&mut self, entries: &[Entry<'_>]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        let ts = format_timestamp(now_nanos());
        for e in entries {
            write_line(&mut buf, &ts, e);
        }
        let _lock = DirLock::acquire(&self.dir)?;
        let size = fs::metadata(self.active()).map_or(0, |m| m.len());
        if size >= self.rotate_every {
            self.rotate()?;
        }
        append_synced(&self.active(), &buf)
    }
}

/// Append `buf` to `path` and fsync it. A failed write may leave a partial line, which
/// readers skip as invalid JSON; the next append ends that line first, so it cannot swallow
/// the entry that follows.
pub fn append_synced(path: &Path, buf: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut last = [0u8];
    if len > 0 && f.read_at(&mut last, len - 1)? == 1 && last[0] != b'\n' {
        f.write_all(b"\n")?;
    }
    f.write_all(buf)?;
    f.sync_data()
}

/// A non-blocking exclusive lock on `path`, or `None` when another process holds it.
pub fn try_lock(path: &Path) -> std::io::Result<Option<File>> {
    use std::os::fd::AsRawFd;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: flock on a descriptor we own; it is released when the file is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(f))
}

/// One dead-letter line for `e`, dead-lettered at `ts`.
pub fn write_line(buf: &mut Vec<u8>, ts: &str, e: &Entry<'_>) {
    buf.extend_from_slice(b"{\"@timestamp\":");
    write_json_str(ts, buf);
    buf.extend_from_slice(b",\"topic\":");
    write_json_str(e.topic, buf);
    buf.extend_from_slice(b",\"error\":");
    write_json_str(e.error, buf);
    buf.extend_from_slice(b",\"event\":");
    // The value is our own serialisation, so it is one JSON object; keep a fallback
    // anyway so a corrupt value still yields a parsable line.
    if serde_json::from_slice::<serde::de::IgnoredAny>(e.event).is_ok() {
        buf.extend_from_slice(e.event);
    } else {
        write_json_str(&String::from_utf8_lossy(e.event), buf);
    }
    buf.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_after_a_torn_line_starts_on_a_new_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, "{\"torn\":").unwrap();
        append_synced(&path, b"{\"a\":1}\n").unwrap();
        append_synced(&path, b"{\"b\":2}\n").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"torn\":\n{\"a\":1}\n{\"b\":2}\n"
        );
    }

    #[test]
    fn files_are_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "kafka-dlq.ndjson",
            ".1",
            ".2",
            ".10",
            ".x",
            ".replaying.0.ndjson",
        ] {
            let name = if name.starts_with('.') {
                format!("{FILE_NAME}{name}")
            } else {
                name.to_string()
            };
            fs::write(dir.path().join(name), "").unwrap();
        }
        let names: Vec<String> = files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "kafka-dlq.ndjson.10",
                "kafka-dlq.ndjson.2",
                "kafka-dlq.ndjson.1",
                "kafka-dlq.ndjson"
            ]
        );
        assert!(files(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn writes_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DeadLetterConfig {
            path: None,
            rotate_every: crate::config::units::ByteSize(1024),
            number_of_files: 2,
        };
        let mut d = DeadLetter::new(&cfg, dir.path().join("dlq"));
        let big = format!("{{\"message\":\"{}\"}}", "x".repeat(600));
        for _ in 0..6 {
            d.write(&[Entry {
                topic: "t",
                error: "Broker: Message size too large",
                event: big.as_bytes(),
            }])
            .unwrap();
        }
        let active = fs::read_to_string(dir.path().join("dlq").join(FILE_NAME)).unwrap();
        let v: serde_json::Value = serde_json::from_str(active.lines().next().unwrap()).unwrap();
        assert_eq!(v["topic"], "t");
        assert_eq!(v["event"]["message"].as_str().unwrap().len(), 600);
        assert!(dir
            .path()
            .join("dlq")
            .join(format!("{FILE_NAME}.1"))
            .exists());
        assert!(dir
            .path()
            .join("dlq")
            .join(format!("{FILE_NAME}.2"))
            .exists());
        assert!(!dir
            .path()
            .join("dlq")
            .join(format!("{FILE_NAME}.3"))
            .exists());
    }
}
