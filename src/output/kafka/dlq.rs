//! Dead-letter file for events Kafka rejected for good (too large, invalid topic, not
//! authorised). NDJSON, one object per event:
//! `{"@timestamp":"<when dead-lettered>","topic":"..","error":"..","event":{<the Beats JSON>}}`.
//! The active file is `<dir>/kafka-dlq.ndjson`; when it exceeds `rotate_every` it is renamed to
//! `.1` (older ones shift up, beyond `number_of_files` they are deleted). Each write is fsynced
//! before the events are acked, so a crash cannot lose an event that was counted as dead-lettered.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::event::{format_timestamp, now_nanos, write_json_str};

use super::config::DeadLetterConfig;

pub const FILE_NAME: &str = "kafka-dlq.ndjson";

pub struct DeadLetter {
    dir: PathBuf,
    rotate_every: u64,
    number_of_files: usize,
    file: Option<File>,
    written: u64,
}

/// One rejected event.
pub struct Entry<'a> {
    pub topic: &'a str,
    pub error: &'a str,
    /// The event as Beats JSON (what would have been the Kafka message value).
    pub event: &'a [u8],
}

impl DeadLetter {
    pub fn new(cfg: &DeadLetterConfig, dir: PathBuf) -> Self {
        DeadLetter {
            dir,
            rotate_every: cfg.rotate_every.0.max(1024),
            number_of_files: cfg.number_of_files.max(1),
            file: None,
            written: 0,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn active(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn open(&mut self) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.active();
        let f = OpenOptions::new().create(true).append(true).open(&path)?;
        self.written = f.metadata()?.len();
        self.file = Some(f);
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let n = self.number_of_files;
        let name = |i: usize| self.dir.join(format!("{FILE_NAME}.{i}"));
        let _ = fs::remove_file(name(n));
        for i in (1..n).rev() {
            let _ = fs::rename(name(i), name(i + 1));
        }
        fs::rename(self.active(), name(1))?;
        self.open()
    }

    /// Append entries and fsync. On error nothing may be acked: the caller retries.
    pub fn write(&mut self, entries: &[Entry<'_>]) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.open()?;
        }
        if self.written >= self.rotate_every {
            self.rotate()?;
        }
        let mut buf = Vec::new();
        let ts = format_timestamp(now_nanos());
        for e in entries {
            buf.extend_from_slice(b"{\"@timestamp\":");
            write_json_str(&ts, &mut buf);
            buf.extend_from_slice(b",\"topic\":");
            write_json_str(e.topic, &mut buf);
            buf.extend_from_slice(b",\"error\":");
            write_json_str(e.error, &mut buf);
            buf.extend_from_slice(b",\"event\":");
            // The value is our own serialisation, so it is one JSON object; keep a fallback
            // anyway so a corrupt value still yields a parsable line.
            if serde_json::from_slice::<serde::de::IgnoredAny>(e.event).is_ok() {
                buf.extend_from_slice(e.event);
            } else {
                write_json_str(&String::from_utf8_lossy(e.event), &mut buf);
            }
            buf.extend_from_slice(b"}\n");
        }
        let f = self.file.as_mut().expect("opened above");
        let res = f.write_all(&buf).and_then(|_| f.sync_data());
        if res.is_err() {
            // Reopen next time: a partial line is ended by the reader skipping invalid JSON.
            self.file = None;
        }
        res?;
        self.written += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DeadLetterConfig {
            path: None,
            rotate_every: crate::config::units::ByteSize(1024),
            number_of_files: 2,
        };
        let mut d = DeadLetter::new(&cfg, dir.path().join("dlq"));
        let big = format!("{{\"message\":\"{}\"}}", "x".repeat(600));
        for _ in 0..6 {
            d.write(&[Entry {
                topic: "t",
                error: "Broker: Message size too large",
                event: big.as_bytes(),
            }])
            .unwrap();
        }
        let active = fs::read_to_string(dir.path().join("dlq").join(FILE_NAME)).unwrap();
        let v: serde_json::Value = serde_json::from_str(active.lines().next().unwrap()).unwrap();
        assert_eq!(v["topic"], "t");
        assert_eq!(v["event"]["message"].as_str().unwrap().len(), 600);
        assert!(dir
            .path()
            .join("dlq")
            .join(format!("{FILE_NAME}.1"))
            .exists());
        assert!(dir
            .path()
            .join("dlq")
            .join(format!("{FILE_NAME}.2"))
            .exists());
        assert!(!dir
            .path()
            .join("dlq")
            .join(format!("{FILE_NAME}.3"))
            .exists());
    }
}
