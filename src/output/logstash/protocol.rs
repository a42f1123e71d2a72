//! Lumberjack protocol version 2 on the wire, as the reference implementations speak it:
//! elastic/go-lumber `protocol/v2/protocol.go` (frame codes), `client/v2/client.go` (`Send`,
//! `serialize`, `ReceiveACK`, `AwaitACK`), `server/v2/reader.go` and `writer.go`, and
//! logstash-plugins/logstash-input-beats `BeatsParser.java` / `BeatsHandler.java`.
//! (go-lumber's PROTOCOL.md prose has wrong frame codes; the code is the authority.)
//!
//! All integers are big-endian u32. Every frame starts with the version byte `'2'`:
//! - `2W <count>`: the window size, before every window.
//! - `2J <seq> <len> <json>`: one event; `seq` counts from 1 in every window.
//! - `2C <len> <zlib stream>`: whole `J` frames, compressed; Filebeat (go-lumber's client)
//!   sends `W` then one `C` holding the window's `J` frames.
//! - `2A <seq>` (server → client): the first `seq` events of the current window are
//!   acknowledged. Logstash ACKs the highest sequence of what it processed
//!   (`BeatsHandler.needAck`), so several ACKs may come per window, and it sends `ACK(0)`
//!   keepalives every few seconds while it still holds a window (`ConnectionHandler`,
//!   go-lumber's `server/internal/handler.go` `waitACK`). A seq above the window size is a
//!   protocol error (go-lumber `AwaitACK`).

use flate2::{Compress, Compression, FlushCompress, Status};

pub const VERSION: u8 = b'2';
pub const CODE_WINDOW: u8 = b'W';
pub const CODE_JSON: u8 = b'J';
pub const CODE_COMPRESSED: u8 = b'C';
pub const CODE_ACK: u8 = b'A';

/// Bytes of a `J` frame before its JSON: version, code, seq, length.
pub const JSON_HEADER: usize = 10;
/// Bytes of an ACK frame.
pub const ACK_LEN: usize = 6;

/// Events of one batch, encoded once as `J` frames back to back. The sequence numbers are
/// written when a window is framed, because they restart at 1 in every window and a window
/// resent after a partial ACK starts further into the batch.
#[derive(Debug, Default)]
pub struct Frames {
    pub data: Vec<u8>,
    /// Start of every frame in `data`, plus `data.len()` at the end.
    pub starts: Vec<usize>,
}

impl Frames {
    pub fn with_capacity(events: usize, bytes: usize) -> Self {
        let mut starts = Vec::with_capacity(events + 1);
        starts.push(0);
        Frames {
            data: Vec::with_capacity(bytes),
            starts,
        }
    }

    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append one event: `write` appends its JSON to the buffer it is given.
    pub fn push(&mut self, escape_html: bool, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        self.data
            .extend_from_slice(&[VERSION, CODE_JSON, 0, 0, 0, 0, 0, 0, 0, 0]);
        write(&mut self.data);
        if escape_html {
            escape_html_in_place(&mut self.data, start + JSON_HEADER);
        }
        let len = (self.data.len() - start - JSON_HEADER) as u32;
        self.data[start + 6..start + 10].copy_from_slice(&len.to_be_bytes());
        self.starts.push(self.data.len());
    }

    /// Bytes of the JSON documents of events `range` (without frame headers).
    pub fn json_bytes(&self, range: std::ops::Range<usize>) -> usize {
        self.starts[range.end] - self.starts[range.start] - JSON_HEADER * range.len()
    }
}

/// Rewrites `<`, `>` and `&` from `from` on as `\u003c`, `\u003e`, `\u0026` (Filebeat's
/// `escape_html`; these bytes only occur inside JSON strings, so the document stays valid).
fn escape_html_in_place(buf: &mut Vec<u8>, from: usize) {
    if !buf[from..].iter().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        return;
    }
    let tail = buf.split_off(from);
    for b in tail {
        match b {
            b'<' => buf.extend_from_slice(b"\\u003c"),
            b'>' => buf.extend_from_slice(b"\\u003e"),
            b'&' => buf.extend_from_slice(b"\\u0026"),
            _ => buf.push(b),
        }
    }
}

/// Frames windows: the `W` header, then the `J` frames as they are or in one `C` frame.
pub struct Framer {
    level: u32,
    zlib: Option<Compress>,
}

impl Framer {
    /// `level` 0 sends plain `J` frames; 1 to 9 compress them with zlib at that level.
    pub fn new(level: u32) -> Self {
        Framer {
            level,
            zlib: (level > 0).then(|| Compress::new(Compression::new(level.min(9)), true)),
        }
    }

    pub fn compressed(&self) -> bool {
        self.level > 0
    }

