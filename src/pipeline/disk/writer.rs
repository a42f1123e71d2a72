//! The writer thread (frames → segment files, rotation, `max_size`, write errors) and the sync
//! thread (fdatasync, then acknowledge the inputs).
//!
//! Writing and syncing are separate threads so that an fsync never stops the writing: while
//! one fdatasync runs, the writer keeps appending, and the next fdatasync covers everything
//! written meanwhile (group commit). With `sync = "batch"` the number of fsyncs per second
//! adapts to the disk, not to the event rate.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::format::{
    self, decode_frame_header, encode_segment_header, SegmentHeader, SEGMENT_HEADER_LEN,
};
use super::state::sync_dir;
use super::{
    lock, now_ms, wait_timeout, Cached, DiskQueueError, SegInfo, Shared, SyncMode, Unit,
    TAIL_CACHE_BYTES, UNSYNCED_BYTES,
};
use crate::monitoring::disk_queue::DiskQueueStats;
use crate::pipeline::ack::{ack_events, Cursor};

/// `sync = "batch"` group commit: the sync thread gathers written frames for up to this long
/// (or until `GATHER_BYTES` are written) before one fdatasync covers them all. On a busy
/// core (the input, the writer and the sync thread sharing it), syncing every few frames
/// costs more CPU in fsync overhead (the inode write, the block layer's plug and the
/// device notification, the wake-ups) than the writing itself; an input's acknowledgement
/// waits at most this much longer. Nothing is acknowledged before its fdatasync.
const GATHER_TIME: Duration = Duration::from_millis(5);
const GATHER_BYTES: usize = 4 << 20;

/// A written frame waiting for its fdatasync.
pub struct Pending {
    segment: u64,
    file: Arc<File>,
    offset: u64,
    /// Kept to write it again if the fsync fails (the kernel may have dropped the pages).
    bytes: Vec<u8>,
    cursors: Vec<Cursor>,
}

#[derive(Default)]
pub struct SyncState {
    pending: Vec<Pending>,
    pending_bytes: usize,
    /// When the oldest pending frame was written.
    pending_since: Option<Instant>,
    writer_finished: bool,
    syncer_waiting: bool,
    /// The sync thread finished: everything written is durable and acknowledged.
    pub done: bool,
}

/// Test hook for the full-disk test where no small filesystem can be mounted: while the file
/// named by `OXIBEAT_TEST_DISKQUEUE_ENOSPC` exists, writes fail with ENOSPC after writing
/// half of their bytes (as a real full disk does).
fn injected_enospc() -> bool {
    static FLAG: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        std::env::var_os("OXIBEAT_TEST_DISKQUEUE_ENOSPC").map(std::path::PathBuf::from)
    })
    .as_ref()
    .is_some_and(|p| p.exists())
}

