//! The Kafka output end to end: the real binary against a real Kafka-protocol broker (tansu,
//! in memory, started per test on a free port), consumed back with the rdkafka crate using
//! explicit partition assignment (tansu's consumer-group join is slow).
//!
//! tansu is required: without it these tests fail and say how to install it.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxibeat::output::kafka::partition::{fnv1a, hash_to_partition};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use support::pki::*;
use support::*;

/// One broker at a time: the machine has 2 cores, and parallel brokers make timing noisy.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    match found.or(home.filter(|p| p.is_file())) {
        Some(p) => p,
        None => panic!(
            "the Kafka tests need the `tansu` broker binary and it was not found on PATH or in ~/.cargo/bin.\n\
             Install it with: cargo install tansu --version 0.6.0 --locked --features dynostore,libsql\n\
             (about 15 minutes on 2 cores; .ci/run does this when it is missing)"
        ),
    }
}

fn wait_port(port: u16, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {port} did not open within {secs}s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tansu broker, killed on drop.
struct Tansu {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Tansu {
    /// Listen on a free port; advertise `advertise` (a proxy's port) or the listen port.
    fn start(dir: &Path, advertise: Option<u16>, tls: Option<(&Path, &Path)>) -> Tansu {
        Tansu::launch(dir, advertise, tls, "memory://tansu/", false)
    }

    /// A broker on `storage` that requires SASL authentication when `authentication`.
    fn launch(
        dir: &Path,
        advertise: Option<u16>,
        tls: Option<(&Path, &Path)>,
        storage: &str,
        authentication: bool,
    ) -> Tansu {
        let port = free_port();
        let adv = advertise.unwrap_or(port);
        let log = dir.join(format!("tansu-{port}.log"));
        let mut cmd = Command::new(tansu_bin());
        // A sqlite:// storage file is relative to the working directory.
        cmd.current_dir(dir)
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{adv}"))
            .arg("--storage-engine")
            .arg(storage);
        if authentication {
            cmd.arg("--authentication");
        }
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("tansu log"))
            .spawn()
            .expect("start tansu");
        wait_port(port, 30);
        Tansu { child, port, log }
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: i32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(tansu_bin())
                .args(["topic", "create", name, "--broker", &self.url()])
                .arg("--partitions")
                .arg(partitions.to_string())
                .output()
                .expect("tansu topic create");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu topic create {name} failed: {}\nbroker log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on a fixed port that can be stopped (listener closed, connections cut) and
/// started again: a broker outage without losing the in-memory broker's data.
struct Proxy {
    port: u16,
    target: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn new(port: u16, target: u16) -> Proxy {
        let mut p = Proxy {
            port,
            target,
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            thread: None,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        self.stop.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "proxy cannot bind {}: {e}",
                        self.port
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        listener.set_nonblocking(true).unwrap();
        let (stop, conns, target) = (self.stop.clone(), self.conns.clone(), self.target);
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let mut list = conns.lock().unwrap();
                        list.push(client.try_clone().unwrap());
                        list.push(server.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// A consumed message.
#[derive(Debug, Clone)]
struct Msg {
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    value: Value,
    timestamp: Option<i64>,
    headers: Vec<(String, String)>,
}

/// Read every message of `topics` (all partitions, from the beginning) until `want` messages
/// arrived and nothing more came for a moment, or `secs` passed.
fn consume(
    bootstrap: &str,
    topics: &[&str],
    want: usize,
    secs: u64,
    extra: &[(&str, &str)],
) -> Vec<Msg> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("group.id", "oxibeat-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        cc.set(*k, *v);
    }
    let c: BaseConsumer = cc.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = c
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .expect("consumer metadata");
        let n = md.topics()[0].partitions().len() as i32;
        assert!(n > 0, "topic {t} has no partitions");
        for p in 0..n {
            tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
        }
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut quiet_since: Option<Instant> = None;
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = None;
                let value = serde_json::from_slice(m.payload().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("message value is not JSON: {e}"));
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (
                                    x.key.to_string(),
                                    String::from_utf8_lossy(x.value.unwrap_or_default())
                                        .to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Msg {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    value,
                    timestamp: m.timestamp().to_millis(),
                    headers,
                });
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {
                if out.len() >= want {
                    let q = *quiet_since.get_or_insert_with(Instant::now);
                    // Give duplicates or strays a moment to show up.
                    if q.elapsed() > Duration::from_millis(600) {
                        break;
                    }
                }
            }
        }
    }
    out
}

fn kafka_output(hosts: &str, extra: &str) -> String {
    format!("[output.kafka]\nhosts = [{hosts:?}]\nbackoff.init = \"100ms\"\nbackoff.max = \"1s\"\n{extra}\n")
}

fn values(msgs: &[Msg]) -> Vec<Value> {
    msgs.iter().map(|m| m.value.clone()).collect()
}

#[test]
fn every_line_arrives_once_with_beats_json() {
    let _g = serial();
    let w = Workspace::new();
    let broker = Tansu::start(w.path(), None, None);
    broker.create_topic("logs", 3);
    let log = w.logs().join("app.log");
    let n = 3000;
    append(&log, &seq_lines("k", 0..n));
    let cfg = w.config_with(
        &w.input("app", "*.log", "fields = { service = \"api\" }"),
        &kafka_output(
            &format!("127.0.0.1:{}", broker.port),
            "topic = \"logs\"\nheaders = [{ key = \"source\", value = \"oxibeat\" }]",
        ),
    );
    w.run_once(&cfg);
    let msgs = consume(&format!("127.0.0.1:{}", broker.port), &["logs"], n, 60, &[]);
    let got = seqs(&values(&msgs), "k ");
    let dups = assert_complete(got, n, "clean run");
    assert_eq!(dups, 0, "a clean run sends every line once");
    assert_eq!(msgs.len(), n);
    // No key: librdkafka's sticky partitioner picks among the 3 partitions.
    assert!(msgs.iter().all(|m| (0..3).contains(&m.partition)));
    let m = msgs
        .iter()
        .find(|m| m.value["message"].as_str().unwrap().contains("seq=0 "))
        .unwrap();
    let e = &m.value;
    assert_eq!(e["@metadata"]["beat"], "oxibeat");
    assert_eq!(e["@metadata"]["type"], "_doc");
    assert_eq!(e["log"]["offset"], 0);
    assert_eq!(e["log"]["file"]["path"], log.display().to_string());
    assert_eq!(e["input"]["type"], "filestream");
    assert_eq!(e["fields"]["service"], "api");
    assert!(e["agent"]["id"].is_string());
    // The Kafka timestamp is @timestamp.
    let ts = e["@timestamp"].as_str().unwrap();
    let nanos = oxibeat::event::parse_timestamp(ts).expect("@timestamp parses");
    assert_eq!(m.timestamp, Some(nanos / 1_000_000));
    assert_eq!(
        m.headers,
        vec![("source".to_string(), "oxibeat".to_string())]
    );
    assert!(m.key.is_none());
    // The registry advanced: a second run sends nothing.
    w.run_once(&cfg);
    let again = consume(&format!("127.0.0.1:{}", broker.port), &["logs"], n, 10, &[]);
    assert_eq!(again.len(), n, "second run re-sent events");
}

#[test]
fn topic_format_and_rules_route_and_keys_follow_fnv1a() {
    let _g = serial();
    let w = Workspace::new();
    let broker = Tansu::start(w.path(), None, None);
    broker.create_topic("logs-api", 12);
    broker.create_topic("critical", 2);
    broker.create_topic("keyed", 12);
    let log = w.logs().join("app.log");
    // Keys from the reference vectors (kafka-partition.md), with known partitions for n=12.
    let vectors: &[(&str, i32)] = &[
        ("a", 8),
        ("foo", 7),
        ("bar", 2),
        ("foobar", 8),
        ("hello", 3),
        ("192.168.1.1", 8),
        ("host-1", 5),
        ("web01", 2),
        ("550e8400-e29b-41d4-a716-446655440000", 4),
    ];
    let mut lines = Vec::new();
    for round in 0..3 {
        for (k, _) in vectors {
            lines.push(format!("KEY {k}"));
        }
        lines.push(format!("FATAL disk full {round}"));
        lines.push(format!("normal line {round}"));
    }
    append(&log, &lines);
    let cfg = w.config_with(
        &format!(
            "{}\n[[inputs.processors]]\ndissect = {{ tokenizer = \"KEY %{{k}}\", field = \"message\", target_prefix = \"\", ignore_failure = true }}\n",
            w.input("app", "*.log", "fields = { service = \"api\" }")
        ),
        &kafka_output(
            &format!("127.0.0.1:{}", broker.port),
            "topic = \"logs-%{[fields.service]}\"\nkey = \"%{[k]}\"\n\
             [[output.kafka.topics]]\ntopic = \"critical\"\nwhen = { contains = { message = \"FATAL\" } }\n\
             [[output.kafka.topics]]\ntopic = \"keyed\"\nwhen = { has_fields = [\"k\"] }\n",
        ),
    );
    w.run_once(&cfg);
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    let msgs = consume(
        &bootstrap,
        &["logs-api", "critical", "keyed"],
        lines.len(),
        60,
        &[],
    );
    assert_eq!(msgs.len(), lines.len(), "{msgs:?}");
    let by_topic = |t: &str| msgs.iter().filter(|m| m.topic == t).collect::<Vec<_>>();
    let critical = by_topic("critical");
    assert_eq!(critical.len(), 3);
    assert!(critical
        .iter()
        .all(|m| m.value["message"].as_str().unwrap().starts_with("FATAL")));
    let normal = by_topic("logs-api");
    assert_eq!(normal.len(), 3);
    assert!(normal
        .iter()
        .all(|m| m.value["message"].as_str().unwrap().starts_with("normal")));
    let keyed = by_topic("keyed");
    assert_eq!(keyed.len(), vectors.len() * 3);
    let mut seen: HashMap<Vec<u8>, i32> = HashMap::new();
    for m in keyed {
        let key = m.key.clone().expect("keyed messages have a key");
        let k = String::from_utf8(key.clone()).unwrap();
        let want = vectors.iter().find(|(v, _)| *v == k).expect("known key").1;
        assert_eq!(
            m.partition, want,
            "key {k:?} must go where Filebeat puts it"
        );
        assert_eq!(m.partition, hash_to_partition(fnv1a(&key), 12));
        if let Some(p) = seen.insert(key, m.partition) {
            assert_eq!(p, m.partition, "same key, same partition");
        }
    }
}

#[test]
fn broker_outage_through_proxy_loses_nothing() {
    outage_through_proxy("");
}

/// With a finite local message timeout (set through the librdkafka passthrough), messages fail
/// with a retriable error during the outage: oxibeat must send them again, not drop them.
/// Idempotence is off here: with it on and a finite timeout, librdkafka 2.12 against tansu 0.6.0
/// stalls after the outage (timed-out in-flight messages need an epoch bump), which is why
/// oxibeat's default has no local timeout at all.
#[test]
fn outage_with_local_message_timeouts_resends_failed_messages() {
    outage_through_proxy("[output.kafka.librdkafka]\n\"message.timeout.ms\" = 1500\n\"enable.idempotence\" = false\n");
}

fn outage_through_proxy(extra: &str) {
    let _g = serial();
    let w = Workspace::new();
    let proxy_port = free_port();
    let broker = Tansu::start(w.path(), Some(proxy_port), None);
    broker.create_topic("logs", 2);
    let mut proxy = Proxy::new(proxy_port, broker.port);
    let bootstrap = format!("127.0.0.1:{proxy_port}");
    let log = w.logs().join("app.log");
    append(&log, &seq_lines("o", 0..500));
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, &format!("topic = \"logs\"\n{extra}")),
    );
    let mut agent = w.spawn(&cfg);
    let first = consume(&bootstrap, &["logs"], 500, 60, &[]);
    assert_complete(seqs(&values(&first), "o "), 500, "before the outage");
    proxy.stop();
    append(&log, &seq_lines("o", 500..3000));
    std::thread::sleep(Duration::from_secs(4));
    proxy.start();
    let all = consume(&bootstrap, &["logs"], 3000, 120, &[]);
    if all.len() < 3000 {
        let text = std::fs::read_to_string(&agent.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("agent log tail (newest first):\n{}", tail.join("\n"));
    }
    let dups = assert_complete(seqs(&values(&all), "o "), 3000, "after the outage");
    eprintln!("outage: {} messages, {dups} duplicates", all.len());
    let (ok, log_text) = agent.stop();
    assert!(ok, "agent failed: {log_text}");
    // The outage was real: the producer saw the brokers go away.
    let errors: Vec<&str> = log_text
        .lines()
        .filter(|l| l.contains("Kafka client error"))
        .collect();
    eprintln!(
        "outage: {} client errors logged, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(
        !errors.is_empty(),
        "the agent never noticed the outage:\n{log_text}"
    );
}

/// SIGTERM while Kafka is down: the agent stops within `shutdown_timeout` (no hang on
/// librdkafka's queued messages), logs the outage once rather than every reconnect, and
/// the events it never delivered are sent, once each, by the next run.
#[test]
fn sigterm_during_an_outage_stops_in_time_and_loses_nothing() {
    let _g = serial();
    let w = Workspace::new();
    let proxy_port = free_port();
    let broker = Tansu::start(w.path(), Some(proxy_port), None);
    broker.create_topic("logs", 2);
    let mut proxy = Proxy::new(proxy_port, broker.port);
    proxy.stop();
    let bootstrap = format!("127.0.0.1:{proxy_port}");
    append(&w.logs().join("app.log"), &seq_lines("g", 0..300));
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, "topic = \"logs\""),
    );
    // A top-level key must come before the first table.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("shutdown_timeout = \"2s\"\n{text}")).unwrap();
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_secs(4));
    let t = Instant::now();
    let (ok, log_text) = agent.stop();
    let took = t.elapsed();
    assert!(ok, "agent failed: {log_text}");
    assert!(
        took < Duration::from_secs(10),
        "stopping took {took:?} with shutdown_timeout = 2s:\n{log_text}"
    );
    assert!(log_text.contains("shutdown_timeout reached"), "{log_text}");
    // librdkafka reports the down broker every reconnect (about 2 per second here): logged
    // once per distinct error, then held back.
    let errors = log_text
        .lines()
        .filter(|l| l.contains("Kafka client error"))
        .count();
    assert!(
        (1..=4).contains(&errors),
        "{errors} client error lines in 4s:\n{log_text}"
    );
    proxy.start();
    let out = w.run_once(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = consume(&bootstrap, &["logs"], 300, 60, &[]);
    assert_eq!(msgs.len(), 300, "each event once");
    assert_complete(seqs(&values(&msgs), "g "), 300, "after the restart");
}

#[test]
fn too_large_message_goes_to_the_dead_letter_file() {
    let _g = serial();
    let w = Workspace::new();
    let broker = Tansu::start(w.path(), None, None);
    broker.create_topic("logs", 1);
    let log = w.logs().join("app.log");
    let mut lines = seq_lines("d", 0..50);
    lines.insert(20, format!("BIG {}", "x".repeat(5000)));
    append(&log, &lines);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &format!("127.0.0.1:{}", broker.port),
            "topic = \"logs\"\nmax_message_bytes = 3000",
        ),
    );
    let out = w.run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dead-letter"),
        "the rejection is logged: {stderr}"
    );
    let msgs = consume(
        &format!("127.0.0.1:{}", broker.port),
        &["logs"],
        50,
        60,
        &[],
    );
    assert_eq!(msgs.len(), 50);
    assert_complete(seqs(&values(&msgs), "d "), 50, "small lines");
    let dlq = w.data().join("kafka-dlq").join("kafka-dlq.ndjson");
    let text = std::fs::read_to_string(&dlq).expect("dead-letter file exists");
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["topic"], "logs");
    assert!(rows[0]["error"]
        .as_str()
        .unwrap()
        .contains("max_message_bytes"));
    assert!(rows[0]["event"]["message"]
        .as_str()
        .unwrap()
        .starts_with("BIG "));
    // It was acked: a second run sends nothing and writes no second dead letter.
    w.run_once(&cfg);
    let text2 = std::fs::read_to_string(&dlq).unwrap();
    assert_eq!(text2.lines().count(), 1);
    // Replay applies the configured limit: still too large, kept with the error...
    let again = dlq_cmd(&cfg, &["replay"]);
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&dlq).unwrap().lines().count(), 1);
    // ...and once the limit is raised, the event goes through, to the topic it was meant for.
    let ok = Command::new(bin())
        .args([
            "dlq",
            "replay",
            "-E",
            "output.kafka.max_message_bytes=100000",
            "-c",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let msgs = consume(
        &format!("127.0.0.1:{}", broker.port),
        &["logs"],
        51,
        60,
        &[],
    );
    assert_eq!(msgs.len(), 51);
    assert!(values(&msgs)
        .iter()
        .any(|v| v["message"].as_str().unwrap_or("").starts_with("BIG ")));
    assert!(!dlq.exists() || std::fs::read_to_string(&dlq).unwrap().is_empty());
}

#[test]
fn unknown_topic_goes_to_the_dead_letter_file() {
    let _g = serial();
    let w = Workspace::new();
    let broker = Tansu::start(w.path(), None, None);
    let log = w.logs().join("app.log");
    append(&log, &seq_lines("u", 0..5));
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &format!("127.0.0.1:{}", broker.port),
            "topic = \"nope\"\nheaders = [{ key = \"source\", value = \"oxibeat\" }]",
        ),
    );
    w.run_once(&cfg);
    let dlq = w.data().join("kafka-dlq").join("kafka-dlq.ndjson");
    let text = std::fs::read_to_string(&dlq).expect("dead-letter file exists");
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains("create the topic"), "{text}");

    // `dlq show` counts them; `dlq replay` while the topic is still missing keeps them all.
    let show = dlq_cmd(&cfg, &["show"]);
    assert!(show.status.success());
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("5 entries") && shown.contains("topic nope"),
        "{shown}"
    );
    let again = dlq_cmd(&cfg, &["replay", "--timeout", "5"]);
    let report = String::from_utf8_lossy(&again.stdout);
    assert!(
        !again.status.success(),
        "events failed again: non-zero exit\n{report}"
    );
    assert!(
        report.contains("replayed 0 event(s); 5 failed again"),
        "{report}"
    );
    let kept = std::fs::read_to_string(&dlq).expect("entries kept");
    assert_eq!(kept.lines().count(), 5, "{kept}");
    // Once the topic exists, replay delivers every event, unchanged, and empties the file.
    broker.create_topic("nope", 2);
    let ok = dlq_cmd(&cfg, &["replay"]);
    let report = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        report.contains("replayed 5 event(s); 0 failed again"),
        "{report}"
    );
    let msgs = consume(&format!("127.0.0.1:{}", broker.port), &["nope"], 5, 60, &[]);
    assert_eq!(msgs.len(), 5);
    let vals = values(&msgs);
    assert_complete(seqs(&vals, "u "), 5, "replayed lines");
    assert_eq!(vals[0]["input"]["type"], "filestream");
    assert!(vals[0]["log"]["offset"].is_u64());
    // As the output would have sent them: the configured headers, the event's time.
    for m in &msgs {
        assert_eq!(m.headers, [("source".to_string(), "oxibeat".to_string())]);
        let ts = oxibeat::event::parse_timestamp(m.value["@timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(m.timestamp, Some(ts / 1_000_000));
    }
    let left = dlq_cmd(&cfg, &["show"]);
    assert!(String::from_utf8_lossy(&left.stdout).contains("0 entries"));
}

/// `oxibeat test output -c <cfg>`.
fn test_output(cfg: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["test", "output", "-c"])
        .arg(cfg)
        .output()
        .expect("run oxibeat test output")
}

