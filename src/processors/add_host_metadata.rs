//! `add_host_metadata`: `host.{name,hostname,architecture,id,ip,mac}` and
//! `host.os.{type,family,name,version,kernel,platform,codename}`, as Beats writes them.
//!
//! The facts come from the hostname, /etc/os-release, /proc/sys/kernel/osrelease,
//! /etc/machine-id and getifaddrs(3). They are gathered at most once per `cache.ttl`
//! (default 5m) and shared by every event; `replace_fields = false` leaves events that
//! already carry host fields (other than `host.name`) alone.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{options, Outcome, Processor};
use crate::config::units::Dur;
use crate::config::ConfigError;
use crate::event::Event;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    #[serde(default)]
    netinfo: NetInfo,
    #[serde(default)]
    cache: Cache,
    #[serde(default = "crate::config::yes")]
    replace_fields: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetInfo {
    #[serde(default = "crate::config::yes")]
    enabled: bool,
}

impl Default for NetInfo {
    fn default() -> Self {
        NetInfo { enabled: true }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cache {
    #[serde(default = "default_ttl")]
    ttl: Dur,
}

fn default_ttl() -> Dur {
    Dur(Duration::from_secs(300))
}

impl Default for Cache {
    fn default() -> Self {
        Cache { ttl: default_ttl() }
    }
}

#[derive(Debug)]
pub struct AddHostMetadata {
    netinfo: bool,
    ttl: Duration,
    replace_fields: bool,
    cached: RwLock<Option<(Instant, Arc<Value>)>>,
}

impl AddHostMetadata {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        Ok(AddHostMetadata {
            netinfo: o.netinfo.enabled,
            ttl: o.cache.ttl.0,
            replace_fields: o.replace_fields,
            cached: RwLock::new(None),
        })
    }

    /// The `host` object, gathered again once the cache is older than the TTL.
    fn host(&self) -> Arc<Value> {
        if let Ok(guard) = self.cached.read() {
            if let Some((at, v)) = guard.as_ref() {
                if at.elapsed() < self.ttl {
                    return v.clone();
                }
            }
        }
        let fresh = Arc::new(Value::Object(gather(self.netinfo)));
        if let Ok(mut guard) = self.cached.write() {
            *guard = Some((Instant::now(), fresh.clone()));
        }
        fresh
    }
}

impl Processor for AddHostMetadata {
    fn run(&self, event: &mut Event) -> Outcome {
        let host = self.host();
        let fields = event.fields_mut();
        if !self.replace_fields {
            // Beats keeps host data that someone else (e.g. a container) already set.
            if let Some(Value::Object(h)) = fields.get("host") {
                if h.keys().any(|k| k != "name") {
                    return Outcome::Keep;
                }
            }
        }
        fields.insert("host".into(), (*host).clone());
        Outcome::Keep
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn gather(netinfo: bool) -> Map<String, Value> {
    let hostname = gethostname::gethostname().to_string_lossy().to_lowercase();
    let mut host = Map::new();
    host.insert("name".into(), Value::String(hostname.clone()));
    host.insert("hostname".into(), Value::String(hostname));
    host.insert(
        "architecture".into(),
        Value::String(std::env::consts::ARCH.into()),
    );
    if let Some(id) =
        read_trimmed("/etc/machine-id").or_else(|| read_trimmed("/var/lib/dbus/machine-id"))
    {
        host.insert("id".into(), Value::String(id));
    }
    let release = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let mut os = os_fields(&release);
    os.insert("type".into(), Value::String(std::env::consts::OS.into()));
    if let Some(k) = read_trimmed("/proc/sys/kernel/osrelease") {
        os.insert("kernel".into(), Value::String(k));
    }
    host.insert("os".into(), Value::Object(os));
    if netinfo {
        let (ips, macs) = net_info();
        if !ips.is_empty() {
            host.insert(
                "ip".into(),
                Value::Array(ips.into_iter().map(Value::String).collect()),
            );
        }
        if !macs.is_empty() {
            host.insert(
                "mac".into(),
                Value::Array(macs.into_iter().map(Value::String).collect()),
            );
        }
    }
    host
}

/// `host.os.*` from the text of os-release(5).
fn os_fields(release: &str) -> Map<String, Value> {
    let mut vars = std::collections::HashMap::new();
    for line in release.lines() {
        if let Some((k, v)) = line.trim().split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'');
            vars.insert(k.trim(), v.to_string());
        }
    }
    let mut os = Map::new();
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            os.insert(k.into(), Value::String(v.clone()));
        }
    };
    put("name", vars.get("NAME"));
    put("version", vars.get("VERSION").or(vars.get("VERSION_ID")));
    put("platform", vars.get("ID"));
    put("codename", vars.get("VERSION_CODENAME"));
    let id = vars.get("ID").map(String::as_str).unwrap_or("");
    let like = vars.get("ID_LIKE").map(String::as_str).unwrap_or("");
    if let Some(f) = std::iter::once(id)
        .chain(like.split_whitespace())
        .find_map(family)
    {
        os.insert("family".into(), Value::String(f.into()));
    }
    os
}

