//! `oxibeat search` (the real binary) against the Elasticsearch 9.2 stand-in of
//! `tests/support/search_standin.rs`: request shapes per capability, fallbacks and what they
//! say, the relevance floor, output formats, the Discover URL, `--answer` streaming and
//! citation checks, and the error messages.

#[path = "support/search_standin.rs"]
mod search_standin;
mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use search_standin::{Doc, Index, Llm, Standin, State};
use serde_json::{json, Value};

const APP: &str = ".ds-logs-oxibeat.app-default-2026.11.24-000001";
const OLD: &str = ".ds-logs-oxibeat.app-default-2026.11.20-000001";

fn docs() -> Vec<Doc> {
    let d = |id: &str, index: &str, ts: &str, host: &str, level: &str, msg: &str| Doc {
        index: index.into(),
        id: id.into(),
        source: json!({"@timestamp": ts, "host": {"name": host}, "log": {"level": level},
            "data_stream": {"dataset": "oxibeat.app", "type": "logs", "namespace": "default"},
            "message": msg}),
    };
    vec![
        d("a1", APP, "2026-11-24T21:00:00.000Z", "web-2", "error", "Could not write receipt for order 1: java.io.IOException: No space left on device\n\tat x.Y(Y.java:1)\n\tat x.Z(Z.java:2)\nCaused by: java.nio.file.FileSystemException: /var/lib/checkout: No space left on device"),
        d("a2", APP, "2026-11-24T21:01:00.000Z", "web-2", "error", "Could not write receipt for order 2: java.io.IOException: No space left on device"),
        d("a3", APP, "2026-11-24T21:02:00.000Z", "web-1", "info", "Order 3 created for customer bob"),
        d("a4", APP, "2026-11-24T21:03:00.000Z", "web-1", "warn", "Slow request: GET /api/cart took 4000ms"),
        d("a5", APP, "2026-11-24T21:04:00.000Z", "web-3", "error", "Worker process was OOM-killed by the kernel (exit code 137); restarting"),
        d("a6", APP, "2026-11-24T21:05:00.000Z", "web-2", "info", "Payment tx-1 authorized"),
        d("o1", OLD, "2026-11-20T10:00:00.000Z", "web-2", "error", "No space left on device (old)"),
    ]
}

