//! `include_fields`: keep only the listed fields. `@timestamp` and `@metadata` live outside
//! the fields and are always kept, and so is `type`, as in Beats.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{options, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::{get_path, put_path, remove_path, Event};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    fields: Vec<String>,
}

#[derive(Debug)]
pub struct IncludeFields {
    fields: Vec<String>,
}

impl IncludeFields {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        let mut fields: Vec<String> = o
            .fields
            .into_iter()
            .filter(|f| f != "@timestamp" && f != "@metadata")
            .collect();
        if !fields.iter().any(|f| f == "type") {
            fields.push("type".into());
        }
        Ok(IncludeFields { fields })
    }
}

impl Processor for IncludeFields {
    fn run(&self, event: &mut Event) -> Outcome {
        let mut old = std::mem::take(event.fields_mut());
        let mut kept = Map::new();
        for f in &self.fields {
            // Move, not clone; a field listed twice (`log`, `log.file`) was moved already.
            if let Some(v) = remove_path(&mut old, f) {
                merge_at(&mut kept, f, v);
            }
        }
        *event.fields_mut() = kept;
        Outcome::Keep
    }
}

/// Put `v` at `path`, merging objects with what an earlier, overlapping entry put there.
fn merge_at(m: &mut Map<String, Value>, path: &str, v: Value) {
    if let (Some(Value::Object(_)), Value::Object(src)) = (get_path(m, path), &v) {
        if let Some(Value::Object(dst)) = super::get_path_mut(m, path) {
            super::deep_update(dst, src, true);
            return;
        }
    }
    put_path(m, path, v);
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::json;

    #[test]
    fn keeps_only_listed() {
        let (_, v) = run(
            "[[processors]]\ninclude_fields = { fields = [\"message\", \"log.file.path\", \"nope\"] }\n",
            line("hello"),
        );
        let obj = v.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, ["@timestamp", "@metadata", "message", "log"]);
        assert_eq!(v["log"], json!({"file": {"path": "/var/log/app.log"}}));
    }

    #[test]
    fn overlapping_entries_merge() {
        let (_, v) = run(
            "[[processors]]\ninclude_fields = { fields = [\"a.b\", \"a\"] }\n",
            map(json!({"a": {"b": 1, "c": 2}, "d": 3, "type": "t"})),
        );
        assert_eq!(v["a"], json!({"b": 1, "c": 2}));
        assert_eq!(v["type"], "t");
        assert!(v.get("d").is_none());
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\ninclude_fields = {}\n");
        assert_eq!(e.key, "processors[0].include_fields.fields");
        let e = err("[[processors]]\ninclude_fields = { fields = [1] }\n");
        assert_eq!(e.key, "processors[0].include_fields.fields[0]");
    }
}
