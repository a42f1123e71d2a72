//! The event: what every input produces and every output serialises.
//!
//! Two representations share one type:
//! - `Fields::Line`, the hot path: a log line plus a pointer to its file and input metadata.
//!   It is serialised straight into the output buffer, never built as a JSON map. Its text
//!   is usually a slice of one copy shared by the lines of its read (`Text`), so a line costs
//!   no allocation of its own.
//! - `Fields::Map`, a full JSON object: produced by parsers (ndjson), metric inputs, and by
//!   any processor that touches the event (`Event::fields_mut` converts a line on first use).
//! - `Fields::Json`, fields kept as the JSON object they were encoded to: what the disk queue
//!   reads back for map events. Written out as they are; parsed only when something looks a
//!   field up (a format string, a `when` condition), once per event.
//!
//! `@timestamp` and `@metadata` are kept outside the fields and written first, as Beats do.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::pipeline::ack::Cursor;

mod text;
pub use text::Text;

/// Static facts about this agent, shared by every event.
#[derive(Debug, Clone)]
pub struct BeatInfo {
    pub beat: String,
    pub version: String,
    pub hostname: String,
    /// `agent.name`, defaults to the hostname (Beats' `name` setting).
    pub name: String,
    pub agent_id: String,
    pub ephemeral_id: String,
}

impl BeatInfo {
    /// `host`, `agent` and `ecs` as Beats write them.
    pub fn common_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("ecs".into(), serde_json::json!({"version": "8.0.0"}));
        m.insert("host".into(), serde_json::json!({"name": self.hostname}));
        m.insert(
            "agent".into(),
            serde_json::json!({
                "type": self.beat,
                "version": self.version,
                "ephemeral_id": self.ephemeral_id,
                "id": self.agent_id,
                "name": self.name,
            }),
        );
        m
    }

    /// The `@metadata` object.
    pub fn metadata(&self) -> Value {
        serde_json::json!({"beat": self.beat, "type": "_doc", "version": self.version})
    }
}

/// Fields an input adds to each of its events (`input.type`, `fields`, `tags`, host, agent, ecs).
/// Built once per input; kept both as a map and pre-serialised for the line fast path.
#[derive(Debug)]
pub struct InputCommon {
    pub input_id: String,
    pub fields: Map<String, Value>,
    /// The same fields serialised as `"k":v,"k2":v2` (no braces), appended to line events.
    json_tail: String,
    /// `fields_under_root` brought a `message` or `log` key: line events take the map path,
    /// so the user's value replaces the agent's instead of being written twice.
    replaces_line_fields: bool,
}

impl InputCommon {
    /// Rebuild from the fields `new` produced (`common.fields`), e.g. read back from the disk
    /// queue: the same fields give the same serialised tail.
    pub fn from_fields(input_id: &str, fields: Map<String, Value>) -> Self {
        let replaces_line_fields = fields.contains_key("message") || fields.contains_key("log");
        Self::assemble(input_id, fields, replaces_line_fields)
    }

    /// `input_type` becomes `input.type`; `extra` holds user `fields` (already placed under
    /// `fields` or at the root according to `fields_under_root`) and `tags`.
    pub fn new(
        input_id: &str,
        input_type: &str,
        beat: &BeatInfo,
        extra: Map<String, Value>,
    ) -> Self {
        let mut fields = Map::new();
        fields.insert("input".into(), serde_json::json!({ "type": input_type }));
        for (k, v) in beat.common_fields() {
            fields.insert(k, v);
        }
        let mut replaces_line_fields = false;
        for (k, v) in extra {
            match k.as_str() {
                // Written from the event itself; a user field cannot stand in for them.
                "@timestamp" | "@metadata" => continue,
                // User fields under root override what the agent sets, as in Beats.
                "message" | "log" => replaces_line_fields = true,
                _ => {}
            }
            fields.insert(k, v);
        }
        Self::assemble(input_id, fields, replaces_line_fields)
    }

