//! A `filebeat.yml` in oxibeat's configuration model: Filebeat's layout and option names
//! translated into the TOML tree that `Config` reads, so one model serves both syntaxes and
//! YAML gets the same typed validation as TOML.
//!
//! What changes on the way (the full table is in `filebeat-compat/README.md`):
//! - `filebeat.inputs` → `inputs`, `filebeat.registry.flush` → `registry.flush`,
//!   `filebeat.shutdown_timeout` → `shutdown_timeout`; `filebeat.config.inputs` files
//!   (`inputs.d/*.yml`) are read and their inputs appended.
//! - `file_identity.fingerprint: ~` → `file_identity = "fingerprint"`;
//!   `prospector.scanner.exclude_files` → `exclude_files`.
//! - `type: log` and `type: container` run on filestream with their options translated
//!   (`LOG_RENAMES`), `json.*`/`multiline.*`/`docker-json.*` turned into parsers, and
//!   `take_over` on, so the log input's registry states are continued, not re-sent.
//!
//! Each translated key is noted (logged at startup); keys with no effect in oxibeat are
//! noted too. Keys oxibeat does not implement are collected as `Unsupported` with the reason.
//! Every oxibeat key path is mapped back to the Filebeat key it came from, so errors name
//! what the user wrote.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::yaml::{self, Node, Y};
use super::ConfigError;

/// A key of the Filebeat configuration that oxibeat does not implement.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    /// The Filebeat key path (`filebeat.inputs[0].pipeline`).
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// The result of translating a Filebeat configuration.
#[derive(Debug, Default)]
pub struct Translated {
    /// oxibeat's TOML tree (strings still hold their `${...}`).
    pub tree: toml::Table,
    /// (oxibeat key path, Filebeat key path), for naming Filebeat keys in errors.
    pub paths: Vec<(String, String)>,
    /// One line per translated option or option without effect, logged at startup.
    pub notes: Vec<String>,
    pub unsupported: Vec<Unsupported>,
    /// Filebeat key path → (file, line), for errors.
    pub lines: HashMap<String, (String, usize)>,
}

impl Translated {
    /// The Filebeat key path that an oxibeat key path came from.
    pub fn filebeat_key(&self, key: &str) -> String {
        let mut best: Option<&(String, String)> = None;
        for pair in &self.paths {
            let p = pair.0.as_str();
            let hit = key == p
                || (key.starts_with(p)
                    && matches!(key.as_bytes().get(p.len()), Some(b'.') | Some(b'[')));
            if hit && best.map_or(true, |(b, _)| b.len() < p.len()) {
                best = Some(pair);
            }
        }
        match best {
            Some((toml, fb)) => format!("{fb}{}", &key[toml.len()..]),
            None => key.to_string(),
        }
    }

    /// ` (filebeat.yml line 12)` for a Filebeat key, or its nearest parent that has a line.
    pub fn location(&self, fb_key: &str) -> String {
        let mut k = fb_key.to_string();
        loop {
            if let Some((file, line)) = self.lines.get(&k) {
                if *line > 0 {
                    return format!(" ({file} line {line})");
                }
            }
            match k.rfind(['.', '[']) {
                Some(i) => k.truncate(i),
                None => return String::new(),
            }
        }
    }
}

/// Options of the log input and their filestream names (Elastic's migration table).
pub const LOG_RENAMES: &[(&str, &str)] = &[
    ("harvester_buffer_size", "buffer_size"),
    ("max_bytes", "message_max_bytes"),
    ("close_inactive", "close.on_state_change.inactive"),
    ("close_removed", "close.on_state_change.removed"),
    ("close_renamed", "close.on_state_change.renamed"),
    ("close_eof", "close.reader.on_eof"),
    ("close_timeout", "close.reader.after_interval"),
    ("scan_frequency", "prospector.scanner.check_interval"),
    ("symlinks", "prospector.scanner.symlinks"),
    ("backoff", "backoff.init"),
    ("max_backoff", "backoff.max"),
];

/// Log input options with the same name and meaning in filestream.
const LOG_SAME: &[&str] = &[
    "id",
    "enabled",
    "paths",
    "encoding",
    "exclude_lines",
    "include_lines",
    "exclude_files",
    "fields",
    "fields_under_root",
    "tags",
    "processors",
    "harvester_limit",
    "ignore_older",
    "clean_inactive",
    "clean_removed",
    "line_terminator",
    "file_identity",
];

/// `json.*` of the log input → options of the `ndjson` parser.
const JSON_RENAMES: &[(&str, &str)] = &[
    ("overwrite_keys", "overwrite_keys"),
    ("add_error_key", "add_error_key"),
    ("message_key", "message_key"),
    ("document_id", "document_id"),
    ("ignore_decoding_error", "ignore_decoding_error"),
    ("expand_keys", "expand_keys"),
];

/// Keys accepted with no effect, and why (noted at startup).
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "allow_deprecated_use",
        "oxibeat runs log and container inputs on filestream",
    ),
    (
        "backoff_factor",
        "oxibeat doubles the wait, up to backoff.max",
    ),
    ("recursive_glob.enabled", "`**` always matches any depth"),
    (
        "prospector.scanner.recursive_glob",
        "`**` always matches any depth",
    ),
    (
        "close.on_state_change.check_interval",
        "state changes are checked on every read",
    ),
    ("docker-json.cri_flags", "CRI tags (P/F) are always read"),
    ("docker-json.partial", "split lines are always joined"),
];

/// Known Filebeat keys that oxibeat does not implement, by key suffix, and why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("pipeline", "not implemented per input: set output.elasticsearch.pipeline, or pipelines with `when` conditions (e.g. on input.id or fields)"),
    ("index", "not implemented per input: set output.elasticsearch.index, or indices with `when` conditions"),
    ("keep_null", "not implemented: fields with null values are dropped"),
    ("publisher_pipeline.disable_host", "not implemented: host.name is always added"),
    ("ignore_inactive", "not implemented; use ignore_older or start_position = \"end\""),
    ("prospector.scanner.resend_on_touch", "not implemented"),
    ("file_identity.inode_marker", "not implemented; use file_identity native or fingerprint"),
    ("delete", "not implemented: oxibeat never deletes the files it reads"),
    ("compression", "not implemented: gzip files are not decompressed"),
    ("rotation", "not implemented: rotated files are followed by their identity"),
    ("scan.sort", "not implemented"),
    ("scan.order", "not implemented"),
    ("harvester_limit_per_input", "not implemented"),
    ("service.type", "not implemented"),
    ("tail_files_after", "not implemented"),
];

