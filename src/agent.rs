//! Wires one running agent together: registry, queue, output, inputs, registry flusher,
//! metrics logging, and an orderly shutdown that drains in-flight events before persisting.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, InputConfig};
use crate::event::BeatInfo;
use crate::input::InputContext;
use crate::monitoring::Metrics;
use crate::pipeline::{self, QueueLimits};
use crate::registry::{Registry, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    #[error(transparent)]
    DiskQueue(#[from] crate::pipeline::disk::DiskQueueError),
    #[error(transparent)]
    Lock(#[from] crate::datadir::LockError),
    #[error("path.data {path}: {source}; create the directory or point path.data elsewhere")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The agent's identity: `agent.id` persists in `<path.data>/meta.json` like Beats' uuid.
pub fn beat_info(cfg: &Config) -> Result<BeatInfo, AgentError> {
    let data = &cfg.path.data;
    let data_err = |source| AgentError::DataDir {
        path: data.display().to_string(),
        source,
    };
    std::fs::create_dir_all(data).map_err(data_err)?;
    let meta_path = data.join("meta.json");
    let agent_id = read_uuid(&meta_path).unwrap_or_else(|| {
        let id = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({
            "uuid": id,
            "first_start": crate::event::format_timestamp(crate::event::now_nanos()),
        });
        let tmp = data.join("meta.json.new");
        if std::fs::write(&tmp, body.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &meta_path);
        }
        id
    });
    let hostname = gethostname::gethostname().to_string_lossy().to_string();
    Ok(BeatInfo {
        beat: "oxibeat".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        name: cfg.name.clone().unwrap_or_else(|| hostname.clone()),
        hostname,
        agent_id,
        ephemeral_id: uuid::Uuid::new_v4().to_string(),
    })
}

fn read_uuid(path: &Path) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let id = v.get("uuid")?.as_str()?;
    uuid::Uuid::parse_str(id).ok().map(|u| u.to_string())
}

/// Run until SIGINT/SIGTERM (or, with `once`, until every input finished), then drain
/// in-flight events for up to `shutdown_timeout` and persist the registry.
pub async fn run(cfg: Config, once: bool) -> Result<(), AgentError> {
    // Before anything under path.data is read or written; held until this returns.
    let _lock = crate::datadir::DataDirLock::acquire(&cfg.path.data)?;
    let metrics = Metrics::new();
    let beat = Arc::new(beat_info(&cfg)?);
    let mut output_kind = cfg.output.selected()?;
    crate::output::resolve_paths(&mut output_kind, &cfg.path.data);
    let mut queue_events = cfg.queue.mem.events;
    if let Some(n) = crate::output::queue_events(&output_kind) {
        if n != queue_events {
            tracing::warn!(
                from = queue_events,
                to = n,
                "output.elasticsearch.preset overrides queue.mem.events"
            );
        }
        queue_events = n;
    }
    let registry = Arc::new(Registry::open(
        &cfg.path.data,
        cfg.registry.checkpoint_size.0,
        metrics.clone(),
    )?);
    let global = Arc::new(crate::processors::build(&cfg.processors, "processors")?);
    let (publisher, consumer, disk_queue) =
        open_queue(&cfg, queue_events, global, metrics.clone())?;
    // Stops the disk queue in order (what the inputs handed over written and acknowledged to
    // them, position persisted) before the registry's last write.
    let close_queue = |timeout: Duration| async move {
        if let Some(d) = disk_queue {
            let _ = tokio::task::spawn_blocking(move || d.shutdown(timeout)).await;
        }
    };
    tracing::info!(
        agent.id = %beat.agent_id,
        version = %beat.version,
        inputs = cfg.inputs.len(),
        "oxibeat starting"
    );
    log_resume(&registry, &cfg.path.data);

    let http = match &cfg.http {
        Some(raw) => {
            let http_cfg = crate::monitoring::http::parse_config(raw)?;
            let (m, b, t) = (metrics.clone(), beat.clone(), CancellationToken::new());
            let stop = t.clone();
            let handle = tokio::spawn(async move {
                if let Err(e) = crate::monitoring::http::serve(http_cfg, m, b, t).await {
                    tracing::error!(error = %e, "monitoring endpoint failed");
                }
            });
            Some((handle, stop))
        }
        None => None,
    };
    let mut output = tokio::spawn(crate::output::run(output_kind, consumer, beat.clone()));
    let shutdown = CancellationToken::new();
    let mut inputs = tokio::task::JoinSet::new();
    for (i, input) in cfg.inputs.iter().enumerate() {
        let key = format!("inputs[{i}]");
        match input {
            InputConfig::Filestream(f) => {
                if !f.enabled {
                    continue;
                }
                let processors = Arc::new(crate::processors::build(
                    &f.processors,
                    &format!("{key}.processors"),
                )?);
                let ctx = InputContext {
                    publisher: publisher.with_processors(processors),
                    beat: beat.clone(),
                    metrics: metrics.clone(),
                    shutdown: shutdown.clone(),
                    once,
                };
                inputs.spawn(crate::input::filestream::run(
                    (**f).clone(),
                    ctx,
                    registry.clone(),
                ));
            }
            InputConfig::Journald(j) => {
                if !j.enabled {
                    continue;
                }
                let processors = Arc::new(crate::processors::build(
                    &j.processors,
                    &format!("{key}.processors"),
                )?);
                let ctx = InputContext {
                    publisher: publisher.with_processors(processors),
                    beat: beat.clone(),
                    metrics: metrics.clone(),
                    shutdown: shutdown.clone(),
                    once,
                };
                inputs.spawn(crate::input::journald::run(
                    (**j).clone(),
                    ctx,
                    registry.clone(),
                ));
            }
            InputConfig::SystemMetrics(raw) => {
                let m = crate::input::system::parse_config(raw, &key)?;
                // The input applies its own processors.
                let ctx = InputContext {
                    publisher: publisher.clone(),
                    beat: beat.clone(),
                    metrics: metrics.clone(),
                    shutdown: shutdown.clone(),
                    once,
                };
                inputs.spawn(crate::input::system::run(m, ctx));
            }
        }
    }
    // Only inputs hold publishers now: the queue closes when they are all done.
    drop(publisher);

    let flusher = {
        let registry = registry.clone();
        let period = cfg.registry.flush.0.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                registry.flush();
            }
        })
    };
    let metrics_log = cfg.logging.metrics.enabled.then(|| {
        tokio::spawn(crate::monitoring::counters::log_periodically(
            metrics.clone(),
            cfg.logging.metrics.period.0.max(Duration::from_secs(1)),
        ))
    });

    let signalled = {
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("stop requested; draining in-flight events");
            shutdown.cancel();
        }
    };
    let mut signal_seen = false;
    // The output ends by itself only when the queue closed (every input done) or on a fatal
    // error. `biased`: when the inputs and the output finish together, the inputs' branch is
    // taken, so a clean end always goes through the orderly stop below.
    let mut output_result = None;
    tokio::select! {
        biased;
        _ = async { while inputs.join_next().await.is_some() {} } => {}
        _ = signalled => signal_seen = true,
        res = &mut output => output_result = Some(res),
    }
    if let Some(Ok(Err(e))) = output_result {
        // The output only returns this early on a fatal setup error.
        shutdown.cancel();
        while inputs.join_next().await.is_some() {}
        close_queue(cfg.shutdown_timeout.0).await;
        flusher.abort();
        registry.close();
        return Err(e.into());
    }
    if signal_seen || output_result.is_some() {
        // Inputs stop on the token; wait for them to hand over what they read.
        shutdown.cancel();
        while inputs.join_next().await.is_some() {}
    }

    let timeout = cfg.shutdown_timeout.0;
    let drained = match output_result {
        Some(res) => res.ok(),
        // --once delivers everything it read, however long that takes.
        None if once => output.await.ok(),
        None => tokio::time::timeout(timeout, output)
            .await
            .ok()
            .and_then(Result::ok),
    };
    close_queue(timeout).await;
    match drained {
        Some(Err(e)) => {
            flusher.abort();
            registry.close();
            return Err(e.into());
        }
        Some(Ok(())) => {}
        None => tracing::warn!(
            timeout = ?timeout,
            "shutdown_timeout reached with events in flight; they will be sent again on restart"
        ),
    }
    flusher.abort();
    if let Some(h) = metrics_log {
        h.abort();
    }
    registry.close();
    if let Some((handle, stop)) = http {
        stop.cancel();
        let _ = handle.await;
    }
    let snap = metrics.snapshot();
    let total: Vec<String> = snap.nonzero_delta(&Default::default());
    tracing::info!(monitoring = %total.join(" "), "Total metrics; oxibeat stopped");
    Ok(())
}