    fn assemble(input_id: &str, fields: Map<String, Value>, replaces_line_fields: bool) -> Self {
        let mut json_tail = String::new();
        for (k, v) in &fields {
            if !json_tail.is_empty() {
                json_tail.push(',');
            }
            json_tail.push_str(&Value::String(k.clone()).to_string());
            json_tail.push(':');
            json_tail.push_str(&v.to_string());
        }
        InputCommon {
            input_id: input_id.to_string(),
            fields,
            json_tail,
            replaces_line_fields,
        }
    }
}

/// The file a line came from.
#[derive(Debug)]
pub struct FileSource {
    pub path: String,
    pub device_id: String,
    pub inode: String,
    /// Only with fingerprint identity, like Filebeat.
    pub fingerprint: Option<String>,
    pub common: Arc<InputCommon>,
    /// The `log.file` object (`path`, `device_id`, `inode`, `fingerprint`), serialised once:
    /// it is the same for every line of the file.
    file_json: Box<[u8]>,
}

impl FileSource {
    pub fn new(
        path: String,
        device_id: String,
        inode: String,
        fingerprint: Option<String>,
        common: Arc<InputCommon>,
    ) -> Self {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"path\":");
        write_json_str(&path, &mut out);
        // Empty when the input leaves file identity out of events (include_file_identity).
        if !device_id.is_empty() {
            out.extend_from_slice(b",\"device_id\":");
            write_json_str(&device_id, &mut out);
        }
        if !inode.is_empty() {
            out.extend_from_slice(b",\"inode\":");
            write_json_str(&inode, &mut out);
        }
        if let Some(fp) = &fingerprint {
            out.extend_from_slice(b",\"fingerprint\":");
            write_json_str(fp, &mut out);
        }
        out.push(b'}');
        FileSource {
            path,
            device_id,
            inode,
            fingerprint,
            common,
            file_json: out.into_boxed_slice(),
        }
    }
}

/// `log.flags` values.
pub mod flags {
    pub const MULTILINE: u8 = 1;
    pub const TRUNCATED: u8 = 2;
    pub const INVALID_UTF8: u8 = 4;
    /// Decoded keys would have nested deeper than `MAX_DEPTH`: the rest was kept dotted.
    pub const KEYS_TOO_DEEP: u8 = 8;
    pub const NAMES: [(u8, &str); 4] = [
        (MULTILINE, "multiline"),
        (TRUNCATED, "truncated"),
        (INVALID_UTF8, "invalid_utf8"),
        (KEYS_TOO_DEEP, "keys_too_deep"),
    ];
}

/// The deepest an event's objects may become from what is read (dotted keys expanded by
/// `expand_keys`): every later step (processors, encoding, dropping) walks objects
/// recursively, so input must never nest them without bound.
pub const MAX_DEPTH: usize = 100;

#[derive(Debug)]
pub struct LineFields {
    /// Often a slice of the buffer its read filled, shared with the other lines of that read.
    pub message: Text,
    /// Byte offset of the first byte of the line in the file.
    pub offset: u64,
    pub flags: u8,
    pub source: Arc<FileSource>,
    /// The container output stream (`stream`: stdout or stderr) of a container runtime's line.
    pub stream: Option<std::borrow::Cow<'static, str>>,
}

#[derive(Debug)]
pub enum Fields {
    /// Not boxed: one allocation less per line, on the path every log line takes.
    Line(LineFields),
    Map(Map<String, Value>),
    Json(Box<JsonFields>),
}

/// Fields kept as their encoded JSON object (`{"message":...}`, without `@timestamp` and
/// `@metadata`), parsed on the first field lookup only.
pub struct JsonFields {
    json: bytes::Bytes,
    parsed: std::sync::OnceLock<Map<String, Value>>,
}

