//! `decode_json_fields`: parse JSON held in string fields.
//!
//! As in Beats: `max_depth` (default 1) also decodes JSON strings nested in the result,
//! `process_array` lets that recursion enter arrays, `target` (default: the field itself;
//! `""` = the event root, merged with `overwrite_keys`/`expand_keys` rules), `add_error_key`
//! writes `error.{message,type,data,field}` on a parse failure, and `document_id` moves a key
//! of the decoded object to `@metadata._id`. Non-string fields are skipped silently.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{deep_update_owned, lookup, options, parse_timestamp, put_field, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::{put_path, remove_path, Event};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    fields: Vec<String>,
    #[serde(default)]
    process_array: bool,
    #[serde(default = "one")]
    max_depth: usize,
    target: Option<String>,
    #[serde(default)]
    overwrite_keys: bool,
    #[serde(default)]
    add_error_key: bool,
    #[serde(default)]
    expand_keys: bool,
    #[serde(default)]
    document_id: String,
}

fn one() -> usize {
    1
}

#[derive(Debug)]
pub struct DecodeJsonFields {
    fields: Vec<String>,
    process_array: bool,
    max_depth: usize,
    target: Option<String>,
    overwrite_keys: bool,
    add_error_key: bool,
    expand_keys: bool,
    document_id: String,
}

impl DecodeJsonFields {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        if o.fields.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.fields"),
                "name at least one field",
            ));
        }
        if o.max_depth == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_depth"),
                "must be at least 1",
            ));
        }
        Ok(DecodeJsonFields {
            fields: o.fields,
            process_array: o.process_array,
            max_depth: o.max_depth,
            target: o.target,
            overwrite_keys: o.overwrite_keys,
            add_error_key: o.add_error_key,
            expand_keys: o.expand_keys,
            document_id: o.document_id,
        })
    }

    fn decode_field(&self, ev: &mut Event, field: &str) -> Result<(), String> {
        let parsed = {
            let Some(found) = lookup(ev, field) else {
                return Ok(());
            };
            let Some(text) = found.as_str() else {
                return Ok(());
            };
            serde_json::from_str::<Value>(text).map_err(|e| {
                // The raw text goes into `error.data` only when asked for.
                let data = self.add_error_key.then(|| text.to_string());
                (format!("parsing input as JSON: {e}"), data)
            })
        };
        let mut output = match parsed {
            Ok(v) => v,
            Err((msg, data)) => {
                if self.add_error_key {
                    set_json_error(ev, &msg, data, Some(field));
                }
                return Err(msg);
            }
        };
        if self.max_depth > 1 {
            deep_decode(&mut output, self.max_depth - 1, self.process_array);
        }
        let mut id = None;
        if !self.document_id.is_empty() {
            if let Value::Object(m) = &mut output {
                if matches!(
                    crate::event::get_path(m, &self.document_id),
                    Some(Value::String(_))
                ) {
                    id = remove_path(m, &self.document_id);
                }
            }
        }
        let target = self.target.as_deref().unwrap_or(field);
        if target.is_empty() {
            match output {
                Value::Object(m) => self.write_root(ev, m),
                _ => return Err("failed to add target to root: the JSON is not an object".into()),
            }
        } else {
            put_field(ev, target, output)?;
        }
        if let Some(id) = id {
            put_path(ev.meta.get_or_insert_with(Box::default), "_id", id);
        }
        Ok(())
    }

    /// Merge a decoded object into the event root (Beats' WriteJSONKeys).
    fn write_root(&self, ev: &mut Event, mut keys: Map<String, Value>) {
        if self.expand_keys {
            match expand(keys) {
                Ok(k) => keys = k,
                Err(e) => {
                    if self.add_error_key {
                        set_json_error(ev, &e, None, None);
                    }
                    return;
                }
            }
        }
        if !self.overwrite_keys {
            keys.remove("@timestamp");
            keys.remove("@metadata");
            deep_update_owned(ev.fields_mut(), keys, false);
            return;
        }
        if let Some(ts) = keys.remove("@timestamp") {
            match ts.as_str().and_then(parse_timestamp) {
                Some(t) => ev.timestamp = t,
                None if self.add_error_key => {
                    let why = match ts.as_str() {
                        Some(s) => format!("@timestamp not overwritten (parse error on {s})"),
                        None => "@timestamp not overwritten (not string)".into(),
                    };
                    set_json_error(ev, &why, None, None);
                }
                None => {}
            }
        }
        if let Some(meta) = keys.remove("@metadata") {
            match meta {
                Value::Object(m) => {
                    deep_update_owned(ev.meta.get_or_insert_with(Box::default), m, true)
                }
                _ if self.add_error_key => {
                    set_json_error(ev, "failed to update @metadata", None, None)
                }
                _ => {}
            }
        }
        if let Some(t) = keys.remove("type") {
            match t.as_str() {
                Some(s) if !s.is_empty() && !s.starts_with('_') => {
                    ev.fields_mut().insert("type".into(), t);
                }
                _ if self.add_error_key => set_json_error(
                    ev,
                    &format!("type not overwritten (invalid value [{t}])"),
                    None,
                    None,
                ),
                _ => {}
            }
        }
        deep_update_owned(ev.fields_mut(), keys, true);
    }
}

