//! Character encodings. Lines are split on the *encoded* terminator in raw file bytes, so offsets
//! stay exact byte positions in the file; each line is then decoded to UTF-8 on its own.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE};

#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    /// `None` for UTF-8 / plain.
    enc: Option<&'static Encoding>,
}

impl Decoder {
    /// `None` means the encoding name is unknown.
    pub fn new(name: &str) -> Option<Decoder> {
        let lower = name.to_ascii_lowercase();
        let enc: &'static Encoding = match lower.as_str() {
            "utf-8" | "utf8" | "plain" | "" => return Some(Decoder { enc: None }),
            "utf-16le-bom" | "utf-16le" => UTF_16LE,
            "utf-16be-bom" | "utf-16be" => UTF_16BE,
            "latin1" => encoding_rs::WINDOWS_1252,
            other => Encoding::for_label(other.as_bytes())?,
        };
        if enc == encoding_rs::UTF_8 {
            return Some(Decoder { enc: None });
        }
        Some(Decoder { enc: Some(enc) })
    }

    /// UTF-8 (or plain): a valid line decodes to its own bytes.
    pub fn is_utf8(&self) -> bool {
        self.enc.is_none()
    }

    pub fn is_utf16(&self) -> bool {
        self.enc == Some(UTF_16LE) || self.enc == Some(UTF_16BE)
    }

    /// Size of one code unit: lines may only end on a multiple of it.
    pub fn unit(&self) -> usize {
        if self.is_utf16() {
            2
        } else {
            1
        }
    }

    /// Encode a UTF-8 terminator (ASCII or Unicode line separators) in this encoding.
    pub fn encode_terminator(&self, term: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(term).unwrap_or("\n");
        match self.enc {
            Some(e) if e == UTF_16LE => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            Some(e) if e == UTF_16BE => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            _ => term.to_vec(),
        }
    }

    /// Length of a byte-order mark at the very start of a file, if any.
    pub fn bom_len(&self, head: &[u8]) -> usize {
        match self.enc {
            None if head.starts_with(&[0xEF, 0xBB, 0xBF]) => 3,
            Some(e) if e == UTF_16LE && head.starts_with(&[0xFF, 0xFE]) => 2,
            Some(e) if e == UTF_16BE && head.starts_with(&[0xFE, 0xFF]) => 2,
            _ => 0,
        }
    }

    /// Decode one line. Returns the text and whether malformed bytes were replaced.
    pub fn decode<'a>(&self, raw: &'a [u8]) -> (Cow<'a, str>, bool) {
        match self.enc {
            None => match std::str::from_utf8(raw) {
                Ok(s) => (Cow::Borrowed(s), false),
                Err(_) => (String::from_utf8_lossy(raw), true),
            },
            Some(e) => {
                let (text, had_errors) = e.decode_without_bom_handling(raw);
                (text, had_errors)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16le() {
        let d = Decoder::new("utf-16le-bom").unwrap();
        let raw: Vec<u8> = "hé".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(d.decode(&raw).0, "hé");
        assert_eq!(d.encode_terminator(b"\n"), vec![b'\n', 0]);
        assert_eq!(d.bom_len(&[0xFF, 0xFE, b'h', 0]), 2);
        assert_eq!(d.unit(), 2);
    }

    #[test]
    fn utf8_invalid_is_replaced_and_flagged() {
        let d = Decoder::new("utf-8").unwrap();
        let (t, bad) = d.decode(b"a\xffb");
        assert!(bad);
        assert_eq!(t, "a\u{fffd}b");
        assert!(!d.decode(b"ok").1);
    }

    #[test]
    fn unknown_is_none() {
        assert!(Decoder::new("klingon").is_none());
        assert!(Decoder::new("latin1").is_some());
    }
}
