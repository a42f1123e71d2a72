//! Character encodings: files in UTF-16 or legacy encodings are decoded to UTF-8 before lines
//! are split, so every later stage works on UTF-8.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// Streaming decoder for one file. `None` from `new` means the name is unknown.
pub struct Decoder {
    /// `None` for UTF-8 / plain: bytes pass through and are validated per line.
    inner: Option<encoding_rs::Decoder>,
}

impl Decoder {
    pub fn new(name: &str) -> Option<Decoder> {
        let lower = name.to_ascii_lowercase();
        let enc: &'static Encoding = match lower.as_str() {
            "utf-8" | "utf8" | "plain" | "" => return Some(Decoder { inner: None }),
            // With "-bom", a byte-order mark is expected and removed; the BOM also wins if present.
            "utf-16le-bom" | "utf-16le" => UTF_16LE,
            "utf-16be-bom" | "utf-16be" => UTF_16BE,
            "latin1" => encoding_rs::WINDOWS_1252,
            other => Encoding::for_label(other.as_bytes())?,
        };
        if enc == UTF_8 {
            return Some(Decoder { inner: None });
        }
        Some(Decoder {
            inner: Some(enc.new_decoder_with_bom_removal()),
        })
    }

    pub fn is_passthrough(&self) -> bool {
        self.inner.is_none()
    }

    /// Decode `input` and append UTF-8 to `out`. Returns true if malformed input was replaced.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, last: bool) -> bool {
        let Some(dec) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return false;
        };
        let mut s = String::with_capacity(
            dec.max_utf8_buffer_length(input.len())
                .unwrap_or(input.len() * 3),
        );
        let (_, _, had_errors) = dec.decode_to_string(input, &mut s, last);
        out.extend_from_slice(s.as_bytes());
        had_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16le_with_bom() {
        let mut d = Decoder::new("utf-16le-bom").unwrap();
        let mut bytes = vec![0xff, 0xfe];
        for u in "hé\n".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let mut out = Vec::new();
        // Split mid code unit to check streaming.
        d.decode(&bytes[..3], &mut out, false);
        d.decode(&bytes[3..], &mut out, false);
        assert_eq!(String::from_utf8(out).unwrap(), "hé\n");
    }

    #[test]
    fn unknown_is_none() {
        assert!(Decoder::new("klingon").is_none());
        assert!(Decoder::new("utf-8").unwrap().is_passthrough());
    }
}
