//! `truncate_fields`: cut string fields to `max_bytes` or `max_characters` and flag the
//! event with `log.flags: ["truncated"]`, as Beats does. Byte cuts never split a UTF-8
//! character. A line event's `message` is cut in place, without building its map.

use serde::Deserialize;
use serde_json::Value;

use super::{add_tags, append_error, get_path_mut, lookup, options, Backup, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::{flags, Event, Fields};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    fields: Vec<String>,
    max_bytes: Option<usize>,
    max_characters: Option<usize>,
    #[serde(default = "crate::config::yes")]
    fail_on_error: bool,
    #[serde(default)]
    ignore_missing: bool,
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Bytes(usize),
    Chars(usize),
}

#[derive(Debug)]
pub struct TruncateFields {
    fields: Vec<String>,
    limit: Limit,
    fail_on_error: bool,
    ignore_missing: bool,
}

impl TruncateFields {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        let limit = match (o.max_bytes, o.max_characters) {
            (Some(b), None) if b > 0 => Limit::Bytes(b),
            (None, Some(c)) if c > 0 => Limit::Chars(c),
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    key,
                    "max_bytes and max_characters are mutually exclusive; set one",
                ))
            }
            (None, None) => return Err(ConfigError::new(key, "set max_bytes or max_characters")),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    format!("{key}.max_bytes"),
                    "must be greater than 0",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    format!("{key}.max_characters"),
                    "must be greater than 0",
                ))
            }
        };
        if o.fields.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.fields"),
                "name at least one field",
            ));
        }
        Ok(TruncateFields {
            fields: o.fields,
            limit,
            fail_on_error: o.fail_on_error,
            ignore_missing: o.ignore_missing,
        })
    }

    fn truncate_one(&self, ev: &mut Event, field: &str) -> Result<(), String> {
        if field == "message" {
            // Unless an input field under root replaces `message`, the line holds it.
            if let Fields::Line(l) = &mut ev.fields {
                if l.source.common.fields.contains_key("message") {
                    return self.truncate_map(ev, field);
                }
                if let Some(cut) = cut_len(&l.message, self.limit) {
                    l.message.truncate(cut);
                    l.flags |= flags::TRUNCATED;
                }
                return Ok(());
            }
        }
        self.truncate_map(ev, field)
    }

    fn truncate_map(&self, ev: &mut Event, field: &str) -> Result<(), String> {
        match lookup(ev, field) {
            None if self.ignore_missing => return Ok(()),
            None => {
                return Err(format!(
                    "could not fetch value for key: {field}, key not found"
                ))
            }
            Some(found) if found.as_str().is_none() => {
                return Err(format!(
                    "value cannot be truncated: {} (field {field} is not a string)",
                    found.into_value()
                ))
            }
            Some(found) => {
                // Check on the borrowed value first: most events need no cut and no map.
                if found
                    .as_str()
                    .and_then(|s| cut_len(s, self.limit))
                    .is_none()
                {
                    return Ok(());
                }
            }
        }
        let fields = ev.fields_mut();
        if let Some(Value::String(s)) = get_path_mut(fields, field) {
            if let Some(cut) = cut_len(s, self.limit) {
                s.truncate(cut);
            }
        }
        add_tags(fields, "log.flags", &["truncated".to_string()])
    }
}

/// The byte length to cut `s` to, or `None` when it already fits.
fn cut_len(s: &str, limit: Limit) -> Option<usize> {
    match limit {
        Limit::Bytes(max) => {
            if s.len() <= max {
                return None;
            }
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            Some(cut)
        }
        Limit::Chars(max) => s.char_indices().nth(max).map(|(i, _)| i),
    }
}

