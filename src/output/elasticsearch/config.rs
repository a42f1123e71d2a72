//! `[output.elasticsearch]` options, with Filebeat 9.x's names and defaults
//! (libbeat/outputs/elasticsearch/config.go and config_presets.go). `oxibeat setup` reads the
//! same section for its connection (`crate::setup::config`).
//!
//! Differences from Filebeat, on purpose:
//! - `index` defaults to the data streams the stack's templates expect:
//!   `metrics-oxibeat.system-default` for metric events (they have `metricset`), else
//!   `logs-oxibeat.generic-default`; the ingest pipeline `oxibeat-logs-parse` reroutes log events
//!   to `logs-oxibeat.<format>-<namespace>` after parsing them, as Logstash would have.
//! - `max_retries` is accepted and ignored, as Filebeat ignores it for inputs with guaranteed
//!   delivery: retriable failures are retried forever.
//! - `dead_letter` (oxibeat's): the dead-letter file for events that even the dead-letter index
//!   refused, as the Kafka output has.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::units::Dur;
use crate::config::{ConfigError, Secret};
use crate::output::backoff::BackoffConfig;
use crate::output::dlq::DeadLetterConfig;
use crate::output::format::Router;
use crate::output::tls::SslConfig;

fn yes() -> bool {
    true
}

/// The data stream for log events when neither `index` nor `indices` is set.
pub const DEFAULT_LOGS_INDEX: &str = "logs-oxibeat.generic-default";
/// The data stream for metric events (events with a `metricset`) by default.
pub const DEFAULT_METRICS_INDEX: &str = "metrics-oxibeat.system-default";

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsOutputConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `host[:port]` or URLs; default port 9200; defaults to `localhost:9200`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `http` (default) or `https`, for hosts given without a scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// A path prefix in front of every API path (a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// `id:api_key` as Beats take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Extra HTTP headers on every request. Values are secrets (they often carry tokens).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Extra URL parameters on every bulk request.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// gzip level of the request bodies, 0 (off) to 9.
    #[serde(default = "EsOutputConfig::default_compression")]
    pub compression_level: u32,
    #[serde(default)]
    pub escape_html: bool,
    /// Concurrent bulk requests per host.
    #[serde(default = "EsOutputConfig::default_worker", alias = "workers")]
    pub worker: usize,
    #[serde(default = "yes")]
    pub loadbalance: bool,
    /// Events per bulk request; 0 or less: a queue batch is never split.
    #[serde(default = "EsOutputConfig::default_bulk")]
    pub bulk_max_size: i64,
    #[serde(default = "EsOutputConfig::default_timeout")]
    pub timeout: Dur,
    #[serde(default = "EsOutputConfig::default_idle")]
    pub idle_connection_timeout: Dur,
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// Format string for the target index or data stream (see the module comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    #[serde(default)]
    pub indices: Vec<IndexRule>,
    /// Ingest pipeline (format string); none by default (the data stream's default pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default)]
    pub pipelines: Vec<PipelineRule>,
    /// Accepted for compatibility; retries are infinite (see the module comment).
    #[serde(default = "EsOutputConfig::default_retries")]
    pub max_retries: i64,
    #[serde(default)]
    pub non_indexable_policy: NonIndexablePolicy,
    #[serde(default)]
    pub ssl: SslConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub proxy_disable: bool,
    #[serde(default)]
    pub preset: Preset,
    /// Filebeat 8.x+ default: a cluster older than the agent is allowed (oxibeat refuses
    /// Elasticsearch before 8.0 whatever this says, see `client::check_version`).
    #[serde(default = "yes")]
    pub allow_older_versions: bool,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
}

impl Default for EsOutputConfig {
    fn default() -> Self {
        // The same values as the serde defaults.
        toml::from_str("").expect("the defaults deserialise")
    }
}

impl std::fmt::Debug for EsOutputConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsOutputConfig")
            .field("hosts", &self.hosts)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("api_key", &self.api_key)
            .field("headers", &self.headers)
            .field("index", &self.index)
            .field("pipeline", &self.pipeline)
            .field("preset", &self.preset)
            .field("bulk_max_size", &self.bulk_max_size)
            .field("worker", &self.worker)
            .field("proxy_url", &self.proxy_url.as_deref().map(redact_url))
            .finish_non_exhaustive()
    }
}

