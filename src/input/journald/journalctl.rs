//! Running `journalctl -o export` for one journal source, as Filebeat 8.16+ does (no
//! libsystemd): the arguments that select the entries and where to start, the process, and
//! its stderr.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use super::config::{JournaldConfig, Seek};
use super::fields::journal_name;

/// The system journal, as Filebeat names it in registry keys.
pub const LOCAL_SYSTEM_JOURNAL: &str = "LOCAL_SYSTEM_JOURNAL";

/// An include_matches expression as journalctl wants it: `FIELD=value` with a translated
/// field name (`systemd.unit`) replaced by the journal's (`_SYSTEMD_UNIT`).
pub fn translate_match(m: &str) -> Result<String, String> {
    let parts: Vec<&str> = m.split('=').collect();
    if parts.len() != 2 || parts[0].is_empty() {
        return Err(format!(
            "invalid match {m:?}: write FIELD=value (e.g. _SYSTEMD_UNIT=nginx.service or systemd.unit=nginx.service), or \"+\" between groups to OR them"
        ));
    }
    let (name, value) = (parts[0], parts[1]);
    if let Some(j) = journal_name(name) {
        return Ok(format!("{j}={value}"));
    }
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(format!(
            "unknown field {name:?} in match {m:?}: use a journal field name (upper case, such as _SYSTEMD_UNIT) or a translated one (such as systemd.unit)"
        ));
    }
    Ok(m.to_string())
}

/// Where journalctl starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After this cursor (a saved or last-read position).
    After(String),
    Head,
    Tail,
    /// Entries since this Unix time (seconds).
    Since(i64),
}

impl Start {
    /// Where to start without a cursor, by `seek` (and `cursor_seek_fallback`).
    pub fn without_cursor(cfg: &JournaldConfig) -> Start {
        let mode = match cfg.seek {
            Seek::Cursor => cfg.cursor_seek_fallback,
            m => m,
        };
        match mode {
            Seek::Tail => Start::Tail,
            Seek::Since => {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs() as i64;
                let off = cfg
                    .since
                    .map(|s| (s.negative, s.duration))
                    .unwrap_or_default();
                let secs = off.1.as_secs() as i64;
                Start::Since(if off.0 { now - secs } else { now + secs })
            }
            Seek::Head | Seek::Cursor => Start::Head,
        }
    }
}

/// The arguments for one source (`LOCAL_SYSTEM_JOURNAL`, a journal file or a directory).
pub fn args(cfg: &JournaldConfig, source: &str, start: &Start, follow: bool) -> Vec<String> {
    let mut a = vec!["--output=export".to_string(), "--no-pager".to_string()];
    if follow {
        a.push("--follow".into());
    }
    if source != LOCAL_SYSTEM_JOURNAL {
        if Path::new(source).is_dir() {
            a.push(format!("--directory={source}"));
        } else {
            a.push(format!("--file={source}"));
        }
    } else if cfg.merge {
        a.push("--merge".into());
    }
    match start {
        Start::After(c) => {
            a.push(format!("--after-cursor={c}"));
            a.push("--no-tail".into());
        }
        Start::Head => a.push("--no-tail".into()),
        // By position, not by clock (Filebeat uses --since=now): an entry written after
        // the start with an older timestamp (a remote journal, a clock step) is not lost.
        Start::Tail => a.push("--lines=0".into()),
        Start::Since(t) => {
            a.push(format!("--since=@{t}"));
            a.push("--no-tail".into());
        }
    }
    for u in &cfg.units {
        a.push(format!("--unit={u}"));
    }
    for i in &cfg.syslog_identifiers {
        a.push(format!("--identifier={i}"));
    }
    for m in cfg.include_matches.expressions() {
        if m == "+" {
            a.push("+".into());
        } else if let Ok(t) = translate_match(m) {
            a.push(t);
        }
    }
    for t in &cfg.transports {
        a.push(format!("_TRANSPORT={t}"));
    }
    for f in &cfg.facilities {
        a.push(format!("SYSLOG_FACILITY={f}"));
    }
    a
}

/// A running journalctl.
pub struct Process {
    pub child: Child,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

pub fn spawn(program: &str, args: &[String]) -> std::io::Result<Process> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // journalctl is ours alone: no notify socket, no pager, no colours.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| std::io::Error::other("no stderr pipe"))?;
    Ok(Process {
        child,
        stdout,
        stderr,
    })
}

/// Collect journalctl's stderr: every line is logged, the last few are kept for the
/// message when it exits.
pub async fn drain_stderr(stderr: ChildStderr, input: String, source: String) -> Vec<String> {
    let mut lines = BufReader::new(stderr).lines();
    let mut tail: Vec<String> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::warn!(input_id = %input, source = %source, "journalctl: {line}");
        if tail.len() == 5 {
            tail.remove(0);
        }
        tail.push(line);
    }
    tail
}

/// How long journalctl must have run for its next failure to restart the backoff.
pub const STABLE_RUN: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> JournaldConfig {
        crate::config::typed(text.parse::<toml::Value>().unwrap(), "t").unwrap()
    }

    #[test]
    fn args_like_filebeat() {
        let c = cfg(r#"
id = "a"
units = ["nginx.service"]
syslog_identifiers = ["sudo"]
include_matches.match = ["systemd.transport=syslog", "+", "_COMM=cron"]
transports = ["kernel"]
facilities = [4]
"#);
        let a = args(
            &c,
            LOCAL_SYSTEM_JOURNAL,
            &Start::After("s=1;i=2".into()),
            true,
        );
        assert_eq!(
            a,
            [
                "--output=export",
                "--no-pager",
                "--follow",
                "--after-cursor=s=1;i=2",
                "--no-tail",
                "--unit=nginx.service",
                "--identifier=sudo",
                "_TRANSPORT=syslog",
                "+",
                "_COMM=cron",
                "_TRANSPORT=kernel",
                "SYSLOG_FACILITY=4",
            ]
        );
        let a = args(&c, "/nonexistent/x.journal", &Start::Tail, false);
        assert!(a.contains(&"--file=/nonexistent/x.journal".to_string()));
        assert!(a.contains(&"--lines=0".to_string()));
        assert!(!a.contains(&"--follow".to_string()));
        let dir = tempfile::tempdir().unwrap();
        let a = args(&c, &dir.path().display().to_string(), &Start::Head, true);
        assert!(a[3].starts_with("--directory="), "{a:?}");
    }

    #[test]
    fn seek_modes() {
        assert_eq!(Start::without_cursor(&cfg("id = \"a\"")), Start::Head);
        assert_eq!(
            Start::without_cursor(&cfg("id = \"a\"\nseek = \"tail\"")),
            Start::Tail
        );
        assert_eq!(
            Start::without_cursor(&cfg(
                "id = \"a\"\nseek = \"cursor\"\ncursor_seek_fallback = \"tail\""
            )),
            Start::Tail
        );
        match Start::without_cursor(&cfg("id = \"a\"\nseek = \"since\"\nsince = \"-1h\"")) {
            Start::Since(t) => {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                assert!((now - 3600 - t).abs() < 5);
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn match_translation() {
        assert_eq!(
            translate_match("systemd.unit=a.service").unwrap(),
            "_SYSTEMD_UNIT=a.service"
        );
        assert_eq!(
            translate_match("CONTAINER_TAG=redis").unwrap(),
            "CONTAINER_TAG=redis"
        );
        assert!(translate_match("a=b=c").is_err());
        assert!(translate_match("lower.case=x").is_err());
        assert!(translate_match("=x").is_err());
    }
}