/// The OS family go-sysinfo reports for an os-release ID.
fn family(id: &str) -> Option<&'static str> {
    Some(match id {
        "debian" | "ubuntu" | "raspbian" | "linuxmint" | "elementary" | "pop" | "kali" => "debian",
        "rhel" | "redhat" | "centos" | "fedora" | "amzn" | "ol" | "rocky" | "almalinux"
        | "scientific" => "redhat",
        "suse" | "sles" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" => "suse",
        "arch" | "archarm" | "manjaro" => "arch",
        "gentoo" => "gentoo",
        "alpine" => "alpine",
        _ => return None,
    })
}

/// Addresses and MACs of the non-loopback interfaces; MACs in ECS form (`AA-BB-...`).
fn net_info() -> (Vec<String>, Vec<String>) {
    let mut ips = Vec::new();
    let mut macs = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and then free once.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return (ips, macs);
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & (libc::IFF_LOOPBACK as u32) != 0 {
            continue;
        }
        // SAFETY: ifa_addr is non-null and its family says which sockaddr it points to.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        match family {
            libc::AF_INET => {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
                ips.push(ip.to_string());
            }
            libc::AF_INET6 => {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                ips.push(std::net::Ipv6Addr::from(sa.sin6_addr.s6_addr).to_string());
            }
            libc::AF_PACKET => {
                let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                let len = usize::from(sa.sll_halen).min(sa.sll_addr.len());
                let bytes = &sa.sll_addr[..len];
                if !bytes.is_empty() && bytes.iter().any(|b| *b != 0) {
                    let mac: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
                    macs.push(mac.join("-"));
                }
            }
            _ => {}
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    let mut seen = std::collections::HashSet::new();
    ips.retain(|ip| seen.insert(ip.clone()));
    macs.sort();
    macs.dedup();
    (ips, macs)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_os_release() {
        let os = os_fields(
            "NAME=\"Ubuntu\"\nVERSION=\"24.04 LTS (Noble Numbat)\"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n",
        );
        assert_eq!(
            Value::Object(os),
            json!({"name": "Ubuntu", "version": "24.04 LTS (Noble Numbat)", "platform": "ubuntu", "codename": "noble", "family": "debian"})
        );
        let os = os_fields("NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n");
        assert_eq!(os["family"], "redhat");
        assert_eq!(os["version"], "9.3");
        assert!(os_fields("").is_empty());
    }

    #[test]
    fn adds_host_fields() {
        let (_, v) = run("[[processors]]\nadd_host_metadata = {}\n", line("x"));
        let h = &v["host"];
        assert!(!h["name"].as_str().unwrap().is_empty());
        assert_eq!(h["name"], h["hostname"]);
        assert_eq!(h["os"]["type"], std::env::consts::OS);
        assert_eq!(h["architecture"], std::env::consts::ARCH);
        if let Some(macs) = h.get("mac") {
            for m in macs.as_array().unwrap() {
                assert_eq!(m.as_str().unwrap().len(), 17, "{m}");
            }
        }
    }

    #[test]
    fn netinfo_can_be_disabled() {
        let (_, v) = run(
            "[[processors]]\nadd_host_metadata = { netinfo.enabled = false, cache.ttl = \"1m\" }\n",
            line("x"),
        );
        assert!(v["host"].get("ip").is_none());
        assert!(v["host"].get("mac").is_none());
    }

    #[test]
    fn replace_fields_false_keeps_existing_host() {
        let cfg = "[[processors]]\nadd_host_metadata = { replace_fields = false }\n";
        let (_, v) = run(cfg, map(json!({"host": {"name": "c1", "id": "container"}})));
        assert_eq!(v["host"], json!({"name": "c1", "id": "container"}));
        let (_, v) = run(cfg, map(json!({"host": {"name": "c1"}})));
        assert!(v["host"].get("os").is_some(), "only host.name: filled in");
    }

    #[test]
    fn cache_is_reused_until_ttl() {
        let p =
            AddHostMetadata::new(toml::from_str("cache = { ttl = \"1h\" }").unwrap(), "k").unwrap();
        let a = p.host();
        let b = p.host();
        assert!(Arc::ptr_eq(&a, &b));
        let p =
            AddHostMetadata::new(toml::from_str("cache = { ttl = \"0s\" }").unwrap(), "k").unwrap();
        let a = p.host();
        let b = p.host();
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn config_errors() {
        let e = err("[[processors]]\nadd_host_metadata = { geo = { name = \"x\" } }\n");
        assert_eq!(e.key, "processors[0].add_host_metadata.geo");
        let e = err("[[processors]]\nadd_host_metadata = { cache.ttl = \"5 minutes\" }\n");
        assert_eq!(e.key, "processors[0].add_host_metadata.cache.ttl");
        let e = err("[[processors]]\nadd_host_metadata = { netinfo = { enable = true } }\n");
        assert_eq!(e.key, "processors[0].add_host_metadata.netinfo.enable");
    }
}
