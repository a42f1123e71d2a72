//! `oxibeat dlq show` and `oxibeat dlq replay`: inspect the dead-letter files and send their
//! events to Kafka again (after the cause was fixed: topic created, `message.max.bytes` raised,
//! ACL granted).
//!
//! Replay first claims every dead-letter file under the directory lock, renaming them to
//! `kafka-dlq.replaying.<n>.ndjson` in age order (a running agent then starts a new active
//! file). Then, one claimed file at a time, it sends every entry with the output's settings
//! (key, partitioner, headers, and the event's `@timestamp` as the message timestamp), waits
//! for the delivery reports, appends what failed again, with the new error, to the active file,
//! and deletes the claimed file. A crash in between leaves claimed files, which the next replay
//! takes first: entries are delivered at least once and none is lost (a crash after the append
//! and before the delete repeats that file's entries). One replay runs at a time
//! (`kafka-dlq.replay.lock`). Lines that are not valid dead-letter entries (a torn write) are
//! kept byte for byte and counted.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, NoCustomPartitioner, Producer, ProducerContext, ThreadedProducer,
    PARTITION_UA,
};
use rdkafka::ClientContext;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{parse_timestamp, Event};

use super::config::KafkaConfig;
use super::dlq::{self, append_synced, DirLock, Entry};
use super::partition::Partitioner;
use super::producer::{client_config, fetch_partitions, headers, oversize, Lookup};
use super::KafkaError;
use crate::output::format::FormatString;

const CLAIMED_PREFIX: &str = "kafka-dlq.replaying.";
/// Held for the whole replay: a second replay would take over files the first is sending.
const REPLAY_LOCK: &str = "kafka-dlq.replay.lock";

/// Files claimed by a replay (possibly an interrupted one), in order.
fn claimed_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    dlq::numbered(dir, |name| {
        name.strip_prefix(CLAIMED_PREFIX)?
            .strip_suffix(".ndjson")?
            .parse()
            .ok()
    })
}

/// Rename every dead-letter file to a claimed name, after those an interrupted replay left.
fn claim_all(dir: &Path) -> Result<Vec<PathBuf>, KafkaError> {
    let _lock = DirLock::acquire(dir).map_err(|e| io_error("lock", dir, e))?;
    let mut claimed = claimed_files(dir);
    let first = claimed.last().map_or(0, |(n, _)| n + 1);
    for (n, f) in (first..).zip(dlq::files(dir)) {
        let to = dir.join(format!("{CLAIMED_PREFIX}{n}.ndjson"));
        fs::rename(&f, &to).map_err(|e| io_error("claim", &f, e))?;
        claimed.push((n, to));
    }
    Ok(claimed.into_iter().map(|(_, p)| p).collect())
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "@timestamp", default)]
    timestamp: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    error: String,
    #[serde(borrow)]
    event: &'a RawValue,
}

impl Line<'_> {
    /// The Kafka message value: the event JSON, or the text of a value that was not JSON.
    fn payload(&self) -> Vec<u8> {
        let raw = self.event.get();
        if raw.starts_with('"') {
            if let Ok(s) = serde_json::from_str::<String>(raw) {
                return s.into_bytes();
            }
        }
        raw.as_bytes().to_vec()
    }
}

/// What `show` or `replay` found and did.
#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    /// Entries per (topic, error).
    pub by_cause: BTreeMap<(String, String), usize>,
    pub replayed: usize,
    pub failed_again: usize,
    /// Lines that are not dead-letter entries, kept as they were.
    pub unreadable: usize,
    /// A sample error of the entries that failed again.
    pub sample_error: Option<String>,
}

impl Report {
    pub fn entries(&self) -> usize {
        self.by_cause.values().sum()
    }

    pub fn render(&self, dir: &Path, replay: bool) -> String {
        let mut out = format!(
            "dead-letter directory {}: {} file(s), {} entr{}, {} unreadable line(s)\n",
            dir.display(),
            self.files,
            self.entries(),
            if self.entries() == 1 { "y" } else { "ies" },
            self.unreadable
        );
        for ((topic, error), n) in &self.by_cause {
            let topic = if topic.is_empty() { "(none)" } else { topic };
            out.push_str(&format!("  {n:>8}  topic {topic}: {error}\n"));
        }
        if replay {
            out.push_str(&format!(
                "replayed {} event(s); {} failed again and were kept in the dead-letter file",
                self.replayed, self.failed_again
            ));
            if let Some(e) = &self.sample_error {
                out.push_str(&format!(" (for example: {e})"));
            }
            out.push('\n');
        }
        out
    }
}

