//! Parsers for the `/proc` and `/sys` files the system metricsets read, and the paths they
//! live under (`hostfs`, like Metricbeat's `system.hostfs`).
//!
//! Every parser takes the file's text and returns plain numbers. A malformed value is skipped
//! (with a debug log), never a panic: `/proc` formats differ between kernels, and a missing
//! column must cost one field, not the whole event.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the host's `/proc`, `/sys` and `/etc` are (a container mounts them under a prefix).
#[derive(Debug, Clone)]
pub struct HostFs {
    root: PathBuf,
}

impl Default for HostFs {
    fn default() -> Self {
        HostFs::new(None)
    }
}

impl HostFs {
    /// `None` or `/` means this machine's own filesystem.
    pub fn new(root: Option<&Path>) -> Self {
        HostFs {
            root: root
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/")),
        }
    }

    /// True when reading the host through a prefix (a container with the host mounted).
    pub fn is_prefixed(&self) -> bool {
        self.root != Path::new("/")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` (absolute, as on the host) under the prefix.
    pub fn join(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    pub fn proc(&self, rel: &str) -> PathBuf {
        self.join(&format!("/proc/{rel}"))
    }

    /// Read a whole file; `/proc` files are small and generated on read.
    pub fn read(&self, path: &Path) -> Result<String, super::SystemError> {
        std::fs::read_to_string(path).map_err(|source| super::SystemError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn read_proc(&self, rel: &str) -> Result<String, super::SystemError> {
        self.read(&self.proc(rel))
    }
}

/// Parse an unsigned integer; on failure log at debug and return `None`.
pub fn num(field: &str, what: &str) -> Option<u64> {
    match field.parse::<u64>() {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::debug!(
                value = field,
                field = what,
                "skipping unparsable /proc value"
            );
            None
        }
    }
}

fn float(field: &str, what: &str) -> Option<f64> {
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(v),
        _ => {
            tracing::debug!(
                value = field,
                field = what,
                "skipping unparsable /proc value"
            );
            None
        }
    }
}

/// Round half away from zero to `places` decimals, as Metricbeat's `common.Round`.
pub fn round(v: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    let r = (v * p).round() / p;
    if r == 0.0 {
        0.0 // no -0
    } else {
        r
    }
}

/// Metricbeat rounds percentages and loads to 4 decimals.
pub fn round4(v: f64) -> f64 {
    round(v, 4)
}

// ---------------------------------------------------------------------------------------------
// /proc/stat

/// One `cpu` line of `/proc/stat`, in USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Sum of the states Metricbeat counts (guest time is already inside user/nice).
    pub fn total(&self) -> u64 {
        self.user
            .saturating_add(self.nice)
            .saturating_add(self.system)
            .saturating_add(self.idle)
            .saturating_add(self.iowait)
            .saturating_add(self.irq)
            .saturating_add(self.softirq)
            .saturating_add(self.steal)
    }
}

/// What the metricsets need from `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stat {
    /// The aggregate `cpu` line.
    pub total: CpuTimes,
    /// Number of `cpuN` lines (online CPUs).
    pub cores: usize,
    /// Boot time, seconds since the epoch.
    pub btime: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

fn parse_cpu_fields<'a>(mut it: impl Iterator<Item = &'a str>) -> CpuTimes {
    let mut next = |name: &str| it.next().and_then(|f| num(f, name)).unwrap_or(0);
    CpuTimes {
        user: next("cpu.user"),
        nice: next("cpu.nice"),
        system: next("cpu.system"),
        idle: next("cpu.idle"),
        iowait: next("cpu.iowait"),
        irq: next("cpu.irq"),
        softirq: next("cpu.softirq"),
        steal: next("cpu.steal"),
    }
}

pub fn parse_stat(text: &str) -> Stat {
    let mut s = Stat::default();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some(key) = it.next() else { continue };
        match key {
            "cpu" => s.total = parse_cpu_fields(it),
            k if k.starts_with("cpu") && k[3..].bytes().all(|b| b.is_ascii_digit()) => s.cores += 1,
            "btime" => s.btime = it.next().and_then(|v| num(v, "btime")),
            "procs_running" => s.procs_running = it.next().and_then(|v| num(v, "procs_running")),
            "procs_blocked" => s.procs_blocked = it.next().and_then(|v| num(v, "procs_blocked")),
            _ => {}
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// /proc/meminfo

/// `/proc/meminfo` as key → bytes (values given in kB are multiplied by 1024; counts such as
/// `HugePages_Total` are kept as they are).
pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut it = rest.split_ascii_whitespace();
        let Some(v) = it.next().and_then(|v| num(v, key)) else {
            continue;
        };
        let v = match it.next() {
            Some("kB") => v.saturating_mul(1024),
            _ => v,
        };
        m.insert(key.to_string(), v);
    }
    m
}

// ---------------------------------------------------------------------------------------------
// /proc/loadavg, /proc/uptime

pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_ascii_whitespace();
    Some([
        float(it.next()?, "load1")?,
        float(it.next()?, "load5")?,
        float(it.next()?, "load15")?,
    ])
}

/// Seconds since boot (first field of `/proc/uptime`).
pub fn parse_uptime(text: &str) -> Option<f64> {
    float(text.split_ascii_whitespace().next()?, "uptime")
}

// ---------------------------------------------------------------------------------------------
// /proc/net/dev

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let f: Vec<&str> = rest.split_ascii_whitespace().collect();
        if f.len() < 12 {
            tracing::debug!(line, "skipping short /proc/net/dev line");
            continue;
        }
        let g = |i: usize, what: &str| num(f[i], what).unwrap_or(0);
        out.push(NetDev {
            name: name.to_string(),
            rx_bytes: g(0, "rx_bytes"),
            rx_packets: g(1, "rx_packets"),
            rx_errors: g(2, "rx_errs"),
            rx_dropped: g(3, "rx_drop"),
            tx_bytes: g(8, "tx_bytes"),
            tx_packets: g(9, "tx_packets"),
            tx_errors: g(10, "tx_errs"),
            tx_dropped: g(11, "tx_drop"),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// /proc/diskstats

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    pub name: String,
    pub reads: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_ms: u64,
    pub in_progress: u64,
    pub io_ms: u64,
    pub weighted_io_ms: u64,
}

impl DiskStat {
    /// Sectors in `/proc/diskstats` are always 512 bytes, whatever the device's sector size.
    pub fn read_bytes(&self) -> u64 {
        self.sectors_read.saturating_mul(512)
    }
    pub fn write_bytes(&self) -> u64 {
        self.sectors_written.saturating_mul(512)
    }
}

pub fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let g = |i: usize, what: &str| num(f[i], what).unwrap_or(0);
        out.push(DiskStat {
            name: f[2].to_string(),
            reads: g(3, "reads"),
            reads_merged: g(4, "reads_merged"),
            sectors_read: g(5, "sectors_read"),
            read_ms: g(6, "read_ms"),
            writes: g(7, "writes"),
            writes_merged: g(8, "writes_merged"),
            sectors_written: g(9, "sectors_written"),
            write_ms: g(10, "write_ms"),
            in_progress: g(11, "in_progress"),
            io_ms: g(12, "io_ms"),
            weighted_io_ms: g(13, "weighted_io_ms"),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// /proc/self/mounts, /proc/filesystems

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
}

/// Undo the octal escapes (`\040` for a space) the kernel writes in mount lines.
fn unescape_mount(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace();
            Some(Mount {
                device: unescape_mount(it.next()?),
                mount_point: unescape_mount(it.next()?),
                fs_type: it.next()?.to_string(),
            })
        })
        .collect()
}

/// File system types marked `nodev` in `/proc/filesystems` (Metricbeat's default
/// `filesystem.ignore_types`).
pub fn parse_nodev_filesystems(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            match (it.next(), it.next()) {
                (Some("nodev"), Some(t)) => Some(t.to_string()),
                _ => None,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// /proc/net/sockstat, /proc/net/{tcp,tcp6,udp,udp6}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SockStat {
    /// Pages.
    pub tcp_mem: Option<u64>,
    pub tcp_orphan: Option<u64>,
    /// Pages.
    pub udp_mem: Option<u64>,
}

pub fn parse_sockstat(text: &str) -> SockStat {
    let mut s = SockStat::default();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<&str> = rest.split_ascii_whitespace().collect();
        let get = |key: &str| {
            f.chunks(2)
                .find(|c| c.len() == 2 && c[0] == key)
                .and_then(|c| num(c[1], key))
        };
        match proto {
            "TCP" => {
                s.tcp_mem = get("mem");
                s.tcp_orphan = get("orphan");
            }
            "UDP" => s.udp_mem = get("mem"),
            _ => {}
        }
    }
    s
}

/// TCP states as numbered in `/proc/net/tcp` (`st` column, hex).
pub const TCP_ESTABLISHED: u8 = 0x01;
pub const TCP_SYN_SENT: u8 = 0x02;
pub const TCP_SYN_RECV: u8 = 0x03;
pub const TCP_FIN_WAIT1: u8 = 0x04;
pub const TCP_FIN_WAIT2: u8 = 0x05;
pub const TCP_TIME_WAIT: u8 = 0x06;
pub const TCP_CLOSE: u8 = 0x07;
pub const TCP_CLOSE_WAIT: u8 = 0x08;
pub const TCP_LAST_ACK: u8 = 0x09;
pub const TCP_LISTEN: u8 = 0x0A;
pub const TCP_CLOSING: u8 = 0x0B;

/// The `st` column of every socket line in a `/proc/net/{tcp,udp}[6]` table.
pub fn parse_socket_states(text: &str) -> Vec<u8> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let st = line.split_ascii_whitespace().nth(3)?;
            match u8::from_str_radix(st, 16) {
                Ok(v) => Some(v),
                Err(_) => {
                    tracing::debug!(line, "skipping socket line with bad state");
                    None
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// /proc/[pid]/*

/// The fields of `/proc/[pid]/stat` the process metricsets use (times in clock ticks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidStat {
    pub pid: u32,
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u64,
    /// Clock ticks after boot.
    pub starttime: u64,
    /// Bytes.
    pub vsize: u64,
    /// Pages.
    pub rss: u64,
}

/// `comm` may contain spaces and parentheses: it spans from the first `(` to the LAST `)`.
pub fn parse_pid_stat(text: &str) -> Option<PidStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = num(text[..open].trim(), "pid")? as u32;
    let comm = text[open + 1..close].to_string();
    // Fields after comm, numbered from 3 (state) as in proc(5).
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let f = |n: usize| rest.get(n - 3).copied();
    let g = |n: usize, what: &str| f(n).and_then(|v| num(v, what)).unwrap_or(0);
    Some(PidStat {
        pid,
        comm,
        state: f(3)?.chars().next()?,
        ppid: g(4, "ppid") as u32,
        pgrp: g(5, "pgrp") as u32,
        utime: g(14, "utime"),
        stime: g(15, "stime"),
        num_threads: g(20, "num_threads"),
        starttime: g(22, "starttime"),
        vsize: g(23, "vsize"),
        rss: g(24, "rss"),
    })
}

/// Metricbeat's state names for the `/proc/[pid]/stat` state letter.
pub fn state_name(c: char) -> &'static str {
    match c {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk_sleep",
        'I' => "idle",
        'T' | 't' => "stopped",
        'Z' => "zombie",
        'X' | 'x' => "dead",
        'K' => "wakekill",
        'W' => "waking",
        'P' => "parked",
        _ => "unknown",
    }
}

