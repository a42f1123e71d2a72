//! The harvester: reads one open file from an offset, turns lines into events and publishes
//! them in batches, until the file is idle, removed, truncated, or the agent stops.
//!
//! Truncation is noticed from the read side, not only by the prospector's scans: before
//! reading after a pause (and every few reads), the first bytes of the file and the bytes just
//! before the cursor are compared with what was read, so a file truncated and rewritten
//! between two looks (even to the same size) is read again from its start, never from the
//! old offset in the middle of new content.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::encoding::Decoder;
use super::parsers::{Message, Parsers};
use super::reader::LineSplitter;
use super::Settings;
use crate::event::{
    deep_merge, flags, now_nanos, parse_timestamp, Event, Fields, FileSource, LineFields, Text,
};
use crate::monitoring::counters::InputCounters;
use crate::monitoring::Metrics;
use crate::pipeline::ack::{ack_events, AckTracker};
use crate::pipeline::Publisher;

/// Signals from the prospector to a running harvester.
#[derive(Debug, Default)]
pub struct Control {
    /// The file no longer matches (deleted or renamed away): read to EOF, then close.
    pub removed: AtomicBool,
    /// Stop at once (the file's identity moved to another path, or the input stops).
    pub stop: AtomicBool,
    /// New data may be there (change notification).
    pub wake: Notify,
    /// The open file, shared with the prospector so it can check what the file holds now
    /// (same fingerprint? deleted?) without opening it again by a path that may have moved.
    /// Taken (closed) as soon as the harvester ends, before its slot is counted free.
    pub file: std::sync::Mutex<Option<Arc<File>>>,
}

impl Control {
    pub fn new(file: Arc<File>) -> Self {
        Control {
            file: std::sync::Mutex::new(Some(file)),
            ..Control::default()
        }
    }

