//! One connection per host over the official `elasticsearch` crate (reqwest + rustls): TLS,
//! credentials, headers, proxy, gzip bodies, the `_bulk` call, and the version check.
//!
//! Credentials go into a sensitive `Authorization` default header (so the crate's credential
//! slot stays free for a client certificate); they never appear in logs or errors: errors name
//! the credential *type* only (`Auth::kind`).
//!
//! Version check (`GET /`): Elasticsearch 8.x and 9.x are accepted, older versions are refused
//! as Filebeat refuses them; OpenSearch 2.x and 3.x (`version.distribution = "opensearch"`)
//! are accepted, which Filebeat refuses. The `X-Elastic-Product` header is not required (the
//! crate does not check it and neither does oxibeat), so OpenSearch and proxies that drop it
//! work.

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use elasticsearch::auth::{ClientCertificate, Credentials};
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderName, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;

use crate::setup::config::{redact, Auth, Endpoint, Verify};

use super::config::EsOutputConfig;
use super::EsError;

/// What the cluster said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_name: String,
    pub distribution: Distribution,
    pub version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Elasticsearch,
    OpenSearch,
}

impl std::fmt::Display for ClusterInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = match self.distribution {
            Distribution::Elasticsearch => "Elasticsearch",
            Distribution::OpenSearch => "OpenSearch",
        };
        write!(f, "{d} {} (cluster {})", self.version, self.cluster_name)
    }
}

/// Check `GET /`'s body: the distribution and a supported major version.
pub fn check_version(body: &serde_json::Value) -> Result<ClusterInfo, String> {
    let version = body["version"]["number"]
        .as_str()
        .ok_or_else(|| {
            "the answer to GET / has no version.number; is this Elasticsearch?".to_string()
        })?
        .to_string();
    let distribution = match body["version"]["distribution"].as_str() {
        Some("opensearch") => Distribution::OpenSearch,
        _ => Distribution::Elasticsearch,
    };
    let major: u64 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("cannot read the version {version:?}"))?;
    let info = ClusterInfo {
        cluster_name: body["cluster_name"].as_str().unwrap_or("?").to_string(),
        distribution,
        version: version.clone(),
    };
    match distribution {
        Distribution::Elasticsearch if major < 8 => Err(format!(
            "Elasticsearch {version} is too old: oxibeat supports Elasticsearch 8.x and 9.x; upgrade the cluster"
        )),
        Distribution::OpenSearch if !(2..=3).contains(&major) => Err(format!(
            "OpenSearch {version} is not supported: oxibeat supports OpenSearch 2.x and 3.x"
        )),
        _ => Ok(info),
    }
}

impl Auth {
    /// The credential type for messages, never its value.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::None => "no credentials (none configured)",
            Auth::Basic { .. } => "username/password (basic authentication)",
            Auth::ApiKey(_) => "api_key",
        }
    }
}

/// One host.
pub struct Client {
    es: Elasticsearch,
    /// The host URL without credentials, for logs.
    pub url: String,
    compression: Option<flate2::Compression>,
    timeout: Duration,
    query: Vec<(String, String)>,
}

/// The outcome of one HTTP request.
pub enum Reply {
    /// A status and the whole body.
    Status(u16, Vec<u8>),
    /// No answer: connection refused or reset, timeout, TLS failure.
    Failed(String),
}

fn auth_header(auth: &Auth) -> Option<HeaderValue> {
    let text = match auth {
        Auth::None => return None,
        Auth::Basic { username, password } => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()))
        ),
        Auth::ApiKey(k) => format!(
            "ApiKey {}",
            base64::engine::general_purpose::STANDARD.encode(k.expose())
        ),
    };
    let mut v = HeaderValue::from_str(&text).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// The chain of causes of an error, for messages (reqwest hides the useful part in sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

