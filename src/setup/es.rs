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

/// What the cluster's licence allows, from `GET _xpack`.
#[derive(Debug, Clone)]
pub(crate) struct Licence {
    /// `basic`, `trial`, `platinum`, `enterprise`, ... or `unknown`.
    pub(crate) kind: String,
    pub(crate) status: String,
    /// ML anomaly detection: licensed and enabled on the cluster.
    pub(crate) ml: bool,
    /// The licence allows ML, but `xpack.ml.enabled` is false.
    pub(crate) ml_disabled: bool,
    /// Inference on Elasticsearch-hosted models (ELSER), which `semantic_text` needs.
    pub(crate) inference: bool,
}

impl Licence {
    /// Not reported (no `_xpack` API, or no privilege to read it): everything is tried.
    pub(crate) fn unknown() -> Licence {
        Licence {
            kind: "unknown".into(),
            status: "unknown".into(),
            ml: true,
            ml_disabled: false,
            inference: true,
        }
    }

    /// From a `GET _xpack` body: `license.{type,status}` and `features.ml.{available,enabled}`
    /// (`XPackInfoResponse`). An expired licence allows neither.
    pub(crate) fn from_xpack(b: &Value) -> Licence {
        let kind = b["license"]["type"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        let status = b["license"]["status"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        let active = status == "active";
        let ml_feature = &b["features"]["ml"];
        let ml_licensed = match ml_feature["available"].as_bool() {
            Some(a) => a && active,
            None => active && matches!(kind.as_str(), "platinum" | "enterprise" | "trial"),
        };
        let ml_enabled = ml_feature["enabled"].as_bool().unwrap_or(true);
        Licence {
            inference: active && matches!(kind.as_str(), "enterprise" | "trial"),
            ml: ml_licensed && ml_enabled,
            ml_disabled: ml_licensed && !ml_enabled,
            kind,
            status,
        }
    }

    fn reason(&self) -> String {
        if self.status == "active" || self.status == "unknown" {
            format!("licence {}", self.kind)
        } else {
            format!("licence {} {}", self.kind, self.status)
        }
    }

    /// Why ML assets are not loaded, and how to get them.
    pub(crate) fn ml_skip(&self) -> Outcome {
        if self.ml_disabled {
            return Outcome::Skipped {
                reason: "machine learning is disabled on the cluster".into(),
                hint: "set xpack.ml.enabled: true on the nodes, then run oxibeat setup --ml".into(),
            };
        }
        Outcome::Skipped {
            reason: self.reason(),
            hint: "anomaly detection needs a Platinum or Enterprise licence or the 30-day trial; \
                   start the trial with POST _license/start_trial?acknowledge=true (or in Kibana: \
                   Stack Management > License Management), then run oxibeat setup --ml"
                .into(),
        }
    }

    /// Why the semantic component template is not loaded, and how to get it.
    pub(crate) fn semantic_skip(&self) -> Outcome {
        Outcome::Skipped {
            reason: self.reason(),
            hint: format!(
                "semantic search needs inference on the {} endpoint, which an Enterprise licence \
                 or the 30-day trial allows; with it, run oxibeat setup --index-management",
                assets::INFERENCE_ID
            ),
        }
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

    /// `GET _xpack`: the licence type and what it allows. ML anomaly detection needs Platinum,
    /// Enterprise or the trial (`MachineLearningField.ML_API_FEATURE`); inference on an
    /// Elasticsearch-hosted model such as ELSER, which every write into a `semantic_text`
    /// field calls, needs Enterprise or the trial (`InferencePlugin.INFERENCE_API_FEATURE`).
    /// Without this check a basic licence fails on 403s, and a `semantic_text` mapping is
    /// accepted but every document written into it is then rejected.
    pub(crate) async fn check_licence(&self, p: &mut Printer<'_>) -> Result<Licence, SetupError> {
        let (licence, outcome) = match self
            .call(Method::Get, "/_xpack?categories=license,features", None)
            .await
        {
            Ok(r) if r.ok() => {
                let l = Licence::from_xpack(&r.body);
                let yes_no = |b: bool| if b { "available" } else { "not available" };
                let o = Outcome::Ok(format!(
                    "{}; machine learning: {}; semantic search (inference): {}",
                    l.status,
                    yes_no(l.ml),
                    yes_no(l.inference)
                ));
                (l, o)
            }
            Ok(r) => (
                Licence::unknown(),
                Outcome::Ok(format!(
                    "not reported ({}); machine learning and semantic search are tried",
                    explain(r.status, &r.body)
                )),
            ),
            Err(e) => return Err(SetupError::Client(e)),
        };
        p.line("licence", &licence.kind, outcome, vec![])?;
        Ok(licence)
    }

    /// The semantic component template: loaded when wanted (`setup.semantic.enabled`), allowed
    /// by the licence and the inference endpoint answered. When the licence no longer allows
    /// inference (a trial that ended), a copy left on the cluster is removed and the logs data
    /// streams are rolled over, or every warn/error line would be rejected.
    pub(crate) async fn load_semantic(
        &self,
        p: &mut Printer<'_>,
        endpoint_ok: bool,
        licence: &Licence,
        wanted: bool,
    ) -> Result<(), SetupError> {
        let Some(a) =
            assets::of(&[Kind::ComponentTemplate]).find(|a| a.name == assets::SEMANTIC_TEMPLATE)
        else {
            return Ok(());
        };
        let outcome = if !licence.inference {
            match self.remove_semantic(a, licence).await {
                Ok(Some(done)) => Outcome::Removed(done),
                Ok(None) => licence.semantic_skip(),
                Err(e) => Outcome::Failed(e),
            }
        } else if !wanted {
            Outcome::Skipped {
                reason: "setup.semantic.enabled is false".into(),
                hint: "semantic search is off; set setup.semantic.enabled = true to load it".into(),
            }
        } else if endpoint_ok {
            self.put_if_changed(a).await.unwrap_or_else(Outcome::Failed)
        } else {
            Outcome::Failed(format!(
                "not loaded because the inference endpoint {} is not available; without it, \
                 warn/error lines keep oxibeat.semantic_message as a plain field and semantic \
                 search is off. Run setup again once the endpoint exists",
                assets::INFERENCE_ID
            ))
        };
        p.line(Kind::ComponentTemplate.label(), a.name, outcome, vec![])
    }

    /// Delete our semantic component template if the cluster has it, then roll over every
    /// `logs-oxibeat.*-*` data stream so new backing indices have no `semantic_text` field.
    /// `None` when there was nothing to remove.
    async fn remove_semantic(
        &self,
        a: &Asset,
        licence: &Licence,
    ) -> Result<Option<String>, String> {
        let path = a.kind.put_path(a.name);
        let r = self.call(Method::Get, &path, None).await?;
        if r.status == 404 {
            return Ok(None);
        }
        if !r.ok() {
            return Err(explain(r.status, &r.body));
        }
        let r = self.call(Method::Delete, &path, None).await?;
        if !r.ok() {
            return Err(format!(
                "the licence no longer allows semantic_text inference, but the component \
                 template could not be deleted: {}",
                explain(r.status, &r.body)
            ));
        }
        let r = self
            .call(Method::Get, "/_data_stream/logs-oxibeat.*-*", None)
            .await?;
        if !r.ok() {
            return Err(format!(
                "deleted; listing the logs data streams to roll them over: {}",
                explain(r.status, &r.body)
            ));
        }
        let names: Vec<String> = r.body["data_streams"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|d| d["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for n in &names {
            let r = self
                .call(Method::Post, &format!("/{n}/_rollover"), None)
                .await?;
            if !r.ok() {
                return Err(format!(
                    "deleted; rolling over {n}: {}; roll it over yourself (POST {n}/_rollover)",
                    explain(r.status, &r.body)
                ));
            }
        }
        Ok(Some(format!(
            "the licence ({}) no longer allows semantic_text inference, so warn/error lines \
             would be rejected; rolled over {} data stream(s){}{}",
            licence.kind,
            names.len(),
            if names.is_empty() { "" } else { ": " },
            names.join(", ")
        )))
    }

    /// The `semantic_text` field needs the ELSER inference endpoint; true if it answered.
    /// Not asked when the field is not wanted or the licence does not allow inference (the
    /// endpoint answers GETs on any licence, so it proves nothing about indexing).
    pub(crate) async fn check_inference(
        &self,
        p: &mut Printer<'_>,
        licence: &Licence,
        wanted: bool,
    ) -> Result<bool, SetupError> {
        if !wanted || !licence.inference {
            return Ok(false);
        }
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
                 on Elasticsearch 9.x with machine learning enabled (trial or Enterprise licence)",
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
    /// With a licence that does not allow ML, every ML asset is a "skipped" line and no ML API
    /// is called.
    pub(crate) async fn load_ml(
        &self,
        p: &mut Printer<'_>,
        licence: &Licence,
    ) -> Result<(), SetupError> {
        for a in assets::of(&[Kind::MlJob, Kind::Datafeed]) {
            if !licence.ml {
                p.line(a.kind.label(), a.name, licence.ml_skip(), vec![])?;
                continue;
            }
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
                match self.unmapped_fields(a).await {
                    Ok(None) => {}
                    Ok(Some(pending)) => {
                        notes.push(pending);
                        return (outcome, notes);
                    }
                    Err(e) => return (Outcome::Failed(e), notes),
                }
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

    /// Why the datafeed cannot start yet, or `None` when it can. `_start` first builds the data
    /// extractor from the field capabilities of the datafeed's indices, and fails with "cannot
    /// retrieve field [f] because it has no mappings" for every field the job reads that no
    /// index maps, no index matching at all included (`ExtractedFields` in the ML plugin). So
    /// before data exists (the first document creates the data stream) the start is left
    /// pending, not failed.
    async fn unmapped_fields(&self, feed: &Asset) -> Result<Option<String>, String> {
        let want = feed
            .json()
            .map_err(|e| format!("embedded asset is not JSON: {e}"))?;
        let job_id = want["job_id"].as_str().unwrap_or_default();
        let job = assets::of(&[Kind::MlJob])
            .find(|j| j.name == job_id)
            .ok_or_else(|| format!("no embedded job {job_id} for this datafeed"))?
            .json()
            .map_err(|e| format!("embedded asset is not JSON: {e}"))?;
        let fields = job_input_fields(&job);
        let indices: Vec<&str> = want["indices"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let target = indices.join(",");
        let r = self
            .call(
                Method::Get,
                &format!(
                    "/{target}/_field_caps?fields={}&ignore_unavailable=true&allow_no_indices=true",
                    fields.join(",")
                ),
                None,
            )
            .await?;
        if !r.ok() {
            return Err(format!(
                "reading the field capabilities of {target}: {}",
                explain(r.status, &r.body)
            ));
        }
        let again = "run oxibeat setup --ml again once data arrives";
        if r.body["indices"].as_array().map_or(true, |l| l.is_empty()) {
            return Ok(Some(format!(
                "start pending: no data yet (nothing matches {target}); {again}"
            )));
        }
        let missing: Vec<&String> = fields
            .iter()
            .filter(|f| r.body["fields"].get(f.as_str()).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(None);
        }
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        Ok(Some(format!(
            "start pending: no data yet for [{}] in {target} (no index maps them); {again}",
            list.join(", ")
        )))
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

/// The fields an anomaly detection job reads: its detectors' fields, the categorisation and
/// summary count fields, the influencers and the time field, without the `mlcategory` the job
/// makes itself (`Job.allInputFields` in the ML plugin).
pub(crate) fn job_input_fields(job: &Value) -> Vec<String> {
    let ac = &job["analysis_config"];
    let mut out = std::collections::BTreeSet::new();
    for d in ac["detectors"].as_array().into_iter().flatten() {
        for k in [
            "field_name",
            "by_field_name",
            "over_field_name",
            "partition_field_name",
        ] {
            if let Some(f) = d[k].as_str() {
                out.insert(f.to_string());
            }
        }
    }
    for k in ["categorization_field_name", "summary_count_field_name"] {
        if let Some(f) = ac[k].as_str() {
            out.insert(f.to_string());
        }
    }
    for f in ac["influencers"].as_array().into_iter().flatten() {
        if let Some(f) = f.as_str() {
            out.insert(f.to_string());
        }
    }
    out.insert(
        job["data_description"]["time_field"]
            .as_str()
            .unwrap_or("time")
            .to_string(),
    );
    out.remove("mlcategory");
    out.into_iter().collect()
}
