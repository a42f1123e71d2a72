//! Inputs: where events come from. Each input runs as a task that publishes batches of
//! events into the pipeline until it is told to stop (or, with `--once`, until it is done).

pub mod filestream;
pub mod journald;
pub mod system;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::event::BeatInfo;
use crate::monitoring::Metrics;
use crate::pipeline::Publisher;

/// What every input gets from the agent.
#[derive(Clone)]
pub struct InputContext {
    /// Publishes into the queue; already carries the input's own processors.
    pub publisher: Publisher,
    pub beat: Arc<BeatInfo>,
    pub metrics: Arc<Metrics>,
    /// Cancelled on SIGTERM/SIGINT: stop reading, let in-flight events drain.
    pub shutdown: CancellationToken,
    /// `run --once`: collect what is there now, then return.
    pub once: bool,
}
