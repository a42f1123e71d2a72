//! `dissect`: split a string field with a tokenizer such as
//! `"%{client.ip} - %{?ident} [%{+ts} %{+ts}] %{status|integer}"`.
//!
//! Keys: `%{key}`; `%{}` / `%{?key}` skip; `%{+key}` append (`/N` orders the parts);
//! `%{*key}` + `%{&key}` name a key by a value; `->` skips repeated delimiters (padding);
//! `|integer|long|float|double|boolean|ip` converts. The tokenizer is parsed once at load.
//! On a mismatch the event is kept, `log.flags` gets `dissect_parsing_error`, and (unless
//! `ignore_failure`) `error.message` says why, as in Beats.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::{add_tags, append_error, has_field, lookup, options, put_field, Outcome, Processor};
use crate::config::ConfigError;
use crate::event::Event;

const FLAG_PARSING_ERROR: &str = "dissect_parsing_error";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Opts {
    tokenizer: String,
    #[serde(default = "default_field")]
    field: String,
    #[serde(default = "default_prefix")]
    target_prefix: String,
    #[serde(default)]
    ignore_failure: bool,
    #[serde(default)]
    overwrite_keys: bool,
    #[serde(default)]
    trim_values: Trim,
    #[serde(default = "default_trim_chars")]
    trim_chars: String,
}

fn default_field() -> String {
    "message".into()
}
fn default_prefix() -> String {
    "dissect".into()
}
fn default_trim_chars() -> String {
    " ".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Trim {
    #[default]
    None,
    Left,
    Right,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Skip,
    NamedSkip,
    Append,
    Pointer,
    Indirect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    Integer,
    Float,
    Boolean,
    Ip,
}

#[derive(Debug)]
struct Key {
    kind: Kind,
    name: String,
    ordinal: u32,
    greedy: bool,
    dtype: Option<DataType>,
    /// The literal text after this key; empty only for the last key.
    delim_after: String,
    /// What joins an appended part to the previous ones: the delimiter before this key.
    join: String,
}

#[derive(Debug)]
struct Tokenizer {
    prefix: String,
    keys: Vec<Key>,
}

impl Tokenizer {
    fn parse(t: &str) -> Result<Tokenizer, String> {
        let mut keys: Vec<Key> = Vec::new();
        let mut rest = t;
        let prefix = match rest.find("%{") {
            Some(i) => {
                let p = rest[..i].to_string();
                rest = &rest[i..];
                p
            }
            None => return Err("the tokenizer has no %{key}; add at least one".into()),
        };
        let mut prev_delim = prefix.clone();
        while let Some(body) = rest.strip_prefix("%{") {
            let close = body
                .find('}')
                .ok_or_else(|| format!("unterminated key in {t:?}: a %{{ has no closing }}"))?;
            let raw = &body[..close];
            rest = &body[close + 1..];
            let delim_end = rest.find("%{").unwrap_or(rest.len());
            let delim = rest[..delim_end].to_string();
            rest = &rest[delim_end..];
            if delim.is_empty() && !rest.is_empty() {
                return Err(format!(
                    "keys %{{{raw}}} and the next one have no delimiter between them; dissect needs text to split on"
                ));
            }
            let mut key = parse_key(raw)?;
            key.join = if prev_delim.is_empty() {
                " ".into()
            } else {
                prev_delim
            };
            key.delim_after = delim.clone();
            prev_delim = delim;
            keys.push(key);
        }
        for k in &keys {
            if k.kind == Kind::Indirect
                && !keys
                    .iter()
                    .any(|r| matches!(r.kind, Kind::Pointer | Kind::NamedSkip) && r.name == k.name)
            {
                return Err(format!(
                    "%{{&{}}} needs a %{{*{}}} or %{{?{}}} key to take its name from",
                    k.name, k.name, k.name
                ));
            }
        }
        if !keys
            .iter()
            .any(|k| !matches!(k.kind, Kind::Skip | Kind::NamedSkip | Kind::Pointer))
        {
            return Err("the tokenizer only skips; name at least one key to extract".into());
        }
        Ok(Tokenizer { prefix, keys })
    }

    /// Split `s`; returns (key index, value) pairs in tokenizer order.
    fn split<'s>(&self, s: &'s str) -> Result<Vec<&'s str>, String> {
        if !s.starts_with(&self.prefix) {
            return Err(format!(
                "could not find beginning delimiter: `{}` in remaining: `{s}`",
                self.prefix
            ));
        }
        let mut off = self.prefix.len();
        let mut out = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            let start = off;
            let end = if k.delim_after.is_empty() {
                off = s.len();
                s.len()
            } else {
                let d = k.delim_after.as_str();
                let pos = s[off..].find(d).ok_or_else(|| {
                    format!(
                        "could not find delimiter: `{d}` in remaining: `{}`",
                        &s[off..]
                    )
                })?;
                let end = off + pos;
                off = end + d.len();
                if k.greedy {
                    while s[off..].starts_with(d) {
                        off += d.len();
                    }
                }
                end
            };
            out.push(&s[start..end]);
        }
        Ok(out)
    }
}

