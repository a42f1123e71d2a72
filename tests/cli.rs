//! The command line: config errors name the key path, `test`, `export`, `version`, processors.

mod support;

use std::fs;
use std::process::Command;

use support::*;

fn oxibeat(args: &[&str], cfg: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn config_errors_name_the_key_and_what_to_do() {
    let w = Workspace::new();
    let cases = [
        (
            w.input("a", "*.log", "close.on_state_change.inactiv = \"1s\""),
            vec!["inputs[0].close.on_state_change", "unknown field `inactiv`"],
        ),
        (
            w.input("a", "*.log", "include_lines = ['ok', '(unclosed']"),
            vec!["inputs[0].include_lines[1]", "invalid regular expression"],
        ),
        (
            format!("{}{}", w.input("dup", "*.log", ""), w.input("dup", "*.txt", "")),
            vec!["inputs[1].id", "duplicate input id \"dup\""],
        ),
        (
            format!("{}[[inputs.processors]]\ndrop_event = {{ when = {{ regexp = {{ message = '(' }} }} }}\n", w.input("a", "*.log", "")),
            vec!["inputs[0].processors[0].drop_event.when.regexp.message"],
        ),
        (
            "[[inputs]]\ntype = \"filestream\"\npaths = [\"/x\"]\n".to_string(),
            vec!["inputs[0]", "id"],
        ),
        (
            "[[inputs]]\ntype = \"journald\"\nid = \"j\"\n".to_string(),
            vec!["inputs[0].type", "unknown input type"],
        ),
    ];
    for (inputs, wants) in cases {
        let cfg = w.config(&inputs);
        let (ok, _, err) = oxibeat(&["test", "config"], &cfg);
        assert!(!ok, "should fail: {inputs}");
        for want in wants {
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        assert!(
            err.contains(&cfg.display().to_string()),
            "names the file: {err}"
        );
        // `run` refuses the same configuration before doing anything.
        let (ok, _, _) = oxibeat(&["run", "--once"], &cfg);
        assert!(!ok);
    }
    let (ok, _, err) = oxibeat(&["test", "config"], &w.path().join("missing.toml"));
    assert!(!ok && err.contains("cannot read config file"), "{err}");
}

#[test]
fn test_config_output_export_and_version() {
    let w = Workspace::new();
    let cfg = w.config_with(
        &w.input("a", "*.log", ""),
        &format!(
            // cloud.id enables the Elasticsearch output (as in Beats) unless it is disabled.
            "[output.file]\npath = {:?}\n[output.elasticsearch]\nenabled = false\n[cloud]\nid = \"x\"\nauth = \"elastic:hunter2\"\n",
            w.out().display().to_string()
        ),
    );
    let (ok, out, err) = oxibeat(&["test", "config"], &cfg);
    assert!(ok, "{err}");
    assert!(out.contains("Config OK"));
    let (ok, out, err) = oxibeat(&["test", "output"], &cfg);
    assert!(ok, "{err}");
    assert!(out.contains("writable"), "{out}");
    let (ok, out, err) = oxibeat(&["export", "config", "-E", "queue.mem.events=77"], &cfg);
    assert!(ok, "{err}");
    assert!(!out.contains("hunter2"), "secrets are masked: {out}");
    assert!(out.contains("events = 77"), "overrides apply: {out}");
    assert!(out.contains("check_interval"), "defaults are shown: {out}");
    let exported = w.path().join("exported.toml");
    fs::write(&exported, out.replace("\"xxxxx\"", "\"elastic:changeme\"")).unwrap();
    let (ok, _, err) = oxibeat(&["test", "config"], &exported);
    assert!(ok, "the exported config loads again: {err}");
    let v = Command::new(bin()).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn env_expansion_and_overrides_drive_a_run() {
    let w = Workspace::new();
    append(&w.logs().join("e.log"), &["hello".to_string()]);
    let inputs =
        "[[inputs]]\ntype = \"filestream\"\nid = \"e\"\npaths = [\"${OXI_TEST_LOGS}/*.log\"]\n";
    let cfg = w.config_with(
        inputs,
        "[output.file]\npath = \"${OXI_TEST_OUT:/nonexistent}\"\n",
    );
    let out = Command::new(bin())
        .args(["run", "--once", "-e", "-c"])
        .arg(&cfg)
        .arg("-E")
        .arg(format!("output.file.path={}", w.out().display()))
        .env("OXI_TEST_LOGS", w.logs())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.events().len(), 1);
}

#[test]
fn processors_run_in_the_pipeline() {
    let w = Workspace::new();
    append(
        &w.logs().join("p.log"),
        &[
            "GET /health 200".into(),
            "GET /api 500 slow".into(),
            "POST /api 201".into(),
        ],
    );
    let inputs = format!(
        "{}[[inputs.processors]]\ndrop_event = {{ when = {{ contains = {{ message = \"/health\" }} }} }}\n\
         [[inputs.processors]]\ndissect = {{ tokenizer = \"%{{method}} %{{path}} %{{status}}\", field = \"message\", target_prefix = \"http\" }}\n",
        w.input("p", "*.log", "")
    );
    let cfg = w.config(&format!(
        "{inputs}\n[[processors]]\nadd_fields = {{ target = \"project\", fields = {{ name = \"oxibeat\" }} }}\n"
    ));
    w.run_once(&cfg);
    let ev = w.events();
    assert_eq!(ev.len(), 2, "the health check was dropped");
    assert_eq!(ev[0]["http"]["method"], "GET");
    assert_eq!(ev[0]["http"]["status"], "500 slow");
    assert_eq!(ev[1]["http"]["path"], "/api");
    assert_eq!(ev[1]["project"]["name"], "oxibeat");
    // The dropped event still moved the cursor: a second run sends nothing.
    w.run_once(&cfg);
    assert_eq!(w.events().len(), 2);
}

#[test]
fn console_output_prints_events() {
    let w = Workspace::new();
    append(&w.logs().join("c.log"), &["to stdout".to_string()]);
    let cfg = w.config_with(&w.input("c", "*.log", ""), "[output.console]\n");
    let out = w.run_once(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ev: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(ev["message"], "to stdout");
}