/// The memory queue, or the disk queue when `[queue.disk]` is set. Starting with the memory
/// queue is refused while a disk queue of this `path.data` still holds undelivered events.
fn open_queue(
    cfg: &Config,
    mem_events: usize,
    global: Arc<crate::processors::Chain>,
    metrics: Arc<Metrics>,
) -> Result<
    (
        pipeline::Publisher,
        pipeline::Consumer,
        Option<pipeline::disk::DiskQueue>,
    ),
    AgentError,
> {
    if let Some(d) = &cfg.queue.disk {
        let (p, c, q) = pipeline::disk_queue(d, &cfg.path.data, global, metrics)?;
        return Ok((p, c, Some(q)));
    }
    pipeline::disk::check_left_behind(&cfg.path.data)?;
    let (p, c) = pipeline::queue(
        QueueLimits {
            events: mem_events,
            max_bytes: cfg.queue.mem.max_bytes.0 as usize,
        },
        global,
        metrics,
    );
    Ok((p, c.with_flush(cfg.queue.mem.flush_policy()), None))
}

/// Say at start that files already known resume from their saved offsets: a second run of the
/// same configuration then ships only what is new, which is otherwise easy to take for a fault.
fn log_resume(registry: &Registry, data: &Path) {
    let known = registry.all().len();
    if known > 0 {
        tracing::info!(
            files = known,
            registry = %data.join("registry").display(),
            "resuming: files already in the registry continue from their saved offsets \
             (only new lines are shipped; a fresh path.data reads them again)"
        );
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
