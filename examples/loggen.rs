//! loggen: a realistic, deterministic log generator for oxibeat demos, tests,
//! benchmarks and the machine-learning jobs of the Elastic stack.
//!
//! Run it with `cargo run --release --example loggen -- --output DIR [OPTIONS]`,
//! for example:
//!
//! ```text
//! # a live demo: three files (nginx, app, json), 50 events/s for ten minutes
//! loggen --output /tmp/logs --files 3 --rate 50 --duration 10m
//! # a benchmark input: ten million nginx lines of about 200 bytes
//! loggen --output /tmp/bench --format nginx --count 10000000 --line-bytes 200
//! # rotation under load, checked afterwards with the summary
//! loggen --output /tmp/rot --format app --rate 2000 --duration 60s --rotate-size 1MiB \
//!        --rotate-mode copytruncate --rotate-keep 10 --summary-json /tmp/rot.json
//! # two days of history for an ML job, with an anomaly 36 hours in
//! loggen --output /tmp/ml --format json --start-time now-2d --rate 5 --duration 2d \
//!        --anomaly error-burst,5xx-spike --anomaly-at 36h --anomaly-duration 30m --seed 7
//! ```
//!
//! The run stops at `--count` or `--duration`, whichever comes first, or on
//! SIGINT/SIGTERM (files flushed, summary printed, exit status 0). Exit status
//! 1 is an I/O error while writing, 2 invalid options or an unusable output
//! directory. Tests: `cargo test --example loggen`.
//!
//! Formats (`--format`):
//! - `nginx`: nginx "combined" access log lines with public client IPs (geoip
//!   friendly), browsers, bots and tools as user agents, a realistic status mix.
//! - `app`: `2026-11-25T10:00:00.123Z ERROR [com.example.OrderService] message`
//!   lines; some ERROR events are followed by a Java stack trace whose lines
//!   start with a tab (`\tat ...`, `\t... 7 more`) or with `Caused by: `.
//!   Both usual multiline settings group them correctly: the timestamp pattern
//!   `^\d{4}-\d{2}-\d{2}T` with `negate: true, match: after`, and Filebeat's Java
//!   pattern `^[[:space:]]+(at|\.{3})[[:space:]]+\b|^Caused by:` with
//!   `negate: false, match: after`.
//! - `json`: one ECS-style object per line (`@timestamp`, `log.level`,
//!   `message`, `service.name`, `trace.id`, `http.response.status_code`, ...).
//! - `mixed`: the files take the three formats in turn (nginx, app, json, nginx, ...).
//!
//! Files are named `<format>-<k>.log` (`nginx-0.log`, `app-0.log`, `json-0.log`,
//! `nginx-1.log`, ...). Existing files of those names, and their rotated
//! siblings (`nginx-0.log.1`, ...), are replaced at start.
//!
//! # Sequence numbers
//!
//! Every event carries a sequence number so a test can prove that nothing was
//! lost or duplicated. Sequence numbers are per file (per `<format>-<k>.log`
//! name), start at 0 and increase by exactly 1 per event written to that file;
//! they continue across rotations (the rotated `x.log.1`, `x.log.2`, ... hold
//! the older ones). An event is one line, or for app events with a stack trace
//! the first line plus its continuation lines.
//! - nginx: the last query parameter of the request URL:
//!   `"GET /api/items?id=42&seq=17 HTTP/1.1"` (`/index.html?seq=17` when the
//!   URL had no query string).
//! - app: the last token of the first line of the event:
//!   `... Failed to process order 123 seq=17`; continuation lines have no seq.
//! - json: a top-level key `"seq":17`.
//!
//! The final summary (stderr, and `--summary-json FILE`) gives the number of
//! events and the last seq of every file.
//!
//! # Time
//!
//! By default timestamps are the wall clock and `--rate` paces the writes.
//! With `--start-time` (e.g. `2026-11-25T00:00:00Z` or `now-7d`) the clock is
//! simulated: event n of the run is stamped `start + n / rate` and everything is
//! written as fast as possible. That backfills history for ML jobs in seconds,
//! and with `--seed` the output is byte-for-byte reproducible. `--duration`
//! and the anomaly window are measured on the same clock as the timestamps.

