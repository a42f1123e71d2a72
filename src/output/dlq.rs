//! The dead-letter file shared by the outputs (Kafka, Elasticsearch): events a destination
//! rejected for good, kept on disk so nothing is dropped without a record, and the
//! `oxibeat dlq show|replay` mechanics around it.
//!
//! Format: NDJSON, one object per event:
//! `{"@timestamp":"<when dead-lettered>","topic":"..","error":"..","event":{<the Beats JSON>}}`
//! (Kafka) or the same with `"index"` instead of `"topic"` (Elasticsearch). Readers accept
//! both keys, so the Kafka entries written before this module was shared stay readable.
//!
//! Files: the active file is `<dir>/<name>.ndjson` (`kafka-dlq`, `elasticsearch-dlq`); when it
//! exceeds `rotate_every` it is renamed to `.1` (older ones shift up, beyond `number_of_files`
//! they are deleted). Each write is fsynced before the events are acked, so a crash cannot lose
//! an event that was counted as dead-lettered.
//!
//! Locking: `oxibeat dlq replay` rewrites these files while an agent may be writing them: both
//! sides take an exclusive `flock` on `<dir>/<name>.lock`, and the writer opens the file for
//! each write (writes are rare), so it never appends to a file replay replaced.
//!
//! Replay (`replay_files`): first claims every dead-letter file under the directory lock,
//! renaming them to `<name>.replaying.<n>.ndjson` in age order (a running agent then starts a
//! new active file). Then, one claimed file at a time, the output's sender sends every entry,
//! what failed is appended again, with the new error, to the active file, and the claimed file
//! is deleted. A crash in between leaves claimed files, which the next replay takes first:
//! entries are delivered at least once and none is lost. One replay runs at a time
//! (`<name>.replay.lock`). Lines that are not valid dead-letter entries (a torn write) are kept
//! byte for byte and counted.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::units::ByteSize;
use crate::event::{format_timestamp, now_nanos, write_json_str};

/// `dead_letter` (an oxibeat option of the outputs that have a dead-letter file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Directory; default `<path.data>/<output>-dlq`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default = "DeadLetterConfig::default_size")]
    pub rotate_every: ByteSize,
    #[serde(default = "DeadLetterConfig::default_files")]
    pub number_of_files: usize,
}

impl DeadLetterConfig {
    fn default_size() -> ByteSize {
        ByteSize(100 * 1024 * 1024)
    }
    fn default_files() -> usize {
        7
    }

