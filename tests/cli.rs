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
            "[[inputs]]\ntype = \"winlog\"\nid = \"w\"\n".to_string(),
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
    assert!(!ok && err.contains("missing.toml does not exist"), "{err}");
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

// ---- First contact and hardening (issue 17) ----

/// Run the binary in `dir` with `args` (no implicit -c) and extra environment.
fn oxibeat_in(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir).args(args);
    // The test harness may itself run under systemd.
    cmd.env_remove("INVOCATION_ID").env_remove("NOTIFY_SOCKET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_missing_config_file_is_an_error_and_the_quickstart_says_so() {
    let w = Workspace::new();
    // An explicit -c, even with the default name, must exist.
    let (ok, out, err) = oxibeat_in(w.path(), &["test", "config", "-c", "oxibeat.toml"], &[]);
    assert!(!ok, "a missing -c file must fail: {out}");
    assert!(
        err.contains("oxibeat.toml") && err.contains("does not exist"),
        "{err}"
    );
    let (ok, _, err) = oxibeat_in(w.path(), &["run", "--once", "-c", "oxibeat.toml"], &[]);
    assert!(!ok && err.contains("does not exist"), "{err}");
    // Without -c and without ./oxibeat.toml: the quickstart, said on stderr with the way out.
    let (ok, out, err) = oxibeat_in(w.path(), &["test", "config"], &[]);
    assert!(ok, "{err}");
    assert!(out.contains("Config OK"), "{out}");
    assert!(
        err.contains("built-in quickstart") && err.contains("-c FILE"),
        "{err}"
    );
    // Never under systemd.
    let (ok, _, err) = oxibeat_in(w.path(), &["test", "config"], &[("INVOCATION_ID", "x")]);
    assert!(!ok, "under systemd a missing configuration is an error");
    assert!(err.contains("systemd") && err.contains("-c"), "{err}");
    // ./oxibeat.toml is used when it is there.
    let cfg = w.config(&w.input("a", "*.log", ""));
    assert_eq!(cfg, w.path().join("oxibeat.toml"));
    let (ok, _, err) = oxibeat_in(w.path(), &["test", "config"], &[]);
    assert!(ok && !err.contains("quickstart"), "{err}");
}

#[test]
fn a_config_without_inputs_is_refused_with_the_fix() {
    let w = Workspace::new();
    for inputs in [String::new(), w.input("off", "*.log", "enabled = false")] {
        let cfg = w.config(&inputs);
        for args in [&["test", "config"][..], &["run", "--once", "-e"]] {
            let (ok, _, err) = oxibeat(args, &cfg);
            assert!(
                !ok,
                "{args:?} must refuse a configuration with nothing to read"
            );
            assert!(
                err.contains("inputs") && err.contains("[[inputs]]"),
                "{err}"
            );
        }
    }
    // `setup` needs no inputs (examples/stack/oxibeat-setup.toml has none).
    let setup = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/stack/oxibeat-setup.toml"
    );
    let out = Command::new(bin())
        .args(["export", "config", "-c", setup])
        .env("ELASTIC_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn errors_say_their_cause_once() {
    let w = Workspace::new();
    let file = w.path().join("a-file");
    fs::write(&file, "").unwrap();
    let file_output = format!("[output.file]\npath = {:?}\n", file.display().to_string());
    let below_file = file.join("data").display().to_string();
    let cases: [(&str, &[&str]); 3] = [
        // output.file.path is a file (EEXIST / ENOTDIR): said once.
        (&file_output, &["test", "output"]),
        (&file_output, &["run", "--once", "-e"]),
        // path.data below a file.
        (
            "[output.discard]\n",
            &["run", "--once", "-e", "--path.data", &below_file],
        ),
    ];
    for (output, args) in cases {
        let cfg = w.config_with(&w.input("a", "*.log", ""), output);
        let (ok, _, err) = oxibeat(args, &cfg);
        assert!(!ok, "{args:?}");
        let line = err
            .lines()
            .find(|l| l.starts_with("Error:"))
            .unwrap_or_default();
        assert!(line.contains("os error"), "{err}");
        assert_eq!(
            line.matches("os error").count(),
            1,
            "the cause is said once: {line}"
        );
    }
}

