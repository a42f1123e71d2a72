//! The configuration model: TOML with Filebeat's option names.
//!
//! Loading goes: text → TOML tree (`source`) → `-E` overrides → `${VAR}` expansion → typed
//! structs (serde through `lenient`, so strings become numbers where an option wants one;
//! unknown keys rejected) → range checks (`validate`), with the failing key path in every error.

pub mod external;
pub mod filebeat;
pub mod filestream;
pub mod lenient;
pub mod perms;
pub mod secret;
pub mod source;
pub mod units;
pub mod yaml;

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};

pub use filestream::FilestreamConfig;
pub use secret::Secret;
use units::{ByteSize, Dur};

/// How `${NAME}` is resolved: keystore, credentials, environment, settings.
pub type LookupFn<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// A configuration error: the key path that is wrong and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A regular expression compiled when the configuration is loaded.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s)
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regular expression: {e}")))
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

fn default_data() -> PathBuf {
    PathBuf::from("./data")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    /// Filebeat's `path.home`: the default parent of `config`, `data` and `logs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<PathBuf>,
    /// Where relative `-c` files and `filebeat.config.inputs.path` are found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    #[serde(default = "default_data")]
    pub data: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<PathBuf>,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            home: None,
            config: None,
            data: default_data(),
            logs: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemQueueConfig {
    #[serde(default = "MemQueueConfig::default_events")]
    pub events: usize,
    #[serde(default = "MemQueueConfig::default_bytes")]
    pub max_bytes: ByteSize,
    /// Filebeat 8.13+'s `flush.min_events` / `flush.timeout`.
    #[serde(default)]
    pub flush: MemQueueFlush,
}

/// `queue.mem.flush.*` with Filebeat 8.13+'s meaning: with `min_events` > 1 and `timeout` > 0,
/// the output gets a batch once `min(min_events, its bulk_max_size)` events are queued or the
/// oldest queued event waited `timeout`; `min_events` > 1 also caps the batch size. With
/// `min_events` 0 or 1, or `timeout` 0, events go to the output as soon as they are queued.
/// The defaults (0, 0s) are that low-latency mode; Filebeat's are 1600 and 10s.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemQueueFlush {
    #[serde(default)]
    pub min_events: usize,
    #[serde(default)]
    pub timeout: Dur,
}

impl MemQueueConfig {
    /// Ranges serde cannot express (key paths under `queue.mem`).
    fn validate(&self) -> Result<(), ConfigError> {
        // Filebeat: `events` validate:"min=32"; flush.min_events must not exceed events.
        at_least("queue.mem.events", self.events as u64, 32, "")?;
        at_least("queue.mem.max_bytes", self.max_bytes.0, 1, " byte")?;
        if self.flush.min_events > self.events {
            return Err(ConfigError::new(
                "queue.mem.flush.min_events",
                format!(
                    "{} is more than queue.mem.events ({}); allowed: 0 to queue.mem.events",
                    self.flush.min_events, self.events
                ),
            ));
        }
        Ok(())
    }

    /// What the pipeline's consumer does with `flush.*`.
    pub fn flush_policy(&self) -> crate::pipeline::FlushPolicy {
        crate::pipeline::FlushPolicy {
            min_events: self.flush.min_events,
            timeout: self.flush.timeout.0,
        }
    }
}

/// `key` must be at least `min` (`unit` is appended to the number in the message).
pub(crate) fn at_least(key: &str, value: u64, min: u64, unit: &str) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::new(
            key,
            format!("{value}{unit} is too small; allowed: {min}{unit} or more"),
        ));
    }
    Ok(())
}

/// `key` must be within `min..=max`.
pub(crate) fn within(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(
            key,
            format!("{value} is out of range; allowed: {min} to {max}"),
        ));
    }
    Ok(())
}

impl MemQueueConfig {
    fn default_events() -> usize {
        4096
    }
    fn default_bytes() -> ByteSize {
        ByteSize(64 << 20)
    }
}

impl Default for MemQueueConfig {
    fn default() -> Self {
        MemQueueConfig {
            events: Self::default_events(),
            max_bytes: Self::default_bytes(),
            flush: MemQueueFlush::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default)]
    pub mem: MemQueueConfig,
    /// `[queue.disk]`: when set, the disk queue replaces the memory queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<crate::pipeline::disk::DiskQueueConfig>,
}

impl QueueConfig {
    /// `[queue.mem]` and `[queue.disk]` are exclusive (as in Filebeat: one queue type), and the
    /// disk queue's values are in range. `tree` is the effective TOML, to see what was written.
    fn validate(&self, tree: &toml::Value) -> Result<(), ConfigError> {
        let written = |k: &str| tree.get("queue").and_then(|q| q.get(k)).is_some();
        if written("mem") && written("disk") {
            return Err(ConfigError::new(
                "queue",
                "[queue.mem] and [queue.disk] are exclusive: keep one of them",
            ));
        }
        if let Some(d) = &self.disk {
            d.validate("queue.disk")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default = "RegistryConfig::default_flush")]
    pub flush: Dur,
    /// Checkpoint (compact) the operation log once it grows past this size.
    #[serde(default = "RegistryConfig::default_checkpoint")]
    pub checkpoint_size: ByteSize,
}

