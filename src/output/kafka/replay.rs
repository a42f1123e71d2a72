//! `oxibeat dlq replay` for the Kafka output: send the dead-lettered events to Kafka again
//! (after the cause was fixed: topic created, `message.max.bytes` raised, ACL granted).
//!
//! The file format, claiming, put-back and `show` are shared (`crate::output::dlq`); this
//! module is the sender: every entry of a claimed file is sent with the output's settings
//! (key, partitioner, headers, and the event's `@timestamp` as the message timestamp), then
//! it waits for the delivery reports. Message ids are unique over the whole replay, so a late
//! report cannot be credited to an entry of another file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{
    DeliveryResult, NoCustomPartitioner, Producer, ProducerContext, ThreadedProducer, PARTITION_UA,
};
use rdkafka::ClientContext;

use crate::event::{parse_timestamp, Event};
use crate::output::dlq::{self, Destination, Line, Report, Resend};

use super::config::KafkaConfig;
use super::native::{self, Topics};
use super::partition::Partitioner;
use super::producer::{client_config, fetch_partitions, oversize, Lookup};
use super::KafkaError;
use crate::output::format::FormatString;

/// File stem of the Kafka dead-letter files (`kafka-dlq.ndjson`).
pub const NAME: &str = "kafka-dlq";

/// Count the dead-letter entries of `dir` by topic and error, without changing anything.
pub fn show(dir: &Path) -> Result<Report, KafkaError> {
    Ok(dlq::show(dir, NAME)?)
}

/// Delivery reports by message id: `None` delivered, `Some(error)` failed.
struct ReplayCtx {
    results: Mutex<HashMap<usize, Option<String>>>,
    client_errors: Mutex<Vec<String>>,
    /// Values of the client's secret properties, masked in what librdkafka says.
    secrets: Vec<String>,
}

impl ClientContext for ReplayCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        let msg = super::producer::redact(log_message, &self.secrets);
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                tracing::warn!(facility = fac, "librdkafka: {msg}")
            }
            _ => tracing::debug!(facility = fac, "librdkafka: {msg}"),
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        let text =
            super::producer::redact(&format!("{error}: {reason}"), &self.secrets).into_owned();
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
    /// The producer and its topic handles (headers included).
    native: Topics<ReplayCtx>,
    key: Option<FormatString>,
    partitioner: Partitioner,
    partitions: HashMap<String, Result<i32, String>>,
    timeout: Duration,
    /// `--topic`: replaces the recorded topic.
    topic: Option<&'a str>,
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
    if !dir.is_dir() {
        return Ok(Report::default());
    }
    let mut conf = client_config(cfg)?;
    let ctx = ReplayCtx {
        results: Mutex::new(HashMap::new()),
        client_errors: Mutex::new(Vec::new()),
        secrets: super::producer::secret_values(&conf),
    };
    conf.set("message.timeout.ms", timeout.as_millis().max(1).to_string());
    let mut sender = Sender {
        cfg,
        native: Topics::new(
            Arc::new(
                conf.create_with_context(ctx)
                    .map_err(super::producer::client_error)?,
            ),
            &cfg.headers,
        ),
        key: match &cfg.key {
            Some(k) => Some(FormatString::parse(k, "output.kafka.key")?),
            None => None,
        },
        partitioner: Partitioner::new(cfg.partition.as_ref())?,
        partitions: HashMap::new(),
        timeout,
        topic,
        next_id: 0,
    };
    let mut report = dlq::replay_files(dir, NAME, &mut sender)?;
    if report.failed_again > 0 && report.replayed == 0 {
        let errors = sender
            .native
            .producer()
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

impl Resend for Sender<'_> {
    /// Send the entries of one claimed file and wait for their delivery reports.
    fn resend(&mut self, entries: &[Line<'_>]) -> Vec<Option<String>> {
        let first_id = self.next_id;
        let mut failed: HashMap<usize, String> = HashMap::new();
        for (i, line) in entries.iter().enumerate() {
            let recorded = match line.destination() {
                Destination::Topic(t) => t.to_string(),
                Destination::Index(_) => String::new(),
            };
            let dest = self.topic.map_or(recorded, str::to_string);
            if let Err(why) = self.send(&dest, line, first_id + i) {
                failed.insert(i, why);
            }
        }
        self.next_id = first_id + entries.len();
        let producer = self.native.producer();
        if producer
            .flush(self.timeout + Duration::from_secs(10))
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
        (0..entries.len())
            .map(
                |i| match (failed.remove(&i), results.get(&(first_id + i))) {
                    (Some(why), _) => Some(why),
                    (None, Some(None)) => None,
                    (None, Some(Some(why))) => Some(why.clone()),
                    (None, None) => Some("no delivery report before the replay timeout".into()),
                },
            )
            .collect()
    }
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
        let partition = if self.partitioner.keyless(key.as_deref()) {
            PARTITION_UA
        } else {
            let n = match self.partitions.get(topic) {
                Some(n) => n.clone(),
                None => {
                    let n = partition_count(self.native.producer(), topic, self.timeout);
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
        let m = native::Message {
            partition,
            key: key.as_deref(),
            payload: &payload,
            timestamp,
        };
        loop {
            match self.native.produce(topic, &m, id) {
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
        Lookup::Partitions(m) => Ok(m.partitions),
        Lookup::Bad(why) | Lookup::Unavailable(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_replay_is_refused_while_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: KafkaConfig = toml::from_str("hosts = [\"127.0.0.1:1\"]").unwrap();
        let held = dlq::try_lock(&dir.path().join(format!("{NAME}.replay.lock")))
            .unwrap()
            .expect("free");
        let err = replay(&cfg, dir.path(), None, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(err, KafkaError::DeadLetter(dlq::DlqError::ReplayRunning(_))),
            "{err}"
        );
        drop(held);
        let missing = dir.path().join("none");
        let r = replay(&cfg, &missing, None, Duration::from_secs(1)).unwrap();
        assert_eq!((r.files, r.replayed), (0, 0));
        assert!(!missing.exists());
    }
}
