//! `[search]`: where `oxibeat search` looks and how strict it is. The connection comes from
//! `[output.elasticsearch]`, `[cloud]` and `[setup.kibana]`, as for `oxibeat setup`.
//!
//! ```toml
//! [search]
//! index = "logs-oxibeat.*-*"
//! timeout = "30s"
//! min_score = { lexical = 1.0, semantic = 5.0 }   # raw-score relevance floors (see README)
//! rerank = { inference_id = ".rerank-v1-elasticsearch", window = 30 }
//! answer = { hits = 8, llm = ".rainbow-sprinkles-elastic", timeout = "120s" }
//! ```

use serde::{Deserialize, Serialize};

use crate::config::units::Dur;
use crate::config::{typed, Config, ConfigError};

/// The data streams the stack writes (`logs-oxibeat.<format>-<namespace>`).
pub const DEFAULT_INDEX: &str = "logs-oxibeat.*-*";
/// The preconfigured Elastic Rerank endpoint of Elasticsearch 9.x.
pub const DEFAULT_RERANK_ID: &str = ".rerank-v1-elasticsearch";

fn default_index() -> String {
    DEFAULT_INDEX.into()
}
fn default_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(30))
}
fn default_answer_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(120))
}
fn default_lexical() -> f64 {
    1.0
}
fn default_semantic() -> f64 {
    5.0
}
fn default_rerank_id() -> String {
    DEFAULT_RERANK_ID.into()
}
fn default_rerank_window() -> usize {
    30
}
fn default_hits() -> usize {
    8
}
fn default_line_chars() -> usize {
    2000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Index pattern, data stream or alias searched.
    #[serde(default = "default_index")]
    pub index: String,
    /// Per request to Elasticsearch.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    #[serde(default)]
    pub min_score: MinScores,
    #[serde(default)]
    pub rerank: RerankConfig,
    #[serde(default)]
    pub answer: AnswerConfig,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            index: default_index(),
            timeout: default_timeout(),
            min_score: MinScores::default(),
            rerank: RerankConfig::default(),
            answer: AnswerConfig::default(),
        }
    }
}

/// Relevance floors on raw scores, applied by Elasticsearch (`min_score`) in each retriever.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MinScores {
    /// BM25 score of the `match` on `message`.
    #[serde(default = "default_lexical")]
    pub lexical: f64,
    /// ELSER score of the `match` on the `semantic_text` field.
    #[serde(default = "default_semantic")]
    pub semantic: f64,
    /// Reranker score (Elasticsearch maps the model's score `s` to `max(s,0) + min(exp(s),1)`,
    /// so 1.0 means "the model's raw score is at least 0"). Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank: Option<f64>,
}

impl Default for MinScores {
    fn default() -> Self {
        MinScores {
            lexical: default_lexical(),
            semantic: default_semantic(),
            rerank: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RerankConfig {
    #[serde(default = "default_rerank_id")]
    pub inference_id: String,
    /// How many of the first-stage hits the reranker scores (at least `--size`).
    #[serde(default = "default_rerank_window")]
    pub window: usize,
}

impl Default for RerankConfig {
    fn default() -> Self {
        RerankConfig {
            inference_id: default_rerank_id(),
            window: default_rerank_window(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerConfig {
    /// How many top hits are given to the model, numbered [1]..[n].
    #[serde(default = "default_hits")]
    pub hits: usize,
    /// Inference endpoint id; default: the Elastic managed LLM, else the first
    /// chat_completion or completion endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<String>,
    #[serde(default = "default_answer_timeout")]
    pub timeout: Dur,
    /// Longest text of one line in the prompt (characters); longer ones are cut.
    #[serde(default = "default_line_chars")]
    pub max_chars_per_line: usize,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        AnswerConfig {
            hits: default_hits(),
            llm: None,
            timeout: default_answer_timeout(),
            max_chars_per_line: default_line_chars(),
        }
    }
}

impl SearchConfig {
    /// `[search]` of `cfg`, with key paths in errors.
    pub fn from_config(cfg: &Config) -> Result<SearchConfig, ConfigError> {
        let c: SearchConfig = match &cfg.search {
            Some(v) => typed(v.clone(), "search")?,
            None => SearchConfig::default(),
        };
        if c.index.trim().is_empty() {
            return Err(ConfigError::new("search.index", "must not be empty"));
        }
        if c.answer.hits == 0 {
            return Err(ConfigError::new("search.answer.hits", "must be at least 1"));
        }
        for (k, v) in [
            ("search.min_score.lexical", c.min_score.lexical),
            ("search.min_score.semantic", c.min_score.semantic),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ConfigError::new(k, "must be a number >= 0"));
            }
        }
        Ok(c)
    }
}

/// Whether `[setup.kibana] host` (or `cloud.id`, which sets it) is configured: only then is a
/// Discover URL printed.
pub fn kibana_configured(cfg: &Config) -> bool {
    let host = cfg
        .setup
        .as_ref()
        .and_then(|s| s.get("kibana"))
        .and_then(|k| k.get("host"))
        .and_then(toml::Value::as_str)
        .is_some_and(|h| !h.trim().is_empty());
    let cloud = cfg
        .cloud
        .as_ref()
        .and_then(|c| c.get("id"))
        .and_then(toml::Value::as_str)
        .is_some_and(|h| !h.trim().is_empty());
    host || cloud
}