/// `oxibeat dlq <args>` with `cfg`.
fn dlq_cmd(cfg: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("dlq")
        .args(args)
        .arg("-c")
        .arg(cfg)
        .output()
        .expect("run oxibeat dlq")
}

#[test]
fn kill_9_mid_stream_then_restart_leaves_no_gap() {
    let _g = serial();
    let w = Workspace::new();
    let broker = Tansu::start(w.path(), None, None);
    broker.create_topic("logs", 3);
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    let log = w.logs().join("app.log");
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, "topic = \"logs\""),
    );
    let mut agent = w.spawn(&cfg);
    let total = 20_000;
    let mut written = 0;
    // Write while it ships, then kill it without warning partway.
    while written < total / 2 {
        append(&log, &seq_lines("s", written..written + 1000));
        written += 1000;
        std::thread::sleep(Duration::from_millis(30));
    }
    agent.kill9();
    append(&log, &seq_lines("s", written..total));
    let mut agent = w.spawn(&cfg);
    let msgs = consume(&bootstrap, &["logs"], total, 120, &[]);
    let dups = assert_complete(seqs(&values(&msgs), "s "), total, "kill -9 and restart");
    eprintln!("kill -9: {} messages, {dups} duplicates", msgs.len());
    let (ok, log_text) = agent.stop();
    assert!(ok, "agent failed: {log_text}");
}