impl Processor for TruncateFields {
    fn run(&self, event: &mut Event) -> Outcome {
        let mut backup = (self.fail_on_error && self.fields.len() > 1).then(|| Backup::take(event));
        for f in &self.fields {
            if let Err(e) = self.truncate_one(event, f) {
                tracing::debug!(error = %e, "truncate_fields failed");
                if self.fail_on_error {
                    if let Some(b) = backup.take() {
                        b.restore(event);
                    }
                    append_error(event, format!("failed to truncate fields: {e}"));
                    break;
                }
            }
        }
        Outcome::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn line_message_cut_in_place() {
        let c =
            chain("[[processors]]\ntruncate_fields = { fields = [\"message\"], max_bytes = 5 }\n")
                .unwrap();
        let mut ev = line("hello world");
        c.run(&mut ev);
        assert!(matches!(ev.fields, Fields::Line(_)), "no map built");
        let v = ev.to_value(&beat());
        assert_eq!(v["message"], "hello");
        assert_eq!(v["log"]["flags"], json!(["truncated"]));
        let mut short = line("hi");
        c.run(&mut short);
        assert!(short.to_value(&beat())["log"].get("flags").is_none());
    }

    #[test]
    fn bytes_respect_utf8_and_chars_count_chars() {
        assert_eq!(cut_len("héllo", Limit::Bytes(2)), Some(1));
        assert_eq!(cut_len("héllo", Limit::Chars(2)), Some(3));
        assert_eq!(cut_len("hé", Limit::Chars(2)), None);
        assert_eq!(cut_len("abc", Limit::Bytes(3)), None);
    }

    #[test]
    fn map_fields_and_flags() {
        let (_, v) = run(
            "[[processors]]\ntruncate_fields = { fields = [\"a.b\", \"c\"], max_characters = 3 }\n",
            map(json!({"a": {"b": "ééééé"}, "c": "xy", "log": {"flags": ["multiline"]}})),
        );
        assert_eq!(v["a"]["b"], "ééé");
        assert_eq!(v["c"], "xy");
        assert_eq!(v["log"]["flags"], json!(["multiline", "truncated"]));
    }

    #[test]
    fn non_string_and_missing() {
        let (_, v) = run(
            "[[processors]]\ntruncate_fields = { fields = [\"s\", \"n\"], max_bytes = 1 }\n",
            map(json!({"s": "abc", "n": 5})),
        );
        assert_eq!(v["s"], "abc", "rolled back");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be truncated"));
        let (_, v) = run(
            "[[processors]]\ntruncate_fields = { fields = [\"n\", \"s\"], max_bytes = 1, fail_on_error = false }\n",
            map(json!({"s": "abc", "n": 5})),
        );
        assert_eq!(v["s"], "a");
        assert!(v.get("error").is_none());
        let (_, v) = run(
            "[[processors]]\ntruncate_fields = { fields = [\"x\"], max_bytes = 1 }\n",
            map(json!({})),
        );
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("key not found"));
        let (_, v) = run(
            "[[processors]]\ntruncate_fields = { fields = [\"x\"], max_bytes = 1, ignore_missing = true }\n",
            map(json!({})),
        );
        assert!(v.get("error").is_none());
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\ntruncate_fields = { fields = [\"a\"] }\n");
        assert_eq!(e.key, "processors[0].truncate_fields");
        assert!(e.message.contains("max_bytes or max_characters"));
        let e = err("[[processors]]\ntruncate_fields = { fields = [\"a\"], max_bytes = 1, max_characters = 1 }\n");
        assert!(e.message.contains("mutually exclusive"));
        let e = err("[[processors]]\ntruncate_fields = { fields = [\"a\"], max_bytes = 0 }\n");
        assert_eq!(e.key, "processors[0].truncate_fields.max_bytes");
        let e = err("[[processors]]\ntruncate_fields = { fields = [\"a\"], max_bytes = -1 }\n");
        assert_eq!(e.key, "processors[0].truncate_fields.max_bytes");
        let e = err("[[processors]]\ntruncate_fields = { fields = [], max_bytes = 1 }\n");
        assert_eq!(e.key, "processors[0].truncate_fields.fields");
    }
}
