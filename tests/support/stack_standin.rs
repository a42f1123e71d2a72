//! A stand-in for Elasticsearch 9.2 and Kibana 9.2, enough for `oxibeat setup`: a small
//! HTTP/1.1 server on 127.0.0.1 (free port) that stores what is PUT, answers GETs in the real
//! APIs' shapes, and records every request. It answers like the real servers on errors too:
//! 400 with a reason for a bad body, 401 for wrong credentials, Kibana's 400 without
//! `kbn-xsrf`, and the validation rules the real server applies to our requests, each with the
//! place in Elasticsearch's source it comes from (paths relative to elastic/elasticsearch):
//!
//! - root mapping parameters: only the root object's own parameters and metadata fields are
//!   accepted at the root of `mappings` (`RootObjectMapper.parse` / `processField`,
//!   `ObjectMapper.parseObjectOrDocumentTypeProperties`, then
//!   `MappingParser.parseToBuilder` → `checkNoRemainingFields`: "Root mapping definition has
//!   unsupported parameters"). `type` is removed only from nested objects
//!   (`ObjectMapper.TypeParser.parseProperties`), so a root `"type": "object"` is a 400.
//! - component templates that an index template is composed of must exist, unless listed in
//!   `ignore_missing_component_templates` (`MetadataIndexTemplateService.validateIndexTemplateV2`:
//!   "specifies component templates [..] that do not exist"); the built-in `logs@*`,
//!   `metrics@*` and `ecs@mappings` exist (`x-pack/plugin/stack/.../StackTemplateRegistry`,
//!   contents from `x-pack/plugin/core/template-resources/src/main/resources/`). A component
//!   template in use by an index template (and not ignorable there) cannot be deleted
//!   (`MetadataIndexTemplateService.innerRemoveComponentTemplate`).
//! - a datafeed starts only if every field its job reads is mapped in an index it reads
//!   (`x-pack/plugin/ml/.../extractor/ExtractedFields` via `TimeBasedExtractedFields.build`:
//!   "cannot retrieve field [f] because it has no mappings", also when no index matches).
//!   Data streams get their mappings from the matching index template when created
//!   (`MetadataCreateDataStreamService`), by `PUT _data_stream/<name>` or the first document;
//!   the stand-in does not map fields dynamically, so a field exists only if a template maps it.
//! - licence: on a basic licence the ML write APIs (put job/datafeed, open, start) answer 403
//!   "current license is non-compliant for [ml]" (`TransportPutJobAction`,
//!   `TransportPutDatafeedAction`, `TransportOpenJobAction`... check
//!   `MachineLearningField.ML_API_FEATURE`, Platinum), while `GET _inference/<id>` answers on
//!   any licence (`TransportGetInferenceModelAction` has no check; inference itself needs
//!   `InferencePlugin.INFERENCE_API_FEATURE`, Enterprise). `GET _xpack` reports it
//!   (`XPackInfoResponse`: `license.type/status`, `features.ml.available/enabled`).
//! - an id that exists: creating an ML job, datafeed or data stream again is a 400
//!   `resource_already_exists_exception` (`ResourceAlreadyExistsException`, status
//!   BAD_REQUEST); creating a document whose `_id` exists is a 409
//!   `version_conflict_engine_exception` (`InternalEngine` on `op_type=create`).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

#[path = "wildcard.rs"]
mod wildcard;
use wildcard::wildcard_match;

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
    /// `GET _xpack` answers 404 (a cluster without it).
    pub no_xpack: bool,
    /// Data streams by name.
    pub data_streams: BTreeMap<String, DataStream>,
}

/// A data stream: its mapped fields (flattened name → type, from the index template at its
/// creation or last rollover), generation and documents by `_id`.
#[derive(Debug, Clone, Default)]
pub struct DataStream {
    pub template: String,
    pub generation: u32,
    pub fields: BTreeMap<String, String>,
    pub docs: BTreeMap<String, Value>,
}

impl DataStream {
    pub fn backing_index(&self, name: &str) -> String {
        format!(".ds-{name}-2026.11.25-{:06}", self.generation)
    }
}

