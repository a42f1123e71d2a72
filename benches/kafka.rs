//! Kafka output benchmark (measures, asserts no speed): file → a local Apache Kafka (single-node
//! KRaft, the version of tests/kafka/versions.env, 512 MiB heap), 200-byte lines, lz4, acks=-1
//! (idempotent), against baselines measured in the same run: a minimal rdkafka producer sending
//! the same pre-read lines, and the same pre-encoded Beats JSON events, with the same settings.
//!
//! `cargo bench --bench kafka [-- throughput|outage]` (needs the Kafka jars: tests/run.sh).
//! - throughput (default): BENCH_LINES=N to size, BENCH_ROUNDS=R rounds (round 0 warms the
//!   broker up). The agent and the baselines are pinned to core 0, the broker to core 1. Each
//!   round runs the JSON baseline, the agent, the JSON baseline and the agent again, and each
//!   side takes the faster of its two runs, so neither noise (a minimum of two runs against a
//!   single run would favour the side with two) nor a drift of the machine's speed within a
//!   round favours either side. Every timed run starts after `sync(2)` (`settle`), so the
//!   kernel's writeback of earlier runs' broker log segments does not land in it.
//!   BENCH_COMPARE_BIN=/path/to/oxibeat also times that binary in every round (an A/B of a
//!   change, on the same broker and file).
//! - outage: the broker goes away under 50,000 lines/s offered for BENCH_OUTAGE_SECS (600);
//!   reports the agent's RSS growth (the memory bound while Kafka is down).

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::kafka::{Kafka, Spec};
use support::{bin, cpu_secs, free_port, line, minor_faults, rss_kib};

use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

/// Writes dirty pages back before a timed run: the kernel writes the broker's log segments
/// (and the staged file) back about 30 s after they were written, which would otherwise land
/// as CPU and I/O noise in whichever later run happens to be timed then.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn pin_self_to_core0() {
    // SAFETY: plain libc call on a zeroed cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Apache Kafka (the version pinned in tests/kafka/versions.env) with Kafka's own JVM flags
/// and a 512 MiB heap, pinned to `core` when given.
fn start_broker(core: Option<usize>) -> Kafka {
    let k = Kafka::start(Spec {
        bench: true,
        core,
        ..Spec::default()
    });
    println!(
        "broker: Apache Kafka {} (KRaft, single node), -Xmx{}, G1, {}; started in {:.1} s",
        k.spec.version,
        k.spec.heap,
        core.map_or("not pinned".to_string(), |c| format!("pinned to core {c}")),
        k.started_in.as_secs_f64()
    );
    k
}

