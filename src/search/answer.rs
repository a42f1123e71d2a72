//! `--answer`: the top hits, numbered, go with the question to an inference endpoint; the
//! answer is streamed to the terminal as it arrives, then every citation `[n]` is checked
//! against the numbered lines and the cited lines are printed as references.
//!
//! Wire formats (Elasticsearch source):
//! - `POST _inference/chat_completion/{id}/_stream` (streaming only on 9.2) answers with
//!   server-sent events written by `ServerSentEventsRestActionListener`: each event is a UTF-8
//!   BOM, `event: message` (or `event: error`), `data: <json>` and a blank line; the last one
//!   is `data: [DONE]`. The JSON is an OpenAI-style `chat.completion.chunk`
//!   (`StreamingUnifiedChatCompletionResults.ChatCompletionChunk`: `id`, `choices[].delta
//!   .content`, `model`, `object`, `usage`); the 9.2 API spec's example wraps it in
//!   `{"chat_completion": …}`, which is accepted too. An error is
//!   `{"error": {…} | "…", "status": n}`, before the stream (with that HTTP status) or in it.
//! - `POST _inference/completion/{id}` answers `{"completion": [{"result": "…"}]}` at once.

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::{json, Value};

use super::capabilities::{Capabilities, InferenceEndpoint};
use super::client::{path_segment, Client};
use super::query::{HL_POST, HL_PRE};
use super::render::Hit;
use super::SearchError;

