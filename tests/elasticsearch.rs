//! The Elasticsearch output against a real `osmem-server` (an in-memory OpenSearch 3.x
//! compatible server: real `_bulk`, real per-item mapping errors), directly and through the
//! fault-injecting proxy of tests/support/es.rs. osmem-server has no data streams, so these
//! tests write into plain indices (`oxibeat-test`, dead-letter index `oxibeat-dead-letter`);
//! the default data-stream names are checked by unit tests (config.rs).
//!
//! Every test checks by `seq`: each line indexed at least once, and exactly once where the
//! server cannot have indexed twice.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::es::{Fault, Osmem, Proxy};
use support::*;

const INDEX: &str = "oxibeat-test";
const DLI: &str = "oxibeat-dead-letter";

/// `[output.elasticsearch]` for `url`, fast backoff, plus `extra` lines.
fn output(url: &str, extra: &str) -> String {
    format!(
        "[output.elasticsearch]\nhosts = [{url:?}]\nindex = {INDEX:?}\nbackoff = {{ init = \"50ms\", max = \"500ms\" }}\n{extra}\n"
    )
}

/// The seq numbers indexed in `index`.
fn indexed_seqs(es: &Osmem, index: &str) -> Vec<usize> {
    let docs = es.docs(index);
    seqs(&docs, "line")
}

fn write_lines(w: &Workspace, n: usize) {
    append(&w.logs().join("app.log"), &seq_lines("line", 0..n));
}

fn oxibeat(args: &[&str], cfg: &PathBuf) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(cfg)
        .output()
        .expect("run oxibeat")
}

fn wait_count(es: &Osmem, index: &str, n: u64, secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = es.count(index);
        if c >= n || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_line_once_and_a_mapping_conflict_goes_to_the_dead_letter_index() {
    let es = Osmem::start();
    let w = Workspace::new();
    // JSON lines: `value` is a number, except in 5 lines where it is text, which the index
    // (mapped as long from the first document) refuses with 400 mapper_parsing_exception.
    let mut lines = Vec::new();
    for i in 0..3000 {
        let value = if i % 600 == 17 {
            format!("\"text-{i}\"")
        } else {
            i.to_string()
        };
        lines.push(format!(
            "{{\"message\":\"line seq={i} x\",\"value\":{value}}}"
        ));
    }
    append(&w.logs().join("app.log"), &lines);
    let cfg = w.config_with(
        &w.input("app", "*.log", "[[inputs.parsers]]\nndjson = { target = \"\" }\n"),
        &output(
            &es.url(),
            &format!("bulk_max_size = 500\nnon_indexable_policy.dead_letter_index = {{ index = {DLI:?} }}"),
        ),
    );
    let out = w.run_once(&cfg);
    let log = String::from_utf8_lossy(&out.stderr);
    let got = indexed_seqs(&es, INDEX);
    assert_eq!(got.len(), 2995, "{log}");
    assert_eq!(assert_complete_except(got, 3000, |i| i % 600 == 17), 0);
    let dead = es.docs(DLI);
    assert_eq!(dead.len(), 5, "{log}");
    for d in &dead {
        assert_eq!(d["error.type"], 400, "{d}");
        assert!(
            d["error.message"]
                .as_str()
                .unwrap()
                .contains("mapper_parsing_exception"),
            "{d}"
        );
        let original: Value = serde_json::from_str(d["message"].as_str().unwrap()).unwrap();
        assert!(original["value"].as_str().unwrap().starts_with("text-"));
    }
    assert!(log.contains("sent to the dead-letter index"), "{log}");
    // The registry advanced over everything: a second run sends nothing again.
    w.run_once(&cfg);
    assert_eq!(es.count(INDEX), 2995);
}

/// Like `assert_complete`, for a range where `skip` lines are expected absent.
fn assert_complete_except(mut got: Vec<usize>, n: usize, skip: impl Fn(usize) -> bool) -> usize {
    got.sort_unstable();
    let total = got.len();
    got.dedup();
    let want: Vec<usize> = (0..n).filter(|&i| !skip(i)).collect();
    assert_eq!(got, want);
    total - got.len()
}

#[test]
fn drop_policy_counts_and_logs_once_per_error() {
    let es = Osmem::start();
    let w = Workspace::new();
    let lines: Vec<String> = (0..200)
        .map(|i| {
            let v = if i >= 100 {
                format!("\"t{i}\"")
            } else {
                i.to_string()
            };
            format!("{{\"message\":\"line seq={i} x\",\"value\":{v}}}")
        })
        .collect();
    append(&w.logs().join("app.log"), &lines);
    let cfg = w.config_with(
        &w.input(
            "app",
            "*.log",
            "[[inputs.parsers]]\nndjson = { target = \"\" }\n",
        ),
        &output(&es.url(), "bulk_max_size = 50"),
    );
    let out = w.run_once(&cfg);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(es.count(INDEX), 100, "{log}");
    assert_eq!(
        log.matches("dropped (non_indexable_policy: drop)").count(),
        1,
        "one warning per status and error type: {log}"
    );
    assert!(log.contains("libbeat.output.events.dropped=100"), "{log}");
    assert!(log.contains("libbeat.output.events.acked=100"), "{log}");
}

#[test]
fn item_level_429_and_503_retry_only_those_items() {
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    let w = Workspace::new();
    write_lines(&w, 2000);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &output(&proxy.url("http"), "bulk_max_size = 300"),
    );
    proxy.set(Fault::Items {
        every: 3,
        status: 429,
    });
    let out = w.run_once(&cfg);
    let first = proxy.injected.load(std::sync::atomic::Ordering::SeqCst);
    assert!(first > 600, "faults injected: {first}");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(log.contains("libbeat.output.events.toomany="), "{log}");
    // Exactly once: an item the proxy refused never reached the server.
    assert_eq!(assert_complete(indexed_seqs(&es, INDEX), 2000, "429"), 0);

    append(&w.logs().join("app.log"), &seq_lines("line", 2000..3000));
    proxy.set(Fault::Items {
        every: 4,
        status: 503,
    });
    w.run_once(&cfg);
    assert_eq!(assert_complete(indexed_seqs(&es, INDEX), 3000, "503"), 0);
    // Retried requests carried only the failed items: no request after the first of a
    // round holds the whole batch again.
    let bulks: Vec<usize> = proxy
        .seen()
        .iter()
        .filter(|s| s.path.contains("_bulk"))
        .map(|s| s.items)
        .collect();
    assert!(bulks.iter().any(|&n| n < 150), "{bulks:?}");
}