/// A URL for logs and errors: user info removed.
pub fn redact_url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexRule {
    pub index: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<toml::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineRule {
    pub pipeline: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<toml::Value>,
}

/// `non_indexable_policy.drop` or `non_indexable_policy.dead_letter_index.index`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonIndexablePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<toml::Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_index: Option<DeadLetterIndex>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterIndex {
    pub index: String,
}

impl NonIndexablePolicy {
    /// The dead-letter index, `None` for `drop` (the default).
    pub fn dead_letter_index(&self, key: &str) -> Result<Option<&str>, ConfigError> {
        match (&self.drop, &self.dead_letter_index) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                key,
                "set either drop or dead_letter_index, not both",
            )),
            (_, Some(d)) if d.index.trim().is_empty() => Err(ConfigError::new(
                format!("{key}.dead_letter_index.index"),
                "must name an index, like \"oxibeat-dead-letter\"",
            )),
            (_, Some(d)) => Ok(Some(&d.index)),
            _ => Ok(None),
        }
    }
}

/// Filebeat's performance presets (`preset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The user's values (Filebeat's code default; its shipped filebeat.yml sets `balanced`).
    #[default]
    Custom,
    Balanced,
    Throughput,
    Scale,
    Latency,
}

/// What a preset sets (Filebeat's config_presets.go). `queue.mem.flush.*` are recorded for
/// the warning but have no oxibeat equivalent: the queue hands the output what is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetValues {
    pub bulk_max_size: i64,
    pub worker: usize,
    pub queue_mem_events: usize,
    pub flush_min_events: usize,
    pub flush_timeout: Duration,
    pub compression_level: u32,
    pub idle_connection_timeout: Duration,
}

impl Preset {
    pub fn values(self) -> Option<PresetValues> {
        let v = |bulk, worker, events, min, flush, idle| PresetValues {
            bulk_max_size: bulk,
            worker,
            queue_mem_events: events,
            flush_min_events: min,
            flush_timeout: Duration::from_secs(flush),
            compression_level: 1,
            idle_connection_timeout: Duration::from_secs(idle),
        };
        match self {
            Preset::Custom => None,
            Preset::Balanced => Some(v(1600, 1, 3200, 1600, 10, 3)),
            Preset::Throughput => Some(v(1600, 4, 12800, 1600, 5, 15)),
            Preset::Scale => Some(v(1600, 1, 3200, 1600, 20, 1)),
            Preset::Latency => Some(v(50, 1, 4100, 2050, 1, 60)),
        }
    }
}

impl EsOutputConfig {
    fn default_compression() -> u32 {
        1
    }
    fn default_worker() -> usize {
        1
    }
    fn default_bulk() -> i64 {
        1600
    }
    fn default_timeout() -> Dur {
        Dur(Duration::from_secs(90))
    }
    fn default_idle() -> Dur {
        Dur(Duration::from_secs(3))
    }
    fn default_retries() -> i64 {
        3
    }

    /// Read the raw section: typed, validated, and with the preset applied. Returns the keys
    /// the preset overrode (the caller logs one warning per key, as Filebeat does).
    pub fn from_raw(raw: &toml::Value, key: &str) -> Result<(Self, Vec<String>), ConfigError> {
        let mut cfg: EsOutputConfig = crate::config::typed(raw.clone(), key)?;
        cfg.validate(key)?;
        let overridden = cfg.apply_preset(raw);
        Ok((cfg, overridden))
    }

