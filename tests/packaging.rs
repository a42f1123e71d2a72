//! The service unit and the packages: `systemd-analyze verify` and `security` on the unit
//! as shipped, a `.deb` (cargo-deb) installed with dpkg, checked and purged, and an `.rpm`
//! (cargo-generate-rpm) installed with rpm and erased, on this machine.
//!
//! Needs: systemd-analyze (systemd), cargo-deb 3.8.0 and cargo-generate-rpm 0.21.1
//! (`cargo install`, done by tests/run.sh), dpkg, rpm (apt package `rpm`), and root for the
//! install tests. Missing tools fail the tests with the way to install them; a package of
//! oxibeat already installed here makes the install tests refuse to touch it.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// dpkg and rpm install the same paths: one install test at a time.
static INSTALL: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn unit() -> PathBuf {
    repo().join("packaging/systemd/oxibeat.service")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool(name: &str, how: &str) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([home.join(".cargo/bin")]) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is needed and was not found on PATH or in ~/.cargo/bin; install it with: {how}");
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A root directory with the host's system units, /bin/kill and a stand-in /usr/bin/oxibeat,
/// so `systemd-analyze --root` checks the unit as installed without installing it.
fn analyze_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    for dir in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let dst = units.join(e.file_name());
                if e.file_type().map(|t| t.is_file()).unwrap_or(false) && !dst.exists() {
                    let _ = fs::copy(e.path(), dst);
                }
            }
        }
    }
    fs::copy(unit(), units.join("oxibeat.service")).unwrap();
    for (src, dst) in [
        ("/bin/kill", "bin/kill"),
        (support::bin(), "usr/bin/oxibeat"),
    ] {
        let d = root.path().join(dst);
        fs::create_dir_all(d.parent().unwrap()).unwrap();
        fs::copy(src, &d).unwrap();
    }
    root
}

fn exposure(root: &Path) -> (f64, String) {
    let out = run(
        Command::new(tool("systemd-analyze", "apt-get install systemd"))
            .arg("security")
            .arg("--offline=true")
            .arg(format!("--root={}", root.display()))
            .arg("oxibeat.service"),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let score = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for oxibeat.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    (score, text)
}

#[test]
fn unit_verifies_and_its_exposure_score_is_the_documented_one() {
    let text = fs::read_to_string(unit()).unwrap();
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=oxibeat",
        "AmbientCapabilities=CAP_DAC_READ_SEARCH",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/oxibeat",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=read-only",
        "SystemCallFilter=@system-service",
        "ExecReload=",
    ] {
        assert!(text.contains(want), "the unit lacks {want}");
    }
    let root = analyze_root();
    let out = run(
        Command::new(tool("systemd-analyze", "apt-get install systemd"))
            .arg("verify")
            .arg(format!("--root={}", root.path().display()))
            .arg("/usr/lib/systemd/system/oxibeat.service"),
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );

    let (score, report) = exposure(root.path());
    assert!(score <= 2.0, "exposure {score} got worse:\n{report}");
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure level **{score:.1}**")),
        "README must report the exposure level {score:.1} (systemd-analyze security)"
    );
}

/// Builds the .deb from the test build of the binary (cargo-deb strips it).
fn build_deb(out: &Path) {
    let target = Path::new(support::bin())
        .parent()
        .unwrap()
        .parent()
        .unwrap();
    ok(Command::new(tool(
        "cargo-deb",
        "cargo install cargo-deb --version 3.8.0 --locked",
    ))
    .current_dir(repo())
    .env("CARGO_TARGET_DIR", target)
    .args(["--no-build", "--profile", "dev", "--fast", "-o"])
    .arg(out));
}

fn installed(pkg_query: &mut Command) -> bool {
    run(pkg_query).status.success()
}