/// `/proc/[pid]/statm`: (size, resident, shared) in pages.
pub fn parse_statm(text: &str) -> Option<(u64, u64, u64)> {
    let mut it = text.split_ascii_whitespace();
    Some((
        num(it.next()?, "statm.size")?,
        num(it.next()?, "statm.resident")?,
        num(it.next()?, "statm.shared")?,
    ))
}

/// `/proc/[pid]/status` key → value text.
pub fn parse_status(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect()
}

/// A `status` value such as `VmSwap:  12 kB`, in bytes.
pub fn status_kb(status: &HashMap<&str, &str>, key: &str) -> Option<u64> {
    let v = status.get(key)?;
    let n = v.split_ascii_whitespace().next()?;
    num(n, key).map(|v| v.saturating_mul(1024))
}

/// Real uid from `Uid:` (first of real, effective, saved, fs).
pub fn status_uid(status: &HashMap<&str, &str>) -> Option<u32> {
    let v = status.get("Uid")?;
    num(v.split_ascii_whitespace().next()?, "Uid").map(|u| u as u32)
}

/// `/proc/[pid]/io` key → value.
pub fn parse_pid_io(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), num(v.trim(), k)?))
        })
        .collect()
}

/// `Max open files` from `/proc/[pid]/limits`: (soft, hard); `unlimited` is `u64::MAX`.
pub fn parse_fd_limits(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_ascii_whitespace();
    let lim = |s: &str| {
        if s == "unlimited" {
            Some(u64::MAX)
        } else {
            num(s, "Max open files")
        }
    };
    Some((lim(it.next()?)?, lim(it.next()?)?))
}

