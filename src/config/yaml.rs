//! YAML configuration files, read as Filebeat reads them, into the same TOML tree that a TOML
//! file gives (`config::source`), and written back for `export config --format yaml`.
//!
//! Filebeat reads its YAML with go-yaml v2 (YAML 1.1) through go-ucfg. What follows from that:
//! - Plain (unquoted) scalars are typed as YAML 1.1 types them: `~`/`null`/empty are null;
//!   `true/false/yes/no/on/off/y/n` (and their capitalised forms) are booleans; `0x1f`,
//!   `0755` (octal), `0b101` and `1_000` are integers; `.inf`/`.nan` floats. Quoted scalars and
//!   block scalars are strings. The parser (yaml-rust2) reports scalar styles, which is what
//!   makes this typing possible.
//! - Keys are split at dots, and dotted and nested forms merge: `output.kafka.hosts: [..]`
//!   equals `output: {kafka: {hosts: [..]}}` (ucfg's `PathSep(".")`).
//! - Anchors, aliases and `<<` merge keys work.
//!
//! A key defined twice is an error naming both lines. Every node keeps its line, so errors can
//! say where a key is.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::ConfigError;

/// A YAML node with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Y {
    pub node: Node,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
}

impl Y {
    pub fn new(node: Node, line: usize) -> Y {
        Y { node, line }
    }

    pub fn as_map(&self) -> Option<&Vec<(String, Y)>> {
        match &self.node {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Y> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Dotted lookup (`path.home`), numeric segments indexing sequences.
    pub fn get_path(&self, path: &str) -> Option<&Y> {
        let mut cur = self;
        for seg in path.split('.') {
            cur = match &cur.node {
                Node::Map(_) => cur.get(seg)?,
                Node::Seq(s) => s.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// A scalar as the text a `${...}` reference to it expands to.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.node {
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(f) => Some(f.to_string()),
            Node::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.node == Node::Null
    }
}

/// go-yaml v2's resolution of a plain scalar (YAML 1.1).
pub fn resolve_plain(s: &str) -> Node {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Node::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Node::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Node::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Node::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Node::Float(f64::NAN),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        let plain: String = s.chars().filter(|c| *c != '_').collect();
        if let Some(i) = parse_go_int(&plain) {
            return Node::Int(i);
        }
        let looks_float = plain
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
            && plain.bytes().any(|b| b.is_ascii_digit());
        if looks_float {
            if let Ok(f) = plain.parse::<f64>() {
                return Node::Float(f);
            }
        }
    }
    Node::Str(s.to_string())
}

/// strconv.ParseInt(s, 0, 64): sign, then `0x`, `0o`, `0b` or a leading `0` (octal).
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if body.is_empty() {
        return None;
    }
    let v = i64::from_str_radix(&body, radix).ok()?;
    Some(if neg { -v } else { v })
}

enum Frame {
    Seq {
        items: Vec<Y>,
        line: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(String, Y)>,
        key: Option<(String, usize)>,
        line: usize,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Y>,
    root: Option<Y>,
    error: Option<(String, usize)>,
    docs: usize,
}

impl Builder {
    fn fail(&mut self, msg: String, line: usize) {
        if self.error.is_none() {
            self.error = Some((msg, line));
        }
    }

    fn value(&mut self, y: Y, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, y.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(y);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(y),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((k, _)) => entries.push((k, y)),
                None => {
                    let k = match &y.node {
                        Node::Str(s) => s.clone(),
                        Node::Null => String::new(),
                        Node::Bool(b) => b.to_string(),
                        Node::Int(i) => i.to_string(),
                        Node::Float(f) => f.to_string(),
                        Node::Seq(_) | Node::Map(_) => {
                            let line = y.line;
                            self.fail(
                                "a key must be a plain name, not a list or a map".into(),
                                line,
                            );
                            return;
                        }
                    };
                    *key = Some((k, y.line));
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line().max(1);
        match ev {
            Event::DocumentStart => self.docs += 1,
            Event::Scalar(v, style, anchor, tag) => {
                let node = match (&style, &tag) {
                    (_, Some(t)) if t.suffix == "str" => Node::Str(v),
                    (TScalarStyle::Plain, _) => resolve_plain(&v),
                    _ => Node::Str(v),
                };
                self.value(Y::new(node, line), anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                line,
                anchor,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                key: None,
                line,
                anchor,
            }),
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    line,
                    anchor,
                }) = self.stack.pop()
                {
                    self.value(Y::new(Node::Seq(items), line), anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    entries,
                    line,
                    anchor,
                    ..
                }) = self.stack.pop()
                {
                    let merged = apply_merge_keys(entries);
                    self.value(Y::new(Node::Map(merged), line), anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut y) => {
                    y.line = line;
                    self.value(y, 0);
                }
                None => self.fail("alias to an unknown anchor".into(), line),
            },
            _ => {}
        }
    }
}

/// `<<: *base` (or a list of them): the merged map's keys, unless the map has its own.
fn apply_merge_keys(entries: Vec<(String, Y)>) -> Vec<(String, Y)> {
    if !entries.iter().any(|(k, _)| k == "<<") {
        return entries;
    }
    let mut own = Vec::new();
    let mut merged = Vec::new();
    for (k, v) in entries {
        if k != "<<" {
            own.push((k, v));
            continue;
        }
        let sources = match v.node {
            Node::Seq(items) => items,
            other => vec![Y::new(other, v.line)],
        };
        for s in sources {
            if let Node::Map(m) = s.node {
                merged.extend(m);
            }
        }
    }
    for (k, v) in merged {
        if !own.iter().any(|(o, _)| o == &k) {
            own.push((k, v));
        }
    }
    own
}

/// Parse YAML text (the first document) into a tree; an empty file is an empty map.
pub fn parse(text: &str, file: &str) -> Result<Y, ConfigError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut b, false)
        .map_err(|e| ConfigError::new("", format!("{file}: invalid YAML: {e}")))?;
    if let Some((msg, line)) = b.error {
        return Err(ConfigError::new(
            "",
            format!("{file}: invalid YAML at line {line}: {msg}"),
        ));
    }
    Ok(match b.root {
        Some(y) if y.is_null() => Y::new(Node::Map(Vec::new()), 1),
        Some(y) => y,
        None => Y::new(Node::Map(Vec::new()), 1),
    })
}

