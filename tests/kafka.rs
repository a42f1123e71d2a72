//! The Kafka output end to end: the real binary against Apache Kafka 4.x in KRaft mode
//! (`tests/support/kafka.rs`; the version is pinned in `tests/kafka/versions.env`), consumed
//! back with a real consumer group (rdkafka).
//!
//! Two brokers are shared by the tests of this file, each test on its own topics: a plaintext
//! one (with a listener reached through a TCP proxy, for outages) and a secure one (TLS, mutual
//! TLS, SASL PLAIN/SCRAM, ACLs). Tests that need a broker of their own (a restart, the oldest
//! 4.0.x) start one. The Kafka jars are required: without them these tests fail and say how
//! to install them (`tests/run.sh` does).

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxibeat::output::kafka::partition::{fnv1a, hash_to_partition};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;
use support::kafka::{self, Kafka, Listener, Shared, Spec, ALICE};
use support::*;

/// One test at a time: the machine has 2 cores, and the brokers are shared.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn plain() -> &'static Kafka {
    kafka::shared(Shared::Plain)
}

fn secure() -> &'static Kafka {
    kafka::shared(Shared::Secure)
}

/// A TCP proxy on a fixed port that can be stopped (listener closed, connections cut) and
/// started again: a broker outage with the broker itself untouched.
struct Proxy {
    port: u16,
    target: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// A proxy for the broker's `Proxied` listener.
    fn for_broker(k: &Kafka) -> Proxy {
        let (port, target) = k.proxy_ports();
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

/// Read every message of `topics` from the beginning, as a new member of a new consumer group,
/// until `want` messages arrived and nothing more came for a moment (duplicates would), or
/// `secs` passed.
fn consume(k: &Kafka, topics: &[&str], want: usize, secs: u64) -> Vec<Msg> {
    static GROUP: AtomicUsize = AtomicUsize::new(0);
    let group = format!(
        "oxibeat-test-{}-{}",
        std::process::id(),
        GROUP.fetch_add(1, Ordering::Relaxed)
    );
    let c: BaseConsumer = k
        .client_config()
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    c.subscribe(topics).expect("subscribe");
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

/// `oxibeat test output -c <cfg>`.
fn test_output(cfg: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["test", "output", "-c"])
        .arg(cfg)
        .output()
        .expect("run oxibeat test output")
}

/// `oxibeat test output` succeeded; returns what it printed.
fn test_output_ok(cfg: &Path) -> String {
    let out = test_output(cfg);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "test output failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `oxibeat test output` failed; returns stdout and stderr.
fn test_output_err(cfg: &Path) -> String {
    let out = test_output(cfg);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "test output should fail: {text}");
    text
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

/// The dead-letter entries of a workspace.
fn dead_letters(w: &Workspace) -> Vec<Value> {
    let dlq = w.data().join("kafka-dlq").join("kafka-dlq.ndjson");
    std::fs::read_to_string(dlq)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead-letter entry is JSON"))
        .collect()
}

/// Every line of `n` once, with the Beats JSON shape, consumed by a consumer group; a second
/// run sends nothing more.
fn clean_delivery(broker: &Kafka, topic: &str) {
    broker.create_topic(topic, 3, &[]);
    let w = Workspace::new();
    let log = w.logs().join("app.log");
    let n = 3000;
    append(&log, &seq_lines("k", 0..n));
    let cfg = w.config_with(
        &w.input("app", "*.log", "fields = { service = \"api\" }"),
        &kafka_output(
            &broker.bootstrap(),
            &format!("topic = {topic:?}\nheaders = [{{ key = \"source\", value = \"oxibeat\" }}]"),
        ),
    );
    w.run_once(&cfg);
    let msgs = consume(broker, &[topic], n, 60);
    let got = seqs(&values(&msgs), "k ");
    let dups = assert_complete(got, n, "clean run");
    assert_eq!(dups, 0, "a clean run sends every line once");
    assert_eq!(msgs.len(), n);
    // No key: one partition per batch among the 3.
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
    let again = consume(broker, &[topic], n, 10);
    assert_eq!(again.len(), n, "second run re-sent events");
}

#[test]
fn every_line_arrives_once_with_beats_json() {
    let _g = serial();
    clean_delivery(plain(), "clean");
}

/// The same on the oldest 4.0.x release, so that a compatibility break shows up.
#[test]
fn every_line_arrives_once_on_the_oldest_kafka_4_0() {
    let _g = serial();
    let broker = Kafka::start(Spec {
        version: kafka::oldest_version(),
        ..Spec::default()
    });
    eprintln!(
        "Kafka {} started in {:.1} s",
        broker.spec.version,
        broker.started_in.as_secs_f64()
    );
    clean_delivery(&broker, "clean-oldest");
}

#[test]
fn topic_format_and_rules_route_and_keys_follow_fnv1a() {
    let _g = serial();
    let broker = plain();
    broker.create_topic("logs-api", 12, &[]);
    broker.create_topic("critical", 2, &[]);
    broker.create_topic("keyed", 12, &[]);
    let w = Workspace::new();
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
            &broker.bootstrap(),
            "topic = \"logs-%{[fields.service]}\"\nkey = \"%{[k]}\"\n\
             [[output.kafka.topics]]\ntopic = \"critical\"\nwhen = { contains = { message = \"FATAL\" } }\n\
             [[output.kafka.topics]]\ntopic = \"keyed\"\nwhen = { has_fields = [\"k\"] }\n",
        ),
    );
    w.run_once(&cfg);
    let msgs = consume(broker, &["logs-api", "critical", "keyed"], lines.len(), 60);
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

/// Outage through the proxy with oxibeat's defaults (idempotent producer, no local timeout):
/// nothing lost, and the broker de-duplicates the producer's retries: exactly n messages.
#[test]
fn broker_outage_through_proxy_loses_nothing_and_duplicates_nothing() {
    let (n, dups) = outage_through_proxy("outage", "");
    assert_eq!(
        dups, 0,
        "the idempotent producer's retries are de-duplicated"
    );
    assert_eq!(n, 3000);
}

/// With a finite local message timeout (set through the librdkafka passthrough), messages fail
/// with a retriable error during the outage: oxibeat must send them again, not drop them.
/// Those re-sends are new messages to Kafka, so duplicates are allowed here.
#[test]
fn outage_with_local_message_timeouts_resends_failed_messages() {
    outage_through_proxy(
        "outage-timeouts",
        "[output.kafka.librdkafka]\n\"message.timeout.ms\" = 1500\n",
    );
}

/// Returns how many messages the topic holds and how many of them were duplicates.
fn outage_through_proxy(topic: &str, extra: &str) -> (usize, usize) {
    let _g = serial();
    let broker = plain();
    broker.create_topic(topic, 2, &[]);
    let mut proxy = Proxy::for_broker(broker);
    let w = Workspace::new();
    let log = w.logs().join("app.log");
    append(&log, &seq_lines("o", 0..500));
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &broker.addr(Listener::Proxied),
            &format!("topic = {topic:?}\n{extra}"),
        ),
    );
    let mut agent = w.spawn(&cfg);
    let first = consume(broker, &[topic], 500, 60);
    assert_complete(seqs(&values(&first), "o "), 500, "before the outage");
    proxy.stop();
    append(&log, &seq_lines("o", 500..3000));
    std::thread::sleep(Duration::from_secs(4));
    proxy.start();
    let all = consume(broker, &[topic], 3000, 120);
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
    (all.len(), dups)
}