#[test]
fn test_output_reports_brokers_and_partitions_or_fails_clearly() {
    let _g = serial();
    let w = Workspace::new();
    let broker = Tansu::start(w.path(), None, None);
    broker.create_topic("logs", 4);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&format!("127.0.0.1:{}", broker.port), "topic = \"logs\""),
    );
    let out = test_output(&cfg);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("logs: 4 partitions"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", broker.port)),
        "{text}"
    );
    // A port nobody listens on: non-zero exit and an error naming the hosts.
    let dead = free_port();
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&format!("127.0.0.1:{dead}"), "topic = \"logs\""),
    );
    let out = test_output(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("127.0.0.1:{dead}")) && err.contains("metadata"),
        "{err}"
    );
}

/// A TLS-terminating proxy in front of a plain broker. tansu 0.6.0 has `--cert` and `--key`,
/// but its command line puts them in one exclusive group, so TLS cannot be switched on there;
/// this proxy makes the client side (librdkafka + OpenSSL) do real TLS against rustls.
fn start_tls_proxy(port: u16, target: u16, config: Arc<rustls::ServerConfig>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind TLS proxy");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(mut backend) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let tick = Some(Duration::from_millis(2));
                let _ = client.set_read_timeout(tick);
                let _ = backend.set_read_timeout(tick);
                let mut tls = rustls::StreamOwned::new(conn, client);
                let mut buf = vec![0u8; 65536];
                let idle = |e: &std::io::Error| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                };
                loop {
                    match tls.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if backend.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        Err(e) if idle(&e) => {}
                        Err(_) => break,
                    }
                    match backend.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                                break;
                            }
                        }
                        Err(e) if idle(&e) => {}
                        Err(_) => break,
                    }
                }
            });
        }
    });
}

