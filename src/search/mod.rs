//! `oxibeat search`: find the log lines that matter over the data streams the stack writes,
//! semantically when the cluster can (hybrid BM25 + ELSER through the `rrf` retriever,
//! reranked by `text_similarity_reranker`), lexically otherwise, and optionally answer the
//! question in words with checked citations.
//!
//! One concept per module: [`capabilities`] (what the cluster can do, and the plan),
//! [`query`] (request bodies), [`client`] (HTTP), [`render`] (table and JSON), [`discover`]
//! (the Kibana link), [`answer`] (prompt, streaming, citations), [`time`] and [`config`].

pub mod answer;
pub mod capabilities;
pub mod client;
pub mod config;
pub mod discover;
pub mod query;
pub mod render;
pub mod time;

use std::io::Write;

use serde_json::Value;

pub use capabilities::{Mode, RerankChoice};

use crate::config::{Config, ConfigError};
use crate::setup::config::Connections;
use capabilities::Plan;
use client::{path_segment, Client, Resp};
use config::SearchConfig;
use query::{Filters, Spec};
use render::Hit;
use time::{format_ms, RangeArgs, TimeRange};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach Elasticsearch at {url}: {reason} — is it running? Check output.elasticsearch.hosts (or cloud.id)")]
    Unreachable { url: String, reason: String },
    #[error("Elasticsearch did not answer within {secs}s (search.timeout); narrow the time range (--since) or raise search.timeout")]
    Timeout { secs: u64 },
    #[error("talking to Elasticsearch: {0}")]
    Transport(String),
    #[error("{0}")]
    Http(String),
    #[error("no data stream or index matches {index}: run `oxibeat setup` (templates) and ship logs first, or point search.index at your data")]
    NoData { index: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("--answer: {0}")]
    NoLlm(String),
    #[error("{0}")]
    Llm(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// `type: reason` of an Elasticsearch error body.
fn es_reason(body: &Value) -> String {
    let err = &body["error"];
    if let Some(s) = err.as_str() {
        return s.to_string();
    }
    if err.is_object() {
        let t = err["type"].as_str().unwrap_or("error");
        let r = err["reason"]
            .as_str()
            .or_else(|| err["root_cause"][0]["reason"].as_str())
            .unwrap_or("");
        let caused = err["caused_by"]["reason"].as_str();
        return match caused {
            Some(c) if !r.contains(c) => format!("{t}: {r} (caused by: {c})"),
            _ => format!("{t}: {r}"),
        };
    }
    match body {
        Value::String(s) => s.chars().take(300).collect(),
        Value::Null => String::new(),
        v => v.to_string().chars().take(300).collect(),
    }
}

fn is_licence_error(status: u16, body: &Value) -> bool {
    let s = body.to_string();
    status == 403 && (s.contains("license.expired.feature") || s.contains("non-compliant"))
}

pub(crate) fn llm_reason(status: u16, body: &Value) -> String {
    let mut s = format!("HTTP {status} {}", es_reason(body));
    if is_licence_error(status, body) {
        s.push_str(
            " — inference on services other than the Elastic Inference Service (service \
             \"elastic\") needs an Enterprise licence or the trial",
        );
    }
    s
}

impl SearchError {
    /// An error answer of Elasticsearch to `what`, with what to do about it.
    pub fn http(what: &str, r: &Resp) -> SearchError {
        let reason = es_reason(&r.body);
        let s = match r.status {
            401 => format!(
                "Elasticsearch rejected the credentials ({what}: HTTP 401 {reason}): check \
                 output.elasticsearch.username/password or api_key, or cloud.auth"
            ),
            403 if is_licence_error(r.status, &r.body) => format!(
                "{what}: HTTP 403 {reason} — this needs an Enterprise licence or the trial \
                 (POST _license/start_trial?acknowledge=true); run with --mode lexical meanwhile"
            ),
            403 => format!(
                "{what}: HTTP 403 {reason} — the user lacks a privilege: oxibeat search needs \
                 read and view_index_metadata on the logs data streams, and the monitor and \
                 monitor_inference cluster privileges"
            ),
            404 if reason.contains("index_not_found") => format!(
                "{what}: HTTP 404 {reason} — run `oxibeat setup` and ship logs first, or point \
                 search.index at your data"
            ),
            429 => format!(
                "Elasticsearch is overloaded and refused the request ({what}: HTTP 429 \
                 {reason}); retry in a moment or narrow the time range (--since)"
            ),
            s @ 500.. => format!("Elasticsearch failed ({what}: HTTP {s} {reason})"),
            s => format!(
                "Elasticsearch rejected the request ({what}: HTTP {s} {reason}); --explain \
                 prints the request body"
            ),
        };
        SearchError::Http(s)
    }
}

/// What a run found (errors are [`SearchError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Hits printed (and the answer, with `--answer`).
    Found,
    /// Nothing scored above the relevance floor.
    NothingRelevant,
}

