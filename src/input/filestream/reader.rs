//! Splits a file's bytes into lines: big reads, memchr/memmem search, byte offsets kept exact.
//!
//! A line longer than `max_bytes` keeps only its first `max_bytes` and is flagged truncated;
//! the rest is skipped without being buffered, so a 1 GiB line costs `max_bytes` of memory.

use std::borrow::Cow;
use std::io::{self, Read};

use bytes::Bytes;

/// One complete line, terminator removed.
#[derive(Debug)]
pub struct Line<'a> {
    pub bytes: Cow<'a, [u8]>,
    /// File offset of the first byte of the line.
    pub start: u64,
    /// File offset just past the terminator.
    pub end: u64,
    pub truncated: bool,
    /// With `share_lines`: the same bytes as `bytes`, in a buffer shared by the lines of one
    /// read, so a line that needs no decoding is kept without a copy of its own.
    pub shared: Option<Bytes>,
}

pub struct LineSplitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as lines.
    consumed: usize,
    /// Where the terminator search resumes.
    scan_from: usize,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    term: Vec<u8>,
    /// Encoded "\r" stripped before the terminator (`line_terminator = auto`).
    strip: Option<Vec<u8>>,
    unit: usize,
    max_bytes: usize,
    /// Head of an over-long line whose terminator has not been seen yet, and its start.
    overlong: Option<(Vec<u8>, u64)>,
    /// Bytes asked for by the next read: grows while reads come back full (a backlog),
    /// up to `max_read`, and drops back when the file is idle, so a thousand tailed files
    /// do not each hold a big buffer.
    read_size: usize,
    max_read: usize,
    /// Hand out lines with `shared` set (see `share_lines`).
    share: bool,
    /// A copy of up to `SHARED_CHUNK` bytes of `buf` from `base` on, made for the first line
    /// that needs it: the lines it covers are slices of it. Dropped whenever `buf` changes.
    chunk: Option<(Bytes, usize)>,
}

const MIN_READ: usize = 8 * 1024;

/// Bytes per shared copy of lines (`share_lines`): about twenty 200-byte lines per
/// allocation, and a bound on what one kept line can hold on to.
const SHARED_CHUNK: usize = 4 * 1024;

impl LineSplitter {
    pub fn new(
        offset: u64,
        term: Vec<u8>,
        strip: Option<Vec<u8>>,
        unit: usize,
        max_bytes: usize,
        read_size: usize,
    ) -> Self {
        LineSplitter {
            buf: Vec::new(),
            consumed: 0,
            scan_from: 0,
            buf_offset: offset,
            term,
            strip,
            unit: unit.max(1),
            max_bytes,
            overlong: None,
            read_size: MIN_READ,
            max_read: read_size.max(MIN_READ),
            share: false,
            chunk: None,
        }
    }

    /// Also give each line as a slice of one shared copy of the read (`Line::shared`): one
    /// allocation per read instead of one per line, for callers that keep lines as they are.
    pub fn share_lines(&mut self) {
        self.share = true;
    }

    /// `buf[start..end]` as a slice of the read's shared copy, made on first use.
    fn shared(&mut self, start: usize, end: usize) -> Option<Bytes> {
        if !self.share {
            return None;
        }
        let (chunk, base) = match &self.chunk {
            Some((c, base)) if *base <= start && end - *base <= c.len() => (c, *base),
            _ => {
                // At most SHARED_CHUNK (or the one line): a line kept long after the others
                // of its read (they were filtered out) holds no more than that.
                let until = end.max((start + SHARED_CHUNK).min(self.buf.len()));
                let c = Bytes::copy_from_slice(&self.buf[start..until]);
                self.chunk = Some((c, start));
                let (c, base) = self.chunk.as_ref().expect("just set");
                (c, *base)
            }
        };
        Some(chunk.slice(start - base..end - base))
    }

    /// At EOF: give back buffer memory beyond what the pending partial line needs. An idle
    /// file then costs no buffer at all; the next read allocates one again.
    pub fn shrink_idle(&mut self) {
        self.read_size = MIN_READ;
        self.compact();
        self.buf.shrink_to_fit();
    }

