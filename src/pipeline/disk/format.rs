//! The disk queue's file format, version 1: segment files of checksummed frames.
//!
//! ```text
//! segment file <id>.seg
//!   header (40 B)   magic "OXIBDQ\r\n" | version u32 | flags u32 | segment id u64 |
//!                   created unix ms u64 | crc32c of the 32 bytes before u32 | reserved u32
//!   frame*          one per publish call (a harvester's read, a metrics period)
//!
//! frame
//!   header (32 B)   marker F4 'O' 'X' 'F' | area length u32 | events u32 | first seq u64 |
//!                   written unix ms u64 | crc32c of the 28 bytes before u32
//!   area            entry*
//!
//! entry             length u32 | crc32c(length ++ body) u32 | body: kind u8 ...
//!   kind 1 source   JSON {path, device_id, inode, fingerprint, input_id, fields}: the file and
//!                   input of the line events that follow in this frame (frames stand alone)
//!   kind 2 line     flags u8 | source index u16 | @timestamp ns i64 | log.offset u64 |
//!                   @metadata length u32 | @metadata JSON | message (UTF-8)
//!   kind 3 json     @timestamp ns i64 | @metadata length u32 | @metadata JSON |
//!                   fields as one JSON object
//! ```
//!
//! All integers are little-endian. Sequence numbers count events across the whole queue, so a
//! damaged region is reported with the exact number of events it held (the gap between the
//! frames around it). Line events are stored as their parts, not as Beats JSON: a 200-byte
//! line takes 232 bytes on disk instead of about 770, and the disk's write bandwidth (every
//! byte is fsynced with `sync = "batch"`) is what bounds the queue. Reading them back gives the
//! same `Fields::Line` events the inputs made, so outputs encode them exactly as from the
//! memory queue (tested byte for byte).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::checksum;
use crate::event::{
    write_json_str, Event, Fields, FileSource, InputCommon, JsonFields, LineFields, Text,
};
use crate::pipeline::ack::Cursor;

pub const SEGMENT_MAGIC: [u8; 8] = *b"OXIBDQ\r\n";
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: u64 = 40;
pub const FRAME_MARKER: [u8; 4] = [0xF4, b'O', b'X', b'F'];
pub const FRAME_HEADER_LEN: usize = 32;
/// Larger areas are not frames (a damaged length).
pub const MAX_FRAME_AREA: u32 = 1 << 30;
/// A publish call bigger than this is split into several frames.
const SPLIT_AREA: usize = 64 << 20;
/// An entry's length and checksum.
pub(super) const ENTRY_HEADER: usize = 8;

const KIND_SOURCE: u8 = 1;
const KIND_LINE: u8 = 2;
const KIND_JSON: u8 = 3;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

// ---- segment header ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub id: u64,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than a header: a segment whose creation was interrupted.
    Short(u64),
    Magic,
    Checksum,
    /// Written by another format version (or a header damaged right there).
    Version(u32),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short(n) => write!(f, "only {n} bytes, shorter than a segment header"),
            HeaderError::Magic => write!(f, "not a disk queue segment (wrong magic bytes)"),
            HeaderError::Checksum => write!(f, "segment header checksum mismatch"),
            HeaderError::Version(v) => write!(
                f,
                "segment format version {v}, this build reads version {FORMAT_VERSION}"
            ),
        }
    }
}

pub fn encode_segment_header(h: SegmentHeader) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut b = [0u8; SEGMENT_HEADER_LEN as usize];
    b[0..8].copy_from_slice(&SEGMENT_MAGIC);
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&h.id.to_le_bytes());
    b[24..32].copy_from_slice(&h.created_ms.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..32]);
    b[32..36].copy_from_slice(&crc.to_le_bytes());
    b
}

pub fn decode_segment_header(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if b.len() < SEGMENT_HEADER_LEN as usize {
        return Err(HeaderError::Short(b.len() as u64));
    }
    if b[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Magic);
    }
    let version = u32_at(b, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderError::Version(version));
    }
    if crc32c::crc32c(&b[0..32]) != u32_at(b, 32) {
        return Err(HeaderError::Checksum);
    }
    Ok(SegmentHeader {
        id: u64_at(b, 16),
        created_ms: u64_at(b, 24),
    })
}

// ---- frame header ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub area_len: u32,
    pub count: u32,
    pub first_seq: u64,
    pub written_ms: u64,
}

