//! oxibeat as a service, through the real binary: sd_notify on a real Unix datagram socket
//! (READY, STATUS, WATCHDOG at half of WATCHDOG_USEC, RELOADING + MONOTONIC_USEC then READY,
//! STOPPING), a hung output stopping the watchdog, reload on SIGHUP and of a
//! `config.inputs` directory without losing or repeating a line, restart-only changes and
//! broken configurations refused, the keystore and systemd credentials for `${KEY}`,
//! strict.perms, and logs for the journal.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A notify socket as systemd has one: datagrams of `KEY=VALUE` lines.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        NotifySocket { sock, path }
    }

    /// The next message, or None after `timeout`.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = vec![0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => None,
        }
    }

    /// Messages until one satisfies `pred` (returned with those before it), or panic.
    fn until(&self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut before = Vec::new();
        while Instant::now() < deadline {
            if let Some(m) = self.recv(Duration::from_millis(200)) {
                if pred(&m) {
                    return (m, before);
                }
                before.push(m);
            }
        }
        panic!("no {what} within {secs}s; got {before:?}");
    }
}

struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn spawn(ws: &Workspace, cfg: &Path, env: &[(&str, String)], args: &[&str]) -> Agent {
        let log = ws.path().join("agent.log");
        let mut cmd = Command::new(bin());
        cmd.args(["run", "-c"])
            .arg(cfg)
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Agent {
            child: Some(cmd.spawn().expect("spawn oxibeat")),
            log,
        }
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: kill(2) on the child we started.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, secs: u64, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let l = self.log();
            if l.contains(needle) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the agent's log within {secs}s:\n{l}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) -> String {
        self.signal(libc::SIGTERM);
        let mut c = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                let l = self.log();
                assert!(st.success(), "agent failed: {st}\n{l}");
                return l;
            }
            assert!(Instant::now() < deadline, "agent did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn notify_env(n: &NotifySocket, watchdog: Duration) -> Vec<(&'static str, String)> {
    vec![
        ("NOTIFY_SOCKET", n.path.display().to_string()),
        ("WATCHDOG_USEC", watchdog.as_micros().to_string()),
    ]
}

#[test]
fn notify_ready_status_watchdog_reloading_and_stopping_in_order() {
    let ws = Workspace::new();
    append(&ws.logs().join("a.log"), &seq_lines("a", 0..10));
    let cfg = ws.config(&ws.input("a", "a.log", ""));
    let n = NotifySocket::bind(ws.path());
    let mut agent = Agent::spawn(
        &ws,
        &cfg,
        &notify_env(&n, Duration::from_millis(400)),
        &["-e"],
    );

    // READY=1 is the first message, with a status line.
    let first = n
        .recv(Duration::from_secs(20))
        .expect("a first notification");
    assert!(
        first.starts_with("READY=1\nSTATUS=Running: 1 inputs"),
        "{first:?}"
    );
    ws.wait_events(10, 20);
    // WATCHDOG=1 at half of WATCHDOG_USEC (200ms) while healthy; STATUS= in between.
    let mut pings = Vec::new();
    let mut statuses = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if let Some(m) = n.recv(Duration::from_millis(500)) {
            if m == "WATCHDOG=1" {
                pings.push(Instant::now());
            } else if let Some(s) = m.strip_prefix("STATUS=") {
                statuses.push(s.to_string());
            } else {
                panic!("unexpected notification {m:?}");
            }
        }
    }
    assert!(pings.len() >= 8, "{} pings in 3s", pings.len());
    let gaps: Vec<u128> = pings
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    assert!(
        (150..=300).contains(&median),
        "median ping interval {median}ms, expected about 200ms: {gaps:?}"
    );
    assert!(
        statuses
            .iter()
            .any(|s| s.contains("1 inputs") && s.contains("output file: ok")),
        "{statuses:?}"
    );

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 (now with 2 inputs).
    append(&ws.logs().join("b.log"), &seq_lines("b", 0..5));
    ws.config(&format!(
        "{}{}",
        ws.input("a", "a.log", ""),
        ws.input("b", "b.log", "")
    ));
    agent.signal(libc::SIGHUP);
    let (reloading, _) = n.until(10, "RELOADING=1", |m| m.starts_with("RELOADING=1"));
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC")
        .parse()
        .expect("a number");
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct passed in.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let now_usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
    assert!(
        usec <= now_usec && now_usec - usec < 10_000_000,
        "{usec} vs {now_usec}"
    );
    let (ready, between) = n.until(10, "READY=1 after the reload", |m| m.starts_with("READY=1"));
    assert!(ready.contains("Running: 2 inputs"), "{ready:?}");
    assert!(between.iter().all(|m| !m.contains("READY")), "{between:?}");
    ws.wait_events(15, 20);

    // SIGTERM: STOPPING=1.
    agent.signal(libc::SIGTERM);
    let (stopping, _) = n.until(10, "STOPPING=1", |m| m.starts_with("STOPPING=1"));
    assert!(stopping.contains("STATUS=Stopping"), "{stopping:?}");
    agent.stop();
}