impl JsonFields {
    /// `json` must be one JSON object, as `Event::write_fields_object` writes it.
    pub fn new(json: bytes::Bytes) -> Self {
        JsonFields {
            json,
            parsed: std::sync::OnceLock::new(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    /// The fields as a map, parsed on first use. Bytes that are not a JSON object (they were
    /// checksummed, so only a bug could cause it) read as no fields.
    pub fn map(&self) -> &Map<String, Value> {
        self.parsed
            .get_or_init(|| match serde_json::from_slice(&self.json) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            })
    }

    /// The members between the braces (`"a":1,"b":2`), empty for `{}`.
    fn members(&self) -> &[u8] {
        let b: &[u8] = &self.json;
        let start = b.iter().position(|&c| c == b'{').map_or(0, |i| i + 1);
        let end = b.iter().rposition(|&c| c == b'}').unwrap_or(b.len());
        let inner = b.get(start..end.max(start)).unwrap_or(&[]);
        let first = inner.iter().position(|c| !c.is_ascii_whitespace());
        match first {
            Some(i) => &inner[i..],
            None => &[],
        }
    }
}

impl std::fmt::Debug for JsonFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonFields({} bytes)", self.json.len())
    }
}

#[derive(Debug)]
pub struct Event {
    /// Unix time in nanoseconds.
    pub timestamp: i64,
    pub fields: Fields,
    /// Extra `@metadata` keys (beat/type/version are always written). Boxed: most events
    /// have none, and a smaller event is cheaper to move through the queue.
    pub meta: Option<Box<Map<String, Value>>>,
    /// Where this event came from, for acknowledgement; `None` for sources without a cursor.
    pub cursor: Option<Cursor>,
}

pub fn now_nanos() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_nanos() as i64
}

impl Event {
    pub fn line(timestamp: i64, line: LineFields, cursor: Option<Cursor>) -> Self {
        Event {
            timestamp,
            fields: Fields::Line(line),
            meta: None,
            cursor,
        }
    }

    pub fn from_map(timestamp: i64, fields: Map<String, Value>) -> Self {
        Event {
            timestamp,
            fields: Fields::Map(fields),
            meta: None,
            cursor: None,
        }
    }

    /// The fields as a mutable JSON map, converting a line event on first use.
    pub fn fields_mut(&mut self) -> &mut Map<String, Value> {
        match &mut self.fields {
            Fields::Line(line) => {
                let map = line_to_map(line);
                self.fields = Fields::Map(map);
            }
            Fields::Json(j) => {
                let map = match j.parsed.take() {
                    Some(m) => m,
                    None => j.map().clone(),
                };
                self.fields = Fields::Map(map);
            }
            Fields::Map(_) => {}
        }
        match &mut self.fields {
            Fields::Map(m) => m,
            _ => unreachable!("converted above"),
        }
    }

    /// Rough size in bytes, used to bound the queue by memory.
    pub fn size_hint(&self) -> usize {
        match &self.fields {
            Fields::Line(l) => l.message.len() + 512,
            Fields::Map(m) => 256 + m.len() * 64 + map_string_bytes(m),
            Fields::Json(j) => 128 + j.json.len(),
        }
    }

    /// The event's message, if it has one (cheap for line events).
    pub fn message(&self) -> Option<&str> {
        match &self.fields {
            Fields::Line(l) => Some(&l.message),
            Fields::Map(m) => m.get("message").and_then(Value::as_str),
            Fields::Json(j) => j.map().get("message").and_then(Value::as_str),
        }
    }

    /// Look up a dotted path (`log.file.path`), also for the keys stored outside the map.
    pub fn get_value(&self, path: &str) -> Option<Value> {
        if path == "@timestamp" {
            return Some(Value::String(format_timestamp(self.timestamp)));
        }
        match &self.fields {
            Fields::Line(l) => get_path(&line_to_map(l), path).cloned(),
            Fields::Map(m) => get_path(m, path).cloned(),
            Fields::Json(j) => get_path(j.map(), path).cloned(),
        }
    }

    /// Serialise as one Beats JSON document (no trailing newline) into `out`.
    pub fn write_json(&self, beat: &BeatInfo, out: &mut Vec<u8>) {
        self.write(beat, out, true);
    }

    /// Serialise as the document an index stores: the Beats JSON without `@metadata`
    /// (Filebeat's Elasticsearch output does not send it either).
    pub fn write_document(&self, beat: &BeatInfo, out: &mut Vec<u8>) {
        self.write(beat, out, false);
    }

