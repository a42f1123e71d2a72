//! `[output.elasticsearch]`: Beats JSON documents through the `_bulk` API of Elasticsearch 8.x /
//! 9.x or OpenSearch 2.x / 3.x, over the official `elasticsearch` crate. An event is acked to
//! the pipeline only when the cluster confirmed it (2xx, or 409 = already there), or when it was
//! accounted for as non-indexable (dropped with a count and a log line, sent to the dead-letter
//! index, or written to the dead-letter file). See README.md beside this file.
//!
//! - config.rs: options (Filebeat names and defaults), presets, index/pipeline routers.
//! - bulk.rs: bulk lines, the dead-letter-index document, the response parser.
//! - client.rs: one connection per host (TLS, credentials, proxy, gzip), the version check.
//! - output.rs: workers, per-item retry, request splitting, non-indexable policy.
//! - replay.rs: `oxibeat dlq replay` for this output.

pub mod bulk;
pub mod client;
pub mod config;
pub mod output;
pub mod replay;

use std::path::PathBuf;

use crate::config::{typed, ConfigError};
use crate::setup::config::{CloudConfig, Connections, Endpoint, SetupConfig, Verify};

pub use config::EsOutputConfig;
pub use output::run;

#[derive(Debug, thiserror::Error)]
pub enum EsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{key}: {reason}")]
    Tls { key: String, reason: String },
    #[error("output.elasticsearch: {0}")]
    Check(String),
    #[error("output.elasticsearch {0}")]
    DeadLetter(#[from] crate::output::dlq::DlqError),
}

/// The selected Elasticsearch output: its options and the resolved endpoint (hosts from
/// `hosts` or `cloud.id`, credentials from the options, the URLs or `cloud.auth`).
#[derive(Debug, Clone)]
pub struct EsOutput {
    pub cfg: EsOutputConfig,
    pub endpoint: Endpoint,
    /// Settings the preset replaced (one warning each at start).
    pub preset_overridden: Vec<String>,
    /// `path.data`, for the dead-letter directory.
    pub data_dir: PathBuf,
}

impl EsOutput {
    /// From the raw `[output.elasticsearch]` section (an empty table when only `cloud.id` is
    /// set) and `[cloud]`; `others` names other enabled outputs (cloud.id conflicts).
    pub fn from_raw(
        raw: &toml::Value,
        cloud: Option<&toml::Value>,
        others: &[&str],
    ) -> Result<EsOutput, ConfigError> {
        let key = "output.elasticsearch";
        let (cfg, preset_overridden) = EsOutputConfig::from_raw(raw, key)?;
        let cloud: CloudConfig = match cloud {
            Some(v) => typed(v.clone(), "cloud")?,
            None => CloudConfig::default(),
        };
        let endpoint =
            Connections::resolve(cfg.clone(), SetupConfig::default(), cloud, others)?.elasticsearch;
        if endpoint.urls.iter().any(|u| u.scheme() == "https") || cfg.ssl.certificate.is_some() {
            cfg.ssl
                .validate(key)
                .map_err(|e| ConfigError::new(format!("{key}.ssl"), e.to_string()))?;
        }
        Ok(EsOutput {
            cfg,
            endpoint,
            preset_overridden,
            data_dir: PathBuf::from("data"),
        })
    }

    /// The dead-letter directory: `dead_letter.path`, else `<path.data>/elasticsearch-dlq`.
    pub fn dead_letter_dir(&self) -> PathBuf {
        self.cfg.dead_letter.dir(&self.data_dir, replay::NAME)
    }

    /// `queue.mem.events` of the preset, if one is set.
    pub fn preset_queue_events(&self) -> Option<usize> {
        self.cfg.preset.values().map(|p| p.queue_mem_events)
    }
}

/// `oxibeat test output`: connection, TLS, credentials, version and licence of every host.
pub fn check(out: &EsOutput) -> Result<String, EsError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EsError::Check(format!("cannot start the runtime: {e}")))?;
    rt.block_on(check_async(out))
}

async fn check_async(out: &EsOutput) -> Result<String, EsError> {
    use elasticsearch::http::Method;
    let key = "output.elasticsearch";
    out.cfg.index_router(key)?;
    out.cfg.pipeline_router(key)?;
    let clients = client::Client::all(&out.cfg, &out.endpoint)?;
    let mut text = String::from("elasticsearch output:\n");
    for (c, url) in clients.iter().zip(&out.endpoint.urls) {
        text.push_str(&format!("  host {}\n", c.url));
        let tls = match (url.scheme(), &out.endpoint.verify) {
            ("https", Verify::Full) if out.cfg.ssl.certificate_authorities.is_empty() => {
                "verified against the public CAs".to_string()
            }
            ("https", Verify::Full) => format!(
                "verified against {}",
                out.cfg
                    .ssl
                    .certificate_authorities
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ("https", Verify::None) => "NOT verified (ssl.verification_mode = none)".to_string(),
            _ => "not used (http)".to_string(),
        };
        let info = c.info().await.map_err(|(_, e)| {
            EsError::Check(format!(
                "{}: {e} (credentials: {})",
                c.url,
                out.endpoint.auth.kind()
            ))
        })?;
        text.push_str(&format!("    connection: ok\n    TLS: {tls}\n"));
        text.push_str(&format!("    credentials: {}\n", out.endpoint.auth.kind()));
        text.push_str(&format!("    version: {info}: supported\n"));
        let licence = match info.distribution {
            client::Distribution::OpenSearch => {
                "not applicable (OpenSearch has no licence API)".to_string()
            }
            client::Distribution::Elasticsearch => {
                match c.request(Method::Get, "_license", None, &[]).await {
                    client::Reply::Status(200, b) => {
                        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
                        format!(
                            "{} ({})",
                            v["license"]["type"].as_str().unwrap_or("?"),
                            v["license"]["status"].as_str().unwrap_or("?")
                        )
                    }
                    client::Reply::Status(s @ (401 | 403), _) => {
                        return Err(EsError::Check(format!(
                            "{}: the cluster refused the credentials ({}) with {s}",
                            c.url,
                            out.endpoint.auth.kind()
                        )))
                    }
                    client::Reply::Status(s, _) => format!("unknown (GET /_license answered {s})"),
                    client::Reply::Failed(e) => format!("unknown ({e})"),
                }
            }
        };
        text.push_str(&format!("    licence: {licence}\n"));
        // A bulk of nothing checks that the write path and credentials work end to end.
        match c.bulk(b"").await.0 {
            client::Reply::Status(s @ (401 | 403), _) => {
                return Err(EsError::Check(format!(
                    "{}: the cluster refused the credentials ({}) with {s} on _bulk",
                    c.url,
                    out.endpoint.auth.kind()
                )))
            }
            client::Reply::Failed(e) => return Err(EsError::Check(e)),
            _ => {}
        }
    }
    let idx = out.cfg.index_router(key)?.constants();
    text.push_str(&format!("  index: {}\n", idx.join(", ")));
    if let Some(dli) = out
        .cfg
        .non_indexable_policy
        .dead_letter_index(&format!("{key}.non_indexable_policy"))?
    {
        text.push_str(&format!("  dead-letter index: {dli}\n"));
    }
    Ok(text.trim_end().to_string())
}