#[test]
fn request_level_429_502_and_413_split() {
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    let w = Workspace::new();
    write_lines(&w, 1500);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &output(&proxy.url("http"), "bulk_max_size = 1000"),
    );
    proxy.set(Fault::Request {
        status: 429,
        times: 2,
    });
    w.run_once(&cfg);
    assert_eq!(assert_complete(indexed_seqs(&es, INDEX), 1500, "429"), 0);

    append(&w.logs().join("app.log"), &seq_lines("line", 1500..3000));
    proxy.set(Fault::Request {
        status: 502,
        times: 3,
    });
    w.run_once(&cfg);
    assert_eq!(assert_complete(indexed_seqs(&es, INDEX), 3000, "502"), 0);

    // Bodies above 60 KB are refused: a 1000-event request (~300 KB) is halved until it fits.
    append(&w.logs().join("app.log"), &seq_lines("line", 3000..5000));
    proxy.set(Fault::TooLarge { max_bytes: 60_000 });
    let out = w.run_once(&cfg);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("413"), "{log}");
    assert_eq!(assert_complete(indexed_seqs(&es, INDEX), 5000, "413"), 0);
}

#[test]
fn a_single_event_too_large_goes_to_the_dead_letter_file_and_replays() {
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    let w = Workspace::new();
    let mut lines = seq_lines("line", 0..20);
    lines.insert(10, format!("line seq=20 {}", "x".repeat(100_000)));
    append(&w.logs().join("app.log"), &lines);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &output(
            &proxy.url("http"),
            &format!(
                "bulk_max_size = 8\nnon_indexable_policy.dead_letter_index = {{ index = {DLI:?} }}"
            ),
        ),
    );
    proxy.set(Fault::TooLarge { max_bytes: 50_000 });
    let out = w.run_once(&cfg);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(es.count(INDEX), 20, "{log}");
    assert_eq!(
        es.count(DLI),
        0,
        "the dead-letter document is too large as well"
    );
    let show = oxibeat(&["dlq", "show"], &cfg);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("1 entry"), "{text}");
    assert!(text.contains(&format!("index {INDEX}")), "{text}");
    assert!(text.contains("413"), "{text}");
    // The cause is fixed (the limit is gone): replay sends it to its index.
    proxy.set(Fault::None);
    let replay = oxibeat(&["dlq", "replay"], &cfg);
    let text = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        text.contains("replayed 1 event(s); 0 failed again"),
        "{text}"
    );
    assert_eq!(
        assert_complete(indexed_seqs(&es, INDEX), 21, "after replay"),
        0
    );
    let show = oxibeat(&["dlq", "show"], &cfg);
    assert!(String::from_utf8_lossy(&show.stdout).contains("0 entries"));
}

const FINGERPRINT: &str = "[[processors]]\nfingerprint = { fields = [\"log.file.path\", \"log.offset\", \"message\"], target_field = \"@metadata._id\" }\n";

