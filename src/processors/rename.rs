//! `rename`: move fields (`fields = [{ from, to }]`). A target that exists is an error
//! (drop it first), as in Beats; with `fail_on_error` (default) the event is restored and
//! `error.message` appended.

use super::{
    append_error, has_field, options, put_field, remove_field, Backup, FromTo, FromToOpts, Outcome,
    Processor,
};
use crate::config::ConfigError;
use crate::event::Event;

#[derive(Debug)]
pub struct Rename {
    fields: Vec<FromTo>,
    ignore_missing: bool,
    fail_on_error: bool,
}

impl Rename {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: FromToOpts = options(v, key)?;
        check_pairs(&o.fields, key)?;
        Ok(Rename {
            fields: o.fields,
            ignore_missing: o.ignore_missing,
            fail_on_error: o.fail_on_error,
        })
    }

    fn rename(&self, ev: &mut Event, from: &str, to: &str) -> Result<(), String> {
        if has_field(ev, to) {
            return Err(format!(
                "target field {to} already exists, drop or rename this field first"
            ));
        }
        // Deleting first lets `a` become `a.b`.
        let Some(value) = remove_field(ev, from) else {
            if self.ignore_missing {
                return Ok(());
            }
            return Err(format!(
                "could not fetch value for key: {from}, key not found"
            ));
        };
        if let Err(e) = put_field(ev, to, value.clone()) {
            let _ = put_field(ev, from, value);
            return Err(e);
        }
        Ok(())
    }
}

/// Empty names and `from == to` are configuration mistakes.
pub(super) fn check_pairs(fields: &[FromTo], key: &str) -> Result<(), ConfigError> {
    if fields.is_empty() {
        return Err(ConfigError::new(
            format!("{key}.fields"),
            "give at least one { from = \"...\", to = \"...\" } pair",
        ));
    }
    for (i, p) in fields.iter().enumerate() {
        if p.from.is_empty() || p.to.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.fields[{i}]"),
                "from and to must both name a field",
            ));
        }
        if p.from == p.to {
            return Err(ConfigError::new(
                format!("{key}.fields[{i}]"),
                "from and to are the same field",
            ));
        }
    }
    Ok(())
}

impl Processor for Rename {
    fn run(&self, event: &mut Event) -> Outcome {
        // One pair fails before it changes anything; several need a copy to roll back.
        let mut backup = (self.fail_on_error && self.fields.len() > 1).then(|| Backup::take(event));
        for p in &self.fields {
            if let Err(e) = self.rename(event, &p.from, &p.to) {
                tracing::debug!(error = %e, "rename failed");
                if self.fail_on_error {
                    if let Some(b) = backup.take() {
                        b.restore(event);
                    }
                    append_error(event, format!("Failed to rename fields in processor: {e}"));
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
    fn renames_nested_and_line_fields() {
        let (_, v) = run(
            "[[processors]]\nrename = { fields = [{ from = \"message\", to = \"event.original\" }, { from = \"a.b\", to = \"c\" }] }\n",
            map(json!({"message": "m", "a": {"b": 1, "x": 2}})),
        );
        assert_eq!(v["event"]["original"], "m");
        assert!(v.get("message").is_none());
        assert_eq!(v["c"], 1);
        assert_eq!(v["a"], json!({"x": 2}));
        let (_, v) = run(
            "[[processors]]\nrename = { fields = [{ from = \"message\", to = \"msg\" }] }\n",
            line("hi"),
        );
        assert_eq!(v["msg"], "hi");
        assert!(v.get("message").is_none());
    }

    #[test]
    fn a_becomes_a_b() {
        let (_, v) = run(
            "[[processors]]\nrename = { fields = [{ from = \"a\", to = \"a.value\" }] }\n",
            map(json!({"a": 5})),
        );
        assert_eq!(v["a"], json!({"value": 5}));
    }

    #[test]
    fn existing_target_fails_and_rolls_back() {
        let (_, v) = run(
            "[[processors]]\nrename = { fields = [{ from = \"a\", to = \"x\" }, { from = \"b\", to = \"c\" }] }\n",
            map(json!({"a": 1, "b": 2, "c": 3})),
        );
        assert_eq!(v["a"], 1, "first rename rolled back");
        assert!(v.get("x").is_none());
        assert_eq!(v["c"], 3);
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("target field c already exists"), "{msg}");
    }

    #[test]
    fn missing_source() {
        let (_, v) = run(
            "[[processors]]\nrename = { fields = [{ from = \"nope\", to = \"x\" }] }\n",
            map(json!({"a": 1})),
        );
        assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
        let (_, v) = run(
            "[[processors]]\nrename = { fields = [{ from = \"nope\", to = \"x\" }, { from = \"a\", to = \"b\" }], ignore_missing = true }\n",
            map(json!({"a": 1})),
        );
        assert!(v.get("error").is_none());
        assert_eq!(v["b"], 1);
    }

    #[test]
    fn without_fail_on_error_continues() {
        let (_, v) = run(
            "[[processors]]\nrename = { fields = [{ from = \"nope\", to = \"x\" }, { from = \"a\", to = \"b\" }], fail_on_error = false }\n",
            map(json!({"a": 1})),
        );
        assert!(v.get("error").is_none());
        assert_eq!(v["b"], 1);
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\nrename = { fields = [{ from = \"a\", too = \"b\" }] }\n");
        assert_eq!(e.key, "processors[0].rename.fields[0].too");
        let e = err("[[processors]]\nrename = { fields = [{ from = \"a\" }] }\n");
        assert_eq!(e.key, "processors[0].rename.fields[0].to");
        let e = err("[[processors]]\nrename = { fields = [{ from = \"a\", to = \"a\" }] }\n");
        assert_eq!(e.key, "processors[0].rename.fields[0]");
        let e = err("[[processors]]\nrename = { fields = [] }\n");
        assert_eq!(e.key, "processors[0].rename.fields");
    }
}
