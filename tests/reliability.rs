//! Reliability: the ways a running agent was once made to lose, duplicate, hang, crash or
//! leak (issue 18), each kept as a regression test on a real filesystem (root, tmpfs,
//! `nobody`), with every line carrying a unique seq so loss and duplicates are counted.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// A filestream input over `logs/<glob>` with a slow rescan (the default 10 s), so what is
/// tested is what the agent sees between scans.
fn input(w: &Workspace, id: &str, glob: &str, extra: &str) -> String {
    format!(
        "[[inputs]]\ntype = \"filestream\"\nid = {id:?}\npaths = [{:?}]\nbackoff.init = \"50ms\"\nbackoff.max = \"200ms\"\n{extra}\n",
        w.logs().join(glob).display().to_string()
    )
}

/// Wait until `done(events)` or the deadline; returns the events seen last.
fn wait_until(w: &Workspace, secs: u64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let ev = w.events();
        if done(&ev) || Instant::now() > deadline {
            return ev;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn unique(mut v: Vec<usize>) -> usize {
    v.sort_unstable();
    v.dedup();
    v.len()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A test that needs root (to run the agent as `nobody`, to mount a tmpfs) and cannot have it:
/// a failure, so that CI (root) never passes one by skipping it. `OXIBEAT_TEST_NO_ROOT=1`
/// skips it instead, saying so, for a run as an ordinary user.
fn cannot_run(why: &str) {
    if std::env::var_os("OXIBEAT_TEST_NO_ROOT").is_some() {
        eprintln!("skipped (OXIBEAT_TEST_NO_ROOT is set): {why}");
    } else {
        panic!("{why}; run the tests as root (CI does), or set OXIBEAT_TEST_NO_ROOT=1 to skip this test");
    }
}

/// Start the agent as `nobody` (root only: permissions do not stop root).
fn spawn_as_nobody(w: &Workspace, cfg: &Path) -> Agent {
    for d in [w.path().to_path_buf(), w.logs()] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::set_permissions(cfg, fs::Permissions::from_mode(0o644)).unwrap();
    let log = w.path().join(format!(
        "agent-nobody-{}.log",
        fs::read_dir(w.path()).unwrap().count()
    ));
    let child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "run",
            "-e",
            "-c",
        ])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .expect("setpriv (util-linux)");
    Agent {
        child: Some(child),
        log,
    }
}

fn agent_log(a: &Agent) -> String {
    fs::read_to_string(&a.log).unwrap_or_default()
}

/// A tmpfs of `size` mounted on `dir` for the test's life (root, and where the machine
/// allows mounts). `None`, with the reason, where it cannot be mounted.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("not root".into());
        }
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// Fill the filesystem with `name` until it is full, leaving `keep` bytes free.
    fn fill(&self, name: &str, keep: u64) -> PathBuf {
        let p = self.0.join(name);
        let mut f = fs::File::create(&p).unwrap();
        let block = vec![b'x'; 4096];
        loop {
            let free = self.free();
            if free <= keep {
                break;
            }
            let n = ((free - keep) as usize).min(block.len());
            if f.write_all(&block[..n]).is_err() {
                break;
            }
        }
        let _ = f.flush();
        p
    }

    fn free(&self) -> u64 {
        // SAFETY: statvfs writes only into the struct passed in; the path is NUL-terminated.
        unsafe {
            let mut s: libc::statvfs = std::mem::zeroed();
            let c = std::ffi::CString::new(self.0.as_os_str().as_bytes()).unwrap();
            if libc::statvfs(c.as_ptr(), &mut s) != 0 {
                return 0;
            }
            s.f_bavail as u64 * s.f_frsize as u64
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Every line of every output file parses as JSON (no torn line anywhere).
fn torn_lines(dir: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return bad;
    };
    for e in rd.flatten() {
        if e.path().extension().is_some_and(|x| x != "ndjson") || e.path().extension().is_none() {
            continue;
        }
        let bytes = fs::read(e.path()).unwrap();
        if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
            bad.push(format!(
                "{}: does not end with a newline",
                e.path().display()
            ));
        }
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if serde_json::from_slice::<Value>(line).is_err() {
                bad.push(String::from_utf8_lossy(&line[..line.len().min(80)]).to_string());
            }
        }
    }
    bad
}

// ---------------------------------------------------------------------------------------
// 1. Identical headers: two files whose first 1,100 bytes are the same are two files.
// ---------------------------------------------------------------------------------------

/// 1,100 bytes of CSV header (11 lines of 100 bytes), the same in every file.
fn csv_header() -> Vec<String> {
    (0..11)
        .map(|i| format!("# header {i:02} {}", "c".repeat(100 - 13)))
        .collect()
}

fn header_count(ev: &[Value]) -> usize {
    ev.iter()
        .filter(|e| e["message"].as_str().unwrap_or("").starts_with("# header"))
        .count()
}