fn refuse_if_present() {
    assert!(
        !Path::new("/usr/bin/oxibeat").exists()
            && !installed(Command::new("dpkg").args(["-s", "oxibeat"]))
            && run(Command::new("getent").args(["passwd", "oxibeat"]))
                .stdout
                .is_empty(),
        "oxibeat (or its user) is already installed on this machine; the package tests install \
         and remove it, so they do not touch an existing installation. Remove it first."
    );
}

fn mode(p: &str) -> (u32, u32, u32) {
    let m = fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    (m.permissions().mode() & 0o7777, m.uid(), m.gid())
}

fn user_ids() -> Option<(u32, u32, String)> {
    let out = run(Command::new("getent").args(["passwd", "oxibeat"]));
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let f: Vec<&str> = line.split(':').collect();
    (f.len() == 7).then(|| {
        (
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
            f[6].to_string(),
        )
    })
}

/// Checks every package leaves after install: files, modes, user, unit, a working config.
fn check_installed(what: &str) {
    let (uid, gid, shell) = user_ids().unwrap_or_else(|| panic!("{what}: no oxibeat user"));
    assert!(uid < 1000, "{what}: oxibeat is a system user (uid {uid})");
    assert!(shell.ends_with("nologin"), "{what}: shell {shell}");
    assert_eq!(mode("/usr/bin/oxibeat").0, 0o755);
    assert_eq!(mode("/usr/lib/systemd/system/oxibeat.service").0, 0o644);
    assert_eq!(
        mode("/etc/oxibeat/oxibeat.toml"),
        (0o640, 0, gid),
        "{what}: config root:oxibeat 0640"
    );
    assert_eq!(
        mode("/var/lib/oxibeat"),
        (0o750, uid, gid),
        "{what}: data dir"
    );
    assert_eq!(
        mode("/var/log/oxibeat"),
        (0o750, uid, gid),
        "{what}: log dir"
    );
    let shipped = fs::read_to_string(repo().join("packaging/oxibeat.toml")).unwrap();
    assert_eq!(
        fs::read_to_string("/etc/oxibeat/oxibeat.toml").unwrap(),
        shipped
    );
    // The installed unit verifies against the real root.
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg("/usr/lib/systemd/system/oxibeat.service"));
    assert!(
        out.status.success(),
        "{what}: systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The packaged configuration loads as the service user, and the agent runs once.
    let said = ok(Command::new("runuser").args([
        "-u",
        "oxibeat",
        "--",
        "/usr/bin/oxibeat",
        "test",
        "config",
        "-c",
        "/etc/oxibeat/oxibeat.toml",
    ]));
    assert!(said.contains("Config OK"), "{what}: {said}");
    ok(Command::new("runuser").args([
        "-u",
        "oxibeat",
        "--",
        "/usr/bin/oxibeat",
        "run",
        "--once",
        "-e",
        "-c",
        "/etc/oxibeat/oxibeat.toml",
    ]));
    assert!(Path::new("/var/lib/oxibeat/registry/filebeat/meta.json").exists());
}

/// Removes whatever an interrupted test left.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-P", "oxibeat"]).output();
        let _ = Command::new("rpm")
            .args(["-e", "--nodeps", "oxibeat"])
            .output();
        for p in ["/var/lib/oxibeat", "/var/log/oxibeat", "/etc/oxibeat"] {
            if !Path::new("/usr/bin/oxibeat").exists() {
                let _ = fs::remove_dir_all(p);
            }
        }
    }
}

