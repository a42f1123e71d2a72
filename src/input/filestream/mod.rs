//! The filestream input: discovers files, follows them and turns lines into events.
//!
//! The prospector (this module) owns every file's state and is the only writer of it:
//! it scans the globs (on a timer and on inotify events), decides each file's identity and
//! start offset, and starts one harvester per file with something to read. Harvesters report
//! back when they end; idle files are closed and reopened when they change.
//!
//! - scan.rs: glob expansion (bytes, symlink loops, cancellable, unlistable directories).
//! - identity.rs: fingerprint / native / path identity; collision.rs: two live files with
//!   the same fingerprint, and copies (copytruncate) taking over what was read.
//! - turns.rs: files wait in turn for a harvester slot (harvester_limit, open-file budget).
//! - harvester.rs, reader.rs, parsers.rs, encoding.rs: reading one file.

mod collision;
pub mod container;
pub mod encoding;
pub mod harvester;
pub mod identity;
pub mod parsers;
pub mod reader;
pub mod scan;
mod turns;
mod watch;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::config::filestream::{FileIdentity, NdjsonConfig, ParserConfig, StartPosition};
use crate::config::FilestreamConfig;
use crate::event::{FileSource, InputCommon};
use crate::input::InputContext;
use crate::monitoring::counters::InputCounters;
use crate::monitoring::Metrics;
use crate::pipeline::ack::AckTracker;
use crate::registry::{EntryMeta, Key, Registry};

use encoding::Decoder;
use harvester::{Control, Exit, Harvester};
use identity::{FileInfo, Identifier, Identity, Kind, Stat};

/// How long a new small file must keep its size before it is read (see `settling`).
const SETTLE: Duration = Duration::from_millis(50);

/// Everything a harvester needs from the input's configuration, computed once.
pub struct Settings {
    pub cfg: FilestreamConfig,
    pub decoder: Decoder,
    /// The first ndjson parser, for how decoded keys merge into the event.
    pub ndjson: Option<NdjsonConfig>,
    pub common: Arc<InputCommon>,
    /// This input's counters, served on `/inputs/`.
    pub counters: Arc<InputCounters>,
    /// Files of this input waiting for a harvester slot: harvesters at EOF make room.
    pub waiting: AtomicUsize,
}

impl Settings {
    pub fn new(cfg: FilestreamConfig, ctx: &InputContext) -> Self {
        let mut extra = cfg.global_fields.clone();
        if !cfg.fields.is_empty() {
            let mut own = Map::new();
            if cfg.fields_under_root {
                for (k, v) in &cfg.fields {
                    own.insert(k.clone(), v.clone());
                }
            } else {
                own.insert("fields".into(), Value::Object(cfg.fields.clone()));
            }
            crate::event::deep_merge(&mut extra, own, true);
        }
        if !cfg.tags.is_empty() {
            extra.insert(
                "tags".into(),
                Value::Array(cfg.tags.iter().cloned().map(Value::String).collect()),
            );
        }
        let input_type = cfg.input_type.as_deref().unwrap_or("filestream");
        let common = Arc::new(InputCommon::new(&cfg.id, input_type, &ctx.beat, extra));
        let ndjson = cfg.parsers.iter().find_map(|p| match p {
            ParserConfig::Ndjson(n) => Some(n.clone()),
            _ => None,
        });
        Settings {
            counters: ctx.metrics.input(&cfg.id, "filestream"),
            decoder: harvester::decoder_for(&cfg.encoding),
            ndjson,
            common,
            cfg,
            waiting: AtomicUsize::new(0),
        }
    }
}

/// One file the input knows about, keyed by its registry key.
struct Known {
    info: FileInfo,
    /// Shared with the identifier's cache (unless collided: collision.rs).
    identity: Arc<Identity>,
    tracker: Arc<AckTracker>,
    /// Where the next harvester starts (just past the last line handed to the pipeline).
    read_offset: u64,
    running: Option<(u64, Arc<Control>)>,
    /// File size when its harvester closed it for inactivity; no reopen until it changes.
    idle_at: Option<(u64, i64)>,
    seen: bool,
    /// The identity moved to another inode while a harvester ran: continue there after it stops.
    rebind: Option<Box<FileInfo>>,
    /// Bound to a copy of the file it was read from (copytruncate): a copy shorter than the
    /// offset is still being written, not truncated.
    copied: bool,
    /// Full scans in a row that did not find the file (forgotten after two: a copy of it
    /// may still be on its way).
    missed_scans: u32,
    /// Path identity: another file took this path; read it from 0 once the old one is drained.
    restart_from_zero: bool,
    /// A read failed: wait for the next full scan before trying again.
    failed: bool,
    /// Its harvester found the content replaced (truncated): if the same identity comes
    /// back on the same inode (same first bytes), it is read from the start.
    truncated: bool,
    /// The last bytes before `read_offset`, from the last harvester (empty if unknown).
    tail: Vec<u8>,
    /// The identity moved to another inode (a copy, a rename): before reading there, check
    /// that the bytes before the cursor are the ones read (collision.rs).
    verify_tail: bool,
}

struct Exited {
    run_id: u64,
    outcome: harvester::Outcome,
}

/// Run the input until shutdown (or, with `once`, until every file was read to EOF).
pub async fn run(cfg: FilestreamConfig, ctx: InputContext, registry: Arc<Registry>) {
    let mut p = Prospector::new(cfg, ctx, registry);
    p.run().await;
}