/// Kafka down for a long time under load: the bounded queues must cap memory.
fn outage() {
    let secs: u64 = std::env::var("BENCH_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let rate = 50_000u64;
    let dir = std::env::temp_dir().join(format!("oxibeat-bench-outage-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("logs")).unwrap();
    let mut broker = start_broker(None);
    broker.create_topic("logs", 3, &[]);
    let hosts = broker.bootstrap();
    let cfg = dir.join("oxibeat.toml");
    fs::write(
        &cfg,
        format!(
            "[path]\ndata = {:?}\n[[inputs]]\ntype = \"filestream\"\nid = \"bench\"\npaths = [{:?}]\n\n[output.kafka]\nhosts = [{hosts:?}]\ntopic = \"logs\"\n[logging.metrics]\nenabled = false\n",
            dir.join("data").display().to_string(),
            dir.join("logs").join("*.log").display().to_string(),
        ),
    )
    .unwrap();
    let log = dir.join("logs").join("app.log");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    for i in 0..10_000 {
        f.write_all(line(i).as_bytes()).unwrap();
    }
    let mut agent = Command::new(bin())
        .args(["run", "-e", "--log-level", "error", "-c"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let before = rss_kib(agent.id());
    broker.kill();
    let start = Instant::now();
    let mut written = 10_000usize;
    let mut peak = before;
    let mut next_report = Duration::from_secs(60);
    while start.elapsed() < Duration::from_secs(secs) {
        // Paced by the clock: 50,000 lines/s offered on average.
        let due = 10_000 + (start.elapsed().as_secs_f64() * rate as f64) as usize;
        if due > written {
            let mut buf = String::with_capacity((due - written) * 200);
            for i in written..due {
                buf.push_str(&line(i));
            }
            f.write_all(buf.as_bytes()).unwrap();
            written = due;
        }
        peak = peak.max(rss_kib(agent.id()));
        if start.elapsed() >= next_report {
            println!(
                "  t={:>4}s written={written} rss={} KiB",
                start.elapsed().as_secs(),
                rss_kib(agent.id())
            );
            next_report += Duration::from_secs(60);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let end = rss_kib(agent.id());
    let _ = agent.kill();
    let _ = agent.wait();
    println!("outage: Kafka down for {secs} s with {rate} lines/s offered (200 B lines)");
    println!(
        "  agent RSS before {before} KiB, at end {end} KiB, peak {peak} KiB, growth {:.1} MiB",
        (peak.saturating_sub(before)) as f64 / 1024.0
    );
    let _ = fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.iter().any(|a| a == "outage") {
        outage();
    }
    if args.is_empty() || args.iter().any(|a| a == "throughput") {
        throughput();
    }
}

fn throughput() {
    let n: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // Round 0 also warms the broker's JIT up; rounds 1.. are the figures.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = std::env::temp_dir().join(format!("oxibeat-bench-kafka-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let broker = start_broker(Some(1));
    let hosts = broker.bootstrap();

    // The big file is written outside the agent's glob and linked in when the clock starts.
    let staged = dir.join("big.staged");
    {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&staged).unwrap());
        for i in 0..n {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    }
    // The baseline gets the lines pre-read into memory.
    let text = fs::read_to_string(&staged).unwrap();
    let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    // Second baseline, to separate the producer's cost of bigger messages from oxibeat's own:
    // the same producer sending Beats-JSON events of the size oxibeat sends (10,000 distinct
    // pre-encoded events, cycled, so memory stays small), for a path as long as the agent's.
    let json = beats_json(
        &lines[..lines.len().min(10_000)],
        &dir.join("agent-0").join("logs").join("big.log"),
    );
    let json_bytes: usize = json.iter().map(Vec::len).sum::<usize>() / json.len();
    let json_refs: Vec<&[u8]> = json.iter().map(Vec::as_slice).collect();

    // Baselines: the same librdkafka settings oxibeat uses by default, pinned to core 0.
    // Each is warmed up (connected, producer id obtained, metadata known) before the clock
    // starts, as the agent is: the figures are steady-state rates.
    pin_self_to_core0();
    println!("kafka: {n} lines of 200 B → local Apache Kafka, lz4, acks=-1, idempotent; producers pinned to core 0, broker to core 1; steady state (after a warm-up); round 0 warms the broker up");
    let compare = std::env::var("BENCH_COMPARE_BIN").ok();
    let agents: Vec<&str> = std::iter::once(bin()).chain(compare.as_deref()).collect();
    let mut best = [f64::MAX; 2];
    let mut best_agent = vec![f64::MAX; agents.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); agents.len()];
    for r in 0..rounds {
        let raw_t = format!("raw-{r}");
        let json_t = [format!("json-{r}-0"), format!("json-{r}-1")];
        let agent_t: Vec<[String; 2]> = (0..agents.len())
            .map(|a| [format!("agent-{r}-{a}-0"), format!("agent-{r}-{a}-1")])
            .collect();
        for t in std::iter::once(&raw_t)
            .chain(&json_t)
            .chain(agent_t.iter().flatten())
        {
            broker.create_topic(t, 3, &[]);
        }
        let (raw_secs, warm_base, (raw_cpu, _)) = baseline_run(&hosts, &raw_t, &lines, n);
        // JSON baseline, agents, JSON baseline, agents (in the other order): each takes the
        // faster of its two runs, so neither side gains from noise or a drift within a round.
        let mut order: Vec<usize> = (0..agents.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        // (seconds, (CPU seconds, minor page faults)) of each run.
        let mut json_runs = [(0.0, (0.0, 0)); 2];
        let mut agent_runs = vec![[(0.0, (0.0, 0)); 2]; agents.len()];
        for pass in 0..2 {
            let (secs, _, usage) = baseline_run(&hosts, &json_t[pass], &json_refs, n);
            json_runs[pass] = (secs, usage);
            for &a in &order {
                let round_dir = dir.join(format!("agent-{r}-{a}-{pass}"));
                fs::create_dir_all(round_dir.join("logs")).unwrap();
                let linked = round_dir.join("big.staged");
                fs::hard_link(&staged, &linked).unwrap();
                agent_runs[a][pass] = agent_run(
                    agents[a],
                    &round_dir,
                    &hosts,
                    &agent_t[a][pass],
                    &linked,
                    n as u64,
                );
            }
            order.reverse();
        }
        let faster = |runs: &[(f64, (f64, u64)); 2]| {
            if runs[0].0 <= runs[1].0 {
                runs[0]
            } else {
                runs[1]
            }
        };
        let (json_secs, (json_cpu, json_faults)) = faster(&json_runs);
        let rate = |secs: f64| n as f64 / secs;
        println!(
            "round {r}:{}",
            if r == 0 { " (broker warm-up)" } else { "" }
        );
        println!("  baseline rdkafka producer (raw lines): {raw_secs:.2} s, {:.0} msgs/s, CPU {raw_cpu:.2} s (its cold start, first delivery: {:.0} ms)", rate(raw_secs), warm_base.as_secs_f64() * 1000.0);
        println!("  baseline rdkafka producer (pre-encoded {json_bytes} B Beats JSON): {:.2} s and {:.2} s; the faster: {:.0} msgs/s, CPU {json_cpu:.2} s, {json_faults} page faults", json_runs[0].0, json_runs[1].0, rate(json_secs));
        for (a, runs) in agent_runs.iter().enumerate() {
            let name = if a == 0 { "oxibeat" } else { "compared" };
            let (agent_secs, (agent_cpu, agent_faults)) = faster(runs);
            println!(
                "  {name} file → kafka (Beats JSON): {:.2} s and {:.2} s; the faster: {:.0} events/s, CPU {agent_cpu:.2} s, {agent_faults} page faults; ratio to the JSON baseline {:.3}, to the raw lines {:.3}",
                runs[0].0,
                runs[1].0,
                rate(agent_secs),
                json_secs / agent_secs,
                raw_secs / agent_secs
            );
            if r > 0 || rounds == 1 {
                best_agent[a] = best_agent[a].min(agent_secs);
                ratios[a].push(json_secs / agent_secs);
            }
        }
        println!("  JSON baseline to raw: {:.3}", raw_secs / json_secs);
        if r > 0 || rounds == 1 {
            for (b, v) in best.iter_mut().zip([raw_secs, json_secs]) {
                *b = b.min(v);
            }
        }
    }
    let rate = |secs: f64| n as f64 / secs;
    for (a, agent_bin) in agents.iter().enumerate() {
        let mut rs = ratios[a].clone();
        rs.sort_by(f64::total_cmp);
        let median = rs.get(rs.len() / 2).copied().unwrap_or(f64::NAN);
        let median = if rs.len() % 2 == 0 && !rs.is_empty() {
            (rs[rs.len() / 2 - 1] + median) / 2.0
        } else {
            median
        };
        println!(
            "{agent_bin}: per-round ratios to the JSON baseline {rs:.3?}, median {median:.3}; best of the measured rounds: raw {:.0} msgs/s, JSON {:.0} msgs/s, oxibeat {:.0} events/s; best-to-best ratio oxibeat/JSON {:.3}, oxibeat/raw {:.3}, JSON/raw {:.3}",
            rate(best[0]),
            rate(best[1]),
            rate(best_agent[a]),
            best[1] / best_agent[a],
            best[0] / best_agent[a],
            best[0] / best[1]
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A minimal producer with oxibeat's default settings: one warm-up message (returns how long
/// its delivery took: connection, producer id, metadata), then `n` messages cycled from
/// `payloads`, timed until all are delivered. Returns the seconds, the warm-up time, and the
/// CPU seconds and minor page faults of the process meanwhile.
fn baseline_run(
    hosts: &str,
    topic: &str,
    payloads: &[&[u8]],
    n: usize,
) -> (f64, Duration, (f64, u64)) {
    let p: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", hosts)
        .set("acks", "-1")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "0")
        .set("queue.buffering.max.kbytes", "32768")
        .set("queue.buffering.max.messages", "100000")
        .create()
        .expect("baseline producer");
    let t = Instant::now();
    p.send(BaseRecord::<(), [u8]>::to(topic).payload(payloads[0]))
        .map_err(|(e, _)| e)
        .expect("warm-up message");
    p.flush(Duration::from_secs(60)).expect("warm-up flush");
    let warm = t.elapsed();
    settle();
    let t = Instant::now();
    let cpu0 = cpu_secs(std::process::id());
    let faults0 = minor_faults(std::process::id());
    let mut i = 0usize;
    while i < n {
        match p.send(BaseRecord::<(), [u8]>::to(topic).payload(payloads[i % payloads.len()])) {
            Ok(()) => i += 1,
            Err((_, _)) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    p.flush(Duration::from_secs(600)).expect("baseline flush");
    (
        t.elapsed().as_secs_f64(),
        warm,
        (
            cpu_secs(std::process::id()) - cpu0,
            minor_faults(std::process::id()) - faults0,
        ),
    )
}

/// Pre-encoded Beats JSON events for `lines`, as oxibeat sends them.
fn beats_json(lines: &[&[u8]], path: &std::path::Path) -> Vec<Vec<u8>> {
    let beat = oxibeat::event::BeatInfo {
        beat: "oxibeat".into(),
        version: "0.1.0".into(),
        hostname: "bench-host".into(),
        name: "bench-host".into(),
        agent_id: "2f4a6c8e-1b3d-4f5a-9c7e-0d2b4f6a8c1e".into(),
        ephemeral_id: "9e7c5a3b-1d2f-4e6a-8b0c-2d4f6a8c0e1b".into(),
    };
    let mut offset = 0usize;
    lines
        .iter()
        .map(|l| {
            let l = String::from_utf8_lossy(l);
            let v = serde_json::json!({
                "message": l,
                "log": {"offset": offset, "file": {"path": path.display().to_string(), "device_id": "64514", "inode": "140027", "fingerprint": "5f2a8c1e9b3d7f4a6c0e2b8d1f3a5c7e9b0d2f4a6c8e1b3d5f7a9c0e2b4d6f8a"}},
                "input": {"type": "filestream"},
                "ecs": {"version": "8.0.0"},
                "host": {"name": "bench-host"},
                "agent": {"type": "oxibeat", "version": "0.1.0", "ephemeral_id": beat.ephemeral_id, "id": beat.agent_id, "name": "bench-host"}
            });
            offset += l.len() + 1;
            let mut buf = Vec::new();
            if let serde_json::Value::Object(m) = v {
                oxibeat::event::Event::from_map(0, m).write_json(&beat, &mut buf);
            }
            buf
        })
        .collect()
}

/// `libbeat.output.events.acked` from the agent's `/stats` endpoint.
fn acked(http_port: u16) -> Option<u64> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http_port)).ok()?;
    s.write_all(b"GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let json = body.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["libbeat"]["output"]["events"]["acked"].as_u64()
}

/// The agent pinned to core 0, warmed up with a small file, then timed from the moment the
/// big file appears in its glob until `/stats` reports every event acked by Kafka. Returns the
/// seconds, and the agent's CPU seconds and minor page faults meanwhile.
fn agent_run(
    agent_bin: &str,
    dir: &std::path::Path,
    hosts: &str,
    topic: &str,
    staged: &std::path::Path,
    n: u64,
) -> (f64, (f64, u64)) {
    let warm = 1_000u64;
    let http = free_port();
    let mut f = fs::File::create(dir.join("logs").join("warm.log")).unwrap();
    // Other lines than the big file's: with fingerprint identity, equal first bytes would make
    // the big file look like a copy of this one.
    for i in 0..warm as usize {
        f.write_all(line(50_000_000 + i).as_bytes()).unwrap();
    }
    drop(f);
    // BENCH_QUEUE_EVENTS sets [queue.mem] events (default 4096).
    let queue = std::env::var("BENCH_QUEUE_EVENTS")
        .map(|v| format!("[queue.mem]\nevents = {v}\n"))
        .unwrap_or_default();
    let cfg = dir.join("oxibeat.toml");
    fs::write(
        &cfg,
        format!(
            "[path]\ndata = {:?}\n[[inputs]]\ntype = \"filestream\"\nid = \"bench\"\npaths = [{:?}]\n\n[output.kafka]\nhosts = [{hosts:?}]\ntopic = {topic:?}\ncompression = \"lz4\"\nrequired_acks = -1\n{queue}[logging.metrics]\nenabled = false\n[http]\nenabled = true\nhost = \"127.0.0.1\"\nport = {http}\n",
            dir.join("data").display().to_string(),
            dir.join("logs").join("*.log").display().to_string(),
        ),
    )
    .unwrap();
    let mut agent = Command::new("taskset")
        .args([
            "-c",
            "0",
            agent_bin,
            "run",
            "-e",
            "--log-level",
            "warn",
            "-c",
        ])
        .arg(&cfg)
        .spawn()
        .expect("taskset (util-linux) and the oxibeat binary");
    // `/stats` costs the agent some CPU: asked every 50 ms, and every 2 ms for the last 5 %.
    let wait_for = |target: u64, limit: Duration| {
        let deadline = Instant::now() + limit;
        let fine = target / 20;
        loop {
            let got = acked(http).unwrap_or(0);
            if got >= target {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not ack {target} events in time"
            );
            std::thread::sleep(Duration::from_millis(if got + fine < target {
                50
            } else {
                2
            }));
        }
    };
    wait_for(warm, Duration::from_secs(60));
    settle();
    let t = Instant::now();
    let cpu0 = cpu_secs(agent.id());
    let faults0 = minor_faults(agent.id());
    fs::rename(staged, dir.join("logs").join("big.log")).unwrap();
    wait_for(warm + n, Duration::from_secs(600));
    let secs = t.elapsed().as_secs_f64();
    let usage = (
        cpu_secs(agent.id()) - cpu0,
        minor_faults(agent.id()) - faults0,
    );
    // SAFETY: plain signal to our own child; SIGTERM is the agent's graceful stop.
    unsafe {
        libc::kill(agent.id() as i32, libc::SIGTERM);
    }
    let _ = agent.wait();
    (secs, usage)
}
