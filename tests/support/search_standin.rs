//! A stand-in for what `oxibeat search` asks of Elasticsearch 9.2, where no real Elasticsearch
//! (nor ELSER, the reranker or an LLM) can run: `GET /`, `GET _license`,
//! `GET _inference/_all`, `GET <index>/_field_caps`, `POST <index>/_search` with the `rrf`
//! and `text_similarity_reranker` retrievers, and the inference APIs `chat_completion/_stream`
//! (server-sent events) and `completion`. Shapes come from the 9.2 API spec
//! (`../shared/elastic-spec`); each validation rule and error cites the Elasticsearch source
//! it copies. Scores: BM25 as Lucene's `BM25Similarity` (k1 1.2, b 0.75) on `message`; the
//! "semantic" score is NOT ELSER, only a stand-in (shared terms after a small expansion) on
//! the warn/error/critical lines of indices mapped with the `semantic_text` field.
//! Included with `#[path = "support/search_standin.rs"] mod search_standin;`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Map, Value};

#[path = "wildcard.rs"]
mod wildcard;
use wildcard::wildcard_match;

pub const SEMANTIC_FIELD: &str = "oxibeat.semantic_message";

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A backing index of a data stream.
#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    pub stream: String,
    /// `oxibeat.semantic_message` is mapped as `semantic_text` here.
    pub semantic: bool,
}

#[derive(Debug, Clone)]
pub struct Doc {
    pub index: String,
    pub id: String,
    pub source: Value,
}

/// How the LLM answers.
#[derive(Debug, Clone)]
pub enum Llm {
    /// These deltas, one event each, `delay` apart, then `[DONE]`.
    Stream {
        deltas: Vec<String>,
        delay: Duration,
    },
    /// Some deltas, then an `event: error` in the stream.
    FailMidStream {
        deltas: Vec<String>,
        status: u16,
        reason: String,
    },
}

#[derive(Debug)]
pub struct State {
    pub requests: Vec<Request>,
    /// basic, platinum, enterprise, trial.
    pub licence: String,
    /// `GET _license` answers this status (403: the user lacks `monitor`).
    pub licence_status: u16,
    /// (inference_id, task_type, service).
    pub endpoints: Vec<(String, String, String)>,
    pub indices: Vec<Index>,
    pub docs: Vec<Doc>,
    /// When set, every request must carry exactly this Authorization header.
    pub expected_auth: Option<String>,
    /// `_search` answers this instead (e.g. 429).
    pub search_override: Option<(u16, Value)>,
    /// `_search` waits this long before answering.
    pub search_delay: Duration,
    pub llm: Llm,
    pub completion: String,
}

impl Default for State {
    fn default() -> Self {
        State {
            requests: Vec::new(),
            licence: "trial".into(),
            licence_status: 200,
            endpoints: vec![
                // The preconfigured endpoints of 9.x (ElasticsearchInternalService defaults,
                // InternalPreconfiguredEndpoints for EIS).
                (
                    ".elser-2-elasticsearch".into(),
                    "sparse_embedding".into(),
                    "elasticsearch".into(),
                ),
                (
                    ".multilingual-e5-small-elasticsearch".into(),
                    "text_embedding".into(),
                    "elasticsearch".into(),
                ),
                (
                    ".rerank-v1-elasticsearch".into(),
                    "rerank".into(),
                    "elasticsearch".into(),
                ),
                (
                    ".rainbow-sprinkles-elastic".into(),
                    "chat_completion".into(),
                    "elastic".into(),
                ),
            ],
            indices: Vec::new(),
            docs: Vec::new(),
            expected_auth: None,
            search_override: None,
            search_delay: Duration::ZERO,
            llm: Llm::Stream {
                deltas: vec!["Done.".into()],
                delay: Duration::ZERO,
            },
            completion: String::new(),
        }
    }
}

