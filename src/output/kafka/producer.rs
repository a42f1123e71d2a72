//! The Kafka producer: librdkafka settings from `[output.kafka]`, the produce loop and the
//! delivery tracking that acks the pipeline.
//!
//! Flow: a batch from the queue is encoded event by event and handed to librdkafka
//! (`ThreadedProducer`, which copies the payload). Each message carries a `FlightRef` to its
//! batch's `InFlight` record as delivery opaque; the delivery callback counts down and, at zero,
//! hands the batch back to the output task, which writes permanent failures to the dead-letter
//! file first and then acks the batch. When librdkafka's bounded queue is full, `send` says so and this loop waits
//! instead of taking more from oxibeat's queue, so the inputs pause.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseProducer, DeliveryResult, NoCustomPartitioner, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::mpsc;

use crate::event::{BeatInfo, Event};
use crate::monitoring::Metrics;
use crate::output::{Backoff, OutputError};
use crate::pipeline::{Batch, Consumer, Receipt};

use super::config::{KafkaConfig, VerificationMode};
use super::native::{self, Topics};
use super::partition::{Partitioner, Sticky};
use super::KafkaError;
use crate::output::dlq::{DeadLetter, Destination, Entry};
use crate::output::format::{FormatString, Router};

/// librdkafka properties for `cfg`. Secrets go into the config only, never into logs.
pub fn client_config(cfg: &KafkaConfig) -> Result<ClientConfig, KafkaError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", cfg.hosts.join(","))
        .set("client.id", &cfg.client_id)
        .set("acks", cfg.required_acks.to_string())
        // Idempotence needs acks=all; with it librdkafka's retries neither duplicate nor reorder.
        .set(
            "enable.idempotence",
            if cfg.required_acks == -1 {
                "true"
            } else {
                "false"
            },
        )
        .set("compression.type", cfg.compression.as_librdkafka())
        // 0 = never time a message out locally: retriable failures (broker down) are retried
        // forever, the bounded queue below is what stops the inputs.
        .set("message.timeout.ms", "0")
        .set(
            "linger.ms",
            cfg.bulk_flush_frequency.0.as_millis().to_string(),
        )
        .set(
            "queue.buffering.max.kbytes",
            (cfg.queue.max_bytes.0 / 1024)
                .clamp(1, 2_147_483_647)
                .to_string(),
        )
        .set(
            "queue.buffering.max.messages",
            cfg.queue.max_messages.clamp(1, 2_147_483_647).to_string(),
        )
        .set(
            "message.max.bytes",
            (cfg.max_message_bytes + 4096).max(1_000_000).to_string(),
        )
        .set(
            "socket.timeout.ms",
            cfg.timeout.0.as_millis().max(10).to_string(),
        )
        .set(
            "request.timeout.ms",
            cfg.broker_timeout.0.as_millis().max(1).to_string(),
        )
        .set(
            "reconnect.backoff.ms",
            cfg.backoff.init.0.as_millis().max(1).to_string(),
        )
        .set(
            "reconnect.backoff.max.ms",
            cfg.backoff.max.0.as_millis().max(1).to_string(),
        )
        .set_log_level(RDKafkaLogLevel::Warning);
    if let Some(level) = cfg.compression_level {
        c.set("compression.level", level.to_string());
    }
    let ssl = cfg.ssl.as_ref().filter(|s| s.enabled);
    let sasl_mech = cfg.sasl.as_ref().and_then(|s| s.mechanism);
    let user = cfg
        .sasl
        .as_ref()
        .and_then(|s| s.username.clone())
        .or_else(|| cfg.username.clone());
    let pass = cfg
        .sasl
        .as_ref()
        .and_then(|s| s.password.clone())
        .or_else(|| cfg.password.clone())
        .map(|p| p.0);
    let sasl = user.is_some() || sasl_mech.is_some();
    c.set(
        "security.protocol",
        match (ssl.is_some(), sasl) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        },
    );
    if sasl {
        c.set(
            "sasl.mechanism",
            sasl_mech.map_or("PLAIN", |m| m.as_librdkafka()),
        );
        if let Some(u) = user {
            c.set("sasl.username", u);
        }
        if let Some(p) = pass {
            c.set("sasl.password", p);
        }
    }
    if let Some(s) = ssl {
        if !s.certificate_authorities.is_empty() {
            // librdkafka takes one CA location; several files are concatenated into ssl.ca.pem.
            let mut pem = String::new();
            for p in &s.certificate_authorities {
                let text = std::fs::read_to_string(p).map_err(|source| KafkaError::ReadFile {
                    path: p.display().to_string(),
                    source,
                })?;
                pem.push_str(&text);
                pem.push('\n');
            }
            c.set("ssl.ca.pem", pem);
        }
        if let Some(cert) = &s.certificate {
            c.set("ssl.certificate.location", cert.display().to_string());
        }
        if let Some(key) = &s.key {
            c.set("ssl.key.location", key.display().to_string());
        }
        if let Some(pw) = &s.key_passphrase {
            c.set("ssl.key.password", &pw.0);
        }
        let (verify, endpoint) = match s.verification_mode {
            VerificationMode::Full | VerificationMode::Strict => ("true", "https"),
            VerificationMode::Certificate => ("true", "none"),
            VerificationMode::None => ("false", "none"),
        };
        c.set("enable.ssl.certificate.verification", verify)
            .set("ssl.endpoint.identification.algorithm", endpoint);
    }
    for (k, v) in passthrough(&cfg.librdkafka)? {
        c.set(k, v);
    }
    Ok(c)
}

/// The `[output.kafka.librdkafka]` properties as librdkafka takes them: name → string.
/// Dotted names written as TOML tables (`sasl.password = ...` unquoted, or
/// `-E output.kafka.librdkafka.sasl.password=...`) are joined back into one name.
pub fn passthrough(
    props: &std::collections::BTreeMap<String, toml::Value>,
) -> Result<Vec<(String, String)>, KafkaError> {
    let mut out = Vec::new();
    let mut stack: Vec<(String, &toml::Value)> =
        props.iter().rev().map(|(k, v)| (k.clone(), v)).collect();
    while let Some((name, v)) = stack.pop() {
        let s = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Table(t) => {
                for (k, inner) in t.iter().rev() {
                    stack.push((format!("{name}.{k}"), inner));
                }
                continue;
            }
            toml::Value::Array(_) => {
                return Err(crate::config::ConfigError::new(
                    format!("output.kafka.librdkafka.\"{name}\""),
                    "must be a string, number or boolean (librdkafka takes lists as one comma-separated string); the value is not shown",
                )
                .into())
            }
            other => other.to_string(),
        };
        out.push((name, s));
    }
    Ok(out)
}

/// librdkafka's client errors, without the value of a property that may be a secret
/// (rdkafka's own message is "<description> <key> <value>").
pub fn client_error(e: RdError) -> KafkaError {
    if let RdError::ClientConfig(_, desc, key, value) = &e {
        if crate::config::secret::is_secret_property(key) {
            let desc = if value.is_empty() {
                desc.clone()
            } else {
                desc.replace(value.as_str(), "***")
            };
            return KafkaError::Client(format!("{desc} (property {key}; the value is not shown)"));
        }
        if desc.contains(value.as_str()) {
            return KafkaError::Client(format!("{desc} (property {key})"));
        }
        return KafkaError::Client(format!("{desc} (property {key} = {value:?})"));
    }
    KafkaError::Client(e.to_string())
}

