//! Overhead of the `system/metrics` input: CPU time per collection round, as % of one core
//! at Metricbeat's 10 s period.
//!
//! Runs the real input (collection on blocking threads, event building, the pipeline queue)
//! with a consumer that serialises every event to Beats JSON as an output would, for
//! `ROUNDS` rounds at a short period, and divides the process CPU time (getrusage, all
//! threads) by the number of rounds. Idle runtime overhead between rounds is included, so the
//! figure is an upper bound.
//!
//!     CARGO_TARGET_DIR=/work/target cargo run --release --example bench_metrics [ROUNDS]
//!
//! `bench_metrics real SECONDS` runs the default metricsets (with `process`) at the real 10 s
//! period and reports CPU time over wall time, idle time included.

use std::sync::Arc;
use std::time::Duration;

use oxibeat::event::BeatInfo;
use oxibeat::input::system;
use oxibeat::input::InputContext;
use oxibeat::monitoring::Metrics;
use oxibeat::pipeline::{queue, QueueLimits};
use oxibeat::processors::Chain;
use tokio_util::sync::CancellationToken;

fn cpu_time() -> Duration {
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn beat() -> Arc<BeatInfo> {
    Arc::new(BeatInfo {
        beat: "oxibeat".into(),
        version: "0.1.0".into(),
        hostname: "bench".into(),
        name: "bench".into(),
        agent_id: "a".into(),
        ephemeral_id: "e".into(),
    })
}

/// (rounds, events, CPU time) for one configuration.
async fn measure(metricsets: &str, extra: &str, rounds: u32) -> (u32, u64, Duration) {
    measure_at(metricsets, extra, rounds, Duration::from_millis(100)).await
}

async fn measure_at(
    metricsets: &str,
    extra: &str,
    rounds: u32,
    period: Duration,
) -> (u32, u64, Duration) {
    let text = format!(
        "id = \"bench\"\nperiod = \"{}ms\"\nmetricsets = [{metricsets}]\n{extra}",
        period.as_millis()
    );
    let raw: toml::Value = toml::from_str(&text).expect("toml");
    let cfg = system::parse_config(&raw, "inputs[0]").expect("config");
    let metrics = Metrics::new();
    let (publisher, mut consumer) = queue(
        QueueLimits {
            events: 1 << 20,
            max_bytes: 1 << 30,
        },
        Arc::new(Chain::default()),
        metrics.clone(),
    );
    let shutdown = CancellationToken::new();
    let ctx = InputContext {
        publisher,
        beat: beat(),
        metrics,
        shutdown: shutdown.clone(),
        once: false,
    };
    let b = beat();
    let out = tokio::spawn(async move {
        let (mut events, mut memory) = (0u64, 0u32);
        let mut buf = Vec::with_capacity(1 << 16);
        while let Some(batch) = consumer.next_batch(4096).await {
            for e in batch.events() {
                buf.clear();
                e.write_json(&b, &mut buf);
                events += 1;
                // One memory event per round: count rounds with it.
                if memchr::memmem::find(&buf, b"\"dataset\":\"system.memory\"").is_some() {
                    memory += 1;
                }
            }
            batch.ack();
        }
        (events, memory)
    });
    let c0 = cpu_time();
    let t = tokio::spawn(system::run(cfg, ctx));
    tokio::time::sleep(period * rounds + period / 2).await;
    shutdown.cancel();
    let _ = t.await;
    let (events, done) = out.await.unwrap_or((0, 0));
    (done.max(1), events, cpu_time() - c0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let defaults_all = "\"cpu\", \"load\", \"memory\", \"network\", \"process_summary\", \"socket_summary\", \"filesystem\", \"fsstat\", \"uptime\", \"process\"";
    // `bench_metrics real SECONDS`: the real 10 s period, CPU time over wall time.
    if std::env::args().nth(1).as_deref() == Some("real") {
        let secs: u32 = std::env::args()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(60);
        let rounds = secs / 10;
        let without = defaults_all.replace(", \"process\"", "");
        for (label, sets, extra) in [
            ("default metricsets without process", without.as_str(), ""),
            (
                "default metricsets with process (all processes)",
                defaults_all,
                "",
            ),
            (
                "default metricsets with process, include_top_n 5/5",
                defaults_all,
                "process.include_top_n = { by_cpu = 5, by_memory = 5 }",
            ),
        ] {
            let (_, events, cpu) = measure_at(sets, extra, rounds, Duration::from_secs(10)).await;
            let wall = Duration::from_secs(10) * rounds + Duration::from_secs(5);
            println!(
                "{label:<52} {cpu:>10.3?} CPU in {wall:?} ({events} events) => {:.4}% of one core",
                cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
            );
        }
        return;
    }
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0);
    println!(
        "host: {procs} processes, {} CPUs; {rounds} rounds per case",
        num_cpus()
    );
    let defaults = "\"cpu\", \"load\", \"memory\", \"network\", \"process_summary\", \"socket_summary\", \"filesystem\", \"fsstat\", \"uptime\"";
    let cases = [
        (
            "default metricsets without process",
            defaults.to_string(),
            "",
        ),
        (
            "default metricsets with process (all processes)",
            format!("{defaults}, \"process\""),
            "",
        ),
        (
            "default metricsets with process, include_top_n 5/5",
            format!("{defaults}, \"process\""),
            "process.include_top_n = { by_cpu = 5, by_memory = 5 }",
        ),
        (
            "all 11 metricsets (+ diskio), process top 5/5",
            format!("{defaults}, \"process\", \"diskio\""),
            "process.include_top_n = { by_cpu = 5, by_memory = 5 }",
        ),
    ];
    // Collection alone, per metricset, on this thread.
    let raw: toml::Value = toml::from_str("id = \"b\"").expect("toml");
    let cfg = system::parse_config(&raw, "inputs[0]").expect("config");
    for name in system::MetricsetName::ALL {
        let mut ms = system::metricset(name, &cfg);
        let _ = ms.collect();
        let c0 = cpu_time();
        for _ in 0..rounds {
            let _ = ms.collect();
        }
        let per = (cpu_time() - c0) / rounds;
        println!("  collect only: {:<16} {per:>10.3?}", name.name());
    }
    // Warm up (page cache, allocator).
    measure(defaults, "", 5).await;
    for (label, sets, extra) in cases {
        let (n, events, cpu) = measure(&sets, extra, rounds).await;
        let per_round = cpu / n;
        let pct = per_round.as_secs_f64() / 10.0 * 100.0;
        println!(
            "{label:<52} {per_round:>10.3?} CPU/round  {:>6.1} events/round  => {pct:.4}% of one core at period 10s",
            events as f64 / n as f64
        );
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
