//! Processors: per-event transformations configured as `[[processors]]` (global) or
//! `[[inputs.processors]]` (per input), each optionally guarded by a `when` condition.
//!
//! A processor entry is a one-key table, as in Filebeat's YAML list:
//! `add_fields = { target = "project", fields = { name = "oxibeat" }, when = { ... } }`.
//!
//! Errors while processing follow Beats: the event is kept, the processor logs at debug
//! level, and processors with `fail_on_error` restore the event and append `error.message`.
//! The chain goes on with the next processor, as Beats' pipeline does.

mod add_fields;
mod add_host_metadata;
pub mod add_kubernetes_metadata;
mod add_tags;
pub mod conditions;
mod copy_fields;
mod decode_json_fields;
mod dissect;
mod drop_event;
mod drop_fields;
mod fingerprint;
mod include_fields;
mod rename;
mod truncate_fields;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::ConfigError;
use crate::event::{get_path, put_path, remove_path, Event, Fields};

use conditions::Condition;

/// What the pipeline should do with an event after a processor ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Keep,
    Drop,
}

/// One configured processor.
pub trait Processor: Send + Sync + std::fmt::Debug {
    fn run(&self, event: &mut Event) -> Outcome;
}

/// An ordered list of processors.
#[derive(Debug, Default)]
pub struct Chain {
    processors: Vec<Box<dyn Processor>>,
}

impl Chain {
    pub fn is_empty(&self) -> bool {
        self.processors.is_empty()
    }

    /// Run every processor in order; stops at the first that drops the event.
    pub fn run(&self, event: &mut Event) -> Outcome {
        for p in &self.processors {
            if p.run(event) == Outcome::Drop {
                return Outcome::Drop;
            }
        }
        Outcome::Keep
    }
}

/// Processor names, for the error on an unknown one.
const NAMES: &str = "add_fields, add_host_metadata, add_kubernetes_metadata, add_tags, copy_fields, \
                     decode_json_fields, dissect, drop_event, drop_fields, fingerprint, include_fields, \
                     rename, truncate_fields";

fn unknown_processor(name: &str, pkey: &str) -> ConfigError {
    ConfigError::new(
        pkey,
        format!("unknown processor {name:?}; use one of {NAMES}"),
    )
}

/// Build a chain from its configuration; `key` is the key path used in errors.
pub fn build(list: &[toml::Value], key: &str) -> Result<Chain, ConfigError> {
    let mut processors = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        processors.push(build_one(entry, &format!("{key}[{i}]"))?);
    }
    Ok(Chain { processors })
}

fn build_one(entry: &toml::Value, key: &str) -> Result<Box<dyn Processor>, ConfigError> {
    let table = entry.as_table().ok_or_else(|| {
        ConfigError::new(
            key,
            "each processor must be a table with one key, the processor name, \
             like add_fields = { fields = { env = \"prod\" } }",
        )
    })?;
    let mut it = table.iter();
    let (name, opts) = match (it.next(), it.next()) {
        (Some(one), None) => one,
        (None, _) => {
            return Err(ConfigError::new(
                key,
                format!("empty processor entry; name one processor ({NAMES})"),
            ))
        }
        (Some(_), Some(_)) => {
            let names: Vec<&str> = table.keys().map(String::as_str).collect();
            return Err(ConfigError::new(
                key,
                format!(
                    "each processor entry holds exactly one processor, found {}; \
                     put each one in its own [[processors]] entry",
                    names.join(", ")
                ),
            ));
        }
    };
    let pkey = format!("{key}.{name}");
    // Name the unknown processor before complaining about its options.
    if !NAMES.split(", ").any(|n| n.trim() == name) {
        return Err(unknown_processor(name, &pkey));
    }
    let mut opts = match opts {
        toml::Value::Table(t) => t.clone(),
        _ => {
            return Err(ConfigError::new(
                &pkey,
                format!("must be a table of options, like {name} = {{ ... }}"),
            ))
        }
    };
    let when = match opts.remove("when") {
        Some(w) => Some(Condition::parse(&w, &format!("{pkey}.when"))?),
        None => None,
    };
    let opts = toml::Value::Table(opts);
    let inner: Box<dyn Processor> = match name.as_str() {
        "add_fields" => Box::new(add_fields::AddFields::new(opts, &pkey)?),
        "add_host_metadata" => Box::new(add_host_metadata::AddHostMetadata::new(opts, &pkey)?),
        "add_kubernetes_metadata" => Box::new(add_kubernetes_metadata::AddKubernetesMetadata::new(
            opts, &pkey,
        )?),
        "add_tags" => Box::new(add_tags::AddTags::new(opts, &pkey)?),
        "copy_fields" => Box::new(copy_fields::CopyFields::new(opts, &pkey)?),
        "decode_json_fields" => Box::new(decode_json_fields::DecodeJsonFields::new(opts, &pkey)?),
        "dissect" => Box::new(dissect::Dissect::new(opts, &pkey)?),
        "drop_event" => Box::new(drop_event::DropEvent::new(opts, &pkey)?),
        "drop_fields" => Box::new(drop_fields::DropFields::new(opts, &pkey)?),
        "fingerprint" => Box::new(fingerprint::Fingerprint::new(opts, &pkey)?),
        "include_fields" => Box::new(include_fields::IncludeFields::new(opts, &pkey)?),
        "rename" => Box::new(rename::Rename::new(opts, &pkey)?),
        "truncate_fields" => Box::new(truncate_fields::TruncateFields::new(opts, &pkey)?),
        other => return Err(unknown_processor(other, &pkey)),
    };
    Ok(match when {
        Some(when) => Box::new(Conditional { when, inner }),
        None => inner,
    })
}

