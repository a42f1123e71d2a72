//! `add_kubernetes_metadata` without a Kubernetes API server: the metadata that the kubelet
//! writes into a container log's path, under Filebeat's field names.
//!
//! The kubelet names a container's log file
//! `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log` (a symlink to
//! `/var/log/pods/<namespace>_<pod>_<pod uid>/<container>/<restart>.log`), and Docker keeps
//! `/var/lib/docker/containers/<container id>/<container id>-json.log`. From those paths
//! (`log.file.path`) this processor sets `kubernetes.pod.name`, `kubernetes.pod.uid`,
//! `kubernetes.namespace`, `kubernetes.container.name`, `container.name` and `container.id`,
//! as far as the path holds them. Filebeat fills the same fields (and labels, annotations,
//! node and image) from the API server, which oxibeat does not query: `kube_config` is
//! refused, and the options that only shape API metadata are accepted and have no effect.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{options, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::{deep_merge, Event, Fields};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsPath {
    #[serde(default)]
    logs_path: Option<String>,
    #[serde(default)]
    resource_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // `fields` is accepted, with nothing to match without the API server.
struct Matcher {
    #[serde(default)]
    logs_path: Option<LogsPath>,
    /// `fields.lookup_fields` matches API metadata by field value: nothing to match here.
    #[serde(default)]
    fields: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // The options that shape API metadata are accepted, without effect.
struct Opts {
    #[serde(default)]
    kube_config: Option<String>,
    #[serde(default)]
    matchers: Vec<Matcher>,
    // Options that shape the metadata read from the API server: accepted, no effect.
    #[serde(default)]
    host: Option<toml::Value>,
    #[serde(default)]
    node: Option<toml::Value>,
    #[serde(default)]
    scope: Option<toml::Value>,
    #[serde(default)]
    namespace: Option<toml::Value>,
    #[serde(default)]
    in_cluster: Option<toml::Value>,
    #[serde(default)]
    kube_client_options: Option<toml::Value>,
    #[serde(default)]
    sync_period: Option<toml::Value>,
    #[serde(default)]
    cleanup_timeout: Option<toml::Value>,
    #[serde(default)]
    add_resource_metadata: Option<toml::Value>,
    #[serde(default)]
    labels: Option<toml::Value>,
    #[serde(default)]
    annotations: Option<toml::Value>,
    #[serde(default)]
    include_labels: Option<toml::Value>,
    #[serde(default)]
    exclude_labels: Option<toml::Value>,
    #[serde(default)]
    include_annotations: Option<toml::Value>,
    #[serde(default)]
    indexers: Option<toml::Value>,
    #[serde(default)]
    default_indexers: Option<toml::Value>,
    #[serde(default)]
    default_matchers: Option<toml::Value>,
}

/// The most paths whose metadata is kept; past it the cache starts over (rotated files).
const CACHE_MAX: usize = 16_384;

#[derive(Debug)]
pub struct AddKubernetesMetadata {
    /// Only paths below this prefix are looked at (`matchers.logs_path.logs_path`).
    prefix: Option<String>,
    cache: Mutex<HashMap<String, Option<Map<String, Value>>>>,
}

impl AddKubernetesMetadata {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        if o.kube_config.is_some() {
            return Err(ConfigError::new(
                format!("{key}.kube_config"),
                "not implemented: oxibeat does not query the Kubernetes API server; remove it \
                 to get the metadata of the log file's name (pod, namespace, container)",
            ));
        }
        let mut prefix = None;
        for (i, m) in o.matchers.iter().enumerate() {
            if let Some(lp) = &m.logs_path {
                if let Some(rt) = lp.resource_type.as_deref() {
                    if rt != "container" && rt != "pod" {
                        return Err(ConfigError::new(
                            format!("{key}.matchers[{i}].logs_path.resource_type"),
                            format!("unknown resource type {rt:?}; use \"container\" or \"pod\""),
                        ));
                    }
                }
                prefix = lp.logs_path.clone().or(prefix);
            }
        }
        Ok(AddKubernetesMetadata {
            prefix,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn metadata(&self, path: &str) -> Option<Map<String, Value>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(path) {
            return m.clone();
        }
        let found = self
            .prefix
            .as_deref()
            .map_or(true, |p| path.starts_with(p))
            .then(|| from_path(path))
            .flatten();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(path.to_string(), found.clone());
        found
    }
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The metadata a container log's path holds, as event fields.
pub fn from_path(path: &str) -> Option<Map<String, Value>> {
    let mut parts = path.rsplit('/');
    let file = parts.next()?;
    let dir = parts.next()?;
    let (mut pod, mut namespace, mut container, mut cid, mut uid) = (None, None, None, None, None);
    if let Some(stem) = file.strip_suffix(".log") {
        // <pod>_<namespace>_<container>-<id>.log: pod and namespace names cannot hold '_'.
        let mut it = stem.splitn(3, '_');
        if let (Some(p), Some(ns), Some(rest)) = (it.next(), it.next(), it.next()) {
            if let Some((c, id)) = rest.rsplit_once('-').filter(|(_, id)| is_container_id(id)) {
                (pod, namespace, container, cid) = (Some(p), Some(ns), Some(c), Some(id));
            }
        }
        if pod.is_none() && stem.bytes().all(|b| b.is_ascii_digit()) {
            // /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
            let pod_dir = parts.next()?;
            let mut it = pod_dir.splitn(3, '_');
            if let (Some(ns), Some(p), Some(u)) = (it.next(), it.next(), it.next()) {
                (pod, namespace, container, uid) = (Some(p), Some(ns), Some(dir), Some(u));
            }
        }
        if pod.is_none() {
            // /var/lib/docker/containers/<id>/<id>-json.log
            if let Some(id) = stem.strip_suffix("-json").filter(|id| *id == dir) {
                cid = is_container_id(id).then_some(id);
            }
        }
    }
    if pod.is_none() && cid.is_none() {
        return None;
    }
    let mut out = Map::new();
    if let Some(p) = pod {
        let mut k8s = serde_json::json!({"pod": {"name": p}});
        if let Some(u) = uid {
            k8s["pod"]["uid"] = Value::String(u.into());
        }
        if let Some(ns) = namespace {
            k8s["namespace"] = Value::String(ns.into());
        }
        if let Some(c) = container {
            k8s["container"] = serde_json::json!({ "name": c });
        }
        out.insert("kubernetes".into(), k8s);
    }
    let mut ctr = Map::new();
    if let Some(id) = cid {
        ctr.insert("id".into(), Value::String(id.into()));
    }
    if let Some(c) = container {
        ctr.insert("name".into(), Value::String(c.into()));
    }
    out.insert("container".into(), Value::Object(ctr));
    Some(out)
}

impl Processor for AddKubernetesMetadata {
    fn run(&self, event: &mut Event) -> Outcome {
        let path = match &event.fields {
            Fields::Line(l) => l.source.path.clone(),
            Fields::Map(_) | Fields::Json(_) => match event.get_value("log.file.path") {
                Some(Value::String(p)) => p,
                _ => return Outcome::Keep,
            },
        };
        if let Some(meta) = self.metadata(&path) {
            // Like Beats' DeepUpdate: what the event already has is kept.
            deep_merge(event.fields_mut(), meta, false);
        }
        Outcome::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8e2b7d1f5f1a4c3b9e0d2a6c7b8f9e0a1b2c3d4e5f60718293a4b5c6d7e8f901";

    #[test]
    fn kubelet_container_symlink_name() {
        let m = from_path(&format!(
            "/var/log/containers/web-7d9f8c6b5-x2x4z_shop_nginx-{ID}.log"
        ))
        .unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({
                "kubernetes": {"pod": {"name": "web-7d9f8c6b5-x2x4z"}, "namespace": "shop",
                               "container": {"name": "nginx"}},
                "container": {"id": ID, "name": "nginx"}
            })
        );
        // Container names may hold '-' (the id is after the last one).
        let m = from_path(&format!("/var/log/containers/p_ns_log-shipper-{ID}.log")).unwrap();
        assert_eq!(m["kubernetes"]["container"]["name"], "log-shipper");
    }

    #[test]
    fn pods_directory_and_docker_paths() {
        let m = from_path(
            "/var/log/pods/shop_web-7d9f8c6b5-x2x4z_0f4e7c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6/nginx/0.log",
        )
        .unwrap();
        assert_eq!(m["kubernetes"]["pod"]["name"], "web-7d9f8c6b5-x2x4z");
        assert_eq!(
            m["kubernetes"]["pod"]["uid"],
            "0f4e7c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
        );
        assert_eq!(m["kubernetes"]["namespace"], "shop");
        assert_eq!(m["container"]["name"], "nginx");
        assert!(m["container"].get("id").is_none());
        let m = from_path(&format!("/var/lib/docker/containers/{ID}/{ID}-json.log")).unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"container": {"id": ID}})
        );
        assert!(from_path("/var/log/app/app.log").is_none());
        assert!(from_path("/var/log/containers/no-id_here.log").is_none());
        assert!(from_path("").is_none());
    }

    #[test]
    fn options_and_prefix() {
        let opts: toml::Value = toml::from_str(
            "host = \"node-1\"\n[[matchers]]\nlogs_path = { logs_path = \"/var/log/containers/\" }\n",
        )
        .unwrap();
        let p = AddKubernetesMetadata::new(opts, "processors[0].add_kubernetes_metadata").unwrap();
        assert!(p
            .metadata(&format!("/var/log/containers/p_ns_c-{ID}.log"))
            .is_some());
        assert!(
            p.metadata(&format!("/elsewhere/p_ns_c-{ID}.log")).is_none(),
            "outside logs_path"
        );
        let bad: toml::Value = toml::from_str("kube_config = \"~/.kube/config\"").unwrap();
        let e = AddKubernetesMetadata::new(bad, "processors[0].add_kubernetes_metadata")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("processors[0].add_kubernetes_metadata.kube_config")
                && e.contains("not implemented"),
            "{e}"
        );
    }
}