/// Top-level Filebeat settings that oxibeat does not implement.
const UNSUPPORTED_TOP: &[(&str, &str)] = &[
    ("filebeat.modules", "not implemented: Filebeat modules; configure filestream inputs and ingest pipelines instead"),
    ("filebeat.autodiscover", "not implemented: autodiscover; list the container log paths (/var/log/containers/*.log) in a container input"),
    ("filebeat.overwrite_pipelines", "not applicable: oxibeat loads ingest pipelines with `oxibeat setup --pipelines`"),
    ("filebeat.registry.file_permissions", "not implemented: registry files are written with mode 0600"),
    ("filebeat.registry.migrate_file", "not implemented: registries older than 7.9 are not migrated"),
    ("filebeat.registry.backend", "not implemented: the registry is always Filebeat's memlog store"),
    ("filebeat.registry.bbolt", "not implemented: the registry is always Filebeat's memlog store"),
    ("monitoring", "not implemented: monitoring data is served on the http endpoint (/stats, /metrics)"),
    ("xpack", "not implemented"),
    ("instrumentation", "not implemented"),
    ("timestamp.precision", "not implemented: @timestamp has millisecond precision"),
    ("migration", "not implemented"),
    ("features", "not implemented"),
    ("keystore", "not implemented in this build: use ${VAR} from the environment"),
    ("output.redis", "not implemented: use output.kafka or output.logstash"),
];

/// Top-level settings accepted with no effect.
const NO_EFFECT_TOP: &[(&str, &str)] = &[
    (
        "max_procs",
        "not applicable: the Go scheduler's limit; oxibeat's threads are set by its runtime",
    ),
    ("seccomp", "not applicable: Filebeat's Go seccomp policy"),
    ("gc_percent", "not applicable: the Go garbage collector"),
    (
        "filebeat.registry.type",
        "the registry is always Filebeat's memlog store",
    ),
    (
        "filebeat.registry.cleanup_interval",
        "forgotten files are removed from the registry on every scan",
    ),
    ("filebeat.config.modules", "no module file is enabled"),
    (
        "output.kafka.version",
        "librdkafka negotiates the protocol version with the broker",
    ),
    (
        "output.kafka.worker",
        "not applicable: Filebeat's Go workers",
    ),
    (
        "output.kafka.channel_buffer_size",
        "not applicable: librdkafka's own queue is bounded by output.kafka.queue",
    ),
    (
        "output.logstash.worker",
        "oxibeat uses one connection per host",
    ),
];

/// Filebeat option names (from filebeat.reference.yml) by section: an unknown key in one of
/// these is "not implemented", any other unknown key is misspelt.
const FILEBEAT_OPTIONS: &[(&str, &[&str])] = &[
    (
        "output.kafka",
        &[
            "hosts",
            "topic",
            "topics",
            "key",
            "partition",
            "username",
            "password",
            "sasl.mechanism",
            "codec",
            "version",
            "metadata",
            "max_retries",
            "backoff",
            "bulk_max_size",
            "bulk_flush_frequency",
            "timeout",
            "broker_timeout",
            "channel_buffer_size",
            "keep_alive",
            "compression",
            "compression_level",
            "max_message_bytes",
            "required_acks",
            "enable_krb5_fast",
            "kerberos",
            "client_id",
            "headers",
            "ssl",
            "worker",
            "retry",
            "escape_html",
            "queue",
        ],
    ),
    (
        "output.logstash",
        &[
            "hosts",
            "loadbalance",
            "worker",
            "pipelining",
            "compression_level",
            "bulk_max_size",
            "slow_start",
            "timeout",
            "ttl",
            "escape_html",
            "index",
            "backoff",
            "proxy_url",
            "proxy_use_local_resolver",
            "ssl",
            "max_retries",
            "queue",
        ],
    ),
    (
        "output.file",
        &[
            "path",
            "filename",
            "rotate_every_kb",
            "number_of_files",
            "permissions",
            "rotate_on_startup",
            "codec",
            "enabled",
            "queue",
        ],
    ),
    (
        "output.console",
        &["codec", "enabled", "bulk_max_size", "queue"],
    ),
    (
        "ssl",
        &[
            "enabled",
            "verification_mode",
            "supported_protocols",
            "cipher_suites",
            "certificate_authorities",
            "certificate",
            "key",
            "key_passphrase",
            "curve_types",
            "renegotiation",
            "ca_sha256",
            "ca_trusted_fingerprint",
            "restart_on_cert_change",
        ],
    ),
    ("queue", &["mem", "disk"]),
    ("queue.mem", &["events", "flush"]),
    (
        "logging",
        &[
            "level",
            "selectors",
            "to_stderr",
            "to_syslog",
            "to_eventlog",
            "to_files",
            "files",
            "metrics",
            "json",
            "ecs",
            "event_data",
            "with_fields",
        ],
    ),
    ("path", &["home", "config", "data", "logs"]),
    (
        "http",
        &[
            "enabled",
            "host",
            "port",
            "named_pipe",
            "pprof",
            "user",
            "security_descriptor",
        ],
    ),
    (
        "input",
        &[
            "id",
            "enabled",
            "paths",
            "encoding",
            "exclude_lines",
            "include_lines",
            "exclude_files",
            "include_files",
            "fields",
            "fields_under_root",
            "tags",
            "processors",
            "pipeline",
            "index",
            "keep_null",
            "publisher_pipeline",
            "harvester_limit",
            "ignore_older",
            "ignore_inactive",
            "clean_inactive",
            "clean_removed",
            "close",
            "prospector",
            "file_identity",
            "take_over",
            "parsers",
            "message_max_bytes",
            "buffer_size",
            "line_terminator",
            "backoff",
            "delete",
            "compression",
            "rotation",
            "service",
            "include_file_identity",
        ],
    ),
];

