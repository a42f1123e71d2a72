//! Metrics of the disk queue (`[queue.disk]`), served with the others by `/stats`, `/metrics`
//! and the periodic log line once the disk queue is in use.
//!
//! Names extend Beats' `libbeat.pipeline.queue.*` namespace: `filled.events` / `filled.bytes`
//! / `max_bytes` as Filebeat reports them for its queues, and `disk.*` for what only a disk
//! queue has (segments, oldest event, write/read counters and rates, corruption).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Atomics updated by the disk queue's threads; all relaxed.
#[derive(Debug, Default)]
pub struct DiskQueueStats {
    /// Set when a disk queue is opened: only then are these numbers reported.
    pub enabled: AtomicBool,
    /// Events on disk not yet acknowledged by the output.
    pub events: AtomicI64,
    /// Bytes of the segment files on disk.
    pub bytes: AtomicI64,
    /// `max_size` (0 = unlimited).
    pub max_bytes: AtomicI64,
    pub segments: AtomicI64,
    /// Unix milliseconds at which the oldest unacknowledged event was written (0: none).
    pub oldest_written_ms: AtomicU64,
    pub write_events: AtomicU64,
    pub write_bytes: AtomicU64,
    pub write_errors: AtomicU64,
    pub fsyncs: AtomicU64,
    pub read_events: AtomicU64,
    pub read_bytes: AtomicU64,
    /// Damaged frames or byte ranges found (at start or while reading).
    pub corrupt_frames: AtomicU64,
    /// Events lost in damaged frames (known from the sequence numbers around them).
    pub corrupt_events: AtomicU64,
    /// Incomplete last frames cut at start (a write interrupted by a crash).
    pub torn_tails: AtomicU64,
    /// Per-second rates over the last few seconds, updated by the queue every second.
    pub write_events_rate: AtomicI64,
    pub write_bytes_rate: AtomicI64,
    pub read_events_rate: AtomicI64,
    pub read_bytes_rate: AtomicI64,
}

impl DiskQueueStats {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// (name, value) of every counter; empty while no disk queue is open.
    pub fn counter_values(&self) -> Vec<(&'static str, u64)> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            (
                "libbeat.pipeline.queue.disk.write.events",
                c(&self.write_events),
            ),
            (
                "libbeat.pipeline.queue.disk.write.bytes",
                c(&self.write_bytes),
            ),
            (
                "libbeat.pipeline.queue.disk.write.errors",
                c(&self.write_errors),
            ),
            ("libbeat.pipeline.queue.disk.write.fsyncs", c(&self.fsyncs)),
            (
                "libbeat.pipeline.queue.disk.read.events",
                c(&self.read_events),
            ),
            (
                "libbeat.pipeline.queue.disk.read.bytes",
                c(&self.read_bytes),
            ),
            (
                "libbeat.pipeline.queue.disk.corrupt.frames",
                c(&self.corrupt_frames),
            ),
            (
                "libbeat.pipeline.queue.disk.corrupt.events",
                c(&self.corrupt_events),
            ),
            (
                "libbeat.pipeline.queue.disk.torn_tails",
                c(&self.torn_tails),
            ),
        ]
    }

    /// (name, value) of every gauge; empty while no disk queue is open.
    pub fn gauge_values(&self) -> Vec<(&'static str, i64)> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed);
        let events = g(&self.events);
        vec![
            ("libbeat.pipeline.queue.filled.events", events),
            ("libbeat.pipeline.queue.filled.bytes", g(&self.bytes)),
            ("libbeat.pipeline.queue.max_bytes", g(&self.max_bytes)),
            ("libbeat.pipeline.queue.disk.segments", g(&self.segments)),
            (
                "libbeat.pipeline.queue.disk.oldest_event_age.ms",
                self.oldest_age_ms(events),
            ),
            (
                "libbeat.pipeline.queue.disk.write.events_per_sec",
                g(&self.write_events_rate),
            ),
            (
                "libbeat.pipeline.queue.disk.write.bytes_per_sec",
                g(&self.write_bytes_rate),
            ),
            (
                "libbeat.pipeline.queue.disk.read.events_per_sec",
                g(&self.read_events_rate),
            ),
            (
                "libbeat.pipeline.queue.disk.read.bytes_per_sec",
                g(&self.read_bytes_rate),
            ),
        ]
    }

    fn oldest_age_ms(&self, events: i64) -> i64 {
        let at = self.oldest_written_ms.load(Ordering::Relaxed);
        if events <= 0 || at == 0 {
            return 0;
        }
        let now = crate::event::now_nanos() / 1_000_000;
        (now - at as i64).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_until_enabled() {
        let s = DiskQueueStats::default();
        assert!(s.counter_values().is_empty());
        assert!(s.gauge_values().is_empty());
        s.enabled.store(true, Ordering::Relaxed);
        s.events.store(3, Ordering::Relaxed);
        s.oldest_written_ms.store(
            (crate::event::now_nanos() / 1_000_000 - 5_000) as u64,
            Ordering::Relaxed,
        );
        let g = s.gauge_values();
        assert!(g.contains(&("libbeat.pipeline.queue.filled.events", 3)));
        let age = g
            .iter()
            .find(|(n, _)| *n == "libbeat.pipeline.queue.disk.oldest_event_age.ms")
            .unwrap()
            .1;
        assert!((5_000..60_000).contains(&age), "{age}");
        assert_eq!(s.counter_values().len(), 9);
    }
}
