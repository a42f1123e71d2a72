//! Benchmarks of the real agent binary (not a test: nothing here asserts a speed).
//!
//! `cargo bench --bench agent -- [throughput] [latency] [rss] [idle]` (all by default).
//! Every figure is printed next to a baseline measured in the same run, as a ratio, because
//! these machines are shared and noisy.
//!
//! - throughput: file → discard, 200-byte lines, agent pinned to one core, vs `wc -l`
//! - latency: new line → console output, p50/p99 over paced writes
//! - rss: peak RSS while tailing 1,000 files written at 10,000 lines/s in total
//! - idle: CPU share and open descriptors with 10,000 idle matched files
//! - diskqueue: file → disk queue → discard (`sync` batch and none) vs the memory queue, and
//!   the replay rate of a 1 GiB backlog

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{bin, line, rss_kib, run_once_pinned};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("oxibeat-bench-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("logs")).unwrap();
        Dir(p)
    }
    fn logs(&self) -> PathBuf {
        self.0.join("logs")
    }
    fn config(&self, inputs_extra: &str, output: &str) -> PathBuf {
        let cfg = format!(
            "[path]\ndata = {:?}\n[[inputs]]\ntype = \"filestream\"\nid = \"bench\"\npaths = [{:?}]\n{inputs_extra}\n{output}\n[logging.metrics]\nenabled = false\n",
            self.0.join("data").display().to_string(),
            self.logs().join("*.log").display().to_string(),
        );
        let p = self.0.join("oxibeat.toml");
        fs::write(&p, cfg).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cpu_secs_of_children() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct passed in.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn throughput() {
    let d = Dir::new("throughput");
    let n: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let path = d.logs().join("big.log");
    {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&path).unwrap());
        for i in 0..n {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    }
    let cfg = d.config("", "[output.discard]\n");
    // Warm the page cache so both sides read from memory.
    let _ = Command::new("cat")
        .arg(&path)
        .stdout(Stdio::null())
        .status();

    let t = Instant::now();
    let wc = Command::new("taskset")
        .args(["-c", "0", "wc", "-l"])
        .arg(&path)
        .output()
        .unwrap();
    let wc_secs = t.elapsed().as_secs_f64();
    let counted: usize = String::from_utf8_lossy(&wc.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert_eq!(counted, n);

    let cpu0 = cpu_secs_of_children();
    let secs = run_once_pinned(&cfg).as_secs_f64();
    let cpu = cpu_secs_of_children() - cpu0;
    let rate = n as f64 / secs;
    println!("throughput: {n} lines of 200 B, file → discard (Beats JSON encoded), agent pinned to 1 core");
    println!(
        "  oxibeat: {secs:.2} s wall, {cpu:.2} s CPU, {:.0} lines/s",
        rate
    );
    println!(
        "  wc -l:   {wc_secs:.3} s, {:.0} lines/s",
        n as f64 / wc_secs
    );
    println!(
        "  ratio oxibeat/wc-l throughput: {:.3}",
        rate / (n as f64 / wc_secs)
    );
}

/// Read console events and note when each line written at a known instant came out.
fn latency() {
    let d = Dir::new("latency");
    let path = d.logs().join("lat.log");
    fs::write(&path, "").unwrap();
    let cfg = d.config("", "[output.console]\n");
    let mut child = Command::new(bin())
        .args(["run", "-e", "--log-level", "warn", "-c"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Duration)>();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let at = start.elapsed();
            let v: serde_json::Value = match serde_json::from_str(&l) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if let Some(i) = v["message"]
                .as_str()
                .and_then(|m| m.strip_prefix("lat "))
                .and_then(|s| s.parse().ok())
            {
                let _ = tx.send((i, at));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let samples = 500;
    let mut sent = Vec::with_capacity(samples);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    for i in 0..samples {
        sent.push(start.elapsed());
        writeln!(f, "lat {i}").unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut lat = Vec::with_capacity(samples);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lat.len() < samples && Instant::now() < deadline {
        if let Ok((i, at)) = rx.recv_timeout(Duration::from_millis(200)) {
            lat.push((at - sent[i]).as_secs_f64() * 1000.0);
        }
    }
    stop(&mut child);
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "latency: {} of {samples} lines, one every 10 ms, new line → console output",
        lat.len()
    );
    println!(
        "  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
}

fn stop(child: &mut Child) {
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss() {
    let d = Dir::new("rss");
    let files = 1000;
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| d.logs().join(format!("f{i:04}.log")))
        .collect();
    for p in &paths {
        fs::write(p, line(0)).unwrap();
    }
    let cfg = d.config("", "[output.discard]\n");
    let mut child = Command::new(bin())
        .args(["run", "-e", "--log-level", "warn", "-c"])
        .arg(&cfg)
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(1));
    let baseline = rss_kib(pid);
    let rate = 10_000usize;
    let secs = 20;
    let mut handles: Vec<fs::File> = paths
        .iter()
        .map(|p| fs::OpenOptions::new().append(true).open(p).unwrap())
        .collect();
    let start = Instant::now();
    let mut written = 0usize;
    let mut peak = 0u64;
    let mut next_sample = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as usize;
        while written < due {
            let i = written % files;
            handles[i].write_all(line(written).as_bytes()).unwrap();
            written += 1;
        }
        if Instant::now() >= next_sample {
            peak = peak.max(rss_kib(pid));
            next_sample += Duration::from_millis(250);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let fds = open_fds(pid);
    stop(&mut child);
    println!("rss: 1,000 files written at {rate} lines/s in total for {secs} s ({written} lines), output discard");
    println!(
        "  peak RSS {:.1} MiB (after start, before load: {:.1} MiB); open fds at the end: {fds}",
        peak as f64 / 1024.0,
        baseline as f64 / 1024.0
    );
}

fn idle() {
    let d = Dir::new("idle");
    let files = 10_000;
    for i in 0..files {
        fs::write(d.logs().join(format!("f{i:05}.log")), line(i)).unwrap();
    }
    let cfg = d.config(
        "close.on_state_change.inactive = \"2s\"\n",
        "[output.discard]\n",
    );
    let mut child = Command::new(bin())
        .args(["run", "-e", "--log-level", "warn", "-c"])
        .arg(&cfg)
        .spawn()
        .unwrap();
    let pid = child.id();
    // Let it read everything and close the files as idle.
    std::thread::sleep(Duration::from_secs(8));
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let t0 = cpu_ticks(pid);
    let window = 30;
    std::thread::sleep(Duration::from_secs(window));
    let used = (cpu_ticks(pid) - t0) as f64 / hz;
    let fds = open_fds(pid);
    let rss = rss_kib(pid);
    stop(&mut child);
    println!("idle: {files} matched idle files (default 10 s rescan), measured over {window} s");
    println!("  CPU {:.3}% of one core, open descriptors {fds} (active files 0 + 64 = 64 allowed), RSS {:.1} MiB", used / window as f64 * 100.0, rss as f64 / 1024.0);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = args.is_empty();
    let want = |n: &str| all || args.iter().any(|a| a == n);
    if want("throughput") {
        throughput();
    }
    if want("latency") {
        latency();
    }
    if want("rss") {
        rss();
    }
    if want("idle") {
        idle();
    }
    if want("diskqueue") {
        diskqueue();
    }
}

/// `cargo bench --bench agent -- diskqueue`: the same 3,000,000 lines of 200 B through the
/// memory queue and the disk queue (`sync = "batch"` and `"none"`), each agent pinned to one
/// core, each run with its own registry; then a backlog of about 1 GiB on disk (filled while
/// the output fails: stdout is /dev/full) replayed to the discard output.
fn diskqueue() {
    let d = Dir::new("diskqueue");
    let n: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let path = d.logs().join("big.log");
    write_lines(&path, 0, n);
    let _ = Command::new("cat")
        .arg(&path)
        .stdout(Stdio::null())
        .status();
    let run = |name: &str, queue: &str| -> f64 {
        let data = d.0.join(format!("data-{name}"));
        let cfg = d.0.join(format!("{name}.toml"));
        fs::write(
            &cfg,
            format!(
                "[path]\ndata = {:?}\n[[inputs]]\ntype = \"filestream\"\nid = \"bench\"\npaths = [{:?}]\n[output.discard]\n{queue}\n[logging.metrics]\nenabled = false\n",
                data.display().to_string(),
                path.display().to_string()
            ),
        )
        .unwrap();
        let secs = run_once_pinned(&cfg).as_secs_f64();
        let _ = fs::remove_dir_all(&data);
        secs
    };
    let mem = run("mem", "[queue.mem]\n");
    let batch = run("batch", "[queue.disk]\nsync = \"batch\"\n");
    let none = run("none", "[queue.disk]\nsync = \"none\"\n");
    let mem2 = run("mem2", "[queue.mem]\n");
    let rate = |s: f64| n as f64 / s;
    let base = rate(mem.min(mem2));
    println!("diskqueue: {n} lines of 200 B, file → queue → discard (Beats JSON encoded), agent pinned to 1 core");
    println!(
        "  memory queue:              {:.2} s / {:.2} s, best {:.0} lines/s",
        mem, mem2, base
    );
    println!(
        "  disk queue, sync=batch:    {batch:.2} s, {:.0} lines/s, ratio to memory {:.2}",
        rate(batch),
        rate(batch) / base
    );
    println!(
        "  disk queue, sync=none:     {none:.2} s, {:.0} lines/s, ratio to memory {:.2}",
        rate(none),
        rate(none) / base
    );
    replay(&d);
}

fn write_lines(path: &std::path::Path, from: usize, n: usize) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap());
    for i in from..from + n {
        f.write_all(line(i).as_bytes()).unwrap();
    }
}

/// Fill the disk queue with about 1 GiB while the output cannot write (console to
/// /dev/full: every write fails with ENOSPC and is retried), stop, then time a `--once` run
/// that delivers the backlog to the discard output.
fn replay(d: &Dir) {
    let lines: usize = std::env::var("BENCH_REPLAY_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_600_000);
    let logs = d.0.join("replay-logs");
    fs::create_dir_all(&logs).unwrap();
    write_lines(&logs.join("r.log"), 0, lines);
    let data = d.0.join("data-replay");
    let cfg_for = |output: &str| {
        let cfg = d.0.join(format!("replay-{}.toml", output.len()));
        fs::write(
            &cfg,
            format!(
                "[path]\ndata = {:?}\n[[inputs]]\ntype = \"filestream\"\nid = \"replay\"\npaths = [{:?}]\n{output}\n[queue.disk]\nsync = \"none\"\n[registry]\nflush = \"100ms\"\n[logging.metrics]\nenabled = false\n",
                data.display().to_string(),
                logs.join("*.log").display().to_string()
            ),
        )
        .unwrap();
        cfg
    };
    let fill = cfg_for("[output.console]\n");
    let mut child = Command::new(bin())
        .args(["run", "-e", "--log-level", "error", "-c"])
        .arg(&fill)
        .stdout(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let queued = loop {
        std::thread::sleep(Duration::from_millis(500));
        let out = Command::new(bin())
            .args(["queue", "show", "-c"])
            .arg(&fill)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let events: usize = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("events:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        if events + 10_000 >= lines || t.elapsed() > Duration::from_secs(300) {
            break text;
        }
    };
    stop(&mut child);
    let bytes: u64 = fs::read_dir(data.join("diskqueue"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let drain = cfg_for("[output.discard]\n");
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {}/diskqueue/*.seg > /dev/null",
            data.display()
        ))
        .status();
    let secs = run_once_pinned(&drain).as_secs_f64();
    let events: usize = queued
        .lines()
        .find_map(|l| l.trim().strip_prefix("events:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    println!(
        "  replay: backlog of {events} events, {:.2} GiB on disk (filled while the output failed), delivered to discard in {secs:.2} s: {:.0} events/s, {:.0} MiB/s (agent pinned to 1 core, segments in the page cache)",
        bytes as f64 / (1u64 << 30) as f64,
        events as f64 / secs,
        bytes as f64 / secs / (1u64 << 20) as f64
    );
}
