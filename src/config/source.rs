//! From text to a TOML tree: parsing, `-E key=value` overrides, `${VAR}` / `${VAR:default}`
//! expansion, and masking of secrets for display.

use toml::Value;

use super::ConfigError;

/// Keys whose values are never printed.
const SECRET_KEYS: &[&str] = &[
    "password",
    "api_key",
    "auth",
    "token",
    "secret",
    "key_passphrase",
    "sasl_password",
];

/// Nesting an `-E` key may create: no option is deeper, and every later step walks the
/// tree recursively (TOML files have their parser's own recursion limit).
const MAX_OVERRIDE_SEGMENTS: usize = 32;

pub fn parse(text: &str, file: &str) -> Result<Value, ConfigError> {
    text.parse::<toml::Table>().map(Value::Table).map_err(|e| {
        ConfigError::new(
            "",
            format!("{file}: invalid TOML: {}", toml_error(text, &e)),
        )
    })
}

/// A TOML syntax error, without the source line when that line sets a secret (the parser's
/// message quotes the line: `password = "hunter2` must not end up in a log).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.to_string();
    };
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let first = text[..start].matches('\n').count();
    let last = first + text[start..end].matches('\n').count();
    let Some(key) = text
        .lines()
        .skip(first)
        .take(last - first + 1)
        .find_map(sets_secret)
    else {
        return e.to_string();
    };
    let col = start - text[..start].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!(
        "TOML parse error at line {}, column {col}: {} (the line sets the secret `{key}`, so it is not shown)",
        first + 1,
        e.message().trim_end()
    )
}

/// The key a TOML line assigns, if it is a secret (`password = ...`, `"sasl.password" = ...`).
fn sets_secret(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key: String = key
        .trim()
        .chars()
        .filter(|c| !matches!(c, '"' | '\''))
        .collect();
    let last = key.rsplit('.').next().unwrap_or("").trim();
    (SECRET_KEYS.contains(&last) || super::secret::is_secret_property(&key)).then_some(key)
}

/// Apply `key.path=value`; numeric segments index arrays (`inputs.0.paths=["/x"]`).
/// The value is read as TOML when it parses (numbers, booleans, arrays), else as a string.
pub fn apply_override(root: &mut Value, spec: &str) -> Result<(), ConfigError> {
    let (path, raw) = spec.split_once('=').ok_or_else(|| {
        ConfigError::new(
            "-E",
            format!("override {spec:?} must look like key.path=value"),
        )
    })?;
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()));
    let segments: Vec<&str> = path.trim().split('.').collect();
    if segments.len() > MAX_OVERRIDE_SEGMENTS {
        return Err(ConfigError::new(
            "-E",
            format!(
                "override key has {} segments; at most {MAX_OVERRIDE_SEGMENTS} are allowed",
                segments.len()
            ),
        ));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ConfigError::new(path, "override key has an empty segment"));
    }
    let mut cur = root;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        cur = match cur {
            Value::Table(t) => {
                if last {
                    t.insert(seg.to_string(), value);
                    return Ok(());
                }
                let next_is_index = segments[i + 1].parse::<usize>().is_ok();
                t.entry(seg.to_string()).or_insert_with(|| {
                    if next_is_index {
                        Value::Array(Vec::new())
                    } else {
                        Value::Table(toml::Table::new())
                    }
                })
            }
            Value::Array(a) => {
                let idx: usize = seg.parse().map_err(|_| {
                    ConfigError::new(path, format!("{seg:?} must be an array index here"))
                })?;
                if idx > a.len() {
                    return Err(ConfigError::new(
                        path,
                        format!("index {idx} is past the end of an array of {}", a.len()),
                    ));
                }
                if idx == a.len() {
                    a.push(Value::Table(toml::Table::new()));
                }
                if last {
                    a[idx] = value;
                    return Ok(());
                }
                &mut a[idx]
            }
            _ => {
                return Err(ConfigError::new(
                    path,
                    format!("cannot set a key below {seg:?}: it is not a table"),
                ))
            }
        };
    }
    Ok(())
}

