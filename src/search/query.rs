//! The `_search` bodies. One shape per plan:
//!
//! - lexical / semantic without reranking: a plain `query` (`bool`: the `match`, the filters in
//!   `filter`) with the relevance floor as `min_score`; this also runs on OpenSearch.
//! - hybrid: an `rrf` retriever over two `standard` retrievers (BM25 `match` on `message`,
//!   `match` on the `semantic_text` field), each with the filters in `filter` and its own raw
//!   floor in `min_score`; `rank_window_size` >= from + size.
//! - reranked: any of the above as the child of a `text_similarity_reranker` on `message`,
//!   whose `rank_window_size` is >= from + size and <= its child's.
//!
//! Rules from Elasticsearch's source: a request with `retriever` may not also have `query`,
//! `knn`, `search_after`, `terminate_after`, `sort`, `rescore` or `min_score`
//! (`RetrieverBuilderErrorTests`); a compound retriever needs `rank_window_size` >= `size`
//! and <= the `rank_window_size` of a compound child (`CompoundRetrieverBuilder.validate`).

use serde_json::{json, Map, Value};

use super::capabilities::{Mode, Plan, MESSAGE_FIELD, SEMANTIC_FIELD};
use super::config::MinScores;
use super::time::{format_ms, TimeRange};

/// Highlight markers around matching fragments (control characters, which log text rarely
/// holds and JSON escapes).
pub const HL_PRE: &str = "\u{2}";
pub const HL_POST: &str = "\u{3}";

/// The smallest `rank_window_size` of the `rrf` retriever (Elasticsearch's default is 10).
pub const RRF_MIN_WINDOW: usize = 50;
/// `rank_constant` of RRF (Elasticsearch's default).
pub const RRF_RANK_CONSTANT: usize = 60;
/// Longest part of a message the highlighter analyses (Elasticsearch's index default is
/// 1,000,000 and a longer field fails the whole search without this parameter).
pub const MAX_ANALYZED_OFFSET: usize = 100_000;

/// Fields returned for each hit.
pub const SOURCE_FIELDS: &[&str] = &[
    "@timestamp",
    "message",
    "host.name",
    "log.level",
    "log.logger",
    "log.file.path",
    "data_stream.dataset",
    "event.dataset",
    "service.name",
    "error.type",
];

/// Log levels from the least to the most severe, as the ingest pipeline normalises them.
pub const LEVELS: &[&str] = &["debug", "info", "warn", "error", "critical"];

/// `--level warn` means warn and everything more severe.
pub fn levels_from(min: &str) -> Result<Vec<String>, String> {
    let m = match min.to_ascii_lowercase().as_str() {
        "warning" => "warn".to_string(),
        "err" => "error".to_string(),
        "fatal" | "crit" => "critical".to_string(),
        o => o.to_string(),
    };
    let i = LEVELS.iter().position(|l| *l == m).ok_or_else(|| {
        format!(
            "--level {min:?} is not a level; use one of {}",
            LEVELS.join(", ")
        )
    })?;
    Ok(LEVELS[i..].iter().map(|s| s.to_string()).collect())
}

/// `--dataset app` is `oxibeat.app` (the stack's `logs-oxibeat.<format>-*`); a name with a
/// dot is taken as it is.
pub fn dataset_name(d: &str) -> String {
    if d.contains('.') {
        d.to_string()
    } else {
        format!("oxibeat.{d}")
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub range: Option<TimeRange>,
    pub hosts: Vec<String>,
    pub datasets: Vec<String>,
    pub levels: Vec<String>,
}

impl Filters {
    /// The filter clauses (they restrict, they do not score).
    pub fn clauses(&self) -> Vec<Value> {
        let mut v = Vec::new();
        if let Some(r) = &self.range {
            let mut range = Map::new();
            if let Some(f) = r.from_ms {
                range.insert("gte".into(), json!(format_ms(f)));
            }
            range.insert("lte".into(), json!(format_ms(r.until_ms)));
            range.insert("format".into(), json!("strict_date_optional_time"));
            v.push(json!({"range": {"@timestamp": range}}));
        }
        if !self.hosts.is_empty() {
            v.push(json!({"terms": {"host.name": self.hosts}}));
        }
        if !self.datasets.is_empty() {
            v.push(json!({"terms": {"data_stream.dataset": self.datasets}}));
        }
        if !self.levels.is_empty() {
            v.push(json!({"terms": {"log.level": self.levels}}));
        }
        v
    }
}

/// Everything a body depends on.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub query: &'a str,
    pub plan: &'a Plan,
    pub filters: &'a Filters,
    pub size: usize,
    pub from: usize,
    pub min_score: &'a MinScores,
    /// How many first-stage hits the reranker scores.
    pub rerank_window: usize,
}

fn match_on(field: &str, q: &str) -> Value {
    json!({"match": {field: {"query": q}}})
}

fn standard(field: &str, spec: &Spec, floor: f64) -> Value {
    let mut s = Map::new();
    s.insert("query".into(), match_on(field, spec.query));
    let f = spec.filters.clauses();
    if !f.is_empty() {
        s.insert("filter".into(), Value::Array(f));
    }
    s.insert("min_score".into(), json!(floor));
    json!({"standard": s})
}

