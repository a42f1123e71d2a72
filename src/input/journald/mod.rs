//! The journald input: reads the systemd journal through `journalctl -o export --follow`, as
//! Filebeat 8.16+ does (no libsystemd), one journalctl per configured path (or the system
//! journal), restarted with backoff if it dies.
//!
//! Each source keeps its position in the registry under `journald::<id>::<path>` (the path
//! is `LOCAL_SYSTEM_JOURNAL` for the system journal), as Filebeat's checkpoint
//! `{"version":1,"position":"<journal cursor>","realtimetimestamp":…,"monotonictimestamp":…}`.
//! The cursor advances only over acked events, so a restart (also after `kill -9`)
//! continues after the last entry the output confirmed. A saved cursor always wins over
//! `seek`, which only says where a journal never read before starts.

pub mod config;
pub mod export;
pub mod fields;
pub mod journalctl;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::config::filestream::ParserConfig;
use crate::event::{deep_merge, flags, format_timestamp, now_nanos, parse_timestamp, put_path};
use crate::event::{Event, InputCommon};
use crate::input::filestream::parsers::{Message, Parsers};
use crate::input::InputContext;
use crate::monitoring::counters::InputCounters;
use crate::monitoring::Metrics;
use crate::output::Backoff;
use crate::pipeline::ack::AckTracker;
use crate::registry::Registry;

pub use config::JournaldConfig;
use export::{Entry, ExportReader};
use journalctl::{Start, LOCAL_SYSTEM_JOURNAL};

pub const INPUT_TYPE: &str = "journald";
/// Version of the registry checkpoint, as Filebeat's `cursorVersion`.
const CHECKPOINT_VERSION: i64 = 1;
const BATCH: usize = 2048;

/// Run every source of the input until shutdown (or, with `--once`, until each journal
/// was read to its end).
pub async fn run(cfg: JournaldConfig, ctx: InputContext, registry: Arc<Registry>) {
    let sources: Vec<String> = if cfg.paths.is_empty() {
        vec![LOCAL_SYSTEM_JOURNAL.to_string()]
    } else {
        cfg.paths.clone()
    };
    let cfg = Arc::new(cfg);
    let common = Arc::new(InputCommon::new(
        &cfg.id,
        INPUT_TYPE,
        &ctx.beat,
        extra_fields(&cfg),
    ));
    let counters = ctx.metrics.input(&cfg.id, INPUT_TYPE);
    let mut tasks = tokio::task::JoinSet::new();
    for source in sources {
        let src = Source::new(
            cfg.clone(),
            source,
            ctx.clone(),
            registry.clone(),
            common.clone(),
            counters.clone(),
        );
        tasks.spawn(src.run());
    }
    while tasks.join_next().await.is_some() {}
}

fn extra_fields(cfg: &JournaldConfig) -> Map<String, Value> {
    let mut extra = Map::new();
    if !cfg.fields.is_empty() {
        if cfg.fields_under_root {
            for (k, v) in &cfg.fields {
                extra.insert(k.clone(), v.clone());
            }
        } else {
            extra.insert("fields".into(), Value::Object(cfg.fields.clone()));
        }
    }
    if !cfg.tags.is_empty() {
        extra.insert(
            "tags".into(),
            Value::Array(cfg.tags.iter().cloned().map(Value::String).collect()),
        );
    }
    extra
}

