//! Kibana side of setup: saved objects import (`overwrite=true`, `kbn-xsrf`) over reqwest.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::assets::{Kind, ASSETS};
use super::config::{Auth, Endpoint, Verify};
use super::es::read_cas;
use super::{explain, Outcome, Printer, SetupError};

pub(crate) struct Kibana {
    http: reqwest::Client,
    base: url::Url,
    shown: String,
    auth: Auth,
}

impl Kibana {
    pub(crate) fn new(ep: &Endpoint) -> Result<Kibana, SetupError> {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(120));
        match ep.verify {
            Verify::None => b = b.danger_accept_invalid_certs(true),
            Verify::Full => {
                for (path, pem) in read_cas(ep)? {
                    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                        SetupError::Certificate {
                            path,
                            reason: e.to_string(),
                        }
                    })?;
                    for c in certs {
                        b = b.add_root_certificate(c);
                    }
                }
            }
        }
        let http = b.build().map_err(|e| SetupError::Client(e.to_string()))?;
        let base = ep
            .urls
            .first()
            .cloned()
            .ok_or_else(|| SetupError::Client("no Kibana host".into()))?;
        Ok(Kibana {
            http,
            shown: ep.display(),
            base,
            auth: ep.auth.clone(),
        })
    }

    fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.base.as_str().trim_end_matches('/'),
            path_and_query
        )
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self
            .http
            .request(method, self.url(path))
            .header("kbn-xsrf", "oxibeat");
        match &self.auth {
            Auth::None => rb,
            Auth::Basic { username, password } => rb.basic_auth(username, Some(password.expose())),
            Auth::ApiKey(k) => rb.header(
                "Authorization",
                format!(
                    "ApiKey {}",
                    base64::engine::general_purpose::STANDARD.encode(k.expose())
                ),
            ),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
        let r = rb.send().await.map_err(|e| {
            format!(
                "cannot reach Kibana at {}: {}",
                self.shown,
                super::error_chain(&e)
            )
        })?;
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .map_err(|e| format!("reading Kibana's response: {e}"))?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Which of `objects` (type, id) already exist; `None` if Kibana would not say.
    async fn existing(&self, objects: &[(String, String)]) -> Option<HashSet<(String, String)>> {
        let req: Vec<Value> = objects
            .iter()
            .map(|(t, i)| json!({"type": t, "id": i}))
            .collect();
        let (status, body) = self
            .send(
                self.request(reqwest::Method::POST, "/api/saved_objects/_bulk_get")
                    .json(&req),
            )
            .await
            .ok()?;
        if !(200..300).contains(&status) {
            return None;
        }
        Some(
            body["saved_objects"]
                .as_array()?
                .iter()
                .filter(|o| o.get("error").is_none())
                .filter_map(|o| Some((o["type"].as_str()?.into(), o["id"].as_str()?.into())))
                .collect(),
        )
    }

    pub(crate) async fn import(&self, p: &mut Printer<'_>) -> Result<(), SetupError> {
        let Some(asset) = ASSETS.iter().find(|a| a.kind == Kind::KibanaObjects) else {
            return Ok(());
        };
        let mut objects = Vec::new();
        let mut titles = Vec::new();
        for line in asset.body.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            if let (Some(t), Some(i)) = (v["type"].as_str(), v["id"].as_str()) {
                objects.push((t.to_string(), i.to_string()));
                titles.push(v["attributes"]["title"].as_str().unwrap_or(i).to_string());
            }
        }
        let before = self.existing(&objects).await;
        let part = reqwest::multipart::Part::bytes(asset.body.as_bytes().to_vec())
            .file_name("oxibeat.ndjson")
            .mime_str("application/ndjson")
            .map_err(|e| SetupError::Client(e.to_string()))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let res = self
            .send(
                self.request(
                    reqwest::Method::POST,
                    "/api/saved_objects/_import?overwrite=true",
                )
                .multipart(form),
            )
            .await;
        let body = match res {
            Ok((s, b)) if (200..300).contains(&s) => b,
            Ok((s, b)) => {
                return p.line(
                    "Kibana",
                    &self.shown,
                    Outcome::Failed(explain(s, &b)),
                    vec![],
                )
            }
            Err(e) => return p.line("Kibana", &self.shown, Outcome::Failed(e), vec![]),
        };
        let errors: Vec<&Value> = body["errors"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for ((typ, id), title) in objects.iter().zip(&titles) {
            let kind = format!("Kibana {typ}");
            let name = format!("{id} ({title})");
            let err = errors
                .iter()
                .find(|e| e["type"].as_str() == Some(typ) && e["id"].as_str() == Some(id));
            let outcome = match (err, &before) {
                (Some(e), _) => {
                    let inner = &e["error"];
                    let mut s = inner["type"].as_str().unwrap_or("error").to_string();
                    if let Some(m) = inner["message"].as_str() {
                        s.push_str(&format!(": {m}"));
                    }
                    if let Some(refs) = inner["references"].as_array() {
                        let list: Vec<String> = refs
                            .iter()
                            .map(|r| {
                                format!(
                                    "{}:{}",
                                    r["type"].as_str().unwrap_or("?"),
                                    r["id"].as_str().unwrap_or("?")
                                )
                            })
                            .collect();
                        s.push_str(&format!(" (missing references: {})", list.join(", ")));
                    }
                    Outcome::Failed(s)
                }
                (None, Some(set)) if set.contains(&(typ.clone(), id.clone())) => Outcome::Updated,
                (None, Some(_)) => Outcome::Created,
                (None, None) => Outcome::Ok("imported".into()),
            };
            p.line(&kind, &name, outcome, vec![])?;
        }
        Ok(())
    }
}