impl FrameHeader {
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + self.area_len as u64
    }
}

pub fn encode_frame_header(h: &FrameHeader, out: &mut [u8]) {
    out[0..4].copy_from_slice(&FRAME_MARKER);
    out[4..8].copy_from_slice(&h.area_len.to_le_bytes());
    out[8..12].copy_from_slice(&h.count.to_le_bytes());
    out[12..20].copy_from_slice(&h.first_seq.to_le_bytes());
    out[20..28].copy_from_slice(&h.written_ms.to_le_bytes());
    let crc = crc32c::crc32c(&out[0..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
}

/// `None` unless `b` starts with a frame header whose checksum matches.
pub fn decode_frame_header(b: &[u8]) -> Option<FrameHeader> {
    if b.len() < FRAME_HEADER_LEN || b[0..4] != FRAME_MARKER {
        return None;
    }
    if crc32c::crc32c(&b[0..28]) != u32_at(b, 28) {
        return None;
    }
    let h = FrameHeader {
        area_len: u32_at(b, 4),
        count: u32_at(b, 8),
        first_seq: u64_at(b, 12),
        written_ms: u64_at(b, 20),
    };
    (h.area_len <= MAX_FRAME_AREA).then_some(h)
}

// ---- encoding (the publishing side) ----

/// One encoded frame, header not yet filled in (the writer assigns the sequence numbers).
pub struct Frame {
    pub bytes: Vec<u8>,
    pub count: u32,
    pub cursors: Vec<Cursor>,
    /// The events the frame holds, as the input made them (their cursors moved to
    /// `cursors`): what a reader that keeps up is handed instead of decoding `bytes` again.
    /// They decode from `bytes` to the same Beats JSON
    /// (`tests::events_read_back_encode_to_the_same_bytes`).
    pub events: Vec<Event>,
}

impl Frame {
    /// Fill in the header once the frame's place in the queue is known.
    pub fn seal(&mut self, first_seq: u64, written_ms: u64) {
        let h = FrameHeader {
            area_len: (self.bytes.len() - FRAME_HEADER_LEN) as u32,
            count: self.count,
            first_seq,
            written_ms,
        };
        encode_frame_header(&h, &mut self.bytes[..FRAME_HEADER_LEN]);
    }
}

struct Builder {
    frame: Frame,
    /// Sources seen in this frame: pointer → index of their record (`None`: lines as maps).
    sources: Vec<(*const FileSource, Option<u16>)>,
    /// Source records written into this frame.
    records: usize,
}

impl Builder {
    fn new(capacity: usize) -> Self {
        Self::reusing(Vec::new(), capacity)
    }

    /// A builder writing into `bytes` (a buffer of an earlier frame, cleared).
    fn reusing(mut bytes: Vec<u8>, capacity: usize) -> Self {
        bytes.clear();
        bytes.reserve(capacity + FRAME_HEADER_LEN);
        bytes.resize(FRAME_HEADER_LEN, 0);
        Builder {
            frame: Frame {
                bytes,
                count: 0,
                cursors: Vec::new(),
                events: Vec::new(),
            },
            sources: Vec::new(),
            records: 0,
        }
    }

    /// The frame, its entries checksummed (all at once: see `checksum`).
    fn finish(mut self) -> Frame {
        checksum::seal_entries(&mut self.frame.bytes[FRAME_HEADER_LEN..]);
        self.frame
    }

    fn area_len(&self) -> usize {
        self.frame.bytes.len() - FRAME_HEADER_LEN
    }

    /// The index of `src`'s record in this frame (written on first use); `None` when its
    /// lines are written as maps: the input's fields replace `message` or `log` (decided once
    /// per source and frame, not per line).
    fn source_index(&mut self, src: &Arc<FileSource>) -> Option<u16> {
        let ptr = Arc::as_ptr(src);
        if let Some((_, i)) = self.sources.iter().find(|(p, _)| *p == ptr) {
            return *i;
        }
        let fields = &src.common.fields;
        if fields.contains_key("message") || fields.contains_key("log") {
            self.sources.push((ptr, None));
            return None;
        }
        let idx = u16::try_from(self.records).ok()?;
        self.records += 1;
        let out = &mut self.frame.bytes;
        let start = begin_entry(out, KIND_SOURCE);
        write_source_record(src, out);
        end_entry(out, start);
        self.sources.push((ptr, Some(idx)));
        Some(idx)
    }

    /// Whether another source can still be indexed in this frame.
    fn has_source_room(&self) -> bool {
        self.records < u16::MAX as usize
    }

    /// Encode `ev` (its cursor moves to the frame's); the event itself joins the frame's
    /// `events` afterwards, all at once (`encode_reusing`).
    fn push(&mut self, ev: &mut Event) {
        if let Some(c) = ev.cursor.take() {
            self.frame.cursors.push(c);
        }
        let idx = match &ev.fields {
            // A line whose input fields replace `message`/`log`, or a container line (its
            // `stream`), is written as its map.
            // (No clone of the source's Arc: two atomic operations per line were half of
            // this function's time.)
            Fields::Line(l) if l.stream.is_none() => self.source_index(&l.source),
            _ => None,
        };
        let out = &mut self.frame.bytes;
        match (&ev.fields, idx) {
            (Fields::Line(l), Some(idx)) => {
                // The fixed part in one copy (this runs for every line).
                let start = out.len();
                let mut head = [0u8; ENTRY_HEADER + 20];
                head[ENTRY_HEADER] = KIND_LINE;
                head[ENTRY_HEADER + 1] = l.flags;
                head[ENTRY_HEADER + 2..ENTRY_HEADER + 4].copy_from_slice(&idx.to_le_bytes());
                head[ENTRY_HEADER + 4..ENTRY_HEADER + 12]
                    .copy_from_slice(&ev.timestamp.to_le_bytes());
                head[ENTRY_HEADER + 12..].copy_from_slice(&l.offset.to_le_bytes());
                out.extend_from_slice(&head);
                write_meta(ev, out);
                out.extend_from_slice(l.message.as_bytes());
                end_entry(out, start);
            }
            _ => {
                let start = begin_entry(out, KIND_JSON);
                out.extend_from_slice(&ev.timestamp.to_le_bytes());
                write_meta(ev, out);
                ev.write_fields_object(out);
                end_entry(out, start);
            }
        }
        self.frame.count += 1;
    }
}

fn begin_entry(out: &mut Vec<u8>, kind: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; ENTRY_HEADER]);
    out.push(kind);
    start
}