#[test]
fn unknown_log_levels_are_refused() {
    let w = Workspace::new();
    let cfg = w.config(&w.input("a", "*.log", ""));
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("level = \"info\"", "level = \"verbose\"");
    fs::write(&cfg, text).unwrap();
    let (ok, _, err) = oxibeat(&["test", "config"], &cfg);
    assert!(!ok, "logging.level = \"verbose\" must be refused");
    assert!(
        err.contains("logging.level") && err.contains("verbose"),
        "{err}"
    );
    assert!(
        err.contains("debug") && err.contains("warning"),
        "names what is allowed: {err}"
    );
    let cfg = w.config(&w.input("a", "*.log", ""));
    let (ok, _, err) = oxibeat(&["test", "config", "--log-level", "loud"], &cfg);
    assert!(
        !ok && err.contains("loud") && err.contains("debug"),
        "{err}"
    );
    let (ok, _, err) = oxibeat(&["test", "config", "--log-level", "warning"], &cfg);
    assert!(ok, "Beats' level names work: {err}");
}

#[test]
fn setup_flags_have_help() {
    let out = Command::new(bin())
        .args(["setup", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--index-management", "--pipelines", "--ml", "--dashboards"] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} missing: {help}"));
        let text = line.trim_start()[flag.len()..].trim();
        assert!(text.len() > 10, "{flag} has no help text: {line:?}");
    }
}

#[test]
fn out_of_range_options_fail_at_load_with_the_allowed_range() {
    let w = Workspace::new();
    let cases = [
        (
            w.input(
                "a",
                "*.log",
                "prospector.scanner.fingerprint = { offset = 0, length = 0 }",
            ),
            "",
            vec![
                "inputs[0].prospector.scanner.fingerprint.length",
                "64 bytes or more",
            ],
        ),
        (
            w.input("a", "*.log", "")
                .replace("check_interval = \"200ms\"", "check_interval = \"0s\""),
            "",
            vec![
                "inputs[0].prospector.scanner.check_interval",
                "more than 0s",
            ],
        ),
        (
            w.input(
                "a",
                "*.log",
                "[[inputs.parsers]]\nmultiline = { pattern = '^x', max_lines = 0 }",
            ),
            "",
            vec!["inputs[0].parsers[0].multiline.max_lines", "1 or more"],
        ),
        (
            w.input("a", "*.log", ""),
            "[queue.mem]\nevents = 4\n",
            vec!["queue.mem.events", "32 or more"],
        ),
        (
            w.input("a", "*.log", ""),
            "[queue.mem]\nevents = 64\nflush.min_events = 100\n",
            vec!["queue.mem.flush.min_events", "0 to queue.mem.events"],
        ),
    ];
    for (inputs, extra, wants) in cases {
        let cfg = w.config(&format!("{inputs}\n{extra}"));
        let (ok, _, err) = oxibeat(&["test", "config"], &cfg);
        assert!(!ok, "must fail at load: {inputs}{extra}");
        for want in wants {
            assert!(err.contains(want), "{want:?} not in {err}");
        }
    }
    // Outputs: ranges, format strings, librdkafka properties and TLS files at load.
    let kafka = |extra: &str| format!("[output.kafka]\nhosts = [\"127.0.0.1:9\"]\n{extra}\n");
    let out_cases = [
        (
            "[output.file]\npath = \"/tmp/x\"\nnumber_of_files = 1\n".to_string(),
            vec!["output.file.number_of_files", "2 to 1024"],
        ),
        (
            kafka("topic = \"%{[unterminated\""),
            vec!["output.kafka.topic"],
        ),
        (
            kafka("[output.kafka.librdkafka]\n\"no.such.property\" = \"1\""),
            vec!["no.such.property"],
        ),
        (
            kafka("[output.kafka.ssl]\ncertificate_authorities = [\"/nonexistent/ca.pem\"]"),
            vec![
                "output.kafka.ssl.certificate_authorities[0]",
                "/nonexistent/ca.pem",
            ],
        ),
        (
            kafka("required_acks = 2"),
            vec!["output.kafka.required_acks", "-1"],
        ),
    ];
    for (output, wants) in out_cases {
        let cfg = w.config_with(&w.input("a", "*.log", ""), &output);
        let (ok, _, err) = oxibeat(&["test", "config"], &cfg);
        assert!(!ok, "must fail at load: {output}");
        for want in wants {
            assert!(err.contains(want), "{want:?} not in {err}");
        }
    }
    // fingerprint length 0 made --once ship nothing with exit 0: now it does not start.
    append(&w.logs().join("a.log"), &seq_lines("f", 0..10));
    let cfg = w.config(&w.input("a", "*.log", "prospector.scanner.fingerprint.length = 0"));
    let (ok, _, _) = oxibeat(&["run", "--once", "-e"], &cfg);
    assert!(!ok);
}