/// `/proc/[pid]/cmdline`: NUL-separated arguments.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// `/proc/[pid]/cgroup`: (version, path). On cgroup v2 (or hybrid with the unified line) the
/// `0::` line wins; on v1 the `memory` controller's path is used.
pub fn parse_cgroup(text: &str) -> Option<(u8, String)> {
    let mut v1: Option<String> = None;
    let mut v2: Option<String> = None;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            v2 = Some(path.to_string());
        } else if ctrls.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_string());
        }
    }
    match (v1, v2) {
        (Some(p), _) if p != "/" => Some((1, p)),
        (_, Some(p)) => Some((2, p)),
        (Some(p), None) => Some((1, p)),
        (None, None) => None,
    }
}

/// uid → user name from an `/etc/passwd` text.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split(':');
            let name = it.next()?;
            let _pw = it.next()?;
            let uid = it.next()?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// Clock ticks per second (`USER_HZ`), normally 100.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// `statvfs(2)` of a path, in bytes and inodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsUsage {
    pub total: u64,
    pub free: u64,
    pub available: u64,
    pub files: u64,
    pub free_files: u64,
}

pub fn statvfs(path: &Path) -> std::io::Result<FsUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: zeroed statvfs is a valid out-parameter; `c` is a valid NUL-terminated string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = s.f_frsize as u64;
    Ok(FsUsage {
        total: (s.f_blocks as u64).saturating_mul(frsize),
        free: (s.f_bfree as u64).saturating_mul(frsize),
        available: (s.f_bavail as u64).saturating_mul(frsize),
        files: s.f_files as u64,
        free_files: s.f_ffree as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = include_str!("fixtures/stat");
    const MEMINFO: &str = include_str!("fixtures/meminfo");
    const NET_DEV: &str = include_str!("fixtures/net_dev");
    const DISKSTATS: &str = include_str!("fixtures/diskstats");
    const MOUNTS: &str = include_str!("fixtures/mounts");
    const FILESYSTEMS: &str = include_str!("fixtures/filesystems");
    const SOCKSTAT: &str = include_str!("fixtures/sockstat");
    const NET_TCP: &str = include_str!("fixtures/net_tcp");
    const PID_STAT: &str = include_str!("fixtures/pid_stat");
    const PID_STATUS: &str = include_str!("fixtures/pid_status");
    const PID_IO: &str = include_str!("fixtures/pid_io");
    const PID_LIMITS: &str = include_str!("fixtures/pid_limits");
    const PID_CGROUP: &str = include_str!("fixtures/pid_cgroup");

    #[test]
    fn stat_fixture() {
        let s = parse_stat(STAT);
        assert_eq!(s.cores, 2);
        assert_eq!(
            s.total,
            CpuTimes {
                user: 12588,
                nice: 0,
                system: 3893,
                idle: 218921,
                iowait: 311,
                irq: 0,
                softirq: 23,
                steal: 14
            }
        );
        assert!(s.btime.is_some());
        assert!(s.procs_running.is_some());
        assert!(s.procs_blocked.is_some());
    }

    #[test]
    fn stat_short_and_garbage_lines() {
        let s = parse_stat("cpu  1 2 x 4\ncpu0 1 2 3 4\nbtime abc\n");
        assert_eq!(s.total.user, 1);
        assert_eq!(s.total.system, 0, "unparsable value skipped");
        assert_eq!(s.total.idle, 4);
        assert_eq!(s.total.steal, 0, "missing column is zero");
        assert_eq!(s.cores, 1);
        assert_eq!(s.btime, None);
    }

    #[test]
    fn meminfo_fixture() {
        let m = parse_meminfo(MEMINFO);
        let first = MEMINFO.lines().next().unwrap();
        let kb: u64 = first.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert_eq!(m["MemTotal"], kb * 1024);
        assert!(m.contains_key("MemAvailable"));
        assert!(m.contains_key("SwapTotal"));
        // Counts without a unit stay counts.
        assert_eq!(
            parse_meminfo("HugePages_Total:      3\n")["HugePages_Total"],
            3
        );
    }

    #[test]
    fn loadavg_and_uptime() {
        assert_eq!(
            parse_loadavg("0.97 0.35 0.16 2/85 7494\n"),
            Some([0.97, 0.35, 0.16])
        );
        assert_eq!(parse_loadavg("0.97 nan"), None);
        assert_eq!(parse_uptime("12345.67 2345.00\n"), Some(12345.67));
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn net_dev_fixture() {
        let d = parse_net_dev(NET_DEV);
        assert_eq!(d.len(), 4);
        let eth = d.iter().find(|d| d.name == "eth0").unwrap();
        assert_eq!(eth.rx_bytes, 57031726);
        assert_eq!(eth.rx_packets, 2752);
        assert_eq!(eth.tx_bytes, 147572);
        assert_eq!(eth.tx_packets, 1484);
        assert_eq!(d[0].name, "lo");
        assert_eq!(d[0].rx_bytes, 3193);
    }

    #[test]
    fn diskstats_fixture() {
        let d = parse_diskstats(DISKSTATS);
        let vda = d.iter().find(|d| d.name == "vda").unwrap();
        assert_eq!(vda.reads, 13106);
        assert_eq!(vda.reads_merged, 5139);
        assert_eq!(vda.read_bytes(), 3600402 * 512);
        assert_eq!(vda.read_ms, 13154);
        assert_eq!(vda.writes, 2424);
        assert_eq!(vda.write_bytes(), 2555936 * 512);
        assert_eq!(vda.write_ms, 8407);
        assert_eq!(vda.in_progress, 0);
        assert_eq!(vda.io_ms, 4412);
        assert_eq!(vda.weighted_io_ms, 21927);
        // Old kernels: exactly 14 columns.
        assert_eq!(
            parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n").len(),
            1
        );
        assert!(parse_diskstats("8 0 sda 1 2\n").is_empty());
    }

    #[test]
    fn mounts_fixture() {
        let m = parse_mounts(MOUNTS);
        let root = m.iter().find(|m| m.mount_point == "/").unwrap();
        assert_eq!(root.device, "/dev/vda");
        assert_eq!(root.fs_type, "ext4");
        let esc = parse_mounts("/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n");
        assert_eq!(esc[0].mount_point, "/mnt/my disk");
        let nodev = parse_nodev_filesystems(FILESYSTEMS);
        assert!(nodev.contains(&"tmpfs".to_string()));
        assert!(nodev.contains(&"proc".to_string()));
        assert!(!nodev.contains(&"ext4".to_string()));
    }

    #[test]
    fn sockstat_fixture_and_upstream_vector() {
        let s = parse_sockstat(SOCKSTAT);
        assert_eq!(s.tcp_mem, Some(261));
        assert_eq!(s.tcp_orphan, Some(0));
        assert_eq!(s.udp_mem, Some(0));
        // metricbeat/module/system/socket_summary/_meta/testdata/sockstat (no trailing newline).
        let upstream = "sockets: used 249\nTCP: inuse 2 orphan 0 tw 0 alloc 12 mem 1\nUDP: inuse 2 mem 11\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0";
        let s = parse_sockstat(upstream);
        assert_eq!(s.tcp_mem, Some(1));
        assert_eq!(s.tcp_orphan, Some(0));
        assert_eq!(s.udp_mem, Some(11));
    }

    #[test]
    fn socket_states_fixture() {
        assert_eq!(parse_socket_states(NET_TCP), vec![TCP_LISTEN]);
        assert_eq!(
            parse_socket_states("header\n 0: a b zz\n"),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn pid_stat_fixture() {
        let s = parse_pid_stat(PID_STAT).unwrap();
        assert_eq!(s.pid, 7531);
        assert_eq!(s.comm, "sleep");
        assert_eq!(s.state, 'R');
        assert_eq!(s.ppid, 7515);
        assert_eq!(s.pgrp, 7515);
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.starttime, 118145);
        assert_eq!(s.vsize, 2596864);
        assert_eq!(s.rss, 339);
    }

    #[test]
    fn pid_stat_comm_with_parens_and_spaces() {
        let t = "42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 4 0 99 1000 5 0";
        let s = parse_pid_stat(t).unwrap();
        assert_eq!(s.comm, "a (b) c");
        assert_eq!(s.state, 'S');
        assert_eq!((s.utime, s.stime), (7, 3));
        assert_eq!(s.num_threads, 4);
        assert_eq!(s.starttime, 99);
        assert!(parse_pid_stat("garbage").is_none());
        assert!(parse_pid_stat("x (y) S").is_none(), "bad pid");
    }

    #[test]
    fn pid_status_io_limits_cgroup() {
        let st = parse_status(PID_STATUS);
        assert_eq!(status_uid(&st), Some(0));
        assert_eq!(status_kb(&st, "VmSwap"), Some(0));
        assert_eq!(status_kb(&st, "VmRSS"), Some(1772 * 1024));
        let io = parse_pid_io(PID_IO);
        assert!(io.contains(&("rchar".into(), 6976)));
        assert!(io.contains(&("read_bytes".into(), 45056)));
        let (soft, hard) = parse_fd_limits(PID_LIMITS).unwrap();
        assert!(soft > 0 && hard >= soft);
        assert_eq!(
            parse_fd_limits(
                "Max open files            unlimited            unlimited            files\n"
            ),
            Some((u64::MAX, u64::MAX))
        );
        assert_eq!(
            parse_cgroup(PID_CGROUP),
            Some((1, "/process_api/545ba6502ec72c24f05795aa2fd45f36".into()))
        );
        assert_eq!(
            parse_cgroup("0::/user.slice/user-1000.slice/session-426.scope\n"),
            Some((2, "/user.slice/user-1000.slice/session-426.scope".into()))
        );
        assert_eq!(
            parse_cmdline(b"/bin/sleep\x001\x00"),
            vec!["/bin/sleep", "1"]
        );
        assert_eq!(state_name('S'), "sleeping");
        assert_eq!(state_name('?'), "unknown");
    }

    #[test]
    fn passwd_and_round() {
        let p = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n# c\nbad\nalex:x:1000:1000::/h:/bin/sh\n",
        );
        assert_eq!(p[&0], "root");
        assert_eq!(p[&1000], "alex");
        assert_eq!(round4(0.30904999), 0.309);
        assert_eq!(round4(0.00005), 0.0001);
        assert_eq!(round4(-0.00001), 0.0);
    }

    #[test]
    fn statvfs_root() {
        let u = statvfs(Path::new("/")).unwrap();
        assert!(u.total > 0 && u.free <= u.total && u.available <= u.free);
        assert!(statvfs(Path::new("/definitely/not/here")).is_err());
    }
}