impl Client {
    /// One client per URL of `ep`.
    pub fn all(cfg: &EsOutputConfig, ep: &Endpoint) -> Result<Vec<Client>, EsError> {
        ep.urls.iter().map(|u| Client::new(cfg, ep, u)).collect()
    }

    pub fn new(cfg: &EsOutputConfig, ep: &Endpoint, url: &url::Url) -> Result<Client, EsError> {
        let key = "output.elasticsearch";
        // The crate joins API paths onto the base URL: it must end with '/' to keep a prefix.
        let mut base = url.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(base))
            .timeout(cfg.timeout.0)
            .enable_meta_header(false);
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let (Ok(n), Ok(mut v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) else {
                return Err(EsError::Config(crate::config::ConfigError::new(
                    format!("{key}.headers.{name}"),
                    "not a valid HTTP header name or value",
                )));
            };
            v.set_sensitive(true);
            headers.insert(n, v);
        }
        if let Some(v) = auth_header(&ep.auth) {
            headers.insert(elasticsearch::http::headers::AUTHORIZATION, v);
        }
        builder = builder.headers(headers);
        if cfg.proxy_disable {
            builder = builder.disable_proxy();
        } else if let Some(p) = &cfg.proxy_url {
            let mut u = url::Url::parse(p).map_err(|e| {
                EsError::Config(crate::config::ConfigError::new(
                    format!("{key}.proxy_url"),
                    format!("not a valid URL ({e})"),
                ))
            })?;
            let user = u.username().to_string();
            let pass = u.password().map(str::to_string);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            builder = if user.is_empty() {
                builder.proxy(u, None, None)
            } else {
                builder.proxy(u, Some(&user), pass.as_deref())
            };
        }
        let ssl = &cfg.ssl;
        if ssl.enabled {
            match ep.verify {
                Verify::None => builder = builder.cert_validation(CertificateValidation::None),
                Verify::Full => {
                    if !ssl.certificate_authorities.is_empty() {
                        let mut bundle = Vec::new();
                        for p in &ssl.certificate_authorities {
                            bundle.extend(read(p, "ssl.certificate_authorities")?);
                            bundle.push(b'\n');
                        }
                        let cert = Certificate::from_pem(&bundle).map_err(|e| EsError::Tls {
                            key: format!("{key}.ssl.certificate_authorities"),
                            reason: e.to_string(),
                        })?;
                        builder = builder.cert_validation(CertificateValidation::Full(cert));
                    }
                }
            }
            match (&ssl.certificate, &ssl.key) {
                (Some(c), Some(k)) => {
                    let mut pem = read(c, "ssl.certificate")?;
                    pem.push(b'\n');
                    pem.extend(read(k, "ssl.key")?);
                    builder = builder.auth(Credentials::Certificate(ClientCertificate::Pem(pem)));
                }
                (None, None) => {}
                _ => {
                    return Err(EsError::Tls {
                        key: format!("{key}.ssl"),
                        reason: "set both certificate and key for a client certificate, or neither"
                            .into(),
                    })
                }
            }
        }
        let transport = builder.build().map_err(|e| EsError::Tls {
            key: key.into(),
            reason: error_chain(&e),
        })?;
        let compression =
            (cfg.compression_level > 0).then(|| flate2::Compression::new(cfg.compression_level));
        Ok(Client {
            es: Elasticsearch::new(transport),
            url: redact(url),
            compression,
            timeout: cfg.timeout.0,
            query: cfg
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// `GET /` and the version check. The error carries the status of a 401/403 answer.
    pub async fn info(&self) -> Result<ClusterInfo, (Option<u16>, String)> {
        match self.request(Method::Get, "", None, &[]).await {
            Reply::Status(200, body) => {
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| (None, format!("GET / did not answer JSON ({e})")))?;
                check_version(&v).map_err(|e| (None, e))
            }
            Reply::Status(s @ (401 | 403), _) => Err((
                Some(s),
                format!("the cluster refused the credentials with {s}"),
            )),
            Reply::Status(s, body) => Err((
                None,
                format!(
                    "GET / answered {s}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
            )),
            Reply::Failed(e) => Err((None, e)),
        }
    }

    /// `POST _bulk` with `body` (NDJSON, compressed here per `compression_level`).
    /// Returns the reply and the bytes written.
    pub async fn bulk(&self, body: &[u8]) -> (Reply, usize) {
        let (payload, gzip) = match self.compression {
            Some(level) => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), level);
                match enc.write_all(body).and_then(|_| enc.finish()) {
                    Ok(c) => (c, true),
                    Err(_) => (body.to_vec(), false),
                }
            }
            None => (body.to_vec(), false),
        };
        let n = payload.len();
        let mut extra = vec![(
            elasticsearch::http::headers::CONTENT_TYPE,
            "application/x-ndjson",
        )];
        if gzip {
            extra.push((elasticsearch::http::headers::CONTENT_ENCODING, "gzip"));
        }
        let path = if self.query.is_empty() {
            super::bulk::BULK_PATH.to_string()
        } else {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(self.query.iter())
                .finish();
            format!("{}&{q}", super::bulk::BULK_PATH)
        };
        (
            self.request(Method::Post, &path, Some(payload), &extra)
                .await,
            n,
        )
    }

    /// Any request (used by `test output` and replay too).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        extra: &[(HeaderName, &'static str)],
    ) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            elasticsearch::http::headers::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in extra {
            headers.insert(k.clone(), HeaderValue::from_static(v));
        }
        let res = self
            .es
            .send::<Vec<u8>, ()>(method, path, headers, None, body, Some(self.timeout))
            .await;
        match res {
            Ok(r) => {
                let status = r.status_code().as_u16();
                match r.bytes().await {
                    Ok(b) => Reply::Status(status, b.to_vec()),
                    Err(e) => Reply::Failed(format!(
                        "reading the answer of {}: {}",
                        self.url,
                        error_chain(&e)
                    )),
                }
            }
            Err(e) => Reply::Failed(format!("{}: {}", self.url, error_chain(&e))),
        }
    }
}

