//! Typed `[output.elasticsearch]`, `[setup]` and `[cloud]` sections (Filebeat option names), and
//! their resolution into the connections `oxibeat setup` uses, with `cloud.id` applied as Beats'
//! `OverwriteSettings` does.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cloudid;
use crate::config::{typed, Config, ConfigError};

pub use crate::config::Secret;
pub use crate::output::tls::{SslConfig, VerificationMode};

pub use crate::output::elasticsearch::config::EsOutputConfig;

/// `[setup.kibana]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KibanaConfig {
    /// `host[:port]` or a URL; defaults to `localhost:5601`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub ssl: SslConfig,
    #[serde(default)]
    pub space: KibanaSpace,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KibanaSpace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `[setup]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SetupConfig {
    #[serde(default)]
    pub kibana: KibanaConfig,
    #[serde(default)]
    pub semantic: SemanticConfig,
}

/// `[setup.semantic]`: the ELSER `semantic_text` component template.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticConfig {
    /// Load it (when the licence allows inference and the endpoint exists). Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig { enabled: true }
    }
}

fn yes() -> bool {
    true
}

/// `[cloud]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Secret>,
}

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    /// Beats' `id:key` form.
    ApiKey(Secret),
}

/// TLS verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    Full,
    None,
}

/// One resolved endpoint (Elasticsearch or Kibana).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URLs, without a trailing slash (path prefix included).
    pub urls: Vec<url::Url>,
    pub auth: Auth,
    pub ca_files: Vec<PathBuf>,
    pub verify: Verify,
}

impl Endpoint {
    /// The first URL without credentials, for messages.
    pub fn display(&self) -> String {
        self.urls
            .first()
            .map(redact)
            .unwrap_or_else(|| "(no host)".into())
    }
}

/// A URL for messages: user info removed.
pub fn redact(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.as_str().trim_end_matches('/').to_string()
}

/// Everything `oxibeat setup` needs to connect.
#[derive(Debug, Clone)]
pub struct Connections {
    pub elasticsearch: Endpoint,
    pub kibana: Endpoint,
    /// `setup.semantic.enabled`: whether the semantic component template is wanted at all.
    pub semantic: bool,
}

fn parse_url(
    raw: &str,
    protocol: Option<&str>,
    path: Option<&str>,
    default_port: u16,
    key: &str,
) -> Result<url::Url, ConfigError> {
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("{}://{raw}", protocol.unwrap_or("http"))
    };
    let mut u = url::Url::parse(&with_scheme).map_err(|e| {
        ConfigError::new(
            key,
            format!(
                "{raw:?} is not a valid host or URL ({e}); write host:port or http(s)://host:port"
            ),
        )
    })?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            key,
            format!(
                "scheme {:?} is not supported; use http or https",
                u.scheme()
            ),
        ));
    }
    if u.port().is_none() && !raw.contains("://") {
        let _ = u.set_port(Some(default_port));
    }
    if let Some(p) = path.filter(|p| !p.is_empty()) {
        let joined = format!(
            "{}/{}",
            u.path().trim_end_matches('/'),
            p.trim_start_matches('/')
        );
        u.set_path(&joined);
    }
    let trimmed = u.path().trim_end_matches('/').to_string();
    u.set_path(&trimmed);
    Ok(u)
}

fn verify(ssl: &SslConfig, key: &str) -> Result<Verify, ConfigError> {
    match ssl.verification_mode {
        VerificationMode::Full | VerificationMode::Strict => Ok(Verify::Full),
        VerificationMode::None => Ok(Verify::None),
        VerificationMode::Certificate => Err(ConfigError::new(
            format!("{key}.ssl.verification_mode"),
            "\"certificate\" is not supported by the Elasticsearch client oxibeat uses (rustls); use \"full\" (add the CA to ssl.certificate_authorities) or \"none\"",
        )),
    }
}

