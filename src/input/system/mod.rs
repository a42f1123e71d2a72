//! `type = "system/metrics"`: Metricbeat's `system` module as an oxibeat input.
//!
//! Each configured metricset runs as its own task on its own timer. A collection reads
//! `/proc` / `/sys` (under `hostfs` when set) inside `spawn_blocking`, so a slow read (a hung
//! NFS mount under `statvfs`, a huge `/proc`) delays only that metricset, never the pipeline
//! or the other metricsets. Events carry Metricbeat 9.x field names and units.
//!
//! Rate metricsets (`cpu`, `process`) need two samples. The first collection only
//! stores a sample and emits nothing; every later collection emits values computed from the
//! delta with the previous sample. So in a running agent the first `cpu` event appears one
//! `period` after start. With `--once` a rate metricset takes its first sample, waits
//! [`ONCE_RATE_INTERVAL`] and takes the second, then emits; the non-rate metricsets emit
//! from their single sample. Everything is published before `run` returns.
//! `network` and `diskio` report counters from the first sample; their extra
//! `host.network.*` / `host.disk.*` per-period event (as Metricbeat) starts with the second.

pub mod cgroup;
pub mod cpu;
pub mod diskio;
pub mod filesystem;
pub mod load;
pub mod memory;
pub mod network;
pub mod process;
pub mod process_summary;
pub mod procfs;
pub mod socket_summary;
pub mod uptime;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::units::Dur;
use crate::config::{typed, ConfigError};
use crate::event::{now_nanos, Event, InputCommon};
use crate::input::InputContext;
use crate::monitoring::counters::InputCounters;
use crate::pipeline::Publisher;

pub use procfs::HostFs;

/// How long `--once` waits between the two samples of a rate metricset.
pub const ONCE_RATE_INTERVAL: Duration = Duration::from_millis(1000);

/// The input type name, as written in `[[inputs]] type = ...`.
pub const INPUT_TYPE: &str = "system/metrics";

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
}

/// Metricbeat's metricset names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsetName {
    Cpu,
    Load,
    Memory,
    Network,
    Filesystem,
    Fsstat,
    Uptime,
    Diskio,
    ProcessSummary,
    Process,
    SocketSummary,
}

impl MetricsetName {
    pub const ALL: [MetricsetName; 11] = [
        MetricsetName::Cpu,
        MetricsetName::Load,
        MetricsetName::Memory,
        MetricsetName::Network,
        MetricsetName::Filesystem,
        MetricsetName::Fsstat,
        MetricsetName::Uptime,
        MetricsetName::Diskio,
        MetricsetName::ProcessSummary,
        MetricsetName::Process,
        MetricsetName::SocketSummary,
    ];

    /// `metricset.name`.
    pub fn name(self) -> &'static str {
        match self {
            MetricsetName::Cpu => "cpu",
            MetricsetName::Load => "load",
            MetricsetName::Memory => "memory",
            MetricsetName::Network => "network",
            MetricsetName::Filesystem => "filesystem",
            MetricsetName::Fsstat => "fsstat",
            MetricsetName::Uptime => "uptime",
            MetricsetName::Diskio => "diskio",
            MetricsetName::ProcessSummary => "process_summary",
            MetricsetName::Process => "process",
            MetricsetName::SocketSummary => "socket_summary",
        }
    }

    /// `event.dataset` (Metricbeat uses the field namespace, not the metricset name).
    pub fn dataset(self) -> &'static str {
        match self {
            MetricsetName::ProcessSummary => "system.process.summary",
            MetricsetName::SocketSummary => "system.socket.summary",
            MetricsetName::Cpu => "system.cpu",
            MetricsetName::Load => "system.load",
            MetricsetName::Memory => "system.memory",
            MetricsetName::Network => "system.network",
            MetricsetName::Filesystem => "system.filesystem",
            MetricsetName::Fsstat => "system.fsstat",
            MetricsetName::Uptime => "system.uptime",
            MetricsetName::Diskio => "system.diskio",
            MetricsetName::Process => "system.process",
        }
    }

    /// Needs two samples before the first event (see the module docs).
    pub fn is_rate(self) -> bool {
        matches!(self, MetricsetName::Cpu | MetricsetName::Process)
    }
}