use clap::{Parser, ValueEnum};
use std::fmt::{self, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const AFTER_HELP: &str = "\
SEQUENCE NUMBERS:
  Every event carries a sequence number, per file, starting at 0 and increasing
  by 1 per event (continuing across rotations):
    nginx  last query parameter of the URL: \"GET /api/items?id=42&seq=17 HTTP/1.1\"
           (\"/index.html?seq=17\" when the URL had no query)
    app    last token of the event's first line: \"... Failed to process order 123 seq=17\"
           (stack-trace continuation lines carry no seq)
    json   top-level key \"seq\":17
  The summary on stderr (and --summary-json) lists events and last seq per file.

APP STACK TRACES:
  Continuation lines start with a tab (\"\\tat ...\", \"\\t... 7 more\") or \"Caused by: \".
  Group them with the multiline pattern '^\\d{4}-\\d{2}-\\d{2}T' (negate: true, match: after)
  or '^[[:space:]]+(at|\\.{3})[[:space:]]+\\b|^Caused by:' (negate: false, match: after).

CLOCK:
  Without --start-time, timestamps are the wall clock and --rate paces the writes
  (files are flushed at least every 100 ms). With --start-time the clock is simulated
  and the output is written at full speed. --duration and the anomaly window (one
  window shared by all --anomaly kinds) are measured on that same clock.

EXAMPLES:
  loggen --output /tmp/logs --format mixed --files 3 --rate 50 --duration 10m
  loggen --output /tmp/bench --format nginx --count 10000000 --line-bytes 200
  loggen --output /tmp/rot --format app --rate 2000 --duration 60s \\
         --rotate-size 1MiB --rotate-mode copytruncate --rotate-keep 10
  loggen --output /tmp/ml --format json --start-time now-2d --rate 5 --duration 2d \\
         --anomaly error-burst --anomaly 5xx-spike --anomaly-at 36h --anomaly-duration 30m --seed 7

EXIT STATUS: 0 success, 1 I/O error while writing, 2 invalid options or unusable output directory.";

/// Command-line options.
#[derive(Parser, Debug)]
#[command(
    name = "loggen",
    version,
    about = "Realistic log generator (nginx, app with stack traces, ECS JSON) with per-file sequence numbers",
    after_help = AFTER_HELP
)]
struct Opts {
    /// Directory the log files are written to (created if missing).
    #[arg(long, short = 'o', value_name = "DIR")]
    output: PathBuf,

    /// Log format; `mixed` gives the files the formats nginx, app, json in turn.
    #[arg(long, value_enum, default_value_t = FormatArg::Mixed)]
    format: FormatArg,

    /// Number of files, named `<format>-<k>.log`; events are spread evenly (round robin).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    files: u32,

    /// Events per second over all files (0 = as fast as possible). Fractions allowed.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    rate: f64,

    /// Stop after this time (e.g. 500ms, 30s, 10m, 2h, 1d); simulated time with --start-time.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Stop after this many events in total (whichever of --count/--duration comes first).
    #[arg(long)]
    count: Option<u64>,

    /// Rotate a file before it would grow past this size (e.g. 1048576, 512KiB, 10MiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    rotate_size: Option<u64>,

    /// rename: x.log -> x.log.1 (older ones shift up) and a new x.log;
    /// copytruncate: copy x.log to x.log.1, then truncate x.log in place.
    #[arg(long, value_enum, default_value_t = RotateMode::Rename)]
    rotate_mode: RotateMode,

    /// Number of rotated files kept (x.log.1 .. x.log.N); older ones are deleted.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rotate_keep: u32,

    /// Inject an anomaly during the anomaly window (repeatable or comma separated):
    /// error-burst (ERROR lines), 5xx-spike (HTTP 5xx statuses),
    /// new-message (a message type never seen before), and incidents for log search:
    /// disk-full (writes fail with ENOSPC), oom-kill (heap exhausted, container OOM-killed),
    /// tls-expiry (an upstream's certificate expired).
    #[arg(long = "anomaly", value_enum, value_delimiter = ',')]
    anomalies: Vec<AnomalyKind>,

    /// Start of the anomaly window, from the start of the run.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    anomaly_at: Duration,

    /// Length of the anomaly window.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    anomaly_duration: Duration,

    /// Seed of the pseudo-random generator; the same seed gives the same events
    /// (byte-identical output with --start-time). Random when absent (printed in the summary).
    #[arg(long)]
    seed: Option<u64>,

    /// Simulated clock: stamp event n with START + n/rate and write as fast as possible
    /// (RFC 3339 such as 2026-11-25T00:00:00Z, a date, or now-7d). Needs --rate > 0.
    #[arg(long, value_name = "START", value_parser = parse_start_time)]
    start_time: Option<i64>,

    /// Pad the first line of each event to about N bytes (newline included) with a
    /// `pad=` token (nginx: URL query parameter before seq; app: before seq; json: "pad" key).
    /// Longer lines are left as they are (ECS JSON lines are about 400 bytes).
    #[arg(long, value_name = "N")]
    #[arg(value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    line_bytes: Option<u32>,

    /// fsync the files at every flush and before every rotation.
    #[arg(long)]
    fsync: bool,

    /// Also write the final summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Nginx,
    App,
    Json,
    Mixed,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Format {
    Nginx,
    App,
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Nginx => "nginx",
            Format::App => "app",
            Format::Json => "json",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum RotateMode {
    Rename,
    Copytruncate,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum AnomalyKind {
    ErrorBurst,
    #[value(name = "5xx-spike")]
    Spike5xx,
    NewMessage,
    DiskFull,
    OomKill,
    TlsExpiry,
}

impl AnomalyKind {
    fn name(self) -> &'static str {
        match self {
            AnomalyKind::ErrorBurst => "error-burst",
            AnomalyKind::Spike5xx => "5xx-spike",
            AnomalyKind::NewMessage => "new-message",
            AnomalyKind::DiskFull => "disk-full",
            AnomalyKind::OomKill => "oom-kill",
            AnomalyKind::TlsExpiry => "tls-expiry",
        }
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A failure of the generator; `Setup` maps to exit status 2, `Io` to 1.
#[derive(Debug)]
enum GenError {
    /// Invalid option combination or unusable output directory/file.
    Setup(String),
    /// I/O error while writing or rotating.
    Io { what: String, source: io::Error },
}

impl GenError {
    fn exit_code(&self) -> u8 {
        match self {
            GenError::Setup(_) => 2,
            GenError::Io { .. } => 1,
        }
    }
}

impl fmt::Display for GenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenError::Setup(msg) => f.write_str(msg),
            GenError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

fn io_err(what: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> GenError {
    move |source| GenError::Io {
        what: what(),
        source,
    }
}

// ---------------------------------------------------------------------------
// Option parsing helpers
// ---------------------------------------------------------------------------

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of events per second"))?;
    if !r.is_finite() || r < 0.0 {
        return Err(format!("rate must be a finite number >= 0, got `{s}`"));
    }
    Ok(r)
}

/// Parses `500ms`, `30s`, `10m`, `2h`, `1d`, `1h30m` or a plain number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("invalid duration `{s}` (must be >= 0)"));
    }
    let mut total = 0.0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration `{s}` needs a unit (ms, s, m, h, d)"))?;
        if num_end == 0 {
            return Err(format!(
                "invalid duration `{s}` (expected e.g. 30s, 10m, 2h)"
            ));
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("invalid number in duration `{s}`"))?;
        let after = &rest[num_end..];
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let mult = match &after[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => {
                return Err(format!(
                    "unknown unit `{u}` in duration `{s}` (ms, s, m, h, d)"
                ))
            }
        };
        total += n * mult;
        rest = &after[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("invalid duration `{s}`"))
}

/// Parses a byte size: `1048576`, `512K`/`512KiB`/`512KB`, `10M`, `1G` (all binary multiples).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split]
        .parse()
        .map_err(|_| format!("`{s}` is not a byte size (e.g. 1048576, 512KiB, 10MiB)"))?;
    let mult: u64 = match t[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("unknown unit `{u}` in byte size `{s}` (K, M, G)")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("byte size `{s}` is too large"))?;
    if v == 0 {
        return Err("size must be at least 1 byte".into());
    }
    Ok(v)
}

/// Parses `--start-time`: RFC 3339 (`2026-11-25T10:00:00Z`, `...T10:00:00.5+01:00`),
/// a date (`2026-11-25`, midnight UTC), `now` or `now-<duration>`. Returns epoch ms.
fn parse_start_time(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("now") {
        let now = now_ms();
        if rest.is_empty() {
            return Ok(now);
        }
        let d = rest
            .strip_prefix('-')
            .ok_or_else(|| format!("expected now or now-<duration>, got `{s}`"))?;
        let d = parse_duration(d)?;
        return i64::try_from(d.as_millis())
            .ok()
            .and_then(|ms| now.checked_sub(ms))
            .filter(|t| *t >= MIN_START_MS)
            .ok_or_else(|| format!("`{s}` is too far in the past"));
    }
    let bad = || format!("`{s}` is not an RFC 3339 time such as 2026-11-25T00:00:00Z");
    let num = |a: usize, b: usize| -> Result<i64, String> {
        t.get(a..b)
            .filter(|x| x.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|x| x.parse().ok())
            .ok_or_else(bad)
    };
    let b = t.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    if b.len() == 10 {
        return Ok(days * 86_400_000);
    }
    if b.len() < 19 || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b[13] != b':' {
        return Err(bad());
    }
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &t[start..i];
        if frac.is_empty() {
            return Err(bad());
        }
        let mut padded = String::from(frac);
        padded.push_str("00");
        ms = padded[..3].parse().map_err(|_| bad())?;
    }
    let offset_min = match &t[i..] {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let oh = num(i + 1, i + 3)?;
            let om = num(i + 4, i + 6)?;
            let v = oh * 60 + om;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return Err(bad()),
    };
    Ok(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

// ---------------------------------------------------------------------------
// Time formatting (no chrono: civil date algorithms by Howard Hinnant)
// ---------------------------------------------------------------------------

/// Earliest accepted --start-time: 0000-01-01T00:00:00Z.
const MIN_START_MS: i64 = -62_167_219_200_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u64;
    let mp = u64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + u64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i64 - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Civil {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    ms: u32,
}

fn civil(ts_ms: i64) -> Civil {
    let days = ts_ms.div_euclid(86_400_000);
    let rem = ts_ms.rem_euclid(86_400_000) as u32;
    let (y, mo, d) = civil_from_days(days);
    Civil {
        y,
        mo,
        d,
        h: rem / 3_600_000,
        mi: rem / 60_000 % 60,
        s: rem / 1000 % 60,
        ms: rem % 1000,
    }
}

/// `2026-11-25T10:00:00.123Z`
fn write_iso(ts_ms: i64, out: &mut String) {
    let c = civil(ts_ms);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.y, c.mo, c.d, c.h, c.mi, c.s, c.ms
    );
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `25/Nov/2026:10:00:00 +0000`
fn write_nginx_time(ts_ms: i64, out: &mut String) {
    let c = civil(ts_ms);
    let _ = write!(
        out,
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        c.d,
        MONTHS[(c.mo - 1) as usize],
        c.y,
        c.h,
        c.mi,
        c.s
    );
}

// ---------------------------------------------------------------------------
// Deterministic PRNG (xorshift64*, seeded through splitmix64)
// ---------------------------------------------------------------------------

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut s = seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let v = splitmix64(&mut s);
        Rng(if v == 0 { 0x9E37_79B9_7F4A_7C15 } else { v })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when n == 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut r = self.below(total);
        for (item, w) in items {
            if r < u64::from(*w) {
                return item;
            }
            r -= u64::from(*w);
        }
        &items[items.len() - 1].0
    }

    /// Heavy-tailed value in `lo..=hi` (most values near lo).
    fn skewed(&mut self, lo: u64, hi: u64) -> u64 {
        let u = self.unit();
        lo + ((hi - lo) as f64 * u * u * u) as u64
    }
}

// ---------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------

/// Public client ranges (first octets and prefix length). The first ones are
/// in MaxMind's GeoIP2/GeoLite2 test databases used by Elastic's geoip tests;
/// the others are real provider ranges spread over the continents.
const PUBLIC_V4: &[([u8; 4], u8)] = &[
    ([81, 2, 69, 0], 24),    // GB (MaxMind test)
    ([89, 160, 20, 0], 24),  // SE (MaxMind test)
    ([216, 160, 83, 0], 24), // US (MaxMind test)
    ([175, 16, 199, 0], 24), // CN (MaxMind test)
    ([67, 43, 156, 0], 24),  // BT (MaxMind test)
    ([2, 125, 160, 0], 24),  // GB (MaxMind test)
    ([93, 184, 216, 0], 24), // US/EU CDN
    ([151, 101, 0, 0], 16),  // Fastly
    ([104, 16, 0, 0], 13),   // Cloudflare
    ([52, 0, 0, 0], 11),     // AWS us-east
    ([34, 64, 0, 0], 10),    // Google Cloud
    ([78, 46, 0, 0], 15),    // Hetzner DE
    ([90, 0, 0, 0], 9),      // Orange FR
    ([109, 192, 0, 0], 13),  // European ISPs
    ([177, 0, 0, 0], 8),     // Brazil
    ([200, 0, 0, 0], 8),     // Latin America
    ([41, 0, 0, 0], 8),      // Africa
    ([110, 0, 0, 0], 8),     // Asia-Pacific
    ([126, 0, 0, 0], 8),     // Japan (SoftBank)
    ([1, 120, 0, 0], 13),    // Australia/Asia
    ([203, 0, 113, 0], 24),  // documentation range (TEST-NET-3)
];

const PUBLIC_V6: &[&str] = &["2a00:1450:4001:", "2001:4860:4860:", "2a03:2880:f12f:"];

const BROWSER_UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
];

const BOT_UAS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
];

const TOOL_UAS: &[&str] = &[
    "curl/8.5.0",
    "curl/7.88.1",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "Wget/1.21.4",
    "PostmanRuntime/7.42.0",
];

const PROBE_UA: &str = "kube-probe/1.31";
const SCANNER_UA: &str = "Mozilla/5.0 zgrab/0.x";

/// Page and asset paths; `{id}`, `{hash}`, `{word}`, `{page}` are filled at random.
const GET_PATHS: &[(&str, u32)] = &[
    ("/", 8),
    ("/index.html", 3),
    ("/products/{id}", 10),
    ("/category/{word}?page={page}", 5),
    ("/search?q={word}", 6),
    ("/api/items?id={id}", 14),
    ("/api/items/{id}/reviews", 4),
    ("/api/cart", 6),
    ("/api/recommendations?user={id}", 4),
    ("/static/js/app.{hash}.js", 8),
    ("/static/css/main.{hash}.css", 6),
    ("/images/products/{id}.jpg", 12),
    ("/favicon.ico", 3),
    ("/robots.txt", 1),
    ("/sitemap.xml", 1),
    ("/login", 2),
];

const WRITE_PATHS: &[&str] = &[
    "/api/cart/items",
    "/api/orders",
    "/api/checkout",
    "/api/login",
    "/api/items/{id}",
    "/api/users/{id}/preferences",
];

const SCANNER_PATHS: &[&str] = &[
    "/.env",
    "/.git/config",
    "/wp-login.php",
    "/phpmyadmin/index.php",
    "/cgi-bin/luci/;stok=/locale",
    "/actuator/gateway/routes",
];

const WORDS: &[&str] = &[
    "shoes",
    "laptop",
    "coffee",
    "headphones",
    "garden",
    "books",
    "jacket",
    "camera",
    "toys",
    "kitchen",
    "bike",
    "watch",
];

const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://example.com/",
    "https://example.com/products/{id}",
    "https://example.com/search?q={word}",
    "https://t.co/{hash}",
    "https://www.facebook.com/",
];

const SERVICES: &[&str] = &[
    "checkout",
    "cart",
    "catalog",
    "payment",
    "auth",
    "inventory",
];

const USER_NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar", "peggy", "trent", "victor", "walter",
];

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn upper(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
    fn lower(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// A Java exception with its frames and an optional cause.
struct Trace {
    exception: &'static str,
    frames: &'static [&'static str],
    cause: &'static str,
    cause_frames: &'static [&'static str],
    more: u32,
}

const TRACE_ORDER: Trace = Trace {
    exception: "java.lang.IllegalStateException: Inventory reservation failed",
    frames: &[
        "at com.example.inventory.InventoryClient.reserve(InventoryClient.java:88)",
        "at com.example.OrderService.process(OrderService.java:142)",
        "at com.example.OrderController.create(OrderController.java:57)",
        "at java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)",
        "at org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)",
        "at jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658)",
        "at org.apache.tomcat.util.threads.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:659)",
        "at java.base/java.lang.Thread.run(Thread.java:1583)",
    ],
    cause: "java.net.SocketTimeoutException: Read timed out",
    cause_frames: &[
        "at java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)",
        "at java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)",
        "at com.example.inventory.InventoryClient.reserve(InventoryClient.java:84)",
    ],
    more: 7,
};

