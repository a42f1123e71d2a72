//! The `_bulk` wire format: action and document lines, the dead-letter-index re-encoding, and
//! a response parser that reads only `errors` and each item's `status` / `error` (the request
//! asks for `filter_path=errors,items.*.error,items.*.status`), without building a JSON tree of
//! the whole response.

use std::fmt;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::write_json_str;

/// The bulk API path with the response filter.
pub const BULK_PATH: &str = "_bulk?filter_path=errors,items.*.error,items.*.status";

/// The bulk operation of an event (`@metadata.op_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    /// The default: data streams accept only `create`, and with an `_id` a redelivered event
    /// is refused with 409 instead of stored twice.
    Create,
    Index,
    Delete,
}

impl OpType {
    pub fn parse(s: &str) -> Option<OpType> {
        match s {
            "create" => Some(OpType::Create),
            "index" => Some(OpType::Index),
            "delete" => Some(OpType::Delete),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            OpType::Create => "create",
            OpType::Index => "index",
            OpType::Delete => "delete",
        }
    }
}

/// Append one bulk item: the action line and, except for `delete`, the document line.
pub fn write_item(
    out: &mut Vec<u8>,
    op: OpType,
    index: &str,
    pipeline: Option<&str>,
    id: Option<&str>,
    doc: &[u8],
) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(op.name().as_bytes());
    out.extend_from_slice(b"\":{\"_index\":");
    write_json_str(index, out);
    if let Some(p) = pipeline {
        out.extend_from_slice(b",\"pipeline\":");
        write_json_str(p, out);
    }
    if let Some(id) = id {
        out.extend_from_slice(b",\"_id\":");
        write_json_str(id, out);
    }
    out.extend_from_slice(b"}}\n");
    if op != OpType::Delete {
        out.extend_from_slice(doc);
        out.push(b'\n');
    }
}

/// Escape `<`, `>` and `&` as `\u003c` ... (`escape_html`). These bytes can only occur inside
/// JSON strings, so a byte-wise replacement is exact.
pub fn escape_html(doc: &mut Vec<u8>) {
    if !doc.iter().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        return;
    }
    let mut out = Vec::with_capacity(doc.len() + 32);
    for &b in doc.iter() {
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            _ => out.push(b),
        }
    }
    *doc = out;
}

/// The document Filebeat sends to the dead-letter index instead of an event the cluster
/// refused (libbeat/outputs/elasticsearch/client.go, `setDeadLetter`): the original JSON as
/// `message`, the item status as `error.type`, the item error as `error.message`.
pub fn dead_letter_document(timestamp: &str, original: &[u8], status: u16, error: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(original.len() + error.len() + 96);
    out.extend_from_slice(b"{\"@timestamp\":");
    write_json_str(timestamp, &mut out);
    out.extend_from_slice(b",\"message\":");
    write_json_str(&String::from_utf8_lossy(original), &mut out);
    out.extend_from_slice(b",\"error.type\":");
    out.extend_from_slice(status.to_string().as_bytes());
    out.extend_from_slice(b",\"error.message\":");
    write_json_str(error, &mut out);
    out.push(b'}');
    out
}

/// One item of a bulk response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemStatus {
    pub status: u16,
    /// The item's `error` object as JSON text, when there was one.
    pub error: Option<String>,
}

impl ItemStatus {
    /// `type: reason` of the error, for logs (the JSON itself when it has neither).
    pub fn reason(&self) -> String {
        let Some(e) = &self.error else {
            return format!("status {}", self.status);
        };
        #[derive(Deserialize)]
        struct E {
            #[serde(rename = "type", default)]
            ty: String,
            #[serde(default)]
            reason: String,
        }
        match serde_json::from_str::<E>(e) {
            Ok(E { ty, reason }) if !ty.is_empty() => format!("{ty}: {reason}"),
            _ => e.clone(),
        }
    }

    /// The error `type` (`mapper_parsing_exception`), for rate-limited logging.
    pub fn error_type(&self) -> String {
        self.reason()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// A parsed bulk response.
#[derive(Debug, Default)]
pub struct BulkResponse {
    pub errors: bool,
    pub items: Vec<ItemStatus>,
}

impl<'de> Deserialize<'de> for BulkResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Top {
            #[serde(default)]
            errors: bool,
            #[serde(default)]
            items: Items,
        }
        let t = Top::deserialize(d)?;
        Ok(BulkResponse {
            errors: t.errors,
            items: t.items.0,
        })
    }
}