fn parse_key(raw: &str) -> Result<Key, String> {
    let mut name = raw;
    let mut dtype = None;
    if let Some((n, t)) = name.rsplit_once('|') {
        dtype = Some(match t {
            "integer" | "long" => DataType::Integer,
            "float" | "double" => DataType::Float,
            "boolean" => DataType::Boolean,
            "ip" => DataType::Ip,
            other => {
                return Err(format!(
                    "unknown data type {other:?} in %{{{raw}}}; use integer, long, float, double, boolean or ip"
                ))
            }
        });
        name = n;
    }
    let mut greedy = false;
    if let Some(n) = name.strip_suffix("->") {
        greedy = true;
        name = n;
    }
    let mut ordinal = 0;
    if let Some((n, o)) = name.rsplit_once('/') {
        if let Ok(v) = o.parse::<u32>() {
            ordinal = v;
            name = n;
        }
    }
    let (kind, name) = match name.chars().next() {
        None => (Kind::Skip, ""),
        Some('?') => (Kind::NamedSkip, &name[1..]),
        Some('+') => (Kind::Append, &name[1..]),
        Some('*') => (Kind::Pointer, &name[1..]),
        Some('&') => (Kind::Indirect, &name[1..]),
        Some(_) => (Kind::Normal, name),
    };
    if name.starts_with(['?', '+', '*', '&']) {
        return Err(format!(
            "%{{{raw}}} mixes key modifiers; use one of ?, +, *, &"
        ));
    }
    if name.is_empty() && kind != Kind::Skip && kind != Kind::NamedSkip {
        return Err(format!("%{{{raw}}} needs a key name"));
    }
    if dtype.is_some() && matches!(kind, Kind::Skip | Kind::NamedSkip | Kind::Pointer) {
        return Err(format!("%{{{raw}}}: a skipped key cannot have a data type"));
    }
    Ok(Key {
        kind,
        name: name.to_string(),
        ordinal,
        greedy,
        dtype,
        delim_after: String::new(),
        join: String::new(),
    })
}

#[derive(Debug)]
pub struct Dissect {
    tokenizer: Tokenizer,
    field: String,
    target_prefix: String,
    ignore_failure: bool,
    overwrite_keys: bool,
    trim: Trim,
    trim_chars: Vec<char>,
}