fn write_at(file: &File, buf: &[u8], off: u64) -> std::io::Result<()> {
    if injected_enospc() {
        let half = &buf[..buf.len() / 2];
        file.write_all_at(half, off)?;
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    file.write_all_at(buf, off)
}

pub struct Writer {
    shared: Arc<Shared>,
    seg: u64,
    file: Arc<File>,
    len: u64,
    full_logged: bool,
    /// Wake-ups of the inputs (write-ahead space) and of the output (frames in memory) held
    /// until the frames taken together are written: woken at once, the input or output task
    /// would preempt this thread after every frame on a shared core. Released before the
    /// writer waits for anything.
    deferred: Vec<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    wake_output: bool,
}

impl Writer {
    /// Create the first segment of this run (a run never appends to an older segment, so a
    /// position recovered from before a power loss can never point into new data).
    pub fn start(shared: Arc<Shared>, id: u64) -> Result<Writer, DiskQueueError> {
        let file = create_segment(&shared, id).map_err(|source| DiskQueueError::Dir {
            path: shared.dir.display().to_string(),
            source,
        })?;
        let file = Arc::new(file);
        {
            let mut g = lock(&shared.log);
            g.segments.insert(
                id,
                SegInfo {
                    len: SEGMENT_HEADER_LEN,
                    sealed: false,
                    path: shared.segment_path(id),
                },
            );
        }
        let stats = shared.stats();
        stats
            .bytes
            .fetch_add(SEGMENT_HEADER_LEN as i64, Ordering::Relaxed);
        stats.segments.fetch_add(1, Ordering::Relaxed);
        Ok(Writer {
            shared,
            seg: id,
            file,
            len: SEGMENT_HEADER_LEN,
            full_logged: false,
            deferred: Vec::new(),
            wake_output: false,
        })
    }

    pub fn run(mut self) {
        loop {
            let batch: Vec<Unit> = {
                let mut g = lock(&self.shared.input);
                loop {
                    if self.shared.stopping() {
                        break Vec::new();
                    }
                    if !g.units.is_empty() {
                        break g.units.drain(..).collect();
                    }
                    if g.closed {
                        break Vec::new();
                    }
                    g.writer_waiting = true;
                    g = wait_timeout(&self.shared.input_cv, g, Duration::from_secs(1));
                    g.writer_waiting = false;
                }
            };
            if batch.is_empty() {
                break;
            }
            for unit in batch {
                if !self.write_unit(unit) {
                    break;
                }
            }
            self.release_deferred();
        }
        self.release_deferred();
        self.finish();
    }

    /// Give the write-ahead space of the frames written back to the inputs, and wake the
    /// output if it waits for them.
    fn release_deferred(&mut self) {
        self.deferred.clear();
        if std::mem::take(&mut self.wake_output) {
            self.shared.output_cv.notify_one();
        }
    }

    fn finish(&mut self) {
        let sh = &self.shared;
        release_preallocation(&self.file, self.len);
        if sh.settings.sync == SyncMode::None && !sh.stopping() {
            // A clean stop leaves nothing in the page cache only.
            let _ = self.file.sync_data();
        }
        lock(&sh.log).writer_done = true;
        sh.log_cv.notify_all();
        lock(&sh.sync).writer_finished = true;
        sh.sync_cv.notify_all();
    }

    /// Write one frame; false when the queue is stopping (the frame was not written).
    fn write_unit(&mut self, unit: Unit) -> bool {
        let sh = self.shared.clone();
        let st = sh.settings;
        let len = unit.frame.bytes.len() as u64;
        if self.len > SEGMENT_HEADER_LEN && self.len + len > st.segment_size && !self.rotate() {
            return false;
        }
        if !self.wait_for_space(len) || !self.wait_for_sync_room() {
            return false;
        }
        let off = self.len;
        let mut delay = st.retry;
        let mut failures = 0u32;
        loop {
            match write_at(&self.file, &unit.frame.bytes, off) {
                Ok(()) => break,
                Err(e) => {
                    self.release_deferred();
                    failures += 1;
                    DiskQueueStats::add(&sh.stats().write_errors, 1);
                    // Undo a partial write: the next attempt (or the next start) sees none of it.
                    let _ = self.file.set_len(off);
                    tracing::warn!(error = %e, segment = self.seg, retry_in = ?delay, path = %sh.dir.display(), "disk queue: write failed; inputs pause until it works again");
                    if !sh.pause(delay) {
                        return false;
                    }
                    delay = (delay * 2).min(st.max_retry);
                }
            }
        }
        if failures > 0 {
            tracing::info!(failures, "disk queue: writing works again; inputs resume");
        }
        self.len += len;
        let stats = sh.stats();
        DiskQueueStats::add(&stats.write_events, unit.frame.count as u64);
        DiskQueueStats::add(&stats.write_bytes, len);
        stats
            .events
            .fetch_add(unit.frame.count as i64, Ordering::Relaxed);
        stats.bytes.fetch_add(len as i64, Ordering::Relaxed);
        let Unit { frame, permits } = unit;
        // Write-ahead space back to the inputs (once the frames taken together are written).
        self.deferred.extend(permits);
        let format::Frame {
            bytes,
            cursors,
            events,
            ..
        } = frame;
        let mut spare = None;
        let wake_output = {
            let mut g = lock(&sh.log);
            if let Some(s) = g.segments.get_mut(&self.seg) {
                s.len = self.len;
            }
            match decode_frame_header(&bytes) {
                Some(header) if g.tail_bytes + bytes.len() <= TAIL_CACHE_BYTES => {
                    g.tail_bytes += bytes.len();
                    g.tail.push_back(Cached {
                        segment: self.seg,
                        offset: off,
                        header,
                        events,
                    });
                }
                _ => spare = Some(events),
            }
            if g.reader_waiting {
                sh.log_cv.notify_all();
            }
            let wake = g.handoff && g.output_waiting;
            if wake {
                g.output_waiting = false;
            }
            wake
        };
        self.wake_output |= wake_output;
        // Not kept for the reader (it reads the frame from the file): freed outside the lock.
        drop(spare);
        if st.sync == SyncMode::None {
            ack_events(cursors.iter());
            sh.recycle(bytes);
        } else {
            let mut g = lock(&sh.sync);
            let first = g.pending.is_empty();
            if first {
                g.pending_since = Some(Instant::now());
            }
            let crossed = g.pending_bytes < GATHER_BYTES;
            g.pending_bytes += bytes.len();
            let crossed = crossed && g.pending_bytes >= GATHER_BYTES;
            g.pending.push(Pending {
                segment: self.seg,
                file: self.file.clone(),
                offset: off,
                bytes,
                cursors,
            });
            // The sync thread starts its gathering time on the first frame, and syncs at
            // once when enough is gathered; the frames between need no wake-up.
            let wake = g.syncer_waiting && (first || crossed);
            drop(g);
            if wake {
                sh.sync_cv.notify_all();
            }
        }
        true
    }

    /// Seal the current segment and start the next one.
    fn rotate(&mut self) -> bool {
        let sh = self.shared.clone();
        let next = self.seg + 1;
        let mut delay = sh.settings.retry;
        let file = loop {
            match create_segment(&sh, next) {
                Ok(f) => break f,
                Err(e) => {
                    self.release_deferred();
                    DiskQueueStats::add(&sh.stats().write_errors, 1);
                    tracing::warn!(error = %e, segment = next, retry_in = ?delay, "disk queue: cannot create the next segment; inputs pause until it works again");
                    if !sh.pause(delay) {
                        return false;
                    }
                    delay = (delay * 2).min(sh.settings.max_retry);
                }
            }
        };
        {
            let mut g = lock(&sh.log);
            g.segments.insert(
                next,
                SegInfo {
                    len: SEGMENT_HEADER_LEN,
                    sealed: false,
                    path: sh.segment_path(next),
                },
            );
            if let Some(s) = g.segments.get_mut(&self.seg) {
                s.sealed = true;
            }
        }
        sh.log_cv.notify_all();
        release_preallocation(&self.file, self.len);
        let stats = sh.stats();
        stats
            .bytes
            .fetch_add(SEGMENT_HEADER_LEN as i64, Ordering::Relaxed);
        stats.segments.fetch_add(1, Ordering::Relaxed);
        self.seg = next;
        self.file = Arc::new(file);
        self.len = SEGMENT_HEADER_LEN;
        true
    }

    /// `max_size`: wait until `len` more bytes fit (back-pressure on the inputs).
    fn wait_for_space(&mut self, len: u64) -> bool {
        let sh = self.shared.clone();
        let max = sh.settings.max_size;
        if max == 0 {
            return true;
        }
        let stats = sh.stats();
        let fits = |s: &DiskQueueStats| {
            let used = s.bytes.load(Ordering::Relaxed).max(0) as u64;
            // An event larger than the whole queue is taken when nothing else is on disk.
            used + len <= max
                || (s.events.load(Ordering::Relaxed) <= 0 && used <= 2 * SEGMENT_HEADER_LEN)
        };
        let started = Instant::now();
        while !fits(stats) {
            self.release_deferred();
            if sh.stopping() {
                return false;
            }
            if self.len > SEGMENT_HEADER_LEN {
                // Seal the current segment: once delivered it can be deleted.
                if !self.rotate() {
                    return false;
                }
                continue;
            }
            if !self.full_logged {
                self.full_logged = true;
                tracing::warn!(max_size = max, path = %sh.dir.display(), "disk queue full (queue.disk.max_size): inputs pause until the output catches up");
            }
            let g = lock(&sh.log);
            let _g = wait_timeout(&sh.space_cv, g, Duration::from_millis(500));
        }
        if self.full_logged && started.elapsed() > Duration::ZERO {
            self.full_logged = false;
            tracing::info!("disk queue has room again: inputs resume");
        }
        true
    }

    /// Keep the bytes held for a failed fsync bounded: wait while too much is unsynced.
    fn wait_for_sync_room(&mut self) -> bool {
        let sh = self.shared.clone();
        if sh.settings.sync == SyncMode::None {
            return true;
        }
        if lock(&sh.sync).pending_bytes > UNSYNCED_BYTES {
            self.release_deferred();
        }
        let mut g = lock(&sh.sync);
        while g.pending_bytes > UNSYNCED_BYTES {
            if sh.stopping() {
                return false;
            }
            g = wait_timeout(&sh.sync_cv, g, Duration::from_millis(100));
        }
        true
    }
}

fn create_segment(sh: &Shared, id: u64) -> std::io::Result<File> {
    let path = sh.segment_path(id);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let header = encode_segment_header(SegmentHeader {
        id,
        created_ms: now_ms(),
    });
    let res = write_at(&f, &header, 0).and_then(|_| {
        if sh.settings.sync != SyncMode::None {
            f.sync_all()?;
            sync_dir(&sh.dir)?;
        }
        Ok(())
    });
    if let Err(e) = res {
        drop(f);
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    let _ = preallocate(&f, sh.settings.segment_size);
    Ok(f)
}

/// Reserve the segment's blocks at once (`fallocate` with `FALLOC_FL_KEEP_SIZE`: the file's
/// size stays that of what was written, so recovery reads it as before). Without it, every
/// write reserves its blocks one page at a time (ext4's delayed allocation) and every
/// fdatasync allocates them: together 5 % of the agent's time with `sync = "batch"`. Best
/// effort (false when it did not work): a filesystem without fallocate, or a disk with less
/// room than a segment, writes as before. What a sealed segment did not use is given back
/// (`release_preallocation`).
pub(super) fn preallocate(f: &File, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(len) = libc::off_t::try_from(len) else {
        return false;
    };
    // SAFETY: a valid descriptor, no pointers.
    unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) == 0 }
}

