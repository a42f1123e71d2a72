//! `oxibeat setup` and `oxibeat export`: load the embedded `elasticsearch/` and `kibana/` assets
//! over the REST APIs, idempotently, one printed line per asset.
//!
//! Elasticsearch is reached with the official `elasticsearch` crate, Kibana with `reqwest`.
//! A re-run compares a content hash stored with each asset (`_meta.oxibeat.hash`;
//! `custom_settings.oxibeat_hash` for ML jobs; the job's `custom_settings.oxibeat_datafeed_hash`
//! for its datafeed) and reports `unchanged` without writing. Kibana objects are always
//! re-imported with `overwrite=true` and reported `created` or `updated`.

pub mod assets;
pub mod config;
pub mod elser_cost;
mod es;
mod kibana;

use std::fmt;
use std::io::Write;

pub use assets::{Asset, Kind, ASSETS};
pub use config::Connections;

use crate::config::{Config, ConfigError};

/// What to load. All `false` is treated as "everything", as `oxibeat setup` without flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selection {
    /// ILM policy, component and index templates, the licence and inference endpoint checks.
    pub index_management: bool,
    /// Ingest pipelines.
    pub pipelines: bool,
    /// ML anomaly detection jobs and datafeeds (opened, and started once their data exists).
    pub ml: bool,
    /// Kibana saved objects.
    pub dashboards: bool,
}

impl Selection {
    pub fn all() -> Selection {
        Selection {
            index_management: true,
            pipelines: true,
            ml: true,
            dashboards: true,
        }
    }

    /// No flag given means everything.
    pub fn or_all(self) -> Selection {
        if self == Selection::default() {
            Selection::all()
        } else {
            self
        }
    }
}

/// The result of one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// A check that passed (connection, licence, inference endpoint), with what it found.
    Ok(String),
    /// Not loaded on purpose: why (`licence basic`, a setting) and how to turn it on.
    /// Not a failure.
    Skipped {
        reason: String,
        hint: String,
    },
    /// Taken off the cluster because the licence no longer allows it, with what was done.
    Removed(String),
    /// With the server's reason and, where it helps, what to do.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Created => f.write_str("created"),
            Outcome::Updated => f.write_str("updated"),
            Outcome::Unchanged => f.write_str("unchanged"),
            Outcome::Ok(s) => write!(f, "ok ({s})"),
            Outcome::Skipped { reason, hint } => write!(f, "skipped ({reason}): {hint}"),
            Outcome::Removed(s) => write!(f, "removed: {s}"),
            Outcome::Failed(s) => write!(f, "failed: {s}"),
        }
    }
}

/// One printed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: String,
    pub name: String,
    pub outcome: Outcome,
    /// Extra state changes, e.g. "opened", "started", "start pending: no data yet ...".
    pub notes: Vec<String>,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.name, self.outcome)?;
        for n in &self.notes {
            write!(f, ", {n}")?;
        }
        Ok(())
    }
}

/// Everything setup did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub lines: Vec<Line>,
}

impl Report {
    /// Lines that failed; the CLI exits non-zero when there is any.
    pub fn failures(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| matches!(l.outcome, Outcome::Failed(_)))
            .count()
    }

    pub fn failed(&self) -> bool {
        self.failures() > 0
    }
}

/// Errors that stop setup before anything is sent. Server-side failures are lines of the
/// [`Report`] instead.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read {path}: {source}; fix the path in ssl.certificate_authorities")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid certificate in {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("unknown asset {0:?}; use one of: template, ilm-policy, pipelines, ml, dashboards")]
    UnknownAsset(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Collects lines, printing each as it is decided.
pub(crate) struct Printer<'a> {
    out: &'a mut dyn Write,
    report: Report,
}

impl Printer<'_> {
    pub(crate) fn line(
        &mut self,
        kind: &str,
        name: &str,
        outcome: Outcome,
        notes: Vec<String>,
    ) -> Result<(), SetupError> {
        let l = Line {
            kind: kind.to_string(),
            name: name.to_string(),
            outcome,
            notes,
        };
        writeln!(self.out, "{l}")?;
        match &l.outcome {
            Outcome::Failed(_) => tracing::warn!(kind, name, "setup asset failed"),
            o => tracing::debug!(kind, name, outcome = %o, "setup asset"),
        }
        self.report.lines.push(l);
        Ok(())
    }
}

/// `oxibeat setup`: connection settings from `cfg` (`output.elasticsearch`, `setup.kibana`,
/// `cloud`), one line per asset to `out`.
pub async fn run(cfg: &Config, sel: &Selection, out: &mut dyn Write) -> Result<Report, SetupError> {
    let conns = Connections::from_config(cfg)?;
    run_with(&conns, sel, out).await
}

/// Like [`run`], with resolved connections.
pub async fn run_with(
    conns: &Connections,
    sel: &Selection,
    out: &mut dyn Write,
) -> Result<Report, SetupError> {
    let sel = sel.or_all();
    let mut p = Printer {
        out,
        report: Report::default(),
    };
    if sel.index_management || sel.pipelines || sel.ml {
        let client = es::Es::new(&conns.elasticsearch)?;
        if client
            .check_connection(&mut p, &conns.elasticsearch)
            .await?
        {
            // ML and semantic_text inference are licensed features: read the licence first,
            // so that a basic licence skips them instead of failing on a 403.
            let licence = if sel.index_management || sel.ml {
                client.check_licence(&mut p).await?
            } else {
                es::Licence::unknown()
            };
            if sel.index_management {
                client.load(&mut p, Kind::IlmPolicy).await?;
            }
            if sel.pipelines {
                client.load(&mut p, Kind::IngestPipeline).await?;
            }
            if sel.index_management {
                let semantic = client
                    .check_inference(&mut p, &licence, conns.semantic)
                    .await?;
                if semantic {
                    elser_cost::report(&client, &mut p).await?;
                }
                client.load(&mut p, Kind::ComponentTemplate).await?;
                client
                    .load_semantic(&mut p, semantic, &licence, conns.semantic)
                    .await?;
                client.load(&mut p, Kind::IndexTemplate).await?;
            }
            if sel.ml {
                client.load_ml(&mut p, &licence).await?;
            }
        }
    }
    if sel.dashboards {
        let kb = kibana::Kibana::new(&conns.kibana)?;
        kb.import(&mut p).await?;
    }
    Ok(p.report)
}

