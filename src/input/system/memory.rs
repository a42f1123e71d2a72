//! `memory`: `/proc/meminfo` with Metricbeat's derived values.
//!
//! `used.bytes` = MemTotal − MemFree; `actual.free` = MemAvailable (or, on kernels without
//! it, MemFree + Buffers + Cached); `actual.used.bytes` = MemTotal − actual.free;
//! `swap.used.bytes` = SwapTotal − SwapFree. Percentages are fractions rounded to 4 places.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::procfs::{self, round4, HostFs};
use super::{Docs, Metricset, SystemError};

pub struct Memory {
    fs: Arc<HostFs>,
}

impl Memory {
    pub fn new(fs: Arc<HostFs>) -> Self {
        Memory { fs }
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round4(part as f64 / whole as f64)
    }
}

pub fn memory_fields(mi: &HashMap<String, u64>) -> Map<String, Value> {
    let g = |k: &str| mi.get(k).copied();
    let total = g("MemTotal").unwrap_or(0);
    let free = g("MemFree").unwrap_or(0);
    let cached = g("Cached").unwrap_or(0);
    let buffers = g("Buffers").unwrap_or(0);
    let actual_free = g("MemAvailable").unwrap_or(free + buffers + cached);
    let used = total.saturating_sub(free);
    let actual_used = total.saturating_sub(actual_free);
    let swap_total = g("SwapTotal").unwrap_or(0);
    let swap_free = g("SwapFree").unwrap_or(0);
    let swap_used = swap_total.saturating_sub(swap_free);
    let mut doc = Map::new();
    doc.insert(
        "system".into(),
        json!({"memory": {
            "total": total,
            "free": free,
            "cached": cached,
            "used": {"bytes": used, "pct": pct(used, total)},
            "actual": {
                "free": actual_free,
                "used": {"bytes": actual_used, "pct": pct(actual_used, total)},
            },
            "swap": {
                "total": swap_total,
                "free": swap_free,
                "used": {"bytes": swap_used, "pct": pct(swap_used, swap_total)},
            },
        }}),
    );
    doc
}

impl Metricset for Memory {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let path = self.fs.proc("meminfo");
        let mi = procfs::parse_meminfo(&self.fs.read(&path)?);
        if !mi.contains_key("MemTotal") {
            return Err(SystemError::Parse {
                path,
                message: "no MemTotal line".into(),
            });
        }
        Ok(vec![memory_fields(&mi)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // metricbeat-system-memory.json
        let mut mi = HashMap::new();
        mi.insert("MemTotal".to_string(), 63120797696);
        mi.insert("MemFree".to_string(), 52030529536);
        mi.insert("MemAvailable".to_string(), 59377467392);
        mi.insert("Cached".to_string(), 7460179968);
        mi.insert("SwapTotal".to_string(), 8589930496);
        mi.insert("SwapFree".to_string(), 8589930496);
        let d = memory_fields(&mi);
        let m = &d["system"]["memory"];
        assert_eq!(m["used"]["bytes"], 11090268160u64);
        assert_eq!(m["used"]["pct"], 0.1757);
        assert_eq!(m["actual"]["used"]["bytes"], 3743330304u64);
        assert_eq!(m["actual"]["used"]["pct"], 0.0593);
        assert_eq!(m["swap"]["used"]["pct"], 0.0);
    }

    #[test]
    fn fixture_without_memavailable() {
        let mut mi = procfs::parse_meminfo(include_str!("fixtures/meminfo"));
        mi.remove("MemAvailable");
        let d = memory_fields(&mi);
        let expect = mi["MemFree"] + mi["Buffers"] + mi["Cached"];
        assert_eq!(d["system"]["memory"]["actual"]["free"], expect);
    }
}
