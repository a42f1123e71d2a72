//! Wires one running agent together: registry, queue, output, inputs, registry flusher,
//! metrics logging, and an orderly shutdown that drains in-flight events before persisting.

mod inputs;
mod reload;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::BeatInfo;
use crate::monitoring::Metrics;
use crate::pipeline::{self, QueueLimits};
use crate::registry::{Registry, RegistryError};
use crate::service::notify::{self, Heartbeat, Notifier, Supervisor};
use inputs::Inputs;

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
    let v: serde_json::Value =
        serde_json::from_slice(&crate::bounded::read(path, 64 << 10).ok()?).ok()?;
    let id = v.get("uuid")?.as_str()?;
    uuid::Uuid::parse_str(id).ok().map(|u| u.to_string())
}

/// How a running agent re-reads its configuration (`oxibeat run` sets it; tests and
/// `--once` run without).
#[derive(Default)]
pub struct Service {
    /// Loads the configuration again (file, `config.inputs`, keystore, `${NAME}`); the error
    /// names the file and key path, secrets redacted.
    pub reload: Option<Box<dyn Fn() -> Result<Config, String> + Send + Sync>>,
    /// The main configuration file (where `config.inputs.path` is relative to).
    pub config_path: Option<PathBuf>,
}

/// Run until SIGINT/SIGTERM (or, with `once`, until every input finished), then drain
/// in-flight events for up to `shutdown_timeout` and persist the registry.
pub async fn run(cfg: Config, once: bool) -> Result<(), AgentError> {
    run_service(cfg, once, Service::default()).await
}

