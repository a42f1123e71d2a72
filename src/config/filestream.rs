//! `type = "filestream"` input options, named as in Filebeat.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::units::Dur;
use super::{yes, ConfigError, Pattern};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileIdentity {
    #[default]
    Fingerprint,
    Native,
    Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    #[default]
    Beginning,
    End,
}

/// Filebeat's `line_terminator` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LineTerminator {
    /// `\n`, with a preceding `\r` stripped.
    #[default]
    Auto,
    LineFeed,
    VerticalTab,
    FormFeed,
    CarriageReturn,
    CarriageReturnLineFeed,
    NextLine,
    LineSeparator,
    ParagraphSeparator,
    NullTerminator,
}

impl LineTerminator {
    /// The terminator as UTF-8 bytes (after decoding the file's encoding).
    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineTerminator::Auto | LineTerminator::LineFeed => b"\n",
            LineTerminator::VerticalTab => b"\x0b",
            LineTerminator::FormFeed => b"\x0c",
            LineTerminator::CarriageReturn => b"\r",
            LineTerminator::CarriageReturnLineFeed => b"\r\n",
            LineTerminator::NextLine => "\u{85}".as_bytes(),
            LineTerminator::LineSeparator => "\u{2028}".as_bytes(),
            LineTerminator::ParagraphSeparator => "\u{2029}".as_bytes(),
            LineTerminator::NullTerminator => b"\0",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub offset: u64,
    #[serde(default = "FingerprintConfig::default_length")]
    pub length: u64,
}

