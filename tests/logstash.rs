//! The Logstash output against real Lumberjack v2 readers:
//! - the reference server, Elastic's go-lumber `server/v2` package (the code of Filebeat's
//!   lumberjack input), through the helper in `tests/lumberjack-server` (built by
//!   `tests/run.sh`; these tests fail, and say how to build it, when it is missing);
//! - a Logstash-like server of our own (`tests/support/lumberjack.rs`), scripted per window:
//!   keepalives, partial ACKs, resets, refused connections, slow hosts, bad sequence numbers;
//! - `ferro-lumberjack`'s server (crates.io), an independent third reader;
//! - `microsocks` (Debian) as the SOCKS5 proxy.

#[path = "support/lumberjack.rs"]
mod lumberjack;
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lumberjack::{
    hold_first_connection, on_window, Action, LogstashServer, WindowCtx, LOGSTASH_KEEPALIVE,
};
use serde_json::Value;
use support::*;

/// `[output.logstash]` for `hosts` with a quick backoff, plus `extra` lines.
fn ls_output<S: AsRef<str>>(hosts: &[S], extra: &str) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{:?}", h.as_ref())).collect();
    format!(
        "[output.logstash]\nhosts = [{}]\nbackoff.init = \"100ms\"\nbackoff.max = \"500ms\"\n{extra}\n",
        hosts.join(", ")
    )
}

fn write_lines(w: &Workspace, file: &str, prefix: &str, n: usize) {
    append(&w.logs().join(file), &seq_lines(prefix, 0..n));
}

/// Every seq 0..n of `prefix` exactly once.
fn assert_once(events: &[Value], prefix: &str, n: usize, what: &str) {
    let dups = assert_complete(seqs(events, prefix), n, what);
    assert_eq!(dups, 0, "{what}: {dups} duplicates");
}

fn values(r: &[lumberjack::Received]) -> Vec<Value> {
    r.iter().map(|e| e.event.clone()).collect()
}

// ---------------------------------------------------------------------------------------
// The reference server (go-lumber)
// ---------------------------------------------------------------------------------------

fn go_server_bin() -> PathBuf {
    let p = std::env::var_os("OXIBEAT_LUMBERJACK_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target dir")
                .join("go/lumberjack-server")
        });
    assert!(
        p.is_file(),
        "the go-lumber reference server {} is not built: run tests/run.sh, or \
         (cd tests/lumberjack-server && go build -o {} .)",
        p.display(),
        p.display()
    );
    p
}

/// The go-lumber server, killed on drop; stdout (one JSON event per line) and stderr in files.
struct GoServer {
    child: Child,
    addr: String,
    out: PathBuf,
    err: PathBuf,
}

impl GoServer {
    fn start(dir: &Path, args: &[&str]) -> GoServer {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let out = dir.join(format!("lumber-{n}.out"));
        let err = dir.join(format!("lumber-{n}.err"));
        let child = Command::new(go_server_bin())
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("start the go-lumber server");
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            if let Some(a) = text.lines().find_map(|l| l.strip_prefix("listening on ")) {
                break a.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "go-lumber server did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        GoServer {
            child,
            addr,
            out,
            err,
        }
    }