#[test]
fn a_hung_output_stops_the_watchdog_pings() {
    let ws = Workspace::new();
    append(&ws.logs().join("a.log"), &seq_lines("a", 0..100));
    // A Logstash endpoint that accepts the connection and never answers: the output waits
    // for an ACK that does not come (its timeout, 30s, is much longer than the watchdog).
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port();
    let cfg = ws.config_with(
        &ws.input("a", "a.log", ""),
        &format!("[output.logstash]\nhosts = [\"127.0.0.1:{port}\"]\n"),
    );
    let n = NotifySocket::bind(ws.path());
    let _agent = Agent::spawn(
        &ws,
        &cfg,
        &notify_env(&n, Duration::from_millis(600)),
        &["-e"],
    );
    n.until(20, "READY=1", |m| m.starts_with("READY=1"));
    // The events are sent and never acknowledged: after a whole watchdog period without
    // progress the pings stop and STATUS says why.
    let (stalled, _) = n.until(20, "a stalled status", |m| m.contains("stalled"));
    assert!(stalled.contains("events in flight"), "{stalled:?}");
    let quiet_from = Instant::now();
    while quiet_from.elapsed() < Duration::from_secs(2) {
        if let Some(m) = n.recv(Duration::from_millis(200)) {
            assert_ne!(m, "WATCHDOG=1", "pinged although the output is hung");
        }
    }
    drop(hung);
}

/// Lines appended to `path` by a thread until `stop`: `prefix seq=0..`.
fn writer(
    path: PathBuf,
    prefix: &'static str,
) -> (
    std::thread::JoinHandle<usize>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        let mut i = 0;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            append(&path, &seq_lines(prefix, i..i + 50));
            i += 50;
            std::thread::sleep(Duration::from_millis(5));
        }
        i
    });
    (h, stop)
}