/// `process.include_top_n`: report only the top N processes by CPU and by memory (union).
/// Both 0, or `enabled = false`, report every matching process (Metricbeat's behaviour).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopN {
    #[serde(default = "crate::config::yes")]
    pub enabled: bool,
    #[serde(default)]
    pub by_cpu: usize,
    #[serde(default)]
    pub by_memory: usize,
}

impl Default for TopN {
    fn default() -> Self {
        TopN {
            enabled: true,
            by_cpu: 0,
            by_memory: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessOptions {
    #[serde(default)]
    pub include_top_n: TopN,
    #[serde(default)]
    pub cgroups: CgroupOptions,
}

/// `process.cgroups.enabled`: add `system.process.cgroup.*` (default true, as Metricbeat).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupOptions {
    #[serde(default = "crate::config::yes")]
    pub enabled: bool,
}

impl Default for CgroupOptions {
    fn default() -> Self {
        CgroupOptions { enabled: true }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemOptions {
    /// File system types to skip; unset means the `nodev` types of `/proc/filesystems`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_types: Option<Vec<String>>,
}

/// `cpu.metrics` values (Metricbeat's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuMetric {
    /// `<state>.pct` (0..cores)
    Percentages,
    /// `<state>.norm.pct` (0..1)
    NormalizedPercentages,
    /// `<state>.ticks` (raw counters)
    Ticks,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuOptions {
    /// Default: all three, the shape of Metricbeat's sample event. `host.cpu.usage` is always
    /// sent.
    #[serde(default = "CpuOptions::default_metrics")]
    pub metrics: Vec<CpuMetric>,
}

impl CpuOptions {
    fn default_metrics() -> Vec<CpuMetric> {
        vec![
            CpuMetric::Percentages,
            CpuMetric::NormalizedPercentages,
            CpuMetric::Ticks,
        ]
    }
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions {
            metrics: Self::default_metrics(),
        }
    }
}

/// `system.hostfs`, the spelling of Metricbeat's module setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemModuleOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostfs: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskioOptions {
    /// Only these devices (names as in `/proc/diskstats`); empty means all.
    #[serde(default)]
    pub include_devices: Vec<String>,
}

/// One `[[inputs]] type = "system/metrics"` entry. Option names follow Metricbeat's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemMetricsConfig {
    pub id: String,
    #[serde(default = "crate::config::yes")]
    pub enabled: bool,
    #[serde(default = "SystemMetricsConfig::default_period")]
    pub period: Dur,
    #[serde(default = "SystemMetricsConfig::default_metricsets")]
    pub metricsets: Vec<MetricsetName>,
    /// Regular expressions matched against the process name (`process` metricset);
    /// empty means every process.
    #[serde(default)]
    pub processes: Vec<crate::config::Pattern>,
    #[serde(default)]
    pub process: ProcessOptions,
    #[serde(default)]
    pub filesystem: FilesystemOptions,
    #[serde(default)]
    pub diskio: DiskioOptions,
    #[serde(default)]
    pub cpu: CpuOptions,
    /// Network interfaces to report (`network` metricset); empty means all.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Where the host's root filesystem is mounted (Metricbeat's `system.hostfs`),
    /// e.g. "/hostfs" in a container started with `-v /:/hostfs:ro`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostfs: Option<PathBuf>,
    /// `system.hostfs = "/hostfs"` is accepted too (Metricbeat's spelling); `parse_config`
    /// moves it into `hostfs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemModuleOptions>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub fields_under_root: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub processors: Vec<toml::Value>,
}

impl SystemMetricsConfig {
    fn default_period() -> Dur {
        Dur(Duration::from_secs(10))
    }

    /// Metricbeat's default `system` module metricsets.
    pub fn default_metricsets() -> Vec<MetricsetName> {
        use MetricsetName::*;
        vec![
            Cpu,
            Load,
            Memory,
            Network,
            Process,
            ProcessSummary,
            SocketSummary,
            Filesystem,
            Fsstat,
            Uptime,
        ]
    }

