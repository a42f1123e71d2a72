//! The acknowledged position: the ack log (out-of-order output acks → a contiguous prefix),
//! `state.json` (replaced atomically), the walk over the segments at start (recovery, and
//! `queue show|check`), and housekeeping (persist, delete acknowledged segments, rates).

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::format::{self, Decoder, HeaderError, Scanner, Step, SEGMENT_HEADER_LEN};
use super::{lock, wait_timeout, DiskQueueError, Shared};
use crate::monitoring::disk_queue::DiskQueueStats;

/// A place in the queue: the next frame to deliver is at `offset` of segment `segment`, and
/// its first event has sequence number `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
    pub seq: u64,
}

const STATE_VERSION: u64 = 1;

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u64,
    segment: u64,
    offset: u64,
    seq: u64,
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// `Ok(None)` when there is no state file, or it cannot be read (reported by the caller).
pub fn load_state(dir: &Path) -> Result<Result<Option<Position>, String>, DiskQueueError> {
    let path = state_path(dir);
    // A regular file of at most 1 MiB (the state is one small JSON object): a state.json
    // replaced by a device or a huge file is reported, not read.
    let bytes = match crate::bounded::read(&path, 1 << 20) {
        Ok(b) => b,
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(Ok(None)),
        Err(e) => return Ok(Err(format!("cannot read it: {}", e.reason()))),
    };
    let v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("not valid JSON: {e}"))),
    };
    if let Some(found) = v.get("version").and_then(|v| v.as_u64()) {
        if found != STATE_VERSION {
            return Err(DiskQueueError::StateVersion {
                path: path.display().to_string(),
                found,
            });
        }
    }
    match serde_json::from_value::<StateFile>(v) {
        Ok(s) => Ok(Ok(Some(Position {
            segment: s.segment,
            offset: s.offset,
            seq: s.seq,
        }))),
        Err(e) => Ok(Err(format!("unexpected content: {e}"))),
    }
}

/// Write `state.json` atomically: temp file, fsync, rename, fsync of the directory.
pub fn save_state(dir: &Path, p: Position) -> std::io::Result<()> {
    let body = serde_json::to_vec(&StateFile {
        version: STATE_VERSION,
        segment: p.segment,
        offset: p.offset,
        seq: p.seq,
    })?;
    let tmp = dir.join("state.json.new");
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, state_path(dir))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

// ---- the ack log ----

pub struct Entry {
    /// Segment and offset of the frame (for a redelivery).
    pub segment: u64,
    pub offset: u64,
    /// Where the next frame starts.
    pub end: Position,
    /// Events the frame's header counts (what leaves the queue when it is acknowledged).
    pub count: u32,
    pub written_ms: u64,
    pub acked: bool,
}

pub struct AckState {
    entries: VecDeque<Entry>,
    /// Id of `entries[0]`.
    base: u64,
    pub acked: Position,
}

impl AckState {
    pub fn new(acked: Position) -> Self {
        AckState {
            entries: VecDeque::new(),
            base: 0,
            acked,
        }
    }

    pub fn get(&self, id: u64) -> Option<&Entry> {
        let i = id.checked_sub(self.base)? as usize;
        self.entries.get(i)
    }

    /// Add the next frame (or a pre-acknowledged step over a skipped range or a segment end).
    pub fn push(&mut self, e: Entry, stats: &DiskQueueStats) -> u64 {
        if self.entries.is_empty() && !e.acked {
            stats
                .oldest_written_ms
                .store(e.written_ms, Ordering::Relaxed);
        }
        let id = self.base + self.entries.len() as u64;
        self.entries.push_back(e);
        id
    }

    /// Mark `id` acknowledged (if known) and move the position over the acknowledged prefix.
    /// Returns true when the position entered another segment.
    pub fn mark(&mut self, id: u64, stats: &DiskQueueStats) -> bool {
        if let Some(i) = id.checked_sub(self.base) {
            if let Some(e) = self.entries.get_mut(i as usize) {
                e.acked = true;
            }
        }
        self.advance(stats)
    }