    fn compact(&mut self) {
        self.chunk = None;
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.buf_offset += self.consumed as u64;
            self.scan_from -= self.consumed;
            self.consumed = 0;
        }
    }

    /// File offset of the first byte not yet returned as part of a line.
    pub fn offset(&self) -> u64 {
        match &self.overlong {
            Some((_, start)) => *start,
            None => self.buf_offset + self.consumed as u64,
        }
    }

    /// File offset of the next byte to read from the file.
    pub fn read_offset(&self) -> u64 {
        self.buf_offset + self.buf.len() as u64
    }

    /// Bytes buffered after the last complete line (a partial line, or a BOM not yet skipped).
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() - self.consumed + self.overlong.as_ref().map_or(0, |o| o.0.len())
    }

    /// Skip `n` bytes at the current position (a byte-order mark).
    pub fn skip(&mut self, n: usize) {
        self.consumed = (self.consumed + n).min(self.buf.len());
        self.scan_from = self.scan_from.max(self.consumed);
    }

    pub fn head(&self) -> &[u8] {
        &self.buf[self.consumed..]
    }

    /// The last `n` bytes read (right after `fill` returned `n`).
    pub fn last_read(&self, n: usize) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(n)..]
    }

    /// Read one block from `r`. Returns the number of bytes read (0 at EOF).
    pub fn fill(&mut self, r: &mut impl Read) -> io::Result<usize> {
        // `compact` also drops the shared copy: the lines of this read get a new one.
        self.compact();
        let len = self.buf.len();
        self.buf.resize(len + self.read_size, 0);
        let n = loop {
            match r.read(&mut self.buf[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(len + n);
        if n == self.read_size && self.read_size < self.max_read {
            self.read_size = (self.read_size * 2).min(self.max_read);
        }
        Ok(n)
    }

    fn find_term(&self) -> Option<usize> {
        let hay = &self.buf[self.scan_from..];
        if self.term.len() == 1 {
            let mut from = 0;
            while let Some(p) = memchr::memchr(self.term[0], &hay[from..]) {
                let idx = self.scan_from + from + p;
                if self.unit == 1 || (idx - self.consumed) % self.unit == 0 {
                    return Some(idx);
                }
                from += p + 1;
            }
            return None;
        }
        let finder = memchr::memmem::Finder::new(&self.term);
        let mut from = 0;
        while let Some(p) = finder.find(&hay[from..]) {
            let idx = self.scan_from + from + p;
            if (idx - self.consumed) % self.unit == 0 {
                return Some(idx);
            }
            from += p + 1;
        }
        None
    }

    fn clip(&self, len: usize) -> usize {
        let m = self.max_bytes.min(len);
        m - m % self.unit
    }

    /// Drop the bytes of an over-long line that were already searched. Only whole code units
    /// are dropped, so terminator alignment (UTF-16) stays relative to the line start.
    fn discard_searched(&mut self) {
        let searched = self.scan_from - self.consumed;
        self.consumed += searched - searched % self.unit;
    }

    /// The next complete line in the buffer, if any.
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        match self.find_term() {
            Some(idx) => {
                let after = idx + self.term.len();
                let end = self.buf_offset + after as u64;
                let start_idx = self.consumed;
                self.consumed = after;
                self.scan_from = after;
                if let Some((head, start)) = self.overlong.take() {
                    return Some(Line {
                        bytes: Cow::Owned(head),
                        start,
                        end,
                        truncated: true,
                        shared: None,
                    });
                }
                let mut len = idx - start_idx;
                if let Some(cr) = &self.strip {
                    let content = &self.buf[start_idx..idx];
                    if content.ends_with(cr) && (len - cr.len()) % self.unit == 0 {
                        len -= cr.len();
                    }
                }
                let start = self.buf_offset + start_idx as u64;
                let truncated = len > self.max_bytes;
                if truncated {
                    len = self.clip(len);
                }
                let shared = self.shared(start_idx, start_idx + len);
                Some(Line {
                    bytes: Cow::Borrowed(&self.buf[start_idx..start_idx + len]),
                    start,
                    end,
                    truncated,
                    shared,
                })
            }
            None => {
                // Keep a possible partial terminator at the end for the next search.
                let keep_tail = self.term.len().saturating_sub(1);
                self.scan_from = self.buf.len().saturating_sub(keep_tail).max(self.consumed);
                let pending = self.buf.len() - self.consumed;
                if self.overlong.is_some() {
                    // Still inside an over-long line: drop what was searched.
                    self.discard_searched();
                } else if pending > self.max_bytes + keep_tail {
                    let keep = self.clip(pending);
                    let head = self.buf[self.consumed..self.consumed + keep].to_vec();
                    let start = self.buf_offset + self.consumed as u64;
                    self.overlong = Some((head, start));
                    self.discard_searched();
                }
                None
            }
        }
    }

    /// Everything after the last complete line, as a final line (file closed for good).
    pub fn take_partial(&mut self) -> Option<Line<'_>> {
        let end = self.read_offset();
        if let Some((head, start)) = self.overlong.take() {
            self.consumed = self.buf.len();
            return Some(Line {
                bytes: Cow::Owned(head),
                start,
                end,
                truncated: true,
                shared: None,
            });
        }
        if self.consumed >= self.buf.len() {
            return None;
        }
        let start = self.buf_offset + self.consumed as u64;
        let content = &self.buf[self.consumed..];
        self.consumed = self.buf.len();
        self.scan_from = self.consumed;
        let truncated = content.len() > self.max_bytes;
        let keep = if truncated {
            self.max_bytes - self.max_bytes % self.unit
        } else {
            content.len()
        };
        Some(Line {
            bytes: Cow::Borrowed(&content[..keep]),
            start,
            end,
            truncated,
            shared: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(data: &[u8], max: usize, read: usize) -> Vec<(Vec<u8>, u64, u64, bool)> {
        let mut s = LineSplitter::new(0, b"\n".to_vec(), Some(b"\r".to_vec()), 1, max, read);
        let mut r = std::io::Cursor::new(data.to_vec());
        let mut out = Vec::new();
        loop {
            let n = s.fill(&mut r).unwrap();
            while let Some(l) = s.next_line() {
                out.push((l.bytes.to_vec(), l.start, l.end, l.truncated));
            }
            if n == 0 {
                break;
            }
        }
        if let Some(l) = s.take_partial() {
            out.push((l.bytes.to_vec(), l.start, l.end, l.truncated));
        }
        out
    }

    #[test]
    fn offsets_and_crlf() {
        let got = lines_of(b"ab\r\ncd\n\nlast", 100, 4096);
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), 0, 4, false),
                (b"cd".to_vec(), 4, 7, false),
                (b"".to_vec(), 7, 8, false),
                (b"last".to_vec(), 8, 12, false),
            ]
        );
    }

    #[test]
    fn overlong_line_is_truncated_without_buffering_it() {
        let mut data = vec![b'x'; 50_000];
        data.extend_from_slice(b"\nok\n");
        let got = lines_of(&data, 100, 4096);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), 100);
        assert_eq!((got[0].1, got[0].2, got[0].3), (0, 50_001, true));
        assert_eq!(got[1], (b"ok".to_vec(), 50_001, 50_004, false));
    }

    #[test]
    fn shared_lines_are_slices_of_one_copy_per_read() {
        // CRLF stripped, a truncated line, lines spanning reads, then an empty line.
        let mut data = b"ab\r\ncd\n".to_vec();
        data.extend(vec![b'x'; 300]);
        data.extend_from_slice(b"\n\nend\n");
        for read in [1, 7, 4096] {
            let mut s = LineSplitter::new(0, b"\n".to_vec(), Some(b"\r".to_vec()), 1, 100, read);
            s.share_lines();
            let mut chunks = data.chunks(read).map(<[u8]>::to_vec).collect::<Vec<_>>();
            chunks.reverse();
            let mut out = Vec::new();
            loop {
                let n = match chunks.pop() {
                    Some(c) => s.fill(&mut std::io::Cursor::new(c)).unwrap(),
                    None => 0,
                };
                let mut chunk_ptr = None;
                while let Some(l) = s.next_line() {
                    let Some(shared) = l.shared.clone() else {
                        // Only the head of a line over-long before its end was read is a
                        // copy of its own.
                        assert!(matches!(l.bytes, Cow::Owned(_)) && l.truncated);
                        out.push((l.bytes.to_vec(), l.start, l.end, l.truncated));
                        continue;
                    };
                    assert_eq!(&shared[..], &l.bytes[..], "read size {read}");
                    // The lines of one read point into the same copy.
                    let end = shared.as_ptr() as usize + shared.len();
                    if let Some(prev) = chunk_ptr {
                        assert!(shared.as_ptr() as usize >= prev, "read size {read}");
                    }
                    chunk_ptr = Some(end);
                    out.push((shared.to_vec(), l.start, l.end, l.truncated));
                }
                if n == 0 {
                    break;
                }
            }
            let texts: Vec<_> = out.iter().map(|l| l.0.len()).collect();
            assert_eq!(texts, vec![2, 2, 100, 0, 3], "read size {read}");
            assert_eq!(out[0], (b"ab".to_vec(), 0, 4, false));
            assert_eq!((out[2].1, out[2].2, out[2].3), (7, 308, true));
            assert_eq!(out[4], (b"end".to_vec(), 309, 313, false));
        }
        // Without share_lines there is no copy.
        let mut s = LineSplitter::new(0, b"\n".to_vec(), None, 1, 100, 4096);
        s.fill(&mut std::io::Cursor::new(b"a\n".to_vec())).unwrap();
        assert!(s.next_line().unwrap().shared.is_none());
    }

    #[test]
    fn small_reads_split_everything() {
        let data = b"one\ntwo\nthree\n";
        for read in [1, 2, 3, 5] {
            let mut s = LineSplitter::new(0, b"\n".to_vec(), None, 1, 100, read);
            // read_size is clamped to 4096; emulate small reads with a chunked reader.
            let mut chunks = data
                .chunks(read)
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()
                .into_iter();
            let mut out = Vec::new();
            loop {
                let chunk = chunks.next();
                let n = match &chunk {
                    Some(c) => s.fill(&mut std::io::Cursor::new(c.clone())).unwrap(),
                    None => 0,
                };
                while let Some(l) = s.next_line() {
                    out.push(String::from_utf8(l.bytes.to_vec()).unwrap());
                }
                if n == 0 {
                    break;
                }
            }
            assert_eq!(out, vec!["one", "two", "three"], "read size {read}");
        }
    }

    #[test]
    fn utf16_overlong_line_keeps_alignment() {
        let enc = |t: &str| -> Vec<u8> { t.encode_utf16().flat_map(u16::to_le_bytes).collect() };
        let mut raw = enc(&"x".repeat(50_000));
        raw.extend(enc("\nafter\n"));
        let mut s = LineSplitter::new(0, vec![b'\n', 0], None, 2, 100, 8192);
        let mut r = std::io::Cursor::new(raw.clone());
        let mut out = Vec::new();
        loop {
            let n = s.fill(&mut r).unwrap();
            while let Some(l) = s.next_line() {
                out.push((l.bytes.len(), l.start, l.end, l.truncated));
            }
            if n == 0 {
                break;
            }
        }
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], (100, 0, 100_002, true));
        assert_eq!(out[1], (10, 100_002, raw.len() as u64, false));
    }

    #[test]
    fn utf16_alignment_and_multibyte_terminator() {
        let text = "a\u{0a05}\u{0100}b\r\nc\n";
        let raw: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut s = LineSplitter::new(0, vec![b'\n', 0], Some(vec![b'\r', 0]), 2, 100, 4096);
        s.fill(&mut std::io::Cursor::new(raw)).unwrap();
        let l1 = s.next_line().unwrap().bytes.to_vec();
        let dec = |b: &[u8]| {
            String::from_utf16(
                &b.chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        // U+0A05 U+0100 encode as 05 0A 00 01: a misaligned "\n\0" must not split the line.
        assert_eq!(dec(&l1), "a\u{0a05}\u{0100}b");
        let l2 = s.next_line().unwrap().bytes.to_vec();
        assert_eq!(dec(&l2), "c");
    }
}
