//! Bounded reads of files whose name comes from the command line, the configuration or
//! state on disk (the config file, the registry's `active.dat`, checkpoint and log, the
//! agent's `meta.json`): regular files only, and never more than a limit, so `-c /dev/zero`
//! or an `active.dat` naming a device fails at once with a clear error instead of reading
//! gigabytes. Opened non-blocking, so a FIFO does not hang the open.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file (it is {kind})", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is larger than {} MiB; this is not the file meant here", path.display(), limit >> 20)]
    TooLarge { path: PathBuf, limit: u64 },
}

impl BoundedReadError {
    /// What is wrong, without the path (for errors that name the file themselves).
    pub fn reason(&self) -> String {
        match self {
            BoundedReadError::Io { source, .. } => source.to_string(),
            BoundedReadError::NotRegular { kind, .. } => {
                format!("not a regular file (it is {kind})")
            }
            BoundedReadError::TooLarge { limit, .. } => format!(
                "larger than {} MiB; this is not the file meant here",
                limit >> 20
            ),
        }
    }

    /// The underlying I/O error kind, if any (`NotFound` for a missing file).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            BoundedReadError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// Open `path` for reading if it is a regular file (following symlinks).
pub fn open_regular(path: &Path) -> Result<File, BoundedReadError> {
    let io = |source| BoundedReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let md = f.metadata().map_err(io)?;
    if !md.is_file() {
        return Err(BoundedReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(md.file_type()),
        });
    }
    Ok(f)
}

/// The whole of a regular file of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let f = open_regular(path)?;
    let too_large = || BoundedReadError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    if size > limit {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(size as usize);
    // The file may grow while it is read: never take more than the limit.
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|source| BoundedReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_big_files_are_refused() {
        let e = read(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a regular file") && e.contains("character device"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "opening a FIFO does not block: {e}");
        let big = dir.path().join("big");
        File::create(&big).unwrap().set_len(3 << 20).unwrap();
        let e = read(&big, 2 << 20).unwrap_err().to_string();
        assert!(e.contains("larger than 2 MiB"), "{e}");
        std::fs::write(dir.path().join("ok"), b"fine").unwrap();
        assert_eq!(read(&dir.path().join("ok"), 4).unwrap(), b"fine");
        let missing = read(&dir.path().join("nope"), 4).unwrap_err();
        assert_eq!(missing.io_kind(), Some(std::io::ErrorKind::NotFound));
    }
}
