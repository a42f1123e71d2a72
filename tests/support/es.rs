//! Elasticsearch-side test peers: a real `osmem-server` (an in-memory OpenSearch-compatible
//! server, installed by tests/run.sh from PyPI) started on a free port, a tiny HTTP client for
//! `_count` / `_search`, and a fault-injecting HTTP proxy to put in front of it.
//!
//! The proxy speaks just enough HTTP/1.1 (Content-Length bodies, keep-alive) for the agent's
//! requests. Faults: per-item statuses inside a real bulk answer (the other items really go to
//! the server), a request-level status, 413 above a body size, a connection reset after the
//! request was forwarded (so the server indexed it and the agent never heard), a stall before
//! forwarding, and a full outage (connections closed at once). It can require an
//! `Authorization` value, record request headers, and terminate TLS.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The osmem-server binary: `OXIBEAT_OSMEM_SERVER`, else the one of the `osmem-server` wheel.
pub fn osmem_binary() -> String {
    if let Ok(p) = std::env::var("OXIBEAT_OSMEM_SERVER") {
        return p;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, osmem_server; print(os.path.join(os.path.dirname(osmem_server.__file__), 'bin', 'osmem-server'))",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if std::path::Path::new(&p).is_file() {
                return p;
            }
            panic!("osmem-server binary not found at {p}; run tests/run.sh (pip install osmem-server==0.1.6)")
        }
        _ => panic!(
            "osmem-server is not installed (python3 -c 'import osmem_server' failed); run tests/run.sh, which installs it with pip"
        ),
    }
}

/// A running osmem-server, killed on drop.
pub struct Osmem {
    child: Child,
    pub port: u16,
}

