//! The journald input end to end: real journal files written by `systemd-journal-remote`
//! from export-format input, read by the real binary through `journalctl` (`paths`).
//!
//! systemd-journal-remote is required (Debian package `systemd-journal-remote`, installed
//! by tests/run.sh): without it these tests fail and say so.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const BOOT: &str = "0123456789abcdef0123456789abcdef";
const MACHINE: &str = "a6a19d57efcf4bf38705c63217a63ba3";

fn journal_remote() -> PathBuf {
    for p in [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "the journald tests need systemd-journal-remote to build real journal files and it was not found.\n\
         Install it with: apt-get install systemd-journal-remote (tests/run.sh does this)"
    );
}

/// One journal entry for export input: (field, value); binary values are written in the
/// export format's length-prefixed form.
type Fields = Vec<(&'static str, Vec<u8>)>;

fn entry(seq: usize, unit: &str, message: &str) -> Fields {
    vec![
        ("MESSAGE", message.as_bytes().to_vec()),
        ("PRIORITY", b"6".to_vec()),
        ("SYSLOG_FACILITY", b"3".to_vec()),
        (
            "SYSLOG_IDENTIFIER",
            unit.trim_end_matches(".service").as_bytes().to_vec(),
        ),
        ("_SYSTEMD_UNIT", unit.as_bytes().to_vec()),
        ("_TRANSPORT", b"stdout".to_vec()),
        ("_PID", (1000 + seq % 7).to_string().into_bytes()),
        ("_UID", b"0".to_vec()),
        ("_GID", b"0".to_vec()),
        ("_COMM", b"app".to_vec()),
        ("_CMDLINE", b"/usr/bin/app --serve \"quoted arg\"".to_vec()),
        ("_HOSTNAME", b"web-1".to_vec()),
        ("_MACHINE_ID", MACHINE.as_bytes().to_vec()),
        ("APP_SEQ", seq.to_string().into_bytes()),
    ]
}

/// Export-format bytes; timestamps grow with `first_seq + i`.
fn export(first_seq: usize, entries: &[Fields]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, fields) in entries.iter().enumerate() {
        let n = (first_seq + i) as u64;
        out.extend(
            format!(
                "__REALTIME_TIMESTAMP={}\n",
                1_700_000_000_000_000 + n * 1000
            )
            .as_bytes(),
        );
        out.extend(format!("__MONOTONIC_TIMESTAMP={}\n", 1_000_000 + n * 1000).as_bytes());
        out.extend(format!("_BOOT_ID={BOOT}\n").as_bytes());
        for (k, v) in fields {
            let text = !v.contains(&b'\n') && std::str::from_utf8(v).is_ok();
            if text {
                out.extend(k.as_bytes());
                out.push(b'=');
                out.extend(v);
                out.push(b'\n');
            } else {
                out.extend(k.as_bytes());
                out.push(b'\n');
                out.extend((v.len() as u64).to_le_bytes());
                out.extend(v);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
    }
    out
}

/// Append entries to the journal file `file` (created if missing) with systemd-journal-remote.
fn write_journal(file: &Path, first_seq: usize, entries: &[Fields]) {
    let input = file.with_extension(format!("export-{first_seq}"));
    fs::write(&input, export(first_seq, entries)).unwrap();
    let out = Command::new(journal_remote())
        .arg(format!("--output={}", file.display()))
        .arg("--compress=no")
        .arg(&input)
        .output()
        .expect("run systemd-journal-remote");
    assert!(
        out.status.success(),
        "systemd-journal-remote failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::remove_file(&input).unwrap();
}

fn seq_entries(range: std::ops::Range<usize>) -> Vec<Fields> {
    range
        .map(|i| {
            entry(
                i,
                "app.service",
                &format!("app seq={i} the quick brown fox"),
            )
        })
        .collect()
}

fn journald_input(id: &str, path: &Path, extra: &str) -> String {
    format!(
        "[[inputs]]\ntype = \"journald\"\nid = {id:?}\npaths = [{:?}]\n{extra}\n",
        path.display().to_string()
    )
}

fn registry_cursor(w: &Workspace, key: &str) -> Option<Value> {
    let out = Command::new(bin())
        .args(["registry", "-c"])
        .arg(w.path().join("oxibeat.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Read the log and checkpoint directly for the cursor value.
    let dir = w.data().join("registry/filebeat");
    let mut value = None;
    if let Ok(active) = fs::read_to_string(dir.join("active.dat")) {
        let cp = dir.join(Path::new(active.trim()).file_name().unwrap());
        if let Ok(body) = fs::read_to_string(cp) {
            let items: Vec<Value> = serde_json::from_str(&body).unwrap();
            for it in items {
                if it["_key"] == key {
                    value = Some(it["cursor"].clone());
                }
            }
        }
    }
    if let Ok(log) = fs::read_to_string(dir.join("log.json")) {
        for l in log.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                if v["k"] == key {
                    value = Some(v["v"]["cursor"].clone());
                }
            }
        }
    }
    assert!(
        value.is_none() || text.contains(key),
        "registry command: {text}"
    );
    value
}

fn app_seqs(events: &[Value]) -> Vec<usize> {
    seqs(events, "app ")
}

#[test]
fn every_entry_once_with_filebeat_fields_and_cursor() {
    let w = Workspace::new();
    let journal = w.path().join("j/app.journal");
    fs::create_dir_all(journal.parent().unwrap()).unwrap();
    write_journal(&journal, 0, &seq_entries(0..300));
    let cfg = w.config(&journald_input("jd", &journal, ""));
    w.run_once(&cfg);
    let ev = w.events();
    assert_eq!(ev.len(), 300, "every entry once");
    assert_eq!(
        app_seqs(&ev),
        (0..300).collect::<Vec<_>>(),
        "in journal order"
    );
    let e = &ev[7];
    assert_eq!(e["message"], "app seq=7 the quick brown fox");
    assert_eq!(e["@timestamp"], "2023-11-14T22:13:20.007Z");
    assert_eq!(e["input"]["type"], "journald");
    assert_eq!(e["event"]["kind"], "event");
    assert!(e["event"]["created"].is_string());
    assert_eq!(e["systemd"]["unit"], "app.service");
    assert_eq!(e["systemd"]["transport"], "stdout");
    assert_eq!(e["log"]["syslog"]["priority"], 6);
    assert_eq!(e["log"]["syslog"]["facility"]["code"], 3);
    assert_eq!(e["syslog"]["identifier"], "app");
    assert_eq!(e["process"]["pid"], 1000);
    assert_eq!(e["process"]["name"], "app");
    assert_eq!(
        e["process"]["args"],
        serde_json::json!(["/usr/bin/app", "--serve", "\"quoted arg\""])
    );
    assert_eq!(e["host"]["hostname"], "web-1");
    assert_eq!(e["host"]["id"], MACHINE);
    assert!(
        e["host"]["name"].is_string(),
        "the agent's host.name stays: {e}"
    );
    assert_eq!(e["journald"]["host"]["boot_id"], BOOT);
    assert_eq!(e["journald"]["custom"]["app_seq"], "7");
    assert_eq!(e["user"]["id"], "0");
    assert!(e["journald"].get("cursor").is_none());
    assert!(e.get("__CURSOR").is_none());

    // The cursor in the registry is Filebeat's checkpoint of the last entry.
    let key = format!("journald::jd::{}", journal.display());
    let cp = registry_cursor(&w, &key).expect("journald registry entry");
    assert_eq!(cp["version"], 1);
    assert!(cp["position"].as_str().unwrap().starts_with("s="), "{cp}");
    assert_eq!(
        cp["realtimetimestamp"],
        1_700_000_000_000_000u64 + 299 * 1000
    );

    // Nothing new: a second run ships nothing; new entries: only those.
    w.run_once(&cfg);
    assert_eq!(w.events().len(), 300, "a second run repeats nothing");
    write_journal(&journal, 300, &seq_entries(300..350));
    w.run_once(&cfg);
    let ev = w.events();
    assert_eq!(app_seqs(&ev), (0..350).collect::<Vec<_>>());
}

#[test]
fn filters_like_journalctl() {
    let w = Workspace::new();
    let journal = w.path().join("f.journal");
    let mut entries = Vec::new();
    let mut push = |unit: &str, extra: &[(&'static str, &str)], msg: &str| {
        let mut e = entry(entries.len(), unit, msg);
        for (k, v) in extra {
            e.retain(|(n, _)| n != k);
            e.push((k, v.as_bytes().to_vec()));
        }
        entries.push(e);
    };
    push("nginx.service", &[], "nginx line");
    push("sshd.service", &[], "sshd line");
    push("cron.service", &[], "cron line");
    push(
        "other.service",
        &[("SYSLOG_IDENTIFIER", "sudo")],
        "sudo line",
    );
    push("kern.service", &[("_TRANSPORT", "kernel")], "kernel line");
    push("mail.service", &[("SYSLOG_FACILITY", "2")], "mail line");
    write_journal(&journal, 0, &entries);
    let inputs = [
        (
            "or",
            r#"include_matches.match = ["_SYSTEMD_UNIT=nginx.service", "+", "systemd.unit=sshd.service"]"#,
        ),
        ("unit", r#"units = ["cron.service"]"#),
        ("ident", r#"syslog_identifiers = ["sudo"]"#),
        ("transport", r#"transports = ["kernel"]"#),
        ("facility", "facilities = [2]"),
        (
            "and",
            r#"include_matches.match = ["_SYSTEMD_UNIT=nginx.service", "_TRANSPORT=kernel"]"#,
        ),
    ];
    let text: String = inputs
        .iter()
        .map(|(id, f)| journald_input(id, &journal, &format!("fields = {{ which = {id:?} }}\n{f}")))
        .collect();
    let cfg = w.config(&text);
    w.run_once(&cfg);
    let ev = w.events();
    let got = |which: &str| {
        let mut m: Vec<String> = ev
            .iter()
            .filter(|e| e["fields"]["which"] == which)
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect();
        m.sort();
        m
    };
    assert_eq!(got("or"), ["nginx line", "sshd line"]);
    assert_eq!(got("unit"), ["cron line"]);
    assert_eq!(got("ident"), ["sudo line"]);
    assert_eq!(got("transport"), ["kernel line"]);
    assert_eq!(got("facility"), ["mail line"]);
    assert!(
        got("and").is_empty(),
        "different fields AND: {:?}",
        got("and")
    );
}

#[test]
fn binary_fields_and_invalid_utf8() {
    let w = Workspace::new();
    let journal = w.path().join("b.journal");
    let mut e = entry(0, "bin.service", "");
    e.retain(|(n, _)| *n != "MESSAGE");
    e.push(("MESSAGE", b"first line\nsecond line".to_vec()));
    e.push(("BLOB", b"\x00\x01binary\xff".to_vec()));
    let mut bad = entry(1, "bin.service", "");
    bad.retain(|(n, _)| *n != "MESSAGE");
    bad.push(("MESSAGE", b"caf\xe9 latin1".to_vec()));
    write_journal(&journal, 0, &[e, bad]);
    let cfg = w.config(&journald_input("bin", &journal, ""));
    w.run_once(&cfg);
    let ev = w.events();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["message"], "first line\nsecond line");
    assert_eq!(
        ev[0]["journald"]["custom"]["blob"],
        "\u{0}\u{1}binary\u{fffd}"
    );
    assert_eq!(ev[1]["message"], "caf\u{fffd} latin1");
    assert_eq!(ev[1]["log"]["flags"], serde_json::json!(["invalid_utf8"]));
}

#[test]
fn multiline_parser_joins_entries_and_advances_the_cursor() {
    let w = Workspace::new();
    let journal = w.path().join("m.journal");
    let msgs = [
        "[1] Exception in thread main",
        "  at a.b(C.java:1)",
        "  at d.e(F.java:2)",
        "[2] next",
        "[3] last",
    ];
    let entries: Vec<Fields> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| entry(i, "java.service", m))
        .collect();
    write_journal(&journal, 0, &entries);
    let cfg = w.config(&journald_input(
        "ml",
        &journal,
        "[[inputs.parsers]]\nmultiline = { type = \"pattern\", pattern = '^\\[', negate = true, match = \"after\" }",
    ));
    w.run_once(&cfg);
    let ev = w.events();
    let m: Vec<&str> = ev.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(
        m,
        [
            "[1] Exception in thread main\n  at a.b(C.java:1)\n  at d.e(F.java:2)",
            "[2] next",
            "[3] last"
        ]
    );
    assert_eq!(ev[0]["log"]["flags"], serde_json::json!(["multiline"]));
    assert_eq!(
        ev[0]["journald"]["custom"]["app_seq"], "0",
        "fields of the first entry"
    );
    // Filebeat's bug #51981 (the cursor never moves with multiline) is not repeated here.
    let cp = registry_cursor(&w, &format!("journald::ml::{}", journal.display())).unwrap();
    assert_eq!(cp["realtimetimestamp"], 1_700_000_000_000_000u64 + 4 * 1000);
    w.run_once(&cfg);
    assert_eq!(w.events().len(), 3, "nothing read twice");
}

#[test]
fn seek_tail_skips_old_entries_and_a_bad_saved_cursor_falls_back() {
    let w = Workspace::new();
    let dir = w.path().join("jt");
    fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("t.journal");
    write_journal(&journal, 0, &seq_entries(0..20));
    let cfg = w.config(&journald_input("tail", &dir, "seek = \"tail\""));
    let mut agent = w.spawn(&cfg);
    // Give journalctl time to reach the tail, then write.
    wait_for_log(&agent, "starting journalctl", 20);
    std::thread::sleep(Duration::from_millis(1500));
    write_journal(&journal, 20, &seq_entries(20..30));
    let ev = w.wait_events(10, 30);
    assert_eq!(
        app_seqs(&ev),
        (20..30).collect::<Vec<_>>(),
        "only new entries"
    );
    let (ok, _) = agent.stop();
    assert!(ok);

    // A cursor journalctl cannot parse: warned, then read by seek (tail: nothing old).
    let w2 = Workspace::new();
    let j2 = w2.path().join("c.journal");
    write_journal(&j2, 0, &seq_entries(0..5));
    let reg = w2.data().join("registry/filebeat");
    fs::create_dir_all(&reg).unwrap();
    let key = format!("journald::bad::{}", j2.display());
    fs::write(
        reg.join("log.json"),
        format!(
            "{{\"op\":\"set\",\"id\":1}}\n{}\n",
            serde_json::json!({"k": key, "v": {"ttl": -1, "updated": [0, 0], "cursor": {"version": 1, "position": "not-a-cursor"}}})
        ),
    )
    .unwrap();
    let cfg = w2.config(&journald_input("bad", &j2, ""));
    let out = w2.run_once(&cfg);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("refused the saved cursor"), "{log}");
    assert_eq!(app_seqs(&w2.events()), (0..5).collect::<Vec<_>>());
}

fn wait_for_log(agent: &Agent, needle: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let log = fs::read_to_string(&agent.log).unwrap_or_default();
        if log.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the agent log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pids of `pid`'s children named `comm`.
fn children(pid: i32, comm: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let name = &stat[stat.find('(').unwrap_or(0) + 1..close];
        let ppid: i32 = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == pid && name == comm {
            out.push(p);
        }
    }
    out
}

/// Follow a journal directory: entries written while the agent runs, journalctl killed and
/// restarted, the journal rotated (archived, a new file started), the agent killed with
/// SIGKILL and restarted: every entry arrives, none is lost; after a clean stop nothing
/// is repeated.
#[test]
fn follows_rotation_journalctl_death_and_kill9() {
    let w = Workspace::new();
    let dir = w.path().join("journal");
    fs::create_dir_all(&dir).unwrap();
    let active = dir.join("system.journal");
    write_journal(&active, 0, &seq_entries(0..200));
    let cfg = w.config(&journald_input("live", &dir, ""));
    let mut agent = w.spawn(&cfg);
    w.wait_events(200, 30);

    // journalctl dies: the input restarts it after the last entry read.
    let jc = children(agent.pid(), "journalctl");
    assert_eq!(jc.len(), 1, "one journalctl per source");
    unsafe {
        libc::kill(jc[0], libc::SIGKILL);
    }
    write_journal(&active, 200, &seq_entries(200..300));
    w.wait_events(300, 30);
    wait_for_log(&agent, "journalctl exited; restarting it", 10);

    // Rotation, as journald does it: the active file is archived under a new name and a
    // new active file is started.
    fs::rename(
        &active,
        dir.join(
            "system@0123456789abcdef0123456789abcdef-0000000000000001-0005f8a1b2c3d4e5.journal",
        ),
    )
    .unwrap();
    write_journal(&active, 300, &seq_entries(300..400));
    w.wait_events(400, 30);

    // SIGKILL while entries stream in; what was not acked comes again, nothing is lost.
    write_journal(&active, 400, &seq_entries(400..2400));
    std::thread::sleep(Duration::from_millis(300));
    agent.kill9();
    write_journal(&active, 2400, &seq_entries(2400..2500));
    let mut agent = w.spawn(&cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = app_seqs(&w.events());
        let mut uniq = got.clone();
        uniq.sort_unstable();
        uniq.dedup();
        if uniq.len() >= 2500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 2500 after restart",
            uniq.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dups = assert_complete(app_seqs(&w.events()), 2500, "after kill -9");
    let (ok, _) = agent.stop();
    assert!(ok);
    let before = w.events().len();

    // A clean stop and start repeats nothing.
    let mut agent = w.spawn(&cfg);
    write_journal(&active, 2500, &seq_entries(2500..2510));
    w.wait_events(before + 10, 30);
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _) = agent.stop();
    assert!(ok);
    let after = w.events();
    assert_eq!(after.len(), before + 10, "no repeats after a clean restart");
    eprintln!("kill -9 repeated {dups} in-flight entries");
}
