//! `[output.discard]`: encodes every event (so benchmarks include JSON encoding) and acks it.

use std::sync::Arc;

use crate::event::BeatInfo;
use crate::monitoring::Metrics;
use crate::pipeline::Consumer;

use super::OutputError;

pub async fn run(mut consumer: Consumer, beat: Arc<BeatInfo>) -> Result<(), OutputError> {
    let metrics = consumer.metrics().clone();
    let mut buf = Vec::with_capacity(1 << 20);
    while let Some(batch) = consumer.next_batch(4096).await {
        let n = super::encode_ndjson(&batch, &beat, false, &mut buf);
        std::hint::black_box(&buf);
        Metrics::add(&metrics.counters.output_batches, 1);
        Metrics::add(&metrics.counters.output_total, n as u64);
        Metrics::add(&metrics.counters.output_write_bytes, buf.len() as u64);
        batch.ack();
    }
    Ok(())
}
