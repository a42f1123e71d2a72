//! Every request body `oxibeat search` can send, for every mode, reranking and filter
//! combination: checked against Elasticsearch's 9.2 OpenAPI spec (`../shared/elastic-spec`,
//! through `tests/stack/validate_request_bodies.py` and the spec loading of
//! `../shared/tools/validate-es-assets`) and against the structural rules (filters inside the
//! retrievers, `rank_window_size` >= from + size and <= a compound child's, a reranker only
//! when one is available).

use std::path::Path;

use oxibeat::search::answer;
use oxibeat::search::capabilities::{Mode, Plan};
use oxibeat::search::config::MinScores;
use oxibeat::search::query::{self, Filters, Spec};
use oxibeat::search::render::Hit;
use oxibeat::search::time::TimeRange;
use serde_json::{json, Value};

fn filter_sets() -> Vec<(&'static str, Filters)> {
    let range = TimeRange {
        from_ms: Some(1_795_550_400_000),
        until_ms: 1_795_557_600_000,
    };
    vec![
        (
            "range",
            Filters {
                range: Some(range),
                ..Default::default()
            },
        ),
        (
            "open-range",
            Filters {
                range: Some(TimeRange {
                    from_ms: None,
                    until_ms: range.until_ms,
                }),
                ..Default::default()
            },
        ),
        (
            "all",
            Filters {
                range: Some(range),
                hosts: vec!["web-2".into(), "web-3".into()],
                datasets: vec!["oxibeat.app".into()],
                levels: query::levels_from("warn").unwrap(),
            },
        ),
        ("none", Filters::default()),
    ]
}

/// Name, API path, method, body, the filter clauses, and whether a reranker was available.
type Case = (String, String, &'static str, Value, Vec<Value>, bool);

fn bodies() -> Vec<Case> {
    let mut out = Vec::new();
    let floors = MinScores {
        rerank: Some(1.0),
        ..MinScores::default()
    };
    for (fname, filters) in filter_sets() {
        for retrieval in [Mode::Lexical, Mode::Semantic, Mode::Hybrid] {
            for rerank in [false, true] {
                for elasticsearch in [true, false] {
                    if !elasticsearch && (rerank || retrieval != Mode::Lexical) {
                        continue; // never planned off Elasticsearch
                    }
                    for size in [1, 10, 80] {
                        let plan = Plan {
                            retrieval,
                            rerank: rerank.then(|| ".rerank-v1-elasticsearch".to_string()),
                            elasticsearch,
                            notices: vec![],
                        };
                        let spec = Spec {
                            query: "why did checkout fail on web-2 last night?",
                            plan: &plan,
                            filters: &filters,
                            size,
                            from: 0,
                            min_score: &floors,
                            rerank_window: 30,
                        };
                        out.push((
                            format!(
                                "search-{}-{}-{}-{fname}-{size}",
                                retrieval.name(),
                                if rerank { "rerank" } else { "plain" },
                                if elasticsearch { "es" } else { "os" }
                            ),
                            "/{index}/_search".to_string(),
                            "post",
                            query::body(&spec),
                            filters.clauses(),
                            rerank,
                        ));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_body_follows_the_structural_rules() {
    let all = bodies();
    // 4 filter sets x 7 plans x 3 sizes.
    assert_eq!(all.len(), 84);
    for (name, _, _, body, filters, rerank) in &all {
        let breaches = query::rule_breaches(body, filters, *rerank);
        assert!(breaches.is_empty(), "{name}: {breaches:?}\n{body:#}");
    }
}

#[test]
fn every_body_matches_the_elasticsearch_9_2_spec() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tool = root.join("../shared/tools/validate-es-assets");
    let spec = root.join("../shared/elastic-spec/es-serverless-openapi-9.2.json");
    if !tool.exists() || !spec.exists() {
        println!(
            "SKIPPED: {} or {} is absent (a dev-time check that lives beside the repo)",
            tool.display(),
            spec.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, path: &str, method: &str, body: &Value, expect: &str| {
        let case = json!({"path": path, "method": method, "body": body, "expect": expect});
        std::fs::write(dir.path().join(format!("{name}.json")), case.to_string()).unwrap();
    };
    for (name, path, method, body, _, _) in bodies() {
        write(&name, &path, method, &body, "ok");
    }
    // The answer's requests.
    let hit = Hit::from_json(&json!({"_index": "i", "_id": "1", "_score": 1.0,
        "_source": {"@timestamp": "2026-11-24T21:00:00Z", "message": "disk full"}}))
    .unwrap();
    for (task, id) in [
        ("chat_completion", ".rainbow-sprinkles-elastic"),
        ("completion", "my-llm"),
    ] {
        let llm = answer::Llm {
            id: id.into(),
            task_type: task.into(),
            service: "elastic".into(),
        };
        let (path, body) = answer::request(&llm, "why?", std::slice::from_ref(&hit), 2000);
        let spec_path = if task == "completion" {
            "/_inference/completion/{inference_id}"
        } else {
            "/_inference/chat_completion/{inference_id}/_stream"
        };
        assert!(
            path.starts_with(&spec_path[..spec_path.find('{').unwrap()]),
            "{path}"
        );
        write(&format!("answer-{task}"), spec_path, "post", &body, "ok");
    }
    // The check means something only if it rejects a wrong body.
    write(
        "broken-rrf",
        "/{index}/_search",
        "post",
        &json!({"retriever": {"rrf": {"retrievers": "all", "rank_window_size": "fifty"}}}),
        "off",
    );
    write(
        "broken-reranker",
        "/{index}/_search",
        "post",
        &json!({"retriever": {"text_similarity_reranker": {"field": "message"}}}),
        "off",
    );
    write(
        "broken-chat",
        "/_inference/chat_completion/{inference_id}/_stream",
        "post",
        &json!({"messages": [{"content": "x"}]}),
        "off",
    );
    let out = std::process::Command::new("python3")
        .arg(root.join("tests/stack/validate_request_bodies.py"))
        .arg(dir.path())
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains(", 0 not as expected"), "{text}");
}