/// Give back the blocks reserved past the end of a segment that is sealed or left
/// (truncating to its own size frees what lies beyond it).
fn release_preallocation(f: &File, len: u64) {
    let _ = f.set_len(len);
}

/// `release_preallocation` for a segment found at start (left by a crash or a kill, with the
/// blocks reserved for it): so that crash after crash does not add up a segment each.
pub(super) fn release_left_preallocation(path: &std::path::Path, len: u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(path) else {
        return;
    };
    if md.blocks() * 512 <= len.div_ceil(4096) * 4096 + 4096 {
        return;
    }
    if let Err(e) = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
    {
        tracing::debug!(error = %e, path = %path.display(), "disk queue: cannot give back the blocks reserved past the end of a segment");
    }
}

/// The sync thread: fdatasync what was written, then acknowledge it to the inputs.
pub fn run_syncer(sh: Arc<Shared>) {
    let mode = sh.settings.sync;
    let mut next_tick = Instant::now();
    loop {
        let (batch, finished, was_full) = {
            let mut g = lock(&sh.sync);
            loop {
                if sh.stopping() {
                    g.done = true;
                    return;
                }
                let due = match mode {
                    SyncMode::Batch => {
                        !g.pending.is_empty()
                            && (g.pending_bytes >= GATHER_BYTES
                                || g.pending_since.is_some_and(|t| t.elapsed() >= GATHER_TIME))
                    }
                    SyncMode::Interval(_) => {
                        !g.pending.is_empty()
                            && (Instant::now() >= next_tick || g.pending_bytes > UNSYNCED_BYTES / 2)
                    }
                    SyncMode::None => false,
                };
                if due || g.writer_finished {
                    break;
                }
                let wait = match mode {
                    SyncMode::Batch if !g.pending.is_empty() => g
                        .pending_since
                        .map_or(GATHER_TIME, |t| GATHER_TIME.saturating_sub(t.elapsed()))
                        .max(Duration::from_micros(100)),
                    SyncMode::Interval(_) => next_tick
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1))
                        .min(Duration::from_secs(1)),
                    _ => Duration::from_secs(1),
                };
                g.syncer_waiting = true;
                g = wait_timeout(&sh.sync_cv, g, wait);
                g.syncer_waiting = false;
            }
            let was_full = g.pending_bytes > UNSYNCED_BYTES;
            g.pending_bytes = 0;
            g.pending_since = None;
            (std::mem::take(&mut g.pending), g.writer_finished, was_full)
        };
        if was_full {
            // The writer may be waiting for sync room.
            sh.sync_cv.notify_all();
        }
        if let SyncMode::Interval(d) = mode {
            next_tick = Instant::now() + d;
        }
        if !batch.is_empty() && !sync_batch(&sh, &batch) {
            lock(&sh.sync).done = true;
            return;
        }
        for p in batch {
            ack_events(p.cursors.iter());
            sh.recycle(p.bytes);
        }
        if finished && lock(&sh.sync).pending.is_empty() {
            let mut g = lock(&sh.sync);
            g.done = true;
            return;
        }
    }
}