const TRACE_INVENTORY: Trace = Trace {
    exception: "org.springframework.web.client.HttpServerErrorException$ServiceUnavailable: 503 Service Unavailable",
    frames: &[
        "at org.springframework.web.client.HttpServerErrorException.create(HttpServerErrorException.java:112)",
        "at org.springframework.web.client.DefaultResponseErrorHandler.handleError(DefaultResponseErrorHandler.java:183)",
        "at com.example.inventory.InventoryClient.lookup(InventoryClient.java:61)",
        "at com.example.catalog.ProductService.availability(ProductService.java:77)",
        "at java.base/java.lang.Thread.run(Thread.java:1583)",
    ],
    cause: "java.io.IOException: upstream inventory-svc closed the connection",
    cause_frames: &["at com.example.inventory.InventoryClient.lookup(InventoryClient.java:58)"],
    more: 4,
};

const TRACE_DB: Trace = Trace {
    exception: "org.springframework.jdbc.CannotGetJdbcConnectionException: Failed to obtain JDBC Connection",
    frames: &[
        "at org.springframework.jdbc.datasource.DataSourceUtils.getConnection(DataSourceUtils.java:84)",
        "at org.springframework.jdbc.core.JdbcTemplate.execute(JdbcTemplate.java:376)",
        "at com.example.db.OrderRepository.save(OrderRepository.java:45)",
        "at com.example.OrderService.process(OrderService.java:151)",
        "at java.base/java.lang.Thread.run(Thread.java:1583)",
    ],
    cause: "java.net.ConnectException: Connection refused",
    cause_frames: &[
        "at java.base/sun.nio.ch.Net.pollConnect(Native Method)",
        "at org.postgresql.core.PGStream.createSocket(PGStream.java:243)",
        "at com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)",
    ],
    more: 5,
};

/// A message type of the app/json formats: level, logger, template, weight, trace.
struct Msg {
    level: Level,
    logger: &'static str,
    template: &'static str,
    weight: u32,
    trace: Option<&'static Trace>,
}

const fn msg(level: Level, logger: &'static str, template: &'static str, weight: u32) -> Msg {
    Msg {
        level,
        logger,
        template,
        weight,
        trace: None,
    }
}

const APP_MESSAGES: &[Msg] = &[
    msg(
        Level::Info,
        "com.example.OrderService",
        "Order {order} created for customer {user} total={amount} EUR",
        120,
    ),
    msg(
        Level::Info,
        "com.example.http.RequestLogger",
        "{method} {apipath} completed in {ms}ms status=200",
        250,
    ),
    msg(
        Level::Info,
        "com.example.auth.LoginController",
        "User {user} logged in from {ip}",
        80,
    ),
    msg(
        Level::Info,
        "com.example.PaymentService",
        "Payment {txid} authorized amount={amount} EUR",
        90,
    ),
    msg(
        Level::Info,
        "com.example.cache.CacheManager",
        "Cache refresh completed: {n} entries in {ms}ms",
        30,
    ),
    msg(
        Level::Info,
        "com.example.scheduler.JobRunner",
        "Job {job} finished in {ms}ms",
        20,
    ),
    msg(
        Level::Debug,
        "com.example.inventory.InventoryClient",
        "Reserved {small} units of SKU-{sku} for order {order}",
        60,
    ),
    msg(
        Level::Debug,
        "com.zaxxer.hikari.pool.HikariPool",
        "HikariPool-1 - Pool stats (total=20, active={small}, idle={small}, waiting=0)",
        40,
    ),
    msg(
        Level::Warn,
        "com.example.http.RequestLogger",
        "Slow request: {method} {apipath} took {slow}ms",
        40,
    ),
    msg(
        Level::Warn,
        "com.zaxxer.hikari.pool.HikariPool",
        "HikariPool-1 - Connection is not available, request timed out after {ms}ms",
        10,
    ),
    msg(
        Level::Warn,
        "com.example.PaymentService",
        "Retrying payment {txid} (attempt {attempt}/3)",
        20,
    ),
    msg(
        Level::Warn,
        "com.example.auth.LoginController",
        "Failed login for user {user} from {ip}",
        25,
    ),
    Msg {
        trace: Some(&TRACE_ORDER),
        ..msg(
            Level::Error,
            "com.example.OrderService",
            "Failed to process order {order}",
            12,
        )
    },
    msg(
        Level::Error,
        "com.example.PaymentService",
        "Payment {txid} declined by gateway: code={code}",
        8,
    ),
    Msg {
        trace: Some(&TRACE_INVENTORY),
        ..msg(
            Level::Error,
            "com.example.inventory.InventoryClient",
            "Inventory service unavailable for SKU-{sku}",
            6,
        )
    },
];

/// The error of `--anomaly error-burst`.
const BURST_MESSAGE: Msg = Msg {
    trace: Some(&TRACE_DB),
    ..msg(
        Level::Error,
        "com.example.db.OrderRepository",
        "Could not save order {order}: database db-primary.internal:5432 unreachable",
        1,
    )
};

/// The never-seen-before message of `--anomaly new-message`.
const NEW_MESSAGE: Msg = msg(
    Level::Warn,
    "com.example.ledger.ReconciliationJob",
    "Ledger reconciliation mismatch for account ACC-{acct}: expected={amount} actual={amount} drift detected",
    1,
);

const TRACE_DISK: Trace = Trace {
    exception: "java.io.IOException: No space left on device",
    frames: &[
        "at java.base/java.io.FileOutputStream.writeBytes(Native Method)",
        "at java.base/java.io.FileOutputStream.write(FileOutputStream.java:367)",
        "at com.example.storage.ReceiptWriter.write(ReceiptWriter.java:51)",
        "at com.example.OrderService.complete(OrderService.java:203)",
        "at java.base/java.lang.Thread.run(Thread.java:1583)",
    ],
    cause: "java.nio.file.FileSystemException: /var/lib/checkout/receipts: No space left on device",
    cause_frames: &[
        "at java.base/sun.nio.fs.UnixException.translateToIOException(UnixException.java:100)",
    ],
    more: 3,
};

/// `--anomaly disk-full`: the volume holding receipts is full.
const DISK_FULL_MESSAGE: Msg = Msg {
    trace: Some(&TRACE_DISK),
    ..msg(
        Level::Error,
        "com.example.storage.ReceiptWriter",
        "Could not write receipt for order {order} to /var/lib/checkout/receipts",
        1,
    )
};

const TRACE_OOM: Trace = Trace {
    exception: "java.lang.OutOfMemoryError: Java heap space",
    frames: &[
        "at java.base/java.util.Arrays.copyOf(Arrays.java:3541)",
        "at com.example.catalog.ProductCache.load(ProductCache.java:118)",
        "at com.example.catalog.ProductService.refresh(ProductService.java:64)",
        "at java.base/java.lang.Thread.run(Thread.java:1583)",
    ],
    cause: "",
    cause_frames: &[],
    more: 2,
};

/// `--anomaly oom-kill`: the heap runs out, then the kernel kills the container.
const OOM_MESSAGE: Msg = Msg {
    trace: Some(&TRACE_OOM),
    ..msg(
        Level::Error,
        "com.example.catalog.ProductCache",
        "Cache refresh aborted after {n} entries",
        1,
    )
};

const OOM_KILL_MESSAGE: Msg = msg(
    Level::Error,
    "com.example.runtime.Supervisor",
    "Worker process was OOM-killed by the kernel (exit code 137, memory limit 512Mi); restarting",
    1,
);

const TRACE_TLS: Trace = Trace {
    exception: "javax.net.ssl.SSLHandshakeException: PKIX path validation failed: java.security.cert.CertPathValidatorException: validity check failed",
    frames: &[
        "at java.base/sun.security.ssl.Alert.createSSLException(Alert.java:130)",
        "at java.base/sun.security.ssl.CertificateMessage$T13CertificateConsumer.checkServerCerts(CertificateMessage.java:1357)",
        "at com.example.payment.GatewayClient.authorize(GatewayClient.java:77)",
        "at com.example.PaymentService.charge(PaymentService.java:93)",
        "at java.base/java.lang.Thread.run(Thread.java:1583)",
    ],
    cause: "java.security.cert.CertificateExpiredException: NotAfter: Tue Nov 24 23:59:59 UTC 2026",
    cause_frames: &["at java.base/sun.security.x509.CertificateValidity.valid(CertificateValidity.java:182)"],
    more: 6,
};

/// `--anomaly tls-expiry`: the payment gateway's certificate expired.
const TLS_EXPIRY_MESSAGE: Msg = Msg {
    trace: Some(&TRACE_TLS),
    ..msg(
        Level::Error,
        "com.example.payment.GatewayClient",
        "TLS handshake with payments-gw.example.net:443 failed for payment {txid}",
        1,
    )
};

/// The application's view of `--anomaly 5xx-spike`.
const UPSTREAM_5XX_MESSAGE: Msg = msg(
    Level::Error,
    "com.example.http.UpstreamClient",
    "Upstream call {method} {apipath} failed with HTTP {status5xx}",
    1,
);

// ---------------------------------------------------------------------------
// Event rendering
// ---------------------------------------------------------------------------

/// Which anomalies are active for the event being generated.
#[derive(Copy, Clone, Default, Debug)]
struct Active {
    error_burst: bool,
    spike_5xx: bool,
    new_message: bool,
    disk_full: bool,
    oom_kill: bool,
    tls_expiry: bool,
}

/// Per-file generator state.
struct Gen {
    format: Format,
    rng: Rng,
    seq: u64,
    service: &'static str,
    ip_pool: Vec<String>,
    scratch: String,
}

fn random_ipv4(rng: &mut Rng, out: &mut String) {
    let (base, len) = rng.pick(PUBLIC_V4);
    let base = u32::from_be_bytes(base);
    let host_bits = 32 - u32::from(len);
    let mut host = rng.below(1u64 << host_bits) as u32;
    // avoid .0 and .255 host parts, which look odd as clients
    if host & 0xff == 0 || host & 0xff == 0xff {
        host = (host & !0xff) | (1 + rng.below(254) as u32);
    }
    let ip = (base & !((1u64 << host_bits) as u32).wrapping_sub(1)) | host;
    let [a, b, c, d] = ip.to_be_bytes();
    let _ = write!(out, "{a}.{b}.{c}.{d}");
}

fn random_client_ip(rng: &mut Rng, out: &mut String) {
    if rng.chance(0.03) {
        let _ = write!(
            out,
            "{}{:x}::{:x}",
            rng.pick(PUBLIC_V6),
            rng.below(0xffff),
            rng.range(1, 0xffff)
        );
    } else {
        random_ipv4(rng, out);
    }
}