#[test]
fn tls_with_a_self_signed_ca_works_and_a_wrong_ca_fails_clearly() {
    let _g = serial();
    let w = Workspace::new();
    let (ca, server) = test_ca(w.path(), "good");
    let (wrong_ca, _) = test_ca(w.path(), "wrong");
    let tls_port = free_port();
    let broker = Tansu::start(w.path(), Some(tls_port), None);
    broker.create_topic("secure", 2);
    start_tls_proxy(tls_port, broker.port, server);
    let bootstrap = format!("127.0.0.1:{tls_port}");
    let log = w.logs().join("app.log");
    append(&log, &seq_lines("t", 0..200));
    let ssl = |ca: &Path| {
        format!(
            "topic = \"secure\"\n[output.kafka.ssl]\ncertificate_authorities = [{:?}]\n",
            ca.display().to_string()
        )
    };
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, &ssl(&ca)),
    );
    let out = test_output(&cfg);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    w.run_once(&cfg);
    let ca_s = ca.display().to_string();
    let msgs = consume(
        &bootstrap,
        &["secure"],
        200,
        60,
        &[("security.protocol", "ssl"), ("ssl.ca.location", &ca_s)],
    );
    assert_complete(seqs(&values(&msgs), "t "), 200, "over TLS");
    // A CA that did not sign the broker's certificate: a clear error and a non-zero exit.
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, &ssl(&wrong_ca)),
    );
    let out = test_output(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("wrong CA: {err}");
    assert!(!out.status.success(), "a wrong CA must fail");
    assert!(
        err.contains("certificate verify failed"),
        "the error should name the TLS failure: {err}"
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA,
/// and a server TLS config that requires a client certificate from that CA (mutual TLS).
/// Returns (CA PEM path, client certificate PEM path, client key PEM path, server config).
fn mtls_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf, Arc<rustls::ServerConfig>) {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let pki = test_pki(dir, "mtls");
    let client_key = KeyPair::generate().expect("client key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "oxibeat-agent");
    let client = client_params
        .signed_by(&client_key, &pki.ca)
        .expect("client certificate");
    let cert_path = dir.join("mtls-client.pem");
    let key_path = dir.join("mtls-client.key");
    std::fs::write(&cert_path, client.pem()).unwrap();
    std::fs::write(&key_path, client_key.serialize_pem()).unwrap();
    let config = pki.server_config(true);
    (pki.ca_path, cert_path, key_path, config)
}

#[test]
fn mutual_tls_with_a_client_certificate_works_and_without_one_fails() {
    let _g = serial();
    let w = Workspace::new();
    let (ca, cert, key, server) = mtls_pki(w.path());
    let tls_port = free_port();
    let broker = Tansu::start(w.path(), Some(tls_port), None);
    broker.create_topic("mtls", 1);
    start_tls_proxy(tls_port, broker.port, server);
    let bootstrap = format!("127.0.0.1:{tls_port}");
    append(&w.logs().join("app.log"), &seq_lines("m", 0..100));
    let ssl = |client: bool| {
        let mut s = format!(
            "topic = \"mtls\"\n[output.kafka.ssl]\ncertificate_authorities = [{:?}]\n",
            ca.display().to_string()
        );
        if client {
            s.push_str(&format!(
                "certificate = {:?}\nkey = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            ));
        }
        s
    };
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, &ssl(true)),
    );
    let out = w.run_once(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ca_s, cert_s, key_s) = (
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let msgs = consume(
        &bootstrap,
        &["mtls"],
        100,
        60,
        &[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", &ca_s),
            ("ssl.certificate.location", &cert_s),
            ("ssl.key.location", &key_s),
        ],
    );
    assert_complete(seqs(&values(&msgs), "m "), 100, "over mutual TLS");
    // The same broker refuses a client without a certificate; `test output` says so.
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, &ssl(false)),
    );
    let out = test_output(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("no client certificate: {err}");
    assert!(
        !out.status.success(),
        "no client certificate must fail: {err}"
    );
    assert!(
        err.contains("certificate required"),
        "the error should name the missing client certificate: {err}"
    );
}

/// librdkafka's queue bounded to a few messages: `send` waits on a full queue (what pauses the
/// inputs), batches complete meanwhile, and `--once` still delivers everything and exits.
#[test]
fn full_producer_queue_waits_and_delivers_everything() {
    let _g = serial();
    let w = Workspace::new();
    let broker = Tansu::start(w.path(), None, None);
    broker.create_topic("logs", 2);
    let log = w.logs().join("app.log");
    let n = 5000;
    append(&log, &seq_lines("q", 0..n));
    let cfg = w.config_with(
        &format!(
            "{}\n[queue.mem]\nevents = 65536\n",
            w.input("app", "*.log", "")
        ),
        &kafka_output(
            &format!("127.0.0.1:{}", broker.port),
            "topic = \"logs\"\nqueue = { max_messages = 16 }",
        ),
    );
    let mut child = Command::new(bin())
        .args(["run", "--once", "-e", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("--once did not finish with a tiny producer queue");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let msgs = consume(&format!("127.0.0.1:{}", broker.port), &["logs"], n, 60, &[]);
    assert_eq!(
        assert_complete(seqs(&values(&msgs), "q "), n, "tiny queue"),
        0
    );
}

/// SCRAM credentials live in the broker's storage and can only be created through a broker
/// that does not require authentication yet: create them on an open broker over a SQLite file,
/// then restart on the same file with `--authentication` (tansu's in-memory storage keeps no
/// credentials, and its SASL PLAIN is not compiled in).
fn sasl_broker(dir: &Path, user: &str, password: &str) -> Tansu {
    let storage = "sqlite://tansu-sasl.db";
    {
        let open = Tansu::launch(dir, None, None, storage, false);
        open.create_topic("logs", 2);
        let out = Command::new(tansu_bin())
            .args(["user", "create", user, password, "--mechanism", "scram512"])
            .args(["--broker", &open.url()])
            .output()
            .expect("tansu user create");
        assert!(
            out.status.success(),
            "tansu user create failed (tansu needs the libsql feature: cargo install tansu --version 0.6.0 --locked --features dynostore,libsql): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Tansu::launch(dir, None, None, storage, true)
}

#[test]
fn sasl_scram_authenticates_and_a_wrong_password_fails_clearly() {
    let _g = serial();
    let w = Workspace::new();
    let password = "pw-Shh-9f3c";
    let broker = sasl_broker(w.path(), "alice", password);
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    let log = w.logs().join("app.log");
    append(&log, &seq_lines("a", 0..200));
    let sasl = |pw: &str| {
        format!("topic = \"logs\"\n[output.kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"alice\"\npassword = \"{pw}\"")
    };
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, &sasl(password)),
    );
    let test = test_output(&cfg);
    let shown = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(shown.contains("logs: 2 partitions"), "{shown}");

    let out = w.run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(password),
        "the password must not be logged: {stderr}"
    );
    let creds = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", password),
    ];
    let msgs = consume(&bootstrap, &["logs"], 200, 60, &creds);
    assert_eq!(msgs.len(), 200);
    assert_complete(seqs(&values(&msgs), "a "), 200, "lines over SASL/SCRAM");

    // A wrong password: `test output` fails, names the cause, and never prints the password.
    let wrong = "not-the-pw-7d1e";
    let bad = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, &sasl(wrong)),
    );
    let test = test_output(&bad);
    let err =
        String::from_utf8_lossy(&test.stderr).to_string() + &String::from_utf8_lossy(&test.stdout);
    assert!(!test.status.success(), "{err}");
    assert!(err.to_lowercase().contains("authentication"), "{err}");
    assert!(
        !err.contains(wrong),
        "the password must not be printed: {err}"
    );
    // Without SASL the broker closes the connection: a clear failure too.
    let none = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&bootstrap, "topic = \"logs\""),
    );
    let test = test_output(&none);
    assert!(!test.status.success());
}