    /// Checks serde cannot express; `key` is this input's key path (`inputs[N]`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.id.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.id"),
                "every input needs a non-empty, unique id",
            ));
        }
        if self.period.0 < Duration::from_millis(100) {
            return Err(ConfigError::new(
                format!("{key}.period"),
                "must be at least 100ms (Metricbeat's default is 10s)",
            ));
        }
        if self.cpu.metrics.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.cpu.metrics"),
                "list at least one of \"percentages\", \"normalized_percentages\", \"ticks\"",
            ));
        }
        if self.metricsets.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.metricsets"),
                "list at least one metricset, e.g. [\"cpu\", \"memory\"]",
            ));
        }
        for (i, m) in self.metricsets.iter().enumerate() {
            if self.metricsets[..i].contains(m) {
                return Err(ConfigError::new(
                    format!("{key}.metricsets[{i}]"),
                    format!("metricset {:?} is listed twice", m.name()),
                ));
            }
        }
        if let Some(h) = &self.hostfs {
            if !h.is_absolute() {
                return Err(ConfigError::new(
                    format!("{key}.hostfs"),
                    "must be an absolute path such as \"/hostfs\"",
                ));
            }
        }
        crate::processors::build(&self.processors, &format!("{key}.processors"))?;
        Ok(())
    }

    /// `fields` (under `fields` or at the root) and `tags`, for `InputCommon::new`.
    fn extra_fields(&self) -> Map<String, Value> {
        let mut extra = Map::new();
        if !self.fields.is_empty() {
            if self.fields_under_root {
                for (k, v) in &self.fields {
                    extra.insert(k.clone(), v.clone());
                }
            } else {
                extra.insert("fields".into(), Value::Object(self.fields.clone()));
            }
        }
        if !self.tags.is_empty() {
            extra.insert("tags".into(), json!(self.tags));
        }
        extra
    }
}

/// Validate one raw `[[inputs]]` table of type `system/metrics`; `key` is its key path
/// (`inputs[N]`), used in every error.
pub fn parse_config(raw: &toml::Value, key: &str) -> Result<SystemMetricsConfig, ConfigError> {
    let mut raw = raw.clone();
    if let Some(t) = raw.as_table_mut() {
        // The dispatcher already looked at `type`.
        t.remove("type");
    }
    let mut cfg: SystemMetricsConfig = typed(raw, key)?;
    if let Some(h) = cfg.system.take().and_then(|s| s.hostfs) {
        if cfg.hostfs.is_some() {
            return Err(ConfigError::new(
                format!("{key}.system.hostfs"),
                "set either hostfs or system.hostfs, not both",
            ));
        }
        cfg.hostfs = Some(h);
    }
    cfg.validate(key)?;
    Ok(cfg)
}

/// One collection: the events' own fields (merged over the common fields). An empty list is
/// valid (a rate metricset's first sample, or nothing matched).
pub type Docs = Vec<Map<String, Value>>;

/// A metricset's state between collections; `collect` runs on a blocking thread.
pub trait Metricset: Send + 'static {
    fn collect(&mut self) -> Result<Docs, SystemError>;
}

/// Build the collector of `name` for `cfg`.
pub fn metricset(name: MetricsetName, cfg: &SystemMetricsConfig) -> Box<dyn Metricset> {
    let fs = Arc::new(HostFs::new(cfg.hostfs.as_deref()));
    match name {
        MetricsetName::Cpu => Box::new(cpu::Cpu::new(fs, &cfg.cpu.metrics)),
        MetricsetName::Load => Box::new(load::Load::new(fs)),
        MetricsetName::Memory => Box::new(memory::Memory::new(fs)),
        MetricsetName::Network => Box::new(network::Network::new(fs, cfg.interfaces.clone())),
        MetricsetName::Filesystem => Box::new(filesystem::Filesystem::new(
            fs,
            cfg.filesystem.ignore_types.clone(),
        )),
        MetricsetName::Fsstat => Box::new(filesystem::Fsstat::new(
            fs,
            cfg.filesystem.ignore_types.clone(),
        )),
        MetricsetName::Uptime => Box::new(uptime::Uptime::new(fs)),
        MetricsetName::Diskio => {
            Box::new(diskio::Diskio::new(fs, cfg.diskio.include_devices.clone()))
        }
        MetricsetName::ProcessSummary => Box::new(process_summary::ProcessSummary::new(fs)),
        MetricsetName::Process => Box::new(
            process::Process::new(
                fs,
                cfg.process.include_top_n.clone(),
                cfg.processes.iter().map(|p| p.0.clone()).collect(),
            )
            .with_cgroups(cfg.process.cgroups.enabled),
        ),
        MetricsetName::SocketSummary => Box::new(socket_summary::SocketSummary::new(fs)),
    }
}

