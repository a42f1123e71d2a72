//! A stand-in for Elasticsearch 9.2 and Kibana 9.2, enough for `oxibeat setup`: a small
//! HTTP/1.1 server on 127.0.0.1 (free port) that stores what is PUT, answers GETs in the real
//! APIs' shapes, and records every request. It answers like the real servers on errors too:
//! 400 with a reason for a bad body, 401 for wrong credentials, 403 for licence-gated APIs
//! (ML, inference) on a basic licence, Kibana's 400 without `kbn-xsrf`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path with the query string.
    pub target: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub requests: Vec<Recorded>,
    /// Elasticsearch resources by API path (`/_index_template/x`), as last PUT.
    pub es: BTreeMap<String, Value>,
    pub job_state: HashMap<String, String>,
    pub datafeed_state: HashMap<String, String>,
    /// Kibana saved objects by (type, id).
    pub kibana: BTreeMap<(String, String), Value>,
    /// When set, every request must carry exactly this Authorization header.
    pub expected_auth: Option<String>,
    /// Basic licence: ML and inference APIs answer 403.
    pub basic_licence: bool,
    /// Whether `.elser-2-elasticsearch` exists.
    pub inference_present: bool,
    /// PUTs to a path starting with the key answer 400 with the value as reason.
    pub reject: Vec<(String, String)>,
}

pub struct Standin {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    tls: bool,
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// A TLS identity for the stand-in: a fresh CA and a server certificate for 127.0.0.1.
pub struct TestCa {
    /// The CA certificate, PEM, for `ssl.certificate_authorities`.
    pub ca_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "oxibeat test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server TLS config");
        TestCa {
            ca_pem: ca.pem(),
            config: Arc::new(config),
        }
    }
}

impl Standin {
    pub fn start() -> Standin {
        Self::start_with(None)
    }

    /// HTTPS with a certificate from `ca`.
    pub fn start_tls(ca: &TestCa) -> Standin {
        Self::start_with(Some(ca.config.clone()))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Standin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            inference_present: true,
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let is_tls = tls.is_some();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = conn else { continue };
                let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                let st = st.clone();
                let tls = tls.clone();
                thread::spawn(move || match tls {
                    None => serve(c, st),
                    Some(cfg) => {
                        if let Ok(conn) = rustls::ServerConnection::new(cfg) {
                            serve(rustls::StreamOwned::new(conn, c), st);
                        }
                    }
                });
            }
        });
        Standin {
            addr,
            state,
            stop,
            tls: is_tls,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("lock").requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().expect("lock").requests.clear();
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("lock"))
    }
}

fn serve<S: Read + Write>(stream: S, state: Arc<Mutex<State>>) {
    let mut conn = BufReader::new(stream);
    loop {
        let Some(req) = read_request(&mut conn) else {
            return;
        };
        let (status, body) = {
            let mut st = state.lock().expect("lock");
            st.requests.push(req.clone());
            handle(&mut st, &req)
        };
        let text = body.to_string();
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            409 => "Conflict",
            _ => "Other",
        };
        let resp = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nX-Elastic-Product: Elasticsearch\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        let w = conn.get_mut();
        if w.write_all(resp.as_bytes())
            .and_then(|_| w.flush())
            .is_err()
        {
            return;
        }
    }
}

fn read_request<S: Read>(r: &mut BufReader<S>) -> Option<Recorded> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
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
    let mut body = Vec::new();
    if let Some(n) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

fn es_error(status: u16, typ: &str, reason: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"root_cause": [{"type": typ, "reason": reason}], "type": typ, "reason": reason}, "status": status}),
    )
}

