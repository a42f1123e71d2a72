//! The `container` parser: lines written by a container runtime, decoded as Filebeat's
//! `container` parser (libbeat `reader/readjson/docker_json.go`) does.
//!
//! - Docker's `json-file` driver writes `{"log":"text\n","stream":"stdout","time":"<RFC 3339>"}`
//!   (plus `attrs` with `--log-opt labels/env`). A `log` that does not end with a newline is a
//!   part of a longer line: Docker splits lines at 16 KiB.
//! - CRI runtimes (containerd, CRI-O; the kubelet's format) write
//!   `<RFC 3339 nano time> <stream> <tags> <text>`, tags being `F` (full) or `P` (partial),
//!   `:`-separated.
//!
//! Each decoded line gives `message`, `stream` and `@timestamp` (the runtime's time); parts of
//! a split line are joined before the next parsers (multiline, ndjson) see them. The `stream`
//! option keeps only stdout or stderr. Unlike Filebeat, which logs and drops a line it cannot
//! decode, an invalid line is shipped as it is with `error.message` and `error.type:
//! container`, so nothing is lost.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::parsers::Message;
use crate::config::filestream::{ContainerConfig, ContainerFormat, ContainerStream};
use crate::event::{flags, parse_timestamp};

/// One runtime line, decoded.
#[derive(Debug, PartialEq)]
struct Decoded {
    text: String,
    stream: String,
    ts: i64,
    partial: bool,
    attrs: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct DockerLine {
    #[serde(default)]
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    attrs: Option<Map<String, Value>>,
}

fn strip_newline(mut s: String) -> (String, bool) {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
        (s, true)
    } else {
        (s, false)
    }
}

fn decode_docker(line: &str) -> Result<Decoded, String> {
    let d: DockerLine =
        serde_json::from_str(line).map_err(|e| format!("decoding docker JSON: {e}"))?;
    let ts = parse_timestamp(&d.time)
        .ok_or_else(|| format!("parsing docker timestamp {:?}: not RFC 3339", d.time))?;
    let (text, complete) = strip_newline(d.log);
    Ok(Decoded {
        text,
        stream: d.stream,
        ts,
        partial: !complete,
        attrs: d.attrs.filter(|a| !a.is_empty()),
    })
}

fn decode_cri(line: &str) -> Result<Decoded, String> {
    let mut parts = line.splitn(4, ' ');
    let (Some(time), Some(stream), Some(tags), Some(text)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("invalid CRI log format: want `<time> <stream> <P|F> <message>`".into());
    };
    let ts = parse_timestamp(time)
        .ok_or_else(|| format!("parsing CRI timestamp {time:?}: not RFC 3339"))?;
    let partial = tags.split(':').any(|t| t == "P");
    Ok(Decoded {
        text: text.to_string(),
        stream: stream.to_string(),
        ts,
        partial,
        attrs: None,
    })
}

/// The parser state of one file: a split line being joined.
pub struct Container {
    cfg: ContainerConfig,
    max_bytes: usize,
    pending: Option<(Message, String)>,
}

impl Container {
    pub fn new(cfg: ContainerConfig, max_bytes: usize) -> Self {
        Container {
            cfg,
            max_bytes,
            pending: None,
        }
    }

    fn decode(&self, line: &str) -> Result<Decoded, String> {
        match self.cfg.format {
            ContainerFormat::Docker => decode_docker(line),
            ContainerFormat::Cri => decode_cri(line),
            ContainerFormat::Auto if line.starts_with('{') => decode_docker(line),
            ContainerFormat::Auto => decode_cri(line),
        }
    }