#[test]
fn identical_headers_once_ships_both_files() {
    let w = Workspace::new();
    for name in ["a", "b"] {
        let p = w.logs().join(format!("{name}.csv"));
        append(&p, &csv_header());
        append(&p, &seq_lines(name, 0..50));
    }
    let cfg = w.config(&input(&w, "csv", "*.csv", ""));
    let out = w.run_once(&cfg);
    let ev = w.events();
    assert_eq!(assert_complete(seqs(&ev, "a "), 50, "a.csv"), 0);
    assert_eq!(assert_complete(seqs(&ev, "b "), 50, "b.csv"), 0);
    assert_eq!(header_count(&ev), 22, "both headers shipped");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("same fingerprint"),
        "the collision is logged: {err}"
    );
    // A second run ships nothing again: each file resumes from its own cursor.
    append(&w.logs().join("a.csv"), &seq_lines("a", 50..60));
    append(&w.logs().join("b.csv"), &seq_lines("b", 50..70));
    w.run_once(&cfg);
    let ev = w.events();
    assert_eq!(assert_complete(seqs(&ev, "a "), 60, "a.csv"), 0);
    assert_eq!(assert_complete(seqs(&ev, "b "), 70, "b.csv"), 0);
    assert_eq!(header_count(&ev), 22);
}

#[test]
fn identical_headers_live_ships_both_files() {
    let w = Workspace::new();
    let cfg = w.config(&input(&w, "csv", "*.csv", ""));
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    let a = w.logs().join("a.csv");
    append(&a, &csv_header());
    append(&a, &seq_lines("a", 0..20));
    wait_until(&w, 20, |ev| seqs(ev, "a ").len() >= 20);
    // b.csv starts as an exact copy of a.csv's first bytes (only the header), then diverges.
    let b = w.logs().join("b.csv");
    append(&b, &csv_header());
    std::thread::sleep(Duration::from_millis(300));
    append(&b, &seq_lines("b", 0..20));
    for i in 20..40 {
        append(&a, &seq_lines("a", i..i + 1));
        append(&b, &seq_lines("b", i..i + 1));
    }
    let ev = wait_until(&w, 30, |ev| {
        unique(seqs(ev, "a ")) >= 40 && unique(seqs(ev, "b ")) >= 40 && header_count(ev) >= 22
    });
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert_eq!(assert_complete(seqs(&ev, "a "), 40, "a.csv"), 0, "{log}");
    assert_eq!(assert_complete(seqs(&ev, "b "), 40, "b.csv"), 0, "{log}");
    assert_eq!(header_count(&w.events()), 22, "each header once: {log}");
    assert!(log.contains("same fingerprint"), "{log}");
}

/// Rename rotation of a file with a header: the new file starts with the same bytes as the
/// renamed one, which is still there (and still matched). Both are read in full, once.
#[test]
fn identical_headers_rename_rotation_reads_old_and_new() {
    let w = Workspace::new();
    let cfg = w.config(&input(&w, "csv", "r.csv*", ""));
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    let live = w.logs().join("r.csv");
    let mut n = 0;
    for gen in 0..3 {
        append(&live, &csv_header());
        for _ in 0..4 {
            append(&live, &seq_lines("r", n..n + 25));
            n += 25;
            std::thread::sleep(Duration::from_millis(100));
        }
        fs::rename(&live, w.logs().join(format!("r.csv.{gen}"))).unwrap();
    }
    let want = n;
    let ev = wait_until(&w, 30, |ev| {
        unique(seqs(ev, "r ")) >= want && header_count(ev) >= 33
    });
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert_eq!(
        assert_complete(seqs(&ev, "r "), n, "rotated csv"),
        0,
        "{log}"
    );
    assert_eq!(
        header_count(&w.events()),
        33,
        "each generation's header once: {log}"
    );
}

/// Rename rotation out of the globs: the renamed file is drained and closed, then a new
/// file with the same header appears at the path. Same first bytes, other content: it is
/// read from its start, not from the old file's cursor (which would land mid-line).
#[test]
fn identical_headers_new_file_after_the_old_one_left_the_globs() {
    let w = Workspace::new();
    let cfg = w.config(&input(&w, "csv", "r.csv", ""));
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    let live = w.logs().join("r.csv");
    append(&live, &csv_header());
    append(&live, &seq_lines("old", 0..100));
    wait_until(&w, 20, |ev| unique(seqs(ev, "old")) >= 100);
    fs::rename(&live, w.logs().join("r.old")).unwrap();
    // Long enough for the old file to be drained and closed as removed.
    std::thread::sleep(Duration::from_millis(1500));
    append(&live, &csv_header());
    append(&live, &seq_lines("new", 0..150));
    let ev = wait_until(&w, 20, |ev| {
        unique(seqs(ev, "new")) >= 150 && header_count(ev) >= 22
    });
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert_eq!(assert_complete(seqs(&ev, "old"), 100, "old"), 0);
    assert_eq!(assert_complete(seqs(&ev, "new"), 150, "new"), 0, "{log}");
    let fragments: Vec<&str> = ev
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| {
            !m.starts_with("old seq=") && !m.starts_with("new seq=") && !m.starts_with("# header")
        })
        .collect();
    assert!(fragments.is_empty(), "{fragments:?}");
    assert_eq!(header_count(&ev), 22, "{log}");
}

// ---------------------------------------------------------------------------------------
// 2. Truncate and rewrite faster than a scan.
// ---------------------------------------------------------------------------------------

