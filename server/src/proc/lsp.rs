//! Cuts a language server's stdout into whole `Content-Length` framed
//! messages (header and body exactly as received). Bytes outside of a
//! message (a banner, a stray print) are skipped with a warning; a message
//! over [`MAX_MESSAGE`] is skipped whole (its body bytes discarded exactly)
//! with a warning, and framing goes on with the next one.

use bytes::{Buf, Bytes, BytesMut};

/// Largest body forwarded. One LSP message travels as one `ProcOutput`,
/// i.e. one data record, which carries at most
/// `protocol::session::MAX_DATA_PAYLOAD` (16 MiB − 9) including the msgpack
/// envelope and the header; 15 MiB leaves ample room for both. A larger
/// message is skipped, never buffered.
pub(crate) const MAX_MESSAGE: u64 = 15 * 1024 * 1024;

/// Longest header block looked for before deciding a candidate header is junk.
const MAX_HEADER: usize = 8 * 1024;

const HEADER_NAMES: [&[u8]; 2] = [b"content-length:", b"content-type:"];

/// Incremental LSP message framer.
#[derive(Default)]
pub(crate) struct LspFramer {
    buf: BytesMut,
    /// Body bytes of an oversize message still to be thrown away.
    discard: u64,
}

impl LspFramer {
    /// True while the body of an oversize message is being discarded.
    #[cfg(test)]
    pub(crate) fn discarding(&self) -> bool {
        self.discard > 0
    }

    /// Adds bytes read from stdout and returns every message completed by them.
    pub(crate) fn push(&mut self, data: &[u8], proc: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut data = data;
        if self.discard > 0 {
            let n = (self.discard.min(data.len() as u64)) as usize;
            self.discard -= n as u64;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
        loop {
            // 0. The rest of an oversize message's body.
            if self.discard > 0 {
                let n = (self.discard.min(self.buf.len() as u64)) as usize;
                self.buf.advance(n);
                self.discard -= n as u64;
                if self.discard > 0 {
                    break;
                }
            }
            // 1. Skip anything before the next header.
            match find_header_start(&self.buf) {
                Ok(0) => {}
                Ok(i) => {
                    self.skip(i, proc);
                    continue;
                }
                Err(keep_from) => {
                    if keep_from > 0 {
                        self.skip(keep_from, proc);
                    }
                    break;
                }
            }
            // 2. The header block.
            let window = &self.buf[..self.buf.len().min(MAX_HEADER + 4)];
            let Some(end) = find(window, b"\r\n\r\n") else {
                if self.buf.len() > MAX_HEADER {
                    // Not a real header: skip the candidate and look again.
                    self.skip(1, proc);
                    continue;
                }
                break;
            };
            let length = match parse_header(&self.buf[..end]) {
                Some(n) => n,
                None => {
                    self.skip(1, proc);
                    continue;
                }
            };
            if length > MAX_MESSAGE {
                tracing::warn!(
                    proc,
                    length,
                    "language server sent a {length}-byte message, over the {MAX_MESSAGE}-byte \
                     limit of one forwarded message; skipping it"
                );
                self.buf.advance(end + 4);
                self.discard = length;
                continue;
            }
            // `length` ≤ 15 MiB, so this cannot overflow.
            let total = end + 4 + length as usize;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                break;
            }
            out.push(self.buf.split_to(total).freeze());
        }
        out
    }

    /// End of stream: reports bytes left over after the last message.
    pub(crate) fn finish(&mut self, proc: u64) {
        if !self.buf.is_empty() || self.discard > 0 {
            tracing::warn!(
                proc,
                bytes = self.buf.len(),
                "language server's stdout ended in the middle of a message; {} bytes dropped",
                self.buf.len()
            );
        }
        self.buf.clear();
        self.discard = 0;
    }

    /// Drops `n` bytes that are not part of a message, with a warning: a
    /// run of junk before the next header, or a header candidate that
    /// turned out malformed.
    fn skip(&mut self, n: usize, proc: u64) {
        let preview = String::from_utf8_lossy(&self.buf[..n.min(80)]).into_owned();
        self.buf.advance(n);
        tracing::warn!(
            proc,
            bytes = n,
            "skipping language server output that is not an LSP message: {preview:?}"
        );
    }
}

