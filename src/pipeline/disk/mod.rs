//! The disk queue (`[queue.disk]`): events survive output outages, file rotation and restarts
//! without holding the inputs back.
//!
//! ```text
//!  publish ──encode──▶ write-ahead ──▶ writer thread ──pwrite──▶ <id>.seg ◀──pread── reader thread ──▶ Consumer
//!  (input task)        (write_ahead     │  rotation, max_size,     ▲    (a backlog)             (read_ahead
//!                       events)         │  ENOSPC retry             │                             events)
//!                                       └── frames just written, as events ──(hand-off)──────────▶ Consumer
//!                                       ▼                           │
//!                       sync thread: fdatasync, then ack the input ─┘  output acks ──▶ ack log ──▶ state.json
//!                       (registry may move past the lines)             housekeeping: persist, delete acked segments
//! ```
//!
//! * An event is acknowledged to its input once it is durable as `sync` says (`batch`: after
//!   the fdatasync that covers it; an interval: after the next periodic one; `none`: once
//!   written to the OS). From then on the registry may move past its line: a file rotated and
//!   deleted during an outage loses nothing once its lines were queued.
//! * The queue's own read position moves only over a contiguous run of batches the output
//!   acknowledged (out-of-order acks wait for the older ones), and is persisted in
//!   `state.json` (written to a temp file, fsynced, renamed) at most every second and at stop.
//!   A restart, also after `kill -9`, replays exactly what the output had not acknowledged
//!   (at-least-once: a batch acknowledged in the last second may be sent again).
//! * Segments whose events were all acknowledged are deleted. Disk usage stays within
//!   `max_size` (one event larger than the whole queue is still taken when the queue is empty).
//! * Format (see `format`): segment header with magic and version, frames with a header
//!   checksum and a CRC32C per entry, global sequence numbers. On start each unacknowledged
//!   segment's frame chain is walked: a torn tail (a write cut by a crash) is cut; damaged bytes
//!   in the middle are reported with their segment and offset, copied to `corrupt/` for
//!   inspection, counted, and skipped up to the next intact frame, with the number of events
//!   they held (from the sequence numbers around them). Entry checksums are checked as frames
//!   are read, and by `oxibeat queue check` for every frame.
//! * What is stored: line events as their parts (message, offset, flags, a per-frame record of
//!   their file and input fields) and every other event as its encoded JSON fields; see
//!   `format` for why. Outputs get ordinary `Event`s: the same bytes come out of
//!   `Event::write_json` as from the memory queue, and field lookups work as before
//!   (`Fields::Json` parses on first lookup only).
//!
//! Threads, not tasks: the writer, the syncer, the reader and housekeeping block on disk I/O.

mod checksum;
pub mod format;
pub mod inspect;
mod reader;
mod state;
mod writer;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::config::units::{ByteSize, Dur};
use crate::config::ConfigError;
use crate::event::Event;
use crate::monitoring::disk_queue::DiskQueueStats;
use crate::monitoring::Metrics;

pub use state::Position;

/// Bytes of encoded frames waiting for the writer, besides the `write_ahead` event bound.
const WRITE_AHEAD_BYTES: usize = 64 << 20;
/// Recently written frames (their events) kept in memory for a reader that keeps up (no read
/// syscall, no decoding), counted by their size on disk.
const TAIL_CACHE_BYTES: usize = 8 << 20;
/// Frame buffers kept for the next frames (after their frame was written and synced), and the
/// largest one kept.
const SPARE_FRAMES: usize = 8;
const SPARE_FRAME_BYTES: usize = 1 << 20;
/// Written but not yet fsynced bytes kept to write again if an fsync fails.
const UNSYNCED_BYTES: usize = 64 << 20;
const MIB: u64 = 1 << 20;

// ---- configuration ----

/// `sync`: when an event counts as durable, so that its input may move past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// fdatasync before acknowledging the input (group commit: one fsync per write burst).
    #[default]
    Batch,
    /// fdatasync every interval; inputs are acknowledged after the fsync that covered them.
    Interval(Duration),
    /// Never fsync (except at stop); inputs are acknowledged once the OS has the bytes.
    None,
}

impl<'de> Deserialize<'de> for SyncMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "batch" => Ok(SyncMode::Batch),
            "none" => Ok(SyncMode::None),
            other => match crate::config::units::parse_duration(other) {
                Ok(d) if !d.is_zero() => Ok(SyncMode::Interval(d)),
                _ => Err(serde::de::Error::custom(format!(
                    "sync must be \"batch\", \"none\" or an interval such as \"1s\", not {other:?}"
                ))),
            },
        }
    }
}

impl Serialize for SyncMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SyncMode::Batch => s.serialize_str("batch"),
            SyncMode::None => s.serialize_str("none"),
            SyncMode::Interval(d) => s.serialize_str(&crate::config::units::format_duration(*d)),
        }
    }
}

/// `[queue.disk]`, with Filebeat's option names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskQueueConfig {
    /// Default `${path.data}/diskqueue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// 0: no limit (the queue may fill the disk).
    #[serde(default = "DiskQueueConfig::default_max_size")]
    pub max_size: ByteSize,
    /// Default `max_size / 10`, at most 100 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_size: Option<ByteSize>,
    #[serde(default = "DiskQueueConfig::default_read_ahead")]
    pub read_ahead: usize,
    #[serde(default = "DiskQueueConfig::default_write_ahead")]
    pub write_ahead: usize,
    #[serde(default = "DiskQueueConfig::default_retry")]
    pub retry_interval: Dur,
    #[serde(default = "DiskQueueConfig::default_max_retry")]
    pub max_retry_interval: Dur,
    #[serde(default)]
    pub sync: SyncMode,
}