fn auth(
    username: &Option<String>,
    password: &Option<Secret>,
    api_key: &Option<Secret>,
    key: &str,
) -> Result<Auth, ConfigError> {
    match (username, api_key) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            key,
            "set either username/password or api_key, not both",
        )),
        (Some(u), None) => Ok(Auth::Basic {
            username: u.clone(),
            password: password.clone().unwrap_or_default(),
        }),
        (None, Some(k)) => {
            if !k.expose().contains(':') {
                return Err(ConfigError::new(
                    format!("{key}.api_key"),
                    "expected \"id:api_key\" (the id and api_key values Elasticsearch returned, joined by a colon)",
                ));
            }
            Ok(Auth::ApiKey(k.clone()))
        }
        (None, None) => Ok(Auth::None),
    }
}

impl Connections {
    /// Parse the raw sections of `cfg` and resolve them. Key paths name any wrong option.
    pub fn from_config(cfg: &Config) -> Result<Connections, ConfigError> {
        let es: EsOutputConfig = match &cfg.output.elasticsearch {
            Some(v) => typed(v.clone(), "output.elasticsearch")?,
            None => EsOutputConfig {
                enabled: true,
                ..Default::default()
            },
        };
        let setup: SetupConfig = match &cfg.setup {
            Some(v) => typed(v.clone(), "setup")?,
            None => SetupConfig::default(),
        };
        let cloud: CloudConfig = match &cfg.cloud {
            Some(v) => typed(v.clone(), "cloud")?,
            None => CloudConfig::default(),
        };
        let mut others = Vec::new();
        if cfg.output.logstash.as_ref().is_some_and(enabled) {
            others.push("logstash");
        }
        if cfg.output.kafka.as_ref().is_some_and(enabled) {
            others.push("kafka");
        }
        Self::resolve(es, setup, cloud, &others)
    }

    /// Resolve typed sections. `other_outputs` names other enabled outputs (for the cloud.id
    /// conflict error Beats give).
    pub fn resolve(
        mut es: EsOutputConfig,
        mut setup: SetupConfig,
        cloud: CloudConfig,
        other_outputs: &[&str],
    ) -> Result<Connections, ConfigError> {
        let cloud_id = cloud.id.as_deref().filter(|s| !s.is_empty());
        let cloud_auth = cloud.auth.as_ref().filter(|s| !s.expose().is_empty());
        match (cloud_id, cloud_auth) {
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "cloud.auth",
                    "cloud.auth specified but cloud.id is empty. Please specify both",
                ))
            }
            (Some(id), auth) => {
                let decoded = cloudid::decode(id).map_err(|e| {
                    ConfigError::new(
                        "cloud.id",
                        format!("Error decoding cloud.id: invalid cloud id '{id}': {e}"),
                    )
                })?;
                if let Some(name) = other_outputs.first() {
                    return Err(ConfigError::new(
                        "cloud.id",
                        format!("The cloud.id setting enables the Elasticsearch output, but you already have the {name} output enabled in the config"),
                    ));
                }
                es.hosts = vec![decoded.elasticsearch_url];
                setup.kibana.host = Some(decoded.kibana_url);
                if let Some(a) = auth {
                    let (u, p) = cloudid::decode_auth(a.expose()).map_err(|e| {
                        ConfigError::new(
                            "cloud.auth",
                            format!("Error decoding cloud.id: invalid cloud auth: {e}"),
                        )
                    })?;
                    es.username = Some(u);
                    es.password = Some(Secret(p));
                    es.api_key = None;
                }
            }
            (None, None) => {}
        }
        let key = "output.elasticsearch";
        let hosts = if es.hosts.is_empty() {
            vec!["localhost:9200".to_string()]
        } else {
            es.hosts.clone()
        };
        let urls = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                parse_url(
                    h,
                    es.protocol.as_deref(),
                    es.path.as_deref(),
                    9200,
                    &format!("{key}.hosts[{i}]"),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut es_auth = auth(&es.username, &es.password, &es.api_key, key)?;
        let mut urls = urls;
        if let Some(from_url) = take_userinfo(&mut urls) {
            if es_auth == Auth::None {
                es_auth = from_url;
            }
        }
        let elasticsearch = Endpoint {
            urls,
            auth: es_auth.clone(),
            ca_files: es.ssl.certificate_authorities.clone(),
            verify: verify(&es.ssl, key)?,
        };
        let kb = &setup.kibana;
        let kkey = "setup.kibana";
        let host = kb.host.clone().unwrap_or_else(|| "localhost:5601".into());
        let mut kurl = parse_url(
            &host,
            kb.protocol.as_deref(),
            kb.path.as_deref(),
            5601,
            &format!("{kkey}.host"),
        )?;
        if let Some(space) = kb.space.id.as_deref().filter(|s| !s.is_empty()) {
            let p = format!("{}/s/{space}", kurl.path().trim_end_matches('/'));
            kurl.set_path(&p);
        }
        // As in Beats: Kibana uses the Elasticsearch credentials unless it has its own.
        let mut kurls = vec![kurl];
        let kb_url_auth = take_userinfo(&mut kurls);
        let kb_auth = match auth(&kb.username, &kb.password, &kb.api_key, kkey)? {
            Auth::None => kb_url_auth.unwrap_or(es_auth),
            a => a,
        };
        let kibana = Endpoint {
            urls: kurls,
            auth: kb_auth,
            ca_files: if kb.ssl.certificate_authorities.is_empty() {
                es.ssl.certificate_authorities.clone()
            } else {
                kb.ssl.certificate_authorities.clone()
            },
            verify: verify(&kb.ssl, kkey)?,
        };
        Ok(Connections {
            elasticsearch,
            kibana,
            semantic: setup.semantic.enabled,
        })
    }
}

