//! Registry take-over with Filebeat's own test data
//! (`../shared/filebeat-reference/registry-takeover-testdata/`, from elastic/beats
//! filebeat/tests/integration/testdata/take-over): the same four log files, the same inputs
//! (happy-path.yml), and the final registry compared with Filebeat's expected summaries
//! (key → offset, file, ttl, removed). Nothing taken over is sent again.
//!
//! Run by `cargo test --test filebeat_takeover` (part of tests/run.sh).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn testdata() -> PathBuf {
    support::filebeat_reference("registry-takeover-testdata")
}

/// What Filebeat's test harness summarises per key.
#[derive(Debug, PartialEq, Clone)]
struct State {
    offset: u64,
    filename: String,
    ttl: i64,
    removed: bool,
}

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// A temp dir holding `take-over/` with the four fixture files, like Filebeat's testdata.
    fn new() -> Self {
        let n = Node {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(n.files()).unwrap();
        for f in ["01.log", "02.log", "01.txt", "02.txt"] {
            fs::copy(testdata().join(f), n.files().join(f)).unwrap();
        }
        n
    }

    fn files(&self) -> PathBuf {
        self.dir.path().join("take-over")
    }

    fn registry_dir(&self) -> PathBuf {
        self.dir.path().join("data/registry/filebeat")
    }

    fn native(&self, f: &str) -> String {
        let md = fs::metadata(self.files().join(f)).unwrap();
        format!("{}-{}", md.ino(), md.dev())
    }

    /// happy-path.yml with its template filled in (`previous` is `.previousID`); `identity`
    /// replaces the first input's file identity; `txt` keeps the second input.
    fn config(&self, input_id: &str, previous: Option<&str>, identity: &str, txt: bool) -> PathBuf {
        let files = self.files().display().to_string();
        let take_over = previous
            .map(|p| {
                format!("    take_over:\n      enabled: true\n      from_ids:\n        - {p}\n")
            })
            .unwrap_or_default();
        let second = if txt {
            format!(
                "  - type: filestream\n    id: \"not-in-test-input\"\n    paths:\n      - {files}/*.txt\n    file_identity.fingerprint: ~\n    prospector:\n      scanner:\n        fingerprint:\n          enabled: true\n          length: 64\n        check_interval: 0.1s\n"
            )
        } else {
            String::new()
        };
        let yml = format!(
            "filebeat.inputs:\n  - type: filestream\n    id: \"{input_id}\"\n    paths:\n      - {files}/*.log\n{take_over}    file_identity.{identity}: ~\n    prospector:\n      scanner:\n        fingerprint:\n          enabled: true\n          length: 64\n        check_interval: 0.1s\n\n{second}\nqueue.mem:\n  flush.timeout: 0s\n\npath.home: {home}\n\noutput.file:\n  path: ${{path.home}}/out\n  filename: \"output-file\"\n  rotate_on_startup: false\n\nfilebeat.registry:\n  flush: 1s\n",
            home = self.dir.path().display(),
        );
        let p = self.dir.path().join(format!("{input_id}.yml"));
        fs::write(&p, yml).unwrap();
        p
    }

    /// Run once; the events it delivered (the output directory is emptied first).
    fn run(&self, cfg: &Path, extra: &[&str]) -> Vec<Value> {
        let out = self.dir.path().join("out");
        let _ = fs::remove_dir_all(&out);
        let o = Command::new(support::bin())
            .args(["run", "--once", "-e"])
            .args(extra)
            .arg("-c")
            .arg(cfg)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "oxibeat failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        support::read_events(&out)
    }

    /// The registry as Filebeat's test harness summarises it: the checkpoint, then log.json's
    /// operations replayed (a removed key keeps its last value and is marked removed).
    fn registry(&self) -> BTreeMap<String, State> {
        let dir = self.registry_dir();
        let mut values: BTreeMap<String, (Value, bool)> = BTreeMap::new();
        if let Ok(active) = fs::read_to_string(dir.join("active.dat")) {
            let p = PathBuf::from(active.trim());
            let p = if p.is_absolute() { p } else { dir.join(p) };
            if let Ok(text) = fs::read_to_string(&p) {
                let arr: Vec<Value> = serde_json::from_str(&text).unwrap();
                for mut v in arr {
                    let k = v["_key"].as_str().unwrap().to_string();
                    v.as_object_mut().unwrap().remove("_key");
                    values.insert(k, (v, false));
                }
            }
        }
        let log = fs::read_to_string(dir.join("log.json")).unwrap_or_default();
        let mut lines = log.lines();
        while let (Some(op), Some(kv)) = (lines.next(), lines.next()) {
            let op: Value = serde_json::from_str(op).unwrap();
            let kv: Value = serde_json::from_str(kv).unwrap();
            let k = kv["k"].as_str().unwrap().to_string();
            match op["op"].as_str() {
                Some("set") => {
                    values.insert(k, (kv["v"].clone(), false));
                }
                Some("remove") => {
                    if let Some(e) = values.get_mut(&k) {
                        e.1 = true;
                    }
                }
                other => panic!("unknown registry op {other:?}"),
            }
        }
        values
            .into_iter()
            .map(|(k, (v, removed))| {
                let offset = v["cursor"]["offset"]
                    .as_u64()
                    .or_else(|| v["offset"].as_u64())
                    .unwrap_or(0);
                let filename = v["meta"]["source"]
                    .as_str()
                    .or_else(|| v["source"].as_str())
                    .unwrap_or("")
                    .to_string();
                let ttl = v["ttl"].as_i64().unwrap_or(0);
                (
                    k,
                    State {
                        offset,
                        filename,
                        ttl,
                        removed,
                    },
                )
            })
            .collect()
    }

    /// Filebeat's expected summary, its placeholders (TESTDATA-PATH, NATIVE-<file>, the
    /// developer's path) resolved for this node.
    fn expected(&self, name: &str) -> BTreeMap<String, State> {
        let text = fs::read_to_string(testdata().join(name)).unwrap();
        let m: BTreeMap<String, Value> = serde_json::from_str(&text).unwrap();
        let here = self.dir.path().display().to_string();
        let fix = |s: &str| {
            let mut s = s.replace("TESTDATA-PATH", &here).replace(
                "/home/tiago/devel/beats/filebeat/tests/integration/testdata",
                &here,
            );
            for f in ["01.log", "02.log", "01.txt", "02.txt"] {
                s = s.replace(&format!("NATIVE-{f}"), &self.native(f));
            }
            s
        };
        m.into_iter()
            .map(|(k, v)| {
                let removed = v["Removed"].as_bool().unwrap();
                (
                    fix(&k),
                    State {
                        offset: v["Offset"].as_u64().unwrap(),
                        filename: fix(v["Filename"].as_str().unwrap()),
                        ttl: v["TTL"].as_i64().unwrap(),
                        removed,
                    },
                )
            })
            .collect()
    }

    /// The legacy log input's registry, as Filebeat 7.x/8.x leaves it after reading every
    /// file to its end (the value shape of registry-log-input-native-*.log.json).
    fn seed_log_input_registry(&self) {
        let dir = self.registry_dir();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("meta.json"), "{\"version\":\"1\"}").unwrap();
        let mut log = String::new();
        for (i, f) in ["01.log", "01.txt", "02.log", "02.txt"].iter().enumerate() {
            let p = self.files().join(f);
            let md = fs::metadata(&p).unwrap();
            let id = format!("native::{}-{}", md.ino(), md.dev());
            log.push_str(&format!("{{\"op\":\"set\",\"id\":{}}}\n", i + 1));
            let v = json!({
                "k": format!("filebeat::logs::{id}"),
                "v": {
                    "id": id, "prev_id": "", "source": p.display().to_string(),
                    "offset": md.len(), "timestamp": [515683809191u64, 1781771002u64],
                    "ttl": -1, "type": "log",
                    "FileStateOS": {"inode": md.ino(), "device": md.dev()},
                    "identifier_name": "native"
                }
            });
            log.push_str(&v.to_string());
            log.push('\n');
        }
        fs::write(dir.join("log.json"), log).unwrap();
    }
}

