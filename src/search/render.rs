//! Printing hits: a table (time, host, dataset, level, score, the message on one line with the
//! matching fragment highlighted and long stack traces folded) or JSON, one hit per line.

use serde_json::{json, Map, Value};

use super::capabilities::{MESSAGE_FIELD, SEMANTIC_FIELD};
use super::query::{HL_POST, HL_PRE};

/// One hit of a `_search` response.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub index: String,
    pub id: String,
    pub score: Option<f64>,
    pub source: Value,
    /// `message` with the matches between [`HL_PRE`] and [`HL_POST`] (the whole field).
    pub highlighted: Option<String>,
    /// The best `semantic_text` chunks, best first.
    pub chunks: Vec<String>,
}

impl Hit {
    pub fn from_json(v: &Value) -> Option<Hit> {
        let hl = &v["highlight"];
        Some(Hit {
            index: v["_index"].as_str()?.to_string(),
            id: v["_id"].as_str()?.to_string(),
            score: v["_score"].as_f64(),
            source: v["_source"].clone(),
            highlighted: hl[MESSAGE_FIELD][0].as_str().map(str::to_string),
            chunks: hl[SEMANTIC_FIELD]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// A field of `_source` by its dotted name, whether stored nested or with dots.
    pub fn field(&self, dotted: &str) -> Option<&Value> {
        lookup(&self.source, dotted)
    }

    fn text(&self, dotted: &str) -> String {
        match self.field(dotted) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        }
    }

    pub fn timestamp(&self) -> String {
        self.text("@timestamp")
    }
    pub fn host(&self) -> String {
        self.text("host.name")
    }
    pub fn dataset(&self) -> String {
        let d = self.text("data_stream.dataset");
        if d.is_empty() {
            self.text("event.dataset")
        } else {
            d
        }
    }
    pub fn level(&self) -> String {
        self.text("log.level")
    }
    pub fn message(&self) -> String {
        self.text("message")
    }
}

fn lookup<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    if let Some(x) = obj.get(dotted) {
        return Some(x);
    }
    // Longest prefix that is a key, then the rest below it.
    let mut end = dotted.len();
    while let Some(i) = dotted[..end].rfind('.') {
        if let Some(x) = obj.get(&dotted[..i]) {
            if let Some(found) = lookup(x, &dotted[i + 1..]) {
                return Some(found);
            }
        }
        end = i;
    }
    None
}

/// The hits of a `_search` response body.
pub fn hits(body: &Value) -> Vec<Hit> {
    body["hits"]["hits"]
        .as_array()
        .map(|a| a.iter().filter_map(Hit::from_json).collect())
        .unwrap_or_default()
}

/// Control characters (ANSI escapes in a log line would drive the terminal) become U+FFFD;
/// the highlight markers are kept.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{2}' | '\u{3}' => c,
            '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// The message on one line: its first line, then (after " … ") the later lines that hold a
/// match, at most two, then how many lines were left out.
pub fn fold(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let first = lines.first().map(|l| l.trim()).unwrap_or("");
    let mut out = sanitize(first);
    let mut shown = 1;
    for l in lines.iter().skip(1).filter(|l| l.contains(HL_PRE)).take(2) {
        out.push_str(" … ");
        out.push_str(&sanitize(l.trim()));
        shown += 1;
    }
    let hidden = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .count()
        .saturating_sub(shown);
    if hidden > 0 {
        out.push_str(&format!(" [+{hidden} lines]"));
    }
    out
}

/// Replace the markers: bold yellow when `color`, else `**…**`; cut to `width` characters
/// (markers not counted) with a closing marker when the cut falls inside a match.
pub fn paint(folded: &str, color: bool, width: Option<usize>) -> String {
    let (on, off) = if color {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("**", "**")
    };
    let mut out = String::with_capacity(folded.len() + 16);
    let mut n = 0usize;
    let mut inside = false;
    let limit = width.unwrap_or(usize::MAX);
    for c in folded.chars() {
        match c {
            '\u{2}' => {
                inside = true;
                out.push_str(on);
            }
            '\u{3}' => {
                inside = false;
                out.push_str(off);
            }
            c => {
                if n + 1 >= limit {
                    out.push('…');
                    if inside {
                        out.push_str(off);
                    }
                    return out;
                }
                out.push(c);
                n += 1;
            }
        }
    }
    if inside {
        out.push_str(off);
    }
    out
}

fn score(s: Option<f64>) -> String {
    match s {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

fn width_of(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    let mut t: String = s.chars().take(w).collect();
    let n = width_of(&t);
    t.push_str(&" ".repeat(w - n));
    t
}

/// The table. `width` is the terminal width (messages are cut to fit), `None` when writing to
/// a pipe or file (nothing is cut).
pub fn table(hits: &[Hit], color: bool, width: Option<usize>) -> String {
    let rows: Vec<[String; 5]> = hits
        .iter()
        .map(|h| {
            [
                sanitize(&h.timestamp()),
                sanitize(&h.host()),
                sanitize(&h.dataset()),
                sanitize(&h.level()),
                score(h.score),
            ]
        })
        .collect();
    let heads = ["TIME", "HOST", "DATASET", "LEVEL", "SCORE"];
    let caps = [30, 24, 28, 8, 9];
    let mut w = [0usize; 5];
    for i in 0..5 {
        w[i] = rows
            .iter()
            .map(|r| width_of(&r[i]))
            .chain([width_of(heads[i])])
            .max()
            .unwrap_or(0)
            .min(caps[i]);
    }
    let lead: usize = w.iter().map(|x| x + 2).sum();
    let num_w = hits.len().to_string().len().max(1);
    let lead = lead + num_w + 2;
    let mut out = String::new();
    out.push_str(&pad("#", num_w));
    out.push_str("  ");
    for i in 0..5 {
        out.push_str(&pad(heads[i], w[i]));
        out.push_str("  ");
    }
    out.push_str("MESSAGE\n");
    for (n, (h, r)) in hits.iter().zip(&rows).enumerate() {
        out.push_str(&pad(&(n + 1).to_string(), num_w));
        out.push_str("  ");
        for i in 0..5 {
            out.push_str(&pad(&r[i], w[i]));
            out.push_str("  ");
        }
        let text = h.highlighted.clone().unwrap_or_else(|| h.message());
        let msg_width = width.map(|tw| tw.saturating_sub(lead).max(20));
        out.push_str(&paint(&fold(&text), color, msg_width));
        out.push('\n');
    }
    out
}

fn flatten(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn em(s: &str) -> String {
    s.replace(HL_PRE, "<em>").replace(HL_POST, "</em>")
}

/// One hit as a JSON line: `_index`, `_id`, `_score`, the fields by dotted name, and the
/// highlights (`<em>` tags, as Elasticsearch's defaults).
pub fn json_line(h: &Hit) -> String {
    let mut fields = Map::new();
    flatten("", &h.source, &mut fields);
    let mut o = Map::new();
    o.insert("_index".into(), json!(h.index));
    o.insert("_id".into(), json!(h.id));
    o.insert("_score".into(), json!(h.score));
    o.insert("fields".into(), Value::Object(fields));
    let mut hl = Map::new();
    if let Some(m) = &h.highlighted {
        hl.insert(MESSAGE_FIELD.into(), json!([em(m)]));
    }
    if !h.chunks.is_empty() {
        hl.insert(SEMANTIC_FIELD.into(), json!(h.chunks));
    }
    if !hl.is_empty() {
        o.insert("highlight".into(), Value::Object(hl));
    }
    Value::Object(o).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit() -> Hit {
        Hit::from_json(&json!({
            "_index": ".ds-logs-oxibeat.app-default-2026.11.24-000001", "_id": "abc", "_score": 7.25,
            "_source": {"@timestamp": "2026-11-24T21:03:12.520Z", "host": {"name": "web-2"},
                "log.level": "error", "data_stream": {"dataset": "oxibeat.app"},
                "message": "Could not write receipt\n\tat a.B(B.java:1)\n\tat c.D(D.java:2)\nCaused by: java.io.IOException: No space left on device\n\t... 3 more"},
            "highlight": {"message": ["Could not write receipt\n\tat a.B(B.java:1)\n\tat c.D(D.java:2)\nCaused by: java.io.IOException: No \u{2}space\u{3} \u{2}left\u{3} on device\n\t... 3 more"]}
        })).unwrap()
    }

    #[test]
    fn fields_nested_or_dotted() {
        let h = hit();
        assert_eq!(h.host(), "web-2");
        assert_eq!(h.level(), "error");
        assert_eq!(h.dataset(), "oxibeat.app");
        assert_eq!(h.field("data_stream.dataset"), Some(&json!("oxibeat.app")));
        assert_eq!(h.field("nope.x"), None);
    }

    #[test]
    fn folds_stack_traces_and_shows_the_matching_line() {
        let f = fold(h_text());
        assert_eq!(
            paint(&f, false, None),
            "Could not write receipt … Caused by: java.io.IOException: No **space** **left** on device [+3 lines]"
        );
        let cut = paint(&f, false, Some(60));
        assert_eq!(cut.chars().filter(|c| *c != '*').count(), 60, "{cut}");
        assert!(cut.ends_with("…**") || cut.ends_with('…'), "{cut}");
        let c = paint(&f, true, None);
        assert!(c.contains("\x1b[1;33mspace\x1b[0m"), "{c}");
    }

    fn h_text() -> &'static str {
        "Could not write receipt\n\tat a.B(B.java:1)\n\tat c.D(D.java:2)\nCaused by: java.io.IOException: No \u{2}space\u{3} \u{2}left\u{3} on device\n\t... 3 more"
    }

    #[test]
    fn terminal_escapes_in_log_lines_are_neutralised() {
        let f = fold("evil \x1b[2J\x1b]0;owned\x07 line");
        assert!(!f.contains('\x1b') && !f.contains('\x07'), "{f:?}");
        assert!(f.contains('\u{FFFD}'));
    }

    #[test]
    fn table_and_json() {
        let t = table(&[hit()], false, None);
        let mut lines = t.lines();
        let head = lines.next().unwrap();
        assert!(
            head.starts_with("#  TIME") && head.ends_with("MESSAGE"),
            "{head}"
        );
        let row = lines.next().unwrap();
        assert!(row.starts_with("1  2026-11-24T21:03:12.520Z"), "{row}");
        assert!(
            row.contains("web-2") && row.contains("oxibeat.app") && row.contains("7.25"),
            "{row}"
        );
        assert!(row.contains("No **space** **left**"), "{row}");
        let j: Value = serde_json::from_str(&json_line(&hit())).unwrap();
        assert_eq!(j["_id"], "abc");
        assert_eq!(j["fields"]["host.name"], "web-2");
        assert_eq!(j["fields"]["log.level"], "error");
        assert!(j["highlight"]["message"][0]
            .as_str()
            .unwrap()
            .contains("<em>space</em>"));
    }
}