#[test]
fn connection_reset_after_forward_duplicates_only_without_an_id() {
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    // Without _id: the server indexed the reset request, the agent sent it again.
    let w = Workspace::new();
    write_lines(&w, 600);
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &output(&proxy.url("http"), "bulk_max_size = 200"),
    );
    proxy.set(Fault::ResetAfterForward { times: 1 });
    w.run_once(&cfg);
    let dups = assert_complete(indexed_seqs(&es, INDEX), 600, "reset");
    let first_reset_items = proxy
        .seen()
        .iter()
        .find(|s| s.path.contains("_bulk"))
        .map(|s| s.items)
        .unwrap();
    assert_eq!(
        dups, first_reset_items,
        "duplicates are exactly the items the server indexed twice"
    );

    // With a fingerprint _id: the second create answers 409, no duplicate.
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    let w = Workspace::new();
    write_lines(&w, 600);
    let cfg = w.config_with(
        &format!("{}{FINGERPRINT}", w.input("app", "*.log", "")),
        &output(&proxy.url("http"), "bulk_max_size = 200"),
    );
    proxy.set(Fault::ResetAfterForward { times: 2 });
    let out = w.run_once(&cfg);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        assert_complete(indexed_seqs(&es, INDEX), 600, "reset with _id"),
        0
    );
    assert!(log.contains("libbeat.output.events.duplicates="), "{log}");
}

#[test]
fn a_30s_stall_times_out_and_retries_without_duplicates_with_an_id() {
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    let w = Workspace::new();
    write_lines(&w, 500);
    let cfg = w.config_with(
        &format!("{}{FINGERPRINT}", w.input("app", "*.log", "")),
        &output(&proxy.url("http"), "timeout = \"3s\""),
    );
    proxy.set(Fault::Stall {
        delay: Duration::from_secs(30),
        times: 1,
    });
    let out = w.run_once(&cfg);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("no answer"),
        "the agent timed out and retried: {log}"
    );
    // The stalled request reaches the server late; its documents are already there.
    proxy.wait_idle(60);
    assert_eq!(assert_complete(indexed_seqs(&es, INDEX), 500, "stall"), 0);
}

#[test]
fn outage_then_recovery_and_kill9_lose_nothing() {
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    let w = Workspace::new();
    let cfg = w.config_with(
        &format!("{}{FINGERPRINT}", w.input("app", "*.log", "")),
        &output(&proxy.url("http"), "bulk_max_size = 100"),
    );
    proxy.set(Fault::Down);
    let mut agent = w.spawn(&cfg);
    write_lines(&w, 1000);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(es.count(INDEX), 0);
    proxy.set(Fault::None);
    assert_eq!(wait_count(&es, INDEX, 1000, 60), 1000);
    // kill -9 in the middle of more lines: the next run delivers the rest.
    append(&w.logs().join("app.log"), &seq_lines("line", 1000..4000));
    let _ = wait_count(&es, INDEX, 1500, 30);
    agent.kill9();
    w.run_once(&cfg);
    assert_eq!(
        assert_complete(indexed_seqs(&es, INDEX), 4000, "outage and kill -9"),
        0,
        "with a fingerprint _id nothing is stored twice"
    );
}

#[test]
fn sigterm_during_an_outage_stops_and_the_next_run_delivers_all() {
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    let w = Workspace::new();
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &output(&proxy.url("http"), ""),
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("shutdown_timeout = \"1s\"\n{text}")).unwrap();
    proxy.set(Fault::Down);
    let mut agent = w.spawn(&cfg);
    write_lines(&w, 300);
    std::thread::sleep(Duration::from_secs(2));
    // `stop` fails the test if the agent is still running 30s after SIGTERM.
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert!(log.contains("shutdown_timeout reached"), "{log}");
    assert_eq!(es.count(INDEX), 0);
    proxy.set(Fault::None);
    w.run_once(&cfg);
    assert_complete(indexed_seqs(&es, INDEX), 300, "after the outage");
}