/// The values of `c`'s secret properties (`sasl.password`, `ssl.key.password`, any
/// passthrough name `is_secret_property` calls secret), longest first, so that what librdkafka
/// says can be masked before it reaches our logs. librdkafka redacts its own sensitive
/// properties in its configuration dumps (`rd_kafka_anyconf_dump`, `_RK_SENSITIVE`); this also
/// covers passthrough names it does not know as sensitive and messages it builds from values.
/// Values under 4 bytes are left out: masking them would garble ordinary words.
pub fn secret_values(c: &ClientConfig) -> Vec<String> {
    let mut v: Vec<String> = c
        .config_map()
        .iter()
        .filter(|(k, v)| crate::config::secret::is_secret_property(k) && v.len() >= 4)
        .map(|(_, v)| v.clone())
        .collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v.dedup();
    v
}

/// `text` with every value of `secrets` replaced by `***`.
pub fn redact<'a>(text: &'a str, secrets: &[String]) -> std::borrow::Cow<'a, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in secrets {
        if out.contains(s.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(s.as_str(), "***"));
        }
    }
    out
}

/// Check every librdkafka property the configuration sets (ours and the passthrough ones)
/// with librdkafka itself, without creating a client: unknown names and invalid values fail
/// at load, naming the key. Values are never shown (a passthrough value may be a credential).
pub fn check_properties(cfg: &KafkaConfig) -> Result<(), crate::config::ConfigError> {
    use crate::config::ConfigError;
    let c = client_config(cfg).map_err(|e| match e {
        KafkaError::Config(e) => e,
        other => ConfigError::new("output.kafka", other.to_string()),
    })?;
    // client_config above took these already, so this cannot fail here.
    let passed = passthrough(&cfg.librdkafka).unwrap_or_default();
    match c.create_native_config() {
        Ok(_) => Ok(()),
        Err(rdkafka::error::KafkaError::ClientConfig(_, desc, key, value)) => {
            let desc = if value.is_empty() {
                desc
            } else {
                desc.replace(&value, "***")
            };
            let at = if passed.iter().any(|(name, _)| *name == key) {
                format!("output.kafka.librdkafka.{key:?}")
            } else {
                "output.kafka".to_string()
            };
            Err(ConfigError::new(
                at,
                format!(
                    "librdkafka refuses property {key:?}: {desc}; see \
                     https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md"
                ),
            ))
        }
        Err(e) => Err(ConfigError::new("output.kafka", e.to_string())),
    }
}

/// The error of an event bigger than `output.kafka.max_message_bytes`.
pub fn oversize(len: usize, max: usize) -> String {
    format!("message of {len} bytes exceeds output.kafka.max_message_bytes = {max}")
}

/// Errors Kafka will not get over by retrying: the event goes to the dead-letter file.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::InvalidTopic
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::UnknownTopic
            | C::UnknownTopicOrPartition
            | C::UnknownPartition
            | C::PolicyViolation
            | C::MessageBatchTooLarge
            | C::InvalidRequiredAcks
    )
}

/// Client errors after which `test output` reports at once instead of waiting for its
/// timeout: every broker is down (refused, TLS handshake failed), or SASL failed.
fn is_definitive(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::AllBrokersDown | C::Authentication | C::SaslAuthenticationFailed | C::SSL
    )
}

/// What to do about a topic the brokers' metadata refuses.
fn topic_hint(code: RDKafkaErrorCode) -> &'static str {
    use RDKafkaErrorCode as C;
    match code {
        C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => {
            "grant this client's principal Write and Describe on the topic (kafka-acls.sh --add --allow-principal User:<name> --operation Write --operation Describe --topic <topic>)"
        }
        C::UnknownTopic | C::UnknownTopicOrPartition => {
            "create the topic (this output does not rely on broker auto-creation)"
        }
        C::InvalidTopic => {
            "fix the topic name (ASCII letters, digits, '.', '_' and '-', at most 249 characters)"
        }
        _ => "fix the topic settings",
    }
}

fn error_code(e: &RdError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// A rejected event waiting for the dead-letter file.
struct Failed {
    topic: String,
    error: String,
    payload: Vec<u8>,
}

/// A message whose delivery failed with a retriable error (only with a finite
/// `message.timeout.ms` set through `[output.kafka.librdkafka]`): the output sends it again.
struct Retry {
    flight: FlightRef,
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    timestamp: Option<i64>,
}

/// One queue batch in flight: acked when `remaining` reaches zero. Only its receipt is kept:
/// librdkafka holds copies of the events, and its bounded queue is what pauses the inputs.
pub struct InFlight {
    batch: Mutex<Option<Receipt>>,
    remaining: AtomicUsize,
    failed: Mutex<Vec<Failed>>,
}

impl InFlight {
    /// A batch's record with `settles` events (and guards) to count down, and the handles that
    /// count them: one `FlightRef` per settle, no more (`FlightRef::settle`).
    fn start(settles: usize) -> (Arc<InFlight>, FlightRefs) {
        let flight = Arc::new(InFlight {
            batch: Mutex::new(None),
            remaining: AtomicUsize::new(settles),
            failed: Mutex::new(Vec::new()),
        });
        // The handles' one reference, taken back by the last settle (`FlightRef::settle`).
        // SAFETY: `Arc::into_raw` never returns null.
        let raw = unsafe { NonNull::new_unchecked(Arc::into_raw(flight.clone()).cast_mut()) };
        (flight, FlightRefs { raw, left: settles })
    }

    fn fail(&self, f: Failed) {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }
}

/// The handles of one batch's record, one per settle (`InFlight::start`).
struct FlightRefs {
    raw: NonNull<InFlight>,
    left: usize,
}

// SAFETY: as for `FlightRef`: the record is `Sync` and lives while handles are left.
unsafe impl Send for FlightRefs {}

impl FlightRefs {
    fn next(&mut self) -> FlightRef {
        // More handles than settles would let the record be freed under a live handle.
        assert!(self.left > 0, "more FlightRefs than settles");
        self.left -= 1;
        FlightRef(self.raw)
    }

    /// Settle every handle not handed out yet.
    fn settle_rest(mut self, done: &mpsc::UnboundedSender<Arc<InFlight>>) {
        while self.left > 0 {
            self.next().settle(done);
        }
    }
}

/// A message's hold on its batch's `InFlight` record: the delivery opaque. It is a plain
/// pointer, not an `Arc` clone per message (an atomic increment when producing and a
/// decrement in the delivery report, for every message): the record's `remaining` count is
/// its reference count. The record holds one strong reference for all its handles, which the
/// handle whose settle brings `remaining` to zero takes back.
///
/// Each handle stands for one unit of `remaining` and settles at most once (`settle` takes it
/// by value; it is not `Clone`), so the record lives while any handle does. A handle dropped
/// without settling (a message librdkafka never reports, at shutdown) leaks its record, as the
/// `Arc` did that `into_ptr` had given librdkafka.
pub struct FlightRef(NonNull<InFlight>);

// SAFETY: the record is `Sync` (atomics and mutexes) and lives while the handle does (above).
unsafe impl Send for FlightRef {}
unsafe impl Sync for FlightRef {}

impl FlightRef {
    fn get(&self) -> &InFlight {
        // SAFETY: the record outlives every handle that has not settled yet (see the type).
        unsafe { self.0.as_ref() }
    }

    fn fail(&self, f: Failed) {
        self.get().fail(f);
    }

    /// Count one event as settled (delivered or failed for good); the last one hands the
    /// batch to the output task.
    fn settle(self, done: &mpsc::UnboundedSender<Arc<InFlight>>) {
        if self.get().remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: the reference `InFlight::start` left for the handles; no handle is
            // left to use it (this was the last unit of `remaining`).
            let flight = unsafe { Arc::from_raw(self.0.as_ptr()) };
            let _ = done.send(flight);
        }
    }
}

