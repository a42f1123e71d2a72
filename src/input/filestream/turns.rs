//! Files take turns for harvester slots.
//!
//! With more files to read than slots (`harvester_limit`, or the open-file budget: the
//! open-file limit minus a reserve), a file that finds no free slot joins a queue in arrival
//! order. While anyone waits, a harvester closes at EOF (or after a one-second slice of a busy
//! file) instead of waiting there for `close.on_state_change.inactive`, and the file at the
//! head of the queue takes its slot; the closed file queues again behind the others when it
//! changes, or at once when it has bytes its harvester did not read (a slice of a busy file
//! ended, or a line was appended as the harvester closed). So no file waits longer than one
//! round of the queue, however many files match.

use std::sync::atomic::Ordering;

use super::{Prospector, Start};

impl Prospector {
    /// Queue `key` (a known file) for a slot (once).
    pub(super) fn enqueue(&mut self, key: &str) {
        let Some((key, _)) = self.known.get_key_value(key) else {
            return;
        };
        if self.waiting_set.insert(key.clone()) {
            self.waiting.push_back(key.clone());
            self.report_waiting();
        }
    }

    /// Start waiting files in order while slots are free. Entries that no longer need a
    /// harvester (caught up, removed, already running) leave the queue.
    pub(super) fn start_waiting(&mut self) {
        while let Some(key) = self.waiting.front().cloned() {
            if self.try_start(&key, true) == Start::NoSlot {
                break;
            }
            self.waiting.pop_front();
            self.waiting_set.remove(&key);
            if self.startup_last.as_ref() == Some(&key) {
                // The files of the startup scan all had their first turn.
                self.startup_last = None;
                self.startup_slots = 0;
            }
        }
        if self.waiting.is_empty() {
            self.startup_last = None;
            self.startup_slots = 0;
        }
        self.report_waiting();
    }

    /// Publish the queue length: to this input's harvesters (they make room when it is not
    /// zero) and to the global `filebeat.harvester.waiting` gauge.
    fn report_waiting(&mut self) {
        self.set_waiting_gauge(self.waiting.len());
    }

    pub(super) fn set_waiting_gauge(&mut self, n: usize) {
        self.settings.waiting.store(n, Ordering::Relaxed);
        let delta = n as i64 - self.waiting_reported as i64;
        if delta != 0 {
            self.ctx
                .metrics
                .gauges
                .harvesters_waiting
                .fetch_add(delta, Ordering::Relaxed);
        }
        self.waiting_reported = n;
    }
}
