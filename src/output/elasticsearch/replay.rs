//! `oxibeat dlq replay` for the Elasticsearch output: send the events of the dead-letter file
//! (those that even the dead-letter index refused, or that could not be routed) to the cluster
//! again, after the cause was fixed (mapping changed, index template fixed, pipeline created).
//!
//! Each entry goes to its recorded index (or `--index`), with the `_id`, `pipeline` and
//! `op_type` of its `@metadata` (the file keeps the whole Beats JSON); `@metadata` itself is
//! not sent, as the output never sends it. 2xx and 409 (already there) count as replayed;
//! anything else keeps the entry, with the new error. The claim / put-back protocol is shared
//! with the Kafka output (`crate::output::dlq`).

use std::path::Path;

use serde_json::Value;

use crate::output::dlq::{self, Destination, Line, Report, Resend};

use super::bulk::{self, verdict, BulkResponse, OpType, Verdict};
use super::client::{Client, Reply};
use super::{EsError, EsOutput};

/// File stem of the Elasticsearch dead-letter files (`elasticsearch-dlq.ndjson`).
pub const NAME: &str = "elasticsearch-dlq";

pub fn show(dir: &Path) -> Result<Report, EsError> {
    Ok(dlq::show(dir, NAME)?)
}

struct Sender<'a> {
    rt: tokio::runtime::Runtime,
    client: Client,
    index: Option<&'a str>,
    chunk: usize,
}

/// Send every dead-letter entry of `dir` again; `index` replaces the recorded index.
pub fn replay(out: &EsOutput, dir: &Path, index: Option<&str>) -> Result<Report, EsError> {
    if !dir.is_dir() {
        return Ok(Report::default());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EsError::Check(format!("cannot start the runtime: {e}")))?;
    let url = out
        .endpoint
        .urls
        .first()
        .ok_or_else(|| EsError::Check("no host configured".into()))?;
    let client = Client::new(&out.cfg, &out.endpoint, url)?;
    let mut sender = Sender {
        rt,
        client,
        index,
        chunk: out.cfg.bulk_size().unwrap_or(usize::MAX).max(1),
    };
    Ok(dlq::replay_files(dir, NAME, &mut sender)?)
}

/// The bulk item for one entry, or why it cannot be sent.
fn item(line: &Line<'_>, index_override: Option<&str>, out: &mut Vec<u8>) -> Result<(), String> {
    let recorded = match line.destination() {
        Destination::Index(i) => i,
        Destination::Topic(_) => "",
    };
    let index = index_override.unwrap_or(recorded);
    if index.is_empty() {
        return Err("no index was recorded for this event; replay it with --index".into());
    }
    let mut event: serde_json::Map<String, Value> = match serde_json::from_slice(&line.payload()) {
        Ok(Value::Object(m)) => m,
        _ => return Err("the recorded event is not a JSON object".into()),
    };
    let meta = event.remove("@metadata");
    let get = |k: &str| {
        meta.as_ref()
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let op = match get("op_type") {
        Some(o) => OpType::parse(o).ok_or_else(|| format!("@metadata.op_type {o:?} is unknown"))?,
        None => OpType::Create,
    };
    let doc = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
    bulk::write_item(out, op, index, get("pipeline"), get("_id"), &doc);
    Ok(())
}

impl Resend for Sender<'_> {
    fn resend(&mut self, entries: &[Line<'_>]) -> Vec<Option<String>> {
        let mut results: Vec<Option<String>> = vec![None; entries.len()];
        for (start, part) in (0..).step_by(self.chunk).zip(entries.chunks(self.chunk)) {
            let mut body = Vec::new();
            let mut sent = Vec::new();
            for (j, line) in part.iter().enumerate() {
                match item(line, self.index, &mut body) {
                    Ok(()) => sent.push(start + j),
                    Err(why) => results[start + j] = Some(why),
                }
            }
            if sent.is_empty() {
                continue;
            }
            let (reply, _) = self.rt.block_on(self.client.bulk(&body));
            let fail_all = |results: &mut Vec<Option<String>>, why: String| {
                for &i in &sent {
                    results[i] = Some(why.clone());
                }
            };
            match reply {
                Reply::Status(200, resp) => match serde_json::from_slice::<BulkResponse>(&resp) {
                    Ok(r) if !r.errors && r.items.is_empty() => {}
                    Ok(r) if r.items.len() == sent.len() => {
                        for (&i, st) in sent.iter().zip(r.items) {
                            if !matches!(verdict(st.status), Verdict::Acked | Verdict::Duplicate) {
                                results[i] = Some(format!("{} {}", st.status, st.reason()));
                            }
                        }
                    }
                    Ok(_) => fail_all(
                        &mut results,
                        "the bulk response does not answer every item".into(),
                    ),
                    Err(e) => fail_all(&mut results, format!("unreadable bulk response: {e}")),
                },
                Reply::Status(s, resp) => fail_all(
                    &mut results,
                    format!(
                        "bulk request answered {s}: {}",
                        String::from_utf8_lossy(&resp[..resp.len().min(300)])
                    ),
                ),
                Reply::Failed(e) => fail_all(&mut results, e),
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_bulk_items_with_their_metadata() {
        let raw = br#"{"@timestamp":"t","index":"logs-a-default","error":"400 x","event":{"@timestamp":"2026-11-25T10:00:00.000Z","@metadata":{"beat":"oxibeat","_id":"abc","pipeline":"p"},"message":"m"}}"#;
        let line = dlq::parse(raw).unwrap();
        let mut out = Vec::new();
        item(&line, None, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut l = text.lines();
        assert_eq!(
            l.next().unwrap(),
            r#"{"create":{"_index":"logs-a-default","pipeline":"p","_id":"abc"}}"#
        );
        let doc: Value = serde_json::from_str(l.next().unwrap()).unwrap();
        assert!(doc.get("@metadata").is_none());
        assert_eq!(doc["message"], "m");
        let mut out = Vec::new();
        item(&line, Some("other"), &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\"_index\":\"other\""));
        let no_index = dlq::parse(br#"{"index":"","error":"e","event":{"a":1}}"#).unwrap();
        assert!(item(&no_index, None, &mut Vec::new())
            .unwrap_err()
            .contains("--index"));
    }
}