impl Dissect {
    pub fn new(v: toml::Value, key: &str) -> Result<Self, ConfigError> {
        let o: Opts = options(v, key)?;
        let tokenizer = Tokenizer::parse(&o.tokenizer)
            .map_err(|e| ConfigError::new(format!("{key}.tokenizer"), e))?;
        if o.field.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.field"),
                "must name a field",
            ));
        }
        Ok(Dissect {
            tokenizer,
            field: o.field,
            target_prefix: o.target_prefix,
            ignore_failure: o.ignore_failure,
            overwrite_keys: o.overwrite_keys,
            trim: o.trim_values,
            trim_chars: o.trim_chars.chars().collect(),
        })
    }

    fn trim<'a>(&self, s: &'a str) -> &'a str {
        let set = &self.trim_chars[..];
        match self.trim {
            Trim::None => s,
            Trim::Left => s.trim_start_matches(set),
            Trim::Right => s.trim_end_matches(set),
            Trim::All => s.trim_matches(set),
        }
    }

    /// The extracted (key, value) pairs, in first-seen key order.
    fn extract(&self, s: &str) -> Result<Vec<(String, Value)>, String> {
        let parts = self.tokenizer.split(s)?;
        let keys = &self.tokenizer.keys;
        let mut refs: HashMap<&str, &str> = HashMap::new();
        let mut out: Vec<(String, Value)> = Vec::new();
        let mut appends: Vec<(usize, u32, usize)> = Vec::new();
        for (i, (k, raw)) in keys.iter().zip(&parts).enumerate() {
            let v = self.trim(raw);
            match k.kind {
                Kind::Skip => {}
                Kind::NamedSkip | Kind::Pointer => {
                    refs.insert(&k.name, v);
                }
                Kind::Normal => set(&mut out, &k.name, convert(v, k.dtype)?),
                Kind::Indirect => {
                    if let Some(name) = refs.get(k.name.as_str()) {
                        set(&mut out, name, convert(v, k.dtype)?);
                    }
                }
                Kind::Append => appends.push((i, k.ordinal, 0)),
            }
        }
        // Appended parts join in ordinal order, then tokenizer order.
        appends.sort_by_key(|&(i, ord, _)| (ord, i));
        let mut joined: Vec<(&str, String, Option<DataType>)> = Vec::new();
        for (i, _, _) in appends {
            let k = &keys[i];
            let v = self.trim(parts[i]);
            match joined.iter_mut().find(|(n, _, _)| *n == k.name) {
                Some((_, acc, _)) => {
                    acc.push_str(&k.join);
                    acc.push_str(v);
                }
                None => joined.push((&k.name, v.to_string(), k.dtype)),
            }
        }
        for (name, v, dtype) in joined {
            set(&mut out, name, convert(&v, dtype)?);
        }
        Ok(out)
    }

    fn path(&self, key: &str) -> String {
        if self.target_prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.target_prefix)
        }
    }

    fn fail(&self, ev: &mut Event, msg: String, flag: bool) {
        tracing::debug!(error = %msg, "dissect failed");
        if flag {
            if let Err(e) = add_tags(
                ev.fields_mut(),
                "log.flags",
                &[FLAG_PARSING_ERROR.to_string()],
            ) {
                tracing::debug!(error = %e, "dissect: cannot flag the event");
            }
        }
        if !self.ignore_failure {
            append_error(ev, msg);
        }
    }
}

fn set(out: &mut Vec<(String, Value)>, name: &str, v: Value) {
    match out.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = v,
        None => out.push((name.to_string(), v)),
    }
}