pub struct Standin {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

impl Standin {
    pub fn start(state: State) -> Standin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let st = st.clone();
                    thread::spawn(move || serve(c, st));
                }
            }
        });
        Standin { addr, state, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The bodies of the `_search` requests received.
    pub fn searches(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.path().ends_with("/_search"))
            .map(Request::json)
            .collect()
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

fn respond(s: &mut TcpStream, status: u16, body: &Value, extra: &[(&str, &str)]) {
    let text = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Elastic-Product: Elasticsearch\r\nConnection: close\r\n",
        text.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(text.as_bytes());
}

fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut s = stream;
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    let auth_ok = {
        let mut st = state.lock().unwrap();
        st.requests.push(req.clone());
        match &st.expected_auth {
            Some(a) => req.headers.get("authorization") == Some(a),
            None => true,
        }
    };
    if !auth_ok {
        // AuthenticationService / DefaultAuthenticationFailureHandler: 401 security_exception
        // with a WWW-Authenticate header.
        let reason = format!(
            "unable to authenticate user [elastic] for REST request [{}]",
            req.path()
        );
        respond(
            &mut s,
            401,
            &es_error(401, "security_exception", &reason),
            &[(
                "WWW-Authenticate",
                "Basic realm=\"security\", charset=\"UTF-8\"",
            )],
        );
        return;
    }
    let path = req.path().to_string();
    if req.method == "POST"
        && path.starts_with("/_inference/chat_completion/")
        && path.ends_with("/_stream")
    {
        let id = path
            .trim_start_matches("/_inference/chat_completion/")
            .trim_end_matches("/_stream")
            .to_string();
        return chat_stream(&mut s, &state, &id, &req);
    }
    if req.method == "POST" && path.ends_with("/_search") {
        let delay = state.lock().unwrap().search_delay;
        thread::sleep(delay);
    }
    let (status, body) = handle(&mut state.lock().unwrap(), &req);
    respond(&mut s, status, &body, &[]);
}

/// `ElasticsearchException` rendering: `{"error": {"root_cause": [...], "type", "reason"}, "status"}`.
pub fn es_error(status: u16, typ: &str, reason: &str) -> Value {
    json!({"error": {"root_cause": [{"type": typ, "reason": reason}], "type": typ, "reason": reason}, "status": status})
}

/// `LicenseUtils.newComplianceException(feature)`: 403, with `es.license.expired.feature`
/// rendered as `license.expired.feature`.
fn licence_error(feature: &str) -> (u16, Value) {
    let reason = format!("current license is non-compliant for [{feature}]");
    let e =
        json!({"type": "security_exception", "reason": reason, "license.expired.feature": feature});
    (
        403,
        json!({"error": {"root_cause": [e.clone()], "type": "security_exception", "reason": reason, "license.expired.feature": feature}, "status": 403}),
    )
}

/// `ActionRequestValidationException`: "Validation Failed: 1: …;2: …;".
fn validation(errors: &[String]) -> (u16, Value) {
    let mut reason = String::from("Validation Failed: ");
    for (i, e) in errors.iter().enumerate() {
        reason.push_str(&format!("{}: {e};", i + 1));
    }
    (
        400,
        es_error(400, "action_request_validation_exception", &reason),
    )
}

fn enterprise(st: &State) -> bool {
    matches!(st.licence.as_str(), "enterprise" | "trial")
}

/// A comma-separated list of `*` patterns, as index expressions are.
fn glob(pattern: &str, name: &str) -> bool {
    pattern.split(',').any(|p| wildcard_match(p, name))
}

fn matched<'a>(st: &'a State, pattern: &str) -> Vec<&'a Index> {
    st.indices
        .iter()
        .filter(|i| glob(pattern, &i.stream) || glob(pattern, &i.name))
        .collect()
}