/// The live states must be Filebeat's; a state Filebeat's summary shows as removed must be
/// gone (removed in log.json, or absent after a checkpoint: both mean the key is deleted;
/// Filebeat writes ttl 0 before the remove, oxibeat removes at once).
fn assert_registry(got: BTreeMap<String, State>, want: BTreeMap<String, State>) {
    let live = |m: &BTreeMap<String, State>| -> BTreeMap<String, State> {
        m.iter()
            .filter(|(_, s)| !s.removed)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    };
    let (got_live, want_live) = (live(&got), live(&want));
    assert_eq!(
        got_live, want_live,
        "live registry states differ from Filebeat's"
    );
    for (k, s) in &want {
        if s.removed {
            assert!(!got_live.contains_key(k), "{k} should be removed");
        }
    }
}

fn lines_of(files: &Path, names: &[&str]) -> usize {
    names
        .iter()
        .map(|n| fs::read_to_string(files.join(n)).unwrap().lines().count())
        .sum()
}

/// Filebeat's TestFilestreamTakeOver happy path: first-id reads the files, second-id takes
/// them over from first-id and sends nothing again; first-id's states are removed.
#[test]
fn filestream_states_are_taken_over_as_filebeat_does() {
    let n = Node::new();
    let first = n.run(&n.config("first-id", None, "fingerprint", true), &[]);
    assert_eq!(
        first.len(),
        lines_of(&n.files(), &["01.log", "02.log", "01.txt", "02.txt"]),
        "the first run reads every line"
    );
    let again = n.run(
        &n.config("second-id", Some("first-id"), "fingerprint", true),
        &[],
    );
    assert!(
        again.is_empty(),
        "taken-over files are not sent again: {again:?}"
    );
    assert_registry(
        n.registry(),
        n.expected("expected-registry-happy-path.json"),
    );
}