    fn events(&self) -> Vec<Value> {
        let f = std::fs::File::open(&self.out).unwrap();
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

impl Drop for GoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn reference_server_gets_every_line_once_compressed_and_not() {
    for level in [3, 0] {
        let w = Workspace::new();
        let srv = GoServer::start(w.path(), &["-addr", "127.0.0.1:0"]);
        let n = 5000;
        write_lines(&w, "app.log", "ref", n);
        let cfg = w.config_with(
            &w.input("app", "*.log", ""),
            &ls_output(
                &[&srv.addr],
                &format!("compression_level = {level}\nbulk_max_size = 700\nindex = \"Logs-App\""),
            ),
        );
        w.run_once(&cfg);
        let events = srv.events();
        assert_once(&events, "ref", n, &format!("compression {level}"));
        let e = &events[0];
        assert_eq!(
            e["@metadata"]["beat"], "logs-app",
            "index sets @metadata.beat, lowercased"
        );
        assert_eq!(e["@metadata"]["type"], "_doc");
        assert_eq!(e["@metadata"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(e["input"]["type"], "filestream");
        assert_eq!(e["agent"]["type"], "oxibeat");
        assert!(
            e["@timestamp"].is_string() && e["log"]["offset"].is_u64(),
            "{e}"
        );
        let batches = srv
            .log()
            .lines()
            .filter(|l| l.starts_with("batch events="))
            .count();
        assert!(
            batches >= n / 700,
            "windows of at most 700 events: {batches}"
        );
    }
}

/// A fresh CA with a server certificate for 127.0.0.1 and localhost and a client certificate,
/// written as PEM files: (ca, server cert, server key, client cert, client key).
fn pki(dir: &Path, name: &str) -> [PathBuf; 5] {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("oxibeat test CA {name}"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let skey = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&skey, &ca)
        .unwrap();
    let ckey = KeyPair::generate().unwrap();
    let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.distinguished_name
        .push(DnType::CommonName, "oxibeat-agent");
    let client = cp.signed_by(&ckey, &ca).unwrap();
    let files = [
        (format!("{name}-ca.pem"), ca.pem()),
        (format!("{name}-server.pem"), server.pem()),
        (format!("{name}-server.key"), skey.serialize_pem()),
        (format!("{name}-client.pem"), client.pem()),
        (format!("{name}-client.key"), ckey.serialize_pem()),
    ];
    files.map(|(f, pem)| {
        let p = dir.join(f);
        std::fs::write(&p, pem).unwrap();
        p
    })
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn reference_server_over_tls_and_mutual_tls_and_test_output() {
    let w = Workspace::new();
    let [ca, cert, key, ccert, ckey] = pki(w.path(), "ls");
    let srv = GoServer::start(
        w.path(),
        &["-addr", "127.0.0.1:0", "-cert", &s(&cert), "-key", &s(&key)],
    );
    let port = srv.addr.rsplit(':').next().unwrap().to_string();
    // A host name, so verification_mode = full checks the name against the certificate.
    let host = format!("localhost:{port}");
    write_lines(&w, "app.log", "tls", 300);
    let ssl = format!(
        "[output.logstash.ssl]\ncertificate_authorities = [{:?}]\n",
        s(&ca)
    );
    let cfg = w.config_with(&w.input("app", "*.log", ""), &ls_output(&[&host], &ssl));
    let out = Command::new(bin())
        .args(["test", "output", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{host}: connected to 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(
        text.contains("TLS handshake ok") && text.contains("sha256"),
        "{text}"
    );
    w.run_once(&cfg);
    assert_once(&srv.events(), "tls", 300, "over TLS");
    assert!(srv.log().contains("tls=TLS 1.3"), "{}", srv.log());

    // A CA that did not sign the server's certificate: test output fails and says why.
    let other = pki(w.path(), "other");
    let bad = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(
            &[&host],
            &format!(
                "[output.logstash.ssl]\ncertificate_authorities = [{:?}]\n",
                s(&other[0])
            ),
        ),
    );
    let out = Command::new(bin())
        .args(["test", "output", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("TLS handshake") && err.contains("UnknownIssuer"),
        "{err}"
    );
    drop(srv);

    // Mutual TLS: the server requires a certificate from the CA; the agent presents one.
    let srv = GoServer::start(
        w.path(),
        &[
            "-addr",
            "127.0.0.1:0",
            "-cert",
            &s(&cert),
            "-key",
            &s(&key),
            "-client-ca",
            &s(&ca),
        ],
    );
    let w2 = Workspace::new();
    write_lines(&w2, "app.log", "mtls", 200);
    let ssl = format!(
        "[output.logstash.ssl]\ncertificate_authorities = [{:?}]\ncertificate = {:?}\nkey = {:?}\n",
        s(&ca),
        s(&ccert),
        s(&ckey)
    );
    let cfg = w2.config_with(
        &w2.input("app", "*.log", ""),
        &ls_output(&[&srv.addr], &ssl),
    );
    w2.run_once(&cfg);
    assert_once(&srv.events(), "mtls", 200, "mutual TLS");
}

#[test]
fn reference_server_keepalives_hold_back_the_timeout() {
    // go-lumber holds every batch 4 s and sends ACK(0) every second meanwhile; the agent's
    // timeout is 2 s: only the keepalives keep it from timing out and resending.
    let w = Workspace::new();
    let srv = GoServer::start(
        w.path(),
        &[
            "-addr",
            "127.0.0.1:0",
            "-ack-delay",
            "4s",
            "-keepalive",
            "1s",
        ],
    );
    write_lines(&w, "app.log", "held", 100);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[&srv.addr], "timeout = \"2s\""),
    );
    let out = w.run_once(&cfg);
    assert_once(&srv.events(), "held", 100, "held by go-lumber");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("connection failed"), "{log}");
}

// ---------------------------------------------------------------------------------------
// ferro-lumberjack, a third reader
// ---------------------------------------------------------------------------------------

#[test]
fn ferro_lumberjack_reads_our_frames() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let listener = rt
        .block_on(ferro_lumberjack::server::Server::builder().bind("127.0.0.1:0"))
        .expect("ferro-lumberjack server");
    let addr = listener.local_addr().unwrap().to_string();
    let sink = got.clone();
    rt.spawn(async move {
        while let Ok(mut conn) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                while let Ok(Some(window)) = conn.read_window().await {
                    sink.lock()
                        .unwrap()
                        .extend(window.events.iter().map(|e| e.payload.clone()));
                    if conn.send_ack(window.last_seq).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    for level in [3, 0] {
        let w = Workspace::new();
        write_lines(&w, "app.log", "ferro", 3000);
        let cfg = w.config_with(
            &w.input("app", "*.log", ""),
            &ls_output(&[&addr], &format!("compression_level = {level}")),
        );
        w.run_once(&cfg);
        let payloads = std::mem::take(&mut *got.lock().unwrap());
        let events: Vec<Value> = payloads
            .iter()
            .map(|p| serde_json::from_slice(p).expect("every payload is one JSON event"))
            .collect();
        assert_once(
            &events,
            "ferro",
            3000,
            &format!("ferro-lumberjack, compression {level}"),
        );
        assert_eq!(events[0]["@metadata"]["beat"], "oxibeat");
    }
}

// ---------------------------------------------------------------------------------------
// The scriptable Logstash-like server
// ---------------------------------------------------------------------------------------

#[test]
fn a_window_held_60s_with_keepalives_is_not_resent() {
    // Logstash's defaults: ACK(0) every 5 s while busy; the agent's default timeout is 30 s.
    let srv = LogstashServer::with_script(on_window(
        0,
        Action::Hold {
            hold: Duration::from_secs(60),
            keepalive: LOGSTASH_KEEPALIVE,
        },
    ));
    let w = Workspace::new();
    write_lines(&w, "app.log", "busy", 100);
    let cfg = w.config_with(&w.input("app", "*.log", ""), &ls_output(&[srv.addr()], ""));
    let t = Instant::now();
    let out = w.run_once(&cfg);
    assert!(
        t.elapsed() >= Duration::from_secs(59),
        "the window was held"
    );
    assert_once(&values(&srv.events()), "busy", 100, "held window");
    assert_eq!(srv.connections(), 1, "no reconnect, no resend");
    assert!(srv.keepalives() >= 11, "keepalives: {}", srv.keepalives());
    assert!(srv.errors().is_empty(), "{:?}", srv.errors());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("timed out") && !log.contains("connection failed"),
        "{log}"
    );
}

#[test]
fn partial_ack_then_reset_resends_only_the_rest() {
    let srv = LogstashServer::with_script(on_window(0, Action::PartialThenReset(30)));
    let w = Workspace::new();
    write_lines(&w, "app.log", "part", 100);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[srv.addr()], "bulk_max_size = 100"),
    );
    w.run_once(&cfg);
    let got = srv.events();
    let first: Vec<&lumberjack::Received> = got.iter().filter(|e| e.window == 0).collect();
    assert_eq!(first.len(), 100, "the first window held all 100 events");
    let after: Vec<Value> = got
        .iter()
        .filter(|e| e.conn > 0)
        .map(|e| e.event.clone())
        .collect();
    let resent = seqs(&after, "part");
    assert_eq!(
        resent.len(),
        70,
        "only the 70 unacknowledged events are sent again: {resent:?}"
    );
    assert_eq!(
        resent[0], 30,
        "the resent window starts after the 30 ACKed events"
    );
    assert_once(&after, "part", 0, "");
    let all = values(&got);
    let mut s = seqs(&all, "part");
    s.sort_unstable();
    let dups = s.windows(2).filter(|p| p[0] == p[1]).count();
    assert_eq!(dups, 70, "the 30 ACKed events were not sent twice");
    assert_eq!(srv.connections(), 2);
}

#[test]
fn several_acks_per_window_are_progress_not_errors() {
    let srv = LogstashServer::with_script(Arc::new(|_: &WindowCtx| {
        Action::PartialThenAck(7, Duration::from_millis(50))
    }));
    let w = Workspace::new();
    write_lines(&w, "app.log", "multi", 500);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[srv.addr()], "bulk_max_size = 100"),
    );
    w.run_once(&cfg);
    assert_once(&values(&srv.events()), "multi", 500, "partial ACKs");
    assert_eq!(srv.connections(), 1);
}

#[test]
fn a_connection_reset_mid_window_resends_the_window() {
    let srv = LogstashServer::with_script(on_window(1, Action::ResetMidWindow));
    let w = Workspace::new();
    write_lines(&w, "app.log", "rst", 400);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[srv.addr()], "bulk_max_size = 100\ncompression_level = 0"),
    );
    let out = w.run_once(&cfg);
    assert_once(&values(&srv.events()), "rst", 400, "after a reset");
    assert!(srv.connections() >= 2);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Logstash connection failed"), "{log}");
}

