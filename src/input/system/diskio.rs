//! `diskio`: one event per block device from `/proc/diskstats`: counters since boot
//! (`read`/`write` `.count`, `.bytes`, `.time` in ms, `io.time` ms, `io.ops` in flight) and,
//! as Metricbeat on Linux, `iostat.*` rates over the period. Because of the rates this is a
//! rate metricset: the first sample only primes (see the module docs). A device that
//! appears between two samples is reported from its second sample on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::procfs::{self, DiskStat, HostFs};
use super::{Docs, Metricset, SystemError};

pub struct Diskio {
    fs: Arc<HostFs>,
    include: Vec<String>,
    prev: HashMap<String, DiskStat>,
    prev_at: Option<Instant>,
}

impl Diskio {
    pub fn new(fs: Arc<HostFs>, include: Vec<String>) -> Self {
        Diskio {
            fs,
            include,
            prev: HashMap::new(),
            prev_at: None,
        }
    }
}

fn r2(v: f64) -> f64 {
    procfs::round(v, 4)
}

/// The event fields of `cur`, with `iostat` computed against `prev` over `elapsed_ms`.
pub fn diskio_fields(cur: &DiskStat, prev: &DiskStat, elapsed_ms: f64) -> Map<String, Value> {
    let d = |c: u64, p: u64| c.saturating_sub(p);
    let rd_ios = d(cur.reads, prev.reads);
    let wr_ios = d(cur.writes, prev.writes);
    let rd_bytes = d(cur.read_bytes(), prev.read_bytes());
    let wr_bytes = d(cur.write_bytes(), prev.write_bytes());
    let rd_ticks = d(cur.read_ms, prev.read_ms);
    let wr_ticks = d(cur.write_ms, prev.write_ms);
    let ticks = d(cur.io_ms, prev.io_ms);
    let aveq = d(cur.weighted_io_ms, prev.weighted_io_ms);
    let n_ios = rd_ios + wr_ios;
    let per_ios = |x: u64, n: u64| if n > 0 { x as f64 / n as f64 } else { 0.0 };
    let ms = elapsed_ms.max(1.0);
    let per_sec = |x: u64| 1000.0 * x as f64 / ms;
    let mut doc = Map::new();
    doc.insert(
        "system".into(),
        json!({"diskio": {
            "name": cur.name,
            "read": {"count": cur.reads, "bytes": cur.read_bytes(), "time": cur.read_ms},
            "write": {"count": cur.writes, "bytes": cur.write_bytes(), "time": cur.write_ms},
            "io": {"time": cur.io_ms, "ops": cur.in_progress},
            "iostat": {
                "read": {
                    "request": {
                        "merges_per_sec": r2(per_sec(d(cur.reads_merged, prev.reads_merged))),
                        "per_sec": r2(per_sec(rd_ios)),
                    },
                    "per_sec": {"bytes": r2(per_sec(rd_bytes))},
                    "await": r2(per_ios(rd_ticks, rd_ios)),
                },
                "write": {
                    "request": {
                        "merges_per_sec": r2(per_sec(d(cur.writes_merged, prev.writes_merged))),
                        "per_sec": r2(per_sec(wr_ios)),
                    },
                    "per_sec": {"bytes": r2(per_sec(wr_bytes))},
                    "await": r2(per_ios(wr_ticks, wr_ios)),
                },
                "request": {"avg_size": r2(per_ios(rd_bytes + wr_bytes, n_ios))},
                "queue": {"avg_size": r2(aveq as f64 / ms)},
                "await": r2(per_ios(rd_ticks + wr_ticks, n_ios)),
                "service_time": r2(per_ios(ticks, n_ios)),
                "busy": r2((100.0 * ticks as f64 / ms).min(100.0)),
            },
        }}),
    );
    doc
}

impl Metricset for Diskio {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let now = Instant::now();
        let stats = procfs::parse_diskstats(&self.fs.read_proc("diskstats")?);
        let elapsed = self
            .prev_at
            .replace(now)
            .map(|t| now.duration_since(t).as_secs_f64() * 1000.0);
        let mut next = HashMap::with_capacity(stats.len());
        let mut docs = Vec::new();
        for s in stats {
            if !self.include.is_empty() && !self.include.contains(&s.name) {
                continue;
            }
            if let (Some(ms), Some(p)) = (elapsed, self.prev.get(&s.name)) {
                docs.push(diskio_fields(&s, p, ms));
            }
            next.insert(s.name.clone(), s);
        }
        self.prev = next;
        Ok(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_rates() {
        let list = procfs::parse_diskstats(include_str!("fixtures/diskstats"));
        let cur = list.iter().find(|d| d.name == "vda").unwrap().clone();
        let mut prev = cur.clone();
        prev.reads -= 100;
        prev.sectors_read -= 800; // 409600 bytes
        prev.read_ms -= 50;
        prev.io_ms -= 500;
        let d = diskio_fields(&cur, &prev, 1000.0);
        let k = &d["system"]["diskio"];
        assert_eq!(k["name"], "vda");
        assert_eq!(k["read"]["count"], 13106);
        assert_eq!(k["read"]["bytes"], 3600402u64 * 512);
        assert_eq!(k["write"]["time"], 8407);
        assert_eq!(k["io"]["time"], 4412);
        let io = &k["iostat"];
        assert_eq!(io["read"]["request"]["per_sec"], 100.0);
        assert_eq!(io["read"]["per_sec"]["bytes"], 409600.0);
        assert_eq!(io["read"]["await"], 0.5);
        assert_eq!(io["request"]["avg_size"], 4096.0);
        assert_eq!(io["busy"], 50.0);
        assert_eq!(io["service_time"], 5.0);
    }

    #[test]
    fn first_sample_primes() {
        let mut d = Diskio::new(Arc::new(HostFs::default()), vec![]);
        assert!(d.collect().unwrap().is_empty());
        let second = d.collect().unwrap();
        let n = procfs::parse_diskstats(&std::fs::read_to_string("/proc/diskstats").unwrap()).len();
        assert_eq!(second.len(), n);
    }
}
