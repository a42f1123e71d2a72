//! Logstash output benchmark (measures, asserts no speed): file → our Lumberjack v2 sink
//! (ACKs every window as soon as it is read) with the agent pinned to core 0 and the sink to
//! core 1; 1,000,000 lines of 200 B; compression 3 and 0, pipelining 2 (Filebeat's defaults);
//! against file → discard in the same run, on the same core.
//!
//! `cargo bench --bench logstash` (BENCH_LINES=N to size; BENCH_VARIED=1 pads the lines with
//! pseudo-random words instead of `x`, which compresses about like real logs: 7 % instead of
//! 2 %). Reports events/s, the agent's CPU-seconds per million events (utime + stime from
//! /proc), and the ratio to discard.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
use support::{acked, bin, cpu_secs, free_port, line};

fn pin_current_thread(core: usize) {
    // SAFETY: plain libc call on a zeroed cpu_set_t, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A Lumberjack v2 sink on core 1: reads each window (inflating `C` frames and counting the
/// `J` frames, as a receiver must), ACKs it at once. Returns its port and the event count.
fn start_sink() -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        pin_current_thread(1);
        for s in l.incoming().flatten() {
            let c = c.clone();
            // Threads inherit this thread's affinity: core 1.
            std::thread::spawn(move || {
                let _ = serve(s, &c);
            });
        }
    });
    (port, count)
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Number of J frames in `plain` (inner frames of a C frame).
fn count_j(mut plain: &[u8]) -> u32 {
    let mut n = 0;
    while plain.len() >= 10 && &plain[..2] == b"2J" {
        let len = u32_at(&plain[6..]) as usize;
        plain = &plain[(10 + len).min(plain.len())..];
        n += 1;
    }
    n
}

fn serve(mut s: TcpStream, count: &AtomicU64) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut r = std::io::BufReader::with_capacity(1 << 20, s.try_clone()?);
    let mut hdr = [0u8; 6];
    let mut buf = Vec::new();
    let mut plain = Vec::new();
    loop {
        r.read_exact(&mut hdr)?;
        assert_eq!(&hdr[..2], b"2W", "window frame");
        let size = u32_at(&hdr[2..]);
        let mut got = 0;
        while got < size {
            let mut f = [0u8; 2];
            r.read_exact(&mut f)?;
            match f[1] {
                b'C' => {
                    let mut l = [0u8; 4];
                    r.read_exact(&mut l)?;
                    buf.resize(u32_at(&l) as usize, 0);
                    r.read_exact(&mut buf)?;
                    plain.clear();
                    flate2::read::ZlibDecoder::new(&buf[..]).read_to_end(&mut plain)?;
                    got += count_j(&plain);
                }
                b'J' => {
                    let mut h = [0u8; 8];
                    r.read_exact(&mut h)?;
                    buf.resize(u32_at(&h[4..]) as usize, 0);
                    r.read_exact(&mut buf)?;
                    got += 1;
                }
                other => panic!("unexpected frame {other}"),
            }
        }
        assert_eq!(got, size, "events in the window");
        count.fetch_add(size as u64, Ordering::Relaxed);
        let mut ack = [b'2', b'A', 0, 0, 0, 0];
        ack[2..].copy_from_slice(&size.to_be_bytes());
        s.write_all(&ack)?;
    }
}

struct Run {
    secs: f64,
    cpu: f64,
}

