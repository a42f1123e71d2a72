//! The direct path gives the same fields as the Kafka → Logstash path: the grok and dissect
//! patterns of the ingest pipeline `oxibeat-logs-parse` (elasticsearch/ingest_pipelines/) and
//! those of logstash/pipeline/logs.conf, run on the generator's sample lines
//! (examples/sample-logs/, written by examples/loggen.rs), extract the same fields.
//!
//! Both grok sets are compiled with the same Oniguruma-based grok engine (the `grok` crate with
//! the classic pattern set, as tests/logstash_grok.rs); both dissect mappings run through
//! oxibeat's own dissect processor (Beats' tokenizer, the syntax Logstash and the ingest
//! dissect share). Field names are compared after mapping Logstash's `[a][b]` to `a.b` and its
//! `[@metadata][x]` to the pipeline's temporary `_tmp.x`.
//!
//! What cannot run here (Painless scripts, geoip, user_agent, reroute) is not covered by this
//! test: tests/stack/test_engine.py runs the whole pipeline but geoip and reroute on a real
//! OpenSearch node; the pipeline body is checked against the 9.2 API spec by validate-es-assets.

use std::collections::BTreeMap;

use grok::Grok;
use serde_json::Value;

const LOGS_CONF: &str = include_str!("../logstash/pipeline/logs.conf");
const PIPELINE: &str = include_str!("../elasticsearch/ingest_pipelines/oxibeat-logs-parse.json");
const NGINX: &str = include_str!("../examples/sample-logs/nginx-access.log");
const APP: &str = include_str!("../examples/sample-logs/app.log");

/// Shapes loggen also writes that the sample file lacks: IPv6 client, a user, no body bytes.
const NGINX_MORE: &[&str] = &[
    r#"2001:db8::7 - alice [25/Nov/2026:23:59:59 +0100] "POST /api/orders HTTP/2.0" 503 - "-" "curl/8.5.0""#,
    r#"198.51.100.23 - - [01/Dec/2026:00:00:01 -0500] "DELETE /api/items/42?seq=9 HTTP/1.1" 404 0 "-" "python-requests/2.32""#,
];

struct Pattern {
    pattern: String,
    definition: Option<(String, String)>,
}

/// logs.conf groks by id (same convention as tests/logstash_grok.rs).
fn logstash_groks() -> BTreeMap<String, Pattern> {
    let re = regex::Regex::new(concat!(
        r#"(?s)grok\s*\{\s*id\s*=>\s*"([^"]+)""#,
        r#"(?:\s*pattern_definitions\s*=>\s*\{\s*"([^"]+)"\s*=>\s*'([^']*)'\s*\})?"#,
        r#"\s*match\s*=>\s*\{\s*"[^"]+"\s*=>\s*'([^']*)'"#
    ))
    .unwrap();
    re.captures_iter(LOGS_CONF)
        .map(|c| {
            (
                c[1].to_string(),
                Pattern {
                    pattern: c[4].replace("[@metadata]", "[_tmp]"),
                    definition: c
                        .get(2)
                        .zip(c.get(3))
                        .map(|(n, d)| (n.as_str().to_string(), d.as_str().to_string())),
                },
            )
        })
        .collect()
}

fn pipeline() -> Vec<Value> {
    let v: Value = serde_json::from_str(PIPELINE).expect("pipeline JSON");
    v["processors"].as_array().expect("processors").clone()
}

/// The ingest pipeline's grok processors by tag.
fn ingest_groks() -> BTreeMap<String, Pattern> {
    pipeline()
        .iter()
        .filter_map(|p| p.get("grok"))
        .map(|g| {
            let patterns = g["patterns"].as_array().expect("patterns");
            assert_eq!(patterns.len(), 1, "one pattern per grok, as in logs.conf");
            (
                g["tag"].as_str().expect("tag").to_string(),
                Pattern {
                    pattern: patterns[0].as_str().unwrap().to_string(),
                    definition: g["pattern_definitions"].as_object().map(|m| {
                        let (k, v) = m.iter().next().expect("one definition");
                        (k.clone(), v.as_str().unwrap().to_string())
                    }),
                },
            )
        })
        .collect()
}

fn compile(p: &Pattern) -> grok::Pattern {
    let mut g = Grok::with_default_patterns();
    if let Some((n, d)) = &p.definition {
        g.add_pattern(n.clone(), d.clone());
    }
    g.compile(&p.pattern, true)
        .unwrap_or_else(|e| panic!("{}: {e}", p.pattern))
}

/// `[a][b]` → `a.b`; ECS dotted names stay.
fn norm(k: &str) -> String {
    if k.starts_with('[') {
        k.trim_start_matches('[')
            .trim_end_matches(']')
            .replace("][", ".")
    } else {
        k.to_string()
    }
}

fn fields(p: &grok::Pattern, text: &str) -> Option<BTreeMap<String, String>> {
    p.match_against(text).map(|m| {
        m.iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (norm(k), v.to_string()))
            .collect()
    })
}

/// The type conversions (`:int`) of a pattern, by normalised field.
fn conversions(pattern: &str) -> BTreeMap<String, String> {
    let re = regex::Regex::new(r"%\{\w+:([^:}]+):(\w+)\}").unwrap();
    re.captures_iter(pattern)
        .map(|c| (norm(&c[1]), c[2].to_string()))
        .collect()
}

