//! The agent's own logs, as a daemon writes them.
//!
//! Where they go (Beats' rules, with `--environment systemd` taken from the environment):
//! `-e` or `logging.to_stderr`: stderr. Otherwise, under systemd (`$JOURNAL_STREAM` names
//! our stderr), stderr too, as lines the journal understands (`<3>` error ... `<7>` debug
//! prefixes, so `journalctl -p warning` works), unless `logging.to_files = true`.
//! Otherwise files in `path.logs` (`<name>.log`, rotated at `rotateeverybytes` to `.1` ...,
//! `keepfiles` kept, created with `permissions`), unless `logging.to_files = false`.
//!
//! ANSI colours only when stderr is a terminal. `logging.json` writes one JSON object per
//! line (also to the journal). Every line goes through the redactor: secret values from the
//! keystore or systemd credentials never reach a log. The level and `logging.selectors` can
//! change at runtime (`set_filter`, used by reload).

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// `logging.files.*`, Beats' names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Directory; default `path.logs` (`<path.data>/logs` without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(default = "FilesConfig::default_name")]
    pub name: String,
    /// Files kept, the active one included (2 to 1024).
    #[serde(default = "FilesConfig::default_keep")]
    pub keepfiles: usize,
    #[serde(default = "FilesConfig::default_permissions")]
    pub permissions: u32,
    #[serde(default = "FilesConfig::default_rotate")]
    pub rotateeverybytes: u64,
    /// Start each run with a new file (the previous one becomes `.1`).
    #[serde(default = "crate::config::yes")]
    pub rotateonstartup: bool,
}

impl FilesConfig {
    fn default_name() -> String {
        "oxibeat".into()
    }
    fn default_keep() -> usize {
        7
    }
    fn default_permissions() -> u32 {
        0o600
    }
    fn default_rotate() -> u64 {
        10 << 20
    }

    /// Ranges serde cannot express (`prefix` is `logging.files`).
    pub fn validate(&self, prefix: &str) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        if !(2..=1024).contains(&self.keepfiles) {
            return Err(ConfigError::new(
                format!("{prefix}.keepfiles"),
                format!("{} is out of range; allowed: 2 to 1024", self.keepfiles),
            ));
        }
        if self.permissions > 0o777 {
            return Err(ConfigError::new(
                format!("{prefix}.permissions"),
                format!(
                    "{:#o} is not a file mode; allowed: 0 to 0o777 (e.g. 0o600)",
                    self.permissions
                ),
            ));
        }
        if self.rotateeverybytes < 1024 {
            return Err(ConfigError::new(
                format!("{prefix}.rotateeverybytes"),
                "too small; allowed: 1024 or more (default 10485760)",
            ));
        }
        if self.name.is_empty() || self.name.contains('/') {
            return Err(ConfigError::new(
                format!("{prefix}.name"),
                "must be a file name without '/' (default \"oxibeat\")",
            ));
        }
        Ok(())
    }
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            path: None,
            name: Self::default_name(),
            keepfiles: Self::default_keep(),
            permissions: Self::default_permissions(),
            rotateeverybytes: Self::default_rotate(),
            rotateonstartup: true,
        }
    }
}

/// Where the logs go.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    /// stderr; `journal`: with syslog priority prefixes for the journal.
    Stderr {
        journal: bool,
    },
    Files {
        dir: PathBuf,
        files: FilesConfig,
    },
}

/// True when stderr is connected to the journal (`$JOURNAL_STREAM` is `device:inode` of it).
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match fs::metadata("/proc/self/fd/2") {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

/// What the settings, `-e` and the environment choose.
pub fn destination(
    to_stderr: bool,
    to_files: Option<bool>,
    files: &FilesConfig,
    default_dir: &Path,
    journal: bool,
) -> Destination {
    let dir = files
        .path
        .clone()
        .unwrap_or_else(|| default_dir.to_path_buf());
    let to_files_dest = Destination::Files {
        dir,
        files: files.clone(),
    };
    if to_stderr {
        return Destination::Stderr { journal };
    }
    match to_files {
        Some(true) => to_files_dest,
        Some(false) => Destination::Stderr { journal },
        None if journal => Destination::Stderr { journal: true },
        None => to_files_dest,
    }
}

/// Beats' level names to tracing's.
pub fn tracing_level(level: &str) -> &'static str {
    match level {
        "critical" | "error" => "error",
        "warning" | "warn" => "warn",
        "debug" => "debug",
        "trace" => "trace",
        _ => "info",
    }
}

/// Beats selectors (component names) to our module paths.
fn selector_target(sel: &str) -> String {
    let path = match sel {
        "harvester" | "input.harvester" | "filestream" | "input.filestream" | "prospector"
        | "scanner" => "input::filestream",
        "input" => "input",
        "journald" | "input.journald" => "input::journald",
        "publisher" | "publish" | "pipeline" | "queue" => "pipeline",
        "registrar" | "registry" => "registry",
        "output" => "output",
        "kafka" | "output.kafka" => "output::kafka",
        "elasticsearch" | "output.elasticsearch" => "output::elasticsearch",
        "logstash" | "output.logstash" => "output::logstash",
        "processors" => "processors",
        "monitoring" | "http" | "metrics" => "monitoring",
        "config" | "cfgfile" => "config",
        "setup" | "kibana" => "setup",
        "service" | "systemd" => "service",
        other => return format!("oxibeat::{}", other.replace('.', "::")),
    };
    format!("oxibeat::{path}")
}