fn rewrite_case(grow: bool) {
    let w = Workspace::new();
    let log = w.logs().join("t.log");
    let cfg = w.config(&input(&w, "t", "t.log", ""));
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    let gens = 6;
    let mut total = 0;
    for g in 0..gens {
        let n = if grow { 2000 + 300 * g } else { 2000 };
        // Fixed-width lines: without `grow`, every generation has exactly the same size.
        let mut body = String::new();
        for i in total..total + n {
            body.push_str(&format!(
                "t seq={i:07} gen={g:02} the same width every time\n"
            ));
        }
        total += n;
        let mut f = fs::File::create(&log).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        drop(f);
        std::thread::sleep(Duration::from_millis(800));
    }
    let ev = wait_until(&w, 30, |ev| unique(seqs(ev, "t ")) >= total);
    let (ok, text) = agent.stop();
    assert!(ok, "{text}");
    let fragments: Vec<&str> = ev
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| !m.starts_with("t seq="))
        .collect();
    assert!(fragments.is_empty(), "mid-line fragments: {fragments:?}");
    assert_complete(seqs(&ev, "t "), total, "truncated and rewritten");
}

#[test]
fn truncate_and_rewrite_same_size_faster_than_a_scan() {
    rewrite_case(false);
}

#[test]
fn truncate_and_rewrite_growing_faster_than_a_scan() {
    rewrite_case(true);
}

// ---------------------------------------------------------------------------------------
// 3. File names that are not UTF-8; control bytes in `oxibeat registry`.
// ---------------------------------------------------------------------------------------