    fn write(&self, beat: &BeatInfo, out: &mut Vec<u8>, with_metadata: bool) {
        out.extend_from_slice(b"{\"@timestamp\":\"");
        write_timestamp(self.timestamp, out);
        out.push(b'"');
        if with_metadata {
            self.write_metadata(beat, out);
        }
        self.write_members(out);
        out.push(b'}');
    }

    fn write_metadata(&self, beat: &BeatInfo, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"@metadata\":{\"beat\":");
        write_json_str(&beat.beat, out);
        out.extend_from_slice(b",\"type\":\"_doc\",\"version\":");
        write_json_str(&beat.version, out);
        if let Some(meta) = &self.meta {
            for (k, v) in meta.iter() {
                if matches!(k.as_str(), "beat" | "type" | "version") {
                    continue;
                }
                out.push(b',');
                write_json_str(k, out);
                out.push(b':');
                // Writing into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, v);
            }
        }
        out.push(b'}');
    }

    /// The fields alone as one JSON object (no `@timestamp`, no `@metadata`), the form
    /// `Fields::Json` keeps.
    pub fn write_fields_object(&self, out: &mut Vec<u8>) {
        let start = out.len();
        self.write_members(out);
        if out.len() > start {
            // Every member was written with a leading comma: the first one becomes the brace.
            out[start] = b'{';
        } else {
            out.push(b'{');
        }
        out.push(b'}');
    }

    /// Every field as `,"key":value`.
    fn write_members(&self, out: &mut Vec<u8>) {
        let materialised;
        let fields = match &self.fields {
            Fields::Line(l) if l.source.common.replaces_line_fields => {
                materialised = Fields::Map(line_to_map(l));
                &materialised
            }
            f => f,
        };
        match fields {
            Fields::Line(l) => write_line_fields(l, out),
            Fields::Map(m) => {
                for (k, v) in m {
                    if k == "@timestamp" || k == "@metadata" {
                        continue;
                    }
                    out.push(b',');
                    write_json_str(k, out);
                    out.push(b':');
                    let _ = serde_json::to_writer(&mut *out, v);
                }
            }
            Fields::Json(j) => {
                let members = j.members();
                if !members.is_empty() {
                    out.push(b',');
                    out.extend_from_slice(members);
                }
            }
        }
    }

    /// The event as a JSON value, `@timestamp` and `@metadata` included (for tests and tools).
    pub fn to_value(&self, beat: &BeatInfo) -> Value {
        let mut buf = Vec::new();
        self.write_json(beat, &mut buf);
        serde_json::from_slice(&buf).unwrap_or(Value::Null)
    }
}

fn map_string_bytes(m: &Map<String, Value>) -> usize {
    m.values()
        .map(|v| match v {
            Value::String(s) => s.len(),
            Value::Object(o) => map_string_bytes(o),
            _ => 8,
        })
        .sum()
}

fn write_line_fields(l: &LineFields, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"message\":");
    write_json_str(&l.message, out);
    out.extend_from_slice(b",\"log\":{\"offset\":");
    out.extend_from_slice(itoa::Buffer::new().format(l.offset).as_bytes());
    out.extend_from_slice(b",\"file\":");
    out.extend_from_slice(&l.source.file_json);
    if l.flags != 0 {
        out.extend_from_slice(b",\"flags\":[");
        let mut first = true;
        for (bit, name) in flags::NAMES {
            if l.flags & bit != 0 {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_json_str(name, out);
            }
        }
        out.push(b']');
    }
    out.push(b'}');
    if let Some(stream) = &l.stream {
        out.extend_from_slice(b",\"stream\":");
        write_json_str(stream, out);
    }
    let tail = &l.source.common.json_tail;
    if !tail.is_empty() {
        out.push(b',');
        out.extend_from_slice(tail.as_bytes());
    }
}

