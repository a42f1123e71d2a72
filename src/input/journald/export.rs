//! systemd's journal export format (`journalctl -o export`), read incrementally from a pipe.
//!
//! An entry is a run of fields ended by an empty line. A field is `NAME=value\n` when the
//! value is printable text, or `NAME\n` + a little-endian u64 length + the raw bytes + `\n`
//! for binary values (newlines, control characters, invalid UTF-8). A name may repeat.
//! Spec: <https://systemd.io/JOURNAL_EXPORT_FORMATS/>.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// One journal entry: its fields in order (names may repeat), values as raw bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Entry {
    pub fields: Vec<(String, Vec<u8>)>,
    /// A value was longer than the reader's limit and was cut.
    pub truncated: bool,
}

impl Entry {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn cursor(&self) -> Option<&str> {
        self.get_str("__CURSOR")
    }

    /// `__REALTIME_TIMESTAMP`: microseconds since the epoch.
    pub fn realtime_usec(&self) -> Option<u64> {
        self.get_str("__REALTIME_TIMESTAMP")?.parse().ok()
    }

    pub fn monotonic_usec(&self) -> Option<u64> {
        self.get_str("__MONOTONIC_TIMESTAMP")?.parse().ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading journalctl output: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed export stream: {0}")]
    Malformed(String),
}

/// Reads entries one at a time. Values longer than `max_value` are cut to that length
/// (the rest is read and thrown away), so a huge binary field cannot exhaust memory.
pub struct ExportReader<R> {
    inner: R,
    max_value: usize,
    line: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> ExportReader<R> {
    pub fn new(inner: R, max_value: usize) -> Self {
        ExportReader {
            inner,
            max_value: max_value.max(1),
            line: Vec::new(),
        }
    }

    /// The next entry; `None` at the end of the stream (journalctl exited). An entry cut by
    /// the end of the stream is dropped (journalctl died mid-write; it is read again after
    /// a restart from the last complete cursor).
    pub async fn next(&mut self) -> Result<Option<Entry>, ExportError> {
        let mut entry = Entry::default();
        loop {
            self.line.clear();
            let n =
                read_line_bounded(&mut self.inner, &mut self.line, self.max_value + 4096).await?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.last() != Some(&b'\n') {
                // EOF in the middle of a line.
                return Ok(None);
            }
            self.line.pop();
            if self.line.is_empty() {
                if entry.fields.is_empty() {
                    // Stray blank line between entries.
                    continue;
                }
                return Ok(Some(entry));
            }
            match memchr::memchr(b'=', &self.line) {
                Some(eq) => {
                    let name = String::from_utf8_lossy(&self.line[..eq]).into_owned();
                    let mut value = self.line[eq + 1..].to_vec();
                    if value.len() > self.max_value {
                        value.truncate(self.max_value);
                        entry.truncated = true;
                    }
                    entry.fields.push((name, value));
                }
                None => {
                    let name = String::from_utf8_lossy(&self.line).into_owned();
                    let mut len = [0u8; 8];
                    if let Err(e) = self.inner.read_exact(&mut len).await {
                        if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            return Ok(None);
                        }
                        return Err(e.into());
                    }
                    let len = u64::from_le_bytes(len);
                    let keep = len.min(self.max_value as u64) as usize;
                    let mut value = vec![0u8; keep];
                    if let Err(e) = self.inner.read_exact(&mut value).await {
                        if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            return Ok(None);
                        }
                        return Err(e.into());
                    }
                    let skip = len - keep as u64;
                    if skip > 0 {
                        entry.truncated = true;
                        let copied = tokio::io::copy(
                            &mut (&mut self.inner).take(skip),
                            &mut tokio::io::sink(),
                        )
                        .await?;
                        if copied < skip {
                            return Ok(None);
                        }
                    }
                    let mut nl = [0u8; 1];
                    match self.inner.read_exact(&mut nl).await {
                        Ok(_) if nl[0] == b'\n' => {}
                        Ok(_) => {
                            return Err(ExportError::Malformed(format!(
                                "binary field {name} of {len} bytes is not followed by a newline"
                            )))
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                    entry.fields.push((name, value));
                }
            }
        }
    }
}

/// `read_until(b'\n')` that stops growing the line past `max` bytes (the rest of an
/// over-long line is consumed and dropped, its newline kept).
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(out.len());
        if take <= room {
            out.extend_from_slice(&buf[..take]);
        } else {
            out.extend_from_slice(&buf[..room]);
            if done {
                out.push(b'\n');
            }
        }
        r.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(name: &str, value: &[u8]) -> Vec<u8> {
        let mut v = name.as_bytes().to_vec();
        v.push(b'\n');
        v.extend_from_slice(&(value.len() as u64).to_le_bytes());
        v.extend_from_slice(value);
        v.push(b'\n');
        v
    }

