//! `drop_event`: drop the event (normally guarded by `when`).

use serde::Deserialize;

use super::{options, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::Event;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {}

#[derive(Debug)]
pub struct DropEvent;

impl DropEvent {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let _: Opts = options(v, key)?;
        Ok(DropEvent)
    }
}

impl Processor for DropEvent {
    fn run(&self, _event: &mut Event) -> Outcome {
        Outcome::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Outcome;

    #[test]
    fn drops_always_without_when() {
        let (out, _) = run("[[processors]]\ndrop_event = {}\n", line("x"));
        assert_eq!(out, Outcome::Drop);
    }

    #[test]
    fn drops_only_matching() {
        let cfg = "[[processors]]\ndrop_event = { when = { regexp = { message = \"^DEBUG\" } } }\n[[processors]]\nadd_tags = { tags = \"kept\" }\n";
        assert_eq!(run(cfg, line("DEBUG x")).0, Outcome::Drop);
        let (out, v) = run(cfg, line("INFO x"));
        assert_eq!(out, Outcome::Keep);
        assert_eq!(v["tags"][1], "kept");
    }

    #[test]
    fn rejects_options() {
        let e = err("[[processors]]\ndrop_event = { fields = [\"a\"] }\n");
        assert_eq!(e.key, "processors[0].drop_event.fields");
    }
}