fn state() -> State {
    State {
        indices: vec![
            Index {
                name: APP.into(),
                stream: "logs-oxibeat.app-default".into(),
                semantic: true,
            },
            Index {
                name: OLD.into(),
                stream: "logs-oxibeat.app-default".into(),
                semantic: true,
            },
        ],
        docs: docs(),
        ..State::default()
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn config(dir: &std::path::Path, es: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("oxibeat.toml");
    std::fs::write(
        &p,
        format!("[output.elasticsearch]\nhosts = [\"{es}\"]\n{extra}\n"),
    )
    .unwrap();
    p
}

fn run(cfg: &std::path::Path, args: &[&str]) -> Out {
    let out = Command::new(support::bin())
        .arg("search")
        .args(args)
        .args([
            "--from",
            "2026-11-24T20:00:00Z",
            "--until",
            "2026-11-24T22:00:00Z",
            "-c",
        ])
        .arg(cfg)
        .env_remove("NO_COLOR")
        .output()
        .expect("run oxibeat search");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn with(st: State, extra: &str) -> (Standin, tempfile::TempDir, std::path::PathBuf) {
    let es = Standin::start(st);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &es.url(), extra);
    (es, dir, cfg)
}

#[test]
fn full_stack_runs_hybrid_reranked_with_filters_inside_the_retrievers() {
    let (es, _d, cfg) = with(state(), "");
    let o = run(
        &cfg,
        &[
            "disk full",
            "--host",
            "web-2",
            "--level",
            "warn",
            "--explain",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("hybrid (BM25 + ELSER, rrf), reranked by .rerank-v1-elasticsearch"),
        "{}",
        o.stderr
    );
    // Capability detection before the query.
    let paths: Vec<String> = es
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /",
            "GET /_license",
            "GET /_inference/_all",
            "GET /logs-oxibeat.*-*/_field_caps",
            "POST /logs-oxibeat.*-*/_search"
        ]
    );
    let body = &es.searches()[0];
    // --explain printed the body sent.
    assert!(
        o.stderr.contains("POST logs-oxibeat.*-*/_search\n{"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("\"text_similarity_reranker\""),
        "{}",
        o.stderr
    );
    let r = &body["retriever"]["text_similarity_reranker"];
    assert_eq!(r["inference_id"], ".rerank-v1-elasticsearch");
    assert_eq!(r["field"], "message");
    let rrf = &r["retriever"]["rrf"];
    assert!(rrf["rank_window_size"].as_u64().unwrap() >= 10);
    for c in rrf["retrievers"].as_array().unwrap() {
        let f = c["standard"]["filter"].as_array().unwrap();
        assert!(
            f.iter()
                .any(|x| x["terms"]["host.name"] == json!(["web-2"])),
            "{c}"
        );
        assert!(
            f.iter()
                .any(|x| x["terms"]["log.level"] == json!(["warn", "error", "critical"])),
            "{c}"
        );
        assert!(
            f.iter()
                .any(|x| x["range"]["@timestamp"]["gte"] == "2026-11-24T20:00:00.000Z"),
            "{c}"
        );
    }
    assert!(body.get("query").is_none() && body.get("post_filter").is_none());
    // The table: both web-2 disk lines, highlighted, the trace folded.
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(lines[0].starts_with("#  TIME"), "{}", o.stdout);
    assert!(
        lines[1].contains("web-2") && lines[1].contains("oxibeat.app"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("**disk**") || o.stdout.contains("No space left"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains(" lines]"), "{}", o.stdout);
    assert!(
        !o.stdout.contains("web-1") && !o.stdout.contains("web-3"),
        "{}",
        o.stdout
    );
}

#[test]
fn fallbacks_say_why_and_how_to_enable() {
    // Basic licence: lexical, and stderr says why and how to get semantic search.
    let (es, _d, cfg) = with(
        State {
            licence: "basic".into(),
            ..state()
        },
        "",
    );
    let o = run(&cfg, &["No space left on device"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("semantic search is not available, so this is a lexical (BM25) search only: the licence is basic"), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("POST _license/start_trial?acknowledge=true"),
        "{}",
        o.stderr
    );
    let b = &es.searches()[0];
    assert!(b.get("retriever").is_none(), "{b}");
    assert_eq!(
        b["query"]["bool"]["must"][0]["match"]["message"]["query"],
        "No space left on device"
    );
    let o = run(&cfg, &["disk full", "--mode", "semantic"]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(
        o.stderr
            .contains("Error: semantic search is not available: the licence is basic"),
        "{}",
        o.stderr
    );
    let o = run(&cfg, &["disk full", "--rerank"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("reranking is not available: the text_similarity_reranker retriever needs an Enterprise licence"), "{}", o.stderr);

    // No ELSER endpoint.
    let mut st = state();
    st.endpoints.retain(|e| e.0 != ".elser-2-elasticsearch");
    let (_es, _d2, cfg) = with(st, "");
    let o = run(&cfg, &["disk full"]);
    assert!(
        o.stderr
            .contains("the inference endpoint .elser-2-elasticsearch does not exist"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("lexical (BM25), reranked by .rerank-v1-elasticsearch"),
        "{}",
        o.stderr
    );

    // The field not mapped anywhere: how to load it and roll over.
    let mut st = state();
    for i in &mut st.indices {
        i.semantic = false;
    }
    let (_es, _d3, cfg) = with(st, "");
    let o = run(&cfg, &["disk full", "--no-rerank"]);
    assert!(
        o.stderr.contains("oxibeat setup --index-management"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("_rollover"), "{}", o.stderr);
    assert!(o.stderr.contains(", lexical (BM25), logs"), "{}", o.stderr);

    // Mapped in one backing index of two: hybrid, with a note.
    let mut st = state();
    st.indices[1].semantic = false;
    let (_es, _d4, cfg) = with(st, "");
    let o = run(&cfg, &["disk full"]);
    assert!(
        o.stderr
            .contains("semantic search covers 1 of the 2 indices searched"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("hybrid (BM25 + ELSER, rrf)"),
        "{}",
        o.stderr
    );

    // The licence cannot be read (no monitor privilege): hybrid is tried, and the user told.
    let (_es, _d5, cfg) = with(
        State {
            licence_status: 403,
            ..state()
        },
        "",
    );
    let o = run(&cfg, &["disk full"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("could not read the licence"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("hybrid (BM25 + ELSER, rrf)"),
        "{}",
        o.stderr
    );
}

#[test]
fn licence_refusal_at_search_time_falls_back() {
    // The licence GET is forbidden and the cluster is on basic: the search is refused for
    // the licence, and the retry is lexical, said on stderr.
    let (es, _d, cfg) = with(
        State {
            licence_status: 403,
            licence: "basic".into(),
            ..state()
        },
        "",
    );
    let o = run(&cfg, &["No space left on device"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("refused hybrid (BM25 + ELSER, rrf), reranked by .rerank-v1-elasticsearch for the licence"), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("current license is non-compliant for [text_similarity_reranker]"),
        "{}",
        o.stderr
    );
    assert_eq!(es.searches().len(), 2);
    assert!(es.searches()[1].get("retriever").is_none());
    assert!(o.stdout.contains("web-2"), "{}", o.stdout);
}

#[test]
fn relevance_floor_prints_no_relevant_log_lines() {
    let (es, _d, cfg) = with(state(), "");
    let o = run(&cfg, &["zookeeper quorum lost", "--no-rerank"]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.starts_with("no relevant log lines (nothing scored above the relevance floor: search.min_score.lexical = 1, search.min_score.semantic = 5"), "{}", o.stdout);
    // The floors are in the retrievers, as raw scores.
    let b = &es.searches()[0];
    let rs = b["retriever"]["rrf"]["retrievers"].as_array().unwrap();
    assert_eq!(rs[0]["standard"]["min_score"], 1.0);
    assert_eq!(rs[1]["standard"]["min_score"], 5.0);
    // Raised floors hide weak matches; --json keeps stdout for hits only.
    let o = run(
        &cfg,
        &[
            "order created",
            "--mode",
            "lexical",
            "--json",
            "-E",
            "search.min_score.lexical=50",
        ],
    );
    assert_eq!(o.code, 1);
    assert!(o.stdout.is_empty(), "{}", o.stdout);
    assert!(o.stderr.contains("no relevant log lines"), "{}", o.stderr);
    let o = run(
        &cfg,
        &[
            "order created",
            "--mode",
            "lexical",
            "--json",
            "-E",
            "search.min_score.lexical=0.1",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("Order 3 created"), "{}", o.stdout);
}

#[test]
fn json_lines_and_discover_url() {
    let (_es, _d, cfg) = with(
        state(),
        "[setup.kibana]\nhost = \"kb.example:5601\"\nspace.id = \"ops\"\n",
    );
    let o = run(
        &cfg,
        &[
            "No space left on device",
            "--json",
            "--host",
            "web-2",
            "--dataset",
            "app",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let hits: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!hits.is_empty());
    for h in &hits {
        assert_eq!(h["_index"], APP, "{h}");
        assert!(h["_id"].is_string() && h["_score"].is_number(), "{h}");
        assert_eq!(h["fields"]["host.name"], "web-2");
        assert_eq!(h["fields"]["data_stream.dataset"], "oxibeat.app");
    }
    let u = o
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Discover: "))
        .expect("Discover URL on stderr");
    assert!(u.starts_with("http://kb.example:5601/s/ops/app/discover#/?_g=(filters:!(),time:(from:'2026-11-24T20:00:00.000Z',to:'2026-11-24T22:00:00.000Z'))"), "{u}");
    assert!(
        u.contains(
            "host.name%20:%20%22web-2%22%20and%20data_stream.dataset%20:%20%22oxibeat.app%22"
        ),
        "{u}"
    );
    // Table mode: on stdout after the table. Without [setup.kibana] host: no URL.
    let o = run(&cfg, &["No space left on device"]);
    assert!(
        o.stdout
            .contains("\nDiscover: http://kb.example:5601/s/ops/app/discover#/"),
        "{}",
        o.stdout
    );
    let (_es2, _d2, cfg2) = with(state(), "");
    let o = run(&cfg2, &["No space left on device"]);
    assert!(
        !o.stdout.contains("Discover") && !o.stderr.contains("Discover"),
        "{}",
        o.stdout
    );
}

#[test]
fn answer_is_streamed_and_its_citations_checked() {
    let st = State {
        llm: Llm::Stream {
            deltas: vec![
                "The disk of web-2 filled up: receipts could not be written ".into(),
                "[2]".into(),
                "; a worker was OOM-killed [5]".into(),
                " and the certificate expired [12].".into(),
            ],
            delay: Duration::from_millis(400),
        },
        ..state()
    };
    let (es, _d, cfg) = with(st, "");
    let mut child = Command::new(support::bin())
        // Words of most lines, so that the stand-in's BM25 returns more than five.
        .args([
            "search",
            "why did the order, receipt, worker, payment or request fail?",
            "--answer",
            "--no-rerank",
            "--from",
            "2026-11-24T20:00:00Z",
            "--until",
            "2026-11-24T22:00:00Z",
            "-E",
            "search.min_score.lexical=0.01",
            "-E",
            "search.min_score.semantic=0.01",
            "-c",
        ])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    // The first part of the answer arrives while the model is still writing.
    let mut streamed = false;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if text.contains("receipts could not be written") && !text.contains("certificate expired") {
            assert!(
                child.try_wait().unwrap().is_none(),
                "process ended before the stream did"
            );
            streamed = true;
        }
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let out = String::from_utf8_lossy(&seen).to_string();
    assert!(status.success(), "{out}\n{stderr}");
    assert!(streamed, "the answer did not arrive in parts:\n{out}");
    assert!(
        out.contains("Answer (.rainbow-sprinkles-elastic, from the top"),
        "{out}"
    );
    assert!(out.contains("The disk of web-2 filled up: receipts could not be written [2]; a worker was OOM-killed [5] and the certificate expired [12]."), "{out}");
    // References: the cited lines with time, host and index/id.
    let refs: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "References:")
        .skip(1)
        .take_while(|l| l.starts_with("  ["))
        .collect();
    assert_eq!(refs.len(), 2, "{out}");
    assert!(
        refs[0].starts_with("  [2] 2026-11-24T") && refs[0].contains(&format!(" {APP}/")),
        "{out}"
    );
    assert!(refs[1].starts_with("  [5] 2026-11-24T"), "{out}");
    assert!(
        out.contains("Invalid citations: [12] (only lines [1] to ["),
        "{out}"
    );
    assert!(
        stderr.contains("the answer cites [12] which match no line given"),
        "{stderr}"
    );
    // The prompt: numbered lines, the rules for the model.
    let chat = es
        .requests()
        .into_iter()
        .find(|r| r.path().contains("chat_completion"))
        .unwrap()
        .json();
    let system = chat["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("Use only the numbered log lines")
            && system.contains("[2]")
            && system.contains("say so"),
        "{system}"
    );
    let user = chat["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.starts_with("Question: why did the order, receipt, worker, payment or request fail?"),
        "{user}"
    );
    assert!(
        user.contains("[1] @timestamp=2026-11-24T") && user.contains("host.name=web-2"),
        "{user}"
    );
    assert_eq!(es.requests().iter().filter(|r| r.path() == "/_inference/chat_completion/.rainbow-sprinkles-elastic/_stream").count(), 1);
}

#[test]
fn answer_without_an_llm_explains_and_prints_the_hits() {
    let mut st = state();
    st.endpoints.retain(|e| e.1 != "chat_completion");
    let (_es, _d, cfg) = with(st, "");
    let o = run(&cfg, &["No space left on device", "--answer"]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(o.stdout.contains("web-2"), "hits are printed: {}", o.stdout);
    assert!(
        o.stderr
            .contains("--answer: no chat_completion or completion inference endpoint exists"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("PUT _inference/chat_completion/my-llm"),
        "{}",
        o.stderr
    );
    // A completion endpoint, asked by name: answered at once.
    let mut st = state();
    st.endpoints
        .push(("my-completion".into(), "completion".into(), "openai".into()));
    st.completion = "Disk full [1].".into();
    let (_es, _d2, cfg) = with(st, "");
    let o = run(
        &cfg,
        &[
            "No space left on device",
            "--answer",
            "--llm",
            "my-completion",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("Disk full [1].\n\nReferences:\n  [1] "),
        "{}",
        o.stdout
    );
    let o = run(
        &cfg,
        &["No space left on device", "--answer", "--llm", "nope"],
    );
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("there is no inference endpoint nope; LLM endpoints here: .rainbow-sprinkles-elastic, my-completion"), "{}", o.stderr);
    // A failure in the middle of the stream.
    let st = State {
        llm: Llm::FailMidStream {
            deltas: vec!["The disk".into()],
            status: 429,
            reason: "Received a rate limit status code".into(),
        },
        ..state()
    };
    let (_es, _d3, cfg) = with(st, "");
    let o = run(&cfg, &["No space left on device", "--answer"]);
    assert_eq!(o.code, 2);
    assert!(o.stdout.contains("The disk"), "{}", o.stdout);
    assert!(o.stderr.contains("the LLM endpoint .rainbow-sprinkles-elastic failed mid-answer: HTTP 429 status_exception: Received a rate limit status code"), "{}", o.stderr);
}

#[test]
fn errors_are_clear_and_never_show_credentials() {
    // Nothing listening.
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &format!("http://127.0.0.1:{port}"), "");
    let o = run(&cfg, &["x"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains(&format!(
            "cannot reach Elasticsearch at http://127.0.0.1:{port}"
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Check output.elasticsearch.hosts"),
        "{}",
        o.stderr
    );

    // Wrong password: 401, said plainly, the password nowhere.
    let st = State {
        expected_auth: Some("Basic ZWxhc3RpYzpyaWdodA==".into()),
        ..state()
    };
    let (_es, _d, cfg) = with(st, "username = \"elastic\"\npassword = \"hunter2-wrong\"");
    let o = run(&cfg, &["x"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("Elasticsearch rejected the credentials (GET /: HTTP 401 security_exception: unable to authenticate user [elastic]"), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("check output.elasticsearch.username/password or api_key"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("hunter2") && !o.stdout.contains("hunter2"));

    // 429.
    let reason = "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]";
    let st = State {
        search_override: Some((
            429,
            search_standin::es_error(429, "es_rejected_execution_exception", reason),
        )),
        ..state()
    };
    let (_es, _d, cfg) = with(st, "");
    let o = run(&cfg, &["x"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("Elasticsearch is overloaded and refused the request (search: HTTP 429 es_rejected_execution_exception"), "{}", o.stderr);

    // Timeout.
    let st = State {
        search_delay: Duration::from_secs(4),
        ..state()
    };
    let (_es, _d, cfg) = with(st, "[search]\ntimeout = \"1s\"");
    let o = run(&cfg, &["x"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("Elasticsearch did not answer within 1s (search.timeout)"),
        "{}",
        o.stderr
    );

    // No data streams yet.
    let (_es, _d, cfg) = with(
        State {
            indices: vec![],
            docs: vec![],
            ..state()
        },
        "",
    );
    let o = run(&cfg, &["x"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("no data stream or index matches logs-oxibeat.*-*: run `oxibeat setup`"),
        "{}",
        o.stderr
    );

    // Bad arguments and config name what to fix.
    let (_es, _d, cfg) = with(state(), "[search]\nmin_scor = 1");
    let o = run(&cfg, &["x"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("Error: configuration ")
            && o.stderr
                .contains("oxibeat.toml: search.min_scor: unknown field `min_scor`"),
        "{}",
        o.stderr
    );
    let (_es, _d, cfg) = with(state(), "");
    let o = run(&cfg, &["x", "--level", "loud"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("--level \"loud\" is not a level"),
        "{}",
        o.stderr
    );
}
