//! Elastic Cloud `cloud.id` and `cloud.auth`, decoded exactly as Beats do (libbeat/cloudid).
//!
//! `cloud.id` is `[<label>:]<base64>`; everything up to the last `:` is dropped, the rest is
//! standard, padded base64 of `host[:port]$es_id[:port]$kibana_id[:port][$ignored...]`.
//! Ports default to the host part's port, or 443. `cloud.auth` is `user:password`, split at the
//! first `:`. Error texts follow Beats' so users can search for them.

use base64::Engine;

/// A decoding error. The password of `cloud.auth` never appears in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudIdError {
    #[error("base64 decoding failed on {input}: {reason}")]
    Base64 { input: String, reason: String },
    #[error("Expected at least 3 parts in {0}")]
    TooFewParts(String),
    #[error("cloud.auth setting doesn't contain `:` to split between username and password")]
    AuthWithoutColon,
}

/// The URLs encoded in a `cloud.id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudId {
    pub elasticsearch_url: String,
    pub kibana_url: String,
}

/// Split `s` into `(name, port)` at the last `:`; `None` when there is no `:`.
fn split_port(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Decode a `cloud.id` into the Elasticsearch and Kibana URLs.
pub fn decode(cloud_id: &str) -> Result<CloudId, CloudIdError> {
    let rest = match cloud_id.rfind(':') {
        Some(i) => &cloud_id[i + 1..],
        None => cloud_id,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|e| CloudIdError::Base64 {
            input: rest.to_string(),
            reason: e.to_string(),
        })?;
    let parts: Vec<&[u8]> = bytes.split(|b| *b == b'$').collect();
    if parts.len() < 3 {
        return Err(CloudIdError::TooFewParts(
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (host_part, es_part, kb_part) = (text(parts[0]), text(parts[1]), text(parts[2]));
    let (host, host_port) = split_port(&host_part);
    let default_port = host_port.unwrap_or("443");
    let (es_id, es_port) = split_port(&es_part);
    let (kb_id, kb_port) = split_port(&kb_part);
    Ok(CloudId {
        elasticsearch_url: format!("https://{es_id}.{host}:{}", es_port.unwrap_or(default_port)),
        kibana_url: format!("https://{kb_id}.{host}:{}", kb_port.unwrap_or(default_port)),
    })
}

/// Split `cloud.auth` into `(username, password)` at the first `:`.
pub fn decode_auth(auth: &str) -> Result<(String, String), CloudIdError> {
    auth.split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .ok_or(CloudIdError::AuthWithoutColon)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==";
    const V1_ES: &str = "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443";
    const V1_KB: &str = "https://c6c2ca6d042249af0cc7d7a9e9625743.us-east-1.aws.found.io:443";
    const GCP: &str = "us-central1.gcp.cloud.es.io";
    const ESID: &str = "ac31ebb90241773157043c34fd26fd46";
    const KBID: &str = "a4c06230e48c8fce7be88a074a3bb3e0";

    fn check(id: &str, es: &str, kb: &str) {
        let d = decode(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(d.elasticsearch_url, es, "ES URL of {id}");
        assert_eq!(d.kibana_url, kb, "Kibana URL of {id}");
    }

    /// All ten TestDecode vectors of libbeat/cloudid (cloudid-vectors.md).
    #[test]
    fn beats_decode_vectors() {
        check(&format!("staging:{V1}"), V1_ES, V1_KB);
        check(V1, V1_ES, V1_KB);
        check(&format!(":{V1}"), V1_ES, V1_KB);
        check(
            "gcp-cluster:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJDhhMDI4M2FmMDQxZjE5NWY3NzI5YmMwNGM2NmEwZmNlJDBjZDVjZDU2OGVlYmU1M2M4OWViN2NhZTViYWM4YjM3",
            "https://8a0283af041f195f7729bc04c66a0fce.us-central1.gcp.cloud.es.io:443",
            "https://0cd5cd568eebe53c89eb7cae5bac8b37.us-central1.gcp.cloud.es.io:443",
        );
        check(
            "custom-port:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvOjkyNDMkYWMzMWViYjkwMjQxNzczMTU3MDQzYzM0ZmQyNmZkNDYkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA=",
            &format!("https://{ESID}.{GCP}:9243"),
            &format!("https://{KBID}.{GCP}:9243"),
        );
        check(
            "different-es-kb-port:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2OjkyNDMkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA6OTI0NA==",
            &format!("https://{ESID}.{GCP}:9243"),
            &format!("https://{KBID}.{GCP}:9244"),
        );
        check(
            "only-kb-set:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2JGE0YzA2MjMwZTQ4YzhmY2U3YmU4OGEwNzRhM2JiM2UwOjkyNDQ=",
            &format!("https://{ESID}.{GCP}:443"),
            &format!("https://{KBID}.{GCP}:9244"),
        );
        check(
            "host-and-kb-set:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvOjkyNDMkYWMzMWViYjkwMjQxNzczMTU3MDQzYzM0ZmQyNmZkNDYkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA6OTI0NA==",
            &format!("https://{ESID}.{GCP}:9243"),
            &format!("https://{KBID}.{GCP}:9244"),
        );
        check(
            "extra-items:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2JGE0YzA2MjMwZTQ4YzhmY2U3YmU4OGEwNzRhM2JiM2UwJGFub3RoZXJpZCRhbmRhbm90aGVy",
            &format!("https://{ESID}.{GCP}:443"),
            &format!("https://{KBID}.{GCP}:443"),
        );
        check(
            V10,
            "https://249f3af1f4eee24a84e3b401e68a1b2a.us-east-1.aws.found.io:443",
            "https://d4ac7559d4674b7c91abe10856d84304.us-east-1.aws.found.io:443",
        );
    }

    pub(crate) const V10: &str = "cloudidtest:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyQyNDlmM2FmMWY0ZWVlMjRhODRlM2I0MDFlNjhhMWIyYSRkNGFjNzU1OWQ0Njc0YjdjOTFhYmUxMDg1NmQ4NDMwNA==";

    #[test]
    fn beats_decode_error_vectors() {
        let e = decode("staging:garbagedXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==")
            .unwrap_err()
            .to_string();
        assert!(e.contains("base64 decoding failed"), "{e}");
        let e = decode(
            "dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJDhhMDI4M2FmMDQxZjE5NWY3NzI5YmMwNGM2NmEwZg==",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Expected at least 3 parts"), "{e}");
        // "blah" is valid base64 for 3 bytes that are not UTF-8.
        let e = decode("blah").unwrap_err().to_string();
        assert!(e.contains("Expected at least 3 parts"), "{e}");
    }

    #[test]
    fn auth_splits_at_first_colon() {
        assert_eq!(
            decode_auth("elastic:changeme").unwrap(),
            ("elastic".into(), "changeme".into())
        );
        assert_eq!(
            decode_auth("elastic:pa:ss").unwrap(),
            ("elastic".into(), "pa:ss".into())
        );
        let e = decode_auth("blah").unwrap_err().to_string();
        assert!(e.contains("cloud.auth setting doesn't contain `:`"), "{e}");
        assert!(!e.contains("blah"), "the secret must not appear: {e}");
    }
}
