//! `[output.kafka]`: the Beats JSON event as the message value, produced with librdkafka
//! (rdkafka crate). An event is acked to the pipeline only on its delivery report, or after it
//! was written to the dead-letter file when Kafka rejected it for good.
//!
//! - config.rs: options (Filebeat names), documented defaults and the topic router (format
//!   strings and rules from `crate::output::format`; TLS settings from `crate::output::tls`).
//! - native.rs: the produce call into librdkafka, on topic handles made once per topic.
//! - partition.rs: Filebeat-compatible partitioners (FNV-1a hash, round_robin, random).
//! - producer.rs: librdkafka settings, the produce loop, delivery tracking, `test output`.
//! - replay.rs: `oxibeat dlq replay`, sending dead-lettered events again (the dead-letter
//!   file itself, its format and `dlq show` are shared: `crate::output::dlq`).

pub mod config;
mod native;
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
    /// The brokers answered, but some configured topics are not usable; `reason` says why
    /// for each, with what to do (`producer::topic_hint`).
    #[error("output.kafka: connected to {hosts}, but {reason}")]
    Topics { hosts: String, reason: String },
    #[error("output.kafka: cannot read {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("output.kafka {0}")]
    DeadLetter(#[from] crate::output::dlq::DlqError),
}