/// A processor that runs only when its `when` condition holds.
#[derive(Debug)]
struct Conditional {
    when: Condition,
    inner: Box<dyn Processor>,
}

impl Processor for Conditional {
    fn run(&self, event: &mut Event) -> Outcome {
        if self.when.check(event) {
            self.inner.run(event)
        } else {
            Outcome::Keep
        }
    }
}

// ---- configuration helpers ----

/// Deserialise a processor's options; unknown or missing options get their own key path.
pub(crate) fn options<T: DeserializeOwned>(v: toml::Value, key: &str) -> Result<T, ConfigError> {
    crate::config::typed(v, key).map_err(refine_error)
}

fn refine_error(mut e: ConfigError) -> ConfigError {
    if let Some(name) = between(&e.message, "unknown field `", "`") {
        if !e.key.ends_with(&format!(".{name}")) {
            e.key = format!("{}.{name}", e.key);
        }
        e.message = format!("{}; remove it or fix its spelling", e.message);
    } else if let Some(name) = between(&e.message, "missing field `", "`") {
        e.key = format!("{}.{name}", e.key);
        e.message = "this option is required; add it".into();
    }
    e
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// A list option that also accepts a single string, as Beats' config loader does.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `{ from = "a", to = "b" }`, used by rename and copy_fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FromTo {
    pub from: String,
    pub to: String,
}

/// Options of the processors that move values between fields (`rename`, `copy_fields`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FromToOpts {
    pub fields: Vec<FromTo>,
    #[serde(default)]
    pub ignore_missing: bool,
    #[serde(default = "crate::config::yes")]
    pub fail_on_error: bool,
}

/// TOML to JSON; datetimes become their RFC 3339 text.
pub(crate) fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

// ---- event access helpers ----