struct Prospector {
    settings: Arc<Settings>,
    ctx: InputContext,
    registry: Arc<Registry>,
    identifier: Identifier,
    key_prefix: String,
    globs: Arc<Vec<scan::Glob>>,
    /// Keyed by the registry's copy of the key (`Registry::track`): one copy per file for
    /// every table here and in the registry. Boxed: the table keeps room for more files than
    /// it holds, and a `Known` is large.
    known: HashMap<Key, Box<Known>>,
    by_inode: HashMap<(u64, u64), Key>,
    by_path: HashMap<PathBuf, Key>,
    run_keys: HashMap<u64, Key>,
    next_run_id: u64,
    exits_tx: mpsc::UnboundedSender<Exited>,
    exits_rx: mpsc::UnboundedReceiver<Exited>,
    initial: bool,
    once_started: HashSet<String>,
    /// Paths already reported as unreadable (logged once, retried silently).
    unreadable: HashSet<PathBuf>,
    /// Registry entries of this input keyed by a partial fingerprint: (key, hashed length).
    partial_entries: Vec<(String, u64)>,
    /// New files shorter than the fingerprint window, seen while still growing:
    /// (dev, ino) → (size, when seen). A copy being written (copytruncate) looks like a new
    /// small file; waiting until the size holds still lets it show its real identity.
    settling: HashMap<(u64, u64), (u64, std::time::Instant)>,
    /// Look again soon (a file is settling).
    recheck: bool,
    /// Harvesters ended since freed memory was last handed back to the OS.
    closed_since_trim: usize,
    /// The open-file budget was reported (once per input).
    fd_warned: bool,
    /// Keys of files with something to read that wait for a harvester slot, in arrival
    /// order (turns.rs).
    waiting: VecDeque<Key>,
    waiting_set: HashSet<Key>,
    /// Queue length last added to the global `harvesters_waiting` gauge.
    waiting_reported: usize,
    /// New files whose first bytes equal those of a live file (a copy being made by
    /// copytruncate, or another file with the same header): (dev, ino) → (size, since).
    /// Held until the original changes or the size holds still (collision.rs).
    copies: HashMap<(u64, u64), (u64, std::time::Instant)>,
    /// Collisions already logged, by (dev, ino).
    collisions_logged: HashSet<(u64, u64)>,
    /// During a full scan: every matched file by (dev, ino), to find a file that moved.
    scan_inodes: HashMap<(u64, u64), PathBuf>,
    in_full_scan: bool,
    /// During the startup scan: files to start once every file is recorded (`full_scan`).
    deferred_starts: Option<Vec<Key>>,
    /// While the files found by the startup scan take their first turns: at most this many
    /// harvesters at once (0 = no such limit).
    startup_slots: usize,
    /// The last file the startup scan queued: once it leaves the queue, every file of the
    /// startup scan had its first turn (later ones queue behind it) and the limit goes.
    startup_last: Option<Key>,
}

/// Harvesters started at once for the files of the startup scan; the others wait their turn
/// (turns.rs). Thousands of harvesters starting together cost tens of MiB at the peak, which
/// the allocator keeps as RSS long after they close.
const STARTUP_SLOTS: usize = 256;

/// A full scan that matched this many files ends by handing freed memory back to the OS
/// (`release_freed_memory`: a few milliseconds, against the tens the scan took).
const TRIM_AFTER_SCAN_OF: usize = 1000;

/// How many files all harvesters together may hold open: the open-file limit
/// (RLIMIT_NOFILE, raised to its hard limit at start) minus a reserve for the registry,
/// outputs, sockets, logs and fingerprint reads, so those never fail with "too many open
/// files" however many files match.
pub(crate) fn open_file_budget() -> (usize, usize) {
    static BUDGET: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed in.
        let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
        } else {
            1024
        };
        let reserve = (limit / 20).clamp(64, 1024);
        (limit.saturating_sub(reserve).max(1), limit)
    })
}