/// The key with `[N]` indices replaced by `[*]`.
fn normalise(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_index = false;
    for c in key.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[*]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Why a Filebeat key that oxibeat's model rejected is not there: "not implemented" for a
/// Filebeat option, `None` for a key Filebeat does not have either (a typo).
pub fn classify(fb_key: &str) -> Option<String> {
    let n = normalise(fb_key);
    for (k, why) in UNSUPPORTED_TOP {
        if n == *k || n.starts_with(&format!("{k}.")) {
            return Some((*why).to_string());
        }
    }
    if let Some(rest) = n.strip_prefix("filebeat.inputs[*].") {
        for (k, why) in UNSUPPORTED {
            if rest == *k || rest.starts_with(&format!("{k}.")) {
                return Some((*why).to_string());
            }
        }
        let head = rest.split(['.', '[']).next().unwrap_or("");
        if section_has("input", head) {
            return Some("not implemented".into());
        }
        return None;
    }
    if let Some(pos) = n.find(".ssl.") {
        let rest = &n[pos + 5..];
        return section_has("ssl", rest.split('.').next().unwrap_or(""))
            .then(|| "not implemented".to_string());
    }
    // Longest section first (queue.mem before queue).
    let mut best: Option<(&str, &str)> = None;
    for (section, _) in FILEBEAT_OPTIONS {
        if let Some(rest) = n.strip_prefix(&format!("{section}.")) {
            if best.map_or(true, |(b, _)| b.len() < section.len()) {
                best = Some((section, rest));
            }
        }
    }
    let (section, rest) = best?;
    let head = rest.split(['.', '[']).next().unwrap_or("");
    section_has(section, head).then(|| "not implemented".to_string())
}

fn section_has(section: &str, head: &str) -> bool {
    FILEBEAT_OPTIONS
        .iter()
        .filter(|(s, _)| *s == section)
        .any(|(_, names)| {
            names
                .iter()
                .any(|n| *n == head || n.split('.').next() == Some(head))
        })
}

/// Stable input id from the paths, for log and id-less inputs (`log-` + FNV-1a 64 hex).
fn id_from_paths(prefix: &str, paths: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in paths {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{prefix}-{h:016x}")
}

struct Tx<'a> {
    out: Translated,
    config_dir: PathBuf,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    global_id_used: bool,
    /// `strict.perms`: input files read here (`filebeat.config.inputs` without reload) are
    /// checked as the main file is.
    strict_perms: bool,
}

/// Translate a parsed, dot-expanded Filebeat YAML tree. `config_dir` resolves
/// `filebeat.config.inputs.path`; `lookup` resolves `${...}` where a value decides the
/// translation (`tail_files: ${TAIL}`). With `strict_perms`, the input files read at once
/// (`filebeat.config.inputs` without reload) must not be writable by others, as Filebeat's
/// cfgfile loader requires of every file it loads.
pub fn translate(
    root: &Y,
    file: &str,
    config_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    strict_perms: bool,
) -> Result<Translated, ConfigError> {
    let mut tx = Tx {
        out: Translated::default(),
        config_dir: config_dir.to_path_buf(),
        lookup,
        global_id_used: false,
        strict_perms,
    };
    tx.record_lines(root, "", file);
    let Some(entries) = root.as_map() else {
        return Err(ConfigError::new(
            "",
            format!("{file}: the configuration must be a map of settings (filebeat.inputs: ..., output.*: ...)"),
        ));
    };
    let mut inputs: Vec<toml::Value> = Vec::new();
    for (k, v) in entries {
        match k.as_str() {
            "filebeat" => tx.filebeat_section(v, &mut inputs)?,
            // Our own top-level `inputs` (a YAML file written by `export config --format yaml`
            // keeps Filebeat's layout, but oxibeat's name is accepted too).
            "inputs" => {
                if let Node::Seq(items) = &v.node {
                    for item in items.iter() {
                        let i = inputs.len();
                        let fb = format!("inputs[{i}]");
                        inputs.push(tx.input(item, &fb, i)?);
                    }
                }
            }
            "processors" => {
                let list = tx.processors(v, "processors");
                tx.out.tree.insert("processors".into(), list);
            }
            "registry" | "shutdown_timeout" => {
                tx.out.tree.insert(k.clone(), yaml::to_toml(v));
            }
            _ => tx.top_level(k, v),
        }
    }
    if !inputs.is_empty() {
        tx.out
            .tree
            .insert("inputs".into(), toml::Value::Array(inputs));
    }
    Ok(tx.out)
}

/// Translate one file of `filebeat.config.inputs` (a YAML list of inputs), as the
/// `[config.inputs]` loader reads it on every reload: the inputs go to `tree["inputs"]`.
/// Inputs without an id get one from their paths (`.global` is the main file's).
pub fn translate_input_file(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Translated, ConfigError> {
    let mut tx = Tx {
        out: Translated::default(),
        config_dir: PathBuf::new(),
        lookup,
        global_id_used: true,
        // The caller (external.rs) checked the file.
        strict_perms: false,
    };
    let inputs = tx.input_file(text, file, "filebeat.config.inputs.path", 0)?;
    tx.out
        .tree
        .insert("inputs".into(), toml::Value::Array(inputs));
    Ok(tx.out)
}

impl Tx<'_> {
    fn record_lines(&mut self, y: &Y, path: &str, file: &str) {
        self.out
            .lines
            .insert(path.to_string(), (file.to_string(), y.line));
        match &y.node {
            Node::Map(m) => {
                for (k, v) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.record_lines(v, &p, file);
                }
            }
            Node::Seq(s) => {
                for (i, v) in s.iter().enumerate() {
                    self.record_lines(v, &format!("{path}[{i}]"), file);
                }
            }
            _ => {}
        }
    }

    fn note(&mut self, msg: String) {
        self.out.notes.push(msg);
    }

    fn unsupported(&mut self, key: String, reason: &str) {
        self.out.unsupported.push(Unsupported {
            key,
            reason: reason.to_string(),
        });
    }

    fn map(&mut self, toml: &str, fb: &str) {
        if toml != fb {
            self.out.paths.push((toml.to_string(), fb.to_string()));
        }
    }

    /// A scalar's text with `${...}` resolved (for values that decide the translation).
    fn resolved(&self, y: &Y) -> Option<String> {
        let text = y.scalar_text()?;
        if !text.contains("${") {
            return Some(text);
        }
        let mut v = toml::Value::String(text);
        super::source::expand_env(&mut v, "", self.lookup).ok()?;
        v.as_str().map(str::to_string)
    }

    fn resolved_bool(&self, y: &Y) -> Option<bool> {
        match &y.node {
            Node::Bool(b) => Some(*b),
            _ => match self.resolved(y)?.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
                _ => None,
            },
        }
    }

    fn top_level(&mut self, k: &str, v: &Y) {
        for (key, why) in NO_EFFECT_TOP {
            if k == *key {
                self.note(format!("{k}: no effect ({why})"));
                return;
            }
        }
        match k {
            "output" => {
                let mut t = yaml::to_toml(v);
                self.filter_known(&mut t, "output");
                // oxibeat's file output appends to the newest file at startup: Filebeat's
                // `rotate_on_startup: false`. `true` stays, and is reported as not implemented.
                if let Some(file) = t.get_mut("file").and_then(toml::Value::as_table_mut) {
                    if file.get("rotate_on_startup") == Some(&toml::Value::Boolean(false)) {
                        file.remove("rotate_on_startup");
                        self.note(
                            "output.file.rotate_on_startup: false: no effect (oxibeat appends to the newest file at startup)"
                                .into(),
                        );
                    }
                }
                // The console output's `pretty` (libbeat outputs/console config.go) is
                // `codec.json.pretty`.
                if let Some(console) = t.get_mut("console").and_then(toml::Value::as_table_mut) {
                    if let Some(pretty) = console.remove("pretty") {
                        let codec = console
                            .entry("codec")
                            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                        if let Some(c) = codec.as_table_mut() {
                            let json = c
                                .entry("json")
                                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                            if let Some(j) = json.as_table_mut() {
                                j.entry("pretty").or_insert(pretty);
                            }
                        }
                        self.note(
                            "output.console.pretty → output.console.codec.json.pretty".into(),
                        );
                    }
                }
                self.out.tree.insert("output".into(), t);
            }
            _ => {
                let mut t = yaml::to_toml(v);
                if let toml::Value::Table(_) = t {
                    self.filter_known(&mut t, k);
                }
                if classify(k).is_some() && !t.as_table().is_some_and(|t| t.is_empty()) {
                    let why = classify(k).unwrap_or_default();
                    self.unsupported(k.to_string(), &why);
                    return;
                }
                if !t.as_table().is_some_and(|t| t.is_empty()) || !v.is_null() {
                    self.out.tree.insert(k.to_string(), t);
                }
            }
        }
    }

    /// Remove the keys below `prefix` that are known to be unsupported or of no effect.
    fn filter_known(&mut self, t: &mut toml::Value, prefix: &str) {
        let Some(table) = t.as_table_mut() else {
            return;
        };
        let keys: Vec<String> = table.keys().cloned().collect();
        for k in keys {
            let path = format!("{prefix}.{k}");
            if let Some((_, why)) = NO_EFFECT_TOP.iter().find(|(key, _)| *key == path) {
                table.remove(&k);
                self.note(format!("{path}: no effect ({why})"));
                continue;
            }
            if let Some((_, why)) = UNSUPPORTED_TOP
                .iter()
                .find(|(key, _)| *key == path || path.starts_with(&format!("{key}.")))
            {
                table.remove(&k);
                self.unsupported(path, why);
                continue;
            }
            if let Some(child) = table.get_mut(&k) {
                if child.is_table() && path.matches('.').count() < 3 {
                    self.filter_known(child, &path);
                }
            }
        }
    }

    fn filebeat_section(
        &mut self,
        v: &Y,
        inputs: &mut Vec<toml::Value>,
    ) -> Result<(), ConfigError> {
        let Some(entries) = v.as_map() else {
            return Ok(());
        };
        for (k, item) in entries {
            let fb = format!("filebeat.{k}");
            match k.as_str() {
                "inputs" => match &item.node {
                    Node::Seq(list) => {
                        for (i, input) in list.iter().enumerate() {
                            let at = inputs.len();
                            let fb_i = format!("filebeat.inputs[{i}]");
                            let t = self.input(input, &fb_i, at)?;
                            inputs.push(t);
                        }
                    }
                    Node::Null => {}
                    _ => {
                        return Err(ConfigError::new(
                            "filebeat.inputs",
                            "must be a list of inputs (- type: filestream ...)",
                        ))
                    }
                },
                "config" => self.config_files(item, inputs)?,
                "registry" => {
                    if let Some(m) = item.as_map() {
                        let mut reg = toml::Table::new();
                        for (rk, rv) in m {
                            let rfb = format!("filebeat.registry.{rk}");
                            match rk.as_str() {
                                "flush" => {
                                    reg.insert("flush".into(), yaml::to_toml(rv));
                                    self.map("registry.flush", &rfb);
                                }
                                "path" => {
                                    let p = self.resolved(rv).unwrap_or_default();
                                    let default = p == "registry"
                                        || p.trim_end_matches('/').ends_with("/registry")
                                            && p.starts_with("${path.data}");
                                    if !default {
                                        self.unsupported(rfb, "not implemented: the registry is always <path.data>/registry; set path.data instead");
                                    }
                                }
                                _ => {
                                    if let Some((_, why)) =
                                        NO_EFFECT_TOP.iter().find(|(key, _)| *key == rfb)
                                    {
                                        self.note(format!("{rfb}: no effect ({why})"));
                                    } else {
                                        let why = classify(&rfb).unwrap_or_else(|| {
                                            "unknown setting; check its spelling".into()
                                        });
                                        self.unsupported(rfb, &why);
                                    }
                                }
                            }
                        }
                        self.out
                            .tree
                            .insert("registry".into(), toml::Value::Table(reg));
                        self.map("registry", "filebeat.registry");
                    }
                }
                "shutdown_timeout" => {
                    self.out
                        .tree
                        .insert("shutdown_timeout".into(), yaml::to_toml(item));
                    self.map("shutdown_timeout", &fb);
                }
                _ => match classify(&fb) {
                    Some(why) => {
                        if let Some((_, w)) = NO_EFFECT_TOP.iter().find(|(key, _)| *key == fb) {
                            self.note(format!("{fb}: no effect ({w})"));
                        } else if !(matches!(&item.node, Node::Seq(s) if s.is_empty())) {
                            self.unsupported(fb, &why);
                        }
                    }
                    None => self.unsupported(fb, "unknown setting; check its spelling"),
                },
            }
        }
        Ok(())
    }

    /// `filebeat.config.inputs` (external input files) and `filebeat.config.modules`.
    fn config_files(&mut self, v: &Y, inputs: &mut Vec<toml::Value>) -> Result<(), ConfigError> {
        let Some(entries) = v.as_map() else {
            return Ok(());
        };
        for (kind, section) in entries {
            let fb = format!("filebeat.config.{kind}");
            let enabled = section
                .get("enabled")
                .and_then(|e| self.resolved_bool(e))
                .unwrap_or(true);
            let pattern = match section.get("path") {
                Some(p) => Some(self.resolved(p).ok_or_else(|| {
                    ConfigError::new(
                        format!("{fb}.path"),
                        "cannot be resolved: set the environment variable or setting its ${...} names",
                    )
                })?),
                None => None,
            };
            let reload = section
                .get("reload")
                .and_then(|r| r.get("enabled"))
                .and_then(|e| self.resolved_bool(e))
                == Some(true);
            if reload && kind != "inputs" {
                self.unsupported(
                    format!("{fb}.reload.enabled"),
                    "not implemented: the files are read at startup; restart oxibeat after changing them",
                );
            }
            if !enabled {
                continue;
            }
            let Some(pattern) = pattern else {
                continue;
            };
            let full = if Path::new(&pattern).is_absolute() {
                PathBuf::from(&pattern)
            } else {
                self.config_dir.join(&pattern)
            };
            if reload && kind == "inputs" {
                // Re-read on every reload.period by the [config.inputs] loader (external.rs),
                // which translates each YAML file as this does.
                let period = section
                    .get("reload")
                    .and_then(|r| r.get("period"))
                    .and_then(|p| self.resolved(p))
                    .unwrap_or_else(|| "10s".into());
                let mut r = toml::Table::new();
                r.insert("enabled".into(), toml::Value::Boolean(true));
                r.insert("period".into(), toml::Value::String(period.clone()));
                let mut inputs_dir = toml::Table::new();
                // Absolute: [config.inputs] would anchor a relative path at the main file's
                // directory again (`-c conf/filebeat.yml` would look in conf/conf/).
                let full = std::path::absolute(&full).unwrap_or(full);
                inputs_dir.insert(
                    "path".into(),
                    toml::Value::String(full.display().to_string()),
                );
                inputs_dir.insert("reload".into(), toml::Value::Table(r));
                let mut config = toml::Table::new();
                config.insert("inputs".into(), toml::Value::Table(inputs_dir));
                self.out
                    .tree
                    .insert("config".into(), toml::Value::Table(config));
                self.map("config.inputs", &fb);
                self.note(format!(
                    "{fb}: the files of {} are read again every {period} (reload.enabled)",
                    full.display()
                ));
                continue;
            }
            let files = super::external::matching_files(&full, &format!("{fb}.path"))?;
            match kind.as_str() {
                "inputs" => {
                    for f in files {
                        let shown = f.display().to_string();
                        if self.strict_perms {
                            super::perms::check_config(&f).map_err(|e| {
                                ConfigError::new(format!("{fb}.path"), e.to_string())
                            })?;
                        }
                        // Bounded like the main file: a FIFO there is an error, not a hang.
                        let text = super::read_config_file(&f).map_err(|e| {
                            ConfigError::new(
                                format!("{fb}.path"),
                                format!("input file {shown}: {}", e.message),
                            )
                        })?;
                        let list = self.input_file(&text, &shown, &fb, inputs.len())?;
                        inputs.extend(list);
                        self.note(format!("{fb}.path: read {shown}"));
                    }
                }
                "modules" => {
                    // Module files hold `- module: nginx` entries; only enabled ones matter.
                    let mut enabled_modules = Vec::new();
                    for f in &files {
                        let Ok(text) = super::read_config_file(f) else {
                            continue;
                        };
                        if let Ok(y) = yaml::parse(&text, &f.display().to_string()) {
                            if let Node::Seq(list) = &y.node {
                                for m in list {
                                    let on = m
                                        .get("enabled")
                                        .and_then(|e| self.resolved_bool(e))
                                        .unwrap_or(true);
                                    if let (true, Some(name)) =
                                        (on, m.get("module").and_then(Y::scalar_text))
                                    {
                                        enabled_modules.push(format!("{name} ({})", f.display()));
                                    }
                                }
                            }
                        }
                    }
                    if enabled_modules.is_empty() {
                        self.note(format!(
                            "{fb}: no effect (no module file with an enabled module matches {pattern})"
                        ));
                    } else {
                        self.unsupported(
                            fb,
                            &format!(
                                "not implemented: Filebeat modules ({}); configure filestream inputs and ingest pipelines instead",
                                enabled_modules.join(", ")
                            ),
                        );
                    }
                }
                _ => self.unsupported(fb, "unknown setting; check its spelling"),
            }
        }
        Ok(())
    }

    /// The inputs of one input file (`- type: ...` list); `at` is the index in oxibeat's
    /// `inputs` of the first one.
    fn input_file(
        &mut self,
        text: &str,
        shown: &str,
        fb: &str,
        at: usize,
    ) -> Result<Vec<toml::Value>, ConfigError> {
        let y = yaml::expand_dots(yaml::parse(text, shown)?, "")?;
        let Node::Seq(list) = &y.node else {
            return Err(ConfigError::new(
                format!("{fb}.path"),
                format!("{shown}: an input file must be a list of inputs (- type: filestream ...)"),
            ));
        };
        let mut out = Vec::with_capacity(list.len());
        for (i, input) in list.iter().enumerate() {
            let fb_i = format!("{shown}[{i}]");
            self.record_lines(input, &fb_i, shown);
            out.push(self.input(input, &fb_i, at + i)?);
        }
        Ok(out)
    }

    /// One input; `fb` is its Filebeat key path, `at` its index in oxibeat's `inputs`.
    fn input(&mut self, y: &Y, fb: &str, at: usize) -> Result<toml::Value, ConfigError> {
        let key = format!("inputs[{at}]");
        self.map(&key, fb);
        let Some(entries) = y.as_map() else {
            return Err(ConfigError::new(
                fb,
                "each input must be a map (- type: filestream ...)",
            ));
        };
        let kind = y
            .get("type")
            .and_then(|t| self.resolved(t))
            .unwrap_or_default();
        match kind.as_str() {
            "log" | "container" => self.log_input(entries, fb, &key, &kind),
            "filestream" => Ok(self.filestream_input(entries, fb, &key)),
            // Other types (system/metrics, or a type we do not have) go through as written:
            // the model says what it accepts.
            _ => Ok(yaml::to_toml(y)),
        }
    }

    fn generated_id(&mut self, fb: &str, key: &str, prefix: &str, paths: &[String]) -> String {
        let id = if prefix == "filestream" && !self.global_id_used {
            // Filebeat keys the states of a filestream input without an id as `.global`.
            self.global_id_used = true;
            ".global".to_string()
        } else {
            id_from_paths(prefix, paths)
        };
        self.note(format!(
            "{fb}: no id; runs as {key} with id {id:?} (derived from its paths); set `id:` to choose one"
        ));
        id
    }

    fn paths_of(&self, entries: &[(String, Y)]) -> Vec<String> {
        entries
            .iter()
            .find(|(k, _)| k == "paths")
            .and_then(|(_, v)| match &v.node {
                Node::Seq(s) => Some(s.iter().filter_map(Y::scalar_text).collect()),
                _ => v.scalar_text().map(|s| vec![s]),
            })
            .unwrap_or_default()
    }

    fn filestream_input(&mut self, entries: &[(String, Y)], fb: &str, key: &str) -> toml::Value {
        let mut t = toml::Table::new();
        for (k, v) in entries {
            let fbk = format!("{fb}.{k}");
            if let Some((_, why)) = NO_EFFECT.iter().find(|(n, _)| {
                *n == k.as_str() || n.starts_with(&format!("{k}.")) && self.only_child(v, n, k)
            }) {
                self.note(format!("{fbk}: no effect ({why})"));
                continue;
            }
            if let Some((_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == k.as_str()) {
                self.unsupported(fbk, why);
                continue;
            }
            match k.as_str() {
                "file_identity" => self.file_identity(v, &fbk, key, &mut t),
                "prospector" => self.prospector(v, &fbk, key, &mut t),
                "parsers" => {
                    let list = self.parsers(v, &fbk, &format!("{key}.parsers"));
                    t.insert("parsers".into(), list);
                }
                "processors" => {
                    let list = self.processors(v, &format!("{key}.processors"));
                    self.map(&format!("{key}.processors"), &fbk);
                    t.insert("processors".into(), list);
                }
                "take_over" => {
                    let to = match &v.node {
                        Node::Map(_) => yaml::to_toml(v),
                        _ => {
                            let on = self.resolved_bool(v).unwrap_or(false);
                            toml::Value::Table(toml::toml! { enabled = on })
                        }
                    };
                    t.insert("take_over".into(), to);
                }
                "close" => {
                    let mut c = yaml::to_toml(v);
                    if let Some(osc) = c
                        .get_mut("on_state_change")
                        .and_then(toml::Value::as_table_mut)
                    {
                        if osc.remove("check_interval").is_some() {
                            self.note(format!(
                                "{fbk}.on_state_change.check_interval: no effect (state changes are checked on every read)"
                            ));
                        }
                    }
                    t.insert("close".into(), c);
                }
                _ => {
                    t.insert(k.clone(), yaml::to_toml(v));
                }
            }
        }
        if !t.contains_key("id") {
            let paths = self.paths_of(entries);
            let id = self.generated_id(fb, key, "filestream", &paths);
            t.insert("id".into(), toml::Value::String(id));
        }
        toml::Value::Table(t)
    }

    /// Whether the NO_EFFECT entry `n` (`a.b`) names the only thing set under `k`.
    fn only_child(&self, v: &Y, n: &str, k: &str) -> bool {
        let rest = &n[k.len() + 1..];
        v.as_map().is_some_and(|m| {
            m.len() == 1 && m[0].0 == rest && self.resolved_bool(&m[0].1) != Some(false)
        })
    }

    fn file_identity(&mut self, v: &Y, fbk: &str, key: &str, t: &mut toml::Table) {
        match &v.node {
            Node::Map(m) if m.len() == 1 => {
                let name = m[0].0.as_str();
                match name {
                    "fingerprint" | "native" | "path" => {
                        t.insert("file_identity".into(), toml::Value::String(name.into()));
                        self.map(&format!("{key}.file_identity"), &format!("{fbk}.{name}"));
                    }
                    _ => {
                        let why = classify(&format!("{fbk}.{name}")).unwrap_or_else(|| {
                            "unknown file identity; use fingerprint, native or path".into()
                        });
                        self.unsupported(format!("{fbk}.{name}"), &why);
                    }
                }
            }
            Node::Str(_) => {
                t.insert("file_identity".into(), yaml::to_toml(v));
            }
            _ => self.unsupported(
                fbk.to_string(),
                "set exactly one of file_identity.fingerprint, .native or .path",
            ),
        }
    }

    fn prospector(&mut self, v: &Y, fbk: &str, key: &str, t: &mut toml::Table) {
        let mut p = yaml::to_toml(v);
        if let Some(scanner) = p.get_mut("scanner").and_then(toml::Value::as_table_mut) {
            for list in ["exclude_files", "include_files"] {
                if let Some(val) = scanner.remove(list) {
                    self.map(&format!("{key}.{list}"), &format!("{fbk}.scanner.{list}"));
                    t.insert(list.into(), val);
                }
            }
            if let Some(rg) = scanner.remove("recursive_glob") {
                if rg.as_bool() == Some(false) {
                    self.unsupported(
                        format!("{fbk}.scanner.recursive_glob"),
                        "not implemented: `**` always matches any depth",
                    );
                } else {
                    self.note(format!(
                        "{fbk}.scanner.recursive_glob: no effect (`**` always matches any depth)"
                    ));
                }
            }
            if scanner.remove("resend_on_touch").is_some() {
                self.unsupported(format!("{fbk}.scanner.resend_on_touch"), "not implemented");
            }
        }
        t.insert("prospector".into(), p);
    }

    /// Filestream's `parsers` list; each entry is checked for the parsers oxibeat lacks.
    fn parsers(&mut self, v: &Y, fbk: &str, key: &str) -> toml::Value {
        let Node::Seq(items) = &v.node else {
            return yaml::to_toml(v);
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let name = item
                .as_map()
                .and_then(|m| m.first())
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            let fb_i = format!("{fbk}[{i}]");
            match name.as_str() {
                "syslog" | "include_message" => {
                    self.unsupported(format!("{fb_i}.{name}"), "not implemented: this parser");
                    continue;
                }
                "ndjson" => {
                    let mut nd = yaml::to_toml(item);
                    if let Some(opts) = nd.get_mut("ndjson").and_then(toml::Value::as_table_mut) {
                        // Filestream's ndjson took keys_under_root in older releases.
                        if let Some(under) = opts.remove("keys_under_root") {
                            let root = under.as_bool().unwrap_or(false);
                            if !opts.contains_key("target") {
                                opts.insert(
                                    "target".into(),
                                    toml::Value::String(if root { "" } else { "json" }.into()),
                                );
                            }
                            self.note(format!(
                                "{fb_i}.ndjson.keys_under_root: translated to target = {:?}",
                                if root { "" } else { "json" }
                            ));
                        }
                    }
                    self.map(&format!("{key}[{}]", out.len()), &fb_i);
                    out.push(nd);
                }
                _ => {
                    self.map(&format!("{key}[{}]", out.len()), &fb_i);
                    out.push(yaml::to_toml(item));
                }
            }
        }
        toml::Value::Array(out)
    }

    /// Processor lists: entries naming a Filebeat processor that oxibeat lacks are collected.
    fn processors(&mut self, v: &Y, key: &str) -> toml::Value {
        let Node::Seq(items) = &v.node else {
            return yaml::to_toml(v);
        };
        let fb_base = self
            .out
            .paths
            .iter()
            .find(|(t, _)| t == key)
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| key.to_string());
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let name = item
                .as_map()
                .and_then(|m| m.first())
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            let fb_i = format!("{fb_base}[{i}]");
            if FILEBEAT_PROCESSORS_MISSING.contains(&name.as_str()) {
                self.unsupported(
                    format!("{fb_i}.{name}"),
                    "not implemented: this processor (in Logstash or an ingest pipeline instead)",
                );
                continue;
            }
            if name == "add_kubernetes_metadata" {
                if let Some(opts) = item.get(&name) {
                    if opts.get("kube_config").is_some() {
                        self.unsupported(
                            format!("{fb_i}.{name}.kube_config"),
                            "not implemented: oxibeat does not query the Kubernetes API; metadata comes from the log file's name",
                        );
                    }
                }
                let mut t = yaml::to_toml(item);
                if let Some(o) = t.get_mut(&name).and_then(toml::Value::as_table_mut) {
                    o.remove("kube_config");
                }
                self.map(&format!("{key}[{}]", out.len()), &fb_i);
                out.push(t);
                continue;
            }
            self.map(&format!("{key}[{}]", out.len()), &fb_i);
            out.push(yaml::to_toml(item));
        }
        toml::Value::Array(out)
    }

    /// `type: log` / `type: container` as a filestream input.
    fn log_input(
        &mut self,
        entries: &[(String, Y)],
        fb: &str,
        key: &str,
        kind: &str,
    ) -> Result<toml::Value, ConfigError> {
        let mut t = toml::Table::new();
        t.insert("type".into(), "filestream".into());
        t.insert("input_type".into(), kind.into());
        // Log input events carry only log.file.path.
        t.insert("include_file_identity".into(), false.into());
        // The log input identifies files by inode and device.
        t.insert("file_identity".into(), "native".into());
        t.insert(
            "take_over".into(),
            toml::Value::Table(toml::toml! { enabled = true }),
        );
        let mut json = toml::Table::new();
        let mut multiline = toml::Table::new();
        let mut container: Option<toml::Table> = (kind == "container").then(toml::Table::new);
        if kind == "container" {
            // Filebeat's container input follows symlinks (CRI-O and /var/log/containers).
            t.insert(
                "prospector".into(),
                toml::Value::Table(toml::toml! { [scanner]
                symlinks = true }),
            );
        }
        let mut translated = Vec::new();
        for (k, v) in entries {
            let fbk = format!("{fb}.{k}");
            if k == "type" {
                continue;
            }
            if let Some((_, why)) = NO_EFFECT.iter().find(|(n, _)| *n == k.as_str()) {
                self.note(format!("{fbk}: no effect ({why})"));
                continue;
            }
            if let Some((from, to)) = LOG_RENAMES.iter().find(|(n, _)| *n == k.as_str()) {
                put_dotted(&mut t, to, yaml::to_toml(v));
                self.map(&format!("{key}.{to}"), &fbk);
                translated.push(format!("{from} → {to}"));
                continue;
            }
            match k.as_str() {
                _ if LOG_SAME.contains(&k.as_str()) => {
                    if k == "file_identity" {
                        self.file_identity(v, &fbk, key, &mut t);
                    } else if k == "processors" {
                        self.map(&format!("{key}.processors"), &fbk);
                        let list = self.processors(v, &format!("{key}.processors"));
                        t.insert("processors".into(), list);
                    } else {
                        t.insert(k.clone(), yaml::to_toml(v));
                    }
                }
                "tail_files" => {
                    if self.resolved_bool(v) == Some(true) {
                        t.insert("start_position".into(), "end".into());
                        self.map(&format!("{key}.start_position"), &fbk);
                        translated.push("tail_files → start_position = \"end\"".into());
                    }
                }
                "json" => {
                    let Some(m) = v.as_map() else { continue };
                    for (jk, jv) in m {
                        let jfb = format!("{fbk}.{jk}");
                        if jk == "keys_under_root" {
                            let root = self.resolved_bool(jv).unwrap_or(false);
                            json.insert("target".into(), if root { "" } else { "json" }.into());
                        } else if let Some((_, to)) = JSON_RENAMES.iter().find(|(n, _)| n == jk) {
                            json.insert((*to).into(), yaml::to_toml(jv));
                        } else {
                            self.unsupported(jfb, "unknown json option; check its spelling");
                        }
                    }
                    json.entry("target").or_insert_with(|| "json".into());
                    translated.push("json.* → parsers: ndjson".into());
                }
                "multiline" => {
                    if let toml::Value::Table(m) = yaml::to_toml(v) {
                        multiline = m;
                    }
                    translated.push("multiline.* → parsers: multiline".into());
                }
                "docker-json" | "stream" | "format" => {
                    let c = container.get_or_insert_with(toml::Table::new);
                    let opts: Vec<(String, &Y)> = if k == "docker-json" {
                        v.as_map()
                            .map(|m| m.iter().map(|(a, b)| (a.clone(), b)).collect())
                            .unwrap_or_default()
                    } else {
                        vec![(k.clone(), v)]
                    };
                    for (ck, cv) in opts {
                        let cfb = if k == "docker-json" {
                            format!("{fbk}.{ck}")
                        } else {
                            fbk.clone()
                        };
                        match ck.as_str() {
                            "stream" | "format" => {
                                c.insert(ck.clone(), yaml::to_toml(cv));
                            }
                            "partial" | "cri_flags" => {
                                if self.resolved_bool(cv) == Some(false) {
                                    self.unsupported(cfb, "not implemented: split lines are always joined and CRI tags always read");
                                }
                            }
                            "force_cri_logs" => {
                                if self.resolved_bool(cv) == Some(true) {
                                    c.insert("format".into(), "cri".into());
                                }
                            }
                            _ => self
                                .unsupported(cfb, "unknown docker-json option; check its spelling"),
                        }
                    }
                    if k == "docker-json" {
                        translated.push("docker-json.* → parsers: container".into());
                    }
                }
                _ => match UNSUPPORTED.iter().find(|(n, _)| *n == k.as_str()) {
                    Some((_, why)) => self.unsupported(fbk, why),
                    None => {
                        let why = if LOG_OPTIONS.contains(&k.as_str()) {
                            "not implemented"
                        } else {
                            "unknown setting; check its spelling"
                        };
                        self.unsupported(fbk, why);
                    }
                },
            }
        }
        let mut parsers = Vec::new();
        if let Some(c) = container {
            parsers.push(toml::Value::Table(toml::toml! { container = c }));
        }
        if !json.is_empty() {
            self.map(
                &format!("{key}.parsers[{}].ndjson", parsers.len()),
                &format!("{fb}.json"),
            );
            parsers.push(toml::Value::Table(toml::toml! { ndjson = json }));
        }
        if !multiline.is_empty() {
            self.map(
                &format!("{key}.parsers[{}].multiline", parsers.len()),
                &format!("{fb}.multiline"),
            );
            parsers.push(toml::Value::Table(toml::toml! { multiline = multiline }));
        }
        if !parsers.is_empty() {
            t.insert("parsers".into(), toml::Value::Array(parsers));
        }
        if !t.contains_key("id") {
            let paths = self.paths_of(entries);
            let id = self.generated_id(fb, key, kind, &paths);
            t.insert("id".into(), toml::Value::String(id));
        }
        self.note(format!(
            "{fb}: the {kind} input runs on filestream{}{}, taking over the log input's registry states",
            if translated.is_empty() { "" } else { " (" },
            if translated.is_empty() {
                String::new()
            } else {
                format!("{})", translated.join(", "))
            }
        ));
        Ok(toml::Value::Table(t))
    }
}

