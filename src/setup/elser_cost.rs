//! What ELSER costs, in plain words, for `oxibeat setup`: how many warn/error lines a day the
//! inference endpoint behind `oxibeat.semantic_message` can embed on its allocation.
//!
//! Figures: Elastic's ELSER v2 hardware benchmark (ML docs, "ELSER", Hardware benchmarks):
//! the optimized model reached 22 documents of 256 tokens a second on 8 allocations of one
//! thread, near-linear up to 8, so about 2.75 a second per allocation. The preconfigured
//! `.elser-2-elasticsearch` endpoint has one thread per allocation and adaptive allocations
//! from 0 to 32 (`ElserInternalServiceSettings.defaultEndpointSettings`). Chunks: the
//! `semantic_text` mapping's `chunking_settings` (sentence strategy, 60 words), whose word
//! count follows ICU word breaks (`SentenceBoundaryChunker.countWords`), where a Java class
//! name such as `org.example.Foo.bar` is one word.

use serde_json::Value;

use super::{es::Es, Outcome, Printer, SetupError};

/// Chunks of about 256 tokens one allocation (one thread) embeds per second.
pub const CHUNKS_PER_SECOND_PER_ALLOCATION: f64 = 2.75;
/// `chunking_settings.max_chunk_size` of `oxibeat-logs-semantic.json`.
pub const MAX_CHUNK_WORDS: usize = 60;

/// Words as the chunker counts them: runs of letters, digits, `.`, `_` and `$` that hold a
/// letter or digit (ICU keeps `a.b` and `a_b` together).
pub fn words(line: &str) -> usize {
    line.split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '_' || c == '$'))
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

/// How many chunks a message becomes: lines are sentences, packed up to the word limit with
/// one line of overlap; a longer line is split on words.
pub fn chunks(message: &str) -> usize {
    let mut n = 0;
    let mut current = 0;
    let mut last = 0;
    for line in message.lines() {
        let w = words(line);
        if w == 0 {
            continue;
        }
        if w > MAX_CHUNK_WORDS {
            if current > 0 {
                n += 1;
            }
            n += w.div_ceil(MAX_CHUNK_WORDS / 2);
            current = 0;
            last = 0;
            continue;
        }
        if current + w > MAX_CHUNK_WORDS && current > 0 {
            n += 1;
            current = last;
        }
        current += w;
        last = w;
    }
    if current > 0 {
        n += 1;
    }
    n.max(1)
}

fn allocation(endpoint: &Value) -> (String, f64) {
    let s = &endpoint["service_settings"];
    let threads = s["num_threads"].as_u64().unwrap_or(1);
    let a = &s["adaptive_allocations"];
    if a["enabled"].as_bool() == Some(true) {
        let min = a["min_number_of_allocations"].as_u64().unwrap_or(0);
        let max = a["max_number_of_allocations"].as_u64().unwrap_or(32);
        (
            format!(
                "adaptive allocations {min} to {max} of {threads} thread(s), scaled to the load \
                 (one CPU each on an ML node{})",
                if min == 0 {
                    "; at 0 when idle, so the first line after a pause waits for the model to start"
                } else {
                    ""
                }
            ),
            1.0,
        )
    } else {
        let n = s["num_allocations"].as_u64().unwrap_or(1).max(1);
        (
            format!("{n} allocation(s) of {threads} thread(s)"),
            n as f64,
        )
    }
}

fn thousands(n: f64) -> String {
    let n = n.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report for `endpoint` (a `GET _inference/<id>` entry) and a sample stack trace.
pub fn describe(endpoint: &Value) -> String {
    let (alloc, allocations) = allocation(endpoint);
    let per_day = CHUNKS_PER_SECOND_PER_ALLOCATION * 86_400.0 * allocations;
    let trace = sample_trace();
    let per_trace = chunks(&trace);
    format!(
        "{alloc}; one allocation embeds about {} chunks a second (Elastic's ELSER v2 benchmark, \
         256-token chunks), so about {} warn/error lines a day of up to {MAX_CHUNK_WORDS} words \
         (one chunk each), or {} with a {}-line Java stack trace ({per_trace} chunks each); only \
         warn/error/critical lines are embedded",
        CHUNKS_PER_SECOND_PER_ALLOCATION,
        thousands(per_day),
        thousands(per_day / per_trace as f64),
        trace.lines().count()
    )
}

/// A Java stack trace of 40 frames, as a failing Spring request logs.
fn sample_trace() -> String {
    let mut s = String::from(
        "Failed to process order 123456: java.lang.IllegalStateException: Inventory reservation failed\n",
    );
    for i in 0..40 {
        s.push_str(&format!(
            "\tat org.springframework.web.servlet.FrameworkServlet{i}.service(FrameworkServlet.java:{})\n",
            800 + i
        ));
    }
    s
}

/// The setup line: the endpoint's allocation and what it embeds in a day.
pub(crate) async fn report(es: &Es, p: &mut Printer<'_>) -> Result<(), SetupError> {
    let id = super::assets::INFERENCE_ID;
    let outcome = match es
        .call(
            elasticsearch::http::Method::Get,
            &format!("/_inference/{id}"),
            None,
        )
        .await
    {
        Ok(r) if r.ok() => Outcome::Ok(describe(&r.body["endpoints"][0])),
        Ok(r) => Outcome::Ok(format!(
            "unknown: GET _inference/{id} answered HTTP {}; {}",
            r.status,
            describe(&Value::Null)
        )),
        Err(e) => Outcome::Ok(format!("unknown: {e}")),
    };
    p.line("ELSER cost", id, outcome, vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn words_follow_icu_word_breaks_roughly() {
        assert_eq!(words("No space left on device"), 5);
        assert_eq!(
            words("\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)"),
            4
        );
    }

    #[test]
    fn chunks_of_short_lines_and_stack_traces() {
        assert_eq!(chunks("Disk usage at 100%"), 1);
        assert_eq!(chunks(&sample_trace()), 3);
        let long = "word ".repeat(200);
        assert!(chunks(&long) >= 4);
    }

    #[test]
    fn plain_words() {
        let e = json!({"service_settings": {"num_threads": 1,
            "adaptive_allocations": {"enabled": true, "min_number_of_allocations": 0, "max_number_of_allocations": 32}}});
        let s = describe(&e);
        assert!(
            s.starts_with("adaptive allocations 0 to 32 of 1 thread(s)"),
            "{s}"
        );
        assert!(s.contains("about 237,600 warn/error lines a day"), "{s}");
        assert!(s.contains("waits for the model to start"), "{s}");
        let s = describe(&json!({"service_settings": {"num_allocations": 2, "num_threads": 1}}));
        assert!(
            s.starts_with("2 allocation(s)") && s.contains("475,200"),
            "{s}"
        );
    }
}
