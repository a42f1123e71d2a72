//! HTTP to Elasticsearch for `oxibeat search`: reqwest with rustls, the resolved
//! [`Endpoint`] of `[output.elasticsearch]`/`[cloud]` (auth, CAs, verification), failover to
//! the next host on connection errors, and one error type whose messages never carry
//! credentials.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::SearchError;
use crate::setup::config::{Auth, Endpoint, Verify};

/// A response: status and body (JSON, or the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub struct Client {
    http: reqwest::Client,
    urls: Vec<url::Url>,
    auth: Auth,
    timeout: Duration,
}

impl Client {
    pub fn new(ep: &Endpoint, timeout: Duration) -> Result<Client, SearchError> {
        // The per-request timeout is set on each request (streams get a longer one).
        let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        match ep.verify {
            Verify::None => b = b.danger_accept_invalid_certs(true),
            Verify::Full => {
                for path in &ep.ca_files {
                    let shown = path.display().to_string();
                    let pem = std::fs::read(path).map_err(|e| SearchError::Setup(format!(
                        "cannot read {shown}: {e}; fix the path in output.elasticsearch.ssl.certificate_authorities"
                    )))?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                        SearchError::Setup(format!("invalid certificate in {shown}: {e}"))
                    })?;
                    for c in certs {
                        b = b.add_root_certificate(c);
                    }
                }
            }
        }
        let http = b
            .build()
            .map_err(|e| SearchError::Setup(format!("cannot build the HTTP client: {e}")))?;
        if ep.urls.is_empty() {
            return Err(SearchError::Setup(
                "no Elasticsearch host configured".into(),
            ));
        }
        Ok(Client {
            http,
            urls: ep.urls.clone(),
            auth: ep.auth.clone(),
            timeout,
        })
    }

    /// The first host, without credentials, for messages.
    pub fn shown(&self) -> String {
        self.urls
            .first()
            .map(crate::setup::config::redact)
            .unwrap_or_default()
    }

    fn request(
        &self,
        base: &url::Url,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{}", base.as_str().trim_end_matches('/'), path);
        let rb = self.http.request(method, url);
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

    /// Send, trying the next host when one cannot be reached.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<reqwest::Response, SearchError> {
        let mut last = None;
        for base in &self.urls {
            let mut rb = self
                .request(base, method.clone(), path)
                .timeout(timeout)
                .header("Accept", "application/json");
            if let Some(b) = body {
                rb = rb
                    .header("Content-Type", "application/json")
                    .body(b.to_string());
            }
            match rb.send().await {
                Ok(r) => {
                    tracing::debug!(path, status = r.status().as_u16(), "elasticsearch");
                    return Ok(r);
                }
                Err(e) => {
                    let err = transport_error(&e, &crate::setup::config::redact(base), timeout);
                    let retry = e.is_connect();
                    last = Some(err);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| SearchError::Setup("no Elasticsearch host configured".into())))
    }

    pub async fn get(&self, path: &str) -> Result<Resp, SearchError> {
        let r = self
            .send(reqwest::Method::GET, path, None, self.timeout)
            .await?;
        read(r, self.timeout).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Resp, SearchError> {
        self.post_with(path, body, self.timeout).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Resp, SearchError> {
        let r = self
            .send(reqwest::Method::POST, path, Some(body), timeout)
            .await?;
        read(r, timeout).await
    }

    /// A request whose answer is read as it arrives (server-sent events).
    pub async fn post_stream(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<reqwest::Response, SearchError> {
        self.send(reqwest::Method::POST, path, Some(body), timeout)
            .await
    }
}

async fn read(r: reqwest::Response, timeout: Duration) -> Result<Resp, SearchError> {
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| {
        if e.is_timeout() {
            SearchError::Timeout {
                secs: timeout.as_secs(),
            }
        } else {
            SearchError::Transport(format!("reading the response: {e}"))
        }
    })?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Resp { status, body })
}

fn transport_error(e: &reqwest::Error, shown: &str, timeout: Duration) -> SearchError {
    if e.is_timeout() {
        return SearchError::Timeout {
            secs: timeout.as_secs(),
        };
    }
    let chain = crate::setup::error_chain(e);
    if e.is_connect() {
        return SearchError::Unreachable {
            url: shown.to_string(),
            reason: chain,
        };
    }
    SearchError::Transport(format!("{shown}: {chain}"))
}

/// Percent-encode one path segment (index patterns keep `*` and `,`).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' | b',' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
