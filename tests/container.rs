//! The `container` input end to end on a Kubernetes node's layout: `/var/log/containers/*.log`
//! symlinks to `/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log` (CRI format, as
//! containerd and CRI-O write it) and a Docker json-file log, rotation as the kubelet does it
//! (rename to `0.log.<timestamp>`, the runtime reopens a new `0.log`), and the Kubernetes
//! metadata taken from the file names, with Filebeat's field names. A filebeat.yml drives it.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;

use serde_json::Value;
use support::*;

const ID: &str = "8e2b7d1f5f1a4c3b9e0d2a6c7b8f9e0a1b2c3d4e5f60718293a4b5c6d7e8f901";

fn cri(f: &mut fs::File, i: usize, stream: &str) {
    // A long line in two CRI parts (P then F), every 10th line.
    if i % 10 == 0 {
        write!(
            f,
            "2025-07-08T12:48:{:02}.{:09}Z {stream} P line {i} first part, \n2025-07-08T12:48:{:02}.{:09}Z {stream} F second part\n",
            i / 1000 % 60,
            i % 1000,
            i / 1000 % 60,
            i % 1000 + 1
        )
        .unwrap();
    } else {
        writeln!(
            f,
            "2025-07-08T12:48:{:02}.{:09}Z {stream} F line {i}",
            i / 1000 % 60,
            i % 1000
        )
        .unwrap();
    }
    f.flush().unwrap();
}

fn seq(e: &Value) -> Option<usize> {
    e["message"]
        .as_str()?
        .strip_prefix("line ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn kubelet_layout_rotation_and_metadata_from_file_names() {
    let w = Workspace::new();
    let root = w.path();
    let pod_dir =
        root.join("pods/shop_web-7d9f8c6b5-x2x4z_0c8f0f6e-1b1a-4c57-9a3e-5f2f3d4c5b6a/nginx");
    fs::create_dir_all(&pod_dir).unwrap();
    let containers = root.join("containers");
    fs::create_dir_all(&containers).unwrap();
    let log0 = pod_dir.join("0.log");
    let mut f = fs::File::create(&log0).unwrap();
    symlink(
        &log0,
        containers.join(format!("web-7d9f8c6b5-x2x4z_shop_nginx-{ID}.log")),
    )
    .unwrap();
    for i in 0..50 {
        cri(&mut f, i, if i % 3 == 0 { "stderr" } else { "stdout" });
    }
    let yml = root.join("filebeat.yml");
    fs::write(
        &yml,
        format!(
            "filebeat.inputs:\n  - type: container\n    paths: ['{c}/*.log']\n    scan_frequency: 200ms\n    processors:\n      - add_kubernetes_metadata:\n          matchers:\n            - logs_path:\n                logs_path: '{c}/'\npath.data: {data}\noutput.file:\n  path: {out}\n",
            c = containers.display(),
            data = w.data().display(),
            out = w.out().display(),
        ),
    )
    .unwrap();
    let mut agent = w.spawn(&yml);
    w.wait_events(50, 30);
    // The kubelet rotates: rename to 0.log.<timestamp>, the runtime opens a new 0.log; the
    // symlink now leads to the new file.
    drop(f);
    fs::rename(&log0, pod_dir.join("0.log.20250708-124900")).unwrap();
    let mut f = fs::File::create(&log0).unwrap();
    for i in 50..120 {
        cri(&mut f, i, "stdout");
    }
    let events = w.wait_events(120, 30);
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    let mut seqs: Vec<usize> = events.iter().filter_map(seq).collect();
    seqs.sort();
    assert_eq!(seqs, (0..120).collect::<Vec<_>>(), "every line once");
    let e = events.iter().find(|e| seq(e) == Some(0)).unwrap();
    assert_eq!(
        e["message"], "line 0 first part, second part",
        "CRI P + F joined"
    );
    assert_eq!(e["stream"], "stderr");
    assert_eq!(
        e["@timestamp"], "2025-07-08T12:48:00.000Z",
        "the runtime's time"
    );
    assert_eq!(e["input"]["type"], "container");
    assert_eq!(e["kubernetes"]["pod"]["name"], "web-7d9f8c6b5-x2x4z");
    assert_eq!(e["kubernetes"]["namespace"], "shop");
    assert_eq!(e["kubernetes"]["container"]["name"], "nginx");
    assert_eq!(e["container"]["id"], ID);
    assert_eq!(e["container"]["name"], "nginx");
    assert!(
        e["log"]["file"]["path"]
            .as_str()
            .unwrap()
            .starts_with(&containers.display().to_string()),
        "the path as matched (the symlink)"
    );
    let e = events.iter().find(|e| seq(e) == Some(61)).unwrap();
    assert_eq!(e["stream"], "stdout");
    assert_eq!(
        e["kubernetes"]["namespace"], "shop",
        "after the rotation too"
    );
}

#[test]
fn docker_json_file_with_a_16k_split_and_a_stream_filter() {
    let w = Workspace::new();
    let dir = w.path().join(format!("docker/containers/{ID}"));
    fs::create_dir_all(&dir).unwrap();
    let long = "x".repeat(16 * 1024);
    let mut text = String::new();
    text.push_str(&format!(
        "{{\"log\":\"{long}\",\"stream\":\"stdout\",\"time\":\"2025-07-08T12:48:32.000000001Z\"}}\n"
    ));
    text.push_str(
        "{\"log\":\"tail\\n\",\"stream\":\"stdout\",\"time\":\"2025-07-08T12:48:32.000000002Z\"}\n",
    );
    text.push_str(
        "{\"log\":\"to stderr\\n\",\"stream\":\"stderr\",\"time\":\"2025-07-08T12:48:33Z\"}\n",
    );
    text.push_str("not json at all\n");
    fs::write(dir.join(format!("{ID}-json.log")), text).unwrap();
    let yml = w.path().join("filebeat.yml");
    fs::write(
        &yml,
        format!(
            "filebeat.inputs:\n  - type: container\n    stream: stdout\n    format: docker\n    paths: ['{}/docker/containers/*/*.log']\n    processors:\n      - add_kubernetes_metadata: ~\npath.data: {}\noutput.file:\n  path: {}\n",
            w.path().display(),
            w.data().display(),
            w.out().display()
        ),
    )
    .unwrap();
    w.run_once(&yml);
    let ev = w.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0]["message"].as_str().unwrap().len(), 16 * 1024 + 4);
    assert!(ev[0]["message"].as_str().unwrap().ends_with("xtail"));
    assert_eq!(ev[0]["stream"], "stdout");
    assert_eq!(ev[0]["container"]["id"], ID, "from Docker's path");
    // The invalid line is shipped, flagged, not dropped.
    assert_eq!(ev[1]["message"], "not json at all");
    assert!(ev[1]["error"]["message"].is_string(), "{}", ev[1]);
}
