//! The delivery loop: workers take batches from the queue, send them as `_bulk` requests and
//! ack a batch only once every event in it is settled:
//!
//! - 2xx: acked; 409: already there (a redelivery with a fixed `_id`), counted as duplicate;
//! - 429 / 5xx per item: only those items are sent again, after a capped exponential backoff
//!   with equal jitter (the items that succeeded are never resent);
//! - any other item status: `non_indexable_policy`: `drop` counts it and logs one warning per
//!   status and error type (with a sample, rate-limited); `dead_letter_index` sends the event
//!   again to that index in Filebeat's dead-letter shape; an event the dead-letter index
//!   refuses too goes to the dead-letter file (`crate::output::dlq`).
//! - request level: 413 halves the request (one event alone is non-indexable); 429, 5xx,
//!   timeouts and connection errors retry the whole request, forever; 401/403 log a clear
//!   error naming the credential type and retry at `backoff.max` (the batch stays unacked,
//!   so the queue fills and the inputs pause).
//!
//! Workers: `worker` per host with `loadbalance` (each starts on its own host and moves to the
//! next on connection failures), else `worker` in total, all on the first reachable host.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::event::{format_timestamp, now_nanos, BeatInfo, Event};
use crate::monitoring::Metrics;
use crate::output::dlq::{DeadLetter, Destination, Entry};
use crate::output::format::Router;
use crate::output::Backoff;
use crate::pipeline::{Batch, Consumer};
use crate::processors::lookup;

use super::bulk::{self, verdict, BulkResponse, ItemStatus, OpType, Verdict};
use super::client::{Client, Reply};
use super::{EsError, EsOutput};

/// What every worker shares.
struct Shared {
    out: EsOutput,
    beat: Arc<BeatInfo>,
    metrics: Arc<Metrics>,
    clients: Vec<Client>,
    index: Router,
    pipeline: Router,
    dead_letter_index: Option<String>,
    dlq: std::sync::Mutex<DeadLetter>,
    /// Log rate limit per (status, error type): last logged, held back since.
    logged: std::sync::Mutex<HashMap<(u16, String), (Instant, u64)>>,
    /// Clients whose version was checked.
    checked: Vec<std::sync::atomic::AtomicBool>,
}

/// One event being delivered.
struct Item {
    index: String,
    pipeline: Option<String>,
    id: Option<String>,
    op: OpType,
    /// The document line (no newline).
    doc: Vec<u8>,
    /// Set once the event was re-encoded for the dead-letter index: the original index and
    /// document, and the first error.
    dead_letter: Option<(String, Vec<u8>, String)>,
}

/// How each event of a batch ended.
#[derive(Default)]
struct Tally {
    acked: usize,
    duplicates: usize,
    dead_letter: usize,
    dropped: usize,
}

const LOG_PAUSE: Duration = Duration::from_secs(30);

