//! `diskio`: one event per block device of `/proc/diskstats` with its counters since boot
//! (`read`/`write` `.count`, `.bytes`, `.time` in ms; `io.time` ms busy; `io.ops` in flight),
//! as Metricbeat 9.x. From the second collection on, one more event carries
//! `host.disk.{read.bytes,write.bytes}`: the bytes read and written by all reported devices
//! during the period (the key really is `"read.bytes"`, dotted, as Metricbeat writes it).
//! Older Metricbeat versions also sent `iostat.*`; 9.x no longer does, and neither do we.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::procfs::{self, DiskStat, HostFs};
use super::{Docs, Metricset, SystemError};

pub struct Diskio {
    fs: Arc<HostFs>,
    include: Vec<String>,
    /// (read bytes, write bytes) summed at the previous collection.
    prev: Option<(u64, u64)>,
}

impl Diskio {
    pub fn new(fs: Arc<HostFs>, include: Vec<String>) -> Self {
        Diskio {
            fs,
            include,
            prev: None,
        }
    }
}

pub fn diskio_fields(d: &DiskStat) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert(
        "system".into(),
        json!({"diskio": {
            "name": d.name,
            "read": {"count": d.reads, "bytes": d.read_bytes(), "time": d.read_ms},
            "write": {"count": d.writes, "bytes": d.write_bytes(), "time": d.write_ms},
            "io": {"time": d.io_ms, "ops": d.in_progress},
        }}),
    );
    doc
}

impl Metricset for Diskio {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let stats = procfs::parse_diskstats(&self.fs.read_proc("diskstats")?);
        let mut docs = Vec::with_capacity(stats.len() + 1);
        let (mut read, mut written) = (0u64, 0u64);
        for s in stats
            .iter()
            .filter(|s| self.include.is_empty() || self.include.contains(&s.name))
        {
            read = read.wrapping_add(s.read_bytes());
            written = written.wrapping_add(s.write_bytes());
            docs.push(diskio_fields(s));
        }
        if let Some((r, w)) = self.prev.replace((read, written)) {
            let mut disk = Map::new();
            disk.insert("read.bytes".into(), json!(read.saturating_sub(r)));
            disk.insert("write.bytes".into(), json!(written.saturating_sub(w)));
            let mut doc = Map::new();
            doc.insert("host".into(), json!({ "disk": disk }));
            docs.push(doc);
        }
        Ok(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        let list = procfs::parse_diskstats(include_str!("fixtures/diskstats"));
        let vda = list.iter().find(|d| d.name == "vda").unwrap();
        let d = diskio_fields(vda);
        let k = &d["system"]["diskio"];
        assert_eq!(k["name"], "vda");
        assert_eq!(k["read"]["count"], 13106);
        assert_eq!(k["read"]["bytes"], 3600402u64 * 512);
        assert_eq!(k["read"]["time"], 13154);
        assert_eq!(k["write"]["count"], 2424);
        assert_eq!(k["write"]["bytes"], 2555936u64 * 512);
        assert_eq!(k["write"]["time"], 8407);
        assert_eq!(k["io"]["time"], 4412);
        assert_eq!(k["io"]["ops"], 0);
    }

    #[test]
    fn host_disk_delta_from_second_collection() {
        let mut d = Diskio::new(Arc::new(HostFs::default()), vec![]);
        let n = procfs::parse_diskstats(&std::fs::read_to_string("/proc/diskstats").unwrap()).len();
        let first = d.collect().unwrap();
        assert_eq!(first.len(), n, "devices only");
        let second = d.collect().unwrap();
        assert_eq!(second.len(), n + 1);
        let host = &second[n]["host"]["disk"];
        assert!(host["read.bytes"].is_u64() && host["write.bytes"].is_u64());
    }
}
