//! `when` conditions, as in Beats: equals, contains, regexp, range, has_fields, network,
//! and, or, not. Everything (regexes, CIDRs) is compiled when the configuration is loaded.
//!
//! Conditions read fields with `lookup`, so checking a line event never builds its map.
//! TOML dotted keys (`equals = { http.response.code = 200 }`) arrive as nested tables and
//! are flattened back into dotted field names.

use std::net::IpAddr;

use regex::Regex;
use serde_json::Value;

use super::{has_field, lookup, Found};
use crate::config::ConfigError;
use crate::event::Event;

const OPERATORS: &str = "equals, contains, regexp, range, has_fields, network, and, or, not";

#[derive(Debug)]
pub enum Condition {
    /// Every field equals its value.
    Equals(Vec<(String, Expected)>),
    /// Every field (a string, or an array with a string) contains its substring.
    Contains(Vec<(String, String)>),
    /// Every field (a string, or an array with a string) matches its regex.
    Regexp(Vec<(String, Regex)>),
    /// Every bound holds for the field, which must be a number.
    Range(Vec<Bound>),
    HasFields(Vec<String>),
    /// Every field is an IP in one of its networks.
    Network(Vec<(String, Vec<Net>)>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug)]
pub struct Bound {
    pub field: String,
    pub op: Op,
    pub value: f64,
}

