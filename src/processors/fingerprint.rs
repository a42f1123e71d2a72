//! `fingerprint`: a hash of some fields, as Filebeat's processor
//! (libbeat/processors/fingerprint): the fields, sorted by name, are written as
//! `|name|value` each, then a final `|`, and hashed with `method` (md5, sha1, sha256 (default),
//! sha384, sha512, xxhash = XXH64 seed 0), written with `encoding` (hex (default), base32 with
//! padding, base64 standard) into `target_field` (default `fingerprint`).
//!
//! `target_field = "@metadata._id"` gives each event a deterministic document id: the
//! Elasticsearch output then sends it as `_id`, so a redelivered event (after a crash or a
//! connection reset in the middle of a bulk request) is refused with 409 instead of stored twice.
//!
//! Values: strings as they are, numbers and booleans as text, `@timestamp` in RFC 3339 with
//! nanoseconds; an object or array is an error (as in Filebeat). A missing field is an error
//! unless `ignore_missing`. On error the event is kept unchanged with `error.message` added.

use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;

use super::{append_error, lookup, options, put_field, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::Event;

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Method {
    Md5,
    Sha1,
    #[default]
    Sha256,
    Sha384,
    Sha512,
    Xxhash,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Hex,
    Base32,
    Base64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    fields: Vec<String>,
    #[serde(default = "default_target")]
    target_field: String,
    #[serde(default)]
    method: Method,
    #[serde(default)]
    encoding: Encoding,
    #[serde(default)]
    ignore_missing: bool,
}

fn default_target() -> String {
    "fingerprint".into()
}

#[derive(Debug)]
pub struct Fingerprint {
    fields: Vec<String>,
    target: String,
    method: Method,
    encoding: Encoding,
    ignore_missing: bool,
}

impl Fingerprint {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        if o.fields.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.fields"),
                "give at least one field to hash",
            ));
        }
        if o.target_field.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.target_field"),
                "must name a field; leave it out to use \"fingerprint\"",
            ));
        }
        let mut fields = o.fields;
        fields.sort();
        Ok(Fingerprint {
            fields,
            target: o.target_field,
            method: o.method,
            encoding: o.encoding,
            ignore_missing: o.ignore_missing,
        })
    }

    /// The string that is hashed (Filebeat's `writeFields`).
    fn source(&self, ev: &Event) -> Result<String, String> {
        let mut s = String::new();
        for k in &self.fields {
            let text = match lookup(ev, k) {
                None if self.ignore_missing => continue,
                None => return Err(format!("failed to find field [{k}] in event")),
                Some(found) => match found.as_str() {
                    Some(t) => t.to_string(),
                    None => match found.value() {
                        Some(Value::Object(_) | Value::Array(_)) => {
                            return Err(format!(
                                "cannot compute fingerprint using non-scalar field [{k}]"
                            ))
                        }
                        Some(Value::Null) | None => "<nil>".to_string(),
                        Some(v) => v.to_string(),
                    },
                },
            };
            s.push('|');
            s.push_str(k);
            s.push('|');
            s.push_str(&text);
        }
        s.push('|');
        Ok(s)
    }

    fn hash(&self, data: &[u8]) -> Vec<u8> {
        match self.method {
            Method::Md5 => md5::Md5::digest(data).to_vec(),
            Method::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Method::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Method::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Method::Sha512 => sha2::Sha512::digest(data).to_vec(),
            Method::Xxhash => xxhash_rust::xxh64::xxh64(data, 0).to_be_bytes().to_vec(),
        }
    }

    fn encode(&self, h: &[u8]) -> String {
        use base64::Engine;
        match self.encoding {
            Encoding::Hex => h.iter().map(|b| format!("{b:02x}")).collect(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(h),
            Encoding::Base32 => base32(h),
        }
    }
}

/// RFC 4648 base32 with padding (Go's `base32.StdEncoding`).
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(ALPHABET[((n >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Processor for Fingerprint {
    fn run(&self, event: &mut Event) -> Outcome {
        match self.source(event) {
            Ok(s) => {
                let v = self.encode(&self.hash(s.as_bytes()));
                if let Err(e) = put_field(event, &self.target, Value::String(v)) {
                    append_error(event, format!("failed to compute fingerprint: {e}"));
                }
            }
            Err(e) => append_error(event, format!("failed to compute fingerprint: {e}")),
        }
        Outcome::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use serde_json::json;

    fn fp(opts: &str, ev: Event) -> serde_json::Value {
        run(&format!("[[processors]]\nfingerprint = {{ {opts} }}\n"), ev).1
    }

    #[test]
    fn sorted_fields_with_separators() {
        // "|field1|foo|field2|bar|" hashed: the fields are sorted, so the order given does not
        // matter.
        let ev = || map(json!({"field1": "foo", "field2": "bar"}));
        let a = fp("fields = [\"field2\", \"field1\"]", ev());
        let b = fp("fields = [\"field1\", \"field2\"]", ev());
        assert_eq!(a["fingerprint"], b["fingerprint"]);
        let want: String = sha2::Sha256::digest(b"|field1|foo|field2|bar|")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(a["fingerprint"], want.as_str());
    }

    #[test]
    fn methods_and_encodings() {
        let ev = || map(json!({"n": 42, "ok": true}));
        let v = fp("fields = [\"n\", \"ok\"], method = \"sha1\"", ev());
        let want: String = sha1::Sha1::digest(b"|n|42|ok|true|")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v["fingerprint"], want.as_str());
        let v = fp(
            "fields = [\"n\"], method = \"md5\", encoding = \"base64\", target_field = \"x.id\"",
            ev(),
        );
        assert_eq!(v["x"]["id"].as_str().unwrap().len(), 24);
        let v = fp("fields = [\"n\"], method = \"xxhash\"", ev());
        assert_eq!(v["fingerprint"].as_str().unwrap().len(), 16);
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI======");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
    }

    #[test]
    fn metadata_id_missing_and_non_scalar() {
        let v = fp(
            "fields = [\"message\", \"log.offset\"], target_field = \"@metadata._id\"",
            line("hello"),
        );
        assert!(v.get("fingerprint").is_none());
        assert_eq!(v["@metadata"]["_id"].as_str().unwrap().len(), 64);
        let v = fp("fields = [\"nope\"]", map(json!({"a": 1})));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed to find field [nope]"));
        assert!(v.get("fingerprint").is_none());
        let v = fp(
            "fields = [\"nope\", \"a\"], ignore_missing = true",
            map(json!({"a": 1})),
        );
        assert!(v["fingerprint"].is_string());
        let v = fp("fields = [\"o\"]", map(json!({"o": {"x": 1}})));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("non-scalar"));
        assert!(err("[[processors]]\nfingerprint = { fields = [] }\n")
            .to_string()
            .contains("fields"));
        assert!(
            err("[[processors]]\nfingerprint = { fields = [\"a\"], method = \"crc\" }\n")
                .to_string()
                .contains("method")
        );
    }
}