/// The entry's length; its checksum is filled in with the frame's others (`Builder::finish`).
fn end_entry(out: &mut [u8], start: usize) {
    let len = (out.len() - start - ENTRY_HEADER) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn write_meta(ev: &Event, out: &mut Vec<u8>) {
    match &ev.meta {
        Some(m) if !m.is_empty() => {
            let at = out.len();
            out.extend_from_slice(&[0u8; 4]);
            let _ = serde_json::to_writer(&mut *out, m);
            let len = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
        _ => out.extend_from_slice(&0u32.to_le_bytes()),
    }
}

fn write_source_record(src: &FileSource, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"path\":");
    write_json_str(&src.path, out);
    out.extend_from_slice(b",\"device_id\":");
    write_json_str(&src.device_id, out);
    out.extend_from_slice(b",\"inode\":");
    write_json_str(&src.inode, out);
    out.extend_from_slice(b",\"fingerprint\":");
    match &src.fingerprint {
        Some(f) => write_json_str(f, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"input_id\":");
    write_json_str(&src.common.input_id, out);
    out.extend_from_slice(b",\"fields\":");
    let _ = serde_json::to_writer(&mut *out, &src.common.fields);
    out.push(b'}');
}

/// Encode a publish call's events into one frame (several for very large calls).
pub fn encode(events: Vec<Event>) -> Vec<Frame> {
    encode_reusing(events, Vec::new())
}

/// `encode`, writing the first frame into `spare` (the buffer of a frame already written and
/// synced): no allocation, and memory that was touched recently.
pub fn encode_reusing(mut events: Vec<Event>, spare: Vec<u8>) -> Vec<Frame> {
    // Close to the real size: an over-estimate past malloc's mmap threshold (128 KiB) would
    // cost a fresh mapping, and its page faults, per frame.
    let estimate: usize = events
        .iter()
        .map(|e| match &e.fields {
            Fields::Line(l) => l.message.len() + 40,
            _ => e.size_hint(),
        })
        .sum::<usize>()
        + 1024;
    let mut frames = Vec::new();
    // Where each frame after the first starts in `events`.
    let mut splits = Vec::new();
    let mut b = Builder::reusing(spare, estimate.min(SPLIT_AREA));
    for (i, ev) in events.iter_mut().enumerate() {
        if b.frame.count > 0 && (b.area_len() >= SPLIT_AREA || !b.has_source_room()) {
            frames.push(std::mem::replace(&mut b, Builder::new(SPLIT_AREA.min(estimate))).finish());
            splits.push(i);
        }
        b.push(ev);
    }
    frames.push(b.finish());
    // The events move into their frames as whole vectors: moved one by one (168 bytes each)
    // they were a tenth of the encoding's cost.
    for (frame, at) in frames.iter_mut().skip(1).rev().zip(splits.iter().rev()) {
        frame.events = events.split_off(*at);
    }
    frames[0].events = events;
    frames
}

// ---- decoding (the reading side) ----

#[derive(serde::Deserialize)]
struct SourceRecord {
    path: String,
    device_id: String,
    inode: String,
    fingerprint: Option<String>,
    input_id: String,
    fields: Map<String, Value>,
}

/// What was wrong inside a frame whose header was intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    /// Offset of the bad entry from the start of the frame.
    pub at: u64,
    pub reason: String,
}

pub struct Decoded {
    pub events: Vec<Event>,
    pub problems: Vec<EntryProblem>,
    /// Events the header promised that could not be read back.
    pub lost: u32,
}

/// Turns frame areas back into events; remembers the sources it built, so every line of a file
/// shares one `FileSource` as it did in the input.
#[derive(Default)]
pub struct Decoder {
    sources: HashMap<Box<[u8]>, Arc<FileSource>>,
}

impl Decoder {
    fn source(&mut self, record: &[u8]) -> Result<Arc<FileSource>, String> {
        if let Some(s) = self.sources.get(record) {
            return Ok(s.clone());
        }
        let r: SourceRecord =
            serde_json::from_slice(record).map_err(|e| format!("source record: {e}"))?;
        let common = Arc::new(InputCommon::from_fields(&r.input_id, r.fields));
        let src = Arc::new(FileSource::new(
            r.path,
            r.device_id,
            r.inode,
            r.fingerprint,
            common,
        ));
        if self.sources.len() >= 4096 {
            self.sources.clear();
        }
        self.sources.insert(record.into(), src.clone());
        Ok(src)
    }

    /// Decode the area of a frame (`area` holds exactly `h.area_len` bytes). Entries with a bad
    /// checksum are skipped (their length is trusted only if the next entry then checks out).
    pub fn decode(&mut self, h: &FrameHeader, area: &Bytes) -> Decoded {
        self.decode_with(h, area, true)
    }

    /// `verify = false` for frames that never left memory (handed over by the writer).
    pub fn decode_with(&mut self, h: &FrameHeader, area: &Bytes, verify: bool) -> Decoded {
        let mut events = Vec::with_capacity(h.count as usize);
        let mut problems = Vec::new();
        let mut sources: Vec<Option<Arc<FileSource>>> = Vec::new();
        let mut pos = 0usize;
        let len = area.len();
        let at = |p: usize| (FRAME_HEADER_LEN + p) as u64;
        while pos < len {
            if pos + ENTRY_HEADER + 1 > len {
                problems.push(EntryProblem {
                    at: at(pos),
                    reason: "frame ends inside an entry header".into(),
                });
                break;
            }
            let elen = u32_at(area, pos) as usize;
            let ecrc = u32_at(area, pos + 4);
            if elen == 0 || pos + ENTRY_HEADER + elen > len {
                problems.push(EntryProblem {
                    at: at(pos),
                    reason: format!("entry length {elen} runs past the frame"),
                });
                break;
            }
            let body = &area[pos + ENTRY_HEADER..pos + ENTRY_HEADER + elen];
            let entry_at = pos;
            pos += ENTRY_HEADER + elen;
            if verify && checksum::entry_crc(elen as u32, body) != ecrc {
                problems.push(EntryProblem {
                    at: at(entry_at),
                    reason: "entry checksum mismatch".into(),
                });
                // A damaged source entry: the lines that use it fail below and are counted.
                if body.first() == Some(&KIND_SOURCE) {
                    sources.push(None);
                }
                continue;
            }
            let body_off = entry_at + ENTRY_HEADER + 1;
            match body[0] {
                KIND_SOURCE => match self.source(&body[1..]) {
                    Ok(s) => sources.push(Some(s)),
                    Err(e) => {
                        sources.push(None);
                        problems.push(EntryProblem {
                            at: at(entry_at),
                            reason: e,
                        });
                    }
                },
                KIND_LINE => match decode_line(area, body_off, body.len() - 1, &sources) {
                    Ok(ev) => events.push(ev),
                    Err(e) => problems.push(EntryProblem {
                        at: at(entry_at),
                        reason: e,
                    }),
                },
                KIND_JSON => match decode_json(area, body_off, body.len() - 1) {
                    Ok(ev) => events.push(ev),
                    Err(e) => problems.push(EntryProblem {
                        at: at(entry_at),
                        reason: e,
                    }),
                },
                k => problems.push(EntryProblem {
                    at: at(entry_at),
                    reason: format!("unknown entry kind {k}"),
                }),
            }
        }
        let lost = h.count.saturating_sub(events.len() as u32);
        if lost > 0 && problems.is_empty() {
            problems.push(EntryProblem {
                at: at(0),
                reason: format!(
                    "frame holds {} events, its header says {}",
                    events.len(),
                    h.count
                ),
            });
        }
        Decoded {
            events,
            problems,
            lost,
        }
    }
}

fn meta_of(b: &[u8]) -> Result<(Option<Map<String, Value>>, usize), String> {
    if b.len() < 4 {
        return Err("entry too short".into());
    }
    let mlen = u32_at(b, 0) as usize;
    if 4 + mlen > b.len() {
        return Err("@metadata runs past the entry".into());
    }
    if mlen == 0 {
        return Ok((None, 4));
    }
    match serde_json::from_slice(&b[4..4 + mlen]) {
        Ok(Value::Object(m)) => Ok((Some(m), 4 + mlen)),
        _ => Err("@metadata is not a JSON object".into()),
    }
}

/// The line entry at `area[off..off + len]`. Its message stays a slice of `area`, as the
/// fields of a JSON entry do: no allocation per line read back.
fn decode_line(
    area: &Bytes,
    off: usize,
    len: usize,
    sources: &[Option<Arc<FileSource>>],
) -> Result<Event, String> {
    let b = &area[off..off + len];
    // flags u8 | source u16 | ts i64 | offset u64 | meta...
    if b.len() < 19 {
        return Err("line entry too short".into());
    }
    let flags = b[0];
    let idx = u16::from_le_bytes([b[1], b[2]]) as usize;
    let ts = u64_at(b, 3) as i64;
    let offset = u64_at(b, 11);
    let (meta, used) = meta_of(&b[19..])?;
    let message = Text::from_utf8(area.slice(off + 19 + used..off + len))
        .ok_or_else(|| "message is not UTF-8".to_string())?;
    let source = sources
        .get(idx)
        .cloned()
        .flatten()
        .ok_or_else(|| format!("line refers to source {idx}, which is missing or damaged"))?;
    let mut ev = Event::line(
        ts,
        LineFields {
            message,
            offset,
            flags,
            source,
            stream: None,
        },
        None,
    );
    ev.meta = meta.map(Box::new);
    Ok(ev)
}

fn decode_json(area: &Bytes, off: usize, len: usize) -> Result<Event, String> {
    let b = &area[off..off + len];
    if b.len() < 12 {
        return Err("json entry too short".into());
    }
    let ts = u64_at(b, 0) as i64;
    let (meta, used) = meta_of(&b[8..])?;
    let body_start = off + 8 + used;
    let body = area.slice(body_start..off + len);
    if body.first() != Some(&b'{') {
        return Err("fields are not a JSON object".into());
    }
    Ok(Event {
        timestamp: ts,
        fields: Fields::Json(Box::new(JsonFields::new(body))),
        meta: meta.map(Box::new),
        cursor: None,
    })
}

// ---- scanning a segment file ----

/// One step through a segment file.
#[derive(Debug)]
pub enum Step {
    /// An intact frame header at `offset`; `area` is empty when areas are not read.
    Frame {
        offset: u64,
        header: FrameHeader,
        area: Bytes,
    },
    /// `[offset, end)` holds no frame; an intact frame header starts at `end`.
    Corrupt { offset: u64, end: u64 },
    /// No intact frame from `offset` to the end of the data. `torn`: the data ends inside a
    /// frame that was being written (a crash mid-write), rather than holding damaged bytes.
    Tail { offset: u64, end: u64, torn: bool },
    /// Nothing more to read (up to the limit).
    End,
}

const BLOCK: usize = 4 << 20;
const RESYNC_BLOCK: usize = 1 << 20;

/// Walks the frames of one segment file from `pos` up to `limit`, resynchronising on the next
/// intact frame header after damaged bytes.
pub struct Scanner {
    file: Arc<File>,
    pub pos: u64,
    pub limit: u64,
    read_areas: bool,
    block: Bytes,
    block_start: u64,
}

impl Scanner {
    pub fn new(file: Arc<File>, pos: u64, limit: u64, read_areas: bool) -> Self {
        Scanner {
            file,
            pos,
            limit,
            read_areas,
            block: Bytes::new(),
            block_start: 0,
        }
    }

    fn read_at(&mut self, off: u64, len: usize) -> std::io::Result<Bytes> {
        let bs = self.block_start;
        if off >= bs && off + len as u64 <= bs + self.block.len() as u64 {
            let s = (off - bs) as usize;
            return Ok(self.block.slice(s..s + len));
        }
        let avail = self.limit.saturating_sub(off) as usize;
        let want = if self.read_areas {
            len.max(BLOCK).min(avail.max(len))
        } else {
            len
        };
        let mut buf = vec![0u8; want];
        self.file.read_exact_at(&mut buf, off)?;
        let block = Bytes::from(buf);
        let out = block.slice(0..len);
        if self.read_areas {
            self.block = block;
            self.block_start = off;
        }
        Ok(out)
    }

    /// The next step; `Err` only for I/O errors (the data itself never makes it fail).
    pub fn next_step(&mut self) -> std::io::Result<Step> {
        let pos = self.pos;
        if pos >= self.limit {
            return Ok(Step::End);
        }
        let left = self.limit - pos;
        if left < FRAME_HEADER_LEN as u64 {
            let b = self.read_at(pos, left as usize)?;
            self.pos = self.limit;
            // A torn header is a prefix of a header: its first bytes are the marker's.
            let n = b.len().min(FRAME_MARKER.len());
            let torn = b[..n] == FRAME_MARKER[..n];
            return Ok(Step::Tail {
                offset: pos,
                end: self.limit,
                torn,
            });
        }
        let hb = self.read_at(pos, FRAME_HEADER_LEN)?;
        match decode_frame_header(&hb) {
            Some(h) => {
                let end = pos + h.frame_len();
                if end > self.limit {
                    self.pos = self.limit;
                    return Ok(Step::Tail {
                        offset: pos,
                        end: self.limit,
                        torn: true,
                    });
                }
                let area = if self.read_areas {
                    self.read_at(pos + FRAME_HEADER_LEN as u64, h.area_len as usize)?
                } else {
                    Bytes::new()
                };
                self.pos = end;
                Ok(Step::Frame {
                    offset: pos,
                    header: h,
                    area,
                })
            }
            None => match self.resync(pos + 1)? {
                Some(next) => {
                    self.pos = next;
                    Ok(Step::Corrupt {
                        offset: pos,
                        end: next,
                    })
                }
                None => {
                    self.pos = self.limit;
                    Ok(Step::Tail {
                        offset: pos,
                        end: self.limit,
                        torn: false,
                    })
                }
            },
        }
    }

    /// The offset of the next intact frame header at or after `from`.
    fn resync(&mut self, from: u64) -> std::io::Result<Option<u64>> {
        let mut at = from;
        let finder = memchr::memmem::Finder::new(&FRAME_MARKER);
        while at + FRAME_HEADER_LEN as u64 <= self.limit {
            let len = ((self.limit - at) as usize).min(RESYNC_BLOCK + FRAME_HEADER_LEN);
            let mut buf = vec![0u8; len];
            self.file.read_exact_at(&mut buf, at)?;
            for i in finder.find_iter(&buf) {
                if i + FRAME_HEADER_LEN <= buf.len() {
                    if decode_frame_header(&buf[i..i + FRAME_HEADER_LEN]).is_some() {
                        return Ok(Some(at + i as u64));
                    }
                } else {
                    break;
                }
            }
            if len < RESYNC_BLOCK + FRAME_HEADER_LEN {
                break;
            }
            at += RESYNC_BLOCK as u64;
        }
        Ok(None)
    }
}

/// Read and check a segment file's header.
pub fn read_segment_header(file: &File) -> std::io::Result<Result<SegmentHeader, HeaderError>> {
    let len = file.metadata()?.len();
    let n = len.min(SEGMENT_HEADER_LEN) as usize;
    let mut b = vec![0u8; n];
    file.read_exact_at(&mut b, 0)?;
    Ok(decode_segment_header(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BeatInfo;
    use crate::pipeline::ack::AckTracker;

    pub fn beat() -> BeatInfo {
        BeatInfo {
            beat: "oxibeat".into(),
            version: "0.1.0".into(),
            hostname: "web-1".into(),
            name: "web-1".into(),
            agent_id: "a".into(),
            ephemeral_id: "e".into(),
        }
    }

    fn source(extra: Map<String, Value>) -> Arc<FileSource> {
        let common = Arc::new(InputCommon::new("app", "filestream", &beat(), extra));
        Arc::new(FileSource::new(
            "/var/log/app.log".into(),
            "64514".into(),
            "140027".into(),
            Some("ab".into()),
            common,
        ))
    }

    fn line(src: &Arc<FileSource>, msg: &str, off: u64) -> Event {
        Event::line(
            1_751_978_912_528_000_000,
            LineFields {
                message: msg.into(),
                offset: off,
                flags: 0,
                source: src.clone(),
                stream: None,
            },
            None,
        )
    }

    fn json_of(ev: &Event) -> Vec<u8> {
        let mut v = Vec::new();
        ev.write_json(&beat(), &mut v);
        v
    }

    fn roundtrip(events: Vec<Event>) -> (Vec<Vec<u8>>, Decoded) {
        let before: Vec<Vec<u8>> = events.iter().map(json_of).collect();
        let mut frames = encode(events);
        assert_eq!(frames.len(), 1);
        let mut f = frames.remove(0);
        f.seal(7, 1234);
        let h = decode_frame_header(&f.bytes).expect("header");
        assert_eq!(h.first_seq, 7);
        assert_eq!(h.count as usize, before.len());
        let area = Bytes::from(f.bytes).slice(FRAME_HEADER_LEN..);
        let d = Decoder::default().decode(&h, &area);
        (before, d)
    }

    /// More sources than a frame can index: the call becomes two frames, each holding its
    /// own events (in memory and on disk), in order.
    #[test]
    fn a_call_with_more_sources_than_a_frame_indexes_is_split_in_order() {
        let n = u16::MAX as usize + 10;
        let common = Arc::new(InputCommon::new("app", "filestream", &beat(), Map::new()));
        let events: Vec<Event> = (0..n)
            .map(|i| {
                let src = Arc::new(FileSource::new(
                    format!("/var/log/{i}.log"),
                    "1".into(),
                    i.to_string(),
                    None,
                    common.clone(),
                ));
                line(&src, &format!("m{i}"), i as u64)
            })
            .collect();
        let frames = encode(events);
        assert_eq!(frames.len(), 2);
        let mut next = 0;
        for mut f in frames {
            assert_eq!(f.events.len(), f.count as usize);
            assert_eq!(f.cursors.len(), 0, "these lines have no cursor");
            f.seal(next as u64, 0);
            let h = decode_frame_header(&f.bytes).expect("header");
            let area = Bytes::from(f.bytes.clone()).slice(FRAME_HEADER_LEN..);
            let d = Decoder::default().decode(&h, &area);
            assert!(d.problems.is_empty(), "{:?}", d.problems);
            for (mem, disk) in f.events.iter().zip(&d.events) {
                assert_eq!(mem.message(), Some(format!("m{next}").as_str()));
                assert_eq!(disk.message(), mem.message());
                next += 1;
            }
        }
        assert_eq!(next, n);
    }

    #[test]
    fn events_read_back_encode_to_the_same_bytes() {
        let mut extra = Map::new();
        extra.insert("fields".into(), serde_json::json!({"service": "api"}));
        extra.insert("tags".into(), serde_json::json!(["web"]));
        let src = source(extra);
        let mut under_root = Map::new();
        under_root.insert("message".into(), serde_json::json!("replaced"));
        let src_root = source(under_root);
        let mut flagged = line(&src, "multi\nline \"quoted\" ✓", 10);
        if let Fields::Line(l) = &mut flagged.fields {
            l.flags = crate::event::flags::MULTILINE | crate::event::flags::TRUNCATED;
        }
        let mut with_meta = line(&src, "meta", 20);
        let mut meta = Map::new();
        meta.insert("pipeline".into(), serde_json::json!("p1"));
        with_meta.meta = Some(Box::new(meta));
        let mut map = Map::new();
        map.insert(
            "system".into(),
            serde_json::json!({"cpu": {"total": {"pct": 0.5}}}),
        );
        map.insert("message".into(), serde_json::json!("a map"));
        let metric = Event::from_map(5, map);
        let empty = Event::from_map(6, Map::new());
        let events = vec![
            line(&src, "plain", 0),
            flagged,
            with_meta,
            line(&src_root, "root fields", 30),
            metric,
            empty,
        ];
        let (before, d) = roundtrip(events);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        assert_eq!(d.lost, 0);
        let after: Vec<Vec<u8>> = d.events.iter().map(json_of).collect();
        for (a, b) in before.iter().zip(&after) {
            assert_eq!(
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b),
                "same Beats JSON after the disk"
            );
        }
        // Lines come back as lines (the output's fast path), sharing one source.
        assert!(matches!(d.events[0].fields, Fields::Line(_)));
        match (&d.events[0].fields, &d.events[1].fields) {
            (Fields::Line(a), Fields::Line(b)) => {
                assert!(Arc::ptr_eq(&a.source, &b.source));
                // Their messages are slices of the frame read, not copies.
                assert!(a.message.is_shared() && b.message.is_shared());
            }
            _ => unreachable!(),
        }
        assert!(matches!(d.events[3].fields, Fields::Json(_)));
        // Lookups work on both forms, without materialising lines.
        assert_eq!(
            crate::processors::lookup(&d.events[0], "fields.service")
                .unwrap()
                .as_str(),
            Some("api")
        );
        assert_eq!(
            crate::processors::lookup(&d.events[4], "system.cpu.total.pct")
                .unwrap()
                .into_value(),
            serde_json::json!(0.5)
        );
        assert_eq!(
            crate::processors::lookup(&d.events[2], "@metadata.pipeline")
                .unwrap()
                .as_str(),
            Some("p1")
        );
        assert_eq!(d.events[4].timestamp, 5);
    }

    #[test]
    fn a_damaged_entry_loses_only_itself() {
        let src = source(Map::new());
        let events: Vec<Event> = (0..5)
            .map(|i| line(&src, &format!("line {i}"), i))
            .collect();
        let mut frames = encode(events);
        let mut f = frames.remove(0);
        f.seal(0, 0);
        // Flip a byte inside the third line's message.
        let at = memchr::memmem::find(&f.bytes, b"line 2").unwrap();
        f.bytes[at + 3] ^= 0x20;
        let h = decode_frame_header(&f.bytes).unwrap();
        let area = Bytes::from(f.bytes).slice(FRAME_HEADER_LEN..);
        let d = Decoder::default().decode(&h, &area);
        assert_eq!(d.lost, 1);
        assert_eq!(d.problems.len(), 1);
        let msgs: Vec<&str> = d.events.iter().filter_map(|e| e.message()).collect();
        assert_eq!(msgs, ["line 0", "line 1", "line 3", "line 4"]);
    }

    #[test]
    fn cursors_are_kept_for_the_input_ack() {
        let src = source(Map::new());
        let t = AckTracker::new(0);
        let mut ev = line(&src, "x", 0);
        ev.cursor = Some(t.next_cursor(2));
        let frames = encode(vec![ev]);
        assert_eq!(frames[0].cursors.len(), 1);
    }

    #[test]
    fn headers_reject_damage_and_other_versions() {
        let h = encode_segment_header(SegmentHeader {
            id: 9,
            created_ms: 1,
        });
        assert_eq!(decode_segment_header(&h).unwrap().id, 9);
        let mut bad = h;
        bad[20] ^= 1;
        assert_eq!(decode_segment_header(&bad), Err(HeaderError::Checksum));
        let mut v2 = h;
        v2[8] = 2;
        assert_eq!(decode_segment_header(&v2), Err(HeaderError::Version(2)));
        assert_eq!(decode_segment_header(&h[..10]), Err(HeaderError::Short(10)));
        let mut fh = [0u8; FRAME_HEADER_LEN];
        let frame = FrameHeader {
            area_len: 10,
            count: 1,
            first_seq: 3,
            written_ms: 4,
        };
        encode_frame_header(&frame, &mut fh);
        assert_eq!(decode_frame_header(&fh), Some(frame));
        fh[13] ^= 1;
        assert_eq!(decode_frame_header(&fh), None);
    }
}
