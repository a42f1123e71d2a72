//! `memory`: `/proc/meminfo` with Metricbeat's derived values.
//!
//! `used.bytes` = MemTotal − MemFree; `actual.free` = MemAvailable (or, on kernels without
//! it, MemFree + Buffers + Cached); `actual.used.bytes` = MemTotal − actual.free;
//! `swap.used.bytes` = SwapTotal − SwapFree. Percentages are fractions rounded to 4 places.
//! As Metricbeat on Linux, also `hugepages.*` (meminfo) and, from `/proc/vmstat`,
//! `swap.{in,out,readahead}.*` and `page_stats.*` (counters since boot).

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
    let hp_total = g("HugePages_Total").unwrap_or(0);
    let hp_free = g("HugePages_Free").unwrap_or(0);
    let hp_size = g("Hugepagesize").unwrap_or(0);
    let hp_used = hp_total.saturating_sub(hp_free);
    let mut doc = Map::new();
    doc.insert(
        "system".into(),
        json!({"memory": {
            "hugepages": {
                "total": hp_total,
                "free": hp_free,
                "reserved": g("HugePages_Rsvd").unwrap_or(0),
                "surplus": g("HugePages_Surp").unwrap_or(0),
                "default_size": hp_size,
                "used": {"bytes": hp_used.saturating_mul(hp_size), "pct": pct(hp_used, hp_total)},
            },
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

/// `swap.{in,out,readahead}`, `hugepages.swap.out` and `page_stats` from `/proc/vmstat`
/// (merged into the memory event; keys missing on older kernels are left out).
pub fn vmstat_fields(vm: &HashMap<String, u64>) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |path: &str, key: &str| {
        if let Some(v) = vm.get(key) {
            crate::event::put_path(&mut m, path, json!(v));
        }
    };
    put("swap.in.pages", "pswpin");
    put("swap.out.pages", "pswpout");
    put("swap.readahead.pages", "swap_ra");
    put("swap.readahead.cached", "swap_ra_hit");
    put("hugepages.swap.out.pages", "thp_swpout");
    put("hugepages.swap.out.fallback", "thp_swpout_fallback");
    for k in [
        "pgfree",
        "pgscan_direct",
        "pgscan_kswapd",
        "pgsteal_direct",
        "pgsteal_kswapd",
    ] {
        put(&format!("page_stats.{k}.pages"), k);
    }
    for (name, steal, scan) in [
        ("direct_efficiency", "pgsteal_direct", "pgscan_direct"),
        ("kswapd_efficiency", "pgsteal_kswapd", "pgscan_kswapd"),
    ] {
        if let (Some(st), Some(sc)) = (vm.get(steal), vm.get(scan)) {
            crate::event::put_path(
                &mut m,
                &format!("page_stats.{name}.pct"),
                json!(pct(*st, *sc)),
            );
        }
    }
    m
}

/// `/proc/vmstat`: `name value` lines.
pub fn parse_vmstat(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), procfs::num(v.trim(), k)?))
        })
        .collect()
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
        let mut doc = memory_fields(&mi);
        // vmstat is optional (some containers hide it): the core fields still go out.
        if let Ok(text) = self.fs.read_proc("vmstat") {
            let mut extra = Map::new();
            extra.insert(
                "system".into(),
                json!({ "memory": vmstat_fields(&parse_vmstat(&text)) }),
            );
            super::merge(&mut doc, extra);
        }
        Ok(vec![doc])
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
    fn vmstat_reference_values() {
        // metricbeat-system-memory.data-json-variant.json
        let vm = parse_vmstat(
            "pgscan_direct 1512375\npgsteal_direct 1492831\npgscan_kswapd 25880646\npgsteal_kswapd 18387096\npswpin 727\npswpout 11197\nswap_ra 45\nswap_ra_hit 9\nbad x\n",
        );
        let m = vmstat_fields(&vm);
        assert_eq!(m["page_stats"]["direct_efficiency"]["pct"], 0.9871);
        assert_eq!(m["page_stats"]["kswapd_efficiency"]["pct"], 0.7105);
        assert_eq!(m["swap"]["in"]["pages"], 727);
        assert_eq!(m["swap"]["readahead"]["cached"], 9);
        let fx = parse_vmstat(include_str!("fixtures/vmstat"));
        assert_eq!(fx.len(), 11);
        assert!(vmstat_fields(&fx)["hugepages"]["swap"]["out"]["fallback"].is_number());
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