/// `error: {message, type: json, data, field}` as Beats' SetErrorWithOption.
fn set_json_error(ev: &mut Event, msg: &str, data: Option<String>, field: Option<&str>) {
    let mut e = Map::new();
    e.insert("message".into(), Value::String(msg.to_string()));
    e.insert("type".into(), Value::String("json".into()));
    if let Some(d) = data {
        e.insert("data".into(), Value::String(d));
    }
    if let Some(f) = field {
        e.insert("field".into(), Value::String(f.to_string()));
    }
    ev.fields_mut().insert("error".into(), Value::Object(e));
}

/// Decode strings that hold a JSON object or array, `depth` more levels down.
fn deep_decode(v: &mut Value, depth: usize, process_array: bool) {
    if depth == 0 {
        return;
    }
    let children: Box<dyn Iterator<Item = &mut Value>> = match v {
        Value::Object(m) => Box::new(m.values_mut()),
        Value::Array(a) if process_array => Box::new(a.iter_mut()),
        _ => return,
    };
    for child in children {
        if let Value::String(s) = child {
            let t = s.trim();
            let structured = (t.starts_with('{') && t.ends_with('}'))
                || (process_array && t.starts_with('[') && t.ends_with(']'));
            if !structured {
                continue;
            }
            if let Ok(mut decoded) = serde_json::from_str::<Value>(t) {
                deep_decode(&mut decoded, depth - 1, process_array);
                *child = decoded;
            }
        }
    }
}

/// Turn dotted keys into nested objects; a key that is both a value and a parent is an error,
/// and so is nesting deeper than `MAX_DEPTH` (input must not nest objects without bound).
fn expand(keys: Map<String, Value>) -> Result<Map<String, Value>, String> {
    expand_at(keys, 0)
}

fn expand_at(keys: Map<String, Value>, depth: usize) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (k, mut v) in keys {
        let levels = k.split('.').count();
        if depth + levels > crate::event::MAX_DEPTH {
            return Err(format!(
                "failed to expand fields: keys nest deeper than {} levels",
                crate::event::MAX_DEPTH
            ));
        }
        if let Value::Object(inner) = v {
            v = Value::Object(expand_at(inner, depth + levels)?);
        }
        let mut cur = &mut out;
        let mut parts = k.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                match (cur.get_mut(part), v) {
                    (Some(Value::Object(dst)), Value::Object(src)) => {
                        for (sk, sv) in src {
                            if dst.contains_key(&sk) {
                                return Err(format!(
                                    "failed to expand fields: key collision at {k}.{sk}"
                                ));
                            }
                            dst.insert(sk, sv);
                        }
                    }
                    (Some(_), _) => {
                        return Err(format!("failed to expand fields: key collision at {k}"))
                    }
                    (None, v) => {
                        cur.insert(part.to_string(), v);
                    }
                }
                break;
            }
            let next = cur
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match next {
                Value::Object(m) => cur = m,
                _ => {
                    return Err(format!(
                        "failed to expand fields: key collision at {part} in {k}"
                    ))
                }
            }
        }
    }
    Ok(out)
}

