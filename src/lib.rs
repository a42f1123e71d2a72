//! oxibeat: a Beats-compatible log and metrics shipper.
//!
//! Data flows one way: `input` → `processors` → `pipeline` (queue) → `output`;
//! acknowledgements flow back: output → `pipeline::ack` → `registry`.

pub mod agent;
pub mod bounded;
pub mod cloudid;
pub mod config;
pub mod datadir;
pub mod event;
pub mod input;
pub mod logging;
pub mod malloc;
pub mod monitoring;
pub mod output;
pub mod pipeline;
pub mod processors;
pub mod registry;
pub mod search;
pub mod secrets;
pub mod service;
pub mod setup;
