//! What a reload may change: the inputs (of the main file and of `config.inputs`), the
//! global processors (for events published from then on), `logging.level` and
//! `logging.selectors`. Any other change (output, queue, path.data, registry, ...) needs a
//! restart: the reload is refused, naming the first key that differs, and the running
//! configuration stays.

use crate::config::{Config, InputConfig};

/// Top-level keys (or `section.key`) a reload applies.
const RELOADABLE: &[&str] = &[
    "inputs",
    "processors",
    "config",
    "logging.level",
    "logging.selectors",
];

fn tree(cfg: &Config) -> serde_json::Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(serde_json::Value::Null);
    for key in RELOADABLE {
        let mut at = &mut v;
        let mut parts = key.split('.').peekable();
        while let Some(p) = parts.next() {
            let serde_json::Value::Object(m) = at else {
                break;
            };
            if parts.peek().is_none() {
                m.remove(p);
                break;
            }
            match m.get_mut(p) {
                Some(next) => at = next,
                None => break,
            }
        }
    }
    v
}

/// The first key path whose value differs (`output.kafka.hosts`, `queue.mem.events`).
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, &join(k)) {
                            return Some(d);
                        }
                    }
                    None => return Some(join(k)),
                }
            }
            y.keys().find(|k| !x.contains_key(*k)).map(|k| join(k))
        }
        _ if a == b => None,
        _ => Some(if path.is_empty() {
            "(root)".into()
        } else {
            path.into()
        }),
    }
}

/// The key of the first change between `old` and `new` that a reload cannot apply.
pub fn restart_only_change(old: &Config, new: &Config) -> Option<String> {
    first_difference(&tree(old), &tree(new), "")
}

/// Every input of `cfg` with its key path, the main file's first.
pub fn wanted(cfg: &Config) -> Vec<(String, InputConfig)> {
    let main = cfg
        .inputs
        .iter()
        .enumerate()
        .map(|(i, inp)| (format!("inputs[{i}]"), inp.clone()));
    let dir = cfg
        .dir_inputs
        .iter()
        .map(|inp| (format!("config.inputs: {}", inp.id()), inp.clone()));
    main.chain(dir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::from_str_with(text, "t.toml", &[], &|_| None)
            .unwrap()
            .0
    }

    const BASE: &str = r#"
[[inputs]]
type = "filestream"
id = "a"
paths = ["/tmp/a.log"]
[output.file]
path = "/tmp/out"
"#;

    #[test]
    fn inputs_processors_and_level_reload_the_rest_does_not() {
        let old = cfg(BASE);
        let more = format!(
            "{BASE}\n[[inputs]]\ntype = \"filestream\"\nid = \"b\"\npaths = [\"/tmp/b.log\"]\n\
             [[processors]]\nadd_fields = {{ target = \"\", fields = {{ x = 1 }} }}\n\
             [logging]\nlevel = \"debug\"\nselectors = [\"registry\"]\n"
        );
        assert_eq!(restart_only_change(&old, &cfg(&more)), None);
        let out = BASE.replace("/tmp/out", "/tmp/elsewhere");
        assert_eq!(
            restart_only_change(&old, &cfg(&out)).as_deref(),
            Some("output.file.path")
        );
        let data = format!("[path]\ndata = \"/tmp/d2\"\n{BASE}");
        assert_eq!(
            restart_only_change(&old, &cfg(&data)).as_deref(),
            Some("path.data")
        );
        let queue = format!("{BASE}\n[queue.mem]\nevents = 64\n");
        assert_eq!(
            restart_only_change(&old, &cfg(&queue)).as_deref(),
            Some("queue.mem.events")
        );
    }
}