/// Options of Filebeat's log input that oxibeat does not have (beyond `UNSUPPORTED`).
const LOG_OPTIONS: &[&str] = &[
    "clean_inactive",
    "harvester_limit",
    "pipeline",
    "index",
    "keep_null",
    "scan",
    "recursive_glob",
];

/// Filebeat processors oxibeat does not implement.
const FILEBEAT_PROCESSORS_MISSING: &[&str] = &[
    "add_cloud_metadata",
    "add_docker_metadata",
    "add_locale",
    "add_process_metadata",
    "add_id",
    "add_labels",
    "add_network_direction",
    "add_observer_metadata",
    "add_session_metadata",
    "cache",
    "community_id",
    "convert",
    "decode_base64_field",
    "decode_cef",
    "decode_csv_fields",
    "decode_duration",
    "decode_xml",
    "decode_xml_wineventlog",
    "detect_mime_type",
    "dns",
    "extract_array",
    "lowercase",
    "move_fields",
    "parse_aws_vpc_flow_log",
    "rate_limit",
    "registered_domain",
    "replace",
    "script",
    "syslog",
    "timestamp",
    "translate_ldap_attribute",
    "translate_sid",
    "uppercase",
    "urldecode",
];

/// Insert `value` at a dotted path of tables.
fn put_dotted(t: &mut toml::Table, path: &str, value: toml::Value) {
    match path.split_once('.') {
        None => {
            t.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = t
                .entry(head)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let Some(inner) = entry.as_table_mut() {
                put_dotted(inner, rest, value);
            }
        }
    }
}