fn handle(st: &mut State, req: &Request) -> (u16, Value) {
    let path = req.path();
    match (req.method.as_str(), path) {
        // The 9.2 root response (RestMainAction).
        ("GET", "/") => (
            200,
            json!({
            "name": "es01", "cluster_name": "oxibeat", "cluster_uuid": "u1",
            "version": {"number": "9.2.1", "build_flavor": "default", "build_type": "docker",
                "build_hash": "h", "build_date": "2026-10-01T00:00:00Z", "build_snapshot": false,
                "lucene_version": "10.3.1", "minimum_wire_compatibility_version": "8.19.0",
                "minimum_index_compatibility_version": "8.0.0"},
            "tagline": "You Know, for Search"}),
        ),
        // GET _license (spec: license.get.LicenseInformation; monitor privilege needed).
        ("GET", "/_license") => {
            if st.licence_status == 403 {
                return (403, es_error(403, "security_exception", "action [cluster:monitor/xpack/license/get] is unauthorized for user [reader] with effective roles [logs_reader], this action is granted by the cluster privileges [monitor,manage,all]"));
            }
            (
                200,
                json!({"license": {"status": "active", "uid": "cbff45e7-c553-41f7-ae4f-9205eabd80xx",
                "type": st.licence, "issue_date": "2026-11-01T00:00:00.000Z", "issue_date_in_millis": 1793491200000i64,
                "expiry_date": "2026-12-31T00:00:00.000Z", "expiry_date_in_millis": 1798675200000i64,
                "max_nodes": 1000, "max_resource_units": null, "issued_to": "oxibeat", "issuer": "elasticsearch",
                "start_date_in_millis": -1}}),
            )
        }
        // GET _inference/_all: no licence check (TransportGetInferenceModelAction).
        ("GET", "/_inference/_all") => (
            200,
            json!({"endpoints": st.endpoints.iter().map(|(id, t, s)| json!({
            "inference_id": id, "task_type": t, "service": s,
            "service_settings": {"num_threads": 1, "adaptive_allocations": {"enabled": true, "min_number_of_allocations": 0, "max_number_of_allocations": 32}}
        })).collect::<Vec<_>>()}),
        ),
        ("POST", p) if p.starts_with("/_inference/completion/") => {
            let id = p.trim_start_matches("/_inference/completion/");
            if let Some(err) = inference_check(st, id, "completion") {
                return err;
            }
            if req.json()["input"].as_str().is_none() {
                return (
                    400,
                    es_error(
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: Field [input] cannot be empty;",
                    ),
                );
            }
            (200, json!({"completion": [{"result": st.completion}]}))
        }
        ("GET", p) if p.ends_with("/_field_caps") => field_caps(st, req),
        ("POST", p) if p.ends_with("/_search") => {
            if let Some(o) = st.search_override.clone() {
                return o;
            }
            let pattern = p
                .trim_start_matches('/')
                .trim_end_matches("/_search")
                .replace("%2A", "*");
            search(st, &pattern, &req.json())
        }
        _ => (
            400,
            json!({"error": format!("no handler found for uri [{path}] and method [{}]", req.method)}),
        ),
    }
}

/// `BaseTransportInferenceAction`: the endpoint must exist (`ModelRegistry`: "Inference
/// endpoint not found [id]", 404), have the task type asked ("Incompatible task_type …",
/// 400), and its service must be licensed (`InferenceLicenceCheck`: EIS on any licence, the
/// rest Enterprise; 403 for [inference]).
fn inference_check(st: &State, id: &str, task: &str) -> Option<(u16, Value)> {
    let Some((_, t, service)) = st.endpoints.iter().find(|(i, _, _)| i == id) else {
        return Some((
            404,
            es_error(
                404,
                "resource_not_found_exception",
                &format!("Inference endpoint not found [{id}]"),
            ),
        ));
    };
    if t != task {
        return Some((400, es_error(400, "status_exception", &format!("Incompatible task_type, the requested type [{task}] does not match the model type [{t}]"))));
    }
    if service != "elastic" && !enterprise(st) {
        return Some(licence_error("inference"));
    }
    None
}