impl rdkafka::util::IntoOpaque for FlightRef {
    fn into_ptr(self) -> *mut std::ffi::c_void {
        self.0.as_ptr().cast()
    }

    unsafe fn from_ptr(ptr: *mut std::ffi::c_void) -> Self {
        // SAFETY (caller): `ptr` came from `into_ptr`, so it is not null.
        FlightRef(unsafe { NonNull::new_unchecked(ptr.cast()) })
    }
}

/// librdkafka callbacks: delivery reports, logs and client errors into tracing.
pub struct Ctx {
    done: mpsc::UnboundedSender<Arc<InFlight>>,
    retry: mpsc::UnboundedSender<Retry>,
    /// Set on a fatal (idempotence) error: the producer must be recreated.
    fatal: AtomicBool,
    /// Client error reasons seen so far (for `oxibeat test output`).
    last_error: Mutex<Vec<String>>,
    /// Every broker is down or refused us (TLS, authentication): `test output` need not wait.
    gave_up: AtomicBool,
    /// Errors logged recently: when, and how many identical ones were held back since.
    previous: Mutex<HashMap<String, (Instant, u64)>>,
    /// Values of the client's secret properties, masked in what librdkafka says.
    secrets: Vec<String>,
}

impl Ctx {
    fn new(
        done: mpsc::UnboundedSender<Arc<InFlight>>,
        retry: mpsc::UnboundedSender<Retry>,
    ) -> Self {
        Ctx {
            done,
            retry,
            fatal: AtomicBool::new(false),
            last_error: Mutex::new(Vec::new()),
            gave_up: AtomicBool::new(false),
            previous: Mutex::new(HashMap::new()),
            secrets: Vec::new(),
        }
    }

    /// Mask the values of `c`'s secret properties in librdkafka's log lines and errors.
    fn masking(mut self, c: &ClientConfig) -> Self {
        self.secrets = secret_values(c);
        self
    }

    /// True when the same error was logged less than 30 s ago: librdkafka reports a down
    /// broker every reconnect backoff, and rdkafka 0.38's producer poll even hands each error
    /// event to `error` twice in a row. The next report after the pause says how many were
    /// held back.
    fn repeated(&self, error: &RdError, reason: &str) -> Option<u64> {
        const PAUSE: Duration = Duration::from_secs(30);
        // Same error = same code and reason, ignoring the "(after 0ms in state …, 1 identical
        // error(s) suppressed)" tail and the "1/3 brokers are down" counts librdkafka varies.
        let head = reason.split(" (after").next().unwrap_or(reason);
        let stable: String = if head.ends_with("brokers are down") {
            head.chars().filter(|c| !c.is_ascii_digit()).collect()
        } else {
            head.to_string()
        };
        let key = format!("{error}\u{0}{stable}");
        let mut seen = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if seen.len() > 64 {
            seen.retain(|_, (at, _)| now.duration_since(*at) < PAUSE);
        }
        match seen.get_mut(&key) {
            Some((at, held)) if now.duration_since(*at) < PAUSE => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let masked = redact(log_message, &self.secrets);
        let log_message: &str = &masked;
        // Connection failures come to `error` below as well: log them once, there.
        if fac == "FAIL" {
            tracing::debug!(facility = fac, "librdkafka: {log_message}");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {log_message}"),
            _ => tracing::debug!(facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        let masked = redact(reason, &self.secrets);
        let reason: &str = &masked;
        let error_text = redact(&error.to_string(), &self.secrets).into_owned();
        // librdkafka reconnecting to a broker that is down is a retry, not a hang: the
        // systemd watchdog keeps pinging through an outage.
        crate::monitoring::liveness::touch();
        if error_code(&error) == Some(RDKafkaErrorCode::Fatal) {
            self.fatal.store(true, Ordering::Release);
        }
        if error_code(&error).is_some_and(is_definitive) {
            self.gave_up.store(true, Ordering::Release);
        }
        let Some(held_back) = self.repeated(&error, reason) else {
            return;
        };
        if error_code(&error) == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(error = %error_text, reason, "Kafka producer fatal error; recreating the producer");
        } else {
            tracing::warn!(error = %error_text, reason, held_back, "Kafka client error; retrying (the same error is logged again after 30s at most, with the count held back)");
        }
        // Keep the first distinct reasons: the root cause (TLS, SASL) comes before the
        // generic "brokers are down" that follows it.
        let mut seen = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() < 2 && !seen.iter().any(|r| r == reason) {
            seen.push(reason.to_string());
        }
    }
}

impl ProducerContext<NoCustomPartitioner> for Ctx {
    type DeliveryOpaque = FlightRef;

    fn delivery(&self, result: &DeliveryResult<'_>, flight: FlightRef) {
        match result {
            Ok(_) => flight.settle(&self.done),
            Err((e, msg)) => {
                let code = error_code(e);
                if code.is_some_and(is_permanent) {
                    flight.fail(Failed {
                        topic: msg.topic().to_string(),
                        error: e.to_string(),
                        payload: msg.payload().unwrap_or_default().to_vec(),
                    });
                    flight.settle(&self.done);
                } else {
                    if code == Some(RDKafkaErrorCode::Fatal) {
                        self.fatal.store(true, Ordering::Release);
                    }
                    let _ = self.retry.send(Retry {
                        flight,
                        topic: msg.topic().to_string(),
                        partition: msg.partition(),
                        key: msg.key().map(<[u8]>::to_vec),
                        payload: msg.payload().unwrap_or_default().to_vec(),
                        timestamp: msg.timestamp().to_millis(),
                    });
                }
            }
        }
    }
}

type Prod = ThreadedProducer<Ctx>;

/// What the output knows of each topic from the brokers' metadata, fetched on first use.
struct TopicCache {
    known: HashMap<String, TopicInfo>,
    /// Topics the broker said do not exist / are not allowed, with when we asked.
    bad: HashMap<String, (String, Instant)>,
    /// The topic used last, taken out of `known`: most outputs use one topic, and its events
    /// skip the map.
    last: Option<(String, TopicInfo)>,
    /// The metadata request under way for a topic with keyless events (one at a time).
    refresh: Option<(String, tokio::task::JoinHandle<Lookup>)>,
}

impl TopicCache {
    /// `topic`'s entry, wherever it is (the last topic or the map).
    fn get_mut(&mut self, topic: &str) -> Option<&mut TopicInfo> {
        match &mut self.last {
            Some((t, info)) if t == topic => Some(info),
            _ => self.known.get_mut(topic),
        }
    }
}

/// One topic's metadata, and where its keyless events go.
struct TopicInfo {
    partitions: i32,
    /// When `partitions` was last asked for (or the asking failed).
    fetched: Instant,
    /// The partitions that had a leader at `live_at`.
    live: Vec<i32>,
    live_at: Instant,
    /// Keyless events were routed since the last refresh of `live`.
    keyless_used: bool,
    sticky: Sticky,
    /// The partition keyless events of batch number `.0` go to.
    current: Option<(u64, i32)>,
}

impl TopicInfo {
    fn new(m: Metadata) -> Self {
        let now = Instant::now();
        TopicInfo {
            partitions: m.partitions,
            fetched: now,
            live: m.live,
            live_at: now,
            keyless_used: false,
            sticky: Sticky::default(),
            current: None,
        }
    }

    fn update(&mut self, m: Metadata) {
        let now = Instant::now();
        self.partitions = m.partitions;
        self.fetched = now;
        self.live = m.live;
        self.live_at = now;
    }

    /// The partition of a keyless event of batch number `batch`: the batch's sticky partition,
    /// or librdkafka's choice (`PARTITION_UA`, which also keeps off partitions without a
    /// leader) while what the output knows of the leaders is too old or names none.
    fn keyless(&mut self, batch: u64, now: Instant) -> i32 {
        self.keyless_used = true;
        if let Some((b, p)) = self.current {
            if b == batch {
                return p;
            }
        }
        let p = if now.saturating_duration_since(self.live_at) > LIVE_MAX_AGE {
            None
        } else {
            self.sticky.next(&self.live)
        };
        let p = p.unwrap_or(rdkafka::producer::PARTITION_UA);
        self.current = Some((batch, p));
        p
    }

    /// Due for a new look at its leaders: keyless events use it, and `live` is getting old.
    fn wants_refresh(&self, now: Instant) -> bool {
        self.keyless_used && now.saturating_duration_since(self.live_at) >= LIVE_REFRESH
    }
}

const METADATA_REFRESH: Duration = Duration::from_secs(600);
const BAD_TOPIC_RECHECK: Duration = Duration::from_secs(10);
/// How often the leaders of a topic with keyless events are looked up, in the background
/// (librdkafka's sticky partitioner sees a leader change when its own metadata does, which
/// also takes a few seconds: the controller's broker session timeout, then a refresh).
const LIVE_REFRESH: Duration = Duration::from_secs(5);
/// Older than this (the brokers do not answer, or the topic was idle), keyless events go back
/// to librdkafka's partitioner until a refresh succeeds.
const LIVE_MAX_AGE: Duration = Duration::from_secs(15);

/// A topic's partition count and the partitions that have a leader.
pub(super) struct Metadata {
    pub partitions: i32,
    pub live: Vec<i32>,
}

pub(super) enum Lookup {
    Partitions(Metadata),
    /// The topic cannot be used (unknown, invalid, not authorised): a permanent event error.
    Bad(String),
    /// Brokers unreachable or slow: retry later.
    Unavailable(String),
}

/// The partitions of `topic` from the brokers' metadata.
pub(super) fn fetch_partitions<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Lookup {
    match client.fetch_metadata(Some(topic), timeout) {
        Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
            Some(t) => match t.error() {
                Some(err) => {
                    let code = RDKafkaErrorCode::from(err);
                    if is_permanent(code) {
                        Lookup::Bad(format!("topic {topic:?}: {code}; {}", topic_hint(code)))
                    } else {
                        Lookup::Unavailable(format!("topic {topic:?}: {code}"))
                    }
                }
                None if t.partitions().is_empty() => {
                    Lookup::Unavailable(format!("topic {topic:?} has no partitions yet"))
                }
                None => {
                    // As librdkafka's `rd_kafka_topic_partition_available`: a leader is known.
                    let mut live: Vec<i32> = t
                        .partitions()
                        .iter()
                        .filter(|p| p.leader() >= 0)
                        .map(|p| p.id())
                        .collect();
                    live.sort_unstable();
                    Lookup::Partitions(Metadata {
                        partitions: t.partitions().len() as i32,
                        live,
                    })
                }
            },
            None => Lookup::Unavailable(format!("topic {topic:?} missing from metadata")),
        },
        Err(e) => Lookup::Unavailable(e.to_string()),
    }
}

struct Runner {
    cfg: KafkaConfig,
    beat: Arc<BeatInfo>,
    metrics: Arc<Metrics>,
    /// The producer and its topic handles.
    native: Topics<Ctx>,
    ctx_done: mpsc::UnboundedSender<Arc<InFlight>>,
    ctx_retry: mpsc::UnboundedSender<Retry>,
    router: Arc<Router>,
    key: Option<FormatString>,
    partitioner: Partitioner,
    topics: TopicCache,
    /// Batches taken so far: the number of the current one.
    batches: u64,
    dlq: DeadLetter,
    backoff: Backoff,
    buf: Vec<u8>,
    /// Batches handed to librdkafka and not yet finished (acked). Counted here, not in the
    /// select loop, because `send` also finishes batches while it waits on a full queue.
    in_flight: usize,
    /// Error kinds already logged at warn level (then only counted), so a flood of rejected
    /// events logs one sample per kind.
    logged: std::collections::HashSet<String>,
}

fn build_producer(
    cfg: &KafkaConfig,
    done: mpsc::UnboundedSender<Arc<InFlight>>,
    retry: mpsc::UnboundedSender<Retry>,
) -> Result<Prod, KafkaError> {
    let c = client_config(cfg)?;
    c.create_with_context(Ctx::new(done, retry).masking(&c))
        .map_err(client_error)
}

impl Runner {
    /// What is known of `topic`, waiting (with backoff) while the brokers are unreachable.
    /// `now` is taken once per batch: reading the clock per event costs more than the lookup.
    async fn topic(&mut self, topic: &str, now: Instant) -> Result<&mut TopicInfo, String> {
        let fresh = matches!(&self.topics.last, Some((t, info))
            if t == topic && now.saturating_duration_since(info.fetched) < METADATA_REFRESH);
        if !fresh {
            let info = self.topic_slow(topic).await?;
            return Ok(&mut self.topics.last.insert((topic.to_string(), info)).1);
        }
        match &mut self.topics.last {
            Some((_, info)) => Ok(info),
            None => unreachable!("checked above"),
        }
    }