pub async fn run(out: EsOutput, consumer: Consumer, beat: Arc<BeatInfo>) -> Result<(), EsError> {
    let key = "output.elasticsearch";
    for k in &out.preset_overridden {
        tracing::warn!(preset = ?out.cfg.preset, setting = %k, "output.elasticsearch.preset overrides a setting of the configuration");
    }
    let clients = Client::all(&out.cfg, &out.endpoint)?;
    let index = out.cfg.index_router(key)?;
    let pipeline = out.cfg.pipeline_router(key)?;
    let dead_letter_index = out
        .cfg
        .non_indexable_policy
        .dead_letter_index(&format!("{key}.non_indexable_policy"))?
        .map(str::to_string);
    let dlq_dir = out.cfg.dead_letter.dir(&out.data_dir, super::replay::NAME);
    let dlq = DeadLetter::new(&out.cfg.dead_letter, dlq_dir, super::replay::NAME);
    let hosts = clients.len().max(1);
    let workers = if out.cfg.loadbalance {
        out.cfg.worker * hosts
    } else {
        out.cfg.worker
    };
    let metrics = consumer.metrics().clone();
    tracing::info!(hosts = %out.endpoint.urls.iter().map(crate::setup::config::redact).collect::<Vec<_>>().join(","), workers, "Elasticsearch output started");
    let checked = (0..clients.len())
        .map(|_| std::sync::atomic::AtomicBool::new(false))
        .collect();
    let shared = Arc::new(Shared {
        beat,
        metrics,
        clients,
        index,
        pipeline,
        dead_letter_index,
        dlq: std::sync::Mutex::new(dlq),
        logged: Default::default(),
        checked,
        out,
    });
    let consumer = Arc::new(Mutex::new(consumer));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let start = if shared.out.cfg.loadbalance {
            w % hosts
        } else {
            0
        };
        tasks.spawn(worker(shared.clone(), consumer.clone(), start));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn worker(shared: Arc<Shared>, consumer: Arc<Mutex<Consumer>>, mut host: usize) {
    let take = shared.out.cfg.bulk_size().unwrap_or(usize::MAX);
    loop {
        let batch = {
            let mut c = consumer.lock().await;
            c.next_batch(take).await
        };
        let Some(batch) = batch else { return };
        deliver(&shared, batch, &mut host).await;
    }
}

impl Shared {
    fn encode(&self, ev: &Event) -> Result<Item, (String, String, Vec<u8>)> {
        let mut doc = Vec::with_capacity(ev.size_hint());
        ev.write_document(&self.beat, &mut doc);
        if self.out.cfg.escape_html {
            bulk::escape_html(&mut doc);
        }
        let meta = |k: &str| {
            lookup(ev, &format!("@metadata.{k}"))
                .and_then(|f| f.as_str().map(str::to_string))
                .filter(|s| !s.is_empty())
        };
        let index = match meta("index") {
            Some(i) => i,
            None => match self.index.route(ev) {
                Ok(i) => i.into_owned(),
                Err(e) => {
                    return Err((String::new(), format!("cannot select the index: {e}"), doc))
                }
            },
        }
        .to_lowercase();
        let pipeline = match meta("pipeline") {
            Some(p) => Some(p),
            None => match self.pipeline.select(ev) {
                Some(Ok(p)) if !p.is_empty() => Some(p.into_owned()),
                Some(Err(e)) => {
                    return Err((index, format!("cannot select the pipeline: {e}"), doc))
                }
                _ => None,
            },
        }
        .map(|p| p.to_lowercase());
        let op = match meta("op_type") {
            Some(o) => match OpType::parse(&o) {
                Some(op) => op,
                None => {
                    return Err((
                        index,
                        format!("@metadata.op_type {o:?} is not create, index or delete"),
                        doc,
                    ))
                }
            },
            None => OpType::Create,
        };
        Ok(Item {
            index,
            pipeline,
            id: meta("_id"),
            op,
            doc,
            dead_letter: None,
        })
    }

    /// Log a rejected event at most once per 30 s per (status, error type).
    fn log_rejected(&self, status: u16, st: &ItemStatus, item: &Item, what: &str) {
        let ty = st.error_type();
        let now = Instant::now();
        let held = {
            let mut seen = self.logged.lock().unwrap_or_else(|e| e.into_inner());
            match seen.get_mut(&(status, ty.clone())) {
                Some((at, held)) if now.duration_since(*at) < LOG_PAUSE => {
                    *held += 1;
                    return;
                }
                Some((at, held)) => {
                    *at = now;
                    std::mem::take(held)
                }
                None => {
                    seen.insert((status, ty), (now, 0));
                    0
                }
            }
        };
        let sample = String::from_utf8_lossy(&item.doc[..item.doc.len().min(512)]).into_owned();
        tracing::warn!(
            status,
            index = %item.index,
            error = %st.reason(),
            sample = %sample,
            held_back = held,
            "Elasticsearch refused an event; {what} (the same status and error are logged again after 30s at most, with the count held back)"
        );
    }

    fn dead_letter_file(&self, entries: Vec<(String, String, Vec<u8>)>) -> bool {
        if entries.is_empty() {
            return true;
        }
        let list: Vec<Entry<'_>> = entries
            .iter()
            .map(|(index, error, event)| Entry {
                destination: Destination::Index(index),
                error,
                event,
            })
            .collect();
        let mut d = self.dlq.lock().unwrap_or_else(|e| e.into_inner());
        match d.write(&list) {
            Ok(()) => {
                tracing::warn!(events = list.len(), dir = %d.dir().display(), "events Elasticsearch refused for good were written to the dead-letter file (oxibeat dlq show / replay)");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, dir = %d.dir().display(), "writing the Elasticsearch dead-letter file failed; retrying (events stay unacked)");
                false
            }
        }
    }
}