fn field_caps(st: &State, req: &Request) -> (u16, Value) {
    let pattern = req
        .path()
        .trim_start_matches('/')
        .trim_end_matches("/_field_caps")
        .replace("%2A", "*");
    let m = matched(st, &pattern);
    if m.is_empty() && !pattern.contains('*') {
        // IndexNotFoundException for a concrete name (allow_no_indices only covers wildcards).
        return (
            404,
            es_error(
                404,
                "index_not_found_exception",
                &format!("no such index [{pattern}]"),
            ),
        );
    }
    let names: Vec<&str> = m.iter().map(|i| i.name.as_str()).collect();
    let sem: Vec<&str> = m
        .iter()
        .filter(|i| i.semantic)
        .map(|i| i.name.as_str())
        .collect();
    let other: Vec<&str> = m
        .iter()
        .filter(|i| !i.semantic)
        .map(|i| i.name.as_str())
        .collect();
    let mut types = Map::new();
    // FieldCapabilities: `indices` is listed only when the field has more than one type.
    let several = !sem.is_empty() && !other.is_empty();
    if !sem.is_empty() {
        let mut t = json!({"type": "semantic_text", "metadata_field": false, "searchable": true, "aggregatable": false});
        if several {
            t["indices"] = json!(sem);
        }
        types.insert("semantic_text".into(), t);
    }
    if !other.is_empty() && req.target.contains("include_unmapped=true") {
        let mut t = json!({"type": "unmapped", "metadata_field": false, "searchable": false, "aggregatable": false});
        if several {
            t["indices"] = json!(other);
        }
        types.insert("unmapped".into(), t);
    }
    let mut fields = Map::new();
    if !types.is_empty() {
        fields.insert(SEMANTIC_FIELD.into(), Value::Object(types));
    }
    (200, json!({"indices": names, "fields": fields}))
}

fn field<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(dotted) {
        return Some(x);
    }
    let (head, rest) = dotted.split_once('.')?;
    field(v.get(head)?, rest)
}

fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Stand-in "semantic" expansion (NOT ELSER).
const EXPAND: &[(&str, &[&str])] = &[
    ("disk", &["space", "device", "write"]),
    ("full", &["space", "left"]),
    ("memory", &["outofmemoryerror", "heap", "oom"]),
    ("certificate", &["tls", "ssl", "handshake", "expired"]),
];

fn filter_ok(f: &Value, doc: &Value) -> bool {
    if let Some(r) = f.get("range") {
        let (fld, spec) = r.as_object().and_then(|o| o.iter().next()).expect("range");
        let v = field(doc, fld).and_then(Value::as_str).unwrap_or("");
        let gte = spec["gte"].as_str().map(|g| v >= g).unwrap_or(true);
        let lte = spec["lte"].as_str().map(|l| v <= l).unwrap_or(true);
        return gte && lte;
    }
    if let Some(t) = f.get("terms") {
        let (fld, vals) = t.as_object().and_then(|o| o.iter().next()).expect("terms");
        let v = field(doc, fld).cloned().unwrap_or(Value::Null);
        return vals.as_array().is_some_and(|a| a.contains(&v));
    }
    true
}

fn filters_of(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        o => vec![o.clone()],
    }
}

struct Ctx<'a> {
    st: &'a State,
    docs: Vec<&'a Doc>,
    semantic: HashSet<String>,
}