impl RegistryConfig {
    fn default_flush() -> Dur {
        Dur(std::time::Duration::from_secs(1))
    }
    fn default_checkpoint() -> ByteSize {
        ByteSize(10 << 20)
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            flush: Self::default_flush(),
            checkpoint_size: Self::default_checkpoint(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingMetrics {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "LoggingMetrics::default_period")]
    pub period: Dur,
}

impl LoggingMetrics {
    fn default_period() -> Dur {
        Dur(std::time::Duration::from_secs(30))
    }
}

impl Default for LoggingMetrics {
    fn default() -> Self {
        LoggingMetrics {
            enabled: true,
            period: Self::default_period(),
        }
    }
}

/// What `logging.level` and `--log-level` accept (Beats' `warning` and `critical` included).
pub const LOG_LEVELS: [&str; 7] = [
    "error", "critical", "warn", "warning", "info", "debug", "trace",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// One of `LOG_LEVELS`.
    #[serde(default = "LoggingConfig::default_level")]
    pub level: String,
    /// Log to stderr (same as `-e`).
    #[serde(default)]
    pub to_stderr: bool,
    #[serde(default)]
    pub json: bool,
    #[serde(default)]
    pub metrics: LoggingMetrics,
    /// Write to `logging.files` (default: yes, except under systemd, where stderr goes to
    /// the journal; see `logging`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_files: Option<bool>,
    #[serde(default)]
    pub files: crate::logging::FilesConfig,
    /// Components logged at debug level with `level = "debug"` (`*`: all), as Beats'.
    #[serde(default)]
    pub selectors: Vec<String>,
}

impl LoggingConfig {
    fn default_level() -> String {
        "info".into()
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: Self::default_level(),
            to_stderr: false,
            json: false,
            metrics: LoggingMetrics::default(),
            to_files: None,
            files: crate::logging::FilesConfig::default(),
            selectors: Vec::new(),
        }
    }
}

pub(crate) fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOutputConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub path: PathBuf,
    #[serde(default = "FileOutputConfig::default_filename")]
    pub filename: String,
    #[serde(default = "FileOutputConfig::default_rotate")]
    pub rotate_every_kb: u64,
    #[serde(default = "FileOutputConfig::default_files")]
    pub number_of_files: usize,
    #[serde(default = "FileOutputConfig::default_permissions")]
    pub permissions: u32,
    #[serde(default)]
    pub codec: CodecConfig,
}

impl FileOutputConfig {
    /// Ranges serde cannot express (Filebeat's `fileout` rules).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "output.file.path",
                "must not be empty; give the directory the files go to",
            ));
        }
        if self.filename.is_empty() || self.filename.contains('/') {
            return Err(ConfigError::new(
                "output.file.filename",
                "must be a file name prefix without '/' (default \"oxibeat\")",
            ));
        }
        at_least("output.file.rotate_every_kb", self.rotate_every_kb, 1, "")?;
        within(
            "output.file.number_of_files",
            self.number_of_files as u64,
            2,
            1024,
        )?;
        if self.permissions > 0o777 {
            return Err(ConfigError::new(
                "output.file.permissions",
                format!(
                    "{:#o} is not a file mode; allowed: 0 to 0o777 (e.g. 0o600)",
                    self.permissions
                ),
            ));
        }
        Ok(())
    }

    fn default_filename() -> String {
        "oxibeat".into()
    }
    fn default_rotate() -> u64 {
        10240
    }
    fn default_files() -> usize {
        7
    }
    fn default_permissions() -> u32 {
        0o600
    }
}

/// `codec.json.pretty` as in Beats; `codec.format.string` is not supported.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecConfig {
    #[serde(default)]
    pub json: JsonCodec,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCodec {
    #[serde(default)]
    pub pretty: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOutputConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub codec: CodecConfig,
    #[serde(default = "ConsoleOutputConfig::default_bulk")]
    pub bulk_max_size: usize,
}

