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
}

/// Per-file acknowledgement state, shared by the harvester, the outputs and the registry.
#[derive(Debug)]
pub struct AckTracker {
    pending: Mutex<Pending>,
    acked_offset: AtomicU64,
    /// Set when `acked_offset` moved since the registry last looked.
    dirty: AtomicBool,
    /// Set by the registry when the file is forgotten (clean_removed); acks are then ignored.
    pub retired: AtomicBool,
}

impl AckTracker {
    pub fn new(start_offset: u64) -> Arc<Self> {
        Arc::new(AckTracker {
            pending: Mutex::new(Pending::default()),
            acked_offset: AtomicU64::new(start_offset),
            dirty: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        })
    }

    /// Register the next event of this file, which ends at `end_offset`.
    pub fn next_cursor(self: &Arc<Self>, end_offset: u64) -> Cursor {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let seq = p.base_seq + p.entries.len() as u64;
        p.entries.push_back((end_offset, false));
        Cursor {
            tracker: self.clone(),
            seq,
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
        while let Some(&(off, true)) = p.entries.front() {
            advanced = Some(off);
            p.entries.pop_front();
            p.base_seq += 1;
        }
        if let Some(off) = advanced {
            self.acked_offset.store(off, Ordering::Release);
            self.dirty.store(true, Ordering::Release);
        }
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
        self.acked_offset.store(offset, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
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