/// The broker's JVM is killed mid-stream and started again on its data directory: nothing is
/// lost, and the idempotent producer's retries are de-duplicated (exactly n in the topic).
#[test]
fn broker_restart_on_its_data_dir_loses_nothing_and_duplicates_nothing() {
    let _g = serial();
    let mut broker = Kafka::start(Spec::default());
    broker.create_topic("restart", 3, &[]);
    let w = Workspace::new();
    let log = w.logs().join("app.log");
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&broker.bootstrap(), "topic = \"restart\""),
    );
    let mut agent = w.spawn(&cfg);
    let total = 20_000;
    let mut written = 0;
    while written < total / 2 {
        append(&log, &seq_lines("r", written..written + 1000));
        written += 1000;
        std::thread::sleep(Duration::from_millis(30));
    }
    broker.kill();
    append(&log, &seq_lines("r", written..total - 2000));
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    eprintln!(
        "broker restarted on its data dir in {:.1} s",
        broker.started_in.as_secs_f64()
    );
    append(&log, &seq_lines("r", total - 2000..total));
    let msgs = consume(&broker, &["restart"], total, 120);
    let dups = assert_complete(seqs(&values(&msgs), "r "), total, "broker restart");
    eprintln!("broker restart: {} messages, {dups} duplicates", msgs.len());
    let (ok, log_text) = agent.stop();
    assert!(ok, "agent failed: {log_text}");
    assert_eq!(dups, 0, "the broker de-duplicates the producer's retries");
    assert_eq!(msgs.len(), total);
}