/// A named network class (Beats' names) or a CIDR block.
#[derive(Debug, Clone, PartialEq)]
pub enum Net {
    Named(NamedNet),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedNet {
    Loopback,
    Private,
    Public,
    Multicast,
    Unspecified,
    Unicast,
    GlobalUnicast,
    LinkLocalUnicast,
    LinkLocalMulticast,
    InterfaceLocalMulticast,
}

impl Condition {
    /// Parse a condition table; `key` is its key path (`processors[0].drop_event.when`).
    pub fn parse(v: &toml::Value, key: &str) -> Result<Condition, ConfigError> {
        let t = v.as_table().ok_or_else(|| {
            ConfigError::new(
                key,
                "a condition must be a table, like { equals = { \"http.response.code\" = 200 } }",
            )
        })?;
        let mut it = t.iter();
        let (op, arg) = match (it.next(), it.next()) {
            (Some(one), None) => one,
            (None, _) => {
                return Err(ConfigError::new(
                    key,
                    format!("empty condition; use one of {OPERATORS}"),
                ))
            }
            _ => {
                // A misspelt key next to a real operator is reported as unknown, not as a second operator.
                if let Some(bad) = t
                    .keys()
                    .find(|k| !OPERATORS.split(", ").any(|op| op == k.as_str()))
                {
                    return Err(ConfigError::new(
                        format!("{key}.{bad}"),
                        format!("unknown condition {bad:?}; use one of {OPERATORS}"),
                    ));
                }
                let names: Vec<&str> = t.keys().map(String::as_str).collect();
                return Err(ConfigError::new(
                    key,
                    format!(
                        "a condition has exactly one operator, found {}; combine several with and = [{{ ... }}, {{ ... }}]",
                        names.join(", ")
                    ),
                ));
            }
        };
        let key = format!("{key}.{op}");
        match op.as_str() {
            "equals" => {
                let mut out = Vec::new();
                for (field, v, k) in fields(arg, &key)? {
                    let exp = match v {
                        toml::Value::String(s) => Expected::Str(s.clone()),
                        toml::Value::Integer(i) => Expected::Int(*i),
                        toml::Value::Float(f) => Expected::Float(*f),
                        toml::Value::Boolean(b) => Expected::Bool(*b),
                        _ => {
                            return Err(ConfigError::new(
                                k,
                                "equals compares with a string, a number or a boolean",
                            ))
                        }
                    };
                    out.push((field, exp));
                }
                Ok(Condition::Equals(out))
            }
            "contains" => {
                let mut out = Vec::new();
                for (field, v, k) in fields(arg, &key)? {
                    let s = v.as_str().ok_or_else(|| {
                        ConfigError::new(k, "contains takes a string to look for")
                    })?;
                    out.push((field, s.to_string()));
                }
                Ok(Condition::Contains(out))
            }
            "regexp" => {
                let mut out = Vec::new();
                for (field, v, k) in fields(arg, &key)? {
                    let s = v.as_str().ok_or_else(|| {
                        ConfigError::new(&k, "regexp takes a regular expression as a string")
                    })?;
                    let re = Regex::new(s).map_err(|e| {
                        ConfigError::new(
                            &k,
                            format!("invalid regular expression: {e}; fix the pattern (Rust regex syntax, no look-around)"),
                        )
                    })?;
                    out.push((field, re));
                }
                Ok(Condition::Regexp(out))
            }
            "range" => {
                let mut out = Vec::new();
                for (path, v, k) in fields(arg, &key)? {
                    let (field, op) = path
                        .rsplit_once('.')
                        .and_then(|(f, op)| {
                            let op = match op {
                                "gt" => Op::Gt,
                                "gte" => Op::Gte,
                                "lt" => Op::Lt,
                                "lte" => Op::Lte,
                                _ => return None,
                            };
                            Some((f.to_string(), op))
                        })
                        .ok_or_else(|| {
                            ConfigError::new(
                                &k,
                                "range keys are a field name plus .gt, .gte, .lt or .lte, like \"http.response.code.gte\" = 400",
                            )
                        })?;
                    let value = match v {
                        toml::Value::Integer(i) => *i as f64,
                        toml::Value::Float(f) => *f,
                        _ => return Err(ConfigError::new(&k, "range bounds must be numbers")),
                    };
                    out.push(Bound { field, op, value });
                }
                Ok(Condition::Range(out))
            }
            "has_fields" => {
                let list = arg.as_array().ok_or_else(|| {
                    ConfigError::new(
                        &key,
                        "has_fields takes a list of field names, like [\"error.message\"]",
                    )
                })?;
                let mut out = Vec::new();
                for (i, f) in list.iter().enumerate() {
                    let s = f.as_str().ok_or_else(|| {
                        ConfigError::new(format!("{key}[{i}]"), "field names must be strings")
                    })?;
                    out.push(s.to_string());
                }
                if out.is_empty() {
                    return Err(ConfigError::new(&key, "name at least one field"));
                }
                Ok(Condition::HasFields(out))
            }
            "network" => {
                let mut out = Vec::new();
                for (field, v, k) in fields(arg, &key)? {
                    let nets = match v {
                        toml::Value::String(s) => vec![parse_net(s, &k)?],
                        toml::Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, n)| {
                                let k = format!("{k}[{i}]");
                                n.as_str()
                                    .ok_or_else(|| ConfigError::new(&k, "networks are strings"))
                                    .and_then(|s| parse_net(s, &k))
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        _ => {
                            return Err(ConfigError::new(
                                k,
                                "network takes a CIDR (\"10.0.0.0/8\"), a class (\"private\") or a list of them",
                            ))
                        }
                    };
                    out.push((field, nets));
                }
                Ok(Condition::Network(out))
            }
            "and" | "or" => {
                let list = arg.as_array().ok_or_else(|| {
                    ConfigError::new(
                        &key,
                        format!(
                            "{op} takes a list of conditions, like {op} = [{{ ... }}, {{ ... }}]"
                        ),
                    )
                })?;
                if list.is_empty() {
                    return Err(ConfigError::new(&key, "give at least one condition"));
                }
                let subs = list
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Condition::parse(c, &format!("{key}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if op == "and" {
                    Condition::And(subs)
                } else {
                    Condition::Or(subs)
                })
            }
            "not" => Ok(Condition::Not(Box::new(Condition::parse(arg, &key)?))),
            other => Err(ConfigError::new(
                key.clone(),
                format!("unknown condition {other:?}; use one of {OPERATORS}"),
            )),
        }
    }

