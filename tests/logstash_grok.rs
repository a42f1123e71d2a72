//! The grok patterns of logstash/pipeline/logs.conf, compiled with an Oniguruma-based grok
//! engine (the `grok` crate, onig backend, with the classic Logstash pattern set) and matched
//! against lines shaped like the generator's (examples/loggen.rs).
//!
//! Convention the extraction relies on: in the .conf files, grok `match` patterns are the only
//! single-quoted strings of the form `"FIELD" => '...'`.

use std::collections::HashMap;

use grok::Grok;

const LOGS_CONF: &str = include_str!("../logstash/pipeline/logs.conf");

/// A grok filter of logs.conf: id, pattern, extra pattern definition.
struct GrokFilter {
    id: String,
    pattern: String,
    definition: Option<(String, String)>,
}

/// Every grok in logs.conf (`id`, optional one-entry `pattern_definitions`, `match`).
fn groks() -> Vec<GrokFilter> {
    let re = regex::Regex::new(concat!(
        r#"(?s)grok\s*\{\s*id\s*=>\s*"([^"]+)""#,
        r#"(?:\s*pattern_definitions\s*=>\s*\{\s*"([^"]+)"\s*=>\s*'([^']*)'\s*\})?"#,
        r#"\s*match\s*=>\s*\{\s*"[^"]+"\s*=>\s*'([^']*)'"#
    ))
    .expect("regex");
    re.captures_iter(LOGS_CONF)
        .map(|c| GrokFilter {
            id: c[1].to_string(),
            definition: c
                .get(2)
                .zip(c.get(3))
                .map(|(n, d)| (n.as_str().to_string(), d.as_str().to_string())),
            pattern: c[4].to_string(),
        })
        .collect()
}

fn compile(id: &str) -> grok::Pattern {
    let g = groks()
        .into_iter()
        .find(|g| g.id == id)
        .unwrap_or_else(|| panic!("no grok with id {id} in logs.conf"));
    // The crate's alias syntax has no `@`: Logstash's `[@metadata]` is renamed for the test.
    let pat = g.pattern.replace("[@metadata]", "[_metadata]");
    let mut grok = Grok::with_default_patterns();
    if let Some((name, def)) = g.definition {
        grok.add_pattern(name, def);
    }
    grok.compile(&pat, true)
        .unwrap_or_else(|e| panic!("grok {id} does not compile: {e}"))
}

