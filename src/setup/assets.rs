//! The stack assets, embedded in the binary so `oxibeat setup` works without the repository.
//! The files under `elasticsearch/` and `kibana/` are the single source; this list names them.

use sha2::{Digest, Sha256};

/// What an asset is, which decides the API that loads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    IlmPolicy,
    IngestPipeline,
    ComponentTemplate,
    IndexTemplate,
    MlJob,
    Datafeed,
    KibanaObjects,
}

impl Kind {
    /// The label printed in front of the asset name.
    pub fn label(self) -> &'static str {
        match self {
            Kind::IlmPolicy => "ILM policy",
            Kind::IngestPipeline => "ingest pipeline",
            Kind::ComponentTemplate => "component template",
            Kind::IndexTemplate => "index template",
            Kind::MlJob => "ML job",
            Kind::Datafeed => "ML datafeed",
            Kind::KibanaObjects => "Kibana saved objects",
        }
    }

    /// The API path that creates or replaces the named asset.
    pub fn put_path(self, name: &str) -> String {
        match self {
            Kind::IlmPolicy => format!("/_ilm/policy/{name}"),
            Kind::IngestPipeline => format!("/_ingest/pipeline/{name}"),
            Kind::ComponentTemplate => format!("/_component_template/{name}"),
            Kind::IndexTemplate => format!("/_index_template/{name}"),
            Kind::MlJob => format!("/_ml/anomaly_detectors/{name}"),
            Kind::Datafeed => format!("/_ml/datafeeds/{name}"),
            Kind::KibanaObjects => "/api/saved_objects/_import?overwrite=true".into(),
        }
    }
}

/// One embedded asset.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub kind: Kind,
    pub name: &'static str,
    /// Repository path of the source file.
    pub file: &'static str,
    pub body: &'static str,
}

impl Asset {
    /// The body as JSON (the embedded files are checked by tests, so this only fails on a
    /// broken build).
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(self.body)
    }

    /// A content hash stored with the asset on the server, so a re-run can tell "unchanged".
    pub fn hash(&self) -> String {
        let canonical = self
            .json()
            .map(|v| v.to_string())
            .unwrap_or_else(|_| self.body.to_string());
        let digest = Sha256::digest(canonical.as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

macro_rules! asset {
    ($kind:expr, $name:literal, $file:literal) => {
        Asset {
            kind: $kind,
            name: $name,
            file: $file,
            body: include_str!(concat!("../../", $file)),
        }
    };
}

/// All assets, in load order.
pub const ASSETS: &[Asset] = &[
    asset!(Kind::IlmPolicy, "oxibeat", "elasticsearch/ilm/oxibeat.json"),
    asset!(
        Kind::IngestPipeline,
        "oxibeat-logs-parse",
        "elasticsearch/ingest_pipelines/oxibeat-logs-parse.json"
    ),
    asset!(
        Kind::IngestPipeline,
        "oxibeat-logs",
        "elasticsearch/ingest_pipelines/oxibeat-logs.json"
    ),
    asset!(
        Kind::IngestPipeline,
        "oxibeat-metrics",
        "elasticsearch/ingest_pipelines/oxibeat-metrics.json"
    ),
    asset!(
        Kind::ComponentTemplate,
        "oxibeat-logs-settings",
        "elasticsearch/component_templates/oxibeat-logs-settings.json"
    ),
    asset!(
        Kind::ComponentTemplate,
        "oxibeat-logs-mappings",
        "elasticsearch/component_templates/oxibeat-logs-mappings.json"
    ),
    asset!(
        Kind::ComponentTemplate,
        "oxibeat-logs-semantic",
        "elasticsearch/component_templates/oxibeat-logs-semantic.json"
    ),
    asset!(
        Kind::ComponentTemplate,
        "oxibeat-metrics-settings",
        "elasticsearch/component_templates/oxibeat-metrics-settings.json"
    ),
    asset!(
        Kind::ComponentTemplate,
        "oxibeat-metrics-mappings",
        "elasticsearch/component_templates/oxibeat-metrics-mappings.json"
    ),
    asset!(
        Kind::IndexTemplate,
        "oxibeat-logs",
        "elasticsearch/index_templates/oxibeat-logs.json"
    ),
    asset!(
        Kind::IndexTemplate,
        "oxibeat-metrics",
        "elasticsearch/index_templates/oxibeat-metrics.json"
    ),
    asset!(
        Kind::MlJob,
        "oxibeat-log-rate",
        "elasticsearch/ml/jobs/oxibeat-log-rate.json"
    ),
    asset!(
        Kind::Datafeed,
        "datafeed-oxibeat-log-rate",
        "elasticsearch/ml/datafeeds/datafeed-oxibeat-log-rate.json"
    ),
    asset!(
        Kind::MlJob,
        "oxibeat-log-categories",
        "elasticsearch/ml/jobs/oxibeat-log-categories.json"
    ),
    asset!(
        Kind::Datafeed,
        "datafeed-oxibeat-log-categories",
        "elasticsearch/ml/datafeeds/datafeed-oxibeat-log-categories.json"
    ),
    asset!(
        Kind::MlJob,
        "oxibeat-host-metrics",
        "elasticsearch/ml/jobs/oxibeat-host-metrics.json"
    ),
    asset!(
        Kind::Datafeed,
        "datafeed-oxibeat-host-metrics",
        "elasticsearch/ml/datafeeds/datafeed-oxibeat-host-metrics.json"
    ),
    asset!(Kind::KibanaObjects, "oxibeat", "kibana/oxibeat.ndjson"),
];

/// The inference endpoint the `semantic_text` field names.
pub const INFERENCE_ID: &str = ".elser-2-elasticsearch";

/// The component template holding the `semantic_text` field: loaded only when the inference
/// endpoint answers, since indexing into `semantic_text` fails without an ML licence (the index
/// template lists it in `ignore_missing_component_templates`).
pub const SEMANTIC_TEMPLATE: &str = "oxibeat-logs-semantic";

/// Assets of the given kinds, in load order.
pub fn of(kinds: &[Kind]) -> impl Iterator<Item = &'static Asset> + '_ {
    ASSETS.iter().filter(move |a| kinds.contains(&a.kind))
}

/// The names `oxibeat export` accepts.
pub const EXPORT_NAMES: &[&str] = &["template", "ilm-policy", "pipelines", "ml", "dashboards"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_asset_parses_and_names_match_files() {
        for a in ASSETS.iter().filter(|a| a.kind != Kind::KibanaObjects) {
            let v = a.json().unwrap_or_else(|e| panic!("{}: {e}", a.file));
            assert!(v.is_object(), "{}", a.file);
            let stem = a
                .file
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".json"));
            assert_eq!(stem, Some(a.name), "{}", a.file);
        }
        for line in ASSETS
            .iter()
            .filter(|a| a.kind == Kind::KibanaObjects)
            .flat_map(|a| a.body.lines())
            .filter(|l| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line).expect("ndjson line");
            assert!(v.get("type").is_some() && v.get("id").is_some(), "{line}");
        }
    }

    #[test]
    fn datafeeds_follow_their_jobs() {
        let list: Vec<_> = ASSETS.iter().collect();
        for (i, a) in list.iter().enumerate() {
            if a.kind == Kind::Datafeed {
                let job = a.json().unwrap()["job_id"].as_str().unwrap().to_string();
                assert_eq!(a.name, format!("datafeed-{job}"));
                assert!(list[..i]
                    .iter()
                    .any(|j| j.kind == Kind::MlJob && j.name == job));
            }
        }
    }
}