/// A field value found in an event, borrowed when possible.
#[derive(Debug)]
pub(crate) enum Found<'a> {
    Ref(&'a Value),
    Str(&'a str),
    Owned(Value),
}

impl Found<'_> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Found::Str(s) => Some(s),
            Found::Ref(Value::String(s)) | Found::Owned(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The value when it is not a plain string (numbers, bools, arrays, objects).
    pub(crate) fn value(&self) -> Option<&Value> {
        match self {
            Found::Ref(v) => Some(v),
            Found::Owned(v) => Some(v),
            Found::Str(_) => None,
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Found::Ref(v) => v.clone(),
            Found::Str(s) => Value::String(s.to_string()),
            Found::Owned(v) => v,
        }
    }
}

const META_PREFIX: &str = "@metadata.";

/// Read a dotted path without converting a line event into a map (the hot path for `when`).
pub(crate) fn lookup<'a>(ev: &'a Event, path: &str) -> Option<Found<'a>> {
    if path == "@timestamp" {
        return ev.get_value(path).map(Found::Owned);
    }
    if let Some(sub) = path.strip_prefix(META_PREFIX) {
        return ev
            .meta
            .as_ref()
            .and_then(|m| get_path(m, sub))
            .map(Found::Ref);
    }
    match &ev.fields {
        Fields::Map(m) => get_path(m, path).map(Found::Ref),
        Fields::Json(j) => get_path(j.map(), path).map(Found::Ref),
        Fields::Line(l) => {
            let common = &l.source.common.fields;
            let head = path.split('.').next().unwrap_or(path);
            // Input fields under root may replace `message`/`log` (as in the serialised event).
            if (head == "message" || head == "log") && !common.contains_key(head) {
                return match path {
                    "message" => Some(Found::Str(&l.message)),
                    "log.file.path" => Some(Found::Str(&l.source.path)),
                    "log.file.device_id" => Some(Found::Str(&l.source.device_id)),
                    "log.file.inode" => Some(Found::Str(&l.source.inode)),
                    "log.file.fingerprint" => l.source.fingerprint.as_deref().map(Found::Str),
                    "log.offset" => Some(Found::Owned(Value::from(l.offset))),
                    _ => ev.get_value(path).map(Found::Owned),
                };
            }
            // A line event holds only `message`, `log` and the input's common fields.
            get_path(common, path).map(Found::Ref)
        }
    }
}

/// Write a dotted path; `@metadata.*` goes to the metadata, `@timestamp` must be RFC 3339.
pub(crate) fn put_field(ev: &mut Event, path: &str, value: Value) -> Result<(), String> {
    if path == "@timestamp" {
        let ts = value
            .as_str()
            .and_then(parse_timestamp)
            .ok_or_else(|| format!("cannot set @timestamp to {value}: not an RFC 3339 time"))?;
        ev.timestamp = ts;
        return Ok(());
    }
    if path == "@metadata" {
        return match value {
            Value::Object(m) => {
                ev.meta = Some(Box::new(m));
                Ok(())
            }
            _ => Err("@metadata can only be set to an object".into()),
        };
    }
    if let Some(sub) = path.strip_prefix(META_PREFIX) {
        put_path(ev.meta.get_or_insert_with(Box::default), sub, value);
        return Ok(());
    }
    put_path(ev.fields_mut(), path, value);
    Ok(())
}

/// Remove a dotted path; `None` when it was absent. `@timestamp` cannot be removed.
pub(crate) fn remove_field(ev: &mut Event, path: &str) -> Option<Value> {
    if path == "@timestamp" {
        return None;
    }
    if path == "@metadata" {
        return ev.meta.take().map(|m| Value::Object(*m));
    }
    if let Some(sub) = path.strip_prefix(META_PREFIX) {
        return ev.meta.as_mut().and_then(|m| remove_path(m, sub));
    }
    // Removing an absent field must not convert a line event.
    lookup(ev, path)?;
    remove_path(ev.fields_mut(), path)
}

pub(crate) fn has_field(ev: &Event, path: &str) -> bool {
    lookup(ev, path).is_some()
}

/// A copy of everything a processor may change, for `fail_on_error` roll-backs.
pub(crate) struct Backup {
    timestamp: i64,
    fields: Map<String, Value>,
    meta: Option<Box<Map<String, Value>>>,
}

impl Backup {
    pub(crate) fn take(ev: &mut Event) -> Backup {
        Backup {
            timestamp: ev.timestamp,
            fields: ev.fields_mut().clone(),
            meta: ev.meta.clone(),
        }
    }

    pub(crate) fn restore(self, ev: &mut Event) {
        ev.timestamp = self.timestamp;
        ev.fields = Fields::Map(self.fields);
        ev.meta = self.meta;
    }
}

/// Append to `error.message`: a string first, an array once there are several, as the
/// Elasticsearch mapping of `error.message` accepts both.
pub(crate) fn append_error(ev: &mut Event, msg: String) {
    let fields = ev.fields_mut();
    let error = fields
        .entry("error")
        .or_insert_with(|| Value::Object(Map::new()));
    if !error.is_object() {
        *error = Value::Object(Map::new());
    }
    let Value::Object(error) = error else { return };
    match error.get_mut("message") {
        None => {
            error.insert("message".into(), Value::String(msg));
        }
        Some(Value::Array(a)) => a.push(Value::String(msg)),
        Some(old) => {
            let prev = old.take();
            *old = Value::Array(vec![prev, Value::String(msg)]);
        }
    }
}