#[derive(Default)]
struct Items(Vec<ItemStatus>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of bulk items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element::<Item>()? {
                    out.push(item.0);
                }
                Ok(Items(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// `{"create": {"status": 201, "error": {...}}}`: one key, the operation.
struct Item(ItemStatus);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Body<'a> {
            #[serde(default)]
            status: u16,
            #[serde(borrow, default)]
            error: Option<&'a RawValue>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bulk item {\"<op>\": {\"status\": ...}}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let mut found = None;
                while let Some((_op, body)) = map.next_entry::<serde::de::IgnoredAny, Body>()? {
                    found.get_or_insert(ItemStatus {
                        status: body.status,
                        error: body.error.map(|e| e.get().to_string()),
                    });
                }
                found
                    .map(Item)
                    .ok_or_else(|| serde::de::Error::custom("empty bulk item"))
            }
        }
        d.deserialize_map(V)
    }
}

/// What to do with one item after the cluster answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Acked,
    /// 409: the document is already there (a redelivery with a fixed `_id`).
    Duplicate,
    /// 429 or 5xx: send this item again, after a backoff.
    Retry,
    /// Any other status: `non_indexable_policy`.
    NonIndexable,
}

pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Acked,
        409 => Verdict::Duplicate,
        429 | 500..=599 => Verdict::Retry,
        _ => Verdict::NonIndexable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_encoded_as_bulk_lines() {
        let mut out = Vec::new();
        write_item(
            &mut out,
            OpType::Create,
            "logs-a-b",
            None,
            None,
            b"{\"a\":1}",
        );
        write_item(
            &mut out,
            OpType::Index,
            "x",
            Some("p\"q"),
            Some("id1"),
            b"{}",
        );
        write_item(&mut out, OpType::Delete, "x", None, Some("id2"), b"{}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"create\":{\"_index\":\"logs-a-b\"}}\n{\"a\":1}\n\
             {\"index\":{\"_index\":\"x\",\"pipeline\":\"p\\\"q\",\"_id\":\"id1\"}}\n{}\n\
             {\"delete\":{\"_index\":\"x\",\"_id\":\"id2\"}}\n"
        );
    }

    #[test]
    fn html_escaping() {
        let mut d = br#"{"m":"<a href=\"x\">&</a>"}"#.to_vec();
        escape_html(&mut d);
        let v: serde_json::Value = serde_json::from_slice(&d).unwrap();
        assert_eq!(v["m"], "<a href=\"x\">&</a>");
        assert!(!d.contains(&b'<'));
    }

    #[test]
    fn dead_letter_documents_carry_the_original() {
        let d = dead_letter_document(
            "2026-11-25T10:00:00.000Z",
            br#"{"a":"x"}"#,
            400,
            "{\"type\":\"mapper_parsing_exception\"}",
        );
        let v: serde_json::Value = serde_json::from_slice(&d).unwrap();
        assert_eq!(v["message"], "{\"a\":\"x\"}");
        assert_eq!(v["error.type"], 400);
        assert_eq!(
            v["error.message"],
            "{\"type\":\"mapper_parsing_exception\"}"
        );
    }

    #[test]
    fn responses_parse_per_item() {
        // As osmem-server (and Elasticsearch) answer with the filter_path.
        let body = br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"error":{"caused_by":{"reason":"For input string","type":"illegal_argument_exception"},"reason":"failed to parse field [a] of type [long]","type":"mapper_parsing_exception"},"status":400}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[x]: version conflict"}}},{"index":{"status":429}}]}"#;
        let r: BulkResponse = serde_json::from_slice(body).unwrap();
        assert!(r.errors);
        let st: Vec<u16> = r.items.iter().map(|i| i.status).collect();
        assert_eq!(st, [201, 400, 409, 429]);
        assert_eq!(
            r.items[1].reason(),
            "mapper_parsing_exception: failed to parse field [a] of type [long]"
        );
        assert_eq!(r.items[1].error_type(), "mapper_parsing_exception");
        let v: Vec<Verdict> = r.items.iter().map(|i| verdict(i.status)).collect();
        assert_eq!(
            v,
            [
                Verdict::Acked,
                Verdict::NonIndexable,
                Verdict::Duplicate,
                Verdict::Retry
            ]
        );
        let ok: BulkResponse = serde_json::from_slice(br#"{"errors":false}"#).unwrap();
        assert!(!ok.errors && ok.items.is_empty());
        assert_eq!(verdict(503), Verdict::Retry);
        assert_eq!(verdict(404), Verdict::NonIndexable);
        assert!(serde_json::from_slice::<BulkResponse>(br#"{"items":[{}]}"#).is_err());
    }
}