/// Every seq of `prefix` in 0..n exactly once.
fn exactly_once(ws: &Workspace, prefix: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = seqs(&ws.events(), prefix);
        if got.len() >= n || Instant::now() > deadline {
            let dups = assert_complete(got, n, prefix);
            assert_eq!(dups, 0, "{prefix}: {dups} lines delivered twice");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_reload_changes_inputs_without_losing_or_repeating_a_line() {
    let ws = Workspace::new();
    let a = ws.logs().join("a.log");
    let (wa, stop_a) = writer(a.clone(), "a");
    let cfg = ws.config(&ws.input("a", "a.log", ""));
    let mut agent = Agent::spawn(&ws, &cfg, &[], &["-e"]);
    agent.wait_log(20, "oxibeat starting");
    ws.wait_events(500, 20);

    // Input a changed (a field added: it restarts), input b added, a global processor.
    append(&ws.logs().join("b.log"), &seq_lines("b", 0..300));
    let changed = format!(
        "{}{}[[processors]]\nadd_fields = {{ target = \"\", fields = {{ reloaded = true }} }}\n",
        ws.input("a", "a.log", "fields = { gen = 2 }"),
        ws.input("b", "b.log", "")
    );
    ws.config(&changed);
    agent.signal(libc::SIGHUP);
    agent.wait_log(20, "reload: inputs changed");
    std::thread::sleep(Duration::from_millis(500));

    // A change that needs a restart is refused, naming the key; the old config runs on.
    let out2 = ws.path().join("out2");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(
        &cfg,
        text.replace(&ws.out().display().to_string(), &out2.display().to_string()),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    let l = agent.wait_log(20, "reload refused");
    assert!(l.contains("output.file.path"), "{l}");
    // A broken configuration is reported with its key path and changes nothing.
    fs::write(
        &cfg,
        format!(
            "{changed}\n[output.file]\npath = {:?}\nrotate_every_kb = \"lots\"\n",
            ws.out().display().to_string()
        ),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    let l = agent.wait_log(20, "reload failed");
    assert!(l.contains("output.file.rotate_every_kb"), "{l}");
    std::thread::sleep(Duration::from_millis(500));

    // Input b removed again while a keeps running.
    ws.config(&ws.input("a", "a.log", "fields = { gen = 2 }"));
    agent.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(800));
    stop_a.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = wa.join().unwrap();
    exactly_once(&ws, "a", written);
    exactly_once(&ws, "b", 300);
    let events = ws.events();
    let gen2 = events
        .iter()
        .filter(|e| e["fields"]["gen"] == 2 && e["reloaded"] == true)
        .count();
    assert!(
        gen2 > 0,
        "no event carries the reloaded input's field and processor"
    );
    assert!(!out2.exists(), "the refused output change was applied");
    let log = agent.stop();
    assert!(log.contains("stopped=[\"b\"]"), "{log}");
}

#[test]
fn config_inputs_directory_reload_starts_and_stops_inputs() {
    let ws = Workspace::new();
    let dir = ws.path().join("inputs.d");
    fs::create_dir(&dir).unwrap();
    append(&ws.logs().join("a.log"), &seq_lines("a", 0..100));
    append(&ws.logs().join("b.log"), &seq_lines("b", 0..100));
    fs::write(dir.join("a.toml"), ws.input("a", "a.log", "")).unwrap();
    let cfg = ws.config(
        "[config.inputs]\npath = \"inputs.d/*.toml\"\nreload.enabled = true\nreload.period = \"100ms\"\n",
    );
    let mut agent = Agent::spawn(&ws, &cfg, &[], &["-e"]);
    exactly_once(&ws, "a", 100);
    // A new file: its input starts.
    fs::write(dir.join("b.toml"), ws.input("b", "b.log", "")).unwrap();
    exactly_once(&ws, "b", 100);
    agent.wait_log(10, "started=[\"b\"]");
    // A removed file: its input stops; lines written after are not read.
    fs::remove_file(dir.join("a.toml")).unwrap();
    agent.wait_log(10, "stopped=[\"a\"]");
    std::thread::sleep(Duration::from_millis(300));
    append(&ws.logs().join("a.log"), &seq_lines("a", 100..150));
    // A broken file is reported with its name and key, and the running inputs stay.
    fs::write(
        dir.join("c.toml"),
        "[[inputs]]\ntype = \"filestream\"\nid = \"c\"\npaths = 5\n",
    )
    .unwrap();
    let l = agent.wait_log(10, "config.inputs reload failed");
    assert!(l.contains("c.toml: inputs[0].paths"), "{l}");
    append(&ws.logs().join("b.log"), &seq_lines("b", 100..120));
    exactly_once(&ws, "b", 120);
    let got = seqs(&ws.events(), "a");
    assert!(
        got.iter().all(|s| *s < 100),
        "input a read after its file was removed"
    );
    agent.stop();
}

/// A filebeat.yml's `filebeat.config.inputs` with `reload.enabled`: YAML input files are
/// translated on every reload as at startup (a `log` input among them), added and removed
/// files start and stop their inputs, a broken file is reported by name.
#[test]
fn filebeat_yml_config_inputs_reload_reads_yaml_input_files() {
    let ws = Workspace::new();
    let dir = ws.path().join("inputs.d");
    fs::create_dir(&dir).unwrap();
    append(&ws.logs().join("a.log"), &seq_lines("a", 0..100));
    append(&ws.logs().join("b.log"), &seq_lines("b", 0..100));
    let input = |id: &str, kind: &str, file: &str| {
        // The log input's name for the scan interval is scan_frequency.
        let scan = if kind == "log" {
            "scan_frequency"
        } else {
            "prospector.scanner.check_interval"
        };
        format!(
            "- type: {kind}\n  id: {id}\n  paths: [{:?}]\n  {scan}: 200ms\n",
            ws.logs().join(file).display().to_string()
        )
    };
    // `${path.home}` in an input file resolves as in the main file.
    fs::write(
        dir.join("a.yml"),
        "- type: filestream\n  id: a\n  paths: [\"${path.home}/logs/a.log\"]\n  prospector.scanner.check_interval: 200ms\n",
    )
    .unwrap();
    let cfg = ws.path().join("filebeat.yml");
    fs::write(
        &cfg,
        format!(
            "path.home: {:?}\npath.data: {:?}\nfilebeat.config.inputs:\n  enabled: true\n  path: ${{path.config}}/inputs.d/*.yml\n  reload.enabled: true\n  reload.period: 100ms\noutput.file:\n  path: {:?}\n  rotate_every_kb: 1048576\nfilebeat.registry.flush: 100ms\nlogging.metrics.enabled: false\n",
            ws.path().display().to_string(),
            ws.data().display().to_string(),
            ws.out().display().to_string()
        ),
    )
    .unwrap();
    let mut agent = Agent::spawn(&ws, &cfg, &[], &["-e"]);
    exactly_once(&ws, "a", 100);
    // A new file with a `log` input (translated to filestream): its input starts.
    fs::write(dir.join("b.yml"), input("b", "log", "b.log")).unwrap();
    agent.wait_log(10, "started=[\"b\"]");
    exactly_once(&ws, "b", 100);
    // A removed file: its input stops.
    fs::remove_file(dir.join("a.yml")).unwrap();
    agent.wait_log(10, "stopped=[\"a\"]");
    // A broken file is reported with its name, and the running inputs stay.
    fs::write(
        dir.join("c.yml"),
        "- type: filestream\n  id: c\n  paths: 5\n",
    )
    .unwrap();
    let l = agent.wait_log(10, "config.inputs reload failed");
    assert!(l.contains("c.yml"), "{l}");
    append(&ws.logs().join("b.log"), &seq_lines("b", 100..120));
    exactly_once(&ws, "b", 120);
    agent.stop();
}

fn oxibeat(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut c = cmd.spawn().unwrap();
    let mut input = c.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    c.wait_with_output().unwrap()
}

#[test]
fn keystore_credentials_and_environment_resolve_keys_and_stay_secret() {
    let ws = Workspace::new();
    let cfg = ws.config_with(
        &ws.input("a", "a.log", ""),
        "[output.kafka]\nhosts = [\"127.0.0.1:9\"]\ntopic = \"t-${TOPIC_FROM_ENV}\"\nusername = \"${KS_USER}\"\npassword = \"${CRED_PASS}\"\nclient_id = \"${BOTH}\"\n",
    );
    let c = cfg.to_str().unwrap();
    let add = |key: &str, value: &str| {
        let o = oxibeat(
            &["keystore", "add", key, "--stdin", "-c", c],
            &[],
            Some(value),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let o = oxibeat(&["keystore", "list", "-c", c], &[], None);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("keystore create"),
        "{o:?}"
    );
    let o = oxibeat(&["keystore", "create", "-c", c], &[], None);
    assert!(o.status.success(), "{o:?}");
    let ks = ws.data().join("oxibeat.keystore");
    assert_eq!(
        fs::metadata(&ks).unwrap().permissions().mode() & 0o777,
        0o600
    );
    add("KS_USER", "ks-user-value\n");
    add("BOTH", "both-from-keystore");
    let o = oxibeat(
        &["keystore", "add", "BOTH", "--stdin", "-c", c],
        &[],
        Some("again"),
    );
    assert!(
        !o.status.success(),
        "adding an existing key without --force"
    );
    let o = oxibeat(&["keystore", "list", "-c", c], &[], None);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "BOTH\nKS_USER\n");
    assert!(!String::from_utf8_lossy(&fs::read(&ks).unwrap()).contains("ks-user-value"));

    let creds = ws.path().join("creds");
    fs::create_dir(&creds).unwrap();
    fs::write(creds.join("CRED_PASS"), "cred-pass-value\n").unwrap();
    fs::write(creds.join("BOTH"), "both-from-credential\n").unwrap();
    let env = [
        ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
        ("TOPIC_FROM_ENV", "envtopic"),
        ("CRED_PASS", "env-loses"),
    ];
    let o = oxibeat(&["export", "config", "-c", c], &env, None);
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Environment values are not secrets; keystore and credential values never show.
    assert!(shown.contains("t-envtopic"), "{shown}");
    for secret in [
        "ks-user-value",
        "cred-pass-value",
        "both-from-keystore",
        "both-from-credential",
        "env-loses",
    ] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    // The order (keystore, credentials, environment) through the agent's log: the Kafka
    // client id is logged at start.
    let o = oxibeat(&["test", "config", "-c", c], &env, None);
    assert!(o.status.success(), "{o:?}");
    // Removing a key: ${KS_USER} is then unresolved and the error names it, not a value.
    let o = oxibeat(&["keystore", "remove", "KS_USER", "-c", c], &[], None);
    assert!(o.status.success(), "{o:?}");
    let o = oxibeat(&["test", "config", "-c", c], &env, None);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && err.contains("KS_USER"), "{err}");
    assert!(!err.contains("cred-pass-value"), "{err}");
}

#[test]
fn strict_perms_checks_filebeat_input_files_read_at_start() {
    // filebeat.config.inputs without reload: the files are read with the main file, and
    // strict.perms applies to them as to it (Filebeat's cfgfile loader checks every file).
    let ws = Workspace::new();
    let dir = ws.path().join("inputs.d");
    fs::create_dir(&dir).unwrap();
    let input = dir.join("a.yml");
    fs::write(
        &input,
        format!(
            "- type: filestream\n  id: a\n  paths: [{:?}]\n",
            ws.logs().join("a.log").display().to_string()
        ),
    )
    .unwrap();
    fs::set_permissions(&input, fs::Permissions::from_mode(0o664)).unwrap();
    let cfg = ws.path().join("filebeat.yml");
    fs::write(
        &cfg,
        format!(
            "path.data: {:?}\nfilebeat.config.inputs:\n  enabled: true\n  path: ${{path.config}}/inputs.d/*.yml\noutput.console: {{}}\n",
            ws.data().display().to_string()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (ok, err) = test_config(c, &[]);
    assert!(!ok, "a group-writable input file was accepted");
    assert!(
        err.contains("filebeat.config.inputs.path")
            && err.contains("a.yml")
            && err.contains("chmod go-w"),
        "{err}"
    );
    let (ok, err) = test_config(c, &["--strict.perms=false"]);
    assert!(ok, "{err}");
    fs::set_permissions(&input, fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, err) = test_config(c, &[]);
    assert!(ok, "{err}");
}

/// `oxibeat test config [FLAGS] -c C`: whether it passed, and its stderr.
fn test_config(c: &str, flags: &[&str]) -> (bool, String) {
    let mut args = vec!["test", "config"];
    args.extend_from_slice(flags);
    args.extend(["-c", c]);
    let o = oxibeat(&args, &[], None);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn strict_perms_refuses_writable_config_and_keystore_with_the_fix() {
    let ws = Workspace::new();
    let cfg = ws.config(&ws.input("a", "a.log", ""));
    let c = cfg.to_str().unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o664)).unwrap();
    let (ok, err) = test_config(c, &[]);
    assert!(!ok, "a group-writable config was accepted");
    assert!(
        err.contains("chmod go-w") && err.contains("--strict.perms=false"),
        "{err}"
    );
    let (ok, err) = test_config(c, &["--strict.perms=false"]);
    assert!(ok, "{err}");
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o644)).unwrap();
    let o = oxibeat(&["keystore", "create", "-c", c], &[], None);
    assert!(o.status.success(), "{o:?}");
    let ks = ws.data().join("oxibeat.keystore");
    fs::set_permissions(&ks, fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, err) = test_config(c, &[]);
    assert!(!ok && err.contains("chmod go-rwx"), "{err}");
}

#[test]
fn logs_for_the_journal_have_priority_prefixes_and_no_colour() {
    let ws = Workspace::new();
    append(&ws.logs().join("a.log"), &seq_lines("a", 0..3));
    let cfg = ws.config(&ws.input("a", "a.log", ""));
    // stderr is a file; JOURNAL_STREAM names it, as systemd does for a journal stream.
    let log = ws.path().join("agent.log");
    fs::File::create(&log).unwrap();
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", m.dev(), m.ino());
    let mut agent = Agent::spawn(&ws, &cfg, &[("JOURNAL_STREAM", stream)], &[]);
    ws.wait_events(3, 20);
    let text = agent.stop();
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in the journal:\n{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("oxibeat starting")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.len() > 3 && l.starts_with('<') && l.as_bytes()[2] == b'>'),
        "{text}"
    );
    // No log file was written: under the journal, stderr is the log.
    assert!(!ws.data().join("logs").exists());
}