impl Ctx<'_> {
    fn bm25(&self, q: &str) -> Vec<(usize, f64)> {
        let n = self.docs.len() as f64;
        let toks: Vec<Vec<String>> = self
            .docs
            .iter()
            .map(|d| {
                tokens(
                    field(&d.source, "message")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                )
            })
            .collect();
        let avg = toks.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
        let qt: Vec<String> = tokens(q);
        let mut out = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            let mut s = 0.0;
            for term in &qt {
                let tf = t.iter().filter(|x| *x == term).count() as f64;
                if tf == 0.0 {
                    continue;
                }
                let df = toks.iter().filter(|d| d.contains(term)).count() as f64;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                s += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * t.len() as f64 / avg));
            }
            if s > 0.0 {
                out.push((i, s));
            }
        }
        out
    }

    fn semantic_score(&self, q: &str) -> Vec<(usize, f64)> {
        let mut qt: Vec<String> = tokens(q);
        for (k, more) in EXPAND {
            if qt.iter().any(|t| t == k) {
                qt.extend(more.iter().map(|s| s.to_string()));
            }
        }
        let mut out = Vec::new();
        for (i, d) in self.docs.iter().enumerate() {
            // The field holds only warn/error/critical lines (the oxibeat-logs pipeline).
            let lvl = field(&d.source, "log.level")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !self.semantic.contains(&d.index) || !["warn", "error", "critical"].contains(&lvl) {
                continue;
            }
            let dt: HashSet<String> = tokens(
                field(&d.source, "message")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            )
            .into_iter()
            .collect();
            let shared = qt.iter().filter(|t| dt.contains(*t)).count() as f64;
            if shared > 0.0 {
                out.push((i, 20.0 * shared / qt.len() as f64));
            }
        }
        out
    }

    /// The scored docs of a leaf `match`; `Err` with the error Elasticsearch gives.
    fn run_match(&self, m: &Value) -> Result<Vec<(usize, f64)>, (u16, Value)> {
        let (fld, spec) = m.as_object().and_then(|o| o.iter().next()).ok_or_else(|| {
            (
                400,
                es_error(400, "parsing_exception", "[match] query malformed"),
            )
        })?;
        let q = spec["query"].as_str().or(spec.as_str()).unwrap_or("");
        if fld == SEMANTIC_FIELD {
            // The match query on semantic_text runs the field's inference endpoint at query
            // time (SemanticQueryBuilder): the endpoint and the licence must allow it.
            if !self.semantic.is_empty() {
                if let Some(e) =
                    inference_check(self.st, ".elser-2-elasticsearch", "sparse_embedding")
                {
                    return Err(e);
                }
            }
            return Ok(self.semantic_score(q));
        }
        Ok(self.bm25(q))
    }

    fn query(
        &self,
        query: &Value,
        filters: &[Value],
        min_score: Option<f64>,
    ) -> Result<Vec<(usize, f64)>, (u16, Value)> {
        let mut filters = filters.to_vec();
        let leaf = if let Some(b) = query.get("bool") {
            filters.extend(filters_of(&b["filter"]));
            b["must"][0].clone()
        } else {
            query.clone()
        };
        let m = leaf.get("match").ok_or_else(|| {
            (
                400,
                es_error(400, "parsing_exception", "stand-in: only match queries"),
            )
        })?;
        let mut hits: Vec<(usize, f64)> = self
            .run_match(m)?
            .into_iter()
            .filter(|(i, _)| filters.iter().all(|f| filter_ok(f, &self.docs[*i].source)))
            .filter(|(_, s)| min_score.map_or(true, |m| *s >= m))
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(hits)
    }

    fn retriever(
        &self,
        r: &Value,
        window: usize,
        need: usize,
        parent: Option<(&str, usize)>,
        errors: &mut Vec<String>,
    ) -> Result<Vec<(usize, f64)>, (u16, Value)> {
        let (name, inner) = r.as_object().and_then(|o| o.iter().next()).ok_or_else(|| {
            (
                400,
                es_error(400, "parsing_exception", "retriever malformed"),
            )
        })?;
        match name.as_str() {
            "standard" => {
                let mut h = self.query(
                    &inner["query"],
                    &filters_of(&inner["filter"]),
                    inner["min_score"].as_f64(),
                )?;
                h.truncate(window);
                Ok(h)
            }
            "rrf" => {
                if !enterprise(self.st) {
                    // RRFRetrieverBuilder.fromXContent
                    return Err(licence_error("Reciprocal Rank Fusion (RRF)"));
                }
                let w = inner["rank_window_size"].as_u64().unwrap_or(10) as usize;
                let k = inner["rank_constant"].as_u64().unwrap_or(60) as f64;
                check_window("rrf", w, need, parent, errors);
                let pre = filters_of(&inner["filter"]);
                let mut fused: BTreeMap<usize, f64> = BTreeMap::new();
                for c in inner["retrievers"].as_array().cloned().unwrap_or_default() {
                    let mut c = c;
                    if !pre.is_empty() {
                        // Compound filters propagate to the children as pre-filters.
                        if let Some(o) = c.as_object_mut().and_then(|o| o.values_mut().next()) {
                            let mut f = filters_of(&o["filter"]);
                            f.extend(pre.clone());
                            o["filter"] = Value::Array(f);
                        }
                    }
                    for (rank, (i, _)) in self
                        .retriever(&c, w, need, Some(("rrf", w)), errors)?
                        .into_iter()
                        .enumerate()
                    {
                        *fused.entry(i).or_default() += 1.0 / (k + rank as f64 + 1.0);
                    }
                }
                let mut v: Vec<(usize, f64)> = fused.into_iter().collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                v.truncate(w.min(window));
                Ok(v)
            }
            "text_similarity_reranker" => {
                if !enterprise(self.st) {
                    // TextSimilarityRankRetrieverBuilder.fromXContent
                    return Err(licence_error("text_similarity_reranker"));
                }
                for req in ["retriever", "inference_text", "field"] {
                    if inner.get(req).is_none() {
                        // ConstructingObjectParser: required constructor argument.
                        return Err((400, es_error(400, "x_content_parse_exception", &format!("[text_similarity_reranker] failed to parse object: Required [{req}]"))));
                    }
                }
                // Default inference_id: DEFAULT_RERANK_ID; default window 10 (DEFAULT_RANK_WINDOW_SIZE).
                let id = inner["inference_id"]
                    .as_str()
                    .unwrap_or(".rerank-v1-elasticsearch");
                if let Some(e) = inference_check(self.st, id, "rerank") {
                    return Err(e);
                }
                let w = inner["rank_window_size"].as_u64().unwrap_or(10) as usize;
                check_window("text_similarity_reranker", w, need, parent, errors);
                let first = self.retriever(
                    &inner["retriever"],
                    w,
                    need,
                    Some(("text_similarity_reranker", w)),
                    errors,
                )?;
                let qt: HashSet<String> = tokens(inner["inference_text"].as_str().unwrap_or(""))
                    .into_iter()
                    .collect();
                let fld = inner["field"].as_str().unwrap_or("message");
                let mut v: Vec<(usize, f64)> = first
                    .into_iter()
                    .map(|(i, _)| {
                        let dt: HashSet<String> = tokens(
                            field(&self.docs[i].source, fld)
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        )
                        .into_iter()
                        .collect();
                        let s = qt.iter().filter(|t| dt.contains(*t)).count() as f64
                            / qt.len().max(1) as f64;
                        // max(s,0) + min(exp(s),1) as TextSimilarityRankFeaturePhaseRankCoordinatorContext normalises.
                        (i, s + 1.0)
                    })
                    .filter(|(_, s)| inner["min_score"].as_f64().map_or(true, |m| *s >= m))
                    .collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                Ok(v)
            }
            other => Err((
                400,
                es_error(
                    400,
                    "parsing_exception",
                    &format!("unknown retriever [{other}]"),
                ),
            )),
        }
    }
}