impl Default for DiskQueueConfig {
    fn default() -> Self {
        DiskQueueConfig {
            path: None,
            max_size: Self::default_max_size(),
            segment_size: None,
            read_ahead: Self::default_read_ahead(),
            write_ahead: Self::default_write_ahead(),
            retry_interval: Self::default_retry(),
            max_retry_interval: Self::default_max_retry(),
            sync: SyncMode::Batch,
        }
    }
}

impl DiskQueueConfig {
    fn default_max_size() -> ByteSize {
        ByteSize(10 << 30)
    }
    fn default_read_ahead() -> usize {
        512
    }
    fn default_write_ahead() -> usize {
        2048
    }
    fn default_retry() -> Dur {
        Dur(Duration::from_secs(1))
    }
    fn default_max_retry() -> Dur {
        Dur(Duration::from_secs(30))
    }

    /// The queue directory: `path`, or `<path.data>/diskqueue`.
    pub fn dir(&self, data: &Path) -> PathBuf {
        self.path.clone().unwrap_or_else(|| default_dir(data))
    }

    pub fn segment_bytes(&self) -> u64 {
        match self.segment_size {
            Some(s) => s.0,
            None if self.max_size.0 == 0 => 100 * MIB,
            None => (self.max_size.0 / 10).clamp(MIB / 4, 100 * MIB),
        }
    }

    /// Range checks, naming the key (`queue.disk.*`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.max_size.0 != 0 && self.max_size.0 < MIB {
            return Err(ConfigError::new(
                format!("{key}.max_size"),
                "must be at least 1MiB (or 0 for no limit)",
            ));
        }
        if let Some(s) = self.segment_size {
            if s.0 < 64 << 10 {
                return Err(ConfigError::new(
                    format!("{key}.segment_size"),
                    "must be at least 64KiB",
                ));
            }
            if self.max_size.0 != 0 && s.0 > self.max_size.0 {
                return Err(ConfigError::new(
                    format!("{key}.segment_size"),
                    "must not exceed max_size",
                ));
            }
        }
        for (name, v) in [
            ("read_ahead", self.read_ahead),
            ("write_ahead", self.write_ahead),
        ] {
            if v == 0 || v > 1 << 24 {
                return Err(ConfigError::new(
                    format!("{key}.{name}"),
                    "must be between 1 and 16777216 events",
                ));
            }
        }
        if self.retry_interval.0.is_zero() {
            return Err(ConfigError::new(
                format!("{key}.retry_interval"),
                "must be greater than 0",
            ));
        }
        if self.max_retry_interval.0 < self.retry_interval.0 {
            return Err(ConfigError::new(
                format!("{key}.max_retry_interval"),
                "must not be shorter than retry_interval",
            ));
        }
        Ok(())
    }
}

pub fn default_dir(data: &Path) -> PathBuf {
    data.join("diskqueue")
}

// ---- errors ----

#[derive(Debug, thiserror::Error)]
pub enum DiskQueueError {
    #[error(
        "queue.disk.path {path}: {source}; create the directory or point queue.disk.path elsewhere"
    )]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("queue.disk.path {path} is used by another running oxibeat (it holds {lock}); stop it, or give this agent its own queue.disk.path")]
    Locked { path: String, lock: String },
    #[error("disk queue segment {path}: {problem}; run the oxibeat version that wrote it until `oxibeat queue show` reports 0 events, or move the directory away to start with an empty queue (its events are then not delivered)")]
    Version { path: String, problem: String },
    #[error("disk queue state file {path}: format version {found}, this build reads version {}; run the oxibeat version that wrote it, or move the directory away", format::FORMAT_VERSION)]
    StateVersion { path: String, found: u64 },
    #[error("disk queue {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("queue: the disk queue at {path} still holds {events} events not delivered yet (oldest written {oldest}); [queue.mem] would leave them behind. Keep [queue.disk] (path = {path:?}) until `oxibeat queue show` reports 0 events, or delete {path} to discard them")]
    LeftBehind {
        path: String,
        events: u64,
        oldest: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DiskQueueError + '_ {
    move |source| DiskQueueError::Io {
        path: path.display().to_string(),
        source,
    }
}

// ---- shared state of the queue's threads ----

#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub max_size: u64,
    pub segment_size: u64,
    pub read_ahead: usize,
    pub retry: Duration,
    pub max_retry: Duration,
    pub sync: SyncMode,
}

