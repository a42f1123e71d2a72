//! Acknowledgement tracking: turns out-of-order output acks into an in-order cursor per file.
//!
//! Each event of a file gets a sequence number and the file offset just past it. When an output
//! confirms events, the tracker marks them; the acked offset advances only over a contiguous run of
//! confirmed events from the oldest, so the registry never skips an unconfirmed line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Position of one event in its source, for acking.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub tracker: Arc<AckTracker>,
    pub seq: u64,
}

#[derive(Debug, Default)]
struct Pending {
    /// Sequence number of `entries[0]`.
    base_seq: u64,
    /// (end offset, acked) per outstanding event, oldest first.
    entries: VecDeque<(u64, bool)>,
    /// The registry cursor value of each outstanding event, for sources whose position is
    /// not a byte offset (a journal cursor). Empty for files; else as long as `entries`.
    labels: VecDeque<Arc<serde_json::Value>>,
}

/// Events being registered on one tracker (`AckTracker::register`).
pub struct Registration<'a> {
    tracker: &'a Arc<AckTracker>,
    pending: std::sync::MutexGuard<'a, Pending>,
}

impl Registration<'_> {
    /// The next event of the file, which ends at `end_offset`.
    pub fn next(&mut self, end_offset: u64) -> Cursor {
        let p = &mut self.pending;
        let seq = p.base_seq + p.entries.len() as u64;
        p.entries.push_back((end_offset, false));
        Cursor {
            tracker: self.tracker.clone(),
            seq,
        }
    }
}

/// Per-file acknowledgement state, shared by the harvester, the outputs and the registry.
#[derive(Debug)]
pub struct AckTracker {
    pending: Mutex<Pending>,
    acked_offset: AtomicU64,
    /// Set when `acked_offset` moved since the registry last looked.
    dirty: AtomicBool,
    /// The registry's flag that some tracker it follows is dirty (`notify_to`): a flush of
    /// thousands of idle files then looks at none of them.
    notify: std::sync::OnceLock<Arc<AtomicBool>>,
    /// Set by the registry when the file is forgotten (clean_removed); acks are then ignored.
    pub retired: AtomicBool,
    /// Cursor value of the last acked labelled event (see `next_labelled_cursor`).
    acked_label: Mutex<Option<Arc<serde_json::Value>>>,
    labelled: AtomicBool,
}

impl AckTracker {
    pub fn new(start_offset: u64) -> Arc<Self> {
        Arc::new(AckTracker {
            pending: Mutex::new(Pending::default()),
            acked_offset: AtomicU64::new(start_offset),
            dirty: AtomicBool::new(false),
            notify: std::sync::OnceLock::new(),
            retired: AtomicBool::new(false),
            acked_label: Mutex::new(None),
            labelled: AtomicBool::new(false),
        })
    }

    /// A tracker for a source positioned by an opaque cursor (a journal), starting from the
    /// saved cursor value `start`, if any.
    pub fn labelled(start: Option<serde_json::Value>) -> Arc<Self> {
        let t = Self::new(0);
        t.labelled.store(true, Ordering::Relaxed);
        *t.acked_label.lock().unwrap_or_else(|e| e.into_inner()) = start.map(Arc::new);
        t
    }

    /// Register the next event of a labelled source: `label` is what the registry stores as
    /// the cursor once this event and every earlier one were acked. Do not mix with
    /// `next_cursor` on one tracker.
    pub fn next_labelled_cursor(self: &Arc<Self>, label: serde_json::Value) -> Cursor {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let seq = p.base_seq + p.entries.len() as u64;
        p.entries.push_back((seq + 1, false));
        p.labels.push_back(Arc::new(label));
        Cursor {
            tracker: self.clone(),
            seq,
        }
    }