/// CompoundRetrieverBuilder.validate: `[name] requires [rank_window_size: w] be greater than
/// or equal to [size: s]`, and a parent's window not above its compound child's.
fn check_window(
    name: &str,
    w: usize,
    size: usize,
    parent: Option<(&str, usize)>,
    errors: &mut Vec<String>,
) {
    if size > w {
        errors.push(format!(
            "[{name}] requires [rank_window_size: {w}] be greater than or equal to [size: {size}]"
        ));
    }
    if let Some((p, pw)) = parent {
        if pw > w {
            errors.push(format!("[{p}] requires [rank_window_size: {pw}] to be smaller than or equal to its sub retriever's {name} [rank_window_size: {w}]"));
        }
    }
}

fn highlight(req: &Value, q_tokens: &HashSet<String>, doc: &Doc, semantic: bool) -> Value {
    let mut out = Map::new();
    // `fields` is an object, or an array of single-key objects (HighlightBuilder).
    let mut fields = Map::new();
    match &req["highlight"]["fields"] {
        Value::Object(o) => fields.extend(o.clone()),
        Value::Array(a) => {
            for f in a {
                if let Some(o) = f.as_object() {
                    fields.extend(o.clone());
                }
            }
        }
        _ => {}
    }
    if let Some(m) = fields.get("message") {
        let pre = m["pre_tags"][0].as_str().unwrap_or("<em>");
        let post = m["post_tags"][0].as_str().unwrap_or("</em>");
        let text = field(&doc.source, "message")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut s = String::new();
        let mut word = String::new();
        let flush = |w: &mut String, s: &mut String| {
            if !w.is_empty() {
                if q_tokens.contains(&w.to_lowercase()) {
                    s.push_str(pre);
                    s.push_str(w);
                    s.push_str(post);
                } else {
                    s.push_str(w);
                }
                w.clear();
            }
        };
        let mut any = false;
        for c in text.chars() {
            if c.is_alphanumeric() {
                word.push(c);
            } else {
                if !word.is_empty() && q_tokens.contains(&word.to_lowercase()) {
                    any = true;
                }
                flush(&mut word, &mut s);
                s.push(c);
            }
        }
        if !word.is_empty() && q_tokens.contains(&word.to_lowercase()) {
            any = true;
        }
        flush(&mut word, &mut s);
        if any {
            out.insert("message".into(), json!([s]));
        }
    }
    if semantic {
        if let Some(f) = fields.get(SEMANTIC_FIELD) {
            // SemanticTextHighlighter: the best chunks as they are.
            if f["type"] == "semantic" {
                let text = field(&doc.source, "message")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let chunk: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
                out.insert(SEMANTIC_FIELD.into(), json!([chunk]));
            }
        }
    }
    Value::Object(out)
}