#[test]
fn deb_installs_runs_and_purges() {
    assert!(
        is_root(),
        "the .deb install test needs root (dpkg -i); CI runs as root"
    );
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    tool("dpkg", "apt-get install dpkg");
    refuse_if_present();
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("oxibeat.deb");
    build_deb(&deb);
    let contents = ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for p in [
        "./usr/bin/oxibeat",
        "./usr/lib/systemd/system/oxibeat.service",
        "./etc/oxibeat/oxibeat.toml",
    ] {
        assert!(contents.contains(p), "{p} not in the .deb:\n{contents}");
    }

    let _cleanup = Cleanup;
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    check_installed("deb");
    let conffiles = ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "oxibeat"]));
    assert!(
        conffiles.contains("/etc/oxibeat/oxibeat.toml"),
        "{conffiles}"
    );

    // Remove: only the configuration is left.
    ok(Command::new("dpkg").args(["-r", "oxibeat"]));
    for gone in [
        "/usr/bin/oxibeat",
        "/usr/lib/systemd/system/oxibeat.service",
        "/var/lib/oxibeat",
        "/var/log/oxibeat",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after remove");
    }
    assert!(
        Path::new("/etc/oxibeat/oxibeat.toml").exists(),
        "config kept on remove"
    );

    // Purge: nothing.
    ok(Command::new("dpkg").args(["-P", "oxibeat"]));
    assert!(
        !Path::new("/etc/oxibeat").exists(),
        "/etc/oxibeat left after purge"
    );
    assert!(user_ids().is_none(), "the oxibeat user is left after purge");
    assert!(
        run(Command::new("getent").args(["group", "oxibeat"]))
            .stdout
            .is_empty(),
        "the oxibeat group is left after purge"
    );
    assert!(!installed(Command::new("dpkg").args(["-s", "oxibeat"])));
}

/// Builds the .rpm from a stripped copy of the test build (cargo-generate-rpm does not
/// strip; a 170 MB debug binary takes a minute and a half to package).
fn build_rpm(out: &Path, scratch: &Path) {
    let fake_target = scratch.join("target");
    fs::create_dir_all(fake_target.join("debug")).unwrap();
    ok(Command::new("strip")
        .arg("-o")
        .arg(fake_target.join("debug/oxibeat"))
        .arg(support::bin()));
    ok(Command::new(tool(
        "cargo-generate-rpm",
        "cargo install cargo-generate-rpm --version 0.21.1 --locked",
    ))
    .current_dir(repo())
    .arg("--target-dir")
    .arg(&fake_target)
    .args(["--profile", "dev", "--payload-compress", "gzip", "-o"])
    .arg(out));
}

#[test]
fn rpm_installs_runs_and_erases() {
    assert!(
        is_root(),
        "the .rpm install test needs root; CI runs as root"
    );
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    tool("rpm", "apt-get install rpm");
    refuse_if_present();
    let dir = tempfile::tempdir().unwrap();
    let rpm = dir.path().join("oxibeat.rpm");
    build_rpm(&rpm, dir.path());
    let files = ok(Command::new("rpm").arg("-qlp").arg(&rpm));
    for p in [
        "/usr/bin/oxibeat",
        "/usr/lib/systemd/system/oxibeat.service",
        "/etc/oxibeat/oxibeat.toml",
    ] {
        assert!(
            files.lines().any(|l| l == p),
            "{p} not in the .rpm:\n{files}"
        );
    }
    let config = ok(Command::new("rpm").arg("-qcp").arg(&rpm));
    assert_eq!(
        config.trim(),
        "/etc/oxibeat/oxibeat.toml",
        "the config is %config"
    );

    let _cleanup = Cleanup;
    // --nodeps: this is Debian, whose libraries rpm's database does not know.
    ok(Command::new("rpm").args(["-i", "--nodeps"]).arg(&rpm));
    check_installed("rpm");
    // Erase: the user, state and program go; rpm keeps a changed config as .rpmsave.
    fs::write("/etc/oxibeat/oxibeat.toml", "# changed\n").unwrap();
    ok(Command::new("rpm").args(["-e", "--nodeps", "oxibeat"]));
    assert!(!Path::new("/usr/bin/oxibeat").exists());
    assert!(!Path::new("/var/lib/oxibeat").exists());
    assert!(user_ids().is_none(), "the oxibeat user is left after erase");
    assert!(Path::new("/etc/oxibeat/oxibeat.toml.rpmsave").exists());
    let _ = fs::remove_dir_all("/etc/oxibeat");
}
