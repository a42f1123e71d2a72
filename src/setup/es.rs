//! Elasticsearch side of setup, over the official `elasticsearch` crate.

use std::time::Duration;

use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, TransportBuilder,
};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use serde_json::{json, Value};

use super::assets::{self, Asset, Kind};
use super::config::{Auth, Endpoint, Verify};
use super::{explain, Outcome, Printer, SetupError};

const TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Es {
    client: Elasticsearch,
}

/// A response: status and JSON body (a string body is kept as a JSON string).
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl Resp {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub(crate) fn read_cas(ep: &Endpoint) -> Result<Vec<(String, Vec<u8>)>, SetupError> {
    ep.ca_files
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(|b| (p.display().to_string(), b))
                .map_err(|source| SetupError::CaFile {
                    path: p.display().to_string(),
                    source,
                })
        })
        .collect()
}

impl Es {
    pub(crate) fn new(ep: &Endpoint) -> Result<Es, SetupError> {
        let mut builder = if ep.urls.len() > 1 {
            TransportBuilder::new(MultiNodeConnectionPool::round_robin(ep.urls.clone(), None))
        } else {
            let url = ep
                .urls
                .first()
                .cloned()
                .ok_or_else(|| SetupError::Client("no Elasticsearch host".into()))?;
            TransportBuilder::new(SingleNodeConnectionPool::new(url))
        };
        builder = builder.timeout(TIMEOUT);
        match &ep.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                builder = builder.auth(Credentials::Basic(
                    username.clone(),
                    password.expose().to_string(),
                ));
            }
            Auth::ApiKey(k) => {
                let (id, key) = k.expose().split_once(':').unwrap_or((k.expose(), ""));
                builder = builder.auth(Credentials::ApiKey(id.to_string(), key.to_string()));
            }
        }
        match ep.verify {
            Verify::None => builder = builder.cert_validation(CertificateValidation::None),
            Verify::Full => {
                let cas = read_cas(ep)?;
                if !cas.is_empty() {
                    // One bundle: the crate reads every certificate of a PEM chain.
                    let mut bundle = Vec::new();
                    for (path, pem) in &cas {
                        Certificate::from_pem(pem).map_err(|e| SetupError::Certificate {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                        bundle.extend_from_slice(pem);
                        bundle.push(b'\n');
                    }
                    let names: Vec<&str> = cas.iter().map(|(p, _)| p.as_str()).collect();
                    let cert =
                        Certificate::from_pem(&bundle).map_err(|e| SetupError::Certificate {
                            path: names.join(", "),
                            reason: e.to_string(),
                        })?;
                    builder = builder.cert_validation(CertificateValidation::Full(cert));
                }
            }
        }
        let transport = builder
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        Ok(Es {
            client: Elasticsearch::new(transport),
        })
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Resp, String> {
        let res = match body {
            Some(b) => {
                self.client
                    .send(
                        method,
                        path,
                        HeaderMap::new(),
                        None::<&()>,
                        Some(b.to_string().into_bytes()),
                        None,
                    )
                    .await
            }
            None => {
                self.client
                    .send::<Vec<u8>, ()>(method, path, HeaderMap::new(), None, None, None)
                    .await
            }
        }
        .map_err(|e| format!("cannot reach Elasticsearch: {}", super::error_chain(&e)))?;
        let status = res.status_code().as_u16();
        let text = res
            .text()
            .await
            .map_err(|e| format!("reading the response: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Resp { status, body })
    }

    /// `GET /`: prints the cluster and version; false when Elasticsearch cannot be used.
    pub(crate) async fn check_connection(
        &self,
        p: &mut Printer<'_>,
        ep: &Endpoint,
    ) -> Result<bool, SetupError> {
        let outcome = match self.call(Method::Get, "/", None).await {
            Ok(r) if r.ok() => Outcome::Ok(format!(
                "cluster {}, version {}",
                r.body["cluster_name"].as_str().unwrap_or("?"),
                r.body["version"]["number"].as_str().unwrap_or("?")
            )),
            Ok(r) => Outcome::Failed(explain(r.status, &r.body)),
            Err(e) => Outcome::Failed(e),
        };
        let usable = !matches!(outcome, Outcome::Failed(_));
        p.line("Elasticsearch", &ep.display(), outcome, vec![])?;
        Ok(usable)
    }

    /// The hash of what the server holds for `a`, `None` if it does not exist.
    async fn existing_hash(&self, a: &Asset) -> Result<Option<Option<String>>, String> {
        let path = a.kind.put_path(a.name);
        let r = self.call(Method::Get, &path, None).await?;
        if r.status == 404 {
            return Ok(None);
        }
        if !r.ok() {
            return Err(explain(r.status, &r.body));
        }
        let b = &r.body;
        let meta = match a.kind {
            Kind::IlmPolicy => &b[a.name]["policy"]["_meta"],
            Kind::IngestPipeline => &b[a.name]["_meta"],
            Kind::ComponentTemplate => &b["component_templates"][0]["component_template"]["_meta"],
            Kind::IndexTemplate => &b["index_templates"][0]["index_template"]["_meta"],
            _ => &Value::Null,
        };
        Ok(Some(meta["oxibeat"]["hash"].as_str().map(str::to_string)))
    }

    /// The body sent: the asset with its hash in `_meta.oxibeat.hash`.
    fn stamped(a: &Asset) -> Result<Value, String> {
        let mut v = a
            .json()
            .map_err(|e| format!("embedded asset is not JSON: {e}"))?;
        let meta = if a.kind == Kind::IlmPolicy {
            &mut v["policy"]["_meta"]
        } else {
            &mut v["_meta"]
        };
        if !meta.is_object() {
            *meta = json!({});
        }
        if !meta["oxibeat"].is_object() {
            meta["oxibeat"] = json!({});
        }
        meta["oxibeat"]["hash"] = json!(a.hash());
        Ok(v)
    }

    async fn put_if_changed(&self, a: &Asset) -> Result<Outcome, String> {
        let existing = self.existing_hash(a).await?;
        let hash = a.hash();
        if let Some(Some(h)) = &existing {
            if *h == hash {
                return Ok(Outcome::Unchanged);
            }
        }
        let body = Self::stamped(a)?;
        let r = self
            .call(Method::Put, &a.kind.put_path(a.name), Some(&body))
            .await?;
        if !r.ok() {
            return Err(explain(r.status, &r.body));
        }
        Ok(if existing.is_some() {
            Outcome::Updated
        } else {
            Outcome::Created
        })
    }

    /// Load every asset of `kind` but the semantic component template.
    pub(crate) async fn load(&self, p: &mut Printer<'_>, kind: Kind) -> Result<(), SetupError> {
        for a in assets::of(&[kind]).filter(|a| a.name != assets::SEMANTIC_TEMPLATE) {
            let outcome = self.put_if_changed(a).await.unwrap_or_else(Outcome::Failed);
            p.line(kind.label(), a.name, outcome, vec![])?;
        }
        Ok(())
    }

    /// The semantic component template, loaded only if the inference endpoint answered.
    pub(crate) async fn load_semantic(
        &self,
        p: &mut Printer<'_>,
        inference_ok: bool,
    ) -> Result<(), SetupError> {
        let Some(a) =
            assets::of(&[Kind::ComponentTemplate]).find(|a| a.name == assets::SEMANTIC_TEMPLATE)
        else {
            return Ok(());
        };
        let outcome = if inference_ok {
            self.put_if_changed(a).await.unwrap_or_else(Outcome::Failed)
        } else {
            Outcome::Failed(format!(
                "not loaded because the inference endpoint {} is not available; without it, \
                 warn/error lines keep oxibeat.semantic_message as a plain field and semantic \
                 search is off. Run setup again once ML is licensed",
                assets::INFERENCE_ID
            ))
        };
        p.line(Kind::ComponentTemplate.label(), a.name, outcome, vec![])
    }

    /// The `semantic_text` field needs the ELSER inference endpoint; true if it answered.
    pub(crate) async fn check_inference(&self, p: &mut Printer<'_>) -> Result<bool, SetupError> {
        let id = assets::INFERENCE_ID;
        let outcome = match self
            .call(Method::Get, &format!("/_inference/{id}"), None)
            .await
        {
            Ok(r) if r.ok() => {
                let ep = &r.body["endpoints"][0];
                Outcome::Ok(format!(
                    "{} via service {}",
                    ep["task_type"].as_str().unwrap_or("?"),
                    ep["service"].as_str().unwrap_or("?")
                ))
            }
            Ok(r) if r.status == 404 => Outcome::Failed(format!(
                "{}; the semantic_text field oxibeat.semantic_message needs it: it is preconfigured \
                 on Elasticsearch 9.x with machine learning enabled (trial, Platinum or Enterprise \
                 licence)",
                explain(r.status, &r.body)
            )),
            Ok(r) => Outcome::Failed(explain(r.status, &r.body)),
            Err(e) => Outcome::Failed(e),
        };
        let ok = !matches!(outcome, Outcome::Failed(_));
        p.line("inference endpoint", id, outcome, vec![])?;
        Ok(ok)
    }

    /// ML jobs and their datafeeds: create when missing, then open the job and start the feed.
    pub(crate) async fn load_ml(&self, p: &mut Printer<'_>) -> Result<(), SetupError> {
        for a in assets::of(&[Kind::MlJob, Kind::Datafeed]) {
            let (outcome, notes) = match a.kind {
                Kind::MlJob => self.ensure_job(a).await,
                _ => self.ensure_datafeed(a).await,
            };
            p.line(a.kind.label(), a.name, outcome, notes)?;
        }
        Ok(())
    }

    async fn ensure_job(&self, a: &Asset) -> (Outcome, Vec<String>) {
        let mut notes = Vec::new();
        let outcome = match self.create_job(a).await {
            Ok(o) => o,
            Err(e) => return (Outcome::Failed(e), notes),
        };
        match self
            .state(&format!("/_ml/anomaly_detectors/{}/_stats", a.name), "jobs")
            .await
        {
            Ok(s) if s == "opened" || s == "opening" => {}
            Ok(_) => {
                match self
                    .call(
                        Method::Post,
                        &format!("/_ml/anomaly_detectors/{}/_open", a.name),
                        None,
                    )
                    .await
                {
                    Ok(r) if r.ok() => notes.push("opened".into()),
                    Ok(r) => {
                        return (
                            Outcome::Failed(format!("open: {}", explain(r.status, &r.body))),
                            notes,
                        )
                    }
                    Err(e) => return (Outcome::Failed(e), notes),
                }
            }
            Err(e) => return (Outcome::Failed(e), notes),
        }
        (outcome, notes)
    }

    async fn create_job(&self, a: &Asset) -> Result<Outcome, String> {
        let path = a.kind.put_path(a.name);
        let r = self.call(Method::Get, &path, None).await?;
        let hash = a.hash();
        if r.ok() {
            let have = r.body["jobs"][0]["custom_settings"]["oxibeat_hash"].as_str();
            return if have == Some(hash.as_str()) {
                Ok(Outcome::Unchanged)
            } else {
                Err(format!(
                    "the job exists with a different configuration, and an anomaly detection \
                     job's analysis cannot be changed in place; to replace it: \
                     POST _ml/datafeeds/datafeed-{0}/_stop, DELETE _ml/datafeeds/datafeed-{0}, \
                     POST _ml/anomaly_detectors/{0}/_close, DELETE _ml/anomaly_detectors/{0}, \
                     then run setup again",
                    a.name
                ))
            };
        }
        if r.status != 404 {
            return Err(explain(r.status, &r.body));
        }
        let mut body = a
            .json()
            .map_err(|e| format!("embedded asset is not JSON: {e}"))?;
        if !body["custom_settings"].is_object() {
            body["custom_settings"] = json!({});
        }
        body["custom_settings"]["oxibeat_hash"] = json!(hash);
        let r = self.call(Method::Put, &path, Some(&body)).await?;
        if r.ok() {
            Ok(Outcome::Created)
        } else {
            Err(explain(r.status, &r.body))
        }
    }

    async fn ensure_datafeed(&self, a: &Asset) -> (Outcome, Vec<String>) {
        let mut notes = Vec::new();
        let outcome = match self.create_datafeed(a).await {
            Ok(o) => o,
            Err(e) => return (Outcome::Failed(e), notes),
        };
        match self
            .state(&format!("/_ml/datafeeds/{}/_stats", a.name), "datafeeds")
            .await
        {
            Ok(s) if s == "started" || s == "starting" => {}
            Ok(_) => {
                match self
                    .call(
                        Method::Post,
                        &format!("/_ml/datafeeds/{}/_start", a.name),
                        None,
                    )
                    .await
                {
                    Ok(r) if r.ok() => notes.push("started".into()),
                    Ok(r) => {
                        return (
                            Outcome::Failed(format!("start: {}", explain(r.status, &r.body))),
                            notes,
                        )
                    }
                    Err(e) => return (Outcome::Failed(e), notes),
                }
            }
            Err(e) => return (Outcome::Failed(e), notes),
        }
        (outcome, notes)
    }

    /// Datafeeds hold no metadata, so their content hash is kept in their job's
    /// `custom_settings.oxibeat_datafeed_hash`. A changed datafeed is stopped and updated in
    /// place (`ensure_datafeed` starts it again).
    async fn create_datafeed(&self, a: &Asset) -> Result<Outcome, String> {
        let path = a.kind.put_path(a.name);
        let want = a
            .json()
            .map_err(|e| format!("embedded asset is not JSON: {e}"))?;
        let job = want["job_id"].as_str().unwrap_or_default().to_string();
        let hash = a.hash();
        let r = self.call(Method::Get, &path, None).await?;
        if r.status == 404 {
            let r = self.call(Method::Put, &path, Some(&want)).await?;
            if !r.ok() {
                return Err(explain(r.status, &r.body));
            }
            self.record_datafeed_hash(&job, &hash).await?;
            return Ok(Outcome::Created);
        }
        if !r.ok() {
            return Err(explain(r.status, &r.body));
        }
        if r.body["datafeeds"][0]["job_id"] != want["job_id"] {
            return Err(format!(
                "the datafeed exists for another job; stop and delete it \
                 (POST _ml/datafeeds/{0}/_stop, DELETE _ml/datafeeds/{0}) and run setup again",
                a.name
            ));
        }
        let jr = self
            .call(Method::Get, &format!("/_ml/anomaly_detectors/{job}"), None)
            .await?;
        if jr.ok() && jr.body["jobs"][0]["custom_settings"]["oxibeat_datafeed_hash"] == hash {
            return Ok(Outcome::Unchanged);
        }
        let state = self
            .state(&format!("/_ml/datafeeds/{}/_stats", a.name), "datafeeds")
            .await?;
        if state == "started" || state == "starting" {
            let r = self
                .call(
                    Method::Post,
                    &format!("/_ml/datafeeds/{}/_stop", a.name),
                    None,
                )
                .await?;
            if !r.ok() {
                return Err(format!(
                    "stop before update: {}",
                    explain(r.status, &r.body)
                ));
            }
        }
        let mut update = want.clone();
        if let Some(o) = update.as_object_mut() {
            o.remove("job_id");
        }
        let r = self
            .call(
                Method::Post,
                &format!("/_ml/datafeeds/{}/_update", a.name),
                Some(&update),
            )
            .await?;
        if !r.ok() {
            return Err(format!("update: {}", explain(r.status, &r.body)));
        }
        self.record_datafeed_hash(&job, &hash).await?;
        Ok(Outcome::Updated)
    }

    /// Store the datafeed's hash in its job's `custom_settings` (which `_update` replaces as a
    /// whole, so the other keys are sent again).
    async fn record_datafeed_hash(&self, job: &str, hash: &str) -> Result<(), String> {
        let path = format!("/_ml/anomaly_detectors/{job}");
        let r = self.call(Method::Get, &path, None).await?;
        if !r.ok() {
            return Err(explain(r.status, &r.body));
        }
        let mut settings = r.body["jobs"][0]["custom_settings"].clone();
        if !settings.is_object() {
            settings = json!({});
        }
        settings["oxibeat_datafeed_hash"] = json!(hash);
        let r = self
            .call(
                Method::Post,
                &format!("{path}/_update"),
                Some(&json!({ "custom_settings": settings })),
            )
            .await?;
        if r.ok() {
            Ok(())
        } else {
            Err(format!(
                "recording the datafeed version on job {job}: {}",
                explain(r.status, &r.body)
            ))
        }
    }

    /// `state` of the first entry of `list` in a `_stats` response.
    async fn state(&self, path: &str, list: &str) -> Result<String, String> {
        let r = self.call(Method::Get, path, None).await?;
        if !r.ok() {
            return Err(explain(r.status, &r.body));
        }
        Ok(r.body[list][0]["state"].as_str().unwrap_or("").to_string())
    }
}