    /// `path`, else `<data>/<name>`.
    pub fn dir(&self, data: &Path, name: &str) -> PathBuf {
        self.path.clone().unwrap_or_else(|| data.join(name))
    }
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            path: None,
            rotate_every: Self::default_size(),
            number_of_files: Self::default_files(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("dead letters: cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dead letters: another `oxibeat dlq replay` is running on {0}")]
    ReplayRunning(String),
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> DlqError {
    DlqError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Where an event was meant to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    Topic(&'a str),
    Index(&'a str),
}

/// One rejected event.
pub struct Entry<'a> {
    pub destination: Destination<'a>,
    pub error: &'a str,
    /// The event as Beats JSON (what would have been the message or the document).
    pub event: &'a [u8],
}

/// A dead-letter directory of one output.
pub struct DeadLetter {
    dir: PathBuf,
    /// File stem: `kafka-dlq`, `elasticsearch-dlq`.
    name: &'static str,
    rotate_every: u64,
    number_of_files: usize,
}

/// An exclusive lock on a dead-letter directory, released when the file is closed on drop.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Wait for the lock `<dir>/<name>.lock` (the directory is created if missing).
    pub fn acquire(dir: &Path, name: &str) -> std::io::Result<DirLock> {
        fs::create_dir_all(dir)?;
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{name}.lock")))?;
        DirLock::wait(f)
    }

    /// For readers that must not change anything (`dlq show`): wait for the lock if the lock
    /// file exists, `None` if it does not (no writer has used the directory yet).
    pub fn acquire_existing(dir: &Path, name: &str) -> std::io::Result<Option<DirLock>> {
        match OpenOptions::new()
            .read(true)
            .open(dir.join(format!("{name}.lock")))
        {
            Ok(f) => DirLock::wait(f).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn wait(f: File) -> std::io::Result<DirLock> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; it is released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(DirLock { _file: f })
    }
}

fn active_name(name: &str) -> String {
    format!("{name}.ndjson")
}

/// The dead-letter files of `dir`, oldest first (`.N` … `.1`, then the active file).
pub fn files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let active = active_name(name);
    let mut rotated = numbered(dir, |n| {
        n.strip_prefix(&active)?.strip_prefix('.')?.parse().ok()
    });
    rotated.reverse();
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let active = dir.join(active);
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

impl DeadLetter {
    pub fn new(cfg: &DeadLetterConfig, dir: PathBuf, name: &'static str) -> Self {
        DeadLetter {
            dir,
            name,
            rotate_every: cfg.rotate_every.0.max(1024),
            number_of_files: cfg.number_of_files.max(1),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn active(&self) -> PathBuf {
        self.dir.join(active_name(self.name))
    }

    fn rotate(&self) -> std::io::Result<()> {
        let n = self.number_of_files;
        let active = active_name(self.name);
        let name = |i: usize| self.dir.join(format!("{active}.{i}"));
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
        let _lock = DirLock::acquire(&self.dir, self.name)?;
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
    let (key, dest) = match e.destination {
        Destination::Topic(t) => (&b",\"topic\":"[..], t),
        Destination::Index(i) => (&b",\"index\":"[..], i),
    };
    buf.extend_from_slice(key);
    write_json_str(dest, buf);
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

/// One parsed dead-letter line.
#[derive(Deserialize)]
pub struct Line<'a> {
    #[serde(rename = "@timestamp", default)]
    pub timestamp: String,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub error: String,
    #[serde(borrow)]
    pub event: &'a RawValue,
}

impl Line<'_> {
    /// The event JSON, or the text of a value that was not JSON.
    pub fn payload(&self) -> Vec<u8> {
        let raw = self.event.get();
        if raw.starts_with('"') {
            if let Ok(s) = serde_json::from_str::<String>(raw) {
                return s.into_bytes();
            }
        }
        raw.as_bytes().to_vec()
    }

    /// The recorded destination: index if the line has one, else the topic ("" if none).
    pub fn destination(&self) -> Destination<'_> {
        match (&self.index, &self.topic) {
            (Some(i), _) => Destination::Index(i),
            (None, t) => Destination::Topic(t.as_deref().unwrap_or("")),
        }
    }

    /// "topic NAME" / "index NAME", for reports.
    fn cause_key(&self) -> String {
        let (kind, name) = match self.destination() {
            Destination::Topic(t) => ("topic", t),
            Destination::Index(i) => ("index", i),
        };
        let name = if name.is_empty() { "(none)" } else { name };
        format!("{kind} {name}")
    }
}

/// The non-empty lines of a dead-letter file, as bytes (a torn line may not be UTF-8).
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

pub fn parse(raw: &[u8]) -> Option<Line<'_>> {
    serde_json::from_slice(raw).ok()
}

/// What `show` or `replay` found and did.
#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    /// Entries per ("topic NAME" | "index NAME", error).
    pub by_cause: BTreeMap<(String, String), usize>,
    pub replayed: usize,
    pub failed_again: usize,
    /// Lines that are not dead-letter entries, kept as they were.
    pub unreadable: usize,
    /// A sample error of the entries that failed again.
    pub sample_error: Option<String>,
}

impl Report {
    pub fn entries(&self) -> usize {
        self.by_cause.values().sum()
    }

