//! One connection slot ("worker"): connect (with backoff, failing over between hosts when
//! `loadbalance = false`), then run a session that sends windows and reads ACKs.
//!
//! Delivery rules, per session:
//! - Up to `max(pipelining, 1)` windows are in flight. A window is a slice of one job (a batch
//!   taken from the queue, encoded once as `J` frames); with `slow_start` a job is sent as
//!   several windows.
//! - ACK(n) acknowledges the first n events of the oldest window in flight. ACK(0) and an ACK
//!   that repeats what was already acknowledged are keepalives: like every ACK frame, and
//!   every byte written, they push back the `timeout` deadline, so a busy Logstash that keeps
//!   sending them is never timed out. An ACK above the window's size is a protocol error.
//! - Events are acked to the pipeline (and so the registry) only when Logstash ACKed them: a
//!   whole job through its `Receipt`, a partially ACKed job's prefix at once through its
//!   cursors.
//! - On any error (I/O, timeout, protocol), the window shrinks (slow start), the connection is
//!   closed, and the unacknowledged rest of every job of this slot goes back to the shared
//!   retry queue, where the first free slot (this one after its backoff, or another host's
//!   with `loadbalance`) takes it. What was ACKed is never sent again.
//! - `ttl`: once it is reached, no new window is sent; when the in-flight ones are ACKed the
//!   connection is closed and opened again at once (also with pipelining, unlike Filebeat).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::event::BeatInfo;
use crate::monitoring::Metrics;
use crate::output::Backoff;
use crate::pipeline::ack::{self, Cursor};
use crate::pipeline::{Batch, Consumer, Receipt};

use super::config::{Host, LogstashConfig};
use super::protocol::{AckReader, Framer, Frames};
use super::transport::{Connected, Connector};
use super::window::Window;

/// Part of a batch taken from the queue (at most `bulk_max_size` events), encoded, with what
/// was sent and ACKed of it so far.
pub struct Job {
    frames: Frames,
    /// Per event, for acking a part or a partially ACKed prefix before the whole batch.
    cursors: Vec<Option<Cursor>>,
    batch: Arc<BatchAck>,
    /// Events framed into windows on the current connection.
    sent: usize,
    /// Events Logstash ACKed.
    acked: usize,
}

impl Job {
    fn len(&self) -> usize {
        self.frames.len()
    }
}

/// The queue's batch behind one or more jobs: acked once every part was ACKed.
struct BatchAck {
    receipt: Mutex<Option<Receipt>>,
    parts: usize,
    left: AtomicUsize,
}

/// What every slot shares: the queue, the retry queue, and when everything is done.
pub struct Shared {
    consumer: tokio::sync::Mutex<Consumer>,
    retry: Mutex<VecDeque<Job>>,
    notify: Notify,
    closed: AtomicBool,
    /// Jobs taken from the queue and not yet ACKed in full (in slots or in `retry`).
    outstanding: AtomicUsize,
    done: CancellationToken,
    pub cfg: LogstashConfig,
    beat: BeatInfo,
    pub metrics: Arc<Metrics>,
    pub connector: Connector,
}

impl Shared {
    pub fn new(
        cfg: LogstashConfig,
        consumer: Consumer,
        beat: BeatInfo,
        connector: Connector,
    ) -> Self {
        Shared {
            metrics: consumer.metrics().clone(),
            consumer: tokio::sync::Mutex::new(consumer),
            retry: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            outstanding: AtomicUsize::new(0),
            done: CancellationToken::new(),
            cfg,
            beat,
            connector,
        }
    }