/// Split every map key at its dots and merge what lands on the same key (`a.b: 1` and
/// `a: {c: 2}` give `a: {b: 1, c: 2}`). `path` names `y` in errors.
pub fn expand_dots(y: Y, path: &str) -> Result<Y, ConfigError> {
    let line = y.line;
    match y.node {
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(expand_dots(item, &format!("{path}[{i}]"))?);
            }
            Ok(Y::new(Node::Seq(out), line))
        }
        Node::Map(entries) => {
            let mut out: Vec<(String, Y)> = Vec::new();
            for (k, v) in entries {
                let segments: Vec<&str> = k.split('.').collect();
                let mut nested = v;
                for seg in segments[1..].iter().rev() {
                    let l = nested.line;
                    nested = Y::new(Node::Map(vec![(seg.to_string(), nested)]), l);
                }
                let head = segments[0].to_string();
                let child = join(path, &head);
                let nested = expand_dots(nested, &child)?;
                merge_into(&mut out, head, nested, path)?;
            }
            Ok(Y::new(Node::Map(out), line))
        }
        other => Ok(Y::new(other, line)),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn merge_into(
    out: &mut Vec<(String, Y)>,
    key: String,
    value: Y,
    path: &str,
) -> Result<(), ConfigError> {
    let Some(pos) = out.iter().position(|(k, _)| *k == key) else {
        out.push((key, value));
        return Ok(());
    };
    let child = join(path, &key);
    let existing = &mut out[pos].1;
    match (&mut existing.node, value.node) {
        (Node::Map(a), Node::Map(b)) => {
            for (k, v) in b {
                merge_into(a, k, v, &child)?;
            }
            Ok(())
        }
        (_, _) => Err(ConfigError::new(
            child,
            format!(
                "set twice (lines {} and {}); keep one (dotted and nested keys name the same setting)",
                existing.line, value.line
            ),
        )),
    }
}