    /// The bytes of one window holding events `range` of `frames` (numbered 1..=n), into
    /// `out` (cleared first).
    pub fn window(
        &mut self,
        frames: &mut Frames,
        range: std::ops::Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), CompressError> {
        out.clear();
        let count = range.len() as u32;
        for (i, idx) in range.clone().enumerate() {
            let s = frames.starts[idx];
            frames.data[s + 2..s + 6].copy_from_slice(&(i as u32 + 1).to_be_bytes());
        }
        let body = &frames.data[frames.starts[range.start]..frames.starts[range.end]];
        out.extend_from_slice(&[VERSION, CODE_WINDOW]);
        out.extend_from_slice(&count.to_be_bytes());
        let Some(z) = &mut self.zlib else {
            out.extend_from_slice(body);
            return Ok(());
        };
        out.extend_from_slice(&[VERSION, CODE_COMPRESSED, 0, 0, 0, 0]);
        let payload_at = out.len();
        z.reset();
        // Repetitive JSON compresses well: start with a quarter of the input and grow.
        out.reserve(body.len() / 4 + 64);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity().max(4096));
            }
            let (in0, out0) = (z.total_in(), z.total_out());
            let status = z
                .compress_vec(&body[consumed..], out, FlushCompress::Finish)
                .map_err(|e| CompressError(e.to_string()))?;
            consumed += (z.total_in() - in0) as usize;
            match status {
                Status::StreamEnd => break,
                _ if z.total_in() == in0 && z.total_out() == out0 => {
                    return Err(CompressError("zlib made no progress".into()))
                }
                _ => {}
            }
        }
        let len = u32::try_from(out.len() - payload_at)
            .map_err(|_| CompressError("compressed window above 4 GiB".into()))?;
        out[payload_at - 4..payload_at].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("compressing a window failed: {0}")]
pub struct CompressError(pub String);

/// Splits the server's byte stream into ACK frames.
#[derive(Debug, Default)]
pub struct AckReader {
    buf: [u8; ACK_LEN],
    filled: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lumberjack protocol error: expected an ACK frame (\"2A\"), got bytes {0:02x?}")]
pub struct NotAnAck(pub [u8; 2]);

impl AckReader {
    /// Feed bytes read from the connection; every complete ACK's sequence goes to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<u32>) -> Result<(), NotAnAck> {
        while !bytes.is_empty() {
            let take = (ACK_LEN - self.filled).min(bytes.len());
            self.buf[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled >= 2 && (self.buf[0] != VERSION || self.buf[1] != CODE_ACK) {
                return Err(NotAnAck([self.buf[0], self.buf[1]]));
            }
            if self.filled == ACK_LEN {
                out.push(u32::from_be_bytes([
                    self.buf[2],
                    self.buf[3],
                    self.buf[4],
                    self.buf[5],
                ]));
                self.filled = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn frames(docs: &[&str]) -> Frames {
        let mut f = Frames::with_capacity(docs.len(), 64);
        for d in docs {
            f.push(false, |b| b.extend_from_slice(d.as_bytes()));
        }
        f
    }

    /// (seq, json) of every J frame in `bytes`.
    fn parse_j(mut bytes: &[u8]) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(&bytes[..2], b"2J");
            let seq = u32::from_be_bytes(bytes[2..6].try_into().unwrap());
            let len = u32::from_be_bytes(bytes[6..10].try_into().unwrap()) as usize;
            out.push((
                seq,
                String::from_utf8(bytes[10..10 + len].to_vec()).unwrap(),
            ));
            bytes = &bytes[10 + len..];
        }
        out
    }

    #[test]
    fn plain_window_is_w_then_j_frames_numbered_from_one() {
        let mut f = frames(&["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        let mut out = Vec::new();
        Framer::new(0).window(&mut f, 1..3, &mut out).unwrap();
        assert_eq!(&out[..6], b"2W\0\0\0\x02");
        assert_eq!(
            parse_j(&out[6..]),
            vec![(1, "{\"b\":2}".into()), (2, "{\"c\":3}".into())]
        );
        assert_eq!(f.json_bytes(0..3), 21);
    }

    #[test]
    fn compressed_window_is_w_then_one_c_frame_of_zlib() {
        let docs: Vec<String> = (0..500).map(|i| format!("{{\"n\":{i}}}")).collect();
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let mut f = frames(&refs);
        let mut out = Vec::new();
        let mut framer = Framer::new(3);
        for _ in 0..2 {
            // The compressor is reused window after window.
            framer.window(&mut f, 0..500, &mut out).unwrap();
            assert_eq!(&out[..8], b"2W\0\0\x01\xf42C");
            let len = u32::from_be_bytes(out[8..12].try_into().unwrap()) as usize;
            assert_eq!(out.len(), 12 + len);
            let mut plain = Vec::new();
            flate2::read::ZlibDecoder::new(&out[12..])
                .read_to_end(&mut plain)
                .unwrap();
            let got = parse_j(&plain);
            assert_eq!(got.len(), 500);
            assert_eq!(got[0], (1, "{\"n\":0}".into()));
            assert_eq!(got[499], (500, "{\"n\":499}".into()));
        }
    }

    #[test]
    fn escape_html_like_filebeat() {
        let mut f = Frames::with_capacity(1, 16);
        f.push(true, |b| b.extend_from_slice(b"{\"m\":\"<a href=x>&\"}"));
        let got = parse_j(&f.data);
        assert_eq!(got[0].1, "{\"m\":\"\\u003ca href=x\\u003e\\u0026\"}");
    }

    #[test]
    fn ack_frames_split_anywhere() {
        let mut r = AckReader::default();
        let mut seqs = Vec::new();
        let wire = [b'2', b'A', 0, 0, 0, 0, b'2', b'A', 0, 0, 1, 2];
        r.feed(&wire[..3], &mut seqs).unwrap();
        r.feed(&wire[3..8], &mut seqs).unwrap();
        r.feed(&wire[8..], &mut seqs).unwrap();
        assert_eq!(seqs, vec![0, 258]);
        let e = r.feed(b"2W\0\0", &mut seqs).unwrap_err();
        assert_eq!(e, NotAnAck([b'2', b'W']));
    }
}