    pub fn advance(&mut self, stats: &DiskQueueStats) -> bool {
        let before = self.acked.segment;
        let mut released = 0u64;
        let mut moved = false;
        while let Some(e) = self.entries.front() {
            if !e.acked {
                break;
            }
            self.acked = e.end;
            released += e.count as u64;
            self.entries.pop_front();
            self.base += 1;
            moved = true;
        }
        if released > 0 {
            stats.events.fetch_sub(released as i64, Ordering::Relaxed);
        }
        if moved {
            if let Some(front) = self.entries.iter().find(|e| !e.acked) {
                stats
                    .oldest_written_ms
                    .store(front.written_ms, Ordering::Relaxed);
            }
        }
        self.acked.segment != before
    }
}

/// An output acknowledged delivery `id`.
pub fn ack(shared: &Shared, id: u64) {
    let moved = lock(&shared.acks).mark(id, shared.stats());
    if moved {
        shared.house_cv.notify_all();
    }
}

/// Add an entry that is acknowledged already (skipped bytes, the start of the next segment).
pub fn push_done(shared: &Shared, segment: u64, offset: u64, end: Position) {
    let mut g = lock(&shared.acks);
    g.push(
        Entry {
            segment,
            offset,
            end,
            count: 0,
            written_ms: 0,
            acked: true,
        },
        shared.stats(),
    );
    if g.advance(shared.stats()) {
        drop(g);
        shared.house_cv.notify_all();
    }
}

// ---- the walk over the segments ----

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The file ends inside the last frame: a write cut short by a crash. Its events were not
    /// acknowledged to their inputs with `sync = "batch"`, so nothing is lost.
    TornTail,
    /// Bytes that are not a frame, with an intact frame after them.
    Damaged,
    /// Bytes that are not a frame, up to the end of the file.
    DamagedTail,
    /// Events missing between two intact frames (lost in damaged bytes or a removed segment).
    Gap,
    /// An entry inside an intact frame failed its checksum or could not be decoded.
    Entry(String),
    /// The segment header is damaged (frames after it are still read).
    Header(String),
    /// The state file could not be read: delivery restarts from the oldest segment.
    State(String),
    /// A segment file shorter than its header (its creation was interrupted): removed.
    Empty,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub segment: u64,
    pub offset: u64,
    pub end: u64,
    pub kind: ProblemKind,
    /// Events lost, when known.
    pub lost: u64,
}

impl Problem {
    pub fn describe(&self) -> String {
        let at = format!("segment {} offset {}", self.segment, self.offset);
        match &self.kind {
            ProblemKind::TornTail => format!(
                "{at}: incomplete last frame ({} bytes, a write cut short)",
                self.end - self.offset
            ),
            ProblemKind::Damaged => format!(
                "{at}: {} damaged bytes (up to offset {}), skipped",
                self.end - self.offset,
                self.end
            ),
            ProblemKind::DamagedTail => format!(
                "{at}: {} damaged bytes up to the end of the segment",
                self.end - self.offset
            ),
            ProblemKind::Gap => format!(
                "{at}: {} events missing before this frame (lost in damaged or removed data)",
                self.lost
            ),
            ProblemKind::Entry(why) => format!("{at}: damaged entry: {why}"),
            ProblemKind::Header(why) => format!("segment {}: header: {why}", self.segment),
            ProblemKind::State(why) => {
                format!("state.json: {why}; delivering again from the oldest segment")
            }
            ProblemKind::Empty => format!(
                "segment {}: shorter than its header (creation interrupted), removed",
                self.segment
            ),
        }
    }

    /// A problem that may have lost events (as opposed to a cut torn write).
    pub fn is_damage(&self) -> bool {
        !matches!(
            self.kind,
            ProblemKind::TornTail | ProblemKind::Empty | ProblemKind::State(_)
        )
    }
}

#[derive(Debug, Clone)]
pub struct SegmentSummary {
    pub id: u64,
    pub path: PathBuf,
    pub len: u64,
    pub created_ms: Option<u64>,
    pub frames: u64,
    /// Unacknowledged events in intact frames.
    pub events: u64,
}