    /// `topic`'s entry, out of the cache (the previous last topic goes back into it).
    async fn topic_slow(&mut self, topic: &str) -> Result<TopicInfo, String> {
        let cached = match self.topics.last.take() {
            Some((t, info)) if t == topic => Some(info),
            Some((t, info)) => {
                self.topics.known.insert(t, info);
                self.topics.known.remove(topic)
            }
            None => self.topics.known.remove(topic),
        };
        if let Some(mut info) = cached {
            if info.fetched.elapsed() >= METADATA_REFRESH {
                // Refresh in passing; keep what we knew if the brokers do not answer.
                match self.lookup(topic, Duration::from_secs(5)).await {
                    Lookup::Partitions(m) => info.update(m),
                    _ => info.fetched = Instant::now(),
                }
            }
            return Ok(info);
        }
        if let Some((why, at)) = self.topics.bad.get(topic) {
            if at.elapsed() < BAD_TOPIC_RECHECK {
                return Err(why.clone());
            }
        }
        loop {
            match self.lookup(topic, Duration::from_secs(10)).await {
                Lookup::Partitions(m) => {
                    self.backoff.reset();
                    self.topics.bad.remove(topic);
                    return Ok(TopicInfo::new(m));
                }
                Lookup::Bad(why) => {
                    self.topics
                        .bad
                        .insert(topic.to_string(), (why.clone(), Instant::now()));
                    return Err(why);
                }
                Lookup::Unavailable(why) => {
                    Metrics::add(&self.metrics.counters.output_write_errors, 1);
                    tracing::warn!(topic, reason = %why, "Kafka metadata unavailable; retrying");
                    self.backoff.wait().await;
                }
            }
        }
    }

    async fn lookup(&self, topic: &str, timeout: Duration) -> Lookup {
        match self.spawn_lookup(topic, timeout).await {
            Ok(l) => l,
            Err(e) => Lookup::Unavailable(e.to_string()),
        }
    }

    fn spawn_lookup(&self, topic: &str, timeout: Duration) -> tokio::task::JoinHandle<Lookup> {
        let p = self.native.producer().clone();
        let t = topic.to_string();
        tokio::task::spawn_blocking(move || fetch_partitions(p.client(), &t, timeout))
    }