#[test]
fn variables_work_for_numbers_and_booleans_and_flush_options_are_accepted() {
    let w = Workspace::new();
    append(&w.logs().join("v.log"), &seq_lines("v", 0..20));
    let inputs = w.input(
        "v",
        "*.log",
        "harvester_limit = \"${OXI_LIMIT:5}\"\nfields_under_root = \"${OXI_ROOT:false}\"",
    );
    let cfg = w.config(&format!(
        "{inputs}\n[queue.mem]\nevents = \"${{OXI_EVENTS:64}}\"\nflush.min_events = 8\nflush.timeout = \"50ms\"\n"
    ));
    let (ok, out, err) = oxibeat(&["export", "config"], &cfg);
    assert!(ok, "{err}");
    assert!(
        out.contains("events = 64") && out.contains("harvester_limit = 5"),
        "{out}"
    );
    assert!(out.contains("min_events = 8"), "{out}");
    let out = Command::new(bin())
        .args(["run", "--once", "-e", "-c"])
        .arg(&cfg)
        .env("OXI_EVENTS", "128")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.events().len(), 20);
    // A value that is not a number still fails, naming the key.
    let out = Command::new(bin())
        .args(["test", "config", "-c"])
        .arg(&cfg)
        .env("OXI_EVENTS", "many")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("queue.mem.events"),
        "{err}"
    );
}

#[test]
fn checks_change_nothing() {
    let w = Workspace::new();
    let out_dir = w.path().join("not-yet/out");
    let cfg = w.config_with(
        &w.input("a", "*.log", ""),
        &format!(
            "[output.file]\npath = {:?}\n",
            out_dir.display().to_string()
        ),
    );
    let (ok, out, err) = oxibeat(&["test", "output"], &cfg);
    assert!(ok, "{err}");
    assert!(out.contains("will be created"), "{out}");
    assert!(
        !w.path().join("not-yet").exists(),
        "test output created the output directory"
    );
    let (ok, out, err) = oxibeat(&["registry"], &cfg);
    assert!(ok, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(!w.data().exists(), "registry created path.data");
    let (ok, _, err) = oxibeat(&["test", "config"], &cfg);
    assert!(ok, "{err}");
    assert!(!w.data().exists() && !w.path().join("not-yet").exists());
}

#[test]
fn test_output_against_a_closed_kafka_port_answers_quickly_and_clearly() {
    let w = Workspace::new();
    let port = free_port();
    let cfg = w.config_with(
        &w.input("a", "*.log", ""),
        &format!("[output.kafka]\nhosts = [\"127.0.0.1:{port}\"]\ntopic = \"logs\"\n"),
    );
    let started = std::time::Instant::now();
    let (ok, _, err) = oxibeat(&["test", "output"], &cfg);
    let took = started.elapsed();
    assert!(!ok);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("reachable"),
        "{err}"
    );
    // The connect timeout is about 2 s (was 10 s): a bound on a timeout, not a speed figure.
    assert!(took < std::time::Duration::from_secs(7), "took {took:?}");
}

