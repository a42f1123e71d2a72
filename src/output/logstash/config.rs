//! `[output.logstash]` options, with Filebeat's names and defaults
//! (`libbeat/outputs/logstash/config.go`, `defaultConfig()`): `loadbalance = false`,
//! `worker = 1`, `pipelining = 2`, `compression_level = 3`, `bulk_max_size = 2048`,
//! `slow_start = false`, `timeout = 30s`, `ttl = 0`, `escape_html = false`,
//! `backoff = { init = 1s, max = 60s }`, default port 5044.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::units::Dur;
use crate::config::ConfigError;
use crate::output::backoff::BackoffConfig;
use crate::output::tls::SslConfig;

/// Port used when a host names none (Filebeat's `defaultPort`).
pub const DEFAULT_PORT: u16 = 5044;

fn yes() -> bool {
    true
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogstashConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `host[:port]` of each Logstash beats input (port 5044 when absent).
    pub hosts: Vec<String>,
    /// false: one host at a time, picked at random, failing over to the next; true: every host
    /// at once, each batch to the first connection free to take it.
    #[serde(default)]
    pub loadbalance: bool,
    /// Connections per host.
    #[serde(default = "LogstashConfig::default_worker", alias = "workers")]
    pub worker: usize,
    /// Windows in flight per connection awaiting their ACK (0 = wait for each ACK).
    #[serde(default = "LogstashConfig::default_pipelining")]
    pub pipelining: usize,
    /// zlib level of the `C` frame, 0 (no compression) to 9.
    #[serde(default = "LogstashConfig::default_compression")]
    pub compression_level: u32,
    /// Events per window (and per batch taken from the queue).
    #[serde(default = "LogstashConfig::default_bulk")]
    pub bulk_max_size: usize,
    /// Start with windows of 10 events and grow them ×1.5 per ACKed window up to
    /// `bulk_max_size`; halve them on error.
    #[serde(default)]
    pub slow_start: bool,
    /// Connect, TLS handshake, write, and wait for an ACK (any ACK frame, keepalives included).
    #[serde(default = "LogstashConfig::default_timeout")]
    pub timeout: Dur,
    /// Re-open connections this often (0 = never), so a load balancer in front of Logstash sees
    /// new connections. Works with pipelining: in-flight windows are ACKed first.
    #[serde(default)]
    pub ttl: Dur,
    /// Escape `<`, `>` and `&` in JSON strings as `\u003c`, `\u003e`, `\u0026`.
    #[serde(default)]
    pub escape_html: bool,
    /// `@metadata.beat` of every event (lowercased; default the beat name, "oxibeat").
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// `socks5://[user:password@]host:port`: connect through a SOCKS5 proxy.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// Resolve the Logstash host names here instead of on the proxy.
    #[serde(default)]
    pub proxy_use_local_resolver: bool,
    #[serde(default)]
    pub ssl: Option<SslConfig>,
    /// Accepted for Filebeat configurations; oxibeat never gives up on an event (at-least-once),
    /// so any value other than -1 only produces a warning.
    #[serde(default)]
    pub max_retries: Option<i64>,
}

impl std::fmt::Debug for LogstashConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogstashConfig")
            .field("hosts", &self.hosts)
            .field("loadbalance", &self.loadbalance)
            .field("worker", &self.worker)
            .field("pipelining", &self.pipelining)
            .field("compression_level", &self.compression_level)
            .field("bulk_max_size", &self.bulk_max_size)
            .field("slow_start", &self.slow_start)
            .field("timeout", &self.timeout)
            .field("ttl", &self.ttl)
            .field("index", &self.index)
            .field(
                "proxy_url",
                &self
                    .proxy_url
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or_default(),
            )
            .field("ssl", &self.ssl)
            .finish_non_exhaustive()
    }
}

/// `scheme://user:***@host:port`: the password of a URL is never shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

impl LogstashConfig {
    fn default_worker() -> usize {
        1
    }
    fn default_pipelining() -> usize {
        2
    }
    fn default_compression() -> u32 {
        3
    }
    fn default_bulk() -> usize {
        2048
    }
    fn default_timeout() -> Dur {
        Dur(Duration::from_secs(30))
    }