/// The `seq` numbers (lines starting with `prefix`) in partition `partition` of `topic`, read
/// from the beginning until `want` are all there or `secs` passed.
fn partition_seqs(
    k: &Kafka,
    topic: &str,
    partition: i32,
    prefix: &str,
    want: &[usize],
    secs: u64,
) -> Vec<usize> {
    use rdkafka::{Offset, TopicPartitionList};
    let c: BaseConsumer = k
        .client_config()
        .set("group.id", "oxibeat-test-assign")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let v: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            got.extend(seqs(&[v], prefix));
            continue;
        }
        let mut sorted = got.clone();
        sorted.sort_unstable();
        if want.iter().all(|w| sorted.binary_search(w).is_ok()) {
            break;
        }
    }
    got
}

/// Keyless events go to one partition per batch, taking turns among the partitions that
/// have a leader. With the only broker of one partition down, the output learns from its
/// background metadata refresh that the partition has no leader, and events read from then
/// on go to the other partition and are delivered while that broker is still down. Back up,
/// the events queued for its partition arrive too: nothing lost, nothing twice.
#[test]
fn keyless_events_keep_off_a_partition_without_a_leader() {
    let _g = serial();
    let first = Kafka::start(Spec::default());
    let mut second = first.join(2);
    eprintln!(
        "two-node cluster: first node in {:.1} s, second in {:.1} s",
        first.started_in.as_secs_f64(),
        second.started_in.as_secs_f64()
    );
    // Partition 0 on node 1, partition 1 on node 2 (one replica each).
    first.create_topic_on("sticky", &[&[1], &[2]]);
    let w = Workspace::new();
    let log = w.logs().join("app.log");
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &first.bootstrap(),
            "topic = \"sticky\"\nbulk_max_size = 200",
        ),
    );
    let mut agent = w.spawn(&cfg);
    let mut written = 0;
    let write = |written: &mut usize, n: usize| {
        append(&log, &seq_lines("s", *written..*written + n));
        *written += n;
        *written
    };
    // Both partitions take batches while both have a leader.
    for _ in 0..20 {
        write(&mut written, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = consume(&first, &["sticky"], written, 60);
    assert_complete(seqs(&values(&before), "s "), written, "both nodes up");
    let per = |msgs: &[Msg], p: i32| msgs.iter().filter(|m| m.partition == p).count();
    assert!(
        per(&before, 0) > 0 && per(&before, 1) > 0,
        "keyless batches take turns among the partitions: {} and {}",
        per(&before, 0),
        per(&before, 1)
    );
    // Whole batches stay together: few runs of one partition, not one per event.
    let mut by_seq: Vec<(usize, i32)> = before
        .iter()
        .filter_map(|m| {
            let seq = *seqs(std::slice::from_ref(&m.value), "s ").first()?;
            Some((seq, m.partition))
        })
        .collect();
    by_seq.sort_unstable();
    let runs = 1 + by_seq.windows(2).filter(|x| x[0].1 != x[1].1).count();
    assert!(
        runs <= written / 20,
        "{runs} runs of one partition in {written} events of batches of up to 200"
    );

    second.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.leaders("sticky") != [1, -1] {
        assert!(
            Instant::now() < deadline,
            "partition 1 kept a leader: {:?}",
            first.leaders("sticky")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Events read before the output's next look at the leaders (every 5 s while keyless
    // events flow) may still go to partition 1 and wait there.
    for _ in 0..35 {
        write(&mut written, 20);
        std::thread::sleep(Duration::from_millis(200));
    }
    let from = written;
    for _ in 0..10 {
        write(&mut written, 20);
        std::thread::sleep(Duration::from_millis(200));
    }
    let later: Vec<usize> = (from..written).collect();
    let p0 = partition_seqs(&first, "sticky", 0, "s ", &later, 30);
    let mut p0_sorted = p0.clone();
    p0_sorted.sort_unstable();
    let missing: Vec<usize> = later
        .iter()
        .copied()
        .filter(|s| p0_sorted.binary_search(s).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} events read after the leader was gone did not reach partition 0 while node 2 was down (first {:?})",
        missing.len(),
        later.len(),
        &missing[..missing.len().min(5)]
    );

    second.restart();
    let total = write(&mut written, 1000);
    let msgs = consume(&first, &["sticky"], total, 120);
    let dups = assert_complete(seqs(&values(&msgs), "s "), total, "node 2 back");
    let (ok, log_text) = agent.stop();
    assert!(ok, "agent failed: {log_text}");
    assert_eq!(dups, 0, "nothing sent twice");
    assert_eq!(msgs.len(), total);
}

/// SIGTERM while Kafka is down: the agent stops within `shutdown_timeout` (no hang on
/// librdkafka's queued messages), logs the outage once rather than every reconnect, and
/// the events it never delivered are sent, once each, by the next run.
#[test]
fn sigterm_during_an_outage_stops_in_time_and_loses_nothing() {
    let _g = serial();
    let broker = plain();
    broker.create_topic("sigterm", 2, &[]);
    let mut proxy = Proxy::for_broker(broker);
    proxy.stop();
    let w = Workspace::new();
    append(&w.logs().join("app.log"), &seq_lines("g", 0..300));
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&broker.addr(Listener::Proxied), "topic = \"sigterm\""),
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
    w.run_once(&cfg);
    let msgs = consume(broker, &["sigterm"], 300, 60);
    assert_eq!(msgs.len(), 300, "each event once");
    assert_complete(seqs(&values(&msgs), "g "), 300, "after the restart");
}

/// Every codec produces batches the broker accepts (and stores as they came: the topic's
/// `compression.type` is `producer`), and a consumer decodes them.
#[test]
fn every_compression_codec_is_accepted_and_decoded() {
    let _g = serial();
    let broker = plain();
    for (codec, id) in [
        ("none", 0),
        ("gzip", 1),
        ("snappy", 2),
        ("lz4", 3),
        ("zstd", 4),
    ] {
        let topic = format!("codec-{codec}");
        broker.create_topic(&topic, 1, &[]);
        let w = Workspace::new();
        append(&w.logs().join("app.log"), &seq_lines(codec, 0..500));
        let cfg = w.config_with(
            &w.input("app", "*.log", ""),
            &kafka_output(
                &broker.bootstrap(),
                &format!("topic = {topic:?}\ncompression = {codec:?}"),
            ),
        );
        w.run_once(&cfg);
        let msgs = consume(broker, &[&topic], 500, 60);
        let prefix = format!("{codec} ");
        assert_eq!(
            assert_complete(seqs(&values(&msgs), &prefix), 500, codec),
            0,
            "{codec}: every line once"
        );
        let codecs = broker.batch_codecs(&topic);
        assert!(!codecs.is_empty(), "{codec}: no record batch on disk");
        assert!(
            codecs.iter().all(|c| *c == id),
            "{codec}: the broker stored batches with codecs {codecs:?}, want {id}"
        );
    }
}

/// Events over the broker's real limit (the topic's `max.message.bytes`) and over oxibeat's
/// own `max_message_bytes` reach the dead-letter file with the error, nothing is lost or
/// doubled, and `dlq replay` delivers them once the limits are raised.
#[test]
fn oversize_events_go_to_the_dead_letter_file_with_the_brokers_error() {
    let _g = serial();
    let broker = plain();
    broker.create_topic("oversize", 1, &[("max.message.bytes", "16384")]);
    let w = Workspace::new();
    let log = w.logs().join("app.log");
    // Random hex does not compress: 40,000 bytes stay over the broker's 16 KiB once lz4'd.
    let noise = |len: usize| {
        let mut s = String::new();
        while s.len() < len {
            s.push_str(&uuid::Uuid::new_v4().simple().to_string());
        }
        s.truncate(len);
        s
    };
    let mut lines = seq_lines("d", 0..40);
    lines.insert(10, format!("BROKERBIG {}", noise(40_000)));
    lines.insert(30, format!("LOCALBIG {}", noise(200_000)));
    append(&log, &lines);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &broker.bootstrap(),
            "topic = \"oversize\"\nmax_message_bytes = 100000",
        ),
    );
    let out = w.run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dead-letter"),
        "the rejection is logged: {stderr}"
    );
    let rows = dead_letters(&w);
    let msg = |v: &Value| v["message"].as_str().unwrap_or_default().to_string();
    let local = rows
        .iter()
        .find(|r| msg(&r["event"]).starts_with("LOCALBIG"))
        .expect("the event over max_message_bytes is dead-lettered");
    assert!(
        local["error"]
            .as_str()
            .unwrap()
            .contains("max_message_bytes"),
        "{local}"
    );
    let remote = rows
        .iter()
        .find(|r| msg(&r["event"]).starts_with("BROKERBIG"))
        .expect("the event over the broker's limit is dead-lettered");
    assert!(
        remote["error"]
            .as_str()
            .unwrap()
            .contains("Message size too large"),
        "the broker's error: {remote}"
    );
    assert!(rows.iter().all(|r| r["topic"] == "oversize"));
    // librdkafka sends a batch as one record batch: the small lines that shared the rejected
    // batch are dead-lettered with it. Each small line is either in Kafka or in the file, once.
    let mut small = seqs(
        &rows.iter().map(|r| r["event"].clone()).collect::<Vec<_>>(),
        "d ",
    );
    let msgs = consume(broker, &["oversize"], 40 - small.len(), 30);
    let delivered = msgs.len();
    small.extend(seqs(&values(&msgs), "d "));
    assert_eq!(
        assert_complete(small, 40, "small lines"),
        0,
        "no line twice"
    );
    eprintln!(
        "oversize: {delivered} small lines delivered, {} entries dead-lettered",
        rows.len()
    );
    // Acked: a second run sends nothing and writes no second dead letter.
    w.run_once(&cfg);
    assert_eq!(dead_letters(&w).len(), rows.len());
    // Replay while both limits remain: kept, non-zero exit.
    let again = dlq_cmd(&cfg, &["replay", "--timeout", "10"]);
    assert!(
        !again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert_eq!(dead_letters(&w).len(), rows.len());
    // Both limits raised: everything goes through, to the topic it was meant for, once.
    broker.alter_topic("oversize", &[("max.message.bytes", "1048576")]);
    let ok = Command::new(bin())
        .args([
            "dlq",
            "replay",
            "-E",
            "output.kafka.max_message_bytes=300000",
            "-c",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let msgs = consume(broker, &["oversize"], 42, 60);
    assert_eq!(msgs.len(), 42);
    assert_eq!(assert_complete(seqs(&values(&msgs), "d "), 40, "all"), 0);
    for big in ["BROKERBIG", "LOCALBIG"] {
        assert_eq!(
            values(&msgs)
                .iter()
                .filter(|v| msg(v).starts_with(big))
                .count(),
            1,
            "{big} delivered once"
        );
    }
    assert!(dead_letters(&w).is_empty());
}

/// An unknown topic (the broker has `auto.create.topics.enable=false`) goes to the dead-letter
/// file; `dlq replay` keeps the events while the topic is missing and delivers them, as the
/// output would have sent them, once it exists.
#[test]
fn unknown_topic_goes_to_the_dead_letter_file() {
    let _g = serial();
    let broker = plain();
    let w = Workspace::new();
    let log = w.logs().join("app.log");
    append(&log, &seq_lines("u", 0..5));
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &broker.bootstrap(),
            "topic = \"nope\"\nheaders = [{ key = \"source\", value = \"oxibeat\" }]",
        ),
    );
    w.run_once(&cfg);
    let rows = dead_letters(&w);
    assert_eq!(rows.len(), 5, "{rows:?}");
    let error = rows[0]["error"].as_str().unwrap();
    assert!(
        error.contains("UnknownTopicOrPartition") || error.contains("Unknown topic"),
        "the broker's error: {error}"
    );
    assert!(error.contains("create the topic"), "{error}");

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
    assert_eq!(dead_letters(&w).len(), 5);
    // Once the topic exists, replay delivers every event, unchanged, and empties the file.
    broker.create_topic("nope", 2, &[]);
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
    let msgs = consume(broker, &["nope"], 5, 60);
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

#[test]
fn kill_9_mid_stream_then_restart_leaves_no_gap() {
    let _g = serial();
    let broker = plain();
    broker.create_topic("kill9", 3, &[]);
    let w = Workspace::new();
    let log = w.logs().join("app.log");
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&broker.bootstrap(), "topic = \"kill9\""),
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
    let msgs = consume(broker, &["kill9"], total, 120);
    let dups = assert_complete(seqs(&values(&msgs), "s "), total, "kill -9 and restart");
    eprintln!("kill -9: {} messages, {dups} duplicates", msgs.len());
    let (ok, log_text) = agent.stop();
    assert!(ok, "agent failed: {log_text}");
}