    pub fn check(&self, ev: &Event) -> bool {
        match self {
            Condition::Equals(list) => list
                .iter()
                .all(|(f, exp)| lookup(ev, f).is_some_and(|found| equals(&found, exp))),
            Condition::Contains(list) => list.iter().all(|(f, needle)| {
                lookup(ev, f).is_some_and(|found| any_str(&found, |s| s.contains(needle.as_str())))
            }),
            Condition::Regexp(list) => list.iter().all(|(f, re)| {
                lookup(ev, f).is_some_and(|found| any_str(&found, |s| re.is_match(s)))
            }),
            Condition::Range(bounds) => bounds.iter().all(|b| {
                lookup(ev, &b.field)
                    .and_then(|found| number(&found))
                    .is_some_and(|n| match b.op {
                        Op::Gt => n > b.value,
                        Op::Gte => n >= b.value,
                        Op::Lt => n < b.value,
                        Op::Lte => n <= b.value,
                    })
            }),
            Condition::HasFields(list) => list.iter().all(|f| has_field(ev, f)),
            Condition::Network(list) => list.iter().all(|(f, nets)| {
                lookup(ev, f).is_some_and(|found| {
                    any_str(&found, |s| {
                        s.parse::<IpAddr>()
                            .is_ok_and(|ip| nets.iter().any(|n| n.contains(ip)))
                    })
                })
            }),
            Condition::And(subs) => subs.iter().all(|c| c.check(ev)),
            Condition::Or(subs) => subs.iter().any(|c| c.check(ev)),
            Condition::Not(c) => !c.check(ev),
        }
    }
}

/// Flatten a `{ field = value }` table (nested by TOML dotted keys) into
/// (dotted field, leaf value, key path) triples.
fn fields<'a>(
    arg: &'a toml::Value,
    key: &str,
) -> Result<Vec<(String, &'a toml::Value, String)>, ConfigError> {
    fn walk<'a>(
        t: &'a toml::Table,
        prefix: &str,
        key: &str,
        out: &mut Vec<(String, &'a toml::Value, String)>,
    ) {
        for (k, v) in t {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) if !inner.is_empty() => walk(inner, &name, key, out),
                _ => {
                    let k = format!("{key}.{name}");
                    out.push((name, v, k));
                }
            }
        }
    }
    let t = arg.as_table().ok_or_else(|| {
        ConfigError::new(
            key,
            "takes a table of field = value, like { message = \"...\" }",
        )
    })?;
    let mut out = Vec::new();
    walk(t, "", key, &mut out);
    if out.is_empty() {
        return Err(ConfigError::new(key, "name at least one field"));
    }
    Ok(out)
}

fn equals(found: &Found, exp: &Expected) -> bool {
    match exp {
        Expected::Str(s) => found.as_str() == Some(s.as_str()),
        Expected::Int(i) => match found.value() {
            Some(Value::Number(n)) => {
                n.as_i64() == Some(*i) || (n.is_f64() && n.as_f64() == Some(*i as f64))
            }
            _ => false,
        },
        Expected::Float(f) => found.value().and_then(Value::as_f64) == Some(*f),
        Expected::Bool(b) => found.value().and_then(Value::as_bool) == Some(*b),
    }
}

/// True when the value is a string that passes, or an array holding one (as Beats).
fn any_str(found: &Found, f: impl Fn(&str) -> bool) -> bool {
    if let Some(s) = found.as_str() {
        return f(s);
    }
    match found.value() {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(f),
        _ => false,
    }
}

/// Only JSON numbers count, as in Beats: `"404"` is text (convert it first, e.g. dissect `|integer`).
fn number(found: &Found) -> Option<f64> {
    found.value().and_then(Value::as_f64)
}

fn parse_net(s: &str, key: &str) -> Result<Net, ConfigError> {
    let named = match s {
        "loopback" => Some(NamedNet::Loopback),
        "private" => Some(NamedNet::Private),
        "public" => Some(NamedNet::Public),
        "multicast" => Some(NamedNet::Multicast),
        "unspecified" => Some(NamedNet::Unspecified),
        "unicast" => Some(NamedNet::Unicast),
        "global_unicast" => Some(NamedNet::GlobalUnicast),
        "link_local_unicast" => Some(NamedNet::LinkLocalUnicast),
        "link_local_multicast" => Some(NamedNet::LinkLocalMulticast),
        "interface_local_multicast" => Some(NamedNet::InterfaceLocalMulticast),
        _ => None,
    };
    if let Some(n) = named {
        return Ok(Net::Named(n));
    }
    let bad = || {
        ConfigError::new(
            key,
            format!(
                "invalid network {s:?}; use a CIDR like \"10.0.0.0/8\" or one of loopback, private, public, \
                 multicast, unspecified, unicast, global_unicast, link_local_unicast, link_local_multicast, \
                 interface_local_multicast"
            ),
        )
    };
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok(Net::Cidr(ip, len))
}

fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        // An IPv4-mapped IPv6 address is matched as IPv4, as Go's net package does.
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|v4| in_cidr(IpAddr::V4(v4), net, len)),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