impl Gen {
    fn new(format: Format, seed: u64, index: u64, ordinal: usize) -> Self {
        let mut rng = Rng::new(seed, index + 1);
        // Returning clients: most requests come from a pool of recurring IPs.
        let ip_pool = (0..400)
            .map(|_| {
                let mut s = String::new();
                random_client_ip(&mut rng, &mut s);
                s
            })
            .collect();
        Gen {
            format,
            rng,
            seq: 0,
            service: SERVICES[ordinal % SERVICES.len()],
            ip_pool,
            scratch: String::with_capacity(512),
        }
    }

    /// Appends one complete event (first line, continuation lines, final newline) to `out`.
    fn render(&mut self, ts_ms: i64, act: Active, pad_to: Option<usize>, out: &mut String) {
        match self.format {
            Format::Nginx => self.render_nginx(ts_ms, act, pad_to, out),
            Format::App => self.render_app(ts_ms, act, pad_to, out),
            Format::Json => self.render_json(ts_ms, act, pad_to, out),
        }
        self.seq += 1;
    }

    fn client_ip(&mut self, out: &mut String) {
        if self.rng.chance(0.85) {
            let i = self.rng.below(self.ip_pool.len() as u64) as usize;
            out.push_str(&self.ip_pool[i]);
        } else {
            random_client_ip(&mut self.rng, out);
        }
    }

    fn render_nginx(&mut self, ts_ms: i64, act: Active, pad_to: Option<usize>, out: &mut String) {
        let start = out.len();
        let rng = &mut self.rng;
        #[derive(PartialEq)]
        enum Client {
            Browser,
            Bot,
            Tool,
            Probe,
            Scanner,
        }
        let client = if act.new_message && rng.chance(0.3) {
            Client::Scanner
        } else {
            match rng.weighted(&[(0u8, 75), (1, 10), (2, 8), (3, 7)]) {
                0 => Client::Browser,
                1 => Client::Bot,
                2 => Client::Tool,
                _ => Client::Probe,
            }
        };
        // client address
        match client {
            Client::Probe => {
                let _ = write!(out, "10.42.{}.{}", rng.below(4), rng.range(2, 250));
            }
            Client::Scanner => {
                let _ = write!(out, "45.148.10.{}", rng.range(2, 250));
            }
            _ => self.client_ip(out),
        }
        let rng = &mut self.rng;
        out.push_str(" - - [");
        write_nginx_time(ts_ms, out);
        out.push_str("] \"");
        let method = match client {
            Client::Probe | Client::Bot | Client::Scanner => "GET",
            _ => *rng.weighted(&[
                ("GET", 800),
                ("POST", 120),
                ("PUT", 30),
                ("DELETE", 20),
                ("HEAD", 20),
                ("OPTIONS", 10),
            ]),
        };
        out.push_str(method);
        out.push(' ');
        let url_start = out.len();
        let path = match client {
            Client::Probe => "/healthz",
            Client::Scanner => rng.pick(SCANNER_PATHS),
            Client::Bot if rng.chance(0.2) => "/robots.txt",
            _ if method == "GET" || method == "HEAD" => rng.weighted(GET_PATHS),
            _ => rng.pick(WRITE_PATHS),
        };
        fill(path, rng, out);
        let kind = if path == "/robots.txt" || path == "/favicon.ico" {
            4
        } else if path.starts_with("/static/") {
            2
        } else if path.starts_with("/images/") {
            3
        } else if path.starts_with("/api/") || path == "/healthz" {
            1
        } else {
            0
        };
        let mut status: u16 = match client {
            Client::Scanner => 404,
            Client::Probe => 200,
            _ => *rng.weighted(&[
                (200u16, 8000),
                (304, 500),
                (301, 150),
                (302, 150),
                (404, 600),
                (401, 100),
                (403, 60),
                (400, 80),
                (499, 20),
                (500, 40),
                (502, 20),
                (503, 20),
                (504, 10),
            ]),
        };
        if method == "POST" && status == 200 && rng.chance(0.3) {
            status = 201;
        }
        if act.spike_5xx && client != Client::Probe && rng.chance(0.5) {
            status = rng.pick(&[500, 502, 503, 503, 504]);
        }
        let bytes = match status {
            304 | 204 => 0,
            _ if method == "HEAD" => 0,
            301 | 302 => 162,
            400..=499 => rng.range(150, 600),
            500..=599 => rng.range(150, 560),
            _ => match kind {
                1 => rng.skewed(2, 8000),
                2 => rng.range(20_000, 350_000),
                3 => rng.skewed(8_000, 900_000),
                4 => rng.range(60, 1200),
                _ => rng.range(4_000, 60_000),
            },
        };
        // tail: everything after the URL
        let tail = &mut self.scratch;
        tail.clear();
        let version = if rng.chance(0.25) {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        let _ = write!(tail, " {version}\" {status} {bytes} \"");
        if client == Client::Browser && rng.chance(0.6) {
            let referrer = rng.pick(REFERRERS);
            fill(referrer, rng, tail);
        } else {
            tail.push('-');
        }
        tail.push_str("\" \"");
        tail.push_str(match client {
            Client::Browser => rng.pick(BROWSER_UAS),
            Client::Bot => rng.pick(BOT_UAS),
            Client::Tool => rng.pick(TOOL_UAS),
            Client::Probe => PROBE_UA,
            Client::Scanner => SCANNER_UA,
        });
        tail.push_str("\"\n");
        let sep = if out[url_start..].contains('?') {
            '&'
        } else {
            '?'
        };
        let seq_len = 5 + digits(self.seq); // "&seq=" + N
        if let Some(n) = pad_to {
            let used = out.len() - start + seq_len + tail.len();
            // "&pad=" (5) plus at least one character
            if n > used + 5 {
                out.push(sep);
                out.push_str("pad=");
                push_pad(rng, n - used - 5, out);
                let _ = write!(out, "&seq={}", self.seq);
            } else {
                let _ = write!(out, "{sep}seq={}", self.seq);
            }
        } else {
            let _ = write!(out, "{sep}seq={}", self.seq);
        }
        out.push_str(tail);
    }

    fn pick_message(&mut self, act: Active) -> &'static Msg {
        let rng = &mut self.rng;
        if act.error_burst && rng.chance(0.6) {
            &BURST_MESSAGE
        } else if act.new_message && rng.chance(0.25) {
            &NEW_MESSAGE
        } else if act.spike_5xx && rng.chance(0.3) {
            &UPSTREAM_5XX_MESSAGE
        } else if act.disk_full && rng.chance(0.4) {
            &DISK_FULL_MESSAGE
        } else if act.oom_kill && rng.chance(0.4) {
            if rng.chance(0.5) {
                &OOM_MESSAGE
            } else {
                &OOM_KILL_MESSAGE
            }
        } else if act.tls_expiry && rng.chance(0.4) {
            &TLS_EXPIRY_MESSAGE
        } else {
            let total: u64 = APP_MESSAGES.iter().map(|m| u64::from(m.weight)).sum();
            let mut r = rng.below(total);
            for m in APP_MESSAGES {
                if r < u64::from(m.weight) {
                    return m;
                }
                r -= u64::from(m.weight);
            }
            &APP_MESSAGES[0]
        }
    }

    fn render_app(&mut self, ts_ms: i64, act: Active, pad_to: Option<usize>, out: &mut String) {
        let start = out.len();
        let m = self.pick_message(act);
        let rng = &mut self.rng;
        write_iso(ts_ms, out);
        out.push(' ');
        out.push_str(m.level.upper());
        out.push_str(" [");
        out.push_str(m.logger);
        out.push_str("] ");
        fill(m.template, rng, out);
        let trace = m.trace.filter(|_| rng.chance(0.7));
        if let Some(t) = trace {
            out.push_str(": ");
            out.push_str(t.exception);
        }
        let suffix = 6 + digits(self.seq); // " seq=N\n"
        if let Some(n) = pad_to {
            let used = out.len() - start + suffix;
            if n > used + 5 {
                out.push_str(" pad=");
                push_pad(rng, n - used - 5, out);
            }
        }
        let _ = writeln!(out, " seq={}", self.seq);
        if let Some(t) = trace {
            write_trace(t, out);
        }
    }

    fn render_json(&mut self, ts_ms: i64, act: Active, pad_to: Option<usize>, out: &mut String) {
        let start = out.len();
        out.push_str("{\"@timestamp\":\"");
        write_iso(ts_ms, out);
        out.push('"');
        let http = !(act.error_burst || act.new_message) && self.rng.chance(0.6);
        let mut trace = None;
        if http {
            let rng = &mut self.rng;
            let method = *rng.weighted(&[("GET", 70), ("POST", 20), ("PUT", 6), ("DELETE", 4)]);
            let mut status: u16 = *rng.weighted(&[
                (200u16, 900),
                (201, 30),
                (400, 15),
                (401, 10),
                (404, 30),
                (500, 8),
                (503, 7),
            ]);
            if status == 201 && method != "POST" {
                status = 200;
            }
            if act.spike_5xx && rng.chance(0.5) {
                status = rng.pick(&[500, 502, 503, 503, 504]);
            }
            let level = match status {
                500.. => Level::Error,
                400.. => Level::Warn,
                _ => Level::Info,
            };
            let path = &mut self.scratch;
            path.clear();
            let template = rng.pick(&[
                "/api/items/{id}",
                "/api/cart",
                "/api/orders",
                "/api/checkout",
                "/api/search?q={word}",
            ]);
            fill(template, rng, path);
            let path_only = path.split('?').next().unwrap_or("");
            let ms = if status >= 500 {
                rng.range(200, 30_000)
            } else {
                rng.skewed(1, 2500)
            };
            let _ = write!(
                out,
                ",\"log.level\":\"{}\",\"log.logger\":\"http.access\",\"message\":\"{method} {} {status} {ms}ms\"",
                level.lower(),
                path_only
            );
            common_json(&mut self.rng, self.service, out);
            let _ = write!(
                out,
                ",\"http.request.method\":\"{method}\",\"url.path\":\"{path_only}\",\"http.response.status_code\":{status},\"event.duration\":{}",
                ms * 1_000_000
            );
            out.push_str(",\"client.ip\":\"");
            self.client_ip(out);
            out.push('"');
        } else {
            let m = self.pick_message(act);
            let rng = &mut self.rng;
            let text = &mut self.scratch;
            text.clear();
            fill(m.template, rng, text);
            let _ = write!(
                out,
                ",\"log.level\":\"{}\",\"log.logger\":\"{}\",\"message\":",
                m.level.lower(),
                m.logger
            );
            json_str(text, out);
            trace = m.trace.filter(|_| rng.chance(0.7));
            common_json(&mut self.rng, self.service, out);
            if std::ptr::eq(m, &UPSTREAM_5XX_MESSAGE) {
                let code = self.rng.pick(&[500, 502, 503, 504]);
                let _ = write!(out, ",\"http.response.status_code\":{code}");
            }
        }
        if let Some(t) = trace {
            let (ty, msg) = t.exception.split_once(": ").unwrap_or((t.exception, ""));
            out.push_str(",\"error.type\":");
            json_str(ty, out);
            out.push_str(",\"error.message\":");
            json_str(msg, out);
            let st = &mut self.scratch;
            st.clear();
            st.push_str(t.exception);
            st.push('\n');
            write_trace(t, st);
            st.pop(); // final newline
            out.push_str(",\"error.stack_trace\":");
            json_str(st, out);
        }
        let suffix = 9 + digits(self.seq); // ,"seq":N}\n
        if let Some(n) = pad_to {
            let used = out.len() - start + suffix;
            // ,"pad":"" is 9 bytes
            if n > used + 9 {
                out.push_str(",\"pad\":\"");
                push_pad(&mut self.rng, n - used - 9, out);
                out.push('"');
            }
        }
        let _ = writeln!(out, ",\"seq\":{}}}", self.seq);
    }
}

