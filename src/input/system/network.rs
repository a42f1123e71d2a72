//! `network`: one event per interface from `/proc/net/dev` (counters since boot), plus, once
//! a previous sample exists, one `host.network.{ingress,egress}` event with the bytes and
//! packets of all reported interfaces during the period (Metricbeat does the same; Kibana's
//! host views read it).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::procfs::{self, HostFs, NetDev};
use super::{Docs, Metricset, SystemError};

pub struct Network {
    fs: Arc<HostFs>,
    interfaces: Vec<String>,
    /// (in bytes, in packets, out bytes, out packets) summed at the previous collection.
    prev: Option<[u64; 4]>,
}

impl Network {
    pub fn new(fs: Arc<HostFs>, interfaces: Vec<String>) -> Self {
        let interfaces = interfaces.into_iter().map(|i| i.to_lowercase()).collect();
        Network {
            fs,
            interfaces,
            prev: None,
        }
    }
}

pub fn interface_fields(d: &NetDev) -> Map<String, Value> {
    let mut doc = Map::new();
    doc.insert(
        "system".into(),
        json!({"network": {
            "name": d.name,
            "in": {"bytes": d.rx_bytes, "packets": d.rx_packets, "errors": d.rx_errors, "dropped": d.rx_dropped},
            "out": {"bytes": d.tx_bytes, "packets": d.tx_packets, "errors": d.tx_errors, "dropped": d.tx_dropped},
        }}),
    );
    doc
}

impl Metricset for Network {
    fn collect(&mut self) -> Result<Docs, SystemError> {
        let rel = if self.fs.is_prefixed() {
            "1/net/dev"
        } else {
            "net/dev"
        };
        let devs = procfs::parse_net_dev(&self.fs.read_proc(rel)?);
        let mut docs = Vec::with_capacity(devs.len() + 1);
        let mut sum = [0u64; 4];
        for d in devs.iter().filter(|d| {
            self.interfaces.is_empty() || self.interfaces.contains(&d.name.to_lowercase())
        }) {
            sum[0] = sum[0].wrapping_add(d.rx_bytes);
            sum[1] = sum[1].wrapping_add(d.rx_packets);
            sum[2] = sum[2].wrapping_add(d.tx_bytes);
            sum[3] = sum[3].wrapping_add(d.tx_packets);
            docs.push(interface_fields(d));
        }
        if let Some(p) = self.prev.replace(sum) {
            // A counter that went back (interface removed, counter reset) reports 0.
            let d = |i: usize| sum[i].saturating_sub(p[i]);
            let mut doc = Map::new();
            doc.insert(
                "host".into(),
                json!({"network": {
                    "ingress": {"bytes": d(0), "packets": d(1)},
                    "egress": {"bytes": d(2), "packets": d(3)},
                }}),
            );
            docs.push(doc);
        }
        Ok(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_event_shape() {
        let d = procfs::parse_net_dev(include_str!("fixtures/net_dev"));
        let doc = interface_fields(&d[3]);
        let n = &doc["system"]["network"];
        assert_eq!(n["name"], "eth0");
        assert_eq!(n["in"]["bytes"], 57031726);
        assert_eq!(n["out"]["packets"], 1484);
        assert_eq!(n["in"]["dropped"], 0);
    }
}