/// The Elastic managed LLM, preferred when present (EIS preconfigured endpoints,
/// `InternalPreconfiguredEndpoints`).
pub const MANAGED_LLMS: &[&str] = &[".rainbow-sprinkles-elastic", ".gp-llm-v2-chat_completion"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Llm {
    pub id: String,
    /// `chat_completion` or `completion`.
    pub task_type: String,
    pub service: String,
}

const HOW_TO_CREATE: &str = "create one with the inference API, for example \
     PUT _inference/chat_completion/my-llm {\"service\": \"openai\", \"service_settings\": \
     {\"api_key\": \"<key>\", \"model_id\": \"gpt-4o-mini\"}} (or any chat_completion or \
     completion service: elastic, azureopenai, anthropic, googlevertexai, bedrock, ...); on \
     Elastic Cloud the Elastic managed LLM (.rainbow-sprinkles-elastic) is there already. \
     Then run oxibeat search --answer --llm my-llm, or set search.answer.llm";

fn is_llm(e: &InferenceEndpoint) -> bool {
    e.task_type == "chat_completion" || e.task_type == "completion"
}

/// The endpoint to ask: `requested` (from `--llm` or `search.answer.llm`), else the Elastic
/// managed LLM, else the first chat_completion, else the first completion endpoint.
pub fn choose(caps: &Capabilities, requested: Option<&str>) -> Result<Llm, String> {
    let list = match &caps.inference {
        Ok(l) => l,
        Err(why) => {
            return match requested {
                // Cannot check it: try it, Elasticsearch will say if it is wrong.
                Some(id) => Ok(Llm {
                    id: id.to_string(),
                    task_type: "chat_completion".into(),
                    service: String::new(),
                }),
                None => Err(format!(
                    "the inference endpoints could not be listed ({why}); name one with --llm"
                )),
            };
        }
    };
    let to_llm = |e: &InferenceEndpoint| Llm {
        id: e.id.clone(),
        task_type: e.task_type.clone(),
        service: e.service.clone(),
    };
    if let Some(id) = requested {
        return match list.iter().find(|e| e.id == id) {
            Some(e) if is_llm(e) => Ok(to_llm(e)),
            Some(e) => Err(format!(
                "the inference endpoint {id} has task type {}; --answer needs a chat_completion or completion endpoint",
                e.task_type
            )),
            None => Err(format!(
                "there is no inference endpoint {id}; LLM endpoints here: {}",
                names(list)
            )),
        };
    }
    let pick = MANAGED_LLMS
        .iter()
        .find_map(|m| list.iter().find(|e| e.id == *m && is_llm(e)))
        .or_else(|| {
            list.iter()
                .find(|e| e.service == "elastic" && e.task_type == "chat_completion")
        })
        .or_else(|| list.iter().find(|e| e.task_type == "chat_completion"))
        .or_else(|| list.iter().find(|e| e.task_type == "completion"));
    match pick {
        Some(e) => Ok(to_llm(e)),
        None => Err(format!(
            "no chat_completion or completion inference endpoint exists (GET _inference/_all); {HOW_TO_CREATE}"
        )),
    }
}

fn names(list: &[InferenceEndpoint]) -> String {
    let l: Vec<&str> = list
        .iter()
        .filter(|e| is_llm(e))
        .map(|e| e.id.as_str())
        .collect();
    if l.is_empty() {
        format!("none; {HOW_TO_CREATE}")
    } else {
        l.join(", ")
    }
}

pub const SYSTEM_PROMPT: &str = "You answer questions about a system from its log lines. \
Use only the numbered log lines given; do not use outside knowledge about this system. \
Cite every statement with the number of the line it rests on, in square brackets, like [2] or [2][5]. \
Cite only numbers of lines that were given. \
If the lines do not answer the question, say so plainly and say what is missing. \
Be brief.";

fn strip_markers(s: &str) -> String {
    s.replace(
        [
            HL_PRE.chars().next().unwrap_or('\u{2}'),
            HL_POST.chars().next().unwrap_or('\u{3}'),
        ],
        "",
    )
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push_str(" [cut]");
    t
}

/// The user message: the question and the lines, numbered from 1. A line is its best
/// semantic chunks when the search returned them, else its message.
pub fn user_prompt(question: &str, hits: &[Hit], max_chars: usize) -> String {
    let mut s = format!("Question: {question}\n\nLog lines:\n");
    for (i, h) in hits.iter().enumerate() {
        let text = if h.chunks.is_empty() {
            h.message()
        } else {
            h.chunks.join("\n…\n")
        };
        s.push_str(&format!(
            "[{}] @timestamp={} host.name={} dataset={} log.level={}\n{}\n\n",
            i + 1,
            h.timestamp(),
            h.host(),
            h.dataset(),
            h.level(),
            cut(&strip_markers(&text), max_chars)
        ));
    }
    s
}

/// The request body for `llm`.
pub fn request(llm: &Llm, question: &str, hits: &[Hit], max_chars: usize) -> (String, Value) {
    let user = user_prompt(question, hits, max_chars);
    let id = path_segment(&llm.id);
    if llm.task_type == "completion" {
        (
            format!("/_inference/completion/{id}"),
            json!({"input": format!("{SYSTEM_PROMPT}\n\n{user}")}),
        )
    } else {
        (
            format!("/_inference/chat_completion/{id}/_stream"),
            json!({"messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user},
            ]}),
        )
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub data: String,
}

/// Incremental parser of `text/event-stream` (WHATWG HTML, "Server-sent events"), lenient
/// about the BOM Elasticsearch writes before every event.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Feed bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_start_matches('\u{FEFF}');
            if text.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    out.push(Event {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            if text.starts_with(':') {
                continue;
            }
            let (field, value) = match text.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (text, ""),
            };
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        out
    }

    /// An event left without its blank line at the end of the stream.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buf);
        let mut out = if rest.is_empty() {
            Vec::new()
        } else {
            let mut r = rest;
            r.extend_from_slice(b"\n\n");
            self.push(&r)
        };
        if out.is_empty() && !self.data.is_empty() {
            return Some(Event {
                event: self.event.take().unwrap_or_else(|| "message".into()),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        out.pop()
    }
}

/// What an event means for the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    Text(String),
    Done,
    Error(String),
    Nothing,
}

fn error_text(v: &Value) -> String {
    let err = &v["error"];
    let s = if let Some(s) = err.as_str() {
        s.to_string()
    } else {
        let t = err["type"].as_str().unwrap_or("error");
        let r = err["reason"]
            .as_str()
            .or_else(|| err["root_cause"][0]["reason"].as_str())
            .unwrap_or("");
        format!("{t}: {r}")
    };
    match v["status"].as_u64() {
        Some(st) => format!("HTTP {st} {s}"),
        None => s,
    }
}

pub fn interpret(e: &Event) -> Chunk {
    if e.data.trim() == "[DONE]" {
        return Chunk::Done;
    }
    let v: Value = match serde_json::from_str(&e.data) {
        Ok(v) => v,
        Err(_) if e.event == "error" => return Chunk::Error(e.data.clone()),
        Err(_) => return Chunk::Nothing,
    };
    if e.event == "error" || v.get("error").is_some() {
        return Chunk::Error(error_text(&v));
    }
    let c = if v.get("chat_completion").is_some() {
        &v["chat_completion"]
    } else {
        &v
    };
    let text: String = c["choices"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|ch| ch["delta"]["content"].as_str())
                .collect()
        })
        .unwrap_or_default();
    if !text.is_empty() {
        return Chunk::Text(text);
    }
    // The streamed `completion` task: {"completion": [{"delta": "…"}]}.
    let d: String = v["completion"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["delta"].as_str()).collect())
        .unwrap_or_default();
    if d.is_empty() {
        Chunk::Nothing
    } else {
        Chunk::Text(d)
    }
}