    /// File offset of the first part of a line still being joined.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|(m, _)| m.start)
    }

    /// The file is closed for good: a split line whose last part never came is shipped.
    pub fn flush(&mut self) -> Option<Message> {
        self.pending.take().map(|(m, _)| self.finish(m))
    }

    fn finish(&self, mut m: Message) -> Message {
        let keep = match self.cfg.stream {
            ContainerStream::All => true,
            ContainerStream::Stdout => m.stream.as_deref() == Some("stdout"),
            ContainerStream::Stderr => m.stream.as_deref() == Some("stderr"),
        };
        // A line of the other stream is not shipped, but its bytes count as read.
        m.skip |= !keep;
        m
    }

    /// Decode one runtime line; complete messages are appended to `out`.
    pub fn push(&mut self, m: Message, out: &mut Vec<Message>) {
        let d = match self.decode(&m.text) {
            Ok(d) => d,
            Err(e) => {
                out.extend(self.flush());
                out.push(invalid(m, e));
                return;
            }
        };
        match self.pending.take() {
            Some((mut joined, stream)) if stream == d.stream => {
                joined.end = m.end;
                joined.flags |= m.flags;
                let room = self.max_bytes.saturating_sub(joined.text.len());
                if d.text.len() > room {
                    let mut cut = room;
                    while !d.text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    joined.text.to_mut().push_str(&d.text[..cut]);
                    joined.flags |= flags::TRUNCATED;
                } else {
                    joined.text.to_mut().push_str(&d.text);
                }
                if d.partial {
                    self.pending = Some((joined, stream));
                } else {
                    out.push(self.finish(joined));
                }
            }
            other => {
                // A part of another stream cannot continue this line: ship what came so far.
                if let Some((p, _)) = other {
                    out.push(self.finish(p));
                }
                let mut msg = m;
                msg.text = d.text.into();
                msg.ts = Some(d.ts);
                msg.stream = Some(stream_name(&d.stream));
                if let Some(attrs) = d.attrs {
                    let mut docker = Map::new();
                    docker.insert("attrs".into(), Value::Object(attrs));
                    msg.fields
                        .get_or_insert_with(Box::default)
                        .insert("docker".into(), Value::Object(docker));
                }
                if d.partial {
                    self.pending = Some((msg, d.stream));
                } else {
                    out.push(self.finish(msg));
                }
            }
        }
    }
}

fn stream_name(s: &str) -> Cow<'static, str> {
    match s {
        "stdout" => Cow::Borrowed("stdout"),
        "stderr" => Cow::Borrowed("stderr"),
        other => Cow::Owned(other.to_string()),
    }
}

