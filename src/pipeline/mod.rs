//! The pipeline between inputs and the output: processors, a queue bounded by events AND bytes,
//! batching, and acknowledgement back to the sources.
//!
//! Data flows one way: `Publisher::publish` (input side) → queue → `Consumer::next_batch`
//! (output side). Acks flow back: `Batch::ack` → `AckTracker` per file → registry.
//! Queue space is returned when a batch is acked or dropped, so a stalled output pauses the
//! inputs instead of growing memory. An output that hands copies of the events to a client
//! with its own bounded buffer (Kafka) returns it earlier with `Batch::into_receipt`; that
//! client's bound then pauses the inputs.

pub mod ack;

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

struct Chunk {
    events: Vec<Event>,
    _event_permits: OwnedSemaphorePermit,
    _byte_permits: OwnedSemaphorePermit,
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
        tx,
        event_slots: Arc::new(Semaphore::new(events)),
        byte_slots: Arc::new(Semaphore::new(bytes)),
        max_events: events,
        max_bytes: bytes,
        global: std::sync::RwLock::new(global),
        metrics: metrics.clone(),
    });
    (
        Publisher {
            shared,
            input: Arc::new(Chain::default()),
        },
        Consumer {
            rx,
            metrics,
            held: None,
        },
    )
}

struct Shared {
    tx: mpsc::UnboundedSender<Chunk>,
    event_slots: Arc<Semaphore>,
    byte_slots: Arc<Semaphore>,
    max_events: usize,
    max_bytes: usize,
    /// Replaced by a reload; each batch uses the chain current when it is published.
    global: std::sync::RwLock<Arc<Chain>>,
    metrics: Arc<Metrics>,
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
                let keep = self.input.run(ev) == Outcome::Keep
                    && global.run(ev) == Outcome::Keep;
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
        let bytes: usize = events.iter().map(Event::size_hint).sum();
        // A batch bigger than the whole queue takes all of it rather than waiting forever.
        let want_events = n.min(self.shared.max_events) as u32;
        let want_bytes = bytes.min(self.shared.max_bytes).min(u32::MAX as usize) as u32;
        let ev_permit = self
            .shared
            .event_slots
            .clone()
            .acquire_many_owned(want_events)
            .await
            .map_err(|_| Closed)?;
        let byte_permit = self
            .shared
            .byte_slots
            .clone()
            .acquire_many_owned(want_bytes)
            .await
            .map_err(|_| Closed)?;
        m.gauges
            .pipeline_active
            .fetch_add(n as i64, Ordering::Relaxed);
        Metrics::add(&m.counters.pipeline_published, n as u64);
        self.shared
            .tx
            .send(Chunk {
                events,
                _event_permits: ev_permit,
                _byte_permits: byte_permit,
            })
            .map_err(|_| Closed)
    }
}

/// The output side of the queue.
pub struct Consumer {
    rx: mpsc::UnboundedReceiver<Chunk>,
    metrics: Arc<Metrics>,
    /// A chunk that did not fit in the previous batch; it starts the next one.
    held: Option<Chunk>,
}

impl Consumer {
    /// Wait for events, then take whatever is queued up to `max_events` (more only when the
    /// first chunk alone is bigger: chunks are not split). A chunk that would overflow the
    /// batch starts the next one, so outputs that send `max_events` per request (Elasticsearch)
    /// get full requests instead of a full one and a small remainder.
    /// `None` when every publisher is gone and the queue is empty.
    pub async fn next_batch(&mut self, max_events: usize) -> Option<Batch> {
        let first = match self.held.take() {
            Some(c) => c,
            None => self.rx.recv().await?,
        };
        crate::monitoring::liveness::touch();
        let mut batch = Batch {
            chunks: vec![first],
            metrics: self.metrics.clone(),
        };
        let mut n = batch.chunks[0].events.len();
        while n < max_events {
            match self.rx.try_recv() {
                Ok(c) if n + c.events.len() > max_events => {
                    self.held = Some(c);
                    break;
                }
                Ok(c) => {
                    n += c.events.len();
                    batch.chunks.push(c);
                }
                Err(_) => break,
            }
        }
        Some(batch)
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
        let len = self.len();
        let cursors = self
            .chunks
            .into_iter()
            .flat_map(|c| c.events.into_iter().filter_map(|e| e.cursor))
            .collect();
        Receipt {
            cursors,
            len,
            metrics: self.metrics,
        }
    }
}

/// The acknowledgement half of a batch whose events were already released (`Batch::into_receipt`).
/// Its events still count as active in the pipeline until it is acked.
pub struct Receipt {
    cursors: Vec<ack::Cursor>,
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
}
