//! cgroup v2 statistics for the `process` metricset (`system.process.cgroup.{cpu,memory}`),
//! named as Metricbeat names them.
//!
//! Read from the cgroup2 mount (found in the mount table, under `hostfs`): `cpu.stat`,
//! `cpu.pressure`, `memory.current`, `memory.low|high|max`, `memory.events`,
//! `memory.swap.current|high|max`, `memory.swap.events`, `memory.stat`, `memory.pressure`.
//! CPU percentages come from the change of `usage_usec` (and user/system) since the previous
//! collection of the same cgroup, like the process CPU percentages. Files that a kernel does
//! not have are left out. cgroup v1 hierarchies get `cgroups_version`, `id` and `path` only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::procfs::{self, round4, HostFs};

/// `memory.stat` key → (Metricbeat name, is a byte count).
const MEMORY_STAT: &[(&str, &str, bool)] = &[
    ("anon", "anon", true),
    ("file", "file", true),
    ("kernel_stack", "kernel_stack", true),
    ("pagetables", "page_tables", true),
    ("percpu", "per_cpu", true),
    ("sock", "sock", true),
    ("shmem", "shmem", true),
    ("file_mapped", "file_mapped", true),
    ("file_dirty", "file_dirty", true),
    ("file_writeback", "file_writeback", true),
    ("swapcached", "swap_cached", true),
    ("anon_thp", "anon_thp", true),
    ("file_thp", "file_thp", true),
    ("shmem_thp", "shmem_thp", true),
    ("inactive_anon", "inactive_anon", true),
    ("active_anon", "active_anon", true),
    ("inactive_file", "inactive_file", true),
    ("active_file", "active_file", true),
    ("unevictable", "unevictable", true),
    ("slab_reclaimable", "slab_reclaimable", true),
    ("slab_unreclaimable", "slab_unreclaimable", true),
    ("slab", "slab", true),
    ("workingset_refault_anon", "workingset_refault_anon", false),
    ("workingset_refault_file", "workingset_refault_file", false),
    (
        "workingset_activate_anon",
        "workingset_activate_anon",
        false,
    ),
    (
        "workingset_activate_file",
        "workingset_activate_file",
        false,
    ),
    ("workingset_restore_anon", "workingset_restore_anon", false),
    ("workingset_restore_file", "workingset_restore_file", false),
    ("workingset_nodereclaim", "workingset_node_reclaim", false),
    ("pgfault", "page_faults", false),
    ("pgmajfault", "major_page_faults", false),
    ("pgrefill", "page_refill", false),
    ("pgscan", "page_scan", false),
    ("pgsteal", "page_steal", false),
    ("pgactivate", "page_activate", false),
    ("pgdeactivate", "page_deactivate", false),
    ("pglazyfree", "page_lazy_free", false),
    ("pglazyfreed", "page_lazy_freed", false),
    ("thp_fault_alloc", "thp_fault_alloc", false),
    // Metricbeat's spelling.
    ("thp_collapse_alloc", "htp_collapse_alloc", false),
];

/// `key value` lines (`cpu.stat`, `memory.events`, `memory.stat`).
pub fn parse_flat_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), procfs::num(v.trim(), k)?))
        })
        .collect()
}

/// A PSI file (`some avg10=0.07 avg60=0.30 avg300=0.10 total=32365561`, and `full ...`).
pub fn parse_pressure(text: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some(kind @ ("some" | "full")) = it.next() else {
            continue;
        };
        let mut m = Map::new();
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "avg10" | "avg60" | "avg300" => {
                    if let Ok(f) = v.parse::<f64>() {
                        m.insert(k[3..].to_string(), json!({ "pct": f }));
                    }
                }
                "total" => {
                    if let Some(t) = procfs::num(v, "pressure total") {
                        m.insert("total".into(), json!(t));
                    }
                }
                _ => {}
            }
        }
        out.insert(kind.to_string(), Value::Object(m));
    }
    out
}

/// A single-value file: a number, or `max` (no limit → `None`).
fn read_value(dir: &Path, file: &str) -> Option<u64> {
    let t = std::fs::read_to_string(dir.join(file)).ok()?;
    let t = t.trim();
    if t == "max" {
        return None;
    }
    procfs::num(t, file)
}

/// (usage, user, system) CPU time in ns, for percentages across collections.
pub type CpuSample = (u64, u64, u64);

/// The cgroup v2 mount point (under hostfs), from the mount table.
pub fn find_v2_mount(fs: &HostFs) -> Option<PathBuf> {
    let rel = if fs.is_prefixed() {
        "1/mounts"
    } else {
        "self/mounts"
    };
    let text = fs.read_proc(rel).ok()?;
    procfs::parse_mounts(&text)
        .into_iter()
        .find(|m| m.fs_type == "cgroup2")
        .map(|m| fs.join(&m.mount_point))
}