/// The filter for `level` and `selectors`: with `debug` and selectors, only the selected
/// components log at debug level (the others at info), as in Beats; `*` selects all.
pub fn filter_directives(level: &str, selectors: &[String]) -> String {
    let level = tracing_level(level);
    let pick: Vec<&String> = selectors.iter().filter(|s| !s.is_empty()).collect();
    if level == "debug" && !pick.is_empty() && !pick.iter().any(|s| s.as_str() == "*") {
        let mut d = vec!["warn".to_string(), "oxibeat=info".to_string()];
        for s in pick {
            d.push(format!("{}=debug", selector_target(s)));
        }
        return d.join(",");
    }
    format!("warn,oxibeat={level}")
}

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Change the level and selectors of a running agent (reload).
pub fn set_filter(level: &str, selectors: &[String]) {
    if let Some(h) = FILTER.get() {
        let directives = filter_directives(level, selectors);
        if let Err(e) = h.modify(|f| *f = EnvFilter::new(&directives)) {
            tracing::warn!(error = %e, "could not change the log level");
        }
    }
}

/// Set up logging for the process. Files that cannot be opened fall back to stderr (said
/// there once).
pub fn init(dest: Destination, json: bool, level: &str, selectors: &[String]) {
    let (filter, handle) = reload::Layer::new(EnvFilter::new(filter_directives(level, selectors)));
    let (sink, journal, ansi) = match &dest {
        Destination::Stderr { journal } => (
            Sink::Stderr,
            *journal,
            !*journal && io::stderr().is_terminal(),
        ),
        Destination::Files { dir, files } => match RotatingFile::open(dir, files, json) {
            Ok(f) => (Sink::File(Box::new(f)), false, false),
            Err(e) => {
                eprintln!(
                    "cannot open the log file in {}: {e}; logging to stderr",
                    dir.display()
                );
                (Sink::Stderr, false, io::stderr().is_terminal())
            }
        },
    };
    let writer = LineWriter {
        sink: Arc::new(Mutex::new(sink)),
        journal,
    };
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if json {
        Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_target(false)
                .with_writer(writer),
        )
    } else {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(ansi)
                .with_writer(writer),
        )
    };
    // The filter applies to the formatter only; a second init (tests) is ignored.
    if tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
}

enum Sink {
    Stderr,
    File(Box<RotatingFile>),
}

impl Sink {
    fn write_all(&mut self, buf: &[u8]) {
        match self {
            Sink::Stderr => {
                let _ = io::stderr().write_all(buf);
            }
            Sink::File(f) => f.write_line(buf),
        }
    }
}

/// Hands each log event a buffer; the event is written as a whole when it is dropped.
#[derive(Clone)]
struct LineWriter {
    sink: Arc<Mutex<Sink>>,
    journal: bool,
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = EventBuf;

    fn make_writer(&'a self) -> Self::Writer {
        self.event(6)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        let prio = match *meta.level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        self.event(prio)
    }
}

impl LineWriter {
    fn event(&self, priority: u8) -> EventBuf {
        EventBuf {
            buf: Vec::with_capacity(256),
            sink: self.sink.clone(),
            priority: self.journal.then_some(priority),
        }
    }
}

struct EventBuf {
    buf: Vec<u8>,
    sink: Arc<Mutex<Sink>>,
    priority: Option<u8>,
}

impl Write for EventBuf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuf {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let secrets = crate::secrets::shared()
            .read()
            .map(|s| s.clone())
            .unwrap_or_default();
        let text = crate::secrets::redact_with(&text, &secrets);
        let out = match self.priority {
            // Every line of a multi-line event gets the prefix, so the journal keeps the level.
            Some(p) => {
                let mut o = String::with_capacity(text.len() + 8);
                for line in text.split_inclusive('\n') {
                    o.push_str(&format!("<{p}>"));
                    o.push_str(line);
                }
                o
            }
            None => text,
        };
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        sink.write_all(out.as_bytes());
    }
}

/// `<dir>/<name>.log` (or `.ndjson`), rotated by size: `.1` is the newest old file.
struct RotatingFile {
    dir: PathBuf,
    base: String,
    cfg: FilesConfig,
    file: File,
    size: u64,
}

impl RotatingFile {
    fn open(dir: &Path, cfg: &FilesConfig, json: bool) -> io::Result<RotatingFile> {
        fs::create_dir_all(dir)?;
        let base = format!("{}.{}", cfg.name, if json { "ndjson" } else { "log" });
        let mut r = RotatingFile {
            dir: dir.to_path_buf(),
            base,
            cfg: cfg.clone(),
            file: File::open("/dev/null")?,
            size: 0,
        };
        if cfg.rotateonstartup
            && fs::metadata(r.active())
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        {
            r.shift()?;
        }
        r.reopen()?;
        Ok(r)
    }