/// Credentials written into URLs (`http://user:pass@host`) become the endpoint's auth and are
/// removed from the URLs, so no error message can show them.
fn take_userinfo(urls: &mut [url::Url]) -> Option<Auth> {
    let mut found = None;
    for u in urls.iter_mut() {
        if !u.username().is_empty() {
            let user = percent_decode(u.username());
            let pass = percent_decode(u.password().unwrap_or(""));
            found.get_or_insert(Auth::Basic {
                username: user,
                password: Secret(pass),
            });
        }
        let _ = u.set_username("");
        let _ = u.set_password(None);
    }
    found
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

fn enabled(v: &toml::Value) -> bool {
    v.get("enabled")
        .and_then(toml::Value::as_bool)
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V10: &str = "cloudidtest:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyQyNDlmM2FmMWY0ZWVlMjRhODRlM2I0MDFlNjhhMWIyYSRkNGFjNzU1OWQ0Njc0YjdjOTFhYmUxMDg1NmQ4NDMwNA==";
    const V10_ES: &str = "https://249f3af1f4eee24a84e3b401e68a1b2a.us-east-1.aws.found.io";
    const V10_KB: &str = "https://d4ac7559d4674b7c91abe10856d84304.us-east-1.aws.found.io";

    fn es(hosts: &[&str]) -> EsOutputConfig {
        EsOutputConfig {
            enabled: true,
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn cloud(id: Option<&str>, auth: Option<&str>) -> CloudConfig {
        CloudConfig {
            id: id.map(Into::into),
            auth: auth.map(|a| Secret(a.into())),
        }
    }

    fn urls(e: &Endpoint) -> Vec<String> {
        e.urls.iter().map(redact).collect()
    }

    // TestOverwriteSettings 1: no cloud id, nothing changes.
    #[test]
    fn no_cloud_id_keeps_hosts() {
        let c = Connections::resolve(
            es(&["localhost:9200"]),
            Default::default(),
            cloud(None, None),
            &[],
        )
        .unwrap();
        assert_eq!(urls(&c.elasticsearch), ["http://localhost:9200"]);
        assert_eq!(urls(&c.kibana), ["http://localhost:5601"]);
        assert_eq!(c.elasticsearch.auth, Auth::None);
    }

    // TestOverwriteSettings 2 and 5: hosts replaced (not merged), credentials from cloud.auth.
    #[test]
    fn cloud_id_replaces_hosts_and_sets_credentials() {
        let c = Connections::resolve(
            es(&["localhost:9200", "test", "test1"]),
            Default::default(),
            cloud(Some(V10), Some("elastic:changeme")),
            &[],
        )
        .unwrap();
        // The url crate drops the explicit default port 443 of https when printing.
        assert_eq!(urls(&c.elasticsearch), [V10_ES]);
        assert_eq!(c.elasticsearch.urls[0].port_or_known_default(), Some(443));
        assert_eq!(urls(&c.kibana), [V10_KB]);
        assert_eq!(
            c.elasticsearch.auth,
            Auth::Basic {
                username: "elastic".into(),
                password: Secret("changeme".into())
            }
        );
        assert_eq!(c.kibana.auth, c.elasticsearch.auth);
    }

    // TestOverwriteSettings 3 and 4: only cloud.id, no output defined.
    #[test]
    fn only_cloud_id() {
        let c = Connections::resolve(
            EsOutputConfig::default(),
            Default::default(),
            cloud(Some(V10), None),
            &[],
        )
        .unwrap();
        assert_eq!(urls(&c.elasticsearch), [V10_ES]);
        assert_eq!(c.elasticsearch.auth, Auth::None);
    }

    // TestOverwriteErrors.
    #[test]
    fn overwrite_errors() {
        let err = |c: CloudConfig, others: &[&str]| {
            Connections::resolve(es(&[]), Default::default(), c, others)
                .unwrap_err()
                .to_string()
        };
        let e = err(cloud(None, Some("elastic:changeme")), &[]);
        assert!(
            e.contains("cloud.auth specified but cloud.id is empty"),
            "{e}"
        );
        assert!(!e.contains("changeme"), "{e}");
        let e = err(cloud(Some("blah"), None), &[]);
        assert!(e.contains("Error decoding cloud.id"), "{e}");
        assert!(e.contains("Expected at least 3 parts"), "{e}");
        let e = err(cloud(Some(V10), Some("blah")), &[]);
        assert!(e.contains("cloud.auth setting doesn't contain `:`"), "{e}");
        assert!(!e.contains("blah"), "{e}");
        let e = err(cloud(Some(V10), None), &["logstash"]);
        assert!(e.contains("The cloud.id setting enables the Elasticsearch output, but you already have the logstash output enabled"), "{e}");
    }

    #[test]
    fn typed_sections_name_key_paths() {
        let v: toml::Value =
            toml::from_str("hosts = [\"h:9200\"]\nssl.verification_mod = \"none\"").unwrap();
        let e = typed::<EsOutputConfig>(v, "output.elasticsearch")
            .unwrap_err()
            .to_string();
        assert!(e.contains("output.elasticsearch.ssl"), "{e}");
        assert!(e.contains("verification_mod"), "{e}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let mut e = es(&["h"]);
        e.password = Some(Secret("hunter2".into()));
        e.api_key = Some(Secret("id:topsecret".into()));
        let s = format!("{e:?}");
        assert!(!s.contains("hunter2") && !s.contains("topsecret"), "{s}");
    }

    #[test]
    fn credentials_in_urls_move_to_auth() {
        let c = Connections::resolve(
            es(&["https://elastic:s%40cret@es.example:9243"]),
            Default::default(),
            cloud(None, None),
            &[],
        )
        .unwrap();
        assert_eq!(urls(&c.elasticsearch), ["https://es.example:9243"]);
        assert_eq!(c.elasticsearch.urls[0].password(), None);
        assert_eq!(
            c.elasticsearch.auth,
            Auth::Basic {
                username: "elastic".into(),
                password: Secret("s@cret".into())
            }
        );
    }

    #[test]
    fn hosts_protocol_path_and_space() {
        let mut e = es(&["es.example:9201", "https://other:9443"]);
        e.protocol = Some("https".into());
        e.path = Some("/proxy".into());
        let mut s = SetupConfig::default();
        s.kibana.host = Some("kb.example".into());
        s.kibana.space.id = Some("ops".into());
        let c = Connections::resolve(e, s, cloud(None, None), &[]).unwrap();
        assert_eq!(
            urls(&c.elasticsearch),
            ["https://es.example:9201/proxy", "https://other:9443/proxy"]
        );
        assert_eq!(urls(&c.kibana), ["http://kb.example:5601/s/ops"]);
    }
}
