//! Parsers run on lines before they become events, in the configured order:
//! `multiline` joins lines into one message, `ndjson` decodes a line into fields,
//! `container` decodes a container runtime's line (`container.rs`).

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::config::filestream::{
    MultilineConfig, MultilineMatch, MultilineType, NdjsonConfig, ParserConfig,
};
use crate::event::{flags, put_path, Text};

use super::container::Container;

/// A line (or several joined lines) on its way to becoming an event.
#[derive(Debug)]
pub struct Message {
    pub text: Text,
    /// Decoded fields (ndjson); `None` keeps the event on the fast line path.
    pub fields: Option<Box<Map<String, Value>>>,
    /// Event-level `@metadata` additions (ndjson `document_id`).
    pub meta: Option<Box<Map<String, Value>>>,
    pub start: u64,
    pub end: u64,
    pub flags: u8,
    pub lines: usize,
    /// `@timestamp` from the line itself (a container runtime's time).
    pub ts: Option<i64>,
    /// The container's output stream (`stream` field).
    pub stream: Option<std::borrow::Cow<'static, str>>,
    /// Read but not shipped (the container parser's `stream` filter): only moves the cursor.
    pub skip: bool,
}

impl Message {
    pub fn new(text: impl Into<Text>, start: u64, end: u64, flags: u8) -> Self {
        Message {
            text: text.into(),
            fields: None,
            meta: None,
            start,
            end,
            flags,
            lines: 1,
            ts: None,
            stream: None,
            skip: false,
        }
    }
}

/// The configured parsers of one file.
pub struct Parsers {
    stages: Vec<Stage>,
}

enum Stage {
    Multiline(Box<Multiline>),
    Ndjson(NdjsonConfig),
    Container(Box<Container>),
}

impl Parsers {
    pub fn new(cfg: &[ParserConfig], max_bytes: usize) -> Self {
        let stages = cfg
            .iter()
            .map(|p| match p {
                ParserConfig::Multiline(m) => {
                    Stage::Multiline(Box::new(Multiline::new(m.clone(), max_bytes)))
                }
                ParserConfig::Ndjson(n) => Stage::Ndjson(n.clone()),
                ParserConfig::Container(c) => {
                    Stage::Container(Box::new(Container::new(c.clone(), max_bytes)))
                }
            })
            .collect();
        Parsers { stages }
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Feed one line; completed messages are appended to `out`.
    pub fn push(&mut self, msg: Message, now: Instant, out: &mut Vec<Message>) {
        self.run_from(0, vec![msg], now, out);
    }

    /// Complete every pending multiline message (end of file for good, or shutdown).
    pub fn flush_all(&mut self, now: Instant, out: &mut Vec<Message>) {
        for i in 0..self.stages.len() {
            let flushed = match &mut self.stages[i] {
                Stage::Multiline(m) => m.flush(),
                Stage::Container(c) => c.flush(),
                Stage::Ndjson(_) => None,
            };
            if let Some(msg) = flushed {
                self.run_from(i + 1, vec![msg], now, out);
            }
        }
    }

    /// Complete multiline messages that waited longer than their `timeout`.
    pub fn flush_stale(&mut self, now: Instant, out: &mut Vec<Message>) {
        for i in 0..self.stages.len() {
            let flushed = match &mut self.stages[i] {
                Stage::Multiline(m) if m.is_stale(now) => m.flush(),
                _ => None,
            };
            if let Some(msg) = flushed {
                self.run_from(i + 1, vec![msg], now, out);
            }
        }
    }

    /// Earliest instant at which a pending multiline message times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.stages
            .iter()
            .filter_map(|s| match s {
                Stage::Multiline(m) => m.deadline(),
                Stage::Ndjson(_) | Stage::Container(_) => None,
            })
            .min()
    }

    /// File offset of the first line held inside a parser, if any (not yet an event).
    pub fn pending_start(&self) -> Option<u64> {
        self.stages.iter().filter_map(Stage::pending_start).min()
    }