/// A frame on its way to the writer.
pub(crate) struct Unit {
    pub frame: format::Frame,
    /// Write-ahead space, returned once the frame is written.
    pub permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

pub(crate) struct InputState {
    pub units: VecDeque<Unit>,
    pub next_seq: u64,
    pub closed: bool,
    /// The writer sleeps on an empty queue: only then do publishers wake it.
    pub writer_waiting: bool,
}

pub(crate) struct SegInfo {
    pub len: u64,
    pub sealed: bool,
    pub path: PathBuf,
}

/// A frame just written, kept for the reader: the events the input made, not the bytes (the
/// same Beats JSON comes out of both).
pub(crate) struct Cached {
    pub segment: u64,
    pub offset: u64,
    pub header: format::FrameHeader,
    pub events: Vec<Event>,
}

pub(crate) struct LogState {
    pub segments: BTreeMap<u64, SegInfo>,
    pub tail: VecDeque<Cached>,
    pub tail_bytes: usize,
    /// The writer wrote everything it will ever write (every publisher is gone).
    pub writer_done: bool,
    /// Ack-log entries whose batch was dropped unacknowledged: read and deliver them again.
    pub redeliver: Vec<u64>,
    /// The reader sleeps, caught up: only then does the writer wake it.
    pub reader_waiting: bool,
    /// Hand-off: the reader thread caught up with the writer and let the output take the
    /// frames the writer just wrote straight from `tail`, in its own task (no thread
    /// hand-off). Whoever holds it moves `handoff_pos`; it goes back to the reader thread as
    /// soon as the next frame is not in `tail` (read from the file), the writer is done, or a
    /// redelivery needs the reader.
    pub handoff: bool,
    /// The next frame to deliver while `handoff` is on.
    pub handoff_pos: Position,
    /// The output waits for the writer (hand-off on, nothing new): the writer wakes it.
    pub output_waiting: bool,
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub stop: AtomicBool,
    pub input: Mutex<InputState>,
    pub input_cv: Condvar,
    pub log: Mutex<LogState>,
    /// The reader waits here for new frames and redeliveries.
    pub log_cv: Condvar,
    /// The writer waits here for space (max_size).
    pub space_cv: Condvar,
    pub acks: Mutex<state::AckState>,
    /// Housekeeping waits here (woken when the acknowledged position enters a new segment).
    pub house_cv: Condvar,
    pub sync: Mutex<writer::SyncState>,
    pub sync_cv: Condvar,
    /// Read-ahead: events the reader may hold before the output takes them.
    pub slots: Mutex<usize>,
    pub slots_cv: Condvar,
    pub write_events: Arc<Semaphore>,
    pub write_bytes: Arc<Semaphore>,
    pub write_ahead: usize,
    /// Problems reported at start: the reader does not report them a second time.
    pub known: Mutex<HashSet<(u64, u64)>>,
    /// Wakes the output task: a frame in `tail` during the hand-off, or the hand-off began.
    pub output_cv: tokio::sync::Notify,
    /// Buffers of frames written (and synced), for the next frames to be encoded into.
    pub spare_frames: Mutex<Vec<Vec<u8>>>,
    /// Frames the output took from memory in the hand-off (for tests and profiles).
    pub handed_over: std::sync::atomic::AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    d: Duration,
) -> MutexGuard<'a, T> {
    match cv.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

impl Shared {
    pub fn stats(&self) -> &DiskQueueStats {
        &self.metrics.disk_queue
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleep `d`, waking early on stop; false when stopping.
    pub fn pause(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut g = lock(&self.input);
        while !self.stopping() {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            g = wait_timeout(&self.input_cv, g, deadline - now);
        }
        false
    }

    /// Keep the buffer of a frame that was written (and synced) for a later frame.
    pub fn recycle(&self, buf: Vec<u8>) {
        if buf.capacity() <= SPARE_FRAME_BYTES {
            let mut g = lock(&self.spare_frames);
            if g.len() < SPARE_FRAMES {
                g.push(buf);
            }
        }
    }

    pub fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.seg"))
    }

    /// Copy damaged bytes to `corrupt/<segment>-<offset>.bin` for inspection (once).
    pub fn move_aside(&self, segment: u64, offset: u64, end: u64) {
        move_aside(&self.dir, segment, offset, end);
    }
}

pub(crate) fn move_aside(dir: &Path, segment: u64, offset: u64, end: u64) {
    let aside = dir.join("corrupt");
    let target = aside.join(format!("{segment}-{offset}.bin"));
    if target.exists() {
        return;
    }
    let res = (|| -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        fs::create_dir_all(&aside)?;
        let f = File::open(dir.join(format!("{segment}.seg")))?;
        let len = (end - offset).min(64 * MIB) as usize;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)?;
        fs::write(&target, buf)
    })();
    if let Err(e) = res {
        tracing::warn!(error = %e, path = %target.display(), "disk queue: could not keep a copy of the damaged bytes");
    }
}

pub(crate) fn now_ms() -> u64 {
    (crate::event::now_nanos() / 1_000_000).max(0) as u64
}

// ---- the public handles ----

/// The publishing side, owned by the pipeline's publisher: when it is dropped (every input
/// stopped), the writer writes what is left and finishes.
pub struct Input {
    shared: Arc<Shared>,
}

/// Returned when the queue stopped; the events were not queued (and not acknowledged).
#[derive(Debug)]
pub struct Stopped;

impl Input {
    /// Encode `events` and hand them to the writer, waiting for write-ahead space.
    pub async fn publish(&self, events: Vec<Event>) -> Result<(), Stopped> {
        let n = events.len();
        let sh = &self.shared;
        let spare = lock(&sh.spare_frames).pop().unwrap_or_default();
        let frames = format::encode_reusing(events, spare);
        let bytes: usize = frames.iter().map(|f| f.bytes.len()).sum();
        let want_events = n.clamp(1, sh.write_ahead) as u32;
        let want_bytes = bytes.clamp(1, WRITE_AHEAD_BYTES) as u32;
        let ev = sh
            .write_events
            .clone()
            .acquire_many_owned(want_events)
            .await
            .map_err(|_| Stopped)?;
        let by = sh
            .write_bytes
            .clone()
            .acquire_many_owned(want_bytes)
            .await
            .map_err(|_| Stopped)?;
        let mut permits = Some((ev, by));
        let mut g = lock(&sh.input);
        if g.closed || sh.stopping() {
            return Err(Stopped);
        }
        let count = frames.len();
        let now = now_ms();
        for (i, mut frame) in frames.into_iter().enumerate() {
            let first = g.next_seq;
            g.next_seq += frame.count as u64;
            frame.seal(first, now);
            g.units.push_back(Unit {
                frame,
                // The last frame of the call returns the space.
                permits: if i + 1 == count { permits.take() } else { None },
            });
        }
        let wake = g.writer_waiting;
        drop(g);
        if wake {
            sh.input_cv.notify_all();
        }
        Ok(())
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        lock(&self.shared.input).closed = true;
        self.shared.input_cv.notify_all();
    }
}

/// One frame's events on their way to the output, and the ack-log entry they settle.
pub struct Delivery {
    pub events: Vec<Event>,
    pub span: Span,
    /// Read-ahead slots it holds (0 for a frame taken in the hand-off).
    pub slots: usize,
}

/// The output side: deliveries in queue order. The reader hands them over in bursts (one
/// wake-up of the output task for many frames).
pub struct Output {
    rx: mpsc::UnboundedReceiver<Vec<Delivery>>,
    ready: VecDeque<Delivery>,
    shared: Arc<Shared>,
}

