//! The registry: one cursor per file, advanced only by output acks, persisted atomically.
//!
//! On-disk format is Filebeat's memlog store (`<path.data>/registry/filebeat/`): `meta.json`,
//! an append-only `log.json` of `{"op":"set","id":N}` + `{"k":..,"v":..}` line pairs, and a
//! checkpoint `<id>.json` named by `active.dat`. Keys and values match filestream's
//! (`filestream::<input id>::<identity>::<id>`), so a Filebeat registry can be read and ours
//! looks familiar. Durability: log appends are fsynced; a torn last line is ignored on load;
//! checkpoints are written to a temp file, fsynced and renamed.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::monitoring::Metrics;
use crate::pipeline::ack::AckTracker;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry {path}: {message}; move the directory away to start fresh (files are then re-read)")]
    Corrupt { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An entry's cursor: a file's `{"offset": N}`, kept as the number (it is in every entry of
/// thousands of files), or another input's JSON as read (the journald input's checkpoint
/// `{"version":1,"position":"s=…",…}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Offset(u64),
    Json(Box<serde_json::Value>),
}

impl Cursor {
    fn from_value(v: serde_json::Value) -> Cursor {
        if let Some(o) = v.as_object() {
            if o.len() == 1 {
                if let Some(n) = o.get("offset").and_then(|n| n.as_u64()) {
                    return Cursor::Offset(n);
                }
            }
        }
        Cursor::Json(Box::new(v))
    }

    pub fn into_value(self) -> serde_json::Value {
        match self {
            Cursor::Offset(n) => serde_json::json!({ "offset": n }),
            Cursor::Json(v) => *v,
        }
    }

    pub fn offset(&self) -> Option<u64> {
        match self {
            Cursor::Offset(n) => Some(*n),
            Cursor::Json(v) => v.get("offset")?.as_u64(),
        }
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Cursor::Offset(n) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("offset", n)?;
                m.end()
            }
            Cursor::Json(v) => v.serialize(s),
        }
    }
}

/// An entry's `updated`: the `[ext, sec]` pair Beats write, or whatever else was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    Missing,
    Pair(u64, u64),
    Json(Box<serde_json::Value>),
}

impl Updated {
    fn from_value(v: Option<serde_json::Value>) -> Updated {
        match v {
            None | Some(serde_json::Value::Null) => Updated::Missing,
            Some(v) => match v.as_array().map(|a| a.as_slice()) {
                Some([a, b]) if a.is_u64() && b.is_u64() => {
                    Updated::Pair(a.as_u64().unwrap_or(0), b.as_u64().unwrap_or(0))
                }
                _ => Updated::Json(Box::new(v)),
            },
        }
    }

    /// `updated` set to `now_nanos`, encoded as Beats do: `[(0xFFFF << 32) | nanos, unix
    /// seconds]` (UTC).
    pub fn at(now_nanos: i64) -> Updated {
        let secs = now_nanos.div_euclid(1_000_000_000) as u64;
        let nanos = now_nanos.rem_euclid(1_000_000_000) as u64;
        Updated::Pair((0xFFFFu64 << 32) | nanos, secs)
    }
}

impl Serialize for Updated {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Updated::Missing => s.serialize_none(),
            Updated::Pair(ext, secs) => [ext, secs].serialize(s),
            Updated::Json(v) => v.serialize(s),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryMeta {
    pub source: String,
    /// `native`, `path` or `fingerprint`: borrowed when oxibeat writes it (one per file).
    pub identifier_name: std::borrow::Cow<'static, str>,
    /// Bytes hashed for a fingerprint key shorter than the full window (small files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_len: Option<u64>,
}

/// One registry value, as Filebeat's filestream writes it. Values of other inputs (the
/// legacy log input's `offset`, `source`, `FileStateOS`, ...) are kept whole in `other`, so a
/// Filebeat registry passes through oxibeat unchanged until a `take_over` continues them.
/// Small on purpose: the registry holds one per file, and a node may have tens of thousands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Nanoseconds until the entry may be removed; -1 = never.
    pub ttl: i64,
    /// `[ext, sec]` time encoding of go-structform (UTC).
    pub updated: Updated,
    /// The input's position: `{"offset": N}` for files, the journald input's checkpoint
    /// (`{"version":1,"position":"s=…",…}`) for journals.
    pub cursor: Option<Cursor>,
    pub meta: Option<EntryMeta>,
    /// Every other key of the value, as read (None: there are none).
    pub other: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ttl", &self.ttl)?;
        if self.updated != Updated::Missing {
            m.serialize_entry("updated", &self.updated)?;
        }
        if self.other.is_none() || self.cursor.is_some() {
            m.serialize_entry("cursor", &self.cursor)?;
        }
        if let Some(meta) = &self.meta {
            m.serialize_entry("meta", meta)?;
        }
        for (k, v) in self.other.iter().flat_map(|o| o.iter()) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut other = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let ttl = other
            .remove("ttl")
            .and_then(|v| v.as_i64())
            .unwrap_or_else(never);
        let updated = Updated::from_value(other.remove("updated"));
        let cursor = other
            .remove("cursor")
            .filter(|v| !v.is_null())
            .map(Cursor::from_value);
        // A `meta` that is not filestream's (a container input's `{"stream": ..}`) stays
        // as it was, among the other keys.
        let meta = match other.remove("meta") {
            Some(v) => match serde_json::from_value::<EntryMeta>(v.clone()) {
                Ok(m) => Some(m),
                Err(_) => {
                    if !v.is_null() {
                        other.insert("meta".into(), v);
                    }
                    None
                }
            },
            None => None,
        };
        Ok(Entry {
            ttl,
            updated,
            cursor,
            meta,
            other: (!other.is_empty()).then(|| Box::new(other)),
        })
    }
}