fn search(st: &State, pattern: &str, body: &Value) -> (u16, Value) {
    if body.is_null() {
        return (
            400,
            es_error(400, "parse_exception", "request body is required"),
        );
    }
    let idx = matched(st, pattern);
    let ctx = Ctx {
        st,
        docs: st
            .docs
            .iter()
            .filter(|d| idx.iter().any(|i| i.name == d.index))
            .collect(),
        semantic: idx
            .iter()
            .filter(|i| i.semantic)
            .map(|i| i.name.clone())
            .collect(),
    };
    let size = body["size"].as_u64().unwrap_or(10) as usize;
    let from = body["from"].as_u64().unwrap_or(0) as usize;
    let mut errors = Vec::new();
    let result = if let Some(r) = body.get("retriever") {
        // SearchSourceBuilder with a retriever: these may not be set beside it
        // (RetrieverBuilderErrorTests).
        let clash: Vec<&str> = [
            "query",
            "knn",
            "search_after",
            "terminate_after",
            "sort",
            "rescore",
            "min_score",
        ]
        .into_iter()
        .filter(|k| body.get(*k).is_some())
        .collect();
        if !clash.is_empty() {
            return validation(&[format!(
                "cannot specify [retriever] and [{}]",
                clash.join(", ")
            )]);
        }
        ctx.retriever(r, usize::MAX, from + size, None, &mut errors)
    } else {
        ctx.query(&body["query"], &[], body["min_score"].as_f64())
    };
    if !errors.is_empty() {
        return validation(&errors);
    }
    let scored = match result {
        Ok(s) => s,
        Err(e) => return e,
    };
    let q_text = find_query_text(body);
    let qt: HashSet<String> = tokens(&q_text).into_iter().collect();
    let hits: Vec<Value> = scored
        .iter()
        .skip(from)
        .take(size)
        .map(|(i, s)| {
            let d = ctx.docs[*i];
            let mut h = json!({"_index": d.index, "_id": d.id, "_score": s, "_source": d.source});
            let hl = highlight(body, &qt, d, ctx.semantic.contains(&d.index));
            if hl.as_object().is_some_and(|o| !o.is_empty()) {
                h["highlight"] = hl;
            }
            h
        })
        .collect();
    let max = hits.first().and_then(|h| h["_score"].as_f64());
    (
        200,
        json!({"took": 3, "timed_out": false,
        "_shards": {"total": idx.len(), "successful": idx.len(), "skipped": 0, "failed": 0},
        "hits": {"max_score": max, "hits": hits}}),
    )
}

