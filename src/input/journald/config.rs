//! `type = "journald"` options, named as Filebeat's journald input.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::filestream::ParserConfig;
use crate::config::units::{format_duration, parse_duration, ByteSize};
use crate::config::{yes, ConfigError};

/// Where to start when the registry has no cursor for a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Seek {
    /// The oldest entry.
    #[default]
    Head,
    /// Only entries written from now on.
    Tail,
    /// `cursor_seek_fallback` decides (Journalbeat's and Filebeat 7's mode; a saved cursor
    /// always wins whatever `seek` says, as in Filebeat 8.16+).
    Cursor,
    /// `since` ago.
    Since,
}

/// `include_matches`: `match = [...]` (Filebeat 8+) or a bare list (Filebeat 7).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IncludeMatches {
    #[default]
    None,
    List(Vec<String>),
    Table(IncludeMatchesTable),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeMatchesTable {
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    /// Removed in Filebeat 8.16; refused with a pointer to `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub and: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub or: Option<toml::Value>,
}

impl IncludeMatches {
    pub fn expressions(&self) -> &[String] {
        match self {
            IncludeMatches::None => &[],
            IncludeMatches::List(l) => l,
            IncludeMatches::Table(t) => &t.matches,
        }
    }
}

/// A signed duration such as `-24h` (Filebeat's `since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offset {
    pub negative: bool,
    pub duration: std::time::Duration,
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        let (negative, rest) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let duration = parse_duration(rest).map_err(serde::de::Error::custom)?;
        Ok(Offset { negative, duration })
    }
}

impl Serialize for Offset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sign = if self.negative { "-" } else { "" };
        s.serialize_str(&format!("{sign}{}", format_duration(self.duration)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldConfig {
    /// Keys the cursor in the registry (`journald::<id>::<path>`).
    pub id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Journal files or directories; empty reads the system journal.
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub seek: Seek,
    /// With `seek = "cursor"` and no saved cursor: head, tail or since.
    #[serde(default)]
    pub cursor_seek_fallback: Seek,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Offset>,
    #[serde(default)]
    pub include_matches: IncludeMatches,
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default)]
    pub syslog_identifiers: Vec<String>,
    #[serde(default)]
    pub transports: Vec<String>,
    #[serde(default)]
    pub facilities: Vec<i64>,
    /// Copy `host.hostname` of entries from other machines to `log.source.address`.
    #[serde(default)]
    pub save_remote_hostname: bool,
    /// Interleave every journal journalctl can see (`--merge`).
    #[serde(default)]
    pub merge: bool,
    #[serde(default = "JournaldConfig::default_journalctl")]
    pub journalctl_path: String,
    #[serde(default)]
    pub parsers: Vec<ParserConfig>,
    #[serde(default)]
    pub processors: Vec<toml::Value>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub fields_under_root: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Longer field values (and messages) are cut to this size.
    #[serde(default = "JournaldConfig::default_max_bytes")]
    pub message_max_bytes: ByteSize,
}

const TRANSPORTS: &[&str] = &["audit", "driver", "syslog", "journal", "stdout", "kernel"];

impl JournaldConfig {
    fn default_journalctl() -> String {
        "journalctl".into()
    }
    fn default_max_bytes() -> ByteSize {
        ByteSize(10 << 20)
    }

    /// Checks serde cannot express; `key` is `inputs[N]`.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if let IncludeMatches::Table(t) = &self.include_matches {
            if t.and.is_some() || t.or.is_some() {
                return Err(ConfigError::new(
                    format!("{key}.include_matches"),
                    "`and` and `or` were removed in Filebeat 8.16 and are not supported; list the expressions in include_matches.match and put \"+\" between the groups to OR them (as journalctl does)",
                ));
            }
        }
        for (i, m) in self.include_matches.expressions().iter().enumerate() {
            let k = format!("{key}.include_matches.match[{i}]");
            if m == "+" {
                continue;
            }
            super::journalctl::translate_match(m).map_err(|e| ConfigError::new(k, e))?;
        }
        for (i, t) in self.transports.iter().enumerate() {
            if !TRANSPORTS.contains(&t.as_str()) {
                return Err(ConfigError::new(
                    format!("{key}.transports[{i}]"),
                    format!(
                        "unknown transport {t:?}; use one of {}",
                        TRANSPORTS.join(", ")
                    ),
                ));
            }
        }
        for (i, f) in self.facilities.iter().enumerate() {
            if !(0..=23).contains(f) {
                return Err(ConfigError::new(
                    format!("{key}.facilities[{i}]"),
                    format!("facility {f} is invalid, it must be in the range 0-23"),
                ));
            }
        }
        let wants_since = self.seek == Seek::Since
            || (self.seek == Seek::Cursor && self.cursor_seek_fallback == Seek::Since);
        if wants_since && self.since.is_none() {
            return Err(ConfigError::new(
                format!("{key}.since"),
                "required with seek = \"since\" (or seek = \"cursor\" and cursor_seek_fallback = \"since\"), e.g. since = \"-24h\"",
            ));
        }
        if self.cursor_seek_fallback == Seek::Cursor {
            return Err(ConfigError::new(
                format!("{key}.cursor_seek_fallback"),
                "must be head, tail or since",
            ));
        }
        for (i, p) in self.paths.iter().enumerate() {
            if p.is_empty() {
                return Err(ConfigError::new(
                    format!("{key}.paths[{i}]"),
                    "empty path; name a journal file or directory, or leave paths out for the system journal",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<JournaldConfig, ConfigError> {
        let c: JournaldConfig =
            crate::config::typed(text.parse::<toml::Value>().unwrap(), "inputs[0]")?;
        c.validate("inputs[0]")?;
        Ok(c)
    }

    #[test]
    fn filebeat_options() {
        let c = parse(
            r#"
id = "sys"
paths = ["/var/log/journal"]
seek = "cursor"
cursor_seek_fallback = "since"
since = "-24h"
include_matches.match = ["_SYSTEMD_UNIT=nginx.service", "+", "systemd.unit=sshd.service"]
units = ["cron.service"]
syslog_identifiers = ["sudo"]
transports = ["syslog", "journal"]
facilities = [4, 10]
[[parsers]]
ndjson = { target = "" }
"#,
        )
        .unwrap();
        assert_eq!(c.seek, Seek::Cursor);
        assert_eq!(c.since.unwrap().duration.as_secs(), 86400);
        assert!(c.since.unwrap().negative);
        assert_eq!(c.include_matches.expressions().len(), 3);
        // Filebeat 7's list form.
        let c = parse("id = \"a\"\ninclude_matches = [\"_TRANSPORT=kernel\"]\n").unwrap();
        assert_eq!(c.include_matches.expressions(), ["_TRANSPORT=kernel"]);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("id = \"a\"\nfacilities = [24]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inputs[0].facilities[0]") && e.contains("0-23"),
            "{e}"
        );
        let e = parse("id = \"a\"\ninclude_matches.match = [\"nonsense\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("include_matches.match[0]"), "{e}");
        let e = parse("id = \"a\"\ninclude_matches.or = [{ match = [\"A=b\"] }]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"+\""), "{e}");
        let e = parse("id = \"a\"\nseek = \"since\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs[0].since"), "{e}");
        let e = parse("id = \"a\"\ntransports = [\"smoke\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transports[0]"), "{e}");
        let e = parse("id = \"a\"\nseek = \"middle\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("inputs[0].seek"), "{e}");
        let e = parse("id = \"a\"\nbackof = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("backof"), "{e}");
    }
}