impl Output {
    /// The next frame in queue order: what the reader thread sent first, then (in the
    /// hand-off) the frames the writer just wrote, taken from memory in this task.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            if let Some(d) = self.try_recv() {
                return Some(d);
            }
            // Cancel-safe: nothing is taken before one of these completes.
            tokio::select! {
                burst = self.rx.recv() => match burst {
                    Some(burst) => self.ready.extend(burst),
                    // The reader finished (every frame delivered, the writer done) or stopped.
                    None => return None,
                },
                _ = self.shared.output_cv.notified() => {}
            }
        }
    }

    pub fn try_recv(&mut self) -> Option<Delivery> {
        if self.ready.is_empty() {
            if let Ok(burst) = self.rx.try_recv() {
                self.ready.extend(burst);
            }
        }
        if let Some(d) = self.ready.pop_front() {
            self.release(d.slots);
            return Some(d);
        }
        self.take_handed_over()
    }

    /// In the hand-off: the frame at the hand-off position, from `tail`. Gives the hand-off
    /// back to the reader thread when that frame is not in memory.
    fn take_handed_over(&mut self) -> Option<Delivery> {
        let sh = &self.shared;
        let mut g = lock(&sh.log);
        loop {
            if !g.handoff || sh.stopping() {
                return None;
            }
            let pos = g.handoff_pos;
            while g
                .tail
                .front()
                .is_some_and(|c| (c.segment, c.offset) < (pos.segment, pos.offset))
            {
                if let Some(c) = g.tail.pop_front() {
                    g.tail_bytes -= c.header.frame_len() as usize;
                }
            }
            let front = g.tail.front().map(|c| (c.segment, c.offset));
            if front == Some((pos.segment, pos.offset)) {
                break;
            }
            let next_seg = g
                .segments
                .range(pos.segment + 1..)
                .next()
                .map(|(id, _)| *id);
            match g.segments.get(&pos.segment) {
                // Nothing new written yet: the writer wakes this task.
                Some(i) if i.len <= pos.offset && !i.sealed => {
                    g.output_waiting = true;
                    return None;
                }
                // The writer moved on to the next segment, whose first frame is in memory.
                Some(i)
                    if i.len <= pos.offset
                        && next_seg
                            .is_some_and(|id| front == Some((id, format::SEGMENT_HEADER_LEN))) =>
                {
                    let end = Position {
                        segment: front.map_or(pos.segment, |f| f.0),
                        offset: format::SEGMENT_HEADER_LEN,
                        seq: pos.seq,
                    };
                    state::push_done(sh, pos.segment, pos.offset, end);
                    g.handoff_pos = end;
                }
                // The next frame is only on disk: the reader thread reads it.
                _ => {
                    g.handoff = false;
                    drop(g);
                    sh.log_cv.notify_all();
                    return None;
                }
            }
        }
        let c = g.tail.pop_front()?;
        let h = c.header;
        g.tail_bytes -= h.frame_len() as usize;
        let pos = g.handoff_pos;
        let end = Position {
            segment: c.segment,
            offset: c.offset + h.frame_len(),
            seq: (h.first_seq + h.count as u64).max(pos.seq),
        };
        g.handoff_pos = end;
        // Pushed while the log is locked: ack-log entries stay in queue order.
        let id = lock(&sh.acks).push(
            state::Entry {
                segment: c.segment,
                offset: c.offset,
                end,
                count: h.count,
                written_ms: h.written_ms,
                acked: false,
            },
            sh.stats(),
        );
        drop(g);
        let stats = sh.stats();
        DiskQueueStats::add(&stats.read_events, c.events.len() as u64);
        DiskQueueStats::add(&stats.read_bytes, h.frame_len());
        sh.handed_over.fetch_add(1, Ordering::Relaxed);
        Some(Delivery {
            events: c.events,
            span: Span {
                shared: sh.clone(),
                id,
                done: false,
            },
            slots: 0,
        })
    }

    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let sh = &self.shared;
        *lock(&sh.slots) += n;
        sh.slots_cv.notify_all();
    }
}

/// The acknowledgement of one delivered frame. Acked: the queue's position may move past it.
/// Dropped without an ack (an output gave up on the batch): it is delivered again.
pub struct Span {
    shared: Arc<Shared>,
    id: u64,
    done: bool,
}

impl Span {
    pub fn ack(mut self) {
        self.done = true;
        state::ack(&self.shared, self.id);
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.shared.log).redeliver.push(self.id);
            self.shared.log_cv.notify_all();
        }
    }
}

/// Control of a running disk queue (for the agent): orderly stop.
pub struct DiskQueue {
    shared: Arc<Shared>,
    threads: Vec<(&'static str, JoinHandle<()>)>,
    _lock: File,
}

impl DiskQueue {
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Wait up to `timeout` for the writer to write what the inputs handed over (and the sync
    /// thread to make it durable and acknowledge it), then stop every thread and persist the
    /// acknowledged position. Events not written by then were not acknowledged to their
    /// inputs: they are read again from their files at the next start.
    pub fn shutdown(mut self, timeout: Duration) {
        let sh = self.shared.clone();
        let deadline = Instant::now() + timeout;
        let writer_done = || lock(&sh.log).writer_done && lock(&sh.sync).done;
        while !writer_done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !writer_done() {
            tracing::warn!("disk queue: stopping before every queued event was written; they are not acknowledged and will be read again from their files");
        }
        sh.stop.store(true, Ordering::Release);
        sh.write_events.close();
        sh.write_bytes.close();
        sh.input_cv.notify_all();
        sh.log_cv.notify_all();
        sh.space_cv.notify_all();
        sh.sync_cv.notify_all();
        sh.slots_cv.notify_all();
        sh.house_cv.notify_all();
        for (name, t) in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!(thread = name, "disk queue thread panicked");
            }
        }
    }
}