#[test]
fn test_output_reports_brokers_and_partitions_or_fails_clearly() {
    let _g = serial();
    let broker = plain();
    broker.create_topic("testout", 4, &[]);
    let w = Workspace::new();
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&broker.bootstrap(), "topic = \"testout\""),
    );
    let text = test_output_ok(&cfg);
    assert!(text.contains("testout: 4 partitions"), "{text}");
    assert!(text.contains(&broker.bootstrap()), "{text}");
    // A missing topic: non-zero exit, named.
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&broker.bootstrap(), "topic = \"testout-missing\""),
    );
    let err = test_output_err(&cfg);
    assert!(
        err.contains("testout-missing") && err.contains("create the topic"),
        "{err}"
    );
    // A port nobody listens on: non-zero exit and an error naming the hosts.
    let dead = format!("127.0.0.1:{}", free_port());
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&dead, "topic = \"testout\""),
    );
    let err = test_output_err(&cfg);
    assert!(err.contains(&dead) && err.contains("metadata"), "{err}");
}

/// librdkafka's queue bounded to a few messages: `send` waits on a full queue (what pauses the
/// inputs), batches complete meanwhile, and `--once` still delivers everything and exits.
#[test]
fn full_producer_queue_waits_and_delivers_everything() {
    let _g = serial();
    let broker = plain();
    broker.create_topic("tinyq", 2, &[]);
    let w = Workspace::new();
    let log = w.logs().join("app.log");
    let n = 5000;
    append(&log, &seq_lines("q", 0..n));
    let cfg = w.config_with(
        &format!(
            "{}\n[queue.mem]\nevents = 65536\n",
            w.input("app", "*.log", "")
        ),
        &kafka_output(
            &broker.bootstrap(),
            "topic = \"tinyq\"\nqueue = { max_messages = 16 }",
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
    let msgs = consume(broker, &["tinyq"], n, 60);
    assert_eq!(
        assert_complete(seqs(&values(&msgs), "q "), n, "tiny queue"),
        0
    );
}

/// `[output.kafka.ssl]` TOML for a topic.
fn ssl_toml(topic: &str, ca: &Path, extra: &str) -> String {
    format!(
        "topic = {topic:?}\n[output.kafka.ssl]\ncertificate_authorities = [{:?}]\n{extra}",
        ca.display().to_string()
    )
}

/// TLS served by Kafka itself (PEM keystore from the test PKI): the right CA works, a wrong one
/// fails clearly, and `verification_mode` does what it says: `full` checks the host name,
/// `certificate` only the chain, `none` nothing.
#[test]
fn tls_served_by_kafka_checks_the_ca_and_the_host_name_per_verification_mode() {
    let _g = serial();
    let broker = secure();
    let pki = broker.pki.clone().expect("PKI");
    broker.create_topic("tls", 2, &[]);
    // Deliveries: the right CA with full verification, and a certificate for another host
    // name with `certificate`.
    let ok_cases = [
        (
            "full",
            Listener::Ssl,
            &pki.ca,
            "verification_mode = \"full\"\n",
        ),
        (
            "certificate",
            Listener::BadName,
            &pki.ca,
            "verification_mode = \"certificate\"\n",
        ),
        (
            "none",
            Listener::Ssl,
            &pki.wrong_ca,
            "verification_mode = \"none\"\n",
        ),
    ];
    for (i, (name, listener, ca, mode)) in ok_cases.iter().enumerate() {
        let w = Workspace::new();
        let prefix = format!("t{i}");
        append(&w.logs().join("app.log"), &seq_lines(&prefix, 0..100));
        let cfg = w.config_with(
            &w.input("app", "*.log", ""),
            &kafka_output(&broker.addr(*listener), &ssl_toml("tls", ca, mode)),
        );
        let text = test_output_ok(&cfg);
        assert!(text.contains("tls: 2 partitions"), "{name}: {text}");
        w.run_once(&cfg);
        eprintln!("TLS {name}: delivered");
    }
    let msgs = consume(broker, &["tls"], 300, 60);
    for i in 0..ok_cases.len() {
        let prefix = format!("t{i} ");
        assert_eq!(
            assert_complete(seqs(&values(&msgs), &prefix), 100, &prefix),
            0
        );
    }
    // Failures, with a clear error from `test output`.
    let w = Workspace::new();
    let fail_cases = [
        (
            "wrong CA",
            Listener::Ssl,
            &pki.wrong_ca,
            "",
            "certificate verify failed",
        ),
        (
            "wrong host name, full",
            Listener::BadName,
            &pki.ca,
            "verification_mode = \"full\"\n",
            "certificate verify failed",
        ),
        (
            "wrong CA, certificate",
            Listener::Ssl,
            &pki.wrong_ca,
            "verification_mode = \"certificate\"\n",
            "certificate verify failed",
        ),
    ];
    for (name, listener, ca, mode, want) in fail_cases {
        let cfg = w.config_with(
            &w.input("app", "*.log", ""),
            &kafka_output(&broker.addr(listener), &ssl_toml("tls", ca, mode)),
        );
        let err = test_output_err(&cfg);
        eprintln!("TLS {name}: {err}");
        assert!(
            err.contains(want),
            "{name}: the error should name the TLS failure: {err}"
        );
    }
}

/// Mutual TLS against a listener with `ssl.client.auth=required`: the client certificate from
/// the test CA works; without one the broker refuses and the error says so.
#[test]
fn mutual_tls_with_a_client_certificate_works_and_without_one_fails() {
    let _g = serial();
    let broker = secure();
    let pki = broker.pki.clone().expect("PKI");
    broker.create_topic("mtls", 1, &[]);
    let w = Workspace::new();
    append(&w.logs().join("app.log"), &seq_lines("m", 0..100));
    let client = format!(
        "certificate = {:?}\nkey = {:?}\n",
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string()
    );
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &broker.addr(Listener::Mtls),
            &ssl_toml("mtls", &pki.ca, &client),
        ),
    );
    let text = test_output_ok(&cfg);
    assert!(text.contains("mtls: 1 partitions"), "{text}");
    w.run_once(&cfg);
    let msgs = consume(broker, &["mtls"], 100, 60);
    assert_eq!(
        assert_complete(seqs(&values(&msgs), "m "), 100, "over mutual TLS"),
        0
    );
    // The same listener refuses a client without a certificate.
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(&broker.addr(Listener::Mtls), &ssl_toml("mtls", &pki.ca, "")),
    );
    let err = test_output_err(&cfg);
    eprintln!("no client certificate: {err}");
    assert!(
        // Java's TLS answers a missing client certificate with alert 42, bad_certificate.
        err.contains("bad certificate") || err.contains("certificate required"),
        "the error should name the refused handshake: {err}"
    );
}

