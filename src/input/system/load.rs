//! `load`: `/proc/loadavg`, and the same divided by the number of CPUs (`norm`).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::procfs::{self, round4, HostFs};
use super::{Docs, Metricset, SystemError};

pub struct Load {
    fs: Arc<HostFs>,
}

impl Load {
    pub fn new(fs: Arc<HostFs>) -> Self {
        Load { fs }
    }
}

pub fn load_fields(avg: [f64; 3], cores: usize) -> Map<String, Value> {
    let c = cores.max(1) as f64;
    let mut doc = Map::new();
    doc.insert(
        "system".into(),
        json!({"load": {
            "1": round4(avg[0]), "5": round4(avg[1]), "15": round4(avg[2]),
            "norm": {"1": round4(avg[0] / c), "5": round4(avg[1] / c), "15": round4(avg[2] / c)},
            "cores": cores,
        }}),
    );
    doc
}

impl Metricset for Load {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let path = self.fs.proc("loadavg");
        let text = self.fs.read(&path)?;
        let avg = procfs::parse_loadavg(&text).ok_or_else(|| SystemError::Parse {
            path,
            message: format!("expected three load averages, got {:?}", text.trim()),
        })?;
        let cores = procfs::parse_stat(&self.fs.read_proc("stat")?).cores;
        Ok(vec![load_fields(avg, cores)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // metricbeat-system-load.json: 2.33 1.93 2.03 on 4 cores.
        let d = load_fields([2.33, 1.93, 2.03], 4);
        let l = &d["system"]["load"];
        assert_eq!(l["1"], 2.33);
        assert_eq!(l["norm"]["1"], 0.5825);
        assert_eq!(l["norm"]["5"], 0.4825);
        assert_eq!(l["norm"]["15"], 0.5075);
        assert_eq!(l["cores"], 4);
    }
}
