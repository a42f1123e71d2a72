//! filebeat.yml files as users have them load in oxibeat, or fail with the message a user
//! needs: Filebeat's own reference and default configs (`../shared/filebeat-reference/`) and
//! real-world shapes (`filebeat-compat/configs/`: inputs.d, Kafka with TLS and SASL, multiline
//! Java, ndjson, processors with conditions, container logs, unsupported settings). Each one
//! also goes through `export config --format toml` and loads again from the TOML.
//!
//! Run by `cargo test --test filebeat_configs` (part of tests/run.sh).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn here(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("filebeat-compat/configs")
        .join(name)
}

fn reference(name: &str) -> PathBuf {
    support::filebeat_reference(name)
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn oxibeat(args: &[&str], cfg: &Path, env: &[(&str, &str)]) -> Out {
    // In an empty directory: these commands create nothing, and nothing here is read.
    let cwd = tempfile::tempdir().unwrap();
    let mut c = Command::new(support::bin());
    c.args(args)
        .arg("-c")
        .arg(cfg)
        .current_dir(cwd.path())
        .env_remove("KAFKA_USER")
        .env_remove("KAFKA_PASSWORD");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

/// `test config` passes; the exported TOML passes too and exports the same TOML again.
fn loads(cfg: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let mut args = vec!["test", "config"];
    args.extend_from_slice(extra);
    let t = oxibeat(&args, cfg, env);
    assert!(t.ok, "{}: {}", cfg.display(), t.stderr);
    assert!(t.stdout.contains("Config OK"), "{}", t.stdout);
    let mut args = vec!["export", "config", "--format", "toml"];
    args.extend_from_slice(extra);
    let e = oxibeat(&args, cfg, env);
    assert!(e.ok, "export {}: {}", cfg.display(), e.stderr);
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("oxibeat.toml");
    fs::write(&toml_path, &e.stdout).unwrap();
    let again = oxibeat(&["test", "config"], &toml_path, env);
    assert!(
        again.ok,
        "the exported TOML of {} does not load: {}\n{}",
        cfg.display(),
        again.stderr,
        e.stdout
    );
    let e2 = oxibeat(&["export", "config", "--format", "toml"], &toml_path, env);
    assert_eq!(e.stdout, e2.stdout, "export of the export differs");
    // And the YAML direction: the TOML exported as a filebeat.yml loads to the same TOML.
    let y = oxibeat(&["export", "config", "--format", "yaml"], &toml_path, env);
    assert!(y.ok, "{}", y.stderr);
    let yml = dir.path().join("filebeat.yml");
    fs::write(&yml, &y.stdout).unwrap();
    let e3 = oxibeat(&["export", "config", "--format", "toml"], &yml, env);
    assert!(e3.ok, "{}\n{}", e3.stderr, y.stdout);
    // The same settings (YAML keeps no key order between sections, so compare as trees).
    let parse = |t: &str| t.parse::<toml::Table>().unwrap();
    assert_eq!(
        parse(&e.stdout),
        parse(&e3.stdout),
        "TOML → YAML → TOML differs\n{}\n{}",
        e.stdout,
        e3.stdout
    );
    t.stdout + &t.stderr
}

#[test]
fn inputs_d_files_load() {
    let out = loads(&here("inputs-d.yml"), &[], &[]);
    assert!(
        out.contains("scan_frequency"),
        "a note per translated log option: {out}"
    );
    let e = oxibeat(
        &["export", "config", "--format", "toml"],
        &here("inputs-d.yml"),
        &[],
    );
    assert!(e.stdout.contains("nginx-access"), "{}", e.stdout);
    assert!(e.stdout.contains("/var/log/app/*.log"), "{}", e.stdout);
}

#[test]
fn kafka_with_tls_and_sasl_loads_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::pki::test_pki(dir.path(), "kafka");
    let ca = pki.ca_path.display().to_string();
    let env = [
        ("KAFKA_USER", "shipper"),
        ("KAFKA_PASSWORD", "s3cret-pw"),
        ("CA_FILE", ca.as_str()),
    ];
    let out = loads(&here("kafka-tls-sasl.yml"), &[], &env);
    assert!(!out.contains("s3cret-pw"));
    let e = oxibeat(
        &["export", "config", "--format", "toml"],
        &here("kafka-tls-sasl.yml"),
        &env,
    );
    assert!(!e.stdout.contains("s3cret-pw"), "{}", e.stdout);
    // Without the variable: the key and what to do.
    let t = oxibeat(
        &["test", "config"],
        &here("kafka-tls-sasl.yml"),
        &[("CA_FILE", ca.as_str()), ("KAFKA_USER", "shipper")],
    );
    assert!(!t.ok);
    assert!(t.stderr.contains("KAFKA_PASSWORD"), "{}", t.stderr);
}

#[test]
fn multiline_java_loads() {
    loads(&here("multiline-java.yml"), &[], &[]);
}

#[test]
fn ndjson_loads() {
    loads(&here("ndjson.yml"), &[], &[]);
}

#[test]
fn processors_with_conditions_load() {
    loads(&here("processors-conditions.yml"), &[], &[]);
}

#[test]
fn container_logs_with_kubernetes_metadata_load() {
    loads(&here("container-k8s.yml"), &[], &[]);
}

#[test]
fn unsupported_settings_are_listed_with_why_and_can_be_ignored() {
    let t = oxibeat(&["test", "config"], &here("unsupported.yml"), &[]);
    assert!(!t.ok);
    assert!(t.stderr.contains("filebeat.autodiscover"), "{}", t.stderr);
    assert!(t.stderr.contains("--ignore-unsupported"), "{}", t.stderr);
    assert!(
        t.stderr.contains("line "),
        "the line of the setting: {}",
        t.stderr
    );
    let i = oxibeat(
        &["test", "config", "--ignore-unsupported"],
        &here("unsupported.yml"),
        &[],
    );
    assert!(i.ok, "{}", i.stderr);
    assert!(i.stdout.contains("filebeat.autodiscover"), "{}", i.stdout);
}

#[test]
fn a_misspelt_key_names_the_filebeat_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("filebeat.yml");
    fs::write(
        &p,
        "filebeat.inputs:\n  - type: filestream\n    id: a\n    paths: [/x/*.log]\n    close.on_state_change.inactiv: 5m\noutput.console: ~\n",
    )
    .unwrap();
    let t = oxibeat(&["test", "config"], &p, &[]);
    assert!(!t.ok);
    assert!(
        t.stderr
            .contains("filebeat.inputs[0].close.on_state_change.inactiv"),
        "{}",
        t.stderr
    );
    assert!(t.stderr.contains("line 5"), "{}", t.stderr);
}

