//! Filebeat format strings, shared by the outputs (Kafka topic and key, Elasticsearch index and
//! pipeline, ...): `%{[field.path]}` (with an optional `:default` after the brackets) and
//! `%{+yyyy.MM.dd}` (the event's @timestamp in UTC, Joda-style letters), plus rule lists with
//! `when` conditions, first match wins (Filebeat's `topics`, `indices`, `pipelines`).

use std::borrow::Cow;

use serde_json::Value;

use crate::config::ConfigError;
use crate::event::{civil_from_days, Event};
use crate::processors::conditions::Condition;
use crate::processors::lookup;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field {
        path: String,
        default: Option<String>,
    },
    Time(Vec<TimeTok>),
}

#[derive(Debug, Clone, PartialEq)]
enum TimeTok {
    Lit(String),
    Year4,
    Year2,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

#[derive(Debug, Clone)]
pub struct FormatString {
    parts: Vec<Part>,
    /// The whole string when it has no expression, so constant topics cost nothing per event.
    constant: Option<String>,
}

impl FormatString {
    pub fn parse(s: &str, key: &str) -> Result<Self, ConfigError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("%{") {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after.find('}').ok_or_else(|| {
                ConfigError::new(key, format!("format string {s:?}: unclosed %{{"))
            })?;
            let expr = &after[..end];
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(
                parse_expr(expr)
                    .map_err(|m| ConfigError::new(key, format!("format string {s:?}: {m}")))?,
            );
            rest = &after[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let constant = match parts.as_slice() {
            [] => Some(String::new()),
            [Part::Lit(l)] => Some(l.clone()),
            _ => None,
        };
        Ok(FormatString { parts, constant })
    }

    pub fn is_constant(&self) -> bool {
        self.constant.is_some()
    }

    /// Render for one event; `Err` names the missing field.
    pub fn render<'a>(&'a self, ev: &Event) -> Result<Cow<'a, str>, String> {
        if let Some(c) = &self.constant {
            return Ok(Cow::Borrowed(c));
        }
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Field { path, default } => match lookup(ev, path) {
                    Some(found) => match found.as_str() {
                        Some(s) => out.push_str(s),
                        None => match found.value() {
                            Some(Value::Null) | None => match default {
                                Some(d) => out.push_str(d),
                                None => return Err(format!("field {path} is null")),
                            },
                            Some(v) => out.push_str(&v.to_string()),
                        },
                    },
                    None => match default {
                        Some(d) => out.push_str(d),
                        None => return Err(format!("field {path} is missing")),
                    },
                },
                Part::Time(toks) => write_time(ev.timestamp, toks, &mut out),
            }
        }
        Ok(Cow::Owned(out))
    }
}

fn parse_expr(expr: &str) -> Result<Part, String> {
    if let Some(fmt) = expr.strip_prefix('+') {
        return Ok(Part::Time(parse_time(fmt)?));
    }
    if !expr.starts_with('[') {
        return Err(format!(
            "%{{{expr}}}: expected [field.path] or +date format"
        ));
    }
    // `[a.b]` or `[a][b]` (Logstash style), both meaning the path a.b.
    let mut segs = Vec::new();
    let mut after = expr;
    while let Some(r) = after.strip_prefix('[') {
        let c = r
            .find(']')
            .ok_or_else(|| format!("%{{{expr}}}: missing ]"))?;
        segs.push(r[..c].trim());
        after = &r[c + 1..];
    }
    let full_path = segs.join(".");
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!("%{{{expr}}}: empty field name"));
    }
    let default = match after.strip_prefix(':') {
        Some(d) => Some(d.to_string()),
        None if after.is_empty() => None,
        None => return Err(format!("%{{{expr}}}: unexpected {after:?} after the field")),
    };
    Ok(Part::Field {
        path: full_path,
        default,
    })
}

fn parse_time(fmt: &str) -> Result<Vec<TimeTok>, String> {
    let mut toks = Vec::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let tok = match (c, run) {
            ('y', 4) => TimeTok::Year4,
            ('y', 2) => TimeTok::Year2,
            ('M', 2) => TimeTok::Month,
            ('d', 2) => TimeTok::Day,
            ('H', 2) => TimeTok::Hour,
            ('m', 2) => TimeTok::Minute,
            ('s', 2) => TimeTok::Second,
            (c, _) if c.is_ascii_alphabetic() => {
                return Err(format!(
                    "date format {fmt:?}: unsupported pattern {}; use yyyy, yy, MM, dd, HH, mm, ss",
                    c.to_string().repeat(run)
                ))
            }
            _ => TimeTok::Lit(c.to_string().repeat(run)),
        };
        toks.push(tok);
        i += run;
    }
    Ok(toks)
}