/// Count the dead-letter entries of `dir` by topic and error, without changing anything.
pub fn show(dir: &Path) -> Result<Report, KafkaError> {
    let mut report = Report::default();
    if !dir.is_dir() {
        return Ok(report);
    }
    // Under the lock: no rotation or replay step moves a file while it is counted.
    let _lock = DirLock::acquire(dir).map_err(|e| io_error("lock", dir, e))?;
    let files: Vec<PathBuf> = claimed_files(dir)
        .into_iter()
        .map(|(_, p)| p)
        .chain(dlq::files(dir))
        .collect();
    for path in &files {
        let bytes = fs::read(path).map_err(|e| io_error("read", path, e))?;
        report.files += 1;
        for raw in lines(&bytes) {
            match parse(raw) {
                Some(l) => *report.by_cause.entry((l.topic, l.error)).or_default() += 1,
                None => report.unreadable += 1,
            }
        }
    }
    Ok(report)
}

/// The non-empty lines of a dead-letter file, as bytes (a torn line may not be UTF-8).
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
}

fn parse(raw: &[u8]) -> Option<Line<'_>> {
    serde_json::from_slice(raw).ok()
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> KafkaError {
    KafkaError::DeadLetter {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Delivery reports by message id: `None` delivered, `Some(error)` failed.
struct ReplayCtx {
    results: Mutex<HashMap<usize, Option<String>>>,
    client_errors: Mutex<Vec<String>>,
}

impl ClientContext for ReplayCtx {
    fn error(&self, error: RdError, reason: &str) {
        let text = format!("{error}: {reason}");
        let mut e = self.client_errors.lock().unwrap_or_else(|e| e.into_inner());
        // rdkafka 0.38 reports each producer error twice.
        if e.len() < 3 && !e.contains(&text) {
            e.push(text);
        }
    }
}

impl ProducerContext<NoCustomPartitioner> for ReplayCtx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let outcome = result.as_ref().err().map(|(e, _)| e.to_string());
        self.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, outcome);
    }
}

/// What a replayed message is built with, from the output's configuration.
struct Sender<'a> {
    cfg: &'a KafkaConfig,
    producer: ThreadedProducer<ReplayCtx>,
    key: Option<FormatString>,
    partitioner: Partitioner,
    headers: Option<rdkafka::message::OwnedHeaders>,
    partitions: HashMap<String, Result<i32, String>>,
    timeout: Duration,
    /// Message ids are unique over the whole replay, so a late report cannot be credited to
    /// an entry of another file.
    next_id: usize,
}