#[test]
fn refused_connections_are_retried_until_logstash_listens() {
    let port = free_port();
    let w = Workspace::new();
    write_lines(&w, "app.log", "late", 300);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[format!("127.0.0.1:{port}")], ""),
    );
    let mut agent = w.spawn(&cfg);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&agent.log)
        .unwrap_or_default()
        .contains("connecting to Logstash failed")
    {
        assert!(Instant::now() < deadline, "no connection failure logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let srv = LogstashServer::start_on(port, Arc::new(|_: &WindowCtx| Action::Ack));
    srv.wait_events(300, 30);
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert_once(&values(&srv.events()), "late", 300, "after refusals");
    assert!(log.contains("Connection refused"), "{log}");
}

#[test]
fn failover_uses_a_live_host_when_another_is_down() {
    let srv = LogstashServer::start();
    let dead = format!("127.0.0.1:{}", free_port());
    let w = Workspace::new();
    write_lines(&w, "app.log", "fo", 1000);
    for _ in 0..2 {
        let cfg = w.config_with(
            &w.input("app", "*.log", ""),
            &ls_output(&[dead.clone(), srv.addr()], "bulk_max_size = 100"),
        );
        w.run_once(&cfg);
        write_lines(&w, "app.log", "fo2", 0);
    }
    assert_once(&values(&srv.events()), "fo", 1000, "failover");
}

#[test]
fn a_slow_host_does_not_hold_back_the_others_with_loadbalance() {
    let hold = Duration::from_secs(4);
    let slow = LogstashServer::with_script(Arc::new(move |_: &WindowCtx| Action::Hold {
        hold,
        keepalive: Duration::from_secs(1),
    }));
    let fast1 = LogstashServer::start();
    let fast2 = LogstashServer::start();
    let w = Workspace::new();
    let n = 6000;
    write_lines(&w, "app.log", "lb", n);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(
            &[slow.addr(), fast1.addr(), fast2.addr()],
            "loadbalance = true\nbulk_max_size = 100\npipelining = 2",
        ),
    );
    w.run_once(&cfg);
    let mut all = values(&slow.events());
    all.extend(values(&fast1.events()));
    all.extend(values(&fast2.events()));
    assert_once(&all, "lb", n, "three hosts");
    // The slow host holds each window 4 s: before it ACKed its first one, the other two hosts
    // had received everything but the (at most two, with pipelining 2) windows it held.
    let first_ack = slow.windows()[0].at + hold;
    let before: usize = [&fast1, &fast2]
        .iter()
        .flat_map(|s| s.windows())
        .filter(|w| w.at < first_ack)
        .map(|w| w.size as usize)
        .sum();
    let timeline = |srv: &LogstashServer| {
        let t0 = slow.windows()[0].at;
        srv.windows()
            .iter()
            .map(|w| format!("{}@{:.2}s", w.size, w.at.duration_since(t0).as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        before >= n - 200,
        "the fast hosts got {before} of {n} events while the slow host held its first window\nslow ({} connections): {}\nfast1: {}\nfast2: {}",
        slow.connections(),
        timeline(&slow),
        timeline(&fast1),
        timeline(&fast2)
    );
    assert!(!fast1.events().is_empty() && !fast2.events().is_empty());
}

#[test]
fn ttl_reopens_connections_with_pipelining() {
    let srv = LogstashServer::with_script(Arc::new(|_: &WindowCtx| Action::Hold {
        hold: Duration::from_millis(100),
        keepalive: Duration::from_secs(1),
    }));
    let w = Workspace::new();
    write_lines(&w, "app.log", "ttl", 1500);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(
            &[srv.addr()],
            "ttl = \"400ms\"\npipelining = 2\nbulk_max_size = 50",
        ),
    );
    let out = w.run_once(&cfg);
    assert_once(&values(&srv.events()), "ttl", 1500, "with ttl");
    assert!(srv.connections() >= 3, "connections: {}", srv.connections());
    assert!(srv.errors().is_empty(), "{:?}", srv.errors());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("connection failed"),
        "ttl is not an error: {log}"
    );
}

