//! Event parity with Filebeat: for the input file of each reference event in
//! `../shared/filebeat-reference/` and a filebeat.yml equivalent to the one that produced it,
//! oxibeat's events must match Filebeat's field by field, apart from what differs by nature
//! (ids, timestamps, `agent.*`, the beat's name and version, the host, the file's identity on
//! this machine). Every other field is compared by value, and no field may be missing or extra.
//!
//! The reference files are real Filebeat output (their `.source.txt` siblings say where each
//! comes from): plain lines from 9.2.0 filestream, a multiline event from the 7.8.0 `log` input,
//! JSON decoded to the root by the 8.17.3 `json.keys_under_root`. There is no real container
//! event in the reference set; that case takes the 9.2.0 envelope plus what Filebeat's
//! `container` parser adds (libbeat/reader/readjson/docker_json.go: `stream`, and the
//! runtime's `time` as `@timestamp`).
//!
//! Run by `cargo test --test filebeat_parity` (part of tests/run.sh).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Map, Value};

fn reference(name: &str) -> PathBuf {
    support::filebeat_reference(name)
}

fn reference_events(name: &str) -> Vec<Value> {
    fs::read_to_string(reference(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Dotted leaf paths and their values.
fn leaves(v: &Value, prefix: &str, out: &mut Map<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &p, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

/// Fields whose value differs by nature between two runs or two products; their presence is
/// still compared. `agent.*` is left out entirely (7.x has agent.hostname, and agent.type
/// names the product).
const VARYING: &[&str] = &[
    "@timestamp",
    "@metadata.beat",    // "oxibeat" (documented in filebeat-compat/README.md)
    "@metadata.version", // the product's version
    "host.name",
    "log.file.path",
    "log.file.device_id",
    "log.file.inode",
    "log.file.fingerprint",
];

/// Compare field by field; `differs` lists fields whose value is allowed to differ for a
/// stated reason (besides `VARYING`).
fn assert_parity(case: &str, ours: &Value, theirs: &Value, differs: &[(&str, &str)]) {
    let (mut a, mut b) = (Map::new(), Map::new());
    leaves(ours, "", &mut a);
    leaves(theirs, "", &mut b);
    a.retain(|k, _| !k.starts_with("agent."));
    b.retain(|k, _| !k.starts_with("agent."));
    let mut ka: Vec<&String> = a.keys().collect();
    let mut kb: Vec<&String> = b.keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(
        ka, kb,
        "{case}: field paths differ from Filebeat's\nours:   {ours}\ntheirs: {theirs}"
    );
    for (k, v) in &b {
        if VARYING.contains(&k.as_str()) || differs.iter().any(|(d, _)| *d == k.as_str()) {
            continue;
        }
        assert_eq!(
            a.get(k),
            Some(v),
            "{case}: {k} differs\nours:   {ours}\ntheirs: {theirs}"
        );
    }
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        let c = Case {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(c.logs()).unwrap();
        c
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Run a filebeat.yml (`inputs` is its `filebeat.inputs` list, `{logs}` replaced) once,
    /// with output.file, and return the events.
    fn run(&self, inputs: &str) -> Vec<Value> {
        let yml = format!(
            "filebeat.inputs:\n{}\npath.data: {data}\noutput.file:\n  path: {out}\n  filename: events\n",
            inputs.replace("{logs}", &self.logs().display().to_string()),
            data = self.dir.path().join("data").display(),
            out = self.dir.path().join("out").display(),
        );
        let cfg = self.dir.path().join("filebeat.yml");
        fs::write(&cfg, yml).unwrap();
        let out = Command::new(support::bin())
            .args(["run", "--once", "-e", "-c"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "oxibeat failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        support::read_events(&self.dir.path().join("out"))
    }
}

#[test]
fn plain_lines_match_filebeat_9_2_filestream() {
    let theirs = reference_events("events-filestream-plain-9.2.0.ndjson");
    let c = Case::new();
    // The reference file's first lines (their offsets 0, 22, 43 say each line's length),
    // then enough lines for a full 1024-byte fingerprint, as the reference file had.
    let mut text = String::new();
    for t in &theirs {
        text.push_str(t["message"].as_str().unwrap());
        text.push('\n');
    }
    for i in 3..80 {
        text.push_str(&format!("{i} 1st file 615g line\n"));
    }
    fs::write(c.logs().join("plain.log"), text).unwrap();
    let ours = c.run(
        "  - type: filestream\n    id: plain\n    paths: ['{logs}/*.log']\n    file_identity.fingerprint: ~\n    prospector.scanner.fingerprint.enabled: true\n",
    );
    assert_eq!(ours.len(), 80);
    for (o, t) in ours.iter().zip(&theirs) {
        assert_parity("plain", o, t, &[]);
    }
}

#[test]
fn multiline_matches_filebeat_log_input() {
    // Filebeat 7.8.0, `log` input with multiline and drop_fields of the 7.x names (see the
    // reference's .source.txt: that is why `input` is absent).
    let theirs = reference_events("events-multiline-kafka-log-input-7.8.0.ndjson");
    let c = Case::new();
    let text = "Casue by:NullEx\nspace no leaft\ndevice \nkisa kksk\nCaused by:1233\n";
    fs::write(c.logs().join("kisa.log"), text).unwrap();
    let ours = c.run(
        "  - type: log\n    paths: ['{logs}/kisa.log']\n    multiline.pattern: '^Caused by'\n    multiline.negate: false\n    multiline.match: after\n    processors:\n      - drop_fields:\n          fields: [beat, input, source, offset]\n          ignore_missing: true\n",
    );
    assert_eq!(ours.len(), theirs.len(), "{ours:?}");
    for (o, t) in ours.iter().zip(&theirs) {
        // 7.8.0 is ECS 1.5.0 and had no log.file identity fields; 9.x adds them (the
        // identity fields are compared by presence on the 9.2.0 case above).
        let mut o = o.clone();
        if let Some(f) = o["log"]["file"].as_object_mut() {
            f.retain(|k, _| k == "path");
        }
        assert_parity(
            "multiline",
            &o,
            t,
            &[(
                "ecs.version",
                "ECS 1.5.0 in Filebeat 7.8.0, 8.0.0 in 8.x/9.x",
            )],
        );
    }
    assert_eq!(ours[3]["log"]["flags"], serde_json::json!(["multiline"]));
}

#[test]
fn json_keys_under_root_match_filebeat_8_17() {
    // Filebeat 8.17.3 with json.keys_under_root on stdin (log.offset 0, log.file.path "");
    // here the same line from a file with the `log` input's json.* options.
    let theirs = reference_events("events-json-parsed-8.17.3.ndjson");
    let c = Case::new();
    fs::write(
        c.logs().join("j.log"),
        "{\"name\": \"hzookang\", \"age\": 20, \"phone\": \"0123456789\"}\n",
    )
    .unwrap();
    let ours =
        c.run("  - type: log\n    paths: ['{logs}/j.log']\n    json.keys_under_root: true\n");
    assert_eq!(ours.len(), 1);
    let mut o = ours[0].clone();
    // Filebeat's stdin input reports input.type "stdin"; ours is the log input.
    assert_eq!(o["input"]["type"], "log");
    o["input"]["type"] = Value::String("stdin".into());
    assert_parity("ndjson", &o, &theirs[0], &[]);
    assert!(o.get("message").is_none(), "the JSON keys replace message");
    assert_eq!(o["age"], 20, "numbers stay numbers");
}

#[test]
fn container_lines_match_filebeat_container_input() {
    let plain = &reference_events("events-filestream-plain-9.2.0.ndjson")[0];
    let c = Case::new();
    // Docker json-file lines (a line split at 16 KiB would have no trailing \n) and CRI lines.
    let docker = concat!(
        r#"{"log":"GET /healthz 200\n","stream":"stdout","time":"2025-07-08T12:48:32.528123456Z"}"#,
        "\n",
        r#"{"log":"part one ","stream":"stderr","time":"2025-07-08T12:48:33.000000000Z"}"#,
        "\n",
        r#"{"log":"and two\n","stream":"stderr","time":"2025-07-08T12:48:33.100000000Z"}"#,
        "\n",
    );
    let cri = "2025-07-08T12:48:34.250000000Z stdout P hello \n2025-07-08T12:48:34.260000000Z stdout F world\n";
    fs::write(c.logs().join("docker.log"), docker).unwrap();
    fs::write(c.logs().join("cri.log"), cri).unwrap();
    let mut ours = c.run("  - type: container\n    paths: ['{logs}/*.log']\n");
    assert_eq!(ours.len(), 3, "{ours:?}");
    ours.sort_by_key(|e| e["@timestamp"].as_str().unwrap_or("").to_string());
    let second = docker.find('\n').unwrap() + 1;
    let want = [
        ("2025-07-08T12:48:32.528Z", "GET /healthz 200", "stdout", 0),
        (
            "2025-07-08T12:48:33.000Z",
            "part one and two",
            "stderr",
            second,
        ),
        ("2025-07-08T12:48:34.250Z", "hello world", "stdout", 0),
    ];
    for (o, (ts, msg, stream, offset)) in ours.iter().zip(want) {
        // Filebeat's event: the 9.2.0 envelope; input.type container; the container
        // parser's message and stream; @timestamp is the runtime's time.
        let mut t = plain.clone();
        t["message"] = Value::String(msg.into());
        t["stream"] = Value::String(stream.into());
        t["input"]["type"] = Value::String("container".into());
        t["log"]["offset"] = Value::from(offset);
        t["log"]["file"] = serde_json::json!({"path": ""});
        assert_parity("container", o, &t, &[]);
        assert_eq!(o["@timestamp"], ts, "@timestamp is the runtime's time");
    }
}
