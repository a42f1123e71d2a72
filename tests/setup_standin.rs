//! `oxibeat setup` against the Elasticsearch/Kibana stand-in: requests, their order and
//! bodies, idempotence, and the printed lines for every kind of server error.

mod support {
    pub mod stack_standin;
}

use base64::Engine;
use oxibeat::config::{typed, Config};
use oxibeat::setup::{self, Kind, Selection, ASSETS};
use serde_json::Value;
use support::stack_standin::{Recorded, Standin};

fn config(es: &Standin, kb: &Standin, extra: &str) -> Config {
    let text = format!(
        "[output.elasticsearch]\nhosts = [\"{}\"]\n{extra}\n[setup.kibana]\nhost = \"{}\"\n",
        es.url(),
        kb.url()
    );
    let tree: toml::Value = toml::from_str(&text).expect("test config is TOML");
    typed(tree, "").expect("test config is valid")
}

async fn run(cfg: &Config, sel: Selection) -> (setup::Report, String) {
    let mut out = Vec::new();
    let report = setup::run(cfg, &sel, &mut out).await.expect("setup runs");
    (report, String::from_utf8(out).expect("utf-8 output"))
}

fn writes(reqs: &[Recorded]) -> Vec<String> {
    reqs.iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect()
}

fn pos(list: &[String], item: &str) -> usize {
    list.iter()
        .position(|x| x == item)
        .unwrap_or_else(|| panic!("{item} not requested; requests: {list:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_creates_everything_in_order_with_the_asset_bodies() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "");
    let (report, out) = run(&cfg, Selection::default()).await;
    assert!(!report.failed(), "{out}");

    // One line per asset, plus the connection and inference checks.
    for a in ASSETS.iter().filter(|a| a.kind != Kind::KibanaObjects) {
        let line = format!("{} {}: created", a.kind.label(), a.name);
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
    assert!(out.contains("Elasticsearch http://127.0.0.1"), "{out}");
    assert!(out.contains("version 9.2.1"), "{out}");
    assert!(
        out.contains("inference endpoint .elser-2-elasticsearch: ok"),
        "{out}"
    );
    assert!(
        out.contains("ML job oxibeat-log-rate: created, opened"),
        "{out}"
    );
    assert!(out.contains("licence trial: ok (active;"), "{out}");
    // No data stream exists yet: the datafeeds wait instead of failing on _start.
    for feed in [
        "datafeed-oxibeat-log-rate",
        "datafeed-oxibeat-log-categories",
        "datafeed-oxibeat-host-metrics",
    ] {
        let line = format!("ML datafeed {feed}: created, start pending: no data yet");
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
    assert!(
        out.contains("Kibana dashboard oxibeat-dashboard-logs ([oxibeat] Logs overview): created"),
        "{out}"
    );

    let reqs = es.requests();
    let w = writes(&reqs);
    // Policies and pipelines before the templates naming them; components before index templates.
    assert!(pos(&w, "PUT /_ilm/policy/oxibeat") < pos(&w, "PUT /_index_template/oxibeat-logs"));
    assert!(
        pos(&w, "PUT /_ingest/pipeline/oxibeat-logs")
            < pos(&w, "PUT /_index_template/oxibeat-logs")
    );
    assert!(
        pos(&w, "PUT /_component_template/oxibeat-logs-mappings")
            < pos(&w, "PUT /_index_template/oxibeat-logs")
    );
    // Job created and opened before its datafeed; no start without data.
    for job in [
        "oxibeat-log-rate",
        "oxibeat-log-categories",
        "oxibeat-host-metrics",
    ] {
        let put_job = pos(&w, &format!("PUT /_ml/anomaly_detectors/{job}"));
        let put_feed = pos(&w, &format!("PUT /_ml/datafeeds/datafeed-{job}"));
        let open = pos(&w, &format!("POST /_ml/anomaly_detectors/{job}/_open"));
        assert!(put_job < open && open < put_feed, "{w:#?}");
        assert!(!w.iter().any(|x| x.ends_with("/_start")), "{w:#?}");
    }
    // Bodies: the asset file plus the content hash.
    for a in ASSETS.iter().filter(|a| a.kind != Kind::KibanaObjects) {
        let r = reqs
            .iter()
            .find(|r| r.method == "PUT" && r.path() == a.kind.put_path(a.name))
            .unwrap_or_else(|| panic!("no PUT for {}", a.name));
        let mut sent = r.json();
        let want = a.json().expect("asset JSON");
        match a.kind {
            Kind::IlmPolicy => {
                assert_eq!(
                    sent["policy"]["_meta"]["oxibeat"]["hash"],
                    Value::from(a.hash())
                );
                sent["policy"]["_meta"]["oxibeat"]
                    .as_object_mut()
                    .expect("meta")
                    .remove("hash");
            }
            Kind::MlJob => {
                assert_eq!(
                    sent["custom_settings"]["oxibeat_hash"],
                    Value::from(a.hash())
                );
                sent["custom_settings"]
                    .as_object_mut()
                    .expect("settings")
                    .remove("oxibeat_hash");
            }
            Kind::Datafeed => {}
            _ => {
                assert_eq!(sent["_meta"]["oxibeat"]["hash"], Value::from(a.hash()));
                sent["_meta"]["oxibeat"]
                    .as_object_mut()
                    .expect("meta")
                    .remove("hash");
            }
        }
        assert_eq!(sent, want, "body of {}", a.name);
        assert_eq!(r.header("authorization"), None);
    }

    // Kibana: one import, overwrite=true, kbn-xsrf, the NDJSON as a multipart file.
    let kreqs = kb.requests();
    let import: Vec<_> = kreqs
        .iter()
        .filter(|r| r.path() == "/api/saved_objects/_import")
        .collect();
    assert_eq!(import.len(), 1);
    assert!(import[0].target.contains("overwrite=true"));
    assert!(import[0].header("kbn-xsrf").is_some());
    assert!(import[0]
        .header("content-type")
        .is_some_and(|c| c.starts_with("multipart/form-data")));
    let body = String::from_utf8_lossy(&import[0].body);
    assert!(body.contains("filename=\"oxibeat.ndjson\""));
    assert!(body.contains("\"id\":\"oxibeat-dashboard-anomalies\""));
    assert!(
        kreqs.iter().all(|r| !r.path().starts_with("/_")),
        "no ES calls to Kibana"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_changes_nothing_and_says_so() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "");
    // Data streams exist (Logstash wrote), so the first run also starts the datafeeds.
    let im = Selection {
        index_management: true,
        ..Default::default()
    };
    run(&cfg, im).await;
    es.with(|s| {
        s.create_data_stream("logs-oxibeat.app-default")
            .and_then(|_| s.create_data_stream("metrics-oxibeat.system-default"))
    })
    .expect("data streams");
    let (r1, out) = run(&cfg, Selection::default()).await;
    assert!(!r1.failed(), "{out}");
    assert_eq!(out.matches(", started").count(), 3, "{out}");
    es.clear_requests();
    let (r2, out) = run(&cfg, Selection::default()).await;
    assert!(!r2.failed(), "{out}");
    for a in ASSETS.iter().filter(|a| a.kind != Kind::KibanaObjects) {
        let line = format!("{} {}: unchanged\n", a.kind.label(), a.name);
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
    assert!(!out.contains("opened") && !out.contains("started"), "{out}");
    let w = writes(&es.requests());
    assert!(w.is_empty(), "a second run must not write: {w:#?}");
    // Kibana objects are overwritten and reported as such.
    assert!(
        out.contains("Kibana dashboard oxibeat-dashboard-web ([oxibeat] Web traffic): updated"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_asset_is_updated() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "");
    run(&cfg, Selection::default()).await;
    // An older version on the server: another hash.
    es.with(|s| {
        let t =
            s.es.get_mut("/_index_template/oxibeat-logs")
                .expect("stored");
        t["_meta"]["oxibeat"]["hash"] = Value::from("older");
    });
    es.clear_requests();
    let sel = Selection {
        index_management: true,
        ..Default::default()
    };
    let (r, out) = run(&cfg, sel).await;
    assert!(!r.failed(), "{out}");
    assert!(
        out.contains("index template oxibeat-logs: updated"),
        "{out}"
    );
    assert!(
        out.contains("index template oxibeat-metrics: unchanged"),
        "{out}"
    );
    assert_eq!(
        writes(&es.requests()),
        ["PUT /_index_template/oxibeat-logs"]
    );
    // Only what was selected: no ML, pipelines or Kibana.
    assert!(
        !out.contains("ML job") && !out.contains("ingest pipeline") && !out.contains("Kibana"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_body_fails_with_the_server_reason_and_the_rest_goes_on() {
    let es = Standin::start();
    let kb = Standin::start();
    es.with(|s| {
        s.reject.push((
            "/_component_template/oxibeat-logs-mappings".into(),
            "Failed to parse mapping: unknown parameter [foo] on mapper [url.original]".into(),
        ))
    });
    let cfg = config(&es, &kb, "");
    let (r, out) = run(&cfg, Selection::default()).await;
    assert!(r.failed());
    // The index template composed of it fails too, as on the real server.
    assert_eq!(r.failures(), 2, "{out}");
    assert!(out.contains("component template oxibeat-logs-mappings: failed: HTTP 400 mapper_parsing_exception: Failed to parse mapping: unknown parameter [foo] on mapper [url.original]"), "{out}");
    assert!(out.contains("index template oxibeat-logs: failed: HTTP 400 invalid_index_template_exception: index_template [oxibeat-logs] invalid, cause [index template [oxibeat-logs] specifies component templates [oxibeat-logs-mappings] that do not exist]"), "{out}");
    assert!(
        out.contains("index template oxibeat-metrics: created"),
        "{out}"
    );
    assert!(
        out.contains("ML job oxibeat-host-metrics: created"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_stop_early_without_leaking_the_password() {
    let es = Standin::start();
    let kb = Standin::start();
    for s in [&es, &kb] {
        s.with(|st| st.expected_auth = Some("Basic right".into()));
    }
    let cfg = config(
        &es,
        &kb,
        "username = \"elastic\"\npassword = \"hunter2-secret\"",
    );
    let (r, out) = run(&cfg, Selection::default()).await;
    assert!(r.failed());
    assert!(out.contains("Elasticsearch http://127.0.0.1"), "{out}");
    assert!(out.contains("failed: HTTP 401 security_exception"), "{out}");
    assert!(out.contains("credentials were rejected"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    // After a failed connection check, no asset request goes to Elasticsearch.
    let paths: Vec<String> = es.requests().iter().map(|r| r.path().to_string()).collect();
    assert_eq!(paths, ["/"]);
    // Kibana is tried (it has its own line) and fails the same way.
    assert!(out.contains("Kibana http://127.0.0.1"), "{out}");
    assert!(out.contains("HTTP 401"), "{out}");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("elastic:hunter2-secret")
    );
    assert_eq!(
        es.requests()[0].header("authorization"),
        Some(basic.as_str())
    );
    // As in Beats, Kibana gets the Elasticsearch credentials when it has none of its own.
    assert!(kb
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some(basic.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_and_correct_credentials_work() {
    let es = Standin::start();
    let kb = Standin::start();
    let key = format!(
        "ApiKey {}",
        base64::engine::general_purpose::STANDARD.encode("key-id:key-secret")
    );
    for s in [&es, &kb] {
        s.with(|st| st.expected_auth = Some(key.clone()));
    }
    let cfg = config(&es, &kb, "api_key = \"key-id:key-secret\"");
    let (r, out) = run(&cfg, Selection::default()).await;
    assert!(!r.failed(), "{out}");
    assert!(!out.contains("key-secret"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basic_licence_skips_ml_and_semantic_search_without_failing() {
    let es = Standin::start();
    let kb = Standin::start();
    es.with(|s| s.basic_licence = true);
    let cfg = config(&es, &kb, "");
    let (r, out) = run(&cfg, Selection::default()).await;
    assert!(!r.failed(), "a basic licence is not a failure:\n{out}");
    assert!(out.contains("licence basic: ok (active; machine learning: not available; semantic search (inference): not available)"), "{out}");
    // Templates and pipelines do not need a licence.
    assert!(
        out.contains("index template oxibeat-logs: created"),
        "{out}"
    );
    let ml: Vec<&str> = out.lines().filter(|l| l.starts_with("ML ")).collect();
    assert_eq!(ml.len(), 6, "{out}");
    for l in ml {
        assert!(l.contains(": skipped (licence basic): anomaly detection needs a Platinum or Enterprise licence or the 30-day trial"), "{l}");
        assert!(
            l.contains("POST _license/start_trial?acknowledge=true")
                && l.contains("oxibeat setup --ml"),
            "{l}"
        );
    }
    assert!(
        out.contains("component template oxibeat-logs-semantic: skipped (licence basic): semantic search needs inference on the .elser-2-elasticsearch endpoint, which an Enterprise licence or the 30-day trial allows"),
        "{out}"
    );
    // The inference endpoint answers GETs on any licence, so it is not asked: it would prove
    // nothing. No ML call and no semantic template.
    let reqs = es.requests();
    assert!(
        !reqs.iter().any(|r| r.path().starts_with("/_ml/")
            || r.path().starts_with("/_inference/")
            || (r.method == "PUT" && r.path() == "/_component_template/oxibeat-logs-semantic")),
        "{:#?}",
        writes(&reqs)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_trial_the_semantic_template_is_removed_and_logs_streams_roll_over() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "");
    let im = Selection {
        index_management: true,
        ..Default::default()
    };
    let (r, out) = run(&cfg, im).await;
    assert!(!r.failed(), "{out}");
    // Data arrived during the trial: the backing index maps the semantic_text field.
    es.with(|s| {
        s.create_data_stream("logs-oxibeat.app-default")
            .expect("data stream");
        s.create_data_stream("metrics-oxibeat.system-default")
            .expect("data stream");
        assert_eq!(
            s.data_streams["logs-oxibeat.app-default"].fields["oxibeat.semantic_message"],
            "semantic_text"
        );
        s.basic_licence = true;
    });
    es.clear_requests();
    let (r, out) = run(&cfg, im).await;
    assert!(!r.failed(), "{out}");
    assert!(out.contains("component template oxibeat-logs-semantic: removed: the licence (basic) no longer allows semantic_text inference, so warn/error lines would be rejected; rolled over 1 data stream(s): logs-oxibeat.app-default"), "{out}");
    assert_eq!(
        writes(&es.requests()),
        [
            "DELETE /_component_template/oxibeat-logs-semantic",
            "POST /logs-oxibeat.app-default/_rollover"
        ]
    );
    es.with(|s| {
        let ds = &s.data_streams["logs-oxibeat.app-default"];
        assert_eq!(ds.generation, 2);
        assert!(
            !ds.fields.contains_key("oxibeat.semantic_message"),
            "{:?}",
            ds.fields
        );
    });
    // Nothing left to remove: a plain skip from now on.
    let (_, out) = run(&cfg, im).await;
    assert!(
        out.contains("component template oxibeat-logs-semantic: skipped (licence basic)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_search_can_be_switched_off() {
    let es = Standin::start();
    let kb = Standin::start();
    let text = format!(
        "[output.elasticsearch]\nhosts = [\"{}\"]\n[setup.kibana]\nhost = \"{}\"\n[setup.semantic]\nenabled = false\n",
        es.url(),
        kb.url()
    );
    let cfg: Config = typed(toml::from_str(&text).expect("toml"), "").expect("config");
    let im = Selection {
        index_management: true,
        ..Default::default()
    };
    let (r, out) = run(&cfg, im).await;
    assert!(!r.failed(), "{out}");
    assert!(out.contains("component template oxibeat-logs-semantic: skipped (setup.semantic.enabled is false): semantic search is off"), "{out}");
    assert!(!es
        .requests()
        .iter()
        .any(|r| r.path().contains("semantic") || r.path().starts_with("/_inference")));
    assert!(
        out.contains("index template oxibeat-logs: created"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datafeeds_start_once_their_data_streams_map_the_job_fields() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "");
    let (r, out) = run(&cfg, Selection::default()).await;
    assert!(!r.failed(), "{out}");
    let ml = Selection {
        ml: true,
        ..Default::default()
    };
    // Logstash writes its first log document: the data stream is created from the index
    // template (as PUT _data_stream does). The metrics stream does not exist yet.
    es.with(|s| s.create_data_stream("logs-oxibeat.nginx-default"))
        .expect("logs data stream");
    let (r, out) = run(&cfg, ml).await;
    assert!(!r.failed(), "{out}");
    assert!(
        out.contains("ML datafeed datafeed-oxibeat-log-rate: unchanged, started"),
        "{out}"
    );
    // The categorisation job reads `message`, mapped explicitly (not only by a dynamic
    // template when the first document has one).
    assert!(
        out.contains("ML datafeed datafeed-oxibeat-log-categories: unchanged, started"),
        "{out}"
    );
    assert!(out.contains("ML datafeed datafeed-oxibeat-host-metrics: unchanged, start pending: no data yet (nothing matches metrics-oxibeat.*-*); run oxibeat setup --ml again once data arrives"), "{out}");
    es.with(|s| s.create_data_stream("metrics-oxibeat.system-default"))
        .expect("metrics data stream");
    let (r, out) = run(&cfg, ml).await;
    assert!(!r.failed(), "{out}");
    assert!(
        out.contains("ML datafeed datafeed-oxibeat-host-metrics: unchanged, started"),
        "{out}"
    );
    assert!(
        out.contains("ML datafeed datafeed-oxibeat-log-rate: unchanged\n"),
        "already started: no second start\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_xpack_info_is_tried_as_licensed() {
    let es = Standin::start();
    let kb = Standin::start();
    es.with(|s| s.no_xpack = true);
    let cfg = config(&es, &kb, "");
    let (r, out) = run(&cfg, Selection::default()).await;
    assert!(!r.failed(), "{out}");
    assert!(
        out.contains("licence unknown: ok (not reported (HTTP 404"),
        "{out}"
    );
    assert!(
        out.contains("ML job oxibeat-log-rate: created, opened"),
        "{out}"
    );
}

/// The stand-in's rules answer as Elasticsearch does (the citations are in its header).
#[test]
fn standin_rules_answer_like_elasticsearch() {
    use std::io::{Read, Write};
    let es = Standin::start();
    let call = |method: &str, path: &str, body: &str| -> (u16, Value) {
        let mut c = std::net::TcpStream::connect(es.addr).expect("connect");
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut resp = String::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = c.read(&mut buf).expect("read");
            resp.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some((head, b)) = resp.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if b.len() >= len {
                    let status = head[9..12].parse().expect("status");
                    return (status, serde_json::from_str(b).unwrap_or(Value::Null));
                }
            }
            if n == 0 {
                panic!("closed: {resp}");
            }
        }
    };
    let (s, b) = call(
        "PUT",
        "/_component_template/x",
        r#"{"template":{"mappings":{"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":"keyword"}}}}}}}"#,
    );
    assert_eq!(s, 400);
    assert_eq!(b["error"]["reason"], "Failed to parse mapping: Root mapping definition has unsupported parameters:  [type : object]");
    let (s, b) = call(
        "PUT",
        "/_index_template/t",
        r#"{"index_patterns":["t-*"],"data_stream":{},"composed_of":["logs@mappings","nope","opt"],"ignore_missing_component_templates":["opt"]}"#,
    );
    assert_eq!(s, 400);
    assert_eq!(b["error"]["type"], "invalid_index_template_exception");
    assert!(
        b["error"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("specifies component templates [nope] that do not exist"),
        "{b}"
    );
    let (s, _) = call("PUT", "/_component_template/nope", r#"{"template":{}}"#);
    assert_eq!(s, 200);
    let (s, _) = call(
        "PUT",
        "/_index_template/t",
        r#"{"index_patterns":["t-*"],"data_stream":{},"composed_of":["logs@mappings","nope","opt"],"ignore_missing_component_templates":["opt"]}"#,
    );
    assert_eq!(s, 200);
    let (s, b) = call("DELETE", "/_component_template/nope", "");
    assert_eq!(s, 400, "{b}");
    // Creating what exists: 400 for a data stream, 409 for a document id.
    assert_eq!(call("PUT", "/_data_stream/t-a", "").0, 200);
    let (s, b) = call("PUT", "/_data_stream/t-a", "");
    assert_eq!(
        (s, b["error"]["type"].clone()),
        (400, Value::from("resource_already_exists_exception"))
    );
    assert_eq!(call("PUT", "/t-b/_create/id1", r#"{"message":"x"}"#).0, 201);
    let (s, b) = call("PUT", "/t-b/_create/id1", r#"{"message":"x"}"#);
    assert_eq!(s, 409);
    assert_eq!(b["error"]["type"], "version_conflict_engine_exception");
    // Field caps list what the template maps.
    let (s, b) = call(
        "GET",
        "/t-*/_field_caps?fields=@timestamp,data_stream.dataset,message",
        "",
    );
    assert_eq!(s, 200);
    assert!(
        b["fields"].get("@timestamp").is_some() && b["fields"].get("message").is_none(),
        "{b}"
    );
    assert_eq!(b["indices"].as_array().map(Vec::len), Some(2));
    // Basic licence: ML writes 403, inference GETs still answer.
    es.with(|s| s.basic_licence = true);
    let (s, b) = call(
        "PUT",
        "/_ml/anomaly_detectors/j",
        r#"{"analysis_config":{},"data_description":{}}"#,
    );
    assert_eq!(
        (s, b["error"]["reason"].clone()),
        (
            403,
            Value::from("current license is non-compliant for [ml]")
        )
    );
    assert_eq!(call("GET", "/_inference/.elser-2-elasticsearch", "").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_inference_endpoint_is_reported() {
    let es = Standin::start();
    let kb = Standin::start();
    es.with(|s| s.inference_present = false);
    let cfg = config(&es, &kb, "");
    let sel = Selection {
        index_management: true,
        ..Default::default()
    };
    let (r, out) = run(&cfg, sel).await;
    assert_eq!(r.failures(), 2, "{out}");
    assert!(
        out.contains("inference endpoint .elser-2-elasticsearch: failed: HTTP 404"),
        "{out}"
    );
    assert!(out.contains("oxibeat.semantic_message"), "{out}");
    assert!(
        out.contains("component template oxibeat-logs-semantic: failed: not loaded"),
        "{out}"
    );
    assert!(
        out.contains("index template oxibeat-logs: created"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ml_job_with_another_configuration_is_not_silently_kept() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "");
    let ml = Selection {
        ml: true,
        ..Default::default()
    };
    run(&cfg, ml).await;
    es.with(|s| {
        let j =
            s.es.get_mut("/_ml/anomaly_detectors/oxibeat-log-rate")
                .expect("job");
        j["custom_settings"]["oxibeat_hash"] = Value::from("older");
    });
    let (r, out) = run(&cfg, ml).await;
    assert_eq!(r.failures(), 1, "{out}");
    assert!(
        out.contains(
            "ML job oxibeat-log-rate: failed: the job exists with a different configuration"
        ),
        "{out}"
    );
    assert!(
        out.contains("DELETE _ml/anomaly_detectors/oxibeat-log-rate"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_only_touches_kibana() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "");
    let sel = Selection {
        dashboards: true,
        ..Default::default()
    };
    let (r, out) = run(&cfg, sel).await;
    assert!(!r.failed(), "{out}");
    assert!(
        es.requests().is_empty(),
        "no Elasticsearch call for --dashboards"
    );
    let n = ASSETS
        .iter()
        .find(|a| a.kind == Kind::KibanaObjects)
        .map(|a| a.body.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    assert_eq!(out.lines().count(), n, "{out}");
    assert!(out.lines().all(|l| l.ends_with(": created")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_elasticsearch_is_one_clear_failure() {
    let kb = Standin::start();
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let text = format!(
        "[output.elasticsearch]\nhosts = [\"127.0.0.1:{port}\"]\n[setup.kibana]\nhost = \"{}\"\n",
        kb.url()
    );
    let cfg: Config = typed(toml::from_str(&text).expect("toml"), "").expect("config");
    let sel = Selection {
        pipelines: true,
        ..Default::default()
    };
    let (r, out) = run(&cfg, sel).await;
    assert_eq!(r.failures(), 1, "{out}");
    assert!(out.contains("cannot reach Elasticsearch"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_name_the_key() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "ssl.verification_mode = \"certificate\"");
    let mut out = Vec::new();
    let e = setup::run(&cfg, &Selection::default(), &mut out)
        .await
        .expect_err("certificate mode is refused")
        .to_string();
    assert!(
        e.contains("output.elasticsearch.ssl.verification_mode"),
        "{e}"
    );
    assert!(es.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kibana_space_and_own_credentials() {
    let es = Standin::start();
    let kb = Standin::start();
    let kb_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("kbuser:kbpass")
    );
    kb.with(|s| s.expected_auth = Some(kb_auth.clone()));
    let text = format!(
        "[output.elasticsearch]\nhosts = [\"{}\"]\n[setup.kibana]\nhost = \"{}\"\nusername = \"kbuser\"\npassword = \"kbpass\"\nspace.id = \"ops\"\n",
        es.url(),
        kb.url()
    );
    let cfg: Config = typed(toml::from_str(&text).expect("toml"), "").expect("config");
    let sel = Selection {
        dashboards: true,
        ..Default::default()
    };
    let (r, out) = run(&cfg, sel).await;
    assert!(!r.failed(), "{out}");
    let paths: Vec<String> = kb.requests().iter().map(|r| r.path().to_string()).collect();
    assert!(
        paths.contains(&"/s/ops/api/saved_objects/_import".to_string()),
        "{paths:?}"
    );
    assert!(!out.contains("kbpass"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ca_file_is_named() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(
        &es,
        &kb,
        "ssl.certificate_authorities = [\"/nonexistent/oxibeat-ca.pem\"]",
    );
    let mut out = Vec::new();
    let e = setup::run(&cfg, &Selection::default(), &mut out)
        .await
        .expect_err("the CA file is missing")
        .to_string();
    assert!(e.contains("/nonexistent/oxibeat-ca.pem"), "{e}");
    assert!(e.contains("ssl.certificate_authorities"), "{e}");
}

#[test]
fn export_prints_dev_tools_requests_and_ndjson() {
    let t = setup::export("template").expect("template");
    assert!(
        t.starts_with("PUT _component_template/oxibeat-logs-settings\n{"),
        "{t}"
    );
    // Every request body in the export is the JSON of its file.
    for block in t.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (head, body) = block.split_once('\n').expect("request line and body");
        assert!(head.starts_with("PUT _"), "{head}");
        serde_json::from_str::<Value>(body).expect("body is JSON");
    }
    let d = setup::export("dashboards").expect("dashboards");
    assert!(d.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_without_a_certificate_is_named() {
    let es = Standin::start();
    let kb = Standin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("not-a-ca.pem");
    std::fs::write(&ca, "this is not PEM\n").expect("write");
    let cfg = config(
        &es,
        &kb,
        &format!("ssl.certificate_authorities = [\"{}\"]", ca.display()),
    );
    let mut out = Vec::new();
    let e = setup::run(&cfg, &Selection::default(), &mut out)
        .await
        .expect_err("no certificate in the file")
        .to_string();
    assert!(e.contains("not-a-ca.pem"), "{e}");
    assert!(e.contains("invalid certificate"), "{e}");
}

/// The configurations elk-compose.yml ships parse with oxibeat's configuration model.
#[test]
fn compose_configs_parse() {
    let setup_text = include_str!("../examples/stack/oxibeat-setup.toml");
    let cfg: Config = typed(toml::from_str(setup_text).expect("toml"), "").expect("setup config");
    let conns = setup::Connections::from_config(&cfg).expect("connections");
    assert_eq!(
        conns.elasticsearch.urls[0].as_str(),
        "http://elasticsearch:9200/"
    );
    assert_eq!(conns.kibana.urls[0].as_str(), "http://kibana:5601/");

    // The agent config ships to Kafka (another module); its inputs must be valid as written.
    let agent = include_str!("../examples/stack/oxibeat-agent.toml");
    let mut tree: toml::Value = toml::from_str(agent).expect("toml");
    let table = tree.as_table_mut().expect("table");
    assert!(table.get("output").and_then(|o| o.get("kafka")).is_some());
    table.insert(
        "output".into(),
        toml::from_str("console = {}").expect("console output"),
    );
    let text = toml::to_string(&tree).expect("serialise");
    let (cfg, _) =
        Config::from_str_with(&text, "examples/stack/oxibeat-agent.toml", &[], &|_| None)
            .expect("agent config inputs are valid");
    assert_eq!(cfg.inputs.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_ca_in_ssl_certificate_authorities() {
    let ca = support::stack_standin::TestCa::new();
    let es = Standin::start_tls(&ca);
    let kb = Standin::start_tls(&ca);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).expect("write CA");
    let ssl = format!("ssl.certificate_authorities = [\"{}\"]", ca_file.display());
    let text = format!(
        "[output.elasticsearch]\nhosts = [\"{}\"]\n{ssl}\n[setup.kibana]\nhost = \"{}\"\n{ssl}\n",
        es.url(),
        kb.url()
    );
    assert!(text.contains("https://127.0.0.1"));
    let cfg: Config = typed(toml::from_str(&text).expect("toml"), "").expect("config");
    let (r, out) = run(&cfg, Selection::default()).await;
    assert!(!r.failed(), "{out}");
    assert!(out.contains("Elasticsearch https://127.0.0.1"), "{out}");
    assert!(!kb.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_an_unknown_ca_fails_unless_verification_is_off() {
    let ca = support::stack_standin::TestCa::new();
    let es = Standin::start_tls(&ca);
    let kb = Standin::start_tls(&ca);
    let only_es = Selection {
        pipelines: true,
        ..Default::default()
    };
    let cfg = config(&es, &kb, "");
    let (r, out) = run(&cfg, only_es).await;
    assert!(r.failed(), "{out}");
    assert!(out.contains("cannot reach Elasticsearch"), "{out}");
    assert!(
        out.contains("add its CA to ssl.certificate_authorities"),
        "{out}"
    );
    assert!(es.requests().is_empty(), "no request got through TLS");

    let cfg = config(&es, &kb, "ssl.verification_mode = \"none\"");
    let (r, out) = run(&cfg, only_es).await;
    assert!(!r.failed(), "{out}");
    assert!(
        out.contains("ingest pipeline oxibeat-logs: created"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_datafeed_is_stopped_updated_and_started_again() {
    let es = Standin::start();
    let kb = Standin::start();
    let cfg = config(&es, &kb, "");
    let ml = Selection {
        ml: true,
        ..Default::default()
    };
    run(&cfg, Selection::default()).await;
    es.with(|s| s.create_data_stream("metrics-oxibeat.system-default"))
        .expect("metrics data stream");
    let (r, out) = run(&cfg, ml).await;
    assert!(!r.failed(), "{out}");
    let job = "/_ml/anomaly_detectors/oxibeat-host-metrics";
    let feed_asset = ASSETS
        .iter()
        .find(|a| a.name == "datafeed-oxibeat-host-metrics")
        .expect("asset");
    // The datafeed's hash sits in its job; the job's own hash is untouched by it.
    es.with(|s| {
        let cs = &s.es[job]["custom_settings"];
        assert_eq!(cs["oxibeat_datafeed_hash"], Value::from(feed_asset.hash()));
        assert!(cs["oxibeat_hash"].is_string());
    });
    // An older datafeed on the server.
    es.with(|s| {
        let j = s.es.get_mut(job).expect("job");
        j["custom_settings"]["oxibeat_datafeed_hash"] = Value::from("older");
        let f =
            s.es.get_mut("/_ml/datafeeds/datafeed-oxibeat-host-metrics")
                .expect("feed");
        f["query_delay"] = Value::from("5m");
    });
    es.clear_requests();
    let (r, out) = run(&cfg, ml).await;
    assert!(!r.failed(), "{out}");
    assert!(
        out.contains("ML datafeed datafeed-oxibeat-host-metrics: updated, started"),
        "{out}"
    );
    assert!(
        out.contains("ML job oxibeat-host-metrics: unchanged"),
        "{out}"
    );
    assert!(
        out.contains("ML datafeed datafeed-oxibeat-log-rate: unchanged"),
        "{out}"
    );
    let w = writes(&es.requests());
    let stop = pos(
        &w,
        "POST /_ml/datafeeds/datafeed-oxibeat-host-metrics/_stop",
    );
    let update = pos(
        &w,
        "POST /_ml/datafeeds/datafeed-oxibeat-host-metrics/_update",
    );
    let record = pos(
        &w,
        "POST /_ml/anomaly_detectors/oxibeat-host-metrics/_update",
    );
    let start = pos(
        &w,
        "POST /_ml/datafeeds/datafeed-oxibeat-host-metrics/_start",
    );
    assert!(stop < update && update < record && record < start, "{w:#?}");
    assert_eq!(w.len(), 4, "{w:#?}");
    es.with(|s| {
        let f = &s.es["/_ml/datafeeds/datafeed-oxibeat-host-metrics"];
        assert_eq!(
            f["query_delay"],
            Value::from("60s"),
            "the asset's value is back"
        );
        let cs = &s.es[job]["custom_settings"];
        assert_eq!(cs["oxibeat_datafeed_hash"], Value::from(feed_asset.hash()));
        assert_eq!(
            cs["managed_by"],
            Value::from("oxibeat"),
            "other settings kept"
        );
    });
}