    fn run_from(
        &mut self,
        first: usize,
        mut msgs: Vec<Message>,
        now: Instant,
        out: &mut Vec<Message>,
    ) {
        for stage in &mut self.stages[first..] {
            let mut next = Vec::with_capacity(msgs.len());
            for m in msgs {
                match stage {
                    // A message that is only read, not shipped, goes straight through, so its
                    // bytes are acked at once; unless this stage holds an earlier line, which
                    // must not be acked past: then it is dropped (a later event covers it).
                    _ if m.skip => {
                        if stage.pending_start().is_none() {
                            next.push(m);
                        }
                    }
                    Stage::Multiline(ml) => ml.push(m, now, &mut next),
                    Stage::Ndjson(cfg) => next.push(decode_ndjson(cfg, m)),
                    Stage::Container(c) => c.push(m, &mut next),
                }
            }
            msgs = next;
            if msgs.is_empty() {
                return;
            }
        }
        out.extend(msgs);
    }
}

impl Stage {
    fn pending_start(&self) -> Option<u64> {
        match self {
            Stage::Multiline(m) => m.buf.as_ref().map(|b| b.start),
            Stage::Container(c) => c.pending_start(),
            Stage::Ndjson(_) => None,
        }
    }
}

/// Joins continuation lines (stack traces) into one message.
pub struct Multiline {
    cfg: MultilineConfig,
    max_bytes: usize,
    buf: Option<Message>,
    /// For while_pattern: whether `buf` is a group of matching lines.
    in_group: bool,
    last_push: Option<Instant>,
}

impl Multiline {
    pub fn new(cfg: MultilineConfig, max_bytes: usize) -> Self {
        Multiline {
            cfg,
            max_bytes,
            buf: None,
            in_group: false,
            last_push: None,
        }
    }

    fn matches(&self, text: &str) -> bool {
        let hit = self
            .cfg
            .pattern
            .as_ref()
            .is_some_and(|p| p.0.is_match(text));
        hit != self.cfg.negate
    }

    fn append(&mut self, m: Message) {
        match &mut self.buf {
            None => self.buf = Some(m),
            Some(b) => {
                b.end = m.end;
                b.flags |= m.flags;
                if b.lines >= self.cfg.max_lines {
                    // Lines past max_lines are dropped; their bytes still count as read.
                    b.flags |= flags::TRUNCATED;
                    return;
                }
                b.lines += 1;
                b.flags |= flags::MULTILINE;
                let sep = if self.cfg.skip_newline { "" } else { "\n" };
                let room = self.max_bytes.saturating_sub(b.text.len());
                if room < sep.len() + m.text.len() {
                    if room > sep.len() {
                        b.text.to_mut().push_str(sep);
                        let mut cut = room - sep.len();
                        while !m.text.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        b.text.to_mut().push_str(&m.text[..cut]);
                    }
                    b.flags |= flags::TRUNCATED;
                } else {
                    b.text.to_mut().push_str(sep);
                    b.text.to_mut().push_str(&m.text);
                }
            }
        }
    }

    fn flush(&mut self) -> Option<Message> {
        self.in_group = false;
        self.buf.take()
    }