/// The built-in component templates our index templates are composed of, as Elasticsearch
/// 9.2 installs them (x-pack/plugin/core/template-resources/src/main/resources/*.json; only
/// what matters here: their explicit mappings; ecs@mappings has dynamic templates only).
fn builtin_component_templates() -> Vec<(&'static str, Value)> {
    let ds = |kind: &str| {
        json!({"template": {"mappings": {"date_detection": false, "properties": {
            "@timestamp": {"type": "date"},
            "data_stream.type": {"type": "constant_keyword", "value": kind},
            "data_stream.dataset": {"type": "constant_keyword"},
            "data_stream.namespace": {"type": "constant_keyword"}}}},
            "_meta": {"managed": true}})
    };
    vec![
        ("logs@mappings", ds("logs")),
        ("metrics@mappings", ds("metrics")),
        (
            "logs@settings",
            json!({"template": {"settings": {"index": {"lifecycle": {"name": "logs@lifecycle"},
                "codec": "best_compression", "mapping": {"ignore_malformed": true}}},
                "data_stream_options": {"failure_store": {"enabled": true}}},
                "_meta": {"managed": true}}),
        ),
        (
            "metrics@settings",
            json!({"template": {"settings": {"index": {"lifecycle": {"name": "metrics@lifecycle"}}}},
                "_meta": {"managed": true}}),
        ),
        (
            "ecs@mappings",
            json!({"template": {"mappings": {"dynamic_templates": [
                {"ecs_message_match_only_text": {"path_match": ["message", "*.message"],
                 "unmatch_mapping_type": "object", "mapping": {"type": "match_only_text"}}}]}},
                "_meta": {"managed": true}}),
        ),
    ]
}

/// Parameters accepted at the root of a mapping: the root object mapper's own
/// (`RootObjectMapper.processField`, `ObjectMapper.parseObjectOrDocumentTypeProperties`) and
/// the metadata field mappers (`IndicesModule.getMetadataMappers`), plus `_meta`.
const ROOT_MAPPING_PARAMETERS: &[&str] = &[
    "properties",
    "dynamic",
    "enabled",
    "subobjects",
    "dynamic_templates",
    "date_detection",
    "numeric_detection",
    "dynamic_date_formats",
    "date_formats",
    "runtime",
    "_meta",
    "_source",
    "_routing",
    "_field_names",
    "_data_stream_timestamp",
    "_doc_count",
    "_tier",
    "_ignored",
    "_ignored_source",
    "_index",
    "_id",
    "_version",
    "_seq_no",
    "_nested_path",
];

/// The 400 Elasticsearch gives for unknown root mapping parameters of `mappings`, if any.
/// The remaining entries are listed as ` [key : value]` (`MappingParser.getRemainingFields`).
fn root_mapping_error(mappings: &Value) -> Option<String> {
    let m = mappings.as_object()?;
    let rest: Vec<String> = m
        .iter()
        .filter(|(k, _)| !ROOT_MAPPING_PARAMETERS.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            format!(" [{k} : {v}]")
        })
        .collect();
    if rest.is_empty() {
        None
    } else {
        Some(format!(
            "Failed to parse mapping: Root mapping definition has unsupported parameters: {}",
            rest.join("")
        ))
    }
}

/// Leaf and object fields of a mapping's `properties`, flattened (`a.b` → type).
fn flatten(props: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Some(m) = props.as_object() else { return };
    for (k, v) in m {
        let name = format!("{prefix}{k}");
        if let Some(sub) = v.get("properties") {
            out.insert(name.clone(), "object".into());
            flatten(sub, &format!("{name}."), out);
        } else {
            let typ = v["type"].as_str().unwrap_or("object").to_string();
            out.insert(name, typ);
        }
    }
}

impl State {
    fn component(&self, name: &str) -> Option<&Value> {
        self.es.get(&format!("/_component_template/{name}"))
    }

