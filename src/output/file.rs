//! `[output.file]`: NDJSON files `<path>/<filename>-<YYYYMMDD>[-N].ndjson`, rotated by size,
//! keeping `number_of_files`. A batch is acked once written to the file (and flushed to the OS).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::FileOutputConfig;
use crate::event::{civil_from_days, now_nanos, BeatInfo};
use crate::monitoring::Metrics;
use crate::pipeline::Consumer;

use super::{Backoff, OutputError};

struct Rotator {
    cfg: FileOutputConfig,
    file: Option<(File, PathBuf)>,
    written: u64,
    seq: u32,
}

fn today() -> String {
    let (y, m, d) = civil_from_days(now_nanos().div_euclid(86_400_000_000_000));
    format!("{y:04}{m:02}{d:02}")
}

impl Rotator {
    fn open_next(&mut self) -> std::io::Result<()> {
        let day = today();
        loop {
            let name = if self.seq == 0 {
                format!("{}-{day}.ndjson", self.cfg.filename)
            } else {
                format!("{}-{day}-{}.ndjson", self.cfg.filename, self.seq)
            };
            let path = self.cfg.path.join(name);
            // Never append to a file that is already full (restart): move to the next one.
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if len >= self.limit() {
                self.seq += 1;
                continue;
            }
            let f = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .mode(self.cfg.permissions)
                .open(&path)?;
            // A crash may have left a torn last line: cut it (its events were not acked, so
            // they are sent again).
            let len = if len > 0 && last_byte(&path) != Some(b'\n') {
                cut_torn_tail(&f, &path, len)?
            } else {
                len
            };
            self.written = len;
            self.file = Some((f, path));
            self.prune();
            return Ok(());
        }
    }

    fn limit(&self) -> u64 {
        self.cfg.rotate_every_kb.max(1) * 1024
    }

    /// Keep the newest `number_of_files` files of ours.
    fn prune(&self) {
        let prefix = format!("{}-", self.cfg.filename);
        let Ok(rd) = fs::read_dir(&self.cfg.path) else {
            return;
        };
        let mut ours: Vec<(std::time::SystemTime, PathBuf)> = rd
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.starts_with(&prefix) && n.ends_with(".ndjson")
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if ours.len() <= self.cfg.number_of_files.max(1) {
            return;
        }
        ours.sort();
        let excess = ours.len() - self.cfg.number_of_files.max(1);
        for (_, p) in ours.into_iter().take(excess) {
            if self.file.as_ref().is_some_and(|(_, cur)| cur == &p) {
                continue;
            }
            let _ = fs::remove_file(p);
        }
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() || self.written >= self.limit() {
            if self.file.is_some() {
                self.seq += 1;
            }
            self.open_next()?;
        }
        let before = self.written;
        let (f, path) = self.file.as_mut().expect("opened above");
        if let Err(e) = f.write_all(buf).and_then(|_| f.flush()) {
            // Whole lines only: take back what part of the batch was written (a full disk
            // writes some of it), then retry the batch in the same file.
            if f.set_len(before).is_err() {
                tracing::warn!(path = %path.display(), "cannot cut a partly written batch; it is cut when the file is opened again");
                self.file = None;
                self.seq += 1;
            }
            return Err(e);
        }
        self.written += buf.len() as u64;
        Ok(())
    }
}

/// Cut `f` (of `len` bytes) back to just after its last newline.
fn cut_torn_tail(f: &File, path: &Path, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            let keep = start + i as u64 + 1;
            tracing::warn!(path = %path.display(), bytes = len - keep, "cut a torn last line left by a crash");
            f.set_len(keep)?;
            return Ok(keep);
        }
        end = start;
    }
    f.set_len(0)?;
    Ok(0)
}

fn last_byte(path: &Path) -> Option<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path).ok()?;
    f.seek(SeekFrom::End(-1)).ok()?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).ok()?;
    Some(b[0])
}

/// `oxibeat test output`: the directory is writable, or could be created; changes nothing.
pub fn check(cfg: &FileOutputConfig) -> Result<String, OutputError> {
    let dir = &cfg.path;
    let err = |source| OutputError::FileDir {
        path: dir.display().to_string(),
        source,
    };
    match fs::metadata(dir) {
        Ok(md) if md.is_dir() => {
            writable(dir).map_err(err)?;
            Ok(format!("{} is writable", dir.display()))
        }
        Ok(_) => Err(err(std::io::Error::from_raw_os_error(libc::ENOTDIR))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The closest existing ancestor must let us create what is missing.
            let mut parent = dir.parent();
            while let Some(p) = parent {
                let p = if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                };
                match fs::metadata(p) {
                    Ok(md) if md.is_dir() => {
                        writable(p).map_err(err)?;
                        return Ok(format!(
                            "{} does not exist yet; it will be created at start ({} is writable)",
                            dir.display(),
                            p.display()
                        ));
                    }
                    Ok(_) => return Err(err(std::io::Error::from_raw_os_error(libc::ENOTDIR))),
                    Err(_) => parent = p.parent(),
                }
            }
            Err(err(e))
        }
        Err(e) => Err(err(e)),
    }
}

/// Whether this process may create files in `dir` (access(2) with W_OK and X_OK).
fn writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated path; access only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Create the directory at start and prove a file can be made there.
fn prepare(cfg: &FileOutputConfig) -> Result<(), OutputError> {
    let err = |source| OutputError::FileDir {
        path: cfg.path.display().to_string(),
        source,
    };
    if fs::metadata(&cfg.path).is_ok_and(|m| !m.is_dir()) {
        return Err(err(std::io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    fs::create_dir_all(&cfg.path).map_err(err)?;
    writable(&cfg.path).map_err(err)
}

pub async fn run(
    cfg: FileOutputConfig,
    mut consumer: Consumer,
    beat: Arc<BeatInfo>,
) -> Result<(), OutputError> {
    prepare(&cfg)?;
    let metrics = consumer.metrics().clone();
    let pretty = cfg.codec.json.pretty;
    let mut rot = Rotator {
        cfg,
        file: None,
        written: 0,
        seq: 0,
    };
    let mut buf = Vec::with_capacity(1 << 20);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    while let Some(batch) = consumer.next_batch(4096).await {
        let n = super::encode_ndjson(&batch, &beat, pretty, &mut buf);
        Metrics::add(&metrics.counters.output_batches, 1);
        Metrics::add(&metrics.counters.output_total, n as u64);
        loop {
            match rot.write(&buf) {
                Ok(()) => break,
                Err(e) => {
                    Metrics::add(&metrics.counters.output_write_errors, 1);
                    tracing::error!(error = %e, dir = %rot.cfg.path.display(), "writing the output file failed; retrying");
                    backoff.wait().await;
                }
            }
        }
        backoff.reset();
        Metrics::add(&metrics.counters.output_write_bytes, buf.len() as u64);
        batch.ack();
    }
    Ok(())
}
