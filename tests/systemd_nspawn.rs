//! The packaged unit under a real systemd: `systemd-nspawn --volatile=yes -D / -b` boots the
//! host's systemd as PID 1 of a container (a tmpfs root with the host's /usr), with the unit of
//! packaging/systemd, the test build of the binary, a configuration and a sysusers.d entry for
//! the user `oxibeat` bound in. A oneshot unit inside waits for the service (Type=notify:
//! active only after READY=1), reads its status, lets two watchdog intervals pass, reloads it
//! with an added input while lines are written, reloads a broken configuration, stops it,
//! collects the journal and powers off.
//!
//! Needs root, namespaces and systemd-nspawn (Debian package systemd-container). tests/run.sh
//! installs it and sets OXIBEAT_NSPAWN=1 (OXIBEAT_NSPAWN=0 skips it where containers cannot
//! run); a bare `cargo test` runs it only with OXIBEAT_NSPAWN=1 and says so when skipped.
//!
//! Traps, each of which hangs the boot or the test:
//! - `--volatile=yes` gives an empty /etc, so systemd detects a first boot and starts
//!   systemd-firstboot.service (`Before=sysinit.target`), which waits on the console for a key
//!   ("Press any key to proceed"): nothing else starts. `systemd.firstboot=no` on systemd's
//!   command line (nspawn passes the arguments after the options to init, and systemd in a
//!   container reads its own command line as the kernel's) turns it off.
//! - /etc/passwd must not be a bind mount: systemd-sysusers replaces it by rename, fails with
//!   EBUSY, and dbus (user messagebus) then fails to start. The user comes from sysusers.d.
//! - Without a systemd on the host (no machined, no D-Bus), `--register=no --keep-unit`.
//! - "Failed to create symlink /sys/fs/cgroup/cpu: File exists" (and cpuacct, net_cls,
//!   net_prio) on the console is harmless: systemd expects co-mounted cpu,cpuacct and
//!   net_cls,net_prio v1 hierarchies and the host has them apart or not at all.

mod support;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