/// `rank_window_size` of the `rrf` retriever.
pub fn rrf_window(spec: &Spec) -> usize {
    (spec.from + spec.size).max(RRF_MIN_WINDOW)
}

fn highlight(spec: &Spec) -> Value {
    // The API spec (`_global.search._types.Highlight`) types `fields` as one single-key object
    // or an array of them; the array form (which Elasticsearch and OpenSearch both accept)
    // holds two fields.
    let mut fields = vec![json!({MESSAGE_FIELD: {
        "number_of_fragments": 0, "pre_tags": [HL_PRE], "post_tags": [HL_POST]}})];
    if spec.plan.retrieval != Mode::Lexical {
        // The `semantic` highlighter returns the best-scoring chunks (SemanticTextHighlighter).
        fields.push(json!({SEMANTIC_FIELD: {"type": "semantic", "number_of_fragments": 2, "order": "score"}}));
    }
    let mut h = Map::new();
    h.insert("fields".into(), Value::Array(fields));
    if spec.plan.elasticsearch {
        // OpenSearch spells it max_analyzer_offset and rejects this name.
        h.insert("max_analyzed_offset".into(), json!(MAX_ANALYZED_OFFSET));
    }
    Value::Object(h)
}

/// The `_search` body for `spec`.
pub fn body(spec: &Spec) -> Value {
    let mut b = Map::new();
    b.insert("size".into(), json!(spec.size));
    b.insert("from".into(), json!(spec.from));
    b.insert("track_total_hits".into(), json!(false));
    let retrieval = spec.plan.retrieval;
    let single_field = match retrieval {
        Mode::Semantic => Some((SEMANTIC_FIELD, spec.min_score.semantic)),
        Mode::Lexical => Some((MESSAGE_FIELD, spec.min_score.lexical)),
        Mode::Hybrid => None,
    };
    let (inner, inner_window) = match single_field {
        Some((field, floor)) => (standard(field, spec, floor), None),
        None => {
            let w = rrf_window(spec);
            (
                json!({"rrf": {
                    "retrievers": [
                        standard(MESSAGE_FIELD, spec, spec.min_score.lexical),
                        standard(SEMANTIC_FIELD, spec, spec.min_score.semantic),
                    ],
                    "rank_window_size": w,
                    "rank_constant": RRF_RANK_CONSTANT,
                }}),
                Some(w),
            )
        }
    };
    match (&spec.plan.rerank, single_field) {
        (Some(id), _) => {
            let need = spec.from + spec.size;
            let mut w = spec.rerank_window.max(need);
            if let Some(cap) = inner_window {
                w = w.min(cap);
            }
            let mut r = Map::new();
            r.insert("retriever".into(), inner);
            r.insert("field".into(), json!(MESSAGE_FIELD));
            r.insert("inference_id".into(), json!(id));
            r.insert("inference_text".into(), json!(spec.query));
            r.insert("rank_window_size".into(), json!(w));
            if let Some(m) = spec.min_score.rerank {
                r.insert("min_score".into(), json!(m));
            }
            b.insert("retriever".into(), json!({"text_similarity_reranker": r}));
        }
        (None, Some((field, floor))) => {
            let mut q = Map::new();
            q.insert("must".into(), json!([match_on(field, spec.query)]));
            let f = spec.filters.clauses();
            if !f.is_empty() {
                q.insert("filter".into(), Value::Array(f));
            }
            b.insert("query".into(), json!({"bool": q}));
            b.insert("min_score".into(), json!(floor));
        }
        (None, None) => {
            b.insert("retriever".into(), inner);
        }
    }
    b.insert("_source".into(), json!({"includes": SOURCE_FIELDS}));
    b.insert("highlight".into(), highlight(spec));
    Value::Object(b)
}

/// Breaches of the structural rules in a body (empty when it follows them): filters inside
/// every retriever, no top-level query parts beside a retriever, window sizes, and a reranker
/// only when `reranker_available`.
pub fn rule_breaches(
    body: &Value,
    expected_filters: &[Value],
    reranker_available: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let from = body["from"].as_u64().unwrap_or(0) as usize;
    let size = body["size"].as_u64().unwrap_or(10) as usize;
    match body.get("retriever") {
        Some(r) => {
            for k in [
                "query",
                "knn",
                "search_after",
                "terminate_after",
                "sort",
                "rescore",
                "min_score",
                "post_filter",
            ] {
                if body.get(k).is_some() {
                    out.push(format!("top-level [{k}] beside [retriever]"));
                }
            }
            walk(
                r,
                from + size,
                None,
                expected_filters,
                reranker_available,
                &mut out,
            );
        }
        None => {
            if body.get("post_filter").is_some() {
                out.push("filters in post_filter instead of the query".into());
            }
            let f = &body["query"]["bool"]["filter"];
            if !same_filters(f, expected_filters) {
                out.push(format!(
                    "query filters {f} differ from {expected_filters:?}"
                ));
            }
        }
    }
    out
}