    pub fn render(&self, dir: &Path, replay: bool) -> String {
        let mut out = format!(
            "dead-letter directory {}: {} file(s), {} entr{}, {} unreadable line(s)\n",
            dir.display(),
            self.files,
            self.entries(),
            if self.entries() == 1 { "y" } else { "ies" },
            self.unreadable
        );
        for ((dest, error), n) in &self.by_cause {
            out.push_str(&format!("  {n:>8}  {dest}: {error}\n"));
        }
        if replay {
            out.push_str(&format!(
                "replayed {} event(s); {} failed again and were kept in the dead-letter file",
                self.replayed, self.failed_again
            ));
            if let Some(e) = &self.sample_error {
                out.push_str(&format!(" (for example: {e})"));
            }
            out.push('\n');
        }
        out
    }
}

fn claimed_prefix(name: &str) -> String {
    format!("{name}.replaying.")
}

/// Files claimed by a replay (possibly an interrupted one), in order.
fn claimed_files(dir: &Path, name: &str) -> Vec<(u64, PathBuf)> {
    let prefix = claimed_prefix(name);
    numbered(dir, |n| {
        n.strip_prefix(&prefix)?
            .strip_suffix(".ndjson")?
            .parse()
            .ok()
    })
}

/// Rename every dead-letter file to a claimed name, after those an interrupted replay left.
fn claim_all(dir: &Path, name: &str) -> Result<Vec<PathBuf>, DlqError> {
    let _lock = DirLock::acquire(dir, name).map_err(|e| io_error("lock", dir, e))?;
    let mut claimed = claimed_files(dir, name);
    let first = claimed.last().map_or(0, |(n, _)| n + 1);
    let prefix = claimed_prefix(name);
    for (n, f) in (first..).zip(files(dir, name)) {
        let to = dir.join(format!("{prefix}{n}.ndjson"));
        fs::rename(&f, &to).map_err(|e| io_error("claim", &f, e))?;
        claimed.push((n, to));
    }
    Ok(claimed.into_iter().map(|(_, p)| p).collect())
}

/// Count the dead-letter entries of `dir` by destination and error, without changing anything.
pub fn show(dir: &Path, name: &str) -> Result<Report, DlqError> {
    let mut report = Report::default();
    if !dir.is_dir() {
        return Ok(report);
    }
    // Under the lock: no rotation or replay step moves a file while it is counted. Taken only
    // if a writer made the lock file: showing never creates anything.
    let _lock = DirLock::acquire_existing(dir, name).map_err(|e| io_error("lock", dir, e))?;
    let all: Vec<PathBuf> = claimed_files(dir, name)
        .into_iter()
        .map(|(_, p)| p)
        .chain(files(dir, name))
        .collect();
    for path in &all {
        let bytes = fs::read(path).map_err(|e| io_error("read", path, e))?;
        report.files += 1;
        for raw in lines(&bytes) {
            match parse(raw) {
                Some(l) => *report.by_cause.entry((l.cause_key(), l.error)).or_default() += 1,
                None => report.unreadable += 1,
            }
        }
    }
    Ok(report)
}

/// Sends the entries of one claimed file: returns, per entry in order, `None` when it was
/// delivered or `Some(error)` when it failed again.
pub trait Resend {
    fn resend(&mut self, entries: &[Line<'_>]) -> Vec<Option<String>>;
}

/// The replay loop shared by the outputs (see the module comment). The sender decides where
/// each entry goes and how; this keeps the claim/put-back/delete protocol in one place.
pub fn replay_files(dir: &Path, name: &str, sender: &mut dyn Resend) -> Result<Report, DlqError> {
    let mut report = Report::default();
    if !dir.is_dir() {
        return Ok(report);
    }
    let lock_path = dir.join(format!("{name}.replay.lock"));
    let Some(_replay_lock) = try_lock(&lock_path).map_err(|e| io_error("lock", &lock_path, e))?
    else {
        return Err(DlqError::ReplayRunning(dir.display().to_string()));
    };
    for claimed in claim_all(dir, name)? {
        report.files += 1;
        replay_file(dir, name, &claimed, sender, &mut report)?;
    }
    Ok(report)
}

fn replay_file(
    dir: &Path,
    name: &str,
    claimed: &Path,
    sender: &mut dyn Resend,
    report: &mut Report,
) -> Result<(), DlqError> {
    let bytes = fs::read(claimed).map_err(|e| io_error("read", claimed, e))?;
    let raws: Vec<&[u8]> = lines(&bytes).collect();
    // (index into raws, parsed) for the readable lines; unreadable ones are kept as they are.
    let mut readable: Vec<Line<'_>> = Vec::new();
    let mut slots: Vec<Option<usize>> = Vec::with_capacity(raws.len());
    for raw in &raws {
        match parse(raw) {
            Some(l) => {
                *report
                    .by_cause
                    .entry((l.cause_key(), l.error.clone()))
                    .or_default() += 1;
                slots.push(Some(readable.len()));
                readable.push(l);
            }
            None => {
                report.unreadable += 1;
                slots.push(None);
            }
        }
    }
    let mut results = if readable.is_empty() {
        Vec::new()
    } else {
        sender.resend(&readable)
    };
    // A sender that answered for fewer entries than it was given failed the rest.
    results.resize(readable.len(), Some("no result from the replay".into()));
    let mut keep = Vec::new();
    let ts_now = format_timestamp(now_nanos());
    for (i, slot) in slots.iter().enumerate() {
        let Some(j) = slot else {
            keep.extend_from_slice(raws[i]);
            keep.push(b'\n');
            continue;
        };
        let line = &readable[*j];
        let Some(why) = &results[*j] else {
            report.replayed += 1;
            continue;
        };
        report.failed_again += 1;
        report.sample_error.get_or_insert_with(|| why.clone());
        let payload = line.payload();
        let ts = if line.timestamp.is_empty() {
            &ts_now
        } else {
            &line.timestamp
        };
        let entry = Entry {
            destination: line.destination(),
            error: why,
            event: &payload,
        };
        write_line(&mut keep, ts, &entry);
    }
    let _lock = DirLock::acquire(dir, name).map_err(|e| io_error("lock", dir, e))?;
    if !keep.is_empty() {
        let active = dir.join(active_name(name));
        append_synced(&active, &keep).map_err(|e| io_error("append to", &active, e))?;
    }
    fs::remove_file(claimed).map_err(|e| io_error("remove", claimed, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "kafka-dlq";
    const FILE_NAME: &str = "kafka-dlq.ndjson";

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
        let names: Vec<String> = files(dir.path(), NAME)
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
        assert!(files(&dir.path().join("missing"), NAME).is_empty());
    }

    #[test]
    fn writes_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DeadLetterConfig {
            path: None,
            rotate_every: ByteSize(1024),
            number_of_files: 2,
        };
        let mut d = DeadLetter::new(&cfg, dir.path().join("dlq"), NAME);
        let big = format!("{{\"message\":\"{}\"}}", "x".repeat(600));
        for _ in 0..6 {
            d.write(&[Entry {
                destination: Destination::Topic("t"),
                error: "Broker: Message size too large",
                event: big.as_bytes(),
            }])
            .unwrap();
        }
        let d = dir.path().join("dlq");
        let active = fs::read_to_string(d.join(FILE_NAME)).unwrap();
        let v: serde_json::Value = serde_json::from_str(active.lines().next().unwrap()).unwrap();
        assert_eq!(v["topic"], "t");
        assert_eq!(v["event"]["message"].as_str().unwrap().len(), 600);
        assert!(d.join(format!("{FILE_NAME}.1")).exists());
        assert!(d.join(format!("{FILE_NAME}.2")).exists());
        assert!(!d.join(format!("{FILE_NAME}.3")).exists());
    }

    /// A line as the Kafka output wrote it before the file format was shared.
    const KAFKA_LINE: &str = r#"{"@timestamp":"2026-11-20T10:00:00.000Z","topic":"logs","error":"Broker: Message size too large","event":{"message":"a"}}"#;

    #[test]
    fn show_changes_nothing_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let line =
            br#"{"@timestamp":"2026-01-01T00:00:00.000Z","topic":"t","error":"e","event":{}}"#;
        std::fs::write(dir.path().join(FILE_NAME), [&line[..], b"\n"].concat()).unwrap();
        let names = || {
            let mut v: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = names();
        assert_eq!(show(dir.path(), NAME).unwrap().entries(), 1);
        assert_eq!(
            names(),
            before,
            "dlq show must not create files (a lock file)"
        );
    }

    #[test]
    fn show_counts_entries_by_cause_and_unreadable_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DeadLetter::new(&DeadLetterConfig::default(), dir.path().to_path_buf(), NAME);
        let ev = br#"{"message":"a"}"#;
        d.write(&[
            Entry {
                destination: Destination::Topic("logs"),
                error: "too large",
                event: ev,
            },
            Entry {
                destination: Destination::Topic("logs"),
                error: "too large",
                event: ev,
            },
            Entry {
                destination: Destination::Topic(""),
                error: "cannot select the topic",
                event: b"not json",
            },
        ])
        .unwrap();
        let active = dir.path().join(FILE_NAME);
        append_synced(&active, format!("{KAFKA_LINE}\n").as_bytes()).unwrap();
        append_synced(&active, b"{\"torn\":").unwrap();
        let r = show(dir.path(), NAME).unwrap();
        assert_eq!(r.files, 1);
        assert_eq!(r.entries(), 4);
        assert_eq!(r.unreadable, 1);
        assert_eq!(
            r.by_cause[&("topic logs".to_string(), "too large".to_string())],
            2
        );
        assert_eq!(
            r.by_cause[&(
                "topic logs".to_string(),
                "Broker: Message size too large".to_string()
            )],
            1,
            "an entry of the earlier Kafka-only format is read"
        );
        let text = r.render(dir.path(), false);
        assert!(
            text.contains("topic (none): cannot select the topic"),
            "{text}"
        );
    }

    #[test]
    fn index_entries_round_trip() {
        let mut buf = Vec::new();
        write_line(
            &mut buf,
            "2026-11-25T10:00:00.000Z",
            &Entry {
                destination: Destination::Index("logs-oxibeat.generic-default"),
                error: "400 mapper_parsing_exception",
                event: br#"{"a":1}"#,
            },
        );
        let line = parse(buf.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(
            line.destination(),
            Destination::Index("logs-oxibeat.generic-default")
        );
        assert_eq!(line.payload(), br#"{"a":1}"#);
    }

    struct FailOdd(usize);
    impl Resend for FailOdd {
        fn resend(&mut self, entries: &[Line<'_>]) -> Vec<Option<String>> {
            entries
                .iter()
                .map(|_| {
                    self.0 += 1;
                    (self.0 % 2 == 0).then(|| "still broken".to_string())
                })
                .collect()
        }
    }

    #[test]
    fn replay_keeps_failures_and_unreadable_lines_and_refuses_a_second_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DeadLetter::new(&DeadLetterConfig::default(), dir.path().to_path_buf(), NAME);
        let evs: Vec<String> = (0..4).map(|i| format!("{{\"n\":{i}}}")).collect();
        let entries: Vec<Entry<'_>> = evs
            .iter()
            .map(|e| Entry {
                destination: Destination::Topic("t"),
                error: "e",
                event: e.as_bytes(),
            })
            .collect();
        d.write(&entries).unwrap();
        append_synced(&dir.path().join(FILE_NAME), b"\xff torn\n").unwrap();
        let r = replay_files(dir.path(), NAME, &mut FailOdd(0)).unwrap();
        assert_eq!((r.replayed, r.failed_again, r.unreadable), (2, 2, 1));
        let left = fs::read(dir.path().join(FILE_NAME)).unwrap();
        let left: Vec<&[u8]> = lines(&left).collect();
        assert_eq!(left.len(), 3);
        assert_eq!(left[2], b"\xff torn", "kept in place, byte for byte");
        let l = parse(left[0]).unwrap();
        assert_eq!(l.error, "still broken");
        assert_eq!(l.payload(), br#"{"n":1}"#);
        assert!(claimed_files(dir.path(), NAME).is_empty());

        let held = try_lock(&dir.path().join(format!("{NAME}.replay.lock")))
            .unwrap()
            .expect("free");
        let err = replay_files(dir.path(), NAME, &mut FailOdd(0)).unwrap_err();
        assert!(matches!(err, DlqError::ReplayRunning(_)), "{err}");
        drop(held);
        let missing = dir.path().join("none");
        let r = replay_files(&missing, NAME, &mut FailOdd(0)).unwrap();
        assert_eq!((r.files, r.replayed), (0, 0));
        assert_eq!(show(&missing, NAME).unwrap().files, 0);
        assert!(!missing.exists());
    }

    #[test]
    fn lines_keep_invalid_utf8_as_unreadable_bytes() {
        let bytes = b"{\"topic\":\"t\",\"error\":\"e\",\"event\":{}}\n\xff\xfe torn\n\n";
        let all: Vec<&[u8]> = lines(bytes).collect();
        assert_eq!(all.len(), 2);
        assert!(parse(all[0]).is_some());
        assert!(parse(all[1]).is_none());
        assert_eq!(all[1], b"\xff\xfe torn");
    }

    #[test]
    fn a_payload_that_was_not_json_is_replayed_as_its_text() {
        let line: Line<'_> =
            serde_json::from_str(r#"{"topic":"t","error":"e","event":"plain \"text\""}"#).unwrap();
        assert_eq!(line.payload(), b"plain \"text\"");
        let line: Line<'_> =
            serde_json::from_str(r#"{"topic":"t","error":"e","event":{"a":1}}"#).unwrap();
        assert_eq!(line.payload(), br#"{"a":1}"#);
    }
}