#[derive(Debug)]
pub struct Walk {
    pub acked: Position,
    pub state_found: bool,
    pub segments: Vec<SegmentSummary>,
    /// Segments before the acknowledged one (fully delivered, not yet deleted).
    pub delivered: Vec<(u64, PathBuf)>,
    pub problems: Vec<Problem>,
    pub events: u64,
    pub next_seq: u64,
    pub oldest_ms: Option<u64>,
    pub max_id: u64,
    /// Frames and entries checked (with `check_entries`).
    pub frames_checked: u64,
    pub events_checked: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WalkMode {
    /// Start of the queue: cut torn tails, keep copies of damage, remove empty segments.
    Recover,
    /// Read only (show).
    Look,
    /// Read only, every entry of every frame decoded (check).
    Check,
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, DiskQueueError> {
    let rd = fs::read_dir(dir).map_err(super::io_err(dir))?;
    let mut out: Vec<(u64, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let id: u64 = name.strip_suffix(".seg")?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

pub fn walk(dir: &Path, mode: WalkMode) -> Result<Walk, DiskQueueError> {
    let fix = mode == WalkMode::Recover;
    let mut problems = Vec::new();
    let state = match load_state(dir)? {
        Ok(s) => s,
        Err(why) => {
            problems.push(Problem {
                segment: 0,
                offset: 0,
                end: 0,
                kind: ProblemKind::State(why),
                lost: 0,
            });
            None
        }
    };
    let mut files = Vec::new();
    for (id, path) in list_segments(dir)? {
        let f = File::open(&path).map_err(super::io_err(&path))?;
        let len = f.metadata().map_err(super::io_err(&path))?.len();
        let header = format::read_segment_header(&f).map_err(super::io_err(&path))?;
        match header {
            Ok(h) => files.push((id, path, f, len, Some(h.created_ms))),
            Err(HeaderError::Short(_)) => {
                problems.push(Problem {
                    segment: id,
                    offset: 0,
                    end: len,
                    kind: ProblemKind::Empty,
                    lost: 0,
                });
                if fix {
                    let _ = fs::remove_file(&path);
                }
            }
            Err(HeaderError::Version(v)) => {
                return Err(DiskQueueError::Version {
                    path: path.display().to_string(),
                    problem: HeaderError::Version(v).to_string(),
                })
            }
            Err(e) => {
                problems.push(Problem {
                    segment: id,
                    offset: 0,
                    end: SEGMENT_HEADER_LEN.min(len),
                    kind: ProblemKind::Header(e.to_string()),
                    lost: 0,
                });
                files.push((id, path, f, len, None));
            }
        }
    }
    let max_id = files.iter().map(|f| f.0).max().unwrap_or(0);
    let mut acked = state.unwrap_or(Position {
        segment: files.first().map_or(0, |f| f.0),
        offset: SEGMENT_HEADER_LEN,
        seq: 0,
    });
    let mut expected: Option<u64> = state.map(|s| s.seq);
    let mut delivered = Vec::new();
    let mut segments = Vec::new();
    let mut events = 0u64;
    let mut oldest_ms = None;
    let (mut frames_checked, mut events_checked) = (0u64, 0u64);
    let mut decoder = Decoder::default();
    for (id, path, f, len, created_ms) in files {
        if id < acked.segment {
            delivered.push((id, path));
            continue;
        }
        let file = Arc::new(f);
        let unacked_from = if id == acked.segment {
            acked.offset
        } else {
            SEGMENT_HEADER_LEN
        };
        let start = if mode == WalkMode::Check {
            SEGMENT_HEADER_LEN
        } else {
            unacked_from
        };
        let mut summary = SegmentSummary {
            id,
            path: path.clone(),
            len,
            created_ms,
            frames: 0,
            events: 0,
        };
        let mut sc = Scanner::new(file, start, len, mode == WalkMode::Check);
        loop {
            let step = sc.next_step().map_err(super::io_err(&path))?;
            match step {
                Step::End => break,
                Step::Frame {
                    offset,
                    header,
                    area,
                } => {
                    let unacked = offset >= unacked_from;
                    if mode == WalkMode::Check {
                        let d = decoder.decode(&header, &area);
                        frames_checked += 1;
                        events_checked += d.events.len() as u64;
                        for p in d.problems {
                            problems.push(Problem {
                                segment: id,
                                offset: offset + p.at,
                                end: offset + header.frame_len(),
                                kind: ProblemKind::Entry(p.reason),
                                lost: 0,
                            });
                        }
                        if d.lost > 0 {
                            if let Some(p) = problems.last_mut() {
                                p.lost = d.lost as u64;
                            }
                        }
                    }
                    if !unacked {
                        continue;
                    }
                    if let Some(exp) = expected {
                        if header.first_seq > exp {
                            problems.push(Problem {
                                segment: id,
                                offset,
                                end: offset,
                                kind: ProblemKind::Gap,
                                lost: header.first_seq - exp,
                            });
                        }
                    }
                    if expected.is_none() && state.is_none() {
                        acked.seq = header.first_seq;
                    }
                    let next = header.first_seq + header.count as u64;
                    expected = Some(expected.map_or(next, |e| e.max(next)));
                    summary.frames += 1;
                    summary.events += header.count as u64;
                    events += header.count as u64;
                    if oldest_ms.is_none() {
                        oldest_ms = Some(header.written_ms);
                    }
                }
                Step::Corrupt { offset, end } => {
                    problems.push(Problem {
                        segment: id,
                        offset,
                        end,
                        kind: ProblemKind::Damaged,
                        lost: 0,
                    });
                    if fix {
                        super::move_aside(dir, id, offset, end);
                    }
                }
                Step::Tail { offset, end, torn } => {
                    problems.push(Problem {
                        segment: id,
                        offset,
                        end,
                        kind: if torn {
                            ProblemKind::TornTail
                        } else {
                            ProblemKind::DamagedTail
                        },
                        lost: 0,
                    });
                    if fix {
                        if !torn {
                            super::move_aside(dir, id, offset, end);
                        }
                        let cut = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|f| f.set_len(offset).and_then(|_| f.sync_all()));
                        if let Err(e) = cut {
                            return Err(DiskQueueError::Io {
                                path: path.display().to_string(),
                                source: e,
                            });
                        }
                        summary.len = offset;
                    }
                }
            }
        }
        segments.push(summary);
    }
    let next_seq = expected.unwrap_or(acked.seq).max(acked.seq);
    Ok(Walk {
        acked,
        state_found: state.is_some(),
        segments,
        delivered,
        problems,
        events,
        next_seq,
        oldest_ms,
        max_id,
        frames_checked,
        events_checked,
    })
}

pub struct RecoveredSegment {
    pub id: u64,
    pub path: PathBuf,
    pub len: u64,
}

pub struct Recovered {
    pub segments: Vec<RecoveredSegment>,
    pub acked: Position,
    pub next_seq: u64,
    pub next_segment: u64,
    pub events: u64,
    pub oldest_ms: u64,
    pub known: HashSet<(u64, u64)>,
}

/// Start of the queue: walk, repair what can be repaired, report the rest.
pub fn recover(dir: &Path, stats: &DiskQueueStats) -> Result<Recovered, DiskQueueError> {
    let w = walk(dir, WalkMode::Recover)?;
    for (id, path) in &w.delivered {
        // Fully delivered before the last stop; the state file says so.
        if let Err(e) = fs::remove_file(path) {
            tracing::warn!(segment = id, error = %e, "disk queue: cannot delete a delivered segment");
        }
    }
    let mut known = HashSet::new();
    for p in &w.problems {
        let what = p.describe();
        match p.kind {
            ProblemKind::TornTail => {
                DiskQueueStats::add(&stats.torn_tails, 1);
                tracing::info!(segment = p.segment, offset = p.offset, bytes = p.end - p.offset, "disk queue: cut the incomplete last frame of a write interrupted by a crash: {what}");
            }
            ProblemKind::Empty | ProblemKind::State(_) => {
                tracing::warn!("disk queue: {what}");
            }
            ProblemKind::Gap => {
                DiskQueueStats::add(&stats.corrupt_events, p.lost);
                known.insert((p.segment, p.offset));
                tracing::error!(
                    segment = p.segment,
                    offset = p.offset,
                    lost = p.lost,
                    "disk queue: {what}"
                );
            }
            _ => {
                DiskQueueStats::add(&stats.corrupt_frames, 1);
                known.insert((p.segment, p.offset));
                tracing::error!(segment = p.segment, offset = p.offset, end = p.end, path = %dir.join("corrupt").display(), "disk queue: {what}; a copy is kept for inspection, the frames after it are delivered");
            }
        }
    }
    for s in &w.segments {
        super::writer::release_left_preallocation(&s.path, s.len);
    }
    let bytes: u64 = w.segments.iter().map(|s| s.len).sum();
    stats.events.store(w.events as i64, Ordering::Relaxed);
    stats.bytes.store(bytes as i64, Ordering::Relaxed);
    stats
        .segments
        .store(w.segments.len() as i64, Ordering::Relaxed);
    let oldest = w.oldest_ms.unwrap_or(0);
    stats.oldest_written_ms.store(oldest, Ordering::Relaxed);
    Ok(Recovered {
        segments: w
            .segments
            .iter()
            .map(|s| RecoveredSegment {
                id: s.id,
                path: s.path.clone(),
                len: s.len,
            })
            .collect(),
        acked: w.acked,
        next_seq: w.next_seq,
        next_segment: w.max_id.max(w.acked.segment) + 1,
        events: w.events,
        oldest_ms: oldest,
        known,
    })
}

// ---- housekeeping ----

/// Every second (and when the position enters a new segment): persist the acknowledged
/// position, then delete the segments before it; update the rates.
pub fn housekeeping(shared: Arc<Shared>) {
    let mut last: Option<Position> = None;
    let mut failures = 0u32;
    let stats = shared.stats();
    let mut prev = (
        Instant::now(),
        stats.write_events.load(Ordering::Relaxed),
        stats.write_bytes.load(Ordering::Relaxed),
        stats.read_events.load(Ordering::Relaxed),
        stats.read_bytes.load(Ordering::Relaxed),
    );
    loop {
        let stopping = shared.stopping();
        let pos = {
            let g = lock(&shared.acks);
            let g = if stopping {
                g
            } else {
                wait_timeout(&shared.house_cv, g, Duration::from_secs(1))
            };
            g.acked
        };
        let now = Instant::now();
        let dt = now.duration_since(prev.0).as_secs_f64();
        if dt >= 1.0 || stopping {
            let rate = |a: u64, b: u64| ((a.saturating_sub(b)) as f64 / dt.max(1e-3)) as i64;
            let cur = (
                now,
                stats.write_events.load(Ordering::Relaxed),
                stats.write_bytes.load(Ordering::Relaxed),
                stats.read_events.load(Ordering::Relaxed),
                stats.read_bytes.load(Ordering::Relaxed),
            );
            stats
                .write_events_rate
                .store(rate(cur.1, prev.1), Ordering::Relaxed);
            stats
                .write_bytes_rate
                .store(rate(cur.2, prev.2), Ordering::Relaxed);
            stats
                .read_events_rate
                .store(rate(cur.3, prev.3), Ordering::Relaxed);
            stats
                .read_bytes_rate
                .store(rate(cur.4, prev.4), Ordering::Relaxed);
            prev = cur;
        }
        if last != Some(pos) {
            match save_state(&shared.dir, pos) {
                Ok(()) => {
                    last = Some(pos);
                    failures = 0;
                    delete_before(&shared, pos.segment);
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures % 60 == 0 {
                        tracing::warn!(error = %e, path = %shared.dir.display(), "disk queue: cannot write state.json; delivered segments are kept until it works (a restart would deliver them again)");
                    }
                }
            }
        }
        if stopping {
            break;
        }
    }
}

fn delete_before(shared: &Shared, segment: u64) {
    let gone: Vec<(u64, PathBuf, u64)> = {
        let mut g = lock(&shared.log);
        let ids: Vec<u64> = g.segments.range(..segment).map(|(id, _)| *id).collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(s) = g.segments.remove(&id) {
                out.push((id, s.path, s.len));
            }
        }
        g.tail.retain(|c| c.segment >= segment);
        g.tail_bytes = g.tail.iter().map(|c| c.header.frame_len() as usize).sum();
        out
    };
    if gone.is_empty() {
        return;
    }
    let stats = shared.stats();
    for (id, path, len) in gone {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(segment = id, error = %e, "disk queue: cannot delete a delivered segment");
            }
        }
        stats.bytes.fetch_sub(len as i64, Ordering::Relaxed);
        stats.segments.fetch_sub(1, Ordering::Relaxed);
    }
    // The writer may be waiting for this space.
    let _g = lock(&shared.log);
    shared.space_cv.notify_all();
}