    /// The index template a new data stream `name` gets: the matching one with a
    /// `data_stream` object and the highest priority (`MetadataIndexTemplateService.findV2Template`).
    fn template_for(&self, name: &str) -> Option<(String, Value)> {
        self.es
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("/_index_template/")
                    .map(|n| (n.to_string(), v.clone()))
            })
            .filter(|(_, t)| {
                t["index_patterns"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p.as_str().is_some_and(|p| wildcard_match(p, name)))
                })
            })
            .max_by_key(|(_, t)| t["priority"].as_i64().unwrap_or(0))
    }

    /// The fields a new backing index of `template` maps: its component templates in order,
    /// then its own `template.mappings` (`MetadataIndexTemplateService.collectMappings`).
    fn composed_fields(&self, template: &Value) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for c in template["composed_of"].as_array().into_iter().flatten() {
            if let Some(ct) = c.as_str().and_then(|c| self.component(c)) {
                flatten(&ct["template"]["mappings"]["properties"], "", &mut out);
            }
        }
        flatten(
            &template["template"]["mappings"]["properties"],
            "",
            &mut out,
        );
        out
    }

    /// Create data stream `name` from its index template, as `PUT _data_stream/<name>` or the
    /// first document written to it do. Err: the status and body Elasticsearch answers.
    pub fn create_data_stream(&mut self, name: &str) -> Result<(), (u16, Value)> {
        if self.data_streams.contains_key(name) {
            return Err(es_error(
                400,
                "resource_already_exists_exception",
                &format!("data_stream [{name}] already exists"),
            ));
        }
        let Some((tname, t)) = self
            .template_for(name)
            .filter(|(_, t)| t.get("data_stream").is_some())
        else {
            return Err(es_error(
                400,
                "illegal_argument_exception",
                &format!("no matching index template found for data stream [{name}]"),
            ));
        };
        let fields = self.composed_fields(&t);
        self.data_streams.insert(
            name.to_string(),
            DataStream {
                template: tname,
                generation: 1,
                fields,
                docs: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// Backing indices and mapped fields of every data stream matching one of `targets`.
    fn resolve(&self, targets: &str) -> (Vec<String>, BTreeMap<String, String>) {
        let mut indices = Vec::new();
        let mut fields = BTreeMap::new();
        for (name, ds) in &self.data_streams {
            if targets.split(',').any(|p| wildcard_match(p, name)) {
                indices.push(ds.backing_index(name));
                fields.extend(ds.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        (indices, fields)
    }
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
        let mut initial = State {
            inference_present: true,
            ..Default::default()
        };
        for (name, body) in builtin_component_templates() {
            initial
                .es
                .insert(format!("/_component_template/{name}"), body);
        }
        let state = Arc::new(Mutex::new(initial));
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
            201 => "Created",
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
    let m = req.method.as_str();
    // ML writes check the licence, GETs do not; inference GETs never do (see the header).
    if st.basic_licence && path.starts_with("/_ml/") && m != "GET" {
        return es_error(
            403,
            "security_exception",
            "current license is non-compliant for [ml]",
        );
    }
    if path == "/_xpack" && m == "GET" {
        if st.no_xpack {
            return es_error(
                404,
                "illegal_argument_exception",
                "no handler found for uri [/_xpack] and method [GET]",
            );
        }
        let (typ, ml) = if st.basic_licence {
            ("basic", false)
        } else {
            ("trial", true)
        };
        return (
            200,
            json!({"license": {"uid": "standin", "type": typ, "mode": typ, "status": "active"},
                   "features": {"ml": {"available": ml, "enabled": true}}}),
        );
    }
    if let Some(r) = data_stream_api(st, req) {
        return r;
    }
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
                        if !states {
                            if let Err(e) = datafeed_can_start(st, &base) {
                                return e;
                            }
                        }
                        let map = if states {
                            &mut st.job_state
                        } else {
                            &mut st.datafeed_state
                        };
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
            if *prefix == "/_component_template/" || *prefix == "/_index_template/" {
                if let Some(e) = root_mapping_error(&body["template"]["mappings"]) {
                    return es_error(400, "mapper_parsing_exception", &e);
                }
            }
            if *prefix == "/_index_template/" {
                let optional: Vec<&str> = body["ignore_missing_component_templates"]
                    .as_array()
                    .map(|l| l.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let missing: Vec<&str> = body["composed_of"]
                    .as_array()
                    .map(|l| l.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| st.component(c).is_none() && !optional.contains(c))
                    .collect();
                if !missing.is_empty() {
                    return es_error(
                        400,
                        "invalid_index_template_exception",
                        &format!(
                            "index_template [{name}] invalid, cause [index template [{name}] \
                             specifies component templates [{}] that do not exist]",
                            missing.join(", ")
                        ),
                    );
                }
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
        "DELETE" if *prefix == "/_component_template/" => {
            if !st.es.contains_key(&path) {
                return es_error(
                    404,
                    "resource_not_found_exception",
                    &format!("{name} not found"),
                );
            }
            let users: Vec<String> = st
                .es
                .iter()
                .filter_map(|(k, v)| k.strip_prefix("/_index_template/").map(|n| (n, v)))
                .filter(|(_, t)| {
                    let required = t["composed_of"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|c| c == name.as_str()));
                    let optional = t["ignore_missing_component_templates"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|c| c == name.as_str()));
                    required && !optional
                })
                .map(|(n, _)| n.to_string())
                .collect();
            if !users.is_empty() {
                return es_error(
                    400,
                    "illegal_argument_exception",
                    &format!(
                        "component templates [{name}] cannot be removed as they are still in use \
                         by index templates [{}]",
                        users.join(", ")
                    ),
                );
            }
            st.es.remove(&path);
            (200, json!({"acknowledged": true}))
        }
        _ => es_error(405, "illegal_argument_exception", "method not allowed"),
    }
}

/// The fields a job reads (`Job.allInputFields`: detector, categorisation and summary count
/// fields, influencers, the time field; not `mlcategory`).
fn job_input_fields(job: &Value) -> Vec<String> {
    let ac = &job["analysis_config"];
    let mut out = std::collections::BTreeSet::new();
    for d in ac["detectors"].as_array().into_iter().flatten() {
        for k in [
            "field_name",
            "by_field_name",
            "over_field_name",
            "partition_field_name",
        ] {
            if let Some(f) = d[k].as_str() {
                out.insert(f.to_string());
            }
        }
    }
    for k in ["categorization_field_name", "summary_count_field_name"] {
        if let Some(f) = ac[k].as_str() {
            out.insert(f.to_string());
        }
    }
    for f in ac["influencers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        out.insert(f.to_string());
    }
    out.insert(
        job["data_description"]["time_field"]
            .as_str()
            .unwrap_or("time")
            .to_string(),
    );
    out.remove("mlcategory");
    out.into_iter().collect()
}

/// `_start`'s data extractor check (`TimeBasedExtractedFields.build`).
fn datafeed_can_start(st: &State, feed_path: &str) -> Result<(), (u16, Value)> {
    let feed = &st.es[feed_path];
    let job_id = feed["job_id"].as_str().unwrap_or("");
    let job = st
        .es
        .get(&format!("/_ml/anomaly_detectors/{job_id}"))
        .cloned()
        .unwrap_or(Value::Null);
    let targets: Vec<&str> = feed["indices"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (_, mapped) = st.resolve(&targets.join(","));
    match job_input_fields(&job)
        .into_iter()
        .find(|f| !mapped.contains_key(f))
    {
        Some(f) => Err(es_error(
            400,
            "illegal_argument_exception",
            &format!("cannot retrieve field [{f}] because it has no mappings"),
        )),
        None => Ok(()),
    }
}

/// Data streams, documents, field caps and rollover; `None` for other paths.
fn data_stream_api(st: &mut State, req: &Recorded) -> Option<(u16, Value)> {
    let path = req.path();
    let m = req.method.as_str();
    if let Some(name) = path.strip_prefix("/_data_stream/") {
        return Some(match m {
            "PUT" => match st.create_data_stream(name) {
                Ok(()) => (200, json!({"acknowledged": true})),
                Err(e) => e,
            },
            "GET" => {
                let list: Vec<Value> = st
                    .data_streams
                    .iter()
                    .filter(|(n, _)| name.split(',').any(|p| wildcard_match(p, n)))
                    .map(|(n, ds)| {
                        json!({"name": n, "generation": ds.generation, "template": ds.template,
                               "indices": [{"index_name": ds.backing_index(n)}]})
                    })
                    .collect();
                (200, json!({ "data_streams": list }))
            }
            _ => es_error(405, "illegal_argument_exception", "method not allowed"),
        });
    }
    let (target, rest) = path.strip_prefix('/')?.split_once('/')?;
    if target.starts_with('_') {
        return None;
    }
    if rest == "_field_caps" {
        let fields: Vec<String> = req
            .target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("fields="))
            .map(|v| v.split(',').map(|s| s.replace("%40", "@")).collect())
            .unwrap_or_default();
        let (indices, mapped) = st.resolve(target);
        let mut out = serde_json::Map::new();
        for f in fields {
            if let Some(typ) = mapped.get(&f) {
                out.insert(
                    f,
                    json!({ typ.clone(): {"type": typ, "searchable": true, "aggregatable": typ != "match_only_text" && typ != "object"} }),
                );
            }
        }
        return Some((200, json!({"indices": indices, "fields": out})));
    }
    if rest == "_rollover" && m == "POST" {
        let Some(tname) = st.data_streams.get(target).map(|d| d.template.clone()) else {
            return Some(es_error(
                404,
                "index_not_found_exception",
                &format!("no such index [{target}]"),
            ));
        };
        // The new backing index takes the index template as it is now.
        let fields = st
            .es
            .get(&format!("/_index_template/{tname}"))
            .cloned()
            .map(|t| st.composed_fields(&t))
            .unwrap_or_default();
        let ds = st.data_streams.get_mut(target).expect("checked above");
        let old = ds.backing_index(target);
        ds.generation += 1;
        ds.fields = fields;
        return Some((
            200,
            json!({"acknowledged": true, "old_index": old, "new_index": ds.backing_index(target), "rolled_over": true}),
        ));
    }
    if let Some(id) = rest.strip_prefix("_create/") {
        if m != "PUT" && m != "POST" {
            return None;
        }
        if !st.data_streams.contains_key(target) {
            if let Err(e) = st.create_data_stream(target) {
                return Some(e);
            }
        }
        let doc = serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null);
        let ds = st.data_streams.get_mut(target).expect("created above");
        if ds.docs.contains_key(id) {
            return Some((
                409,
                json!({"error": {"root_cause": [{"type": "version_conflict_engine_exception",
                    "reason": format!("[{id}]: version conflict, document already exists (current version [1])")}],
                    "type": "version_conflict_engine_exception",
                    "reason": format!("[{id}]: version conflict, document already exists (current version [1])")},
                    "status": 409}),
            ));
        }
        ds.docs.insert(id.to_string(), doc);
        let index = ds.backing_index(target);
        return Some((
            201,
            json!({"_index": index, "_id": id, "_version": 1, "result": "created"}),
        ));
    }
    None
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