/// Apply `-E key=value` (value read as YAML, as Filebeat reads it) to the tree.
pub fn apply_override(root: &mut Y, spec: &str) -> Result<(), ConfigError> {
    let (path, raw) = spec.split_once('=').ok_or_else(|| {
        ConfigError::new(
            "-E",
            format!("override {spec:?} must look like key.path=value"),
        )
    })?;
    let path = path.trim();
    let value = parse(raw, "-E value")
        .ok()
        .map(|mut y| {
            // `-E name=` or a value that is not YAML is the text itself.
            if y.as_map().is_some_and(|m| m.is_empty()) && !raw.trim_start().starts_with('{') {
                y = Y::new(Node::Str(raw.to_string()), 0);
            }
            y
        })
        .unwrap_or_else(|| Y::new(Node::Str(raw.to_string()), 0));
    let value = expand_dots(value, path)?;
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ConfigError::new(path, "override key has an empty segment"));
    }
    let mut cur = root;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let next_is_index = segments
            .get(i + 1)
            .is_some_and(|s| s.parse::<usize>().is_ok());
        if cur.is_null() {
            cur.node = Node::Map(Vec::new());
        }
        cur = match &mut cur.node {
            Node::Map(entries) => {
                let pos = match entries.iter().position(|(k, _)| k == seg) {
                    Some(p) => p,
                    None => {
                        let fresh = if next_is_index {
                            Node::Seq(Vec::new())
                        } else {
                            Node::Map(Vec::new())
                        };
                        entries.push((seg.to_string(), Y::new(fresh, 0)));
                        entries.len() - 1
                    }
                };
                if last {
                    entries[pos].1 = value;
                    return Ok(());
                }
                &mut entries[pos].1
            }
            Node::Seq(items) => {
                let idx: usize = seg.parse().map_err(|_| {
                    ConfigError::new(path, format!("{seg:?} must be a list index here"))
                })?;
                if idx > items.len() {
                    return Err(ConfigError::new(
                        path,
                        format!("index {idx} is past the end of a list of {}", items.len()),
                    ));
                }
                if idx == items.len() {
                    items.push(Y::new(Node::Map(Vec::new()), 0));
                }
                if last {
                    items[idx] = value;
                    return Ok(());
                }
                &mut items[idx]
            }
            _ => {
                return Err(ConfigError::new(
                    path,
                    format!("cannot set a key below {seg:?}: it is not a map"),
                ))
            }
        };
    }
    Ok(())
}

/// The tree as TOML; null becomes an empty table (an empty section, `output.console: ~`).
pub fn to_toml(y: &Y) -> toml::Value {
    match &y.node {
        Node::Null => toml::Value::Table(toml::Table::new()),
        Node::Bool(b) => toml::Value::Boolean(*b),
        Node::Int(i) => toml::Value::Integer(*i),
        Node::Float(f) => toml::Value::Float(*f),
        Node::Str(s) => toml::Value::String(s.clone()),
        Node::Seq(items) => toml::Value::Array(items.iter().map(to_toml).collect()),
        Node::Map(entries) => toml::Value::Table(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_toml(v)))
                .collect(),
        ),
    }
}

/// A TOML tree as a YAML node (for writing YAML).
pub fn from_toml(v: &toml::Value) -> Y {
    let node = match v {
        toml::Value::String(s) => Node::Str(s.clone()),
        toml::Value::Integer(i) => Node::Int(*i),
        toml::Value::Float(f) => Node::Float(*f),
        toml::Value::Boolean(b) => Node::Bool(*b),
        toml::Value::Datetime(d) => Node::Str(d.to_string()),
        toml::Value::Array(a) => Node::Seq(a.iter().map(from_toml).collect()),
        toml::Value::Table(t) => {
            Node::Map(t.iter().map(|(k, v)| (k.clone(), from_toml(v))).collect())
        }
    };
    Y::new(node, 0)
}

fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || !matches!(resolve_plain(s), Node::Str(_)) {
        return true;
    }
    let first = s.as_bytes()[0];
    if b"-?:,[]{}#&*!|>'\"%@` ".contains(&first) {
        return true;
    }
    s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.ends_with(' ')
        || s.chars().any(|c| c.is_control())
}

fn scalar(y: &Y) -> Option<String> {
    Some(match &y.node {
        Node::Null => "~".into(),
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) if f.is_nan() => ".nan".into(),
        Node::Float(f) if f.is_infinite() => if *f > 0.0 { ".inf" } else { "-.inf" }.into(),
        Node::Float(f) => {
            let s = f.to_string();
            if s.contains('.') || s.contains('e') {
                s
            } else {
                format!("{s}.0")
            }
        }
        // Double-quoted YAML takes JSON's escapes.
        Node::Str(s) if needs_quotes(s) => serde_json::Value::String(s.clone()).to_string(),
        Node::Str(s) => s.clone(),
        Node::Seq(items) if items.is_empty() => "[]".into(),
        Node::Map(m) if m.is_empty() => "{}".into(),
        _ => return None,
    })
}

fn key_text(k: &str) -> String {
    if needs_quotes(k) || k.contains('.') {
        serde_json::Value::String(k.to_string()).to_string()
    } else {
        k.to_string()
    }
}

/// Write a tree as block-style YAML.
pub fn emit(y: &Y) -> String {
    let mut out = String::new();
    emit_into(y, 0, &mut out);
    out
}