/// Hand freed heap pages back to the OS. After a burst of harvesters (thousands of files
/// read at startup) glibc keeps their buffers' pages, which would stay as RSS for good.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory held by the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Prospector {
    fn new(mut cfg: FilestreamConfig, ctx: InputContext, registry: Arc<Registry>) -> Self {
        // Like Filebeat, globs are resolved against the working directory once, at start.
        if let Ok(cwd) = std::env::current_dir() {
            for p in cfg.paths.iter_mut() {
                if Path::new(p.as_str()).is_relative() {
                    *p = cwd.join(&*p).display().to_string();
                }
            }
        }
        let key_prefix = format!("filestream::{}::", cfg.id);
        let identifier = Identifier::new(
            cfg.file_identity,
            cfg.prospector.scanner.fingerprint.clone(),
        );
        let globs = cfg
            .paths
            .iter()
            .filter_map(|p| match scan::Glob::new(p) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(pattern = %p, error = %e, "invalid glob");
                    None
                }
            })
            .collect();
        let partial_entries = registry
            .keys_with_prefix(&key_prefix)
            .into_iter()
            .filter_map(|(k, e)| Some((k, e.meta?.fingerprint_len?)))
            .collect();
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        Prospector {
            settings: Arc::new(Settings::new(cfg, &ctx)),
            ctx,
            registry,
            identifier,
            key_prefix,
            globs: Arc::new(globs),
            known: HashMap::new(),
            by_inode: HashMap::new(),
            by_path: HashMap::new(),
            run_keys: HashMap::new(),
            next_run_id: 0,
            exits_tx,
            exits_rx,
            initial: true,
            once_started: HashSet::new(),
            unreadable: HashSet::new(),
            partial_entries,
            settling: HashMap::new(),
            recheck: false,
            closed_since_trim: 0,
            fd_warned: false,
            waiting: VecDeque::new(),
            waiting_set: HashSet::new(),
            waiting_reported: 0,
            copies: HashMap::new(),
            collisions_logged: HashSet::new(),
            scan_inodes: HashMap::new(),
            in_full_scan: false,
            deferred_starts: None,
            startup_slots: 0,
            startup_last: None,
        }
    }

    fn cfg(&self) -> &FilestreamConfig {
        &self.settings.cfg
    }

    async fn run(&mut self) {
        let (fs_tx, mut fs_rx) = mpsc::unbounded_channel();
        let mut watcher = if self.ctx.once {
            None
        } else {
            watch::Watcher::new(fs_tx)
        };
        if let Some(w) = watcher.as_mut() {
            w.ensure(&self.cfg().paths);
        }
        self.full_scan().await;
        self.initial = false;
        let mut tick = tokio::time::interval(
            self.cfg()
                .prospector
                .scanner
                .check_interval
                .0
                .max(Duration::from_millis(100)),
        );
        tick.tick().await;
        let mut scan_soon: Option<tokio::time::Instant> = None;
        loop {
            if std::mem::take(&mut self.recheck) && scan_soon.is_none() {
                scan_soon = Some(tokio::time::Instant::now() + SETTLE);
            }
            if self.ctx.once && self.run_keys.is_empty() {
                break;
            }
            let scan_at = scan_soon
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                Some(exit) = self.exits_rx.recv() => self.on_exit(exit),
                Some(ev) = fs_rx.recv() => {
                    let mut rescan = self.on_fs_event(ev);
                    while let Ok(ev) = fs_rx.try_recv() {
                        rescan |= self.on_fs_event(ev);
                    }
                    if rescan && scan_soon.is_none() {
                        scan_soon = Some(tokio::time::Instant::now() + Duration::from_millis(50));
                    }
                }
                _ = tokio::time::sleep_until(scan_at), if scan_soon.is_some() => {
                    scan_soon = None;
                    if let Some(w) = watcher.as_mut() {
                        w.ensure(&self.cfg().paths);
                    }
                    self.full_scan().await;
                }
                _ = tick.tick() => {
                    if let Some(w) = watcher.as_mut() {
                        w.ensure(&self.cfg().paths);
                    }
                    self.full_scan().await;
                }
                _ = self.ctx.shutdown.cancelled() => break,
            }
        }
        self.set_waiting_gauge(0);
        // Harvesters see the shutdown token themselves; collect their final offsets.
        while !self.run_keys.is_empty() {
            match self.exits_rx.recv().await {
                Some(exit) => self.on_exit(exit),
                None => break,
            }
        }
        drop(watcher);
    }

    /// Expand every glob (off the async threads, cancelled by shutdown) and (re)consider
    /// each file; files gone from the globs are closed after draining and, with
    /// clean_removed, forgotten.
    async fn full_scan(&mut self) {
        let started = std::time::Instant::now();
        let globs = self.globs.clone();
        let token = self.ctx.shutdown.clone();
        let res = tokio::task::spawn_blocking(move || scan::scan(&globs, &|| token.is_cancelled()))
            .await
            .unwrap_or_else(|_| scan::ScanResult {
                cancelled: true,
                ..Default::default()
            });
        if res.cancelled {
            return;
        }
        for k in self.known.values_mut() {
            k.seen = false;
            // A failed read is retried once per scan, not in a tight loop.
            k.failed = false;
        }
        let symlinks = self.cfg().prospector.scanner.symlinks;
        let scanned = res.paths.len();
        let mut files = Vec::with_capacity(res.paths.len());
        for (p, own) in res.paths {
            if let Some(md) = file_metadata(&p, own, symlinks) {
                self.scan_inodes.insert((md.dev, md.ino), p.clone());
                files.push((p, md));
            }
        }
        if self.initial {
            let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
            self.take_over(&paths);
        }
        // The startup scan records every file before it starts any harvester: the per-file
        // state is then allocated below the harvesters' buffers, and what they free when they
        // close can go back to the system (with thousands of files, interleaving kept the
        // startup burst's peak as RSS).
        if self.initial {
            self.deferred_starts = Some(Vec::with_capacity(files.len()));
        }
        self.in_full_scan = true;
        for (p, md) in files {
            self.consider_md(&p, md);
        }
        self.in_full_scan = false;
        if let Some(keys) = self.deferred_starts.take() {
            self.startup_slots = STARTUP_SLOTS;
            for key in keys {
                self.maybe_start(&key);
            }
            self.startup_last = self.waiting.back().cloned();
            if self.startup_last.is_none() {
                self.startup_slots = 0;
            }
        }
        self.scan_inodes = HashMap::new();
        // A directory that could not be listed says nothing about its files: none below it
        // is taken for removed (a harvester still notices a deletion by the link count).
        let unlistable = res.unlistable;
        let hidden = |p: &Path| unlistable.iter().any(|d| p.starts_with(d));
        let mut forget = Vec::new();
        let clean_inactive = self.settings.cfg.clean_inactive.0;
        let now = crate::event::now_nanos();
        for (key, k) in self.known.iter_mut() {
            if k.seen {
                k.missed_scans = 0;
                // clean_inactive: forget files not changed for that long (not while read).
                if !clean_inactive.is_zero()
                    && k.running.is_none()
                    && now.saturating_sub(k.info.mtime) > clean_inactive.as_nanos() as i64
                {
                    forget.push(key.clone());
                }
                continue;
            }
            if hidden(&k.info.path) {
                continue;
            }
            k.missed_scans += 1;
            match &k.running {
                Some((_, ctl)) => {
                    if self.settings.cfg.close.on_state_change.removed
                        && !ctl.removed.swap(true, Ordering::Relaxed)
                    {
                        tracing::debug!(path = %k.info.path.display(), "file removed or renamed away; draining to EOF");
                        ctl.wake.notify_one();
                    }
                }
                None => {
                    if self.settings.cfg.clean_removed && k.missed_scans >= 2 {
                        forget.push(key.clone());
                    }
                }
            }
        }
        for key in forget {
            self.forget(&key);
        }
        if let Some(stale) = std::time::Instant::now().checked_sub(Duration::from_secs(60)) {
            self.settling.retain(|_, (_, since)| *since > stale);
        }
        // Harvesters that closed freed their buffers, and a scan of thousands of files
        // freed their paths and metadata (some in the scanning thread's arena): unless it
        // is handed back, that memory stays as RSS, and grows scan after scan.
        if std::mem::take(&mut self.closed_since_trim) > 64 || scanned >= TRIM_AFTER_SCAN_OF {
            release_freed_memory();
        }
        tracing::debug!(
            input = %self.settings.cfg.id,
            files = self.known.len(),
            running = self.run_keys.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "scan done"
        );
        // harvester_limit or the open-file budget: start files that waited for a slot.
        self.start_waiting();
    }

    /// `take_over`: before the first look at the files, continue the registry states that
    /// other inputs left for them (Filebeat's `TakeOver`, filebeat/input/filestream
    /// prospector.go and internal/input-logfile/store.go). A state is taken only for a file
    /// this input matches now, only if the old input's identity of that file is still the
    /// one in the state's key (a rotated path is another file), and only if this input has
    /// no state for the file yet. A filestream input's state is only taken with the same file
    /// identity (Filebeat does not migrate identities on take-over: testdata/take-over,
    /// expected-registry-do-no-migrate-identity.json). The old filestream state is removed;
    /// a log input's stays, marked ttl -2 (`Registry::take_over`).
    fn take_over(&mut self, paths: &[PathBuf]) {
        let to = self.settings.cfg.take_over.clone();
        if !to.enabled && to.from_ids.is_empty() {
            return;
        }
        let by_source: HashMap<String, &PathBuf> =
            paths.iter().map(|p| (p.display().to_string(), p)).collect();
        let follow = self.cfg().prospector.scanner.symlinks;
        let stat = |p: &Path| {
            if follow {
                std::fs::metadata(p)
            } else {
                std::fs::symlink_metadata(p)
            }
        };
        // (old key, source, offset, the old identity's suffix as the key has it, its kind)
        let mut candidates: Vec<(String, String, u64, String, String)> = Vec::new();
        if to.from_ids.is_empty() {
            for (key, st) in self.registry.log_input_states() {
                let suffix = key.splitn(3, "::").nth(2).unwrap_or("").to_string();
                candidates.push((key, st.source, st.offset, suffix, st.identifier_name));
            }
        } else {
            for id in &to.from_ids {
                let prefix = format!("filestream::{id}::");
                for (key, e) in self.registry.keys_with_prefix(&prefix) {
                    let offset = e.offset().unwrap_or(0);
                    let Some(meta) = e.meta else { continue };
                    if meta.identifier_name != self.identifier.kind_name() {
                        tracing::debug!(state = %key, "not taking over: another file identity");
                        continue;
                    }
                    let suffix = key[prefix.len()..].to_string();
                    candidates.push((
                        key,
                        meta.source,
                        offset,
                        suffix,
                        meta.identifier_name.into_owned(),
                    ));
                }
            }
        }
        for (old, source, offset, suffix, kind) in candidates {
            let Some(path) = by_source.get(&source) else {
                continue;
            };
            let Ok(md) = stat(path) else { continue };
            let info = FileInfo::from_metadata((*path).clone(), &md);
            let previous = match kind.as_str() {
                "native" => Some(format!("native::{}-{}", info.ino, info.dev)),
                "path" => Some(format!("path::{source}")),
                "fingerprint" => {
                    let mut old_id = Identifier::new(
                        FileIdentity::Fingerprint,
                        self.cfg().prospector.scanner.fingerprint.clone(),
                    );
                    old_id
                        .identify(&info)
                        .ok()
                        .flatten()
                        .map(|i| i.suffix.clone())
                }
                _ => None,
            };
            if previous.as_deref() != Some(suffix.as_str()) {
                tracing::debug!(state = %old, path = %source, "not taking over: the file at this path is not the one of the state");
                continue;
            }
            let Ok(Some(identity)) = self.identifier.identify(&info) else {
                continue;
            };
            let new = format!("{}{}", self.key_prefix, identity.suffix);
            let meta = self.meta(&info, &identity);
            if self
                .registry
                .take_over(&old, &new, offset.min(info.size), meta)
            {
                tracing::info!(from = %old, to = %new, offset, path = %source, "taking over registry state");
            }
        }
    }

    fn forget(&mut self, key: &str) {
        if let Some(k) = self.known.remove(key) {
            self.registry.remove(key);
            if self
                .by_inode
                .get(&(k.info.dev, k.info.ino))
                .is_some_and(|v| **v == *key)
            {
                self.by_inode.remove(&(k.info.dev, k.info.ino));
                self.identifier.forget(k.info.dev, k.info.ino);
            }
            if self.by_path.get(&k.info.path).is_some_and(|v| **v == *key) {
                self.by_path.remove(&k.info.path);
            }
        }
    }

    fn matches(&self, path: &Path) -> bool {
        self.globs.iter().any(|g| g.matches(path))
    }

    fn excluded(&self, path: &Path) -> bool {
        let cfg = self.cfg();
        if cfg.exclude_files.is_empty() && cfg.include_files.is_empty() {
            return false;
        }
        let s = path.to_string_lossy();
        cfg.exclude_files.iter().any(|p| p.0.is_match(&s))
            || (!cfg.include_files.is_empty()
                && !cfg.include_files.iter().any(|p| p.0.is_match(&s)))
    }

    /// Look at one path: identify it, bind it to its state, start a harvester if needed.
    fn consider(&mut self, path: &Path) {
        if let Some(md) = file_metadata(path, None, self.cfg().prospector.scanner.symlinks) {
            self.consider_md(path, md);
        }
    }

    /// `consider` with the file's metadata already read (a regular file).
    fn consider_md(&mut self, path: &Path, md: Stat) {
        if self.excluded(path) {
            return;
        }
        // Fast path for a rescan: a known file that did not change needs no work.
        if let Some(k) = self
            .by_path
            .get(path)
            .and_then(|key| self.known.get_mut(key))
        {
            let i = &k.info;
            if (i.dev, i.ino, i.size, i.mtime) == (md.dev, md.ino, md.size, md.mtime)
                && k.rebind.is_none()
                && (k.running.is_some()
                    || k.read_offset == i.size
                    || k.idle_at == Some((i.size, i.mtime)))
            {
                k.seen = true;
                return;
            }
        }
        let info = FileInfo::from_stat(path.to_path_buf(), &md);
        let inode = (info.dev, info.ino);
        let identity = match self.identifier.identify(&info) {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => {
                // It is there, only unreadable now (permissions): it keeps its state and
                // cursor, and is not taken for removed.
                if let Some(k) = self
                    .by_inode
                    .get(&inode)
                    .and_then(|key| self.known.get_mut(key))
                {
                    k.seen = true;
                }
                if !identity::changed_since_stat(&e) {
                    self.report_unreadable(path, &e);
                }
                return;
            }
        };
        // Two live files with the same first bytes are two files (collision.rs).
        let Some(identity) = self.resolve_collision(&info, identity) else {
            return;
        };
        let key = format!("{}{}", self.key_prefix, identity.suffix);

        // The inode was known under another key: grown small file, or content replaced.
        if let Some(old_key) = self.by_inode.get(&inode).cloned() {
            if *old_key != *key {
                let grown = self.known.get(&old_key).is_some_and(|old| {
                    old.identity
                        .partial_len
                        .is_some_and(|len| self.identifier.extends(&info, old.identity.hash(), len))
                });
                tracing::debug!(path = %path.display(), old = %old_key, new = %key, grown, "identity of an inode changed");
                if grown && !self.known.contains_key(key.as_str()) {
                    self.rekey(&old_key, &key, identity.clone());
                } else {
                    self.by_inode.remove(&inode);
                    if let Some(old) = self.known.get(&old_key) {
                        if let Some((_, ctl)) = &old.running {
                            // Its bytes are gone from this inode; stop before it reads new content.
                            ctl.stop.store(true, Ordering::Relaxed);
                            ctl.wake.notify_one();
                        }
                    }
                }
            }
        }

        let path_identity = self.identifier.mode() == FileIdentity::Path;
        if let Some(key) = self
            .known
            .get_key_value(key.as_str())
            .map(|(k, _)| k.clone())
        {
            let Some(k) = self.known.get_mut(&key) else {
                return;
            };
            let moved = (k.info.dev, k.info.ino) != inode;
            if std::mem::take(&mut k.truncated) && !moved && k.running.is_none() {
                // Truncated and rewritten with the same first bytes: new content all the same.
                tracing::info!(path = %path.display(), "file truncated; reading from the start");
                k.read_offset = 0;
                k.tracker.reset(0);
                k.idle_at = None;
                k.copied = false;
            }
            if moved && path_identity {
                // Same path, another file (rotation with `create`): the old one is drained,
                // the new one is read from its start, as Filebeat does.
                k.restart_from_zero = true;
                match &k.running {
                    Some((_, ctl)) => {
                        if !ctl.removed.swap(true, Ordering::Relaxed) {
                            ctl.wake.notify_one();
                        }
                        k.rebind = Some(Box::new(info.clone()));
                        k.seen = true;
                        return;
                    }
                    None => {
                        k.read_offset = 0;
                        k.tracker.reset(0);
                        k.restart_from_zero = false;
                        k.idle_at = None;
                    }
                }
            } else if moved {
                match &k.running {
                    Some((_, ctl)) => {
                        // Same content now at another inode (copytruncate's copy): continue
                        // there once the old harvester stopped.
                        if !ctl.removed.load(Ordering::Relaxed) {
                            ctl.stop.store(true, Ordering::Relaxed);
                            ctl.wake.notify_one();
                        }
                        tracing::debug!(path = %path.display(), key = %key, "identity moved to another inode; continuing there");
                        k.rebind = Some(Box::new(info.clone()));
                        k.seen = true;
                        return;
                    }
                    None => {
                        tracing::debug!(path = %path.display(), key = %key, offset = k.read_offset, "identity found at another inode; continuing there");
                        k.truncated = false;
                        let old = (k.info.dev, k.info.ino);
                        // The old inode may already hold new content under another key.
                        if self.by_inode.get(&old) == Some(&key) {
                            self.by_inode.remove(&old);
                        }
                        k.copied = true;
                        k.verify_tail = true;
                    }
                }
            }
            k.info = info;
            k.identity = identity;
            k.seen = true;
            self.by_inode.insert(inode, key.clone());
            self.by_path.insert(path.to_path_buf(), key.clone());
            self.maybe_start(&key);
            return;
        }

        // Read by an earlier run of this input in this process (a reload restarted it):
        // take its tracker over and continue where it stopped handing lines over.
        if let Some(tracker) = self.registry.live_tracker(&key) {
            let offset = tracker.published_offset().min(info.size);
            tracing::debug!(path = %path.display(), key = %key, offset, "taking over the file from the previous run of the input");
            let key = self
                .registry
                .track(&key, tracker.clone(), self.meta(&info, &identity));
            self.by_inode.insert(inode, key.clone());
            self.by_path.insert(path.to_path_buf(), key.clone());
            self.insert_known(key, info, identity, tracker, offset);
            return;
        }
        // New to this run: resume from the registry, or start per start_position.
        let mut offset = None;
        if let Some(e) = self.registry.get(&key) {
            offset = Some(e.offset().unwrap_or(0));
        } else if self.identifier.mode() == FileIdentity::Fingerprint {
            let candidates: Vec<(String, u64)> = self.partial_entries.clone();
            for (pkey, len) in candidates {
                let hash = identity::partial_hash(&pkey)
                    .unwrap_or_default()
                    .to_string();
                if pkey != key && self.identifier.extends(&info, &hash, len) {
                    offset = self.registry.get(&pkey).map(|e| e.offset().unwrap_or(0));
                    self.registry
                        .rekey(&pkey, &key, self.meta(&info, &identity));
                    self.partial_entries.retain(|(k, _)| k != &pkey);
                    break;
                }
            }
        }
        if offset.is_none()
            && !self.ctx.once
            && !self.initial
            && self.looks_like_copy(&info, &identity)
        {
            let now = std::time::Instant::now();
            match self.settling.get(&inode) {
                Some((size, since))
                    if *size == info.size && now.duration_since(*since) >= SETTLE =>
                {
                    self.settling.remove(&inode);
                }
                Some((size, _)) if *size == info.size => {
                    self.recheck = true;
                    return;
                }
                _ => {
                    self.settling.insert(inode, (info.size, now));
                    self.recheck = true;
                    return;
                }
            }
        }
        if offset.is_none() && self.cfg().ignore_older.0 > Duration::ZERO {
            let age = crate::event::now_nanos() - info.mtime;
            if age > self.cfg().ignore_older.0.as_nanos() as i64 {
                Metrics::add(&self.ctx.metrics.counters.harvester_skipped, 1);
                return;
            }
        }
        let mut offset = offset.unwrap_or(
            if self.initial && self.cfg().start_position == StartPosition::End {
                info.size
            } else {
                0
            },
        );
        if offset > info.size {
            tracing::info!(path = %path.display(), offset, size = info.size, "file is shorter than its saved offset (truncated); reading from the start");
            offset = 0;
        }
        tracing::debug!(path = %path.display(), key = %key, offset, size = info.size, "new file");
        let tracker = AckTracker::new(offset);
        let key = self
            .registry
            .track(&key, tracker.clone(), self.meta(&info, &identity));
        self.by_inode.insert(inode, key.clone());
        self.by_path.insert(path.to_path_buf(), key.clone());
        self.insert_known(key, info, identity, tracker, offset);
    }

    /// Follow a file from `offset` with `tracker`, and start reading it if there is room.
    fn insert_known(
        &mut self,
        key: Key,
        info: FileInfo,
        identity: Arc<Identity>,
        tracker: Arc<AckTracker>,
        offset: u64,
    ) {
        self.known.insert(
            key.clone(),
            Box::new(Known {
                info,
                identity,
                tracker,
                read_offset: offset,
                running: None,
                idle_at: None,
                seen: true,
                rebind: None,
                copied: false,
                missed_scans: 0,
                restart_from_zero: false,
                failed: false,
                truncated: false,
                tail: Vec::new(),
                verify_tail: false,
            }),
        );
        self.maybe_start(&key);
    }

    /// A new small file whose first bytes are those of a known bigger file in the same
    /// directory may be a copy still being written (copytruncate); it is read only once it
    /// stops growing, when its identity is known for sure.
    fn looks_like_copy(&self, info: &FileInfo, id: &Identity) -> bool {
        if id.partial_len.is_none() || id.head.is_empty() {
            return false;
        }
        let dir = info.path.parent();
        self.known.values().any(|k| {
            k.identity.partial_len.is_none()
                && k.info.path.parent() == dir
                && (k.info.dev, k.info.ino) != (info.dev, info.ino)
                && k.identity.head.starts_with(&id.head)
        })
    }

    fn meta(&self, info: &FileInfo, id: &Identity) -> EntryMeta {
        EntryMeta {
            source: info.path.display().to_string(),
            identifier_name: id.name.into(),
            fingerprint_len: id.partial_len,
        }
    }

    fn rekey(&mut self, old: &str, new: &str, identity: Arc<Identity>) {
        let Some(mut k) = self.known.remove(old) else {
            return;
        };
        k.identity = identity;
        let meta = self.meta(&k.info, &k.identity);
        let new = self.registry.rekey(old, new, meta);
        if let Some((id, _)) = &k.running {
            self.run_keys.insert(*id, new.clone());
        }
        self.by_inode.insert((k.info.dev, k.info.ino), new.clone());
        self.by_path.insert(k.info.path.clone(), new.clone());
        self.known.insert(new, k);
    }

    fn report_unreadable(&mut self, path: &Path, e: &std::io::Error) {
        if self.unreadable.insert(path.to_path_buf()) {
            tracing::warn!(path = %path.display(), error = %e, "cannot read file; will retry on every scan (logged once)");
        }
    }

    /// Start a harvester for `key` if it has something to read and a slot is free; a file
    /// that finds no slot waits its turn (turns.rs).
    fn maybe_start(&mut self, key: &str) -> Start {
        if let Some(deferred) = self.deferred_starts.as_mut() {
            if let Some((key, _)) = self.known.get_key_value(key) {
                deferred.push(key.clone());
            }
            return Start::NotNeeded;
        }
        let start = self.try_start(key, false);
        if start == Start::NoSlot {
            self.enqueue(key);
        }
        start
    }

    /// `maybe_start`; `turn` is set for the file at the head of the waiting queue, which may
    /// take a free slot before the others.
    fn try_start(&mut self, key: &str, turn: bool) -> Start {
        let limit = self.cfg().harvester_limit;
        let once = self.ctx.once;
        let running = self.run_keys.len();
        let queue_ahead = !turn && self.waiting.front().is_some_and(|k| **k != *key);
        let Some(shared) = self.known.get_key_value(key).map(|(k, _)| k.clone()) else {
            return Start::NotNeeded;
        };
        let Some(k) = self.known.get_mut(key) else {
            return Start::NotNeeded;
        };
        if k.running.is_some() || k.failed || (once && self.once_started.contains(key)) {
            return Start::NotNeeded;
        }
        if k.verify_tail && k.info.size >= k.read_offset {
            k.verify_tail = false;
            if !collision::same_bytes_before(&k.info, k.read_offset, &k.tail) {
                // Not the content read before: a new file that only starts the same way.
                tracing::info!(path = %k.info.path.display(), offset = k.read_offset, "a new file with the first bytes of one read before; reading it from the start");
                k.read_offset = 0;
                k.tracker.reset(0);
                k.copied = false;
                k.idle_at = None;
            }
        }
        if k.info.size < k.read_offset && k.copied {
            return Start::NotNeeded;
        }
        if k.info.size < k.read_offset {
            tracing::info!(path = %k.info.path.display(), "file truncated; reading from the start");
            k.read_offset = 0;
            k.tracker.reset(0);
        }
        if k.info.size == k.read_offset || k.idle_at == Some((k.info.size, k.info.mtime)) {
            return Start::NotNeeded;
        }
        // Files already waiting go first: nobody jumps the queue.
        if queue_ahead
            || (limit > 0 && running >= limit)
            || (self.startup_slots > 0 && running >= self.startup_slots)
        {
            return Start::NoSlot;
        }
        let (budget, nofile) = open_file_budget();
        let open = self.ctx.metrics.gauges.open_files.load(Ordering::Relaxed);
        if usize::try_from(open).unwrap_or(0) >= budget {
            if !std::mem::replace(&mut self.fd_warned, true) {
                tracing::warn!(
                    open,
                    limit = nofile,
                    "open-file budget used up: more matching files take turns, each harvester making room at EOF (the rest of the open-file limit is kept for the registry, outputs and logs); raise LimitNOFILE or set harvester_limit"
                );
            }
            return Start::NoSlot;
        }
        let file = match File::open(&k.info.path) {
            Ok(f) => f,
            // Renamed or removed since the scan saw it (a rotation): the next look decides.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Start::NotNeeded,
            Err(e) => {
                let path = k.info.path.clone();
                self.report_unreadable(&path, &e);
                return Start::NotNeeded;
            }
        };
        // The path may have been replaced between stat and open.
        match file.metadata() {
            Ok(md) if md.dev() == k.info.dev && md.ino() == k.info.ino => {}
            _ => return Start::NotNeeded,
        }
        let file = Arc::new(file);
        self.unreadable.remove(&k.info.path);
        k.idle_at = None;
        let run_id = self.next_run_id;
        self.next_run_id += 1;
        let ctl = Arc::new(Control::new(file.clone()));
        k.running = Some((run_id, ctl.clone()));
        self.run_keys.insert(run_id, shared);
        if once {
            self.once_started.insert(key.to_string());
        }
        let with_identity = self.settings.cfg.include_file_identity;
        let source = Arc::new(FileSource::new(
            k.info.path.display().to_string(),
            if with_identity {
                k.info.dev.to_string()
            } else {
                String::new()
            },
            if with_identity {
                k.info.ino.to_string()
            } else {
                String::new()
            },
            k.identity
                .fingerprint()
                .filter(|_| with_identity)
                .map(str::to_string),
            self.settings.common.clone(),
        ));
        let h = Harvester {
            file,
            offset: k.read_offset,
            tracker: k.tracker.clone(),
            source,
            settings: self.settings.clone(),
            publisher: self.ctx.publisher.clone(),
            control: ctl,
            once,
            shutdown: self.ctx.shutdown.clone(),
        };
        let m = self.ctx.metrics.clone();
        let ic = self.settings.counters.clone();
        Metrics::add(&m.counters.harvester_started, 1);
        m.gauges.harvesters_running.fetch_add(1, Ordering::Relaxed);
        m.gauges.open_files.fetch_add(1, Ordering::Relaxed);
        InputCounters::add(&ic.harvester_started_total, 1);
        InputCounters::add(&ic.files_opened_total, 1);
        ic.harvester_running.fetch_add(1, Ordering::Relaxed);
        ic.files_active.fetch_add(1, Ordering::Relaxed);
        let tx = self.exits_tx.clone();
        tokio::spawn(async move {
            let ctl = h.control.clone();
            let outcome = h.run().await;
            // The file is closed here (the harvester dropped its share), so the slot is free.
            ctl.release_file();
            Metrics::add(&m.counters.harvester_closed, 1);
            m.gauges.harvesters_running.fetch_sub(1, Ordering::Relaxed);
            m.gauges.open_files.fetch_sub(1, Ordering::Relaxed);
            InputCounters::add(&ic.harvester_closed_total, 1);
            InputCounters::add(&ic.files_closed_total, 1);
            if outcome.exit == Exit::Failed {
                InputCounters::add(&ic.harvester_errors_total, 1);
            }
            ic.harvester_running.fetch_sub(1, Ordering::Relaxed);
            ic.files_active.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(Exited { run_id, outcome });
        });
        Start::Started
    }

    fn on_exit(&mut self, mut exit: Exited) {
        let Some(key) = self.run_keys.remove(&exit.run_id) else {
            return;
        };
        let Some(k) = self.known.get_mut(&key) else {
            self.start_waiting();
            return;
        };
        k.running = None;
        k.read_offset = exit.outcome.resume_offset;
        k.tail = std::mem::take(&mut exit.outcome.tail);
        self.closed_since_trim += 1;
        let path = k.info.path.clone();
        match exit.outcome.exit {
            Exit::Truncated => {
                if self.identifier.mode() == FileIdentity::Fingerprint {
                    // New content means a new identity; let the next look decide. The cursor
                    // stays with the old identity (a copy of the old content may take it
                    // over); the same identity found again on this inode starts from 0.
                    k.truncated = true;
                    let inode = (k.info.dev, k.info.ino);
                    // Unless the inode was already bound to its new content's identity.
                    if self.by_inode.get(&inode) == Some(&key) {
                        self.by_inode.remove(&inode);
                        self.identifier.forget(inode.0, inode.1);
                    }
                } else {
                    k.read_offset = 0;
                    k.tracker.reset(0);
                }
            }
            Exit::Inactive | Exit::Yield => {
                // Idle at this size only if the harvester saw all of it. Bytes appended after
                // its last read (a line written as it closed), or left behind by a yield in
                // the middle of a busy file, must start it again, not wait for the next write.
                if let Ok(md) = std::fs::metadata(&path) {
                    if md.len() == exit.outcome.read_to {
                        k.idle_at = Some((md.len(), identity::mtime_nanos(&md)));
                    }
                }
            }
            Exit::Failed => k.failed = true,
            Exit::Done | Exit::Stopped => {}
        }
        let rebound = k.rebind.is_some();
        if let Some(info) = k.rebind.take().map(|b| *b) {
            let old = (k.info.dev, k.info.ino);
            if self.by_inode.get(&old) == Some(&key) {
                self.by_inode.remove(&old);
            }
            let new_path = info.path.clone();
            self.by_inode.insert((info.dev, info.ino), key.clone());
            self.by_path.insert(new_path, key.clone());
            k.info = info;
            k.truncated = false;
            if std::mem::take(&mut k.restart_from_zero) {
                k.read_offset = 0;
                k.tracker.reset(0);
                k.idle_at = None;
            } else {
                k.copied = true;
                k.verify_tail = true;
            }
        }
        if self.ctx.shutdown.is_cancelled() {
            return;
        }
        if exit.outcome.deleted && !rebound && self.settings.cfg.clean_removed {
            // Deleted (noticed by its link count, even where the directory cannot be
            // listed) and read to its end: nothing pins it any more.
            tracing::debug!(path = %path.display(), "file deleted; forgetting it");
            self.forget(&key);
            self.start_waiting();
            return;
        }
        // A slot is free: files that waited for one go first.
        self.start_waiting();
        if exit.outcome.exit == Exit::Failed || exit.outcome.exit == Exit::Done && !self.ctx.once {
            // Done outside --once means drained after removal: nothing more to read there.
            return;
        }
        // Look at the file afresh: it may have grown, moved or changed identity meanwhile
        // (after a yield, it queues behind the files that waited).
        let path = self
            .known
            .get(&key)
            .map(|k| k.info.path.clone())
            .unwrap_or(path);
        if self.matches(&path) || self.ctx.once {
            self.consider(&path);
        }
    }

    /// Route a change notification; returns true when a full rescan is warranted.
    fn on_fs_event(&mut self, ev: watch::FsEvent) -> bool {
        let mut rescan = ev.structural;
        for path in ev.paths {
            if let Some(key) = self.by_path.get(&path) {
                if let Some(k) = self.known.get(key) {
                    if let Some((_, ctl)) = &k.running {
                        ctl.wake.notify_one();
                        // A small file keeps being looked at until its full fingerprint is
                        // known, so a copy of it (copytruncate) is recognised.
                        if !ev.structural && k.identity.partial_len.is_none() {
                            continue;
                        }
                    }
                }
            }
            if self.matches(&path) {
                self.consider(&path);
            } else if ev.structural {
                rescan = true;
            }
        }
        rescan
    }
}

