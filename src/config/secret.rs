//! A secret value (password, passphrase, API key): read like a string whatever it looks like
//! (`password = 12345678` is the string "12345678"), never shown by `Debug` or `Display`, and
//! never echoed in a deserialisation error.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Does a raw client property (`[output.kafka.librdkafka]`, passed to librdkafka as it is)
/// hold a secret? Any name with `password`, `secret`, `token` or `key` in it (`sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`, `ssl.key.pem`, `sasl.oauthbearer.client.secret`,
/// `ssl_key`), and `sasl.oauthbearer.config` (it may embed credentials), except the public
/// settings that only name where such a thing is: `*.location`, `*.url`, `*.file` and
/// `sasl.kerberos.keytab` (`ssl.key.location`, `sasl.oauthbearer.token.endpoint.url`).
pub fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n == "sasl.oauthbearer.config" {
        return true;
    }
    let public = [".location", ".url", ".file", ".keytab"]
        .iter()
        .any(|s| n.ends_with(s));
    !public
        && ["password", "passwd", "secret", "token", "key"]
            .iter()
            .any(|w| n.contains(w))
}

#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for the one place that hands it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'v> serde::de::Visitor<'v> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (secret values are never shown)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'v>>(self, _: A) -> Result<Secret, A::Error> {
                Err(serde::de::Error::custom(
                    "expected a string, found a table (the value is not shown)",
                ))
            }
            fn visit_seq<A: serde::de::SeqAccess<'v>>(self, _: A) -> Result<Secret, A::Error> {
                Err(serde::de::Error::custom(
                    "expected a string, found an array (the value is not shown)",
                ))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        password: Secret,
    }

    #[test]
    fn secret_properties() {
        for p in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "ssl_key",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "my.private.TOKEN",
        ] {
            assert!(is_secret_property(p), "{p}");
        }
        for p in [
            "ssl.key.location",
            "ssl.keystore.location",
            "sasl.oauthbearer.token.endpoint.url",
            "sasl.oauthbearer.assertion.private.key.file",
            "sasl.kerberos.keytab",
            "socket.keepalive.enable",
            "linger.ms",
            "sasl.username",
        ] {
            assert!(!is_secret_property(p), "{p}");
        }
    }

    #[test]
    fn numbers_are_strings_and_nothing_is_shown() {
        // As the configuration loader does it: text → tree → typed (no source snippets).
        let typed = |s: &str| crate::config::typed::<T>(s.parse::<toml::Value>().unwrap(), "");
        let t = typed("password = 20261201").unwrap();
        assert_eq!(t.password.expose(), "20261201");
        assert_eq!(format!("{:?} {}", t.password, t.password), "\"***\" ***");
        let e = typed("password = [\"hunter2\"]").err().unwrap().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