/// Append tags to the array at `key` (Beats' AddTagsWithKey); fails when the field is not an
/// array. Tags already present are not repeated.
pub(crate) fn add_tags(
    fields: &mut Map<String, Value>,
    key: &str,
    tags: &[String],
) -> Result<(), String> {
    if let Some(existing) = crate::event::get_path(fields, key) {
        if !existing.is_array() {
            return Err(format!(
                "expected an array of strings at {key}, found {existing}"
            ));
        }
    } else {
        put_path(fields, key, Value::Array(Vec::new()));
    }
    if let Some(Value::Array(arr)) = get_path_mut(fields, key) {
        for t in tags {
            if !arr.iter().any(|v| v.as_str() == Some(t)) {
                arr.push(Value::String(t.clone()));
            }
        }
    }
    Ok(())
}

/// Mutable dotted-path lookup (a key that itself contains dots is also found).
pub(crate) fn get_path_mut<'a>(m: &'a mut Map<String, Value>, path: &str) -> Option<&'a mut Value> {
    if m.contains_key(path) {
        return m.get_mut(path);
    }
    let (head, rest) = path.split_once('.')?;
    match m.get_mut(head)? {
        Value::Object(inner) => get_path_mut(inner, rest),
        _ => None,
    }
}

/// Merge `src` into `dst`: objects merge key by key, anything else replaces (Beats' DeepUpdate).
pub(crate) fn deep_update(dst: &mut Map<String, Value>, src: &Map<String, Value>, overwrite: bool) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => deep_update(d, s, overwrite),
            (Some(_), _) if !overwrite => {}
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Like `deep_update`, consuming `src` (no clones).
pub(crate) fn deep_update_owned(
    dst: &mut Map<String, Value>,
    src: Map<String, Value>,
    overwrite: bool,
) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => deep_update_owned(d, s, overwrite),
            (Some(_), _) if !overwrite => {}
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// Parse RFC 3339 / ISO 8601 (`2026-11-25T10:00:00.123Z`, `+01:00`, `+0100`) to Unix nanoseconds.
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') => {
            let rest = &s[i + 1..];
            let (oh, om) = match rest.len() {
                5 if rest.as_bytes()[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                _ => return None,
            };
            let secs = oh * 3600 + om * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// (year, month, day) to days since 1970-01-01; the inverse of `event::civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::sync::Arc;

    use serde_json::{json, Map, Value};

    use crate::event::{BeatInfo, Event, FileSource, InputCommon, LineFields};

    pub fn beat() -> BeatInfo {
        BeatInfo {
            beat: "oxibeat".into(),
            version: "0.1.0".into(),
            hostname: "web-1".into(),
            name: "web-1".into(),
            agent_id: "a".into(),
            ephemeral_id: "e".into(),
        }
    }

    /// A line event as filestream makes it, with `fields.env = prod` and `tags = [web]`.
    pub fn line(msg: &str) -> Event {
        let mut extra = Map::new();
        extra.insert("fields".into(), json!({"env": "prod"}));
        extra.insert("tags".into(), json!(["web"]));
        let common = Arc::new(InputCommon::new("app", "filestream", &beat(), extra));
        let source = Arc::new(FileSource::new(
            "/var/log/app.log".into(),
            "1".into(),
            "2".into(),
            None,
            common,
        ));
        Event::line(
            1_000_000_000,
            LineFields {
                message: msg.into(),
                offset: 10,
                flags: 0,
                source,
                stream: None,
            },
            None,
        )
    }

    pub fn map(v: Value) -> Event {
        match v {
            Value::Object(m) => Event::from_map(0, m),
            _ => panic!("test event must be an object"),
        }
    }

    /// Build a chain from TOML text holding `[[processors]]` entries.
    pub fn chain(text: &str) -> Result<super::Chain, crate::config::ConfigError> {
        let v: toml::Value = toml::from_str(text).expect("test TOML parses");
        let list = v
            .get("processors")
            .and_then(|p| p.as_array())
            .cloned()
            .unwrap_or_default();
        super::build(&list, "processors")
    }

    pub fn err(text: &str) -> crate::config::ConfigError {
        chain(text).expect_err("config must be rejected")
    }

    /// Run the chain and return the event's fields as JSON (and whether it was kept).
    pub fn run(text: &str, mut ev: Event) -> (super::Outcome, Value) {
        let c = chain(text).expect("valid processors");
        let out = c.run(&mut ev);
        (out, ev.to_value(&beat()))
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_list_is_empty_chain() {
        assert!(build(&[], "processors").unwrap().is_empty());
    }

    #[test]
    fn unknown_processor_names_its_key() {
        let e = err("[[processors]]\nadd_field = { fields = { a = 1 } }\n");
        assert_eq!(e.key, "processors[0].add_field");
        assert!(e.message.contains("unknown processor \"add_field\""), "{e}");
        assert!(e.message.contains("add_fields"), "{e}");
        let e = err("[[processors]]\nadd_field = { when = { nope = 1 } }\n");
        assert_eq!(e.key, "processors[0].add_field");
        let e = err("[[processors]]\ntruncate_fields = { fields = [\"a\"], max_bytes = 1 }\n[[processors]]\nrename_fields = {}\n");
        assert_eq!(e.key, "processors[1].rename_fields");
    }

    #[test]
    fn two_processors_in_one_entry_rejected() {
        let e = err("[[processors]]\ndrop_event = {}\nadd_tags = { tags = [\"x\"] }\n");
        assert_eq!(e.key, "processors[0]");
        assert!(e.message.contains("exactly one processor"), "{e}");
    }

    #[test]
    fn options_must_be_a_table() {
        let e = err("[[processors]]\ndrop_event = 1\n");
        assert_eq!(e.key, "processors[0].drop_event");
        assert!(e.message.contains("table of options"), "{e}");
    }

    #[test]
    fn unknown_option_gets_its_own_key() {
        let e =
            err("[[processors]]\ndrop_event = {}\n[[processors]]\nadd_tags = { tag = [\"x\"] }\n");
        assert_eq!(e.key, "processors[1].add_tags.tag");
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn missing_option_gets_its_own_key() {
        let e = err("[[processors]]\nadd_tags = {}\n");
        assert_eq!(e.key, "processors[0].add_tags.tags");
        assert!(e.message.contains("required"), "{e}");
    }

    #[test]
    fn input_processor_key_prefix_is_kept() {
        let v: toml::Value =
            toml::from_str("p = [{ drop_event = { when = { regexp = { message = \"(\" } } } }]")
                .unwrap();
        let list = v["p"].as_array().unwrap().clone();
        let e = build(&list, "inputs[0].processors").unwrap_err();
        assert_eq!(
            e.key,
            "inputs[0].processors[0].drop_event.when.regexp.message"
        );
    }

    fn load(text: &str) -> Result<crate::config::Config, ConfigError> {
        crate::config::Config::from_str_with(text, "test.toml", &[], &|_| None).map(|(c, _)| c)
    }

    #[test]
    fn config_load_names_global_processor_keys() {
        let text = r#"
[[processors]]
add_fields = { target = "project", fields = { name = "oxibeat" } }
[[processors]]
drop_event = { when = { regexp = { message = "^DEBUG" } } }
[[processors]]
dissect = { tokenizer = "%{a" }
[output.console]
"#;
        let e = load(text).unwrap_err();
        assert_eq!(e.key, "processors[2].dissect.tokenizer");
        assert!(
            e.to_string()
                .starts_with("processors[2].dissect.tokenizer: "),
            "{e}"
        );
        assert!(load(&text.replace("%{a\"", "%{a}\"")).is_ok());
    }

    #[test]
    fn config_load_names_input_processor_keys() {
        let text = r#"
[[inputs]]
type = "filestream"
id = "a"
paths = ["/x"]
[[inputs.processors]]
add_tags = { tags = "x" }
[[inputs.processors]]
drop_event = { when = { regexp = { message = "(" } } }
[output.console]
"#;
        let e = load(text).unwrap_err();
        assert_eq!(
            e.key,
            "inputs[0].processors[1].drop_event.when.regexp.message"
        );
        assert!(e.message.contains("invalid regular expression"), "{e}");
    }

    #[test]
    fn one_or_many_type_error_says_what_is_expected() {
        let e = err("[[processors]]\nadd_tags = { tags = 1 }\n");
        assert!(e.message.contains("a string or a list of strings"), "{e}");
    }

    #[test]
    fn realistic_chain_on_a_line_event() {
        let text = r#"
[[processors]]
dissect = { tokenizer = "%{ts} [%{level}] %{msg}", target_prefix = "" }
[[processors]]
rename = { fields = [{ from = "msg", to = "event.original" }] }
[[processors]]
drop_fields = { fields = ["ts", "agent"] }
[[processors]]
add_fields = { target = "service", fields = { name = "api" } }
[[processors]]
drop_event = { when = { equals = { level = "DEBUG" } } }
"#;
        let (out, v) = run(text, line("12:00 [INFO] user logged in"));
        assert_eq!(out, Outcome::Keep);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["event"]["original"], "user logged in");
        assert_eq!(v["service"]["name"], "api");
        assert!(v.get("ts").is_none());
        assert!(v.get("agent").is_none());
        assert_eq!(v["log"]["offset"], 10);
        assert_eq!(run(text, line("12:00 [DEBUG] noise")).0, Outcome::Drop);
    }

    #[test]
    fn when_guards_a_processor() {
        let cfg = "[[processors]]\nadd_tags = { tags = [\"err\"], when = { contains = { message = \"ERROR\" } } }\n";
        let (_, v) = run(cfg, line("an ERROR here"));
        assert_eq!(v["tags"], json!(["web", "err"]));
        let (_, v) = run(cfg, line("fine"));
        assert_eq!(v["tags"], json!(["web"]));
    }

    #[test]
    fn lookup_on_line_event_without_conversion() {
        let ev = line("hello");
        assert_eq!(lookup(&ev, "message").unwrap().as_str(), Some("hello"));
        assert_eq!(
            lookup(&ev, "log.file.path").unwrap().as_str(),
            Some("/var/log/app.log")
        );
        assert_eq!(lookup(&ev, "log.offset").unwrap().into_value(), json!(10));
        assert_eq!(lookup(&ev, "fields.env").unwrap().as_str(), Some("prod"));
        assert_eq!(
            lookup(&ev, "input.type").unwrap().as_str(),
            Some("filestream")
        );
        assert!(lookup(&ev, "nope").is_none());
        assert!(lookup(&ev, "log.nope").is_none());
        assert_eq!(
            lookup(&ev, "@timestamp").unwrap().as_str(),
            Some("1970-01-01T00:00:01.000Z")
        );
        assert!(matches!(ev.fields, Fields::Line(_)));
    }

    #[test]
    fn metadata_paths() {
        let mut ev = map(json!({"a": 1}));
        put_field(&mut ev, "@metadata.pipeline", json!("p1")).unwrap();
        assert_eq!(
            lookup(&ev, "@metadata.pipeline").unwrap().as_str(),
            Some("p1")
        );
        assert_eq!(
            remove_field(&mut ev, "@metadata.pipeline"),
            Some(json!("p1"))
        );
        assert!(remove_field(&mut ev, "@timestamp").is_none());
    }

    #[test]
    fn error_messages_accumulate() {
        let mut ev = map(json!({}));
        append_error(&mut ev, "one".into());
        assert_eq!(ev.get_value("error.message").unwrap(), json!("one"));
        append_error(&mut ev, "two".into());
        append_error(&mut ev, "three".into());
        assert_eq!(
            ev.get_value("error.message").unwrap(),
            json!(["one", "two", "three"])
        );
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2025-07-08T12:48:32.528Z"),
            Some(1_751_978_912_528_000_000)
        );
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00.000-0100"),
            Some(3_600_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:00.000000001Z"),
            Some(951_782_400_000_000_001)
        );
        for bad in [
            "",
            "2025-07-08",
            "2025-13-01T00:00:00Z",
            "2025-07-08T12:48:32",
            "x025-07-08T12:48:32Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