    async fn parse_all(data: &[u8], max: usize) -> Vec<Entry> {
        let mut r = ExportReader::new(tokio::io::BufReader::new(data), max);
        let mut out = Vec::new();
        while let Some(e) = r.next().await.unwrap() {
            out.push(e);
        }
        out
    }

    #[tokio::test]
    async fn text_binary_and_repeated_fields() {
        let mut data = b"__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=1700000000000001\nMESSAGE=a=b\nTAG=x\nTAG=y\n\n".to_vec();
        data.extend(b"__CURSOR=s=1;i=2\n");
        data.extend(binary("MESSAGE", b"line1\nline2\x00\xff"));
        data.extend(b"\n");
        let e = parse_all(&data, 1 << 20).await;
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].cursor(), Some("s=1;i=1"));
        assert_eq!(e[0].realtime_usec(), Some(1_700_000_000_000_001));
        assert_eq!(e[0].get_str("MESSAGE"), Some("a=b"));
        let tags: Vec<_> = e[0].fields.iter().filter(|(n, _)| n == "TAG").collect();
        assert_eq!(tags.len(), 2);
        assert_eq!(e[1].get("MESSAGE"), Some(&b"line1\nline2\x00\xff"[..]));
    }

    #[tokio::test]
    async fn torn_entry_at_eof_is_dropped() {
        let mut data = b"__CURSOR=a\nMESSAGE=ok\n\n__CURSOR=b\n".to_vec();
        data.extend(&binary("MESSAGE", b"0123456789")[..12]);
        let e = parse_all(&data, 1 << 20).await;
        assert_eq!(e.len(), 1);
        let e = parse_all(b"__CURSOR=a\nMESSAGE=no newline", 1 << 20).await;
        assert!(e.is_empty());
    }

    #[tokio::test]
    async fn huge_values_are_cut_not_buffered() {
        let big = vec![b'x'; 100_000];
        let mut data = b"__CURSOR=a\n".to_vec();
        data.extend(binary("BLOB", &big));
        data.extend(b"MESSAGE=");
        data.extend(&big);
        data.extend(b"\n\n__CURSOR=b\nMESSAGE=next\n\n");
        let e = parse_all(&data, 1000).await;
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].get("BLOB").unwrap().len(), 1000);
        assert_eq!(e[0].get("MESSAGE").unwrap().len(), 1000);
        assert!(e[0].truncated && !e[1].truncated);
        assert_eq!(e[1].get_str("MESSAGE"), Some("next"));
    }

    #[tokio::test]
    async fn garbage_is_an_error_or_skipped_never_a_panic() {
        // A binary length that claims more than there is: the entry is dropped at EOF.
        let mut data = b"X\n".to_vec();
        data.extend(u64::MAX.to_le_bytes());
        data.extend(b"short");
        assert!(parse_all(&data, 1 << 20).await.is_empty());
        // Binary value not followed by a newline.
        let mut data = b"X\n".to_vec();
        data.extend(3u64.to_le_bytes());
        data.extend(b"abcZ\n\n");
        let mut r = ExportReader::new(tokio::io::BufReader::new(&data[..]), 100);
        assert!(matches!(r.next().await, Err(ExportError::Malformed(_))));
    }
}