impl Processor for DecodeJsonFields {
    fn run(&self, event: &mut Event) -> Outcome {
        for f in &self.fields {
            if let Err(e) = self.decode_field(event, f) {
                tracing::debug!(error = %e, field = %f, "decode_json_fields failed");
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
    fn decodes_in_place() {
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"message\"] }\n",
            line(r#"{"a": 1, "b": {"c": "x"}, "f": 1.5}"#),
        );
        assert_eq!(v["message"], json!({"a": 1, "b": {"c": "x"}, "f": 1.5}));
    }

    #[test]
    fn target_field_and_root() {
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"message\"], target = \"json\" }\n",
            line(r#"{"a": 1}"#),
        );
        assert_eq!(v["json"], json!({"a": 1}));
        assert!(v["message"].is_string());
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"message\"], target = \"\" }\n",
            map(
                json!({"message": r#"{"a": 1, "message": "inner", "x": {"y": 2}}"#, "x": {"z": 3}}),
            ),
        );
        assert_eq!(v["a"], 1);
        assert_eq!(v["x"], json!({"z": 3, "y": 2}));
        assert!(
            v["message"].as_str().unwrap().starts_with('{'),
            "not overwritten"
        );
    }

    #[test]
    fn overwrite_keys_timestamp_metadata_type() {
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"], target = \"\", overwrite_keys = true }\n",
            map(json!({"m": r#"{"m": "new", "@timestamp": "2025-07-08T12:48:32.528Z", "@metadata": {"pipeline": "p"}, "type": "t"}"#})),
        );
        assert_eq!(v["m"], "new");
        assert_eq!(v["@timestamp"], "2025-07-08T12:48:32.528Z");
        assert_eq!(v["@metadata"]["pipeline"], "p");
        assert_eq!(v["type"], "t");
    }

    #[test]
    fn bad_timestamp_with_error_key() {
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"], target = \"\", overwrite_keys = true, add_error_key = true }\n",
            map(json!({"m": r#"{"@timestamp": "yesterday"}"#})),
        );
        assert_eq!(v["@timestamp"], "1970-01-01T00:00:00.000Z");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parse error on yesterday"));
    }

    #[test]
    fn max_depth_and_process_array() {
        let inner = r#"{\"b\": \"{\\\"c\\\": 1}\"}"#;
        let text = format!(r#"{{"a": "{inner}", "l": "[1, 2]", "arr": ["{{\"x\": 1}}"]}}"#);
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"], max_depth = 1 }\n",
            map(json!({ "m": text.clone() })),
        );
        assert!(v["m"]["a"].is_string());
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"], max_depth = 2 }\n",
            map(json!({ "m": text.clone() })),
        );
        assert!(v["m"]["a"]["b"].is_string());
        assert!(v["m"]["l"].is_string(), "arrays need process_array");
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"], max_depth = 3, process_array = true }\n",
            map(json!({ "m": text })),
        );
        assert_eq!(v["m"]["a"]["b"], json!({"c": 1}));
        assert_eq!(v["m"]["l"], json!([1, 2]));
        assert_eq!(
            v["m"]["arr"],
            json!(["{\"x\": 1}"]),
            "only strings are decoded, as Beats"
        );
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"], max_depth = 2, process_array = true }\n",
            map(json!({ "m": r#"["{\"x\": 1}", "y"]"# })),
        );
        assert_eq!(v["m"], json!([{"x": 1}, "y"]));
    }

    #[test]
    fn invalid_json_and_error_key() {
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"] }\n",
            map(json!({"m": "{not json"})),
        );
        assert_eq!(v["m"], "{not json");
        assert!(v.get("error").is_none());
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"], add_error_key = true }\n",
            map(json!({"m": "{\"a\":1} {\"b\":2}"})),
        );
        assert_eq!(v["error"]["type"], "json");
        assert_eq!(v["error"]["field"], "m");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("parsing input as JSON"));
    }

    #[test]
    fn non_string_and_missing_skipped() {
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"n\", \"nope\"], add_error_key = true }\n",
            map(json!({"n": 5})),
        );
        assert_eq!(v["n"], 5);
        assert!(v.get("error").is_none());
    }

    #[test]
    fn expand_keys_and_document_id() {
        let (_, v) = run(
            "[[processors]]\ndecode_json_fields = { fields = [\"m\"], target = \"\", expand_keys = true, document_id = \"id\" }\n",
            map(json!({"m": r#"{"a.b": 1, "a.c": {"d.e": 2}, "id": "doc-1"}"#})),
        );
        assert_eq!(v["a"], json!({"b": 1, "c": {"d": {"e": 2}}}));
        assert_eq!(v["@metadata"]["_id"], "doc-1");
        assert!(v.get("id").is_none());
        assert!(expand(json!({"a": 1, "a.b": 2}).as_object().unwrap().clone()).is_err());
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\ndecode_json_fields = { fields = [\"m\"], max_depth = 0 }\n");
        assert_eq!(e.key, "processors[0].decode_json_fields.max_depth");
        let e = err("[[processors]]\ndecode_json_fields = { fields = [\"m\"], maxDepth = 2 }\n");
        assert_eq!(e.key, "processors[0].decode_json_fields.maxDepth");
        let e = err("[[processors]]\ndecode_json_fields = { fields = [] }\n");
        assert_eq!(e.key, "processors[0].decode_json_fields.fields");
        let e = err("[[processors]]\ndecode_json_fields = { fields = [\"m\"], target = 1 }\n");
        assert_eq!(e.key, "processors[0].decode_json_fields.target");
    }
}