/// oxibeat's TOML tree in Filebeat's YAML layout (for `export config --format yaml`).
pub fn to_filebeat_layout(tree: &toml::Value) -> toml::Value {
    let mut out = toml::Table::new();
    let Some(t) = tree.as_table() else {
        return tree.clone();
    };
    let mut filebeat = toml::Table::new();
    for (k, v) in t {
        match k.as_str() {
            "inputs" => {
                let list = v
                    .as_array()
                    .map(|a| a.iter().map(input_to_filebeat).collect())
                    .unwrap_or_default();
                filebeat.insert("inputs".into(), toml::Value::Array(list));
            }
            "registry" => {
                filebeat.insert("registry".into(), v.clone());
            }
            "shutdown_timeout" => {
                filebeat.insert("shutdown_timeout".into(), v.clone());
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !filebeat.is_empty() {
        let mut all = toml::Table::new();
        all.insert("filebeat".into(), toml::Value::Table(filebeat));
        all.extend(out);
        out = all;
    }
    toml::Value::Table(out)
}

fn input_to_filebeat(v: &toml::Value) -> toml::Value {
    let mut v = v.clone();
    if let Some(t) = v.as_table_mut() {
        if let Some(toml::Value::String(id)) = t.remove("file_identity") {
            let mut fi = toml::Table::new();
            // `~` in YAML: an empty map reads back as the same choice.
            fi.insert(id, toml::Value::Table(toml::Table::new()));
            t.insert("file_identity".into(), toml::Value::Table(fi));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(text: &str) -> Translated {
        let y = yaml::expand_dots(yaml::parse(text, "filebeat.yml").unwrap(), "").unwrap();
        translate(
            &y,
            "filebeat.yml",
            Path::new("/nonexistent"),
            &|_| None,
            false,
        )
        .unwrap()
    }

    #[test]
    fn log_input_options_are_translated() {
        let t = tr(r#"
filebeat.inputs:
  - type: log
    allow_deprecated_use: true
    paths: [/var/log/app/*.log]
    close_inactive: 2m
    close_eof: true
    scan_frequency: 5s
    harvester_buffer_size: 32768
    max_bytes: 1000
    tail_files: true
    backoff: 2s
    max_backoff: 20s
    symlinks: true
    json.keys_under_root: true
    json.add_error_key: true
    multiline.pattern: '^\['
    multiline.negate: true
    multiline.match: after
"#);
        let i = &t.tree["inputs"][0];
        assert_eq!(i["type"].as_str(), Some("filestream"));
        assert_eq!(i["input_type"].as_str(), Some("log"));
        assert_eq!(
            i["close"]["on_state_change"]["inactive"].as_str(),
            Some("2m")
        );
        assert_eq!(i["close"]["reader"]["on_eof"].as_bool(), Some(true));
        assert_eq!(
            i["prospector"]["scanner"]["check_interval"].as_str(),
            Some("5s")
        );
        assert_eq!(i["prospector"]["scanner"]["symlinks"].as_bool(), Some(true));
        assert_eq!(i["buffer_size"].as_integer(), Some(32768));
        assert_eq!(i["message_max_bytes"].as_integer(), Some(1000));
        assert_eq!(i["start_position"].as_str(), Some("end"));
        assert_eq!(i["backoff"]["init"].as_str(), Some("2s"));
        assert_eq!(i["backoff"]["max"].as_str(), Some("20s"));
        assert_eq!(i["take_over"]["enabled"].as_bool(), Some(true));
        assert_eq!(i["parsers"][0]["ndjson"]["target"].as_str(), Some(""));
        assert_eq!(
            i["parsers"][1]["multiline"]["pattern"].as_str(),
            Some("^\\[")
        );
        assert!(i["id"].as_str().unwrap().starts_with("log-"));
        assert!(t.unsupported.is_empty(), "{:?}", t.unsupported);
        assert_eq!(
            t.filebeat_key("inputs[0].close.on_state_change.inactive"),
            "filebeat.inputs[0].close_inactive"
        );
        assert_eq!(
            t.filebeat_key("inputs[0].parsers[1].multiline.pattern"),
            "filebeat.inputs[0].multiline.pattern"
        );
        assert!(
            t.notes
                .iter()
                .any(|n| n.contains("close_inactive → close.on_state_change.inactive")),
            "{:?}",
            t.notes
        );
        assert_eq!(
            t.location("filebeat.inputs[0].close_inactive"),
            " (filebeat.yml line 6)"
        );
    }

    #[test]
    fn filestream_shapes_and_unsupported_keys() {
        let t = tr(r#"
filebeat.inputs:
  - type: filestream
    id: app
    paths: [/var/log/*.log]
    file_identity.fingerprint: ~
    prospector.scanner.exclude_files: ['\.gz$']
    pipeline: my-pipeline
    parsers:
      - ndjson: {keys_under_root: true}
      - syslog: {}
filebeat.modules: [{module: nginx}]
processors:
  - add_cloud_metadata: ~
  - add_fields: {fields: {a: 1}}
max_procs: 2
"#);
        let i = &t.tree["inputs"][0];
        assert_eq!(i["file_identity"].as_str(), Some("fingerprint"));
        assert_eq!(i["exclude_files"][0].as_str(), Some("\\.gz$"));
        assert_eq!(i["parsers"][0]["ndjson"]["target"].as_str(), Some(""));
        assert_eq!(i["parsers"].as_array().unwrap().len(), 1);
        let keys: Vec<_> = t.unsupported.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "filebeat.inputs[0].pipeline",
                "filebeat.inputs[0].parsers[1].syslog",
                "filebeat.modules",
                "processors[0].add_cloud_metadata",
            ]
        );
        assert_eq!(t.tree["processors"].as_array().unwrap().len(), 1);
        assert!(t.tree.get("max_procs").is_none());
        assert!(t
            .notes
            .iter()
            .any(|n| n.starts_with("max_procs: no effect")));
    }

    #[test]
    fn classification_tells_typos_from_filebeat_options() {
        assert_eq!(
            classify("output.kafka.metadata.retry.max").as_deref(),
            Some("not implemented")
        );
        assert_eq!(
            classify("output.kafka.ssl.cipher_suites").as_deref(),
            Some("not implemented")
        );
        assert_eq!(classify("output.kafka.hostz"), None);
        assert_eq!(
            classify("filebeat.inputs[3].index")
                .map(|s| s.starts_with("not implemented per input")),
            Some(true)
        );
        assert_eq!(classify("filebeat.inputs[0].pathz"), None);
        assert_eq!(
            classify("logging.to_files").as_deref(),
            Some("not implemented")
        );
    }

    #[test]
    fn container_input_and_id_less_filestream() {
        let t = tr(r#"
filebeat.inputs:
  - type: container
    paths: [/var/log/containers/*.log]
    stream: stderr
  - type: filestream
    paths: [/a/*.log]
  - type: filestream
    paths: [/b/*.log]
"#);
        let c = &t.tree["inputs"][0];
        assert_eq!(c["input_type"].as_str(), Some("container"));
        assert_eq!(
            c["parsers"][0]["container"]["stream"].as_str(),
            Some("stderr")
        );
        assert_eq!(c["prospector"]["scanner"]["symlinks"].as_bool(), Some(true));
        assert_eq!(t.tree["inputs"][1]["id"].as_str(), Some(".global"));
        assert!(t.tree["inputs"][2]["id"]
            .as_str()
            .unwrap()
            .starts_with("filestream-"));
    }
}