fn convert(v: &str, dtype: Option<DataType>) -> Result<Value, String> {
    let bad = |t: &str| format!("unable to convert value `{v}` to {t}");
    Ok(match dtype {
        None => Value::String(v.to_string()),
        Some(DataType::Integer) => Value::from(v.parse::<i64>().map_err(|_| bad("integer"))?),
        Some(DataType::Float) => {
            let f = v.parse::<f64>().map_err(|_| bad("float"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| bad("float"))?
        }
        Some(DataType::Boolean) => Value::Bool(match v {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => return Err(bad("boolean")),
        }),
        Some(DataType::Ip) => {
            v.parse::<std::net::IpAddr>().map_err(|_| bad("ip"))?;
            Value::String(v.to_string())
        }
    })
}

impl Processor for Dissect {
    fn run(&self, event: &mut Event) -> Outcome {
        let extracted = match lookup(event, &self.field) {
            None => Err((format!("field `{}` not found", self.field), false)),
            Some(found) => match found.as_str() {
                None => Err((
                    format!("field is not a string, field: `{}`", self.field),
                    false,
                )),
                Some(s) => self.extract(s).map_err(|e| (e, true)),
            },
        };
        let pairs = match extracted {
            Ok(p) => p,
            Err((msg, flag)) => {
                self.fail(event, msg, flag);
                return Outcome::Keep;
            }
        };
        let paths: Vec<String> = pairs.iter().map(|(k, _)| self.path(k)).collect();
        // Check every key before writing any, so a conflict leaves the event untouched.
        if !self.overwrite_keys {
            if let Some(p) = paths.iter().find(|p| has_field(event, p)) {
                let msg = format!("cannot override existing key with `{p}`");
                self.fail(event, msg, false);
                return Outcome::Keep;
            }
        }
        for (path, (_, v)) in paths.iter().zip(pairs) {
            if let Err(e) = put_field(event, path, v) {
                self.fail(event, e, false);
                break;
            }
        }
        Outcome::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use serde_json::json;

    fn d(tok: &str) -> Dissect {
        let v: toml::Value =
            toml::from_str(&format!("tokenizer = {}", toml::Value::String(tok.into())))
                .expect("test TOML");
        Dissect::new(v, "processors[0].dissect").expect("valid tokenizer")
    }

    fn ex(tok: &str, s: &str) -> Result<Value, String> {
        d(tok)
            .extract(s)
            .map(|v| Value::Object(v.into_iter().collect()))
    }

    #[test]
    fn basic_keys_and_prefix() {
        assert_eq!(
            ex("%{a} %{b} %{c}", "1 2 3 4").unwrap(),
            json!({"a": "1", "b": "2", "c": "3 4"})
        );
        assert_eq!(
            ex("[%{a}] %{b}", "[x y] z").unwrap(),
            json!({"a": "x y", "b": "z"})
        );
        assert!(ex("[%{a}] %{b}", "x] z")
            .unwrap_err()
            .contains("beginning delimiter"));
        assert!(ex("%{a} - %{b}", "no dash")
            .unwrap_err()
            .contains("could not find delimiter"));
        assert_eq!(
            ex("%{a}:%{b};", "1:2;rest").unwrap(),
            json!({"a": "1", "b": "2"})
        );
    }

    #[test]
    fn skip_append_and_ordinals() {
        assert_eq!(ex("%{} %{?x} %{a}", "1 2 3").unwrap(), json!({"a": "3"}));
        assert_eq!(
            ex("%{+ts} %{+ts} %{msg}", "Nov 25 hello").unwrap(),
            json!({"ts": "Nov 25", "msg": "hello"})
        );
        assert_eq!(
            ex("%{+k/2} %{+k/1}", "hello world").unwrap(),
            json!({"k": "world hello"})
        );
        assert_eq!(ex("%{+k}-%{+k}", "a-b").unwrap(), json!({"k": "a-b"}));
    }

    #[test]
    fn reference_keys() {
        assert_eq!(
            ex("%{*k} %{&k}", "user alice").unwrap(),
            json!({"user": "alice"})
        );
        assert_eq!(ex("%{?k}=%{&k}", "id=7").unwrap(), json!({"id": "7"}));
    }

    #[test]
    fn right_padding() {
        assert_eq!(
            ex("%{a->} %{b}", "x      y").unwrap(),
            json!({"a": "x", "b": "y"})
        );
        assert_eq!(
            ex("%{a} %{b}", "x  y").unwrap(),
            json!({"a": "x", "b": " y"})
        );
    }

    #[test]
    fn data_types() {
        assert_eq!(
            ex(
                "%{n|integer} %{f|float} %{b|boolean} %{ip|ip}",
                "42 1.5 true 10.0.0.1"
            )
            .unwrap(),
            json!({"n": 42, "f": 1.5, "b": true, "ip": "10.0.0.1"})
        );
        assert!(ex("%{n|integer}", "x").unwrap_err().contains("integer"));
    }

    #[test]
    fn processor_writes_under_prefix() {
        let cfg = "[[processors]]\ndissect = { tokenizer = \"%{level} %{msg}\" }\n";
        let (_, v) = run(cfg, line("INFO started ok"));
        assert_eq!(v["dissect"], json!({"level": "INFO", "msg": "started ok"}));
        assert_eq!(v["message"], "INFO started ok");
    }

    #[test]
    fn root_prefix_trim_and_overwrite() {
        let cfg = "[[processors]]\ndissect = { tokenizer = \"%{service.pid|integer} - %{message}\", target_prefix = \"\", overwrite_keys = true, trim_values = \"all\" }\n";
        let (_, v) = run(cfg, line("321 -  up and running  "));
        assert_eq!(v["service"]["pid"], 321);
        assert_eq!(v["message"], "up and running");
    }

    #[test]
    fn existing_key_without_overwrite_fails_cleanly() {
        let cfg =
            "[[processors]]\ndissect = { tokenizer = \"%{a} %{message}\", target_prefix = \"\" }\n";
        let (_, v) = run(cfg, line("1 2"));
        assert!(v.get("a").is_none(), "nothing written");
        assert_eq!(v["message"], "1 2");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot override existing key"));
    }

    #[test]
    fn mismatch_flags_the_event() {
        let cfg = "[[processors]]\ndissect = { tokenizer = \"%{a} - %{b}\" }\n";
        let (_, v) = run(cfg, line("nothing to split"));
        assert_eq!(v["log"]["flags"], json!(["dissect_parsing_error"]));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not find delimiter"));
        assert!(v.get("dissect").is_none());
        let cfg =
            "[[processors]]\ndissect = { tokenizer = \"%{a} - %{b}\", ignore_failure = true }\n";
        let (_, v) = run(cfg, line("nothing to split"));
        assert_eq!(v["log"]["flags"], json!(["dissect_parsing_error"]));
        assert!(v.get("error").is_none());
    }

    #[test]
    fn other_field_and_non_string() {
        let cfg = "[[processors]]\ndissect = { tokenizer = \"%{a}/%{b}\", field = \"p\", target_prefix = \"x\" }\n";
        let (_, v) = run(cfg, map(json!({"p": "1/2"})));
        assert_eq!(v["x"], json!({"a": "1", "b": "2"}));
        let (_, v) = run(cfg, map(json!({"p": 5})));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a string"));
        let (_, v) = run(cfg, map(json!({})));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"));
    }

    #[test]
    fn tokenizer_errors_name_the_key() {
        for (tok, want) in [
            ("no keys", "no %{key}"),
            ("%{a", "unterminated"),
            ("%{a}%{b}", "no delimiter"),
            ("%{&x} %{a}", "needs a %{*x}"),
            ("%{a|int}", "unknown data type"),
            ("%{+&a}", "mixes key modifiers"),
            ("%{} %{?b}", "only skips"),
        ] {
            let e = err(&format!(
                "[[processors]]\ndissect = {{ tokenizer = {} }}\n",
                toml::Value::String(tok.into())
            ));
            assert_eq!(e.key, "processors[0].dissect.tokenizer", "{tok}");
            assert!(e.message.contains(want), "{tok}: {e}");
        }
        let e = err("[[processors]]\ndissect = { tokenizer = \"%{a}\", trim_values = \"both\" }\n");
        assert_eq!(e.key, "processors[0].dissect.trim_values");
        let e = err("[[processors]]\ndissect = { field = \"message\" }\n");
        assert_eq!(e.key, "processors[0].dissect.tokenizer");
    }
}