fn captures(p: &grok::Pattern, line: &str) -> Option<HashMap<String, String>> {
    p.match_against(line).map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

#[test]
fn every_grok_compiles() {
    let all = groks();
    let ids: Vec<&str> = all.iter().map(|g| g.id.as_str()).collect();
    for want in [
        "nginx_access",
        "nginx_url",
        "app_stack_trace",
        "app_exception_type",
        "seq",
    ] {
        assert!(ids.contains(&want), "grok {want} missing; found {ids:?}");
    }
    for g in &all {
        compile(&g.id);
    }
}

const NGINX: &[&str] = &[
    r#"203.0.113.9 - - [25/Nov/2026:10:00:00 +0000] "GET /api/items?id=42&seq=7 HTTP/1.1" 200 512 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36""#,
    r#"2001:db8::7 - alice [25/Nov/2026:23:59:59 +0100] "POST /api/orders HTTP/2.0" 503 - "-" "curl/8.5.0""#,
    r#"198.51.100.23 - - [01/Dec/2026:00:00:01 -0500] "DELETE /api/items/42?seq=9 HTTP/1.1" 404 0 "-" "python-requests/2.32""#,
];

#[test]
fn nginx_lines_parse_into_ecs_fields() {
    let p = compile("nginx_access");
    let c = captures(&p, NGINX[0]).expect("first nginx line matches");
    assert_eq!(c["[source][address]"], "203.0.113.9");
    assert_eq!(c["[http][request][method]"], "GET");
    assert_eq!(c["[url][original]"], "/api/items?id=42&seq=7");
    assert_eq!(c["[http][version]"], "1.1");
    assert_eq!(c["[http][response][status_code]"], "200");
    assert_eq!(c["[http][response][body][bytes]"], "512");
    assert_eq!(c["[http][request][referrer]"], "https://example.com/");
    assert!(c["[user_agent][original]"].starts_with("Mozilla/5.0 (X11"));
    assert_eq!(c["[_metadata][ts]"], "25/Nov/2026:10:00:00 +0000");
    assert_eq!(p.get_extract("[http][response][status_code]"), Some("int"));

    let c = captures(&p, NGINX[1]).expect("IPv6, user, no bytes");
    assert_eq!(c["[source][address]"], "2001:db8::7");
    assert_eq!(c["[user][name]"], "alice");
    assert_eq!(c["[http][response][status_code]"], "503");
    assert!(
        !c.contains_key("[http][response][body][bytes]")
            || c["[http][response][body][bytes]"].is_empty()
    );
    assert!(
        !c.contains_key("[http][request][referrer]") || c["[http][request][referrer]"].is_empty()
    );

    assert!(captures(&p, NGINX[2]).is_some());
    assert!(
        captures(&p, "2026-11-25T10:00:00.123Z ERROR [x] not nginx").is_none(),
        "an app line must not parse as nginx"
    );
}

#[test]
fn url_splits_path_and_query() {
    let p = compile("nginx_url");
    let c = captures(&p, "/api/items?id=42&seq=7").expect("url");
    assert_eq!(c["[url][path]"], "/api/items");
    assert_eq!(c["[url][query]"], "id=42&seq=7");
    let c = captures(&p, "/api/orders").expect("url without query");
    assert_eq!(c["[url][path]"], "/api/orders");
}

/// An app event as oxibeat's multiline parser joins it; `message` after dissect starts at the
/// text following the logger.
const APP_MULTI: &str =
    "Failed to process order 123: java.lang.IllegalStateException: order 123 is locked seq=8\n\
\tat com.example.OrderService.process(OrderService.java:42)\n\
\tat com.example.Worker.run(Worker.java:17)\n\
Caused by: java.sql.SQLException: deadlock detected\n\
\t... 2 more";

#[test]
fn multiline_app_event_keeps_the_stack_trace() {
    let p = compile("app_stack_trace");
    let c = captures(&p, APP_MULTI).expect("stack trace grok");
    let st = &c["[error][stack_trace]"];
    assert!(
        st.starts_with("\tat com.example.OrderService.process"),
        "{st}"
    );
    assert!(st.ends_with("\t... 2 more"), "{st}");
    assert!(st.contains("Caused by: java.sql.SQLException"), "{st}");
    assert!(
        captures(&p, "Order 7 shipped seq=3").is_none(),
        "a one-line event has no stack trace"
    );
}

#[test]
fn exception_class_is_the_error_type() {
    let t = compile("app_exception_type");
    let c = captures(&t, APP_MULTI).expect("exception type");
    assert_eq!(c["[error][type]"], "java.lang.IllegalStateException");
    let c = captures(
        &t,
        "Out of heap: java.lang.OutOfMemoryError: Java heap space seq=4",
    )
    .expect("an Error class");
    assert_eq!(c["[error][type]"], "java.lang.OutOfMemoryError");
    assert!(captures(&t, "Order 7 shipped to com.example seq=3").is_none());
}

#[test]
fn sequence_numbers_are_found() {
    let p = compile("seq");
    assert_eq!(captures(&p, NGINX[0]).expect("seq")["[oxibeat][seq]"], "7");
    assert_eq!(captures(&p, APP_MULTI).expect("seq")["[oxibeat][seq]"], "8");
    assert_eq!(p.get_extract("[oxibeat][seq]"), Some("int"));
}

// ---- real generator output (tests/fixtures/loggen, see its README) ----

const FIXTURE_NGINX: &str = include_str!("fixtures/loggen/nginx.log");
const FIXTURE_APP: &str = include_str!("fixtures/loggen/app.log");

/// App events as oxibeat's multiline parser groups them (pattern `^\d{4}-\d{2}-\d{2}T`,
/// negate, match after).
fn app_events() -> Vec<String> {
    let start = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T").expect("regex");
    let mut events: Vec<String> = Vec::new();
    for line in FIXTURE_APP.lines() {
        match events.last_mut() {
            Some(e) if !start.is_match(line) => {
                e.push('\n');
                e.push_str(line);
            }
            _ => events.push(line.to_string()),
        }
    }
    events
}

/// The text after `[logger] `, as the dissect of logs.conf leaves it in `message`.
fn after_logger(event: &str) -> &str {
    event.split_once("] ").map(|(_, t)| t).unwrap_or(event)
}

#[test]
fn every_generator_nginx_line_parses_with_consecutive_seq() {
    let p = compile("nginx_access");
    let seq = compile("seq");
    let mut expected = None;
    for line in FIXTURE_NGINX.lines() {
        let c = captures(&p, line).unwrap_or_else(|| panic!("nginx grok misses: {line}"));
        let status: u16 = c["[http][response][status_code]"].parse().expect("status");
        assert!((100..600).contains(&status), "{line}");
        assert!(!c["[user_agent][original]"].is_empty(), "{line}");
        let n: u64 = captures(&seq, line).expect("seq")["[oxibeat][seq]"]
            .parse()
            .expect("number");
        if let Some(e) = expected {
            assert_eq!(n, e, "{line}");
        }
        expected = Some(n + 1);
    }
    assert_eq!(FIXTURE_NGINX.lines().count(), 80);
}

#[test]
fn generator_app_events_keep_traces_and_name_the_exception() {
    let events = app_events();
    assert_eq!(events.len(), 120);
    let st = compile("app_stack_trace");
    let ty = compile("app_exception_type");
    let seq = compile("seq");
    let mut with_trace = 0;
    let mut expected = None;
    for e in &events {
        let msg = after_logger(e);
        let n: u64 = captures(&seq, msg).unwrap_or_else(|| panic!("no seq in {e}"))
            ["[oxibeat][seq]"]
            .parse()
            .expect("number");
        if let Some(x) = expected {
            assert_eq!(n, x, "{e}");
        }
        expected = Some(n + 1);
        if e.contains('\n') {
            with_trace += 1;
            let c = captures(&st, msg).unwrap_or_else(|| panic!("no stack trace in {e}"));
            let trace = &c["[error][stack_trace]"];
            assert_eq!(trace.lines().count(), e.lines().count() - 1, "{e}");
            let t = captures(&ty, msg).unwrap_or_else(|| panic!("no exception type in {e}"));
            assert!(
                t["[error][type]"].ends_with("Exception") || t["[error][type]"].ends_with("Error"),
                "{e}"
            );
        } else {
            assert!(captures(&st, msg).is_none(), "{e}");
        }
    }
    assert!(
        with_trace >= 10,
        "the fixture has stack traces ({with_trace})"
    );
}