/// Required top-level keys per PUT API, as the real API rejects bodies without them.
fn shape_error(path: &str, body: &Value) -> Option<String> {
    let need: &[&str] = if path.starts_with("/_ilm/policy/") {
        &["policy"]
    } else if path.starts_with("/_ingest/pipeline/") {
        &["processors"]
    } else if path.starts_with("/_component_template/") {
        &["template"]
    } else if path.starts_with("/_index_template/") {
        &["index_patterns"]
    } else if path.starts_with("/_ml/anomaly_detectors/") {
        &["analysis_config", "data_description"]
    } else if path.starts_with("/_ml/datafeeds/") {
        &["job_id", "indices"]
    } else {
        &[]
    };
    need.iter()
        .find(|k| body.get(**k).is_none())
        .map(|k| format!("[{k}] is required"))
}

fn handle(st: &mut State, req: &Recorded) -> (u16, Value) {
    if let Some(want) = &st.expected_auth {
        if req.header("authorization") != Some(want.as_str()) {
            return if req.path().starts_with("/api/") || req.path().starts_with("/s/") {
                (
                    401,
                    json!({"statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"}),
                )
            } else {
                es_error(
                    401,
                    "security_exception",
                    &format!(
                        "unable to authenticate user for REST request [{}]",
                        req.path()
                    ),
                )
            };
        }
    }
    let path = req.path().to_string();
    if path.starts_with("/api/") || path.starts_with("/s/") {
        return kibana(st, req);
    }
    if st.basic_licence && (path.starts_with("/_ml/") || path.starts_with("/_inference/")) {
        let feature = if path.starts_with("/_ml/") {
            "ml"
        } else {
            "inference"
        };
        return es_error(
            403,
            "security_exception",
            &format!("current license is non-compliant for [{feature}]"),
        );
    }
    let m = req.method.as_str();
    if path == "/" && m == "GET" {
        return (
            200,
            json!({"name": "standin", "cluster_name": "standin", "version": {"number": "9.2.1"}, "tagline": "You Know, for Search"}),
        );
    }
    if let Some(id) = path.strip_prefix("/_inference/") {
        return if st.inference_present && id == ".elser-2-elasticsearch" {
            (
                200,
                json!({"endpoints": [{"inference_id": id, "task_type": "sparse_embedding", "service": "elasticsearch"}]}),
            )
        } else {
            es_error(
                404,
                "resource_not_found_exception",
                &format!("Inference endpoint not found [{id}]"),
            )
        };
    }
    // ML state changes.
    for (prefix, list, states) in [
        ("/_ml/anomaly_detectors/", "jobs", true),
        ("/_ml/datafeeds/", "datafeeds", false),
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if let Some((id, action)) = rest.split_once('/') {
                let base = format!("{prefix}{id}");
                if !st.es.contains_key(&base) {
                    return es_error(
                        404,
                        "resource_not_found_exception",
                        &format!(
                            "No known {} with id [{id}]",
                            if states { "job" } else { "datafeed" }
                        ),
                    );
                }
                let map = if states {
                    &mut st.job_state
                } else {
                    &mut st.datafeed_state
                };
                let cur = map.get(id).cloned().unwrap_or_default();
                return match (m, action) {
                    ("GET", "_stats") => (
                        200,
                        json!({"count": 1, list: [{if states {"job_id"} else {"datafeed_id"}: id, "state": cur}]}),
                    ),
                    ("POST", "_open") => {
                        map.insert(id.to_string(), "opened".into());
                        (200, json!({"opened": true, "node": "standin"}))
                    }
                    ("POST", "_start") if cur == "started" => es_error(
                        409,
                        "status_exception",
                        &format!(
                            "cannot start datafeed [{id}] because it has already been started"
                        ),
                    ),
                    ("POST", "_start") => {
                        map.insert(id.to_string(), "started".into());
                        (200, json!({"started": true, "node": "standin"}))
                    }
                    ("POST", "_stop") => {
                        map.insert(id.to_string(), "stopped".into());
                        (200, json!({"stopped": true}))
                    }
                    ("POST", "_update") => {
                        if !states && cur == "started" {
                            return es_error(
                                409,
                                "status_exception",
                                &format!(
                                    "Cannot update datafeed [{id}] while its status is started"
                                ),
                            );
                        }
                        let Ok(upd) = serde_json::from_slice::<Value>(&req.body) else {
                            return es_error(
                                400,
                                "x_content_parse_exception",
                                "request body is not valid JSON",
                            );
                        };
                        if upd.get("job_id").is_some() || upd.get("analysis_config").is_some() {
                            return es_error(
                                400,
                                "x_content_parse_exception",
                                "unknown field [job_id or analysis_config] in update",
                            );
                        }
                        let stored = st.es.get_mut(&base).expect("checked above");
                        if let (Some(dst), Some(src)) = (stored.as_object_mut(), upd.as_object()) {
                            for (k, v) in src {
                                dst.insert(k.clone(), v.clone());
                            }
                        }
                        (200, stored.clone())
                    }
                    _ => es_error(400, "illegal_argument_exception", "unsupported"),
                };
            }
        }
    }
    let known = [
        "/_ilm/policy/",
        "/_ingest/pipeline/",
        "/_component_template/",
        "/_index_template/",
        "/_ml/anomaly_detectors/",
        "/_ml/datafeeds/",
    ];
    let Some(prefix) = known.iter().find(|p| path.starts_with(**p)) else {
        return es_error(
            400,
            "illegal_argument_exception",
            &format!("no handler for [{m} {path}]"),
        );
    };
    let name = path[prefix.len()..].to_string();
    match m {
        "PUT" => {
            if let Some((_, reason)) = st.reject.iter().find(|(p, _)| path.starts_with(p.as_str()))
            {
                return es_error(400, "mapper_parsing_exception", reason);
            }
            let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                return es_error(
                    400,
                    "x_content_parse_exception",
                    "request body is not valid JSON",
                );
            };
            if let Some(e) = shape_error(&path, &body) {
                return es_error(400, "x_content_parse_exception", &e);
            }
            if path.starts_with("/_ml/anomaly_detectors/") {
                if st.es.contains_key(&path) {
                    return es_error(
                        400,
                        "resource_already_exists_exception",
                        &format!("The job cannot be created with the Id '{name}'. The Id is already used."),
                    );
                }
                st.job_state.insert(name.clone(), "closed".into());
            }
            if path.starts_with("/_ml/datafeeds/") {
                let job = body["job_id"].as_str().unwrap_or("").to_string();
                if !st.es.contains_key(&format!("/_ml/anomaly_detectors/{job}")) {
                    return es_error(
                        404,
                        "resource_not_found_exception",
                        &format!("No known job with id '{job}'"),
                    );
                }
                st.datafeed_state.insert(name.clone(), "stopped".into());
            }
            st.es.insert(path.clone(), body);
            (200, json!({"acknowledged": true}))
        }
        "GET" => {
            let Some(b) = st.es.get(&path).cloned() else {
                return es_error(
                    404,
                    "resource_not_found_exception",
                    &format!("{name} not found"),
                );
            };
            let shaped = match *prefix {
                "/_ilm/policy/" => {
                    json!({ name: {"version": 1, "modified_date": "2026-11-25T10:00:00.000Z", "policy": b["policy"]} })
                }
                "/_ingest/pipeline/" => json!({ name: b }),
                "/_component_template/" => {
                    json!({"component_templates": [{"name": name, "component_template": b}]})
                }
                "/_index_template/" => {
                    json!({"index_templates": [{"name": name, "index_template": b}]})
                }
                "/_ml/anomaly_detectors/" => {
                    let mut j = b.clone();
                    j["job_id"] = json!(name);
                    json!({"count": 1, "jobs": [j]})
                }
                _ => {
                    let mut d = b.clone();
                    d["datafeed_id"] = json!(name);
                    json!({"count": 1, "datafeeds": [d]})
                }
            };
            (200, shaped)
        }
        _ => es_error(405, "illegal_argument_exception", "method not allowed"),
    }
}