fn find_query_text(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            if let Some(m) = o.get("match") {
                if let Some((_, spec)) = m.as_object().and_then(|x| x.iter().next()) {
                    return spec["query"].as_str().unwrap_or("").to_string();
                }
            }
            o.values()
                .map(find_query_text)
                .find(|s| !s.is_empty())
                .unwrap_or_default()
        }
        Value::Array(a) => a
            .iter()
            .map(find_query_text)
            .find(|s| !s.is_empty())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// `POST _inference/chat_completion/{id}/_stream`: `ServerSentEventsRestActionListener`
/// framing (BOM, `event: message`, `data: …`, blank line; `[DONE]` last), chunked encoding,
/// one flush per event; errors before the stream as JSON with the status, in the stream as
/// `event: error`.
fn chat_stream(s: &mut TcpStream, state: &Arc<Mutex<State>>, id: &str, req: &Request) {
    let (check, llm) = {
        let st = state.lock().unwrap();
        (inference_check(&st, id, "chat_completion"), st.llm.clone())
    };
    if let Some((status, body)) = check {
        return respond(s, status, &body, &[]);
    }
    let body = req.json();
    // RequestChatCompletion: `messages` required, each with a `role`.
    let ok = body["messages"].as_array().is_some_and(|m| {
        !m.is_empty()
            && m.iter().all(|x| {
                matches!(
                    x["role"].as_str(),
                    Some("system" | "user" | "assistant" | "tool")
                )
            })
    });
    if !ok {
        return respond(
            s,
            400,
            &es_error(
                400,
                "x_content_parse_exception",
                "[unified_chat_completion] failed to parse field [messages]",
            ),
            &[],
        );
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nX-Elastic-Product: Elasticsearch\r\nConnection: close\r\n\r\n";
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = |s: &mut TcpStream, text: &str| -> bool {
        let b = text.as_bytes();
        s.write_all(format!("{:x}\r\n", b.len()).as_bytes()).is_ok()
            && s.write_all(b).is_ok()
            && s.write_all(b"\r\n").is_ok()
            && s.flush().is_ok()
    };
    let event = |kind: &str, data: &Value| format!("\u{FEFF}event: {kind}\ndata: {data}\n\n");
    let delta = |content: Value| json!({"id": "unified-1a49", "choices": [{"delta": content, "index": 0}], "model": "rainbow-sprinkles", "object": "chat.completion.chunk"});
    if !chunk(s, &event("message", &delta(json!({"role": "assistant"})))) {
        return;
    }
    let (deltas, fail, delay) = match llm {
        Llm::Stream { deltas, delay } => (deltas, None, delay),
        Llm::FailMidStream {
            deltas,
            status,
            reason,
        } => (deltas, Some((status, reason)), Duration::ZERO),
    };
    for d in deltas {
        thread::sleep(delay);
        if !chunk(s, &event("message", &delta(json!({"content": d})))) {
            return;
        }
    }
    if let Some((status, reason)) = fail {
        let e = json!({"error": {"root_cause": [{"type": "status_exception", "reason": reason}], "type": "status_exception", "reason": reason}, "status": status});
        chunk(s, &event("error", &e));
    } else {
        let stop = json!({"id": "unified-1a49", "choices": [{"delta": {}, "finish_reason": "stop", "index": 0}], "model": "rainbow-sprinkles", "object": "chat.completion.chunk"});
        chunk(s, &event("message", &stop));
        chunk(s, "\u{FEFF}event: message\ndata: [DONE]\n\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
}