#[test]
fn an_ack_above_the_window_size_is_a_protocol_error() {
    let srv = LogstashServer::with_script(Arc::new(|c: &WindowCtx| {
        if c.index == 0 {
            Action::AckSeq(c.size + 5)
        } else {
            Action::Ack
        }
    }));
    let w = Workspace::new();
    write_lines(&w, "app.log", "oor", 100);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[srv.addr()], "bulk_max_size = 100"),
    );
    let out = w.run_once(&cfg);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("protocol error: ACK 105 for a window of 100 events"),
        "{log}"
    );
    // Nothing was acknowledged: the whole window went again, on a new connection.
    let again: Vec<Value> = srv
        .events()
        .iter()
        .filter(|e| e.conn == 1)
        .map(|e| e.event.clone())
        .collect();
    assert_once(&again, "oor", 100, "resent after the protocol error");
}

#[test]
fn slow_start_grows_the_window() {
    let srv = LogstashServer::start();
    let w = Workspace::new();
    write_lines(&w, "app.log", "ss", 1000);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(
            &[srv.addr()],
            "slow_start = true\npipelining = 0\nbulk_max_size = 100",
        ),
    );
    w.run_once(&cfg);
    assert_once(&values(&srv.events()), "ss", 1000, "slow start");
    let sizes: Vec<u32> = srv.windows().iter().map(|w| w.size).collect();
    // Filebeat's window.go: 10, then ×1.5 rounded up per ACKed window, capped by the batch.
    assert_eq!(sizes[..3], [10, 15, 23], "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= 100), "{sizes:?}");
    assert!(sizes.iter().any(|&s| s >= 53), "{sizes:?}");
}

