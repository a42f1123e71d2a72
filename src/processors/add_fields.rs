//! `add_fields`: merge static fields under `target` (default `fields`; `""` = event root,
//! `@metadata` = the event metadata), overwriting existing values as Beats does.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{deep_update, options, toml_to_json, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::{put_path, Event};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    fields: toml::Value,
    #[serde(default = "default_target")]
    target: String,
}

fn default_target() -> String {
    "fields".into()
}

#[derive(Debug)]
pub struct AddFields {
    /// Already nested under the target, so `run` is one deep merge.
    fields: Map<String, Value>,
    to_meta: bool,
}

impl AddFields {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        let Value::Object(fields) = toml_to_json(&o.fields) else {
            return Err(ConfigError::new(
                format!("{key}.fields"),
                "must be a table, like fields = { env = \"prod\" }",
            ));
        };
        if o.target == "@metadata" || o.target.starts_with("@metadata.") {
            let sub = o
                .target
                .trim_start_matches("@metadata")
                .trim_start_matches('.');
            return Ok(AddFields {
                fields: nest(sub, fields),
                to_meta: true,
            });
        }
        Ok(AddFields {
            fields: nest(&o.target, fields),
            to_meta: false,
        })
    }
}

fn nest(target: &str, fields: Map<String, Value>) -> Map<String, Value> {
    if target.is_empty() {
        return fields;
    }
    let mut m = Map::new();
    put_path(&mut m, target, Value::Object(fields));
    m
}

impl Processor for AddFields {
    fn run(&self, event: &mut Event) -> Outcome {
        if self.to_meta {
            deep_update(
                event.meta.get_or_insert_with(Box::default),
                &self.fields,
                true,
            );
        } else {
            deep_update(event.fields_mut(), &self.fields, true);
        }
        Outcome::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::json;

    #[test]
    fn default_target_is_fields() {
        let (_, v) = run(
            "[[processors]]\nadd_fields = { fields = { team = \"ops\", n = 2 } }\n",
            line("x"),
        );
        assert_eq!(v["fields"], json!({"env": "prod", "team": "ops", "n": 2}));
    }

    #[test]
    fn custom_and_dotted_target() {
        let (_, v) = run(
            "[[processors]]\nadd_fields = { target = \"project\", fields = { name = \"oxibeat\", id = \"574734885120952459\" } }\n",
            line("x"),
        );
        assert_eq!(
            v["project"],
            json!({"name": "oxibeat", "id": "574734885120952459"})
        );
        let (_, v) = run(
            "[[processors]]\nadd_fields = { target = \"a.b\", fields = { c = 1 } }\n",
            map(json!({"a": {"keep": true}})),
        );
        assert_eq!(v["a"], json!({"keep": true, "b": {"c": 1}}));
    }

    #[test]
    fn empty_target_is_root_and_overwrites() {
        let (_, v) = run(
            "[[processors]]\nadd_fields = { target = \"\", fields = { message = \"new\", host = { role = \"db\" } } }\n",
            line("old"),
        );
        assert_eq!(v["message"], "new");
        assert_eq!(v["host"], json!({"name": "web-1", "role": "db"}));
    }

    #[test]
    fn metadata_target() {
        let (_, v) = run(
            "[[processors]]\nadd_fields = { target = \"@metadata\", fields = { pipeline = \"p1\" } }\n",
            line("x"),
        );
        assert_eq!(v["@metadata"]["pipeline"], "p1");
        assert!(v.get("pipeline").is_none());
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\nadd_fields = { fields = 1 }\n");
        assert_eq!(e.key, "processors[0].add_fields.fields");
        let e = err("[[processors]]\nadd_fields = { target = \"x\" }\n");
        assert_eq!(e.key, "processors[0].add_fields.fields");
        let e = err("[[processors]]\nadd_fields = { fields = {}, traget = \"x\" }\n");
        assert_eq!(e.key, "processors[0].add_fields.traget");
        let e = err("[[processors]]\nadd_fields = { fields = {}, target = 3 }\n");
        assert_eq!(e.key, "processors[0].add_fields.target");
    }
}