/// Filebeat's default filebeat.yml (x-pack, 8.x) as it is installed: two of its processors
/// are not implemented and are listed with their lines; without them, its only input is
/// disabled, which `test config` says (as `run` would); enabled with -E, it loads.
#[test]
fn filebeat_default_yml_loads_or_says_what_to_change() {
    let cfg = reference("filebeat.default.yml");
    let t = oxibeat(&["test", "config"], &cfg, &[]);
    assert!(!t.ok);
    for p in [
        "processors[1].add_cloud_metadata",
        "processors[2].add_docker_metadata",
    ] {
        assert!(t.stderr.contains(p), "{}", t.stderr);
    }
    assert!(t.stderr.contains("--ignore-unsupported"), "{}", t.stderr);
    let i = oxibeat(&["test", "config", "--ignore-unsupported"], &cfg, &[]);
    assert!(!i.ok);
    assert!(
        i.stderr.contains("every input has enabled = false"),
        "{}",
        i.stderr
    );
    loads(
        &cfg,
        &[
            "--ignore-unsupported",
            "-E",
            "filebeat.inputs.0.enabled=true",
        ],
        &[],
    );
}

/// The sections of filebeat.reference.yml (every option of the filestream input, the
/// registry, the queue, the outputs, with Filebeat's defaults): they load; their input is
/// disabled as shipped, so it is enabled with -E, as a user would.
#[test]
fn filebeat_reference_sections_load() {
    let cfg = reference("filebeat.reference.sections.yml");
    let t = oxibeat(&["test", "config"], &cfg, &[]);
    assert!(!t.ok);
    assert!(
        t.stderr.contains("every input has enabled = false"),
        "{}",
        t.stderr
    );
    loads(&cfg, &["-E", "filebeat.inputs.0.enabled=true"], &[]);
}

/// Filebeat's flags: `--path.config` is where `-c` (relative) and, without `-c`,
/// `filebeat.yml` are found; `--path.home` gives `path.data` = `<home>/data`; `-d` and no verb
/// (= `run`) are accepted.
#[test]
fn path_flags_find_the_configuration_as_filebeat_does() {
    let etc = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let logs = home.path().join("logs");
    fs::create_dir_all(&logs).unwrap();
    fs::write(logs.join("a.log"), "one\ntwo\n").unwrap();
    fs::write(
        etc.path().join("filebeat.yml"),
        format!(
            "filebeat.inputs:\n  - type: filestream\n    id: a\n    paths: ['{}/*.log']\noutput.file:\n  path: ${{path.home}}/out\n",
            logs.display()
        ),
    )
    .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(support::bin())
            .args(args)
            .current_dir(cwd.path())
            .output()
            .unwrap()
    };
    let etc_s = etc.path().display().to_string();
    let home_s = home.path().display().to_string();
    let o = run(&["test", "config", "--path.config", &etc_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "test",
        "config",
        "--path.config",
        &etc_s,
        "-c",
        "filebeat.yml",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // No verb: run; --once, -d, --path.home.
    let o = run(&[
        "--once",
        "-e",
        "-d",
        "input,registrar",
        "--path.config",
        &etc_s,
        "--path.home",
        &home_s,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(support::read_events(&home.path().join("out")).len(), 2);
    assert!(
        home.path().join("data/registry/filebeat").is_dir(),
        "path.data is <path.home>/data"
    );
    assert!(
        fs::read_dir(cwd.path()).unwrap().next().is_none(),
        "nothing written to the working directory"
    );
}