fn same_filters(have: &Value, want: &[Value]) -> bool {
    match have {
        Value::Null => want.is_empty(),
        Value::Array(a) => a.as_slice() == want,
        one => want.len() == 1 && *one == want[0],
    }
}

fn walk(
    r: &Value,
    need: usize,
    parent_window: Option<(&str, usize)>,
    filters: &[Value],
    reranker: bool,
    out: &mut Vec<String>,
) {
    let Some((name, inner)) = r.as_object().and_then(|o| o.iter().next()) else {
        out.push(format!("retriever {r} is not an object with one key"));
        return;
    };
    match name.as_str() {
        "standard" => {
            if !same_filters(&inner["filter"], filters) {
                out.push(format!(
                    "standard retriever filter {} differs from {filters:?}",
                    inner["filter"]
                ));
            }
        }
        "rrf" | "text_similarity_reranker" => {
            if name == "text_similarity_reranker" && !reranker {
                out.push("text_similarity_reranker used but no reranker is available".into());
            }
            let w = inner["rank_window_size"].as_u64().unwrap_or(10) as usize;
            if w < need {
                out.push(format!(
                    "[{name}] rank_window_size {w} < from + size {need}"
                ));
            }
            if let Some((p, pw)) = parent_window {
                if pw > w {
                    out.push(format!(
                        "[{p}] rank_window_size {pw} > its child [{name}]'s {w}"
                    ));
                }
            }
            let children: Vec<&Value> = if name == "rrf" {
                inner["retrievers"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default()
            } else {
                vec![&inner["retriever"]]
            };
            if name == "rrf" && children.len() < 2 {
                out.push("rrf with fewer than two retrievers".into());
            }
            for c in children {
                walk(c, need, Some((name, w)), filters, reranker, out);
            }
        }
        other => out.push(format!("unexpected retriever [{other}]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(retrieval: Mode, rerank: bool) -> Plan {
        Plan {
            retrieval,
            rerank: rerank.then(|| ".rerank-v1-elasticsearch".to_string()),
            elasticsearch: true,
            notices: vec![],
        }
    }

    #[test]
    fn levels_and_datasets() {
        assert_eq!(levels_from("warn").unwrap(), ["warn", "error", "critical"]);
        assert_eq!(
            levels_from("WARNING").unwrap(),
            ["warn", "error", "critical"]
        );
        assert_eq!(levels_from("fatal").unwrap(), ["critical"]);
        assert!(levels_from("loud").unwrap_err().contains("debug, info"));
        assert_eq!(dataset_name("app"), "oxibeat.app");
        assert_eq!(dataset_name("nginx.access"), "nginx.access");
    }

    #[test]
    fn every_shape_follows_the_rules() {
        let filters = Filters {
            range: Some(TimeRange {
                from_ms: Some(0),
                until_ms: 1000,
            }),
            hosts: vec!["web-2".into()],
            datasets: vec![],
            levels: vec!["error".into(), "critical".into()],
        };
        let floors = MinScores::default();
        for retrieval in [Mode::Lexical, Mode::Semantic, Mode::Hybrid] {
            for rerank in [false, true] {
                for size in [5, 10, 80] {
                    let p = plan(retrieval, rerank);
                    let spec = Spec {
                        query: "disk full",
                        plan: &p,
                        filters: &filters,
                        size,
                        from: 0,
                        min_score: &floors,
                        rerank_window: 30,
                    };
                    let b = body(&spec);
                    let breaches = rule_breaches(&b, &filters.clauses(), rerank);
                    assert!(
                        breaches.is_empty(),
                        "{retrieval:?} {rerank} {size}: {breaches:?}\n{b:#}"
                    );
                    assert_eq!(
                        b.get("retriever").is_some(),
                        rerank || retrieval == Mode::Hybrid
                    );
                }
            }
        }
    }

    #[test]
    fn breaches_are_found() {
        let f = vec![json!({"terms": {"host.name": ["a"]}})];
        let b = json!({"size": 20, "retriever": {"rrf": {"retrievers": [
            {"standard": {"query": {"match_all": {}}, "filter": f.clone()}},
            {"standard": {"query": {"match_all": {}}}}], "rank_window_size": 10}},
            "post_filter": f[0].clone()});
        let v = rule_breaches(&b, &f, false);
        assert!(v.iter().any(|s| s.contains("post_filter")), "{v:?}");
        assert!(
            v.iter()
                .any(|s| s.contains("rank_window_size 10 < from + size 20")),
            "{v:?}"
        );
        assert!(v.iter().any(|s| s.contains("filter null differs")), "{v:?}");
        let b = json!({"size": 5, "retriever": {"text_similarity_reranker": {"retriever":
            {"rrf": {"retrievers": [{"standard": {}}, {"standard": {}}], "rank_window_size": 20}},
            "rank_window_size": 40, "field": "message", "inference_text": "x"}}});
        let v = rule_breaches(&b, &[], false);
        assert!(
            v.iter().any(|s| s.contains("no reranker is available")),
            "{v:?}"
        );
        assert!(v.iter().any(|s| s.contains("40 > its child")), "{v:?}");
    }
}