/// A line that is not in the runtime's format: shipped whole, with the reason.
fn invalid(mut m: Message, reason: String) -> Message {
    let fields = m.fields.get_or_insert_with(Box::default);
    fields.insert("message".into(), Value::String(m.text.to_string()));
    fields.insert(
        "error".into(),
        serde_json::json!({"message": format!("parsing container log line: {reason}"), "type": "container"}),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(format: ContainerFormat, stream: ContainerStream) -> Container {
        Container::new(ContainerConfig { stream, format }, 1 << 20)
    }

    fn feed(p: &mut Container, lines: &[&str]) -> Vec<Message> {
        let mut out = Vec::new();
        let mut off = 0u64;
        for l in lines {
            let end = off + l.len() as u64 + 1;
            p.push(Message::new(l.to_string(), off, end, 0), &mut out);
            off = end;
        }
        out
    }

    #[test]
    fn docker_json_file_lines() {
        let mut p = parser(ContainerFormat::Auto, ContainerStream::All);
        let out = feed(
            &mut p,
            &[
                r#"{"log":"GET /health 200\n","stream":"stdout","time":"2026-11-25T10:00:00.123456789Z"}"#,
                r#"{"log":"warn: slow\r\n","stream":"stderr","time":"2026-11-25T10:00:01Z","attrs":{"tag":"web"}}"#,
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "GET /health 200");
        assert_eq!(out[0].stream.as_deref(), Some("stdout"));
        assert_eq!(out[0].ts, Some(1_795_600_800_123_456_789));
        assert!(
            out[0].fields.is_none(),
            "no attrs: stays on the line fast path"
        );
        assert_eq!(out[1].text, "warn: slow");
        assert_eq!(out[1].stream.as_deref(), Some("stderr"));
        assert_eq!(
            out[1].fields.as_ref().unwrap()["docker"]["attrs"]["tag"],
            "web"
        );
    }

    #[test]
    fn docker_16k_parts_are_joined() {
        let mut p = parser(ContainerFormat::Docker, ContainerStream::All);
        let a = "a".repeat(16 * 1024);
        let l1 = format!(r#"{{"log":"{a}","stream":"stdout","time":"2026-11-25T10:00:00Z"}}"#);
        let l2 = r#"{"log":"end\n","stream":"stdout","time":"2026-11-25T10:00:00.1Z"}"#;
        let out = feed(&mut p, &[&l1, l2]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, format!("{a}end"));
        assert_eq!(out[0].start, 0);
        assert_eq!(out[0].end, (l1.len() + 1 + l2.len() + 1) as u64);
        assert_eq!(
            out[0].ts,
            parse_timestamp("2026-11-25T10:00:00Z"),
            "time of the first part"
        );
    }

    #[test]
    fn cri_full_and_partial_lines() {
        let mut p = parser(ContainerFormat::Auto, ContainerStream::All);
        let out = feed(
            &mut p,
            &[
                "2026-11-25T10:00:00.000000001Z stdout F hello world",
                "2026-11-25T10:00:00.1Z stderr P first half, ",
                "2026-11-25T10:00:00.2Z stderr F second half",
                "2026-11-25T10:00:00.3Z stdout F ",
            ],
        );
        let texts: Vec<_> = out.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["hello world", "first half, second half", ""]);
        assert_eq!(out[1].stream.as_deref(), Some("stderr"));
        assert_eq!(out[0].ts, Some(1_795_600_800_000_000_001));
    }

    #[test]
    fn stream_filter_skips_but_keeps_the_bytes() {
        let mut p = parser(ContainerFormat::Cri, ContainerStream::Stderr);
        let out = feed(
            &mut p,
            &[
                "2026-11-25T10:00:00Z stdout F out",
                "2026-11-25T10:00:00Z stderr F err",
            ],
        );
        assert_eq!(out.len(), 2);
        assert!(out[0].skip && !out[1].skip);
        assert_eq!(out[1].text, "err");
    }

    #[test]
    fn invalid_lines_are_flagged_not_dropped() {
        let mut p = parser(ContainerFormat::Auto, ContainerStream::All);
        let out = feed(
            &mut p,
            &[
                "2026-11-25T10:00:00Z stdout P part",
                "not a runtime line",
                r#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#,
                "{broken json",
            ],
        );
        assert_eq!(out.len(), 4, "the pending part is shipped too");
        assert_eq!(out[0].text, "part");
        for (m, raw) in out[1..].iter().zip([
            "not a runtime line",
            r#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#,
            "{broken json",
        ]) {
            let f = m.fields.as_ref().unwrap();
            assert_eq!(f["message"], raw);
            assert_eq!(f["error"]["type"], "container");
            assert!(f["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("parsing container log line"));
        }
    }

    #[test]
    fn partial_of_another_stream_is_shipped_alone() {
        let mut p = parser(ContainerFormat::Cri, ContainerStream::All);
        let out = feed(
            &mut p,
            &[
                "2026-11-25T10:00:00Z stdout P out-part",
                "2026-11-25T10:00:00Z stderr F err",
            ],
        );
        let texts: Vec<_> = out.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["out-part", "err"]);
        assert_eq!(p.pending_start(), None);
    }

    #[test]
    fn joined_line_is_bounded() {
        let mut p = Container::new(ContainerConfig::default(), 10);
        let out = feed(
            &mut p,
            &[
                "2026-11-25T10:00:00Z stdout P 123456",
                "2026-11-25T10:00:00Z stdout P 789012",
                "2026-11-25T10:00:00Z stdout F 345",
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "1234567890");
        assert_ne!(out[0].flags & flags::TRUNCATED, 0);
    }
}