fn cidr(s: &str) -> (IpAddr, u8) {
    let (a, l) = s.split_once('/').unwrap_or((s, "0"));
    (
        a.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        l.parse().unwrap_or(0),
    )
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let any = |nets: &[&str]| {
            nets.iter().any(|n| {
                let (net, len) = cidr(n);
                in_cidr(ip, net, len)
            })
        };
        match self {
            Net::Cidr(net, len) => in_cidr(ip, *net, *len),
            Net::Named(n) => match n {
                NamedNet::Loopback => ip.is_loopback(),
                NamedNet::Unspecified => ip.is_unspecified(),
                NamedNet::Multicast => ip.is_multicast(),
                NamedNet::Private => {
                    any(&["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"])
                }
                NamedNet::LinkLocalUnicast => any(&["169.254.0.0/16", "fe80::/10"]),
                NamedNet::LinkLocalMulticast => any(&["224.0.0.0/24", "ff02::/16"]),
                NamedNet::InterfaceLocalMulticast => any(&["ff01::/16"]),
                NamedNet::Unicast => {
                    !ip.is_multicast() && !ip.is_unspecified() && !is_broadcast(ip)
                }
                NamedNet::GlobalUnicast => {
                    !ip.is_multicast()
                        && !ip.is_unspecified()
                        && !ip.is_loopback()
                        && !is_broadcast(ip)
                        && !any(&["169.254.0.0/16", "fe80::/10"])
                }
                // Beats: public = not private, loopback, link-local or multicast/unspecified.
                NamedNet::Public => {
                    !ip.is_loopback()
                        && !ip.is_unspecified()
                        && !ip.is_multicast()
                        && !is_broadcast(ip)
                        && !any(&[
                            "10.0.0.0/8",
                            "172.16.0.0/12",
                            "192.168.0.0/16",
                            "fc00::/7",
                            "169.254.0.0/16",
                            "fe80::/10",
                        ])
                }
            },
        }
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{line, map};
    use super::*;
    use serde_json::json;

    fn cond(text: &str) -> Result<Condition, ConfigError> {
        let v: toml::Value = toml::from_str(&format!("when = {text}")).expect("test TOML");
        Condition::parse(&v["when"], "processors[0].drop_event.when")
    }

    fn yes(text: &str, ev: &Event) -> bool {
        cond(text).expect("valid condition").check(ev)
    }

    fn http() -> Event {
        map(json!({
            "message": "GET /index.html 200",
            "http": {"response": {"code": 200, "bytes": 512.5}},
            "ok": true,
            "tags": ["web", "prod"],
            "source": {"ip": "192.168.1.10"},
            "dst": "8.8.8.8",
            "code_text": "404",
        }))
    }

    #[test]
    fn equals_strings_numbers_bools() {
        let ev = http();
        assert!(yes(
            "{ equals = { message = \"GET /index.html 200\" } }",
            &ev
        ));
        assert!(!yes("{ equals = { message = \"GET\" } }", &ev));
        assert!(yes("{ equals = { \"http.response.code\" = 200 } }", &ev));
        assert!(
            yes("{ equals = { http.response.code = 200 } }", &ev),
            "TOML dotted keys"
        );
        assert!(!yes("{ equals = { \"http.response.code\" = 404 } }", &ev));
        assert!(yes("{ equals = { \"http.response.bytes\" = 512.5 } }", &ev));
        assert!(yes("{ equals = { ok = true } }", &ev));
        assert!(!yes("{ equals = { ok = false } }", &ev));
        // A number never equals its text.
        assert!(!yes(
            "{ equals = { \"http.response.code\" = \"200\" } }",
            &ev
        ));
        assert!(!yes("{ equals = { missing = \"x\" } }", &ev));
    }

    #[test]
    fn equals_all_fields_must_match() {
        let ev = http();
        assert!(yes(
            "{ equals = { ok = true, \"http.response.code\" = 200 } }",
            &ev
        ));
        assert!(!yes(
            "{ equals = { ok = true, \"http.response.code\" = 201 } }",
            &ev
        ));
    }

    #[test]
    fn contains_strings_and_arrays() {
        let ev = http();
        assert!(yes("{ contains = { message = \"index\" } }", &ev));
        assert!(!yes("{ contains = { message = \"nope\" } }", &ev));
        assert!(yes("{ contains = { tags = \"pro\" } }", &ev));
        assert!(!yes("{ contains = { tags = \"dev\" } }", &ev));
        assert!(!yes(
            "{ contains = { \"http.response.code\" = \"2\" } }",
            &ev
        ));
    }

    #[test]
    fn regexp_on_line_event_and_arrays() {
        let ev = line("DEBUG starting");
        assert!(yes("{ regexp = { message = \"^DEBUG\" } }", &ev));
        assert!(!yes("{ regexp = { message = \"^INFO\" } }", &ev));
        assert!(yes(
            "{ regexp = { \"log.file.path\" = \"app\\\\.log$\" } }",
            &ev
        ));
        assert!(yes("{ regexp = { tags = \"^w\" } }", &ev));
        assert!(
            matches!(ev.fields, crate::event::Fields::Line(_)),
            "no map built"
        );
    }

    #[test]
    fn range_bounds() {
        let ev = http();
        assert!(yes(
            "{ range = { \"http.response.code.gte\" = 200, \"http.response.code.lt\" = 300 } }",
            &ev
        ));
        assert!(
            yes("{ range = { http.response.code.gte = 200 } }", &ev),
            "TOML dotted keys"
        );
        assert!(!yes("{ range = { \"http.response.code.gt\" = 200 } }", &ev));
        assert!(yes("{ range = { \"http.response.code.lte\" = 200 } }", &ev));
        assert!(yes(
            "{ range = { \"http.response.bytes.lt\" = 600.0 } }",
            &ev
        ));
        assert!(
            !yes("{ range = { \"code_text.gte\" = 400 } }", &ev),
            "text is not a number"
        );
        assert!(!yes("{ range = { \"message.gte\" = 0 } }", &ev));
        assert!(!yes("{ range = { \"missing.gte\" = 0 } }", &ev));
    }

    #[test]
    fn has_fields_all() {
        let ev = http();
        assert!(yes(
            "{ has_fields = [\"ok\", \"http.response.code\"] }",
            &ev
        ));
        assert!(!yes("{ has_fields = [\"ok\", \"nope\"] }", &ev));
        assert!(yes("{ has_fields = [\"@timestamp\"] }", &ev));
    }

    #[test]
    fn network_cidr_and_classes() {
        let ev = http();
        assert!(yes("{ network = { \"source.ip\" = \"private\" } }", &ev));
        assert!(yes(
            "{ network = { \"source.ip\" = \"192.168.0.0/16\" } }",
            &ev
        ));
        assert!(!yes(
            "{ network = { \"source.ip\" = \"10.0.0.0/8\" } }",
            &ev
        ));
        assert!(yes(
            "{ network = { \"source.ip\" = [\"10.0.0.0/8\", \"192.168.1.0/24\"] } }",
            &ev
        ));
        assert!(yes("{ network = { dst = \"public\" } }", &ev));
        assert!(!yes("{ network = { dst = \"private\" } }", &ev));
        assert!(
            !yes("{ network = { message = \"public\" } }", &ev),
            "not an IP"
        );
        let ev6 = map(json!({"ip": "::1", "m": "::ffff:10.1.2.3"}));
        assert!(yes("{ network = { ip = \"loopback\" } }", &ev6));
        assert!(yes("{ network = { m = \"10.0.0.0/8\" } }", &ev6));
    }

    #[test]
    fn and_or_not_nest() {
        let ev = http();
        assert!(yes(
            "{ and = [{ equals = { ok = true } }, { or = [{ contains = { message = \"zzz\" } }, { not = { has_fields = [\"nope\"] } }] }] }",
            &ev
        ));
        assert!(!yes("{ not = { equals = { ok = true } } }", &ev));
        assert!(!yes(
            "{ or = [{ equals = { ok = false } }, { equals = { missing = 1 } }] }",
            &ev
        ));
    }

    #[test]
    fn errors_name_the_key() {
        let e = cond("{ regexp = { message = \"(\" } }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.regexp.message");
        assert!(e.message.contains("invalid regular expression"), "{e}");

        let e = cond("{ regex = { message = \"x\" } }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.regex");
        assert!(e.message.contains("unknown condition \"regex\""), "{e}");

        let e = cond("{ equals = { a = 1 }, contains = { b = \"x\" } }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when");
        assert!(e.message.contains("exactly one operator"), "{e}");

        let e = cond("{ equals = { a = 1 }, equal = { b = \"x\" } }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.equal");
        assert!(e.message.contains("unknown condition \"equal\""), "{e}");

        let e = cond("{ and = [{ equals = { a = 1 } }, { range = { \"a.between\" = 3 } }] }")
            .unwrap_err();
        assert_eq!(
            e.key,
            "processors[0].drop_event.when.and[1].range.a.between"
        );
        assert!(e.message.contains(".gte"), "{e}");

        let e = cond("{ range = { \"a.gte\" = \"3\" } }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.range.a.gte");

        let e = cond("{ equals = { a = [1] } }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.equals.a");

        let e = cond("{ contains = { a = 1 } }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.contains.a");

        let e = cond("{ has_fields = \"a\" }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.has_fields");

        let e = cond("{ has_fields = [\"a\", 2] }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.has_fields[1]");

        let e = cond("{ network = { ip = \"10.0.0.0/33\" } }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.network.ip");

        let e = cond("{ or = [] }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.or");

        let e = cond("{ not = 1 }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.not");

        let e = cond("{}").unwrap_err();
        assert!(e.message.contains("empty condition"), "{e}");

        let e = cond("{ equals = {} }").unwrap_err();
        assert_eq!(e.key, "processors[0].drop_event.when.equals");
    }
}