/// Deep-merge `src` into `dst` (objects merge key by key; anything else replaces).
pub fn merge(dst: &mut Map<String, Value>, src: Map<String, Value>) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => merge(d, s),
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// Everything one metricset task needs to turn documents into events.
struct Envelope {
    name: MetricsetName,
    period_ms: u64,
    common: Map<String, Value>,
}

impl Envelope {
    fn event(&self, timestamp: i64, duration_ns: u64, doc: Map<String, Value>) -> Event {
        let mut m = self.common.clone();
        m.insert(
            "event".into(),
            json!({"dataset": self.name.dataset(), "module": "system", "duration": duration_ns}),
        );
        m.insert(
            "metricset".into(),
            json!({"name": self.name.name(), "period": self.period_ms}),
        );
        m.insert("service".into(), json!({"type": "system"}));
        merge(&mut m, doc);
        Event::from_map(timestamp, m)
    }

    /// Metricbeat reports a failed fetch as an event with `error.message`.
    fn error_event(&self, timestamp: i64, duration_ns: u64, err: &SystemError) -> Event {
        let mut doc = Map::new();
        doc.insert("error".into(), json!({"message": err.to_string()}));
        self.event(timestamp, duration_ns, doc)
    }
}

/// Run the input: every configured metricset on its own timer until `ctx.shutdown` is
/// cancelled, or exactly one round (two samples for rate metricsets) with `ctx.once`.
pub async fn run(cfg: SystemMetricsConfig, ctx: InputContext) {
    if !cfg.enabled {
        tracing::info!(input = %cfg.id, "system/metrics input disabled");
        return;
    }
    let common = InputCommon::new(&cfg.id, INPUT_TYPE, &ctx.beat, cfg.extra_fields());
    let processors = match crate::processors::build(&cfg.processors, "processors") {
        Ok(chain) => Arc::new(chain),
        Err(e) => {
            // parse_config validated this already; never start half-configured.
            tracing::error!(input = %cfg.id, error = %e, "invalid processors");
            return;
        }
    };
    let publisher = if processors.is_empty() {
        ctx.publisher.clone()
    } else {
        ctx.publisher.with_processors(processors)
    };
    let counters = ctx.metrics.input(&cfg.id, INPUT_TYPE);
    let period = cfg.period.0;
    tracing::info!(
        input = %cfg.id,
        period = ?period,
        metricsets = ?cfg.metricsets.iter().map(|m| m.name()).collect::<Vec<_>>(),
        hostfs = ?cfg.hostfs,
        "starting system/metrics input"
    );
    let mut tasks = tokio::task::JoinSet::new();
    for &name in &cfg.metricsets {
        let env = Envelope {
            name,
            period_ms: period.as_millis() as u64,
            common: common.fields.clone(),
        };
        let ms = metricset(name, &cfg);
        tasks.spawn(run_metricset(
            env,
            ms,
            period,
            publisher.clone(),
            ctx.shutdown.clone(),
            ctx.once,
            counters.clone(),
        ));
    }
    while let Some(res) = tasks.join_next().await {
        if let Err(e) = res {
            tracing::error!(input = %cfg.id, error = %e, "metricset task failed");
        }
    }
    ctx.metrics.remove_input(&cfg.id);
}

/// Collect on a blocking thread; gives the metricset back with the result.
async fn collect_blocking(
    mut ms: Box<dyn Metricset>,
) -> Option<(Box<dyn Metricset>, Result<Docs, SystemError>, i64, u64)> {
    let res = tokio::task::spawn_blocking(move || {
        let ts = now_nanos();
        let t0 = Instant::now();
        let r = ms.collect();
        let dur = t0.elapsed().as_nanos() as u64;
        (ms, r, ts, dur)
    })
    .await;
    match res {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "metricset collection panicked; metricset stopped");
            None
        }
    }
}

