//! `[output.kafka]`: the Beats JSON event as the message value, produced with librdkafka
//! (rdkafka crate). An event is acked to the pipeline only on its delivery report, or after it
//! was written to the dead-letter file when Kafka rejected it for good.
//!
//! - config.rs: options (Filebeat names), documented defaults and the topic router (format
//!   strings and rules from `crate::output::format`; TLS settings from `crate::output::tls`).
//! - partition.rs: Filebeat-compatible partitioners (FNV-1a hash, round_robin, random).
//! - producer.rs: librdkafka settings, the produce loop, delivery tracking, `test output`.
//! - dlq.rs: the dead-letter NDJSON file.
//! - replay.rs: `oxibeat dlq show|replay`, sending dead-lettered events again.

pub mod config;
pub mod dlq;
pub mod partition;
pub mod producer;
pub mod replay;

pub use config::KafkaConfig;
pub use producer::{check, run};

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("output.kafka: cannot create the Kafka client: {0}; check the [output.kafka] and [output.kafka.librdkafka] settings")]
    Client(String),
    /// No metadata from the brokers; `advice` fits the cause (`producer::connect_advice`).
    #[error("output.kafka: cannot fetch metadata from {hosts}: {reason}; {advice}")]
    Connect {
        hosts: String,
        reason: String,
        advice: &'static str,
    },
    /// The brokers answered, but some configured topics are not usable.
    #[error("output.kafka: connected to {hosts}, but {detail}; {advice}")]
    Topics {
        hosts: String,
        detail: String,
        advice: &'static str,
    },
    #[error("output.kafka: cannot read {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("output.kafka dead letters: cannot {action} {path}: {source}")]
    DeadLetter {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("output.kafka dead letters: another `oxibeat dlq replay` is running on {0}")]
    ReplayRunning(String),
}
