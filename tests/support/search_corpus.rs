//! The labelled log-search corpus: `tests/fixtures/search/logs/<host>/{nginx,app,json}-0.log`
//! (written by loggen with injected incidents, see `tests/fixtures/search/README.md`) turned
//! into the documents the stack indexes, as `logstash/pipeline/logs.conf` and the
//! `oxibeat-logs` ingest pipeline shape them: app lines dissected (`@timestamp`, `log.level`,
//! `log.logger`, the rest with the stack trace as `message`), JSON lines decoded with their
//! dotted keys expanded, nginx lines with `http.response.status_code` and the level the
//! ingest pipeline derives from it (5xx error, 4xx warn); `data_stream.dataset`
//! `oxibeat.<format>` and `host.name` from the directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/search")
}

/// One document and the index (data stream name) it belongs to.
#[derive(Debug, Clone)]
pub struct Doc {
    pub index: String,
    pub id: String,
    pub source: Value,
}

fn is_event_start(l: &str) -> bool {
    let b = l.as_bytes();
    b.len() > 11 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

fn set(o: &mut Map<String, Value>, dotted: &str, v: Value) {
    let mut parts = dotted.split('.').peekable();
    let mut cur = o;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), v);
            return;
        }
        cur = cur
            .entry(p.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object path");
    }
}

fn common(host: &str, format: &str) -> Map<String, Value> {
    let mut o = Map::new();
    set(&mut o, "host.name", json!(host));
    set(&mut o, "data_stream.type", json!("logs"));
    set(
        &mut o,
        "data_stream.dataset",
        json!(format!("oxibeat.{format}")),
    );
    set(&mut o, "data_stream.namespace", json!("default"));
    set(&mut o, "event.dataset", json!(format!("oxibeat.{format}")));
    o
}

fn app(host: &str, text: &str, out: &mut Vec<Value>) {
    let mut events: Vec<String> = Vec::new();
    for l in text.lines() {
        if is_event_start(l) || events.is_empty() {
            events.push(l.to_string());
        } else if let Some(last) = events.last_mut() {
            last.push('\n');
            last.push_str(l);
        }
    }
    let exc =
        regex::Regex::new(r"(?:[a-z_$][a-zA-Z0-9_$]*\.)+[A-Z][a-zA-Z0-9_$]*(?:Exception|Error)")
            .unwrap();
    for e in events {
        // %{ts} %{level->} %{}[%{logger}] %{text}
        let (ts, rest) = e.split_once(' ').expect("timestamp");
        let (level, rest) = rest.trim_start().split_once(' ').expect("level");
        let rest = rest.trim_start();
        let (logger, msg) = rest
            .strip_prefix('[')
            .and_then(|r| r.split_once("] "))
            .expect("logger");
        let mut o = common(host, "app");
        set(&mut o, "@timestamp", json!(ts));
        set(&mut o, "log.level", json!(level.to_lowercase()));
        set(&mut o, "log.logger", json!(logger));
        set(&mut o, "message", json!(msg));
        if let Some(m) = exc.find(msg) {
            set(&mut o, "error.type", json!(m.as_str()));
        }
        out.push(Value::Object(o));
    }
}

fn json_lines(host: &str, text: &str, out: &mut Vec<Value>) {
    for l in text.lines() {
        let v: Map<String, Value> = serde_json::from_str(l).expect("json line");
        let mut o = common(host, "json");
        for (k, x) in v {
            match k.as_str() {
                "event.dataset" | "pad" => {}
                "seq" => set(&mut o, "oxibeat.seq", x),
                _ => set(&mut o, &k, x),
            }
        }
        out.push(Value::Object(o));
    }
}

fn nginx(host: &str, text: &str, out: &mut Vec<Value>) {
    let re = regex::Regex::new(
        r#"\[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) [+-]\d{4}\] "[^"]*" (\d{3}) "#,
    )
    .unwrap();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    for l in text.lines() {
        let c = re.captures(l).expect("nginx line");
        let mon = months.iter().position(|m| *m == &c[2]).expect("month") + 1;
        let ts = format!(
            "{}-{mon:02}-{}T{}:{}:{}Z",
            &c[3], &c[1], &c[4], &c[5], &c[6]
        );
        let status: u16 = c[7].parse().unwrap();
        let mut o = common(host, "nginx");
        set(&mut o, "@timestamp", json!(ts));
        set(&mut o, "message", json!(l));
        set(&mut o, "http.response.status_code", json!(status));
        let level = match status {
            500.. => "error",
            400.. => "warn",
            _ => "info",
        };
        set(&mut o, "log.level", json!(level));
        out.push(Value::Object(o));
    }
}