/// Deliver one queue batch; returns once every event is settled and the batch acked.
async fn deliver(shared: &Shared, batch: Batch, host: &mut usize) {
    let m = &shared.metrics;
    let mut tally = Tally::default();
    let mut pending = Vec::with_capacity(batch.len());
    let mut for_file: Vec<(String, String, Vec<u8>)> = Vec::new();
    for ev in batch.events() {
        match shared.encode(ev) {
            Ok(item) => pending.push(item),
            Err((index, error, doc)) => {
                let mut item = Item {
                    index,
                    pipeline: None,
                    id: None,
                    op: OpType::Create,
                    doc,
                    dead_letter: None,
                };
                let st = ItemStatus {
                    status: 0,
                    error: Some(
                        serde_json::json!({"type": "oxibeat_routing", "reason": error}).to_string(),
                    ),
                };
                if non_indexable(shared, &mut item, &st, &mut tally, &mut for_file) {
                    pending.push(item);
                }
            }
        }
    }
    m.gauges
        .output_active
        .fetch_add(pending.len() as i64, Ordering::Relaxed);
    let active = pending.len();
    let mut backoff = shared.out.cfg.backoff.backoff().with_jitter();
    let chunk = shared.out.cfg.bulk_size().unwrap_or(usize::MAX).max(1);
    let mut retry: Vec<Item> = Vec::new();
    loop {
        if pending.is_empty() {
            if retry.is_empty() {
                break;
            }
            // Only the items that failed with 429/5xx, after a backoff.
            backoff.wait().await;
            pending = std::mem::take(&mut retry);
        }
        let mut rest = std::mem::take(&mut pending);
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(chunk));
            let part = std::mem::replace(&mut rest, tail);
            let (r, again) = send(shared, part, host, &mut tally, &mut for_file).await;
            retry.extend(r);
            // Re-encoded for the dead-letter index: sent in the next round, without waiting.
            pending.extend(again);
        }
    }
    let mut file_backoff =
        Backoff::new(shared.out.cfg.backoff.init.0, shared.out.cfg.backoff.max.0);
    let to_file = for_file.len();
    while !shared.dead_letter_file(for_file.clone()) {
        file_backoff.wait().await;
    }
    tally.dropped += to_file;
    m.gauges
        .output_active
        .fetch_sub(active as i64, Ordering::Relaxed);
    Metrics::add(&m.counters.output_duplicates, tally.duplicates as u64);
    Metrics::add(&m.counters.output_dead_letter, tally.dead_letter as u64);
    batch.ack_as(tally.acked, tally.dropped);
}

