//! `[output.logstash]`: the Lumberjack protocol version 2 client that Filebeat's `logstash`
//! output speaks to Logstash's `beats` input (port 5044): windows, pipelining, zlib
//! compression, TLS, SOCKS5 proxies, failover or load balancing over several hosts.
//!
//! The wire format follows the reference code, not go-lumber's PROTOCOL.md prose (which has
//! wrong frame codes): elastic/go-lumber `protocol/v2/protocol.go`, `client/v2/client.go`,
//! `client/v2/async.go`, `server/v2/reader.go`, `server/internal/handler.go`, and
//! logstash-plugins/logstash-input-beats `BeatsParser.java`, `BeatsHandler.java`,
//! `ConnectionHandler.java`. Options and defaults are Filebeat's
//! (`libbeat/outputs/logstash/config.go`, `window.go`, `enc.go`).
//!
//! - config.rs: options, validation, hosts and `proxy_url`.
//! - protocol.rs: frames (`W`, `J`, `C`, `A`), encoding once per batch, zlib.
//! - window.rs: `slow_start` window sizes.
//! - transport.rs: TCP, SOCKS5, TLS.
//! - client.rs: connection slots, pipelining, ACK handling, retries, `ttl`.
//!
//! Events are the Beats JSON of the other outputs (`@metadata.beat`, `type`, `version`), so
//! Logstash's beats input and `logstash/pipeline/*.conf` read them as they read Filebeat's.

pub mod client;
pub mod config;
pub mod protocol;
pub mod transport;
pub mod window;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

pub use config::LogstashConfig;

use crate::event::BeatInfo;
use crate::output::OutputError;
use crate::pipeline::Consumer;

use client::Shared;
use config::Host;
use transport::Connector;

#[derive(Debug, thiserror::Error)]
pub enum LogstashError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] crate::output::tls::TlsError),
    #[error("output.logstash: cannot start a runtime for the check: {0}")]
    Runtime(std::io::Error),
    #[error("output.logstash: {failed} of {total} host(s) failed the check:\n{report}\ncheck that Logstash's beats input listens there and that the ssl and proxy settings match it")]
    Check {
        failed: usize,
        total: usize,
        report: String,
    },
}

fn connector(cfg: &LogstashConfig) -> Result<Connector, LogstashError> {
    let tls = match cfg.ssl.as_ref().filter(|s| s.enabled) {
        Some(ssl) => Some(Arc::new(crate::output::tls::client_config(
            ssl,
            "output.logstash",
        )?)),
        None => None,
    };
    Ok(Connector::new(cfg.timeout.0, cfg.proxy(), tls))
}

fn hosts(cfg: &LogstashConfig) -> Vec<Host> {
    cfg.hosts
        .iter()
        .filter_map(|h| Host::parse(h).ok())
        .collect()
}

/// Deliver until the queue closes and every event was ACKed.
pub async fn run(
    cfg: LogstashConfig,
    consumer: Consumer,
    beat: Arc<BeatInfo>,
) -> Result<(), OutputError> {
    cfg.validate().map_err(LogstashError::from)?;
    if cfg.max_retries.is_some_and(|r| r != -1) {
        tracing::warn!("output.logstash.max_retries is ignored: oxibeat retries every event until Logstash ACKs it (at-least-once)");
    }
    let connector = connector(&cfg)?;
    let hosts = hosts(&cfg);
    let mut beat = (*beat).clone();
    beat.beat = cfg.metadata_beat(&beat.beat);
    tracing::info!(
        hosts = %cfg.hosts.join(","),
        loadbalance = cfg.loadbalance,
        worker = cfg.worker,
        pipelining = cfg.pipelining,
        compression_level = cfg.compression_level,
        tls = cfg.ssl.as_ref().is_some_and(|s| s.enabled),
        "Logstash output started"
    );
    let (loadbalance, worker) = (cfg.loadbalance, cfg.worker);
    let shared = Arc::new(Shared::new(cfg, consumer, beat, connector));
    let mut slots = tokio::task::JoinSet::new();
    if loadbalance {
        for h in &hosts {
            for _ in 0..worker {
                slots.spawn(client::worker(shared.clone(), vec![h.clone()]));
            }
        }
    } else {
        for _ in 0..worker {
            slots.spawn(client::worker(shared.clone(), hosts.clone()));
        }
    }
    shared.finished().await;
    while slots.join_next().await.is_some() {}
    Ok(())
}

/// `oxibeat test output`: connect to every host (through the proxy, with the TLS handshake)
/// and describe what answered.
pub fn check(cfg: &LogstashConfig) -> Result<String, LogstashError> {
    cfg.validate()?;
    let connector = connector(cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LogstashError::Runtime)?;
    let hosts = hosts(cfg);
    let mut report = String::new();
    let mut failed = 0;
    if let Some(p) = &cfg.proxy_url {
        let _ = writeln!(report, "  proxy: {}", config::redact_url(p));
    }
    for h in &hosts {
        let t = Instant::now();
        match rt.block_on(connector.connect(h)) {
            Ok(c) => {
                let _ = writeln!(
                    report,
                    "  {h}: connected to {} in {:.1} ms",
                    c.peer,
                    t.elapsed().as_secs_f64() * 1000.0
                );
                if let Some(tls) = &c.tls {
                    let mode = cfg
                        .ssl
                        .as_ref()
                        .map(|s| format!("{:?}", s.verification_mode).to_lowercase())
                        .unwrap_or_default();
                    let _ = writeln!(
                        report,
                        "  {h}: TLS handshake ok: {} {}, verification {mode}, peer certificate sha256 {} (chain of {})",
                        tls.version,
                        tls.cipher,
                        tls.peer_sha256.as_deref().unwrap_or("-"),
                        tls.chain_len
                    );
                } else {
                    let _ = writeln!(report, "  {h}: TLS off");
                }
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(report, "  {h}: FAILED: {e}");
            }
        }
    }
    let report = report.trim_end().to_string();
    if failed > 0 {
        return Err(LogstashError::Check {
            failed,
            total: hosts.len(),
            report,
        });
    }
    Ok(format!(
        "logstash output: {} host(s), loadbalance {}\n{report}",
        hosts.len(),
        cfg.loadbalance
    ))
}