/// `[output.kafka.sasl]` TOML.
fn sasl_toml(topic: &str, mechanism: &str, user: &str, password: &str) -> String {
    format!("topic = {topic:?}\n[output.kafka.sasl]\nmechanism = {mechanism:?}\nusername = {user:?}\npassword = {password:?}\n")
}

/// SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 against the broker's own listeners, over
/// plaintext and over TLS: `test output` passes and every line arrives. A wrong password fails
/// clearly, in `test output` and in the running agent, and no password is ever printed.
#[test]
fn sasl_plain_and_scram_over_plaintext_and_tls() {
    let _g = serial();
    let broker = secure();
    let pki = broker.pki.clone().expect("PKI");
    let mut topics = Vec::new();
    for (i, mech) in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        .iter()
        .enumerate()
    {
        for (tls, listener) in [(false, Listener::SaslPlaintext), (true, Listener::SaslSsl)] {
            let topic = format!(
                "sasl-{}-{}",
                mech.to_lowercase(),
                if tls { "tls" } else { "plain" }
            );
            broker.create_topic(&topic, 2, &[]);
            let w = Workspace::new();
            let prefix = format!("{i}{tls}");
            append(&w.logs().join("app.log"), &seq_lines(&prefix, 0..50));
            let mut out = sasl_toml(&topic, mech, ALICE.0, ALICE.1);
            if tls {
                out.push_str(&format!(
                    "[output.kafka.ssl]\ncertificate_authorities = [{:?}]\n",
                    pki.ca.display().to_string()
                ));
            }
            let cfg = w.config_with(
                &w.input("app", "*.log", ""),
                &kafka_output(&broker.addr(listener), &out),
            );
            let text = test_output_ok(&cfg);
            assert!(text.contains(&format!("{topic}: 2 partitions")), "{text}");
            let run = w.run_once(&cfg);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(
                !stderr.contains(ALICE.1),
                "the password must not be logged: {stderr}"
            );
            topics.push((topic, prefix));
        }
    }
    let names: Vec<&str> = topics.iter().map(|(t, _)| t.as_str()).collect();
    let msgs = consume(broker, &names, 50 * topics.len(), 60);
    for (topic, prefix) in &topics {
        let here: Vec<Msg> = msgs.iter().filter(|m| &m.topic == topic).cloned().collect();
        let p = format!("{prefix} ");
        assert_eq!(
            assert_complete(seqs(&values(&here), &p), 50, topic),
            0,
            "{topic}"
        );
    }

    // Wrong passwords: `test output` fails, names the cause, never prints the password.
    let wrong = "not-the-pw-7d1e";
    let w = Workspace::new();
    append(&w.logs().join("app.log"), &seq_lines("x", 0..10));
    for mech in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let cfg = w.config_with(
            &w.input("app", "*.log", ""),
            &kafka_output(
                &broker.addr(Listener::SaslPlaintext),
                &sasl_toml("sasl-plain-plain", mech, ALICE.0, wrong),
            ),
        );
        let err = test_output_err(&cfg);
        assert!(
            err.to_lowercase().contains("authentication"),
            "{mech}: {err}"
        );
        assert!(
            !err.contains(wrong),
            "{mech}: the password must not be printed: {err}"
        );
    }
    // The running agent with a wrong password: it says so, keeps retrying, logs no password,
    // and delivers nothing.
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &broker.addr(Listener::SaslPlaintext),
            &sasl_toml("sasl-plain-plain", "SCRAM-SHA-512", ALICE.0, wrong),
        ),
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("level = \"info\"", "level = \"debug\"")).unwrap();
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_secs(4));
    let (ok, log_text) = agent.stop();
    assert!(ok, "{log_text}");
    assert!(
        log_text.contains("Authentication failed"),
        "the agent names the failure: {log_text}"
    );
    assert!(!log_text.contains(wrong), "the password must not be logged");
    // Without SASL the listener closes the connection: a clear failure too.
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &broker.addr(Listener::SaslPlaintext),
            "topic = \"sasl-plain-plain\"",
        ),
    );
    test_output_err(&cfg);
}

