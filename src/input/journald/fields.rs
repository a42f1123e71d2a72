//! Journal fields to event fields, as Filebeat's journald input names them
//! (filebeat/input/journald/pkg/journalfield: `default.go` for the table, `conv.go` for the
//! integer conversion, `journald.custom.*` for the rest and the ECS enrichment).

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::export::Entry;
use crate::event::{get_path, put_path};

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Dropped,
}

/// journal field → (kind, event field names), Filebeat's `journaldEventFields`.
const TABLE: &[(&str, Kind, &[&str])] = &[
    ("COREDUMP_UNIT", Kind::Text, &["journald.coredump.unit"]),
    (
        "COREDUMP_USER_UNIT",
        Kind::Text,
        &["journald.coredump.user_unit"],
    ),
    (
        "OBJECT_AUDIT_LOGINUID",
        Kind::Integer,
        &["journald.object.audit.login_uid"],
    ),
    (
        "OBJECT_AUDIT_SESSION",
        Kind::Integer,
        &["journald.object.audit.session"],
    ),
    (
        "OBJECT_CMDLINE",
        Kind::Text,
        &["journald.object.process.command_line"],
    ),
    ("OBJECT_COMM", Kind::Text, &["journald.object.process.name"]),
    (
        "OBJECT_EXE",
        Kind::Text,
        &["journald.object.process.executable"],
    ),
    ("OBJECT_GID", Kind::Integer, &["journald.object.gid"]),
    ("OBJECT_PID", Kind::Integer, &["journald.object.pid"]),
    (
        "OBJECT_SYSTEMD_OWNER_UID",
        Kind::Integer,
        &["journald.object.systemd.owner_uid"],
    ),
    (
        "OBJECT_SYSTEMD_SESSION",
        Kind::Text,
        &["journald.object.systemd.session"],
    ),
    (
        "OBJECT_SYSTEMD_UNIT",
        Kind::Text,
        &["journald.object.systemd.unit"],
    ),
    (
        "OBJECT_SYSTEMD_USER_UNIT",
        Kind::Text,
        &["journald.object.systemd.user_unit"],
    ),
    ("OBJECT_UID", Kind::Integer, &["journald.object.uid"]),
    ("_KERNEL_DEVICE", Kind::Text, &["journald.kernel.device"]),
    (
        "_KERNEL_SUBSYSTEM",
        Kind::Text,
        &["journald.kernel.subsystem"],
    ),
    (
        "_SYSTEMD_INVOCATION_ID",
        Kind::Text,
        &["systemd.invocation_id"],
    ),
    ("_SYSTEMD_USER_SLICE", Kind::Text, &["systemd.user_slice"]),
    (
        "_UDEV_DEVLINK",
        Kind::Text,
        &["journald.kernel.device_symlinks"],
    ),
    (
        "_UDEV_DEVNODE",
        Kind::Text,
        &["journald.kernel.device_node_path"],
    ),
    (
        "_UDEV_SYSNAME",
        Kind::Text,
        &["journald.kernel.device_name"],
    ),
    ("UNIT", Kind::Text, &["journald.unit"]),
    (
        "_AUDIT_LOGINUID",
        Kind::Integer,
        &["journald.audit.login_uid"],
    ),
    ("_AUDIT_SESSION", Kind::Text, &["journald.audit.session"]),
    ("_BOOT_ID", Kind::Text, &["journald.host.boot_id"]),
    (
        "_CAP_EFFECTIVE",
        Kind::Text,
        &["journald.process.capabilities"],
    ),
    ("_CMDLINE", Kind::Text, &["journald.process.command_line"]),
    ("CODE_FILE", Kind::Text, &["journald.code.file"]),
    ("CODE_FUNC", Kind::Text, &["journald.code.func"]),
    ("CODE_LINE", Kind::Integer, &["journald.code.line"]),
    ("_COMM", Kind::Text, &["journald.process.name"]),
    ("_EXE", Kind::Text, &["journald.process.executable"]),
    ("_GID", Kind::Integer, &["journald.gid"]),
    ("_HOSTNAME", Kind::Text, &["host.hostname"]),
    ("_MACHINE_ID", Kind::Text, &["host.id"]),
    ("MESSAGE", Kind::Text, &["message"]),
    ("MESSAGE_ID", Kind::Text, &["message_id"]),
    ("_PID", Kind::Integer, &["journald.pid"]),
    (
        "PRIORITY",
        Kind::Integer,
        &["syslog.priority", "log.syslog.priority"],
    ),
    (
        "SYSLOG_FACILITY",
        Kind::Integer,
        &["syslog.facility", "log.syslog.facility.code"],
    ),
    ("SYSLOG_IDENTIFIER", Kind::Text, &["syslog.identifier"]),
    ("SYSLOG_PID", Kind::Integer, &["syslog.pid"]),
    ("_SYSTEMD_CGROUP", Kind::Text, &["systemd.cgroup"]),
    ("_SYSTEMD_OWNER_UID", Kind::Integer, &["systemd.owner_uid"]),
    ("_SYSTEMD_SESSION", Kind::Text, &["systemd.session"]),
    ("_SYSTEMD_SLICE", Kind::Text, &["systemd.slice"]),
    ("_SYSTEMD_UNIT", Kind::Text, &["systemd.unit"]),
    ("_SYSTEMD_USER_UNIT", Kind::Text, &["systemd.user_unit"]),
    ("_TRANSPORT", Kind::Text, &["systemd.transport"]),
    ("_UID", Kind::Integer, &["journald.uid"]),
    // Docker's journald logging driver.
    ("CONTAINER_ID", Kind::Text, &["container.id_truncated"]),
    ("CONTAINER_ID_FULL", Kind::Text, &["container.id"]),
    ("CONTAINER_NAME", Kind::Text, &["container.name"]),
    ("CONTAINER_TAG", Kind::Text, &["container.log.tag"]),
    (
        "CONTAINER_PARTIAL_MESSAGE",
        Kind::Text,
        &["container.partial"],
    ),
    ("IMAGE_NAME", Kind::Text, &["container.image.name"]),
    // Kept in the registry (the cursor) or in @timestamp instead.
    ("__MONOTONIC_TIMESTAMP", Kind::Dropped, &[]),
    ("_SOURCE_REALTIME_TIMESTAMP", Kind::Dropped, &[]),
    ("__CURSOR", Kind::Dropped, &[]),
    ("_SOURCE_MONOTONIC_TIMESTAMP", Kind::Dropped, &[]),
];