    /// The next job: one given back by a failed connection first, else the parts of a new
    /// batch (the first, with the others queued for whichever slot is free next).
    /// `None` once the queue is closed and every job was ACKed. Cancel-safe.
    async fn take(&self) -> Option<Job> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(j) = self
                .retry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return Some(j);
            }
            if self.closed.load(Ordering::Acquire) {
                if self.outstanding.load(Ordering::Acquire) == 0 {
                    return None;
                }
                notified.await;
                continue;
            }
            let bulk = self.cfg.bulk_max_size;
            tokio::select! {
                _ = &mut notified => continue,
                b = async { self.consumer.lock().await.next_batch(bulk).await } => match b {
                    Some(batch) => {
                        let mut jobs = self.encode(batch);
                        let first = jobs.pop_front();
                        if !jobs.is_empty() {
                            let mut q = self.retry.lock().unwrap_or_else(|e| e.into_inner());
                            q.extend(jobs);
                            drop(q);
                            self.notify.notify_waiters();
                        }
                        return first;
                    }
                    None => {
                        self.closed.store(true, Ordering::Release);
                        self.check_done();
                    }
                },
            }
        }
    }

    /// Encode a batch once, as jobs of at most `bulk_max_size` events (the queue hands out
    /// whole chunks, so a batch may be bigger), of nearly equal size.
    fn encode(&self, batch: Batch) -> VecDeque<Job> {
        let n = batch.len();
        let bulk = self.cfg.bulk_max_size.max(1);
        let parts = n.div_ceil(bulk).max(1);
        let per = n.div_ceil(parts).max(1);
        let escape = self.cfg.escape_html;
        let mut parts_data = Vec::with_capacity(parts);
        let mut events = batch.events().peekable();
        while events.peek().is_some() {
            let mut frames = Frames::with_capacity(per, per * 1024);
            let mut cursors = Vec::with_capacity(per);
            for ev in events.by_ref().take(per) {
                frames.push(escape, |b| ev.write_json(&self.beat, b));
                cursors.push(ev.cursor.clone());
            }
            parts_data.push((frames, cursors));
        }
        drop(events);
        let made = parts_data.len();
        let share = Arc::new(BatchAck {
            receipt: Mutex::new(Some(batch.into_receipt())),
            parts: made,
            left: AtomicUsize::new(made),
        });
        let jobs: VecDeque<Job> = parts_data
            .into_iter()
            .map(|(frames, cursors)| Job {
                frames,
                cursors,
                batch: share.clone(),
                sent: 0,
                acked: 0,
            })
            .collect();
        let c = &self.metrics.counters;
        Metrics::add(&c.output_batches, made as u64);
        Metrics::add(&c.output_total, n as u64);
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        jobs
    }

    /// Jobs of a failed connection go back, in order, ahead of everything else.
    fn give_back(&self, jobs: &mut VecDeque<Job>) {
        if jobs.is_empty() {
            return;
        }
        let mut q = self.retry.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut j) = jobs.pop_back() {
            j.sent = j.acked;
            q.push_front(j);
        }
        drop(q);
        self.notify.notify_waiters();
    }

    fn job_done(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
        self.check_done();
    }

    fn check_done(&self) {
        if self.closed.load(Ordering::Acquire) && self.outstanding.load(Ordering::Acquire) == 0 {
            self.done.cancel();
        }
        self.notify.notify_waiters();
    }

    pub async fn finished(&self) {
        self.done.cancelled().await
    }
}

/// The hosts one slot may use, each with its own backoff.
struct Hosts {
    hosts: Vec<Host>,
    backoff: Vec<Backoff>,
    retry_at: Vec<Instant>,
    current: usize,
}

impl Hosts {
    fn new(hosts: Vec<Host>, cfg: &LogstashConfig) -> Self {
        let n = hosts.len().max(1);
        let now = Instant::now();
        Hosts {
            backoff: (0..n)
                .map(|_| Backoff::new(cfg.backoff.init.0, cfg.backoff.max.0).with_jitter())
                .collect(),
            retry_at: vec![now; n],
            current: fastrand::usize(..n),
            hosts,
        }
    }

    fn failed(&mut self, i: usize) {
        self.retry_at[i] = Instant::now() + self.backoff[i].next_delay();
        // Fail over to the host that can be tried soonest (another one if it is ready).
        let earliest = *self.retry_at.iter().min().unwrap_or(&self.retry_at[i]);
        let ready: Vec<usize> = (0..self.hosts.len())
            .filter(|&j| self.retry_at[j] == earliest)
            .collect();
        self.current = ready[fastrand::usize(..ready.len())];
    }
}

enum End {
    /// `ttl` reached and every window ACKed: connect again at once.
    Ttl,
    /// The server closed an idle connection (Logstash's `client_inactivity_timeout`).
    IdleClose,
    /// Everything is delivered and the queue is closed.
    Done,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("reading from the connection failed: {0}")]
    Read(std::io::Error),
    #[error("writing to the connection failed: {0}")]
    Write(std::io::Error),
    #[error("the server closed the connection with {0} window(s) waiting for their ACK")]
    Closed(usize),
    #[error(
        "no ACK and no progress for {0:?} (output.logstash.timeout) with {1} window(s) in flight"
    )]
    Timeout(Duration, usize),
    #[error("lumberjack protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Compress(#[from] super::protocol::CompressError),
}