/// A topic the client is not authorised for (`StandardAuthorizer`, an ACL that names someone
/// else): its events reach the dead-letter file with the broker's error, and `dlq replay`
/// delivers them once the ACL grants the client.
#[test]
fn unauthorised_topic_goes_to_the_dead_letter_file_and_replays_once_granted() {
    let _g = serial();
    let broker = secure();
    broker.create_topic("acl-secret", 2, &[]);
    // An ACL on the topic: only the super user and whom the ACLs name may use it.
    broker.acls(&[
        "--add",
        "--allow-principal",
        "User:nobody-else",
        "--operation",
        "Read",
        "--topic",
        "acl-secret",
    ]);
    let w = Workspace::new();
    append(&w.logs().join("app.log"), &seq_lines("z", 0..20));
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &kafka_output(
            &broker.addr(Listener::SaslPlaintext),
            &sasl_toml("acl-secret", "SCRAM-SHA-512", ALICE.0, ALICE.1),
        ),
    );
    let err = test_output_err(&cfg);
    assert!(
        err.contains("\"acl-secret\": TopicAuthorizationFailed") && err.contains("kafka-acls"),
        "test output names the topic, the refusal and the fix: {err}"
    );
    w.run_once(&cfg);
    let rows = dead_letters(&w);
    assert_eq!(rows.len(), 20, "{rows:?}");
    let error = rows[0]["error"].as_str().unwrap();
    assert!(
        error.contains("Topic authorization failed") && error.contains("grant"),
        "the broker's error and the fix: {error}"
    );
    // Granted: replay delivers every event once.
    broker.acls(&[
        "--add",
        "--allow-principal",
        &format!("User:{}", ALICE.0),
        "--operation",
        "Write",
        "--operation",
        "Describe",
        "--topic",
        "acl-secret",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !test_output(&cfg).status.success() {
        assert!(Instant::now() < deadline, "the ACL never took effect");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ok = dlq_cmd(&cfg, &["replay"]);
    let report = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        report.contains("replayed 20 event(s); 0 failed again"),
        "{report}"
    );
    // Exactly 20: nothing got through before the grant.
    let msgs = consume(broker, &["acl-secret"], 20, 60);
    assert_eq!(msgs.len(), 20);
    assert_eq!(
        assert_complete(seqs(&values(&msgs), "z "), 20, "replayed"),
        0
    );
}