fn lookup(name: &str) -> Option<(Kind, &'static [&'static str])> {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, k, names)| (*k, *names))
}

/// The journal field an include_matches name stands for: a translated name
/// (`systemd.unit`) or the journal's own (`_SYSTEMD_UNIT`).
pub fn journal_name(name: &str) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(_, _, names)| names.contains(&name))
        .map(|(n, _, _)| *n)
}

/// Linux capability names by bit (linux/capability.h), as Filebeat's
/// `libbeat/common/capabilities` renders `_CAP_EFFECTIVE`.
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn capabilities(hex: &str) -> Option<Vec<Value>> {
    let bits = u64::from_str_radix(hex.trim(), 16).ok()?;
    let caps: Vec<Value> = (0..64)
        .filter(|b| bits & (1u64 << b) != 0)
        .map(|b| {
            Value::String(
                CAPABILITIES
                    .get(b as usize)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| b.to_string()),
            )
        })
        .collect();
    (!caps.is_empty()).then_some(caps)
}

/// A journal value as JSON text; bytes that are not UTF-8 become U+FFFD.
fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// As Filebeat's `convertValue`: an integer, also from "123,user" (some systemd versions
/// append the user name to SYSLOG_PID); otherwise the text unchanged.
fn integer(v: &[u8]) -> Value {
    let s = text(v);
    let head = s.split(',').next().unwrap_or("");
    match s.parse::<i64>().or_else(|_| head.parse::<i64>()) {
        Ok(i) => Value::from(i),
        Err(_) => Value::String(s),
    }
}

/// The message (MESSAGE, lossy UTF-8) and every other field of `entry`, converted.
/// Repeated journal fields become arrays.
pub fn convert(entry: &Entry) -> (String, bool, Map<String, Value>) {
    let mut fields = Map::new();
    let mut custom = Map::new();
    let mut message: Option<(String, bool)> = None;
    for (name, raw) in &entry.fields {
        if name == "MESSAGE" {
            if message.is_none() {
                let valid = std::str::from_utf8(raw).is_ok();
                message = Some((text(raw), valid));
            }
            continue;
        }
        match lookup(name) {
            Some((Kind::Dropped, _)) => {}
            Some((kind, names)) => {
                let value = match kind {
                    Kind::Integer => integer(raw),
                    _ => Value::String(text(raw)),
                };
                for n in names {
                    put_or_push(&mut fields, n, value.clone());
                }
            }
            None => {
                let key = name.trim_start_matches('_').to_ascii_lowercase();
                if key.is_empty() {
                    continue;
                }
                let value = Value::String(text(raw));
                match custom.get_mut(&key) {
                    Some(Value::Array(a)) => a.push(value),
                    Some(prev) => *prev = Value::Array(vec![prev.take(), value]),
                    None => {
                        custom.insert(key, value);
                    }
                }
            }
        }
    }
    if !custom.is_empty() {
        put_path(&mut fields, "journald.custom", Value::Object(custom));
    }
    enrich(&mut fields);
    let (message, valid) = message.unwrap_or((String::new(), true));
    (message, valid, fields)
}

