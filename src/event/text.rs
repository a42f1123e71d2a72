//! `Text`: a line's text, either its own `String` or a slice of a buffer shared with other
//! lines.
//!
//! A file read yields hundreds of lines. Giving each its own `String` costs one allocation
//! and one free per line, and those small frees of one batch fill the allocator's bins
//! that librdkafka's per-message allocation then has to sort through. Lines that need no
//! change (valid UTF-8, no parser rewriting them) are slices of one copy of up to 4 KiB of
//! their read (`LineSplitter::share_lines`), and lines read back from the disk queue are
//! slices of their frame: a reference count per line instead of an allocation.
//!
//! Anything that edits a text (multiline joins, ndjson, truncation) gets its own `String`
//! first (`to_mut`), as with `Cow`.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// UTF-8 text, owned or shared. Every constructor keeps the bytes valid UTF-8.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Owned(String),
    /// Valid UTF-8, checked when made.
    Shared(Bytes),
}

impl Text {
    /// `bytes` as text if they are valid UTF-8, without copying them.
    pub fn from_utf8(bytes: Bytes) -> Option<Text> {
        std::str::from_utf8(&bytes).ok()?;
        Some(Text(Repr::Shared(bytes)))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Owned(s) => s,
            // SAFETY: `Shared` is only built by `from_utf8`, which checked the bytes, and
            // `Bytes` never changes its contents (`truncate` cuts at a char boundary).
            Repr::Shared(b) => unsafe { std::str::from_utf8_unchecked(b) },
        }
    }

    /// The text as an owned `String` to edit, copied out of a shared buffer first.
    pub fn to_mut(&mut self) -> &mut String {
        if let Repr::Shared(_) = self.0 {
            self.0 = Repr::Owned(self.as_str().to_string());
        }
        match &mut self.0 {
            Repr::Owned(s) => s,
            Repr::Shared(_) => unreachable!("made owned above"),
        }
    }

    pub fn into_string(self) -> String {
        match self.0 {
            Repr::Owned(s) => s,
            Repr::Shared(_) => self.as_str().to_string(),
        }
    }

    /// Shorten to `len` bytes, which must be a char boundary (like `String::truncate`).
    /// A shared text stays shared.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        assert!(self.is_char_boundary(len), "truncate inside a character");
        match &mut self.0 {
            Repr::Owned(s) => s.truncate(len),
            Repr::Shared(b) => b.truncate(len),
        }
    }

    /// Whether the text lives in a shared buffer.
    #[cfg(test)]
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared(_))
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Repr::Owned(s))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(Repr::Owned(s.to_string()))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_text_reads_edits_and_truncates_like_a_string() {
        let chunk = Bytes::from_static("first line\nzweite Zeile é\n".as_bytes());
        let mut a = Text::from_utf8(chunk.slice(0..10)).unwrap();
        let b = Text::from_utf8(chunk.slice(11..26)).unwrap();
        assert!(a.is_shared() && b.is_shared());
        assert_eq!(a, "first line");
        assert_eq!(b.len(), 15);
        assert_eq!(format!("{b} {b:?}"), "zweite Zeile é \"zweite Zeile é\"");
        // Truncating keeps it shared; editing makes it owned, leaving the buffer alone.
        a.truncate(5);
        assert!(a.is_shared());
        assert_eq!(a, "first");
        a.to_mut().push_str(" edit");
        assert!(!a.is_shared());
        assert_eq!(a, "first edit");
        assert_eq!(&chunk[..10], b"first line");
        assert_eq!(b.clone().into_string(), "zweite Zeile é");
    }

    #[test]
    fn only_valid_utf8_is_shared() {
        assert!(Text::from_utf8(Bytes::from_static(b"\xff\xfe")).is_none());
        // A slice cut inside a character is not valid either.
        let chunk = Bytes::from_static("é".as_bytes());
        assert!(Text::from_utf8(chunk.slice(0..1)).is_none());
    }

    #[test]
    #[should_panic(expected = "inside a character")]
    fn truncating_inside_a_character_panics_like_string() {
        let mut t = Text::from("é");
        t.truncate(1);
    }
}
