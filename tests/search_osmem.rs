//! `oxibeat search` against osmem-server (real BM25): the labelled corpus of
//! `tests/fixtures/search/` indexed, every labelled query run through the real binary, and
//! recall@5 / MRR reported.

#[path = "support/osmem.rs"]
mod osmem;
#[path = "support/search_corpus.rs"]
mod search_corpus;
mod support;

use std::process::Command;

use serde_json::Value;

fn setup() -> (osmem::Osmem, tempfile::TempDir, std::path::PathBuf) {
    let o = osmem::Osmem::start();
    let t = search_corpus::index_template().to_string();
    let (st, body) = o
        .call(
            "PUT",
            "/_index_template/oxibeat-logs",
            Some(("application/json", t.as_bytes())),
        )
        .unwrap();
    assert_eq!(st, 200, "{body}");
    let docs = search_corpus::docs();
    let bulk = search_corpus::bulk_body(&docs);
    let (st, body) = o
        .call(
            "POST",
            "/_bulk?refresh=true",
            Some(("application/x-ndjson", bulk.as_bytes())),
        )
        .unwrap();
    assert_eq!(st, 200, "{}", &body[..body.len().min(500)]);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errors"], false, "{}", &body[..body.len().min(2000)]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("oxibeat.toml");
    std::fs::write(
        &cfg,
        format!("[output.elasticsearch]\nhosts = [\"{}\"]\n", o.url()),
    )
    .unwrap();
    (o, dir, cfg)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn search(cfg: &std::path::Path, args: &[&str]) -> Run {
    let out = Command::new(support::bin())
        .arg("search")
        .args(args)
        .args([
            "--from",
            "2026-11-24T19:00:00Z",
            "--until",
            "2026-11-24T23:00:00Z",
            "-c",
        ])
        .arg(cfg)
        .output()
        .expect("run oxibeat search");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn hits(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn text(v: &Value, field: &str) -> String {
    v["fields"][field].as_str().unwrap_or("").to_string()
}

/// recall@5 (share of queries with a line of their incident in the top 5) and MRR (mean of
/// 1/rank of the first such line in the top 10, 0 when none).
fn figures(ranks: &[Option<usize>]) -> (f64, f64) {
    let n = ranks.len().max(1) as f64;
    let recall = ranks.iter().filter(|r| r.is_some_and(|r| r <= 5)).count() as f64 / n;
    let mrr = ranks
        .iter()
        .map(|r| r.map_or(0.0, |r| 1.0 / r as f64))
        .sum::<f64>()
        / n;
    (recall, mrr)
}

#[test]
fn labelled_queries_lexical_recall_at_5_and_mrr() {
    let (_o, _d, cfg) = setup();
    let labels = search_corpus::labels();
    let mut keyword = Vec::new();
    let mut all = Vec::new();
    println!("query                 rank  incident    lexical");
    for q in &labels.queries {
        let mut args: Vec<&str> = vec![
            q.query.as_str(),
            "--mode",
            "lexical",
            "--json",
            "--size",
            "10",
        ];
        args.extend(q.args.iter().map(String::as_str));
        let r = search(&cfg, &args);
        assert!(
            r.code == 0 || r.code == 1,
            "{}: exit {} {}",
            q.id,
            r.code,
            r.stderr
        );
        let hs = hits(&r.stdout);
        for h in &hs {
            // The relevance floor is applied by the server.
            assert!(h["_score"].as_f64().unwrap() >= 1.0, "{}: {h}", q.id);
            // Filters hold.
            if let Some(i) = q.args.iter().position(|a| a == "--host") {
                assert_eq!(text(h, "host.name"), q.args[i + 1], "{}", q.id);
            }
            if q.args.iter().any(|a| a == "--level") {
                assert_eq!(text(h, "log.level"), "error", "{}", q.id);
            }
        }
        let rank = hs
            .iter()
            .position(|h| labels.relevant(&q.incident, &text(h, "message"), &text(h, "host.name")))
            .map(|p| p + 1);
        println!(
            "{:<21} {:>4}  {:<11} {}",
            q.id,
            rank.map_or("-".into(), |r| r.to_string()),
            q.incident,
            q.lexical
        );
        if q.lexical {
            assert!(
                rank.is_some_and(|r| r <= 5),
                "{}: no line of incident {} in the top 5 for {:?}:\n{}",
                q.id,
                q.incident,
                q.query,
                r.stdout
            );
            keyword.push(rank);
        }
        all.push(rank);
    }
    let (r5, mrr) = figures(&keyword);
    let (r5_all, mrr_all) = figures(&all);
    println!(
        "lexical (BM25, osmem-server): keyword queries ({}): recall@5 {r5:.2}, MRR {mrr:.2}; all queries ({}): recall@5 {r5_all:.2}, MRR {mrr_all:.2}",
        keyword.len(),
        all.len()
    );
    assert_eq!(r5, 1.0);
}

#[test]
fn relevance_floor_on_real_bm25_scores() {
    let (_o, _d, cfg) = setup();
    for q in search_corpus::labels().unrelated {
        let r = search(&cfg, &[&q, "--mode", "lexical"]);
        assert_eq!(r.code, 1, "{q}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.starts_with("no relevant log lines"),
            "{q}: {}",
            r.stdout
        );
        assert!(
            r.stdout.contains("search.min_score.lexical = 1"),
            "{}",
            r.stdout
        );
    }
    // A query with matches, all below a raised floor.
    let r = search(&cfg, &["payment declined", "--mode", "lexical", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let best = hits(&r.stdout)
        .iter()
        .map(|h| h["_score"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let floor = format!("search.min_score.lexical={}", best + 0.5);
    let r = search(
        &cfg,
        &["payment declined", "--mode", "lexical", "-E", &floor],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("no relevant log lines"),
        "{}",
        r.stdout
    );
}

#[test]
fn on_opensearch_semantic_falls_back_and_says_why() {
    let (_o, _d, cfg) = setup();
    // Default mode: hybrid asked, lexical run, and stderr says why.
    let r = search(&cfg, &["No space left on device", "--host", "web-2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("semantic search is not available, so this is a lexical (BM25) search only: the cluster is opensearch 3.8.0, not Elasticsearch"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("lexical (BM25)"), "{}", r.stderr);
    // The table: matching words highlighted, the stack trace folded onto one line.
    let row = r.stdout.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("1  2026-11-24T"), "{}", r.stdout);
    assert!(
        row.contains("web-2") && row.contains("oxibeat.app") && row.contains("error"),
        "{row}"
    );
    assert!(
        row.contains("**No** **space** **left** **on** **device**"),
        "{row}"
    );
    assert!(row.contains(" lines]"), "{row}");
    assert_eq!(
        r.stdout.lines().filter(|l| l.contains("\tat ")).count(),
        0,
        "{}",
        r.stdout
    );
    // Insisting on semantic search or reranking fails with the reason.
    let r = search(&cfg, &["disk full", "--mode", "semantic"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("semantic search is not available: the cluster is opensearch"),
        "{}",
        r.stderr
    );
    let r = search(&cfg, &["disk full", "--mode", "lexical", "--rerank"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("reranking is not available: the cluster is not Elasticsearch"),
        "{}",
        r.stderr
    );
    // Filters combine.
    let r = search(
        &cfg,
        &[
            "TLS handshake with payments-gw",
            "--mode",
            "lexical",
            "--json",
            "--host",
            "web-4",
            "--dataset",
            "json",
            "--level",
            "error",
            "--size",
            "50",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hs = hits(&r.stdout);
    assert!(!hs.is_empty());
    for h in hs {
        assert_eq!(text(&h, "host.name"), "web-4");
        assert_eq!(text(&h, "data_stream.dataset"), "oxibeat.json");
        assert!(
            ["error", "critical"].contains(&text(&h, "log.level").as_str()),
            "{h}"
        );
        let ts = text(&h, "@timestamp");
        assert!(
            ts.as_str() >= "2026-11-24T19:00:00Z" && ts.as_str() <= "2026-11-24T23:00:00Z",
            "{ts}"
        );
    }
}

/// Opt-in: the same labelled set on a real stack (Elasticsearch 9.2 with ELSER, the
/// reranker and `oxibeat setup` done), in every mode, figures printed. The corpus goes
/// through the real `oxibeat-logs` ingest pipeline into `logs-oxibeat.<format>-e2esearch`
/// data streams, which are deleted at the end.
///
///     OXIBEAT_E2E_STACK=1 OXIBEAT_E2E_ES_URL=http://localhost:9200 \
///     OXIBEAT_E2E_USER=elastic OXIBEAT_E2E_PASSWORD=... (or OXIBEAT_E2E_API_KEY=id:key) \
///     cargo test --test search_osmem real_stack -- --nocapture
#[test]
fn real_stack_hybrid_recall_at_5_and_mrr() {
    if std::env::var("OXIBEAT_E2E_STACK").as_deref() != Ok("1") {
        println!("SKIPPED: needs a running stack; set OXIBEAT_E2E_STACK=1 and OXIBEAT_E2E_ES_URL, OXIBEAT_E2E_USER/OXIBEAT_E2E_PASSWORD or OXIBEAT_E2E_API_KEY");
        return;
    }
    let url =
        std::env::var("OXIBEAT_E2E_ES_URL").unwrap_or_else(|_| "http://localhost:9200".into());
    let auth = match std::env::var("OXIBEAT_E2E_API_KEY") {
        Ok(k) => format!("api_key = {k:?}"),
        Err(_) => format!(
            "username = {:?}\npassword = {:?}",
            std::env::var("OXIBEAT_E2E_USER").unwrap_or_else(|_| "elastic".into()),
            std::env::var("OXIBEAT_E2E_PASSWORD").unwrap_or_default()
        ),
    };
    let curl = |method: &str, path: &str, ctype: &str, body: &str| -> String {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-X",
            method,
            &format!("{url}{path}"),
            "-H",
            &format!("Content-Type: {ctype}"),
        ]);
        match std::env::var("OXIBEAT_E2E_API_KEY") {
            Ok(k) => {
                use base64::Engine;
                c.args([
                    "-H",
                    &format!(
                        "Authorization: ApiKey {}",
                        base64::engine::general_purpose::STANDARD.encode(k)
                    ),
                ]);
            }
            Err(_) => {
                c.args([
                    "-u",
                    &format!(
                        "{}:{}",
                        std::env::var("OXIBEAT_E2E_USER").unwrap_or_else(|_| "elastic".into()),
                        std::env::var("OXIBEAT_E2E_PASSWORD").unwrap_or_default()
                    ),
                ]);
            }
        }
        if !body.is_empty() {
            c.args(["--data-binary", "@-"]);
        }
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().expect("curl");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).to_string()
    };
    let mut bulk = String::new();
    for d in search_corpus::docs() {
        let stream = d.index.replace("-default", "-e2esearch");
        let mut src = d.source.clone();
        src["data_stream"]["namespace"] = serde_json::json!("e2esearch");
        bulk.push_str(&serde_json::json!({"create": {"_index": stream}}).to_string());
        bulk.push('\n');
        bulk.push_str(&src.to_string());
        bulk.push('\n');
    }
    let r = curl(
        "POST",
        "/_bulk?refresh=wait_for",
        "application/x-ndjson",
        &bulk,
    );
    assert!(
        r.contains("\"errors\":false"),
        "{}",
        &r[..r.len().min(2000)]
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("oxibeat.toml");
    std::fs::write(&cfg, format!("[output.elasticsearch]\nhosts = [{url:?}]\n{auth}\n[search]\nindex = \"logs-oxibeat.*-e2esearch\"\n")).unwrap();
    let labels = search_corpus::labels();
    for mode in ["lexical", "semantic", "hybrid"] {
        let mut ranks = Vec::new();
        for q in &labels.queries {
            let mut args: Vec<&str> =
                vec![q.query.as_str(), "--mode", mode, "--json", "--size", "10"];
            args.extend(q.args.iter().map(String::as_str));
            let r = search(&cfg, &args);
            assert!(r.code == 0 || r.code == 1, "{mode} {}: {}", q.id, r.stderr);
            let rank = hits(&r.stdout)
                .iter()
                .position(|h| {
                    labels.relevant(&q.incident, &text(h, "message"), &text(h, "host.name"))
                })
                .map(|p| p + 1);
            println!(
                "{mode:<8} {:<21} {:>4}  {}",
                q.id,
                rank.map_or("-".into(), |r| r.to_string()),
                r.stderr.lines().last().unwrap_or("")
            );
            ranks.push(rank);
        }
        let (r5, mrr) = figures(&ranks);
        println!(
            "{mode}: recall@5 {r5:.2}, MRR {mrr:.2} over {} queries",
            ranks.len()
        );
    }
    curl(
        "DELETE",
        "/_data_stream/logs-oxibeat.*-e2esearch",
        "application/json",
        "",
    );
}