/// Filebeat does not migrate a state to another file identity on take-over: second-id (path
/// identity) reads the files again and first-id's states stay.
#[test]
fn take_over_does_not_migrate_the_file_identity() {
    let n = Node::new();
    n.run(&n.config("first-id", None, "fingerprint", false), &[]);
    let again = n.run(&n.config("second-id", Some("first-id"), "path", false), &[]);
    assert_eq!(again.len(), lines_of(&n.files(), &["01.log", "02.log"]));
    assert_registry(
        n.registry(),
        n.expected("expected-registry-do-no-migrate-identity.json"),
    );
}

/// Filebeat's take-over from the log input: a filestream input with `take_over.enabled`
/// continues the log input's states of the files it matches (the *.log files) and sends
/// nothing again; the log input's states stay, marked ttl -2, and those of files it does not
/// match (*.txt) are untouched.
#[test]
fn log_input_states_are_taken_over_as_filebeat_does() {
    let n = Node::new();
    n.seed_log_input_registry();
    let files = n.files().display().to_string();
    let yml = format!(
        "filebeat.inputs:\n  - type: filestream\n    id: take-over-from-log-input\n    take_over:\n      enabled: true\n    paths:\n      - {files}/*.log\n    file_identity.fingerprint: ~\n    prospector.scanner.fingerprint:\n      enabled: true\n      length: 64\npath.home: {home}\noutput.file:\n  path: ${{path.home}}/out\n",
        home = n.dir.path().display()
    );
    let cfg = n.dir.path().join("filebeat.yml");
    fs::write(&cfg, yml).unwrap();
    let again = n.run(&cfg, &[]);
    assert!(
        again.is_empty(),
        "taken-over files are not sent again: {again:?}"
    );
    assert_registry(
        n.registry(),
        n.expected("expected-registry-happy-path-log-input.json"),
    );
}

/// A filebeat.yml still on `type: log` (no id, no take_over) runs on filestream and takes the
/// log input's states over by itself: only what was written after Filebeat stopped is sent.
#[test]
fn a_log_input_config_continues_where_filebeat_stopped() {
    let n = Node::new();
    n.seed_log_input_registry();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(n.files().join("01.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"written after Filebeat stopped\n").unwrap();
    let files = n.files().display().to_string();
    let yml = format!(
        "filebeat.inputs:\n  - type: log\n    paths:\n      - {files}/*.log\n      - {files}/*.txt\n    scan_frequency: 1s\npath.home: {home}\noutput.file:\n  path: ${{path.home}}/out\n",
        home = n.dir.path().display()
    );
    let cfg = n.dir.path().join("filebeat.yml");
    fs::write(&cfg, yml).unwrap();
    let ev = n.run(&cfg, &[]);
    let msgs: Vec<&str> = ev.iter().filter_map(|e| e["message"].as_str()).collect();
    assert_eq!(msgs, ["written after Filebeat stopped"]);
    // Run again: nothing more.
    assert!(n.run(&cfg, &[]).is_empty());
}