#[test]
fn basic_auth_api_key_and_headers() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let es = Osmem::start();
    let proxy = Proxy::start(es.port, None);
    let w = Workspace::new();
    write_lines(&w, 50);
    proxy.require_auth(Some(&format!("Basic {}", b64("writer:s3cret-pw"))));
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &output(
            &proxy.url("http"),
            "username = \"writer\"\npassword = \"s3cret-pw\"\nheaders = { X-Test-Header = \"yes\" }",
        ),
    );
    w.run_once(&cfg);
    assert_eq!(es.count(INDEX), 50);
    let seen = proxy.seen();
    assert!(seen.iter().all(|s| s
        .headers
        .iter()
        .any(|(k, v)| k == "x-test-header" && v == "yes")));

    // API key, and a wrong one: test output names the credential type, never the value.
    proxy.require_auth(Some(&format!("ApiKey {}", b64("kid:kvalue"))));
    let api = |key: &str| {
        w.config_with(
            &w.input("app", "*.log", ""),
            &output(&proxy.url("http"), &format!("api_key = {key:?}")),
        )
    };
    let ok = oxibeat(&["test", "output"], &api("kid:kvalue"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.contains("credentials: api_key"), "{text}");
    let bad = oxibeat(&["test", "output"], &api("kid:wrong-secret"));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("api_key") && err.contains("401"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");

    // The agent with a wrong key keeps the events and says why, naming only the type.
    let cfg = api("kid:wrong-secret");
    let mut agent = w.spawn(&cfg);
    append(&w.logs().join("app.log"), &seq_lines("line", 50..60));
    std::thread::sleep(Duration::from_secs(2));
    let (_, log) = agent.stop();
    assert!(
        log.contains("authentication failed") && log.contains("api_key"),
        "{log}"
    );
    assert!(!log.contains("wrong-secret"), "{log}");
    assert_eq!(es.count(INDEX), 50);
}

#[test]
fn tls_with_the_test_pki() {
    let es = Osmem::start();
    let w = Workspace::new();
    let pki = pki::test_pki(w.path(), "es");
    let proxy = Proxy::start(es.port, Some(pki.server_config(false)));
    write_lines(&w, 100);
    let ssl = format!(
        "ssl.certificate_authorities = [{:?}]",
        pki.ca_path.display().to_string()
    );
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &output(&proxy.url("https"), &ssl),
    );
    let t = oxibeat(&["test", "output"], &cfg);
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        t.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&t.stderr)
    );
    assert!(text.contains("TLS: verified against"), "{text}");
    w.run_once(&cfg);
    assert_eq!(es.count(INDEX), 100);

    // Another CA: the certificate is refused, clearly.
    let other = pki::test_pki(w.path(), "other");
    let ssl = format!(
        "ssl.certificate_authorities = [{:?}]",
        other.ca_path.display().to_string()
    );
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        &output(&proxy.url("https"), &ssl),
    );
    let t = oxibeat(&["test", "output"], &cfg);
    let err = String::from_utf8_lossy(&t.stderr).to_lowercase();
    assert!(!t.status.success());
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn test_output_reports_the_cluster() {
    let es = Osmem::start();
    let w = Workspace::new();
    let cfg = w.config_with(&w.input("app", "*.log", ""), &output(&es.url(), ""));
    let t = oxibeat(&["test", "output"], &cfg);
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    for want in [
        "connection: ok",
        "TLS: not used (http)",
        "credentials: no credentials",
        "version: OpenSearch 3.",
        "licence: not applicable",
        "index: oxibeat-test",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
}

#[test]
fn cloud_id_points_the_output_at_the_cloud_endpoint() {
    // cloud.id of Beats' test vectors: the output goes to https://<es-uuid>.<host>:443 with
    // cloud.auth as basic credentials. The host does not resolve here, so `test output` fails
    // naming that URL (and never the password).
    let w = Workspace::new();
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        "[cloud]\nid = \"cloudidtest:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyQyNDlmM2FmMWY0ZWVlMjRhODRlM2I0MDFlNjhhMWIyYSRkNGFjNzU1OWQ0Njc0YjdjOTFhYmUxMDg1NmQ4NDMwNA==\"\nauth = \"elastic:cl0ud-pass\"\n[output.elasticsearch]\ntimeout = \"5s\"\n",
    );
    let t = oxibeat(&["test", "output"], &cfg);
    let err = String::from_utf8_lossy(&t.stderr);
    assert!(!t.status.success());
    assert!(
        err.contains("https://249f3af1f4eee24a84e3b401e68a1b2a.us-east-1.aws.found.io"),
        "{err}"
    );
    assert!(!err.contains("cl0ud-pass"), "{err}");
    // cloud.id alone enables the output; with Kafka enabled too it is refused as in Beats.
    let cfg = w.config_with(
        &w.input("app", "*.log", ""),
        "[cloud]\nid = \"cloudidtest:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyQyNDlmM2FmMWY0ZWVlMjRhODRlM2I0MDFlNjhhMWIyYSRkNGFjNzU1OWQ0Njc0YjdjOTFhYmUxMDg1NmQ4NDMwNA==\"\n[output.kafka]\nhosts = [\"127.0.0.1:9\"]\n",
    );
    let t = oxibeat(&["test", "config"], &cfg);
    let err = String::from_utf8_lossy(&t.stderr);
    assert!(
        err.contains("cloud.id setting enables the Elasticsearch output"),
        "{err}"
    );
}
