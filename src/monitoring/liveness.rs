//! Is the pipeline alive? Outputs and the queue mark their activity here; the systemd
//! watchdog (`service::notify`) pings only while events move, or while nothing is waiting to
//! be sent, or while an output waits on purpose (a retry backoff), so a hung output stops
//! the pings and systemd restarts the agent.
//!
//! Process-wide on purpose: every output shares `Backoff`, and one agent runs per process.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

static ACTIVITY: AtomicU64 = AtomicU64::new(0);
static WAITING: AtomicI64 = AtomicI64::new(0);

/// Something moved: a batch was taken, confirmed, written, or a retry was made.
pub fn touch() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
}

/// A number that changes whenever `touch` was called.
pub fn activity() -> u64 {
    ACTIVITY.load(Ordering::Relaxed)
}

/// True while some output deliberately waits (between two retries).
pub fn waiting() -> bool {
    WAITING.load(Ordering::Relaxed) > 0
}

/// Held while an output waits between retries: the wait is a choice, not a hang.
pub struct Waiting(());

impl Waiting {
    pub fn start() -> Waiting {
        WAITING.fetch_add(1, Ordering::Relaxed);
        touch();
        Waiting(())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::Relaxed);
        touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_is_counted_and_touches() {
        let before = activity();
        let w = Waiting::start();
        assert!(waiting());
        drop(w);
        assert!(activity() >= before + 2);
    }
}