/// fdatasync every file of the batch, writing its frames again after a failure; false when
/// stopping before it worked.
fn sync_batch(sh: &Shared, batch: &[Pending]) -> bool {
    let mut i = 0;
    while i < batch.len() {
        let seg = batch[i].segment;
        let j = batch[i..]
            .iter()
            .position(|p| p.segment != seg)
            .map_or(batch.len(), |k| i + k);
        let file = &batch[i].file;
        let mut delay = sh.settings.retry;
        loop {
            match file.sync_data() {
                Ok(()) => {
                    DiskQueueStats::add(&sh.stats().fsyncs, 1);
                    break;
                }
                Err(e) => {
                    DiskQueueStats::add(&sh.stats().write_errors, 1);
                    tracing::warn!(error = %e, segment = seg, retry_in = ?delay, "disk queue: fdatasync failed; writing the unsynced frames again, inputs are not acknowledged until it works");
                    if !sh.pause(delay) {
                        return false;
                    }
                    delay = (delay * 2).min(sh.settings.max_retry);
                    // After a failed fsync the kernel may have dropped the dirty pages: make
                    // them dirty again with the same bytes at the same offsets.
                    for p in &batch[i..j] {
                        if let Err(e) = write_at(&p.file, &p.bytes, p.offset) {
                            tracing::warn!(error = %e, segment = seg, "disk queue: rewrite failed");
                        }
                    }
                }
            }
        }
        i = j;
    }
    true
}