    /// At the start of a batch: take in a finished background look at a topic's leaders, and
    /// start the next one for a topic with keyless events whose leaders are getting old. The
    /// batch never waits for the brokers here.
    async fn refresh_leaders(&mut self, now: Instant) {
        if let Some((_, h)) = &self.topics.refresh {
            if !h.is_finished() {
                return;
            }
        }
        if let Some((topic, h)) = self.topics.refresh.take() {
            if let Ok(Lookup::Partitions(m)) = h.await {
                if let Some(info) = self.topics.get_mut(&topic) {
                    info.update(m);
                }
            }
        }
        let due = match &self.topics.last {
            Some((t, info)) if info.wants_refresh(now) => Some(t.clone()),
            _ => self
                .topics
                .known
                .iter()
                .find(|(_, info)| info.wants_refresh(now))
                .map(|(t, _)| t.clone()),
        };
        if let Some(topic) = due {
            if let Some(info) = self.topics.get_mut(&topic) {
                info.keyless_used = false;
            }
            let h = self.spawn_lookup(&topic, Duration::from_secs(5));
            self.topics.refresh = Some((topic, h));
        }
    }

    /// Topic, key and partition for an event already encoded in `self.buf`, or the topic and
    /// reason it can never be sent (it goes to the dead-letter file).
    async fn route<'r>(
        &mut self,
        router: &'r Router,
        ev: &Event,
        now: Instant,
    ) -> Result<(Cow<'r, str>, Option<Vec<u8>>, i32), (String, String)> {
        let topic = router
            .route(ev)
            .map_err(|why| (String::new(), format!("cannot select the topic: {why}")))?;
        if self.buf.len() > self.cfg.max_message_bytes {
            let why = oversize(self.buf.len(), self.cfg.max_message_bytes);
            return Err((topic.into_owned(), why));
        }
        // A key that cannot be formatted is left unset, as in Filebeat.
        let key: Option<Vec<u8>> = self
            .key
            .as_ref()
            .and_then(|k| k.render(ev).ok())
            .map(|k| k.as_bytes().to_vec());
        let keyless = self.partitioner.keyless(key.as_deref());
        let batch = self.batches;
        // Also for keyless events: an unusable topic is found here, not at delivery.
        let info = match self.topic(&topic, now).await {
            Ok(info) => info,
            Err(why) => return Err((topic.into_owned(), why)),
        };
        let partition = if keyless {
            Ok(info.keyless(batch, now))
        } else {
            let parts = info.partitions;
            self.partitioner.partition(ev, key.as_deref(), parts)
        };
        match partition {
            Ok(p) => Ok((topic, key, p)),
            Err(why) => Err((topic.into_owned(), why)),
        }
    }

    /// Hand every event of `batch` to librdkafka. Returns when all are queued there (or failed).
    async fn produce_batch(
        &mut self,
        batch: Batch,
        done_rx: &mut mpsc::UnboundedReceiver<Arc<InFlight>>,
    ) {
        let n = batch.len();
        self.in_flight += 1;
        Metrics::add(&self.metrics.counters.output_batches, 1);
        Metrics::add(&self.metrics.counters.output_total, n as u64);
        // +1 guard: the batch cannot complete before every event was handed over.
        let (flight, mut refs) = InFlight::start(n + 1);
        // A local handle, so the topic can borrow it (no copy for constant topics) while
        // `self` is borrowed mutably below.
        let router = self.router.clone();
        let batch_start = Instant::now();
        self.batches = self.batches.wrapping_add(1);
        self.refresh_leaders(batch_start).await;
        let mut bytes = 0u64;
        // Each event is freed once librdkafka has its copy; the receipt is parked in the
        // flight record.
        let mut events = batch.release();
        for ev in events.by_ref() {
            let handle = refs.next();
            self.buf.clear();
            ev.write_json(&self.beat, &mut self.buf);
            let (topic, key, partition) = match self.route(&router, &ev, batch_start).await {
                Ok(r) => r,
                Err((topic, error)) => {
                    handle.fail(Failed {
                        topic,
                        error,
                        payload: self.buf.clone(),
                    });
                    handle.settle(&self.ctx_done);
                    continue;
                }
            };
            let payload = std::mem::take(&mut self.buf);
            if self
                .send(
                    handle,
                    &topic,
                    partition,
                    key.as_deref(),
                    &payload,
                    Some(ev.timestamp.div_euclid(1_000_000)),
                    done_rx,
                )
                .await
            {
                bytes += payload.len() as u64;
            }
            self.buf = payload;
        }
        // Once per batch: a shared counter per message costs more than it tells.
        Metrics::add(&self.metrics.counters.output_write_bytes, bytes);
        *flight.batch.lock().unwrap_or_else(|e| e.into_inner()) = Some(events.into_receipt());
        // The guard, and the handle of any event the batch did not yield after all.
        refs.settle_rest(&self.ctx_done);
    }