/// `Ok(i)`: a header name starts at `i`. `Err(k)`: none found; bytes from
/// `k` on could still be the beginning of one and must be kept.
fn find_header_start(buf: &[u8]) -> Result<usize, usize> {
    for i in 0..buf.len() {
        if buf[i] != b'C' && buf[i] != b'c' {
            continue;
        }
        let rest = &buf[i..];
        for name in HEADER_NAMES {
            let n = rest.len().min(name.len());
            if rest[..n].eq_ignore_ascii_case(&name[..n]) {
                if n == name.len() {
                    return Ok(i);
                }
                // A prefix of a header name at the very end: wait for more.
                return Err(i);
            }
        }
    }
    Err(buf.len())
}

/// The Content-Length of a header block (without the final blank line), or
/// `None` when it is not a well-formed LSP header.
fn parse_header(block: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(block).ok()?;
    let mut length = None;
    for line in text.split("\r\n") {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse::<u64>().ok()?);
        }
    }
    length
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Vec<u8> {
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    fn feed_bytewise(input: &[u8]) -> Vec<Bytes> {
        let mut f = LspFramer::default();
        let mut out = Vec::new();
        for b in input {
            out.extend(f.push(std::slice::from_ref(b), 1));
        }
        out
    }

    #[test]
    fn banner_junk_and_split_messages() {
        let mut input = b"Starting server v1.2\n".to_vec();
        input.extend(msg(r#"{"id":1}"#));
        input.extend(msg(r#"{"id":2}"#));
        input.extend(b"oops a stray print\r\n\r\n");
        input.extend(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}");
        for out in [feed_bytewise(&input), LspFramer::default().push(&input, 1)] {
            assert_eq!(out.len(), 3, "{out:?}");
            assert_eq!(&out[0][..], &msg(r#"{"id":1}"#)[..]);
            assert_eq!(&out[1][..], &msg(r#"{"id":2}"#)[..]);
            assert!(out[2].starts_with(b"Content-Type"));
            assert!(out[2].ends_with(b"\r\n\r\n{}"));
        }
    }

    #[test]
    fn bad_header_is_skipped_not_wedged() {
        let mut input = b"Content-Length: banana\r\n\r\n".to_vec();
        input.extend(b"content-length is a nice header name\n");
        input.extend(vec![b'C'; 10_000]);
        input.extend(msg("x"));
        let out = LspFramer::default().push(&input, 1);
        assert_eq!(out, vec![Bytes::from(msg("x"))]);
        assert_eq!(feed_bytewise(&input), vec![Bytes::from(msg("x"))]);
    }

    #[test]
    fn oversize_message_is_skipped_and_framing_goes_on() {
        let big = MAX_MESSAGE as usize + 1;
        let mut input = msg("a");
        input.extend(format!("Content-Length: {big}\r\n\r\n").into_bytes());
        // The body contains what looks like a header: it must not be framed.
        let mut body = msg("inside the big one");
        body.resize(big, b'z');
        input.extend(&body);
        input.extend(msg("b"));
        let want = vec![Bytes::from(msg("a")), Bytes::from(msg("b"))];
        assert_eq!(LspFramer::default().push(&input, 1), want);
        // The same, fed in uneven pieces.
        let mut f = LspFramer::default();
        let mut out = Vec::new();
        for piece in input.chunks(1_000_003) {
            out.extend(f.push(piece, 1));
        }
        assert_eq!(out, want);
        assert!(!f.discarding());
        // Just at the limit is forwarded.
        let body = "y".repeat(MAX_MESSAGE as usize);
        assert_eq!(LspFramer::default().push(&msg(&body), 1).len(), 1);
    }

    #[test]
    fn absurd_lengths_are_skipped_not_fatal() {
        let mut f = LspFramer::default();
        assert!(f.push(b"Content-Length: 99999999999\r\n\r\n", 1).is_empty());
        assert!(f.discarding(), "the announced body is being discarded");
        let mut f = LspFramer::default();
        assert!(f
            .push(b"Content-Length: 184467440737095516160\r\n\r\n", 1)
            .is_empty());
        assert!(!f.discarding(), "unparseable length is junk, not a length");
        assert_eq!(f.push(&msg("x"), 1), vec![Bytes::from(msg("x"))]);
    }

    #[test]
    fn empty_body_and_binary_junk() {
        let mut input = vec![0xff, 0x00, b'\r', b'\n'];
        input.extend(msg(""));
        let out = LspFramer::default().push(&input, 1);
        assert_eq!(out, vec![Bytes::from(msg(""))]);
    }
}
