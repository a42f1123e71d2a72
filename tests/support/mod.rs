//! Shared helpers for integration tests: temp dirs, configs, the real `oxibeat` binary,
//! and reading what it delivered.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod es;
/// Apache Kafka brokers for tests/kafka.rs (and benches/kafka.rs).
pub mod kafka;
pub mod nofile;
pub mod pki;

/// `name` in `../shared/filebeat-reference/` (Filebeat's events, registries and configs);
/// fails the test, saying why, when it is not beside the repo.
pub fn filebeat_reference(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/filebeat-reference")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: this test needs ../shared/filebeat-reference beside the repo",
        p.display()
    );
    p
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_oxibeat")
}

/// A test workspace: logs, data and output directories under one temp dir.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let w = Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        fs::create_dir_all(w.logs()).unwrap();
        w
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn logs(&self) -> PathBuf {
        self.path().join("logs")
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    /// Write `oxibeat.toml`: `inputs` is TOML for the [[inputs]] tables; a file output to
    /// `out/` and a fast registry flush are added.
    pub fn config(&self, inputs: &str) -> PathBuf {
        self.config_with(
            inputs,
            &format!(
                "[output.file]\npath = {:?}\nrotate_every_kb = 1048576\n",
                self.out().display().to_string()
            ),
        )
    }

    pub fn config_with(&self, inputs: &str, output: &str) -> PathBuf {
        let text = format!(
            "[path]\ndata = {:?}\n\n{inputs}\n\n{output}\n[registry]\nflush = \"100ms\"\n[logging]\nlevel = \"{}\"\n[logging.metrics]\nenabled = false\n",
            self.data().display().to_string(),
            std::env::var("OXIBEAT_TEST_LOG").unwrap_or_else(|_| "info".into())
        );
        let p = self.path().join("oxibeat.toml");
        fs::write(&p, text).unwrap();
        p
    }

    /// A filestream input over `logs/<glob>` with extra TOML lines.
    pub fn input(&self, id: &str, glob: &str, extra: &str) -> String {
        format!(
            "[[inputs]]\ntype = \"filestream\"\nid = {id:?}\npaths = [{:?}]\nprospector.scanner.check_interval = \"200ms\"\nbackoff.init = \"50ms\"\nbackoff.max = \"200ms\"\n{extra}\n",
            self.logs().join(glob).display().to_string()
        )
    }

    pub fn run_once(&self, cfg: &Path) -> Output {
        let out = Command::new(bin())
            .args(["run", "--once", "-e", "-c"])
            .arg(cfg)
            .output()
            .expect("run oxibeat");
        assert!(
            out.status.success(),
            "oxibeat --once failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn spawn(&self, cfg: &Path) -> Agent {
        // Logs go to a file, not a pipe: a full pipe nobody reads would block the agent.
        let log = self.path().join(format!("agent-{}.log", self.next_log()));
        let child = Command::new(bin())
            .args(["run", "-e", "-c"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("agent log file"))
            .spawn()
            .expect("spawn oxibeat");
        Agent {
            child: Some(child),
            log,
        }
    }

    fn next_log(&self) -> usize {
        let n = fs::read_dir(self.path())
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
                    .count()
            })
            .unwrap_or(0);
        n + 1
    }

    /// Every delivered event, in output order.
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.out())
    }

    /// Wait until at least `n` events were delivered (or fail after `secs`).
    pub fn wait_events(&self, n: usize, secs: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let ev = self.events();
            if ev.len() >= n {
                return ev;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {n} events, got {}", ev.len());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn read_events(dir: &Path) -> Vec<Value> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            // A line being written right now may be incomplete: skip it.
            if let Ok(v) = serde_json::from_str(line) {
                out.push(v);
            }
        }
    }
    out
}

/// A running agent, killed on drop.
pub struct Agent {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Agent {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// SIGTERM, then wait; returns stderr and whether it exited 0.
    pub fn stop(&mut self) -> (bool, String) {
        let mut child = self.child.take().expect("running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let err = fs::read_to_string(&self.log).unwrap_or_default();
                return (status.success(), err);
            }
            if Instant::now() > deadline {
                if std::env::var("OXIBEAT_TEST_DEBUG").is_ok() {
                    let bt = Command::new("gdb")
                        .args([
                            "-p",
                            &child.id().to_string(),
                            "-batch",
                            "-ex",
                            "thread apply all bt",
                        ])
                        .output();
                    if let Ok(bt) = bt {
                        eprintln!("{}", String::from_utf8_lossy(&bt.stdout));
                    }
                }
                let _ = child.kill();
                panic!("agent did not stop within 30s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Workspace {
    /// `spawn`, with the agent's open-file limit (soft and hard) set to `nofile`.
    pub fn spawn_with_nofile(&self, cfg: &Path, nofile: u64) -> Agent {
        let log = self.path().join(format!("agent-{}.log", self.next_log()));
        let mut cmd = Command::new(bin());
        cmd.args(["run", "-e", "-c"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("agent log file"));
        nofile::limit_open_files(&mut cmd, nofile);
        Agent {
            child: Some(cmd.spawn().expect("spawn oxibeat")),
            log,
        }
    }
}

/// Resident memory of a process, in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Append lines to a file (creating it), flushing at once.
pub fn append(path: &Path, lines: &[String]) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

/// Lines "<prefix> seq=<i> <padding>" for i in range.
pub fn seq_lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("{prefix} seq={i} the quick brown fox jumps over the lazy dog"))
        .collect()
}

/// The seq numbers found in delivered messages that start with `prefix`.
pub fn seqs(events: &[Value], prefix: &str) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with(prefix))
        .filter_map(|m| {
            let rest = m.split("seq=").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .collect()
}

/// Assert every seq in 0..n appears at least once; returns how many duplicates there were.
pub fn assert_complete(mut got: Vec<usize>, n: usize, what: &str) -> usize {
    got.sort_unstable();
    let total = got.len();
    got.dedup();
    let missing: Vec<usize> = (0..n).filter(|i| got.binary_search(i).is_err()).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {n} lines missing, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    total - got.len()
}