    /// Send one message, waiting while librdkafka's queue is full (this is what pauses the
    /// inputs). Completed batches are acked meanwhile so the registry keeps moving. Returns
    /// whether librdkafka took it (false: it failed for good and was settled as failed).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        mut flight: FlightRef,
        topic: &str,
        mut partition: i32,
        key: Option<&[u8]>,
        payload: &[u8],
        timestamp: Option<i64>,
        done_rx: &mut mpsc::UnboundedReceiver<Arc<InFlight>>,
    ) -> bool {
        let mut waited = Duration::ZERO;
        loop {
            let fatal = &self.native.producer().context().fatal;
            // A plain load first: no read-modify-write per message on the hot path.
            if fatal.load(Ordering::Acquire) && fatal.swap(false, Ordering::AcqRel) {
                self.recreate().await;
            }
            let m = native::Message {
                partition,
                key,
                payload,
                timestamp,
            };
            let (e, back) = match self.native.produce(topic, &m, flight) {
                Ok(()) => return true,
                Err(failed) => failed,
            };
            // On error librdkafka did not take the message: the handle is ours again.
            flight = back;
            match error_code(&e) {
                Some(RDKafkaErrorCode::Fatal) => {
                    // Seen before the error callback ran: mark it, recreate on the next turn.
                    self.native
                        .producer()
                        .context()
                        .fatal
                        .store(true, Ordering::Release);
                }
                Some(RDKafkaErrorCode::QueueFull) => {
                    while let Ok(f) = done_rx.try_recv() {
                        self.finish(f).await;
                    }
                    let step = Duration::from_millis(5);
                    tokio::time::sleep(step).await;
                    waited += step;
                    if waited >= Duration::from_secs(30) {
                        tracing::warn!("Kafka producer queue full for 30s (brokers slow or down); inputs are paused");
                        waited = Duration::ZERO;
                    }
                }
                Some(RDKafkaErrorCode::UnknownPartition)
                    if partition >= 0 && self.partitioner.keyless(key) =>
                {
                    // A keyless event's partition from newer metadata than librdkafka's
                    // (partitions were added): librdkafka chooses instead.
                    partition = rdkafka::producer::PARTITION_UA;
                }
                Some(code) if is_permanent(code) => {
                    flight.fail(Failed {
                        topic: topic.to_string(),
                        error: e.to_string(),
                        payload: payload.to_vec(),
                    });
                    flight.settle(&self.ctx_done);
                    return false;
                }
                _ => {
                    Metrics::add(&self.metrics.counters.output_write_errors, 1);
                    tracing::warn!(error = %e, topic, "producing to Kafka failed; retrying");
                    self.backoff.wait().await;
                }
            }
        }
    }

    /// A batch is settled: dead-letter its rejected events (fsynced), then ack it.
    async fn finish(&mut self, flight: Arc<InFlight>) {
        let Some(batch) = flight
            .batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        self.in_flight = self.in_flight.saturating_sub(1);
        let failed = std::mem::take(&mut *flight.failed.lock().unwrap_or_else(|e| e.into_inner()));
        if failed.is_empty() {
            self.backoff.reset();
            batch.ack();
            return;
        }
        for f in &failed {
            let kind = f.error.split(':').next().unwrap_or_default().to_string();
            if self.logged.insert(kind) {
                let sample =
                    String::from_utf8_lossy(&f.payload[..f.payload.len().min(512)]).to_string();
                tracing::warn!(
                    topic = %f.topic,
                    error = %f.error,
                    sample = %sample,
                    dead_letter = %self.dlq.dir().display(),
                    "Kafka rejected an event for good; it goes to the dead-letter file (further events with this error are only counted)"
                );
            }
        }
        let entries: Vec<Entry<'_>> = failed
            .iter()
            .map(|f| Entry {
                destination: Destination::Topic(&f.topic),
                error: &f.error,
                event: &f.payload,
            })
            .collect();
        let mut backoff = Backoff::new(self.cfg.backoff.init.0, self.cfg.backoff.max.0);
        while let Err(e) = self.dlq.write(&entries) {
            tracing::error!(error = %e, dir = %self.dlq.dir().display(), "writing the Kafka dead-letter file failed; retrying (events stay unacked)");
            backoff.wait().await;
        }
        Metrics::add(&self.metrics.counters.output_failed, failed.len() as u64);
        batch.ack_with_dropped(failed.len());
    }

    async fn retry(&mut self, r: Retry, done_rx: &mut mpsc::UnboundedReceiver<Arc<InFlight>>) {
        Metrics::add(&self.metrics.counters.output_write_errors, 1);
        // A keyless event may go elsewhere this time: its partition may have lost its leader.
        let partition = if self.partitioner.keyless(r.key.as_deref()) {
            rdkafka::producer::PARTITION_UA
        } else {
            r.partition
        };
        if self
            .send(
                r.flight,
                &r.topic,
                partition,
                r.key.as_deref(),
                &r.payload,
                r.timestamp,
                done_rx,
            )
            .await
        {
            Metrics::add(
                &self.metrics.counters.output_write_bytes,
                r.payload.len() as u64,
            );
        }
    }

    /// After a fatal idempotence error librdkafka refuses to produce: start a new producer.
    /// The old one's queued messages come back as failed deliveries and are sent again.
    async fn recreate(&mut self) {
        loop {
            match build_producer(&self.cfg, self.ctx_done.clone(), self.ctx_retry.clone()) {
                Ok(p) => {
                    let new = Topics::new(Arc::new(p), &self.cfg.headers);
                    // The old topic handles go first, then the old producer is flushed.
                    let old = std::mem::replace(&mut self.native, new).producer().clone();
                    let reason = old
                        .client()
                        .fatal_error()
                        .map(|(code, why)| format!("{code:?}: {why}"))
                        .unwrap_or_default();
                    tracing::warn!(reason = %reason, "Kafka producer hit a fatal error; started a new one, its unsent messages are sent again");
                    // Purged messages come back as failed deliveries (retriable) and go to the
                    // new producer; flushing serves those reports before the old one is dropped.
                    tokio::task::spawn_blocking(move || {
                        old.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
                        let _ = old.flush(Duration::from_secs(10));
                    });
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "recreating the Kafka producer failed; retrying");
                    self.backoff.wait().await;
                }
            }
        }
    }
}

/// Where the dead-letter files go: `dead_letter.path`, else `<path.data>/kafka-dlq`.
pub fn dead_letter_dir(cfg: &KafkaConfig, data: &std::path::Path) -> PathBuf {
    cfg.dead_letter
        .path
        .clone()
        .unwrap_or_else(|| data.join("kafka-dlq"))
}

pub async fn run(
    cfg: KafkaConfig,
    mut consumer: Consumer,
    beat: Arc<BeatInfo>,
) -> Result<(), OutputError> {
    let finite_timeout = passthrough(&cfg.librdkafka)?.iter().any(|(k, v)| {
        matches!(k.as_str(), "message.timeout.ms" | "delivery.timeout.ms") && v != "0"
    });
    if finite_timeout && cfg.required_acks == -1 {
        tracing::warn!("output.kafka.librdkafka sets a finite message timeout with the idempotent producer: timed-out messages are sent again by oxibeat, but an idempotent producer may stall until it can bump its epoch; leave the timeout at 0 (oxibeat's default) unless you need it");
    }
    if cfg.required_acks == 0 {
        tracing::warn!("output.kafka.required_acks = 0: Kafka confirms nothing, events can be lost without notice");
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel();
    let producer = build_producer(&cfg, done_tx.clone(), retry_tx.clone())?;
    let router = cfg.topic_router().map_err(KafkaError::from)?;
    let key = match &cfg.key {
        Some(k) => Some(FormatString::parse(k, "output.kafka.key").map_err(KafkaError::from)?),
        None => None,
    };
    let partitioner = Partitioner::new(cfg.partition.as_ref())?;
    let native = Topics::new(Arc::new(producer), &cfg.headers);
    let dlq_dir = cfg
        .dead_letter
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("data/kafka-dlq"));
    let dlq = DeadLetter::new(&cfg.dead_letter, dlq_dir, super::replay::NAME);
    let bulk = cfg.bulk_max_size.max(1);
    let backoff = Backoff::new(cfg.backoff.init.0, cfg.backoff.max.0);
    let mut r = Runner {
        metrics: consumer.metrics().clone(),
        beat,
        native,
        ctx_done: done_tx,
        ctx_retry: retry_tx,
        router: Arc::new(router),
        key,
        partitioner,
        topics: TopicCache {
            known: HashMap::new(),
            bad: HashMap::new(),
            last: None,
            refresh: None,
        },
        batches: 0,
        dlq,
        backoff,
        buf: Vec::with_capacity(4096),
        logged: Default::default(),
        in_flight: 0,
        cfg,
    };
    tracing::info!(hosts = %r.cfg.hosts.join(","), "Kafka output started");
    let mut open = true;
    loop {
        if !open && r.in_flight == 0 {
            break;
        }
        tokio::select! {
            biased;
            Some(f) = done_rx.recv() => {
                r.finish(f).await;
            }
            Some(rt) = retry_rx.recv() => r.retry(rt, &mut done_rx).await,
            b = consumer.next_batch(bulk), if open => match b {
                Some(b) => {
                    r.produce_batch(b, &mut done_rx).await;
                }
                None => open = false,
            },
        }
    }
    // Everything was acked; nothing left in librdkafka's queue.
    let _ = r.native.producer().flush(Duration::from_secs(5));
    Ok(())
}

/// How long `test output` waits for a broker that fails (refused, unresolvable, TLS or SASL
/// errors) before saying so, and for a connection to be set up at all.
const CHECK_CONNECT: Duration = Duration::from_secs(2);
/// How long `test output` waits in all (slow but live brokers, long handshakes).
const CHECK_TOTAL: Duration = Duration::from_secs(10);