/// What `maybe_start` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Started,
    /// Nothing to read now (caught up, idle, running, failed, being copied).
    NotNeeded,
    /// Something to read, no free slot (harvester_limit or the open-file budget).
    NoSlot,
}

/// The metadata of a regular file at `path` (following symlinks unless `symlinks` is off,
/// when a symlink is skipped), or `None`. `own` is the path's own metadata if the scan has
/// it (not following a symlink): for anything but a symlink, that is the answer.
fn file_metadata(path: &Path, own: Option<Stat>, symlinks: bool) -> Option<Stat> {
    if let Some(st) = own.filter(|s| s.kind != Kind::Symlink) {
        return Some(st).filter(|s| s.kind == Kind::File);
    }
    let md = if symlinks {
        std::fs::metadata(path)
    } else {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => return None,
            other => other,
        }
    };
    md.ok().filter(|m| m.is_file()).map(|m| Stat::of(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_metadata_follows_symlinks_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.log");
        std::fs::write(&file, b"x\n").unwrap();
        let link = dir.path().join("l.log");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let sub = dir.path().join("d.log");
        std::fs::create_dir(&sub).unwrap();
        let own = |p: &Path| Some(Stat::of(&std::fs::symlink_metadata(p).unwrap()));
        let target = Stat::of(&std::fs::metadata(&file).unwrap());
        for symlinks in [true, false] {
            // A regular file: its own stat is the answer, with or without it given.
            assert_eq!(file_metadata(&file, own(&file), symlinks), Some(target));
            assert_eq!(file_metadata(&file, None, symlinks), Some(target));
            // A directory is no file.
            assert_eq!(file_metadata(&sub, own(&sub), symlinks), None);
            assert_eq!(file_metadata(&sub, None, symlinks), None);
        }
        // A symlink: its target's stat when following, skipped otherwise.
        assert_eq!(file_metadata(&link, own(&link), true), Some(target));
        assert_eq!(file_metadata(&link, None, true), Some(target));
        assert_eq!(file_metadata(&link, own(&link), false), None);
        assert_eq!(file_metadata(&link, None, false), None);
    }
}