/// A state of Filebeat's legacy `log` input (`filebeat::logs::<identifier>::<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInputState {
    pub source: String,
    pub offset: u64,
    pub identifier_name: String,
    pub ttl: i64,
}

impl Entry {
    /// The entry as a log input state, if it is one.
    pub fn log_input_state(&self) -> Option<LogInputState> {
        let other = self.other.as_ref()?;
        Some(LogInputState {
            source: other.get("source")?.as_str()?.to_string(),
            offset: other.get("offset")?.as_u64()?,
            identifier_name: other
                .get("identifier_name")
                .and_then(|v| v.as_str())
                .unwrap_or("native")
                .to_string(),
            ttl: self.ttl,
        })
    }
}

fn never() -> i64 {
    -1
}

impl Entry {
    /// A file's entry at `offset`, updated now, kept until removed.
    fn file(offset: u64, meta: EntryMeta) -> Entry {
        Entry {
            ttl: -1,
            updated: Updated::at(crate::event::now_nanos()),
            cursor: Some(Cursor::Offset(offset)),
            meta: Some(meta),
            other: None,
        }
    }

    pub fn offset(&self) -> Option<u64> {
        self.cursor.as_ref()?.offset()
    }
}

/// A registry key, shared: the registry keeps one copy of each key for its entries and its
/// live trackers, and hands it to the input that follows the file (`track`), so a file's key
/// is in memory once however many tables hold it.
pub type Key = Arc<str>;

struct Store {
    entries: HashMap<Key, Entry>,
    /// Files being read now: their cursor comes from the tracker.
    live: HashMap<Key, Arc<AckTracker>>,
    next_id: u64,
    log: File,
    log_bytes: u64,
    checkpoint_file: Option<PathBuf>,
    /// Encoded operations not yet written: every change reaches disk at the next flush, in
    /// one append and one fsync (thousands of files found at startup cost one sync, not one
    /// each).
    pending: Vec<u8>,
    pending_ops: usize,
    /// A write failed: what is on disk may lack changes, so the next flushes write the whole
    /// registry (a checkpoint) until one succeeds, instead of appending to the log.
    snapshot_needed: bool,
}

impl Store {
    /// The shared copy of `k` if the registry holds it, else a new one.
    fn key(&self, k: &str) -> Key {
        self.entries
            .get_key_value(k)
            .map(|(k, _)| k.clone())
            .or_else(|| self.live.get_key_value(k).map(|(k, _)| k.clone()))
            .unwrap_or_else(|| Key::from(k))
    }
}

pub struct Registry {
    dir: PathBuf,
    checkpoint_size: u64,
    store: Mutex<Store>,
    metrics: Arc<Metrics>,
    /// Set by a tracker followed here when its cursor moves (`AckTracker::notify_to`): a
    /// flush looks at the trackers only when one did.
    moved: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Deserialize)]
struct OpLine {
    op: String,
    id: u64,
}

#[derive(Deserialize)]
struct KvLine {
    k: String,
    #[serde(default)]
    v: Option<Entry>,
}

