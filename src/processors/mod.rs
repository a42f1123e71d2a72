//! Processors: per-event transformations configured as `[[processors]]` (global) or
//! `[[inputs.processors]]` (per input), each optionally guarded by a `when` condition.
//!
//! A processor entry is a one-key table, as in Filebeat's YAML list:
//! `add_fields = { target = "project", fields = { name = "oxibeat" }, when = { ... } }`.

use crate::config::ConfigError;
use crate::event::Event;

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

/// Build a chain from its configuration; `key` is the key path used in errors.
pub fn build(list: &[toml::Value], key: &str) -> Result<Chain, ConfigError> {
    if let Some(first) = list.first() {
        return Err(ConfigError::new(
            format!("{key}[0]"),
            format!("processors are not implemented yet: {first}"),
        ));
    }
    Ok(Chain::default())
}
