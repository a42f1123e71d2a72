//! `[output.kafka]` options, named as in Filebeat's `output.kafka` where the feature is the same.
//!
//! Defaults differ from Filebeat where correctness or speed asks for it, and are documented here:
//! `required_acks = -1` (Filebeat: 1) and `compression = "lz4"` (Filebeat: gzip), with the
//! idempotent producer always on when acks are -1 so librdkafka's retries cannot duplicate or
//! reorder within a partition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::units::{ByteSize, Dur};

fn yes() -> bool {
    true
}

pub use crate::config::Secret;
pub use crate::output::backoff::BackoffConfig;
pub use crate::output::dlq::DeadLetterConfig;
pub use crate::output::tls::{SslConfig, VerificationMode};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Bootstrap brokers (`host:port`).
    pub hosts: Vec<String>,
    /// Format string (`%{[field.path]}`, `%{+yyyy.MM.dd}`) for the topic when no rule matches.
    #[serde(default = "KafkaConfig::default_topic")]
    pub topic: String,
    /// Rules evaluated in order; the first whose `when` matches (or that has none) wins.
    #[serde(default)]
    pub topics: Vec<TopicRule>,
    /// Format string for the message key; no key by default (then partitions are random).
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub partition: Option<PartitionConfig>,
    /// -1 all in-sync replicas, 1 leader only, 0 none (no delivery guarantee).
    #[serde(default = "KafkaConfig::default_acks")]
    pub required_acks: i16,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// Bigger encoded events are not sent: they go to the dead-letter file.
    #[serde(default = "KafkaConfig::default_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default = "KafkaConfig::default_client_id")]
    pub client_id: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    /// Events taken from the queue per round.
    #[serde(default = "KafkaConfig::default_bulk")]
    pub bulk_max_size: usize,
    /// Time librdkafka waits for a batch to fill (`linger.ms`); Filebeat's name.
    #[serde(default = "KafkaConfig::default_flush")]
    pub bulk_flush_frequency: Dur,
    /// Network request timeout (`request.timeout.ms` is `broker_timeout`; this is `socket.timeout.ms`).
    #[serde(default = "KafkaConfig::default_timeout")]
    pub timeout: Dur,
    #[serde(default = "KafkaConfig::default_broker_timeout")]
    pub broker_timeout: Dur,
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// Filebeat's top-level credentials (`sasl.mechanism` picks the mechanism).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    #[serde(default)]
    pub ssl: Option<SslConfig>,
    /// Bound of librdkafka's own queue. When it is full oxibeat stops taking events from its
    /// queue, so the inputs pause instead of memory growing.
    #[serde(default)]
    pub queue: ProducerQueue,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// Raw librdkafka properties applied last, for experts (they override everything above).
    /// Values are not shown by `Debug`: they may hold credentials (`sasl.password`).
    #[serde(default)]
    pub librdkafka: BTreeMap<String, toml::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let cfg: KafkaConfig = toml::from_str(
            "hosts = [\"k:9092\"]\npassword = \"hunter2\"\nsasl = { mechanism = \"SCRAM-SHA-512\", username = \"u\", password = \"hunter3\" }\nssl = { key_passphrase = \"hunter4\" }\nlibrdkafka = { \"sasl.password\" = \"hunter5\" }",
        )
        .unwrap();
        let d = format!("{cfg:?}");
        for s in ["hunter2", "hunter3", "hunter4", "hunter5"] {
            assert!(!d.contains(s), "{s} leaked: {d}");
        }
        assert_eq!(
            cfg.sasl.unwrap().mechanism,
            Some(SaslMechanism::ScramSha512)
        );
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let cfg: KafkaConfig = toml::from_str("hosts = [\"k:9092\"]").unwrap();
        assert_eq!(cfg.topic, "oxibeat");
        assert_eq!(cfg.required_acks, -1);
        assert_eq!(cfg.compression, Compression::Lz4);
        assert_eq!(cfg.max_message_bytes, 1_000_000);
        assert_eq!(cfg.bulk_max_size, 2048);
        let e = crate::config::typed::<KafkaConfig>(
            toml::from_str("hosts = [\"k:9092\"]\ncompresion = \"lz4\"").unwrap(),
            "output.kafka",
        )
        .unwrap_err();
        assert!(e.message.contains("compresion"), "{e:?}");
    }

    #[test]
    fn a_header_name_with_nul_is_refused() {
        let cfg: KafkaConfig = toml::from_str(
            "hosts = [\"k:9092\"]\nheaders = [{ key = \"ok\", value = \"v\" }, { key = \"a\\u0000b\", value = \"v\" }]",
        )
        .unwrap();
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, "output.kafka.headers[1].key");
        assert!(e.message.contains("NUL"), "{e:?}");
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Everything but the values of the librdkafka passthrough (they may be credentials).
        f.debug_struct("KafkaConfig")
            .field("hosts", &self.hosts)
            .field("topic", &self.topic)
            .field("topics", &self.topics)
            .field("key", &self.key)
            .field("partition", &self.partition)
            .field("required_acks", &self.required_acks)
            .field("compression", &self.compression)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("sasl", &self.sasl)
            .field("ssl", &self.ssl)
            .field("librdkafka", &self.librdkafka.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KafkaConfig {
    /// Everything that can be checked without a broker, at load (`test config` and every
    /// command that reads the output): ranges, format strings, the partitioner, the TLS files,
    /// and every librdkafka property (names and values, as librdkafka itself checks them).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::{at_least, within, ConfigError};
        if self.hosts.is_empty() || self.hosts.iter().any(|h| h.trim().is_empty()) {
            return Err(ConfigError::new(
                "output.kafka.hosts",
                "list the bootstrap brokers as \"host:port\", e.g. [\"kafka-1:9092\"]",
            ));
        }
        self.topic_router()?;
        if let Some(k) = &self.key {
            crate::output::format::FormatString::parse(k, "output.kafka.key")?;
        }
        super::partition::Partitioner::new(self.partition.as_ref()).map_err(|e| match e {
            super::KafkaError::Config(c) => c,
            other => ConfigError::new("output.kafka.partition", other.to_string()),
        })?;
        // librdkafka takes header names as C strings.
        if let Some(i) = self.headers.iter().position(|h| h.key.contains('\0')) {
            return Err(ConfigError::new(
                format!("output.kafka.headers[{i}].key"),
                "a header name cannot contain a NUL character; remove it",
            ));
        }
        if ![-1, 0, 1].contains(&self.required_acks) {
            return Err(ConfigError::new(
                "output.kafka.required_acks",
                format!(
                    "{} is not allowed; allowed: -1 (all replicas), 1 (leader), 0 (none)",
                    self.required_acks
                ),
            ));
        }
        at_least(
            "output.kafka.max_message_bytes",
            self.max_message_bytes as u64,
            1,
            " bytes",
        )?;
        within(
            "output.kafka.bulk_max_size",
            self.bulk_max_size as u64,
            1,
            1_000_000,
        )?;
        at_least(
            "output.kafka.queue.max_bytes",
            self.queue.max_bytes.0,
            1024,
            " bytes",
        )?;
        within(
            "output.kafka.queue.max_messages",
            self.queue.max_messages as u64,
            1,
            2_147_483_647,
        )?;
        at_least(
            "output.kafka.dead_letter.number_of_files",
            self.dead_letter.number_of_files as u64,
            1,
            "",
        )?;
        at_least(
            "output.kafka.dead_letter.rotate_every",
            self.dead_letter.rotate_every.0,
            1024,
            " bytes",
        )?;
        if let Some(ssl) = self.ssl.as_ref().filter(|s| s.enabled) {
            ssl.check_files("output.kafka")
                .map_err(|e| ConfigError::new("", e.to_string()))?;
        }
        super::producer::check_properties(self)
    }

    /// The topic for each event: the `topics` rules (first match wins), then `topic`.
    pub fn topic_router(
        &self,
    ) -> Result<crate::output::format::Router, crate::config::ConfigError> {
        crate::output::format::Router::new(
            self.topics
                .iter()
                .map(|r| (r.topic.as_str(), r.when.as_ref())),
            "output.kafka.topics",
            "topic",
            Some((&self.topic, "output.kafka.topic")),
        )
    }

    fn default_topic() -> String {
        "oxibeat".into()
    }
    fn default_acks() -> i16 {
        -1
    }
    fn default_max_message_bytes() -> usize {
        1_000_000
    }
    fn default_client_id() -> String {
        "oxibeat".into()
    }
    fn default_bulk() -> usize {
        2048
    }
    fn default_flush() -> Dur {
        Dur(std::time::Duration::from_millis(5))
    }
    fn default_timeout() -> Dur {
        Dur(std::time::Duration::from_secs(30))
    }
    fn default_broker_timeout() -> Dur {
        Dur(std::time::Duration::from_secs(10))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    pub topic: String,
    /// A processor condition (`contains`, `equals`, `regexp`, `and`, ...); absent = always.
    #[serde(default)]
    pub when: Option<toml::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub key: String,
    pub value: String,
}

/// Exactly one of the strategies, as Filebeat's `partition.<name>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    #[serde(default)]
    pub hash: Option<HashPartition>,
    #[serde(default)]
    pub round_robin: Option<GroupPartition>,
    #[serde(default)]
    pub random: Option<GroupPartition>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashPartition {
    /// Fields hashed (concatenated) instead of the key.
    #[serde(default)]
    pub hash: Vec<String>,
    /// When a listed field is missing: random partition (true) or a permanent error (false).
    #[serde(default = "yes")]
    pub random: bool,
    #[serde(default)]
    pub reachable_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPartition {
    #[serde(default = "GroupPartition::default_group")]
    pub group_events: u32,
    #[serde(default)]
    pub reachable_only: bool,
}

impl GroupPartition {
    fn default_group() -> u32 {
        1
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    #[default]
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    #[serde(default)]
    pub mechanism: Option<SaslMechanism>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerQueue {
    /// `queue.buffering.max.kbytes`.
    #[serde(default = "ProducerQueue::default_bytes")]
    pub max_bytes: ByteSize,
    /// `queue.buffering.max.messages`.
    #[serde(default = "ProducerQueue::default_messages")]
    pub max_messages: usize,
}

impl ProducerQueue {
    fn default_bytes() -> ByteSize {
        ByteSize(32 * 1024 * 1024)
    }
    fn default_messages() -> usize {
        100_000
    }
}

impl Default for ProducerQueue {
    fn default() -> Self {
        ProducerQueue {
            max_bytes: Self::default_bytes(),
            max_messages: Self::default_messages(),
        }
    }
}
