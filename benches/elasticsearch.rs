//! Elasticsearch output benchmark (measures, asserts no speed): file → osmem-server (an
//! in-memory OpenSearch-compatible server, installed by tests/run.sh), 200-byte lines, with the
//! default settings (preset custom = Filebeat's defaults: bulk_max_size 1600, 1 worker, gzip
//! level 1) and with `preset = "throughput"` (4 workers), each against a baseline measured in
//! the same run: a minimal bulk client that sends the same documents (the agent's own, captured
//! with the file output beforehand), pre-encoded, with the
//! same batch size, compression level and concurrency to the same server.
//!
//! `cargo bench --bench elasticsearch` (BENCH_LINES=N to size, default 1,000,000). The agent and
//! the baseline run on core 0, osmem-server on core 1. Reports events/s, the ratio agent /
//! baseline, and the agent's CPU-seconds per million events (user + system, from getrusage).
//! The indices are created with `dynamic: false` (see `create`): documents are stored and
//! counted, their fields not indexed, so the server's analysis does not hide the clients' cost.

use std::fs;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{bin, line};

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn osmem_binary() -> String {
    if let Ok(p) = std::env::var("OXIBEAT_OSMEM_SERVER") {
        return p;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, osmem_server; print(os.path.join(os.path.dirname(osmem_server.__file__), 'bin', 'osmem-server'))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "osmem-server is not installed: pip install osmem-server==0.1.6 (tests/run.sh does)"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn start_server() -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("taskset")
        .args(["-c", "1"])
        .arg(osmem_binary())
        .args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("taskset and osmem-server");
    let s = Server(child, port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "osmem-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

fn pin_self_to_core0() {
    // SAFETY: plain libc call on a zeroed cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

async fn count(c: &reqwest::Client, port: u16, index: &str) -> u64 {
    let base = format!("http://127.0.0.1:{port}/{index}");
    let _ = c.post(format!("{base}/_refresh")).send().await;
    let v: serde_json::Value = match c.get(format!("{base}/_count")).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    v["count"].as_u64().unwrap_or(0)
}

/// An index that keeps the documents without indexing their fields (`dynamic: false`):
/// osmem-server's full-text indexing of every field would otherwise be the whole cost
/// (about 5,000 docs/s on one core, against about 40,000 without it).
async fn create(c: &reqwest::Client, port: u16, index: &str) {
    let r = c
        .put(format!("http://127.0.0.1:{port}/{index}"))
        .header("Content-Type", "application/json")
        .body(r#"{"mappings":{"dynamic":false}}"#)
        .send()
        .await
        .expect("create index");
    assert!(r.status().is_success(), "create {index}: {}", r.status());
}

async fn delete(c: &reqwest::Client, port: u16, index: &str) {
    let _ = c
        .delete(format!("http://127.0.0.1:{port}/{index}"))
        .send()
        .await;
}

/// The documents the agent sends for the lines of `path`: its own events (a `--once` run with
/// the file output), without `@metadata`, as the Elasticsearch output sends them.
fn documents(dir: &std::path::Path, path: &str) -> Vec<Vec<u8>> {
    let out = dir.join("docs-out");
    let cfg = dir.join("docs.toml");
    fs::write(
        &cfg,
        format!(
            "[path]\ndata = {:?}\n[[inputs]]\ntype = \"filestream\"\nid = \"bench\"\npaths = [{path:?}]\n\
             [output.file]\npath = {:?}\nrotate_every_kb = 10485760\n[logging.metrics]\nenabled = false\n",
            dir.join("docs-data").display().to_string(),
            out.display().to_string()
        ),
    )
    .unwrap();
    let st = Command::new(bin())
        .args(["run", "--once", "-e", "--log-level", "warn", "-c"])
        .arg(&cfg)
        .status()
        .expect("oxibeat");
    assert!(st.success());
    let mut docs = Vec::new();
    for f in fs::read_dir(&out).unwrap().flatten() {
        for l in fs::read_to_string(f.path()).unwrap().lines() {
            let mut v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(l).unwrap();
            v.remove("@metadata");
            docs.push(serde_json::to_vec(&v).unwrap());
        }
    }
    docs
}

/// The baseline: pre-encoded bulk bodies (create actions), gzip level 1 at send time, `workers`
/// requests at once. Returns the elapsed time once every item was answered 2xx.
async fn baseline(
    port: u16,
    index: &str,
    docs: &[Vec<u8>],
    batch: usize,
    workers: usize,
) -> Duration {
    let mut bodies = Vec::new();
    let action = format!("{{\"create\":{{\"_index\":\"{index}\"}}}}\n");
    for chunk in docs.chunks(batch) {
        let mut b = Vec::new();
        for d in chunk {
            b.extend_from_slice(action.as_bytes());
            b.extend_from_slice(d);
            b.push(b'\n');
        }
        bodies.push(b);
    }
    let c = client();
    let url =
        format!("http://127.0.0.1:{port}/_bulk?filter_path=errors,items.*.error,items.*.status");
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies.into_iter()));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (c, url, queue) = (c.clone(), url.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().unwrap().next() else {
                    return;
                };
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
                enc.write_all(&body).unwrap();
                let gz = enc.finish().unwrap();
                let r = c
                    .post(&url)
                    .header("Content-Type", "application/x-ndjson")
                    .header("Content-Encoding", "gzip")
                    .body(gz)
                    .send()
                    .await
                    .expect("bulk");
                assert!(r.status().is_success());
                let v: serde_json::Value = r.json().await.unwrap();
                assert_eq!(v["errors"], false, "baseline items failed");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    t.elapsed()
}

fn main() {
    pin_self_to_core0();
    let n: usize = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bench.log");
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&log).unwrap());
        for i in 0..n {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    }
    let log_path = log.display().to_string();
    let docs = documents(dir.path(), &log_path);
    assert_eq!(docs.len(), n);
    let server = start_server();
    let port = server.1;
    let c = client();
    println!("elasticsearch bench: {n} lines of 200 B, osmem-server on core 1, agent and baseline on core 0");
    for (name, preset, workers) in [
        ("default", "custom", 1usize),
        ("throughput", "throughput", 4),
    ] {
        let index = format!("bench-agent-{name}");
        let data = dir.path().join(format!("data-{name}"));
        let cfg = dir.path().join(format!("{name}.toml"));
        fs::write(
            &cfg,
            format!(
                "[path]\ndata = {:?}\n[[inputs]]\ntype = \"filestream\"\nid = \"bench\"\npaths = [{log_path:?}]\n\
                 [output.elasticsearch]\nhosts = [\"http://127.0.0.1:{port}\"]\nindex = {index:?}\npreset = {preset:?}\n\
                 [logging.metrics]\nenabled = false\n",
                data.display().to_string()
            ),
        )
        .unwrap();
        let bindex = format!("bench-baseline-{name}");
        rt.block_on(create(&c, port, &bindex));
        let base = rt.block_on(baseline(port, &bindex, &docs, 1600, workers));
        let got = rt.block_on(count(&c, port, &bindex));
        assert_eq!(got, n as u64, "baseline indexed {got} of {n}");
        rt.block_on(delete(&c, port, &bindex));

        rt.block_on(create(&c, port, &index));
        let cpu0 = children_cpu();
        let t = Instant::now();
        let st = Command::new("taskset")
            .args([
                "-c",
                "0",
                bin(),
                "run",
                "--once",
                "-e",
                "--log-level",
                "warn",
                "-c",
            ])
            .arg(&cfg)
            .status()
            .expect("taskset and the oxibeat binary");
        let agent = t.elapsed();
        let cpu = children_cpu() - cpu0;
        assert!(st.success(), "oxibeat failed: {st}");
        let got = rt.block_on(count(&c, port, &index));
        assert_eq!(got, n as u64, "agent indexed {got} of {n}");
        rt.block_on(delete(&c, port, &index));

        let eps = |d: Duration| n as f64 / d.as_secs_f64();
        println!(
            "{name:>10} (preset {preset}, {workers} worker(s)): agent {:>9.0} events/s ({:.2} s), baseline {:>9.0} docs/s ({:.2} s), ratio {:.2}; agent CPU {:.2} s = {:.2} CPU-s per million events",
            eps(agent),
            agent.as_secs_f64(),
            eps(base),
            base.as_secs_f64(),
            base.as_secs_f64() / agent.as_secs_f64(),
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n as f64
        );
    }
}