    /// The open file while the harvester runs.
    pub fn file(&self) -> Option<Arc<File>> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Close the prospector's share of the file.
    pub fn release_file(&self) {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Why a harvester ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Read to EOF and closed for good (`--once`, or the file was removed).
    Done,
    /// Closed because idle; reopened when the file changes.
    Inactive,
    /// The file shrank below the read offset.
    Truncated,
    /// Asked to stop, or the pipeline closed.
    Stopped,
    /// A read error; retried on a later scan.
    Failed,
    /// Closed at EOF (or after a time slice of reading) because other files wait for a
    /// harvester slot; reopened, in turn, when the file changes.
    Yield,
}

pub struct Harvester {
    pub file: Arc<File>,
    pub offset: u64,
    pub tracker: Arc<AckTracker>,
    pub source: Arc<FileSource>,
    pub settings: Arc<Settings>,
    pub publisher: Publisher,
    pub control: Arc<Control>,
    pub once: bool,
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Result of a harvester run: where reading should resume and why it stopped.
#[derive(Debug)]
pub struct Outcome {
    pub resume_offset: u64,
    pub exit: Exit,
    /// The file had no links left when the harvester ended (it was deleted).
    pub deleted: bool,
    /// The last bytes before `resume_offset` (up to 64): where the same content continues
    /// elsewhere (a copy, a rename), they must be there too.
    pub tail: Vec<u8>,
    /// Where the harvester's reads ended (past a partial last line): a file longer than this
    /// when the harvester is gone got bytes it did not see.
    pub read_to: u64,
}

/// How long a harvester keeps reading a busy file while others wait for a slot.
const SLICE: Duration = Duration::from_secs(1);

/// Bytes at the start of the file compared before reading after a pause.
const HEAD_CHECK: usize = 1024;
/// Bytes just before the cursor compared before reading after a pause.
const TAIL_CHECK: usize = 64;

/// What the harvester knows of the bytes it read, to notice content replaced under it.
struct ContentCheck {
    head: Vec<u8>,
    /// The last bytes read, ending at the read offset.
    tail: Vec<u8>,
    /// (size, mtime) when the file was last checked; an unchanged file is not read again.
    stat: (u64, i64),
}

/// The file as the last check found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileState {
    Same,
    /// Shorter than the cursor, or other bytes where bytes were read: new content.
    Replaced,
    /// No links left: the file was deleted (even where its directory cannot be listed).
    Deleted,
}

fn read_exact_at(f: &File, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

impl ContentCheck {
    fn new(f: &File, offset: u64) -> std::io::Result<Self> {
        let md = f.metadata()?;
        let size = md.len();
        let head = read_exact_at(f, (size.min(HEAD_CHECK as u64)) as usize, 0)?;
        let start = offset.min(size);
        let tail_len = start.min(TAIL_CHECK as u64);
        let tail = read_exact_at(f, tail_len as usize, start - tail_len)?;
        Ok(ContentCheck {
            head,
            tail,
            stat: (size, super::identity::mtime_nanos(&md)),
        })
    }

    /// Bytes just read, ending at the new read offset.
    fn read(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL_CHECK {
            self.tail.clear();
            self.tail
                .extend_from_slice(&bytes[bytes.len() - TAIL_CHECK..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let excess = self.tail.len().saturating_sub(TAIL_CHECK);
            self.tail.drain(..excess);
        }
    }

    /// Is the file still the one read up to `read_offset`?
    fn check(&mut self, f: &File, read_offset: u64) -> std::io::Result<FileState> {
        let md = f.metadata()?;
        if md.nlink() == 0 {
            return Ok(FileState::Deleted);
        }
        let size = md.len();
        if size < read_offset {
            return Ok(FileState::Replaced);
        }
        let stat = (size, super::identity::mtime_nanos(&md));
        if stat == self.stat {
            return Ok(FileState::Same);
        }
        self.stat = stat;
        let head_len = (size.min(HEAD_CHECK as u64)) as usize;
        let head = read_exact_at(f, head_len, 0)?;
        if !head.starts_with(&self.head) {
            return Ok(FileState::Replaced);
        }
        self.head = head;
        let tail_len = self.tail.len().min(read_offset as usize);
        if tail_len > 0 && read_exact_at(f, tail_len, read_offset - tail_len as u64)? != self.tail {
            return Ok(FileState::Replaced);
        }
        Ok(FileState::Same)
    }
}

/// Others wait for a harvester slot: this input's own queue, or any input's when the
/// open-file budget is used up.
fn contended(s: &Settings, metrics: &crate::monitoring::Metrics) -> bool {
    if s.waiting.load(Ordering::Relaxed) > 0 {
        return true;
    }
    metrics.gauges.harvesters_waiting.load(Ordering::Relaxed) > 0
        && usize::try_from(metrics.gauges.open_files.load(Ordering::Relaxed)).unwrap_or(0)
            >= super::open_file_budget().0
}

impl Harvester {
    pub async fn run(self) -> Outcome {
        let s = self.settings.clone();
        let metrics = self.publisher.metrics().clone();
        let decoder = s.decoder;
        let strip = matches!(
            s.cfg.line_terminator,
            crate::config::filestream::LineTerminator::Auto
        )
        .then(|| decoder.encode_terminator(b"\r"));
        let mut splitter = LineSplitter::new(
            self.offset,
            decoder.encode_terminator(s.cfg.line_terminator.bytes()),
            strip,
            decoder.unit(),
            s.cfg.message_max_bytes,
            s.cfg.buffer_size.max(64 * 1024),
        );
        if decoder.is_utf8() {
            // Valid lines are kept as slices of their read: no allocation per line.
            splitter.share_lines();
        }
        let mut parsers = Parsers::new(&s.cfg.parsers, s.cfg.message_max_bytes);
        let file = self.file.clone();
        let failed = |e: std::io::Error, what: &str| {
            tracing::warn!(path = %self.source.path, error = %e, "cannot {what}; will retry");
            Outcome {
                resume_offset: self.offset,
                exit: Exit::Failed,
                deleted: false,
                tail: Vec::new(),
                read_to: self.offset,
            }
        };
        if let Err(e) = (&*file).seek(SeekFrom::Start(self.offset)) {
            return failed(e, "seek");
        }
        let mut content = match ContentCheck::new(&file, self.offset) {
            Ok(c) => c,
            Err(e) => return failed(e, "read"),
        };
        let mut deleted = false;
        // Look at the file before the next read: set after a pause at EOF.
        let mut recheck = false;
        let mut bom_checked = self.offset != 0;
        let mut backoff = s.cfg.backoff.init.0;
        let opened = Instant::now();
        let mut last_data = Instant::now();
        let mut reads = 0u32;
        let mut msgs: Vec<Message> = Vec::new();
        let exit = loop {
            if self.control.stop.load(Ordering::Relaxed) || self.shutdown.is_cancelled() {
                break Exit::Stopped;
            }
            if std::mem::take(&mut recheck) {
                match content.check(&file, splitter.read_offset()) {
                    Ok(FileState::Same) => {}
                    Ok(FileState::Replaced) => break Exit::Truncated,
                    Ok(FileState::Deleted) => deleted = true,
                    Err(e) => {
                        tracing::warn!(path = %self.source.path, error = %e, "stat failed");
                        break Exit::Failed;
                    }
                }
            }
            let n = match splitter.fill(&mut &*file) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(path = %self.source.path, error = %e, "read failed; will retry");
                    break Exit::Failed;
                }
            };
            if n > 0 {
                content.read(splitter.last_read(n));
            }
            // A byte-order mark can only sit at offset 0, before any line was taken.
            if !bom_checked {
                if splitter.offset() != 0 {
                    bom_checked = true;
                } else if splitter.pending_bytes() >= 3 || n == 0 {
                    let bom = decoder.bom_len(splitter.head());
                    splitter.skip(bom);
                    bom_checked = true;
                }
            }
            let now = Instant::now();
            while let Some(line) = splitter.next_line() {
                // A shared line (UTF-8 input) is checked once, where it stays; only an
                // invalid one goes through the decoder for its replacement characters.
                let (text, invalid) = match line.shared.and_then(Text::from_utf8) {
                    Some(text) => (text, false),
                    None => {
                        let (decoded, invalid) = decoder.decode(&line.bytes);
                        (Text::from(decoded.into_owned()), invalid)
                    }
                };
                let mut fl = 0;
                if line.truncated {
                    fl |= flags::TRUNCATED;
                    Metrics::add(&metrics.counters.lines_truncated, 1);
                }
                if invalid {
                    fl |= flags::INVALID_UTF8;
                    Metrics::add(&metrics.counters.lines_invalid_utf8, 1);
                }
                let m = Message::new(text, line.start, line.end, fl);
                if parsers.is_empty() {
                    msgs.push(m);
                } else {
                    parsers.push(m, now, &mut msgs);
                }
            }
            if n == 0 {
                parsers.flush_stale(now, &mut msgs);
                let removed = self.control.removed.load(Ordering::Relaxed);
                // A partial last line is shipped only when the file is gone for good; `--once`
                // holds it like live mode, so the next run ships it whole once it ends. A
                // multiline event it may belong to is held with it (the registry stays at the
                // event's start); without a partial line `--once` completes that event.
                if self.once && !removed && splitter.pending_bytes() == 0 {
                    parsers.flush_all(now, &mut msgs);
                }
                if removed {
                    if let Some(line) = splitter.take_partial() {
                        let (text, invalid) = decoder.decode(&line.bytes);
                        let mut fl = if line.truncated { flags::TRUNCATED } else { 0 };
                        if invalid {
                            fl |= flags::INVALID_UTF8;
                        }
                        let m = Message::new(text.into_owned(), line.start, line.end, fl);
                        parsers.push(m, now, &mut msgs);
                    }
                    parsers.flush_all(now, &mut msgs);
                }
            }
            if n > 0 {
                InputCounters::add(&s.counters.bytes_processed_total, n as u64);
            }
            if !msgs.is_empty() {
                Metrics::add(&metrics.counters.events_read, msgs.len() as u64);
                InputCounters::add(&s.counters.messages_read_total, msgs.len() as u64);
                let events = self.to_events(&mut msgs);
                InputCounters::add(&s.counters.events_processed_total, events.len() as u64);
                if !events.is_empty() {
                    // A stalled output must not keep the agent from stopping: the events
                    // not queued are not acked, so they are read again after a restart.
                    let first = events[0].cursor.as_ref().map(|c| c.seq);
                    let published = tokio::select! {
                        r = self.publisher.publish(events) => r.is_ok(),
                        _ = self.shutdown.cancelled() => false,
                    };
                    if !published {
                        // Never queued: withdraw them, so a reader that takes this file over
                        // (an input restarted by a reload) reads them again.
                        if let Some(seq) = first {
                            self.tracker.withdraw_from(seq);
                        }
                        break Exit::Stopped;
                    }
                }
            }
            if n > 0 {
                last_data = now;
                backoff = s.cfg.backoff.init.0;
                reads += 1;
                if reads % 16 == 0 {
                    // A long read may race with a truncation: look again now and then.
                    recheck = true;
                    if !self.once
                        && now.duration_since(opened) >= SLICE
                        && parsers.pending_start().is_none()
                        && contended(&s, &metrics)
                    {
                        break Exit::Yield;
                    }
                    tokio::task::yield_now().await;
                }
                continue;
            }
            // At EOF.
            if self.once || self.control.removed.load(Ordering::Relaxed) {
                break Exit::Done;
            }
            match content.check(&file, splitter.read_offset()) {
                Ok(FileState::Same) => {}
                Ok(FileState::Replaced) => break Exit::Truncated,
                Ok(FileState::Deleted) => {
                    deleted = true;
                    if s.cfg.close.on_state_change.removed {
                        // Drain what is left through the open file, then close it.
                        self.control.removed.store(true, Ordering::Relaxed);
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %self.source.path, error = %e, "stat failed");
                    break Exit::Failed;
                }
            }
            if parsers.pending_start().is_none() && contended(&s, &metrics) {
                break Exit::Yield;
            }
            let close = &s.cfg.close;
            if close.reader.on_eof {
                break Exit::Inactive;
            }
            if !close.on_state_change.inactive.0.is_zero()
                && now.duration_since(last_data) >= close.on_state_change.inactive.0
                && parsers.pending_start().is_none()
            {
                break Exit::Inactive;
            }
            if !close.reader.after_interval.0.is_zero()
                && now.duration_since(opened) >= close.reader.after_interval.0
            {
                break Exit::Inactive;
            }
            splitter.shrink_idle();
            let mut wait = backoff;
            if let Some(deadline) = parsers.next_deadline() {
                wait = wait.min(deadline.saturating_duration_since(now));
            }
            tokio::select! {
                _ = self.control.wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {
                    backoff = backoff.saturating_mul(2).min(s.cfg.backoff.max.0);
                }
                _ = self.shutdown.cancelled() => {}
            }
            recheck = true;
        };
        let resume_offset = parsers
            .pending_start()
            .map_or(splitter.offset(), |p| p.min(splitter.offset()));
        if !deleted {
            deleted = file.metadata().is_ok_and(|md| md.nlink() == 0);
        }
        let n = resume_offset.min(TAIL_CHECK as u64);
        let tail = read_exact_at(&file, n as usize, resume_offset - n).unwrap_or_default();
        Outcome {
            resume_offset,
            exit,
            deleted,
            tail,
            read_to: splitter.read_offset(),
        }
    }

    /// Filter lines, build events with cursors. Excluded lines still move the cursor.
    fn to_events(&self, msgs: &mut Vec<Message>) -> Vec<Event> {
        let s = &self.settings;
        let ts = now_nanos();
        let mut events = Vec::with_capacity(msgs.len());
        let mut skipped_end: Option<u64> = None;
        let (mut kept_bytes, mut dropped_bytes) = (0usize, 0usize);
        // One lock of the tracker for the whole read, not one per line.
        let mut cursors = self.tracker.register();
        for m in msgs.drain(..) {
            let keep = !m.skip
                && (s.cfg.include_lines.is_empty()
                    || s.cfg.include_lines.iter().any(|p| p.0.is_match(&m.text)))
                && !s.cfg.exclude_lines.iter().any(|p| p.0.is_match(&m.text));
            if !keep {
                skipped_end = Some(m.end);
                dropped_bytes += m.text.len();
                continue;
            }
            kept_bytes += m.text.len();
            skipped_end = None;
            let cursor = cursors.next(m.end);
            let line = LineFields {
                message: m.text,
                offset: m.start,
                flags: m.flags,
                source: self.source.clone(),
                stream: m.stream,
            };
            let mut ev = Event::line(m.ts.unwrap_or(ts), line, Some(cursor));
            if let Some(decoded) = m.fields {
                let ndjson = s.ndjson.as_ref();
                let root = ndjson.is_some_and(|n| n.target.is_empty());
                let overwrite = ndjson.is_some_and(|n| n.overwrite_keys);
                let mut decoded = decoded;
                if let Some(v) = decoded.remove("@timestamp") {
                    if overwrite {
                        if let Some(t) = v.as_str().and_then(parse_timestamp) {
                            ev.timestamp = t;
                        }
                    }
                }
                decoded.remove("@metadata");
                let map = ev.fields_mut();
                if root {
                    // Decoded keys replace the raw line (an undecodable line brings it back).
                    map.remove("message");
                }
                deep_merge(map, *decoded, overwrite);
            }
            ev.meta = m.meta;
            events.push(ev);
        }
        if dropped_bytes > kept_bytes {
            // Most of the read was filtered out: the lines kept get their own copies, so they
            // do not hold the shared buffers of the lines dropped.
            for ev in &mut events {
                if let Fields::Line(l) = &mut ev.fields {
                    l.message.to_mut();
                }
            }
        }
        let skipped = skipped_end.map(|end| cursors.next(end));
        drop(cursors);
        if let Some(c) = skipped {
            // Acked at once: the registry moves past trailing filtered lines once all
            // earlier events are acked.
            ack_events([&c].into_iter());
        }
        events
    }
}

/// Decoder shared by all harvesters of an input.
pub fn decoder_for(name: &str) -> Decoder {
    Decoder::new(name).unwrap_or_else(|| Decoder::new("utf-8").expect("utf-8 is known"))
}
