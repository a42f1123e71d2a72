//! `osmem-server` (PyPI `osmem-server` 0.1.6, installed by tests/run.sh from
//! tests/stack/requirements.txt): an in-memory OpenSearch-compatible server with real BM25,
//! started on a free port and killed on drop.

#![allow(dead_code)]
// Included with `#[path = "support/osmem.rs"] mod osmem;` next to `mod support;`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bundled binary, located through Python's site-packages (`osmem_server/bin/`), or
/// `OSMEM_SERVER_BIN`.
pub fn binary() -> Result<String, String> {
    if let Ok(p) = std::env::var("OSMEM_SERVER_BIN") {
        return Ok(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import osmem_server, os; print(os.path.join(os.path.dirname(osmem_server.__file__), 'bin', 'osmem-server'))",
        ])
        .output()
        .map_err(|e| format!("cannot run python3 to find osmem-server: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "osmem-server is not installed ({}): pip install -r tests/stack/requirements.txt (tests/run.sh does)",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !std::path::Path::new(&p).exists() {
        return Err(format!("osmem-server binary {p} is missing from the wheel"));
    }
    Ok(p)
}

pub struct Osmem {
    child: Child,
    pub port: u16,
}

impl Osmem {
    /// Start it and wait until it answers `GET /`.
    pub fn start() -> Osmem {
        let bin = binary().unwrap_or_else(|e| panic!("{e}"));
        let port = crate::support::free_port();
        let child = Command::new(&bin)
            .args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let o = Osmem { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while o.call("GET", "/", None).is_err() {
            assert!(
                Instant::now() < deadline,
                "osmem-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        o
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A blocking request; the status and body text.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<(u16, String), String> {
        use std::io::{Read, Write};
        let mut s =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let (ctype, bytes) = body.unwrap_or(("application/json", b""));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        );
        s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        s.write_all(bytes).map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&resp).to_string();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP head")?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no status")?;
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        Ok((
            status,
            if chunked {
                dechunk(body)
            } else {
                body.to_string()
            },
        ))
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