/// `log.*` for a line, plus the input's common fields.
fn line_to_map(l: &LineFields) -> Map<String, Value> {
    let mut file = Map::new();
    file.insert("path".into(), Value::String(l.source.path.clone()));
    if !l.source.device_id.is_empty() {
        file.insert(
            "device_id".into(),
            Value::String(l.source.device_id.clone()),
        );
    }
    if !l.source.inode.is_empty() {
        file.insert("inode".into(), Value::String(l.source.inode.clone()));
    }
    if let Some(fp) = &l.source.fingerprint {
        file.insert("fingerprint".into(), Value::String(fp.clone()));
    }
    let mut log = Map::new();
    log.insert("offset".into(), Value::from(l.offset));
    log.insert("file".into(), Value::Object(file));
    if l.flags != 0 {
        let names: Vec<Value> = flags::NAMES
            .iter()
            .filter(|(bit, _)| l.flags & bit != 0)
            .map(|(_, n)| Value::String((*n).into()))
            .collect();
        log.insert("flags".into(), Value::Array(names));
    }
    let mut m = Map::new();
    m.insert("message".into(), Value::String(l.message.to_string()));
    m.insert("log".into(), Value::Object(log));
    if let Some(stream) = &l.stream {
        m.insert("stream".into(), Value::String(stream.to_string()));
    }
    for (k, v) in &l.source.common.fields {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// Merge `new` into `base` recursively (objects merge, other values replace only when
/// `overwrite` is set or the key is absent), like Beats' DeepUpdate / DeepUpdateNoOverwrite.
pub fn deep_merge(base: &mut Map<String, Value>, new: Map<String, Value>, overwrite: bool) {
    for (k, v) in new {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(n)) => deep_merge(b, n, overwrite),
            (Some(_), v) => {
                if overwrite {
                    base.insert(k, v);
                }
            }
            (None, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Parse an RFC 3339 timestamp (`2026-11-25T10:00:00.123Z`, `+01:00` offsets) to unix nanos.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        let mut scaled = String::from(digits);
        scaled.truncate(9);
        while scaled.len() < 9 {
            scaled.push('0');
        }
        frac_nanos = scaled.parse().ok()?;
    }
    let offset_secs = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let oh: i64 = tz.get(1..3)?.parse().ok()?;
            let om: i64 = tz.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if tz.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // Days from civil (inverse of civil_from_days).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    // Years past 2262 do not fit in i64 nanoseconds: not a usable timestamp.
    secs.checked_mul(1_000_000_000)?.checked_add(frac_nanos)
}

/// Dotted-path lookup. A key that itself contains dots (`"a.b": 1`) is also found.
pub fn get_path<'a>(m: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    // A loop, not recursion: paths can come from input (one segment per dot).
    let (mut cur, mut rest) = (m, path);
    loop {
        if let Some(v) = cur.get(rest) {
            return Some(v);
        }
        let (head, tail) = rest.split_once('.')?;
        cur = cur.get(head)?.as_object()?;
        rest = tail;
    }
}

/// Dotted-path insert, creating intermediate objects (replacing non-objects in the way).
pub fn put_path(m: &mut Map<String, Value>, path: &str, value: Value) {
    put_segments(m, path.split('.'), value);
}

/// Insert `value` at the path made of `segments` (taken as they are, dots and all),
/// creating intermediate objects. A loop, not recursion: paths can come from input.
pub fn put_segments<'a>(
    m: &mut Map<String, Value>,
    mut segments: impl Iterator<Item = &'a str>,
    value: Value,
) {
    let Some(mut name) = segments.next() else {
        return;
    };
    let mut cur = m;
    for next in segments {
        let entry = cur
            .entry(name.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        cur = match entry {
            Value::Object(inner) => inner,
            _ => return,
        };
        name = next;
    }
    cur.insert(name.to_string(), value);
}

/// Dotted-path removal; returns the removed value.
pub fn remove_path(m: &mut Map<String, Value>, path: &str) -> Option<Value> {
    let (mut cur, mut rest) = (m, path);
    loop {
        if cur.contains_key(rest) {
            return cur.remove(rest);
        }
        let (head, tail) = rest.split_once('.')?;
        cur = cur.get_mut(head)?.as_object_mut()?;
        rest = tail;
    }
}

/// RFC 3339 UTC with milliseconds, as Beats write `@timestamp`.
pub fn format_timestamp(nanos: i64) -> String {
    let mut v = Vec::with_capacity(24);
    write_timestamp(nanos, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

fn write_timestamp(nanos: i64, out: &mut Vec<u8>) {
    // Events of a batch share their millisecond: format it once per thread and millisecond.
    thread_local! {
        static LAST: std::cell::Cell<(i64, [u8; 24])> = const { std::cell::Cell::new((i64::MIN, [0; 24])) };
    }
    let millis_key = nanos.div_euclid(1_000_000);
    let (key, text) = LAST.with(|c| c.get());
    if key == millis_key {
        out.extend_from_slice(&text);
        return;
    }
    let start = out.len();
    format_timestamp_into(nanos, out);
    if out.len() - start == 24 {
        let mut t = [0u8; 24];
        t.copy_from_slice(&out[start..]);
        LAST.with(|c| c.set((millis_key, t)));
    }
}

fn format_timestamp_into(nanos: i64, out: &mut Vec<u8>) {
    let secs = nanos.div_euclid(1_000_000_000);
    let millis = nanos.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        mo,
        d,
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        millis
    );
    out.extend_from_slice(s.as_bytes());
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Append `s` as a JSON string literal.
pub fn write_json_str(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    loop {
        // Most strings need no escaping: skip what is clean in one go, then escape one byte.
        i += clean_prefix(&bytes[i..]);
        let Some(&b) = bytes.get(i) else {
            break;
        };
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// How many leading bytes of `b` a JSON string takes as they are (no control character, `"`
/// or `\\`): 16 bytes per step with SSE2 (every x86-64 has it), then 8 bytes per step.
fn clean_prefix(b: &[u8]) -> usize {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64; the loads read 16 bytes inside `b` (unaligned).
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let space_below = _mm_set1_epi8(0x1f);
            while i + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                // Unsigned v <= 0x1f exactly when max(v, 0x1f) == 0x1f.
                let ctrl = _mm_cmpeq_epi8(_mm_max_epu8(v, space_below), space_below);
                let hit = _mm_or_si128(
                    ctrl,
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                );
                let mask = _mm_movemask_epi8(hit) as u32;
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
        if word_needs_escape(w) {
            break;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c < 0x20 || c == b'"' || c == b'\\' {
            break;
        }
        i += 1;
    }
    i
}

/// Whether any byte of `w` is a control character, `"` or `\\` (bit tricks from
/// "Bit Twiddling Hacks": a byte is zero / below n).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (below_space | has_zero(w ^ (ONES * b'"' as u64)) | has_zero(w ^ (ONES * b'\\' as u64))) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn timestamp_format() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(1_751_978_912_528_000_000),
            "2025-07-08T12:48:32.528Z"
        );
        assert_eq!(
            format_timestamp(951_782_400_001_000_000),
            "2000-02-29T00:00:00.001Z"
        );
    }

    #[test]
    fn json_string_escaping_matches_serde() {
        for s in [
            "plain",
            "q\"b\\s",
            "nl\n\t\r",
            "\u{0}\u{1f}x",
            "héllo ✓",
            "",
        ] {
            let mut out = Vec::new();
            write_json_str(s, &mut out);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
        // Every ASCII byte, and some multi-byte characters, at every position of strings
        // around the 16- and 8-byte steps of `clean_prefix`.
        let specials = (0u8..0x80).map(char::from).chain(['é', '€', '😀']);
        for c in specials {
            for len in 1..40 {
                for pos in 0..len {
                    let s: String = (0..len)
                        .map(|i| {
                            if i == pos {
                                c
                            } else {
                                (b'a' + (i % 26) as u8) as char
                            }
                        })
                        .collect();
                    let mut out = Vec::new();
                    write_json_str(&s, &mut out);
                    let back: String = serde_json::from_slice(&out).unwrap();
                    assert_eq!(back, s, "{c:?} at {pos} of {len}");
                    assert!(out.iter().all(|&b| b >= 0x20), "{s:?}: raw control byte");
                    if !matches!(c, '"' | '\\') && c >= ' ' {
                        assert_eq!(out, format!("\"{s}\"").into_bytes(), "{s:?} copied as is");
                    }
                }
            }
        }
        let mut out = Vec::new();
        write_json_str("\"\\\u{1}", &mut out);
        assert_eq!(out, b"\"\\\"\\\\\\u0001\"");
    }

    #[test]
    fn line_event_fast_path_equals_materialised_map() {
        let b = beat();
        let mut extra = Map::new();
        extra.insert("fields".into(), serde_json::json!({"env": "prod"}));
        extra.insert("tags".into(), serde_json::json!(["web"]));
        let common = Arc::new(InputCommon::new("app", "filestream", &b, extra));
        let source = Arc::new(FileSource::new(
            "/var/log/app.log".into(),
            "64514".into(),
            "140027".into(),
            Some("ab".into()),
            common,
        ));
        let ev = Event::line(
            0,
            LineFields {
                message: "hello \"world\"".into(),
                offset: 541482,
                flags: flags::MULTILINE | flags::TRUNCATED,
                source,
                stream: Some("stderr".into()),
            },
            None,
        );
        let fast = ev.to_value(&b);
        let mut slow_ev = Event::line(
            0,
            match &ev.fields {
                Fields::Line(l) => LineFields {
                    message: l.message.clone(),
                    offset: l.offset,
                    flags: l.flags,
                    source: l.source.clone(),
                    stream: l.stream.clone(),
                },
                _ => unreachable!(),
            },
            None,
        );
        slow_ev.fields_mut();
        assert_eq!(fast, slow_ev.to_value(&b));
        assert_eq!(fast["log"]["offset"], 541482);
        assert_eq!(
            fast["log"]["flags"],
            serde_json::json!(["multiline", "truncated"])
        );
        assert_eq!(fast["log"]["file"]["inode"], "140027");
        assert_eq!(fast["input"]["type"], "filestream");
        assert_eq!(fast["fields"]["env"], "prod");
        assert_eq!(fast["@metadata"]["beat"], "oxibeat");
        assert_eq!(fast["agent"]["type"], "oxibeat");
        assert_eq!(fast["ecs"]["version"], "8.0.0");
        assert_eq!(fast["host"]["name"], "web-1");
        assert_eq!(ev.get_value("log.file.path").unwrap(), "/var/log/app.log");
    }

    #[test]
    fn timestamp_parse_roundtrip() {
        let t = parse_timestamp("2025-07-08T12:48:32.528Z").unwrap();
        assert_eq!(format_timestamp(t), "2025-07-08T12:48:32.528Z");
        let t2 = parse_timestamp("2025-07-08T14:48:32.528+02:00").unwrap();
        assert_eq!(t, t2);
        assert!(parse_timestamp("yesterday").is_none());
        assert!(parse_timestamp("9999-12-31T00:00:00Z").is_none());
        assert!(parse_timestamp("2025-13-08T12:48:32Z").is_none());
    }

    #[test]
    fn deep_merge_keeps_existing_leaves() {
        let mut base = serde_json::json!({"log": {"offset": 1}, "a": 1});
        let new = serde_json::json!({"log": {"level": "info", "offset": 9}, "a": 2, "b": 3});
        let (Value::Object(b), Value::Object(n)) = (&mut base, new) else {
            unreachable!()
        };
        deep_merge(b, n, false);
        assert_eq!(
            base,
            serde_json::json!({"log": {"offset": 1, "level": "info"}, "a": 1, "b": 3})
        );
    }

    #[test]
    fn paths() {
        let mut m = Map::new();
        put_path(&mut m, "a.b.c", Value::from(1));
        m.insert("x.y".into(), Value::from(2));
        assert_eq!(get_path(&m, "a.b.c"), Some(&Value::from(1)));
        assert_eq!(get_path(&m, "x.y"), Some(&Value::from(2)));
        assert_eq!(remove_path(&mut m, "a.b.c"), Some(Value::from(1)));
        assert!(get_path(&m, "a.b.c").is_none());
    }
}