    fn is_stale(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    fn deadline(&self) -> Option<Instant> {
        if self.buf.is_none() || self.cfg.timeout.0 == Duration::ZERO {
            return None;
        }
        self.last_push.map(|t| t + self.cfg.timeout.0)
    }

    pub fn push(&mut self, m: Message, now: Instant, out: &mut Vec<Message>) {
        self.last_push = Some(now);
        match self.cfg.kind {
            MultilineType::Count => {
                self.append(m);
                if self
                    .buf
                    .as_ref()
                    .is_some_and(|b| b.lines >= self.cfg.count_lines)
                {
                    out.extend(self.flush());
                }
            }
            MultilineType::WhilePattern => {
                if self.matches(&m.text) {
                    if !self.in_group {
                        out.extend(self.flush());
                        self.in_group = true;
                    }
                    self.append(m);
                } else {
                    out.extend(self.flush());
                    out.push(m);
                }
            }
            MultilineType::Pattern => {
                let flush_now = self
                    .cfg
                    .flush_pattern
                    .as_ref()
                    .is_some_and(|p| p.0.is_match(&m.text));
                let cont = self.matches(&m.text);
                match self.cfg.match_ {
                    MultilineMatch::After => {
                        if cont && self.buf.is_some() {
                            self.append(m);
                        } else {
                            out.extend(self.flush());
                            self.append(m);
                        }
                    }
                    MultilineMatch::Before => {
                        self.append(m);
                        if !cont {
                            out.extend(self.flush());
                        }
                    }
                }
                if flush_now {
                    out.extend(self.flush());
                }
            }
        }
    }
}

/// Decode a JSON line into fields as the ndjson parser does.
fn decode_ndjson(cfg: &NdjsonConfig, mut m: Message) -> Message {
    let parsed: Result<Map<String, Value>, String> = match serde_json::from_str::<Value>(&m.text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err("the line is JSON but not an object".into()),
        Err(e) => Err(e.to_string()),
    };
    let mut fields = m.fields.take().unwrap_or_default();
    match parsed {
        Ok(mut obj) => {
            if cfg.expand_keys {
                let mut too_deep = false;
                obj = expand_keys(obj, 0, &mut too_deep);
                if too_deep {
                    m.flags |= crate::event::flags::KEYS_TOO_DEEP;
                }
            }
            if let Some(id_key) = &cfg.document_id {
                if let Some(id) = obj.remove(id_key) {
                    m.meta
                        .get_or_insert_with(Box::default)
                        .insert("_id".into(), id);
                }
            }
            if let Some(k) = &cfg.message_key {
                if let Some(Value::String(s)) = obj.get(k) {
                    m.text = s.as_str().into();
                }
            }
            if cfg.target.is_empty() {
                for (k, v) in obj {
                    if cfg.overwrite_keys || !fields.contains_key(&k) {
                        fields.insert(k, v);
                    }
                }
            } else {
                put_path(&mut fields, &cfg.target, Value::Object(obj));
                fields.insert("message".into(), Value::String(m.text.to_string()));
            }
        }
        Err(e) => {
            fields.insert("message".into(), Value::String(m.text.to_string()));
            if cfg.add_error_key && !cfg.ignore_decoding_error {
                put_path(
                    &mut fields,
                    "error",
                    serde_json::json!({"message": format!("Error decoding JSON: {e}"), "type": "json"}),
                );
            }
        }
    }
    m.fields = Some(fields);
    m
}

/// `{"a.b": 1}` → `{"a": {"b": 1}}`, `depth` levels down already. Objects never get deeper
/// than `MAX_DEPTH`: the segments of a key past that stay one dotted key, and `too_deep` is
/// set (a key of 20,000 dots must not become 20,000 nested objects).
fn expand_keys(obj: Map<String, Value>, depth: usize, too_deep: &mut bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        // At most `room` levels: the last segment keeps the rest of the key, dots and all.
        let room = crate::event::MAX_DEPTH.saturating_sub(depth).max(1);
        let segments: Vec<&str> = k.splitn(room, '.').collect();
        if segments.len() == room && segments.last().is_some_and(|s| s.contains('.')) {
            *too_deep = true;
        }
        let used = segments.len();
        let v = match v {
            Value::Object(o) => Value::Object(expand_keys(o, depth + used, too_deep)),
            other => other,
        };
        crate::event::put_segments(&mut out, segments.into_iter(), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::filestream::ParserConfig;

    fn parsers(toml_text: &str) -> Parsers {
        #[derive(serde::Deserialize)]
        struct W {
            parsers: Vec<ParserConfig>,
        }
        let w: W = toml::from_str(toml_text).unwrap();
        Parsers::new(&w.parsers, 1 << 20)
    }

    fn run(p: &mut Parsers, lines: &[&str]) -> Vec<Message> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut off = 0u64;
        for l in lines {
            let end = off + l.len() as u64 + 1;
            p.push(Message::new(l.to_string(), off, end, 0), now, &mut out);
            off = end;
        }
        p.flush_all(now, &mut out);
        out
    }

    #[test]
    fn java_stack_trace_negate_after() {
        let mut p = parsers(
            "[[parsers]]\nmultiline = { type = \"pattern\", pattern = '^\\d{4}-', negate = true, match = \"after\" }\n",
        );
        let out = run(
            &mut p,
            &[
                "2026-11-25 ERROR boom",
                "\tat a.b(C.java:1)",
                "Caused by: x",
                "2026-11-25 INFO ok",
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].text,
            "2026-11-25 ERROR boom\n\tat a.b(C.java:1)\nCaused by: x"
        );
        assert_eq!(out[0].flags & flags::MULTILINE, flags::MULTILINE);
        assert_eq!((out[0].start, out[0].end), (0, 22 + 18 + 13));
        assert_eq!(out[1].text, "2026-11-25 INFO ok");
        assert_eq!(out[1].flags, 0);
    }

    #[test]
    fn continuation_before() {
        let mut p = parsers(
            "[[parsers]]\nmultiline = { pattern = '\\\\$', negate = false, match = \"before\" }\n",
        );
        let out = run(&mut p, &["a \\", "b \\", "c", "d"]);
        let texts: Vec<_> = out.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, vec!["a \\\nb \\\nc", "d"]);
    }

