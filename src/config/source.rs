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

pub fn parse(text: &str, file: &str) -> Result<Value, ConfigError> {
    text.parse::<toml::Table>()
        .map(Value::Table)
        .map_err(|e| ConfigError::new("", format!("{file}: invalid TOML: {e}")))
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

/// A copy of the tree with every secret value replaced by "xxxxx".
pub fn masked(v: &Value) -> Value {
    match v {
        Value::Table(t) => Value::Table(
            t.iter()
                .map(|(k, item)| {
                    let secret = SECRET_KEYS.contains(&k.as_str()) && !item.is_table();
                    let val = if secret {
                        Value::String("xxxxx".into())
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
    }
}
