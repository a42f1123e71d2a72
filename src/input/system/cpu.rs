//! `cpu`: CPU time percentages from two samples of `/proc/stat`, as Metricbeat computes them.
//!
//! For each state, `pct` = delta(state) / delta(total) × cores (0..cores) and `norm.pct` the
//! same without the × cores (0..1); `ticks` is the raw counter. `total.pct` is
//! cores − (idle + iowait) share, as Metricbeat (iowait counts as idle). `host.cpu.usage` is
//! `total.norm.pct`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::procfs::{self, round4, CpuTimes, HostFs};
use super::{Docs, Metricset, SystemError};

use super::CpuMetric;

/// Which groups of values go into the event (`cpu.metrics`).
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub pct: bool,
    pub norm: bool,
    pub ticks: bool,
}

impl Wanted {
    pub const ALL: Wanted = Wanted {
        pct: true,
        norm: true,
        ticks: true,
    };

    pub fn from_metrics(m: &[CpuMetric]) -> Self {
        Wanted {
            pct: m.contains(&CpuMetric::Percentages),
            norm: m.contains(&CpuMetric::NormalizedPercentages),
            ticks: m.contains(&CpuMetric::Ticks),
        }
    }
}

pub struct Cpu {
    fs: Arc<HostFs>,
    wanted: Wanted,
    prev: Option<CpuTimes>,
}

impl Cpu {
    pub fn new(fs: Arc<HostFs>, metrics: &[CpuMetric]) -> Self {
        Cpu {
            fs,
            wanted: Wanted::from_metrics(metrics),
            prev: None,
        }
    }
}

/// The event fields for the change from `prev` to `cur`; `None` when no time passed.
pub fn cpu_fields(
    prev: &CpuTimes,
    cur: &CpuTimes,
    cores: usize,
    w: Wanted,
) -> Option<Map<String, Value>> {
    let dt = cur.total().saturating_sub(prev.total());
    if dt == 0 {
        return None;
    }
    let cores_f = cores.max(1) as f64;
    let share = |c: u64, p: u64| c.saturating_sub(p) as f64 / dt as f64;
    let state = |c: u64, p: u64| {
        let s = share(c, p);
        let mut m = Map::new();
        if w.pct {
            m.insert("pct".into(), json!(round4(s * cores_f)));
        }
        if w.norm {
            m.insert("norm".into(), json!({"pct": round4(s)}));
        }
        if w.ticks {
            m.insert("ticks".into(), json!(c));
        }
        Value::Object(m)
    };
    let idle_share = share(cur.idle, prev.idle) + share(cur.iowait, prev.iowait);
    let total_norm = round4(1.0 - idle_share);
    let mut cpu = Map::new();
    cpu.insert("cores".into(), json!(cores));
    cpu.insert("user".into(), state(cur.user, prev.user));
    cpu.insert("system".into(), state(cur.system, prev.system));
    cpu.insert("nice".into(), state(cur.nice, prev.nice));
    cpu.insert("idle".into(), state(cur.idle, prev.idle));
    cpu.insert("iowait".into(), state(cur.iowait, prev.iowait));
    cpu.insert("irq".into(), state(cur.irq, prev.irq));
    cpu.insert("softirq".into(), state(cur.softirq, prev.softirq));
    cpu.insert("steal".into(), state(cur.steal, prev.steal));
    let mut total = Map::new();
    if w.pct {
        total.insert("pct".into(), json!(round4(cores_f - idle_share * cores_f)));
    }
    if w.norm {
        total.insert("norm".into(), json!({ "pct": total_norm }));
    }
    if !total.is_empty() {
        cpu.insert("total".into(), Value::Object(total));
    }
    let mut doc = Map::new();
    doc.insert("system".into(), json!({ "cpu": cpu }));
    doc.insert("host".into(), json!({"cpu": {"usage": total_norm}}));
    Some(doc)
}

impl Metricset for Cpu {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let stat = procfs::parse_stat(&self.fs.read_proc("stat")?);
        let cur = stat.total;
        let Some(prev) = self.prev.replace(cur) else {
            return Ok(Vec::new());
        };
        Ok(cpu_fields(&prev, &cur, stat.cores, self.wanted)
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of Metricbeat's cpu data.json, rebuilt from a delta that gives them.
    #[test]
    fn matches_metricbeat_formula() {
        let prev = CpuTimes::default();
        // Per 10000 ticks on 24 cores: user 0.027, system 0.0169, idle 0.9532, iowait 0.0001
        let cur = CpuTimes {
            user: 270,
            nice: 3,
            system: 169,
            idle: 9532,
            iowait: 1,
            irq: 17,
            softirq: 8,
            steal: 0,
        };
        assert_eq!(cur.total(), 10000);
        let d = cpu_fields(&prev, &cur, 24, Wanted::ALL).unwrap();
        let c = &d["system"]["cpu"];
        assert_eq!(c["cores"], 24);
        assert_eq!(c["user"]["pct"], 0.648);
        assert_eq!(c["user"]["norm"]["pct"], 0.027);
        assert_eq!(c["user"]["ticks"], 270);
        assert_eq!(c["idle"]["pct"], 22.8768);
        // total = 1 - idle - iowait
        assert_eq!(c["total"]["norm"]["pct"], 0.0467);
        assert_eq!(c["total"]["pct"], 1.1208);
        assert_eq!(d["host"]["cpu"]["usage"], 0.0467);
    }

    #[test]
    fn no_time_no_event() {
        let t = CpuTimes::default();
        assert!(cpu_fields(&t, &t, 2, Wanted::ALL).is_none());
    }

    #[test]
    fn only_wanted_groups() {
        let cur = CpuTimes {
            user: 5,
            idle: 5,
            ..Default::default()
        };
        let w = Wanted::from_metrics(&[CpuMetric::Percentages]);
        let d = cpu_fields(&CpuTimes::default(), &cur, 2, w).unwrap();
        let c = &d["system"]["cpu"];
        assert_eq!(c["user"], json!({"pct": 1.0}));
        assert_eq!(c["total"], json!({"pct": 1.0}));
        // host.cpu.usage is always there.
        assert_eq!(d["host"]["cpu"]["usage"], 0.5);
    }

    #[test]
    fn first_sample_primes_only() {
        let mut c = Cpu::new(
            Arc::new(HostFs::default()),
            &[CpuMetric::NormalizedPercentages],
        );
        assert!(c.collect().unwrap().is_empty());
        std::thread::sleep(std::time::Duration::from_millis(50));
        // The second sample may still see no tick on an idle machine; keep sampling.
        let mut docs = Vec::new();
        for _ in 0..40 {
            docs = c.collect().unwrap();
            if !docs.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert_eq!(docs.len(), 1);
        let total = docs[0]["system"]["cpu"]["total"]["norm"]["pct"]
            .as_f64()
            .unwrap();
        assert!((0.0..=1.0).contains(&total));
    }
}
