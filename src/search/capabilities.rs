//! What the cluster can do, asked before the query: `GET /` (Elasticsearch or not, version),
//! `GET _license`, `GET _inference/_all` and `GET <index>/_field_caps` for the
//! `semantic_text` field; then the plan: which retrieval runs, whether it is reranked, and
//! what to tell the user when it is not what they asked for.
//!
//! Licences (Elasticsearch source): the `rrf` retriever (`RRFRankPlugin.RANK_RRF_FEATURE`),
//! the `text_similarity_reranker` (`TextSimilarityRankBuilder.TEXT_SIMILARITY_RERANKER_FEATURE`)
//! and inference on any service but EIS (`InferencePlugin.INFERENCE_API_FEATURE`, checked by
//! `InferenceLicenceCheck`) are `License.OperationMode.ENTERPRISE`; a trial licence allows
//! them. ELSER on ML nodes (`.elser-2-elasticsearch`) is such an inference, so semantic search
//! needs Enterprise or the trial; endpoints of the `elastic` service (EIS) work on any licence.

use serde_json::Value;

use super::client::{path_segment, Client, Resp};
use super::SearchError;

/// The `semantic_text` field the ingest side fills (warn/error/critical lines).
pub const SEMANTIC_FIELD: &str = "oxibeat.semantic_message";
/// The BM25 field.
pub const MESSAGE_FIELD: &str = "message";
/// The inference endpoint the `semantic_text` mapping pins.
pub const ELSER_ID: &str = crate::setup::assets::INFERENCE_ID;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    Elasticsearch(String),
    /// OpenSearch or another server that answers like it: BM25 only.
    Other {
        distribution: String,
        version: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Licence {
    /// basic, standard, gold, platinum, enterprise, trial.
    pub kind: String,
    /// active, expired, invalid.
    pub status: String,
}

impl Licence {
    /// Enterprise features (rrf, reranker, inference on ML nodes) are allowed.
    pub fn enterprise(&self) -> bool {
        self.status == "active" && matches!(self.kind.as_str(), "enterprise" | "trial")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceEndpoint {
    pub id: String,
    pub task_type: String,
    pub service: String,
}

/// Where the semantic field is mapped as `semantic_text`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Indices (backing indices of the data streams) the pattern matched.
    pub indices: Vec<String>,
    /// Those among them where the field is `semantic_text`.
    pub semantic: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Capabilities {
    pub flavor: Flavor,
    /// `Err` with the reason when the licence could not be read.
    pub licence: Result<Licence, String>,
    /// `Err` with the reason when the endpoints could not be listed.
    pub inference: Result<Vec<InferenceEndpoint>, String>,
    pub coverage: Coverage,
}

impl Capabilities {
    pub fn endpoint(&self, id: &str) -> Option<&InferenceEndpoint> {
        self.inference.as_ref().ok()?.iter().find(|e| e.id == id)
    }
}

/// Ask the cluster. Fails only when the cluster cannot be used at all (unreachable, bad
/// credentials, no data).
pub async fn detect(client: &Client, index: &str) -> Result<Capabilities, SearchError> {
    let root = client.get("/").await?;
    if !root.ok() {
        return Err(SearchError::http("GET /", &root));
    }
    let version = root.body["version"]["number"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let distribution = root.body["version"]["distribution"]
        .as_str()
        .unwrap_or("elasticsearch");
    let flavor = if distribution == "elasticsearch" {
        Flavor::Elasticsearch(version)
    } else {
        Flavor::Other {
            distribution: distribution.to_string(),
            version,
        }
    };
    let (licence, inference) = if matches!(flavor, Flavor::Elasticsearch(_)) {
        (licence(client).await?, inference(client).await?)
    } else {
        let why = format!("the cluster is {distribution}, not Elasticsearch");
        (Err(why.clone()), Err(why))
    };
    let coverage = coverage(client, index).await?;
    Ok(Capabilities {
        flavor,
        licence,
        inference,
        coverage,
    })
}

async fn licence(client: &Client) -> Result<Result<Licence, String>, SearchError> {
    let r = client.get("/_license").await?;
    if !r.ok() {
        return Ok(Err(format!("GET _license answered {}", reason(&r))));
    }
    let l = &r.body["license"];
    Ok(Ok(Licence {
        kind: l["type"].as_str().unwrap_or("unknown").to_lowercase(),
        status: l["status"].as_str().unwrap_or("unknown").to_lowercase(),
    }))
}

async fn inference(client: &Client) -> Result<Result<Vec<InferenceEndpoint>, String>, SearchError> {
    let r = client.get("/_inference/_all").await?;
    if !r.ok() {
        return Ok(Err(format!("GET _inference/_all answered {}", reason(&r))));
    }
    let list = r.body["endpoints"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some(InferenceEndpoint {
                        id: e["inference_id"].as_str()?.to_string(),
                        task_type: e["task_type"].as_str().unwrap_or("").to_string(),
                        service: e["service"].as_str().unwrap_or("").to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Ok(list))
}

/// `GET <index>/_field_caps?fields=<semantic field>&include_unmapped=true`: every matched
/// index is listed under one of the field's types (`unmapped` for those without it).
async fn coverage(client: &Client, index: &str) -> Result<Coverage, SearchError> {
    let path = format!(
        "/{}/_field_caps?fields={SEMANTIC_FIELD}&include_unmapped=true",
        path_segment(index)
    );
    let r = client.get(&path).await?;
    if r.status == 404 {
        return Err(SearchError::NoData {
            index: index.to_string(),
        });
    }
    if !r.ok() {
        return Err(SearchError::http("GET _field_caps", &r));
    }
    let indices: Vec<String> = strings(&r.body["indices"]);
    let types = r.body["fields"][SEMANTIC_FIELD].as_object();
    let semantic = match types {
        Some(t) => match t.get("semantic_text") {
            // One type across every index lists no `indices`.
            Some(st) if t.len() == 1 => {
                let listed = strings(&st["indices"]);
                if listed.is_empty() {
                    indices.clone()
                } else {
                    listed
                }
            }
            Some(st) => strings(&st["indices"]),
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    Ok(Coverage { indices, semantic })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn reason(r: &Resp) -> String {
    crate::setup::explain(r.status, &r.body)
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hybrid,
    Semantic,
    Lexical,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Semantic => "semantic",
            Mode::Lexical => "lexical",
        }
    }
}

/// `--rerank` / `--no-rerank` / neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerankChoice {
    Auto,
    On,
    Off,
}

/// What will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub retrieval: Mode,
    /// The rerank endpoint, when reranking.
    pub rerank: Option<String>,
    /// Elasticsearch (not OpenSearch): `max_analyzed_offset` and the `semantic` highlighter.
    pub elasticsearch: bool,
    /// Lines for stderr: what changed from the request and how to get it.
    pub notices: Vec<String>,
}

/// Why semantic search cannot run, with what to do; `None` when it can.
pub fn semantic_unavailable(c: &Capabilities) -> Option<String> {
    if let Flavor::Other {
        distribution,
        version,
    } = &c.flavor
    {
        return Some(format!(
            "the cluster is {distribution} {version}, not Elasticsearch: semantic_text, ELSER and \
             the rrf retriever are Elasticsearch features"
        ));
    }
    match &c.licence {
        Ok(l) if !l.enterprise() => {
            return Some(format!(
                "the licence is {} ({}): semantic search runs ELSER through the inference API, \
                 which needs an Enterprise licence or the trial; start the 30-day trial with \
                 POST _license/start_trial?acknowledge=true (or Kibana > Stack Management > \
                 License Management)",
                l.kind, l.status
            ))
        }
        _ => {}
    }
    if let Ok(list) = &c.inference {
        if !list.iter().any(|e| e.id == ELSER_ID) {
            return Some(format!(
                "the inference endpoint {ELSER_ID} does not exist (GET _inference/_all lists \
                 {}); it is preconfigured on Elasticsearch 9.x when machine learning is enabled \
                 (xpack.ml.enabled and a node with the ml role)",
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.iter()
                        .map(|e| e.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
    }
    if c.coverage.semantic.is_empty() {
        return Some(format!(
            "no index behind the search maps {SEMANTIC_FIELD} as semantic_text (the component \
             template oxibeat-logs-semantic was not loaded when they were created); run \
             `oxibeat setup --index-management`, then roll each data stream over \
             (POST logs-oxibeat.app-default/_rollover): warn/error lines indexed after that are \
             embedded"
        ));
    }
    None
}

fn enterprise_missing(c: &Capabilities, what: &str) -> Option<String> {
    match &c.licence {
        Ok(l) if !l.enterprise() => Some(format!(
            "{what} needs an Enterprise licence or the trial; the licence is {} ({})",
            l.kind, l.status
        )),
        _ => None,
    }
}

/// Decide what runs. `Err` when the user insisted on something that cannot run
/// (`--mode semantic`, `--rerank`).
pub fn plan(
    mode: Mode,
    rerank: RerankChoice,
    rerank_id: &str,
    c: &Capabilities,
) -> Result<Plan, SearchError> {
    let elasticsearch = matches!(c.flavor, Flavor::Elasticsearch(_));
    let mut notices = Vec::new();
    let semantic_missing = semantic_unavailable(c);
    let retrieval = match (mode, &semantic_missing) {
        (Mode::Lexical, _) => Mode::Lexical,
        (Mode::Semantic, Some(why)) => {
            return Err(SearchError::Unavailable(format!(
                "semantic search is not available: {why}"
            )))
        }
        (Mode::Semantic, None) => Mode::Semantic,
        (Mode::Hybrid, Some(why)) => {
            notices.push(format!(
                "semantic search is not available, so this is a lexical (BM25) search only: {why}"
            ));
            Mode::Lexical
        }
        (Mode::Hybrid, None) => match enterprise_missing(c, "the rrf retriever") {
            Some(why) => {
                notices.push(format!(
                    "hybrid search is not available, so this is a lexical (BM25) search only: {why}"
                ));
                Mode::Lexical
            }
            None => Mode::Hybrid,
        },
    };
    if retrieval != Mode::Lexical && c.coverage.semantic.len() < c.coverage.indices.len() {
        notices.push(format!(
            "semantic search covers {} of the {} indices searched; lines in the others (indexed \
             before the semantic_text mapping was loaded) are found by BM25 only",
            c.coverage.semantic.len(),
            c.coverage.indices.len()
        ));
    }
    let rerank_missing = if !elasticsearch {
        Some("the cluster is not Elasticsearch".to_string())
    } else if let Some(why) = enterprise_missing(c, "the text_similarity_reranker retriever") {
        Some(why)
    } else {
        match &c.inference {
            Ok(list) => match list.iter().find(|e| e.id == rerank_id) {
                Some(e) if e.task_type == "rerank" => None,
                Some(e) => Some(format!(
                    "the inference endpoint {rerank_id} has task type {}, not rerank",
                    e.task_type
                )),
                None => Some(format!(
                    "the inference endpoint {rerank_id} does not exist (GET _inference/_all); \
                     it is preconfigured on Elasticsearch 9.x with machine learning enabled, or \
                     set search.rerank.inference_id to a rerank endpoint of yours"
                )),
            },
            Err(why) => Some(format!(
                "the inference endpoints could not be listed: {why}"
            )),
        }
    };
    let rerank = match (rerank, rerank_missing) {
        (RerankChoice::Off, _) => None,
        (RerankChoice::On, Some(why)) => {
            return Err(SearchError::Unavailable(format!(
                "reranking is not available: {why}"
            )))
        }
        (_, None) => Some(rerank_id.to_string()),
        (RerankChoice::Auto, Some(_)) => None,
    };
    if let Err(why) = &c.licence {
        if retrieval != Mode::Lexical {
            notices.push(format!(
                "could not read the licence ({why}); trying {} search anyway",
                retrieval.name()
            ));
        }
    }
    Ok(Plan {
        retrieval,
        rerank,
        elasticsearch,
        notices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(
        licence: &str,
        endpoints: &[(&str, &str)],
        semantic: usize,
        total: usize,
    ) -> Capabilities {
        Capabilities {
            flavor: Flavor::Elasticsearch("9.2.1".into()),
            licence: Ok(Licence {
                kind: licence.into(),
                status: "active".into(),
            }),
            inference: Ok(endpoints
                .iter()
                .map(|(id, t)| InferenceEndpoint {
                    id: id.to_string(),
                    task_type: t.to_string(),
                    service: "elasticsearch".into(),
                })
                .collect()),
            coverage: Coverage {
                indices: (0..total).map(|i| format!("i{i}")).collect(),
                semantic: (0..semantic).map(|i| format!("i{i}")).collect(),
            },
        }
    }

    const ALL: &[(&str, &str)] = &[
        (".elser-2-elasticsearch", "sparse_embedding"),
        (".rerank-v1-elasticsearch", "rerank"),
    ];

    #[test]
    fn full_stack_is_hybrid_and_reranked() {
        let p = plan(
            Mode::Hybrid,
            RerankChoice::Auto,
            ".rerank-v1-elasticsearch",
            &caps("trial", ALL, 2, 2),
        )
        .unwrap();
        assert_eq!(p.retrieval, Mode::Hybrid);
        assert_eq!(p.rerank.as_deref(), Some(".rerank-v1-elasticsearch"));
        assert!(p.notices.is_empty(), "{:?}", p.notices);
        let p = plan(
            Mode::Hybrid,
            RerankChoice::Off,
            ".rerank-v1-elasticsearch",
            &caps("enterprise", ALL, 2, 2),
        )
        .unwrap();
        assert_eq!(p.rerank, None);
    }

    #[test]
    fn basic_licence_falls_back_and_says_why() {
        let c = caps("basic", ALL, 2, 2);
        let p = plan(
            Mode::Hybrid,
            RerankChoice::Auto,
            ".rerank-v1-elasticsearch",
            &c,
        )
        .unwrap();
        assert_eq!(p.retrieval, Mode::Lexical);
        assert_eq!(p.rerank, None);
        assert!(p.notices[0].contains("licence is basic"), "{:?}", p.notices);
        assert!(p.notices[0].contains("start_trial"), "{:?}", p.notices);
        let e = plan(
            Mode::Semantic,
            RerankChoice::Auto,
            ".rerank-v1-elasticsearch",
            &c,
        )
        .unwrap_err();
        assert!(e.to_string().contains("licence is basic"), "{e}");
        let e = plan(
            Mode::Lexical,
            RerankChoice::On,
            ".rerank-v1-elasticsearch",
            &c,
        )
        .unwrap_err();
        assert!(e.to_string().contains("reranking is not available"), "{e}");
        // Platinum: the inference API on ML nodes is an Enterprise feature.
        let p = plan(
            Mode::Hybrid,
            RerankChoice::Auto,
            ".rerank-v1-elasticsearch",
            &caps("platinum", ALL, 2, 2),
        )
        .unwrap();
        assert_eq!(p.retrieval, Mode::Lexical);
    }

    #[test]
    fn missing_endpoint_or_field() {
        let c = caps("trial", &[(".rerank-v1-elasticsearch", "rerank")], 2, 2);
        let p = plan(
            Mode::Hybrid,
            RerankChoice::Auto,
            ".rerank-v1-elasticsearch",
            &c,
        )
        .unwrap();
        assert_eq!(p.retrieval, Mode::Lexical);
        assert!(
            p.notices[0].contains(".elser-2-elasticsearch does not exist"),
            "{:?}",
            p.notices
        );
        // Lexical is still reranked when the reranker exists.
        assert!(p.rerank.is_some());
        let c = caps("trial", ALL, 0, 3);
        let p = plan(
            Mode::Hybrid,
            RerankChoice::Auto,
            ".rerank-v1-elasticsearch",
            &c,
        )
        .unwrap();
        assert!(p.notices[0].contains("_rollover"), "{:?}", p.notices);
        let c = caps("trial", ALL, 1, 3);
        let p = plan(
            Mode::Hybrid,
            RerankChoice::Auto,
            ".rerank-v1-elasticsearch",
            &c,
        )
        .unwrap();
        assert_eq!(p.retrieval, Mode::Hybrid);
        assert!(
            p.notices[0].contains("covers 1 of the 3"),
            "{:?}",
            p.notices
        );
    }
}