/// `oxibeat export <asset>`: the asset as Kibana Dev Tools requests (`PUT path` then the
/// body), or the saved objects NDJSON for `dashboards`.
pub fn export(asset: &str) -> Result<String, SetupError> {
    let kinds: &[Kind] = match asset {
        "template" | "templates" | "index-template" => {
            &[Kind::ComponentTemplate, Kind::IndexTemplate]
        }
        "ilm-policy" | "ilm" => &[Kind::IlmPolicy],
        "pipelines" | "pipeline" => &[Kind::IngestPipeline],
        "ml" => &[Kind::MlJob, Kind::Datafeed],
        "dashboards" | "kibana" => return Ok(kibana_body().to_string()),
        other => return Err(SetupError::UnknownAsset(other.to_string())),
    };
    let mut s = String::new();
    for a in assets::of(kinds) {
        s.push_str(&format!(
            "PUT {}\n",
            a.kind.put_path(a.name).trim_start_matches('/')
        ));
        s.push_str(a.body.trim_end());
        s.push_str("\n\n");
    }
    Ok(s)
}

fn kibana_body() -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.kind == Kind::KibanaObjects)
        .map(|a| a.body)
        .unwrap_or("")
}

/// An error with its causes (`a: b: c`), with advice for TLS trust problems. URLs in the
/// messages carry no credentials: they are moved out of the URLs when the config is resolved.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    let mut s = parts.join(": ");
    let lower = s.to_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        s.push_str(
            " — the server's certificate is not trusted: add its CA to ssl.certificate_authorities \
             (or, for a test setup only, set ssl.verification_mode = \"none\")",
        );
    }
    s
}

/// The reason from an Elasticsearch or Kibana error body, with advice for licence and
/// credential errors.
pub(crate) fn explain(status: u16, body: &serde_json::Value) -> String {
    let err = &body["error"];
    let (typ, reason) = if err.is_object() {
        (
            err["type"].as_str().unwrap_or("").to_string(),
            err["reason"]
                .as_str()
                .or_else(|| err["root_cause"][0]["reason"].as_str())
                .unwrap_or("")
                .to_string(),
        )
    } else {
        (
            err.as_str().unwrap_or("").to_string(),
            body["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if body.is_string() {
                        body.as_str().unwrap_or("").chars().take(300).collect()
                    } else {
                        String::new()
                    }
                }),
        )
    };
    let mut s = format!("HTTP {status}");
    if !typ.is_empty() {
        s.push_str(&format!(" {typ}"));
    }
    if !reason.is_empty() {
        s.push_str(&format!(": {reason}"));
    }
    let lower = format!("{typ} {reason}").to_lowercase();
    if status == 403 && (lower.contains("license") || lower.contains("licence")) {
        s.push_str(
            " — machine learning needs a Platinum or Enterprise licence or the 30-day trial, \
             ELSER inference (semantic_text) an Enterprise licence or the trial: start it in \
             Kibana (Stack Management > License Management) or with \
             POST _license/start_trial?acknowledge=true, then run setup again",
        );
    } else if status == 401 {
        s.push_str(
            " — the credentials were rejected: check output.elasticsearch.username/password or \
             api_key (setup.kibana.* for Kibana), or cloud.auth",
        );
    } else if status == 403 {
        s.push_str(" — the user lacks a privilege for this API: see the reason above");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_names() {
        for n in assets::EXPORT_NAMES {
            let s = export(n).unwrap();
            assert!(!s.trim().is_empty(), "{n}");
        }
        assert!(export("template")
            .unwrap()
            .contains("PUT _index_template/oxibeat-logs"));
        assert!(export("ilm-policy")
            .unwrap()
            .contains("PUT _ilm/policy/oxibeat"));
        assert!(export("ml")
            .unwrap()
            .contains("PUT _ml/datafeeds/datafeed-oxibeat-log-rate"));
        assert!(export("dashboards")
            .unwrap()
            .contains("\"type\":\"dashboard\""));
        let e = export("nope").unwrap_err().to_string();
        assert!(e.contains("unknown asset \"nope\""), "{e}");
    }

    #[test]
    fn licence_errors_are_explained() {
        let body = serde_json::json!({"error":{"type":"security_exception",
            "reason":"current license is non-compliant for [ml]"},"status":403});
        let s = explain(403, &body);
        assert!(
            s.contains("current license is non-compliant for [ml]"),
            "{s}"
        );
        assert!(s.contains("trial"), "{s}");
        let s = explain(
            401,
            &serde_json::json!({"error":{"type":"security_exception","reason":"unable to authenticate user [elastic]"}}),
        );
        assert!(s.contains("credentials were rejected"), "{s}");
        let s = explain(
            400,
            &serde_json::json!({"statusCode":400,"error":"Bad Request","message":"Request must contain a kbn-xsrf header."}),
        );
        assert!(s.contains("kbn-xsrf"), "{s}");
    }

    #[test]
    fn selection_defaults_to_all() {
        assert_eq!(Selection::default().or_all(), Selection::all());
        let only = Selection {
            ml: true,
            ..Default::default()
        };
        assert_eq!(only.or_all(), only);
    }
}