/// Open (or create) the queue: recover what is on disk, start the threads.
pub fn open(
    cfg: &DiskQueueConfig,
    data: &Path,
    metrics: Arc<Metrics>,
) -> Result<(Input, Output, DiskQueue), DiskQueueError> {
    let dir = cfg.dir(data);
    let dir_err = |source| DiskQueueError::Dir {
        path: dir.display().to_string(),
        source,
    };
    fs::create_dir_all(&dir).map_err(dir_err)?;
    let lock_file = take_lock(&dir)?;
    remember_location(data, &dir);
    let stats = &metrics.disk_queue;
    stats.enabled.store(true, Ordering::Relaxed);
    stats
        .max_bytes
        .store(cfg.max_size.0 as i64, Ordering::Relaxed);

    let rec = state::recover(&dir, stats)?;
    let settings = Settings {
        max_size: cfg.max_size.0,
        segment_size: cfg.segment_bytes(),
        read_ahead: cfg.read_ahead,
        retry: cfg.retry_interval.0,
        max_retry: cfg.max_retry_interval.0,
        sync: cfg.sync,
    };
    let backlog = rec.events;
    metrics
        .gauges
        .pipeline_active
        .fetch_add(backlog as i64, Ordering::Relaxed);
    if backlog > 0 {
        tracing::info!(
            events = backlog,
            segments = rec.segments.len(),
            path = %dir.display(),
            "disk queue: delivering events queued before the restart"
        );
    }
    let mut segments = BTreeMap::new();
    for s in &rec.segments {
        segments.insert(
            s.id,
            SegInfo {
                len: s.len,
                sealed: true,
                path: s.path.clone(),
            },
        );
    }
    let shared = Arc::new(Shared {
        dir: dir.clone(),
        settings,
        metrics: metrics.clone(),
        stop: AtomicBool::new(false),
        input: Mutex::new(InputState {
            units: VecDeque::new(),
            next_seq: rec.next_seq,
            closed: false,
            writer_waiting: false,
        }),
        input_cv: Condvar::new(),
        log: Mutex::new(LogState {
            segments,
            tail: VecDeque::new(),
            tail_bytes: 0,
            writer_done: false,
            redeliver: Vec::new(),
            reader_waiting: false,
            handoff: false,
            handoff_pos: rec.acked,
            output_waiting: false,
        }),
        log_cv: Condvar::new(),
        space_cv: Condvar::new(),
        acks: Mutex::new(state::AckState::new(rec.acked)),
        house_cv: Condvar::new(),
        sync: Mutex::new(writer::SyncState::default()),
        sync_cv: Condvar::new(),
        slots: Mutex::new(cfg.read_ahead),
        slots_cv: Condvar::new(),
        write_events: Arc::new(Semaphore::new(cfg.write_ahead)),
        write_bytes: Arc::new(Semaphore::new(WRITE_AHEAD_BYTES)),
        write_ahead: cfg.write_ahead,
        known: Mutex::new(rec.known),
        output_cv: tokio::sync::Notify::new(),
        spare_frames: Mutex::new(Vec::new()),
        handed_over: std::sync::atomic::AtomicU64::new(0),
    });
    let first_new = rec.next_segment;
    let w = writer::Writer::start(shared.clone(), first_new)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let r = reader::Reader::new(shared.clone(), rec.acked, rec.oldest_ms, tx);
    let mut threads = Vec::new();
    let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(format!("oxibeat-dq-{name}"))
            .spawn(move || {
                // The reader keeps its normal policy: it works when the output is behind
                // (a backlog), and then it is what the output waits for.
                if name != "reader" {
                    batch_scheduling();
                }
                f()
            })
            .map_err(io_err(&dir))
    };
    threads.push(("writer", spawn("writer", Box::new(move || w.run()))?));
    let s2 = shared.clone();
    threads.push((
        "sync",
        spawn("sync", Box::new(move || writer::run_syncer(s2)))?,
    ));
    threads.push(("reader", spawn("reader", Box::new(move || r.run()))?));
    let s3 = shared.clone();
    threads.push((
        "housekeeping",
        spawn("house", Box::new(move || state::housekeeping(s3)))?,
    ));
    Ok((
        Input {
            shared: shared.clone(),
        },
        Output {
            rx,
            ready: VecDeque::new(),
            shared: shared.clone(),
        },
        DiskQueue {
            shared,
            threads,
            _lock: lock_file,
        },
    ))
}

/// `SCHED_BATCH` for the calling queue thread: when it is woken (a frame to write, to sync,
/// to read) while an input or the output is running on the same core, it waits for the end
/// of their time slice instead of preempting them at once. Each wake-up then finds many frames
/// instead of one: fewer context switches, larger writes and fsyncs. On an idle core it runs
/// at once, as before. Best effort: on failure the thread keeps the normal policy.
fn batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

/// An exclusive `flock` on `<dir>/.lock`, held while the queue is open (released by the
/// kernel if the process dies).
fn take_lock(dir: &Path) -> Result<File, DiskQueueError> {
    let path = dir.join(".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(DiskQueueError::Locked {
            path: dir.display().to_string(),
            lock: path.display().to_string(),
        });
    }
    Ok(f)
}

/// `<path.data>/queue.disk.json` says where the disk queue is, so that a later start with
/// `[queue.mem]` finds its events even when `queue.disk.path` pointed elsewhere.
fn remember_location(data: &Path, dir: &Path) {
    let abs = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let body = serde_json::json!({"path": abs.display().to_string()}).to_string();
    let tmp = data.join("queue.disk.json.new");
    if fs::create_dir_all(data).is_ok() && fs::write(&tmp, body).is_ok() {
        let _ = fs::rename(&tmp, data.join("queue.disk.json"));
    }
}

