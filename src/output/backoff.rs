//! Retry pacing shared by the outputs: `backoff.init` / `backoff.max` (Filebeat's names), a
//! wait that doubles up to the cap, optionally with "equal jitter" as libbeat's
//! `NewEqualJitterBackoff` (half the wait fixed, half random), so many agents that lost the
//! same cluster do not come back in lockstep.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::units::Dur;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    #[serde(default = "BackoffConfig::default_init")]
    pub init: Dur,
    #[serde(default = "BackoffConfig::default_max")]
    pub max: Dur,
}

impl BackoffConfig {
    fn default_init() -> Dur {
        Dur(Duration::from_secs(1))
    }
    fn default_max() -> Dur {
        Dur(Duration::from_secs(60))
    }

    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.init.0, self.max.0)
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            init: Self::default_init(),
            max: Self::default_max(),
        }
    }
}

/// Capped exponential backoff for retries (1s doubling up to 60s by default, as Beats).
pub struct Backoff {
    next: Duration,
    max: Duration,
    init: Duration,
    jitter: bool,
}

impl Backoff {
    pub fn new(init: Duration, max: Duration) -> Self {
        Backoff {
            next: init,
            max: max.max(init),
            init,
            jitter: false,
        }
    }

    /// Wait between half and all of each step, at random.
    pub fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// The next wait, and advance.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        if self.jitter {
            let half = d / 2;
            half + half.mul_f64(fastrand::f64())
        } else {
            d
        }
    }

    pub async fn wait(&mut self) {
        // A retry wait is a choice: the systemd watchdog keeps pinging through it.
        let _waiting = crate::monitoring::liveness::Waiting::start();
        tokio::time::sleep(self.next_delay()).await;
    }

    pub fn reset(&mut self) {
        self.next = self.init;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(8)).with_jitter();
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }
}
