//! `path.data` belongs to one agent at a time, as in Beats (`<path.data>/filebeat.lock`).
//!
//! `DataDirLock::acquire` takes an exclusive `flock(2)` on `<path.data>/oxibeat.lock` and
//! holds it for the life of the value (the process, for `run`); the kernel releases it when the
//! process ends, `kill -9` included, so a crash never leaves a stale lock. The holder writes its
//! pid into the file so that a second agent can say who holds the directory. The file is left
//! in place on exit: deleting it would let two later agents lock two different files.
//!
//! The rule for commands: one that writes what an agent owns (the registry, `meta.json`)
//! takes the lock with `acquire`. One that only reads (`oxibeat registry`, `dlq show`) takes
//! no lock, works beside a running agent, and creates nothing; `holder` tells it whether an
//! agent runs, if it wants to say so.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name under `path.data`.
pub const LOCK_FILE: &str = "oxibeat.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "path.data {dir} is in use by another oxibeat ({holder}); stop that agent first, or give \
         this one its own data directory (path.data or --path.data): two agents on one registry \
         ship the same lines twice"
    )]
    InUse { dir: String, holder: String },
    #[error("path.data {dir}: cannot {action}: {source}; create the directory or point path.data elsewhere")]
    Io {
        dir: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The exclusive lock on a data directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Create `dir` if needed and lock it. Fails at once, naming the holder's pid, when
    /// another process holds the lock.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let io = |action, source| LockError::Io {
            dir: dir.display().to_string(),
            action,
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory", e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("open the lock file", e))?;
        // SAFETY: flock on a descriptor this function owns; released when the file is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(LockError::InUse {
                    dir: dir.display().to_string(),
                    holder: describe(read_pid(&mut file)),
                });
            }
            return Err(io("lock the lock file", e));
        }
        let body = format!(
            "{{\"pid\":{},\"write_time\":\"{}\"}}\n",
            std::process::id(),
            crate::event::format_timestamp(crate::event::now_nanos())
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(body.as_bytes()))
            .map_err(|e| io("write the lock file", e))?;
        Ok(DataDirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid of the agent that holds `dir`'s lock, if one does. Creates nothing.
pub fn holder(dir: &Path) -> Option<Option<u32>> {
    let mut file = File::open(dir.join(LOCK_FILE)).ok()?;
    // SAFETY: flock on a descriptor this function owns; a shared probe, released at once.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        return None;
    }
    Some(read_pid(&mut file))
}

fn describe(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("pid {p}"),
        None => "pid unknown".into(),
    }
}

/// The holder writes its pid right after locking: a reader that comes in between sees an
/// empty file, so look again briefly.
fn read_pid(file: &mut File) -> Option<u32> {
    for _ in 0..10 {
        let mut text = String::new();
        if file.seek(SeekFrom::Start(0)).is_ok() && file.read_to_string(&mut text).is_ok() {
            let pid = serde_json::from_str::<serde_json::Value>(text.trim())
                .ok()
                .and_then(|v| v.get("pid")?.as_u64())
                .and_then(|p| u32::try_from(p).ok());
            if pid.is_some() {
                return pid;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_pid_and_a_dropped_one_is_free_again() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(
            holder(&data),
            None,
            "nothing holds a directory that does not exist"
        );
        assert!(!data.exists(), "holder creates nothing");
        let first = DataDirLock::acquire(&data).unwrap();
        assert_eq!(first.path(), data.join(LOCK_FILE));
        let e = DataDirLock::acquire(&data).unwrap_err().to_string();
        let me = std::process::id().to_string();
        assert!(e.contains(&data.display().to_string()), "{e}");
        assert!(e.contains(&format!("pid {me}")), "{e}");
        assert_eq!(holder(&data), Some(Some(std::process::id())));
        drop(first);
        assert_eq!(holder(&data), None);
        DataDirLock::acquire(&data).expect("free again");
    }
}