/// For a start with `[queue.mem]`: refuse while a disk queue under this `path.data` still holds
/// events; forget it once it is empty.
pub fn check_left_behind(data: &Path) -> Result<(), DiskQueueError> {
    let marker = data.join("queue.disk.json");
    let mut dirs = vec![default_dir(data)];
    if let Some(p) = crate::bounded::read(&marker, 1 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("path")?.as_str().map(PathBuf::from))
    {
        dirs.insert(0, p);
    }
    for dir in dirs {
        if !dir.join("state.json").exists() && !has_segments(&dir) {
            continue;
        }
        let summary = inspect::summary(&dir)?;
        if summary.events > 0 {
            return Err(DiskQueueError::LeftBehind {
                path: dir.display().to_string(),
                events: summary.events,
                oldest: summary
                    .oldest_ms
                    .map(|ms| crate::event::format_timestamp(ms as i64 * 1_000_000))
                    .unwrap_or_else(|| "?".into()),
            });
        }
    }
    let _ = fs::remove_file(&marker);
    Ok(())
}

fn has_segments(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BeatInfo, FileSource, InputCommon, LineFields};
    use crate::pipeline::ack::AckTracker;
    use crate::processors::Chain;

    fn source() -> Arc<FileSource> {
        let beat = beat();
        let common = Arc::new(InputCommon::new(
            "t",
            "filestream",
            &beat,
            serde_json::Map::new(),
        ));
        Arc::new(FileSource::new(
            "/t.log".into(),
            "1".into(),
            "2".into(),
            None,
            common,
        ))
    }

    fn events(src: &Arc<FileSource>, t: &Arc<AckTracker>, from: u64, n: u64) -> Vec<Event> {
        (from..from + n)
            .map(|i| {
                Event::line(
                    0,
                    LineFields {
                        message: format!("m{i}").into(),
                        offset: i * 10,
                        flags: 0,
                        source: src.clone(),
                        stream: None,
                    },
                    Some(t.next_cursor((i + 1) * 10)),
                )
            })
            .collect()
    }

    fn open_queue(
        dir: &Path,
        cfg: DiskQueueConfig,
    ) -> (
        crate::pipeline::Publisher,
        crate::pipeline::Consumer,
        DiskQueue,
        Arc<Metrics>,
    ) {
        let m = Metrics::new();
        let (p, c, q) =
            crate::pipeline::disk_queue(&cfg, dir, Arc::new(Chain::default()), m.clone())
                .expect("open");
        (p, c, q, m)
    }

    async fn msgs(c: &mut crate::pipeline::Consumer) -> (Vec<String>, crate::pipeline::Batch) {
        let b = tokio::time::timeout(Duration::from_secs(10), c.next_batch(1))
            .await
            .expect("a batch in time")
            .expect("a batch");
        let m = b
            .events()
            .filter_map(|e| e.message().map(String::from))
            .collect();
        (m, b)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inputs_are_acked_when_durable_and_the_queue_moves_only_over_acked_frames() {
        let tmp = tempfile::tempdir().unwrap();
        let src = source();
        let t = AckTracker::new(0);
        let (p, mut c, q, m) = open_queue(tmp.path(), DiskQueueConfig::default());
        p.publish(events(&src, &t, 0, 3)).await.unwrap();
        p.publish(events(&src, &t, 3, 2)).await.unwrap();
        let (first, b1) = msgs(&mut c).await;
        let (second, b2) = msgs(&mut c).await;
        assert_eq!(first, ["m0", "m1", "m2"]);
        assert_eq!(second, ["m3", "m4"]);
        // Durable (fsynced) before any output ack: the input's cursor is at the end.
        let deadline = Instant::now() + Duration::from_secs(5);
        while t.acked_offset() != 50 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(t.acked_offset(), 50, "acked to the input once fsynced");
        // The output acks out of order: the queue position waits for the first frame.
        b2.ack();
        let pos_after_second = lock(&q.shared.acks).acked;
        assert_eq!(
            pos_after_second.seq, 0,
            "an unacked older frame holds the position"
        );
        b1.ack();
        assert_eq!(lock(&q.shared.acks).acked.seq, 5);
        assert_eq!(m.disk_queue.events.load(Ordering::Relaxed), 0);
        drop(p);
        assert!(
            c.next_batch(10).await.is_none(),
            "closed after the last frame"
        );
        q.shutdown(Duration::from_secs(5));
        let state = state::load_state(tmp.path().join("diskqueue").as_path())
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(state.seq, 5, "position persisted at stop");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_dropped_unacked_is_delivered_again_and_a_restart_replays_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let src = source();
        let t = AckTracker::new(0);
        let (p, mut c, q, _) = open_queue(tmp.path(), DiskQueueConfig::default());
        p.publish(events(&src, &t, 0, 2)).await.unwrap();
        p.publish(events(&src, &t, 2, 2)).await.unwrap();
        let (first, b1) = msgs(&mut c).await;
        assert_eq!(first, ["m0", "m1"]);
        drop(b1); // the output gave up on it
        let mut seen = Vec::new();
        let mut batches = Vec::new();
        while seen.len() < 4 {
            let (m, b) = msgs(&mut c).await;
            seen.extend(m);
            batches.push(b);
        }
        seen.sort();
        assert_eq!(seen, ["m0", "m1", "m2", "m3"], "redelivered");
        // Ack only the batch holding m2/m3: m0/m1 stay unacknowledged.
        for b in batches {
            let has_m0 = b.events().any(|e| e.message() == Some("m0"));
            if !has_m0 {
                b.ack();
            }
        }
        drop(p);
        drop(c);
        q.shutdown(Duration::from_secs(5));
        // A restart delivers exactly the unacknowledged frame (and what follows it).
        let (p, mut c, q, m) = open_queue(tmp.path(), DiskQueueConfig::default());
        assert_eq!(m.disk_queue.events.load(Ordering::Relaxed), 4);
        let (again, b) = msgs(&mut c).await;
        assert_eq!(again, ["m0", "m1"]);
        b.ack();
        let (rest, b) = msgs(&mut c).await;
        assert_eq!(
            rest,
            ["m2", "m3"],
            "acked after an unacked frame: sent again (at-least-once)"
        );
        b.ack();
        drop(p);
        assert!(c.next_batch(10).await.is_none());
        q.shutdown(Duration::from_secs(5));
    }

    fn beat() -> BeatInfo {
        BeatInfo {
            beat: "oxibeat".into(),
            version: "0.1.0".into(),
            hostname: "h".into(),
            name: "h".into(),
            agent_id: "a".into(),
            ephemeral_id: "e".into(),
        }
    }

    /// The Beats JSON of every event of every frame in the queue's segment files, in order.
    fn on_disk(dir: &Path) -> Vec<String> {
        let mut segs: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                Some((name.strip_suffix(".seg")?.parse().ok()?, e.path()))
            })
            .collect();
        segs.sort();
        let mut out = Vec::new();
        let mut dec = format::Decoder::default();
        for (_, path) in segs {
            let f = Arc::new(File::open(&path).unwrap());
            let len = f.metadata().unwrap().len();
            let mut sc = format::Scanner::new(f, format::SEGMENT_HEADER_LEN, len, true);
            loop {
                match sc.next_step().unwrap() {
                    format::Step::Frame { header, area, .. } => {
                        let d = dec.decode(&header, &area);
                        assert!(d.problems.is_empty(), "{:?}", d.problems);
                        for e in &d.events {
                            let mut v = Vec::new();
                            e.write_json(&beat(), &mut v);
                            out.push(String::from_utf8(v).unwrap());
                        }
                    }
                    format::Step::End => break,
                    other => panic!("{path:?}: {other:?}"),
                }
            }
        }
        out
    }

    fn json_of(b: &crate::pipeline::Batch) -> Vec<String> {
        b.events()
            .map(|e| {
                let mut v = Vec::new();
                e.write_json(&beat(), &mut v);
                String::from_utf8(v).unwrap()
            })
            .collect()
    }

    /// A reader that keeps up gets the frames the writer just wrote from memory (the
    /// hand-off): exactly the events of the frames on disk, in their order, across segment
    /// rotations; and when the agent stops (or dies) before the output confirmed them, the
    /// next start delivers the same events again from the files.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_handed_over_in_memory_are_the_frames_on_disk_and_replay_after_a_stop() {
        let tmp = tempfile::tempdir().unwrap();
        let src = source();
        let t = AckTracker::new(0);
        let cfg = DiskQueueConfig {
            segment_size: Some(ByteSize(64 << 10)),
            ..Default::default()
        };
        let (p, mut c, q, _) = open_queue(tmp.path(), cfg.clone());
        let mut delivered = Vec::new();
        let mut held = Vec::new();
        for i in 0..60u64 {
            let mut evs = events(&src, &t, i * 20, 20);
            for e in &mut evs {
                if let crate::event::Fields::Line(l) = &mut e.fields {
                    l.message = format!("{} {}", l.message, "y".repeat(300)).into();
                }
            }
            p.publish(evs).await.unwrap();
            // Keep up with the writer, without confirming anything.
            while let Ok(Some(b)) =
                tokio::time::timeout(Duration::from_millis(200), c.next_batch(10_000)).await
            {
                delivered.extend(json_of(&b));
                held.push(b);
                if delivered.len() as u64 == (i + 1) * 20 {
                    break;
                }
            }
        }
        assert_eq!(delivered.len(), 1200);
        let handed = q.shared.handed_over.load(Ordering::Relaxed);
        assert!(handed > 0, "frames were taken from memory");
        let dir = tmp.path().join("diskqueue");
        let segments = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .count();
        assert!(
            segments > 3,
            "the hand-off went across rotations ({segments} segments)"
        );
        // Durable before the input was told: its cursor reached the end.
        let deadline = Instant::now() + Duration::from_secs(5);
        while t.acked_offset() != 12_000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(t.acked_offset(), 12_000);
        assert_eq!(
            delivered,
            on_disk(&dir),
            "the same events as the files hold, in order"
        );
        // Stop with nothing confirmed (as a crash would leave it): the next start replays all.
        drop(p);
        q.shutdown(Duration::from_secs(5));
        drop(held);
        drop(c);
        let (p, mut c, q, m) = open_queue(tmp.path(), cfg);
        assert_eq!(m.disk_queue.events.load(Ordering::Relaxed), 1200);
        drop(p);
        let mut again = Vec::new();
        while let Some(b) = c.next_batch(10_000).await {
            again.extend(json_of(&b));
            b.ack();
        }
        assert_eq!(
            again, delivered,
            "replayed from disk: the same events, in order"
        );
        q.shutdown(Duration::from_secs(5));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_size_pauses_publishers_until_the_output_acks() {
        let tmp = tempfile::tempdir().unwrap();
        let src = source();
        let t = AckTracker::new(0);
        let cfg = DiskQueueConfig {
            max_size: ByteSize(1 << 20),
            segment_size: Some(ByteSize(64 << 10)),
            write_ahead: 4,
            ..Default::default()
        };
        let (p, mut c, q, m) = open_queue(tmp.path(), cfg);
        let big = move |i: u64| {
            let mut e = events(&src, &t, i, 1);
            if let crate::event::Fields::Line(l) = &mut e[0].fields {
                l.message = format!("{i} {}", "x".repeat(30_000)).into();
            }
            e
        };
        // 1 MiB holds about 34 of these; publish 60 without reading (4 more wait in memory).
        let publisher = tokio::spawn(async move {
            for i in 0..60 {
                p.publish(big(i)).await.unwrap();
            }
            p
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !publisher.is_finished(),
            "publishers wait while the queue is full"
        );
        let used = m.disk_queue.bytes.load(Ordering::Relaxed);
        assert!(used <= 1 << 20, "disk usage {used} within max_size");
        // The blocks too, preallocation included: max_size plus the segment being written
        // (and each file's last block).
        let (files, blocks) = allocated(&tmp.path().join("diskqueue"));
        assert!(
            blocks <= (1 << 20) + (64 << 10) + files * 4096,
            "{blocks} bytes allocated in {files} segments"
        );
        let mut n = 0;
        while n < 60 {
            let b = tokio::time::timeout(Duration::from_secs(10), c.next_batch(100))
                .await
                .unwrap()
                .unwrap();
            n += b.len();
            b.ack();
            assert!(m.disk_queue.bytes.load(Ordering::Relaxed) <= 1 << 20);
        }
        let p = publisher.await.unwrap();
        drop(p);
        assert!(c.next_batch(10).await.is_none());
        q.shutdown(Duration::from_secs(5));
    }

    /// The segment files of `dir` with their metadata.
    fn segment_files(dir: &Path) -> Vec<(PathBuf, fs::Metadata)> {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .map(|e| (e.path(), e.metadata().unwrap()))
            .collect()
    }

    /// Segment files and the bytes allocated to them (`st_blocks`).
    fn allocated(dir: &Path) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let segs = segment_files(dir);
        let bytes = segs.iter().map(|(_, m)| m.blocks() * 512).sum();
        (segs.len() as u64, bytes)
    }

    /// The segment at `path` has no blocks past its last one.
    fn assert_only_written_allocated(path: &Path, when: &str) {
        use std::os::unix::fs::MetadataExt;
        let md = fs::metadata(path).unwrap();
        assert!(
            md.blocks() * 512 <= md.len().div_ceil(4096) * 4096 + 4096,
            "{when}: {} bytes allocated to a segment of {}",
            md.blocks() * 512,
            md.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_reserve_their_blocks_and_give_back_what_a_sealed_one_did_not_use() {
        let tmp = tempfile::tempdir().unwrap();
        // Whether this filesystem has fallocate (ext4, xfs, tmpfs do).
        let fallocates =
            writer::preallocate(&File::create(tmp.path().join("probe")).unwrap(), 1 << 20);
        let src = source();
        let t = AckTracker::new(0);
        let cfg = DiskQueueConfig {
            segment_size: Some(ByteSize(1 << 20)),
            ..Default::default()
        };
        let (p, mut c, q, _m) = open_queue(tmp.path(), cfg);
        p.publish(events(&src, &t, 0, 3)).await.unwrap();
        let (got, b) = msgs(&mut c).await;
        assert_eq!(got, ["m0", "m1", "m2"]);
        let dir = tmp.path().join("diskqueue");
        let (files, blocks) = allocated(&dir);
        assert_eq!(files, 1);
        if fallocates {
            assert!(
                blocks >= 1 << 20,
                "the segment being written has its blocks: {blocks}"
            );
        } else {
            eprintln!("this filesystem has no fallocate: only the release is checked");
        }
        // Stopped with the batch unacked: the segment stays, with only what was written.
        drop(b);
        drop(p);
        drop(c);
        q.shutdown(Duration::from_secs(5));
        let segs = segment_files(&dir);
        assert_eq!(segs.len(), 1);
        let (seg, md) = &segs[0];
        assert!(md.len() > format::SEGMENT_HEADER_LEN);
        assert_only_written_allocated(seg, "after a stop");
        if !fallocates {
            return;
        }
        // A segment left by a kill keeps its reserved blocks: the next start gives them back.
        assert!(writer::preallocate(
            &OpenOptions::new().write(true).open(seg).unwrap(),
            1 << 20
        ));
        assert!(allocated(&dir).1 >= 1 << 20);
        let (p, mut c, q, _m) = open_queue(tmp.path(), DiskQueueConfig::default());
        assert_only_written_allocated(seg, "after a restart");
        let (got, b) = msgs(&mut c).await;
        assert_eq!(
            got,
            ["m0", "m1", "m2"],
            "the unacked events are delivered again"
        );
        b.ack();
        drop(p);
        assert!(c.next_batch(10).await.is_none());
        q.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn config_values_and_exclusive_queues() {
        use crate::config::Config;
        let load = |q: &str| {
            Config::from_str_with(
                &format!("[[inputs]]\ntype = \"filestream\"\nid = \"a\"\npaths = [\"/x\"]\n[output.discard]\n{q}"),
                "t.toml",
                &[],
                &|_| None,
            )
            .map(|(c, _)| c)
        };
        let c = load("[queue.disk]\nsync = \"250ms\"\nmax_size = \"1GiB\"\n").unwrap();
        let d = c.queue.disk.unwrap();
        assert_eq!(d.sync, SyncMode::Interval(Duration::from_millis(250)));
        assert_eq!(d.segment_bytes(), 100 << 20);
        assert_eq!(d.read_ahead, 512);
        assert_eq!(d.write_ahead, 2048);
        let small = load("[queue.disk]\nmax_size = \"10MiB\"\n").unwrap();
        assert_eq!(small.queue.disk.unwrap().segment_bytes(), 1 << 20);
        let e = load("[queue.mem]\nevents = 4096\n[queue.disk]\n").unwrap_err();
        assert_eq!(e.key, "queue");
        assert!(e.message.contains("exclusive"), "{e}");
        let e = load("[queue.disk]\nsync = \"sometimes\"\n").unwrap_err();
        assert!(e.to_string().contains("queue.disk.sync"), "{e}");
        let e = load("[queue.disk]\nmax_size = \"10MiB\"\nsegment_size = \"20MiB\"\n").unwrap_err();
        assert_eq!(e.key, "queue.disk.segment_size");
        let e = load("[queue.disk]\nread_ahead = 0\n").unwrap_err();
        assert_eq!(e.key, "queue.disk.read_ahead");
        let e = load("[queue.disk]\nmax_sise = \"1GiB\"\n").unwrap_err();
        assert!(e.to_string().contains("max_sise"), "{e}");
    }
}