/// `cpu` and `memory` objects of one v2 cgroup. `prev` is the CPU sample of the same cgroup
/// at the previous collection and `elapsed_ns` the time since; returns this collection's
/// sample too.
pub fn v2_fields(
    dir: &Path,
    path: &str,
    prev: Option<CpuSample>,
    elapsed_ns: Option<f64>,
    cores: usize,
) -> (Map<String, Value>, Option<CpuSample>) {
    let id = path.rsplit('/').next().unwrap_or("").to_string();
    let mut out = Map::new();

    // CPU.
    let mut sample = None;
    if let Ok(text) = std::fs::read_to_string(dir.join("cpu.stat")) {
        let st = parse_flat_keyed(&text);
        let ns = |k: &str| st.get(k).map(|v| v.saturating_mul(1000));
        let cur = (
            ns("usage_usec").unwrap_or(0),
            ns("user_usec").unwrap_or(0),
            ns("system_usec").unwrap_or(0),
        );
        sample = Some(cur);
        let rate = |c: u64, p: u64| -> Option<Value> {
            let e = elapsed_ns.filter(|e| *e > 0.0)?;
            let pct = c.saturating_sub(p) as f64 / e;
            Some(json!({"pct": round4(pct), "norm": {"pct": round4(pct / cores.max(1) as f64)}}))
        };
        let mut stats = Map::new();
        for (name, c, p) in [
            ("usage", cur.0, prev.map(|p| p.0)),
            ("user", cur.1, prev.map(|p| p.1)),
            ("system", cur.2, prev.map(|p| p.2)),
        ] {
            let mut m = Map::new();
            m.insert("ns".into(), json!(c));
            if let Some(Value::Object(r)) = p.and_then(|p| rate(c, p)) {
                m.extend(r);
            }
            stats.insert(name.into(), Value::Object(m));
        }
        if let Some(p) = st.get("nr_periods") {
            stats.insert("periods".into(), json!(p));
        }
        let mut thr = Map::new();
        if let Some(p) = st.get("nr_throttled") {
            thr.insert("periods".into(), json!(p));
        }
        if let Some(us) = st.get("throttled_usec") {
            thr.insert("us".into(), json!(us));
        }
        if !thr.is_empty() {
            stats.insert("throttled".into(), Value::Object(thr));
        }
        let mut cpu = Map::new();
        cpu.insert("id".into(), json!(id));
        cpu.insert("path".into(), json!(path));
        cpu.insert("stats".into(), Value::Object(stats));
        if let Ok(p) = std::fs::read_to_string(dir.join("cpu.pressure")) {
            cpu.insert("pressure".into(), Value::Object(parse_pressure(&p)));
        }
        out.insert("cpu".into(), Value::Object(cpu));
    }

    // Memory.
    if let Some(usage) = read_value(dir, "memory.current") {
        let mut mem = Map::new();
        mem.insert("usage".into(), json!({ "bytes": usage }));
        for (file, key) in [
            ("memory.low", "low"),
            ("memory.high", "high"),
            ("memory.max", "max"),
        ] {
            if let Some(v) = read_value(dir, file) {
                mem.insert(key.into(), json!({ "bytes": v }));
            }
        }
        if let Ok(t) = std::fs::read_to_string(dir.join("memory.events")) {
            let ev = parse_flat_keyed(&t);
            let mut m = Map::new();
            for k in ["low", "high", "max", "oom", "oom_kill"] {
                if let Some(v) = ev.get(k) {
                    m.insert(k.into(), json!(v));
                }
            }
            mem.insert("events".into(), Value::Object(m));
        }
        let mut memsw = Map::new();
        if let Some(v) = read_value(dir, "memory.swap.current") {
            memsw.insert("usage".into(), json!({ "bytes": v }));
        }
        for (file, key) in [("memory.swap.high", "high"), ("memory.swap.max", "max")] {
            if let Some(v) = read_value(dir, file) {
                memsw.insert(key.into(), json!({ "bytes": v }));
            }
        }
        if let Ok(t) = std::fs::read_to_string(dir.join("memory.swap.events")) {
            let ev = parse_flat_keyed(&t);
            let mut m = Map::new();
            for k in ["high", "max", "fail"] {
                if let Some(v) = ev.get(k) {
                    m.insert(k.into(), json!(v));
                }
            }
            memsw.insert("events".into(), Value::Object(m));
        }
        let mut memory = Map::new();
        memory.insert("id".into(), json!(id));
        memory.insert("path".into(), json!(path));
        memory.insert("mem".into(), Value::Object(mem));
        if !memsw.is_empty() {
            memory.insert("memsw".into(), Value::Object(memsw));
        }
        if let Ok(t) = std::fs::read_to_string(dir.join("memory.stat")) {
            let st = parse_flat_keyed(&t);
            let mut stats = Map::new();
            for (key, name, bytes) in MEMORY_STAT {
                if let Some(v) = st.get(*key) {
                    let v = if *bytes {
                        json!({ "bytes": v })
                    } else {
                        json!(v)
                    };
                    stats.insert((*name).into(), v);
                }
            }
            memory.insert("stats".into(), Value::Object(stats));
        }
        if let Ok(p) = std::fs::read_to_string(dir.join("memory.pressure")) {
            memory.insert("pressure".into(), Value::Object(parse_pressure(&p)));
        }
        out.insert("memory".into(), Value::Object(memory));
    }
    (out, sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure() {
        let p = parse_pressure(
            "some avg10=0.07 avg60=0.30 avg300=0.10 total=32365561\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5524742\n",
        );
        assert_eq!(p["some"]["10"]["pct"], 0.07);
        assert_eq!(p["some"]["300"]["pct"], 0.1);
        assert_eq!(p["some"]["total"], 32365561u64);
        assert_eq!(p["full"]["total"], 5524742u64);
    }

    /// A cgroup v2 directory built from the values of Metricbeat's process sample event.
    pub fn sample_cgroup(dir: &Path) {
        let w = |f: &str, t: &str| std::fs::write(dir.join(f), t).unwrap();
        w(
            "cpu.stat",
            "usage_usec 1599791\nuser_usec 1051527\nsystem_usec 548263\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
        );
        w(
            "cpu.pressure",
            "some avg10=0.07 avg60=0.30 avg300=0.10 total=32365561\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5524742\n",
        );
        w("memory.current", "3864518656\n");
        w("memory.low", "0\n");
        w("memory.high", "max\n");
        w("memory.max", "max\n");
        w("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
        w("memory.swap.current", "0\n");
        w("memory.swap.events", "high 0\nmax 0\nfail 0\n");
        let stat: String = MEMORY_STAT
            .iter()
            .map(|(k, _, _)| format!("{k} 1\n"))
            .collect();
        w("memory.stat", &stat);
        w(
            "memory.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        );
    }

    #[test]
    fn v2_matches_metricbeat_sample_shape() {
        let dir = tempfile::tempdir().unwrap();
        sample_cgroup(dir.path());
        let path = "/user.slice/user-1000.slice/session-426.scope";
        let (first, s1) = v2_fields(dir.path(), path, None, None, 4);
        assert!(
            first["cpu"]["stats"]["usage"].get("pct").is_none(),
            "no rate yet"
        );
        // One second later, 0.5 s more CPU.
        let prev = s1.map(|(u, us, sy)| (u - 500_000_000, us - 250_000_000, sy));
        let (m, _) = v2_fields(dir.path(), path, prev, Some(1e9), 4);
        assert_eq!(m["cpu"]["stats"]["usage"]["ns"], 1599791000u64);
        assert_eq!(m["cpu"]["stats"]["usage"]["pct"], 0.5);
        assert_eq!(m["cpu"]["stats"]["usage"]["norm"]["pct"], 0.125);
        assert_eq!(m["cpu"]["id"], "session-426.scope");
        assert_eq!(m["memory"]["mem"]["usage"]["bytes"], 3864518656u64);
        assert!(m["memory"]["mem"].get("high").is_none(), "max = no limit");
        assert_eq!(m["memory"]["stats"]["htp_collapse_alloc"], 1);
        assert_eq!(m["memory"]["stats"]["page_tables"]["bytes"], 1);

        // Every cgroup.cpu.* / cgroup.memory.* leaf of the sample exists here.
        let sample: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/metricbeat/metricbeat-system-process.json"
        ))
        .unwrap();
        let cg = &sample["system"]["process"]["cgroup"];
        let ours = Value::Object(m);
        let mut missing = Vec::new();
        for part in ["cpu", "memory"] {
            check(&cg[part], &ours[part], part, &mut missing);
        }
        // The kernel has no memory.swap.low; Metricbeat writes a zero it never read.
        missing.retain(|k| k != "memory.memsw.low.bytes");
        assert!(missing.is_empty(), "missing {missing:?}");
    }

    fn check(want: &Value, have: &Value, path: &str, missing: &mut Vec<String>) {
        match want {
            Value::Object(m) => {
                for (k, v) in m {
                    check(v, &have[k], &format!("{path}.{k}"), missing);
                }
            }
            _ => {
                if have.is_null() {
                    missing.push(path.to_string());
                }
            }
        }
    }
}