    /// Checks that serde cannot express; errors name the key under `output.logstash`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const P: &str = "output.logstash";
        if self.hosts.is_empty() {
            return Err(ConfigError::new(
                format!("{P}.hosts"),
                "no host; set hosts = [\"logstash:5044\"]",
            ));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            Host::parse(h).map_err(|m| ConfigError::new(format!("{P}.hosts[{i}]"), m))?;
        }
        if self.compression_level > 9 {
            return Err(ConfigError::new(
                format!("{P}.compression_level"),
                format!(
                    "{} is out of range; use 0 (off) to 9",
                    self.compression_level
                ),
            ));
        }
        if self.bulk_max_size == 0 {
            return Err(ConfigError::new(
                format!("{P}.bulk_max_size"),
                "must be at least 1",
            ));
        }
        if self.worker == 0 {
            return Err(ConfigError::new(
                format!("{P}.worker"),
                "must be at least 1",
            ));
        }
        if self.timeout.0.is_zero() {
            return Err(ConfigError::new(
                format!("{P}.timeout"),
                "must be above 0 (it bounds connect, write and the wait for an ACK)",
            ));
        }
        if let Some(url) = &self.proxy_url {
            ProxyConfig::parse(url, self.proxy_use_local_resolver)
                .map_err(|m| ConfigError::new(format!("{P}.proxy_url"), m))?;
        }
        if let Some(ssl) = &self.ssl {
            ssl.validate(P)
                .map_err(|e| ConfigError::new("", e.to_string()))?;
        }
        Ok(())
    }

    /// The `@metadata.beat` value: `index` lowercased (as Filebeat's encoder does), else `beat`.
    pub fn metadata_beat(&self, beat: &str) -> String {
        match &self.index {
            Some(i) if !i.is_empty() => i.to_lowercase(),
            _ => beat.to_string(),
        }
    }

    pub fn proxy(&self) -> Option<ProxyConfig> {
        self.proxy_url
            .as_deref()
            .and_then(|u| ProxyConfig::parse(u, self.proxy_use_local_resolver).ok())
    }
}

/// A Logstash host: name (or IP) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub port: u16,
}

impl Host {
    /// `host`, `host:port`, `[v6]:port`, `v6`; a scheme such as `tcp://` is tolerated.
    pub fn parse(s: &str) -> Result<Host, String> {
        let t = s.trim();
        let t = t
            .strip_prefix("tcp://")
            .or_else(|| t.strip_prefix("lumberjack://"))
            .unwrap_or(t);
        if t.is_empty() {
            return Err("empty host".into());
        }
        if t.contains('/') {
            return Err(format!(
                "{s:?} is not host[:port] (a Logstash host has no scheme or path)"
            ));
        }
        let bad_port = |p: &str| format!("invalid port {p:?} in {s:?}");
        if let Some(rest) = t.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("unclosed '[' in {s:?}"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad_port(p))?,
                None if after.is_empty() => DEFAULT_PORT,
                None => return Err(format!("unexpected {after:?} after ']' in {s:?}")),
            };
            return Ok(Host {
                name: ip.to_string(),
                port,
            });
        }
        match t.matches(':').count() {
            0 => Ok(Host {
                name: t.to_string(),
                port: DEFAULT_PORT,
            }),
            1 => {
                let (h, p) = t.split_once(':').unwrap_or((t, ""));
                if h.is_empty() {
                    return Err(format!("no host name in {s:?}"));
                }
                Ok(Host {
                    name: h.to_string(),
                    port: p.parse().map_err(|_| bad_port(p))?,
                })
            }
            // A bare IPv6 address.
            _ => Ok(Host {
                name: t.to_string(),
                port: DEFAULT_PORT,
            }),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.contains(':') {
            write!(f, "[{}]:{}", self.name, self.port)
        } else {
            write!(f, "{}:{}", self.name, self.port)
        }
    }
}