/// Send every dead-letter entry of `dir` to Kafka again. `topic` replaces the recorded topic;
/// `timeout` bounds each delivery (an unreachable broker fails the entries, which are kept).
pub fn replay(
    cfg: &KafkaConfig,
    dir: &Path,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<Report, KafkaError> {
    let mut report = Report::default();
    if !dir.is_dir() {
        return Ok(report);
    }
    let lock_path = dir.join(REPLAY_LOCK);
    let Some(_replay_lock) =
        dlq::try_lock(&lock_path).map_err(|e| io_error("lock", &lock_path, e))?
    else {
        return Err(KafkaError::ReplayRunning(dir.display().to_string()));
    };
    let ctx = ReplayCtx {
        results: Mutex::new(HashMap::new()),
        client_errors: Mutex::new(Vec::new()),
    };
    let mut conf = client_config(cfg)?;
    conf.set("message.timeout.ms", timeout.as_millis().max(1).to_string());
    let mut sender = Sender {
        cfg,
        producer: conf
            .create_with_context(ctx)
            .map_err(super::producer::client_error)?,
        key: match &cfg.key {
            Some(k) => Some(FormatString::parse(k, "output.kafka.key")?),
            None => None,
        },
        partitioner: Partitioner::new(cfg.partition.as_ref())?,
        headers: headers(cfg),
        partitions: HashMap::new(),
        timeout,
        next_id: 0,
    };
    for claimed in claim_all(dir)? {
        report.files += 1;
        replay_file(&mut sender, dir, &claimed, topic, &mut report)?;
    }
    if report.failed_again > 0 && report.replayed == 0 {
        let errors = sender
            .producer
            .context()
            .client_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !errors.is_empty() {
            report.sample_error = Some(format!(
                "{} ({})",
                report.sample_error.unwrap_or_default(),
                errors.join("; ")
            ));
        }
    }
    Ok(report)
}

/// Send the entries of one claimed file, wait for their reports, put back what failed and
/// delete the file.
fn replay_file(
    sender: &mut Sender<'_>,
    dir: &Path,
    claimed: &Path,
    topic: Option<&str>,
    report: &mut Report,
) -> Result<(), KafkaError> {
    let bytes = fs::read(claimed).map_err(|e| io_error("read", claimed, e))?;
    let raws: Vec<&[u8]> = lines(&bytes).collect();
    let first_id = sender.next_id;
    let mut parsed: Vec<Option<Line<'_>>> = Vec::with_capacity(raws.len());
    let mut failed: HashMap<usize, String> = HashMap::new();
    for (i, raw) in raws.iter().enumerate() {
        let Some(line) = parse(raw) else {
            report.unreadable += 1;
            parsed.push(None);
            continue;
        };
        *report
            .by_cause
            .entry((line.topic.clone(), line.error.clone()))
            .or_default() += 1;
        let dest = topic.unwrap_or(&line.topic).to_string();
        if let Err(why) = sender.send(&dest, &line, first_id + i) {
            failed.insert(i, why);
        }
        parsed.push(Some(line));
    }
    sender.next_id = first_id + raws.len();
    let producer = &sender.producer;
    if producer
        .flush(sender.timeout + Duration::from_secs(10))
        .is_err()
    {
        // Give up on what is still queued or in flight: purged messages report as failed,
        // so nothing counts as delivered that might not have been.
        producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        let _ = producer.flush(Duration::from_secs(10));
    }
    let results = std::mem::take(
        &mut *producer
            .context()
            .results
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    // Whatever did not arrive goes back, with its new error.
    let mut keep = Vec::new();
    let ts_now = crate::event::format_timestamp(crate::event::now_nanos());
    for (i, line) in parsed.iter().enumerate() {
        let Some(line) = line else {
            keep.extend_from_slice(raws[i]);
            keep.push(b'\n');
            continue;
        };
        let error = match (failed.get(&i), results.get(&(first_id + i))) {
            (Some(why), _) => Some(why.clone()),
            (None, Some(None)) => None,
            (None, Some(Some(why))) => Some(why.clone()),
            (None, None) => Some("no delivery report before the replay timeout".into()),
        };
        let Some(why) = error else {
            report.replayed += 1;
            continue;
        };
        report.failed_again += 1;
        report.sample_error.get_or_insert_with(|| why.clone());
        let payload = line.payload();
        let ts = if line.timestamp.is_empty() {
            &ts_now
        } else {
            &line.timestamp
        };
        let entry = Entry {
            topic: &line.topic,
            error: &why,
            event: &payload,
        };
        dlq::write_line(&mut keep, ts, &entry);
    }
    let _lock = DirLock::acquire(dir).map_err(|e| io_error("lock", dir, e))?;
    if !keep.is_empty() {
        let active = dir.join(dlq::FILE_NAME);
        append_synced(&active, &keep).map_err(|e| io_error("append to", &active, e))?;
    }
    fs::remove_file(claimed).map_err(|e| io_error("remove", claimed, e))
}

impl Sender<'_> {
    /// Hand one entry to librdkafka with the output's key, partitioner and headers, and the
    /// event's `@timestamp`. `Err` is a failure known before sending (no topic, unknown
    /// topic, too large, unusable partition key).
    fn send(&mut self, topic: &str, line: &Line<'_>, id: usize) -> Result<(), String> {
        if topic.is_empty() {
            return Err("no topic was recorded for this event; replay it with --topic".into());
        }
        let payload = line.payload();
        let max = self.cfg.max_message_bytes;
        if payload.len() > max {
            return Err(oversize(payload.len(), max));
        }
        let event = match serde_json::from_slice::<serde_json::Value>(&payload) {
            Ok(serde_json::Value::Object(map)) => {
                let ts = map
                    .get("@timestamp")
                    .and_then(serde_json::Value::as_str)
                    .and_then(parse_timestamp);
                Some((ts, Event::from_map(ts.unwrap_or(0), map)))
            }
            _ => None,
        };
        let key: Option<Vec<u8>> = match (&self.key, &event) {
            (Some(k), Some((_, ev))) => k.render(ev).ok().map(|k| k.as_bytes().to_vec()),
            _ => None,
        };
        let partition = if self.partitioner.client_chooses(key.as_deref()) {
            PARTITION_UA
        } else {
            let n = match self.partitions.get(topic) {
                Some(n) => n.clone(),
                None => {
                    let n = partition_count(&self.producer, topic, self.timeout);
                    self.partitions.insert(topic.to_string(), n.clone());
                    n
                }
            }?;
            match &event {
                Some((_, ev)) => self.partitioner.partition(ev, key.as_deref(), n)?,
                None => PARTITION_UA,
            }
        };
        let timestamp = event
            .as_ref()
            .and_then(|(ts, _)| *ts)
            .map(|ns| ns.div_euclid(1_000_000));
        loop {
            let mut rec = BaseRecord::with_opaque_to(topic, id)
                .payload(&payload)
                .partition(partition);
            if let Some(k) = &key {
                rec = rec.key(k);
            }
            if let Some(ms) = timestamp {
                rec = rec.timestamp(ms);
            }
            if let Some(h) = &self.headers {
                rec = rec.headers(h.clone());
            }
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.to_string()),
            }
        }
    }
}