/// `run`, plus what a service does: sd_notify (READY, STATUS, WATCHDOG, RELOADING,
/// STOPPING), and reload on SIGHUP or when the files of `config.inputs` change.
pub async fn run_service(cfg: Config, once: bool, service: Service) -> Result<(), AgentError> {
    // Before anything under path.data is read or written; held until this returns.
    let _lock = crate::datadir::DataDirLock::acquire(&cfg.path.data)?;
    let metrics = Metrics::new();
    let beat = Arc::new(beat_info(&cfg)?);
    let mut output_kind = cfg.output.selected()?;
    crate::output::resolve_paths(&mut output_kind, &cfg.path.data);
    let output_name = output_name(&output_kind);
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
        inputs = cfg.all_inputs().count(),
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
    let mut inputs = Inputs {
        running: Default::default(),
        publisher: Some(publisher),
        beat: beat.clone(),
        metrics: metrics.clone(),
        registry: registry.clone(),
        shutdown: shutdown.clone(),
        once,
    };
    for (key, input) in reload::wanted(&cfg) {
        inputs.start(&key, &input)?;
    }
    // Without reload only inputs hold publishers: the queue closes when they are all done.
    let reloads = !once && service.reload.is_some();
    if !reloads {
        inputs.publisher = None;
    }

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

    // systemd: readiness, status, watchdog.
    let notifier = Arc::new(Notifier::from_env());
    let watchdog = notify::watchdog_interval_from_env();
    let heartbeat = Heartbeat::new();
    heartbeat.beat();
    let running_inputs = Arc::new(AtomicU64::new(inputs.count() as u64));
    let summary = |n: usize| format!("Running: {n} inputs, output {output_name}");
    // READY=1 first: the registry is loaded, the output and the inputs started.
    notifier.ready(&summary(inputs.count()));
    let supervisor_stop = CancellationToken::new();
    let supervisor = notifier.enabled().then(|| {
        tokio::spawn(
            Supervisor {
                notifier: notifier.clone(),
                metrics: metrics.clone(),
                heartbeat: heartbeat.clone(),
                output: output_name.clone(),
                inputs: running_inputs.clone(),
                watchdog,
                status_every: Duration::from_secs(5),
            }
            .run(supervisor_stop.clone()),
        )
    });
    if let Some(w) = watchdog {
        tracing::info!(interval = ?w, "systemd watchdog enabled");
    }

    let mut current = cfg;
    let mut signals = Signals::new();
    let beat_every = watchdog
        .map(|w| w / 2)
        .unwrap_or(Duration::from_secs(1))
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut beat_tick = tokio::time::interval(beat_every);
    beat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dir_watch = DirWatch::new(&current, service.config_path.as_deref());

    let mut signal_seen = false;
    // The output ends by itself only when the queue closed (every input done) or on a fatal
    // error. `biased`: when the inputs and the output finish together, the inputs' branch is
    // taken, so a clean end always goes through the orderly stop below.
    let mut output_result = None;
    loop {
        tokio::select! {
            biased;
            _ = inputs.all_done(), if !reloads => break,
            sig = signals.next() => match sig {
                Sig::Stop => {
                    signal_seen = true;
                    break;
                }
                Sig::Reload => {
                    if let Some(load) = &service.reload {
                        notifier.reloading();
                        tracing::info!("SIGHUP: reloading the configuration");
                        match load() {
                            Ok(new) => {
                                apply_reload(&mut current, new, &mut inputs).await;
                                dir_watch = DirWatch::new(&current, service.config_path.as_deref());
                            }
                            Err(e) => tracing::error!(error = %e, "reload failed: the new configuration is broken; the running one stays"),
                        }
                        running_inputs.store(inputs.count() as u64, Ordering::Relaxed);
                        notifier.ready(&summary(inputs.count()));
                    }
                }
            },
            res = &mut output => {
                output_result = Some(res);
                break;
            }
            _ = dir_watch.tick() => {
                if let (Some(load), true) = (&service.reload, dir_watch.changed(service.config_path.as_deref())) {
                    tracing::info!("config.inputs: the input files changed; reloading the inputs");
                    match load() {
                        Ok(new) => {
                            // Only the directory's inputs: the main file waits for SIGHUP.
                            let mut next = current.clone();
                            next.dir_inputs = new.dir_inputs;
                            apply_reload(&mut current, next, &mut inputs).await;
                        }
                        Err(e) => tracing::error!(error = %e, "config.inputs reload failed; the running inputs stay"),
                    }
                    running_inputs.store(inputs.count() as u64, Ordering::Relaxed);
                }
            }
            _ = beat_tick.tick() => heartbeat.beat(),
        }
    }
    let cfg = current;
    let timeout = cfg.shutdown_timeout.0;
    // After a signal everything below shares one deadline: shutdown_timeout.
    let deadline = tokio::time::Instant::now() + timeout;
    if signal_seen {
        notifier.stopping();
        tracing::info!("stop requested; draining in-flight events");
        stop_watchdog(timeout);
    }
    // The agent's own publisher goes: the queue closes once the inputs have stopped.
    inputs.publisher = None;
    if let Some(Ok(Err(e))) = output_result {
        // The output only returns this early on a fatal setup error.
        inputs.stop_all().await;
        close_queue(timeout).await;
        flusher.abort();
        supervisor_stop.cancel();
        registry.close();
        return Err(e.into());
    }
    if signal_seen || output_result.is_some() {
        // Inputs stop on the token; wait for them to hand over what they read.
        if tokio::time::timeout_at(deadline, inputs.stop_all())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?timeout, "inputs did not stop within shutdown_timeout; stopping without them");
            inputs.abort_all();
        }
    }

    let drained = match output_result {
        Some(res) => res.ok(),
        // --once delivers everything it read, however long that takes.
        None if once && !signal_seen => output.await.ok(),
        None => tokio::time::timeout_at(deadline, output)
            .await
            .ok()
            .and_then(Result::ok),
    };
    // After a signal the disk queue gets what is left of the deadline (at least 1 s; the
    // watchdog allows 2 s past it).
    let left = if signal_seen {
        deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_secs(1))
    } else {
        timeout
    };
    close_queue(left).await;
    supervisor_stop.cancel();
    if let Some(s) = supervisor {
        let _ = s.await;
    }
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

