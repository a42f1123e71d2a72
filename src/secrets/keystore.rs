//! The keystore: secrets kept out of the configuration file, in `<path.data>/oxibeat.keystore`
//! (mode 0600), referenced as `${KEY}`.
//!
//! The file format is Beats' (libbeat/keystore/file_keystore.go), so a `filebeat.keystore`
//! renamed to `oxibeat.keystore` is read as is: `v1` followed by base64 of
//! salt (64 bytes) | IV (12 bytes) | AES-256-GCM ciphertext, the key being PBKDF2-HMAC-SHA512
//! of the (empty) password with the salt, 10,000 rounds; the plaintext is JSON
//! `{"KEY": {"value": "<base64>"}}`. As in Beats the password is empty: the encryption keeps
//! values out of casual view and backups of the configuration; the protection is the file
//! mode.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::num::NonZeroU32;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::Secret;

const VERSION: &[u8] = b"v1";
const SALT_LEN: usize = 64;
const IV_LEN: usize = 12;
const ITERATIONS: u32 = 10_000;
pub const FILE_NAME: &str = "oxibeat.keystore";

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("keystore {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("keystore {path} does not exist; create it with `oxibeat keystore create`")]
    Missing { path: PathBuf },
    #[error("keystore {path} already exists; use --force to replace it (its keys are lost)")]
    Exists { path: PathBuf },
    #[error("keystore {path}: {message}; it may be damaged: recreate it with `oxibeat keystore create --force` and add the keys again")]
    Corrupt { path: PathBuf, message: String },
    #[error("key {key:?} already exists in the keystore; use --force to replace its value")]
    KeyExists { key: String },
    #[error("key {key:?} is not in the keystore (`oxibeat keystore list` shows the keys)")]
    NoKey { key: String },
    #[error("invalid key {key:?}: use letters, digits, '_', '.' and '-' (it is written ${{{key}}} in the configuration)")]
    BadKey { key: String },
    #[error(transparent)]
    Perms(#[from] crate::config::perms::PermsError),
}

/// An open keystore: its keys and values in memory.
pub struct Keystore {
    path: PathBuf,
    secrets: BTreeMap<String, Secret>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, message: impl Into<String>) -> KeystoreError {
    KeystoreError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

pub fn path_in(data: &Path) -> PathBuf {
    data.join(FILE_NAME)
}

fn derive(salt: &[u8]) -> aead::LessSafeKey {
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        NonZeroU32::new(ITERATIONS).expect("non-zero"),
        salt,
        b"",
        &mut key,
    );
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, &key).expect("32-byte key");
    aead::LessSafeKey::new(unbound)
}

pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Keystore {
    /// Open the keystore at `path`; `None` if there is none. With `strict`, a file readable
    /// or writable by others, or owned by another user than root or this one, is refused.
    pub fn open(path: &Path, strict: bool) -> Result<Option<Keystore>, KeystoreError> {
        let raw = match fs::read(path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        if strict {
            crate::config::perms::check_keystore(path)?;
        }
        Ok(Some(Keystore {
            secrets: decode(path, &raw)?,
            path: path.to_path_buf(),
        }))
    }

    /// Open for a command that changes it; a missing keystore is an error.
    pub fn open_existing(path: &Path, strict: bool) -> Result<Keystore, KeystoreError> {
        Self::open(path, strict)?.ok_or_else(|| KeystoreError::Missing {
            path: path.to_path_buf(),
        })
    }

    /// Create an empty keystore (`force` replaces an existing one).
    pub fn create(path: &Path, force: bool) -> Result<Keystore, KeystoreError> {
        if path.exists() && !force {
            return Err(KeystoreError::Exists {
                path: path.to_path_buf(),
            });
        }
        let ks = Keystore {
            path: path.to_path_buf(),
            secrets: BTreeMap::new(),
        };
        ks.save()?;
        Ok(ks)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }

    pub fn get(&self, key: &str) -> Option<&Secret> {
        self.secrets.get(key)
    }

    pub fn add(&mut self, key: &str, value: Secret, force: bool) -> Result<(), KeystoreError> {
        if !valid_key(key) {
            return Err(KeystoreError::BadKey { key: key.into() });
        }
        if self.secrets.contains_key(key) && !force {
            return Err(KeystoreError::KeyExists { key: key.into() });
        }
        self.secrets.insert(key.to_string(), value);
        self.save()
    }

    pub fn remove(&mut self, key: &str) -> Result<(), KeystoreError> {
        if self.secrets.remove(key).is_none() {
            return Err(KeystoreError::NoKey { key: key.into() });
        }
        self.save()
    }

    /// Write atomically: a temp file created 0600, fsynced, renamed over the keystore.
    fn save(&self) -> Result<(), KeystoreError> {
        let path = &self.path;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let body = encode(&self.secrets).map_err(|m| corrupt(path, m))?;
        let tmp = PathBuf::from(format!("{}.tmp", path.display()));
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&body)
            .and_then(|_| f.sync_all())
            .map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(path)(e)
        })?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