/// One connection slot, until every event is delivered.
pub async fn worker(shared: Arc<Shared>, hosts: Vec<Host>) {
    let cfg = &shared.cfg;
    let mut hosts = Hosts::new(hosts, cfg);
    let mut window = Window::new(cfg.slow_start, cfg.bulk_max_size);
    let mut framer = Framer::new(cfg.compression_level);
    let mut jobs: VecDeque<Job> = VecDeque::new();
    loop {
        let i = hosts.current;
        let host = hosts.hosts[i].clone();
        let wait = hosts.retry_at[i].saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shared.done.cancelled() => return,
            }
        }
        let connected = tokio::select! {
            c = shared.connector.connect(&host) => c,
            _ = shared.done.cancelled() => return,
        };
        let conn = match connected {
            Ok(c) => c,
            Err(e) => {
                shared.give_back(&mut jobs);
                hosts.failed(i);
                let retry_in = hosts.retry_at[i].saturating_duration_since(Instant::now());
                tracing::warn!(host = %host, error = %e, retry_in = ?retry_in, "connecting to Logstash failed; retrying");
                continue;
            }
        };
        tracing::info!(
            host = %host,
            peer = %conn.peer,
            tls = conn.tls.as_ref().map_or("off", |t| t.version.as_str()),
            "connected to Logstash"
        );
        let started = Instant::now();
        let mut progressed = false;
        let end = session(
            &shared,
            conn,
            &mut jobs,
            &mut window,
            &mut framer,
            &mut progressed,
        )
        .await;
        if progressed {
            hosts.backoff[i].reset();
        }
        match end {
            Ok(End::Done) => return,
            Ok(End::Ttl) => {
                tracing::debug!(host = %host, "ttl reached, connection drained; reconnecting")
            }
            Ok(End::IdleClose) if started.elapsed() >= Duration::from_secs(1) => {
                tracing::debug!(host = %host, "Logstash closed the idle connection; reconnecting")
            }
            Ok(End::IdleClose) => {
                shared.give_back(&mut jobs);
                hosts.failed(i);
                tracing::warn!(host = %host, "Logstash closed the connection right after it was opened; retrying with backoff");
            }
            Err(e) => {
                let unacked: usize = jobs.iter().map(|j| j.sent - j.acked).sum();
                let m = &shared.metrics;
                m.gauges
                    .output_active
                    .fetch_sub(unacked as i64, Ordering::Relaxed);
                Metrics::add(&m.counters.output_failed, unacked as u64);
                match &e {
                    SessionError::Read(_) | SessionError::Closed(_) | SessionError::Protocol(_) => {
                        Metrics::add(&m.counters.output_read_errors, 1)
                    }
                    SessionError::Write(_) => Metrics::add(&m.counters.output_write_errors, 1),
                    _ => {}
                }
                window.shrink();
                shared.give_back(&mut jobs);
                hosts.failed(i);
                let retry_in = hosts.retry_at[i].saturating_duration_since(Instant::now());
                tracing::warn!(host = %host, error = %e, resend = unacked, retry_in = ?retry_in, "Logstash connection failed; the unacknowledged events are sent again");
            }
        }
    }
}

/// A window in flight: its size and how much of it was ACKed.
struct InFlight {
    count: usize,
    acked: usize,
}