/// The journal cursor inside a saved checkpoint (an unknown version starts over, as
/// Filebeat's `initCheckpoint`).
pub fn checkpoint_position(v: &Value) -> Option<String> {
    if v.get("version").and_then(Value::as_i64) != Some(CHECKPOINT_VERSION) {
        return None;
    }
    v.get("position")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

fn checkpoint(entry: &Entry, cursor: &str) -> Value {
    serde_json::json!({
        "version": CHECKPOINT_VERSION,
        "position": cursor,
        "realtimetimestamp": entry.realtime_usec().unwrap_or(0),
        "monotonictimestamp": entry.monotonic_usec().unwrap_or(0),
    })
}

/// An entry read from journalctl, not yet part of an event (multiline may hold it).
struct Held {
    idx: u64,
    timestamp: i64,
    fields: Map<String, Value>,
    checkpoint: Value,
}

/// How one journalctl run ended.
enum End {
    /// The agent is stopping.
    Stop,
    /// journalctl's output ended (it exited).
    Eof,
}

struct Source {
    cfg: Arc<JournaldConfig>,
    name: String,
    key: String,
    ctx: InputContext,
    tracker: Arc<AckTracker>,
    common: Arc<InputCommon>,
    counters: Arc<InputCounters>,
    parsers: Parsers,
    held: VecDeque<Held>,
    next_idx: u64,
    /// Cursor of the last entry read (where a restarted journalctl continues).
    last_read: Option<String>,
    /// `last_read` came from the registry and journalctl has not accepted it yet.
    from_registry: bool,
}

impl Source {
    fn new(
        cfg: Arc<JournaldConfig>,
        name: String,
        ctx: InputContext,
        registry: Arc<Registry>,
        common: Arc<InputCommon>,
        counters: Arc<InputCounters>,
    ) -> Source {
        let key = format!("journald::{}::{}", cfg.id, name);
        // Read by an earlier run of this input in this process (a reload restarted it):
        // take its tracker over and continue after the last entry it handed over.
        let (tracker, position, from_registry) = match registry.live_tracker(&key) {
            Some(tracker) => {
                let position = tracker
                    .published_label()
                    .and_then(|l| checkpoint_position(&l));
                (tracker, position, false)
            }
            None => {
                let saved = registry
                    .get(&key)
                    .and_then(|e| e.cursor)
                    .map(crate::registry::Cursor::into_value);
                let position = saved.as_ref().and_then(checkpoint_position);
                if saved.is_some() && position.is_none() {
                    tracing::warn!(input_id = %cfg.id, key = %key, "registry holds a journald position of another version; starting from seek");
                }
                let tracker = AckTracker::labelled(position.as_ref().and(saved));
                registry.track_labelled(&key, tracker.clone());
                let from_registry = position.is_some();
                (tracker, position, from_registry)
            }
        };
        let parsers = Parsers::new(&cfg.parsers, cfg.message_max_bytes.0 as usize);
        Source {
            from_registry,
            last_read: position,
            cfg,
            name,
            key,
            ctx,
            tracker,
            common,
            counters,
            parsers,
            held: VecDeque::new(),
            next_idx: 0,
        }
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let follow = !self.ctx.once;
        loop {
            if self.ctx.shutdown.is_cancelled() {
                break;
            }
            let start = match &self.last_read {
                Some(c) => Start::After(c.clone()),
                None => Start::without_cursor(&self.cfg),
            };
            let args = journalctl::args(&self.cfg, &self.name, &start, follow);
            tracing::info!(input_id = %self.cfg.id, source = %self.name, command = %format!("{} {}", self.cfg.journalctl_path, args.join(" ")), "starting journalctl");
            let mut proc = match journalctl::spawn(&self.cfg.journalctl_path, &args) {
                Ok(p) => p,
                Err(e) => {
                    let hint = if e.kind() == std::io::ErrorKind::NotFound {
                        "; install journalctl (package systemd) or set journalctl_path"
                    } else {
                        ""
                    };
                    tracing::error!(input_id = %self.cfg.id, source = %self.name, error = %e, "cannot start {}{hint}", self.cfg.journalctl_path);
                    if self.ctx.once || !self.wait(&mut backoff).await {
                        break;
                    }
                    continue;
                }
            };
            let started = Instant::now();
            let stderr = tokio::spawn(journalctl::drain_stderr(
                proc.stderr,
                self.cfg.id.clone(),
                self.name.clone(),
            ));
            let (tx, rx) = mpsc::channel::<Entry>(256);
            let max = self.cfg.message_max_bytes.0 as usize;
            let stdout = proc.stdout;
            let reader = tokio::spawn(async move {
                let mut r =
                    ExportReader::new(tokio::io::BufReader::with_capacity(64 << 10, stdout), max);
                loop {
                    match r.next().await {
                        Ok(Some(e)) => {
                            if tx.send(e).await.is_err() {
                                return Ok(());
                            }
                        }
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            });
            let end = self.read(rx).await;
            if matches!(end, End::Stop) {
                drop(proc.child);
                reader.abort();
                self.flush_parsers().await;
                break;
            }
            let status = proc.child.wait().await;
            let read_err = reader.await.ok().and_then(Result::err);
            let tail = stderr.await.unwrap_or_default();
            let ok = status.as_ref().is_ok_and(|s| s.success()) && read_err.is_none();
            if ok && self.ctx.once {
                self.flush_parsers().await;
                break;
            }
            let said = tail.join(" | ");
            if !ok
                && self.from_registry
                && started.elapsed() < Duration::from_secs(10)
                && said.to_ascii_lowercase().contains("cursor")
            {
                tracing::warn!(input_id = %self.cfg.id, key = %self.key, journalctl = %said, "journalctl refused the saved cursor; starting from seek instead");
                self.last_read = None;
                self.from_registry = false;
                continue;
            }
            let status = match &status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            if let Some(e) = &read_err {
                tracing::error!(input_id = %self.cfg.id, source = %self.name, error = %e, "reading journalctl's output failed");
            }
            if self.ctx.once {
                tracing::error!(input_id = %self.cfg.id, source = %self.name, status = %status, journalctl = %said, "journalctl failed");
                self.flush_parsers().await;
                break;
            }
            if started.elapsed() >= journalctl::STABLE_RUN {
                backoff.reset();
            }
            tracing::error!(input_id = %self.cfg.id, source = %self.name, status = %status, journalctl = %said, "journalctl exited; restarting it after the last entry read");
            if !self.wait(&mut backoff).await {
                self.flush_parsers().await;
                break;
            }
        }
    }

    /// Back off before restarting journalctl; false when the agent stops meanwhile.
    async fn wait(&self, backoff: &mut Backoff) -> bool {
        tokio::select! {
            _ = self.ctx.shutdown.cancelled() => false,
            _ = backoff.wait() => true,
        }
    }

    async fn read(&mut self, mut rx: mpsc::Receiver<Entry>) -> End {
        loop {
            let deadline = self.parsers.next_deadline();
            let stale_at = deadline.map(tokio::time::Instant::from_std);
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                _ = self.ctx.shutdown.cancelled() => return End::Stop,
                got = rx.recv() => {
                    let Some(first) = got else { return End::Eof };
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    let events = self.entries_to_events(batch);
                    if !self.publish(events).await {
                        return End::Stop;
                    }
                }
                _ = tokio::time::sleep_until(stale_at.unwrap_or(far)), if stale_at.is_some() => {
                    let mut out = Vec::new();
                    self.parsers.flush_stale(Instant::now(), &mut out);
                    let events = self.messages_to_events(out);
                    if !self.publish(events).await {
                        return End::Stop;
                    }
                }
            }
        }
    }

    async fn flush_parsers(&mut self) {
        let mut out = Vec::new();
        self.parsers.flush_all(Instant::now(), &mut out);
        let events = self.messages_to_events(out);
        self.publish(events).await;
    }

    async fn publish(&self, events: Vec<Event>) -> bool {
        if events.is_empty() {
            return true;
        }
        let n = events.len() as u64;
        Metrics::add(&self.ctx.metrics.counters.events_read, n);
        InputCounters::add(&self.counters.events_processed_total, n);
        self.ctx.publisher.publish(events).await.is_ok()
    }

    fn entries_to_events(&mut self, batch: Vec<Entry>) -> Vec<Event> {
        let mut msgs = Vec::with_capacity(batch.len());
        let now = Instant::now();
        for entry in batch {
            InputCounters::add(&self.counters.messages_read_total, 1);
            let Some(cursor) = entry.cursor().map(str::to_string) else {
                tracing::debug!(input_id = %self.cfg.id, "journal entry without __CURSOR skipped");
                continue;
            };
            self.from_registry = false;
            let (message, valid, fields) = fields::convert(&entry);
            InputCounters::add(&self.counters.bytes_processed_total, message.len() as u64);
            let mut fl = 0;
            if !valid {
                fl |= flags::INVALID_UTF8;
            }
            if entry.truncated {
                fl |= flags::TRUNCATED;
            }
            let timestamp = entry
                .realtime_usec()
                .map(|us| (us as i64).saturating_mul(1000))
                .unwrap_or_else(now_nanos);
            let idx = self.next_idx;
            self.next_idx += 1;
            self.held.push_back(Held {
                idx,
                timestamp,
                fields,
                checkpoint: checkpoint(&entry, &cursor),
            });
            self.last_read = Some(cursor);
            let msg = Message::new(message, idx, idx, fl);
            if self.parsers.is_empty() {
                msgs.push(msg);
            } else {
                self.parsers.push(msg, now, &mut msgs);
            }
        }
        self.messages_to_events(msgs)
    }

    /// One event per parsed message: the fields of its first entry, the cursor of its last.
    fn messages_to_events(&mut self, msgs: Vec<Message>) -> Vec<Event> {
        let created = format_timestamp(now_nanos());
        let mut events = Vec::with_capacity(msgs.len());
        for m in msgs {
            let mut first: Option<Held> = None;
            let mut last_checkpoint = None;
            while let Some(h) = self.held.front() {
                if h.idx > m.end {
                    break;
                }
                let Some(h) = self.held.pop_front() else {
                    break;
                };
                if h.idx < m.start {
                    continue;
                }
                last_checkpoint = Some(h.checkpoint.clone());
                if first.is_none() {
                    first = Some(h);
                }
            }
            let (Some(first), Some(checkpoint)) = (first, last_checkpoint) else {
                continue;
            };
            let mut map = self.common.fields.clone();
            deep_merge(&mut map, first.fields, true);
            put_path(&mut map, "event.kind", Value::String("event".into()));
            put_path(&mut map, "event.created", Value::String(created.clone()));
            if self.cfg.save_remote_hostname {
                if let Some(h) = crate::event::get_path(&map, "host.hostname").cloned() {
                    put_path(&mut map, "log.source.address", h);
                }
            }
            map.insert("message".into(), Value::String(m.text.into_string()));
            let names: Vec<Value> = flags::NAMES
                .iter()
                .filter(|(bit, _)| m.flags & bit != 0)
                .map(|(_, n)| Value::String(n.to_string()))
                .collect();
            if !names.is_empty() {
                put_path(&mut map, "log.flags", Value::Array(names));
            }
            let mut ev = Event::from_map(first.timestamp, map);
            if let Some(mut decoded) = m.fields {
                let ndjson = self.cfg.parsers.iter().find_map(|p| match p {
                    ParserConfig::Ndjson(n) => Some(n),
                    _ => None,
                });
                let root = ndjson.is_some_and(|n| n.target.is_empty());
                let overwrite = ndjson.is_some_and(|n| n.overwrite_keys);
                if let Some(v) = decoded.remove("@timestamp") {
                    if overwrite {
                        if let Some(t) = v.as_str().and_then(parse_timestamp) {
                            ev.timestamp = t;
                        }
                    }
                }
                decoded.remove("@metadata");
                let fields = ev.fields_mut();
                if root {
                    fields.remove("message");
                }
                deep_merge(fields, *decoded, overwrite);
            }
            ev.meta = m.meta;
            ev.cursor = Some(self.tracker.next_labelled_cursor(checkpoint));
            events.push(ev);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_versions() {
        let v = serde_json::json!({"version": 1, "position": "s=a;i=1", "realtimetimestamp": 1});
        assert_eq!(checkpoint_position(&v).as_deref(), Some("s=a;i=1"));
        assert_eq!(
            checkpoint_position(&serde_json::json!({"version": 2, "position": "x"})),
            None
        );
        assert_eq!(checkpoint_position(&serde_json::json!({"offset": 5})), None);
    }
}
