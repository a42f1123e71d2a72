//! The running inputs, keyed by id, started and stopped one by one (a reload). A stopped
//! input hands over what it read before it ends; the events it published stay in the queue
//! and their acks still move its cursors, because its ack trackers stay registered
//! (`Registry::live_tracker`) and the input that takes over the same source continues after
//! the last event published (not after the last acked), so no line is lost or repeated.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::InputConfig;
use crate::event::BeatInfo;
use crate::input::InputContext;
use crate::monitoring::Metrics;
use crate::pipeline::Publisher;
use crate::registry::Registry;

use super::AgentError;

pub(super) struct Running {
    /// The configuration it runs with, to see whether a reload changes it.
    config: serde_json::Value,
    stop: CancellationToken,
    /// `None` once it ended and was waited for.
    handle: Option<JoinHandle<()>>,
}

/// What a reload did to the inputs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.stopped.is_empty() && self.restarted.is_empty()
    }
}

pub struct Inputs {
    pub(super) running: BTreeMap<String, Running>,
    pub publisher: Option<Publisher>,
    pub beat: Arc<BeatInfo>,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
    /// Cancelled at shutdown: every input's token is a child of it.
    pub shutdown: CancellationToken,
    pub once: bool,
}

/// The configuration an input compares by (processors included).
fn fingerprint(input: &InputConfig) -> serde_json::Value {
    serde_json::to_value(input).unwrap_or(serde_json::Value::Null)
}

impl Inputs {
    /// How many inputs run.
    pub fn count(&self) -> usize {
        self.running.len()
    }

    /// Start `input` (configuration key `key`, for errors); disabled inputs are skipped.
    pub fn start(&mut self, key: &str, input: &InputConfig) -> Result<(), AgentError> {
        if !input.enabled() {
            return Ok(());
        }
        let Some(publisher) = &self.publisher else {
            return Ok(());
        };
        let stop = self.shutdown.child_token();
        let ctx = |publisher: Publisher| InputContext {
            publisher,
            beat: self.beat.clone(),
            metrics: self.metrics.clone(),
            shutdown: stop.clone(),
            once: self.once,
        };
        let processors = |list: &[toml::Value]| -> Result<_, AgentError> {
            Ok(Arc::new(crate::processors::build(
                list,
                &format!("{key}.processors"),
            )?))
        };
        let handle = match input {
            InputConfig::Filestream(f) => {
                let ctx = ctx(publisher.with_processors(processors(f.processors.as_slice())?));
                tokio::spawn(crate::input::filestream::run(
                    (**f).clone(),
                    ctx,
                    self.registry.clone(),
                ))
            }
            InputConfig::Journald(j) => {
                let ctx = ctx(publisher.with_processors(processors(j.processors.as_slice())?));
                tokio::spawn(crate::input::journald::run(
                    (**j).clone(),
                    ctx,
                    self.registry.clone(),
                ))
            }
            InputConfig::SystemMetrics(raw) => {
                let m = crate::input::system::parse_config(raw, key)?;
                // The input applies its own processors.
                tokio::spawn(crate::input::system::run(m, ctx(publisher.clone())))
            }
        };
        self.running.insert(
            input.id().to_string(),
            Running {
                config: fingerprint(input),
                stop,
                handle: Some(handle),
            },
        );
        Ok(())
    }

    /// Stop one input and wait until it handed over what it read.
    async fn stop(&mut self, id: &str) {
        if let Some(r) = self.running.remove(id) {
            r.stop.cancel();
            if let Some(h) = r.handle {
                let _ = h.await;
            }
        }
    }

    /// Make the running inputs those of `wanted` (`(key, input)`): stop the removed and the
    /// changed ones first (so a restarted input never reads beside its predecessor), then
    /// start the new and the changed ones. Unchanged inputs keep running untouched.
    pub async fn apply(&mut self, wanted: &[(String, InputConfig)]) -> Result<Changes, AgentError> {
        let mut changes = Changes::default();
        let want: BTreeMap<&str, (&String, &InputConfig)> = wanted
            .iter()
            .filter(|(_, i)| i.enabled())
            .map(|(k, i)| (i.id(), (k, i)))
            .collect();
        let ids: Vec<String> = self.running.keys().cloned().collect();
        for id in ids {
            match want.get(id.as_str()) {
                None => {
                    self.stop(&id).await;
                    changes.stopped.push(id);
                }
                Some((_, i)) if self.running[&id].config != fingerprint(i) => {
                    self.stop(&id).await;
                    changes.restarted.push(id);
                }
                Some(_) => {}
            }
        }
        for (id, (key, input)) in want {
            if self.running.contains_key(id) {
                continue;
            }
            self.start(key, input)?;
            if !changes.restarted.iter().any(|r| r == id) {
                changes.started.push(id.to_string());
            }
        }
        Ok(changes)
    }

    /// Wait until every input ended by itself (`--once`). Cancel-safe.
    pub async fn all_done(&mut self) {
        for r in self.running.values_mut() {
            if let Some(h) = r.handle.as_mut() {
                let _ = h.await;
                r.handle = None;
            }
        }
    }

    /// Stop every input (they see the shutdown token) and wait for them. Cancel-safe: inputs
    /// not waited for yet stay, for `abort_all`.
    pub async fn stop_all(&mut self) {
        self.shutdown.cancel();
        self.all_done().await;
        self.running.clear();
    }

    /// End the inputs that did not stop (after `shutdown_timeout`) without waiting for them.
    pub fn abort_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            if let Some(h) = r.handle {
                h.abort();
            }
        }
    }
}