/// The agent pinned to core 0 with `output`, warmed up on a small file, then timed from the
/// moment the big file appears in its glob until `/stats` reports every event acked.
fn agent_run(dir: &Path, name: &str, output: &str, staged: &Path, n: u64) -> Run {
    let work = dir.join(name);
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("logs")).unwrap();
    let warm = 1_000u64;
    let mut f = fs::File::create(work.join("logs").join("warm.log")).unwrap();
    for i in 0..warm as usize {
        f.write_all(line(50_000_000 + i).as_bytes()).unwrap();
    }
    drop(f);
    let http = free_port();
    let cfg = work.join("oxibeat.toml");
    fs::write(
        &cfg,
        format!(
            "[path]\ndata = {:?}\n[[inputs]]\ntype = \"filestream\"\nid = \"bench\"\npaths = [{:?}]\n\n{output}\n[logging.metrics]\nenabled = false\n[http]\nenabled = true\nhost = \"127.0.0.1\"\nport = {http}\n",
            work.join("data").display().to_string(),
            work.join("logs").join("*.log").display().to_string(),
        ),
    )
    .unwrap();
    let mut agent = Command::new("taskset")
        .args(["-c", "0", bin(), "run", "-e", "--log-level", "warn", "-c"])
        .arg(&cfg)
        .spawn()
        .expect("taskset (util-linux) and the oxibeat binary");
    let wait_for = |target: u64, limit: Duration, step: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            if acked(http).is_some_and(|a| a >= target) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not ack {target} events in time"
            );
            std::thread::sleep(step);
        }
    };
    wait_for(warm, Duration::from_secs(60), Duration::from_millis(50));
    let cpu0 = cpu_secs(agent.id());
    let t = Instant::now();
    let big = work.join("logs").join("big.log");
    fs::hard_link(staged, &big).unwrap_or_else(|_| {
        fs::copy(staged, &big).unwrap();
    });
    wait_for(warm + n, Duration::from_secs(600), Duration::from_millis(5));
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs(agent.id()) - cpu0;
    // SAFETY: plain signal to our own child; SIGTERM is the agent's graceful stop.
    unsafe {
        libc::kill(agent.id() as i32, libc::SIGTERM);
    }
    let _ = agent.wait();
    let _ = fs::remove_dir_all(&work);
    Run { secs, cpu }
}

/// A 200-byte line like `line(i)`, padded with pseudo-random `key=value` words.
fn varied_line(i: usize) -> String {
    const WORDS: [&str; 20] = [
        "user",
        "GET",
        "POST",
        "/api/v1/items",
        "timeout",
        "db",
        "cache",
        "miss",
        "hit",
        "200",
        "404",
        "500",
        "session",
        "token",
        "retry",
        "upstream",
        "latency_ms",
        "queue",
        "worker",
        "shard",
    ];
    let head = format!(
        "2026-11-25T10:00:00.{:03}Z INFO [com.example.Service] request served seq={i} ",
        i % 1000
    );
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut pad = String::new();
    while head.len() + pad.len() < 199 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pad.push_str(&format!("{}={:x} ", WORDS[(x % 20) as usize], x & 0xffff));
    }
    format!("{head}{}\n", &pad[..199 - head.len()])
}

fn main() {
    let n: u64 = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("oxibeat-bench-logstash-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let staged = dir.join("big.staged");
    {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&staged).unwrap());
        let varied = std::env::var_os("BENCH_VARIED").is_some();
        for i in 0..n as usize {
            let l = if varied { varied_line(i) } else { line(i) };
            f.write_all(l.as_bytes()).unwrap();
        }
    }
    let (port, received) = start_sink();
    let discard = agent_run(&dir, "discard", "[output.discard]\n", &staged, n);
    let mut rows = Vec::new();
    for level in [3u32, 0] {
        let before = received.load(Ordering::Relaxed);
        let out = format!(
            "[output.logstash]\nhosts = [\"127.0.0.1:{port}\"]\ncompression_level = {level}\npipelining = 2\n"
        );
        let r = agent_run(&dir, &format!("ls{level}"), &out, &staged, n);
        let got = received.load(Ordering::Relaxed) - before;
        assert!(got >= n, "the sink received {got} of {n} events");
        rows.push((level, r));
    }
    let rate = |r: &Run| n as f64 / r.secs;
    let per_m = |r: &Run| r.cpu * 1e6 / n as f64;
    let kind = if std::env::var_os("BENCH_VARIED").is_some() {
        "pseudo-random words"
    } else {
        "x padding"
    };
    println!("logstash: {n} lines of 200 B ({kind}), agent pinned to core 0, sink on core 1, pipelining 2, bulk_max_size 2048");
    println!(
        "  file → discard (baseline):        {:.2} s, {:.0} events/s, {:.2} CPU-s per million",
        discard.secs,
        rate(&discard),
        per_m(&discard)
    );
    for (level, r) in &rows {
        println!(
            "  file → logstash, compression {level}:  {:.2} s, {:.0} events/s, {:.2} CPU-s per million, ratio to discard {:.3}",
            r.secs,
            rate(r),
            per_m(r),
            rate(r) / rate(&discard)
        );
    }
    let _ = fs::remove_dir_all(&dir);
}
