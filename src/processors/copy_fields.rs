//! `copy_fields`: copy values to new fields (`fields = [{ from, to }]`). An existing target
//! is an error; `fail_on_error` (default) restores the event and appends `error.message`.

use super::{
    append_error, has_field, lookup, options, put_field, Backup, FromTo, FromToOpts, Outcome,
    Processor,
};
use crate::config::ConfigError;
use crate::event::Event;

#[derive(Debug)]
pub struct CopyFields {
    fields: Vec<FromTo>,
    ignore_missing: bool,
    fail_on_error: bool,
}

impl CopyFields {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: FromToOpts = options(v, key)?;
        super::rename::check_pairs(&o.fields, key)?;
        Ok(CopyFields {
            fields: o.fields,
            ignore_missing: o.ignore_missing,
            fail_on_error: o.fail_on_error,
        })
    }

    fn copy(&self, ev: &mut Event, from: &str, to: &str) -> Result<(), String> {
        if has_field(ev, to) {
            return Err(format!(
                "target field {to} already exists, drop or rename this field first"
            ));
        }
        let Some(value) = lookup(ev, from).map(|f| f.into_value()) else {
            if self.ignore_missing {
                return Ok(());
            }
            return Err(format!(
                "could not fetch value for key: {from}, key not found"
            ));
        };
        put_field(ev, to, value)
    }
}

impl Processor for CopyFields {
    fn run(&self, event: &mut Event) -> Outcome {
        // One pair fails before it changes anything; several need a copy to roll back.
        let mut backup = (self.fail_on_error && self.fields.len() > 1).then(|| Backup::take(event));
        for p in &self.fields {
            if let Err(e) = self.copy(event, &p.from, &p.to) {
                tracing::debug!(error = %e, "copy_fields failed");
                if self.fail_on_error {
                    if let Some(b) = backup.take() {
                        b.restore(event);
                    }
                    append_error(
                        event,
                        format!("Failed to copy fields in copy_fields processor: {e}"),
                    );
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
    use serde_json::json;

    #[test]
    fn copies_values() {
        let (_, v) = run(
            "[[processors]]\ncopy_fields = { fields = [{ from = \"message\", to = \"event.original\" }, { from = \"fields\", to = \"labels\" }] }\n",
            line("hello"),
        );
        assert_eq!(v["message"], "hello");
        assert_eq!(v["event"]["original"], "hello");
        assert_eq!(v["labels"], json!({"env": "prod"}));
    }

    #[test]
    fn copies_timestamp_and_metadata() {
        let (_, v) = run(
            "[[processors]]\ncopy_fields = { fields = [{ from = \"@timestamp\", to = \"event.created\" }, { from = \"a\", to = \"@metadata.a\" }] }\n",
            map(json!({"a": "x"})),
        );
        assert_eq!(v["event"]["created"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["@metadata"]["a"], "x");
    }

    #[test]
    fn existing_target_fails_and_rolls_back() {
        let (_, v) = run(
            "[[processors]]\ncopy_fields = { fields = [{ from = \"a\", to = \"x\" }, { from = \"a\", to = \"b\" }] }\n",
            map(json!({"a": 1, "b": 2})),
        );
        assert!(v.get("x").is_none(), "rolled back");
        assert_eq!(v["b"], 2);
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("target field b already exists"));
    }

    #[test]
    fn missing_source_and_ignore_missing() {
        let (_, v) = run(
            "[[processors]]\ncopy_fields = { fields = [{ from = \"nope\", to = \"x\" }] }\n",
            map(json!({})),
        );
        assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
        let (_, v) = run(
            "[[processors]]\ncopy_fields = { fields = [{ from = \"nope\", to = \"x\" }], ignore_missing = true }\n",
            map(json!({})),
        );
        assert!(v.get("error").is_none());
        let (_, v) = run(
            "[[processors]]\ncopy_fields = { fields = [{ from = \"nope\", to = \"x\" }], fail_on_error = false }\n",
            map(json!({})),
        );
        assert!(v.get("error").is_none());
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\ncopy_fields = { fields = [{ from = \"a\", to = \"b\" }], fail_on_eror = true }\n");
        assert_eq!(e.key, "processors[0].copy_fields.fail_on_eror");
        let e = err("[[processors]]\ncopy_fields = { fields = [{ from = \"\", to = \"b\" }] }\n");
        assert_eq!(e.key, "processors[0].copy_fields.fields[0]");
    }
}
