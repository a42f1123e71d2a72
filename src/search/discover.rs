//! A Kibana Discover link for the same time range and filters, on the `oxibeat logs` data view
//! that `oxibeat setup --dashboards` imports (`kibana/oxibeat.ndjson`, id `oxibeat-logs`).
//! Discover keeps its state in the URL fragment as Rison (`_g` global: time; `_a` app:
//! data view, query, columns, sort); the filters become a KQL query.

use super::query::Filters;
use super::time::format_ms;

/// The data view of `logs-oxibeat.*-*` in `kibana/oxibeat.ndjson`.
pub const DATA_VIEW_ID: &str = "oxibeat-logs";

/// A Rison string literal: `'…'` with `'` and `!` escaped by `!`.
fn rison_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '!' {
            out.push('!');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A KQL string literal.
fn kql_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn kql_any(field: &str, values: &[String]) -> String {
    let list: Vec<String> = values.iter().map(|v| kql_str(v)).collect();
    if list.len() == 1 {
        format!("{field} : {}", list[0])
    } else {
        format!("{field} : ({})", list.join(" or "))
    }
}

/// The KQL equivalent of the filters (the time range goes to `_g`).
pub fn kql(f: &Filters) -> String {
    let mut parts = Vec::new();
    if !f.hosts.is_empty() {
        parts.push(kql_any("host.name", &f.hosts));
    }
    if !f.datasets.is_empty() {
        parts.push(kql_any("data_stream.dataset", &f.datasets));
    }
    if !f.levels.is_empty() {
        parts.push(kql_any("log.level", &f.levels));
    }
    parts.join(" and ")
}

/// Keep what a URL fragment may hold as it is (Rison's punctuation included).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'!'
            | b'*'
            | b'\''
            | b'('
            | b')'
            | b':'
            | b','
            | b'@'
            | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The Discover URL under `kibana_base` (which holds the space, `/s/<id>`, if any).
pub fn url(kibana_base: &str, f: &Filters) -> String {
    let time = match &f.range {
        Some(r) => format!(
            "time:(from:{},to:{})",
            rison_str(&r.from_ms.map(format_ms).unwrap_or_else(|| "now-15y".into())),
            rison_str(&format_ms(r.until_ms))
        ),
        None => "time:(from:now-24h,to:now)".into(),
    };
    let g = format!("(filters:!(),{time})");
    let a = format!(
        "(columns:!('host.name','data_stream.dataset','log.level',message),\
         dataSource:(dataViewId:{DATA_VIEW_ID},type:dataView),filters:!(),\
         query:(language:kuery,query:{}),sort:!(!('@timestamp',desc)))",
        rison_str(&kql(f))
    );
    format!(
        "{}/app/discover#/?_g={}&_a={}",
        kibana_base.trim_end_matches('/'),
        encode(&g),
        encode(&a)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::time::TimeRange;

    #[test]
    fn url_holds_range_and_filters() {
        let f = Filters {
            range: Some(TimeRange {
                from_ms: Some(1_795_550_400_000),
                until_ms: 1_795_557_600_000,
            }),
            hosts: vec!["web-2".into()],
            datasets: vec!["oxibeat.app".into(), "oxi'beat!".into()],
            levels: vec!["warn".into(), "error".into(), "critical".into()],
        };
        let u = url("http://kb:5601/s/ops", &f);
        assert!(u.starts_with("http://kb:5601/s/ops/app/discover#/?_g=(filters:!(),time:(from:'2026-11-24T20:00:00.000Z',to:'2026-11-24T22:00:00.000Z'))&_a=("), "{u}");
        assert!(u.contains("dataViewId:oxibeat-logs"), "{u}");
        assert!(
            u.contains("query:(language:kuery,query:'host.name%20:%20%22web-2%22%20and%20data_stream.dataset%20:%20(%22oxibeat.app%22%20or%20%22oxi!'beat!!%22)%20and%20log.level%20:%20(%22warn%22%20or%20%22error%22%20or%20%22critical%22)')"),
            "{u}"
        );
        assert!(!u.contains(' ') && !u.contains('"'), "{u}");
    }
}