/// What to do about a failed connection, from the error code and librdkafka's reasons.
pub fn connect_advice(code: Option<RDKafkaErrorCode>, reasons: &str) -> &'static str {
    use RDKafkaErrorCode as C;
    // Broker names carry the protocol ("sasl_ssl://host:9092/bootstrap"): not a TLS hint.
    let mut r = reasons.to_ascii_lowercase();
    for scheme in ["sasl_ssl://", "sasl_plaintext://", "ssl://", "plaintext://"] {
        r = r.replace(scheme, "");
    }
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&[
        "connection refused",
        "no route to host",
        "network is unreachable",
    ]) {
        "check that the brokers are reachable at output.kafka.hosts (host, port, firewall) and \
         that the port is a Kafka listener"
    } else if has(&["ssl", "certificate", "tls", "handshake"]) {
        "check output.kafka.ssl (certificate_authorities, certificate/key, verification_mode) \
         against the brokers' certificates, and that these ports are TLS listeners"
    } else if has(&["sasl", "authentication"])
        || matches!(code, Some(C::Authentication | C::SaslAuthenticationFailed))
    {
        "check output.kafka.sasl (mechanism, username, password) against the users the \
         brokers know, and that these ports are SASL listeners"
    } else if has(&["authoriz", "not authorized"])
        || matches!(
            code,
            Some(C::ClusterAuthorizationFailed | C::TopicAuthorizationFailed)
        )
    {
        "grant this user Describe on the cluster and its topics (Kafka ACLs)"
    } else if has(&["resolve", "name or service not known", "getaddrinfo"])
        || matches!(code, Some(C::Resolve))
    {
        "check the host names in output.kafka.hosts (they do not resolve)"
    } else if has(&[
        "refused",
        "timed out",
        "timeout",
        "brokers are down",
        "transport",
    ]) || matches!(
        code,
        Some(C::BrokerTransportFailure | C::AllBrokersDown | C::MessageTimedOut)
            | Some(C::OperationTimedOut | C::RequestTimedOut)
    ) {
        "check that the brokers are reachable at output.kafka.hosts (host, port, firewall) and \
         that the port is a Kafka listener"
    } else {
        "check output.kafka.hosts and that the ssl/sasl settings match the brokers' listeners"
    }
}