/// App events as the multiline parser joins them: a line starting with a timestamp starts one.
fn app_events() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let ts = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T").unwrap();
    for line in APP.lines().filter(|l| !l.is_empty()) {
        match out.last_mut() {
            Some(last) if !ts.is_match(line) => {
                last.push('\n');
                last.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

#[test]
fn both_paths_define_the_same_groks() {
    let ls = logstash_groks();
    let es = ingest_groks();
    for id in [
        "nginx_access",
        "nginx_url",
        "app_exception_type",
        "app_stack_trace",
        "seq",
    ] {
        let (a, b) = (&ls[id], &es[id]);
        assert_eq!(
            conversions(&a.pattern),
            conversions(&b.pattern),
            "{id}: type conversions differ"
        );
        assert_eq!(
            a.definition.as_ref().map(|d| &d.1),
            b.definition.as_ref().map(|d| &d.1),
            "{id}: pattern definitions differ"
        );
        compile(a);
        compile(b);
    }
}

#[test]
fn nginx_lines_give_the_same_fields() {
    let (ls, es) = (logstash_groks(), ingest_groks());
    let (a, b) = (compile(&ls["nginx_access"]), compile(&es["nginx_access"]));
    let (ua, ub) = (compile(&ls["nginx_url"]), compile(&es["nginx_url"]));
    let (sa, sb) = (compile(&ls["seq"]), compile(&es["seq"]));
    let mut n = 0;
    for line in NGINX
        .lines()
        .filter(|l| !l.is_empty())
        .chain(NGINX_MORE.iter().copied())
    {
        let fa = fields(&a, line).unwrap_or_else(|| panic!("logstash grok: {line}"));
        let fb = fields(&b, line).unwrap_or_else(|| panic!("ingest grok: {line}"));
        assert_eq!(fa, fb, "{line}");
        assert!(fa.contains_key("source.address"), "{line}: {fa:?}");
        let url = &fa["url.original"];
        assert_eq!(fields(&ua, url), fields(&ub, url), "{url}");
        assert_eq!(fields(&sa, line), fields(&sb, line), "{line}");
        n += 1;
    }
    assert!(n >= 6, "sample nginx lines: {n}");
}

/// Run a dissect tokenizer through oxibeat's dissect processor.
fn dissect(tokenizer: &str, message: &str) -> Value {
    let proc = format!(
        "[[processors]]\ndissect = {{ tokenizer = {tokenizer:?}, field = \"message\", target_prefix = \"\" }}\n"
    );
    let tree: toml::Value = toml::from_str(&proc).unwrap();
    let chain = oxibeat::processors::build(tree["processors"].as_array().unwrap(), "processors")
        .expect("dissect builds");
    let mut m = serde_json::Map::new();
    m.insert("message".into(), Value::String(message.to_string()));
    let mut ev = oxibeat::event::Event::from_map(0, m);
    chain.run(&mut ev);
    let mut v = Value::Object(ev.fields_mut().clone());
    v.as_object_mut().unwrap().remove("message");
    v
}

#[test]
fn app_events_give_the_same_fields() {
    let conf_re =
        regex::Regex::new(r#"(?s)id\s*=>\s*"app_dissect".*?"message"\s*=>\s*"([^"]+)""#).unwrap();
    let ls_mapping = conf_re
        .captures(LOGS_CONF)
        .expect("app_dissect in logs.conf")[1]
        .replace("[@metadata]", "[_tmp]");
    // Logstash field references to dotted names, as the tokenizer writes nested keys.
    let ref_re = regex::Regex::new(r"%\{(\[[^}]*\])(->)?\}").unwrap();
    let ls_mapping = ref_re
        .replace_all(&ls_mapping, |c: &regex::Captures<'_>| {
            format!(
                "%{{{}{}}}",
                norm(&c[1]),
                c.get(2).map_or("", |m| m.as_str())
            )
        })
        .into_owned();
    let es_mapping = pipeline()
        .iter()
        .find_map(|p| {
            p.get("dissect")
                .filter(|d| d["tag"] == "app_dissect")
                .cloned()
        })
        .expect("app_dissect in the pipeline")["pattern"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ls_mapping, es_mapping);
    let (ls, es) = (logstash_groks(), ingest_groks());
    let (ta, tb) = (
        compile(&ls["app_exception_type"]),
        compile(&es["app_exception_type"]),
    );
    let (sa, sb) = (
        compile(&ls["app_stack_trace"]),
        compile(&es["app_stack_trace"]),
    );
    let events = app_events();
    let mut traces = 0;
    for ev in &events {
        let a = dissect(&ls_mapping, ev);
        let b = dissect(&es_mapping, ev);
        assert_eq!(a, b, "{ev}");
        assert!(a["log"]["level"].is_string(), "{ev}: {a}");
        let text = a["_tmp"]["text"].as_str().expect("text after the logger");
        assert_eq!(fields(&ta, text), fields(&tb, text), "{text}");
        let (x, y) = (fields(&sa, text), fields(&sb, text));
        assert_eq!(x, y, "{text}");
        traces += usize::from(x.is_some_and(|f| f.contains_key("error.stack_trace")));
    }
    assert!(
        events.len() >= 3 && traces >= 1,
        "{} events, {traces} traces",
        events.len()
    );
}