fn partition_count(
    p: &ThreadedProducer<ReplayCtx>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, String> {
    match fetch_partitions(p.client(), topic, timeout) {
        Lookup::Partitions(n) => Ok(n),
        Lookup::Bad(why) | Lookup::Unavailable(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_counts_entries_by_cause_and_unreadable_lines() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = super::super::config::DeadLetterConfig {
            path: None,
            rotate_every: crate::config::units::ByteSize(1 << 20),
            number_of_files: 3,
        };
        let mut d = dlq::DeadLetter::new(&cfg, dir.path().to_path_buf());
        let ev = br#"{"message":"a"}"#;
        d.write(&[
            Entry {
                topic: "logs",
                error: "too large",
                event: ev,
            },
            Entry {
                topic: "logs",
                error: "too large",
                event: ev,
            },
            Entry {
                topic: "",
                error: "cannot select the topic",
                event: b"not json",
            },
        ])
        .unwrap();
        append_synced(&dir.path().join(dlq::FILE_NAME), b"{\"torn\":").unwrap();
        let r = show(dir.path()).unwrap();
        assert_eq!(r.files, 1);
        assert_eq!(r.entries(), 3);
        assert_eq!(r.unreadable, 1);
        assert_eq!(
            r.by_cause[&("logs".to_string(), "too large".to_string())],
            2
        );
        let text = r.render(dir.path(), false);
        assert!(
            text.contains("topic (none): cannot select the topic"),
            "{text}"
        );
    }

    #[test]
    fn a_second_replay_is_refused_while_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: KafkaConfig = toml::from_str("hosts = [\"127.0.0.1:1\"]").unwrap();
        let held = dlq::try_lock(&dir.path().join(REPLAY_LOCK))
            .unwrap()
            .expect("free");
        let err = replay(&cfg, dir.path(), None, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, KafkaError::ReplayRunning(_)), "{err}");
        drop(held);
        // Nothing to replay in a missing directory, and nothing is created.
        let missing = dir.path().join("none");
        let r = replay(&cfg, &missing, None, Duration::from_secs(1)).unwrap();
        assert_eq!((r.files, r.replayed), (0, 0));
        assert_eq!(show(&missing).unwrap().files, 0);
        assert!(!missing.exists());
    }

    #[test]
    fn lines_keep_invalid_utf8_as_unreadable_bytes() {
        let bytes = b"{\"topic\":\"t\",\"error\":\"e\",\"event\":{}}\n\xff\xfe torn\n\n";
        let all: Vec<&[u8]> = lines(bytes).collect();
        assert_eq!(all.len(), 2);
        assert!(parse(all[0]).is_some());
        assert!(parse(all[1]).is_none());
        assert_eq!(all[1], b"\xff\xfe torn");
    }

    #[test]
    fn a_payload_that_was_not_json_is_replayed_as_its_text() {
        let line: Line<'_> =
            serde_json::from_str(r#"{"topic":"t","error":"e","event":"plain \"text\""}"#).unwrap();
        assert_eq!(line.payload(), b"plain \"text\"");
        let line: Line<'_> =
            serde_json::from_str(r#"{"topic":"t","error":"e","event":{"a":1}}"#).unwrap();
        assert_eq!(line.payload(), br#"{"a":1}"#);
    }
}