/// The event was refused for good. Returns true when it should be sent again (re-encoded for
/// the dead-letter index); otherwise it was counted, or queued for the dead-letter file.
fn non_indexable(
    shared: &Shared,
    item: &mut Item,
    st: &ItemStatus,
    tally: &mut Tally,
    for_file: &mut Vec<(String, String, Vec<u8>)>,
) -> bool {
    let error = format!("{} {}", st.status, st.error.as_deref().unwrap_or(""));
    if let Some((index, original, first)) = item.dead_letter.take() {
        shared.log_rejected(
            st.status,
            st,
            item,
            "the dead-letter index refused it too: it goes to the dead-letter file",
        );
        for_file.push((
            index,
            format!("{first}; dead-letter index: {error}"),
            original,
        ));
        return false;
    }
    match &shared.dead_letter_index {
        None => {
            shared.log_rejected(st.status, st, item, "dropped (non_indexable_policy: drop)");
            tally.dropped += 1;
            false
        }
        Some(dli) => {
            shared.log_rejected(st.status, st, item, "sent to the dead-letter index");
            let ts = format_timestamp(now_nanos());
            let doc = bulk::dead_letter_document(
                &ts,
                &item.doc,
                st.status,
                st.error.as_deref().unwrap_or(""),
            );
            let original = std::mem::replace(&mut item.doc, doc);
            item.dead_letter = Some((std::mem::take(&mut item.index), original, error));
            item.index = dli.clone();
            item.pipeline = None;
            item.id = None;
            item.op = OpType::Create;
            true
        }
    }
}

/// Send `items` (at most one bulk request's worth) until the request was answered; returns
/// (items to retry after a backoff, items to send again at once).
async fn send(
    shared: &Shared,
    items: Vec<Item>,
    host: &mut usize,
    tally: &mut Tally,
    for_file: &mut Vec<(String, String, Vec<u8>)>,
) -> (Vec<Item>, Vec<Item>) {
    let m = &shared.metrics;
    let mut backoff = shared.out.cfg.backoff.backoff().with_jitter();
    let mut body = Vec::new();
    for it in &items {
        bulk::write_item(
            &mut body,
            it.op,
            &it.index,
            it.pipeline.as_deref(),
            it.id.as_deref(),
            &it.doc,
        );
    }
    loop {
        let n = shared.clients.len();
        let client = &shared.clients[*host % n];
        if !shared.checked[*host % n].load(Ordering::Acquire) {
            match client.info().await {
                Ok(info) => {
                    tracing::info!(host = %client.url, cluster = %info, "connected to the cluster");
                    shared.checked[*host % n].store(true, Ordering::Release);
                }
                Err((Some(status), _)) => {
                    Metrics::add(&m.counters.output_write_errors, 1);
                    auth_error(shared, client, status, b"");
                    tokio::time::sleep(shared.out.cfg.backoff.max.0).await;
                    continue;
                }
                Err((None, e)) => {
                    Metrics::add(&m.counters.output_write_errors, 1);
                    tracing::error!(host = %client.url, error = %e, "cannot use this Elasticsearch host; retrying (events stay queued, inputs pause when the queue is full)");
                    *host += 1;
                    backoff.wait().await;
                    continue;
                }
            }
        }
        Metrics::add(&m.counters.output_batches, 1);
        Metrics::add(&m.counters.output_total, items.len() as u64);
        let (reply, written) = client.bulk(&body).await;
        Metrics::add(&m.counters.output_write_bytes, written as u64);
        match reply {
            Reply::Status(200, resp) => {
                return settle(shared, items, &resp, tally, for_file);
            }
            Reply::Status(413, _) if items.len() > 1 => {
                tracing::warn!(events = items.len(), bytes = body.len(), "Elasticsearch answered 413 (request too large); splitting the request in halves (lower bulk_max_size or raise http.max_content_length)");
                let mut a = items;
                let b = a.split_off(a.len() / 2);
                let mut first = Box::pin(send(shared, a, host, tally, for_file)).await;
                let second = Box::pin(send(shared, b, host, tally, for_file)).await;
                first.0.extend(second.0);
                first.1.extend(second.1);
                return first;
            }
            Reply::Status(413, resp) => {
                let st = ItemStatus {
                    status: 413,
                    error: Some(
                        serde_json::json!({"type": "request_entity_too_large", "reason": format!("a single event of {} bytes is larger than the cluster accepts: {}", body.len(), String::from_utf8_lossy(&resp[..resp.len().min(200)]))}).to_string(),
                    ),
                };
                let mut items = items;
                let mut again = Vec::new();
                for mut it in items.drain(..) {
                    if non_indexable(shared, &mut it, &st, tally, for_file) {
                        again.push(it);
                    }
                }
                return (Vec::new(), again);
            }
            Reply::Status(s @ (401 | 403), resp) => {
                Metrics::add(&m.counters.output_write_errors, 1);
                auth_error(shared, client, s, &resp);
                tokio::time::sleep(shared.out.cfg.backoff.max.0).await;
            }
            Reply::Status(s, resp) => {
                Metrics::add(&m.counters.output_write_errors, 1);
                Metrics::add(&m.counters.output_failed, items.len() as u64);
                if s == 429 {
                    Metrics::add(&m.counters.output_toomany, items.len() as u64);
                }
                tracing::warn!(host = %client.url, status = s, answer = %String::from_utf8_lossy(&resp[..resp.len().min(300)]), events = items.len(), "bulk request failed; retrying it after a backoff");
                backoff.wait().await;
            }
            Reply::Failed(e) => {
                Metrics::add(&m.counters.output_write_errors, 1);
                Metrics::add(&m.counters.output_failed, items.len() as u64);
                tracing::warn!(error = %e, events = items.len(), "bulk request got no answer; retrying it after a backoff (the next host, if there are several)");
                *host += 1;
                backoff.wait().await;
            }
        }
    }
}

