//! The packaged unit under a real systemd: `systemd-nspawn --volatile=yes -D / -b` boots the
//! host's systemd as PID 1 of a container (a tmpfs root with the host's /usr), with the unit of
//! packaging/systemd, the test build of the binary, a configuration and a user `oxibeat`
//! bound in. A oneshot unit inside waits for the service (Type=notify: active only after
//! READY=1), reads its status, reloads it, stops it, collects the journal and powers off.
//!
//! Needs root and systemd-nspawn (Debian package systemd-container, installed by
//! tests/run.sh). Opt-in with OXIBEAT_NSPAWN=1 because a machine that cannot run containers
//! (no cgroup hierarchy, no namespaces) cannot run it; it says so when skipped.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

const CHECK: &str = r#"#!/bin/sh
out=/srv/test/result
i=0; until systemctl is-active -q oxibeat || [ $i -ge 150 ]; do i=$((i+1)); sleep 0.2; done
systemctl show -p ActiveState -p SubState -p StatusText -p Type -p WatchdogUSec oxibeat > $out/show1
i=0; until [ -n "$(cat /var/lib/oxibeat/out/*.ndjson 2>/dev/null)" ] || [ $i -ge 150 ]; do i=$((i+1)); sleep 0.2; done
echo 'after reload' >> /srv/test/logs/app.log
systemctl reload oxibeat; echo "rc=$?" > $out/reload
systemctl show -p ActiveState -p StatusText oxibeat > $out/show2
i=0; until grep -q 'after reload' /var/lib/oxibeat/out/*.ndjson 2>/dev/null || [ $i -ge 150 ]; do i=$((i+1)); sleep 0.2; done
cat /var/lib/oxibeat/out/*.ndjson > $out/events.ndjson
stat -c '%U %a' /var/lib/oxibeat > $out/datadir
systemctl stop oxibeat
systemctl show -p ActiveState -p Result oxibeat > $out/show3
journalctl -u oxibeat --no-pager -o cat > $out/journal.txt
touch $out/done
systemctl poweroff
"#;

fn props(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
        .to_string()
}

#[test]
fn packaged_unit_runs_under_a_real_systemd() {
    if std::env::var("OXIBEAT_NSPAWN").ok().as_deref() != Some("1") {
        eprintln!("skipped: set OXIBEAT_NSPAWN=1 to boot systemd in systemd-nspawn and run the unit (needs root and container support)");
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
    // The binary is bound at /opt/oxibeat (the host's /usr/bin has none): only ExecStart moves.
    fs::write(
        units.join("oxibeat.service.d/test.conf"),
        "[Service]\nExecStart=\nExecStart=/opt/oxibeat/oxibeat run --config /etc/oxibeat/oxibeat.toml --path.data /var/lib/oxibeat --path.logs /var/log/oxibeat\n",
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
    let srv = root.join("srv");
    fs::create_dir_all(srv.join("logs")).unwrap();
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
    fs::write(
        root.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\noxibeat:x:990:990:oxibeat:/var/lib/oxibeat:/usr/sbin/nologin\n",
    )
    .unwrap();
    fs::write(root.join("group"), "root:x:0:\noxibeat:x:990:\n").unwrap();
    let bind = |from: &Path, to: &str| format!("--bind-ro={}:{to}", from.display());
    let out = Command::new("timeout")
        .arg("180")
        .arg("systemd-nspawn")
        .args([
            "--register=no",
            "--keep-unit",
            "--volatile=yes",
            "-D",
            "/",
            "-b",
        ])
        .arg(bind(Path::new(support::bin()), "/opt/oxibeat/oxibeat"))
        .arg(bind(&units, "/etc/systemd/system"))
        .arg(bind(&etc, "/etc/oxibeat"))
        .arg(bind(&root.join("passwd"), "/etc/passwd"))
        .arg(bind(&root.join("group"), "/etc/group"))
        .arg(format!("--bind={}:/srv/test", srv.display()))
        .stdin(Stdio::null())
        .output()
        .expect("systemd-nspawn (apt-get install systemd-container)");
    let console =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let res = srv.join("result");
    let read = |n: &str| fs::read_to_string(res.join(n)).unwrap_or_default();
    assert!(
        res.join("done").exists(),
        "the check unit did not finish; console:\n{console}\njournal:\n{}",
        read("journal.txt")
    );
    let journal = read("journal.txt");
    let show1 = read("show1");
    assert_eq!(props(&show1, "ActiveState"), "active", "{show1}\n{journal}");
    assert_eq!(props(&show1, "Type"), "notify", "{show1}");
    assert!(
        props(&show1, "StatusText").starts_with("Running: 1 inputs"),
        "{show1}\n{journal}"
    );
    assert_eq!(read("reload").trim(), "rc=0", "{journal}");
    let show2 = read("show2");
    assert_eq!(props(&show2, "ActiveState"), "active", "{show2}\n{journal}");
    let events = read("events.ndjson");
    for line in ["first line", "second line", "after reload"] {
        assert!(
            events.contains(line),
            "{line:?} not delivered:\n{events}\n{journal}"
        );
    }
    assert_eq!(read("datadir").trim(), "oxibeat 750", "{journal}");
    let show3 = read("show3");
    assert_eq!(props(&show3, "Result"), "success", "{show3}\n{journal}");
    assert!(
        journal.contains("SIGHUP: reloading the configuration"),
        "{journal}"
    );
    assert!(
        !journal.contains('\u{1b}'),
        "ANSI escapes in the journal:\n{journal}"
    );
}