/// Remove the key at `path` (`inputs[0].close.x`, as errors name keys); false if absent.
pub fn remove_key(root: &mut Value, path: &str) -> bool {
    let mut segs: Vec<(String, Option<usize>)> = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            segs.push((name.to_string(), None));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse::<usize>() {
                segs.push((String::new(), Some(i)));
            }
            rest = &rest[end + 1..];
        }
    }
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = root;
    for (name, idx) in parents {
        let next = match idx {
            Some(i) => cur.as_array_mut().and_then(|a| a.get_mut(*i)),
            None => cur.as_table_mut().and_then(|t| t.get_mut(name)),
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match last {
        (_, Some(i)) => match cur.as_array_mut() {
            Some(a) if *i < a.len() => {
                a.remove(*i);
                true
            }
            _ => false,
        },
        (name, None) => cur.as_table_mut().is_some_and(|t| t.remove(name).is_some()),
    }
}

/// Expand `${VAR}` and `${VAR:default}` inside every string value, using `lookup`.
pub fn expand_env(
    v: &mut Value,
    key: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match v {
        Value::String(s) if s.contains("${") => *s = expand_str(s, key, lookup)?,
        Value::Array(a) => {
            for (i, item) in a.iter_mut().enumerate() {
                expand_env(item, &format!("{key}[{i}]"), lookup)?;
            }
        }
        Value::Table(t) => {
            for (k, item) in t.iter_mut() {
                let child = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                expand_env(item, &child, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    key: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::new(key, "unterminated ${...}: add the closing brace"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(':') {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(ConfigError::new(
                    key,
                    format!(
                    "environment variable {name} is not set; set it or write ${{{name}:default}}"
                ),
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `scheme://user:xxxxx@host`: the password of a URL (`proxy_url`) is masked.
fn mask_url_password(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (userinfo, host) = rest.rsplit_once('@')?;
        let (user, _) = userinfo.split_once(':')?;
        Some(format!("{scheme}://{user}:xxxxx@{host}"))
    }) {
        Some(m) => m,
        None => url.to_string(),
    }
}

/// Like `masked`, but a secret given as a reference (`"${ES_PASSWORD}"`) is kept: it holds
/// no secret, and a configuration written for migration stays usable.
pub fn masked_keep_refs(v: &Value) -> Value {
    match v {
        Value::Table(t) => Value::Table(
            t.iter()
                .map(|(k, item)| {
                    let is_ref = item.as_str().is_some_and(|s| {
                        s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1
                    });
                    let val = if SECRET_KEYS.contains(&k.as_str()) && is_ref {
                        item.clone()
                    } else if item.is_table() || item.is_array() {
                        masked_keep_refs(item)
                    } else {
                        match masked(&Value::Table(toml::Table::from_iter([(
                            k.clone(),
                            item.clone(),
                        )]))) {
                            Value::Table(mut one) => one.remove(k).unwrap_or_else(|| item.clone()),
                            _ => item.clone(),
                        }
                    };
                    (k.clone(), val)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(masked_keep_refs).collect()),
        other => other.clone(),
    }
}

/// A copy of the tree with every secret value replaced by "xxxxx".
pub fn masked(v: &Value) -> Value {
    match v {
        Value::Table(t) => Value::Table(
            t.iter()
                .map(|(k, item)| {
                    let secret = SECRET_KEYS.contains(&k.as_str()) && !item.is_table();
                    let val = if secret {
                        Value::String("xxxxx".into())
                    } else if k == "librdkafka" {
                        masked_passthrough(item, "")
                    } else if let (true, Some(url)) = (k == "proxy_url", item.as_str()) {
                        Value::String(mask_url_password(url))
                    } else if k == "headers" && item.is_table() {
                        // HTTP header values (output.elasticsearch.headers) often carry tokens.
                        let t = item.as_table().into_iter().flatten();
                        Value::Table(
                            t.map(|(h, _)| (h.clone(), Value::String("xxxxx".into())))
                                .collect(),
                        )
                    } else {
                        masked(item)
                    };
                    (k.clone(), val)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(masked).collect()),
        other => other.clone(),
    }
}

/// Raw client properties (`[output.kafka.librdkafka]`): every value whose dotted name holds a
/// secret is masked (`"sasl.password"`, or `sasl.password` written as nested tables).
fn masked_passthrough(v: &Value, prefix: &str) -> Value {
    let Value::Table(t) = v else {
        return masked(v);
    };
    Value::Table(
        t.iter()
            .map(|(k, item)| {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let val = if item.is_table() {
                    masked_passthrough(item, &name)
                } else if super::secret::is_secret_property(&name)
                    || SECRET_KEYS.contains(&k.as_str())
                {
                    Value::String("xxxxx".into())
                } else {
                    masked(item)
                };
                (k.clone(), val)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_masked() {
        let v: Value = toml::from_str(
            "[output.elasticsearch]\nheaders = { Authorization = \"Bearer tok\" }\npassword = \"pw\"",
        )
        .unwrap();
        let m = masked(&v).to_string();
        assert!(!m.contains("tok") && !m.contains("\"pw\""), "{m}");
        assert!(m.contains("Authorization"), "{m}");
    }

    #[test]
    fn overrides_create_and_index() {
        let mut v = parse("[[inputs]]\nid = \"a\"\n", "t").unwrap();
        apply_override(&mut v, "inputs.0.paths=[\"/x\"]").unwrap();
        apply_override(&mut v, "output.file.path=/tmp/out").unwrap();
        apply_override(&mut v, "queue.mem.events=100").unwrap();
        assert_eq!(v["inputs"][0]["paths"][0].as_str(), Some("/x"));
        assert_eq!(v["output"]["file"]["path"].as_str(), Some("/tmp/out"));
        assert_eq!(v["queue"]["mem"]["events"].as_integer(), Some(100));
        assert!(apply_override(&mut v, "nokey").is_err());
        let deep = format!("{}=1", vec!["a"; 50_000].join("."));
        let e = apply_override(&mut v, &deep).unwrap_err().to_string();
        assert!(e.contains("50000 segments"), "{e}");
    }

    #[test]
    fn env_expansion() {
        let lookup = |n: &str| (n == "HOME_X").then(|| "/h".to_string());
        let mut v = parse("a = \"${HOME_X}/log\"\nb = \"${NOPE:dflt}\"\n", "t").unwrap();
        expand_env(&mut v, "", &lookup).unwrap();
        assert_eq!(v["a"].as_str(), Some("/h/log"));
        assert_eq!(v["b"].as_str(), Some("dflt"));
        let mut bad = parse("[s]\nc = \"${NOPE}\"\n", "t").unwrap();
        let e = expand_env(&mut bad, "", &lookup).unwrap_err().to_string();
        assert!(e.contains("s.c") && e.contains("NOPE"), "{e}");
    }

    #[test]
    fn secrets_are_masked() {
        let v = parse(
            "[output.kafka]\nhosts=[\"h\"]\n[output.kafka.sasl]\npassword=\"p\"\n[cloud]\nauth=\"u:p\"\n",
            "t",
        )
        .unwrap();
        let m = masked(&v).to_string();
        assert!(!m.contains("\"p\"") && !m.contains("u:p"), "{m}");
        assert!(m.contains("xxxxx"));
        let v = parse(
            "[output.kafka.librdkafka]\n\"ssl.key.password\" = \"k1\"\nssl.key.pem = \"k2\"\n\"ssl.key.location\" = \"/k.pem\"\n",
            "t",
        )
        .unwrap();
        let m = masked(&v).to_string();
        assert!(
            !m.contains("k1") && !m.contains("k2") && m.contains("/k.pem"),
            "{m}"
        );
    }

    #[test]
    fn syntax_errors_on_secret_lines_do_not_show_the_line() {
        let e = parse("[s]\nuser = \"u\"\npassword = \"hunter2\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2") && e.contains("line 3"), "{e}");
        let e = parse("[s]\nuser = \"unterminated\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unterminated"), "other lines are shown: {e}");
    }
}