#[test]
fn kill9_loses_nothing() {
    let srv = LogstashServer::with_script(hold_first_connection(Duration::from_millis(500)));
    let w = Workspace::new();
    write_lines(&w, "app.log", "k9", 3000);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[srv.addr()], "bulk_max_size = 200"),
    );
    let mut agent = w.spawn(&cfg);
    srv.wait_events(600, 30);
    agent.kill9();
    let mut agent = w.spawn(&cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = seqs(&values(&srv.events()), "k9");
        let mut u = got.clone();
        u.sort_unstable();
        u.dedup();
        if u.len() == 3000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 3000 after the restart",
            u.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert_complete(seqs(&values(&srv.events()), "k9"), 3000, "after kill -9");
}

#[test]
fn sigterm_waits_for_the_ack_of_windows_in_flight() {
    let srv = LogstashServer::with_script(hold_first_connection(Duration::from_secs(3)));
    let w = Workspace::new();
    write_lines(&w, "app.log", "term", 100);
    let cfg = w.config_with(&w.input("app", "*.log", ""), &ls_output(&[srv.addr()], ""));
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("shutdown_timeout = \"20s\"\n{text}")).unwrap();
    let mut agent = w.spawn(&cfg);
    srv.wait_events(100, 30);
    let t = Instant::now();
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "the agent waited for the ACK"
    );
    assert!(!log.contains("shutdown_timeout reached"), "{log}");
    // The registry holds the ACKed offset: a restart sends nothing again.
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_secs(2));
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert_once(&values(&srv.events()), "term", 100, "SIGTERM then restart");
}