impl Registry {
    /// Open (or create) the registry under `<data>/registry/filebeat`.
    pub fn open(
        data: &Path,
        checkpoint_size: u64,
        metrics: Arc<Metrics>,
    ) -> Result<Registry, RegistryError> {
        let dir = data.join("registry").join("filebeat");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let meta = dir.join("meta.json");
        if !meta.exists() {
            write_atomic(&meta, b"{\"version\":\"1\"}\n")?;
        }
        for stale in ["checkpoint.new", "active.dat.new"] {
            let _ = fs::remove_file(dir.join(stale));
        }
        let (entries, next_id, checkpoint_file) = load(&dir)?;
        let log_path = dir.join("log.json");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let log_bytes = log.metadata().map(|m| m.len()).unwrap_or(0);
        metrics
            .gauges
            .registrar_states
            .store(entries.len() as i64, Ordering::Relaxed);
        let reg = Registry {
            dir,
            checkpoint_size,
            store: Mutex::new(Store {
                entries,
                live: HashMap::new(),
                next_id,
                log,
                log_bytes,
                checkpoint_file,
                pending: Vec::new(),
                pending_ops: 0,
                snapshot_needed: false,
            }),
            metrics,
            moved: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        Ok(reg)
    }

    /// The entries of the registry under `<data>`, sorted by key, without creating, locking or
    /// changing anything: for `oxibeat registry`, also beside a running agent. A registry that
    /// does not exist yet has no entries.
    pub fn read_only(data: &Path) -> Result<Vec<(String, Entry)>, RegistryError> {
        let dir = data.join("registry").join("filebeat");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut attempt = 0;
        let (entries, _, _) = loop {
            match load(&dir) {
                // A running agent replaced the checkpoint between reading active.dat and it.
                Err(RegistryError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < 5 =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let mut v: Vec<_> = entries
            .into_iter()
            .map(|(k, e)| (k.to_string(), e))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.lock().entries.get(key).cloned()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// Keys starting with `prefix` (e.g. every entry of one input).
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<(String, Entry)> {
        self.lock()
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    pub fn all(&self) -> Vec<(String, Entry)> {
        let mut v: Vec<_> = self
            .lock()
            .entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Start following a file: its cursor is taken from `tracker` at every flush.
    /// Writes the entry at once if it is new or its metadata changed. Returns the registry's
    /// copy of the key, for the caller to hold instead of its own.
    pub fn track(&self, key: &str, tracker: Arc<AckTracker>, meta: EntryMeta) -> Key {
        let mut s = self.lock();
        let key = s.key(key);
        let offset = tracker.acked_offset();
        self.follow(&tracker);
        s.live.insert(key.clone(), tracker);
        let changed = match s.entries.get(&key) {
            Some(e) => e.meta.as_ref() != Some(&meta) || e.offset() != Some(offset),
            None => true,
        };
        if changed {
            s.entries.insert(key.clone(), Entry::file(offset, meta));
            self.append_set(&mut s, std::slice::from_ref(&key));
        }
        key
    }

    /// States of Filebeat's log input (`filebeat::logs::...`) that a take-over may continue.
    pub fn log_input_states(&self) -> Vec<(String, LogInputState)> {
        let mut v: Vec<_> = self
            .lock()
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with("filebeat::logs::"))
            .filter_map(|(k, e)| Some((k.to_string(), e.log_input_state()?)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Filebeat's take-over: `new` continues at `offset` (the state of `old`, another input's
    /// entry for the same file). A filestream input's `old` is removed; a log input's `old`
    /// stays with ttl -2 (the registrar's mark of a state no input manages), as in Filebeat's
    /// take-over test data (filebeat/tests/integration/testdata/take-over). Does nothing if
    /// `new` exists already, so a state is never taken over twice.
    pub fn take_over(&self, old: &str, new: &str, offset: u64, meta: EntryMeta) -> bool {
        let mut s = self.lock();
        if s.entries.contains_key(new) || !s.entries.contains_key(old) {
            return false;
        }
        let new = Key::from(new);
        s.entries.insert(new.clone(), Entry::file(offset, meta));
        if let Some(t) = s.live.remove(old) {
            t.retired.store(true, Ordering::Relaxed);
        }
        self.append_set(&mut s, &[new]);
        if old.starts_with("filebeat::logs::") {
            if let Some(e) = s.entries.get_mut(old) {
                e.ttl = -2;
            }
            let old = s.key(old);
            self.append_set(&mut s, &[old]);
        } else {
            s.entries.remove(old);
            self.append_remove(&mut s, old);
        }
        true
    }

    /// The tracker of `key` if a reader follows it, or did until it stopped with events
    /// still in flight (an input stopped by a reload): its successor takes it over, so the
    /// late acks still move the cursor and nothing is read twice.
    pub fn live_tracker(&self, key: &str) -> Option<Arc<AckTracker>> {
        self.lock()
            .live
            .get(key)
            .filter(|t| !t.retired.load(Ordering::Relaxed))
            .cloned()
    }

    /// Start following a source positioned by an opaque cursor (a journal): its entry is
    /// written from `tracker`'s acked label at every flush, once there is one.
    pub fn track_labelled(&self, key: &str, tracker: Arc<AckTracker>) {
        let mut s = self.lock();
        let key = s.key(key);
        self.follow(&tracker);
        s.live.insert(key, tracker);
    }

    /// Have `tracker` say when its cursor moves; look at every tracker at the next flush.
    fn follow(&self, tracker: &AckTracker) {
        tracker.notify_to(&self.moved);
        self.moved.store(true, Ordering::Release);
    }

    /// Move an entry to a new key (a small file's fingerprint grew with the file). Returns
    /// the registry's copy of the new key.
    pub fn rekey(&self, old: &str, new: &str, meta: EntryMeta) -> Key {
        let mut s = self.lock();
        let new = s.key(new);
        if let Some(t) = s.live.remove(old) {
            s.live.insert(new.clone(), t);
        }
        if let Some(mut e) = s.entries.remove(old) {
            e.meta = Some(meta);
            s.entries.insert(new.clone(), e);
            self.append_remove(&mut s, old);
            self.append_set(&mut s, std::slice::from_ref(&new));
        }
        new
    }

    /// Forget a file (clean_removed / clean_inactive).
    pub fn remove(&self, key: &str) {
        let mut s = self.lock();
        if let Some(t) = s.live.remove(key) {
            t.retired.store(true, Ordering::Relaxed);
        }
        if s.entries.remove(key).is_some() {
            self.append_remove(&mut s, key);
        }
    }

    /// Persist every cursor that moved since the last flush. Called every `registry.flush`.
    pub fn flush(&self) {
        let mut s = self.lock();
        let now = crate::event::now_nanos();
        let mut changed = Vec::new();
        let Store { live, entries, .. } = &mut *s;
        // Runs every second over every file followed, unless no cursor moved (idle files);
        // no allocation unless a cursor moved.
        let moved = self.moved.swap(false, Ordering::AcqRel);
        for (key, t) in live.iter().filter(|_| moved) {
            if !t.take_dirty() {
                continue;
            }
            if t.is_labelled() {
                let Some(label) = t.acked_label() else {
                    continue;
                };
                let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                    ttl: -1,
                    updated: Updated::Missing,
                    cursor: None,
                    meta: None,
                    other: None,
                });
                let cursor = Cursor::from_value((*label).clone());
                if entry.cursor.as_ref() != Some(&cursor) {
                    entry.cursor = Some(cursor);
                    entry.updated = Updated::at(now);
                    changed.push(key.clone());
                }
                continue;
            }
            let offset = t.acked_offset();
            if let Some(e) = entries.get_mut(key) {
                if e.offset() != Some(offset) {
                    // In place: this runs for every file read. A cursor with more than the
                    // offset (Filebeat's `{"eof":false,"offset":N}`) keeps its other keys.
                    match &mut e.cursor {
                        Some(Cursor::Json(v)) if v.get("offset").is_some() => {
                            v["offset"] = offset.into();
                        }
                        c => *c = Some(Cursor::Offset(offset)),
                    }
                    e.updated = Updated::at(now);
                    changed.push(key.clone());
                }
            }
        }
        if !changed.is_empty() {
            self.append_set(&mut s, &changed);
        }
        if s.snapshot_needed {
            // The next checkpoint that works holds every entry: what is pending is in it.
            s.pending.clear();
            s.pending_ops = 0;
            self.checkpoint_locked(&mut s);
            return;
        }
        if !s.pending.is_empty() {
            let buf = std::mem::take(&mut s.pending);
            let ops = std::mem::take(&mut s.pending_ops);
            self.write_log(&mut s, &buf, ops);
        }
        if s.log_bytes > self.checkpoint_size {
            self.checkpoint_locked(&mut s);
        }
    }

    /// Flush, then compact everything into a checkpoint (shutdown).
    pub fn close(&self) {
        self.flush();
        let mut s = self.lock();
        self.checkpoint_locked(&mut s);
    }

    /// Queue `set` operations for `keys` (written at the next flush).
    fn append_set(&self, s: &mut Store, keys: &[Key]) {
        #[derive(Serialize)]
        struct Set<'a> {
            k: &'a str,
            v: &'a Entry,
        }
        for k in keys {
            let Some(e) = s.entries.get(k) else { continue };
            let line = Set { k, v: e };
            let id = s.next_id;
            s.next_id += 1;
            s.pending
                .extend_from_slice(format!("{{\"op\":\"set\",\"id\":{id}}}\n").as_bytes());
            let _ = serde_json::to_writer(&mut s.pending, &line);
            s.pending.push(b'\n');
            s.pending_ops += 1;
        }
    }

    /// Queue a `remove` operation (written at the next flush).
    fn append_remove(&self, s: &mut Store, key: &str) {
        let id = s.next_id;
        s.next_id += 1;
        s.pending
            .extend_from_slice(format!("{{\"op\":\"remove\",\"id\":{id}}}\n").as_bytes());
        let _ = serde_json::to_writer(&mut s.pending, &serde_json::json!({ "k": key }));
        s.pending.push(b'\n');
        s.pending_ops += 1;
    }

    fn write_log(&self, s: &mut Store, buf: &[u8], updates: usize) {
        let m = &self.metrics;
        m.gauges
            .registrar_states
            .store(s.entries.len() as i64, Ordering::Relaxed);
        let res = s.log.write_all(buf).and_then(|_| s.log.sync_data());
        match res {
            Ok(()) => {
                s.log_bytes += buf.len() as u64;
                Metrics::add(&m.counters.registrar_updates, updates as u64);
                Metrics::add(&m.counters.registrar_writes, 1);
            }
            Err(e) => {
                Metrics::add(&m.counters.registrar_write_fails, 1);
                self.report_failure(s, &format!("failed to write the registry log: {e}"));
                // Cut a torn tail so later appends are not glued onto it.
                let _ = s.log.set_len(s.log_bytes);
                // Those changes are not on disk: write everything as a checkpoint, now and at
                // every flush until it works.
                s.snapshot_needed = true;
                self.checkpoint_locked(s);
            }
        }
    }

    /// Log a failed write once per run of failures, and say so in `/stats`.
    fn report_failure(&self, s: &Store, what: &str) {
        let was = self
            .metrics
            .gauges
            .registrar_failing
            .swap(1, Ordering::Relaxed);
        if was == 0 || !s.snapshot_needed {
            tracing::error!(dir = %self.dir.display(), "{what}; cursors are kept in memory and the whole registry is written again at every flush until it works (registrar.persistence.failing = 1 in /stats)");
        }
    }

    /// Write all entries to `<id>.json` atomically, point `active.dat` at it, reset the log.
    /// Returns whether it worked; if not, what was on disk stays as it was (the old
    /// checkpoint and log), temp files are removed, and the next flush tries again.
    fn checkpoint_locked(&self, s: &mut Store) -> bool {
        let id = s.next_id;
        s.next_id += 1;
        let mut body = b"[".to_vec();
        let mut keys: Vec<&Key> = s.entries.keys().collect();
        keys.sort();
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                body.extend_from_slice(b",\n");
            }
            let mut v = serde_json::to_value(&s.entries[*k]).unwrap_or_default();
            if let serde_json::Value::Object(o) = &mut v {
                o.insert("_key".into(), serde_json::Value::String(k.to_string()));
            }
            let _ = serde_json::to_writer(&mut body, &v);
        }
        body.extend_from_slice(b"\n]");
        let cp = self.dir.join(format!("{id}.json"));
        let tmp = self.dir.join("checkpoint.new");
        let result = (|| -> Result<(), RegistryError> {
            write_synced(&tmp, &body)?;
            fs::rename(&tmp, &cp).map_err(io_err(&cp))?;
            if let Err(e) = write_atomic(
                &self.dir.join("active.dat"),
                cp.display().to_string().as_bytes(),
            ) {
                // active.dat still names the previous checkpoint, which is still there.
                let _ = fs::remove_file(&cp);
                return Err(e);
            }
            let log_path = self.dir.join("log.json");
            let log = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&log_path)
                .map_err(io_err(&log_path))?;
            drop(log);
            s.log = OpenOptions::new()
                .append(true)
                .open(&log_path)
                .map_err(io_err(&log_path))?;
            s.log_bytes = 0;
            Ok(())
        })();
        match result {
            Ok(()) => {
                if let Some(old) = s.checkpoint_file.replace(cp.clone()) {
                    // Only this registry's own files (never one named from elsewhere).
                    if old != cp && old.parent() == Some(self.dir.as_path()) {
                        let _ = fs::remove_file(old);
                    }
                }
                Metrics::add(&self.metrics.counters.registrar_writes, 1);
                if self
                    .metrics
                    .gauges
                    .registrar_failing
                    .swap(0, Ordering::Relaxed)
                    != 0
                {
                    tracing::info!(dir = %self.dir.display(), states = s.entries.len(), "the registry is written again: every cursor is on disk");
                }
                s.snapshot_needed = false;
                true
            }
            Err(e) => {
                // A partial temp file would keep taking the space that is short.
                let _ = fs::remove_file(&tmp);
                let _ = fs::remove_file(self.dir.join("active.dat.new"));
                Metrics::add(&self.metrics.counters.registrar_write_fails, 1);
                self.report_failure(s, &format!("failed to write a registry checkpoint: {e}"));
                s.snapshot_needed = true;
                false
            }
        }
    }
}

/// `s` with control characters escaped (`\n`, `\t`, `\x1b`, ...) and `\` doubled, for
/// printing file names (which may hold any byte but `/` and NUL) on a terminal.
pub fn escape_for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A checkpoint this large is not ours (it would describe millions of files).
const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;
/// A log line this long is not ours either: the replay stops there, as at a torn line.
const MAX_LOG_LINE: u64 = 64 << 20;

/// A registry file: `None` if it does not exist; an error if it is not a regular file (an
/// `active.dat` naming `/dev/zero`) or bigger than `limit`.
fn read_state(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, RegistryError> {
    match crate::bounded::read(path, limit) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => Ok(None),
        Err(e) => Err(state_error(path, e)),
    }
}

fn state_error(path: &Path, e: crate::bounded::BoundedReadError) -> RegistryError {
    match e {
        crate::bounded::BoundedReadError::Io { source, .. } => RegistryError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => RegistryError::Corrupt {
            path: path.to_path_buf(),
            message: other.reason(),
        },
    }
}

/// `read_state` for the log, read line by line.
fn open_state(path: &Path) -> Result<Option<File>, RegistryError> {
    match crate::bounded::open_regular(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => Ok(None),
        Err(e) => Err(state_error(path, e)),
    }
}

/// The next line of the log (without its newline), at most `MAX_LOG_LINE` bytes.
fn bounded_line(r: &mut BufReader<File>) -> Option<std::io::Result<String>> {
    use std::io::Read;
    let mut buf = Vec::new();
    match r.by_ref().take(MAX_LOG_LINE).read_until(b'\n', &mut buf) {
        Ok(0) => None,
        Ok(_) => {
            if buf.last() == Some(&b'\n') {
                buf.pop();
            } else if buf.len() as u64 >= MAX_LOG_LINE {
                return Some(Err(std::io::Error::other("registry log line too long")));
            }
            Some(String::from_utf8(buf).map_err(std::io::Error::other))
        }
        Err(e) => Some(Err(e)),
    }
}

/// Read the checkpoint named by `active.dat`, then replay `log.json` over it. Changes nothing
/// on disk. Returns the entries, the next operation id and the checkpoint file.
type Loaded = (HashMap<Key, Entry>, u64, Option<PathBuf>);

fn load(dir: &Path) -> Result<Loaded, RegistryError> {
    let mut entries = HashMap::new();
    let mut txid = 0u64;
    let active = dir.join("active.dat");
    let mut checkpoint_file = None;
    if let Some(text) = read_state(&active, 4096)? {
        let text = String::from_utf8_lossy(&text);
        let cp = PathBuf::from(text.trim());
        let cp = if cp.is_absolute() { cp } else { dir.join(cp) };
        // active.dat names its checkpoint by an absolute path (Filebeat's too). In a data
        // directory copied or moved elsewhere (a backup restored, a Filebeat registry taken
        // over), that is the original's file: the copy reads the one beside active.dat, as
        // Filebeat does (memlog's `listDataFiles` looks in the store's own directory), so
        // it neither reads the original's state nor deletes its file at the next checkpoint.
        let cp = match cp.file_name() {
            Some(name) if cp.parent() != Some(dir) && dir.join(name).exists() => dir.join(name),
            _ => cp,
        };
        let body = read_state(&cp, MAX_CHECKPOINT_BYTES)?.ok_or_else(|| RegistryError::Io {
            path: cp.clone(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let items: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Corrupt {
                path: cp.clone(),
                message: format!("checkpoint is not a JSON array of entries: {e}"),
            })?;
        for mut item in items {
            let Some(serde_json::Value::String(key)) = item.remove("_key") else {
                continue;
            };
            if let Ok(e) = serde_json::from_value::<Entry>(serde_json::Value::Object(item)) {
                entries.insert(Key::from(key), e);
            }
        }
        txid = cp
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        checkpoint_file = Some(cp);
    }
    let log_path = dir.join("log.json");
    let mut next_id = txid + 1;
    if let Some(f) = open_state(&log_path)? {
        let mut reader = BufReader::new(f);
        let mut lines = std::iter::from_fn(|| bounded_line(&mut reader));
        // A torn or garbled pair at the end (crash during append) ends the replay.
        while let (Some(Ok(op)), Some(Ok(kv))) = (lines.next(), lines.next()) {
            let (Ok(op), Ok(kv)) = (
                serde_json::from_str::<OpLine>(&op),
                serde_json::from_str::<KvLine>(&kv),
            ) else {
                let rest = lines.count();
                if rest > 0 {
                    tracing::warn!(path = %log_path.display(), lines_ignored = rest + 2, "registry log has a damaged entry before its end; later entries are ignored");
                }
                break;
            };
            if op.id <= txid {
                continue;
            }
            next_id = op.id + 1;
            match (op.op.as_str(), kv.v) {
                ("set", Some(v)) => {
                    entries.insert(Key::from(kv.k), v);
                }
                ("remove", _) => {
                    entries.remove(kv.k.as_str());
                }
                _ => {}
            }
        }
    }
    Ok((entries, next_id, checkpoint_file))
}

fn write_synced(path: &Path, body: &[u8]) -> Result<(), RegistryError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(body).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Write via a temp file, fsync, rename, fsync the directory.
fn write_atomic(path: &Path, body: &[u8]) -> Result<(), RegistryError> {
    let tmp = path.with_extension("new");
    let tmp = if path.extension().is_some() {
        PathBuf::from(format!("{}.new", path.display()))
    } else {
        tmp
    };
    write_synced(&tmp, body)?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ack::ack_events;

    fn meta() -> EntryMeta {
        EntryMeta {
            source: "/tmp/a.log".into(),
            identifier_name: "fingerprint".into(),
            fingerprint_len: None,
        }
    }

    #[test]
    fn cursor_persists_across_reopen_and_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        {
            let r = Registry::open(dir.path(), 10 << 20, m.clone()).unwrap();
            let t = AckTracker::new(0);
            r.track("filestream::a::fingerprint::ab", t.clone(), meta());
            let c = t.next_cursor(42);
            r.flush();
            assert_eq!(
                r.get("filestream::a::fingerprint::ab").unwrap().offset(),
                Some(0)
            );
            ack_events([&c].into_iter());
            r.flush();
        }
        // Reopen from log.json only (no checkpoint yet).
        let r = Registry::open(dir.path(), 10 << 20, m.clone()).unwrap();
        assert_eq!(
            r.get("filestream::a::fingerprint::ab").unwrap().offset(),
            Some(42)
        );
        r.close();
        let r = Registry::open(dir.path(), 10 << 20, m).unwrap();
        assert_eq!(
            r.get("filestream::a::fingerprint::ab").unwrap().offset(),
            Some(42)
        );
        let log = fs::read_to_string(dir.path().join("registry/filebeat/log.json")).unwrap();
        assert!(log.is_empty(), "checkpoint truncates the log");
    }

    #[test]
    fn failed_writes_keep_every_state() {
        // Errors injected without a full disk (root ignores permissions): the log handle
        // cannot write, and a directory sits where the checkpoint's temp file goes.
        let dir = tempfile::tempdir().unwrap();
        let m = Metrics::new();
        let reg_dir = dir.path().join("registry/filebeat");
        let r = Registry::open(dir.path(), 10 << 20, m.clone()).unwrap();
        r.lock().log = File::open(reg_dir.join("log.json")).unwrap();
        fs::create_dir(reg_dir.join("checkpoint.new")).unwrap();
        let trackers: Vec<_> = (0..20u64)
            .map(|i| {
                let t = AckTracker::new(i * 10);
                r.track(&format!("filestream::a::native::{i}-1"), t.clone(), meta());
                t
            })
            .collect();
        r.flush();
        let failing = || m.gauges.registrar_failing.load(Ordering::Relaxed);
        assert_eq!(failing(), 1);
        // Two of them move on while writes fail.
        let c = trackers[0].next_cursor(5000);
        ack_events([&c].into_iter());
        r.flush();
        assert_eq!(failing(), 1);
        fs::remove_dir(reg_dir.join("checkpoint.new")).unwrap();
        r.flush();
        assert_eq!(failing(), 0, "written again");
        drop(r);
        let r = Registry::open(dir.path(), 10 << 20, Metrics::new()).unwrap();
        assert_eq!(
            r.all().len(),
            20,
            "every state, not only the ones that moved"
        );
        assert_eq!(
            r.get("filestream::a::native::0-1").unwrap().offset(),
            Some(5000)
        );
        assert_eq!(
            r.get("filestream::a::native::7-1").unwrap().offset(),
            Some(70)
        );
    }

    #[test]
    fn torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let reg_dir = dir.path().join("registry/filebeat");
        fs::create_dir_all(&reg_dir).unwrap();
        fs::write(
            reg_dir.join("log.json"),
            concat!(
                "{\"op\":\"set\",\"id\":1}\n",
                "{\"k\":\"filestream::x::native::1-2\",\"v\":{\"ttl\":-1,\"updated\":[0,0],\"cursor\":{\"offset\":7},\"meta\":{\"source\":\"/a\",\"identifier_name\":\"native\"}}}\n",
                "{\"op\":\"set\",\"id\":2}\n",
                "{\"k\":\"filestream::x::native::1-2\",\"v\":{\"ttl\":-1,\"cur"
            ),
        )
        .unwrap();
        let r = Registry::open(dir.path(), 10 << 20, Metrics::new()).unwrap();
        assert_eq!(
            r.get("filestream::x::native::1-2").unwrap().offset(),
            Some(7)
        );
    }

    #[test]
    fn foreign_entries_pass_through_a_checkpoint_unchanged() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/filebeat-reference/registry-log-input-native-a.log.json");
        let text = fs::read_to_string(&src).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; the Filebeat reference data must be beside the repo (../shared)",
                src.display()
            )
        });
        // The last value of the log input's state, as Filebeat wrote it.
        let log_input = text
            .lines()
            .rfind(|l| l.starts_with("{\"k\""))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .unwrap();
        let mut want = vec![(
            log_input["k"].as_str().unwrap().to_string(),
            log_input["v"].clone(),
        )];
        for (k, v) in [
            (
                "filestream::c::native::1-2",
                serde_json::json!({"ttl": -1, "updated": [1, 2], "cursor": {"offset": 3}, "meta": {"stream": "stdout"}}),
            ),
            (
                "filestream::n::native::3-4",
                serde_json::json!({"ttl": -1, "updated": [1, 2], "cursor": null, "meta": {"source": "/n", "identifier_name": "native"}}),
            ),
            (
                "filestream::s::native::5-6",
                serde_json::json!({"ttl": 30, "updated": "2026-06-18T08:23:22Z", "cursor": {"eof": true, "offset": 4}, "meta": {"source": "/s", "identifier_name": "native", "fingerprint_len": 9}}),
            ),
        ] {
            want.push((k.to_string(), v));
        }
        let dir = tempfile::tempdir().unwrap();
        let reg_dir = dir.path().join("registry/filebeat");
        fs::create_dir_all(&reg_dir).unwrap();
        let mut log = String::new();
        for (i, (k, v)) in want.iter().enumerate() {
            log.push_str(&format!("{{\"op\":\"set\",\"id\":{}}}\n", i + 1));
            log.push_str(&serde_json::json!({"k": k, "v": v}).to_string());
            log.push('\n');
        }
        fs::write(reg_dir.join("log.json"), log).unwrap();
        let r = Registry::open(dir.path(), 10 << 20, Metrics::new()).unwrap();
        r.close();
        let active = fs::read_to_string(reg_dir.join("active.dat")).unwrap();
        let cp: Vec<serde_json::Value> =
            serde_json::from_str(&fs::read_to_string(active.trim()).unwrap()).unwrap();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let got: Vec<(String, serde_json::Value)> = cp
            .into_iter()
            .map(|mut v| {
                let k = v["_key"].as_str().unwrap().to_string();
                v.as_object_mut().unwrap().remove("_key");
                (k, v)
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn flush_moves_cursors_of_every_shape() {
        let dir = tempfile::tempdir().unwrap();
        let reg_dir = dir.path().join("registry/filebeat");
        fs::create_dir_all(&reg_dir).unwrap();
        // Filebeat 9's cursor with `eof`: moved in place, its other key kept.
        fs::write(
            reg_dir.join("log.json"),
            "{\"op\":\"set\",\"id\":1}\n{\"k\":\"filestream::e::native::1-2\",\"v\":{\"ttl\":-1,\"updated\":[1,2],\"cursor\":{\"eof\":false,\"offset\":5},\"meta\":{\"source\":\"/e\",\"identifier_name\":\"native\"}}}\n",
        )
        .unwrap();
        let m = Metrics::new();
        let r = Registry::open(dir.path(), 10 << 20, m.clone()).unwrap();
        let file = AckTracker::new(5);
        let meta = EntryMeta {
            source: "/e".into(),
            identifier_name: "native".into(),
            fingerprint_len: None,
        };
        r.track("filestream::e::native::1-2", file.clone(), meta);
        // A journal's tracker: its acked label is the cursor.
        let journal = AckTracker::labelled(None);
        r.track_labelled("journald::j", journal.clone());
        r.flush();
        assert!(r.get("journald::j").is_none(), "nothing acked yet");
        let label = serde_json::json!({"version": 1, "position": "s=1;i=2"});
        let cursors = [
            file.next_cursor(9),
            journal.next_labelled_cursor(label.clone()),
        ];
        ack_events(cursors.iter());
        r.flush();
        let e = r.get("filestream::e::native::1-2").unwrap();
        assert_eq!(
            e.cursor.map(Cursor::into_value),
            Some(serde_json::json!({"eof": false, "offset": 9}))
        );
        assert_eq!(
            r.get("journald::j").unwrap().cursor.map(Cursor::into_value),
            Some(label.clone())
        );
        // A small file's key that grew: the moved tracker still moves the cursor.
        r.rekey(
            "filestream::e::native::1-2",
            "filestream::e::native::1-3",
            EntryMeta {
                source: "/e".into(),
                identifier_name: "native".into(),
                fingerprint_len: None,
            },
        );
        let c = file.next_cursor(12);
        ack_events([&c].into_iter());
        r.flush();
        drop(r);
        let r = Registry::open(dir.path(), 10 << 20, m).unwrap();
        assert_eq!(
            r.get("filestream::e::native::1-3").unwrap().offset(),
            Some(12)
        );
        assert!(r.get("filestream::e::native::1-2").is_none());
        assert_eq!(
            r.get("journald::j").unwrap().cursor.map(Cursor::into_value),
            Some(label)
        );
    }

    #[test]
    fn reads_filebeat_memlog_testdata() {
        // Filebeat's own memlog fixtures, when the reference data is beside the repo.
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/filebeat-reference/registry-filestream-native.log.json");
        let text = fs::read_to_string(&src).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; the Filebeat reference data must be beside the repo (../shared)",
                src.display()
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let reg_dir = dir.path().join("registry/filebeat");
        fs::create_dir_all(&reg_dir).unwrap();
        // That file holds bare k/v lines; give each an op line as log.json has.
        let mut log = String::new();
        for (i, l) in text.lines().filter(|l| l.starts_with("{\"k\"")).enumerate() {
            log.push_str(&format!("{{\"op\":\"set\",\"id\":{}}}\n{l}\n", i + 1));
        }
        fs::write(reg_dir.join("log.json"), log).unwrap();
        let r = Registry::open(dir.path(), 10 << 20, Metrics::new()).unwrap();
        let e = r
            .get("filestream::your-filestream-stream-id::native::524337-2049")
            .unwrap();
        assert_eq!(e.offset(), Some(132));
        assert_eq!(e.meta.unwrap().source, "/var/log/app/app.log");
    }

    #[test]
    fn takes_over_a_copied_filebeat_registry() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../shared/filebeat-reference/registry-filestream-checkpoint-and-log.example.ndjson",
        );
        let text = fs::read_to_string(&src).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; the Filebeat reference data must be beside the repo (../shared)",
                src.display()
            )
        });
        let mut lines = text.lines();
        let (checkpoint_item, log_kv) = (lines.next().unwrap(), lines.next().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let reg_dir = dir.path().join("registry/filebeat");
        fs::create_dir_all(&reg_dir).unwrap();
        fs::write(reg_dir.join("meta.json"), "{\"version\":\"1\"}").unwrap();
        fs::write(reg_dir.join("5.json"), format!("[{checkpoint_item}\n]")).unwrap();
        // Filebeat wrote the absolute path of its own data directory.
        fs::write(
            reg_dir.join("active.dat"),
            "/var/lib/filebeat/registry/filebeat/5.json",
        )
        .unwrap();
        fs::write(
            reg_dir.join("log.json"),
            format!("{{\"op\":\"set\",\"id\":6}}\n{log_kv}\n"),
        )
        .unwrap();
        let r = Registry::open(dir.path(), 10 << 20, Metrics::new()).unwrap();
        let a = r
            .get("filestream::my-log-file::native::1041043-66305")
            .unwrap();
        assert_eq!(a.offset(), Some(458));
        let b = r
            .get("filestream::my-log-file::native::1040242-66305")
            .unwrap();
        assert_eq!(b.offset(), Some(914));
        assert_eq!(b.meta.unwrap().source, "/tmp/bar.log");
    }

    /// A data directory copied elsewhere (`cp -a`, a restored backup): active.dat still names
    /// the original's checkpoint by its absolute path. The copy reads its own and leaves the
    /// original's alone (an agent on the copy used to delete it, and the original then could
    /// not start: "registry .../12.json: entity not found").
    #[test]
    fn a_copied_registry_reads_its_own_checkpoint_and_leaves_the_original_alone() {
        // Set "k" to `offset` through the log (as a running agent would), then checkpoint.
        let set = |data: &Path, id: u64, offset: u64| {
            let reg_dir = data.join("registry/filebeat");
            fs::create_dir_all(&reg_dir).unwrap();
            let v = serde_json::json!({"ttl": -1, "updated": "2026-06-18T08:23:22Z", "cursor": {"offset": offset}, "meta": {"source": "/s", "identifier_name": "native"}});
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(reg_dir.join("log.json"))
                .unwrap();
            writeln!(f, "{{\"op\":\"set\",\"id\":{id}}}").unwrap();
            writeln!(f, "{}", serde_json::json!({"k": "k", "v": v})).unwrap();
            drop(f);
            let r = Registry::open(data, 10 << 20, Metrics::new()).unwrap();
            r.close();
        };
        let offset = |data: &Path| {
            let r = Registry::open(data, 10 << 20, Metrics::new()).unwrap();
            r.get("k").unwrap().offset()
        };
        let a = tempfile::tempdir().unwrap();
        set(a.path(), 1, 7);
        let a_dir = a.path().join("registry/filebeat");
        let b = tempfile::tempdir().unwrap();
        let b_dir = b.path().join("registry/filebeat");
        fs::create_dir_all(&b_dir).unwrap();
        for e in fs::read_dir(&a_dir).unwrap().flatten() {
            fs::copy(e.path(), b_dir.join(e.file_name())).unwrap();
        }
        // An agent on the copy checkpoints while the original's file is there.
        assert_eq!(offset(b.path()), Some(7));
        set(b.path(), 2000, 8);
        let a_now = fs::read_to_string(a_dir.join("active.dat")).unwrap();
        assert!(
            Path::new(a_now.trim()).exists(),
            "the original's checkpoint is still there"
        );
        assert_eq!(
            offset(a.path()),
            Some(7),
            "the original opens with its state"
        );
        set(a.path(), 1000, 9);
        assert_eq!(offset(a.path()), Some(9));
        assert_eq!(offset(b.path()), Some(8));
        let b_now = fs::read_to_string(b_dir.join("active.dat")).unwrap();
        assert_eq!(Path::new(b_now.trim()).parent(), Some(b_dir.as_path()));
    }

    #[test]
    fn names_are_escaped_for_terminals() {
        assert_eq!(
            escape_for_terminal("a\x1b[31m\nb\tc\\d\u{9b}caf\u{fffd}"),
            "a\\x1b[31m\\nb\\tc\\\\d\\u{9b}caf\u{fffd}"
        );
    }

    #[test]
    fn updated_encoding_matches_beats() {
        // 2026-06-18T08:23:22.287733671Z, written in UTC.
        let v = serde_json::to_value(Updated::at(1_781_771_002_287_733_671)).unwrap();
        assert_eq!(
            v,
            serde_json::json!([(0xFFFFu64 << 32) | 287_733_671, 1_781_771_002u64])
        );
        // Read back as the pair; any other shape is kept as it was.
        assert_eq!(
            Updated::from_value(Some(v)),
            Updated::at(1_781_771_002_287_733_671)
        );
        let odd = serde_json::json!("2026-06-18T08:23:22Z");
        let kept = serde_json::to_value(Updated::from_value(Some(odd.clone()))).unwrap();
        assert_eq!(kept, odd);
    }

    #[test]
    fn cursors_round_trip_in_both_shapes() {
        let file = serde_json::json!({"offset": 7});
        let c = Cursor::from_value(file.clone());
        assert_eq!(c, Cursor::Offset(7));
        assert_eq!(serde_json::to_value(&c).unwrap(), file);
        let journal = serde_json::json!({"version": 1, "position": "s=1;i=2", "offset": 3});
        let c = Cursor::from_value(journal.clone());
        assert!(matches!(c, Cursor::Json(_)));
        assert_eq!(c.offset(), Some(3));
        assert_eq!(serde_json::to_value(&c).unwrap(), journal);
        assert_eq!(c.into_value(), journal);
    }
}