fn encode(secrets: &BTreeMap<String, Secret>) -> Result<Vec<u8>, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let plain: serde_json::Map<String, serde_json::Value> = secrets
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::json!({ "value": b64.encode(v.expose().as_bytes()) }),
            )
        })
        .collect();
    let mut data = serde_json::to_vec(&plain).map_err(|e| e.to_string())?;
    data.push(b'\n');
    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    let mut iv = [0u8; IV_LEN];
    rng.fill(&mut salt)
        .and_then(|_| rng.fill(&mut iv))
        .map_err(|_| "no random numbers available".to_string())?;
    let key = derive(&salt);
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(iv),
        aead::Aad::empty(),
        &mut data,
    )
    .map_err(|_| "encryption failed".to_string())?;
    let mut payload = Vec::with_capacity(SALT_LEN + IV_LEN + data.len());
    payload.extend_from_slice(&salt);
    payload.extend_from_slice(&iv);
    payload.extend_from_slice(&data);
    let mut out = VERSION.to_vec();
    out.extend_from_slice(b64.encode(payload).as_bytes());
    Ok(out)
}

fn decode(path: &Path, raw: &[u8]) -> Result<BTreeMap<String, Secret>, KeystoreError> {
    let Some(body) = raw.strip_prefix(VERSION) else {
        return Err(corrupt(
            path,
            "not a keystore (it does not start with \"v1\")",
        ));
    };
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&text)
        .map_err(|_| corrupt(path, "the content is not base64"))?;
    if payload.len() < SALT_LEN + IV_LEN + aead::AES_256_GCM.tag_len() {
        return Err(corrupt(path, "too short"));
    }
    let (salt, rest) = payload.split_at(SALT_LEN);
    let (iv, sealed) = rest.split_at(IV_LEN);
    let key = derive(salt);
    let mut buf = sealed.to_vec();
    let nonce = aead::Nonce::try_assume_unique_for_key(iv).map_err(|_| corrupt(path, "bad IV"))?;
    let plain = key
        .open_in_place(nonce, aead::Aad::empty(), &mut buf)
        .map_err(|_| corrupt(path, "it cannot be decrypted (wrong format or damaged)"))?;
    let json: BTreeMap<String, serde_json::Value> = serde_json::from_slice(plain)
        .map_err(|_| corrupt(path, "the decrypted content is not the expected JSON"))?;
    let mut out = BTreeMap::new();
    for (k, v) in json {
        let value = v
            .get("value")
            .and_then(|x| x.as_str())
            .and_then(|s| b64.decode(s).ok())
            .ok_or_else(|| corrupt(path, format!("key {k:?} has no readable value")))?;
        out.insert(k, Secret::new(String::from_utf8_lossy(&value).into_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn create_add_list_remove_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_in(dir.path());
        assert!(Keystore::open(&p, true).unwrap().is_none());
        assert!(matches!(
            Keystore::open_existing(&p, true),
            Err(KeystoreError::Missing { .. })
        ));
        let mut ks = Keystore::create(&p, false).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            Keystore::create(&p, false),
            Err(KeystoreError::Exists { .. })
        ));
        ks.add("KAFKA_PASSWORD", Secret::new("s3cr3t pass"), false)
            .unwrap();
        ks.add("ES.API-KEY_2", Secret::new("id:key"), false)
            .unwrap();
        assert!(matches!(
            ks.add("KAFKA_PASSWORD", Secret::new("x"), false),
            Err(KeystoreError::KeyExists { .. })
        ));
        ks.add("KAFKA_PASSWORD", Secret::new("new"), true).unwrap();
        assert!(matches!(
            ks.add("bad key", Secret::new("x"), false),
            Err(KeystoreError::BadKey { .. })
        ));
        let raw = fs::read(&p).unwrap();
        assert!(raw.starts_with(b"v1"));
        assert!(
            !String::from_utf8_lossy(&raw).contains("new"),
            "values are encrypted"
        );
        let mut ks = Keystore::open_existing(&p, true).unwrap();
        assert_eq!(
            ks.keys().collect::<Vec<_>>(),
            ["ES.API-KEY_2", "KAFKA_PASSWORD"]
        );
        assert_eq!(ks.get("KAFKA_PASSWORD").unwrap().expose(), "new");
        ks.remove("ES.API-KEY_2").unwrap();
        assert!(matches!(
            ks.remove("nope"),
            Err(KeystoreError::NoKey { .. })
        ));
        let ks = Keystore::open_existing(&p, true).unwrap();
        assert_eq!(ks.keys().count(), 1);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    /// A keystore written the way Beats' FileKeystore.encrypt does it, step by step with
    /// its constants, decodes; garbage is a clear error.
    #[test]
    fn reads_the_beats_format_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("filebeat.keystore");
        let b64 = base64::engine::general_purpose::STANDARD;
        // Go's json.Encoder of map[string]{Value []byte `json:"value"`}: base64 values, "\n".
        let mut data = format!(
            "{{\"ES_PWD\":{{\"value\":\"{}\"}}}}\n",
            b64.encode("changeme")
        )
        .into_bytes();
        let salt = [7u8; 64];
        let iv = [9u8; 12];
        derive(&salt)
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(iv),
                aead::Aad::empty(),
                &mut data,
            )
            .unwrap();
        let mut payload = salt.to_vec();
        payload.extend(iv);
        payload.extend(data);
        fs::write(
            &p,
            [b"v1".to_vec(), b64.encode(payload).into_bytes()].concat(),
        )
        .unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let ks = Keystore::open(&p, true).unwrap().unwrap();
        assert_eq!(ks.get("ES_PWD").unwrap().expose(), "changeme");

        for garbage in [&b"v2abc"[..], b"v1!!!!", b"v1AAAA", b""] {
            fs::write(&p, garbage).unwrap();
            let e = Keystore::open(&p, false)
                .err()
                .expect("an error")
                .to_string();
            assert!(e.contains("keystore create --force"), "{e}");
        }
    }
}