/// Every document of the corpus, with stable ids (`<host>-<format>-<n>`).
pub fn docs() -> Vec<Doc> {
    let mut out = Vec::new();
    let mut hosts: Vec<PathBuf> = std::fs::read_dir(dir().join("logs"))
        .expect("tests/fixtures/search/logs")
        .flatten()
        .map(|e| e.path())
        .collect();
    hosts.sort();
    for h in hosts {
        let host = h.file_name().unwrap().to_string_lossy().to_string();
        for format in ["nginx", "app", "json"] {
            let text =
                std::fs::read_to_string(h.join(format!("{format}-0.log"))).expect("log file");
            let mut v = Vec::new();
            match format {
                "app" => app(&host, &text, &mut v),
                "json" => json_lines(&host, &text, &mut v),
                _ => nginx(&host, &text, &mut v),
            }
            for (i, source) in v.into_iter().enumerate() {
                out.push(Doc {
                    index: format!("logs-oxibeat.{format}-default"),
                    id: format!("{host}-{format}-{i}"),
                    source,
                });
            }
        }
    }
    out
}

/// One labelled query.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Labelled {
    pub id: String,
    pub query: String,
    /// Which incident's lines are the right answers.
    pub incident: String,
    /// BM25 alone must find it (keyword-like queries); the others are natural questions that
    /// are reported for lexical search and checked in hybrid mode on a real stack.
    pub lexical: bool,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Incident {
    /// A line belongs to the incident when its message matches this regular expression.
    pub message: String,
    pub host: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Labels {
    pub incidents: std::collections::BTreeMap<String, Incident>,
    pub queries: Vec<Labelled>,
    /// Queries about nothing in the corpus: the relevance floor must leave no hit.
    pub unrelated: Vec<String>,
}

pub fn labels() -> Labels {
    let text = std::fs::read_to_string(dir().join("queries.json")).expect("queries.json");
    serde_json::from_str(&text).expect("queries.json is valid")
}

impl Labels {
    /// Whether a hit (its `message` and `host.name`) belongs to `incident`.
    pub fn relevant(&self, incident: &str, message: &str, host: &str) -> bool {
        let i = &self.incidents[incident];
        host == i.host && regex::Regex::new(&i.message).unwrap().is_match(message)
    }
}

/// An index template for the corpus indices on osmem-server (plain indices: it has no data
/// streams), with the stack's own field mappings (`oxibeat-logs-mappings`) and the ones
/// `logs@mappings`/`ecs@mappings` give (`@timestamp` date, `message` match_only_text,
/// `data_stream.*` keywords).
pub fn index_template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("elasticsearch/component_templates/oxibeat-logs-mappings.json");
    let ct: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut props = ct["template"]["mappings"]["properties"]
        .as_object()
        .unwrap()
        .clone();
    props.insert("@timestamp".into(), json!({"type": "date"}));
    // As ecs@mappings maps it. Elasticsearch's match_only_text has no norms (no length
    // normalisation); osmem-server's keeps them (and ignores `norms: false`), so long stack
    // traces score lower here than they would on Elasticsearch.
    props.insert("message".into(), json!({"type": "match_only_text"}));
    props.insert(
        "data_stream".into(),
        json!({"properties": {"type": {"type": "keyword"}, "dataset": {"type": "keyword"}, "namespace": {"type": "keyword"}}}),
    );
    json!({"index_patterns": ["logs-oxibeat.*-*"], "priority": 200,
           "template": {"mappings": {"properties": props}}})
}

/// The `_bulk` body for `docs`.
pub fn bulk_body(docs: &[Doc]) -> String {
    let mut s = String::new();
    for d in docs {
        s.push_str(&json!({"create": {"_index": d.index, "_id": d.id}}).to_string());
        s.push('\n');
        s.push_str(&d.source.to_string());
        s.push('\n');
    }
    s
}
