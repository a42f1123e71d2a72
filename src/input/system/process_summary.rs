//! `process_summary`: processes by state (from each `/proc/[pid]/stat`) and, as Metricbeat on
//! Linux, `threads.running` / `threads.blocked` from `/proc/stat`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::procfs::{self, HostFs};
use super::{Docs, Metricset, SystemError};

/// States always present in the event (0 when no process is in them), so the shape is stable.
const STATES: [&str; 7] = [
    "running", "sleeping", "idle", "stopped", "zombie", "dead", "unknown",
];

pub struct ProcessSummary {
    fs: Arc<HostFs>,
}

impl ProcessSummary {
    pub fn new(fs: Arc<HostFs>) -> Self {
        ProcessSummary { fs }
    }
}

/// Numeric entries of `/proc` (every process, kernel threads included).
pub fn list_pids(fs: &HostFs) -> Result<Vec<u32>, SystemError> {
    let dir = fs.proc("");
    let rd = std::fs::read_dir(&dir).map_err(|source| SystemError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect())
}

pub fn summary_fields(
    states: &[char],
    threads_running: Option<u64>,
    threads_blocked: Option<u64>,
) -> Map<String, Value> {
    let mut counts: BTreeMap<&str, u64> = STATES.iter().map(|s| (*s, 0)).collect();
    for &c in states {
        *counts.entry(procfs::state_name(c)).or_insert(0) += 1;
    }
    let mut summary = Map::new();
    for (k, v) in counts {
        summary.insert(k.into(), json!(v));
    }
    summary.insert("total".into(), json!(states.len()));
    let mut threads = Map::new();
    if let Some(r) = threads_running {
        threads.insert("running".into(), json!(r));
    }
    if let Some(b) = threads_blocked {
        threads.insert("blocked".into(), json!(b));
    }
    summary.insert("threads".into(), Value::Object(threads));
    let mut doc = Map::new();
    doc.insert("system".into(), json!({"process": {"summary": summary}}));
    doc
}

impl Metricset for ProcessSummary {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let pids = list_pids(&self.fs)?;
        let mut states = Vec::with_capacity(pids.len());
        for pid in pids {
            // A process that exits while we read is simply not counted.
            if let Ok(t) = std::fs::read_to_string(self.fs.proc(&format!("{pid}/stat"))) {
                if let Some(s) = procfs::parse_pid_stat(&t) {
                    states.push(s.state);
                }
            }
        }
        let stat = procfs::parse_stat(&self.fs.read_proc("stat")?);
        Ok(vec![summary_fields(
            &states,
            stat.procs_running,
            stat.procs_blocked,
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_state() {
        let d = summary_fields(&['S', 'S', 'R', 'I', 'D', 'Z'], Some(2), Some(0));
        let s = &d["system"]["process"]["summary"];
        assert_eq!(s["total"], 6);
        assert_eq!(s["sleeping"], 2);
        assert_eq!(s["running"], 1);
        assert_eq!(s["idle"], 1);
        assert_eq!(s["disk_sleep"], 1);
        assert_eq!(s["zombie"], 1);
        assert_eq!(s["stopped"], 0);
        assert_eq!(s["threads"]["running"], 2);
        assert_eq!(s["threads"]["blocked"], 0);
    }
}
