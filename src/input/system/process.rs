//! `process`: one event per process with ECS `process.*`, `user.name` and Metricbeat's
//! `system.process.*` (CPU ticks and percentages, memory, file descriptors, I/O, cgroup).
//!
//! Every collection reads `/proc/[pid]/stat` of every process (cheap); CPU percentages come
//! from the delta of utime+stime against the previous collection (a rate metricset: the first
//! collection only primes). Then `processes` (name patterns) and `include_top_n` (top N by
//! CPU ∪ top N by RSS) select the processes to report, and only those have their other files
//! read (cmdline, exe, cwd, status, io, limits, fd, cgroup), which keeps the cost low.
//! A process first seen in this collection has no previous sample: its event has no CPU
//! percentages (as Metricbeat). The same holds for a cgroup's CPU percentages
//! (`system.process.cgroup.cpu.stats.*.pct`, cgroup v2 only, see `cgroup.rs`): they start
//! with the second collection that reports a process of that cgroup.
//!
//! Ticks are milliseconds (clock ticks × 1000 / USER_HZ), as Metricbeat reports them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::cgroup;
use super::process_summary::list_pids;
use super::procfs::{self, round4, HostFs, PidStat};
use super::{Docs, Metricset, SystemError, TopN};
use crate::event::format_timestamp;

pub struct Process {
    fs: Arc<HostFs>,
    top: TopN,
    patterns: Vec<Regex>,
    hz: u64,
    page: u64,
    /// pid → (starttime, utime+stime ticks) at the previous collection.
    prev: HashMap<u32, (u64, u64)>,
    prev_at: Option<Instant>,
    /// The cgroup2 mount (under hostfs), looked up once.
    cg_mount: Option<Option<PathBuf>>,
    /// cgroup path → CPU sample at the previous collection.
    cg_prev: HashMap<String, cgroup::CpuSample>,
    /// `process.cgroups.enabled`.
    cgroups: bool,
}

/// One process after the cheap pass.
struct Sample {
    stat: PidStat,
    /// CPU share of one core over the period (0..cores), if a previous sample exists.
    pct: Option<f64>,
    rss_bytes: u64,
}

impl Process {
    pub fn new(fs: Arc<HostFs>, top: TopN, patterns: Vec<Regex>) -> Self {
        Process {
            fs,
            top,
            patterns,
            hz: procfs::clock_ticks(),
            page: procfs::page_size(),
            prev: HashMap::new(),
            prev_at: None,
            cg_mount: None,
            cg_prev: HashMap::new(),
            cgroups: true,
        }
    }

    /// `process.cgroups.enabled = false` leaves `system.process.cgroup` out.
    pub fn with_cgroups(mut self, enabled: bool) -> Self {
        self.cgroups = enabled;
        self
    }

    fn ms(&self, ticks: u64) -> u64 {
        ticks.saturating_mul(1000) / self.hz.max(1)
    }
}

/// Indices of the samples to report: all, or top N by CPU ∪ top N by memory.
fn select_top(samples: &[Sample], top: &TopN) -> Vec<usize> {
    let all: Vec<usize> = (0..samples.len()).collect();
    if !top.enabled || (top.by_cpu == 0 && top.by_memory == 0) {
        return all;
    }
    let mut chosen: Vec<usize> = Vec::new();
    let mut seen = HashSet::new();
    if top.by_cpu > 0 {
        let mut by_cpu = all.clone();
        by_cpu.sort_by(|a, b| {
            let pa = samples[*a].pct.unwrap_or(0.0);
            let pb = samples[*b].pct.unwrap_or(0.0);
            pb.total_cmp(&pa)
        });
        for i in by_cpu.into_iter().take(top.by_cpu) {
            if seen.insert(i) {
                chosen.push(i);
            }
        }
    }
    if top.by_memory > 0 {
        let mut by_mem = all;
        by_mem.sort_by_key(|i| std::cmp::Reverse(samples[*i].rss_bytes));
        for i in by_mem.into_iter().take(top.by_memory) {
            if seen.insert(i) {
                chosen.push(i);
            }
        }
    }
    chosen
}