#[test]
fn non_utf8_file_names_are_read_and_registry_escapes_names() {
    let w = Workspace::new();
    let latin1 = w.logs().join(std::ffi::OsStr::from_bytes(b"caf\xe9.log"));
    append(&latin1, &seq_lines("latin1", 0..30));
    let control = w
        .logs()
        .join(std::ffi::OsStr::from_bytes(b"evil\x1b[31m\nname.log"));
    append(&control, &seq_lines("control", 0..5));
    let cfg = w.config(&input(&w, "names", "*.log", ""));
    w.run_once(&cfg);
    let ev = w.events();
    assert_eq!(assert_complete(seqs(&ev, "latin1"), 30, "caf\\xe9.log"), 0);
    assert_eq!(assert_complete(seqs(&ev, "control"), 5, "control bytes"), 0);
    let e = ev
        .iter()
        .find(|e| e["message"].as_str().unwrap().starts_with("latin1"))
        .unwrap();
    let shown = e["log"]["file"]["path"].as_str().unwrap();
    assert!(shown.ends_with("caf\u{fffd}.log"), "{shown}");
    // A second run resumes: nothing is sent twice.
    w.run_once(&cfg);
    assert_eq!(w.events().len(), 35);
    let out = Command::new(bin())
        .args(["registry", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = out.stdout;
    assert!(
        !text.contains(&0x1b),
        "raw ESC printed: {}",
        String::from_utf8_lossy(&text)
    );
    let s = String::from_utf8(text).expect("registry output is UTF-8");
    assert_eq!(s.lines().count(), 2, "one line per file: {s}");
    // The registry keeps Filebeat's string form of the name (lossy UTF-8).
    assert!(s.contains("caf\u{fffd}.log"), "{s}");
    assert!(s.contains("evil\\x1b[31m\\nname.log"), "{s}");
}

// ---------------------------------------------------------------------------------------
// 4. Permission flip: an unreadable file keeps its cursor.
// ---------------------------------------------------------------------------------------

#[test]
fn permission_flip_keeps_the_cursor() {
    if !is_root() {
        return cannot_run("needs root to run the agent as nobody");
    }
    let w = Workspace::new();
    let log = w.logs().join("flip.log");
    append(&log, &seq_lines("flip", 0..3000));
    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = w.config(&input(
        &w,
        "flip",
        "*.log",
        "prospector.scanner.check_interval = \"200ms\"",
    ));
    let mut agent = spawn_as_nobody(&w, &cfg);
    wait_until(&w, 20, |ev| ev.len() >= 3000);
    let mut n = 3000;
    for _ in 0..3 {
        fs::set_permissions(&log, fs::Permissions::from_mode(0o000)).unwrap();
        append(&log, &seq_lines("flip", n..n + 500));
        n += 500;
        std::thread::sleep(Duration::from_millis(1500));
        fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
        let want = n;
        wait_until(&w, 20, |ev| unique(seqs(ev, "flip")) >= want);
    }
    let (ok, text) = agent.stop();
    assert!(ok, "{text}");
    let dups = assert_complete(seqs(&w.events(), "flip"), n, "permission flips");
    assert_eq!(dups, 0, "re-read after a permission flip: {text}");
}

// ---------------------------------------------------------------------------------------
// 5. copytruncate onto the same rotated name, matched by `*.log*`.
// ---------------------------------------------------------------------------------------

#[test]
fn copytruncate_onto_the_same_copy_with_wide_glob() {
    let w = Workspace::new();
    let log = w.logs().join("a.log");
    let copy = w.logs().join("a.log.1");
    let cfg = w.config(&input(&w, "ct", "a.log*", ""));
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    let n = 12_000;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let started = Instant::now();
    for i in 0..n {
        writeln!(f, "ct seq={i} payload of a copytruncate rotation").unwrap();
        if i % 3000 == 2999 {
            // logrotate's copytruncate with the copy written over the previous one (its inode).
            fs::copy(&log, &copy).unwrap();
            f.set_len(0).unwrap();
        }
        // About 2,000 lines per second.
        let due = Duration::from_micros(500 * i as u64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    drop(f);
    let ev = wait_until(&w, 30, |ev| unique(seqs(ev, "ct ")) >= n);
    let (ok, text) = agent.stop();
    assert!(ok, "{text}");
    let fragments: Vec<String> = ev
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| !m.starts_with("ct seq=") || !m.ends_with("rotation"))
        .map(str::to_string)
        .collect();
    assert!(
        fragments.is_empty(),
        "fragments read from mid-line offsets: {fragments:?}"
    );
    let dups = assert_complete(seqs(&ev, "ct "), n, "copytruncate");
    assert_eq!(dups, 0, "the copy is read only past what was shipped");
}

// ---------------------------------------------------------------------------------------
// 6. path.data full, then freed.
// ---------------------------------------------------------------------------------------

#[test]
fn path_data_full_then_freed_keeps_every_state() {
    let w = Workspace::new();
    let fs_ = match Tmpfs::mount(&w.data(), "1m") {
        Ok(t) => t,
        Err(e) => {
            return cannot_run(&format!(
                "cannot mount a tmpfs here ({e}); registry::tests::failed_writes_keep_every_state cover this only with injected errors"
            ));
        }
    };
    for i in 0..20 {
        append(
            &w.logs().join(format!("f{i:02}.log")),
            &seq_lines(&format!("full{i:02}"), 0..500),
        );
    }
    let text = w
        .config(&input(
            &w,
            "full",
            "*.log",
            "prospector.scanner.check_interval = \"200ms\"",
        ))
        .to_path_buf();
    // A slow first flush, so the 20 new states are first written while the disk is full.
    let body = fs::read_to_string(&text)
        .unwrap()
        .replace("flush = \"100ms\"", "flush = \"1500ms\"")
        + "[http]\nenabled = true\nhost = \"127.0.0.1\"\nport = PORT\n";
    let port = free_port();
    fs::write(&text, body.replace("PORT", &port.to_string())).unwrap();
    let mut agent = w.spawn(&text);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent_log(&agent).contains("oxibeat starting") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let filler = fs_.fill("filler", 0);
    wait_until(&w, 20, |ev| ev.len() >= 10_000);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent_log(&agent).contains("failed to write the registry") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = http_get(port, "/stats");
    assert_eq!(
        stats["registrar"]["persistence"]["failing"], 1,
        "/stats says persistence fails: {stats}"
    );
    fs::remove_file(&filler).unwrap();
    append(&w.logs().join("f00.log"), &seq_lines("full00", 500..600));
    append(&w.logs().join("f01.log"), &seq_lines("full01", 500..600));
    wait_until(&w, 20, |ev| ev.len() >= 10_200);
    // Two flushes after the space came back, then a crash.
    std::thread::sleep(Duration::from_millis(3500));
    let stats = http_get(port, "/stats");
    assert_eq!(stats["registrar"]["persistence"]["failing"], 0, "{stats}");
    agent.kill9();
    let before = w.events().len();
    w.run_once(&text);
    let resent = w.events().len() - before;
    assert_eq!(resent, 0, "lines sent again after the restart");
    for i in 0..20 {
        let n = if i < 2 { 600 } else { 500 };
        assert_complete(seqs(&w.events(), &format!("full{i:02}")), n, "full disk");
    }
}

fn http_get(port: u16, path: &str) -> Value {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let json = body.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(json).unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------
// 7. A full output disk: whole lines only.
// ---------------------------------------------------------------------------------------

#[test]
fn full_output_disk_leaves_no_torn_line_and_delivers_after() {
    let w = Workspace::new();
    let out_fs = match Tmpfs::mount(&w.out(), "1m") {
        Ok(t) => t,
        Err(e) => {
            return cannot_run(&format!(
                "cannot mount a tmpfs here ({e}) to fill the output disk"
            ));
        }
    };
    let filler = out_fs.fill("filler", 300 << 10);
    let n = 1500;
    append(&w.logs().join("o.log"), &seq_lines("out", 0..n));
    let cfg = w.config(&input(&w, "o", "*.log", ""));
    let mut agent = w.spawn(&cfg);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent_log(&agent).contains("writing the output file failed") && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent_log(&agent).contains("writing the output file failed"));
    let torn = torn_lines(&w.out());
    assert!(
        torn.is_empty(),
        "torn lines while the disk is full: {torn:?}"
    );
    fs::remove_file(&filler).unwrap();
    let ev = wait_until(&w, 30, |ev| unique(seqs(ev, "out")) >= n);
    let (ok, text) = agent.stop();
    assert!(ok, "{text}");
    assert_eq!(assert_complete(seqs(&ev, "out"), n, "full output disk"), 0);
    assert!(torn_lines(&w.out()).is_empty());
}

#[test]
fn torn_output_tail_from_a_crash_is_cut_on_restart() {
    let w = Workspace::new();
    append(&w.logs().join("c.log"), &seq_lines("cut", 0..10));
    let cfg = w.config(&input(&w, "c", "*.log", ""));
    w.run_once(&cfg);
    // As a crash in the middle of a write leaves it.
    let file = fs::read_dir(w.out())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"{\"@timestamp\":\"2026-")
        .unwrap();
    append(&w.logs().join("c.log"), &seq_lines("cut", 10..20));
    w.run_once(&cfg);
    assert!(
        torn_lines(&w.out()).is_empty(),
        "{:?}",
        torn_lines(&w.out())
    );
    assert_eq!(assert_complete(seqs(&w.events(), "cut"), 20, "cut"), 0);
}

// ---------------------------------------------------------------------------------------
// 8. Symlink loops under `**`; SIGTERM within shutdown_timeout.
// ---------------------------------------------------------------------------------------

/// SIGTERM, then the process must be gone within `within`.
fn stop_within(agent: &mut Agent, within: Duration) -> (bool, String) {
    let mut child = agent.child.take().unwrap();
    // SAFETY: kill on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.success(), agent_log(agent));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running {within:?} after SIGTERM: {}",
                agent_log(agent)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn symlink_loop_case(symlinks: bool) {
    let w = Workspace::new();
    let sub = w.logs().join("L/sub");
    fs::create_dir_all(&sub).unwrap();
    std::os::unix::fs::symlink(".", sub.join("l1")).unwrap();
    std::os::unix::fs::symlink(".", sub.join("l2")).unwrap();
    append(&sub.join("a.log"), &seq_lines("loop", 0..50));
    let cfg = w.config(&input(
        &w,
        "loop",
        "L/**/*.log",
        &format!("prospector.scanner.symlinks = {symlinks}\nprospector.scanner.check_interval = \"300ms\""),
    ));
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, format!("shutdown_timeout = \"2s\"\n{text}")).unwrap();
    let mut agent = w.spawn(&cfg);
    let ev = wait_until(&w, 15, |ev| unique(seqs(ev, "loop")) >= 50);
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(agent.pid() as u32);
    let (ok, text) = stop_within(&mut agent, Duration::from_secs(4));
    assert!(ok, "{text}");
    assert_eq!(
        assert_complete(seqs(&ev, "loop"), 50, "symlink loop"),
        0,
        "{text}"
    );
    assert!(
        rss < 100 * 1024,
        "RSS {rss} KiB after scans of a symlink loop"
    );
    assert_eq!(w.events().len(), 50, "one path per file, not one per loop");
}

#[test]
fn symlink_loops_under_double_star_end_and_sigterm_stops() {
    symlink_loop_case(true);
}

#[test]
fn symlink_loops_with_symlinks_false() {
    symlink_loop_case(false);
}

// ---------------------------------------------------------------------------------------
// 9. Deep keys: no recursion on input.
// ---------------------------------------------------------------------------------------

#[test]
fn deep_dotted_key_with_expand_keys_does_not_crash() {
    let w = Workspace::new();
    let key = vec!["k"; 20_000].join(".");
    let line = format!("{{\"{key}\": 1, \"ok\": \"yes\"}}");
    append(
        &w.logs().join("deep.json"),
        &[line, "{\"a.b\": 2}".to_string()],
    );
    let cfg = w.config(&format!(
        "{}[[inputs.parsers]]\nndjson = {{ target = \"\", expand_keys = true }}\n",
        input(&w, "deep", "*.json", "")
    ));
    let out = Command::new(bin())
        .args(["run", "--once", "-e", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rc {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = w.events();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["ok"], "yes");
    assert!(
        ev[0]["log"]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "keys_too_deep")),
        "flagged: {}",
        serde_json::to_string(&ev[0]["log"]).unwrap()
    );
    assert_eq!(ev[1]["a"]["b"], 2, "ordinary keys still expand");
}

#[test]
fn override_with_fifty_thousand_segments_is_an_error_not_a_crash() {
    let w = Workspace::new();
    let cfg = w.config(&input(&w, "x", "*.log", ""));
    let key = vec!["a"; 50_000].join(".");
    let out = Command::new(bin())
        .args(["test", "config", "-c"])
        .arg(&cfg)
        .arg("-E")
        .arg(format!("{key}=1"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a clear error, not an abort: {err}"
    );
    assert!(err.contains("segments"), "{err}");
}

// ---------------------------------------------------------------------------------------
// 10. Unlistable directory: removed files do not stay open.
// ---------------------------------------------------------------------------------------

fn deleted_fds(pid: i32) -> Vec<String> {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with("(deleted)"))
        .collect()
}

#[test]
fn removed_file_in_unlistable_directory_is_closed_and_forgotten() {
    if !is_root() {
        return cannot_run("needs root to run the agent as nobody");
    }
    let w = Workspace::new();
    let dir = w.logs().join("d");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let a = dir.join("a.log");
    append(&a, &seq_lines("hidden", 0..20));
    fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = w.config(&input(
        &w,
        "hid",
        "**/*.log",
        "prospector.scanner.check_interval = \"200ms\"",
    ));
    let mut agent = spawn_as_nobody(&w, &cfg);
    wait_until(&w, 20, |ev| ev.len() >= 20);
    // The agent (nobody) can no longer list or search the directory.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    fs::remove_file(&a).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !deleted_fds(agent.pid()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = deleted_fds(agent.pid());
    std::thread::sleep(Duration::from_millis(500));
    let (ok, text) = agent.stop();
    assert!(ok, "{text}");
    assert!(
        left.is_empty(),
        "deleted files still open: {left:?}\n{text}"
    );
    let reg = Command::new(bin())
        .args(["registry", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&reg.stdout);
    assert!(
        !listing.contains("a.log"),
        "a removed file stays in the registry: {listing}"
    );
}

// ---------------------------------------------------------------------------------------
// 11. Bounded reads of the config and the registry.
// ---------------------------------------------------------------------------------------

/// Run with a deadline: a read of /dev/zero must fail fast, not eat the memory.
fn run_bounded(args: &[&str], cfg: &Path, secs: u64) -> (Option<i32>, String) {
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (
                st.code(),
                fs::read_to_string(err.path()).unwrap_or_default(),
            );
        }
        if Instant::now() > deadline {
            let rss = rss_kib(child.id());
            let _ = child.kill();
            let _ = child.wait();
            panic!("oxibeat {args:?} still running after {secs}s (RSS {rss} KiB)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_from_dev_zero_is_refused() {
    let (code, err) = run_bounded(&["test", "config"], Path::new("/dev/zero"), 10);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("not a regular file"),
        "{err}"
    );
    let w = Workspace::new();
    let big = w.path().join("big.toml");
    let f = fs::File::create(&big).unwrap();
    f.set_len(200 << 20).unwrap();
    let (code, err) = run_bounded(&["test", "config"], &big, 10);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("MiB"), "{err}");
}

#[test]
fn registry_naming_dev_zero_is_refused() {
    let w = Workspace::new();
    append(&w.logs().join("r.log"), &seq_lines("r", 0..5));
    let cfg = w.config(&input(&w, "r", "*.log", ""));
    w.run_once(&cfg);
    let reg = w.data().join("registry/filebeat");
    fs::write(reg.join("active.dat"), "/dev/zero").unwrap();
    let (code, err) = run_bounded(&["registry"], &cfg, 10);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("not a regular file"),
        "{err}"
    );
    let (code, err) = run_bounded(&["run", "--once", "-e"], &cfg, 10);
    assert_eq!(code, Some(1), "{err}");
    // log.json replaced by a link to /dev/zero.
    fs::remove_file(reg.join("active.dat")).unwrap();
    fs::remove_file(reg.join("log.json")).ok();
    std::os::unix::fs::symlink("/dev/zero", reg.join("log.json")).unwrap();
    let (code, err) = run_bounded(&["registry"], &cfg, 10);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

// ---------------------------------------------------------------------------------------
// 12 and 13. Secrets: librdkafka passthrough masked, numeric passwords are strings.
// ---------------------------------------------------------------------------------------

fn kafka_cfg(w: &Workspace, extra: &str) -> PathBuf {
    w.config_with(
        &input(w, "k", "*.log", ""),
        &format!("[output.kafka]\nhosts = [\"127.0.0.1:1\"]\n{extra}\n"),
    )
}

fn cli(args: &[&str], cfg: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn export_config_masks_librdkafka_secrets() {
    let w = Workspace::new();
    let cfg = kafka_cfg(
        &w,
        "[output.kafka.librdkafka]\n\"sasl.password\" = \"hunter5\"\n\"ssl.key.password\" = \"hunter6\"\n\"ssl.keystore.password\" = 70707070\n\"sasl.oauthbearer.client.secret\" = \"hunter8\"\n\"ssl.key.pem\" = \"hunter9\"\nsasl.oauthbearer.config = \"principal=me secret=hunter10\"\nssl.keystore.location = \"/etc/oxibeat/ks.p12\"\n\"ssl.key.location\" = \"/etc/oxibeat/key.pem\"\n\"sasl.oauthbearer.token.endpoint.url\" = \"https://idp.example/token\"\n\"linger.ms\" = 7\n",
    );
    let (ok, out, err) = cli(&["export", "config"], &cfg, &[]);
    assert!(ok, "{err}");
    for s in ["hunter", "70707070"] {
        assert!(!out.contains(s), "{s} shown:\n{out}");
    }
    for public in [
        "/etc/oxibeat/ks.p12",
        "/etc/oxibeat/key.pem",
        "https://idp.example/token",
        "linger.ms",
    ] {
        assert!(out.contains(public), "{public} hidden:\n{out}");
    }
}

#[test]
fn librdkafka_errors_do_not_echo_secret_values() {
    let w = Workspace::new();
    // librdkafka refuses these properties; its error must not carry their values.
    for prop in [
        "\"ssl.key.password\" = [\"hunter11\"]",
        "\"my.private.token\" = \"hunter12\"",
        "\"sasl.password\" = { nested = \"hunter13\" }",
    ] {
        let cfg = kafka_cfg(&w, &format!("[output.kafka.librdkafka]\n{prop}\n"));
        for args in [&["test", "output"][..], &["run", "--once", "-e"][..]] {
            let (_, out, err) = cli(args, &cfg, &[]);
            assert!(
                !out.contains("hunter") && !err.contains("hunter"),
                "{args:?} {prop}: {out}{err}"
            );
        }
    }
}

#[test]
fn numeric_passwords_load_and_are_never_echoed() {
    let w = Workspace::new();
    let cfg = kafka_cfg(
        &w,
        "[output.kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"u\"\npassword = 12345678\n",
    );
    let (ok, _, err) = cli(&["test", "config"], &cfg, &[]);
    assert!(ok, "password = 12345678 loads: {err}");
    let (ok, _, err) = cli(
        &["test", "config"],
        &cfg,
        &["-E", "output.kafka.sasl.password=20261201"],
    );
    assert!(ok, "-E output.kafka.sasl.password=20261201 loads: {err}");
    let (ok, out, err) = cli(
        &["export", "config"],
        &cfg,
        &["-E", "output.kafka.sasl.password=20261201"],
    );
    assert!(ok, "{err}");
    assert!(
        !out.contains("20261201") && !out.contains("12345678"),
        "{out}"
    );
    // Wrong shapes and broken syntax on a secret line: the error names the key, not the value.
    for (bad, value) in [
        ("password = [20261201]", "20261201"),
        ("password = { a = \"hunter14\" }", "hunter14"),
        ("password = \"hunter15", "hunter15"),
        ("password = 'hunter16\"", "hunter16"),
    ] {
        let cfg = kafka_cfg(
            &w,
            &format!("[output.kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\n{bad}\n"),
        );
        let (ok, out, err) = cli(&["test", "config"], &cfg, &[]);
        assert!(!ok, "{bad} must fail");
        assert!(
            !err.contains(value) && !out.contains(value),
            "{bad}: the value is echoed: {err}"
        );
        assert!(err.contains("password"), "{bad}: names the key: {err}");
    }
    for bad in ["[20261201]", "{a=20261201}"] {
        let (ok, _, err) = cli(
            &["test", "config"],
            &cfg,
            &["-E", &format!("output.kafka.sasl.password={bad}")],
        );
        assert!(!ok && !err.contains("20261201"), "-E {bad}: {err}");
    }
}

/// Secrets given only through `[output.kafka.librdkafka]` (numeric, and as an unquoted dotted
/// key, i.e. a nested table) against a real SASL listener of Apache Kafka, with librdkafka's
/// `debug = "all"` forwarded to our debug log: a wrong password fails `test output` and the
/// running agent with the broker's authentication error, the right one delivers, and the
/// value appears nowhere (errors, our logs, librdkafka's own lines, its configuration dump).
#[test]
fn librdkafka_passthrough_secrets_never_reach_logs_with_a_real_broker() {
    use support::kafka::{self, Listener, Shared, ALICE};
    let broker = kafka::shared(Shared::Secure);
    broker.create_topic("rel-secrets", 1, &[]);
    let w = Workspace::new();
    append(
        &w.logs().join("app.log"),
        &(0..20).map(|i| format!("sec seq={i}")).collect::<Vec<_>>(),
    );
    let cfg_for = |password: &str| {
        let cfg = w.config_with(
            &input(&w, "k", "*.log", ""),
            &format!(
                "[output.kafka]\nhosts = [{:?}]\ntopic = \"rel-secrets\"\nbackoff.init = \"100ms\"\nbackoff.max = \"1s\"\n\
                 [output.kafka.librdkafka]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\
                 \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = {:?}\n\
                 sasl.password = {password}\ndebug = \"all\"\n",
                broker.addr(Listener::SaslPlaintext),
                ALICE.0
            ),
        );
        let text = fs::read_to_string(&cfg).unwrap();
        let text = text.replace("level = \"info\"", "level = \"debug\"");
        fs::write(&cfg, text).unwrap();
        cfg
    };

    // Wrong, numeric: `test output` fails on authentication and never shows it.
    let wrong = "20261201";
    let cfg = cfg_for(wrong);
    let (ok, out, err) = cli(&["test", "output"], &cfg, &[]);
    assert!(!ok, "a wrong password must fail: {out}{err}");
    assert!(
        (out.clone() + &err)
            .to_lowercase()
            .contains("authentication"),
        "names the cause: {out}{err}"
    );
    assert!(
        !out.contains(wrong) && !err.contains(wrong),
        "the password is shown: {out}{err}"
    );
    // The running agent: says so, logs librdkafka's debug lines, never the value.
    let mut agent = w.spawn(&cfg);
    std::thread::sleep(Duration::from_secs(4));
    let (ok, log) = agent.stop();
    assert!(ok, "{log}");
    assert!(log.contains("Authentication failed"), "{log}");
    assert!(
        log.contains("librdkafka: "),
        "librdkafka's lines are forwarded: {log}"
    );
    assert!(!log.contains(wrong), "the password is logged");

    // Right, as a string: delivered, and librdkafka's full debug output does not show it.
    let cfg = cfg_for(&format!("{:?}", ALICE.1));
    let run = w.run_once(&cfg);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("librdkafka: "), "{stderr}");
    assert!(!stderr.contains(ALICE.1), "the password is logged");
    let (ok, out, err) = cli(&["export", "config"], &cfg, &[]);
    assert!(ok, "{err}");
    assert!(!out.contains(ALICE.1) && !out.contains(wrong), "{out}");
}

/// Bytes in the output files so far.
fn output_bytes(w: &Workspace) -> u64 {
    std::fs::read_dir(w.out())
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// With `harvester_limit = 1`, a harvester reading a big file gives its slot to a file that
/// waits (after a one-second slice) with bytes still unread. It must come back for them even
/// though the big file is never written again: the file is not idle at a size it never read
/// to. (Before, the harvester's exit marked the file idle at its current size, and the rest of
/// it waited for a write that never came; a line appended just as a harvester closed at EOF
/// was stranded the same way.)
#[test]
fn a_file_yielded_with_unread_bytes_is_finished_without_another_write() {
    let w = Workspace::new();
    let big = w.logs().join("big.log");
    let n = 400_000;
    for start in (0..n).step_by(50_000) {
        append(&big, &seq_lines("big", start..start + 50_000));
    }
    let cfg = w.config(&input(&w, "yield", "*.log", "harvester_limit = 1"));
    let mut agent = w.spawn(&cfg);
    let deadline = Instant::now() + Duration::from_secs(30);
    while output_bytes(&w) == 0 {
        assert!(Instant::now() < deadline, "nothing read from the big file");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The big file is being read: a second file now waits for the only slot.
    append(&w.logs().join("small.log"), &seq_lines("small", 0..10));
    // Until the output stops growing for 3 s (done, or stuck).
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut size, mut since) = (0, Instant::now());
    while since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
        let now = output_bytes(&w);
        if now != size {
            (size, since) = (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, text) = agent.stop();
    assert!(ok, "{text}");
    // The seq of every line, without parsing 400,000 events as JSON (slow in a debug build):
    // `"message":"<file> seq=<n> …`.
    let mut found: Vec<(bool, usize)> = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(w.out())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        let bytes = fs::read(&f).unwrap();
        for (tag, small) in [
            (&b"\"message\":\"big seq="[..], false),
            (b"\"message\":\"small seq=", true),
        ] {
            for at in memchr::memmem::find_iter(&bytes, tag) {
                let digits = &bytes[at + tag.len()..];
                let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(0);
                let seq = std::str::from_utf8(&digits[..end])
                    .unwrap()
                    .parse()
                    .unwrap();
                found.push((small, seq));
            }
        }
    }
    let seqs_of = |small: bool| -> Vec<usize> {
        found
            .iter()
            .filter(|(s, _)| *s == small)
            .map(|(_, q)| *q)
            .collect()
    };
    assert_eq!(assert_complete(seqs_of(true), 10, "small file"), 0);
    assert_eq!(assert_complete(seqs_of(false), n, "big file"), 0);
    // The path under test was taken: the big file was left for the small one mid-read. (The
    // events of both files are in one output file, in the order they were read.)
    let bytes = fs::read_dir(w.out())
        .unwrap()
        .flatten()
        .map(|e| fs::read(e.path()).unwrap())
        .find(|b| memchr::memmem::find(b, b"small seq=").is_some())
        .unwrap();
    let first_small = memchr::memmem::find(&bytes, b"\"message\":\"small seq=").unwrap();
    let last_big = memchr::memmem::rfind(&bytes, b"\"message\":\"big seq=").unwrap();
    assert!(
        first_small < last_big,
        "the small file was read only after the whole big one"
    );
}

// ---------------------------------------------------------------------------------------
// Scale: harvesters over the open-file budget take turns.
// ---------------------------------------------------------------------------------------

/// 300 files appended round-robin for a few seconds with room for about 100 harvesters and
/// the default close.on_state_change.inactive (5 minutes): every file keeps being read
/// (before, the files beyond the budget waited for a harvester to be idle for 5 minutes).
#[test]
fn files_over_the_open_file_budget_take_turns() {
    let w = Workspace::new();
    let files = 300;
    let rounds = 20;
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| w.logs().join(format!("rr{i:03}.log")))
        .collect();
    for (i, p) in paths.iter().enumerate() {
        append(p, &[format!("rr{i:03} seq=0 first line")]);
    }
    let cfg = w.config(&input(&w, "rr", "*.log", ""));
    let mut agent = w.spawn_with_nofile(&cfg, 160);
    for r in 1..rounds {
        for (i, p) in paths.iter().enumerate() {
            append(p, &[format!("rr{i:03} seq={r} round robin")]);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let total = files * rounds;
    let ev = wait_until(&w, 40, |ev| ev.len() >= total);
    let (ok, text) = agent.stop();
    assert!(ok, "{text}");
    for i in 0..files {
        let prefix = format!("rr{i:03} ");
        assert_eq!(
            assert_complete(seqs(&ev, &prefix), rounds, &prefix),
            0,
            "{}",
            &text[..text.len().min(2000)]
        );
    }
}