#[test]
fn socks5_proxy_with_credentials() {
    let Some(microsocks) = ["/usr/bin/microsocks", "/usr/local/bin/microsocks"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        panic!(
            "microsocks is not installed: tests/run.sh installs it (apt-get install microsocks)"
        );
    };
    let srv = LogstashServer::start();
    let pport = free_port();
    let mut proxy = Command::new(microsocks)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &pport.to_string(),
            "-u",
            "agent",
            "-P",
            "s3cr3t-pw",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start microsocks");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", pport)).is_err() {
        assert!(Instant::now() < deadline, "microsocks did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    for local in [false, true] {
        let w = Workspace::new();
        write_lines(&w, "app.log", "px", 200);
        let cfg = w.config_with(
            &w.input("app", "*.log", ""),
            &ls_output(
                &[format!("localhost:{}", srv.port)],
                &format!(
                    "proxy_url = \"socks5://agent:s3cr3t-pw@127.0.0.1:{pport}\"\nproxy_use_local_resolver = {local}"
                ),
            ),
        );
        let out = w.run_once(&cfg);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cr3t-pw"));
        let export = Command::new(bin())
            .args(["export", "config", "-c"])
            .arg(&cfg)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&export.stdout);
        assert!(
            text.contains("socks5://agent:xxxxx@") && !text.contains("s3cr3t-pw"),
            "{text}"
        );
    }
    assert_complete(seqs(&values(&srv.events()), "px"), 200, "through the proxy");
    // A wrong password is refused by the proxy, and said so without showing it.
    let w = Workspace::new();
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(
            &[srv.addr()],
            &format!("proxy_url = \"socks5://agent:wrong-pw@127.0.0.1:{pport}\""),
        ),
    );
    let out = Command::new(bin())
        .args(["test", "output", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("rejected the username or password"),
        "{err}"
    );
    assert!(!err.contains("wrong-pw"), "{err}");
    let _ = proxy.kill();
    let _ = proxy.wait();
}

#[test]
fn test_output_and_config_errors() {
    let srv = LogstashServer::start();
    let w = Workspace::new();
    let cfg = w.config_with(&w.input("app", "*.log", ""), &ls_output(&[srv.addr()], ""));
    let out = Command::new(bin())
        .args(["test", "output", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{}: connected to {}", srv.addr(), srv.addr()))
            && text.contains("TLS off"),
        "{text}"
    );
    // Nothing listening: a clear failure and a non-zero exit.
    let dead = format!("127.0.0.1:{}", free_port());
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[&dead], "timeout = \"2s\""),
    );
    let out = Command::new(bin())
        .args(["test", "output", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!("{dead}: FAILED"))
            && err.contains("refused"),
        "{err}"
    );
    // Unknown keys name their path.
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &ls_output(&[srv.addr()], "pipelinig = 2"),
    );
    let out = Command::new(bin())
        .args(["test", "config", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("output.logstash") && err.contains("pipelinig"),
        "{err}"
    );
}
