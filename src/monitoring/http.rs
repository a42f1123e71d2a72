//! The monitoring HTTP endpoint (`[http]`), like Beats' `http.*` settings.
//!
//! - `GET /`        → `{beat, hostname, name, uuid, version}`
//! - `GET /stats`   → every counter and gauge under its Beats name, nested
//!   (`libbeat.output.events.acked`, `beat.memstats.rss`, `beat.cpu.*`, `beat.info.uptime.ms`, ...)
//! - `GET /inputs/` → a JSON array with the metrics of every running input
//! - `GET /metrics` → the same numbers in the Prometheus text format (0.0.4)
//!
//! `?pretty` indents JSON answers. Unknown paths answer 404, other methods than GET/HEAD 405.
//! It binds to localhost by default; `host = "unix:///path/to.sock"` listens on a Unix socket
//! instead (created with mode 0600, removed on shutdown). Nothing from the configuration is
//! ever served, so no secret can leak through it.
//!
//! A deliberately small HTTP/1.1 server: one request per connection (`Connection: close`),
//! request head at most 8 KiB, read within 10 s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use crate::config::{typed, ConfigError};
use crate::event::{put_path, BeatInfo};
use crate::monitoring::Metrics;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

/// `[http]`: the monitoring endpoint. Off by default, as in Beats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    pub enabled: bool,
    /// A host name or address, or `unix:///path/to.sock`.
    #[serde(default = "HttpConfig::default_host")]
    pub host: String,
    #[serde(default = "HttpConfig::default_port")]
    pub port: u16,
}

impl HttpConfig {
    fn default_host() -> String {
        "localhost".into()
    }
    fn default_port() -> u16 {
        5066
    }

    /// The Unix socket path when `host` is `unix://...`.
    pub fn unix_path(&self) -> Option<PathBuf> {
        self.host.strip_prefix("unix://").map(PathBuf::from)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: false,
            host: Self::default_host(),
            port: Self::default_port(),
        }
    }
}

/// Validate the raw `[http]` table.
pub fn parse_config(raw: &toml::Value) -> Result<HttpConfig, ConfigError> {
    let cfg: HttpConfig = typed(raw.clone(), "http")?;
    if cfg.host.trim().is_empty() {
        return Err(ConfigError::new(
            "http.host",
            "must not be empty; use \"localhost\", an address, or \"unix:///path/to.sock\"",
        ));
    }
    if let Some(p) = cfg.unix_path() {
        if !p.is_absolute() {
            return Err(ConfigError::new(
                "http.host",
                "a unix socket needs an absolute path: \"unix:///run/oxibeat.sock\"",
            ));
        }
    }
    Ok(cfg)
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "http: cannot listen on {addr}: {source}; change http.host/http.port or stop what uses it"
    )]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("http: cannot resolve http.host {host:?}: {message}")]
    Resolve { host: String, message: String },
}

/// A listening endpoint, before it serves (lets callers learn the port when `port = 0`).
pub enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// Bind the listener described by `cfg` (ignores `enabled`).
pub async fn bind(cfg: &HttpConfig) -> Result<Bound, HttpError> {
    if let Some(path) = cfg.unix_path() {
        // A socket left by a previous run would make bind fail; only remove sockets.
        if let Ok(md) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            if md.file_type().is_socket() {
                let _ = std::fs::remove_file(&path);
            }
        }
        let l = UnixListener::bind(&path).map_err(|source| HttpError::Bind {
            addr: cfg.host.clone(),
            source,
        })?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        return Ok(Bound::Unix(l, path));
    }
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| HttpError::Resolve {
            host: cfg.host.clone(),
            message: e.to_string(),
        })?
        .collect();
    // Prefer IPv4 for "localhost" (what Beats and most clients use).
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| HttpError::Resolve {
            host: cfg.host.clone(),
            message: "no address".into(),
        })?;
    let l = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    Ok(Bound::Tcp(l))
}

