//! Atomic counters; cheap to bump on the hot path (relaxed, one add per batch where possible).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

macro_rules! counters {
    ($($field:ident => $name:literal),* $(,)?) => {
        /// Every counter of the agent. Gauges are `AtomicI64` in `gauges`.
        #[derive(Debug, Default)]
        pub struct Counters { $(pub $field: AtomicU64,)* }

        impl Counters {
            /// (Beats name, value) for every counter.
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$(($name, self.$field.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    events_read => "filebeat.events.read",
    pipeline_published => "libbeat.pipeline.events.published",
    pipeline_total => "libbeat.pipeline.events.total",
    pipeline_filtered => "libbeat.pipeline.events.filtered",
    pipeline_dropped => "libbeat.pipeline.events.dropped",
    pipeline_failed => "libbeat.pipeline.events.failed",
    pipeline_retry => "libbeat.pipeline.events.retry",
    queue_acked => "libbeat.pipeline.queue.acked",
    output_total => "libbeat.output.events.total",
    output_acked => "libbeat.output.events.acked",
    output_failed => "libbeat.output.events.failed",
    output_dropped => "libbeat.output.events.dropped",
    output_duplicates => "libbeat.output.events.duplicates",
    output_dead_letter => "libbeat.output.events.dead_letter",
    output_toomany => "libbeat.output.events.toomany",
    output_batches => "libbeat.output.events.batches",
    output_write_bytes => "libbeat.output.write.bytes",
    output_write_errors => "libbeat.output.write.errors",
    output_read_bytes => "libbeat.output.read.bytes",
    output_read_errors => "libbeat.output.read.errors",
    harvester_started => "filebeat.harvester.started",
    harvester_closed => "filebeat.harvester.closed",
    harvester_skipped => "filebeat.harvester.skipped",
    lines_truncated => "filebeat.input.lines.truncated",
    lines_invalid_utf8 => "filebeat.input.lines.invalid_utf8",
    registrar_updates => "registrar.states.update",
    registrar_writes => "registrar.writes.success",
    registrar_write_fails => "registrar.writes.fail",
}

/// Gauges: values that go up and down.
#[derive(Debug, Default)]
pub struct Gauges {
    pub open_files: AtomicI64,
    pub harvesters_running: AtomicI64,
    pub pipeline_active: AtomicI64,
    pub output_active: AtomicI64,
    pub registrar_states: AtomicI64,
    /// Files with something to read that wait for a harvester slot (harvester_limit or the
    /// open-file budget).
    pub harvesters_waiting: AtomicI64,
    /// 1 while the registry cannot be written (disk full, I/O errors); cursors are kept in
    /// memory and the whole registry is written again once it works.
    pub registrar_failing: AtomicI64,
}

impl Gauges {
    pub fn values(&self) -> Vec<(&'static str, i64)> {
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed);
        vec![
            ("filebeat.harvester.open_files", g(&self.open_files)),
            ("filebeat.harvester.running", g(&self.harvesters_running)),
            ("libbeat.pipeline.events.active", g(&self.pipeline_active)),
            ("libbeat.output.events.active", g(&self.output_active)),
            ("registrar.states.current", g(&self.registrar_states)),
            ("filebeat.harvester.waiting", g(&self.harvesters_waiting)),
            ("registrar.persistence.failing", g(&self.registrar_failing)),
        ]
    }
}

macro_rules! input_counters {
    (counters { $($c:ident),* $(,)? } gauges { $($g:ident),* $(,)? }) => {
        /// Per-input metrics, served by `GET /inputs/` (names as Filebeat's input metrics).
        #[derive(Debug, Default)]
        pub struct InputCounters {
            /// The input's `id`.
            pub id: String,
            /// `filestream`, `system/metrics`, ...
            pub input_type: String,
            $(pub $c: AtomicU64,)*
            $(pub $g: AtomicI64,)*
        }

        impl InputCounters {
            pub fn new(id: &str, input_type: &str) -> Self {
                InputCounters {
                    id: id.to_string(),
                    input_type: input_type.to_string(),
                    ..Default::default()
                }
            }

            /// (name, value) of every counter.
            pub fn counter_values(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($c), self.$c.load(Ordering::Relaxed)),)*]
            }

            /// (name, value) of every gauge.
            pub fn gauge_values(&self) -> Vec<(&'static str, i64)> {
                vec![$((stringify!($g), self.$g.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

input_counters! {
    counters {
        events_processed_total,
        bytes_processed_total,
        messages_read_total,
        processing_errors_total,
        files_opened_total,
        files_closed_total,
        harvester_started_total,
        harvester_closed_total,
        harvester_errors_total,
    }
    gauges {
        files_active,
        harvester_running,
    }
}

impl InputCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// All metrics of one agent process.
#[derive(Debug)]
pub struct Metrics {
    pub counters: Counters,
    pub gauges: Gauges,
    /// The disk queue's numbers, reported once it is open.
    pub disk_queue: super::disk_queue::DiskQueueStats,
    pub started: Instant,
    /// Per-input metrics by input id.
    inputs: Mutex<BTreeMap<String, Arc<InputCounters>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            counters: Counters::default(),
            gauges: Gauges::default(),
            disk_queue: Default::default(),
            started: Instant::now(),
            inputs: Mutex::new(BTreeMap::new()),
        }
    }
}

/// A point-in-time copy of every counter and gauge.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub counters: Vec<(&'static str, u64)>,
    pub gauges: Vec<(&'static str, i64)>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut counters = self.counters.values();
        let mut gauges = self.gauges.values();
        // Appended last, so the positions `nonzero_delta` compares stay the same.
        counters.extend(self.disk_queue.counter_values());
        gauges.extend(self.disk_queue.gauge_values());
        Snapshot { counters, gauges }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The metrics of input `id`, registered on first use (an input that restarts with the
    /// same id keeps counting where it stopped).
    pub fn input(&self, id: &str, input_type: &str) -> Arc<InputCounters> {
        let mut map = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| Arc::new(InputCounters::new(id, input_type)))
            .clone()
    }

    /// Forget input `id` (it stopped for good).
    pub fn remove_input(&self, id: &str) {
        let mut map = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
    }

    /// Every registered input, ordered by id.
    pub fn inputs(&self) -> Vec<Arc<InputCounters>> {
        let map = self.inputs.lock().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }
}

impl Snapshot {
    /// Counters that moved since `prev`, and non-zero gauges, as `name=value` pairs.
    pub fn nonzero_delta(&self, prev: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (name, v)) in self.counters.iter().enumerate() {
            let before = prev.counters.get(i).map(|p| p.1).unwrap_or(0);
            if *v > before {
                out.push(format!("{name}={}", v - before));
            }
        }
        for (name, v) in &self.gauges {
            if *v != 0 {
                out.push(format!("{name}={v}"));
            }
        }
        out
    }
}

/// Log "Non-zero metrics in the last 30s" every `period`, like Beats.
pub async fn log_periodically(metrics: Arc<Metrics>, period: Duration) {
    let mut prev = metrics.snapshot();
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = metrics.snapshot();
        let delta = now.nonzero_delta(&prev);
        if !delta.is_empty() {
            tracing::info!(
                monitoring = %delta.join(" "),
                "Non-zero metrics in the last {}s",
                period.as_secs()
            );
        }
        prev = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_input_registry() {
        let m = Metrics::new();
        let a = m.input("a", "filestream");
        InputCounters::add(&a.events_processed_total, 3);
        // Same id, same counters.
        assert_eq!(
            m.input("a", "filestream")
                .events_processed_total
                .load(Ordering::Relaxed),
            3
        );
        m.input("b", "system/metrics");
        let ids: Vec<String> = m.inputs().iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(a.counter_values().contains(&("events_processed_total", 3)));
        m.remove_input("a");
        assert_eq!(m.inputs().len(), 1);
    }

    #[test]
    fn output_counters_have_filebeat_names() {
        let names: Vec<&str> = Counters::default()
            .values()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        for want in [
            "libbeat.output.events.acked",
            "libbeat.output.events.failed",
            "libbeat.output.events.dropped",
            "libbeat.output.events.duplicates",
            "libbeat.output.events.dead_letter",
            "libbeat.output.events.toomany",
            "libbeat.output.write.bytes",
        ] {
            assert!(names.contains(&want), "{want} missing");
        }
    }

    #[test]
    fn delta_reports_only_moved_counters() {
        let m = Metrics::new();
        let a = m.snapshot();
        Metrics::add(&m.counters.events_read, 5);
        m.gauges.open_files.store(2, Ordering::Relaxed);
        let d = m.snapshot().nonzero_delta(&a);
        assert_eq!(
            d,
            vec![
                "filebeat.events.read=5".to_string(),
                "filebeat.harvester.open_files=2".to_string()
            ]
        );
    }
}