    /// The cursor value of the last acked labelled event (or the one it started from).
    pub fn acked_label(&self) -> Option<Arc<serde_json::Value>> {
        self.acked_label
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True for trackers made by `labelled`.
    pub fn is_labelled(&self) -> bool {
        self.labelled.load(Ordering::Relaxed)
    }

    /// Register the next event of this file, which ends at `end_offset`.
    pub fn next_cursor(self: &Arc<Self>, end_offset: u64) -> Cursor {
        self.register().next(end_offset)
    }

    /// Register several events under one lock (a harvester's lines of one read). Acks of
    /// this tracker wait while the registration is held: drop it before acking.
    pub fn register(self: &Arc<Self>) -> Registration<'_> {
        Registration {
            tracker: self,
            pending: self.pending.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Mark events acked; advances the acked offset over the contiguous acked prefix.
    pub fn ack_seqs(&self, seqs: impl Iterator<Item = u64>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for seq in seqs {
            if seq < p.base_seq {
                continue;
            }
            let idx = (seq - p.base_seq) as usize;
            if let Some(e) = p.entries.get_mut(idx) {
                e.1 = true;
            }
        }
        let mut advanced = None;
        let mut label = None;
        while let Some(&(off, true)) = p.entries.front() {
            advanced = Some(off);
            p.entries.pop_front();
            if let Some(l) = p.labels.pop_front() {
                label = Some(l);
            }
            p.base_seq += 1;
        }
        if let Some(l) = label {
            *self.acked_label.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
        }
        if let Some(off) = advanced {
            self.acked_offset.store(off, Ordering::Release);
            self.mark_dirty();
        }
    }

    /// Offset just past the last event handed to the pipeline (acked or not): where a
    /// reader that takes over this source (an input restarted by a reload) continues, so
    /// nothing is read twice while the earlier events are still in flight.
    pub fn published_offset(&self) -> u64 {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.entries
            .back()
            .map(|e| e.0)
            .unwrap_or_else(|| self.acked_offset())
    }

    /// The cursor value of the last labelled event handed to the pipeline (acked or not).
    pub fn published_label(&self) -> Option<Arc<serde_json::Value>> {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match p.labels.back() {
            Some(l) => Some(l.clone()),
            None => {
                drop(p);
                self.acked_label()
            }
        }
    }

    /// Forget the events registered from `seq` on: they were never queued (a publish cut
    /// short by a stop), so the published position goes back to before them and a reader
    /// that takes over reads them again.
    pub fn withdraw_from(&self, seq: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(keep) = seq.checked_sub(p.base_seq) else {
            return;
        };
        let keep = keep as usize;
        p.entries.truncate(keep);
        p.labels.truncate(keep);
    }

    /// Offset up to which every event was confirmed.
    pub fn acked_offset(&self) -> u64 {
        self.acked_offset.load(Ordering::Acquire)
    }

    /// Reset after truncation: the file restarts at `offset`, outstanding events are moot.
    pub fn reset(&self, offset: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.base_seq += p.entries.len() as u64;
        p.entries.clear();
        p.labels.clear();
        self.acked_offset.store(offset, Ordering::Release);
        self.mark_dirty();
    }

    /// Number of events published but not yet acked.
    pub fn outstanding(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    /// True once if the acked offset moved since the last call.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        if let Some(n) = self.notify.get() {
            n.store(true, Ordering::Release);
        }
    }

    /// Also set `flag` whenever this tracker becomes dirty (the first registry that follows
    /// it; later calls do nothing).
    pub fn notify_to(&self, flag: &Arc<AtomicBool>) {
        let _ = self.notify.set(flag.clone());
    }
}

/// Ack a batch of events: one lock per run of consecutive events of the same file.
pub fn ack_events<'a>(cursors: impl Iterator<Item = &'a Cursor>) {
    let mut run: Option<(&Arc<AckTracker>, Vec<u64>)> = None;
    for c in cursors {
        match &mut run {
            Some((t, seqs)) if Arc::ptr_eq(t, &c.tracker) => seqs.push(c.seq),
            _ => {
                if let Some((t, seqs)) = run.take() {
                    t.ack_seqs(seqs.into_iter());
                }
                run = Some((&c.tracker, vec![c.seq]));
            }
        }
    }
    if let Some((t, seqs)) = run {
        t.ack_seqs(seqs.into_iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_out_of_order_acks() {
        let t = AckTracker::new(0);
        let a = t.next_cursor(10);
        let b = t.next_cursor(20);
        let c = t.next_cursor(30);
        ack_events([&b].into_iter());
        assert_eq!(t.acked_offset(), 0, "a gap must hold the cursor back");
        ack_events([&a].into_iter());
        assert_eq!(t.acked_offset(), 20);
        assert!(t.take_dirty());
        assert!(!t.take_dirty());
        ack_events([&c, &c].into_iter());
        assert_eq!(t.acked_offset(), 30);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn labels_advance_with_the_contiguous_prefix() {
        let t = AckTracker::labelled(Some(serde_json::json!("start")));
        assert_eq!(*t.acked_label().unwrap(), serde_json::json!("start"));
        let a = t.next_labelled_cursor(serde_json::json!("a"));
        let b = t.next_labelled_cursor(serde_json::json!("b"));
        let c = t.next_labelled_cursor(serde_json::json!("c"));
        ack_events([&c].into_iter());
        assert_eq!(*t.acked_label().unwrap(), serde_json::json!("start"));
        ack_events([&a].into_iter());
        assert_eq!(*t.acked_label().unwrap(), serde_json::json!("a"));
        assert!(t.take_dirty());
        ack_events([&b].into_iter());
        assert_eq!(*t.acked_label().unwrap(), serde_json::json!("c"));
        assert_eq!(t.outstanding(), 0);
        assert!(t.is_labelled());
        assert!(!AckTracker::new(0).is_labelled());
    }

    #[test]
    fn published_position_runs_ahead_of_the_acked_one() {
        let t = AckTracker::new(5);
        assert_eq!(t.published_offset(), 5);
        let a = t.next_cursor(10);
        let _b = t.next_cursor(20);
        assert_eq!(t.published_offset(), 20);
        ack_events([&a].into_iter());
        assert_eq!((t.acked_offset(), t.published_offset()), (10, 20));
        let l = AckTracker::labelled(Some(serde_json::json!(1)));
        assert_eq!(*l.published_label().unwrap(), serde_json::json!(1));
        let _c = l.next_labelled_cursor(serde_json::json!(2));
        assert_eq!(*l.published_label().unwrap(), serde_json::json!(2));
        assert_eq!(*l.acked_label().unwrap(), serde_json::json!(1));
    }

    #[test]
    fn withdrawn_events_leave_the_published_position() {
        let t = AckTracker::new(0);
        let a = t.next_cursor(10);
        let b = t.next_cursor(20);
        let _c = t.next_cursor(30);
        t.withdraw_from(b.seq);
        assert_eq!(t.published_offset(), 10);
        ack_events([&a].into_iter());
        assert_eq!((t.acked_offset(), t.outstanding()), (10, 0));
    }

    #[test]
    fn reset_discards_outstanding() {
        let t = AckTracker::new(100);
        let a = t.next_cursor(110);
        t.reset(0);
        ack_events([&a].into_iter());
        assert_eq!(t.acked_offset(), 0);
        let b = t.next_cursor(5);
        ack_events([&b].into_iter());
        assert_eq!(t.acked_offset(), 5);
    }
}