fn write_time(nanos: i64, toks: &[TimeTok], out: &mut String) {
    use std::fmt::Write;
    let secs = nanos.div_euclid(1_000_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    for t in toks {
        let _ = match t {
            TimeTok::Lit(l) => {
                out.push_str(l);
                Ok(())
            }
            TimeTok::Year4 => write!(out, "{y:04}"),
            TimeTok::Year2 => write!(out, "{:02}", y.rem_euclid(100)),
            TimeTok::Month => write!(out, "{mo:02}"),
            TimeTok::Day => write!(out, "{d:02}"),
            TimeTok::Hour => write!(out, "{:02}", sod / 3600),
            TimeTok::Minute => write!(out, "{:02}", sod % 3600 / 60),
            TimeTok::Second => write!(out, "{:02}", sod % 60),
        };
    }
}

/// Rules first (first match wins), then the default, as Filebeat's `topics` / `indices` /
/// `pipelines` lists with `topic` / `index` / `pipeline`.
#[derive(Debug)]
pub struct Router {
    rules: Vec<(FormatString, Option<Condition>)>,
    default: Option<FormatString>,
}

impl Router {
    /// `rules` are (format string, optional `when`) pairs from the list at `rules_key`, whose
    /// format string is in the key `field`; `default` is (format string, its key path).
    pub fn new<'a>(
        rules: impl IntoIterator<Item = (&'a str, Option<&'a toml::Value>)>,
        rules_key: &str,
        field: &str,
        default: Option<(&str, &str)>,
    ) -> Result<Self, ConfigError> {
        let mut parsed = Vec::new();
        for (i, (fmt, when)) in rules.into_iter().enumerate() {
            let key = format!("{rules_key}[{i}]");
            let f = FormatString::parse(fmt, &format!("{key}.{field}"))?;
            let when = match when {
                Some(w) => Some(Condition::parse(w, &format!("{key}.when"))?),
                None => None,
            };
            parsed.push((f, when));
        }
        let default = match default {
            Some((fmt, key)) => Some(FormatString::parse(fmt, key)?),
            None => None,
        };
        Ok(Router {
            rules: parsed,
            default,
        })
    }

    /// The value for `ev`: `None` when no rule matches and there is no default; `Err` names a
    /// field the selected format string needs and the event lacks.
    pub fn select<'a>(&'a self, ev: &Event) -> Option<Result<Cow<'a, str>, String>> {
        for (f, when) in &self.rules {
            if when.as_ref().map_or(true, |c| c.check(ev)) {
                return Some(f.render(ev));
            }
        }
        self.default.as_ref().map(|d| d.render(ev))
    }

    /// Like `select`, for routers that must always produce a value.
    pub fn route<'a>(&'a self, ev: &Event) -> Result<Cow<'a, str>, String> {
        self.select(ev)
            .unwrap_or_else(|| Err("no rule matched and no default is set".into()))
    }

    /// Values known without an event (for `oxibeat test output`).
    pub fn constants(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .rules
            .iter()
            .map(|(f, _)| &f.constant)
            .chain(self.default.iter().map(|d| &d.constant))
            .filter_map(|c| c.clone())
            .collect();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::testutil::{line, map};
    use serde_json::json;

    fn render(f: &str, ev: &Event) -> Result<String, String> {
        FormatString::parse(f, "k")
            .expect("parses")
            .render(ev)
            .map(|c| c.into_owned())
    }

    #[test]
    fn fields_dates_and_defaults() {
        let mut ev = map(json!({"fields": {"service": "api", "n": 3}, "host": {"name": "h1"}}));
        // 2026-11-25T10:11:12Z
        ev.timestamp = 1_795_601_472 * 1_000_000_000;
        assert_eq!(render("logs-%{[fields.service]}", &ev).unwrap(), "logs-api");
        assert_eq!(
            render("%{[fields][service]}-%{[fields.n]}", &ev).unwrap(),
            "api-3"
        );
        assert_eq!(
            render("x-%{+yyyy.MM.dd}-%{+HH:mm:ss}", &ev).unwrap(),
            "x-2026.11.25-10:11:12"
        );
        assert_eq!(render("%{[nope]:fallback}", &ev).unwrap(), "fallback");
        assert!(render("%{[nope]}", &ev).unwrap_err().contains("nope"));
        assert_eq!(render("plain", &ev).unwrap(), "plain");
        assert!(FormatString::parse("%{[a", "output.kafka.topic").is_err());
        assert!(FormatString::parse("%{+yyyy.QQ}", "output.kafka.topic").is_err());
    }

    #[test]
    fn line_events_render_without_conversion() {
        let ev = line("hello");
        assert_eq!(
            render("%{[fields.env]}-%{[message]}", &ev).unwrap(),
            "prod-hello"
        );
    }

    fn kafka_router(cfg: &crate::output::kafka::KafkaConfig) -> Result<Router, ConfigError> {
        cfg.topic_router()
    }

    #[test]
    fn rules_first_match_wins() {
        let cfg: crate::output::kafka::KafkaConfig = toml::from_str(
            r#"
            hosts = ["x:1"]
            topic = "logs-%{[fields.env]}"
            [[topics]]
            topic = "critical"
            when = { contains = { message = "FATAL" } }
            [[topics]]
            topic = "errors"
            when = { contains = { message = "ERR" } }
            "#,
        )
        .unwrap();
        let r = kafka_router(&cfg).unwrap();
        assert_eq!(r.route(&line("a FATAL ERR")).unwrap(), "critical");
        assert_eq!(r.route(&line("an ERR")).unwrap(), "errors");
        assert_eq!(r.route(&line("fine")).unwrap(), "logs-prod");
        let none = Router::new(
            [(
                "x",
                Some(&toml::Value::Table(
                    toml::from_str("contains = { message = \"ERR\" }").unwrap(),
                )),
            )],
            "output.x.rules",
            "value",
            None,
        )
        .unwrap();
        assert!(none.select(&line("fine")).is_none());
        assert_eq!(none.select(&line("ERR")).unwrap().unwrap(), "x");
    }

    #[test]
    fn bad_condition_names_key_path() {
        let cfg: crate::output::kafka::KafkaConfig = toml::from_str(
            r#"
            hosts = ["x:1"]
            [[topics]]
            topic = "t"
            when = { bogus = { message = "x" } }
            "#,
        )
        .unwrap();
        let e = kafka_router(&cfg).unwrap_err();
        assert!(e.key.starts_with("output.kafka.topics[0].when"), "{e:?}");
    }
}
