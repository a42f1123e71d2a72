//! `drop_fields`: remove fields; `/regex/` entries remove every matching field path.
//! `@timestamp` and `type` are never dropped, as in Beats.

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{options, remove_field, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::{remove_path, Event, Fields};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    fields: Vec<String>,
    #[serde(default)]
    ignore_missing: bool,
    /// Also remove objects left empty by a removal.
    #[serde(default)]
    cleanup: bool,
}

#[derive(Debug)]
pub struct DropFields {
    fields: Vec<String>,
    patterns: Vec<Regex>,
    ignore_missing: bool,
    cleanup: bool,
}

impl DropFields {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        let mut fields = Vec::new();
        let mut patterns = Vec::new();
        for (i, f) in o.fields.into_iter().enumerate() {
            if f.len() > 2 && f.starts_with('/') && f.ends_with('/') {
                let re = Regex::new(&f[1..f.len() - 1]).map_err(|e| {
                    ConfigError::new(
                        format!("{key}.fields[{i}]"),
                        format!(
                            "invalid regular expression: {e}; fix the pattern between the slashes"
                        ),
                    )
                })?;
                patterns.push(re);
            } else if f != "@timestamp" && f != "type" && !f.starts_with("type.") {
                fields.push(f);
            }
        }
        if fields.is_empty() && patterns.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.fields"),
                "name at least one field to drop (@timestamp and type cannot be dropped)",
            ));
        }
        Ok(DropFields {
            fields,
            patterns,
            ignore_missing: o.ignore_missing,
            cleanup: o.cleanup,
        })
    }
}

impl Processor for DropFields {
    fn run(&self, event: &mut Event) -> Outcome {
        for f in &self.fields {
            if remove_field(event, f).is_none() {
                if !self.ignore_missing {
                    // Beats reports the missing key but keeps the event unchanged otherwise.
                    tracing::debug!(field = %f, "drop_fields: field not found");
                }
            } else if self.cleanup {
                remove_empty_parents(event.fields_mut(), f);
            }
        }
        if !self.patterns.is_empty() {
            let mut matched = Vec::new();
            let fields = match &event.fields {
                Fields::Map(m) => m,
                Fields::Line(_) | Fields::Json(_) => event.fields_mut(),
            };
            let mut prefix = String::new();
            collect_leaves(fields, &mut prefix, &mut |path| {
                if self.patterns.iter().any(|re| re.is_match(path)) {
                    matched.push(path.to_string());
                }
            });
            if !matched.is_empty() {
                let fields = event.fields_mut();
                for p in matched {
                    remove_path(fields, &p);
                    if self.cleanup {
                        remove_empty_parents(fields, &p);
                    }
                }
            }
        }
        Outcome::Keep
    }
}

/// After removing `path`, remove its parent objects that are now empty (`cleanup`).
fn remove_empty_parents(m: &mut Map<String, Value>, path: &str) {
    let mut parent = path;
    while let Some((p, _)) = parent.rsplit_once('.') {
        parent = p;
        match crate::event::get_path(m, parent) {
            Some(Value::Object(o)) if o.is_empty() => {
                remove_path(m, parent);
            }
            _ => break,
        }
    }
}

/// Call `f` with the dotted path of every leaf (non-object) value.
fn collect_leaves(m: &Map<String, Value>, prefix: &mut String, f: &mut dyn FnMut(&str)) {
    for (k, v) in m {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(k);
        match v {
            Value::Object(inner) if !inner.is_empty() => collect_leaves(inner, prefix, f),
            _ => f(prefix),
        }
        prefix.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::json;

    #[test]
    fn drops_named_fields() {
        let (_, v) = run(
            "[[processors]]\ndrop_fields = { fields = [\"agent\", \"log.file.inode\", \"nope\"], ignore_missing = true }\n",
            line("x"),
        );
        assert!(v.get("agent").is_none());
        assert!(v["log"]["file"].get("inode").is_none());
        assert_eq!(v["log"]["file"]["path"], "/var/log/app.log");
        assert_eq!(v["message"], "x");
    }

    #[test]
    fn missing_field_keeps_event() {
        let (out, v) = run(
            "[[processors]]\ndrop_fields = { fields = [\"nope\"] }\n",
            map(json!({"a": 1})),
        );
        assert_eq!(out, super::super::Outcome::Keep);
        assert_eq!(v["a"], 1);
        assert!(v.get("error").is_none());
    }

    #[test]
    fn timestamp_and_type_are_kept() {
        let (_, v) = run(
            "[[processors]]\ndrop_fields = { fields = [\"@timestamp\", \"type\", \"a\"] }\n",
            map(json!({"a": 1, "type": "t"})),
        );
        assert_eq!(v["type"], "t");
        assert!(v.get("a").is_none());
        assert!(v.get("@timestamp").is_some());
    }

    #[test]
    fn regex_entries() {
        let (_, v) = run(
            "[[processors]]\ndrop_fields = { fields = ['/^kubernetes\\.labels\\./'] }\n",
            map(json!({"kubernetes": {"labels": {"a": 1, "b": 2}, "pod": "p"}})),
        );
        assert_eq!(v["kubernetes"], json!({"labels": {}, "pod": "p"}));
    }

    #[test]
    fn cleanup_removes_empty_parents() {
        let cfg =
            "[[processors]]\ndrop_fields = { fields = [\"a.b.c\", \"x.y\"], cleanup = true }\n";
        let (_, v) = run(
            cfg,
            map(json!({"a": {"b": {"c": 1}}, "x": {"y": 1, "z": 2}})),
        );
        assert!(v.get("a").is_none());
        assert_eq!(v["x"], json!({"z": 2}));
        let cfg = "[[processors]]\ndrop_fields = { fields = ['/^k\\.l\\./'], cleanup = true }\n";
        let (_, v) = run(cfg, map(json!({"k": {"l": {"a": 1}}})));
        assert!(v.get("k").is_none());
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\ndrop_fields = { fields = ['/(/'] }\n");
        assert_eq!(e.key, "processors[0].drop_fields.fields[0]");
        let e = err("[[processors]]\ndrop_fields = { fields = [\"@timestamp\"] }\n");
        assert_eq!(e.key, "processors[0].drop_fields.fields");
        let e = err("[[processors]]\ndrop_fields = { fields = \"a\" }\n");
        assert_eq!(e.key, "processors[0].drop_fields.fields");
        let e =
            err("[[processors]]\ndrop_fields = { fields = [\"a\"], ignore_missing = \"yes\" }\n");
        assert_eq!(e.key, "processors[0].drop_fields.ignore_missing");
    }
}
