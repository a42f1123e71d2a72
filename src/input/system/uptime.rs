//! `uptime`: `/proc/uptime` in milliseconds.

use std::sync::Arc;

use serde_json::json;

use super::procfs::{self, HostFs};
use super::{Docs, Metricset, SystemError};

pub struct Uptime {
    fs: Arc<HostFs>,
}

impl Uptime {
    pub fn new(fs: Arc<HostFs>) -> Self {
        Uptime { fs }
    }
}

impl Metricset for Uptime {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let path = self.fs.proc("uptime");
        let text = self.fs.read(&path)?;
        let secs = procfs::parse_uptime(&text).ok_or_else(|| SystemError::Parse {
            path,
            message: format!("expected seconds since boot, got {:?}", text.trim()),
        })?;
        let ms = (secs * 1000.0) as u64;
        let doc = json!({"system": {"uptime": {"duration": {"ms": ms}}}});
        Ok(doc.as_object().cloned().into_iter().collect())
    }
}