/// JSON keys shared by all events of a service (after `message`).
fn common_json(rng: &mut Rng, service: &str, out: &mut String) {
    let _ = write!(
        out,
        concat!(
            ",\"service.name\":\"{svc}\",\"service.version\":\"1.4.2\"",
            ",\"service.environment\":\"production\",\"event.dataset\":\"{svc}.log\"",
            ",\"trace.id\":\"{:016x}{:016x}\",\"transaction.id\":\"{:016x}\""
        ),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        svc = service,
    );
}

fn write_trace(t: &Trace, out: &mut String) {
    for f in t.frames {
        out.push('\t');
        out.push_str(f);
        out.push('\n');
    }
    if !t.cause.is_empty() {
        out.push_str("Caused by: ");
        out.push_str(t.cause);
        out.push('\n');
    }
    for f in t.cause_frames {
        out.push('\t');
        out.push_str(f);
        out.push('\n');
    }
    let _ = writeln!(out, "\t... {} more", t.more);
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn push_pad(rng: &mut Rng, n: usize, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut left = n;
    while left > 0 {
        let mut r = rng.next_u64();
        for _ in 0..left.min(16) {
            out.push(HEX[(r & 15) as usize] as char);
            r >>= 4;
        }
        left -= left.min(16);
    }
}

/// Appends `s` as a JSON string literal.
fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Expands `{name}` placeholders of a template with random values.
fn fill(template: &str, rng: &mut Rng, out: &mut String) {
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            return;
        };
        placeholder(&after[..j], rng, out);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
}

fn placeholder(key: &str, rng: &mut Rng, out: &mut String) {
    let _ = match key {
        "id" => write!(out, "{}", rng.skewed(1, 20_000)),
        "page" => write!(out, "{}", rng.range(1, 12)),
        "hash" => write!(
            out,
            "{:08x}",
            rng.below(16) as u32 * 0x01f3_a5c7 + 0x03b2_c9d1
        ),
        "word" => {
            out.push_str(rng.pick(WORDS));
            Ok(())
        }
        "order" => write!(out, "{}", rng.range(100_000, 999_999)),
        "user" => write!(out, "{}{}", rng.pick(USER_NAMES), rng.below(100)),
        "amount" => write!(out, "{}.{:02}", rng.skewed(1, 2000), rng.below(100)),
        "ip" => {
            random_ipv4(rng, out);
            Ok(())
        }
        "ms" => write!(out, "{}", rng.skewed(1, 900)),
        "slow" => write!(out, "{}", rng.range(1500, 12_000)),
        "n" => write!(out, "{}", rng.range(10, 50_000)),
        "small" => write!(out, "{}", rng.range(1, 20)),
        "sku" => write!(out, "{:05}", rng.below(100_000)),
        "txid" => write!(out, "tx-{:012x}", rng.next_u64() >> 16),
        "acct" => write!(out, "{:08}", rng.below(100_000_000)),
        "attempt" => write!(out, "{}", rng.range(1, 3)),
        "status5xx" => write!(out, "{}", rng.pick(&[500, 502, 503, 504])),
        "job" => {
            out.push_str(rng.pick(&[
                "invoice-export",
                "cache-warmup",
                "report-daily",
                "session-cleanup",
            ]));
            Ok(())
        }
        "code" => {
            out.push_str(rng.pick(&[
                "insufficient_funds",
                "card_expired",
                "do_not_honor",
                "fraud_suspected",
            ]));
            Ok(())
        }
        "method" => {
            out.push_str(rng.pick(&["GET", "GET", "GET", "POST", "PUT", "DELETE"]));
            Ok(())
        }
        "apipath" => {
            out.push_str(rng.pick(&[
                "/api/items",
                "/api/cart",
                "/api/orders",
                "/api/checkout",
                "/api/users/me",
            ]));
            Ok(())
        }
        other => {
            out.push_str(other);
            Ok(())
        }
    };
}

// ---------------------------------------------------------------------------
// Output files and rotation
// ---------------------------------------------------------------------------

/// One output file with size-based rotation.
struct Sink {
    path: PathBuf,
    writer: BufWriter<File>,
    /// Bytes in the current (unrotated) file.
    size: u64,
    /// Bytes written over the run, all rotations included.
    total_bytes: u64,
    rotations: u64,
    dirty: bool,
    fsync: bool,
    rotate_size: Option<u64>,
    mode: RotateMode,
    keep: u32,
}

fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> io::Result<File> {
    // append mode: after a copytruncate, writes continue at offset 0
    OpenOptions::new().create(true).append(true).open(path)
}

impl Sink {
    fn create(path: PathBuf, opts: &Opts) -> Result<Sink, GenError> {
        let setup = |e: io::Error| {
            GenError::Setup(format!(
                "cannot create log file {}: {e} (check the --output directory and its permissions)",
                path.display()
            ))
        };
        remove_rotated_siblings(&path).map_err(setup)?;
        let file = open_append(&path).map_err(setup)?;
        file.set_len(0).map_err(setup)?;
        Ok(Sink {
            writer: BufWriter::with_capacity(64 * 1024, file),
            path,
            size: 0,
            total_bytes: 0,
            rotations: 0,
            dirty: false,
            fsync: opts.fsync,
            rotate_size: opts.rotate_size,
            mode: opts.rotate_mode,
            keep: opts.rotate_keep,
        })
    }

    /// Writes one complete event; rotates first if the event would make the
    /// file grow past the rotation size, so an event is never split.
    fn write_event(&mut self, event: &[u8]) -> Result<(), GenError> {
        if let Some(limit) = self.rotate_size {
            if self.size > 0 && self.size + event.len() as u64 > limit {
                self.rotate()?;
            }
        }
        self.writer
            .write_all(event)
            .map_err(io_err(|| format!("writing {}", self.path.display())))?;
        self.size += event.len() as u64;
        self.total_bytes += event.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), GenError> {
        if !self.dirty {
            return Ok(());
        }
        self.writer
            .flush()
            .map_err(io_err(|| format!("flushing {}", self.path.display())))?;
        if self.fsync {
            self.writer
                .get_ref()
                .sync_data()
                .map_err(io_err(|| format!("fsync of {}", self.path.display())))?;
        }
        self.dirty = false;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), GenError> {
        // Flush first: every byte of the current file belongs to it, and no
        // event is split between the rotated file and the new one.
        self.dirty = true;
        self.flush()?;
        let ctx = |what: &'static str, p: &Path| {
            let p = p.display().to_string();
            io_err(move || format!("rotation: {what} {p}"))
        };
        // x.log.(keep-1) -> x.log.keep (replacing it), ..., x.log.1 -> x.log.2
        for i in (1..self.keep).rev() {
            let from = rotated_path(&self.path, i);
            match fs::rename(&from, rotated_path(&self.path, i + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ctx("renaming", &from)(e)),
            }
        }
        let first = rotated_path(&self.path, 1);
        match self.mode {
            RotateMode::Rename => {
                fs::rename(&self.path, &first).map_err(ctx("renaming", &self.path))?;
                let file = open_append(&self.path).map_err(ctx("creating", &self.path))?;
                // the old handle (now x.log.1) is flushed and closed here
                self.writer = BufWriter::with_capacity(64 * 1024, file);
            }
            RotateMode::Copytruncate => {
                fs::copy(&self.path, &first).map_err(ctx("copying", &self.path))?;
                if self.fsync {
                    File::open(&first)
                        .and_then(|f| f.sync_all())
                        .map_err(ctx("fsync of", &first))?;
                }
                self.writer
                    .get_ref()
                    .set_len(0)
                    .map_err(ctx("truncating", &self.path))?;
            }
        }
        self.size = 0;
        self.rotations += 1;
        Ok(())
    }
}