/// Ask `llm` and write the answer to `out` as it arrives. Returns the whole answer.
pub async fn ask(
    client: &Client,
    llm: &Llm,
    path: &str,
    body: &Value,
    timeout: std::time::Duration,
    out: &mut dyn Write,
) -> Result<String, SearchError> {
    let what = format!("the LLM endpoint {}", llm.id);
    if llm.task_type == "completion" {
        let r = client.post_with(path, body, timeout).await?;
        if !r.ok() {
            return Err(SearchError::Llm(format!(
                "{what} failed: {}",
                super::llm_reason(r.status, &r.body)
            )));
        }
        let text: String = r.body["completion"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["result"].as_str()).collect())
            .unwrap_or_default();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(text);
    }
    let mut resp = client.post_stream(path, body, timeout).await?;
    let status = resp.status().as_u16();
    let mut parser = SseParser::default();
    let mut answer = String::new();
    if !(200..300).contains(&status) {
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let reason = if body.is_null() {
            // An SSE error event with the HTTP status of the failure.
            let mut p = SseParser::default();
            let mut evs = p.push(text.as_bytes());
            evs.extend(p.finish());
            evs.iter()
                .find_map(|e| match interpret(e) {
                    Chunk::Error(s) => Some(s),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    format!(
                        "HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    )
                })
        } else {
            super::llm_reason(status, &body)
        };
        return Err(SearchError::Llm(format!("{what} failed: {reason}")));
    }
    let mut done = false;
    loop {
        let next = resp.chunk().await.map_err(|e| {
            if e.is_timeout() {
                SearchError::Llm(format!(
                    "{what} did not finish within {}s (search.answer.timeout)",
                    timeout.as_secs()
                ))
            } else {
                SearchError::Llm(format!("{what}: the stream broke: {e}"))
            }
        })?;
        let end = next.is_none();
        let events = match next {
            Some(bytes) => parser.push(&bytes),
            None => parser.finish().into_iter().collect(),
        };
        for e in &events {
            match interpret(e) {
                Chunk::Text(t) => {
                    out.write_all(t.as_bytes())?;
                    out.flush()?;
                    answer.push_str(&t);
                }
                Chunk::Done => done = true,
                Chunk::Error(s) => {
                    out.write_all(b"\n")?;
                    return Err(SearchError::Llm(format!("{what} failed mid-answer: {s}")));
                }
                Chunk::Nothing => {}
            }
        }
        if done || end {
            break;
        }
    }
    if !done {
        tracing::debug!("chat completion stream ended without [DONE]");
    }
    Ok(answer)
}

/// Citations found in an answer: `[3]`, `[2, 5]`, `[2][5]`, `[4-6]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Citations {
    /// Numbers of lines that were given, in order of first citation.
    pub valid: Vec<usize>,
    /// Numbers that match no line.
    pub invalid: Vec<usize>,
}