/// The last resort after a stop was requested: if the process is still there two seconds
/// after shutdown_timeout (a wedged filesystem call, say; the normal path persists the
/// registry and stops the runtime within one), it exits. Acked cursors were persisted by
/// the periodic flush, so at worst what was in flight is sent again.
fn stop_watchdog(timeout: Duration) {
    let limit = timeout + Duration::from_secs(2);
    let spawned = std::thread::Builder::new()
        .name("stop-watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            tracing::error!(timeout = ?timeout, "still running two seconds after shutdown_timeout; exiting now (events in flight are sent again on restart)");
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the stop watchdog");
    }
}

/// Apply `new` if it changes only what a reload can; else log the key that needs a restart
/// and keep `current`.
async fn apply_reload(current: &mut Config, new: Config, inputs: &mut Inputs) {
    if let Some(key) = reload::restart_only_change(current, &new) {
        tracing::error!(
            key = %key,
            "reload refused: {key} changed and needs a restart (systemctl restart oxibeat); \
             the running configuration stays"
        );
        return;
    }
    if serde_json::to_value(&current.processors).ok() != serde_json::to_value(&new.processors).ok()
    {
        match crate::processors::build(&new.processors, "processors") {
            Ok(chain) => {
                if let Some(p) = &inputs.publisher {
                    p.set_global(Arc::new(chain));
                }
                tracing::info!(
                    "reload: global processors replaced (for events published from now on)"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the running configuration stays");
                return;
            }
        }
    }
    if current.logging.level != new.logging.level
        || current.logging.selectors != new.logging.selectors
    {
        crate::logging::set_filter(&new.logging.level, &new.logging.selectors);
        tracing::info!(level = %new.logging.level, selectors = ?new.logging.selectors, "reload: log level changed");
    }
    match inputs.apply(&reload::wanted(&new)).await {
        Ok(c) if c.is_empty() => tracing::info!("reload: inputs unchanged"),
        Ok(c) => tracing::info!(
            started = ?c.started,
            stopped = ?c.stopped,
            restarted = ?c.restarted,
            "reload: inputs changed"
        ),
        Err(e) => tracing::error!(error = %e, "reload: an input could not start"),
    }
    *current = new;
}

/// The output's name for `STATUS=`.
fn output_name(kind: &crate::config::OutputKind) -> String {
    use crate::config::OutputKind;
    match kind {
        OutputKind::File(_) => "file",
        OutputKind::Console(_) => "console",
        OutputKind::Discard => "discard",
        OutputKind::Kafka(_) => "kafka",
        OutputKind::Logstash(_) => "logstash",
        OutputKind::Elasticsearch(_) => "elasticsearch",
    }
    .to_string()
}

/// Watches the files of `config.inputs` when `reload.enabled`.
struct DirWatch {
    dir: Option<crate::config::external::InputsDir>,
    seen: Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
    timer: Option<tokio::time::Interval>,
}

impl DirWatch {
    fn new(cfg: &Config, main: Option<&Path>) -> DirWatch {
        let dir = crate::config::external::section(cfg)
            .filter(|d| d.reload.enabled)
            .cloned();
        let seen = match (&dir, main) {
            (Some(d), Some(m)) => crate::config::external::fingerprint(d, m),
            _ => Vec::new(),
        };
        let timer = dir.as_ref().map(|d| {
            let period = d.reload.period.0.max(Duration::from_millis(10));
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        DirWatch { dir, seen, timer }
    }

    /// Resolves every `reload.period` (never without `reload.enabled`). Cancel-safe.
    async fn tick(&mut self) {
        match self.timer.as_mut() {
            Some(t) => {
                t.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    fn changed(&mut self, main: Option<&Path>) -> bool {
        let (Some(d), Some(m)) = (&self.dir, main) else {
            return false;
        };
        let now = crate::config::external::fingerprint(d, m);
        if now == self.seen {
            return false;
        }
        self.seen = now;
        true
    }
}

enum Sig {
    Stop,
    Reload,
}

/// SIGTERM/SIGINT stop, SIGHUP reloads.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// Cancel-safe.
    async fn next(&mut self) -> Sig {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    if s.recv().await.is_none() {
                        std::future::pending::<()>().await
                    }
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => Sig::Stop,
            _ = recv(&mut self.int) => Sig::Stop,
            _ = recv(&mut self.hup) => Sig::Reload,
        }
    }
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
