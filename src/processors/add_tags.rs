//! `add_tags`: append tags to the `tags` array (or `target`), without repeating one.

use serde::Deserialize;

use super::{add_tags, options, OneOrMany, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::Event;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    tags: OneOrMany,
    #[serde(default = "default_target")]
    target: String,
}

fn default_target() -> String {
    "tags".into()
}

#[derive(Debug)]
pub struct AddTags {
    tags: Vec<String>,
    target: String,
}

impl AddTags {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        let tags = o.tags.into_vec();
        if tags.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.tags"),
                "give at least one tag",
            ));
        }
        if o.target.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.target"),
                "must name a field; leave it out to use \"tags\"",
            ));
        }
        Ok(AddTags {
            tags,
            target: o.target,
        })
    }
}

impl Processor for AddTags {
    fn run(&self, event: &mut Event) -> Outcome {
        if let Err(e) = add_tags(event.fields_mut(), &self.target, &self.tags) {
            // Beats leaves the event as it is and only logs.
            tracing::debug!(error = %e, "add_tags failed");
        }
        Outcome::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use serde_json::json;

    #[test]
    fn appends_to_existing_tags() {
        let (_, v) = run(
            "[[processors]]\nadd_tags = { tags = [\"a\", \"web\", \"b\"] }\n",
            line("x"),
        );
        assert_eq!(v["tags"], json!(["web", "a", "b"]));
    }

    #[test]
    fn single_string_and_target() {
        let (_, v) = run(
            "[[processors]]\nadd_tags = { tags = \"t1\", target = \"labels.kind\" }\n",
            map(json!({})),
        );
        assert_eq!(v["labels"]["kind"], json!(["t1"]));
    }

    #[test]
    fn non_array_target_left_alone() {
        let (_, v) = run(
            "[[processors]]\nadd_tags = { tags = \"t\" }\n",
            map(json!({"tags": "str"})),
        );
        assert_eq!(v["tags"], "str");
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\nadd_tags = { tags = [] }\n");
        assert_eq!(e.key, "processors[0].add_tags.tags");
        let e = err("[[processors]]\nadd_tags = { tags = \"a\", target = \"\" }\n");
        assert_eq!(e.key, "processors[0].add_tags.target");
        let e = err("[[processors]]\nadd_tags = { tags = 5 }\n");
        assert_eq!(e.key, "processors[0].add_tags.tags");
    }
}
