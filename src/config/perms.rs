//! `strict.perms` (on by default, as in Beats): a configuration file must be owned by root
//! or the user running the agent and writable by its owner only; the keystore must also be
//! unreadable by anyone else. Beats' rules (libbeat/common/file: `OwnerHasExclusiveWritePerms`,
//! libbeat/keystore: `checkPermissions`), with the fix in the message. `--strict.perms=false`
//! turns the checks off.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, thiserror::Error)]
pub enum PermsError {
    #[error("{path}: {message}")]
    Insecure { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Stat {
        path: PathBuf,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn stat(path: &Path) -> Result<std::fs::Metadata, PermsError> {
    std::fs::metadata(path).map_err(|e| PermsError::Stat {
        path: path.to_path_buf(),
        source: std::sync::Arc::new(e),
    })
}

fn abs(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn owner(path: &Path, m: &std::fs::Metadata) -> Result<(), PermsError> {
    let me = euid();
    if m.uid() != 0 && m.uid() != me {
        return Err(PermsError::Insecure {
            path: path.to_path_buf(),
            message: format!(
                "must be owned by the user running oxibeat (uid={me}) or root, but its owner is uid={}; fix it with 'chown {me} {}', or start with --strict.perms=false",
                m.uid(),
                abs(path)
            ),
        });
    }
    Ok(())
}

/// A configuration file (or a file of `config.inputs`): writable by its owner only.
pub fn check_config(path: &Path) -> Result<(), PermsError> {
    let m = stat(path)?;
    if !m.is_file() {
        // A device or FIFO is refused by the read itself ("not a regular file"), the more
        // useful error than its mode.
        return Ok(());
    }
    owner(path, &m)?;
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PermsError::Insecure {
            path: path.to_path_buf(),
            message: format!(
                "can only be writable by its owner, but its mode is {mode:04o}; fix it with 'chmod go-w {}', or start with --strict.perms=false",
                abs(path)
            ),
        });
    }
    Ok(())
}

/// The keystore: readable and writable by its owner only.
pub fn check_keystore(path: &Path) -> Result<(), PermsError> {
    let m = stat(path)?;
    owner(path, &m)?;
    let mode = m.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PermsError::Insecure {
            path: path.to_path_buf(),
            message: format!(
                "can only be readable and writable by its owner, but its mode is {mode:04o}; fix it with 'chmod go-rwx {}', or start with --strict.perms=false",
                abs(path)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn modes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("oxibeat.toml");
        std::fs::write(&p, "").unwrap();
        for ok in [0o600, 0o644, 0o640, 0o400] {
            chmod(&p, ok);
            check_config(&p).unwrap();
        }
        for bad in [0o664, 0o666, 0o602] {
            chmod(&p, bad);
            let e = check_config(&p).unwrap_err().to_string();
            assert!(
                e.contains("chmod go-w") && e.contains("--strict.perms=false"),
                "{e}"
            );
        }
        chmod(&p, 0o600);
        check_keystore(&p).unwrap();
        chmod(&p, 0o640);
        let e = check_keystore(&p).unwrap_err().to_string();
        assert!(e.contains("chmod go-rwx"), "{e}");
        assert!(check_config(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn owner_must_be_root_or_me() {
        if euid() != 0 {
            return; // chown needs root; the mode rules are checked above
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("oxibeat.toml");
        std::fs::write(&p, "").unwrap();
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let e = check_config(&p).unwrap_err().to_string();
        assert!(e.contains("uid=65534") && e.contains("chown 0"), "{e}");
    }
}