#[test]
fn the_last_log_line_is_never_lost_on_once() {
    // Several inputs to the console, each run on a fresh registry: the inputs and the output
    // finish at the same moment, which is when the last line used to go missing (about every
    // other run before the fix).
    let w = Workspace::new();
    for i in 0..10 {
        let out = Command::new(bin())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["run", "--once", "-e", "-c", "examples/quickstart.toml"])
            .env("OXIBEAT_DATA", w.path().join(format!("data-{i}")))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("Total metrics; oxibeat stopped"),
            "run {i} ended without its last log line: {err}"
        );
    }
}

/// `run -e` that must end by itself: killed (and reported as still running) after 20 s.
fn run_bounded(cfg: &std::path::Path) -> (bool, String) {
    let err_path = cfg.with_extension("second.err");
    let mut child = Command::new(bin())
        .args(["run", "-e", "-c"])
        .arg(cfg)
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (
                status.success(),
                fs::read_to_string(&err_path).unwrap_or_default(),
            );
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second agent is still running after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn two_agents_cannot_share_path_data_and_readers_work_beside_one() {
    let w = Workspace::new();
    let log = w.logs().join("d.log");
    append(&log, &seq_lines("d", 0..10));
    let cfg = w.config(&w.input("d", "*.log", ""));
    let mut first = w.spawn(&cfg);
    w.wait_events(10, 30);
    // A second agent on the same path.data: refused, naming the directory and the holder.
    let (ok, err) = run_bounded(&cfg);
    assert!(!ok, "a second agent on the same path.data must not run");
    assert!(err.contains(&w.data().display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", first.pid())), "{err}");
    let (ok, _, _) = oxibeat(&["run", "--once", "-e"], &cfg);
    assert!(!ok, "--once too");
    // Read-only commands work beside it. The file's entry reaches disk at the next registry
    // flush (100 ms here), which may come after its events did.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (ok, out, err) = oxibeat(&["registry"], &cfg);
        assert!(ok, "{err}");
        if out.contains("filestream::d::") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the registry has no entry for the file after 10 s: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    append(&log, &seq_lines("d", 10..20));
    w.wait_events(20, 30);
    // The lock dies with the process, even on kill -9.
    first.kill9();
    append(&log, &seq_lines("d", 20..30));
    w.run_once(&cfg);
    let dups = assert_complete(seqs(&w.events(), "d "), 30, "after kill -9");
    assert!(dups <= 10, "{dups} duplicates");
}

#[test]
fn the_quickstart_runs_twice_sensibly_and_its_plain_lines_have_no_json_error() {
    let w = Workspace::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let data = w.data().display().to_string();
    let run = || {
        let out = Command::new(bin())
            .current_dir(root)
            .args(["run", "--once", "-e", "-c", "examples/quickstart.toml"])
            .env("OXIBEAT_DATA", &data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (out, _) = run();
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| {
            e["log"]["file"]["path"]
                .as_str()
                .is_some_and(|p| p.contains("examples/sample-logs/"))
        })
        .collect();
    assert!(events.len() >= 5, "{out}");
    for e in &events {
        let path = e["log"]["file"]["path"].as_str().unwrap();
        if !path.ends_with(".json.log") {
            assert!(
                e.get("error").is_none(),
                "a plain line got a JSON error: {e}"
            );
        }
    }
    // The second run ships nothing new, and says why.
    let (out, err) = run();
    assert!(!out.contains("examples/sample-logs/"), "{out}");
    assert!(
        err.contains("resuming") && err.contains("fresh path.data"),
        "{err}"
    );
}

/// The README's configuration reference is a real configuration: it loads, and run on sample
/// lines (paths, outputs and ports redirected with -E) its plain-text input gets no JSON
/// decoding error, its JSON input decodes.
#[test]
fn the_readme_configuration_reference_runs_as_documented() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Configuration reference").expect("section");
    let block = &readme[start..];
    let block = &block[block.find("```toml\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    let w = Workspace::new();
    let cfg = w.path().join("reference.toml");
    fs::write(&cfg, block).unwrap();
    fs::write(
        w.logs().join("app.log"),
        "[2026-11-25 10:00:00] ERROR boom\n  at a.b(C.java:1)\n[2026-11-25 10:00:01] WARN slow\n",
    )
    .unwrap();
    fs::write(
        w.logs().join("svc.json"),
        "{\"level\":\"ERROR\",\"msg\":\"x\"}\n",
    )
    .unwrap();
    let mut overrides = vec![
        format!("path.data={}", w.data().display()),
        format!("output.file.path={}", w.out().display()),
        "http.enabled=false".to_string(),
        "logging.metrics.enabled=false".to_string(),
    ];
    // Every input reads the test's files; the metrics input is switched off.
    let mut inputs = 0;
    for (i, part) in block.split("[[inputs]]").skip(1).enumerate() {
        inputs += 1;
        if part.contains("system/metrics") {
            overrides.push(format!("inputs.{i}.enabled=false"));
        } else if part.contains("ndjson") && !part.contains("multiline") {
            overrides.push(format!(
                "inputs.{i}.paths=[{:?}]",
                w.logs().join("*.json").display().to_string()
            ));
        } else {
            overrides.push(format!(
                "inputs.{i}.paths=[{:?}]",
                w.logs().join("*.log").display().to_string()
            ));
        }
    }
    assert!(inputs >= 2, "{block}");
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--once", "-e", "-c"]).arg(&cfg);
    for o in &overrides {
        cmd.arg("-E").arg(o);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = w.events();
    let plain: Vec<_> = events
        .iter()
        .filter(|e| {
            e["log"]["file"]["path"]
                .as_str()
                .unwrap_or("")
                .ends_with("app.log")
        })
        .collect();
    assert_eq!(plain.len(), 2, "{events:?}");
    assert!(
        plain[0]["message"].as_str().unwrap().contains("at a.b"),
        "multiline joined"
    );
    for e in &plain {
        assert!(
            e.get("error").is_none(),
            "a plain line got a JSON decoding error: {e}"
        );
    }
    let json: Vec<_> = events
        .iter()
        .filter(|e| {
            e["log"]["file"]["path"]
                .as_str()
                .unwrap_or("")
                .ends_with("svc.json")
        })
        .collect();
    assert_eq!(json.len(), 1, "{events:?}");
    assert_eq!(json[0]["msg"], "x");
}

/// The README's error example is what the binary prints, and its Layout lists what exists.
#[test]
fn readme_error_example_and_layout_match_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let example = readme
        .lines()
        .find(|l| l.starts_with("Error: configuration oxibeat.toml: inputs[0].close"))
        .expect("the error example");
    let w = Workspace::new();
    w.config(&w.input("a", "*.log", "close.on_state_change.inactiv = \"5m\""));
    let (ok, _, err) = oxibeat_in(w.path(), &["test", "config", "-c", "oxibeat.toml"], &[]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        example,
        "the README's example differs from the real message"
    );
    let layout = &readme[readme.find("## Layout").unwrap()..];
    let listed: Vec<&str> = layout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.starts_with("src/"))
        .collect();
    for p in &listed {
        assert!(
            root.join(p).exists(),
            "README layout lists {p}, which does not exist"
        );
    }
    for entry in fs::read_dir(root.join("src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        let path = if root.join("src").join(&name).is_dir() {
            format!("src/{name}/")
        } else {
            format!("src/{name}")
        };
        assert!(
            listed.iter().any(|l| l.starts_with(path.as_str())),
            "README layout misses {path}"
        );
    }
    for part in [
        "kafka/",
        "src/input/system/",
        "src/setup/",
        "http.rs",
        "src/cloudid.rs",
    ] {
        assert!(layout.contains(part), "README layout misses {part}");
    }
}
