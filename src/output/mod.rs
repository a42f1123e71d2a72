//! Outputs: take batches from the queue, deliver them, and ack only what the destination
//! confirmed. Retriable failures are retried with capped exponential backoff, forever.
//!
//! Shared by the outputs: `backoff` (retry pacing), `tls` (`ssl.*` settings and the rustls
//! client), `format` (format strings and rule lists), `dlq` (the dead-letter file and the
//! `oxibeat dlq` commands).
//!
//! Outputs with a module of their own: `kafka/` (librdkafka), `elasticsearch/` (bulk API),
//! `logstash/` (Lumberjack v2).

pub mod backoff;
pub mod console;
pub mod discard;
pub mod dlq;
pub mod elasticsearch;
pub mod file;
pub mod format;
pub mod kafka;
pub mod logstash;
pub mod tls;

use std::sync::Arc;

use crate::config::OutputKind;
use crate::event::BeatInfo;
use crate::pipeline::Consumer;

pub use backoff::Backoff;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "output.file: cannot use directory {path}: {source}; create it or fix its permissions"
    )]
    FileDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaError),
    #[error(transparent)]
    Logstash(#[from] logstash::LogstashError),
    #[error(transparent)]
    Elasticsearch(#[from] elasticsearch::EsError),
}

/// Run the configured output until the queue closes (every input stopped and drained).
pub async fn run(
    kind: OutputKind,
    consumer: Consumer,
    beat: Arc<BeatInfo>,
) -> Result<(), OutputError> {
    match kind {
        OutputKind::File(cfg) => file::run(cfg, consumer, beat).await,
        OutputKind::Console(cfg) => console::run(cfg, consumer, beat).await,
        OutputKind::Discard => discard::run(consumer, beat).await,
        OutputKind::Kafka(cfg) => kafka::run(*cfg, consumer, beat).await,
        OutputKind::Logstash(cfg) => logstash::run(*cfg, consumer, beat).await,
        OutputKind::Elasticsearch(es) => Ok(elasticsearch::run(*es, consumer, beat).await?),
    }
}

/// Check that the output can work, for `oxibeat test output`; returns a description.
pub fn test(kind: &OutputKind) -> Result<String, OutputError> {
    match kind {
        OutputKind::File(cfg) => file::check(cfg).map(|p| format!("file output: {p}")),
        OutputKind::Console(_) => Ok("console output: writes to stdout".into()),
        OutputKind::Discard => Ok("discard output: accepts everything".into()),
        OutputKind::Kafka(cfg) => Ok(kafka::check(cfg)?),
        OutputKind::Logstash(cfg) => Ok(logstash::check(cfg)?),
        OutputKind::Elasticsearch(es) => Ok(elasticsearch::check(es)?),
    }
}

/// Fill in paths that default to places under `path.data` (the dead-letter directories).
pub fn resolve_paths(kind: &mut OutputKind, data: &std::path::Path) {
    match kind {
        OutputKind::Kafka(k) if k.dead_letter.path.is_none() => {
            k.dead_letter.path = Some(kafka::producer::dead_letter_dir(k, data));
        }
        OutputKind::Elasticsearch(es) => es.data_dir = data.to_path_buf(),
        _ => {}
    }
}

/// `queue.mem.events` the output asks for (the Elasticsearch `preset`), if any.
pub fn queue_events(kind: &OutputKind) -> Option<usize> {
    match kind {
        OutputKind::Elasticsearch(es) => es.preset_queue_events(),
        _ => None,
    }
}

/// Encode a batch as NDJSON into `buf` (cleared first). Returns the number of events.
pub fn encode_ndjson(
    batch: &crate::pipeline::Batch,
    beat: &BeatInfo,
    pretty: bool,
    buf: &mut Vec<u8>,
) -> usize {
    buf.clear();
    let mut n = 0;
    for ev in batch.events() {
        if pretty {
            let v = ev.to_value(beat);
            let _ = serde_json::to_writer_pretty(&mut *buf, &v);
        } else {
            ev.write_json(beat, buf);
        }
        buf.push(b'\n');
        n += 1;
    }
    n
}