/// The NDJSON file of a multipart/form-data body.
fn multipart_file(req: &Recorded) -> Option<String> {
    let ct = req.header("content-type")?;
    let boundary = ct.split("boundary=").nth(1)?.trim_matches('"');
    let text = String::from_utf8_lossy(&req.body).into_owned();
    let start = text.find("\r\n\r\n")? + 4;
    let end = text[start..].find(&format!("\r\n--{boundary}"))? + start;
    Some(text[start..end].to_string())
}

/// The Kibana API path without a `/s/<space>` prefix.
fn kibana_path(path: &str) -> &str {
    match path.strip_prefix("/s/") {
        Some(rest) => rest.find('/').map(|i| &rest[i..]).unwrap_or(""),
        None => path,
    }
}

fn kibana(st: &mut State, req: &Recorded) -> (u16, Value) {
    let path = kibana_path(req.path());
    if req.method == "POST" && req.header("kbn-xsrf").is_none() {
        return (
            400,
            json!({"statusCode": 400, "error": "Bad Request", "message": "Request must contain a kbn-xsrf header."}),
        );
    }
    match (req.method.as_str(), path) {
        ("POST", "/api/saved_objects/_bulk_get") => {
            let wanted = req.json();
            let list: Vec<Value> = wanted
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|w| {
                    let key = (
                        w["type"].as_str().unwrap_or("").to_string(),
                        w["id"].as_str().unwrap_or("").to_string(),
                    );
                    st.kibana.get(&key).cloned().unwrap_or_else(|| {
                        json!({"id": key.1, "type": key.0, "error": {"statusCode": 404, "error": "Not Found", "message": "Saved object not found"}})
                    })
                })
                .collect();
            (200, json!({"saved_objects": list}))
        }
        ("POST", "/api/saved_objects/_import") => {
            let Some(file) = multipart_file(req) else {
                return (
                    400,
                    json!({"statusCode": 400, "error": "Bad Request", "message": "[request body.file]: expected value of type [Stream]"}),
                );
            };
            let overwrite = req.target.contains("overwrite=true");
            let objs: Vec<Value> = file
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let mut ok = Vec::new();
            let mut errors = Vec::new();
            for o in &objs {
                let key = (
                    o["type"].as_str().unwrap_or("").to_string(),
                    o["id"].as_str().unwrap_or("").to_string(),
                );
                let title = o["attributes"]["title"].clone();
                let missing: Vec<Value> = o["references"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| {
                        let rk = (
                            r["type"].as_str().unwrap_or("").to_string(),
                            r["id"].as_str().unwrap_or("").to_string(),
                        );
                        // Embeddables by value have no saved object; only saved types count.
                        !st.kibana.contains_key(&rk)
                            && !objs
                                .iter()
                                .any(|x| x["type"] == r["type"] && x["id"] == r["id"])
                    })
                    .map(|r| json!({"type": r["type"], "id": r["id"]}))
                    .collect();
                if !missing.is_empty() {
                    errors.push(
                        json!({"id": key.1, "type": key.0, "title": title, "meta": {"title": title},
                        "error": {"type": "missing_references", "references": missing}}),
                    );
                } else if st.kibana.contains_key(&key) && !overwrite {
                    errors.push(
                        json!({"id": key.1, "type": key.0, "title": title, "meta": {"title": title},
                        "error": {"type": "conflict"}}),
                    );
                } else {
                    st.kibana.insert(key.clone(), o.clone());
                    ok.push(json!({"type": key.0, "id": key.1, "meta": {"title": title}}));
                }
            }
            (
                200,
                json!({"success": errors.is_empty(), "successCount": ok.len(), "successResults": ok, "errors": errors}),
            )
        }
        _ => (
            404,
            json!({"statusCode": 404, "error": "Not Found", "message": "Not Found"}),
        ),
    }
}