/// `oxibeat test output`: connect, fetch metadata, describe brokers and topics. Gives up
/// after about `CHECK_CONNECT` when every attempt fails (a closed port, a TLS or SASL error),
/// after `CHECK_TOTAL` at most otherwise.
pub fn check(cfg: &KafkaConfig) -> Result<String, KafkaError> {
    let router = cfg.topic_router()?;
    if let Some(k) = &cfg.key {
        FormatString::parse(k, "output.kafka.key")?;
    }
    Partitioner::new(cfg.partition.as_ref())?;
    let (done, _d) = mpsc::unbounded_channel();
    let (retry, _r) = mpsc::unbounded_channel();
    let mut client = client_config(cfg)?;
    let setup_timeout = "socket.connection.setup.timeout.ms";
    if !cfg.librdkafka.contains_key(setup_timeout) {
        client.set(setup_timeout, CHECK_CONNECT.as_millis().to_string());
    }
    let p: BaseProducer<Ctx> = client
        .create_with_context(Ctx::new(done, retry).masking(&client))
        .map_err(client_error)?;
    let hosts = cfg.hosts.join(",");
    // Ask in short rounds; between rounds, serve the client's error events (TLS handshake,
    // SASL, refused connections arrive there). Stop at a definitive error, after
    // CHECK_CONNECT when every attempt failed with an error, after CHECK_TOTAL at most.
    let started = Instant::now();
    let md = loop {
        match p.client().fetch_metadata(None, Duration::from_millis(250)) {
            Ok(md) => break md,
            Err(e) => {
                for _ in 0..5 {
                    p.poll(Duration::from_millis(20));
                }
                let detail = p
                    .context()
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let waited = started.elapsed();
                let gave_up = p.context().gave_up.load(Ordering::Acquire);
                let failing = !detail.is_empty() && waited >= CHECK_CONNECT;
                if !(gave_up || failing || waited >= CHECK_TOTAL) {
                    continue;
                }
                let reason = if detail.is_empty() {
                    e.to_string()
                } else {
                    format!("{e} ({})", detail.join("; "))
                };
                return Err(KafkaError::Connect {
                    advice: connect_advice(error_code(&e), &reason),
                    hosts,
                    reason,
                });
            }
        }
    };
    let mut out = format!("kafka output: connected to {hosts}\nbrokers:\n");
    for b in md.brokers() {
        out.push_str(&format!("  {} {}:{}\n", b.id(), b.host(), b.port()));
    }
    let constants = router.constants();
    let mut refused = Vec::new();
    out.push_str("topics:\n");
    for t in &constants {
        let listed = md
            .topics()
            .iter()
            .find(|x| x.name() == t && x.error().is_none());
        if let Some(x) = listed {
            out.push_str(&format!("  {t}: {} partitions\n", x.partitions().len()));
            continue;
        }
        // Not in the full list: a broker leaves out the topics this client may not describe.
        // Asked by name, it says why (unknown, not authorised, ...).
        match fetch_partitions(p.client(), t, Duration::from_secs(5)) {
            Lookup::Partitions(m) => out.push_str(&format!("  {t}: {} partitions\n", m.partitions)),
            Lookup::Bad(why) | Lookup::Unavailable(why) => {
                out.push_str(&format!("  {t}: {why}\n"));
                refused.push(why);
            }
        }
    }
    if !refused.is_empty() {
        return Err(KafkaError::Topics {
            hosts,
            reason: refused.join("; "),
        });
    }
    Ok(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flight_is_handed_back_once_by_its_last_settle_and_then_freed() {
        use rdkafka::util::IntoOpaque;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (flight, mut refs) = InFlight::start(4);
        // The local reference and the handles' one.
        assert_eq!(Arc::strong_count(&flight), 2);
        let a = refs.next();
        // Through librdkafka and back, as a delivery report does.
        let b = unsafe { FlightRef::from_ptr(refs.next().into_ptr()) };
        let c = refs.next();
        c.fail(Failed {
            topic: "t".into(),
            error: "e".into(),
            payload: b"x".to_vec(),
        });
        a.settle(&tx);
        c.settle(&tx);
        b.settle(&tx);
        assert!(rx.try_recv().is_err(), "the guard is still out");
        refs.settle_rest(&tx);
        let back = rx
            .try_recv()
            .expect("the last settle hands the flight back");
        assert!(Arc::ptr_eq(&back, &flight));
        assert!(rx.try_recv().is_err(), "handed back once");
        assert_eq!(back.failed.lock().unwrap().len(), 1);
        drop(back);
        // Nothing leaked: the handles' reference was taken back.
        assert_eq!(Arc::strong_count(&flight), 1);
    }

    #[test]
    #[should_panic(expected = "more FlightRefs than settles")]
    fn no_more_handles_than_settles() {
        let (_flight, mut refs) = InFlight::start(1);
        let _one = refs.next();
        let _two = refs.next();
    }

    #[test]
    fn advice_fits_the_error() {
        use RDKafkaErrorCode as C;
        let refused = "Meta data fetch error: BrokerTransportFailure (Local: Broker transport failure) (127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT); 1/1 brokers are down)";
        assert!(connect_advice(Some(C::BrokerTransportFailure), refused).contains("reachable"));
        let refused_tls = "Meta data fetch error: BrokerTransportFailure (Local: Broker transport failure) (sasl_ssl://127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT); 1/1 brokers are down)";
        let a = connect_advice(Some(C::BrokerTransportFailure), refused_tls);
        assert!(
            a.contains("reachable"),
            "a refused TLS port is unreachable, not a TLS error: {a}"
        );
        let tls = "Meta data fetch error: ... (ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed)";
        let a = connect_advice(Some(C::BrokerTransportFailure), tls);
        assert!(
            a.contains("output.kafka.ssl") && !a.contains("reachable"),
            "{a}"
        );
        let sasl = "Meta data fetch error: ... (sasl_plaintext://127.0.0.1:9092/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512)";
        let a = connect_advice(Some(C::Authentication), sasl);
        assert!(
            a.contains("output.kafka.sasl") && !a.contains("reachable"),
            "{a}"
        );
        let dns = "Meta data fetch error: ... (nohost:9092/bootstrap: Failed to resolve 'nohost:9092': Name or service not known)";
        assert!(connect_advice(Some(C::Resolve), dns).contains("do not resolve"));
    }

    #[test]
    fn a_missing_or_denied_topic_is_not_called_unreachable() {
        use RDKafkaErrorCode as C;
        let missing = topic_hint(C::UnknownTopicOrPartition);
        assert!(missing.contains("create the topic"), "{missing}");
        let denied = topic_hint(C::TopicAuthorizationFailed);
        assert!(denied.contains("kafka-acls.sh"), "{denied}");
        for h in [missing, denied] {
            assert!(!h.contains("reachable"), "{h}");
        }
    }

    #[test]
    fn properties_are_checked_at_load_without_showing_values() {
        let c = cfg("[librdkafka]\n\"no.such.property\" = \"x\"");
        let e = check_properties(&c).unwrap_err().to_string();
        assert!(e.contains("no.such.property"), "{e}");
        let c = cfg("[librdkafka]\n\"acks\" = \"hunter2-sekrit\"");
        let e = check_properties(&c).unwrap_err().to_string();
        assert!(
            e.contains("\"acks\"") && !e.contains("hunter2-sekrit"),
            "{e}"
        );
        check_properties(&cfg("[librdkafka]\n\"linger.ms\" = 5")).unwrap();
    }

    fn cfg(text: &str) -> KafkaConfig {
        toml::from_str(&format!("hosts = [\"a:9092\", \"b:9092\"]\n{text}")).expect("config")
    }

    #[test]
    fn defaults_map_to_librdkafka() {
        let c = client_config(&cfg("")).unwrap();
        assert_eq!(c.get("bootstrap.servers"), Some("a:9092,b:9092"));
        assert_eq!(c.get("acks"), Some("-1"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("compression.type"), Some("lz4"));
        assert_eq!(c.get("message.timeout.ms"), Some("0"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("queue.buffering.max.kbytes"), Some("32768"));
        let c = client_config(&cfg("required_acks = 1\ncompression = \"zstd\"")).unwrap();
        assert_eq!(c.get("enable.idempotence"), Some("false"));
        assert_eq!(c.get("compression.type"), Some("zstd"));
    }

    #[test]
    fn sasl_tls_and_passthrough() {
        let dir = tempfile::tempdir().unwrap();
        let ca1 = dir.path().join("a.pem");
        let ca2 = dir.path().join("b.pem");
        std::fs::write(&ca1, "CA-ONE").unwrap();
        std::fs::write(&ca2, "CA-TWO").unwrap();
        let c = client_config(&cfg(&format!(
            "[sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"u\"\npassword = \"p\"\n\
             [ssl]\ncertificate_authorities = [{:?}, {:?}]\nverification_mode = \"certificate\"\n\
             [librdkafka]\n\"socket.keepalive.enable\" = true\n",
            ca1.display().to_string(),
            ca2.display().to_string()
        )))
        .unwrap();
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(c.get("sasl.username"), Some("u"));
        assert_eq!(c.get("sasl.password"), Some("p"));
        let pem = c.get("ssl.ca.pem").unwrap();
        assert!(pem.contains("CA-ONE") && pem.contains("CA-TWO"));
        assert_eq!(c.get("enable.ssl.certificate.verification"), Some("true"));
        assert_eq!(c.get("ssl.endpoint.identification.algorithm"), Some("none"));
        assert_eq!(c.get("socket.keepalive.enable"), Some("true"));
        // Filebeat-style top-level credentials default to PLAIN.
        let c = client_config(&cfg("username = \"u\"\npassword = \"p\"")).unwrap();
        assert_eq!(c.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(c.get("sasl.mechanism"), Some("PLAIN"));
        // A missing CA file names the file.
        let e = client_config(&cfg(
            "ssl = { certificate_authorities = [\"/nope/ca.pem\"] }",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("/nope/ca.pem"), "{e}");
    }

    #[test]
    fn secret_values_are_masked_in_what_librdkafka_says() {
        let mut c = ClientConfig::new();
        c.set("sasl.password", "hunter2-pw")
            .set("ssl.key.password", "20261201")
            .set("sasl.oauthbearer.client.secret", "cl-secret")
            .set("sasl.username", "alice")
            .set("ssl.key.location", "/etc/key.pem")
            .set("my.private.token", "abc");
        let secrets = secret_values(&c);
        // Public names and the 3-byte value are not masked.
        assert_eq!(secrets.len(), 3, "{secrets:?}");
        let line = "conf: sasl.password=hunter2-pw ssl.key.password=20261201 \
                    secret=cl-secret user alice key /etc/key.pem";
        let shown = redact(line, &secrets);
        for s in ["hunter2-pw", "20261201", "cl-secret"] {
            assert!(!shown.contains(s), "{shown}");
        }
        assert!(
            shown.contains("alice") && shown.contains("/etc/key.pem"),
            "{shown}"
        );
        assert!(matches!(
            redact("nothing here", &secrets),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn repeated_client_errors_are_held_back() {
        let (done, _d) = mpsc::unbounded_channel();
        let (retry, _r) = mpsc::unbounded_channel();
        let ctx = Ctx::new(done, retry);
        let down = RdError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(ctx.repeated(&down, "1/1 brokers are down"), Some(0));
        // rdkafka's duplicate call, and librdkafka's next report with other counts.
        assert_eq!(ctx.repeated(&down, "1/1 brokers are down"), None);
        assert_eq!(ctx.repeated(&down, "0/1 brokers are down"), None);
        let refused = RdError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        let reason = "b:9092/bootstrap: Connect to ipv4#10.0.0.1:9092 failed: Connection refused";
        assert_eq!(ctx.repeated(&refused, reason), Some(0));
        assert_eq!(
            ctx.repeated(
                &refused,
                &format!("{reason} (after 0ms in state CONNECT, 3 identical error(s) suppressed)")
            ),
            None
        );
        assert_eq!(
            ctx.repeated(&refused, "b:9092/bootstrap: SSL handshake failed"),
            Some(0),
            "another cause is logged at once"
        );
        assert_eq!(
            ctx.repeated(
                &refused,
                "c:9092/bootstrap: Connect to ipv4#10.0.0.2:9092 failed: Connection refused"
            ),
            Some(0),
            "another broker is logged at once"
        );
    }

    #[test]
    fn test_output_stops_at_definitive_client_errors_only() {
        assert!(is_definitive(RDKafkaErrorCode::AllBrokersDown));
        assert!(is_definitive(RDKafkaErrorCode::Authentication));
        assert!(is_definitive(RDKafkaErrorCode::SSL));
        assert!(!is_definitive(RDKafkaErrorCode::BrokerTransportFailure));
        assert!(!is_definitive(RDKafkaErrorCode::OperationTimedOut));
    }

    #[test]
    fn refused_topics_get_the_fix_for_their_error() {
        assert!(topic_hint(RDKafkaErrorCode::TopicAuthorizationFailed).contains("kafka-acls"));
        assert!(topic_hint(RDKafkaErrorCode::UnknownTopicOrPartition).contains("create the topic"));
        assert!(topic_hint(RDKafkaErrorCode::InvalidTopic).contains("topic name"));
    }

    #[test]
    fn permanent_errors() {
        assert!(is_permanent(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(is_permanent(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert!(is_permanent(RDKafkaErrorCode::UnknownTopicOrPartition));
        assert!(!is_permanent(RDKafkaErrorCode::MessageTimedOut));
        assert!(!is_permanent(RDKafkaErrorCode::AllBrokersDown));
        assert!(!is_permanent(RDKafkaErrorCode::NotLeaderForPartition));
    }
}