    fn active(&self) -> PathBuf {
        self.dir.join(&self.base)
    }

    fn numbered(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{}.{n}", self.base))
    }

    fn reopen(&mut self) -> io::Result<()> {
        let path = self.active();
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(self.cfg.permissions)
            .open(&path)?;
        // An existing file keeps its mode unless it is looser than asked.
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(self.cfg.permissions));
        self.size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(())
    }

    /// `.N-1` → `.N` ..., active → `.1`; the oldest beyond `keepfiles` is removed.
    fn shift(&mut self) -> io::Result<()> {
        let keep = self.cfg.keepfiles.max(2);
        let _ = fs::remove_file(self.numbered(keep - 1));
        for n in (1..keep - 1).rev() {
            let from = self.numbered(n);
            if from.exists() {
                fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        if self.active().exists() {
            fs::rename(self.active(), self.numbered(1))?;
        }
        Ok(())
    }

    fn write_line(&mut self, buf: &[u8]) {
        if self.size > 0 && self.size + buf.len() as u64 > self.cfg.rotateeverybytes {
            if let Err(e) = self.shift().and_then(|_| self.reopen()) {
                let _ = writeln!(
                    io::stderr(),
                    "log rotation in {} failed: {e}",
                    self.dir.display()
                );
            }
        }
        if self.file.write_all(buf).is_ok() {
            self.size += buf.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_logs_go() {
        let f = FilesConfig::default();
        let d = Path::new("/var/log/oxibeat");
        let files = || Destination::Files {
            dir: d.to_path_buf(),
            files: f.clone(),
        };
        assert_eq!(destination(false, None, &f, d, false), files());
        assert_eq!(
            destination(false, None, &f, d, true),
            Destination::Stderr { journal: true }
        );
        assert_eq!(destination(false, Some(true), &f, d, true), files());
        assert_eq!(
            destination(true, Some(true), &f, d, false),
            Destination::Stderr { journal: false }
        );
        assert_eq!(
            destination(false, Some(false), &f, d, false),
            Destination::Stderr { journal: false }
        );
    }

    #[test]
    fn selectors_and_levels() {
        assert_eq!(filter_directives("info", &[]), "warn,oxibeat=info");
        assert_eq!(filter_directives("warning", &[]), "warn,oxibeat=warn");
        assert_eq!(filter_directives("critical", &[]), "warn,oxibeat=error");
        assert_eq!(
            filter_directives("debug", &["*".into()]),
            "warn,oxibeat=debug"
        );
        assert_eq!(
            filter_directives("debug", &["harvester".into(), "output.kafka".into()]),
            "warn,oxibeat=info,oxibeat::input::filestream=debug,oxibeat::output::kafka=debug"
        );
        // Selectors only matter at debug level.
        assert_eq!(
            filter_directives("info", &["harvester".into()]),
            "warn,oxibeat=info"
        );
        for l in ["error", "warn", "info", "debug", "trace"] {
            EnvFilter::try_new(filter_directives(l, &["registrar".into()])).unwrap();
        }
    }

    #[test]
    fn rotation_keeps_files_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FilesConfig {
            keepfiles: 3,
            rotateeverybytes: 1024,
            permissions: 0o640,
            ..Default::default()
        };
        let mut r = RotatingFile::open(dir.path(), &cfg, false).unwrap();
        let line = vec![b'x'; 300];
        for _ in 0..20 {
            r.write_line(&line);
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["oxibeat.log", "oxibeat.log.1", "oxibeat.log.2"]);
        for n in &names {
            let m = fs::metadata(dir.path().join(n)).unwrap();
            assert!(m.len() <= 1024, "{n}: {}", m.len());
            assert_eq!(m.permissions().mode() & 0o777, 0o640, "{n}");
        }
        // A new start rotates what is there.
        drop(r);
        let r = RotatingFile::open(dir.path(), &cfg, true).unwrap();
        assert_eq!(r.active(), dir.path().join("oxibeat.ndjson"));
    }

    #[test]
    fn journal_lines_have_priorities_and_secrets_are_redacted() {
        crate::secrets::shared()
            .write()
            .unwrap()
            .push(crate::config::Secret::new("hunter2-log-test"));
        let dir = tempfile::tempdir().unwrap();
        let cfg = FilesConfig {
            rotateonstartup: false,
            ..Default::default()
        };
        let f = RotatingFile::open(dir.path(), &cfg, false).unwrap();
        let w = LineWriter {
            sink: Arc::new(Mutex::new(Sink::File(Box::new(f)))),
            journal: true,
        };
        {
            let mut e = w.event(4);
            e.write_all(b"WARN password hunter2-log-test rejected\nsecond line\n")
                .unwrap();
        }
        let text = fs::read_to_string(dir.path().join("oxibeat.log")).unwrap();
        assert_eq!(text, "<4>WARN password xxxxx rejected\n<4>second line\n");
    }
}
