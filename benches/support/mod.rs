//! Helpers shared by the benchmarks: the agent binary, the 200-byte benchmark line, process
//! memory, a `--once` run pinned to one core, free ports and the Kafka broker.
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Apache Kafka, the same helper as the tests'.
#[path = "../../tests/support/kafka.rs"]
pub mod kafka;

/// The open-file limit of a spawned agent, the same helper as the tests'.
#[path = "../../tests/support/nofile.rs"]
pub mod nofile;

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

/// A 200-byte line (199 bytes + newline) with a sequence number.
pub fn line(i: usize) -> String {
    let head = format!(
        "2026-11-25T10:00:00.{:03}Z INFO [com.example.Service] request served seq={i} path=/api/items status=200 bytes=512 ",
        i % 1000
    );
    let pad = 199usize.saturating_sub(head.len());
    format!("{head}{}\n", "x".repeat(pad))
}

/// Resident memory of a process, in KiB (0 if it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `oxibeat run --once` on `cfg`, pinned to core 0; returns the wall time.
pub fn run_once_pinned(cfg: &Path) -> Duration {
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
        .arg(cfg)
        .status()
        .expect("taskset (util-linux) and the oxibeat binary");
    assert!(st.success(), "oxibeat --once failed: {st}");
    t.elapsed()
}

/// `libbeat.output.events.acked` from an agent's `/stats` endpoint.
pub fn acked(http_port: u16) -> Option<u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http_port)).ok()?;
    s.write_all(b"GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let json = body.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["libbeat"]["output"]["events"]["acked"].as_u64()
}

/// CPU time (utime + stime) of process `pid` so far, in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// Minor page faults of a process so far (pages it touched for the first time, or again after
/// its allocator gave them back).
pub fn minor_faults(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    rest.split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
