//! The pipeline between inputs and the output: processors, a queue bounded by events AND bytes,
//! batching, and acknowledgement back to the sources.
//!
//! Data flows one way: `Publisher::publish` (input side) → queue → `Consumer::next_batch`
//! (output side). Acks flow back: `Batch::ack` → `AckTracker` per file → registry.
//! Queue space is returned when a batch is acked or dropped, so a stalled output pauses the
//! inputs instead of growing memory. An output that hands copies of the events to a client
//! with its own bounded buffer (Kafka) returns it earlier with `Batch::into_receipt`; that
//! client's bound then pauses the inputs.
//!
//! Two queues sit behind the same `Publisher`/`Consumer`/`Batch` API, so every output works
//! with either: the memory queue (`[queue.mem]`, here) and the disk queue (`[queue.disk]`,
//! `disk`), where an input's events are acknowledged once durable on disk and the queue's own
//! read position moves on output acks.

pub mod ack;
pub mod disk;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::event::Event;
use crate::monitoring::Metrics;
use crate::processors::{Chain, Outcome};

/// Queue limits (`[queue.mem]`).
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub events: usize,
    pub max_bytes: usize,
}

/// How the output side batches (`queue.mem.flush.*`, Filebeat 8.13+'s meaning): with
/// `min_events` > 1 and a non-zero `timeout`, a batch is handed over once
/// `min(min_events, the output's batch size)` events are queued, or when the oldest of them has
/// waited `timeout`. `min_events` > 1 also caps the batch size. Otherwise (the default) events
/// go to the output as soon as they are queued.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlushPolicy {
    pub min_events: usize,
    pub timeout: std::time::Duration,
}

impl FlushPolicy {
    /// The batch size to wait for, given the output's own maximum.
    fn target(&self, max_events: usize) -> usize {
        let max = max_events.max(1);
        if self.min_events > 1 {
            max.min(self.min_events)
        } else {
            max
        }
    }

    fn waits(&self) -> bool {
        self.min_events > 1 && !self.timeout.is_zero()
    }
}

struct Chunk {
    events: Vec<Event>,
    hold: Hold,
}

/// What a chunk holds of its queue until it is acknowledged or dropped.
enum Hold {
    /// Memory-queue space.
    Mem {
        _events: OwnedSemaphorePermit,
        _bytes: OwnedSemaphorePermit,
    },
    /// A frame of the disk queue: acking it lets the queue's position move on; dropping it
    /// unacknowledged has it delivered again.
    Disk(disk::Span),
}

/// Creates the queue; returns the publishing side (clone it per input) and the output side.
pub fn queue(
    limits: QueueLimits,
    global: Arc<Chain>,
    metrics: Arc<Metrics>,
) -> (Publisher, Consumer) {
    let (tx, rx) = mpsc::unbounded_channel();
    let events = limits.events.max(1);
    let bytes = limits.max_bytes.max(1);
    let shared = Arc::new(Shared {
        sink: Sink::Mem {
            tx,
            event_slots: Arc::new(Semaphore::new(events)),
            byte_slots: Arc::new(Semaphore::new(bytes)),
            max_events: events,
            max_bytes: bytes,
        },
        global: std::sync::RwLock::new(global),
        metrics: metrics.clone(),
    });
    (
        Publisher {
            shared,
            input: Arc::new(Chain::default()),
        },
        Consumer::new(Source::Mem(rx), metrics),
    )
}

/// Opens the disk queue (`[queue.disk]`) behind the same publishing and output sides; the
/// `DiskQueue` handle stops it in order (`DiskQueue::shutdown`).
pub fn disk_queue(
    cfg: &disk::DiskQueueConfig,
    data: &std::path::Path,
    global: Arc<Chain>,
    metrics: Arc<Metrics>,
) -> Result<(Publisher, Consumer, disk::DiskQueue), disk::DiskQueueError> {
    let (input, output, handle) = disk::open(cfg, data, metrics.clone())?;
    let shared = Arc::new(Shared {
        sink: Sink::Disk(input),
        global: std::sync::RwLock::new(global),
        metrics: metrics.clone(),
    });
    Ok((
        Publisher {
            shared,
            input: Arc::new(Chain::default()),
        },
        Consumer::new(Source::Disk(output), metrics),
        handle,
    ))
}