pub fn citations(answer: &str, lines: usize) -> Citations {
    let re = regex::Regex::new(r"\[(\s*\d+\s*(?:(?:,|-|–)\s*\d+\s*)*)\]").expect("static regex");
    let mut seen = BTreeSet::new();
    let mut c = Citations::default();
    for cap in re.captures_iter(answer) {
        let inner = &cap[1];
        for part in inner.split(',') {
            let part = part.trim();
            let nums: Vec<usize> = if let Some((a, b)) = part.split_once(['-', '–']) {
                match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    (Ok(a), Ok(b)) if a <= b && b - a < 100 => (a..=b).collect(),
                    (Ok(a), Ok(b)) => vec![a, b],
                    _ => continue,
                }
            } else {
                match part.parse::<usize>() {
                    Ok(n) => vec![n],
                    Err(_) => continue,
                }
            };
            for n in nums {
                if seen.insert(n) {
                    if (1..=lines).contains(&n) {
                        c.valid.push(n);
                    } else {
                        c.invalid.push(n);
                    }
                }
            }
        }
    }
    c
}

/// The lines after the answer: the cited lines as references, then the invalid citations.
pub fn references(c: &Citations, hits: &[Hit]) -> String {
    let mut s = String::new();
    if c.valid.is_empty() {
        s.push_str("The answer cites none of the lines.\n");
    } else {
        s.push_str("References:\n");
        for n in &c.valid {
            if let Some(h) = hits.get(n - 1) {
                s.push_str(&format!(
                    "  [{n}] {} {} {}/{}\n",
                    h.timestamp(),
                    h.host(),
                    h.index,
                    h.id
                ));
            }
        }
    }
    if !c.invalid.is_empty() {
        let list: Vec<String> = c.invalid.iter().map(|n| format!("[{n}]")).collect();
        s.push_str(&format!(
            "Invalid citations: {} (only lines [1] to [{}] were given; the model cited lines that do not exist)\n",
            list.join(" "),
            hits.len()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_with_bom_crlf_split_and_done() {
        let mut p = SseParser::default();
        let stream = "\u{FEFF}event: message\ndata: {\"id\":\"x\",\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"index\":0}],\"model\":\"m\",\"object\":\"chat.completion.chunk\"}\n\n\u{FEFF}event: message\r\ndata: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"Disk \"},\"index\":0}],\"model\":\"m\",\"object\":\"chat.completion.chunk\"}\r\n\r\n\u{FEFF}event: message\ndata: {\"chat_completion\":{\"choices\":[{\"delta\":{\"content\":\"full [2]\"}}]}}\n\n\u{FEFF}event: message\ndata: [DONE]\n\n";
        let bytes = stream.as_bytes();
        let mut events = Vec::new();
        // One byte at a time: events split across network chunks.
        for b in bytes {
            events.extend(p.push(std::slice::from_ref(b)));
        }
        let chunks: Vec<Chunk> = events.iter().map(interpret).collect();
        assert_eq!(
            chunks,
            [
                Chunk::Nothing,
                Chunk::Text("Disk ".into()),
                Chunk::Text("full [2]".into()),
                Chunk::Done
            ]
        );
    }

    #[test]
    fn sse_error_events() {
        let mut p = SseParser::default();
        let ev = p.push(b"\xEF\xBB\xBFevent: error\ndata: {\"error\":{\"root_cause\":[],\"type\":\"status_exception\",\"reason\":\"Received a rate limit status code\"},\"status\":429}\n\n");
        assert_eq!(
            interpret(&ev[0]),
            Chunk::Error("HTTP 429 status_exception: Received a rate limit status code".into())
        );
        let mut p = SseParser::default();
        assert!(p.push(b"event: error\ndata: {\"error\":\"x\"}").is_empty());
        let last = p.finish().unwrap();
        assert_eq!(interpret(&last), Chunk::Error("x".into()));
    }

    #[test]
    fn citations_are_checked() {
        let c = citations(
            "Disk full on web-2 [2], then OOM [5][12]; see [2, 3] and [6-7]. Not [x].",
            8,
        );
        assert_eq!(c.valid, [2, 5, 3, 6, 7]);
        assert_eq!(c.invalid, [12]);
        assert_eq!(citations("no citations", 8), Citations::default());
        let c = citations("[0] [9]", 8);
        assert_eq!(c.invalid, [0, 9]);
    }
}