fn readlink(fs: &HostFs, pid: u32, what: &str) -> Option<String> {
    std::fs::read_link(fs.proc(&format!("{pid}/{what}")))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

impl Process {
    fn event(
        &self,
        s: &Sample,
        cores: usize,
        btime: Option<u64>,
        mem_total: u64,
        users: &HashMap<u32, String>,
        cgroup: Option<Value>,
    ) -> Map<String, Value> {
        let fs = &*self.fs;
        let st = &s.stat;
        let pid = st.pid;
        let read = |f: &str| std::fs::read_to_string(fs.proc(&format!("{pid}/{f}"))).ok();
        let state = procfs::state_name(st.state);

        let mut process = Map::new();
        process.insert("pid".into(), json!(pid));
        process.insert("parent".into(), json!({"pid": st.ppid}));
        process.insert("pgid".into(), json!(st.pgrp));
        process.insert("name".into(), json!(st.comm));
        process.insert("state".into(), json!(state));
        let mut sys = Map::new();
        sys.insert("state".into(), json!(state));
        sys.insert("num_threads".into(), json!(st.num_threads));

        if let Ok(bytes) = std::fs::read(fs.proc(&format!("{pid}/cmdline"))) {
            let args = procfs::parse_cmdline(&bytes);
            if !args.is_empty() {
                let line = args.join(" ");
                process.insert("command_line".into(), json!(line));
                sys.insert("cmdline".into(), json!(line));
                process.insert("args".into(), json!(args));
            }
        }
        if let Some(exe) = readlink(fs, pid, "exe") {
            process.insert("executable".into(), json!(exe));
        }
        if let Some(cwd) = readlink(fs, pid, "cwd") {
            process.insert("working_directory".into(), json!(cwd));
        }

        // CPU.
        let user_ms = self.ms(st.utime);
        let sys_ms = self.ms(st.stime);
        let total_ms = user_ms + sys_ms;
        let mut total = Map::new();
        total.insert("ticks".into(), json!(total_ms));
        total.insert("value".into(), json!(total_ms as f64));
        let mut pcpu = Map::new();
        if let Some(p) = s.pct {
            let norm = round4(p / cores.max(1) as f64);
            total.insert("pct".into(), json!(round4(p)));
            total.insert("norm".into(), json!({"pct": norm}));
            pcpu.insert("pct".into(), json!(norm));
        }
        let mut cpu = Map::new();
        if let Some(bt) = btime {
            let start = bt + st.starttime / self.hz.max(1);
            let ts = format_timestamp((start as i64).saturating_mul(1_000_000_000));
            cpu.insert("start_time".into(), json!(ts));
            pcpu.insert("start_time".into(), json!(ts));
        }
        cpu.insert("user".into(), json!({"ticks": user_ms}));
        cpu.insert("system".into(), json!({"ticks": sys_ms}));
        cpu.insert("total".into(), Value::Object(total));
        sys.insert("cpu".into(), Value::Object(cpu));
        if !pcpu.is_empty() {
            process.insert("cpu".into(), Value::Object(pcpu));
        }

        // Memory.
        let rss_pct = if mem_total > 0 {
            round4(s.rss_bytes as f64 / mem_total as f64)
        } else {
            0.0
        };
        let mut mem = Map::new();
        mem.insert("size".into(), json!(st.vsize));
        mem.insert("rss".into(), json!({"bytes": s.rss_bytes, "pct": rss_pct}));
        if let Some((_, _, shared)) = read("statm").and_then(|t| procfs::parse_statm(&t)) {
            mem.insert("share".into(), json!(shared.saturating_mul(self.page)));
        }
        if let Some(status) = read("status") {
            let st = procfs::parse_status(&status);
            if let Some(swap) = procfs::status_kb(&st, "VmSwap") {
                mem.insert("swap".into(), json!(swap));
            }
            if let Some(name) = procfs::status_uid(&st).and_then(|u| users.get(&u)) {
                // Set below, at the root.
                process.insert("__user".into(), json!(name));
            }
        }
        sys.insert("memory".into(), Value::Object(mem));
        process.insert("memory".into(), json!({"pct": rss_pct}));

        // File descriptors (needs the same user or CAP_SYS_PTRACE).
        let mut fd = Map::new();
        if let Ok(rd) = std::fs::read_dir(fs.proc(&format!("{pid}/fd"))) {
            fd.insert("open".into(), json!(rd.count()));
        }
        if let Some((soft, hard)) = read("limits").and_then(|t| procfs::parse_fd_limits(&t)) {
            fd.insert("limit".into(), json!({"soft": soft, "hard": hard}));
        }
        if !fd.is_empty() {
            sys.insert("fd".into(), Value::Object(fd));
        }
        if let Some(io) = read("io") {
            let mut m = Map::new();
            for (k, v) in procfs::parse_pid_io(&io) {
                let name = match k.as_str() {
                    "rchar" => "read_char",
                    "wchar" => "write_char",
                    "syscr" => "read_ops",
                    "syscw" => "write_ops",
                    "read_bytes" => "read_bytes",
                    "write_bytes" => "write_bytes",
                    "cancelled_write_bytes" => "cancelled_write_bytes",
                    _ => continue,
                };
                m.insert(name.into(), json!(v));
            }
            if !m.is_empty() {
                sys.insert("io".into(), Value::Object(m));
            }
        }
        if let Some(cg) = cgroup {
            sys.insert("cgroup".into(), cg);
        }

        let user = process.remove("__user");
        let mut doc = Map::new();
        doc.insert("process".into(), Value::Object(process));
        if let Some(name) = user {
            doc.insert("user".into(), json!({ "name": name }));
        }
        doc.insert("system".into(), json!({ "process": sys }));
        doc
    }
}

impl Metricset for Process {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let now = Instant::now();
        let pids = list_pids(&self.fs)?;
        let elapsed_ms = self
            .prev_at
            .replace(now)
            .map(|t| now.duration_since(t).as_secs_f64() * 1000.0);
        let mut next = HashMap::with_capacity(pids.len());
        let mut samples = Vec::with_capacity(pids.len());
        for pid in pids {
            let Ok(text) = std::fs::read_to_string(self.fs.proc(&format!("{pid}/stat"))) else {
                continue; // exited meanwhile
            };
            let Some(stat) = procfs::parse_pid_stat(&text) else {
                tracing::debug!(pid, "unparsable /proc/[pid]/stat; skipping");
                continue;
            };
            let ticks = stat.utime + stat.stime;
            next.insert(pid, (stat.starttime, ticks));
            if !self.patterns.is_empty() && !self.patterns.iter().any(|r| r.is_match(&stat.comm)) {
                continue;
            }
            // Same pid AND same start time: not a recycled pid.
            let pct = match (elapsed_ms, self.prev.get(&pid)) {
                (Some(ms), Some(&(start, before))) if start == stat.starttime && ms > 0.0 => {
                    Some(self.ms(ticks.saturating_sub(before)) as f64 / ms)
                }
                _ => None,
            };
            samples.push(Sample {
                rss_bytes: stat.rss.saturating_mul(self.page),
                stat,
                pct,
            });
        }
        self.prev = next;
        if elapsed_ms.is_none() {
            return Ok(Vec::new());
        }
        let stat = procfs::parse_stat(&self.fs.read_proc("stat")?);
        let mem_total = self
            .fs
            .read_proc("meminfo")
            .map(|t| procfs::parse_meminfo(&t))
            .ok()
            .and_then(|m| m.get("MemTotal").copied())
            .unwrap_or(0);
        let users = std::fs::read_to_string(self.fs.join("/etc/passwd"))
            .map(|t| procfs::parse_passwd(&t))
            .unwrap_or_default();
        if self.cg_mount.is_none() && self.cgroups {
            self.cg_mount = Some(cgroup::find_v2_mount(&self.fs));
        }
        let mount = self.cg_mount.clone().flatten();
        let elapsed_ns = elapsed_ms.map(|ms| ms * 1e6);
        // Processes of one cgroup share its statistics: read each cgroup once.
        let mut cg_cache: HashMap<String, Value> = HashMap::new();
        let mut cg_next = HashMap::new();
        let mut docs = Vec::new();
        for i in select_top(&samples, &self.top) {
            let pid = samples[i].stat.pid;
            let cg = self
                .cgroups
                .then(|| std::fs::read_to_string(self.fs.proc(&format!("{pid}/cgroup"))).ok())
                .flatten()
                .and_then(|t| procfs::parse_cgroup(&t))
                .map(|(version, path)| {
                    if let Some(v) = cg_cache.get(&path) {
                        return v.clone();
                    }
                    let id = path.rsplit('/').next().unwrap_or("").to_string();
                    let mut m = Map::new();
                    m.insert("cgroups_version".into(), json!(version));
                    m.insert("id".into(), json!(id));
                    m.insert("path".into(), json!(path));
                    if let (2, Some(mnt)) = (version, &mount) {
                        let dir = mnt.join(path.trim_start_matches('/'));
                        let prev = self.cg_prev.get(&path).copied();
                        let (fields, sample) =
                            cgroup::v2_fields(&dir, &path, prev, elapsed_ns, stat.cores);
                        m.extend(fields);
                        if let Some(s) = sample {
                            cg_next.insert(path.clone(), s);
                        }
                    }
                    let v = Value::Object(m);
                    cg_cache.insert(path, v.clone());
                    v
                });
            docs.push(self.event(&samples[i], stat.cores, stat.btime, mem_total, &users, cg));
        }
        self.cg_prev = cg_next;
        Ok(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pid: u32, pct: Option<f64>, rss: u64) -> Sample {
        Sample {
            stat: PidStat {
                pid,
                ..Default::default()
            },
            pct,
            rss_bytes: rss,
        }
    }

    #[test]
    fn top_n_is_union_of_cpu_and_memory() {
        let s = vec![
            sample(1, Some(0.5), 10),
            sample(2, Some(0.1), 1000),
            sample(3, Some(0.9), 5),
            sample(4, None, 500),
        ];
        let top = |c, m| TopN {
            enabled: true,
            by_cpu: c,
            by_memory: m,
        };
        let pids = |v: Vec<usize>| v.into_iter().map(|i| s[i].stat.pid).collect::<Vec<_>>();
        assert_eq!(pids(select_top(&s, &top(2, 0))), vec![3, 1]);
        assert_eq!(pids(select_top(&s, &top(1, 2))), vec![3, 2, 4]);
        assert_eq!(pids(select_top(&s, &top(0, 0))).len(), 4);
        let off = TopN {
            enabled: false,
            by_cpu: 1,
            by_memory: 1,
        };
        assert_eq!(select_top(&s, &off).len(), 4);
    }

    /// Under a hostfs prefix: pids, stat and the cgroup v2 statistics come from the prefix.
    #[test]
    fn hostfs_and_cgroup_v2() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let w = |p: &str, t: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        w("proc/1/mounts", "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n");
        w(
            "proc/stat",
            "cpu  1 0 1 10 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0\nbtime 1700000000\n",
        );
        w("proc/meminfo", "MemTotal: 1000 kB\n");
        w(
            "proc/42/stat",
            "42 (app) S 1 42 42 0 -1 0 0 0 0 0 10 5 0 0 20 0 3 0 100 1000000 50 0",
        );
        w("proc/42/cgroup", "0::/app.slice\n");
        w("proc/42/cmdline", "/usr/bin/app\0--flag\0");
        w("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
        w("proc/42/status", "Uid:\t0\t0\t0\t0\nVmSwap:\t4 kB\n");
        w(
            "sys/fs/cgroup/app.slice/cpu.stat",
            "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\n",
        );
        w("sys/fs/cgroup/app.slice/memory.current", "4096\n");
        let fs = Arc::new(HostFs::new(Some(root)));
        let mut p = Process::new(fs, TopN::default(), vec![]);
        assert!(p.collect().unwrap().is_empty());
        let docs = p.collect().unwrap();
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(d["process"]["pid"], 42);
        assert_eq!(d["process"]["name"], "app");
        assert_eq!(d["process"]["args"], json!(["/usr/bin/app", "--flag"]));
        assert_eq!(d["process"]["cpu"]["pct"], 0.0);
        assert_eq!(d["user"]["name"], "root");
        let sp = &d["system"]["process"];
        assert_eq!(sp["memory"]["swap"], 4096);
        assert_eq!(
            sp["memory"]["rss"]["pct"],
            round4(50.0 * 4096.0 / 1024000.0)
        );
        assert_eq!(sp["cpu"]["start_time"], "2023-11-14T22:13:21.000Z");
        let cg = &sp["cgroup"];
        assert_eq!(cg["cgroups_version"], 2);
        assert_eq!(cg["id"], "app.slice");
        assert_eq!(cg["cpu"]["stats"]["usage"]["ns"], 2_000_000);
        assert!(
            cg["cpu"]["stats"]["usage"].get("pct").is_none(),
            "cgroup not seen before"
        );
        assert_eq!(cg["memory"]["mem"]["usage"]["bytes"], 4096);
        // The cgroup's percentages start with its second sample.
        let docs = p.collect().unwrap();
        let cg = &docs[0]["system"]["process"]["cgroup"];
        assert_eq!(cg["cpu"]["stats"]["usage"]["pct"], 0.0);
        assert_eq!(cg["cpu"]["stats"]["usage"]["norm"]["pct"], 0.0);
    }

    #[test]
    fn own_process_event() {
        let mut p = Process::new(Arc::new(HostFs::default()), TopN::default(), vec![]);
        assert!(p.collect().unwrap().is_empty(), "first collection primes");
        // Burn some CPU so our own process has ticks.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 60 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let docs = p.collect().unwrap();
        let me = std::process::id();
        let d = docs
            .iter()
            .find(|d| d["process"]["pid"] == me)
            .expect("own process reported");
        assert!(d["process"]["name"].is_string());
        assert!(d["process"]["cpu"]["pct"].is_number());
        assert!(d["system"]["process"]["cpu"]["total"]["ticks"].is_number());
        assert!(
            d["system"]["process"]["memory"]["rss"]["bytes"]
                .as_u64()
                .unwrap()
                > 0
        );
        assert!(d["system"]["process"]["fd"]["open"].as_u64().unwrap() > 0);
        assert!(d["process"]["executable"].is_string());
    }
}