struct Shared {
    sink: Sink,
    /// Replaced by a reload; each batch uses the chain current when it is published.
    global: std::sync::RwLock<Arc<Chain>>,
    metrics: Arc<Metrics>,
}

enum Sink {
    Mem {
        tx: mpsc::UnboundedSender<Chunk>,
        event_slots: Arc<Semaphore>,
        byte_slots: Arc<Semaphore>,
        max_events: usize,
        max_bytes: usize,
    },
    Disk(disk::Input),
}

/// The input side of the queue. Cheap to clone; the queue closes when every publisher is gone.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
    /// Processors of the input, run before the global ones.
    input: Arc<Chain>,
}

/// Returned when the queue was closed (the output stopped); the events were not queued.
#[derive(Debug)]
pub struct Closed;

impl Publisher {
    /// A publisher that runs `processors` (the input's own) before the global processors.
    pub fn with_processors(&self, processors: Arc<Chain>) -> Publisher {
        Publisher {
            shared: self.shared.clone(),
            input: processors,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Replace the global processors (a reload): events published from now on use `chain`.
    pub fn set_global(&self, chain: Arc<Chain>) {
        *self
            .shared
            .global
            .write()
            .unwrap_or_else(|e| e.into_inner()) = chain;
    }

    /// Run processors, then wait for queue space and enqueue the batch.
    /// Dropped events are acked at once, so their file offsets still advance.
    pub async fn publish(&self, mut events: Vec<Event>) -> Result<(), Closed> {
        let m = &self.shared.metrics;
        let total = events.len() as u64;
        Metrics::add(&m.counters.pipeline_total, total);
        let global = self
            .shared
            .global
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !(self.input.is_empty() && global.is_empty()) {
            let mut dropped = Vec::new();
            events.retain_mut(|ev| {
                let keep = self.input.run(ev) == Outcome::Keep && global.run(ev) == Outcome::Keep;
                if !keep {
                    if let Some(c) = ev.cursor.take() {
                        dropped.push(c);
                    }
                }
                keep
            });
            let filtered = total - events.len() as u64;
            if filtered > 0 {
                Metrics::add(&m.counters.pipeline_filtered, filtered);
                ack::ack_events(dropped.iter());
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len();
        let (tx, event_slots, byte_slots, max_events, max_bytes) = match &self.shared.sink {
            Sink::Mem {
                tx,
                event_slots,
                byte_slots,
                max_events,
                max_bytes,
            } => (tx, event_slots, byte_slots, *max_events, *max_bytes),
            Sink::Disk(input) => {
                // Counted before the hand-over: the writer may write and the output ack them
                // before `publish` returns.
                m.gauges
                    .pipeline_active
                    .fetch_add(n as i64, Ordering::Relaxed);
                Metrics::add(&m.counters.pipeline_published, n as u64);
                let res = input.publish(events).await.map_err(|_| Closed);
                if res.is_err() {
                    m.gauges
                        .pipeline_active
                        .fetch_sub(n as i64, Ordering::Relaxed);
                }
                return res;
            }
        };
        let bytes: usize = events.iter().map(Event::size_hint).sum();
        // A batch bigger than the whole queue takes all of it rather than waiting forever.
        let want_events = n.min(max_events) as u32;
        let want_bytes = bytes.min(max_bytes).min(u32::MAX as usize) as u32;
        let ev_permit = event_slots
            .clone()
            .acquire_many_owned(want_events)
            .await
            .map_err(|_| Closed)?;
        let byte_permit = byte_slots
            .clone()
            .acquire_many_owned(want_bytes)
            .await
            .map_err(|_| Closed)?;
        m.gauges
            .pipeline_active
            .fetch_add(n as i64, Ordering::Relaxed);
        Metrics::add(&m.counters.pipeline_published, n as u64);
        tx.send(Chunk {
            events,
            hold: Hold::Mem {
                _events: ev_permit,
                _bytes: byte_permit,
            },
        })
        .map_err(|_| Closed)
    }
}

/// The output side of the queue.
pub struct Consumer {
    source: Source,
    metrics: Arc<Metrics>,
    flush: FlushPolicy,
    /// Chunks taken while waiting for a batch to fill. Kept here, not in the future, so that
    /// `next_batch` stays cancel-safe (outputs call it in `select!`).
    pending: Vec<Chunk>,
    pending_events: usize,
    /// A chunk that did not fit in the pending batch; it starts the next one.
    held: Option<Chunk>,
    /// When the oldest pending event has waited `flush.timeout`.
    deadline: Option<tokio::time::Instant>,
    closed: bool,
}

enum Source {
    Mem(mpsc::UnboundedReceiver<Chunk>),
    Disk(disk::Output),
}

impl Source {
    async fn recv(&mut self) -> Option<Chunk> {
        crate::monitoring::liveness::touch();
        match self {
            Source::Mem(rx) => rx.recv().await,
            Source::Disk(out) => out.recv().await.map(Chunk::from_disk),
        }
    }

    fn try_recv(&mut self) -> Option<Chunk> {
        match self {
            Source::Mem(rx) => rx.try_recv().ok(),
            Source::Disk(out) => out.try_recv().map(Chunk::from_disk),
        }
    }
}

impl Chunk {
    fn from_disk(d: disk::Delivery) -> Chunk {
        Chunk {
            events: d.events,
            hold: Hold::Disk(d.span),
        }
    }
}

impl Consumer {
    fn new(source: Source, metrics: Arc<Metrics>) -> Consumer {
        Consumer {
            source,
            metrics,
            flush: FlushPolicy::default(),
            pending: Vec::new(),
            pending_events: 0,
            held: None,
            deadline: None,
            closed: false,
        }
    }

    /// Batch as `policy` says (`queue.mem.flush.*`); the default hands events over at once.
    pub fn with_flush(mut self, policy: FlushPolicy) -> Consumer {
        self.flush = policy;
        self
    }

    fn take_chunk(&mut self, c: Chunk) {
        if self.pending.is_empty() {
            self.deadline = Some(tokio::time::Instant::now() + self.flush.timeout);
        }
        self.pending_events += c.events.len();
        self.pending.push(c);
    }

    /// Take `c` into the pending batch, or hold it for the next one when it would overflow
    /// `max_events` (chunks are not split; a first chunk bigger than that is a batch alone).
    fn offer(&mut self, c: Chunk, max_events: usize) {
        if !self.pending.is_empty() && self.pending_events + c.events.len() > max_events {
            self.held = Some(c);
        } else {
            self.take_chunk(c);
        }
    }

    fn hand_over(&mut self) -> Batch {
        self.pending_events = 0;
        self.deadline = None;
        Batch {
            chunks: std::mem::take(&mut self.pending),
            metrics: self.metrics.clone(),
        }
    }

    /// Wait for events, then take whatever is queued up to `max_events` (more only when the
    /// first chunk alone is bigger: chunks are not split). A chunk that would overflow the
    /// batch starts the next one, so outputs that send `max_events` per request (Elasticsearch)
    /// get full requests instead of a full one and a small remainder. With a `flush` policy
    /// that waits (`queue.mem.flush.*`), wait for `min(flush.min_events, max_events)` events or
    /// `flush.timeout`, whichever comes first.
    /// `None` when every publisher is gone and the queue is empty. Cancel-safe.
    pub async fn next_batch(&mut self, max_events: usize) -> Option<Batch> {
        let target = self.flush.target(max_events);
        loop {
            if self.pending.is_empty() {
                if let Some(c) = self.held.take() {
                    self.take_chunk(c);
                }
            }
            while self.pending_events < target && self.held.is_none() {
                match self.source.try_recv() {
                    Some(c) => self.offer(c, max_events),
                    None => break,
                }
            }
            if !self.pending.is_empty()
                && (self.pending_events >= target
                    || self.held.is_some()
                    || self.closed
                    || !self.flush.waits())
            {
                return Some(self.hand_over());
            }
            if self.pending.is_empty() {
                if self.closed {
                    return None;
                }
                match self.source.recv().await {
                    Some(c) => self.take_chunk(c),
                    None => self.closed = true,
                }
                continue;
            }
            let deadline = self.deadline.unwrap_or_else(tokio::time::Instant::now);
            match tokio::time::timeout_at(deadline, self.source.recv()).await {
                Ok(Some(c)) => self.offer(c, max_events),
                Ok(None) => self.closed = true,
                Err(_) => return Some(self.hand_over()),
            }
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// Events handed to an output. Call `ack` once the destination confirmed all of them;
/// dropping a batch without acking releases its queue space but does not advance any cursor.
pub struct Batch {
    chunks: Vec<Chunk>,
    metrics: Arc<Metrics>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.events.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.chunks.iter().flat_map(|c| c.events.iter())
    }

    /// Confirm delivery of every event: advances file cursors and frees queue space.
    pub fn ack(self) {
        self.into_receipt().ack();
    }

    /// Acknowledge events that were given up on (counted as dropped, e.g. sent to a
    /// dead-letter file): the cursor advances because the event is accounted for.
    pub fn ack_dropped(self) {
        let n = self.len();
        self.into_receipt().ack_with_dropped(n);
    }

    /// Confirm a batch of which `dropped` events were given up on (e.g. written to a dead-letter
    /// file) and the rest delivered. Every cursor advances; the counters split the two kinds.
    /// `dropped` is capped at the batch length.
    pub fn ack_with_dropped(self, dropped: usize) {
        self.into_receipt().ack_with_dropped(dropped);
    }

    /// Confirm a batch whose events all settled, of which `acked` count as delivered and
    /// `dropped` as given up on; the output counts the others itself (duplicates, dead-letter
    /// index). Every cursor advances.
    pub fn ack_as(self, acked: usize, dropped: usize) {
        self.into_receipt().ack_as(acked, dropped);
    }

    /// Keep only what acking needs and free the events and their queue space now.
    /// For outputs that hand a copy of each event to a client with its own bounded buffer
    /// (Kafka): the inputs go on reading while the copies are in flight, and the client's
    /// bound, not the queue, is what pauses them.
    pub fn into_receipt(self) -> Receipt {
        self.release().into_receipt()
    }

    /// The events one at a time, by value, for an output that copies each into its client
    /// (Kafka): an event is freed as soon as the output is done with it, while it is still
    /// in the CPU's cache, instead of in a second pass over the whole batch. What acking
    /// needs stays behind (`Release::into_receipt`); the events come out without their
    /// cursor, and the memory queue's space is given back chunk by chunk.
    pub fn release(self) -> Release {
        let len = self.len();
        Release {
            len,
            chunks: self.chunks.into_iter(),
            current: Vec::new().into_iter(),
            cursors: Vec::with_capacity(len),
            spans: Vec::new(),
            metrics: self.metrics,
        }
    }
}

/// A batch handing out its events (`Batch::release`).
pub struct Release {
    chunks: std::vec::IntoIter<Chunk>,
    current: std::vec::IntoIter<Event>,
    cursors: Vec<ack::Cursor>,
    spans: Vec<disk::Span>,
    len: usize,
    metrics: Arc<Metrics>,
}

impl Iterator for Release {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(mut e) = self.current.next() {
                if let Some(c) = e.cursor.take() {
                    self.cursors.push(c);
                }
                return Some(e);
            }
            let c = self.chunks.next()?;
            // A memory-queue hold is dropped here (its space is free); a disk-queue frame
            // stays held until the receipt is acked.
            if let Hold::Disk(span) = c.hold {
                self.spans.push(span);
            }
            self.current = c.events.into_iter();
        }
    }
}

impl Release {
    /// What acking needs; events not taken yet are freed now.
    pub fn into_receipt(mut self) -> Receipt {
        for _ in self.by_ref() {}
        Receipt {
            cursors: self.cursors,
            spans: self.spans,
            len: self.len,
            metrics: self.metrics,
        }
    }
}

/// The acknowledgement half of a batch whose events were already released (`Batch::into_receipt`).
/// Its events still count as active in the pipeline until it is acked.
pub struct Receipt {
    cursors: Vec<ack::Cursor>,
    /// Disk-queue frames the batch came from.
    spans: Vec<disk::Span>,
    len: usize,
    metrics: Arc<Metrics>,
}

impl Receipt {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Confirm delivery of every event of the batch.
    pub fn ack(self) {
        self.ack_with_dropped(0);
    }

    /// See `Batch::ack_with_dropped`.
    pub fn ack_with_dropped(self, dropped: usize) {
        let dropped = dropped.min(self.len);
        let delivered = self.len - dropped;
        self.ack_as(delivered, dropped);
    }

    /// See `Batch::ack_as`.
    pub fn ack_as(self, delivered: usize, dropped: usize) {
        let n = self.len as u64;
        let (delivered, dropped) = (delivered as u64, dropped as u64);
        ack::ack_events(self.cursors.iter());
        crate::monitoring::liveness::touch();
        for span in self.spans {
            span.ack();
        }
        let m = &self.metrics;
        Metrics::add(&m.counters.queue_acked, n);
        Metrics::add(&m.counters.output_acked, delivered);
        Metrics::add(&m.counters.output_dropped, dropped);
        m.gauges
            .pipeline_active
            .fetch_sub(n as i64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ack_with_dropped_advances_cursors_and_splits_counters() {
        let metrics = Metrics::new();
        let (publisher, mut consumer) = queue(
            QueueLimits {
                events: 100,
                max_bytes: 1 << 20,
            },
            Arc::new(Chain::default()),
            metrics.clone(),
        );
        let tracker = ack::AckTracker::new(0);
        let events: Vec<Event> = (1..=4u64)
            .map(|i| {
                let mut ev = Event::from_map(0, serde_json::Map::new());
                ev.cursor = Some(tracker.next_cursor(i * 10));
                ev
            })
            .collect();
        publisher.publish(events).await.expect("queued");
        let batch = consumer.next_batch(10).await.expect("a batch");
        assert_eq!(batch.len(), 4);
        batch.ack_with_dropped(1);
        assert_eq!(tracker.acked_offset(), 40);
        let c = &metrics.counters;
        assert_eq!(c.output_acked.load(Ordering::Relaxed), 3);
        assert_eq!(c.output_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.gauges.pipeline_active.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_receipt_frees_queue_space_before_the_ack() {
        let metrics = Metrics::new();
        let (publisher, mut consumer) = queue(
            QueueLimits {
                events: 2,
                max_bytes: 1 << 20,
            },
            Arc::new(Chain::default()),
            metrics.clone(),
        );
        let tracker = ack::AckTracker::new(0);
        let event = |end| {
            let mut ev = Event::from_map(0, serde_json::Map::new());
            ev.cursor = Some(tracker.next_cursor(end));
            ev
        };
        publisher.publish(vec![event(10), event(20)]).await.unwrap();
        let receipt = consumer.next_batch(10).await.unwrap().into_receipt();
        assert_eq!(receipt.len(), 2);
        // The queue is empty again although nothing was acked: the next events go in at once.
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            publisher.publish(vec![event(30), event(40)]),
        )
        .await
        .expect("queue space was released")
        .unwrap();
        assert_eq!(tracker.acked_offset(), 0, "nothing acked yet");
        assert_eq!(metrics.gauges.pipeline_active.load(Ordering::Relaxed), 4);
        receipt.ack();
        assert_eq!(tracker.acked_offset(), 20);
        consumer.next_batch(10).await.unwrap().ack();
        assert_eq!(tracker.acked_offset(), 40);
        assert_eq!(metrics.gauges.pipeline_active.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn release_hands_out_events_in_order_and_its_receipt_acks_them() {
        let metrics = Metrics::new();
        let (publisher, mut consumer) = queue(
            QueueLimits {
                events: 10,
                max_bytes: 1 << 20,
            },
            Arc::new(Chain::default()),
            metrics.clone(),
        );
        let tracker = ack::AckTracker::new(0);
        for chunk in [[1u64, 2], [3, 4]] {
            let events = chunk
                .iter()
                .map(|i| {
                    let mut m = serde_json::Map::new();
                    m.insert("n".into(), (*i).into());
                    let mut ev = Event::from_map(0, m);
                    ev.cursor = Some(tracker.next_cursor(i * 10));
                    ev
                })
                .collect();
            publisher.publish(events).await.unwrap();
        }
        let batch = consumer.next_batch(10).await.unwrap();
        assert_eq!(batch.len(), 4);
        let mut events = batch.release();
        let first: Vec<Event> = events.by_ref().take(3).collect();
        let seen: Vec<u64> = first
            .iter()
            .map(|e| e.get_value("n").and_then(|v| v.as_u64()).unwrap())
            .collect();
        assert_eq!(seen, [1, 2, 3]);
        assert!(
            first.iter().all(|e| e.cursor.is_none()),
            "cursors stay behind"
        );
        // The one not taken is freed by into_receipt; all four cursors are acked.
        let receipt = events.into_receipt();
        assert_eq!(receipt.len(), 4);
        assert_eq!(tracker.acked_offset(), 0);
        receipt.ack();
        assert_eq!(tracker.acked_offset(), 40);
        assert_eq!(metrics.gauges.pipeline_active.load(Ordering::Relaxed), 0);
    }

    fn one_event(tracker: &Arc<ack::AckTracker>, end: u64) -> Vec<Event> {
        let mut ev = Event::from_map(0, serde_json::Map::new());
        ev.cursor = Some(tracker.next_cursor(end));
        vec![ev]
    }

    fn flushing_queue(min_events: usize, timeout_ms: u64) -> (Publisher, Consumer) {
        let (p, c) = queue(
            QueueLimits {
                events: 100,
                max_bytes: 1 << 20,
            },
            Arc::new(Chain::default()),
            Metrics::new(),
        );
        let policy = FlushPolicy {
            min_events,
            timeout: std::time::Duration::from_millis(timeout_ms),
        };
        (p, c.with_flush(policy))
    }

    #[tokio::test]
    async fn flush_min_events_waits_for_a_full_batch_and_caps_it() {
        use std::time::Duration;
        let (publisher, mut consumer) = flushing_queue(3, 600_000);
        let tracker = ack::AckTracker::new(0);
        publisher.publish(one_event(&tracker, 10)).await.unwrap();
        // One of three events: no batch yet (and giving up on the call loses nothing).
        let early = tokio::time::timeout(Duration::from_millis(50), consumer.next_batch(10)).await;
        assert!(
            early.is_err(),
            "a batch of 1 was handed over before min_events"
        );
        for end in [20, 30, 40] {
            publisher.publish(one_event(&tracker, end)).await.unwrap();
        }
        let batch = tokio::time::timeout(Duration::from_secs(10), consumer.next_batch(10))
            .await
            .expect("min_events reached");
        let batch = batch.unwrap();
        assert_eq!(
            batch.len(),
            3,
            "capped at min_events, the event taken early included"
        );
        batch.ack();
        assert_eq!(tracker.acked_offset(), 30);
        // The output's own, smaller batch size wins over min_events.
        let batch = consumer.next_batch(1).await.unwrap();
        assert_eq!(batch.len(), 1);
        batch.ack();
        assert_eq!(tracker.acked_offset(), 40);
    }

    #[tokio::test]
    async fn flush_timeout_hands_over_what_is_there_and_close_flushes() {
        use std::time::Duration;
        let (publisher, mut consumer) = flushing_queue(1000, 100);
        let tracker = ack::AckTracker::new(0);
        publisher.publish(one_event(&tracker, 10)).await.unwrap();
        let batch = tokio::time::timeout(Duration::from_secs(10), consumer.next_batch(2048))
            .await
            .expect("flush.timeout hands over a partial batch")
            .unwrap();
        assert_eq!(batch.len(), 1);
        batch.ack();
        // The last publisher gone: what is pending goes out at once, then the end.
        let (publisher2, mut consumer2) = flushing_queue(1000, 600_000);
        publisher2.publish(one_event(&tracker, 20)).await.unwrap();
        drop(publisher2);
        drop(publisher);
        let batch = tokio::time::timeout(Duration::from_secs(10), consumer2.next_batch(2048))
            .await
            .expect("a closed queue does not wait")
            .unwrap();
        assert_eq!(batch.len(), 1);
        assert!(consumer2.next_batch(2048).await.is_none());
    }
}