fn emit_into(y: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match &y.node {
        Node::Map(entries) => {
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(&key_text(k));
                out.push(':');
                match scalar(v) {
                    Some(s) => {
                        out.push(' ');
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => {
                        out.push('\n');
                        let child = if matches!(v.node, Node::Seq(_)) {
                            indent
                        } else {
                            indent + 2
                        };
                        emit_into(v, child, out);
                    }
                }
            }
        }
        Node::Seq(items) => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                match scalar(item) {
                    Some(s) => {
                        out.push_str(&s);
                        out.push('\n');
                    }
                    None => {
                        // The first line of the nested block goes after the dash.
                        let mut inner = String::new();
                        emit_into(item, indent + 2, &mut inner);
                        out.push_str(inner.trim_start());
                    }
                }
            }
        }
        _ => {
            if let Some(s) = scalar(y) {
                out.push_str(&pad);
                out.push_str(&s);
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Y {
        expand_dots(parse(text, "t.yml").unwrap(), "").unwrap()
    }

    #[test]
    fn yaml_1_1_plain_scalars_are_typed_like_go_yaml() {
        let y = p("a: yes\nb: 'yes'\nc: 0600\nd: 0x1F\ne: 1_000\nf: 1.5\ng: ~\nh:\ni: On\nj: \"12\"\nk: 1e3\nl: -7\nm: 08\np: 2.0.1\n");
        let get = |k: &str| y.get(k).unwrap().node.clone();
        assert_eq!(get("a"), Node::Bool(true));
        assert_eq!(get("b"), Node::Str("yes".into()));
        assert_eq!(get("c"), Node::Int(0o600));
        assert_eq!(get("d"), Node::Int(31));
        assert_eq!(get("e"), Node::Int(1000));
        assert_eq!(get("f"), Node::Float(1.5));
        assert_eq!(get("g"), Node::Null);
        assert_eq!(get("h"), Node::Null);
        assert_eq!(get("i"), Node::Bool(true));
        assert_eq!(get("j"), Node::Str("12".into()));
        assert_eq!(get("k"), Node::Float(1000.0));
        assert_eq!(get("l"), Node::Int(-7));
        assert_eq!(
            get("m"),
            Node::Float(8.0),
            "not octal, so a float as in go-yaml"
        );
        assert_eq!(get("p"), Node::Str("2.0.1".into()));
        // As in go-yaml v2, `y`/`n` are booleans even as keys (so `n:` is the key "false").
        assert!(p("n: 1\n").get("false").is_some());
    }

    #[test]
    fn dotted_and_nested_keys_merge() {
        let y = p("output.kafka.hosts: [\"a:9092\"]\noutput:\n  kafka:\n    topic: logs\n");
        let k = y.get_path("output.kafka").unwrap();
        assert_eq!(
            to_toml(k),
            toml::toml! { hosts = ["a:9092"]
            topic = "logs" }
            .into()
        );
        let e = expand_dots(parse("a.b: 1\na:\n  b: 2\n", "t.yml").unwrap(), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.b") && e.contains("lines 1 and 3"), "{e}");
    }

    #[test]
    fn anchors_merge_keys_and_lines() {
        let y = p("base: &b\n  x: 1\n  z: 2\nother:\n  <<: *b\n  z: 3\nlist:\n  - *b\n");
        let o = y.get("other").unwrap();
        assert_eq!(o.get("x").unwrap().node, Node::Int(1));
        assert_eq!(o.get("z").unwrap().node, Node::Int(3));
        assert_eq!(y.get_path("list.0.z").unwrap().node, Node::Int(2));
        assert_eq!(y.get("other").unwrap().get("z").unwrap().line, 6);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse("a: [1, 2\nb: 3\n", "filebeat.yml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("filebeat.yml: invalid YAML") && e.contains("line"),
            "{e}"
        );
    }

    #[test]
    fn overrides_use_yaml_values() {
        let mut y = p("filebeat.inputs:\n  - type: log\n    paths: [/a]\n");
        apply_override(&mut y, "output.kafka.hosts=[\"h:9092\"]").unwrap();
        apply_override(&mut y, "filebeat.inputs.0.enabled=false").unwrap();
        apply_override(&mut y, "name=web 1").unwrap();
        assert_eq!(
            to_toml(y.get_path("output.kafka.hosts").unwrap()),
            toml::Value::Array(vec!["h:9092".into()])
        );
        assert_eq!(
            y.get_path("filebeat.inputs.0.enabled").unwrap().node,
            Node::Bool(false)
        );
        assert_eq!(y.get("name").unwrap().node, Node::Str("web 1".into()));
    }

    #[test]
    fn emitted_yaml_reads_back_the_same() {
        let text = "name: web-1\nfilebeat:\n  inputs:\n    - type: filestream\n      id: a\n      paths:\n        - /var/log/*.log\n      fields: {}\n      parsers:\n        - multiline:\n            pattern: '^\\['\n            negate: true\n    - type: log\n      enabled: false\nempty: []\nq: \"yes\"\nn: 7\nf: 0.5\nk: \"a: b\"\n";
        let y = p(text);
        let out = emit(&y);
        let back = p(&out);
        assert_eq!(to_toml(&back), to_toml(&y), "{out}");
    }
}