/// Removes `name.log.<digits>` files left over from an earlier run.
fn remove_rotated_siblings(path: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    let prefix = format!("{name}.");
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let fname = entry.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        if let Some(rest) = fname.strip_prefix(&prefix) {
            if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct FileSummary {
    path: PathBuf,
    format: &'static str,
    events: u64,
    last_seq: Option<u64>,
    rotations: u64,
    bytes: u64,
}

#[derive(Debug)]
struct Summary {
    seed: u64,
    total_events: u64,
    elapsed: Duration,
    stopped_by: &'static str,
    files: Vec<FileSummary>,
}

impl Summary {
    fn to_json(&self, opts: &Opts) -> serde_json::Value {
        let anomalies: Vec<&str> = opts.anomalies.iter().map(|a| a.name()).collect();
        serde_json::json!({
            "seed": self.seed,
            "total_events": self.total_events,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "stopped_by": self.stopped_by,
            "anomalies": anomalies,
            "anomaly_at_secs": opts.anomaly_at.as_secs_f64(),
            "anomaly_duration_secs": opts.anomaly_duration.as_secs_f64(),
            "files": self.files.iter().map(|f| serde_json::json!({
                "path": f.path.display().to_string(),
                "format": f.format,
                "events": f.events,
                "last_seq": f.last_seq,
                "rotations": f.rotations,
                "bytes": f.bytes,
            })).collect::<Vec<_>>(),
        })
    }

    fn print(&self, out: &mut impl Write) -> io::Result<()> {
        let secs = self.elapsed.as_secs_f64();
        let bytes: u64 = self.files.iter().map(|f| f.bytes).sum();
        writeln!(
            out,
            "loggen: {} events, {:.1} MiB in {:.2}s ({:.0} events/s), {} file(s), seed={}, stopped by {}",
            self.total_events,
            bytes as f64 / 1048576.0,
            secs,
            if secs > 0.0 { self.total_events as f64 / secs } else { 0.0 },
            self.files.len(),
            self.seed,
            self.stopped_by
        )?;
        for f in &self.files {
            let last = f
                .last_seq
                .map_or_else(|| "-".to_string(), |s| s.to_string());
            writeln!(
                out,
                "  {}  format={} events={} last_seq={} rotations={} bytes={}",
                f.path.display(),
                f.format,
                f.events,
                last,
                f.rotations,
                f.bytes
            )?;
        }
        Ok(())
    }
}

fn validate(opts: &Opts) -> Result<(), GenError> {
    if opts.start_time.is_some() && opts.rate <= 0.0 {
        return Err(GenError::Setup(
            "--start-time needs --rate > 0: the rate sets the spacing of the simulated timestamps"
                .into(),
        ));
    }
    let unbounded = opts.count.is_none() && opts.duration.is_none();
    if unbounded && (opts.rate <= 0.0 || opts.start_time.is_some()) {
        return Err(GenError::Setup(
            "refusing to write without end as fast as possible: give --count or --duration (or a --rate without --start-time)".into(),
        ));
    }
    Ok(())
}

fn prepare_output(dir: &Path) -> Result<(), GenError> {
    if dir.exists() && !dir.is_dir() {
        return Err(GenError::Setup(format!(
            "output path {} exists and is not a directory; give a directory to --output",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(|e| {
        GenError::Setup(format!(
            "cannot create output directory {}: {e}; give a writable directory to --output",
            dir.display()
        ))
    })
}

/// Assigns formats and names to the files: `<format>-<k>.log`.
fn plan_files(opts: &Opts) -> Vec<(Format, usize, PathBuf)> {
    let mut per_format = [0usize; 3];
    (0..opts.files as usize)
        .map(|i| {
            let format = match opts.format {
                FormatArg::Nginx => Format::Nginx,
                FormatArg::App => Format::App,
                FormatArg::Json => Format::Json,
                FormatArg::Mixed => [Format::Nginx, Format::App, Format::Json][i % 3],
            };
            let k = per_format[format as usize];
            per_format[format as usize] += 1;
            let path = opts.output.join(format!("{}-{k}.log", format.name()));
            (format, k, path)
        })
        .collect()
}

/// Offset of event `n` from the start of the run at `rate` events/s (saturating).
fn schedule(n: u64, rate: f64) -> Duration {
    Duration::try_from_secs_f64(n as f64 / rate).unwrap_or(Duration::MAX)
}

const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Generates events until --count, --duration or `stop`, and returns the summary.
fn run(opts: &Opts, stop: &AtomicBool) -> Result<Summary, GenError> {
    validate(opts)?;
    prepare_output(&opts.output)?;
    let seed = opts.seed.unwrap_or_else(|| {
        let mut s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id());
        splitmix64(&mut s)
    });
    let mut files: Vec<(Gen, Sink)> = Vec::new();
    for (i, (format, k, path)) in plan_files(opts).into_iter().enumerate() {
        let generator = Gen::new(format, seed, i as u64, k);
        files.push((generator, Sink::create(path, opts)?));
    }

    let anomaly_start = opts.anomaly_at;
    let anomaly_end = opts.anomaly_at.saturating_add(opts.anomaly_duration);
    let has = |k| opts.anomalies.contains(&k);
    let (a_burst, a_5xx, a_new) = (
        has(AnomalyKind::ErrorBurst),
        has(AnomalyKind::Spike5xx),
        has(AnomalyKind::NewMessage),
    );
    let (a_disk, a_oom, a_tls) = (
        has(AnomalyKind::DiskFull),
        has(AnomalyKind::OomKill),
        has(AnomalyKind::TlsExpiry),
    );
    let pad_to = opts.line_bytes.map(|n| n as usize);
    let simulated = opts.start_time;
    let rate = opts.rate;

    let t0 = Instant::now();
    let mut last_flush = t0;
    let mut n: u64 = 0;
    let mut buf = String::with_capacity(8192);
    let stopped_by;
    loop {
        if stop.load(Ordering::Relaxed) {
            stopped_by = "signal";
            break;
        }
        if opts.count.is_some_and(|c| n >= c) {
            stopped_by = "count";
            break;
        }
        // Position of this event on the run's timeline.
        let elapsed = match simulated {
            Some(_) => schedule(n, rate),
            None => {
                let now = t0.elapsed();
                if rate > 0.0 {
                    let due = schedule(n, rate);
                    if opts.duration.is_some_and(|d| due >= d) {
                        // the next event would fall after the end: stop now
                        stopped_by = "duration";
                        break;
                    }
                    if now < due {
                        // Ahead of schedule: flush what is pending when idle for
                        // a while, then sleep (never past the next flush deadline).
                        let wait = due - now;
                        if wait >= Duration::from_millis(10)
                            || last_flush.elapsed() >= FLUSH_INTERVAL
                        {
                            flush_all(&mut files)?;
                            last_flush = Instant::now();
                        }
                        std::thread::sleep(wait.min(FLUSH_INTERVAL));
                        continue;
                    }
                }
                now
            }
        };
        if opts.duration.is_some_and(|d| elapsed >= d) {
            stopped_by = "duration";
            break;
        }
        let ts_ms = match simulated {
            Some(start) => start.saturating_add((n as f64 * 1000.0 / rate) as i64),
            None => now_ms(),
        };
        let in_window = elapsed >= anomaly_start && elapsed < anomaly_end;
        let act = Active {
            error_burst: in_window && a_burst,
            spike_5xx: in_window && a_5xx,
            new_message: in_window && a_new,
            disk_full: in_window && a_disk,
            oom_kill: in_window && a_oom,
            tls_expiry: in_window && a_tls,
        };
        let idx = (n % files.len() as u64) as usize;
        let (generator, sink) = &mut files[idx];
        buf.clear();
        generator.render(ts_ms, act, pad_to, &mut buf);
        sink.write_event(buf.as_bytes())?;
        n += 1;
        if last_flush.elapsed() >= FLUSH_INTERVAL {
            flush_all(&mut files)?;
            last_flush = Instant::now();
        }
    }
    flush_all(&mut files)?;
    let elapsed = t0.elapsed();
    Ok(Summary {
        seed,
        total_events: n,
        elapsed,
        stopped_by,
        files: files
            .iter()
            .map(|(g, s)| FileSummary {
                path: s.path.clone(),
                format: g.format.name(),
                events: g.seq,
                last_seq: g.seq.checked_sub(1),
                rotations: s.rotations,
                bytes: s.total_bytes,
            })
            .collect(),
    })
}

fn flush_all(files: &mut [(Gen, Sink)]) -> Result<(), GenError> {
    files.iter_mut().try_for_each(|(_, s)| s.flush())
}

static STOP: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
fn install_signal_handlers() {
    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, Ordering::Relaxed);
    }
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

#[cfg(not(unix))]
fn install_signal_handlers() {}

fn main() -> ExitCode {
    let opts = Opts::parse();
    install_signal_handlers();
    let summary = match run(&opts, &STOP) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loggen: error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let _ = summary.print(&mut io::stderr().lock());
    if let Some(path) = &opts.summary_json {
        let text = summary.to_json(&opts).to_string() + "\n";
        if let Err(e) = fs::write(path, text) {
            eprintln!(
                "loggen: error: cannot write summary {}: {e}",
                path.display()
            );
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------
// Tests (`cargo test --example loggen`)
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;
    use std::collections::BTreeMap;

    fn opts(dir: &Path, args: &[&str]) -> Opts {
        let mut v = vec!["loggen", "--output", dir.to_str().unwrap()];
        v.extend_from_slice(args);
        Opts::try_parse_from(v).unwrap()
    }

    fn generate(dir: &Path, args: &[&str]) -> Summary {
        run(&opts(dir, args), &AtomicBool::new(false)).unwrap()
    }

    /// Concatenates a file and its rotated siblings, oldest first.
    fn read_all(path: &Path) -> String {
        let mut n = 1;
        while rotated_path(path, n).exists() {
            n += 1;
        }
        let mut s = String::new();
        for i in (1..n).rev() {
            s.push_str(&fs::read_to_string(rotated_path(path, i)).unwrap());
        }
        s.push_str(&fs::read_to_string(path).unwrap());
        s
    }

    fn seq_of(line: &str, format: Format) -> Option<u64> {
        match format {
            Format::Json => serde_json::from_str::<serde_json::Value>(line).ok()?["seq"].as_u64(),
            Format::App => line.rsplit_once(" seq=")?.1.parse().ok(),
            Format::Nginx => {
                let url = line.split('"').nth(1)?.split(' ').nth(1)?;
                url.rsplit_once("seq=")?.1.parse().ok()
            }
        }
    }

    /// Seqs of all events (lines that are not stack-trace continuations).
    fn seqs(text: &str, format: Format) -> Vec<u64> {
        text.lines()
            .filter(|l| !is_continuation(l))
            .map(|l| seq_of(l, format).unwrap_or_else(|| panic!("no seq in {l:?}")))
            .collect()
    }

    fn is_continuation(l: &str) -> bool {
        l.starts_with('\t') || l.starts_with("Caused by: ")
    }

    const NGINX_RE: &str = r#"^(\S+) - (\S+) \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "([A-Z]+) (\S+) (HTTP/\d\.\d)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$"#;
    const APP_RE: &str = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (TRACE|DEBUG|INFO|WARN|ERROR) \[[\w.$]+\] .+ seq=(\d+)$";

    #[test]
    fn nginx_lines_match_combined_format() {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(
            dir.path(),
            &["--format", "nginx", "--count", "3000", "--seed", "1"],
        );
        assert_eq!(s.files[0].events, 3000);
        let re = Regex::new(NGINX_RE).unwrap();
        let text = fs::read_to_string(dir.path().join("nginx-0.log")).unwrap();
        let mut statuses = BTreeMap::new();
        let mut public = 0;
        for (i, line) in text.lines().enumerate() {
            let c = re
                .captures(line)
                .unwrap_or_else(|| panic!("not combined: {line:?}"));
            let ip = &c[1];
            assert!(ip.parse::<std::net::IpAddr>().is_ok(), "bad ip {ip}");
            if let Ok(std::net::IpAddr::V4(v4)) = ip.parse() {
                if !v4.is_private() && !v4.is_documentation() {
                    public += 1;
                }
            }
            assert!(c[5].starts_with('/'));
            *statuses.entry(c[7].to_string()).or_insert(0) += 1;
            assert_eq!(seq_of(line, Format::Nginx), Some(i as u64));
        }
        assert!(
            public > 2000,
            "mostly public client addresses, got {public}"
        );
        assert!(statuses["200"] > 1500);
        assert!(statuses.contains_key("404"));
        assert!(text.contains("Googlebot") && text.contains("curl/"));
    }

    #[test]
    fn app_lines_have_timestamp_level_logger_message_and_stack_traces() {
        let dir = tempfile::tempdir().unwrap();
        generate(
            dir.path(),
            &["--format", "app", "--count", "3000", "--seed", "2"],
        );
        let text = fs::read_to_string(dir.path().join("app-0.log")).unwrap();
        let re = Regex::new(APP_RE).unwrap();
        let java = Regex::new(r"^[[:space:]]+(at|\.{3})[[:space:]]+\b|^Caused by:").unwrap();
        let mut expected = 0u64;
        let mut traces = 0;
        let mut prev_error = false;
        for line in text.lines() {
            if is_continuation(line) {
                assert!(java.is_match(line), "continuation {line:?}");
                assert!(prev_error, "stack trace after a non-ERROR line");
                if line.starts_with("Caused by: ") {
                    traces += 1;
                }
                continue;
            }
            let c = re
                .captures(line)
                .unwrap_or_else(|| panic!("bad app line {line:?}"));
            prev_error = &c[1] == "ERROR";
            assert_eq!(c[2].parse::<u64>().unwrap(), expected);
            expected += 1;
        }
        assert_eq!(expected, 3000);
        assert!(traces > 10, "expected stack traces, got {traces}");
    }

    #[test]
    fn json_lines_parse_with_ecs_keys() {
        let dir = tempfile::tempdir().unwrap();
        generate(
            dir.path(),
            &["--format", "json", "--count", "2000", "--seed", "3"],
        );
        let text = fs::read_to_string(dir.path().join("json-0.log")).unwrap();
        let mut http = 0;
        let mut stack = 0;
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["seq"].as_u64(), Some(i as u64));
            assert!(v["@timestamp"].as_str().unwrap().ends_with('Z'));
            for k in ["log.level", "message", "service.name", "trace.id"] {
                assert!(v[k].is_string(), "{k} missing in {line}");
            }
            assert_eq!(v["trace.id"].as_str().unwrap().len(), 32);
            if v["http.response.status_code"].is_u64() {
                http += 1;
            }
            if v["error.stack_trace"].is_string() {
                stack += 1;
            }
        }
        assert!(http > 800);
        assert!(stack > 0);
    }

    #[test]
    fn mixed_names_and_round_robin() {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(
            dir.path(),
            &["--files", "4", "--count", "1001", "--seed", "4"],
        );
        let names: Vec<_> = s
            .files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            ["nginx-0.log", "app-0.log", "json-0.log", "nginx-1.log"]
        );
        assert_eq!(s.files.iter().map(|f| f.events).sum::<u64>(), 1001);
        assert_eq!(s.files[0].last_seq, Some(250));
        assert_eq!(s.files[3].last_seq, Some(249));
    }

    fn check_rotation(mode: &str) {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(
            dir.path(),
            &[
                "--format",
                "mixed",
                "--files",
                "3",
                "--count",
                "9000",
                "--rotate-size",
                "64KiB",
                "--rotate-mode",
                mode,
                "--rotate-keep",
                "1000",
                "--seed",
                "5",
            ],
        );
        for f in &s.files {
            assert!(
                f.rotations > 2,
                "{mode}: {} rotated {} times",
                f.path.display(),
                f.rotations
            );
            let format = match f.format {
                "nginx" => Format::Nginx,
                "app" => Format::App,
                _ => Format::Json,
            };
            // no file starts with a continuation line, none exceeds the limit
            for i in 0..=f.rotations as u32 {
                let p = if i == 0 {
                    f.path.clone()
                } else {
                    rotated_path(&f.path, i)
                };
                let t = fs::read_to_string(&p).unwrap();
                assert!(t.len() as u64 <= 64 * 1024, "{} too big", p.display());
                assert!(t.is_empty() || !is_continuation(t.lines().next().unwrap()));
                assert!(t.is_empty() || t.ends_with('\n'));
            }
            let all = read_all(&f.path);
            assert_eq!(all.len() as u64, f.bytes);
            let got = seqs(&all, format);
            let want: Vec<u64> = (0..f.events).collect();
            assert_eq!(got, want, "{mode}: {}", f.path.display());
            assert_eq!(f.last_seq, Some(f.events - 1));
        }
    }

    #[test]
    fn seq_continuity_across_rename_rotation() {
        check_rotation("rename");
    }

    #[test]
    fn seq_continuity_across_copytruncate_rotation() {
        check_rotation("copytruncate");
    }

    #[test]
    fn rotate_keep_deletes_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(
            dir.path(),
            &[
                "--format",
                "nginx",
                "--count",
                "5000",
                "--rotate-size",
                "16KiB",
                "--rotate-keep",
                "3",
                "--seed",
                "6",
            ],
        );
        let f = &s.files[0];
        assert!(f.rotations > 5);
        assert!(rotated_path(&f.path, 3).exists());
        assert!(!rotated_path(&f.path, 4).exists());
        // what is left is a contiguous tail ending at the last seq
        let got = seqs(&read_all(&f.path), Format::Nginx);
        let first = got[0];
        assert!(first > 0);
        assert_eq!(got, (first..f.events).collect::<Vec<_>>());
    }

    #[test]
    fn stale_rotated_files_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("app-0.log.7"), "old\n").unwrap();
        fs::write(dir.path().join("app-0.log"), "old\n").unwrap();
        fs::write(dir.path().join("other.log.1"), "keep\n").unwrap();
        generate(dir.path(), &["--format", "app", "--count", "10"]);
        assert!(!dir.path().join("app-0.log.7").exists());
        assert!(dir.path().join("other.log.1").exists());
        assert_eq!(
            seqs(&read_all(&dir.path().join("app-0.log")), Format::App),
            (0..10).collect::<Vec<_>>()
        );
    }

    #[test]
    fn same_seed_same_output() {
        let args = [
            "--format",
            "mixed",
            "--files",
            "3",
            "--count",
            "3000",
            "--start-time",
            "2026-11-25T00:00:00Z",
            "--rate",
            "10",
        ];
        let read = |seed: &str| {
            let dir = tempfile::tempdir().unwrap();
            let mut a = args.to_vec();
            a.extend(["--seed", seed]);
            generate(dir.path(), &a);
            ["nginx-0.log", "app-0.log", "json-0.log"]
                .map(|n| fs::read(dir.path().join(n)).unwrap())
        };
        let a = read("42");
        assert_eq!(a, read("42"));
        assert_ne!(a, read("43"));
        let first_app = String::from_utf8(a[1].clone()).unwrap();
        assert!(
            first_app.starts_with("2026-11-25T00:00:00.100Z "),
            "{}",
            &first_app[..40]
        );
    }

    /// Backfills 4 simulated minutes at 50 events/s with the anomaly from 60s to 120s.
    fn anomaly_run(kind: &str, format: &str) -> (tempfile::TempDir, Summary) {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(
            dir.path(),
            &[
                "--format",
                format,
                "--start-time",
                "2026-11-25T10:00:00Z",
                "--rate",
                "50",
                "--duration",
                "4m",
                "--anomaly",
                kind,
                "--anomaly-at",
                "60s",
                "--anomaly-duration",
                "1m",
                "--seed",
                "9",
            ],
        );
        (dir, s)
    }

    /// Splits first lines into (inside the window, outside) by their timestamp.
    fn by_window(text: &str, ts: impl Fn(&str) -> String) -> (Vec<String>, Vec<String>) {
        let (mut inside, mut outside) = (Vec::new(), Vec::new());
        for l in text.lines().filter(|l| !is_continuation(l)) {
            let t = ts(l);
            if t.as_str() >= "2026-11-25T10:01:00" && t.as_str() < "2026-11-25T10:02:00" {
                inside.push(l.to_string());
            } else {
                outside.push(l.to_string());
            }
        }
        (inside, outside)
    }

    /// The labelled corpus of `tests/fixtures/search/` is this generator's output, byte for
    /// byte (the commands are in that directory's README).
    #[test]
    fn search_fixture_is_reproducible() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/search/logs");
        for (host, kind, at, seed) in [
            ("web-1", "5xx-spike", "30m", "11"),
            ("web-2", "disk-full", "50m", "12"),
            ("web-3", "oom-kill", "70m", "13"),
            ("web-4", "tls-expiry", "90m", "14"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            generate(
                dir.path(),
                &[
                    "--format",
                    "mixed",
                    "--files",
                    "3",
                    "--start-time",
                    "2026-11-24T20:00:00Z",
                    "--rate",
                    "0.125",
                    "--duration",
                    "2h",
                    "--anomaly",
                    kind,
                    "--anomaly-at",
                    at,
                    "--anomaly-duration",
                    "10m",
                    "--seed",
                    seed,
                ],
            );
            for f in ["nginx-0.log", "app-0.log", "json-0.log"] {
                let want = fs::read(fixture.join(host).join(f)).unwrap();
                let got = fs::read(dir.path().join(f)).unwrap();
                assert!(
                    got == want,
                    "{host}/{f} differs from what loggen writes now"
                );
            }
        }
    }

    #[test]
    fn incidents_for_search_only_in_the_window() {
        for (kind, needle) in [
            ("disk-full", "No space left on device"),
            ("oom-kill", "OOM-killed"),
            ("tls-expiry", "CertificateExpiredException"),
        ] {
            let (dir, _) = anomaly_run(kind, "app");
            let text = fs::read_to_string(dir.path().join("app-0.log")).unwrap();
            let (inside, outside) = by_window(&text, |l| l[..19].to_string());
            let all = text.contains(needle);
            assert!(all, "{kind}: no {needle:?} at all");
            assert!(
                inside.iter().filter(|l| l.contains(" ERROR [")).count() > 10,
                "{kind}"
            );
            assert!(
                outside.iter().all(|l| !l.contains("receipts")
                    && !l.contains("OOM-killed")
                    && !l.contains("payments-gw")),
                "{kind}"
            );
        }
    }

    #[test]
    fn error_burst_visible() {
        let (dir, s) = anomaly_run("error-burst", "app");
        assert_eq!(s.total_events, 12_000);
        assert_eq!(s.stopped_by, "duration");
        let text = fs::read_to_string(dir.path().join("app-0.log")).unwrap();
        let (inside, outside) = by_window(&text, |l| l[..19].to_string());
        let ratio = |v: &[String]| {
            v.iter().filter(|l| l.contains(" ERROR [")).count() as f64 / v.len() as f64
        };
        assert_eq!(inside.len(), 3000);
        assert!(ratio(&inside) > 0.5, "inside {}", ratio(&inside));
        assert!(ratio(&outside) < 0.1, "outside {}", ratio(&outside));
        assert!(outside.iter().all(|l| !l.contains("db-primary.internal")));
    }

    #[test]
    fn spike_5xx_visible() {
        let (dir, _) = anomaly_run("5xx-spike", "nginx");
        let text = fs::read_to_string(dir.path().join("nginx-0.log")).unwrap();
        let re = Regex::new(NGINX_RE).unwrap();
        let ts = |l: &str| {
            // 25/Nov/2026:10:01:00 -> 2026-11-25T10:01:00 (same day in this test)
            let c = re.captures(l).unwrap();
            format!("2026-11-25T{}", &c[3][12..20])
        };
        let (inside, outside) = by_window(&text, ts);
        let ratio = |v: &[String]| {
            v.iter()
                .filter(|l| re.captures(l).unwrap()[7].starts_with('5'))
                .count() as f64
                / v.len() as f64
        };
        assert!(ratio(&inside) > 0.3, "inside {}", ratio(&inside));
        assert!(ratio(&outside) < 0.05, "outside {}", ratio(&outside));
    }

    #[test]
    fn new_message_only_in_window() {
        for format in ["app", "json", "nginx"] {
            let (dir, _) = anomaly_run("new-message", format);
            let text = fs::read_to_string(dir.path().join(format!("{format}-0.log"))).unwrap();
            let ts = |l: &str| -> String {
                match format {
                    "json" => serde_json::from_str::<serde_json::Value>(l).unwrap()["@timestamp"]
                        .as_str()
                        .unwrap()[..19]
                        .to_string(),
                    "app" => l[..19].to_string(),
                    _ => {
                        let i = l.find('[').unwrap();
                        format!("2026-11-25T{}", &l[i + 13..i + 21])
                    }
                }
            };
            let marker = if format == "nginx" {
                "zgrab"
            } else {
                "Ledger reconciliation mismatch"
            };
            let (inside, outside) = by_window(&text, ts);
            assert!(
                inside.iter().filter(|l| l.contains(marker)).count() > 50,
                "{format}"
            );
            assert!(outside.iter().all(|l| !l.contains(marker)), "{format}");
        }
    }

    #[test]
    fn json_5xx_spike_and_error_burst() {
        let (dir, _) = anomaly_run("5xx-spike,error-burst", "json");
        let text = fs::read_to_string(dir.path().join("json-0.log")).unwrap();
        let mut inside_5xx = 0;
        let mut inside_err = 0;
        let mut outside_err = 0;
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = v["@timestamp"].as_str().unwrap();
            let inside = ("2026-11-25T10:01:00".."2026-11-25T10:02:00").contains(&&t[..19]);
            let err = v["log.level"] == "error";
            if inside {
                inside_err += usize::from(err);
                inside_5xx += usize::from(
                    v["http.response.status_code"]
                        .as_u64()
                        .is_some_and(|c| c >= 500),
                );
            } else {
                outside_err += usize::from(err);
            }
        }
        assert!(inside_err > 1500, "{inside_err}");
        assert!(inside_5xx > 300, "{inside_5xx}");
        assert!(outside_err < 900, "{outside_err}");
    }

    #[test]
    fn line_bytes_pads_first_lines() {
        let nginx_re = Regex::new(NGINX_RE).unwrap();
        for format in ["nginx", "app", "json"] {
            let dir = tempfile::tempdir().unwrap();
            let n = if format == "json" { "600" } else { "300" };
            let args = [
                "--format",
                format,
                "--count",
                "500",
                "--line-bytes",
                n,
                "--seed",
                "8",
            ];
            generate(dir.path(), &args);
            let n: usize = n.parse().unwrap();
            let text = fs::read_to_string(dir.path().join(format!("{format}-0.log"))).unwrap();
            let f = match format {
                "nginx" => Format::Nginx,
                "app" => Format::App,
                _ => Format::Json,
            };
            let mut exact = 0;
            for l in text.lines().filter(|l| !is_continuation(l)) {
                assert!(seq_of(l, f).is_some());
                if l.len() + 1 == n {
                    exact += 1;
                } else {
                    assert!(l.len() + 1 > n, "{format}: short line {l:?}");
                }
                if f == Format::Json {
                    serde_json::from_str::<serde_json::Value>(l).unwrap();
                }
            }
            assert!(
                exact > 300,
                "{format}: only {exact} lines of exactly {n} bytes"
            );
            if f == Format::Nginx {
                assert!(text.lines().all(|l| nginx_re.is_match(l)));
            }
        }
    }

    #[test]
    fn paced_run_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(
            dir.path(),
            &["--format", "app", "--rate", "2000", "--count", "100"],
        );
        assert_eq!(s.total_events, 100);
        let s = generate(
            dir.path(),
            &["--format", "app", "--rate", "100", "--duration", "150ms"],
        );
        assert_eq!(s.stopped_by, "duration");
        assert!(s.total_events > 0 && s.total_events <= 16);
        let got = seqs(&read_all(&dir.path().join("app-0.log")), Format::App);
        assert_eq!(got, (0..s.total_events).collect::<Vec<_>>());
    }

    /// In rate mode lines must reach the file while the generator runs (a
    /// tailing shipper sees them), not only at the end: without the periodic
    /// flush, a few 100-byte lines would stay in the 64 KiB buffer.
    #[test]
    fn rate_mode_flushes_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(
            dir.path(),
            &["--format", "app", "--rate", "20", "--seed", "1"],
        );
        let stop = AtomicBool::new(false);
        let path = dir.path().join("app-0.log");
        let summary = std::thread::scope(|sc| {
            let handle = sc.spawn(|| run(&o, &stop));
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut seen = 0;
            while Instant::now() < deadline {
                let text = fs::read_to_string(&path).unwrap_or_default();
                // only complete lines: everything up to the last newline
                let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
                seen = complete.lines().filter(|l| !is_continuation(l)).count();
                if seen >= 3 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::Relaxed);
            assert!(seen >= 3, "lines not visible while running");
            handle.join().unwrap().unwrap()
        });
        assert_eq!(summary.stopped_by, "signal");
        let got = seqs(&fs::read_to_string(&path).unwrap(), Format::App);
        assert_eq!(got, (0..summary.total_events).collect::<Vec<_>>());
    }

    #[test]
    fn stop_flag_ends_run() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(true);
        let s = run(&opts(dir.path(), &["--rate", "10"]), &stop).unwrap();
        assert_eq!(s.stopped_by, "signal");
        assert_eq!(s.total_events, 0);
    }

    #[test]
    fn bad_output_directory_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        let err = run(&opts(&file, &["--count", "1"]), &AtomicBool::new(false)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not a directory"), "{err}");
        let err = run(
            &opts(&file.join("sub"), &["--count", "1"]),
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("cannot create output directory"),
            "{err}"
        );
    }

    #[test]
    fn invalid_combinations_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let no_stop = AtomicBool::new(false);
        let err = run(&opts(dir.path(), &[]), &no_stop).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = run(
            &opts(dir.path(), &["--start-time", "now-1d", "--count", "5"]),
            &no_stop,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--rate"));
        assert!(Opts::try_parse_from(["loggen", "-o", "x", "--rotate-size", "12XB"]).is_err());
        assert!(Opts::try_parse_from(["loggen", "-o", "x", "--anomaly", "meteor"]).is_err());
        assert!(Opts::try_parse_from(["loggen", "-o", "x", "--files", "0"]).is_err());
        assert!(Opts::try_parse_from(["loggen", "-o", "x", "--line-bytes", "0"]).is_err());
        assert!(Opts::try_parse_from(["loggen", "-o", "x", "--rate", "-1"]).is_err());
        assert!(
            Opts::try_parse_from(["loggen", "-o", "x", "--start-time", "now-9999999d"]).is_err()
        );
        // absurdly slow rates saturate instead of overflowing
        let s = run(
            &opts(dir.path(), &["--rate", "1e-300", "--count", "1"]),
            &no_stop,
        )
        .unwrap();
        assert_eq!(s.total_events, 1);
    }

    #[test]
    fn summary_json_shape() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(
            dir.path(),
            &[
                "--files",
                "2",
                "--count",
                "7",
                "--seed",
                "1",
                "--anomaly",
                "5xx-spike",
            ],
        );
        let s = run(&o, &AtomicBool::new(false)).unwrap();
        let v = s.to_json(&o);
        assert_eq!(v["total_events"], 7);
        assert_eq!(v["seed"], 1);
        assert_eq!(v["files"][0]["events"], 4);
        assert_eq!(v["files"][0]["last_seq"], 3);
        assert_eq!(v["files"][1]["last_seq"], 2);
        assert_eq!(v["anomalies"][0], "5xx-spike");
        let mut text = Vec::new();
        s.print(&mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("last_seq=3"));
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("10M").unwrap(), 10 << 20);
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("ten").is_err());
        assert_eq!(parse_start_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_start_time("2026-11-25").unwrap(), 1_795_564_800_000);
        assert_eq!(
            parse_start_time("2026-11-25T10:00:00.123Z").unwrap(),
            1_795_600_800_123
        );
        assert_eq!(
            parse_start_time("2026-11-25T11:00:00+01:00").unwrap(),
            1_795_600_800_000
        );
        assert!(parse_start_time("2026-13-01").is_err());
        assert!(parse_start_time("yesterday").is_err());
        let now = now_ms();
        let t = parse_start_time("now-1h").unwrap();
        assert!((now - 3_600_000 - t).abs() < 5_000);
    }

    #[test]
    fn time_formatting() {
        let mut s = String::new();
        write_iso(1_795_600_800_123, &mut s);
        assert_eq!(s, "2026-11-25T10:00:00.123Z");
        s.clear();
        write_nginx_time(1_795_600_800_123, &mut s);
        assert_eq!(s, "25/Nov/2026:10:00:00 +0000");
        s.clear();
        write_iso(951_782_400_000, &mut s); // leap day
        assert_eq!(s, "2000-02-29T00:00:00.000Z");
        for d in [-800_000i64, -1, 0, 1, 59, 60, 10_957, 20_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