fn read(p: &std::path::Path, key: &str) -> Result<Vec<u8>, EsError> {
    std::fs::read(p).map_err(|e| EsError::Tls {
        key: format!("output.elasticsearch.{key}"),
        reason: format!("cannot read {}: {e}", p.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions() {
        let es = |v: &str| json!({"cluster_name": "c", "version": {"number": v}});
        let os = |v: &str| json!({"cluster_name": "c", "version": {"number": v, "distribution": "opensearch"}});
        assert!(check_version(&es("8.19.0")).is_ok());
        assert!(check_version(&es("9.2.1")).is_ok());
        let e = check_version(&es("7.17.9")).unwrap_err();
        assert!(e.contains("too old") && e.contains("7.17.9"), "{e}");
        let i = check_version(&os("3.8.0")).unwrap();
        assert_eq!(i.distribution, Distribution::OpenSearch);
        assert_eq!(i.to_string(), "OpenSearch 3.8.0 (cluster c)");
        assert!(check_version(&os("2.19.1")).is_ok());
        assert!(check_version(&os("1.3.0")).is_err());
        assert!(check_version(&json!({"tagline": "x"})).is_err());
    }

    #[test]
    fn auth_headers_and_kinds() {
        use crate::config::Secret;
        let b = auth_header(&Auth::Basic {
            username: "elastic".into(),
            password: Secret::new("changeme"),
        })
        .unwrap();
        assert_eq!(b.to_str().unwrap(), "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==");
        assert!(b.is_sensitive());
        let k = auth_header(&Auth::ApiKey(Secret::new("id:key"))).unwrap();
        assert_eq!(k.to_str().unwrap(), "ApiKey aWQ6a2V5");
        assert_eq!(Auth::ApiKey(Secret::new("x")).kind(), "api_key");
        assert!(auth_header(&Auth::None).is_none());
    }
}