const CHECK: &str = r#"#!/bin/sh
out=/srv/test/result
ev=/var/lib/oxibeat/out
wait_for() { i=0; until eval "$1" || [ $i -ge 150 ]; do i=$((i+1)); sleep 0.2; done; }
wait_for 'systemctl is-active -q oxibeat'
systemctl show -p ActiveState -p SubState -p StatusText -p Type -p WatchdogUSec -p MainPID oxibeat > $out/show1
wait_for "grep -qs 'second line' $ev/*.ndjson"
# Two watchdog intervals (WatchdogSec=2s): without WATCHDOG=1 systemd kills it (Result=watchdog).
sleep 4
systemctl show -p ActiveState -p Result -p MainPID -p NRestarts oxibeat > $out/watchdog
# The reload adds an input while lines are written; the running input keeps its offset.
printf '[[inputs]]\ntype = "filestream"\nid = "other"\npaths = ["/srv/test/logs2/*.log"]\nprospector.scanner.check_interval = "200ms"\n' >> /etc/oxibeat/oxibeat.toml
echo 'other line' > /srv/test/logs2/other.log
echo 'before reload' >> /srv/test/logs/app.log
systemctl reload oxibeat; echo "rc=$?" > $out/reload
echo 'after reload' >> /srv/test/logs/app.log
systemctl show -p ActiveState -p StatusText -p MainPID oxibeat > $out/show2
wait_for "grep -qs 'after reload' $ev/*.ndjson && grep -qs 'other line' $ev/*.ndjson"
# A broken configuration: reported, the running one stays.
printf '[[inputs]]\ntype = "filestream"\nid = "broken"\npaths = 5\n' >> /etc/oxibeat/oxibeat.toml
systemctl reload oxibeat; echo "rc=$?" >> $out/reload
wait_for "journalctl -u oxibeat -q --no-pager | grep -q 'reload failed'"
echo 'after broken reload' >> /srv/test/logs/app.log
wait_for "grep -qs 'after broken reload' $ev/*.ndjson"
systemctl show -p ActiveState -p MainPID oxibeat > $out/show3
cat $ev/*.ndjson > $out/events.ndjson
stat -c '%U %a' /var/lib/oxibeat > $out/datadir
systemctl stop oxibeat
systemctl show -p ActiveState -p Result oxibeat > $out/show4
journalctl -u oxibeat --no-pager -o cat > $out/journal.txt
journalctl -u oxibeat --no-pager -o json --output-fields=MESSAGE,PRIORITY > $out/journal.json
systemctl --failed --no-legend --plain > $out/failed
touch $out/done
systemctl poweroff
"#;

fn props(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
        .to_string()
}

/// `message` -> how many events carry it.
fn messages(ndjson: &str) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for line in ndjson.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not an event ({e}): {line}"));
        let m = v["message"].as_str().unwrap_or_default().to_string();
        *n.entry(m).or_default() += 1;
    }
    n
}

/// The PRIORITY the journal stored for the first entry whose MESSAGE contains `needle`.
fn priority(journal_json: &str, needle: &str) -> Option<String> {
    journal_json.lines().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        v["MESSAGE"]
            .as_str()?
            .contains(needle)
            .then(|| v["PRIORITY"].as_str().unwrap_or_default().to_string())
    })
}

#[test]
fn packaged_unit_runs_under_a_real_systemd() {
    if std::env::var("OXIBEAT_NSPAWN").ok().as_deref() != Some("1") {
        eprintln!("skipped: set OXIBEAT_NSPAWN=1 to boot systemd in systemd-nspawn and run the unit (needs root, systemd-nspawn and container support)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let w = tempfile::tempdir().unwrap();
    let root = w.path();
    let units = root.join("units");
    fs::create_dir_all(units.join("oxibeat.service.d")).unwrap();
    fs::create_dir_all(units.join("multi-user.target.wants")).unwrap();
    fs::copy(
        repo.join("packaging/systemd/oxibeat.service"),
        units.join("oxibeat.service"),
    )
    .unwrap();
    // The binary is bound at /opt/oxibeat (the host's /usr/bin has none), and the watchdog is
    // 2 s instead of 60 s so that the test sees intervals pass; nothing else changes.
    fs::write(
        units.join("oxibeat.service.d/test.conf"),
        "[Service]\nExecStart=\nExecStart=/opt/oxibeat/oxibeat run --config /etc/oxibeat/oxibeat.toml --path.data /var/lib/oxibeat --path.logs /var/log/oxibeat\nWatchdogSec=2s\n",
    )
    .unwrap();
    fs::write(
        units.join("check.service"),
        "[Unit]\nAfter=oxibeat.service\n[Service]\nType=oneshot\nExecStart=/bin/sh /srv/test/check.sh\n",
    )
    .unwrap();
    for u in ["oxibeat.service", "check.service"] {
        std::os::unix::fs::symlink(
            format!("/etc/systemd/system/{u}"),
            units.join("multi-user.target.wants").join(u),
        )
        .unwrap();
    }
    // The packages create a system user; here systemd-sysusers does, at boot.
    let sysusers = root.join("sysusers");
    fs::create_dir_all(&sysusers).unwrap();
    fs::write(
        sysusers.join("oxibeat.conf"),
        "u oxibeat - \"oxibeat log shipper\" /var/lib/oxibeat /usr/sbin/nologin\n",
    )
    .unwrap();
    let srv = root.join("srv");
    fs::create_dir_all(srv.join("logs")).unwrap();
    fs::create_dir_all(srv.join("logs2")).unwrap();
    fs::create_dir_all(srv.join("result")).unwrap();
    fs::write(srv.join("logs/app.log"), "first line\nsecond line\n").unwrap();
    fs::write(srv.join("check.sh"), CHECK).unwrap();
    fs::set_permissions(&srv, fs::Permissions::from_mode(0o755)).unwrap();
    let etc = root.join("etc-oxibeat");
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        etc.join("oxibeat.toml"),
        "[[inputs]]\ntype = \"filestream\"\nid = \"app\"\npaths = [\"/srv/test/logs/*.log\"]\n\
         prospector.scanner.check_interval = \"200ms\"\n\
         [output.file]\npath = \"/var/lib/oxibeat/out\"\n[registry]\nflush = \"100ms\"\n",
    )
    .unwrap();
    fs::set_permissions(etc.join("oxibeat.toml"), fs::Permissions::from_mode(0o644)).unwrap();
    let bind_ro = |from: &Path, to: &str| format!("--bind-ro={}:{to}", from.display());
    let out = Command::new("timeout")
        .arg("180")
        .arg("systemd-nspawn")
        .args(["--register=no", "--keep-unit", "--volatile=yes"])
        .arg(format!("--machine=oxibeat-test-{}", std::process::id()))
        .args(["-D", "/", "-b"])
        .arg(bind_ro(Path::new(support::bin()), "/opt/oxibeat/oxibeat"))
        .arg(bind_ro(&units, "/etc/systemd/system"))
        .arg(bind_ro(&sysusers, "/etc/sysusers.d"))
        .arg(format!("--bind={}:/etc/oxibeat", etc.display()))
        .arg(format!("--bind={}:/srv/test", srv.display()))
        // systemd's own arguments: no interactive first-boot wizard on the tmpfs /etc.
        .arg("systemd.firstboot=no")
        .stdin(Stdio::null())
        .output()
        .expect("systemd-nspawn (apt-get install systemd-container)");
    let console =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let res = srv.join("result");
    let read = |n: &str| fs::read_to_string(res.join(n)).unwrap_or_default();
    assert!(
        res.join("done").exists(),
        "the check unit did not finish (exit {:?}); console:\n{console}\njournal:\n{}",
        out.status.code(),
        read("journal.txt")
    );
    let journal = read("journal.txt");

    // Type=notify: active (not activating) only after READY=1, with our STATUS=.
    let show1 = read("show1");
    assert_eq!(props(&show1, "ActiveState"), "active", "{show1}\n{journal}");
    assert_eq!(props(&show1, "SubState"), "running", "{show1}\n{journal}");
    assert_eq!(props(&show1, "Type"), "notify", "{show1}");
    assert_eq!(props(&show1, "WatchdogUSec"), "2s", "{show1}");
    assert!(
        props(&show1, "StatusText").starts_with("Running: 1 inputs"),
        "{show1}\n{journal}"
    );
    let pid = props(&show1, "MainPID");
    assert!(pid.parse::<u32>().is_ok_and(|p| p > 0), "{show1}");

    // WATCHDOG=1 kept it alive for two intervals: same process, no restart.
    let wd = read("watchdog");
    assert_eq!(props(&wd, "ActiveState"), "active", "{wd}\n{journal}");
    assert_eq!(props(&wd, "Result"), "success", "{wd}\n{journal}");
    assert_eq!(props(&wd, "NRestarts"), "0", "{wd}\n{journal}");
    assert_eq!(props(&wd, "MainPID"), pid, "{wd}\n{journal}");

    // systemctl reload (SIGHUP): the added input started, the same process runs on.
    assert_eq!(read("reload"), "rc=0\nrc=0\n", "{journal}");
    let show2 = read("show2");
    assert_eq!(props(&show2, "ActiveState"), "active", "{show2}\n{journal}");
    assert_eq!(props(&show2, "MainPID"), pid, "{show2}\n{journal}");
    assert!(
        props(&show2, "StatusText").starts_with("Running: 2 inputs"),
        "{show2}\n{journal}"
    );
    assert!(
        journal.contains("SIGHUP: reloading the configuration"),
        "{journal}"
    );
    assert!(
        journal.contains(r#"reload: inputs changed started=["other"]"#),
        "{journal}"
    );
    // The broken configuration was reported and changed nothing.
    assert!(
        journal.contains("reload failed: the new configuration is broken")
            && journal.contains("/etc/oxibeat/oxibeat.toml: inputs[2].paths"),
        "{journal}"
    );
    let show3 = read("show3");
    assert_eq!(props(&show3, "ActiveState"), "active", "{show3}\n{journal}");
    assert_eq!(props(&show3, "MainPID"), pid, "{show3}\n{journal}");

    // Every line once: none lost or repeated across the reloads.
    let events = read("events.ndjson");
    let got = messages(&events);
    for line in [
        "first line",
        "second line",
        "before reload",
        "after reload",
        "other line",
        "after broken reload",
    ] {
        assert_eq!(got.get(line), Some(&1), "{line:?}:\n{events}\n{journal}");
    }
    assert_eq!(got.len(), 6, "{events}");
    assert_eq!(read("datadir").trim(), "oxibeat 750", "{journal}");

    // systemctl stop: SIGTERM, drained, exit 0.
    let show4 = read("show4");
    assert_eq!(
        props(&show4, "ActiveState"),
        "inactive",
        "{show4}\n{journal}"
    );
    assert_eq!(props(&show4, "Result"), "success", "{show4}\n{journal}");
    assert!(journal.contains("oxibeat stopped"), "{journal}");

    // The journal parsed our priority prefixes (error 3, info 6) and got no colour codes.
    let json = read("journal.json");
    assert_eq!(
        priority(&json, "reload failed").as_deref(),
        Some("3"),
        "{json}"
    );
    assert_eq!(
        priority(&json, "SIGHUP: reloading").as_deref(),
        Some("6"),
        "{json}"
    );
    assert!(
        !journal.contains("<3>") && !journal.contains("<6>"),
        "{journal}"
    );
    assert!(
        !journal.contains('\u{1b}'),
        "ANSI escapes in the journal:\n{journal}"
    );
    // The boot itself was clean: no unit failed.
    assert_eq!(read("failed").trim(), "", "failed units:\n{console}");
}