    /// Apply `preset` over the user's values; returns the user keys it replaced.
    pub fn apply_preset(&mut self, raw: &toml::Value) -> Vec<String> {
        let Some(p) = self.preset.values() else {
            return Vec::new();
        };
        let set = |k: &str| raw.get(k).is_some();
        let mut overridden = Vec::new();
        let mut note = |k: &str, user: String, preset: String| {
            if set(k) && user != preset {
                overridden.push(format!("{k} ({user} -> {preset})"));
            }
        };
        note(
            "bulk_max_size",
            self.bulk_max_size.to_string(),
            p.bulk_max_size.to_string(),
        );
        note("worker", self.worker.to_string(), p.worker.to_string());
        note(
            "compression_level",
            self.compression_level.to_string(),
            p.compression_level.to_string(),
        );
        note(
            "idle_connection_timeout",
            format!("{:?}", self.idle_connection_timeout.0),
            format!("{:?}", p.idle_connection_timeout),
        );
        self.bulk_max_size = p.bulk_max_size;
        self.worker = p.worker;
        self.compression_level = p.compression_level;
        self.idle_connection_timeout = Dur(p.idle_connection_timeout);
        overridden
    }

    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.compression_level > 9 {
            return Err(ConfigError::new(
                format!("{key}.compression_level"),
                format!(
                    "{} is out of range; use 0 (no compression) to 9",
                    self.compression_level
                ),
            ));
        }
        if self.worker == 0 {
            return Err(ConfigError::new(
                format!("{key}.worker"),
                "must be at least 1",
            ));
        }
        if self.username.is_some() && self.api_key.is_some() {
            return Err(ConfigError::new(
                key,
                "cannot set both api_key and username/password",
            ));
        }
        if let Some(k) = &self.api_key {
            if !k.expose().contains(':') {
                return Err(ConfigError::new(
                    format!("{key}.api_key"),
                    "expected \"id:api_key\" (the id and api_key values Elasticsearch returned, joined by a colon)",
                ));
            }
        }
        if let Some(p) = self.proxy_url.as_deref().filter(|_| !self.proxy_disable) {
            let u = url::Url::parse(p).map_err(|e| {
                ConfigError::new(
                    format!("{key}.proxy_url"),
                    format!("not a valid URL ({e}); write http://proxy:3128"),
                )
            })?;
            if !matches!(u.scheme(), "http" | "https" | "socks5" | "socks5h") {
                return Err(ConfigError::new(
                    format!("{key}.proxy_url"),
                    format!(
                        "scheme {:?} is not supported; use http, https or socks5",
                        u.scheme()
                    ),
                ));
            }
        }
        for (name, v) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(v.expose()).is_err()
            {
                return Err(ConfigError::new(
                    format!("{key}.headers.{name}"),
                    "not a valid HTTP header name or value",
                ));
            }
        }
        self.non_indexable_policy
            .dead_letter_index(&format!("{key}.non_indexable_policy"))?;
        self.index_router(key)?;
        self.pipeline_router(key)?;
        Ok(())
    }

    /// The index for each event: `indices` rules, then `index`, then the built-in default.
    pub fn index_router(&self, key: &str) -> Result<Router, ConfigError> {
        let rules_key = format!("{key}.indices");
        let index_key = format!("{key}.index");
        if self.index.is_none() && self.indices.is_empty() {
            let metrics = toml::Value::Table(toml::toml! { has_fields = ["metricset"] });
            return Router::new(
                [(DEFAULT_METRICS_INDEX, Some(&metrics))],
                &rules_key,
                "index",
                Some((DEFAULT_LOGS_INDEX, &index_key)),
            );
        }
        Router::new(
            self.indices
                .iter()
                .map(|r| (r.index.as_str(), r.when.as_ref())),
            &rules_key,
            "index",
            Some((
                self.index.as_deref().unwrap_or(DEFAULT_LOGS_INDEX),
                &index_key,
            )),
        )
    }

    /// The ingest pipeline for each event, if any: `pipelines` rules, then `pipeline`.
    pub fn pipeline_router(&self, key: &str) -> Result<Router, ConfigError> {
        let pipeline_key = format!("{key}.pipeline");
        Router::new(
            self.pipelines
                .iter()
                .map(|r| (r.pipeline.as_str(), r.when.as_ref())),
            &format!("{key}.pipelines"),
            "pipeline",
            self.pipeline.as_deref().map(|p| (p, pipeline_key.as_str())),
        )
    }

    /// Events per bulk request (`None`: no splitting).
    pub fn bulk_size(&self) -> Option<usize> {
        (self.bulk_max_size > 0).then_some(self.bulk_max_size as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> toml::Value {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn filebeat_defaults() {
        let c = EsOutputConfig::default();
        assert!(c.enabled && c.loadbalance && !c.escape_html);
        assert_eq!(c.compression_level, 1);
        assert_eq!(c.worker, 1);
        assert_eq!(c.bulk_max_size, 1600);
        assert_eq!(c.timeout.0, Duration::from_secs(90));
        assert_eq!(c.idle_connection_timeout.0, Duration::from_secs(3));
        assert_eq!(c.backoff.init.0, Duration::from_secs(1));
        assert_eq!(c.backoff.max.0, Duration::from_secs(60));
        assert_eq!(c.preset, Preset::Custom);
        assert_eq!(c.bulk_size(), Some(1600));
    }

    #[test]
    fn unknown_keys_and_ranges_name_the_key() {
        let e = EsOutputConfig::from_raw(&raw("bulk_max_sise = 5"), "output.elasticsearch")
            .unwrap_err();
        assert!(e.to_string().contains("bulk_max_sise"), "{e}");
        let e = EsOutputConfig::from_raw(&raw("compression_level = 12"), "output.elasticsearch")
            .unwrap_err();
        assert_eq!(e.key, "output.elasticsearch.compression_level");
        let e = EsOutputConfig::from_raw(
            &raw("username = \"u\"\napi_key = \"a:b\""),
            "output.elasticsearch",
        )
        .unwrap_err();
        assert!(e.message.contains("both"), "{e}");
        let e = EsOutputConfig::from_raw(&raw("api_key = \"nocolon\""), "output.elasticsearch")
            .unwrap_err();
        assert_eq!(e.key, "output.elasticsearch.api_key");
        assert!(!e.to_string().contains("nocolon"));
        let e = EsOutputConfig::from_raw(
            &raw("non_indexable_policy.drop = {}\nnon_indexable_policy.dead_letter_index = { index = \"x\" }"),
            "output.elasticsearch",
        )
        .unwrap_err();
        assert_eq!(e.key, "output.elasticsearch.non_indexable_policy");
        let e = EsOutputConfig::from_raw(&raw("index = \"logs-%{[a\""), "output.elasticsearch")
            .unwrap_err();
        assert_eq!(e.key, "output.elasticsearch.index");
    }

    #[test]
    fn presets_override_and_report_the_user_keys() {
        let (c, over) = EsOutputConfig::from_raw(
            &raw(
                "preset = \"throughput\"\nworker = 2\nbulk_max_size = 1600\ncompression_level = 5",
            ),
            "output.elasticsearch",
        )
        .unwrap();
        assert_eq!(c.worker, 4);
        assert_eq!(c.compression_level, 1);
        assert_eq!(c.idle_connection_timeout.0, Duration::from_secs(15));
        // bulk_max_size was set to the preset's own value: nothing to warn about.
        assert_eq!(over, ["worker (2 -> 4)", "compression_level (5 -> 1)"]);
        let (c, over) =
            EsOutputConfig::from_raw(&raw("preset = \"latency\""), "output.elasticsearch").unwrap();
        assert_eq!((c.bulk_max_size, c.worker), (50, 1));
        assert!(over.is_empty());
        assert_eq!(Preset::Latency.values().unwrap().queue_mem_events, 4100);
        assert!(
            EsOutputConfig::from_raw(&raw("preset = \"fast\""), "output.elasticsearch").is_err()
        );
    }

    #[test]
    fn default_index_by_event_kind() {
        use crate::processors::testutil::map;
        let c = EsOutputConfig::default();
        let r = c.index_router("output.elasticsearch").unwrap();
        let log = map(serde_json::json!({"message": "x"}));
        let metric = map(serde_json::json!({"metricset": {"name": "cpu"}}));
        assert_eq!(r.route(&log).unwrap(), DEFAULT_LOGS_INDEX);
        assert_eq!(r.route(&metric).unwrap(), DEFAULT_METRICS_INDEX);
        let (c, _) = EsOutputConfig::from_raw(
            &raw("index = \"x-%{[fields.app]:none}\"\n[[indices]]\nindex = \"errors\"\nwhen.equals = { \"log.level\" = \"error\" }"),
            "output.elasticsearch",
        )
        .unwrap();
        let r = c.index_router("output.elasticsearch").unwrap();
        assert_eq!(r.route(&log).unwrap(), "x-none");
        let err = map(serde_json::json!({"log": {"level": "error"}}));
        assert_eq!(r.route(&err).unwrap(), "errors");
        assert!(c
            .pipeline_router("output.elasticsearch")
            .unwrap()
            .select(&log)
            .is_none());
    }

    #[test]
    fn debug_hides_secrets() {
        let (c, _) = EsOutputConfig::from_raw(
            &raw("password = \"hunter2\"\nusername = \"u\"\nheaders = { Authorization = \"Bearer tok3n\" }\nproxy_url = \"http://pu:pp4ss@proxy:3128\""),
            "output.elasticsearch",
        )
        .unwrap();
        let d = format!("{c:?}");
        for s in ["hunter2", "tok3n", "pp4ss"] {
            assert!(!d.contains(s), "{s} leaked: {d}");
        }
    }
}
