//! Where `${NAME}` in the configuration finds its value, in this order:
//!
//! 1. the keystore (`<path.data>/oxibeat.keystore`, `oxibeat keystore add NAME`), first as in
//!    Beats, whose resolver asks the keystore before the environment;
//! 2. systemd credentials: the file `$CREDENTIALS_DIRECTORY/NAME` (`LoadCredential=` or
//!    `LoadCredentialEncrypted=` in the unit), so a fleet ships passwords without writing
//!    them to disk in clear; a trailing newline is dropped;
//! 3. the environment.
//!
//! Values found in 1 and 2 are secrets: `Resolver::redact` replaces them in anything shown
//! (exported configuration, error messages, log lines).

pub mod keystore;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::Secret;

/// Resolves `${NAME}` and remembers which values were secret.
#[derive(Default)]
pub struct Resolver {
    keystore: Option<keystore::Keystore>,
    credentials: Option<PathBuf>,
    /// Secret values handed out, to redact them from output.
    seen: RwLock<Vec<Secret>>,
}

impl Resolver {
    /// The keystore under `data` (if any; checked with `strict`), and
    /// `$CREDENTIALS_DIRECTORY`.
    pub fn new(data: &Path, strict: bool) -> Result<Resolver, keystore::KeystoreError> {
        let keystore = keystore::Keystore::open(&keystore::path_in(data), strict)?;
        Ok(Resolver {
            keystore,
            credentials: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            seen: RwLock::new(Vec::new()),
        })
    }

    /// For tests and tools: explicit sources.
    pub fn with(keystore: Option<keystore::Keystore>, credentials: Option<PathBuf>) -> Resolver {
        Resolver {
            keystore,
            credentials,
            seen: RwLock::new(Vec::new()),
        }
    }

    pub fn keystore_path(&self) -> Option<&Path> {
        self.keystore.as_ref().map(|k| k.path())
    }

    fn credential(&self, name: &str) -> Option<String> {
        let dir = self.credentials.as_ref()?;
        // A credential name is a file name: nothing that leaves the directory.
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return None;
        }
        let mut v = std::fs::read_to_string(dir.join(name)).ok()?;
        if v.ends_with('\n') {
            v.pop();
            if v.ends_with('\r') {
                v.pop();
            }
        }
        Some(v)
    }

    fn remember(&self, v: &str) {
        if v.is_empty() {
            return;
        }
        let mut seen = self.seen.write().unwrap_or_else(|e| e.into_inner());
        if !seen.iter().any(|s| s.expose() == v) {
            seen.push(Secret::new(v));
        }
    }

    /// The value of `${name}`.
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.keystore.as_ref().and_then(|k| k.get(name)) {
            let v = v.expose().to_string();
            self.remember(&v);
            return Some(v);
        }
        if let Some(v) = self.credential(name) {
            self.remember(&v);
            return Some(v);
        }
        std::env::var(name).ok()
    }

    /// `text` with every secret value handed out so far replaced by `xxxxx`.
    pub fn redact(&self, text: &str) -> String {
        let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
        redact_with(text, &seen)
    }

    /// The secret values handed out so far (for the log redactor).
    pub fn secrets(&self) -> Vec<Secret> {
        self.seen.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Replace each secret (longest first, so a secret inside another is not half-masked).
pub fn redact_with(text: &str, secrets: &[Secret]) -> String {
    let mut sorted: Vec<&str> = secrets
        .iter()
        .map(Secret::expose)
        .filter(|s| !s.is_empty())
        .collect();
    if sorted.is_empty() {
        return text.to_string();
    }
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in sorted {
        if out.contains(s) {
            out = out.replace(s, "xxxxx");
        }
    }
    out
}

/// The secrets known to this process, shared with the log writer (`logging`), which
/// redacts them from every line.
pub fn shared() -> &'static Arc<RwLock<Vec<Secret>>> {
    static SHARED: std::sync::OnceLock<Arc<RwLock<Vec<Secret>>>> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| Arc::new(RwLock::new(Vec::new())))
}

/// Publish the secrets `r` handed out to the log redactor.
pub fn publish(r: &Resolver) {
    let mut g = shared().write().unwrap_or_else(|e| e.into_inner());
    for s in r.secrets() {
        if !g.contains(&s) {
            g.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keystore_credentials_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut ks = keystore::Keystore::create(&dir.path().join("ks"), false).unwrap();
        ks.add("BOTH", Secret::new("from-keystore"), false).unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(creds.join("BOTH"), "from-credential\n").unwrap();
        std::fs::write(creds.join("CRED"), "cred-value\n").unwrap();
        std::env::set_var("OXIBEAT_TEST_ENV_ONLY", "env-value");
        std::env::set_var("CRED", "env-loses");
        let r = Resolver::with(Some(ks), Some(creds));
        assert_eq!(r.lookup("BOTH").as_deref(), Some("from-keystore"));
        assert_eq!(r.lookup("CRED").as_deref(), Some("cred-value"));
        assert_eq!(
            r.lookup("OXIBEAT_TEST_ENV_ONLY").as_deref(),
            Some("env-value")
        );
        assert_eq!(r.lookup("../etc/passwd"), None);
        assert_eq!(r.lookup("NOPE_NOT_SET_ANYWHERE"), None);
        let shown = r.redact("user:from-keystore@host cred-value env-value");
        assert_eq!(shown, "user:xxxxx@host xxxxx env-value");
    }

    #[test]
    fn longest_first() {
        let s = [Secret::new("abc"), Secret::new("abcdef")];
        assert_eq!(redact_with("x abcdef y abc", &s), "x xxxxx y xxxxx");
    }
}