/// How the terminal looks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal {
    pub color: bool,
    /// Columns, when stdout is a terminal.
    pub width: Option<usize>,
}

impl Terminal {
    /// stdout's: colours unless `NO_COLOR`, the width from `COLUMNS` or the tty.
    pub fn detect() -> Terminal {
        use std::io::IsTerminal;
        if !std::io::stdout().is_terminal() {
            return Terminal::default();
        }
        let from_env = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok());
        let width = from_env.or_else(tty_width).or(Some(120));
        Terminal {
            color: std::env::var_os("NO_COLOR").is_none(),
            width,
        }
    }
}

fn tty_width() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct passed.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// The command line's request.
#[derive(Debug, Clone)]
pub struct Options {
    pub query: String,
    pub range: RangeArgs,
    pub hosts: Vec<String>,
    pub datasets: Vec<String>,
    pub level: Option<String>,
    pub mode: Mode,
    pub rerank: RerankChoice,
    pub size: usize,
    pub json: bool,
    pub answer: bool,
    pub llm: Option<String>,
    pub explain: bool,
    pub terminal: Terminal,
}

fn describe(plan: &Plan) -> String {
    let base = match plan.retrieval {
        Mode::Hybrid => "hybrid (BM25 + ELSER, rrf)",
        Mode::Semantic => "semantic (ELSER)",
        Mode::Lexical => "lexical (BM25)",
    };
    match &plan.rerank {
        Some(id) => format!("{base}, reranked by {id}"),
        None => base.to_string(),
    }
}

fn explain_out(err: &mut dyn Write, method: &str, path: &str, body: &Value) -> std::io::Result<()> {
    let pretty = serde_json::to_string_pretty(body).unwrap_or_default();
    writeln!(err, "{method} {}\n{pretty}\n", path.trim_start_matches('/'))
}

fn floors(plan: &Plan, c: &SearchConfig) -> String {
    let mut v = Vec::new();
    if plan.retrieval != Mode::Semantic {
        v.push(format!(
            "search.min_score.lexical = {}",
            c.min_score.lexical
        ));
    }
    if plan.retrieval != Mode::Lexical {
        v.push(format!(
            "search.min_score.semantic = {}",
            c.min_score.semantic
        ));
    }
    if let (Some(_), Some(r)) = (&plan.rerank, c.min_score.rerank) {
        v.push(format!("search.min_score.rerank = {r}"));
    }
    v.join(", ")
}