/// A SOCKS5 proxy (`proxy_url`), the only kind Filebeat's Logstash output supports.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub host: Host,
    pub username: Option<String>,
    pub password: Option<String>,
    pub local_resolver: bool,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ProxyConfig {
    pub fn parse(url: &str, local_resolver: bool) -> Result<ProxyConfig, String> {
        let shown = redact_url(url);
        let rest = url.strip_prefix("socks5://").ok_or_else(|| {
            format!("{shown}: only socks5:// proxies are supported by the Logstash output (as in Filebeat)")
        })?;
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((name, pass)) => (Some(percent_decode(name)), Some(percent_decode(pass))),
                None => (Some(percent_decode(u)), None),
            },
            None => (None, None),
        };
        if hostport.is_empty() {
            return Err(format!("{shown}: no proxy host"));
        }
        let mut host = Host::parse(hostport).map_err(|m| format!("{shown}: {m}"))?;
        if !hostport.contains(':') || hostport.ends_with(']') {
            host.port = 1080;
        }
        Ok(ProxyConfig {
            host,
            username,
            password,
            local_resolver,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<LogstashConfig, ConfigError> {
        let c: LogstashConfig =
            crate::config::typed(toml::from_str(text).expect("toml"), "output.logstash")?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn filebeat_defaults() {
        let c = load("hosts = [\"ls\"]").unwrap();
        assert!(!c.loadbalance);
        assert_eq!(c.worker, 1);
        assert_eq!(c.pipelining, 2);
        assert_eq!(c.compression_level, 3);
        assert_eq!(c.bulk_max_size, 2048);
        assert!(!c.slow_start);
        assert_eq!(c.timeout.0, Duration::from_secs(30));
        assert!(c.ttl.0.is_zero());
        assert!(!c.escape_html);
        assert_eq!(c.backoff.init.0, Duration::from_secs(1));
        assert_eq!(c.backoff.max.0, Duration::from_secs(60));
        assert_eq!(c.metadata_beat("oxibeat"), "oxibeat");
        let c = load("hosts = [\"ls\"]\nindex = \"MyBeat\"").unwrap();
        assert_eq!(c.metadata_beat("oxibeat"), "mybeat");
    }

    #[test]
    fn unknown_keys_and_ranges_name_the_key() {
        let e = load("hosts = [\"ls\"]\npipelinig = 2").unwrap_err();
        assert!(e.to_string().contains("pipelinig"), "{e}");
        let e = load("hosts = [\"ls\"]\ncompression_level = 12").unwrap_err();
        assert!(
            e.to_string().contains("output.logstash.compression_level"),
            "{e}"
        );
        let e = load("hosts = []").unwrap_err();
        assert!(e.to_string().contains("output.logstash.hosts"), "{e}");
        let e = load("hosts = [\"ls:99999\"]").unwrap_err();
        assert!(e.to_string().contains("hosts[0]"), "{e}");
    }

    #[test]
    fn hosts_default_to_5044() {
        let p = |s| Host::parse(s).unwrap();
        assert_eq!(p("ls").port, 5044);
        assert_eq!(
            p("ls:5045"),
            Host {
                name: "ls".into(),
                port: 5045
            }
        );
        assert_eq!(p("[::1]:6000").port, 6000);
        assert_eq!(p("[::1]").to_string(), "[::1]:5044");
        assert_eq!(p("::1").name, "::1");
        assert!(Host::parse("http://ls:5044/x").is_err());
    }

    #[test]
    fn proxy_only_socks5_and_password_never_shown() {
        let e = load("hosts = [\"ls\"]\nproxy_url = \"http://u:hunter2@p:3128\"").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("socks5") && !s.contains("hunter2"), "{s}");
        let c = load("hosts = [\"ls\"]\nproxy_url = \"socks5://u:hunter2@p:1081\"").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let p = c.proxy().unwrap();
        assert_eq!(p.host.port, 1081);
        assert_eq!(p.username.as_deref(), Some("u"));
        assert_eq!(p.password.as_deref(), Some("hunter2"));
        assert!(!format!("{p:?}").contains("hunter2"));
        let p = ProxyConfig::parse("socks5://p", false).unwrap();
        assert_eq!(p.host.port, 1080);
        let p = ProxyConfig::parse("socks5://a%40b:p%3Aw@p:1", false).unwrap();
        assert_eq!(p.username.as_deref(), Some("a@b"));
        assert_eq!(p.password.as_deref(), Some("p:w"));
    }
}