async fn run_metricset(
    env: Envelope,
    mut ms: Box<dyn Metricset>,
    period: Duration,
    publisher: Publisher,
    shutdown: tokio_util::sync::CancellationToken,
    once: bool,
    counters: Arc<InputCounters>,
) {
    let mut tick = tokio::time::interval(period);
    // A collection slower than the period skips ticks instead of bursting to catch up.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut samples = 0u32;
    loop {
        if once && samples == 1 {
            // Second sample of a rate metricset in --once mode.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(ONCE_RATE_INTERVAL.min(period)) => {}
            }
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
        }
        let collected = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = collect_blocking(ms) => c,
        };
        let Some((back, result, ts, dur)) = collected else {
            InputCounters::add(&counters.processing_errors_total, 1);
            return;
        };
        ms = back;
        samples += 1;
        let failed = result.is_err();
        let events: Vec<Event> = match result {
            Ok(docs) => docs.into_iter().map(|d| env.event(ts, dur, d)).collect(),
            Err(e) => {
                tracing::warn!(metricset = env.name.name(), error = %e, "collection failed");
                InputCounters::add(&counters.processing_errors_total, 1);
                vec![env.error_event(ts, dur, &e)]
            }
        };
        let n = events.len() as u64;
        if n > 0 {
            let published = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = publisher.publish(events) => r,
            };
            if published.is_err() {
                tracing::debug!(metricset = env.name.name(), "queue closed; stopping");
                return;
            }
            InputCounters::add(&counters.events_processed_total, n);
        }
        // --once: done after the round (a failed first sample of a rate metricset already
        // reported its error; a second try would only repeat it).
        if once && (samples >= 2 || !env.name.is_rate() || failed) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SystemMetricsConfig, ConfigError> {
        let v: toml::Value = toml::from_str(text).unwrap();
        parse_config(&v, "inputs[0]")
    }

    #[test]
    fn issue_example_config() {
        let c = parse(
            r#"
type = "system/metrics"
id = "host"
period = "10s"
metricsets = ["cpu", "load", "memory", "network", "filesystem", "fsstat", "uptime",
              "diskio", "process_summary", "process", "socket_summary"]
process.include_top_n = { by_cpu = 5, by_memory = 5 }
process.cgroups.enabled = false
filesystem.ignore_types = ["tmpfs", "overlay"]
hostfs = "/hostfs"
fields = { env = "prod" }
tags = ["host"]
"#,
        )
        .unwrap();
        assert_eq!(c.metricsets.len(), 11);
        assert_eq!(c.period.0, Duration::from_secs(10));
        assert_eq!(c.process.include_top_n.by_cpu, 5);
        assert!(!c.process.cgroups.enabled);
        assert_eq!(
            c.filesystem.ignore_types.as_deref(),
            Some(&["tmpfs".to_string(), "overlay".to_string()][..])
        );
        assert_eq!(c.hostfs.as_deref(), Some(std::path::Path::new("/hostfs")));
        let extra = c.extra_fields();
        assert_eq!(extra["fields"]["env"], "prod");
        assert_eq!(extra["tags"][0], "host");
    }

    /// The way main wires it: the config loader keeps the table raw, we validate it.
    #[test]
    fn from_agent_config() {
        let text = "[[inputs]]\ntype = \"system/metrics\"\nid = \"host\"\nmetricsets = [\"cpu\"]\n[output.console]\n";
        let (cfg, _) =
            crate::config::Config::from_str_with(text, "t.toml", &[], &|_| None).unwrap();
        let crate::config::InputConfig::SystemMetrics(raw) = &cfg.inputs[0] else {
            panic!("not a system/metrics input");
        };
        let c = parse_config(raw, "inputs[0]").unwrap();
        assert_eq!(c.id, "host");
        assert_eq!(c.metricsets, vec![MetricsetName::Cpu]);
    }

    #[test]
    fn defaults() {
        let c = parse("id = \"h\"").unwrap();
        assert_eq!(c.period.0, Duration::from_secs(10));
        assert_eq!(c.metricsets, SystemMetricsConfig::default_metricsets());
        assert!(c.process.include_top_n.enabled);
        assert!(c.filesystem.ignore_types.is_none());
    }

    #[test]
    fn errors_name_their_key() {
        let e = parse("id = \"h\"\nmetricsets = [\"cpu\", \"gpu\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs[0].metricsets[1]"), "{e}");
        assert!(e.contains("gpu"), "{e}");
        let e = parse("id = \"h\"\nprocess.include_top_n = { by_cpux = 5 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs[0].process.include_top_n"), "{e}");
        assert!(e.contains("by_cpux"), "{e}");
        let e = parse("id = \"h\"\nmetricsets = [\"cpu\", \"cpu\"]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inputs[0].metricsets[1]") && e.contains("twice"),
            "{e}"
        );
        let e = parse("id = \"h\"\nperiod = \"1ms\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs[0].period"), "{e}");
        let e = parse("id = \"h\"\nhostfs = \"rel\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs[0].hostfs"), "{e}");
        let e = parse("id = \"h\"\nbogus = 1").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse("period = \"10s\"").unwrap_err().to_string();
        assert!(e.contains("id"), "{e}");
    }

    #[test]
    fn metricbeat_spellings() {
        let c = parse("id = \"h\"\nsystem.hostfs = \"/hostfs\"\ncpu.metrics = [\"percentages\"]")
            .unwrap();
        assert_eq!(c.hostfs.as_deref(), Some(std::path::Path::new("/hostfs")));
        assert!(c.system.is_none());
        assert_eq!(c.cpu.metrics, vec![CpuMetric::Percentages]);
        let e = parse("id = \"h\"\nhostfs = \"/a\"\nsystem.hostfs = \"/b\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs[0].system.hostfs"), "{e}");
        let e = parse("id = \"h\"\ncpu.metrics = [\"pct\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs[0].cpu.metrics[0]"), "{e}");
    }

    #[test]
    fn fields_under_root() {
        let c = parse("id = \"h\"\nfields = { env = \"prod\" }\nfields_under_root = true").unwrap();
        assert_eq!(c.extra_fields()["env"], "prod");
    }

    #[test]
    fn merge_is_deep() {
        let mut a = json!({"host": {"name": "x"}, "k": 1})
            .as_object()
            .unwrap()
            .clone();
        let b = json!({"host": {"cpu": {"usage": 0.5}}, "k": 2})
            .as_object()
            .unwrap()
            .clone();
        merge(&mut a, b);
        assert_eq!(
            Value::Object(a),
            json!({"host": {"name": "x", "cpu": {"usage": 0.5}}, "k": 2})
        );
    }

    struct Fixed(Duration);
    impl Metricset for Fixed {
        fn collect(&mut self) -> Result<Docs, SystemError> {
            // Stands for a hung statvfs or a huge /proc.
            std::thread::sleep(self.0);
            Ok(vec![json!({"system": {"x": 1}})
                .as_object()
                .cloned()
                .unwrap_or_default()])
        }
    }

    /// A slow collection delays only its own metricset, not the others nor the pipeline.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_metricset_does_not_block_others() {
        let metrics = crate::monitoring::Metrics::new();
        let (publisher, mut consumer) = crate::pipeline::queue(
            crate::pipeline::QueueLimits {
                events: 1000,
                max_bytes: 1 << 20,
            },
            Arc::new(crate::processors::Chain::default()),
            metrics.clone(),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let counters = metrics.input("t", INPUT_TYPE);
        let env = |name| Envelope {
            name,
            period_ms: 50,
            common: Map::new(),
        };
        let slow = tokio::spawn(run_metricset(
            env(MetricsetName::Fsstat),
            Box::new(Fixed(Duration::from_secs(1))),
            Duration::from_millis(50),
            publisher.clone(),
            stop.clone(),
            false,
            counters.clone(),
        ));
        let fast = tokio::spawn(run_metricset(
            env(MetricsetName::Memory),
            Box::new(Fixed(Duration::ZERO)),
            Duration::from_millis(50),
            publisher,
            stop.clone(),
            false,
            counters,
        ));
        let mut names = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(500) {
            if let Ok(Some(b)) =
                tokio::time::timeout(Duration::from_millis(50), consumer.next_batch(100)).await
            {
                names.extend(
                    b.events()
                        .filter_map(|e| e.get_value("metricset.name"))
                        .filter_map(|v| v.as_str().map(String::from)),
                );
                b.ack();
            }
        }
        stop.cancel();
        // Both tasks stop at once, even the one waiting on its blocking read.
        tokio::time::timeout(Duration::from_millis(500), async {
            let _ = slow.await;
            let _ = fast.await;
        })
        .await
        .expect("tasks stop on shutdown");
        let fast_n = names.iter().filter(|n| *n == "memory").count();
        assert!(fast_n >= 5, "fast metricset kept its pace: {names:?}");
        assert!(!names.iter().any(|n| n == "fsstat"), "{names:?}");
    }

    #[test]
    fn datasets() {
        assert_eq!(
            MetricsetName::ProcessSummary.dataset(),
            "system.process.summary"
        );
        assert_eq!(
            MetricsetName::SocketSummary.dataset(),
            "system.socket.summary"
        );
        for m in MetricsetName::ALL {
            assert!(m.dataset().starts_with("system."));
        }
    }
}