fn put_or_push(m: &mut Map<String, Value>, path: &str, value: Value) {
    match get_path(m, path).cloned() {
        Some(Value::Array(mut a)) => {
            a.push(value);
            put_path(m, path, Value::Array(a));
        }
        Some(prev) => put_path(m, path, Value::Array(vec![prev, value])),
        None => put_path(m, path, value),
    }
}

fn int_at(m: &Map<String, Value>, path: &str) -> Option<i64> {
    get_path(m, path).and_then(Value::as_i64)
}

fn str_at(m: &Map<String, Value>, path: &str) -> Option<String> {
    get_path(m, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Filebeat's `withECSEnrichment`: `user.*`, `process.*` (the `journald.object.*` values of a
/// daemon writing on behalf of another program win), `process.thread.capabilities.effective`.
fn enrich(m: &mut Map<String, Value>) {
    for prefix in ["journald", "journald.object"] {
        set_user(m, prefix);
    }
    for prefix in ["journald", "journald.object"] {
        set_process(m, prefix);
    }
    if let Some(caps) = str_at(m, "journald.process.capabilities").and_then(|c| capabilities(&c)) {
        put_path(
            m,
            "process.thread.capabilities.effective",
            Value::Array(caps),
        );
    }
}

fn set_user(m: &mut Map<String, Value>, prefix: &str) {
    let login = get_path(m, &format!("{prefix}.audit.login_uid")).map(|_| {
        int_at(m, &format!("{prefix}.audit.login_uid"))
            .unwrap_or(0)
            .to_string()
    });
    if let Some(l) = &login {
        put_path(m, "user.id", Value::String(l.clone()));
    }
    if get_path(m, &format!("{prefix}.uid")).is_none() {
        return;
    }
    let uid = int_at(m, &format!("{prefix}.uid")).unwrap_or(0).to_string();
    let gid = int_at(m, &format!("{prefix}.gid")).unwrap_or(0).to_string();
    if login.as_ref().is_some_and(|l| *l != uid) {
        put_path(m, "user.effective.id", Value::String(uid));
        put_path(m, "user.effective.group.id", Value::String(gid));
    } else {
        put_path(m, "user.id", Value::String(uid));
        put_path(m, "user.group.id", Value::String(gid));
    }
}

fn cmdline_args(cmdline: &str) -> Vec<Value> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r#""(\\"|[^"])*?"|[^\s]+"#).expect("valid regex"));
    re.find_iter(cmdline)
        .map(|m| Value::String(m.as_str().to_string()))
        .collect()
}

fn set_process(m: &mut Map<String, Value>, prefix: &str) {
    if get_path(m, &format!("{prefix}.pid")).is_some() {
        let pid = int_at(m, &format!("{prefix}.pid")).unwrap_or(0);
        put_path(m, "process.pid", Value::from(pid));
    }
    if let Some(name) = str_at(m, &format!("{prefix}.process.name")) {
        put_path(m, "process.name", Value::String(name));
    }
    if let Some(exe) = str_at(m, &format!("{prefix}.process.executable")) {
        put_path(m, "process.executable", Value::String(exe));
    }
    let Some(cmdline) = str_at(m, &format!("{prefix}.process.command_line")) else {
        return;
    };
    let args = cmdline_args(&cmdline);
    put_path(m, "process.command_line", Value::String(cmdline));
    if !args.is_empty() {
        put_path(m, "process.args_count", Value::from(args.len()));
        put_path(m, "process.args", Value::Array(args));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &[u8])]) -> Entry {
        Entry {
            fields: fields
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            truncated: false,
        }
    }

    /// The fields of the first event of Filebeat's
    /// testdata/input-multiline-parser-events.json, from the journal fields it came from.
    #[test]
    fn matches_filebeats_conversion() {
        let e = entry(&[
            ("__CURSOR", b"s=x"),
            ("__MONOTONIC_TIMESTAMP", b"1"),
            ("_HOSTNAME", b"x-wing"),
            ("_MACHINE_ID", b"a6a19d57efcf4bf38705c63217a63ba3"),
            ("_AUDIT_LOGINUID", b"1000"),
            ("_AUDIT_SESSION", b"1"),
            ("SYSLOG_TIMESTAMP", b"Nov 22 18:10:04 "),
            ("_GID", b"0"),
            ("_BOOT_ID", b"a05ba5675e444581b00ac5adf4340819"),
            ("_PID", b"2084586"),
            ("_CAP_EFFECTIVE", b"1ffffffffff"),
            ("_CMDLINE", b"sudo journalctl --user --rotate"),
            ("_EXE", b"/usr/bin/sudo"),
            ("_COMM", b"sudo"),
            ("_UID", b"1000"),
            ("SYSLOG_FACILITY", b"10"),
            ("PRIORITY", b"6"),
            (
                "MESSAGE",
                b"pam_unix(sudo:session): session closed for user root",
            ),
            ("_SYSTEMD_UNIT", b"session-1.scope"),
            ("_TRANSPORT", b"syslog"),
        ]);
        let (msg, valid, f) = convert(&e);
        assert_eq!(msg, "pam_unix(sudo:session): session closed for user root");
        assert!(valid);
        let v = Value::Object(f);
        assert_eq!(v["host"]["hostname"], "x-wing");
        assert_eq!(v["host"]["id"], "a6a19d57efcf4bf38705c63217a63ba3");
        assert_eq!(v["journald"]["audit"]["login_uid"], 1000);
        assert_eq!(v["journald"]["audit"]["session"], "1");
        assert_eq!(
            v["journald"]["custom"]["syslog_timestamp"],
            "Nov 22 18:10:04 "
        );
        assert_eq!(v["journald"]["pid"], 2084586);
        assert_eq!(v["journald"]["process"]["capabilities"], "1ffffffffff");
        assert_eq!(v["log"]["syslog"]["priority"], 6);
        assert_eq!(v["log"]["syslog"]["facility"]["code"], 10);
        assert_eq!(v["syslog"]["priority"], 6);
        assert_eq!(v["process"]["pid"], 2084586);
        assert_eq!(v["process"]["args_count"], 4);
        assert_eq!(v["process"]["args"][3], "--rotate");
        assert_eq!(v["process"]["name"], "sudo");
        let caps = v["process"]["thread"]["capabilities"]["effective"]
            .as_array()
            .unwrap();
        assert_eq!(caps.len(), 41);
        assert_eq!(caps[2], "CAP_DAC_READ_SEARCH");
        assert_eq!(caps[40], "CAP_CHECKPOINT_RESTORE");
        assert_eq!(v["systemd"]["unit"], "session-1.scope");
        assert_eq!(v["user"]["id"], "1000");
        assert_eq!(v["user"]["group"]["id"], "0");
        assert!(v.get("message").is_none(), "message is returned apart");
        assert!(v["journald"].get("cursor").is_none());
    }

    #[test]
    fn effective_user_when_login_differs() {
        let (_, _, f) = convert(&entry(&[
            ("_AUDIT_LOGINUID", b"1000"),
            ("_UID", b"0"),
            ("_GID", b"0"),
        ]));
        let v = Value::Object(f);
        assert_eq!(v["user"]["id"], "1000");
        assert_eq!(v["user"]["effective"]["id"], "0");
    }

    #[test]
    fn integers_repeats_and_binary() {
        let (msg, valid, f) = convert(&entry(&[
            ("SYSLOG_PID", b"42,root"),
            ("PRIORITY", b"high"),
            ("TAG", b"a"),
            ("TAG", b"b"),
            ("MESSAGE", b"bad \xff byte"),
        ]));
        let v = Value::Object(f);
        assert_eq!(v["syslog"]["pid"], 42);
        assert_eq!(v["syslog"]["priority"], "high");
        assert_eq!(
            v["journald"]["custom"]["tag"],
            serde_json::json!(["a", "b"])
        );
        assert_eq!(msg, "bad \u{fffd} byte");
        assert!(!valid);
    }

    #[test]
    fn translated_match_names() {
        assert_eq!(journal_name("systemd.unit"), Some("_SYSTEMD_UNIT"));
        assert_eq!(journal_name("log.syslog.priority"), Some("PRIORITY"));
        assert_eq!(journal_name("nope"), None);
    }
}
