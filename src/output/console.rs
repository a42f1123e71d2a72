//! `[output.console]`: one JSON event per line on stdout.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ConsoleOutputConfig;
use crate::event::BeatInfo;
use crate::monitoring::Metrics;
use crate::pipeline::Consumer;

use super::{Backoff, OutputError};

pub async fn run(
    cfg: ConsoleOutputConfig,
    mut consumer: Consumer,
    beat: Arc<BeatInfo>,
) -> Result<(), OutputError> {
    let metrics = consumer.metrics().clone();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    while let Some(batch) = consumer.next_batch(cfg.bulk_max_size.max(1)).await {
        let n = super::encode_ndjson(&batch, &beat, cfg.codec.json.pretty, &mut buf);
        Metrics::add(&metrics.counters.output_batches, 1);
        Metrics::add(&metrics.counters.output_total, n as u64);
        loop {
            let res = {
                let mut out = std::io::stdout().lock();
                out.write_all(&buf).and_then(|_| out.flush())
            };
            match res {
                Ok(()) => break,
                Err(e) => {
                    Metrics::add(&metrics.counters.output_write_errors, 1);
                    tracing::error!(error = %e, "writing to stdout failed; retrying");
                    backoff.wait().await;
                }
            }
        }
        backoff.reset();
        Metrics::add(&metrics.counters.output_write_bytes, buf.len() as u64);
        batch.ack();
    }
    Ok(())
}