/// `oxibeat search`: hits (and the answer) to `out`, notices and `--explain` to `err`.
pub async fn run(
    cfg: &Config,
    opts: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Status, SearchError> {
    let scfg = SearchConfig::from_config(cfg)?;
    let conns = Connections::from_config(cfg)?;
    if opts.query.trim().is_empty() {
        return Err(SearchError::Usage("the query is empty".into()));
    }
    if opts.size == 0 || opts.size > 500 {
        return Err(SearchError::Usage(
            "--size must be between 1 and 500".into(),
        ));
    }
    let range = TimeRange::resolve(&opts.range, time::now_ms()).map_err(SearchError::Usage)?;
    let filters = Filters {
        range: Some(range),
        hosts: opts.hosts.clone(),
        datasets: opts
            .datasets
            .iter()
            .map(|d| query::dataset_name(d))
            .collect(),
        levels: match &opts.level {
            Some(l) => query::levels_from(l).map_err(SearchError::Usage)?,
            None => Vec::new(),
        },
    };
    let client = Client::new(&conns.elasticsearch, scfg.timeout.0)?;
    let caps = capabilities::detect(&client, &scfg.index).await?;
    if caps.coverage.indices.is_empty() {
        return Err(SearchError::NoData {
            index: scfg.index.clone(),
        });
    }
    let mut plan = capabilities::plan(opts.mode, opts.rerank, &scfg.rerank.inference_id, &caps)?;
    for n in &plan.notices {
        writeln!(err, "oxibeat search: {n}")?;
    }
    let fetch = if opts.answer {
        opts.size.max(scfg.answer.hits)
    } else {
        opts.size
    };
    let path = format!("/{}/_search", path_segment(&scfg.index));
    let mut resp = search(&client, &path, opts, &plan, &filters, fetch, &scfg, err).await?;
    if !resp.ok()
        && is_licence_error(resp.status, &resp.body)
        && opts.mode == Mode::Hybrid
        && (plan.retrieval != Mode::Lexical || plan.rerank.is_some())
    {
        writeln!(
            err,
            "oxibeat search: Elasticsearch refused {} for the licence ({}); searching lexically (BM25) instead",
            describe(&plan),
            es_reason(&resp.body)
        )?;
        plan.retrieval = Mode::Lexical;
        plan.rerank = None;
        resp = search(&client, &path, opts, &plan, &filters, fetch, &scfg, err).await?;
    }
    if !resp.ok() {
        return Err(SearchError::http("search", &resp));
    }
    if resp.body["_shards"]["total"].as_u64() == Some(0) {
        return Err(SearchError::NoData {
            index: scfg.index.clone(),
        });
    }
    if resp.body["timed_out"].as_bool() == Some(true) {
        writeln!(
            err,
            "oxibeat search: the search timed out on some shards; the hits are partial"
        )?;
    }
    if let Some(failed) = resp.body["_shards"]["failed"].as_u64().filter(|f| *f > 0) {
        let why = resp.body["_shards"]["failures"][0]["reason"]["reason"]
            .as_str()
            .unwrap_or("");
        writeln!(
            err,
            "oxibeat search: {failed} shard(s) failed, the hits are partial: {why}"
        )?;
    }
    let all = render::hits(&resp.body);
    let shown = &all[..all.len().min(opts.size)];
    let range_text = format!(
        "{} → {}",
        range.from_ms.map(format_ms).unwrap_or_else(|| "…".into()),
        format_ms(range.until_ms)
    );
    writeln!(
        err,
        "oxibeat search: {} hit(s), {}, {}, {range_text}",
        shown.len(),
        describe(&plan),
        scfg.index
    )?;
    let discover = config::kibana_configured(cfg).then(|| {
        let base = conns
            .kibana
            .urls
            .first()
            .map(crate::setup::config::redact)
            .unwrap_or_default();
        discover::url(&base, &filters)
    });
    if shown.is_empty() {
        let msg = format!(
            "no relevant log lines (nothing scored above the relevance floor: {}; lower it with -E to see weaker matches)",
            floors(&plan, &scfg)
        );
        if opts.json {
            writeln!(err, "oxibeat search: {msg}")?;
        } else {
            writeln!(out, "{msg}")?;
        }
    } else if opts.json {
        for h in shown {
            writeln!(out, "{}", render::json_line(h))?;
        }
    } else {
        out.write_all(render::table(shown, opts.terminal.color, opts.terminal.width).as_bytes())?;
    }
    if let Some(u) = &discover {
        if opts.json {
            writeln!(err, "Discover: {u}")?;
        } else {
            writeln!(out, "\nDiscover: {u}")?;
        }
    }
    out.flush()?;
    if shown.is_empty() {
        return Ok(Status::NothingRelevant);
    }
    if opts.answer {
        let given = &all[..all.len().min(scfg.answer.hits)];
        answer(&client, &caps, opts, &scfg, given, out, err).await?;
    }
    Ok(Status::Found)
}

#[allow(clippy::too_many_arguments)]
async fn search(
    client: &Client,
    path: &str,
    opts: &Options,
    plan: &Plan,
    filters: &Filters,
    size: usize,
    scfg: &SearchConfig,
    err: &mut dyn Write,
) -> Result<Resp, SearchError> {
    let spec = Spec {
        query: &opts.query,
        plan,
        filters,
        size,
        from: 0,
        min_score: &scfg.min_score,
        rerank_window: scfg.rerank.window,
    };
    let body = query::body(&spec);
    if opts.explain {
        explain_out(err, "POST", path, &body)?;
    }
    client.post(path, &body).await
}

async fn answer(
    client: &Client,
    caps: &capabilities::Capabilities,
    opts: &Options,
    scfg: &SearchConfig,
    hits: &[Hit],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), SearchError> {
    let requested = opts.llm.as_deref().or(scfg.answer.llm.as_deref());
    let llm = answer::choose(caps, requested).map_err(SearchError::NoLlm)?;
    if let Ok(l) = &caps.licence {
        if !l.enterprise() && llm.service != "elastic" && !llm.service.is_empty() {
            writeln!(
                err,
                "oxibeat search: {} uses the {} service, which needs an Enterprise licence or the trial (the licence is {}); trying anyway",
                llm.id, llm.service, l.kind
            )?;
        }
    }
    let (path, body) = answer::request(&llm, &opts.query, hits, scfg.answer.max_chars_per_line);
    if opts.explain {
        explain_out(err, "POST", &path, &body)?;
    }
    writeln!(
        out,
        "\nAnswer ({}, from the top {} hits, numbered as in the table):",
        llm.id,
        hits.len()
    )?;
    out.flush()?;
    let text = answer::ask(client, &llm, &path, &body, scfg.answer.timeout.0, out).await?;
    writeln!(out, "\n")?;
    let c = answer::citations(&text, hits.len());
    out.write_all(answer::references(&c, hits).as_bytes())?;
    if !c.invalid.is_empty() {
        let list: Vec<String> = c.invalid.iter().map(|n| format!("[{n}]")).collect();
        writeln!(
            err,
            "oxibeat search: the answer cites {} which match no line given; do not trust those statements",
            list.join(" ")
        )?;
    }
    out.flush()?;
    Ok(())
}