    #[test]
    fn count_and_max_lines() {
        let mut p = parsers("[[parsers]]\nmultiline = { type = \"count\", count_lines = 2 }\n");
        let out = run(&mut p, &["1", "2", "3"]);
        let texts: Vec<_> = out.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, vec!["1\n2", "3"]);

        let mut p = parsers(
            "[[parsers]]\nmultiline = { pattern = '^ ', match = \"after\", max_lines = 2 }\n",
        );
        let out = run(&mut p, &["a", " b", " c", " d", "e"]);
        assert_eq!(out[0].text, "a\n b");
        assert_ne!(out[0].flags & flags::TRUNCATED, 0);
        assert_eq!(
            out[0].end,
            2 + 3 + 3 + 3,
            "dropped lines still advance the offset"
        );
    }

    #[test]
    fn while_pattern_groups() {
        let mut p =
            parsers("[[parsers]]\nmultiline = { type = \"while_pattern\", pattern = '^-' }\n");
        let out = run(&mut p, &["x", "-1", "-2", "y", "-3"]);
        let texts: Vec<_> = out.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, vec!["x", "-1\n-2", "y", "-3"]);
    }

    #[test]
    fn timeout_flushes_stale_message() {
        let mut p = parsers(
            "[[parsers]]\nmultiline = { pattern = '^ ', match = \"after\", timeout = \"1s\" }\n",
        );
        let t0 = Instant::now();
        let mut out = Vec::new();
        p.push(Message::new("a", 0, 2, 0), t0, &mut out);
        p.flush_stale(t0, &mut out);
        assert!(out.is_empty());
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(1)));
        p.flush_stale(t0 + Duration::from_secs(2), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn ndjson_root_target_and_errors() {
        let mut p = parsers(
            "[[parsers]]\nndjson = { target = \"\", add_error_key = true, document_id = \"id\" }\n",
        );
        let out = run(&mut p, &[r#"{"a":1,"message":"hi","id":"x1"}"#, "not json"]);
        let f0 = out[0].fields.as_ref().unwrap();
        assert_eq!(f0["a"], 1);
        assert_eq!(f0["message"], "hi");
        assert!(!f0.contains_key("id"));
        assert_eq!(out[0].meta.as_ref().unwrap()["_id"], "x1");
        let f1 = out[1].fields.as_ref().unwrap();
        assert_eq!(f1["message"], "not json");
        assert_eq!(f1["error"]["type"], "json");
    }

    #[test]
    fn ndjson_target_and_expand_keys() {
        let mut p = parsers("[[parsers]]\nndjson = { target = \"json\", expand_keys = true }\n");
        let out = run(&mut p, &[r#"{"a.b":1}"#]);
        let f = out[0].fields.as_ref().unwrap();
        assert_eq!(f["json"]["a"]["b"], 1);
    }

    #[test]
    fn expand_keys_stops_at_the_depth_limit() {
        let mut p = parsers("[[parsers]]\nndjson = { target = \"\", expand_keys = true }\n");
        let key = vec!["k"; 20_000].join(".");
        let out = run(&mut p, &[&format!("{{\"{key}\": 1, \"x.y\": 2}}")]);
        assert_ne!(out[0].flags & crate::event::flags::KEYS_TOO_DEEP, 0);
        let f = out[0].fields.as_ref().unwrap();
        assert_eq!(f["x"]["y"], 2);
        let mut depth = 0;
        let mut cur = &f["k"];
        while let Some(o) = cur.as_object() {
            depth += 1;
            cur = o.values().next().unwrap();
        }
        assert_eq!(
            depth,
            crate::event::MAX_DEPTH - 1,
            "then one dotted key holds the rest"
        );
        let shallow = run(&mut p, &[r#"{"a.b.c": 1}"#]);
        assert_eq!(shallow[0].flags & crate::event::flags::KEYS_TOO_DEEP, 0);
    }
}