impl Osmem {
    pub fn start() -> Osmem {
        let port = super::free_port();
        let child = Command::new(osmem_binary())
            .args([
                "-addr",
                &format!("127.0.0.1:{port}"),
                "-no-stdin-watch",
                "-parent-pid",
                &std::process::id().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start osmem-server");
        let s = Osmem { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http("GET", s.port, "/", None).map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "osmem-server did not answer within 20s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `_count` of `index` after a refresh (0 for a missing index).
    pub fn count(&self, index: &str) -> u64 {
        let _ = http("POST", self.port, &format!("/{index}/_refresh"), None);
        match http("GET", self.port, &format!("/{index}/_count"), None) {
            Some((200, b)) => b["count"].as_u64().unwrap_or(0),
            _ => 0,
        }
    }

    /// Every document of `index` (`_source`), up to 10,000.
    pub fn docs(&self, index: &str) -> Vec<Value> {
        let _ = http("POST", self.port, &format!("/{index}/_refresh"), None);
        let body = json!({"size": 10000, "query": {"match_all": {}}});
        match http(
            "POST",
            self.port,
            &format!("/{index}/_search"),
            Some(&body.to_string()),
        ) {
            Some((200, b)) => b["hits"]["hits"]
                .as_array()
                .map(|h| h.iter().map(|d| d["_source"].clone()).collect())
                .unwrap_or_default(),
            other => panic!("_search on {index}: {other:?}"),
        }
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; `None` when there was no answer.
pub fn http(method: &str, port: u16, path: &str, body: Option<&str>) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let (status, _, body) = parse_response(&buf)?;
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Status, headers (names lower-cased) and body of an HTTP response.
type Parsed = (u16, Vec<(String, String)>, Vec<u8>);

fn parse_response(buf: &[u8]) -> Option<Parsed> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some(n) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Some((status, headers, body))
}

/// What the proxy does to the next requests.
#[derive(Debug, Clone)]
pub enum Fault {
    None,
    /// Every `every`-th bulk item (counted over all requests) answers `status`; the others
    /// are really sent to the server.
    Items {
        every: usize,
        status: u16,
    },
    /// The next `times` bulk requests answer `status` without reaching the server.
    Request {
        status: u16,
        times: usize,
    },
    /// Bulk bodies (uncompressed) larger than this answer 413.
    TooLarge {
        max_bytes: usize,
    },
    /// The next `times` bulk requests are forwarded, then the client connection is reset
    /// before the answer.
    ResetAfterForward {
        times: usize,
    },
    /// The next `times` bulk requests wait `delay` before they are forwarded.
    Stall {
        delay: Duration,
        times: usize,
    },
    /// Every connection is closed at once.
    Down,
}

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub items: usize,
}

struct State {
    fault: Fault,
    auth: Option<String>,
    seen: Vec<Seen>,
}

/// A fault-injecting HTTP proxy in front of `upstream`, stopped on drop.
pub struct Proxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    /// Items answered with an injected status, requests reset or stalled.
    pub injected: Arc<AtomicUsize>,
    /// Requests being stalled or forwarded right now.
    pub busy: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream: u16, tls: Option<Arc<rustls::ServerConfig>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(State {
            fault: Fault::None,
            auth: None,
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let injected = Arc::new(AtomicUsize::new(0));
        let busy = Arc::new(AtomicUsize::new(0));
        let item_counter = Arc::new(AtomicUsize::new(0));
        let p = Proxy {
            port,
            state: state.clone(),
            stop: stop.clone(),
            injected: injected.clone(),
            busy: busy.clone(),
        };
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        if matches!(state.lock().unwrap().fault, Fault::Down) {
                            reset(&s);
                            continue;
                        }
                        let ctx = Conn {
                            state: state.clone(),
                            upstream,
                            injected: injected.clone(),
                            busy: busy.clone(),
                            items: item_counter.clone(),
                            stop: stop.clone(),
                        };
                        let tls = tls.clone();
                        std::thread::spawn(move || ctx.serve(s, tls));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        p
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: Fault) {
        self.state.lock().unwrap().fault = fault;
    }

    pub fn require_auth(&self, header: Option<&str>) {
        self.state.lock().unwrap().auth = header.map(str::to_string);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Wait until no request is stalled or being forwarded.
    pub fn wait_idle(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.busy.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < deadline, "proxy still busy after {secs}s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Close with RST (SO_LINGER 0), as a crashed peer or a reset middlebox does.
fn reset(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

struct Conn {
    state: Arc<Mutex<State>>,
    upstream: u16,
    injected: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
    items: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(s: &mut dyn Stream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let end = loop {
        if let Some(e) = find(&buf, b"\r\n\r\n") {
            break e;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    if headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v.contains("gzip"))
    {
        let mut d = flate2::read::GzDecoder::new(&body[..]);
        let mut plain = Vec::new();
        d.read_to_end(&mut plain).ok()?;
        body = plain;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond(s: &mut dyn Stream, status: u16, body: &[u8]) -> bool {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=UTF-8\r\nX-Elastic-Product: Elasticsearch\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).is_ok() && s.write_all(body).is_ok() && s.flush().is_ok()
}

fn error_body(status: u16, ty: &str) -> Vec<u8> {
    json!({"error": {"type": ty, "reason": "injected by the test proxy"}, "status": status})
        .to_string()
        .into_bytes()
}

impl Conn {
    fn forward(&self, r: &Request, body: &[u8]) -> Option<(u16, Vec<u8>)> {
        let mut up = TcpStream::connect(("127.0.0.1", self.upstream)).ok()?;
        let head = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            r.method,
            r.path,
            body.len()
        );
        up.write_all(head.as_bytes()).ok()?;
        up.write_all(body).ok()?;
        let mut buf = Vec::new();
        up.read_to_end(&mut buf).ok()?;
        let (status, _, body) = parse_response(&buf)?;
        Some((status, body))
    }

    fn serve(self, tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) {
        let raw = tcp.try_clone().expect("clone socket");
        let mut stream: Box<dyn Stream> = match tls {
            Some(cfg) => match rustls::ServerConnection::new(cfg) {
                Ok(c) => Box::new(rustls::StreamOwned::new(c, tcp)),
                Err(_) => return,
            },
            None => Box::new(tcp),
        };
        while !self.stop.load(Ordering::Relaxed) {
            let Some(req) = read_request(&mut *stream) else {
                return;
            };
            let bulk = req.path.contains("_bulk");
            let items = if bulk {
                req.body
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
                    / 2
            } else {
                0
            };
            let (fault, auth) = {
                let mut st = self.state.lock().unwrap();
                st.seen.push(Seen {
                    method: req.method.clone(),
                    path: req.path.clone(),
                    headers: req.headers.clone(),
                    items,
                });
                let fault = st.fault.clone();
                // Count down one-shot faults.
                if bulk {
                    match &mut st.fault {
                        Fault::Request { times, .. }
                        | Fault::ResetAfterForward { times }
                        | Fault::Stall { times, .. } => {
                            if *times <= 1 {
                                st.fault = Fault::None;
                            } else {
                                *times -= 1;
                            }
                        }
                        _ => {}
                    }
                }
                (fault, st.auth.clone())
            };
            if matches!(fault, Fault::Down) {
                reset(&raw);
                return;
            }
            if let Some(want) = auth {
                let got = req
                    .headers
                    .iter()
                    .find(|(k, _)| k == "authorization")
                    .map(|(_, v)| v.as_str());
                if got != Some(want.as_str()) {
                    if !respond(&mut *stream, 401, &error_body(401, "security_exception")) {
                        return;
                    }
                    continue;
                }
            }
            let answer = if !bulk {
                self.forward(&req, &req.body)
            } else {
                match fault {
                    Fault::Request { status, .. } => {
                        self.injected.fetch_add(1, Ordering::SeqCst);
                        Some((status, error_body(status, "injected")))
                    }
                    Fault::TooLarge { max_bytes } if req.body.len() > max_bytes => {
                        self.injected.fetch_add(1, Ordering::SeqCst);
                        Some((413, error_body(413, "content_too_long")))
                    }
                    Fault::Items { every, status } => self.items_fault(&req, every, status),
                    Fault::ResetAfterForward { .. } => {
                        self.busy.fetch_add(1, Ordering::SeqCst);
                        let _ = self.forward(&req, &req.body);
                        self.injected.fetch_add(1, Ordering::SeqCst);
                        self.busy.fetch_sub(1, Ordering::SeqCst);
                        reset(&raw);
                        return;
                    }
                    Fault::Stall { delay, .. } => {
                        self.busy.fetch_add(1, Ordering::SeqCst);
                        self.injected.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(delay);
                        let a = self.forward(&req, &req.body);
                        self.busy.fetch_sub(1, Ordering::SeqCst);
                        a
                    }
                    _ => self.forward(&req, &req.body),
                }
            };
            let Some((status, body)) = answer else {
                reset(&raw);
                return;
            };
            if !respond(&mut *stream, status, &body) {
                return;
            }
        }
    }

    /// Answer `status` for every `every`-th item; send the others to the server and merge.
    fn items_fault(&self, req: &Request, every: usize, status: u16) -> Option<(u16, Vec<u8>)> {
        let lines: Vec<&[u8]> = req
            .body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let mut keep = Vec::new();
        let mut faulted = Vec::new();
        for pair in lines.chunks(2) {
            let n = self.items.fetch_add(1, Ordering::SeqCst);
            let hit = n % every.max(1) == 0;
            faulted.push(hit);
            if !hit {
                for l in pair {
                    keep.extend_from_slice(l);
                    keep.push(b'\n');
                }
            }
        }
        let mut upstream_items = Vec::new().into_iter();
        if !keep.is_empty() {
            let (s, body) = self.forward(req, &keep)?;
            if s != 200 {
                return Some((s, body));
            }
            let v: Value = serde_json::from_slice(&body).ok()?;
            upstream_items = v["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter();
        }
        let mut items = Vec::new();
        for hit in faulted {
            if hit {
                self.injected.fetch_add(1, Ordering::SeqCst);
                items.push(json!({"create": {"status": status, "error": {"type": "es_rejected_execution_exception", "reason": "injected by the test proxy"}}}));
            } else {
                items.push(
                    upstream_items
                        .next()
                        .unwrap_or(json!({"create": {"status": 500}})),
                );
            }
        }
        Some((
            200,
            json!({"errors": true, "items": items})
                .to_string()
                .into_bytes(),
        ))
    }
}
