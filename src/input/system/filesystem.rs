//! `filesystem` (one event per mounted file system) and `fsstat` (their totals).
//!
//! Mounts come from `/proc/self/mounts` (`/proc/1/mounts` of the host under `hostfs`); usage
//! from `statvfs` on the mount point (under `hostfs`). As in Metricbeat: types in
//! `filesystem.ignore_types` are skipped (default: the `nodev` types of `/proc/filesystems`),
//! relative mount points are skipped, a device whose name is a directory (bind mount) is
//! skipped, and a device mounted several times is reported once, at its shortest mount point.
//! `used.pct` = used / (used + available), as `df`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::procfs::{self, round4, FsUsage, HostFs, Mount};
use super::{Docs, Metricset, SystemError};

/// The mounts to report, in mount-table order, with their usage.
pub fn filesystems(
    fs: &HostFs,
    ignore_types: Option<&[String]>,
) -> Result<Vec<(Mount, FsUsage)>, SystemError> {
    let rel = if fs.is_prefixed() {
        "1/mounts"
    } else {
        "self/mounts"
    };
    let mounts = procfs::parse_mounts(&fs.read_proc(rel)?);
    let default_ignored;
    let ignored: &[String] = match ignore_types {
        Some(t) => t,
        None => {
            default_ignored = fs
                .read_proc("filesystems")
                .map(|t| procfs::parse_nodev_filesystems(&t))
                .unwrap_or_default();
            &default_ignored
        }
    };
    let selected = select_mounts(mounts, ignored, |dev| {
        dev.starts_with('/') && fs.join(dev).is_dir()
    });
    let mut out = Vec::with_capacity(selected.len());
    for m in selected {
        match procfs::statvfs(&fs.join(&m.mount_point)) {
            Ok(u) => out.push((m, u)),
            Err(e) => {
                tracing::debug!(mount_point = %m.mount_point, error = %e, "statvfs failed; skipping")
            }
        }
    }
    Ok(out)
}

/// The filtering rules above, without touching the file system (`is_dir` says whether a
/// device name is a directory).
pub fn select_mounts(
    mounts: Vec<Mount>,
    ignored: &[String],
    is_dir: impl Fn(&str) -> bool,
) -> Vec<Mount> {
    let mut order: Vec<String> = Vec::new();
    let mut by_device: HashMap<String, Mount> = HashMap::new();
    for m in mounts {
        if m.fs_type.is_empty()
            || ignored.iter().any(|t| t == &m.fs_type)
            || !m.mount_point.starts_with('/')
            || is_dir(&m.device)
        {
            continue;
        }
        match by_device.get_mut(&m.device) {
            Some(seen) => {
                if m.mount_point.len() < seen.mount_point.len() {
                    *seen = m;
                }
            }
            None => {
                order.push(m.device.clone());
                by_device.insert(m.device.clone(), m);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|d| by_device.remove(&d))
        .collect()
}

pub fn filesystem_fields(m: &Mount, u: &FsUsage) -> Map<String, Value> {
    let used = u.total.saturating_sub(u.free);
    let denom = used + u.available;
    let pct = if u.total > 0 && denom > 0 {
        round4(used as f64 / denom as f64)
    } else {
        0.0
    };
    let mut doc = Map::new();
    doc.insert(
        "system".into(),
        json!({"filesystem": {
            "device_name": m.device,
            "mount_point": m.mount_point,
            "type": m.fs_type,
            "total": u.total,
            "free": u.free,
            "available": u.available,
            "files": u.files,
            "free_files": u.free_files,
            "used": {"bytes": used, "pct": pct},
        }}),
    );
    doc
}

pub struct Filesystem {
    fs: Arc<HostFs>,
    ignore_types: Option<Vec<String>>,
}

impl Filesystem {
    pub fn new(fs: Arc<HostFs>, ignore_types: Option<Vec<String>>) -> Self {
        Filesystem { fs, ignore_types }
    }
}

impl Metricset for Filesystem {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        Ok(filesystems(&self.fs, self.ignore_types.as_deref())?
            .iter()
            .map(|(m, u)| filesystem_fields(m, u))
            .collect())
    }
}

pub struct Fsstat {
    fs: Arc<HostFs>,
    ignore_types: Option<Vec<String>>,
}

impl Fsstat {
    pub fn new(fs: Arc<HostFs>, ignore_types: Option<Vec<String>>) -> Self {
        Fsstat { fs, ignore_types }
    }
}

pub fn fsstat_fields(list: &[(Mount, FsUsage)]) -> Map<String, Value> {
    let (mut files, mut total, mut free, mut used) = (0u64, 0u64, 0u64, 0u64);
    for (_, u) in list {
        files = files.saturating_add(u.files);
        total = total.saturating_add(u.total);
        free = free.saturating_add(u.free);
        used = used.saturating_add(u.total.saturating_sub(u.free));
    }
    let mut doc = Map::new();
    doc.insert(
        "system".into(),
        json!({"fsstat": {
            "count": list.len(),
            "total_files": files,
            "total_size": {"total": total, "free": free, "used": used},
        }}),
    );
    doc
}

impl Metricset for Fsstat {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let list = filesystems(&self.fs, self.ignore_types.as_deref())?;
        Ok(vec![fsstat_fields(&list)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(dev: &str, mp: &str, t: &str) -> Mount {
        Mount {
            device: dev.into(),
            mount_point: mp.into(),
            fs_type: t.into(),
        }
    }

    #[test]
    fn selection_rules() {
        let mounts = vec![
            m("/dev/sda1", "/var/lib/docker/x", "ext4"),
            m("/dev/sda1", "/", "ext4"),
            m("tmpfs", "/run", "tmpfs"),
            m("/home/u", "/mnt/bind", "none"),
            m("/dev/sdb", "relative", "xfs"),
            m("/dev/sdc", "/data", "xfs"),
        ];
        let ignored = vec!["tmpfs".to_string()];
        let got = select_mounts(mounts, &ignored, |d| d == "/home/u");
        assert_eq!(
            got,
            vec![m("/dev/sda1", "/", "ext4"), m("/dev/sdc", "/data", "xfs")]
        );
    }

    #[test]
    fn fixture_mounts_default_ignores() {
        let mounts = procfs::parse_mounts(include_str!("fixtures/mounts"));
        let nodev = procfs::parse_nodev_filesystems(include_str!("fixtures/filesystems"));
        let got = select_mounts(mounts, &nodev, |_| false);
        assert_eq!(got, vec![m("/dev/vda", "/", "ext4")]);
    }

    #[test]
    fn reference_values() {
        // metricbeat-system-filesystem.json
        let u = FsUsage {
            total: 215211835392,
            free: 148708327424,
            available: 148708327424,
            files: 105089024,
            free_files: 103974920,
        };
        let d = filesystem_fields(&m("/dev/mapper/fedora-root", "/", "xfs"), &u);
        let f = &d["system"]["filesystem"];
        assert_eq!(f["used"]["bytes"], 66503507968u64);
        assert_eq!(f["used"]["pct"], 0.309);
        let s = fsstat_fields(&[(m("a", "/", "xfs"), u), (m("b", "/b", "xfs"), u)]);
        assert_eq!(s["system"]["fsstat"]["count"], 2);
        assert_eq!(
            s["system"]["fsstat"]["total_size"]["used"],
            2 * 66503507968u64
        );
    }
}