impl FingerprintConfig {
    fn default_length() -> u64 {
        1024
    }
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        FingerprintConfig {
            enabled: true,
            offset: 0,
            length: Self::default_length(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerConfig {
    #[serde(default = "ScannerConfig::default_interval")]
    pub check_interval: Dur,
    #[serde(default)]
    pub fingerprint: FingerprintConfig,
    #[serde(default = "yes")]
    pub symlinks: bool,
}

impl ScannerConfig {
    fn default_interval() -> Dur {
        Dur(Duration::from_secs(10))
    }
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig {
            check_interval: Self::default_interval(),
            fingerprint: FingerprintConfig::default(),
            symlinks: true,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProspectorConfig {
    #[serde(default)]
    pub scanner: ScannerConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnStateChange {
    /// Close a file after this long without new data (it is reopened when it changes).
    #[serde(default = "OnStateChange::default_inactive")]
    pub inactive: Dur,
    /// Close a file once it is removed (after reading it to EOF).
    #[serde(default = "yes")]
    pub removed: bool,
    /// Close a file once it is renamed (after reading it to EOF).
    #[serde(default)]
    pub renamed: bool,
}

impl OnStateChange {
    fn default_inactive() -> Dur {
        Dur(Duration::from_secs(300))
    }
}

impl Default for OnStateChange {
    fn default() -> Self {
        OnStateChange {
            inactive: Self::default_inactive(),
            removed: true,
            renamed: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseReader {
    /// Close a file as soon as EOF is reached.
    #[serde(default)]
    pub on_eof: bool,
    /// Close a file this long after it was opened, whatever its state (0 = never).
    #[serde(default)]
    pub after_interval: Dur,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseConfig {
    #[serde(default)]
    pub on_state_change: OnStateChange,
    #[serde(default)]
    pub reader: CloseReader,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// First wait after EOF when no change notification arrives.
    #[serde(default = "BackoffConfig::default_init")]
    pub init: Dur,
    #[serde(default = "BackoffConfig::default_max")]
    pub max: Dur,
}

impl BackoffConfig {
    fn default_init() -> Dur {
        Dur(Duration::from_secs(1))
    }
    fn default_max() -> Dur {
        Dur(Duration::from_secs(10))
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            init: Self::default_init(),
            max: Self::default_max(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MultilineType {
    #[default]
    Pattern,
    Count,
    WhilePattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MultilineMatch {
    #[default]
    After,
    Before,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    #[serde(default, rename = "type")]
    pub kind: MultilineType,
    #[serde(default)]
    pub pattern: Option<Pattern>,
    #[serde(default)]
    pub negate: bool,
    #[serde(default, rename = "match")]
    pub match_: MultilineMatch,
    #[serde(default = "MultilineConfig::default_max_lines")]
    pub max_lines: usize,
    #[serde(default = "MultilineConfig::default_timeout")]
    pub timeout: Dur,
    /// For `type = "count"`: how many lines make one event.
    #[serde(default)]
    pub count_lines: usize,
    /// Ends the current event when a line matches (pattern type).
    #[serde(default)]
    pub flush_pattern: Option<Pattern>,
    #[serde(default)]
    pub skip_newline: bool,
}

impl MultilineConfig {
    fn default_max_lines() -> usize {
        500
    }
    fn default_timeout() -> Dur {
        Dur(Duration::from_secs(5))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonConfig {
    /// Where decoded keys go; "" puts them at the root of the event.
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub overwrite_keys: bool,
    #[serde(default)]
    pub expand_keys: bool,
    #[serde(default)]
    pub add_error_key: bool,
    /// Key holding the text line, used for multiline and line filtering after decoding.
    #[serde(default)]
    pub message_key: Option<String>,
    /// Key whose value becomes `@metadata._id`.
    #[serde(default)]
    pub document_id: Option<String>,
    #[serde(default)]
    pub ignore_decoding_error: bool,
}

/// Which container runtime wrote the file (`container` parser `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContainerFormat {
    /// Docker `json-file` when the line starts with `{`, CRI otherwise (Filebeat's `auto`).
    #[default]
    Auto,
    /// Docker's `json-file` logging driver (`json-file` is accepted as a synonym).
    #[serde(alias = "json-file")]
    Docker,
    /// The CRI format of containerd and CRI-O (`<time> <stream> <P|F> <message>`).
    Cri,
}

/// Which output stream of the container to keep (`container` parser `stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStream {
    #[default]
    All,
    Stdout,
    Stderr,
}

/// Filebeat's `container` parser: decodes Docker json-file and CRI lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    #[serde(default)]
    pub stream: ContainerStream,
    #[serde(default)]
    pub format: ContainerFormat,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ParserConfig {
    Multiline(MultilineConfig),
    Ndjson(NdjsonConfig),
    Container(ContainerConfig),
}

/// Filebeat's `take_over`: continue the registry states of other inputs instead of reading
/// their files again. Without `from_ids`, the states of the `log` input (`filebeat::logs::`)
/// of the files this input matches; with `from_ids`, those of these filestream inputs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeOverConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilestreamConfig {
    pub id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub paths: Vec<String>,
    #[serde(default)]
    pub exclude_files: Vec<Pattern>,
    #[serde(default)]
    pub include_files: Vec<Pattern>,
    #[serde(default)]
    pub include_lines: Vec<Pattern>,
    #[serde(default)]
    pub exclude_lines: Vec<Pattern>,
    #[serde(default)]
    pub file_identity: FileIdentity,
    #[serde(default = "FilestreamConfig::default_max_bytes")]
    pub message_max_bytes: usize,
    #[serde(default = "FilestreamConfig::default_buffer")]
    pub buffer_size: usize,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub fields_under_root: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub parsers: Vec<ParserConfig>,
    #[serde(default)]
    pub processors: Vec<toml::Value>,
    #[serde(default)]
    pub prospector: ProspectorConfig,
    #[serde(default)]
    pub close: CloseConfig,
    #[serde(default = "yes")]
    pub clean_removed: bool,
    /// Forget files not updated for this long (0 = never).
    #[serde(default)]
    pub clean_inactive: Dur,
    /// Skip files last modified longer ago than this (0 = never).
    #[serde(default)]
    pub ignore_older: Dur,
    /// At most this many files read at once (0 = no limit).
    #[serde(default)]
    pub harvester_limit: usize,
    #[serde(default = "FilestreamConfig::default_encoding")]
    pub encoding: String,
    #[serde(default)]
    pub line_terminator: LineTerminator,
    #[serde(default)]
    pub start_position: StartPosition,
    #[serde(default)]
    pub backoff: BackoffConfig,
    #[serde(default, skip_serializing_if = "TakeOverConfig::is_off")]
    pub take_over: TakeOverConfig,
    /// `log.file.device_id`, `inode` and `fingerprint` in events (Filebeat 9.5's option);
    /// `false` writes only `log.file.path`, as the log input did.
    #[serde(default = "yes")]
    pub include_file_identity: bool,
    /// `input.type` written into events (default `filestream`): a translated `log` or
    /// `container` input keeps its Filebeat value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<String>,
    /// Fields of the top-level `fields`/`tags` settings, placed as they go into events
    /// (set when the configuration is loaded).
    #[serde(skip)]
    pub global_fields: Map<String, Value>,
}

impl TakeOverConfig {
    fn is_off(&self) -> bool {
        !self.enabled && self.from_ids.is_empty()
    }
}

impl FilestreamConfig {
    fn default_max_bytes() -> usize {
        10 * 1024 * 1024
    }
    fn default_buffer() -> usize {
        64 * 1024
    }
    fn default_encoding() -> String {
        "utf-8".into()
    }

    /// Checks that serde cannot express; `key` is this input's key path.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.paths.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.paths"),
                "at least one path or glob is required",
            ));
        }
        for (i, p) in self.paths.iter().enumerate() {
            if let Err(e) = crate::input::filestream::scan::Glob::new(p) {
                return Err(ConfigError::new(
                    format!("{key}.paths[{i}]"),
                    format!("invalid glob: {e}"),
                ));
            }
        }
        if crate::input::filestream::encoding::Decoder::new(&self.encoding).is_none() {
            return Err(ConfigError::new(
                format!("{key}.encoding"),
                format!(
                    "unknown encoding {:?}; use utf-8, plain, utf-16le, utf-16be, utf-16le-bom, utf-16be-bom, latin1 or another WHATWG label",
                    self.encoding
                ),
            ));
        }
        let clean = self.clean_inactive.0;
        if !clean.is_zero() {
            let floor = self.ignore_older.0 + self.prospector.scanner.check_interval.0;
            if self.ignore_older.0.is_zero() || clean <= floor {
                return Err(ConfigError::new(
                    format!("{key}.clean_inactive"),
                    "must be greater than ignore_older + prospector.scanner.check_interval (and ignore_older must be set), or forgotten files would be read again from the start",
                ));
            }
        }
        if self.message_max_bytes == 0 {
            return Err(ConfigError::new(
                format!("{key}.message_max_bytes"),
                "0 is too small; allowed: 1 byte or more (default 10485760)",
            ));
        }
        for (i, p) in self.parsers.iter().enumerate() {
            if let ParserConfig::Multiline(m) = p {
                let k = format!("{key}.parsers[{i}].multiline");
                match m.kind {
                    MultilineType::Pattern | MultilineType::WhilePattern if m.pattern.is_none() => {
                        return Err(ConfigError::new(
                            format!("{k}.pattern"),
                            "required for multiline type pattern and while_pattern",
                        ))
                    }
                    MultilineType::Count if m.count_lines == 0 => {
                        return Err(ConfigError::new(
                            format!("{k}.count_lines"),
                            "required (greater than 0) for multiline type count",
                        ))
                    }
                    _ => {}
                }
            }
        }
        self.validate_ranges(key)?;
        crate::processors::build(&self.processors, &format!("{key}.processors"))?;
        if let Some(t) = &self.input_type {
            if !matches!(t.as_str(), "filestream" | "log" | "container") {
                return Err(ConfigError::new(
                    format!("{key}.input_type"),
                    format!("{t:?} is not an input type of these events; use filestream, log or container"),
                ));
            }
        }
        for (i, from) in self.take_over.from_ids.iter().enumerate() {
            if from == &self.id {
                return Err(ConfigError::new(
                    format!("{key}.take_over.from_ids[{i}]"),
                    "names this input itself; list the ids of the inputs whose states to continue",
                ));
            }
        }
        Ok(())
    }

    /// Numbers and durations that would make the input read nothing, or spin.
    fn validate_ranges(&self, key: &str) -> Result<(), ConfigError> {
        use super::at_least;
        let scanner = &self.prospector.scanner;
        if scanner.check_interval.0.is_zero() {
            return Err(ConfigError::new(
                format!("{key}.prospector.scanner.check_interval"),
                "must be more than 0s (default 10s)",
            ));
        }
        if scanner.fingerprint.enabled {
            // Filebeat (fswatch.go): "fingerprint size %d bytes cannot be smaller than 64 bytes".
            at_least(
                &format!("{key}.prospector.scanner.fingerprint.length"),
                scanner.fingerprint.length,
                64,
                " bytes",
            )?;
            if scanner.fingerprint.length > 1 << 20 {
                return Err(ConfigError::new(
                    format!("{key}.prospector.scanner.fingerprint.length"),
                    format!(
                        "{} bytes is too large; allowed: 64 bytes to 1 MiB (default 1024)",
                        scanner.fingerprint.length
                    ),
                ));
            }
        }
        at_least(
            &format!("{key}.buffer_size"),
            self.buffer_size as u64,
            1,
            " bytes",
        )?;
        let b = &self.backoff;
        if b.init.0.is_zero() || b.max.0.is_zero() {
            let which = if b.init.0.is_zero() { "init" } else { "max" };
            return Err(ConfigError::new(
                format!("{key}.backoff.{which}"),
                "must be more than 0s (defaults: init 1s, max 10s)",
            ));
        }
        if b.max.0 < b.init.0 {
            return Err(ConfigError::new(
                format!("{key}.backoff.max"),
                "must be at least backoff.init",
            ));
        }
        for (i, p) in self.parsers.iter().enumerate() {
            if let ParserConfig::Multiline(m) = p {
                at_least(
                    &format!("{key}.parsers[{i}].multiline.max_lines"),
                    m.max_lines as u64,
                    1,
                    "",
                )?;
            }
        }
        Ok(())
    }
}