impl Bound {
    /// `127.0.0.1:5066` or `unix:///path`.
    pub fn local_addr(&self) -> String {
        match self {
            Bound::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Bound::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }

    /// Serve until `shutdown` is cancelled.
    pub async fn run(
        self,
        metrics: Arc<Metrics>,
        beat: Arc<BeatInfo>,
        shutdown: CancellationToken,
    ) {
        tracing::info!(address = %self.local_addr(), "monitoring endpoint listening");
        let state = Arc::new(State { metrics, beat });
        match self {
            Bound::Tcp(l) => {
                accept_loop(
                    || async { l.accept().await.map(|(s, _)| s) },
                    state,
                    &shutdown,
                )
                .await
            }
            Bound::Unix(l, path) => {
                accept_loop(
                    || async { l.accept().await.map(|(s, _)| s) },
                    state,
                    &shutdown,
                )
                .await;
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Accept connections until `shutdown`, at most `MAX_CONNECTIONS` served at once.
async fn accept_loop<S, F, Fut>(mut accept: F, state: Arc<State>, shutdown: &CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<S>>,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Some(slot) = take_slot(&slots, shutdown).await else {
            break;
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = accept() => a,
        };
        match accepted {
            Ok(stream) => {
                let st = state.clone();
                tokio::spawn(async move {
                    handle(stream, st).await;
                    drop(slot);
                });
            }
            Err(e) => accept_error(e).await,
        }
    }
}

/// Wait for a free connection slot; `None` on shutdown.
async fn take_slot(
    slots: &Arc<tokio::sync::Semaphore>,
    shutdown: &CancellationToken,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        p = slots.clone().acquire_owned() => p.ok(),
    }
}

async fn accept_error(e: std::io::Error) {
    // Out of file descriptors and the like: wait a little instead of spinning.
    tracing::warn!(error = %e, "monitoring endpoint: accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Bind and serve until `shutdown` is cancelled; returns at once when `enabled = false`.
pub async fn serve(
    cfg: HttpConfig,
    metrics: Arc<Metrics>,
    beat: Arc<BeatInfo>,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    if !cfg.enabled {
        return Ok(());
    }
    bind(&cfg).await?.run(metrics, beat, shutdown).await;
    Ok(())
}

struct State {
    metrics: Arc<Metrics>,
    beat: Arc<BeatInfo>,
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n").into_bytes(),
            allow: false,
        }
    }

    fn json(v: &Value, pretty: bool) -> Self {
        let mut body = if pretty {
            serde_json::to_vec_pretty(v)
        } else {
            serde_json::to_vec(v)
        }
        .unwrap_or_default();
        body.push(b'\n');
        Response {
            status: 200,
            content_type: "application/json; charset=utf-8",
            body,
            allow: false,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<State>) {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream, &mut buf)).await;
    let (resp, head_only) = match head {
        Err(_) => (Response::text(408, "request timeout"), false),
        Ok(Err(status)) => (Response::text(status, reason(status)), false),
        Ok(Ok(())) => {
            let text = String::from_utf8_lossy(&buf);
            let line = text.lines().next().unwrap_or("");
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(method), Some(target), Some(v)) if v.starts_with("HTTP/1.") => {
                    (route(method, target, &state), method == "HEAD")
                }
                _ => (Response::text(400, "bad request"), false),
            }
        }
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    );
    if resp.allow {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    // A client that does not read its answer cannot hold the task forever.
    let _ = tokio::time::timeout(READ_TIMEOUT, async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Read until the blank line that ends the request head.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Result<(), u16> {
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(());
        }
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn route(method: &str, target: &str, state: &State) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pretty = query
        .split('&')
        .any(|kv| kv == "pretty" || kv.starts_with("pretty="));
    let known = matches!(path, "/" | "/stats" | "/inputs" | "/inputs/" | "/metrics");
    if !known {
        return Response::text(404, "404 page not found");
    }
    if method != "GET" && method != "HEAD" {
        let mut r = Response::text(405, "method not allowed");
        r.allow = true;
        return r;
    }
    match path {
        "/" => Response::json(&info(&state.beat), pretty),
        "/stats" => Response::json(&stats(&state.metrics, &state.beat), pretty),
        "/inputs" | "/inputs/" => Response::json(&inputs(&state.metrics), pretty),
        _ => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: prometheus(&state.metrics, &state.beat).into_bytes(),
            allow: false,
        },
    }
}

/// `GET /`.
pub fn info(beat: &BeatInfo) -> Value {
    json!({
        "beat": beat.beat,
        "hostname": beat.hostname,
        "name": beat.name,
        "uuid": beat.agent_id,
        "version": beat.version,
    })
}

/// Counter or gauge, for the Prometheus `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Every number of `/stats`, flat: (Beats dotted name, value, kind).
pub fn flat_stats(metrics: &Metrics) -> Vec<(String, Value, Kind)> {
    let snap = metrics.snapshot();
    let mut out: Vec<(String, Value, Kind)> = Vec::new();
    for (name, v) in snap.counters {
        out.push((name.to_string(), json!(v), Kind::Counter));
    }
    for (name, v) in snap.gauges {
        out.push((name.to_string(), json!(v), Kind::Gauge));
    }
    let p = process_stats();
    let mut c = |name: &str, v: Value| out.push((name.to_string(), v, Kind::Counter));
    c("beat.cpu.user.ticks", json!(p.user_ms));
    c("beat.cpu.user.time.ms", json!(p.user_ms));
    c("beat.cpu.system.ticks", json!(p.system_ms));
    c("beat.cpu.system.time.ms", json!(p.system_ms));
    c("beat.cpu.total.ticks", json!(p.user_ms + p.system_ms));
    c("beat.cpu.total.time.ms", json!(p.user_ms + p.system_ms));
    c("beat.cpu.total.value", json!(p.user_ms + p.system_ms));
    let mut g = |name: &str, v: Value| out.push((name.to_string(), v, Kind::Gauge));
    if let Some(rss) = p.rss {
        g("beat.memstats.rss", json!(rss));
    }
    if let Some(open) = p.open_fds {
        g("beat.handles.open", json!(open));
    }
    if let Some((soft, hard)) = p.fd_limits {
        g("beat.handles.limit.soft", json!(soft));
        g("beat.handles.limit.hard", json!(hard));
    }
    g(
        "beat.info.uptime.ms",
        json!(metrics.uptime().as_millis() as u64),
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    g("system.cpu.cores", json!(cores));
    if let Some(l) = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| crate::input::system::procfs::parse_loadavg(&t))
    {
        let r = crate::input::system::procfs::round4;
        for (i, k) in ["1", "5", "15"].iter().enumerate() {
            g(&format!("system.load.{k}"), json!(r(l[i])));
            g(
                &format!("system.load.norm.{k}"),
                json!(r(l[i] / cores as f64)),
            );
        }
    }
    out
}

/// `GET /stats`: the flat numbers nested by their dotted names, plus `beat.info`.
pub fn stats(metrics: &Metrics, beat: &BeatInfo) -> Value {
    let mut m = Map::new();
    for (name, v, _) in flat_stats(metrics) {
        put_path(&mut m, &name, v);
    }
    put_path(&mut m, "beat.info.ephemeral_id", json!(beat.ephemeral_id));
    put_path(&mut m, "beat.info.name", json!(beat.beat));
    put_path(&mut m, "beat.info.version", json!(beat.version));
    Value::Object(m)
}

/// `GET /inputs/`: one object per input (`id`, `input` and its counters), ordered by id.
pub fn inputs(metrics: &Metrics) -> Value {
    let list: Vec<Value> = metrics
        .inputs()
        .iter()
        .map(|i| {
            let mut o = Map::new();
            o.insert("id".into(), json!(i.id));
            o.insert("input".into(), json!(i.input_type));
            for (k, v) in i.counter_values() {
                o.insert(k.into(), json!(v));
            }
            for (k, v) in i.gauge_values() {
                o.insert(k.into(), json!(v));
            }
            Value::Object(o)
        })
        .collect();
    Value::Array(list)
}

/// A Prometheus metric name from a Beats dotted name.
pub fn prom_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn prom_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: Prometheus text format. Names are the Beats names with `.` → `_`
/// (`libbeat.output.events.acked` → `libbeat_output_events_acked`); per-input metrics are
/// `oxibeat_input_<name>{id="...",input="..."}`; `oxibeat_info` carries the version labels;
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds` and
/// `process_max_fds` are the standard Prometheus process metrics.
pub fn prometheus(metrics: &Metrics, beat: &BeatInfo) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(4096);
    let _ = writeln!(
        s,
        "# HELP oxibeat_info Agent identity; the value is always 1."
    );
    let _ = writeln!(s, "# TYPE oxibeat_info gauge");
    let _ = writeln!(
        s,
        "oxibeat_info{{beat=\"{}\",version=\"{}\",name=\"{}\",uuid=\"{}\"}} 1",
        prom_label(&beat.beat),
        prom_label(&beat.version),
        prom_label(&beat.name),
        prom_label(&beat.agent_id)
    );
    // The standard process metrics every Prometheus client exports.
    let p = process_stats();
    let _ = writeln!(
        s,
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
        (p.user_ms + p.system_ms) as f64 / 1000.0
    );
    if let Some(rss) = p.rss {
        let _ = writeln!(
            s,
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
        );
    }
    if let Some(open) = p.open_fds {
        let _ = writeln!(s, "# TYPE process_open_fds gauge\nprocess_open_fds {open}");
    }
    if let Some((soft, _)) = p.fd_limits {
        let _ = writeln!(s, "# TYPE process_max_fds gauge\nprocess_max_fds {soft}");
    }
    for (name, v, kind) in flat_stats(metrics) {
        let n = prom_name(&name);
        let t = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(s, "# TYPE {n} {t}\n{n} {v}");
    }
    let list = metrics.inputs();
    if let Some(first) = list.first() {
        let counters: Vec<&str> = first.counter_values().iter().map(|(k, _)| *k).collect();
        let gauges: Vec<&str> = first.gauge_values().iter().map(|(k, _)| *k).collect();
        let mut families: Vec<(String, &str, Vec<String>)> = counters
            .iter()
            .map(|k| (format!("oxibeat_input_{k}"), "counter", Vec::new()))
            .chain(
                gauges
                    .iter()
                    .map(|k| (format!("oxibeat_input_{k}"), "gauge", Vec::new())),
            )
            .collect();
        for input in &list {
            let labels = format!(
                "id=\"{}\",input=\"{}\"",
                prom_label(&input.id),
                prom_label(&input.input_type)
            );
            let values = input
                .counter_values()
                .into_iter()
                .map(|(_, v)| v.to_string())
                .chain(input.gauge_values().into_iter().map(|(_, v)| v.to_string()));
            for (fam, v) in families.iter_mut().zip(values) {
                fam.2.push(format!("{}{{{labels}}} {v}", fam.0));
            }
        }
        for (name, t, lines) in families {
            let _ = writeln!(s, "# TYPE {name} {t}");
            for l in lines {
                let _ = writeln!(s, "{l}");
            }
        }
    }
    s
}

/// This process's own resource use, from `getrusage` and `/proc/self`.
#[derive(Debug, Clone, Default)]
pub struct ProcessStats {
    pub user_ms: u64,
    pub system_ms: u64,
    pub rss: Option<u64>,
    pub open_fds: Option<u64>,
    pub fd_limits: Option<(u64, u64)>,
}

pub fn process_stats() -> ProcessStats {
    let mut p = ProcessStats::default();
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
        let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
        p.user_ms = ms(ru.ru_utime);
        p.system_ms = ms(ru.ru_stime);
    }
    let page = crate::input::system::procfs::page_size();
    p.rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| crate::input::system::procfs::parse_statm(&t))
        .map(|(_, resident, _)| resident * page);
    p.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    // SAFETY: a zeroed rlimit is a valid out-parameter.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        p.fd_limits = Some((rl.rlim_cur as u64, rl.rlim_max as u64));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn beat() -> Arc<BeatInfo> {
        Arc::new(BeatInfo {
            beat: "oxibeat".into(),
            version: "0.1.0".into(),
            hostname: "web-1".into(),
            name: "web-1".into(),
            agent_id: "uuid-1".into(),
            ephemeral_id: "eph-1".into(),
        })
    }

    async fn start(
        metrics: Arc<Metrics>,
    ) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
        let cfg = HttpConfig {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 0,
        };
        let bound = bind(&cfg).await.unwrap();
        let addr = bound.local_addr();
        let stop = CancellationToken::new();
        let h = tokio::spawn(bound.run(metrics, beat(), stop.clone()));
        (addr, stop, h)
    }

    /// (status, headers+body) for a raw request.
    async fn raw(addr: &str, req: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, out)
    }

    async fn get(addr: &str, path: &str) -> (u16, String) {
        let (st, out) = raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (st, body)
    }

    #[test]
    fn config() {
        let v: toml::Value = toml::from_str("enabled = true\nport = 5067").unwrap();
        let c = parse_config(&v).unwrap();
        assert!(c.enabled);
        assert_eq!(c.host, "localhost");
        assert_eq!(c.port, 5067);
        let v: toml::Value = toml::from_str("prot = 1").unwrap();
        let e = parse_config(&v).unwrap_err().to_string();
        assert!(e.contains("http") && e.contains("prot"), "{e}");
        let v: toml::Value = toml::from_str("host = \"unix://rel.sock\"").unwrap();
        assert!(parse_config(&v).is_err());
        assert!(!HttpConfig::default().enabled);
    }

    #[tokio::test]
    async fn endpoints_statuses_and_counters() {
        let metrics = Metrics::new();
        let (addr, stop, h) = start(metrics.clone()).await;

        let (st, body) = get(&addr, "/").await;
        assert_eq!(st, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            json!({"beat": "oxibeat", "hostname": "web-1", "name": "web-1", "uuid": "uuid-1", "version": "0.1.0"})
        );

        let (st, body) = get(&addr, "/stats").await;
        assert_eq!(st, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        for path in [
            "libbeat.output.events.acked",
            "libbeat.output.events.active",
            "libbeat.output.events.batches",
            "libbeat.output.events.dropped",
            "libbeat.output.events.duplicates",
            "libbeat.output.events.failed",
            "libbeat.output.events.total",
            "libbeat.pipeline.events.active",
            "libbeat.pipeline.events.dropped",
            "libbeat.pipeline.events.failed",
            "libbeat.pipeline.events.filtered",
            "libbeat.pipeline.events.published",
            "libbeat.pipeline.events.retry",
            "libbeat.pipeline.events.total",
            "libbeat.pipeline.queue.acked",
            "filebeat.harvester.open_files",
            "filebeat.harvester.running",
            "filebeat.harvester.started",
            "filebeat.harvester.closed",
            "registrar.states.current",
            "registrar.states.update",
            "beat.memstats.rss",
            "beat.cpu.total.ticks",
            "beat.cpu.user.time.ms",
            "beat.cpu.system.ticks",
            "beat.info.uptime.ms",
        ] {
            assert!(
                crate::event::get_path(v.as_object().unwrap(), path).is_some_and(Value::is_number),
                "{path} missing in {body}"
            );
        }
        assert!(v["beat"]["memstats"]["rss"].as_u64().unwrap() > 0);
        assert_eq!(v["libbeat"]["output"]["events"]["acked"], 0);

        // Counters move.
        Metrics::add(&metrics.counters.output_acked, 7);
        metrics.gauges.open_files.store(3, Ordering::Relaxed);
        let input = metrics.input("host", "system/metrics");
        crate::monitoring::counters::InputCounters::add(&input.events_processed_total, 5);
        let (_, body) = get(&addr, "/stats?pretty").await;
        assert!(body.contains("\n  "), "pretty printed");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["libbeat"]["output"]["events"]["acked"], 7);
        assert_eq!(v["filebeat"]["harvester"]["open_files"], 3);

        let (st, body) = get(&addr, "/inputs/").await;
        assert_eq!(st, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0]["id"], "host");
        assert_eq!(v[0]["input"], "system/metrics");
        assert_eq!(v[0]["events_processed_total"], 5);

        let (st, body) = get(&addr, "/metrics").await;
        assert_eq!(st, 200);
        assert!(
            body.contains(
                "# TYPE libbeat_output_events_acked counter\nlibbeat_output_events_acked 7\n"
            ),
            "{body}"
        );
        assert!(body.contains("filebeat_harvester_open_files 3\n"), "{body}");
        assert!(
            body.contains(
                "oxibeat_input_events_processed_total{id=\"host\",input=\"system/metrics\"} 5\n"
            ),
            "{body}"
        );
        assert!(body.contains("# TYPE beat_memstats_rss gauge\n"));
        assert!(body.contains("\nprocess_resident_memory_bytes "), "{body}");
        assert!(body.contains("\nprocess_cpu_seconds_total "), "{body}");
        // Every sample line is `name{labels} number` or `name number`.
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let (name, val) = line.rsplit_once(' ').unwrap();
            assert!(val.parse::<f64>().is_ok(), "{line}");
            assert!(name.chars().next().unwrap().is_ascii_alphabetic(), "{line}");
        }

        // 404, 405, HEAD, garbage.
        assert_eq!(get(&addr, "/nope").await.0, 404);
        assert_eq!(get(&addr, "/stats/x").await.0, 404);
        let (st, out) = raw(&addr, "POST /stats HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(st, 405);
        assert!(out.contains("Allow: GET, HEAD"));
        assert_eq!(raw(&addr, "DELETE / HTTP/1.1\r\n\r\n").await.0, 405);
        let (st, out) = raw(&addr, "HEAD /stats HTTP/1.1\r\n\r\n").await;
        assert_eq!(st, 200);
        assert!(out.ends_with("\r\n\r\n"), "HEAD has no body");
        assert_eq!(raw(&addr, "garbage\r\n\r\n").await.0, 400);

        stop.cancel();
        h.await.unwrap();
    }

    #[tokio::test]
    async fn unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oxibeat.sock");
        let cfg = HttpConfig {
            enabled: true,
            host: format!("unix://{}", path.display()),
            port: 0,
        };
        let stop = CancellationToken::new();
        let h = tokio::spawn(serve(cfg, Metrics::new(), beat(), stop.clone()));
        let mut s = None;
        for _ in 0..100 {
            if let Ok(c) = tokio::net::UnixStream::connect(&path).await {
                s = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut s = s.expect("socket up");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("\"uuid\":\"uuid-1\""));
        stop.cancel();
        h.await.unwrap().unwrap();
        assert!(!path.exists(), "socket removed on shutdown");
    }

    #[tokio::test]
    async fn disabled_returns_at_once_and_bind_error_names_address() {
        let stop = CancellationToken::new();
        serve(HttpConfig::default(), Metrics::new(), beat(), stop.clone())
            .await
            .unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let cfg = HttpConfig {
            enabled: true,
            host: "127.0.0.1".into(),
            port,
        };
        let e = serve(cfg, Metrics::new(), beat(), stop).await.unwrap_err();
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[test]
    fn prom_names() {
        assert_eq!(
            prom_name("beat.cpu.total.time.ms"),
            "beat_cpu_total_time_ms"
        );
        assert_eq!(prom_name("system.load.1"), "system_load_1");
        assert_eq!(prom_label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