async fn session(
    shared: &Shared,
    conn: Connected,
    jobs: &mut VecDeque<Job>,
    window: &mut Window,
    framer: &mut Framer,
    progressed: &mut bool,
) -> Result<End, SessionError> {
    let cfg = &shared.cfg;
    let metrics = &shared.metrics;
    let timeout = cfg.timeout.0;
    let cap = cfg.pipelining.max(1);
    let ttl_at = (!cfg.ttl.0.is_zero()).then(|| tokio::time::Instant::now() + cfg.ttl.0);
    let (mut rd, mut wr) = tokio::io::split(conn.stream);
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut out: Vec<u8> = Vec::new();
    let mut written = 0usize;
    let mut writing = false;
    let mut flushing = false;
    let mut draining = false;
    let mut last_activity = tokio::time::Instant::now();
    let mut read_buf = vec![0u8; 1024];
    let mut acks = AckReader::default();
    let mut seqs = Vec::new();
    loop {
        if draining && inflight.is_empty() && !writing {
            let _ = tokio::time::timeout(timeout, wr.shutdown()).await;
            return Ok(End::Ttl);
        }
        if !writing && !draining && inflight.len() < cap {
            if let Some(job) = jobs.iter_mut().find(|j| j.sent < j.len()) {
                let start = job.sent;
                let end = (start + window.get()).min(job.len());
                framer.window(&mut job.frames, start..end, &mut out)?;
                job.sent = end;
                if inflight.is_empty() {
                    last_activity = tokio::time::Instant::now();
                }
                inflight.push_back(InFlight {
                    count: end - start,
                    acked: 0,
                });
                metrics
                    .gauges
                    .output_active
                    .fetch_add((end - start) as i64, Ordering::Relaxed);
                written = 0;
                writing = true;
                continue;
            }
        }
        let want_job = !writing && !draining && inflight.len() < cap;
        let busy = writing || !inflight.is_empty();
        let deadline = last_activity + timeout;
        tokio::select! {
            biased;
            r = rd.read(&mut read_buf) => {
                let n = r.map_err(SessionError::Read)?;
                if n == 0 {
                    return if busy { Err(SessionError::Closed(inflight.len())) } else { Ok(End::IdleClose) };
                }
                Metrics::add(&metrics.counters.output_read_bytes, n as u64);
                last_activity = tokio::time::Instant::now();
                seqs.clear();
                acks.feed(&read_buf[..n], &mut seqs).map_err(|e| SessionError::Protocol(e.to_string()))?;
                for &seq in &seqs {
                    if on_ack(shared, seq as usize, &mut inflight, jobs, window)? {
                        *progressed = true;
                    }
                }
            }
            r = write_step(&mut wr, &out[written..], flushing), if writing => {
                match r.map_err(SessionError::Write)? {
                    Some(0) => return Err(SessionError::Write(std::io::ErrorKind::WriteZero.into())),
                    Some(n) => {
                        Metrics::add(&metrics.counters.output_write_bytes, n as u64);
                        last_activity = tokio::time::Instant::now();
                        written += n;
                        flushing = written == out.len();
                    }
                    None => {
                        flushing = false;
                        writing = false;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline), if busy => {
                return Err(SessionError::Timeout(timeout, inflight.len()));
            }
            _ = tokio::time::sleep_until(ttl_at.unwrap_or(deadline)), if ttl_at.is_some() && !draining => {
                draining = true;
            }
            j = shared.take(), if want_job => match j {
                Some(job) => jobs.push_back(job),
                None => return Ok(End::Done),
            },
        }
    }
}

/// One step of sending a window: write some bytes (`Some(n)`), or, once all are written,
/// flush (`None`). Cancel-safe: a step that did not complete wrote nothing.
async fn write_step<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    rest: &[u8],
    flushing: bool,
) -> std::io::Result<Option<usize>> {
    if flushing {
        wr.flush().await.map(|_| None)
    } else {
        wr.write(rest).await.map(Some)
    }
}

/// Apply one ACK; returns whether it acknowledged new events.
fn on_ack(
    shared: &Shared,
    seq: usize,
    inflight: &mut VecDeque<InFlight>,
    jobs: &mut VecDeque<Job>,
    window: &mut Window,
) -> Result<bool, SessionError> {
    let Some(w) = inflight.front_mut() else {
        if seq == 0 {
            return Ok(false);
        }
        return Err(SessionError::Protocol(format!(
            "ACK {seq} while no window is waiting for one"
        )));
    };
    if seq <= w.acked {
        // ACK(0) or a repeated ACK: Logstash is alive and still busy with the window.
        return Ok(false);
    }
    if seq > w.count {
        return Err(SessionError::Protocol(format!(
            "ACK {seq} for a window of {} events",
            w.count
        )));
    }
    let newly = seq - w.acked;
    w.acked = seq;
    let complete = seq == w.count;
    let Some(job) = jobs.front_mut() else {
        return Err(SessionError::Protocol("ACK without a job".into()));
    };
    let prev = job.acked;
    job.acked += newly;
    if job.acked > job.sent {
        return Err(SessionError::Protocol(format!(
            "ACK {seq} covers events that were not sent"
        )));
    }
    shared
        .metrics
        .gauges
        .output_active
        .fetch_sub(newly as i64, Ordering::Relaxed);
    if complete {
        inflight.pop_front();
        window.grow(job.len());
    }
    if job.acked == job.len() {
        if let Some(job) = jobs.pop_front() {
            let b = &job.batch;
            if b.parts > 1 {
                // One part of a bigger batch: its events are delivered, advance them now.
                ack::ack_events(job.cursors[prev..].iter().flatten());
            }
            if b.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                let receipt = b.receipt.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(r) = receipt {
                    r.ack();
                }
                shared.job_done();
            }
        }
    } else {
        // Partially ACKed job: its prefix is delivered, advance those cursors now.
        ack::ack_events(job.cursors[prev..job.acked].iter().flatten());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_prefers_a_ready_host() {
        let cfg: LogstashConfig = toml::from_str("hosts = [\"a\", \"b\", \"c\"]").unwrap();
        let hosts: Vec<Host> = ["a", "b", "c"]
            .iter()
            .map(|h| Host::parse(h).unwrap())
            .collect();
        let mut h = Hosts::new(hosts, &cfg);
        let first = h.current;
        h.failed(first);
        assert_ne!(h.current, first, "another host is ready");
        let second = h.current;
        h.failed(second);
        let third = h.current;
        assert!(third != first && third != second);
        h.failed(third);
        // All failed: the one whose backoff ends first (the first, waiting 0.5-1 s).
        assert!(h.retry_at[h.current] <= h.retry_at[first].max(h.retry_at[second]));
    }
}