/// 401/403: say what is wrong and with which kind of credential (never its value).
fn auth_error(shared: &Shared, client: &Client, status: u16, resp: &[u8]) {
    let what = if status == 401 {
        "authentication failed"
    } else {
        "the credentials lack the privileges to write (create_doc, auto_configure on the target indices)"
    };
    tracing::error!(
        host = %client.url,
        status,
        credentials = shared.out.endpoint.auth.kind(),
        answer = %String::from_utf8_lossy(&resp[..resp.len().min(300)]),
        "Elasticsearch refused the request: {what}; fix the output.elasticsearch credentials (username/password, api_key or cloud.auth). Retrying every backoff.max; inputs pause meanwhile"
    );
}

/// Apply a 200 bulk response to its items.
fn settle(
    shared: &Shared,
    items: Vec<Item>,
    resp: &[u8],
    tally: &mut Tally,
    for_file: &mut Vec<(String, String, Vec<u8>)>,
) -> (Vec<Item>, Vec<Item>) {
    let m = &shared.metrics;
    let parsed: BulkResponse = match serde_json::from_slice(resp) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the bulk response; sending the request again");
            return (items, Vec::new());
        }
    };
    if !parsed.errors && parsed.items.is_empty() {
        for it in &items {
            count_ok(it, tally);
        }
        return (Vec::new(), Vec::new());
    }
    if parsed.items.len() != items.len() {
        tracing::warn!(
            sent = items.len(),
            answered = parsed.items.len(),
            "the bulk response does not answer every item; sending the request again"
        );
        return (items, Vec::new());
    }
    let mut retry = Vec::new();
    let mut again = Vec::new();
    let (mut failed, mut toomany) = (0u64, 0u64);
    for (mut it, st) in items.into_iter().zip(parsed.items) {
        match verdict(st.status) {
            Verdict::Acked => count_ok(&it, tally),
            Verdict::Duplicate if it.dead_letter.is_none() => tally.duplicates += 1,
            Verdict::Duplicate => tally.dead_letter += 1,
            Verdict::Retry => {
                failed += 1;
                if st.status == 429 {
                    toomany += 1;
                }
                retry.push(it);
            }
            Verdict::NonIndexable => {
                if non_indexable(shared, &mut it, &st, tally, for_file) {
                    again.push(it);
                }
            }
        }
    }
    Metrics::add(&m.counters.output_failed, failed);
    Metrics::add(&m.counters.output_toomany, toomany);
    (retry, again)
}

fn count_ok(it: &Item, tally: &mut Tally) {
    if it.dead_letter.is_some() {
        tally.dead_letter += 1;
    } else {
        tally.acked += 1;
    }
}