impl ConsoleOutputConfig {
    fn default_bulk() -> usize {
        2048
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardOutputConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// `[output.*]`: exactly one section must be enabled. Sections owned by outputs still being
/// built are kept as raw TOML and validated by their module.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileOutputConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleOutputConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<DiscardOutputConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logstash: Option<toml::Value>,
    /// A copy of the top-level `[cloud]` section: `cloud.id` enables and points the
    /// Elasticsearch output (set by `Config::from_str_with`).
    #[serde(skip)]
    pub cloud: Option<toml::Value>,
}

/// The output selected by the configuration.
#[derive(Debug, Clone)]
pub enum OutputKind {
    File(FileOutputConfig),
    Console(ConsoleOutputConfig),
    Discard,
    Kafka(Box<crate::output::kafka::KafkaConfig>),
    Logstash(Box<crate::output::logstash::LogstashConfig>),
    Elasticsearch(Box<crate::output::elasticsearch::EsOutput>),
}

fn enabled(v: &toml::Value) -> bool {
    v.get("enabled")
        .and_then(toml::Value::as_bool)
        .unwrap_or(true)
}

impl OutputConfig {
    pub fn selected(&self) -> Result<OutputKind, ConfigError> {
        let mut on: Vec<(&str, OutputKind)> = Vec::new();
        if let Some(f) = self.file.as_ref().filter(|f| f.enabled) {
            f.validate()?;
            on.push(("output.file", OutputKind::File(f.clone())));
        }
        if let Some(c) = self.console.as_ref().filter(|c| c.enabled) {
            on.push(("output.console", OutputKind::Console(c.clone())));
        }
        if self.discard.as_ref().is_some_and(|d| d.enabled) {
            on.push(("output.discard", OutputKind::Discard));
        }
        if let Some(raw) = self.kafka.as_ref().filter(|r| enabled(r)) {
            let k: crate::output::kafka::KafkaConfig = typed(raw.clone(), "output.kafka")?;
            k.validate()?;
            on.push(("output.kafka", OutputKind::Kafka(Box::new(k))));
        }
        let cloud_id = self
            .cloud
            .as_ref()
            .and_then(|c| c.get("id"))
            .and_then(toml::Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let es_raw = match &self.elasticsearch {
            Some(raw) if enabled(raw) => Some(raw.clone()),
            Some(_) => None,
            // As in Beats, cloud.id alone enables the Elasticsearch output.
            None if cloud_id => Some(toml::Value::Table(Default::default())),
            None => None,
        };
        if let Some(raw) = es_raw {
            let mut others: Vec<&str> = on
                .iter()
                .map(|(n, _)| n.trim_start_matches("output."))
                .collect();
            if self.logstash.as_ref().is_some_and(enabled) {
                others.push("logstash");
            }
            let es = crate::output::elasticsearch::EsOutput::from_raw(
                &raw,
                self.cloud.as_ref(),
                &others,
            )?;
            on.push((
                "output.elasticsearch",
                OutputKind::Elasticsearch(Box::new(es)),
            ));
        }
        if let Some(raw) = self.logstash.as_ref().filter(|r| enabled(r)) {
            let l: crate::output::logstash::LogstashConfig = typed(raw.clone(), "output.logstash")?;
            l.validate()?;
            on.push(("output.logstash", OutputKind::Logstash(Box::new(l))));
        }
        match on.len() {
            0 => Err(ConfigError::new(
                "output",
                "no output is enabled; add one section such as [output.console] or [output.file] with path = \"...\"",
            )),
            1 => Ok(on.pop().expect("one element").1),
            _ => Err(ConfigError::new(
                "output",
                format!(
                    "only one output may be enabled, found {}; remove the others or set enabled = false",
                    on.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
}

/// One `[[inputs]]` entry, by `type`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum InputConfig {
    #[serde(rename = "filestream")]
    Filestream(Box<FilestreamConfig>),
    /// Kept raw until the system metrics input validates it.
    #[serde(rename = "system/metrics")]
    SystemMetrics(toml::Value),
    #[serde(rename = "journald")]
    Journald(Box<crate::input::journald::JournaldConfig>),
}

impl InputConfig {
    pub fn enabled(&self) -> bool {
        match self {
            InputConfig::Filestream(f) => f.enabled,
            InputConfig::SystemMetrics(v) => enabled(v),
            InputConfig::Journald(j) => j.enabled,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            InputConfig::Filestream(f) => &f.id,
            InputConfig::SystemMetrics(v) => v.get("id").and_then(|v| v.as_str()).unwrap_or(""),
            InputConfig::Journald(j) => &j.id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `agent.name`; defaults to the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tags added to every event (before each input's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Fields added to every event, under `fields` (or at the root with `fields_under_root`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fields_under_root: bool,
    #[serde(default)]
    pub path: PathConfig,
    #[serde(default, rename = "inputs", skip_serializing)]
    pub raw_inputs: Vec<toml::Value>,
    #[serde(skip_deserializing, rename = "inputs")]
    pub inputs: Vec<InputConfig>,
    /// Global processors, run after each input's own.
    #[serde(default)]
    pub processors: Vec<toml::Value>,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub registry: RegistryConfig,
    /// How long SIGTERM waits for in-flight events to be acked.
    #[serde(default = "Config::default_shutdown")]
    pub shutdown_timeout: Dur,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// `[http]` monitoring endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<toml::Value>,
    /// `[setup.*]` (Kibana connection, what to load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<toml::Value>,
    /// `[cloud] id, auth` for Elastic Cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<toml::Value>,
    /// `[search]` for `oxibeat search` (typed in `search::config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<toml::Value>,
    /// `[config.inputs]`: Filebeat's `filebeat.config.inputs`, a directory of input files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<external::ConfigSection>,
    /// The inputs read from `config.inputs.path` (after `inputs`).
    #[serde(skip)]
    pub dir_inputs: Vec<InputConfig>,
    /// What loading said about the file (Filebeat options translated, options without
    /// effect, unsupported options ignored): logged at startup.
    #[serde(skip)]
    pub notes: Vec<String>,
    /// The tree in oxibeat's layout before `${VAR}` expansion, without defaults (what
    /// `export config --format toml|yaml` writes).
    #[serde(skip)]
    pub source_tree: Option<toml::Value>,
}

/// How a configuration file is read.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Run without the Filebeat settings oxibeat does not implement (they are listed).
    pub ignore_unsupported: bool,
    /// `strict.perms`: refuse configuration files others can write.
    pub strict_perms: bool,
}

/// The syntax of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Toml,
    /// Filebeat's YAML layout (`filebeat.yml`).
    Yaml,
}

impl Syntax {
    /// By extension (`.yml`, `.yaml`, `.toml`), else by content: TOML if it parses as TOML.
    pub fn detect(path: &Path, text: &str) -> Syntax {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yml") | Some("yaml") => Syntax::Yaml,
            Some("toml") => Syntax::Toml,
            _ if text.parse::<toml::Table>().is_ok() => Syntax::Toml,
            _ => Syntax::Yaml,
        }
    }
}

impl Config {
    fn default_shutdown() -> Dur {
        Dur(std::time::Duration::from_secs(5))
    }

    /// The top-level `fields`, `fields_under_root` and `tags` go into every file input's
    /// events, as Beats adds them to every event (an input's own fields win; global tags
    /// come first).
    fn apply_global_fields(&mut self) {
        let mut global = serde_json::Map::new();
        if !self.fields.is_empty() {
            if self.fields_under_root {
                global.extend(self.fields.clone());
            } else {
                global.insert(
                    "fields".into(),
                    serde_json::Value::Object(self.fields.clone()),
                );
            }
        }
        for input in &mut self.inputs {
            if let InputConfig::Filestream(f) = input {
                f.global_fields = global.clone();
                if !self.tags.is_empty() {
                    let mut tags = self.tags.clone();
                    for t in f.tags.drain(..) {
                        if !tags.contains(&t) {
                            tags.push(t);
                        }
                    }
                    f.tags = tags;
                }
            }
        }
    }

    /// Top-level ranges serde cannot express (inputs and outputs check their own).
    fn validate(&self) -> Result<(), ConfigError> {
        if self.path.data.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "path.data",
                "must not be empty; give the directory for the registry (default \"./data\")",
            ));
        }
        self.queue.mem.validate()?;
        if !LOG_LEVELS.contains(&self.logging.level.as_str()) {
            return Err(ConfigError::new(
                "logging.level",
                format!(
                    "unknown level {:?}; allowed: {}",
                    self.logging.level,
                    LOG_LEVELS.join(", ")
                ),
            ));
        }
        self.logging.files.validate("logging.files")?;
        if self.logging.metrics.enabled && self.logging.metrics.period.0.is_zero() {
            return Err(ConfigError::new(
                "logging.metrics.period",
                "must be more than 0s (default 30s), or set logging.metrics.enabled = false",
            ));
        }
        Ok(())
    }

    /// `run` needs something to read: at least one enabled input (Filebeat refuses to start
    /// without inputs or modules too).
    pub fn check_inputs(&self) -> Result<(), ConfigError> {
        if self.all_inputs().any(InputConfig::enabled) {
            return Ok(());
        }
        let what = if self.all_inputs().next().is_none() {
            "no input is configured"
        } else {
            "every input has enabled = false"
        };
        Err(ConfigError::new(
            "inputs",
            format!(
                "{what}, so there is nothing to ship; add one, e.g. [[inputs]] type = \"filestream\", \
                 id = \"app\", paths = [\"/var/log/app/*.log\"] (or type = \"system/metrics\")"
            ),
        ))
    }

    /// `inputs`, then those of `config.inputs.path`.
    pub fn all_inputs(&self) -> impl Iterator<Item = &InputConfig> {
        self.inputs.iter().chain(self.dir_inputs.iter())
    }

    /// Read, override, expand and validate a configuration file.
    pub fn load(path: &Path, overrides: &[String]) -> Result<(Config, toml::Value), ConfigError> {
        Self::load_with(
            path,
            overrides,
            &|n| std::env::var(n).ok(),
            &LoadOptions::default(),
        )
    }

    /// Read, override, expand (`${NAME}` through `lookup`: keystore, credentials,
    /// environment) and validate a configuration file, TOML or Filebeat YAML
    /// (`Syntax::detect`), and the input files of `config.inputs`; with
    /// `opts.strict_perms`, refuse files others can write (`strict.perms`).
    pub fn load_with(
        path: &Path,
        overrides: &[String],
        lookup: &dyn Fn(&str) -> Option<String>,
        opts: &LoadOptions,
    ) -> Result<(Config, toml::Value), ConfigError> {
        if opts.strict_perms {
            perms::check_config(path).map_err(|e| ConfigError::new("", e.to_string()))?;
        }
        let text = read_config_file(path)?;
        let file = path.display().to_string();
        let (mut cfg, tree) = match Syntax::detect(path, &text) {
            Syntax::Toml => Self::from_str_with(&text, &file, overrides, lookup)?,
            Syntax::Yaml => {
                let dir = path.parent().unwrap_or(Path::new("."));
                Self::from_yaml_with(&text, &file, dir, overrides, lookup, opts)?
            }
        };
        cfg.dir_inputs = external::load(&cfg, path, lookup, opts)?;
        Ok((cfg, tree))
    }

    /// A Filebeat YAML configuration (`filebeat.yml`): read as Filebeat reads it, translated
    /// into oxibeat's model (`filebeat`), then typed and validated exactly as TOML is.
    /// `-E` overrides use Filebeat's key names; `${name}` resolves settings of the file
    /// (`${path.home}`) before environment variables, as go-ucfg does. Errors name the
    /// Filebeat key and its line.
    pub fn from_yaml_with(
        text: &str,
        file: &str,
        dir: &Path,
        overrides: &[String],
        lookup: &dyn Fn(&str) -> Option<String>,
        opts: &LoadOptions,
    ) -> Result<(Config, toml::Value), ConfigError> {
        let mut y = yaml::expand_dots(yaml::parse(text, file)?, "")?;
        for o in overrides {
            yaml::apply_override(&mut y, o)?;
        }
        let refs = y.clone();
        let resolve = |name: &str| -> Option<String> {
            let text_of = |k: &str| refs.get_path(k).and_then(yaml::Y::scalar_text);
            text_of(name)
                .or_else(|| filebeat_path(name, &text_of, dir))
                .or_else(|| lookup(name))
        };
        let config_dir = refs
            .get_path("path.config")
            .and_then(yaml::Y::scalar_text)
            .map(|p| {
                let mut v = toml::Value::String(p);
                let _ = source::expand_env(&mut v, "", &resolve);
                PathBuf::from(v.as_str().unwrap_or_default())
            })
            .unwrap_or_else(|| dir.to_path_buf());
        let t = filebeat::translate(&y, file, &config_dir, &resolve, opts.strict_perms)?;
        let mut tree = toml::Value::Table(t.tree.clone());
        let mut unsupported = t.unsupported.clone();
        let mut rounds = 0;
        let (mut cfg, effective) = loop {
            let err = match Self::from_tree(tree.clone(), &resolve) {
                Ok(done) => break done,
                Err(e) => e,
            };
            rounds += 1;
            if let Some(key) = unknown_field_key(&err) {
                let fb = t.filebeat_key(&key);
                match filebeat::classify(&fb) {
                    Some(reason) if rounds < 1000 => {
                        unsupported.push(filebeat::Unsupported { key: fb, reason });
                        source::remove_key(&mut tree, &key);
                        continue;
                    }
                    _ => {
                        let at = t.location(&fb);
                        return Err(ConfigError::new(
                            fb,
                            format!(
                                "unknown setting{at}; neither Filebeat nor oxibeat has it, check its spelling ({})",
                                err.message
                            ),
                        ));
                    }
                }
            }
            let fb = t.filebeat_key(&err.key);
            let at = t.location(&fb);
            return Err(ConfigError::new(fb, format!("{}{at}", err.message)));
        };
        if !unsupported.is_empty() {
            let list: Vec<String> = unsupported
                .iter()
                .map(|u| format!("{u}{}", t.location(&u.key)))
                .collect();
            if !opts.ignore_unsupported {
                return Err(ConfigError::new(
                    "",
                    format!(
                        "{} setting(s) that oxibeat does not support:\n  {}\nremove them, or run with --ignore-unsupported to run without them",
                        list.len(),
                        list.join("\n  ")
                    ),
                ));
            }
            for l in list {
                cfg.notes
                    .push(format!("ignored (--ignore-unsupported): {l}"));
            }
        }
        cfg.notes.splice(0..0, t.notes.iter().cloned());
        Ok((cfg, effective))
    }

    /// Like `load`, from text; `lookup` resolves `${VAR}`. Returns the typed config and the
    /// effective TOML tree (after overrides and expansion).
    pub fn from_str_with(
        text: &str,
        file: &str,
        overrides: &[String],
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Config, toml::Value), ConfigError> {
        let mut tree = source::parse(text, file)?;
        for o in overrides {
            source::apply_override(&mut tree, o)?;
        }
        Self::from_tree(tree, lookup)
    }

    /// The common end of both syntaxes: a TOML tree in oxibeat's layout, expanded, typed and
    /// validated.
    pub fn from_tree(
        mut tree: toml::Value,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Config, toml::Value), ConfigError> {
        // Filebeat's default: path.data is <path.home>/data.
        if let Some(path) = tree.get_mut("path").and_then(toml::Value::as_table_mut) {
            if let (Some(toml::Value::String(home)), false) =
                (path.get("home").cloned(), path.contains_key("data"))
            {
                path.insert("data".into(), toml::Value::String(format!("{home}/data")));
            }
        }
        let unexpanded = tree.clone();
        source::expand_env(&mut tree, "", lookup)?;
        let mut cfg: Config = typed(tree.clone(), "")?;
        cfg.source_tree = Some(unexpanded);
        cfg.output.cloud = cfg.cloud.clone();
        cfg.validate()?;
        cfg.inputs = parse_inputs(&cfg.raw_inputs)?;
        cfg.apply_global_fields();
        cfg.queue.validate(&tree)?;
        if let Some(http) = &cfg.http {
            crate::monitoring::http::parse_config(http)?;
        }
        // The output is checked by whoever needs one (`run`, `test`): `setup` does not.
        crate::processors::build(&cfg.processors, "processors")?;
        Ok((cfg, tree))
    }
}

/// `path.data` of a configuration text before `${NAME}` can be resolved through the keystore
/// (which lives there): after `overrides`, environment variables expanded; else
/// `<path.home>/data` as Filebeat's default; `./data` when neither is set or the text does not parse.
pub fn path_data_hint(text: &str, syntax: Syntax, overrides: &[String]) -> PathBuf {
    let env = |n: &str| std::env::var(n).ok();
    let expand = |data: Option<toml::Value>, settings: &LookupFn<'_>| {
        let mut data = data.unwrap_or(toml::Value::String("./data".into()));
        let _ = source::expand_env(&mut data, "path.data", settings);
        PathBuf::from(data.as_str().unwrap_or("./data"))
    };
    match syntax {
        Syntax::Toml => {
            let mut tree =
                source::parse(text, "").unwrap_or(toml::Value::Table(Default::default()));
            for o in overrides {
                let _ = source::apply_override(&mut tree, o);
            }
            let path = tree.get("path");
            let data = path.and_then(|p| p.get("data")).cloned().or_else(|| {
                let home = path?.get("home")?.as_str()?;
                Some(toml::Value::String(format!("{home}/data")))
            });
            expand(data, &env)
        }
        Syntax::Yaml => match yaml::parse(text, "").and_then(|y| yaml::expand_dots(y, "")) {
            Ok(mut y) => {
                for o in overrides {
                    let _ = yaml::apply_override(&mut y, o);
                }
                let text_of = |k: &str| y.get_path(k).and_then(yaml::Y::scalar_text);
                let here = Path::new(".");
                // `${path.home}` and the file's other settings, then the environment, as
                // go-ucfg resolves them.
                let settings = |n: &str| {
                    text_of(n)
                        .or_else(|| filebeat_path(n, &text_of, here))
                        .or_else(|| env(n))
                };
                let data = filebeat_path("path.data", &text_of, here).map(toml::Value::String);
                expand(data, &settings)
            }
            Err(_) => expand(None, &env),
        },
    }
}

/// A `path.*` setting as Filebeat resolves it: the value `set` has for it, else its default
/// (home: `.`; config: home, else `dir`, the configuration file's directory, where
/// `inputs.d/` is; data and logs: `<home>/data`, `<home>/logs`). None for other names.
pub(crate) fn filebeat_path(name: &str, set: &LookupFn<'_>, dir: &Path) -> Option<String> {
    let home = || set("path.home");
    let under_home = |sub: &str| format!("{}/{sub}", home().unwrap_or_else(|| ".".into()));
    Some(match name {
        "path.home" => home().unwrap_or_else(|| ".".into()),
        "path.config" => set(name)
            .or_else(home)
            .unwrap_or_else(|| dir.display().to_string()),
        "path.data" => set(name).unwrap_or_else(|| under_home("data")),
        "path.logs" => set(name).unwrap_or_else(|| under_home("logs")),
        _ => return None,
    })
}

/// The full key of an "unknown field" error (`inputs[0].close` + `inactiv`).
fn unknown_field_key(e: &ConfigError) -> Option<String> {
    let rest = e.message.strip_prefix("unknown field `")?;
    let name = &rest[..rest.find('`')?];
    Some(if e.key.is_empty() {
        name.to_string()
    } else if e.key == name || e.key.ends_with(&format!(".{name}")) {
        e.key.clone()
    } else {
        format!("{}.{name}", e.key)
    })
}

/// The largest configuration file read (a bigger one is not a configuration file).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The text of a configuration file: a regular file of at most 16 MiB, in UTF-8.
pub fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let bytes = crate::bounded::read(path, MAX_CONFIG_BYTES)
        .map_err(|e| ConfigError::new("", format!("cannot read config file {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::new(
            "",
            format!(
                "cannot read config file {}: not UTF-8 text (invalid byte at {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Deserialize `v` into `T`, naming the failing key path (prefixed with `prefix`). Strings are
/// read as numbers or booleans where `T` wants one (`lenient`), as Beats does after `${VAR}`.
pub fn typed<T: serde::de::DeserializeOwned>(
    v: toml::Value,
    prefix: &str,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(lenient::Lenient(v)).map_err(|e| {
        let inner = e.path().to_string();
        let key = match (prefix.is_empty(), inner == ".") {
            (true, _) => inner,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{inner}"),
        };
        ConfigError::new(key, e.into_inner().to_string())
    })
}

fn parse_inputs(raw: &[toml::Value]) -> Result<Vec<InputConfig>, ConfigError> {
    parse_inputs_in(raw, "inputs")
}

/// The inputs of `raw`, their key paths starting with `prefix` (`inputs`).
pub(crate) fn parse_inputs_in(
    raw: &[toml::Value],
    prefix: &str,
) -> Result<Vec<InputConfig>, ConfigError> {
    let mut out = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for (i, v) in raw.iter().enumerate() {
        let key = format!("{prefix}[{i}]");
        let mut table = v
            .as_table()
            .cloned()
            .ok_or_else(|| ConfigError::new(&key, "each input must be a table ([[inputs]])"))?;
        let kind = match table.remove("type") {
            Some(toml::Value::String(s)) => s,
            Some(_) => return Err(ConfigError::new(format!("{key}.type"), "must be a string")),
            None => {
                return Err(ConfigError::new(
                    format!("{key}.type"),
                    "missing; set type = \"filestream\", \"journald\" or \"system/metrics\"",
                ))
            }
        };
        let input = match kind.as_str() {
            "filestream" => {
                let f: FilestreamConfig = typed(toml::Value::Table(table), &key)?;
                f.validate(&key)?;
                InputConfig::Filestream(Box::new(f))
            }
            "system/metrics" => {
                crate::input::system::parse_config(v, &key)?;
                InputConfig::SystemMetrics(v.clone())
            }
            "journald" => journald_input(table, &key)?,
            other => {
                return Err(ConfigError::new(
                    format!("{key}.type"),
                    format!(
                        "unknown input type {other:?}; use \"filestream\", \"journald\" or \"system/metrics\""
                    ),
                ))
            }
        };
        let id = input.id().to_string();
        if id.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.id"),
                "every input needs a non-empty, unique id (it keys the registry)",
            ));
        }
        if let Some(prev) = ids.insert(id.clone(), i) {
            return Err(ConfigError::new(
                format!("{key}.id"),
                format!(
                    "duplicate input id {id:?} (also used by {prefix}[{prev}]); ids must be unique"
                ),
            ));
        }
        out.push(input);
    }
    Ok(out)
}

/// A `type = "journald"` input (`table` without its `type`).
fn journald_input(table: toml::Table, key: &str) -> Result<InputConfig, ConfigError> {
    let j: crate::input::journald::JournaldConfig = typed(toml::Value::Table(table), key)?;
    j.validate(key)?;
    crate::processors::build(&j.processors, &format!("{key}.processors"))?;
    Ok(InputConfig::Journald(Box::new(j)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let (c, _) = Config::from_str_with(text, "test.toml", &[], &|_| None)?;
        c.output.selected()?;
        Ok(c)
    }

    const OUT: &str = "[output.console]\n";

    #[test]
    fn yaml_config_inputs_with_reload_get_an_absolute_path() {
        let text = "filebeat.config.inputs:\n  path: inputs.d/*.yml\n  reload.enabled: true\noutput.console.enabled: true\n";
        let (cfg, _) = Config::from_yaml_with(
            text,
            "conf/filebeat.yml",
            Path::new("conf"),
            &[],
            &|_| None,
            &LoadOptions::default(),
        )
        .unwrap();
        let dir = external::section(&cfg).expect("config.inputs");
        let p = PathBuf::from(&dir.path);
        assert!(p.is_absolute(), "{p:?}");
        assert!(p.ends_with("conf/inputs.d/*.yml"), "{p:?}");
        // Anchored once, not at the main file's directory again.
        assert_eq!(dir.pattern(Path::new("conf/filebeat.yml")), p);
        assert_eq!(dir.reload.period.0, std::time::Duration::from_secs(10));
    }

    #[test]
    fn path_data_hint_reads_both_syntaxes_before_secrets() {
        let none: Vec<String> = Vec::new();
        let toml_data = "[path]\ndata = \"/var/lib/x\"\n";
        assert_eq!(
            path_data_hint(toml_data, Syntax::Toml, &none),
            PathBuf::from("/var/lib/x")
        );
        let toml_home = "[path]\nhome = \"/opt/ox\"\n";
        assert_eq!(
            path_data_hint(toml_home, Syntax::Toml, &none),
            PathBuf::from("/opt/ox/data")
        );
        assert_eq!(
            path_data_hint("path.data: /var/lib/filebeat\n", Syntax::Yaml, &none),
            PathBuf::from("/var/lib/filebeat")
        );
        assert_eq!(
            path_data_hint("path:\n  home: /usr/share/filebeat\n", Syntax::Yaml, &none),
            PathBuf::from("/usr/share/filebeat/data")
        );
        let over = vec!["path.data=\"/elsewhere\"".to_string()];
        assert_eq!(
            path_data_hint("path.data: /var/lib/filebeat\n", Syntax::Yaml, &over),
            PathBuf::from("/elsewhere")
        );
        assert_eq!(
            path_data_hint("not: [valid", Syntax::Yaml, &none),
            PathBuf::from("./data")
        );
        assert_eq!(
            path_data_hint(
                "path.home: /opt/fb\npath.data: ${path.home}/state\n",
                Syntax::Yaml,
                &none
            ),
            PathBuf::from("/opt/fb/state")
        );
    }

    #[test]
    fn issue_example_loads() {
        let text = r#"
[path]
data = "./data"

[[inputs]]
type = "filestream"
id = "app"
paths = ["/var/log/app/*.log", "/var/log/**/*.log"]
exclude_files = ['\.gz$']
include_lines = ['ERROR', 'WARN']
exclude_lines = ['^DEBUG']
file_identity = "fingerprint"
message_max_bytes = 10485760
fields = { env = "prod" }
fields_under_root = false
tags = ["web"]
prospector.scanner.check_interval = "5s"
close.on_state_change.inactive = "1m"
close.on_state_change.removed = true
clean_removed = true
ignore_older = "48h"
harvester_limit = 10
encoding = "utf-16le-bom"
line_terminator = "auto"
start_position = "end"
[[inputs.parsers]]
multiline = { type = "pattern", pattern = '^\[', negate = true, match = "after" }
[[inputs.parsers]]
ndjson = { target = "", add_error_key = true }

[[processors]]
add_fields = { target = "project", fields = { name = "oxibeat" } }

[output.file]
path = "./data/out"

[queue.mem]
events = 4096
max_bytes = "64MiB"
[registry]
flush = "1s"
"#;
        let c = load(text).unwrap();
        assert_eq!(c.inputs.len(), 1);
        assert_eq!(c.queue.mem.max_bytes.0, 64 << 20);
        match &c.inputs[0] {
            InputConfig::Filestream(f) => {
                assert_eq!(f.prospector.scanner.check_interval.0.as_secs(), 5);
                assert_eq!(f.parsers.len(), 2);
            }
            _ => panic!("wrong input"),
        }
    }

    #[test]
    fn unknown_key_names_its_path() {
        let e = load(&format!(
            "[[inputs]]\ntype = \"filestream\"\nid = \"a\"\npaths = [\"/x\"]\nclose.on_state_change.inactiv = \"1s\"\n{OUT}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("inputs[0].close.on_state_change"), "{e}");
        assert!(e.contains("inactiv"), "{e}");
    }

    #[test]
    fn bad_regex_names_its_key() {
        let e = load(&format!(
            "[[inputs]]\ntype = \"filestream\"\nid = \"a\"\npaths = [\"/x\"]\ninclude_lines = ['ok', '(unclosed']\n{OUT}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("inputs[0].include_lines[1]"), "{e}");
        assert!(e.contains("regular expression"), "{e}");
    }

    #[test]
    fn duplicate_ids_rejected() {
        let one = "[[inputs]]\ntype = \"filestream\"\nid = \"a\"\npaths = [\"/x\"]\n";
        let e = load(&format!("{one}{one}{OUT}")).unwrap_err().to_string();
        assert!(e.contains("duplicate input id \"a\""), "{e}");
    }

    #[test]
    fn exactly_one_output() {
        let e = load("").unwrap_err().to_string();
        assert!(e.contains("no output is enabled"), "{e}");
        let e = load("[output.console]\n[output.discard]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("only one output"), "{e}");
        assert!(load("[output.console]\n[output.discard]\nenabled = false\n").is_ok());
    }
}
