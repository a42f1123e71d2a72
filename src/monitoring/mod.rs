//! Counters shared by every stage, and the periodic "Non-zero metrics" log line.
//!
//! Names follow Beats' monitoring namespaces so `/stats` and the log line read like Filebeat's.

pub mod counters;
pub mod disk_queue;
pub mod http;
pub mod liveness;

pub use counters::{Metrics, Snapshot};
